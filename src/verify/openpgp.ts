/**
 * OpenPGP "atomic container signatures", verified the way the Cluster Version
 * Operator verifies them (library-go pkg/verify/verify.go, which uses Go's
 * golang.org/x/crypto/openpgp `ReadMessage`), then decoded with the CVO's
 * payload rules (src/core/payload.ts).
 *
 * The message is split into its packets here, by one small parser, so that the
 * bytes whose signature is checked are exactly the bytes whose JSON is read.
 * v4 signature packets are checked as openpgp.js checks a detached signature over
 * those literal bytes: openpgp.js parses the packet and judges the key; for RSA
 * binary signatures with SHA-256/384/512 (Red Hat's release signatures) the rest
 * of its check is replayed here with node:crypto and a KeyObject made once per
 * key (verifyV4Rsa; openpgp.js imports the key into WebCrypto again for every
 * signature), and any other signature goes to openpgp.verify whole. v3 signature
 * packets, which openpgp.js 6 silently drops but x/crypto/openpgp and gpg still
 * verify, are checked here with node:crypto
 * (RFC 4880 §5.2.2, §5.2.4): Red Hat's RCM signed with v3 packets until at
 * least 2022 (real/gpg-signatures/operator-bundle-4-identities).
 */
import {
  constants,
  createPublicKey,
  createHash,
  verify as cryptoVerify,
  type KeyObject,
} from "node:crypto";
import { inflateRawSync, inflateSync } from "node:zlib";
import type * as OpenPGP from "openpgp";
import { SigferryError } from "../errors.js";
import type { Digest } from "../core/digest.js";
import { parseAtomicPayload } from "../core/payload.js";
import { normalizeFingerprint } from "../core/trust.js";

// openpgp.js is loaded on first use, not with this module: loading it takes about
// 50 ms of the main thread (half of it evaluating the module), which `bundle create`
// and `bundle apply` would otherwise spend before their first request instead of
// while it is on the wire.
let openpgp: typeof OpenPGP;
let loadingOpenpgp: Promise<void> | undefined;

/** Loads openpgp.js once; every exported function that uses it awaits this first. */
function loadOpenpgp(): Promise<void> {
  return (loadingOpenpgp ??= import("openpgp").then((m) => {
    openpgp = m;
  }));
}

/** A public OpenPGP key, loaded and described. */
export interface OpenPgpKey {
  /** 40 upper-case hex digits (v4 fingerprint of the primary key). */
  fingerprint: string;
  userIds: string[];
  armored: string;
  key: OpenPGP.PublicKey;
}

/** The outcome of a verified atomic signature. */
export interface AtomicVerification {
  /** Fingerprint of the trusted primary key that made the signature (upper-case hex). */
  signer: string;
  /** The docker-reference the signature vouches for. */
  identity: string;
  /** The signed literal data (the JSON payload), byte for byte. */
  payload: Uint8Array;
  /** The issuer key id in the signature packet (16 upper-case hex digits; a subkey's if a subkey signed). */
  keyId: string;
  /** Signature creation time. */
  created: Date;
  /** Signature packet version: 4, or the legacy 3. */
  packetVersion: 3 | 4;
  /** `optional.creator` from the payload, when present. */
  creator?: string;
}

/** The CVO reads at most this many bytes of a signature (library-go pkg/verify/store/sigstore: io.LimitReader 50 KiB). */
export const MAX_SIGNATURE_BYTES = 50 * 1024;

/** An upper bound on decompressed signature contents: real payloads are under 1 KiB; this stops compression bombs. */
const MAX_DECOMPRESSED_BYTES = 4 * 1024 * 1024;

const TAG = {
  PKESK: 1,
  SIGNATURE: 2,
  SKESK: 3,
  ONE_PASS: 4,
  COMPRESSED: 8,
  SED: 9,
  MARKER: 10,
  LITERAL: 11,
  SEIPD: 18,
  AEAD: 20,
} as const;

/** One ASCII-armored key block; a key file may hold several one after another. */
const ARMORED_BLOCK =
  /-----BEGIN PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----/g;

/**
 * OpenPGP hash algorithm ids (RFC 4880 §9.4) for which v4 RSA signatures are checked with
 * node:crypto: the ones openpgp.js hands to WebCrypto (it checks SHA-224 with its own BigInt
 * code, so that one, like every other case, stays with openpgp.js).
 */
const V4_NODE_HASHES: ReadonlyMap<number, string> = new Map([
  [8, "sha256"],
  [9, "sha384"],
  [10, "sha512"],
]);

