/**
 * Bundles built from REAL published material, read in place from ../shared/real
 * (never copied into the project): the OCP 4.15.0 x86_64 release signature by
 * Red Hat release key 2, and real cosign `.sig` artifacts with the keys that
 * made them. Nobody can make a registry serve a manifest with 4.15.0's digest,
 * so the archives come from the pure assembler (what `bundle create` calls
 * once it has verified everything), fed with the verifier's own results; then
 * the real binary verifies them.
 */
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemberStore } from "../../src/archive/member-store.js";
import { writeArchive } from "../../src/archive/writer.js";
import {
  assembleBundle,
  type AssembleInput,
  type CollectedSigstore,
} from "../../src/core/bundle.js";
import type { BundlePlatformManifest, BundleRelease } from "../../src/core/bundle-index.js";
import { digestDashed, type Digest } from "../../src/core/digest.js";
import { REDHAT_BETA_KEY_2, REDHAT_RELEASE_KEY_2 } from "../../src/core/trust.js";
import { EXIT } from "../../src/errors.js";
import { loadOpenPgpKeys, verifyAtomicSignature } from "../../src/verify/openpgp.js";
import {
  OCI_MANIFEST_MEDIA_TYPE,
  loadSigstoreKey,
  verifySigArtifact,
  type SigArtifact,
} from "../../src/verify/sigstore.js";
import {
  flip,
  indexOf,
  readMembers,
  sha256Hex,
  text,
  utf8,
  verifyOutcome,
  withIndex,
  writeBundle,
  type Members,
} from "../helpers/bundle-tamper.js";
import { runCli } from "../helpers/cli.js";
import { real } from "../helpers/paths.js";

const DIGEST_4150: Digest =
  "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363";
const STORE = "https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release";
const SIGNATURE = real("gpg-signatures/store", `sha256=${DIGEST_4150.slice(7)}`, "signature-1");
const RELEASE_KEY_2 = real("keys/redhat-release-key-2.asc");
const BETA_KEY_2 = real("keys/redhat-beta-key-2.asc");
const CI_KEY_4 = real("keys/openshift-ci-key-4.asc");
const LAYOUTS = real("cosign-sig-layouts");
const CREATED = new Date("2024-02-27T00:00:00Z");

let dir: string;
/** The 4.15.0 archive and its members. */
let ocp: string;
let ocpMembers: Members;

const blob = (d: string): string => `sigstore/blobs/sha256/${d.slice("sha256:".length)}`;

/** What `bundle create` would give the assembler, minus what a test leaves out. */
function input(parts: Partial<AssembleInput>): AssembleInput {
  return {
    toolVersion: "0.0.0-real-data-test",
    createdAt: CREATED,
    selection: {},
    sources: { releaseRepo: "quay.io/openshift-release-dev/ocp-release", signatureStores: [STORE] },
    required: [],
    releases: [],
    openpgp: [],
    sigstore: [],
    keys: { openpgp: [], sigstore: [] },
    rejected: [],
    missing: [],
    ...parts,
  };
}

/** Every archive `write` made, with its input (to assemble it again another way). */
const assembled = new Map<string, AssembleInput>();

async function write(file: string, parts: Partial<AssembleInput>): Promise<string> {
  const { members } = assembleBundle(input(parts));
  await writeArchive(file, members, { mtime: CREATED });
  assembled.set(file, input(parts));
  return file;
}

/** Reads a real OCI layout holding one `.sig` manifest. */
async function sigLayout(name: string): Promise<SigArtifact> {
  const root = path.join(LAYOUTS, name);
  const layout = JSON.parse(await readFile(path.join(root, "index.json"), "utf8")) as {
    manifests: { digest: Digest }[];
  };
  const manifestDigest = layout.manifests[0]!.digest;
  const blobs = new Map<string, Uint8Array>();
  for (const f of await readdir(path.join(root, "blobs/sha256")))
    blobs.set(`sha256:${f}`, new Uint8Array(await readFile(path.join(root, "blobs/sha256", f))));
  const manifestBytes = blobs.get(manifestDigest)!;
  blobs.delete(manifestDigest);
  return { manifestBytes, manifestDigest, blobs };
}

