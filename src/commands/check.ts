/**
 * `sigferry check`: before an install or update, is every signature where the
 * cluster will look? For each release digest (and each per-arch digest of a
 * multi release): the image in the mirror, its `.sig` there and verifying, and a
 * ConfigMap in the cluster holding a valid OpenPGP signature for it.
 */
import os from "node:os";
import pLimit from "p-limit";
import { KubeClient } from "../cluster/client.js";
import { loadKubeconfig } from "../cluster/kubeconfig.js";
import type { BundleRelease } from "../core/bundle-index.js";
import { parseDigest, type Digest } from "../core/digest.js";
import { SIGNATURE_LABEL, SIGNATURE_NAMESPACE } from "../core/manifests.js";
import {
  formatRepository,
  parseReleaseArch,
  parseRepository,
  parseVersion,
  type ReleaseArch,
} from "../core/reference.js";
import { EXIT, SigferryError, isSigferryError } from "../errors.js";
import { DEFAULT_CONCURRENCY } from "../net/policy.js";
import {
  fetchSigArtifact,
  resolveByDigest,
  resolveByTag,
  type BlobCache,
} from "../sources/releases.js";
import { releaseName } from "../core/labels.js";
import { bundleTrust } from "../verify/bundle.js";
import { loadKeyFiles } from "../verify/load-trust.js";
import { loadOpenPgpKeys, verifyAtomicSignature, type OpenPgpKey } from "../verify/openpgp.js";
import { loadSigstoreKey, verifySigArtifact, type SigstoreKey } from "../verify/sigstore.js";
import { assertVerified, runVerify } from "./bundle-verify.js";
import {
  positiveInt,
  registryClient,
  registryOptions,
  splitList,
  type RegistryFlags,
} from "./common.js";
import type { OutputOptions, Reporter } from "./output.js";

/** Options of `check`. */
export interface CheckOptions extends RegistryFlags, OutputOptions {
  to?: string;
  bundle?: string;
  release?: string[];
  digest?: string[];
  arch?: string[];
  kubeconfig?: string;
  context?: string;
  skipCluster?: boolean;
  keyring?: string[];
  sigstoreKey?: string[];
  concurrency?: string | number;
}

/** One status cell: ok, missing, invalid (present but fails), or not checked. */
export type Status = "ok" | "missing" | "invalid" | "unverified" | "skipped";

/** One row of the check table. */
export interface CheckRow {
  release: string;
  digest: string;
  image: Status;
  sigstore: Status;
  configMap: Status;
  notes: string[];
}

/** The --json document of check. */
export interface CheckResult {
  ok: boolean;
  mirror: string;
  cluster?: { context: string; server: string };
  trusted: { openpgp: string[]; sigstore: string[] };
  rows: CheckRow[];
}

