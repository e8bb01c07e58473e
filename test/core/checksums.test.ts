import { describe, expect, it } from "vitest";
import {
  checkMembers,
  formatChecksums,
  parseChecksums,
  parseSidecar,
  sidecarLine,
} from "../../src/core/checksums.js";
import { isSigferryError, type ErrorCode } from "../../src/errors.js";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (err) {
    if (isSigferryError(err)) return err.code;
    throw err;
  }
  return undefined;
}

function errorOf(fn: () => unknown): { code: string; message: string; details: object } {
  try {
    fn();
  } catch (err) {
    if (isSigferryError(err)) return { code: err.code, message: err.message, details: err.details };
    throw err;
  }
  throw new Error("expected a SigferryError");
}

describe("formatChecksums", () => {
  it("writes sha256sum text lines with two spaces, sorted by path in byte order", () => {
    const text = formatChecksums([
      { path: "openpgp/sha256=00/signature-1", sha256: B },
      { path: "index.json", sha256: A },
      { path: "REPORT.md", sha256: C },
    ]);
    expect(text).toBe(`${C}  REPORT.md\n${A}  index.json\n${B}  openpgp/sha256=00/signature-1\n`);
  });

  it("sorts by UTF-8 byte order, not UTF-16 code units", () => {
    // U+FF21 (fullwidth A) is below U+1F600 in UTF-8 byte order, above it in UTF-16.
    const text = formatChecksums([
      { path: "x\u{1F600}", sha256: A },
      { path: "x\uFF21", sha256: B },
    ]);
    expect(text.split("\n")[0]).toBe(`${B}  x\uFF21`);
  });

  it("writes an empty list as empty text", () => {
    expect(formatChecksums([])).toBe("");
  });

  it("refuses a path the reader would refuse", () => {
    expect(codeOf(() => formatChecksums([{ path: "../x", sha256: A }]))).toBe("INTERNAL");
    expect(codeOf(() => formatChecksums([{ path: "a\nb", sha256: A }]))).toBe("INTERNAL");
  });

  it("refuses uppercase or short hex and duplicate paths", () => {
    expect(codeOf(() => formatChecksums([{ path: "a", sha256: A.toUpperCase() }]))).toBe(
      "INTERNAL",
    );
    expect(codeOf(() => formatChecksums([{ path: "a", sha256: "abc" }]))).toBe("INTERNAL");
    expect(
      codeOf(() =>
        formatChecksums([
          { path: "a", sha256: A },
          { path: "a", sha256: B },
        ]),
      ),
    ).toBe("INTERNAL");
  });
});

describe("parseChecksums", () => {
  it("reads back what formatChecksums wrote", () => {
    const entries = [
      { path: "index.json", sha256: A },
      { path: "sigstore/blobs/sha256/" + "0".repeat(64), sha256: B },
    ];
    expect(parseChecksums(formatChecksums(entries))).toEqual(
      new Map(entries.map((e) => [e.path, e.sha256])),
    );
  });

  it("reads an empty list as no entries", () => {
    expect(parseChecksums("").size).toBe(0);
  });

  it("accepts lines in any order", () => {
    expect(parseChecksums(`${B}  b\n${A}  a\n`).get("a")).toBe(A);
  });

  const malformed: [string, string, number, RegExp][] = [
    ["uppercase hex", `${A}  a\n${"A".repeat(64)}  b\n`, 2, /not lowercase/],
    ["a binary-mode marker", `${A} *a\n`, 1, /binary-mode marker/],
    ["a single space", `${A} a\n`, 1, /two spaces/],
    ["a short hash", `${"a".repeat(63)}  a\n`, 1, /64 hex digits/],
    ["a missing final newline (a cut-off list)", `${A}  a\n${B}  b`, 2, /newline/],
    ["CRLF line ends", `${A}  a\r\n`, 1, /carriage return/],
    ["a blank line", `${A}  a\n\n${B}  b\n`, 2, /empty/],
    ["an escaped name", `\\${A}  a\\nb\n`, 1, /escaped/],
    ["a line with no path", `${A}  \n`, 1, /names no file/],
    ["a duplicate path", `${A}  a\n${B}  a\n`, 2, /listed twice/],
    ["a `..` path", `${A}  ../etc/passwd\n`, 1, /`\.\.` component/],
    ["a nested `..` path", `${A}  a/../../b\n`, 1, /`\.\.` component/],
    ["an absolute path", `${A}  /etc/passwd\n`, 1, /absolute/],
    ["a `./` prefix", `${A}  ./a\n`, 1, /`\.` component/],
    ["a BSD-style (--tag) line", `SHA256 (a) = ${A}\n`, 1, /64 hex digits/],
  ];
  for (const [what, text, line, reason] of malformed) {
    it(`refuses ${what} with ARCHIVE_CORRUPT naming line ${line}`, () => {
      const err = errorOf(() => parseChecksums(text));
      expect(err.code).toBe("ARCHIVE_CORRUPT");
      expect(err.message).toMatch(new RegExp(`^checksums\\.sha256 line ${line}: `));
      expect(err.message).toMatch(reason);
      expect(err.details).toMatchObject({ member: "checksums.sha256", line });
    });
  }
});

