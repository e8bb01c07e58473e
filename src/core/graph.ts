/**
 * The Cincinnati update graph (the OpenShift Update Service answer to
 * `GET <graph>?channel=…&arch=…`), validated strictly. Pure: no I/O.
 *
 * Shape (openshift/cincinnati docs/design/cincinnati.md; cluster-version-operator
 * pkg/cincinnati): `nodes[{version, payload, metadata}]`, `edges: [[from, to]]`
 * as node indices, `conditionalEdges[{edges: [{from, to}], risks: [...]}]` with
 * from/to as versions.
 */
import { SigferryError } from "../errors.js";
import { isDigest, type Digest } from "./digest.js";
import { parseRepository } from "./reference.js";
import { compareSemver, parseSemver, type Semver } from "./version.js";

/** Node metadata keys the graph service sets. */
export const GRAPH_METADATA = {
  /** Comma-separated channels the release is in. */
  channels: "io.openshift.upgrades.graph.release.channels",
  /** The release manifest digest (equals the payload digest). */
  manifestRef: "io.openshift.upgrades.graph.release.manifestref",
  /** "multi" on nodes of the multi graph (payload is a manifest list). */
  architecture: "release.openshift.io/architecture",
  /** Errata URL. */
  url: "url",
} as const;

/** One release in the graph. */
export interface GraphNode {
  version: string;
  /** `repository@sha256:<hex>` as the graph gives it. */
  payload: string;
  /** The digest part of `payload`, validated. */
  digest: Digest;
  /** The repository part of `payload`, validated as host/path. */
  repository: string;
  metadata: Record<string, string>;
}

/** A known risk on a conditional update edge, as published by Red Hat. */
export interface Risk {
  name: string;
  url: string;
  message: string;
  /** The rules the cluster uses to decide whether the risk applies (kept as published). */
  matchingRules: unknown[];
}

/** A set of updates that are only recommended when the listed risks do not apply. */
export interface ConditionalEdge {
  edges: { from: string; to: string }[];
  risks: Risk[];
}

