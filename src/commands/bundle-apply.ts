/**
 * `sigferry bundle apply`: land a verified bundle on the disconnected side.
 * Verifies first (nothing is pushed or applied otherwise), pushes every `.sig`
 * artifact into the mirror byte for byte (blobs before manifests, so the mirror
 * never holds a tag pointing at a missing blob), writes the manifests for
 * `oc apply`, and server-side-applies the ConfigMaps. Idempotent and resumable:
 * what is already in place is detected and left alone.
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pLimit, { type LimitFunction } from "p-limit";
import { loadKubeconfig } from "../cluster/kubeconfig.js";
import { KubeClient } from "../cluster/client.js";
import { releaseLabeler } from "../core/labels.js";
import { applyManifests, type ManifestFile } from "../core/apply-manifests.js";
import type { BundleIndex } from "../core/bundle-index.js";
import type { Digest } from "../core/digest.js";
import { formatRepository, parseRepository } from "../core/reference.js";
import { SigferryError } from "../errors.js";
import { DEFAULT_CONCURRENCY } from "../net/policy.js";
import type { RegistryClient } from "../registry/client.js";
import type { BlobPushResult } from "../registry/types.js";
import { positiveInt, registryClient, registryOptions, type RegistryFlags } from "./common.js";
import { assertVerified, runVerify } from "./bundle-verify.js";
import type { OutputOptions, Reporter } from "./output.js";

/** Options of `bundle apply`. */
export interface ApplyOptions extends RegistryFlags, OutputOptions {
  to?: string;
  kubeconfig?: string;
  context?: string;
  skipRegistry?: boolean;
  skipCluster?: boolean;
  manifestsDir?: string;
  mirrorResources?: boolean;
  keyring?: string[];
  sigstoreKey?: string[];
  dryRun?: boolean;
  concurrency?: string | number;
}

/** What happened to one `.sig` artifact in the mirror. */
export interface PushLine {
  tag: string;
  digest: string;
  manifestDigest: string;
  action: "pushed" | "unchanged" | "would-push";
  blobs: { digest: string; result: BlobPushResult | "would-push" | "present" }[];
}

/** What happened to one cluster object. */
export interface ClusterLine {
  kind: string;
  name: string;
  namespace?: string;
  action: "created" | "updated" | "unchanged" | "would-apply";
}

/** The --json document of apply. */
export interface ApplyResult {
  ok: boolean;
  dryRun: boolean;
  archive: { file: string; sha256: string };
  registry?: {
    to: string;
    artifacts: PushLine[];
    missingImages: { release: string; digest: string }[];
  };
  manifestsDir?: string;
  files?: string[];
  cluster?: { context: string; server: string; objects: ClusterLine[] };
  warnings: string[];
  changed: boolean;
}

