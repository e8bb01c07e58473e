/**
 * Writes a sigferry archive in one streaming pipeline: tar-stream's pack →
 * (gzip) → sha256 and byte count → a temporary file in the output directory,
 * fsynced and renamed into place only when everything succeeded; then the
 * `<archive>.sha256` sidecar the same way. A failed run leaves no file behind.
 *
 * Reproducible: the same members and mtime give the same bytes. Entries are
 * sorted by path in byte order; every header is a POSIX ustar regular file with
 * mode 0644, uid/gid 0, empty uname/gname, the given mtime (whole seconds) and
 * devmajor/devminor 0; no directory entries. A path that does not fit ustar's
 * name/prefix fields (or is not ASCII) gets a pax extended header named
 * `PaxHeader` carrying only `path`, with the same fixed fields. The tar is
 * byte-identical on every platform. The gzip header carries no name, mtime 0
 * and OS byte 3 (Unix, set here: zlib writes the build platform's); the
 * compressed bytes are identical for a given Node.js (zlib) build, but another
 * zlib may compress differently (nodejs/node#48690), so compare the `.tar`
 * when byte-identity across machines matters.
 */
import { createHash, randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import * as path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants as zlibConstants, createGzip } from "node:zlib";
import { pack as tarPack, type Pack } from "tar-stream";
import { SigferryError, isSigferryError, osReason } from "../errors.js";
import { sidecarLine } from "../core/checksums.js";
import { MemberPathSet, comparePaths, memberPathProblem, quotePath } from "../core/member-path.js";
import { DEFAULT_LIMITS } from "./limits.js";

/** One file to put in the archive. */
export interface ArchiveMember {
  path: string;
  data: Uint8Array;
  /**
   * `data.byteLength`, when known without reading `data`: members read from a
   * spool on demand are then read once, when written, not also when checked.
   */
  size?: number;
  /**
   * The bytes in pieces of at most `chunkSize`, in order, read as they are
   * asked for: a large member from a spool is then never whole in memory.
   * Used, with `size`, for members of STREAM_MEMBERS_FROM bytes and more.
   */
  chunks?: (chunkSize: number) => Iterable<Uint8Array>;
}

/** Members of this many bytes and more go into the tar in pieces when they can (ArchiveMember.chunks). */
export const STREAM_MEMBERS_FROM = 256 * 1024;

/** Options for writeArchive. */
export interface WriteArchiveOptions {
  /** The mtime of every entry; whole seconds, 1970-01-01 up to 2038-01-19 (ustar's 32-bit range as tar-stream encodes it). */
  mtime: Date;
  /** Gzip the tar; default: when outPath ends with .gz or .tgz. */
  gzip?: boolean;
}

/** What writeArchive wrote. */
export interface WriteArchiveResult {
  /** sha256 hex of the archive file's bytes. */
  sha256: string;
  /** Size of the archive file in bytes. */
  size: number;
  /** Path of the sidecar written next to it (`<outPath>.sha256`). */
  sidecarPath: string;
}

const TAR_END_BLOCKS = 1024;
/** Bytes of tar gathered before one write to gzip or the file. */
const WRITE_BATCH = 64 * 1024;
// Every deflate parameter fixed, so a change of zlib defaults cannot change the output.
// Level 6 (zlib's and gzip(1)'s default), not 9: on a 200-release archive 9 took
// twice the time (65 against 31 ms, on the path to the finished file) for 0.9 %
// fewer bytes (701 531 against 707 664).
const GZIP_OPTIONS = {
  level: 6,
  windowBits: 15,
  memLevel: 8,
  strategy: zlibConstants.Z_DEFAULT_STRATEGY,
} as const;
const GZIP_OS_UNIX = 3;
// eslint-disable-next-line no-control-regex
const UNSAFE_FILE_NAME = /[\u0000-\u001f\u007f\\]/;

