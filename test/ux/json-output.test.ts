/**
 * Every command's --json output, from real runs of the built CLI against the
 * local world (registry, stores, a mirror holding the release images, the
 * Kubernetes API test server), validated against
 * docs/schema/sigferry-output.schema.json in strict mode (every printed field
 * documented), together with the exit code each run must give.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/errors.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import { startWorld, type World } from "../world/index.js";
import { startKubeApi, type KubeApi } from "../world/kube-api.js";
import { assertValidOutput, loadOutputSchema } from "./json-schema.js";
import { createArchive, createArgs, keyArgs, parseJsonOut } from "./world-args.js";

let world: World;
let kube: KubeApi;
let dir: string;
let kubeconfig: string;
let one: string;
let two: string;
const schema = loadOutputSchema();
/** Every command name whose output some test validated. */
const covered = new Set<string>();

beforeAll(async () => {
  world = await startWorld({ mirror: true, mirrorReleases: true });
  kube = await startKubeApi({ namespaces: ["openshift-config-managed"] });
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-ux-json-"));
  kubeconfig = await kube.writeKubeconfig(dir, { token: kube.adminToken });
  one = path.join(dir, "one.tar.gz");
  two = path.join(dir, "two.tar");
  const [a, b] = world.data.good;
  await createArchive(world, one, [a!.version], ["x86_64", "multi"]);
  await createArchive(world, two, [a!.version, b!.version], ["x86_64", "multi"]);
}, 240_000);

