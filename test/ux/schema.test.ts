/**
 * The output schema itself, and the validator the tests use on it: the schema
 * is JSON Schema 2020-12 using only keywords the validator implements, every
 * $ref resolves, every command has a document, and the validator rejects what
 * it must (so a passing validation means something).
 */
import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { JSON_SCHEMA_VERSION, Reporter, jsonDocument } from "../../src/commands/output.js";
import { commandNameOf } from "../../src/cli.js";
import { loadOutputSchema, unresolvedRefs, unsupportedKeywords, validate } from "./json-schema.js";

const schema = loadOutputSchema() as Record<string, unknown> & {
  $defs: Record<string, { properties?: Record<string, unknown> }>;
};
const DIGEST = `sha256:${"a".repeat(64)}`;
const SHA = "b".repeat(64);

describe("docs/schema/sigferry-output.schema.json", () => {
  it("is JSON Schema 2020-12, uses only implemented keywords, and every $ref resolves", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(unsupportedKeywords(schema)).toEqual([]);
    expect(unresolvedRefs(schema)).toEqual([]);
  });

  it("names every command, and pins schemaVersion to the one the code writes", () => {
    expect((schema.$defs.schemaVersion as { const: number }).const).toBe(JSON_SCHEMA_VERSION);
    const names = (schema.$defs.commandName as unknown as { enum: string[] }).enum;
    for (const argv of [
      ["bundle", "create"],
      ["bundle", "verify", "x"],
      ["bundle", "inspect", "x"],
      ["bundle", "apply", "x"],
      ["bundle", "diff", "a", "b"],
      ["bundle", "export-manifests", "a", "d"],
      ["bundle", "export-store", "a", "d"],
      ["check"],
      ["nonsense"],
    ]) {
      expect(names).toContain(commandNameOf(argv));
    }
  });

  it("accepts a minimal error document and rejects one without schemaVersion or with a bad code", () => {
    const ok = {
      schemaVersion: 1,
      command: "bundle verify",
      ok: false,
      error: { code: "CHECKSUM_MISMATCH", message: "m", hint: "h", details: { member: "x" } },
    };
    expect(validate(schema, ok, { strict: true })).toEqual([]);
    const { schemaVersion: _drop, ...noVersion } = ok;
    expect(validate(schema, noVersion, { strict: true }).map((p) => p.message)).toContain(
      'missing required property "schemaVersion"',
    );
    expect(
      validate(schema, { ...ok, error: { ...ok.error, code: "not a code" } }, { strict: true }),
    ).not.toEqual([]);
    expect(validate(schema, { ...ok, schemaVersion: 2 }, { strict: true })).not.toEqual([]);
  });

  it("dispatches on the command: a diff document is not a valid inspect document", () => {
    const side = { file: "a", sha256: SHA, createdAt: "t", toolVersion: "0", releases: 0 };
    const none = { added: [], removed: [] };
    const diff = {
      schemaVersion: 1,
      command: "bundle diff",
      ok: true,
      verified: false,
      note: "n",
      old: side,
      new: side,
      identical: true,
      releases: { ...none, changed: [] },
      digests: none,
      signatures: { openpgp: none, sigstore: none },
      artifacts: { ...none, changed: [] },
      keys: { openpgp: none, sigstore: none },
    };
    expect(validate(schema, diff, { strict: true })).toEqual([]);
    expect(validate(schema, { ...diff, command: "bundle inspect" }, { strict: true })).not.toEqual(
      [],
    );
  });

  it("strict mode flags a field the schema does not document; the published schema stays open", () => {
    const doc = {
      schemaVersion: 1,
      command: "bundle export-manifests",
      ok: true,
      archive: { file: "a", sha256: SHA },
      dir: "d",
      files: ["kustomization.yaml"],
      warnings: [],
      somethingNew: 1,
    };
    expect(validate(schema, doc)).toEqual([]);
    expect(validate(schema, doc, { strict: true })).toEqual([
      { path: "/somethingNew", message: 'property "somethingNew" is not documented in the schema' },
    ]);
  });

  it("checks digests and enums deep inside a document", () => {
    const doc = {
      schemaVersion: 1,
      command: "check",
      ok: false,
      mirror: "m",
      trusted: { openpgp: [], sigstore: [] },
      rows: [
        { release: "r", digest: DIGEST, image: "ok", sigstore: "gone", configMap: "ok", notes: [] },
        {
          release: "r",
          digest: "sha256:XYZ",
          image: "ok",
          sigstore: "ok",
          configMap: "ok",
          notes: [],
        },
      ],
    };
    expect(validate(schema, doc, { strict: true }).map((p) => p.path)).toEqual([
      "/rows/0/sigstore",
      "/rows/1/digest",
    ]);
  });
});

describe("the --json envelope", () => {
  it("puts schemaVersion and command first in every document the Reporter writes", () => {
    const chunks: string[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c.toString());
        cb();
      },
    });
    const r = new Reporter({ json: true }, { stdout: sink, stderr: sink }, { command: "check" });
    r.resultJson({ ok: true });
    r.result("not in json mode");
    expect(Object.keys(JSON.parse(chunks.join("")) as object)).toEqual([
      "schemaVersion",
      "command",
      "ok",
    ]);
    expect(jsonDocument("bundle diff", { a: 1 })).toEqual({
      schemaVersion: 1,
      command: "bundle diff",
      a: 1,
    });
  });
});
