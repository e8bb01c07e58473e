/**
 * The one retry policy of sigferry's HTTP clients: exponential backoff with
 * full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/),
 * a bounded number of attempts and a bounded total time per request, and
 * Retry-After honoured (RFC 9110 §10.2.3: seconds or an HTTP-date), capped.
 *
 * What is retried is decided where the error is made: a client marks an error
 * transient (`markTransient`) when the same request may well succeed later —
 * a connection reset, a timeout, 429, 500/502/503/504 — and leaves unmarked
 * what will not change (400, 401 after a fresh token, 403, 404, 422, a digest
 * that does not match, a TLS failure). `withRetry` runs one logical request,
 * attempt after attempt, while the error is transient and time is left.
 *
 * Only requests that are safe to repeat are run through `withRetry` as they
 * are; a client composes non-idempotent steps (a blob upload session) into a
 * sequence that is safe to start again from the top.
 */
import { setMaxListeners } from "node:events";
import { SigferryError } from "../errors.js";
import type { NetPolicy } from "./policy.js";

/** Statuses worth another attempt: rate limiting and the server-side failures that pass. */
export const TRANSIENT_STATUSES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/**
 * Transport failures worth another attempt: the connection broke, or a timeout
 * expired. ECONNREFUSED is not here: see `isTransientTransport`.
 */
const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
]);

/** The code the deadline abort carries. */
export const DEADLINE_CODE = "SIGFERRY_DEADLINE";

/** The reason an attempt is aborted with when the request's total time is up. */
export class DeadlineExceeded extends Error {
  readonly code = DEADLINE_CODE;
  constructor(readonly deadlineMs: number) {
    super(`no complete answer within ${formatMs(deadlineMs)} (attempts included)`);
    this.name = "DeadlineExceeded";
  }
}

