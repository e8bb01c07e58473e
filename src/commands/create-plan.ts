/**
 * The plan stage of `bundle create`: merge `--config` with the flags, select
 * releases from the update graph, resolve every release in the registry and
 * cross-check graph digests against it. `--dry-run` prints this plan and stops.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { BundleRelease } from "../core/bundle-index.js";
import { parseSelectionConfig, type SelectionConfig } from "../core/config.js";
import { parseDigest } from "../core/digest.js";
import type { Risk } from "../core/graph.js";
import {
  DEFAULT_RELEASE_REPO,
  formatRepository,
  parseReleaseArch,
  parseRepository,
  parseVersion,
  RELEASE_ARCHES,
  type ReleaseArch,
  type RepositoryRef,
} from "../core/reference.js";
import {
  assertRegistryAgrees,
  mergeSelections,
  selectReleases,
  selectionRecord,
  type PlanEdge,
  type SelectionRecord,
} from "../core/select.js";
import { SigferryError, isSigferryError } from "../errors.js";
import type { RegistryClient } from "../registry/client.js";
import { DEFAULT_GRAPH_URL, fetchGraph } from "../sources/graph.js";
import { resolveByDigest, resolveByTag } from "../sources/releases.js";
import { DEFAULT_SIGNATURE_STORES } from "../sources/signature-store.js";
import { splitList } from "./common.js";
import type { Reporter } from "./output.js";

type Kind = "openpgp" | "sigstore";

/** The selection and source flags of `bundle create` (before merging with --config). */
export interface SelectionFlags {
  release?: string[];
  digest?: string[];
  arch?: string[];
  channel?: string[];
  min?: string;
  max?: string;
  shortestPath?: boolean;
  full?: boolean;
  acceptRisks?: boolean;
  graphUrl?: string;
  releaseRepo?: string;
  signatureStore?: string[];
  keyring?: string[];
  sigstoreKey?: string[];
  require?: string;
  config?: string;
}

/** The effective settings once flags and --config are merged. */
export interface Settings {
  versions: string[];
  digests: `sha256:${string}`[];
  arches: ReleaseArch[];
  channels: string[];
  min?: string;
  max?: string;
  shortestPath: boolean;
  full: boolean;
  acceptRisks: boolean;
  graphUrl: string;
  repo: RepositoryRef;
  repoLabel: string;
  stores: string[];
  keyring: string[];
  sigstoreKey: string[];
  required: Kind[];
  record: SelectionRecord;
}

function parseRequire(value: string | undefined): Kind[] {
  const kinds = splitList(value ?? "openpgp,sigstore");
  if (kinds.length === 1 && kinds[0] === "none") return [];
  for (const k of kinds) {
    if (k !== "openpgp" && k !== "sigstore") {
      throw new SigferryError(
        "USAGE",
        `--require takes openpgp, sigstore, both (comma-separated) or none; not "${k}"`,
      );
    }
  }
  return [...new Set(kinds)] as Kind[];
}

async function readConfig(file: string): Promise<SelectionConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new SigferryError(
      "INPUT_READ_FAILED",
      `cannot read --config ${file}: ${(cause as Error).message}`,
      {
        cause,
        details: { file },
      },
    );
  }
  return parseSelectionConfig(text, file);
}

