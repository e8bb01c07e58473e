/**
 * Every HTTP client of sigferry — registry, signature store, update graph,
 * Kubernetes API — under the shared policy: a server that accepts and never
 * answers, one that sends headers and stalls the body, and one that trickles
 * forever cannot hang a run; 429/5xx and resets are retried; 4xx that will
 * not change is not; a refused connection fails at once; and a blob upload
 * whose session broke starts over rather than reusing it.
 */
import type { ServerResponse } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../../src/cluster/client.js";
import type { KubeTarget } from "../../src/cluster/kubeconfig.js";
import type { Digest } from "../../src/core/digest.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import type { NetPolicy } from "../../src/net/policy.js";
import { RegistryClient, sha256Digest } from "../../src/registry/client.js";
import { fetchGraph } from "../../src/sources/graph.js";
import { SignatureStoreClient } from "../../src/sources/signature-store.js";
import { startFakeServer, type FakeServer, type SeenRequest } from "../registry/fake-server.js";
import { startFaultProxy, type FaultKind, type FaultProxy } from "../world/fault-proxy.js";
import { freePort, startRegistry, type RegistryHandle } from "../world/registry.js";

/**
 * Short timeouts: an attempt hearing nothing for 200 ms is over (undici checks
 * header and body timeouts on a timer wheel with about 1 s resolution, so in
 * practice within 1 s); 3 attempts within 6 s.
 */
const NET: Partial<NetPolicy> = {
  attempts: 3,
  deadlineMs: 6_000,
  backoffMs: 10,
  maxBackoffMs: 40,
  maxRetryAfterMs: 300,
  connectTimeoutMs: 500,
  headersTimeoutMs: 200,
  bodyTimeoutMs: 200,
};
const DIGEST: Digest = `sha256:${"ab".repeat(32)}`;

type Handler = (req: SeenRequest, res: ServerResponse) => void;

let server: FakeServer;
let handler: Handler = (_req, res) => res.writeHead(404).end();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  server = await startFakeServer((req, res) => handler(req, res));
});
afterEach(() => {
  for (const t of timers) clearInterval(t);
  timers.clear();
  server.requests.length = 0;
});
afterAll(async () => {
  await server.stop();
});

/** Requests for the first thing asked (a store client goes on to signature-2.. after signature-1). */
function asked(): number {
  return server.requests.filter((r) => !/\/signature-[2-9]$/.test(r.url)).length;
}

/** Never answers. */
const silent: Handler = () => undefined;
/** Headers and 10 of 100 promised bytes, then nothing. */
const headersThenStall: Handler = (_req, res) => {
  res.writeHead(200, { "content-length": 100, "content-type": "application/json" });
  res.write("{".padEnd(10, " "));
};
/** One byte every 100 ms, forever: never silent long enough for a read timeout. */
const trickle: Handler = (_req, res) => {
  res.writeHead(200, { "content-length": 1_000_000, "content-type": "application/json" });
  const t = setInterval(() => res.write(" "), 100);
  timers.add(t);
  res.on("close", () => clearInterval(t));
};
/** Answers `statuses` in turn, then `then`. */
function sequence(
  statuses: number[],
  then: Handler,
  headers: Record<string, string> = {},
): Handler {
  let i = 0;
  return (req, res) => {
    const status = statuses[i++];
    if (status === undefined) then(req, res);
    else res.writeHead(status, { "content-length": 0, ...headers }).end();
  };
}

