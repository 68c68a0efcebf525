/**
 * ONNX ModelProto → TF GraphDef (+ variables) and the serving_default signature. The graph keeps
 * ONNX layout except inside spatial ops (formats.md §5.1); signature names are the ONNX I/O names.
 */
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, TypeProtoSchema, ValueInfoProtoSchema, type ValueInfoProto } from 'onnx-buf';
import type { DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { defaultOpset } from '../../compress/graph.js';
import { modelTensorContext, tensorFromProto } from '../../formats/onnx/tensor.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { node as tfNode } from '../../formats/savedmodel/build.js';
import { FunctionDefLibrarySchema, GraphDefSchema, type GraphDef } from '../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { VersionDefSchema } from '../../formats/savedmodel/gen/tensorflow/types_pb.js';
import { DEFAULT_PRODUCER, writeSavedModel, type SignatureSpec, type SinkFactory } from '../../formats/savedmodel/write.js';
import type { LazyTensor } from '../../formats/weights.js';
import { carrierOf, carriesBits, toCarrier } from './carriers.js';
import { Cx, onnxDtype, REFUSED_FORM, sanitizeName } from './context.js';
import './handlers/index.js';
import { runNodes, totalNodes, unsupportedOps, usedFunctions } from './subgraph.js';
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
  const withSubgraphs = totalNodes(g.node);
  if (withSubgraphs > maxNodes) throw new ModelsmithError(ErrorCodes.LIMIT, `${withSubgraphs} nodes with those of subgraphs (limit ${maxNodes})`, { format: 'onnx', path });

  // Refuse up front, listing every unsupported op once with its count: never a partial graph.
  const unsupported = unsupportedOps(g.node);
  if (Object.keys(unsupported).length > 0) {
    const list = Object.entries(unsupported).sort((p, q) => q[1] - p[1]).map(([k, c]) => `${k} ×${c}`).join(', ');
    const e = new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot convert to TensorFlow: unsupported ops ${list}`, { format: 'onnx', path });
    (e as ModelsmithError & { unsupported?: Record<string, number> }).unsupported = unsupported;
    throw e;
  }

  const opset = defaultOpset(model.proto) ?? 1;
  const cx = new Cx({ path, opset, constants: opts.constants ?? false, maxNodes });
  const inits = new Set(g.initializer.map((t) => t.name));
  const inputs = g.input.filter((i) => !inits.has(i.name));
  // Signature tensors get the ONNX names (sanitised); reserve them before any generated name.
  const inNames = inputs.map((i) => cx.unique(i.name));
  const outNames = g.output.map((o) => cx.unique(o.name));

  const tctx = modelTensorContext(model);
  for (const tp of g.initializer) {
    const t = await tensorFromProto(tp, tctx);
    cx.vals.set(tp.name, { dtype: t.dtype, shape: t.shape, value: toCarrier(t) });
  }

  const signature: SignatureSpec = { inputs: {}, outputs: {} };
  const ioForms: Record<string, string> = {};
  inputs.forEach((vi, k) => {
    const io = ioType(vi, path);
    const { dtype, sequence } = io;
    const gap = dtypeGap(dtype);
    if (gap) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${REFUSED_FORM}: graph input '${vi.name}' is ${dtype} (${gap})`, { format: 'onnx', path, tensor: vi.name });
    const shape = io.shape;
    const form = ioForm(dtype, sequence);
    if (form) ioForms[vi.name] = form;
    const nhwc = opts.nhwcIo === true && !sequence && shape?.length === 4;
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
    cx.vals.set(vi.name, { dtype, shape, ref, ...(sequence ? { sequence } : {}) });
    signature.inputs[vi.name] = { name: `${name}:0`, dtype: carrierOf(dtype) ?? dtype, shape: phShape };
  });

  runNodes(cx, g.node);

  g.output.forEach((vi, k) => {
    const v = cx.vals.get(vi.name);
    if (!v) throw new ModelsmithError(ErrorCodes.MALFORMED, `graph output '${vi.name}' is not produced by any node`, { format: 'onnx', path, tensor: vi.name });
    cx.begin(create(NodeProtoSchema, { name: vi.name, opType: 'output' }), k);
    const io = ioType(vi, path);
    if (io.sequence !== (v.sequence === true)) {
      throw new ModelsmithError(ErrorCodes.MALFORMED, `graph output '${vi.name}' is declared a ${io.sequence ? 'sequence' : 'tensor'} but computed as a ${v.sequence ? 'sequence' : 'tensor'}`, { format: 'onnx', path, tensor: vi.name });
    }
    if (v.emptySequence) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `graph output '${vi.name}' is an empty sequence of unknown element shape, which has no tensor form`, { format: 'onnx', path, tensor: vi.name });
    }
    const form = ioForm(v.dtype, v.sequence === true);
    if (form) ioForms[vi.name] = form;
    let ref = cx.ref(v);
    let shape = io.shape ?? v.shape;
    if (opts.nhwcIo === true && !v.sequence && shape?.length === 4) {
      ref = cx.layoutTranspose(ref, [0, 2, 3, 1], v.dtype);
      shape = [shape[0]!, shape[2]!, shape[3]!, shape[1]!];
    }
    cx.nodes.push(tfNode(outNames[k]!, 'Identity', [ref], { T: a.dt(v.dtype) }));
    signature.outputs[vi.name] = { name: `${outNames[k]}:0`, dtype: carrierOf(v.dtype) ?? v.dtype, shape };
  });

  // Placeholders stay even when unused: they are the signature's inputs.
  const keep = new Set([...outNames, ...inNames]);
  const before = cx.nodes.filter((n) => n.op === 'Transpose').length;
  // Static shapes of computed tensors: binary ops with a scalar or per-channel operand let layout transposes through.
  const shapes = new Map<string, number[]>();
  for (const [ref, shape] of cx.tensorShapes) shapes.set(ref.includes(':') ? ref : `${ref}:0`, shape);
  for (const v of cx.vals.values()) if (v.ref && v.shape && !v.sequence) shapes.set(v.ref.includes(':') ? v.ref : `${v.ref}:0`, v.shape);
  const { nodes, stats } = cancelTransposes(cx.nodes, cx.layoutPerms, keep, shapes);
  const library = usedFunctions(nodes, cx.functions);
  const graph = create(GraphDefSchema, {
    node: nodes,
    versions: create(VersionDefSchema, { producer: DEFAULT_PRODUCER, minConsumer: 12 }),
    ...(library.length > 0 ? { library: create(FunctionDefLibrarySchema, { function: library }) } : {}),
  });
  const report: OnnxToTfReport = {
    opsMapped: cx.counters.opsMapped,
    transposesInserted: cx.counters.transposesInserted,
    transposesRemoved: before - stats.after,
    transposesLeft: stats.after,
    unsupported: {},
    nodes: nodes.length,
    variables: cx.variables.length,
    ioForms,
  };
  return { graph, variables: cx.variables, signature, report };
}

