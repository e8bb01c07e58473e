/**
 * Reads a sigferry archive (`.tar` or `.tar.gz`) in one streaming pass: hashes
 * the file bytes, gunzips when the gzip magic is present, and parses the tar
 * with TarParser, which trusts no name and no size. Members go to a private
 * spool file piece by piece as they pass (MemberStore), hashed on the way, so
 * memory stays flat however large the bundle or a member; sizes are bounded by
 * the limits (ArchiveLimits) whatever the headers claim. Nothing is extracted.
 */
import { createHash } from "node:crypto";
import { createReadStream, lstatSync, realpathSync } from "node:fs";
import * as path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { SigferryError, isSigferryError, osReason } from "../errors.js";
import { memberPathProblem, quotePath } from "../core/member-path.js";
import { type ArchiveLimits, resolveLimits } from "./limits.js";
import { MemberStore } from "./member-store.js";
import { TarParser } from "./tar-parser.js";

export { type ArchiveLimits, DEFAULT_LIMITS } from "./limits.js";

/** What readArchive returns. */
export interface ReadArchiveResult {
  /** Member path → bytes, read from the spool on demand; `close()` it when done. */
  members: MemberStore;
  /** Member paths in archive order. */
  order: string[];
  /** sha256 hex of the file bytes as read (compressed, for a .tar.gz). */
  sha256: string;
  /** Size of the file in bytes. */
  size: number;
  /** Whether the file was gzip-compressed. */
  gzip: boolean;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const OTHER_COMPRESSIONS: { name: string; magic: number[] }[] = [
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: "bzip2", magic: [0x42, 0x5a, 0x68] },
];

/**
 * Reads and checks a whole archive from a path or a stream; throws
 * ARCHIVE_CORRUPT, ARCHIVE_TRUNCATED, ARCHIVE_HOSTILE or ARCHIVE_LIMIT (naming
 * the entry) on the first problem, INPUT_READ_FAILED when the file cannot be read.
 */
export async function readArchive(
  input: string | NodeJS.ReadableStream,
  limits: Partial<ArchiveLimits> = {},
): Promise<ReadArchiveResult> {
  const resolved = resolveLimits(limits);
  const file = typeof input === "string" ? input : undefined;
  const members = new MemberStore(undefined, file);
  const order: string[] = [];
  // Each member goes to the spool piece by piece as it passes (EntrySink).
  let current = "";
  const parser = new TarParser(resolved, {
    begin: (name) => {
      current = name;
      members.begin(name);
    },
    data: (bytes) => members.append(bytes),
    end: () => {
      members.finish();
      order.push(current);
    },
  });
  const hash = createHash("sha256");
  let size = 0;

  const source = typeof input === "string" ? createReadStream(input) : input;
  // Every byte read is hashed here, on its way to the parser: one pass.
  async function* fileBytes(): AsyncGenerator<Buffer> {
    const chunks = (source as AsyncIterable<string | Uint8Array>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<string | Uint8Array>;
        try {
          next = await chunks.next();
        } catch (err) {
          throw new SigferryError("INPUT_READ_FAILED", `${file ?? "archive"}: ${osReason(err)}`, {
            cause: err,
            details: file === undefined ? {} : { file },
          });
        }
        if (next.done === true) return;
        const buf = toBuffer(next.value);
        hash.update(buf);
        size += buf.length;
        yield buf;
      }
    } finally {
      await chunks.return?.();
    }
  }
  const bytes = fileBytes();

  try {
    const head: Buffer[] = [];
    let headLength = 0;
    while (headLength < 6) {
      const next = await bytes.next();
      if (next.done === true) break;
      head.push(next.value);
      headLength += next.value.length;
    }
    const start = Buffer.concat(head).subarray(0, 6);
    async function* all(): AsyncGenerator<Buffer> {
      yield* head;
      yield* bytes;
    }

    for (const { name, magic } of OTHER_COMPRESSIONS) {
      if (startsWith(start, magic)) {
        throw new SigferryError(
          "ARCHIVE_CORRUPT",
          `the archive is ${name}-compressed; sigferry reads .tar and .tar.gz archives only`,
          { details: file === undefined ? {} : { file } },
        );
      }
    }

    const gzip = startsWith(start, GZIP_MAGIC);
    if (gzip) {
      const gunzip = createGunzip();
      // A Writable rather than an async-iterator sink: gunzip ends its output
      // at the end of the gzip stream while input may still be arriving, and an
      // iterator would then abort it instead of letting the check below run.
      const tar = new Writable({
        write(chunk: Buffer, _encoding, done) {
          try {
            parser.push(chunk);
            done();
          } catch (err) {
            done(err as Error);
          }
        },
      });
      await pipeline(Readable.from(all()), gunzip, tar);
      // Why: gunzip stops at the end of the gzip stream and silently drops what
      // follows, so bytes appended to the file would go unnoticed.
      if (gunzip.bytesWritten !== size) {
        throw new SigferryError(
          "ARCHIVE_CORRUPT",
          `the archive has ${size - gunzip.bytesWritten} bytes after the end of its gzip stream`,
          { details: file === undefined ? {} : { file } },
        );
      }
    } else {
      for await (const chunk of all()) parser.push(chunk);
    }
    parser.end();
    return { members, order, sha256: hash.digest("hex"), size, gzip };
  } catch (err) {
    members.close();
    throw readError(err, file);
  } finally {
    // Closes the file (or the caller's stream) when reading stopped early.
    // Destroy first: a read still pending on a stream that sends nothing more
    // would otherwise keep the generator (and this function) waiting forever.
    const stream = source as Partial<Readable>;
    if (typeof stream.destroy === "function") stream.destroy();
    await bytes.return(undefined);
  }
}

