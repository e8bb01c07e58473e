/**
 * Nobody let in, nothing given away (security regressions, through the CLI):
 *
 * - credentials — registry passwords (htpasswd and token auth), the registry
 *   tokens they buy, a Kubernetes bearer token, and wrong passwords too — never
 *   appear, plain or base64, in any stdout or stderr (--verbose, --json,
 *   failing runs included), in any archive member or in the manifests written;
 * - a blob redirect to another origin (a CDN) never carries the registry's
 *   Authorization, end to end through `bundle create`;
 * - TLS is on by default, and --insecure-skip-tls-verify says loudly that it is off.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readArchive } from "../../src/archive/reader.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import { startFaultProxy, type FaultProxy, type ProxyRequest } from "../world/fault-proxy.js";
import { startWorld, type World } from "../world/index.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";
import { freePort } from "../world/registry.js";
import { FAST_NET_ENV } from "./helpers.js";

const UPSTREAM = { username: "quay-robot", password: "Upstream-Pa55word-7f3c2e" };
const MIRROR = { username: "mirror-admin", password: "Mirror-Pa55word-91ad5b" };
const WRONG_UPSTREAM = "Wrong-Upstream-Pw-33aa01";
const WRONG_MIRROR = "Wrong-Mirror-Pw-77bb02";
const WRONG_KUBE_TOKEN = "sha256~wrong-kube-token-0c0ffee0c0ffee";
/** A JWT (the registry tokens the token service issues): three base64url parts. */
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;

let world: World;
let kube: KubeApi;
let dir: string;
let kubeconfig: string;
let badKubeconfig: string;
let goneKubeconfig: string;
let badUpstreamAuth: string;
let badMirrorAuth: string;
const runs: { name: string; run: CliRun }[] = [];

/** Every secret, with the forms it could leak in: plain, base64 alone, base64 of user:secret. */
function secretForms(): Map<string, string> {
  const forms = new Map<string, string>();
  const add = (label: string, secret: string, user?: string): void => {
    forms.set(label, secret);
    forms.set(`${label} (base64)`, Buffer.from(secret).toString("base64").replace(/=+$/, ""));
    if (user !== undefined) {
      forms.set(
        `${label} (base64 user:password)`,
        Buffer.from(`${user}:${secret}`).toString("base64").replace(/=+$/, ""),
      );
    }
  };
  add("upstream password", UPSTREAM.password, UPSTREAM.username);
  add("mirror password", MIRROR.password, MIRROR.username);
  add("wrong upstream password", WRONG_UPSTREAM, UPSTREAM.username);
  add("wrong mirror password", WRONG_MIRROR, MIRROR.username);
  add("kube bearer token", kube.adminToken);
  add("wrong kube token", WRONG_KUBE_TOKEN);
  return forms;
}

/** The secrets found in `text`, by label. */
function leaks(text: string): string[] {
  const found = [...secretForms()].filter(([, form]) => text.includes(form)).map(([l]) => l);
  if (JWT.test(text)) found.push("a registry token (JWT)");
  if (/\b(?:Basic|Bearer) (?!\[REDACTED)[A-Za-z0-9+/=._~-]{12,}/.test(text)) {
    found.push("an Authorization value");
  }
  return found;
}

function authFile(entries: Record<string, { username: string; password: string }>): string {
  const auths: Record<string, { auth: string }> = {};
  for (const [host, c] of Object.entries(entries)) {
    auths[host] = { auth: Buffer.from(`${c.username}:${c.password}`).toString("base64") };
  }
  return JSON.stringify({ auths });
}

async function cli(name: string, args: string[], expected: number): Promise<CliRun> {
  const run = await runCli(args, { env: FAST_NET_ENV });
  runs.push({ name, run });
  expect(run.code, `${name}:\n${run.stderr}`).toBe(expected);
  return run;
}

function trust(): string[] {
  return [
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
  ];
}

function createArgs(out: string, auth: string, extra: string[] = []): string[] {
  return [
    "bundle",
    "create",
    "--release",
    world.data.good[0]!.version,
    "--arch",
    "x86_64",
    "--arch",
    "multi",
    "--release-repo",
    world.releaseRepo,
    "--plain-http",
    "--auth-file",
    auth,
    "--signature-store",
    world.stores.primary,
    ...trust(),
    "--verbose",
    "-o",
    out,
    ...extra,
  ];
}

function applyArgs(archive: string, auth: string, kcfg: string, extra: string[] = []): string[] {
  return [
    "bundle",
    "apply",
    archive,
    "--to",
    `${world.mirror!.host}/ocp/release`,
    "--ca-file",
    world.mirror!.caFile!,
    "--auth-file",
    auth,
    "--kubeconfig",
    kcfg,
    ...trust(),
    "--verbose",
    ...extra,
  ];
}

function kubeconfigFor(server: string, token: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "c",
        cluster: {
          server,
          "certificate-authority-data": Buffer.from(kube.caPem).toString("base64"),
        },
      },
    ],
    users: [{ name: "u", user: { token } }],
    contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    "current-context": "x",
  });
}

