/**
 * `npm run bench`: sigferry against the documented manual procedure, on the
 * local world behind latency-injecting proxies, at several release-set sizes.
 *
 *   npm run bench                                  # 50, 200, 2000 releases; 10 ms each way
 *   npm run bench -- --sizes 200 --rounds 1        # one size, one round
 *   npm run bench -- --delay 25 --no-docs          # another latency; do not rewrite the docs
 *   npm run bench -- --sizes 200 --cpu-prof        # also write .cpuprofile files to bench/out/prof/
 *   npm run bench -- --baseline HEAD               # also run the build of a git ref: before/after
 *   npm run bench -- --sizes 200 --no-manual       # sigferry only (quick; draft report in bench/out/)
 *   npm run bench -- --render                      # re-render docs/benchmarks.md from bench/results.json
 *
 * For each size it starts a world (test/world: real docker-registry processes
 * for upstream and mirror, the store server), puts a proxy in front of each
 * (bench/latency-proxy.ts) and then, alternating the order every round so
 * machine noise hits both sides alike:
 *   - runs the manual procedure (bench/manual.ts) for every release, or for an
 *     even sample of them at large sizes, extrapolated linearly;
 *   - runs `sigferry bundle create` then `sigferry bundle apply --skip-cluster`
 *     (the built CLI, each a fresh process), then `sigferry bundle verify`.
 * Each run goes to a fresh mirror repository. Every command runs under GNU time.
 * The results go to bench/results.json and docs/benchmarks.md.
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startWorld, type World } from "../test/world/index.js";
import { startLatencyProxyInWorker, type ProxyStats, type WorkerProxy } from "./latency-proxy.js";
import { manualScript } from "./manual.js";
import { killMeasured, measure, requireGnuTime, type Measured } from "./measure.js";
import { renderMarkdown } from "./report.js";
import { DEFAULT_CONCURRENCY } from "../src/net/policy.js";

const exec = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(ROOT, "bench", "out");
const CLI = path.join(ROOT, "bin", "sigferry.js");

/** Command-line options of the bench. */
interface BenchOptions {
  sizes: number[];
  oneWayMs: number;
  rounds: Map<number, number>;
  /** Releases run by the manual procedure per size (the rest extrapolated). */
  manualSample: Map<number, number>;
  concurrency: number | undefined;
  cpuProf: boolean;
  docs: boolean;
  build: boolean;
  /** Skip the manual procedure (for quick iterations on sigferry alone; implies --no-docs). */
  manual: boolean;
  /** A git ref whose build runs alongside, alternating (before/after in one run). */
  baseline: string | undefined;
  /** Another bin/sigferry.js to measure instead of this tree's (experiments). */
  cli: string | undefined;
  /** Sizes the baseline runs at (default: all). */
  baselineSizes: number[] | undefined;
  /** Other --concurrency values to run this tree at, once, at sweepSizes. */
  sweep: number[];
  sweepSizes: number[];
  /** Count token requests against token-auth registries (at 50 releases). */
  tokenCheck: boolean;
}

function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = {
    sizes: [50, 200, 2000],
    oneWayMs: 10,
    rounds: new Map([
      [50, 3],
      [200, 2],
      [2000, 2],
    ]),
    manualSample: new Map([[2000, 60]]),
    concurrency: undefined,
    cpuProf: false,
    docs: true,
    build: true,
    manual: true,
    baseline: undefined,
    cli: undefined,
    baselineSizes: undefined,
    sweep: [16, 32],
    sweepSizes: [200],
    tokenCheck: true,
  };
  let roundsAll: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--sizes") o.sizes = value().split(",").map(Number);
    else if (a === "--delay") o.oneWayMs = Number(value());
    else if (a === "--rounds") roundsAll = Number(value());
    else if (a === "--manual-sample") {
      // size:count[,size:count]
      for (const pair of value().split(",")) {
        const [s, n] = pair.split(":").map(Number);
        o.manualSample.set(s!, n!);
      }
    } else if (a === "--concurrency") o.concurrency = Number(value());
    else if (a === "--cpu-prof") o.cpuProf = true;
    else if (a === "--baseline") o.baseline = value();
    else if (a === "--cli") o.cli = path.resolve(value());
    else if (a === "--baseline-sizes") o.baselineSizes = value().split(",").map(Number);
    else if (a === "--sweep")
      o.sweep = value()
        .split(",")
        .map(Number)
        .filter((n) => n > 0);
    else if (a === "--sweep-sizes") o.sweepSizes = value().split(",").map(Number);
    else if (a === "--no-docs") o.docs = false;
    else if (a === "--no-build") o.build = false;
    else if (a === "--no-token-check") o.tokenCheck = false;
    else if (a === "--no-manual") {
      o.manual = false;
      o.docs = false;
    } else throw new Error(`unknown option ${a}`);
  }
  if (roundsAll !== undefined) for (const s of o.sizes) o.rounds.set(s, roundsAll);
  return o;
}

