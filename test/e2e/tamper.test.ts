/**
 * Issue 3, "trust nothing that crossed the gap": one valid archive of the
 * world's good release (x86_64 and multi, so it holds every member kind) is
 * tampered with in every way we can think of, and `bundle verify` must catch
 * each one with the right code, exit code and the member named.
 *
 * Two attackers: a careless one who changes bytes and leaves the checksums
 * stale (caught by checksums.sha256 or the sidecar), and a careful one who
 * recomputes the checksum list and the sidecar (caught by the signatures, the
 * ConfigMap rules, the content addresses of blobs and the index rules).
 */
import { mkdtemp, readFile, rm, truncate, writeFile, copyFile } from "node:fs/promises";
import os from "node:os";
import { inflateRawSync } from "node:zlib";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCreate } from "../../src/commands/bundle-create.js";
import { MEMBER, type BundleIndex } from "../../src/core/bundle-index.js";
import { digestDashed, type Digest } from "../../src/core/digest.js";
import { EXIT } from "../../src/errors.js";
import { sidecarLine } from "../../src/core/checksums.js";
import { loadTestKeys, type TestKeys } from "../../fixtures/lib/keys.js";
import {
  atomicPayload,
  atomicSigner,
  compressedPacket,
  cosignSign,
  openpgpSignNative,
} from "../../fixtures/lib/signatures.js";
import {
  configMapYaml,
  flip,
  flipHexDigit,
  indexOf,
  offsetOf,
  patchTar,
  readMembers,
  resealSidecar,
  sha256Hex,
  text,
  utf8,
  verifyOutcome,
  withIndex,
  writeBundle,
  type Members,
  type Outcome,
} from "../helpers/bundle-tamper.js";
import { capture } from "../helpers/capture.js";
import { startWorld, type World } from "../world/index.js";

let world: World;
let keys: TestKeys;
let dir: string;
/** The good archive (.tar) and its members. */
let good: string;
let base: Members;
let index: BundleIndex;
/** Release digests: x86_64 and the multi index. */
let x86: Digest;
let multi: Digest;
let trust: { keyring: string[]; sigstoreKey: string[] };

/** Paths of one member of every kind. */
let kinds: Record<
  | "openpgp"
  | "sigManifest"
  | "layer"
  | "config"
  | "configMap"
  | "index"
  | "checksums"
  | "openpgpKey"
  | "sigstoreKey"
  | "layoutIndex"
  | "layoutMarker",
  string
>;

const blob = (d: string): string => `sigstore/blobs/sha256/${d.slice("sha256:".length)}`;
let n = 0;
const out = (name: string, ext = "tar"): string => path.join(dir, `${++n}-${name}.${ext}`);

beforeAll(async () => {
  world = await startWorld();
  keys = await loadTestKeys();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-e2e-tamper-"));
  trust = {
    keyring: [world.keys.openpgpTrusted],
    sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
  };
  const release = world.data.good[0]!;
  good = path.join(dir, "good.tar");
  const created = await runCreate(
    {
      releaseRepo: world.releaseRepo,
      plainHttp: true,
      signatureStore: [world.stores.primary, world.stores.secondary],
      ...trust,
      release: [release.version],
      arch: ["x86_64", "multi"],
      output: good,
      quiet: true,
    },
    capture({ quiet: true }).reporter,
  );
  expect(created?.ok).toBe(true);
  base = await readMembers(good);
  index = indexOf(base);
  x86 = release.digests.x86_64!;
  multi = release.digests.multi!;
  const art = index.sigstore.find((a) => a.digest === release.multi.children[0]!.manifest.digest)!;
  kinds = {
    openpgp: index.openpgp.find((e) => e.digest === x86)!.path,
    sigManifest: blob(art.manifest.digest),
    layer: blob(art.layers[0]!.digest),
    config: blob(art.config.digest),
    configMap: index.configMaps.find((c) => c.digest === x86)!.path,
    index: MEMBER.index,
    checksums: MEMBER.checksums,
    openpgpKey: index.keys.openpgp[0]!.path,
    sigstoreKey: index.keys.sigstore[0]!.path,
    layoutIndex: "sigstore/index.json",
    layoutMarker: "sigstore/oci-layout",
  };
});

