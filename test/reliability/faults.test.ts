/**
 * Nothing lost under faults: `bundle create` and `bundle apply`, run through
 * the CLI with 5% of the requests to the upstream registry, the signature
 * stores and the mirror reset, stalled, cut short or answered 429/5xx (the
 * fault proxy, seeded), produce exactly the archive bytes and the mirror state
 * of a run without faults.
 */
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliRun } from "../helpers/cli.js";
import { FAULT_KINDS, startFaultProxy, type FaultProxy } from "../world/fault-proxy.js";
import { startWorld, type World } from "../world/index.js";
import { FAST_NET_ENV, mirrorState, sigTagConsistency } from "./helpers.js";

/** [fault rate, seed]: five seeds at 5%, and one at 20% so that every kind of fault shows up. */
const TRIALS: [number, number][] = [
  [0.05, 101],
  [0.05, 202],
  [0.05, 303],
  [0.05, 404],
  [0.05, 505],
  [0.2, 606],
];
const EPOCH = "1700000000";

let world: World;
let dir: string;
let upstream: FaultProxy;
let stores: FaultProxy;
let mirror: FaultProxy;
let baselineArchive: Buffer;
let baselineState: Map<string, string>;

const env = { ...FAST_NET_ENV, SOURCE_DATE_EPOCH: EPOCH };

function viaStoreProxy(url: string): string {
  return url.replace(world.http.url, stores.url);
}

function createArgs(out: string): string[] {
  const releases = world.data.good.slice(0, 3).flatMap((r) => ["--release", r.version]);
  return [
    "bundle",
    "create",
    ...releases,
    "--arch",
    "x86_64",
    "--arch",
    "multi",
    "--release-repo",
    `${upstream.host}/${world.data.repoPath}`,
    "--plain-http",
    "--signature-store",
    viaStoreProxy(world.stores.primary),
    "--signature-store",
    viaStoreProxy(world.stores.secondary),
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
    "--quiet",
    "-o",
    out,
  ];
}

function applyArgs(archive: string, repo: string): string[] {
  return [
    "bundle",
    "apply",
    archive,
    "--to",
    `${mirror.host}/${repo}`,
    "--plain-http",
    "--skip-cluster",
    "--manifests-dir",
    path.join(dir, `manifests-${repo.replace(/\//g, "_")}`),
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
    "--quiet",
  ];
}

/** The faults a proxy injected from request `from` on, for failure messages. */
function faultsSince(proxy: FaultProxy, from: number): string {
  return proxy.log
    .slice(from)
    .filter((e) => e.fault !== undefined)
    .map((e) => `  #${e.n} ${e.method} ${e.url} → ${e.fault!}`)
    .join("\n");
}

function expectOk(run: CliRun, faults = ""): void {
  if (run.code !== 0) {
    throw new Error(`exit ${String(run.code)}\n${run.stderr}\n${run.stdout}\nfaults:\n${faults}`);
  }
}

/** The .sig tags of a mirror repository and their manifest digests. */
async function sigState(repo: string): Promise<Map<string, string>> {
  const all = await mirrorState(`${world.mirror!.host}/${repo}`);
  return new Map([...all].filter(([tag]) => tag.endsWith(".sig")));
}

beforeAll(async () => {
  world = await startWorld({ mirror: true });
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-faults-"));
  [upstream, stores, mirror] = await Promise.all([
    startFaultProxy({ target: world.upstream.url }),
    startFaultProxy({ target: world.http.url }),
    startFaultProxy({ target: world.mirror!.url }),
  ]);
  // The baseline: the same proxies, no faults (the archive records the store URLs).
  const out = path.join(dir, "baseline.tar.gz");
  expectOk(await runCli(createArgs(out), { env }));
  baselineArchive = await readFile(out);
  expectOk(await runCli(applyArgs(out, "baseline/release"), { env }));
  baselineState = await sigState("baseline/release");
}, 120_000);

afterAll(async () => {
  await Promise.all([upstream?.stop(), stores?.stop(), mirror?.stop()]);
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("with requests to the registries and the stores faulted", () => {
  it("the baseline carries every .sig tag of the selection", () => {
    // 3 releases × (x86_64 + multi index + 2 per-arch children) .sig artifacts.
    expect(baselineState.size).toBe(12);
  });

  for (const [rate, seed] of TRIALS) {
    it(`at ${rate * 100}% (seed ${seed}) create writes the same archive bytes and apply leaves the same mirror`, async () => {
      upstream.setRate(rate, seed);
      stores.setRate(rate, seed + 1);
      const before = upstream.injected() + stores.injected();
      const [upFrom, storesFrom] = [upstream.log.length, stores.log.length];
      const out = path.join(dir, `seed-${seed}.tar.gz`);
      const created = await runCli(createArgs(out), { env });
      upstream.setRate(0);
      stores.setRate(0);
      const injected = `${faultsSince(upstream, upFrom)}\n${faultsSince(stores, storesFrom)}`;
      expectOk(created, injected);
      expect(upstream.injected() + stores.injected() - before).toBeGreaterThan(0);
      expect(Buffer.compare(await readFile(out), baselineArchive), injected).toBe(0);
      // Nothing but the archive and its sidecar: no temp file left by the retries.
      expect((await readdir(dir)).filter((f) => f.startsWith(`seed-${seed}.`)).sort()).toEqual([
        `seed-${seed}.tar.gz`,
        `seed-${seed}.tar.gz.sha256`,
      ]);

      const repo = `seed-${seed}/release`;
      mirror.setRate(rate, seed + 2);
      const mirrorBefore = mirror.injected();
      const mirrorFrom = mirror.log.length;
      const applied = await runCli(applyArgs(out, repo), { env });
      mirror.setRate(0);
      expectOk(applied, faultsSince(mirror, mirrorFrom));
      expect(mirror.injected() - mirrorBefore).toBeGreaterThan(0);
      expect(await sigState(repo), faultsSince(mirror, mirrorFrom)).toEqual(baselineState);
      expect((await sigTagConsistency(world.mirror!.host, repo)).dangling).toEqual([]);
    });
  }

  it("every kind of fault was injected somewhere along the way", () => {
    const seen = new Set<string>();
    for (const p of [upstream, stores, mirror]) for (const k of p.faults().keys()) seen.add(k);
    expect([...FAULT_KINDS].filter((k) => !seen.has(k))).toEqual([]);
  });
});