describe("checkMembers", () => {
  const actual = (entries: [string, string][]) =>
    new Map(entries.map(([p, sha256]) => [p, { sha256, size: 3 }]));

  it("finds no problem when the list and the members agree", () => {
    const listed = new Map([
      ["a", A],
      ["b", B],
    ]);
    expect(
      checkMembers(
        listed,
        actual([
          ["a", A],
          ["b", B],
          ["checksums.sha256", C],
        ]),
        ["checksums.sha256"],
      ),
    ).toEqual([]);
  });

  it("names a member present but not listed", () => {
    const problems = checkMembers(
      new Map([["a", A]]),
      actual([
        ["a", A],
        ["extra", B],
      ]),
      [],
    );
    expect(problems).toEqual([
      expect.objectContaining({ kind: "unlisted", member: "extra", actual: B }),
    ]);
  });

  it("names a member listed but absent", () => {
    const problems = checkMembers(
      new Map([
        ["a", A],
        ["gone", B],
      ]),
      actual([["a", A]]),
      [],
    );
    expect(problems).toEqual([
      expect.objectContaining({ kind: "missing", member: "gone", expected: B }),
    ]);
  });

  it("names a member whose bytes hash differently, with both hashes", () => {
    const [problem] = checkMembers(new Map([["a", A]]), actual([["a", B]]), []);
    expect(problem).toMatchObject({ kind: "mismatch", member: "a", expected: A, actual: B });
    expect(problem?.reason).toContain(A);
    expect(problem?.reason).toContain(B);
  });

  it("does not exempt a member from the list unless told to", () => {
    const problems = checkMembers(new Map(), actual([["checksums.sha256", C]]), []);
    expect(problems.map((p) => p.member)).toEqual(["checksums.sha256"]);
  });

  it("reports every problem, sorted by member", () => {
    const problems = checkMembers(
      new Map([
        ["b", B],
        ["c", C],
      ]),
      actual([
        ["a", A],
        ["c", A],
      ]),
      [],
    );
    expect(problems.map((p) => `${p.kind}:${p.member}`)).toEqual([
      "unlisted:a",
      "missing:b",
      "mismatch:c",
    ]);
  });
});

describe("sidecar", () => {
  it("writes one sha256sum line naming the archive's file name", () => {
    expect(sidecarLine(A, "bundle.tar.gz")).toBe(`${A}  bundle.tar.gz\n`);
  });

  it("reads back the sha256 sidecarLine wrote", () => {
    expect(parseSidecar(sidecarLine(A, "bundle.tar"), "bundle.tar")).toBe(A);
    expect(parseSidecar(sidecarLine(A, "bundle.tar"))).toBe(A);
  });

  it("refuses a sidecar for another file with CHECKSUM_MISMATCH", () => {
    expect(codeOf(() => parseSidecar(sidecarLine(A, "other.tar"), "bundle.tar"))).toBe(
      "CHECKSUM_MISMATCH",
    );
  });

  it("refuses a malformed sidecar with ARCHIVE_CORRUPT", () => {
    for (const text of [
      "",
      `${A}  bundle.tar`,
      `${A}  bundle.tar\n${B}  bundle.tar\n`,
      `${A} *bundle.tar\n`,
      `${A.toUpperCase()}  bundle.tar\n`,
      `${A}  dir/bundle.tar\n`,
    ]) {
      expect(
        codeOf(() => parseSidecar(text)),
        JSON.stringify(text),
      ).toBe("ARCHIVE_CORRUPT");
    }
  });

  it("refuses to write a name a sha256sum line cannot carry", () => {
    expect(codeOf(() => sidecarLine(A, "a\nb"))).toBe("INTERNAL");
    expect(codeOf(() => sidecarLine(A, "dir/a"))).toBe("INTERNAL");
    expect(codeOf(() => sidecarLine("xyz", "a"))).toBe("INTERNAL");
  });
});
