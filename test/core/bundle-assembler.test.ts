/**
 * BundleAssembler: `bundle create` adds each release's material as its fetch
 * finishes, in whatever order the network gives. The archive must not depend
 * on that order, and the assembler must refuse what would make two members
 * disagree.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  BundleAssembler,
  assembleBundle,
  type AssembleInput,
  type AssembledBundle,
  type CollectedOpenPgp,
  type CollectedSigstore,
} from "../../src/core/bundle.js";
import type { Digest } from "../../src/core/digest.js";
import { flat } from "../../src/core/flat.js";

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;
const sha = (b: Uint8Array): Digest => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

const pgp = (digest: Digest, body: string, source: string): CollectedOpenPgp => ({
  digest,
  bytes: bytes(body),
  identity: `quay.io/x/release:${digest.slice(7, 11)}`,
  signer: "AAAA000000000000000000000000000000000000",
  source,
});

function sig(digest: Digest, layerBody: string, sharedConfig: Uint8Array): CollectedSigstore {
  const layer = bytes(layerBody);
  const manifestBytes = bytes(`{"manifest":"${digest}","layer":"${sha(layer)}"}`);
  return {
    digest,
    manifestBytes,
    manifestDigest: sha(manifestBytes),
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      digest: sha(sharedConfig),
      mediaType: "application/vnd.oci.image.config.v1+json",
      size: sharedConfig.length,
    },
    layers: [
      {
        digest: sha(layer),
        size: layer.length,
        signer: "ab".repeat(32),
        identity: `quay.io/x/release@${digest}`,
      },
    ],
    blobs: new Map([
      [sha(sharedConfig), sharedConfig],
      [sha(layer), layer],
    ]),
    source: `quay.io/x/release:${digest.replace(":", "-")}.sig`,
  };
}

const rest: Omit<AssembleInput, "openpgp" | "sigstore"> = {
  toolVersion: "0.0.0-test",
  createdAt: new Date("2026-01-01T00:00:00Z"),
  selection: { release: ["4.16.0", "4.16.1"] },
  sources: { releaseRepo: "quay.io/x/release", signatureStores: ["https://s.example/sigs"] },
  required: ["openpgp", "sigstore"],
  releases: [
    { version: "4.16.1", arch: "x86_64", digest: d("b"), mediaType: "m", resolvedBy: "tag" },
    { version: "4.16.0", arch: "x86_64", digest: d("a"), mediaType: "m", resolvedBy: "tag" },
  ],
  keys: { openpgp: [], sigstore: [] },
  rejected: [],
  missing: [],
};

const config = bytes('{"architecture":"","config":{},"os":"","rootfs":{"type":"layers"}}');
const pgpA = [
  pgp(d("a"), "sig a1", "s/a/1"),
  pgp(d("a"), "sig a1", "t/a/1"),
  pgp(d("a"), "sig a2", "s/a/2"),
];
const pgpB = [pgp(d("b"), "sig b1", "s/b/1")];
const sigA = sig(d("a"), "layer a", config);
const sigB = sig(d("b"), "layer b", config);

/** Every member's path and bytes, in archive order. */
const contents = (b: AssembledBundle): [string, string][] =>
  b.members.map((m) => [m.path, Buffer.from(m.data).toString("latin1")]);

describe("BundleAssembler", () => {
  it("writes the same members, byte for byte, whatever order the material arrives in", () => {
    const first = new BundleAssembler();
    first.addOpenPgp(d("a"), pgpA);
    first.addSigstore(sigA);
    first.addOpenPgp(d("b"), pgpB);
    first.addSigstore(sigB);
    const second = new BundleAssembler();
    second.addSigstore(sigB);
    second.addOpenPgp(d("b"), pgpB);
    second.addSigstore(sigA);
    second.addOpenPgp(d("a"), pgpA);
    const a = first.finish(rest);
    const b = second.finish(rest);
    expect(contents(b)).toEqual(contents(a));
    // And the same as assembling everything at the end.
    const whole = assembleBundle({ ...rest, openpgp: [...pgpB, ...pgpA], sigstore: [sigB, sigA] });
    expect(contents(whole)).toEqual(contents(a));
    expect(a.index.openpgp.map((e) => e.path)).toEqual([
      `openpgp/sha256=${"a".repeat(64)}/signature-1`,
      `openpgp/sha256=${"a".repeat(64)}/signature-2`,
      `openpgp/sha256=${"b".repeat(64)}/signature-1`,
    ]);
    expect(a.index.sigstore.map((e) => e.digest)).toEqual([d("a"), d("b")]);
  });

  it("keeps identical signature bytes from two stores once, from the first store that served them", () => {
    const a = new BundleAssembler();
    a.addOpenPgp(d("a"), pgpA);
    const { index } = a.finish(rest);
    expect(index.openpgp.map((e) => e.source)).toEqual(["s/a/1", "s/a/2"]);
    expect(index.configMaps).toHaveLength(1);
    expect(index.configMaps[0]!.keys).toHaveLength(2);
  });

  it("stores a blob two artifacts name once", () => {
    const a = new BundleAssembler();
    a.addSigstore(sigA);
    a.addSigstore(sigB);
    const { members } = a.finish(rest);
    const configPath = `sigstore/blobs/sha256/${sha(config).slice(7)}`;
    expect(members.filter((m) => m.path === configPath)).toHaveLength(1);
  });

  it("records no entry and no ConfigMap for a digest with no signature", () => {
    const a = new BundleAssembler();
    a.addOpenPgp(d("a"), []);
    const { index } = a.finish(rest);
    expect(index.openpgp).toEqual([]);
    expect(index.configMaps).toEqual([]);
  });

  it("refuses a digest's material twice, a signature filed under another digest, and two contents under one blob name", () => {
    const a = new BundleAssembler();
    a.addOpenPgp(d("a"), pgpA);
    expect(() => a.addOpenPgp(d("a"), pgpA)).toThrow(/added twice/);
    expect(() => a.addOpenPgp(d("b"), pgpA)).toThrow(
      /a signature of sha256:a+ added for sha256:b+/,
    );
    a.addSigstore(sigA);
    expect(() => a.addSigstore(sigA)).toThrow(/added twice/);
    const forged = sig(d("c"), "layer c", config);
    forged.blobs.set(sha(config), bytes("not the config"));
    expect(() => a.addSigstore(forged)).toThrow(/two different contents/);
  });
});

describe("flat", () => {
  it("gives back an equal string, for ropes, slices, lone surrogates and short strings", () => {
    let rope = "";
    for (const c of "quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64") rope += c;
    const cases = [
      rope,
      rope.slice(8, 40),
      "\ud800 lone \udfff surrogates",
      "é😀 and \u0000 nul",
      "short",
      "",
    ];
    for (const s of cases) expect(flat(s)).toBe(s);
  });
});
