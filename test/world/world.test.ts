/**
 * The local world starts, and holds what the generator described: tags that
 * resolve (through skopeo, an independent client) to the expected digests,
 * `.sig` tags for every per-arch and index digest, stores that serve the
 * signatures, and a graph whose payloads are the registry's digests.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sigTag, storeDirName } from "../../src/core/digest.js";
import { startWorld, worldClient, type World } from "./index.js";

const run = promisify(execFile);

/** `skopeo inspect --raw` of a reference: the manifest bytes exactly as the registry serves them. */
async function skopeoRaw(reference: string, extra: string[] = []): Promise<Buffer> {
  const { stdout } = await run(
    "skopeo",
    ["inspect", "--raw", "--tls-verify=false", ...extra, `docker://${reference}`],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout;
}

const sha256 = (bytes: Uint8Array): string =>
  `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

describe("a default world", () => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld({ mirror: true });
  });
  afterAll(() => world?.stop());

  it("names its services on 127.0.0.1", () => {
    expect(world.releaseRepo).toMatch(/^127\.0\.0\.1:\d+\/openshift-release-dev\/ocp-release$/);
    expect(world.stores.primary).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    expect(world.graphUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/upgrades_info\/v1\/graph$/);
    expect(world.mirror?.host).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("resolves every release tag, through skopeo, to the expected digest", async () => {
    const r = world.data.good[2]!;
    for (const tag of [`${r.version}-x86_64`, `${r.version}-aarch64`, `${r.version}-multi`]) {
      const raw = await skopeoRaw(`${world.releaseRepo}:${tag}`);
      expect(sha256(raw), tag).toBe(r.tags[tag]);
    }
    const oci = world.data.good.find((x) => x.format === "oci")!;
    const raw = await skopeoRaw(`${world.releaseRepo}:${oci.version}-multi`);
    expect(sha256(raw)).toBe(oci.digests.multi);
    expect(JSON.parse(raw.toString()).mediaType).toBe("application/vnd.oci.image.index.v1+json");
  });

  it("serves the multi release's untagged per-arch manifests by digest", async () => {
    const r = world.data.good[0]!;
    for (const child of r.multi.children) {
      const raw = await skopeoRaw(`${world.releaseRepo}@${child.manifest.digest}`);
      expect(sha256(raw)).toBe(child.manifest.digest);
    }
  });

  it("has a .sig tag for every per-arch digest and every index digest", async () => {
    const client = worldClient(world.upstream);
    try {
      const tags = new Set(await client.listTags(world.data.repoPath));
      for (const r of world.data.releases) {
        const digests = [
          ...r.images.map((i) => i.manifest.digest),
          ...r.multi.children.map((i) => i.manifest.digest),
          r.multi.manifest.digest,
        ];
        for (const d of digests)
          expect(tags.has(sigTag(d)), `${r.version} ${d}`).toBe(r.case !== "noSigstore");
        for (const tag of Object.keys(r.tags)) expect(tags.has(tag)).toBe(true);
      }
      const d = world.data.good[0]!.digests.aarch64!;
      const sig = await client.getManifest(world.data.repoPath, sigTag(d));
      expect(sig?.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
      expect(sig?.digest).toBe(world.data.cosign.find((s) => s.subject === d)!.manifest.digest);
    } finally {
      await client.close();
    }
  });

  it("serves signature-1 from the stores and 404 where a signature is absent", async () => {
    const r = world.data.good[0]!;
    const dir = storeDirName(r.digests.x86_64!);
    const one = await get(`${world.stores.primary}/${dir}/signature-1`);
    expect(one.status).toBe(200);
    const expected = world.data.stores.primary.get(`${dir}/signature-1`)!.bytes;
    expect(one.body.equals(expected)).toBe(true);
    expect((await get(`${world.stores.primary}/${dir}/signature-2`)).status).toBe(404);
    expect((await get(`${world.stores.secondary}/${dir}/signature-1`)).status).toBe(200);
    const noSig = storeDirName(world.data.cases.noSignature.release.digests.x86_64!);
    expect((await get(`${world.stores.primary}/${noSig}/signature-1`)).status).toBe(404);
    expect(world.http.count(`/pub/openshift-v4/signatures/openshift/release/${dir}/`)).toBe(2);
  });

  it("serves graphs whose payload digests are the registry's", async () => {
    for (const [arch, tagArch] of [
      ["amd64", "x86_64"],
      ["arm64", "aarch64"],
      ["multi", "multi"],
    ] as const) {
      const res = await get(`${world.graphUrl}?channel=stable-4.16&arch=${arch}`, {
        accept: "application/json",
      });
      expect(res.status).toBe(200);
      const graph = JSON.parse(res.body.toString()) as {
        nodes: Array<{ version: string; payload: string }>;
      };
      expect(graph.nodes.length).toBe(world.data.good.length - 1);
      const node = graph.nodes.find((n) => n.version === "4.16.1")!;
      const digest = node.payload.split("@")[1]!;
      const raw = await skopeoRaw(`${world.releaseRepo}:4.16.1-${tagArch}`);
      expect(sha256(raw)).toBe(digest);
    }
  });

  it("has an empty mirror and public key files for --keyring / --sigstore-key", async () => {
    const client = worldClient(world.mirror!);
    try {
      expect(await client.listTags(world.data.repoPath)).toEqual([]);
    } finally {
      await client.close();
    }
    expect(await readFile(world.keys.openpgpTrusted, "utf8")).toContain(
      "BEGIN PGP PUBLIC KEY BLOCK",
    );
    expect(await readFile(world.keys.sigstoreRsa, "utf8")).toContain("BEGIN PUBLIC KEY");
    expect(JSON.parse(await readFile(world.authFile, "utf8"))).toEqual({ auths: {} });
  });

  it("stops idempotently and removes its temp dir", async () => {
    const w = await startWorld({ releases: 2, cases: false });
    await Promise.all([w.stop(), w.stop()]);
    await w.stop();
    await expect(access(w.dir)).rejects.toThrow();
    await expect(get(`${w.stores.primary}/x`)).rejects.toThrow();
  });
});

describe("a world with a TLS, password-protected upstream and a token-auth mirror", () => {
  let world: World;
  const creds = { username: "reader", password: "s3cret-upstream" };
  beforeAll(async () => {
    world = await startWorld({
      tlsUpstream: true,
      authUpstream: creds,
      mirror: { token: { username: "pusher", password: "s3cret-mirror" } },
    });
  });
  afterAll(() => world?.stop());

  it("needs the credentials: skopeo is refused without them and served with them", async () => {
    const ref = `${world.releaseRepo}:4.16.0-x86_64`;
    await expect(skopeoRaw(ref)).rejects.toThrow();
    const raw = await skopeoRaw(ref, ["--creds", `${creds.username}:${creds.password}`]);
    expect(sha256(raw)).toBe(world.data.good[0]!.digests.x86_64);
    expect(world.upstream.url).toMatch(/^https:/);
    expect(world.upstream.caPem).toContain("BEGIN CERTIFICATE");
  });

  it("writes an auth file with both registries' credentials", async () => {
    const auth = JSON.parse(await readFile(world.authFile, "utf8")) as {
      auths: Record<string, { auth: string }>;
    };
    expect(Buffer.from(auth.auths[world.upstream.host]!.auth, "base64").toString()).toBe(
      "reader:s3cret-upstream",
    );
    expect(Buffer.from(auth.auths[world.mirror!.host]!.auth, "base64").toString()).toBe(
      "pusher:s3cret-mirror",
    );
  });

  it("lets the mirror be pushed to through the token service", async () => {
    const client = worldClient(world.mirror!);
    try {
      const sig = world.data.cosign[0]!;
      await client.pushBlob("mirror/ocp-release", sig.config.digest, sig.config.bytes);
      await client.pushBlob("mirror/ocp-release", sig.layer.digest, sig.layer.bytes);
      const digest = await client.putManifest(
        "mirror/ocp-release",
        sig.tag,
        sig.manifest.bytes,
        sig.manifest.mediaType,
      );
      expect(digest).toBe(sig.manifest.digest);
      expect(world.mirror!.tokenIssuer!.requests.some((r) => r.granted)).toBe(true);
    } finally {
      await client.close();
    }
  });
});

describe("a world with release images already mirrored", () => {
  it("has the release images in the mirror, and no .sig tags there", async () => {
    const world = await startWorld({
      releases: 2,
      cases: false,
      mirror: true,
      mirrorReleases: true,
    });
    try {
      expect(world.mirrorRepo).toBe(`${world.mirror!.host}/ocp4/openshift-release-dev/ocp-release`);
      const raw = await skopeoRaw(`${world.mirrorRepo!}:4.16.1-multi`);
      expect(sha256(raw)).toBe(world.data.good[1]!.digests.multi);
      const client = worldClient(world.mirror!);
      try {
        const tags = await client.listTags("ocp4/openshift-release-dev/ocp-release");
        expect(tags.sort()).toEqual(
          Object.keys({ ...world.data.good[0]!.tags, ...world.data.good[1]!.tags }).sort(),
        );
      } finally {
        await client.close();
      }
    } finally {
      await world.stop();
    }
  });
});

describe("a world with a private upstream", () => {
  it("fills a fresh registry over HTTP when the storage cache is off", async () => {
    const world = await startWorld({
      releases: 1,
      cases: false,
      upstreamCache: false,
      writeFiles: true,
    });
    try {
      expect(world.upstream.storageDir).not.toContain("fixtures/out/registry");
      const raw = await skopeoRaw(`${world.releaseRepo}:4.16.0-multi`);
      expect(sha256(raw)).toBe(world.data.good[0]!.digests.multi);
      const summary = JSON.parse(await readFile(`${world.filesDir}/world.json`, "utf8"));
      expect(summary.releases[0].tags["4.16.0-multi"]).toBe(world.data.good[0]!.digests.multi);
    } finally {
      await world.stop();
    }
  });
});
