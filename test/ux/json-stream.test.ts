/**
 * The --json document in pieces: the pieces join to exactly what
 * JSON.stringify(value, null, 2) gives, they are cut only between members or
 * elements, and so redacting them one by one gives the same output as
 * redacting the whole document.
 */
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { jsonChunks } from "../../src/core/json-stream.js";
import { Reporter, jsonDocument } from "../../src/commands/output.js";
import { clearSecrets, redact, registerSecret } from "../../src/redact.js";

/** A stream that records every write. */
function sink(): Writable & { writes: string[] } {
  const writes: string[] = [];
  const s = new Writable({
    write(c: Buffer | string, _e, cb) {
      writes.push(c.toString());
      cb();
    },
  }) as Writable & { writes: string[] };
  s.writes = writes;
  return s;
}

/**
 * Where two long texts first differ, with a little context (-1 if equal):
 * vitest's diff of two multi-megabyte strings takes minutes.
 */
function firstDifference(a: string, b: string): number | string {
  if (a === b) return -1;
  let i = 0;
  while (a[i] === b[i]) i++;
  return `${i}: ${JSON.stringify(a.slice(i - 20, i + 20))} vs ${JSON.stringify(b.slice(i - 20, i + 20))}`;
}

/** Six levels of nesting, so that both the walked levels and the ones stringified whole are covered. */
function nested(level: number): unknown {
  if (level === 0) return { leaf: "end", n: [1, 2, { x: null }] };
  return { level, child: nested(level - 1), list: [level, nested(level - 1), []], empty: {} };
}

// Index 0 and 3 are holes.
const sparse: unknown[] = new Array(6);
sparse[1] = () => 1;
sparse[2] = Symbol("s");
sparse[4] = undefined;
sparse[5] = [[[undefined, 2]]];

const VALUES: [string, unknown][] = [
  ["a nested object", nested(6)],
  ["nested arrays", [[[[[[1, [2, []], {}]]]]]]],
  [
    "members that are left out",
    {
      a: undefined,
      b: () => 1,
      c: Symbol("s"),
      d: 1,
      deep: { x: { y: { z: undefined, f() {} } } },
    },
  ],
  ["only left-out members", { a: undefined, deep: { x: { y: { z: undefined } } } }],
  ["arrays with holes and undefined", sparse],
  ["a Date", { when: new Date(Date.UTC(2024, 1, 29, 12)), deep: [[[new Date(0)]]] }],
  [
    "toJSON returning a nested object, and seeing its key",
    {
      custom: { toJSON: (key: string) => ({ key, inner: [1, { two: 2 }] }) },
      list: [{ toJSON: (key: string) => `index ${key}` }],
      deep: { a: { b: { c: { toJSON: (key: string) => ({ key, x: [1] }) } } } },
    },
  ],
  ["a toJSON that is left out", { gone: { toJSON: () => undefined }, kept: 1 }],
  ["empty containers", { a: [], b: {}, c: [[]], d: [{}], e: { f: { g: { h: [] } } } }],
  [
    "unicode and escapes",
    {
      'ключ "quoted"\n': 'línea "1"\nline\t2\\ \u2028 \u0000 😀 \ud800',
      list: ["a\r\nb", "\\n", "</script>"],
    },
  ],
  ["numbers", { z: -0, big: 1e21, small: 1e-7, nan: NaN, inf: -Infinity, list: [-0, NaN, 0.1] }],
  [
    "boxed primitives",
    { n: Object(1) as unknown, s: Object("s") as unknown, b: Object(false) as unknown },
  ],
  ["a key named __proto__", JSON.parse('{"__proto__": {"a": {"b": {"c": 1}}}}') as unknown],
  ["a top-level string", 'a "string"\n'],
  ["a top-level number", 42.5],
  ["top-level null", null],
  ["top-level true", true],
  ["a top-level array", [1, "two", { three: [3] }]],
  ["a top-level empty array", []],
  ["a top-level empty object", {}],
  ["a top-level Date", new Date(1)],
];