afterAll(async () => {
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** verify with the world's keys. */
const verify = (file: string, opts = trust): Promise<Outcome> => verifyOutcome(file, opts);

/** The failed lines naming `member`, as [code, …]. */
function codesFor(o: Outcome, member: string): string[] {
  return o.failed.filter((l) => l.member === member).map((l) => l.code!);
}

/** Asserts a thrown integrity error: code, exit 5, and the member named in message and details. */
function expectThrown(o: Outcome, code: string, member: string): void {
  expect(o.error?.code).toBe(code);
  expect(o.exit).toBe(EXIT.CORRUPT);
  expect(o.error!.message).toContain(member);
  expect(o.error!.details.member).toBe(member);
}

/** Asserts a failed check line for `member` with `code`, whose message names the member. */
function expectLine(o: Outcome, code: string, member: string, exit: number = EXIT.CORRUPT): void {
  expect(o.error).toBeUndefined();
  const line = o.failed.find((l) => l.member === member && l.code === code);
  expect(line, `no ${code} line for ${member} in ${JSON.stringify(o.failed)}`).toBeDefined();
  expect(line!.message).toContain(member);
  expect(o.exit).toBe(exit);
}

describe("the untouched archive", () => {
  it("holds one member of every kind and verifies with the world's keys", async () => {
    for (const p of Object.values(kinds)) expect(base.has(p), p).toBe(true);
    expect(index.releases.map((r) => r.arch).sort()).toEqual(["multi", "x86_64"]);
    const o = await verify(good);
    expect(o.failed).toEqual([]);
    expect(o.exit).toBe(EXIT.OK);
    expect(new Set(o.lines.map((l) => l.kind))).toEqual(
      new Set(["openpgp", "sigstore", "configmap", "key", "layout", "member", "release"]),
    );
  });

  it("still verifies after a read and rewrite with recomputed checksums (the tamper tools change nothing by themselves)", async () => {
    const o = await verify(await writeBundle(out("rewritten"), base));
    expect(o.failed).toEqual([]);
  });
});

describe("one byte flipped, checksums left stale", () => {
  const cases: [keyof typeof kinds, number][] = [
    ["openpgp", -1],
    ["sigManifest", 40],
    ["layer", 20],
    ["config", 10],
    ["configMap", -5],
    ["index", 30],
    ["openpgpKey", 100],
    ["sigstoreKey", 40],
    ["layoutIndex", 20],
    ["layoutMarker", 5],
  ];
  for (const [kind, at] of cases) {
    it(`a flipped byte in the ${kind} member fails with CHECKSUM_MISMATCH naming it (exit 5)`, async () => {
      const member = kinds[kind];
      const file = out(`stale-${kind}`);
      await patchTar(good, file, base.get(member)!, at, { reseal: true });
      expectThrown(await verify(file), "CHECKSUM_MISMATCH", member);
    });
  }

  it("a flipped hex digit in checksums.sha256 fails with CHECKSUM_MISMATCH naming the member of that line", async () => {
    const list = base.get(MEMBER.checksums)!;
    const line = text(list)
      .split("\n")
      .findIndex((l) => l.endsWith(`  ${kinds.configMap}`));
    const lineStart = text(list)
      .split("\n")
      .slice(0, line)
      .reduce((sum, l) => sum + l.length + 1, 0);
    const file = out("stale-checksums");
    // Raw patch: the list itself is not listed, so only the member of the changed line disagrees.
    const tar = await readFile(good);
    const at = tar.indexOf(Buffer.from(list)) + lineStart + 7;
    await writeFile(file, flipHexDigit(tar, at));
    await resealSidecar(file);
    expectThrown(await verify(file), "CHECKSUM_MISMATCH", kinds.configMap);
  });

  it("with the sidecar left stale too, the sidecar catches it first and names the archive", async () => {
    const file = out("stale-sidecar");
    await patchTar(good, file, base.get(kinds.openpgp)!, -1);
    const o = await verify(file);
    expect(o.error?.code).toBe("CHECKSUM_MISMATCH");
    expect(o.exit).toBe(EXIT.CORRUPT);
    expect(o.error!.message).toContain(`${file}.sha256`);
    expect(o.error!.details.member).toBe(path.basename(file));
  });

  it("without a sidecar the checksum list still catches it", async () => {
    const file = out("no-sidecar");
    await patchTar(good, file, base.get(kinds.layer)!, 0);
    await rm(`${file}.sha256`);
    expectThrown(await verify(file), "CHECKSUM_MISMATCH", kinds.layer);
  });

  it("a flipped byte inside a .tar.gz is refused by gzip's own check (exit 5), never read as members", async () => {
    const gz = await writeBundle(out("good", "tar.gz"), base);
    const bytes = await readFile(gz);
    for (const at of [
      20,
      Math.floor(bytes.length / 3),
      Math.floor(bytes.length / 2),
      bytes.length - 12,
    ]) {
      const file = out(`gz-flip-${at}`, "tar.gz");
      await writeFile(file, flip(bytes, at, 0x10));
      await resealSidecar(file);
      const o = await verify(file);
      expect(o.error?.code, `offset ${at}`).toMatch(
        /^(ARCHIVE_CORRUPT|ARCHIVE_TRUNCATED|ARCHIVE_HOSTILE|CHECKSUM_MISMATCH)$/,
      );
      expect(o.exit).toBe(EXIT.CORRUPT);
      expect(o.error!.message).toContain(file);
    }
  });
});

describe("one byte flipped, checksum list and sidecar recomputed (an attacker who re-hashes)", () => {
  /** Writes `members` re-hashed and returns the verify outcome. */
  const rehashed = async (name: string, members: Members): Promise<Outcome> =>
    verify(await writeBundle(out(name), members));
  const changed = (member: string, bytes: Uint8Array): Members => new Map(base).set(member, bytes);

  it("an OpenPGP signature: SIGNATURE_INVALID on it, and CONFIGMAP_MISMATCH on the ConfigMap still holding the original", async () => {
    const o = await rehashed("sig", changed(kinds.openpgp, flip(base.get(kinds.openpgp)!, -1)));
    expectLine(o, "SIGNATURE_INVALID", kinds.openpgp);
    expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
  });

  it("an OpenPGP signature whose RSA value has a flipped byte, re-compressed so it still parses: SIGNATURE_INVALID", async () => {
    const sig = base.get(kinds.openpgp)!;
    // gpg's shape: a compressed-data packet (0xa3 0x01, raw deflate) around the signed packets.
    const inner = inflateRawSync(sig.subarray(2));
    const bad = compressedPacket(flip(inner, -1));
    const members = changed(kinds.openpgp, bad).set(kinds.configMap, configMapYaml(x86, [bad]));
    const o = await rehashed("sig-value", members);
    expectLine(o, "SIGNATURE_INVALID", kinds.openpgp);
    expect(o.failed.find((l) => l.member === kinds.openpgp)!.message).toMatch(/does not verify/);
  });

  it("an OpenPGP signature with its ConfigMap rebuilt to match: still SIGNATURE_INVALID", async () => {
    const bad = flip(base.get(kinds.openpgp)!, -1);
    const members = changed(kinds.openpgp, bad).set(kinds.configMap, configMapYaml(x86, [bad]));
    const o = await rehashed("sig-and-cm", members);
    expectLine(o, "SIGNATURE_INVALID", kinds.openpgp);
    expect(codesFor(o, kinds.configMap)).toEqual([]);
    // The release has no verified OpenPGP signature left.
    expect(o.failed.some((l) => l.kind === "release" && l.digest === x86)).toBe(true);
  });

  it("a .sig manifest: DIGEST_MISMATCH, the blob no longer hashes to its name", async () => {
    const bytes = base.get(kinds.sigManifest)!;
    const o = await rehashed(
      "manifest",
      changed(kinds.sigManifest, flip(bytes, offsetOf(bytes, "annotations") + 3)),
    );
    expectLine(o, "DIGEST_MISMATCH", kinds.sigManifest);
    expect(o.failed.some((l) => l.kind === "sigstore" && l.code === "DIGEST_MISMATCH")).toBe(true);
  });

  it("a layer blob (the signed payload): DIGEST_MISMATCH naming the layer", async () => {
    const o = await rehashed("layer", changed(kinds.layer, flip(base.get(kinds.layer)!, 20)));
    expectLine(o, "DIGEST_MISMATCH", kinds.layer);
  });

  it("REPORT.md (what a reviewer reads on the ticket): INDEX_INVALID naming it", async () => {
    const report = base.get("REPORT.md")!;
    const o = await rehashed(
      "report",
      changed("REPORT.md", flip(report, offsetOf(report, "sha256:") + 12)),
    );
    expectLine(o, "INDEX_INVALID", "REPORT.md");
  });

  it("the config blob: DIGEST_MISMATCH naming the config", async () => {
    const o = await rehashed("config", changed(kinds.config, flip(base.get(kinds.config)!, 10)));
    expectLine(o, "DIGEST_MISMATCH", kinds.config);
  });

  it("a ConfigMap (a byte of the base64 signature): CONFIGMAP_MISMATCH naming it", async () => {
    const cm = base.get(kinds.configMap)!;
    const at = offsetOf(cm, `${digestDashed(x86)}-1: `) + `${digestDashed(x86)}-1: `.length + 10;
    const o = await rehashed("configmap", changed(kinds.configMap, flip(cm, at)));
    expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
  });

  it("flipping a hex digit keeps its kind and case, so a flipped fingerprint is still well-formed", () => {
    for (const hex of ["0123456789ABCDEF", "0123456789abcdef"]) {
      const bytes = utf8(hex);
      for (let at = 0; at < hex.length; at++) {
        const flipped = text(flipHexDigit(bytes, at));
        expect(flipped[at]).not.toBe(hex[at]);
        expect(flipped).toMatch(hex === hex.toUpperCase() ? /^[0-9A-F]+$/ : /^[0-9a-f]+$/);
      }
    }
  });

  it("index.json (a digit of a recorded signer): INDEX_INVALID naming index.json", async () => {
    const bytes = base.get(MEMBER.index)!;
    const at = offsetOf(bytes, '"signer": "') + '"signer": "'.length + 3;
    const o = await rehashed("index-signer", changed(MEMBER.index, flipHexDigit(bytes, at)));
    const line = o.failed.find((l) => l.code === "INDEX_INVALID");
    expect(line?.message).toContain("index.json");
    expect(o.exit).toBe(EXIT.CORRUPT);
  });

  it("index.json (a byte that breaks the JSON): INDEX_INVALID thrown, naming index.json", async () => {
    const bytes = base.get(MEMBER.index)!;
    const o = await rehashed("index-json", changed(MEMBER.index, flip(bytes, 0, 0x7b ^ 0x5b)));
    expectThrown(o, "INDEX_INVALID", MEMBER.index);
  });

  it("checksums.sha256 (one hex digit) with the sidecar recomputed: CHECKSUM_MISMATCH naming that line's member", async () => {
    const list = base.get(MEMBER.checksums)!;
    const at = offsetOf(list, `  ${kinds.layer}\n`) - 10;
    const members = changed(MEMBER.checksums, flipHexDigit(list, at));
    const file = await writeBundle(out("checksums"), members, { keepChecksums: true });
    expectThrown(await verify(file), "CHECKSUM_MISMATCH", kinds.layer);
  });

  it("an OpenPGP key file (a byte of the key material): INDEX_INVALID naming the key", async () => {
    const key = base.get(kinds.openpgpKey)!;
    const at = offsetOf(key, "\n\n") + 40;
    const o = await rehashed("openpgp-key", changed(kinds.openpgpKey, flip(key, at, 0x02)));
    expectLine(o, "INDEX_INVALID", kinds.openpgpKey);
  });

  it("an OpenPGP key file (a byte of its user ID self-certification): INDEX_INVALID naming the key", async () => {
    const key = base.get(kinds.openpgpKey)!;
    // Past the public-key packet (about 700 base64 characters for RSA-4096): the user ID and its signature.
    const at = offsetOf(key, "\n\n") + 900;
    const o = await rehashed("openpgp-key-sig", changed(kinds.openpgpKey, flip(key, at, 0x02)));
    expectLine(o, "INDEX_INVALID", kinds.openpgpKey);
  });

  it("a sigstore key file: INDEX_INVALID naming the key", async () => {
    const key = base.get(kinds.sigstoreKey)!;
    const at = offsetOf(key, "\n") + 40;
    const o = await rehashed("sigstore-key", changed(kinds.sigstoreKey, flip(key, at, 0x02)));
    expectLine(o, "INDEX_INVALID", kinds.sigstoreKey);
  });

  it("the OCI layout index (a digit of a manifest digest): INDEX_INVALID naming sigstore/index.json", async () => {
    const bytes = base.get(kinds.layoutIndex)!;
    const at = offsetOf(bytes, '"digest": "sha256:') + '"digest": "sha256:'.length + 5;
    const o = await rehashed("layout-index", changed(kinds.layoutIndex, flipHexDigit(bytes, at)));
    expectLine(o, "INDEX_INVALID", kinds.layoutIndex);
  });

  it("the oci-layout marker: INDEX_INVALID naming it", async () => {
    const bytes = base.get(kinds.layoutMarker)!;
    const o = await rehashed(
      "layout-marker",
      changed(kinds.layoutMarker, flip(bytes, offsetOf(bytes, "1.0.0") + 4)),
    );
    expectLine(o, "INDEX_INVALID", kinds.layoutMarker);
  });
});

describe("attacks that keep every checksum consistent", () => {
  const rehashed = async (name: string, members: Members, opts = trust): Promise<Outcome> =>
    verifyOutcome(await writeBundle(out(name), members), opts);

  /** A valid atomic signature over the x86_64 release by `key`, as gpg shapes them. */
  async function atomicBy(
    key: TestKeys["openpgpUntrusted"],
    digest: Digest,
    identity: string,
  ): Promise<Uint8Array> {
    const payload = atomicPayload({ digest, dockerReference: identity, creator: "attacker 0.0.1" });
    return compressedPacket(
      await openpgpSignNative(payload, atomicSigner(key), new Date("2024-06-02T00:00:00Z")),
    );
  }

  /**
   * Rewrites one `.sig` manifest with `mutate`, renaming its blob and updating
   * index.json and the OCI layout index so every digest and size is consistent.
   */
  function rewriteManifest(
    members: Members,
    art: BundleIndex["sigstore"][number],
    mutate: (m: { layers: { annotations: Record<string, string> }[] }) => void,
  ): Members {
    const oldPath = blob(art.manifest.digest);
    const manifest = JSON.parse(text(members.get(oldPath)!)) as {
      layers: { annotations: Record<string, string> }[];
    };
    mutate(manifest);
    const bytes = utf8(JSON.stringify(manifest));
    const digest: Digest = `sha256:${sha256Hex(bytes)}`;
    const next = withIndex(members, (ix) => {
      const e = ix.sigstore.find((a) => a.tag === art.tag)!;
      e.manifest = { ...e.manifest, digest, size: bytes.length };
    });
    next.delete(oldPath);
    next.set(blob(digest), bytes);
    const layout = JSON.parse(text(next.get("sigstore/index.json")!)) as {
      manifests: { digest: string; size: number; annotations: Record<string, string> }[];
    };
    const entry = layout.manifests.find(
      (m) => m.annotations["org.opencontainers.image.ref.name"] === art.tag,
    )!;
    entry.digest = digest;
    entry.size = bytes.length;
    next.set("sigstore/index.json", utf8(`${JSON.stringify(layout, null, 2)}\n`));
    return next;
  }

  it("an OpenPGP signature re-made with the attacker's own key (ConfigMap rebuilt): UNTRUSTED_SIGNER, exit 6", async () => {
    const entry = index.openpgp.find((e) => e.digest === x86)!;
    const forged = await atomicBy(keys.openpgpUntrusted, x86, entry.identity);
    const members = new Map(base)
      .set(entry.path, forged)
      .set(kinds.configMap, configMapYaml(x86, [forged]));
    const o = await rehashed("resigned-openpgp", members);
    expectLine(o, "UNTRUSTED_SIGNER", entry.path, EXIT.UNTRUSTED);
    expect(new Set(o.failed.map((l) => l.code))).toEqual(
      new Set(["UNTRUSTED_SIGNER", "SIGNATURE_MISSING"]),
    );
  });

  it("…and carrying the attacker's key in the archive, recorded in the index, does not make it trusted (exit 6)", async () => {
    const entry = index.openpgp.find((e) => e.digest === x86)!;
    const forged = await atomicBy(keys.openpgpUntrusted, x86, entry.identity);
    const fpr = keys.openpgpUntrusted.fingerprint;
    const keyPath = `keys/openpgp/${fpr}.asc`;
    const members = withIndex(
      new Map(base).set(entry.path, forged).set(kinds.configMap, configMapYaml(x86, [forged])),
      (ix) => {
        ix.openpgp.find((e) => e.path === entry.path)!.signer = fpr;
        ix.keys.openpgp.push({
          fingerprint: fpr,
          path: keyPath,
          userIds: keys.openpgpUntrusted.publicKey.getUserIDs(),
        });
      },
    ).set(keyPath, utf8(keys.openpgpUntrusted.armoredPublic));
    const o = await rehashed("resigned-openpgp-carried", members);
    expectLine(o, "UNTRUSTED_SIGNER", entry.path, EXIT.UNTRUSTED);
    // The planted key itself is intact and recorded: only its trust is refused.
    expect(codesFor(o, keyPath)).toEqual([]);
  });

  it("a .sig layer re-signed with the attacker's sigstore key, key carried and recorded: UNTRUSTED_SIGNER, exit 6", async () => {
    const art = index.sigstore[0]!;
    const payload = base.get(blob(art.layers[0]!.digest))!;
    const signature = Buffer.from(
      await cosignSign(payload, keys.sigstoreUntrusted.privateKey),
    ).toString("base64");
    const id = keys.sigstoreUntrusted.fingerprint;
    const keyPath = `keys/sigstore/${id}.pem`;
    const members = withIndex(
      rewriteManifest(base, art, (m) => {
        m.layers[0]!.annotations["dev.cosignproject.cosign/signature"] = signature;
      }),
      (ix) => ix.keys.sigstore.push({ id, path: keyPath, algorithm: "ecdsa-p256" }),
    ).set(keyPath, utf8(keys.sigstoreUntrusted.publicPem));
    const o = await rehashed("resigned-sigstore-carried", members);
    const line = o.failed.find((l) => l.kind === "sigstore" && l.digest === art.digest);
    expect(line?.code).toBe("UNTRUSTED_SIGNER");
    expect(line?.message).toContain(art.tag);
    expect(o.exit).toBe(EXIT.UNTRUSTED);
  });

  it("…and without carrying the key, a signature no trusted key verifies is SIGNATURE_INVALID (exit 5)", async () => {
    const art = index.sigstore[0]!;
    const payload = base.get(blob(art.layers[0]!.digest))!;
    const signature = Buffer.from(
      await cosignSign(payload, keys.sigstoreUntrusted.privateKey),
    ).toString("base64");
    const members = rewriteManifest(base, art, (m) => {
      m.layers[0]!.annotations["dev.cosignproject.cosign/signature"] = signature;
    });
    const o = await rehashed("resigned-sigstore", members);
    const line = o.failed.find((l) => l.kind === "sigstore" && l.digest === art.digest);
    expect(line?.code).toBe("SIGNATURE_INVALID");
    expect(line?.message).toContain(blob(art.layers[0]!.digest));
    expect(o.exit).toBe(EXIT.CORRUPT);
  });

  it("a changed signed payload with every digest, name and size recomputed: SIGNATURE_INVALID naming the layer", async () => {
    const art = index.sigstore[0]!;
    const oldLayer = blob(art.layers[0]!.digest);
    const payload = text(base.get(oldLayer)!).replace('"optional":null', '"optional":{"a":1}');
    const bytes = utf8(payload);
    const digest: Digest = `sha256:${sha256Hex(bytes)}`;
    let members = new Map(base);
    members.delete(oldLayer);
    members.set(blob(digest), bytes);
    members = rewriteManifest(members, art, (m) => {
      const l = m.layers[0]! as unknown as { digest: string; size: number };
      l.digest = digest;
      l.size = bytes.length;
    });
    members = withIndex(members, (ix) => {
      const e = ix.sigstore.find((a) => a.tag === art.tag)!;
      e.layers[0] = { ...e.layers[0]!, digest, size: bytes.length };
    });
    const o = await rehashed("payload", members);
    const line = o.failed.find((l) => l.kind === "sigstore" && l.digest === art.digest);
    expect(line?.code).toBe("SIGNATURE_INVALID");
    expect(line?.message).toContain(blob(digest));
    expect(o.exit).toBe(EXIT.CORRUPT);
  });

  it("a valid signature of release A filed under release B's digest (ConfigMap rebuilt): SIGNATURE_DIGEST_MISMATCH naming B's member", async () => {
    const a = base.get(kinds.openpgp)!;
    const bPath = index.openpgp.find((e) => e.digest === multi)!.path;
    const bCm = index.configMaps.find((c) => c.digest === multi)!.path;
    const members = new Map(base).set(bPath, a).set(bCm, configMapYaml(multi, [a]));
    const o = await rehashed("swapped", members);
    expectLine(o, "SIGNATURE_DIGEST_MISMATCH", bPath);
    expect(o.failed.find((l) => l.member === bPath)!.message).toContain(x86);
  });

  describe("a ConfigMap with an extra binaryData key", () => {
    /** Adds `key: base64(value)` to the x86_64 ConfigMap; with `recorded`, index.json lists the key too. */
    const extra = async (
      name: string,
      key: string,
      value: Uint8Array,
      recorded = false,
    ): Promise<Outcome> => {
      const cm = text(base.get(kinds.configMap)!);
      const yaml = `${cm.trimEnd()}\n  ${key}: ${Buffer.from(value).toString("base64")}\n`;
      const members = new Map(base).set(kinds.configMap, utf8(yaml));
      return rehashed(
        name,
        recorded
          ? withIndex(members, (ix) => {
              ix.configMaps.find((c) => c.digest === x86)!.keys.push(key);
            })
          : members,
      );
    };

    it("recorded in index.json too: CONFIGMAP_MISMATCH, it holds more values than the bundle carries signatures", async () => {
      const o = await extra(
        "cm-dup-recorded",
        `${digestDashed(x86)}-2`,
        base.get(kinds.openpgp)!,
        true,
      );
      expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
      expect(o.failed.find((l) => l.member === kinds.configMap)!.message).toMatch(/holds 2 value/);
    });

    it("holding a second copy of the carried signature: CONFIGMAP_MISMATCH", async () => {
      const o = await extra("cm-dup", `${digestDashed(x86)}-2`, base.get(kinds.openpgp)!);
      expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
    });

    it("holding another release's valid signature under this digest's prefix: CONFIGMAP_MISMATCH", async () => {
      const other = base.get(index.openpgp.find((e) => e.digest === multi)!.path)!;
      const o = await extra("cm-other", `${digestDashed(x86)}-2`, other);
      expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
    });

    it("holding a key for another digest: CONFIGMAP_MISMATCH", async () => {
      const o = await extra("cm-foreign", `${digestDashed(multi)}-1`, base.get(kinds.openpgp)!);
      expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
    });
  });

  it("an index that adds a release with no signature: INDEX_INVALID naming index.json (exit 5)", async () => {
    const fake: Digest = `sha256:${"ab".repeat(32)}`;
    const members = withIndex(base, (ix) => {
      ix.releases.push({
        version: "4.16.99",
        arch: "x86_64",
        tag: "4.16.99-x86_64",
        digest: fake,
        mediaType: ix.releases[0]!.mediaType,
        resolvedBy: "tag",
      });
    });
    const o = await rehashed("extra-release", members);
    const line = o.failed.find((l) => l.kind === "release" && l.digest === fake);
    expect(line?.code).toBe("INDEX_INVALID");
    expect(line?.message).toContain("index.json");
    expect(o.exit).toBe(EXIT.CORRUPT);
  });

  it("…recorded as missing (what --keep-going writes): SIGNATURE_MISSING, exit 4", async () => {
    const fake: Digest = `sha256:${"cd".repeat(32)}`;
    const members = withIndex(base, (ix) => {
      ix.releases.push({
        version: "4.16.99",
        arch: "x86_64",
        digest: fake,
        mediaType: ix.releases[0]!.mediaType,
        resolvedBy: "digest",
      });
      for (const kind of ["openpgp", "sigstore"] as const)
        ix.missing.push({
          kind,
          digest: fake,
          release: "4.16.99 (x86_64)",
          code: "SIGNATURE_MISSING",
          reason: "none found",
          tried: [],
        });
    });
    const o = await rehashed("missing-release", members);
    expect(o.failed.map((l) => [l.kind, l.code])).toEqual([["release", "SIGNATURE_MISSING"]]);
    expect(o.exit).toBe(EXIT.SIGNATURE);
  });

  it("a ConfigMap dropped with its index entry: CONFIGMAP_MISMATCH, the signature would never reach the CVO", async () => {
    const members = withIndex(base, (ix) => {
      ix.configMaps = ix.configMaps.filter((c) => c.digest !== x86);
    });
    members.delete(kinds.configMap);
    const o = await rehashed("no-configmap", members);
    expectLine(o, "CONFIGMAP_MISMATCH", kinds.configMap);
  });

  it("an extra member listed in the checksums but not in the index: INDEX_INVALID naming it", async () => {
    const o = await rehashed(
      "extra-member",
      new Map(base).set("openpgp/evil.sh", utf8("#!/bin/sh\n")),
    );
    expectLine(o, "INDEX_INVALID", "openpgp/evil.sh");
  });

  it("a key file replaced by another key, index unchanged: INDEX_INVALID naming the key", async () => {
    const o = await rehashed(
      "swapped-key",
      new Map(base).set(kinds.openpgpKey, utf8(keys.openpgpUntrusted.armoredPublic)),
    );
    expectLine(o, "INDEX_INVALID", kinds.openpgpKey);
    expect(o.failed.find((l) => l.member === kinds.openpgpKey)!.message).toContain(
      keys.openpgpUntrusted.fingerprint,
    );
  });

  it("a key filed under another fingerprint's name in the index: INDEX_INVALID thrown, naming index.json", async () => {
    const other = `keys/openpgp/${keys.openpgpUntrusted.fingerprint}.asc`;
    const members = withIndex(base, (ix) => {
      ix.keys.openpgp[0]!.path = other;
    }).set(other, base.get(kinds.openpgpKey)!);
    members.delete(kinds.openpgpKey);
    expectThrown(await rehashed("misfiled-key", members), "INDEX_INVALID", MEMBER.index);
  });
});

describe("truncated archives", () => {
  for (const ext of ["tar", "tar.gz"]) {
    it(`a .${ext} cut at any of several offsets fails with ARCHIVE_TRUNCATED or ARCHIVE_CORRUPT naming the file (exit 5)`, async () => {
      const whole = ext === "tar" ? good : await writeBundle(out("whole", ext), base);
      const bytes = await readFile(whole);
      const size = bytes.length;
      const wholeSha = sha256Hex(bytes);
      const offsets = [
        0,
        1,
        10,
        511,
        512,
        1000,
        Math.floor(size / 3),
        Math.floor(size / 2),
        size - 1025,
        size - 512,
        size - 1,
      ];
      for (const at of offsets) {
        const file = out(`cut-${at}`, ext);
        await copyFile(whole, file);
        await truncate(file, at);
        // The sidecar of the whole archive travels with the cut copy, as it would.
        await writeFile(`${file}.sha256`, sidecarLine(wholeSha, path.basename(file)));
        const o = await verify(file);
        expect(o.error?.code, `cut at ${at} of ${size}`).toMatch(/^ARCHIVE_(TRUNCATED|CORRUPT)$/);
        expect(o.exit).toBe(EXIT.CORRUPT);
        expect(o.error!.message).toContain(path.basename(file));
      }
    });
  }
});

describe("the sidecar", () => {
  it("a sidecar holding another hash: CHECKSUM_MISMATCH naming the archive", async () => {
    const file = out("sidecar-hash");
    await copyFile(good, file);
    await writeFile(`${file}.sha256`, `${"0".repeat(64)}  ${path.basename(file)}\n`);
    const o = await verify(file);
    expect(o.error?.code).toBe("CHECKSUM_MISMATCH");
    expect(o.exit).toBe(EXIT.CORRUPT);
    expect(o.error!.message).toContain(file);
  });

  it("a sidecar naming another file: CHECKSUM_MISMATCH", async () => {
    const file = out("sidecar-name");
    await copyFile(good, file);
    await writeFile(`${file}.sha256`, `${sha256Hex(await readFile(file))}  other.tar\n`);
    const o = await verify(file);
    expect(o.error?.code).toBe("CHECKSUM_MISMATCH");
    expect(o.exit).toBe(EXIT.CORRUPT);
    expect(o.error!.message).toContain("other.tar");
  });
});
