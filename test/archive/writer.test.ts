import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { STREAM_MEMBERS_FROM, writeArchive, type ArchiveMember } from "../../src/archive/writer.js";
import { SigferryError } from "../../src/errors.js";
import { readArchive } from "../../src/archive/reader.js";
import { DEFAULT_LIMITS } from "../../src/archive/limits.js";
import { formatChecksums } from "../../src/core/checksums.js";
import { REPO_ROOT } from "../helpers/paths.js";
import { listDir, noise, rejection, tempDir } from "./util.js";

const MTIME = new Date("2024-05-01T12:00:00Z");
const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

const LONG_DIR = `sigstore/blobs/sha256/${"0123456789abcdef".repeat(4)}`;
const MEMBERS: ArchiveMember[] = [
  { path: "index.json", data: Buffer.from('{"format":"sigferry-bundle"}\n') },
  { path: "REPORT.md", data: Buffer.from("# Report\n") },
  { path: "openpgp/sha256=" + "a".repeat(64) + "/signature-1", data: noise(700, 1) },
  { path: "openpgp/sha256=" + "a".repeat(64) + "/signature-2", data: noise(512, 2) },
  { path: "empty", data: new Uint8Array(0) },
  // Longer than ustar's 100-byte name: split into prefix + name.
  { path: `${LONG_DIR}/${"f".repeat(90)}`, data: Buffer.from("long ustar name\n") },
  // Longer than name + prefix can hold: a pax header.
  { path: `deep/${"d".repeat(200)}/x`, data: Buffer.from("pax name\n") },
  // Not ASCII: a pax header.
  { path: "keys/clé.asc", data: Buffer.from("unicode name\n") },
];

/** Reads every header of an uncompressed tar (test-side decoder, independent of the code under test). */
function headers(tar: Buffer): Record<string, string | number>[] {
  const out: Record<string, string | number>[] = [];
  const text = (o: number, n: number): string => {
    const field = tar.subarray(o, o + n);
    const end = field.indexOf(0);
    return field.subarray(0, end === -1 ? n : end).toString("utf8");
  };
  let o = 0;
  while (o + 512 <= tar.length && tar.subarray(o, o + 512).some((b) => b !== 0)) {
    const size = parseInt(text(o + 124, 12), 8);
    out.push({
      name: text(o, 100),
      mode: text(o + 100, 8),
      uid: text(o + 108, 8),
      gid: text(o + 116, 8),
      size,
      mtime: parseInt(text(o + 136, 12), 8),
      type: String.fromCharCode(tar[o + 156]!),
      linkname: text(o + 157, 100),
      magic: tar.subarray(o + 257, o + 265).toString("latin1"),
      uname: text(o + 265, 32),
      gname: text(o + 297, 32),
      devmajor: text(o + 329, 8),
      devminor: text(o + 337, 8),
      prefix: text(o + 345, 155),
    });
    o += 512 + Math.ceil(size / 512) * 512;
  }
  // Only zeros after the last header: the two end blocks.
  expect(tar.length - o).toBe(1024);
  expect(tar.subarray(o).every((b) => b === 0)).toBe(true);
  return out;
}

