/**
 * `sigferry bundle verify` and `bundle inspect` through the real binary
 * (bin/sigferry.js → dist/): exit codes, the --json contract, `error:`/`hint:`
 * on stderr, and every hostile archive refused without a crash.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pLimit from "p-limit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCreate } from "../../src/commands/bundle-create.js";
import { HOSTILE_DIR } from "../../fixtures/hostile/make.js";
import {
  flip,
  patchTar,
  readMembers,
  writeBundle,
  type Members,
} from "../helpers/bundle-tamper.js";
import { capture } from "../helpers/capture.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import { startWorld, type World } from "../world/index.js";

let world: World;
let dir: string;
let good: string;
let base: Members;
let trustArgs: string[];

beforeAll(async () => {
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-e2e-verify-cli-"));
  trustArgs = [
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
  ];
  good = path.join(dir, "good.tar.gz");
  const created = await runCreate(
    {
      releaseRepo: world.releaseRepo,
      plainHttp: true,
      signatureStore: [world.stores.primary, world.stores.secondary],
      keyring: [world.keys.openpgpTrusted],
      sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      release: [world.data.good[0]!.version],
      arch: ["x86_64", "multi"],
      output: good,
      quiet: true,
    },
    capture({ quiet: true }).reporter,
  );
  expect(created?.ok).toBe(true);
  base = await readMembers(good);
});

afterAll(async () => {
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A stack trace line, which a user must never see. */
const STACK = /^\s+at .+\(?.+:\d+:\d+\)?$/m;

/** Asserts a refusal: exit code, `error:` naming `named` and `hint:` on stderr, no stack trace. */
function expectRefused(run: CliRun, exit: number, named?: string): void {
  expect(run.code, run.stderr).toBe(exit);
  expect(run.stderr).toMatch(/^error: /m);
  expect(run.stderr).toMatch(/^hint: /m);
  expect(run.stderr).not.toMatch(STACK);
  if (named !== undefined)
    expect(run.stderr.split("\n").find((l) => l.startsWith("error: "))).toContain(named);
}

/** Parses --json stdout; fails the test if it is not one JSON document. */
function json(run: CliRun): Record<string, unknown> {
  try {
    return JSON.parse(run.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`stdout is not JSON:\n${run.stdout}`);
  }
}

describe("bundle verify exit codes", () => {
  it("exits 0 on a good archive with the signers' keys, one OK line per check on stdout", async () => {
    const run = await runCli(["bundle", "verify", good, ...trustArgs]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^verified: \d+ check\(s\) passed$/m);
    expect(run.stdout).not.toMatch(/^FAIL/m);
    expect(run.stderr).not.toMatch(/^error: /m);
  });

  it("--json: one JSON document on stdout with ok, exitCode and lines", async () => {
    const run = await runCli(["bundle", "verify", good, ...trustArgs, "--json"]);
    expect(run.code).toBe(0);
    const doc = json(run);
    expect(doc.ok).toBe(true);
    expect(doc.exitCode).toBe(0);
    const lines = doc.lines as { kind: string; ok: boolean }[];
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.every((l) => l.ok)).toBe(true);
    expect((doc.archive as { sidecar: string }).sidecar).toBe("ok");
  });

  it("exits 6 without --keyring/--sigstore-key: the archive's own keys are not trusted", async () => {
    const run = await runCli(["bundle", "verify", good]);
    expect(run.code, run.stderr).toBe(6);
    expect(run.stdout).toMatch(/^FAIL .*UNTRUSTED_SIGNER/m);
    expect(run.stdout).toMatch(/^NOT VERIFIED/m);
    expect(run.stderr).toMatch(/no trusted OpenPGP key/);
    expect(run.stderr).not.toMatch(STACK);
    const doc = json(await runCli(["bundle", "verify", good, "--json"]));
    expect(doc.ok).toBe(false);
    expect(doc.exitCode).toBe(6);
    expect((doc.lines as { code?: string }[]).some((l) => l.code === "UNTRUSTED_SIGNER")).toBe(
      true,
    );
  });

  it("exits 5 on a corrupt archive, naming the member on stderr with a hint; --json carries the error object", async () => {
    const file = path.join(dir, "corrupt.tar");
    const tar = await writeBundle(path.join(dir, "plain.tar"), base);
    const member = [...base.keys()].find((m) => m.startsWith("configmaps/"))!;
    await patchTar(tar, file, base.get(member)!, 30, { reseal: true });
    const run = await runCli(["bundle", "verify", file, ...trustArgs]);
    expectRefused(run, 5, member);
    expect(run.stderr).toMatch(/checksum list/);
    const doc = json(await runCli(["bundle", "verify", file, ...trustArgs, "--json"]));
    expect(doc.ok).toBe(false);
    const error = doc.error as {
      code: string;
      message: string;
      hint: string;
      details: { member?: string };
    };
    expect(error.code).toBe("CHECKSUM_MISMATCH");
    expect(error.message).toContain(member);
    expect(error.hint.length).toBeGreaterThan(0);
    expect(error.details.member).toBe(member);
  });

  it("exits 5 on a re-hashed tampered archive, the FAIL line naming the member", async () => {
    const sig = [...base.keys()].find((m) => m.startsWith("openpgp/"))!;
    const file = await writeBundle(
      path.join(dir, "rehashed.tar"),
      new Map(base).set(sig, flip(base.get(sig)!, -1)),
    );
    const run = await runCli(["bundle", "verify", file, ...trustArgs]);
    expect(run.code, run.stderr).toBe(5);
    expect(
      run.stdout.split("\n").find((l) => l.startsWith("FAIL") && l.includes("SIGNATURE_INVALID")),
    ).toContain(sig);
    const doc = json(await runCli(["bundle", "verify", file, ...trustArgs, "--json"]));
    expect(doc.ok).toBe(false);
    expect(doc.exitCode).toBe(5);
  });
});

