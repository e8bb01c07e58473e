/**
 * Verifies the signatures of an opened bundle again, offline, against trusted
 * keys only: OpenPGP under the CVO's rules, every `.sig` artifact byte by byte
 * and signature by signature, and every ConfigMap against the verified
 * signatures. An archive cannot bring its own trust: carried keys count only
 * when their fingerprint is pinned or given on the command line.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import type { OpenedBundle } from "../archive/bundle.js";
import type { BundleRelease } from "../core/bundle-index.js";
import { digestDashed, digestHex, type Digest } from "../core/digest.js";
import { isPinnedOpenPgp, isPinnedSigstore } from "../core/trust.js";
import { EXIT, SigferryError, isSigferryError, type ExitCode } from "../errors.js";
import { loadOpenPgpKeys, verifyAtomicSignature, type OpenPgpKey } from "./openpgp.js";
import { loadSigstoreKey, verifySigArtifact, type SigstoreKey } from "./sigstore.js";

/** One line of the verify report. */
export interface CheckLine {
  kind: "openpgp" | "sigstore" | "configmap" | "release" | "layout";
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

async function readKey(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (cause) {
    throw new SigferryError(
      "INPUT_READ_FAILED",
      `cannot read key file ${file}: ${(cause as Error).message}`,
      {
        cause,
        details: { file },
      },
    );
  }
}

/**
 * The keys verify trusts: those given with --keyring / --sigstore-key, plus keys
 * carried in the archive whose fingerprint is one of the pinned Red Hat ones.
 */
export async function bundleTrust(
  bundle: OpenedBundle,
  options: VerifyTrustOptions,
): Promise<{ openpgp: OpenPgpKey[]; sigstore: SigstoreKey[] }> {
  const openpgp: OpenPgpKey[] = [];
  const sigstore: SigstoreKey[] = [];
  for (const file of options.keyring ?? [])
    openpgp.push(...(await loadOpenPgpKeys(await readKey(file), file)));
  for (const file of options.sigstoreKey ?? [])
    sigstore.push(loadSigstoreKey(await readKey(file), file));
  for (const k of bundle.index.keys.openpgp) {
    if (!isPinnedOpenPgp(k.fingerprint)) continue;
    const carried = await loadOpenPgpKeys(bundle.members.get(k.path)!, k.path);
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
    const key = loadSigstoreKey(bundle.members.get(k.path)!, k.path);
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

function labelFor(releases: BundleRelease[], digest: string): string {
  for (const r of releases) {
    const name = r.version !== undefined ? `${r.version} (${r.arch})` : r.arch;
    if (r.digest === digest) return name;
    const m = r.manifests?.find((x) => x.digest === digest);
    if (m) return `${name}/${m.arch}`;
  }
  return digest;
}

const sha256Hex = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");
const blobPath = (digest: string): string =>
  `sigstore/blobs/sha256/${digest.slice("sha256:".length)}`;

/** Checks every signature, artifact and ConfigMap of an opened bundle; never throws for a bad signature. */
export async function verifyBundle(
  bundle: OpenedBundle,
  trust: { openpgp: OpenPgpKey[]; sigstore: SigstoreKey[] },
): Promise<VerifyReport> {
  const { index, members } = bundle;
  const lines: CheckLine[] = [];
  const verifiedPgp = new Map<string, Uint8Array[]>();

  // OpenPGP signatures: again under the CVO's rules.
  for (const entry of index.openpgp) {
    const bytes = members.get(entry.path)!;
    const release = labelFor(index.releases, entry.digest);
    try {
      const v = await verifyAtomicSignature(bytes, entry.digest, trust.openpgp);
      if (v.signer !== entry.signer || v.identity !== entry.identity) {
        throw new SigferryError(
          "INDEX_INVALID",
          `index records signer ${entry.signer} / ${entry.identity}, the signature says ${v.signer} / ${v.identity}`,
        );
      }
      const list = verifiedPgp.get(entry.digest) ?? [];
      list.push(bytes);
      verifiedPgp.set(entry.digest, list);
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
      lines.push({
        kind: "openpgp",
        ok: false,
        release,
        digest: entry.digest,
        member: entry.path,
        code: err.code,
        message: err.message,
      });
    }
  }

  // Sigstore artifacts: manifest and blobs by digest, each layer signature with a trusted key.
  const layoutRefs = new Map<string, string>();
  const layoutBytes = members.get("sigstore/index.json");
  if (layoutBytes) {
    try {
      const layout = JSON.parse(new TextDecoder().decode(layoutBytes)) as {
        manifests?: { digest?: string; annotations?: Record<string, string> }[];
      };
      for (const m of layout.manifests ?? [])
        layoutRefs.set(m.annotations?.["org.opencontainers.image.ref.name"] ?? "", m.digest ?? "");
    } catch {
      lines.push({
        kind: "layout",
        ok: false,
        member: "sigstore/index.json",
        code: "INDEX_INVALID",
        message: "the OCI layout index is not valid JSON",
      });
    }
  }
  if (index.sigstore.length > 0 && !layoutBytes) {
    lines.push({
      kind: "layout",
      ok: false,
      member: "sigstore/index.json",
      code: "INDEX_INVALID",
      message: "the OCI layout index is missing",
    });
  }
  for (const entry of index.sigstore) {
    const release = labelFor(index.releases, entry.digest);
    const member = blobPath(entry.manifest.digest);
    try {
      if (layoutRefs.get(entry.tag) !== entry.manifest.digest) {
        throw new SigferryError(
          "INDEX_INVALID",
          `sigstore/index.json does not name ${entry.tag} → ${entry.manifest.digest}`,
        );
      }
      const manifestBytes = members.get(member)!;
      // Blob files are content-addressed: the name is the digest of the bytes.
      if (sha256Hex(manifestBytes) !== digestHex(entry.manifest.digest)) {
        throw new SigferryError("CHECKSUM_MISMATCH", `${member} does not hash to its name`);
      }
      const blobs = new Map<string, Uint8Array>();
      for (const d of [entry.config, ...entry.layers]) {
        const bytes = members.get(blobPath(d.digest));
        if (bytes) blobs.set(d.digest, bytes);
      }
      const v =
        trust.sigstore.length > 0
          ? verifySigArtifact(
              { manifestBytes, manifestDigest: entry.manifest.digest, blobs },
              entry.digest,
              {
                kind: "PublicKey",
                keys: trust.sigstore,
              },
            )
          : {
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
            ? verifySigArtifact(
                { manifestBytes, manifestDigest: entry.manifest.digest, blobs },
                entry.digest,
                { kind: "PublicKey", keys: carried },
              )
            : undefined;
        if (byCarried && byCarried.layers.length > 0) {
          throw new SigferryError(
            "UNTRUSTED_SIGNER",
            `${entry.tag} is signed by sigstore key ${byCarried.layers[0]!.signer}, which is not trusted; pass it with --sigstore-key if you trust it`,
          );
        }
        const f = v.failures[0];
        throw new SigferryError(
          (f?.code as never) ?? "SIGNATURE_INVALID",
          f?.reason ?? "no layer verifies",
        );
      }
      const claimed = new Set(entry.layers.map((l) => l.digest));
      const good = new Set(v.layers.map((l) => l.digest));
      const notVerified = [...claimed].filter((d) => !good.has(d));
      if (notVerified.length > 0) {
        const f = v.failures.find((x) => x.digest === notVerified[0]);
        throw new SigferryError(
          (f?.code as never) ?? "SIGNATURE_INVALID",
          `layer ${notVerified[0]} ${f?.reason ?? "does not verify"}`,
        );
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
      lines.push({
        kind: "sigstore",
        ok: false,
        release,
        digest: entry.digest,
        member,
        code: err.code,
        message: err.message,
      });
    }
  }

  // ConfigMaps: each binaryData value byte-identical to a signature carried for the digest its key
  // names, and nothing else. Whether those signatures verify is reported on their own lines.
  const carriedPgp = new Map<string, Uint8Array[]>();
  for (const e of index.openpgp)
    carriedPgp.set(e.digest, [...(carriedPgp.get(e.digest) ?? []), members.get(e.path)!]);
  for (const cm of index.configMaps) {
    const release = labelFor(index.releases, cm.digest);
    try {
      checkConfigMap(members.get(cm.path)!, cm.digest, cm.name, carriedPgp.get(cm.digest) ?? []);
      lines.push({
        kind: "configmap",
        ok: true,
        release,
        digest: cm.digest,
        member: cm.path,
        message: `${cm.name} matches ${cm.keys.length} verified signature(s)`,
      });
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      lines.push({
        kind: "configmap",
        ok: false,
        release,
        digest: cm.digest,
        member: cm.path,
        code: err.code,
        message: err.message,
      });
    }
  }

  // Every release has what its creator required.
  for (const r of index.releases) {
    const label = labelFor(index.releases, r.digest);
    const problems: string[] = [];
    if (index.required.includes("openpgp") && !verifiedPgp.has(r.digest))
      problems.push("no verified OpenPGP signature");
    if (index.required.includes("sigstore")) {
      const need =
        r.manifests && r.manifests.length > 0 ? r.manifests.map((m) => m.digest) : [r.digest];
      for (const d of need) {
        if (!lines.some((l) => l.kind === "sigstore" && l.ok && l.digest === d))
          problems.push(`no verified .sig for ${d}`);
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
            code: "SIGNATURE_MISSING",
            message: problems.join("; "),
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

/** Checks one ConfigMap YAML: the exact shape the CVO reads, values equal to the carried signatures, nothing else. */
export function checkConfigMap(
  bytes: Uint8Array,
  digest: Digest,
  name: string,
  signatures: Uint8Array[],
): void {
  const fail = (why: string): never => {
    throw new SigferryError("CONFIGMAP_MISMATCH", `ConfigMap ${name}: ${why}`);
  };
  let doc: unknown;
  try {
    doc = parseYaml(new TextDecoder("utf-8", { fatal: true }).decode(bytes), { uniqueKeys: true });
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
