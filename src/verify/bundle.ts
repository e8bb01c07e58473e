/**
 * Verifies the signatures of an opened bundle again, offline, against trusted
 * keys only: OpenPGP under the CVO's rules, every `.sig` artifact byte by byte
 * and signature by signature, and every ConfigMap against the verified
 * signatures. An archive cannot bring its own trust: carried keys count only
 * when their fingerprint is pinned or given on the command line.
 */
import { createHash } from "node:crypto";
import { yamlLib } from "../core/yaml.js";
import type { OpenedBundle } from "../archive/bundle.js";
import { memberPieces, memberText, samePieces } from "../archive/member-read.js";
import { MEMBER, type BundleIndex } from "../core/bundle-index.js";
import { digestDashed, digestHex, isDigest, type Digest } from "../core/digest.js";
import { signatureConfigMap, signatureConfigMapYaml } from "../core/manifests.js";
import { isPinnedOpenPgp, isPinnedSigstore } from "../core/trust.js";
import { EXIT, SigferryError, isSigferryError, type ExitCode } from "../errors.js";
import { loadKeyFiles } from "./load-trust.js";
import { releaseLabeler } from "../core/labels.js";
import { reportParts } from "../core/report.js";
import { TOOL_VERSION } from "../version.js";
import { loadOpenPgpKeys, verifyAtomicSignature, type OpenPgpKey } from "./openpgp.js";
import { loadSigstoreKey, verifySigArtifact, type SigstoreKey } from "./sigstore.js";

/** One line of the verify report. */
export interface CheckLine {
  kind: "openpgp" | "sigstore" | "configmap" | "release" | "layout" | "key" | "member";
  ok: boolean;
  release?: string;
  digest?: string;
  member?: string;
  signer?: string;
  code?: string;
  message: string;
}

/** The verify outcome. */
export interface VerifyReport {
  ok: boolean;
  exitCode: ExitCode;
  lines: CheckLine[];
  trusted: { openpgp: string[]; sigstore: string[] };
}

/** Key files given on the command line. */
export interface VerifyTrustOptions {
  keyring?: string[];
  sigstoreKey?: string[];
}

/**
 * The keys verify trusts: those given with --keyring / --sigstore-key, plus keys
 * carried in the archive whose fingerprint is one of the pinned Red Hat ones.
 */
export async function bundleTrust(
  bundle: OpenedBundle,
  options: VerifyTrustOptions,
): Promise<{ openpgp: OpenPgpKey[]; sigstore: SigstoreKey[] }> {
  const { openpgp, sigstore } = await loadKeyFiles(options);
  for (const k of bundle.index.keys.openpgp) {
    if (!isPinnedOpenPgp(k.fingerprint)) continue;
    let carried: OpenPgpKey[];
    try {
      carried = await loadOpenPgpKeys(bundle.members.get(k.path)!, k.path);
    } catch (err) {
      // Why: a damaged carried key is archive content, not a bad --keyring (exit 2);
      // it adds no trust, and checkCarriedKeys reports it as a failed check.
      if (isSigferryError(err)) continue;
      throw err;
    }
    // Trust by the fingerprint actually computed from the key bytes, not the one the index claims.
    for (const key of carried)
      if (
        isPinnedOpenPgp(key.fingerprint) &&
        !openpgp.some((o) => o.fingerprint === key.fingerprint)
      )
        openpgp.push(key);
  }
  for (const k of bundle.index.keys.sigstore) {
    if (!isPinnedSigstore(k.id)) continue;
    let key: SigstoreKey;
    try {
      key = loadSigstoreKey(bundle.members.get(k.path)!, k.path);
    } catch (err) {
      if (isSigferryError(err)) continue; // reported by checkCarriedKeys
      throw err;
    }
    if (isPinnedSigstore(key.id) && !sigstore.some((s) => s.id === key.id)) sigstore.push(key);
  }
  return { openpgp, sigstore };
}

/** Every sigstore key the archive carries, trusted or not (used only to name an untrusted signer). */
function carriedSigstoreKeys(bundle: OpenedBundle): SigstoreKey[] {
  const keys: SigstoreKey[] = [];
  for (const k of bundle.index.keys.sigstore) {
    try {
      keys.push(loadSigstoreKey(bundle.members.get(k.path)!, k.path));
    } catch {
      // An unreadable carried key only means we cannot name the signer.
    }
  }
  return keys;
}

