/**
 * Stopping and failing, through the CLI: Ctrl-C (SIGINT) aborts the request
 * in flight whichever server it waits on (signature store, update graph,
 * mirror, Kubernetes API), exits 130 at once and says truthfully what was and
 * was not done; a retry is visible with --verbose; a stalled server cannot
 * hang a run; an output path that cannot be written (missing directory, disk
 * full) fails clearly and leaves no file.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readArchive } from "../../src/archive/reader.js";
import { runCreate } from "../../src/commands/bundle-create.js";
import type { BundleIndex } from "../../src/core/bundle-index.js";
import { capture } from "../helpers/capture.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/paths.js";
import {
  startFaultProxy,
  type FaultKind,
  type FaultProxy,
  type Hold,
  type ProxyRequest,
} from "../world/fault-proxy.js";
import { startWorld, type World } from "../world/index.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";
import { spawnCli } from "../helpers/cli.js";
import { FAST_NET_ENV, sigTagConsistency } from "./helpers.js";

const execFileP = promisify(execFile);

let world: World;
let kube: KubeApi;
let dir: string;
let archive: string;
let index: BundleIndex;
let http: FaultProxy;
let upstream: FaultProxy;
let mirror: FaultProxy;
let kubeProxy: FaultProxy;
let kubeconfig: string;

/** The current test's rule: which request to hold or fault, and what to do once it is held. */
let rule: ((req: ProxyRequest) => FaultKind | Hold | undefined) | undefined;
let onHeld: (() => void) | undefined;
const decide = (req: ProxyRequest): FaultKind | Hold | undefined => rule?.(req);
const onHold = (): void => onHeld?.();

/** Timeouts so long that only Ctrl-C can end a held request within the test. */
const PATIENT_ENV = { ...FAST_NET_ENV, SIGFERRY_NET_READ_TIMEOUT_MS: "60000" };

function trustArgs(): string[] {
  return [
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
  ];
}

function createArgs(out: string, extra: string[] = []): string[] {
  return [
    "bundle",
    "create",
    "--release-repo",
    `${upstream.host}/${world.data.repoPath}`,
    "--plain-http",
    "--signature-store",
    world.stores.primary.replace(world.http.url, http.url),
    "--signature-store",
    world.stores.secondary.replace(world.http.url, http.url),
    ...trustArgs(),
    "-o",
    out,
    ...extra,
  ];
}

function applyArgs(repo: string): string[] {
  return [
    "bundle",
    "apply",
    archive,
    "--to",
    `${mirror.host}/${repo}`,
    "--plain-http",
    "--kubeconfig",
    kubeconfig,
    ...trustArgs(),
  ];
}

/** Runs the CLI, sends SIGINT the moment the proxy holds the request `when` picks, and times the stop. */
async function interruptWhen(
  args: string[],
  when: (req: ProxyRequest) => boolean,
): Promise<CliRun & { stopMs: number }> {
  let sentAt = 0;
  const run = spawnCli(args, { env: PATIENT_ENV, timeoutMs: 30_000 });
  rule = (req) => (when(req) ? "hold" : undefined);
  onHeld = () => {
    if (sentAt !== 0) return;
    sentAt = performance.now();
    run.child.kill("SIGINT");
  };
  const result = await run.done;
  rule = undefined;
  onHeld = undefined;
  expect(sentAt, `nothing was held:\n${result.stderr}`).toBeGreaterThan(0);
  return { ...result, stopMs: performance.now() - sentAt };
}

async function filesLike(prefix: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.startsWith(prefix)).sort();
}

