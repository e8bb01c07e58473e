/**
 * `sigferry bundle diff <old> <new>`: what the newer archive adds or drops
 * compared with the older one. Both are read through the integrity gate (the
 * hardened reader, the checksum list, the index) but no signature is checked:
 * the output says UNVERIFIED. Exit 0 whatever the difference; only an
 * unreadable archive fails.
 */
import { openBundle, type OpenedBundle } from "../archive/bundle.js";
import { diffBundles, type BundleDiff } from "../core/bundle-diff.js";
import type { OutputOptions, Reporter } from "./output.js";

/** One side of the diff. */
export interface DiffSide {
  file: string;
  sha256: string;
  createdAt: string;
  toolVersion: string;
  releases: number;
}

/** The --json document of diff. */
export interface DiffResult extends BundleDiff {
  ok: true;
  verified: false;
  note: string;
  old: DiffSide;
  new: DiffSide;
}

function side(b: OpenedBundle): DiffSide {
  return {
    file: b.file,
    sha256: b.sha256,
    createdAt: b.index.createdAt,
    toolVersion: b.index.tool.version,
    releases: b.index.releases.length,
  };
}

/** Reads both archives and compares their indexes. */
export async function runDiff(
  oldFile: string,
  newFile: string,
  _options: OutputOptions,
  reporter: Reporter,
): Promise<DiffResult> {
  reporter.progress("read", 0, 2, oldFile);
  const prev = await openBundle(oldFile);
  reporter.progress("read", 1, 2, newFile);
  const next = await openBundle(newFile);
  reporter.progress("read", 2, 2, "done");
  return {
    ok: true,
    verified: false,
    note: "UNVERIFIED: compares what the archives claim; run `sigferry bundle verify` on each before trusting them",
    old: side(prev),
    new: side(next),
    ...diffBundles(prev.index, next.index),
  };
}

/** Prints a diff for people: `+` added, `-` removed, `~` changed. */
export function printDiffResult(r: DiffResult, reporter: Reporter): void {
  reporter.resultJson(r);
  if (reporter.json) return;
  reporter.result(r.note);
  for (const [tag, s] of [
    ["old", r.old],
    ["new", r.new],
  ] as const) {
    reporter.result(
      `${tag}  ${s.file}  sha256 ${s.sha256}  created ${s.createdAt} by sigferry ${s.toolVersion}, ${s.releases} release(s)`,
    );
  }
  if (r.identical) {
    reporter.result("no difference in releases, digests, signatures, artifacts or keys");
    return;
  }
  const section = (title: string, lines: string[]): void => {
    if (lines.length === 0) return;
    reporter.result(`${title}:`);
    for (const l of lines) reporter.result(`  ${l}`);
  };
  const rel = (v: { version?: string; arch: string; digest: string }): string =>
    `${(v.version ?? "-").padEnd(12)} ${v.arch.padEnd(8)} ${v.digest}`;
  section("releases", [
    ...r.releases.added.map((x) => `+ ${rel(x)}`),
    ...r.releases.removed.map((x) => `- ${rel(x)}`),
    ...r.releases.changed.map(
      (c) =>
        `~ ${c.version.padEnd(12)} ${c.arch.padEnd(8)} DIGEST CHANGED ${c.oldDigest} -> ${c.newDigest}`,
    ),
  ]);
  section("image digests", [
    ...r.digests.added.map((d) => `+ ${d}`),
    ...r.digests.removed.map((d) => `- ${d}`),
  ]);
  const sig = (s: { digest: string; signer: string; release: string }): string =>
    `${s.digest} signer ${s.signer} (${s.release})`;
  section("OpenPGP signatures", [
    ...r.signatures.openpgp.added.map((s) => `+ ${sig(s)}`),
    ...r.signatures.openpgp.removed.map((s) => `- ${sig(s)}`),
  ]);
  section("sigstore signatures", [
    ...r.signatures.sigstore.added.map((s) => `+ ${sig(s)}`),
    ...r.signatures.sigstore.removed.map((s) => `- ${sig(s)}`),
  ]);
  section("sigstore artifacts", [
    ...r.artifacts.added.map((a) => `+ ${a.tag} manifest ${a.manifestDigest} (${a.release})`),
    ...r.artifacts.removed.map((a) => `- ${a.tag} manifest ${a.manifestDigest} (${a.release})`),
    ...r.artifacts.changed.map(
      (a) => `~ ${a.tag} MANIFEST CHANGED ${a.oldManifestDigest} -> ${a.newManifestDigest}`,
    ),
  ]);
  section("keys", [
    ...r.keys.openpgp.added.map((k) => `+ openpgp  ${k}`),
    ...r.keys.openpgp.removed.map((k) => `- openpgp  ${k}`),
    ...r.keys.sigstore.added.map((k) => `+ sigstore ${k}`),
    ...r.keys.sigstore.removed.map((k) => `- sigstore ${k}`),
  ]);
  const sigAdded = r.signatures.openpgp.added.length + r.signatures.sigstore.added.length;
  const sigRemoved = r.signatures.openpgp.removed.length + r.signatures.sigstore.removed.length;
  reporter.result(
    `${r.releases.added.length} release(s) added, ${r.releases.removed.length} removed` +
      (r.releases.changed.length > 0
        ? ` (${r.releases.changed.length} of them the same version with a CHANGED digest)`
        : "") +
      `; ${sigAdded} signature(s) added, ${sigRemoved} removed`,
  );
}
