/**
 * ModelProto utilities shared by the compression passes (quantize/weight.ts, quantize/int4.ts,
 * quantize/dynamic.ts, prune.ts): name bookkeeping, constant frames, walking nested graphs, opset
 * lookup, read counts and the registered weight candidates. They lived as copies in each pass; one
 * module keeps the resolution rules (innermost graph first, shadowing, Constant handling) identical.
 */
import type { GraphProto, ModelProto, NodeProto, TensorProto } from 'onnx-buf';
import { isDefaultDomain, weightSlot } from './quantize/registry.js';

/** The constants one graph defines, for resolving weight names from it and its subgraphs. */
export interface ConstFrame {
  graph: GraphProto;
  /** Graph path ("graph", "graph/If_0:then_branch", …) used in reports. */
  scope: string;
  inits: Map<string, TensorProto>;
  consts: Map<string, NodeProto>;
  /** Names produced in this graph by something else (shadowing outer constants). */
  other: Set<string>;
}

/** Where a constant value is defined: an initializer, or the `value` of a Constant node. */
export interface ConstRef {
  frame: ConstFrame;
  kind: 'initializer' | 'constant';
  proto: TensorProto;
  constNode?: NodeProto;
}

/** The tensor of a default-domain Constant node holding `value`, else undefined. */
export function constantTensor(node: NodeProto): TensorProto | undefined {
  if (node.opType !== 'Constant' || !isDefaultDomain(node.domain)) return undefined;
  return node.attribute.find((a) => a.name === 'value')?.t;
}

/** The graphs held by a node's attributes (If branches, Loop/Scan bodies), in attribute order. */
export function subgraphs(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute) {
    if (a.g) out.push(a.g);
    out.push(...a.graphs);
  }
  return out;
}

/** The constant frame of one graph (its initializers, Constant nodes and other definitions). */
export function frameOf(g: GraphProto, scope: string): ConstFrame {
  const frame: ConstFrame = { graph: g, scope, inits: new Map(), consts: new Map(), other: new Set() };
  for (const t of g.initializer) frame.inits.set(t.name, t);
  for (const i of g.input) if (!frame.inits.has(i.name)) frame.other.add(i.name);
  for (const n of g.node) {
    const t = constantTensor(n);
    for (const o of n.output) {
      if (!o) continue;
      if (t && o === n.output[0]) frame.consts.set(o, n);
      else frame.other.add(o);
    }
  }
  return frame;
}

/** Resolve a value name to the initializer / Constant defining it, innermost graph first. */
export function resolveConst(name: string, frames: ConstFrame[]): ConstRef | undefined {
  for (const f of frames) {
    const init = f.inits.get(name);
    if (init) return { frame: f, kind: 'initializer', proto: init };
    const cnode = f.consts.get(name);
    if (cnode) return { frame: f, kind: 'constant', proto: constantTensor(cnode)!, constNode: cnode };
    if (f.other.has(name)) return undefined;
  }
  return undefined;
}

/**
 * Visit every node of every graph (main and nested, each node before its subgraphs) with its
 * enclosing frames (innermost first) and a label (node name, or op#index).
 */
export function walkNodes(proto: ModelProto, visit: (node: NodeProto, label: string, frames: ConstFrame[]) => void): void {
  const walk = (g: GraphProto, scope: string, outer: ConstFrame[]): void => {
    const frames = [frameOf(g, scope), ...outer];
    g.node.forEach((n, i) => {
      const label = n.name || `${n.opType || 'node'}#${i}`;
      visit(n, label, frames);
      for (const a of n.attribute) {
        const subs = a.g ? [a.g, ...a.graphs] : a.graphs;
        subs.forEach((sg, k) => walk(sg, `${scope}/${label}:${a.name}${subs.length > 1 ? `[${k}]` : ''}`, frames));
      }
    });
  };
  if (proto.graph) walk(proto.graph, 'graph', []);
}

/** Every name used anywhere in the model (values, initializers, nodes), to keep new names unique. */
export function usedNames(proto: ModelProto): Set<string> {
  const names = new Set<string>();
  const walk = (g: GraphProto): void => {
    for (const t of g.initializer) names.add(t.name);
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) names.add(v.name);
    for (const n of g.node) {
      names.add(n.name);
      for (const x of [...n.input, ...n.output]) names.add(x);
      subgraphs(n).forEach(walk);
    }
  };
  if (proto.graph) walk(proto.graph);
  return names;
}

/** A namer returning `base`, or `base_1`, `base_2`, … — never a name already in the model or handed out. */
export function uniqueNamer(proto: ModelProto): (base: string) => string {
  const names = usedNames(proto);
  return (base: string): string => {
    let n = base;
    for (let k = 1; names.has(n); k++) n = `${base}_${k}`;
    names.add(n);
    return n;
  };
}

/** How many times each value name is read (node inputs in every graph, graph outputs). */
export function readCounts(proto: ModelProto): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (n: string): void => {
    if (n) counts.set(n, (counts.get(n) ?? 0) + 1);
  };
  const walk = (g: GraphProto): void => {
    for (const o of g.output) add(o.name);
    for (const n of g.node) {
      n.input.forEach(add);
      subgraphs(n).forEach(walk);
    }
  };
  if (proto.graph) walk(proto.graph);
  return counts;
}

/** The imported ai.onnx opset version, or undefined when the model imports none. */
export function defaultOpset(proto: ModelProto): number | undefined {
  const o = proto.opsetImport.find((x) => isDefaultDomain(x.domain));
  return o ? Number(o.version) : undefined;
}

/** One registered consumer of a weight (quantize/registry.ts) and the channel axis it implies. */
export interface WeightUse {
  node: NodeProto;
  axis: (rank: number) => number;
}

/** A constant weight read at the weight input of registered ops; one per tensor, however many readers. */
export interface WeightCandidate extends ConstRef {
  name: string;
  uses: WeightUse[];
}

/**
 * Walk every graph (main and nested), resolving each registered weight input to its definition.
 * Candidates come in order of their first use; weights shadowed by a non-constant are left out.
 */
export function findWeightCandidates(proto: ModelProto): WeightCandidate[] {
  const byProto = new Map<TensorProto, WeightCandidate>();
  walkNodes(proto, (n, _label, frames) => {
    const slot = weightSlot(n);
    const wname = slot ? n.input[slot.input] : undefined;
    if (!slot || !wname) return;
    const ref = resolveConst(wname, frames);
    if (!ref) return;
    let c = byProto.get(ref.proto);
    if (!c) {
      c = { name: wname, ...ref, uses: [] };
      byProto.set(ref.proto, c);
    }
    c.uses.push({ node: n, axis: slot.axis });
  });
  return [...byProto.values()];
}
