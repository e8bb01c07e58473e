/**
 * The shared network policy (src/net/): settings from the environment,
 * Retry-After, exponential backoff with full jitter, bounded attempts and a
 * bounded total time, and Ctrl-C never retried.
 */
import { describe, expect, it } from "vitest";
import { SigferryError, isSigferryError } from "../../src/errors.js";
import { DEFAULT_NET_POLICY, resolveNetPolicy, type NetPolicy } from "../../src/net/policy.js";
import {
  DeadlineExceeded,
  backoffCeiling,
  isDeadline,
  isTransientTransport,
  markTransient,
  parseRetryAfter,
  withRetry,
  type RetryEvent,
} from "../../src/net/retry.js";
import { mulberry32 } from "../world/fault-proxy.js";

const quick: NetPolicy = {
  ...DEFAULT_NET_POLICY,
  attempts: 5,
  deadlineMs: 5_000,
  backoffMs: 10,
  maxBackoffMs: 40,
  maxRetryAfterMs: 100,
};

function transientError(message = "HTTP 503", retryAfterMs?: number): SigferryError {
  return markTransient(new SigferryError("HTTP_STATUS", message), retryAfterMs);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("resolveNetPolicy", () => {
  it("uses the defaults: 5 attempts within 60 s, 10 s to connect, 30 s of silence", () => {
    expect(resolveNetPolicy({}, {})).toEqual(DEFAULT_NET_POLICY);
    expect(DEFAULT_NET_POLICY).toMatchObject({
      attempts: 5,
      deadlineMs: 60_000,
      connectTimeoutMs: 10_000,
      headersTimeoutMs: 30_000,
      bodyTimeoutMs: 30_000,
    });
  });

  it("reads SIGFERRY_NET_* and lets explicit options win over them", () => {
    const env = {
      SIGFERRY_NET_ATTEMPTS: "3",
      SIGFERRY_NET_DEADLINE_MS: "2000",
      SIGFERRY_NET_READ_TIMEOUT_MS: "700",
      SIGFERRY_NET_CONNECT_TIMEOUT_MS: "900",
    };
    expect(resolveNetPolicy({}, env)).toMatchObject({
      attempts: 3,
      deadlineMs: 2000,
      headersTimeoutMs: 700,
      bodyTimeoutMs: 700,
      connectTimeoutMs: 900,
    });
    expect(resolveNetPolicy({ attempts: 1 }, env).attempts).toBe(1);
  });

  it("refuses a malformed value with USAGE naming the variable, and never a 0 timeout", () => {
    const bad = (env: NodeJS.ProcessEnv): unknown => {
      try {
        resolveNetPolicy({}, env);
      } catch (err) {
        return err;
      }
      return undefined;
    };
    const e = bad({ SIGFERRY_NET_ATTEMPTS: "five" });
    expect(isSigferryError(e, "USAGE")).toBe(true);
    expect((e as Error).message).toContain("SIGFERRY_NET_ATTEMPTS");
    expect(isSigferryError(bad({ SIGFERRY_NET_ATTEMPTS: "0" }), "USAGE")).toBe(true);
    // undici reads 0 as "no timeout at all".
    expect(isSigferryError(bad({ SIGFERRY_NET_READ_TIMEOUT_MS: "0" }), "USAGE")).toBe(true);
  });
});

describe("parseRetryAfter (RFC 9110 §10.2.3)", () => {
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  it("reads delay-seconds", () => {
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter(["0"], now)).toBe(0);
  });
  it("reads an HTTP-date, a past one as no wait", () => {
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)).toBe(0);
  });
  it("ignores what is neither", () => {
    for (const v of [undefined, "", "soon", "-1", "1.5", "2015-10-21"]) {
      expect(parseRetryAfter(v, now)).toBeUndefined();
    }
  });
});

