/**
 * Selection against the real update graphs. Every expected value below was
 * worked out from the JSON with jq / sort -V (commands in the comments), not
 * with the code under test. "Conditional" follows the CVO: an update listed in
 * both `edges` and `conditionalEdges` counts as conditional.
 */
import { describe, expect, it } from "vitest";
import type { UpdateGraph } from "../../src/core/graph.js";
import {
  assertRegistryAgrees,
  mergeSelections,
  selectionRecord,
  selectReleases,
  type SelectionResult,
} from "../../src/core/select.js";
import { isSigferryError, type SigferryError } from "../../src/errors.js";
import { GRAPH_FILES, loadGraph } from "../helpers/graphs.js";

const g49 = loadGraph(GRAPH_FILES.stable49amd64);
const g49z = loadGraph(GRAPH_FILES.stable49s390x);
const g413 = loadGraph(GRAPH_FILES.stable413amd64);
const gMulti = loadGraph(GRAPH_FILES.candidate412multi);

const versions = (r: SelectionResult) => r.nodes.map((n) => n.version);
const edgeList = (r: SelectionResult) =>
  r.edges.map((e) => [e.from, e.to, e.risks?.map((x) => x.name) ?? []]);

function thrown(fn: () => unknown): SigferryError {
  try {
    fn();
  } catch (err) {
    if (isSigferryError(err)) return err;
    throw err;
  }
  throw new Error("expected an error");
}

describe("selectReleases: the channel head", () => {
  // jq -r '.nodes[] | "\(.version) \(.payload|split("@")[1])"' <file> | sort -V | tail -1
  it.each([
    [g49, "4.9.53", "sha256:50bed2a31fd04336df604c5af7c64584c067f80e7b94aa86656302dc7fb391a4"],
    [g49z, "4.9.53", "sha256:46fd175000f4f960da5cc928775d19c3ccd1083ae4f75d3cd1cc09eb2f34251e"],
    [g413, "4.13.43", "sha256:d0da3d9b016e6d693a61c9425598921b6d0da99c52cb0f3404f6dbc126149e5d"],
    // All five are 4.12.0 release candidates; rc.4 is the highest pre-release.
    [
      gMulti,
      "4.12.0-rc.4",
      "sha256:f7f292ebe21e88c518fc51db62f915657efa8e71d483c431580a4d0e63b8c3c1",
    ],
  ])("selects only the highest version of %#", (graph: UpdateGraph, version, digest) => {
    const r = selectReleases(graph, {});
    expect(versions(r)).toEqual([version]);
    expect(r.nodes[0]!.digest).toBe(digest);
    expect(r.edges).toEqual([]);
    expect(r.warnings).toEqual([]);
  });
});

