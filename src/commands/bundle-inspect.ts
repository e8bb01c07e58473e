/**
 * `sigferry bundle inspect <archive>`: what an archive holds, without trusting
 * it. The archive is read with the hardened reader and its index validated, but
 * no signature is checked: the output says UNVERIFIED until `bundle verify` passes.
 */
import { readArchive } from "../archive/reader.js";
import { MEMBER, type BundleIndex } from "../core/bundle-index.js";
import { parseBundleIndex } from "../core/index-validate.js";
import { SigferryError } from "../errors.js";
import type { OutputOptions, Reporter } from "./output.js";

/** The --json document of inspect. */
export interface InspectResult {
  verified: false;
  note: string;
  archive: { file: string; sha256: string; size: number; gzip: boolean; members: number };
  createdAt: string;
  tool: BundleIndex["tool"];
  formatVersion: number;
  releases: {
    version?: string;
    arch: string;
    digest: string;
    perArch: { arch: string; digest: string }[];
    openpgp: number;
    sigstore: number;
  }[];
  keys: {
    openpgp: { fingerprint: string; userIds: string[] }[];
    sigstore: { id: string; algorithm: string }[];
  };
  counts: {
    openpgp: number;
    sigstore: number;
    configMaps: number;
    rejected: number;
    missing: number;
  };
}

/** Reads an archive and summarises its index. */
export async function runInspect(file: string, _options: OutputOptions): Promise<InspectResult> {
  const archive = await readArchive(file);
  const indexBytes = archive.members.get(MEMBER.index);
  if (!indexBytes)
    throw new SigferryError("INDEX_INVALID", `${file}: no ${MEMBER.index}; not a sigferry bundle`, {
      details: { file },
    });
  const index = parseBundleIndex(indexBytes, new Set(archive.members.keys()));
  return {
    verified: false,
    note: "UNVERIFIED: contents as the archive claims them; run `sigferry bundle verify` before trusting them",
    archive: {
      file,
      sha256: archive.sha256,
      size: archive.size,
      gzip: archive.gzip,
      members: archive.members.size,
    },
    createdAt: index.createdAt,
    tool: index.tool,
    formatVersion: index.formatVersion,
    releases: index.releases.map((r) => {
      const digests = new Set([r.digest, ...(r.manifests ?? []).map((m) => m.digest)]);
      return {
        ...(r.version !== undefined ? { version: r.version } : {}),
        arch: r.arch,
        digest: r.digest,
        perArch: (r.manifests ?? []).map((m) => ({ arch: m.arch, digest: m.digest })),
        openpgp: index.openpgp.filter((s) => s.digest === r.digest).length,
        sigstore: index.sigstore.filter((s) => digests.has(s.digest)).length,
      };
    }),
    keys: {
      openpgp: index.keys.openpgp.map((k) => ({ fingerprint: k.fingerprint, userIds: k.userIds })),
      sigstore: index.keys.sigstore.map((k) => ({ id: k.id, algorithm: k.algorithm })),
    },
    counts: {
      openpgp: index.openpgp.length,
      sigstore: index.sigstore.length,
      configMaps: index.configMaps.length,
      rejected: index.rejected.length,
      missing: index.missing.length,
    },
  };
}

/** Prints an inspect result for people. */
export function printInspectResult(r: InspectResult, reporter: Reporter): void {
  reporter.resultJson(r);
  if (reporter.json) return;
  reporter.result(r.note);
  reporter.result(
    `archive   ${r.archive.file} (${r.archive.size} bytes, ${r.archive.members} members${r.archive.gzip ? ", gzip" : ""})`,
  );
  reporter.result(`sha256    ${r.archive.sha256}`);
  reporter.result(
    `created   ${r.createdAt} by ${r.tool.name} ${r.tool.version} (bundle format ${r.formatVersion})`,
  );
  reporter.result("releases:");
  for (const rel of r.releases) {
    reporter.result(
      `  ${(rel.version ?? "-").padEnd(12)} ${rel.arch.padEnd(8)} ${rel.digest}  openpgp ${rel.openpgp}  sigstore ${rel.sigstore}`,
    );
    for (const p of rel.perArch) reporter.result(`      ${p.arch.padEnd(8)} ${p.digest}`);
  }
  reporter.result("keys:");
  for (const k of r.keys.openpgp)
    reporter.result(`  openpgp  ${k.fingerprint}  ${k.userIds.join("; ")}`);
  for (const k of r.keys.sigstore) reporter.result(`  sigstore ${k.id}  ${k.algorithm}`);
  const c = r.counts;
  reporter.result(
    `${c.openpgp} OpenPGP signature(s), ${c.sigstore} sigstore artifact(s), ${c.configMaps} ConfigMap(s), ${c.rejected} rejected, ${c.missing} missing`,
  );
}