/** The machine, for the report. */
async function machine(): Promise<Record<string, string | number>> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "?";
  const version = async (cmd: string, args: string[]): Promise<string> =>
    (await exec(cmd, args).catch(() => ({ stdout: "?" }))).stdout.split("\n")[0]!.trim();
  return {
    nproc: Number((await version("nproc", [])) || os.cpus().length),
    cpu: model,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    skopeo: await version("skopeo", ["--version"]),
    curl: await version("curl", ["--version"]),
    registry: await version("/usr/bin/docker-registry", ["--version"]),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The figures kept of one measured command. */
type RunFigures = Pick<Measured, "wallMs" | "cpuMs" | "maxRssMiB"> & {
  /** CPU the servers used meanwhile: both registries, and this process (proxies, store). */
  serversCpuMs?: number;
};
const figures = (m: Measured, serversCpuMs?: number): RunFigures => ({
  wallMs: Math.round(m.wallMs),
  cpuMs: Math.round(m.cpuMs),
  maxRssMiB: Math.round(m.maxRssMiB * 10) / 10,
  ...(serversCpuMs !== undefined ? { serversCpuMs: Math.round(serversCpuMs) } : {}),
});

/** Request counts of one command, from the proxies. */
interface Requests {
  total: number;
  connections: number;
  byKind: Record<string, number>;
  byKindStatus: Record<string, number>;
}

function mergeStats(stats: ProxyStats[]): Requests {
  const out: Requests = { total: 0, connections: 0, byKind: {}, byKindStatus: {} };
  for (const s of stats) {
    out.total += s.requests;
    out.connections += s.connections;
    for (const [k, v] of Object.entries(s.byKind)) out.byKind[k] = (out.byKind[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.byKindStatus))
      out.byKindStatus[k] = (out.byKindStatus[k] ?? 0) + v;
  }
  return out;
}

/** CPU seconds (user + system) used so far by this process's docker-registry children. */
async function serversCpuMs(): Promise<number> {
  const { stdout } = await exec("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)]);
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const line of stdout.trim().split("\n")) {
    const [pid, comm] = line.trim().split(/\s+/);
    if (comm !== "docker-registry" || pid === undefined) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
  }
  const own = process.cpuUsage();
  return total + (own.user + own.system) / 1000;
}

/**
 * The round trip a request really takes through the proxy on this machine:
 * `parallel` keep-alive clients each GET `url` `rounds` times in a row.
 */
async function calibrate(url: string, parallel: number, rounds = 40): Promise<number> {
  const { Agent, request } = await import("undici");
  const agent = new Agent({ connections: parallel, keepAliveTimeout: 10_000 });
  try {
    // Warm the connections first: handshakes are not what is measured.
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        const r = await request(url, { dispatcher: agent });
        await r.body.dump();
      }),
    );
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        for (let i = 0; i < rounds; i++) {
          const r = await request(url, { dispatcher: agent });
          await r.body.dump();
        }
      }),
    );
    return (performance.now() - t0) / rounds;
  } finally {
    await agent.close();
  }
}

/** One sigferry build's runs at one size, and their medians. */
export interface SigferrySide {
  /** "current" (this tree) or the baseline's git ref. */
  label: string;
  concurrency: number;
  create: (RunFigures & { requests: Requests })[];
  apply: (RunFigures & { requests: Requests })[];
  verify: (RunFigures & { signatures: number })[];
  /** Medians (ms, MiB). */
  createMs: number;
  applyMs: number;
  totalMs: number;
  cpuMs: number;
  maxRssMiB: number;
  createRssMiB: number;
  applyRssMiB: number;
  verifyMs: number;
  verifyRssMiB: number;
  verifyPer1000Ms: number;
  requests: { create: number; apply: number; total: number };
  /** requests × RTT ÷ concurrency (ms). */
  boundMs: { create: number; apply: number; total: number };
  /** The same with the round trip the proxy really gave (calibrated), ms. */
  effectiveBoundMs: number;
  perReleaseMs: number;
  /** Manual wall ÷ this wall. */
  speedup: number;
  /** This wall ÷ its latency bound. */
  boundRatio: number;
  /** This wall ÷ the bound at the calibrated round trip. */
  effectiveBoundRatio: number;
  /** Why a run failed (then the figures are NaN): the first failure. */
  failure?: string;
}

