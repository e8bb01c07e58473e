/**
 * The fixture generator: its artifacts have the shapes of the real ones
 * (../shared/real) and every bad case is bad in the way fixtures/README.md says.
 * Verification here uses openpgp.js and node:crypto directly, not src/verify.
 */
import { createPublicKey, verify as cryptoVerify } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { inflateRawSync } from "node:zlib";
import * as openpgp from "openpgp";
import { beforeAll, describe, expect, it } from "vitest";
import { sigTag, storeDirName, type Digest } from "../../src/core/digest.js";
import type { CaseName } from "../../fixtures/generate.js";
import {
  CASE_NAMES,
  MT,
  PACKET_TAG,
  buildGraph,
  generateWorldData,
  loadTestKeys,
  registryContent,
  sha256Digest,
  splitPackets,
  type CosignArtifact,
  type ReleaseData,
  type TestKeys,
  type WorldData,
} from "../../fixtures/generate.js";
import { real } from "../helpers/paths.js";

/** An atomic signature payload as parsed (unknown members allowed, to see them). */
interface AtomicJson {
  critical: {
    image: { "docker-manifest-digest": string };
    type: string;
    identity: { "docker-reference": string };
    [extra: string]: unknown;
  };
  optional: { creator: string };
}

/** The parts of manifests, indexes, layouts and configs the tests look at. */
interface Descriptor {
  mediaType: string;
  digest: string;
  platform?: { architecture: string };
  annotations?: Record<string, string>;
}
interface ManifestJson {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  manifests: Descriptor[];
  rootfs: { diff_ids: string[] };
}
interface GraphJson {
  nodes: object[];
  conditionalEdges: Array<{ edges: object[]; risks: object[] }>;
}

/** Parses JSON bytes or text as T (test data whose shape the test asserts). */
function json<T = ManifestJson>(bytes: Uint8Array | string): T {
  return JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8")) as T;
}

const REAL_SIGNATURE = real(
  "gpg-signatures/store/sha256=0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363/signature-1",
);
const REAL_SIG_LAYOUT = real("cosign-sig-layouts/single-arch-empty-image-sig");

let keys: TestKeys;
let data: WorldData;

beforeAll(async () => {
  keys = await loadTestKeys();
  data = await generateWorldData({ keys });
});

/** Verifies an atomic signature with openpgp.js; returns the payload, or throws. */
async function verifyAtomic(bytes: Uint8Array, key: openpgp.PublicKey): Promise<AtomicJson> {
  const message = await openpgp.readMessage({ binaryMessage: bytes });
  const result = await openpgp.verify({ message, verificationKeys: key, format: "binary" });
  const [sig] = result.signatures;
  await sig!.verified;
  return json<AtomicJson>(result.data as Uint8Array);
}

/** Reads the payload of an atomic signature without verifying it. */
async function atomicPayloadOf(bytes: Uint8Array): Promise<AtomicJson> {
  const message = await openpgp.readMessage({ binaryMessage: bytes });
  const literal = message.getLiteralData() as Uint8Array;
  return json<AtomicJson>(literal);
}

/**
 * Tags of an OpenPGP message: the outer packets as openpgp.js reads them, and
 * the packets inside the compressed one (inflated here, since openpgp.js reads
 * the packets after the literal data lazily).
 */
async function packetTags(bytes: Uint8Array): Promise<{ outer: number[]; inner: number[] }> {
  const message = await openpgp.readMessage({ binaryMessage: bytes });
  const outer = [...message.packets].map((p) => (p.constructor as unknown as { tag: number }).tag);
  const [compressed] = splitPackets(bytes);
  if (compressed?.tag !== PACKET_TAG.compressedData || compressed.body[0] !== 1) {
    return { outer, inner: [] };
  }
  const inner = splitPackets(inflateRawSync(compressed.body.subarray(1))).map((p) => p.tag);
  return { outer, inner };
}

/** The first (header) byte of each packet inside the compressed packet. */
function innerHeaderBytes(bytes: Uint8Array): number[] {
  const inner = inflateRawSync(splitPackets(bytes)[0]!.body.subarray(1));
  const out: number[] = [];
  let offset = 0;
  for (const p of splitPackets(inner)) {
    out.push(inner[offset]!);
    offset = p.body.byteOffset - inner.byteOffset + p.body.length;
  }
  return out;
}

