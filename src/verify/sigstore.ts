/**
 * Sigstore/cosign `.sig` artifacts, verified the way CRI-O verifies them through
 * containers/image (signature/policy_eval_sigstore.go, pki_cert.go,
 * fulcio_cert.go, internal/rekor_set.go, internal/sigstore_payload.go), for the
 * three ClusterImagePolicy roots of trust: PublicKey, PKI and FulcioCAWithRekor.
 * node:crypto only.
 *
 * Several layers: containers/image accepts an image when ONE simple-signing
 * layer is accepted ("One accepted signature is enough") and skips layers of
 * other media types. verifySigArtifact therefore does not throw when a layer
 * fails: it returns the layers that verified in `layers` and every other layer
 * in `failures` (code + reason), and the caller decides. It throws only when the
 * artifact itself is broken (manifest digest, media type, a blob missing or not
 * matching its descriptor) or the trust configuration is unusable. A caller that
 * needs "verified" must check `layers.length > 0`.
 */
import {
  X509Certificate,
  constants,
  createHash,
  createPublicKey,
  verify as cryptoVerify,
  type KeyObject,
} from "node:crypto";
import { SigferryError, isSigferryError, type ErrorCode } from "../errors.js";
import { isDigest, type Digest } from "../core/digest.js";
import {
  canonicalJson,
  parseCosignPayload,
  parseJsonStrict,
  type JsonNode,
} from "../core/payload.js";

/** A sigstore public key, loaded and described. */
export interface SigstoreKey {
  /** sha256 hex of the DER SubjectPublicKeyInfo (the id Rekor uses as logID, and the pin format). */
  id: string;
  /** "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521" or "ed25519". */
  algorithm: string;
  /** The key re-exported as an SPKI PEM. */
  pem: string;
  key: KeyObject;
}

/** A cosign `.sig` manifest with the blobs it references, by digest. */
export interface SigArtifact {
  manifestBytes: Uint8Array;
  manifestDigest: Digest;
  blobs: Map<string, Uint8Array>;
}

/** The three ClusterImagePolicy `rootOfTrust.policyType`s. */
export type SigstoreTrust =
  | { kind: "PublicKey"; keys: SigstoreKey[]; rekorKeys?: SigstoreKey[] }
  | {
      kind: "PKI";
      caRoots: X509Certificate[];
      caIntermediates: X509Certificate[];
      subject?: { email?: string; hostname?: string };
    }
  | {
      kind: "FulcioCAWithRekor";
      fulcioRoots: X509Certificate[];
      rekorKeys: SigstoreKey[];
      oidcIssuer?: string;
      subjectEmail?: string;
    };

/** A signature layer that verified. */
export interface VerifiedSigLayer {
  digest: Digest;
  size: number;
  /** PublicKey: the key id; PKI / Fulcio: the certificate identity matched (email or hostname). */
  signer: string;
  /** The docker-reference the signature vouches for. */
  identity: string;
  /** sha256 fingerprint of the signing certificate (PKI, Fulcio). */
  certificateFingerprint?: string;
  /** From a verified Rekor SET, when one was required. */
  integratedTime?: number;
  logIndex?: number;
}

/** A layer that did not verify, and why. */
export interface SigLayerFailure {
  digest: Digest;
  code: ErrorCode;
  reason: string;
}

/** The result of checking one `.sig` artifact. */
export interface SigArtifactVerification {
  mediaType: string;
  config: { digest: Digest; mediaType: string; size: number };
  /** Layers that verified for the image digest; empty means the artifact vouches for nothing. */
  layers: VerifiedSigLayer[];
  failures: SigLayerFailure[];
}

/** What a verified Rekor SignedEntryTimestamp says. */
export interface RekorEntry {
  integratedTime: number;
  logIndex: number;
  logID: string;
  /** Id of the Rekor key that signed the SET. */
  rekorKeyId: string;
}

/** The only manifest type containers/image reads sigstore attachments from. */
export const OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
/** The layer media type of a cosign signature (other layers are skipped by CRI-O). */
export const SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";
/** Base64 signature over the exact layer bytes (required). */
export const ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature";
/** PEM signing certificate (PKI, Fulcio). */
export const ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate";
/** PEM intermediates, then the root (whose copy here is never trusted). */
export const ANNOTATION_CHAIN = "dev.sigstore.cosign/chain";
/** Rekor bundle: {"SignedEntryTimestamp": …, "Payload": {body, integratedTime, logIndex, logID}}. */
export const ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle";

const OID_CODE_SIGNING = "1.3.6.1.5.5.7.3.3";
const OID_ANY_EKU = "2.5.29.37.0";
/** Fulcio's (v1) OIDC issuer extension: the raw issuer URL. containers/image reads only this one. */
const OID_FULCIO_ISSUER = "1.3.6.1.4.1.57264.1.1";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_SAN = "2.5.29.17";
const OID_NAME_CONSTRAINTS = "2.5.29.30";
/** Critical extensions Go's crypto/x509 understands; any other critical extension fails verification there. */
const HANDLED_CRITICAL = new Set([
  "2.5.29.14",
  "2.5.29.15",
  OID_SAN,
  OID_BASIC_CONSTRAINTS,
  "2.5.29.31",
  "2.5.29.32",
  "2.5.29.33",
  "2.5.29.35",
  "2.5.29.36",
  "2.5.29.37",
  "2.5.29.54",
  "1.3.6.1.5.5.7.1.1",
]);
const MAX_CHAIN_DEPTH = 8;
const MAX_CHAIN_SIGNATURE_CHECKS = 100;

