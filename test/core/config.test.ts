import { describe, expect, it } from "vitest";
import { closestKey, parseSelectionConfig } from "../../src/core/config.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";

const FILE = "selection.yaml";

function configError(text: string): SigferryError {
  try {
    parseSelectionConfig(text, FILE);
  } catch (err) {
    if (isSigferryError(err, "INVALID_CONFIG")) return err;
    throw err;
  }
  throw new Error("expected INVALID_CONFIG");
}

describe("parseSelectionConfig: a valid file", () => {
  it("reads every key, normalising arch aliases", () => {
    const text = [
      "# what to carry",
      "channels: [stable-4.13]",
      "min: 4.13.31",
      "max: 4.13.36",
      "shortestPath: true",
      "acceptRisks: true",
      "arches: [amd64, s390x, multi]",
      "releases:",
      "  - 4.15.0",
      "digests:",
      `  - sha256:${"a".repeat(64)}`,
      "sources:",
      "  releaseRepo: quay.io/openshift-release-dev/ocp-release",
      "  signatureStores: [https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release]",
      "  graphUrl: https://api.openshift.com/api/upgrades_info/v1/graph",
      "keys:",
      "  keyrings: [keys/redhat-release-key-2.asc]",
      "  sigstoreKeys: [keys/redhat-release-sigstore-key.pem]",
      "require: [openpgp, sigstore]",
      "",
    ].join("\n");
    expect(parseSelectionConfig(text, FILE)).toEqual({
      channels: ["stable-4.13"],
      min: "4.13.31",
      max: "4.13.36",
      shortestPath: true,
      acceptRisks: true,
      arches: ["x86_64", "s390x", "multi"],
      releases: ["4.15.0"],
      digests: [`sha256:${"a".repeat(64)}`],
      sources: {
        releaseRepo: "quay.io/openshift-release-dev/ocp-release",
        signatureStores: [
          "https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release",
        ],
        graphUrl: "https://api.openshift.com/api/upgrades_info/v1/graph",
      },
      keys: {
        keyrings: ["keys/redhat-release-key-2.asc"],
        sigstoreKeys: ["keys/redhat-release-sigstore-key.pem"],
      },
      require: ["openpgp", "sigstore"],
    });
  });

  it("leaves absent keys absent", () => {
    expect(parseSelectionConfig("full: true\n", FILE)).toEqual({ full: true });
  });

  it("reads pre-release versions", () => {
    expect(parseSelectionConfig('min: 4.12.0-rc.2\nmax: "4.12.0-rc.4"\n', FILE)).toEqual({
      min: "4.12.0-rc.2",
      max: "4.12.0-rc.4",
    });
  });
});

describe("parseSelectionConfig: unknown keys", () => {
  it("names the file, line and key, and suggests the closest known key", () => {
    const err = configError("channels: [stable-4.13]\nmin: 4.13.0\nshortest_path: true\n");
    expect(err.message).toBe(
      'selection.yaml:3: shortest_path: unknown key; did you mean "shortestPath"?',
    );
    expect(err.details).toMatchObject({ file: FILE, key: "shortest_path", line: 3 });
  });

  it("suggests a key for a small typo", () => {
    expect(configError("chanels: [stable-4.13]\n").message).toContain('did you mean "channels"?');
    expect(configError("accept-risks: true\n").message).toContain('did you mean "acceptRisks"?');
  });

  it("suggests within nested mappings, with the full key path", () => {
    const err = configError(
      "sources:\n  releaseRepo: quay.io/a/b\n  graphURL: https://x.example/g\n",
    );
    expect(err.message).toBe(
      'selection.yaml:3: sources.graphURL: unknown key; did you mean "graphUrl"?',
    );
  });

  it("lists the known keys when nothing is close", () => {
    const err = configError("kubeconfig: ~/.kube/config\n");
    expect(err.message).toContain(
      "selection.yaml:1: kubeconfig: unknown key; known keys here: releases",
    );
    expect(err.message).toContain("acceptRisks");
  });
});

