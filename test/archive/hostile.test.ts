/**
 * Security regressions: every hostile archive in fixtures/hostile/ (built byte
 * by byte by fixtures/hostile/make.ts) is refused with the right code and a
 * message naming what is wrong.
 */
import { readFile, readdir } from "node:fs/promises";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readArchive, type ArchiveLimits } from "../../src/archive/reader.js";
import { isSigferryError, type ErrorCode } from "../../src/errors.js";
import { HOSTILE_DIR, buildHostileFixtures } from "../../fixtures/hostile/make.js";

interface Case {
  file: string;
  code: ErrorCode;
  defence: string;
  message: RegExp;
  member?: string;
  limits?: Partial<ArchiveLimits>;
}

const CASES: Case[] = [
  // Names that escape the extraction directory or are spelled more than one way.
  {
    file: "absolute-path.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "an absolute path",
    message: /"\/tmp\/sigferry-escape": the path is absolute/,
    member: "/tmp/sigferry-escape",
  },
  {
    file: "dotdot-escape.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a `../` path",
    message: /"\.\.\/escape".*`\.\.` component/,
    member: "../escape",
  },
  {
    file: "nested-dotdot.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a nested `a/../../b` path",
    message: /`\.\.` component/,
    member: "a/../../b",
  },
  {
    file: "dot-slash-prefix.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a `./` prefix",
    message: /`\.` component/,
    member: "./index.json",
  },
  {
    file: "empty-component.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "an empty path component",
    message: /empty component/,
    member: "keys//a",
  },
  {
    file: "backslash.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a backslash path (escapes on Windows)",
    message: /backslash/,
  },
  {
    file: "invalid-utf8-name.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a name that is not UTF-8",
    message: /not valid UTF-8/,
  },
  {
    file: "pax-path-escape.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a `..` path smuggled in a pax header",
    message: /"\.\.\/\.\.\/etc\/cron\.d\/evil"/,
    member: "../../etc/cron.d/evil",
  },
  {
    file: "pax-path-nul.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a NUL in a pax path",
    message: /control character/,
  },
  {
    file: "gnu-longname-escape.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a `..` path smuggled in a GNU long name",
    message: /`\.\.` component/,
  },
  {
    file: "ustar-prefix-escape.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a `..` path smuggled in the ustar prefix",
    message: /"\.\.\/\.\.\/etc\/passwd"/,
  },
  // Entry types other than a regular file.
  {
    file: "symlink.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a symlink entry",
    message: /"index\.json" is a symbolic link to "\/etc\/passwd"/,
    member: "index.json",
  },
  {
    file: "hardlink.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a hard link entry",
    message: /"hl" is a hard link to "\/etc\/passwd"/,
    member: "hl",
  },
  {
    file: "char-device.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a character device entry",
    message: /"null" is a character device/,
  },
  {
    file: "block-device.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a block device entry",
    message: /"sda" is a block device/,
  },
  {
    file: "fifo.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a FIFO entry",
    message: /"pipe" is a FIFO/,
  },
  {
    file: "directory.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a directory entry",
    message: /"keys\/" is a directory/,
  },
  {
    file: "contiguous-file.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a contiguous-file entry",
    message: /contiguous file/,
  },
  {
    file: "pax-global-header.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a pax global header",
    message: /global extended header/,
  },
  {
    file: "pax-unknown-key.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "an xattr in a pax header",
    message: /SCHILY\.xattr\.security\.capability/,
  },
  {
    file: "pax-sparse.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a GNU sparse pax key",
    message: /GNU\.sparse\.size/,
  },
  {
    file: "pax-repeated-key.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a pax header that repeats a key",
    message: /repeats key "path"/,
  },
  { file: "setuid.tar", code: "ARCHIVE_HOSTILE", defence: "a setuid file", message: /mode 4755/ },
  // Names that overwrite each other on extraction.
  {
    file: "nfc-collision.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "names equal after NFC normalisation",
    message: /collides with "café"/,
    member: "cafe\u0301",
  },
  {
    file: "case-collision.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "names equal after case folding",
    message: /"INDEX\.json".*collides with "index\.json"/,
    member: "INDEX.json",
  },
  {
    file: "duplicate-name.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a duplicate entry",
    message: /"index\.json".*already has a member with this path/,
    member: "index.json",
  },
  {
    file: "file-dir-conflict.tar",
    code: "ARCHIVE_HOSTILE",
    defence: "a file that is also a directory",
    message: /"keys\/a".*is the file "keys"/,
  },
  // Limits.
  {
    file: "entry-too-large.tar",
    code: "ARCHIVE_LIMIT",
    defence: "a header claiming 5 GiB, before reading its body",
    message: /"huge" is 5368709120 bytes.*maxEntrySize/,
    member: "huge",
  },
  {
    file: "pax-size-too-large.tar",
    code: "ARCHIVE_LIMIT",
    defence: "a pax size claiming 5 GiB",
    message: /"huge" is 5368709120 bytes/,
  },
  {
    file: "too-many-entries.tar",
    code: "ARCHIVE_LIMIT",
    defence: "more entries than maxEntries",
    message: /more than 10 entries.*"e10"/,
    member: "e10",
    limits: { maxEntries: 10 },
  },
  // Cut short.
  {
    file: "truncated-header.tar",
    code: "ARCHIVE_TRUNCATED",
    defence: "an archive cut inside a header",
    message: /ends inside a header/,
  },
  {
    file: "truncated-body.tar",
    code: "ARCHIVE_TRUNCATED",
    defence: "an archive cut inside a body",
    message: /ends inside member "index\.json" \(300 of 1000 bytes\)/,
    member: "index.json",
  },
  {
    file: "truncated-padding.tar",
    code: "ARCHIVE_TRUNCATED",
    defence: "an archive cut inside padding",
    message: /padding after member "index\.json"/,
  },
  {
    file: "missing-end-blocks.tar",
    code: "ARCHIVE_TRUNCATED",
    defence: "an archive without its end-of-archive marker",
    message: /after 2 member\(s\) without its end-of-archive marker/,
  },
  {
    file: "one-end-block.tar",
    code: "ARCHIVE_TRUNCATED",
    defence: "an archive with one end block of two",
    message: /end-of-archive marker/,
  },
  { file: "empty.tar", code: "ARCHIVE_TRUNCATED", defence: "an empty file", message: /empty/ },
  {
    file: "gzip-truncated.tar.gz",
    code: "ARCHIVE_TRUNCATED",
    defence: "a cut gzip stream",
    message: /gzip stream ends early/,
  },
  {
    file: "gzip-no-trailer.tar.gz",
    code: "ARCHIVE_TRUNCATED",
    defence: "a gzip stream without its CRC trailer",
    message: /gzip stream ends early/,
  },
  // Damaged or not a tar.
  {
    file: "bad-checksum.tar",
    code: "ARCHIVE_CORRUPT",
    defence: "a bad header checksum",
    message: /bad header checksum at byte 1024/,
  },
  {
    file: "bad-size-field.tar",
    code: "ARCHIVE_CORRUPT",
    defence: "a size field that is not octal",
    message: /bad size field/,
  },
  {
    file: "garbage.tar",
    code: "ARCHIVE_CORRUPT",
    defence: "non-tar garbage",
    message: /not a tar archive/,
  },
  {
    file: "v7-header.tar",
    code: "ARCHIVE_CORRUPT",
    defence: "a pre-POSIX (v7) header",
    message: /neither POSIX ustar nor GNU/,
  },
  {
    file: "data-after-end.tar",
    code: "ARCHIVE_CORRUPT",
    defence: "an entry hidden after the end-of-archive marker",
    message: /data after its end-of-archive marker, at byte 2048/,
  },
  {
    file: "lone-zero-block.tar",
    code: "ARCHIVE_CORRUPT",
    defence: "a lone zero block followed by entries",
    message: /lone zero block/,
  },
  {
    file: "gzip-bad-crc.tar.gz",
    code: "ARCHIVE_CORRUPT",
    defence: "a gzip CRC mismatch",
    message: /bad gzip data/,
  },
  {
    file: "gzip-garbage.tar.gz",
    code: "ARCHIVE_CORRUPT",
    defence: "bad deflate data",
    message: /bad gzip data/,
  },
  {
    file: "gzip-trailing-garbage.tar.gz",
    code: "ARCHIVE_CORRUPT",
    defence: "garbage after the gzip stream",
    message: /bad gzip data/,
  },
  {
    file: "gzip-trailing-zeros.tar.gz",
    code: "ARCHIVE_CORRUPT",
    defence: "zeros after the gzip stream",
    message: /64 bytes after the end of its gzip stream/,
  },
  {
    file: "xz-magic.tar.xz",
    code: "ARCHIVE_CORRUPT",
    defence: "an xz-compressed file",
    message: /xz-compressed/,
  },
];

