/**
 * A connected machine behind a corporate proxy: `bundle create` must reach the
 * registry, the signature stores and the update graph through the proxy the
 * environment names (HTTPS_PROXY / HTTP_PROXY, as curl, oc and skopeo do), not
 * only the registry. The proxy here tunnels (CONNECT, which undici uses for
 * http:// targets too) and records where each tunnel went.
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { keyArgs } from "../ux/world-args.js";
import { startWorld, type World } from "../world/index.js";

let world: World;
let proxy: Server;
let proxyUrl: string;
let dir: string;
const tunnels: string[] = [];

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-proxy-env-"));
  proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on("connect", (req, client: Duplex, head: Buffer) => {
    const target = req.url ?? "";
    tunnels.push(target);
    const [host, port] = target.split(":");
    const upstream = connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("bundle create behind HTTP_PROXY / HTTPS_PROXY", () => {
  it("reaches the update graph, the signature store and the registry through the proxy", async () => {
    const version = world.data.graphs[world.data.channels.stable]!.amd64!.nodes[0]!.version;
    const hostOf = (url: string): string => new URL(url).host;
    const run = await runCli(
      [
        "bundle",
        "create",
        "--channel",
        world.data.channels.stable,
        "--min",
        version,
        "--max",
        version,
        "--graph-url",
        world.graphUrl,
        "--arch",
        "x86_64",
        "--release-repo",
        world.releaseRepo,
        "--plain-http",
        "--signature-store",
        world.stores.primary,
        ...keyArgs(world),
        "-o",
        path.join(dir, "via-proxy.tar"),
        "--quiet",
      ],
      { env: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: "", no_proxy: "" } },
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const seen = new Set(tunnels);
    expect(seen).toContain(world.upstream.host);
    expect(seen).toContain(hostOf(world.stores.primary));
    expect(seen).toContain(hostOf(world.graphUrl));
  });
});
