/**
 * The signed payloads of both signature kinds, decoded with the exact rules of
 * the verifier that will read them on the cluster. Pure: bytes in, facts out.
 *
 * - OpenPGP "atomic container signature" (read by the CVO): library-go
 *   pkg/verify/verify.go `verifyAtomicContainerSignature`, a Go
 *   `json.Decoder` with `DisallowUnknownFields()` into fixed structs.
 * - cosign "simple signing" (read by CRI-O): containers/image
 *   signature/internal/sigstore_payload.go `strictUnmarshalJSON`, built on
 *   `ParanoidUnmarshalJSONObject` (signature/internal/json.go).
 *
 * Where Go's decoder would accept something ambiguous (duplicate keys, keys that
 * match a field only case-insensitively, data after the object, invalid UTF-8)
 * this module rejects it: refusing a signature the cluster would take costs a
 * warning; carrying one it refuses costs a failed upgrade.
 */
import { SigferryError, type ErrorCode } from "../errors.js";
import { isDigest, type Digest } from "./digest.js";
import { flat } from "./flat.js";

/** A parsed JSON value that keeps number literals verbatim, so integer rules can be checked exactly. */
export type JsonNode =
  | { type: "null" }
  | { type: "boolean"; value: boolean }
  | { type: "number"; raw: string }
  | { type: "string"; value: string }
  | { type: "array"; items: JsonNode[] }
  | { type: "object"; entries: Map<string, JsonNode> };

/** What an atomic (OpenPGP) payload says, once it has passed the CVO's rules. */
export interface AtomicPayload {
  identity: string;
  digest: Digest;
  creator?: string;
  timestamp?: number;
}

/** What a cosign simple-signing payload says, once it has passed containers/image's rules. */
export interface CosignPayload {
  identity: string;
  digest: Digest;
  creator?: string;
  timestamp?: number;
}

const ATOMIC_TYPE = "atomic container signature";
const COSIGN_TYPE = "cosign container image signature";
const MAX_DEPTH = 64;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

class JsonSyntaxError extends Error {}

/**
 * Parses RFC 8259 JSON strictly: one value, nothing after it but whitespace,
 * duplicate object keys rejected, numbers kept as their literal text.
 */
