/**
 * The bundle index (`index.json`), format version 1: what an archive holds and
 * how each piece was obtained. Specified in docs/bundle-format.md. Pure: no I/O.
 */
import type { Digest } from "./digest.js";

/** The format name written in every index. */
export const BUNDLE_FORMAT = "sigferry-bundle";
/** The bundle format version this build writes and reads. */
export const BUNDLE_FORMAT_VERSION = 1;

/** Fixed member paths of the archive. */
export const MEMBER = {
  index: "index.json",
  checksums: "checksums.sha256",
  report: "REPORT.md",
  openpgpKeysDir: "keys/openpgp/",
  sigstoreKeysDir: "keys/sigstore/",
  openpgpDir: "openpgp/",
  configMapsDir: "configmaps/",
  /** An OCI image layout (image-spec image-layout.md) holding every `.sig` artifact. */
  sigstoreLayout: "sigstore/",
} as const;

/** One per-arch manifest inside a multi-arch release index. */
export interface BundlePlatformManifest {
  digest: Digest;
  mediaType: string;
  /** Tag arch name (x86_64, aarch64, ppc64le, s390x); OCI platform arch mapped. */
  arch: string;
  os: string;
}

/** One release (version + arch) in the bundle. */
export interface BundleRelease {
  /** Release version, e.g. "4.15.0"; absent when selected by --digest alone. */
  version?: string;
  /** Tag arch: x86_64, aarch64, ppc64le, s390x or multi. */
  arch: string;
  /** The tag the digest was resolved from, if any. */
  tag?: string;
  /** The release payload digest: the one the CVO verifies. */
  digest: Digest;
  /** Media type of the release manifest (Docker v2 schema 2 or OCI; list/index for multi). */
  mediaType: string;
  /** For multi releases: the per-arch manifests the index names. */
  manifests?: BundlePlatformManifest[];
  /** How the release was chosen: "tag", "digest" or "graph:<channel>". */
  resolvedBy: string;
}

/** One OpenPGP atomic container signature carried in the bundle. */
export interface OpenPgpSignatureEntry {
  /** The image digest the signature is for. */
  digest: Digest;
  /** Archive member: openpgp/sha256=<hex>/signature-<n>, n = 1.. contiguous per digest. */
  path: string;
  /** The signed docker-reference identity. */
  identity: string;
  /** Fingerprint (40 uppercase hex) of the key that verified it. */
  signer: string;
  /** Where it was fetched from (URL). */
  source: string;
}

/** One layer (one signature) of a cosign `.sig` manifest. */
export interface SigstoreLayerEntry {
  digest: Digest;
  size: number;
  /** Id (sha256 hex of the DER SubjectPublicKeyInfo) of the key or certificate key that verified it. */
  signer: string;
  /** The signed docker-reference identity. */
  identity: string;
}

/** One cosign signature artifact (`sha256-<hex>.sig`) carried in the bundle. */
export interface SigstoreArtifactEntry {
  /** The image digest the artifact signs. */
  digest: Digest;
  /** The tag it lives under: sha256-<hex>.sig. */
  tag: string;
  /** The manifest, exactly as fetched (bytes in the layout's blobs). */
  manifest: { digest: Digest; mediaType: string; size: number };
  /** Config blob descriptor. */
  config: { digest: Digest; mediaType: string; size: number };
  layers: SigstoreLayerEntry[];
  /** Where it was fetched from: host/repo:tag. */
  source: string;
}

/** One ConfigMap for the CVO. */
export interface ConfigMapEntry {
  name: string;
  namespace: string;
  /** Archive member: configmaps/<name>.yaml. */
  path: string;
  /** The release digest the ConfigMap carries signatures for. */
  digest: Digest;
  /** binaryData keys, in order: sha256-<hex>-<n>. */
  keys: string[];
}

/** A trusted OpenPGP public key carried for reference (never a source of trust by itself). */
export interface OpenPgpKeyEntry {
  fingerprint: string;
  path: string;
  userIds: string[];
}

/** A trusted sigstore public key carried for reference. */
export interface SigstoreKeyEntry {
  /** sha256 hex of the DER SubjectPublicKeyInfo. */
  id: string;
  path: string;
  /** e.g. "rsa-4096", "ecdsa-p256". */
  algorithm: string;
}

/** A signature that was found but not carried, with the reason (for the audit trail). */
export interface RejectedSignature {
  kind: "openpgp" | "sigstore";
  digest: Digest;
  source: string;
  code: string;
  reason: string;
}

/** A required signature that could not be collected (only with --keep-going). */
export interface MissingSignature {
  kind: "openpgp" | "sigstore";
  digest: Digest;
  release: string;
  code: string;
  reason: string;
  tried: string[];
}

/** The whole index. */
export interface BundleIndex {
  format: typeof BUNDLE_FORMAT;
  formatVersion: typeof BUNDLE_FORMAT_VERSION;
  tool: { name: "sigferry"; version: string };
  /** ISO 8601 UTC, from SOURCE_DATE_EPOCH when set. */
  createdAt: string;
  /** The selection that produced the bundle, as the user gave it. */
  selection: Record<string, unknown>;
  sources: { releaseRepo: string; signatureStores: string[] };
  /** The signature kinds the creator required. */
  required: ("openpgp" | "sigstore")[];
  releases: BundleRelease[];
  openpgp: OpenPgpSignatureEntry[];
  sigstore: SigstoreArtifactEntry[];
  configMaps: ConfigMapEntry[];
  keys: { openpgp: OpenPgpKeyEntry[]; sigstore: SigstoreKeyEntry[] };
  rejected: RejectedSignature[];
  missing: MissingSignature[];
}
