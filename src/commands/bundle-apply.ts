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
import { forEachWindowed } from "../core/windowed.js";
import { SigferryError } from "../errors.js";
import { DEFAULT_CONCURRENCY } from "../net/policy.js";
import type { RegistryClient } from "../registry/client.js";
import type { BlobPushResult } from "../registry/types.js";
import { positiveInt, registryClient, registryOptions, type RegistryFlags } from "./common.js";
import type { OpenedBundle } from "../archive/bundle.js";
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
      const probes = startProbes(index, client, mirror.path, limit, concurrency, () => stopping);
      return { client, probes };
    })();
    // Observed after verification, so that its errors come in the order they always did.
    registry.catch(() => undefined);
  };
  let disconnected: Promise<void> | undefined;
  let stopping = false;
  const disconnect = (): Promise<void> =>
    (disconnected ??= (async () => {
      stopping = true;
      limit.clearQueue();
      const r = await registry?.catch(() => undefined);
      await r?.client.close();
    })());

  try {
    // 1. Verify: nothing is pushed or applied unless every check passes. While the
    // signatures are verified, the read-only checks (does the mirror hold each
    // release image, each .sig tag?) already run: they change nothing, and their
    // round trips overlap the verification instead of following it.
    const { index, members, ...bundle } = await verified(file, options, reporter, connect);
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
          width: concurrency,
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

/**
 * Verifies the bundle (throwing unless every check passed) and returns it
 * opened. The check lines are counted and let go: at 2000 releases they are
 * 8 700 objects (1.7 MiB) that the pushes and the cluster never read.
 */
async function verified(
  file: string,
  options: ApplyOptions,
  reporter: Reporter,
  connect: (index: BundleIndex) => void,
): Promise<OpenedBundle> {
  const { result, bundle } = await runVerify(
    file,
    { ...options, json: false, quiet: true },
    reporter,
    { onOpened: (opened) => connect(opened.index) },
  );
  assertVerified(result);
  reporter.info(`verified ${file} (${result.lines.length} checks)`);
  return bundle;
}

/** The read-only registry checks, started before the pushes. */
interface Probes {
  /** How many release images are checked. */
  imagesChecked: number;
  /** The release image digests the mirror does not hold, in release order; settles when every image has been checked. */
  missingImages: Promise<Digest[]>;
  /** What the mirror holds under a `.sig` tag (undefined: nothing); each tag is asked about once. */
  tag: (tag: string) => Promise<{ digest?: Digest } | undefined>;
}

/**
 * Starts the read-only checks of `index` against the mirror, each a request
 * through `limit`: a HEAD per release image, and (from LIST_TAGS_FROM tags up)
 * one tag listing that says which `.sig` tags need a HEAD. At most `width`
 * images and `width` tags are under way at a time, so the checks of 2000
 * releases do not wait on the heap all at once (src/core/windowed.ts); the
 * tags are asked in push order, ahead of the pushes, while verification runs.
 */
function startProbes(
  index: BundleIndex,
  client: RegistryClient,
  repo: string,
  limit: LimitFunction,
  width: number,
  stopped: () => boolean,
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

  const digests = new Set<Digest>();
  for (const r of index.releases) {
    digests.add(r.digest);
    for (const m of r.manifests ?? []) digests.add(m.digest);
  }
  const held: boolean[] = [];
  const missingImages = quiet(
    forEachWindowed(
      digests,
      width,
      async (digest, i) => {
        held[i] = (await limit(() => client.headManifest(repo, digest))) !== undefined;
      },
      { stopped },
    ).then(() => [...digests].filter((_, i) => !held[i])),
  );

  // One listing says which tags exist; only those need a HEAD for their digest.
  // On a first push that saves a request per artifact (HEAD answering 404), for
  // one request per page of tags. A listing that fails is not an error: every
  // tag gets its HEAD, as with few tags.
  const asked = new Map<string, Promise<{ digest?: Digest } | undefined>>();
  const head = (tag: string): Promise<{ digest?: Digest } | undefined> =>
    limit(() => client.headManifest(repo, tag));
  const tag = (name: string): Promise<{ digest?: Digest } | undefined> => {
    let answer = asked.get(name);
    if (answer === undefined) {
      answer = quiet(
        listed === undefined
          ? head(name)
          : listed.then((present) =>
              present === undefined || present.has(name) ? head(name) : undefined,
            ),
      );
      asked.set(name, answer);
    }
    return answer;
  };
  // Asked ahead of the pushes; a failure here is the push's to report.
  void quiet(
    forEachWindowed(
      names,
      width,
      async (name) => {
        await tag(name).catch(() => undefined);
      },
      { stopped },
    ),
  );
  return { imagesChecked: digests.size, missingImages, tag };
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
    /** Artifacts under way at most (the limiter's width: enough to keep every slot busy). */
    width: number;
    probes: Probes;
    reporter: Reporter;
    warn: (w: string) => void;
  },
): Promise<NonNullable<ApplyResult["registry"]>> {
  const { limit, probes } = ctx;
  const blob = (d: string): Uint8Array => members.get(`sigstore/blobs/sha256/${d.slice(7)}`)!;

  // A signature without its image means the mirroring went wrong: warn.
  const label = releaseLabeler(index.releases);
  const imageChecks = probes.missingImages.then((digests) => {
    const missing = digests.map((digest) => ({ release: label(digest), digest }));
    for (const w of missingImageWarnings(repoLabel, missing, probes.imagesChecked)) ctx.warn(w);
    return missing;
  });

  let done = 0;
  const pushOne = async (a: BundleIndex["sigstore"][number]): Promise<PushLine> => {
    const line: PushLine = {
      tag: a.tag,
      digest: a.digest,
      manifestDigest: a.manifest.digest,
      action: "unchanged",
      blobs: [],
    };
    const current = await probes.tag(a.tag);
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
  };
  // At most `width` artifacts under way: the rest wait as index entries, not as queued tasks.
  const artifacts: PushLine[] = [];
  const pushes = forEachWindowed(index.sigstore, ctx.width, async (a, i) => {
    artifacts[i] = await pushOne(a);
  });
  const [, missingImages] = await Promise.all([pushes, imageChecks]);
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
