/**
 * fetchGraph against a local node:http server on 127.0.0.1 that serves the real
 * graph files, records what it was asked, and misbehaves on request.
 */
import { readFileSync } from "node:fs";
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_GRAPH_URL, fetchGraph, graphRequestUrl } from "../../src/sources/graph.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { real } from "../helpers/paths.js";

interface Seen {
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

type Reply = (res: ServerResponse) => void;

const seen: Seen[] = [];
let reply: Reply;
let server: Server;
let base: string;
const dispatcher = new Agent({ keepAliveTimeout: 10 });

const graphFile = (name: string) => readFileSync(real("cincinnati-graphs", name));
const json =
  (status: number, body: string | Buffer): Reply =>
  (res) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(body);
  };

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    seen.push({ path: url.pathname, query: url.searchParams, headers: req.headers });
    reply(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/upgrades_info/v1/graph`;
});

afterAll(async () => {
  await dispatcher.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen.length = 0;
});

async function fetchError(
  options: Partial<Parameters<typeof fetchGraph>[0]> = {},
): Promise<SigferryError> {
  try {
    await fetchGraph({
      graphUrl: base,
      channel: "stable-4.13",
      arch: "amd64",
      dispatcher,
      ...options,
    });
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected fetchGraph to fail");
}

describe("fetchGraph", () => {
  it("fetches a real graph, asking for the channel and arch with Accept: application/json", async () => {
    reply = json(200, graphFile("stable-4.13-amd64.json"));
    const graph = await fetchGraph({
      graphUrl: base,
      channel: "stable-4.13",
      arch: "amd64",
      dispatcher,
    });
    expect(graph.nodes).toHaveLength(98);
    expect(graph.conditionalEdges).toHaveLength(37);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.path).toBe("/api/upgrades_info/v1/graph");
    expect(seen[0]!.query.get("channel")).toBe("stable-4.13");
    expect(seen[0]!.query.get("arch")).toBe("amd64");
    expect(seen[0]!.headers.accept).toBe("application/json");
    expect(graph.source).toBe(`${base}?channel=stable-4.13&arch=amd64`);
  });

  it("maps tag arch names to graph arch names (s390x stays, x86_64 → amd64, aarch64 → arm64)", async () => {
    reply = json(200, graphFile("stable-4.9-s390x.json"));
    const graph = await fetchGraph({
      graphUrl: base,
      channel: "stable-4.9",
      arch: "s390x",
      dispatcher,
    });
    expect(graph.nodes).toHaveLength(90);
    await fetchGraph({ graphUrl: base, channel: "stable-4.9", arch: "x86_64", dispatcher });
    await fetchGraph({ graphUrl: base, channel: "stable-4.9", arch: "aarch64", dispatcher });
    expect(seen.map((s) => s.query.get("arch"))).toEqual(["s390x", "amd64", "arm64"]);
  });

  it("fetches the multi graph with arch=multi", async () => {
    reply = json(200, graphFile("candidate-4.12-multi.json"));
    const graph = await fetchGraph({
      graphUrl: base,
      channel: "candidate-4.12",
      arch: "multi",
      dispatcher,
    });
    expect(graph.nodes.map((n) => n.version)).toContain("4.12.0-rc.4");
    expect(seen[0]!.query.get("arch")).toBe("multi");
  });

  it("keeps query parameters already in --graph-url and replaces channel and arch", () => {
    expect(
      graphRequestUrl("https://osus.example/graph?id=abc&channel=old", "fast-4.15", "arm64"),
    ).toBe("https://osus.example/graph?id=abc&channel=fast-4.15&arch=arm64");
    expect(graphRequestUrl(DEFAULT_GRAPH_URL, "stable-4.13", "x86_64")).toBe(
      "https://api.openshift.com/api/upgrades_info/v1/graph?channel=stable-4.13&arch=amd64",
    );
  });

  it("rejects a --graph-url that is not http(s)", () => {
    expect(() => graphRequestUrl("file:///etc/passwd", "stable-4.13", "amd64")).toThrow(
      /not an http\(s\) URL/,
    );
    expect(() => graphRequestUrl("not a url", "stable-4.13", "amd64")).toThrow(/not a URL/);
  });

  it("turns a 404 with the service's error JSON into GRAPH_UNAVAILABLE naming URL, channel, arch and the service's words", async () => {
    // The error shape of openshift/cincinnati commons/src/errors.rs.
    reply = json(
      404,
      JSON.stringify({ kind: "does_not_exist", value: "does not exist: stable-9.99" }),
    );
    const err = await fetchError({ channel: "stable-9.99" });
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain(`${base}?channel=stable-9.99&arch=amd64`);
    expect(err.message).toContain("channel stable-9.99, arch amd64");
    expect(err.message).toContain("answered 404: does_not_exist: does not exist: stable-9.99");
    expect(err.details).toMatchObject({ status: 404, channel: "stable-9.99", arch: "amd64" });
  });

  it("turns a 400 (no versions in the channel) into GRAPH_UNAVAILABLE", async () => {
    reply = json(400, JSON.stringify({ kind: "no_versions_found", value: "no versions found: x" }));
    const err = await fetchError();
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain("answered 400: no_versions_found");
  });

  it("turns an HTML error page into GRAPH_UNAVAILABLE quoting its start", async () => {
    reply = (res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end("<html><body>Bad Gateway</body></html>");
    };
    // One attempt: retrying a 502 is test/reliability's subject, not this message's.
    const err = await fetchError({ net: { attempts: 1 } });
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain('answered 502: "<html><body>Bad Gateway</body></html>"');
  });

  it("turns a 200 with garbage into GRAPH_UNAVAILABLE naming the URL", async () => {
    reply = json(200, "<!doctype html><title>captive portal</title>");
    const err = await fetchError();
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain(base);
    expect(err.message).toContain("not JSON");
  });

  it("turns JSON that is not a graph into GRAPH_UNAVAILABLE naming the bad field", async () => {
    reply = json(
      200,
      JSON.stringify({ nodes: [{ version: "4.13.0", payload: "quay.io/x/y:latest" }], edges: [] }),
    );
    const err = await fetchError();
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain(base);
    expect(err.message).toContain("nodes[0].payload");
  });

  it("turns an empty graph (unknown channel answered 200) into GRAPH_UNAVAILABLE", async () => {
    reply = json(200, JSON.stringify({ version: 1, nodes: [], edges: [], conditionalEdges: [] }));
    const err = await fetchError({ channel: "stabel-4.13" });
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain("channel stabel-4.13");
    expect(err.message).toContain("no releases");
  });

  it("does not follow redirects, and says where it was sent", async () => {
    reply = (res) => {
      res.writeHead(302, { location: "https://elsewhere.example/graph" });
      res.end();
    };
    const err = await fetchError();
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain("redirect to https://elsewhere.example/graph");
  });

  it("stops reading past the size cap", async () => {
    // Security: a hostile or broken service must not make us buffer without bound.
    reply = json(200, graphFile("stable-4.13-amd64.json"));
    const err = await fetchError({ maxBytes: 1024 });
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain("1024-byte limit");
    reply = (res) => {
      res.writeHead(200, { "content-type": "application/json" }); // chunked, no length
      res.write(" ".repeat(800));
      res.end(" ".repeat(800));
    };
    expect((await fetchError({ maxBytes: 1024 })).message).toContain(
      "larger than the 1024-byte limit",
    );
  });

  it("reports a service that does not answer in time as TIMEOUT", async () => {
    reply = () => {
      /* never answer */
    };
    const err = await fetchError({ timeoutMs: 200, net: { attempts: 1 } });
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain(base);
  });

  it("reports a refused connection as NETWORK", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = await fetchError({ graphUrl: `http://127.0.0.1:${port}/graph` });
    expect(err.code).toBe("NETWORK");
    expect(err.message).toContain(`http://127.0.0.1:${port}/graph?channel=stable-4.13&arch=amd64`);
  });

  it("rejects an unknown arch before asking", async () => {
    const err = await fetchError({ arch: "i386" });
    expect(err.code).toBe("USAGE");
    expect(seen).toHaveLength(0);
  });
});
