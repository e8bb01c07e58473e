/** The cosign `.sig` config sigferry rebuilds instead of downloading, against real artifacts. */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import { cosignSigConfigBytes, parseManifest } from "../../src/core/oci.js";
import { real } from "../helpers/paths.js";

const LAYOUTS = real("cosign-sig-layouts");
const blobPath = (layout: string, digest: Digest): string =>
  path.join(layout, "blobs", "sha256", digest.slice("sha256:".length));

const layouts = readdirSync(LAYOUTS).filter((name) => name.endsWith("-sig"));

describe("cosignSigConfigBytes", () => {
  it("finds the real .sig layouts to check against", () => {
    expect(layouts.length).toBeGreaterThanOrEqual(6);
  });

  it.each(layouts)("gives the exact config bytes of the real artifact %s", (name) => {
    const layout = path.join(LAYOUTS, name);
    const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8")) as {
      manifests: { digest: Digest }[];
    };
    const manifestDigest = index.manifests[0]!.digest;
    const parsed = parseManifest(readFileSync(blobPath(layout, manifestDigest)), undefined, name);
    if (parsed.kind !== "manifest") throw new Error(`${name}: not an image manifest`);
    const derived = cosignSigConfigBytes(parsed.layers.map((l) => l.digest));
    expect(Buffer.from(derived)).toEqual(readFileSync(blobPath(layout, parsed.config.digest)));
    expect(derived.length).toBe(parsed.config.size);
  });

  it("lists one history entry and one diff_id per layer, in layer order", () => {
    const a: Digest = `sha256:${"a".repeat(64)}`;
    const b: Digest = `sha256:${"b".repeat(64)}`;
    const zero = '{"created":"0001-01-01T00:00:00Z"}';
    expect(new TextDecoder().decode(cosignSigConfigBytes([a, b]))).toBe(
      `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[${zero},${zero}],` +
        `"os":"","rootfs":{"type":"layers","diff_ids":["${a}","${b}"]},"config":{}}`,
    );
  });
});
