/**
 * Release selection from an update graph, and the merge of several channels and
 * arches into one release set. Pure: no I/O. The semantics are written up in
 * docs/selection.md.
 *
 * Follows oc-mirror v2 (v2/internal/pkg/release/cincinnati.go): no bounds → the
 * channel head; only a minimum → minimum up to the head; only a maximum → the
 * channel's lowest release up to the maximum; both inclusive; shortest path is a
 * breadth-first search over unconditional edges, visiting newer targets first.
 * Conditional edges follow the Cluster Version Operator (pkg/cincinnati): an
 * update listed both as unconditional and conditional is conditional.
 */
import { SigferryError } from "../errors.js";
import type { Digest } from "./digest.js";
import {
  GRAPH_METADATA,
  sortedNodes,
  type GraphNode,
  type Risk,
  type UpdateGraph,
} from "./graph.js";
import { RELEASE_ARCHES, type ReleaseArch } from "./reference.js";
import { compareSemver, compareVersions, parseSemver, type Semver } from "./version.js";

/** What to select from one channel's graph. */
export interface SelectionOptions {
  /** Lowest version, inclusive; must be a release of the channel. */
  min?: string;
  /** Highest version, inclusive; must be a release of the channel. */
  max?: string;
  /** Every release of the channel. Excludes min, max and shortestPath. */
  full?: boolean;
  /** Only the releases on a shortest update path from min to max. */
  shortestPath?: boolean;
  /** Let the shortest path follow conditional edges (updates with known risks). */
  acceptRisks?: boolean;
}

/** One update between two selected releases. */
export interface PlanEdge {
  from: string;
  to: string;
  /** Present when the update is conditional: the known risks Red Hat published for it. */
  risks?: Risk[];
}

/** The outcome of selecting from one channel's graph. */
export interface SelectionResult {
  /** Selected releases, ascending by version. */
  nodes: GraphNode[];
  /** For a shortest path: its updates, in order. Otherwise every update between two selected releases. */
  edges: PlanEdge[];
  /** Things the user should read (risks, ignored options); the caller prints them. */
  warnings: string[];
}

/** One release to carry: a version on one arch, from one or more channels. */
export interface PlannedRelease {
  version: string;
  arch: ReleaseArch;
  /** The payload digest the graph names; the caller checks it against the registry. */
  digest: Digest;
  /** The channels it was selected from, in the order given. */
  channels: string[];
  /** `repository@digest` as the graph gives it. */
  payload: string;
}

interface Indexed {
  sorted: GraphNode[];
  semver: Map<string, Semver>;
  index: Map<string, number>;
  /** Unconditional successors, by node index into `graph.nodes`. */
  plain: Set<number>[];
  /** Conditional successors, by node index, with the union of their risks. */
  risky: Map<number, Risk[]>[];
}

function indexGraph(graph: UpdateGraph): Indexed {
  const sorted = sortedNodes(graph);
  const semver = new Map(graph.nodes.map((n) => [n.version, parseSemver(n.version)]));
  const index = new Map(graph.nodes.map((n, i) => [n.version, i]));
  const plain = graph.nodes.map(() => new Set<number>());
  const risky = graph.nodes.map(() => new Map<number, Risk[]>());
  for (const ce of graph.conditionalEdges) {
    for (const { from, to } of ce.edges) {
      const a = index.get(from);
      const b = index.get(to);
      if (a === undefined || b === undefined) continue; // parseGraph guarantees both exist
      const known = risky[a]?.get(b) ?? [];
      const names = new Set(known.map((r) => r.name));
      risky[a]?.set(b, [...known, ...ce.risks.filter((r) => !names.has(r.name))]);
    }
  }
  for (const [a, b] of graph.edges) {
    // The CVO prefers the conditional listing when an update appears in both.
    if (!risky[a]?.has(b)) plain[a]?.add(b);
  }
  return { sorted, semver, index, plain, risky };
}

function usage(message: string, details: Record<string, unknown> = {}): SigferryError {
  return new SigferryError("USAGE", message, { details });
}

function describeRisks(risks: Risk[]): string {
  return risks.map((r) => `${r.name} (${r.url})`).join(", ");
}

function uniqueRisks(edges: PlanEdge[]): Risk[] {
  const seen = new Map<string, Risk>();
  for (const e of edges) for (const r of e.risks ?? []) if (!seen.has(r.name)) seen.set(r.name, r);
  return [...seen.values()];
}

