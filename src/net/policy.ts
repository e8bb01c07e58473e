/**
 * The network policy every HTTP client of sigferry shares (registry, signature
 * stores, update graph, Kubernetes API): how long to wait for a connection,
 * for response headers and between two body chunks, how many attempts one
 * request gets and how long it may take in all, and how retries back off.
 *
 * Defaults suit a real network; each value can be changed through an
 * environment variable (documented in docs/user-guide.md, "Network failures"),
 * which is also how the tests make a stalled server fail in a second.
 */
import { SigferryError } from "../errors.js";

/**
 * Requests in flight at once unless --concurrency says otherwise, for create,
 * apply and check alike. Kept low for quay.io, which limits each client address
 * to a few requests per second per endpoint and answers 429 beyond that.
 */
export const DEFAULT_CONCURRENCY = 8;

/** Timeouts and retry limits for one client. All durations in milliseconds. */
export interface NetPolicy {
  /** Attempts per request, the first included (1 = no retry). */
  attempts: number;
  /** Total time for one request, retries and waits included; an attempt still running then is aborted. */
  deadlineMs: number;
  /** First backoff ceiling; it doubles per retry (full jitter: the wait is uniform in [0, ceiling]). */
  backoffMs: number;
  /** Largest backoff ceiling. */
  maxBackoffMs: number;
  /** Largest wait a Retry-After header may ask for. */
  maxRetryAfterMs: number;
  /** TCP + TLS connection setup. */
  connectTimeoutMs: number;
  /** Until the response headers arrive. */
  headersTimeoutMs: number;
  /** Between two chunks of the response body. */
  bodyTimeoutMs: number;
}

/** The defaults: 5 attempts in at most 60 s; 10 s to connect; 30 s of silence ends an attempt. */
export const DEFAULT_NET_POLICY: Readonly<NetPolicy> = Object.freeze({
  attempts: 5,
  deadlineMs: 60_000,
  backoffMs: 250,
  maxBackoffMs: 8_000,
  maxRetryAfterMs: 30_000,
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
});

/** Environment variables that override the defaults (whole numbers). */
export const NET_ENV: Readonly<Record<string, readonly (keyof NetPolicy)[]>> = Object.freeze({
  SIGFERRY_NET_ATTEMPTS: ["attempts"],
  SIGFERRY_NET_DEADLINE_MS: ["deadlineMs"],
  SIGFERRY_NET_BACKOFF_MS: ["backoffMs"],
  SIGFERRY_NET_MAX_BACKOFF_MS: ["maxBackoffMs"],
  SIGFERRY_NET_RETRY_AFTER_MAX_MS: ["maxRetryAfterMs"],
  SIGFERRY_NET_CONNECT_TIMEOUT_MS: ["connectTimeoutMs"],
  // One knob for both read timeouts: what users mean by "how long may the server be silent".
  SIGFERRY_NET_READ_TIMEOUT_MS: ["headersTimeoutMs", "bodyTimeoutMs"],
});

function check(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new SigferryError(
      "USAGE",
      `${name} must be a whole number of at least ${min}, not ${String(value)}`,
    );
  }
  return value;
}

/**
 * The policy for a client: the defaults, then the environment, then `overrides`
 * (options a caller passes, e.g. a test's short timeouts). Throws USAGE for a
 * malformed value.
 */
export function resolveNetPolicy(
  overrides: Partial<NetPolicy> = {},
  env: NodeJS.ProcessEnv = process.env,
): NetPolicy {
  const policy: NetPolicy = { ...DEFAULT_NET_POLICY };
  for (const [name, keys] of Object.entries(NET_ENV)) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") continue;
    if (!/^\s*[0-9]+\s*$/.test(raw)) {
      throw new SigferryError("USAGE", `${name} must be a whole number, not "${raw}"`);
    }
    for (const key of keys) policy[key] = Number(raw);
  }
  for (const [key, value] of Object.entries(overrides) as [keyof NetPolicy, unknown][]) {
    if (typeof value === "number") policy[key] = value;
  }
  check("attempts", policy.attempts, 1);
  for (const key of Object.keys(policy) as (keyof NetPolicy)[]) {
    if (key !== "attempts") check(key, policy[key], 0);
  }
  // undici reads 0 as "no timeout": never let a typo turn a timeout off.
  for (const key of [
    "connectTimeoutMs",
    "headersTimeoutMs",
    "bodyTimeoutMs",
    "deadlineMs",
  ] as const) {
    check(key, policy[key], 1);
  }
  return policy;
}