const sha256Hex = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");
const BLOBS_DIR = `${MEMBER.sigstoreLayout}blobs/sha256/`;
const LAYOUT_MARKER = `${MEMBER.sigstoreLayout}oci-layout`;
const LAYOUT_INDEX = `${MEMBER.sigstoreLayout}index.json`;
const REF_NAME = "org.opencontainers.image.ref.name";
const blobPath = (digest: string): string => `${BLOBS_DIR}${digest.slice("sha256:".length)}`;

/** A failed check line from an error thrown inside a check; the message always names the member. */
function failedLine(
  base: Omit<CheckLine, "ok" | "message" | "code">,
  err: SigferryError,
): CheckLine {
  const named = base.member === undefined || err.message.includes(base.member);
  return {
    ...base,
    ok: false,
    code: err.code,
    message: named ? err.message : `${base.member}: ${err.message}`,
  };
}

/**
 * Returns a function to await between items of a long synchronous loop: it
 * gives the event loop a turn (setImmediate) once `sliceMs` of work has run
 * since the last turn, and costs a resolved promise otherwise. Why: `bundle
 * apply` verifies while its read-only registry requests are in flight; a loop
 * that never yields holds their answers unread and their connections idle.
 */
export function loopTurns(sliceMs = 10): () => Promise<void> | undefined {
  let since = performance.now();
  return () => {
    const now = performance.now();
    if (now - since < sliceMs) return undefined;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        since = performance.now();
        resolve();
      }),
    );
  };
}

