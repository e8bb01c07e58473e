/** The real update graphs in ../shared/real/cincinnati-graphs, read in place and parsed. */
import { readFileSync } from "node:fs";
import { parseGraph, type UpdateGraph } from "../../src/core/graph.js";
import { real } from "./paths.js";

/** The file names of the real graphs. */
export const GRAPH_FILES = {
  stable49amd64: "stable-4.9-amd64.json",
  stable49s390x: "stable-4.9-s390x.json",
  stable413amd64: "stable-4.13-amd64.json",
  candidate412multi: "candidate-4.12-multi.json",
} as const;

/** The raw JSON of a real graph. */
export function rawGraph(file: string): unknown {
  return JSON.parse(readFileSync(real("cincinnati-graphs", file), "utf8"));
}

/** A real graph, parsed; its source is the file name. */
export function loadGraph(file: string): UpdateGraph {
  return parseGraph(rawGraph(file), file);
}
