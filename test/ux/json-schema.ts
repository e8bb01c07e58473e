/**
 * A small JSON Schema (2020-12) validator for the subset of keywords
 * docs/schema/sigferry-output.schema.json uses, so the tests need no
 * dependency. It refuses any keyword it does not implement (see
 * `unsupportedKeywords`), so a schema change cannot be silently ignored.
 *
 * `strict` adds one rule on top of the standard: an object schema that lists
 * `properties` and says nothing about `additionalProperties` is closed. The
 * published schema stays open (consumers ignore what they do not know); the
 * tests use strict mode so that every field sigferry prints is documented.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../helpers/paths.js";

type Schema = boolean | { [keyword: string]: unknown };

/** One validation failure: where (a JSON pointer into the instance) and why. */
export interface SchemaProblem {
  path: string;
  message: string;
}

const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "title",
  "description",
  "$comment",
  "examples",
  "default",
  "$defs",
]);
const IMPLEMENTED = new Set([
  "type",
  "const",
  "enum",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "pattern",
  "minLength",
  "minimum",
  "maximum",
  "allOf",
  "anyOf",
  "oneOf",
  "not",
  "if",
  "then",
  "else",
  "$ref",
]);

/** The output schema, parsed. */
export function loadOutputSchema(): Schema {
  return JSON.parse(
    readFileSync(path.join(REPO_ROOT, "docs/schema/sigferry-output.schema.json"), "utf8"),
  ) as Schema;
}

/** Every keyword in `schema` (recursively) that this validator does not implement, with its location. */
export function unsupportedKeywords(schema: Schema, at = "#"): string[] {
  if (typeof schema === "boolean") return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(schema)) {
    if (!ANNOTATIONS.has(k) && !IMPLEMENTED.has(k)) out.push(`${at}/${k}`);
    if (k === "properties" || k === "$defs") {
      for (const [name, sub] of Object.entries(v as Record<string, Schema>))
        out.push(...unsupportedKeywords(sub, `${at}/${k}/${name}`));
    } else if (k === "allOf" || k === "anyOf" || k === "oneOf") {
      (v as Schema[]).forEach((sub, i) => out.push(...unsupportedKeywords(sub, `${at}/${k}/${i}`)));
    } else if (["items", "additionalProperties", "not", "if", "then", "else"].includes(k)) {
      out.push(...unsupportedKeywords(v as Schema, `${at}/${k}`));
    }
  }
  return out;
}

/** Every `$ref` in `schema` that does not resolve inside `root`. */
export function unresolvedRefs(schema: Schema, root: Schema = schema): string[] {
  const out: string[] = [];
  const walk = (s: unknown): void => {
    if (Array.isArray(s)) {
      s.forEach(walk);
      return;
    }
    if (typeof s !== "object" || s === null) return;
    for (const [k, v] of Object.entries(s)) {
      if (k === "$ref") {
        try {
          resolve(root, v as string);
        } catch {
          out.push(v as string);
        }
      } else walk(v);
    }
  };
  walk(schema);
  return out;
}

