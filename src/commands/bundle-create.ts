/**
 * `sigferry bundle create`: resolve releases, fetch and verify both signature
 * kinds, and write one checksummed, reproducible archive. The shell around the
 * pure assembler (core/bundle.ts): all network, files and concurrency live here.
 */
import pLimit from "p-limit";
import { writeArchive } from "../archive/writer.js";
import { BundleAssembler, type AssembledBundle, type CollectedOpenPgp } from "../core/bundle.js";
import { MemberStore } from "../archive/member-store.js";
import type { BundleRelease, MissingSignature, RejectedSignature } from "../core/bundle-index.js";
import { sigTag, type Digest } from "../core/digest.js";
import { SigferryError, isSigferryError } from "../errors.js";
import { DEFAULT_CONCURRENCY } from "../net/policy.js";
import { SignatureStoreClient, type StoreListing } from "../sources/signature-store.js";
import { fetchSigArtifact, type BlobCache } from "../sources/releases.js";
import { buildPlan, printPlan, resolveSettings, type SelectionFlags } from "./create-plan.js";
import { loadTrust, type TrustedKeys } from "../verify/load-trust.js";
import { verifyAtomicSignature } from "../verify/openpgp.js";
import { verifySigArtifact, type SigArtifactVerification } from "../verify/sigstore.js";
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

/**
 * Ask for signature-1 and signature-2 together (see SignatureStoreClient#listPipelined):
 * one round trip less per release, at one wasted request for a release with no signature.
 */
const SPECULATIVE_SIGNATURE_2 = true;

/** The verdict on one OpenPGP signature. */
type PgpVerdict = { identity: string; signer: string } | { error: SigferryError };

/** What the stores yielded for one release digest, verified. */
interface PgpOutcome {
  stores: (
    | { store: string; error: SigferryError }
    | { store: string; listing: StoreListing; verified: PgpVerdict[] }
  )[];
}

/**
 * What one release digest's OpenPGP signatures came to, once the verified ones
 * are in the bundle's spool: the stores tried, those unreachable, the
 * signatures rejected (`warn`: one that did not verify, told as it is found),
 * and how many were valid. No signature bytes.
 */
type PgpSummary =
  | { skipped: true }
  | {
      tried: string[];
      unreachable: SigferryError[];
      rejected: { source: string; code: string; reason: string; warn: boolean }[];
      valid: number;
    };

/** What one image digest's `.sig` came to, once a verified one is in the spool (or skipped: not wanted). */
type SigSummary =
  | { skipped: true }
  | { found: boolean; failures: SigArtifactVerification["failures"]; carried: boolean };

/**
 * Fetches signature-1.. of `digest` from every store (all stores at once, each
 * request through `run`) and verifies each signature, outside the request slots.
 * An unreachable store is recorded, not thrown; only an interruption is.
 */
async function fetchOpenPgp(
  storeClient: SignatureStoreClient,
  stores: readonly string[],
  digest: Digest,
  trust: TrustedKeys,
  run: <T>(fn: () => Promise<T>) => Promise<T>,
): Promise<PgpOutcome> {
  type Listed = { store: string; listing: StoreListing } | { store: string; error: SigferryError };
  const listings = await Promise.all(
    stores.map(async (store): Promise<Listed> => {
      try {
        return {
          store,
          listing: await storeClient.listPipelined(store, digest, {
            run,
            speculative: SPECULATIVE_SIGNATURE_2,
          }),
        };
      } catch (err) {
        if (isSigferryError(err, "INTERRUPTED")) throw err;
        return { store, error: err as SigferryError };
      }
    }),
  );
  const out: PgpOutcome = { stores: [] };
  for (const l of listings) {
    if (!("listing" in l)) {
      out.stores.push(l);
      continue;
    }
    const verified: PgpVerdict[] = [];
    for (const sig of l.listing.signatures) {
      try {
        const v = await verifyAtomicSignature(sig.bytes, digest, trust.openpgp);
        verified.push({ identity: v.identity, signer: v.signer });
      } catch (err) {
        if (!isSigferryError(err)) throw err;
        verified.push({ error: err });
      }
    }
    out.stores.push({ store: l.store, listing: l.listing, verified });
  }
  return out;
}

