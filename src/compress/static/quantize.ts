/**
 * Static int8 quantization in QDQ form (onnxruntime's default layout): calibrated activations get
 * QuantizeLinear → DequantizeLinear pairs (uint8 asymmetric by default), weights of the quantized
 * Conv/MatMul/Gemm become int8 symmetric per-channel initializers behind a DequantizeLinear (the
 * weight-only pass, ../quantize/weight.ts), and Conv/Gemm biases become int32 with
 * scale = x_scale · w_scale and zero point 0, so ORT's optimiser fuses the pattern into
 * QLinearConv / QLinearMatMul. The model keeps its float interface: graph inputs and outputs stay
 * float32, and every consumer of a quantized tensor reads its DequantizeLinear output.
 *
 * Opsets: QuantizeLinear/DequantizeLinear need ai.onnx 10 (E_UNSUPPORTED below); per-axis weights
 * need 13 — below it weights fall back to per-tensor scales (diagnostic).
 */
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema, TensorProtoSchema, type NodeProto, type TensorProto } from 'onnx-buf';
import { dtypeInfo } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import { typedView } from '../../core/tensor.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { tensorDType, tensorFromProtoSync } from '../../formats/onnx/tensor.js';
import { chooseQuantParams } from '../../kernels/quantize.js';
import { defaultOpset, readCounts, uniqueNamer } from '../graph.js';
import { bytesOf } from '../quantize/int4.js';
import { quantizeWeights, type QuantizeWeightsReport } from '../quantize/weight.js';
import { planStatic } from './plan.js';
import type { Range } from './observers.js';

export type ActivationType = 'uint8' | 'int8';

export interface QuantizeStaticOptions {
  /** Per-channel weight scales (default true; needs opset ≥ 13). */
  perChannel?: boolean;
  /** Activation type (default uint8, asymmetric — onnxruntime's QUInt8 default). */
  activationType?: ActivationType;
  /**
   * Weight type (default int8, symmetric, zero point 0 — onnxruntime's QInt8). uint8 weights are
   * asymmetric: on x86 CPUs without VNNI onnxruntime's u8·s8 kernels can saturate 16-bit sums, and
   * u8·u8 ones do not.
   */
  weightType?: 'int8' | 'uint8';
  /** Symmetric activations (zero point 0 / 128); default false. */
  activationSymmetric?: boolean;
  /** Leave these tensors (activations or weights) or op types float. */
  exclude?: { names?: string[]; opTypes?: string[] };
}

export interface QuantizedActivation {
  tensor: string;
  min: number;
  max: number;
  scale: number;
  zeroPoint: number;
  /** Set for passthrough outputs: the tensor whose parameters they share. */
  sharesWith?: string;
}

export interface QuantizedBias {
  name: string;
  node: string;
  scheme: 'per-channel' | 'per-tensor';
  /** Largest |b − dequantize(quantize(b))|. */
  maxAbsError: number;
}

export interface QuantizeStaticReport {
  activationType: ActivationType;
  activations: QuantizedActivation[];
  biases: QuantizedBias[];
  weights: QuantizeWeightsReport;
  diagnostics: Diagnostic[];
}

const INT32_MAX = 2 ** 31 - 1;

function intAttr(name: string, v: number) {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
}

function floats(tp: TensorProto, path?: string): Float32Array {
  const t = tensorFromProtoSync(tp, path !== undefined ? { path } : {});
  return Float32Array.from(typedView(t) as Float32Array);
}

/**
 * Inserts the QDQ pairs described by `ranges` (from `calibrate`) and quantizes weights and biases.
 * Edits `model` in place and returns it with a report.
 */
