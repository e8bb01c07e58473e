/** The registry client against the real registry with TLS (a private CA) and htpasswd (Basic) auth. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { RegistryClient } from "../../src/registry/client.js";
import { startRegistry, type RegistryHandle } from "../world/registry.js";
import { makeImage, pushImage } from "./content.js";

const USER = "ferry";
const PASSWORD = "s3cret-Pa55:with-colon";

async function rejection(promise: Promise<unknown>): Promise<SigferryError> {
  try {
    await promise;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

/** Everything an error could print: message, details, and the cause chain's messages. */
function printable(err: SigferryError): string {
  let text = `${err.message}\n${JSON.stringify(err.details)}`;
  let cause: unknown = err.cause;
  while (cause instanceof Error) {
    text += `\n${cause.message}`;
    cause = cause.cause;
  }
  return text;
}

describe("RegistryClient against distribution with TLS and htpasswd", () => {
  let registry: RegistryHandle;
  const clients: RegistryClient[] = [];
  const client = (options: ConstructorParameters<typeof RegistryClient>[1]): RegistryClient => {
    const c = new RegistryClient(registry.host, options);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    registry = await startRegistry({ tls: true, htpasswd: { username: USER, password: PASSWORD } });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.stop();
  });

  it("pushes and pulls with the registry's CA and the right credentials", async () => {
    const c = client({
      ca: registry.caPem,
      credentials: () => ({ username: USER, password: PASSWORD }),
    });
    const image = makeImage("oci");
    await pushImage(c, "secure/app", image, "v1");
    const got = await c.getManifest("secure/app", "v1");
    expect(got?.digest).toBe(image.manifest.digest);
    expect(await c.listTags("secure/app")).toEqual(["v1"]);
  });

  it("fails with TLS when the registry's CA is not trusted", async () => {
    const c = client({ credentials: () => ({ username: USER, password: PASSWORD }) });
    const err = await rejection(c.getManifest("secure/app", "v1"));
    expect(err.code).toBe("TLS");
    expect(err.details.url).toBe(`https://${registry.host}/v2/secure/app/manifests/v1`);
  });

  it("connects without the CA only when TLS verification is turned off", async () => {
    const c = client({
      insecureSkipTlsVerify: true,
      credentials: () => ({ username: USER, password: PASSWORD }),
    });
    expect(await c.getManifest("secure/app", "v1")).toBeDefined();
  });

  it("fails with AUTH_REQUIRED when there are no credentials for the registry", async () => {
    const c = client({ ca: registry.caPem, credentials: () => undefined });
    const err = await rejection(c.getManifest("secure/app", "v1"));
    expect(err.code).toBe("AUTH_REQUIRED");
    expect(err.message).toContain(`${registry.host}/secure/app`);
  });

  it("fails with AUTH_DENIED on a wrong password, and never prints the password", async () => {
    const wrong = "wrong-Passw0rd-value";
    const c = client({
      ca: registry.caPem,
      credentials: () => ({ username: USER, password: wrong }),
    });
    const err = await rejection(c.getManifest("secure/app", "v1"));
    expect(err.code).toBe("AUTH_DENIED");
    expect(err.message).toContain(`${registry.host}/secure/app`);
    const text = printable(err);
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(Buffer.from(`${USER}:${wrong}`).toString("base64"));
    expect(text).not.toContain(PASSWORD);
  });

  it("fails with AUTH_DENIED on a wrong password when pushing too", async () => {
    const c = client({
      ca: registry.caPem,
      credentials: () => ({ username: USER, password: "nope" }),
    });
    const image = makeImage("oci");
    const err = await rejection(c.pushBlob("secure/app", image.layer.digest, image.layer.bytes));
    expect(err.code).toBe("AUTH_DENIED");
  });
});