/** OpenPGP hash algorithm ids (RFC 4880 §9.4) we accept in v3 packets, with node:crypto names. */
const V3_HASHES: ReadonlyMap<number, string> = new Map([
  [8, "sha256"],
  [9, "sha384"],
  [10, "sha512"],
  [11, "sha224"],
]);

interface Packet {
  tag: number;
  body: Uint8Array;
}

interface OnePass {
  sigType: number;
  hashAlgo: number;
  pubAlgo: number;
  keyId: string;
}

interface SignedMessage {
  onePass: OnePass;
  literal: Uint8Array;
  signature: Uint8Array;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex").toUpperCase();
}

function malformed(reason: string, cause?: unknown): SigferryError {
  return new SigferryError("SIGNATURE_INVALID", `not a valid OpenPGP signed message: ${reason}`, {
    cause,
    details: { reason },
  });
}

function unsupported(reason: string): SigferryError {
  return new SigferryError("SIGNATURE_UNSUPPORTED", `unsupported OpenPGP signature: ${reason}`, {
    details: { reason },
  });
}

/**
 * Loads every public key in an armored or binary OpenPGP file; throws KEY_INVALID
 * naming `source` when the data is not a public key (corrupt, empty, or private).
 */
export async function loadOpenPgpKeys(
  data: string | Uint8Array,
  source: string,
): Promise<OpenPgpKey[]> {
  await loadOpenpgp();
  const keys: OpenPGP.Key[] = [];
  try {
    const text =
      typeof data === "string"
        ? data
        : looksArmored(data)
          ? Buffer.from(data).toString("utf8")
          : undefined;
    if (text === undefined) {
      keys.push(...(await openpgp.readKeys({ binaryKeys: data as Uint8Array })));
    } else {
      // openpgp.js reads only the first armor block of a text; gpg reads them all, and a
      // published key file may be several blocks one after another.
      const blocks = text.match(ARMORED_BLOCK) ?? [text];
      for (const block of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys: block })));
    }
  } catch (err) {
    throw new SigferryError(
      "KEY_INVALID",
      `${source}: not a readable OpenPGP public key (${err instanceof Error ? err.message : String(err)})`,
      { cause: err, details: { file: source } },
    );
  }
  if (keys.length === 0) {
    throw new SigferryError("KEY_INVALID", `${source}: holds no OpenPGP key`, {
      details: { file: source },
    });
  }
  return keys.map((key) => {
    // A private key in a keyring is a mistake worth stopping for: it must not travel.
    if (key.isPrivate()) {
      throw new SigferryError(
        "KEY_INVALID",
        `${source}: holds a private key; pass the public key only`,
        {
          details: { file: source },
        },
      );
    }
    const publicKey = key;
    return {
      fingerprint: publicKey.getFingerprint().toUpperCase(),
      userIds: publicKey.getUserIDs(),
      armored: publicKey.armor(),
      key: publicKey,
    };
  });
}

/**
 * True for ASCII-armored input. A binary OpenPGP packet starts with a tag byte that
 * has its high bit set; anything else is read as text, and is armored when it holds an
 * armor header line anywhere: published key files often keep `gpg --list-keys` output
 * above the armor (Red Hat's do), which the armor format (RFC 4880 §6.2) allows.
 */
function looksArmored(data: Uint8Array): boolean {
  if (data.length === 0 || (data[0]! & 0x80) !== 0) return false;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).includes("-----BEGIN PGP");
}

/**
 * Keeps only the keys whose fingerprint is one of `pins` (used on key files fetched
 * from the network, which may hold several keys); throws KEY_PIN_MISMATCH if none is.
 */
export function selectPinned(keys: readonly OpenPgpKey[], pins: readonly string[]): OpenPgpKey[] {
  const wanted = new Set(pins.map(normalizeFingerprint));
  const selected = keys.filter((k) => wanted.has(k.fingerprint));
  if (selected.length === 0) {
    throw new SigferryError(
      "KEY_PIN_MISMATCH",
      `none of the keys (${keys.map((k) => k.fingerprint).join(", ") || "none"}) matches a pinned fingerprint (${[...wanted].join(", ")})`,
      { details: { found: keys.map((k) => k.fingerprint), pins: [...wanted] } },
    );
  }
  return selected;
}

/**
 * Verifies an atomic container signature (binary OpenPGP message) for `expected`
 * against `trusted` keys, and returns the signer and the signed identity.
 *
 * Key expiry: a key must have been valid (not expired, not revoked, able to sign)
 * when the signature was made, as gpg and openpgp.js judge it; the signature's own
 * expiry is judged at `opts.date` (default: now). The CVO's x/crypto/openpgp is
 * looser (it never looks at key expiry), so a signature made after its key expired
 * is refused here although the CVO would take it; Red Hat's release keys never expire.
 */
