/** Small images, manifests and indexes for the registry client tests, built in memory. */
import { randomBytes } from "node:crypto";
import type { Digest } from "../../src/core/digest.js";
import { sha256Digest, type RegistryClient } from "../../src/registry/client.js";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_MANIFEST,
} from "../../src/registry/types.js";

/** Bytes with their digest and size. */
export interface Content {
  bytes: Uint8Array;
  digest: Digest;
  size: number;
}

/** A manifest (or index) with its media type. */
export interface ManifestContent extends Content {
  mediaType: string;
}

/** An image: config and layer blobs and the manifest naming them. */
export interface Image {
  config: Content;
  layer: Content;
  manifest: ManifestContent;
}

/** Wraps bytes (or text) as Content. */
export function content(data: Uint8Array | string): Content {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return { bytes, digest: sha256Digest(bytes), size: bytes.length };
}

function manifestContent(doc: unknown, mediaType: string): ManifestContent {
  // Indented and newline-terminated on purpose: a registry that re-serialised
  // the JSON would change these bytes, and the tests would see it.
  return { ...content(`${JSON.stringify(doc, null, 3)}\n`), mediaType };
}

/** An OCI image (or a Docker schema 2 image when `docker`) with random layer bytes. */
export function makeImage(kind: "oci" | "docker", arch = "amd64"): Image {
  const config = content(
    JSON.stringify({ architecture: arch, os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
  );
  const layer = content(randomBytes(1000 + Math.floor(Math.random() * 1000)));
  const oci = kind === "oci";
  const doc = {
    schemaVersion: 2,
    mediaType: oci ? OCI_MANIFEST : DOCKER_MANIFEST,
    config: {
      mediaType: oci ? OCI_CONFIG : "application/vnd.docker.container.image.v1+json",
      digest: config.digest,
      size: config.size,
    },
    layers: [
      {
        mediaType: oci
          ? "application/vnd.oci.image.layer.v1.tar+gzip"
          : "application/vnd.docker.image.rootfs.diff.tar.gzip",
        digest: layer.digest,
        size: layer.size,
      },
    ],
  };
  return { config, layer, manifest: manifestContent(doc, oci ? OCI_MANIFEST : DOCKER_MANIFEST) };
}

/** An OCI index or Docker manifest list over the given per-arch manifests. */
export function makeIndex(
  kind: "oci" | "docker",
  entries: { manifest: ManifestContent; arch: string }[],
): ManifestContent {
  const mediaType = kind === "oci" ? OCI_INDEX : DOCKER_MANIFEST_LIST;
  return manifestContent(
    {
      schemaVersion: 2,
      mediaType,
      manifests: entries.map(({ manifest, arch }) => ({
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.size,
        platform: { architecture: arch, os: "linux" },
      })),
    },
    mediaType,
  );
}

/** Pushes an image's blobs and its manifest under `tag`. */
export async function pushImage(
  client: RegistryClient,
  repo: string,
  image: Image,
  tag: string,
): Promise<Digest> {
  await client.pushBlob(repo, image.config.digest, image.config.bytes);
  await client.pushBlob(repo, image.layer.digest, image.layer.bytes);
  return client.putManifest(repo, tag, image.manifest.bytes, image.manifest.mediaType);
}