const EC_CURVES: ReadonlyMap<string, string> = new Map([
  ["prime256v1", "ecdsa-p256"],
  ["secp384r1", "ecdsa-p384"],
  ["secp521r1", "ecdsa-p521"],
]);

function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}

/** DER SubjectPublicKeyInfo per KeyObject: exporting a key costs more than verifying with it. */
const spkiDers = new WeakMap<KeyObject, Buffer>();

/** A public key's DER SubjectPublicKeyInfo, exported once per KeyObject (callers only read it). */
function spkiDer(key: KeyObject): Buffer {
  let der = spkiDers.get(key);
  if (der === undefined) {
    der = key.export({ type: "spki", format: "der" });
    spkiDers.set(key, der);
  }
  return der;
}

/** The sha256 hex of a public key's DER SubjectPublicKeyInfo: sigstore's key id and Rekor's logID. */
export function sigstoreKeyId(key: KeyObject): string {
  return sha256(spkiDer(key)).toString("hex");
}

/**
 * Keys already loaded, by PEM label and DER. A caller that loads the same key file again
 * (once per artifact, say) gets the KeyObject made the first time: making one costs
 * hundreds of microseconds. Only keys that loaded are kept; a bad file is judged each time.
 */
const loadedKeys = new Map<string, SigstoreKey>();
const MAX_LOADED_KEYS = 64;

function keyInvalid(source: string, why: string, cause?: unknown): SigferryError {
  return new SigferryError("KEY_INVALID", `${source}: ${why}`, {
    cause,
    details: { file: source },
  });
}

/** Names a key's algorithm, or undefined when containers/image could not verify with it. */
function describeAlgorithm(key: KeyObject): string | undefined {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "rsa":
      return (details.modulusLength ?? 0) >= 2048 ? `rsa-${details.modulusLength}` : undefined;
    case "ec":
      return EC_CURVES.get(details.namedCurve ?? "");
    case "ed25519":
      return "ed25519";
    default:
      return undefined;
  }
}

/** Loads a PEM public key (SPKI "PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY"); throws KEY_INVALID naming `source`. */
export function loadSigstoreKey(pem: string | Uint8Array, source: string): SigstoreKey {
  const text = typeof pem === "string" ? pem : Buffer.from(pem).toString("utf8");
  let blocks: PemBlock[];
  try {
    blocks = pemBlocks(text);
  } catch (err) {
    throw keyInvalid(source, "not a PEM file", err);
  }
  if (blocks.length !== 1)
    throw keyInvalid(source, `expected one PEM public key, found ${blocks.length} PEM block(s)`);
  const block = blocks[0]!;
  // A private key would also yield a public KeyObject; refuse it so it never travels.
  if (block.label !== "PUBLIC KEY" && block.label !== "RSA PUBLIC KEY") {
    throw keyInvalid(source, `holds a "${block.label}", not a public key`);
  }
  const cacheKey = `${block.label}\n${block.der.toString("base64")}`;
  const loaded = loadedKeys.get(cacheKey);
  if (loaded !== undefined) return { ...loaded };
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: block.der,
      format: "der",
      type: block.label === "PUBLIC KEY" ? "spki" : "pkcs1",
    });
  } catch (err) {
    throw keyInvalid(
      source,
      `not a readable public key (${err instanceof Error ? err.message : String(err)})`,
      err,
    );
  }
  const algorithm = describeAlgorithm(key);
  if (algorithm === undefined) {
    throw keyInvalid(
      source,
      `unsupported key type ${key.asymmetricKeyType ?? "?"} (RSA ≥ 2048, ECDSA P-256/384/521, Ed25519)`,
    );
  }
  const result: SigstoreKey = {
    id: sigstoreKeyId(key),
    algorithm,
    pem: key.export({ type: "spki", format: "pem" }).toString(),
    key,
  };
  if (loadedKeys.size >= MAX_LOADED_KEYS) loadedKeys.clear();
  loadedKeys.set(cacheKey, result);
  return { ...result };
}

/**
 * Verifies `signature` over `data` as sigstore's LoadVerifier(key, SHA256) does:
 * RSA PKCS#1 v1.5 / SHA-256, ECDSA / SHA-256 with an ASN.1 DER signature, or pure Ed25519.
 */
function verifyWithKey(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    switch (key.asymmetricKeyType) {
      case "rsa":
        return cryptoVerify(
          "sha256",
          data,
          { key, padding: constants.RSA_PKCS1_PADDING },
          signature,
        );
      case "ec":
        return cryptoVerify("sha256", data, { key, dsaEncoding: "der" }, signature);
      case "ed25519":
        return cryptoVerify(null, data, key, signature);
      default:
        return false;
    }
  } catch {
    // A malformed signature is a failed signature.
    return false;
  }
}

