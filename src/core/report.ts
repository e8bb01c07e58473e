/**
 * REPORT.md: the change-ticket summary every archive carries, rendered from the
 * bundle index alone (so a reader can regenerate it and compare). What was
 * selected and how, every release and digest, every signature with its signer
 * and result, what was rejected and why, how to check the archive, and the
 * exact commands for the disconnected side. Pure: the same index always gives
 * the same bytes.
 */
import type { BundleIndex, BundleRelease } from "./bundle-index.js";
import { isPinnedOpenPgp, isPinnedSigstore } from "./trust.js";
import { PIECE_SIZE, utf8Pieces } from "./pieces.js";

/** Extra lines for a report printed by `bundle inspect --format markdown`, not stored in archives. */
export interface ReportOptions {
  /** The archive the index was read from: marks the report UNVERIFIED and names the file and its hash. */
  unverified?: { file: string; sha256: string; size: number };
}

/** Replaces control characters (newlines included, which would end a table row) with spaces. */
function oneLine(value: string): string {
  // One scan; most values hold no control character and are returned as they are.
  let out = "";
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) {
      out += `${value.slice(from, i)} `;
      from = i + 1;
    }
  }
  return from === 0 ? value : out + value.slice(from);
}

/** Characters with a Markdown or HTML meaning, escaped with a backslash. */
const MARKDOWN_SPECIAL = /[\\`*[\]<>|~]/g;
/** An underscore inside a word (x86_64) is literal in CommonMark; only one at a word edge emphasises. */
const EDGE_UNDERSCORE = /(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g;

// Why: index fields crossed the air gap and end up in a ticket; neutralise Markdown and HTML in them.
function text(value: string): string {
  return oneLine(value).replace(MARKDOWN_SPECIAL, "\\$&").replace(EDGE_UNDERSCORE, "\\_").trim();
}

/** Inline code; a backtick in the value (never in a valid digest or path) becomes a quote. */
function code(value: string): string {
  // In a GFM table a pipe ends the cell even inside a code span unless escaped.
  return `\`${oneLine(value).replaceAll("`", "'").replaceAll("|", "\\|")}\``;
}

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function releaseName(r: BundleRelease): string {
  return r.version !== undefined ? `${r.version} (${r.arch})` : `(${r.arch})`;
}

/**
 * The release (and platform) of each image digest, for people, as rendered text: the
 * first release (in index order) whose digest, or else one of whose per-arch manifests,
 * it is. One pass over the releases, so that labelling every signature stays linear.
 */
function releaseLabels(index: BundleIndex): (digest: string) => string {
  const labels = new Map<string, string>();
  for (const r of index.releases) {
    const name = releaseName(r);
    if (!labels.has(r.digest)) labels.set(r.digest, text(name));
    for (const m of r.manifests ?? []) {
      if (!labels.has(m.digest)) labels.set(m.digest, text(`${name} / ${m.arch}`));
    }
  }
  return (digest) => labels.get(digest) ?? "-";
}

function selectionValue(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value))
    return value.length === 0 ? "-" : value.map((v) => selectionValue(v)).join(", ");
  if (typeof value === "string") return text(value);
  return text(JSON.stringify(value) ?? "-");
}

/** The signer column of each OpenPGP key fingerprint: the first carried key with it names its user ids. */
function openpgpSigners(index: BundleIndex): (fingerprint: string) => string {
  const signers = new Map<string, string>();
  return (fingerprint) => {
    let signer = signers.get(fingerprint);
    if (signer === undefined) {
      const key = index.keys.openpgp.find((k) => k.fingerprint === fingerprint);
      const who = key && key.userIds.length > 0 ? ` ${text(key.userIds.join("; "))}` : "";
      signer = `${code(fingerprint)}${who}`;
      signers.set(fingerprint, signer);
    }
    return signer;
  };
}

/** Renders REPORT.md for an index; with `options.unverified`, the variant `bundle inspect` prints. */
export function renderReport(index: BundleIndex, options: ReportOptions = {}): string {
  return `${reportLines(index, options).join("\n")}\n`;
}

/**
 * REPORT.md as UTF-8 pieces of about `pieceSize` characters, cut at line ends:
 * the same bytes as renderReport, without the whole document as one string
 * and again as bytes (2.3 MB each at 2000 releases).
 */
export function* reportParts(
  index: BundleIndex,
  options: ReportOptions = {},
  pieceSize = PIECE_SIZE,
): Generator<Uint8Array> {
  function* withEnds(lines: readonly string[]): Generator<string> {
    for (const line of lines) yield `${line}\n`;
  }
  yield* utf8Pieces(withEnds(reportLines(index, options)), pieceSize);
}

