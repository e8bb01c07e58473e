import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { Digest } from "../../src/core/digest.js";
import {
  CONFIGMAP_MAX_BYTES,
  IMAGE_MIRROR_PATTERN,
  MIRROR_SOURCE_PATTERN,
  OCP_ART_DEV_REPO,
  SCOPE_PATTERN,
  clusterImagePolicy,
  configMapToYaml,
  formatProblem,
  imageDigestMirrorSet,
  pemToKeyData,
  serializedSize,
  signatureConfigMap,
  signatureConfigMapYaml,
  validateClusterImagePolicy,
  validateImageDigestMirrorSet,
  type ClusterImagePolicy,
  type ConfigMap,
  type ManifestProblem,
} from "../../src/core/manifests.js";
import { SigferryError } from "../../src/errors.js";
import { real } from "../helpers/paths.js";

/** kubectl's JSON output and hand-broken objects, read loosely in assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const HEX = "0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363";
const DIGEST = `sha256:${HEX}` as Digest;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const realPolicy = (): unknown =>
  parse(readFileSync(real("keys", "openshift-cluster-image-policy.yaml"), "utf8"));
const realSigstorePem = (): string =>
  readFileSync(real("keys", "redhat-release-sigstore-key.pem"), "utf8");
const realRekorPem = (): string =>
  readFileSync(real("keys", "sigstore-rekor-production.pub"), "utf8");
const realSignature = (): Uint8Array =>
  readFileSync(real("gpg-signatures", "store", `sha256=${HEX}`, "signature-1"));

/** A PEM certificate bundle shape; the schema checks only the markers. */
const CERT_PEM =
  "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n";

function thrown(fn: () => unknown): SigferryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SigferryError) return err;
    throw err;
  }
  throw new Error("expected a SigferryError");
}

const messages = (problems: ManifestProblem[]): string[] => problems.map(formatProblem);