/** Go's base64.StdEncoding.DecodeString: padded standard alphabet, CR/LF ignored, nothing else tolerated. */
function strictBase64(value: string, what: string): Buffer {
  const compact = value.replace(/[\r\n]/g, "");
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new SigferryError("SIGNATURE_INVALID", `${what} is not valid base64`);
  }
  const bytes = Buffer.from(compact, "base64");
  // Non-canonical trailing bits would decode; re-encoding tells.
  if (bytes.toString("base64") !== compact)
    throw new SigferryError("SIGNATURE_INVALID", `${what} is not canonical base64`);
  return bytes;
}

interface PemBlock {
  label: string;
  der: Buffer;
}

/** Every PEM block in `text`; `trailing` tells whether anything but whitespace lies outside them. */
function pemBlocks(text: string): PemBlock[] & { trailing?: boolean } {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END \1-----/g;
  const blocks: PemBlock[] & { trailing?: boolean } = [];
  let outside = "";
  let last = 0;
  for (const m of text.matchAll(re)) {
    outside += text.slice(last, m.index);
    last = m.index + m[0].length;
    const body = m[2]!.replace(/\s+/g, "");
    blocks.push({ label: m[1]!, der: strictBase64(body, `PEM block ${m[1]!}`) });
  }
  outside += text.slice(last);
  blocks.trailing = outside.trim().length > 0;
  return blocks;
}

function invalid(reason: string, details: Record<string, unknown> = {}): SigferryError {
  return new SigferryError("SIGNATURE_INVALID", reason, { details: { reason, ...details } });
}

/** A valid certificate for someone the policy does not name: not a broken signature, an untrusted one. */
function wrongSigner(reason: string): SigferryError {
  return new SigferryError("UNTRUSTED_SIGNER", reason, { details: { reason } });
}

function configError(reason: string): SigferryError {
  return new SigferryError("INVALID_CONFIG", `sigstore trust: ${reason}`);
}

/** Refuses a trust configuration containers/image would refuse, before any signature is read. */
function checkTrust(trust: SigstoreTrust): void {
  const ecdsaOnly = (keys: readonly SigstoreKey[]): void => {
    // containers/image: "Rekor public key is not using ECDSA".
    for (const k of keys)
      if (!k.algorithm.startsWith("ecdsa-")) throw configError(`Rekor key ${k.id} is not ECDSA`);
  };
  switch (trust.kind) {
    case "PublicKey":
      if (trust.keys.length === 0) throw configError("PublicKey needs at least one key");
      ecdsaOnly(trust.rekorKeys ?? []);
      return;
    case "PKI":
      if (trust.caRoots.length === 0) throw configError("PKI needs at least one CA root");
      if (!trust.subject?.email && !trust.subject?.hostname) {
        throw configError(
          "PKI needs a certificate subject email or hostname (pkiCertificateSubject)",
        );
      }
      return;
    case "FulcioCAWithRekor":
      if (trust.fulcioRoots.length === 0)
        throw configError("FulcioCAWithRekor needs at least one Fulcio root");
      if (trust.rekorKeys.length === 0) throw configError("FulcioCAWithRekor needs a Rekor key");
      ecdsaOnly(trust.rekorKeys);
      // Without both, any OIDC login anywhere could sign: containers/image refuses such a policy.
      if (!trust.oidcIssuer || !trust.subjectEmail) {
        throw configError("FulcioCAWithRekor needs both an OIDC issuer and a subject email");
      }
      return;
  }
}

interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations: Record<string, string>;
}

function descriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw invalid(`${where} is not a descriptor`);
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string") throw invalid(`${where} has no mediaType`);
  if (typeof d.digest !== "string") throw invalid(`${where} has no digest`);
  if (!isDigest(d.digest)) {
    throw new SigferryError(
      "SIGNATURE_UNSUPPORTED",
      `${where} digest ${JSON.stringify(d.digest)} is not a sha256 digest`,
    );
  }
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0)
    throw invalid(`${where} has no valid size`);
  const annotations: Record<string, string> = {};
  if (d.annotations !== undefined) {
    if (
      typeof d.annotations !== "object" ||
      d.annotations === null ||
      Array.isArray(d.annotations)
    ) {
      throw invalid(`${where} annotations are not an object`);
    }
    for (const [k, v] of Object.entries(d.annotations)) {
      if (typeof v !== "string") throw invalid(`${where} annotation ${k} is not a string`);
      annotations[k] = v;
    }
  }
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations };
}

/** The blob for a descriptor, re-hashed and re-measured: a registry's word is not proof. */
function blobFor(artifact: SigArtifact, d: Descriptor, where: string): Uint8Array {
  const bytes = artifact.blobs.get(d.digest);
  if (bytes === undefined)
    throw invalid(`${where} blob ${d.digest} is missing`, { digest: d.digest });
  const actual = `sha256:${sha256(bytes).toString("hex")}`;
  if (actual !== d.digest) {
    throw new SigferryError(
      "DIGEST_MISMATCH",
      `${where} blob hashes to ${actual}, not ${d.digest}`,
      {
        details: { digest: d.digest, actual },
      },
    );
  }
  if (bytes.length !== d.size) {
    throw new SigferryError(
      "DIGEST_MISMATCH",
      `${where} blob is ${bytes.length} bytes, the descriptor says ${d.size}`,
      {
        details: { digest: d.digest },
      },
    );
  }
  return bytes;
}