/** A validated update graph. */
export interface UpdateGraph {
  /** Where it came from (the request URL, or a file), for messages. */
  source: string;
  nodes: GraphNode[];
  /** Unconditional updates as [fromIndex, toIndex] into `nodes`. */
  edges: [number, number][];
  conditionalEdges: ConditionalEdge[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Splits `repository@sha256:<hex>` into its validated parts, or throws GRAPH_UNAVAILABLE naming `where`. */
export function splitPayload(
  payload: string,
  where = "payload",
): { repository: string; digest: Digest } {
  const at = payload.lastIndexOf("@");
  const repository = at > 0 ? payload.slice(0, at) : "";
  const digest = at > 0 ? payload.slice(at + 1) : "";
  if (!isDigest(digest)) {
    throw new SigferryError(
      "GRAPH_UNAVAILABLE",
      `${where}: "${payload}" is not a pullspec by digest (repository@sha256:<64 hex>)`,
    );
  }
  try {
    parseRepository(repository);
  } catch (cause) {
    throw new SigferryError(
      "GRAPH_UNAVAILABLE",
      `${where}: "${payload}" does not name a valid repository`,
      { cause },
    );
  }
  return { repository, digest };
}

/** Validates a graph service answer (already JSON-decoded) and returns it typed, or throws GRAPH_UNAVAILABLE naming `source` and the bad field. */
export function parseGraph(json: unknown, source: string): UpdateGraph {
  const fail = (path: string, why: string, cause?: unknown): never => {
    throw new SigferryError(
      "GRAPH_UNAVAILABLE",
      `${source} is not a valid update graph: ${path}: ${why}`,
      { cause, details: { url: source, field: path } },
    );
  };
  if (!isRecord(json)) return fail("(top level)", "expected a JSON object");
  const rawNodes = json.nodes;
  const rawEdges = json.edges;
  const rawConditional = json.conditionalEdges ?? [];
  if (!Array.isArray(rawNodes)) return fail("nodes", "expected an array");
  if (!Array.isArray(rawEdges)) return fail("edges", "expected an array");
  if (!Array.isArray(rawConditional)) return fail("conditionalEdges", "expected an array");

  const nodes: GraphNode[] = [];
  const byVersion = new Map<string, number>();
  rawNodes.forEach((raw: unknown, i) => {
    const at = `nodes[${i}]`;
    if (!isRecord(raw)) return fail(at, "expected an object");
    const { version, payload, metadata = {} } = raw;
    if (typeof version !== "string") return fail(`${at}.version`, "expected a string");
    try {
      parseSemver(version);
    } catch (cause) {
      return fail(`${at}.version`, `"${version}" is not a semantic version`, cause);
    }
    if (byVersion.has(version)) return fail(`${at}.version`, `${version} appears twice`);
    if (typeof payload !== "string") return fail(`${at}.payload`, "expected a string");
    let parts: { repository: string; digest: Digest };
    try {
      parts = splitPayload(payload, `${at}.payload`);
    } catch (cause) {
      return fail(`${at}.payload`, (cause as Error).message, cause);
    }
    if (!isRecord(metadata)) return fail(`${at}.metadata`, "expected an object");
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") return fail(`${at}.metadata["${k}"]`, "expected a string");
      meta[k] = v;
    }
    // The graph names the digest twice; if the two disagree, neither can be trusted.
    const ref = meta[GRAPH_METADATA.manifestRef];
    if (ref !== undefined && ref !== parts.digest) {
      return fail(
        `${at}.metadata["${GRAPH_METADATA.manifestRef}"]`,
        `${ref} differs from the payload digest ${parts.digest} of ${version}`,
      );
    }
    byVersion.set(version, i);
    nodes.push({
      version,
      payload,
      digest: parts.digest,
      repository: parts.repository,
      metadata: meta,
    });
  });

  const edges: [number, number][] = [];
  rawEdges.forEach((raw: unknown, i) => {
    const at = `edges[${i}]`;
    if (!Array.isArray(raw) || raw.length !== 2) return fail(at, "expected [fromIndex, toIndex]");
    const [from, to] = raw as unknown[];
    for (const end of [from, to]) {
      if (typeof end !== "number" || !Number.isInteger(end) || end < 0 || end >= nodes.length) {
        return fail(
          at,
          `${JSON.stringify(end)} is not an index into nodes (0..${nodes.length - 1})`,
        );
      }
    }
    edges.push([from as number, to as number]);
  });

  const conditionalEdges: ConditionalEdge[] = [];
  rawConditional.forEach((raw: unknown, i) => {
    const at = `conditionalEdges[${i}]`;
    if (!isRecord(raw)) return fail(at, "expected an object");
    if (!Array.isArray(raw.edges)) return fail(`${at}.edges`, "expected an array");
    if (!Array.isArray(raw.risks)) return fail(`${at}.risks`, "expected an array");
    const ces: { from: string; to: string }[] = [];
    raw.edges.forEach((e: unknown, j) => {
      const eat = `${at}.edges[${j}]`;
      if (!isRecord(e)) return fail(eat, "expected {from, to}");
      for (const key of ["from", "to"] as const) {
        const v = e[key];
        if (typeof v !== "string") return fail(`${eat}.${key}`, "expected a version string");
        // The CVO rejects a conditional update whose target is not a node; so do we, for both ends.
        if (!byVersion.has(v)) return fail(`${eat}.${key}`, `${v} is not a node of the graph`);
      }
      ces.push({ from: e.from as string, to: e.to as string });
    });
    const risks: Risk[] = [];
    if (raw.risks.length === 0)
      return fail(`${at}.risks`, "a conditional edge must name its risks");
    raw.risks.forEach((r: unknown, j) => {
      const rat = `${at}.risks[${j}]`;
      if (!isRecord(r)) return fail(rat, "expected an object");
      for (const key of ["name", "url", "message"] as const) {
        if (typeof r[key] !== "string" || r[key] === "")
          return fail(`${rat}.${key}`, "expected a non-empty string");
      }
      const rules = r.matchingRules ?? [];
      if (!Array.isArray(rules)) return fail(`${rat}.matchingRules`, "expected an array");
      risks.push({
        name: r.name as string,
        url: r.url as string,
        message: r.message as string,
        matchingRules: rules as unknown[],
      });
    });
    conditionalEdges.push({ edges: ces, risks });
  });

  return { source, nodes, edges, conditionalEdges };
}

/** The nodes of a graph sorted ascending by version precedence. */
export function sortedNodes(graph: UpdateGraph): GraphNode[] {
  return graph.nodes
    .map((node): [GraphNode, Semver] => [node, parseSemver(node.version)])
    .sort((a, b) => compareSemver(a[1], b[1]))
    .map(([node]) => node);
}