/** Finds the node for a version the user gave, or throws naming the nearest releases of the channel. */
function findNode(graph: UpdateGraph, ix: Indexed, version: string, what: string): GraphNode {
  const wanted = parseSemver(version);
  const i = ix.index.get(version);
  const node = i === undefined ? undefined : graph.nodes[i];
  if (node) return node;
  const below = ix.sorted.filter(
    (n) => compareSemver(ix.semver.get(n.version) ?? wanted, wanted) < 0,
  );
  const above = ix.sorted.filter(
    (n) => compareSemver(ix.semver.get(n.version) ?? wanted, wanted) > 0,
  );
  const nearby = [below.at(-1)?.version, above[0]?.version].filter((v) => v !== undefined);
  const first = ix.sorted[0]?.version ?? "";
  const last = ix.sorted.at(-1)?.version ?? "";
  throw usage(
    `${what} version ${version} is not a release of ${graph.source}; ` +
      (nearby.length > 0 ? `the nearest are ${nearby.join(" and ")}; ` : "") +
      `the channel has ${ix.sorted.length} releases, ${first} to ${last}`,
    { version, nearby, url: graph.source },
  );
}

/** Breadth-first search over unconditional edges, newest successor first (oc-mirror's order). */
function plainPath(
  graph: UpdateGraph,
  ix: Indexed,
  start: number,
  end: number,
): number[] | undefined {
  const prev = new Map<number, number>([[start, -1]]);
  const queue = [start];
  for (let head = 0; head < queue.length && !prev.has(end); head++) {
    const at = queue[head] ?? start;
    for (const next of newestFirst(graph, ix, ix.plain[at] ?? [])) {
      if (prev.has(next)) continue;
      prev.set(next, at);
      queue.push(next);
    }
  }
  return prev.has(end) ? walkBack(prev, end) : undefined;
}

/**
 * The path with the fewest conditional edges, then the fewest updates (Dijkstra
 * on that pair; ties go to the newer release, like the breadth-first search).
 */
function leastRiskyPath(
  graph: UpdateGraph,
  ix: Indexed,
  start: number,
  end: number,
): number[] | undefined {
  const n = graph.nodes.length;
  const cost = (risky: number, hops: number): number => risky * (n + 1) + hops;
  const dist = new Map<number, [number, number]>([[start, [0, 0]]]);
  const prev = new Map<number, number>([[start, -1]]);
  const done = new Set<number>();
  for (;;) {
    let pick: number | undefined;
    for (const [node, d] of dist) {
      if (done.has(node)) continue;
      const best = pick === undefined ? undefined : dist.get(pick);
      if (
        best === undefined ||
        cost(...d) < cost(...best) ||
        (cost(...d) === cost(...best) && newer(graph, ix, node, pick ?? node))
      ) {
        pick = node;
      }
    }
    if (pick === undefined || pick === end) break;
    done.add(pick);
    const [r, h] = dist.get(pick) ?? [0, 0];
    const steps: [number, number][] = [
      ...newestFirst(graph, ix, ix.plain[pick] ?? []).map((t): [number, number] => [t, 0]),
      ...newestFirst(graph, ix, ix.risky[pick]?.keys() ?? []).map((t): [number, number] => [t, 1]),
    ];
    for (const [t, extra] of steps) {
      const d: [number, number] = [r + extra, h + 1];
      const old = dist.get(t);
      if (done.has(t) || (old !== undefined && cost(...old) <= cost(...d))) continue;
      dist.set(t, d);
      prev.set(t, pick);
    }
  }
  return dist.has(end) ? walkBack(prev, end) : undefined;
}

function newer(graph: UpdateGraph, ix: Indexed, a: number, b: number): boolean {
  const va = ix.semver.get(graph.nodes[a]?.version ?? "");
  const vb = ix.semver.get(graph.nodes[b]?.version ?? "");
  return va !== undefined && vb !== undefined && compareSemver(va, vb) > 0;
}

function newestFirst(graph: UpdateGraph, ix: Indexed, targets: Iterable<number>): number[] {
  return [...targets].sort((a, b) =>
    newer(graph, ix, a, b) ? -1 : newer(graph, ix, b, a) ? 1 : a - b,
  );
}

function walkBack(prev: Map<number, number>, end: number): number[] {
  const path: number[] = [];
  for (let at = end; at !== -1; at = prev.get(at) ?? -1) path.unshift(at);
  return path;
}

function pathEdges(graph: UpdateGraph, ix: Indexed, path: number[]): PlanEdge[] {
  const edges: PlanEdge[] = [];
  for (let i = 1; i < path.length; i++) {
    const a = path[i - 1] ?? 0;
    const b = path[i] ?? 0;
    const risks = ix.risky[a]?.get(b);
    const edge: PlanEdge = {
      from: graph.nodes[a]?.version ?? "",
      to: graph.nodes[b]?.version ?? "",
    };
    if (risks) edge.risks = risks;
    edges.push(edge);
  }
  return edges;
}

