/**
 * The contract of the OCI distribution client (src/registry/client.ts), shared
 * by bundle create/apply, check and the test world.
 * Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
 */
import type { Dispatcher } from "../net/undici.js";
import type { Digest } from "../core/digest.js";
import type { NetPolicy } from "../net/policy.js";
import type { RetryEvent } from "../net/retry.js";

/** Media types sigferry sends in Accept when resolving a release tag. */
export const MANIFEST_MEDIA_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
] as const;

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";

/** A manifest as fetched: exact bytes, the digest computed from them, and its media type. */
export interface FetchedManifest {
  bytes: Uint8Array;
  digest: Digest;
  mediaType: string;
}

/** Connection settings shared by every registry a command talks to. */
export interface RegistryClientOptions {
  /** Use http:// instead of https://. */
  plainHttp?: boolean;
  /** Extra PEM CA certificates to trust, in addition to the system ones. */
  ca?: string;
  /** Turn TLS verification off (needs an explicit flag; prints a warning). */
  insecureSkipTlsVerify?: boolean;
  /**
   * Credentials lookup: registry host[:port] (and the repository, for auth files
   * with per-repository keys) → {username, password}. See src/registry/auth.ts.
   */
  credentials?: (registry: string, repository?: string) => RegistryCredentials | undefined;
  /** undici dispatcher to use (tests, proxies); default: a keep-alive Agent built from the options. */
  dispatcher?: Dispatcher;
  userAgent?: string;
  /** Abort everything in flight (Ctrl-C). */
  signal?: AbortSignal;
  /**
   * Milliseconds to wait for a connection, for response headers, and between two
   * body chunks: one value for all three (shorthand for `net`).
   */
  timeoutMs?: number;
  /** Timeouts and retry limits; default DEFAULT_NET_POLICY and the SIGFERRY_NET_* variables. */
  net?: Partial<NetPolicy>;
  /** Told before each retry (for --verbose). */
  onRetry?: (event: RetryEvent) => void;
  /** Simultaneous connections per origin for the default Agent (default 8). */
  connections?: number;
}

/** A username and password (or token) for HTTP Basic, from an auth file. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

/** What pushBlob did. */
export type BlobPushResult = "exists" | "mounted" | "uploaded";
