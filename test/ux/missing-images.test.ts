import { describe, expect, it } from "vitest";
import { missingImageWarnings } from "../../src/commands/bundle-apply.js";

const missing = (n: number): { release: string; digest: string }[] =>
  Array.from({ length: n }, (_, i) => ({
    release: `4.16.${i} (x86_64)`,
    digest: `sha256:${i.toString(16).padStart(64, "0")}`,
  }));

describe("warnings for release images the mirror lacks", () => {
  it("names each image, with its digest, when there are few", () => {
    const w = missingImageWarnings("mirror.example:5000/ocp/release", missing(3), 10);
    expect(w).toHaveLength(3);
    expect(w[2]).toBe(
      `mirror.example:5000/ocp/release does not hold release image 4.16.2 (x86_64) sha256:${"2".padStart(64, "0")}: mirror the release too, or check --to`,
    );
  });

  it("gives one line for many: the first three, the count, and where the full list is", () => {
    const w = missingImageWarnings("m/r", missing(150), 200);
    expect(w).toEqual([
      "m/r holds 150 of the 200 release images this bundle signs (4.16.0 (x86_64), 4.16.1 (x86_64), 4.16.2 (x86_64), and 147 more; --json lists them): mirror those releases too",
    ]);
  });

  it("asks about --to when the mirror holds none of them", () => {
    const w = missingImageWarnings("m/r", missing(200), 200);
    expect(w).toHaveLength(1);
    expect(w[0]).toContain("holds none of the 200 release images");
    expect(w[0]).toContain("is --to the repository the releases were mirrored to?");
  });

  it("says nothing when every image is there", () => {
    expect(missingImageWarnings("m/r", [], 200)).toEqual([]);
  });
});
