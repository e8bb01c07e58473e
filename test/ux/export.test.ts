/**
 * The GitOps and fleet exports: `bundle export-manifests` writes a directory
 * `kubectl kustomize` builds; `bundle export-store` lays the signatures out as
 * a store that, served over HTTP, gives `bundle create` the same signatures.
 */
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyManifests } from "../../src/core/apply-manifests.js";
import { runCli } from "../helpers/cli.js";
import { startWorld, type World } from "../world/index.js";
import { createArchive, keyArgs, kustomize, parseJsonOut, readBundle } from "./world-args.js";

let world: World;
let dir: string;
let archive: string;
let second: string;
const MIRROR = "mirror.example.com:8443/ocp4/openshift-release-dev/ocp-release";

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-ux-export-"));
  archive = path.join(dir, "sigs.tar.gz");
  second = path.join(dir, "second.tar.gz");
  // The release whose store also serves a garbage signature-2, and one whose only valid signature is signature-2.
  await createArchive(
    world,
    archive,
    [world.data.good[0]!.version, world.data.cases.garbageSecondSignature.version],
    ["x86_64", "multi"],
  );
  await createArchive(
    world,
    second,
    [
      world.data.good[0]!.version,
      world.data.good[1]!.version,
      world.data.cases.validSecondOnly.version,
    ],
    ["x86_64"],
  );
}, 240_000);

