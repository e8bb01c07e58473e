import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { link, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, readArchive, safeJoin } from "../../src/archive/reader.js";
import { writeArchive, type ArchiveMember } from "../../src/archive/writer.js";
import { isSigferryError } from "../../src/errors.js";
import { HOSTILE_DIR } from "../../fixtures/hostile/make.js";
import { listDir, noise, rejection, tempDir } from "./util.js";

const MTIME = new Date("2024-05-01T12:00:00Z");
const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

const MEMBERS: ArchiveMember[] = [
  { path: "index.json", data: Buffer.from('{"format":"sigferry-bundle"}\n') },
  { path: "empty", data: new Uint8Array(0) },
  { path: "openpgp/sha256=" + "a".repeat(64) + "/signature-1", data: noise(1000, 3) },
  { path: `deep/${"d".repeat(200)}/x`, data: Buffer.from("pax name\n") },
  { path: "exactly-512", data: noise(512, 4) },
];

/** Writes MEMBERS (or the given members) with the real writer and returns the archive bytes. */
async function archiveBytes(
  gzip: boolean,
  members: readonly ArchiveMember[] = MEMBERS,
): Promise<Buffer> {
  const dir = await tempDir();
  const file = join(dir, gzip ? "a.tar.gz" : "a.tar");
  await writeArchive(file, members, { mtime: MTIME });
  return readFile(file);
}

/** A stream that hands out `bytes` in chunks of the given sizes (cycled). */
function chunked(bytes: Buffer, sizes: number[]): Readable {
  const chunks: Buffer[] = [];
  for (let o = 0, i = 0; o < bytes.length; i += 1) {
    const n = sizes[i % sizes.length]!;
    chunks.push(bytes.subarray(o, o + n));
    o += n;
  }
  return Readable.from(chunks);
}

