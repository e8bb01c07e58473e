/** Cosign `.sig` artifacts, verified as CRI-O (containers/image) does, on real cosign layouts and on keys and certificates made in the test. */
import { execFileSync } from "node:child_process";
import {
  X509Certificate,
  constants,
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  sign as cryptoSign,
  type KeyObject,
} from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson, parseJsonStrict } from "../../src/core/payload.js";
import type { Digest } from "../../src/core/digest.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import {
  ANNOTATION_BUNDLE,
  ANNOTATION_CERTIFICATE,
  ANNOTATION_CHAIN,
  ANNOTATION_SIGNATURE,
  loadSigstoreKey,
  sigstoreKeyId,
  verifyRekorBundle,
  verifySigArtifact,
  type SigArtifact,
  type SigstoreKey,
  type SigstoreTrust,
} from "../../src/verify/sigstore.js";
import { real } from "../helpers/paths.js";

const LAYOUTS = real("cosign-sig-layouts");
const EMPTY_IMAGE =
  "sha256:7d27ba1da0f64410102468d138f9ec8f61f2cc23bb58ff4cd63243a4434e3d99" as Digest;

function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function failure(fn: () => unknown): SigferryError {
  try {
    fn();
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected a SigferryError");
}

/** Reads an OCI image layout holding one `.sig` manifest into a SigArtifact. */
function loadLayout(dir: string): SigArtifact {
  const index = JSON.parse(readFileSync(join(LAYOUTS, dir, "index.json"), "utf8")) as {
    manifests: { digest: Digest }[];
  };
  const manifestDigest = index.manifests[0]!.digest;
  const blobs = new Map<string, Uint8Array>();
  for (const name of readdirSync(join(LAYOUTS, dir, "blobs/sha256"))) {
    blobs.set(`sha256:${name}`, readFileSync(join(LAYOUTS, dir, "blobs/sha256", name)));
  }
  return { manifestBytes: blobs.get(manifestDigest)!, manifestDigest, blobs };
}

type Manifest = {
  layers: {
    digest: string;
    size: number;
    mediaType: string;
    annotations: Record<string, string>;
  }[];
  [k: string]: unknown;
};

/** Rewrites the manifest (as an attacker controlling the `.sig` tag could) and re-derives its digest. */
function rewrite(artifact: SigArtifact, edit: (m: Manifest) => void): SigArtifact {
  const m = JSON.parse(new TextDecoder().decode(artifact.manifestBytes)) as Manifest;
  edit(m);
  const manifestBytes = new TextEncoder().encode(JSON.stringify(m));
  return {
    manifestBytes,
    manifestDigest: sha256Digest(manifestBytes),
    blobs: new Map(artifact.blobs),
  };
}

function flipBase64Char(value: string, at: number): string {
  const c = value[at]!;
  return value.slice(0, at) + (c === "A" ? "B" : "A") + value.slice(at + 1);
}

const pem = (file: string): string => readFileSync(join(LAYOUTS, file), "utf8");

describe("verifySigArtifact on real cosign .sig layouts", () => {
  let multiKey: SigstoreKey;
  let emptyKey: SigstoreKey;
  let rekorKey: SigstoreKey;

  beforeAll(() => {
    multiKey = loadSigstoreKey(
      pem("derived-cosign-pubkey-multi-platform-container.pem"),
      "multi.pem",
    );
    emptyKey = loadSigstoreKey(pem("derived-cosign-pubkey-empty-image.pem"), "empty.pem");
    rekorKey = loadSigstoreKey(
      readFileSync(real("keys/sigstore-rekor-production.pub")),
      "rekor.pub",
    );
  });

  const multi = readdirSync(LAYOUTS)
    .filter((d) => d.startsWith("multi-platform-container-sha256-") && d.endsWith("-sig"))
    .map(
      (d) =>
        [d, `sha256:${d.slice("multi-platform-container-sha256-".length, -"-sig".length)}`] as [
          string,
          Digest,
        ],
    );

  it("finds the five per-image layouts", () => {
    expect(multi).toHaveLength(5);
  });

  it.each(multi)(
    "%s verifies with its ECDSA P-256 key for the digest in its name",
    (dir, digest) => {
      const v = verifySigArtifact(loadLayout(dir), digest, { kind: "PublicKey", keys: [multiKey] });
      expect(v.failures).toEqual([]);
      expect(v.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
      expect(v.config).toMatchObject({
        mediaType: "application/vnd.oci.image.config.v1+json",
        size: 233,
      });
      expect(v.layers).toHaveLength(1);
      expect(v.layers[0]).toMatchObject({
        signer: multiKey.id,
        identity: "quay.io/rh_ee_aguidi/multi-platform-container",
        size: 261,
      });
    },
  );

  it("verifies the single-arch layout, with its Rekor SET checked against the production Rekor key", () => {
    const v = verifySigArtifact(loadLayout("single-arch-empty-image-sig"), EMPTY_IMAGE, {
      kind: "PublicKey",
      keys: [emptyKey],
      rekorKeys: [rekorKey],
    });
    expect(v.layers).toEqual([
      {
        digest: "sha256:5e7a034f575bb1b9188e4ea29470a2b86c640170125fa8c7ec9dc9c4bc17a373",
        size: 248,
        signer: emptyKey.id,
        identity: "quay.io/rh_ee_aguidi/empty-image",
        integratedTime: 1738749439,
        logIndex: 168884377,
      },
    ]);
  });

  it("checks the Rekor SET of every multi-platform layout too", () => {
    for (const [dir, digest] of multi) {
      const v = verifySigArtifact(loadLayout(dir), digest, {
        kind: "PublicKey",
        keys: [multiKey],
        rekorKeys: [rekorKey],
      });
      expect(v.layers[0]!.integratedTime).toBeGreaterThan(1_700_000_000);
    }
  });

  it("reports SIGNATURE_DIGEST_MISMATCH for another image digest (the index's, for a per-arch signature)", () => {
    const [dir] = multi[0]!;
    const index =
      "sha256:0de0e983a4980f32b1aad2d7f7f387cea2d4e9517b47f336cef27f63735911fa" as Digest;
    const other = multi.find(([, d]) => d !== index && d !== multi[0]![1])![1];
    const v = verifySigArtifact(loadLayout(dir), other, { kind: "PublicKey", keys: [multiKey] });
    expect(v.layers).toEqual([]);
    expect(v.failures[0]!.code).toBe("SIGNATURE_DIGEST_MISMATCH");
  });

  it("reports UNTRUSTED_SIGNER with the wrong key (the other image's key, or Red Hat's)", () => {
    const redhat = loadSigstoreKey(
      readFileSync(real("keys/redhat-release-sigstore-key.pem")),
      "redhat.pem",
    );
    for (const key of [emptyKey, redhat]) {
      const [dir, digest] = multi[0]!;
      const v = verifySigArtifact(loadLayout(dir), digest, { kind: "PublicKey", keys: [key] });
      expect(v.layers).toEqual([]);
      expect(v.failures[0]!.code).toBe("UNTRUSTED_SIGNER");
      expect(v.failures[0]!.reason).toContain(multiKey.id);
    }
  });

  describe("when one byte changes", () => {
    const [dir, digest] = [multi[0]![0], multi[0]![1]];
    const trust = (): SigstoreTrust => ({ kind: "PublicKey", keys: [multiKey] });

    it("throws DIGEST_MISMATCH when a layer blob changes under its descriptor", () => {
      const a = loadLayout(dir);
      const m = JSON.parse(new TextDecoder().decode(a.manifestBytes)) as Manifest;
      const layerDigest = m.layers[0]!.digest;
      const tampered = Buffer.from(a.blobs.get(layerDigest)!);
      tampered[tampered.indexOf("quay.io")]! ^= 0x01;
      a.blobs.set(layerDigest, tampered);
      expect(failure(() => verifySigArtifact(a, digest, trust())).code).toBe("DIGEST_MISMATCH");
    });

    it("reports SIGNATURE_INVALID when the layer and its descriptor change together", () => {
      const a = loadLayout(dir);
      const m0 = JSON.parse(new TextDecoder().decode(a.manifestBytes)) as Manifest;
      const original = a.blobs.get(m0.layers[0]!.digest)!;
      const tampered = Buffer.from(original);
      tampered[tampered.indexOf("rh_ee")]! ^= 0x01;
      const forged = rewrite(a, (m) => {
        m.layers[0]!.digest = sha256Digest(tampered);
      });
      forged.blobs.set(sha256Digest(tampered), tampered);
      const v = verifySigArtifact(forged, digest, trust());
      expect(v.layers).toEqual([]);
      expect(v.failures[0]!.code).toBe("SIGNATURE_INVALID");
    });

    it("throws DIGEST_MISMATCH when the signature annotation changes in the manifest bytes", () => {
      const a = loadLayout(dir);
      const text = new TextDecoder().decode(a.manifestBytes);
      const at = text.indexOf('"dev.cosignproject.cosign/signature": "') + 45;
      const bytes = Buffer.from(a.manifestBytes);
      bytes[at] = bytes[at] === 0x41 ? 0x42 : 0x41;
      expect(
        failure(() => verifySigArtifact({ ...a, manifestBytes: bytes }, digest, trust())).code,
      ).toBe("DIGEST_MISMATCH");
    });

    it("reports SIGNATURE_INVALID when the signature annotation changes and the manifest digest is re-derived", () => {
      const forged = rewrite(loadLayout(dir), (m) => {
        const ann = m.layers[0]!.annotations;
        ann[ANNOTATION_SIGNATURE] = flipBase64Char(ann[ANNOTATION_SIGNATURE]!, 20);
      });
      const v = verifySigArtifact(forged, digest, trust());
      expect(v.layers).toEqual([]);
      expect(v.failures[0]!.code).toBe("SIGNATURE_INVALID");
    });

    it("throws DIGEST_MISMATCH when any manifest byte changes", () => {
      const a = loadLayout(dir);
      const bytes = Buffer.from(a.manifestBytes);
      bytes[0] = 0x20; // even whitespace changes the digest, and the digest is what nodes look up
      expect(
        failure(() => verifySigArtifact({ ...a, manifestBytes: bytes }, digest, trust())).code,
      ).toBe("DIGEST_MISMATCH");
    });
  });

  it("reports SIGNATURE_INVALID when a Rekor key is required and the bundle annotation is gone", () => {
    const forged = rewrite(loadLayout("single-arch-empty-image-sig"), (m) => {
      delete m.layers[0]!.annotations[ANNOTATION_BUNDLE];
    });
    const v = verifySigArtifact(forged, EMPTY_IMAGE, {
      kind: "PublicKey",
      keys: [emptyKey],
      rekorKeys: [rekorKey],
    });
    expect(v.failures[0]).toMatchObject({ code: "SIGNATURE_INVALID" });
    expect(v.failures[0]!.reason).toContain(ANNOTATION_BUNDLE);
  });

  it("throws SIGNATURE_UNSUPPORTED for a Docker schema 2 manifest: containers/image reads OCI manifests only", () => {
    const forged = rewrite(loadLayout("single-arch-empty-image-sig"), (m) => {
      m.mediaType = "application/vnd.docker.distribution.manifest.v2+json";
    });
    const err = failure(() =>
      verifySigArtifact(forged, EMPTY_IMAGE, { kind: "PublicKey", keys: [emptyKey] }),
    );
    expect(err.code).toBe("SIGNATURE_UNSUPPORTED");
  });

  it("throws SIGNATURE_INVALID when the config blob is missing", () => {
    const a = loadLayout("single-arch-empty-image-sig");
    a.blobs.delete("sha256:1faf95412673f2c4345d6961ed543c92173589cfe364282f129d5de056003980");
    const err = failure(() =>
      verifySigArtifact(a, EMPTY_IMAGE, { kind: "PublicKey", keys: [emptyKey] }),
    );
    expect(err.code).toBe("SIGNATURE_INVALID");
    expect(err.message).toContain("missing");
  });

  describe("when a manifest has several layers", () => {
    it("returns the layers that verify and reports the others (one good layer is enough for CRI-O)", () => {
      const forged = rewrite(loadLayout("single-arch-empty-image-sig"), (m) => {
        const good = m.layers[0]!;
        const badSig = {
          ...good,
          annotations: {
            ...good.annotations,
            [ANNOTATION_SIGNATURE]: flipBase64Char(good.annotations[ANNOTATION_SIGNATURE]!, 30),
          },
        };
        const notASignature = {
          ...good,
          mediaType: "application/vnd.dev.cosign.attestation.v1+json",
        };
        m.layers = [badSig, good, notASignature];
      });
      const v = verifySigArtifact(forged, EMPTY_IMAGE, { kind: "PublicKey", keys: [emptyKey] });
      expect(v.layers).toHaveLength(1);
      expect(v.failures.map((f) => f.code)).toEqual(["SIGNATURE_INVALID", "SIGNATURE_UNSUPPORTED"]);
    });
  });

  it("refuses a trust configuration with no key (INVALID_CONFIG) or a non-ECDSA Rekor key", () => {
    const a = loadLayout("single-arch-empty-image-sig");
    expect(
      failure(() => verifySigArtifact(a, EMPTY_IMAGE, { kind: "PublicKey", keys: [] })).code,
    ).toBe("INVALID_CONFIG");
    const rsa = loadSigstoreKey(
      readFileSync(real("keys/redhat-release-sigstore-key.pem")),
      "redhat.pem",
    );
    expect(
      failure(() =>
        verifySigArtifact(a, EMPTY_IMAGE, {
          kind: "PublicKey",
          keys: [emptyKey],
          rekorKeys: [rsa],
        }),
      ).code,
    ).toBe("INVALID_CONFIG");
  });
});

describe("verifyRekorBundle on a real cosign bundle", () => {
  const artifact = loadLayout("single-arch-empty-image-sig");
  const manifest = JSON.parse(new TextDecoder().decode(artifact.manifestBytes)) as Manifest;
  const layer = manifest.layers[0]!;
  const bundle = layer.annotations[ANNOTATION_BUNDLE]!;
  const expected = () => ({
    signature: Buffer.from(layer.annotations[ANNOTATION_SIGNATURE]!, "base64"),
    payload: artifact.blobs.get(layer.digest)!,
    publicKeyOrCertDer: loadSigstoreKey(
      pem("derived-cosign-pubkey-empty-image.pem"),
      "e",
    ).key.export({ type: "spki", format: "der" }),
  });
  const rekor = (): SigstoreKey =>
    loadSigstoreKey(readFileSync(real("keys/sigstore-rekor-production.pub")), "rekor.pub");

  it("verifies the SignedEntryTimestamp with the production Rekor key", () => {
    expect(verifyRekorBundle(bundle, [rekor()], expected())).toEqual({
      integratedTime: 1738749439,
      logIndex: 168884377,
      logID: "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
      rekorKeyId: "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
    });
  });

  it("fails with SIGNATURE_INVALID whichever single bit of the bundle is flipped", () => {
    for (let i = 0; i < bundle.length; i++) {
      const flipped =
        bundle.slice(0, i) + String.fromCharCode(bundle.charCodeAt(i) ^ 0x01) + bundle.slice(i + 1);
      expect(failure(() => verifyRekorBundle(flipped, [rekor()], expected())).code).toBe(
        "SIGNATURE_INVALID",
      );
    }
  });

  it("fails with another Rekor key", () => {
    const other = loadSigstoreKey(pem("derived-cosign-pubkey-empty-image.pem"), "e");
    expect(failure(() => verifyRekorBundle(bundle, [other], expected())).message).toContain(
      "does not verify",
    );
  });

  it("fails when the entry is for another signature, payload or key", () => {
    const e = expected();
    expect(
      failure(() => verifyRekorBundle(bundle, [rekor()], { ...e, signature: Buffer.from("x") }))
        .message,
    ).toContain("another signature");
    expect(
      failure(() => verifyRekorBundle(bundle, [rekor()], { ...e, payload: Buffer.from("x") }))
        .message,
    ).toContain("another payload");
    const otherKey = loadSigstoreKey(
      pem("derived-cosign-pubkey-multi-platform-container.pem"),
      "m",
    );
    expect(
      failure(() =>
        verifyRekorBundle(bundle, [rekor()], {
          ...e,
          publicKeyOrCertDer: otherKey.key.export({ type: "spki", format: "der" }),
        }),
      ).message,
    ).toContain("another key");
  });
});

describe("loadSigstoreKey", () => {
  it("rejects garbage, a certificate-less file and a private key with KEY_INVALID naming the source", () => {
    expect(failure(() => loadSigstoreKey("nope", "a.pem"))).toMatchObject({ code: "KEY_INVALID" });
    expect(
      failure(() =>
        loadSigstoreKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "b.pem"),
      ).message,
    ).toContain("b.pem");
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const err = failure(() =>
      loadSigstoreKey(privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "c.pem"),
    );
    expect(err.code).toBe("KEY_INVALID");
    expect(err.message).toContain("not a public key");
  });

  it("names ECDSA P-256 and computes the id as sha256 of the DER SubjectPublicKeyInfo", () => {
    const k = loadSigstoreKey(pem("derived-cosign-pubkey-empty-image.pem"), "e");
    expect(k.algorithm).toBe("ecdsa-p256");
    const der = Buffer.from(
      pem("derived-cosign-pubkey-empty-image.pem").replace(/-----[^-]+-----|\s/g, ""),
      "base64",
    );
    expect(k.id).toBe(createHash("sha256").update(der).digest("hex"));
    expect(sigstoreKeyId(k.key)).toBe(k.id);
  });

  it("gives a key file loaded again (once per artifact, say) the KeyObject made the first time", () => {
    const first = loadSigstoreKey(pem("derived-cosign-pubkey-empty-image.pem"), "first.pem");
    const again = loadSigstoreKey(
      Buffer.from(pem("derived-cosign-pubkey-empty-image.pem")),
      "again.pem",
    );
    expect(again.key).toBe(first.key);
    expect(again).toEqual(first);
    // Each caller gets its own record: changing one changes no later load.
    first.id = "changed";
    expect(loadSigstoreKey(pem("derived-cosign-pubkey-empty-image.pem"), "x").id).toBe(again.id);
  });

  it("still refuses an unusable key every time, naming each source", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const weak = publicKey.export({ type: "spki", format: "pem" }).toString();
    for (const source of ["one.pem", "two.pem"]) {
      const err = failure(() => loadSigstoreKey(weak, source));
      expect(err.code).toBe("KEY_INVALID");
      expect(err.message).toContain(source);
    }
  });
});

