/**
 * The manifests directory of `bundle apply` / `export manifests`: written whole
 * through a sibling temp dir, or not at all. Many files are written at once, so
 * a failure of one must still leave neither a partial set nor the temp dir, and
 * must not touch what the directory held before.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeManifestsDir } from "../../src/commands/bundle-apply.js";
import type { ManifestFile } from "../../src/core/apply-manifests.js";
import { isSigferryError } from "../../src/errors.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-manifests-dir-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `n` ConfigMap-like files; the one at `bad` names a directory that does not exist. */
function files(n: number, bad?: number): ManifestFile[] {
  return Array.from({ length: n }, (_, i) => ({
    file: i === bad ? `no-such-dir/cm-${i}.yaml` : `cm-${i}.yaml`,
    yaml: `kind: ConfigMap\nmetadata:\n  name: cm-${i}\n`,
    object: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${i}` } },
  }));
}

describe("writeManifestsDir", () => {
  it("writes every file and the kustomization", async () => {
    const out = path.join(dir, "manifests");
    await writeManifestsDir(out, files(40), "resources: []\n");
    const names = await readdir(out);
    expect(names).toHaveLength(41);
    expect(await readFile(path.join(out, "cm-39.yaml"), "utf8")).toContain("name: cm-39");
    expect(await readdir(dir)).toEqual(["manifests"]);
  });

  it("replaces an earlier set whole", async () => {
    const out = path.join(dir, "manifests");
    await mkdir(out);
    await writeFile(path.join(out, "stale.yaml"), "old");
    await writeManifestsDir(out, files(3), "resources: []\n");
    expect((await readdir(out)).sort()).toEqual([
      "cm-0.yaml",
      "cm-1.yaml",
      "cm-2.yaml",
      "kustomization.yaml",
    ]);
  });

  it.each([0, 17, 39])(
    "when file %i cannot be written: OUTPUT_WRITE_FAILED, no temp dir, the earlier set untouched",
    async (bad) => {
      const out = path.join(dir, "manifests");
      await mkdir(out);
      await writeFile(path.join(out, "earlier.yaml"), "kept");
      let caught: unknown;
      try {
        await writeManifestsDir(out, files(40, bad), "resources: []\n");
      } catch (err) {
        caught = err;
      }
      expect(isSigferryError(caught) && caught.code).toBe("OUTPUT_WRITE_FAILED");
      expect((caught as Error).message).toContain(out);
      expect(await readdir(dir)).toEqual(["manifests"]);
      expect(await readdir(out)).toEqual(["earlier.yaml"]);
    },
  );
});