describe("readArchive", () => {
  it("returns members, archive order, the file's sha256 and size, from a path or a stream", async () => {
    for (const gzip of [false, true]) {
      const bytes = await archiveBytes(gzip);
      const fromStream = await readArchive(Readable.from([bytes]));
      expect(fromStream.sha256).toBe(sha256(bytes));
      expect(fromStream.size).toBe(bytes.length);
      expect(fromStream.gzip).toBe(gzip);
      expect(fromStream.order).toEqual(
        MEMBERS.map((m) => m.path).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
      for (const m of MEMBERS) {
        expect(Buffer.from(fromStream.members.get(m.path)!).equals(Buffer.from(m.data))).toBe(true);
      }
    }
  });

  it("gives the same result whatever the chunk sizes (1 byte, odd sizes, whole)", async () => {
    for (const gzip of [false, true]) {
      const bytes = await archiveBytes(gzip);
      const whole = await readArchive(Readable.from([bytes]));
      for (const sizes of [[1], [7, 511, 513, 1], [512], [4096]]) {
        const again = await readArchive(chunked(bytes, sizes));
        expect(again.sha256).toBe(whole.sha256);
        expect(again.order).toEqual(whole.order);
        for (const [name, data] of whole.members) {
          expect(Buffer.from(again.members.get(name)!).equals(Buffer.from(data))).toBe(true);
        }
      }
    }
  });

  it("reads archives GNU tar writes in pax, ustar and gnu formats (long names included)", async () => {
    const dir = await tempDir();
    const src = join(dir, "src");
    const names = ["index.json", "a/b/c.txt", `long/${"n".repeat(120)}/${"m".repeat(80)}`];
    for (const name of names) {
      await mkdir(join(src, name, ".."), { recursive: true });
      await writeFile(join(src, name), `content of ${name}\n`);
    }
    for (const format of ["pax", "ustar", "gnu"]) {
      const out = join(dir, `${format}.tar`);
      const list = format === "ustar" ? names.slice(0, 2) : names; // ustar cannot hold the longest
      execFileSync("tar", [
        `--format=${format}`,
        "--no-recursion",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "-cf",
        out,
        "-C",
        src,
        ...list,
      ]);
      const archive = await readArchive(out);
      expect(archive.order, format).toEqual(list);
      for (const name of list) {
        expect(Buffer.from(archive.members.get(name)!).toString()).toBe(`content of ${name}\n`);
      }
    }
  });

  it("refuses an archive cut at any offset with ARCHIVE_TRUNCATED (never a hang, never fewer members)", async () => {
    const tar = await archiveBytes(false);
    for (let cut = 0; cut < tar.length; cut += 1) {
      const err = await rejection(readArchive(Readable.from([tar.subarray(0, cut)])));
      expect(err.code, `tar cut at ${cut}`).toBe("ARCHIVE_TRUNCATED");
    }
    const gz = await archiveBytes(true);
    for (let cut = 0; cut < gz.length; cut += 1) {
      const err = await rejection(readArchive(Readable.from([gz.subarray(0, cut)])));
      expect(err.code, `tar.gz cut at ${cut}`).toBe("ARCHIVE_TRUNCATED");
    }
  });

  it("names the member an archive was cut inside", async () => {
    const tar = await archiveBytes(false);
    const archive = await readArchive(Readable.from([tar]));
    expect(archive.order[2]).toBe("exactly-512");
    const headerAt = tar.indexOf(Buffer.from("exactly-512\u0000"));
    const err = await rejection(
      readArchive(Readable.from([tar.subarray(0, headerAt + 512 + 100)])),
    );
    expect(err.message).toBe('the archive ends inside member "exactly-512" (100 of 512 bytes)');
    expect(err.details.member).toBe("exactly-512");
  });

  it("accepts zero padding after the end-of-archive marker (GNU tar pads to 10 KiB records)", async () => {
    const tar = await archiveBytes(false);
    const padded = Buffer.concat([tar, Buffer.alloc(10240 - (tar.length % 10240))]);
    expect((await readArchive(Readable.from([padded]))).order).toHaveLength(MEMBERS.length);
  });

  it("refuses a flipped bit in a member body of a .tar.gz with ARCHIVE_CORRUPT (gzip CRC)", async () => {
    const gz = await archiveBytes(true);
    const damaged = Buffer.from(gz);
    damaged[Math.floor(gz.length / 2)]! ^= 0x01;
    const err = await rejection(readArchive(Readable.from([damaged])));
    expect(["ARCHIVE_CORRUPT", "ARCHIVE_TRUNCATED"]).toContain(err.code);
  });
});

describe("readArchive limits", () => {
  it("documents its defaults: 100 000 entries, 32 MiB per entry, 512 MiB in all", () => {
    expect(DEFAULT_LIMITS).toEqual({
      maxEntries: 100_000,
      maxEntrySize: 32 * 1024 * 1024,
      maxTotalSize: 512 * 1024 * 1024,
    });
  });

  it("accepts an entry of exactly maxEntrySize and refuses one byte more with ARCHIVE_LIMIT", async () => {
    const bytes = await archiveBytes(false, [{ path: "m", data: noise(1000) }]);
    expect((await readArchive(Readable.from([bytes]), { maxEntrySize: 1000 })).members.size).toBe(
      1,
    );
    const err = await rejection(readArchive(Readable.from([bytes]), { maxEntrySize: 999 }));
    expect(err.code).toBe("ARCHIVE_LIMIT");
    expect(err.message).toBe('entry "m" is 1000 bytes, more than the 999 accepted (maxEntrySize)');
  });

  it("accepts exactly maxEntries entries and refuses one more with ARCHIVE_LIMIT", async () => {
    const members = Array.from({ length: 5 }, (_, i) => ({
      path: `m${i}`,
      data: Buffer.from("x"),
    }));
    const bytes = await archiveBytes(true, members);
    expect((await readArchive(Readable.from([bytes]), { maxEntries: 5 })).members.size).toBe(5);
    const err = await rejection(readArchive(Readable.from([bytes]), { maxEntries: 4 }));
    expect(err.code).toBe("ARCHIVE_LIMIT");
    expect(err.details.member).toBe("m4");
  });

  it("refuses more than 100 000 entries with the default limits", async () => {
    // 100 001 empty members, generated lazily: 51 MB of tar that never exists in memory at once.
    const header = (name: string): Buffer => {
      const h = Buffer.alloc(512);
      h.write(name, 0);
      h.write("0000644\u0000", 100);
      h.write("0000000\u0000", 108);
      h.write("0000000\u0000", 116);
      h.write("00000000000\u0000", 124);
      h.write("00000000000\u0000", 136);
      h.write("0", 156);
      h.write("ustar\u000000", 257, "latin1");
      h.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, "latin1");
      return h;
    };
    const stream = Readable.from(
      (function* () {
        for (let i = 0; i <= 100_000; i += 1) yield header(`m${String(i).padStart(6, "0")}`);
        yield Buffer.alloc(1024);
      })(),
    );
    const err = await rejection(readArchive(stream));
    expect(err.code).toBe("ARCHIVE_LIMIT");
    expect(err.details.member).toBe("m100000");
  });

  it("refuses an archive whose members exceed maxTotalSize, before reading the entry that crosses it", async () => {
    // Three 3 MiB members of zeros: a small .tar.gz, 9 MiB of tar.
    const members = ["a", "b", "c"].map((path) => ({ path, data: Buffer.alloc(3 * 1024 * 1024) }));
    const bytes = await archiveBytes(true, members);
    expect(bytes.length).toBeLessThan(64 * 1024);
    const err = await rejection(
      readArchive(Readable.from([bytes]), { maxTotalSize: 8 * 1024 * 1024 }),
    );
    expect(err.code).toBe("ARCHIVE_LIMIT");
    expect(err.details.member).toBe("c");
    expect(err.message).toMatch(/maxTotalSize/);
  });

  describe("a gzip bomb (1 GiB of zeros, about 1 MB compressed)", () => {
    let bombDir = "";
    let bomb = "";
    beforeAll(async () => {
      bombDir = await mkdtemp(join(tmpdir(), "sigferry-bomb-"));
      bomb = join(bombDir, "bomb.tar.gz");
      const zeros = Buffer.alloc(1024 * 1024);
      await pipeline(
        Readable.from(
          (function* () {
            for (let i = 0; i < 1024; i += 1) yield zeros;
          })(),
        ),
        createGzip({ level: 9 }),
        createWriteStream(bomb),
      );
    });
    afterAll(async () => {
      await rm(bombDir, { recursive: true, force: true });
    });

    it("stops at maxTotalSize with ARCHIVE_LIMIT, with memory bounded", async () => {
      expect((await readFile(bomb)).length).toBeLessThan(1.1 * 1024 * 1024);
      const before = process.memoryUsage();
      const err = await rejection(readArchive(bomb));
      const after = process.memoryUsage();
      expect(err.code).toBe("ARCHIVE_LIMIT");
      expect(err.message).toMatch(/larger than 536870912 bytes uncompressed \(maxTotalSize\)/);
      // Nothing of the 512 MiB inflated is kept: zeros after the end-of-archive
      // marker are checked and dropped chunk by chunk.
      expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 1024 * 1024);
    });

    it("stops at a smaller cap when asked", async () => {
      const err = await rejection(readArchive(bomb, { maxTotalSize: 1024 * 1024 }));
      expect(err.code).toBe("ARCHIVE_LIMIT");
    });
  });

  it("refuses a negative or fractional limit with USAGE", async () => {
    for (const limits of [{ maxEntries: -1 }, { maxEntrySize: 1.5 }, { maxTotalSize: NaN }]) {
      const err = await rejection(readArchive(Readable.from([Buffer.alloc(1024)]), limits));
      expect(err.code).toBe("USAGE");
    }
  });
});