/** Runs check and returns its table; exit code 0 only when nothing is missing. */
export async function runCheck(
  options: CheckOptions,
  reporter: Reporter,
  signal?: AbortSignal,
): Promise<CheckResult> {
  if (!options.to)
    throw new SigferryError("USAGE", "check needs --to <host[:port]/repo>, the mirror repository");
  const versions = splitList(options.release).map(parseVersion);
  const digests = splitList(options.digest).map((d) => parseDigest(d, "--digest"));
  if (!options.bundle && versions.length === 0 && digests.length === 0) {
    throw new SigferryError(
      "USAGE",
      "check needs --bundle <archive>, --release <version> or --digest <sha256:…>",
    );
  }
  const arches: ReleaseArch[] = [
    ...new Set(splitList(options.arch ?? ["x86_64"]).map(parseReleaseArch)),
  ];
  const mirror = parseRepository(options.to);
  const mirrorLabel = formatRepository(mirror);
  const limit = pLimit(positiveInt(options.concurrency, "--concurrency", DEFAULT_CONCURRENCY));

  // Trust: key files, plus pinned keys carried by a verified bundle, plus (below) the cluster's own keys.
  const { openpgp, sigstore } = await loadKeyFiles(options);

  const client = registryClient(mirror.registry, await registryOptions(options, reporter, signal));
  let kube: KubeClient | undefined;
  const result: CheckResult = {
    ok: false,
    mirror: mirrorLabel,
    trusted: { openpgp: [], sigstore: [] },
    rows: [],
  };
  try {
    const releases: BundleRelease[] = [];
    if (options.bundle) {
      const { result: verified, bundle } = await runVerify(
        options.bundle,
        { ...options, json: false, quiet: true },
        reporter,
      );
      assertVerified(verified);
      const t = await bundleTrust(bundle, options);
      for (const k of t.openpgp)
        if (!openpgp.some((o) => o.fingerprint === k.fingerprint)) openpgp.push(k);
      for (const k of t.sigstore) if (!sigstore.some((o) => o.id === k.id)) sigstore.push(k);
      releases.push(...bundle.index.releases);
    }
    const jobs: (() => Promise<BundleRelease | undefined>)[] = [];
    for (const v of versions) {
      for (const a of arches) {
        jobs.push(async () => {
          try {
            return await resolveByTag(client, mirrorLabel, mirror.path, v, a);
          } catch (err) {
            if (!isSigferryError(err, "RELEASE_NOT_FOUND")) throw err;
            result.rows.push({
              release: `${v} (${a})`,
              digest: "-",
              image: "missing",
              sigstore: "skipped",
              configMap: "skipped",
              notes: [`no tag ${v}-${a} in ${mirrorLabel}; check by --digest or --bundle`],
            });
            return undefined;
          }
        });
      }
    }
    for (const d of digests) {
      jobs.push(async () => {
        try {
          return await resolveByDigest(client, mirrorLabel, mirror.path, d);
        } catch (err) {
          if (!isSigferryError(err, "RELEASE_NOT_FOUND")) throw err;
          return { arch: "unknown", digest: d, mediaType: "unknown", resolvedBy: "digest" };
        }
      });
    }
    for (const r of await Promise.all(jobs.map((j) => limit(j)))) if (r) releases.push(r);

    // The cluster: its labelled ConfigMaps, and the keys it trusts itself.
    const cmSignatures = new Map<string, Uint8Array[]>();
    if (!options.skipCluster) {
      const target = await loadKubeconfig({
        ...(options.kubeconfig !== undefined ? { path: options.kubeconfig } : {}),
        ...(options.context !== undefined ? { context: options.context } : {}),
        env: process.env,
        home: os.homedir(),
      });
      kube = new KubeClient(target, signal ? { signal } : {});
      result.cluster = { context: target.contextName, server: target.server };
      await addClusterTrust(kube, openpgp, sigstore, reporter);
      for (const cm of await kube.listConfigMaps(SIGNATURE_NAMESPACE, SIGNATURE_LABEL)) {
        for (const [key, value] of Object.entries(cm.binaryData ?? {})) {
          const m = /^sha256-([a-f0-9]{64})/.exec(key);
          if (!m) continue;
          const list = cmSignatures.get(`sha256:${m[1]}`) ?? [];
          list.push(new Uint8Array(Buffer.from(value, "base64")));
          cmSignatures.set(`sha256:${m[1]}`, list);
        }
      }
    }
    result.trusted = {
      openpgp: openpgp.map((k) => k.fingerprint),
      sigstore: sigstore.map((k) => k.id),
    };

    const cache: BlobCache = new Map();
    const checkSig = async (digest: Digest): Promise<{ status: Status; note?: string }> => {
      // Every blob is read: the question is whether the mirror holds the whole artifact.
      const artifact = await fetchSigArtifact(client, mirror.path, digest, cache, {
        deriveConfig: false,
      });
      if (!artifact)
        return { status: "missing", note: `no ${digest.replace(":", "-")}.sig in ${mirrorLabel}` };
      if (sigstore.length === 0)
        return {
          status: "unverified",
          note: "a .sig is present but no sigstore key is trusted (--sigstore-key)",
        };
      try {
        const v = verifySigArtifact(artifact, digest, { kind: "PublicKey", keys: sigstore });
        return v.layers.length > 0
          ? { status: "ok" }
          : { status: "invalid", note: v.failures[0]?.reason ?? "no layer verifies" };
      } catch (err) {
        if (!isSigferryError(err)) throw err;
        return { status: "invalid", note: err.message };
      }
    };
    const checkCm = async (digest: Digest): Promise<{ status: Status; note?: string }> => {
      if (options.skipCluster) return { status: "skipped" };
      const sigs = cmSignatures.get(digest) ?? [];
      if (sigs.length === 0)
        return {
          status: "missing",
          note: `no ConfigMap in ${SIGNATURE_NAMESPACE} holds a signature for ${digest}`,
        };
      if (openpgp.length === 0)
        return {
          status: "unverified",
          note: "signatures present but no OpenPGP key is trusted (--keyring)",
        };
      let last = "";
      for (const s of sigs) {
        try {
          await verifyAtomicSignature(s, digest, openpgp);
          return { status: "ok" };
        } catch (err) {
          if (!isSigferryError(err)) throw err;
          last = err.message;
        }
      }
      return { status: "invalid", note: `no ConfigMap signature for ${digest} verifies: ${last}` };
    };

    const rows = await Promise.all(
      releases.flatMap((r) => {
        const perArch = r.manifests && r.manifests.length > 0 ? r.manifests : [];
        const entries: { digest: Digest; label: string; cm: boolean; sigRequired: boolean }[] = [
          { digest: r.digest, label: releaseName(r), cm: true, sigRequired: perArch.length === 0 },
          ...perArch.map((m) => ({
            digest: m.digest,
            label: `${releaseName(r)}/${m.arch}`,
            cm: false,
            sigRequired: true,
          })),
        ];
        return entries.map((e) =>
          limit(async (): Promise<CheckRow> => {
            const row: CheckRow = {
              release: e.label,
              digest: e.digest,
              image: "ok",
              sigstore: "ok",
              configMap: "skipped",
              notes: [],
            };
            if (!(await client.headManifest(mirror.path, e.digest))) {
              row.image = "missing";
              row.notes.push(`${mirrorLabel}@${e.digest} is not in the mirror`);
            }
            const sig = await checkSig(e.digest);
            row.sigstore = sig.status === "missing" && !e.sigRequired ? "skipped" : sig.status;
            if (sig.note && row.sigstore !== "skipped") row.notes.push(sig.note);
            if (e.cm) {
              const cm = await checkCm(e.digest);
              row.configMap = cm.status;
              if (cm.note) row.notes.push(cm.note);
            }
            return row;
          }),
        );
      }),
    );
    result.rows.push(...rows);
    result.ok = result.rows.every((r) =>
      [r.image, r.sigstore, r.configMap].every((s) => s === "ok" || s === "skipped"),
    );
    return result;
  } finally {
    await client.close();
    await kube?.close();
  }
}

