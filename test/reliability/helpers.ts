/**
 * Shared pieces of the reliability suite: the short network policy the CLI
 * runs with under injected faults, the mirror's state as skopeo sees it, and
 * the consistency check that no `.sig` tag points at a missing blob.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
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
