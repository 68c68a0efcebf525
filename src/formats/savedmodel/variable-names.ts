/**
 * Maps checkpoint keys to the names users know variables by.
 *  - TF1: the Saver's restore subgraph says it exactly: RestoreV2's `tensor_names` Const lists the
 *    keys, and `Assign`/`AssignVariableOp(var, RestoreV2:i)` says which variable output i feeds. The
 *    convention key == variable op name is only the fallback.
 *  - TF2: keys are object-graph paths (`layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`);
 *    the variable's TF name comes from SavedVariable.name or the checkpoint's TrackableObjectGraph
 *    (`SerializedTensor.full_name`).
 */
import { fromBinary } from '@bufbuild/protobuf';
import type { GraphDef, NodeDef } from './gen/tensorflow/graph_pb.js';
import { VariableDefSchema, type MetaGraphDef } from './gen/tensorflow/meta_graph_pb.js';
import type { SavedObjectGraph } from './gen/tensorflow/saved_object_graph_pb.js';
import type { TrackableObjectGraph } from './gen/tensorflow/saved_object_graph_pb.js';
import { nodesByName, parseInput } from './graph-utils.js';

export interface VariableName {
  name: string;
  /** Where the name came from. */
  source: 'restore-graph' | 'graph-node' | 'saved-variable' | 'checkpoint-object-graph';
  /** TF2 object path of the variable, e.g. `layer_with_weights-0/kernel`. */
  objectPath?: string;
  /** From SavedVariable (TF2) or the `trainable_variables` collection (TF1), where stated. */
  trainable?: boolean;
}

const VARIABLE_OPS = new Set(['VariableV2', 'Variable', 'VarHandleOp', 'VariableV1']);
const utf8 = new TextDecoder('utf-8');

/** TF1: checkpoint key → variable node name, from RestoreV2 and the assigns that consume it. */
export function tf1VariableNames(graph: GraphDef | undefined, keys: Iterable<string>, trainable?: ReadonlySet<string>): Map<string, VariableName> {
  const out = new Map<string, VariableName>();
  const byName = nodesByName(graph);
  // Follow Identity chains (TF2-style restore graphs insert one) back to the producing output.
  const source = (input: string): { node: string; index: number } => {
    let ref = parseInput(input);
    for (let hops = 0; hops < 16; hops++) {
      const n = byName.get(ref.node);
      if (!n || n.op !== 'Identity' || n.input.length === 0) break;
      ref = parseInput(n.input[0]!);
    }
    return ref;
  };
  const restoreKeys = new Map<string, string[]>();
  for (const n of graph?.node ?? []) {
    if (n.op !== 'RestoreV2' && n.op !== 'Restore' && n.op !== 'RestoreSlice') continue;
    const namesNode = n.input[1] !== undefined ? byName.get(source(n.input[1]).node) : undefined;
    const names = constStrings(namesNode);
    if (names) restoreKeys.set(n.name, names);
  }
  for (const n of graph?.node ?? []) {
    if ((n.op !== 'Assign' && n.op !== 'AssignVariableOp') || n.input.length < 2) continue;
    const value = source(n.input[1]!);
    const names = restoreKeys.get(value.node);
    const key = names?.[value.index];
    if (key === undefined || out.has(key)) continue;
    const variable = parseInput(n.input[0]!).node;
    out.set(key, { name: variable, source: 'restore-graph' });
  }
  for (const key of keys) {
    if (out.has(key)) continue;
    const node = byName.get(key);
    if (node && VARIABLE_OPS.has(node.op)) out.set(key, { name: key, source: 'graph-node' });
  }
  if (trainable) for (const v of out.values()) v.trainable = trainable.has(v.name);
  return out;
}

/** Variable names listed in a TF1 collection of serialized VariableDefs (`trainable_variables`). */
export function collectionVariables(mg: MetaGraphDef, collection: string): Set<string> | undefined {
  const c = mg.collectionDef[collection]?.kind;
  if (c?.case !== 'bytesList') return undefined;
  const out = new Set<string>();
  for (const b of c.value.value) {
    try {
      out.add(parseInput(fromBinary(VariableDefSchema, b).variableName).node);
    } catch {
      // A damaged entry names nothing; the variable just has no trainable flag.
    }
  }
  return out;
}

function constStrings(n: NodeDef | undefined): string[] | undefined {
  if (!n || n.op !== 'Const') return undefined;
  const v = n.attr['value']?.value;
  if (v?.case !== 'tensor') return undefined;
  return v.value.stringVal.map((s) => utf8.decode(s));
}

/**
 * Breadth-first paths from the root (node 0) through `local_name`s, the way TF names checkpoint
 * keys: the first (shortest) path to an object wins.
 */
export function objectPaths(nodes: ReadonlyArray<{ children: ReadonlyArray<{ nodeId: number; localName: string }> }>): Map<number, string> {
  const paths = new Map<number, string>();
  if (nodes.length === 0) return paths;
  paths.set(0, '');
  const queue = [0];
  for (let qi = 0; qi < queue.length; qi++) {
    const id = queue[qi]!;
    const base = paths.get(id)!;
    for (const c of nodes[id]!.children) {
      if (c.nodeId < 0 || c.nodeId >= nodes.length || paths.has(c.nodeId)) continue;
      paths.set(c.nodeId, base === '' ? c.localName : `${base}/${c.localName}`);
      queue.push(c.nodeId);
    }
  }
  return paths;
}

export const VARIABLE_VALUE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE';

/** TF2: checkpoint key → variable name from the SavedObjectGraph and the checkpoint's object graph. */
export function tf2VariableNames(saved: SavedObjectGraph | undefined, ckpt: TrackableObjectGraph | undefined): Map<string, VariableName> {
  const out = new Map<string, VariableName>();
  if (ckpt) {
    const paths = objectPaths(ckpt.nodes);
    ckpt.nodes.forEach((node, id) => {
      for (const a of node.attributes) {
        if (!a.checkpointKey || !a.fullName) continue;
        const p = paths.get(id);
        out.set(a.checkpointKey, { name: a.fullName, source: 'checkpoint-object-graph', ...(p !== undefined ? { objectPath: p } : {}) });
      }
    });
  }
  if (saved) {
    const paths = objectPaths(saved.nodes);
    saved.nodes.forEach((node, id) => {
      if (node.kind.case !== 'variable') return;
      const p = paths.get(id);
      if (p === undefined) return;
      const key = p + VARIABLE_VALUE_SUFFIX;
      const sv = node.kind.value;
      const name = sv.name.replace(/:0$/, '');
      if (name) out.set(key, { name, source: 'saved-variable', objectPath: p, trainable: sv.trainable });
      else if (!out.has(key)) out.set(key, { name: p, source: 'saved-variable', objectPath: p, trainable: sv.trainable });
      else Object.assign(out.get(key)!, { objectPath: p, trainable: sv.trainable });
    });
  }
  return out;
}