describe("writeArchive", () => {
  for (const ext of ["tar", "tar.gz"]) {
    it(`writes byte-identical ${ext} output for the same input, in any input order`, async () => {
      const dir = await tempDir();
      const a = await writeArchive(join(dir, `a.${ext}`), MEMBERS, { mtime: MTIME });
      const shuffled = [...MEMBERS].reverse();
      const b = await writeArchive(join(dir, `b.${ext}`), shuffled, {
        mtime: new Date(MTIME.getTime() + 999), // sub-second part dropped
      });
      const bytesA = await readFile(join(dir, `a.${ext}`));
      const bytesB = await readFile(join(dir, `b.${ext}`));
      expect(bytesA.equals(bytesB)).toBe(true);
      expect(a.sha256).toBe(b.sha256);
      expect(a.sha256).toBe(sha256(bytesA));
      expect(a.size).toBe(bytesA.length);
      expect(a.sidecarPath).toBe(join(dir, `a.${ext}.sha256`));
    });
  }

  it("sorts entries by path in byte order and sets every header field to a fixed value", async () => {
    const dir = await tempDir();
    await writeArchive(join(dir, "a.tar"), [...MEMBERS].reverse(), { mtime: MTIME });
    const hs = headers(await readFile(join(dir, "a.tar")));
    for (const h of hs) {
      expect(h).toMatchObject({
        mode: "000644 ",
        uid: "000000 ",
        gid: "000000 ",
        mtime: MTIME.getTime() / 1000,
        linkname: "",
        magic: "ustar\u000000",
        uname: "",
        gname: "",
        devmajor: "000000 ",
        devminor: "000000 ",
      });
      expect(["0", "x"]).toContain(h.type);
    }
    // A pax header carries only the path, under the fixed name PaxHeader.
    const pax = hs.filter((h) => h.type === "x");
    expect(pax).toHaveLength(2);
    for (const h of pax) expect(h.name).toBe("PaxHeader");
    const back = await readArchive(join(dir, "a.tar"));
    const sorted = MEMBERS.map((m) => m.path).sort((x, y) =>
      Buffer.compare(Buffer.from(x), Buffer.from(y)),
    );
    expect(back.order).toEqual(sorted);
  });

  it("writes headers that GNU tar lists with the fixed owner, mode, mtime and exact long names", async () => {
    const dir = await tempDir();
    await writeArchive(join(dir, "a.tar.gz"), MEMBERS, { mtime: MTIME });
    const listing = execFileSync(
      "tar",
      ["--numeric-owner", "--full-time", "-tvzf", join(dir, "a.tar.gz")],
      { encoding: "utf8", env: { ...process.env, TZ: "UTC", LC_ALL: "C.UTF-8" } },
    );
    const lines = listing.trim().split("\n");
    expect(lines).toHaveLength(MEMBERS.length);
    for (const line of lines) {
      expect(line).toMatch(/^-rw-r--r-- 0\/0 +\d+ 2024-05-01 12:00:00 /);
    }
    const names = lines.map((l) => l.replace(/^(\S+\s+){5}/, ""));
    expect(names.sort()).toEqual(MEMBERS.map((m) => m.path).sort());
  });

  it("writes a gzip header with no name, mtime 0 and a fixed OS byte, which gzip -t accepts", async () => {
    const dir = await tempDir();
    await writeArchive(join(dir, "a.tgz"), MEMBERS, { mtime: MTIME });
    const gz = await readFile(join(dir, "a.tgz"));
    expect([...gz.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]); // FLG 0: no FNAME/FCOMMENT/FEXTRA
    expect(gz.readUInt32LE(4)).toBe(0); // MTIME
    expect(gz[9]).toBe(3); // OS: Unix
    execFileSync("gzip", ["-t", join(dir, "a.tgz")]);
    await writeArchive(join(dir, "b.tar"), MEMBERS, { mtime: MTIME });
    expect(gunzipSync(gz).equals(await readFile(join(dir, "b.tar")))).toBe(true);
  });

  it("gzips by file name unless told otherwise", async () => {
    const dir = await tempDir();
    for (const [name, gzip, expected] of [
      ["a.tar.gz", undefined, true],
      ["a.tgz", undefined, true],
      ["a.tar", undefined, false],
      ["b.tar", true, true],
      ["b.tar.gz", false, false],
    ] as const) {
      await writeArchive(join(dir, name), MEMBERS, { mtime: MTIME, gzip });
      expect((await readArchive(join(dir, name))).gzip, name).toBe(expected);
    }
  });

  it("writes an archive whose checksums.sha256 passes `sha256sum -c` after `tar -xf`", async () => {
    const dir = await tempDir();
    const list = formatChecksums(MEMBERS.map((m) => ({ path: m.path, sha256: sha256(m.data) })));
    const members = [...MEMBERS, { path: "checksums.sha256", data: Buffer.from(list) }];
    await writeArchive(join(dir, "bundle.tar.gz"), members, { mtime: MTIME });
    const out = join(dir, "extracted");
    await mkdir(out);
    execFileSync("tar", ["-xzf", join(dir, "bundle.tar.gz"), "-C", out]);
    const check = execFileSync("sha256sum", ["--strict", "-c", "checksums.sha256"], {
      cwd: out,
      encoding: "utf8",
    });
    expect(check.trim().split("\n")).toHaveLength(MEMBERS.length);
    expect(check).not.toMatch(/FAILED/);
  });

  it("writes a sidecar that `sha256sum -c` accepts next to the archive", async () => {
    const dir = await tempDir();
    const { sha256: hex, sidecarPath } = await writeArchive(join(dir, "bundle.tar"), MEMBERS, {
      mtime: MTIME,
    });
    expect(await readFile(sidecarPath, "utf8")).toBe(`${hex}  bundle.tar\n`);
    const check = execFileSync("sha256sum", ["--strict", "-c", "bundle.tar.sha256"], {
      cwd: dir,
      encoding: "utf8",
    });
    expect(check).toBe("bundle.tar: OK\n");
  });

  it("replaces an existing archive and sidecar", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "a.tar"), "old");
    await writeFile(join(dir, "a.tar.sha256"), "old");
    const { sha256: hex } = await writeArchive(join(dir, "a.tar"), MEMBERS, { mtime: MTIME });
    expect(sha256(await readFile(join(dir, "a.tar")))).toBe(hex);
    expect(await listDir(dir)).toEqual(["a.tar", "a.tar.sha256"]);
  });

  it("writes an empty archive that reads back with no members", async () => {
    const dir = await tempDir();
    const { size } = await writeArchive(join(dir, "a.tar"), [], { mtime: MTIME });
    expect(size).toBe(1024);
    expect((await readArchive(join(dir, "a.tar"))).members.size).toBe(0);
  });

  it("reads back exactly what it wrote", async () => {
    const dir = await tempDir();
    for (const name of ["a.tar", "a.tar.gz"]) {
      const written = await writeArchive(join(dir, name), MEMBERS, { mtime: MTIME });
      const back = await readArchive(join(dir, name));
      expect(back.sha256).toBe(written.sha256);
      expect(back.size).toBe(written.size);
      expect(back.members.size).toBe(MEMBERS.length);
      for (const m of MEMBERS) {
        expect(Buffer.from(back.members.get(m.path)!).equals(Buffer.from(m.data)), m.path).toBe(
          true,
        );
      }
    }
  });

  it("round-trips 20 000 small members", async () => {
    const dir = await tempDir();
    const members = Array.from({ length: 20_000 }, (_, i) => ({
      path: `sigstore/blobs/sha256/${sha256(Buffer.from(String(i)))}`,
      data: Buffer.from(`member ${i}\n`),
    }));
    await writeArchive(join(dir, "many.tar.gz"), members, { mtime: MTIME });
    const back = await readArchive(join(dir, "many.tar.gz"));
    expect(back.members.size).toBe(20_000);
    expect(Buffer.from(back.members.get(members[12_345]!.path)!).toString()).toBe("member 12345\n");
  });
});