beforeAll(async () => {
  [world, kube] = await Promise.all([
    startWorld({
      authUpstream: { ...UPSTREAM, authKind: "token" },
      mirror: { tls: true, htpasswd: MIRROR },
    }),
    startKubeApi({ namespaces: ["openshift-config-managed"] }),
  ]);
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-security-"));
  kubeconfig = path.join(dir, "kubeconfig");
  badKubeconfig = path.join(dir, "kubeconfig-bad");
  goneKubeconfig = path.join(dir, "kubeconfig-gone");
  await writeFile(kubeconfig, kubeconfigFor(kube.url, kube.adminToken), { mode: 0o600 });
  await writeFile(badKubeconfig, kubeconfigFor(kube.url, WRONG_KUBE_TOKEN), { mode: 0o600 });
  await writeFile(
    goneKubeconfig,
    kubeconfigFor(`https://127.0.0.1:${await freePort()}`, kube.adminToken),
    { mode: 0o600 },
  );
  badUpstreamAuth = path.join(dir, "auth-bad-upstream.json");
  badMirrorAuth = path.join(dir, "auth-bad-mirror.json");
  await writeFile(
    badUpstreamAuth,
    authFile({ [world.upstream.host]: { ...UPSTREAM, password: WRONG_UPSTREAM } }),
  );
  await writeFile(
    badMirrorAuth,
    authFile({ [world.mirror!.host]: { ...MIRROR, password: WRONG_MIRROR } }),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all([world?.stop(), kube?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("credentials never leak", () => {
  it("through create, verify, apply and check, succeeding and failing, with --verbose and --json", async () => {
    const archive = path.join(dir, "sigs.tar.gz");
    const manifests = path.join(dir, "manifests");
    const gone = `127.0.0.1:${await freePort()}`;

    // create: token auth upstream (the password buys JWTs), then the ways it fails.
    await cli("create", createArgs(archive, world.authFile), 0);
    await cli("create --json", createArgs(path.join(dir, "b.tar"), world.authFile, ["--json"]), 0);
    const denied = await cli(
      "create, wrong password",
      createArgs(path.join(dir, "c.tar"), badUpstreamAuth, ["--json"]),
      3,
    );
    expect((JSON.parse(denied.stdout) as { error: { code: string } }).error.code).toBe(
      "AUTH_DENIED",
    );
    await cli(
      "create, registry unreachable",
      [
        ...createArgs(path.join(dir, "d.tar"), world.authFile, ["--json"]),
        "--release-repo",
        `${gone}/openshift-release-dev/ocp-release`,
      ],
      3,
    );

    // verify
    await cli("verify", ["bundle", "verify", archive, ...trust(), "--verbose"], 0);
    await cli("verify --json", ["bundle", "verify", archive, ...trust(), "--json"], 0);

    // apply: TLS + htpasswd mirror, bearer-token cluster, then the ways it fails.
    await cli(
      "apply",
      applyArgs(archive, world.authFile, kubeconfig, ["--manifests-dir", manifests]),
      0,
    );
    await cli("apply --json", applyArgs(archive, world.authFile, kubeconfig, ["--json"]), 0);
    await cli(
      "apply, wrong mirror password",
      applyArgs(archive, badMirrorAuth, kubeconfig, ["--json"]),
      3,
    );
    const unauthorized = await cli(
      "apply, wrong cluster token",
      applyArgs(archive, world.authFile, badKubeconfig, ["--skip-registry", "--json"]),
      3,
    );
    expect((JSON.parse(unauthorized.stdout) as { error: { code: string } }).error.code).toBe(
      "AUTH_REQUIRED",
    );
    await cli(
      "apply, cluster unreachable",
      applyArgs(archive, world.authFile, goneKubeconfig, ["--skip-registry"]),
      3,
    );

    // check
    const checkArgs = [
      "check",
      "--to",
      `${world.mirror!.host}/ocp/release`,
      "--bundle",
      archive,
      "--ca-file",
      world.mirror!.caFile!,
      "--auth-file",
      world.authFile,
      "--kubeconfig",
      kubeconfig,
      ...trust(),
      "--verbose",
    ];
    // 7: the mirror holds the signatures but not the release images (never mirrored here).
    await cli("check", checkArgs, 7);
    await cli("check --json", [...checkArgs, "--json"], 7);
    await cli(
      "check, wrong mirror password",
      [...checkArgs.map((a) => (a === world.authFile ? badMirrorAuth : a)), "--json"],
      3,
    );

    // What was printed.
    for (const { name, run } of runs) {
      expect(leaks(run.stdout), `${name}: stdout`).toEqual([]);
      expect(leaks(run.stderr), `${name}: stderr`).toEqual([]);
    }
    // The failing runs did say what failed, without the secret.
    expect(denied.stderr).toContain("the credentials were refused");

    // What was written: every archive member, the raw tar, the sidecar, the manifests.
    for (const file of [archive, path.join(dir, "b.tar")]) {
      const raw = await readFile(file);
      const tar = file.endsWith(".gz") ? gunzipSync(raw) : raw;
      expect(leaks(tar.toString("latin1")), `${file} (tar bytes)`).toEqual([]);
      for (const [member, bytes] of (await readArchive(file)).members) {
        expect(leaks(Buffer.from(bytes).toString("utf8")), `${file}: ${member}`).toEqual([]);
      }
      expect(leaks(await readFile(`${file}.sha256`, "utf8"))).toEqual([]);
    }
    const written = await readdir(manifests);
    expect(written.length).toBeGreaterThan(0);
    for (const f of written) {
      expect(leaks(await readFile(path.join(manifests, f), "utf8")), f).toEqual([]);
    }
  });
});

describe("TLS", () => {
  it("is on by default: a mirror whose CA is not given is refused (TLS, exit 3)", async () => {
    const archive = path.join(dir, "sigs.tar.gz");
    const args = applyArgs(archive, world.authFile, kubeconfig, [
      "--skip-cluster",
      "--manifests-dir",
      path.join(dir, "tls-default-manifests"),
      "--json",
    ]).filter((a, i, all) => a !== "--ca-file" && all[i - 1] !== "--ca-file");
    const r = await cli("apply, no CA", args, 3);
    expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe("TLS");
  });

  it("--insecure-skip-tls-verify works but warns on stderr that the registry's identity is not checked", async () => {
    const archive = path.join(dir, "sigs.tar.gz");
    const args = applyArgs(archive, world.authFile, kubeconfig, [
      "--skip-cluster",
      "--manifests-dir",
      path.join(dir, "tls-insecure-manifests"),
      "--insecure-skip-tls-verify",
    ]).filter((a, i, all) => a !== "--ca-file" && all[i - 1] !== "--ca-file");
    const r = await cli("apply --insecure-skip-tls-verify", args, 0);
    expect(r.stderr).toContain(
      "warning: TLS verification is OFF (--insecure-skip-tls-verify): the registry's identity is not checked",
    );
    expect(leaks(r.stderr)).toEqual([]);
  });
});

describe("a blob redirect to another origin", () => {
  let plain: World;
  let front: FaultProxy;
  let cdn: FaultProxy;
  const frontSeen: ProxyRequest[] = [];
  const cdnSeen: ProxyRequest[] = [];
  const creds = { username: "redirect-user", password: "Redirect-Pa55word-5e5e" };
  const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;

  beforeAll(async () => {
    plain = await startWorld();
    // The CDN: another origin (port) serving the blobs, recording what it is sent.
    cdn = await startFaultProxy({
      target: plain.upstream.url,
      respond: (req) => {
        cdnSeen.push(req);
        return false;
      },
    });
    // The registry: wants Basic credentials, and sends every blob GET to the CDN.
    front = await startFaultProxy({
      target: plain.upstream.url,
      respond: (req, res) => {
        frontSeen.push(req);
        if (req.headers.authorization !== basic) {
          res.writeHead(401, { "www-authenticate": 'Basic realm="front"', "content-length": 0 });
          res.end();
          return true;
        }
        if (req.method === "GET" && /\/blobs\/sha256:/.test(req.url)) {
          res.writeHead(307, { location: `${cdn.url}${req.url}`, "content-length": 0 });
          res.end();
          return true;
        }
        return false;
      },
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all([front?.stop(), cdn?.stop()]);
    await plain?.stop();
  });

  it("is followed by create without the registry's Authorization", async () => {
    const auth = path.join(dir, "auth-front.json");
    await writeFile(auth, authFile({ [front.host]: creds }));
    const out = path.join(dir, "redirected.tar");
    const r = await runCli(
      [
        "bundle",
        "create",
        "--release",
        plain.data.good[0]!.version,
        "--release-repo",
        `${front.host}/${plain.data.repoPath}`,
        "--plain-http",
        "--auth-file",
        auth,
        "--signature-store",
        plain.stores.primary,
        "--keyring",
        plain.keys.openpgpTrusted,
        "--sigstore-key",
        plain.keys.sigstoreRsa,
        "--sigstore-key",
        plain.keys.sigstoreEcdsa,
        "--verbose",
        "-o",
        out,
      ],
      { env: FAST_NET_ENV },
    );
    expect(r.code, r.stderr).toBe(0);
    // The registry got the credentials; the CDN served the blobs and never saw them.
    expect(frontSeen.some((q) => q.headers.authorization === basic)).toBe(true);
    expect(cdnSeen.filter((q) => q.url.includes("/blobs/sha256:")).length).toBeGreaterThan(0);
    expect(cdnSeen.map((q) => q.headers.authorization ?? null)).toEqual(cdnSeen.map(() => null));
    expect(leaks(r.stdout + r.stderr)).toEqual([]);
    expect(r.stderr + r.stdout).not.toContain(creds.password);
  });
});
