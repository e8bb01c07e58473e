/**
 * The selection configuration file (`bundle create --config <file.yaml>`),
 * validated strictly: unknown keys (with the closest known key suggested), wrong
 * types and bad values are errors naming the file, the key path and the line.
 * The format is documented in docs/selection.md. Pure: the caller reads the file.
 */
import type * as Yaml from "yaml";
import type { Node as YamlNode, Pair } from "yaml";
import { yamlLib } from "./yaml.js";
import { SigferryError } from "../errors.js";
import { isDigest, type Digest } from "./digest.js";
import { parseReleaseArch, parseRepository, type ReleaseArch } from "./reference.js";
import { parseSemver } from "./version.js";

/** The signature kinds `require` accepts. */
export const SIGNATURE_KINDS = ["openpgp", "sigstore"] as const;
export type SignatureKind = (typeof SIGNATURE_KINDS)[number];

/** A validated selection configuration file. Absent keys stay absent. */
export interface SelectionConfig {
  /** Versions to carry by tag. */
  releases?: string[];
  /** Release digests to carry directly. */
  digests?: Digest[];
  /** Update-graph channels to select from. */
  channels?: string[];
  min?: string;
  max?: string;
  shortestPath?: boolean;
  full?: boolean;
  acceptRisks?: boolean;
  /** Tag arch names (amd64/arm64 are accepted and normalised to x86_64/aarch64). */
  arches?: ReleaseArch[];
  sources?: { releaseRepo?: string; signatureStores?: string[]; graphUrl?: string };
  /** Paths as written; relative paths are relative to the configuration file's directory. */
  keys?: { keyrings?: string[]; sigstoreKeys?: string[] };
  require?: SignatureKind[];
}

/** Checks one string value; returns the normalised value or a reason it is wrong. */
type Check = (value: string) => { ok: string } | { error: string };

type Field =
  | { type: "string"; check: Check }
  | { type: "boolean" }
  | { type: "list"; check: Check }
  | { type: "map"; fields: Record<string, Field> };

const anyText: Check = (v) => (v.trim() === "" ? { error: "must not be empty" } : { ok: v });

