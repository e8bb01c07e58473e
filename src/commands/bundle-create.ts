/**
 * `sigferry bundle create`: resolve releases, fetch and verify both signature
 * kinds, and write one checksummed, reproducible archive. The shell around the
 * pure assembler (core/bundle.ts): all network, files and concurrency live here.
 */
import pLimit from "p-limit";
import { writeArchive } from "../archive/writer.js";
import { assembleBundle, type CollectedOpenPgp, type CollectedSigstore } from "../core/bundle.js";
import type { BundleRelease, MissingSignature, RejectedSignature } from "../core/bundle-index.js";
import { sigTag, type Digest } from "../core/digest.js";
import { SigferryError, isSigferryError } from "../errors.js";
import { SignatureStoreClient } from "../sources/signature-store.js";
import { fetchSigArtifact, type BlobCache } from "../sources/releases.js";
import { buildPlan, printPlan, resolveSettings, type SelectionFlags } from "./create-plan.js";
import { loadTrust } from "../verify/load-trust.js";
import { verifyAtomicSignature } from "../verify/openpgp.js";
import { verifySigArtifact } from "../verify/sigstore.js";
import { TOOL_VERSION } from "../version.js";
import { positiveInt, registryClient, registryOptions, type RegistryFlags } from "./common.js";
import type { Reporter } from "./output.js";
import { type OutputOptions } from "./output.js";

/** Options of `bundle create`, as commander hands them over. */
export interface CreateOptions extends RegistryFlags, OutputOptions, SelectionFlags {
  concurrency?: string | number;
  output?: string;
  keepGoing?: boolean;
  dryRun?: boolean;
}

/** One image digest whose `.sig` we look for, and whether a missing one fails the run. */
interface SigTarget {
  digest: Digest;
  release: BundleRelease;
  label: string;
  required: boolean;
}

/** The outcome of a create run, also the --json document. */
export interface CreateResult {
  ok: boolean;
  archive: string;
  sha256: string;
  size: number;
  releases: { version?: string; arch: string; digest: string; openpgp: number; sigstore: number }[];
  counts: {
    releases: number;
    openpgp: number;
    sigstore: number;
    rejected: number;
    missing: number;
  };
  rejected: RejectedSignature[];
  missing: MissingSignature[];
}

function releaseLabel(r: BundleRelease): string {
  return r.version !== undefined ? `${r.version} (${r.arch})` : `${r.digest} (${r.arch})`;
}

/**
 * Runs `bundle create` and returns its result (undefined after --dry-run);
 * throws SigferryError on failure, leaving no archive behind.
 */
