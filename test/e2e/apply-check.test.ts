/**
 * The disconnected side, end to end: a bundle from `create` is applied to a
 * second real registry (TLS + htpasswd) and to the Kubernetes API test server;
 * skopeo and kubectl check what landed; `check` turns green; a second apply
 * changes nothing.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readArchive } from "../../src/archive/reader.js";
import { runApply, type ApplyOptions } from "../../src/commands/bundle-apply.js";
import { runCreate } from "../../src/commands/bundle-create.js";
import { runCheck } from "../../src/commands/check.js";
import { capture } from "../helpers/capture.js";
import { kubectl } from "../helpers/kubectl.js";
import { startWorld, type World } from "../world/index.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";

const exec = promisify(execFile);
const MIRROR_REPO_PATH = "ocp/release";

let world: World;
let kube: KubeApi;
let dir: string;
let kubeconfig: string;
let archive: string;
let mirrorRepo: string;
/** A directory holding only the mirror's CA as ca.crt (skopeo reads *.key files there as client keys). */
let certDir: string;

async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await exec("skopeo", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

const mirrorCreds = (): string =>
  `${world.mirror!.credentials!.username}:${world.mirror!.credentials!.password}`;

beforeAll(async () => {
  world = await startWorld({
    mirror: { tls: true, htpasswd: { username: "mirror-admin", password: "s3cret-mirror-pw" } },
  });
  kube = await startKubeApi({ namespaces: ["openshift-config-managed"] });
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-e2e-apply-"));
  kubeconfig = await kube.writeKubeconfig(dir, { token: kube.adminToken });
  mirrorRepo = `${world.mirror!.host}/${MIRROR_REPO_PATH}`;
  certDir = path.join(dir, "certs");
  await mkdir(certDir);
  await copyFile(world.mirror!.caFile!, path.join(certDir, "ca.crt"));
  const good = world.data.good[0]!;
  archive = path.join(dir, "bundle.tar.gz");
  await runCreate(
    {
      release: [good.version],
      arch: ["x86_64", "multi"],
      releaseRepo: world.releaseRepo,
      plainHttp: true,
      signatureStore: [world.stores.primary],
      keyring: [world.keys.openpgpTrusted],
      sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      output: archive,
    },
    capture({ quiet: true }).reporter,
  );
  // The mirror already holds the release images, as after `oc adm release mirror` (here: skopeo).
  for (const tag of [`${good.version}-x86_64`, `${good.version}-multi`]) {
    await skopeo([
      "copy",
      "--all",
      "--preserve-digests",
      "--src-tls-verify=false",
      `--dest-cert-dir=${certDir}`,
      `--dest-creds=${mirrorCreds()}`,
      `docker://${world.releaseRepo}:${tag}`,
      `docker://${mirrorRepo}:${tag}`,
    ]);
  }
}, 240_000);

afterAll(async () => {
  await kube?.stop();
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function applyOptions(extra: Partial<ApplyOptions> = {}): ApplyOptions {
  return {
    to: mirrorRepo,
    caFile: world.mirror!.caFile!,
    authFile: world.authFile,
    kubeconfig,
    keyring: [world.keys.openpgpTrusted],
    sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
    quiet: true,
    ...extra,
  };
}

describe("bundle apply and check", () => {
  it("check reports the missing .sig tags and ConfigMaps before anything is applied", async () => {
    const r = await runCheck(
      {
        to: mirrorRepo,
        bundle: archive,
        caFile: world.mirror!.caFile!,
        authFile: world.authFile,
        kubeconfig,
        keyring: [world.keys.openpgpTrusted],
        sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      },
      capture({ quiet: true }).reporter,
    );
    expect(r.ok).toBe(false);
    expect(r.rows.every((row) => row.image === "ok")).toBe(true);
    expect(r.rows.some((row) => row.sigstore === "missing")).toBe(true);
    expect(
      r.rows
        .filter((row) => row.configMap !== "skipped")
        .every((row) => row.configMap === "missing"),
    ).toBe(true);
  });

  it("--dry-run plans every push and apply and changes nothing", async () => {
    const r = await runApply(
      archive,
      applyOptions({ dryRun: true }),
      capture({ quiet: true }).reporter,
    );
    expect(r.dryRun).toBe(true);
    expect(r.registry!.artifacts.every((a) => a.action === "would-push")).toBe(true);
    expect(r.cluster!.objects.every((o) => o.action === "would-apply")).toBe(true);
    const tags = JSON.parse(
      await skopeo([
        "list-tags",
        `--cert-dir=${certDir}`,
        `--creds=${mirrorCreds()}`,
        `docker://${mirrorRepo}`,
      ]),
    ) as { Tags: string[] };
    expect(tags.Tags.filter((t) => t.endsWith(".sig"))).toEqual([]);
    expect(
      kube
        .objects()
        .filter(
          (o) =>
            (o as { kind?: string }).kind === "ConfigMap" &&
            JSON.stringify(o).includes("verification-signatures"),
        ),
    ).toEqual([]);
  });

  it("pushes every .sig byte for byte and applies every ConfigMap; skopeo and kubectl see exactly the archive's bytes", async () => {
    const r = await runApply(archive, applyOptions(), capture({ quiet: true }).reporter);
    expect(r.changed).toBe(true);
    expect(r.registry!.missingImages).toEqual([]);
    expect(r.registry!.artifacts.every((a) => a.action === "pushed")).toBe(true);
    expect(r.cluster!.objects.every((o) => o.action === "created")).toBe(true);

    const bundle = await readArchive(archive);
    const index = JSON.parse(new TextDecoder().decode(bundle.members.get("index.json"))) as {
      sigstore: { tag: string; manifest: { digest: string } }[];
      configMaps: { name: string; path: string }[];
    };
    for (const a of index.sigstore) {
      const raw = await skopeo([
        "inspect",
        "--raw",
        `--cert-dir=${certDir}`,
        `--creds=${mirrorCreds()}`,
        `docker://${mirrorRepo}:${a.tag}`,
      ]);
      expect(`sha256:${createHash("sha256").update(raw).digest("hex")}`).toBe(a.manifest.digest);
    }
    const listed = await kubectl(kubeconfig, dir, [
      "get",
      "configmap",
      "-n",
      "openshift-config-managed",
      "-l",
      "release.openshift.io/verification-signatures",
      "-o",
      "json",
      "--show-managed-fields",
    ]);
    expect(listed.code).toBe(0);
    const items = (
      JSON.parse(listed.stdout) as {
        items: {
          metadata: { name: string; managedFields: { manager: string }[] };
          binaryData: Record<string, string>;
        }[];
      }
    ).items;
    expect(items.map((i) => i.metadata.name).sort()).toEqual(
      index.configMaps.map((c) => c.name).sort(),
    );
    for (const cm of index.configMaps) {
      const carried = (await import("yaml")).parse(
        new TextDecoder().decode(bundle.members.get(cm.path)),
      ) as { binaryData: Record<string, string> };
      const live = items.find((i) => i.metadata.name === cm.name)!;
      expect(live.binaryData).toEqual(carried.binaryData);
      expect(live.metadata.managedFields.map((f) => f.manager)).toContain("sigferry");
    }
  });

  it("a second apply changes nothing and says so", async () => {
    const cap = capture();
    const r = await runApply(archive, applyOptions({ quiet: false }), cap.reporter);
    expect(r.changed).toBe(false);
    expect(r.registry!.artifacts.every((a) => a.action === "unchanged")).toBe(true);
    expect(r.cluster!.objects.every((o) => o.action === "unchanged")).toBe(true);
    const { printApplyResult } = await import("../../src/commands/bundle-apply.js");
    printApplyResult(r, cap.reporter);
    expect(cap.stdout()).toContain("nothing to do");
  });

  it("check is all green after apply, and by --release resolves the mirror's tags", async () => {
    const base = {
      to: mirrorRepo,
      caFile: world.mirror!.caFile!,
      authFile: world.authFile,
      kubeconfig,
      keyring: [world.keys.openpgpTrusted],
      sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
    };
    const byBundle = await runCheck(
      { ...base, bundle: archive },
      capture({ quiet: true }).reporter,
    );
    expect(
      byBundle.rows.filter(
        (r) =>
          r.image !== "ok" ||
          r.sigstore === "missing" ||
          r.sigstore === "invalid" ||
          r.configMap === "missing",
      ),
    ).toEqual([]);
    expect(byBundle.ok).toBe(true);
    const good = world.data.good[0]!;
    const byRelease = await runCheck(
      { ...base, release: [good.version], arch: ["x86_64", "multi"] },
      capture({ quiet: true }).reporter,
    );
    expect(byRelease.ok).toBe(true);
    expect(byRelease.rows.map((r) => r.digest)).toContain(good.digests.multi);
    // A release whose signatures were never applied is reported missing.
    const other = world.data.good[1]!;
    await skopeo([
      "copy",
      "--preserve-digests",
      "--src-tls-verify=false",
      `--dest-cert-dir=${certDir}`,
      `--dest-creds=${mirrorCreds()}`,
      `docker://${world.releaseRepo}:${other.version}-x86_64`,
      `docker://${mirrorRepo}:${other.version}-x86_64`,
    ]);
    const missing = await runCheck(
      { ...base, release: [other.version] },
      capture({ quiet: true }).reporter,
    );
    expect(missing.ok).toBe(false);
    expect(missing.rows[0]).toMatchObject({
      image: "ok",
      sigstore: "missing",
      configMap: "missing",
    });
  });

  it("updates a ConfigMap that exists with other content, never deleting what another manager owns", async () => {
    const cmName = JSON.parse(
      new TextDecoder().decode((await readArchive(archive)).members.get("index.json")),
    ).configMaps[0].name as string;
    const other = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: cmName,
        namespace: "openshift-config-managed",
        labels: { "release.openshift.io/verification-signatures": "" },
      },
      binaryData: { [`${cmName}-99`]: Buffer.from("hand-made").toString("base64") },
    };
    const res = await kubectl(
      kubeconfig,
      dir,
      ["apply", "--server-side", "--field-manager=someone-else", "-f", "-"],
      JSON.stringify(other),
    );
    expect(res.code).toBe(0);
    const r = await runApply(
      archive,
      applyOptions({ skipRegistry: true }),
      capture({ quiet: true }).reporter,
    );
    expect(r.cluster!.objects.find((o) => o.name === cmName)!.action).toBe("unchanged");
    const got = await kubectl(kubeconfig, dir, [
      "get",
      "configmap",
      "-n",
      "openshift-config-managed",
      cmName,
      "-o",
      "json",
    ]);
    const live = JSON.parse(got.stdout) as { binaryData: Record<string, string> };
    expect(Object.keys(live.binaryData)).toContain(`${cmName}-99`);
    expect(Object.keys(live.binaryData)).toContain(`${cmName}-1`);
  });

  it("--skip-cluster writes a kustomize-ready manifests directory that kubectl kustomize builds", async () => {
    const out = path.join(dir, "manifests");
    const r = await runApply(
      archive,
      applyOptions({ skipCluster: true, skipRegistry: true, manifestsDir: out }),
      capture({ quiet: true }).reporter,
    );
    expect(r.cluster).toBeUndefined();
    const files = (await readdir(out)).sort();
    expect(files).toContain("kustomization.yaml");
    expect(files).toContain("imagedigestmirrorset.yaml");
    expect(files).toContain("clusterimagepolicy.yaml");
    const built = await exec("kubectl", ["kustomize", out]);
    expect(built.stdout).toContain("kind: ImageDigestMirrorSet");
    expect(built.stdout).toContain(`- ${mirrorRepo}`);
    expect((built.stdout.match(/kind: ConfigMap/g) ?? []).length).toBe(
      r.files!.filter((f) => f.startsWith("sha256-")).length,
    );
    expect(await readFile(path.join(out, "imagedigestmirrorset.yaml"), "utf8")).toContain(
      "quay.io/openshift-release-dev/ocp-release",
    );
  });

  it("refuses to push or apply anything from an archive that fails verification", async () => {
    const tampered = path.join(dir, "tampered.tar.gz");
    const bytes = await readFile(archive);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await (await import("node:fs/promises")).writeFile(tampered, bytes);
    const before = kube.requests.length;
    await expect(
      runApply(tampered, applyOptions(), capture({ quiet: true }).reporter),
    ).rejects.toMatchObject({
      code: expect.stringMatching(/ARCHIVE_CORRUPT|ARCHIVE_TRUNCATED|CHECKSUM_MISMATCH/),
    });
    expect(kube.requests.length).toBe(before);
  });
});
