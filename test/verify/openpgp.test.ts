/** OpenPGP atomic signatures, verified as the CVO does, on the real signatures and keys Red Hat published. */
import { readFileSync } from "node:fs";
import { deflateRawSync, inflateRawSync } from "node:zlib";
import * as openpgp from "openpgp";
import { beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import { REDHAT_BETA_KEY_2, REDHAT_RELEASE_KEY_2 } from "../../src/core/trust.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import {
  MAX_SIGNATURE_BYTES,
  loadOpenPgpKeys,
  selectPinned,
  verifyAtomicSignature,
  type OpenPgpKey,
} from "../../src/verify/openpgp.js";
import { real } from "../helpers/paths.js";

const D_415 = "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363" as Digest;
const D_RHEL7 = "sha256:e3f12513a4b22a2d7c0e7c9207f52128113758d9d68c7d06b11a0ac7672966f7" as Digest;
const D_CI = "sha256:edd9824f0404f1a139688017e7001370e2f3fbc088b94da84506653b473fe140" as Digest;
// The digest all four operator-bundle payloads name (decoded from their literal data).
const D_BUNDLE =
  "sha256:50b9402635dd4b312a86bed05dcdbda8c00120d3789ec2e9b527045100b3bdb4" as Digest;
const CI_KEY_1 = "D04761B116203B0C0859B61628B76E05B923888E";

const sig415 = readFileSync(
  real("gpg-signatures/store", `sha256=${D_415.slice(7)}`, "signature-1"),
);
const sigRhel7 = readFileSync(
  real("gpg-signatures/store", `sha256=${D_RHEL7.slice(7)}`, "signature-1"),
);
const sigCi = readFileSync(real("gpg-signatures/store", `sha256=${D_CI.slice(7)}`, "signature-1"));

