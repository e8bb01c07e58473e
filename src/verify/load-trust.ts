/**
 * Gathers trusted key material for a command: key files the user passed, or
 * (on a connected machine) Red Hat's published key files, accepted only when
 * they match the fingerprints pinned in src/core/trust.ts.
 */
import { readFile } from "node:fs/promises";
import { dispatcherFromEnv, request, type Dispatcher } from "../net/undici.js";
import { SigferryError } from "../errors.js";
import { sourceTransportError } from "../net/errors.js";
import { resolveNetPolicy } from "../net/policy.js";
import { TRANSIENT_STATUSES, markTransient, parseRetryAfter, withRetry } from "../net/retry.js";
import {
  REDHAT_BETA_KEY_2,
  REDHAT_OPENPGP_KEY_URL,
  REDHAT_RELEASE_KEY_2,
  REDHAT_SIGSTORE_KEY_ID,
  REDHAT_SIGSTORE_KEY_URL,
} from "../core/trust.js";
import { loadOpenPgpKeys, selectPinned, type OpenPgpKey } from "./openpgp.js";
import { loadSigstoreKey, type SigstoreKey } from "./sigstore.js";

/** Keys a command trusts, with where each came from. */
export interface TrustedKeys {
  openpgp: OpenPgpKey[];
  sigstore: SigstoreKey[];
  /** Human-readable origin of each key set, for logs and the report. */
  origin: { openpgp: string; sigstore: string };
}

/** Options naming the key files given on the command line. */
export interface LoadTrustOptions {
  keyring?: string[];
  sigstoreKey?: string[];
  /** When no file is given, fetch Red Hat's published keys (connected side only). */
  fetchPublished: boolean;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
}

/** Reads a key file named on the command line; INPUT_READ_FAILED names it when it cannot. */
export async function readKeyFile(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (cause) {
    throw new SigferryError(
      "INPUT_READ_FAILED",
      `cannot read key file ${file}: ${(cause as Error).message}`,
      {
        cause,
        details: { file },
      },
    );
  }
}

/**
 * GETs one of Red Hat's published key files under the shared retry policy
 * (src/net/retry.ts): a reset connection, a timeout, 429 or a 5xx is tried
 * again; a 404 or a refused connection is not.
 */
async function fetchText(
  url: string,
  dispatcher: Dispatcher,
  signal: AbortSignal | undefined,
): Promise<string> {
  const policy = resolveNetPolicy();
  const what = `GET ${url}`;
  const details = { url };
  let reached = false;
  const failed = (cause: unknown): SigferryError =>
    sourceTransportError(
      {
        what,
        peer: "the key server",
        details,
        unreachable: (why) => ({
          code: "NETWORK",
          message:
            `cannot fetch Red Hat's published key from ${url}: ${why}. ` +
            "Pass the key file with --keyring/--sigstore-key instead.",
        }),
      },
      cause,
      signal,
      reached,
    );
  return withRetry(
    async ({ signal: attempt }) => {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          dispatcher,
          signal: attempt,
          headersTimeout: policy.headersTimeoutMs,
          bodyTimeout: policy.bodyTimeoutMs,
        });
      } catch (cause) {
        throw failed(cause);
      }
      reached = true;
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => undefined);
        const err = new SigferryError("HTTP_STATUS", `${url} answered ${res.statusCode}`, {
          details: { url, status: res.statusCode },
        });
        if (TRANSIENT_STATUSES.has(res.statusCode)) {
          markTransient(err, parseRetryAfter(res.headers["retry-after"]));
        }
        throw err;
      }
      try {
        return await res.body.text();
      } catch (cause) {
        throw failed(cause);
      }
    },
    { policy, what, ...(signal !== undefined ? { signal } : {}) },
  );
}

/** Loads the key files given with --keyring and --sigstore-key, as they are. */
export async function loadKeyFiles(options: {
  keyring?: string[] | undefined;
  sigstoreKey?: string[] | undefined;
}): Promise<{ openpgp: OpenPgpKey[]; sigstore: SigstoreKey[] }> {
  const openpgp: OpenPgpKey[] = [];
  const sigstore: SigstoreKey[] = [];
  for (const file of options.keyring ?? [])
    openpgp.push(...(await loadOpenPgpKeys(await readKeyFile(file), file)));
  for (const file of options.sigstoreKey ?? [])
    sigstore.push(loadSigstoreKey(await readKeyFile(file), file));
  return { openpgp, sigstore };
}

/** Loads the trusted keys: given files as they are, or Red Hat's published ones checked against the pins. */
export async function loadTrust(options: LoadTrustOptions): Promise<TrustedKeys> {
  let { openpgp, sigstore } = await loadKeyFiles(options);
  const origin = { openpgp: "none", sigstore: "none" };
  // Without a caller's dispatcher, one of our own for these downloads, closed
  // when done (there is no global one: see src/net/undici.ts).
  let own: Dispatcher | undefined;
  const fetchPublished = (url: string): Promise<string> => {
    const dispatcher = options.dispatcher ?? (own ??= dispatcherFromEnv());
    return fetchText(url, dispatcher, options.signal);
  };
  try {
    if (options.keyring && options.keyring.length > 0) {
      origin.openpgp = options.keyring.join(", ");
    } else if (options.fetchPublished) {
      const text = await fetchPublished(REDHAT_OPENPGP_KEY_URL);
      // The published file may hold several keys: only pinned fingerprints are taken.
      openpgp = selectPinned(await loadOpenPgpKeys(text, REDHAT_OPENPGP_KEY_URL), [
        REDHAT_RELEASE_KEY_2,
        REDHAT_BETA_KEY_2,
      ]);
      origin.openpgp = `${REDHAT_OPENPGP_KEY_URL} (pinned)`;
    }

    if (options.sigstoreKey && options.sigstoreKey.length > 0) {
      origin.sigstore = options.sigstoreKey.join(", ");
    } else if (options.fetchPublished) {
      const text = await fetchPublished(REDHAT_SIGSTORE_KEY_URL);
      const key = loadSigstoreKey(text, REDHAT_SIGSTORE_KEY_URL);
      // Accept fetched key material only when it is the pinned key (DOMAIN.md: pin fingerprints in code).
      if (key.id !== REDHAT_SIGSTORE_KEY_ID) {
        throw new SigferryError(
          "KEY_PIN_MISMATCH",
          `the key served at ${REDHAT_SIGSTORE_KEY_URL} has id ${key.id}, not the pinned ${REDHAT_SIGSTORE_KEY_ID}`,
          { details: { url: REDHAT_SIGSTORE_KEY_URL } },
        );
      }
      sigstore = [key];
      origin.sigstore = `${REDHAT_SIGSTORE_KEY_URL} (pinned)`;
    }
  } finally {
    await own?.close();
  }
  return { openpgp, sigstore, origin };
}