beforeAll(async () => {
  [world, kube] = await Promise.all([
    startWorld({ mirror: true }),
    startKubeApi({ namespaces: ["openshift-config-managed"] }),
  ]);
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-interrupt-"));
  [http, upstream, mirror, kubeProxy] = await Promise.all([
    startFaultProxy({ target: world.http.url, decide, onHold }),
    startFaultProxy({ target: world.upstream.url, decide, onHold }),
    startFaultProxy({ target: world.mirror!.url, decide, onHold }),
    startFaultProxy({ target: kube.url, ca: kube.caPem, decide, onHold }),
  ]);
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
  archive = path.join(dir, "bundle.tar");
  await runCreate(
    {
      release: [world.data.good[0]!.version],
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
}, 120_000);

afterAll(async () => {
  await Promise.all([http?.stop(), upstream?.stop(), mirror?.stop(), kubeProxy?.stop()]);
  await Promise.all([world?.stop(), kube?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Ctrl-C", () => {
  it("while a signature store request hangs: create exits 130 at once, says no archive was written, and none is", async () => {
    const out = path.join(dir, "int-store.tar.gz");
    const r = await interruptWhen(
      createArgs(out, ["--release", world.data.good[0]!.version]),
      (req) => req.url.includes("/signature-"),
    );
    expect(r.code).toBe(130);
    expect(r.stopMs).toBeLessThan(3_000);
    expect(r.stderr).toContain("interrupted: stopping, aborting the requests in flight");
    expect(r.stderr).toContain("error: interrupted: no archive was written");
    expect(r.stderr).toContain("hint: Interrupted. Run the same command again to finish.");
    expect(await filesLike("int-store.")).toEqual([]);
  });

  it("while the update graph hangs: create exits 130 at once", async () => {
    const out = path.join(dir, "int-graph.tar");
    const r = await interruptWhen(
      createArgs(out, [
        "--channel",
        world.data.channels.stable,
        "--full",
        "--graph-url",
        world.graphUrl.replace(world.http.url, http.url),
      ]),
      (req) => req.url.startsWith("/api/upgrades_info/"),
    );
    expect(r.code).toBe(130);
    expect(r.stopMs).toBeLessThan(3_000);
    expect(await filesLike("int-graph.")).toEqual([]);
  });

  it("while the mirror hangs on a tag push: apply exits 130, says what is and is not in place, and the next run finishes", async () => {
    const repo = "interrupt/mirror";
    const r = await interruptWhen(
      applyArgs(repo),
      (req) => /^PUT$/.test(req.method) && req.url.includes("/manifests/"),
    );
    expect(r.code).toBe(130);
    expect(r.stopMs).toBeLessThan(3_000);
    expect(r.stderr).toContain("every .sig tag already in the mirror is complete");
    expect(r.stderr).toContain("run the same command again to finish");
    const after = await sigTagConsistency(world.mirror!.host, repo);
    expect(after.dangling).toEqual([]);
    expect(after.tags.size).toBeLessThan(index.sigstore.length);

    const again = await runCli([...applyArgs(repo), "--quiet"], { env: FAST_NET_ENV });
    expect(again.code, again.stderr).toBe(0);
    const final = await sigTagConsistency(world.mirror!.host, repo);
    expect(final.dangling).toEqual([]);
    expect(final.tags).toEqual(new Map(index.sigstore.map((a) => [a.tag, a.manifest.digest])));
  });

  it("while the Kubernetes API hangs on an apply: apply exits 130 at once", async () => {
    const r = await interruptWhen(applyArgs("interrupt/kube"), (req) => req.method === "PATCH");
    expect(r.code).toBe(130);
    expect(r.stopMs).toBeLessThan(3_000);
    expect(r.stderr).toContain("each cluster object was applied whole or not at all");
  });

  it("with --json: the error document says INTERRUPTED", async () => {
    const r = await interruptWhen(
      [
        ...createArgs(path.join(dir, "int-json.tar"), ["--release", world.data.good[0]!.version]),
        "--json",
      ],
      (req) => req.url.includes("/signature-"),
    );
    expect(r.code).toBe(130);
    const doc = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } };
    expect(doc.ok).toBe(false);
    expect(doc.error.code).toBe("INTERRUPTED");
    expect(doc.error.message).toContain("no archive was written");
  });
});

describe("a retried request", () => {
  it("is named on stderr with --verbose, and the run goes on to succeed", async () => {
    let faulted = false;
    rule = (req) => {
      if (faulted || !req.url.includes("/manifests/")) return undefined;
      faulted = true;
      return "503";
    };
    const r = await runCli(
      createArgs(path.join(dir, "verbose.tar"), [
        ...world.data.good.slice(0, 3).flatMap((g) => ["--release", g.version]),
        "--arch",
        "x86_64",
        "--arch",
        "multi",
        "--concurrency",
        "32",
        "--verbose",
      ]),
      { env: FAST_NET_ENV },
    );
    rule = undefined;
    expect(r.code, r.stderr).toBe(0);
    // Many requests share the one Ctrl-C signal: no listener-leak warning.
    expect(r.stderr).not.toContain("MaxListenersExceededWarning");
    expect(r.stderr).toMatch(/retrying \(attempt 2 of 8 in \d+ ms\): get manifest \S+: HTTP 503/);
  });
});

describe("a stalled server cannot hang a run", () => {
  const STALL_ENV = {
    ...FAST_NET_ENV,
    SIGFERRY_NET_ATTEMPTS: "2",
    SIGFERRY_NET_READ_TIMEOUT_MS: "300",
    SIGFERRY_NET_DEADLINE_MS: "3000",
  };

  it("signature stores that accept and never answer: create fails with TIMEOUT (exit 3), in bounded time", async () => {
    rule = (req) => (req.url.includes("/signature-") ? "stall" : undefined);
    const t0 = performance.now();
    const r = await runCli(
      createArgs(path.join(dir, "stall-store.tar"), ["--release", world.data.good[0]!.version]),
      { env: STALL_ENV, timeoutMs: 30_000 },
    );
    rule = undefined;
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/did not answer in time/);
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(await filesLike("stall-store.")).toEqual([]);
  });

  it("a registry that sends headers and stalls the body: create fails with TIMEOUT (exit 3), in bounded time", async () => {
    rule = (req) => (req.url.includes("/manifests/") ? "stall-body" : undefined);
    const t0 = performance.now();
    const r = await runCli(
      createArgs(path.join(dir, "stall-registry.tar"), ["--release", world.data.good[0]!.version]),
      { env: STALL_ENV, timeoutMs: 30_000 },
    );
    rule = undefined;
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/error: get manifest .*: no answer in time|error: .*within 3 s/);
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(await filesLike("stall-registry.")).toEqual([]);
  });
});

