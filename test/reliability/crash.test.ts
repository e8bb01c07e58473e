/**
 * `bundle apply` is resumable: the CLI process is killed with SIGKILL at 20
 * points spread over a run (after the N-th request the mirror or the
 * Kubernetes API sees, or for every second kill the N-th blob or manifest PUT, held
 * either before it reaches the server or after the server acted on it), and
 * then run again. After every kill no `.sig` tag in
 * the mirror points at a missing blob, and every re-run completes: each tag's
 * manifest bytes are the archive's (skopeo inspect --raw), every blob they
 * name answers HEAD 200, and every ConfigMap is in the cluster.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readArchive } from "../../src/archive/reader.js";
import { runCreate } from "../../src/commands/bundle-create.js";
import type { BundleIndex } from "../../src/core/bundle-index.js";
import { capture } from "../helpers/capture.js";
import { runCli, spawnCli } from "../helpers/cli.js";
import {
  startFaultProxy,
  type FaultProxy,
  type Hold,
  type ProxyRequest,
} from "../world/fault-proxy.js";
import { startWorld, type World } from "../world/index.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";
import { FAST_NET_ENV, mirrorState, sigTagConsistency } from "./helpers.js";

const KILLS = 20;

let world: World;
let kube: KubeApi;
let dir: string;
let archive: string;
let index: BundleIndex;
let registryProxy: FaultProxy;
let kubeProxy: FaultProxy;
let kubeconfig: string;
/** Requests seen by both proxies in the current run. */
let seen = 0;
/**
 * The request to hold in the current run, and what to do then: the `at`-th
 * request, or with `only`, the `at`-th of the requests it matches. The order of
 * requests varies from run to run (up to 8 are under way at a time), so a kill
 * by position alone lands on a manifest PUT only by chance.
 */
let plan:
  { at: number; only?: (request: string) => boolean; mode: Hold; onHold: () => void } | undefined;
/** Requests matching `plan.only` seen in the current run. */
let matched = 0;
const isManifestPut = (request: string): boolean =>
  request.startsWith("PUT") && request.includes("/manifests/");
const isBlobPut = (request: string): boolean =>
  request.startsWith("PUT") && request.includes("/blobs/");
/** Requests of a whole apply run (the probe). */
let total = 0;
/** Per kill: the request held when the process was killed, and the .sig tags the mirror had then. */
const kills: { server: "mirror" | "kube"; request: string; tagsAfterKill: number }[] = [];
let held: { server: "mirror" | "kube"; request: string } | undefined;

const decideFor =
  (server: "mirror" | "kube") =>
  (req: ProxyRequest): Hold | undefined => {
    seen++;
    if (plan === undefined) return undefined;
    const request = `${req.method} ${req.url.split("?")[0]!}`;
    if (plan.only !== undefined) {
      if (!plan.only(request) || ++matched !== plan.at) return undefined;
    } else if (seen !== plan.at) {
      return undefined;
    }
    held = { server, request };
    return plan.mode;
  };
const onHold = (): void => plan?.onHold();

function applyArgs(repo: string): string[] {
  return [
    "bundle",
    "apply",
    archive,
    "--to",
    `${registryProxy.host}/${repo}`,
    "--plain-http",
    "--kubeconfig",
    kubeconfig,
    "--manifests-dir",
    path.join(dir, "manifests"),
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
    "--quiet",
  ];
}

/** The archive's .sig tags and manifest digests. */
function expectedTags(): Map<string, string> {
  return new Map(index.sigstore.map((a) => [a.tag, a.manifest.digest]));
}

beforeAll(async () => {
  [world, kube] = await Promise.all([
    startWorld({ mirror: true }),
    startKubeApi({ namespaces: ["openshift-config-managed"] }),
  ]);
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-crash-"));
  archive = path.join(dir, "bundle.tar");
  await runCreate(
    {
      release: world.data.good.slice(0, 3).map((r) => r.version),
      arch: ["x86_64", "multi"],
      releaseRepo: world.releaseRepo,
      plainHttp: true,
      signatureStore: [world.stores.primary],
      keyring: [world.keys.openpgpTrusted],
      sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      output: archive,
    },
    capture({ quiet: true }).reporter,
  );
  index = JSON.parse(
    Buffer.from((await readArchive(archive)).members.get("index.json")!).toString("utf8"),
  ) as BundleIndex;
  [registryProxy, kubeProxy] = await Promise.all([
    startFaultProxy({ target: world.mirror!.url, decide: decideFor("mirror"), onHold }),
    startFaultProxy({ target: kube.url, ca: kube.caPem, decide: decideFor("kube"), onHold }),
  ]);
  // The kubeconfig names the proxy (plain http) so that its requests are counted too.
  kubeconfig = path.join(dir, "kubeconfig");
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: kubeProxy.url } }],
      users: [{ name: "u", user: { token: kube.adminToken } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
    { mode: 0o600 },
  );
  // The probe: how many requests a whole run makes.
  seen = 0;
  const probe = await runCli(applyArgs("probe/release"), { env: FAST_NET_ENV });
  if (probe.code !== 0) throw new Error(`probe apply failed:\n${probe.stderr}`);
  total = seen;
}, 120_000);

