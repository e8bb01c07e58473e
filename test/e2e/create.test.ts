/**
 * bundle create → inspect → verify, end to end against the local world: the real
 * CNCF registry holding synthetic releases and `.sig` tags, and the local
 * signature stores, with the generated test keys.
 */
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCreate, type CreateOptions } from "../../src/commands/bundle-create.js";
import { runInspect } from "../../src/commands/bundle-inspect.js";
import { runVerify } from "../../src/commands/bundle-verify.js";
import { readArchive } from "../../src/archive/reader.js";
import { isSigferryError } from "../../src/errors.js";
import { capture } from "../helpers/capture.js";
import { startWorld, type World } from "../world/index.js";

let world: World;
let dir: string;

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-e2e-create-"));
});
afterAll(async () => {
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function baseOptions(output: string, extra: Partial<CreateOptions> = {}): CreateOptions {
  return {
    releaseRepo: world.releaseRepo,
    plainHttp: true,
    signatureStore: [world.stores.primary, world.stores.secondary],
    keyring: [world.keys.openpgpTrusted],
    sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
    output,
    quiet: true,
    ...extra,
  };
}

async function expectNoOutput(file: string): Promise<void> {
  const names = await readdir(path.dirname(file));
  expect(names.filter((n) => n.startsWith(path.basename(file)))).toEqual([]);
}

describe("bundle create against the local world", () => {
  it("collects a good release for x86_64, aarch64 and multi, and verify passes on the result", async () => {
    const good = world.data.good[0]!;
    const out = path.join(dir, "good.tar.gz");
    const cap = capture({ quiet: true });
    const result = await runCreate(
      baseOptions(out, { release: [good.version], arch: ["x86_64", "aarch64", "multi"] }),
      cap.reporter,
    );
    expect(result?.ok).toBe(true);
    expect(result!.releases.map((r) => [r.arch, r.digest])).toEqual([
      ["aarch64", good.digests.aarch64],
      ["multi", good.digests.multi],
      ["x86_64", good.digests.x86_64],
    ]);
    // The sidecar is sha256sum format and names the archive.
    const sidecar = await readFile(`${out}.sha256`, "utf8");
    expect(sidecar).toBe(`${result!.sha256}  good.tar.gz\n`);

    const inspected = await runInspect(out, {});
    expect(inspected.verified).toBe(false);
    const multi = inspected.releases.find((r) => r.arch === "multi")!;
    expect(multi.perArch.map((p) => p.digest).sort()).toEqual(
      good.multi.children.map((m) => m.manifest.digest).sort(),
    );

    const v = capture();
    const { result: verified } = await runVerify(out, {}, v.reporter);
    // Without --keyring the test keys are not trusted: an archive cannot bring its own trust.
    expect(verified.ok).toBe(false);
    expect(
      verified.lines
        .filter((l) => !l.ok && l.kind !== "release" && l.kind !== "configmap")
        .map((l) => l.code),
    ).toEqual(expect.arrayContaining(["UNTRUSTED_SIGNER"]));
    // Every failure is a trust failure, not a corruption: ConfigMaps still match what is carried.
    expect(new Set(verified.lines.filter((l) => !l.ok).map((l) => l.code))).toEqual(
      new Set(["UNTRUSTED_SIGNER", "SIGNATURE_MISSING"]),
    );
    expect(verified.exitCode).toBe(6);
    const { result: trusted } = await runVerify(
      out,
      {
        keyring: [world.keys.openpgpTrusted],
        sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      },
      v.reporter,
    );
    expect(trusted.lines.filter((l) => !l.ok)).toEqual([]);
    expect(trusted.ok).toBe(true);
  });

  it("writes byte-identical archives for identical inputs when SOURCE_DATE_EPOCH is set", async () => {
    const good = world.data.good[1]!;
    const prev = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "1700000000";
    try {
      for (const ext of ["tar", "tar.gz"]) {
        const a = path.join(dir, `repro-a.${ext}`);
        const b = path.join(dir, `repro-b.${ext}`);
        await runCreate(
          baseOptions(a, { release: [good.version], arch: ["multi", "x86_64"] }),
          capture({ quiet: true }).reporter,
        );
        await runCreate(
          baseOptions(b, { release: [good.version], arch: ["x86_64", "multi"], concurrency: 2 }),
          capture({ quiet: true }).reporter,
        );
        expect(Buffer.compare(await readFile(a), await readFile(b))).toBe(0);
      }
    } finally {
      if (prev === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = prev;
    }
  });

  it("carries signature-1 and drops a garbage signature-2, recording why", async () => {
    const c = world.data.cases.garbageSecondSignature;
    const out = path.join(dir, "garbage.tar");
    const result = await runCreate(
      baseOptions(out, { release: [c.version] }),
      capture({ quiet: true }).reporter,
    );
    expect(result!.counts.openpgp).toBe(1);
    expect(
      result!.rejected.some((r) => r.kind === "openpgp" && r.source.endsWith("/signature-2")),
    ).toBe(true);
    const archive = await readArchive(out);
    const digest = c.release.digests.x86_64!;
    expect([...archive.members.keys()].filter((m) => m.startsWith("openpgp/"))).toEqual([
      `openpgp/sha256=${digest.slice(7)}/signature-1`,
    ]);
  });

  it("goes on past an untrusted signature-1 and carries signature-2, renumbered as 1", async () => {
    const c = world.data.cases.validSecondOnly;
    const out = path.join(dir, "second.tar");
    const result = await runCreate(
      baseOptions(out, { release: [c.version] }),
      capture({ quiet: true }).reporter,
    );
    expect(result!.counts.openpgp).toBe(1);
    const archive = await readArchive(out);
    const index = JSON.parse(new TextDecoder().decode(archive.members.get("index.json"))) as {
      openpgp: { path: string; source: string }[];
    };
    expect(index.openpgp[0]!.path.endsWith("/signature-1")).toBe(true);
    expect(index.openpgp[0]!.source.endsWith("/signature-2")).toBe(true);
  });

  it("finds a signature that only the secondary store has, and fails with the primary alone", async () => {
    const c = world.data.cases.secondaryStoreOnly;
    const ok = await runCreate(
      baseOptions(path.join(dir, "secondary.tar"), { release: [c.version] }),
      capture({ quiet: true }).reporter,
    );
    expect(ok!.counts.openpgp).toBe(1);
    const out = path.join(dir, "primary-only.tar");
    await expect(
      runCreate(
        baseOptions(out, { release: [c.version], signatureStore: [world.stores.primary] }),
        capture({ quiet: true }).reporter,
      ),
    ).rejects.toSatisfy((e) => isSigferryError(e, "SIGNATURE_MISSING"));
    await expectNoOutput(out);
  });

  const failing: [keyof World["data"]["cases"], string, "openpgp" | "sigstore"][] = [
    ["noSignature", "SIGNATURE_MISSING", "openpgp"],
    ["otherDigestSignature", "SIGNATURE_DIGEST_MISMATCH", "openpgp"],
    ["untrustedSignature", "UNTRUSTED_SIGNER", "openpgp"],
    ["unknownPayloadField", "SIGNATURE_PAYLOAD_INVALID", "openpgp"],
    ["wrongPayloadType", "SIGNATURE_PAYLOAD_INVALID", "openpgp"],
    ["oversizedSignature", "SIGNATURE_TOO_LARGE", "openpgp"],
    ["tamperedSignature", "SIGNATURE_INVALID", "openpgp"],
    ["noSigstore", "SIGNATURE_MISSING", "sigstore"],
    // A bare PublicKey signature names no signer: "verifies with no trusted key" is all that can be said.
    ["sigstoreUntrusted", "SIGNATURE_INVALID", "sigstore"],
    ["sigstoreOtherDigest", "SIGNATURE_DIGEST_MISMATCH", "sigstore"],
  ];
  for (const [name, code, kind] of failing) {
    it(`when the release has the "${name}" defect it fails, names the release and digest, writes nothing, and records ${code}`, async () => {
      const c = world.data.cases[name];
      const out = path.join(dir, `${name}.tar`);
      const err = await runCreate(
        baseOptions(out, { release: [c.version] }),
        capture({ quiet: true }).reporter,
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSigferryError(err)).toBe(true);
      const e = err as Error & { code: string; details: { digest?: string } };
      expect(e.message).toContain(c.version);
      expect(e.details.digest).toBe(c.release.digests.x86_64);
      await expectNoOutput(out);
      // With --keep-going the bundle records what is missing and why.
      const kept = await runCreate(
        baseOptions(out, { release: [c.version], keepGoing: true }),
        capture({ quiet: true }).reporter,
      );
      expect(kept!.ok).toBe(false);
      const record = [...kept!.missing, ...kept!.rejected].filter((m) => m.kind === kind);
      expect(record.map((m) => m.code)).toContain(code);
    });
  }

  it("names the tag and the repository for an unknown version", async () => {
    const out = path.join(dir, "unknown.tar");
    const err = (await runCreate(
      baseOptions(out, { release: ["4.99.0"] }),
      capture({ quiet: true }).reporter,
    ).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe("RELEASE_NOT_FOUND");
    expect(err.message).toContain("4.99.0-x86_64");
    expect(err.message).toContain(world.releaseRepo);
    await expectNoOutput(out);
  });

  it("names the URL of a signature store it cannot reach", async () => {
    const out = path.join(dir, "unreachable.tar");
    const store = "http://127.0.0.1:9/pub/openshift-v4/signatures/openshift/release";
    const err = (await runCreate(
      baseOptions(out, { release: [world.data.good[0]!.version], signatureStore: [store] }),
      capture({ quiet: true }).reporter,
    ).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe("STORE_UNREACHABLE");
    expect(err.message).toContain("127.0.0.1:9");
    await expectNoOutput(out);
  });

  it("selects from the update graph and prints the plan on --dry-run without writing anything", async () => {
    const out = path.join(dir, "dry.tar");
    const cap = capture({ json: true });
    const result = await runCreate(
      baseOptions(out, {
        channel: [world.data.channels.stable],
        graphUrl: world.graphUrl,
        full: true,
        dryRun: true,
        json: true,
      }),
      cap.reporter,
    );
    expect(result).toBeUndefined();
    const plan = JSON.parse(cap.stdout()) as { releases: { version: string; digest: string }[] };
    const expected = world.data.graphs[world.data.channels.stable]!.amd64!.nodes.map(
      (n) => n.version,
    ).sort();
    expect(plan.releases.map((r) => r.version).sort()).toEqual(expected);
    for (const r of plan.releases) {
      const rel = world.data.releases.find((x) => x.version === r.version)!;
      expect(r.digest).toBe(rel.digests.x86_64);
    }
    await expectNoOutput(out);
  });
});