/** Checks every signature, artifact, ConfigMap and carried key of an opened bundle; never throws for a bad one. */
export async function verifyBundle(
  bundle: OpenedBundle,
  trust: { openpgp: OpenPgpKey[]; sigstore: SigstoreKey[] },
): Promise<VerifyReport> {
  const labelOf = releaseLabeler(bundle.index.releases);
  const { index, members } = bundle;
  const lines: CheckLine[] = [];
  // Digests with at least one verified OpenPGP signature (the bytes stay in the archive's spool).
  const verifiedPgp = new Set<string>();

  // OpenPGP signatures: again under the CVO's rules.
  const turn = loopTurns();
  for (const entry of index.openpgp) {
    await turn();
    const bytes = members.get(entry.path)!;
    const release = labelOf(entry.digest);
    try {
      const v = await verifyAtomicSignature(bytes, entry.digest, trust.openpgp);
      if (v.signer !== entry.signer || v.identity !== entry.identity) {
        throw new SigferryError(
          "INDEX_INVALID",
          `${MEMBER.index} records signer ${entry.signer} / ${entry.identity} for ${entry.path}, the signature says ${v.signer} / ${v.identity}`,
        );
      }
      verifiedPgp.add(entry.digest);
      lines.push({
        kind: "openpgp",
        ok: true,
        release,
        digest: entry.digest,
        member: entry.path,
        signer: v.signer,
        message: `verified, identity ${v.identity}`,
      });
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      lines.push(
        failedLine({ kind: "openpgp", release, digest: entry.digest, member: entry.path }, err),
      );
    }
  }

  // The OCI layout: its index names exactly the artifacts of index.json, and every blob hashes to its name.
  lines.push(...checkLayout(index, members));

  // Sigstore artifacts: manifest and blobs by digest, each layer signature with a trusted key.
  for (const entry of index.sigstore) {
    await turn();
    const release = labelOf(entry.digest);
    const member = blobPath(entry.manifest.digest);
    try {
      const manifestBytes = members.get(member)!;
      // Blob files are content-addressed: the name is the digest of the bytes.
      const actual = sha256Hex(manifestBytes);
      if (actual !== digestHex(entry.manifest.digest)) {
        throw new SigferryError(
          "DIGEST_MISMATCH",
          `${member} (the ${entry.tag} manifest) hashes to sha256:${actual}, not to its name`,
        );
      }
      const blobs = new Map<string, Uint8Array>();
      for (const d of [entry.config, ...entry.layers]) {
        const bytes = members.get(blobPath(d.digest));
        if (bytes) blobs.set(d.digest, bytes);
      }
      const artifact = { manifestBytes, manifestDigest: entry.manifest.digest, blobs };
      const v =
        trust.sigstore.length > 0
          ? verifySigArtifact(artifact, entry.digest, { kind: "PublicKey", keys: trust.sigstore })
          : {
              config: entry.config,
              layers: [],
              failures: [
                {
                  digest: entry.manifest.digest,
                  code: "UNTRUSTED_SIGNER" as const,
                  reason: "no sigstore key is trusted",
                },
              ],
            };
      if (v.layers.length === 0) {
        // A bare public-key signature names no signer. If a key the archive carries (untrusted)
        // verifies it, the honest verdict is "untrusted signer", not "corrupt".
        const carried = carriedSigstoreKeys(bundle).filter(
          (k) => !trust.sigstore.some((t) => t.id === k.id),
        );
        const byCarried =
          carried.length > 0
            ? verifySigArtifact(artifact, entry.digest, { kind: "PublicKey", keys: carried })
            : undefined;
        if (byCarried && byCarried.layers.length > 0) {
          throw new SigferryError(
            "UNTRUSTED_SIGNER",
            `${entry.tag} is signed by sigstore key ${byCarried.layers[0]!.signer}, which is not trusted; pass it with --sigstore-key if you trust it`,
          );
        }
        const f = v.failures[0];
        const layer =
          f !== undefined && f.digest !== entry.manifest.digest
            ? ` layer ${blobPath(f.digest)}`
            : "";
        throw new SigferryError(
          (f?.code as never) ?? "SIGNATURE_INVALID",
          `${entry.tag}${layer}: ${f?.reason ?? "no layer verifies"}`,
        );
      }
      if (v.config.digest !== entry.config.digest) {
        throw new SigferryError(
          "INDEX_INVALID",
          `${MEMBER.index} records config ${entry.config.digest} for ${entry.tag}, its manifest names ${v.config.digest}`,
        );
      }
      for (const claimed of entry.layers) {
        const good = v.layers.find((l) => l.digest === claimed.digest);
        if (!good) {
          const f = v.failures.find((x) => x.digest === claimed.digest);
          throw new SigferryError(
            (f?.code as never) ?? "SIGNATURE_INVALID",
            `${entry.tag} layer ${blobPath(claimed.digest)}: ${f?.reason ?? "does not verify"}`,
          );
        }
        if (good.signer !== claimed.signer || good.identity !== claimed.identity) {
          throw new SigferryError(
            "INDEX_INVALID",
            `${MEMBER.index} records signer ${claimed.signer} / ${claimed.identity} for ${entry.tag} layer ${claimed.digest}, the signature says ${good.signer} / ${good.identity}`,
          );
        }
      }
      lines.push({
        kind: "sigstore",
        ok: true,
        release,
        digest: entry.digest,
        member,
        signer: v.layers.map((l) => l.signer).join(","),
        message: `${entry.tag} verified (${v.layers.length} signature(s))`,
      });
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      lines.push(failedLine({ kind: "sigstore", release, digest: entry.digest, member }, err));
    }
  }

  // ConfigMaps: each binaryData value byte-identical to a signature carried for the digest its key
  // names, and nothing else. Whether those signatures verify is reported on their own lines.
  const carriedPgp = new Map<string, string[]>();
  for (const e of index.openpgp) {
    const paths = carriedPgp.get(e.digest);
    if (paths) paths.push(e.path);
    else carriedPgp.set(e.digest, [e.path]);
  }
  const withConfigMap = new Set<string>();
  for (const cm of index.configMaps) {
    await turn();
    const release = labelOf(cm.digest);
    withConfigMap.add(cm.digest);
    try {
      checkConfigMap(
        members.get(cm.path)!,
        cm.digest,
        cm.name,
        (carriedPgp.get(cm.digest) ?? []).map((p) => members.get(p)!),
        cm.keys,
      );
      lines.push({
        kind: "configmap",
        ok: true,
        release,
        digest: cm.digest,
        member: cm.path,
        message: `${cm.name} matches ${cm.keys.length} carried signature(s)`,
      });
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      lines.push(
        failedLine({ kind: "configmap", release, digest: cm.digest, member: cm.path }, err),
      );
    }
  }
  // Why: a signature without its ConfigMap never reaches the CVO; sigferry always writes one.
  for (const digest of carriedPgp.keys()) {
    if (withConfigMap.has(digest)) continue;
    const member = `${MEMBER.configMapsDir}${digestDashed(digest as Digest)}.yaml`;
    lines.push({
      kind: "configmap",
      ok: false,
      release: labelOf(digest),
      digest,
      member,
      code: "CONFIGMAP_MISMATCH",
      message: `${member} is missing: the bundle carries OpenPGP signatures for ${digest} but no ConfigMap hands them to the CVO`,
    });
  }

  // Keys carried for the record: each must be the key index.json says it is.
  lines.push(...(await checkCarriedKeys(index, members)));

  // Why: content nobody vouched for must not ride along (zarf refuses extra files too); with the
  // checksum list re-computed, only the index can say what belongs.
  lines.push(...unaccountedMembers(index, members));
  lines.push(...reportLines(index, members));

  // Every release has what its creator required.
  for (const r of index.releases) {
    const label = labelOf(r.digest);
    const problems: { code: "SIGNATURE_MISSING" | "INDEX_INVALID"; text: string }[] = [];
    const recorded = (kind: "openpgp" | "sigstore", digest: string): boolean =>
      index.missing.some((m) => m.kind === kind && m.digest === digest);
    // Why: a signature sigferry could not collect is recorded in `missing` (--keep-going);
    // a required one neither carried nor recorded means index.json was edited.
    const absent = (kind: "openpgp" | "sigstore", digest: string, what: string): void => {
      problems.push(
        recorded(kind, digest)
          ? { code: "SIGNATURE_MISSING", text: `no ${what} (recorded as missing)` }
          : {
              code: "INDEX_INVALID",
              text: `${MEMBER.index} lists it but the bundle carries no ${what} and does not record one as missing`,
            },
      );
    };
    if (index.required.includes("openpgp") && !verifiedPgp.has(r.digest)) {
      if (index.openpgp.some((e) => e.digest === r.digest))
        problems.push({ code: "SIGNATURE_MISSING", text: "no verified OpenPGP signature" });
      else absent("openpgp", r.digest, "OpenPGP signature");
    }
    if (index.required.includes("sigstore")) {
      const need =
        r.manifests && r.manifests.length > 0 ? r.manifests.map((m) => m.digest) : [r.digest];
      for (const d of need) {
        if (lines.some((l) => l.kind === "sigstore" && l.ok && l.digest === d)) continue;
        if (index.sigstore.some((e) => e.digest === d))
          problems.push({ code: "SIGNATURE_MISSING", text: `no verified .sig for ${d}` });
        else absent("sigstore", d, `.sig for ${d}`);
      }
    }
    lines.push(
      problems.length === 0
        ? {
            kind: "release",
            ok: true,
            release: label,
            digest: r.digest,
            message: "every required signature verified",
          }
        : {
            kind: "release",
            ok: false,
            release: label,
            digest: r.digest,
            code: problems.some((p) => p.code === "INDEX_INVALID")
              ? "INDEX_INVALID"
              : "SIGNATURE_MISSING",
            message: problems.map((p) => p.text).join("; "),
          },
    );
  }

  const failed = lines.filter((l) => !l.ok);
  let exitCode: ExitCode = EXIT.OK;
  if (failed.some((l) => l.code !== "UNTRUSTED_SIGNER" && l.code !== "SIGNATURE_MISSING"))
    exitCode = EXIT.CORRUPT;
  else if (failed.some((l) => l.code === "UNTRUSTED_SIGNER")) exitCode = EXIT.UNTRUSTED;
  else if (failed.length > 0) exitCode = EXIT.SIGNATURE;
  return {
    ok: failed.length === 0,
    exitCode,
    lines,
    trusted: {
      openpgp: trust.openpgp.map((k) => k.fingerprint),
      sigstore: trust.sigstore.map((k) => k.id),
    },
  };
}