describe("jsonChunks", () => {
  it.each(VALUES)("joins to JSON.stringify(value, null, 2) for %s", (_name, value) => {
    const expected = JSON.stringify(value, null, 2);
    // The default size (one piece here) and tiny sizes, which cut after every member.
    for (const size of [65536, 1, 7]) {
      expect([...jsonChunks(value, size)].join("")).toBe(expected);
    }
  });

  it("yields nothing for a value that JSON.stringify leaves undefined", () => {
    expect([...jsonChunks(undefined)]).toEqual([]);
    expect([...jsonChunks(() => 1)]).toEqual([]);
  });

  it("cuts a large document into pieces of at least chunkSize, only between members", () => {
    // Member sizes vary, so that cuts land after every kind of member rather
    // than at the same place in each release.
    const value = {
      schemaVersion: 1,
      releases: Array.from({ length: 20_000 }, (_, i) => ({
        version: `4.${i % 20}.${i}`,
        note: `a "quoted", comma-laden, multi-line\nnote ${"n".repeat((i * 7) % 53)}`,
        signatures: [{ digest: `sha256:${String(i).padStart(64, "0")}`, ok: i % 3 !== 0 }],
        labels: { arch: "x86_64", channel: `stable-${i % 11}` },
      })),
    };
    const text = JSON.stringify(value, null, 2);
    for (const size of [4096, 65536]) {
      const chunks = [...jsonChunks(value, size)];
      expect(firstDifference(chunks.join(""), text)).toBe(-1);
      expect(chunks.length).toBeGreaterThan(text.length / size / 2);
      const bad: string[] = [];
      let at = 0;
      for (const [i, chunk] of chunks.entries()) {
        // No piece ends inside a string: its unescaped quotes pair up.
        if (chunk.replace(/\\./g, "").split('"').length % 2 !== 1) bad.push(`${i}: odd quotes`);
        at += chunk.length;
        if (i === chunks.length - 1) break;
        if (chunk.length < size) bad.push(`${i}: short`);
        // Each cut falls right after a whole member or element: at the end of
        // a line (before its comma, or before the line closing its container),
        // and not after a line that opens a container.
        if (!/^,?\n/.test(text.slice(at, at + 2)) || /[[{]$/.test(chunk)) {
          bad.push(`${i}: cut before ${JSON.stringify(text.slice(at, at + 20))}`);
        }
      }
      expect(bad).toEqual([]);
    }
  });
});

describe("Reporter.resultJson", () => {
  afterEach(() => clearSecrets());

  it("writes the redacted document in pieces, with the same text as redacting it whole", () => {
    const secret = "hunter2-registry-secret";
    registerSecret(secret);
    const value = {
      password: `x${"y".repeat(40)}`,
      // Most members are pairs that redaction must see with their key.
      releases: Array.from({ length: 5000 }, (_, i) => ({
        password: `p-${i}-${"z".repeat(i % 29)}`,
        source: `https://mirror.example/${secret}/${i}`,
        token: `t-${i}-zzzz`,
        note: `pulled with ${secret}`,
        auth: { password: `q-${i}-zzzz` },
      })),
    };
    const stdout = sink();
    const r = new Reporter({ json: true }, { stdout, stderr: sink() }, { command: "bundle apply" });
    r.resultJson(value);
    const out = stdout.writes.join("");
    const full = JSON.stringify(jsonDocument("bundle apply", value), null, 2);
    expect(full.length).toBeGreaterThan(200_000);
    expect(stdout.writes.length).toBeGreaterThan(2);
    expect(firstDifference(out, `${redact(full)}\n`)).toBe(-1);
    expect(out).not.toContain(secret);
    expect(out).not.toContain("yyyy");
    expect(out).not.toContain("zzzz");
    const parsed = JSON.parse(out) as { password: string; releases: { note: string }[] };
    expect(parsed.password).toBe("[REDACTED]");
    expect(parsed.releases[4999]!.note).toBe("pulled with [REDACTED]");
  });

  it("writes nothing in text mode", () => {
    const stdout = sink();
    new Reporter({}, { stdout, stderr: sink() }).resultJson({ ok: true });
    expect(stdout.writes).toEqual([]);
  });
});