describe("selectReleases: ranges", () => {
  it("with --min alone selects from min up to the head", () => {
    // sort -V of stable-4.9 versions: ... 4.9.47 4.9.48 4.9.49 4.9.50 4.9.51 4.9.52 4.9.53
    const r = selectReleases(g49, { min: "4.9.48" });
    expect(versions(r)).toEqual(["4.9.48", "4.9.49", "4.9.50", "4.9.51", "4.9.52", "4.9.53"]);
  });

  it("with --min 4.13.40 on stable-4.13 selects the four releases docs/selection.md lists", () => {
    // sort -V: 4.13.40 4.13.41 4.13.42 4.13.43 are the last four; digests from jq.
    const r = selectReleases(g413, { min: "4.13.40" });
    expect(r.nodes.map((n) => [n.version, n.digest])).toEqual([
      ["4.13.40", "sha256:c1f69e6137bc9cda2c6da56bafbc7ea969900acb5e5c349b1ebb2103b10b424f"],
      ["4.13.41", "sha256:dbb8aa0cf53dc5ac663514e259ad2768d8c82fd1fe7181a4cfb484e3ffdbd3ba"],
      ["4.13.42", "sha256:dcf5c3ad7384f8bee3c275da8f886b0bc9aea7611d166d695d0cf0fff40a0b55"],
      ["4.13.43", "sha256:d0da3d9b016e6d693a61c9425598921b6d0da99c52cb0f3404f6dbc126149e5d"],
    ]);
  });

  it("with --max alone selects from the channel's lowest release up to max (oc-mirror v2)", () => {
    // sort -V of stable-4.9 starts 4.8.2 4.8.3 4.8.4 4.8.5 4.8.9 (no 4.8.6-4.8.8).
    const r = selectReleases(g49, { max: "4.8.5" });
    expect(versions(r)).toEqual(["4.8.2", "4.8.3", "4.8.4", "4.8.5"]);
  });

  it("with --min and --max selects both ends and everything between, listing each update and its risks", () => {
    // Versions: sort -V gives 4.13.34 4.13.35 4.13.36 4.13.37.
    // Updates among them, jq over .edges: 34>35 34>36 35>36 36>37; over .conditionalEdges:
    // 34>36 34>37 35>36 35>37, all in one entry whose only risk is CephCapDropPanic.
    // 34>36 and 35>36 are in both lists, so they are conditional.
    const r = selectReleases(g413, { min: "4.13.34", max: "4.13.37" });
    expect(versions(r)).toEqual(["4.13.34", "4.13.35", "4.13.36", "4.13.37"]);
    expect(edgeList(r)).toEqual([
      ["4.13.34", "4.13.35", []],
      ["4.13.34", "4.13.36", ["CephCapDropPanic"]],
      ["4.13.34", "4.13.37", ["CephCapDropPanic"]],
      ["4.13.35", "4.13.36", ["CephCapDropPanic"]],
      ["4.13.35", "4.13.37", ["CephCapDropPanic"]],
      ["4.13.36", "4.13.37", []],
    ]);
    expect(r.edges[1]!.risks![0]).toMatchObject({
      name: "CephCapDropPanic",
      url: "https://issues.redhat.com/browse/COS-2781",
      message:
        "Nodes in clusters running workloads that mount Ceph volumes may experience kernel panics due to a CephFS client bug.",
    });
    expect(r.warnings.join("\n")).toMatch(/4 of the 6 updates .* CephCapDropPanic/);
  });

  it("with min equal to max selects that one release", () => {
    expect(versions(selectReleases(g413, { min: "4.13.40", max: "4.13.40" }))).toEqual(["4.13.40"]);
  });

  it("orders release candidates by semver: --min 4.12.0-rc.2 and --max 4.12.0-rc.1 on the multi graph", () => {
    // The multi graph holds 4.12.0-rc.0 .. rc.4.
    expect(versions(selectReleases(gMulti, { min: "4.12.0-rc.2" }))).toEqual([
      "4.12.0-rc.2",
      "4.12.0-rc.3",
      "4.12.0-rc.4",
    ]);
    expect(versions(selectReleases(gMulti, { max: "4.12.0-rc.1" }))).toEqual([
      "4.12.0-rc.0",
      "4.12.0-rc.1",
    ]);
  });

  it("with --full selects every release and every update", () => {
    // stable-4.9: 90 nodes, 2544 edges, no duplicates (jq '[.edges[]|tostring]|unique|length').
    const r = selectReleases(g49, { full: true });
    expect(r.nodes).toHaveLength(90);
    expect(r.nodes[0]!.version).toBe("4.8.2");
    expect(r.nodes.at(-1)!.version).toBe("4.9.53");
    expect(r.edges).toHaveLength(2544);
    // stable-4.13: 1171 edges + 2394 conditional pairs - 136 pairs in both = 3429.
    expect(selectReleases(g413, { full: true }).edges).toHaveLength(3429);
  });
});