/** The signature packet of a verified-or-not message, as openpgp.js parses it. */
async function signaturePacket(
  bytes: Uint8Array,
  key: openpgp.PublicKey,
): Promise<openpgp.SignaturePacket> {
  const message = await openpgp.readMessage({ binaryMessage: bytes });
  const result = await openpgp.verify({ message, verificationKeys: key, format: "binary" });
  return (await result.signatures[0]!.signature).packets[0]!;
}

function verifyCosign(sig: CosignArtifact, publicPem: string): boolean {
  return cryptoVerify(
    "sha256",
    sig.layer.bytes,
    createPublicKey(publicPem),
    Buffer.from(sig.signature, "base64"),
  );
}

function storeFile(
  store: "primary" | "secondary",
  digest: Digest,
  n: number,
): Uint8Array | undefined {
  return data.stores[store].get(`${storeDirName(digest)}/signature-${n}`)?.bytes;
}

function cosignOf(digest: Digest): CosignArtifact | undefined {
  return data.cosign.find((s) => s.subject === digest);
}

/** Every digest that gets a .sig: single-arch images, the multi release's images, the index. */
function signedDigests(r: ReleaseData): Digest[] {
  return [
    ...r.images.map((i) => i.manifest.digest),
    ...r.multi.children.map((i) => i.manifest.digest),
    r.multi.manifest.digest,
  ];
}

