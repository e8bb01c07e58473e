/**
 * The sigferry command line: commander wiring, lazy-loaded commands, and the one
 * top-level catch that turns errors into a hint and an exit code.
 */
import { Command, CommanderError, Option } from "commander";
import { EXIT, SigferryError, isSigferryError } from "./errors.js";
import { redact } from "./redact.js";
import { VERSION_LINE } from "./version.js";
import type { Reporter } from "./commands/output.js";
import type { ApplyOptions } from "./commands/bundle-apply.js";
import type { CreateOptions } from "./commands/bundle-create.js";
import type { VerifyOptions } from "./commands/bundle-verify.js";
import type { CheckOptions } from "./commands/check.js";

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Adds --json/--quiet/--verbose to a command. */
function withOutput(cmd: Command): Command {
  return cmd
    .option("--json", "print the result as JSON on stdout")
    .option("-q, --quiet", "print only results and warnings")
    .option("-v, --verbose", "print details of every step on stderr");
}

/** Adds the registry connection flags to a command. */
function withRegistry(cmd: Command): Command {
  return cmd
    .option("--plain-http", "talk to the registry over http:// (no TLS)")
    .option("--ca-file <pem>", "trust this CA (PEM) in addition to the system CAs")
    .option(
      "--auth-file <json>",
      "registry credentials (auth.json / docker config.json / pull secret)",
    )
    .addOption(
      new Option(
        "--insecure-skip-tls-verify",
        "do not verify the registry's TLS certificate (warns)",
      ),
    );
}

const controller = new AbortController();

async function reporterFor(options: {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}): Promise<Reporter> {
  const { Reporter } = await import("./commands/output.js");
  return new Reporter(options);
}