async function failure(p: Promise<unknown>): Promise<SigferryError> {
  try {
    await p;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

/** One call per client, each failing with the error it maps to. */
const clients: Record<string, (net?: Partial<NetPolicy>, base?: string) => Promise<unknown>> = {
  registry: async (net = NET, base = server.host) => {
    const c = new RegistryClient(base, { plainHttp: true, net });
    try {
      return await c.getManifest("r", "v1");
    } finally {
      await c.close();
    }
  },
  "signature store": async (net = NET, base = server.host) => {
    const c = new SignatureStoreClient({ net });
    try {
      const listing = await c.list(`http://${base}/store`, DIGEST);
      if (listing.errors[0]) throw listing.errors[0].error;
      return listing;
    } finally {
      await c.close();
    }
  },
  "update graph": (net = NET, base = server.host) =>
    fetchGraph({ graphUrl: `http://${base}/graph`, channel: "stable-4.21", arch: "amd64", net }),
  "Kubernetes API": async (net = NET, base = server.host) => {
    const target: KubeTarget = { server: `http://${base}`, contextName: "t", token: "t0ken" };
    const c = new KubeClient(target, { net });
    try {
      return await c.serverVersion();
    } finally {
      await c.close();
    }
  },
};

/** A good answer for each client's request. */
const good: Handler = (req, res) => {
  if (req.url.startsWith("/store/")) {
    if (req.url.endsWith("/signature-1")) res.writeHead(200).end("signature bytes");
    else res.writeHead(404).end();
  } else if (req.url.startsWith("/graph")) {
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        version: 1,
        nodes: [
          { version: "4.21.0", payload: `quay.io/openshift-release-dev/ocp-release@${DIGEST}` },
        ],
        edges: [],
        conditionalEdges: [],
      }),
    );
  } else if (req.url === "/version") {
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ major: "1", minor: "32", gitVersion: "v1.32.4" }));
  } else {
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
    });
    res
      .writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" })
      .end(manifest);
  }
};

for (const [name, call] of Object.entries(clients)) {
  describe(`the ${name} client`, () => {
    it("gives up on a server that accepts and never answers: TIMEOUT, after a retry, within the deadline", async () => {
      handler = silent;
      const [err, ms] = await timed(failure(call({ ...NET, attempts: 2 })));
      expect(err.code).toBe("TIMEOUT");
      expect(asked()).toBe(2);
      expect(ms).toBeLessThan(6_000);
    });

    it("gives up on a server that sends headers and stalls the body", async () => {
      handler = headersThenStall;
      const [err, ms] = await timed(failure(call({ ...NET, attempts: 2 })));
      expect(err.code).toBe("TIMEOUT");
      expect(asked()).toBe(2);
      expect(ms).toBeLessThan(6_000);
    });

    it("ends a body that trickles forever at the request's deadline", async () => {
      handler = trickle;
      const [err, ms] = await timed(failure(call({ ...NET, deadlineMs: 800 })));
      expect(err.code).toBe("TIMEOUT");
      expect(err.message).toContain("within 800 ms");
      expect(ms).toBeGreaterThanOrEqual(750);
      expect(ms).toBeLessThan(1_500);
    });

    it("retries 503 and 502 and then succeeds", async () => {
      handler = sequence([503, 502], good);
      await call();
      expect(asked()).toBe(3);
    });

    it("honours Retry-After on a 429 (capped by the policy)", async () => {
      handler = sequence([429], good, { "retry-after": "1" });
      const [, ms] = await timed(call());
      expect(asked()).toBe(2);
      // 1 s asked, 300 ms allowed by the policy.
      expect(ms).toBeGreaterThanOrEqual(280);
      expect(ms).toBeLessThan(900);
    });

    it("does not retry a 403", async () => {
      handler = sequence([403, 403, 403], good);
      await failure(call());
      expect(asked()).toBe(1);
    });

    it("fails at once on a refused connection (nothing listens there)", async () => {
      const port = await freePort();
      const [err, ms] = await timed(failure(call(NET, `127.0.0.1:${port}`)));
      expect(["NETWORK", "STORE_UNREACHABLE"]).toContain(err.code);
      expect(ms).toBeLessThan(300);
    });
  });
}

describe("a connection reset", () => {
  let raw: Server;
  let port: number;
  let n = 0;
  beforeAll(async () => {
    // The first connection is reset after the request arrives; later ones are proxied to the fake server.
    raw = createServer((socket: Socket) => {
      if (n++ === 0) {
        socket.once("data", () => socket.resetAndDestroy());
        return;
      }
      const [host, p] = server.host.split(":");
      import("node:net").then(
        ({ connect }) => {
          const up = connect(Number(p), host);
          socket.pipe(up).pipe(socket);
          up.on("error", () => socket.destroy());
          socket.on("error", () => up.destroy());
        },
        () => socket.destroy(),
      );
    });
    await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
    port = (raw.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => raw.close(() => resolve()));
  });
  for (const [name, call] of Object.entries(clients)) {
    it(`is retried by the ${name} client`, async () => {
      n = 0;
      handler = good;
      await call(NET, `127.0.0.1:${port}`);
      expect(n).toBeGreaterThanOrEqual(2);
    });
  }
});