/** Runs apply: verify, push, write manifests, apply to the cluster. */
export async function runApply(
  file: string,
  options: ApplyOptions,
  reporter: Reporter,
  signal?: AbortSignal,
): Promise<ApplyResult> {
  if (!options.skipRegistry && !options.to) {
    throw new SigferryError(
      "USAGE",
      "bundle apply needs --to <host[:port]/repo> (the mirror repository), or --skip-registry",
    );
  }
  const mirror = options.to ? parseRepository(options.to) : undefined;
  const mirrorLabel = mirror ? formatRepository(mirror) : undefined;
  const concurrency = positiveInt(options.concurrency, "--concurrency", DEFAULT_CONCURRENCY);
  const dryRun = options.dryRun === true;
  const warnings: string[] = [];
  const warn = (w: string): void => {
    warnings.push(w);
    reporter.warn(w);
  };

  // One limiter for every registry request of the run (probes and pushes alike).
  const limit = pLimit(concurrency);
  const useRegistry = !options.skipRegistry && mirror !== undefined;
  let registry: Promise<{ client: RegistryClient; probes: Probes }> | undefined;
  const connect = (index: BundleIndex): void => {
    if (!useRegistry || registry) return;
    registry = (async () => {
      const regOptions = await registryOptions(options, reporter, signal);
      // A pool smaller than the limiter would queue requests the limiter let through.
      regOptions.connections = Math.max(regOptions.connections ?? 0, concurrency);
      const client = registryClient(mirror.registry, regOptions);
      return { client, probes: startProbes(index, client, mirror.path, limit) };
    })();
    // Observed after verification, so that its errors come in the order they always did.
    registry.catch(() => undefined);
  };
  let disconnected: Promise<void> | undefined;
  const disconnect = (): Promise<void> =>
    (disconnected ??= (async () => {
      limit.clearQueue();
      const r = await registry?.catch(() => undefined);
      await r?.client.close();
    })());

  try {
    // 1. Verify: nothing is pushed or applied unless every check passes. While the
    // signatures are verified, the read-only checks (does the mirror hold each
    // release image, each .sig tag?) already run: they change nothing, and their
    // round trips overlap the verification instead of following it.
    const { result: verified, bundle } = await runVerify(
      file,
      { ...options, json: false, quiet: true },
      reporter,
      { onOpened: (opened) => connect(opened.index) },
    );
    assertVerified(verified);
    reporter.info(`verified ${file} (${verified.lines.length} checks)`);
    const { index, members } = bundle;
    const out: ApplyResult = {
      ok: true,
      dryRun,
      archive: { file, sha256: bundle.sha256 },
      warnings,
      changed: false,
    };

    // 2. Registry.
    if (useRegistry && mirrorLabel) {
      connect(index);
      const { client, probes } = await registry!;
      try {
        out.registry = await pushArtifacts(index, members, client, mirror.path, mirrorLabel, {
          dryRun,
          limit,
          probes,
          reporter,
          warn,
        });
        if (out.registry.artifacts.some((a) => a.action === "pushed")) out.changed = true;
      } finally {
        await disconnect();
      }
    }

    // 3. Manifests for `oc apply -f <dir>` / `oc apply -k <dir>`.
    const manifests = applyManifests(index, members, mirrorLabel);
    for (const w of manifests.warnings) warn(w);
    const manifestsDir =
      options.manifestsDir ?? (options.skipCluster ? "sigferry-manifests" : undefined);
    if (manifestsDir !== undefined) {
      const files = [...manifests.configMaps, ...manifests.mirror];
      if (!dryRun) await writeManifestsDir(manifestsDir, files, manifests.kustomization);
      out.manifestsDir = manifestsDir;
      out.files = [...files.map((f) => f.file), "kustomization.yaml"];
      reporter.info(
        `${dryRun ? "would write" : "wrote"} ${out.files.length} file(s) to ${manifestsDir}/ (oc apply -k ${manifestsDir})`,
      );
    }

    // 4. Cluster: server-side apply, field manager "sigferry"; never deletes.
    if (!options.skipCluster) {
      const target = await loadKubeconfig({
        ...(options.kubeconfig !== undefined ? { path: options.kubeconfig } : {}),
        ...(options.context !== undefined ? { context: options.context } : {}),
        env: process.env,
        home: os.homedir(),
      });
      const kube = new KubeClient(target, {
        ...(signal ? { signal } : {}),
        onWarning: (w) => reporter.debug(`API warning: ${w}`),
      });
      try {
        const objects: ClusterLine[] = [];
        const toApply: ManifestFile[] = [
          ...manifests.configMaps,
          ...(options.mirrorResources ? manifests.mirror : []),
        ];
        let done = 0;
        for (const m of toApply) {
          const object = m.object;
          const res = await kube.applyObject(object, { dryRun, force: true });
          const action: ClusterLine["action"] = dryRun
            ? res.changed
              ? "would-apply"
              : "unchanged"
            : res.created
              ? "created"
              : res.changed
                ? "updated"
                : "unchanged";
          if (action === "created" || action === "updated") out.changed = true;
          objects.push({
            kind: object.kind,
            name: object.metadata.name,
            ...(object.metadata.namespace !== undefined
              ? { namespace: object.metadata.namespace }
              : {}),
            action,
          });
          reporter.progress(
            "apply",
            ++done,
            toApply.length,
            `${object.kind}/${object.metadata.name}`,
          );
        }
        out.cluster = { context: target.contextName, server: target.server, objects };
      } finally {
        await kube.close();
      }
    }
    return out;
  } finally {
    // After a failed verification: the probes are dropped and the connections closed.
    await disconnect();
  }
}

/** The read-only registry checks, started before the pushes: answers by release digest and by tag. */
interface Probes {
  /** Release image digest → whether the mirror holds it. */
  images: Map<string, Promise<boolean>>;
  /** `.sig` tag → what the mirror holds under it (undefined: nothing). */
  tags: Map<string, Promise<{ digest?: Digest } | undefined>>;
}

