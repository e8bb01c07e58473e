/**
 * v4 RSA signatures are checked with node:crypto (a KeyObject per key) instead of
 * openpgp.js's per-call WebCrypto import. These tests hold that path to openpgp.js's
 * verdict: each signature crafted here, good or bad, is judged by verifyAtomicSignature
 * and by openpgp.js's detached verification (the check sigferry made before), and both
 * must accept it or both reject it for the same reason.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as openpgp from "openpgp";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import { isSigferryError } from "../../src/errors.js";
import {
  loadOpenPgpKeys,
  verifyAtomicSignature,
  type OpenPgpKey,
} from "../../src/verify/openpgp.js";
import { real } from "../helpers/paths.js";

// Counts openpgp.verify calls (the library is otherwise untouched), to tell which path judged.
vi.mock("openpgp", async (importOriginal) => {
  const original = await importOriginal<typeof openpgp>();
  return { ...original, verify: vi.fn(original.verify) };
});

const D_415 = "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363" as Digest;
const D_CI = "sha256:edd9824f0404f1a139688017e7001370e2f3fbc088b94da84506653b473fe140" as Digest;
const DIGEST = D_415;
const T0 = new Date("2024-01-01T00:00:00Z");
const HOUR = 3600 * 1000;

function atomicPayload(creator = "test"): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      critical: {
        image: { "docker-manifest-digest": DIGEST },
        type: "atomic container signature",
        identity: { "docker-reference": "example.com/a:b" },
      },
      optional: { creator },
    }),
  );
}

/** A packet with a new-format header and a five-octet length (RFC 4880 §4.2.2.3). */
function frame(tag: number, body: Uint8Array): Buffer {
  const header = Buffer.alloc(6);
  header[0] = 0xc0 | tag;
  header[1] = 0xff;
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

/** The secret key packet that signs: a primary key's or a subkey's. */
type SecretPacket = openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket;

// openpgp.js's packet API, as used at run time (its typings mark these members private).
type LiteralBytes = { setBytes(bytes: Uint8Array, format: openpgp.enums.literal): void };
type SigningPacket = openpgp.SignaturePacket & {
  sign(
    key: SecretPacket,
    data: openpgp.LiteralDataPacket,
    date: Date,
    detached: boolean,
    config: openpgp.Config,
  ): Promise<void>;
};

interface Crafted {
  /** The atomic signed message: one-pass signature, literal data, signature. */
  message: Uint8Array;
  literal: Uint8Array;
  /** The signature packet alone (framed). */
  signature: Uint8Array;
}

/**
 * Signs `payload` with a secret key packet directly, so that signatures openpgp.sign
 * refuses to make (by an expired key, before the key existed, with odd subpackets) can
 * be made; `edit` sets signature fields before signing.
 */
async function craft(
  key: SecretPacket,
  options: {
    date?: Date;
    hash?: openpgp.enums.hash;
    type?: openpgp.enums.signature;
    payload?: Uint8Array;
    edit?: (packet: openpgp.SignaturePacket) => void;
  } = {},
): Promise<Crafted> {
  const payload = options.payload ?? atomicPayload();
  const literal = new openpgp.LiteralDataPacket();
  (literal as unknown as LiteralBytes).setBytes(payload, openpgp.enums.literal.binary);
  const packet = new openpgp.SignaturePacket() as SigningPacket;
  packet.signatureType = options.type ?? openpgp.enums.signature.binary;
  packet.publicKeyAlgorithm = key.algorithm;
  const hash = options.hash ?? openpgp.enums.hash.sha256;
  packet.hashAlgorithm = hash;
  options.edit?.(packet);
  await packet.sign(
    key,
    literal,
    options.date ?? new Date(T0.getTime() + HOUR),
    false,
    // openpgp.js salts signatures with a notation sized by the hash, and knows no size for SHA-1.
    { ...openpgp.config, nonDeterministicSignaturesViaNotation: hash !== openpgp.enums.hash.sha1 },
  );
  return assemble(packet.write(), payload);
}

/** Frames a signature packet body with a one-pass packet and the literal data it covers. */
function assemble(signatureBody: Uint8Array, payload: Uint8Array): Crafted {
  // The one-pass packet copies type, hash, algorithm and issuer from the signature packet.
  const parsed = new openpgp.SignaturePacket();
  parsed.read(signatureBody);
  const onePass = Buffer.alloc(13);
  onePass[0] = 3;
  onePass[1] = parsed.signatureType!;
  onePass[2] = parsed.hashAlgorithm!;
  onePass[3] = parsed.publicKeyAlgorithm!;
  Buffer.from(parsed.issuerKeyID.toHex(), "hex").copy(onePass, 4);
  onePass[12] = 1;
  // Literal data: format 'b', no file name, date 0, then the payload.
  const literalBody = Buffer.concat([Buffer.from([0x62, 0, 0, 0, 0, 0]), payload]);
  const signature = frame(2, signatureBody);
  return {
    message: Buffer.concat([frame(4, onePass), frame(11, literalBody), signature]),
    literal: payload,
    signature,
  };
}

/** A key packet that signs with `real`'s secret but carries `claimed`'s identity (key id, fingerprint). */
function impersonating(real: SecretPacket, claimed: SecretPacket): SecretPacket {
  return Object.assign(Object.create(real) as SecretPacket, {
    getKeyID: () => claimed.getKeyID(),
    getFingerprintBytes: () => claimed.getFingerprintBytes(),
  });
}

type Verdict = "accepted" | { reason: string };

/** verifyAtomicSignature's verdict: accepted, or the reason of its SIGNATURE_INVALID. */
async function ours(c: Crafted, trusted: OpenPgpKey[], date?: Date): Promise<Verdict> {
  try {
    await verifyAtomicSignature(c.message, DIGEST, trusted, date ? { date } : {});
    return "accepted";
  } catch (err) {
    if (!isSigferryError(err, "SIGNATURE_INVALID")) throw err;
    return { reason: String(err.details.reason) };
  }
}

/** openpgp.js's verdict on the same signature and literal bytes (detached verification). */
async function theirs(c: Crafted, trusted: OpenPgpKey[], date = new Date()): Promise<Verdict> {
  const result = await openpgp.verify({
    message: await openpgp.createMessage({ binary: c.literal }),
    signature: await openpgp.readSignature({ binarySignature: c.signature }),
    verificationKeys: trusted.map((k) => k.key),
    date,
    format: "binary",
  });
  try {
    await result.signatures[0]!.verified;
    return "accepted";
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

const verifyCalls = (): number => vi.mocked(openpgp.verify).mock.calls.length;

/** Both verdicts, and how many times sigferry itself fell back to openpgp.verify. */
async function judge(
  c: Crafted,
  trusted: OpenPgpKey[],
  date?: Date,
): Promise<{ ours: Verdict; theirs: Verdict; fellBack: boolean }> {
  const before = verifyCalls();
  const verdict = await ours(c, trusted, date);
  const fellBack = verifyCalls() > before;
  return { ours: verdict, theirs: await theirs(c, trusted, date), fellBack };
}

let alice: openpgp.PrivateKey; // RSA primary key and an RSA signing subkey
let bob: openpgp.PrivateKey;
let expiring: openpgp.PrivateKey; // valid from T0 for one hour
let trustedAlice: OpenPgpKey[];
let trustedBob: OpenPgpKey[];
let trustedBoth: OpenPgpKey[];
let trustedExpiring: OpenPgpKey[];

async function rsaKey(
  name: string,
  options: Pick<openpgp.KeyOptions, "subkeys" | "keyExpirationTime"> = {},
): Promise<openpgp.PrivateKey> {
  const { privateKey } = await openpgp.generateKey({
    userIDs: [{ name }],
    type: "rsa",
    rsaBits: 2048,
    date: T0,
    format: "object",
    ...options,
  });
  return privateKey;
}

const trust = (key: openpgp.PrivateKey): Promise<OpenPgpKey[]> =>
  loadOpenPgpKeys(key.toPublic().armor(), `${key.getUserIDs()[0]}.asc`);

beforeAll(async () => {
  [alice, bob, expiring] = await Promise.all([
    rsaKey("alice", { subkeys: [{ sign: true }] }),
    rsaKey("bob"),
    rsaKey("expiring", { keyExpirationTime: 3600 }),
  ]);
  [trustedAlice, trustedBob, trustedExpiring] = await Promise.all([
    trust(alice),
    trust(bob),
    trust(expiring),
  ]);
  trustedBoth = [...trustedAlice, ...trustedBob];
});

beforeEach(() => {
  vi.mocked(openpgp.verify).mockClear();
});

const primary = (k: openpgp.PrivateKey): SecretPacket => k.keyPacket as openpgp.SecretKeyPacket;
const subkey = (k: openpgp.PrivateKey): SecretPacket =>
  k.subkeys[0]!.keyPacket as openpgp.SecretSubkeyPacket;

describe("the real Red Hat and CI v4 signatures", () => {
  it.each([
    ["4.15.0 by release key 2", D_415, "redhat-release-key-2.asc"],
    ["the CI release by the expired CI key 1", D_CI, "openshift-ci-key-1-expired.asc"],
  ])("verifies %s without calling openpgp.verify", async (_what, digest, keyFile) => {
    const sig = readFileSync(
      real("gpg-signatures/store", `sha256=${digest.slice(7)}`, "signature-1"),
    );
    const keys = await loadOpenPgpKeys(readFileSync(real("keys", keyFile), "utf8"), keyFile);
    const v = await verifyAtomicSignature(sig, digest, keys);
    expect(v.packetVersion).toBe(4);
    expect(verifyCalls()).toBe(0);
  });
});

describe("v4 RSA signatures checked with node:crypto", () => {
  it("accepts a good SHA-256 signature by a primary key without calling openpgp.verify", async () => {
    const v = await judge(await craft(primary(alice)), trustedAlice);
    expect(v).toEqual({ ours: "accepted", theirs: "accepted", fellBack: false });
  });

  it("accepts a good signature by a signing subkey, checked with the subkey's own key", async () => {
    const v = await judge(await craft(subkey(alice)), trustedAlice);
    expect(v).toEqual({ ours: "accepted", theirs: "accepted", fellBack: false });
  });

  it.each([
    ["SHA-384", openpgp.enums.hash.sha384],
    ["SHA-512", openpgp.enums.hash.sha512],
  ])("accepts a good %s signature", async (_name, hash) => {
    const v = await judge(await craft(primary(alice), { hash }), trustedAlice);
    expect(v).toEqual({ ours: "accepted", theirs: "accepted", fellBack: false });
  });

  describe("rejects what openpgp.js rejects, for the same reason", () => {
    /** Both reject with the same reason, matching `reason`, and sigferry did not fall back. */
    const expectSameRejection = (
      v: { ours: Verdict; theirs: Verdict; fellBack: boolean },
      reason: string | RegExp,
    ): void => {
      expect(v.ours).toEqual(v.theirs);
      expect(v.ours).toEqual({ reason: expect.stringMatching(reason) as unknown });
      expect(v.fellBack).toBe(false);
    };

    it("when another key made the signature that names a trusted key as its issuer", async () => {
      // Issuer subpackets (hashed) and the 16-bit hash prefix are right for bob; the RSA value is alice's.
      const forged = await craft(impersonating(primary(alice), primary(bob)));
      const v = await judge(forged, trustedBoth);
      expectSameRejection(v, "^Signature verification failed$");
    });

    it("when the primary key made a signature that names its subkey as the issuer", async () => {
      const forged = await craft(impersonating(primary(alice), subkey(alice)));
      const v = await judge(forged, trustedAlice);
      expectSameRejection(v, "^Signature verification failed$");
    });

    it("when the payload changed (the 16-bit hash prefix no longer matches)", async () => {
      const good = await craft(primary(alice));
      const signatureBody = good.signature.subarray(6);
      const changed = assemble(signatureBody, atomicPayload("tset"));
      const v = await judge(changed, trustedAlice);
      expectSameRejection(v, "^Signed digest did not match$");
    });

    it("when the payload changed so that the 16-bit hash prefix still matches: the RSA check catches it", async () => {
      const good = await craft(primary(alice));
      const signatureBody = good.signature.subarray(6);
      const parsed = new openpgp.SignaturePacket();
      parsed.read(signatureBody);
      const trailer = Buffer.alloc(6);
      trailer[0] = 4;
      trailer[1] = 0xff;
      trailer.writeUInt32BE(parsed.signatureData!.length, 2);
      // About 1 in 65536 payloads share the prefix: search the creator field for one.
      let collision: Uint8Array | undefined;
      for (let i = 0; collision === undefined && i < 2_000_000; i++) {
        const payload = atomicPayload(`test ${i}`);
        const digest = createHash("sha256")
          .update(payload)
          .update(parsed.signatureData!)
          .update(trailer)
          .digest();
        if (digest[0] === parsed.signedHashValue![0] && digest[1] === parsed.signedHashValue![1])
          collision = payload;
      }
      expect(collision).toBeDefined();
      const v = await judge(assemble(signatureBody, collision!), trustedAlice);
      expectSameRejection(v, "^Signature verification failed$");
    });

    it("when the key had expired when it signed", async () => {
      const late = await craft(primary(expiring), { date: new Date(T0.getTime() + 2 * HOUR) });
      const v = await judge(late, trustedExpiring);
      expectSameRejection(v, /expired/i);
    });

    it("but accepts the same key's signature made while it was valid", async () => {
      const early = await craft(primary(expiring), { date: new Date(T0.getTime() + HOUR / 2) });
      const v = await judge(early, trustedExpiring);
      expect(v).toEqual({ ours: "accepted", theirs: "accepted", fellBack: false });
    });

    it("when the signature is older than the key", async () => {
      const v = await judge(
        await craft(primary(alice), { date: new Date(T0.getTime() - HOUR) }),
        trustedAlice,
      );
      expectSameRejection(v, "^Key is newer than the signature$");
    });

    it("when the signature was made after the verification date", async () => {
      const v = await judge(await craft(primary(alice)), trustedAlice, T0);
      expectSameRejection(v, "^Signature creation time is in the future$");
    });

    it("when the signature itself has expired, and not before", async () => {
      const made = new Date(T0.getTime() + HOUR);
      const c = await craft(primary(alice), {
        date: made,
        edit: (p) => {
          p.signatureExpirationTime = 60;
        },
      });
      expect(await judge(c, trustedAlice, new Date(made.getTime() + 30_000))).toEqual({
        ours: "accepted",
        theirs: "accepted",
        fellBack: false,
      });
      const v = await judge(c, trustedAlice, new Date(made.getTime() + 60_000));
      expectSameRejection(v, "^Signature is expired$");
    });

    it("when it carries an unknown critical notation", async () => {
      const c = await craft(primary(alice), {
        edit: (p) => {
          p.rawNotations = [
            {
              name: "must-understand@example.com",
              value: new TextEncoder().encode("x"),
              humanReadable: true,
              critical: true,
            },
          ];
        },
      });
      const v = await judge(c, trustedAlice);
      expectSameRejection(v, "^Unknown critical notation: must-understand@example.com$");
    });

    it("when it names a designated revoker", async () => {
      const c = await craft(primary(alice), {
        edit: (p) => {
          p.revocationKeyClass = 0x80;
          p.revocationKeyAlgorithm = openpgp.enums.publicKey.rsaEncryptSign;
          p.revocationKeyFingerprint = primary(bob).getFingerprintBytes();
        },
      });
      const v = await judge(c, trustedAlice);
      expectSameRejection(v, "authorized key");
    });

    it("when the key has since been revoked", async () => {
      const c = await craft(primary(bob));
      const { publicKey: revoked } = await openpgp.revokeKey({
        key: bob,
        date: new Date(T0.getTime() + 2 * HOUR),
        format: "object",
      });
      const v = await judge(c, await loadOpenPgpKeys(revoked.armor(), "revoked.asc"));
      expectSameRejection(v, /revoked/i);
    });
  });

  describe("leaves every other case to openpgp.js", () => {
    it("refuses a SHA-1 document signature as openpgp.js does", async () => {
      const v = await judge(
        await craft(primary(alice), { hash: openpgp.enums.hash.sha1 }),
        trustedAlice,
      );
      expect(v.ours).toEqual({ reason: "Insecure message hash algorithm: SHA1" });
      expect(v.ours).toEqual(v.theirs);
      expect(v.fellBack).toBe(true);
    });

    it("accepts a SHA-224 signature (openpgp.js's own BigInt RSA)", async () => {
      const v = await judge(
        await craft(primary(alice), { hash: openpgp.enums.hash.sha224 }),
        trustedAlice,
      );
      expect(v).toEqual({ ours: "accepted", theirs: "accepted", fellBack: true });
    });

    it("accepts a text-mode signature (0x01)", async () => {
      const v = await judge(
        await craft(primary(alice), { type: openpgp.enums.signature.text }),
        trustedAlice,
      );
      expect(v).toEqual({ ours: "accepted", theirs: "accepted", fellBack: true });
    });
  });
});