export function parseJsonStrict(text: string, code: ErrorCode, what: string): JsonNode {
  try {
    const parser = new StrictJsonParser(text);
    return parser.document();
  } catch (err) {
    if (err instanceof JsonSyntaxError) {
      throw new SigferryError(code, `${what} is not valid JSON: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

class StrictJsonParser {
  private pos = 0;

  constructor(private readonly text: string) {}

  document(): JsonNode {
    this.ws();
    const value = this.value(0, "$");
    this.ws();
    // Go's Decoder.Decode would stop after the first value; we refuse trailing data outright.
    if (this.pos !== this.text.length) this.fail("unexpected data after the JSON value");
    return value;
  }

  private fail(message: string): never {
    throw new JsonSyntaxError(`${message} at offset ${this.pos}`);
  }

  private ws(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else break;
    }
  }

  private value(depth: number, path: string): JsonNode {
    if (depth > MAX_DEPTH) this.fail("nesting too deep");
    const c = this.text[this.pos];
    switch (c) {
      case "{":
        return this.object(depth, path);
      case "[":
        return this.array(depth, path);
      case '"':
        return { type: "string", value: this.string() };
      case "t":
        this.literal("true");
        return { type: "boolean", value: true };
      case "f":
        this.literal("false");
        return { type: "boolean", value: false };
      case "n":
        this.literal("null");
        return { type: "null" };
      default:
        if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
        return this.fail(
          c === undefined ? "unexpected end of input" : `unexpected character ${JSON.stringify(c)}`,
        );
    }
  }

  private literal(word: string): void {
    if (this.text.startsWith(word, this.pos)) this.pos += word.length;
    else this.fail(`invalid literal`);
  }

  private number(): JsonNode {
    const rest = this.text.slice(this.pos);
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(rest);
    if (m === null) this.fail("invalid number");
    this.pos += m[0].length;
    return { type: "number", raw: m[0] };
  }

  private string(): string {
    this.pos++; // opening quote
    let out = "";
    for (;;) {
      // A run of plain characters is appended as one slice, not character by character.
      const start = this.pos;
      let code = this.text.charCodeAt(this.pos);
      while (code >= 0x20 && code !== 0x22 && code !== 0x5c)
        code = this.text.charCodeAt(++this.pos);
      if (this.pos > start) out += this.text.slice(start, this.pos);
      const c = this.text[this.pos];
      if (c === undefined) this.fail("unterminated string");
      if (c === '"') {
        this.pos++;
        return flat(out);
      }
      if (c === "\\") {
        const e = this.text[this.pos + 1];
        this.pos += 2;
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hex = this.text.slice(this.pos, this.pos + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("invalid \\u escape");
            out += String.fromCharCode(parseInt(hex, 16));
            this.pos += 4;
            break;
          }
          default:
            this.pos -= 2;
            this.fail("invalid escape");
        }
        continue;
      }
      this.fail("control character in string");
    }
  }

  private array(depth: number, path: string): JsonNode {
    this.pos++;
    const items: JsonNode[] = [];
    this.ws();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return { type: "array", items };
    }
    for (;;) {
      this.ws();
      items.push(this.value(depth + 1, `${path}[${items.length}]`));
      this.ws();
      const c = this.text[this.pos];
      this.pos++;
      if (c === "]") return { type: "array", items };
      if (c !== ",") {
        this.pos--;
        this.fail("expected , or ] in array");
      }
    }
  }

  private object(depth: number, path: string): JsonNode {
    this.pos++;
    const entries = new Map<string, JsonNode>();
    this.ws();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return { type: "object", entries };
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail("expected a string key");
      const key = this.string();
      // Duplicate keys are where two JSON parsers disagree (first wins, last wins,
      // Go merges structs); containers/image rejects them, and so do we, everywhere.
      if (entries.has(key)) this.fail(`duplicate key ${JSON.stringify(key)} in ${path}`);
      this.ws();
      if (this.text[this.pos] !== ":") this.fail("expected :");
      this.pos++;
      this.ws();
      entries.set(key, this.value(depth + 1, `${path}.${key}`));
      this.ws();
      const c = this.text[this.pos];
      this.pos++;
      if (c === "}") return { type: "object", entries };
      if (c !== ",") {
        this.pos--;
        this.fail("expected , or } in object");
      }
    }
  }
}

/** Serializes a parsed JSON value in RFC 8785 canonical form (JCS), as cosign and containers/image do for Rekor SETs. */
export function canonicalJson(node: JsonNode): string {
  switch (node.type) {
    case "null":
      return "null";
    case "boolean":
      return node.value ? "true" : "false";
    case "number": {
      // JCS numbers are IEEE-754 doubles printed the ECMAScript way.
      const n = Number(node.raw);
      if (!Number.isFinite(n))
        throw new SigferryError("SIGNATURE_INVALID", `number ${node.raw} cannot be canonicalized`);
      return JSON.stringify(n);
    }
    case "string":
      return JSON.stringify(node.value);
    case "array":
      return `[${node.items.map(canonicalJson).join(",")}]`;
    case "object": {
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
      const keys = [...node.entries.keys()].sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(node.entries.get(k)!)}`).join(",")}}`;
    }
  }
}

/** Decodes UTF-8 strictly: a byte-order mark is kept (and later refused by the parser), invalid sequences throw. */
function decodeUtf8(bytes: Uint8Array, code: ErrorCode, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw new SigferryError(code, `${what} is not valid UTF-8`, { cause: err });
  }
}

function invalid(reason: string, details: Record<string, unknown> = {}): SigferryError {
  return new SigferryError("SIGNATURE_PAYLOAD_INVALID", `signature payload rejected: ${reason}`, {
    details: { reason, ...details },
  });
}

function digestMismatch(found: string, expected: Digest): SigferryError {
  return new SigferryError(
    "SIGNATURE_DIGEST_MISMATCH",
    `the signature is for ${JSON.stringify(found)}, not for ${expected}`,
    { details: { digest: expected, signedDigest: found } },
  );
}

/**
 * A Go struct field decoded with DisallowUnknownFields: every key must be one of
 * `fields` (Go would also fold case; we accept only the exact spelling).
 * `null` decodes to Go's zero value, so it is returned as undefined.
 */
function goStruct(
  node: JsonNode,
  path: string,
  fields: readonly string[],
): Map<string, JsonNode> | undefined {
  if (node.type === "null") return undefined;
  if (node.type !== "object")
    throw invalid(`${path} must be a JSON object, not ${node.type}`, { field: path });
  for (const key of node.entries.keys()) {
    if (!fields.includes(key)) {
      throw invalid(
        `unknown field ${JSON.stringify(key)} in ${path} (the CVO decodes with unknown fields disallowed)`,
        {
          field: `${path}.${key}`,
        },
      );
    }
  }
  return node.entries;
}

/** A Go `string` field: a JSON string, or null for the zero value. */
function goString(node: JsonNode | undefined, path: string): string {
  if (node === undefined || node.type === "null") return "";
  if (node.type !== "string")
    throw invalid(`${path} must be a string, not ${node.type}`, { field: path });
  return node.value;
}

/** A Go `int64` field: an integer literal in range (strconv.ParseInt rules), or null. */
function goInt64(node: JsonNode | undefined, path: string): number | undefined {
  if (node === undefined || node.type === "null") return undefined;
  if (node.type !== "number" || !/^-?(?:0|[1-9][0-9]*)$/.test(node.raw)) {
    throw invalid(`${path} must be an integer`, { field: path });
  }
  const value = BigInt(node.raw);
  if (value < INT64_MIN || value > INT64_MAX)
    throw invalid(`${path} is out of the int64 range`, { field: path });
  return Number(value);
}

/**
 * Applies the CVO's rules to the literal data of an OpenPGP atomic container signature and
 * returns its identity, or throws SIGNATURE_PAYLOAD_INVALID / SIGNATURE_DIGEST_MISMATCH.
 */
export function parseAtomicPayload(bytes: Uint8Array, expected: Digest): AtomicPayload {
  const text = decodeUtf8(bytes, "SIGNATURE_PAYLOAD_INVALID", "the signature payload");
  const root = parseJsonStrict(text, "SIGNATURE_PAYLOAD_INVALID", "the signature payload");

  // library-go pkg/verify/verify.go: type signature struct { Critical; Optional }, and
  // DisallowUnknownFields applies to every nested struct, `optional` included
  // (optionalSignature has exactly `creator` and `timestamp`).
  const top = goStruct(root, "payload", ["critical", "optional"]);
  const critical = top?.get("critical");
  const crit =
    critical === undefined
      ? undefined
      : goStruct(critical, "critical", ["type", "image", "identity"]);
  const imageNode = crit?.get("image");
  const image =
    imageNode === undefined
      ? undefined
      : goStruct(imageNode, "critical.image", ["docker-manifest-digest"]);
  const identityNode = crit?.get("identity");
  const identityObj =
    identityNode === undefined
      ? undefined
      : goStruct(identityNode, "critical.identity", ["docker-reference"]);
  const optionalNode = top?.get("optional");
  const optional =
    optionalNode === undefined
      ? undefined
      : goStruct(optionalNode, "optional", ["creator", "timestamp"]);

  const type = goString(crit?.get("type"), "critical.type");
  const signedDigest = goString(
    image?.get("docker-manifest-digest"),
    "critical.image.docker-manifest-digest",
  );
  const identity = goString(
    identityObj?.get("docker-reference"),
    "critical.identity.docker-reference",
  );
  const creator = goString(optional?.get("creator"), "optional.creator");
  const timestamp = goInt64(optional?.get("timestamp"), "optional.timestamp");

  // Same order of checks as verifyAtomicContainerSignature.
  if (type !== ATOMIC_TYPE) {
    throw invalid(`critical.type is ${JSON.stringify(type)}, not ${JSON.stringify(ATOMIC_TYPE)}`, {
      field: "critical.type",
    });
  }
  if (identity.length === 0) {
    throw invalid("critical.identity.docker-reference is empty", {
      field: "critical.identity.docker-reference",
    });
  }
  // An exact string comparison, as the CVO does: a signature for any other digest proves nothing.
  if (signedDigest !== expected) throw digestMismatch(signedDigest, expected);

  const result: AtomicPayload = { identity, digest: expected };
  if (creator !== "") result.creator = creator;
  if (timestamp !== undefined) result.timestamp = timestamp;
  return result;
}

/** One object level of containers/image's ParanoidUnmarshalJSONObjectExactFields: exactly these keys, each once. */
function exactObject(
  node: JsonNode,
  path: string,
  fields: readonly string[],
): Map<string, JsonNode> {
  if (node.type !== "object")
    throw invalid(`${path} must be a JSON object, not ${node.type}`, { field: path });
  for (const key of node.entries.keys()) {
    if (!fields.includes(key))
      throw invalid(`unknown key ${JSON.stringify(key)} in ${path}`, { field: `${path}.${key}` });
  }
  for (const key of fields) {
    if (!node.entries.has(key))
      throw invalid(`key ${JSON.stringify(key)} missing in ${path}`, { field: `${path}.${key}` });
  }
  return node.entries;
}

/**
 * Applies containers/image's rules to a cosign simple-signing payload and returns its
 * identity, or throws SIGNATURE_PAYLOAD_INVALID / SIGNATURE_DIGEST_MISMATCH.
 */
export function parseCosignPayload(bytes: Uint8Array, expected: Digest): CosignPayload {
  const text = decodeUtf8(bytes, "SIGNATURE_PAYLOAD_INVALID", "the signature payload");
  const root = parseJsonStrict(text, "SIGNATURE_PAYLOAD_INVALID", "the signature payload");

  // sigstore_payload.go strictUnmarshalJSON: both top-level keys required, nothing else.
  const top = exactObject(root, "payload", ["critical", "optional"]);

  // `optional` may be null (/usr/bin/cosign writes that) or any object; only the
  // two known keys are typed, other keys are ignored.
  const optional = top.get("optional")!;
  let creator: string | undefined;
  let timestamp: number | undefined;
  if (optional.type !== "null") {
    if (optional.type !== "object")
      throw invalid(`optional must be a JSON object or null`, { field: "optional" });
    const c = optional.entries.get("creator");
    if (c !== undefined) creator = goString(c, "optional.creator");
    const t = optional.entries.get("timestamp");
    if (t !== undefined && t.type !== "null") {
      // Decoded as float64 and then required to be integral (sigstore_payload.go).
      const f = t.type === "number" ? Number(t.raw) : NaN;
      if (!Number.isFinite(f) || !Number.isInteger(f)) {
        throw invalid("optional.timestamp is not an integer", { field: "optional.timestamp" });
      }
      timestamp = f;
    }
  }

  const critical = exactObject(top.get("critical")!, "critical", ["type", "image", "identity"]);
  const type = goString(critical.get("type"), "critical.type");
  if (type !== COSIGN_TYPE) {
    throw invalid(`critical.type is ${JSON.stringify(type)}, not ${JSON.stringify(COSIGN_TYPE)}`, {
      field: "critical.type",
    });
  }
  const image = exactObject(critical.get("image")!, "critical.image", ["docker-manifest-digest"]);
  const signedDigest = goString(
    image.get("docker-manifest-digest"),
    "critical.image.docker-manifest-digest",
  );
  // go-digest's digest.Parse: a well-formed "algorithm:hex" or the payload is invalid.
  const wellFormed = signedDigest.startsWith("sha256:")
    ? isDigest(signedDigest)
    : /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(signedDigest);
  if (!wellFormed) {
    throw invalid(
      `critical.image.docker-manifest-digest ${JSON.stringify(signedDigest)} is not a digest`,
      {
        field: "critical.image.docker-manifest-digest",
      },
    );
  }
  const identityObj = exactObject(critical.get("identity")!, "critical.identity", [
    "docker-reference",
  ]);
  const identity = goString(
    identityObj.get("docker-reference"),
    "critical.identity.docker-reference",
  );
  if (identity.length === 0) {
    // containers/image lets the policy's identity match reject it; nothing matches an empty name.
    throw invalid("critical.identity.docker-reference is empty", {
      field: "critical.identity.docker-reference",
    });
  }
  // containers/image compares by re-hashing the manifest with the payload's algorithm;
  // sigferry only knows sha256 digests, so another algorithm is a mismatch (never a pass).
  if (!isDigest(signedDigest) || signedDigest !== expected)
    throw digestMismatch(signedDigest, expected);

  const result: CosignPayload = { identity, digest: expected };
  if (creator !== undefined && creator !== "") result.creator = creator;
  if (timestamp !== undefined) result.timestamp = timestamp;
  return result;
}
