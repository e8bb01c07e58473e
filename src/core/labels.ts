/** Human names for release digests ("4.21.3 (multi)/aarch64"), shared by every command's output. Pure. */
import type { BundleRelease } from "./bundle-index.js";

/** The name of a release: "<version> (<arch>)", or its arch when it was given by digest. */
export function releaseName(r: BundleRelease): string {
  return r.version !== undefined ? `${r.version} (${r.arch})` : r.arch;
}

/**
 * A lookup from any digest a release set names (release or per-arch) to its human
 * name; built once, so naming n digests costs O(n), not O(n × releases).
 */
export function releaseLabeler(releases: readonly BundleRelease[]): (digest: string) => string {
  const names = new Map<string, string>();
  for (const r of releases) {
    const name = releaseName(r);
    if (!names.has(r.digest)) names.set(r.digest, name);
    for (const m of r.manifests ?? [])
      if (!names.has(m.digest)) names.set(m.digest, `${name}/${m.arch}`);
  }
  return (digest) => names.get(digest) ?? digest;
}