export async function runCreate(
  options: CreateOptions,
  reporter: Reporter,
  signal?: AbortSignal,
): Promise<CreateResult | undefined> {
  // ---- options ----
  if (!options.dryRun) {
    if (!options.output)
      throw new SigferryError("USAGE", "bundle create needs -o/--output <file.tar|file.tar.gz>");
    if (!/\.(tar|tar\.gz|tgz)$/.test(options.output)) {
      throw new SigferryError(
        "USAGE",
        `--output ${options.output}: the name must end in .tar, .tar.gz or .tgz`,
      );
    }
  }
  const s = await resolveSettings(options);
  const { repo, repoLabel, stores, required } = s;
  const concurrency = positiveInt(options.concurrency, "--concurrency", 8);
  const limit = pLimit(concurrency);
  const client = registryClient(repo.registry, await registryOptions(options, reporter, signal));
  const storeClient = new SignatureStoreClient(signal ? { signal } : {});
  try {
    // ---- plan: graph selection, tag resolution, cross-checks ----
    const plan = await buildPlan(s, client, reporter, (fn) => limit(fn), {
      ...(signal ? { signal } : {}),
      tolerateUnreachableRegistry: options.dryRun === true,
    });
    if (options.dryRun) {
      printPlan(plan, s, reporter);
      return undefined;
    }
    for (const w of plan.warnings) reporter.warn(w);
    const releases = plan.releases;
    const output = options.output!;

    // ---- trust ----
    const trust = await loadTrust({
      keyring: s.keyring,
      sigstoreKey: s.sigstoreKey,
      fetchPublished: true,
      ...(signal ? { signal } : {}),
    });
    reporter.debug(
      `OpenPGP keys: ${trust.openpgp.map((k) => k.fingerprint).join(", ") || "none"} (${trust.origin.openpgp})`,
    );
    reporter.debug(
      `sigstore keys: ${trust.sigstore.map((k) => k.id).join(", ") || "none"} (${trust.origin.sigstore})`,
    );
    if (required.includes("openpgp") && trust.openpgp.length === 0) {
      throw new SigferryError(
        "USAGE",
        "OpenPGP signatures are required but no OpenPGP key is trusted: pass --keyring",
      );
    }
    if (required.includes("sigstore") && trust.sigstore.length === 0) {
      throw new SigferryError(
        "USAGE",
        "sigstore signatures are required but no sigstore key is trusted: pass --sigstore-key",
      );
    }

    // ---- OpenPGP ----
    const openpgp: CollectedOpenPgp[] = [];
    const rejected: RejectedSignature[] = [];
    const missing: MissingSignature[] = [];
    const failures: SigferryError[] = [];
    const releaseDigests = [...new Map(releases.map((r) => [r.digest, r])).values()];
    let pgpDone = 0;
    if (trust.openpgp.length > 0 || required.includes("openpgp")) {
      await Promise.all(
        releaseDigests.map((release) =>
          limit(async () => {
            const tried: string[] = [];
            const unreachable: SigferryError[] = [];
            let valid = 0;
            for (const store of stores) {
              let listing;
              try {
                listing = await storeClient.list(store, release.digest);
              } catch (err) {
                if (isSigferryError(err, "INTERRUPTED")) throw err;
                unreachable.push(err as SigferryError);
                tried.push(`${store} (${(err as Error).message})`);
                continue;
              }
              tried.push(...listing.tried);
              for (const slot of listing.errors) {
                rejected.push({
                  kind: "openpgp",
                  digest: release.digest,
                  source: slot.url,
                  code: slot.error.code,
                  reason: slot.error.message,
                });
              }
              for (const sig of listing.signatures) {
                try {
                  const v = await verifyAtomicSignature(sig.bytes, release.digest, trust.openpgp);
                  openpgp.push({
                    digest: release.digest,
                    bytes: sig.bytes,
                    identity: v.identity,
                    signer: v.signer,
                    source: sig.url,
                  });
                  valid++;
                } catch (err) {
                  if (!isSigferryError(err)) throw err;
                  rejected.push({
                    kind: "openpgp",
                    digest: release.digest,
                    source: sig.url,
                    code: err.code,
                    reason: err.message,
                  });
                  reporter.warn(`${releaseLabel(release)}: rejected ${sig.url}: ${err.message}`);
                }
              }
            }
            if (valid > 0) {
              for (const u of unreachable)
                reporter.warn(`${u.message} (signatures found elsewhere)`);
            } else if (required.includes("openpgp")) {
              const reasons = rejected
                .filter((r) => r.digest === release.digest)
                .map((r) => `${r.source}: ${r.reason}`);
              const why =
                unreachable.length > 0 && unreachable.length === stores.length
                  ? unreachable[0]!.message
                  : "no valid OpenPGP signature";
              const entry: MissingSignature = {
                kind: "openpgp",
                digest: release.digest,
                release: releaseLabel(release),
                code:
                  unreachable.length === stores.length ? unreachable[0]!.code : "SIGNATURE_MISSING",
                reason: why,
                tried,
              };
              missing.push(entry);
              failures.push(
                new SigferryError(
                  unreachable.length === stores.length ? unreachable[0]!.code : "SIGNATURE_MISSING",
                  `release ${releaseLabel(release)} ${release.digest}: ${why}` +
                    (reasons.length > 0 ? `; rejected: ${reasons.join("; ")}` : "") +
                    `; tried: ${tried.join(", ")}`,
                  {
                    details: {
                      release: release.version,
                      arch: release.arch,
                      digest: release.digest,
                      tried,
                    },
                  },
                ),
              );
            }
            reporter.progress("openpgp", ++pgpDone, releaseDigests.length, releaseLabel(release));
          }),
        ),
      );
    }

    // ---- sigstore ----
    const sigstore: CollectedSigstore[] = [];
    const targets = sigTargets(releases);
    const cache: BlobCache = new Map();
    let sigDone = 0;
    if (trust.sigstore.length > 0 || required.includes("sigstore")) {
      await Promise.all(
        targets.map((t) =>
          limit(async () => {
            const source = `${repoLabel}:${sigTag(t.digest)}`;
            const mustHave = t.required && required.includes("sigstore");
            const artifact = await fetchSigArtifact(client, repo.path, t.digest, cache);
            let problem: { code: string; reason: string } | undefined;
            if (!artifact) {
              problem = {
                code: "SIGNATURE_MISSING",
                reason: `no ${sigTag(t.digest)} tag in ${repoLabel}`,
              };
            } else {
              const v = verifySigArtifact(artifact, t.digest, {
                kind: "PublicKey",
                keys: trust.sigstore,
              });
              for (const f of v.failures) {
                rejected.push({
                  kind: "sigstore",
                  digest: t.digest,
                  source: `${source} layer ${f.digest}`,
                  code: f.code,
                  reason: f.reason,
                });
              }
              if (v.layers.length > 0) {
                sigstore.push({
                  digest: t.digest,
                  manifestBytes: artifact.manifestBytes,
                  manifestDigest: artifact.manifestDigest,
                  mediaType: v.mediaType,
                  config: v.config,
                  layers: v.layers,
                  blobs: artifact.blobs,
                  source,
                });
              } else {
                const first = v.failures[0];
                problem = {
                  code: first?.code ?? "SIGNATURE_INVALID",
                  reason: first?.reason ?? "no layer verifies",
                };
                if (!mustHave)
                  reporter.warn(`${t.label}: ${source} not carried: ${problem.reason}`);
              }
            }
            if (problem && mustHave) {
              missing.push({
                kind: "sigstore",
                digest: t.digest,
                release: t.label,
                code: problem.code,
                reason: problem.reason,
                tried: [source],
              });
              failures.push(
                new SigferryError(
                  problem.code === "SIGNATURE_MISSING" ? "SIGNATURE_MISSING" : "SIGNATURE_INVALID",
                  `release ${t.label} image ${t.digest}: ${problem.reason}; tried: ${source}`,
                  {
                    details: {
                      release: t.release.version,
                      arch: t.release.arch,
                      digest: t.digest,
                      tried: [source],
                    },
                  },
                ),
              );
            }
            reporter.progress("sigstore", ++sigDone, targets.length, t.label);
          }),
        ),
      );
    }

    if (failures.length > 0 && !options.keepGoing) {
      // All-or-nothing: report every failure, write nothing.
      if (failures.length > 1) for (const f of failures.slice(1)) reporter.warn(f.message);
      throw failures[0]!;
    }

    // ---- assemble and write ----
    const createdAt = sourceDateEpoch() ?? new Date();
    const bundle = assembleBundle({
      toolVersion: TOOL_VERSION,
      createdAt,
      selection: s.record,
      sources: { releaseRepo: repoLabel, signatureStores: stores },
      required,
      releases,
      openpgp,
      sigstore,
      keys: {
        openpgp: trust.openpgp.map((k) => ({
          fingerprint: k.fingerprint,
          userIds: k.userIds,
          armored: k.armored,
        })),
        sigstore: trust.sigstore.map((k) => ({ id: k.id, algorithm: k.algorithm, pem: k.pem })),
      },
      rejected,
      missing,
    });
    reporter.progress("write", 0, 1, output);
    const written = await writeArchive(output, bundle.members, { mtime: createdAt });
    reporter.progress("write", 1, 1, output);

    const result: CreateResult = {
      ok: missing.length === 0,
      archive: output,
      sha256: written.sha256,
      size: written.size,
      releases: bundle.index.releases.map((r) => ({
        ...(r.version !== undefined ? { version: r.version } : {}),
        arch: r.arch,
        digest: r.digest,
        openpgp: bundle.index.openpgp.filter((s) => s.digest === r.digest).length,
        sigstore: bundle.index.sigstore.filter(
          (s) => s.digest === r.digest || (r.manifests ?? []).some((m) => m.digest === s.digest),
        ).length,
      })),
      counts: {
        releases: releases.length,
        openpgp: bundle.index.openpgp.length,
        sigstore: bundle.index.sigstore.length,
        rejected: rejected.length,
        missing: missing.length,
      },
      rejected: bundle.index.rejected,
      missing: bundle.index.missing,
    };
    return result;
  } finally {
    await Promise.allSettled([client.close(), storeClient.close()]);
  }
}