afterAll(async () => {
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("bundle export-manifests", () => {
  it("writes the same files as apply would, and kubectl kustomize builds them", async () => {
    const out = path.join(dir, "gitops", "signatures");
    await mkdir(path.dirname(out), { recursive: true });
    const run = await runCli([
      "bundle",
      "export-manifests",
      archive,
      out,
      "--to",
      MIRROR,
      ...keyArgs(world),
    ]);
    expect(run.code, run.stderr).toBe(0);
    const { index, members } = await readBundle(archive);
    const expected = applyManifests(index, members, MIRROR);
    const files = (await readdir(out)).sort();
    expect(files).toEqual(
      [...expected.configMaps, ...expected.mirror]
        .map((f) => f.file)
        .concat("kustomization.yaml")
        .sort(),
    );
    for (const f of [...expected.configMaps, ...expected.mirror])
      expect(await readFile(path.join(out, f.file), "utf8")).toBe(f.yaml);

    const built = await kustomize(out);
    const docs = built
      .split(/^---$/m)
      .map((d) => parseYaml(d) as { kind: string; metadata: { name: string } });
    expect(
      docs
        .filter((d) => d.kind === "ConfigMap")
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(index.configMaps.map((c) => c.name).sort());
    expect(docs.map((d) => d.kind)).toContain("ImageDigestMirrorSet");
    expect(docs.map((d) => d.kind)).toContain("ClusterImagePolicy");
    expect(built).toContain(`- ${MIRROR}`);

    // Again into the same directory: replaced, not refused (it is sigferry's own).
    const again = await runCli([
      "bundle",
      "export-manifests",
      second,
      out,
      ...keyArgs(world),
      "--quiet",
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(out)).filter((f) => f.startsWith("sha256-")).length).toBe(3);
    expect(await readdir(out)).not.toContain("imagedigestmirrorset.yaml");
  });

  it("refuses to replace a directory it did not write, and leaves it alone", async () => {
    const mine = path.join(dir, "not-sigferry");
    await mkdir(mine);
    await writeFile(path.join(mine, "important.yaml"), "keep: me\n");
    const run = await runCli(["bundle", "export-manifests", archive, mine, ...keyArgs(world)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("was not written by sigferry");
    expect(await readdir(mine)).toEqual(["important.yaml"]);
  });

  it("verifies first: without the keys that signed the archive, nothing is written (exit code 6)", async () => {
    const out = path.join(dir, "unverified");
    const run = await runCli(["bundle", "export-manifests", archive, out, "--to", MIRROR]);
    expect(run.code).toBe(6);
    await expect(stat(out)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

/** Serves `root` read-only on 127.0.0.1: files by path, 404 for anything else. */
async function serve(
  root: string,
): Promise<{ url: string; close: () => Promise<void>; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).replace(
      /^\/sigs\//,
      "",
    );
    hits.push(rel);
    const file = path.join(root, rel);
    if (!file.startsWith(`${root}${path.sep}`)) {
      res.writeHead(404).end();
      return;
    }
    stat(file).then(
      (s) => {
        if (!s.isFile()) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, {
          "content-length": s.size,
          "content-type": "application/octet-stream",
        });
        createReadStream(file).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/sigs`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("bundle export-store", () => {
  it("served over HTTP, the store gives bundle create the same signatures, byte for byte", async () => {
    const storeDir = path.join(dir, "store");
    const server = await serve(storeDir);
    try {
      const run = await runCli([
        "bundle",
        "export-store",
        archive,
        storeDir,
        "--url",
        server.url,
        ...keyArgs(world),
        "--json",
      ]);
      expect(run.code, run.stderr).toBe(0);
      const doc = parseJsonOut(run) as {
        signatures: { file: string; action: string }[];
        url: string;
      };
      expect(doc.url).toBe(server.url);
      const { index: original, members: originalMembers } = await readBundle(archive);
      expect(doc.signatures.map((s) => s.file).sort()).toEqual(
        original.openpgp.map((s) => s.path.replace(/^openpgp\//, "")).sort(),
      );

      // bundle create against the world's registry, with the exported store as the only store.
      const again = path.join(dir, "from-store.tar.gz");
      const created = await runCli([
        "bundle",
        "create",
        ...[world.data.good[0]!.version, world.data.cases.garbageSecondSignature.version].flatMap(
          (v) => ["--release", v],
        ),
        "--arch",
        "x86_64",
        "--arch",
        "multi",
        "--release-repo",
        world.releaseRepo,
        "--plain-http",
        "--signature-store",
        server.url,
        ...keyArgs(world),
        "-o",
        again,
        "--quiet",
      ]);
      expect(created.code, created.stderr).toBe(0);
      const { index: fromStore, members: fromStoreMembers } = await readBundle(again);
      const sigs = (i: typeof original, m: ReadonlyMap<string, Uint8Array>): string[] =>
        i.openpgp
          .map((s) => `${s.digest} ${s.signer} ${Buffer.from(m.get(s.path)!).toString("base64")}`)
          .sort();
      expect(sigs(fromStore, fromStoreMembers)).toEqual(sigs(original, originalMembers));
      // The garbage signature-2 was never exported: the store answers 404 there, where the CVO stops.
      expect(fromStore.rejected).toEqual([]);
      expect(server.hits.some((h) => h.endsWith("/signature-2"))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("writes the ClusterVersion spec.signatureStores patch for --url and --ca-configmap", async () => {
    const storeDir = path.join(dir, "store-ca");
    const run = await runCli([
      "bundle",
      "export-store",
      archive,
      storeDir,
      "--url",
      "https://web.example.com/signatures/",
      "--ca-configmap",
      "signature-store-ca",
      ...keyArgs(world),
      "--quiet",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const text = await readFile(path.join(storeDir, "clusterversion-signaturestores.yaml"), "utf8");
    expect(parseYaml(text)).toEqual({
      spec: {
        signatureStores: [
          { url: "https://web.example.com/signatures", ca: { name: "signature-store-ca" } },
        ],
      },
    });
    expect(text).toContain(
      "oc patch clusterversion version --type merge --patch-file clusterversion-signaturestores.yaml",
    );
    expect(text).not.toContain("EDIT");
  });

  it("without --url writes a placeholder that is clearly marked, and warns", async () => {
    const storeDir = path.join(dir, "store-placeholder");
    const run = await runCli(["bundle", "export-store", archive, storeDir, ...keyArgs(world)]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain("warning: no --url");
    const text = await readFile(path.join(storeDir, "clusterversion-signaturestores.yaml"), "utf8");
    expect(text).toContain("EDIT BEFORE USE");
    expect(text).toContain("# EDIT ME");
    const patch = parseYaml(text) as { spec: { signatureStores: { url: string }[] } };
    expect(patch.spec.signatureStores[0]!.url).toMatch(/\.invalid\//);
    expect(run.stdout).toContain("PLACEHOLDER");
  });

  it("exports a second archive into the same store: what is there stays, new signatures are added", async () => {
    const storeDir = path.join(dir, "store-merge");
    expect(
      (await runCli(["bundle", "export-store", archive, storeDir, ...keyArgs(world), "-q"])).code,
    ).toBe(0);
    const run = await runCli([
      "bundle",
      "export-store",
      second,
      storeDir,
      ...keyArgs(world),
      "--json",
    ]);
    expect(run.code).toBe(0);
    const doc = parseJsonOut(run) as {
      signatures: { digest: string; action: string; file: string }[];
    };
    const shared = world.data.good[0]!.digests.x86_64;
    expect(
      doc.signatures.filter((s) => s.digest === shared).every((s) => s.action === "unchanged"),
    ).toBe(true);
    // Every signature of the second archive that the first did not carry is written; the rest stay.
    const first = await readBundle(archive);
    const firstBytes = new Set(
      first.index.openpgp.map((s) => Buffer.from(first.members.get(s.path)!).toString("base64")),
    );
    const { index: secondIndex, members: secondMembers } = await readBundle(second);
    const fresh = secondIndex.openpgp.filter(
      (s) => !firstBytes.has(Buffer.from(secondMembers.get(s.path)!).toString("base64")),
    );
    expect(fresh.length).toBeGreaterThan(0);
    expect(doc.signatures.filter((s) => s.action === "written").length).toBe(fresh.length);
    // Per digest, the store's files stay numbered 1, 2, … with no gap (the CVO stops at the first 404).
    for (const digest of new Set(doc.signatures.map((s) => s.digest))) {
      const names = (await readdir(path.join(storeDir, `sha256=${digest.slice(7)}`))).sort();
      expect(names).toEqual(names.map((_, k) => `signature-${k + 1}`));
    }
  });

  it("refuses a symbolic link planted in the store that leads outside it (nothing written there)", async () => {
    const storeDir = path.join(dir, "store-symlink");
    const outside = path.join(dir, "outside");
    await mkdir(storeDir, { recursive: true });
    await mkdir(outside);
    const digest = world.data.good[0]!.digests.x86_64!;
    await symlink(outside, path.join(storeDir, `sha256=${digest.slice(7)}`));
    const run = await runCli([
      "bundle",
      "export-store",
      archive,
      storeDir,
      ...keyArgs(world),
      "--json",
    ]);
    expect(run.code).toBe(2);
    expect(parseJsonOut(run)).toMatchObject({ ok: false, error: { code: "OUTPUT_WRITE_FAILED" } });
    expect(await readdir(outside)).toEqual([]);
  });

  it("rejects a --url that is not an http(s) URL", async () => {
    const run = await runCli([
      "bundle",
      "export-store",
      archive,
      path.join(dir, "x"),
      "--url",
      "ftp://x/y",
      ...keyArgs(world),
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("http:// or https://");
  });
});
