/**
 * Error classes with stable codes, and the one table that turns a code into a
 * user hint and an exit code. Every layer throws a SigferryError (or a subclass)
 * carrying a code from ERROR_CODES; the CLI edge is the only place that prints.
 */

/** Exit codes, documented in docs/user-guide.md ("Exit codes"). */
export const EXIT = {
  OK: 0,
  /** An unexpected failure: a bug, or an environment we did not foresee. */
  INTERNAL: 1,
  /** Bad flags, bad input files, unreadable configuration. */
  USAGE: 2,
  /** A remote (registry, signature store, update graph, Kubernetes API) failed or refused. */
  REMOTE: 3,
  /** A release or a required signature is missing or does not verify (create). */
  SIGNATURE: 4,
  /** The archive is corrupt, truncated, tampered with or hostile. */
  CORRUPT: 5,
  /** A signature verifies only with a key that is not trusted. */
  UNTRUSTED: 6,
  /** `check` (or `apply` with warnings treated as failures) found something missing. */
  INCOMPLETE: 7,
  /** Interrupted by a signal (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

interface CodeInfo {
  exit: ExitCode;
  hint: string;
}

/**
 * Every stable error code, with its exit code and the hint printed under the
 * message. Codes are part of the public contract (--json output carries them).
 */
export const ERROR_CODES = {
  // usage and input
  USAGE: { exit: EXIT.USAGE, hint: "Run the command with --help to see its options." },
  INVALID_REFERENCE: {
    exit: EXIT.USAGE,
    hint: "Write repositories as host[:port]/path, e.g. quay.io/openshift-release-dev/ocp-release.",
  },
  INVALID_DIGEST: {
    exit: EXIT.USAGE,
    hint: "Write digests as sha256: followed by 64 lowercase hex digits.",
  },
  INVALID_VERSION: {
    exit: EXIT.USAGE,
    hint: "Write versions as in the release tags, e.g. 4.15.0.",
  },
  INVALID_CONFIG: {
    exit: EXIT.USAGE,
    hint: "Fix the named key in the configuration file; see docs/user-guide.md.",
  },
  INPUT_READ_FAILED: { exit: EXIT.USAGE, hint: "Check that the file exists and is readable." },
  KEY_INVALID: {
    exit: EXIT.USAGE,
    hint: "Pass an armored OpenPGP public key (--keyring) or a PEM public key (--sigstore-key).",
  },
  KEY_PIN_MISMATCH: {
    exit: EXIT.UNTRUSTED,
    hint: "The fetched key does not match the pinned Red Hat fingerprint. Do not trust it; pass a verified key file with --keyring/--sigstore-key.",
  },
  OUTPUT_WRITE_FAILED: {
    exit: EXIT.USAGE,
    hint: "Check that the output directory exists, is writable and has free space.",
  },
  MANIFEST_INVALID: {
    exit: EXIT.USAGE,
    hint: "The cluster resource would be rejected by the API server; fix the named field (mirror, scope or key).",
  },

  // remote
  NETWORK: {
    exit: EXIT.REMOTE,
    hint: "Check the address, the network path and any proxy (HTTPS_PROXY/NO_PROXY).",
  },
  TLS: {
    exit: EXIT.REMOTE,
    hint: "Pass the registry's CA with --ca-file, or --plain-http for a registry without TLS.",
  },
  TIMEOUT: {
    exit: EXIT.REMOTE,
    hint: "The server did not answer in time; retry, or check the link.",
  },
  HTTP_STATUS: {
    exit: EXIT.REMOTE,
    hint: "The server answered with an error; see the status above.",
  },
  AUTH_REQUIRED: {
    exit: EXIT.REMOTE,
    hint: "Log in (podman login / docker login) or pass --auth-file with credentials for this registry.",
  },
  AUTH_DENIED: {
    exit: EXIT.REMOTE,
    hint: "The credentials were refused or lack permission for this repository.",
  },
  REGISTRY_PROTOCOL: {
    exit: EXIT.REMOTE,
    hint: "The registry answered something the OCI distribution spec does not allow.",
  },
  DIGEST_MISMATCH: {
    exit: EXIT.REMOTE,
    hint: "The bytes received do not hash to the digest asked for; the source is serving corrupt or substituted content.",
  },
  STORE_UNREACHABLE: {
    exit: EXIT.REMOTE,
    hint: "Check the --signature-store URL and the network path to it.",
  },
  GRAPH_UNAVAILABLE: { exit: EXIT.REMOTE, hint: "Check --graph-url and the channel name." },
  GRAPH_REGISTRY_MISMATCH: {
    exit: EXIT.SIGNATURE,
    hint: "The update graph and the registry disagree on a release digest. Stop and find out which one is wrong.",
  },
  GRAPH_CONFLICT: {
    exit: EXIT.SIGNATURE,
    hint: "Two update-graph channels name different digests for the same release and arch. Stop and find out which one is wrong.",
  },
  KUBE_API: {
    exit: EXIT.REMOTE,
    hint: "Check the kubeconfig, the context and your permissions on openshift-config-managed.",
  },

  // release / signature content
  RELEASE_NOT_FOUND: {
    exit: EXIT.SIGNATURE,
    hint: "Check the version and arch; the tag must exist in --release-repo.",
  },
  SIGNATURE_MISSING: {
    exit: EXIT.SIGNATURE,
    hint: "No valid signature was found in any place tried. Check --signature-store, or drop the kind from --require.",
  },
  SIGNATURE_INVALID: {
    exit: EXIT.SIGNATURE,
    hint: "The signature does not verify; it was not carried.",
  },
  SIGNATURE_DIGEST_MISMATCH: {
    exit: EXIT.SIGNATURE,
    hint: "The signature is valid but for another digest; it proves nothing about this release.",
  },
  SIGNATURE_PAYLOAD_INVALID: {
    exit: EXIT.SIGNATURE,
    hint: "The signed payload is not one the cluster accepts (type, unknown field or identity).",
  },
  SIGNATURE_UNSUPPORTED: {
    exit: EXIT.SIGNATURE,
    hint: "The signature uses a format this tool (and the CVO) cannot verify.",
  },
  SIGNATURE_TOO_LARGE: {
    exit: EXIT.SIGNATURE,
    hint: "The CVO reads at most 50 KiB of a signature; this one is larger.",
  },
  UNTRUSTED_SIGNER: {
    exit: EXIT.UNTRUSTED,
    hint: "Pass the signer's public key with --keyring (OpenPGP) or --sigstore-key (sigstore) if you trust it.",
  },
  CONFIGMAP_TOO_LARGE: {
    exit: EXIT.SIGNATURE,
    hint: "A ConfigMap may hold at most 1 MiB; split the release set.",
  },

  // archive
  ARCHIVE_CORRUPT: {
    exit: EXIT.CORRUPT,
    hint: "Copy the archive again from its source; if it stays corrupt, re-run bundle create.",
  },
  ARCHIVE_TRUNCATED: { exit: EXIT.CORRUPT, hint: "The archive ends early; copy it again in full." },
  ARCHIVE_HOSTILE: {
    exit: EXIT.CORRUPT,
    hint: "The archive holds entries no sigferry archive has. Do not use it; ask its sender.",
  },
  ARCHIVE_LIMIT: {
    exit: EXIT.CORRUPT,
    hint: "The archive exceeds a safety limit; it is not a sigferry archive or was tampered with.",
  },
  CHECKSUM_MISMATCH: {
    exit: EXIT.CORRUPT,
    hint: "Copy the archive again; if it stays wrong, it was altered on the way.",
  },
  INDEX_INVALID: {
    exit: EXIT.CORRUPT,
    hint: "The bundle index is damaged or from an unknown format version.",
  },
  CONFIGMAP_MISMATCH: {
    exit: EXIT.CORRUPT,
    hint: "A ConfigMap disagrees with the verified signatures; re-run bundle create.",
  },

  // outcome
  INCOMPLETE: {
    exit: EXIT.INCOMPLETE,
    hint: "Apply the missing signatures (sigferry bundle apply), then run check again.",
  },
  INTERRUPTED: {
    exit: EXIT.INTERRUPTED,
    hint: "Interrupted. Run the same command again to finish.",
  },
  INTERNAL: {
    exit: EXIT.INTERNAL,
    hint: "This is a bug in sigferry; please report it with the command you ran.",
  },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Facts attached to an error, printed with it and carried into --json output. */
export interface ErrorDetails {
  release?: string;
  arch?: string;
  digest?: string;
  url?: string;
  member?: string;
  file?: string;
  status?: number;
  tried?: string[];
  [key: string]: unknown;
}

/** The one error type of sigferry: a stable code, the operation it belongs to, and a cause. */
export class SigferryError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: ErrorDetails } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SigferryError";
    this.code = code;
    this.details = options.details ?? {};
  }

  get exitCode(): ExitCode {
    return ERROR_CODES[this.code].exit;
  }

  get hint(): string {
    return ERROR_CODES[this.code].hint;
  }
}

/** What an operating-system error says, led by its code ("ENOSPC: no space left on device"). */
export function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const message = String(e.message ?? err);
  return e.code === undefined || message.startsWith(e.code) ? message : `${e.code}: ${message}`;
}

/** True when `err` is a SigferryError, optionally with one of the given codes. */
export function isSigferryError(err: unknown, ...codes: ErrorCode[]): err is SigferryError {
  return err instanceof SigferryError && (codes.length === 0 || codes.includes(err.code));
}

/** The hint and exit code for a code. */
export function describeCode(code: ErrorCode): CodeInfo {
  return ERROR_CODES[code];
}
