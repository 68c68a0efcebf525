/**
 * ONNX ModelProto → TF GraphDef (+ variables) and the serving_default signature. The graph keeps
 * ONNX layout except inside spatial ops (formats.md §5.1); signature names are the ONNX I/O names.
 */
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type ValueInfoProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { defaultOpset } from '../../compress/graph.js';
import { modelTensorContext, tensorFromProto } from '../../formats/onnx/tensor.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { node as tfNode } from '../../formats/savedmodel/build.js';
import { GraphDefSchema, type GraphDef } from '../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { VersionDefSchema } from '../../formats/savedmodel/gen/tensorflow/types_pb.js';
import { DEFAULT_PRODUCER, writeSavedModel, type SignatureSpec, type SinkFactory } from '../../formats/savedmodel/write.js';
import type { LazyTensor } from '../../formats/weights.js';
import { Cx, onnxDtype, REFUSED_FORM, sanitizeName } from './context.js';
import { handlerFor } from './handlers/index.js';
import { cancelTransposes } from './layout.js';
import type { OnnxToTfReport } from './report.js';
import { dtypeGap } from './tfjs-limits.js';
import { a } from './tf-attr.js';

export interface OnnxToTfOptions {
  /** Rank-4 graph inputs and outputs in NHWC instead of ONNX's NCHW. */
  nhwcIo?: boolean;
  /** Weights as Const nodes (a frozen graph) instead of bundle variables. */
  constants?: boolean;
  /** Refuse graphs with more nodes than this (default 200 000): bounds time and memory on hostile input. */
  maxNodes?: number;
}

export interface OnnxToTfResult {
  /** Compute graph. Without `constants`, weight `w` is read as `w/Read/ReadVariableOp`, which writeSavedModel adds. */
  graph: GraphDef;
  variables: LazyTensor[];
  signature: SignatureSpec;
  report: OnnxToTfReport;
}

/** Nodes of this many or more would make a graph TF refuses to load in reasonable time; also bounds the passes. */
const MAX_NODES = 200_000;
const MAX_RANK = 254;

function isDefaultDomain(d: string): boolean {
  return d === '' || d === 'ai.onnx';
}

/** Op type as the registry knows it, or with its domain for other domains. */
function opKey(domain: string, op: string): string {
  return isDefaultDomain(domain) ? op : `${domain}::${op}`;
}

function valueShape(vi: ValueInfoProto, path: string): number[] | null {
  const t = vi.type?.value;
  if (t?.case !== 'tensorType') return null;
  const s = t.value.shape;
  if (!s) return null;
  if (s.dim.length > MAX_RANK) throw new ModelsmithError(ErrorCodes.LIMIT, `'${vi.name}' has rank ${s.dim.length} (TF allows ${MAX_RANK})`, { format: 'onnx', path, tensor: vi.name });
  return s.dim.map((d) => (d.value.case === 'dimValue' && d.value.value >= 0n && d.value.value <= 2n ** 31n ? Number(d.value.value) : -1));
}

