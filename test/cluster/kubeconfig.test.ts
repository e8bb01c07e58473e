import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadKubeconfig, type LoadKubeconfigOptions } from "../../src/cluster/kubeconfig.js";
import { SigferryError } from "../../src/errors.js";
import { redact } from "../../src/redact.js";
import { kubectl } from "../helpers/kubectl.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";

let api: KubeApi;
let dir: string;
const b64 = (s: string): string => Buffer.from(s).toString("base64");

beforeAll(async () => {
  api = await startKubeApi();
  dir = await mkdtemp(path.join(tmpdir(), "sigferry-kubeconfig-"));
});
afterAll(async () => {
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, doc: unknown): Promise<string> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof doc === "string" ? doc : stringify(doc));
  return file;
}

function config(opts: {
  cluster?: Record<string, unknown>;
  user?: Record<string, unknown>;
  context?: Record<string, unknown>;
  name?: string;
  current?: string | null;
}): unknown {
  const name = opts.name ?? "ctx";
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: `${name}-cluster`,
        cluster: opts.cluster ?? { server: "https://api.example.com:6443" },
      },
    ],
    users: [{ name: `${name}-user`, user: opts.user ?? { token: "t0ken-value" } }],
    contexts: [
      {
        name,
        context: { cluster: `${name}-cluster`, user: `${name}-user`, ...(opts.context ?? {}) },
      },
    ],
    ...(opts.current === null ? {} : { "current-context": opts.current ?? name }),
  };
}

const load = (o: Partial<LoadKubeconfigOptions>): ReturnType<typeof loadKubeconfig> =>
  loadKubeconfig({ env: {}, home: path.join(dir, "nohome"), ...o });

async function failure(p: Promise<unknown>): Promise<SigferryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof SigferryError) return err;
    throw err;
  }
  throw new Error("expected a SigferryError");
}

