/**
 * Strict validation of a bundle index read from an archive that crossed the gap.
 * Nothing in it is trusted: every field is checked for type and shape, every
 * digest for form, every member it names for presence. Pure.
 */
import { BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, type BundleIndex } from "./bundle-index.js";
import { isDigest, storeDirName, digestDashed, sigTag } from "./digest.js";
import { SigferryError } from "../errors.js";

type Obj = Record<string, unknown>;

class IndexError extends Error {}

function fail(path: string, why: string): never {
  throw new IndexError(`index.json ${path}: ${why}`);
}
function obj(v: unknown, path: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(path, "must be an object");
  return v as Obj;
}
function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, "must be an array");
  return v;
}
function str(v: unknown, path: string): string {
  if (typeof v !== "string") fail(path, "must be a string");
  return v;
}
function optStr(v: unknown, path: string): void {
  if (v !== undefined) str(v, path);
}
function num(v: unknown, path: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    fail(path, "must be a non-negative integer");
  return v;
}
function digest(v: unknown, path: string): void {
  if (!isDigest(v)) fail(path, `${JSON.stringify(v)} is not a sha256 digest`);
}
function fpr(v: unknown, path: string): void {
  if (typeof v !== "string" || !/^[0-9A-F]{40}$/.test(v))
    fail(path, "must be a 40-character uppercase hex fingerprint");
}

/**
 * Parses and validates `index.json`, as bytes or as text already decoded
 * (src/archive/bundle.ts `indexText` reads it in pieces); `members` is the set of archive member
 * paths, so that every path the index names is known to exist. Throws
 * INDEX_INVALID (exit code "corrupt") naming the field.
 */
export function parseBundleIndex(
  content: Uint8Array | string,
  members: ReadonlySet<string>,
): BundleIndex {
  let raw: unknown;
  try {
    const text =
      typeof content === "string"
        ? content
        : new TextDecoder("utf-8", { fatal: true }).decode(content);
    raw = JSON.parse(text);
  } catch (cause) {
    throw new SigferryError("INDEX_INVALID", "index.json is not valid UTF-8 JSON", {
      cause,
      details: { member: "index.json" },
    });
  }
  try {
    return validate(raw, members);
  } catch (err) {
    if (err instanceof IndexError) {
      throw new SigferryError("INDEX_INVALID", err.message, { details: { member: "index.json" } });
    }
    throw err;
  }
}

function member(v: unknown, path: string, members: ReadonlySet<string>): string {
  const p = str(v, path);
  if (!members.has(p)) fail(path, `names member ${p}, which the archive does not hold`);
  return p;
}