export async function verifyAtomicSignature(
  sig: Uint8Array,
  expected: Digest,
  trusted: readonly OpenPgpKey[],
  opts: { date?: Date } = {},
): Promise<AtomicVerification> {
  await loadOpenpgp();
  const date = opts.date ?? new Date();
  if (sig.length > MAX_SIGNATURE_BYTES) {
    throw new SigferryError(
      "SIGNATURE_TOO_LARGE",
      `the signature is ${sig.length} bytes; the CVO reads at most ${MAX_SIGNATURE_BYTES}`,
      { details: { size: sig.length, limit: MAX_SIGNATURE_BYTES } },
    );
  }
  if (sig.length === 0) throw malformed("empty");
  // x/crypto's ReadMessage reads binary packets only; an armored signature never verifies in the CVO.
  if (looksArmored(sig))
    throw unsupported("the signature is ASCII-armored; the CVO reads binary signatures only");

  const message = readSignedMessage(sig);
  const version = message.signature[0];
  let verified: { keyId: string; created: Date; signer: OpenPgpKey };
  if (version === 3) {
    verified = await verifyV3(message, trusted, date);
  } else if (version === 4) {
    verified = await verifyV4(message, trusted, date);
  } else {
    throw unsupported(`signature packet version ${version} (the CVO reads versions 3 and 4)`);
  }

  const payload = parseAtomicPayload(message.literal, expected);
  const result: AtomicVerification = {
    signer: verified.signer.fingerprint,
    identity: payload.identity,
    payload: message.literal,
    keyId: verified.keyId,
    created: verified.created,
    packetVersion: version,
  };
  if (payload.creator !== undefined) result.creator = payload.creator;
  return result;
}

/** Finds the trusted key holding `keyId` (primary or subkey), or throws UNTRUSTED_SIGNER naming the issuer. */
function findTrusted(
  trusted: readonly OpenPgpKey[],
  keyId: string,
  issuerFingerprint?: string,
): OpenPgpKey {
  for (const candidate of trusted) {
    if (keysWithId(candidate, keyId).length > 0) return candidate;
  }
  throw untrustedSigner(trusted, keyId, issuerFingerprint);
}

/** The primary key and subkeys of `key` whose 64-bit key id is `keyId` (upper-case hex). */
function keysWithId(key: OpenPgpKey, keyId: string): (OpenPGP.PublicKey | OpenPGP.Subkey)[] {
  return key.key.getKeys().filter((k) => k.getKeyID().toHex().toUpperCase() === keyId);
}

function untrustedSigner(
  trusted: readonly OpenPgpKey[],
  keyId: string,
  issuerFingerprint?: string,
): SigferryError {
  const by =
    issuerFingerprint !== undefined ? `${keyId} (fingerprint ${issuerFingerprint})` : keyId;
  const names = trusted.map((k) => k.fingerprint);
  return new SigferryError(
    "UNTRUSTED_SIGNER",
    `the signature was made by key ${by}, which is not among the trusted keys (${names.join(", ") || "none"})`,
    { details: { issuerKeyId: keyId, issuerFingerprint, trusted: names } },
  );
}

/** The one-pass signature packet announces what the signature packet must be; a disagreement is a forged frame. */
function checkOnePass(
  onePass: OnePass,
  keyId: string,
  sigType: number,
  hashAlgo: number,
  pubAlgo: number,
): void {
  if (
    onePass.keyId !== keyId ||
    onePass.sigType !== sigType ||
    onePass.hashAlgo !== hashAlgo ||
    onePass.pubAlgo !== pubAlgo
  ) {
    throw malformed("the one-pass signature packet does not match the signature packet");
  }
}