describe("loadKubeconfig", () => {
  it("reads what oc login writes: server, CA data, token, namespace", async () => {
    const file = await api.writeKubeconfig(dir, {
      token: api.adminToken,
      namespace: "openshift-config-managed",
      fileName: "oc-login",
    });
    const t = await load({ path: file });
    expect(t).toEqual({
      server: api.url,
      ca: api.caPem,
      token: api.adminToken,
      contextName: "test",
      namespace: "openshift-config-managed",
    });
  });

  it("reads a CA file relative to the kubeconfig, as kubectl does", async () => {
    const caDir = path.join(dir, "rel");
    await mkdir(caDir, { recursive: true });
    await writeFile(path.join(caDir, "ca.crt"), api.caPem);
    const file = await write(
      "rel/kubeconfig",
      config({
        cluster: { server: api.url, "certificate-authority": "ca.crt" },
        user: { token: api.adminToken },
      }),
    );
    expect((await load({ path: file })).ca).toBe(api.caPem);
    const ok = await kubectl(file, dir, ["get", "ns", "default", "-o", "name"]);
    expect(ok.stdout.trim()).toBe("namespace/default");
  });

  it("reads client certificates, as data or as files", async () => {
    const asData = await api.writeKubeconfig(dir, { clientCert: true, fileName: "cert-data" });
    const t = await load({ path: asData });
    expect(t.clientCert).toBe(api.clientCert.certPem);
    expect(t.clientKey).toBe(api.clientCert.keyPem);
    expect(t.token).toBeUndefined();
    const asFiles = await write(
      "cert-files",
      config({
        cluster: { server: api.url, "certificate-authority": api.caFile },
        user: {
          "client-certificate": api.clientCert.certFile,
          "client-key": api.clientCert.keyFile,
        },
      }),
    );
    const f = await load({ path: asFiles });
    expect(f.clientCert).toBe(api.clientCert.certPem);
    expect(f.clientKey).toBe(api.clientCert.keyPem);
  });

  it("prefers the token file over the token, as kubectl 1.32 does", async () => {
    await writeFile(path.join(dir, "admin-token"), `${api.adminToken}\n`);
    const file = await write(
      "both-tokens",
      config({
        cluster: { server: api.url, "certificate-authority-data": b64(api.caPem) },
        user: { token: api.readonlyToken, tokenFile: "admin-token" },
      }),
    );
    expect((await load({ path: file })).token).toBe(api.adminToken);
    // kubectl agrees: the read-only token would be refused a write.
    const cm = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "token-file-wins", namespace: "default" },
      data: { a: "b" },
    };
    const res = await kubectl(file, dir, ["apply", "--server-side", "-f", "-"], JSON.stringify(cm));
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });

  it("reads username/password and insecure-skip-tls-verify", async () => {
    const file = await api.writeKubeconfig(dir, { basic: true, insecure: true, fileName: "basic" });
    const t = await load({ path: file });
    expect(t.basic).toEqual(api.basic);
    expect(t.insecureSkipTlsVerify).toBe(true);
    expect(t.ca).toBeUndefined();
  });

  it("registers every secret it loads for redaction", async () => {
    const file = await api.writeKubeconfig(dir, { clientCert: true, fileName: "redact" });
    const t = await load({ path: file });
    expect(redact(`key: ${t.clientKey!}`)).not.toContain(t.clientKey!);
    const tok = await load({
      path: await api.writeKubeconfig(dir, { token: api.adminToken, fileName: "redact-token" }),
    });
    expect(redact(`token ${tok.token!}`)).toBe("token [REDACTED]");
  });

  it("uses --context instead of current-context", async () => {
    const doc = config({}) as Record<string, unknown[]>;
    doc.clusters!.push({
      name: "other-cluster",
      cluster: { server: "https://other.example.com:6443" },
    });
    doc.contexts!.push({
      name: "other",
      context: { cluster: "other-cluster", user: "ctx-user", namespace: "ns1" },
    });
    const file = await write("two-contexts", doc);
    expect((await load({ path: file })).server).toBe("https://api.example.com:6443");
    const other = await load({ path: file, context: "other" });
    expect(other).toMatchObject({
      server: "https://other.example.com:6443",
      contextName: "other",
      namespace: "ns1",
    });
  });

  describe("KUBECONFIG lists", () => {
    it("merge with the first file to set a value winning, skipping missing files", async () => {
      const a = await write("merge/a", {
        clusters: [{ name: "shared", cluster: { server: "https://first.example.com" } }],
        users: [],
        contexts: [{ name: "c2", context: { cluster: "shared", user: "u2" } }],
      });
      const b = await write("merge/b", {
        "current-context": "c2",
        clusters: [
          { name: "shared", cluster: { server: "https://second.example.com" } },
          { name: "only-b", cluster: { server: "https://b.example.com" } },
        ],
        users: [{ name: "u2", user: { token: "from-b" } }],
        contexts: [{ name: "c2", context: { cluster: "only-b", user: "u2" } }],
      });
      const c = await write("merge/c", {
        "current-context": "ignored",
        users: [{ name: "u2", user: { token: "from-c" } }],
      });
      const missing = path.join(dir, "merge", "missing");
      const t = await load({ env: { KUBECONFIG: [missing, a, b, c].join(path.delimiter) } });
      // c2 comes from a (first), and its cluster "shared" from a too; the token from b.
      expect(t).toEqual({
        server: "https://first.example.com",
        token: "from-b",
        contextName: "c2",
      });
    });

    it("reports when none of the files exists", async () => {
      const err = await failure(
        load({ env: { KUBECONFIG: `${dir}/nope1${path.delimiter}${dir}/nope2` } }),
      );
      expect(err.code).toBe("INPUT_READ_FAILED");
      expect(err.message).toContain("none of the files in KUBECONFIG exists");
    });

    it("is ignored when --kubeconfig is given", async () => {
      const file = await write(
        "explicit",
        config({ cluster: { server: "https://explicit.example.com" } }),
      );
      const t = await load({ path: file, env: { KUBECONFIG: path.join(dir, "merge", "a") } });
      expect(t.server).toBe("https://explicit.example.com");
    });
  });

  it("falls back to ~/.kube/config", async () => {
    const home = path.join(dir, "home");
    await mkdir(path.join(home, ".kube"), { recursive: true });
    await writeFile(
      path.join(home, ".kube", "config"),
      stringify(config({ cluster: { server: "https://home.example.com" } })),
    );
    expect((await loadKubeconfig({ env: {}, home })).server).toBe("https://home.example.com");
    const err = await failure(loadKubeconfig({ env: {}, home: path.join(dir, "empty-home") }));
    expect(err.code).toBe("INPUT_READ_FAILED");
    expect(err.message).toContain(path.join(dir, "empty-home", ".kube", "config"));
  });

  describe("fails clearly", () => {
    it("when the context is missing, naming the file and the context", async () => {
      const file = await write("missing-context", config({}));
      const err = await failure(load({ path: file, context: "prod" }));
      expect(err.code).toBe("INVALID_CONFIG");
      expect(err.message).toBe(`context "prod" not found in ${file} (contexts: ctx)`);
      expect(err.details.file).toBe(file);
    });

    it("when there is no current-context", async () => {
      const file = await write("no-current", config({ current: null }));
      expect((await failure(load({ path: file }))).message).toBe(
        `no current-context in ${file}; pass --context`,
      );
    });

    it("when the cluster or the user is missing", async () => {
      const noCluster = await write("no-cluster", { ...(config({}) as object), clusters: [] });
      expect((await failure(load({ path: noCluster }))).message).toBe(
        `cluster "ctx-cluster" (context "ctx") not found in ${noCluster}`,
      );
      const noUser = await write("no-user", { ...(config({}) as object), users: [] });
      expect((await failure(load({ path: noUser }))).message).toBe(
        `user "ctx-user" (context "ctx") not found in ${noUser}`,
      );
    });

    it("when --kubeconfig does not exist or is not YAML", async () => {
      const err = await failure(load({ path: path.join(dir, "does-not-exist") }));
      expect(err.code).toBe("INPUT_READ_FAILED");
      const bad = await write("bad-yaml", "clusters: [\n");
      expect((await failure(load({ path: bad }))).code).toBe("INVALID_CONFIG");
    });

    it("when the server, a referenced file or half of a key pair is missing", async () => {
      const noServer = await write("no-server", config({ cluster: {} }));
      expect((await failure(load({ path: noServer }))).message).toContain(
        'cluster "ctx-cluster" (context "ctx") in',
      );
      const noCa = await write(
        "no-ca",
        config({
          cluster: { server: "https://x.example.com", "certificate-authority": "nope.crt" },
        }),
      );
      const caErr = await failure(load({ path: noCa }));
      expect(caErr.code).toBe("INPUT_READ_FAILED");
      expect(caErr.message).toContain(path.join(dir, "nope.crt"));
      const halfPair = await write(
        "half-pair",
        config({ user: { "client-certificate-data": b64(api.clientCert.certPem) } }),
      );
      expect((await failure(load({ path: halfPair }))).message).toContain(
        "has a client certificate but no key",
      );
    });

    it("when the kubeconfig needs an exec plugin, or mixes token and password, or CA and insecure", async () => {
      const exec = await write(
        "exec",
        config({
          user: { exec: { command: "oc-oidc", apiVersion: "client.authentication.k8s.io/v1" } },
        }),
      );
      expect((await failure(load({ path: exec }))).message).toContain("exec credential plugin");
      const mixed = await write(
        "mixed",
        config({ user: { token: "abcd", username: "u", password: "p" } }),
      );
      expect((await failure(load({ path: mixed }))).message).toContain(
        "both a token and a username/password",
      );
      const both = await write(
        "ca-insecure",
        config({
          cluster: {
            server: "https://x.example.com",
            "certificate-authority-data": b64(api.caPem),
            "insecure-skip-tls-verify": true,
          },
        }),
      );
      expect((await failure(load({ path: both }))).message).toContain(
        "both a certificate authority and insecure-skip-tls-verify",
      );
    });

    it("never puts the token in an error", async () => {
      const file = await write(
        "secret-in-error",
        config({ user: { token: "super-secret-token-123", username: "u", password: "hunter22" } }),
      );
      const err = await failure(load({ path: file }));
      expect(err.message).not.toContain("super-secret-token-123");
      expect(err.message).not.toContain("hunter22");
      expect(JSON.stringify(err.details)).not.toContain("super-secret");
    });
  });
});