describe("an output that cannot be written", () => {
  it("in a directory that does not exist: OUTPUT_WRITE_FAILED (exit 2) naming the path", async () => {
    const out = path.join(dir, "no-such-dir", "x.tar");
    const r = await runCli(createArgs(out, ["--release", world.data.good[0]!.version, "--json"]), {
      env: FAST_NET_ENV,
    });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe("OUTPUT_WRITE_FAILED");
    expect(doc.error.message).toContain(out);
    expect(r.stderr).toContain("hint: Check that the output directory exists");
  });

  /** Runs create under `ulimit -f <kib>`: a write past the limit fails with EFBIG, as a full disk fails with ENOSPC. */
  async function createWithFileLimit(
    out: string,
    kib: number,
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ code: number; stderr: string }> {
    const args = createArgs(out, ["--release", world.data.good[0]!.version]);
    const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    return execFileP(
      "bash",
      ["-c", `ulimit -f ${kib}; exec '${process.execPath}' bin/sigferry.js ${quoted}`],
      { cwd: REPO_ROOT, env: { ...process.env, ...FAST_NET_ENV, ...env } },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
  }

  it("on a full disk where the archive goes: OUTPUT_WRITE_FAILED, and no archive, temp file or sidecar left", async () => {
    // The members are spooled before the archive is written, and the archive is
    // larger than the spool (a 512-byte header and padding per member), so a
    // limit between the two sizes fails the archive and not the spool.
    const ok = path.join(dir, "sized.tar");
    expect(
      (
        await runCli(createArgs(ok, ["--release", world.data.good[0]!.version]), {
          env: FAST_NET_ENV,
        })
      ).code,
    ).toBe(0);
    const archiveBytes = (await stat(ok)).size;
    const read = await readArchive(ok);
    const spoolBytes = read.members.bytes;
    read.members.close();
    const kib = Math.ceil(spoolBytes / 1024) + 1;
    expect(kib * 1024).toBeLessThan(archiveBytes);
    await rm(ok);
    await rm(`${ok}.sha256`, { force: true });

    const out = path.join(dir, "full.tar");
    const r = await createWithFileLimit(out, kib);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`error: cannot write ${out}`);
    expect(r.stderr).toMatch(/EFBIG|too large/i);
    expect(await filesLike("full.")).toEqual([]);
  });

  it("on a full disk where the spool goes: OUTPUT_WRITE_FAILED naming the temporary directory, and nothing left", async () => {
    const spoolDir = await mkdtemp(path.join(os.tmpdir(), "sigferry-spool-"));
    try {
      const out = path.join(dir, "full-spool.tar");
      const r = await createWithFileLimit(out, 4, { TMPDIR: spoolDir });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`cannot keep the members in a spool file under ${spoolDir}`);
      expect(r.stderr).toMatch(/EFBIG|too large/i);
      expect(r.stderr).toContain("set TMPDIR");
      expect(await filesLike("full-spool.")).toEqual([]);
      expect(await readdir(spoolDir)).toEqual([]);
    } finally {
      await rm(spoolDir, { recursive: true, force: true });
    }
  });

  it("with TMPDIR pointing nowhere: OUTPUT_WRITE_FAILED (exit 2) naming it, before any release is resolved, and no archive", async () => {
    const missing = path.join(dir, "no-such-tmp");
    const out = path.join(dir, "no-tmp.tar");
    const asked: string[] = [];
    rule = (req) => {
      asked.push(req.url);
      return undefined;
    };
    const r = await runCli(createArgs(out, ["--release", world.data.good[0]!.version, "--json"]), {
      env: { ...FAST_NET_ENV, TMPDIR: missing },
    });
    rule = undefined;
    expect(r.code).toBe(2);
    // The spool is opened first: the registry was asked nothing.
    expect(asked.filter((u) => u.includes("/manifests/"))).toEqual([]);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe("OUTPUT_WRITE_FAILED");
    expect(doc.error.message).toContain(missing);
    expect(await filesLike("no-tmp.")).toEqual([]);
  });
});