describe("signatureConfigMap", () => {
  // Derived by hand from DOMAIN.md ("The ConfigMap the CVO reads"):
  // base64("sig-one") = c2lnLW9uZQ==, base64("sig-two") = c2lnLXR3bw==.
  const expectedYaml = [
    "apiVersion: v1",
    "kind: ConfigMap",
    "metadata:",
    `  name: sha256-${HEX}`,
    "  namespace: openshift-config-managed",
    "  labels:",
    '    release.openshift.io/verification-signatures: ""',
    "binaryData:",
    `  sha256-${HEX}-1: c2lnLW9uZQ==`,
    `  sha256-${HEX}-2: c2lnLXR3bw==`,
    "",
  ].join("\n");
  const expectedJson =
    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sha256-${HEX}","namespace":"openshift-config-managed",` +
    `"labels":{"release.openshift.io/verification-signatures":""}},"binaryData":{"sha256-${HEX}-1":"c2lnLW9uZQ==",` +
    `"sha256-${HEX}-2":"c2lnLXR3bw=="}}`;

  it("builds the ConfigMap the CVO reads, byte for byte", () => {
    const cm = signatureConfigMap(DIGEST, [enc("sig-one"), enc("sig-two")]);
    expect(JSON.stringify(cm)).toBe(expectedJson);
    expect(configMapToYaml(cm)).toBe(expectedYaml);
  });

  it("writes the same YAML whatever order the keys arrive in", () => {
    const shuffled = {
      binaryData: { [`sha256-${HEX}-2`]: "c2lnLXR3bw==", [`sha256-${HEX}-1`]: "c2lnLW9uZQ==" },
      metadata: {
        labels: { "release.openshift.io/verification-signatures": "" },
        namespace: "openshift-config-managed",
        name: `sha256-${HEX}`,
      },
      kind: "ConfigMap",
      apiVersion: "v1",
    };
    expect(configMapToYaml(shuffled)).toBe(expectedYaml);
  });

  it("orders keys -1..-12 numerically and never folds base64 lines", () => {
    const sigs = Array.from({ length: 12 }, (_, i) => new Uint8Array(400).fill(i));
    const yaml = configMapToYaml(signatureConfigMap(DIGEST, sigs));
    const keys = [...yaml.matchAll(new RegExp(`sha256-${HEX}-(\\d+):`, "g"))].map((m) =>
      Number(m[1]),
    );
    expect(keys).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    for (const line of yaml.split("\n").filter((l) => l.includes(`${HEX}-`))) {
      expect(line.length).toBeGreaterThan(500);
    }
    expect(parse(yaml)).toEqual(signatureConfigMap(DIGEST, sigs));
  });

  it("quotes values a YAML 1.1 parser (kubectl, oc) would read as booleans", () => {
    expect(
      configMapToYaml({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "x" },
        data: { a: "yes", b: "on" },
      }),
    ).toContain('a: "yes"\n  b: "on"');
  });

  it("carries the real 4.15.0 signature unchanged", () => {
    const sig = realSignature();
    const cm = signatureConfigMap(DIGEST, [sig]);
    expect(Buffer.from(cm.binaryData![`sha256-${HEX}-1`]!, "base64").equals(Buffer.from(sig))).toBe(
      true,
    );
  });

  it("refuses no signatures and a malformed digest", () => {
    expect(thrown(() => signatureConfigMap(DIGEST, [])).code).toBe("SIGNATURE_MISSING");
    expect(thrown(() => signatureConfigMap("sha256:abc", [enc("x")])).code).toBe("INVALID_DIGEST");
  });

  describe("when the signatures exceed 1 MiB", () => {
    // Size counted by hand: the compact JSON sigferry sends.
    const head =
      `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sha256-${HEX}","namespace":"openshift-config-managed",` +
      `"labels":{"release.openshift.io/verification-signatures":""}},"binaryData":{`;
    const entry = (i: number): number => `"sha256-${HEX}-${i}":"`.length + 1332 + 1; // 999 bytes -> 1332 base64 chars
    const sizeOf = (n: number): number => {
      let size = head.length + "}}".length;
      for (let i = 1; i <= n; i++) size += entry(i) + (i > 1 ? 1 : 0);
      return size;
    };
    let fits = 0;
    while (sizeOf(fits + 1) <= CONFIGMAP_MAX_BYTES) fits++;
    const sigs = (n: number): Uint8Array[] => Array.from({ length: n }, () => new Uint8Array(999));

    it("counts the serialized object, as documented", () => {
      expect(serializedSize(signatureConfigMap(DIGEST, sigs(3)))).toBe(sizeOf(3));
    });

    it(`accepts ${fits} signatures of 999 bytes (${sizeOf(fits)} bytes)`, () => {
      expect(serializedSize(signatureConfigMap(DIGEST, sigs(fits)))).toBe(sizeOf(fits));
    });

    it("rejects one more with CONFIGMAP_TOO_LARGE", () => {
      const err = thrown(() => signatureConfigMap(DIGEST, sigs(fits + 1)));
      expect(err.code).toBe("CONFIGMAP_TOO_LARGE");
      expect(err.message).toContain(`${sizeOf(fits + 1)} bytes`);
      expect(err.details.limit).toBe(1048576);
    });

    it("fits about 800 real release signatures, as DOMAIN.md says", () => {
      const sig = realSignature();
      expect(() =>
        signatureConfigMap(
          DIGEST,
          Array.from({ length: 800 }, () => sig),
        ),
      ).not.toThrow();
      expect(
        thrown(() =>
          signatureConfigMap(
            DIGEST,
            Array.from({ length: 850 }, () => sig),
          ),
        ).code,
      ).toBe("CONFIGMAP_TOO_LARGE");
    });
  });
});