describe("readArchive input errors", () => {
  it("throws INPUT_READ_FAILED for a missing file, naming it", async () => {
    const dir = await tempDir();
    const err = await rejection(readArchive(join(dir, "missing.tar")));
    expect(err.code).toBe("INPUT_READ_FAILED");
    expect(err.message).toContain("ENOENT");
    expect(err.details.file).toBe(join(dir, "missing.tar"));
  });

  it("throws INPUT_READ_FAILED for a directory", async () => {
    const dir = await tempDir();
    const err = await rejection(readArchive(dir));
    expect(err.code).toBe("INPUT_READ_FAILED");
  });

  it("throws INPUT_READ_FAILED when the input stream fails part-way", async () => {
    const bytes = await archiveBytes(true);
    const stream = new PassThrough();
    stream.write(bytes.subarray(0, 100));
    setTimeout(() => stream.destroy(new Error("connection reset")), 10);
    const err = await rejection(readArchive(stream));
    expect(err.code).toBe("INPUT_READ_FAILED");
    expect(err.message).toContain("connection reset");
  });
});

describe("readArchive on a stream that stays open", () => {
  for (const gzip of [false, true]) {
    it(`refuses a hostile entry at once, without waiting for the end of the stream (${gzip ? "tar.gz" : "tar"})`, async () => {
      const symlink = await readFile(join(HOSTILE_DIR, "symlink.tar"));
      const stream = new PassThrough();
      // The symlink header, then a stream that neither sends more nor ends.
      const head = symlink.subarray(0, 512);
      stream.write(
        gzip ? gzipSync(Buffer.concat([head, Buffer.alloc(64 * 1024)])).subarray(0, 200) : head,
      );
      if (gzip)
        stream.write(gzipSync(Buffer.concat([head, Buffer.alloc(64 * 1024)])).subarray(200));
      const err = await rejection(readArchive(stream));
      expect(err.code).toBe("ARCHIVE_HOSTILE");
      expect(stream.destroyed).toBe(true);
    });
  }
});