/**
 * The OCI layout of `.sig` artifacts: `oci-layout` says version 1.0.0, `index.json`
 * names exactly the artifacts the bundle index records (tag, digest, size, media
 * type), and every blob hashes to its name. One failed line per problem, naming the member.
 */
function checkLayout(index: BundleIndex, members: ReadonlyMap<string, Uint8Array>): CheckLine[] {
  const blobs = [...members.keys()].filter((m) => m.startsWith(BLOBS_DIR));
  if (index.sigstore.length === 0 && blobs.length === 0 && !members.has(LAYOUT_INDEX)) return [];
  const lines: CheckLine[] = [];
  const fail = (
    member: string,
    code: "INDEX_INVALID" | "DIGEST_MISMATCH",
    message: string,
  ): void => {
    lines.push({ kind: "layout", ok: false, member, code, message });
  };
  const json = (member: string): unknown => {
    if (!members.has(member)) {
      fail(member, "INDEX_INVALID", `${member} is missing`);
      return undefined;
    }
    try {
      return JSON.parse(memberText(members, member)!) as unknown;
    } catch (err) {
      // A spool that cannot be read is its own error, not a bad member.
      if (isSigferryError(err)) throw err;
      fail(member, "INDEX_INVALID", `${member} is not valid UTF-8 JSON`);
      return undefined;
    }
  };

  const marker = json(LAYOUT_MARKER) as { imageLayoutVersion?: unknown } | undefined;
  if (marker !== undefined && marker?.imageLayoutVersion !== "1.0.0")
    fail(LAYOUT_MARKER, "INDEX_INVALID", `${LAYOUT_MARKER} does not say imageLayoutVersion 1.0.0`);

  const layout = json(LAYOUT_INDEX) as { manifests?: unknown } | undefined;
  if (layout !== undefined) {
    const expected = new Map(index.sigstore.map((e) => [e.tag, e.manifest]));
    const seen = new Set<string>();
    const listed = Array.isArray(layout?.manifests) ? (layout.manifests as unknown[]) : undefined;
    if (!listed) fail(LAYOUT_INDEX, "INDEX_INVALID", `${LAYOUT_INDEX} has no manifests array`);
    for (const m0 of listed ?? []) {
      const m = (typeof m0 === "object" && m0 !== null ? m0 : {}) as {
        digest?: unknown;
        size?: unknown;
        mediaType?: unknown;
        annotations?: Record<string, unknown>;
      };
      const tag = m.annotations?.[REF_NAME];
      const want = typeof tag === "string" ? expected.get(tag) : undefined;
      if (
        typeof tag !== "string" ||
        !want ||
        seen.has(tag) ||
        m.digest !== want.digest ||
        m.size !== want.size ||
        m.mediaType !== want.mediaType
      ) {
        fail(
          LAYOUT_INDEX,
          "INDEX_INVALID",
          `${LAYOUT_INDEX} names ${JSON.stringify(tag)} → ${JSON.stringify(m.digest)}, which ${MEMBER.index} does not record (once)`,
        );
        continue;
      }
      seen.add(tag);
    }
    for (const tag of expected.keys())
      if (!seen.has(tag))
        fail(LAYOUT_INDEX, "INDEX_INVALID", `${LAYOUT_INDEX} does not name ${tag}`);
  }

  for (const member of blobs) {
    const actual = sha256Hex(members.get(member)!);
    if (actual !== member.slice(BLOBS_DIR.length))
      fail(member, "DIGEST_MISMATCH", `${member} hashes to sha256:${actual}, not to its name`);
  }
  if (lines.length === 0) {
    lines.push({
      kind: "layout",
      ok: true,
      member: MEMBER.sigstoreLayout,
      message: `OCI layout: ${index.sigstore.length} manifest(s) as recorded, ${blobs.length} blob(s) each hashing to its name`,
    });
  }
  return lines;
}