describe("the signature store client", () => {
  it("takes 404 as the end of the list: one request, no retry", async () => {
    handler = sequence([404], good);
    const c = new SignatureStoreClient({ net: NET });
    const listing = await c.list(`http://${server.host}/store`, DIGEST);
    await c.close();
    expect(listing.signatures).toEqual([]);
    expect(listing.errors).toEqual([]);
    expect(server.requests.length).toBe(1);
  });

  it("records a slot still failing 500 after the retries, and goes on to the next", async () => {
    handler = sequence([500, 500, 500], good);
    const c = new SignatureStoreClient({ net: NET });
    const listing = await c.list(`http://${server.host}/store`, DIGEST);
    await c.close();
    expect(listing.errors.map((e) => [e.index, e.error.code, e.error.details.status])).toEqual([
      [1, "HTTP_STATUS", 500],
    ]);
    // signature-1 three times, then signature-2: a 404.
    expect(server.requests.map((r) => r.url.split("/").pop())).toEqual([
      "signature-1",
      "signature-1",
      "signature-1",
      "signature-2",
    ]);
  });
});

describe("the registry client", () => {
  it("does not retry a 404, nor a 401 that a fresh token does not cure", async () => {
    handler = sequence([404], good);
    expect(await clients.registry!()).toBeUndefined();
    expect(server.requests.length).toBe(1);
    server.requests.length = 0;
    handler = (req, res) => {
      if (req.url.startsWith("/token")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ token: "tok", expires_in: 300 }));
        return;
      }
      res
        .writeHead(401, { "www-authenticate": `Bearer realm="${server.url}/token",service="s"` })
        .end();
    };
    const err = await failure(clients.registry!());
    expect(err.code).toBe("AUTH_REQUIRED");
    // The challenge, the token, the retry with it: then the 401 is final.
    expect(server.requests.map((r) => r.url.split("?")[0])).toEqual([
      "/v2/r/manifests/v1",
      "/token",
      "/v2/r/manifests/v1",
    ]);
  });
});

describe("a blob upload against a real registry behind the fault proxy", () => {
  let registry: RegistryHandle;
  let proxy: FaultProxy;
  let fault: { method: string; kind: FaultKind } | undefined;
  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy({
      target: registry.url,
      decide: (req) => {
        if (fault === undefined || req.method !== fault.method) return undefined;
        const kind = fault.kind;
        fault = undefined;
        return kind;
      },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  const cases: [string, string, FaultKind, string[], string][] = [
    // The PUT stored the blob but its answer was lost: the restart's HEAD finds it.
    ["the PUT's answer is lost", "PUT", "reset-after", ["HEAD", "POST", "PUT", "HEAD"], "exists"],
    // The session was opened but its Location lost: a new session, never a guessed one.
    [
      "the POST's answer is lost",
      "POST",
      "reset-after",
      ["HEAD", "POST", "HEAD", "POST", "PUT"],
      "uploaded",
    ],
    [
      "the PUT fails with 500",
      "PUT",
      "500",
      ["HEAD", "POST", "PUT", "HEAD", "POST", "PUT"],
      "uploaded",
    ],
  ];
  for (const [when, method, kind, methods, result] of cases) {
    it(`starts over from the HEAD when ${when}`, async () => {
      const bytes = new TextEncoder().encode(`blob for ${when}`);
      const digest = sha256Digest(bytes);
      const c = new RegistryClient(proxy.host, { plainHttp: true, net: NET });
      const first = proxy.count();
      fault = { method, kind };
      try {
        expect(await c.pushBlob(`upload/${method.toLowerCase()}-${kind}`, digest, bytes)).toBe(
          result,
        );
        expect(await c.getBlob(`upload/${method.toLowerCase()}-${kind}`, digest, 1024)).toEqual(
          bytes,
        );
      } finally {
        await c.close();
      }
      expect(proxy.log.slice(first, first + methods.length).map((e) => e.method)).toEqual(methods);
    });
  }

  it("retries a blob whose body was cut short and gets the whole of it", async () => {
    const bytes = new TextEncoder().encode("x".repeat(4096));
    const digest = sha256Digest(bytes);
    const c = new RegistryClient(proxy.host, { plainHttp: true, net: NET });
    try {
      await c.pushBlob("upload/truncated", digest, bytes);
      fault = { method: "GET", kind: "truncate" };
      expect(await c.getBlob("upload/truncated", digest, 8192)).toEqual(bytes);
    } finally {
      await c.close();
    }
    expect(proxy.faults().get("truncate")).toBe(1);
  });
});