describe("selectReleases: shortest path", () => {
  it("finds 4.8.2 -> 4.8.54 -> 4.9.53 in stable-4.9, preferring the newest hop among equals", () => {
    // No direct edge 4.8.2>4.9.53 (jq: 0 matches). succ(4.8.2) ∩ pred(4.9.53) has 37
    // versions, 4.8.14 .. 4.8.54; oc-mirror's tie-break visits newer targets first, so
    // the path goes through the highest, 4.8.54.
    const r = selectReleases(g49, { shortestPath: true, min: "4.8.2", max: "4.9.53" });
    expect(versions(r)).toEqual(["4.8.2", "4.8.54", "4.9.53"]);
    expect(edgeList(r)).toEqual([
      ["4.8.2", "4.8.54", []],
      ["4.8.54", "4.9.53", []],
    ]);
    expect(r.warnings).toEqual([]);
  });

  it("finds the same path in the s390x graph, with the s390x digests", () => {
    // Same versions and edges as amd64 (diff of the version lists is empty); digests differ.
    const r = selectReleases(g49z, { shortestPath: true, min: "4.8.2", max: "4.9.53" });
    expect(versions(r)).toEqual(["4.8.2", "4.8.54", "4.9.53"]);
    expect(r.nodes[2]!.digest).toBe(
      "sha256:46fd175000f4f960da5cc928775d19c3ccd1083ae4f75d3cd1cc09eb2f34251e",
    );
  });

  it("finds 4.12.0 -> 4.12.58 -> 4.13.43 in stable-4.13 over unconditional updates only", () => {
    // No edge 4.12.0>4.13.43 in either list. Unconditional succ(4.12.0) ∩ pred(4.13.43),
    // leaving out pairs that are also conditional: 19 versions, 4.12.16 .. 4.12.58.
    const r = selectReleases(g413, { shortestPath: true, min: "4.12.0", max: "4.13.43" });
    expect(versions(r)).toEqual(["4.12.0", "4.12.58", "4.13.43"]);
    expect(r.edges.every((e) => e.risks === undefined)).toBe(true);
  });

  it("with --min alone goes from min to the head", () => {
    // 4.13.0>4.13.43 is a direct unconditional edge (jq), so the path is one update.
    const r = selectReleases(g413, { shortestPath: true, min: "4.13.0" });
    expect(versions(r)).toEqual(["4.13.0", "4.13.43"]);
  });

  it("without min or max selects the head and says so", () => {
    const r = selectReleases(g413, { shortestPath: true });
    expect(versions(r)).toEqual(["4.13.43"]);
    expect(r.warnings[0]).toMatch(/head only/);
  });

  it("when only a conditional path exists, refuses and names the risks", () => {
    // 4.13.31's unconditional successors: 4.13.32, 4.13.42, 4.13.43 (4.13.33 is also
    // listed conditionally); none of them leads back down to 4.13.36. The conditional
    // entry holding 4.13.31>4.13.36 has risks CephCapDropPanic (COS-2781) and
    // HighNodeStatusReportFrequency (MCO-1094).
    const err = thrown(() =>
      selectReleases(g413, { shortestPath: true, min: "4.13.31", max: "4.13.36" }),
    );
    expect(err.code).toBe("USAGE");
    expect(err.message).toContain("no unconditional update path from 4.13.31 to 4.13.36");
    expect(err.message).toContain("CephCapDropPanic (https://issues.redhat.com/browse/COS-2781)");
    expect(err.message).toContain(
      "HighNodeStatusReportFrequency (https://issues.redhat.com/browse/MCO-1094)",
    );
    expect(err.message).toContain("--accept-risks");
    expect(err.details.risks).toEqual(["CephCapDropPanic", "HighNodeStatusReportFrequency"]);
  });

  it("with --accept-risks follows the conditional update and lists its risks", () => {
    const r = selectReleases(g413, {
      shortestPath: true,
      min: "4.13.31",
      max: "4.13.36",
      acceptRisks: true,
    });
    expect(versions(r)).toEqual(["4.13.31", "4.13.36"]);
    expect(edgeList(r)).toEqual([
      ["4.13.31", "4.13.36", ["CephCapDropPanic", "HighNodeStatusReportFrequency"]],
    ]);
    expect(r.edges[0]!.risks![1]!.message).toBe(
      "An unintended reversion to the default kubelet nodeStatusReportFrequency can cause significant load on the control plane.",
    );
    expect(r.warnings.join("\n")).toMatch(/conditional updates \(4\.13\.31 -> 4\.13\.36\)/);
  });

  it("treats an update listed both as unconditional and conditional as conditional (CVO)", () => {
    // 4.13.35>4.13.36 is in .edges AND in a conditionalEdges entry (risk CephCapDropPanic).
    const err = thrown(() =>
      selectReleases(g413, { shortestPath: true, min: "4.13.35", max: "4.13.36" }),
    );
    expect(err.code).toBe("USAGE");
    expect(err.details.risks).toEqual(["CephCapDropPanic"]);
    const r = selectReleases(g413, {
      shortestPath: true,
      min: "4.13.35",
      max: "4.13.36",
      acceptRisks: true,
    });
    expect(edgeList(r)).toEqual([["4.13.35", "4.13.36", ["CephCapDropPanic"]]]);
  });

  it("prefers an unconditional path even when --accept-risks is given", () => {
    const r = selectReleases(g413, {
      shortestPath: true,
      min: "4.12.0",
      max: "4.13.43",
      acceptRisks: true,
    });
    expect(versions(r)).toEqual(["4.12.0", "4.12.58", "4.13.43"]);
    expect(r.warnings).toEqual([]);
  });

  it("when no path exists at all, says so", () => {
    // jq: no edge in stable-4.9 ends at 4.9.0, and there are no conditional edges.
    const err = thrown(() =>
      selectReleases(g49, { shortestPath: true, min: "4.8.2", max: "4.9.0", acceptRisks: true }),
    );
    expect(err.code).toBe("USAGE");
    expect(err.message).toContain("no update path from 4.8.2 to 4.9.0");
    expect(err.message).toContain("not even through conditional updates");
  });
});

