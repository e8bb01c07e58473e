/**
 * The registry client against scripted servers: what a real registry may do
 * but distribution will not on request (lie, paginate, hang, refuse).
 */
import type { ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { mergeScopes, RegistryClient } from "../../src/registry/client.js";
import { OCI_MANIFEST } from "../../src/registry/types.js";
import { freePort } from "../world/registry.js";
import { content, makeImage } from "./content.js";
import { startFakeServer, type FakeServer, type SeenRequest } from "./fake-server.js";

async function rejection(promise: Promise<unknown>): Promise<SigferryError> {
  try {
    await promise;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

const servers: FakeServer[] = [];
const clients: RegistryClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function fake(
  handler: (req: SeenRequest, res: ServerResponse, self: FakeServer) => void,
  options: ConstructorParameters<typeof RegistryClient>[1] = {},
): Promise<{ server: FakeServer; client: RegistryClient }> {
  const server = await startFakeServer(handler);
  servers.push(server);
  const client = new RegistryClient(server.host, { plainHttp: true, ...options });
  clients.push(client);
  return { server, client };
}

describe("when a registry serves a manifest", () => {
  const image = makeImage("oci");

  it("rejects bytes that do not hash to the digest asked for", async () => {
    const other = makeImage("oci");
    const { client } = await fake((_req, res) => {
      res
        .writeHead(200, {
          "content-type": OCI_MANIFEST,
          "docker-content-digest": image.manifest.digest,
        })
        .end(other.manifest.bytes);
    });
    const err = await rejection(client.getManifest("r", image.manifest.digest));
    expect(err.code).toBe("DIGEST_MISMATCH");
    expect(err.details.digest).toBe(image.manifest.digest);
  });

  it("computes the digest from the bytes, not from Docker-Content-Digest", async () => {
    const other = makeImage("oci");
    const { client } = await fake((_req, res) => {
      res
        .writeHead(200, {
          "content-type": OCI_MANIFEST,
          "docker-content-digest": other.manifest.digest,
        })
        .end(image.manifest.bytes);
    });
    expect((await client.getManifest("r", "v1"))?.digest).toBe(image.manifest.digest);
  });

  it("takes the media type from the body when the Content-Type is generic", async () => {
    const { client } = await fake((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(image.manifest.bytes);
    });
    expect((await client.getManifest("r", "v1"))?.mediaType).toBe(OCI_MANIFEST);
  });

  it("sends every manifest and index media type in Accept", async () => {
    const { server, client } = await fake((_req, res) => {
      res.writeHead(200, { "content-type": OCI_MANIFEST }).end(image.manifest.bytes);
    });
    await client.getManifest("r", "v1");
    const accept = server.requests[0]?.headers.accept ?? "";
    expect(accept).toContain("application/vnd.oci.image.index.v1+json");
    expect(accept).toContain("application/vnd.docker.distribution.manifest.list.v2+json");
    expect(accept).toContain("application/vnd.oci.image.manifest.v1+json");
    expect(accept).toContain("application/vnd.docker.distribution.manifest.v2+json");
  });

  it("refuses a manifest larger than the limit", async () => {
    const { client } = await fake((_req, res) => {
      res.writeHead(200, { "content-type": OCI_MANIFEST }).end(Buffer.alloc(5000, 32));
    });
    const err = await rejection(client.getManifest("r", "v1", undefined, 1000));
    expect(err.code).toBe("REGISTRY_PROTOCOL");
  });

  it("refuses a manifest whose chunked body runs past the limit", async () => {
    const { client } = await fake((_req, res) => {
      res.writeHead(200, { "content-type": OCI_MANIFEST });
      res.write(Buffer.alloc(800, 32));
      res.end(Buffer.alloc(800, 32));
    });
    const err = await rejection(client.getManifest("r", "v1", undefined, 1000));
    expect(err.code).toBe("REGISTRY_PROTOCOL");
  });
});

describe("when pushing", () => {
  it("follows a relative upload Location and appends the digest to its query", async () => {
    const blob = content("relative location blob");
    const { server, client } = await fake((req, res) => {
      if (req.method === "HEAD") res.writeHead(404).end();
      else if (req.method === "POST")
        res.writeHead(202, { location: "/upload/abc?_state=x%2By" }).end();
      else if (req.method === "PUT")
        res.writeHead(201, { "docker-content-digest": blob.digest }).end();
      else res.writeHead(500).end();
    });
    expect(await client.pushBlob("r", blob.digest, blob.bytes)).toBe("uploaded");
    const put = server.requests.find((r) => r.method === "PUT");
    expect(put?.url).toBe(`/upload/abc?_state=x%2By&digest=${encodeURIComponent(blob.digest)}`);
    expect(put?.body.equals(Buffer.from(blob.bytes))).toBe(true);
    expect(put?.headers["content-type"]).toBe("application/octet-stream");
  });

  it("rejects a registry that says it stored a manifest under another digest", async () => {
    const image = makeImage("oci");
    const { client } = await fake((_req, res) => {
      res.writeHead(201, { "docker-content-digest": image.config.digest }).end();
    });
    const err = await rejection(
      client.putManifest("r", "v1", image.manifest.bytes, image.manifest.mediaType),
    );
    expect(err.code).toBe("DIGEST_MISMATCH");
  });
});

describe("when listing tags", () => {
  it("follows Link rel=next pages to the end", async () => {
    const pages: Record<string, { tags: string[]; next?: string }> = {
      "/v2/r/tags/list": { tags: ["a", "b"], next: "/v2/r/tags/list?n=2&last=b" },
      "/v2/r/tags/list?n=2&last=b": { tags: ["c", "d"], next: "/v2/r/tags/list?n=2&last=d" },
      "/v2/r/tags/list?n=2&last=d": { tags: ["e"] },
    };
    const { client } = await fake((req, res) => {
      const page = pages[req.url];
      if (!page) return void res.writeHead(404).end();
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (page.next) headers.link = `<${page.next}>; rel="next"`;
      res.writeHead(200, headers).end(JSON.stringify({ name: "r", tags: page.tags }));
    });
    expect(await client.listTags("r")).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("stops a tag list whose pages loop", async () => {
    const { client } = await fake((_req, res) => {
      res
        .writeHead(200, { link: '</v2/r/tags/list>; rel="next"' })
        .end(JSON.stringify({ tags: ["a"] }));
    });
    expect((await rejection(client.listTags("r"))).code).toBe("REGISTRY_PROTOCOL");
  });
});

describe("when the registry refuses or fails", () => {
  it("maps 403 to AUTH_DENIED naming the registry and repository", async () => {
    const { server, client } = await fake((_req, res) => res.writeHead(403).end());
    const err = await rejection(client.getManifest("team/app", "v1"));
    expect(err.code).toBe("AUTH_DENIED");
    expect(err.message).toContain(`${server.host}/team/app`);
  });

  it("maps a 5xx to HTTP_STATUS with the registry's error code", async () => {
    const { client } = await fake(
      (_req, res) => {
        res
          .writeHead(500, { "content-type": "application/json" })
          .end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "disk on fire" }] }));
      },
      { net: { attempts: 1 } },
    );
    const err = await rejection(client.getManifest("r", "v1"));
    expect(err.code).toBe("HTTP_STATUS");
    expect(err.details.status).toBe(500);
    expect(err.message).toContain("UNKNOWN (disk on fire)");
  });

  it("maps a refused connection to NETWORK with the URL in the details", async () => {
    const port = await freePort();
    const client = new RegistryClient(`127.0.0.1:${port}`, { plainHttp: true });
    clients.push(client);
    const err = await rejection(client.getManifest("r", "v1"));
    expect(err.code).toBe("NETWORK");
    expect(err.details.url).toBe(`http://127.0.0.1:${port}/v2/r/manifests/v1`);
  });

  it("maps a registry that never answers to TIMEOUT", async () => {
    const { client } = await fake(() => undefined, { timeoutMs: 300, net: { attempts: 1 } });
    const err = await rejection(client.getManifest("r", "v1"));
    expect(err.code).toBe("TIMEOUT");
  });

  it("maps an abort to INTERRUPTED", async () => {
    const controller = new AbortController();
    const { client } = await fake(() => controller.abort(), { signal: controller.signal });
    const err = await rejection(client.getManifest("r", "v1"));
    expect(err.code).toBe("INTERRUPTED");
  });

  it("maps plain http spoken to a TLS client to TLS", async () => {
    const server = await startFakeServer((_req, res) => res.writeHead(200).end());
    servers.push(server);
    const client = new RegistryClient(server.host, {});
    clients.push(client);
    const err = await rejection(client.getManifest("r", "v1"));
    expect(err.code).toBe("TLS");
  });
});