/**
 * The image digests whose `.sig` must be carried: every single-arch release digest,
 * every per-arch digest of a multi index (nodes check the manifest they run), and the
 * index's own digest where a `.sig` exists for it.
 */
function sigTargets(releases: BundleRelease[]): SigTarget[] {
  const targets = new Map<Digest, SigTarget>();
  const add = (t: SigTarget): void => {
    const existing = targets.get(t.digest);
    if (!existing || (!existing.required && t.required)) targets.set(t.digest, t);
  };
  for (const r of releases) {
    if (r.manifests) {
      add({ digest: r.digest, release: r, label: releaseLabel(r), required: false });
      for (const m of r.manifests) {
        add({
          digest: m.digest,
          release: r,
          label: `${releaseLabel(r)}/${m.arch}`,
          required: true,
        });
      }
    } else {
      add({ digest: r.digest, release: r, label: releaseLabel(r), required: true });
    }
  }
  return [...targets.values()];
}

/** SOURCE_DATE_EPOCH (reproducible-builds.org) as a Date, if set. */
function sourceDateEpoch(): Date | undefined {
  const raw = process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return undefined;
  if (!/^[0-9]+$/.test(raw))
    throw new SigferryError(
      "USAGE",
      `SOURCE_DATE_EPOCH must be a whole number of seconds, not "${raw}"`,
    );
  return new Date(Number(raw) * 1000);
}

/** Prints a create result for people. */
export function printCreateResult(result: CreateResult, reporter: Reporter): void {
  reporter.resultJson(result);
  if (reporter.json) return;
  reporter.result(`wrote ${result.archive} (${result.size} bytes)`);
  reporter.result(`sha256 ${result.sha256}  (sidecar ${result.archive}.sha256)`);
  for (const r of result.releases) {
    reporter.result(
      `  ${(r.version ?? "-").padEnd(12)} ${r.arch.padEnd(8)} ${r.digest}  openpgp ${r.openpgp}  sigstore ${r.sigstore}`,
    );
  }
  reporter.result(
    `${result.counts.releases} release(s), ${result.counts.openpgp} OpenPGP signature(s), ${result.counts.sigstore} sigstore artifact(s)` +
      (result.counts.rejected > 0 ? `, ${result.counts.rejected} rejected (see index.json)` : "") +
      (result.counts.missing > 0 ? `, ${result.counts.missing} MISSING` : ""),
  );
}
