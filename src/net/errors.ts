/**
 * Transport failures (undici and Node errors) mapped to sigferry's stable codes,
 * shared by every HTTP client: which error codes mean a timeout, which a TLS
 * failure, and how a failed exchange with a simple GET-only source is reported.
 */
import { SigferryError, type ErrorCode } from "../errors.js";
import { errorCodes, isDeadline, isTransientTransport, markTransient } from "./retry.js";

/** undici and Node codes that mean "did not answer in time". */
export const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "ETIMEDOUT",
]);

const TLS_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_REVOKED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
  "EPROTO",
]);

/** True for an OpenSSL / Node TLS error code (certificate, handshake, protocol). */
export function isTlsCode(code: string): boolean {
  return TLS_CODES.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_");
}

/** How one GET-only source (a signature store, the update graph) names itself in errors. */
export interface SourceLabel {
  /** What was asked for, e.g. a URL or "the update graph at <url>". */
  what: string;
  /** The peer, e.g. "the signature store". */
  peer: string;
  details: Record<string, unknown>;
  /** Code and message when the peer cannot be reached at all. */
  unreachable: (why: string) => { code: ErrorCode; message: string };
}

/**
 * Maps a transport failure of a simple source to INTERRUPTED (the user aborted),
 * TIMEOUT (the run's deadline, or a stalled connection: transient), or the
 * source's "unreachable" code, marked transient when another attempt may succeed.
 */
export function sourceTransportError(
  label: SourceLabel,
  cause: unknown,
  userSignal: AbortSignal | undefined,
  reachedBefore: boolean,
): SigferryError {
  if (cause instanceof SigferryError) return cause;
  const { what, peer, details } = label;
  const codes = errorCodes(cause);
  const aborted =
    codes.includes("UND_ERR_ABORTED") || (cause as Error | undefined)?.name === "AbortError";
  if (userSignal?.aborted === true || (!isDeadline(cause) && aborted)) {
    return new SigferryError("INTERRUPTED", `${what}: request aborted`, { cause, details });
  }
  if (isDeadline(cause)) {
    return new SigferryError(
      "TIMEOUT",
      `${what}: ${peer} did not answer in time: ${(cause as Error).message}`,
      {
        cause,
        details,
      },
    );
  }
  if (codes.some((c) => c.startsWith("UND_ERR_") && TIMEOUT_CODES.has(c))) {
    return markTransient(
      new SigferryError("TIMEOUT", `${what}: ${peer} did not answer in time`, { cause, details }),
    );
  }
  const why = cause instanceof Error ? cause.message : String(cause);
  const { code, message } = label.unreachable(why);
  const err = new SigferryError(code, message, { cause, details });
  return isTransientTransport(cause, reachedBefore) ? markTransient(err) : err;
}