function validate(raw: unknown, members: ReadonlySet<string>): BundleIndex {
  const root = obj(raw, "(root)");
  if (root.format !== BUNDLE_FORMAT) fail("format", `must be "${BUNDLE_FORMAT}"`);
  if (root.formatVersion !== BUNDLE_FORMAT_VERSION) {
    fail(
      "formatVersion",
      `${JSON.stringify(root.formatVersion)} is not a version this sigferry reads (it reads ${BUNDLE_FORMAT_VERSION})`,
    );
  }
  const tool = obj(root.tool, "tool");
  str(tool.name, "tool.name");
  str(tool.version, "tool.version");
  const createdAt = str(root.createdAt, "createdAt");
  if (Number.isNaN(Date.parse(createdAt))) fail("createdAt", "is not a date");
  obj(root.selection, "selection");
  const sources = obj(root.sources, "sources");
  str(sources.releaseRepo, "sources.releaseRepo");
  arr(sources.signatureStores, "sources.signatureStores").forEach((s, i) =>
    str(s, `sources.signatureStores[${i}]`),
  );
  arr(root.required, "required").forEach((k, i) => {
    if (k !== "openpgp" && k !== "sigstore") fail(`required[${i}]`, "must be openpgp or sigstore");
  });

  arr(root.releases, "releases").forEach((r0, i) => {
    const p = `releases[${i}]`;
    const r = obj(r0, p);
    optStr(r.version, `${p}.version`);
    str(r.arch, `${p}.arch`);
    optStr(r.tag, `${p}.tag`);
    digest(r.digest, `${p}.digest`);
    str(r.mediaType, `${p}.mediaType`);
    str(r.resolvedBy, `${p}.resolvedBy`);
    if (r.manifests !== undefined) {
      arr(r.manifests, `${p}.manifests`).forEach((m0, j) => {
        const m = obj(m0, `${p}.manifests[${j}]`);
        digest(m.digest, `${p}.manifests[${j}].digest`);
        str(m.mediaType, `${p}.manifests[${j}].mediaType`);
        str(m.arch, `${p}.manifests[${j}].arch`);
        str(m.os, `${p}.manifests[${j}].os`);
      });
    }
  });

  arr(root.openpgp, "openpgp").forEach((s0, i) => {
    const p = `openpgp[${i}]`;
    const s = obj(s0, p);
    digest(s.digest, `${p}.digest`);
    const path = member(s.path, `${p}.path`, members);
    // The path must be the store-layout path of the digest it claims, so it cannot be swapped.
    const prefix = `openpgp/${storeDirName(s.digest as `sha256:${string}`)}/signature-`;
    if (!path.startsWith(prefix) || !/^[1-9][0-9]*$/.test(path.slice(prefix.length))) {
      fail(`${p}.path`, `must be ${prefix}<n> for digest ${String(s.digest)}`);
    }
    str(s.identity, `${p}.identity`);
    fpr(s.signer, `${p}.signer`);
    str(s.source, `${p}.source`);
  });

  arr(root.sigstore, "sigstore").forEach((a0, i) => {
    const p = `sigstore[${i}]`;
    const a = obj(a0, p);
    digest(a.digest, `${p}.digest`);
    if (a.tag !== sigTag(a.digest as `sha256:${string}`))
      fail(`${p}.tag`, "must be sha256-<hex>.sig of its digest");
    for (const key of ["manifest", "config"] as const) {
      const d = obj(a[key], `${p}.${key}`);
      digest(d.digest, `${p}.${key}.digest`);
      str(d.mediaType, `${p}.${key}.mediaType`);
      num(d.size, `${p}.${key}.size`);
      member(
        `sigstore/blobs/sha256/${(d.digest as string).slice(7)}`,
        `${p}.${key}.digest`,
        members,
      );
    }
    arr(a.layers, `${p}.layers`).forEach((l0, j) => {
      const l = obj(l0, `${p}.layers[${j}]`);
      digest(l.digest, `${p}.layers[${j}].digest`);
      num(l.size, `${p}.layers[${j}].size`);
      str(l.signer, `${p}.layers[${j}].signer`);
      str(l.identity, `${p}.layers[${j}].identity`);
      member(
        `sigstore/blobs/sha256/${(l.digest as string).slice(7)}`,
        `${p}.layers[${j}].digest`,
        members,
      );
    });
    str(a.source, `${p}.source`);
  });

  arr(root.configMaps, "configMaps").forEach((c0, i) => {
    const p = `configMaps[${i}]`;
    const c = obj(c0, p);
    digest(c.digest, `${p}.digest`);
    const name = str(c.name, `${p}.name`);
    if (name !== digestDashed(c.digest as `sha256:${string}`))
      fail(`${p}.name`, "must be sha256-<hex> of its digest");
    if (str(c.namespace, `${p}.namespace`) !== "openshift-config-managed")
      fail(`${p}.namespace`, "must be openshift-config-managed (where the CVO looks)");
    const path = member(c.path, `${p}.path`, members);
    if (path !== `configmaps/${name}.yaml`) fail(`${p}.path`, `must be configmaps/${name}.yaml`);
    arr(c.keys, `${p}.keys`).forEach((k, j) => str(k, `${p}.keys[${j}]`));
  });

  const keys = obj(root.keys, "keys");
  arr(keys.openpgp, "keys.openpgp").forEach((k0, i) => {
    const k = obj(k0, `keys.openpgp[${i}]`);
    fpr(k.fingerprint, `keys.openpgp[${i}].fingerprint`);
    // The path is named by the fingerprint, so a key cannot be filed under another one's name.
    if (
      member(k.path, `keys.openpgp[${i}].path`, members) !==
      `keys/openpgp/${k.fingerprint as string}.asc`
    )
      fail(`keys.openpgp[${i}].path`, `must be keys/openpgp/${k.fingerprint as string}.asc`);
    arr(k.userIds, `keys.openpgp[${i}].userIds`).forEach((u, j) =>
      str(u, `keys.openpgp[${i}].userIds[${j}]`),
    );
  });
  arr(keys.sigstore, "keys.sigstore").forEach((k0, i) => {
    const k = obj(k0, `keys.sigstore[${i}]`);
    if (typeof k.id !== "string" || !/^[0-9a-f]{64}$/.test(k.id))
      fail(`keys.sigstore[${i}].id`, "must be 64 lowercase hex");
    if (member(k.path, `keys.sigstore[${i}].path`, members) !== `keys/sigstore/${k.id}.pem`)
      fail(`keys.sigstore[${i}].path`, `must be keys/sigstore/${k.id}.pem`);
    str(k.algorithm, `keys.sigstore[${i}].algorithm`);
  });

  for (const field of ["rejected", "missing"] as const) {
    arr(root[field], field).forEach((e0, i) => {
      const e = obj(e0, `${field}[${i}]`);
      if (e.kind !== "openpgp" && e.kind !== "sigstore")
        fail(`${field}[${i}].kind`, "must be openpgp or sigstore");
      digest(e.digest, `${field}[${i}].digest`);
      str(e.code, `${field}[${i}].code`);
      str(e.reason, `${field}[${i}].reason`);
    });
  }
  return raw as BundleIndex;
}
