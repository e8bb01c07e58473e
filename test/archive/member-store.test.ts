import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemberStore } from "../../src/archive/member-store.js";
import { readArchive } from "../../src/archive/reader.js";
import { writeArchive } from "../../src/archive/writer.js";
import { isSigferryError } from "../../src/errors.js";

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sigferry-store-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("MemberStore", () => {
  it("takes a member in parts, across write batches, between whole members, as if given whole", () => {
    const store = new MemberStore(dir);
    try {
      const before = randomBytes(1000);
      // Parts small and large: some fill the batch buffer, one is larger than it.
      const parts = [
        randomBytes(10),
        randomBytes(700_000),
        randomBytes(500_000),
        randomBytes((1 << 20) + 5),
        Buffer.alloc(0),
        randomBytes(3),
      ];
      const whole = Buffer.concat(parts);
      const after = randomBytes(2000);
      store.add("before", before);
      expect(store.addParts("doc", parts)).toBe(sha256(whole));
      store.add("after", after);
      expect(Buffer.from(store.get("doc")!).equals(whole)).toBe(true);
      expect(store.sizeOf("doc")).toBe(whole.length);
      expect(Buffer.from(store.get("before")!).equals(before)).toBe(true);
      expect(Buffer.from(store.get("after")!).equals(after)).toBe(true);
      expect(store.bytes).toBe(before.length + whole.length + after.length);
    } finally {
      store.close();
    }
  });

  it("gives back every member byte for byte, across write batches, with its sha256 and size", () => {
    const store = new MemberStore(dir);
    try {
      const members = new Map<string, Buffer>();
      // Small members, one larger than the 1 MiB write batch, and an empty one.
      for (let i = 0; i < 3000; i++) members.set(`m/${i}`, randomBytes(1 + (i % 900)));
      members.set("big", randomBytes((1 << 20) + 17));
      members.set("empty", Buffer.alloc(0));
      members.set("after-big", randomBytes(333));
      for (const [name, data] of members) expect(store.add(name, data)).toBe(sha256(data));

      expect(store.size).toBe(members.size);
      expect(store.bytes).toBe([...members.values()].reduce((n, b) => n + b.length, 0));
      for (const [name, data] of members) {
        expect(Buffer.from(store.get(name)!).equals(data), name).toBe(true);
        expect(store.sha256(name)).toBe(sha256(data));
        expect(store.sizeOf(name)).toBe(data.length);
      }
      expect(store.get("absent")).toBeUndefined();
      expect(store.has("big")).toBe(true);
      expect([...store.keys()]).toEqual([...members.keys()]);
      const viaIteration = new Map([...store].map(([k, v]) => [k, sha256(v)]));
      expect(viaIteration).toEqual(new Map([...members].map(([k, v]) => [k, sha256(v)])));
    } finally {
      store.close();
    }
  });

  it("gives a member in pieces of at most the size asked, flushed or still pending, as get() gives it whole", () => {
    const store = new MemberStore();
    const first = randomBytes(3 * 1024 * 1024 + 17); // larger than a write batch: written at once
    const second = randomBytes(300_001); // stays in the pending batch until read
    store.add("first", first);
    store.add("second", second);
    for (const [name, bytes] of [
      ["first", first],
      ["second", second],
    ] as const) {
      const pieces = [...store.chunks(name, 65_536)];
      expect(pieces.every((p) => p.byteLength <= 65_536)).toBe(true);
      expect(pieces.length).toBe(Math.ceil(bytes.length / 65_536));
      expect(Buffer.concat(pieces).equals(bytes)).toBe(true);
      expect(Buffer.from(store.get(name)!).equals(bytes)).toBe(true);
    }
    expect(() => [...store.chunks("absent", 10)]).toThrow(/no member absent/);
    store.close();
  });

  it("copies what it is given: changing the caller's buffer afterwards changes nothing", () => {
    const store = new MemberStore(dir);
    try {
      const chunk = Buffer.from("0123456789abcdef");
      store.add("a", chunk.subarray(2, 6));
      chunk.fill(0x78);
      expect(Buffer.from(store.get("a")!).toString()).toBe("2345");
    } finally {
      store.close();
    }
  });

  it("takes a member begun, appended to and finished, copying each view before the caller reuses it", () => {
    const store = new MemberStore(dir);
    try {
      const scratch = Buffer.alloc(4096);
      const expected: Buffer[] = [];
      store.begin("streamed");
      for (let i = 0; i < 300; i++) {
        // The same scratch buffer every time, as the tar parser's input chunks are reused.
        randomBytes(4096).copy(scratch);
        expected.push(Buffer.from(scratch));
        store.append(scratch);
      }
      const whole = Buffer.concat(expected);
      expect(store.finish()).toBe(sha256(whole));
      expect(store.sizeOf("streamed")).toBe(whole.length);
      expect(Buffer.from(store.get("streamed")!).equals(whole)).toBe(true);
    } finally {
      store.close();
    }
  });

  it("refuses to interleave members: one must be finished before another starts", () => {
    const store = new MemberStore(dir);
    try {
      store.begin("one");
      store.append(Buffer.from("abc"));
      expect(() => store.begin("two")).toThrow(/one is still being added/);
      expect(() => store.add("two", Buffer.from("x"))).toThrow(/one is still being added/);
      expect(store.has("one")).toBe(false);
      store.finish();
      expect(() => store.append(Buffer.from("late"))).toThrow(/no member is being added/);
      expect(() => store.finish()).toThrow(/no member is being added/);
      expect(Buffer.from(store.get("one")!).toString()).toBe("abc");
    } finally {
      store.close();
    }
  });

  it("leaves no file behind: the spool is unlinked as soon as it is open", async () => {
    const own = await mkdtemp(join(dir, "spool-"));
    const store = new MemberStore(own);
    store.add("x", Buffer.from("hello"));
    expect(await readdir(own)).toEqual([]);
    expect(Buffer.from(store.get("x")!).toString()).toBe("hello");
    store.close();
    store.close();
    expect(() => store.get("x")).toThrow(/closed/);
  });
});

describe("readArchive with a spool", () => {
  it("fails with OUTPUT_WRITE_FAILED naming the temporary directory when it cannot spool there", async () => {
    const archive = join(dir, "one.tar");
    await writeArchive(archive, [{ path: "a", data: Buffer.from("a") }], { mtime: new Date(0) });
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = join(dir, "no-such-dir");
    try {
      const err: unknown = await readArchive(archive).catch((e: unknown) => e);
      expect(isSigferryError(err) && err.code).toBe("OUTPUT_WRITE_FAILED");
      expect((err as Error).message).toContain("no-such-dir");
      expect((err as Error).message).toContain("TMPDIR");
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    // With a usable directory again, the same archive reads.
    const ok = await readArchive(archive);
    expect(Buffer.from(ok.members.get("a")!).toString()).toBe("a");
    ok.members.close();
  });
});
