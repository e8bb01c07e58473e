/**
 * renderReport's cell rules, pinned byte for byte: REPORT.md is regenerated from the
 * index and compared with the archived copy, so the same index must keep giving the
 * same bytes whatever the renderer does inside.
 */
import { describe, expect, it } from "vitest";
import type { BundleIndex } from "../../src/core/bundle-index.js";
import type { Digest } from "../../src/core/digest.js";
import { renderReport, reportParts } from "../../src/core/report.js";

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;
const KEY_A = "AAAA000000000000000000000000000000000000";

function index(): BundleIndex {
  return {
    format: "sigferry-bundle",
    formatVersion: 1,
    tool: { name: "sigferry", version: "0.1.0" },
    createdAt: "2026-01-01T00:00:00Z",
    selection: {
      "channel\u0000": "stable_4.15 _edge_ x86_64",
      arch: ["x86_64", "multi"],
      note: "a|b`c<d>*e~f[g]\\h\r\ni\u007fj",
    },
    sources: { releaseRepo: "quay.io/ocp|release`x", signatureStores: [] },
    required: ["openpgp"],
    releases: [
      {
        version: "4.15.0",
        arch: "multi",
        digest: d("a"),
        mediaType: "m",
        resolvedBy: "tag",
        manifests: [
          { digest: d("b"), mediaType: "m", arch: "aarch64", os: "linux" },
          { digest: d("c"), mediaType: "m", arch: "x86_64", os: "linux" },
        ],
      },
      // Also the aarch64 manifest of 4.15.0, which comes first in the index.
      { version: "4.15.1", arch: "aarch64", digest: d("b"), mediaType: "m", resolvedBy: "tag" },
    ],
    openpgp: [
      {
        digest: d("a"),
        path: "openpgp/a/signature-1",
        identity: "q/x:a",
        signer: KEY_A,
        source: "s",
      },
      {
        digest: d("b"),
        path: "openpgp/b/signature-1",
        identity: "q/x:b",
        signer: "B",
        source: "s",
      },
      {
        digest: d("d"),
        path: "openpgp/d/signature-1",
        identity: "q/x:d",
        signer: KEY_A,
        source: "s",
      },
    ],
    sigstore: [],
    configMaps: [],
    keys: {
      openpgp: [
        {
          fingerprint: KEY_A,
          path: "k1",
          userIds: ["_Tester_ 😀 \ud800 <t@example.com>", "2nd\tid"],
        },
        { fingerprint: KEY_A, path: "k2", userIds: ["shadowed"] },
      ],
      sigstore: [],
    },
    rejected: [],
    missing: [],
  };
}

const lines = (): string[] => renderReport(index()).split("\n");

describe("renderReport cells", () => {
  it("turns control characters into spaces and escapes Markdown, underscores only at word edges", () => {
    expect(lines()).toContain("| channel | stable_4.15 \\_edge\\_ x86_64 |");
    expect(lines()).toContain("| note | a\\|b\\`c\\<d\\>\\*e\\~f\\[g\\]\\\\h  i j |");
  });

  it("writes code spans with backticks as quotes and pipes escaped", () => {
    expect(lines()).toContain("| release repository | `quay.io/ocp\\|release'x` |");
  });

  it("keeps characters outside the BMP and lone surrogates as they are", () => {
    expect(lines()).toContain(
      `| OpenPGP | \`${KEY_A}\` | \\_Tester\\_ 😀 \ud800 \\<t@example.com\\>; 2nd id | no |`,
    );
  });

  it("labels a digest with the first release that names it, as a release or a per-arch manifest", () => {
    const rows = lines().filter((l) => l.includes("`openpgp/"));
    expect(rows.map((r) => r.split(" | ")[0])).toEqual([
      "| 4.15.0 (multi)",
      "| 4.15.0 (multi) / aarch64",
      "| -",
    ]);
  });

  it("names a signer by the first carried key with its fingerprint, and an unknown one by fingerprint only", () => {
    const signers = lines()
      .filter((l) => l.includes("`openpgp/"))
      .map((r) => r.split(" | ")[3]);
    const alice = `\`${KEY_A}\` \\_Tester\\_ 😀 \ud800 \\<t@example.com\\>; 2nd id`;
    expect(signers).toEqual([alice, "`B`", alice]);
  });

  it("gives the same bytes every time", () => {
    expect(renderReport(index())).toBe(renderReport(index()));
  });

  it("gives the same bytes in pieces (as bundle create spools it), each piece whole lines", () => {
    const whole = Buffer.from(renderReport(index()), "utf8");
    for (const size of [1, 50, 65536]) {
      const pieces = [...reportParts(index(), {}, size)].map((p) => Buffer.from(p));
      expect(Buffer.concat(pieces).equals(whole), `piece size ${size}`).toBe(true);
      // Cut at line ends only, so no character (a surrogate pair included) is split.
      for (const p of pieces) expect(p.at(-1)).toBe(0x0a);
      if (size === 1) expect(pieces.length).toBe(whole.toString("utf8").split("\n").length - 1);
    }
  });
});