/** Starts every read-only check of `index` against the mirror, each a request through `limit`. */
function startProbes(
  index: BundleIndex,
  client: RegistryClient,
  repo: string,
  limit: LimitFunction,
): Probes {
  const quiet = <T>(p: Promise<T>): Promise<T> => {
    // Awaited by pushArtifacts; if it never runs (verification failed), nobody waits.
    p.catch(() => undefined);
    return p;
  };
  const names = [...new Set(index.sigstore.map((a) => a.tag))];
  // The tag listing goes first: the pushes wait for it, and nothing waits for the image checks.
  const listed =
    names.length < LIST_TAGS_FROM
      ? undefined
      : limit(() => client.listTags(repo)).then(
          (all) => new Set(all),
          () => undefined,
        );
  const images = new Map<string, Promise<boolean>>();
  for (const r of index.releases) {
    for (const digest of [r.digest, ...(r.manifests ?? []).map((m) => m.digest)]) {
      if (images.has(digest)) continue;
      images.set(
        digest,
        quiet(limit(async () => (await client.headManifest(repo, digest)) !== undefined)),
      );
    }
  }
  const head = (tag: string): Promise<{ digest?: Digest } | undefined> =>
    limit(() => client.headManifest(repo, tag));
  const tags = new Map<string, Promise<{ digest?: Digest } | undefined>>();
  if (listed === undefined) {
    for (const tag of names) tags.set(tag, quiet(head(tag)));
    return { images, tags };
  }
  // One listing says which tags exist; only those need a HEAD for their digest.
  // On a first push that saves a request per artifact (HEAD answering 404), for
  // one request per page of tags. A listing that fails is not an error: every
  // tag gets its HEAD, as with few tags.
  for (const tag of names) {
    tags.set(
      tag,
      quiet(
        listed.then((present) =>
          present === undefined || present.has(tag) ? head(tag) : undefined,
        ),
      ),
    );
  }
  return { images, tags };
}

/** From this many `.sig` tags up, apply lists the repository's tags instead of a HEAD per tag. */
export const LIST_TAGS_FROM = 16;

/** Pushes every `.sig` artifact (blobs first, then the manifest) unless the tag already holds it. */
async function pushArtifacts(
  index: BundleIndex,
  members: ReadonlyMap<string, Uint8Array>,
  client: RegistryClient,
  repo: string,
  repoLabel: string,
  ctx: {
    dryRun: boolean;
    limit: LimitFunction;
    probes: Probes;
    reporter: Reporter;
    warn: (w: string) => void;
  },
): Promise<NonNullable<ApplyResult["registry"]>> {
  const { limit, probes } = ctx;
  const blob = (d: string): Uint8Array => members.get(`sigstore/blobs/sha256/${d.slice(7)}`)!;

  // A signature without its image means the mirroring went wrong: warn.
  const label = releaseLabeler(index.releases);
  const imageChecks = (async () => {
    const missing: { release: string; digest: string }[] = [];
    for (const [digest, present] of probes.images) {
      if (!(await present)) missing.push({ release: label(digest), digest });
    }
    for (const w of missingImageWarnings(repoLabel, missing, probes.images.size)) ctx.warn(w);
    return missing;
  })();

  let done = 0;
  const pushes = Promise.all(
    index.sigstore.map(async (a): Promise<PushLine> => {
      const line: PushLine = {
        tag: a.tag,
        digest: a.digest,
        manifestDigest: a.manifest.digest,
        action: "unchanged",
        blobs: [],
      };
      const current = await probes.tags.get(a.tag)!;
      if (current?.digest === a.manifest.digest) {
        // Same manifest digest ⇒ same bytes; its blobs were pushed before it (blobs first).
        ctx.reporter.progress("push", ++done, index.sigstore.length, `${a.tag} unchanged`);
        return line;
      }
      // One request slot for the artifact's requests, which go one after another.
      return limit(async () => {
        if (ctx.dryRun) {
          line.action = "would-push";
          for (const d of [a.config, ...a.layers]) {
            line.blobs.push({
              digest: d.digest,
              result: (await client.hasBlob(repo, d.digest)) ? "present" : "would-push",
            });
          }
          ctx.reporter.progress("push", ++done, index.sigstore.length, `${a.tag} would push`);
          return line;
        }
        // A tag that is absent means a first push: its blobs are almost surely absent
        // too, and a HEAD per small blob would cost a round trip and save no bytes.
        // A tag that holds other content is an update: most blobs are there already.
        const checkExists = current !== undefined;
        for (const d of [a.config, ...a.layers]) {
          line.blobs.push({
            digest: d.digest,
            result: await client.pushBlob(repo, d.digest, blob(d.digest), { checkExists }),
          });
        }
        const pushed = await client.putManifest(
          repo,
          a.tag,
          blob(a.manifest.digest),
          a.manifest.mediaType,
        );
        if (pushed !== a.manifest.digest) {
          throw new SigferryError(
            "DIGEST_MISMATCH",
            `${repoLabel}:${a.tag}: the registry stored ${pushed}, expected ${a.manifest.digest}`,
            {
              details: { digest: a.digest },
            },
          );
        }
        line.action = "pushed";
        ctx.reporter.progress("push", ++done, index.sigstore.length, `${a.tag} pushed`);
        return line;
      });
    }),
  );
  const [artifacts, missingImages] = await Promise.all([pushes, imageChecks]);
  return { to: repoLabel, artifacts, missingImages };
}