async function rejection(promise: Promise<unknown>): Promise<SigferryError> {
  try {
    await promise;
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

async function keysFrom(file: string): Promise<OpenPgpKey[]> {
  return loadOpenPgpKeys(readFileSync(real("keys", file), "utf8"), file);
}

let release2: OpenPgpKey[];
let beta2: OpenPgpKey[];
let ci4: OpenPgpKey[];
let ci1Expired: OpenPgpKey[];

beforeAll(async () => {
  release2 = await keysFrom("redhat-release-key-2.asc");
  beta2 = await keysFrom("redhat-beta-key-2.asc");
  ci4 = await keysFrom("openshift-ci-key-4.asc");
  ci1Expired = await keysFrom("openshift-ci-key-1-expired.asc");
});

describe("loadOpenPgpKeys", () => {
  it("reads a key file given as bytes that keeps gpg's listing lines above the armor, as Red Hat's published files do", async () => {
    const armored = readFileSync(real("keys/redhat-release-key-2.asc"), "utf8");
    const listing =
      "pub   4096R/FD431D51 2009-10-22\n      Key fingerprint = 567E 347A D004 4ADE 55BA  8A5F 199E 2F91 FD43 1D51\n" +
      "uid                  Red Hat, Inc. (release key 2) <security@redhat.com>\n\n";
    const keys = await loadOpenPgpKeys(new TextEncoder().encode(listing + armored), "fd431d51.txt");
    expect(keys.map((k) => k.fingerprint)).toEqual([REDHAT_RELEASE_KEY_2]);
  });

  it("still reads a binary (unarmored) key file", async () => {
    const armored = readFileSync(real("keys/redhat-release-key-2.asc"), "utf8");
    const [key] = await loadOpenPgpKeys(armored, "release-key-2");
    const binary = key!.key.write();
    expect(binary[0]! & 0x80).toBe(0x80);
    const keys = await loadOpenPgpKeys(binary, "binary");
    expect(keys.map((k) => k.fingerprint)).toEqual([REDHAT_RELEASE_KEY_2]);
  });

  it("reads Red Hat release key 2 with its fingerprint and user id", () => {
    expect(release2).toHaveLength(1);
    expect(release2[0]).toMatchObject({
      fingerprint: REDHAT_RELEASE_KEY_2,
      userIds: ["Red Hat, Inc. (release key 2) <security@redhat.com>"],
    });
    expect(release2[0]!.armored).toContain("-----BEGIN PGP PUBLIC KEY BLOCK-----");
  });

  it("reads the same key from its binary form", async () => {
    const binary = release2[0]!.key.write();
    const keys = await loadOpenPgpKeys(binary, "binary");
    expect(keys.map((k) => k.fingerprint)).toEqual([REDHAT_RELEASE_KEY_2]);
  });

  it("reads every key of a file holding several", async () => {
    const text = ["redhat-release-key-2.asc", "redhat-beta-key-2.asc", "openshift-ci-key-4.asc"]
      .map((f) => readFileSync(real("keys", f), "utf8"))
      .join("\n");
    const keys = await loadOpenPgpKeys(text, "keyring");
    expect(keys.map((k) => k.fingerprint)).toEqual([
      REDHAT_RELEASE_KEY_2,
      REDHAT_BETA_KEY_2,
      "6A9588F07F2D3AE7973AD2A9193E53CCD2E2F7A4",
    ]);
  });

  it("rejects the real corrupt key file with KEY_INVALID naming it", async () => {
    const err = await rejection(
      loadOpenPgpKeys(
        readFileSync(real("keys/corrupt-key-crc-error.asc"), "utf8"),
        "corrupt-key-crc-error.asc",
      ),
    );
    expect(err.code).toBe("KEY_INVALID");
    expect(err.message).toContain("corrupt-key-crc-error.asc");
    expect(err.details.file).toBe("corrupt-key-crc-error.asc");
  });

  it("rejects garbage and empty input with KEY_INVALID", async () => {
    expect((await rejection(loadOpenPgpKeys("not a key", "a.asc"))).code).toBe("KEY_INVALID");
    expect((await rejection(loadOpenPgpKeys(new Uint8Array([1, 2, 3]), "b.gpg"))).code).toBe(
      "KEY_INVALID",
    );
    expect((await rejection(loadOpenPgpKeys("", "c.asc"))).code).toBe("KEY_INVALID");
  });

  it("rejects a private key, which must never travel", async () => {
    const { privateKey } = await openpgp.generateKey({
      userIDs: [{ name: "t" }],
      type: "ecc",
      format: "armored",
    });
    const err = await rejection(loadOpenPgpKeys(privateKey, "secret.asc"));
    expect(err.code).toBe("KEY_INVALID");
    expect(err.message).toContain("private");
  });
});

describe("selectPinned", () => {
  it("keeps only the pinned keys of a file holding several", () => {
    const picked = selectPinned([...ci4, ...release2, ...beta2], [REDHAT_RELEASE_KEY_2]);
    expect(picked.map((k) => k.fingerprint)).toEqual([REDHAT_RELEASE_KEY_2]);
  });

  it("accepts pins written the way gpg prints them", () => {
    const pin = "567e 347a d004 4ade 55ba  8a5f 199e 2f91 fd43 1d51";
    expect(selectPinned(release2, [pin])).toHaveLength(1);
  });

  it("fails with KEY_PIN_MISMATCH when no key matches", () => {
    let err: unknown;
    try {
      selectPinned(ci4, [REDHAT_RELEASE_KEY_2, REDHAT_BETA_KEY_2]);
    } catch (e) {
      err = e;
    }
    expect(isSigferryError(err, "KEY_PIN_MISMATCH")).toBe(true);
  });
});

describe("verifyAtomicSignature on the real 4.15.0 release signature", () => {
  it("verifies with release key 2 and returns the signer, identity and payload", async () => {
    const v = await verifyAtomicSignature(sig415, D_415, release2);
    expect(v).toMatchObject({
      signer: REDHAT_RELEASE_KEY_2,
      identity: "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64",
      keyId: "199E2F91FD431D51",
      packetVersion: 4,
      creator: "Red Hat OpenShift Signing Authority 0.0.1",
    });
    expect(v.created.toISOString()).toBe("2024-02-26T16:00:12.000Z");
    expect(new TextDecoder().decode(v.payload)).toContain(`"docker-manifest-digest": "${D_415}"`);
  });

  it("verifies against the CVO's whole default keyring (release key 2 and beta key 2)", async () => {
    const v = await verifyAtomicSignature(sig415, D_415, [...beta2, ...release2]);
    expect(v.signer).toBe(REDHAT_RELEASE_KEY_2);
  });

  it.each([
    ["beta key 2 alone", () => beta2],
    ["the CI key alone", () => ci4],
    ["no key at all", () => []],
  ])("fails with UNTRUSTED_SIGNER naming issuer 199E2F91FD431D51 with %s", async (_what, keys) => {
    const err = await rejection(verifyAtomicSignature(sig415, D_415, keys()));
    expect(err.code).toBe("UNTRUSTED_SIGNER");
    expect(err.message).toContain("199E2F91FD431D51");
    expect(err.details.issuerKeyId).toBe("199E2F91FD431D51");
  });

  describe("when the signature is for another digest", () => {
    it("rejects it with SIGNATURE_DIGEST_MISMATCH", async () => {
      const err = await rejection(verifyAtomicSignature(sig415, D_RHEL7, release2));
      expect(err.code).toBe("SIGNATURE_DIGEST_MISMATCH");
      expect(err.message).toContain(D_415);
      expect(err.message).toContain(D_RHEL7);
    });
  });

  it("fails with SIGNATURE_INVALID when the last byte (the RSA signature) is flipped", async () => {
    const tampered = Buffer.from(sig415);
    tampered[tampered.length - 1]! ^= 0x01;
    expect((await rejection(verifyAtomicSignature(tampered, D_415, release2))).code).toBe(
      "SIGNATURE_INVALID",
    );
  });

  it("fails with SIGNATURE_INVALID when the signed payload is edited and recompressed", async () => {
    // The file is a ZIP compressed packet (a3 01 …): rewrite one hex digit of the signed digest.
    const inner = Buffer.from(inflateRawSync(sig415.subarray(2)));
    const at = inner.indexOf(D_415.slice(7));
    inner[at] = inner[at] === 0x30 ? 0x31 : 0x30;
    const forged = Buffer.concat([sig415.subarray(0, 2), deflateRawSync(inner)]);
    const err = await rejection(verifyAtomicSignature(forged, D_415, release2));
    expect(err.code).toBe("SIGNATURE_INVALID");
  });

  it("never crashes and never accepts a changed payload, whichever single bit is flipped", async () => {
    const original = (await verifyAtomicSignature(sig415, D_415, release2)).payload;
    const codes = new Set<string>();
    for (let i = 0; i < sig415.length; i++) {
      const tampered = Buffer.from(sig415);
      tampered[i]! ^= 0x01;
      try {
        // Bits outside the signed data (one-pass flags, literal file name) do not matter, to the CVO either.
        const v = await verifyAtomicSignature(tampered, D_415, release2);
        expect(Buffer.from(v.payload).equals(Buffer.from(original))).toBe(true);
      } catch (err) {
        if (!isSigferryError(err)) throw err;
        codes.add(err.code);
      }
    }
    expect([...codes].every((c) => c.startsWith("SIGNATURE_") || c === "UNTRUSTED_SIGNER")).toBe(
      true,
    );
  });

  it("refuses an armored copy with SIGNATURE_UNSUPPORTED: the CVO reads binary signatures only", async () => {
    const armored = openpgp.armor(openpgp.enums.armor.message, sig415);
    const err = await rejection(
      verifyAtomicSignature(new TextEncoder().encode(armored), D_415, release2),
    );
    expect(err.code).toBe("SIGNATURE_UNSUPPORTED");
  });
});

describe("verifyAtomicSignature on real v3 signature packets (Red Hat RCM, 2019–2022)", () => {
  it("verifies the rhel7 signature by release key 2: the CVO's rules check type, digest and identity, not what the image is", async () => {
    // Not a release image, yet a valid atomic signature: the CVO would accept it for this digest.
    const v = await verifyAtomicSignature(sigRhel7, D_RHEL7, release2);
    expect(v).toMatchObject({
      signer: REDHAT_RELEASE_KEY_2,
      identity: "registry.access.redhat.com/rhel7:7.6",
      packetVersion: 3,
      creator: "Red Hat RCM Pub 0.35.0-final ",
    });
    expect(v.created.toISOString()).toBe("2019-04-09T18:14:24.000Z");
  });

  it("does not let the rhel7 signature vouch for a release digest", async () => {
    expect((await rejection(verifyAtomicSignature(sigRhel7, D_415, release2))).code).toBe(
      "SIGNATURE_DIGEST_MISMATCH",
    );
  });

  it("verifies all four operator-bundle signatures: one digest, four identities", async () => {
    const identities: string[] = [];
    for (const n of [1, 2, 3, 4]) {
      const sig = readFileSync(
        real("gpg-signatures/operator-bundle-4-identities", `signature-${n}`),
      );
      const v = await verifyAtomicSignature(sig, D_BUNDLE, release2);
      expect(v.signer).toBe(REDHAT_RELEASE_KEY_2);
      expect(v.packetVersion).toBe(3);
      identities.push(v.identity);
    }
    expect(identities).toEqual([
      "registry.access.redhat.com/albo/aws-load-balancer-operator-bundle:0.0.1",
      "registry.access.redhat.com/albo/aws-load-balancer-operator-bundle:0.0.1-20",
      "registry.redhat.io/albo/aws-load-balancer-operator-bundle:0.0.1",
      "registry.redhat.io/albo/aws-load-balancer-operator-bundle:0.0.1-20",
    ]);
  });

  it("fails with UNTRUSTED_SIGNER with beta key 2", async () => {
    expect((await rejection(verifyAtomicSignature(sigRhel7, D_RHEL7, beta2))).code).toBe(
      "UNTRUSTED_SIGNER",
    );
  });

  it("never crashes and never accepts a changed payload, whichever single bit is flipped", async () => {
    for (let i = 0; i < sigRhel7.length; i++) {
      const tampered = Buffer.from(sigRhel7);
      tampered[i]! ^= 0x01;
      try {
        const v = await verifyAtomicSignature(tampered, D_RHEL7, release2);
        expect(new TextDecoder().decode(v.payload)).toContain(D_RHEL7);
      } catch (err) {
        if (!isSigferryError(err)) throw err;
      }
    }
  });
});

describe("verifyAtomicSignature on the CI signature made by the now-expired CI key 1", () => {
  // real/README.md calls this an old v3 packet; it is in fact a v4 signature (uncompressed,
  // text-mode literal, x/crypto style) made on 2019-04-22 by a key that expired on 2021-04-21.
  it("fails with UNTRUSTED_SIGNER naming the CI key when only Red Hat's keys are trusted", async () => {
    const err = await rejection(verifyAtomicSignature(sigCi, D_CI, [...release2, ...beta2]));
    expect(err.code).toBe("UNTRUSTED_SIGNER");
    expect(err.message).toContain("28B76E05B923888E");
  });

  it("verifies when the expired key is trusted: the key was valid when it signed", async () => {
    const v = await verifyAtomicSignature(sigCi, D_CI, ci1Expired);
    expect(v).toMatchObject({
      signer: CI_KEY_1,
      identity: "registry.svc.ci.openshift.org/ocp/release:4.0.0-0.ci-2019-04-19-181452",
      packetVersion: 4,
    });
  });

  it("fails with SIGNATURE_INVALID when judged at a date before the signature existed", async () => {
    const err = await rejection(
      verifyAtomicSignature(sigCi, D_CI, ci1Expired, { date: new Date("2019-01-01T00:00:00Z") }),
    );
    expect(err.code).toBe("SIGNATURE_INVALID");
  });
});

describe("verifyAtomicSignature on hostile or unusual input", () => {
  it("refuses a signature over 50 KiB with SIGNATURE_TOO_LARGE, like the CVO's reader", async () => {
    const big = new Uint8Array(MAX_SIGNATURE_BYTES + 1);
    expect((await rejection(verifyAtomicSignature(big, D_415, release2))).code).toBe(
      "SIGNATURE_TOO_LARGE",
    );
    const atLimit = new Uint8Array(MAX_SIGNATURE_BYTES);
    expect((await rejection(verifyAtomicSignature(atLimit, D_415, release2))).code).toBe(
      "SIGNATURE_INVALID",
    );
  });

  it("rejects empty input and random bytes with SIGNATURE_INVALID", async () => {
    expect((await rejection(verifyAtomicSignature(new Uint8Array(0), D_415, release2))).code).toBe(
      "SIGNATURE_INVALID",
    );
    const noise = new Uint8Array(600).map((_, i) => (i * 7919 + 13) & 0xff);
    expect((await rejection(verifyAtomicSignature(noise, D_415, release2))).code).toMatch(
      /^SIGNATURE_/,
    );
  });

  it("refuses a compression bomb with SIGNATURE_TOO_LARGE", async () => {
    const bomb = Buffer.concat([
      Buffer.from([0xa3, 0x01]),
      deflateRawSync(Buffer.alloc(16 * 1024 * 1024)),
    ]);
    expect(bomb.length).toBeLessThan(MAX_SIGNATURE_BYTES);
    expect((await rejection(verifyAtomicSignature(bomb, D_415, release2))).code).toBe(
      "SIGNATURE_TOO_LARGE",
    );
  });

  it("refuses BZip2 compression with SIGNATURE_UNSUPPORTED", async () => {
    const bzip = Buffer.from([0xa3, 0x03, 0x42, 0x5a, 0x68]);
    expect((await rejection(verifyAtomicSignature(bzip, D_415, release2))).code).toBe(
      "SIGNATURE_UNSUPPORTED",
    );
  });

  describe("with a key made in the test", () => {
    let signer: openpgp.PrivateKey;
    let trusted: OpenPgpKey[];
    const payload = (digest: string, type = "atomic container signature"): Uint8Array =>
      new TextEncoder().encode(
        JSON.stringify({
          critical: {
            image: { "docker-manifest-digest": digest },
            type,
            identity: { "docker-reference": "example.com/a:b" },
          },
          optional: { creator: "test" },
        }),
      );
    const sign = async (data: Uint8Array, keys: openpgp.PrivateKey[]): Promise<Uint8Array> => {
      const message: openpgp.Message<Uint8Array> = await openpgp.createMessage({ binary: data });
      // openpgp.js's stream-aware return type resolves to any here; the input is not a stream.
      const signed: unknown = await openpgp.sign({ message, signingKeys: keys, format: "binary" });
      return signed as Uint8Array;
    };

    beforeAll(async () => {
      const generated = await openpgp.generateKey({
        userIDs: [{ name: "test" }],
        type: "rsa",
        rsaBits: 2048,
        format: "object",
      });
      signer = generated.privateKey;
      trusted = await loadOpenPgpKeys(generated.publicKey.armor(), "test.asc");
    });

    it("verifies an uncompressed signature made with openpgp.js", async () => {
      const v = await verifyAtomicSignature(await sign(payload(D_415), [signer]), D_415, trusted);
      expect(v).toMatchObject({
        identity: "example.com/a:b",
        signer: trusted[0]!.fingerprint,
        packetVersion: 4,
      });
    });

    it("rejects a verified signature whose payload is not an atomic one with SIGNATURE_PAYLOAD_INVALID", async () => {
      const sig = await sign(payload(D_415, "cosign container image signature"), [signer]);
      expect((await rejection(verifyAtomicSignature(sig, D_415, trusted))).code).toBe(
        "SIGNATURE_PAYLOAD_INVALID",
      );
    });

    it("refuses a message with two signatures with SIGNATURE_UNSUPPORTED", async () => {
      const other = (
        await openpgp.generateKey({ userIDs: [{ name: "o" }], type: "ecc", format: "object" })
      ).privateKey;
      const sig = await sign(payload(D_415), [signer, other]);
      expect((await rejection(verifyAtomicSignature(sig, D_415, trusted))).code).toBe(
        "SIGNATURE_UNSUPPORTED",
      );
    });
  });
});