/**
 * Verifies a cosign `.sig` artifact for `imageDigest` under `trust`, returning the layers
 * that verified and the reasons the others did not (see the module comment for the rule).
 * `opts.now` is the time PKI certificates must be valid at (default: now).
 */
export function verifySigArtifact(
  artifact: SigArtifact,
  imageDigest: Digest,
  trust: SigstoreTrust,
  opts: { now?: Date } = {},
): SigArtifactVerification {
  checkTrust(trust);
  const actual = `sha256:${sha256(artifact.manifestBytes).toString("hex")}`;
  if (actual !== artifact.manifestDigest) {
    throw new SigferryError(
      "DIGEST_MISMATCH",
      `the .sig manifest hashes to ${actual}, not ${artifact.manifestDigest}`,
      {
        details: { digest: artifact.manifestDigest, actual },
      },
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(artifact.manifestBytes);
  } catch (err) {
    throw new SigferryError("SIGNATURE_INVALID", "the .sig manifest is not UTF-8", { cause: err });
  }
  // The strict parse refuses duplicate keys; JSON.parse then gives the plain values.
  parseJsonStrict(text, "SIGNATURE_INVALID", "the .sig manifest");
  const manifest = JSON.parse(text) as unknown;
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw invalid("the .sig manifest is not a JSON object");
  }
  const m = manifest as Record<string, unknown>;
  // containers/image reads sigstore attachments only from OCI image manifests.
  if (m.mediaType !== OCI_MANIFEST_MEDIA_TYPE) {
    throw new SigferryError(
      "SIGNATURE_UNSUPPORTED",
      `the .sig manifest media type is ${JSON.stringify(m.mediaType)}, not ${OCI_MANIFEST_MEDIA_TYPE}`,
    );
  }
  if (m.schemaVersion !== 2) throw invalid("the .sig manifest schemaVersion is not 2");
  const config = descriptor(m.config, "config");
  if (!Array.isArray(m.layers)) throw invalid("the .sig manifest has no layers array");
  const layers = m.layers.map((l, i) => descriptor(l, `layer ${i}`));
  blobFor(artifact, config, "config");
  const payloads = layers.map((l, i) => blobFor(artifact, l, `layer ${i}`));

  const now = opts.now ?? new Date();
  const verified: VerifiedSigLayer[] = [];
  const failures: SigLayerFailure[] = [];
  layers.forEach((layer, i) => {
    if (layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) {
      failures.push({
        digest: layer.digest,
        code: "SIGNATURE_UNSUPPORTED",
        reason: `media type ${layer.mediaType} is not a simple-signing signature (CRI-O skips it)`,
      });
      return;
    }
    try {
      verified.push(verifyLayer(layer, payloads[i]!, imageDigest, trust, now));
    } catch (err) {
      if (!isSigferryError(err)) throw err;
      failures.push({ digest: layer.digest, code: err.code, reason: err.message });
    }
  });
  return {
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { digest: config.digest, mediaType: config.mediaType, size: config.size },
    layers: verified,
    failures,
  };
}

/** One simple-signing layer, in containers/image's order: root of trust, signature, payload. */
function verifyLayer(
  layer: Descriptor,
  payload: Uint8Array,
  imageDigest: Digest,
  trust: SigstoreTrust,
  now: Date,
): VerifiedSigLayer {
  const signatureB64 = layer.annotations[ANNOTATION_SIGNATURE];
  if (signatureB64 === undefined) throw invalid(`missing ${ANNOTATION_SIGNATURE} annotation`);
  const signature = strictBase64(signatureB64, `the ${ANNOTATION_SIGNATURE} annotation`);
  const bundle = layer.annotations[ANNOTATION_BUNDLE];

  let signer: string;
  let certificateFingerprint: string | undefined;
  let rekor: RekorEntry | undefined;
  switch (trust.kind) {
    case "PublicKey": {
      const key = trust.keys.find((k) => verifyWithKey(k.key, payload, signature));
      if (key === undefined) throw noTrustedKey(trust.keys, bundle);
      if (trust.rekorKeys !== undefined && trust.rekorKeys.length > 0) {
        if (bundle === undefined)
          throw invalid(`missing ${ANNOTATION_BUNDLE} annotation (a Rekor key is configured)`);
        rekor = verifyRekorBundle(bundle, trust.rekorKeys, {
          signature,
          payload,
          publicKeyOrCertDer: spkiDer(key.key),
        });
      }
      signer = key.id;
      break;
    }
    case "PKI": {
      const leaf = leafCertificate(layer.annotations);
      const subject = trust.subject ?? {};
      signer = matchSubject(leaf, subject);
      verifyChain(
        leaf,
        [...trust.caIntermediates, ...chainAnnotation(layer.annotations)],
        trust.caRoots,
        now,
      );
      if (!verifyWithKey(leaf.publicKey, payload, signature))
        throw invalid("the signature does not verify with the certificate's key");
      certificateFingerprint = leaf.fingerprint256;
      break;
    }
    case "FulcioCAWithRekor": {
      if (bundle === undefined) throw invalid(`missing ${ANNOTATION_BUNDLE} annotation`);
      const leaf = leafCertificate(layer.annotations);
      // The Rekor entry must hold this very certificate, signature and payload; its
      // integratedTime is the only trusted clock for a short-lived Fulcio certificate.
      rekor = verifyRekorBundle(bundle, trust.rekorKeys, {
        signature,
        payload,
        publicKeyOrCertDer: leaf.raw,
      });
      verifyChain(
        leaf,
        chainAnnotation(layer.annotations),
        trust.fulcioRoots,
        new Date(rekor.integratedTime * 1000),
      );
      const issuer = fulcioIssuer(leaf);
      if (issuer !== trust.oidcIssuer)
        throw wrongSigner(`unexpected Fulcio OIDC issuer ${JSON.stringify(issuer)}`);
      const emails = sanEmails(leaf);
      if (!emails.includes(trust.subjectEmail!)) {
        throw wrongSigner(
          `required email ${trust.subjectEmail!} not in the certificate (${emails.join(", ") || "none"})`,
        );
      }
      if (!verifyWithKey(leaf.publicKey, payload, signature))
        throw invalid("the signature does not verify with the certificate's key");
      signer = trust.subjectEmail!;
      certificateFingerprint = leaf.fingerprint256;
      break;
    }
  }

  const parsed = parseCosignPayload(payload, imageDigest);
  const result: VerifiedSigLayer = {
    digest: layer.digest,
    size: layer.size,
    signer,
    identity: parsed.identity,
  };
  if (certificateFingerprint !== undefined) result.certificateFingerprint = certificateFingerprint;
  if (rekor !== undefined) {
    result.integratedTime = rekor.integratedTime;
    result.logIndex = rekor.logIndex;
  }
  return result;
}