/** Builds a one-manifest `.sig` artifact around the given layers. */
function buildArtifact(
  layers: { payload: Uint8Array; annotations: Record<string, string> }[],
): SigArtifact {
  const config = new TextEncoder().encode('{"architecture":"","os":"","config":{}}');
  const blobs = new Map<string, Uint8Array>([[sha256Digest(config), config]]);
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      size: config.length,
      digest: sha256Digest(config),
    },
    layers: layers.map((l) => {
      blobs.set(sha256Digest(l.payload), l.payload);
      return {
        mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
        size: l.payload.length,
        digest: sha256Digest(l.payload),
        annotations: l.annotations,
      };
    }),
  };
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
  return { manifestBytes, manifestDigest: sha256Digest(manifestBytes), blobs };
}

const IMAGE = "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363" as Digest;
const REF = "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64";
const simplePayload = (): Uint8Array =>
  new TextEncoder().encode(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": REF },
        image: { "docker-manifest-digest": IMAGE },
        type: "cosign container image signature",
      },
      optional: { creator: "sigferry test" },
    }),
  );

function asKey(publicKey: KeyObject, source: string): SigstoreKey {
  return loadSigstoreKey(publicKey.export({ type: "spki", format: "pem" }).toString(), source);
}

describe("verifySigArtifact with a PublicKey made in the test", () => {
  it("verifies an RSA-4096 PKCS#1 v1.5 SHA-256 signature, as Red Hat's key makes them", () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 4096 });
    const payload = simplePayload();
    const signature = cryptoSign("sha256", payload, {
      key: privateKey,
      padding: constants.RSA_PKCS1_PADDING,
    });
    const key = asKey(publicKey, "rsa.pem");
    expect(key.algorithm).toBe("rsa-4096");
    const v = verifySigArtifact(
      buildArtifact([
        { payload, annotations: { [ANNOTATION_SIGNATURE]: signature.toString("base64") } },
      ]),
      IMAGE,
      {
        kind: "PublicKey",
        keys: [key],
      },
    );
    expect(v.layers[0]).toMatchObject({ signer: key.id, identity: REF });

    // RSA-PSS is not what sigstore's verifier checks.
    const pss = cryptoSign("sha256", payload, {
      key: privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
    });
    const bad = verifySigArtifact(
      buildArtifact([{ payload, annotations: { [ANNOTATION_SIGNATURE]: pss.toString("base64") } }]),
      IMAGE,
      {
        kind: "PublicKey",
        keys: [key],
      },
    );
    expect(bad.failures[0]!.code).toBe("SIGNATURE_INVALID");
  });

  it("reports a layer without the signature annotation", () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const v = verifySigArtifact(
      buildArtifact([{ payload: simplePayload(), annotations: {} }]),
      IMAGE,
      {
        kind: "PublicKey",
        keys: [asKey(publicKey, "ec.pem")],
      },
    );
    expect(v.failures[0]!.reason).toContain(ANNOTATION_SIGNATURE);
  });
});

