/**
 * `sigferry bundle verify <archive>`: the one gate every later command passes
 * through. Integrity first (sidecar, checksums, index), then every signature
 * again, offline, against trusted keys only.
 */
import { openBundle, type OpenedBundle } from "../archive/bundle.js";
import {
  bundleTrust,
  verifyBundle,
  type CheckLine,
  type VerifyReport,
  type VerifyTrustOptions,
} from "../verify/bundle.js";
import { EXIT, ERROR_CODES, SigferryError, describeCode, type ErrorCode } from "../errors.js";
import type { OutputOptions, Reporter } from "./output.js";

/** Options of `bundle verify`. */
export interface VerifyOptions extends VerifyTrustOptions, OutputOptions {}

/** The --json document of verify. */
export interface VerifyResult extends VerifyReport {
  archive: { file: string; sha256: string; size: number; sidecar: "ok" | "absent" };
}

/** Opens and verifies a bundle; integrity failures throw, signature results are returned line by line. */
export async function runVerify(
  file: string,
  options: VerifyOptions,
  reporter: Reporter,
  hooks: {
    /**
     * Told once the archive is read and its integrity checked, before any
     * signature is: `apply` starts its read-only registry checks meanwhile.
     */
    onOpened?: (bundle: OpenedBundle) => void;
  } = {},
): Promise<{ result: VerifyResult; bundle: OpenedBundle }> {
  reporter.progress("verify", 0, 2, "integrity");
  const bundle = await openBundle(file);
  hooks.onOpened?.(bundle);
  if (bundle.sidecar === "absent")
    reporter.warn(`no ${file}.sha256 beside the archive: its own checksum was not checked`);
  reporter.progress("verify", 1, 2, "signatures");
  const trust = await bundleTrust(bundle, options);
  if (trust.openpgp.length === 0 && bundle.index.openpgp.length > 0) {
    reporter.warn(
      "no trusted OpenPGP key: the archive carries no pinned Red Hat key; pass --keyring",
    );
  }
  if (trust.sigstore.length === 0 && bundle.index.sigstore.length > 0) {
    reporter.warn(
      "no trusted sigstore key: the archive carries no pinned Red Hat key; pass --sigstore-key",
    );
  }
  const report = await verifyBundle(bundle, trust);
  reporter.progress("verify", 2, 2, "done");
  return {
    result: {
      ...report,
      archive: { file, sha256: bundle.sha256, size: bundle.size, sidecar: bundle.sidecar },
    },
    bundle,
  };
}

/** Prints a verify result: one line per release and signature. */
export function printVerifyResult(result: VerifyResult, reporter: Reporter): void {
  reporter.resultJson(result);
  if (reporter.json) return;
  reporter.result(
    `archive ${result.archive.file} sha256 ${result.archive.sha256} (sidecar: ${result.archive.sidecar})`,
  );
  for (const l of result.lines) {
    const what = [l.kind.padEnd(9), (l.release ?? "").padEnd(20), l.member ?? l.digest ?? ""].join(
      " ",
    );
    reporter.result(
      `${l.ok ? "OK  " : "FAIL"} ${what}  ${l.ok ? l.message : `${l.code}: ${l.message}`}`,
    );
  }
  const failed = result.lines.filter((l) => !l.ok).length;
  reporter.result(
    failed === 0
      ? `verified: ${result.lines.length} check(s) passed`
      : `NOT VERIFIED: ${failed} of ${result.lines.length} check(s) failed`,
  );
}

/**
 * Turns a failed report into an error for commands that must stop (apply, check),
 * with the exit code `bundle verify` gives the same archive: a signature that no
 * longer verifies inside an archive is tampering (5), not "a signature does not
 * verify" at the source (4), and a blob that does not hash to its name is not a
 * remote failure (3).
 */
export function assertVerified(result: VerifyResult): void {
  if (result.ok) return;
  const failed = result.lines.filter((l) => !l.ok);
  // The first line that decided the verdict, by the rule verifyBundle applies.
  const trustOnly = (l: CheckLine): boolean =>
    l.code === "UNTRUSTED_SIGNER" || l.code === "SIGNATURE_MISSING";
  const first =
    (result.exitCode === EXIT.CORRUPT
      ? failed.find((l) => !trustOnly(l))
      : result.exitCode === EXIT.UNTRUSTED
        ? failed.find((l) => l.code === "UNTRUSTED_SIGNER")
        : undefined) ?? failed[0]!;
  const own =
    first.code !== undefined && first.code in ERROR_CODES ? (first.code as ErrorCode) : undefined;
  let code: ErrorCode = own ?? "SIGNATURE_INVALID";
  // Why: the line's own code may mean something else at the source (SIGNATURE_INVALID is 4,
  // DIGEST_MISMATCH 3); inside an archive that verified when it was made, it is tampering.
  if (describeCode(code).exit !== result.exitCode) {
    code =
      result.exitCode === EXIT.CORRUPT
        ? "ARCHIVE_CORRUPT"
        : result.exitCode === EXIT.UNTRUSTED
          ? "UNTRUSTED_SIGNER"
          : "SIGNATURE_MISSING";
  }
  const where = [first.kind, first.release, first.member ? undefined : first.digest]
    .filter((x) => x)
    .join(" ");
  throw new SigferryError(
    code,
    `bundle verification failed (${failed.length} of ${result.lines.length} checks); first: ${where}: ${first.code ?? "FAILED"}: ${first.message}`,
    {
      details: {
        member: first.member,
        digest: first.digest,
        check: first.code,
        failed: failed.length,
      },
    },
  );
}
