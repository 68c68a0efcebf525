/**
 * `inspect` for ONNX: a JSON-serialisable report (no bigint) of what a model holds. Never throws on
 * odd content; problems become `diagnostics`. Does no I/O (external files are listed, not opened).
 */
import type { ModelProto, TypeProto, ValueInfoProto } from 'onnx-buf';
import { byteLength, dtypeFromOnnx } from '../../core/dtype.js';
import { isModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { OnnxModel } from './read.js';
import { checkTensorStorage, externalDataRef, isExternal, storageOf, tensorDType, tensorShape, visitModel, type TensorEntry } from './tensor.js';

/** Highest IR version / ai.onnx opset the ONNX spec this build follows (1.20) defines. */
export const KNOWN_IR_VERSION = 13;
export const KNOWN_AI_ONNX_OPSET = 25;

export type Dim = number | string | null;

export interface ValueSummary {
  name: string;
  /** tensor | sparse_tensor | sequence | map | optional | unknown */
  kind: string;
  /** Element type for tensors (dtype name, or `onnx:<code>` when unknown). */
  dtype?: string;
  /** Dimensions: number, dim_param name, or null for an unknown dim. Absent = unknown rank. */
  shape?: Dim[];
  /** Compact type text, e.g. `float32[N,3,224,224]`, `seq(float32[?])`. */
  type: string;
}

export interface OpCount {
  /** `Conv`, or `com.microsoft::MatMulNBits` for non-default domains. */
  op: string;
  /** Nodes in the main graph. */
  count: number;
  /** Nodes in subgraphs (If/Loop/Scan bodies) and in model-local functions. */
  nestedCount: number;
}

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  kind: TensorEntry['kind'];
  scope: string;
  storage: string;
}

export interface InspectReport {
  format: 'onnx';
  path: string;
  /** Size of the ModelProto file (external data not included). */
  fileBytes: number;
  producer: { name: string; version: string };
  irVersion: number;
  domain: string;
  modelVersion: number;
  docString: string;
  opsetImports: { domain: string; version: number }[];
  metadata: { key: string; value: string }[];
  graphName: string;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  /** Graph inputs that are also initializers (IR ≤ 3 habit); not listed in `inputs`. */
  initializerInputs: number;
  nodes: { total: number; mainGraph: number; subgraphs: number; functions: number };
  /** Number of nested graphs (If/Loop/Scan bodies, …). */
  subgraphCount: number;
  ops: OpCount[];
  functions: { domain: string; name: string; nodes: number }[];
  /** Elements in all dense tensors (initializers and tensor attributes) plus sparse values. */
  parameters: number;
  tensorCount: number;
  bytesByDtype: Record<string, { tensors: number; bytes: number }>;
  /** The 10 largest tensors by payload bytes. */
  largestTensors: TensorSummary[];
  externalData: { location: string; tensors: number; bytes: number }[];
  hasTrainingInfo: boolean;
  diagnostics: Diagnostic[];
}

function big(n: bigint): number {
  return Number(n);
}

function dtypeText(code: number): string {
  return dtypeFromOnnx(code)?.name ?? `onnx:${code}`;
}

function typeSummary(t: TypeProto | undefined, depth = 0): { kind: string; dtype?: string; shape?: Dim[]; type: string } {
  if (!t || depth > 16) return { kind: 'unknown', type: '?' };
  const v = t.value;
  const shapeOf = (s: { dim: { value: { case?: string; value?: unknown } }[] } | undefined): Dim[] | undefined =>
    s?.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value as bigint) : d.value.case === 'dimParam' ? String(d.value.value) : null));
  const text = (dtype: string, shape: Dim[] | undefined): string => `${dtype}${shape ? `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]` : '[…]'}`;
  switch (v.case) {
    case 'tensorType':
    case 'sparseTensorType': {
      const dtype = dtypeText(v.value.elemType);
      const shape = shapeOf(v.value.shape);
      const r: { kind: string; dtype?: string; shape?: Dim[]; type: string } = { kind: v.case === 'tensorType' ? 'tensor' : 'sparse_tensor', dtype, type: (v.case === 'sparseTensorType' ? 'sparse ' : '') + text(dtype, shape) };
      if (shape) r.shape = shape;
      return r;
    }
    case 'sequenceType':
      return { kind: 'sequence', type: `seq(${typeSummary(v.value.elemType, depth + 1).type})` };
    case 'optionalType':
      return { kind: 'optional', type: `optional(${typeSummary(v.value.elemType, depth + 1).type})` };
    case 'mapType':
      return { kind: 'map', type: `map(${dtypeText(v.value.keyType)},${typeSummary(v.value.valueType, depth + 1).type})` };
    default:
      return { kind: 'unknown', type: '?' };
  }
}

function valueSummary(v: ValueInfoProto): ValueSummary {
  return { name: v.name, ...typeSummary(v.type) };
}