describe("verifySigArtifact with certificates made by openssl in the test", () => {
  let dir: string;
  const ssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  };
  const file = (name: string): string => readFileSync(join(dir, name), "utf8");
  const cert = (name: string): X509Certificate =>
    new X509Certificate(readFileSync(join(dir, name)));

  /** A CA-signed certificate for a fresh P-256 key, with the given extension lines. */
  function issue(
    name: string,
    subject: string,
    ca: string,
    days: number,
    extensions: string[],
  ): void {
    ssl(
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      `${name}.key`,
    );
    ssl("req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), `${extensions.join("\n")}\n`);
    ssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}.key`,
      "-set_serial",
      String(Date.now() % 1e9),
      "-days",
      String(days),
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    );
  }
  function root(name: string): void {
    ssl(
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      `${name}.key`,
    );
    ssl(
      "req",
      "-x509",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      `/CN=${name}`,
      "-days",
      "30",
      "-out",
      `${name}.pem`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  }
  const signWith = (keyFile: string, payload: Uint8Array): string =>
    cryptoSign("sha256", payload, {
      key: createPrivateKey(file(keyFile)),
      dsaEncoding: "der",
    }).toString("base64");

  const issuerUrl = "https://accounts.example.com";
  const issuerExt = `1.3.6.1.4.1.57264.1.1=DER:${Buffer.from(issuerUrl).toString("hex").match(/../g)!.join(":")}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "sigferry-pki-"));
    root("root");
    root("other-root");
    issue("intermediate", "/CN=intermediate", "root", 30, [
      "basicConstraints=critical,CA:TRUE,pathlen:0",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    const leafExt = [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=codeSigning",
    ];
    issue("leaf", "/CN=signer", "intermediate", 2, [
      ...leafExt,
      "subjectAltName=email:signer@example.com,DNS:signer.example.com",
    ]);
    issue("tls-leaf", "/CN=tls", "intermediate", 2, [
      "basicConstraints=critical,CA:FALSE",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=email:signer@example.com",
    ]);
    issue("fulcio-leaf", "/CN=", "root", 1, [
      ...leafExt,
      "subjectAltName=critical,email:dev@example.com",
      issuerExt,
    ]);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function pkiArtifact(leaf: string, chain: string[]): SigArtifact {
    const payload = simplePayload();
    return buildArtifact([
      {
        payload,
        annotations: {
          [ANNOTATION_SIGNATURE]: signWith(`${leaf}.key`, payload),
          [ANNOTATION_CERTIFICATE]: file(`${leaf}.pem`),
          [ANNOTATION_CHAIN]: chain.map((c) => file(`${c}.pem`)).join(""),
        },
      },
    ]);
  }

  const pki = (
    subject: { email?: string; hostname?: string },
    roots = ["root"],
    intermediates: string[] = [],
  ): SigstoreTrust => ({
    kind: "PKI",
    caRoots: roots.map((r) => cert(`${r}.pem`)),
    caIntermediates: intermediates.map((c) => cert(`${c}.pem`)),
    subject,
  });

  describe("PKI", () => {
    it("verifies a leaf → intermediate → root chain with the email subject", () => {
      const v = verifySigArtifact(
        pkiArtifact("leaf", ["intermediate", "root"]),
        IMAGE,
        pki({ email: "signer@example.com" }),
      );
      expect(v.failures).toEqual([]);
      expect(v.layers[0]).toMatchObject({
        signer: "signer@example.com",
        identity: REF,
        certificateFingerprint: cert("leaf.pem").fingerprint256,
      });
    });

    it("verifies with the hostname subject, and with the intermediate given by the policy instead of the annotation", () => {
      const v = verifySigArtifact(
        pkiArtifact("leaf", []),
        IMAGE,
        pki({ hostname: "signer.example.com" }, ["root"], ["intermediate"]),
      );
      expect(v.layers[0]!.signer).toBe("signer.example.com");
    });

    it("fails with UNTRUSTED_SIGNER on the wrong subject email or hostname", () => {
      const a = pkiArtifact("leaf", ["intermediate", "root"]);
      const byEmail = verifySigArtifact(a, IMAGE, pki({ email: "someone@example.com" }))
        .failures[0]!;
      expect(byEmail).toMatchObject({ code: "UNTRUSTED_SIGNER" });
      expect(byEmail.reason).toContain("someone@example.com");
      expect(
        verifySigArtifact(a, IMAGE, pki({ hostname: "evil.example.com" })).failures[0]!.code,
      ).toBe("UNTRUSTED_SIGNER");
    });

    it("fails with UNTRUSTED_SIGNER under an untrusted root", () => {
      const v = verifySigArtifact(
        pkiArtifact("leaf", ["intermediate", "root"]),
        IMAGE,
        pki({ email: "signer@example.com" }, ["other-root"]),
      );
      expect(v.failures[0]!.code).toBe("UNTRUSTED_SIGNER");
    });

    it("ignores the last certificate of the chain annotation, as containers/image does", () => {
      // With only the intermediate in the annotation, it is taken for the (untrusted) root and dropped.
      const v = verifySigArtifact(
        pkiArtifact("leaf", ["intermediate"]),
        IMAGE,
        pki({ email: "signer@example.com" }),
      );
      expect(v.failures[0]!.code).toBe("UNTRUSTED_SIGNER");
    });

    it("fails when the leaf does not allow code signing", () => {
      const v = verifySigArtifact(
        pkiArtifact("tls-leaf", ["intermediate", "root"]),
        IMAGE,
        pki({ email: "signer@example.com" }),
      );
      expect(v.failures[0]!.reason).toContain("code signing");
    });

    it("fails when the certificate is not valid at the verification time", () => {
      const later = new Date(Date.now() + 5 * 86_400_000);
      const v = verifySigArtifact(
        pkiArtifact("leaf", ["intermediate", "root"]),
        IMAGE,
        pki({ email: "signer@example.com" }),
        { now: later },
      );
      expect(v.failures[0]!.reason).toContain("not valid at");
    });

    it("refuses a PKI policy without a subject (INVALID_CONFIG)", () => {
      expect(failure(() => verifySigArtifact(pkiArtifact("leaf", []), IMAGE, pki({}))).code).toBe(
        "INVALID_CONFIG",
      );
    });
  });

  describe("FulcioCAWithRekor", () => {
    let rekorPrivate: KeyObject;
    let rekor: SigstoreKey;

    beforeAll(() => {
      const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
      rekorPrivate = pair.privateKey;
      rekor = asKey(pair.publicKey, "test-rekor.pub");
    });

    /** A cosign-style bundle: a hashedrekord entry for this signature, payload and certificate, SET-signed by the test Rekor key. */
    function fulcioArtifact(integratedTime: number): SigArtifact {
      const payload = simplePayload();
      const signature = signWith("fulcio-leaf.key", payload);
      const body = {
        apiVersion: "0.0.1",
        kind: "hashedrekord",
        spec: {
          data: {
            hash: {
              algorithm: "sha256",
              value: createHash("sha256").update(payload).digest("hex"),
            },
          },
          signature: {
            content: signature,
            publicKey: { content: Buffer.from(file("fulcio-leaf.pem")).toString("base64") },
          },
        },
      };
      const setPayload = {
        body: Buffer.from(JSON.stringify(body)).toString("base64"),
        integratedTime,
        logIndex: 42,
        logID: rekor.id,
      };
      const canonical = canonicalJson(
        parseJsonStrict(JSON.stringify(setPayload), "SIGNATURE_INVALID", "t"),
      );
      const set = cryptoSign("sha256", Buffer.from(canonical), {
        key: rekorPrivate,
        dsaEncoding: "der",
      }).toString("base64");
      return buildArtifact([
        {
          payload,
          annotations: {
            [ANNOTATION_SIGNATURE]: signature,
            [ANNOTATION_CERTIFICATE]: file("fulcio-leaf.pem"),
            [ANNOTATION_BUNDLE]: JSON.stringify({ SignedEntryTimestamp: set, Payload: setPayload }),
          },
        },
      ]);
    }

    const fulcio = (
      over: Partial<{ oidcIssuer: string; subjectEmail: string; rekorKeys: SigstoreKey[] }> = {},
    ): SigstoreTrust => ({
      kind: "FulcioCAWithRekor",
      fulcioRoots: [cert("root.pem")],
      rekorKeys: over.rekorKeys ?? [rekor],
      oidcIssuer: over.oidcIssuer ?? issuerUrl,
      subjectEmail: over.subjectEmail ?? "dev@example.com",
    });
    const now = (): number => Math.floor(Date.now() / 1000);

    it("verifies a Fulcio certificate at the Rekor integratedTime, with issuer and email matched", () => {
      const v = verifySigArtifact(fulcioArtifact(now()), IMAGE, fulcio());
      expect(v.failures).toEqual([]);
      expect(v.layers[0]).toMatchObject({ signer: "dev@example.com", identity: REF, logIndex: 42 });
    });

    it("fails when the integratedTime is outside the certificate's validity", () => {
      const v = verifySigArtifact(fulcioArtifact(now() + 3 * 86_400), IMAGE, fulcio());
      expect(v.failures[0]!.reason).toContain("not valid at");
    });

    it("fails on another OIDC issuer, another email or another Rekor key", () => {
      const a = fulcioArtifact(now());
      expect(
        verifySigArtifact(a, IMAGE, fulcio({ oidcIssuer: "https://other.example.com" }))
          .failures[0]!.reason,
      ).toContain("issuer");
      expect(
        verifySigArtifact(a, IMAGE, fulcio({ subjectEmail: "x@example.com" })).failures[0]!.reason,
      ).toContain("x@example.com");
      const other = asKey(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey, "o");
      expect(
        verifySigArtifact(a, IMAGE, fulcio({ rekorKeys: [other] })).failures[0]!.reason,
      ).toContain("SignedEntryTimestamp");
    });

    it("refuses a Fulcio policy without an OIDC issuer (INVALID_CONFIG)", () => {
      const trust = { ...fulcio(), oidcIssuer: undefined } as SigstoreTrust;
      expect(failure(() => verifySigArtifact(fulcioArtifact(now()), IMAGE, trust)).code).toBe(
        "INVALID_CONFIG",
      );
    });
  });
});
