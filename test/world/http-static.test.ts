/**
 * The signature-store and update-graph server of the test world answers like
 * the real services: octet-stream signatures and 404s laid out like
 * mirror.openshift.com and GCS, and Cincinnati's content negotiation and errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import { startStaticServer, type StaticServer } from "./http-static.js";

const HEX = "a".repeat(64);
const SIG = new Uint8Array([0xa3, 0x01, 1, 2, 3]);
const GRAPH = {
  version: 1,
  nodes: [
    {
      version: "4.16.0",
      payload: `quay.io/openshift-release-dev/ocp-release@sha256:${HEX}`,
      metadata: {},
    },
  ],
  edges: [],
  conditionalEdges: [],
};

let server: StaticServer;

beforeAll(async () => {
  server = await startStaticServer({
    primary: new Map([[`sha256=${HEX}/signature-1`, SIG]]),
    secondary: new Map([[`sha256=${HEX}/signature-2`, SIG]]),
    graphs: { "stable-4.16": { amd64: GRAPH } },
  });
});
afterAll(() => server.stop());

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

describe("the signature stores", () => {
  it("listen on 127.0.0.1 at the public stores' paths", () => {
    expect(server.stores.primary).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/pub\/openshift-v4\/signatures\/openshift\/release$/,
    );
    expect(server.stores.secondary).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/openshift-release\/official\/signatures\/openshift\/release$/,
    );
  });

  it("serve a signature as application/octet-stream, byte for byte", async () => {
    const res = await get(`${server.stores.primary}/sha256=${HEX}/signature-1`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    expect([...res.body]).toEqual([...SIG]);
  });

  it("answer 404 for an absent signature, in each store independently", async () => {
    expect((await get(`${server.stores.primary}/sha256=${HEX}/signature-2`)).status).toBe(404);
    expect((await get(`${server.stores.secondary}/sha256=${HEX}/signature-1`)).status).toBe(404);
    expect((await get(`${server.stores.secondary}/sha256=${HEX}/signature-2`)).status).toBe(200);
    expect(
      (await get(`${server.stores.primary}/sha256=${"b".repeat(64)}/signature-1`)).status,
    ).toBe(404);
    expect((await get(`${server.stores.primary}/sha256=${HEX}/../../etc/passwd`)).status).toBe(404);
  });

  it("count requests per path, and serve content changed while running", async () => {
    server.resetCounts();
    const path = `/pub/openshift-v4/signatures/openshift/release/sha256=${HEX}/signature-3`;
    expect((await get(`${server.url}${path}`)).status).toBe(404);
    server.content.primary.set(`sha256=${HEX}/signature-3`, SIG);
    expect((await get(`${server.url}${path}`)).status).toBe(200);
    server.content.primary.delete(`sha256=${HEX}/signature-3`);
    expect(server.counts().get(path)).toBe(2);
    expect(server.count("/pub/")).toBe(2);
    expect(server.count("/openshift-release/")).toBe(0);
  });

  it("inject faults: a status for a number of requests, then normal answers", async () => {
    const url = `${server.stores.primary}/sha256=${HEX}/signature-1`;
    server.addFault({ pathPrefix: "/pub/", status: 503, times: 2 });
    expect((await get(url)).status).toBe(503);
    expect((await get(url)).status).toBe(503);
    expect((await get(url)).status).toBe(200);
    server.addFault({ pathPrefix: "/pub/", reset: true, times: 1 });
    await expect(get(url)).rejects.toThrow();
    expect((await get(url)).status).toBe(200);
    server.clearFaults();
  });
});

describe("the update graph service", () => {
  it("serves the graph of a channel and arch as JSON when asked for application/json", async () => {
    const res = await get(`${server.graphUrl}?channel=stable-4.16&arch=amd64`, {
      accept: "application/json",
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(res.body.toString())).toEqual(GRAPH);
  });

  it("answers 406 invalid_content_type without an acceptable Accept header, as Cincinnati does", async () => {
    for (const accept of [undefined, "text/html", "application/json, text/plain"]) {
      const res = await get(
        `${server.graphUrl}?channel=stable-4.16&arch=amd64`,
        accept === undefined ? {} : { accept },
      );
      expect(res.status, String(accept)).toBe(406);
      expect(JSON.parse(res.body.toString())).toEqual({
        kind: "invalid_content_type",
        value: "invalid Content-Type requested",
      });
    }
  });

  it("answers 400 missing_params without channel or arch", async () => {
    const res = await get(`${server.graphUrl}?arch=amd64`, { accept: "application/json" });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toEqual({
      kind: "missing_params",
      value: "mandatory client parameters missing: channel",
    });
  });

  it("answers 400 invalid_params for a channel that is not a channel name", async () => {
    const res = await get(`${server.graphUrl}?channel=Stable_4.16&arch=amd64`, {
      accept: "application/json",
    });
    expect(res.status).toBe(400);
    const body = JSON.parse(res.body.toString());
    expect(body.kind).toBe("invalid_params");
    expect(body.value).toContain("channel 'Stable_4.16' does not match regex");
  });

  it("answers an empty graph for a well-formed channel nobody publishes", async () => {
    const res = await get(`${server.graphUrl}?channel=stable-9.99&arch=amd64`, {
      accept: "application/json",
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({
      version: 1,
      nodes: [],
      edges: [],
      conditionalEdges: [],
    });
  });
});

describe("stop", () => {
  it("is idempotent and closes the port", async () => {
    const s = await startStaticServer({ primary: new Map(), graphs: {} });
    await Promise.all([s.stop(), s.stop()]);
    await s.stop();
    await expect(get(`${s.url}/`)).rejects.toThrow();
  });
});