/** The shape of a JSON value: object keys in order, recursively; leaves by type. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => [k, shape(v)]);
  }
  return typeof value;
}

describe("the generated world", () => {
  it("has the default six good releases, each with two arches and a multi index", () => {
    expect(data.good.map((r) => r.version)).toEqual([
      "4.16.0",
      "4.16.1",
      "4.16.2",
      "4.16.3",
      "4.16.4",
      "4.16.5",
    ]);
    for (const r of data.good) {
      expect(Object.keys(r.tags).sort()).toEqual(
        [`${r.version}-aarch64`, `${r.version}-multi`, `${r.version}-x86_64`].sort(),
      );
      expect(r.digests.x86_64).toBe(r.tags[`${r.version}-x86_64`]);
      expect(r.digests.multi).toBe(r.multi.manifest.digest);
    }
  });

  it("has one release per case, with the names fixtures/README.md documents", () => {
    expect(Object.keys(data.cases).sort()).toEqual([...CASE_NAMES].sort());
    const versions = new Set(data.releases.map((r) => r.version));
    expect(versions.size).toBe(data.releases.length);
  });

  it("gives every manifest and blob a digest that is the sha256 of its bytes", () => {
    const content = registryContent(data);
    for (const m of content.manifests) expect(sha256Digest(m.bytes)).toBe(m.digest);
    for (const b of content.blobs) expect(sha256Digest(b.bytes)).toBe(b.digest);
  });

  it("mixes Docker schema 2 and OCI releases, with a Docker manifest list and an OCI index", () => {
    const docker = data.good.find((r) => r.format === "docker")!;
    const oci = data.good.find((r) => r.format === "oci")!;
    expect(docker.images[0]!.manifest.mediaType).toBe(MT.dockerManifest);
    expect(docker.multi.manifest.mediaType).toBe(MT.dockerList);
    const dockerJson = json(docker.images[0]!.manifest.bytes);
    expect(dockerJson.config.mediaType).toBe(MT.dockerConfig);
    expect(oci.images[0]!.manifest.mediaType).toBe(MT.ociManifest);
    expect(oci.multi.manifest.mediaType).toBe(MT.ociIndex);
  });

  it("names the multi release's per-arch manifests with their platforms", () => {
    for (const r of data.good) {
      const index = json(r.multi.manifest.bytes);
      expect(index.manifests.map((m) => [m.platform!.architecture, m.digest])).toEqual(
        r.multi.children.map((c) => [c.arch === "x86_64" ? "amd64" : "arm64", c.manifest.digest]),
      );
      // As in OCP, the multi payload's per-arch images are not the single-arch release images.
      for (const c of r.multi.children)
        expect(Object.values(r.tags)).not.toContain(c.manifest.digest);
    }
  });

  it("is deterministic: the same options give the same digests and signatures", async () => {
    const again = await generateWorldData({ keys });
    expect(again.releases.map((r) => r.tags)).toEqual(data.releases.map((r) => r.tags));
    for (const [path, file] of data.stores.primary) {
      expect(Buffer.from(again.stores.primary.get(path)!.bytes).equals(file.bytes)).toBe(true);
    }
    expect(again.cosign.map((s) => s.manifest.digest)).toEqual(
      data.cosign.map((s) => s.manifest.digest),
    );
  });
});

describe("OpenPGP signatures", () => {
  it("have the packet structure of Red Hat's: compressed data holding one-pass signature, literal data, signature", async () => {
    const realBytes = new Uint8Array(await readFile(REAL_SIGNATURE));
    const ours = storeFile("primary", data.good[0]!.digests.x86_64!, 1)!;
    const realTags = await packetTags(realBytes);
    expect(realTags).toEqual({
      outer: [PACKET_TAG.compressedData],
      inner: [PACKET_TAG.onePassSignature, PACKET_TAG.literalData, PACKET_TAG.signature],
    });
    expect(await packetTags(ours)).toEqual(realTags);
    // Byte-level framing too: old-format headers, indeterminate-length ZIP compressed packet.
    expect([...ours.subarray(0, 2)]).toEqual([...realBytes.subarray(0, 2)]);
    expect(innerHeaderBytes(ours)).toEqual(innerHeaderBytes(realBytes));
    expect(innerHeaderBytes(ours)).toEqual([0x90, 0xad, 0x89]);
  });

  it("are v4 RSA/SHA-256 signatures of binary literal data, like the real one", async () => {
    const sig = await signaturePacket(
      storeFile("primary", data.good[0]!.digests.x86_64!, 1)!,
      keys.openpgpTrusted.publicKey,
    );
    const realSig = await signaturePacket(
      new Uint8Array(await readFile(REAL_SIGNATURE)),
      await openpgp.readKey({
        armoredKey: await readFile(real("keys/redhat-release-key-2.asc"), "utf8"),
      }),
    );
    expect([sig.version, sig.publicKeyAlgorithm, sig.hashAlgorithm, sig.signatureType]).toEqual([
      realSig.version,
      realSig.publicKeyAlgorithm,
      realSig.hashAlgorithm,
      realSig.signatureType,
    ]);
    expect(sig.version).toBe(4);
    expect(sig.publicKeyAlgorithm).toBe(openpgp.enums.publicKey.rsaEncryptSign);
    expect(sig.hashAlgorithm).toBe(openpgp.enums.hash.sha256);
    expect(sig.signatureType).toBe(openpgp.enums.signature.binary);
    expect(sig.issuerKeyID.toHex().toUpperCase()).toBe(keys.openpgpTrusted.keyId);
  });

  it("verify with the trusted key and carry the atomic payload of the release digest", async () => {
    for (const r of data.good) {
      for (const [arch, digest] of Object.entries(r.digests)) {
        const payload = await verifyAtomic(
          storeFile("primary", digest, 1)!,
          keys.openpgpTrusted.publicKey,
        );
        expect(payload).toEqual({
          critical: {
            image: { "docker-manifest-digest": digest },
            type: "atomic container signature",
            identity: {
              "docker-reference": `quay.io/openshift-release-dev/ocp-release:${r.version}-${arch}`,
            },
          },
          optional: { creator: expect.any(String) },
        });
      }
    }
  });

  it("write the payload in the real one's JSON style and key order", async () => {
    const realPayload = Buffer.from(
      (
        await openpgp.readMessage({ binaryMessage: new Uint8Array(await readFile(REAL_SIGNATURE)) })
      ).getLiteralData() as Uint8Array,
    ).toString();
    const ours = Buffer.from(
      (
        await openpgp.readMessage({
          binaryMessage: storeFile("primary", data.good[0]!.digests.x86_64!, 1)!,
        })
      ).getLiteralData() as Uint8Array,
    ).toString();
    expect(shape(json<unknown>(ours))).toEqual(shape(json<unknown>(realPayload)));
    expect(ours.startsWith('{"critical": {"image": {"docker-manifest-digest": "sha256:')).toBe(
      true,
    );
    expect(
      realPayload.startsWith('{"critical": {"image": {"docker-manifest-digest": "sha256:'),
    ).toBe(true);
  });

  it("are in both stores, and some good releases also have a valid signature-2", async () => {
    let seconds = 0;
    for (const r of data.good) {
      for (const digest of Object.values(r.digests)) {
        const one = storeFile("primary", digest, 1)!;
        expect(storeFile("secondary", digest, 1)).toEqual(one);
        const two = storeFile("primary", digest, 2);
        if (two !== undefined) {
          seconds++;
          await verifyAtomic(two, keys.openpgpTrusted.publicKey);
        }
        expect(storeFile("primary", digest, 3)).toBeUndefined();
      }
    }
    expect(seconds).toBeGreaterThan(0);
  });
});

describe("cosign .sig artifacts", () => {
  it("exist for every per-arch digest and every index digest of the good releases", () => {
    for (const r of data.good) {
      for (const d of signedDigests(r)) {
        const sig = cosignOf(d);
        expect(sig, d).toBeDefined();
        expect(sig!.tag).toBe(sigTag(d));
      }
    }
  });

  it("have the real artifact's manifest, config and layer shapes", async () => {
    const index = json(await readFile(`${REAL_SIG_LAYOUT}/index.json`, "utf8"));
    const blob = (d: string): Promise<string> =>
      readFile(`${REAL_SIG_LAYOUT}/blobs/sha256/${d.slice("sha256:".length)}`, "utf8");
    const realManifest = json(await blob(index.manifests[0]!.digest));
    const realConfig = json(await blob(realManifest.config.digest));
    const realLayer = json(await blob(realManifest.layers[0]!.digest));
    // The real one also has a Rekor bundle annotation; ours are key-signed without Rekor.
    delete realManifest.layers[0]!.annotations!["dev.sigstore.cosign/bundle"];

    const sig = cosignOf(data.good[0]!.digests.x86_64!)!;
    const manifest = json(sig.manifest.bytes);
    expect(shape(manifest)).toEqual(shape(realManifest));
    expect(shape(json(sig.config.bytes))).toEqual(shape(realConfig));
    expect(shape(json(sig.layer.bytes))).toEqual(shape(realLayer));
    expect(manifest.mediaType).toBe(MT.ociManifest);
    expect(manifest.config.mediaType).toBe(MT.ociConfig);
    expect(manifest.layers[0]!.mediaType).toBe(MT.cosignSimpleSigning);
    expect(json(sig.config.bytes).rootfs.diff_ids).toEqual([sig.layer.digest]);
  });

  it("carry the simple-signing payload of their subject, identity the repository without tag", () => {
    for (const r of data.good) {
      for (const d of signedDigests(r)) {
        const sig = cosignOf(d)!;
        expect(json(sig.layer.bytes)).toEqual({
          critical: {
            identity: { "docker-reference": "quay.io/openshift-release-dev/ocp-release" },
            image: { "docker-manifest-digest": d },
            type: "cosign container image signature",
          },
          optional: null,
        });
      }
    }
  });

  it("verify with node:crypto: RSA PKCS#1 v1.5 for most releases, ECDSA P-256 for some", () => {
    const signers = new Set<string>();
    for (const r of data.good) {
      const key = r.cosignSigner === "sigstoreEcdsa" ? keys.sigstoreEcdsa : keys.sigstoreRsa;
      signers.add(r.cosignSigner!);
      for (const d of signedDigests(r)) {
        expect(verifyCosign(cosignOf(d)!, key.publicPem), `${r.version} ${d}`).toBe(true);
        expect(verifyCosign(cosignOf(d)!, keys.sigstoreUntrusted.publicPem)).toBe(false);
      }
    }
    expect(signers).toEqual(new Set(["sigstoreRsa", "sigstoreEcdsa"]));
    expect(data.good.filter((r) => r.cosignSigner === "sigstoreRsa").length).toBeGreaterThan(
      data.good.length / 2,
    );
  });

  it("match the real signature check: the real .sig verifies the same way with its key", async () => {
    const index = json(await readFile(`${REAL_SIG_LAYOUT}/index.json`, "utf8"));
    const blob = (d: string): Promise<Buffer> =>
      readFile(`${REAL_SIG_LAYOUT}/blobs/sha256/${d.slice("sha256:".length)}`);
    const manifest = json((await blob(index.manifests[0]!.digest)).toString());
    const layer = await blob(manifest.layers[0]!.digest);
    const pem = await readFile(
      real("cosign-sig-layouts/derived-cosign-pubkey-empty-image.pem"),
      "utf8",
    );
    const signature = Buffer.from(
      manifest.layers[0]!.annotations!["dev.cosignproject.cosign/signature"]!,
      "base64",
    );
    expect(cryptoVerify("sha256", layer, createPublicKey(pem), signature)).toBe(true);
  });
});

describe("the bad cases", () => {
  const release = (name: CaseName): ReleaseData => data.cases[name].release;
  const digestsOf = (name: CaseName): Digest[] => Object.values(release(name).digests);

  it("noSignature: no OpenPGP signature in either store, cosign fine", () => {
    for (const d of digestsOf("noSignature")) {
      expect(storeFile("primary", d, 1)).toBeUndefined();
      expect(storeFile("secondary", d, 1)).toBeUndefined();
    }
    for (const d of signedDigests(release("noSignature"))) {
      expect(verifyCosign(cosignOf(d)!, keys.sigstoreRsa.publicPem)).toBe(true);
    }
  });

  it("otherDigestSignature: a valid trusted signature whose payload names another digest", async () => {
    const r = release("otherDigestSignature");
    for (const [arch, d] of Object.entries(r.digests)) {
      const payload = await verifyAtomic(
        storeFile("primary", d, 1)!,
        keys.openpgpTrusted.publicKey,
      );
      expect(payload.critical.image["docker-manifest-digest"]).not.toBe(d);
      expect(payload.critical.image["docker-manifest-digest"]).toBe(data.good[0]!.digests[arch]);
    }
  });

  it("untrustedSignature: valid for the right digest, but only under the untrusted key", async () => {
    for (const d of digestsOf("untrustedSignature")) {
      const bytes = storeFile("primary", d, 1)!;
      await expect(verifyAtomic(bytes, keys.openpgpTrusted.publicKey)).rejects.toThrow();
      const payload = await verifyAtomic(bytes, keys.openpgpUntrusted.publicKey);
      expect(payload.critical.image["docker-manifest-digest"]).toBe(d);
    }
  });

  it("noSigstore: no .sig for any digest of the release, OpenPGP fine", async () => {
    const r = release("noSigstore");
    for (const d of signedDigests(r)) expect(cosignOf(d)).toBeUndefined();
    await verifyAtomic(storeFile("primary", r.digests.x86_64!, 1)!, keys.openpgpTrusted.publicKey);
  });

  it("garbageSecondSignature: signature-1 valid, signature-2 not OpenPGP at all", async () => {
    for (const d of digestsOf("garbageSecondSignature")) {
      await verifyAtomic(storeFile("primary", d, 1)!, keys.openpgpTrusted.publicKey);
      await expect(
        openpgp.readMessage({ binaryMessage: storeFile("primary", d, 2)! }),
      ).rejects.toThrow();
    }
  });

  it("validSecondOnly: signature-1 untrusted, signature-2 valid and trusted", async () => {
    for (const d of digestsOf("validSecondOnly")) {
      await expect(
        verifyAtomic(storeFile("primary", d, 1)!, keys.openpgpTrusted.publicKey),
      ).rejects.toThrow();
      const payload = await verifyAtomic(
        storeFile("primary", d, 2)!,
        keys.openpgpTrusted.publicKey,
      );
      expect(payload.critical.image["docker-manifest-digest"]).toBe(d);
    }
  });

  it("unknownPayloadField: valid and trusted, but critical has an unknown field", async () => {
    for (const d of digestsOf("unknownPayloadField")) {
      const payload = await verifyAtomic(
        storeFile("primary", d, 1)!,
        keys.openpgpTrusted.publicKey,
      );
      expect(Object.keys(payload.critical)).toEqual(["image", "type", "identity", "extra"]);
      expect(payload.critical.image["docker-manifest-digest"]).toBe(d);
    }
  });

  it("wrongPayloadType: valid and trusted, but not an atomic container signature", async () => {
    for (const d of digestsOf("wrongPayloadType")) {
      const payload = await verifyAtomic(
        storeFile("primary", d, 1)!,
        keys.openpgpTrusted.publicKey,
      );
      expect(payload.critical.type).not.toBe("atomic container signature");
    }
  });

  it("oversizedSignature: valid and trusted, but larger than the CVO's 50 KiB limit", async () => {
    for (const d of digestsOf("oversizedSignature")) {
      const bytes = storeFile("primary", d, 1)!;
      expect(bytes.length).toBeGreaterThan(50 * 1024);
      const payload = await verifyAtomic(bytes, keys.openpgpTrusted.publicKey);
      expect(payload.critical.image["docker-manifest-digest"]).toBe(d);
    }
  });

  it("tamperedSignature: parses, right digest and key id, but does not verify", async () => {
    for (const d of digestsOf("tamperedSignature")) {
      const bytes = storeFile("primary", d, 1)!;
      expect((await atomicPayloadOf(bytes)).critical.image["docker-manifest-digest"]).toBe(d);
      expect((await packetTags(bytes)).inner).toEqual([4, 11, 2]);
      await expect(verifyAtomic(bytes, keys.openpgpTrusted.publicKey)).rejects.toThrow();
    }
  });

  it("secondaryStoreOnly: only in the secondary store, and valid there", async () => {
    for (const d of digestsOf("secondaryStoreOnly")) {
      expect(storeFile("primary", d, 1)).toBeUndefined();
      await verifyAtomic(storeFile("secondary", d, 1)!, keys.openpgpTrusted.publicKey);
    }
  });

  it("sigstoreUntrusted: every .sig verifies only with the untrusted key", () => {
    for (const d of signedDigests(release("sigstoreUntrusted"))) {
      const sig = cosignOf(d)!;
      expect(verifyCosign(sig, keys.sigstoreUntrusted.publicPem)).toBe(true);
      expect(verifyCosign(sig, keys.sigstoreRsa.publicPem)).toBe(false);
      expect(verifyCosign(sig, keys.sigstoreEcdsa.publicPem)).toBe(false);
    }
  });

  it("sigstoreOtherDigest: every .sig is trusted but names another digest", () => {
    for (const d of signedDigests(release("sigstoreOtherDigest"))) {
      const sig = cosignOf(d)!;
      expect(sig.tag).toBe(sigTag(d));
      expect(verifyCosign(sig, keys.sigstoreRsa.publicPem)).toBe(true);
      const named = json<AtomicJson>(sig.layer.bytes).critical.image["docker-manifest-digest"];
      expect(named).not.toBe(d);
      expect(signedDigests(data.good[0]!)).toContain(named);
    }
  });

  it("are valid everywhere their case does not break", async () => {
    for (const name of CASE_NAMES) {
      const c = data.cases[name];
      if (
        c.expect.openpgp === "valid" &&
        name !== "secondaryStoreOnly" &&
        name !== "validSecondOnly"
      ) {
        await verifyAtomic(
          storeFile("primary", c.release.digests.x86_64!, 1)!,
          keys.openpgpTrusted.publicKey,
        );
      }
      if (c.expect.sigstore === "valid") {
        const key = keys[c.release.cosignSigner!];
        for (const d of signedDigests(c.release))
          expect(verifyCosign(cosignOf(d)!, key.publicPem)).toBe(true);
      }
    }
  });
});

describe("update graphs", () => {
  it("exist per channel and graph arch, with payloads that are the generated digests", () => {
    expect(Object.keys(data.graphs).sort()).toEqual(["candidate-4.16", "fast-4.16", "stable-4.16"]);
    const archOf = { amd64: "x86_64", arm64: "aarch64", multi: "multi" } as const;
    for (const [channel, byArch] of Object.entries(data.graphs)) {
      expect(Object.keys(byArch).sort(), channel).toEqual(["amd64", "arm64", "multi"]);
      for (const [ga, graph] of Object.entries(byArch)) {
        expect(graph.nodes.length).toBeGreaterThan(0);
        for (const node of graph.nodes) {
          const r = data.releases.find((x) => x.version === node.version)!;
          const digest = r.digests[archOf[ga as keyof typeof archOf]];
          expect(node.payload).toBe(`quay.io/openshift-release-dev/ocp-release@${digest}`);
          expect(node.metadata["io.openshift.upgrades.graph.release.manifestref"]).toBe(digest);
          expect(
            node.metadata["io.openshift.upgrades.graph.release.channels"]!.split(","),
          ).toContain(channel);
        }
        for (const [from, to] of graph.edges) {
          expect(graph.nodes[from]).toBeDefined();
          expect(graph.nodes[to]).toBeDefined();
        }
      }
    }
  });

  it("keep the bad cases out of stable and fast, and the newest release out of stable", () => {
    const versions = (channel: string): string[] =>
      data.graphs[channel]!.amd64!.nodes.map((n) => n.version).sort();
    const good = data.good.map((r) => r.version);
    expect(versions("fast-4.16")).toEqual([...good].sort());
    expect(versions("stable-4.16")).toEqual(good.slice(0, -1).sort());
    expect(versions("candidate-4.16")).toHaveLength(data.releases.length);
  });

  it("have one conditional edge with an Always risk, not also among the edges", () => {
    const g = data.graphs["stable-4.16"]!.amd64!;
    expect(g.conditionalEdges).toHaveLength(1);
    const [ce] = g.conditionalEdges;
    expect(ce!.risks[0]!.matchingRules).toEqual([{ type: "Always" }]);
    const { from, to } = ce!.edges[0]!;
    const idx = (v: string): number => g.nodes.findIndex((n) => n.version === v);
    expect(g.edges).not.toContainEqual([idx(from), idx(to)]);
    expect(g.edges).toContainEqual([idx("4.16.0"), idx("4.16.1")]);
  });

  it("have the real graph's document shape", async () => {
    const realGraph = json<GraphJson>(
      await readFile(real("cincinnati-graphs/stable-4.13-amd64.json"), "utf8"),
    );
    const g = data.graphs["stable-4.16"]!.amd64!;
    expect(Object.keys(g)).toEqual(Object.keys(realGraph));
    expect(Object.keys(g.nodes[0]!)).toEqual(Object.keys(realGraph.nodes[0]!));
    const realRisk = realGraph.conditionalEdges[0]!.risks[0]!;
    expect(Object.keys(g.conditionalEdges[0]!.risks[0]!)).toEqual(Object.keys(realRisk));
    expect(Object.keys(g.conditionalEdges[0]!.edges[0]!)).toEqual(
      Object.keys(realGraph.conditionalEdges[0]!.edges[0]!),
    );
  });

  it("handle a channel of one release (no edges)", () => {
    const g = buildGraph(
      [
        {
          version: "4.16.0",
          payloads: { amd64: data.good[0]!.digests.x86_64! },
          channels: ["x"],
          errata: "u",
        },
      ],
      "x",
      "amd64",
      "quay.io/openshift-release-dev/ocp-release",
    );
    expect(g).toMatchObject({ nodes: [{ version: "4.16.0" }], edges: [], conditionalEdges: [] });
  });
});

describe("test keys", () => {
  it("are cached as armored OpenPGP and PEM public key files", async () => {
    const files = await readdir(keys.dir);
    for (const f of [
      "openpgp-trusted.pub.asc",
      "openpgp-untrusted.pub.asc",
      "sigstore-rsa.pub.pem",
      "sigstore-ecdsa.pub.pem",
      "sigstore-untrusted.pub.pem",
    ]) {
      expect(files).toContain(f);
    }
    const trusted = await openpgp.readKey({
      armoredKey: await readFile(keys.openpgpTrusted.publicPath, "utf8"),
    });
    expect(trusted.getAlgorithmInfo()).toEqual({ algorithm: "rsaEncryptSign", bits: 4096 });
    expect(
      createPublicKey(await readFile(keys.sigstoreRsa.publicPath)).asymmetricKeyDetails
        ?.modulusLength,
    ).toBe(4096);
    expect(
      createPublicKey(await readFile(keys.sigstoreEcdsa.publicPath)).asymmetricKeyDetails
        ?.namedCurve,
    ).toBe("prime256v1");
  });

  it("load concurrently to the same set", async () => {
    const [a, b] = await Promise.all([loadTestKeys(), loadTestKeys()]);
    expect(a.openpgpTrusted.fingerprint).toBe(b.openpgpTrusted.fingerprint);
    expect(a.sigstoreRsa.fingerprint).toBe(keys.sigstoreRsa.fingerprint);
  });
});
