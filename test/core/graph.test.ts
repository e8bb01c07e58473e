import { describe, expect, it } from "vitest";
import { GRAPH_METADATA, parseGraph, sortedNodes, splitPayload } from "../../src/core/graph.js";
import { isSigferryError } from "../../src/errors.js";
import { GRAPH_FILES, loadGraph, rawGraph } from "../helpers/graphs.js";

/** A small valid graph to break one field at a time. */
function tiny(): Record<string, unknown> {
  const d1 = `sha256:${"1".repeat(64)}`;
  const d2 = `sha256:${"2".repeat(64)}`;
  return {
    version: 1,
    nodes: [
      {
        version: "4.15.0",
        payload: `quay.io/openshift-release-dev/ocp-release@${d1}`,
        metadata: { [GRAPH_METADATA.manifestRef]: d1 },
      },
      {
        version: "4.15.1",
        payload: `quay.io/openshift-release-dev/ocp-release@${d2}`,
        metadata: {},
      },
    ],
    edges: [[0, 1]],
    conditionalEdges: [
      {
        edges: [{ from: "4.15.0", to: "4.15.1" }],
        risks: [{ name: "R", url: "https://example.com/R", message: "m", matchingRules: [] }],
      },
    ],
  };
}

function rejects(json: unknown, field: string): void {
  try {
    parseGraph(json, "https://graph.example/graph?channel=c&arch=amd64");
    expect.unreachable("parseGraph accepted it");
  } catch (err) {
    expect(isSigferryError(err, "GRAPH_UNAVAILABLE")).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toContain("https://graph.example/graph?channel=c&arch=amd64");
    expect(msg).toContain(field);
  }
}

describe("parseGraph on the real graphs", () => {
  // Counts from jq: `.nodes|length`, `.edges|length`, `.conditionalEdges|length`.
  it.each([
    [GRAPH_FILES.stable49amd64, 90, 2544, 0],
    [GRAPH_FILES.stable49s390x, 90, 2544, 0],
    [GRAPH_FILES.stable413amd64, 98, 1171, 37],
    [GRAPH_FILES.candidate412multi, 5, 10, 0],
  ])(
    "accepts %s with its nodes, edges and conditional edges",
    (file, nodes, edges, conditional) => {
      const g = loadGraph(file);
      expect(g.nodes).toHaveLength(nodes);
      expect(g.edges).toHaveLength(edges);
      expect(g.conditionalEdges).toHaveLength(conditional);
      expect(g.source).toBe(file);
    },
  );

  it("takes each node's digest from its payload, which matches the manifestref metadata", () => {
    // jq: no node has payload digest != metadata manifestref in any of the four files.
    for (const file of Object.values(GRAPH_FILES)) {
      for (const n of loadGraph(file).nodes) {
        expect(n.payload).toBe(`quay.io/openshift-release-dev/ocp-release@${n.digest}`);
        expect(n.repository).toBe("quay.io/openshift-release-dev/ocp-release");
        expect(n.metadata[GRAPH_METADATA.manifestRef]).toBe(n.digest);
      }
    }
  });

  it("keeps conditional edges with their risks as published", () => {
    // jq '.conditionalEdges[0]': 30 edges into 4.13.36, risks CephCapDropPanic and
    // HighNodeStatusReportFrequency (COS-2781, MCO-1094).
    const ce = loadGraph(GRAPH_FILES.stable413amd64).conditionalEdges[0]!;
    expect(ce.edges).toHaveLength(30);
    expect(new Set(ce.edges.map((e) => e.to))).toEqual(new Set(["4.13.36"]));
    expect(ce.risks.map((r) => [r.name, r.url])).toEqual([
      ["CephCapDropPanic", "https://issues.redhat.com/browse/COS-2781"],
      ["HighNodeStatusReportFrequency", "https://issues.redhat.com/browse/MCO-1094"],
    ]);
    expect(ce.risks[1]!.matchingRules).toEqual([{ type: "Always" }]);
  });

  it("marks every node of the multi graph as a multi (manifest list) release", () => {
    const g = loadGraph(GRAPH_FILES.candidate412multi);
    expect(g.nodes.every((n) => n.metadata[GRAPH_METADATA.architecture] === "multi")).toBe(true);
  });

  it("sorts nodes by version precedence, not file order", () => {
    // The file lists 4.9.25 first; sort -V of the versions starts 4.8.2 and ends 4.9.53.
    const sorted = sortedNodes(loadGraph(GRAPH_FILES.stable49s390x)).map((n) => n.version);
    expect(sorted[0]).toBe("4.8.2");
    expect(sorted.at(-1)).toBe("4.9.53");
    expect(sorted.indexOf("4.8.54")).toBeLessThan(sorted.indexOf("4.9.0"));
    expect(sorted.indexOf("4.9.9")).toBeLessThan(sorted.indexOf("4.9.10"));
  });
});

