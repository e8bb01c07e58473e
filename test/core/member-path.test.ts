import { describe, expect, it } from "vitest";
import {
  MemberPathSet,
  memberCollisionKey,
  comparePaths,
  memberPathProblem,
  quotePath,
} from "../../src/core/member-path.js";

describe("memberPathProblem", () => {
  it("accepts every kind of path a sigferry bundle holds", () => {
    for (const p of [
      "index.json",
      "checksums.sha256",
      "REPORT.md",
      "openpgp/sha256=" + "a".repeat(64) + "/signature-1",
      "sigstore/blobs/sha256/" + "b".repeat(64),
      "sigstore/oci-layout",
      "configmaps/sha256-" + "c".repeat(64) + ".yaml",
      "keys/openpgp/567E347AD0044ADE55BA8A5F199E2F91FD431D51.asc",
      "caf\u00e9",
    ]) {
      expect(memberPathProblem(p), p).toBeUndefined();
    }
  });

  const refused: [string, string, RegExp][] = [
    ["an empty path", "", /empty/],
    ["an absolute path", "/etc/passwd", /absolute/],
    ["a `..` component", "../x", /`\.\.`/],
    ["a nested `..` component", "a/../../b", /`\.\.`/],
    ["a trailing `..`", "a/..", /`\.\.`/],
    ["a `./` prefix", "./index.json", /`\.` component/],
    ["an inner `.`", "a/./b", /`\.` component/],
    ["an empty component", "a//b", /empty component/],
    ["a trailing slash", "keys/", /empty component/],
    ["a backslash", "a\\..\\b", /backslash/],
    ["a NUL", "a\u0000b", /control/],
    ["a newline", "a\nb", /control/],
    ["an escape character", "a\u001b[31mb", /control/],
    ["a C1 control", "a\u0085b", /control/],
    ["a colon (Windows drive or stream)", "C:x", /colon/],
    ["a lone surrogate", "a\uD800b", /Unicode/],
    ["an over-long component", "x".repeat(256), /component/],
    ["an over-long path", ("x".repeat(200) + "/").repeat(6) + "x", /longer than 1024/],
  ];
  for (const [what, p, reason] of refused) {
    it(`refuses ${what}`, () => {
      expect(memberPathProblem(p)).toMatch(reason);
    });
  }
});

describe("memberCollisionKey", () => {
  it("gives every ASCII character the key the full NFKC and case-folding rule gives", () => {
    const full = (p: string): string =>
      p.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC");
    for (let c = 0; c < 128; c++) {
      const p = `Dir/${String.fromCharCode(c)}x`;
      expect(memberCollisionKey(p), `U+${c.toString(16)}`).toBe(full(p));
    }
    // And non-ASCII goes the full way: the Kelvin sign meets k, ß meets SS.
    expect(memberCollisionKey("\u212A")).toBe(memberCollisionKey("k"));
    expect(memberCollisionKey("Stra\u00dfe")).toBe(memberCollisionKey("STRASSE"));
  });
});

describe("MemberPathSet", () => {
  it("refuses the same path twice", () => {
    const set = new MemberPathSet();
    expect(set.add("a/b")).toBeUndefined();
    expect(set.add("a/b")).toMatch(/already/);
  });

  it("refuses paths equal after NFC normalisation", () => {
    const set = new MemberPathSet();
    expect(set.add("caf\u00e9")).toBeUndefined();
    expect(set.add("cafe\u0301")).toMatch(/collides/);
  });

  it("refuses paths equal after case folding", () => {
    const set = new MemberPathSet();
    expect(set.add("index.json")).toBeUndefined();
    expect(set.add("INDEX.json")).toMatch(/collides/);
    expect(set.add("Straße")).toBeUndefined();
    expect(set.add("STRASSE")).toMatch(/collides/);
  });

  it("refuses a file that is also a directory of another path, in either order", () => {
    const a = new MemberPathSet();
    expect(a.add("keys")).toBeUndefined();
    expect(a.add("keys/x")).toMatch(/directory of the path is the file/);
    const b = new MemberPathSet();
    expect(b.add("keys/x")).toBeUndefined();
    expect(b.add("KEYS")).toMatch(/also a directory/);
  });

  it("accepts siblings and shared directories", () => {
    const set = new MemberPathSet();
    for (const p of ["a/b", "a/c", "a/d/e", "b"]) expect(set.add(p)).toBeUndefined();
    expect(set.size).toBe(4);
  });
});

describe("comparePaths", () => {
  it("agrees with UTF-8 byte order on prefixes, surrogate pairs and units on either side of them", () => {
    const units = [
      "",
      "a",
      "/",
      "\u00e9",
      "\ud7ff",
      "\ue000",
      "\uffff",
      "\u{10000}",
      "\u{1F600}",
      "\u{1F601}",
      "\u{10FFFF}",
    ];
    const paths = units.flatMap((x) => units.map((y) => `p${x}${y}`));
    const byBytes = (x: string, y: string): number =>
      Buffer.compare(Buffer.from(x), Buffer.from(y));
    for (const x of paths) {
      for (const y of paths)
        expect(Math.sign(comparePaths(x, y)), `${x} vs ${y}`).toBe(byBytes(x, y));
    }
  });

  it("orders by code point (UTF-8 byte order)", () => {
    const paths = ["b", "a/b", "a", "x\u{1F600}", "x\uFF21", "B", "a-b"];
    expect([...paths].sort(comparePaths)).toEqual([
      "B",
      "a",
      "a-b",
      "a/b",
      "b",
      "x\uFF21",
      "x\u{1F600}",
    ]);
    const bytes = [...paths].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...paths].sort(comparePaths)).toEqual(bytes);
  });
});

describe("quotePath", () => {
  it("escapes control characters so hostile names cannot reach a terminal raw", () => {
    expect(quotePath("a\u001b[2Jb\n")).toBe('"a\\u001b[2Jb\\n"');
  });
});