/**
 * No trusted key verifies: if the (unverified) Rekor entry names a key we do not
 * trust, say UNTRUSTED_SIGNER; otherwise the signature is simply invalid.
 */
function noTrustedKey(keys: readonly SigstoreKey[], bundle: string | undefined): SigferryError {
  const ids = keys.map((k) => k.id);
  const claimed = bundle === undefined ? undefined : claimedSignerKey(bundle);
  if (claimed !== undefined && !ids.includes(claimed)) {
    return new SigferryError(
      "UNTRUSTED_SIGNER",
      `the signature was made by key ${claimed} (per its Rekor entry), which is not among the trusted keys (${ids.join(", ")})`,
      { details: { signerKeyId: claimed, trusted: ids } },
    );
  }
  return invalid(`the signature does not verify with any trusted key (${ids.join(", ")})`, {
    trusted: ids,
  });
}

/** The key id named in a bundle's hashedrekord body, read without trusting it (diagnostics only). */
function claimedSignerKey(bundle: string): string | undefined {
  try {
    const root = JSON.parse(bundle) as { Payload?: { body?: unknown } };
    if (typeof root.Payload?.body !== "string") return undefined;
    const body = JSON.parse(Buffer.from(root.Payload.body, "base64").toString("utf8")) as {
      spec?: { signature?: { publicKey?: { content?: unknown } } };
    };
    const content = body.spec?.signature?.publicKey?.content;
    if (typeof content !== "string") return undefined;
    const blocks = pemBlocks(Buffer.from(content, "base64").toString("utf8"));
    const block = blocks[0];
    if (block?.label !== "PUBLIC KEY") return undefined;
    return sha256(block.der).toString("hex");
  } catch {
    return undefined;
  }
}

/** One exact-keys level of containers/image's paranoid decoding (internal/json.go). */
function exactObject(
  node: JsonNode | undefined,
  where: string,
  keys: readonly string[],
): Map<string, JsonNode> {
  if (node?.type !== "object") throw invalid(`${where} is not a JSON object`);
  for (const k of node.entries.keys())
    if (!keys.includes(k)) throw invalid(`unknown key ${JSON.stringify(k)} in ${where}`);
  for (const k of keys)
    if (!node.entries.has(k)) throw invalid(`key ${JSON.stringify(k)} missing in ${where}`);
  return node.entries;
}

function stringField(node: JsonNode | undefined, where: string): string {
  if (node?.type !== "string") throw invalid(`${where} is not a string`);
  return node.value;
}

function int64Field(node: JsonNode | undefined, where: string): number {
  if (node?.type !== "number" || !/^-?(?:0|[1-9][0-9]*)$/.test(node.raw))
    throw invalid(`${where} is not an integer`);
  const n = Number(node.raw);
  if (!Number.isSafeInteger(n)) throw invalid(`${where} is out of range`);
  return n;
}

function objectPath(
  node: JsonNode | undefined,
  path: readonly string[],
  where: string,
): JsonNode | undefined {
  let current = node;
  for (const key of path) {
    if (current?.type !== "object") throw invalid(`${where}: ${path.join(".")} is missing`);
    current = current.entries.get(key);
  }
  return current;
}

/**
 * Verifies a cosign Rekor bundle (the `dev.sigstore.cosign/bundle` annotation): the
 * SignedEntryTimestamp is an ECDSA/SHA-256 signature by a Rekor key over the RFC 8785
 * canonical JSON of its Payload, and the hashedrekord entry it carries must name exactly
 * this signature, this payload and this key or certificate (containers/image
 * signature/internal/rekor_set.go `VerifyRekorSET`; cosign pkg/cosign/bundle).
 */
