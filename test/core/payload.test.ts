/** The signed payloads of both signature kinds, held to the exact rules of the CVO and of containers/image. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Digest } from "../../src/core/digest.js";
import {
  canonicalJson,
  parseAtomicPayload,
  parseCosignPayload,
  parseJsonStrict,
} from "../../src/core/payload.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { real } from "../helpers/paths.js";

const D = "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363" as Digest;
const OTHER = "sha256:e3f12513a4b22a2d7c0e7c9207f52128113758d9d68c7d06b11a0ac7672966f7" as Digest;
const REF = "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64";

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function atomic(
  over: { critical?: unknown; optional?: unknown; extra?: Record<string, unknown> } = {},
): Uint8Array {
  const doc: Record<string, unknown> = {
    critical: over.critical ?? {
      image: { "docker-manifest-digest": D },
      type: "atomic container signature",
      identity: { "docker-reference": REF },
    },
    optional: over.optional ?? { creator: "Red Hat OpenShift Signing Authority 0.0.1" },
    ...over.extra,
  };
  return bytes(JSON.stringify(doc));
}

function cosign(
  over: { critical?: unknown; optional?: unknown; extra?: Record<string, unknown> } = {},
): Uint8Array {
  const doc: Record<string, unknown> = {
    critical: over.critical ?? {
      identity: { "docker-reference": REF },
      image: { "docker-manifest-digest": D },
      type: "cosign container image signature",
    },
    optional: over.optional === undefined ? null : over.optional,
    ...over.extra,
  };
  return bytes(JSON.stringify(doc));
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

describe("parseAtomicPayload", () => {
  it("accepts the real 4.15.0 payload and returns its identity and creator", () => {
    // The decoded literal data of real/gpg-signatures/store/sha256=0da6…/signature-1 (see real/README.md).
    const text =
      '{"critical": {"image": {"docker-manifest-digest": "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363"}, "type": "atomic container signature", "identity": {"docker-reference": "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64"}}, "optional": {"creator": "Red Hat OpenShift Signing Authority 0.0.1"}}';
    expect(parseAtomicPayload(bytes(text), D)).toEqual({
      identity: REF,
      digest: D,
      creator: "Red Hat OpenShift Signing Authority 0.0.1",
    });
  });

  it("accepts optional.timestamp as an int64 and a null optional, as Go's decoder does", () => {
    expect(
      parseAtomicPayload(atomic({ optional: { creator: "x", timestamp: 1555943751 } }), D)
        .timestamp,
    ).toBe(1555943751);
    expect(parseAtomicPayload(atomic({ optional: null as unknown as undefined }), D).identity).toBe(
      REF,
    );
  });

  describe("when the signature is for another digest", () => {
    it("rejects it with SIGNATURE_DIGEST_MISMATCH naming both digests", () => {
      const err = failure(() => parseAtomicPayload(atomic(), OTHER));
      expect(err.code).toBe("SIGNATURE_DIGEST_MISMATCH");
      expect(err.message).toContain(D);
      expect(err.message).toContain(OTHER);
    });

    it("compares exactly: an upper-case hex digest is another digest", () => {
      const upper = `sha256:${D.slice(7).toUpperCase()}`;
      const doc = atomic({
        critical: {
          image: { "docker-manifest-digest": upper },
          type: "atomic container signature",
          identity: { "docker-reference": REF },
        },
      });
      expect(failure(() => parseAtomicPayload(doc, D)).code).toBe("SIGNATURE_DIGEST_MISMATCH");
    });
  });

  it.each([
    ["at the top level", { extra: { extra: 1 } }, "extra"],
    [
      "in critical",
      {
        critical: {
          image: { "docker-manifest-digest": D },
          type: "atomic container signature",
          identity: { "docker-reference": REF },
          foo: 1,
        },
      },
      "foo",
    ],
    [
      "in critical.image",
      {
        critical: {
          image: { "docker-manifest-digest": D, size: 1 },
          type: "atomic container signature",
          identity: { "docker-reference": REF },
        },
      },
      "size",
    ],
    [
      "in critical.identity",
      {
        critical: {
          image: { "docker-manifest-digest": D },
          type: "atomic container signature",
          identity: { "docker-reference": REF, tag: "x" },
        },
      },
      "tag",
    ],
    // library-go's optionalSignature is a struct too, and DisallowUnknownFields reaches it.
    ["in optional", { optional: { creator: "x", note: "y" } }, "note"],
  ])(
    "rejects an unknown field %s with SIGNATURE_PAYLOAD_INVALID naming it",
    (_where, over, field) => {
      const err = failure(() => parseAtomicPayload(atomic(over), D));
      expect(err.code).toBe("SIGNATURE_PAYLOAD_INVALID");
      expect(err.message).toContain(field);
    },
  );

  it("rejects a key that matches a field only case-insensitively (Go would fold it; we refuse the ambiguity)", () => {
    const text = `{"Critical":{"image":{"docker-manifest-digest":"${D}"},"type":"atomic container signature","identity":{"docker-reference":"${REF}"}}}`;
    expect(failure(() => parseAtomicPayload(bytes(text), D)).code).toBe(
      "SIGNATURE_PAYLOAD_INVALID",
    );
  });

  it("rejects the cosign type, naming critical.type", () => {
    const err = failure(() =>
      parseAtomicPayload(
        atomic({
          critical: {
            image: { "docker-manifest-digest": D },
            type: "cosign container image signature",
            identity: { "docker-reference": REF },
          },
        }),
        D,
      ),
    );
    expect(err.code).toBe("SIGNATURE_PAYLOAD_INVALID");
    expect(err.message).toContain("critical.type");
  });

  it("rejects an empty or missing docker-reference", () => {
    for (const identity of [{ "docker-reference": "" }, {}, null]) {
      const err = failure(() =>
        parseAtomicPayload(
          atomic({
            critical: {
              image: { "docker-manifest-digest": D },
              type: "atomic container signature",
              identity,
            },
          }),
          D,
        ),
      );
      expect(err.code).toBe("SIGNATURE_PAYLOAD_INVALID");
      expect(err.message).toContain("docker-reference");
    }
  });

  it.each([
    ["a fractional timestamp", { creator: "x", timestamp: 1.5 }],
    ["a timestamp in exponent form", "EXP"],
    ["a timestamp beyond int64", "BIG"],
    ["a numeric creator", { creator: 5 }],
    ["a string optional", "text"],
  ])("rejects %s, which Go cannot decode into the CVO's struct", (_what, optional) => {
    let doc: Uint8Array;
    if (optional === "EXP" || optional === "BIG") {
      const t = optional === "EXP" ? "1e9" : "9223372036854775808";
      doc = bytes(
        `{"critical":{"image":{"docker-manifest-digest":"${D}"},"type":"atomic container signature","identity":{"docker-reference":"${REF}"}},"optional":{"timestamp":${t}}}`,
      );
    } else {
      doc = atomic({ optional });
    }
    expect(failure(() => parseAtomicPayload(doc, D)).code).toBe("SIGNATURE_PAYLOAD_INVALID");
  });

  it.each([
    ["duplicate keys", `{"critical":{"type":"x","type":"atomic container signature"}}`],
    ["trailing data after the object", `${new TextDecoder().decode(atomic())} {}`],
    ["a byte-order mark", `\uFEFF${new TextDecoder().decode(atomic())}`],
    ["a JSON array", "[]"],
    ["truncated JSON", new TextDecoder().decode(atomic()).slice(0, 40)],
  ])("rejects %s with SIGNATURE_PAYLOAD_INVALID", (_what, text) => {
    expect(failure(() => parseAtomicPayload(bytes(text), D)).code).toBe(
      "SIGNATURE_PAYLOAD_INVALID",
    );
  });

  it("rejects invalid UTF-8", () => {
    const b = atomic();
    const broken = new Uint8Array([...b.subarray(0, 10), 0xff, ...b.subarray(10)]);
    expect(failure(() => parseAtomicPayload(broken, D)).code).toBe("SIGNATURE_PAYLOAD_INVALID");
  });
});

describe("parseCosignPayload", () => {
  it("accepts a real cosign layer with optional null and returns its identity", () => {
    const layer = readFileSync(
      real(
        "cosign-sig-layouts/single-arch-empty-image-sig/blobs/sha256/5e7a034f575bb1b9188e4ea29470a2b86c640170125fa8c7ec9dc9c4bc17a373",
      ),
    );
    const digest =
      "sha256:7d27ba1da0f64410102468d138f9ec8f61f2cc23bb58ff4cd63243a4434e3d99" as Digest;
    expect(parseCosignPayload(layer, digest)).toEqual({
      identity: "quay.io/rh_ee_aguidi/empty-image",
      digest,
    });
  });

  it("ignores unknown keys in optional but types creator and timestamp", () => {
    const p = parseCosignPayload(
      cosign({ optional: { creator: "containers/image", timestamp: 1700000000, anything: [1] } }),
      D,
    );
    expect(p).toMatchObject({ creator: "containers/image", timestamp: 1700000000 });
    expect(
      failure(() => parseCosignPayload(cosign({ optional: { timestamp: 1.5 } }), D)).code,
    ).toBe("SIGNATURE_PAYLOAD_INVALID");
  });

  it("rejects a signature for another digest with SIGNATURE_DIGEST_MISMATCH", () => {
    const err = failure(() => parseCosignPayload(cosign(), OTHER));
    expect(err.code).toBe("SIGNATURE_DIGEST_MISMATCH");
    expect(err.message).toContain(OTHER);
  });

  it("rejects the atomic type", () => {
    const doc = cosign({
      critical: {
        identity: { "docker-reference": REF },
        image: { "docker-manifest-digest": D },
        type: "atomic container signature",
      },
    });
    expect(failure(() => parseCosignPayload(doc, D)).message).toContain("critical.type");
  });

  it.each([
    [
      "a missing optional key",
      `{"critical":{"identity":{"docker-reference":"${REF}"},"image":{"docker-manifest-digest":"${D}"},"type":"cosign container image signature"}}`,
      "optional",
    ],
    ["an unknown top-level key", new TextDecoder().decode(cosign({ extra: { x: 1 } })), "x"],
    [
      "an unknown key in critical",
      new TextDecoder().decode(
        cosign({
          critical: {
            identity: { "docker-reference": REF },
            image: { "docker-manifest-digest": D },
            type: "cosign container image signature",
            z: 1,
          },
        }),
      ),
      "z",
    ],
    [
      "a missing identity",
      new TextDecoder().decode(
        cosign({
          critical: {
            image: { "docker-manifest-digest": D },
            type: "cosign container image signature",
          },
        }),
      ),
      "identity",
    ],
    [
      "a malformed digest",
      new TextDecoder().decode(
        cosign({
          critical: {
            identity: { "docker-reference": REF },
            image: { "docker-manifest-digest": "sha256:XYZ" },
            type: "cosign container image signature",
          },
        }),
      ),
      "docker-manifest-digest",
    ],
    ["a duplicate key", `{"critical":{},"critical":{},"optional":null}`, "duplicate"],
  ])("rejects %s with SIGNATURE_PAYLOAD_INVALID", (_what, text, mention) => {
    const err = failure(() => parseCosignPayload(bytes(text), D));
    expect(err.code).toBe("SIGNATURE_PAYLOAD_INVALID");
    expect(err.message).toContain(mention);
  });
});

describe("canonicalJson", () => {
  it("sorts keys and prints numbers the ECMAScript way (RFC 8785)", () => {
    const node = parseJsonStrict(
      '{"b": 1.50, "a": [true, null, "\\u00e9"], "c": 1E2}',
      "SIGNATURE_INVALID",
      "t",
    );
    expect(canonicalJson(node)).toBe('{"a":[true,null,"é"],"b":1.5,"c":100}');
  });
});

describe("parseJsonStrict strings", () => {
  const stringOf = (literal: string): string => {
    const node = parseJsonStrict(`{"s":${literal}}`, "SIGNATURE_INVALID", "t");
    if (node.type !== "object") throw new Error("not an object");
    const s = node.entries.get("s");
    if (s?.type !== "string") throw new Error("not a string");
    return s.value;
  };

  it.each([
    ['"quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64"'],
    ['""'],
    ['"\\"leading escape and a run after it"'],
    ['"a run, then every escape: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud800, then a run"'],
    ['"runs of UTF-16 é😀 between \\n escapes"'],
  ])("reads %s as JSON.parse does", (literal) => {
    expect(stringOf(literal)).toBe(JSON.parse(literal));
  });

  it.each([
    ['"a run \u0001 with a control character"', "control character"],
    ['"a run that never ends', "unterminated string"],
    ['"a run then a bad escape \\x"', "invalid escape"],
  ])("rejects %s", (literal, mention) => {
    const err = failure(() => stringOf(literal));
    expect(err.message).toContain(mention);
  });
});