export async function onnxToTf(model: OnnxModel, opts: OnnxToTfOptions = {}): Promise<OnnxToTfResult> {
  const path = model.path;
  const g = model.proto.graph;
  if (!g) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the model has no graph', { format: 'onnx', path });
  const maxNodes = opts.maxNodes ?? MAX_NODES;
  if (g.node.length > maxNodes) throw new ModelsmithError(ErrorCodes.LIMIT, `${g.node.length} nodes (limit ${maxNodes})`, { format: 'onnx', path });

  // Refuse up front, listing every unsupported op once with its count: never a partial graph.
  const unsupported: Record<string, number> = {};
  for (const n of g.node) {
    const k = opKey(n.domain, n.opType);
    if (!isDefaultDomain(n.domain) || !handlerFor(n.opType)) unsupported[k] = (unsupported[k] ?? 0) + 1;
  }
  if (Object.keys(unsupported).length > 0) {
    const list = Object.entries(unsupported).sort((p, q) => q[1] - p[1]).map(([k, c]) => `${k} ×${c}`).join(', ');
    const e = new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot convert to TensorFlow: unsupported ops ${list}`, { format: 'onnx', path });
    (e as ModelsmithError & { unsupported?: Record<string, number> }).unsupported = unsupported;
    throw e;
  }

  const opset = defaultOpset(model.proto) ?? 1;
  const cx = new Cx({ path, opset, constants: opts.constants ?? false });
  const inits = new Set(g.initializer.map((t) => t.name));
  const inputs = g.input.filter((i) => !inits.has(i.name));
  // Signature tensors get the ONNX names (sanitised); reserve them before any generated name.
  const inNames = inputs.map((i) => cx.unique(i.name));
  const outNames = g.output.map((o) => cx.unique(o.name));

  const tctx = modelTensorContext(model);
  for (const tp of g.initializer) {
    const t = await tensorFromProto(tp, tctx);
    cx.vals.set(tp.name, { dtype: t.dtype, shape: t.shape, value: t });
  }

  const signature: SignatureSpec = { inputs: {}, outputs: {} };
  inputs.forEach((vi, k) => {
    const tt = vi.type?.value;
    if (tt?.case !== 'tensorType') throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `graph input '${vi.name}' is not a tensor (sequence/map/optional inputs)`, { format: 'onnx', path, tensor: vi.name });
    const dtype = onnxDtype(tt.value.elemType, { path, tensor: vi.name });
    const gap = dtypeGap(dtype, false);
    if (gap) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${REFUSED_FORM}: graph input '${vi.name}' is ${dtype} (${gap})`, { format: 'onnx', path, tensor: vi.name });
    const shape = valueShape(vi, path);
    const nhwc = opts.nhwcIo === true && shape?.length === 4;
    const phShape = nhwc ? [shape[0]!, shape[2]!, shape[3]!, shape[1]!] : shape;
    const name = inNames[k]!;
    // A 0 dim is declared unknown on the Placeholder: TF.js reads a zero-size dim of a graph's
    // Placeholder shape as NaN and then rejects every feed (the signature keeps the 0).
    const declared = phShape?.map((d) => (d === 0 ? -1 : d)) ?? null;
    cx.nodes.push(tfNode(name, 'Placeholder', [], { dtype: a.dt(dtype), shape: a.shape(declared) }));
    let ref = name;
    if (nhwc) {
      cx.begin(create(NodeProtoSchema, { name: vi.name, opType: 'input' }), k);
      ref = cx.layoutTranspose(name, [0, 3, 1, 2], dtype);
    }
    cx.vals.set(vi.name, { dtype, shape, ref });
    signature.inputs[vi.name] = { name: `${name}:0`, dtype, shape: phShape };
  });

  g.node.forEach((n, i) => {
    cx.begin(n, i);
    try {
      handlerFor(n.opType)!(cx);
    } catch (e) {
      throw withNodeContext(e, cx, path);
    }
    for (const [k, o] of n.output.entries()) {
      if (o && !cx.vals.has(o)) cx.fail(ErrorCodes.UNSUPPORTED, `output ${k} ('${o}') is not produced by the conversion`);
    }
    cx.counters.opsMapped[n.opType] = (cx.counters.opsMapped[n.opType] ?? 0) + 1;
  });

  g.output.forEach((vi, k) => {
    const v = cx.vals.get(vi.name);
    if (!v) throw new ModelsmithError(ErrorCodes.MALFORMED, `graph output '${vi.name}' is not produced by any node`, { format: 'onnx', path, tensor: vi.name });
    cx.begin(create(NodeProtoSchema, { name: vi.name, opType: 'output' }), k);
    let ref = cx.ref(v);
    let shape = valueShape(vi, path) ?? v.shape;
    if (opts.nhwcIo === true && shape?.length === 4) {
      ref = cx.layoutTranspose(ref, [0, 2, 3, 1], v.dtype);
      shape = [shape[0]!, shape[2]!, shape[3]!, shape[1]!];
    }
    cx.nodes.push(tfNode(outNames[k]!, 'Identity', [ref], { T: a.dt(v.dtype) }));
    signature.outputs[vi.name] = { name: `${outNames[k]}:0`, dtype: v.dtype, shape };
  });

  // Placeholders stay even when unused: they are the signature's inputs.
  const keep = new Set([...outNames, ...inNames]);
  const before = cx.nodes.filter((n) => n.op === 'Transpose').length;
  const { nodes, stats } = cancelTransposes(cx.nodes, cx.layoutPerms, keep);
  const graph = create(GraphDefSchema, { node: nodes, versions: create(VersionDefSchema, { producer: DEFAULT_PRODUCER, minConsumer: 12 }) });
  const report: OnnxToTfReport = {
    opsMapped: cx.counters.opsMapped,
    transposesInserted: cx.counters.transposesInserted,
    transposesRemoved: before - stats.after,
    transposesLeft: stats.after,
    unsupported: {},
    nodes: nodes.length,
    variables: cx.variables.length,
  };
  return { graph, variables: cx.variables, signature, report };
}

function withNodeContext(e: unknown, cx: Cx, path: string): ModelsmithError {
  const op = `${cx.node.opType} '${cx.node.name || cx.node.output[0] || ''}'`;
  if (e instanceof ModelsmithError) {
    if (e.op !== undefined) return e;
    const msg = e.message.replace(/^E_[A-Z_]+: /, '').replace(/ \([^)]*\)$/, '');
    return new ModelsmithError(e.code, msg, { format: 'onnx', path, op, ...(e.tensor !== undefined ? { tensor: e.tensor } : {}), cause: e });
  }
  // A handler tripping over a malformed node must not surface as a TypeError/RangeError.
  return new ModelsmithError(ErrorCodes.MALFORMED, `cannot convert node: ${(e as Error)?.message ?? String(e)}`, { format: 'onnx', path, op, cause: e });
}

/**
 * Convert and write a TF1-style SavedModel (formats.md §4.6): variables in a bundle by default,
 * or a frozen graph with `constants`.
 */
export async function writeOnnxAsSavedModel(model: OnnxModel, out: SinkFactory, opts: OnnxToTfOptions = {}): Promise<{ files: Array<{ path: string; bytes: number }>; report: OnnxToTfReport; signature: SignatureSpec }> {
  const r = await onnxToTf(model, opts);
  const { files } = await writeSavedModel({ nodes: r.graph.node, variables: r.variables, signatures: [r.signature] }, out);
  return { files, report: r.report, signature: r.signature };
}

export { sanitizeName };