describe("writeArchive with large members given in pieces", () => {
  // Three members of 256 KiB and more, with pieces the writer asks for, counted.
  const big = [noise(STREAM_MEMBERS_FROM, 7), noise(1_000_003, 8), noise(5 * 65_536 + 1, 9)];
  const pieced = (asked: number[]): ArchiveMember[] => [
    ...MEMBERS,
    ...big.map((data, i) => ({
      path: `big/${i}`,
      size: data.length,
      get data(): Uint8Array {
        throw new Error("a large member with pieces is never read whole");
      },
      *chunks(chunkSize: number): Generator<Uint8Array> {
        for (let at = 0; at < data.length; at += chunkSize) {
          asked.push(Math.min(chunkSize, data.length - at));
          yield data.subarray(at, at + chunkSize);
        }
      },
    })),
  ];
  const whole = (): ArchiveMember[] => [
    ...MEMBERS,
    ...big.map((data, i) => ({ path: `big/${i}`, data })),
  ];

  for (const ext of ["tar", "tar.gz"]) {
    it(`writes the same ${ext} bytes as from whole members, reading them only in pieces`, async () => {
      const dir = await tempDir();
      const asked: number[] = [];
      // Waiting for the pack to drain must not pile up listeners (Node warns of a leak at 11).
      const warnings: Error[] = [];
      const onWarning = (w: Error): number => warnings.push(w);
      process.on("warning", onWarning);
      const a = await writeArchive(join(dir, `a.${ext}`), pieced(asked), { mtime: MTIME }).finally(
        () => process.off("warning", onWarning),
      );
      expect(warnings.map((w) => w.message)).toEqual([]);
      const b = await writeArchive(join(dir, `b.${ext}`), whole(), { mtime: MTIME });
      expect(a.sha256).toBe(b.sha256);
      expect(
        (await readFile(join(dir, `a.${ext}`))).equals(await readFile(join(dir, `b.${ext}`))),
      ).toBe(true);
      expect(asked.reduce((x, y) => x + y, 0)).toBe(big.reduce((x, d) => x + d.length, 0));
      expect(Math.max(...asked)).toBeLessThanOrEqual(64 * 1024);
    });
  }

  it("refuses pieces that add up to less than the size, and leaves no file", async () => {
    const dir = await tempDir();
    const short: ArchiveMember = {
      path: "big/short",
      size: STREAM_MEMBERS_FROM + 10,
      data: new Uint8Array(0),
      chunks: () => [noise(STREAM_MEMBERS_FROM, 3)],
    };
    await expect(
      writeArchive(join(dir, "s.tar"), [...MEMBERS, short], { mtime: MTIME }),
    ).rejects.toThrow();
    expect(await listDir(dir)).toEqual([]);
  });

  it("passes on the error of a piece that cannot be read (a spool read failure), and leaves no file", async () => {
    const dir = await tempDir();
    const failing: ArchiveMember = {
      path: "big/failing",
      size: STREAM_MEMBERS_FROM * 2,
      data: new Uint8Array(0),
      *chunks(): Generator<Uint8Array> {
        yield noise(STREAM_MEMBERS_FROM, 4);
        throw new SigferryError("OUTPUT_WRITE_FAILED", "spool: cannot read (EIO)");
      },
    };
    const err = await rejection(
      writeArchive(join(dir, "f.tar.gz"), [...MEMBERS, failing], { mtime: MTIME }),
    );
    expect(err).toMatchObject({ code: "OUTPUT_WRITE_FAILED", message: "spool: cannot read (EIO)" });
    expect(await listDir(dir)).toEqual([]);
  });
});