export function verifyRekorBundle(
  bundle: string,
  rekorKeys: readonly SigstoreKey[],
  expected: { signature: Uint8Array; payload: Uint8Array; publicKeyOrCertDer: Uint8Array },
): RekorEntry {
  const root = parseJsonStrict(bundle, "SIGNATURE_INVALID", "the Rekor bundle");
  const top = exactObject(root, "the Rekor bundle", ["SignedEntryTimestamp", "Payload"]);
  const set = strictBase64(
    stringField(top.get("SignedEntryTimestamp"), "SignedEntryTimestamp"),
    "SignedEntryTimestamp",
  );
  const payloadNode = top.get("Payload")!;
  if (payloadNode.type !== "object") throw invalid("the Rekor bundle Payload is not an object");
  const canonical = Buffer.from(canonicalJson(payloadNode), "utf8");

  const rekorKey = rekorKeys.find(
    (k) => k.key.asymmetricKeyType === "ec" && verifyWithKey(k.key, canonical, set),
  );
  if (rekorKey === undefined) {
    throw invalid(`the Rekor SignedEntryTimestamp does not verify with the trusted Rekor key(s)`, {
      rekorKeys: rekorKeys.map((k) => k.id),
    });
  }

  // Read the canonical bytes that were verified, not the delivered text (as containers/image does).
  const verifiedPayload = parseJsonStrict(
    canonical.toString("utf8"),
    "SIGNATURE_INVALID",
    "the Rekor SET payload",
  );
  const p = exactObject(verifiedPayload, "the Rekor SET payload", [
    "body",
    "integratedTime",
    "logIndex",
    "logID",
  ]);
  const body = strictBase64(stringField(p.get("body"), "Payload.body"), "Payload.body");
  const integratedTime = int64Field(p.get("integratedTime"), "Payload.integratedTime");
  const logIndex = int64Field(p.get("logIndex"), "Payload.logIndex");
  const logID = stringField(p.get("logID"), "Payload.logID");

  let bodyText: string;
  try {
    bodyText = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch (err) {
    throw new SigferryError("SIGNATURE_INVALID", "the Rekor entry body is not UTF-8", {
      cause: err,
    });
  }
  const entry = parseJsonStrict(bodyText, "SIGNATURE_INVALID", "the Rekor entry body");
  const where = "the Rekor entry";
  if (stringField(objectPath(entry, ["kind"], where), "kind") !== "hashedrekord") {
    throw invalid("the Rekor entry is not a hashedrekord");
  }
  const apiVersion = stringField(objectPath(entry, ["apiVersion"], where), "apiVersion");
  if (apiVersion !== "0.0.1")
    throw invalid(`unsupported hashedrekord version ${JSON.stringify(apiVersion)}`);

  // The key (or certificate) in the entry must be the one the signature is checked with.
  const keyPem = strictBase64(
    stringField(
      objectPath(entry, ["spec", "signature", "publicKey", "content"], where),
      "publicKey.content",
    ),
    "publicKey.content",
  ).toString("utf8");
  const blocks = pemBlocks(keyPem);
  if (blocks.length !== 1 || blocks.trailing)
    throw invalid("the Rekor entry publicKey is not a single PEM block");
  if (!blocks[0]!.der.equals(expected.publicKeyOrCertDer))
    throw invalid("the Rekor entry names another key or certificate");

  const loggedSignature = strictBase64(
    stringField(objectPath(entry, ["spec", "signature", "content"], where), "signature.content"),
    "signature.content",
  );
  if (!loggedSignature.equals(expected.signature))
    throw invalid("the Rekor entry names another signature");

  const algorithm = stringField(
    objectPath(entry, ["spec", "data", "hash", "algorithm"], where),
    "hash.algorithm",
  );
  if (algorithm !== "sha256")
    throw invalid(`unexpected hashedrekord hash algorithm ${JSON.stringify(algorithm)}`);
  const value = stringField(
    objectPath(entry, ["spec", "data", "hash", "value"], where),
    "hash.value",
  );
  if (
    !/^(?:[0-9a-fA-F]{2})*$/.test(value) ||
    !Buffer.from(value, "hex").equals(sha256(expected.payload))
  ) {
    throw invalid("the Rekor entry names another payload");
  }
  return { integratedTime, logIndex, logID, rekorKeyId: rekorKey.id };
}

function leafCertificate(annotations: Record<string, string>): X509Certificate {
  const pem = annotations[ANNOTATION_CERTIFICATE];
  if (pem === undefined) throw invalid(`missing ${ANNOTATION_CERTIFICATE} annotation`);
  const certs = certificatesFromPem(pem, ANNOTATION_CERTIFICATE);
  if (certs.length !== 1)
    throw invalid(`${ANNOTATION_CERTIFICATE} holds ${certs.length} certificates, not one`);
  return certs[0]!;
}

/** The chain annotation minus its last certificate (presumably the root, which only the policy may supply). */
function chainAnnotation(annotations: Record<string, string>): X509Certificate[] {
  const pem = annotations[ANNOTATION_CHAIN];
  if (pem === undefined || pem.length === 0) return [];
  return certificatesFromPem(pem, ANNOTATION_CHAIN).slice(0, -1);
}

function certificatesFromPem(pem: string, where: string): X509Certificate[] {
  let blocks: PemBlock[];
  try {
    blocks = pemBlocks(pem);
  } catch (err) {
    throw new SigferryError("SIGNATURE_INVALID", `${where} is not PEM`, { cause: err });
  }
  return blocks
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => {
      try {
        return new X509Certificate(b.der);
      } catch (err) {
        throw new SigferryError("SIGNATURE_INVALID", `${where} holds an unreadable certificate`, {
          cause: err,
        });
      }
    });
}