/**
 * Writes `members` as a reproducible tar (or tar.gz) at `outPath` plus its
 * sidecar, atomically; throws OUTPUT_WRITE_FAILED naming the path and the OS
 * reason, or INTERNAL/ARCHIVE_LIMIT for members the reader would refuse.
 */
export async function writeArchive(
  outPath: string,
  members: readonly ArchiveMember[],
  opts: WriteArchiveOptions,
): Promise<WriteArchiveResult> {
  const mtime = checkMtime(opts.mtime);
  const sorted = checkMembers(members);
  const gzip = opts.gzip ?? /\.(t?gz)$/.test(outPath);
  const sidecarPath = `${outPath}.sha256`;
  const baseName = path.basename(outPath);
  // Why: the sidecar's name must survive a `sha256sum -c` line as written.
  if (UNSAFE_FILE_NAME.test(baseName)) {
    throw new SigferryError(
      "OUTPUT_WRITE_FAILED",
      `${quotePath(outPath)}: the file name holds a control character or backslash, which a sha256sum line cannot carry`,
      { details: { file: outPath } },
    );
  }

  const suffix = randomBytes(6).toString("hex");
  const archiveTemp = `${outPath}.tmp-${suffix}`;
  const sidecarTemp = `${sidecarPath}.tmp-${suffix}`;
  const temps = [archiveTemp, sidecarTemp];
  try {
    const { sha256, size } = await writeFileAtomicPart(archiveTemp, outPath, (sink) =>
      streamTar(sorted, mtime, gzip, sink),
    );
    await writeFileAtomicPart(sidecarTemp, sidecarPath, async (sink) => {
      await sink(Buffer.from(sidecarLine(sha256, baseName), "utf8"));
    });
    // Both files are complete and synced; only now replace what was there.
    await renameOrFail(archiveTemp, outPath);
    temps.shift();
    try {
      await renameOrFail(sidecarTemp, sidecarPath);
    } catch (err) {
      // Why: an archive without its sidecar is not a finished run; take it back.
      await unlink(outPath).catch(() => undefined);
      throw err;
    }
    temps.shift();
    await syncDirectory(path.dirname(outPath));
    return { sha256, size, sidecarPath };
  } finally {
    await Promise.all(temps.map((temp) => unlink(temp).catch(() => undefined)));
  }
}

type Sink = (chunk: Buffer) => Promise<void>;

/** Creates `temp` exclusively, lets `produce` write through a hashing sink, fsyncs and closes it. */
async function writeFileAtomicPart(
  temp: string,
  finalPath: string,
  produce: (sink: Sink) => Promise<void>,
): Promise<{ sha256: string; size: number }> {
  let handle;
  try {
    // `wx`: never reuse a file that happens to exist under the temporary name.
    handle = await open(temp, "wx", 0o644);
  } catch (err) {
    throw writeFailed(finalPath, err);
  }
  const hash = createHash("sha256");
  let size = 0;
  try {
    await produce(async (chunk) => {
      hash.update(chunk);
      size += chunk.length;
      let written = 0;
      while (written < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.length - written);
        written += bytesWritten;
      }
    });
    // Why: a rename can reach the disk before the data; sync first so a crash
    // never leaves a complete-looking file with missing bytes.
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    if (isSigferryError(err)) throw err;
    throw writeFailed(finalPath, err);
  }
  try {
    await handle.close();
  } catch (err) {
    throw writeFailed(finalPath, err);
  }
  return { sha256: hash.digest("hex"), size };
}