describe("parseGraph strict validation", () => {
  it("accepts the tiny graph", () => {
    expect(parseGraph(tiny(), "t").nodes).toHaveLength(2);
  });

  it("rejects a non-object answer", () => {
    rejects([], "(top level)");
    rejects("<html>", "(top level)");
  });

  it("rejects missing or mistyped nodes and edges", () => {
    rejects({ ...tiny(), nodes: undefined }, "nodes");
    rejects({ ...tiny(), edges: {} }, "edges");
    rejects({ ...tiny(), conditionalEdges: "x" }, "conditionalEdges");
  });

  it("rejects an edge that points outside the node list", () => {
    rejects({ ...tiny(), edges: [[0, 2]] }, "edges[0]");
    rejects({ ...tiny(), edges: [[0, -1]] }, "edges[0]");
    rejects({ ...tiny(), edges: [[0]] }, "edges[0]");
    rejects({ ...tiny(), edges: [[0, 1.5]] }, "edges[0]");
  });

  it("rejects a node whose version is not semver, or appears twice", () => {
    const g = tiny();
    (g.nodes as { version: string }[])[1]!.version = "4.15";
    rejects(g, "nodes[1].version");
    const h = tiny();
    (h.nodes as { version: string }[])[1]!.version = "4.15.0";
    rejects(h, "appears twice");
  });

  it("rejects a payload that is not pinned by a sha256 digest", () => {
    for (const payload of [
      "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64",
      `quay.io/openshift-release-dev/ocp-release@sha256:${"A".repeat(64)}`,
      `@sha256:${"1".repeat(64)}`,
      `not a repo@sha256:${"1".repeat(64)}`,
    ]) {
      const g = tiny();
      (g.nodes as { payload: string }[])[0]!.payload = payload;
      rejects(g, "nodes[0].payload");
    }
  });

  it("rejects a node whose manifestref metadata names another digest than its payload", () => {
    // Security: the graph names the digest twice; if the two disagree neither is trusted.
    const g = tiny();
    (g.nodes as { metadata: Record<string, string> }[])[0]!.metadata[GRAPH_METADATA.manifestRef] =
      `sha256:${"3".repeat(64)}`;
    rejects(g, GRAPH_METADATA.manifestRef);
  });

  it("rejects non-string metadata values", () => {
    const g = tiny();
    (g.nodes as { metadata: Record<string, unknown> }[])[1]!.metadata = { url: 7 };
    rejects(g, 'nodes[1].metadata["url"]');
  });

  it("rejects a conditional edge naming a version that is not a node", () => {
    const g = tiny();
    (g.conditionalEdges as { edges: { to: string }[] }[])[0]!.edges[0]!.to = "4.15.2";
    rejects(g, "conditionalEdges[0].edges[0].to");
  });

  it("rejects a conditional edge without risks or with an incomplete risk", () => {
    const g = tiny();
    (g.conditionalEdges as { risks: unknown[] }[])[0]!.risks = [];
    rejects(g, "conditionalEdges[0].risks");
    const h = tiny();
    (h.conditionalEdges as { risks: Record<string, unknown>[] }[])[0]!.risks[0]!.name = "";
    rejects(h, "conditionalEdges[0].risks[0].name");
  });

  it("accepts a real graph whose conditionalEdges key is absent (older services)", () => {
    const g = rawGraph(GRAPH_FILES.candidate412multi) as Record<string, unknown>;
    delete g.conditionalEdges;
    expect(parseGraph(g, "old").conditionalEdges).toEqual([]);
  });
});

describe("splitPayload", () => {
  it("splits a real payload into repository and digest", () => {
    expect(
      splitPayload(
        "quay.io/openshift-release-dev/ocp-release@sha256:f7f292ebe21e88c518fc51db62f915657efa8e71d483c431580a4d0e63b8c3c1",
      ),
    ).toEqual({
      repository: "quay.io/openshift-release-dev/ocp-release",
      digest: "sha256:f7f292ebe21e88c518fc51db62f915657efa8e71d483c431580a4d0e63b8c3c1",
    });
  });
});
