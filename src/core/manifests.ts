/**
 * The cluster resources sigferry generates, and validators that hold them (and
 * any other copy, such as Red Hat's own `openshift` policy) to the rules the
 * API server enforces. Pure: no I/O.
 *
 * - The signature ConfigMap the CVO reads (library-go pkg/verify/store/configmap).
 * - ImageDigestMirrorSet and ClusterImagePolicy, `config.openshift.io/v1`, as
 *   defined by openshift/api config/v1 types_image_digest_mirror_set.go,
 *   types_cluster_image_policy.go and types_image_policy.go (the kubebuilder
 *   markers and CEL rules there are what the validators below check).
 * - Problems are reported with Kubernetes' own cause types and field paths
 *   (k8s.io/apimachinery pkg/util/validation/field), so a message reads like
 *   the one `oc apply` would print.
 */
import { yamlLib } from "./yaml.js";
import { SigferryError } from "../errors.js";
import { type Digest, digestDashed, isDigest } from "./digest.js";

/** Where the CVO looks for signature ConfigMaps. */
export const SIGNATURE_NAMESPACE = "openshift-config-managed";
/** The label (key only; the value is empty) that marks a signature ConfigMap. */
export const SIGNATURE_LABEL = "release.openshift.io/verification-signatures";
/** The OpenShift release repository: the default mirror source and policy scope. */
export const OCP_RELEASE_REPO = "quay.io/openshift-release-dev/ocp-release";
/** The repository of the release's component images; mapped only when asked. */
export const OCP_ART_DEV_REPO = "quay.io/openshift-release-dev/ocp-v4.0-art-dev";
/** The most a ConfigMap may hold: 1 MiB (Kubernetes core validation MaxSecretSize). */
export const CONFIGMAP_MAX_BYTES = 1024 * 1024;
/** The group/version of ImageDigestMirrorSet and ClusterImagePolicy. */
export const CONFIG_OPENSHIFT_V1 = "config.openshift.io/v1";

/** Object metadata as sigferry writes and reads it. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  managedFields?: unknown[];
  [key: string]: unknown;
}

/** Any Kubernetes object: type, metadata and the rest. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** A core/v1 ConfigMap. */
export interface ConfigMap extends KubeObject {
  apiVersion: "v1";
  kind: "ConfigMap";
  immutable?: boolean;
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

// ---------------------------------------------------------------------------
// The signature ConfigMap

/** The bytes a generated object takes on the wire: UTF-8 length of its compact JSON. */
export function serializedSize(obj: unknown): number {
  return Buffer.byteLength(JSON.stringify(obj), "utf8");
}

/**
 * The ConfigMap the CVO reads for one release digest (DOMAIN.md, "The
 * ConfigMap the CVO reads"): name `sha256-<hex>`, namespace
 * openshift-config-managed, the verification-signatures label with an empty
 * value, and `binaryData` keys `sha256-<hex>-1..N` holding each signature
 * base64-encoded, in the order given.
 *
 * Size: we count the UTF-8 bytes of the object's compact JSON (what the client
 * sends), and refuse more than 1 MiB with CONFIGMAP_TOO_LARGE. The API server
 * itself counts only the decoded values against the same 1 MiB; the JSON is
 * always larger (base64 adds a third, plus keys and metadata), so an object
 * that passes here is never refused for size, and stays well inside etcd's
 * 1.5 MiB request limit with its managedFields added.
 */
export function signatureConfigMap(digest: Digest, signatures: Uint8Array[]): ConfigMap {
  if (!isDigest(digest)) {
    throw new SigferryError("INVALID_DIGEST", `"${String(digest)}" is not a sha256 digest`);
  }
  if (signatures.length === 0) {
    throw new SigferryError(
      "SIGNATURE_MISSING",
      `no signatures for ${digest}: a signature ConfigMap needs at least one`,
      { details: { digest } },
    );
  }
  const prefix = digestDashed(digest);
  const binaryData: Record<string, string> = {};
  signatures.forEach((sig, i) => {
    binaryData[`${prefix}-${i + 1}`] = Buffer.from(
      sig.buffer,
      sig.byteOffset,
      sig.byteLength,
    ).toString("base64");
  });
  const cm: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: prefix,
      namespace: SIGNATURE_NAMESPACE,
      labels: { [SIGNATURE_LABEL]: "" },
    },
    binaryData,
  };
  const size = serializedSize(cm);
  if (size > CONFIGMAP_MAX_BYTES) {
    throw new SigferryError(
      "CONFIGMAP_TOO_LARGE",
      `the signature ConfigMap for ${digest} would take ${size} bytes (${signatures.length} signatures); a ConfigMap may hold at most ${CONFIGMAP_MAX_BYTES}`,
      { details: { digest, size, limit: CONFIGMAP_MAX_BYTES } },
    );
  }
  return cm;
}

// ---------------------------------------------------------------------------
// Deterministic YAML

/** Field order of the objects we write: type first, then metadata, then content. */
const TOP_ORDER = ["apiVersion", "kind", "metadata", "immutable", "spec", "data", "binaryData"];
const META_ORDER = ["name", "namespace", "labels", "annotations"];
/** Maps whose keys are data, not schema: sorted so any input order gives the same text. */
const SORTED_MAPS = new Set(["data", "binaryData", "labels", "annotations"]);

