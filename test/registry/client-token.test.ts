/** The registry client against the real registry with Docker token auth (test/world/token-issuer.ts). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { RegistryClient } from "../../src/registry/client.js";
import { startRegistry, type RegistryHandle } from "../world/registry.js";
import { startTokenIssuer, type TokenIssuer } from "../world/token-issuer.js";
import { content, makeImage, pushImage } from "./content.js";

const USER = "robot";
const PASSWORD = "t0ken-pa55";
const creds = () => ({ username: USER, password: PASSWORD });

async function rejection(promise: Promise<unknown>): Promise<SigferryError> {
  try {
    await promise;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

function scopeRequests(issuer: TokenIssuer, scope: string): number {
  return issuer.requests.filter((r) => r.scopes.includes(scope)).length;
}

describe("RegistryClient against distribution with token auth", () => {
  let issuer: TokenIssuer;
  let registry: RegistryHandle;
  const clients: RegistryClient[] = [];
  const client = (options: ConstructorParameters<typeof RegistryClient>[1]): RegistryClient => {
    const c = new RegistryClient(registry.host, options);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    issuer = await startTokenIssuer({ username: USER, password: PASSWORD });
    registry = await startRegistry({ token: { issuer } });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.stop();
    await issuer?.stop();
  });

  it("pushes and pulls with tokens obtained with the credentials", async () => {
    const c = client({ plainHttp: true, credentials: creds });
    const image = makeImage("oci");
    await pushImage(c, "tok/app", image, "v1");
    const got = await c.getManifest("tok/app", "v1");
    expect(got?.digest).toBe(image.manifest.digest);
    expect(await c.listTags("tok/app")).toEqual(["v1"]);
    expect(issuer.requests.every((r) => r.username === USER && r.service === issuer.service)).toBe(
      true,
    );
  });

  it("fetches a token once per repository scope, however many requests use it", async () => {
    const c = client({ plainHttp: true, credentials: creds });
    const image = makeImage("docker");
    const before = issuer.requests.length;
    await pushImage(c, "tok/many", image, "v1");
    for (let i = 0; i < 10; i++) {
      await c.getManifest("tok/many", "v1");
      await c.headManifest("tok/many", "v1");
      await c.getBlob("tok/many", image.layer.digest, 1 << 20);
    }
    // And concurrently: the in-flight token is shared.
    await Promise.all(Array.from({ length: 10 }, () => c.hasBlob("tok/many", image.config.digest)));
    expect(scopeRequests(issuer, "repository:tok/many:pull,push")).toBe(1);
    expect(scopeRequests(issuer, "repository:tok/many:pull")).toBe(1);
    expect(issuer.requests.length - before).toBe(2);
  });

  it("asks for pull on the source repository when mounting across repositories", async () => {
    const c = client({ plainHttp: true, credentials: creds });
    const blob = content(`token mount ${Date.now()}`);
    expect(await c.pushBlob("tok/src", blob.digest, blob.bytes)).toBe("uploaded");
    expect(await c.pushBlob("tok/dst", blob.digest, blob.bytes, { mountFrom: "tok/src" })).toBe(
      "mounted",
    );
    const mountRequest = issuer.requests.find(
      (r) =>
        r.scopes.includes("repository:tok/dst:pull,push") &&
        r.scopes.includes("repository:tok/src:pull"),
    );
    expect(mountRequest?.granted).toBe(true);
  });

  it("fails with AUTH_DENIED when the token service refuses the password", async () => {
    const wrong = "not-the-Passw0rd";
    const c = client({ plainHttp: true, credentials: () => ({ username: USER, password: wrong }) });
    const err = await rejection(c.getManifest("tok/app", "v1"));
    expect(err.code).toBe("AUTH_DENIED");
    expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(wrong);
  });

  it("fails with AUTH_REQUIRED without credentials when the token service wants them", async () => {
    const c = client({ plainHttp: true });
    const err = await rejection(c.getManifest("tok/app", "v1"));
    expect(err.code).toBe("AUTH_REQUIRED");
  });
});

describe("RegistryClient with a token service that allows anonymous pull", () => {
  let issuer: TokenIssuer;
  let registry: RegistryHandle;
  let owner: RegistryClient;
  let anonymous: RegistryClient;

  beforeAll(async () => {
    issuer = await startTokenIssuer({ username: USER, password: PASSWORD, anonymousPull: true });
    registry = await startRegistry({ token: { issuer } });
    owner = new RegistryClient(registry.host, { plainHttp: true, credentials: creds });
    anonymous = new RegistryClient(registry.host, { plainHttp: true });
  });

  afterAll(async () => {
    await owner?.close();
    await anonymous?.close();
    await registry?.stop();
    await issuer?.stop();
  });

  it("pulls with an anonymous token, and asks for a login to push", async () => {
    const image = makeImage("oci");
    await pushImage(owner, "pub/app", image, "v1");
    expect((await anonymous.getManifest("pub/app", "v1"))?.digest).toBe(image.manifest.digest);
    const blob = content("anonymous push");
    const err = await rejection(anonymous.pushBlob("pub/app", blob.digest, blob.bytes));
    expect(err.code).toBe("AUTH_REQUIRED");
  });
});

describe("RegistryClient with a TLS registry whose token realm is plain http", () => {
  let issuer: TokenIssuer;
  let registry: RegistryHandle;
  let client: RegistryClient;

  beforeAll(async () => {
    issuer = await startTokenIssuer({ username: USER, password: PASSWORD });
    registry = await startRegistry({ tls: true, token: { issuer } });
    client = new RegistryClient(registry.host, { ca: registry.caPem, credentials: creds });
  });

  afterAll(async () => {
    await client?.close();
    await registry?.stop();
    await issuer?.stop();
  });

  it("refuses to send the credentials to the plain-http realm", async () => {
    const err = await rejection(client.getManifest("tls/app", "v1"));
    expect(err.code).toBe("REGISTRY_PROTOCOL");
    expect(err.message).toContain("plain http");
    expect(issuer.requests).toEqual([]);
  });
});
