/**
 * The sigferry command line: commander wiring, lazy-loaded commands, and the one
 * top-level catch that turns errors into a hint and an exit code.
 */
import { Command, CommanderError, Option } from "commander";
import { EXIT, SigferryError, isSigferryError } from "./errors.js";
import { DEFAULT_CONCURRENCY } from "./net/policy.js";
import { JSON_SCHEMA_VERSION } from "./commands/output.js";
import { redact } from "./redact.js";
import { VERSION_LINE } from "./version.js";
import type { CommandName, OutputOptions, Reporter } from "./commands/output.js";
import type { ApplyOptions } from "./commands/bundle-apply.js";
import type { CreateOptions } from "./commands/bundle-create.js";
import type { InspectOptions } from "./commands/bundle-inspect.js";
import type { VerifyOptions } from "./commands/bundle-verify.js";
import type { CheckOptions } from "./commands/check.js";
import type { ExportManifestsOptions } from "./commands/export-manifests.js";
import type { ExportStoreOptions } from "./commands/export-store.js";

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Adds --json/--quiet/--verbose, the same on every command. */
function withOutput(cmd: Command): Command {
  return cmd
    .option(
      "--json",
      "print the result as one JSON document on stdout (docs/schema/sigferry-output.schema.json)",
    )
    .addOption(
      new Option(
        "-q, --quiet",
        "no progress or info on stderr; results and warnings only",
      ).conflicts("verbose"),
    )
    .option("-v, --verbose", "print details of every step on stderr");
}

