/**
 * Output: stdout carries results only; progress goes to stderr, redrawn on a
 * terminal (faked in-process with isTTY = true) and as plain lines otherwise
 * (through the real CLI, whose stderr is a pipe); --quiet and --verbose mean
 * the same on every command; every command's --help has examples.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCreate } from "../../src/commands/bundle-create.js";
import { runVerify } from "../../src/commands/bundle-verify.js";
import { Reporter, type OutputOptions } from "../../src/commands/output.js";
import { runCli } from "../helpers/cli.js";
import { startWorld, type World } from "../world/index.js";
import { createArchive, createArgs, keyArgs } from "./world-args.js";

/** A stream that records what is written; `tty` fakes a terminal. */
function stream(
  tty: boolean,
  columns = 100,
): Writable & { isTTY?: boolean; columns?: number; text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(c: Buffer | string, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number; text: () => string };
  if (tty) {
    s.isTTY = true;
    s.columns = columns;
  }
  s.text = () => chunks.join("");
  return s;
}

function reporter(options: OutputOptions, tty: boolean, columns = 100) {
  const stdout = stream(false);
  const stderr = stream(tty, columns);
  return { reporter: new Reporter(options, { stdout, stderr }), stdout, stderr };
}

// eslint-disable-next-line no-control-regex
const ESCAPES = /\r|\x1b\[/;

let world: World;
let dir: string;
let archive: string;
const savedTerm = process.env.TERM;

beforeAll(async () => {
  process.env.TERM = "xterm-256color";
  world = await startWorld();
  dir = await mkdtemp(path.join(os.tmpdir(), "sigferry-ux-output-"));
  archive = path.join(dir, "sigs.tar");
  await createArchive(world, archive, [world.data.good[0]!.version], ["x86_64", "multi"]);
}, 240_000);

afterAll(async () => {
  if (savedTerm === undefined) delete process.env.TERM;
  else process.env.TERM = savedTerm;
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the Reporter", () => {
  it("on a terminal redraws one progress line with a bar, and ends it before any other line", () => {
    const { reporter: r, stdout, stderr } = reporter({}, true);
    expect(r.tty).toBe(true);
    r.progress("fetch", 1, 4, "4.16.1 (x86_64)");
    r.progress("fetch", 2, 4, "4.16.2 (x86_64)");
    r.warn("something odd");
    r.progress("fetch", 4, 4, "4.16.4 (x86_64)");
    const err = stderr.text();
    expect(err).toContain("\r\x1b[2Kfetch [#####---------------] 1/4 4.16.1 (x86_64)");
    expect(err).toContain("\r\x1b[2Kfetch [##########----------] 2/4 4.16.2 (x86_64)");
    // The warning clears the progress line first, and ends with its own newline.
    expect(err).toContain("\r\x1b[2Kwarning: something odd\n");
    // The last step ends the line.
    expect(err.endsWith("fetch [####################] 4/4 4.16.4 (x86_64)\n")).toBe(true);
    expect(stdout.text()).toBe("");
  });

  it("on a terminal never draws a line wider than the terminal (it would wrap and break the redraw)", () => {
    const { reporter: r, stderr } = reporter({}, true, 40);
    r.progress("fetch+verify sigstore", 1, 3, "a very long label that goes on and on and on");
    const drawn = stderr.text().split("\r\x1b[2K").pop()!;
    expect([...drawn].length).toBeLessThanOrEqual(39);
    expect(drawn.endsWith("…")).toBe(true);
  });

  it("off a terminal prints plain lines: each phase's first and last step, no escape codes", () => {
    const { reporter: r, stderr } = reporter({}, false);
    expect(r.tty).toBe(false);
    for (let i = 1; i <= 50; i++) r.progress("fetch", i, 50, `release ${i}`);
    r.progress("write", 0, 1, "out.tar");
    r.progress("write", 1, 1, "out.tar");
    expect(stderr.text()).toBe(
      "fetch 1/50 release 1\nfetch 50/50 release 50\nwrite 0/1 out.tar\nwrite 1/1 out.tar\n",
    );
  });

  it("--verbose prints every step and the details; --quiet prints only warnings on stderr", () => {
    const verbose = reporter({ verbose: true }, false);
    for (let i = 1; i <= 3; i++) verbose.reporter.progress("push", i, 3);
    verbose.reporter.debug("a detail");
    verbose.reporter.info("an info");
    expect(verbose.stderr.text()).toBe("push 1/3\npush 2/3\npush 3/3\na detail\nan info\n");

    for (const tty of [true, false]) {
      const quiet = reporter({ quiet: true }, tty);
      quiet.reporter.progress("push", 1, 3);
      quiet.reporter.info("an info");
      quiet.reporter.debug("a detail");
      quiet.reporter.warn("a warning");
      quiet.reporter.result("a result");
      expect(quiet.stderr.text()).toBe("warning: a warning\n");
      expect(quiet.stdout.text()).toBe("a result\n");
    }
  });

  it("TERM=dumb is not a terminal even when isTTY says so", () => {
    process.env.TERM = "dumb";
    try {
      expect(reporter({}, true).reporter.tty).toBe(false);
    } finally {
      process.env.TERM = "xterm-256color";
    }
  });
});

describe("commands on a (fake) terminal", () => {
  it("bundle create shows every phase, per release, on stderr and nothing but results on stdout", async () => {
    const good = world.data.good[1]!;
    const { reporter: r, stdout, stderr } = reporter({}, true);
    const result = await runCreate(
      {
        release: [good.version],
        arch: ["x86_64", "multi"],
        releaseRepo: world.releaseRepo,
        plainHttp: true,
        signatureStore: [world.stores.primary],
        keyring: [world.keys.openpgpTrusted],
        sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
        output: path.join(dir, "tty.tar"),
      },
      r,
    );
    expect(result?.ok).toBe(true);
    const err = stderr.text();
    for (const phase of ["resolve", "fetch+verify openpgp", "fetch+verify sigstore", "write"])
      expect(err).toContain(`\r\x1b[2K${phase} [`);
    expect(err).toContain(`${good.version} (x86_64)`);
    expect(err).toContain(`${good.version} (multi)`);
    expect(stdout.text()).toBe("");
  });

  it("bundle verify redraws its progress and prints its result lines on stdout only", async () => {
    const { reporter: r, stdout, stderr } = reporter({}, true);
    const { result } = await runVerify(
      archive,
      {
        keyring: [world.keys.openpgpTrusted],
        sigstoreKey: [world.keys.sigstoreRsa, world.keys.sigstoreEcdsa],
      },
      r,
    );
    expect(result.ok).toBe(true);
    expect(stderr.text()).toContain("\r\x1b[2Kverify [");
    expect(stdout.text()).toBe("");
  });
});

describe("commands through the real CLI (stderr is a pipe: not a terminal)", () => {
  it("bundle create prints plain progress lines on stderr and only the result on stdout", async () => {
    const good = world.data.good[2]!;
    const out = path.join(dir, "plain.tar");
    const run = await runCli([
      "bundle",
      "create",
      "--release",
      good.version,
      ...createArgs(world),
      "-o",
      out,
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).not.toMatch(ESCAPES);
    const lines = run.stderr.trim().split("\n");
    for (const phase of ["resolve", "fetch+verify openpgp", "fetch+verify sigstore", "write"])
      expect(lines.some((l) => l.startsWith(`${phase} `))).toBe(true);
    expect(lines).toContain(`resolve 1/1 ${good.version} (x86_64)`);
    expect(run.stdout.split("\n")[0]).toBe(
      `wrote ${out} (${run.stdout.match(/\((\d+) bytes\)/)![1]} bytes)`,
    );
    expect(run.stdout).not.toContain("resolve");
  });

  it("--quiet leaves only warnings on stderr and --json one JSON document on stdout, for every command that reads an archive", async () => {
    const commands: string[][] = [
      ["bundle", "verify", archive, ...keyArgs(world)],
      ["bundle", "inspect", archive],
      ["bundle", "diff", archive, archive],
      [
        "bundle",
        "export-manifests",
        archive,
        path.join(dir, "m-quiet"),
        ...keyArgs(world),
        "--to",
        "mirror.example.com/ocp/release",
      ],
      [
        "bundle",
        "export-store",
        archive,
        path.join(dir, "s-quiet"),
        ...keyArgs(world),
        "--url",
        "https://web.example.com/sigs",
      ],
    ];
    for (const args of commands) {
      const quiet = await runCli([...args, "--quiet"]);
      expect(quiet.code, args.join(" ")).toBe(0);
      // Warnings stay (export-manifests warns that one policy holds one of the two keys).
      const stray = quiet.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("warning: "));
      expect(stray, args.join(" ")).toEqual([]);
      expect(quiet.stdout.length).toBeGreaterThan(0);
      const json = await runCli([...args, "--json"]);
      expect(json.code).toBe(0);
      expect(() => JSON.parse(json.stdout) as unknown).not.toThrow();
      expect(json.stderr).not.toMatch(ESCAPES);
    }
  });

  it("--verbose adds details on stderr; --quiet with --verbose is a usage error on every command", async () => {
    const good = world.data.good[0]!;
    const verbose = await runCli([
      "bundle",
      "create",
      "--release",
      good.version,
      ...createArgs(world),
      "--dry-run",
      "--verbose",
    ]);
    expect(verbose.code).toBe(0);
    const plain = await runCli([
      "bundle",
      "create",
      "--release",
      good.version,
      ...createArgs(world),
      "--dry-run",
    ]);
    expect(verbose.stderr.split("\n").length).toBeGreaterThanOrEqual(
      plain.stderr.split("\n").length,
    );
    for (const cmd of [
      ["bundle", "create"],
      ["bundle", "verify", archive],
      ["bundle", "inspect", archive],
      ["bundle", "diff", archive, archive],
      ["bundle", "apply", archive],
      ["bundle", "export-manifests", archive, dir],
      ["bundle", "export-store", archive, dir],
      ["check"],
    ]) {
      const run = await runCli([...cmd, "--quiet", "--verbose"]);
      expect(run.code, cmd.join(" ")).toBe(2);
      expect(run.stderr).toContain("cannot be used with");
      expect(run.stdout).toBe("");
    }
  });

  it("every command's --help lists --json, --quiet and --verbose, and shows examples", async () => {
    for (const cmd of [
      ["bundle", "create"],
      ["bundle", "verify"],
      ["bundle", "inspect"],
      ["bundle", "diff"],
      ["bundle", "apply"],
      ["bundle", "export-manifests"],
      ["bundle", "export-store"],
      ["check"],
    ]) {
      const run = await runCli([...cmd, "--help"]);
      expect(run.code, cmd.join(" ")).toBe(0);
      for (const flag of ["--json", "-q, --quiet", "-v, --verbose", "Examples:", "sigferry "])
        expect(run.stdout, `${cmd.join(" ")} --help`).toContain(flag);
    }
  });
});
