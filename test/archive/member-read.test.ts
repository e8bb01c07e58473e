import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { READ_PIECE, memberPieces, memberText, samePieces } from "../../src/archive/member-read.js";
import { MemberStore } from "../../src/archive/member-store.js";

let dir: string;
let store: MemberStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sigferry-member-read-"));
  store = new MemberStore(dir);
});
afterAll(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Cuts `bytes` into pieces at the given offsets. */
function cut(bytes: Uint8Array, ...at: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    out.push(bytes.subarray(from, to));
    from = to;
  }
  return out;
}

describe("memberPieces", () => {
  it("reads a spooled member in pieces of at most READ_PIECE bytes that add up to it", () => {
    const bytes = randomBytes(READ_PIECE * 3 + 17);
    store.add("big", bytes);
    const pieces = [...memberPieces(store, "big")];
    expect(pieces.length).toBe(4);
    expect(Math.max(...pieces.map((p) => p.length))).toBe(READ_PIECE);
    expect(Buffer.concat(pieces).equals(bytes)).toBe(true);
  });

  it("gives nothing for a member that is not there, and a plain map's member whole", () => {
    expect([...memberPieces(store, "absent")]).toEqual([]);
    const plain = new Map([["m", Buffer.from("whole")]]);
    expect([...memberPieces(plain, "m")].map((p) => Buffer.from(p).toString())).toEqual(["whole"]);
  });
});

describe("memberText", () => {
  it("decodes characters split across the pieces it reads", () => {
    // "é" (2 bytes) and "😀" (4 bytes) placed so that each straddles a piece boundary.
    const head = Buffer.alloc(READ_PIECE - 1, 0x61);
    const text = `${head.toString()}é${"b".repeat(READ_PIECE - 3)}😀tail`;
    store.add("split.txt", Buffer.from(text, "utf8"));
    expect(memberText(store, "split.txt")).toBe(text);
  });

  it("throws on bytes that are not UTF-8, or replaces them when asked", () => {
    store.add("bad.txt", Buffer.from([0x61, 0xff, 0x62]));
    expect(() => memberText(store, "bad.txt")).toThrow(TypeError);
    expect(memberText(store, "bad.txt", "replace")).toBe("a\ufffdb");
  });

  it("throws on a character cut at the member's end", () => {
    store.add("cut.txt", Buffer.from("ab😀", "utf8").subarray(0, 4));
    expect(() => memberText(store, "cut.txt")).toThrow(TypeError);
  });

  it("is undefined for a member that is not there", () => {
    expect(memberText(store, "nothing")).toBeUndefined();
  });
});

describe("samePieces", () => {
  const bytes = randomBytes(1000);

  it("is true for the same bytes cut in different places, empty pieces included", () => {
    expect(samePieces(cut(bytes, 10, 500, 999), cut(bytes, 0, 0, 333, 334))).toBe(true);
    expect(samePieces([bytes], cut(bytes, 1, 2, 3))).toBe(true);
    expect(samePieces([], [new Uint8Array(0)])).toBe(true);
  });

  it("is false when one side is a prefix of the other, in either order", () => {
    expect(samePieces(cut(bytes, 400), [bytes.subarray(0, 999)])).toBe(false);
    expect(samePieces([bytes.subarray(0, 999)], cut(bytes, 400))).toBe(false);
    expect(samePieces([], [bytes])).toBe(false);
  });

  it("is false for one byte changed, wherever the pieces are cut", () => {
    const other = Buffer.from(bytes);
    other[700] = other[700]! ^ 1;
    expect(samePieces(cut(bytes, 650), cut(other, 300, 701))).toBe(false);
  });
});