describe("safeJoin", () => {
  it("joins a member path under the directory's real path", async () => {
    const dir = await tempDir();
    const real = await realpath(dir);
    expect(safeJoin(dir, "a/b/c.txt")).toBe(join(real, "a/b/c.txt"));
    await mkdir(join(dir, "a"));
    expect(safeJoin(dir, "a/b/c.txt")).toBe(join(real, "a/b/c.txt"));
    await writeFile(join(dir, "a", "f"), "x");
    expect(safeJoin(dir, "a/f")).toBe(join(real, "a/f"));
  });

  it("refuses an unsafe member path with ARCHIVE_HOSTILE", async () => {
    const dir = await tempDir();
    for (const p of ["../x", "/etc/passwd", "a/../../x", "./a", "a\\b"]) {
      let code: string | undefined;
      try {
        safeJoin(dir, p);
      } catch (err) {
        code = isSigferryError(err) ? err.code : "other";
      }
      expect(code, p).toBe("ARCHIVE_HOSTILE");
    }
  });

  const refused = (dir: string, p: string): string | undefined => {
    try {
      safeJoin(dir, p);
    } catch (err) {
      if (isSigferryError(err, "OUTPUT_WRITE_FAILED")) return err.message;
      throw err;
    }
    return undefined;
  };

  it("refuses to write through a symbolic link in the directory that points outside it", async () => {
    const dir = await tempDir();
    const outside = await tempDir();
    await symlink(outside, join(dir, "keys"));
    expect(refused(dir, "keys/a.asc")).toMatch(/symbolic link to .*outside/);
    await mkdir(join(dir, "x"));
    await symlink("../..", join(dir, "x", "up"));
    expect(refused(dir, "x/up/y/z")).toMatch(/outside/);
    expect(await listDir(outside)).toEqual([]);
  });

  it("follows a symbolic link that stays inside the directory", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "real"));
    await symlink("real", join(dir, "alias"));
    expect(safeJoin(dir, "alias/f")).toBe(join(await realpath(dir), "real", "f"));
  });

  it("refuses a destination that is a symbolic link, a directory or a hard-linked file", async () => {
    const dir = await tempDir();
    const outside = await tempDir();
    await writeFile(join(outside, "target"), "x");
    await symlink(join(outside, "target"), join(dir, "link"));
    expect(refused(dir, "link")).toMatch(/is a symbolic link/);
    await mkdir(join(dir, "d"));
    expect(refused(dir, "d")).toMatch(/not a regular file/);
    await link(join(outside, "target"), join(dir, "hard"));
    expect(refused(dir, "hard")).toMatch(/other hard links/);
    await writeFile(join(dir, "file"), "x");
    expect(refused(dir, "file/below")).toMatch(/not a directory/);
    await symlink(join(dir, "nowhere"), join(dir, "dangling"));
    expect(refused(dir, "dangling/x")).toMatch(/does not resolve/);
  });

  it("refuses a directory that does not exist with OUTPUT_WRITE_FAILED", async () => {
    const dir = await tempDir();
    expect(refused(join(dir, "missing"), "a")).toMatch(/ENOENT/);
  });
});