describe("parseSelectionConfig: wrong types and values", () => {
  it("rejects a version YAML reads as a number, suggesting quotes", () => {
    const err = configError("channels: [stable-4.13]\nmin: 4.13\n");
    expect(err.message).toBe(
      'selection.yaml:2: min: expected a string, found a number (4.13); quote it if you meant the text "4.13"',
    );
    expect(err.details.line).toBe(2);
  });

  it("rejects a boolean written as a word", () => {
    expect(configError("full: yes\n").message).toBe(
      "selection.yaml:1: full: expected true or false, found a string",
    );
  });

  it("rejects a single value where a list is expected", () => {
    expect(configError("channels: stable-4.13\n").message).toBe(
      "selection.yaml:1: channels: expected a list, found a string; write e.g. channels: [stable-4.13]",
    );
  });

  it("names the list item and its line", () => {
    const err = configError("releases:\n  - 4.15.0\n  - 4.15\n");
    expect(err.message).toMatch(
      /^selection\.yaml:3: releases\[1\]: expected a string, found a number/,
    );
    const bad = configError("releases:\n  - 4.15.0\n  - 4.15.x\n");
    expect(bad.message).toMatch(
      /^selection\.yaml:3: releases\[1\]: "4\.15\.x" is not a release version/,
    );
  });

  it("rejects bad digests, arches, repositories, URLs and kinds", () => {
    expect(configError("digests: [sha256:abc]\n").message).toContain("digests[0]");
    expect(configError("arches: [i386]\n").message).toContain('arches[0]: unknown arch "i386"');
    expect(configError("sources:\n  releaseRepo: ocp-release\n").message).toContain(
      "selection.yaml:2: sources.releaseRepo:",
    );
    expect(configError("sources:\n  graphUrl: ftp://x.example/g\n").message).toContain(
      "is not an http(s) URL",
    );
    expect(configError("require: [gpg]\n").message).toContain('"gpg" is not a signature kind');
  });

  it("rejects a mapping where a string is expected, and a string where a mapping is", () => {
    expect(configError("min:\n  a: 1\n").message).toContain(
      "min: expected a string, found a mapping",
    );
    expect(configError("keys: mykey.asc\n").message).toContain(
      "keys: expected a mapping, found a string",
    );
  });

  it("rejects a key with no value", () => {
    expect(configError("channels: [a]\nmax:\n").message).toBe(
      "selection.yaml:2: max: has no value; give one or remove the key",
    );
  });

  it("rejects full together with min, max or shortestPath", () => {
    expect(configError("min: 4.13.0\nfull: true\n").message).toBe(
      "selection.yaml:2: full: cannot be combined with min (full: true selects every release)",
    );
  });
});

describe("parseSelectionConfig: the file as a whole", () => {
  it("rejects invalid YAML with its line", () => {
    expect(configError("channels: [stable-4.13\nmin: 4.13.0\n").message).toMatch(
      /^selection\.yaml:\d+: not valid YAML/,
    );
  });

  it("rejects a key given twice", () => {
    expect(configError("min: 4.13.0\nmin: 4.13.1\n").message).toMatch(
      /^selection\.yaml:2: not valid YAML: .*[Uu]nique/,
    );
  });

  it("rejects an empty file and a top-level list", () => {
    expect(configError("").message).toContain("selection.yaml: the file is empty");
    expect(configError("# nothing\n").message).toContain("the file is empty");
    expect(configError("- channels\n").message).toContain(
      "selection.yaml:1: expected a mapping of keys at the top, found a list",
    );
  });

  it("rejects YAML aliases", () => {
    expect(configError("channels: &c [stable-4.13]\nreleases: *c\n").message).toContain(
      "releases: YAML aliases are not supported",
    );
  });
});

describe("closestKey", () => {
  it("matches ignoring case, dashes and underscores, and otherwise by edit distance", () => {
    const known = ["channels", "shortestPath", "acceptRisks", "min", "max"];
    expect(closestKey("SHORTEST-PATH", known)).toBe("shortestPath");
    expect(closestKey("channel", known)).toBe("channels");
    expect(closestKey("mni", known)).toBe("min");
    expect(closestKey("kubeconfig", known)).toBeUndefined();
  });
});