/**
 * Adds the keys the cluster itself trusts: the CVO's keyring in the
 * `release-verification` ConfigMap, and PublicKey roots of the ClusterImagePolicies.
 * Checking against the cluster's own trust answers "will this cluster accept it".
 */
async function addClusterTrust(
  kube: KubeClient,
  openpgp: OpenPgpKey[],
  sigstore: SigstoreKey[],
  reporter: Reporter,
): Promise<void> {
  try {
    const cm = await kube.getConfigMap(SIGNATURE_NAMESPACE, "release-verification");
    for (const [name, value] of Object.entries(cm?.data ?? {})) {
      if (!name.startsWith("verifier-public-key-")) continue;
      for (const k of await loadOpenPgpKeys(value, `configmap/release-verification ${name}`)) {
        if (!openpgp.some((o) => o.fingerprint === k.fingerprint)) openpgp.push(k);
      }
    }
  } catch (err) {
    reporter.debug(`cluster keyring not read: ${(err as Error).message}`);
  }
  try {
    if (!(await kube.hasResource("config.openshift.io/v1", "ClusterImagePolicy"))) return;
    const cip = (await kube.getObject(
      "config.openshift.io/v1",
      "ClusterImagePolicy",
      "openshift",
    )) as
      | {
          spec?: {
            policy?: { rootOfTrust?: { policyType?: string; publicKey?: { keyData?: string } } };
          };
        }
      | undefined;
    const keyData = cip?.spec?.policy?.rootOfTrust?.publicKey?.keyData;
    if (keyData) {
      const key = loadSigstoreKey(Buffer.from(keyData, "base64"), "clusterimagepolicy/openshift");
      if (!sigstore.some((s) => s.id === key.id)) sigstore.push(key);
    }
  } catch (err) {
    reporter.debug(`cluster image policy not read: ${(err as Error).message}`);
  }
}

/** Prints the check table; sets the exit code. */
export function printCheckResult(r: CheckResult, reporter: Reporter): number {
  reporter.resultJson(r);
  if (!reporter.json) {
    const mark = (s: Status): string =>
      s === "ok" ? "ok" : s === "skipped" ? "-" : s.toUpperCase();
    reporter.result(`mirror ${r.mirror}${r.cluster ? `, cluster ${r.cluster.server}` : ""}`);
    reporter.result(
      `${"RELEASE".padEnd(26)} ${"DIGEST".padEnd(20)} ${"IMAGE".padEnd(8)} ${"SIGSTORE".padEnd(10)} CONFIGMAP`,
    );
    for (const row of r.rows) {
      reporter.result(
        `${row.release.padEnd(26)} ${row.digest.slice(0, 19).padEnd(20)} ${mark(row.image).padEnd(8)} ${mark(row.sigstore).padEnd(10)} ${mark(row.configMap)}`,
      );
      for (const n of row.notes) reporter.result(`    ${n}`);
    }
    reporter.result(
      r.ok
        ? "all signatures in place"
        : "MISSING: see the rows above; `sigferry bundle apply` lands what a bundle carries",
    );
  }
  return r.ok ? EXIT.OK : EXIT.INCOMPLETE;
}