describe("commands that verify first stop with the exit code verify gives", () => {
  it("bundle apply on a re-hashed archive with a broken signature exits 5 (not 4) and writes nothing", async () => {
    const sig = [...base.keys()].find((m) => m.startsWith("openpgp/"))!;
    const file = await writeBundle(
      path.join(dir, "apply-tampered.tar"),
      new Map(base).set(sig, flip(base.get(sig)!, -1)),
    );
    const out = path.join(dir, "apply-manifests");
    const run = await runCli([
      "bundle",
      "apply",
      file,
      "--skip-registry",
      "--skip-cluster",
      "--manifests-dir",
      out,
      ...trustArgs,
    ]);
    expectRefused(run, 5, sig);
    expect(run.stderr).toMatch(/SIGNATURE_INVALID/);
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });

  it("bundle apply on a re-hashed archive with a changed .sig blob exits 5 (not 3, a remote failure)", async () => {
    const layer = [...base.keys()].find(
      (m) =>
        m.startsWith("sigstore/blobs/") &&
        new TextDecoder().decode(base.get(m)).includes('"critical"'),
    )!;
    const file = await writeBundle(
      path.join(dir, "apply-blob.tar"),
      new Map(base).set(layer, flip(base.get(layer)!, 5)),
    );
    const run = await runCli([
      "bundle",
      "apply",
      file,
      "--skip-registry",
      "--skip-cluster",
      "--manifests-dir",
      path.join(dir, "apply-manifests-2"),
      ...trustArgs,
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(5);
    // The check's own code (DIGEST_MISMATCH) would mean "remote failure" (3); the error keeps it in details.
    const error = json(run).error as { code: string; details: { check?: string } };
    expect(error.code).toBe("ARCHIVE_CORRUPT");
    expect(error.details.check).toBe("DIGEST_MISMATCH");
  });

  it("bundle apply on an archive signed by keys nobody trusts exits 6", async () => {
    const run = await runCli([
      "bundle",
      "apply",
      good,
      "--skip-registry",
      "--skip-cluster",
      "--manifests-dir",
      path.join(dir, "apply-manifests-3"),
    ]);
    expectRefused(run, 6);
  });
});

describe("bundle verify usage errors exit 2", () => {
  it("without the archive argument", async () => {
    const run = await runCli(["bundle", "verify"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/missing required argument 'archive'/);
  });

  it("with an unknown option", async () => {
    const run = await runCli(["bundle", "verify", good, "--no-such-flag"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown option/);
  });

  it("for a file that does not exist: INPUT_READ_FAILED naming the file", async () => {
    const missing = path.join(dir, "no-such.tar.gz");
    const run = await runCli(["bundle", "verify", missing]);
    expectRefused(run, 2, missing);
    expect(run.stderr).toMatch(/ENOENT/);
    const doc = json(await runCli(["bundle", "verify", missing, "--json"]));
    expect(doc.ok).toBe(false);
    const error = doc.error as { code: string; details: { file?: string } };
    expect(error.code).toBe("INPUT_READ_FAILED");
    expect(error.details.file).toBe(missing);
  });

  it("for a directory given as the archive: INPUT_READ_FAILED naming it", async () => {
    const d = path.join(dir, "a-directory.tar");
    await mkdir(d, { recursive: true });
    expectRefused(await runCli(["bundle", "verify", d]), 2, d);
  });

  it("for a --keyring file that does not exist, or is not a key", async () => {
    const missing = path.join(dir, "no-such-key.asc");
    expectRefused(await runCli(["bundle", "verify", good, "--keyring", missing]), 2, missing);
    const notKey = path.join(dir, "not-a-key.asc");
    await writeFile(notKey, "hello\n");
    const run = await runCli(["bundle", "verify", good, "--keyring", notKey, "--json"]);
    expect(run.code).toBe(2);
    expect((json(run).error as { code: string }).code).toBe("KEY_INVALID");
  });
});

describe("bundle inspect", () => {
  it("lists a good archive without any key, marked UNVERIFIED, exit 0", async () => {
    const run = await runCli(["bundle", "inspect", good]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/UNVERIFIED/);
    expect(run.stdout).toContain(world.data.good[0]!.digests.x86_64!);
    const doc = json(await runCli(["bundle", "inspect", good, "--json"]));
    expect(doc.verified).toBe(false);
  });

  it("refuses a hostile archive with exit 5, naming the entry", async () => {
    const run = await runCli(["bundle", "inspect", path.join(HOSTILE_DIR, "absolute-path.tar")]);
    expectRefused(run, 5, "/tmp/sigferry-escape");
    const dotdot = await runCli(["bundle", "inspect", path.join(HOSTILE_DIR, "dotdot-escape.tar")]);
    expectRefused(dotdot, 5, "../escape");
  });
});

describe("every hostile archive in fixtures/hostile", () => {
  it("is refused by bundle verify and bundle inspect with exit 5, error: and hint:, and no stack trace", async () => {
    const files = (await readdir(HOSTILE_DIR)).filter((f) => /\.tar(\.gz|\.xz)?$/.test(f)).sort();
    expect(files.length).toBeGreaterThanOrEqual(50);
    const limit = pLimit(4);
    const runs = await Promise.all(
      files.flatMap((f) =>
        (["verify", "inspect"] as const).map((command) =>
          limit(async () => ({
            f,
            command,
            run: await runCli(["bundle", command, path.join(HOSTILE_DIR, f)]),
          })),
        ),
      ),
    );
    for (const { f, command, run } of runs) {
      expect(run.code, `${command} ${f}: ${run.stderr}`).toBe(5);
      expect(run.stderr, `${command} ${f}`).toMatch(/^error: /m);
      expect(run.stderr, `${command} ${f}`).toMatch(/^hint: /m);
      expect(run.stderr, `${command} ${f}`).not.toMatch(STACK);
    }
  }, 180_000);

  it("--json: each refusal is one JSON error document on stdout", async () => {
    const files = (await readdir(HOSTILE_DIR))
      .filter((f) => f.endsWith(".tar"))
      .sort()
      .slice(0, 12);
    const limit = pLimit(4);
    await Promise.all(
      files.map((f) =>
        limit(async () => {
          const run = await runCli(["bundle", "verify", path.join(HOSTILE_DIR, f), "--json"]);
          expect(run.code, `${f}: ${run.stderr}`).toBe(5);
          const doc = json(run);
          expect(doc.ok, f).toBe(false);
          expect((doc.error as { code: string }).code, f).toMatch(/^(ARCHIVE_|CHECKSUM_|INDEX_)/);
        }),
      ),
    );
  }, 120_000);
});