/** Verifies a real `.sig` with its key and turns the result into assembler input, as create does. */
function collected(
  artifact: SigArtifact,
  subject: Digest,
  key: ReturnType<typeof loadSigstoreKey>,
): CollectedSigstore {
  const v = verifySigArtifact(artifact, subject, { kind: "PublicKey", keys: [key] });
  expect(v.failures).toEqual([]);
  return {
    digest: subject,
    manifestBytes: artifact.manifestBytes,
    manifestDigest: artifact.manifestDigest,
    mediaType: v.mediaType,
    config: v.config,
    layers: v.layers.map((l) => ({
      digest: l.digest,
      size: l.size,
      signer: l.signer,
      identity: l.identity,
    })),
    blobs: artifact.blobs,
    source: `quay.io/rh_ee_aguidi/${digestDashed(subject)}.sig`,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-e2e-real-"));
  const signature = new Uint8Array(await readFile(SIGNATURE));
  // Read as text: the published file has `gpg --list-keys` lines above the armor.
  const [key2] = await loadOpenPgpKeys(await readFile(RELEASE_KEY_2, "utf8"), RELEASE_KEY_2);
  const v = await verifyAtomicSignature(signature, DIGEST_4150, [key2!]);
  expect(v.signer).toBe(REDHAT_RELEASE_KEY_2);
  const release: BundleRelease = {
    version: "4.15.0",
    arch: "x86_64",
    tag: "4.15.0-x86_64",
    digest: DIGEST_4150,
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    resolvedBy: "digest",
  };
  ocp = await write(path.join(dir, "ocp-4.15.0.tar"), {
    selection: { digests: [DIGEST_4150] },
    required: ["openpgp"],
    releases: [release],
    openpgp: [
      {
        digest: DIGEST_4150,
        bytes: signature,
        identity: v.identity,
        signer: v.signer,
        source: `${STORE}/sha256=${DIGEST_4150.slice(7)}/signature-1`,
      },
    ],
    keys: {
      openpgp: [{ fingerprint: key2!.fingerprint, userIds: key2!.userIds, armored: key2!.armored }],
      sigstore: [],
    },
  });
  ocpMembers = await readMembers(ocp);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the real OCP 4.15.0 signature (Red Hat release key 2)", () => {
  it("verifies through the CLI with --keyring of the published release key 2 file (exit 0)", async () => {
    const run = await runCli(["bundle", "verify", ocp, "--keyring", RELEASE_KEY_2]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(
      /OK\s+openpgp\s+4\.15\.0 \(x86_64\).*quay\.io\/openshift-release-dev\/ocp-release:4\.15\.0-x86_64/,
    );
  });

  it("carries the signature byte for byte, in the store layout and in the ConfigMap the CVO reads", async () => {
    const original = await readFile(SIGNATURE);
    expect(
      Buffer.compare(
        Buffer.from(ocpMembers.get(`openpgp/sha256=${DIGEST_4150.slice(7)}/signature-1`)!),
        original,
      ),
    ).toBe(0);
    const cm = parseYaml(text(ocpMembers.get(`configmaps/${digestDashed(DIGEST_4150)}.yaml`)!)) as {
      metadata: { name: string; namespace: string; labels: Record<string, string> };
      binaryData: Record<string, string>;
    };
    expect(cm.metadata).toEqual({
      name: digestDashed(DIGEST_4150),
      namespace: "openshift-config-managed",
      labels: { "release.openshift.io/verification-signatures": "" },
    });
    expect(Object.keys(cm.binaryData)).toEqual([`${digestDashed(DIGEST_4150)}-1`]);
    expect(
      Buffer.compare(
        Buffer.from(cm.binaryData[`${digestDashed(DIGEST_4150)}-1`]!, "base64"),
        original,
      ),
    ).toBe(0);
  });

  it("verifies WITHOUT --keyring: the key it carries is release key 2, whose fingerprint is pinned (exit 0)", async () => {
    const run = await runCli(["bundle", "verify", ocp, "--json"]);
    expect(run.code, run.stdout).toBe(0);
    const doc = JSON.parse(run.stdout) as {
      trusted: { openpgp: string[] };
      lines: { kind: string; message: string }[];
    };
    // Trusted because the fingerprint computed from the carried key's bytes is pinned in code.
    expect(doc.trusted.openpgp).toEqual([REDHAT_RELEASE_KEY_2]);
    expect(doc.lines.find((l) => l.kind === "key")?.message).toMatch(/\(pinned\)/);
  });

  it("with --keyring of beta key 2 only, still verifies: a carried pinned key adds to the keys given (exit 0)", async () => {
    const o = await verifyOutcome(ocp, { keyring: [BETA_KEY_2] });
    expect(o.exit).toBe(EXIT.OK);
    expect(o.failed).toEqual([]);
  });

  it("with --keyring of beta key 2 only and the carried key replaced by the CI key, re-checksummed: the CI key is not trusted (exit 6)", async () => {
    const [ci] = await loadOpenPgpKeys(await readFile(CI_KEY_4, "utf8"), CI_KEY_4);
    const oldPath = `keys/openpgp/${REDHAT_RELEASE_KEY_2}.asc`;
    const newPath = `keys/openpgp/${ci!.fingerprint}.asc`;
    // The careful attacker: the key member and its index entry both describe the CI key.
    const members = withIndex(ocpMembers, (ix) => {
      ix.keys.openpgp = [{ fingerprint: ci!.fingerprint, path: newPath, userIds: ci!.userIds }];
    });
    members.delete(oldPath);
    members.set(newPath, utf8(ci!.armored));
    const file = await writeBundle(path.join(dir, "ci-key.tar"), members);
    const run = await runCli(["bundle", "verify", file, "--keyring", BETA_KEY_2, "--json"]);
    expect(run.code, run.stdout).toBe(6);
    const doc = JSON.parse(run.stdout) as {
      trusted: { openpgp: string[] };
      lines: { kind: string; ok: boolean; code?: string }[];
    };
    expect(doc.trusted.openpgp).toEqual([REDHAT_BETA_KEY_2]);
    expect(doc.lines.find((l) => l.kind === "openpgp")?.code).toBe("UNTRUSTED_SIGNER");
    // The same archive without any --keyring: nothing is trusted at all.
    expect((await runCli(["bundle", "verify", file])).code).toBe(6);
  });

  it("with the CI key written over the pinned key's member and the index left alone: tampering, exit 5, naming the key member", async () => {
    const [ci] = await loadOpenPgpKeys(await readFile(CI_KEY_4, "utf8"), CI_KEY_4);
    const keyPath = `keys/openpgp/${REDHAT_RELEASE_KEY_2}.asc`;
    const file = await writeBundle(
      path.join(dir, "ci-key-misfiled.tar"),
      new Map(ocpMembers).set(keyPath, utf8(ci!.armored)),
    );
    const o = await verifyOutcome(file, { keyring: [BETA_KEY_2] });
    // Release key 2 is no longer there to trust, and the key member is not what index.json says.
    expect(o.failed.find((l) => l.kind === "openpgp")?.code).toBe("UNTRUSTED_SIGNER");
    const keyLine = o.failed.find((l) => l.member === keyPath);
    expect(keyLine?.code).toBe("INDEX_INVALID");
    expect(keyLine?.message).toContain(ci!.fingerprint);
    expect(o.exit).toBe(EXIT.CORRUPT);
  });

  it("a damaged copy of the pinned key, re-checksummed: exit 5 naming it, never a usage error", async () => {
    const keyPath = `keys/openpgp/${REDHAT_RELEASE_KEY_2}.asc`;
    const key = ocpMembers.get(keyPath)!;
    const file = await writeBundle(
      path.join(dir, "key-damaged.tar"),
      new Map(ocpMembers).set(keyPath, flip(key, 120, 0x02)),
    );
    const run = await runCli(["bundle", "verify", file]);
    expect(run.code, run.stderr).toBe(5);
    expect(run.stdout).toMatch(
      new RegExp(`FAIL .*${keyPath.replace(/\./g, "\\.")}.*INDEX_INVALID`),
    );
  });

  it("one byte of the real signature flipped, re-checksummed: SIGNATURE_INVALID, exit 5", async () => {
    const sigPath = `openpgp/sha256=${DIGEST_4150.slice(7)}/signature-1`;
    const file = await writeBundle(
      path.join(dir, "sig-flipped.tar"),
      new Map(ocpMembers).set(sigPath, flip(ocpMembers.get(sigPath)!, 400)),
    );
    const o = await verifyOutcome(file, { keyring: [RELEASE_KEY_2] });
    expect(o.failed.find((l) => l.member === sigPath)?.code).toBe("SIGNATURE_INVALID");
    expect(o.exit).toBe(EXIT.CORRUPT);
  });
});

describe("real cosign .sig artifacts", () => {
  const EMPTY_IMAGE: Digest =
    "sha256:7d27ba1da0f64410102468d138f9ec8f61f2cc23bb58ff4cd63243a4434e3d99";
  const EMPTY_KEY = path.join(LAYOUTS, "derived-cosign-pubkey-empty-image.pem");
  let single: string;
  let singleMembers: Members;

  beforeAll(async () => {
    const key = loadSigstoreKey(await readFile(EMPTY_KEY), EMPTY_KEY);
    single = await write(path.join(dir, "cosign-single.tar"), {
      required: ["sigstore"],
      releases: [
        {
          arch: "x86_64",
          digest: EMPTY_IMAGE,
          mediaType: OCI_MANIFEST_MEDIA_TYPE,
          resolvedBy: "digest",
        },
      ],
      sigstore: [collected(await sigLayout("single-arch-empty-image-sig"), EMPTY_IMAGE, key)],
      keys: { openpgp: [], sigstore: [{ id: key.id, algorithm: key.algorithm, pem: key.pem }] },
    });
    singleMembers = await readMembers(single);
  });

  it("a real single-arch .sig verifies through the CLI with its key (exit 0), and its manifest is carried byte for byte", async () => {
    const run = await runCli(["bundle", "verify", single, "--sigstore-key", EMPTY_KEY]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const layoutManifest = await readFile(
      path.join(
        LAYOUTS,
        "single-arch-empty-image-sig/blobs/sha256/ed81f580f1cc03b20cb0600084a76b3da35a9e303ffc1b908e5b5e61e05d9f27",
      ),
    );
    const carried = singleMembers.get(
      "sigstore/blobs/sha256/ed81f580f1cc03b20cb0600084a76b3da35a9e303ffc1b908e5b5e61e05d9f27",
    )!;
    expect(Buffer.compare(Buffer.from(carried), layoutManifest)).toBe(0);
  });

  it("without --sigstore-key, the carried key is not pinned: UNTRUSTED_SIGNER (exit 6)", async () => {
    const run = await runCli(["bundle", "verify", single]);
    expect(run.code, run.stdout).toBe(6);
    expect(run.stdout).toMatch(/FAIL .*UNTRUSTED_SIGNER/);
  });

  it("one byte of the signed payload changed, re-checksummed: DIGEST_MISMATCH naming the layer (exit 5)", async () => {
    const layer = blob(indexOf(singleMembers).sigstore[0]!.layers[0]!.digest);
    const file = await writeBundle(
      path.join(dir, "cosign-layer.tar"),
      new Map(singleMembers).set(layer, flip(singleMembers.get(layer)!, 30)),
    );
    const run = await runCli(["bundle", "verify", file, "--sigstore-key", EMPTY_KEY]);
    expect(run.code, run.stdout).toBe(5);
    expect(run.stdout).toMatch(new RegExp(`FAIL .*${layer}.*DIGEST_MISMATCH`));
  });

  it("one byte of the signature annotation changed, with every digest recomputed: SIGNATURE_INVALID (exit 5)", async () => {
    const ix = indexOf(singleMembers);
    const art = ix.sigstore[0]!;
    const manifest = text(singleMembers.get(blob(art.manifest.digest))!);
    const marker = '"dev.cosignproject.cosign/signature":"';
    const at = manifest.indexOf(marker) + marker.length + 20;
    const changed =
      manifest.slice(0, at) + (manifest[at] === "A" ? "B" : "A") + manifest.slice(at + 1);
    const bytes = utf8(changed);
    const digest: Digest = `sha256:${sha256Hex(bytes)}`;
    const members = withIndex(singleMembers, (x) => {
      x.sigstore[0]!.manifest = { ...x.sigstore[0]!.manifest, digest, size: bytes.length };
    });
    members.delete(blob(art.manifest.digest));
    members.set(blob(digest), bytes);
    const layout = JSON.parse(text(members.get("sigstore/index.json")!)) as {
      manifests: { digest: string; size: number }[];
    };
    layout.manifests[0]!.digest = digest;
    layout.manifests[0]!.size = bytes.length;
    members.set("sigstore/index.json", utf8(JSON.stringify(layout)));
    const o = await verifyOutcome(await writeBundle(path.join(dir, "cosign-sig.tar"), members), {
      sigstoreKey: [EMPTY_KEY],
    });
    expect(o.failed.map((l) => [l.kind, l.code])).toEqual([
      ["sigstore", "SIGNATURE_INVALID"],
      ["release", "SIGNATURE_MISSING"],
    ]);
    expect(o.exit).toBe(EXIT.CORRUPT);
  });

  it("a real multi-arch image: the index and its four per-arch .sig artifacts verify (exit 0)", async () => {
    const keyFile = path.join(LAYOUTS, "derived-cosign-pubkey-multi-platform-container.pem");
    const key = loadSigstoreKey(await readFile(keyFile), keyFile);
    const indexDigest: Digest =
      "sha256:0de0e983a4980f32b1aad2d7f7f387cea2d4e9517b47f336cef27f63735911fa";
    const imageIndex = JSON.parse(
      await readFile(
        path.join(LAYOUTS, "multi-platform-container-manifests/blobs/sha256", indexDigest.slice(7)),
        "utf8",
      ),
    ) as {
      mediaType: string;
      manifests: {
        digest: Digest;
        mediaType: string;
        platform: { architecture: string; os: string };
      }[];
    };
    const tagArch: Record<string, string> = {
      amd64: "x86_64",
      arm64: "aarch64",
      ppc64le: "ppc64le",
      s390x: "s390x",
    };
    const manifests: BundlePlatformManifest[] = imageIndex.manifests.map((m) => ({
      digest: m.digest,
      mediaType: m.mediaType,
      arch: tagArch[m.platform.architecture]!,
      os: m.platform.os,
    }));
    const sigstore = await Promise.all(
      [indexDigest, ...manifests.map((m) => m.digest)].map(async (d) =>
        collected(await sigLayout(`multi-platform-container-${digestDashed(d)}-sig`), d, key),
      ),
    );
    const file = await write(path.join(dir, "cosign-multi.tar.gz"), {
      required: ["sigstore"],
      releases: [
        {
          arch: "multi",
          digest: indexDigest,
          mediaType: imageIndex.mediaType,
          manifests,
          resolvedBy: "digest",
        },
      ],
      sigstore,
      keys: { openpgp: [], sigstore: [{ id: key.id, algorithm: key.algorithm, pem: key.pem }] },
    });
    const run = await runCli(["bundle", "verify", file, "--sigstore-key", keyFile, "--json"]);
    expect(run.code, run.stdout).toBe(0);
    const doc = JSON.parse(run.stdout) as {
      lines: { kind: string; ok: boolean; digest?: string }[];
    };
    expect(
      doc.lines
        .filter((l) => l.kind === "sigstore" && l.ok)
        .map((l) => l.digest)
        .sort(),
    ).toEqual([indexDigest, ...manifests.map((m) => m.digest)].sort());
  });
});

describe("assembling into a spool, as bundle create does", () => {
  it("writes the same archive bytes as assembling in memory, for every real archive above", async () => {
    expect(assembled.size).toBeGreaterThanOrEqual(1);
    for (const [file, parts] of assembled) {
      const spool = new MemberStore();
      try {
        const { members, index } = assembleBundle(parts, spool);
        // The members' bytes are in the spool file, not held by the list.
        expect(spool.size).toBe(members.length);
        const again = file.replace(/(\.tar(\.gz)?)$/, ".spooled$1");
        await writeArchive(again, members, { mtime: CREATED });
        expect(Buffer.compare(await readFile(again), await readFile(file)), file).toBe(0);
        // index.json went to the spool in pieces; whole, it is the index pretty-printed.
        const indexMember = members.find((m) => m.path === "index.json")!;
        expect(text(indexMember.data)).toBe(`${JSON.stringify(index, null, 2)}\n`);
      } finally {
        spool.close();
      }
    }
  });
});