/** Adds the trusted-key flags of every command that verifies an archive. */
function withTrust(cmd: Command): Command {
  return cmd
    .option("--keyring <file>", "trusted armored OpenPGP public key file (repeatable)", collect)
    .option("--sigstore-key <pem>", "trusted sigstore public key, PEM (repeatable)", collect);
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
/** The reporter of the running command, so the top-level catch can end its progress line. */
let activeReporter: Reporter | undefined;

async function reporterFor(options: OutputOptions, command: CommandName): Promise<Reporter> {
  const { Reporter } = await import("./commands/output.js");
  activeReporter = new Reporter(options, undefined, { command });
  return activeReporter;
}

const BUNDLE_COMMANDS = [
  "create",
  "verify",
  "inspect",
  "apply",
  "diff",
  "export-manifests",
  "export-store",
] as const;

/** The command an argv names ("sigferry" when none), for the `command` field of the error document. */
export function commandNameOf(argv: readonly string[]): CommandName {
  const words = argv.filter((a) => !a.startsWith("-"));
  if (words[0] === "check") return "check";
  if (words[0] === "bundle" && (BUNDLE_COMMANDS as readonly string[]).includes(words[1] ?? ""))
    return `bundle ${words[1]}` as CommandName;
  return "sigferry";
}

/** Whether argv asks for JSON output (--json, or inspect's --format json). */
function wantsJson(argv: readonly string[]): boolean {
  return argv.some(
    (a, i) =>
      a === "--json" || a === "--format=json" || (a === "--format" && argv[i + 1] === "json"),
  );
}

/** Builds the program; exported for tests that run the CLI in-process. */
export function buildProgram(): Command {
  const program = new Command()
    .name("sigferry")
    .description("Carry OpenShift release signatures (OpenPGP and sigstore) across an air gap.")
    .version(VERSION_LINE, "-V, --version", "print the version and the bundle format version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .addHelpText(
      "after",
      `
Connected side, then disconnected side:
  sigferry bundle create --release 4.21.3 --arch x86_64 -o sigs-4.21.3.tar.gz
  sigferry bundle verify sigs-4.21.3.tar.gz
  sigferry bundle apply sigs-4.21.3.tar.gz --to mirror.example.com:8443/ocp/release
  sigferry check --to mirror.example.com:8443/ocp/release --bundle sigs-4.21.3.tar.gz

Every command takes --json, --quiet and --verbose; run "sigferry bundle <command> --help"
for its options. The user guide: docs/user-guide.md.`,
    );

  const bundle = program
    .command("bundle")
    .description("create, verify, inspect, diff, apply and export signature bundles");

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
        .option("--concurrency <n>", "parallel requests", String(DEFAULT_CONCURRENCY))
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
      const reporter = await reporterFor(options, "bundle create");
      const { runCreate, printCreateResult } = await import("./commands/bundle-create.js");
      const result = await runCreate(options, reporter, controller.signal);
      if (!result) return; // --dry-run printed the plan
      printCreateResult(result, reporter);
      if (!result.ok) process.exitCode = EXIT.SIGNATURE;
    });

  withTrust(
    withOutput(
      bundle
        .command("verify")
        .description("check an archive's integrity and every signature in it, offline")
        .argument("<archive>", "bundle archive (.tar, .tar.gz)"),
    ),
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
      const reporter = await reporterFor(options, "bundle verify");
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
      .argument("<archive>", "bundle archive (.tar, .tar.gz)")
      .addOption(
        new Option(
          "--format <format>",
          "text, markdown (the REPORT.md summary, for a ticket) or json",
        ).choices(["text", "markdown", "json"]),
      ),
  )
    .addHelpText(
      "after",
      `
--json is the same as --format json.

Examples:
  sigferry bundle inspect sigs-4.15.0.tar.gz
  sigferry bundle inspect sigs-4.15.0.tar.gz --format markdown > ticket-comment.md
  sigferry bundle inspect sigs-4.15.0.tar.gz --json | jq '.releases[].digest'`,
    )
    .action(async (file: string, options: InspectOptions) => {
      const { inspectArchive, inspectFormat, printInspected } =
        await import("./commands/bundle-inspect.js");
      const format = inspectFormat(options);
      const reporter = await reporterFor({ ...options, json: format === "json" }, "bundle inspect");
      printInspected(await inspectArchive(file), format, reporter);
    });

  withOutput(
    bundle
      .command("diff")
      .description("what a newer archive adds or drops compared with an older one (UNVERIFIED)")
      .argument("<old>", "the older bundle archive")
      .argument("<new>", "the newer bundle archive"),
  )
    .addHelpText(
      "after",
      `
Compares releases, image digests, signatures (by digest and signer), sigstore
artifacts and keys. Exit code 0 whatever the difference; 5 when an archive is
corrupt, 2 when it cannot be read.

Examples:
  sigferry bundle diff sigs-2025-05.tar.gz sigs-2025-06.tar.gz
  sigferry bundle diff old.tar new.tar --json | jq '.releases.added'`,
    )
    .action(async (oldFile: string, newFile: string, options: OutputOptions) => {
      const reporter = await reporterFor(options, "bundle diff");
      const { runDiff, printDiffResult } = await import("./commands/bundle-diff.js");
      printDiffResult(await runDiff(oldFile, newFile, options, reporter), reporter);
    });

  withTrust(
    withOutput(
      bundle
        .command("export-manifests")
        .description(
          "verify an archive and write its ConfigMaps (and mirror resources) as a kustomize directory",
        )
        .argument("<archive>", "bundle archive (.tar, .tar.gz)")
        .argument(
          "<dir>",
          "directory to write (replaced as a whole; new, empty, or written by sigferry)",
        )
        .option(
          "--to <host[:port]/repo>",
          "mirror repository: also write the ImageDigestMirrorSet and ClusterImagePolicy",
        ),
    ),
  )
    .addHelpText(
      "after",
      `
The same files as \`bundle apply --skip-cluster --manifests-dir\`, without touching
a registry or a cluster: for GitOps (Argo CD, ACM) or \`oc apply -k <dir>\`.

Examples:
  sigferry bundle export-manifests sigs.tar.gz clusters/prod/signatures --to mirror.example.com:8443/ocp/release
  kubectl kustomize clusters/prod/signatures`,
    )
    .action(async (file: string, dir: string, options: ExportManifestsOptions) => {
      const reporter = await reporterFor(options, "bundle export-manifests");
      const { runExportManifests, printExportManifestsResult } =
        await import("./commands/export-manifests.js");
      printExportManifestsResult(await runExportManifests(file, dir, options, reporter), reporter);
    });

  withTrust(
    withOutput(
      bundle
        .command("export-store")
        .description(
          "verify an archive and lay its OpenPGP signatures out as a signature store for an HTTP server",
        )
        .argument("<archive>", "bundle archive (.tar, .tar.gz)")
        .argument("<dir>", "store directory (created; signatures already in it are kept)")
        .option(
          "--url <base>",
          "URL the directory will be served at, for the ClusterVersion patch (default: a placeholder to edit)",
        )
        .option(
          "--ca-configmap <name>",
          "ConfigMap in openshift-config whose ca.crt is the server's CA bundle",
        ),
    ),
  )
    .addHelpText(
      "after",
      `
Writes <dir>/sha256=<hex>/signature-<N> (the layout of mirror.openshift.com) and
<dir>/clusterversion-signaturestores.yaml, a patch setting ClusterVersion
spec.signatureStores to --url. Setting signatureStores replaces the default stores.

Examples:
  sigferry bundle export-store sigs.tar.gz /srv/www/signatures --url https://web.example.com/signatures
  oc patch clusterversion version --type merge --patch-file /srv/www/signatures/clusterversion-signaturestores.yaml`,
    )
    .action(async (file: string, dir: string, options: ExportStoreOptions) => {
      const reporter = await reporterFor(options, "bundle export-store");
      const { runExportStore, printExportStoreResult } = await import("./commands/export-store.js");
      printExportStoreResult(await runExportStore(file, dir, options, reporter), reporter);
    });

  withRegistry(
    withTrust(
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
          .option("--dry-run", "print what would be pushed and applied; change nothing")
          .option("--concurrency <n>", "parallel requests", String(DEFAULT_CONCURRENCY)),
      ),
    ),
  )
    .addHelpText(
      "after",
      `
Examples:
  sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp/release --dry-run
  sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp/release --ca-file mirror-ca.pem
  sigferry bundle apply sigs.tar.gz --to mirror.example.com:8443/ocp/release --skip-cluster --manifests-dir out/
      (then: oc apply -k out/)

A release image missing from the mirror is a warning, not an error (exit code 0):
the signatures are pushed anyway; mirror the release, then run \`sigferry check\`.`,
    )
    .action(async (file: string, options: ApplyOptions) => {
      const reporter = await reporterFor(options, "bundle apply");
      const { runApply, printApplyResult } = await import("./commands/bundle-apply.js");
      printApplyResult(await runApply(file, options, reporter, controller.signal), reporter);
    });

  withRegistry(
    withTrust(
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
          .option("--concurrency <n>", "parallel requests", String(DEFAULT_CONCURRENCY)),
      ),
    ),
  )
    .addHelpText(
      "after",
      `
Trust: the keys given, pinned keys carried by --bundle, and the cluster's own keys
(the CVO keyring in openshift-config-managed/release-verification and the
"openshift" ClusterImagePolicy).

Exit code 0 when every signature is in place, 7 when something is missing.

Examples:
  sigferry check --to mirror.example.com:8443/ocp/release --bundle sigs.tar.gz
  sigferry check --to mirror.example.com:8443/ocp/release --release 4.21.3 --arch multi --json`,
    )
    .action(async (options: CheckOptions) => {
      const reporter = await reporterFor(options, "check");
      const { runCheck, printCheckResult } = await import("./commands/check.js");
      process.exitCode = printCheckResult(
        await runCheck(options, reporter, controller.signal),
        reporter,
      );
    });

  return program;
}

