/**
 * `sigferry bundle inspect <archive>`: what an archive holds, without trusting
 * it. The archive is read with the hardened reader and its index validated, but
 * no signature is checked: the output says UNVERIFIED until `bundle verify` passes.
 * `--format markdown` prints the REPORT.md summary regenerated from the index,
 * for a change-ticket comment.
 */
import { indexText } from "../archive/bundle.js";
import { memberPieces, samePieces } from "../archive/member-read.js";
import { readArchive } from "../archive/reader.js";
import { MEMBER, type BundleIndex } from "../core/bundle-index.js";
import { parseBundleIndex } from "../core/index-validate.js";
import { renderReport, reportParts } from "../core/report.js";
import { SigferryError } from "../errors.js";
import type { OutputOptions, Reporter } from "./output.js";

/** The output formats of inspect. */
export const INSPECT_FORMATS = ["text", "markdown", "json"] as const;
/** One output format of inspect. */
export type InspectFormat = (typeof INSPECT_FORMATS)[number];

/** Options of `bundle inspect`. */
export interface InspectOptions extends OutputOptions {
  format?: string;
}

/** The format asked for: --format, with --json as a synonym of --format json. */
export function inspectFormat(options: InspectOptions): InspectFormat {
  const format = options.format ?? (options.json ? "json" : "text");
  if (!(INSPECT_FORMATS as readonly string[]).includes(format))
    throw new SigferryError("USAGE", `--format ${format}: give text, markdown or json`);
  if (options.json && format !== "json")
    throw new SigferryError("USAGE", `--json and --format ${format} disagree; give one of them`);
  return format as InspectFormat;
}

/** The --json document of inspect. */
export interface InspectResult {
  ok: true;
  verified: false;
  note: string;
  /**
   * REPORT.md against the report regenerated from the index: "matches", "differs"
   * (someone edited one of them) or "absent" (an archive written before REPORT.md existed).
   */
  report: "matches" | "differs" | "absent";
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

/** An inspected archive: the summary, and the index it came from. */
export interface Inspected {
  result: InspectResult;
  index: BundleIndex;
}

/** Reads an archive and summarises its index. */
export async function runInspect(file: string, _options: InspectOptions): Promise<InspectResult> {
  return (await inspectArchive(file)).result;
}

/** Reads an archive with the hardened reader, validates its index and summarises it. */
export async function inspectArchive(file: string): Promise<Inspected> {
  const archive = await readArchive(file);
  const text = indexText(archive.members);
  if (text === undefined)
    throw new SigferryError("INDEX_INVALID", `${file}: no ${MEMBER.index}; not a sigferry bundle`, {
      details: { file },
    });
  const index = parseBundleIndex(text, new Set(archive.members.keys()));
  const report: InspectResult["report"] = !archive.members.has(MEMBER.report)
    ? "absent"
    : samePieces(memberPieces(archive.members, MEMBER.report), reportParts(index))
      ? "matches"
      : "differs";
  const result: InspectResult = {
    ok: true,
    verified: false,
    report,
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
  return { result, index };
}

/** Prints an inspected archive in the format asked for. */
export function printInspected(
  inspected: Inspected,
  format: InspectFormat,
  reporter: Reporter,
): void {
  const r = inspected.result;
  if (r.report === "differs") {
    reporter.warn(
      `${MEMBER.report} in ${r.archive.file} differs from the report regenerated from its index; trust neither until \`sigferry bundle verify\` passes`,
    );
  }
  if (format === "markdown") {
    reporter.resultText(
      renderReport(inspected.index, {
        unverified: { file: r.archive.file, sha256: r.archive.sha256, size: r.archive.size },
      }),
    );
    return;
  }
  printInspectResult(r, reporter);
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
    `report    ${MEMBER.report} ${r.report === "matches" ? "matches the index" : r.report === "differs" ? "DIFFERS from the index" : "absent"}`,
  );
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