async function verifyV4(
  message: SignedMessage,
  trusted: readonly OpenPgpKey[],
  date: Date,
): Promise<{ keyId: string; created: Date; signer: OpenPgpKey }> {
  const materialOffset = checkV4Framing(message.signature);
  const signature = await readSignaturePacket(message.signature);
  const packet = signature.packets[0];
  if (signature.packets.length !== 1 || packet === undefined)
    throw malformed("expected exactly one signature packet");
  // openpgp.js leaves issuerKeyID unset when no issuer subpacket survived parsing.
  const issuerKeyId = packet.issuerKeyID as OpenPGP.KeyID | undefined;
  if (issuerKeyId === undefined) throw malformed("the signature packet names no issuer");
  const keyId = issuerKeyId.toHex().toUpperCase();
  const issuerFingerprint = packet.issuerFingerprint ? hex(packet.issuerFingerprint) : undefined;
  const signatureType = packet.signatureType as number | null;
  if (signatureType !== 0x00 && signatureType !== 0x01) {
    throw unsupported(
      `signature type 0x${(signatureType ?? 0).toString(16)} is not a document signature`,
    );
  }
  checkOnePass(
    message.onePass,
    keyId,
    signatureType,
    packet.hashAlgorithm ?? -1,
    packet.publicKeyAlgorithm ?? -1,
  );
  const signer = findTrusted(trusted, keyId, issuerFingerprint);
  // A 64-bit key id can be made to collide; the fingerprint, when the packet names one, cannot.
  if (
    issuerFingerprint !== undefined &&
    signer.key.getKeys().every((k) => k.getFingerprint().toUpperCase() !== issuerFingerprint)
  ) {
    throw untrustedSigner(trusted, keyId, issuerFingerprint);
  }

  // The key openpgp.js would pick: the first of the signer's keys with the issuer key id
  // (findTrusted found one).
  const signingKey = keysWithId(signer, keyId)[0];
  if (signingKey === undefined) throw untrustedSigner(trusted, keyId, issuerFingerprint);
  const rsa = nodeRsaCheck(packet, signingKey, message.signature.subarray(materialOffset));
  let verified: Promise<unknown>;
  if (rsa !== undefined) {
    verified = verifyV4Rsa(packet, rsa, message.literal, signer, signingKey, date);
  } else {
    // Detached verification over the literal bytes we parsed: what is verified is what is read.
    const literalMessage = await openpgp.createMessage({ binary: message.literal });
    const result = await openpgp.verify({
      message: literalMessage,
      signature,
      verificationKeys: [signer.key],
      date,
      format: "binary",
    });
    const check = result.signatures[0];
    if (result.signatures.length !== 1 || check === undefined)
      throw malformed("expected exactly one signature");
    verified = check.verified;
  }
  try {
    await verified;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new SigferryError(
      "SIGNATURE_INVALID",
      `the signature by ${signer.fingerprint} does not verify: ${reason}`,
      {
        cause: err,
        details: { reason, signer: signer.fingerprint, keyId },
      },
    );
  }
  return { keyId, created: packet.created ?? new Date(0), signer };
}

/**
 * Parses a v4 signature packet body with openpgp.js's own packet parser. `readSignature`
 * runs the same parser inside its stream machinery, which costs several times the parse;
 * on any parse error it is called after all, so that what it makes of a bad packet (an
 * error, or an unparseable packet that names no issuer) stays the outcome.
 */