export function summarizeOnnx(model: OnnxModel | ModelProto): InspectReport {
  const m: OnnxModel = (model as OnnxModel).format === 'onnx' && 'proto' in model ? (model as OnnxModel) : { format: 'onnx', proto: model as ModelProto, path: '<memory>', byteSize: 0, diagnostics: [] };
  const p = m.proto;
  const diagnostics: Diagnostic[] = [...m.diagnostics];
  const diag = (level: Diagnostic['level'], code: string, message: string, extra: Partial<Diagnostic> = {}): void => {
    diagnostics.push({ level, code, message, ...extra });
  };
  const g = p.graph;
  const initNames = new Set(g?.initializer.map((t) => t.name) ?? []);
  const graphInputs = g?.input ?? [];
  const report: InspectReport = {
    format: 'onnx',
    path: m.path,
    fileBytes: m.byteSize,
    producer: { name: p.producerName, version: p.producerVersion },
    irVersion: big(p.irVersion),
    domain: p.domain,
    modelVersion: big(p.modelVersion),
    docString: p.docString,
    opsetImports: p.opsetImport.map((o) => ({ domain: o.domain || 'ai.onnx', version: big(o.version) })),
    metadata: p.metadataProps.map((kv) => ({ key: kv.key, value: kv.value })),
    graphName: g?.name ?? '',
    inputs: graphInputs.filter((v) => !initNames.has(v.name)).map(valueSummary),
    outputs: (g?.output ?? []).map(valueSummary),
    initializerInputs: graphInputs.filter((v) => initNames.has(v.name)).length,
    nodes: { total: 0, mainGraph: 0, subgraphs: 0, functions: 0 },
    subgraphCount: 0,
    ops: [],
    functions: p.functions.map((f) => ({ domain: f.domain, name: f.name, nodes: f.node.length })),
    parameters: 0,
    tensorCount: 0,
    bytesByDtype: {},
    largestTensors: [],
    externalData: [],
    hasTrainingInfo: p.trainingInfo.length > 0,
    diagnostics,
  };

  if (report.irVersion > KNOWN_IR_VERSION) diag('warning', 'onnx.ir_version', `IR version ${report.irVersion} is newer than the ${KNOWN_IR_VERSION} this build knows`);
  for (const o of report.opsetImports) {
    if (o.domain === 'ai.onnx' && o.version > KNOWN_AI_ONNX_OPSET) diag('warning', 'onnx.opset', `ai.onnx opset ${o.version} is newer than the ${KNOWN_AI_ONNX_OPSET} this build knows`);
  }
  if (report.hasTrainingInfo) diag('info', 'onnx.training_info', `${p.trainingInfo.length} training_info entr${p.trainingInfo.length === 1 ? 'y' : 'ies'} (kept as is)`);

  const ops = new Map<string, OpCount>();
  const tensors: TensorSummary[] = [];
  const ext = new Map<string, { location: string; tensors: number; bytes: number }>();
  let sparseCount = 0;
  let unknownDtype = 0;

  try {
    visitModel(p, {
      graph(_g, _scope, depth) {
        if (depth > 0) report.subgraphCount++;
      },
      node(node, scope, depth) {
        const key = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}::${node.opType}` : node.opType;
        let c = ops.get(key);
        if (!c) ops.set(key, (c = { op: key, count: 0, nestedCount: 0 }));
        report.nodes.total++;
        if (scope.startsWith('function:')) {
          report.nodes.functions++;
          c.nestedCount++;
        } else if (depth > 0 || !scope.startsWith('graph')) {
          report.nodes.subgraphs++;
          c.nestedCount++;
        } else {
          report.nodes.mainGraph++;
          c.count++;
        }
      },
      tensor(e) {
        report.tensorCount++;
        const tp = e.proto;
        if (e.sparse && e.sparseRole === 'values') {
          sparseCount++;
        }
        try {
          const dtype = tensorDType(tp);
          const shape = tensorShape(tp);
          let count = 1;
          for (const d of shape) count *= d;
          const bytes = dtype === 'string' ? tp.stringData.reduce((s, b) => s + b.byteLength, 0) : byteLength(dtype, count);
          if (dtype !== 'string' && e.sparseRole !== 'indices') report.parameters += count;
          const slot = (report.bytesByDtype[dtype] ??= { tensors: 0, bytes: 0 });
          slot.tensors++;
          slot.bytes += bytes;
          const storage = storageOf(tp);
          tensors.push({ name: e.name, dtype, shape, bytes, kind: e.kind, scope: e.scope, storage });
          if (isExternal(tp)) {
            const ref = externalDataRef(tp, m.path)!;
            let x = ext.get(ref.location);
            if (!x) ext.set(ref.location, (x = { location: ref.location, tensors: 0, bytes: 0 }));
            x.tensors++;
            x.bytes += bytes;
          } else {
            // The stored payload must match dims × dtype (reported, not thrown).
            checkTensorStorage(tp, m.path);
          }
          if (tp.segment) diag('warning', 'onnx.segment', `tensor '${e.name}' is a segment of a larger tensor (TensorProto.segment), which modelsmith does not reassemble`, { tensor: e.name });
        } catch (err) {
          if (!isModelsmithError(err)) throw err;
          if (err.code === 'E_DTYPE') unknownDtype++;
          diag('warning', `onnx.${err.code}`, err.message, { tensor: e.name });
        }
      },
    });
  } catch (err) {
    diag('warning', 'onnx.summary_failed', `summary incomplete: ${(err as Error).message}`);
  }

  if (sparseCount) diag('info', 'onnx.sparse', `${sparseCount} sparse tensor(s): listed with their values/indices; modelsmith keeps them as they are and does not densify them`);
  if (unknownDtype) diag('warning', 'onnx.unknown_dtype', `${unknownDtype} tensor(s) with a data_type this build does not know`);

  report.ops = [...ops.values()].sort((a, b) => b.count + b.nestedCount - (a.count + a.nestedCount) || a.op.localeCompare(b.op));
  report.largestTensors = tensors.sort((a, b) => b.bytes - a.bytes).slice(0, 10);
  report.externalData = [...ext.values()];
  return report;
}