/** PKI subject rules of containers/image pki_cert.go: the email among the SAN emails, the hostname per VerifyHostname. */
function matchSubject(
  leaf: X509Certificate,
  subject: { email?: string; hostname?: string },
): string {
  const matched: string[] = [];
  if (subject.email) {
    const emails = sanEmails(leaf);
    if (!emails.includes(subject.email)) {
      throw wrongSigner(
        `required email ${subject.email} not in the certificate (${emails.join(", ") || "none"})`,
      );
    }
    matched.push(subject.email);
  }
  if (subject.hostname) {
    const isIp = /^[0-9.]+$/.test(subject.hostname) || subject.hostname.includes(":");
    const ok = isIp
      ? leaf.checkIP(subject.hostname) !== undefined
      : leaf.checkHost(subject.hostname, {
          subject: "never",
          wildcards: true,
          partialWildcards: false,
        }) !== undefined;
    if (!ok) throw wrongSigner(`the certificate is not valid for hostname ${subject.hostname}`);
    matched.push(subject.hostname);
  }
  return matched.join(" ");
}

/** A certificate's subject for messages (node gives undefined for an empty subject, as Fulcio issues). */
function nameOf(cert: X509Certificate): string {
  const subject = cert.subject as string | undefined;
  return subject ? subject.replace(/\n/g, ", ") : `(empty subject, sha256 ${cert.fingerprint256})`;
}

function validAt(cert: X509Certificate, at: Date, role: string): void {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (Number.isNaN(from) || Number.isNaN(to))
    throw invalid(`${role} certificate has an unreadable validity period`);
  if (at.getTime() < from || at.getTime() > to) {
    throw invalid(
      `${role} certificate ${nameOf(cert)} is not valid at ${at.toISOString()} (valid ${cert.validFrom} to ${cert.validTo})`,
    );
  }
}

/** Go's checkChainForKeyUsage for code signing: every certificate that lists extended key usages must allow it. */
function allowsCodeSigning(cert: X509Certificate): boolean {
  const eku = cert.keyUsage as string[] | undefined; // node: the extended key usage OIDs, undefined when absent
  return eku === undefined || eku.includes(OID_CODE_SIGNING) || eku.includes(OID_ANY_EKU);
}

function checkExtensions(cert: X509Certificate, role: string): readonly Extension[] {
  const extensions = extensionsOf(cert);
  for (const ext of extensions) {
    if (ext.critical && !HANDLED_CRITICAL.has(ext.oid))
      throw invalid(`${role} certificate has unhandled critical extension ${ext.oid}`);
    // Go enforces name constraints; sigferry does not implement them, so it refuses rather than ignores them.
    if (ext.oid === OID_NAME_CONSTRAINTS) {
      throw new SigferryError(
        "SIGNATURE_UNSUPPORTED",
        `${role} certificate carries name constraints, which sigferry does not evaluate`,
      );
    }
  }
  return extensions;
}

/**
 * Builds and checks a path leaf → intermediates → one of `roots`, as Go's
 * x509.Certificate.Verify with KeyUsages [CodeSigning] and CurrentTime `at`: each
 * signature, issuer name (node checkIssued), validity at `at`, CA flag and path length
 * on intermediates, code-signing usage. Returns the chain, leaf first.
 */
function verifyChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  at: Date,
): X509Certificate[] {
  checkExtensions(leaf, "the signing");
  validAt(leaf, at, "the signing");
  if (!allowsCodeSigning(leaf))
    throw invalid("the signing certificate does not allow code signing");
  const isRoot = (c: X509Certificate): boolean => roots.some((r) => r.raw.equals(c.raw));
  if (isRoot(leaf)) return [leaf];

  const problems: string[] = [];
  // Untrusted chain annotations can be built to make path search explode; Go caps
  // signature checks per Verify at 100 (crypto/x509 maxChainSignatureChecks), so do we.
  let budget = MAX_CHAIN_SIGNATURE_CHECKS;
  const issuedBy = (cert: X509Certificate, issuer: X509Certificate): boolean => {
    if (!cert.checkIssued(issuer)) return false;
    if (--budget < 0)
      throw wrongSigner("the certificate chain search exceeded its signature-check budget");
    try {
      return cert.verify(issuer.publicKey);
    } catch {
      return false;
    }
  };
  const extend = (chain: X509Certificate[]): X509Certificate[] | undefined => {
    const current = chain[chain.length - 1]!;
    if (chain.length > MAX_CHAIN_DEPTH) return undefined;
    for (const candidate of [...roots, ...intermediates]) {
      if (chain.some((c) => c.raw.equals(candidate.raw))) continue;
      if (!issuedBy(current, candidate)) continue;
      const root = isRoot(candidate);
      const role = root ? "root" : "intermediate";
      try {
        validAt(candidate, at, role);
        const extensions = checkExtensions(candidate, role);
        // Go requires the CA flag on intermediates (roots are trusted as given).
        if (!root && !candidate.ca) throw invalid(`intermediate ${nameOf(candidate)} is not a CA`);
        const pathLen = maxPathLength(extensions);
        if (pathLen !== undefined && chain.length - 1 > pathLen)
          throw invalid(`${role} ${nameOf(candidate)} path length exceeded`);
        if (!allowsCodeSigning(candidate))
          throw invalid(`${role} ${nameOf(candidate)} does not allow code signing`);
      } catch (err) {
        if (!isSigferryError(err)) throw err;
        problems.push(err.message);
        continue;
      }
      if (root) return [...chain, candidate];
      const found = extend([...chain, candidate]);
      if (found) return found;
    }
    return undefined;
  };
  const chain = extend([leaf]);
  if (chain === undefined) {
    const why = problems.length > 0 ? `: ${problems.join("; ")}` : "";
    throw new SigferryError(
      "UNTRUSTED_SIGNER",
      `the signing certificate does not chain to a trusted root${why}`,
      {
        details: { subject: nameOf(leaf), issuer: leaf.issuer },
      },
    );
  }
  return chain;
}