function resolve(root: Schema, ref: string): Schema {
  if (!ref.startsWith("#")) throw new Error(`only local $ref are supported: ${ref}`);
  let node: unknown = root;
  for (const raw of ref
    .slice(1)
    .split("/")
    .filter((p) => p !== "")) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (typeof node !== "object" || node === null || !(part in node))
      throw new Error(`$ref ${ref} does not resolve`);
    node = (node as Record<string, unknown>)[part];
  }
  return node as Schema;
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === "number" && actual === "integer");
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return (
    ka.length === kb.length &&
    ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

/** Validates `value` against `schema` (resolving $ref in `root`); returns every problem found. */
export function validate(
  schema: Schema,
  value: unknown,
  options: { strict?: boolean; root?: Schema } = {},
): SchemaProblem[] {
  const root = options.root ?? schema;
  const problems: SchemaProblem[] = [];
  check(schema, value, "", options.strict === true, root, problems);
  return problems;
}

function check(
  schema: Schema,
  v: unknown,
  at: string,
  strict: boolean,
  root: Schema,
  out: SchemaProblem[],
): void {
  const fail = (message: string): void => {
    out.push({ path: at || "/", message });
  };
  if (schema === true) return;
  if (schema === false) {
    fail("no value is allowed here");
    return;
  }
  const s = schema;
  const bad = Object.keys(s).filter((k) => !ANNOTATIONS.has(k) && !IMPLEMENTED.has(k));
  if (bad.length > 0) throw new Error(`schema keyword(s) not implemented: ${bad.join(", ")}`);

  if (typeof s.$ref === "string") check(resolve(root, s.$ref), v, at, strict, root, out);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => typeMatches(v, t))) {
      fail(`is ${typeOf(v)}, expected ${types.join(" or ")}`);
      return;
    }
  }
  if ("const" in s && !equal(v, s.const))
    fail(`must be ${JSON.stringify(s.const)}, is ${JSON.stringify(v)}`);
  if (Array.isArray(s.enum) && !s.enum.some((e) => equal(e, v)))
    fail(`must be one of ${JSON.stringify(s.enum)}, is ${JSON.stringify(v)}`);
  if (typeof v === "string") {
    if (typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(v))
      fail(`${JSON.stringify(v)} does not match ${s.pattern}`);
    if (typeof s.minLength === "number" && [...v].length < s.minLength)
      fail(`shorter than ${s.minLength}`);
  }
  if (typeof v === "number") {
    if (typeof s.minimum === "number" && v < s.minimum) fail(`less than ${s.minimum}`);
    if (typeof s.maximum === "number" && v > s.maximum) fail(`more than ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === "number" && v.length < s.minItems)
      fail(`fewer than ${s.minItems} items`);
    if (typeof s.maxItems === "number" && v.length > s.maxItems)
      fail(`more than ${s.maxItems} items`);
    if (s.items !== undefined)
      v.forEach((item, i) => check(s.items as Schema, item, `${at}/${i}`, strict, root, out));
  }
  if (typeOf(v) === "object") {
    const obj = v as Record<string, unknown>;
    for (const r of (s.required as string[] | undefined) ?? [])
      if (!(r in obj)) fail(`missing required property "${r}"`);
    const props = s.properties as Record<string, Schema> | undefined;
    for (const [k, child] of Object.entries(obj)) {
      if (props && k in props) check(props[k]!, child, `${at}/${k}`, strict, root, out);
      else if (s.additionalProperties !== undefined)
        check(s.additionalProperties as Schema, child, `${at}/${k}`, strict, root, out);
      else if (strict && props)
        out.push({
          path: `${at}/${k}`,
          message: `property "${k}" is not documented in the schema`,
        });
    }
  }
  for (const sub of (s.allOf as Schema[] | undefined) ?? []) check(sub, v, at, strict, root, out);
  if (Array.isArray(s.anyOf)) {
    const results = (s.anyOf as Schema[]).map((sub) => validate(sub, v, { strict, root }));
    if (!results.some((r) => r.length === 0))
      fail(`matches none of anyOf: ${results.map((r) => r[0]?.message).join(" | ")}`);
  }
  if (Array.isArray(s.oneOf)) {
    const results = (s.oneOf as Schema[]).map((sub) => validate(sub, v, { strict, root }));
    const n = results.filter((r) => r.length === 0).length;
    if (n !== 1) fail(`matches ${n} of oneOf, expected exactly 1`);
  }
  if (s.not !== undefined && validate(s.not as Schema, v, { root }).length === 0)
    fail("matches a schema it must not match");
  if (s.if !== undefined) {
    // `if` is a test, not a description: never strict.
    const passes = validate(s.if as Schema, v, { root }).length === 0;
    const branch = passes ? s.then : s.else;
    if (branch !== undefined) check(branch as Schema, v, at, strict, root, out);
  }
}

/** Validates one sigferry --json document against the output schema in strict mode; throws listing every problem. */
export function assertValidOutput(doc: unknown, schema: Schema = loadOutputSchema()): void {
  const problems = validate(schema, doc, { strict: true });
  if (problems.length > 0) {
    const command = (doc as { command?: string }).command ?? "?";
    throw new Error(
      `--json document of "${command}" does not match docs/schema/sigferry-output.schema.json:\n` +
        problems.map((p) => `  ${p.path}: ${p.message}`).join("\n"),
    );
  }
}
