/**
 * A push parser for the tar stream inside a sigferry archive: POSIX ustar
 * headers, pax extended headers ('x') and GNU long names ('L'), regular files
 * only. Fed chunks of any size; keeps at most one header block and one pax
 * header (MAX_META_SIZE) in memory, and hands member bodies on as they pass
 * (EntrySink), each bounded by ArchiveLimits.maxEntrySize.
 *
 * Why not tar-stream's extract: it skips zero blocks and reads entries after the
 * end-of-archive marker (which GNU tar never extracts), accepts an archive cut
 * at an entry boundary as complete, merges global pax headers into every entry
 * and decodes names leniently; each is a place where what sigferry checks and
 * what `tar -xf` extracts could differ. This parser refuses all of them.
 * Format: POSIX.1-2017 pax (https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html).
 */
import { SigferryError } from "../errors.js";
import { MemberPathSet, memberPathProblem, quotePath } from "../core/member-path.js";
import type { ArchiveLimits } from "./limits.js";

const BLOCK = 512;
/** Largest pax extended header or GNU long-name body accepted. */
export const MAX_META_SIZE = 64 * 1024;

const USTAR_MAGIC = Buffer.from("ustar\u000000", "latin1");
const GNU_MAGIC = Buffer.from("ustar  \u0000", "latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

const TYPE_NAMES: Record<string, string> = {
  "1": "a hard link",
  "2": "a symbolic link",
  "3": "a character device",
  "4": "a block device",
  "5": "a directory",
  "6": "a FIFO",
  "7": "a contiguous file",
  g: "a pax global extended header",
  K: "a GNU long link name",
  N: "an old GNU long name",
  S: "a GNU sparse file",
  V: "a volume label",
  M: "a multi-volume continuation",
  D: "a GNU directory dump",
};

// pax keys accepted; anything else (xattrs, ACLs, GNU.sparse.*, SCHILY.*) is
// refused. Why: each unknown key is something `tar -x` may act on (set a
// capability xattr, rebuild a sparse file to another size) that this parser
// would not see.
const PAX_KEYS = new Set([
  "path",
  "size",
  "linkpath",
  "mtime",
  "atime",
  "ctime",
  "uid",
  "gid",
  "uname",
  "gname",
  "comment",
  "hdrcharset",
]);

interface Pending {
  kind: "pax" | "gnu";
  offset: number;
  path?: string;
  size?: number;
  linkpath?: string;
}

interface Body {
  kind: "file" | "pax" | "gnu";
  name: string;
  offset: number;
  size: number;
  fill: number;
  /** An extended header's body, buffered whole; undefined for a file member, which streams to the sink. */
  data: Buffer | undefined;
}

type State = "header" | "body" | "padding" | "end" | "trailer";

/**
 * Receives each member, in archive order, with its body as it passes, never
 * whole: `begin`, then the bytes in order (views into the parser's input,
 * valid only during the call), then `end`. A 5 MB index.json then costs no
 * 5 MB buffer, and no large allocation is freed behind it (glibc raises its
 * mmap threshold to the size of a freed large block, after which such blocks
 * stay in the process).
 */
export interface EntrySink {
  begin(name: string, size: number): void;
  data(bytes: Buffer): void;
  end(): void;
}

/** A push parser for one tar stream; see the module comment for what it accepts. */
export class TarParser {
  readonly #limits: ArchiveLimits;
  readonly #sink: EntrySink;
  readonly #names = new MemberPathSet();
  #state: State = "header";
  readonly #block = Buffer.alloc(BLOCK);
  #blockFill = 0;
  /** Bytes of tar stream consumed so far. */
  #offset = 0;
  #entries = 0;
  #pending: Pending | undefined;
  #body: Body | undefined;
  #padding = 0;
  /** What the padding being skipped follows, for messages. */
  #paddingAfter = "";

  constructor(limits: ArchiveLimits, sink: EntrySink) {
    this.#limits = limits;
    this.#sink = sink;
  }

  /** Bytes of tar stream consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Parses the next chunk of the tar stream; throws a SigferryError on the first problem. */
  push(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // Why: counted on the uncompressed stream, so a gzip bomb (or endless zero
    // padding) stops at the cap however small the compressed input.
    if (this.#offset + buf.length > this.#limits.maxTotalSize) {
      throw new SigferryError(
        "ARCHIVE_LIMIT",
        `the archive is larger than ${this.#limits.maxTotalSize} bytes uncompressed (maxTotalSize)`,
        { details: { offset: this.#offset, limit: this.#limits.maxTotalSize } },
      );
    }
    let pos = 0;
    while (pos < buf.length) {
      const available = buf.length - pos;
      switch (this.#state) {
        case "header":
        case "end": {
          const n = Math.min(BLOCK - this.#blockFill, available);
          buf.copy(this.#block, this.#blockFill, pos, pos + n);
          this.#blockFill += n;
          this.#offset += n;
          pos += n;
          if (this.#blockFill === BLOCK) {
            this.#blockFill = 0;
            if (this.#state === "header") this.#onHeader(this.#offset - BLOCK);
            else this.#onSecondEndBlock(this.#offset - BLOCK);
          }
          break;
        }
        case "body": {
          const body = this.#body as Body;
          const n = Math.min(body.size - body.fill, available);
          if (body.data !== undefined) buf.copy(body.data, body.fill, pos, pos + n);
          else this.#sink.data(buf.subarray(pos, pos + n));
          body.fill += n;
          this.#offset += n;
          pos += n;
          if (body.fill === body.size) this.#onBodyComplete(body);
          break;
        }
        case "padding": {
          const n = Math.min(this.#padding, available);
          this.#padding -= n;
          this.#offset += n;
          pos += n;
          if (this.#padding === 0) this.#state = "header";
          break;
        }
        case "trailer": {
          // Why: GNU tar stops at the end-of-archive marker and ignores what
          // follows, so an entry hidden after it would be seen by one reader and
          // not the other. Only zero padding (tar pads to its record size) may follow.
          const nonZero = firstNonZero(buf, pos);
          if (nonZero !== -1) {
            const at = this.#offset + nonZero - pos;
            throw new SigferryError(
              "ARCHIVE_CORRUPT",
              `the archive has data after its end-of-archive marker, at byte ${at}`,
              { details: { offset: at } },
            );
          }
          this.#offset += available;
          pos = buf.length;
          break;
        }
      }
    }
  }

  /** Declares the end of the tar stream; throws unless it ended with the end-of-archive marker. */
  end(): void {
    const at = this.#offset;
    switch (this.#state) {
      case "trailer":
        return;
      case "header":
        if (this.#blockFill === 0) {
          if (at === 0) throw truncated("the archive is empty", at);
          // Why: without the two zero blocks, an archive cut exactly at a member
          // boundary would read as complete with fewer members.
          throw truncated(
            `the archive ends after ${this.#entries} member(s) without its end-of-archive marker`,
            at,
          );
        }
        if (at === this.#blockFill && this.#blockFill >= 265 && !hasTarMagic(this.#block)) {
          throw new SigferryError("ARCHIVE_CORRUPT", "the file is not a tar archive", {
            details: { offset: 0 },
          });
        }
        throw truncated(`the archive ends inside a header, at byte ${at}`, at);
      case "body": {
        const body = this.#body as Body;
        const what = body.kind === "file" ? `member ${quotePath(body.name)}` : "an extended header";
        throw truncated(
          `the archive ends inside ${what} (${body.fill} of ${body.size} bytes)`,
          at,
          body.kind === "file" ? body.name : undefined,
        );
      }
      case "padding":
        throw truncated(`the archive ends inside the padding after ${this.#paddingAfter}`, at);
      case "end":
        throw truncated(
          "the archive ends inside its end-of-archive marker (one of two zero blocks)",
          at,
        );
    }
  }

  #onHeader(offset: number): void {
    const h = this.#block;
    if (isZeroBlock(h)) {
      if (this.#pending !== undefined) {
        throw corrupt("an extended header is followed by the end-of-archive marker", offset);
      }
      this.#state = "end";
      return;
    }
    // Why: a header whose checksum fails is damaged; parsing it anyway would
    // trust a size or name that may be anything.
    const stored = parseOctal(h, 148, 8);
    const { unsigned, signed } = headerSums(h);
    if (stored === undefined || (stored !== unsigned && stored !== signed)) {
      throw corrupt(
        offset === 0
          ? "the file is not a tar archive (the first header's checksum does not match)"
          : `bad header checksum at byte ${offset}`,
        offset,
      );
    }
    const gnu = h.subarray(257, 265).equals(GNU_MAGIC);
    if (!gnu && !h.subarray(257, 265).equals(USTAR_MAGIC)) {
      throw corrupt(`the header at byte ${offset} is neither POSIX ustar nor GNU tar`, offset);
    }
    const typeflag = h[156] === 0 ? "0" : String.fromCharCode(h[156] ?? 0);
    if (typeflag === "x" || typeflag === "L") {
      this.#onMetaHeader(typeflag === "x" ? "pax" : "gnu", offset);
      return;
    }

    const pending = this.#pending;
    this.#pending = undefined;
    const name = pending?.path ?? headerName(h, gnu, offset);

    if (typeflag !== "0") {
      const what = TYPE_NAMES[typeflag] ?? `of unknown type ${JSON.stringify(typeflag)}`;
      const link = pending?.linkpath ?? decodeField(h, 157, 100);
      const target =
        (typeflag === "1" || typeflag === "2") && link !== "" ? ` to ${quotePath(link)}` : "";
      // Why: links, devices and FIFOs are how a tar writes outside its directory
      // or plants something other than a file; a sigferry archive has none,
      // and no directory entries either (they are implied by member paths).
      throw hostile(
        `entry ${quotePath(name)} is ${what}${target}; only regular files are accepted`,
        name,
        offset,
      );
    }
    // Why: a link target on a regular file means the header was crafted for
    // some other reader's benefit.
    if (pending?.linkpath !== undefined) {
      throw hostile(`entry ${quotePath(name)} is a regular file with a link target`, name, offset);
    }
    const problem = memberPathProblem(name);
    if (problem !== undefined) throw hostile(`entry ${quotePath(name)}: ${problem}`, name, offset);
    // Why: setuid/setgid/sticky bits would survive a `tar -x` run as root.
    const mode = parseOctal(h, 100, 8);
    if (mode === undefined) throw corrupt(`bad mode field at byte ${offset}`, offset);
    if ((mode & 0o7000) !== 0) {
      throw hostile(
        `entry ${quotePath(name)} has mode ${mode.toString(8)} (setuid, setgid or sticky)`,
        name,
        offset,
      );
    }

    this.#entries += 1;
    if (this.#entries > this.#limits.maxEntries) {
      throw new SigferryError(
        "ARCHIVE_LIMIT",
        `the archive has more than ${this.#limits.maxEntries} entries (maxEntries); entry ${quotePath(name)} is one too many`,
        { details: { member: name, offset, limit: this.#limits.maxEntries } },
      );
    }
    const size = pending?.size ?? headerSize(h, offset);
    this.#checkSize(size, name, offset);

    // Why: duplicates and names that collide on case-insensitive or
    // normalising file systems overwrite each other on extraction.
    const clash = this.#names.add(name);
    if (clash !== undefined) throw hostile(`entry ${quotePath(name)}: ${clash}`, name, offset);

    this.#sink.begin(name, size);
    this.#startBody({ kind: "file", name, offset, size, fill: 0, data: undefined });
  }

  #onMetaHeader(kind: "pax" | "gnu", offset: number): void {
    if (this.#pending !== undefined) {
      throw corrupt(`two extended headers in a row at byte ${offset}`, offset);
    }
    const size = headerSize(this.#block, offset);
    // Why: an extended header is buffered whole; it only ever needs a path.
    if (size > MAX_META_SIZE) {
      throw new SigferryError(
        "ARCHIVE_LIMIT",
        `the extended header at byte ${offset} is ${size} bytes (at most ${MAX_META_SIZE} accepted)`,
        { details: { offset, limit: MAX_META_SIZE } },
      );
    }
    this.#checkTotal(offset + BLOCK + padded(size), undefined, offset);
    this.#startBody({ kind, name: "", offset, size, fill: 0, data: Buffer.alloc(size) });
  }

  #checkSize(size: number, name: string, offset: number): void {
    // Why: the header's size decides how much is buffered; refuse before reading
    // the body, whatever the header claims.
    if (size > this.#limits.maxEntrySize) {
      throw new SigferryError(
        "ARCHIVE_LIMIT",
        `entry ${quotePath(name)} is ${size} bytes, more than the ${this.#limits.maxEntrySize} accepted (maxEntrySize)`,
        { details: { member: name, offset, size, limit: this.#limits.maxEntrySize } },
      );
    }
    this.#checkTotal(offset + BLOCK + padded(size), name, offset);
  }

  #checkTotal(end: number, name: string | undefined, offset: number): void {
    if (end > this.#limits.maxTotalSize) {
      throw new SigferryError(
        "ARCHIVE_LIMIT",
        `${name === undefined ? "the archive" : `entry ${quotePath(name)}`} would take the archive past ${this.#limits.maxTotalSize} bytes uncompressed (maxTotalSize)`,
        {
          details: {
            offset,
            ...(name === undefined ? {} : { member: name }),
            limit: this.#limits.maxTotalSize,
          },
        },
      );
    }
  }

  #startBody(body: Body): void {
    if (body.size === 0) {
      this.#onBodyComplete(body);
      return;
    }
    this.#body = body;
    this.#state = "body";
  }

  #onBodyComplete(body: Body): void {
    this.#body = undefined;
    if (body.kind === "file") {
      this.#paddingAfter = `member ${quotePath(body.name)}`;
      this.#sink.end();
    } else if (body.kind === "pax") {
      this.#paddingAfter = "an extended header";
      this.#pending = parsePax(body.data!, body.offset);
    } else {
      this.#paddingAfter = "an extended header";
      this.#pending = {
        kind: "gnu",
        offset: body.offset,
        path: parseGnuLongName(body.data!, body.offset),
      };
    }
    this.#padding = padded(body.size) - body.size;
    this.#state = this.#padding === 0 ? "header" : "padding";
  }

  #onSecondEndBlock(offset: number): void {
    if (!isZeroBlock(this.#block)) {
      // Why: GNU tar treats a lone zero block as the end (with a warning) and
      // never sees what follows; refuse rather than read entries it would not.
      throw corrupt(`a lone zero block at byte ${offset - BLOCK} is followed by more data`, offset);
    }
    this.#state = "trailer";
  }
}

function truncated(message: string, offset: number, member?: string): SigferryError {
  return new SigferryError("ARCHIVE_TRUNCATED", message, {
    details: member === undefined ? { offset } : { member, offset },
  });
}

function corrupt(message: string, offset: number): SigferryError {
  return new SigferryError("ARCHIVE_CORRUPT", message, { details: { offset } });
}

function hostile(message: string, member: string, offset: number): SigferryError {
  return new SigferryError("ARCHIVE_HOSTILE", message, { details: { member, offset } });
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

const ZEROS = Buffer.alloc(64 * 1024);

/** The index of the first non-zero byte of `buf` at or after `start`, or -1; memcmp-fast on long runs of zeros. */
function firstNonZero(buf: Buffer, start: number): number {
  for (let from = start; from < buf.length; from += ZEROS.length) {
    const to = Math.min(buf.length, from + ZEROS.length);
    if (ZEROS.compare(buf, from, to, 0, to - from) !== 0) {
      for (let i = from; i < to; i += 1) if (buf[i] !== 0) return i;
    }
  }
  return -1;
}

function isZeroBlock(block: Buffer): boolean {
  return firstNonZero(block, 0) === -1;
}

function hasTarMagic(block: Buffer): boolean {
  const magic = block.subarray(257, 265);
  return magic.equals(USTAR_MAGIC) || magic.equals(GNU_MAGIC);
}

/** The header checksum computed with the checksum field read as spaces, as unsigned and as signed bytes. */
function headerSums(block: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i += 1) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return { unsigned, signed };
}

/**
 * A numeric header field: octal digits after optional spaces, ended by a space
 * or NUL (POSIX), or GNU base-256 (first byte 0x80). Undefined when malformed
 * or negative.
 */
function parseOctal(block: Buffer, start: number, length: number): number | undefined {
  const field = block.subarray(start, start + length);
  if (field[0] === 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i += 1) {
      value = value * 256 + (field[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) return undefined;
    }
    return value;
  }
  let i = 0;
  while (i < field.length && field[i] === 0x20) i += 1;
  let value = 0;
  while (i < field.length) {
    const c = field[i] ?? 0;
    if (c < 0x30 || c > 0x37) break;
    value = value * 8 + (c - 0x30);
    i += 1;
  }
  for (; i < field.length; i += 1) {
    if (field[i] !== 0x20 && field[i] !== 0) return undefined;
  }
  // An all-NUL or all-space field reads as zero (some writers leave it empty).
  return value;
}

function headerSize(block: Buffer, offset: number): number {
  const size = parseOctal(block, 124, 12);
  if (size === undefined) throw corrupt(`bad size field in the header at byte ${offset}`, offset);
  return size;
}

/** A NUL-terminated text field, decoded as UTF-8 (invalid bytes shown as U+FFFD, for messages only). */
function decodeField(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString("utf8");
}

function decodeName(bytes: Buffer, offset: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    // Why: a name that is not UTF-8 is shown differently by every tool, so
    // the name checked here might not be the one written to disk.
    const shown = bytes.toString("latin1");
    throw new SigferryError(
      "ARCHIVE_HOSTILE",
      `entry ${quotePath(shown)}: the name is not valid UTF-8`,
      {
        details: { member: shown, offset },
      },
    );
  }
}

function headerName(block: Buffer, gnu: boolean, offset: number): string {
  const nameEnd = block.subarray(0, 100).indexOf(0);
  const name = decodeName(block.subarray(0, nameEnd === -1 ? 100 : nameEnd), offset);
  // GNU headers use bytes 345.. for times, not a name prefix.
  if (gnu || block[345] === 0) return name;
  const prefixEnd = block.subarray(345, 500).indexOf(0);
  const prefix = decodeName(block.subarray(345, prefixEnd === -1 ? 500 : 345 + prefixEnd), offset);
  return `${prefix}/${name}`;
}

function parseGnuLongName(data: Buffer, offset: number): string {
  const end = data.indexOf(0);
  return decodeName(end === -1 ? data : data.subarray(0, end), offset);
}

/** Parses pax records (`<len> <key>=<value>\n`), strictly. */
function parsePax(data: Buffer, offset: number): Pending {
  const pending: Pending = { kind: "pax", offset };
  const seen = new Set<string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    const lengthText = space === -1 ? "" : data.subarray(pos, space).toString("latin1");
    const length = /^[1-9][0-9]{0,5}$/.test(lengthText) ? Number(lengthText) : NaN;
    if (!(length > 0) || pos + length > data.length || data[pos + length - 1] !== 0x0a) {
      throw corrupt(`malformed pax extended header at byte ${offset}`, offset);
    }
    const record = data.subarray(space + 1, pos + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw corrupt(`malformed pax record at byte ${offset}`, offset);
    const key = record.subarray(0, eq).toString("latin1");
    const valueBytes = record.subarray(eq + 1);
    pos += length;
    if (!PAX_KEYS.has(key)) {
      throw new SigferryError(
        "ARCHIVE_HOSTILE",
        `the pax extended header at byte ${offset} has key ${JSON.stringify(key)}, which sigferry does not accept`,
        { details: { offset } },
      );
    }
    // Why: POSIX lets a later record override an earlier one, but readers
    // disagree on repeats; refuse rather than guess which one `tar` uses.
    if (seen.has(key)) {
      throw new SigferryError(
        "ARCHIVE_HOSTILE",
        `the pax extended header at byte ${offset} repeats key ${JSON.stringify(key)}`,
        { details: { offset } },
      );
    }
    seen.add(key);
    if (key === "path") pending.path = decodeName(valueBytes, offset);
    else if (key === "linkpath") pending.linkpath = valueBytes.toString("utf8");
    else if (key === "size") {
      const text = valueBytes.toString("latin1");
      const size = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(size)) {
        throw corrupt(
          `bad size ${JSON.stringify(text)} in the pax header at byte ${offset}`,
          offset,
        );
      }
      pending.size = size;
    } else if (key === "hdrcharset") {
      // Why: hdrcharset=BINARY says the names are not UTF-8.
      if (valueBytes.toString("latin1") !== "ISO-IR 10646 2000 UTF-8") {
        throw new SigferryError(
          "ARCHIVE_HOSTILE",
          `the pax extended header at byte ${offset} declares names that are not UTF-8`,
          { details: { offset } },
        );
      }
    }
  }
  return pending;
}
