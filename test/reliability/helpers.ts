/**
 * Shared pieces of the reliability suite: the short network policy the CLI
 * runs with under injected faults, the mirror's state as skopeo sees it, and
 * the consistency check that no `.sig` tag points at a missing blob.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import type { CliRun } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/paths.js";
import { RegistryClient } from "../../src/registry/client.js";
import { OCI_MANIFEST } from "../../src/registry/types.js";
import type { Digest } from "../../src/core/digest.js";

const exec = promisify(execFile);

/**
 * SIGFERRY_NET_* for CLI runs under faults: an attempt that hears nothing for
 * 1 s is over, backoff stays under 200 ms, a Retry-After is cut to 100 ms, and
 * there are enough attempts that a 5% fault rate never exhausts them.
 */
export const FAST_NET_ENV: Readonly<Record<string, string>> = {
  SIGFERRY_NET_ATTEMPTS: "8",
  SIGFERRY_NET_DEADLINE_MS: "30000",
  SIGFERRY_NET_BACKOFF_MS: "20",
  SIGFERRY_NET_MAX_BACKOFF_MS: "200",
  SIGFERRY_NET_RETRY_AFTER_MAX_MS: "100",
  SIGFERRY_NET_CONNECT_TIMEOUT_MS: "2000",
  SIGFERRY_NET_READ_TIMEOUT_MS: "1000",
};

/** The same policy for in-process clients. */
export const FAST_NET = {
  attempts: 8,
  deadlineMs: 30_000,
  backoffMs: 20,
  maxBackoffMs: 200,
  maxRetryAfterMs: 100,
  connectTimeoutMs: 2_000,
  headersTimeoutMs: 1_000,
  bodyTimeoutMs: 1_000,
} as const;

/** Runs skopeo and returns its stdout. */
export async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await exec("skopeo", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** tag → sha256 of the manifest bytes `skopeo inspect --raw` returns, for every tag of a plain-http repository. */
export async function mirrorState(
  repoRef: string,
  extra: string[] = ["--tls-verify=false"],
): Promise<Map<string, string>> {
  let tags: string[] = [];
  try {
    tags = (
      JSON.parse(await skopeo(["list-tags", ...extra, `docker://${repoRef}`])) as { Tags: string[] }
    ).Tags;
  } catch (err) {
    // A repository nothing was pushed to yet does not exist.
    if (!/name unknown|NAME_UNKNOWN|not found/i.test(String((err as Error).message))) throw err;
  }
  const state = new Map<string, string>();
  for (const tag of [...tags].sort()) {
    const raw = await skopeo(["inspect", "--raw", ...extra, `docker://${repoRef}:${tag}`]);
    state.set(tag, `sha256:${createHash("sha256").update(raw).digest("hex")}`);
  }
  return state;
}

/** One `.sig` tag that names a blob the repository does not have. */
export interface Dangling {
  tag: string;
  blob: string;
}

/**
 * Every `.sig` tag of `repo` on a plain-http registry, read directly (not
 * through any proxy): its manifest, and a HEAD of every blob it names.
 * Returns the tags found with their manifest digests, and what dangles.
 */
export async function sigTagConsistency(
  registryHost: string,
  repo: string,
): Promise<{ tags: Map<string, Digest>; dangling: Dangling[] }> {
  const client = new RegistryClient(registryHost, { plainHttp: true, net: { attempts: 1 } });
  try {
    const tags = new Map<string, Digest>();
    const dangling: Dangling[] = [];
    for (const tag of (await client.listTags(repo)).filter((t) => t.endsWith(".sig")).sort()) {
      const m = await client.getManifest(repo, tag, [OCI_MANIFEST]);
      if (m === undefined) continue; // deleted between list and get: not our case
      tags.set(tag, m.digest);
      const doc = JSON.parse(Buffer.from(m.bytes).toString("utf8")) as {
        config: { digest: Digest };
        layers: { digest: Digest }[];
      };
      for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
        if (!(await client.hasBlob(repo, d))) dangling.push({ tag, blob: d });
      }
    }
    return { tags, dangling };
  } finally {
    await client.close();
  }
}

/** Milliseconds since `t0`. */
export function since(t0: number): number {
  return Math.round(performance.now() - t0);
}

/** A CLI run in the background: the process (to signal it) and its outcome. */
export interface SpawnedCli {
  child: ChildProcess;
  done: Promise<CliRun & { signal: NodeJS.Signals | null }>;
}

/** Starts `sigferry <args>` (bin/sigferry.js) and returns at once; killed after `timeoutMs` at the latest. */
export function spawnCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): SpawnedCli {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin/sigferry.js"), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  const done = new Promise<CliRun & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}
