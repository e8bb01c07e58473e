/**
 * src/v8-settings.ts relies on V8 reading two growth factors each time it grows a
 * space, so that setting them at run time still works. A Node.js upgrade could
 * break that silently (the flags would be accepted and ignored): these tests
 * run a child that keeps objects alive the way a long apply does and look at
 * the young generation's size and the old generation's collections.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { V8_FACTORS, V8_SWITCHES, applyV8Settings } from "../../src/v8-settings.js";
import { REPO_ROOT } from "../helpers/paths.js";

/**
 * A child that (optionally) tunes its heap, then allocates 120 MiB in small
 * objects of which one in four stays alive until the end, and prints the
 * largest young-generation size it saw and how many full collections ran.
 */
function child(tune: boolean): { youngMiB: number; fullGcs: number } {
  const heapJs = JSON.stringify(pathToFileURL(path.join(REPO_ROOT, "dist/v8-settings.js")).href);
  const script = `
    import { PerformanceObserver, constants } from "node:perf_hooks";
    import v8 from "node:v8";
    ${tune ? `(await import(${heapJs})).applyV8Settings();` : ""}
    let fullGcs = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullGcs++;
    }).observe({ entryTypes: ["gc"] });
    const kept = [];
    let young = 0;
    for (let i = 0; i < 1_000_000; i++) {
      const o = { i, s: "x".repeat(80 + (i % 7)), a: [i, i + 1] };
      if (i % 4 === 0) kept.push(o);
      if (i % 10_000 === 0) {
        const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === "new_space");
        young = Math.max(young, s.space_size);
      }
    }
    setTimeout(() => console.log(JSON.stringify({ youngMiB: young / 1048576, fullGcs, kept: kept.length })), 10);
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
  });
  return JSON.parse(out) as { youngMiB: number; fullGcs: number };
}

describe("applyV8Settings", () => {
  it("keeps the young generation at its initial size where V8 would grow it", () => {
    const plain = child(false);
    const tuned = child(true);
    // V8's default grows a semi-space to 16 MiB (new_space reports both: 32 MiB).
    expect(plain.youngMiB).toBeGreaterThanOrEqual(8);
    expect(tuned.youngMiB).toBeLessThanOrEqual(2);
  });

  it("collects the old generation more often than the default", () => {
    const plain = child(false);
    const tuned = child(true);
    expect(tuned.fullGcs).toBeGreaterThan(plain.fullGcs);
  });

  it("leaves alone a flag the user gave node", () => {
    const applied = applyV8Settings(
      ["--semi-space-growth-factor=4", "--no-liftoff-only"],
      "--heap_growing_percent=80",
    );
    expect(applied).toEqual([]);
  });

  it("names every flag it sets, in V8's own spelling", () => {
    const names = new Set(
      execFileSync(process.execPath, ["--v8-options"], { encoding: "utf8" })
        .split("\n")
        .map((l) => /^\s+(--[a-z0-9-]+)/.exec(l)?.[1])
        .filter((x): x is string => x !== undefined),
    );
    // An unknown flag would print "Error: unrecognized flag" on every run.
    for (const flag of [...V8_FACTORS.map((f) => f.flag), ...V8_SWITCHES]) {
      expect(names.has(flag), flag).toBe(true);
    }
  });
});
