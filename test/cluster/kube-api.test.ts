/**
 * The test API server (test/world/kube-api.ts) driven by the real kubectl:
 * whatever kubectl does against it must look like what it does against a
 * real API server, or the KubeClient tests prove nothing.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configMapToYaml, signatureConfigMap } from "../../src/core/manifests.js";
import { parseDigest } from "../../src/core/digest.js";
import { kubectl, type KubectlResult } from "../helpers/kubectl.js";
import { real } from "../helpers/paths.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";
import { createKubePki } from "../world/kube-pki.js";

/** kubectl's JSON output and hand-broken objects, read loosely in assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const HEX = "ab".repeat(32);
const DIGEST = parseDigest(`sha256:${HEX}`);
const NS = "openshift-config-managed";
const sig = (s: string): Uint8Array => new TextEncoder().encode(s);

let api: KubeApi;
let home: string;
let admin: string;
let readonly: string;

beforeAll(async () => {
  api = await startKubeApi();
  home = await mkdtemp(path.join(tmpdir(), "sigferry-kubectl-"));
  admin = await api.writeKubeconfig(home, { token: api.adminToken, fileName: "admin" });
  readonly = await api.writeKubeconfig(home, { token: api.readonlyToken, fileName: "readonly" });
});
afterAll(async () => {
  await api.stop();
  await rm(home, { recursive: true, force: true });
});

const k = (args: string[], input?: string): Promise<KubectlResult> =>
  kubectl(admin, home, args, input);

async function file(name: string, text: string): Promise<string> {
  const f = path.join(home, name);
  await writeFile(f, text);
  return f;
}

async function getJson(args: string[]): Promise<Loose> {
  const res = await k([...args, "-o", "json"]);
  expect(res.stderr).toBe("");
  return JSON.parse(res.stdout);
}

describe("kubectl against the test API server", () => {
  it("applies server-side after finding fieldValidation in /openapi/v3, never asking for /openapi/v2", async () => {
    const before = api.requests.length;
    const cm = await file("cm.yaml", configMapToYaml(signatureConfigMap(DIGEST, [sig("one")])));
    const res = await k(["apply", "--server-side", "-f", cm]);
    expect(res.stderr).toBe("");
    expect(res.stdout.trim()).toBe(`configmap/sha256-${HEX} serverside-applied`);
    const seen = api.requests.slice(before).map((r) => `${r.method} ${r.path}${r.query}`);
    expect(seen).toContain("GET /openapi/v3?timeout=20s");
    expect(seen.some((s) => s.startsWith("GET /openapi/v3/api/v1?hash="))).toBe(true);
    expect(seen).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^PATCH /api/v1/namespaces/${NS}/configmaps/sha256-${HEX}\\?fieldManager=kubectl&fieldValidation=Strict&force=false`,
        ),
      ),
    );
    expect(seen.some((s) => s.includes("/openapi/v2"))).toBe(false);
    const patch = api.requests.slice(before).find((r) => r.method === "PATCH")!;
    expect(patch.contentType).toBe("application/apply-patch+yaml");
    expect(patch.status).toBe(201);
  });

  it("lists by label key, key=value and key!=value", async () => {
    await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "unlabelled", namespace: NS },
        data: { a: "b" },
      }),
    );
    await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          name: "other-value",
          namespace: NS,
          labels: { "release.openshift.io/verification-signatures": "x" },
        },
      }),
    );
    const names = async (selector: string): Promise<string[]> =>
      (
        (await getJson(["get", "configmap", "-n", NS, "-l", selector])).items as {
          metadata: { name: string };
        }[]
      ).map((i) => i.metadata.name);
    expect(await names("release.openshift.io/verification-signatures")).toEqual([
      "other-value",
      `sha256-${HEX}`,
    ]);
    expect(await names("release.openshift.io/verification-signatures=")).toEqual([`sha256-${HEX}`]);
    expect(await names("release.openshift.io/verification-signatures!=x")).toEqual([
      `sha256-${HEX}`,
      "unlabelled",
    ]);
    expect(await names("!release.openshift.io/verification-signatures")).toEqual(["unlabelled"]);
    const bad = await k(["get", "configmap", "-n", NS, "-l", "bad key!"]);
    expect(bad.code).not.toBe(0);
  });

  it("returns binaryData exactly as applied", async () => {
    const cm = await getJson(["get", "configmap", "-n", NS, `sha256-${HEX}`]);
    expect(cm.binaryData).toEqual({ [`sha256-${HEX}-1`]: Buffer.from("one").toString("base64") });
    expect(cm.metadata.labels).toEqual({ "release.openshift.io/verification-signatures": "" });
    expect(cm.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(cm.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("keeps resourceVersion when the same apply changes nothing", async () => {
    const before = (await getJson(["get", "configmap", "-n", NS, `sha256-${HEX}`])).metadata
      .resourceVersion;
    const cm = await file(
      "cm-same.yaml",
      configMapToYaml(signatureConfigMap(DIGEST, [sig("one")])),
    );
    expect((await k(["apply", "--server-side", "-f", cm])).code).toBe(0);
    expect(
      (await getJson(["get", "configmap", "-n", NS, `sha256-${HEX}`])).metadata.resourceVersion,
    ).toBe(before);
  });

  describe("when another field manager applies a different value", () => {
    it("reports the conflict, naming the manager and the field", async () => {
      const changed = await file(
        "cm-other.yaml",
        configMapToYaml(signatureConfigMap(DIGEST, [sig("two")])),
      );
      const res = await k(["apply", "--server-side", "--field-manager=other", "-f", changed]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(
        `error: Apply failed with 1 conflict: conflict with "kubectl": .binaryData.sha256-${HEX}-1`,
      );
      expect(res.stderr).toContain("--force-conflicts");
    });

    it("lets --force-conflicts win and moves ownership", async () => {
      const changed = path.join(home, "cm-other.yaml");
      const res = await k([
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        changed,
      ]);
      expect(res.code).toBe(0);
      const cm = await getJson([
        "get",
        "configmap",
        "-n",
        NS,
        `sha256-${HEX}`,
        "--show-managed-fields",
      ]);
      expect(cm.binaryData[`sha256-${HEX}-1`]).toBe(Buffer.from("two").toString("base64"));
      const owners = Object.fromEntries(
        (cm.metadata.managedFields as Loose[]).map((m) => [m.manager, m]),
      );
      expect(owners.other.operation).toBe("Apply");
      expect(owners.other.fieldsV1).toEqual({
        "f:binaryData": { [`f:sha256-${HEX}-1`]: {} },
        "f:metadata": { "f:labels": { "f:release.openshift.io/verification-signatures": {} } },
      });
      // kubectl keeps the label it shares with "other", and loses the value it was forced out of.
      expect(owners.kubectl.fieldsV1).toEqual({
        "f:metadata": { "f:labels": { "f:release.openshift.io/verification-signatures": {} } },
      });
    });

    it("removes a field its last applier stops applying", async () => {
      const only = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: `sha256-${HEX}`, namespace: NS },
        data: { note: "x" },
      };
      expect(
        (
          await k(
            ["apply", "--server-side", "--field-manager=other", "-f", "-"],
            JSON.stringify(only),
          )
        ).code,
      ).toBe(0);
      const cm = await getJson(["get", "configmap", "-n", NS, `sha256-${HEX}`]);
      expect(cm.binaryData).toBeUndefined();
      expect(cm.data).toEqual({ note: "x" });
      // Still labelled: kubectl co-owns the label.
      expect(cm.metadata.labels).toEqual({ "release.openshift.io/verification-signatures": "" });
    });
  });

  it("does not store a --dry-run=server apply", async () => {
    const res = await k(
      ["apply", "--server-side", "--dry-run=server", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "dry", namespace: NS },
      }),
    );
    expect(res.stdout).toContain("configmap/dry serverside-applied (server dry run)");
    expect((await k(["get", "configmap", "-n", NS, "dry"])).code).not.toBe(0);
    expect(
      api.requests.some(
        (r) => r.path.endsWith("/configmaps/dry") && r.query.includes("dryRun=All"),
      ),
    ).toBe(true);
  });

  it("deletes, and a get of the missing object exits non-zero with NotFound", async () => {
    const del = await k(["delete", "configmap", "-n", NS, `sha256-${HEX}`]);
    expect(del.stdout.trim()).toBe(`configmap "sha256-${HEX}" deleted`);
    const get = await k(["get", "configmap", "-n", NS, `sha256-${HEX}`]);
    expect(get.code).toBe(1);
    expect(get.stderr.trim()).toBe(
      `Error from server (NotFound): configmaps "sha256-${HEX}" not found`,
    );
  });

  it("refuses a ConfigMap in a missing namespace, or with an invalid name or key", async () => {
    const missing = await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "x", namespace: "nope" },
      }),
    );
    expect(missing.stderr.trim()).toBe('Error from server (NotFound): namespaces "nope" not found');
    const badName = await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "Bad_Name", namespace: NS },
      }),
    );
    expect(badName.stderr).toContain(
      'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain',
    );
    const badKey = await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "badkey", namespace: NS },
        data: { "a/b": "x" },
      }),
    );
    expect(badKey.stderr).toContain(
      'The ConfigMap "badkey" is invalid: data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric characters',
    );
  });

  it("refuses unknown fields under fieldValidation=Strict (kubectl's default)", async () => {
    const res = await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "typo", namespace: NS },
        binarydata: { a: "eA==" },
      }),
    );
    expect(res.stderr).toContain(".binarydata: field not declared in schema");
  });

  it("answers 401 and 403 the way kubectl expects", async () => {
    const ro = await kubectl(
      readonly,
      home,
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "ro", namespace: NS },
      }),
    );
    expect(ro.stderr.trim()).toBe(
      `Error from server (Forbidden): configmaps "ro" is forbidden: User "readonly" cannot patch resource "configmaps" in API group "" in the namespace "${NS}"`,
    );
    expect((await kubectl(readonly, home, ["get", "configmap", "-n", NS, "-o", "name"])).code).toBe(
      0,
    );
    const bad = await api.writeKubeconfig(home, { token: "sha256~wrong", fileName: "bad-token" });
    const unauth = await kubectl(bad, home, ["get", "configmap", "-n", NS]);
    expect(unauth.code).toBe(1);
    expect(unauth.stderr).toContain("error: You must be logged in to the server (Unauthorized)");
  });

  it("authenticates a client certificate and refuses a certificate from another CA", async () => {
    const certConfig = await api.writeKubeconfig(home, { clientCert: true, fileName: "cert" });
    const res = await kubectl(
      certConfig,
      home,
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "by-cert", namespace: NS },
      }),
    );
    expect(res.code).toBe(0);
    expect(api.requests.filter((r) => r.path.endsWith("/by-cert")).map((r) => r.user)).toEqual([
      "cert-admin",
    ]);
    const stranger = await createKubePki();
    try {
      const foreign = await stranger.issueClient("foreign", "cert-admin", ["system:masters"]);
      const cfg = await api.writeKubeconfig(home, {
        clientCert: foreign,
        fileName: "foreign-cert",
      });
      const refused = await kubectl(cfg, home, ["get", "configmap", "-n", NS]);
      expect(refused.stderr).toContain("You must be logged in to the server");
    } finally {
      await stranger.remove();
    }
  });

  it("serves tables for kubectl get, and kubectl falls back to NAME/AGE without them", async () => {
    await k(
      ["apply", "--server-side", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "table", namespace: NS },
        data: { a: "1", b: "2" },
      }),
    );
    const table = await k(["get", "configmap", "-n", NS, "table"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+DATA\s+AGE$/);
    expect(table.stdout.split("\n")[1]).toMatch(/^table\s+2\s+\d+s$/);
    const get = api.requests
      .filter((r) => r.method === "GET" && r.path.endsWith("/configmaps/table"))
      .at(-1)!;
    expect(get.accept).toBe(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    );

    const plain = await startKubeApi({ tables: false });
    try {
      const cfg = await plain.writeKubeconfig(home, { token: plain.adminToken, fileName: "plain" });
      const res = await kubectl(cfg, home, ["get", "namespace", "default"]);
      expect(res.stdout.split("\n")[0]).toMatch(/^NAME\s+AGE$/);
    } finally {
      await plain.stop();
    }
  });

  it("without /openapi/v3, kubectl falls back to /openapi/v2 and fails unless --validate=false", async () => {
    const bare = await startKubeApi({ openapi: false });
    try {
      const cfg = await bare.writeKubeconfig(home, { token: bare.adminToken, fileName: "bare" });
      const cm = JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "x", namespace: NS },
      });
      const res = await kubectl(cfg, home, ["apply", "--server-side", "-f", "-"], cm);
      expect(res.stderr).toContain("failed to download openapi");
      expect(bare.requests.map((r) => r.path)).toEqual(
        expect.arrayContaining(["/openapi/v3", "/openapi/v2"]),
      );
      const noValidate = await kubectl(
        cfg,
        home,
        ["apply", "--server-side", "--validate=false", "-f", "-"],
        cm,
      );
      expect(noValidate.code).toBe(0);
      expect(bare.requests.at(-1)!.query).toContain("fieldValidation=Ignore");
    } finally {
      await bare.stop();
    }
  });

  it("replays the seed procedure: oc apply (client-side) creates, with Update ownership and '.' entries", async () => {
    const seed = configMapToYaml(signatureConfigMap(DIGEST, [sig("seed")]));
    const res = await k(["apply", "-f", "-"], seed);
    expect(res.stdout.trim()).toBe(`configmap/sha256-${HEX} created`);
    const cm = await getJson([
      "get",
      "configmap",
      "-n",
      NS,
      `sha256-${HEX}`,
      "--show-managed-fields",
    ]);
    const entry = (cm.metadata.managedFields as Loose[])[0];
    expect(entry).toMatchObject({
      manager: "kubectl-client-side-apply",
      operation: "Update",
      apiVersion: "v1",
      fieldsType: "FieldsV1",
    });
    expect(entry.fieldsV1["f:binaryData"]).toEqual({ ".": {}, [`f:sha256-${HEX}-1`]: {} });
    expect(cm.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]).toContain(
      `"sha256-${HEX}-1"`,
    );
    // A second client-side apply with new content goes through a strategic merge patch.
    const again = await k(
      ["apply", "-f", "-"],
      configMapToYaml(signatureConfigMap(DIGEST, [sig("seed"), sig("more")])),
    );
    expect(again.stdout.trim()).toBe(`configmap/sha256-${HEX} configured`);
    expect(api.requests.at(-1)!.contentType).toBe("application/strategic-merge-patch+json");
  });

  it("refuses a stale resourceVersion on replace with 409 Conflict", async () => {
    const cm = await getJson(["get", "configmap", "-n", NS, `sha256-${HEX}`]);
    cm.metadata.resourceVersion = "1";
    delete cm.metadata.managedFields;
    const res = await k(["replace", "-f", "-"], JSON.stringify(cm));
    expect(res.stderr).toContain(
      `Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on configmaps "sha256-${HEX}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  });

  describe("config.openshift.io/v1", () => {
    it("applies Red Hat's real ClusterImagePolicy and returns it unchanged", async () => {
      const res = await k([
        "apply",
        "--server-side",
        "-f",
        real("keys", "openshift-cluster-image-policy.yaml"),
      ]);
      expect(res.stdout.trim()).toBe(
        "clusterimagepolicy.config.openshift.io/openshift serverside-applied",
      );
      const cip = await getJson(["get", "clusterimagepolicy", "openshift"]);
      expect(cip.spec.policy.rootOfTrust.policyType).toBe("PublicKey");
      expect(cip.spec.scopes).toHaveLength(3);
      expect(cip.metadata.generation).toBe(1);
      expect(cip.metadata.namespace).toBeUndefined();
    });

    it("refuses an invalid ClusterImagePolicy with the schema's message", async () => {
      const bad = {
        apiVersion: "config.openshift.io/v1",
        kind: "ClusterImagePolicy",
        metadata: { name: "bad" },
        spec: { scopes: ["busybox"], policy: { rootOfTrust: { policyType: "PublicKey" } } },
      };
      const res = await k(["apply", "--server-side", "-f", "-"], JSON.stringify(bad));
      expect(res.stderr).toContain('The ClusterImagePolicy "bad" is invalid:');
      expect(res.stderr).toContain(
        'spec.policy.rootOfTrust: Invalid value: "object": publicKey is required when policyType is PublicKey, and forbidden otherwise',
      );
    });

    it("answers a strategic merge patch on a custom resource with 415, as kubectl expects", async () => {
      const res = await k([
        "patch",
        "clusterimagepolicy",
        "openshift",
        "-p",
        '{"metadata":{"labels":{"a":"b"}}}',
      ]);
      expect(res.stderr).toContain(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
      );
      const merge = await k([
        "patch",
        "clusterimagepolicy",
        "openshift",
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"a":"b"}}}',
      ]);
      expect(merge.stdout.trim()).toBe("clusterimagepolicy.config.openshift.io/openshift patched");
    });

    it("serves ImageDigestMirrorSet under its short name", async () => {
      const idms = {
        apiVersion: "config.openshift.io/v1",
        kind: "ImageDigestMirrorSet",
        metadata: { name: "m" },
        spec: {
          imageDigestMirrors: [
            {
              source: "quay.io/openshift-release-dev/ocp-release",
              mirrors: ["mirror.example.com/ocp"],
            },
          ],
        },
      };
      expect((await k(["apply", "--server-side", "-f", "-"], JSON.stringify(idms))).code).toBe(0);
      const res = await k(["get", "idms", "-o", "name"]);
      expect(res.stdout.trim()).toBe("imagedigestmirrorset.config.openshift.io/m");
    });
  });

  describe("Status bodies, in the real shape", () => {
    let agent: Agent;
    beforeAll(() => {
      agent = new Agent({ connect: { ca: api.caPem } });
    });
    afterAll(() => agent.close());

    async function raw(
      method: "GET" | "POST" | "PATCH",
      urlPath: string,
      opts: { token?: string; body?: unknown; contentType?: string } = {},
    ): Promise<{ status: number; body: unknown }> {
      const res = await request(`${api.url}${urlPath}`, {
        method,
        headers: {
          ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(opts.contentType !== undefined ? { "content-type": opts.contentType } : {}),
        },
        ...(opts.body !== undefined
          ? { body: typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body) }
          : {}),
        dispatcher: agent,
      });
      return { status: res.statusCode, body: await res.body.json() };
    }

    const failure = (code: number, reason: string, message: string, details?: object): object => ({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      ...(details !== undefined ? { details } : {}),
      code,
    });

    it("401 Unauthorized without credentials", async () => {
      expect(await raw("GET", "/version")).toEqual({
        status: 401,
        body: failure(401, "Unauthorized", "Unauthorized"),
      });
    });

    it("404 NotFound for an object and for a namespace, naming the resource", async () => {
      const token = api.adminToken;
      expect(await raw("GET", `/api/v1/namespaces/${NS}/configmaps/nothing`, { token })).toEqual({
        status: 404,
        body: failure(404, "NotFound", 'configmaps "nothing" not found', {
          name: "nothing",
          kind: "configmaps",
        }),
      });
      expect(
        await raw("GET", "/apis/config.openshift.io/v1/imagedigestmirrorsets/nothing", { token }),
      ).toEqual({
        status: 404,
        body: failure(
          404,
          "NotFound",
          'imagedigestmirrorsets.config.openshift.io "nothing" not found',
          {
            name: "nothing",
            group: "config.openshift.io",
            kind: "imagedigestmirrorsets",
          },
        ),
      });
      const cm = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } };
      expect(
        await raw("POST", "/api/v1/namespaces/gone/configmaps", {
          token,
          body: cm,
          contentType: "application/json",
        }),
      ).toEqual({
        status: 404,
        body: failure(404, "NotFound", 'namespaces "gone" not found', {
          name: "gone",
          kind: "namespaces",
        }),
      });
    });

    it("409 AlreadyExists on a second create, 201 with uid and creationTimestamp on the first", async () => {
      const token = api.adminToken;
      const cm = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "twice" },
        data: { a: "b" },
      };
      const first = await raw("POST", `/api/v1/namespaces/${NS}/configmaps`, {
        token,
        body: cm,
        contentType: "application/json",
      });
      expect(first.status).toBe(201);
      expect(first.body).toMatchObject({
        metadata: {
          name: "twice",
          namespace: NS,
          uid: expect.any(String),
          creationTimestamp: expect.any(String),
        },
      });
      expect(
        await raw("POST", `/api/v1/namespaces/${NS}/configmaps`, {
          token,
          body: cm,
          contentType: "application/json",
        }),
      ).toEqual({
        status: 409,
        body: failure(409, "AlreadyExists", 'configmaps "twice" already exists', {
          name: "twice",
          kind: "configmaps",
        }),
      });
      expect(
        api.objects().filter((o) => (o.metadata as { name?: string }).name === "twice"),
      ).toHaveLength(1);
    });

    it("422 for an apply without fieldManager, 415 for protobuf (which this server does not decode)", async () => {
      const token = api.adminToken;
      const noManager = await raw("PATCH", `/api/v1/namespaces/${NS}/configmaps/x`, {
        token,
        body: "{}",
        contentType: "application/apply-patch+yaml",
      });
      expect(noManager.status).toBe(422);
      expect(noManager.body).toMatchObject({
        reason: "Invalid",
        message:
          'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
      });
      const proto = await raw("POST", `/api/v1/namespaces/${NS}/configmaps`, {
        token,
        body: "k8s\u0000",
        contentType: "application/vnd.kubernetes.protobuf",
      });
      expect(proto.status).toBe(415);
      expect(proto.body).toMatchObject({ reason: "UnsupportedMediaType", code: 415 });
    });
  });
});
