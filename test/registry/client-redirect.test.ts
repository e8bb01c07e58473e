/**
 * Blob redirects: registries send blob GETs to CDNs on other origins. The
 * registry's credentials must never follow (security regression tests).
 */
import type { ServerResponse } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { RegistryClient } from "../../src/registry/client.js";
import { content } from "./content.js";
import { startFakeServer, type FakeServer, type SeenRequest } from "./fake-server.js";

const blob = content("the blob served by the CDN");
const creds = () => ({ username: "alice", password: "redirect-Secret-1" });

async function rejection(promise: Promise<unknown>): Promise<SigferryError> {
  try {
    await promise;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

/** A registry that wants `scheme` auth and redirects blob GETs to `target()`. */
function registryHandler(scheme: "basic" | "bearer", target: () => string) {
  return (req: SeenRequest, res: ServerResponse, self: FakeServer): void => {
    if (req.url.startsWith("/token")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: "registry-token-abc", expires_in: 300 }));
      return;
    }
    const auth = req.headers.authorization;
    const ok =
      scheme === "basic" ? auth?.startsWith("Basic ") : auth === "Bearer registry-token-abc";
    if (!ok) {
      const challenge =
        scheme === "basic"
          ? 'Basic realm="fake"'
          : `Bearer realm="${self.url}/token",service="fake",scope="repository:r:pull"`;
      res.writeHead(401, { "www-authenticate": challenge }).end();
      return;
    }
    if (req.url.startsWith("/v2/r/blobs/")) {
      res.writeHead(307, { location: target() }).end();
      return;
    }
    if (req.url.startsWith("/internal/")) {
      res.writeHead(200, { "content-length": blob.size }).end(blob.bytes);
      return;
    }
    res.writeHead(404).end();
  };
}

describe("when a blob GET redirects to another origin", () => {
  let cdn: FakeServer;
  let cdnBody: Uint8Array = blob.bytes;
  const servers: FakeServer[] = [];
  const clients: RegistryClient[] = [];

  beforeAll(async () => {
    cdn = await startFakeServer((_req, res) => {
      res.writeHead(200, { "content-length": cdnBody.length }).end(cdnBody);
    });
  });

  afterEach(async () => {
    cdnBody = blob.bytes;
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  afterAll(async () => {
    await cdn?.stop();
  });

  for (const scheme of ["basic", "bearer"] as const) {
    it(`sends the ${scheme} Authorization to the registry but not to the CDN`, async () => {
      const registry = await startFakeServer(
        registryHandler(scheme, () => `${cdn.url}/cdn/blob?X-Amz-Signature=presigned`),
      );
      servers.push(registry);
      const before = cdn.requests.length;
      const client = new RegistryClient(registry.host, { plainHttp: true, credentials: creds });
      clients.push(client);

      const bytes = await client.getBlob("r", blob.digest, 1024);

      expect(Buffer.from(bytes).equals(Buffer.from(blob.bytes))).toBe(true);
      const blobGets = registry.requests.filter((r) => r.url.startsWith("/v2/r/blobs/"));
      expect(blobGets.at(-1)?.headers.authorization).toMatch(
        scheme === "basic" ? /^Basic / : /^Bearer /,
      );
      const cdnGets = cdn.requests.slice(before);
      expect(cdnGets).toHaveLength(1);
      expect(cdnGets[0]?.url).toBe("/cdn/blob?X-Amz-Signature=presigned");
      expect(cdnGets[0]?.headers.authorization).toBeUndefined();
    });
  }

  it("does not send the Authorization on a HEAD redirected to the CDN either", async () => {
    const registry = await startFakeServer(registryHandler("basic", () => `${cdn.url}/cdn/blob`));
    servers.push(registry);
    const before = cdn.requests.length;
    const client = new RegistryClient(registry.host, { plainHttp: true, credentials: creds });
    clients.push(client);
    expect(await client.hasBlob("r", blob.digest)).toBe(true);
    expect(cdn.requests.slice(before).map((r) => [r.method, r.headers.authorization])).toEqual([
      ["HEAD", undefined],
    ]);
  });

  it("keeps the Authorization on a redirect within the registry's origin", async () => {
    const registry = await startFakeServer(registryHandler("basic", () => "/internal/blob"));
    servers.push(registry);
    const client = new RegistryClient(registry.host, { plainHttp: true, credentials: creds });
    clients.push(client);
    await client.getBlob("r", blob.digest, 1024);
    const internal = registry.requests.filter((r) => r.url === "/internal/blob");
    expect(internal).toHaveLength(1);
    expect(internal[0]?.headers.authorization).toMatch(/^Basic /);
  });

  it("rejects CDN bytes that do not match the digest, without printing the signed query", async () => {
    cdnBody = new TextEncoder().encode("substituted content");
    const registry = await startFakeServer(
      registryHandler("basic", () => `${cdn.url}/cdn/blob?X-Amz-Signature=presigned`),
    );
    servers.push(registry);
    const client = new RegistryClient(registry.host, { plainHttp: true, credentials: creds });
    clients.push(client);
    const err = await rejection(client.getBlob("r", blob.digest, 1024));
    expect(err.code).toBe("DIGEST_MISMATCH");
    expect(err.details.url).toBe(`${cdn.url}/cdn/blob`);
    expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain("presigned");
  });

  it("stops after a bounded number of redirects", async () => {
    const registry = await startFakeServer(registryHandler("basic", () => "/v2/r/blobs/again"));
    servers.push(registry);
    const client = new RegistryClient(registry.host, { plainHttp: true, credentials: creds });
    clients.push(client);
    const err = await rejection(client.getBlob("r", blob.digest, 1024));
    expect(err.code).toBe("REGISTRY_PROTOCOL");
  });
});
