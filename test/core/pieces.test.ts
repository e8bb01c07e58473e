import { describe, expect, it } from "vitest";
import { utf8Pieces } from "../../src/core/pieces.js";

describe("utf8Pieces", () => {
  const texts = ["abc", "é😀", "x".repeat(10), "", "ü", "end\n"];

  it("gives the UTF-8 bytes of the concatenation, cut only between texts", () => {
    const pieces = [...utf8Pieces(texts, 4)];
    expect(Buffer.concat(pieces).toString("utf8")).toBe(texts.join(""));
    // Every piece decodes on its own: no character is split.
    const strict = new TextDecoder("utf-8", { fatal: true });
    const decoded = pieces.map((p) => strict.decode(p));
    expect(decoded).toEqual(["abcé😀", "xxxxxxxxxx", "üend\n"]);
  });

  it("gives one piece for short input and nothing for none", () => {
    expect([...utf8Pieces(["a", "b"])].map((p) => Buffer.from(p).toString())).toEqual(["ab"]);
    expect([...utf8Pieces([])]).toEqual([]);
  });
});