/** Merges flags over `--config` (a flag given on the command line wins) and validates everything. */
export async function resolveSettings(flags: SelectionFlags): Promise<Settings> {
  const cfg: SelectionConfig = flags.config ? await readConfig(flags.config) : {};
  const base = flags.config ? path.dirname(flags.config) : ".";
  const rel = (p: string): string => (path.isAbsolute(p) ? p : path.join(base, p));
  const listFlag = (v: string[] | undefined): string[] | undefined =>
    v && v.length > 0 ? splitList(v) : undefined;

  const versions = (listFlag(flags.release) ?? cfg.releases ?? []).map(parseVersion);
  const digests = (listFlag(flags.digest) ?? cfg.digests ?? []).map((d) =>
    parseDigest(d, "--digest"),
  );
  // Canonical order, so the same set of arches gives the same bundle whatever order it was typed in.
  const archSet = new Set((listFlag(flags.arch) ?? cfg.arches ?? ["x86_64"]).map(parseReleaseArch));
  const arches = RELEASE_ARCHES.filter((a) => archSet.has(a));
  const channels = listFlag(flags.channel) ?? cfg.channels ?? [];
  const min = flags.min ?? cfg.min;
  const max = flags.max ?? cfg.max;
  if (min !== undefined) parseVersion(min);
  if (max !== undefined) parseVersion(max);
  const shortestPath = flags.shortestPath ?? cfg.shortestPath ?? false;
  const full = flags.full ?? cfg.full ?? false;
  const acceptRisks = flags.acceptRisks ?? cfg.acceptRisks ?? false;
  const graphUrl = flags.graphUrl ?? cfg.sources?.graphUrl ?? DEFAULT_GRAPH_URL;
  if (channels.length === 0 && (min !== undefined || max !== undefined || shortestPath || full)) {
    throw new SigferryError(
      "USAGE",
      "--min, --max, --shortest-path and --full select within a channel: add --channel <name>",
    );
  }
  if (versions.length === 0 && digests.length === 0 && channels.length === 0) {
    throw new SigferryError(
      "USAGE",
      "nothing selected: give --release <version>, --digest <sha256:…>, --channel <name>, or a --config file",
    );
  }
  const repo = parseRepository(
    flags.releaseRepo ?? cfg.sources?.releaseRepo ?? DEFAULT_RELEASE_REPO,
  );
  const stores = (
    listFlag(flags.signatureStore) ??
    cfg.sources?.signatureStores ?? [...DEFAULT_SIGNATURE_STORES]
  ).map((s) => s.replace(/\/+$/, ""));
  for (const s of stores) {
    if (!/^https?:\/\//.test(s))
      throw new SigferryError("USAGE", `--signature-store ${s}: give an http(s) URL`);
  }
  const required =
    flags.require !== undefined
      ? parseRequire(flags.require)
      : cfg.require !== undefined
        ? [...cfg.require]
        : parseRequire(undefined);
  const settings: Settings = {
    versions,
    digests,
    arches,
    channels,
    shortestPath,
    full,
    acceptRisks,
    graphUrl,
    repo,
    repoLabel: formatRepository(repo),
    stores,
    keyring: listFlag(flags.keyring) ?? (cfg.keys?.keyrings ?? []).map(rel),
    sigstoreKey: listFlag(flags.sigstoreKey) ?? (cfg.keys?.sigstoreKeys ?? []).map(rel),
    required,
    record: selectionRecord({
      channels,
      arches,
      ...(min !== undefined ? { min } : {}),
      ...(max !== undefined ? { max } : {}),
      shortestPath,
      full,
      acceptRisks,
      ...(channels.length > 0 ? { graphUrl } : {}),
      releases: versions,
      digests,
    }),
  };
  if (min !== undefined) settings.min = min;
  if (max !== undefined) settings.max = max;
  return settings;
}

/** The resolved plan: releases with digests, upgrade edges and risks, warnings. */
export interface Plan {
  releases: BundleRelease[];
  edges: (PlanEdge & { channel: string; arch: string })[];
  warnings: string[];
}

/** Selects from the graph and resolves every release in the registry (graph digests cross-checked). */
export async function buildPlan(
  s: Settings,
  client: RegistryClient,
  reporter: Reporter,
  run: <T>(fn: () => Promise<T>) => Promise<T>,
  options: {
    signal?: AbortSignal;
    tolerateUnreachableRegistry?: boolean;
    /** Told of each release as soon as it resolves, so its signatures can be fetched meanwhile. */
    onResolved?: (release: BundleRelease) => void;
  } = {},
): Promise<Plan> {
  const warnings: string[] = [];
  const edges: Plan["edges"] = [];
  const jobs: (() => Promise<BundleRelease>)[] = [];

  // Update graph: one query per channel and arch.
  if (s.channels.length > 0) {
    const perChannelArch = await Promise.all(
      s.channels.flatMap((channel) =>
        s.arches.map((arch) =>
          run(async () => {
            const graph = await fetchGraph({
              graphUrl: s.graphUrl,
              channel,
              arch,
              ...(options.signal ? { signal: options.signal } : {}),
            });
            const result = selectReleases(graph, {
              ...(s.min !== undefined ? { min: s.min } : {}),
              ...(s.max !== undefined ? { max: s.max } : {}),
              full: s.full,
              shortestPath: s.shortestPath,
              acceptRisks: s.acceptRisks,
            });
            for (const w of result.warnings) warnings.push(`${channel}/${arch}: ${w}`);
            for (const e of result.edges) edges.push({ ...e, channel, arch });
            return { channel, arch, result };
          }),
        ),
      ),
    );
    for (const planned of mergeSelections(perChannelArch)) {
      jobs.push(async () => {
        const tagRef = `${s.repoLabel}:${planned.version}-${planned.arch}`;
        let r: BundleRelease;
        try {
          r = await resolveByTag(client, s.repoLabel, s.repo.path, planned.version, planned.arch);
        } catch (err) {
          const unreachable = isSigferryError(err, "NETWORK", "TIMEOUT", "TLS");
          if (!(unreachable && options.tolerateUnreachableRegistry)) throw err;
          warnings.push(
            `${tagRef}: registry unreachable, graph digest not cross-checked (${(err as Error).message})`,
          );
          return {
            version: planned.version,
            arch: planned.arch,
            digest: planned.digest,
            mediaType: "unknown",
            resolvedBy: `graph:${planned.channels.join(",")}`,
          };
        }
        // The graph and the registry must agree: someone is wrong otherwise.
        assertRegistryAgrees(planned, r.digest, tagRef);
        return { ...r, resolvedBy: `graph:${planned.channels.join(",")}` };
      });
    }
  }
  for (const version of s.versions) {
    for (const arch of s.arches)
      jobs.push(() => resolveByTag(client, s.repoLabel, s.repo.path, version, arch));
  }
  for (const digest of s.digests)
    jobs.push(() => resolveByDigest(client, s.repoLabel, s.repo.path, digest));

  let done = 0;
  const resolved = await Promise.all(
    jobs.map((job) =>
      run(async () => {
        const r = await job();
        options.onResolved?.(r);
        reporter.progress(
          "resolve",
          ++done,
          jobs.length,
          r.version !== undefined ? `${r.version} (${r.arch})` : r.digest,
        );
        return r;
      }),
    ),
  );
  // De-duplicate: the same version+arch may come from a channel and from --release.
  const seen = new Map<string, BundleRelease>();
  for (const r of resolved) {
    const key = `${r.version ?? ""}|${r.arch}|${r.digest}`;
    if (!seen.has(key)) seen.set(key, r);
  }
  return { releases: [...seen.values()], edges, warnings };
}

/** Formats a risk for people: name and URL. */
export function formatRisk(r: Risk): string {
  return `${r.name} (${r.url})`;
}

/** Prints a dry-run plan (text or JSON). */
export function printPlan(plan: Plan, s: Settings, reporter: Reporter): void {
  const releases = plan.releases.map((r) => ({
    ...(r.version !== undefined ? { version: r.version } : {}),
    arch: r.arch,
    digest: r.digest,
    resolvedBy: r.resolvedBy,
    ...(r.manifests
      ? { manifests: r.manifests.map((m) => ({ arch: m.arch, digest: m.digest })) }
      : {}),
  }));
  reporter.resultJson({
    ok: true,
    dryRun: true,
    selection: s.record,
    releases,
    edges: plan.edges,
    warnings: plan.warnings,
    sources: { releaseRepo: s.repoLabel, signatureStores: s.stores },
    required: s.required,
  });
  if (reporter.json) return;
  reporter.result(
    `plan (dry run: no signature fetched, nothing written): ${releases.length} release(s)`,
  );
  for (const r of releases) {
    reporter.result(
      `  ${(r.version ?? "-").padEnd(12)} ${r.arch.padEnd(8)} ${r.digest}  ${r.resolvedBy}`,
    );
    for (const m of r.manifests ?? []) reporter.result(`      ${m.arch.padEnd(8)} ${m.digest}`);
  }
  if (plan.edges.length > 0) {
    reporter.result("upgrade edges:");
    for (const e of plan.edges) {
      reporter.result(
        `  ${e.from} -> ${e.to} [${e.channel}/${e.arch}]${e.risks && e.risks.length > 0 ? `  RISK: ${e.risks.map(formatRisk).join(", ")}` : ""}`,
      );
    }
  }
  for (const w of plan.warnings) reporter.warn(w);
}
