/**
 * Which checkpoint tensor holds the value of each top-level variable node. The restore graph says it
 * exactly, the way TF's own loader restores: RestoreV2 output i (key i of its `tensor_names`) is
 * assigned to a variable. TF1 graphs do that at top level; TF2 graphs do it inside the function
 * that `saver_def.restore_op_name` calls, with the variables passed in as arguments, so the
 * argument is mapped back to the caller's input. Name matching is only the fallback, because TF2
 * variable names are not unique ("Variable", "Variable_1" for object paths `v1`, `v2`).
 */
import type { LazyTensor } from '../../weights.js';
import type { FunctionDef, GraphDef, NodeDef } from '../gen/tensorflow/graph_pb.js';
import { parseInput } from '../graph-utils.js';
import type { SavedModelFile } from '../read.js';
import { tf1VariableNames } from '../variable-names.js';

export const VARIABLE_OPS = new Set(['VariableV2', 'Variable', 'VariableV1', 'VarHandleOp']);
const utf8 = new TextDecoder('utf-8');

function constStrings(n: NodeDef | undefined): string[] | undefined {
  const v = n?.op === 'Const' ? n.attr['value']?.value : undefined;
  return v?.case === 'tensor' ? v.value.stringVal.map((s) => utf8.decode(s)) : undefined;
}

/** Function-body reference `node:outarg:i` / `node` → node name and i (args have no colon). */
function innerRef(s: string): { node: string; index: number } {
  const parts = s.split(':');
  return { node: parts[0]!, index: parts.length > 1 ? Number(parts[parts.length - 1]) : 0 };
}

/** checkpoint key → argument index, from one restore function's RestoreV2 → (Identity →) AssignVariableOp. */
function restoreFunctionKeys(fn: FunctionDef): Map<number, string> {
  const byName = new Map(fn.nodeDef.map((n) => [n.name, n]));
  const argIndex = new Map((fn.signature?.inputArg ?? []).map((a, i) => [a.name, i]));
  const out = new Map<number, string>();
  for (const assign of fn.nodeDef) {
    if (assign.op !== 'AssignVariableOp' || assign.input.length < 2) continue;
    const arg = argIndex.get(assign.input[0]!);
    if (arg === undefined) continue;
    let ref = innerRef(assign.input[1]!);
    for (let hops = 0; hops < 16; hops++) {
      const n = byName.get(ref.node);
      if (n?.op !== 'Identity' || n.input.length === 0) break;
      ref = innerRef(n.input[0]!);
    }
    const restore = byName.get(ref.node);
    if (restore?.op !== 'RestoreV2' || restore.input.length < 2) continue;
    const key = constStrings(byName.get(innerRef(restore.input[1]!).node))?.[ref.index];
    if (key !== undefined) out.set(arg, key);
  }
  return out;
}

/** checkpoint key → top-level variable node, through restore functions called at top level. */
function tf2RestoreKeys(graph: GraphDef): Map<string, string> {
  const library = new Map((graph.library?.function ?? []).map((f) => [f.signature?.name ?? '', f]));
  const out = new Map<string, string>();
  for (const call of graph.node) {
    const f = call.attr['f']?.value;
    if (f?.case !== 'func') continue;
    const fn = library.get(f.value.name);
    if (!fn || !fn.nodeDef.some((n) => n.op === 'RestoreV2')) continue;
    for (const [arg, key] of restoreFunctionKeys(fn)) {
      const input = call.input[arg];
      if (input !== undefined && !out.has(key)) out.set(key, parseInput(input).node);
    }
  }
  return out;
}

/** Top-level variable node name → its value in the SavedModel's checkpoint. */
export function variableValues(file: SavedModelFile): Map<string, LazyTensor> {
  const graph = file.metaGraphs[file.metaGraphIndex]?.metaGraph.graphDef;
  const out = new Map<string, LazyTensor>();
  if (!graph) return out;
  const byKey = new Map<string, LazyTensor>();
  for (const t of file.variables.tensors) {
    const key = t.extra?.['checkpointKey'];
    byKey.set(typeof key === 'string' ? key : t.name, t);
  }
  const set = (node: string, key: string): void => {
    const t = byKey.get(key);
    if (t && !out.has(node)) out.set(node, t);
  };
  for (const [key, v] of tf1VariableNames(graph, byKey.keys())) set(v.name, key);
  for (const [key, node] of tf2RestoreKeys(graph)) set(node, key);
  // Fallback: a variable whose node or shared name is a checkpoint key or a unique variable name.
  const byVarName = new Map<string, LazyTensor | null>();
  for (const t of file.variables.tensors) {
    const vn = t.extra?.['variableName'];
    for (const name of new Set([t.name, typeof vn === 'string' ? vn : t.name])) byVarName.set(name, byVarName.has(name) ? null : t);
  }
  for (const n of graph.node) {
    if (!VARIABLE_OPS.has(n.op) || out.has(n.name)) continue;
    const s = n.attr['shared_name']?.value;
    const shared = s?.case === 's' && s.value.length > 0 ? utf8.decode(s.value) : n.name;
    const t = byKey.get(n.name) ?? byKey.get(shared) ?? byVarName.get(shared) ?? byVarName.get(n.name);
    if (t) out.set(n.name, t);
  }
  return out;
}
