/**
 * Release resolution and `.sig` artifact fetching on top of the registry client.
 * Tags resolve to digests computed from the manifest bytes (a Docker-Content-Digest
 * header is not proof); `.sig` artifacts are fetched byte for byte.
 */
import type { BundleRelease } from "../core/bundle-index.js";
import { sigTag, type Digest } from "../core/digest.js";
import { cosignSigConfigBytes, parseManifest, type Descriptor } from "../core/oci.js";
import { archFromPlatform, releaseTag, type ReleaseArch } from "../core/reference.js";
import { SigferryError } from "../errors.js";
import { sha256Digest, type RegistryClient } from "../registry/client.js";
import { OCI_MANIFEST } from "../registry/types.js";
import type { SigArtifact } from "../verify/sigstore.js";

/** Largest `.sig` blob (config or simple-signing layer) we accept; real ones are a few hundred bytes. */
const MAX_SIG_BLOB = 1024 * 1024;
/** Largest release config blob read to learn the arch of a digest given alone. */
const MAX_CONFIG_BLOB = 4 * 1024 * 1024;

function releaseFromManifest(
  bytes: Uint8Array,
  digest: Digest,
  contentType: string,
  where: string,
): Pick<BundleRelease, "digest" | "mediaType" | "manifests"> & {
  kind: "index" | "manifest";
  configDigest?: Digest;
} {
  const parsed = parseManifest(bytes, contentType, where);
  if (parsed.kind === "index") {
    return {
      kind: "index",
      digest,
      mediaType: parsed.mediaType,
      manifests: parsed.manifests
        .filter((m) => m.platform !== undefined)
        .map((m) => ({
          digest: m.digest,
          mediaType: m.mediaType,
          arch: archFromPlatform(m.platform?.architecture ?? "unknown"),
          os: m.platform?.os ?? "unknown",
        })),
    };
  }
  return {
    kind: "manifest",
    digest,
    mediaType: parsed.mediaType,
    configDigest: parsed.config.digest,
  };
}

/** Resolves `<version>-<arch>` in `repo` to its digest (and per-arch digests for multi). */
export async function resolveByTag(
  client: RegistryClient,
  repoLabel: string,
  repoPath: string,
  version: string,
  arch: ReleaseArch,
): Promise<BundleRelease> {
  const tag = releaseTag(version, arch);
  const fetched = await client.getManifest(repoPath, tag);
  if (!fetched) {
    throw new SigferryError(
      "RELEASE_NOT_FOUND",
      `release ${version} (${arch}): no tag ${tag} in ${repoLabel}`,
      {
        details: { release: version, arch, tried: [`${repoLabel}:${tag}`] },
      },
    );
  }
  const r = releaseFromManifest(
    fetched.bytes,
    fetched.digest,
    fetched.mediaType,
    `${repoLabel}:${tag}`,
  );
  if (arch === "multi" && r.kind !== "index") {
    throw new SigferryError(
      "RELEASE_NOT_FOUND",
      `${repoLabel}:${tag} is a single-arch manifest, not a multi index`,
      {
        details: { release: version, arch, digest: fetched.digest },
      },
    );
  }
  const release: BundleRelease = {
    version,
    arch,
    tag,
    digest: r.digest,
    mediaType: r.mediaType,
    resolvedBy: "tag",
  };
  if (r.manifests) release.manifests = r.manifests;
  return release;
}

/** Looks up a release given by digest: its media type, per-arch digests if an index, arch if single. */
export async function resolveByDigest(
  client: RegistryClient,
  repoLabel: string,
  repoPath: string,
  digest: Digest,
): Promise<BundleRelease> {
  const fetched = await client.getManifest(repoPath, digest);
  if (!fetched) {
    throw new SigferryError("RELEASE_NOT_FOUND", `no manifest ${digest} in ${repoLabel}`, {
      details: { digest, tried: [`${repoLabel}@${digest}`] },
    });
  }
  const r = releaseFromManifest(
    fetched.bytes,
    fetched.digest,
    fetched.mediaType,
    `${repoLabel}@${digest}`,
  );
  let arch = "multi";
  if (r.kind === "manifest" && r.configDigest) {
    const config = await client.getBlob(repoPath, r.configDigest, MAX_CONFIG_BLOB);
    try {
      const parsed = JSON.parse(new TextDecoder().decode(config)) as { architecture?: unknown };
      arch =
        typeof parsed.architecture === "string" ? archFromPlatform(parsed.architecture) : "unknown";
    } catch {
      arch = "unknown";
    }
  }
  const release: BundleRelease = {
    arch,
    digest: r.digest,
    mediaType: r.mediaType,
    resolvedBy: "digest",
  };
  if (r.manifests) release.manifests = r.manifests;
  return release;
}

/** A cache of blobs by digest shared by all `.sig` fetches of a run: a blob two artifacts name is fetched once. */
export type BlobCache = Map<string, Promise<Uint8Array>>;

/**
 * The config of a `.sig` manifest when it is the one cosign writes for its layers
 * (checked by digest and size), else undefined and the config must be fetched.
 */
function derivedSigConfig(
  config: Descriptor,
  layers: readonly Descriptor[],
): Uint8Array | undefined {
  if (layers.length === 0) return undefined;
  const bytes = cosignSigConfigBytes(layers.map((l) => l.digest));
  return bytes.length === config.size && sha256Digest(bytes) === config.digest ? bytes : undefined;
}

/** How {@link fetchSigArtifact} treats the config blob. */
export interface SigFetchOptions {
  /**
   * Build the config from the layer digests instead of downloading it when its digest
   * proves it is cosign's standard config: one round trip fewer per artifact. Off
   * when the point is to prove the registry holds every blob.
   */
  deriveConfig: boolean;
}

/**
 * Fetches the cosign artifact `sha256-<hex>.sig` of `imageDigest`: its manifest (exact
 * bytes) and every blob it names. Returns undefined when the tag does not exist.
 */
export async function fetchSigArtifact(
  client: RegistryClient,
  repoPath: string,
  imageDigest: Digest,
  cache: BlobCache,
  options: SigFetchOptions,
): Promise<SigArtifact | undefined> {
  const tag = sigTag(imageDigest);
  // containers/image reads only OCI image manifests for sigstore attachments; ask for exactly that.
  const fetched = await client.getManifest(repoPath, tag, [OCI_MANIFEST]);
  if (!fetched) return undefined;
  const parsed = parseManifest(fetched.bytes, fetched.mediaType, `${repoPath}:${tag}`);
  const blobs = new Map<string, Uint8Array>();
  if (parsed.kind === "manifest") {
    const derived = options.deriveConfig
      ? derivedSigConfig(parsed.config, parsed.layers)
      : undefined;
    if (derived) blobs.set(parsed.config.digest, derived);
    for (const d of derived ? parsed.layers : [parsed.config, ...parsed.layers]) {
      if (d.size > MAX_SIG_BLOB) {
        throw new SigferryError(
          "REGISTRY_PROTOCOL",
          `${repoPath}:${tag}: blob ${d.digest} is ${d.size} bytes, too large for a signature`,
          {
            details: { digest: imageDigest },
          },
        );
      }
      let pending = cache.get(d.digest);
      if (!pending) {
        pending = client.getBlob(repoPath, d.digest, MAX_SIG_BLOB);
        cache.set(d.digest, pending);
        pending.catch(() => cache.delete(d.digest));
      }
      blobs.set(d.digest, await pending);
    }
  }
  return { manifestBytes: fetched.bytes, manifestDigest: fetched.digest, blobs };
}
