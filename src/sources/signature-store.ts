/**
 * The HTTP client for OpenPGP signature stores laid out as
 * `<store>/sha256=<hex>/signature-<N>`.
 *
 * Semantics follow the Cluster Version Operator's store reader (library-go
 * pkg/verify/store/sigstore/sigstore.go): try N = 1, 2, … up to 9, stop at the
 * first 404, go on past other errors, and read at most 50 KiB of each. Unlike
 * oc-mirror (which fetches only signature-1) we fetch until the store says 404.
 */
import { dispatcherFromEnv, request, type Dispatcher } from "../net/undici.js";
import { storeDirName, type Digest } from "../core/digest.js";
import { SigferryError } from "../errors.js";
import { sourceTransportError } from "../net/errors.js";
import { resolveNetPolicy, type NetPolicy } from "../net/policy.js";
import {
  TRANSIENT_STATUSES,
  markTransient,
  parseRetryAfter,
  transientInfo,
  withRetry,
  type RetryEvent,
} from "../net/retry.js";

/** The public signature stores, in the order the CVO's default configuration lists them. */
export const DEFAULT_SIGNATURE_STORES = [
  "https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release",
  "https://storage.googleapis.com/openshift-release/official/signatures/openshift/release",
] as const;

/** The CVO tries signature-1 .. signature-9. */
export const MAX_SIGNATURES_PER_DIGEST = 9;
/** The CVO reads at most 50 KiB of one signature. */
export const MAX_SIGNATURE_BYTES = 50 * 1024;

/** One signature file as served by a store. */
export interface StoredSignature {
  index: number;
  url: string;
  bytes: Uint8Array;
}

/** A signature slot that could not be read (not a 404): the CVO goes on past these. */
export interface StoreSlotError {
  index: number;
  url: string;
  error: SigferryError;
}

/** What one store holds for one digest. */
export interface StoreListing {
  store: string;
  signatures: StoredSignature[];
  errors: StoreSlotError[];
  /** The URLs asked, for error messages ("every place tried"). */
  tried: string[];
}

export interface SignatureStoreOptions {
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Per-request timeout for headers and body (ms); shorthand for `net`. */
  timeoutMs?: number;
  /** Timeouts and retry limits; default DEFAULT_NET_POLICY and the SIGFERRY_NET_* variables. */
  net?: Partial<NetPolicy>;
  /** Told before each retry (for --verbose). */
  onRetry?: (event: RetryEvent) => void;
}

/** The URL of signature N of a digest in a store. */
export function signatureUrl(store: string, digest: Digest, index: number): string {
  return `${store.replace(/\/+$/, "")}/${storeDirName(digest)}/signature-${index}`;
}

/** A client for one or more signature stores, sharing one keep-alive connection pool. */
export class SignatureStoreClient {
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #options: SignatureStoreOptions;
  readonly #policy: NetPolicy;
  /** Origins that have answered: a refused connection to one of them may pass. */
  readonly #reached = new Set<string>();