/** Builds the program; exported for tests that run the CLI in-process. */
export function buildProgram(): Command {
  const program = new Command()
    .name("sigferry")
    .description("Carry OpenShift release signatures (OpenPGP and sigstore) across an air gap.")
    .version(VERSION_LINE, "-V, --version", "print the version and the bundle format version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  const bundle = program
    .command("bundle")
    .description("create, verify, inspect and apply signature bundles");

  withRegistry(
    withOutput(
      bundle
        .command("create")
        .description("collect and verify release signatures into one archive (connected side)")
        .option("--release <version>", "release version, e.g. 4.15.0 (repeatable)", collect)
        .option("--digest <sha256:hex>", "release digest (repeatable)", collect)
        .option(
          "--arch <arch>",
          "x86_64, aarch64, ppc64le, s390x or multi (repeatable; default x86_64)",
          collect,
        )
        .option("--channel <name>", "update-graph channel, e.g. stable-4.21 (repeatable)", collect)
        .option("--min <version>", "lowest version within the channel(s), inclusive")
        .option("--max <version>", "highest version within the channel(s), inclusive")
        .option(
          "--shortest-path",
          "only the releases on the shortest upgrade path from --min to --max",
        )
        .option("--full", "every release of the channel(s)")
        .option("--accept-risks", "follow conditional update edges (known risks) too")
        .option(
          "--graph-url <url>",
          "update graph service (default https://api.openshift.com/api/upgrades_info/v1/graph)",
        )
        .option("--config <file.yaml>", "the selection written as a file (see docs/selection.md)")
        .option(
          "--release-repo <host[:port]/path>",
          "release repository (default quay.io/openshift-release-dev/ocp-release)",
        )
        .option(
          "--signature-store <url>",
          "OpenPGP signature store (repeatable; default: the two public stores)",
          collect,
        )
        .option("--keyring <file>", "trusted armored OpenPGP public key file (repeatable)", collect)
        .option("--sigstore-key <pem>", "trusted sigstore public key, PEM (repeatable)", collect)
        .option(
          "--require <kinds>",
          "signature kinds that must be present: openpgp,sigstore (default) or none",
        )
        .option(
          "--keep-going",
          "write a bundle recording what is missing instead of failing (exit code still non-zero)",
        )
        .option("--concurrency <n>", "parallel requests", "8")
        .option(
          "--dry-run",
          "print the resolved plan (releases, digests, upgrade edges, risks); fetch no signature",
        )
        .option("-o, --output <file>", "archive to write: .tar, .tar.gz or .tgz"),
    ),
  )
    .addHelpText(
      "after",
      `
Examples:
  sigferry bundle create --release 4.15.0 -o sigs-4.15.0.tar.gz
  sigferry bundle create --release 4.21.3 --arch x86_64 --arch multi --keyring release-key-2.asc \\
      --sigstore-key redhat-sigstore.pem -o sigs.tar
  sigferry bundle create --channel stable-4.21 --min 4.21.3 -o sigs-stable-4.21.tar.gz
  sigferry bundle create --channel stable-4.21 --min 4.20.8 --max 4.21.5 --shortest-path --dry-run
  sigferry bundle create --config selection.yaml -o sigs.tar.gz`,
    )
    .action(async (options: CreateOptions) => {
      const reporter = await reporterFor(options);
      const { runCreate, printCreateResult } = await import("./commands/bundle-create.js");
      const result = await runCreate(options, reporter, controller.signal);
      if (!result) return; // --dry-run printed the plan
      printCreateResult(result, reporter);
      if (!result.ok) process.exitCode = EXIT.SIGNATURE;
    });

  withOutput(
    bundle
      .command("verify")
      .description("check an archive's integrity and every signature in it, offline")
      .argument("<archive>", "bundle archive (.tar, .tar.gz)")
      .option("--keyring <file>", "trusted armored OpenPGP public key file (repeatable)", collect)
      .option("--sigstore-key <pem>", "trusted sigstore public key, PEM (repeatable)", collect),
  )
    .addHelpText(
      "after",
      `
Keys carried inside the archive are trusted only when they are Red Hat's pinned keys;
pass your own with --keyring / --sigstore-key.

Examples:
  sigferry bundle verify sigs-4.15.0.tar.gz
  sigferry bundle verify sigs.tar --keyring release-key-2.asc --sigstore-key redhat-sigstore.pem --json`,
    )
    .action(async (file: string, options: VerifyOptions) => {
      const reporter = await reporterFor(options);
      const { runVerify, printVerifyResult } = await import("./commands/bundle-verify.js");
      const { result } = await runVerify(file, options, reporter);
      printVerifyResult(result, reporter);
      process.exitCode = result.exitCode;
    });

  withOutput(
    bundle
      .command("inspect")
      .description(
        "list what an archive holds, without trusting it (UNVERIFIED until verify passes)",
      )
      .argument("<archive>", "bundle archive (.tar, .tar.gz)"),
  )
    .addHelpText("after", "\nExample:\n  sigferry bundle inspect sigs-4.15.0.tar.gz --json")
    .action(
      async (file: string, options: { json?: boolean; quiet?: boolean; verbose?: boolean }) => {
        const reporter = await reporterFor(options);
        const { runInspect, printInspectResult } = await import("./commands/bundle-inspect.js");
        printInspectResult(await runInspect(file, options), reporter);
      },
    );

  withRegistry(
    withOutput(
      bundle
        .command("apply")
        .description(
          "verify an archive, push its .sig artifacts to the mirror and apply its ConfigMaps",
        )
        .argument("<archive>", "bundle archive (.tar, .tar.gz)")
        .option("--to <host[:port]/repo>", "mirror repository that holds the release images")
        .option("--kubeconfig <path>", "kubeconfig (default: KUBECONFIG, then ~/.kube/config)")
        .option("--context <name>", "kubeconfig context")
        .option("--skip-registry", "do not push .sig artifacts")
        .option("--skip-cluster", "do not touch the cluster; write the manifests instead")
        .option(
          "--manifests-dir <dir>",
          "write ConfigMaps, ImageDigestMirrorSet, ClusterImagePolicy and kustomization.yaml here",
        )
        .option(
          "--mirror-resources",
          "also apply the ImageDigestMirrorSet and ClusterImagePolicy to the cluster",
        )
        .option("--keyring <file>", "trusted armored OpenPGP public key file (repeatable)", collect)
        .option("--sigstore-key <pem>", "trusted sigstore public key, PEM (repeatable)", collect)
        .option("--dry-run", "print what would be pushed and applied; change nothing")
        .option("--concurrency <n>", "parallel requests", "8"),
    ),
  )
    .addHelpText(
      "after",
      `
Examples:
  sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp/release --dry-run
  sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp/release --ca-file mirror-ca.pem
  sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp/release --skip-cluster --manifests-dir out/
      (then: oc apply -k out/)`,
    )
    .action(async (file: string, options: ApplyOptions) => {
      const reporter = await reporterFor(options);
      const { runApply, printApplyResult } = await import("./commands/bundle-apply.js");
      printApplyResult(await runApply(file, options, reporter, controller.signal), reporter);
    });

  withRegistry(
    withOutput(
      program
        .command("check")
        .description(
          "before an install or update: does the mirror and the cluster hold every signature needed?",
        )
        .option("--to <host[:port]/repo>", "mirror repository")
        .option("--bundle <archive>", "check the releases of this (verified) bundle")
        .option(
          "--release <version>",
          "release version, resolved as a tag in the mirror (repeatable)",
          collect,
        )
        .option("--digest <sha256:hex>", "release digest (repeatable)", collect)
        .option("--arch <arch>", "arch for --release (repeatable; default x86_64)", collect)
        .option("--kubeconfig <path>", "kubeconfig (default: KUBECONFIG, then ~/.kube/config)")
        .option("--context <name>", "kubeconfig context")
        .option("--skip-cluster", "check the mirror only")
        .option("--keyring <file>", "trusted armored OpenPGP public key file (repeatable)", collect)
        .option("--sigstore-key <pem>", "trusted sigstore public key, PEM (repeatable)", collect)
        .option("--concurrency <n>", "parallel requests", "8"),
    ),
  )
    .addHelpText(
      "after",
      `
Trust: the keys given, pinned keys carried by --bundle, and the cluster's own keys
(the CVO keyring in openshift-config-managed/release-verification and the
"openshift" ClusterImagePolicy).

Examples:
  sigferry check --to mirror.example.com:8443/ocp/release --bundle sigs.tar.gz
  sigferry check --to mirror.example.com:8443/ocp/release --release 4.21.3 --arch multi --json`,
    )
    .action(async (options: CheckOptions) => {
      const reporter = await reporterFor(options);
      const { runCheck, printCheckResult } = await import("./commands/check.js");
      process.exitCode = printCheckResult(
        await runCheck(options, reporter, controller.signal),
        reporter,
      );
    });

  return program;
}

/** Prints an error (redacted) with its hint, as text on stderr and, with --json, as JSON on stdout. */
function report(err: unknown, json: boolean): number {
  const e = isSigferryError(err)
    ? err
    : new SigferryError("INTERNAL", err instanceof Error ? err.message : String(err), {
        cause: err,
      });
  if (json) {
    process.stdout.write(
      `${redact(JSON.stringify({ ok: false, error: { code: e.code, message: e.message, hint: e.hint, details: e.details } }, null, 2))}\n`,
    );
  }
  process.stderr.write(`${redact(`error: ${e.message}`)}\n${redact(`hint: ${e.hint}`)}\n`);
  if (e.code === "INTERNAL" && err instanceof Error && err.stack && process.env.SIGFERRY_DEBUG) {
    process.stderr.write(`${redact(err.stack)}\n`);
  }
  return e.exitCode;
}

/** Runs the CLI with `argv` and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes("--json");
  const onSignal = (): void => {
    if (controller.signal.aborted) process.exit(EXIT.INTERRUPTED);
    process.stderr.write(
      "\ninterrupted: stopping (in-flight requests aborted, temporary files removed)\n",
    );
    controller.abort(new SigferryError("INTERRUPTED", "interrupted by signal"));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === "commander.helpDisplayed" ||
        err.code === "commander.version" ||
        err.code === "commander.help"
      ) {
        return EXIT.OK;
      }
      return EXIT.USAGE;
    }
    if (controller.signal.aborted)
      return report(
        new SigferryError("INTERRUPTED", "interrupted; nothing was left half-written"),
        json,
      );
    return report(err, json);
  }
}

/** Entry point used by bin/sigferry.js. */
export async function run(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2));
}