/** Up to this many missing release images are warned about one by one; more get one summary. */
const MISSING_IMAGES_NAMED = 3;

/**
 * The warnings for release images the mirror does not hold: one per image when
 * there are few; otherwise one line that names the first few and the count (a
 * wrong --to would otherwise print a line per release). --json lists them all.
 */
export function missingImageWarnings(
  repoLabel: string,
  missing: readonly { release: string; digest: string }[],
  checked: number,
): string[] {
  if (missing.length <= MISSING_IMAGES_NAMED) {
    return missing.map(
      (m) =>
        `${repoLabel} does not hold release image ${m.release} ${m.digest}: mirror the release too, or check --to`,
    );
  }
  const named = missing
    .slice(0, MISSING_IMAGES_NAMED)
    .map((m) => m.release)
    .join(", ");
  const what =
    missing.length === checked
      ? `none of the ${checked} release images this bundle signs`
      : `${missing.length} of the ${checked} release images this bundle signs`;
  const hint =
    missing.length === checked
      ? "is --to the repository the releases were mirrored to?"
      : "mirror those releases too";
  return [
    `${repoLabel} holds ${what} (${named}, and ${missing.length - MISSING_IMAGES_NAMED} more; --json lists them): ${hint}`,
  ];
}

/** Files of a manifests directory written at once (the thread pool has 4 threads by default). */
const MANIFEST_WRITES_AT_ONCE = 8;

/** Writes the manifests to `dir` through a sibling temp dir renamed into place, so a failure leaves no half-written set. */
export async function writeManifestsDir(
  dir: string,
  files: ManifestFile[],
  kustomization: string,
): Promise<void> {
  const abs = path.resolve(dir);
  const tmp = `${abs}.tmp-${process.pid}-${Date.now()}`;
  try {
    await mkdir(tmp, { recursive: true });
    // Several files at once: each write is a few thread-pool jobs (open, write,
    // close), and one after another they were about half of apply's time after
    // the last push (2 000+ files for a large bundle).
    // Every write settles before the temp dir can be removed on a failure.
    const limit = pLimit(MANIFEST_WRITES_AT_ONCE);
    const writes = await Promise.allSettled([
      ...files.map((f) => limit(() => writeFile(path.join(tmp, f.file), f.yaml, { mode: 0o644 }))),
      limit(() => writeFile(path.join(tmp, "kustomization.yaml"), kustomization, { mode: 0o644 })),
    ]);
    const failed = writes.find((w) => w.status === "rejected");
    if (failed) throw failed.reason;
    await rm(abs, { recursive: true, force: true });
    await rename(tmp, abs);
  } catch (cause) {
    await rm(tmp, { recursive: true, force: true });
    throw new SigferryError(
      "OUTPUT_WRITE_FAILED",
      `cannot write manifests to ${dir}: ${(cause as Error).message}`,
      {
        cause,
        details: { file: dir },
      },
    );
  }
}

/** Prints an apply result for people. */
export function printApplyResult(r: ApplyResult, reporter: Reporter): void {
  reporter.resultJson(r);
  if (reporter.json) return;
  if (r.registry) {
    const pushed = r.registry.artifacts.filter((a) => a.action === "pushed").length;
    const would = r.registry.artifacts.filter((a) => a.action === "would-push").length;
    for (const a of r.registry.artifacts)
      reporter.result(`${a.action.padEnd(10)} ${r.registry.to}:${a.tag}  ${a.manifestDigest}`);
    reporter.result(
      `registry ${r.registry.to}: ${r.dryRun ? `${would} would be pushed` : `${pushed} pushed`}, ${r.registry.artifacts.length - pushed - would} already in place` +
        (r.registry.missingImages.length > 0
          ? `; ${r.registry.missingImages.length} release image(s) MISSING from the mirror`
          : ""),
    );
  }
  if (r.manifestsDir)
    reporter.result(
      `manifests: ${r.manifestsDir}/ (${r.files?.length ?? 0} files) — oc apply -k ${r.manifestsDir}`,
    );
  if (r.cluster) {
    for (const o of r.cluster.objects)
      reporter.result(
        `${o.action.padEnd(10)} ${o.kind}/${o.name}${o.namespace ? ` -n ${o.namespace}` : ""}`,
      );
    reporter.result(
      `cluster ${r.cluster.server} (context ${r.cluster.context}): ${r.cluster.objects.filter((o) => o.action !== "unchanged").length} changed, ${r.cluster.objects.filter((o) => o.action === "unchanged").length} unchanged`,
    );
  }
  reporter.result(
    r.dryRun
      ? "dry run: nothing was changed"
      : r.changed
        ? "applied"
        : "nothing to do: everything was already in place",
  );
}
