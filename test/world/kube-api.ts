/**
 * A test Kubernetes API server that follows the real API's semantics for what
 * sigferry (and kubectl, driving it in tests) touches: HTTPS on 127.0.0.1 with
 * a throwaway CA, bearer-token / client-certificate / basic authentication,
 * RBAC reduced to "admin" and "read-only", legacy discovery, namespaces,
 * ConfigMaps, and the cluster-scoped config.openshift.io/v1
 * ImageDigestMirrorSet and ClusterImagePolicy.
 *
 * Semantics it follows (and where from):
 * - Status bodies exactly as k8s.io/apimachinery pkg/api/errors builds them
 *   (NotFound/AlreadyExists/Conflict/Invalid/Forbidden/Unauthorized…).
 * - Server-side apply with field managers (./kube-fields.ts), `force`,
 *   `dryRun=All`, `fieldValidation`, resourceVersion bumped only on a real
 *   change, managedFields sorted as the apiserver sorts them.
 * - ConfigMap validation of pkg/apis/core/validation (names, keys, 1 MiB);
 *   the config.openshift.io kinds are validated with src/core/manifests.ts
 *   (the schema rules of openshift/api), so that file is tested separately.
 * - JSON shapes: built-in objects in Go struct field order, items of built-in
 *   lists without apiVersion/kind, custom resources with sorted keys
 *   (unstructured JSON), Table for kubectl's `as=Table` Accept.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import * as https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import type { TLSSocket } from "node:tls";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import {
  dns1123SubdomainErrors,
  formatProblem,
  validateClusterImagePolicy,
  validateImageDigestMirrorSet,
  type ManifestProblem,
} from "../../src/core/manifests.js";
import {
  applyFields,
  encodeEntries,
  entriesEqual,
  fromFieldsV1,
  isMap,
  jsonEqual,
  pathString,
  updateFields,
  type Json,
  type JsonObject,
  type ManagerEntry,
} from "./kube-fields.js";
import { createKubePki, type IssuedCert } from "./kube-pki.js";

// ---------------------------------------------------------------------------
// Types of the handle

/** Options of startKubeApi. */
export interface KubeApiOptions {
  /** Namespaces that exist besides default, kube-system, kube-public (openshift-config-managed is added unless `openshift: false`). */
  namespaces?: string[];
  /** Serve config.openshift.io/v1 (default true); false makes a plain Kubernetes server. */
  openshift?: boolean;
  /** The version /version reports. */
  gitVersion?: string;
  /** Answer 429 with Retry-After to the next N requests (tests of the client's retry). */
  throttle?: number;
  /** Serve /openapi/v3 (default true); false shows what kubectl does without it. */
  openapi?: boolean;
  /** Answer kubectl's `as=Table` Accept with a Table (default true); false answers plain JSON. */
  tables?: boolean;
}

/** One request as the server saw it (tests assert on what kubectl asked for). */
export interface SeenRequest {
  method: string;
  path: string;
  query: string;
  accept: string;
  contentType: string;
  userAgent: string;
  user: string;
  status: number;
}

/** A running test API server. */
export interface KubeApi {
  url: string;
  caFile: string;
  caPem: string;
  adminToken: string;
  readonlyToken: string;
  /** A client certificate for user "cert-admin" in group system:masters. */
  clientCert: IssuedCert;
  /** Basic credentials of an admin user. */
  basic: { username: string; password: string };
  /** Writes a kubeconfig for this server and returns its path. */
  writeKubeconfig(dir: string, opts?: KubeconfigSpec): Promise<string>;
  /** Every stored object, as GET would return it. */
  objects(): JsonObject[];
  /** Every request served so far. */
  requests: SeenRequest[];
  stop(): Promise<void>;
}

/** What goes into a kubeconfig written by writeKubeconfig. */
export interface KubeconfigSpec {
  token?: string;
  tokenFile?: string;
  /** true: the server's own admin client certificate; or any other certificate (e.g. from another CA). */
  clientCert?: boolean | IssuedCert;
  basic?: boolean;
  /** Reference the CA by file instead of embedding it (certificate-authority vs -data). */
  caFile?: boolean;
  insecure?: boolean;
  noCa?: boolean;
  namespace?: string;
  context?: string;
  fileName?: string;
}

// ---------------------------------------------------------------------------
// Resource types

interface ResourceDef {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  resource: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** Built-in (Go struct) or custom resource (unstructured JSON). */
  builtin: boolean;
  knownTop: string[];
  validate(obj: JsonObject, old: JsonObject | undefined): Problem[];
}

/** A validation problem; `unknown` ones are pruned or refused depending on fieldValidation. */
interface Problem {
  field: string;
  reason: string;
  body: string;
  unknown?: boolean;
}

const META_FIELDS = [
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
];

/** A JSON value as text for messages and sizes: strings as they are, anything else as JSON. */
const text = (v: Json | undefined): string =>
  typeof v === "string" ? v : (JSON.stringify(v) ?? "");

const gv = (d: ResourceDef): string => (d.group === "" ? d.version : `${d.group}/${d.version}`);
const qualifiedResource = (d: ResourceDef): string =>
  d.group === "" ? d.resource : `${d.resource}.${d.group}`;
const qualifiedKind = (d: ResourceDef): string =>
  d.group === "" ? d.kind : `${d.kind}.${d.group}`;

function problemFrom(p: ManifestProblem): Problem {
  if (p.reason === "FieldValueUnknown")
    return { field: p.field, reason: p.reason, body: "", unknown: true };
  const text = formatProblem(p);
  return { field: p.field, reason: p.reason, body: text.slice(p.field.length + 2) };
}

