/**
 * Field ownership for the test Kubernetes API server: a small model of
 * structured-merge-diff, the library behind server-side apply
 * (https://kubernetes.io/docs/reference/using-api/server-side-apply/).
 *
 * What it models: every map is granular (each key is its own field), every
 * scalar is a leaf, and every list is atomic (a leaf as a whole). That is
 * exact for ConfigMaps (maps of strings) and a documented simplification for
 * the two config.openshift.io kinds, whose `listType=set` lists the real server
 * tracks item by item (`v:"…"` keys).
 *
 * - Apply (`application/apply-patch+yaml`): the applier owns exactly the leaf
 *   fields of its applied configuration. Setting a field another manager owns
 *   to a different value is a conflict unless forced; the same value shares
 *   ownership. A field the applier owned before and no longer applies is
 *   removed from the object unless another manager still owns it.
 * - Update (create, PUT, merge patches): the updater takes every field it
 *   added or changed (and each map it created, the "." entry); fields it
 *   removed leave every manager's set.
 * - metadata.name, namespace, uid, resourceVersion, generation,
 *   creationTimestamp and managedFields are never tracked (apiserver stripmeta).
 */

/** A JSON value, and a JSON object. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A field path: the names of the map keys from the object root. */
export type FieldPath = string[];

/** One manager's set of owned fields; paths are JSON-encoded FieldPaths. */
export interface ManagerEntry {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  time: string;
  fields: Set<string>;
}

/** A field that another manager owns with a different value. */
export interface FieldConflict {
  manager: ManagerEntry;
  path: FieldPath;
}

const STRIPPED: string[][] = [
  ["apiVersion"],
  ["kind"],
  ["metadata", "name"],
  ["metadata", "namespace"],
  ["metadata", "uid"],
  ["metadata", "resourceVersion"],
  ["metadata", "generation"],
  ["metadata", "creationTimestamp"],
  ["metadata", "managedFields"],
  ["metadata", "selfLink"],
  ["metadata", "deletionTimestamp"],
  ["metadata", "deletionGracePeriodSeconds"],
];

function isStripped(p: FieldPath): boolean {
  return STRIPPED.some((s) => s.length <= p.length && s.every((part, i) => p[i] === part));
}

