/**
 * Freeze a SavedModel signature into a self-contained GraphDef (variables as Consts, function calls
 * inlined) and run it with TF.js, the reference executor for TF graphs. The walk itself is in
 * freeze/graph.ts; which checkpoint tensor feeds which variable node is in freeze/variables.ts.
 */
import type { DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { Tensor } from '../../core/tensor.js';
import type { GraphDef } from './gen/tensorflow/graph_pb.js';
import type { SignatureDef, TensorInfo } from './gen/tensorflow/meta_graph_pb.js';
import { parseInput } from './graph-utils.js';
import type { SavedModelFile } from './read.js';
import { tensorFromProto } from './tensor-proto.js';
import { freezeGraph, type FreezeEndpoint } from './freeze/graph.js';
import { variableValues } from './freeze/variables.js';
import { dtypeFromTf, shapeDims, tfDtypeLabel } from './tf-types.js';
import { runGraphDef } from './tfjs.js';

export interface FrozenTensor {
  /** Key in the signature (`x`, `output_0`). */
  key: string;
  /** Inputs: the Placeholder (or PlaceholderWithDefault) node to feed. Outputs: the tensor to fetch, `node` or `node:k`. */
  node: string;
  dtype: DType;
  /** -1 for unknown dims; null for unknown rank. */
  shape: number[] | null;
}

export interface FrozenGraph {
  graph: GraphDef;
  inputs: FrozenTensor[];
  outputs: FrozenTensor[];
  diagnostics: Diagnostic[];
}

export const DEFAULT_SIGNATURE = 'serving_default';

function ctx(file: SavedModelFile, op?: string) {
  return { format: 'savedmodel', path: file.path, ...(op !== undefined ? { op } : {}) };
}

function endpoint(file: SavedModelFile, signature: string, key: string, t: TensorInfo): FreezeEndpoint {
  const where = `signature '${signature}' ${key}`;
  if (t.encoding.case !== 'name') {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${where} is a ${t.encoding.case ?? 'nameless'} tensor; only dense tensors can be frozen`, ctx(file));
  }
  const dtype = dtypeFromTf(t.dtype);
  if (!dtype) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${where} has dtype ${tfDtypeLabel(t.dtype)}`, ctx(file));
  const r = parseInput(t.encoding.value);
  if (r.index < 0 || r.node === '') throw new ModelsmithError(ErrorCodes.MALFORMED, `${where} names '${t.encoding.value}', which is not a tensor`, ctx(file));
  const shape = t.tensorShape ? shapeDims(t.tensorShape) : null;
  return { key, node: r.node, index: r.index, dtype, shape: shape && shape.every((d) => Number.isSafeInteger(d)) ? shape : null };
}

function signatureDef(file: SavedModelFile, key: string): SignatureDef {
  const mg = file.metaGraphs[file.metaGraphIndex]!.metaGraph;
  const s = mg.signatureDef[key];
  if (!s) {
    const keys = Object.keys(mg.signatureDef).filter((k) => !k.startsWith('__'));
    throw new ModelsmithError(ErrorCodes.USAGE, `no signature '${key}'; the SavedModel has ${keys.length > 0 ? keys.map((k) => `'${k}'`).join(', ') : 'none'}`, ctx(file));
  }
  return s;
}

/**
 * Turns a signature into a self-contained GraphDef: variable reads become Consts holding the
 * checkpoint values, called functions are inlined, and only what the outputs need is kept.
 */
export async function freezeSignature(file: SavedModelFile, signatureKey: string = DEFAULT_SIGNATURE): Promise<FrozenGraph> {
  const s = signatureDef(file, signatureKey);
  const graph = file.metaGraphs[file.metaGraphIndex]!.metaGraph.graphDef;
  if (!graph) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the MetaGraphDef has no graph', ctx(file));
  const inputs = Object.entries(s.inputs).map(([k, t]) => endpoint(file, signatureKey, k, t));
  const outputs = Object.entries(s.outputs).map(([k, t]) => endpoint(file, signatureKey, k, t));
  if (outputs.length === 0) throw new ModelsmithError(ErrorCodes.USAGE, `signature '${signatureKey}' has no outputs`, ctx(file));
  const dupInput = inputs.find((a, i) => inputs.findIndex((b) => b.node === a.node) !== i);
  if (dupInput) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `signature '${signatureKey}' feeds node '${dupInput.node}' under two keys`, ctx(file, dupInput.node));
  const frozen = await freezeGraph({ graph, signature: signatureKey, inputs, outputs, values: variableValues(file), path: file.path });
  return {
    graph: frozen.graph,
    inputs: inputs.map((i) => ({ key: i.key, node: i.node, dtype: i.dtype, shape: i.shape })),
    outputs: outputs.map((o, k) => ({ key: o.key, node: frozen.outputNames[k]!, dtype: o.dtype, shape: o.shape })),
    diagnostics: frozen.diagnostics,
  };
}

/**
 * Runs a signature through freeze → TF.js. Inputs not fed fall back to the signature's `defaults`
 * or a PlaceholderWithDefault's default; outputs come back under their signature keys, int64/float64
 * where the signature says so.
 */
export async function runSignature(file: SavedModelFile, feeds: Record<string, Tensor>, signatureKey: string = DEFAULT_SIGNATURE): Promise<Record<string, Tensor>> {
  const frozen = await freezeSignature(file, signatureKey);
  const defaults = signatureDef(file, signatureKey).defaults;
  for (const k of Object.keys(feeds)) {
    if (!frozen.inputs.some((i) => i.key === k)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `signature '${signatureKey}' has no input '${k}'; its inputs are ${frozen.inputs.map((i) => `'${i.key}'`).join(', ') || 'none'}`, ctx(file));
    }
  }
  const graphFeeds: Record<string, Tensor> = {};
  for (const i of frozen.inputs) {
    const fed = feeds[i.key];
    const dflt = defaults[i.key];
    if (fed) graphFeeds[i.node] = fed;
    else if (dflt) graphFeeds[i.node] = tensorFromProto(dflt, { name: i.key, path: file.path });
    else if (frozen.graph.node.find((n) => n.name === i.node)?.op !== 'PlaceholderWithDefault') {
      throw new ModelsmithError(ErrorCodes.USAGE, `signature '${signatureKey}' input '${i.key}' is not fed and has no default`, ctx(file, i.node));
    }
  }
  const results = await runGraphDef(frozen.graph, graphFeeds, frozen.outputs.map((o) => o.node), { path: file.path, fetchDtypes: frozen.outputs.map((o) => o.dtype) });
  return Object.fromEntries(frozen.outputs.map((o, k) => [o.key, { ...results[k]!, name: o.key }]));
}
