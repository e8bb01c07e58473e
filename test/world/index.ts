/**
 * The local world used by tests, the demo and the benchmarks: a real registry
 * holding synthetic OpenShift releases and their cosign `.sig` tags (pushed
 * through sigferry's own RegistryClient), two signature stores and an update
 * graph service (test/world/http-static.ts), and the keys that signed it all.
 * Everything listens on 127.0.0.1 and is stopped by `world.stop()`.
 *
 *   const world = await startWorld({ mirror: true });
 *   afterAll(() => world.stop());
 */
import { createHash, randomBytes } from "node:crypto";
import { access, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import pLimit from "p-limit";
import { RegistryClient } from "../../src/registry/client.js";
import {
  generateWorldData,
  registryContent,
  writeWorldFiles,
  type WorldData,
  type WorldDataOptions,
} from "../../fixtures/lib/world-data.js";
import { FIXTURES_OUT, loadTestKeys, type TestKeys } from "../../fixtures/lib/keys.js";
import { MT } from "../../fixtures/lib/images.js";
import { startStaticServer, type StaticServer } from "./http-static.js";
import { startRegistry, type RegistryHandle } from "./registry.js";
import { startTokenIssuer, type TokenIssuer } from "./token-issuer.js";

/** The default repository path of mirrored release images in the mirror registry. */
export const MIRROR_RELEASE_REPO_PATH = "ocp4/openshift-release-dev/ocp-release";

/** Credentials for a registry of the world. */
export interface Credentials {
  username: string;
  password: string;
}

/** How to run one registry of the world. */
export interface RegistrySetup {
  /** https with a throw-away CA (handle.caFile / caPem). */
  tls?: boolean;
  /** htpasswd (HTTP Basic) auth with this user. */
  htpasswd?: Credentials;
  /**
   * Docker token auth (Bearer, like quay.io) with this user. Plain http only:
   * the token issuer is plain http, and RegistryClient rightly refuses to send
   * credentials to an http realm of an https registry.
   */
  token?: Credentials;
}

export interface StartWorldOptions {
  /** Good releases (default 6); the bad cases come on top. */
  releases?: number;
  versionPrefix?: string;
  arches?: WorldDataOptions["arches"];
  /** Include the bad cases (default true). */
  cases?: boolean;
  /** Serve the upstream registry over https. */
  tlsUpstream?: boolean;
  /** Require these credentials on the upstream registry (htpasswd, or token auth with `authKind: "token"`). */
  authUpstream?: Credentials & { authKind?: "htpasswd" | "token" };
  /** Start an empty second registry to mirror into. */
  mirror?: boolean | RegistrySetup;
  /**
   * Also put the release images (not their `.sig` tags) into the mirror, under
   * this repository path (true: MIRROR_RELEASE_REPO_PATH): a mirror as
   * `oc adm release mirror` leaves it, images present and signatures missing.
   */
  mirrorReleases?: boolean | string;
  /** Parallel pushes while filling the upstream registry (default 8). */
  pushConcurrency?: number;
  /** Also write the stores, graphs and world.json under `world.dir/files` (slow for big worlds). */
  writeFiles?: boolean;
  /**
   * Reuse the upstream registry storage cached in fixtures/out/registry/ for
   * this exact content (default true). Filling a registry over HTTP costs
   * about 0.15 s per release; the cache makes every start after the first
   * instant. The cached storage is shared: do not push to a cached upstream;
   * pass false for a private, writable one.
   */
  upstreamCache?: boolean;
}

/** A registry of the world, with what a client needs to talk to it. */
export interface WorldRegistry extends RegistryHandle {
  /** Credentials it requires, if any. */
  credentials?: Credentials;
  /** The token issuer in front of it (token auth only). */
  tokenIssuer?: TokenIssuer;
}

/** The public key files, as tests pass them to --keyring / --sigstore-key. */
export interface WorldKeyFiles {
  dir: string;
  /** Armored OpenPGP public key of "sigferry test release key". */
  openpgpTrusted: string;
  /** Armored OpenPGP public key of "sigferry untrusted key". */
  openpgpUntrusted: string;
  /** PEM RSA-4096 sigstore public key. */
  sigstoreRsa: string;
  /** PEM ECDSA P-256 sigstore public key. */
  sigstoreEcdsa: string;
  /** PEM ECDSA P-256 public key nobody should trust. */
  sigstoreUntrusted: string;
}

export interface World {
  data: WorldData;
  keys: WorldKeyFiles;
  /** The upstream registry: releases in `openshift-release-dev/ocp-release`, with .sig tags. */
  upstream: WorldRegistry;
  /** `127.0.0.1:<port>/openshift-release-dev/ocp-release` (what --release-repo takes). */
  releaseRepo: string;
  /** Signature store base URLs (primary like mirror.openshift.com, secondary like GCS). */
  stores: { primary: string; secondary: string };
  /** The update graph endpoint (what --graph-url takes). */
  graphUrl: string;
  /** The store and graph server: request counters, fault injection, live content. */
  http: StaticServer;
  /** The mirror registry, when asked for (empty unless mirrorReleases). */
  mirror?: WorldRegistry;
  /** With mirrorReleases: `127.0.0.1:<port>/<path>` of the mirrored release images. */
  mirrorRepo?: string;
  /** A temp directory holding auth.json (and `files/` with writeFiles). */
  dir: string;
  /** With writeFiles: the stores, graphs and world.json, laid out as writeWorldFiles does. */
  filesDir?: string;
  /** A Docker config.json with credentials for the registries that need them. */
  authFile: string;
  /** Milliseconds: generation, registry start, filling the upstream (0-ish when cached). */
  timings: { generate: number; registries: number; push: number; total: number };
  /** Stops everything and removes the temp directory. Idempotent. */
  stop(): Promise<void>;
}

async function startWorldRegistry(
  setup: RegistrySetup,
  cleanups: Array<() => Promise<void>>,
  dir?: string,
): Promise<WorldRegistry> {
  if (setup.token !== undefined && setup.tls === true) {
    throw new Error(
      "startWorld: token auth needs a plain-http registry (the token issuer is plain http)",
    );
  }
  let tokenIssuer: TokenIssuer | undefined;
  if (setup.token !== undefined) {
    tokenIssuer = await startTokenIssuer({
      username: setup.token.username,
      password: setup.token.password,
    });
    const issuer = tokenIssuer;
    cleanups.push(() => issuer.stop());
  }
  const handle = await startRegistry({
    ...(dir !== undefined ? { dir } : {}),
    ...(setup.tls === true ? { tls: true } : {}),
    ...(setup.htpasswd !== undefined ? { htpasswd: setup.htpasswd } : {}),
    ...(tokenIssuer !== undefined ? { token: { issuer: tokenIssuer } } : {}),
  });
  cleanups.push(() => handle.stop());
  const credentials = setup.htpasswd ?? setup.token;
  return {
    ...handle,
    ...(credentials !== undefined ? { credentials } : {}),
    ...(tokenIssuer !== undefined ? { tokenIssuer } : {}),
  };
}

/** A RegistryClient for a world registry, with its CA and credentials. */
export function worldClient(registry: WorldRegistry): RegistryClient {
  const creds = registry.credentials;
  return new RegistryClient(registry.host, {
    plainHttp: registry.url.startsWith("http:"),
    ...(registry.caPem !== undefined ? { ca: registry.caPem } : {}),
    ...(creds !== undefined
      ? { credentials: (host: string) => (host === registry.host ? creds : undefined) }
      : {}),
  });
}

/**
 * Fills `registry` with the world's releases and `.sig` artifacts: blobs,
 * then image manifests, then indexes (a registry checks that an index's
 * manifests exist), then the `.sig` manifests.
 */
export async function pushWorld(
  data: WorldData,
  registry: WorldRegistry,
  repo: string = data.repoPath,
  concurrency = 8,
  what: "all" | "releases" = "all",
): Promise<void> {
  const client = worldClient(registry);
  const limit = pLimit(concurrency);
  try {
    const content = what === "all" ? registryContent(data) : releaseImagesOnly(data);
    await Promise.all(
      content.blobs.map((b) => limit(() => client.pushBlob(repo, b.digest, b.bytes))),
    );
    const isIndex = (m: { mediaType: string }): boolean =>
      m.mediaType === MT.ociIndex || m.mediaType === MT.dockerList;
    const phases = [
      content.manifests.filter((m) => !isIndex(m)),
      content.manifests.filter((m) => isIndex(m)),
    ];
    for (const phase of phases) {
      await Promise.all(
        phase.map((m) =>
          limit(async () => {
            const digest = await client.putManifest(repo, m.reference, m.bytes, m.mediaType);
            if (digest !== m.digest)
              throw new Error(`pushed ${m.reference}: digest ${digest}, expected ${m.digest}`);
          }),
        ),
      );
    }
  } finally {
    await client.close();
  }
}

/** The registry content of the release images alone, without the `.sig` artifacts. */
function releaseImagesOnly(data: WorldData): ReturnType<typeof registryContent> {
  return registryContent({ ...data, cosign: [] });
}

/** Where cached upstream storages live. */
export const REGISTRY_CACHE_DIR = path.join(FIXTURES_OUT, "registry");
const STALE_STORAGE_MS = 6 * 3_600_000;

/**
 * The storage directory of a registry holding `data`: taken from the cache
 * when a complete one exists, else filled once through a plain-http registry
 * and renamed into place (a concurrent builder's copy wins; ours is dropped).
 */
export async function cachedUpstreamStorage(data: WorldData, concurrency = 8): Promise<string> {
  const content = registryContent(data);
  const key = createHash("sha256")
    .update(JSON.stringify(content.manifests.map((m) => [m.reference, m.digest])))
    .digest("hex")
    .slice(0, 16);
  const o = data.options;
  const family = `${o.versionPrefix}-${o.releases}-${o.arches.join("_")}-${o.cases ? "cases" : "nocases"}`;
  const dir = path.join(REGISTRY_CACHE_DIR, `${family}-${key}`);
  const marker = path.join(dir, "sigferry-world-complete");
  if (await exists(marker)) return dir;

  await mkdir(REGISTRY_CACHE_DIR, { recursive: true });
  const tmp = path.join(
    REGISTRY_CACHE_DIR,
    `.${family}-${key}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  try {
    const registry = await startRegistry({ dir: tmp });
    try {
      await pushWorld(data, registry, data.repoPath, concurrency);
    } finally {
      await registry.stop();
    }
    await writeFile(path.join(tmp, "sigferry-world-complete"), `${JSON.stringify(o)}\n`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  // Storages of the same family with other content are stale (keys or generator changed).
  // Only old ones go: on a cold cache, parallel test processes may sign ECDSA
  // signatures differently and build, and use, sibling storages at the same time.
  for (const name of await readdir(REGISTRY_CACHE_DIR)) {
    if (!name.startsWith(`${family}-`) || name === `${family}-${key}`) continue;
    const other = path.join(REGISTRY_CACHE_DIR, name);
    const built = await stat(path.join(other, "sigferry-world-complete")).catch(() => undefined);
    if (built !== undefined && Date.now() - built.mtimeMs > STALE_STORAGE_MS) {
      await rm(other, { recursive: true, force: true });
    }
  }
  return dir;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

function authJson(registries: WorldRegistry[]): string {
  const auths: Record<string, { auth: string }> = {};
  for (const r of registries) {
    if (r.credentials === undefined) continue;
    auths[r.host] = {
      auth: Buffer.from(`${r.credentials.username}:${r.credentials.password}`).toString("base64"),
    };
  }
  return `${JSON.stringify({ auths }, null, 2)}\n`;
}

/** Starts a world: generates (or reuses memoised) fixtures, starts the services, fills the registry. */
export async function startWorld(options: StartWorldOptions = {}): Promise<World> {
  const t0 = performance.now();
  const cleanups: Array<() => Promise<void>> = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const errors: unknown[] = [];
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length > 0) throw new AggregateError(errors, "stopping the world failed");
    })();
    return stopping;
  };

  try {
    const dir = await mkdtemp(path.join(tmpdir(), "sigferry-world-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    const keys: TestKeys = await loadTestKeys();
    const upstreamSetup: RegistrySetup = {
      ...(options.tlsUpstream === true ? { tls: true } : {}),
      ...(options.authUpstream !== undefined
        ? options.authUpstream.authKind === "token"
          ? {
              token: {
                username: options.authUpstream.username,
                password: options.authUpstream.password,
              },
            }
          : {
              htpasswd: {
                username: options.authUpstream.username,
                password: options.authUpstream.password,
              },
            }
        : {}),
    };
    const mirrorSetup: RegistrySetup | undefined =
      options.mirror === undefined || options.mirror === false
        ? undefined
        : options.mirror === true
          ? {}
          : options.mirror;

    const tGen = performance.now();
    const data = await generateWorldData({
      keys,
      ...(options.releases !== undefined ? { releases: options.releases } : {}),
      ...(options.versionPrefix !== undefined ? { versionPrefix: options.versionPrefix } : {}),
      ...(options.arches !== undefined ? { arches: options.arches } : {}),
      ...(options.cases !== undefined ? { cases: options.cases } : {}),
    });
    const generateMs = performance.now() - tGen;

    const tPush = performance.now();
    const concurrency = options.pushConcurrency ?? 8;
    const storage =
      options.upstreamCache === false ? undefined : await cachedUpstreamStorage(data, concurrency);
    let pushMs = performance.now() - tPush;

    const tReg = performance.now();
    // Settle both before failing, so that a registry still starting is not left out of the cleanups.
    const [up, mir] = await Promise.allSettled([
      startWorldRegistry(upstreamSetup, cleanups, storage),
      mirrorSetup !== undefined
        ? startWorldRegistry(mirrorSetup, cleanups)
        : Promise.resolve(undefined),
    ]);
    if (up.status === "rejected") throw up.reason;
    if (mir.status === "rejected") throw mir.reason;
    const upstream = up.value;
    const mirror = mir.value;
    const registriesMs = performance.now() - tReg;

    if (storage === undefined) {
      const t = performance.now();
      await pushWorld(data, upstream, data.repoPath, concurrency);
      pushMs = performance.now() - t;
    }

    let mirrorRepo: string | undefined;
    if (options.mirrorReleases !== undefined && options.mirrorReleases !== false) {
      if (mirror === undefined) throw new Error("startWorld: mirrorReleases needs mirror");
      const repoPath =
        options.mirrorReleases === true ? MIRROR_RELEASE_REPO_PATH : options.mirrorReleases;
      await pushWorld(data, mirror, repoPath, concurrency, "releases");
      mirrorRepo = `${mirror.host}/${repoPath}`;
    }

    const http = await startStaticServer({
      primary: new Map([...data.stores.primary].map(([k, f]) => [k, f.bytes])),
      secondary: new Map([...data.stores.secondary].map(([k, f]) => [k, f.bytes])),
      graphs: data.graphs,
    });
    cleanups.push(() => http.stop());

    const filesDir = options.writeFiles === true ? path.join(dir, "files") : undefined;
    if (filesDir !== undefined) await writeWorldFiles(data, filesDir);
    const authFile = path.join(dir, "auth.json");
    await writeFile(authFile, authJson(mirror !== undefined ? [upstream, mirror] : [upstream]), {
      mode: 0o600,
    });

    return {
      data,
      keys: {
        dir: keys.dir,
        openpgpTrusted: keys.openpgpTrusted.publicPath,
        openpgpUntrusted: keys.openpgpUntrusted.publicPath,
        sigstoreRsa: keys.sigstoreRsa.publicPath,
        sigstoreEcdsa: keys.sigstoreEcdsa.publicPath,
        sigstoreUntrusted: keys.sigstoreUntrusted.publicPath,
      },
      upstream,
      releaseRepo: `${upstream.host}/${data.repoPath}`,
      stores: http.stores,
      graphUrl: http.graphUrl,
      http,
      ...(mirror !== undefined ? { mirror } : {}),
      ...(mirrorRepo !== undefined ? { mirrorRepo } : {}),
      dir,
      ...(filesDir !== undefined ? { filesDir } : {}),
      authFile,
      timings: {
        generate: generateMs,
        registries: registriesMs,
        push: pushMs,
        total: performance.now() - t0,
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