async function refusal(
  input: string | NodeJS.ReadableStream,
  limits?: Partial<ArchiveLimits>,
): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  try {
    await readArchive(input, limits);
  } catch (err) {
    if (isSigferryError(err)) return { code: err.code, message: err.message, details: err.details };
    throw err;
  }
  throw new Error("the archive was accepted");
}

describe("hostile archives", () => {
  for (const c of CASES) {
    it(`refuses ${c.defence} with ${c.code} (${c.file})`, async () => {
      const path = join(HOSTILE_DIR, c.file);
      const err = await refusal(path, c.limits);
      expect(err.code).toBe(c.code);
      expect(err.message).toMatch(c.message);
      expect(err.details.file).toBe(path);
      if (c.member !== undefined) expect(err.details.member).toBe(c.member);
    });
  }

  it("refuses each one the same way when read from a stream in 1-byte chunks", async () => {
    for (const c of CASES) {
      const stream = createReadStream(join(HOSTILE_DIR, c.file), { highWaterMark: 1 });
      const err = await refusal(stream, c.limits);
      expect(err.code, c.file).toBe(c.code);
      expect(err.message, c.file).toMatch(c.message);
    }
  });

  it("accepts the valid baselines the hostile fixtures are variations of", async () => {
    for (const file of ["valid.tar", "valid.tar.gz"]) {
      const archive = await readArchive(join(HOSTILE_DIR, file));
      expect(archive.order).toEqual(["index.json", "openpgp/sha256=00/signature-1"]);
      expect(archive.gzip).toBe(file.endsWith(".gz"));
    }
  });

  it("covers every committed fixture, and make.ts reproduces each byte for byte", async () => {
    const built = buildHostileFixtures();
    const committed = (await readdir(HOSTILE_DIR)).filter((f) => f !== "make.ts").sort();
    expect(committed).toEqual([...built.keys()].sort());
    for (const [file, bytes] of built) {
      expect((await readFile(join(HOSTILE_DIR, file))).equals(bytes), file).toBe(true);
    }
    const tested = new Set([...CASES.map((c) => c.file), "valid.tar", "valid.tar.gz"]);
    expect(committed.filter((f) => !tested.has(f))).toEqual([]);
  });
});
