import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { MockAgent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../../src/cluster/client.js";
import { loadKubeconfig, type KubeTarget } from "../../src/cluster/kubeconfig.js";
import {
  CONFIGMAP_MAX_BYTES,
  OCP_ART_DEV_REPO,
  SIGNATURE_LABEL,
  SIGNATURE_NAMESPACE,
  clusterImagePolicy,
  configMapToYaml,
  imageDigestMirrorSet,
  pemToKeyData,
  serializedSize,
  signatureConfigMap,
} from "../../src/core/manifests.js";
import { parseDigest } from "../../src/core/digest.js";
import { SigferryError } from "../../src/errors.js";
import { kubectl } from "../helpers/kubectl.js";
import { real } from "../helpers/paths.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";

/** kubectl's JSON output and hand-broken objects, read loosely in assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const HEX = "cd".repeat(32);
const DIGEST = parseDigest(`sha256:${HEX}`);
const NAME = `sha256-${HEX}`;
const sig = (s: string): Uint8Array => new TextEncoder().encode(s);
const b64 = (s: string): string => Buffer.from(s).toString("base64");

let api: KubeApi;
let home: string;
let adminConfig: string;
const clients: KubeClient[] = [];

beforeAll(async () => {
  api = await startKubeApi({ namespaces: ["paging"] });
  home = await mkdtemp(path.join(tmpdir(), "sigferry-kubeclient-"));
  adminConfig = await api.writeKubeconfig(home, { token: api.adminToken, fileName: "admin" });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await api.stop();
  await rm(home, { recursive: true, force: true });
});

async function clientFor(
  spec: Parameters<KubeApi["writeKubeconfig"]>[1],
  opts: ConstructorParameters<typeof KubeClient>[1] = {},
): Promise<KubeClient> {
  const file = await api.writeKubeconfig(home, { ...spec, fileName: `kc-${clients.length}` });
  const c = new KubeClient(await loadKubeconfig({ path: file, env: {}, home }), opts);
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<SigferryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof SigferryError) return err;
    throw err;
  }
  throw new Error("expected a SigferryError");
}

async function kubectlJson(args: string[]): Promise<Loose> {
  const res = await kubectl(adminConfig, home, [...args, "-o", "json"]);
  expect(res.stderr).toBe("");
  return JSON.parse(res.stdout);
}

describe("KubeClient", () => {
  let admin: KubeClient;
  beforeAll(async () => {
    admin = await clientFor({ token: api.adminToken });
  });

  describe("applying the signature ConfigMap", () => {
    it("creates it with server-side apply as field manager sigferry", async () => {
      const before = api.requests.length;
      const r = await admin.applyObject(signatureConfigMap(DIGEST, [sig("one")]));
      expect(r).toMatchObject({ created: true, changed: true });
      expect(r.object.metadata.name).toBe(NAME);
      const patch = api.requests.slice(before).find((q) => q.method === "PATCH")!;
      expect(patch.path).toBe(`/api/v1/namespaces/${SIGNATURE_NAMESPACE}/configmaps/${NAME}`);
      expect(patch.query).toBe("?fieldManager=sigferry&force=true&fieldValidation=Strict");
      expect(patch.contentType).toBe("application/apply-patch+yaml");
      expect(r.object.metadata.managedFields).toEqual([
        expect.objectContaining({
          manager: "sigferry",
          operation: "Apply",
          fieldsType: "FieldsV1",
        }),
      ]);
    });

    it("is seen by kubectl with the same binaryData", async () => {
      const cm = await kubectlJson(["get", "configmap", "-n", SIGNATURE_NAMESPACE, NAME]);
      expect(cm.binaryData).toEqual({ [`${NAME}-1`]: b64("one") });
      expect(cm.metadata.labels).toEqual({ [SIGNATURE_LABEL]: "" });
    });

    it("changes nothing when applied again (resourceVersion kept)", async () => {
      const first = await admin.getConfigMap(SIGNATURE_NAMESPACE, NAME);
      const r = await admin.applyObject(signatureConfigMap(DIGEST, [sig("one")]));
      expect(r).toMatchObject({ created: false, changed: false });
      expect(r.object.metadata.resourceVersion).toBe(first!.metadata.resourceVersion);
      expect(r.object.metadata.managedFields).toEqual(first!.metadata.managedFields);
    });

    it("updates it in place when a signature is added (same uid, never deleted)", async () => {
      const first = (await admin.getConfigMap(SIGNATURE_NAMESPACE, NAME))!;
      const r = await admin.applyObject(signatureConfigMap(DIGEST, [sig("one"), sig("two")]));
      expect(r).toMatchObject({ created: false, changed: true });
      expect(r.object.metadata.uid).toBe(first.metadata.uid);
      expect(r.object.metadata.creationTimestamp).toBe(first.metadata.creationTimestamp);
      expect(Number(r.object.metadata.resourceVersion)).toBeGreaterThan(
        Number(first.metadata.resourceVersion),
      );
      const cm = await kubectlJson(["get", "configmap", "-n", SIGNATURE_NAMESPACE, NAME]);
      expect(cm.binaryData).toEqual({ [`${NAME}-1`]: b64("one"), [`${NAME}-2`]: b64("two") });
      expect(api.requests.some((q) => q.method === "DELETE")).toBe(false);
    });

    it("dry-runs without storing, and reports whether it would change", async () => {
      const stored = (await admin.getConfigMap(SIGNATURE_NAMESPACE, NAME))!;
      const same = await admin.applyObject(signatureConfigMap(DIGEST, [sig("one"), sig("two")]), {
        dryRun: true,
      });
      expect(same.changed).toBe(false);
      const more = await admin.applyObject(
        signatureConfigMap(DIGEST, [sig("one"), sig("two"), sig("three")]),
        { dryRun: true },
      );
      expect(more.changed).toBe(true);
      expect(Object.keys(more.object.binaryData as object)).toHaveLength(3);
      expect(await admin.getConfigMap(SIGNATURE_NAMESPACE, NAME)).toEqual(stored);
      const fresh = signatureConfigMap(parseDigest(`sha256:${"ef".repeat(32)}`), [sig("x")]);
      expect(await admin.applyObject(fresh, { dryRun: true })).toMatchObject({
        created: true,
        changed: true,
      });
      expect(await admin.getConfigMap(SIGNATURE_NAMESPACE, fresh.metadata.name)).toBeUndefined();
    });

    it("shares the fields oc apply (the seed procedure) wrote with the same value, without a conflict", async () => {
      const digest = parseDigest(`sha256:${"12".repeat(32)}`);
      const seeded = await kubectl(
        adminConfig,
        home,
        ["apply", "-f", "-"],
        configMapToYaml(signatureConfigMap(digest, [sig("seed")])),
      );
      expect(seeded.code).toBe(0);
      const r = await admin.applyObject(signatureConfigMap(digest, [sig("seed"), sig("second")]), {
        force: false,
      });
      expect(r.changed).toBe(true);
      const managers = (r.object.metadata.managedFields as { manager: string }[])
        .map((m) => m.manager)
        .sort();
      expect(managers).toEqual(["kubectl-client-side-apply", "sigferry"]);
    });

    describe("when another manager set a different value", () => {
      const digest = parseDigest(`sha256:${"34".repeat(32)}`);
      beforeAll(async () => {
        const other = await kubectl(
          adminConfig,
          home,
          ["apply", "--server-side", "--field-manager=oc", "-f", "-"],
          configMapToYaml(signatureConfigMap(digest, [sig("theirs")])),
        );
        expect(other.code).toBe(0);
      });

      it("reports the conflict with force=false, naming the field and the manager", async () => {
        const err = await failure(
          admin.applyObject(signatureConfigMap(digest, [sig("ours")]), { force: false }),
        );
        expect(err.code).toBe("KUBE_API");
        expect(err.message).toContain(
          `apply configmaps/sha256-${"34".repeat(32)} in namespace ${SIGNATURE_NAMESPACE}: conflict: Apply failed with 1 conflict: conflict with "oc": .binaryData.sha256-${"34".repeat(32)}-1`,
        );
        expect(err.details).toMatchObject({
          status: 409,
          reason: "Conflict",
          causes: [`.binaryData.sha256-${"34".repeat(32)}-1: conflict with "oc"`],
        });
      });

      it("takes the field over by default (force=true)", async () => {
        const r = await admin.applyObject(signatureConfigMap(digest, [sig("ours")]));
        expect(r.changed).toBe(true);
        expect((r.object.binaryData as Record<string, string>)[`sha256-${"34".repeat(32)}-1`]).toBe(
          b64("ours"),
        );
      });
    });

    it("accepts a ConfigMap at sigferry's 1 MiB limit: the server's own count is smaller", async () => {
      const fits = Array.from({ length: 700 }, () => new Uint8Array(1000).fill(7));
      const cm = signatureConfigMap(parseDigest(`sha256:${"56".repeat(32)}`), fits);
      expect(serializedSize(cm)).toBeGreaterThan(0.9 * CONFIGMAP_MAX_BYTES);
      expect(serializedSize(cm)).toBeLessThanOrEqual(CONFIGMAP_MAX_BYTES);
      expect((await admin.applyObject(cm)).created).toBe(true);
    });
  });

  describe("reading", () => {
    it("returns undefined for a missing ConfigMap (also in a missing namespace)", async () => {
      expect(await admin.getConfigMap(SIGNATURE_NAMESPACE, "missing")).toBeUndefined();
      expect(await admin.getConfigMap("no-such-namespace", "missing")).toBeUndefined();
    });

    it("lists labelled ConfigMaps only, with apiVersion and kind filled in", async () => {
      await kubectl(
        adminConfig,
        home,
        ["apply", "--server-side", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "not-a-signature", namespace: SIGNATURE_NAMESPACE },
        }),
      );
      const list = await admin.listConfigMaps(SIGNATURE_NAMESPACE, SIGNATURE_LABEL);
      const names = list.map((c) => c.metadata.name);
      expect(names).toContain(NAME);
      expect(names).not.toContain("not-a-signature");
      expect(list.every((c) => c.apiVersion === "v1" && c.kind === "ConfigMap")).toBe(true);
      // Label semantics: key!=value also selects objects without the key.
      expect(
        (await admin.listConfigMaps(SIGNATURE_NAMESPACE, `${SIGNATURE_LABEL}!=`)).map(
          (c) => c.metadata.name,
        ),
      ).toEqual(["not-a-signature"]);
    });

    it("follows continue tokens through every page", async () => {
      for (let i = 0; i < 7; i++) {
        await admin.applyObject({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `page-${i}`, namespace: "paging", labels: { a: "b" } },
        });
      }
      const small = await clientFor({ token: api.adminToken }, { listPageSize: 3 });
      const before = api.requests.length;
      const list = await small.listConfigMaps("paging", "a=b");
      expect(list.map((c) => c.metadata.name)).toEqual([
        "page-0",
        "page-1",
        "page-2",
        "page-3",
        "page-4",
        "page-5",
        "page-6",
      ]);
      expect(
        api.requests.slice(before).filter((r) => r.path === "/api/v1/namespaces/paging/configmaps"),
      ).toHaveLength(3);
    });

    it("reports the server version", async () => {
      expect(await admin.serverVersion()).toMatchObject({
        major: "1",
        minor: "32",
        gitVersion: "v1.32.4",
      });
    });

    it("discovers config.openshift.io/v1 kinds, and their absence on plain Kubernetes", async () => {
      expect(await admin.hasResource("config.openshift.io/v1", "ImageDigestMirrorSet")).toBe(true);
      expect(await admin.hasResource("config.openshift.io/v1", "ClusterImagePolicy")).toBe(true);
      expect(await admin.hasResource("config.openshift.io/v1", "ImageTagMirrorSet")).toBe(false);
      expect(await admin.hasResource("v1", "ConfigMap")).toBe(true);
      const plain = await startKubeApi({ openshift: false });
      try {
        const file = await plain.writeKubeconfig(home, {
          token: plain.adminToken,
          fileName: "plain",
        });
        const c = new KubeClient(await loadKubeconfig({ path: file, env: {}, home }));
        expect(await c.hasResource("config.openshift.io/v1", "ImageDigestMirrorSet")).toBe(false);
        await c.close();
      } finally {
        await plain.stop();
      }
    });
  });

  describe("config.openshift.io/v1 objects", () => {
    it("applies an ImageDigestMirrorSet (cluster-scoped path) and re-applies it without change", async () => {
      const idms = imageDigestMirrorSet({
        name: "sigferry-release",
        mirrors: ["mirror.example.com:5000/ocp/release"],
        additionalSources: [OCP_ART_DEV_REPO],
      });
      const before = api.requests.length;
      const r = await admin.applyObject(idms);
      expect(r).toMatchObject({ created: true, changed: true });
      expect(api.requests.slice(before).find((q) => q.method === "PATCH")!.path).toBe(
        "/apis/config.openshift.io/v1/imagedigestmirrorsets/sigferry-release",
      );
      expect((await admin.applyObject(idms)).changed).toBe(false);
      const seen = await kubectlJson(["get", "imagedigestmirrorset", "sigferry-release"]);
      expect(seen.spec).toEqual(idms.spec);
    });

    it("applies a ClusterImagePolicy built from Red Hat's key; kubectl sees the real policy's spec", async () => {
      const pem = readFileSync(real("keys", "redhat-release-sigstore-key.pem"), "utf8");
      const cip = clusterImagePolicy({
        name: "sigferry-openshift",
        scopes: [
          "quay.io/openshift-release-dev/ocp-release",
          "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
          "quay.io/openshift-release-dev/ocp-v5.0-art-dev",
        ],
        rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: pemToKeyData(pem) } },
      });
      expect((await admin.applyObject(cip)).created).toBe(true);
      const applied = await kubectl(adminConfig, home, [
        "apply",
        "--server-side",
        "-f",
        real("keys", "openshift-cluster-image-policy.yaml"),
      ]);
      expect(applied.code).toBe(0);
      const ours = await kubectlJson(["get", "clusterimagepolicy", "sigferry-openshift"]);
      const theirs = await kubectlJson(["get", "clusterimagepolicy", "openshift"]);
      expect(ours.spec).toEqual(theirs.spec);
    });

    it("maps a 422 from the schema to KUBE_API with the causes", async () => {
      const broken = {
        apiVersion: "config.openshift.io/v1",
        kind: "ClusterImagePolicy",
        metadata: { name: "broken" },
        spec: {
          scopes: ["busybox"],
          policy: { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: "QUFB" } } },
        },
      };
      const err = await failure(admin.applyObject(broken));
      expect(err.code).toBe("KUBE_API");
      expect(err.message).toContain(
        'the server refused the object as invalid: ClusterImagePolicy.config.openshift.io "broken" is invalid: [spec.scopes[0]',
      );
      expect(err.details.causes).toEqual([
        "spec.scopes[0]: Invalid value: \"string\": invalid image scope format, scope must contain a fully qualified domain name or 'localhost'",
        'spec.scopes[0]: Invalid value: "string": invalid repository namespace or image specification in the image scope',
      ]);
    });
  });

  describe("errors", () => {
    it("maps 401 to AUTH_REQUIRED without the token in the message", async () => {
      const bad = await clientFor({ token: "sha256~not-a-real-token" });
      const err = await failure(bad.getConfigMap(SIGNATURE_NAMESPACE, NAME));
      expect(err.code).toBe("AUTH_REQUIRED");
      expect(err.message).toContain(
        'did not accept the credentials of context "test" (401 Unauthorized)',
      );
      expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain("not-a-real-token");
    });

    it("maps 403 to AUTH_DENIED with the Status message naming verb and resource", async () => {
      const ro = await clientFor({ token: api.readonlyToken });
      expect(await ro.getConfigMap(SIGNATURE_NAMESPACE, NAME)).toBeDefined();
      const err = await failure(ro.applyObject(signatureConfigMap(DIGEST, [sig("one")])));
      expect(err.code).toBe("AUTH_DENIED");
      expect(err.message).toContain(
        `configmaps "${NAME}" is forbidden: User "readonly" cannot patch resource "configmaps" in API group "" in the namespace "${SIGNATURE_NAMESPACE}"`,
      );
      expect(err.message).not.toContain(api.readonlyToken);
    });

    it("maps a missing namespace to KUBE_API naming it", async () => {
      const cm = { ...signatureConfigMap(DIGEST, [sig("one")]) };
      cm.metadata = { ...cm.metadata, namespace: "openshift-config-missing" };
      const err = await failure(admin.applyObject(cm));
      expect(err.code).toBe("KUBE_API");
      expect(err.message).toContain(
        'the namespace openshift-config-missing does not exist (namespaces "openshift-config-missing" not found)',
      );
      expect(err.details.status).toBe(404);
    });

    it("maps a 422 for an invalid name to KUBE_API with the cause", async () => {
      const err = await failure(
        admin.applyObject({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "Not_Valid", namespace: SIGNATURE_NAMESPACE },
        }),
      );
      expect(err.code).toBe("KUBE_API");
      expect(err.details.causes).toEqual([
        expect.stringMatching(
          /^metadata\.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain/,
        ),
      ]);
    });

    it("retries after a 429 with Retry-After", async () => {
      const busy = await startKubeApi({ throttle: 1 });
      try {
        const file = await busy.writeKubeconfig(home, { token: busy.adminToken, fileName: "busy" });
        const c = new KubeClient(await loadKubeconfig({ path: file, env: {}, home }));
        expect((await c.serverVersion()).gitVersion).toBe("v1.32.4");
        expect(busy.requests.map((r) => r.status)).toEqual([429, 200]);
        await c.close();
      } finally {
        await busy.stop();
      }
    });

    it("maps an untrusted server certificate to TLS, and a closed port to NETWORK", async () => {
      const noCa = await clientFor({ token: api.adminToken, noCa: true });
      expect((await failure(noCa.serverVersion())).code).toBe("TLS");
      const port = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      const target: KubeTarget = {
        server: `https://127.0.0.1:${port}`,
        contextName: "gone",
        token: "x",
      };
      const gone = new KubeClient(target);
      clients.push(gone);
      expect((await failure(gone.serverVersion())).code).toBe("NETWORK");
    });
  });

  describe("authentication", () => {
    it("uses a client certificate", async () => {
      const c = await clientFor({ clientCert: true, caFile: true });
      const before = api.requests.length;
      expect(
        (
          await c.applyObject({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "cert-auth", namespace: "default" },
          })
        ).created,
      ).toBe(true);
      expect(api.requests.slice(before).map((r) => r.user)).toEqual(["cert-admin", "cert-admin"]);
    });

    it("uses basic credentials", async () => {
      const c = await clientFor({ basic: true });
      expect((await c.serverVersion()).gitVersion).toBe("v1.32.4");
      expect(api.requests.at(-1)!.user).toBe("basic-admin");
    });

    it("skips verification only when the kubeconfig says insecure-skip-tls-verify", async () => {
      const c = await clientFor({ token: api.adminToken, insecure: true });
      expect((await c.serverVersion()).gitVersion).toBe("v1.32.4");
    });

    it("passes server Warning headers to onWarning (a dispatcher stands in for the server)", async () => {
      const mock = new MockAgent();
      mock.disableNetConnect();
      mock
        .get("https://api.example.com:6443")
        .intercept({ path: "/version", method: "GET" })
        .reply(
          200,
          { major: "1", minor: "32", gitVersion: "v1.32.4" },
          { headers: { warning: '299 - "v1 ComponentStatus is deprecated in v1.19+"' } },
        );
      const warnings: string[] = [];
      const c = new KubeClient(
        { server: "https://api.example.com:6443", contextName: "mock" },
        { dispatcher: mock, onWarning: (w) => warnings.push(w) },
      );
      await c.serverVersion();
      expect(warnings).toEqual(["v1 ComponentStatus is deprecated in v1.19+"]);
      await mock.close();
    });
  });
});