/** Splits an outcome into its verified signatures, in store order, and a summary without bytes. */
function summarizeOpenPgp(
  digest: Digest,
  outcome: PgpOutcome,
): { summary: PgpSummary; verified: CollectedOpenPgp[] } {
  const summary: Exclude<PgpSummary, { skipped: true }> = {
    tried: [],
    unreachable: [],
    rejected: [],
    valid: 0,
  };
  const verified: CollectedOpenPgp[] = [];
  for (const fromStore of outcome.stores) {
    if ("error" in fromStore) {
      summary.unreachable.push(fromStore.error);
      summary.tried.push(`${fromStore.store} (${fromStore.error.message})`);
      continue;
    }
    const { listing, verified: verdicts } = fromStore;
    summary.tried.push(...listing.tried);
    for (const slot of listing.errors) {
      summary.rejected.push({
        source: slot.url,
        code: slot.error.code,
        reason: slot.error.message,
        warn: false,
      });
    }
    listing.signatures.forEach((sig, k) => {
      const v = verdicts[k]!;
      if ("error" in v) {
        summary.rejected.push({
          source: sig.url,
          code: v.error.code,
          reason: v.error.message,
          warn: true,
        });
        return;
      }
      verified.push({
        digest,
        bytes: sig.bytes,
        identity: v.identity,
        signer: v.signer,
        source: sig.url,
      });
      summary.valid++;
    });
  }
  // The stores tried are told only when no signature is valid.
  if (summary.valid > 0) summary.tried = [];
  return { summary, verified };
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
  const concurrency = positiveInt(options.concurrency, "--concurrency", DEFAULT_CONCURRENCY);
  // One limiter for the whole run: each slot is one request in flight, so
  // --concurrency is the number of requests on the wire at any time.
  const limit = pLimit(concurrency);
  const run = <T>(fn: () => Promise<T>): Promise<T> => limit(fn);
  const regOptions = await registryOptions(options, reporter, signal);
  // A pool smaller than the limiter would queue requests the limiter let through.
  regOptions.connections = Math.max(regOptions.connections ?? 0, concurrency);
  const client = registryClient(repo.registry, regOptions);
  const storeClient = new SignatureStoreClient(signal ? { signal } : {});
  const dryRun = options.dryRun === true;

  // ---- trust, loaded while the plan resolves (it may download the published keys) ----
  const trustReady: Promise<TrustedKeys> | undefined = dryRun
    ? undefined
    : loadTrust({
        keyring: s.keyring,
        sigstoreKey: s.sigstoreKey,
        fetchPublished: true,
        ...(signal ? { signal } : {}),
      }).then((trust) => {
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
        return trust;
      });
  // Observed below, after the plan (whose errors come first, as they always did).
  trustReady?.catch(() => undefined);

  // ---- fetch + verify, per digest, started as soon as a release resolves ----
  // No phase waits for another: a release's signatures are fetched while other
  // releases still resolve, and verification runs outside the request slots.
  const pgpTasks = new Map<Digest, Promise<PgpSummary>>();
  const sigTasks = new Map<Digest, Promise<SigSummary>>();
  // Verified material goes to the bundle's spool as each task finishes (set before the plan starts them).
  let spool: MemberStore | undefined;
  let assembler: BundleAssembler | undefined;
  const cache: BlobCache = new Map();
  let pgpDone = 0;
  let sigDone = 0;
  // A task starts when one of 2 × concurrency places frees, not when its release resolves:
  // a started task waits for its requests as suspended frames (at 2000 releases, 8.4 MiB
  // of them while the limiter worked through the queue); one not yet started is a closure.
  // Two chains of requests per place (OpenPGP and sigstore) keep every request slot busy.
  const gate = pLimit(2 * concurrency);
  const track = <T>(map: Map<Digest, Promise<T>>, digest: Digest, task: () => Promise<T>): void => {
    if (map.has(digest)) return;
    const p = gate(task);
    p.catch(() => undefined); // observed when the results are gathered
    map.set(digest, p);
  };
  const startRelease = (release: BundleRelease): void => {
    if (!trustReady) return;
    track(pgpTasks, release.digest, async (): Promise<PgpSummary> => {
      const trust = await trustReady;
      if (trust.openpgp.length === 0 && !required.includes("openpgp")) return { skipped: true };
      const outcome = await fetchOpenPgp(storeClient, stores, release.digest, trust, run);
      const { summary, verified } = summarizeOpenPgp(release.digest, outcome);
      assembler!.addOpenPgp(release.digest, verified);
      reporter.progress("fetch+verify openpgp", ++pgpDone, pgpTasks.size, releaseLabel(release));
      return summary;
    });
    for (const digest of [release.digest, ...(release.manifests ?? []).map((m) => m.digest)]) {
      track(sigTasks, digest, async (): Promise<SigSummary> => {
        const trust = await trustReady;
        if (trust.sigstore.length === 0 && !required.includes("sigstore"))
          return { skipped: true } as const;
        const artifact = await run(() =>
          fetchSigArtifact(client, repo.path, digest, cache, { deriveConfig: true }),
        );
        let summary: SigSummary = { found: false, failures: [], carried: false };
        if (artifact) {
          const v = verifySigArtifact(artifact, digest, {
            kind: "PublicKey",
            keys: trust.sigstore,
          });
          if (v.layers.length > 0) {
            assembler!.addSigstore({
              digest,
              manifestBytes: artifact.manifestBytes,
              manifestDigest: artifact.manifestDigest,
              mediaType: v.mediaType,
              config: v.config,
              layers: v.layers,
              blobs: artifact.blobs,
              source: `${repoLabel}:${sigTag(digest)}`,
            });
          }
          // In the spool now, or not carried: a later artifact naming the same blob fetches it again.
          for (const blob of artifact.blobs.keys()) cache.delete(blob);
          summary = { found: true, failures: v.failures, carried: v.layers.length > 0 };
        }
        reporter.progress("fetch+verify sigstore", ++sigDone, sigTasks.size, digest);
        return summary;
      });
    }
  };

  try {
    if (!dryRun) {
      // The members wait in a spool file, not in memory, until the archive is written.
      spool = new MemberStore(undefined, options.output);
      assembler = new BundleAssembler(spool);
    }
    // ---- plan: graph selection, tag resolution, cross-checks ----
    const plan = await buildPlan(s, client, reporter, run, {
      ...(signal ? { signal } : {}),
      tolerateUnreachableRegistry: dryRun,
      onResolved: startRelease,
    });
    if (dryRun) {
      printPlan(plan, s, reporter);
      return undefined;
    }
    for (const w of plan.warnings) reporter.warn(w);
    const releases = plan.releases;
    const output = options.output!;
    const trust = await trustReady!;
    reporter.debug(
      `OpenPGP keys: ${trust.openpgp.map((k) => k.fingerprint).join(", ") || "none"} (${trust.origin.openpgp})`,
    );
    reporter.debug(
      `sigstore keys: ${trust.sigstore.map((k) => k.id).join(", ") || "none"} (${trust.origin.sigstore})`,
    );
    // Every planned release has its tasks (a release the plan kept was resolved, but be sure).
    for (const r of releases) startRelease(r);

    // ---- OpenPGP: what each release digest yielded, in release order ----
    const rejected: RejectedSignature[] = [];
    const missing: MissingSignature[] = [];
    const failures: SigferryError[] = [];
    const releaseDigests = [...new Map(releases.map((r) => [r.digest, r])).values()];
    const pgpSummaries = await Promise.all(releaseDigests.map((r) => pgpTasks.get(r.digest)!));
    const sigSummaries = new Map<Digest, SigSummary>();
    await Promise.all(
      [...sigTasks].map(async ([digest, task]) => sigSummaries.set(digest, await task)),
    );
    releaseDigests.forEach((release, i) => {
      const summary = pgpSummaries[i]!;
      if ("skipped" in summary) return;
      const { tried, unreachable } = summary;
      for (const r of summary.rejected) {
        rejected.push({
          kind: "openpgp",
          digest: release.digest,
          source: r.source,
          code: r.code,
          reason: r.reason,
        });
        if (r.warn) reporter.warn(`${releaseLabel(release)}: rejected ${r.source}: ${r.reason}`);
      }
      if (summary.valid > 0) {
        for (const u of unreachable) reporter.warn(`${u.message} (signatures found elsewhere)`);
      } else if (required.includes("openpgp")) {
        const reasons = summary.rejected.map((r) => `${r.source}: ${r.reason}`);
        const why =
          unreachable.length > 0 && unreachable.length === stores.length
            ? unreachable[0]!.message
            : "no valid OpenPGP signature";
        const entry: MissingSignature = {
          kind: "openpgp",
          digest: release.digest,
          release: releaseLabel(release),
          code: unreachable.length === stores.length ? unreachable[0]!.code : "SIGNATURE_MISSING",
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
    });

    // ---- sigstore: what each target digest yielded, in target order ----
    for (const t of sigTargets(releases)) {
      const summary = sigSummaries.get(t.digest)!;
      if ("skipped" in summary) continue;
      const source = `${repoLabel}:${sigTag(t.digest)}`;
      const mustHave = t.required && required.includes("sigstore");
      let problem: { code: string; reason: string } | undefined;
      if (!summary.found) {
        problem = {
          code: "SIGNATURE_MISSING",
          reason: `no ${sigTag(t.digest)} tag in ${repoLabel}`,
        };
      } else {
        for (const f of summary.failures) {
          rejected.push({
            kind: "sigstore",
            digest: t.digest,
            source: `${source} layer ${f.digest}`,
            code: f.code,
            reason: f.reason,
          });
        }
        if (!summary.carried) {
          const first = summary.failures[0];
          problem = {
            code: first?.code ?? "SIGNATURE_INVALID",
            reason: first?.reason ?? "no layer verifies",
          };
          if (!mustHave) reporter.warn(`${t.label}: ${source} not carried: ${problem.reason}`);
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
    }
    if (failures.length > 0 && !options.keepGoing) {
      // All-or-nothing: report every failure, write nothing.
      if (failures.length > 1) for (const f of failures.slice(1)) reporter.warn(f.message);
      throw failures[0]!;
    }

    // ---- finish and write ----
    const createdAt = sourceDateEpoch() ?? new Date();
    pgpTasks.clear();
    sigTasks.clear();
    sigSummaries.clear();
    cache.clear();
    const bundle: AssembledBundle = assembler!.finish({
      toolVersion: TOOL_VERSION,
      createdAt,
      selection: s.record,
      sources: { releaseRepo: repoLabel, signatureStores: stores },
      required,
      releases,
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

    // Counted once: filtering the index per release would be quadratic in releases.
    const countBy = (entries: { digest: string }[]): Map<string, number> => {
      const m = new Map<string, number>();
      for (const e of entries) m.set(e.digest, (m.get(e.digest) ?? 0) + 1);
      return m;
    };
    const pgpCount = countBy(bundle.index.openpgp);
    const sigCount = countBy(bundle.index.sigstore);
    const result: CreateResult = {
      ok: missing.length === 0,
      archive: output,
      sha256: written.sha256,
      size: written.size,
      releases: bundle.index.releases.map((r) => ({
        ...(r.version !== undefined ? { version: r.version } : {}),
        arch: r.arch,
        digest: r.digest,
        openpgp: pgpCount.get(r.digest) ?? 0,
        sigstore: [...new Set([r.digest, ...(r.manifests ?? []).map((m) => m.digest)])].reduce(
          (n, d) => n + (sigCount.get(d) ?? 0),
          0,
        ),
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
    // On failure, requests and tasks not yet started are dropped, not sent.
    gate.clearQueue();
    limit.clearQueue();
    // A task still under way after a failure finds the spool closed and ends there.
    spool?.close();
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