/** Compares keys so that `-2` sorts before `-10`, the same on every machine (no locale). */
function naturalCompare(a: string, b: string): number {
  const ca = a.match(/\d+|\D+/g) ?? [];
  const cb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i]!;
    const y = cb[i]!;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const tx = x.replace(/^0+/, "");
      const ty = y.replace(/^0+/, "");
      if (tx.length !== ty.length) return tx.length - ty.length;
      if (tx !== ty) return tx < ty ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ca.length - cb.length;
}

function ordered(obj: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of order) if (k in obj) out[k] = obj[k];
  for (const k of Object.keys(obj)) if (!(k in out)) out[k] = obj[k];
  return out;
}

function canonical(value: unknown, key: string | undefined, depth: number): unknown {
  if (Array.isArray(value)) return value.map((v) => canonical(v, undefined, depth + 1));
  if (typeof value !== "object" || value === null) return value;
  const obj = value as Record<string, unknown>;
  let shaped: Record<string, unknown>;
  if (depth === 0) shaped = ordered(obj, TOP_ORDER);
  else if (depth === 1 && key === "metadata") shaped = ordered(obj, META_ORDER);
  else if (key !== undefined && SORTED_MAPS.has(key)) {
    shaped = {};
    for (const k of Object.keys(obj).sort(naturalCompare)) shaped[k] = obj[k];
  } else shaped = obj;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(shaped)) out[k] = canonical(v, k, depth + 1);
  return out;
}

/**
 * Deterministic YAML for a ConfigMap (or any object sigferry generates): type,
 * metadata, content in that order; data/binaryData/labels/annotations keys in
 * natural order; no line folding (base64 stays on one line); YAML 1.1 quoting,
 * so `yes`/`on` stay strings for the YAML 1.1 parser inside kubectl and oc.
 */
export function configMapToYaml(obj: object): string {
  return yamlLib().stringify(canonical(obj, undefined, 0), {
    lineWidth: 0,
    minContentWidth: 0,
    indentSeq: false,
    version: "1.1",
  });
}

/** A sha256-<hex> name: plain in YAML (no indicator, not a number, bool or null). */
const PLAIN_NAME = /^sha256-[0-9a-f]{64}$/;

/**
 * Base64 text that YAML 1.1 reads as a plain string: it starts with a letter or
 * digit, holds a character no YAML 1.1 number can hold (numbers use only
 * digits, a-f, x, b, `_`, `+`, `-`, `.`, `:`), and is longer than every bool and
 * null word (`false`, `FALSE`: five). Base64 has no `.`, `-` or `:`, so it can be
 * no float, timestamp or sexagesimal either.
 */
function plainBase64(value: string): boolean {
  return (
    value.length > 5 &&
    /^[A-Za-z0-9][A-Za-z0-9+/]*={0,2}$/.test(value) &&
    /[G-WYZg-wyz+/]/.test(value)
  );
}

/**
 * The YAML of a signature ConfigMap, written out directly: the same text
 * configMapToYaml gives for it (tests hold the two equal on real signatures),
 * without building a YAML document, which costs more than everything else
 * sigferry does with a ConfigMap. Undefined when `cm` is not exactly the shape
 * signatureConfigMap builds (keys `<name>-1..N` in order) or a value would need
 * quoting; callers then use configMapToYaml.
 */