async function readSignaturePacket(body: Uint8Array): Promise<OpenPGP.Signature> {
  try {
    const packet = new openpgp.SignaturePacket();
    packet.read(body);
    const packets = new openpgp.PacketList<OpenPGP.SignaturePacket>();
    packets.push(packet);
    return new openpgp.Signature(packets);
  } catch {
    // Fall through to the canonical path.
  }
  try {
    return await openpgp.readSignature({ binarySignature: framePacket(TAG.SIGNATURE, body) });
  } catch (err) {
    throw malformed(`signature packet: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/** What node:crypto needs to check an RSA signature as openpgp.js's WebCrypto path does. */
interface NodeRsaCheck {
  key: KeyObject;
  hashName: string;
  /** The signature value m^d mod n, left-padded to the modulus length as openpgp.js pads it. */
  value: Uint8Array;
}

/**
 * The node:crypto form of a v4 signature check, when openpgp.js would check it with
 * WebCrypto RSASSA-PKCS1-v1_5 (same OpenSSL verification): a binary document signature,
 * RSA with the signing key's own algorithm id, SHA-256/384/512, a key of at least 2047 bits
 * whose modulus fills its MPI, a signature value no longer than the modulus. Anything else
 * (undefined) is left to openpgp.js whole, with its own error for each case.
 */
function nodeRsaCheck(
  packet: OpenPGP.SignaturePacket,
  signingKey: OpenPGP.PublicKey | OpenPGP.Subkey,
  material: Uint8Array,
): NodeRsaCheck | undefined {
  const hashName = V4_NODE_HASHES.get(packet.hashAlgorithm ?? -1);
  const algorithm = packet.publicKeyAlgorithm as number | null;
  if (
    hashName === undefined ||
    packet.signatureType !== openpgp.enums.signature.binary ||
    (algorithm !== 1 && algorithm !== 3) ||
    algorithm !== (signingKey.keyPacket.algorithm as number)
  ) {
    return undefined;
  }
  const params = signingKey.keyPacket.publicParams as { n?: Uint8Array; e?: Uint8Array };
  if (params.n === undefined || params.e === undefined) return undefined;
  let key: KeyObject;
  try {
    key = rsaKeyObject(signingKey.keyPacket, params.n, params.e);
  } catch {
    return undefined;
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2047 || Math.ceil(bits / 8) !== params.n.length) return undefined;
  // The packet parsed, so the material is exactly one MPI (openpgp.js refuses trailing bytes).
  if (material.length < 2) return undefined;
  const length = Math.ceil(((material[0]! << 8) | material[1]!) / 8);
  if (material.length !== 2 + length || length > params.n.length) return undefined;
  const value = new Uint8Array(params.n.length);
  value.set(material.subarray(2), params.n.length - length);
  return { key, hashName, value };
}

/**
 * openpgp.js's verification of a v4 document signature, step for step and message for
 * message (SignaturePacket.verify, then the key checks of createVerificationObject in
 * openpgp.js 6), with the RSA step on node:crypto; the key's validity at signing time is
 * still judged by openpgp.js (`getSigningKey`). Rejects with openpgp.js's reason.
 */
async function verifyV4Rsa(
  packet: OpenPGP.SignaturePacket,
  rsa: NodeRsaCheck,
  literal: Uint8Array,
  signer: OpenPgpKey,
  signingKey: OpenPGP.PublicKey | OpenPGP.Subkey,
  date: Date,
): Promise<void> {
  const config = openpgp.config;
  const signatureData = packet.signatureData!;
  const signedHashValue = packet.signedHashValue!;
  const created = packet.created!;
  // RFC 4880 §5.2.4: data ‖ the hashed part of the packet ‖ 0x04 0xFF ‖ its length.
  const trailer = Buffer.alloc(6);
  trailer[0] = 0x04;
  trailer[1] = 0xff;
  trailer.writeUInt32BE(signatureData.length, 2);
  const toHash = Buffer.concat([literal, signatureData, trailer]);
  const digest = createHash(rsa.hashName).update(toHash).digest();
  if (signedHashValue[0] !== digest[0] || signedHashValue[1] !== digest[1]) {
    throw new Error("Signed digest did not match");
  }
  let ok: boolean;
  try {
    ok = cryptoVerify(
      rsa.hashName,
      toHash,
      { key: rsa.key, padding: constants.RSA_PKCS1_PADDING },
      rsa.value,
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new Error("Signature verification failed");

  // openpgp.js judges times at whole seconds (util.normalizeDate).
  const at = new Date(Math.floor(date.getTime() / 1000) * 1000);
  if (created > at) throw new Error("Signature creation time is in the future");
  // A Date, or Infinity when the signature never expires.
  if (at.getTime() >= Number(packet.getExpirationTime())) throw new Error("Signature is expired");
  const hashName = rsa.hashName.toUpperCase();
  if (config.rejectHashAlgorithms.has(packet.hashAlgorithm!)) {
    throw new Error(`Insecure hash algorithm: ${hashName}`);
  }
  if (config.rejectMessageHashAlgorithms.has(packet.hashAlgorithm!)) {
    throw new Error(`Insecure message hash algorithm: ${hashName}`);
  }
  for (const { type, critical } of packet.unknownSubpackets) {
    if (critical) throw new Error(`Unknown critical signature subpacket type ${type}`);
  }
  for (const { name, critical } of packet.rawNotations) {
    if (critical && !config.knownNotations.includes(name)) {
      throw new Error(`Unknown critical notation: ${name}`);
    }
  }
  if (packet.revocationKeyClass !== null) {
    throw new Error(
      "This key is intended to be revoked with an authorized key, which OpenPGP.js does not support.",
    );
  }

  if (signingKey.getCreationTime() > created) throw new Error("Key is newer than the signature");
  // Whether the key could sign when the signature was made, as openpgp.js judges it.
  try {
    await signer.key.getSigningKey(signingKey.getKeyID(), created, undefined, config);
  } catch (err) {
    if (
      config.allowInsecureVerificationWithReformattedKeys &&
      err instanceof Error &&
      /Signature creation time is in the future/.test(err.message)
    ) {
      await signer.key.getSigningKey(signingKey.getKeyID(), date, undefined, config);
    } else {
      throw err;
    }
  }
}

/**
 * Verifies a v3 signature packet (RFC 4880 §5.2.2): hash(literal ‖ sigType ‖ created),
 * the left 16 bits of that hash, then RSA PKCS#1 v1.5, as x/crypto/openpgp
 * `VerifySignatureV3` does.
 */
async function verifyV3(
  message: SignedMessage,
  trusted: readonly OpenPgpKey[],
  date: Date,
): Promise<{ keyId: string; created: Date; signer: OpenPgpKey }> {
  const s = message.signature;
  if (s.length < 19 || s[1] !== 5) throw malformed("v3 signature packet header");
  const sigType = s[2]!;
  const createdSeconds = Buffer.from(s.subarray(3, 7)).readUInt32BE(0);
  const created = new Date(createdSeconds * 1000);
  const keyId = hex(s.subarray(7, 15));
  const pubAlgo = s[15]!;
  const hashAlgo = s[16]!;
  const left16 = s.subarray(17, 19);
  const mpis = s.subarray(19);

  checkOnePass(message.onePass, keyId, sigType, hashAlgo, pubAlgo);
  if (sigType !== 0x00)
    throw unsupported(`v3 signature type 0x${sigType.toString(16)} (only binary documents)`);
  // 1 = RSA (encrypt or sign), 3 = RSA sign-only.
  if (pubAlgo !== 1 && pubAlgo !== 3)
    throw unsupported(`v3 signature with public-key algorithm ${pubAlgo} (only RSA)`);
  const hashName = V3_HASHES.get(hashAlgo);
  if (hashName === undefined) {
    // MD5 and SHA-1 are refused for v4 signatures by openpgp.js too.
    throw unsupported(`v3 signature with hash algorithm ${hashAlgo} (only SHA-2)`);
  }

  const signer = findTrusted(trusted, keyId);
  const signingKey = keysWithId(signer, keyId)[0];
  if (signingKey === undefined) throw untrustedSigner(trusted, keyId);

  // The same time rules openpgp.js applies to v4 signatures.
  if (created.getTime() > date.getTime()) {
    throw new SigferryError(
      "SIGNATURE_INVALID",
      `the signature was made in the future (${created.toISOString()})`,
      {
        details: { reason: "created after the verification date", keyId },
      },
    );
  }
  if (signingKey.getCreationTime().getTime() > created.getTime()) {
    throw new SigferryError("SIGNATURE_INVALID", `key ${keyId} is newer than the signature`, {
      details: { keyId },
    });
  }
  try {
    await signer.key.getSigningKey(signingKey.getKeyID(), created);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new SigferryError(
      "SIGNATURE_INVALID",
      `key ${signer.fingerprint} could not sign at ${created.toISOString()}: ${reason}`,
      { cause: err, details: { reason, signer: signer.fingerprint, keyId } },
    );
  }

  const rsaKey = rsaPublicKey(signingKey.keyPacket, keyId);
  const modulusBytes = Math.ceil((rsaKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  const signatureValue = readSingleMpi(mpis, modulusBytes);

  const trailer = new Uint8Array([sigType, ...s.subarray(3, 7)]);
  const hashed = Buffer.concat([message.literal, trailer]);
  const digest = createHash(hashName).update(hashed).digest();
  const ok =
    digest[0] === left16[0] &&
    digest[1] === left16[1] &&
    cryptoVerify(
      hashName,
      hashed,
      { key: rsaKey, padding: constants.RSA_PKCS1_PADDING },
      signatureValue,
    );
  if (!ok) {
    throw new SigferryError(
      "SIGNATURE_INVALID",
      `the v3 signature by ${signer.fingerprint} does not verify`,
      {
        details: { reason: "RSA verification failed", signer: signer.fingerprint, keyId },
      },
    );
  }
  return { keyId, created, signer };
}

/**
 * Checks that a v4 signature packet's lengths add up exactly (RFC 4880 §5.2.3):
 * openpgp.js tolerates some inconsistent framings that gpg and x/crypto reject, and
 * a signature the CVO cannot parse is worthless to carry. Returns where the
 * algorithm-specific fields (the signature value MPIs) start.
 */
function checkV4Framing(body: Uint8Array): number {
  let pos = 4; // version, signature type, public-key algorithm, hash algorithm
  for (const area of ["hashed", "unhashed"]) {
    if (pos + 2 > body.length)
      throw malformed(`v4 signature packet: truncated ${area} subpacket area`);
    const length = (body[pos]! << 8) | body[pos + 1]!;
    pos += 2;
    const end = pos + length;
    if (end > body.length)
      throw malformed(`v4 signature packet: ${area} subpacket area overruns the packet`);
    while (pos < end) {
      const first = body[pos]!;
      let size: number;
      if (first < 192) {
        size = first;
        pos += 1;
      } else if (first < 255) {
        if (pos + 2 > end)
          throw malformed(`v4 signature packet: truncated ${area} subpacket length`);
        size = ((first - 192) << 8) + body[pos + 1]! + 192;
        pos += 2;
      } else {
        if (pos + 5 > end)
          throw malformed(`v4 signature packet: truncated ${area} subpacket length`);
        size = Buffer.from(body.subarray(pos + 1, pos + 5)).readUInt32BE(0);
        pos += 5;
      }
      if (size < 1 || pos + size > end)
        throw malformed(`v4 signature packet: a ${area} subpacket overruns its area`);
      pos += size;
    }
  }
  pos += 2; // left 16 bits of the hash
  if (pos >= body.length) throw malformed("v4 signature packet: no signature value");
  const material = pos;
  while (pos < body.length) {
    if (pos + 2 > body.length) throw malformed("v4 signature packet: truncated MPI");
    const bytes = Math.ceil(((body[pos]! << 8) | body[pos + 1]!) / 8);
    pos += 2 + bytes;
    if (pos > body.length) throw malformed("v4 signature packet: an MPI overruns the packet");
  }
  return material;
}

/** The node:crypto form of an OpenPGP RSA public key packet (n, e). */
function rsaPublicKey(
  keyPacket: { algorithm: unknown; publicParams: object },
  keyId: string,
): KeyObject {
  const params = keyPacket.publicParams as { n?: Uint8Array; e?: Uint8Array };
  const algorithm = keyPacket.algorithm as number;
  if ((algorithm !== 1 && algorithm !== 3) || params.n === undefined || params.e === undefined) {
    throw unsupported(`key ${keyId} is not an RSA key, but the v3 signature is RSA`);
  }
  const key = rsaKeyObject(keyPacket, params.n, params.e);
  // openpgp.js refuses RSA keys under 2047 bits (config.minRSABits); so do we.
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2047)
    throw unsupported(`key ${keyId} is an RSA key under 2048 bits`);
  return key;
}

/** One KeyObject per OpenPGP key packet, made on first use instead of for every signature. */
const rsaKeyObjects = new WeakMap<object, KeyObject>();

/** The KeyObject for an RSA key packet's (n, e), made once per packet. */
function rsaKeyObject(keyPacket: object, n: Uint8Array, e: Uint8Array): KeyObject {
  let key = rsaKeyObjects.get(keyPacket);
  if (key === undefined) {
    key = createPublicKey({
      key: {
        kty: "RSA",
        n: Buffer.from(n).toString("base64url"),
        e: Buffer.from(e).toString("base64url"),
      },
      format: "jwk",
    });
    rsaKeyObjects.set(keyPacket, key);
  }
  return key;
}

/** Reads one MPI filling `rest` exactly, left-padded to the modulus length (OpenSSL wants the full length). */
function readSingleMpi(rest: Uint8Array, modulusBytes: number): Uint8Array {
  if (rest.length < 2) throw malformed("v3 signature has no MPI");
  const bits = (rest[0]! << 8) | rest[1]!;
  const length = Math.ceil(bits / 8);
  if (rest.length !== 2 + length) throw malformed("v3 signature MPI length");
  if (length > modulusBytes) throw malformed("v3 signature MPI longer than the key modulus");
  const out = new Uint8Array(modulusBytes);
  out.set(rest.subarray(2), modulusBytes - length);
  return out;
}

/** A packet re-framed with a new-format header (RFC 4880 §4.2.2, five-octet length). */
function framePacket(tag: number, body: Uint8Array): Uint8Array {
  const header = Buffer.alloc(6);
  header[0] = 0xc0 | tag;
  header[1] = 0xff;
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

/**
 * Splits a binary signed message into one-pass signature, literal data and signature,
 * unwrapping one compressed data packet: the shape `gpg --sign` and x/crypto produce.
 */
function readSignedMessage(bytes: Uint8Array): SignedMessage {
  let packets = readPackets(bytes);
  if (packets.length === 1 && packets[0]!.tag === TAG.COMPRESSED) {
    packets = readPackets(decompress(packets[0]!.body));
  }
  const tags = packets.map((p) => p.tag);
  if (
    tags.some(
      (t) =>
        t === TAG.PKESK || t === TAG.SKESK || t === TAG.SED || t === TAG.SEIPD || t === TAG.AEAD,
    )
  ) {
    throw unsupported("the message is encrypted");
  }
  if (
    tags.filter((t) => t === TAG.SIGNATURE).length > 1 ||
    tags.filter((t) => t === TAG.ONE_PASS).length > 1
  ) {
    throw unsupported("more than one signature in the message");
  }
  const [ops, literal, signature] = packets;
  if (
    packets.length !== 3 ||
    ops?.tag !== TAG.ONE_PASS ||
    literal?.tag !== TAG.LITERAL ||
    signature?.tag !== TAG.SIGNATURE
  ) {
    throw malformed(
      `packets [${tags.join(", ")}], expected one-pass signature (4), literal data (11), signature (2)`,
    );
  }
  return {
    onePass: readOnePass(ops.body),
    literal: readLiteral(literal.body),
    signature: signature.body,
  };
}

function readOnePass(body: Uint8Array): OnePass {
  if (body.length !== 13 || body[0] !== 3) {
    throw unsupported(`one-pass signature packet version ${body[0]} (only 3)`);
  }
  // x/crypto/openpgp refuses nested one-pass signatures (flag 0) and takes any other value as "last".
  if (body[12] === 0) throw unsupported("nested one-pass signatures");
  return {
    sigType: body[1]!,
    hashAlgo: body[2]!,
    pubAlgo: body[3]!,
    keyId: hex(body.subarray(4, 12)),
  };
}

function readLiteral(body: Uint8Array): Uint8Array {
  // format(1) ‖ filename length(1) ‖ filename ‖ date(4) ‖ data
  if (body.length < 6) throw malformed("literal data packet too short");
  const nameLength = body[1]!;
  const start = 2 + nameLength + 4;
  if (body.length < start) throw malformed("literal data packet too short");
  return body.subarray(start);
}

function decompress(body: Uint8Array): Uint8Array {
  const algorithm = body[0];
  const data = body.subarray(1);
  try {
    switch (algorithm) {
      case 0:
        return data;
      case 1:
        return inflateRawSync(data, { maxOutputLength: MAX_DECOMPRESSED_BYTES });
      case 2:
        return inflateSync(data, { maxOutputLength: MAX_DECOMPRESSED_BYTES });
    }
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new SigferryError(
        "SIGNATURE_TOO_LARGE",
        `the signature decompresses to more than ${MAX_DECOMPRESSED_BYTES} bytes`,
        {
          cause: err,
        },
      );
    }
    throw malformed("the compressed data is corrupt", err);
  }
  // x/crypto can also read BZip2 (algorithm 3), node:zlib cannot; Red Hat uses ZIP.
  throw unsupported(
    `compression algorithm ${algorithm} (sigferry reads uncompressed, ZIP and ZLIB)`,
  );
}

/** Reads a sequence of OpenPGP packets (RFC 4880 §4.2), old and new formats, partial lengths included. */
function readPackets(bytes: Uint8Array): Packet[] {
  const packets: Packet[] = [];
  let pos = 0;
  const byte = (): number => {
    const b = bytes[pos];
    if (b === undefined) throw malformed("truncated packet header");
    pos++;
    return b;
  };
  const take = (n: number): Uint8Array => {
    if (pos + n > bytes.length) throw malformed("truncated packet");
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u32 = (): number => ((byte() << 24) | (byte() << 16) | (byte() << 8) | byte()) >>> 0;

  while (pos < bytes.length) {
    const ctb = byte();
    if ((ctb & 0x80) === 0) throw malformed(`byte ${pos - 1} is not a packet header`);
    if ((ctb & 0x40) !== 0) {
      const tag = ctb & 0x3f;
      const chunks: Uint8Array[] = [];
      for (;;) {
        const first = byte();
        if (first < 192) {
          chunks.push(take(first));
          break;
        } else if (first < 224) {
          chunks.push(take(((first - 192) << 8) + byte() + 192));
          break;
        } else if (first === 255) {
          chunks.push(take(u32()));
          break;
        }
        // Partial body lengths are only legal for data packets (RFC 4880 §4.2.2.4).
        if (
          tag !== TAG.LITERAL &&
          tag !== TAG.COMPRESSED &&
          tag !== TAG.SED &&
          tag !== TAG.SEIPD &&
          tag !== TAG.AEAD
        ) {
          throw malformed(`partial length on packet tag ${tag}`);
        }
        chunks.push(take(1 << (first & 0x1f)));
      }
      packets.push({ tag, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
    } else {
      const tag = (ctb >> 2) & 0x0f;
      const lengthType = ctb & 0x03;
      let body: Uint8Array;
      if (lengthType === 0) body = take(byte());
      else if (lengthType === 1) body = take((byte() << 8) | byte());
      else if (lengthType === 2) body = take(u32());
      else body = take(bytes.length - pos); // indeterminate: to the end of the data
      packets.push({ tag, body });
    }
    if (packets.at(-1)!.tag === TAG.MARKER) throw malformed("unexpected marker packet");
  }
  return packets;
}
