/**
 * Tools for building tampered bundles in tests: read an archive's members,
 * change them, and write them back either as an attacker who re-hashes
 * (checksum list and sidecar recomputed) or by patching raw bytes of a `.tar`
 * (checksums left stale). Every helper copies; nothing changes its input.
 */
import { renderReport } from "../../src/core/report.js";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { readArchive } from "../../src/archive/reader.js";
import { writeArchive } from "../../src/archive/writer.js";
import { MEMBER, type BundleIndex } from "../../src/core/bundle-index.js";
import { formatChecksums, sidecarLine } from "../../src/core/checksums.js";
import type { Digest } from "../../src/core/digest.js";
import { configMapToYaml, signatureConfigMap } from "../../src/core/manifests.js";
import { runVerify, type VerifyOptions } from "../../src/commands/bundle-verify.js";
import type { CheckLine } from "../../src/verify/bundle.js";
import type { SigferryError } from "../../src/errors.js";
import { isSigferryError } from "../../src/errors.js";
import { capture } from "./capture.js";

/** Archive members by path. */
export type Members = Map<string, Uint8Array>;

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
export const sha256Hex = (bytes: Uint8Array): string =>
  createHash("sha256").update(bytes).digest("hex");

/** A fixed mtime for rewritten archives. */
const MTIME = new Date("2024-06-01T00:00:00Z");

/** The members of an archive, as a fresh map. */
export async function readMembers(file: string): Promise<Members> {
  return new Map((await readArchive(file)).members);
}

/** The parsed index.json of a member map. */
export function indexOf(members: Members): BundleIndex {
  return JSON.parse(text(members.get(MEMBER.index)!)) as BundleIndex;
}

/**
 * A copy of `members` with index.json rewritten by `mutate` (pretty-printed like the
 * writer) and REPORT.md regenerated from it, as a careful attacker would.
 */
export function withIndex(members: Members, mutate: (index: BundleIndex) => void): Members {
  const index = indexOf(members);
  mutate(index);
  const out = new Map(members);
  out.set(MEMBER.index, utf8(`${JSON.stringify(index, null, 2)}\n`));
  if (out.has(MEMBER.report)) out.set(MEMBER.report, utf8(renderReport(index)));
  return out;
}

/** A copy of `bytes` with the byte at `at` (negative: from the end) XORed with `mask`. */
export function flip(bytes: Uint8Array, at: number, mask = 0x01): Uint8Array {
  const copy = Uint8Array.from(bytes);
  const i = at < 0 ? copy.length + at : at;
  if (i < 0 || i >= copy.length) throw new Error(`flip: offset ${at} outside ${copy.length} bytes`);
  copy[i]! ^= mask;
  return copy;
}

/** The offset of the first byte of `needle` inside `bytes` (a text marker), or a thrown error. */
export function offsetOf(bytes: Uint8Array, needle: string, from = 0): number {
  const at = Buffer.from(bytes).indexOf(needle, from);
  if (at < 0) throw new Error(`offsetOf: ${JSON.stringify(needle)} not found`);
  return at;
}

/**
 * Replaces one hex digit at `at` with another of the same kind, so the text stays
 * well-formed: a digit with the next digit (9 becomes 0), a letter with the next
 * letter of a–f in its own case (f becomes a, F becomes A). An uppercase
 * fingerprint stays uppercase whatever digit is flipped: the test keys are
 * generated afresh on a clean machine, and one flip of "9" to "a" made a lowercase
 * fingerprint that the index check refused before any signature was compared.
 */
export function flipHexDigit(bytes: Uint8Array, at: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  const c = String.fromCharCode(copy[at]!);
  const cycle = ["0123456789", "abcdef", "ABCDEF"].find((set) => set.includes(c));
  if (cycle === undefined)
    throw new Error(`flipHexDigit: ${JSON.stringify(c)} at ${at} is not a hex digit`);
  copy[at] = cycle.charCodeAt((cycle.indexOf(c) + 1) % cycle.length);
  return copy;
}

/** A copy of `members` whose checksum list is recomputed over every other member (what an attacker does). */
export function rehash(members: Members): Members {
  const out = new Map(members);
  out.delete(MEMBER.checksums);
  const list = formatChecksums(
    [...out.entries()].map(([p, data]) => ({ path: p, sha256: sha256Hex(data) })),
  );
  out.set(MEMBER.checksums, utf8(list));
  return out;
}

/**
 * Writes `members` as an archive at `file` with its sidecar (gzip by the name);
 * the checksum list is recomputed first unless `keepChecksums` is set.
 */
export async function writeBundle(
  file: string,
  members: Members,
  options: { keepChecksums?: boolean } = {},
): Promise<string> {
  const final = options.keepChecksums ? members : rehash(members);
  await writeArchive(
    file,
    [...final.entries()].map(([p, data]) => ({ path: p, data })),
    { mtime: MTIME },
  );
  return file;
}

/** Writes `<file>.sha256` for the bytes now in `file`, as the writer would. */
export async function resealSidecar(file: string): Promise<void> {
  const bytes = await readFile(file);
  await writeFile(`${file}.sha256`, sidecarLine(sha256Hex(bytes), path.basename(file)));
}

/**
 * Patches the raw bytes of an uncompressed `.tar`: flips the byte `offset` into
 * the data of `member` (found by its unique bytes) and writes the result to
 * `out`. Checksums inside stay as they were; the sidecar holds the original
 * hash (stale), or the new one with `reseal`.
 */
export async function patchTar(
  tarFile: string,
  out: string,
  member: Uint8Array,
  offset: number,
  options: { reseal?: boolean; mask?: number } = {},
): Promise<void> {
  const tar = await readFile(tarFile);
  const at = tar.indexOf(Buffer.from(member));
  if (at < 0 || tar.indexOf(Buffer.from(member), at + 1) >= 0)
    throw new Error("patchTar: the member's bytes are not found exactly once in the tar");
  const patched = flip(tar, at + (offset < 0 ? member.length + offset : offset), options.mask);
  await writeFile(out, patched);
  if (options.reseal) await resealSidecar(out);
  // Stale: the hash of the original bytes, under the new file's name.
  else await writeFile(`${out}.sha256`, sidecarLine(sha256Hex(tar), path.basename(out)));
}

/** The ConfigMap YAML sigferry writes for `digest` holding `signatures`. */
export function configMapYaml(digest: Digest, signatures: Uint8Array[]): Uint8Array {
  return utf8(configMapToYaml(signatureConfigMap(digest, signatures)));
}

/** What `bundle verify` concluded, in-process: the exit code, and the failed lines or the thrown error. */
export interface Outcome {
  exit: number;
  failed: CheckLine[];
  lines: CheckLine[];
  error?: SigferryError;
}

/** Runs `bundle verify` in-process and returns its outcome; integrity failures come back as `error`. */
export async function verifyOutcome(file: string, options: VerifyOptions): Promise<Outcome> {
  try {
    const { result } = await runVerify(file, options, capture({ quiet: true }).reporter);
    return {
      exit: result.exitCode,
      failed: result.lines.filter((l) => !l.ok),
      lines: result.lines,
    };
  } catch (err) {
    if (!isSigferryError(err)) throw err;
    return { exit: err.exitCode, failed: [], lines: [], error: err };
  }
}