  constructor(options: SignatureStoreOptions = {}) {
    this.#options = options;
    const t = options.timeoutMs;
    this.#policy = resolveNetPolicy({
      ...(t !== undefined ? { headersTimeoutMs: t, bodyTimeoutMs: t } : {}),
      ...options.net,
    });
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher =
      options.dispatcher ??
      dispatcherFromEnv({
        connections: 16,
        keepAliveTimeout: 10_000,
        pipelining: 1,
        connect: { timeout: this.#policy.connectTimeoutMs },
      });
  }

  /** Fetches signature-1.. of `digest` from `store` until the first 404 (or 9), like the CVO. */
  async list(store: string, digest: Digest): Promise<StoreListing> {
    const listing: StoreListing = { store, signatures: [], errors: [], tried: [] };
    for (let index = 1; index <= MAX_SIGNATURES_PER_DIGEST; index++) {
      const url = signatureUrl(store, digest, index);
      listing.tried.push(url);
      const result = await this.#fetchOne(url, digest, index);
      if (result === "end") break;
      if (result instanceof SigferryError) listing.errors.push({ index, url, error: result });
      else listing.signatures.push({ index, url, bytes: result });
    }
    return listing;
  }

  /**
   * `list` for a caller that fetches many digests at once: every request goes
   * through `run` (the caller's concurrency limiter, one request per slot), and
   * with `speculative` signature-1 and signature-2 are asked for together. Most
   * digests have one signature, so signature-2 is usually the 404 that ends the
   * list: asking for both at once saves a round trip per digest at the cost of
   * one wasted request when signature-1 is itself missing. The result is exactly
   * what `list` returns: slots are taken in order and nothing past the first
   * 404 is kept, looked at or reported, so signature-3 is never carried when
   * signature-2 was a 404 (the CVO's rule).
   */
  async listPipelined(
    store: string,
    digest: Digest,
    options: { run: <T>(fn: () => Promise<T>) => Promise<T>; speculative?: boolean },
  ): Promise<StoreListing> {
    const ask = (index: number): Promise<Uint8Array | "end" | SigferryError> => {
      const url = signatureUrl(store, digest, index);
      const pending = options.run(() => this.#fetchOne(url, digest, index));
      // A speculative answer may never be looked at (an earlier slot ended the list).
      pending.catch(() => undefined);
      return pending;
    };
    const ahead = new Map<number, Promise<Uint8Array | "end" | SigferryError>>();
    if (options.speculative === true) {
      ahead.set(1, ask(1));
      ahead.set(2, ask(2));
    }
    const listing: StoreListing = { store, signatures: [], errors: [], tried: [] };
    for (let index = 1; index <= MAX_SIGNATURES_PER_DIGEST; index++) {
      const url = signatureUrl(store, digest, index);
      listing.tried.push(url);
      const result = await (ahead.get(index) ?? ask(index));
      if (result === "end") break;
      if (result instanceof SigferryError) listing.errors.push({ index, url, error: result });
      else listing.signatures.push({ index, url, bytes: result });
    }
    return listing;
  }

  /** Closes the connection pool if this client created it. */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  /**
   * One signature slot, under the shared retry policy: a reset connection, a
   * timeout, a body cut short, 429 or 500/502/503/504 is tried again; what
   * stays a non-404 error after that is returned (the CVO goes on past it);
   * 404 is the end of the list and is never retried.
   */
  async #fetchOne(
    url: string,
    digest: Digest,
    index: number,
  ): Promise<Uint8Array | "end" | SigferryError> {
    const origin = new URL(url).origin;
    try {
      return await withRetry(
        async ({ signal }) => {
          let res: Dispatcher.ResponseData;
          try {
            res = await request(url, {
              method: "GET",
              dispatcher: this.#dispatcher,
              headersTimeout: this.#policy.headersTimeoutMs,
              bodyTimeout: this.#policy.bodyTimeoutMs,
              signal,
              headers: { accept: "application/octet-stream, */*" },
            });
          } catch (cause) {
            throw storeNetworkError(url, cause, this.#options.signal, this.#reached.has(origin));
          }
          this.#reached.add(origin);
          if (res.statusCode === 404) {
            await res.body.dump();
            return "end" as const;
          }
          if (res.statusCode !== 200) {
            await res.body.dump().catch(() => undefined);
            const err = new SigferryError(
              "HTTP_STATUS",
              `${url}: the store answered ${res.statusCode}`,
              { details: { url, status: res.statusCode, digest, index } },
            );
            if (TRANSIENT_STATUSES.has(res.statusCode)) {
              throw markTransient(err, parseRetryAfter(res.headers["retry-after"]));
            }
            return err;
          }
          // Read at most 50 KiB + 1 so an oversized signature is recognised without reading it all.
          const chunks: Buffer[] = [];
          let size = 0;
          try {
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              size += chunk.length;
              if (size > MAX_SIGNATURE_BYTES) {
                res.body.destroy();
                return new SigferryError(
                  "SIGNATURE_TOO_LARGE",
                  `${url}: larger than ${MAX_SIGNATURE_BYTES} bytes; the CVO would not read it`,
                  { details: { url, digest, index } },
                );
              }
              chunks.push(chunk);
            }
          } catch (cause) {
            throw storeNetworkError(url, cause, this.#options.signal, true);
          }
          return new Uint8Array(Buffer.concat(chunks, size));
        },
        {
          policy: this.#policy,
          what: `GET ${url}`,
          ...(this.#options.signal !== undefined ? { signal: this.#options.signal } : {}),
          ...(this.#options.onRetry !== undefined ? { onRetry: this.#options.onRetry } : {}),
        },
      );
    } catch (err) {
      // A status error still failing after the retries is one bad slot, not an unreachable store.
      if (err instanceof SigferryError && err.code === "HTTP_STATUS" && transientInfo(err)) {
        return err;
      }
      throw err;
    }
  }
}

/** Maps a transport failure of a signature store (see net/errors.ts). */
function storeNetworkError(
  url: string,
  cause: unknown,
  userSignal: AbortSignal | undefined,
  reachedBefore: boolean,
): SigferryError {
  return sourceTransportError(
    {
      what: url,
      peer: "the signature store",
      details: { url },
      unreachable: (why) => ({
        code: "STORE_UNREACHABLE",
        message: `cannot reach the signature store at ${url}: ${why}`,
      }),
    },
    cause,
    userSignal,
    reachedBefore,
  );
}