describe("when the registry uses tokens", () => {
  it("accepts access_token, and fetches a fresh token once when a cached one is refused", async () => {
    let issued = 0;
    let valid = "";
    const image = makeImage("oci");
    const { server, client } = await fake(
      (req, res, self) => {
        if (req.url.startsWith("/token")) {
          issued++;
          valid = `tok-${issued}`;
          res.writeHead(200).end(JSON.stringify({ access_token: valid }));
          return;
        }
        if (req.headers.authorization !== `Bearer ${valid}`) {
          res
            .writeHead(401, {
              "www-authenticate": `Bearer realm="${self.url}/token",service="svc",scope="repository:r:pull"`,
            })
            .end();
          return;
        }
        res.writeHead(200, { "content-type": OCI_MANIFEST }).end(image.manifest.bytes);
      },
      { credentials: () => ({ username: "u", password: "p" }) },
    );
    await client.getManifest("r", "v1");
    await client.getManifest("r", "v1");
    expect(issued).toBe(1);
    valid = "rotated"; // the registry forgets the token: as if it expired
    await client.getManifest("r", "v1");
    expect(issued).toBe(2);
    const tokenRequest = server.requests.find((r) => r.url.startsWith("/token"));
    expect(tokenRequest?.url).toBe("/token?service=svc&scope=repository%3Ar%3Apull");
    expect(tokenRequest?.headers.authorization).toBe(
      `Basic ${Buffer.from("u:p").toString("base64")}`,
    );
  });

  it("shares one token fetch among concurrent first requests", async () => {
    let issued = 0;
    const { client } = await fake((req, res, self) => {
      if (req.url.startsWith("/token")) {
        issued++;
        setTimeout(() => res.writeHead(200).end(JSON.stringify({ token: "t" })), 50);
        return;
      }
      if (req.headers.authorization !== "Bearer t") {
        res
          .writeHead(401, { "www-authenticate": `Bearer realm="${self.url}/token",service="s"` })
          .end();
        return;
      }
      res.writeHead(404).end();
    });
    const blob = content("x");
    await Promise.all(Array.from({ length: 8 }, () => client.hasBlob("r", blob.digest)));
    expect(issued).toBe(1);
  });
});

describe("mergeScopes", () => {
  it("merges the actions of one resource and sorts", () => {
    expect(
      mergeScopes([
        "repository:b:pull",
        "repository:a:push",
        "repository:a:pull",
        "repository:b:pull",
      ]),
    ).toEqual(["repository:a:pull,push", "repository:b:pull"]);
  });
});