/** Streams the tar (gzipped or not) into `sink`, refusing to exceed the reader's total limit. */
async function streamTar(
  members: readonly ArchiveMember[],
  mtime: Date,
  gzip: boolean,
  sink: Sink,
): Promise<void> {
  const pack = tarPack();
  let tarBytes = 0;
  const produce = (async () => {
    for (const member of members) {
      if (member.chunks !== undefined && (member.size ?? 0) >= STREAM_MEMBERS_FROM) {
        await writeInPieces(pack, member as Required<ArchiveMember>, mtime);
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        // Read once: a member from a spool is read from disk each time `data` is asked for.
        const bytes = member.data;
        const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const entry = pack.entry(entryHeader(member.path, data.length, mtime), data, (err) =>
          err ? reject(err) : resolve(),
        );
        // Why: when the file write fails mid-stream (disk full, EFBIG), the
        // pipeline tears the pack down and the entry emits an AbortError. The
        // callback above already has it and the real failure reaches the caller
        // through `piped`; an unheard 'error' event would crash the process.
        entry.on("error", () => undefined);
      });
    }
    pack.finalize();
  })();

  // The pack emits three small chunks per member (header, data, padding). Each write to
  // gzip is a trip to libuv's thread pool, and each to the file a system call: gathered
  // into batches, a thousand members cost about 20 of each instead of 3000. Deflate's
  // output does not depend on how its input is cut, so the bytes are the same.
  const counted = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let batch: Buffer[] = [];
    let batched = 0;
    for await (const chunk of source) {
      tarBytes += chunk.length;
      // Why: the writer must never produce an archive the reader refuses.
      if (tarBytes > DEFAULT_LIMITS.maxTotalSize) {
        throw new SigferryError(
          "ARCHIVE_LIMIT",
          `refusing to write an archive larger than ${DEFAULT_LIMITS.maxTotalSize} bytes uncompressed (the reader's maxTotalSize)`,
        );
      }
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH) {
        yield Buffer.concat(batch, batched);
        batch = [];
        batched = 0;
      }
    }
    if (batched > 0) yield Buffer.concat(batch, batched);
  };
  let headerPos = 0;
  const write = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) {
      if (gzip && headerPos < 10) normaliseGzipHeader(chunk, headerPos);
      headerPos += chunk.length;
      await sink(chunk);
    }
  };
  const source = Readable.from(pack as AsyncIterable<Buffer>);
  const piped = gzip
    ? pipeline(source, counted, createGzip(GZIP_OPTIONS), write)
    : pipeline(source, counted, write);
  try {
    await Promise.all([produce, piped]);
  } catch (err) {
    pack.destroy();
    // Why: when the file write fails (ENOSPC, EFBIG), the pack's AbortError may
    // come first, but the write's own error is the one that tells the user why.
    const written: unknown = await piped.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw written !== undefined && !isEcho(written) ? written : err;
  }
}

/** The ustar header fields sigferry writes for every member (see the module comment). */
function entryHeader(name: string, size: number, mtime: Date): Parameters<Pack["entry"]>[0] {
  // Every field set explicitly: tar-stream fills in `new Date()` for a missing
  // mtime, and a type from the mode.
  return {
    name,
    size,
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    mtime,
    type: "file",
    devmajor: 0,
    devminor: 0,
  };
}

/** Writes one large member into the pack piece by piece, waiting when the pack's buffer is full. */
async function writeInPieces(
  pack: Pack,
  member: Required<ArchiveMember>,
  mtime: Date,
): Promise<void> {
  let failure: unknown;
  const done = new Promise<void>((resolve, reject) => {
    const entry = pack.entry(entryHeader(member.path, member.size, mtime), (err) =>
      err ? reject(err) : resolve(),
    );
    // An unheard 'error' would crash the process; the callback above has it (see streamTar).
    entry.on("error", () => undefined);
    void (async () => {
      try {
        for (const piece of member.chunks(STREAM_PIECE)) {
          if (!entry.write(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength))) {
            await new Promise<void>((drained) => {
              const go = (): void => {
                entry.off("drain", go);
                entry.off("close", go);
                drained();
              };
              entry.on("drain", go);
              entry.on("close", go);
            });
          }
        }
        (entry as NodeJS.WritableStream).end();
      } catch (err) {
        failure = err;
        entry.destroy(err as Error);
      }
    })();
  });
  try {
    await done;
  } catch (err) {
    throw failure ?? err;
  }
}

/** Bytes per piece of a member written in pieces. */
const STREAM_PIECE = 64 * 1024;

