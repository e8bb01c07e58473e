/**
 * Digests and the names derived from them. Pure: no I/O.
 * Digest grammar: OCI image-spec descriptor.md ("algorithm:encoded"); sigferry
 * only accepts sha256, the only algorithm OpenShift release images use.
 */
import { SigferryError } from "../errors.js";

const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** A validated `sha256:<64 hex>` string. */
export type Digest = `sha256:${string}`;

/** True when `value` is a well-formed lowercase sha256 digest. */
export function isDigest(value: unknown): value is Digest {
  return typeof value === "string" && SHA256_DIGEST.test(value);
}

/** Returns `value` as a Digest, or throws INVALID_DIGEST naming where it came from. */
export function parseDigest(value: string, where = "digest"): Digest {
  if (!isDigest(value)) {
    throw new SigferryError("INVALID_DIGEST", `${where}: "${value}" is not a sha256 digest`);
  }
  return value;
}

/** The 64 hex characters of a digest. */
export function digestHex(digest: Digest): string {
  return digest.slice("sha256:".length);
}

/** `sha256-<hex>`: the form used in cosign tags and ConfigMap names and keys. */
export function digestDashed(digest: Digest): string {
  return `sha256-${digestHex(digest)}`;
}

/** The cosign signature tag of an image digest: `sha256-<hex>.sig` (cosign's tag scheme). */
export function sigTag(digest: Digest): string {
  return `${digestDashed(digest)}.sig`;
}

/** The signature-store directory of a digest: `sha256=<hex>` (atomic signature store layout). */
export function storeDirName(digest: Digest): string {
  return `sha256=${digestHex(digest)}`;
}
