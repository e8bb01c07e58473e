/**
 * Where the members of an archive being read (or, in `bundle create`, being
 * assembled) are kept: not in memory but in a private spool file, so a bundle
 * of any size is handled with flat memory (a few hundred bytes of bookkeeping
 * per member). Each member is hashed as it arrives, so the checksum check and
 * the checksum list need no second pass over the bytes.
 *
 * The spool is created in the temporary directory and unlinked at once where
 * the platform allows it (POSIX), so nothing is left behind even when the
 * process is killed; elsewhere it is removed on close and at process exit.
 * It holds the member bytes that passed the reader's checks, so a later change
 * to the archive file itself cannot swap what is verified for what is used.
 * Reads are synchronous `pread`s, mostly of a few hundred bytes each: the map
 * keeps the `ReadonlyMap` interface the verifiers and commands use, and
 * `chunks` gives a large member (index.json, REPORT.md) piece by piece.
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { closeSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SigferryError, osReason } from "../errors.js";

/** Where one member lies in the spool. */
interface Slot {
  offset: number;
  size: number;
  sha256: string;
}

/** Bytes gathered before one write to the spool. */
const WRITE_BATCH = 1 << 20;

const openSpools = new Set<string>();
let exitHookInstalled = false;

function removeOnExit(file: string): void {
  openSpools.add(file);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const f of openSpools) {
      try {
        unlinkSync(f);
      } catch {
        // Already gone.
      }
    }
  });
}

// Why: a store dropped without close() (a test, an error path) must not leak its descriptor.
const finalizer = new FinalizationRegistry<{ fd: number; file: string | undefined }>((held) => {
  try {
    closeSync(held.fd);
  } catch {
    // Already closed.
  }
  if (held.file !== undefined) {
    openSpools.delete(held.file);
    try {
      unlinkSync(held.file);
    } catch {
      // Already gone.
    }
  }
});

/** Archive members by path, kept in a spool file; read-only once sealed. */
export class MemberStore implements ReadonlyMap<string, Uint8Array> {
  readonly #slots = new Map<string, Slot>();
  readonly #held: { fd: number; file: string | undefined };
  #end = 0;
  // Why a copy: a member handed in is often a view into a larger chunk (gunzip's
  // 16 KiB output); holding views would keep every such chunk alive until the flush.
  #pending: Buffer = Buffer.allocUnsafeSlow(WRITE_BATCH);
  #pendingBytes = 0;
  /** The member being added part by part (begin … finish). */
  #adding: { name: string; offset: number; size: number; hash: Hash } | undefined;
  #closed = false;
  readonly #dir: string;
  readonly #for: string;

  /**
   * A spool in `dir` for the members of `forFile` (the archive read or
   * written, named in errors). A spool that cannot be created, written or read
   * is OUTPUT_WRITE_FAILED naming the directory.
   */
  constructor(dir: string = tmpdir(), forFile = "archive") {
    this.#dir = dir;
    this.#for = forFile;
    const file = path.join(dir, `sigferry-spool-${process.pid}-${randomBytes(6).toString("hex")}`);
    // `wx+`: never reuse a file that happens to exist under the name; 0600: the bytes are the user's.
    const fd = this.#io(() => openSync(file, "wx+", 0o600));
    let kept: string | undefined;
    try {
      unlinkSync(file);
    } catch {
      // Windows cannot unlink an open file: remove it on close or at exit instead.
      kept = file;
      removeOnExit(file);
    }
    this.#held = { fd, file: kept };
    finalizer.register(this, this.#held, this);
  }

  /** Adds a member (the reader has checked its name is new); returns its sha256 hex. */
  add(name: string, data: Uint8Array): string {
    if (this.#closed) throw new Error("internal: member store is closed");
    if (this.#adding !== undefined) {
      throw new Error(`internal: member ${this.#adding.name} is still being added`);
    }
    const sha256 = createHash("sha256").update(data).digest("hex");
    this.#slots.set(name, {
      offset: this.#end + this.#pendingBytes,
      size: data.byteLength,
      sha256,
    });
    this.#append(data);
    return sha256;
  }

  /**
   * Adds a member given in parts, in order (a large document encoded piece by
   * piece, never whole in memory); returns its sha256 hex.
   */
  addParts(name: string, parts: Iterable<Uint8Array>): string {
    this.begin(name);
    for (const part of parts) this.append(part);
    return this.finish();
  }