/** Every update (unconditional or conditional) whose two ends are both selected, sorted by from, then to. */
function edgesAmong(graph: UpdateGraph, ix: Indexed, selected: GraphNode[]): PlanEdge[] {
  const chosen = new Set(selected.map((n) => ix.index.get(n.version)));
  const edges: PlanEdge[] = [];
  for (const a of chosen) {
    if (a === undefined) continue;
    const from = graph.nodes[a]?.version ?? "";
    for (const b of ix.plain[a] ?? []) {
      if (chosen.has(b)) edges.push({ from, to: graph.nodes[b]?.version ?? "" });
    }
    for (const [b, risks] of ix.risky[a] ?? []) {
      if (chosen.has(b)) edges.push({ from, to: graph.nodes[b]?.version ?? "", risks });
    }
  }
  const v = (version: string) => ix.semver.get(version) as Semver;
  return edges.sort(
    (x, y) => compareSemver(v(x.from), v(y.from)) || compareSemver(v(x.to), v(y.to)),
  );
}

/** Selects releases from one channel's graph: the head, a min/max range, every release, or a shortest update path. */
export function selectReleases(graph: UpdateGraph, sel: SelectionOptions): SelectionResult {
  if (sel.full && (sel.min !== undefined || sel.max !== undefined || sel.shortestPath)) {
    throw usage(
      "--full selects every release of the channel; it cannot be combined with --min, --max or --shortest-path",
    );
  }
  // Validate the versions before looking at the graph, so a typo reads as a typo.
  if (sel.min !== undefined) parseSemver(sel.min);
  if (sel.max !== undefined) parseSemver(sel.max);
  if (graph.nodes.length === 0) {
    throw new SigferryError(
      "GRAPH_UNAVAILABLE",
      `${graph.source} lists no releases; check the channel name and the arch`,
      { details: { url: graph.source } },
    );
  }
  const ix = indexGraph(graph);
  const warnings: string[] = [];
  const head = ix.sorted.at(-1) as GraphNode;
  const lowest = ix.sorted[0] as GraphNode;
  const min = sel.min === undefined ? undefined : findNode(graph, ix, sel.min, "min");
  const max = sel.max === undefined ? undefined : findNode(graph, ix, sel.max, "max");
  if (min && max && compareVersions(min.version, max.version) > 0) {
    throw usage(`min version ${min.version} is newer than max version ${max.version}`, {
      min: min.version,
      max: max.version,
    });
  }

  if (sel.full) {
    const nodes = ix.sorted;
    return withRiskWarning({ nodes, edges: edgesAmong(graph, ix, nodes), warnings });
  }

  if (!min && !max) {
    if (sel.shortestPath) {
      warnings.push("--shortest-path without --min or --max selects the channel head only");
    }
    return { nodes: [head], edges: [], warnings };
  }

  const lo = min ?? lowest;
  const hi = max ?? head;
  if (!sel.shortestPath) {
    const a = ix.semver.get(lo.version) as Semver;
    const b = ix.semver.get(hi.version) as Semver;
    const nodes = ix.sorted.filter((n) => {
      const v = ix.semver.get(n.version) as Semver;
      return compareSemver(v, a) >= 0 && compareSemver(v, b) <= 0;
    });
    return withRiskWarning({ nodes, edges: edgesAmong(graph, ix, nodes), warnings });
  }

  const start = ix.index.get(lo.version) ?? 0;
  const end = ix.index.get(hi.version) ?? 0;
  let path = plainPath(graph, ix, start, end);
  if (!path) {
    const risky = leastRiskyPath(graph, ix, start, end);
    if (!risky) {
      throw usage(
        `there is no update path from ${lo.version} to ${hi.version} in ${graph.source}, ` +
          "not even through conditional updates",
        { from: lo.version, to: hi.version, url: graph.source },
      );
    }
    const edges = pathEdges(graph, ix, risky);
    const risks = uniqueRisks(edges);
    const via = edges
      .filter((e) => e.risks)
      .map((e) => `${e.from} -> ${e.to}`)
      .join(", ");
    if (!sel.acceptRisks) {
      throw usage(
        `there is no unconditional update path from ${lo.version} to ${hi.version} in ${graph.source}; ` +
          `the shortest conditional path goes ${risky.map((i) => graph.nodes[i]?.version).join(" -> ")} ` +
          `and its conditional updates (${via}) carry known risks: ${describeRisks(risks)}. ` +
          "Read them, then pass --accept-risks to follow conditional updates",
        { from: lo.version, to: hi.version, url: graph.source, risks: risks.map((r) => r.name) },
      );
    }
    warnings.push(
      `the update path follows conditional updates (${via}) with known risks: ${describeRisks(risks)}`,
    );
    path = risky;
  }
  const nodes = path
    .map((i) => graph.nodes[i])
    .filter((n): n is GraphNode => n !== undefined)
    .sort((a, b) => compareVersions(a.version, b.version));
  return { nodes, edges: pathEdges(graph, ix, path), warnings };
}

