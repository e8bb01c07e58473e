/** The pinned Red Hat keys: the real published key material matches the pins, and nothing else does. */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import {
  REDHAT_BETA_KEY_2,
  REDHAT_RELEASE_KEY_2,
  REDHAT_SIGSTORE_KEY_ID,
  isPinnedOpenPgp,
  isPinnedSigstore,
} from "../../src/core/trust.js";
import { loadOpenPgpKeys, selectPinned } from "../../src/verify/openpgp.js";
import { loadSigstoreKey } from "../../src/verify/sigstore.js";
import { real } from "../helpers/paths.js";

describe("the OpenPGP pins", () => {
  it("match the keyring of the real release-verification ConfigMap shipped in OCP payloads", async () => {
    // The upstream file repeats `namespace:`, hence uniqueKeys: false.
    const cm = parseYaml(readFileSync(real("keys/release-verification-configmap.yaml"), "utf8"), {
      uniqueKeys: false,
    }) as {
      data: Record<string, string>;
    };
    const keys = await loadOpenPgpKeys(
      cm.data["verifier-public-key-redhat"]!,
      "release-verification",
    );
    expect(keys.map((k) => k.fingerprint).sort()).toEqual(
      [REDHAT_RELEASE_KEY_2, REDHAT_BETA_KEY_2].sort(),
    );
    expect(keys.every((k) => isPinnedOpenPgp(k.fingerprint))).toBe(true);
    expect(selectPinned(keys, [REDHAT_RELEASE_KEY_2])).toHaveLength(1);
  });

  it("accept the real release and beta key files and refuse the CI keys", async () => {
    for (const [file, pinned] of [
      ["redhat-release-key-2.asc", true],
      ["redhat-beta-key-2.asc", true],
      ["openshift-ci-key-4.asc", false],
      ["openshift-ci-key-1-expired.asc", false],
    ] as const) {
      const [key] = await loadOpenPgpKeys(readFileSync(real("keys", file), "utf8"), file);
      expect(isPinnedOpenPgp(key!.fingerprint), file).toBe(pinned);
    }
  });

  it("compare whole fingerprints only, in any case and spacing", () => {
    expect(isPinnedOpenPgp("567e 347a d004 4ade 55ba  8a5f 199e 2f91 fd43 1d51")).toBe(true);
    expect(isPinnedOpenPgp("199E2F91FD431D51")).toBe(false); // a short key id is forgeable
    expect(isPinnedOpenPgp("")).toBe(false);
  });
});

describe("the sigstore pin", () => {
  it("is the id of the real Red Hat sigstore key, an RSA-4096 key", () => {
    const key = loadSigstoreKey(
      readFileSync(real("keys/redhat-release-sigstore-key.pem")),
      "redhat-release-sigstore-key.pem",
    );
    expect(key.algorithm).toBe("rsa-4096");
    expect(key.id).toBe(REDHAT_SIGSTORE_KEY_ID);
    expect(isPinnedSigstore(key.id)).toBe(true);
  });

  it("is the id of the keyData in the real openshift ClusterImagePolicy", () => {
    const policy = parseYaml(
      readFileSync(real("keys/openshift-cluster-image-policy.yaml"), "utf8"),
    ) as {
      spec: { policy: { rootOfTrust: { policyType: string; publicKey: { keyData: string } } } };
    };
    expect(policy.spec.policy.rootOfTrust.policyType).toBe("PublicKey");
    const pem = Buffer.from(policy.spec.policy.rootOfTrust.publicKey.keyData, "base64");
    expect(loadSigstoreKey(pem, "ClusterImagePolicy openshift").id).toBe(REDHAT_SIGSTORE_KEY_ID);
  });

  it("refuses other keys and malformed ids", () => {
    const rekor = loadSigstoreKey(
      readFileSync(real("keys/sigstore-rekor-production.pub")),
      "rekor.pub",
    );
    expect(isPinnedSigstore(rekor.id)).toBe(false);
    expect(isPinnedSigstore(REDHAT_SIGSTORE_KEY_ID.toUpperCase())).toBe(true);
    expect(isPinnedSigstore(REDHAT_SIGSTORE_KEY_ID.slice(0, 16))).toBe(false);
  });
});