/** An error that only echoes another one: a stream torn down because its neighbour failed. */
function isEcho(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === "ABORT_ERR" ||
    code === "ERR_STREAM_PREMATURE_CLOSE" ||
    // streamx (under tar-stream), when the pack was torn down because a member could not be read.
    code === "STREAM_DESTROYED" ||
    (err instanceof Error && err.name === "AbortError")
  );
}

/**
 * Checks the gzip header bytes in `chunk` (which starts at stream offset `at`)
 * hold no varying field (RFC 1952 §2.3: FLG 0, so no FNAME/FCOMMENT/FEXTRA;
 * MTIME 0; XFL depends only on the level) and sets the OS byte to Unix, which
 * zlib otherwise sets to the platform it was built for.
 */
function normaliseGzipHeader(chunk: Buffer, at: number): void {
  for (let i = 0; i < chunk.length && at + i < 10; i += 1) {
    const offset = at + i;
    if (offset === 9) {
      chunk[i] = GZIP_OS_UNIX;
    } else if (offset >= 3 && offset <= 7 && chunk[i] !== 0) {
      throw new SigferryError(
        "INTERNAL",
        `zlib wrote a gzip header with byte ${offset} set to ${chunk[i]}, which would vary between runs`,
      );
    }
  }
}

function checkMtime(mtime: Date): Date {
  const ms = mtime.getTime();
  const seconds = Math.floor(ms / 1000);
  // tar-stream encodes mtime with `| 0`: past 2038-01-19 it would wrap negative.
  if (!Number.isFinite(ms) || seconds < 0 || seconds > 0x7fffffff) {
    throw new SigferryError(
      "USAGE",
      `archive mtime ${String(mtime)} is outside 1970-01-01..2038-01-19 (check SOURCE_DATE_EPOCH)`,
    );
  }
  return new Date(seconds * 1000);
}

/** Validates member paths, uniqueness and sizes against the reader's defaults; returns them sorted. */
function checkMembers(members: readonly ArchiveMember[]): ArchiveMember[] {
  if (members.length > DEFAULT_LIMITS.maxEntries) {
    throw new SigferryError(
      "ARCHIVE_LIMIT",
      `refusing to write ${members.length} members: the reader accepts at most ${DEFAULT_LIMITS.maxEntries}`,
    );
  }
  const names = new MemberPathSet();
  let total = TAR_END_BLOCKS;
  for (const member of members) {
    // Why: the writer must never produce what the reader refuses as hostile.
    const problem = memberPathProblem(member.path) ?? names.add(member.path);
    if (problem !== undefined) {
      throw new SigferryError(
        "INTERNAL",
        `refusing to write member ${quotePath(member.path)}: ${problem}`,
        { details: { member: member.path } },
      );
    }
    const size = member.size ?? member.data.byteLength;
    if (size > DEFAULT_LIMITS.maxEntrySize) {
      throw new SigferryError(
        "ARCHIVE_LIMIT",
        `refusing to write member ${quotePath(member.path)}: ${size} bytes, more than the ${DEFAULT_LIMITS.maxEntrySize} the reader accepts`,
        { details: { member: member.path } },
      );
    }
    total += 512 + Math.ceil(size / 512) * 512;
  }
  if (total > DEFAULT_LIMITS.maxTotalSize) {
    throw new SigferryError(
      "ARCHIVE_LIMIT",
      `refusing to write an archive of at least ${total} bytes uncompressed: the reader accepts at most ${DEFAULT_LIMITS.maxTotalSize}`,
    );
  }
  return [...members].sort((a, b) => comparePaths(a.path, b.path));
}

async function renameOrFail(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    throw writeFailed(to, err);
  }
}

/** Fsyncs a directory so the renames in it are durable; not every platform allows it, so failures are ignored. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Windows cannot open a directory; some file systems refuse fsync on one.
  }
}

function writeFailed(file: string, err: unknown): SigferryError {
  return new SigferryError("OUTPUT_WRITE_FAILED", `cannot write ${file}: ${osReason(err)}`, {
    cause: err,
    details: { file },
  });
}