/**
 * Every key the archive carries is the key the index says: it loads, its
 * fingerprint (OpenPGP) or SubjectPublicKeyInfo sha256 (sigstore) computed from
 * its bytes is the recorded one, and an OpenPGP key's user IDs are the recorded
 * ones with valid self-certifications. A key that fails counts as tampering
 * (INDEX_INVALID), never as a usage error.
 */
async function checkCarriedKeys(
  index: BundleIndex,
  members: ReadonlyMap<string, Uint8Array>,
): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const fail = (member: string, why: string): never => {
    throw new SigferryError("INDEX_INVALID", `${member}: ${why}`);
  };
  for (const k of index.keys.openpgp) {
    try {
      let keys: OpenPgpKey[] = [];
      try {
        keys = await loadOpenPgpKeys(members.get(k.path)!, k.path);
      } catch (err) {
        fail(k.path, `not a readable OpenPGP public key (${(err as Error).message})`);
      }
      const key = keys[0]!;
      if (keys.length !== 1) fail(k.path, `holds ${keys.length} keys, not one`);
      if (key.fingerprint !== k.fingerprint)
        fail(k.path, `holds key ${key.fingerprint}, ${MEMBER.index} records ${k.fingerprint}`);
      if (JSON.stringify(key.userIds) !== JSON.stringify(k.userIds))
        fail(k.path, `user IDs ${JSON.stringify(key.userIds)} are not the recorded ones`);
      // Why: the fingerprint covers the key material only; the self-certifications cover the user IDs.
      const users = await key.key.verifyAllUsers();
      if (!users.some((u) => u.valid)) fail(k.path, "no user ID has a valid self-certification");
      for (const subkey of key.key.subkeys) {
        try {
          await subkey.verify();
        } catch (err) {
          // An expired or revoked subkey was found bound to the key: the binding is intact.
          const reason = (err as Error).message;
          if (!/^Subkey is (expired|revoked)$/.test(reason))
            fail(k.path, `subkey ${subkey.getKeyID().toHex().toUpperCase()}: ${reason}`);
        }
      }
      lines.push({
        kind: "key",
        ok: true,
        member: k.path,
        signer: k.fingerprint,
        message: `OpenPGP key ${k.fingerprint} as recorded${isPinnedOpenPgp(k.fingerprint) ? " (pinned)" : ""}`,
      });
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      lines.push(failedLine({ kind: "key", member: k.path }, err));
    }
  }
  for (const k of index.keys.sigstore) {
    try {
      let key: SigstoreKey | undefined;
      try {
        key = loadSigstoreKey(members.get(k.path)!, k.path);
      } catch (err) {
        fail(k.path, `not a readable PEM public key (${(err as Error).message})`);
      }
      if (key!.id !== k.id) fail(k.path, `holds key ${key!.id}, ${MEMBER.index} records ${k.id}`);
      if (key!.algorithm !== k.algorithm)
        fail(k.path, `holds a ${key!.algorithm} key, ${MEMBER.index} records ${k.algorithm}`);
      lines.push({
        kind: "key",
        ok: true,
        member: k.path,
        signer: k.id,
        message: `sigstore key ${k.id} as recorded${isPinnedSigstore(k.id) ? " (pinned)" : ""}`,
      });
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      lines.push(failedLine({ kind: "key", member: k.path }, err));
    }
  }
  return lines;
}