/**
 * The path under `dir` where a member may be written: refuses (ARCHIVE_HOSTILE)
 * an unsafe member path, and (OUTPUT_WRITE_FAILED) a destination that resolves
 * outside `dir` through a symbolic link already in it, or that is itself a
 * symbolic link, a non-file or a file with other hard links. Callers should
 * still write with a temporary file and a rename.
 */
export function safeJoin(dir: string, memberPath: string): string {
  // Why: the member path is archive data; `..` or an absolute path escapes.
  const problem = memberPathProblem(memberPath);
  if (problem !== undefined) {
    throw new SigferryError("ARCHIVE_HOSTILE", `member ${quotePath(memberPath)}: ${problem}`, {
      details: { member: memberPath },
    });
  }
  const refuse = (reason: string, cause?: unknown): SigferryError =>
    new SigferryError(
      "OUTPUT_WRITE_FAILED",
      `cannot write member ${quotePath(memberPath)} under ${dir}: ${reason}`,
      { cause, details: { member: memberPath, file: dir } },
    );
  let root: string;
  try {
    root = realpathSync(dir);
  } catch (err) {
    throw refuse(osReason(err), err);
  }
  const parts = memberPath.split("/");
  let current = root;
  for (let i = 0; i < parts.length; i += 1) {
    const next = path.join(current, parts[i] ?? "");
    let stat;
    try {
      stat = lstatSync(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        // Nothing exists from here down: the rest is created as plain directories.
        return path.join(next, ...parts.slice(i + 1));
      }
      throw refuse(osReason(err), err);
    }
    if (i === parts.length - 1) {
      // Why: writing to an existing symbolic link writes to wherever it points.
      if (stat.isSymbolicLink()) throw refuse(`${next} is a symbolic link`);
      if (!stat.isFile()) throw refuse(`${next} exists and is not a regular file`);
      // Why: writing in place to a file with other hard links changes them too,
      // and they may be outside the directory.
      if (stat.nlink > 1) throw refuse(`${next} has other hard links`);
      return next;
    }
    if (stat.isSymbolicLink()) {
      // Why: a symbolic link already in the directory (planted or not) would
      // carry the write anywhere; follow it only when it stays inside.
      let real: string;
      try {
        real = realpathSync(next);
      } catch (err) {
        throw refuse(`${next} is a symbolic link that does not resolve`, err);
      }
      if (!isInside(root, real))
        throw refuse(`${next} is a symbolic link to ${real}, outside ${root}`);
      current = real;
    } else if (stat.isDirectory()) {
      current = next;
    } else {
      throw refuse(`${next} exists and is not a directory`);
    }
  }
  return current;
}

function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function startsWith(buf: Buffer, magic: number[]): boolean {
  return buf.length >= magic.length && magic.every((byte, i) => buf[i] === byte);
}

function toBuffer(chunk: string | Uint8Array): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  return Buffer.isBuffer(chunk)
    ? chunk
    : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Turns what a failed read threw into a SigferryError with a stable code. */
function readError(err: unknown, file: string | undefined): SigferryError {
  if (isSigferryError(err)) {
    if (file !== undefined && err.details.file === undefined) err.details.file = file;
    return err;
  }
  const e = err as NodeJS.ErrnoException;
  const where = file ?? "archive";
  const details = file === undefined ? {} : { file };
  if (e.code === "Z_BUF_ERROR") {
    return new SigferryError("ARCHIVE_TRUNCATED", `${where}: the gzip stream ends early`, {
      cause: err,
      details,
    });
  }
  if (typeof e.code === "string" && e.code.startsWith("Z_")) {
    return new SigferryError("ARCHIVE_CORRUPT", `${where}: bad gzip data (${e.message})`, {
      cause: err,
      details,
    });
  }
  return new SigferryError("INTERNAL", `${where}: ${e.message ?? String(err)}`, {
    cause: err,
    details,
  });
}