/** "1.5 s", "250 ms". */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`;
}

/** The `code` of `err` and of its causes, outermost first. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 6 && typeof e === "object" && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** True when `err` (or a cause) is the deadline abort. */
export function isDeadline(err: unknown): boolean {
  return errorCodes(err).includes(DEADLINE_CODE);
}

/**
 * True when a transport failure may pass. A refused connection counts only
 * when the origin answered earlier in the run (a server restarting); refused
 * from the start means nothing listens there, and waiting will not change it.
 */
export function isTransientTransport(err: unknown, reachedBefore: boolean): boolean {
  const codes = errorCodes(err);
  if (codes.includes(DEADLINE_CODE)) return false;
  if (codes.some((c) => TRANSIENT_CODES.has(c))) return true;
  return reachedBefore && codes.includes("ECONNREFUSED");
}

/**
 * Retry-After (RFC 9110 §10.2.3) in milliseconds from `nowMs`: delay-seconds
 * or an HTTP-date; undefined when absent or malformed.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (raw === undefined || raw === "") return undefined;
  if (/^[0-9]+$/.test(raw)) return Math.min(Number(raw), 86_400) * 1000;
  // An HTTP-date has a weekday name and "GMT"; Date.parse alone accepts far more.
  if (!/^[A-Za-z]{3},? /.test(raw) || !/GMT$/.test(raw)) return undefined;
  const at = Date.parse(raw);
  if (Number.isNaN(at)) return undefined;
  return Math.max(at - nowMs, 0);
}

const transient = new WeakMap<object, { retryAfterMs?: number }>();

/** Marks `err` as worth another attempt, optionally after the server's Retry-After. */
export function markTransient<E extends Error>(err: E, retryAfterMs?: number): E {
  transient.set(err, retryAfterMs === undefined ? {} : { retryAfterMs });
  return err;
}

/** The transient mark of `err`, if it has one. */
export function transientInfo(err: unknown): { retryAfterMs?: number } | undefined {
  return typeof err === "object" && err !== null ? transient.get(err) : undefined;
}

/** The backoff ceiling before retry number `retry` (1-based): backoffMs · 2^(retry−1), capped. */
export function backoffCeiling(retry: number, policy: NetPolicy): number {
  return Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** Math.min(retry - 1, 30));
}

/** One attempt's context: its number (from 1) and the signal that ends it. */
export interface AttemptContext {
  attempt: number;
  /** Aborted on Ctrl-C (the caller's signal) or when the request's total time is up. */
  signal: AbortSignal;
}

/** Reported before each wait, for --verbose logs. */
export interface RetryEvent {
  what: string;
  /** The attempt that failed (from 1). */
  attempt: number;
  attempts: number;
  delayMs: number;
  error: unknown;
}

/** A --verbose line for a retry: what failed, why, and what happens next. */
export function describeRetry(event: RetryEvent): string {
  const why = event.error instanceof Error ? event.error.message : String(event.error);
  return `retrying (attempt ${event.attempt + 1} of ${event.attempts} in ${formatMs(event.delayMs)}): ${why}`;
}

/** How withRetry runs. */
export interface RetryOptions {
  policy: NetPolicy;
  /** What the request is, for messages ("GET https://…/signature-1"). */
  what: string;
  /** The caller's signal (Ctrl-C): ends the attempt in flight and any wait, and is never retried. */
  signal?: AbortSignal;
  onRetry?: (event: RetryEvent) => void;
  /** Uniform in [0, 1); default Math.random (tests pass a seeded one). */
  random?: () => number;
  /** Default Date.now. */
  now?: () => number;
}

function interrupted(what: string, signal: AbortSignal): SigferryError {
  const reason: unknown = signal.reason;
  if (reason instanceof SigferryError && reason.code === "INTERRUPTED") return reason;
  return new SigferryError("INTERRUPTED", `${what}: interrupted`, { cause: reason });
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function wait(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(interrupted(what, signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(interrupted(what, signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

const shared = new WeakSet<AbortSignal>();

/**
 * Runs `fn` until it succeeds, its error is not transient, the attempts are
 * used up, or the next wait would pass the deadline; then rethrows the last
 * error. Each attempt gets a signal that aborts on the caller's signal and at
 * the deadline (with a DeadlineExceeded reason, which clients map to TIMEOUT),
 * so neither a stalled server nor a trickling body holds a run longer than
 * `policy.deadlineMs`.
 */
export async function withRetry<T>(
  fn: (ctx: AttemptContext) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const { policy, signal, what } = options;
  if (signal !== undefined && !shared.has(signal)) {
    // Why: one Ctrl-C signal is shared by every request of a run, each holding
    // one listener for its lifetime (removed when it ends, so nothing leaks);
    // past 10 Node would print a leak warning on stderr at --concurrency > 10.
    setMaxListeners(0, signal);
    shared.add(signal);
  }
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const deadlineAt = now() + policy.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted === true) throw interrupted(what, signal);
    const controller = new AbortController();
    const forward = (): void => controller.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    const timer = setTimeout(
      () => controller.abort(new DeadlineExceeded(policy.deadlineMs)),
      Math.max(deadlineAt - now(), 0),
    );
    let failure: unknown;
    try {
      return await fn({ attempt, signal: controller.signal });
    } catch (err) {
      failure = err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
    // Ctrl-C is never retried (a flag read anew: the attempt may have been aborted).
    if (isAborted(signal)) throw failure;
    const mark = transientInfo(failure);
    if (mark === undefined || attempt >= policy.attempts) throw failure;
    const delayMs =
      mark.retryAfterMs !== undefined
        ? Math.min(mark.retryAfterMs, policy.maxRetryAfterMs)
        : Math.floor(random() * backoffCeiling(attempt, policy));
    // A wait that would end past the deadline cannot be followed by a useful attempt.
    if (now() + delayMs >= deadlineAt) throw failure;
    options.onRetry?.({ what, attempt, attempts: policy.attempts, delayMs, error: failure });
    await wait(delayMs, signal, what);
  }
}