describe("writeArchive with many small members", () => {
  // 800 members of 6 000 bytes (4.8 MB), each handed to the pack whole, through gzip or not.
  const many: ArchiveMember[] = Array.from({ length: 800 }, (_, i) => ({
    path: `many/${String(i).padStart(4, "0")}`,
    data: noise(6000, 100 + i),
  }));

  for (const ext of ["tar", "tar.gz"]) {
    it(`writes every one of them, in order, as GNU tar and the reader see them (${ext})`, async () => {
      const dir = await tempDir();
      const file = join(dir, `many.${ext}`);
      await writeArchive(file, many, { mtime: MTIME });
      const listed = execFileSync("tar", ["-tf", file], { encoding: "utf8" }).trim().split("\n");
      expect(listed).toEqual(many.map((m) => m.path));
      const back = await readArchive(file);
      try {
        expect(back.order).toEqual(many.map((m) => m.path));
        for (const m of many) expect(back.members.sha256(m.path)).toBe(sha256(m.data));
      } finally {
        back.members.close();
      }
    });
  }
});

describe("writeArchive failures leave nothing behind", () => {
  it("throws OUTPUT_WRITE_FAILED naming the path and the OS reason for a missing directory", async () => {
    const dir = await tempDir();
    const out = join(dir, "missing", "a.tar");
    const err = await rejection(writeArchive(out, MEMBERS, { mtime: MTIME }));
    expect(err.code).toBe("OUTPUT_WRITE_FAILED");
    expect(err.message).toContain(out);
    expect(err.message).toContain("ENOENT");
    expect(await listDir(dir)).toEqual([]);
  });

  it("throws OUTPUT_WRITE_FAILED and removes its temporary files when the output path is a directory", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "a.tar"));
    const err = await rejection(writeArchive(join(dir, "a.tar"), MEMBERS, { mtime: MTIME }));
    expect(err.code).toBe("OUTPUT_WRITE_FAILED");
    expect(err.message).toMatch(/EISDIR|EEXIST|ENOTEMPTY/);
    expect(await listDir(dir)).toEqual(["a.tar"]);
    expect(await listDir(join(dir, "a.tar"))).toEqual([]);
  });

  it("takes the archive back when its sidecar cannot be put in place", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "a.tar.sha256"));
    await writeFile(join(dir, "a.tar.sha256", "keep"), "x");
    const err = await rejection(writeArchive(join(dir, "a.tar"), MEMBERS, { mtime: MTIME }));
    expect(err.code).toBe("OUTPUT_WRITE_FAILED");
    expect(err.message).toContain("a.tar.sha256");
    expect(await listDir(dir)).toEqual(["a.tar.sha256"]);
  });

  it("throws OUTPUT_WRITE_FAILED with the OS reason when a write fails mid-stream (file size limit)", async () => {
    const dir = await tempDir();
    const script = join(dir, "child.mts");
    const writer = pathToFileURL(join(REPO_ROOT, "src/archive/writer.ts")).href;
    await writeFile(
      script,
      `import { writeArchive } from ${JSON.stringify(writer)};
const data = Buffer.alloc(2 * 1024 * 1024, 7);
try {
  await writeArchive(process.argv[2], [{ path: "big", data }], { mtime: new Date(0) });
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  console.log(JSON.stringify({ code: err.code, message: err.message }));
}
`,
    );
    const out = join(dir, "out");
    await mkdir(out);
    // RLIMIT_FSIZE makes write() fail with EFBIG part-way through (Node ignores SIGXFSZ),
    // the same path a full disk (ENOSPC) takes.
    const child = spawnSync(
      "bash",
      ["-c", 'ulimit -f 256 && exec node --import tsx "$0" "$1"', script, join(out, "a.tar")],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    expect(child.status, child.stderr).toBe(0);
    const result = JSON.parse(child.stdout.trim().split("\n").pop()!) as Record<string, string>;
    expect(result.code).toBe("OUTPUT_WRITE_FAILED");
    expect(result.message).toContain(join(out, "a.tar"));
    expect(result.message).toContain("EFBIG");
    expect(await listDir(out)).toEqual([]);
  });

  it("refuses an unsafe member path before creating any file", async () => {
    const dir = await tempDir();
    for (const path of ["../escape", "/abs", "a//b", "./a", "a\\b", "dir/", "a\nb"]) {
      const err = await rejection(
        writeArchive(join(dir, "a.tar"), [{ path, data: Buffer.from("x") }], { mtime: MTIME }),
      );
      expect(err.code, path).toBe("INTERNAL");
      expect(err.details.member).toBe(path);
    }
    expect(await listDir(dir)).toEqual([]);
  });

  it("refuses duplicate and colliding member paths (the reader would refuse them)", async () => {
    const dir = await tempDir();
    for (const [a, b] of [
      ["index.json", "index.json"],
      ["index.json", "INDEX.json"],
      ["caf\u00e9", "cafe\u0301"],
      ["keys", "keys/a"],
    ]) {
      const err = await rejection(
        writeArchive(
          join(dir, "a.tar"),
          [
            { path: a!, data: Buffer.from("1") },
            { path: b!, data: Buffer.from("2") },
          ],
          { mtime: MTIME },
        ),
      );
      expect(err.code).toBe("INTERNAL");
    }
    expect(await listDir(dir)).toEqual([]);
  });

  it("refuses a member larger than the reader's maxEntrySize with ARCHIVE_LIMIT", async () => {
    const dir = await tempDir();
    const err = await rejection(
      writeArchive(
        join(dir, "a.tar"),
        [{ path: "big", data: Buffer.alloc(DEFAULT_LIMITS.maxEntrySize + 1) }],
        {
          mtime: MTIME,
        },
      ),
    );
    expect(err.code).toBe("ARCHIVE_LIMIT");
    expect(await listDir(dir)).toEqual([]);
  });

  it("checks members by their declared size and reads each member's bytes once, when it writes it", async () => {
    const dir = await tempDir();
    // A member too large by its declared size is refused before any bytes are read.
    const unread = {
      path: "big",
      size: DEFAULT_LIMITS.maxEntrySize + 1,
      get data(): Uint8Array {
        throw new Error("read while checking");
      },
    };
    const err = await rejection(writeArchive(join(dir, "a.tar"), [unread], { mtime: MTIME }));
    expect(err.code).toBe("ARCHIVE_LIMIT");
    // Members read on demand (as from a spool) are read exactly once each.
    const reads = new Map<string, number>();
    const lazy = MEMBERS.map((m) => ({
      path: m.path,
      size: m.data.byteLength,
      get data(): Uint8Array {
        reads.set(m.path, (reads.get(m.path) ?? 0) + 1);
        return m.data;
      },
    }));
    await writeArchive(join(dir, "b.tar"), lazy, { mtime: MTIME });
    await writeArchive(join(dir, "c.tar"), MEMBERS, { mtime: MTIME });
    expect([...reads.values()]).toEqual(MEMBERS.map(() => 1));
    expect((await readFile(join(dir, "b.tar"))).equals(await readFile(join(dir, "c.tar")))).toBe(
      true,
    );
  });

  it("refuses an mtime tar-stream cannot encode (after 2038-01-19) with USAGE", async () => {
    const dir = await tempDir();
    for (const mtime of [new Date("2040-01-01T00:00:00Z"), new Date(-1000), new Date(NaN)]) {
      const err = await rejection(writeArchive(join(dir, "a.tar"), MEMBERS, { mtime }));
      expect(err.code).toBe("USAGE");
    }
    expect(await listDir(dir)).toEqual([]);
  });

  it("refuses an output file name a sha256sum line cannot carry", async () => {
    const dir = await tempDir();
    const err = await rejection(writeArchive(join(dir, "a\nb.tar"), MEMBERS, { mtime: MTIME }));
    expect(err.code).toBe("OUTPUT_WRITE_FAILED");
    expect(await listDir(dir)).toEqual([]);
  });
});