describe("signatureConfigMapYaml (the direct writer)", () => {
  /** Deterministic bytes (xorshift), so a failure names a reproducible case. */
  function bytesOf(seed: number, length: number): Uint8Array {
    let x = seed * 2654435761 || 1;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  }
  const realSignatures = (): { digest: Digest; bytes: Uint8Array }[] =>
    readdirSync(real("gpg-signatures", "store")).map((dir) => ({
      digest: dir.replace("=", ":") as Digest,
      bytes: readFileSync(real("gpg-signatures", "store", dir, "signature-1")),
    }));

  it("writes what configMapToYaml writes, for every real signature", () => {
    const all = realSignatures();
    expect(all.length).toBeGreaterThanOrEqual(3);
    for (const { digest, bytes } of all) {
      const cm = signatureConfigMap(digest, [bytes]);
      expect(signatureConfigMapYaml(cm)).toBe(configMapToYaml(cm));
    }
    const cm = signatureConfigMap(
      DIGEST,
      all.map((s) => s.bytes),
    );
    expect(signatureConfigMapYaml(cm)).toBe(configMapToYaml(cm));
  });

  it("writes what configMapToYaml writes for 1 to 12 signatures of every length up to 600 bytes, and YAML reads back the object", () => {
    let direct = 0;
    for (let n = 1; n <= 12; n++) {
      for (let len = 1; len <= 600; len += n === 1 ? 1 : 37) {
        const cm = signatureConfigMap(
          DIGEST,
          Array.from({ length: n }, (_, i) => bytesOf(n * 1000 + len * 13 + i, len)),
        );
        const text = signatureConfigMapYaml(cm);
        if (text === undefined) continue;
        direct++;
        expect(text).toBe(configMapToYaml(cm));
        expect(parse(text, { version: "1.1" })).toEqual(cm);
      }
    }
    // Short values are left to the YAML library; everything signature-sized is written directly.
    expect(direct).toBeGreaterThan(700);
  });

  it("leaves to the YAML library values a YAML 1.1 reader would not take as strings", () => {
    // base64 of these bytes: "1234" (an int), "true" (a bool), "0x1A" is not base64 but
    // 0b/octal-looking digits are: "0777".
    for (const value of ["1234", "true", "0777", "NULL"]) {
      const bytes = Buffer.from(value, "base64");
      expect(bytes.toString("base64")).toBe(value);
      const cm = signatureConfigMap(DIGEST, [bytes]);
      expect(signatureConfigMapYaml(cm)).toBeUndefined();
      expect(configMapToYaml(cm)).toContain(`-1: "${value}"`);
    }
  });

  it("writes nothing for any other shape: extra fields, keys out of order, another namespace", () => {
    const base = (): ConfigMap => signatureConfigMap(DIGEST, [bytesOf(1, 300), bytesOf(2, 300)]);
    expect(signatureConfigMapYaml(base())).toBeDefined();
    const withImmutable: ConfigMap = { ...base(), immutable: true };
    expect(signatureConfigMapYaml(withImmutable)).toBeUndefined();
    const swapped = base();
    const [a, b] = Object.entries(swapped.binaryData!);
    swapped.binaryData = Object.fromEntries([b!, a!]);
    expect(signatureConfigMapYaml(swapped)).toBeUndefined();
    const otherNs = base();
    otherNs.metadata.namespace = "default";
    expect(signatureConfigMapYaml(otherNs)).toBeUndefined();
    const annotated = base();
    annotated.metadata.annotations = { a: "b" };
    expect(signatureConfigMapYaml(annotated)).toBeUndefined();
    const renamed = base();
    renamed.metadata.name = "sha256-x";
    expect(signatureConfigMapYaml(renamed)).toBeUndefined();
  });
});

