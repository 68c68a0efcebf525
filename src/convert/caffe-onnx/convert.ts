/**
 * Caffe → ONNX: the deploy net gives the topology, the caffemodel the weights (matched by layer name,
 * as Caffe's CopyTrainedLayersFrom does). Every kept layer goes through the layer-type registry; the
 * result is an opset-13+ ModelProto whose inputs and outputs carry the static Caffe shapes.
 */
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, type ModelProto, type ValueInfoProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import { caffeReadDiagnostics } from '../../formats/caffe/index.js';
import type { LayerParameter, NetParameter } from '../../formats/caffe/gen/caffe_pb.js';
import { tensorValueInfo } from '../../formats/onnx/build.js';
import { ConvertContext } from './context.js';
import { filterLayers } from './phase.js';
import { layerConverter, needsWeights } from './registry.js';

export interface CaffeToOnnxOptions {
  /** ai.onnx opset, 13–17 (default 13; Softmax needs ≥ 13 for Caffe's per-axis semantics). */
  opset?: number;
  /** Name of the weights file, for messages. */
  path?: string;
}

export interface CaffeToOnnxReport {
  layers: number;
  droppedByPhase: string[];
  nodes: number;
  initializers: number;
  parameters: number;
  fusedBatchNormScale: number;
  typeCounts: Record<string, number>;
  inputs: { name: string; shape: number[] }[];
  /** Graph outputs and the Caffe blob / layer that produces each (OpenCV names outputs by layer). */
  outputs: { name: string; blob: string; layer: string; shape: number[] }[];
  /** caffemodel layers with blobs that the deploy net does not use (training-only layers). */
  unusedWeightLayers: string[];
}

export interface CaffeToOnnxResult {
  model: ModelProto;
  diagnostics: Diagnostic[];
  report: CaffeToOnnxReport;
}

/** Why some frequent layer types are refused, so the message says more than "unsupported". */
const UNSUPPORTED_HINTS: Readonly<Record<string, string>> = {
  Data: 'data-source layers belong to training nets: convert the deploy prototxt',
  ImageData: 'data-source layers belong to training nets: convert the deploy prototxt',
  HDF5Data: 'data-source layers belong to training nets: convert the deploy prototxt',
  SoftmaxWithLoss: 'loss layers belong to training nets: convert the deploy prototxt',
  Accuracy: 'loss layers belong to training nets: convert the deploy prototxt',
  Interp: 'Interp and Upsample are fork layers whose parameters (and field numbers) differ between forks',
  Upsample: 'Interp and Upsample are fork layers whose parameters (and field numbers) differ between forks',
  PriorBox: 'SSD post-processing layers have no ONNX equivalent: cut the net before them',
  DetectionOutput: 'SSD post-processing layers have no ONNX equivalent: cut the net before them',
};

/** Lowest IR version that knows the opset (ONNX docs/Versioning.md). */
function irFor(opset: number): bigint {
  return opset <= 14 ? 7n : 8n;
}

