/**
 * The lookup tables channel pruning needs over the main graph: who produces a value, who reads it
 * (by input slot), which values leave the graph or are read from inside a subgraph, and how many
 * times each value is read. Only the main graph is indexed: a value a subgraph reads from the outer
 * scope is opaque to the dependency analysis, so it is listed to stop it there.
 */
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from 'onnx-buf';
import { defaultOpset, subgraphs } from '../graph.js';

export interface Consumer {
  node: NodeProto;
  /** Position of the node in graph.node. */
  index: number;
  /** Which of the node's inputs reads the value. */
  input: number;
}

export interface GraphIndex {
  /** Model path, for messages. */
  path: string;
  graph: GraphProto;
  /** Imported ai.onnx opset (Unsqueeze axes moved from attribute to input at 13). */
  opset: number;
  producer: Map<string, { node: NodeProto; index: number; output: number }>;
  consumers: Map<string, Consumer[]>;
  graphOutputs: Set<string>;
  /** Names read by any node of any nested graph (If/Loop/Scan bodies). */
  subgraphReads: Set<string>;
  inits: Map<string, TensorProto>;
  /** Node input slots + graph outputs + nested reads, per value name. */
  reads: Map<string, number>;
  /** Declared types: graph inputs, outputs and value_info. */
  declared: Map<string, ValueInfoProto>;
  label(index: number): string;
}

export function buildIndex(proto: ModelProto, graph: GraphProto, path: string): GraphIndex {
  const producer: GraphIndex['producer'] = new Map();
  const consumers: GraphIndex['consumers'] = new Map();
  const reads = new Map<string, number>();
  const bump = (n: string): void => { if (n) reads.set(n, (reads.get(n) ?? 0) + 1); };
  const graphOutputs = new Set<string>();
  for (const o of graph.output) { graphOutputs.add(o.name); bump(o.name); }
  const subgraphReads = new Set<string>();
  // Iterative walk: nested graphs can be deep in a hostile file, the JS stack is not.
  const nested: GraphProto[] = [];
  graph.node.forEach((node, index) => {
    node.output.forEach((o, output) => { if (o && !producer.has(o)) producer.set(o, { node, index, output }); });
    node.input.forEach((name, input) => {
      if (!name) return;
      bump(name);
      let list = consumers.get(name);
      if (!list) consumers.set(name, (list = []));
      list.push({ node, index, input });
    });
    nested.push(...subgraphs(node));
  });
  while (nested.length > 0) {
    const g = nested.pop()!;
    for (const o of g.output) { subgraphReads.add(o.name); bump(o.name); }
    for (const n of g.node) {
      for (const i of n.input) if (i) { subgraphReads.add(i); bump(i); }
      nested.push(...subgraphs(n));
    }
  }
  const inits = new Map<string, TensorProto>();
  for (const t of graph.initializer) if (!producer.has(t.name)) inits.set(t.name, t);
  const declared = new Map<string, ValueInfoProto>();
  for (const v of [...graph.valueInfo, ...graph.output, ...graph.input]) declared.set(v.name, v);
  return {
    path, graph, opset: defaultOpset(proto) ?? 1, producer, consumers, graphOutputs, subgraphReads, inits, reads, declared,
    label: (index) => {
      const n = graph.node[index]!;
      return n.name || `${n.opType || 'node'}#${index}`;
    },
  };
}

/** The declared dims of a value (numbers for dim_value, undefined for symbolic/unknown), or undefined without a tensor shape. */
export function declaredDims(idx: GraphIndex, name: string): (number | undefined)[] | undefined {
  const t = idx.declared.get(name)?.type?.value;
  if (t?.case !== 'tensorType' || !t.value.shape) return undefined;
  return t.value.shape.dim.map((d) => (d.value.case === 'dimValue' && d.value.value > 0n && d.value.value <= 0x7fffffffn ? Number(d.value.value) : undefined));
}

export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  if (!a) return fallback;
  const v = Number(a.i);
  return Number.isSafeInteger(v) ? v : fallback;
}

export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a ? a.ints.map((v) => Number(v)) : undefined;
}