describe("ClusterImagePolicy", () => {
  const publicKeyPolicy = (): ClusterImagePolicy =>
    clusterImagePolicy({
      name: "openshift",
      scopes: [
        "quay.io/openshift-release-dev/ocp-release",
        "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
        "quay.io/openshift-release-dev/ocp-v5.0-art-dev",
      ],
      rootOfTrust: {
        policyType: "PublicKey",
        publicKey: { keyData: pemToKeyData(realSigstorePem()) },
      },
    });

  it("accepts Red Hat's real openshift policy", () => {
    expect(validateClusterImagePolicy(realPolicy())).toEqual([]);
  });

  it("generates the real policy's spec field for field from its key", () => {
    const real = realPolicy() as ClusterImagePolicy;
    const ours = publicKeyPolicy();
    expect(ours.apiVersion).toBe(real.apiVersion);
    expect(ours.kind).toBe(real.kind);
    expect(ours.metadata.name).toBe(real.metadata.name);
    expect(ours.spec).toEqual(real.spec);
    expect(JSON.stringify(ours.spec)).toBe(JSON.stringify(real.spec));
    expect(validateClusterImagePolicy(ours)).toEqual([]);
  });

  it("generates valid FulcioCAWithRekor and PKI policies with a signedIdentity", () => {
    const fulcio = clusterImagePolicy({
      name: "fulcio",
      scopes: ["registry.example.com/team", "*.apps.example.com"],
      rootOfTrust: {
        policyType: "FulcioCAWithRekor",
        fulcioCAWithRekor: {
          fulcioCAData: pemToKeyData(CERT_PEM),
          rekorKeyData: pemToKeyData(realRekorPem()),
          fulcioSubject: {
            oidcIssuer: "https://oauth2.sigstore.dev/auth",
            signedEmail: "release@example.com",
          },
        },
      },
      signedIdentity: {
        matchPolicy: "RemapIdentity",
        remapIdentity: {
          prefix: "mirror.example.com/ocp",
          signedPrefix: "quay.io/openshift-release-dev",
        },
      },
    });
    expect(validateClusterImagePolicy(fulcio)).toEqual([]);
    const pki = clusterImagePolicy({
      name: "pki",
      scopes: ["localhost:5000/ocp", "quay.io/openshift-release-dev/ocp-release@sha256:" + HEX],
      rootOfTrust: {
        policyType: "PKI",
        pki: {
          caRootsData: pemToKeyData(CERT_PEM),
          caIntermediatesData: pemToKeyData(CERT_PEM + CERT_PEM),
          pkiCertificateSubject: { hostname: "*.example.com" },
        },
      },
      signedIdentity: {
        matchPolicy: "ExactRepository",
        exactRepository: { repository: "quay.io/openshift-release-dev/ocp-release" },
      },
    });
    expect(validateClusterImagePolicy(pki)).toEqual([]);
    expect(Object.keys(pki.spec.policy.rootOfTrust)).toEqual(["policyType", "pki"]);
  });

  const broken = (mutate: (p: Loose) => void): string[] => {
    const p = structuredClone(realPolicy()) as Loose;
    mutate(p);
    return messages(validateClusterImagePolicy(p));
  };

  it.each<[string, (p: Loose) => void, string]>([
    [
      "a scope without a domain",
      (p) => (p.spec.scopes = ["busybox"]),
      "spec.scopes[0]: Invalid value: \"string\": invalid image scope format, scope must contain a fully qualified domain name or 'localhost'",
    ],
    [
      "a wildcard inside a path",
      (p) => (p.spec.scopes = ["quay.io/*/ocp"]),
      'spec.scopes[0]: Invalid value: "string": invalid image scope with wildcard',
    ],
    [
      "an upper-case repository",
      (p) => (p.spec.scopes = ["quay.io/OpenShift/ocp"]),
      "invalid repository namespace or image specification in the image scope",
    ],
    [
      "a duplicated scope",
      (p) => {
        const scopes = p.spec.scopes as string[];
        scopes.push(scopes[0]!);
      },
      'spec.scopes[3]: Duplicate value: "quay.io/openshift-release-dev/ocp-release"',
    ],
    [
      "257 scopes",
      (p) => (p.spec.scopes = Array.from({ length: 257 }, (_, i) => `quay.io/r/x${i}`)),
      "spec.scopes: Too many: 257: must have at most 256 items",
    ],
    ["no scopes field", (p) => delete p.spec.scopes, "spec.scopes: Required value"],
    [
      "an unknown policyType",
      (p) => (p.spec.policy.rootOfTrust.policyType = "GPG"),
      'spec.policy.rootOfTrust.policyType: Unsupported value: "GPG"',
    ],
    [
      "PublicKey without publicKey",
      (p) => delete p.spec.policy.rootOfTrust.publicKey,
      'spec.policy.rootOfTrust: Invalid value: "object": publicKey is required when policyType is PublicKey, and forbidden otherwise',
    ],
    [
      "a second root of trust",
      (p) =>
        (p.spec.policy.rootOfTrust.pki = {
          caRootsData: pemToKeyData(CERT_PEM),
          pkiCertificateSubject: { email: "a@b" },
        }),
      "pki is required when policyType is PKI, and forbidden otherwise",
    ],
    [
      "keyData that is not base64",
      (p) => (p.spec.policy.rootOfTrust.publicKey.keyData = "-----BEGIN PUBLIC KEY-----"),
      "spec.policy.rootOfTrust.publicKey.keyData: Invalid value",
    ],
    [
      "keyData over 8192 characters",
      (p) => (p.spec.policy.rootOfTrust.publicKey.keyData = "QUFB".repeat(2049)),
      "spec.policy.rootOfTrust.publicKey.keyData: Too long",
    ],
    [
      "a misspelt keyData",
      (p) => (p.spec.policy.rootOfTrust.publicKey = { keydata: "QUFB" }),
      'unknown field "spec.policy.rootOfTrust.publicKey.keydata"',
    ],
    [
      "the wrong apiVersion",
      (p) => (p.apiVersion = "config.openshift.io/v1alpha1"),
      'apiVersion: Unsupported value: "config.openshift.io/v1alpha1"',
    ],
    [
      "an invalid name",
      (p) => (p.metadata.name = "Open_Shift"),
      'metadata.name: Invalid value: "Open_Shift": a lowercase RFC 1123 subdomain',
    ],
    [
      "ExactRepository without a repository",
      (p) => (p.spec.policy.signedIdentity = { matchPolicy: "ExactRepository" }),
      "exactRepository is required when matchPolicy is ExactRepository, and forbidden otherwise",
    ],
    [
      "a remap prefix with a tag",
      (p) =>
        (p.spec.policy.signedIdentity = {
          matchPolicy: "RemapIdentity",
          remapIdentity: { prefix: "mirror.example.com/ocp:4.15", signedPrefix: "quay.io/x" },
        }),
      "should not include the tag or digest",
    ],
    [
      "an unknown matchPolicy",
      (p) => (p.spec.policy.signedIdentity = { matchPolicy: "Anything" }),
      'spec.policy.signedIdentity.matchPolicy: Unsupported value: "Anything"',
    ],
  ])("rejects %s with a clear reason", (_what, mutate, expected) => {
    const problems = broken(mutate);
    expect(problems.join("\n")).toContain(expected);
  });

  it("rejects broken PKI and Fulcio roots with the schema's messages", () => {
    const pki = broken((p) => {
      p.spec.policy.rootOfTrust = {
        policyType: "PKI",
        pki: { caRootsData: pemToKeyData("not a cert"), pkiCertificateSubject: {} },
      };
    }).join("\n");
    expect(pki).toContain(
      "the caRootsData must start with base64 encoding of '-----BEGIN CERTIFICATE-----'.",
    );
    expect(pki).toContain("at least one of email or hostname must be set in pkiCertificateSubject");
    const fulcio = broken((p) => {
      p.spec.policy.rootOfTrust = {
        policyType: "FulcioCAWithRekor",
        fulcioCAWithRekor: {
          fulcioCAData: "QUFB",
          rekorKeyData: "QUFB",
          fulcioSubject: { oidcIssuer: "not a url", signedEmail: "nobody" },
        },
      };
    }).join("\n");
    expect(fulcio).toContain('oidcIssuer: Invalid value: "string": oidcIssuer must be a valid URL');
    expect(fulcio).toContain('signedEmail: Invalid value: "string": invalid email address');
  });

  it("refuses to generate an invalid policy (MANIFEST_INVALID names every problem)", () => {
    const err = thrown(() =>
      clusterImagePolicy({
        name: "x",
        scopes: ["busybox", "quay.io/a"],
        rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: "%%%" } },
      }),
    );
    expect(err.code).toBe("MANIFEST_INVALID");
    expect(err.message).toContain('ClusterImagePolicy "x" would be invalid: [spec.scopes[0]');
    expect(err.message).toContain("publicKey.keyData");
    expect(
      thrown(() =>
        clusterImagePolicy({
          name: "x",
          scopes: [],
          rootOfTrust: publicKeyPolicy().spec.policy.rootOfTrust,
        }),
      ).code,
    ).toBe("MANIFEST_INVALID");
  });
});