afterAll(async () => {
  await kube?.stop();
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI with --json, checks the exit code and validates stdout against the schema. */
async function json(args: string[], exit: number): Promise<Record<string, unknown>> {
  const run: CliRun = await runCli([...args, "--json"]);
  const doc = parseJsonOut(run);
  expect(run.code, `exit code of sigferry ${args.join(" ")}\nstderr:\n${run.stderr}`).toBe(exit);
  assertValidOutput(doc, schema);
  expect(doc.schemaVersion).toBe(1);
  covered.add(`${String(doc.command)}${"error" in doc ? " (error)" : ""}`);
  return doc;
}

const mirrorArgs = (): string[] => ["--to", world.mirrorRepo!, "--plain-http"];
const clusterArgs = (): string[] => ["--kubeconfig", kubeconfig];

describe("--json output validates against docs/schema/sigferry-output.schema.json", () => {
  it("bundle create: the archive written; --dry-run: the plan", async () => {
    const good = world.data.good[2]!;
    const out = path.join(dir, "created.tar");
    const doc = await json(
      ["bundle", "create", "--release", good.version, ...createArgs(world), "-o", out],
      EXIT.OK,
    );
    expect(doc).toMatchObject({ command: "bundle create", ok: true, archive: out });
    const plan = await json(
      [
        "bundle",
        "create",
        "--release",
        good.version,
        "--arch",
        "multi",
        ...createArgs(world),
        "--dry-run",
      ],
      EXIT.OK,
    );
    expect(plan).toMatchObject({ command: "bundle create", ok: true, dryRun: true });
  });

  it("bundle create --keep-going with a missing signature: ok false, exit code 4", async () => {
    const release = world.data.cases.noSignature.release;
    const out = path.join(dir, "incomplete.tar");
    const doc = await json(
      [
        "bundle",
        "create",
        "--release",
        release.version,
        ...createArgs(world),
        "--keep-going",
        "-o",
        out,
      ],
      EXIT.SIGNATURE,
    );
    expect(doc.ok).toBe(false);
    expect((doc.missing as unknown[]).length).toBeGreaterThan(0);
  });

  it("bundle verify: passes with the keys (0), reports untrusted signers without them (6)", async () => {
    const ok = await json(["bundle", "verify", one, ...keyArgs(world)], EXIT.OK);
    expect(ok.ok).toBe(true);
    const untrusted = await json(["bundle", "verify", one], EXIT.UNTRUSTED);
    expect(untrusted.ok).toBe(false);
  });

  it("bundle inspect: --json and --format json print the same document", async () => {
    const a = await json(["bundle", "inspect", one], EXIT.OK);
    const run = await runCli(["bundle", "inspect", one, "--format", "json"]);
    expect(run.code).toBe(0);
    expect(parseJsonOut(run)).toEqual(a);
    expect(a).toMatchObject({ verified: false, report: "matches" });
  });

  it("bundle diff", async () => {
    const doc = await json(["bundle", "diff", one, two], EXIT.OK);
    expect(doc.identical).toBe(false);
  });

  it("bundle export-manifests and bundle export-store", async () => {
    await json(
      [
        "bundle",
        "export-manifests",
        one,
        path.join(dir, "manifests"),
        "--to",
        world.mirrorRepo!,
        ...keyArgs(world),
      ],
      EXIT.OK,
    );
    const store = await json(
      ["bundle", "export-store", one, path.join(dir, "store"), ...keyArgs(world)],
      EXIT.OK,
    );
    expect(store.urlIsPlaceholder).toBe(true);
  });

  it("check before apply: exit code 7; apply: 0; check after apply: 0", async () => {
    const before = await json(
      ["check", ...mirrorArgs(), "--bundle", one, ...clusterArgs(), ...keyArgs(world)],
      EXIT.INCOMPLETE,
    );
    expect(before.ok).toBe(false);
    const applied = await json(
      ["bundle", "apply", one, ...mirrorArgs(), ...clusterArgs(), ...keyArgs(world)],
      EXIT.OK,
    );
    expect(applied).toMatchObject({ ok: true, changed: true });
    const after = await json(
      ["check", ...mirrorArgs(), "--bundle", one, ...clusterArgs(), ...keyArgs(world)],
      EXIT.OK,
    );
    expect(after.ok).toBe(true);
  });

  it("bundle apply to a mirror without the release images: a warning, exit code 0", async () => {
    const doc = await json(
      [
        "bundle",
        "apply",
        one,
        "--to",
        `${world.mirror!.host}/nothing/here`,
        "--plain-http",
        "--skip-cluster",
        "--dry-run",
        ...keyArgs(world),
      ],
      EXIT.OK,
    );
    const registry = doc.registry as { missingImages: unknown[] };
    expect(registry.missingImages.length).toBeGreaterThan(0);
    // One warning per image for up to three; one summary line for more.
    const expected =
      registry.missingImages.length <= 3
        ? "does not hold release image"
        : `holds none of the ${registry.missingImages.length} release images`;
    expect((doc.warnings as string[]).filter((w) => w.includes(expected))).toHaveLength(
      registry.missingImages.length <= 3 ? registry.missingImages.length : 1,
    );
  });

  it("errors are the error document, with the command and the exit code of their code", async () => {
    const missing = await json(["bundle", "verify", path.join(dir, "no-such.tar")], EXIT.USAGE);
    expect(missing).toMatchObject({
      command: "bundle verify",
      ok: false,
      error: { code: "INPUT_READ_FAILED" },
    });

    const corrupt = path.join(dir, "corrupt.tar.gz");
    const bytes = await readFile(one);
    await writeFile(corrupt, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const truncated = await json(["bundle", "inspect", corrupt], EXIT.CORRUPT);
    expect(truncated).toMatchObject({ command: "bundle inspect", ok: false });

    const tampered = path.join(dir, "tampered.tar.gz");
    await copyFile(one, tampered);
    await writeFile(`${tampered}.sha256`, `${"0".repeat(64)}  tampered.tar.gz\n`);
    const mismatch = await json(["bundle", "diff", one, tampered], EXIT.CORRUPT);
    expect(mismatch).toMatchObject({
      command: "bundle diff",
      error: { code: "CHECKSUM_MISMATCH" },
    });

    const usage = await json(["check", "--bundle", one], EXIT.USAGE);
    expect(usage).toMatchObject({ command: "check", error: { code: "USAGE" } });

    const unknownOption = await json(
      ["bundle", "export-store", one, dir, "--no-such-flag"],
      EXIT.USAGE,
    );
    expect(unknownOption).toMatchObject({
      command: "bundle export-store",
      error: { code: "USAGE" },
    });

    const unknownCommand = await json(["bundle", "frobnicate"], EXIT.USAGE);
    expect(unknownCommand).toMatchObject({ command: "sigferry", error: { code: "USAGE" } });

    const release = await json(
      [
        "bundle",
        "create",
        "--release",
        "4.99.0",
        ...createArgs(world),
        "-o",
        path.join(dir, "x.tar"),
      ],
      EXIT.SIGNATURE,
    );
    expect(release).toMatchObject({ error: { code: "RELEASE_NOT_FOUND" } });
  });

  it("covered every command", () => {
    expect([...covered].filter((c) => !c.endsWith("(error)")).sort()).toEqual([
      "bundle apply",
      "bundle create",
      "bundle diff",
      "bundle export-manifests",
      "bundle export-store",
      "bundle inspect",
      "bundle verify",
      "check",
    ]);
  });
});