export function signatureConfigMapYaml(cm: ConfigMap): string | undefined {
  const md = cm.metadata;
  const data = cm.binaryData;
  if (
    Object.keys(cm).join() !== "apiVersion,kind,metadata,binaryData" ||
    cm.apiVersion !== "v1" ||
    cm.kind !== "ConfigMap" ||
    Object.keys(md).join() !== "name,namespace,labels" ||
    !PLAIN_NAME.test(md.name) ||
    md.namespace !== SIGNATURE_NAMESPACE ||
    md.labels === undefined ||
    Object.keys(md.labels).join() !== SIGNATURE_LABEL ||
    md.labels[SIGNATURE_LABEL] !== "" ||
    data === undefined
  )
    return undefined;
  const keys = Object.keys(data);
  if (keys.length === 0) return undefined;
  let text =
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${md.name}\n` +
    `  namespace: ${SIGNATURE_NAMESPACE}\n  labels:\n    ${SIGNATURE_LABEL}: ""\nbinaryData:\n`;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const value = data[key]!;
    if (key !== `${md.name}-${i + 1}` || typeof value !== "string" || !plainBase64(value))
      return undefined;
    text += `  ${key}: ${value}\n`;
  }
  return text;
}

/** The same deterministic YAML, under a name that fits the non-ConfigMap objects. */
export const manifestToYaml = configMapToYaml;

// ---------------------------------------------------------------------------
// Problems, in Kubernetes' terms

/** Kubernetes StatusCause types (k8s.io/apimachinery pkg/util/validation/field ErrorType), plus unknown fields. */
export type ProblemReason =
  | "FieldValueRequired"
  | "FieldValueInvalid"
  | "FieldValueNotSupported"
  | "FieldValueTooLong"
  | "FieldValueTooMany"
  | "FieldValueDuplicate"
  | "FieldValueForbidden"
  | "FieldValueTypeInvalid"
  | "FieldValueUnknown";

/** One reason the API server would refuse (or silently prune) part of an object. */
export interface ManifestProblem {
  /** Field path as Kubernetes writes it: `spec.scopes[0]`, `metadata.name`. */
  field: string;
  reason: ProblemReason;
  /** What is wrong, without the field and value. */
  detail: string;
  /** The offending value as shown in the message (CEL rules show the type name, as the server does). */
  value?: unknown;
}

/** One problem as the API server words it: `spec.scopes[0]: Invalid value: "x": detail`. */
export function formatProblem(p: ManifestProblem): string {
  const v = JSON.stringify(p.value);
  const withDetail = (s: string): string => (p.detail === "" ? s : `${s}: ${p.detail}`);
  switch (p.reason) {
    case "FieldValueRequired":
      return `${p.field}: ${withDetail("Required value")}`;
    case "FieldValueInvalid":
      return `${p.field}: ${withDetail(`Invalid value: ${v}`)}`;
    case "FieldValueNotSupported":
      return `${p.field}: Unsupported value: ${v}: ${p.detail}`;
    case "FieldValueTooLong":
      return `${p.field}: ${withDetail("Too long")}`;
    case "FieldValueTooMany":
      return `${p.field}: ${withDetail(`Too many: ${v}`)}`;
    case "FieldValueDuplicate":
      return `${p.field}: Duplicate value: ${v}`;
    case "FieldValueForbidden":
      return `${p.field}: ${withDetail("Forbidden")}`;
    case "FieldValueTypeInvalid":
      return `${p.field}: ${withDetail(`Invalid value: ${v}`)}`;
    case "FieldValueUnknown":
      return `unknown field "${p.field}"`;
  }
}

/** Throws MANIFEST_INVALID listing every problem, or returns `obj` when there are none. */
function assertValid<T>(kind: string, name: string, obj: T, problems: ManifestProblem[]): T {
  if (problems.length === 0) return obj;
  const lines = problems.map(formatProblem);
  throw new SigferryError(
    "MANIFEST_INVALID",
    `${kind} "${name}" would be invalid: ${lines.length === 1 ? lines[0]! : `[${lines.join(", ")}]`}`,
    { details: { problems: lines } },
  );
}

// ---------------------------------------------------------------------------
// Patterns from the openshift/api markers, rewritten without nested
// quantifiers. The CRDs' `(?:(?:[._]|__|[-]*)[a-z0-9]+)+` lets `[-]*` match
// nothing, so a backtracking engine (JavaScript's; the API server uses
// linear-time RE2) could take exponential time on a long bad path. Allowing
// an empty separator adds nothing `[a-z0-9]+` does not already match, so
// `(?:(?:[._]|__|-+)[a-z0-9]+)*` accepts exactly the same strings.

const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const PATH = `(?:/${PATH_COMPONENT})*`;
const FQDN = `${LABEL}(?:\\.${LABEL})+`;
const PORT = "(?::[0-9]+)?";

/** ImageScope, non-wildcard form (types_image_policy.go). */
export const SCOPE_PATTERN = new RegExp(
  `^(?:(?:${FQDN}${PORT})|(?:localhost${PORT}))${PATH}` +
    `(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$`,
);
/** ImageScope, wildcard form: `*.` then a domain. */
export const WILDCARD_SCOPE_PATTERN = new RegExp(`^\\*(?:\\.${LABEL})+$`);
/** IdentityRepositoryPrefix: a repository or prefix, no tag or digest. */
export const IDENTITY_PREFIX_PATTERN = new RegExp(
  `^(?:(?:${FQDN}${PORT})|(?:localhost${PORT}))${PATH}$`,
);
/** ImageDigestMirrors.source (types_image_digest_mirror_set.go). */
export const MIRROR_SOURCE_PATTERN = new RegExp(
  `^\\*(?:\\.${LABEL})+$|^${LABEL}(?:\\.${LABEL})*${PORT}${PATH}$`,
);
/** ImageMirror. */
export const IMAGE_MIRROR_PATTERN = new RegExp(`^${LABEL}(?:\\.${LABEL})*${PORT}${PATH}$`);

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/** The messages Kubernetes gives for a name that is not a DNS-1123 subdomain (empty when it is one). */
export function dns1123SubdomainErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 253) errs.push("must be no more than 253 characters");
  if (!DNS1123_SUBDOMAIN.test(value)) errs.push(DNS1123_SUBDOMAIN_MSG);
  return errs;
}

/** OpenAPI `format: byte`: standard base64 with padding (line breaks ignored, as Go's decoder does). */
function isBase64(value: string): boolean {
  return /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(
    value.replace(/[\r\n]/g, ""),
  );
}

function decodeBase64(value: string): string {
  return Buffer.from(value, "base64").toString("utf8");
}

/** The base64 `keyData` form of a PEM public key (what ClusterImagePolicy expects). */
export function pemToKeyData(pem: string): string {
  return Buffer.from(pem, "utf8").toString("base64");
}

// ---------------------------------------------------------------------------
// A tiny schema walker: enough structure to report unknown, missing and
// mistyped fields the way the API server does.

type Problems = ManifestProblem[];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v === "number" ? "number" : typeof v;
}

/** Checks that `obj` is an object with only `known` fields and all `required` ones. */
function checkObject(
  out: Problems,
  field: string,
  obj: unknown,
  known: string[],
  required: string[],
): obj is Record<string, unknown> {
  if (!isObject(obj)) {
    out.push({
      field,
      reason: "FieldValueTypeInvalid",
      detail: "must be of type object",
      value: typeName(obj),
    });
    return false;
  }
  for (const k of Object.keys(obj)) {
    if (!known.includes(k))
      out.push({ field: `${field}.${k}`, reason: "FieldValueUnknown", detail: "" });
  }
  for (const k of required) {
    if (obj[k] === undefined)
      out.push({ field: `${field}.${k}`, reason: "FieldValueRequired", detail: "" });
  }
  return true;
}

function checkString(out: Problems, field: string, v: unknown, maxLength?: number): v is string {
  if (typeof v !== "string") {
    out.push({
      field,
      reason: "FieldValueTypeInvalid",
      detail: "must be of type string",
      value: typeName(v),
    });
    return false;
  }
  if (maxLength !== undefined && v.length > maxLength) {
    out.push({
      field,
      reason: "FieldValueTooLong",
      detail: `may not be more than ${maxLength} bytes`,
      value: v,
    });
    return false;
  }
  return true;
}

function checkEnum(out: Problems, field: string, v: unknown, values: readonly string[]): boolean {
  if (!checkString(out, field, v)) return false;
  if (!values.includes(v)) {
    out.push({
      field,
      reason: "FieldValueNotSupported",
      detail: `supported values: ${values.map((x) => JSON.stringify(x)).join(", ")}`,
      value: v,
    });
    return false;
  }
  return true;
}

/** A CEL rule failure: the server shows the value's type, not the value. */
function celFailure(out: Problems, field: string, type: string, detail: string): void {
  out.push({ field, reason: "FieldValueInvalid", detail, value: type });
}

function checkMetadata(out: Problems, meta: unknown): string {
  if (!isObject(meta)) {
    out.push({ field: "metadata", reason: "FieldValueRequired", detail: "" });
    return "";
  }
  const name = meta.name;
  if (typeof name !== "string" || name === "") {
    out.push({
      field: "metadata.name",
      reason: "FieldValueRequired",
      detail: "name or generateName is required",
    });
    return "";
  }
  for (const e of dns1123SubdomainErrors(name)) {
    out.push({ field: "metadata.name", reason: "FieldValueInvalid", detail: e, value: name });
  }
  return name;
}

function checkType(out: Problems, obj: Record<string, unknown>, kind: string): void {
  if (obj.apiVersion !== CONFIG_OPENSHIFT_V1) {
    out.push({
      field: "apiVersion",
      reason: "FieldValueNotSupported",
      detail: `supported values: "${CONFIG_OPENSHIFT_V1}"`,
      value: obj.apiVersion,
    });
  }
  if (obj.kind !== kind) {
    out.push({
      field: "kind",
      reason: "FieldValueNotSupported",
      detail: `supported values: "${kind}"`,
      value: obj.kind,
    });
  }
}

/** Checks a `format: byte` field: string, at most `max` characters, valid base64. */
function checkBytes(out: Problems, field: string, v: unknown, max = 8192): v is string {
  if (!checkString(out, field, v, max)) return false;
  if (!isBase64(v)) {
    out.push({
      field,
      reason: "FieldValueInvalid",
      detail: "must be base64-encoded (format: byte)",
      value: v,
    });
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// ImageDigestMirrorSet

/** What the node does when every mirror fails (`mirrorSourcePolicy`). */
export type MirrorSourcePolicy = "NeverContactSource" | "AllowContactingSource";
const MIRROR_SOURCE_POLICIES = ["NeverContactSource", "AllowContactingSource"] as const;

/** One `spec.imageDigestMirrors` item. */
export interface ImageDigestMirrors {
  source: string;
  mirrors?: string[];
  mirrorSourcePolicy?: MirrorSourcePolicy;
}

/** A config.openshift.io/v1 ImageDigestMirrorSet. */
export interface ImageDigestMirrorSet extends KubeObject {
  apiVersion: typeof CONFIG_OPENSHIFT_V1;
  kind: "ImageDigestMirrorSet";
  spec: { imageDigestMirrors: ImageDigestMirrors[] };
}

/** Options for imageDigestMirrorSet. */
export interface ImageDigestMirrorSetOptions {
  name: string;
  /** Mirror repositories, in the order nodes should try them. */
  mirrors: string[];
  /** Defaults to quay.io/openshift-release-dev/ocp-release. */
  source?: string;
  /** More sources mapped to the same mirrors, e.g. OCP_ART_DEV_REPO; none unless asked. */
  additionalSources?: string[];
  mirrorSourcePolicy?: MirrorSourcePolicy;
}

/**
 * An ImageDigestMirrorSet that sends pulls of the release repository (and any
 * additional source asked for) to `mirrors`; throws MANIFEST_INVALID when the
 * result would not pass validateImageDigestMirrorSet or has no mirror.
 */
export function imageDigestMirrorSet(opts: ImageDigestMirrorSetOptions): ImageDigestMirrorSet {
  const sources = [opts.source ?? OCP_RELEASE_REPO, ...(opts.additionalSources ?? [])];
  const obj: ImageDigestMirrorSet = {
    apiVersion: CONFIG_OPENSHIFT_V1,
    kind: "ImageDigestMirrorSet",
    metadata: { name: opts.name },
    spec: {
      imageDigestMirrors: sources.map((source) => ({
        source,
        mirrors: [...opts.mirrors],
        ...(opts.mirrorSourcePolicy === undefined
          ? {}
          : { mirrorSourcePolicy: opts.mirrorSourcePolicy }),
      })),
    },
  };
  const problems = validateImageDigestMirrorSet(obj);
  if (opts.mirrors.length === 0) {
    problems.push({
      field: "spec.imageDigestMirrors[0].mirrors",
      reason: "FieldValueRequired",
      detail: "at least one mirror",
    });
  }
  const seen = new Set<string>();
  sources.forEach((s, i) => {
    if (seen.has(s)) {
      problems.push({
        field: `spec.imageDigestMirrors[${i}].source`,
        reason: "FieldValueDuplicate",
        detail: "",
        value: s,
      });
    }
    seen.add(s);
  });
  return assertValid("ImageDigestMirrorSet", opts.name, obj, problems);
}

/** Every reason the API server would refuse (or prune part of) an ImageDigestMirrorSet; empty when it is valid. */
export function validateImageDigestMirrorSet(obj: unknown): ManifestProblem[] {
  const out: Problems = [];
  if (
    !checkObject(out, "<root>", obj, ["apiVersion", "kind", "metadata", "spec", "status"], ["spec"])
  )
    return out;
  checkType(out, obj, "ImageDigestMirrorSet");
  checkMetadata(out, obj.metadata);
  const spec = obj.spec;
  if (spec === undefined || !checkObject(out, "spec", spec, ["imageDigestMirrors"], [])) return out;
  const list = spec.imageDigestMirrors;
  if (list === undefined) return out;
  if (!Array.isArray(list)) {
    out.push({
      field: "spec.imageDigestMirrors",
      reason: "FieldValueTypeInvalid",
      detail: "must be of type array",
      value: typeName(list),
    });
    return out;
  }
  list.forEach((item: unknown, i) => {
    const f = `spec.imageDigestMirrors[${i}]`;
    if (!checkObject(out, f, item, ["source", "mirrors", "mirrorSourcePolicy"], ["source"])) return;
    if (item.source !== undefined && checkString(out, `${f}.source`, item.source)) {
      if (!MIRROR_SOURCE_PATTERN.test(item.source)) {
        out.push({
          field: `${f}.source`,
          reason: "FieldValueInvalid",
          detail:
            "must be host[:port], host[:port]/namespace[/namespace…][/repo] or *.host (no tag or digest)",
          value: item.source,
        });
      }
    }
    if (item.mirrors !== undefined) {
      if (!Array.isArray(item.mirrors)) {
        out.push({
          field: `${f}.mirrors`,
          reason: "FieldValueTypeInvalid",
          detail: "must be of type array",
          value: typeName(item.mirrors),
        });
      } else {
        const seen = new Set<string>();
        item.mirrors.forEach((m: unknown, j) => {
          const mf = `${f}.mirrors[${j}]`;
          if (!checkString(out, mf, m)) return;
          if (!IMAGE_MIRROR_PATTERN.test(m)) {
            out.push({
              field: mf,
              reason: "FieldValueInvalid",
              detail:
                "must be host[:port] or host[:port]/namespace[/namespace…][/repo] (no scheme, tag, digest or wildcard)",
              value: m,
            });
          }
          // listType=set: the server refuses duplicates.
          if (seen.has(m))
            out.push({ field: mf, reason: "FieldValueDuplicate", detail: "", value: m });
          seen.add(m);
        });
      }
    }
    if (item.mirrorSourcePolicy !== undefined) {
      checkEnum(out, `${f}.mirrorSourcePolicy`, item.mirrorSourcePolicy, MIRROR_SOURCE_POLICIES);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------
// ClusterImagePolicy

/** `rootOfTrust` with a sigstore public key (what Red Hat's `openshift` policy uses). */
export interface PublicKeyRootOfTrust {
  policyType: "PublicKey";
  publicKey: { keyData: string; rekorKeyData?: string };
}

/** `rootOfTrust` with Fulcio-issued certificates and a Rekor log. */
export interface FulcioCAWithRekorRootOfTrust {
  policyType: "FulcioCAWithRekor";
  fulcioCAWithRekor: {
    fulcioCAData: string;
    rekorKeyData: string;
    fulcioSubject: { oidcIssuer: string; signedEmail: string };
  };
}

/** `rootOfTrust` with your own CA (BYOPKI). */
export interface PkiRootOfTrust {
  policyType: "PKI";
  pki: {
    caRootsData: string;
    caIntermediatesData?: string;
    pkiCertificateSubject: { email?: string; hostname?: string };
  };
}

/** The three roots of trust ClusterImagePolicy v1 knows. */
export type RootOfTrust = PublicKeyRootOfTrust | FulcioCAWithRekorRootOfTrust | PkiRootOfTrust;

/** `signedIdentity`: how the identity in the signature must match the image. */
export type SignedIdentity =
  | { matchPolicy: "MatchRepoDigestOrExact" | "MatchRepository" }
  | { matchPolicy: "ExactRepository"; exactRepository: { repository: string } }
  | { matchPolicy: "RemapIdentity"; remapIdentity: { prefix: string; signedPrefix: string } };

/** A config.openshift.io/v1 ClusterImagePolicy. */
export interface ClusterImagePolicy extends KubeObject {
  apiVersion: typeof CONFIG_OPENSHIFT_V1;
  kind: "ClusterImagePolicy";
  spec: {
    scopes: string[];
    policy: { rootOfTrust: RootOfTrust; signedIdentity?: SignedIdentity };
  };
}

/** Options for clusterImagePolicy. */
export interface ClusterImagePolicyOptions {
  name: string;
  scopes: string[];
  rootOfTrust: RootOfTrust;
  signedIdentity?: SignedIdentity;
  annotations?: Record<string, string>;
}

const POLICY_TYPES = ["PublicKey", "FulcioCAWithRekor", "PKI"] as const;
const MATCH_POLICIES = [
  "MatchRepoDigestOrExact",
  "MatchRepository",
  "ExactRepository",
  "RemapIdentity",
] as const;

function rootOfTrustCopy(r: RootOfTrust): RootOfTrust {
  switch (r.policyType) {
    case "PublicKey":
      return {
        policyType: "PublicKey",
        publicKey: {
          keyData: r.publicKey.keyData,
          ...(r.publicKey.rekorKeyData === undefined
            ? {}
            : { rekorKeyData: r.publicKey.rekorKeyData }),
        },
      };
    case "FulcioCAWithRekor":
      return {
        policyType: "FulcioCAWithRekor",
        fulcioCAWithRekor: {
          fulcioCAData: r.fulcioCAWithRekor.fulcioCAData,
          rekorKeyData: r.fulcioCAWithRekor.rekorKeyData,
          fulcioSubject: {
            oidcIssuer: r.fulcioCAWithRekor.fulcioSubject.oidcIssuer,
            signedEmail: r.fulcioCAWithRekor.fulcioSubject.signedEmail,
          },
        },
      };
    case "PKI": {
      const s = r.pki.pkiCertificateSubject;
      return {
        policyType: "PKI",
        pki: {
          caRootsData: r.pki.caRootsData,
          ...(r.pki.caIntermediatesData === undefined
            ? {}
            : { caIntermediatesData: r.pki.caIntermediatesData }),
          pkiCertificateSubject: {
            ...(s.email === undefined ? {} : { email: s.email }),
            ...(s.hostname === undefined ? {} : { hostname: s.hostname }),
          },
        },
      };
    }
  }
}

/**
 * A ClusterImagePolicy with the fields in the order of Red Hat's own
 * `openshift` policy; throws MANIFEST_INVALID when the result would not pass
 * validateClusterImagePolicy or has no scope.
 */
export function clusterImagePolicy(opts: ClusterImagePolicyOptions): ClusterImagePolicy {
  const metadata: ObjectMeta = { name: opts.name };
  if (opts.annotations !== undefined) metadata.annotations = { ...opts.annotations };
  const obj: ClusterImagePolicy = {
    apiVersion: CONFIG_OPENSHIFT_V1,
    kind: "ClusterImagePolicy",
    metadata,
    spec: {
      scopes: [...opts.scopes],
      policy: {
        rootOfTrust: rootOfTrustCopy(opts.rootOfTrust),
        ...(opts.signedIdentity === undefined
          ? {}
          : { signedIdentity: structuredClone(opts.signedIdentity) }),
      },
    },
  };
  const problems = validateClusterImagePolicy(obj);
  if (opts.scopes.length === 0) {
    problems.push({
      field: "spec.scopes",
      reason: "FieldValueRequired",
      detail: "at least one scope",
    });
  }
  return assertValid("ClusterImagePolicy", opts.name, obj, problems);
}

function checkScope(out: Problems, field: string, scope: unknown): void {
  if (!checkString(out, field, scope, 512)) return;
  const host = scope.split("/")[0] ?? "";
  if (host.split(".").length === 1 && (host.split(":")[0] ?? "") !== "localhost") {
    celFailure(
      out,
      field,
      "string",
      "invalid image scope format, scope must contain a fully qualified domain name or 'localhost'",
    );
  }
  if (scope.includes("*")) {
    if (!WILDCARD_SCOPE_PATTERN.test(scope)) {
      celFailure(
        out,
        field,
        "string",
        "invalid image scope with wildcard, a wildcard can only be at the start of the domain and is only supported for subdomain matching, not path matching",
      );
    }
  } else if (!SCOPE_PATTERN.test(scope)) {
    celFailure(
      out,
      field,
      "string",
      "invalid repository namespace or image specification in the image scope",
    );
  }
}

function checkIdentityPrefix(out: Problems, field: string, v: unknown): void {
  if (!checkString(out, field, v, 512)) return;
  if (/:[\w][\w.-]{0,127}$/.test(v) && !/^localhost:[0-9]+$/.test(v)) {
    celFailure(
      out,
      field,
      "string",
      "invalid repository or prefix in the signedIdentity, should not include the tag or digest",
    );
  }
  if (!IDENTITY_PREFIX_PATTERN.test(v)) {
    celFailure(out, field, "string", "invalid repository or prefix in the signedIdentity");
  }
}

const EMAIL = /^\S+@\S+$/;

function checkCertBundle(out: Problems, field: string, name: string, v: unknown): void {
  if (!checkBytes(out, field, v)) return;
  const pem = decodeBase64(v);
  const begin = "-----BEGIN CERTIFICATE-----";
  const end = "-----END CERTIFICATE-----";
  if (!pem.startsWith(begin)) {
    celFailure(out, field, "string", `the ${name} must start with base64 encoding of '${begin}'.`);
  }
  if (!pem.endsWith(`${end}\n`) && !pem.endsWith(end)) {
    celFailure(out, field, "string", `the ${name} must end with base64 encoding of '${end}'.`);
  }
  if (pem.split(begin).length !== pem.split(end).length) {
    celFailure(
      out,
      field,
      "string",
      `${name} must be base64 encoding of valid PEM format data contain the same number of '${begin}' and '${end}' markers.`,
    );
  }
}

function checkRootOfTrust(out: Problems, f: string, r: Record<string, unknown>): void {
  const type = r.policyType;
  if (type !== undefined && checkString(out, `${f}.policyType`, type, 128)) {
    checkEnum(out, `${f}.policyType`, type, POLICY_TYPES);
  }
  const union: [string, string][] = [
    ["PublicKey", "publicKey"],
    ["FulcioCAWithRekor", "fulcioCAWithRekor"],
    ["PKI", "pki"],
  ];
  for (const [t, member] of union) {
    if ((type === t) !== (r[member] !== undefined)) {
      celFailure(
        out,
        f,
        "object",
        `${member} is required when policyType is ${t}, and forbidden otherwise`,
      );
    }
  }
  const pk = r.publicKey;
  if (
    pk !== undefined &&
    checkObject(out, `${f}.publicKey`, pk, ["keyData", "rekorKeyData"], ["keyData"])
  ) {
    if (pk.keyData !== undefined) checkBytes(out, `${f}.publicKey.keyData`, pk.keyData);
    if (pk.rekorKeyData !== undefined)
      checkBytes(out, `${f}.publicKey.rekorKeyData`, pk.rekorKeyData);
  }
  const fr = r.fulcioCAWithRekor;
  const ff = `${f}.fulcioCAWithRekor`;
  if (
    fr !== undefined &&
    checkObject(
      out,
      ff,
      fr,
      ["fulcioCAData", "rekorKeyData", "fulcioSubject"],
      ["fulcioCAData", "rekorKeyData", "fulcioSubject"],
    )
  ) {
    if (fr.fulcioCAData !== undefined) checkBytes(out, `${ff}.fulcioCAData`, fr.fulcioCAData);
    if (fr.rekorKeyData !== undefined) checkBytes(out, `${ff}.rekorKeyData`, fr.rekorKeyData);
    const s = fr.fulcioSubject;
    const sf = `${ff}.fulcioSubject`;
    if (
      s !== undefined &&
      checkObject(out, sf, s, ["oidcIssuer", "signedEmail"], ["oidcIssuer", "signedEmail"])
    ) {
      if (s.oidcIssuer !== undefined && checkString(out, `${sf}.oidcIssuer`, s.oidcIssuer, 2048)) {
        if (!isUrl(s.oidcIssuer))
          celFailure(out, `${sf}.oidcIssuer`, "string", "oidcIssuer must be a valid URL");
      }
      if (
        s.signedEmail !== undefined &&
        checkString(out, `${sf}.signedEmail`, s.signedEmail, 320)
      ) {
        if (!EMAIL.test(s.signedEmail))
          celFailure(out, `${sf}.signedEmail`, "string", "invalid email address");
      }
    }
  }
  const pki = r.pki;
  const pf = `${f}.pki`;
  if (
    pki !== undefined &&
    checkObject(
      out,
      pf,
      pki,
      ["caRootsData", "caIntermediatesData", "pkiCertificateSubject"],
      ["caRootsData", "pkiCertificateSubject"],
    )
  ) {
    if (pki.caRootsData !== undefined)
      checkCertBundle(out, `${pf}.caRootsData`, "caRootsData", pki.caRootsData);
    if (pki.caIntermediatesData !== undefined) {
      checkCertBundle(
        out,
        `${pf}.caIntermediatesData`,
        "caIntermediatesData",
        pki.caIntermediatesData,
      );
    }
    const s = pki.pkiCertificateSubject;
    const sf = `${pf}.pkiCertificateSubject`;
    if (s !== undefined && checkObject(out, sf, s, ["email", "hostname"], [])) {
      if (s.email === undefined && s.hostname === undefined) {
        celFailure(
          out,
          sf,
          "object",
          "at least one of email or hostname must be set in pkiCertificateSubject",
        );
      }
      if (
        s.email !== undefined &&
        checkString(out, `${sf}.email`, s.email, 320) &&
        !EMAIL.test(s.email)
      ) {
        celFailure(out, `${sf}.email`, "string", "invalid email address in pkiCertificateSubject");
      }
      if (s.hostname !== undefined && checkString(out, `${sf}.hostname`, s.hostname, 253)) {
        const h = s.hostname.startsWith("*.") ? s.hostname.slice(2) : s.hostname;
        if (dns1123SubdomainErrors(h).length > 0) {
          celFailure(
            out,
            `${sf}.hostname`,
            "string",
            "hostname should be a valid dns 1123 subdomain name, optionally prefixed by '*.'. It should consist only of lowercase alphanumeric characters, hyphens, periods and the optional preceding asterisk.",
          );
        }
      }
    }
  }
}

/** CEL isURL: Go's url.ParseRequestURI, i.e. an absolute URL or an absolute path. */
function isUrl(v: string): boolean {
  if (v.startsWith("/")) return true;
  try {
    new URL(v);
    return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(v);
  } catch {
    return false;
  }
}

function checkSignedIdentity(out: Problems, f: string, s: Record<string, unknown>): void {
  if (s.matchPolicy !== undefined)
    checkEnum(out, `${f}.matchPolicy`, s.matchPolicy, MATCH_POLICIES);
  if ((s.matchPolicy === "ExactRepository") !== (s.exactRepository !== undefined)) {
    celFailure(
      out,
      f,
      "object",
      "exactRepository is required when matchPolicy is ExactRepository, and forbidden otherwise",
    );
  }
  if ((s.matchPolicy === "RemapIdentity") !== (s.remapIdentity !== undefined)) {
    celFailure(
      out,
      f,
      "object",
      "remapIdentity is required when matchPolicy is RemapIdentity, and forbidden otherwise",
    );
  }
  const er = s.exactRepository;
  if (
    er !== undefined &&
    checkObject(out, `${f}.exactRepository`, er, ["repository"], ["repository"])
  ) {
    if (er.repository !== undefined)
      checkIdentityPrefix(out, `${f}.exactRepository.repository`, er.repository);
  }
  const ri = s.remapIdentity;
  if (
    ri !== undefined &&
    checkObject(
      out,
      `${f}.remapIdentity`,
      ri,
      ["prefix", "signedPrefix"],
      ["prefix", "signedPrefix"],
    )
  ) {
    if (ri.prefix !== undefined) checkIdentityPrefix(out, `${f}.remapIdentity.prefix`, ri.prefix);
    if (ri.signedPrefix !== undefined)
      checkIdentityPrefix(out, `${f}.remapIdentity.signedPrefix`, ri.signedPrefix);
  }
}

/**
 * Every reason the API server would refuse (or prune part of) a
 * ClusterImagePolicy, per the v1 schema: required fields, enums, at most 256
 * scopes (a set: no duplicates), the scope and identity patterns, 8192-character
 * base64 key data, and the union rules of rootOfTrust and signedIdentity.
 * Empty when it is valid.
 */
export function validateClusterImagePolicy(obj: unknown): ManifestProblem[] {
  const out: Problems = [];
  if (
    !checkObject(out, "<root>", obj, ["apiVersion", "kind", "metadata", "spec", "status"], ["spec"])
  )
    return out;
  checkType(out, obj, "ClusterImagePolicy");
  checkMetadata(out, obj.metadata);
  const spec = obj.spec;
  if (
    spec === undefined ||
    !checkObject(out, "spec", spec, ["scopes", "policy"], ["scopes", "policy"])
  )
    return out;
  if (spec.scopes !== undefined) {
    if (!Array.isArray(spec.scopes)) {
      out.push({
        field: "spec.scopes",
        reason: "FieldValueTypeInvalid",
        detail: "must be of type array",
        value: typeName(spec.scopes),
      });
    } else {
      if (spec.scopes.length > 256) {
        out.push({
          field: "spec.scopes",
          reason: "FieldValueTooMany",
          detail: "must have at most 256 items",
          value: spec.scopes.length,
        });
      }
      const seen = new Set<unknown>();
      spec.scopes.forEach((s: unknown, i) => {
        checkScope(out, `spec.scopes[${i}]`, s);
        if (seen.has(s))
          out.push({
            field: `spec.scopes[${i}]`,
            reason: "FieldValueDuplicate",
            detail: "",
            value: s,
          });
        seen.add(s);
      });
    }
  }
  const policy = spec.policy;
  if (
    policy === undefined ||
    !checkObject(out, "spec.policy", policy, ["rootOfTrust", "signedIdentity"], ["rootOfTrust"])
  ) {
    return out;
  }
  const rot = policy.rootOfTrust;
  const rf = "spec.policy.rootOfTrust";
  if (
    rot !== undefined &&
    checkObject(
      out,
      rf,
      rot,
      ["policyType", "publicKey", "fulcioCAWithRekor", "pki"],
      ["policyType"],
    )
  ) {
    checkRootOfTrust(out, rf, rot);
  }
  const si = policy.signedIdentity;
  const sf = "spec.policy.signedIdentity";
  if (
    si !== undefined &&
    checkObject(out, sf, si, ["matchPolicy", "exactRepository", "remapIdentity"], ["matchPolicy"])
  ) {
    checkSignedIdentity(out, sf, si);
  }
  return out;
}
