/**
 * `JSON.stringify(value, null, 2)` in pieces, so that a large --json document
 * is never held as one string (nor redacted and converted to a Buffer whole).
 */

/** Values this deep are stringified whole (the document is 0; a bundle result's releases are 2, their members 3). */
const WALK_DEPTH = 3;

type Part = { text: string } | { items: unknown[] } | { members: Record<string, unknown> };

/**
 * Yields pieces whose concatenation is exactly `JSON.stringify(value, null, 2)`
 * (nothing for a value that stringifies to undefined). A piece is yielded once
 * it holds at least `chunkSize` characters, and only right after a whole
 * member or element: the next piece starts with the "," or the newline that
 * follows it. Redaction (src/redact.ts) runs on each piece separately, and its
 * patterns only work on whole text: a registered secret inside a string, an
 * Authorization value, a `"password": "..."` pair that needs its key and value
 * together. Cutting between members keeps each of those inside one piece.
 * A single member larger than `chunkSize` makes a larger piece.
 */
export function* jsonChunks(value: unknown, chunkSize = 65536): Generator<string> {
  let buf = "";

  function* cut(): Generator<string> {
    if (buf.length >= chunkSize) {
      yield buf;
      buf = "";
    }
  }

  function* write(part: Part, indent: string, depth: number): Generator<string> {
    if ("text" in part) {
      buf += part.text;
      return;
    }
    const inner = `${indent}  `;
    if ("items" in part) {
      const { items } = part;
      if (items.length === 0) {
        buf += "[]";
        return;
      }
      for (let i = 0; i < items.length; i++) {
        buf += `${i === 0 ? "[\n" : ",\n"}${inner}`;
        const element = partOf(String(i), items[i], inner, depth + 1);
        if (element === undefined) buf += "null";
        else yield* write(element, inner, depth + 1);
        yield* cut();
      }
      buf += `\n${indent}]`;
      return;
    }
    let empty = true;
    for (const key of Object.keys(part.members)) {
      const member = partOf(key, part.members[key], inner, depth + 1);
      if (member === undefined) continue;
      buf += `${empty ? "{\n" : ",\n"}${inner}${JSON.stringify(key)}: `;
      empty = false;
      yield* write(member, inner, depth + 1);
      yield* cut();
    }
    buf += empty ? "{}" : `\n${indent}}`;
  }

  const top = partOf("", value, "", 0);
  if (top !== undefined) yield* write(top, "", 0);
  if (buf !== "") yield buf;
}

/**
 * What `JSON.stringify` makes of `raw` stored under `key` at `indent` (the
 * indentation of its line): undefined when it would be left out (or be null in
 * an array), text for a primitive or a value deep enough to stringify whole,
 * or a container to walk.
 */
function partOf(key: string, raw: unknown, indent: string, depth: number): Part | undefined {
  if (depth >= WALK_DEPTH) {
    const text = whole(key, raw, indent);
    return text === undefined ? undefined : { text };
  }
  let value = raw;
  if ((typeof value === "object" && value !== null) || typeof value === "function") {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") value = (toJSON as (k: string) => unknown).call(value, key);
  }
  if (Array.isArray(value)) return { items: value };
  if (
    typeof value === "object" &&
    value !== null &&
    !(value instanceof Number || value instanceof String || value instanceof Boolean)
  ) {
    return { members: value as Record<string, unknown> };
  }
  const text = JSON.stringify(value);
  return text === undefined ? undefined : { text };
}

/**
 * `raw` stringified whole, as the member `key` at `indent`. It is stringified
 * inside a one-member holder so that a toJSON method receives its real key, as
 * it would from one JSON.stringify of the whole document; the holder's own
 * two-space indentation is then swapped for `indent` (a JSON string never
 * holds a raw newline, so every "\n" is a line break of the layout).
 */
function whole(key: string, raw: unknown, indent: string): string | undefined {
  const text = JSON.stringify({ [key]: raw }, null, 2);
  if (text === "{}") return undefined;
  const head = `{\n  ${JSON.stringify(key)}: `;
  return text.slice(head.length, -"\n}".length).replaceAll("\n  ", `\n${indent}`);
}
