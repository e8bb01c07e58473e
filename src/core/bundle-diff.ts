/**
 * What a newer bundle adds or drops compared with an older one: releases,
 * image digests, signatures (by digest and signer), sigstore artifacts and keys.
 * A release whose version and arch stay but whose digest changes, or an artifact
 * whose manifest changes for the same image, is called out on its own: that is
 * either a re-spin or a substitution, and someone should know which. Pure.
 */
import type { BundleIndex, BundleRelease } from "./bundle-index.js";

/** One release as the diff names it. */
export interface DiffRelease {
  version?: string;
  arch: string;
  digest: string;
}

/** One signature as the diff names it: the image digest it signs and the key that signed it. */
export interface DiffSignature {
  digest: string;
  signer: string;
  release: string;
}

/** One sigstore artifact as the diff names it. */
export interface DiffArtifact {
  digest: string;
  tag: string;
  manifestDigest: string;
  release: string;
}

/** Added and removed members of one set. */
export interface AddedRemoved<T> {
  added: T[];
  removed: T[];
}

/** The difference between two bundle indexes (old → new). */
export interface BundleDiff {
  identical: boolean;
  releases: AddedRemoved<DiffRelease> & {
    /** Same version and arch, another digest. */
    changed: { version: string; arch: string; oldDigest: string; newDigest: string }[];
  };
  digests: AddedRemoved<string>;
  signatures: { openpgp: AddedRemoved<DiffSignature>; sigstore: AddedRemoved<DiffSignature> };
  artifacts: AddedRemoved<DiffArtifact> & {
    /** Same image digest, another `.sig` manifest. */
    changed: {
      digest: string;
      tag: string;
      oldManifestDigest: string;
      newManifestDigest: string;
    }[];
  };
  keys: { openpgp: AddedRemoved<string>; sigstore: AddedRemoved<string> };
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function addedRemoved<T>(
  before: readonly T[],
  after: readonly T[],
  key: (t: T) => string,
): AddedRemoved<T> {
  const a = new Map(before.map((t) => [key(t), t]));
  const b = new Map(after.map((t) => [key(t), t]));
  const sorted = (m: Map<string, T>, other: Map<string, T>): T[] =>
    [...m.entries()]
      .filter(([k]) => !other.has(k))
      .sort(([x], [y]) => byString(x, y))
      .map(([, t]) => t);
  return { added: sorted(b, a), removed: sorted(a, b) };
}

function releaseName(r: BundleRelease): string {
  return r.version !== undefined ? `${r.version} (${r.arch})` : r.arch;
}

function labels(index: BundleIndex): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of index.releases) {
    m.set(r.digest, releaseName(r));
    for (const p of r.manifests ?? []) m.set(p.digest, `${releaseName(r)}/${p.arch}`);
  }
  return m;
}

function imageDigests(index: BundleIndex): string[] {
  const set = new Set<string>();
  for (const r of index.releases) {
    set.add(r.digest);
    for (const p of r.manifests ?? []) set.add(p.digest);
  }
  return [...set];
}

function signatures(index: BundleIndex): { openpgp: DiffSignature[]; sigstore: DiffSignature[] } {
  const names = labels(index);
  const label = (d: string): string => names.get(d) ?? "-";
  return {
    openpgp: index.openpgp.map((s) => ({
      digest: s.digest,
      signer: s.signer,
      release: label(s.digest),
    })),
    sigstore: index.sigstore.flatMap((a) =>
      a.layers.map((l) => ({ digest: a.digest, signer: l.signer, release: label(a.digest) })),
    ),
  };
}

function artifacts(index: BundleIndex): DiffArtifact[] {
  const names = labels(index);
  return index.sigstore.map((a) => ({
    digest: a.digest,
    tag: a.tag,
    manifestDigest: a.manifest.digest,
    release: names.get(a.digest) ?? "-",
  }));
}

/** Compares two (already validated) indexes: what `next` adds and drops relative to `prev`. */
export function diffBundles(prev: BundleIndex, next: BundleIndex): BundleDiff {
  const relKey = (r: DiffRelease): string => `${r.version ?? ""}|${r.arch}|${r.digest}`;
  const rel = (i: BundleIndex): DiffRelease[] =>
    i.releases.map((r) => ({
      ...(r.version !== undefined ? { version: r.version } : {}),
      arch: r.arch,
      digest: r.digest,
    }));
  const releases = addedRemoved(rel(prev), rel(next), relKey);
  const changed: BundleDiff["releases"]["changed"] = [];
  for (const r of releases.added) {
    if (r.version === undefined) continue;
    const old = releases.removed.find((o) => o.version === r.version && o.arch === r.arch);
    if (old)
      changed.push({
        version: r.version,
        arch: r.arch,
        oldDigest: old.digest,
        newDigest: r.digest,
      });
  }

  const sigKey = (s: DiffSignature): string => `${s.digest}|${s.signer}`;
  const sp = signatures(prev);
  const sn = signatures(next);

  const artKey = (a: DiffArtifact): string => `${a.digest}|${a.manifestDigest}`;
  const arts = addedRemoved(artifacts(prev), artifacts(next), artKey);
  const artChanged: BundleDiff["artifacts"]["changed"] = [];
  for (const a of arts.added) {
    const old = arts.removed.find((o) => o.digest === a.digest);
    if (old) {
      artChanged.push({
        digest: a.digest,
        tag: a.tag,
        oldManifestDigest: old.manifestDigest,
        newManifestDigest: a.manifestDigest,
      });
    }
  }

  const id = (s: string): string => s;
  const diff: BundleDiff = {
    identical: false,
    releases: { ...releases, changed },
    digests: addedRemoved(imageDigests(prev), imageDigests(next), id),
    signatures: {
      openpgp: addedRemoved(dedupe(sp.openpgp, sigKey), dedupe(sn.openpgp, sigKey), sigKey),
      sigstore: addedRemoved(dedupe(sp.sigstore, sigKey), dedupe(sn.sigstore, sigKey), sigKey),
    },
    artifacts: { ...arts, changed: artChanged },
    keys: {
      openpgp: addedRemoved(
        prev.keys.openpgp.map((k) => k.fingerprint),
        next.keys.openpgp.map((k) => k.fingerprint),
        id,
      ),
      sigstore: addedRemoved(
        prev.keys.sigstore.map((k) => k.id),
        next.keys.sigstore.map((k) => k.id),
        id,
      ),
    },
  };
  const sets: AddedRemoved<unknown>[] = [
    diff.releases,
    diff.digests,
    diff.signatures.openpgp,
    diff.signatures.sigstore,
    diff.artifacts,
    diff.keys.openpgp,
    diff.keys.sigstore,
  ];
  diff.identical = sets.every((s) => s.added.length === 0 && s.removed.length === 0);
  return diff;
}

function dedupe<T>(list: readonly T[], key: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const t of list) if (!m.has(key(t))) m.set(key(t), t);
  return [...m.values()];
}
