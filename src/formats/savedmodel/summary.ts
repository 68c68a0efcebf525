/**
 * `inspect` for SavedModels and frozen GraphDefs: a JSON-serialisable report (no bigint). Reads only
 * the payloads of tiny variables (≤ 8 elements) to show their values; a variable that fails to load
 * becomes a diagnostic, never an exception.
 */
import { isModelsmithError, type Diagnostic } from '../../core/errors.js';
import { typedView, type Tensor } from '../../core/tensor.js';
import type { LazyTensor } from '../weights.js';
import { loadStrings } from './bundle/read.js';
import type { GraphDef } from './gen/tensorflow/graph_pb.js';
import type { GraphDefFile } from './graphdef.js';
import { opHistogram } from './graph-utils.js';
import type { AssetInfo, SavedModelFile, SignatureInfo } from './read.js';
import { tensorProtoInfo } from './tensor-proto.js';
import { shapeDims, tfDtypeLabel } from './tf-types.js';

/** Variables with at most this many elements get their values in the report. */
export const MAX_VALUES = 8;

export type JsonValue = number | string | boolean | null;

export interface VariableSummary {
  name: string;
  checkpointKey: string;
  dtype: string;
  shape: number[];
  bytes: number;
  values?: JsonValue[];
}

export interface GraphSummary {
  nodeCount: number;
  functionCount: number;
  /** Names of the library functions. */
  functions: string[];
  /** Op type → count of top-level nodes. */
  ops: Record<string, number>;
  /** Op type → count of nodes inside library functions. */
  functionOps: Record<string, number>;
  producer: number;
  /** Top-level Const nodes and the bytes their values decode to (the weights of a frozen graph). */
  constCount: number;
  constBytes: number;
  /** Placeholders: name, dtype, shape (null = unknown rank). */
  placeholders: Array<{ name: string; dtype: string; shape: number[] | null }>;
}

export interface SavedModelSummary {
  format: 'savedmodel';
  path: string;
  schemaVersion: number;
  metaGraphs: Array<{ tags: string[]; tensorflowVersion: string; style: 'tf1' | 'tf2'; nodes: number; functions: number; objectGraphNodes: number }>;
  /** Tags of the MetaGraphDef the rest of the report describes. */
  tags: string[];
  signatures: SignatureInfo[];
  variables: VariableSummary[];
  variableBytes: number;
  graph: GraphSummary;
  assets: AssetInfo[];
  keras?: SavedModelFile['keras'];
  diagnostics: Diagnostic[];
}

function numberOf(v: number | bigint): number | string {
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

// Formats sit below kernels/ in the layering, so the few display conversions live here.
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16ToNumber(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** Element values of a small tensor as JSON values (NaN/Inf as strings, big int64 as strings). */
export async function tensorValues(t: LazyTensor): Promise<JsonValue[]> {
  if (t.dtype === 'string') {
    const dec = new TextDecoder('utf-8');
    return (await loadStrings(t)).map((s) => dec.decode(s));
  }
  const data = await t.load();
  const tensor: Tensor = { name: t.name, dtype: t.dtype, shape: t.shape, data };
  if (t.dtype === 'bool') return Array.from(data, (b) => b !== 0);
  const view = typedView(tensor);
  if (t.dtype === 'float16') return Array.from(view as Uint16Array, (h) => numberOf(halfToNumber(h)));
  if (t.dtype === 'bfloat16') return Array.from(view as Uint16Array, (h) => numberOf(bf16ToNumber(h)));
  return Array.from(view as ArrayLike<number | bigint>, numberOf);
}

export function summarizeGraph(graph: GraphDef | undefined): GraphSummary {
  const functions = graph?.library?.function ?? [];
  const functionOps: Record<string, number> = {};
  for (const f of functions) opHistogram(f.nodeDef, functionOps);
  const placeholders = (graph?.node ?? [])
    .filter((n) => n.op === 'Placeholder' || n.op === 'PlaceholderWithDefault')
    .map((n) => {
      const dt = n.attr['dtype']?.value;
      const sh = n.attr['shape']?.value;
      return { name: n.name, dtype: dt?.case === 'type' ? tfDtypeLabel(dt.value) : 'unknown', shape: sh?.case === 'shape' ? shapeDims(sh.value) : null };
    });
  let constCount = 0;
  let constBytes = 0;
  for (const n of graph?.node ?? []) {
    const v = n.attr['value']?.value;
    if (n.op !== 'Const' || v?.case !== 'tensor') continue;
    constCount++;
    try {
      constBytes += tensorProtoInfo(v.value).bytes;
    } catch {
      // Undecodable constants are counted but add no bytes; graphConstants() reports them.
    }
  }
  return {
    nodeCount: graph?.node.length ?? 0,
    constCount,
    constBytes,
    functionCount: functions.length,
    functions: functions.map((f) => f.signature?.name ?? ''),
    ops: opHistogram(graph?.node ?? []),
    functionOps,
    producer: graph?.versions?.producer ?? 0,
    placeholders,
  };
}

export async function summarizeSavedModel(file: SavedModelFile): Promise<SavedModelSummary> {
  const diagnostics: Diagnostic[] = [...file.diagnostics];
  const variables: VariableSummary[] = [];
  let variableBytes = 0;
  for (const t of file.variables.tensors) {
    const v: VariableSummary = { name: t.name, checkpointKey: String(t.extra?.['checkpointKey'] ?? t.name), dtype: t.dtype, shape: t.shape, bytes: t.byteLength };
    variableBytes += t.byteLength;
    if (t.shape.reduce((a, b) => a * b, 1) <= MAX_VALUES) {
      try {
        v.values = await tensorValues(t);
      } catch (e) {
        if (!isModelsmithError(e)) throw e;
        diagnostics.push({ level: 'warning', code: e.code, message: e.message, tensor: t.name });
      }
    }
    variables.push(v);
  }
  const mg = file.metaGraphs[file.metaGraphIndex]!;
  return {
    format: 'savedmodel',
    path: file.path,
    schemaVersion: Number(file.savedModel.savedModelSchemaVersion),
    metaGraphs: file.metaGraphs.map((m) => ({
      tags: m.tags,
      tensorflowVersion: m.tensorflowVersion,
      style: m.style,
      nodes: m.metaGraph.graphDef?.node.length ?? 0,
      functions: m.metaGraph.graphDef?.library?.function.length ?? 0,
      objectGraphNodes: m.metaGraph.objectGraphDef?.nodes.length ?? 0,
    })),
    tags: mg.tags,
    signatures: file.signatures,
    variables,
    variableBytes,
    graph: summarizeGraph(mg.metaGraph.graphDef),
    assets: file.assets,
    ...(file.keras ? { keras: file.keras } : {}),
    diagnostics,
  };
}

export function summarizeGraphDef(file: GraphDefFile): { format: 'tf-graphdef'; path: string; graph: GraphSummary; diagnostics: Diagnostic[] } {
  return { format: 'tf-graphdef', path: file.path, graph: summarizeGraph(file.graph), diagnostics: file.diagnostics };
}