/** Prints an error (redacted) with its hint, as text on stderr and, with --json, as the error document on stdout. */
function report(err: unknown, json: boolean, command: CommandName): number {
  const e = isSigferryError(err)
    ? err
    : new SigferryError("INTERNAL", err instanceof Error ? err.message : String(err), {
        cause: err,
      });
  activeReporter?.endProgress();
  if (json) {
    const doc = {
      schemaVersion: JSON_SCHEMA_VERSION,
      command,
      ok: false,
      error: { code: e.code, message: e.message, hint: e.hint, details: e.details },
    };
    process.stdout.write(`${redact(JSON.stringify(doc, null, 2))}\n`);
  }
  process.stderr.write(`${redact(`error: ${e.message}`)}\n${redact(`hint: ${e.hint}`)}\n`);
  if (e.code === "INTERNAL" && err instanceof Error && err.stack && process.env.SIGFERRY_DEBUG) {
    process.stderr.write(`${redact(err.stack)}\n`);
  }
  return e.exitCode;
}

/**
 * What an interrupted command did and did not do, once it has stopped: true
 * of every moment a Ctrl-C can land (test/reliability/interrupt.test.ts).
 */
export function interruptedMessage(command: CommandName): string {
  switch (command) {
    case "bundle create":
      // The archive is written last, to a temp file renamed on success and removed on failure.
      return "interrupted: no archive was written; run the same command again";
    case "bundle apply":
      // Blobs are pushed before the tag that names them; each apply is one request.
      return (
        "interrupted before apply finished: every .sig tag already in the mirror is complete " +
        "(its blobs were pushed before it) and each cluster object was applied whole or not at all, " +
        "but some may be missing; run the same command again to finish (what is in place is skipped)"
      );
    case "bundle verify":
    case "bundle inspect":
    case "bundle diff":
    case "check":
      return "interrupted: nothing was changed";
    default:
      return "interrupted before the command finished; run it again";
  }
}

/** Runs the CLI with `argv` and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // A reader that stops early (`sigferry … | head`) is not an error: stop quietly.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE")
        process.exit(typeof process.exitCode === "number" ? process.exitCode : EXIT.OK);
      throw err;
    });
  }
  const program = buildProgram();
  const json = wantsJson(argv);
  const command = commandNameOf(argv);
  const onSignal = (): void => {
    if (controller.signal.aborted) process.exit(EXIT.INTERRUPTED);
    activeReporter?.endProgress();
    // Said before the stop is done: only what is happening, not what will have happened.
    process.stderr.write("\ninterrupted: stopping, aborting the requests in flight\n");
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
      // Commander has printed the message on stderr; a --json caller also gets the error document.
      if (json) {
        const message = err.message.replace(/^error:\s*/, "");
        const usage = new SigferryError("USAGE", message);
        process.stdout.write(
          `${JSON.stringify({ schemaVersion: JSON_SCHEMA_VERSION, command, ok: false, error: { code: usage.code, message, hint: usage.hint, details: {} } }, null, 2)}\n`,
        );
      }
      return EXIT.USAGE;
    }
    if (controller.signal.aborted)
      return report(new SigferryError("INTERRUPTED", interruptedMessage(command)), json, command);
    return report(err, json, command);
  }
}

/** Entry point used by bin/sigferry.js. */
export async function run(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2));
}