/**
 * REPORT.md is what a reviewer reads on the change ticket: it must say exactly what
 * the index says. It is regenerated from the index and compared byte for byte when
 * the bundle was written by this version (another version may render it differently;
 * the signatures, not the report, are what the cluster checks).
 */
function reportLines(index: BundleIndex, members: ReadonlyMap<string, Uint8Array>): CheckLine[] {
  if (!members.has(MEMBER.report)) return [];
  if (index.tool.version !== TOOL_VERSION) {
    return [
      {
        kind: "member",
        ok: true,
        member: MEMBER.report,
        message: `not compared: written by sigferry ${index.tool.version}, this is ${TOOL_VERSION}`,
      },
    ];
  }
  // Compared piece by piece: at 2000 releases the report is 2.3 MB.
  const same = samePieces(memberPieces(members, MEMBER.report), reportParts(index));
  return [
    same
      ? { kind: "member", ok: true, member: MEMBER.report, message: "matches the index" }
      : {
          kind: "member",
          ok: false,
          member: MEMBER.report,
          code: "INDEX_INVALID",
          message: `${MEMBER.report} does not match what the index says; do not trust the summary`,
        },
  ];
}

/** Members index.json does not account for: one failed line each (INDEX_INVALID). */
function unaccountedMembers(
  index: BundleIndex,
  members: ReadonlyMap<string, Uint8Array>,
): CheckLine[] {
  const known = new Set<string>([MEMBER.index, MEMBER.checksums, MEMBER.report]);
  for (const e of index.openpgp) known.add(e.path);
  for (const c of index.configMaps) known.add(c.path);
  for (const k of [...index.keys.openpgp, ...index.keys.sigstore]) known.add(k.path);
  if (index.sigstore.length > 0) {
    known.add(LAYOUT_MARKER);
    known.add(LAYOUT_INDEX);
    for (const e of index.sigstore)
      for (const d of [e.manifest, e.config, ...e.layers]) known.add(blobPath(d.digest));
  }
  return [...members.keys()]
    .filter((m) => !known.has(m))
    .map((member) => ({
      kind: "member" as const,
      ok: false,
      member,
      code: "INDEX_INVALID",
      message: `${member} is in the archive, but ${MEMBER.index} does not account for it`,
    }));
}