function withRiskWarning(result: SelectionResult): SelectionResult {
  const withRisks = result.edges.filter((e) => e.risks);
  if (withRisks.length > 0) {
    result.warnings.push(
      `${withRisks.length} of the ${result.edges.length} updates between the selected releases ` +
        `are conditional, with known risks: ${uniqueRisks(withRisks)
          .map((r) => r.name)
          .join(", ")}`,
    );
  }
  return result;
}

/** Merges per-channel, per-arch selections into one release set keyed by version and arch; two channels naming different digests for one release is GRAPH_CONFLICT. */
export function mergeSelections(
  perChannelArch: { channel: string; arch: ReleaseArch; result: SelectionResult }[],
): PlannedRelease[] {
  const byKey = new Map<string, PlannedRelease>();
  for (const { channel, arch, result } of perChannelArch) {
    for (const node of result.nodes) {
      // The multi graph marks its nodes; a multi release in a single-arch plan (or the
      // reverse) means the graph was asked for the wrong arch.
      const marked = node.metadata[GRAPH_METADATA.architecture];
      if (marked !== undefined && (marked === "multi") !== (arch === "multi")) {
        throw new SigferryError(
          "GRAPH_UNAVAILABLE",
          `${node.version} in channel ${channel} is marked as a "${marked}" release, but the plan asked for ${arch}`,
          { details: { release: node.version, arch, digest: node.digest } },
        );
      }
      const key = `${node.version} ${arch}`;
      const known = byKey.get(key);
      if (!known) {
        byKey.set(key, {
          version: node.version,
          arch,
          digest: node.digest,
          channels: [channel],
          payload: node.payload,
        });
        continue;
      }
      if (known.digest !== node.digest) {
        throw new SigferryError(
          "GRAPH_CONFLICT",
          `channels disagree about ${node.version} (${arch}): ${known.channels.join(", ")} ` +
            `name ${known.digest}, ${channel} names ${node.digest}`,
          {
            details: {
              release: node.version,
              arch,
              digests: [known.digest, node.digest],
              channels: [...known.channels, channel],
            },
          },
        );
      }
      if (!known.channels.includes(channel)) known.channels.push(channel);
    }
  }
  return [...byKey.values()].sort(
    (a, b) =>
      compareVersions(a.version, b.version) ||
      RELEASE_ARCHES.indexOf(a.arch) - RELEASE_ARCHES.indexOf(b.arch),
  );
}

/** Throws GRAPH_REGISTRY_MISMATCH unless the digest the registry gave for a release's tag is the one the graph named. */
export function assertRegistryAgrees(
  release: PlannedRelease,
  registryDigest: Digest,
  tagRef: string,
): void {
  if (registryDigest === release.digest) return;
  throw new SigferryError(
    "GRAPH_REGISTRY_MISMATCH",
    `${tagRef} resolves to ${registryDigest}, but the update graph (${release.channels.join(", ")}) ` +
      `names ${release.digest} for ${release.version} (${release.arch})`,
    {
      details: {
        release: release.version,
        arch: release.arch,
        digest: release.digest,
        registryDigest,
        tag: tagRef,
      },
    },
  );
}

/** What the user asked for, as given (see selectionRecord). */
export interface SelectionInput {
  channels?: readonly string[];
  arches?: readonly ReleaseArch[];
  min?: string;
  max?: string;
  shortestPath?: boolean;
  full?: boolean;
  acceptRisks?: boolean;
  graphUrl?: string;
  /** Versions selected by tag (--release). */
  releases?: readonly string[];
  /** Digests selected directly (--digest). */
  digests?: readonly string[];
}

/** The selection as recorded in the bundle index: every key present, absent values as null or empty. */
export type SelectionRecord = {
  channels: string[];
  arches: ReleaseArch[];
  min: string | null;
  max: string | null;
  shortestPath: boolean;
  full: boolean;
  acceptRisks: boolean;
  graphUrl: string | null;
  releases: string[];
  digests: string[];
};

/** The plain JSON object the bundle index records as the selection that produced it. */
export function selectionRecord(input: SelectionInput): SelectionRecord {
  return {
    channels: [...(input.channels ?? [])],
    arches: [...(input.arches ?? [])],
    min: input.min ?? null,
    max: input.max ?? null,
    shortestPath: input.shortestPath ?? false,
    full: input.full ?? false,
    acceptRisks: input.acceptRisks ?? false,
    graphUrl: input.graphUrl ?? null,
    releases: [...(input.releases ?? [])],
    digests: [...(input.digests ?? [])],
  };
}