export async function quantizeStatic(model: OnnxModel, ranges: Record<string, Range>, opts: QuantizeStaticOptions = {}): Promise<{ model: OnnxModel; report: QuantizeStaticReport }> {
  const proto = model.proto;
  const g = proto.graph;
  const where = model.path !== undefined ? { path: model.path } : {};
  if (!g) throw new ModelsmithError(ErrorCodes.MALFORMED, 'model has no graph', where);
  const act: ActivationType = opts.activationType ?? 'uint8';
  if (act !== 'uint8' && act !== 'int8') throw new ModelsmithError(ErrorCodes.USAGE, `activation type '${String(act)}' is not uint8 or int8`);
  const opset = defaultOpset(proto);
  if (opset === undefined || opset < 10) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `static quantization needs QuantizeLinear (ai.onnx opset 10); the model imports opset ${opset ?? '(none)'}`, where);
  }
  const diagnostics: Diagnostic[] = [];
  let perChannel = opts.perChannel ?? true;
  if (perChannel && opset < 13) {
    perChannel = false;
    diagnostics.push({ level: 'warning', code: 'quantize.per_tensor_fallback', message: `ai.onnx opset ${opset} has no per-axis DequantizeLinear (13); weights use one scale per tensor` });
  }
  const exNames = new Set(opts.exclude?.names ?? []);
  const exOps = new Set(opts.exclude?.opTypes ?? []);
  const plan = planStatic(proto);
  const planned = new Set(plan.nodes.filter((n) => !exOps.has(n.opType) && !exNames.has(n.name)));

  // 1. Activation parameters.
  const params = new Map<string, QuantizedActivation>();
  for (const t of plan.calibrate) {
    if (exNames.has(t)) continue;
    const r = ranges[t];
    if (!r) throw new ModelsmithError(ErrorCodes.USAGE, 'no calibrated range for this activation (calibrate the same model first)', { ...where, tensor: t });
    if (!Number.isFinite(r.min) || !Number.isFinite(r.max) || r.min > r.max) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `calibrated range [${r.min}, ${r.max}] is not a finite interval`, { ...where, tensor: t });
    }
    const p = chooseQuantParams(r.min, r.max, act, opts.activationSymmetric ?? false);
    params.set(t, { tensor: t, min: r.min, max: r.max, scale: p.scale, zeroPoint: p.zeroPoint });
  }
  for (const [t, src] of plan.derived) {
    const p = params.get(src);
    if (p && !exNames.has(t)) params.set(t, { ...p, tensor: t, sharesWith: src });
  }

  // 2. Weights: the weight-only pass, restricted to the planned compute nodes.
  const plannedWeights = new Set([...planned].map((n) => n.input[n.opType === 'MatMul' ? 1 : 1]!));
  const otherWeights = new Set<string>();
  for (const n of g.node) {
    const w = n.input[1];
    if (w && !plannedWeights.has(w)) otherWeights.add(w);
  }
  const { report: weights } = await quantizeWeights(model, {
    dtype: opts.weightType ?? 'int8', perChannel, symmetric: (opts.weightType ?? 'int8') === 'int8',
    exclude: { names: [...exNames, ...otherWeights], opTypes: ['Gather', 'ConvTranspose', ...exOps] },
  });

  const unique = uniqueNamer(proto);
  const qType = dtypeInfo(act).onnx;
  const head: NodeProto[] = [];
  const newInits: TensorProto[] = [];

  // 3. Biases of Conv / Gemm whose input and weight are both quantized.
  const dqOf = new Map<string, NodeProto>();
  for (const n of g.node) if (n.opType === 'DequantizeLinear' && n.output[0]) dqOf.set(n.output[0], n);
  const initByName = new Map(g.initializer.map((t) => [t.name, t]));
  const biases: QuantizedBias[] = [];
  for (const n of planned) {
    if (n.opType !== 'Conv' && n.opType !== 'Gemm') continue;
    const b = n.input[2];
    const x = params.get(n.input[0] ?? '');
    const wdq = dqOf.get(n.input[1] ?? '');
    const bInit = b ? initByName.get(b) : undefined;
    if (!b || !x || !wdq || !bInit || exNames.has(b) || tensorDType(bInit, model.path) !== 'float32') continue;
    const wScaleInit = initByName.get(wdq.input[1] ?? '');
    if (!wScaleInit) continue;
    const ws = floats(wScaleInit, model.path);
    const bias = floats(bInit, model.path);
    if (ws.length !== 1 && ws.length !== bias.length) continue;
    const scales = new Float32Array(ws.length);
    const q = new Int32Array(bias.length);
    let maxErr = 0;
    let fits = true;
    for (let c = 0; c < bias.length; c++) {
      const s = Math.fround(x.scale * ws[ws.length === 1 ? 0 : c]!);
      if (c < ws.length) scales[c] = s;
      const v = s > 0 ? Math.round(bias[c]! / s) : 0;
      if (!(Math.abs(v) <= INT32_MAX)) { fits = false; break; }
      q[c] = v;
      maxErr = Math.max(maxErr, Math.abs(bias[c]! - v * s));
    }
    if (!fits) {
      diagnostics.push({ level: 'warning', code: 'quantize.bias_overflow', message: 'bias / (x_scale · w_scale) does not fit int32; the bias stays float', tensor: b, op: n.name });
      continue;
    }
    const axis = ws.length > 1;
    const qName = unique(`${b}_quantized`);
    const sName = unique(`${b}_scale`);
    const zName = unique(`${b}_zero_point`);
    const out = unique(`${b}_dequantized`);
    const dims = axis ? [BigInt(bias.length)] : [];
    newInits.push(
      create(TensorProtoSchema, { name: qName, dims: [BigInt(bias.length)], dataType: dtypeInfo('int32').onnx, rawData: bytesOf(q) }),
      create(TensorProtoSchema, { name: sName, dims, dataType: dtypeInfo('float32').onnx, rawData: bytesOf(scales) }),
      create(TensorProtoSchema, { name: zName, dims, dataType: dtypeInfo('int32').onnx, rawData: bytesOf(new Int32Array(scales.length)) }),
    );
    head.push(create(NodeProtoSchema, { opType: 'DequantizeLinear', name: unique(`${b}_DequantizeLinear`), input: [qName, sName, zName], output: [out], attribute: axis ? [intAttr('axis', 0)] : [] }));
    n.input[2] = out;
    biases.push({ name: b, node: n.name, scheme: axis ? 'per-channel' : 'per-tensor', maxAbsError: maxErr });
  }
  // Float biases nobody reads any more go.
  const reads = readCounts(proto);
  const replacedBiases = new Set(biases.map((x) => x.name));
  g.initializer = g.initializer.filter((t) => !replacedBiases.has(t.name) || (reads.get(t.name) ?? 0) > 0);
  g.input = g.input.filter((v) => !replacedBiases.has(v.name) || (reads.get(v.name) ?? 0) > 0);

  // 4. QDQ pairs on activations; passthrough outputs share their source's scale and zero point.
  const paramNames = new Map<string, { s: string; z: string }>();
  const paramsFor = (p: QuantizedActivation): { s: string; z: string } => {
    const key = p.sharesWith ?? p.tensor;
    let names = paramNames.get(key);
    if (!names) {
      names = { s: unique(`${key}_scale`), z: unique(`${key}_zero_point`) };
      const zb = act === 'int8' ? bytesOf(Int8Array.of(p.zeroPoint)) : Uint8Array.of(p.zeroPoint);
      newInits.push(
        create(TensorProtoSchema, { name: names.s, dims: [], dataType: dtypeInfo('float32').onnx, rawData: bytesOf(Float32Array.of(p.scale)) }),
        create(TensorProtoSchema, { name: names.z, dims: [], dataType: qType, rawData: zb as Uint8Array<ArrayBuffer> }),
      );
      paramNames.set(key, names);
    }
    return names;
  };
  const renamed = new Map<string, string>();
  const inserted = new Set<NodeProto>();
  const qdq = (t: string): NodeProto[] => {
    const p = params.get(t)!;
    const { s, z } = paramsFor(p);
    const qOut = unique(`${t}_quantized`);
    const dqOut = unique(`${t}_dequantized`);
    renamed.set(t, dqOut);
    const q = create(NodeProtoSchema, { opType: 'QuantizeLinear', name: unique(`${t}_QuantizeLinear`), input: [t, s, z], output: [qOut] });
    inserted.add(q);
    return [
      q,
      create(NodeProtoSchema, { opType: 'DequantizeLinear', name: unique(`${t}_DequantizeLinear`), input: [qOut, s, z], output: [dqOut] }),
    ];
  };
  const nodes: NodeProto[] = [...head];
  for (const i of g.input) if (params.has(i.name)) nodes.push(...qdq(i.name));
  for (const n of g.node) {
    nodes.push(n);
    for (const o of n.output) if (o && params.has(o)) nodes.push(...qdq(o));
  }
  for (const n of nodes) {
    if (inserted.has(n)) continue;
    n.input = n.input.map((x) => renamed.get(x) ?? x);
  }
  g.node = nodes;
  g.initializer.push(...newInits);

  return {
    model,
    report: { activationType: act, activations: [...params.values()], biases, weights, diagnostics: [...diagnostics, ...weights.diagnostics] },
  };
}