export function caffeToOnnx(deploy: NetParameter, weights: NetParameter | undefined, opts: CaffeToOnnxOptions = {}): CaffeToOnnxResult {
  const opset = opts.opset ?? 13;
  const errCtx = { format: 'caffe', ...(opts.path !== undefined ? { path: opts.path } : {}) };
  if (!Number.isInteger(opset) || opset < 13 || opset > 17) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `opset ${opset}: Caffe conversion targets ai.onnx opsets 13 to 17`, errCtx);
  }
  if (deploy.layers.length > 0 || (weights && weights.layers.length > 0)) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'net still has V0/V1 `layers`: pass nets from parseCaffePrototxt / readCaffemodel (they upgrade)', errCtx);
  }
  const diagnostics: Diagnostic[] = [...caffeReadDiagnostics(deploy)];
  const { kept, dropped } = filterLayers(deploy);

  // Refuse up front, listing every unsupported type once with its count.
  const unsupported = new Map<string, number>();
  for (const l of kept) if (!layerConverter(l.type)) unsupported.set(l.type, (unsupported.get(l.type) ?? 0) + 1);
  if (unsupported.size > 0) {
    const list = [...unsupported].map(([t, n]) => `${t || '(empty type)'} ×${n}`).join(', ');
    const hints = [...new Set([...unsupported.keys()].map((t) => UNSUPPORTED_HINTS[t]).filter((h): h is string => h !== undefined))];
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `unsupported Caffe layer type(s): ${list}${hints.length ? ` (${hints.join('; ')})` : ''}`, errCtx);
  }

  const weightsByName = new Map<string, LayerParameter>();
  if (weights) {
    for (const l of weights.layer) {
      if (weightsByName.has(l.name)) {
        if (l.blobs.length > 0) diagnostics.push({ level: 'warning', code: 'caffe.duplicate_weight_layer', message: `caffemodel has several layers named '${l.name}'; the first one's blobs are used`, op: l.name });
        continue;
      }
      weightsByName.set(l.name, l);
    }
  }

  // Missing weights are a property of the pair, not of one layer: name every such layer at once,
  // before any shape check can fail on a mismatched neighbour.
  const missing = kept.filter((l) => needsWeights(l.type, l.bottom.length) && l.blobs.length === 0 && (weightsByName.get(l.name)?.blobs.length ?? 0) === 0);
  if (missing.length > 0) {
    const list = missing.map((l) => `'${l.name}' (${l.type})`).join(', ');
    throw new ModelsmithError(ErrorCodes.MALFORMED, `no weights for ${missing.length} layer(s): ${list}; neither the deploy net nor the caffemodel holds their blobs (prototxt and caffemodel do not match)`, { ...errCtx, op: missing[0]!.name });
  }

  const ctx = new ConvertContext(kept, weightsByName, opset, opts.path);
  let fused = 0;
  for (ctx.index = 0; ctx.index < kept.length; ctx.index++) {
    const layer = kept[ctx.index]!;
    const extra = layerConverter(layer.type)!(ctx, layer) ?? 0;
    if (extra > 0) {
      fused += extra;
      ctx.index += extra;
    }
  }

  // Weights the deploy net never asked for: training-only layers (data, loss) or renamed layers.
  const deployNames = new Set(kept.map((l) => l.name));
  const unusedWeightLayers = weights ? weights.layer.filter((l) => l.blobs.length > 0 && !deployNames.has(l.name)).map((l) => l.name) : [];
  const unusedNoBlobs = weights ? weights.layer.filter((l) => l.blobs.length === 0 && !deployNames.has(l.name)).map((l) => `${l.name} (${l.type})`) : [];
  if (unusedNoBlobs.length > 0) {
    diagnostics.push({ level: 'info', code: 'caffe.training_layers_ignored', message: `caffemodel layers not in the deploy net, ignored: ${unusedNoBlobs.join(', ')}` });
  }
  if (unusedWeightLayers.length > 0) {
    diagnostics.push({ level: 'warning', code: 'caffe.unused_weights', message: `caffemodel layers with weights that the deploy net does not use: ${unusedWeightLayers.join(', ')}` });
  }
  diagnostics.push(...ctx.diagnostics);

  const graph = assembleGraph(ctx, deploy.name || 'caffe', errCtx);
  const model = create(ModelProtoSchema, {
    irVersion: irFor(opset),
    producerName: 'modelsmith',
    producerVersion: '0.1.0',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: graph.graph,
  });

  const typeCounts: Record<string, number> = {};
  for (const l of kept) typeCounts[l.type] = (typeCounts[l.type] ?? 0) + 1;
  const report: CaffeToOnnxReport = {
    layers: kept.length,
    droppedByPhase: dropped.map((l) => l.name),
    nodes: ctx.nodes.length,
    initializers: ctx.initializers.length,
    parameters: ctx.initializers.reduce((n, t) => n + (t.dataType === 1 ? t.rawData.byteLength / 4 : 0), 0),
    fusedBatchNormScale: fused,
    typeCounts,
    inputs: graph.inputs,
    outputs: graph.outputs,
    unusedWeightLayers,
  };
  return { model, diagnostics, report };
}

/**
 * Inputs are the Input-layer values; outputs are the final versions of blobs nobody reads (Caffe's
 * net outputs). An output that is a later write of an in-place blob is renamed back to the blob name,
 * so users find `prob`, not `prob/relu`.
 */
function assembleGraph(ctx: ConvertContext, name: string, errCtx: { format: string; path?: string }) {
  const inputs: { name: string; shape: number[] }[] = [];
  const outputs: { name: string; blob: string; layer: string; shape: number[] }[] = [];
  const current = ctx.currentValues();
  for (const p of ctx.produced) {
    if (p.isInput) inputs.push({ name: p.value, shape: ctx.shapes.get(p.value)! });
    else if (current.has(p.value) && !ctx.consumed.has(p.value)) outputs.push({ name: p.value, blob: p.blob, layer: p.layer, shape: ctx.shapes.get(p.value)! });
  }
  if (inputs.length === 0) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the net declares no input (Input layer, input/input_dim or input_shape)', errCtx);
  if (outputs.length === 0) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the net has no output (every blob is consumed)', errCtx);

  // Swap each renamed output with its blob's first version (which takes the generated name), in one
  // pass over the nodes.
  const swap = new Map<string, string>();
  for (const o of outputs) {
    if (o.name === o.blob) continue;
    swap.set(o.name, o.blob);
    swap.set(o.blob, o.name);
    const firstShape = ctx.shapes.get(o.blob);
    ctx.shapes.set(o.blob, o.shape);
    if (firstShape) ctx.shapes.set(o.name, firstShape);
    o.name = o.blob;
  }
  if (swap.size > 0) {
    const rename = (s: string): string => swap.get(s) ?? s;
    for (const n of ctx.nodes) {
      n.input = n.input.map(rename);
      n.output = n.output.map(rename);
    }
    for (const i of inputs) i.name = rename(i.name);
  }

  const graph = create(GraphProtoSchema, {
    name,
    node: ctx.nodes,
    initializer: ctx.initializers,
    input: inputs.map((i) => tensorValueInfo(i.name, i.shape)),
    output: outputs.map((o) => tensorValueInfo(o.name, o.shape)) as ValueInfoProto[],
  });
  return { graph, inputs, outputs };
}