describe("withRetry", () => {
  it("retries a transient failure with full-jitter backoff and returns the first success", async () => {
    const events: RetryEvent[] = [];
    let calls = 0;
    const got = await withRetry(
      async () => {
        if (++calls < 4) throw transientError();
        return "ok";
      },
      { policy: quick, what: "GET x", random: mulberry32(7), onRetry: (e) => events.push(e) },
    );
    expect(got).toBe("ok");
    expect(calls).toBe(4);
    expect(events.map((e) => e.attempt)).toEqual([1, 2, 3]);
    // Full jitter: each wait is uniform in [0, ceiling), the ceiling doubling and capped.
    events.forEach((e, i) => {
      expect(e.delayMs).toBeGreaterThanOrEqual(0);
      expect(e.delayMs).toBeLessThan(backoffCeiling(i + 1, quick));
    });
    expect([1, 2, 3, 4].map((r) => backoffCeiling(r, quick))).toEqual([10, 20, 40, 40]);
  });

  it("never retries what is not marked transient (a 404, a 403, a digest mismatch)", async () => {
    let calls = 0;
    const err = await rejection(
      withRetry(
        async () => {
          calls++;
          throw new SigferryError("AUTH_DENIED", "403");
        },
        { policy: quick, what: "GET x" },
      ),
    );
    expect(isSigferryError(err, "AUTH_DENIED")).toBe(true);
    expect(calls).toBe(1);
  });

  it("stops after the set number of attempts and throws the last error", async () => {
    let calls = 0;
    const err = await rejection(
      withRetry(
        async () => {
          throw transientError(`HTTP 503 #${++calls}`);
        },
        { policy: { ...quick, attempts: 3 }, what: "GET x" },
      ),
    );
    expect(calls).toBe(3);
    expect((err as Error).message).toBe("HTTP 503 #3");
  });

  it("waits what Retry-After asks, capped by maxRetryAfterMs", async () => {
    const waits: number[] = [];
    let calls = 0;
    const t0 = performance.now();
    await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw transientError("429", 60);
        if (calls === 2) throw transientError("429", 3_600_000);
      },
      { policy: quick, what: "GET x", onRetry: (e) => waits.push(e.delayMs) },
    );
    expect(waits).toEqual([60, quick.maxRetryAfterMs]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
  });

  it("gives up at once when the wait would end past the deadline", async () => {
    let calls = 0;
    const t0 = performance.now();
    const err = await rejection(
      withRetry(
        async () => {
          calls++;
          throw transientError("503", 5_000);
        },
        { policy: { ...quick, deadlineMs: 1_000, maxRetryAfterMs: 10_000 }, what: "GET x" },
      ),
    );
    expect((err as Error).message).toBe("503");
    expect(calls).toBe(1);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it("aborts an attempt still running at the deadline, with a DeadlineExceeded reason", async () => {
    const t0 = performance.now();
    const err = await rejection(
      withRetry(
        ({ signal }) =>
          new Promise((_resolve, reject) => {
            signal.addEventListener("abort", () => reject(signal.reason as Error));
          }),
        { policy: { ...quick, deadlineMs: 300 }, what: "GET x" },
      ),
    );
    expect(err).toBeInstanceOf(DeadlineExceeded);
    expect(isDeadline(err)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it("stops a wait on Ctrl-C with INTERRUPTED, and never retries after it", async () => {
    const controller = new AbortController();
    let calls = 0;
    const t0 = performance.now();
    const pending = withRetry(
      async () => {
        calls++;
        throw transientError("503", 60_000);
      },
      {
        policy: { ...quick, maxRetryAfterMs: 60_000, deadlineMs: 120_000 },
        what: "GET x",
        signal: controller.signal,
      },
    );
    setTimeout(
      () => controller.abort(new SigferryError("INTERRUPTED", "interrupted by signal")),
      50,
    );
    const err = await rejection(pending);
    expect(isSigferryError(err, "INTERRUPTED")).toBe(true);
    expect(calls).toBe(1);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });
});

describe("isTransientTransport", () => {
  const withCode = (code: string): Error => Object.assign(new Error(code), { code });
  it("retries resets and timeouts, a refused connection only once the origin has answered", () => {
    expect(isTransientTransport(withCode("ECONNRESET"), false)).toBe(true);
    expect(isTransientTransport(new Error("x", { cause: withCode("UND_ERR_SOCKET") }), false)).toBe(
      true,
    );
    expect(isTransientTransport(withCode("UND_ERR_HEADERS_TIMEOUT"), false)).toBe(true);
    expect(isTransientTransport(withCode("ECONNREFUSED"), false)).toBe(false);
    expect(isTransientTransport(withCode("ECONNREFUSED"), true)).toBe(true);
    expect(isTransientTransport(withCode("ENOTFOUND"), true)).toBe(false);
    expect(isTransientTransport(new DeadlineExceeded(1000), true)).toBe(false);
  });
});