afterAll(async () => {
  await Promise.all([registryProxy?.stop(), kubeProxy?.stop()]);
  await Promise.all([world?.stop(), kube?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe(`bundle apply killed with SIGKILL at ${KILLS} points, then run again`, () => {
  it("the probe run touched the mirror and the cluster", () => {
    expect(index.sigstore.length).toBe(12);
    expect(total).toBeGreaterThan(4 * KILLS);
    expect(kube.requests.some((r) => r.method === "PATCH")).toBe(true);
  });

  for (let i = 1; i <= KILLS; i++) {
    // Kills 4, 8, … 20: at the 2nd, 4th, … 10th manifest PUT (of 12, one per artifact);
    // kills 2, 6, … 18: at the 4th, 8th, … 20th blob PUT (of 24); each kind before and
    // after the registry stored it in turn. The odd kills are placed by count.
    const targeted =
      i % 4 === 0
        ? { only: isManifestPut, at: (i / 4) * 2, nth: i / 4, what: "manifest PUT", of: 12 }
        : i % 4 === 2
          ? { only: isBlobPut, at: ((i + 2) / 4) * 4, nth: (i + 2) / 4, what: "blob PUT", of: 24 }
          : undefined;
    const mode: Hold = (targeted?.nth ?? i) % 2 === 1 ? "hold" : "hold-after";
    const where =
      targeted !== undefined
        ? `at ${targeted.what} ${targeted.at} of ${targeted.of}`
        : `at ${i}/${KILLS + 1} of the run's requests`;
    it(`kill ${i}/${KILLS} (${where}, ${mode === "hold" ? "before" : "after"} the server saw it) leaves a consistent mirror, and the re-run completes`, async () => {
      const repo = `crash-${i}/release`;
      const at = targeted?.at ?? Math.max(1, Math.round((i * total) / (KILLS + 1)));
      seen = 0;
      matched = 0;
      held = undefined;
      const run = spawnCli(applyArgs(repo), { env: FAST_NET_ENV });
      plan = {
        at,
        ...(targeted !== undefined ? { only: targeted.only } : {}),
        mode,
        onHold: () => run.child.kill("SIGKILL"),
      };
      const killed = await run.done;
      plan = undefined;
      expect(killed.signal, `the run ended before request ${at}:\n${killed.stderr}`).toBe(
        "SIGKILL",
      );

      // After the kill, before the re-run: whatever tag is there is whole.
      const expected = expectedTags();
      const after = await sigTagConsistency(world.mirror!.host, repo);
      expect(after.dangling).toEqual([]);
      for (const [tag, digest] of after.tags) expect(digest).toBe(expected.get(tag));
      kills.push({ ...held!, tagsAfterKill: after.tags.size });

      const rerun = await runCli(applyArgs(repo), { env: FAST_NET_ENV });
      expect(rerun.code, rerun.stderr).toBe(0);
      const final = await sigTagConsistency(world.mirror!.host, repo);
      expect(final.dangling).toEqual([]);
      expect(final.tags).toEqual(expected);
      expect(await mirrorState(`${world.mirror!.host}/${repo}`)).toEqual(expected);
      const configMaps = new Set(
        kube
          .objects()
          .filter((o) => o.kind === "ConfigMap")
          .map((o) => (o.metadata as { name: string }).name),
      );
      for (const cm of index.configMaps) expect(configMaps.has(cm.name)).toBe(true);
    });
  }

  it("the kills landed all over the run: before any tag, between tags, and in the cluster phase", () => {
    expect(kills).toHaveLength(KILLS);
    expect(kills.some((k) => k.server === "mirror" && k.tagsAfterKill === 0)).toBe(true);
    expect(kills.some((k) => k.tagsAfterKill > 0 && k.tagsAfterKill < 12)).toBe(true);
    // The targeted kills held what they aimed at, before and after the registry stored it.
    const manifestKills = kills.filter((_, n) => (n + 1) % 4 === 0);
    const blobKills = kills.filter((_, n) => (n + 1) % 4 === 2);
    expect(manifestKills.map((k) => isManifestPut(k.request))).toEqual(Array(5).fill(true));
    expect(blobKills.map((k) => isBlobPut(k.request))).toEqual(Array(5).fill(true));
    expect(kills.some((k) => k.server === "kube")).toBe(true);
  });
});