function maxPathLength(extensions: readonly Extension[]): number | undefined {
  const bc = extensions.find((e) => e.oid === OID_BASIC_CONSTRAINTS);
  if (bc === undefined) return undefined;
  const seq = readTlv(bc.value, 0);
  for (const item of children(seq.value))
    if (item.tag === 0x02) return Number(bigIntOf(item.value));
  return undefined;
}

/** rfc822Name entries of the SubjectAltName extension, exactly as encoded (Go compares them exactly). */
function sanEmails(cert: X509Certificate): string[] {
  const san = extensionsOf(cert).find((e) => e.oid === OID_SAN);
  if (san === undefined) return [];
  return children(readTlv(san.value, 0).value)
    .filter((n) => n.tag === 0x81)
    .map((n) => Buffer.from(n.value).toString("latin1"));
}

/** The Fulcio v1 issuer extension (raw URL bytes); refuses duplicates as containers/image does. */
function fulcioIssuer(cert: X509Certificate): string {
  const found = extensionsOf(cert).filter((e) => e.oid === OID_FULCIO_ISSUER);
  if (found.length === 0) throw invalid("the Fulcio certificate has no OIDC issuer extension");
  if (found.length > 1)
    throw invalid("the Fulcio certificate has a duplicate OIDC issuer extension");
  return Buffer.from(found[0]!.value).toString("utf8");
}

// --- a minimal DER reader, enough for certificate extensions ---

interface Tlv {
  tag: number;
  value: Uint8Array;
  end: number;
}

interface Extension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

function readTlv(bytes: Uint8Array, pos: number): Tlv {
  const tag = bytes[pos];
  const first = bytes[pos + 1];
  if (tag === undefined || first === undefined || (tag & 0x1f) === 0x1f)
    throw invalid("malformed certificate DER");
  let length = first;
  let offset = pos + 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) throw invalid("malformed certificate DER length");
    length = 0;
    for (let i = 0; i < n; i++) {
      const b = bytes[offset + i];
      if (b === undefined) throw invalid("truncated certificate DER");
      length = length * 256 + b;
    }
    offset += n;
  }
  if (offset + length > bytes.length) throw invalid("truncated certificate DER");
  return { tag, value: bytes.subarray(offset, offset + length), end: offset + length };
}

function children(bytes: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const t = readTlv(bytes, pos);
    out.push(t);
    pos = t.end;
  }
  return out;
}

function bigIntOf(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function oidString(bytes: Uint8Array): string {
  const parts: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (parts.length === 0)
        parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

/** Parsed extensions per certificate: trusted roots and intermediates are checked for every artifact. */
const parsedExtensions = new WeakMap<X509Certificate, readonly Extension[]>();

/** The extensions of a certificate, parsed once per X509Certificate (callers only read them). */
function extensionsOf(cert: X509Certificate): readonly Extension[] {
  let extensions = parsedExtensions.get(cert);
  if (extensions === undefined) {
    extensions = certificateExtensions(cert.raw);
    parsedExtensions.set(cert, extensions);
  }
  return extensions;
}

/** The extensions of a DER certificate: Certificate → tbsCertificate → [3] → Extensions (RFC 5280 §4.1). */
function certificateExtensions(der: Uint8Array): Extension[] {
  const cert = readTlv(der, 0);
  const tbs = children(cert.value)[0];
  if (tbs === undefined) throw invalid("malformed certificate");
  const wrapper = children(tbs.value).find((t) => t.tag === 0xa3);
  if (wrapper === undefined) return [];
  const list = readTlv(wrapper.value, 0);
  return children(list.value).map((ext) => {
    const parts = children(ext.value);
    const oid = parts[0];
    if (oid?.tag !== 0x06) throw invalid("malformed certificate extension");
    const critical = parts[1]?.tag === 0x01 ? parts[1].value[0] !== 0 : false;
    const value = parts.find((p) => p.tag === 0x04);
    if (value === undefined) throw invalid("malformed certificate extension");
    return { oid: oidString(oid.value), critical, value: value.value };
  });
}