/** A graph input/output's element dtype, static shape (stacked when a sequence) and whether it is a sequence. */
function ioType(vi: ValueInfoProto, path: string): { dtype: DType; shape: number[] | null; sequence: boolean } {
  const t = vi.type?.value;
  if (t?.case === 'tensorType') return { dtype: onnxDtype(t.value.elemType, { path, tensor: vi.name }), shape: valueShape(vi, path), sequence: false };
  const elem = t?.case === 'sequenceType' ? t.value.elemType?.value : undefined;
  if (elem?.case !== 'tensorType') {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `graph input/output '${vi.name}' is neither a tensor nor a sequence of tensors (maps, optionals, nested sequences)`, { format: 'onnx', path, tensor: vi.name });
  }
  // A sequence travels as its elements stacked on a new axis 0 (TF.js has no TensorList inputs).
  const inner = valueShape(create(ValueInfoProtoSchema, { name: vi.name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: elem.value } }) }), path);
  return { dtype: onnxDtype(elem.value.elemType, { path, tensor: vi.name }), shape: inner ? [-1, ...inner] : null, sequence: true };
}

/** How a signature tensor differs from the ONNX value it stands for, for the report; undefined when it does not. */
function ioForm(dtype: DType, sequence: boolean): string | undefined {
  const parts: string[] = [];
  if (sequence) parts.push(`sequence<${dtype}> stacked on a new axis 0 (elements of equal shape)`);
  const c = carrierOf(dtype);
  if (c) parts.push(`${dtype} carried as ${c} ${carriesBits(dtype) ? 'bit patterns' : 'values'}, one element per byte`);
  return parts.length ? parts.join('; ') : undefined;
}

/**
 * Convert and write a TF1-style SavedModel (formats.md §4.6): variables in a bundle by default,
 * or a frozen graph with `constants`.
 */
export async function writeOnnxAsSavedModel(model: OnnxModel, out: SinkFactory, opts: OnnxToTfOptions = {}): Promise<{ files: Array<{ path: string; bytes: number }>; report: OnnxToTfReport; signature: SignatureSpec }> {
  const r = await onnxToTf(model, opts);
  const { files } = await writeSavedModel({ nodes: r.graph.node, variables: r.variables, signatures: [r.signature], ...(r.graph.library ? { library: r.graph.library } : {}) }, out);
  return { files, report: r.report, signature: r.signature };
}

export { sanitizeName };
