/**
 * Parsing of OCI / Docker manifests and indexes: just enough structure to find
 * per-arch manifests of a release and the blobs of a `.sig` artifact. Pure.
 * Specs: OCI image-spec manifest.md, image-index.md, descriptor.md; Docker
 * image manifest v2 schema 2 (and manifest list).
 */
import { isDigest, type Digest } from "./digest.js";
import { SigferryError } from "../errors.js";

export const INDEX_MEDIA_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);
export const IMAGE_MANIFEST_MEDIA_TYPES = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
]);

/** A content descriptor (digest, media type, size, optional annotations and platform). */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

/** A parsed manifest: either an index (list) or an image manifest. */
export type ParsedManifest =
  | { kind: "index"; mediaType: string; manifests: Descriptor[] }
  | { kind: "manifest"; mediaType: string; config: Descriptor; layers: Descriptor[] };

function fail(where: string, why: string): never {
  throw new SigferryError("REGISTRY_PROTOCOL", `${where}: ${why}`);
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== "object" || value === null) fail(where, "descriptor is not an object");
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string") fail(where, "descriptor has no mediaType");
  if (!isDigest(d.digest))
    fail(where, `descriptor digest ${JSON.stringify(d.digest)} is not a sha256 digest`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    fail(where, "descriptor size is not a non-negative integer");
  }
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.annotations !== undefined) {
    if (typeof d.annotations !== "object" || d.annotations === null)
      fail(where, "annotations is not an object");
    const ann: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.annotations)) {
      if (typeof v !== "string") fail(where, `annotation ${k} is not a string`);
      ann[k] = v;
    }
    out.annotations = ann;
  }
  if (d.platform !== undefined) {
    const p = d.platform as Record<string, unknown>;
    if (
      typeof p !== "object" ||
      p === null ||
      typeof p.architecture !== "string" ||
      typeof p.os !== "string"
    ) {
      fail(where, "platform needs architecture and os");
    }
    out.platform = { architecture: p.architecture, os: p.os };
    if (typeof p.variant === "string") out.platform.variant = p.variant;
  }
  return out;
}

/**
 * Parses manifest bytes. The media type comes from the body's `mediaType` when
 * present, else from the Content-Type the registry sent (Docker schema 2 always
 * carries it; OCI manifests may omit it).
 */
export function parseManifest(
  bytes: Uint8Array,
  contentType: string | undefined,
  where: string,
): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    fail(where, "manifest is not valid JSON");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    fail(where, "manifest is not a JSON object");
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion !== 2)
    fail(where, `unsupported manifest schemaVersion ${JSON.stringify(m.schemaVersion)}`);
  const mediaType =
    typeof m.mediaType === "string"
      ? m.mediaType
      : (contentType ?? "").split(";")[0]?.trim() || undefined;
  const isIndex =
    mediaType !== undefined ? INDEX_MEDIA_TYPES.has(mediaType) : Array.isArray(m.manifests);
  if (isIndex) {
    if (!Array.isArray(m.manifests)) fail(where, "index has no manifests array");
    return {
      kind: "index",
      mediaType: mediaType ?? "application/vnd.oci.image.index.v1+json",
      manifests: m.manifests.map((d, i) => parseDescriptor(d, `${where} manifests[${i}]`)),
    };
  }
  if (mediaType !== undefined && !IMAGE_MANIFEST_MEDIA_TYPES.has(mediaType)) {
    fail(where, `unsupported manifest media type ${mediaType}`);
  }
  if (!Array.isArray(m.layers)) fail(where, "manifest has no layers array");
  return {
    kind: "manifest",
    mediaType: mediaType ?? "application/vnd.oci.image.manifest.v1+json",
    config: parseDescriptor(m.config, `${where} config`),
    layers: m.layers.map((d, i) => parseDescriptor(d, `${where} layers[${i}]`)),
  };
}

/**
 * The config blob cosign writes for a `.sig` image whose layers have these digests:
 * go-containerregistry's `empty.Image` with the signature layers appended, its
 * `v1.ConfigFile` marshalled by encoding/json (field order architecture, created,
 * history, os, rootfs, config; a zero time for every date; one history entry per
 * layer). The simple-signing layers are stored uncompressed, so each diff_id is the
 * layer's own digest. Every real `.sig` artifact in `../shared/real/cosign-sig-layouts`
 * has exactly these bytes.
 *
 * A registry serves what it stores, so a caller may use these bytes in place of a
 * config only after checking they hash to the manifest's config digest.
 */
export function cosignSigConfigBytes(layerDigests: readonly Digest[]): Uint8Array {
  const zeroTime = "0001-01-01T00:00:00Z";
  return new TextEncoder().encode(
    JSON.stringify({
      architecture: "",
      created: zeroTime,
      history: layerDigests.map(() => ({ created: zeroTime })),
      os: "",
      rootfs: { type: "layers", diff_ids: layerDigests },
      config: {},
    }),
  );
}