/** Checks one ConfigMap YAML: the exact shape the CVO reads, values equal to the carried signatures, nothing else. */
export function checkConfigMap(
  bytes: Uint8Array,
  digest: Digest,
  name: string,
  signatures: Uint8Array[],
  recordedKeys?: readonly string[],
): void {
  const fail = (why: string): never => {
    throw new SigferryError("CONFIGMAP_MISMATCH", `ConfigMap ${name}: ${why}`);
  };
  // The common case first: the bytes are exactly the ConfigMap sigferry writes for these
  // signatures, in this order, under the recorded keys. Every check below then holds by
  // construction, and no YAML parse is needed (it is most of the cost at thousands of releases).
  // Anything unusual (no signatures, a size limit) takes the full path and its precise message.
  if (signatures.length > 0 && isDigest(digest) && name === digestDashed(digest)) {
    let expected: ReturnType<typeof signatureConfigMap> | undefined;
    try {
      expected = signatureConfigMap(digest, signatures);
    } catch {
      expected = undefined;
    }
    const text = expected && signatureConfigMapYaml(expected);
    if (
      text !== undefined &&
      (recordedKeys === undefined ||
        recordedKeys.join("\n") === Object.keys(expected!.binaryData!).join("\n")) &&
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(Buffer.from(text))
    )
      return;
  }
  let doc: unknown;
  try {
    doc = yamlLib().parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes), {
      uniqueKeys: true,
    });
  } catch (err) {
    fail(`not valid YAML (${(err as Error).message})`);
  }
  const cm = doc as Record<string, unknown>;
  if (typeof cm !== "object" || cm === null) fail("not an object");
  const allowedTop = new Set(["apiVersion", "kind", "metadata", "binaryData"]);
  for (const k of Object.keys(cm)) if (!allowedTop.has(k)) fail(`unexpected field ${k}`);
  if (cm.apiVersion !== "v1" || cm.kind !== "ConfigMap") fail("not a v1 ConfigMap");
  const md = (cm.metadata ?? {}) as Record<string, unknown>;
  if (md.name !== name || md.namespace !== "openshift-config-managed")
    fail("wrong name or namespace");
  const labels = md.labels as Record<string, unknown> | undefined;
  if (!labels || labels["release.openshift.io/verification-signatures"] !== "")
    fail("missing the verification-signatures label");
  const data = cm.binaryData;
  if (typeof data !== "object" || data === null) fail("no binaryData");
  const prefix = digestDashed(digest);
  const entries = Object.entries(data as Record<string, unknown>);
  if (
    recordedKeys !== undefined &&
    JSON.stringify(entries.map(([k]) => k).sort()) !== JSON.stringify([...recordedKeys].sort())
  )
    fail(
      `binaryData keys ${entries.map(([k]) => k).join(", ")} are not those ${MEMBER.index} records (${recordedKeys.join(", ")})`,
    );
  if (entries.length !== signatures.length)
    fail(
      `holds ${entries.length} value(s) but the bundle carries ${signatures.length} signature(s)`,
    );
  for (const [key, value] of entries) {
    // The CVO tries every key that starts with sha256-<hex> of the digest it verifies.
    if (!key.startsWith(prefix)) fail(`key ${key} is not for ${digest}`);
    if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value.replace(/\s+/g, "")))
      fail(`value of ${key} is not base64`);
    const bytesOf = Buffer.from(value as string, "base64");
    if (!signatures.some((v) => Buffer.from(v).equals(bytesOf)))
      fail(`value of ${key} is not a signature the bundle carries for ${digest}`);
  }
}
