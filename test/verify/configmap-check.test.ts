import { readFileSync, readdirSync } from "node:fs";
import { beforeEach, describe, expect, it, vi, type Mock } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import { configMapToYaml, signatureConfigMap } from "../../src/core/manifests.js";
import type * as YamlModule from "../../src/core/yaml.js";
import { checkConfigMap } from "../../src/verify/bundle.js";
import { SigferryError } from "../../src/errors.js";
import { real } from "../helpers/paths.js";

// Counts YAML parses, to tell the direct comparison from the full check.
const parse = vi.hoisted(() => ({ spy: undefined as unknown as Mock }));
vi.mock("../../src/core/yaml.js", async (importOriginal) => {
  const actual = await importOriginal<typeof YamlModule>();
  const lib = actual.yamlLib();
  parse.spy = vi.fn(lib.parse);
  const spied = { ...lib, parse: parse.spy };
  return { yamlLib: () => spied };
});
const parses = (): number => parse.spy.mock.calls.length;

const store = real("gpg-signatures", "store");
const releases = readdirSync(store).map((dir) => ({
  digest: dir.replace("=", ":") as Digest,
  name: dir.replace("=", "-"),
  sig: new Uint8Array(readFileSync(`${store}/${dir}/signature-1`)),
}));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function code(fn: () => void): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof SigferryError) return err.code;
    throw err;
  }
  return undefined;
}

describe("checkConfigMap", () => {
  beforeEach(() => {
    parse.spy.mockClear();
  });
  const [one, two] = releases;

  it("accepts the ConfigMap sigferry writes by comparing bytes, without parsing YAML", () => {
    for (const r of releases) {
      const text = configMapToYaml(signatureConfigMap(r.digest, [r.sig]));
      expect(
        code(() => checkConfigMap(utf8(text), r.digest, r.name, [r.sig], [`${r.name}-1`])),
      ).toBe(undefined);
    }
    expect(parses()).toBe(0);
  });

  it("reads any other text in full: the same object written as JSON passes, after a parse", () => {
    const cm = signatureConfigMap(one!.digest, [one!.sig]);
    const json = JSON.stringify(cm, null, 1);
    expect(code(() => checkConfigMap(utf8(json), one!.digest, one!.name, [one!.sig]))).toBe(
      undefined,
    );
    expect(parses()).toBe(1);
  });

  it("refuses canonical text whose keys differ from the recorded ones (full check, CONFIGMAP_MISMATCH)", () => {
    const text = configMapToYaml(signatureConfigMap(one!.digest, [one!.sig]));
    expect(
      code(() =>
        checkConfigMap(
          utf8(text),
          one!.digest,
          one!.name,
          [one!.sig],
          [`${one!.name}-1`, `${one!.name}-2`],
        ),
      ),
    ).toBe("CONFIGMAP_MISMATCH");
    expect(parses()).toBe(1);
  });

  it("refuses another release's signature written the canonical way", () => {
    // The text is exactly what sigferry would write, but for a signature this bundle does not carry.
    const text = configMapToYaml(signatureConfigMap(one!.digest, [two!.sig]));
    expect(code(() => checkConfigMap(utf8(text), one!.digest, one!.name, [one!.sig]))).toBe(
      "CONFIGMAP_MISMATCH",
    );
  });

  it("refuses a canonical ConfigMap with one byte of the base64 changed", () => {
    const text = configMapToYaml(signatureConfigMap(one!.digest, [one!.sig]));
    const at = text.lastIndexOf(": ") + 10;
    const flipped = text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
    expect(code(() => checkConfigMap(utf8(flipped), one!.digest, one!.name, [one!.sig]))).toBe(
      "CONFIGMAP_MISMATCH",
    );
  });

  it("accepts two signatures in either order under keys -1, -2, parsing only when the order differs", () => {
    const sigs = [one!.sig, two!.sig];
    const text = configMapToYaml(signatureConfigMap(one!.digest, sigs));
    checkConfigMap(utf8(text), one!.digest, one!.name, sigs);
    expect(parses()).toBe(0);
    checkConfigMap(utf8(text), one!.digest, one!.name, [two!.sig, one!.sig]);
    expect(parses()).toBe(1);
  });
});