/** One size's results. */
export interface SizeResult {
  releases: number;
  /** Measured round trip through the proxy at the concurrency used (ms; nominal is 2 × delay). */
  effectiveRttMs: number;
  world: { startMs: number; generateMs: number; fillMs: number };
  manual: {
    sample: number;
    runs: (RunFigures & { requests: Requests })[];
    /** Median wall time over the sample, scaled to all releases (ms). */
    wallMs: number;
    cpuMs: number;
    maxRssMiB: number;
    perReleaseMs: number;
  };
  sigferry: SigferrySide;
  /** The same runs with the build of --baseline <ref>, alternating with the current one. */
  baseline?: SigferrySide;
  /** This tree at other --concurrency values (first round only). */
  sweep?: SigferrySide[];
}

/** The whole results document. */
export interface BenchResults {
  tokenCheck?: TokenCheck;
  date: string;
  command: string;
  machine: Record<string, string | number>;
  oneWayMs: number;
  rttMs: number;
  sizes: SizeResult[];
}

/** What must be stopped if the bench is interrupted: worlds and proxies it started. */
const running = new Set<() => Promise<unknown>>();

/** Runs `fn` with `stop` registered for an interruption, and stops it afterwards. */
async function withStop<T>(stop: () => Promise<unknown>, fn: () => Promise<T>): Promise<T> {
  running.add(stop);
  try {
    return await fn();
  } finally {
    running.delete(stop);
    await stop();
  }
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}, stopping what it started\n`);
    killMeasured();
    void Promise.allSettled([...running].map((stop) => stop())).then(() => process.exit(130));
  });
}

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** A sigferry build to run: bin/sigferry.js of this tree, or of a baseline; and how. */
interface Build {
  label: string;
  cli: string;
  /** --concurrency to pass (default: none, the CLI's default). */
  concurrency?: number;
  /** Sizes it runs at (default: all). */
  sizes?: number[];
  /** Run in the first round only (the concurrency sweep). */
  once?: boolean;
}

type SideRuns = Pick<SigferrySide, "create" | "apply" | "verify"> & { failures: string[] };

function summarize(
  build: Build,
  runs: SideRuns,
  size: number,
  concurrency: number,
  rttMs: number,
  effectiveRttMs: number,
  manualWall: number,
): SigferrySide {
  const { create, apply, verify } = runs;
  const failure = runs.failures[0];
  if (create.length === 0 || apply.length === 0 || verify.length === 0) {
    return {
      label: build.label,
      concurrency,
      create,
      apply,
      verify,
      createMs: NaN,
      applyMs: NaN,
      totalMs: NaN,
      cpuMs: NaN,
      maxRssMiB: NaN,
      createRssMiB: NaN,
      applyRssMiB: NaN,
      verifyMs: NaN,
      verifyRssMiB: NaN,
      verifyPer1000Ms: NaN,
      requests: { create: NaN, apply: NaN, total: NaN },
      boundMs: { create: NaN, apply: NaN, total: NaN },
      effectiveBoundMs: NaN,
      perReleaseMs: NaN,
      speedup: NaN,
      boundRatio: NaN,
      effectiveBoundRatio: NaN,
      ...(failure !== undefined ? { failure } : {}),
    };
  }
  const reqCreate = median(create.map((c) => c.requests.total));
  const reqApply = median(apply.map((c) => c.requests.total));
  const bound = {
    create: (reqCreate * rttMs) / concurrency,
    apply: (reqApply * rttMs) / concurrency,
    total: ((reqCreate + reqApply) * rttMs) / concurrency,
  };
  const totalMs = median(create.map((c, i) => c.wallMs + apply[i]!.wallMs));
  const verifyMs = median(verify.map((v) => v.wallMs));
  const round2 = (x: number): number => Math.round(x * 100) / 100;
  return {
    label: build.label,
    concurrency,
    create,
    apply,
    verify,
    createMs: median(create.map((m) => m.wallMs)),
    applyMs: median(apply.map((m) => m.wallMs)),
    totalMs,
    cpuMs: median(create.map((c, i) => c.cpuMs + apply[i]!.cpuMs)),
    maxRssMiB: Math.max(...create.map((c) => c.maxRssMiB), ...apply.map((a) => a.maxRssMiB)),
    createRssMiB: Math.max(...create.map((c) => c.maxRssMiB)),
    applyRssMiB: Math.max(...apply.map((a) => a.maxRssMiB)),
    verifyMs,
    verifyRssMiB: Math.max(...verify.map((v) => v.maxRssMiB)),
    verifyPer1000Ms: Math.round((verifyMs / verify[0]!.signatures) * 1000),
    requests: { create: reqCreate, apply: reqApply, total: reqCreate + reqApply },
    boundMs: {
      create: Math.round(bound.create),
      apply: Math.round(bound.apply),
      total: Math.round(bound.total),
    },
    effectiveBoundMs: Math.round(((reqCreate + reqApply) * effectiveRttMs) / concurrency),
    perReleaseMs: round2(totalMs / size),
    speedup: Math.round((manualWall / totalMs) * 10) / 10,
    boundRatio: round2(totalMs / bound.total),
    effectiveBoundRatio: round2(
      totalMs / (((reqCreate + reqApply) * effectiveRttMs) / concurrency),
    ),
    ...(failure !== undefined ? { failure } : {}),
  };
}

async function runSize(
  size: number,
  o: BenchOptions,
  builds: Build[],
  runId: { n: number },
): Promise<SizeResult> {
  log(`world of ${size} releases: starting (the first start of a size generates and fills it)`);
  const t0 = performance.now();
  // The world of the test suite (its 13 bad-case releases included: the same
  // cached registry storage as the tests use); only the N good releases are carried.
  const world: World = await startWorld({ releases: size, mirror: true });
  const startMs = performance.now() - t0;
  return withStop(
    () => world.stop(),
    () => measureSize(size, o, builds, runId, world, startMs),
  );
}

async function measureSize(
  size: number,
  o: BenchOptions,
  builds: Build[],
  runId: { n: number },
  world: World,
  startMs: number,
): Promise<SizeResult> {
  log(
    `world ready in ${(startMs / 1000).toFixed(1)} s (generate ${(world.timings.generate / 1000).toFixed(1)} s, fill ${(world.timings.push / 1000).toFixed(1)} s)`,
  );
  const proxies: WorkerProxy[] = [];
  const stopProxies = (): Promise<unknown> => Promise.allSettled(proxies.map((p) => p.stop()));
  running.add(stopProxies);
  try {
    const hostPort = (hp: string): { host: string; port: number } => {
      const [host, port] = hp.split(":");
      return { host: host!, port: Number(port) };
    };
    const storeUrl = new URL(world.stores.primary);
    const up = await startLatencyProxyInWorker({
      target: hostPort(world.upstream.host),
      oneWayMs: o.oneWayMs,
      label: "upstream",
    });
    proxies.push(up);
    const store = await startLatencyProxyInWorker({
      target: { host: storeUrl.hostname, port: Number(storeUrl.port) },
      oneWayMs: o.oneWayMs,
      label: "store",
    });
    proxies.push(store);
    const mirror = await startLatencyProxyInWorker({
      target: hostPort(world.mirror!.host),
      oneWayMs: o.oneWayMs,
      label: "mirror",
    });
    proxies.push(mirror);
    const storeBase = `http://${store.address}${storeUrl.pathname}`;
    const releaseRepo = `${up.address}/${world.data.repoPath}`;
    const versions = world.data.good.map((r) => r.version);
    const tags = versions.map((v) => `${v}-x86_64`);
    const sampleSize = Math.min(o.manualSample.get(size) ?? size, size);
    // An even sample across the whole set.
    const sample =
      sampleSize === size
        ? tags
        : Array.from({ length: sampleSize }, (_, i) => tags[Math.floor((i * size) / sampleSize)]!);
    const dir = path.join(OUT, `size-${size}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const policyFile = path.join(dir, "policy.json");
    await writeFile(policyFile, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
    const trust = [
      "--keyring",
      world.keys.openpgpTrusted,
      "--sigstore-key",
      world.keys.sigstoreRsa,
      "--sigstore-key",
      world.keys.sigstoreEcdsa,
    ];
    const env = {
      ...process.env,
      HTTP_PROXY: "",
      HTTPS_PROXY: "",
      http_proxy: "",
      https_proxy: "",
    };
    const timeFile = path.join(dir, "time.txt");
    const probe = `${storeBase}/sha256=${world.data.good[0]!.digests.x86_64!.slice(7)}/signature-1`;
    const effectiveRttMs = await calibrate(probe, concurrency);
    log(
      `  round trip through the proxy at ${concurrency} in parallel: ${effectiveRttMs.toFixed(1)} ms (nominal ${2 * o.oneWayMs})`,
    );
    const nodeArgs = (name: string): string[] =>
      o.cpuProf
        ? [
            "--cpu-prof",
            "--cpu-prof-dir",
            path.join(OUT, "prof"),
            "--cpu-prof-name",
            `${name}-${size}-${Date.now()}.cpuprofile`,
          ]
        : [];

    const manualRuns: SizeResult["manual"]["runs"] = [];
    const active = builds.filter((b) => b.sizes === undefined || b.sizes.includes(size));
    const sides = new Map<string, SideRuns>(
      active.map((b) => [b.label, { create: [], apply: [], verify: [], failures: [] }]),
    );

    const runManual = async (round: number): Promise<void> => {
      const id = ++runId.n;
      const script = path.join(dir, "manual.sh");
      // A mirror address skopeo has never seen, for each run. skopeo (containers/image)
      // keeps a blob-info cache across runs (/var/lib/containers/cache for root) and,
      // for a registry where it saw a blob before, mounts it from that repository
      // instead of uploading it: from the second run on, the manual procedure made
      // 14 requests per release instead of 17 and ran 15 % faster. A user carrying
      // new signatures never has them in that cache, and the cache is keyed by
      // registry host:port, so a fresh proxy port gives every run the first run's work.
      const runMirror = await startLatencyProxyInWorker({
        target: hostPort(world.mirror!.host),
        oneWayMs: o.oneWayMs,
        label: "mirror",
      });
      proxies.push(runMirror);
      try {
        await runManualVia(round, id, script, runMirror);
      } finally {
        proxies.splice(proxies.indexOf(runMirror), 1);
        await runMirror.stop();
      }
    };

    const runManualVia = async (
      round: number,
      id: number,
      script: string,
      runMirror: WorkerProxy,
    ): Promise<void> => {
      await writeFile(
        script,
        manualScript({
          upstream: up.address,
          releaseRepoPath: world.data.repoPath,
          store: storeBase,
          mirrorRepo: `${runMirror.address}/bench/manual-${id}`,
          outDir: path.join(dir, `manual-${id}`),
          policyFile,
        }),
      );
      await Promise.all(proxies.map((p) => p.resetStats()));
      const cpu0 = await serversCpuMs();
      const m = await measure("bash", [script, ...sample], { timeFile, env });
      const serversCpu = (await serversCpuMs()) - cpu0;
      if (m.exitCode !== 0)
        throw new Error(`manual procedure failed (${m.exitCode}):\n${m.stderr}`);
      const requests = mergeStats(await Promise.all(proxies.map((p) => p.stats())));
      const written = (await readdir(path.join(dir, `manual-${id}`))).length;
      if (written !== sample.length) {
        throw new Error(`manual procedure wrote ${written} ConfigMaps, expected ${sample.length}`);
      }
      await rm(path.join(dir, `manual-${id}`), { recursive: true, force: true });
      manualRuns.push({ ...figures(m, serversCpu), requests });
      log(
        `  round ${round} manual: ${sample.length} releases in ${(m.wallMs / 1000).toFixed(1)} s, ${requests.total} requests, ${requests.connections} connections`,
      );
    };

    const runSigferry = async (round: number, build: Build): Promise<void> => {
      const side = sides.get(build.label)!;
      // A failure is not noise: do not repeat it.
      if (side.failures.length > 0) return;
      try {
        await runSigferryOnce(round, build, side);
      } catch (err) {
        const message = (err instanceof Error ? err.message : String(err))
          .split("\n")
          .slice(0, 3)
          .join(" ");
        side.failures.push(message);
        log(`  round ${round} sigferry [${build.label}] FAILED: ${message}`);
      }
    };

    const runSigferryOnce = async (round: number, build: Build, side: SideRuns): Promise<void> => {
      const conc =
        build.concurrency !== undefined
          ? ["--concurrency", String(build.concurrency)]
          : o.concurrency !== undefined
            ? ["--concurrency", String(o.concurrency)]
            : [];
      const id = ++runId.n;
      const archive = path.join(dir, `sigs-${id}.tar.gz`);
      await Promise.all(proxies.map((p) => p.resetStats()));
      let cpu0 = await serversCpuMs();
      const c = await measure(
        process.execPath,
        [
          ...nodeArgs("create"),
          build.cli,
          "bundle",
          "create",
          "--release-repo",
          releaseRepo,
          "--plain-http",
          "--signature-store",
          storeBase,
          ...trust,
          "--release",
          versions.join(","),
          "--arch",
          "x86_64",
          ...conc,
          "-o",
          archive,
          "--json",
          "--quiet",
        ],
        { timeFile, env },
      );
      if (c.exitCode !== 0)
        throw new Error(`bundle create failed (${c.exitCode}):\n${c.stderr}${c.stdout}`);
      const created = JSON.parse(c.stdout) as { counts: { openpgp: number; sigstore: number } };
      if (created.counts.sigstore !== size) {
        throw new Error(`bundle create carried ${created.counts.sigstore} .sig, expected ${size}`);
      }
      const createReq = mergeStats(await Promise.all(proxies.map((p) => p.stats())));
      side.create.push({ ...figures(c, (await serversCpuMs()) - cpu0), requests: createReq });

      await Promise.all(proxies.map((p) => p.resetStats()));
      cpu0 = await serversCpuMs();
      const a = await measure(
        process.execPath,
        [
          ...nodeArgs("apply"),
          build.cli,
          "bundle",
          "apply",
          archive,
          "--to",
          `${mirror.address}/bench/sigferry-${id}`,
          "--plain-http",
          "--skip-cluster",
          "--manifests-dir",
          path.join(dir, `manifests-${id}`),
          ...trust,
          ...conc,
          "--json",
          "--quiet",
        ],
        { timeFile, env },
      );
      if (a.exitCode !== 0)
        throw new Error(`bundle apply failed (${a.exitCode}):\n${a.stderr}${a.stdout}`);
      const applied = JSON.parse(a.stdout) as {
        registry: { artifacts: { action: string }[] };
      };
      const pushed = applied.registry.artifacts.filter((x) => x.action === "pushed").length;
      if (pushed !== size) throw new Error(`bundle apply pushed ${pushed}, expected ${size}`);
      const applyReq = mergeStats(await Promise.all(proxies.map((p) => p.stats())));
      side.apply.push({ ...figures(a, (await serversCpuMs()) - cpu0), requests: applyReq });

      const v = await measure(
        process.execPath,
        [...nodeArgs("verify"), build.cli, "bundle", "verify", archive, ...trust, "--quiet"],
        { timeFile, env },
      );
      if (v.exitCode !== 0)
        throw new Error(`bundle verify failed (${v.exitCode}):\n${v.stderr}${v.stdout}`);
      const signatures = created.counts.openpgp + created.counts.sigstore;
      side.verify.push({ ...figures(v), signatures });
      log(
        `  round ${round} sigferry${build.label === "current" ? "" : ` [${build.label}]`}: create ${(c.wallMs / 1000).toFixed(2)} s (cpu ${(c.cpuMs / 1000).toFixed(1)} s + servers ${((side.create.at(-1)?.serversCpuMs ?? 0) / 1000).toFixed(1)} s, ${createReq.total} req, ${createReq.connections} conn, ${c.maxRssMiB.toFixed(0)} MiB), apply ${(a.wallMs / 1000).toFixed(2)} s (cpu ${(a.cpuMs / 1000).toFixed(1)} s + servers ${((side.apply.at(-1)?.serversCpuMs ?? 0) / 1000).toFixed(1)} s, ${applyReq.total} req, ${applyReq.connections} conn, ${a.maxRssMiB.toFixed(0)} MiB), verify ${(v.wallMs / 1000).toFixed(2)} s (${v.maxRssMiB.toFixed(0)} MiB)`,
      );
      await rm(archive, { force: true });
      await rm(`${archive}.sha256`, { force: true });
      await rm(path.join(dir, `manifests-${id}`), { recursive: true, force: true });
    };

    const rounds = o.rounds.get(size) ?? 1;
    for (let r = 1; r <= rounds; r++) {
      // Every side in turn, the order reversed every other round.
      const steps: (() => Promise<void>)[] = [
        ...(o.manual ? [() => runManual(r)] : []),
        ...active.filter((b) => r === 1 || !b.once).map((b) => () => runSigferry(r, b)),
      ];
      if (r % 2 === 0) steps.reverse();
      for (const step of steps) await step();
    }

    const scale = size / sample.length;
    const manualWall =
      manualRuns.length > 0 ? median(manualRuns.map((m) => m.wallMs)) * scale : NaN;
    const rtt = 2 * o.oneWayMs;
    const summary = (b: Build): SigferrySide =>
      summarize(
        b,
        sides.get(b.label)!,
        size,
        b.concurrency ?? concurrency,
        rtt,
        effectiveRttMs,
        manualWall,
      );
    const current = summary(active[0]!);
    const baselineBuild = active.find((b) => b.label !== "current" && b.concurrency === undefined);
    const baseline = baselineBuild ? summary(baselineBuild) : undefined;
    const sweep = active.filter((b) => b.once).map(summary);
    return {
      releases: size,
      effectiveRttMs: Math.round(effectiveRttMs * 10) / 10,
      world: {
        startMs: Math.round(startMs),
        generateMs: Math.round(world.timings.generate),
        fillMs: Math.round(world.timings.push),
      },
      manual: {
        sample: sample.length,
        runs: manualRuns,
        wallMs: Math.round(manualWall),
        cpuMs:
          manualRuns.length > 0 ? Math.round(median(manualRuns.map((m) => m.cpuMs)) * scale) : NaN,
        maxRssMiB: Math.max(...manualRuns.map((m) => m.maxRssMiB)),
        perReleaseMs: Math.round((manualWall / size) * 10) / 10,
      },
      sigferry: current,
      ...(baseline ? { baseline } : {}),
      ...(sweep.length > 0 ? { sweep } : {}),
    };
  } finally {
    running.delete(stopProxies);
    await stopProxies();
  }
}

/** What the token check found: token requests per command, by scope. */
export interface TokenCheck {
  releases: number;
  create: { requests: number; scopes: string[] };
  apply: { requests: number; scopes: string[] };
}

/**
 * "No repeated token fetches": both registries behind Docker token auth (as
 * quay.io is), one create and one apply, and what the token issuers were asked.
 */
async function tokenCheck(size: number): Promise<TokenCheck> {
  const creds = { username: "bench", password: "bench-secret" };
  const world = await startWorld({
    releases: size,
    authUpstream: { ...creds, authKind: "token" },
    mirror: { token: { username: "bench-mirror", password: "bench-mirror-secret" } },
  });
  const dir = path.join(OUT, "token-check");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const stopWorld = (): Promise<void> => world.stop();
  running.add(stopWorld);
  try {
    const versions = world.data.good.map((r) => r.version);
    const trust = [
      "--keyring",
      world.keys.openpgpTrusted,
      "--sigstore-key",
      world.keys.sigstoreRsa,
      "--sigstore-key",
      world.keys.sigstoreEcdsa,
    ];
    const archive = path.join(dir, "sigs.tar.gz");
    const run = async (args: string[]): Promise<void> => {
      const r = await exec(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024 }).catch(
        (err: { stderr?: string; stdout?: string }) => {
          throw new Error(
            `token check: sigferry ${args[1]} failed: ${err.stderr ?? ""}${err.stdout ?? ""}`,
          );
        },
      );
      void r;
    };
    const up = world.upstream.tokenIssuer!;
    const mi = world.mirror!.tokenIssuer!;
    const seen = (i: { requests: { scopes: string[] }[] }, from: number): TokenCheck["create"] => {
      const reqs = i.requests.slice(from);
      return { requests: reqs.length, scopes: [...new Set(reqs.map((r) => r.scopes.join(" ")))] };
    };
    const up0 = up.requests.length;
    await run([
      "bundle",
      "create",
      "--release-repo",
      world.releaseRepo,
      "--plain-http",
      "--auth-file",
      world.authFile,
      "--signature-store",
      world.stores.primary,
      ...trust,
      "--release",
      versions.join(","),
      "-o",
      archive,
      "--quiet",
    ]);
    const create = seen(up, up0);
    const mi0 = mi.requests.length;
    await run([
      "bundle",
      "apply",
      archive,
      "--to",
      `${world.mirror!.host}/bench/token-check`,
      "--plain-http",
      "--auth-file",
      world.authFile,
      "--skip-cluster",
      "--manifests-dir",
      path.join(dir, "manifests"),
      ...trust,
      "--quiet",
    ]);
    const apply = seen(mi, mi0);
    return { releases: size, create, apply };
  } finally {
    running.delete(stopWorld);
    await stopWorld();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Builds the sigferry of git ref `ref` (its src/, compiled with this tree's
 * TypeScript and node_modules) into node_modules/.cache/sigferry-bench/ for A/B runs.
 */
async function buildBaseline(ref: string): Promise<Build> {
  const { stdout: sha } = await exec("git", ["rev-parse", "--short", ref], { cwd: ROOT });
  const label = sha.trim().startsWith(ref) ? sha.trim() : `${ref}@${sha.trim()}`;
  // Outside bench/: the root tsconfig would type-check a copied src/ under bench/out/.
  const dir = path.join(ROOT, "node_modules", ".cache", "sigferry-bench", `baseline-${sha.trim()}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const files = ["src", "bin", "tsconfig.json", "tsconfig.build.json", "package.json"];
  await exec(
    "bash",
    ["-c", `git archive "$1" ${files.join(" ")} | tar -x -C "$2"`, "_", ref, dir],
    { cwd: ROOT },
  );
  await exec(
    process.execPath,
    [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
    { cwd: dir },
  );
  return { label, cli: path.join(dir, "bin", "sigferry.js") };
}

async function main(): Promise<void> {
  if (process.argv[2] === "--render") {
    // Re-render docs/benchmarks.md from bench/results.json (after editing bench/history.md).
    const results = JSON.parse(
      await readFile(path.join(ROOT, "bench", "results.json"), "utf8"),
    ) as BenchResults;
    const history = await readFile(path.join(ROOT, "bench", "history.md"), "utf8").catch(() => "");
    await writeFile(path.join(ROOT, "docs", "benchmarks.md"), renderMarkdown(results, history));
    log("wrote docs/benchmarks.md from bench/results.json");
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  await requireGnuTime();
  if (o.build) {
    log("building dist/ (tsc -p tsconfig.build.json)");
    await exec(
      process.execPath,
      [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      {
        cwd: ROOT,
      },
    );
  }
  await mkdir(OUT, { recursive: true });
  const results: BenchResults = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    machine: await machine(),
    oneWayMs: o.oneWayMs,
    rttMs: 2 * o.oneWayMs,
    sizes: [],
  };
  const builds: Build[] = [{ label: "current", cli: o.cli ?? CLI }];
  if (o.baseline !== undefined) {
    log(`building the baseline ${o.baseline}`);
    const base = await buildBaseline(o.baseline);
    builds.push({ ...base, ...(o.baselineSizes ? { sizes: o.baselineSizes } : {}) });
  }
  for (const c of o.sweep) {
    builds.push({
      label: `current --concurrency ${c}`,
      cli: o.cli ?? CLI,
      concurrency: c,
      sizes: o.sweepSizes,
      once: true,
    });
  }
  const runId = { n: 0 };
  const t0 = performance.now();
  for (const size of o.sizes) {
    const r = await runSize(size, o, builds, runId);
    results.sizes.push(r);
    for (const side of [r.sigferry, ...(r.baseline ? [r.baseline] : [])]) {
      log(
        `${size} releases [${side.label}]: manual ${(r.manual.wallMs / 1000).toFixed(1)} s${r.manual.sample < size ? ` (extrapolated from ${r.manual.sample})` : ""}, sigferry ${(side.totalMs / 1000).toFixed(2)} s (${side.speedup}x), bound ${(side.boundMs.total / 1000).toFixed(2)} s (${side.boundRatio}x of it), peak RSS ${side.maxRssMiB} MiB`,
      );
    }
  }
  if (o.tokenCheck) {
    log("token check: 50 releases, both registries behind token auth");
    results.tokenCheck = await tokenCheck(50);
    log(
      `  token requests: create ${results.tokenCheck.create.requests} (${results.tokenCheck.create.scopes.join("; ")}), apply ${results.tokenCheck.apply.requests} (${results.tokenCheck.apply.scopes.join("; ")})`,
    );
  }
  log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const json = path.join(ROOT, "bench", o.docs ? "results.json" : "out/results.json");
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${path.relative(ROOT, json)}`);
  // Without --no-docs the report replaces docs/benchmarks.md; with it, a draft goes to bench/out/.
  const history = await readFile(path.join(ROOT, "bench", "history.md"), "utf8").catch(() => "");
  const md = path.join(ROOT, o.docs ? "docs/benchmarks.md" : "bench/out/benchmarks.md");
  await writeFile(md, renderMarkdown(results, history));
  log(`wrote ${path.relative(ROOT, md)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
