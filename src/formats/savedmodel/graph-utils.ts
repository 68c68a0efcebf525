/** Small GraphDef helpers shared by the SavedModel reader and its summary. */
import type { GraphDef, NodeDef } from './gen/tensorflow/graph_pb.js';

/** `"^node"`, `"node"`, `"node:2"` → node name and output index (-1 for control inputs). */
export function parseInput(input: string): { node: string; index: number } {
  if (input.startsWith('^')) return { node: input.slice(1), index: -1 };
  const m = /^(.*):(\d+)$/.exec(input);
  return m ? { node: m[1]!, index: Number(m[2]) } : { node: input, index: 0 };
}

export function nodesByName(graph: GraphDef | undefined): Map<string, NodeDef> {
  const m = new Map<string, NodeDef>();
  for (const n of graph?.node ?? []) m.set(n.name, n);
  return m;
}

/** Count of each op type among `nodes`. */
export function opHistogram(nodes: readonly NodeDef[], into: Record<string, number> = {}): Record<string, number> {
  for (const n of nodes) into[n.op] = (into[n.op] ?? 0) + 1;
  return into;
}