/** True for a plain JSON object (a map), false for scalars, lists and null. */
export function isMap(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const enc = (p: FieldPath): string => JSON.stringify(p);
const dec = (s: string): FieldPath => JSON.parse(s) as FieldPath;

/** Leaf paths of `obj` (and, with `withMaps`, the paths of every non-root map). */
export function fieldSet(obj: Json | undefined, withMaps = false): Set<string> {
  const out = new Set<string>();
  const walk = (v: Json, p: FieldPath): void => {
    if (isMap(v)) {
      if (withMaps && p.length > 0 && !isStripped(p) && !(p.length === 1 && p[0] === "metadata")) {
        out.add(enc(p));
      }
      for (const [k, child] of Object.entries(v)) walk(child, [...p, k]);
      return;
    }
    if (p.length > 0 && !isStripped(p)) out.add(enc(p));
  };
  if (obj !== undefined) walk(obj, []);
  return out;
}

/** The value at `p`, or undefined. */
export function getPath(obj: Json | undefined, p: FieldPath): Json | undefined {
  let cur: Json | undefined = obj;
  for (const k of p) {
    if (!isMap(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

function setPath(obj: JsonObject, p: FieldPath, value: Json): void {
  let cur = obj;
  for (const k of p.slice(0, -1)) {
    const next = cur[k];
    if (isMap(next)) cur = next;
    else {
      const made: JsonObject = {};
      cur[k] = made;
      cur = made;
    }
  }
  cur[p[p.length - 1]!] = value;
}

function deletePath(obj: JsonObject, p: FieldPath, keepMap: (p: FieldPath) => boolean): void {
  const parents: JsonObject[] = [obj];
  let cur: Json | undefined = obj;
  for (const k of p.slice(0, -1)) {
    cur = isMap(cur) ? cur[k] : undefined;
    if (!isMap(cur)) return;
    parents.push(cur);
  }
  delete parents[parents.length - 1]![p[p.length - 1]!];
  // Drop maps this removal left empty (Go's omitempty drops them too), up to metadata.
  for (let depth = p.length - 1; depth >= 1; depth--) {
    const mapPath = p.slice(0, depth);
    const map = parents[depth]!;
    if (Object.keys(map).length > 0 || keepMap(mapPath)) break;
    if (depth === 1 && mapPath[0] === "metadata") break;
    delete parents[depth - 1]![p[depth - 1]!];
  }
}

/** Deep equality of two JSON values (map key order ignored). */
export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}

function clone<T extends Json>(v: T): T {
  return structuredClone(v);
}

const sameEntry = (e: ManagerEntry, manager: string, op: string): boolean =>
  e.manager === manager && e.operation === op;

/** The result of an apply or update: the new object and the new ownership. */
export interface FieldsResult {
  object: JsonObject;
  entries: ManagerEntry[];
}

/** Server-side apply of `applied` by `manager` over `live` (undefined: create). */
export function applyFields(args: {
  live: JsonObject | undefined;
  applied: JsonObject;
  entries: ManagerEntry[];
  manager: string;
  apiVersion: string;
  force: boolean;
  now: string;
}): FieldsResult | { conflicts: FieldConflict[] } {
  const { applied, manager, force } = args;
  const object = clone(args.live ?? {});
  const appliedSet = fieldSet(applied);
  let entries = args.entries.map((e) => ({ ...e, fields: new Set(e.fields) }));

  const conflicts: FieldConflict[] = [];
  for (const e of entries) {
    if (sameEntry(e, manager, "Apply")) continue;
    for (const f of e.fields) {
      if (!appliedSet.has(f)) continue;
      const p = dec(f);
      if (!jsonEqual(getPath(applied, p), getPath(object, p)))
        conflicts.push({ manager: e, path: p });
    }
  }
  if (conflicts.length > 0 && !force) return { conflicts };
  for (const c of conflicts) c.manager.fields.delete(enc(c.path));
  // `conflicts` holds the copies in `entries`, so the deletes above took effect there.

  const previous = entries.find((e) => sameEntry(e, manager, "Apply"))?.fields ?? new Set();
  const ownedByOthers = (f: string): boolean =>
    entries.some((e) => !sameEntry(e, manager, "Apply") && e.fields.has(f));
  for (const f of previous) {
    if (appliedSet.has(f) || ownedByOthers(f)) continue;
    deletePath(object, dec(f), (mp) => ownedByOthers(enc(mp)));
  }
  for (const f of appliedSet) {
    const p = dec(f);
    setPath(object, p, clone(getPath(applied, p)!));
  }
  // Identity fields are not owned by anyone but come from the request.
  for (const p of [["apiVersion"], ["kind"], ["metadata", "name"], ["metadata", "namespace"]]) {
    const v = getPath(applied, p);
    if (v !== undefined) setPath(object, p, clone(v));
  }

  entries = entries.filter((e) => !sameEntry(e, manager, "Apply"));
  entries.push({
    manager,
    operation: "Apply",
    apiVersion: args.apiVersion,
    time: args.now,
    fields: appliedSet,
  });
  return {
    object,
    entries: keepTimes(
      args.entries,
      entries.filter((e) => e.fields.size > 0),
    ),
  };
}

/** An Update by `manager` from `old` (undefined: create) to `next`. */
export function updateFields(args: {
  old: JsonObject | undefined;
  next: JsonObject;
  entries: ManagerEntry[];
  manager: string;
  apiVersion: string;
  now: string;
}): ManagerEntry[] {
  const { old, next, manager } = args;
  const oldSet = fieldSet(old, true);
  const newSet = fieldSet(next, true);
  const removed = [...oldSet].filter((f) => !newSet.has(f));
  const added = [...newSet].filter((f) => !oldSet.has(f));
  const modified = [...newSet].filter((f) => {
    if (!oldSet.has(f)) return false;
    const p = dec(f);
    const a = getPath(old, p);
    const b = getPath(next, p);
    return !isMap(a) && !isMap(b) && !jsonEqual(a, b);
  });
  let entries = args.entries.map((e) => ({ ...e, fields: new Set(e.fields) }));
  for (const e of entries) {
    for (const f of removed) e.fields.delete(f);
    if (!sameEntry(e, manager, "Update")) for (const f of modified) e.fields.delete(f);
  }
  let mine = entries.find((e) => sameEntry(e, manager, "Update"));
  if (added.length + modified.length > 0) {
    if (mine === undefined) {
      mine = {
        manager,
        operation: "Update",
        apiVersion: args.apiVersion,
        time: args.now,
        fields: new Set(),
      };
      entries.push(mine);
    }
    for (const f of [...added, ...modified]) mine.fields.add(f);
    mine.time = args.now;
  }
  entries = entries.filter((e) => e.fields.size > 0);
  return entries;
}

/** Keeps the old timestamp of every entry whose set did not change. */
function keepTimes(before: ManagerEntry[], after: ManagerEntry[]): ManagerEntry[] {
  return after.map((e) => {
    const was = before.find((b) => sameEntry(b, e.manager, e.operation));
    return was !== undefined && setsEqual(was.fields, e.fields) ? { ...e, time: was.time } : e;
  });
}

/** True when two string sets hold the same members. */
export function setsEqual(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** True when two ownership lists are the same (times ignored). */
export function entriesEqual(a: ManagerEntry[], b: ManagerEntry[]): boolean {
  return (
    a.length === b.length &&
    a.every((e) =>
      b.some((f) => sameEntry(f, e.manager, e.operation) && setsEqual(e.fields, f.fields)),
    )
  );
}

/** The FieldsV1 encoding of a set: nested `f:<name>` keys, "." marking a map that is itself owned. */
export function toFieldsV1(fields: Set<string>): JsonObject {
  const root: JsonObject = {};
  const paths = [...fields].map(dec);
  for (const p of paths) {
    let cur = root;
    for (const k of p) {
      const key = `f:${k}`;
      const next = cur[key];
      if (isMap(next)) cur = next;
      else {
        const made: JsonObject = {};
        cur[key] = made;
        cur = made;
      }
    }
  }
  for (const p of paths) {
    const node = getPath(
      root,
      p.map((k) => `f:${k}`),
    );
    if (isMap(node) && Object.keys(node).length > 0) node["."] = {};
  }
  return sortKeys(root);
}

function sortKeys(o: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(o).sort((a, b) =>
    a === "." ? -1 : b === "." ? 1 : a < b ? -1 : a > b ? 1 : 0,
  )) {
    const v = o[k]!;
    out[k] = isMap(v) ? sortKeys(v) : v;
  }
  return out;
}

/** Parses a FieldsV1 document back into a set of paths (for managedFields sent by clients). */
export function fromFieldsV1(v1: Json | undefined): Set<string> {
  const out = new Set<string>();
  const walk = (node: Json, p: FieldPath): void => {
    if (!isMap(node)) return;
    const keys = Object.keys(node);
    if (p.length > 0 && (keys.length === 0 || keys.includes("."))) out.add(enc(p));
    for (const k of keys) {
      if (k.startsWith("f:")) walk(node[k]!, [...p, k.slice(2)]);
    }
  };
  if (v1 !== undefined) walk(v1, []);
  return out;
}

/** Path as structured-merge-diff prints it in conflict messages: `.data.key`. */
export function pathString(p: FieldPath): string {
  return p.map((k) => `.${k}`).join("");
}

/** The managedFields array the API returns, sorted as the apiserver sorts it. */
export function encodeEntries(entries: ManagerEntry[]): Json[] {
  const sorted = [...entries].sort(
    (p, q) =>
      cmp(p.operation, q.operation) ||
      cmp(p.time, q.time) ||
      cmp(p.manager, q.manager) ||
      cmp(p.apiVersion, q.apiVersion),
  );
  return sorted.map((e) => ({
    manager: e.manager,
    operation: e.operation,
    apiVersion: e.apiVersion,
    time: e.time,
    fieldsType: "FieldsV1",
    fieldsV1: toFieldsV1(e.fields),
  }));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