describe("selectReleases: bad selections", () => {
  it("rejects a min that is not in the channel, naming the nearest releases", () => {
    // sort -V: 4.9.13 then 4.9.15 (no 4.9.14).
    const err = thrown(() => selectReleases(g49, { min: "4.9.14" }));
    expect(err.code).toBe("USAGE");
    expect(err.message).toContain("min version 4.9.14 is not a release of stable-4.9-amd64.json");
    expect(err.message).toContain("the nearest are 4.9.13 and 4.9.15");
    expect(err.message).toContain("90 releases, 4.8.2 to 4.9.53");
    expect(err.details.nearby).toEqual(["4.9.13", "4.9.15"]);
  });

  it("rejects a max beyond the head, naming the head", () => {
    const err = thrown(() => selectReleases(g49, { max: "4.9.54" }));
    expect(err.message).toContain("max version 4.9.54");
    expect(err.details.nearby).toEqual(["4.9.53"]);
  });

  it("rejects min newer than max", () => {
    const err = thrown(() => selectReleases(g413, { min: "4.13.10", max: "4.13.9" }));
    expect(err.code).toBe("USAGE");
    expect(err.message).toContain("4.13.10 is newer than max version 4.13.9");
  });

  it("rejects a malformed version with INVALID_VERSION", () => {
    expect(thrown(() => selectReleases(g413, { min: "4.13" })).code).toBe("INVALID_VERSION");
  });

  it("rejects --full together with --min, --max or --shortest-path", () => {
    expect(thrown(() => selectReleases(g413, { full: true, min: "4.13.0" })).code).toBe("USAGE");
    expect(thrown(() => selectReleases(g413, { full: true, shortestPath: true })).code).toBe(
      "USAGE",
    );
  });

  it("rejects an empty graph as GRAPH_UNAVAILABLE", () => {
    const empty: UpdateGraph = { source: "x", nodes: [], edges: [], conditionalEdges: [] };
    expect(thrown(() => selectReleases(empty, {})).code).toBe("GRAPH_UNAVAILABLE");
  });
});

