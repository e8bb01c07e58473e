/**
 * Opens a bundle archive: the integrity gate every reading command passes
 * through. Reads the archive with the hardened reader, checks the sidecar (when
 * present), every member against `checksums.sha256`, and the index.
 * Signatures are checked afterwards by src/verify/bundle.ts.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { MEMBER, type BundleIndex } from "../core/bundle-index.js";
import { checkMembers, parseChecksums, parseSidecar } from "../core/checksums.js";
import { parseBundleIndex } from "../core/index-validate.js";
import { SigferryError } from "../errors.js";
import { memberText } from "./member-read.js";
import { readArchive, type ArchiveLimits, type ReadArchiveResult } from "./reader.js";

/** A bundle whose bytes and checksums are intact (its signatures are not yet checked). */
export interface OpenedBundle {
  file: string;
  sha256: string;
  size: number;
  gzip: boolean;
  /** "ok" when `<archive>.sha256` was beside it and matched; "absent" when there was none. */
  sidecar: "ok" | "absent";
  /** Member bytes by path (kept in a spool file by the reader, read on demand). */
  members: ReadonlyMap<string, Uint8Array>;
  index: BundleIndex;
}

/** Reads the sidecar `<file>.sha256` if it exists. */
async function readSidecar(file: string): Promise<string | undefined> {
  try {
    return await readFile(`${file}.sha256`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SigferryError(
      "INPUT_READ_FAILED",
      `cannot read ${file}.sha256: ${(err as Error).message}`,
      {
        cause: err,
        details: { file: `${file}.sha256` },
      },
    );
  }
}

/**
 * The error with `file` at the start of its message when the message does not name
 * it already, so that every line printed for a bad archive says which file.
 */
function namingFile(err: unknown, file: string): unknown {
  if (!(err instanceof SigferryError) || err.message.includes(file)) return err;
  return new SigferryError(err.code, `${file}: ${err.message}`, {
    cause: err.cause,
    details: { file, ...err.details },
  });
}

/**
 * index.json as text, read in pieces (src/archive/member-read.ts); undefined
 * when there is none. Bytes that are not UTF-8 are INDEX_INVALID, as bad JSON is.
 */
export function indexText(members: ReadonlyMap<string, Uint8Array>): string | undefined {
  try {
    return memberText(members, MEMBER.index);
  } catch (cause) {
    if (!(cause instanceof TypeError)) throw cause;
    throw new SigferryError("INDEX_INVALID", `${MEMBER.index} is not valid UTF-8 JSON`, {
      cause,
      details: { member: MEMBER.index },
    });
  }
}

/** Reads and integrity-checks a bundle; throws CHECKSUM_MISMATCH, ARCHIVE_* or INDEX_INVALID naming the member. */
export async function openBundle(
  file: string,
  limits?: Partial<ArchiveLimits>,
): Promise<OpenedBundle> {
  const sidecarText = await readSidecar(file);
  const archive = await readArchive(file, limits).catch((err: unknown) => {
    throw namingFile(err, file);
  });
  try {
    return checkOpened(file, sidecarText, archive);
  } catch (err) {
    archive.members.close();
    throw err;
  }
}

function checkOpened(
  file: string,
  sidecarText: string | undefined,
  archive: ReadArchiveResult,
): OpenedBundle {
  // 1. The archive's own checksum against its sidecar, when the sidecar travelled with it.
  let sidecar: OpenedBundle["sidecar"] = "absent";
  if (sidecarText !== undefined) {
    let expected: string;
    try {
      expected = parseSidecar(sidecarText, path.basename(file));
    } catch (err) {
      throw namingFile(err, `${file}.sha256`);
    }
    if (expected !== archive.sha256) {
      throw new SigferryError(
        "CHECKSUM_MISMATCH",
        `${file}: sha256 ${archive.sha256} does not match ${file}.sha256 (${expected})`,
        { details: { file, member: path.basename(file) } },
      );
    }
    sidecar = "ok";
  }

  // 2. Every member against the checksum list.
  if (!archive.members.has(MEMBER.checksums)) {
    throw new SigferryError(
      "ARCHIVE_CORRUPT",
      `${file}: no ${MEMBER.checksums} member; not a sigferry bundle`,
      {
        details: { file, member: MEMBER.checksums },
      },
    );
  }
  const listed = parseChecksums(memberText(archive.members, MEMBER.checksums, "replace")!);
  // The reader hashed every member as it passed; no second read of the bytes.
  const actual = new Map<string, { sha256: string; size: number }>();
  for (const name of archive.members.keys()) {
    actual.set(name, {
      sha256: archive.members.sha256(name)!,
      size: archive.members.sizeOf(name)!,
    });
  }
  const problems = checkMembers(listed, actual, [MEMBER.checksums]);
  if (problems.length > 0) {
    const first = problems[0]!;
    throw new SigferryError(
      "CHECKSUM_MISMATCH",
      `${file}: ${problems.length} member(s) fail the checksum list; first: ${first.member}: ${first.reason}`,
      { details: { file, member: first.member, problems } },
    );
  }

  // 3. The index: known format version, every referenced member present, digests well-formed.
  const text = indexText(archive.members);
  if (text === undefined) {
    throw new SigferryError("INDEX_INVALID", `${file}: no ${MEMBER.index} member`, {
      details: { file, member: MEMBER.index },
    });
  }
  const index = parseBundleIndex(text, new Set(archive.members.keys()));
  return {
    file,
    sha256: archive.sha256,
    size: archive.size,
    gzip: archive.gzip,
    sidecar,
    members: archive.members,
    index,
  };
}
