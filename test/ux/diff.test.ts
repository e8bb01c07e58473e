/**
 * `bundle diff <old> <new>`: what a newer archive adds or drops, from two real
 * archives (the newer one with an extra release), and the pure comparison on
 * hand-made indexes for what the world cannot produce (a changed digest).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BundleIndex } from "../../src/core/bundle-index.js";
import { diffBundles } from "../../src/core/bundle-diff.js";
import { runCli } from "../helpers/cli.js";
import { startWorld, type World } from "../world/index.js";
import { createArchive, parseJsonOut, readBundle } from "./world-args.js";

let world: World;
let dir: string;
let older: string;
let newer: string;

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-ux-diff-"));
  older = path.join(dir, "older.tar.gz");
  newer = path.join(dir, "newer.tar.gz");
  const [a, b] = world.data.good;
  await createArchive(world, older, [a!.version], ["x86_64", "multi"]);
  await createArchive(world, newer, [a!.version, b!.version], ["x86_64", "multi"]);
}, 240_000);

afterAll(async () => {
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface DiffDoc {
  identical: boolean;
  releases: {
    added: { version?: string; arch: string; digest: string }[];
    removed: unknown[];
    changed: unknown[];
  };
  digests: { added: string[]; removed: string[] };
  signatures: {
    openpgp: { added: { digest: string; signer: string }[]; removed: unknown[] };
    sigstore: { added: { digest: string; signer: string }[]; removed: unknown[] };
  };
  artifacts: { added: { digest: string; tag: string }[]; removed: unknown[]; changed: unknown[] };
  keys: { openpgp: { added: string[]; removed: string[] } };
}

describe("bundle diff of two real archives, the newer with an extra release", () => {
  it("lists the extra release, its digests, its signatures and its artifacts as added; nothing removed", async () => {
    const run = await runCli(["bundle", "diff", older, newer, "--json"]);
    expect(run.code).toBe(0);
    const d = parseJsonOut(run) as unknown as DiffDoc;
    const extra = world.data.good[1]!;
    expect(d.identical).toBe(false);
    expect(d.releases.added.map((r) => [r.version, r.arch, r.digest]).sort()).toEqual(
      [
        [extra.version, "multi", extra.digests.multi],
        [extra.version, "x86_64", extra.digests.x86_64],
      ].sort(),
    );
    expect(d.releases.removed).toEqual([]);
    expect(d.releases.changed).toEqual([]);

    const { index } = await readBundle(newer);
    const extraDigests = index.releases
      .filter((r) => r.version === extra.version)
      .flatMap((r) => [r.digest, ...(r.manifests ?? []).map((m) => m.digest)])
      .sort();
    expect([...d.digests.added].sort()).toEqual(extraDigests);
    expect(d.digests.removed).toEqual([]);
    expect(d.signatures.openpgp.added.map((s) => s.digest).sort()).toEqual(
      [extra.digests.multi, extra.digests.x86_64].sort(),
    );
    expect(d.signatures.openpgp.added.every((s) => /^[0-9A-F]{40}$/.test(s.signer))).toBe(true);
    expect(d.signatures.sigstore.added.length).toBeGreaterThan(0);
    expect(
      d.signatures.sigstore.added.every((s) => (extraDigests as string[]).includes(s.digest)),
    ).toBe(true);
    expect(d.artifacts.added.every((a) => a.tag === `${a.digest.replace(":", "-")}.sig`)).toBe(
      true,
    );
    expect(d.keys.openpgp).toEqual({ added: [], removed: [] });
  });

  it("the other way round lists the same things as removed, in text with + and -", async () => {
    const run = await runCli(["bundle", "diff", newer, older]);
    expect(run.code).toBe(0);
    const extra = world.data.good[1]!;
    expect(run.stdout).toContain("UNVERIFIED");
    expect(run.stdout).toMatch(
      new RegExp(
        `^  - ${extra.version.replace(/\./g, "\\.")} +x86_64 +${extra.digests.x86_64}$`,
        "m",
      ),
    );
    expect(run.stdout).not.toMatch(/^ {2}\+ /m);
    expect(run.stdout).toContain("0 release(s) added, 2 removed");
  });

  it("an archive against itself is identical, exit code 0", async () => {
    const run = await runCli(["bundle", "diff", older, older]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("no difference");
  });

  it("fails only when an archive cannot be read: 2 for a missing file, 5 for a corrupt one", async () => {
    expect((await runCli(["bundle", "diff", older, path.join(dir, "nope.tar")])).code).toBe(2);
    const junk = path.join(dir, "junk.tar");
    await writeFile(junk, Buffer.alloc(3000, 7));
    const corrupt = await runCli(["bundle", "diff", junk, older]);
    expect(corrupt.code).toBe(5);
    expect(corrupt.stderr).toContain("junk.tar");
  });
});

describe("diffBundles", () => {
  const D = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`;
  const base = (): BundleIndex => ({
    format: "sigferry-bundle",
    formatVersion: 1,
    tool: { name: "sigferry", version: "0.1.0" },
    createdAt: "2025-01-01T00:00:00.000Z",
    selection: {},
    sources: { releaseRepo: "quay.io/openshift-release-dev/ocp-release", signatureStores: [] },
    required: ["openpgp", "sigstore"],
    releases: [
      { version: "4.16.1", arch: "x86_64", digest: D("a"), mediaType: "m", resolvedBy: "tag" },
    ],
    openpgp: [{ digest: D("a"), path: "p", identity: "i", signer: "A".repeat(40), source: "s" }],
    sigstore: [
      {
        digest: D("a"),
        tag: `sha256-${"a".repeat(64)}.sig`,
        manifest: { digest: D("m"), mediaType: "m", size: 1 },
        config: { digest: D("c"), mediaType: "m", size: 1 },
        layers: [{ digest: D("l"), size: 1, signer: "f".repeat(64), identity: "i" }],
        source: "s",
      },
    ],
    configMaps: [],
    keys: { openpgp: [{ fingerprint: "A".repeat(40), path: "k", userIds: [] }], sigstore: [] },
    rejected: [],
    missing: [],
  });

  it("calls out a release whose version and arch stay but whose digest changes", () => {
    const next = base();
    next.releases[0]!.digest = D("b");
    next.openpgp[0]!.digest = D("b");
    const d = diffBundles(base(), next);
    expect(d.releases.changed).toEqual([
      { version: "4.16.1", arch: "x86_64", oldDigest: D("a"), newDigest: D("b") },
    ]);
    expect(d.signatures.openpgp.added).toEqual([
      { digest: D("b"), signer: "A".repeat(40), release: "4.16.1 (x86_64)" },
    ]);
    expect(d.signatures.openpgp.removed).toEqual([
      { digest: D("a"), signer: "A".repeat(40), release: "4.16.1 (x86_64)" },
    ]);
  });

  it("calls out a .sig artifact whose manifest changes for the same image, and a new signer", () => {
    const next = base();
    next.sigstore[0]!.manifest.digest = D("n");
    next.openpgp.push({ ...next.openpgp[0]!, path: "p2", signer: "B".repeat(40) });
    next.keys.openpgp.push({ fingerprint: "B".repeat(40), path: "k2", userIds: [] });
    const d = diffBundles(base(), next);
    expect(d.artifacts.changed).toEqual([
      {
        digest: D("a"),
        tag: `sha256-${"a".repeat(64)}.sig`,
        oldManifestDigest: D("m"),
        newManifestDigest: D("n"),
      },
    ]);
    expect(d.signatures.openpgp.added.map((s) => s.signer)).toEqual(["B".repeat(40)]);
    expect(d.keys.openpgp).toEqual({ added: ["B".repeat(40)], removed: [] });
    expect(d.identical).toBe(false);
  });

  it("two signatures by the same signer for one digest count once (signatures are keyed by digest and signer)", () => {
    const next = base();
    next.openpgp.push({ ...next.openpgp[0]!, path: "p2" });
    expect(diffBundles(base(), next).identical).toBe(true);
  });
});
