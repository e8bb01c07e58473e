/**
 * src/net/undici.ts reaches into undici's private lib/ layout to avoid loading
 * all of undici. These tests guard an undici upgrade: the deep modules still
 * load without index.js, and request behaves as undici's top-level one does.
 */
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createRequire } from "node:module";
import { connect, type AddressInfo } from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, EnvHttpProxyAgent, request } from "../../src/net/undici.js";
import { REPO_ROOT } from "../helpers/paths.js";

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const seen: Seen[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url === "/hang") return; // never answers: for the abort test
      res.writeHead(201, { "content-type": "text/plain", "x-echo": req.headers["x-probe"] ?? "" });
      res.end(`hello ${req.method} ${req.url}`);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("loading", () => {
  it("leaves undici's index.js (fetch, mocks, caches) and its global dispatcher unloaded", () => {
    // The built modules (dist/ comes from the vitest global setup): the wrapper
    // and every module that makes requests, so a stray `from "undici"` shows too.
    const modules = [
      "net/undici.js",
      "registry/client.js",
      "sources/graph.js",
      "sources/signature-store.js",
      "verify/load-trust.js",
      "cluster/client.js",
    ].map((m) => pathToFileURL(path.join(REPO_ROOT, "dist", m)).href);
    const script = [
      `import { createRequire } from "node:module";`,
      ...modules.map((m) => `await import(${JSON.stringify(m)});`),
      `const cache = createRequire(import.meta.url).cache;`,
      `process.stdout.write(JSON.stringify(Object.keys(cache)));`,
    ].join("\n");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    });
    const loaded = (JSON.parse(out) as string[]).map((p) => p.split(path.sep).join("/"));
    const undici = loaded.filter((p) => p.includes("/node_modules/undici/"));
    // Positive control: the cache does hold what the wrapper loaded.
    expect(undici.some((p) => p.endsWith("/lib/dispatcher/agent.js"))).toBe(true);
    expect(undici.some((p) => p.endsWith("/lib/api/api-request.js"))).toBe(true);
    expect(undici.filter((p) => p.endsWith("/undici/index.js"))).toEqual([]);
    expect(undici.filter((p) => /\/lib\/(web|mock|cache)\//.test(p))).toEqual([]);
    expect(undici.filter((p) => p.endsWith("/lib/global.js"))).toEqual([]);
  });
});

describe("request", () => {
  it("sends method, headers and body; returns status, headers and body", async () => {
    const dispatcher = new Agent();
    try {
      seen.length = 0;
      const res = await request(`${base}/a/b?x=1&y=2`, {
        dispatcher,
        method: "POST",
        headers: { "x-probe": "42", "content-type": "text/plain" },
        body: "payload",
      });
      expect(res.statusCode).toBe(201);
      expect(res.headers["content-type"]).toBe("text/plain");
      expect(res.headers["x-echo"]).toBe("42");
      expect(await res.body.text()).toBe("hello POST /a/b?x=1&y=2");
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ method: "POST", url: "/a/b?x=1&y=2", body: "payload" });
      expect(seen[0]!.headers["x-probe"]).toBe("42");
    } finally {
      await dispatcher.close();
    }
  });

  it("takes a URL object, and defaults the method as undici does (GET, or PUT with a body)", async () => {
    const dispatcher = new Agent();
    try {
      seen.length = 0;
      await (await request(new URL(`${base}/u`), { dispatcher })).body.dump();
      await (await request(`${base}/v`, { dispatcher, body: "b" })).body.dump();
      expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual(["GET /u ", "PUT /v b"]);
    } finally {
      await dispatcher.close();
    }
  });

  it("honours an abort signal while waiting for the answer", async () => {
    const dispatcher = new Agent();
    try {
      const controller = new AbortController();
      const pending = request(`${base}/hang`, { dispatcher, signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      const err = (await pending.then(
        () => undefined,
        (e: unknown) => e,
      )) as Error | undefined;
      expect(err?.name).toBe("AbortError");
    } finally {
      await dispatcher.destroy();
    }
  });

  it("rejects a bad URL, and refuses to run without a dispatcher", () => {
    const dispatcher = new Agent();
    expect(() => request("ftp://127.0.0.1/x", { dispatcher })).toThrow(
      expect.objectContaining({ code: "UND_ERR_INVALID_ARG" }),
    );
    // @ts-expect-error: the type requires one; the run-time check is for JS callers.
    expect(() => request(`${base}/x`, {})).toThrow(/no dispatcher/);
  });
});

describe("EnvHttpProxyAgent", () => {
  it("sends through the proxy named by HTTP_PROXY", async () => {
    // Had anything in this process loaded undici's index.js, its patching of
    // Dispatcher.prototype would hide a missing one in src/net/undici.ts.
    const cached = Object.keys(createRequire(import.meta.url).cache);
    expect(cached.filter((p) => /[\\/]undici[\\/]index\.js$/.test(p))).toEqual([]);

    // A forward proxy that only tunnels (undici's ProxyAgent uses CONNECT even for http://).
    const tunnels: string[] = [];
    const proxy = createServer((_req, res) => res.writeHead(405).end());
    proxy.on("connect", (req, client: Duplex) => {
      tunnels.push(req.url ?? "");
      const [host, port] = (req.url ?? "").split(":");
      const upstream = connect(Number(port), host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.pipe(client).pipe(upstream);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
    proxy.listen(0, "127.0.0.1");
    await once(proxy, "listening");
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    // EnvHttpProxyAgent reads the environment when it is built; restore it right after.
    const names = ["http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"] as const;
    const saved = names.map((n) => process.env[n]);
    for (const n of names) delete process.env[n];
    process.env.HTTP_PROXY = proxyUrl;
    let dispatcher: EnvHttpProxyAgent;
    try {
      dispatcher = new EnvHttpProxyAgent();
    } finally {
      names.forEach((n, i) => {
        if (saved[i] === undefined) delete process.env[n];
        else process.env[n] = saved[i];
      });
    }

    try {
      seen.length = 0;
      const res = await request(`${base}/through?p=1`, {
        dispatcher,
        method: "PATCH",
        headers: { "x-probe": "via-proxy" },
        body: "tunnelled",
      });
      expect(res.statusCode).toBe(201);
      expect(res.headers["x-echo"]).toBe("via-proxy");
      expect(await res.body.text()).toBe("hello PATCH /through?p=1");
      expect(seen[0]).toMatchObject({ method: "PATCH", url: "/through?p=1", body: "tunnelled" });
      expect(tunnels).toEqual([new URL(base).host]);
    } finally {
      await dispatcher.close();
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