describe("mergeSelections", () => {
  it("merges arches into one release set, sorted by version then arch", () => {
    const plan = mergeSelections([
      { channel: "stable-4.9", arch: "s390x", result: selectReleases(g49z, { min: "4.9.52" }) },
      { channel: "stable-4.9", arch: "x86_64", result: selectReleases(g49, { min: "4.9.52" }) },
    ]);
    // Digests: jq for 4.9.52/4.9.53 in each file.
    expect(plan).toEqual([
      {
        version: "4.9.52",
        arch: "x86_64",
        digest: "sha256:94fd3f56f5f99f282b997972865de2c38c01c005bf35d23e5078e987ef432d99",
        channels: ["stable-4.9"],
        payload:
          "quay.io/openshift-release-dev/ocp-release@sha256:94fd3f56f5f99f282b997972865de2c38c01c005bf35d23e5078e987ef432d99",
      },
      {
        version: "4.9.52",
        arch: "s390x",
        digest: "sha256:d59977e93e867c6cfa933ab72710a14594b102d05032a443b0dd2525aaaabab7",
        channels: ["stable-4.9"],
        payload:
          "quay.io/openshift-release-dev/ocp-release@sha256:d59977e93e867c6cfa933ab72710a14594b102d05032a443b0dd2525aaaabab7",
      },
      expect.objectContaining({ version: "4.9.53", arch: "x86_64" }),
      expect.objectContaining({ version: "4.9.53", arch: "s390x" }),
    ]);
  });

  it("de-duplicates a release two channels both list, recording both channels", () => {
    // 4.9.53's channels metadata: candidate-4.10,fast-4.10,candidate-4.9,fast-4.9,stable-4.9;
    // a fast-4.9 answer carries the same node, so the same graph stands in for it.
    const plan = mergeSelections([
      { channel: "stable-4.9", arch: "x86_64", result: selectReleases(g49, { min: "4.9.52" }) },
      { channel: "fast-4.9", arch: "x86_64", result: selectReleases(g49, {}) },
    ]);
    expect(plan.map((p) => [p.version, p.channels])).toEqual([
      ["4.9.52", ["stable-4.9"]],
      ["4.9.53", ["stable-4.9", "fast-4.9"]],
    ]);
  });

  it("rejects two channels naming different digests for one release (GRAPH_CONFLICT)", () => {
    // Security: a substituted digest in one channel's answer must not slip through.
    const head = selectReleases(g49, {});
    const forged: SelectionResult = {
      ...head,
      nodes: [{ ...head.nodes[0]!, digest: `sha256:${"e".repeat(64)}` }],
    };
    const err = thrown(() =>
      mergeSelections([
        { channel: "stable-4.9", arch: "x86_64", result: head },
        { channel: "fast-4.9", arch: "x86_64", result: forged },
      ]),
    );
    expect(err.code).toBe("GRAPH_CONFLICT");
    expect(err.message).toContain("4.9.53 (x86_64)");
    expect(err.message).toContain(
      "sha256:50bed2a31fd04336df604c5af7c64584c067f80e7b94aa86656302dc7fb391a4",
    );
    expect(err.message).toContain(`sha256:${"e".repeat(64)}`);
  });

  it("keeps the multi graph's manifest-list digests as multi releases", () => {
    // Multi payloads name the manifest list (index): rc.4's is f7f292eb…, equal to its manifestref.
    const plan = mergeSelections([
      { channel: "candidate-4.12", arch: "multi", result: selectReleases(gMulti, {}) },
    ]);
    expect(plan).toEqual([
      {
        version: "4.12.0-rc.4",
        arch: "multi",
        digest: "sha256:f7f292ebe21e88c518fc51db62f915657efa8e71d483c431580a4d0e63b8c3c1",
        channels: ["candidate-4.12"],
        payload:
          "quay.io/openshift-release-dev/ocp-release@sha256:f7f292ebe21e88c518fc51db62f915657efa8e71d483c431580a4d0e63b8c3c1",
      },
    ]);
  });

  it("rejects a multi-marked release planned as a single arch", () => {
    const err = thrown(() =>
      mergeSelections([
        { channel: "candidate-4.12", arch: "x86_64", result: selectReleases(gMulti, {}) },
      ]),
    );
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.message).toContain('marked as a "multi" release');
  });
});

describe("assertRegistryAgrees", () => {
  const [release] = mergeSelections([
    { channel: "stable-4.13", arch: "x86_64", result: selectReleases(g413, {}) },
  ]);

  it("accepts the digest the graph named", () => {
    expect(() =>
      assertRegistryAgrees(release!, release!.digest, "quay.io/x:4.13.43-x86_64"),
    ).not.toThrow();
  });

  it("rejects another digest with GRAPH_REGISTRY_MISMATCH", () => {
    const err = thrown(() =>
      assertRegistryAgrees(release!, `sha256:${"0".repeat(64)}`, "quay.io/x:4.13.43-x86_64"),
    );
    expect(err.code).toBe("GRAPH_REGISTRY_MISMATCH");
    expect(err.message).toContain("quay.io/x:4.13.43-x86_64 resolves to sha256:000");
  });
});

describe("selectionRecord", () => {
  it("records every key, with nulls and empty lists for what was not given", () => {
    expect(
      selectionRecord({ channels: ["stable-4.13"], arches: ["x86_64"], min: "4.13.31" }),
    ).toEqual({
      channels: ["stable-4.13"],
      arches: ["x86_64"],
      min: "4.13.31",
      max: null,
      shortestPath: false,
      full: false,
      acceptRisks: false,
      graphUrl: null,
      releases: [],
      digests: [],
    });
  });

  it("is plain JSON that survives a round trip and does not alias the input", () => {
    const channels = ["stable-4.9", "fast-4.9"];
    const rec = selectionRecord({
      channels,
      arches: ["x86_64", "s390x"],
      shortestPath: true,
      acceptRisks: true,
      graphUrl: "https://api.openshift.com/api/upgrades_info/v1/graph",
      releases: ["4.15.0"],
      digests: [`sha256:${"1".repeat(64)}`],
    });
    channels.push("eus-4.10");
    expect(rec.channels).toEqual(["stable-4.9", "fast-4.9"]);
    expect(JSON.parse(JSON.stringify(rec))).toEqual(rec);
  });
});