describe("ImageDigestMirrorSet", () => {
  it("maps only the release repository by default", () => {
    const idms = imageDigestMirrorSet({
      name: "sigferry-release",
      mirrors: ["mirror.example.com:5000/ocp/release"],
    });
    expect(idms).toEqual({
      apiVersion: "config.openshift.io/v1",
      kind: "ImageDigestMirrorSet",
      metadata: { name: "sigferry-release" },
      spec: {
        imageDigestMirrors: [
          {
            source: "quay.io/openshift-release-dev/ocp-release",
            mirrors: ["mirror.example.com:5000/ocp/release"],
          },
        ],
      },
    });
    expect(validateImageDigestMirrorSet(idms)).toEqual([]);
  });

  it("maps ocp-v4.0-art-dev too when asked, with a source policy", () => {
    const idms = imageDigestMirrorSet({
      name: "release",
      mirrors: ["mirror.example.com/ocp/release", "backup.example.com/ocp"],
      additionalSources: [OCP_ART_DEV_REPO],
      mirrorSourcePolicy: "NeverContactSource",
    });
    expect(idms.spec.imageDigestMirrors.map((m) => m.source)).toEqual([
      "quay.io/openshift-release-dev/ocp-release",
      "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
    ]);
    expect(idms.spec.imageDigestMirrors[1]).toEqual({
      source: OCP_ART_DEV_REPO,
      mirrors: ["mirror.example.com/ocp/release", "backup.example.com/ocp"],
      mirrorSourcePolicy: "NeverContactSource",
    });
    expect(configMapToYaml(idms)).toBe(
      [
        "apiVersion: config.openshift.io/v1",
        "kind: ImageDigestMirrorSet",
        "metadata:",
        "  name: release",
        "spec:",
        "  imageDigestMirrors:",
        "  - source: quay.io/openshift-release-dev/ocp-release",
        "    mirrors:",
        "    - mirror.example.com/ocp/release",
        "    - backup.example.com/ocp",
        "    mirrorSourcePolicy: NeverContactSource",
        "  - source: quay.io/openshift-release-dev/ocp-v4.0-art-dev",
        "    mirrors:",
        "    - mirror.example.com/ocp/release",
        "    - backup.example.com/ocp",
        "    mirrorSourcePolicy: NeverContactSource",
        "",
      ].join("\n"),
    );
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      "a mirror with a scheme",
      { source: "quay.io/a", mirrors: ["https://mirror.example.com/a"] },
      "spec.imageDigestMirrors[0].mirrors[0]: Invalid value",
    ],
    [
      "a mirror with a tag",
      { source: "quay.io/a", mirrors: ["mirror.example.com/a:4.15"] },
      "mirrors[0]: Invalid value",
    ],
    [
      "a duplicated mirror",
      { source: "quay.io/a", mirrors: ["m.example.com/a", "m.example.com/a"] },
      'mirrors[1]: Duplicate value: "m.example.com/a"',
    ],
    [
      "a wildcard source inside a path",
      { source: "quay.io/*", mirrors: ["m.example.com/a"] },
      "spec.imageDigestMirrors[0].source: Invalid value",
    ],
    [
      "no source",
      { mirrors: ["m.example.com/a"] },
      "spec.imageDigestMirrors[0].source: Required value",
    ],
    [
      "an unknown source policy",
      { source: "quay.io/a", mirrors: ["m.example.com/a"], mirrorSourcePolicy: "Never" },
      'mirrorSourcePolicy: Unsupported value: "Never"',
    ],
    [
      "an unknown field",
      { source: "quay.io/a", mirror: ["m.example.com/a"] },
      'unknown field "spec.imageDigestMirrors[0].mirror"',
    ],
  ])("rejects %s", (_what, item, expected) => {
    const obj = {
      apiVersion: "config.openshift.io/v1",
      kind: "ImageDigestMirrorSet",
      metadata: { name: "x" },
      spec: { imageDigestMirrors: [item] },
    };
    expect(messages(validateImageDigestMirrorSet(obj)).join("\n")).toContain(expected);
  });

  it("accepts what the schema allows: a *.host source, a single-label host with port", () => {
    const obj = imageDigestMirrorSet({
      name: "x",
      source: "*.redhat.io",
      mirrors: ["registry:5000/mirror"],
    });
    expect(validateImageDigestMirrorSet(obj)).toEqual([]);
  });

  it("refuses to generate a set without mirrors or with a bad mirror", () => {
    expect(thrown(() => imageDigestMirrorSet({ name: "x", mirrors: [] })).message).toContain(
      "mirrors: Required value",
    );
    expect(thrown(() => imageDigestMirrorSet({ name: "x", mirrors: ["oci://m/a"] })).code).toBe(
      "MANIFEST_INVALID",
    );
  });
});