  /**
   * Starts a member whose bytes follow through `append`, sealed by `finish`
   * (one member at a time): the archive reader hands a member over as it
   * passes, so no member is ever whole in memory.
   */
  begin(name: string): void {
    if (this.#closed) throw new Error("internal: member store is closed");
    if (this.#adding !== undefined) {
      throw new Error(`internal: member ${this.#adding.name} is still being added`);
    }
    const offset = this.#end + this.#pendingBytes;
    this.#adding = { name, offset, size: 0, hash: createHash("sha256") };
  }

  /** The next bytes of the member begun; copied before returning, so `bytes` may be reused. */
  append(bytes: Uint8Array): void {
    const adding = this.#adding;
    if (adding === undefined) throw new Error("internal: no member is being added");
    adding.hash.update(bytes);
    adding.size += bytes.byteLength;
    this.#append(bytes);
  }

  /** Seals the member begun; returns its sha256 hex. */
  finish(): string {
    const adding = this.#adding;
    if (adding === undefined) throw new Error("internal: no member is being added");
    this.#adding = undefined;
    const sha256 = adding.hash.digest("hex");
    this.#slots.set(adding.name, { offset: adding.offset, size: adding.size, sha256 });
    return sha256;
  }

  /** Puts bytes at the end of the spool (through the batch buffer); members are contiguous. */
  #append(data: Uint8Array): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.#pendingBytes + bytes.length > this.#pending.length) this.#flush();
    if (bytes.length >= this.#pending.length) {
      this.#write(bytes);
    } else {
      bytes.copy(this.#pending, this.#pendingBytes);
      this.#pendingBytes += bytes.length;
    }
  }

  /** The sha256 hex of a member's bytes, computed when it was added. */
  sha256(name: string): string | undefined {
    return this.#slots.get(name)?.sha256;
  }

  /** The size in bytes of a member. */
  sizeOf(name: string): number | undefined {
    return this.#slots.get(name)?.size;
  }

  /** Total bytes of all members. */
  get bytes(): number {
    return this.#end + this.#pendingBytes;
  }

  get size(): number {
    return this.#slots.size;
  }

  has(name: string): boolean {
    return this.#slots.has(name);
  }

  get(name: string): Uint8Array | undefined {
    const slot = this.#slots.get(name);
    if (slot === undefined) return undefined;
    if (this.#closed) throw new Error("internal: member store is closed");
    return this.#read(name, slot.offset, slot.size);
  }

  /** Reads `length` bytes of the spool at `offset` (pending bytes flushed first) into a new buffer. */
  #read(name: string, offset: number, length: number): Buffer {
    this.#flush();
    // Not allocUnsafe: a pooled slice would keep its whole 8 KiB slab alive for as long as it is held.
    const out = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      const n = this.#io(() => readSync(this.#held.fd, out, done, length - done, offset + done));
      if (n === 0) throw new Error(`internal: spool ended early reading ${name}`);
      done += n;
    }
    return out;
  }

  /**
   * A member's bytes in pieces of at most `chunkSize`, each read from the spool
   * when the iteration asks for it (the archive writer, for large members).
   */
  *chunks(name: string, chunkSize: number): Generator<Uint8Array> {
    const slot = this.#slots.get(name);
    if (slot === undefined) throw new Error(`internal: no member ${name} in the spool`);
    for (let at = 0; at < slot.size; at += chunkSize) {
      if (this.#closed) throw new Error("internal: member store is closed");
      yield this.#read(name, slot.offset + at, Math.min(chunkSize, slot.size - at));
    }
  }

  keys(): MapIterator<string> {
    return this.#slots.keys();
  }

  *values(): MapIterator<Uint8Array> {
    for (const name of this.#slots.keys()) yield this.get(name)!;
  }

  *entries(): MapIterator<[string, Uint8Array]> {
    for (const name of this.#slots.keys()) yield [name, this.get(name)!];
  }

  [Symbol.iterator](): MapIterator<[string, Uint8Array]> {
    return this.entries();
  }

  forEach(
    callback: (value: Uint8Array, key: string, map: ReadonlyMap<string, Uint8Array>) => void,
    thisArg?: unknown,
  ): void {
    for (const [name, data] of this.entries()) callback.call(thisArg, data, name, this);
  }

  /** Releases the spool. Idempotent; reading afterwards is an error. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = Buffer.alloc(0);
    finalizer.unregister(this);
    try {
      closeSync(this.#held.fd);
    } catch {
      // Already closed.
    }
    const file = this.#held.file;
    if (file !== undefined) {
      openSpools.delete(file);
      try {
        unlinkSync(file);
      } catch {
        // Already gone.
      }
    }
  }

  #flush(): void {
    if (this.#pendingBytes === 0) return;
    const pending = this.#pendingBytes;
    this.#pendingBytes = 0;
    this.#write(this.#pending.subarray(0, pending));
  }

  /** Appends bytes at the end of the spool (after whatever is pending: flush first). */
  #write(bytes: Buffer): void {
    let done = 0;
    while (done < bytes.length) {
      done += this.#io(() =>
        writeSync(this.#held.fd, bytes, done, bytes.length - done, this.#end + done),
      );
    }
    this.#end += bytes.length;
  }

  /** Runs one file operation on the spool; its failure says where, and what to do. */
  #io<T>(operation: () => T): T {
    try {
      return operation();
    } catch (err) {
      throw new SigferryError(
        "OUTPUT_WRITE_FAILED",
        `${this.#for}: cannot keep the members in a spool file under ${this.#dir}: ${osReason(err)} (set TMPDIR to a writable directory with room for the unpacked archive)`,
        { cause: err, details: { file: this.#dir } },
      );
    }
  }
}