/** The lines of REPORT.md, without line ends. */
function reportLines(index: BundleIndex, options: ReportOptions): string[] {
  const out: string[] = [];
  const labelFor = releaseLabels(index);
  const openpgpSigner = openpgpSigners(index);
  const sigstoreSignatures = index.sigstore.reduce((n, a) => n + a.layers.length, 0);
  out.push("# sigferry signature bundle");
  out.push("");
  if (options.unverified) {
    const u = options.unverified;
    out.push(
      "> **UNVERIFIED.** Regenerated by `sigferry bundle inspect` from the archive's index without checking any signature. Run `sigferry bundle verify` before relying on it.",
    );
    out.push("");
    out.push(`Archive: ${code(u.file)}, ${u.size} bytes, sha256 ${code(u.sha256)}.`);
    out.push("");
  }
  out.push(
    `Written by sigferry ${text(index.tool.version)} at ${text(index.createdAt)} (bundle format ${index.formatVersion}).`,
  );
  out.push("");
  out.push(
    `It carries ${plural(index.releases.length, "release")}, ${plural(index.openpgp.length, "OpenPGP signature")} for the Cluster Version Operator, ` +
      `${plural(index.sigstore.length, "sigstore artifact")} (${plural(sigstoreSignatures, "signature")}) for the nodes, ` +
      `and ${plural(index.configMaps.length, "ConfigMap")}. ` +
      `Every signature listed here verified against a trusted key when the archive was written; ` +
      `${plural(index.rejected.length, "signature was", "signatures were")} found and rejected.`,
  );
  out.push("");
  if (index.missing.length > 0) {
    out.push(
      `**INCOMPLETE:** ${plural(index.missing.length, "required signature")} could not be collected (written with \`--keep-going\`); see "Missing signatures".`,
    );
  } else {
    out.push(
      `Complete: every required signature kind (${index.required.length > 0 ? index.required.join(", ") : "none"}) is present for every release.`,
    );
  }
  out.push("");

  // ---- selection ----
  out.push("## Selection");
  out.push("");
  out.push(
    "What was asked for, as recorded in `index.json` (`selection`), and where it came from.",
  );
  out.push("");
  const selectionRows = Object.entries(index.selection).map(([k, v]) => [
    text(k),
    selectionValue(v),
  ]);
  selectionRows.push(["release repository", code(index.sources.releaseRepo)]);
  selectionRows.push([
    "signature stores",
    index.sources.signatureStores.length > 0
      ? index.sources.signatureStores.map(code).join(", ")
      : "-",
  ]);
  selectionRows.push([
    "required signatures",
    index.required.length > 0 ? index.required.join(", ") : "none",
  ]);
  out.push(...table(["setting", "value"], selectionRows));
  out.push("");

  // ---- releases ----
  out.push("## Releases");
  out.push("");
  if (index.releases.length === 0) {
    out.push("None.");
  } else {
    out.push(
      ...table(
        ["version", "arch", "release digest", "chosen by", "tag"],
        index.releases.map((r) => [
          r.version !== undefined ? text(r.version) : "-",
          text(r.arch),
          code(r.digest),
          text(r.resolvedBy),
          r.tag !== undefined ? code(r.tag) : "-",
        ]),
      ),
    );
    const perArch = index.releases.flatMap((r) =>
      (r.manifests ?? []).map((m) => [
        text(releaseName(r)),
        text(m.arch),
        text(m.os),
        code(m.digest),
      ]),
    );
    if (perArch.length > 0) {
      out.push("");
      out.push("Per-arch manifests of multi-arch releases (nodes verify the one they run):");
      out.push("");
      out.push(...table(["release", "arch", "os", "digest"], perArch));
    }
  }
  out.push("");

  // ---- OpenPGP ----
  out.push("## OpenPGP signatures (Cluster Version Operator)");
  out.push("");
  if (index.openpgp.length === 0) {
    out.push("None.");
  } else {
    out.push(
      ...table(
        ["release", "digest", "member", "signer", "signed identity", "result"],
        index.openpgp.map((s) => [
          labelFor(s.digest),
          code(s.digest),
          code(s.path),
          openpgpSigner(s.signer),
          code(s.identity),
          "verified",
        ]),
      ),
    );
  }
  out.push("");

  // ---- sigstore ----
  out.push("## Sigstore signatures (nodes)");
  out.push("");
  if (index.sigstore.length === 0) {
    out.push("None.");
  } else {
    out.push(
      ...table(
        [
          "release",
          "image digest",
          "tag",
          "manifest digest",
          "signer key",
          "signed identity",
          "result",
        ],
        index.sigstore.flatMap((a) =>
          a.layers.map((l) => [
            labelFor(a.digest),
            code(a.digest),
            code(a.tag),
            code(a.manifest.digest),
            code(l.signer),
            code(l.identity),
            "verified",
          ]),
        ),
      ),
    );
  }
  out.push("");

  // ---- rejected ----
  out.push("## Rejected signatures");
  out.push("");
  if (index.rejected.length === 0) {
    out.push("None.");
  } else {
    out.push("Found, checked and not carried:");
    out.push("");
    out.push(
      ...table(
        ["kind", "release", "digest", "source", "code", "reason"],
        index.rejected.map((r) => [
          r.kind,
          labelFor(r.digest),
          code(r.digest),
          code(r.source),
          code(r.code),
          text(r.reason),
        ]),
      ),
    );
  }
  out.push("");

  // ---- missing ----
  if (index.missing.length > 0) {
    out.push("## Missing signatures");
    out.push("");
    out.push(
      ...table(
        ["kind", "release", "digest", "code", "reason", "tried"],
        index.missing.map((m) => [
          m.kind,
          text(m.release),
          code(m.digest),
          code(m.code),
          text(m.reason),
          m.tried.map(code).join(", ") || "-",
        ]),
      ),
    );
    out.push("");
  }

  // ---- keys ----
  out.push("## Keys");
  out.push("");
  out.push(
    "The keys that verified the signatures above, carried under `keys/` for reference only: a reader trusts a carried key only when it is one of Red Hat's pinned keys or is given on its own command line.",
  );
  out.push("");
  const keyRows = [
    ...index.keys.openpgp.map((k) => [
      "OpenPGP",
      code(k.fingerprint),
      text(k.userIds.join("; ")) || "-",
      isPinnedOpenPgp(k.fingerprint) ? "yes (Red Hat)" : "no",
    ]),
    ...index.keys.sigstore.map((k) => [
      "sigstore",
      code(k.id),
      text(k.algorithm),
      isPinnedSigstore(k.id) ? "yes (Red Hat)" : "no",
    ]),
  ];
  if (keyRows.length === 0) out.push("None.");
  else out.push(...table(["kind", "fingerprint / key id", "details", "pinned"], keyRows));
  out.push("");

  // ---- ConfigMaps ----
  out.push("## ConfigMaps");
  out.push("");
  if (index.configMaps.length === 0) {
    out.push("None.");
  } else {
    out.push(
      ...table(
        ["name", "namespace", "release digest", "signatures"],
        index.configMaps.map((c) => [
          code(c.name),
          code(c.namespace),
          code(c.digest),
          String(c.keys.length),
        ]),
      ),
    );
  }
  out.push("");

  // ---- checking ----
  out.push("## Checking this archive");
  out.push("");
  out.push(
    "This report is inside the archive, so it cannot contain the archive's own SHA-256. That hash is in the sidecar `<archive>.sha256` written beside the archive (and printed by `sigferry bundle create`); copy both files together and check the copy with standard tools:",
  );
  out.push("");
  out.push("```sh");
  out.push("sha256sum -c <archive>.sha256");
  out.push("```");
  out.push("");
  out.push(
    "Every member of the archive, this report included, is listed in `checksums.sha256`; after `tar -xf <archive>`, run `sha256sum -c checksums.sha256` in the extracted directory.",
  );
  out.push("");

  // ---- disconnected side ----
  const untrustedPgp = index.keys.openpgp.filter((k) => !isPinnedOpenPgp(k.fingerprint));
  const untrustedSig = index.keys.sigstore.filter((k) => !isPinnedSigstore(k.id));
  const keyFlags = [
    ...untrustedPgp.map((k) => `--keyring <${k.fingerprint}.asc>`),
    ...untrustedSig.map((k) => `--sigstore-key <${k.id.slice(0, 16)}….pem>`),
  ];
  const flags = keyFlags.length > 0 ? ` ${keyFlags.join(" ")}` : "";
  out.push("## On the disconnected side");
  out.push("");
  out.push("```sh");
  out.push("sha256sum -c <archive>.sha256");
  out.push(`sigferry bundle verify <archive>${flags}`);
  out.push(`sigferry bundle apply <archive> --to <mirror-host[:port]/path/to/ocp-release>${flags}`);
  out.push(
    `sigferry check --to <mirror-host[:port]/path/to/ocp-release> --bundle <archive>${flags}`,
  );
  out.push("```");
  out.push("");
  out.push(
    "For GitOps, `sigferry bundle export-manifests <archive> <dir> --to <mirror repo>` writes the same resources as a kustomize directory instead of applying them.",
  );
  if (keyFlags.length > 0) {
    out.push("");
    out.push(
      "The signing keys are not Red Hat's pinned keys: bring the public keys with the fingerprints above by a separate, trusted path (the copies under `keys/` in this archive prove nothing).",
    );
  }
  return out;
}