describe("the schema patterns", () => {
  // The openshift/api patterns as written in the CRDs (RE2 syntax, [[:xdigit:]] spelt out).
  const CRD_SCOPE = new RegExp(
    "^((((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+(?::[0-9]+)?)|(localhost(?::[0-9]+)?))(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}))?$",
  );
  const CRD_SOURCE = new RegExp(
    "^\\*(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$|^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$",
  );
  const CRD_MIRROR = new RegExp(
    "^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$",
  );
  const samples = [
    "quay.io/openshift-release-dev/ocp-release",
    "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64",
    `quay.io/openshift-release-dev/ocp-release@sha256:${HEX}`,
    "localhost:5000/a/b",
    "localhost",
    "registry",
    "registry:5000/x",
    "a.b/c__d/e---f/g.h_i",
    "a.b/c___d",
    "a.b/-c",
    "a.b/c-",
    "a.b/C",
    "-a.b/c",
    "a-.b/c",
    "*.example.com",
    "quay.io/*",
    "quay.io//x",
    "quay.io/x/",
    "https://quay.io/x",
    "quay.io:/x",
    "quay.io/x@sha256:abc",
    "mirror.example.com:5000/ocp4/openshift4",
  ];

  // The CRD patterns take about a second on some of these in JavaScript's
  // backtracking engine: the reason sigferry's are rewritten.
  it.each(samples)("agree with the CRD patterns on %s", (s) => {
    expect(SCOPE_PATTERN.test(s)).toBe(CRD_SCOPE.test(s));
    expect(MIRROR_SOURCE_PATTERN.test(s)).toBe(CRD_SOURCE.test(s));
    expect(IMAGE_MIRROR_PATTERN.test(s)).toBe(CRD_MIRROR.test(s));
  });

  it("take linear time on a long path that almost matches (ReDoS regression)", () => {
    const hostile = `quay.io/${"a".repeat(200)}!`;
    const start = performance.now();
    const problems = validateImageDigestMirrorSet({
      apiVersion: "config.openshift.io/v1",
      kind: "ImageDigestMirrorSet",
      metadata: { name: "x" },
      spec: { imageDigestMirrors: [{ source: hostile, mirrors: [hostile] }] },
    });
    validateClusterImagePolicy({
      ...(realPolicy() as object),
      spec: { ...(realPolicy() as ClusterImagePolicy).spec, scopes: [hostile] },
    });
    expect(problems).toHaveLength(2);
    expect(performance.now() - start).toBeLessThan(500);
  });
});
