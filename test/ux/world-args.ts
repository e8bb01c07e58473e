/** Command-line arguments the UX tests pass to sigferry for a local world, and small file helpers. */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { readArchive } from "../../src/archive/reader.js";
import type { BundleIndex } from "../../src/core/bundle-index.js";
import { parseBundleIndex } from "../../src/core/index-validate.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import type { World } from "../world/index.js";

/** Trusted keys of the world, as flags. */
export function keyArgs(world: World): string[] {
  return [
    "--keyring",
    world.keys.openpgpTrusted,
    "--sigstore-key",
    world.keys.sigstoreRsa,
    "--sigstore-key",
    world.keys.sigstoreEcdsa,
  ];
}

/** `bundle create` flags for the world's upstream registry and both stores, with its keys. */
export function createArgs(world: World): string[] {
  return [
    "--release-repo",
    world.releaseRepo,
    "--plain-http",
    "--signature-store",
    world.stores.primary,
    "--signature-store",
    world.stores.secondary,
    ...keyArgs(world),
  ];
}

/** Runs `sigferry bundle create` for versions (all arches given) into `out`; throws unless it exits 0. */
export async function createArchive(
  world: World,
  out: string,
  versions: string[],
  arches: string[] = ["x86_64"],
  extra: string[] = [],
): Promise<CliRun> {
  const run = await runCli(
    [
      "bundle",
      "create",
      ...versions.flatMap((v) => ["--release", v]),
      ...arches.flatMap((a) => ["--arch", a]),
      ...createArgs(world),
      "-o",
      out,
      "--quiet",
      ...extra,
    ],
    { env: { SOURCE_DATE_EPOCH: "1700000000" } },
  );
  if (run.code !== 0) throw new Error(`bundle create failed (${run.code}): ${run.stderr}`);
  return run;
}

/** The validated index and members of an archive. */
export async function readBundle(
  file: string,
): Promise<{ index: BundleIndex; members: ReadonlyMap<string, Uint8Array> }> {
  const archive = await readArchive(file);
  const index = parseBundleIndex(
    archive.members.get("index.json")!,
    new Set(archive.members.keys()),
  );
  return { index, members: archive.members };
}

/** sha256 hex of a file. */
export async function fileSha256(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

/** Parses stdout as the one JSON document it must be. */
export function parseJsonOut(run: CliRun): Record<string, unknown> {
  try {
    return JSON.parse(run.stdout) as Record<string, unknown>;
  } catch (err) {
    throw new Error(
      `stdout is not one JSON document (exit ${run.code}):\n${run.stdout}\nstderr:\n${run.stderr}`,
      { cause: err },
    );
  }
}

/** `kubectl kustomize <dir>` output. */
export async function kustomize(dir: string): Promise<string> {
  const { stdout } = await promisify(execFile)("kubectl", ["kustomize", dir], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
    maxBuffer: 32 * 1024 * 1024,
  });
  return stdout;
}