function unknownFields(obj: JsonObject, knownTop: string[]): Problem[] {
  const out: Problem[] = [];
  for (const k of Object.keys(obj))
    if (!knownTop.includes(k)) out.push({ field: k, reason: "", body: "", unknown: true });
  if (isMap(obj.metadata)) {
    for (const k of Object.keys(obj.metadata)) {
      if (!META_FIELDS.includes(k))
        out.push({ field: `metadata.${k}`, reason: "", body: "", unknown: true });
    }
  }
  return out;
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;

function qualifiedNameErrors(key: string): string[] {
  const parts = key.split("/");
  let name = key;
  const errs: string[] = [];
  if (parts.length === 2) {
    const [prefix, n] = parts as [string, string];
    name = n;
    if (prefix === "") errs.push("prefix part must be non-empty");
    else errs.push(...dns1123SubdomainErrors(prefix).map((e) => `prefix part ${e}`));
  } else if (parts.length > 2) {
    return [
      "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ];
  }
  if (name === "") errs.push("name part must be non-empty");
  else if (name.length > 63) errs.push("name part must be no more than 63 characters");
  else if (!QUALIFIED_NAME.test(name)) {
    errs.push(
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    );
  }
  return errs;
}

function metaProblems(obj: JsonObject, nameCheck: (n: string) => string[]): Problem[] {
  const out: Problem[] = [];
  const meta = isMap(obj.metadata) ? obj.metadata : {};
  const name = meta.name;
  if (typeof name !== "string" || name === "") {
    out.push({
      field: "metadata.name",
      reason: "FieldValueRequired",
      body: "Required value: name or generateName is required",
    });
  } else {
    for (const e of nameCheck(name)) {
      out.push({
        field: "metadata.name",
        reason: "FieldValueInvalid",
        body: `Invalid value: ${JSON.stringify(name)}: ${e}`,
      });
    }
  }
  const labels = meta.labels;
  if (isMap(labels)) {
    for (const [k, v] of Object.entries(labels)) {
      for (const e of qualifiedNameErrors(k)) {
        out.push({
          field: "metadata.labels",
          reason: "FieldValueInvalid",
          body: `Invalid value: ${JSON.stringify(k)}: ${e}`,
        });
      }
      if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) {
        out.push({
          field: `metadata.labels`,
          reason: "FieldValueInvalid",
          body: `Invalid value: ${JSON.stringify(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
        });
      }
    }
  }
  const annotations = meta.annotations;
  if (isMap(annotations)) {
    for (const k of Object.keys(annotations)) {
      for (const e of qualifiedNameErrors(k.toLowerCase())) {
        out.push({
          field: "metadata.annotations",
          reason: "FieldValueInvalid",
          body: `Invalid value: ${JSON.stringify(k)}: ${e}`,
        });
      }
    }
  }
  return out;
}

function configMapKeyErrors(key: string): string[] {
  const errs: string[] = [];
  if (key.length > 253) errs.push("must be no more than 253 characters");
  if (!CONFIGMAP_KEY.test(key)) {
    errs.push(
      "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    );
  }
  if (key === ".") errs.push("must not be '.'");
  else if (key === "..") errs.push("must not be '..'");
  else if (key.startsWith("..")) errs.push("must not start with '..'");
  return errs;
}

/** pkg/apis/core/validation ValidateConfigMap (+ ValidateConfigMapUpdate's immutability). */
function validateConfigMap(obj: JsonObject, old: JsonObject | undefined): Problem[] {
  const out = metaProblems(obj, dns1123SubdomainErrors);
  const data = isMap(obj.data) ? obj.data : {};
  const binary = isMap(obj.binaryData) ? obj.binaryData : {};
  let total = 0;
  for (const [k, v] of Object.entries(data)) {
    for (const e of configMapKeyErrors(k)) {
      out.push({
        field: `data[${k}]`,
        reason: "FieldValueInvalid",
        body: `Invalid value: ${JSON.stringify(k)}: ${e}`,
      });
    }
    if (k in binary) {
      out.push({
        field: `data[${k}]`,
        reason: "FieldValueInvalid",
        body: `Invalid value: ${JSON.stringify(k)}: duplicate of key present in binaryData`,
      });
    }
    total += Buffer.byteLength(text(v));
  }
  for (const [k, v] of Object.entries(binary)) {
    for (const e of configMapKeyErrors(k)) {
      out.push({
        field: `binaryData[${k}]`,
        reason: "FieldValueInvalid",
        body: `Invalid value: ${JSON.stringify(k)}: ${e}`,
      });
    }
    total += Buffer.from(text(v), "base64").length;
  }
  if (total > 1024 * 1024) {
    out.push({
      field: "",
      reason: "FieldValueTooLong",
      body: "Too long: must have at most 1048576 bytes",
    });
  }
  if (old !== undefined && old.immutable === true) {
    if (obj.immutable !== true) {
      out.push({
        field: "immutable",
        reason: "FieldValueForbidden",
        body: "Forbidden: field is immutable when `immutable` is set",
      });
    }
    if (!jsonEqual(old.data ?? {}, obj.data ?? {})) {
      out.push({
        field: "data",
        reason: "FieldValueForbidden",
        body: "Forbidden: field is immutable when `immutable` is set",
      });
    }
    if (!jsonEqual(old.binaryData ?? {}, obj.binaryData ?? {})) {
      out.push({
        field: "binaryData",
        reason: "FieldValueForbidden",
        body: "Forbidden: field is immutable when `immutable` is set",
      });
    }
  }
  return [
    ...unknownFields(obj, ["apiVersion", "kind", "metadata", "immutable", "data", "binaryData"]),
    ...out,
  ];
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const RESOURCES: ResourceDef[] = [
  {
    group: "",
    version: "v1",
    kind: "Namespace",
    listKind: "NamespaceList",
    resource: "namespaces",
    singular: "namespace",
    namespaced: false,
    shortNames: ["ns"],
    verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
    builtin: true,
    knownTop: ["apiVersion", "kind", "metadata", "spec", "status"],
    validate: (obj) => [
      ...unknownFields(obj, ["apiVersion", "kind", "metadata", "spec", "status"]),
      ...metaProblems(obj, (n) =>
        n.length <= 63 && DNS1123_LABEL.test(n)
          ? []
          : [
              "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ],
      ),
    ],
  },
  {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    listKind: "ConfigMapList",
    resource: "configmaps",
    singular: "configmap",
    namespaced: true,
    shortNames: ["cm"],
    verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    builtin: true,
    knownTop: ["apiVersion", "kind", "metadata", "immutable", "data", "binaryData"],
    validate: validateConfigMap,
  },
  {
    group: "config.openshift.io",
    version: "v1",
    kind: "ImageDigestMirrorSet",
    listKind: "ImageDigestMirrorSetList",
    resource: "imagedigestmirrorsets",
    singular: "imagedigestmirrorset",
    namespaced: false,
    shortNames: ["idms"],
    verbs: ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
    builtin: false,
    knownTop: ["apiVersion", "kind", "metadata", "spec", "status"],
    validate: (obj) => [
      ...unknownFields(obj, ["apiVersion", "kind", "metadata", "spec", "status"]).filter((p) =>
        p.field.startsWith("metadata."),
      ),
      ...validateImageDigestMirrorSet(obj).map(problemFrom),
    ],
  },
  {
    group: "config.openshift.io",
    version: "v1",
    kind: "ClusterImagePolicy",
    listKind: "ClusterImagePolicyList",
    resource: "clusterimagepolicies",
    singular: "clusterimagepolicy",
    namespaced: false,
    shortNames: [],
    verbs: ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
    builtin: false,
    knownTop: ["apiVersion", "kind", "metadata", "spec", "status"],
    validate: (obj) => [
      ...unknownFields(obj, ["apiVersion", "kind", "metadata", "spec", "status"]).filter((p) =>
        p.field.startsWith("metadata."),
      ),
      ...validateClusterImagePolicy(obj).map(problemFrom),
    ],
  },
];

// ---------------------------------------------------------------------------
// Status bodies (k8s.io/apimachinery pkg/api/errors)

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: JsonObject,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body.message === "string" ? body.message : `HTTP ${code}`);
  }
}

function status(code: number, reason: string, message: string, details?: JsonObject): ApiError {
  const body: JsonObject = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details !== undefined ? { details } : {}),
    code,
  };
  return new ApiError(code, body);
}

function resourceDetails(d: ResourceDef, name?: string): JsonObject {
  return {
    ...(name !== undefined ? { name } : {}),
    ...(d.group !== "" ? { group: d.group } : {}),
    kind: d.resource,
  };
}

const notFound = (d: ResourceDef, name: string): ApiError =>
  status(404, "NotFound", `${qualifiedResource(d)} "${name}" not found`, resourceDetails(d, name));

const alreadyExists = (d: ResourceDef, name: string): ApiError =>
  status(
    409,
    "AlreadyExists",
    `${qualifiedResource(d)} "${name}" already exists`,
    resourceDetails(d, name),
  );

const staleConflict = (d: ResourceDef, name: string): ApiError =>
  status(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedResource(d)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    resourceDetails(d, name),
  );

const badRequest = (message: string): ApiError => status(400, "BadRequest", message);

function invalid(d: ResourceDef, name: string, problems: Problem[]): ApiError {
  const errs = problems.map((p) => (p.field === "" ? p.body : `${p.field}: ${p.body}`));
  const agg = errs.length === 1 ? errs[0]! : `[${errs.join(", ")}]`;
  return status(422, "Invalid", `${qualifiedKind(d)} "${name}" is invalid: ${agg}`, {
    name,
    ...(d.group !== "" ? { group: d.group } : {}),
    kind: d.kind,
    causes: problems.map((p) => ({ reason: p.reason, message: p.body, field: p.field })),
  });
}

const unauthorized = (): ApiError => status(401, "Unauthorized", "Unauthorized");

function forbidden(
  user: User,
  verb: string,
  d: ResourceDef,
  ns: string | undefined,
  name: string | undefined,
): ApiError {
  const subject = name !== undefined ? `${qualifiedResource(d)} "${name}"` : qualifiedResource(d);
  const scope =
    d.namespaced && ns !== undefined ? `in the namespace "${ns}"` : "at the cluster scope";
  return status(
    403,
    "Forbidden",
    `${subject} is forbidden: User "${user.name}" cannot ${verb} resource "${d.resource}" in API group "${d.group}" ${scope}`,
    resourceDetails(d, name),
  );
}

// ---------------------------------------------------------------------------
// Authentication and authorization

interface User {
  name: string;
  groups: string[];
  write: boolean;
}

// ---------------------------------------------------------------------------
// Label selectors (k8s.io/apimachinery pkg/labels)

interface Requirement {
  key: string;
  op: "exists" | "!exists" | "=" | "!=" | "in" | "notin";
  values: string[];
}

function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function parseSelector(s: string): Requirement[] {
  const reqs: Requirement[] = [];
  if (s.trim() === "") return reqs;
  for (const raw of splitTopLevel(s)) {
    const part = raw.trim();
    let m: RegExpExecArray | null;
    let req: Requirement;
    if ((m = /^(\S+)\s+(in|notin)\s+\((.*)\)$/.exec(part))) {
      req = {
        key: m[1]!,
        op: m[2] as "in" | "notin",
        values: m[3]!.split(",").map((v) => v.trim()),
      };
    } else if ((m = /^!\s*([^=!\s]+)$/.exec(part))) {
      req = { key: m[1]!, op: "!exists", values: [] };
    } else if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part))) {
      req = { key: m[1]!, op: m[2] === "!=" ? "!=" : "=", values: [m[3]!] };
    } else if ((m = /^([^=!\s()]+)$/.exec(part))) {
      req = { key: m[1]!, op: "exists", values: [] };
    } else {
      throw badRequest(`unable to parse requirement: found '${part}', expected: identifier`);
    }
    const keyErrs = qualifiedNameErrors(req.key);
    if (keyErrs.length > 0) {
      throw badRequest(
        `unable to parse requirement: values[0][${req.key}]: Invalid value: ${JSON.stringify(req.key)}: ${keyErrs[0]!}`,
      );
    }
    reqs.push(req);
  }
  return reqs;
}

function matches(reqs: Requirement[], labels: Record<string, Json>): boolean {
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = has ? text(labels[r.key]) : undefined;
    switch (r.op) {
      case "exists":
        return has;
      case "!exists":
        return !has;
      case "=":
        return has && v === r.values[0];
      case "!=":
        return !has || v !== r.values[0];
      case "in":
        return has && r.values.includes(v!);
      case "notin":
        return !has || !r.values.includes(v!);
    }
  });
}

function parseFieldSelector(s: string): ((o: JsonObject) => boolean)[] {
  if (s.trim() === "") return [];
  return s.split(",").map((part) => {
    const m = /^\s*(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(\S*)\s*$/.exec(part);
    if (!m) throw badRequest(`field label not supported: ${part.split(/[=!]/)[0]?.trim() ?? part}`);
    const key = m[1] === "metadata.name" ? "name" : "namespace";
    const want = m[3]!;
    const neg = m[2] === "!=";
    return (o: JsonObject) => {
      const meta = isMap(o.metadata) ? o.metadata : {};
      return (meta[key] === want) !== neg;
    };
  });
}

// ---------------------------------------------------------------------------
// Object rendering

interface Stored {
  def: ResourceDef;
  obj: JsonObject;
  entries: ManagerEntry[];
}

const TOP_ORDER = [
  "kind",
  "apiVersion",
  "metadata",
  "immutable",
  "data",
  "binaryData",
  "spec",
  "status",
];

function orderedObj(o: JsonObject, order: string[], sortRest: boolean): JsonObject {
  const out: JsonObject = {};
  for (const k of order) if (k in o) out[k] = o[k]!;
  const rest = Object.keys(o).filter((k) => !(k in out));
  for (const k of sortRest ? rest.sort() : rest) out[k] = o[k]!;
  return out;
}

function sortedDeep(v: Json): Json {
  if (Array.isArray(v)) return v.map(sortedDeep);
  if (!isMap(v)) return v;
  const out: JsonObject = {};
  for (const k of Object.keys(v).sort()) out[k] = sortedDeep(v[k]!);
  return out;
}

function render(s: Stored, withType = true): JsonObject {
  const obj: JsonObject = structuredClone(s.obj);
  const meta = isMap(obj.metadata) ? obj.metadata : {};
  if (s.entries.length > 0) meta.managedFields = encodeEntries(s.entries);
  obj.metadata = meta;
  if (!s.def.builtin) {
    // Custom resources are unstructured: Go's encoding/json sorts map keys.
    return sortedDeep(obj) as JsonObject;
  }
  if (!withType) {
    delete obj.kind;
    delete obj.apiVersion;
  }
  const out = orderedObj(obj, TOP_ORDER, true);
  out.metadata = orderedObj(meta, META_FIELDS, true);
  for (const m of ["labels", "annotations"]) {
    const v = out.metadata[m];
    if (isMap(v)) out.metadata[m] = sortedDeep(v);
  }
  for (const m of ["data", "binaryData"]) {
    const v = out[m];
    if (isMap(v)) out[m] = sortedDeep(v);
  }
  return out;
}

function nowTime(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

function age(created: Json | undefined): string {
  if (typeof created !== "string") return "<unknown>";
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(created)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m` : `${Math.floor(m / 60)}h`;
}

// ---------------------------------------------------------------------------
// JSON patch (RFC 6902) and merge patch (RFC 7386)

function mergePatch(target: Json, patch: Json): Json {
  if (!isMap(patch)) return structuredClone(patch);
  const out: JsonObject = isMap(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

function pointer(p: string): string[] {
  if (p === "") return [];
  if (!p.startsWith("/")) throw badRequest(`invalid JSON pointer ${JSON.stringify(p)}`);
  return p
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function jsonPatch(doc: JsonObject, ops: Json): JsonObject {
  if (!Array.isArray(ops)) throw badRequest("json patch must be an array of operations");
  const out = structuredClone(doc);
  for (const op of ops) {
    if (!isMap(op) || typeof op.op !== "string" || typeof op.path !== "string")
      throw badRequest("invalid json patch operation");
    const parts = pointer(op.path);
    const last = parts.pop();
    let parent: Json = out;
    for (const p of parts) {
      parent = Array.isArray(parent)
        ? (parent[Number(p)] ?? null)
        : isMap(parent)
          ? (parent[p] ?? null)
          : null;
    }
    if (last === undefined || (!isMap(parent) && !Array.isArray(parent))) {
      throw status(
        422,
        "Invalid",
        `the server rejected our request due to an error in our request`,
      );
    }
    const container = parent;
    const exists = Array.isArray(container) ? Number(last) < container.length : last in container;
    switch (op.op) {
      case "add":
      case "replace":
        if (op.op === "replace" && !exists)
          throw status(
            422,
            "Invalid",
            `replace operation does not apply: doc is missing key: ${op.path}`,
          );
        if (Array.isArray(container)) {
          const i = last === "-" ? container.length : Number(last);
          if (op.op === "add") container.splice(i, 0, structuredClone(op.value ?? null));
          else container[i] = structuredClone(op.value ?? null);
        } else container[last] = structuredClone(op.value ?? null);
        break;
      case "remove":
        if (!exists)
          throw status(
            422,
            "Invalid",
            `remove operation does not apply: doc is missing path: ${op.path}`,
          );
        if (Array.isArray(container)) container.splice(Number(last), 1);
        else delete container[last];
        break;
      case "test": {
        const cur = Array.isArray(container) ? container[Number(last)] : container[last];
        if (!jsonEqual(cur, op.value ?? null))
          throw status(422, "Invalid", `testing value ${op.path} failed`);
        break;
      }
      default:
        throw badRequest(`unsupported json patch operation ${JSON.stringify(op.op)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The server

const SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];
const MAX_BODY = 3 * 1024 * 1024;

/** Starts the test API server on 127.0.0.1 (a random port) with a fresh CA. */
export async function startKubeApi(options: KubeApiOptions = {}): Promise<KubeApi> {
  const openshift = options.openshift ?? true;
  const defs = RESOURCES.filter((d) => openshift || d.group === "");
  const pki = await createKubePki();
  const clientCert = await pki.issueClient("client-admin", "cert-admin", ["system:masters"]);
  const adminToken = `sha256~admin-${randomBytes(16).toString("hex")}`;
  const readonlyToken = `sha256~readonly-${randomBytes(16).toString("hex")}`;
  const basic = { username: "basic-admin", password: randomBytes(12).toString("hex") };
  const gitVersion = options.gitVersion ?? "v1.32.4";
  let throttle = options.throttle ?? 0;
  const serveOpenApi = options.openapi ?? true;
  const serveTables = options.tables ?? true;
  let rv = 1000;
  const store = new Map<string, Stored>();
  const requests: SeenRequest[] = [];
  let port = 0;

  const keyOf = (d: ResourceDef, ns: string | undefined, name: string): string =>
    `${qualifiedResource(d)}|${d.namespaced ? (ns ?? "") : ""}|${name}`;
  const nsDef = defs.find((d) => d.resource === "namespaces")!;

  const addNamespace = (name: string): void => {
    rv++;
    store.set(keyOf(nsDef, undefined, name), {
      def: nsDef,
      obj: {
        kind: "Namespace",
        apiVersion: "v1",
        metadata: {
          name,
          uid: randomUUID(),
          resourceVersion: String(rv),
          creationTimestamp: nowTime(),
          labels: { "kubernetes.io/metadata.name": name },
        },
        spec: { finalizers: ["kubernetes"] },
        status: { phase: "Active" },
      },
      entries: [],
    });
  };
  const initial = [
    ...SYSTEM_NAMESPACES,
    ...(openshift ? ["openshift-config", "openshift-config-managed"] : []),
    ...(options.namespaces ?? []),
  ];
  for (const ns of new Set(initial)) addNamespace(ns);

  const namespaceExists = (ns: string): boolean => store.has(keyOf(nsDef, undefined, ns));

  function authenticate(req: IncomingMessage): User | undefined {
    const socket = req.socket as TLSSocket;
    const auth = req.headers.authorization;
    if (auth === undefined) {
      const cert = socket.getPeerCertificate?.();
      if (cert !== undefined && cert !== null && Object.keys(cert).length > 0) {
        if (!socket.authorized) return undefined;
        const subject = cert.subject as unknown as Record<string, string | string[]>;
        const cn = subject.CN;
        const o = subject.O;
        const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
        const name = Array.isArray(cn) ? (cn[0] ?? "") : (cn ?? "");
        return { name, groups, write: groups.includes("system:masters") };
      }
      return undefined;
    }
    const [scheme, value] = auth.split(/\s+/, 2);
    if (scheme?.toLowerCase() === "bearer") {
      if (value === adminToken) return { name: "admin", groups: ["system:masters"], write: true };
      if (value === readonlyToken)
        return { name: "readonly", groups: ["system:authenticated"], write: false };
      return undefined;
    }
    if (scheme?.toLowerCase() === "basic" && value !== undefined) {
      const [u, ...p] = Buffer.from(value, "base64").toString("utf8").split(":");
      if (u === basic.username && p.join(":") === basic.password)
        return { name: u, groups: ["system:masters"], write: true };
    }
    return undefined;
  }

  function send(
    res: ServerResponse,
    code: number,
    body: Json,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    res.writeHead(code, {
      "content-type": "application/json",
      "cache-control": "no-cache, private",
      "audit-id": randomUUID(),
      ...headers,
    });
    res.end(text);
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > MAX_BODY)
        throw status(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728");
      chunks.push(b);
    }
    return Buffer.concat(chunks).toString("utf8");
  }

  // ----- discovery

  const apiResource = (d: ResourceDef): JsonObject => ({
    name: d.resource,
    singularName: d.singular,
    namespaced: d.namespaced,
    kind: d.kind,
    verbs: d.verbs,
    ...(d.shortNames.length > 0 ? { shortNames: d.shortNames } : {}),
    storageVersionHash: Buffer.from(d.kind).toString("base64").slice(0, 11),
  });

  const groups = (): (JsonObject & { name: string })[] =>
    openshift
      ? [
          {
            name: "config.openshift.io",
            versions: [{ groupVersion: "config.openshift.io/v1", version: "v1" }],
            preferredVersion: { groupVersion: "config.openshift.io/v1", version: "v1" },
          },
        ]
      : [];

  function discovery(p: string): Json | undefined {
    if (p === "/version") {
      const [, major, minor] = /^v(\d+)\.(\d+)/.exec(gitVersion) ?? ["", "1", "32"];
      return {
        major: major,
        minor: minor,
        gitVersion,
        gitCommit: "0000000000000000000000000000000000000000",
        gitTreeState: "clean",
        buildDate: "2025-01-01T00:00:00Z",
        goVersion: "go1.23.8",
        compiler: "gc",
        platform: "linux/amd64",
      };
    }
    if (p === "/api") {
      return {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [
          { clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${port}` },
        ],
      };
    }
    if (p === "/apis") return { kind: "APIGroupList", apiVersion: "v1", groups: groups() };
    if (p === "/api/v1") {
      return {
        kind: "APIResourceList",
        groupVersion: "v1",
        resources: defs.filter((d) => d.group === "").map(apiResource),
      };
    }
    for (const g of groups()) {
      if (p === `/apis/${g.name}`) return { kind: "APIGroup", apiVersion: "v1", ...g };
      if (p === `/apis/${g.name}/v1`) {
        return {
          kind: "APIResourceList",
          apiVersion: "v1",
          groupVersion: `${g.name}/v1`,
          resources: defs.filter((d) => d.group === g.name).map(apiResource),
        };
      }
    }
    return undefined;
  }

  // ----- OpenAPI v3, as far as kubectl needs it
  //
  // kubectl apply/create validate by default. They first GET /openapi/v3 and
  // the group-version document of the object, looking for a PATCH operation
  // tagged with the object's x-kubernetes-group-version-kind that declares the
  // `fieldValidation` query parameter (cli-runtime QueryParamVerifierV3). When
  // found, kubectl sends fieldValidation=Strict and lets the server validate;
  // it never needs /openapi/v2. Without /openapi/v3 it falls back to
  // /openapi/v2 for client-side validation and fails when that is missing too.

  const gvPaths = (): Map<string, ResourceDef[]> => {
    const m = new Map<string, ResourceDef[]>();
    for (const d of defs) {
      const key = d.group === "" ? "api/v1" : `apis/${d.group}/${d.version}`;
      m.set(key, [...(m.get(key) ?? []), d]);
    }
    return m;
  };

  function openApiV3(p: string): Json | undefined {
    const all = gvPaths();
    if (p === "/openapi/v3") {
      const paths: JsonObject = {};
      for (const key of all.keys()) {
        paths[key] = {
          serverRelativeURL: `/openapi/v3/${key}?hash=${Buffer.from(key).toString("hex").slice(0, 16).toUpperCase()}`,
        };
      }
      return { paths };
    }
    const rds = all.get(p.slice("/openapi/v3/".length));
    if (rds === undefined) return undefined;
    const param = (name: string, description: string): JsonObject => ({
      name,
      in: "query",
      description,
      schema: { type: "string", uniqueItems: true },
    });
    const paths: JsonObject = {};
    for (const d of rds) {
      const root = d.group === "" ? "/api/v1" : `/apis/${d.group}/${d.version}`;
      const itemPath = d.namespaced
        ? `${root}/namespaces/{namespace}/${d.resource}/{name}`
        : `${root}/${d.resource}/{name}`;
      const gvk = { group: d.group, version: d.version, kind: d.kind };
      paths[itemPath] = {
        get: {
          operationId: `read${d.kind}`,
          "x-kubernetes-action": "get",
          "x-kubernetes-group-version-kind": gvk,
          responses: {},
        },
        patch: {
          operationId: `patch${d.kind}`,
          "x-kubernetes-action": "patch",
          "x-kubernetes-group-version-kind": gvk,
          parameters: [
            param("dryRun", "When present, indicates that modifications should not be persisted."),
            param(
              "fieldManager",
              "fieldManager is a name associated with the actor or entity that is making these changes.",
            ),
            param(
              "fieldValidation",
              "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
            ),
            {
              name: "force",
              in: "query",
              description: 'Force is going to "force" Apply requests.',
              schema: { type: "boolean", uniqueItems: true },
            },
          ],
          responses: {},
        },
      };
    }
    return {
      openapi: "3.0.0",
      info: { title: "Kubernetes", version: gitVersion },
      paths,
      components: { schemas: {} },
    };
  }

  // ----- resource routing

  interface Target {
    def: ResourceDef;
    ns?: string;
    name?: string;
  }

  function route(p: string): Target | undefined {
    const segs = p
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
    let rest: string[];
    let group: string;
    if (segs[0] === "api" && segs[1] === "v1") {
      group = "";
      rest = segs.slice(2);
    } else if (segs[0] === "apis" && segs.length >= 3) {
      group = segs[1]!;
      if (segs[2] !== "v1") return undefined;
      rest = segs.slice(3);
    } else return undefined;
    const find = (resource: string | undefined): ResourceDef | undefined =>
      defs.find((d) => d.group === group && d.resource === resource);
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const def = find(rest[2]);
      if (def === undefined || !def.namespaced || rest.length > 4) return undefined;
      return { def, ns: rest[1]!, ...(rest[3] !== undefined ? { name: rest[3] } : {}) };
    }
    const def = find(rest[0]);
    if (def === undefined || rest.length > 2) return undefined;
    return { def, ...(rest[1] !== undefined ? { name: rest[1] } : {}) };
  }

  function authorize(user: User, verb: string, t: Target): void {
    if (user.write || ["get", "list", "watch"].includes(verb)) return;
    throw forbidden(user, verb, t.def, t.ns, t.name);
  }

  function fieldManagerOf(q: URLSearchParams, req: IncomingMessage): string {
    const fm = q.get("fieldManager");
    if (fm !== null && fm !== "") return fm;
    // apiserver: the user agent up to the first "/" (prefixFromUserAgent).
    return (req.headers["user-agent"] ?? "").split("/")[0]!.slice(0, 128);
  }

  function dryRunOf(q: URLSearchParams): boolean {
    const values = q.getAll("dryRun");
    for (const v of values) {
      if (v !== "All")
        throw badRequest(
          `dryRun: Unsupported value: ${JSON.stringify(v)}: supported values: "All"`,
        );
    }
    return values.length > 0;
  }

  type FieldValidation = "Strict" | "Warn" | "Ignore";
  function fieldValidationOf(q: URLSearchParams): FieldValidation {
    const v = q.get("fieldValidation") ?? "Warn";
    if (v !== "Strict" && v !== "Warn" && v !== "Ignore") {
      throw badRequest(
        `fieldValidation: Unsupported value: ${JSON.stringify(v)}: supported values: "Ignore", "Strict", "Warn"`,
      );
    }
    return v;
  }

  function deleteField(obj: JsonObject, field: string): void {
    const parts = field.match(/[^.[\]]+/g) ?? [];
    let cur: Json | undefined = obj;
    for (const p of parts.slice(0, -1)) {
      cur = Array.isArray(cur) ? cur[Number(p)] : isMap(cur) ? cur[p] : undefined;
    }
    const last = parts[parts.length - 1];
    if (last !== undefined && isMap(cur)) delete cur[last];
  }

  /**
   * Validates `obj`: unknown fields are pruned (Ignore), pruned with a warning
   * (Warn) or refused (Strict); other problems are a 422 Invalid.
   */
  function validate(
    def: ResourceDef,
    obj: JsonObject,
    old: JsonObject | undefined,
    mode: FieldValidation,
    apply: boolean,
    warnings: string[],
  ): void {
    const name =
      isMap(obj.metadata) && typeof obj.metadata.name === "string" ? obj.metadata.name : "";
    const problems = def.validate(obj, old);
    const unknown = problems.filter((p) => p.unknown === true);
    if (unknown.length > 0) {
      if (mode === "Strict") {
        throw badRequest(
          apply
            ? unknown.map((u) => `.${u.field}: field not declared in schema`).join(", ")
            : `strict decoding error: ${unknown.map((u) => `unknown field "${u.field}"`).join(", ")}`,
        );
      }
      if (mode === "Warn") for (const u of unknown) warnings.push(`unknown field "${u.field}"`);
      for (const u of unknown) deleteField(obj, u.field);
    }
    const real = problems.filter((p) => p.unknown !== true);
    if (real.length > 0) throw invalid(def, name, real);
  }

  function checkTypeAndName(
    def: ResourceDef,
    body: JsonObject,
    t: Target,
    urlName: string | undefined,
  ): string {
    if (body.apiVersion !== undefined && body.apiVersion !== gv(def)) {
      throw badRequest(
        `the API version in the data (${text(body.apiVersion)}) does not match the expected API version (${gv(def)})`,
      );
    }
    if (body.kind !== undefined && body.kind !== def.kind) {
      throw badRequest(
        `the kind in the data (${text(body.kind)}) does not match the expected kind (${def.kind})`,
      );
    }
    body.apiVersion = gv(def);
    body.kind = def.kind;
    if (!isMap(body.metadata)) body.metadata = {};
    const meta = body.metadata;
    const name = typeof meta.name === "string" ? meta.name : "";
    if (urlName !== undefined && name !== "" && name !== urlName) {
      throw badRequest(
        `the name of the object (${name}) does not match the name on the URL (${urlName})`,
      );
    }
    if (urlName !== undefined && name === "") meta.name = urlName;
    if (def.namespaced) {
      if (typeof meta.namespace === "string" && meta.namespace !== "" && meta.namespace !== t.ns) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      meta.namespace = t.ns!;
    } else delete meta.namespace;
    return typeof meta.name === "string" ? meta.name : "";
  }

  function requireNamespace(t: Target): void {
    if (t.def.namespaced && !namespaceExists(t.ns!)) {
      throw status(404, "NotFound", `namespaces "${t.ns!}" not found`, {
        name: t.ns!,
        kind: "namespaces",
      });
    }
  }

  /** Stores a new state unless nothing changed; returns the rendered object and whether it was a write. */
  function commit(
    t: Target,
    name: string,
    old: Stored | undefined,
    next: JsonObject,
    entries: ManagerEntry[],
    dryRun: boolean,
  ): JsonObject {
    const meta = next.metadata as JsonObject;
    if (old !== undefined) {
      const oldMeta = old.obj.metadata as JsonObject;
      meta.uid = oldMeta.uid!;
      meta.creationTimestamp = oldMeta.creationTimestamp!;
      meta.resourceVersion = oldMeta.resourceVersion!;
      if (oldMeta.generation !== undefined) meta.generation = oldMeta.generation;
      if (old.def.resource === "namespaces") {
        next.status = old.obj.status ?? { phase: "Active" };
        next.spec = old.obj.spec ?? { finalizers: ["kubernetes"] };
      }
      if (jsonEqual(old.obj, next) && entriesEqual(old.entries, entries)) {
        // No-op: the apiserver skips the write; resourceVersion and managedFields times stay.
        return render(old);
      }
      if (!t.def.builtin && !jsonEqual(old.obj.spec, next.spec))
        meta.generation = Number(oldMeta.generation ?? 1) + 1;
    } else {
      meta.uid = randomUUID();
      meta.creationTimestamp = nowTime();
      delete meta.resourceVersion;
      if (!t.def.builtin) meta.generation = 1;
      if (t.def.resource === "namespaces") {
        next.spec = { finalizers: ["kubernetes"] };
        next.status = { phase: "Active" };
        meta.labels = {
          ...(isMap(meta.labels) ? meta.labels : {}),
          "kubernetes.io/metadata.name": name,
        };
      }
    }
    delete meta.managedFields;
    if (!t.def.builtin || t.def.resource === "configmaps") delete next.status;
    const stored: Stored = { def: t.def, obj: next, entries };
    if (dryRun) return render(stored);
    rv++;
    meta.resourceVersion = String(rv);
    store.set(keyOf(t.def, t.ns, name), stored);
    return render(stored);
  }

  function parseManagedFields(v: Json | undefined): ManagerEntry[] | undefined {
    if (!Array.isArray(v) || v.length === 0) return undefined;
    const out: ManagerEntry[] = [];
    for (const e of v) {
      if (!isMap(e) || typeof e.manager !== "string") continue;
      out.push({
        manager: e.manager,
        operation: e.operation === "Apply" ? "Apply" : "Update",
        apiVersion: typeof e.apiVersion === "string" ? e.apiVersion : "v1",
        time: typeof e.time === "string" ? e.time : nowTime(),
        fields: fromFieldsV1(e.fieldsV1),
      });
    }
    return out;
  }

  function list(req: IncomingMessage, t: Target, q: URLSearchParams): Json {
    const labelReqs = parseSelector(q.get("labelSelector") ?? "");
    const fieldReqs = parseFieldSelector(q.get("fieldSelector") ?? "");
    let items = [...store.values()]
      .filter((s) => s.def === t.def)
      .filter(
        (s) =>
          !t.def.namespaced ||
          t.ns === undefined ||
          (s.obj.metadata as JsonObject).namespace === t.ns,
      )
      .filter((s) => {
        const meta = s.obj.metadata as JsonObject;
        return (
          matches(labelReqs, isMap(meta.labels) ? meta.labels : {}) &&
          fieldReqs.every((f) => f(s.obj))
        );
      })
      .sort((a, b) => {
        const ka = `${text((a.obj.metadata as JsonObject).namespace ?? "")}/${text((a.obj.metadata as JsonObject).name)}`;
        const kb = `${text((b.obj.metadata as JsonObject).namespace ?? "")}/${text((b.obj.metadata as JsonObject).name)}`;
        return ka < kb ? -1 : ka > kb ? 1 : 0;
      });
    // Chunking: `continue` is an opaque token; ours holds the offset.
    let start = 0;
    const cont = q.get("continue");
    if (cont !== null && cont !== "") {
      const parsed = Number(
        Buffer.from(cont, "base64")
          .toString("utf8")
          .replace(/^offset:/, ""),
      );
      if (!Number.isInteger(parsed) || parsed < 0)
        throw status(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result.",
        );
      start = parsed;
    }
    const limit = Number(q.get("limit") ?? "0");
    const total = items.length;
    items = items.slice(start);
    let next: string | undefined;
    if (limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      next = Buffer.from(`offset:${start + limit}`).toString("base64");
    }
    const listMeta: JsonObject = {
      resourceVersion: String(rv),
      ...(next !== undefined
        ? { continue: next, remainingItemCount: total - start - items.length }
        : {}),
    };
    if (wantsTable(req)) return table(t.def, items, listMeta);
    return {
      kind: t.def.listKind,
      apiVersion: gv(t.def),
      metadata: listMeta,
      items: items.map((s) => render(s, !t.def.builtin)),
    };
  }

  function wantsTable(req: IncomingMessage): boolean {
    if (!serveTables) return false;
    const accept = req.headers.accept ?? "";
    const first = accept.split(",")[0] ?? "";
    return /as=Table/.test(first) && /g=meta\.k8s\.io/.test(first);
  }

  function table(def: ResourceDef, items: Stored[], listMeta: JsonObject): Json {
    const nameCol = {
      name: "Name",
      type: "string",
      format: "name",
      description: "Name must be unique within a namespace.",
      priority: 0,
    };
    const ageCol = {
      name: "Age",
      type: "string",
      format: "",
      description:
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
      priority: 0,
    };
    const columns: JsonObject[] =
      def.resource === "configmaps"
        ? [
            nameCol,
            {
              name: "Data",
              type: "integer",
              format: "",
              description: "Data contains the configuration data.",
              priority: 0,
            },
            ageCol,
          ]
        : def.resource === "namespaces"
          ? [
              nameCol,
              {
                name: "Status",
                type: "string",
                format: "",
                description: "The status of the namespace",
                priority: 0,
              },
              ageCol,
            ]
          : [nameCol, ageCol];
    return {
      kind: "Table",
      apiVersion: "meta.k8s.io/v1",
      metadata: listMeta,
      columnDefinitions: columns,
      rows: items.map((s) => {
        const meta = s.obj.metadata as JsonObject;
        const cells: Json[] = [meta.name ?? ""];
        if (def.resource === "configmaps") {
          cells.push(
            Object.keys(isMap(s.obj.data) ? s.obj.data : {}).length +
              Object.keys(isMap(s.obj.binaryData) ? s.obj.binaryData : {}).length,
          );
        } else if (def.resource === "namespaces") {
          cells.push(isMap(s.obj.status) ? (s.obj.status.phase ?? "") : "");
        }
        cells.push(age(meta.creationTimestamp));
        const rendered = render(s);
        return {
          cells,
          object: {
            kind: "PartialObjectMetadata",
            apiVersion: "meta.k8s.io/v1",
            metadata: rendered.metadata ?? {},
          },
        };
      }),
    };
  }

  async function handleResource(
    req: IncomingMessage,
    res: ServerResponse,
    user: User,
    t: Target,
    q: URLSearchParams,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const { def } = t;
    const warnings: string[] = [];
    const reply = (code: number, body: Json): void => {
      const headers: Record<string, string> = {};
      if (warnings.length > 0)
        headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(", ");
      send(res, code, body, headers);
    };

    if (t.name === undefined) {
      if (method === "GET") {
        authorize(user, q.get("watch") === "true" || q.get("watch") === "1" ? "watch" : "list", t);
        if (q.get("watch") === "true" || q.get("watch") === "1")
          throw status(
            405,
            "MethodNotAllowed",
            "watch is not supported by the sigferry test API server",
          );
        reply(200, list(req, t, q));
        return;
      }
      if (method === "POST") {
        authorize(user, "create", t);
        const dryRun = dryRunOf(q);
        const mode = fieldValidationOf(q);
        const body = parseJsonBody(await readBody(req), req);
        const name = checkTypeAndName(def, body, t, undefined);
        if (name === "")
          throw invalid(def, "", [
            {
              field: "metadata.name",
              reason: "FieldValueRequired",
              body: "Required value: name or generateName is required",
            },
          ]);
        requireNamespace(t);
        const existing = store.get(keyOf(def, t.ns, name));
        if (existing !== undefined) throw alreadyExists(def, name);
        const next = stripServerFields(body);
        validate(def, next, undefined, mode, false, warnings);
        const entries = updateFields({
          old: undefined,
          next,
          entries: [],
          manager: fieldManagerOf(q, req),
          apiVersion: gv(def),
          now: nowTime(),
        });
        reply(201, commit({ ...t, name }, name, undefined, next, entries, dryRun));
        return;
      }
      throw status(
        405,
        "MethodNotAllowed",
        `the server does not allow this method on the requested resource`,
      );
    }

    const name = t.name;
    const key = keyOf(def, t.ns, name);
    const existing = store.get(key);

    switch (method) {
      case "GET": {
        authorize(user, "get", t);
        if (existing === undefined) throw notFound(def, name);
        if (wantsTable(req)) {
          reply(200, table(def, [existing], { resourceVersion: String(rv) }));
          return;
        }
        reply(200, render(existing));
        return;
      }
      case "DELETE": {
        authorize(user, "delete", t);
        const dryRun = dryRunOf(q);
        if (existing === undefined) throw notFound(def, name);
        if (!dryRun) {
          store.delete(key);
          if (def.resource === "namespaces") {
            for (const [k, s] of store)
              if ((s.obj.metadata as JsonObject).namespace === name) store.delete(k);
          }
        }
        reply(200, {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          details: {
            ...resourceDetails(def, name),
            uid: (existing.obj.metadata as JsonObject).uid ?? "",
          },
        });
        return;
      }
      case "PUT": {
        authorize(user, "update", t);
        const dryRun = dryRunOf(q);
        const mode = fieldValidationOf(q);
        const body = parseJsonBody(await readBody(req), req);
        checkTypeAndName(def, body, t, name);
        if (existing === undefined) {
          requireNamespace(t);
          throw notFound(def, name);
        }
        const sentRv = (body.metadata as JsonObject).resourceVersion;
        if (
          typeof sentRv === "string" &&
          sentRv !== "" &&
          sentRv !== (existing.obj.metadata as JsonObject).resourceVersion
        ) {
          throw staleConflict(def, name);
        }
        const sentEntries = parseManagedFields((body.metadata as JsonObject).managedFields);
        const next = stripServerFields(body);
        validate(def, next, existing.obj, mode, false, warnings);
        const entries = updateFields({
          old: existing.obj,
          next,
          entries: sentEntries ?? existing.entries,
          manager: fieldManagerOf(q, req),
          apiVersion: gv(def),
          now: nowTime(),
        });
        reply(200, commit(t, name, existing, next, entries, dryRun));
        return;
      }
      case "PATCH": {
        authorize(user, "patch", t);
        const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        const dryRun = dryRunOf(q);
        const mode = fieldValidationOf(q);
        const accepted = [
          "application/json-patch+json",
          "application/merge-patch+json",
          ...(def.builtin ? ["application/strategic-merge-patch+json"] : []),
          "application/apply-patch+yaml",
        ];
        if (!accepted.includes(contentType)) {
          throw status(
            415,
            "UnsupportedMediaType",
            `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`,
          );
        }
        const text = await readBody(req);
        if (contentType === "application/apply-patch+yaml") {
          const manager = q.get("fieldManager") ?? "";
          if (manager === "") {
            throw status(
              422,
              "Invalid",
              `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`,
              {
                group: "meta.k8s.io",
                kind: "PatchOptions",
                causes: [
                  {
                    reason: "FieldValueRequired",
                    message: "Required value: is required for apply patch",
                    field: "fieldManager",
                  },
                ],
              },
            );
          }
          let doc: unknown;
          try {
            doc = parseYaml(text);
          } catch (err) {
            throw badRequest(`error decoding YAML: ${(err as Error).message}`);
          }
          if (!isMap(doc)) throw badRequest("the body of an apply patch must be an object");
          const applied = doc;
          if (isMap(applied.metadata) && applied.metadata.managedFields !== undefined) {
            throw badRequest("metadata.managedFields must be nil");
          }
          checkTypeAndName(def, applied, t, name);
          checkBinaryData(def, applied);
          if (existing === undefined) requireNamespace(t);
          const appliedClean = stripServerFields(applied);
          // Prune or refuse unknown fields in the applied configuration itself.
          const pre = def.validate(appliedClean, undefined).filter((p) => p.unknown === true);
          if (pre.length > 0) {
            if (mode === "Strict")
              throw badRequest(
                pre.map((u) => `.${u.field}: field not declared in schema`).join(", "),
              );
            if (mode === "Warn") for (const u of pre) warnings.push(`unknown field "${u.field}"`);
            for (const u of pre) deleteField(appliedClean, u.field);
          }
          const force = q.get("force") === "true";
          const result = applyFields({
            live: existing?.obj,
            applied: appliedClean,
            entries: existing?.entries ?? [],
            manager,
            apiVersion: gv(def),
            force,
            now: nowTime(),
          });
          if ("conflicts" in result) throw applyConflict(result.conflicts);
          validate(def, result.object, existing?.obj, "Ignore", true, warnings);
          reply(
            existing === undefined ? 201 : 200,
            commit(t, name, existing, result.object, result.entries, dryRun),
          );
          return;
        }
        if (q.get("force") !== null) {
          throw status(
            422,
            "Invalid",
            `PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch`,
            {
              group: "meta.k8s.io",
              kind: "PatchOptions",
              causes: [
                {
                  reason: "FieldValueForbidden",
                  message: "Forbidden: may not be specified for non-apply patch",
                  field: "force",
                },
              ],
            },
          );
        }
        if (existing === undefined) {
          requireNamespace(t);
          throw notFound(def, name);
        }
        let patch: Json;
        try {
          patch = JSON.parse(text) as Json;
        } catch (err) {
          throw badRequest(`error decoding patch: ${(err as Error).message}`);
        }
        const current = render(existing);
        delete (current.metadata as JsonObject).managedFields;
        const patched =
          contentType === "application/json-patch+json"
            ? jsonPatch(current, patch)
            : (mergePatch(current, patch) as JsonObject);
        if (!isMap(patched))
          throw badRequest("the patch turned the object into something that is not an object");
        checkTypeAndName(def, patched, t, name);
        checkBinaryData(def, patched);
        const next = stripServerFields(patched);
        validate(def, next, existing.obj, mode, false, warnings);
        const entries = updateFields({
          old: existing.obj,
          next,
          entries: existing.entries,
          manager: fieldManagerOf(q, req),
          apiVersion: gv(def),
          now: nowTime(),
        });
        reply(200, commit(t, name, existing, next, entries, dryRun));
        return;
      }
      default:
        throw status(
          405,
          "MethodNotAllowed",
          "the server does not allow this method on the requested resource",
        );
    }
  }

  /** Create and update bodies: JSON or YAML. Protobuf (kubectl's typed commands such as `create configmap`) is not decoded here. */
  function parseJsonBody(text: string, req: IncomingMessage): JsonObject {
    const type = (req.headers["content-type"] ?? "application/json")
      .split(";")[0]!
      .trim()
      .toLowerCase();
    if (type !== "application/json" && type !== "application/yaml" && type !== "") {
      throw status(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (the sigferry test API server does not decode ${type})`,
      );
    }
    let body: unknown;
    try {
      body = text.trim().startsWith("{") ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      throw badRequest(`error decoding body: ${(err as Error).message}`);
    }
    if (!isMap(body)) throw badRequest("the request body must be an object");
    return body;
  }

  /** binaryData values are []byte in Go: anything that is not base64 fails decoding (400). */
  function checkBinaryData(def: ResourceDef, obj: JsonObject): void {
    if (def.resource !== "configmaps" || !isMap(obj.binaryData)) return;
    for (const [k, v] of Object.entries(obj.binaryData)) {
      if (
        typeof v !== "string" ||
        !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(v)
      ) {
        throw badRequest(
          `ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data in binaryData[${k}]`,
        );
      }
    }
    if (isMap(obj.data)) {
      for (const [k, v] of Object.entries(obj.data)) {
        if (typeof v !== "string") {
          throw badRequest(
            `ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal ${typeof v} into Go struct field ConfigMap.data of type string (data[${k}])`,
          );
        }
      }
    }
  }

  function stripServerFields(body: JsonObject): JsonObject {
    const out = structuredClone(body);
    const meta = isMap(out.metadata) ? out.metadata : {};
    for (const k of [
      "uid",
      "resourceVersion",
      "creationTimestamp",
      "generation",
      "managedFields",
      "selfLink",
    ])
      delete meta[k];
    out.metadata = meta;
    return out;
  }

  function applyConflict(conflicts: { manager: ManagerEntry; path: string[] }[]): ApiError {
    const printManager = (e: ManagerEntry): string =>
      e.operation === "Update"
        ? `${JSON.stringify(e.manager)} using ${e.apiVersion}`
        : JSON.stringify(e.manager);
    let message: string;
    if (conflicts.length === 1) {
      const c = conflicts[0]!;
      message = `Apply failed with 1 conflict: conflict with ${printManager(c.manager)}: ${pathString(c.path)}`;
    } else {
      const byManager = new Map<string, string[]>();
      for (const c of conflicts) {
        const m = printManager(c.manager);
        byManager.set(m, [...(byManager.get(m) ?? []), pathString(c.path)]);
      }
      const lines: string[] = [];
      for (const m of [...byManager.keys()].sort()) {
        lines.push(`conflicts with ${m}:`);
        for (const p of byManager.get(m)!) lines.push(`- ${p}`);
      }
      message = `Apply failed with ${conflicts.length} conflicts: ${lines.join("\n")}`;
    }
    return status(409, "Conflict", message, {
      causes: conflicts.map((c) => ({
        reason: "FieldManagerConflict",
        message: `conflict with ${printManager(c.manager)}`,
        field: pathString(c.path),
      })),
    });
  }

  // ----- the HTTP handler

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    seen: SeenRequest,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    const p = url.pathname.replace(/\/+$/, "") || "/";
    if (throttle > 0) {
      throttle--;
      throw new ApiError(
        429,
        {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: "Too many requests, please try again later.",
          reason: "TooManyRequests",
          details: { retryAfterSeconds: 1 },
          code: 429,
        },
        { "retry-after": "1" },
      );
    }
    const user = authenticate(req);
    if (user === undefined) throw unauthorized();
    seen.user = user.name;
    if (p === "/healthz" || p === "/readyz" || p === "/livez") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("ok");
      return;
    }
    if (p.startsWith("/openapi/")) {
      const doc = serveOpenApi ? openApiV3(p) : undefined;
      if (doc === undefined)
        throw status(404, "NotFound", "the server could not find the requested resource");
      send(res, 200, doc);
      return;
    }
    if (req.method === "GET") {
      const doc = discovery(p);
      if (doc !== undefined) {
        send(res, 200, doc);
        return;
      }
    }
    const t = route(p);
    if (t === undefined)
      throw status(404, "NotFound", "the server could not find the requested resource");
    await handleResource(req, res, user, t, url.searchParams);
  }

  const server = https.createServer(
    {
      key: pki.server.keyPem,
      cert: pki.server.certPem,
      ca: pki.caPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      const url = new URL(req.url ?? "/", "https://127.0.0.1");
      const seen: SeenRequest = {
        method: req.method ?? "",
        path: url.pathname,
        query: url.search,
        accept: req.headers.accept ?? "",
        contentType: req.headers["content-type"] ?? "",
        userAgent: req.headers["user-agent"] ?? "",
        user: "",
        status: 0,
      };
      requests.push(seen);
      res.on("finish", () => {
        seen.status = res.statusCode;
      });
      handle(req, res, seen).catch((err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof ApiError) {
          send(res, err.code, err.body, err.headers);
          return;
        }
        send(
          res,
          500,
          status(500, "InternalError", `Internal error occurred: ${(err as Error).message}`).body,
        );
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;

  return {
    url,
    caFile: pki.caFile,
    caPem: pki.caPem,
    adminToken,
    readonlyToken,
    clientCert,
    basic,
    requests,
    objects: () =>
      [...store.values()]
        .map((s) => render(s))
        .sort((a, b) => (JSON.stringify(a.metadata) < JSON.stringify(b.metadata) ? -1 : 1)),
    async writeKubeconfig(dir: string, spec: KubeconfigSpec = {}): Promise<string> {
      const context = spec.context ?? "test";
      const cluster: JsonObject = { server: url };
      if (spec.insecure === true) cluster["insecure-skip-tls-verify"] = true;
      else if (spec.noCa !== true) {
        if (spec.caFile === true) cluster["certificate-authority"] = pki.caFile;
        else cluster["certificate-authority-data"] = Buffer.from(pki.caPem).toString("base64");
      }
      const user: JsonObject = {};
      if (spec.token !== undefined) user.token = spec.token;
      if (spec.tokenFile !== undefined) user.tokenFile = spec.tokenFile;
      if (spec.clientCert !== undefined && spec.clientCert !== false) {
        const cert = spec.clientCert === true ? clientCert : spec.clientCert;
        user["client-certificate-data"] = Buffer.from(cert.certPem).toString("base64");
        user["client-key-data"] = Buffer.from(cert.keyPem).toString("base64");
      }
      if (spec.basic === true) {
        user.username = basic.username;
        user.password = basic.password;
      }
      const doc = {
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "test-cluster", cluster }],
        users: [{ name: "test-user", user }],
        contexts: [
          {
            name: context,
            context: {
              cluster: "test-cluster",
              user: "test-user",
              ...(spec.namespace !== undefined ? { namespace: spec.namespace } : {}),
            },
          },
        ],
        "current-context": context,
        preferences: {},
      };
      const file = path.join(dir, spec.fileName ?? "kubeconfig");
      await writeFile(file, stringifyYaml(doc), { mode: 0o600 });
      return file;
    },
    async stop(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pki.remove();
    },
  };
}
