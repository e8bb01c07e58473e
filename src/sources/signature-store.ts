/**
 * The HTTP client for OpenPGP signature stores laid out as
 * `<store>/sha256=<hex>/signature-<N>`.
 *
 * Semantics follow the Cluster Version Operator's store reader (library-go
 * pkg/verify/store/sigstore/sigstore.go): try N = 1, 2, … up to 9, stop at the
 * first 404, go on past other errors, and read at most 50 KiB of each. Unlike
 * oc-mirror (which fetches only signature-1) we fetch until the store says 404.
 */
import { Agent, request, type Dispatcher } from "undici";
import { storeDirName, type Digest } from "../core/digest.js";
import { SigferryError } from "../errors.js";

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
  /** Per-request timeout for headers and body (ms). */
  timeoutMs?: number;
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

  constructor(options: SignatureStoreOptions = {}) {
    this.#options = options;
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher =
      options.dispatcher ?? new Agent({ connections: 16, keepAliveTimeout: 10_000, pipelining: 1 });
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

  /** Closes the connection pool if this client created it. */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  async #fetchOne(
    url: string,
    digest: Digest,
    index: number,
  ): Promise<Uint8Array | "end" | SigferryError> {
    const timeout = this.#options.timeoutMs ?? 30_000;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: "GET",
        dispatcher: this.#dispatcher,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: this.#options.signal,
        headers: { accept: "application/octet-stream, */*" },
      });
    } catch (cause) {
      throw storeNetworkError(url, cause);
    }
    if (res.statusCode === 404) {
      await res.body.dump();
      return "end";
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      return new SigferryError("HTTP_STATUS", `${url}: the store answered ${res.statusCode}`, {
        details: { url, status: res.statusCode, digest, index },
      });
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
      throw storeNetworkError(url, cause);
    }
    return new Uint8Array(Buffer.concat(chunks, size));
  }
}

function storeNetworkError(url: string, cause: unknown): SigferryError {
  const code = (cause as { code?: string } | undefined)?.code ?? "";
  if (
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT"
  ) {
    return new SigferryError("TIMEOUT", `${url}: the signature store did not answer in time`, {
      cause,
      details: { url },
    });
  }
  if (code === "UND_ERR_ABORTED" || (cause as Error | undefined)?.name === "AbortError") {
    return new SigferryError("INTERRUPTED", `${url}: request aborted`, { cause, details: { url } });
  }
  const why = cause instanceof Error ? cause.message : String(cause);
  return new SigferryError(
    "STORE_UNREACHABLE",
    `cannot reach the signature store at ${url}: ${why}`,
    {
      cause,
      details: { url },
    },
  );
}