const version: Check = (v) => {
  try {
    parseSemver(v);
    return { ok: v };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

const digest: Check = (v) =>
  isDigest(v)
    ? { ok: v }
    : { error: `"${v}" is not a digest (sha256: followed by 64 lowercase hex digits)` };

const channel: Check = (v) =>
  /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v)
    ? { ok: v }
    : { error: `"${v}" is not a channel name (e.g. stable-4.13)` };

const arch: Check = (v) => {
  try {
    return { ok: parseReleaseArch(v) };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

const repository: Check = (v) => {
  try {
    parseRepository(v);
    return { ok: v };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

const httpUrl: Check = (v) => {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return { error: `"${v}" is not a URL` };
  }
  return url.protocol === "https:" || url.protocol === "http:"
    ? { ok: v }
    : { error: `"${v}" is not an http(s) URL` };
};

const kind: Check = (v) =>
  (SIGNATURE_KINDS as readonly string[]).includes(v)
    ? { ok: v }
    : { error: `"${v}" is not a signature kind; use ${SIGNATURE_KINDS.join(" or ")}` };

const SCHEMA: Record<string, Field> = {
  releases: { type: "list", check: version },
  digests: { type: "list", check: digest },
  channels: { type: "list", check: channel },
  min: { type: "string", check: version },
  max: { type: "string", check: version },
  shortestPath: { type: "boolean" },
  full: { type: "boolean" },
  acceptRisks: { type: "boolean" },
  arches: { type: "list", check: arch },
  sources: {
    type: "map",
    fields: {
      releaseRepo: { type: "string", check: repository },
      signatureStores: { type: "list", check: httpUrl },
      graphUrl: { type: "string", check: httpUrl },
    },
  },
  keys: {
    type: "map",
    fields: {
      keyrings: { type: "list", check: anyText },
      sigstoreKeys: { type: "list", check: anyText },
    },
  },
  require: { type: "list", check: kind },
};

/** The Levenshtein distance between two strings. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The known key closest to `key`, if one is close enough to be a likely typo. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const fold = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const same = known.find((k) => fold(k) === fold(key));
  if (same) return same;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(fold(key), fold(k));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3))
    ? best
    : undefined;
}

function describe(node: unknown): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return "nothing (null)";
    if (typeof v === "number" || typeof v === "bigint") return `a number (${String(v)})`;
    if (typeof v === "boolean") return `a boolean (${v})`;
    if (typeof v === "string") return "a string";
  }
  return "something else";
}

// The YAML library's node tests, loaded with it on first use (src/core/yaml.ts).
const isAlias = (node: unknown): node is Yaml.Alias => yamlLib().isAlias(node);
const isMap = (node: unknown): node is Yaml.YAMLMap => yamlLib().isMap(node);
const isScalar = (node: unknown): node is Yaml.Scalar => yamlLib().isScalar(node);
const isSeq = (node: unknown): node is Yaml.YAMLSeq => yamlLib().isSeq(node);

/** Parses and validates a selection configuration file's text; `file` names it in errors (INVALID_CONFIG). */
export function parseSelectionConfig(text: string, file: string): SelectionConfig {
  const { LineCounter, parseDocument } = yamlLib();
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const lineOf = (node: unknown): number | undefined => {
    const range = (node as YamlNode | null | undefined)?.range;
    return range ? lines.linePos(range[0]).line : undefined;
  };
  const fail = (path: string, line: number | undefined, why: string): never => {
    const where = line === undefined ? file : `${file}:${line}`;
    throw new SigferryError("INVALID_CONFIG", `${where}: ${path ? `${path}: ` : ""}${why}`, {
      details: { file, key: path || undefined, line },
    });
  };

  const parseError = doc.errors[0];
  if (parseError) {
    const line = lines.linePos(parseError.pos[0]).line;
    fail("", line, `not valid YAML: ${parseError.message.split("\n")[0] ?? ""}`);
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    fail(
      "",
      undefined,
      "the file is empty; expected a mapping of keys such as channels, min and max",
    );
  }
  if (!isMap(doc.contents)) {
    fail(
      "",
      lineOf(doc.contents),
      `expected a mapping of keys at the top, found ${describe(doc.contents)}`,
    );
  }

  const scalarText = (
    node: unknown,
    path: string,
    field: { check: Check },
    what: string,
  ): string => {
    if (isAlias(node)) return fail(path, lineOf(node), "YAML aliases are not supported here");
    if (!isScalar(node) || typeof node.value !== "string") {
      const hint =
        isScalar(node) && typeof node.value === "number"
          ? `; quote it if you meant the text "${String(node.source ?? node.value)}"`
          : "";
      return fail(path, lineOf(node), `expected ${what}, found ${describe(node)}${hint}`);
    }
    const result = field.check(node.value);
    if ("error" in result) return fail(path, lineOf(node), result.error);
    return result.ok;
  };

  const walk = (
    node: unknown,
    fields: Record<string, Field>,
    prefix: string,
  ): Record<string, unknown> => {
    if (!isMap(node))
      return fail(prefix, lineOf(node), `expected a mapping, found ${describe(node)}`);
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const keyNode = pair.key;
      if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
        return fail(
          prefix,
          lineOf(keyNode),
          `keys must be plain strings, found ${describe(keyNode)}`,
        );
      }
      const key = keyNode.value;
      const path = prefix ? `${prefix}.${key}` : key;
      const field = Object.hasOwn(fields, key) ? fields[key] : undefined;
      if (!field) {
        const known = Object.keys(fields);
        const near = closestKey(key, known);
        return fail(
          path,
          lineOf(keyNode),
          `unknown key` +
            (near ? `; did you mean "${near}"?` : `; known keys here: ${known.join(", ")}`),
        );
      }
      const value = pair.value;
      const valueLine = lineOf(value) ?? lineOf(keyNode);
      if (value === null || (isScalar(value) && value.value === null)) {
        return fail(path, valueLine, "has no value; give one or remove the key");
      }
      if (isAlias(value)) return fail(path, valueLine, "YAML aliases are not supported here");
      switch (field.type) {
        case "string":
          out[key] = scalarText(value, path, field, "a string");
          break;
        case "boolean":
          if (!isScalar(value) || typeof value.value !== "boolean") {
            return fail(path, valueLine, `expected true or false, found ${describe(value)}`);
          }
          out[key] = value.value;
          break;
        case "list":
          if (!isSeq(value)) {
            return fail(
              path,
              valueLine,
              `expected a list, found ${describe(value)}; write e.g. ${key}: [${
                isScalar(value) ? String(value.source ?? value.value) : "…"
              }]`,
            );
          }
          out[key] = value.items.map((item, i) =>
            scalarText(item, `${path}[${i}]`, field, "a string"),
          );
          break;
        case "map":
          out[key] = walk(value, field.fields, path);
          break;
      }
    }
    return out;
  };

  const config = walk(doc.contents, SCHEMA, "") as SelectionConfig;

  if (config.full) {
    const clash = (["min", "max", "shortestPath"] as const).find((k) =>
      k === "shortestPath" ? config.shortestPath === true : config[k] !== undefined,
    );
    if (clash) {
      const fullPair = (doc.contents as { items: Pair<unknown, unknown>[] }).items.find(
        (p) => isScalar(p.key) && p.key.value === "full",
      );
      fail(
        "full",
        lineOf(fullPair?.key),
        `cannot be combined with ${clash} (full: true selects every release)`,
      );
    }
  }
  return config;
}
