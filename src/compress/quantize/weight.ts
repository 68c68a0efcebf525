/**
 * Weight-only int8/uint8 quantization written as QDQ: each float32 weight W that feeds a registered
 * op (registry.ts) at its weight input is replaced by
 *
 *   W_quantized (int8/uint8) ─┐
 *   W_scale (float32)        ─┼─► DequantizeLinear ─► W   (same name: consumers are untouched)
 *   W_zero_point (int8/uint8)─┘
 *
 * Initializers stay initializers (the DequantizeLinear nodes go first in their graph); weights held
 * by `Constant` nodes (paddle2onnx, spox; also inside If/Loop bodies) become three Constant nodes and
 * the DequantizeLinear node in the Constant's place. A weight read by several nodes is quantized once
 * (per-channel along the axis of its first registered consumer). Zero is exactly representable
 * (chooseQuantParams keeps 0 inside the range and rounds the zero point to an integer).
 *
 * Opset and IR rules, decided here:
 * - From ai.onnx opset 13 the dequantization is a DequantizeLinear node (per axis with `axis`), and
 *   from opset 10 too when per-tensor is asked for.
 * - Otherwise (opset 7..12 with per-channel, opset 7..9 at all) the opset is NOT raised — ops such as
 *   Slice, Unsqueeze, Split, Clip, TopK changed signatures on the way, so a bump is not safe in
 *   general — and the weight is dequantized by Cast(to=FLOAT) → Sub(zero point, only when one is not
 *   0) → Mul(scale), with scales shaped to broadcast along the channel axis: the same (q - zp) * scale
 *   in float32, per channel or per tensor as asked (diagnostic `quantize.cast_mul_form`).
 * - Below opset 7 (no broadcasting Mul) nothing is quantized (diagnostic).
 * - An initializer that is also listed in graph.input (old exporters) is removed from the inputs when
 *   replaced, so a runtime cannot feed a float value over it.
 * - IR version < 4 requires every initializer to be a graph input; instead of exposing the quantized
 *   tensors as inputs (a caller could then override them) the model's ir_version is raised to 4, which
 *   changes nothing else about how the model is read (diagnostic).
 * Tensors inside model-local functions and training_info are not touched.
 */
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  NodeProtoSchema,
  TensorProtoSchema,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { allFinite, typedView } from '../../core/tensor.js';
import { dtypeInfo } from '../../core/dtype.js';
import type { Diagnostic } from '../../core/errors.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { modelTensorContext, tensorDType, tensorFromProto, tensorShape } from '../../formats/onnx/tensor.js';
import { initKernels } from '../../kernels/loader.js';
import { chooseQuantParams, chooseQuantParamsAxis, dequantizeLinear, quantizeLinear } from '../../kernels/quantize.js';
import { minMax, minMaxAxis } from '../../kernels/stats.js';
import { errorStats } from '../../eval/metrics.js';
import { sizeReport, tensorBytes, type SizeReport } from '../report.js';
import { bytesOf, constantNode, raiseIr } from './int4.js';
import { defaultOpset, findWeightCandidates, subgraphs, uniqueNamer, type WeightCandidate } from '../graph.js';

export type WeightQType = 'int8' | 'uint8';

export interface QuantizeWeightsOptions {
  dtype: WeightQType;
  /** One scale (and zero point) per output channel instead of one per tensor (needs opset ≥ 13). */
  perChannel: boolean;
  /** Symmetric range (int8: zero point 0, codes −127..127; uint8: zero point 128). */
  symmetric: boolean;
  /** Leave weights alone by weight name, consumer node name, or consumer op type. */
  exclude?: { names?: string[]; opTypes?: string[] };
  /** Skip weights with fewer elements than this (default 16). */
  minElements?: number;
}

export interface QuantizedTensor {
  name: string;
  /** Op types of the registered consumers, e.g. "Conv" or "MatMul,Gather". */
  op: string;
  /** Graph the weight lives in ("graph", "graph/If_0:then_branch", …). */
  scope: string;
  kind: 'initializer' | 'constant';
  /** 'dq': DequantizeLinear; 'cast-mul': Cast → (Sub) → Mul for opsets without (per-axis) DequantizeLinear. */
  form: 'dq' | 'cast-mul';
  shape: number[];
  scheme: 'per-channel' | 'per-tensor';
  axis?: number;
  dtype: WeightQType;
  symmetric: boolean;
  bytesBefore: number;
  bytesAfter: number;
  /** Weight-space error of dequantize(quantize(W)) against W. */
  maxAbs: number;
  meanAbs: number;
  snrDb: number;
  cosine: number;
}

export interface SkippedTensor {
  name: string;
  op: string;
  scope: string;
  reason: string;
}

export interface QuantizeWeightsReport {
  options: { dtype: WeightQType; perChannel: boolean; symmetric: boolean; minElements: number };
  quantized: QuantizedTensor[];
  skipped: SkippedTensor[];
  size: SizeReport;
  diagnostics: Diagnostic[];
}

type Candidate = WeightCandidate;

const Q_ONNX: Record<WeightQType, number> = { int8: dtypeInfo('int8').onnx, uint8: dtypeInfo('uint8').onnx };

function checkOptions(o: QuantizeWeightsOptions): number {
  if (o.dtype !== 'int8' && o.dtype !== 'uint8') {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `weight-only quantization to '${String(o.dtype)}' is not supported (int8 or uint8)`);
  }
  const minElements = o.minElements ?? 16;
  if (!Number.isSafeInteger(minElements) || minElements < 1) {
    throw new ModelsmithError(ErrorCodes.USAGE, `minElements must be a positive integer, got ${String(o.minElements)}`);
  }
  return minElements;
}

/**
 * Quantize the weights of `model` in place (the same object is returned). Every weight that is not
 * quantized is listed in `report.skipped` with the reason.
 */
export async function quantizeWeights(model: OnnxModel, opts: QuantizeWeightsOptions): Promise<{ model: OnnxModel; report: QuantizeWeightsReport }> {
  const minElements = checkOptions(opts);
  await initKernels();
  const proto = model.proto;
  const before = tensorBytes(model);
  const diagnostics: Diagnostic[] = [];
  const quantized: QuantizedTensor[] = [];
  const skipped: SkippedTensor[] = [];
  const exNames = new Set(opts.exclude?.names ?? []);
  const exOps = new Set(opts.exclude?.opTypes ?? []);
  const candidates = findWeightCandidates(proto);
  const opset = defaultOpset(proto);
  const report = (): QuantizeWeightsReport => ({
    options: { dtype: opts.dtype, perChannel: opts.perChannel, symmetric: opts.symmetric, minElements },
    quantized,
    skipped,
    size: sizeReport(before, tensorBytes(model)),
    diagnostics,
  });
  const opsOf = (c: Candidate): string => [...new Set(c.uses.map((u) => u.node.opType))].join(',');

  if (opset === undefined || opset < 7) {
    diagnostics.push({
      level: 'warning',
      code: 'quantize.opset_too_old',
      message: `the model imports ai.onnx opset ${opset ?? '(none)'}; dequantizing needs opset 7 (Cast/Mul with broadcasting) or 10 (DequantizeLinear), so no weight was quantized`,
    });
    for (const c of candidates) skipped.push({ name: c.name, op: opsOf(c), scope: c.frame.scope, reason: `ai.onnx opset ${opset ?? 'missing'} < 7` });
    return { model, report: report() };
  }
  // DequantizeLinear: per tensor from opset 10, per axis from 13. Otherwise Cast → (Sub) → Mul, which
  // computes the same (q - zp) * scale in float32 and broadcasts per-channel scales; the opset is not
  // raised (ops such as Unsqueeze, Split, Slice, Clip changed signatures since then).
  const form: 'dq' | 'cast-mul' = opset >= 13 || (opset >= 10 && !opts.perChannel) ? 'dq' : 'cast-mul';
  if (form === 'cast-mul') {
    diagnostics.push({
      level: 'info',
      code: 'quantize.cast_mul_form',
      message: `ai.onnx opset ${opset} has no ${opset < 10 ? 'DequantizeLinear' : 'per-axis DequantizeLinear'}; weights are dequantized with Cast → Sub → Mul nodes instead (same values; the opset is not raised)`,
    });
  }
  const perChannel = opts.perChannel;

  const unique = uniqueNamer(proto);
  const ctx = modelTensorContext(model);
  /** graph → DequantizeLinear nodes to put first. */
  const headNodes = new Map<GraphProto, NodeProto[]>();
  /** Constant node → nodes that replace it. */
  const replaceNodes = new Map<NodeProto, NodeProto[]>();
  /** initializer → tensors that replace it. */
  const replaceInits = new Map<TensorProto, TensorProto[]>();
  let addedInitializers = false;

  for (const c of candidates) {
    const op = opsOf(c);
    const skip = (reason: string): void => {
      skipped.push({ name: c.name, op, scope: c.frame.scope, reason });
    };
    const excluded = exNames.has(c.name) || c.uses.some((u) => exOps.has(u.node.opType) || (u.node.name !== '' && exNames.has(u.node.name)));
    if (excluded) { skip('excluded'); continue; }
    const dtype = tensorDType(c.proto, model.path);
    if (dtype !== 'float32') { skip(`dtype ${dtype} (only float32 weights are quantized)`); continue; }
    const shape = tensorShape(c.proto, model.path);
    if (shape.length < 2) { skip(`rank ${shape.length} (< 2)`); continue; }
    const count = shape.reduce((a, d) => a * d, 1);
    if (count < minElements) { skip(`${count} elements (< ${minElements})`); continue; }

    const t = await tensorFromProto(c.proto, ctx);
    const x = typedView(t) as Float32Array;
    const finite = allFinite(x);
    if (!finite) { skip('holds NaN or infinite values'); continue; }

    const axis = c.uses[0]!.axis(shape.length);
    const channel = perChannel && axis >= 0 && axis < shape.length;
    let scale: number | Float32Array;
    let zp: number | Int32Array;
    if (channel) {
      const mm = minMaxAxis(x, shape, axis);
      const p = chooseQuantParamsAxis(mm.min, mm.max, opts.dtype, opts.symmetric);
      scale = p.scales;
      zp = p.zeroPoints;
    } else {
      const mm = minMax(x);
      const p = chooseQuantParams(mm.min, mm.max, opts.dtype, opts.symmetric);
      scale = p.scale;
      zp = p.zeroPoint;
    }
    const params = channel ? { type: opts.dtype, scale, zeroPoint: zp, shape, axis } : { type: opts.dtype, scale, zeroPoint: zp, shape };
    const q = quantizeLinear(x, params);
    const err = errorStats(x, dequantizeLinear(q, params));

    const qName = unique(`${c.name}_quantized`);
    const sName = unique(`${c.name}_scale`);
    const zName = unique(`${c.name}_zero_point`);
    const pDims = channel ? [BigInt(shape[axis]!)] : [];
    const scales = typeof scale === 'number' ? Float32Array.of(scale) : scale;
    const zpsArr = typeof zp === 'number' ? [zp] : Array.from(zp);
    const zBytes = opts.dtype === 'int8' ? new Uint8Array(Int8Array.from(zpsArr).buffer) : Uint8Array.from(zpsArr);
    const qT = create(TensorProtoSchema, { name: qName, dims: shape.map((d) => BigInt(d)), dataType: Q_ONNX[opts.dtype], rawData: new Uint8Array(q.buffer as ArrayBuffer, q.byteOffset, q.byteLength) });
    const sT = create(TensorProtoSchema, { name: sName, dims: pDims, dataType: dtypeInfo('float32').onnx, rawData: bytesOf(scales) });
    const deq: NodeProto[] = [];
    let zT = create(TensorProtoSchema, { name: zName, dims: pDims, dataType: Q_ONNX[opts.dtype], rawData: zBytes as Uint8Array<ArrayBuffer> });
    let sTensor = sT;
    let hasZp = true;
    if (form === 'dq') {
      deq.push(create(NodeProtoSchema, {
        opType: 'DequantizeLinear',
        name: unique(`${c.name}_DequantizeLinear`),
        input: [qName, sName, zName],
        output: [c.name],
        attribute: channel ? [create(AttributeProtoSchema, { name: 'axis', type: AttributeProto_AttributeType.INT, i: BigInt(axis) })] : [],
      }));
    } else {
      // Scales and zero points shaped to broadcast against the weight: C at `axis`, 1 elsewhere.
      const bDims = channel ? shape.map((d, i) => BigInt(i === axis ? d : 1)) : [];
      sTensor = create(TensorProtoSchema, { name: sName, dims: bDims, dataType: dtypeInfo('float32').onnx, rawData: bytesOf(scales) });
      zT = create(TensorProtoSchema, { name: zName, dims: bDims, dataType: dtypeInfo('float32').onnx, rawData: bytesOf(Float32Array.from(zpsArr)) });
      hasZp = zpsArr.some((z) => z !== 0);
      const castOut = unique(`${c.name}_cast`);
      deq.push(create(NodeProtoSchema, {
        opType: 'Cast', name: unique(`${c.name}_Cast`), input: [qName], output: [castOut],
        attribute: [create(AttributeProtoSchema, { name: 'to', type: AttributeProto_AttributeType.INT, i: BigInt(dtypeInfo('float32').onnx) })],
      }));
      let mulIn = castOut;
      if (hasZp) {
        mulIn = unique(`${c.name}_shifted`);
        deq.push(create(NodeProtoSchema, { opType: 'Sub', name: unique(`${c.name}_Sub`), input: [castOut, zName], output: [mulIn] }));
      }
      deq.push(create(NodeProtoSchema, { opType: 'Mul', name: unique(`${c.name}_Mul`), input: [mulIn, sName], output: [c.name] }));
    }
    const params3 = hasZp ? [qT, sTensor, zT] : [qT, sTensor];

    if (c.kind === 'initializer') {
      replaceInits.set(c.proto, params3);
      const list = headNodes.get(c.frame.graph) ?? [];
      list.push(...deq);
      headNodes.set(c.frame.graph, list);
      addedInitializers = true;
    } else {
      replaceNodes.set(c.constNode!, [...params3.map((t) => constantNode(t, unique(`${t.name}_Constant`))), ...deq]);
    }
    const bytesAfter = params3.reduce((a, t) => a + t.rawData.byteLength, 0);
    const entry: QuantizedTensor = {
      name: c.name, op, scope: c.frame.scope, kind: c.kind, form, shape, scheme: channel ? 'per-channel' : 'per-tensor',
      dtype: opts.dtype, symmetric: opts.symmetric, bytesBefore: x.byteLength, bytesAfter,
      maxAbs: err.maxAbs, meanAbs: err.meanAbs, snrDb: err.snrDb, cosine: err.cosine,
    };
    if (channel) entry.axis = axis;
    quantized.push(entry);
  }

  // Apply the edits graph by graph.
  const edit = (g: GraphProto): void => {
    if (g.initializer.some((t) => replaceInits.has(t))) {
      const removed = new Set(g.initializer.filter((t) => replaceInits.has(t)).map((t) => t.name));
      g.initializer = g.initializer.flatMap((t) => replaceInits.get(t) ?? [t]);
      g.input = g.input.filter((v) => !removed.has(v.name));
    }
    if (g.node.some((n) => replaceNodes.has(n))) g.node = g.node.flatMap((n) => replaceNodes.get(n) ?? [n]);
    const head = headNodes.get(g);
    if (head) g.node = [...head, ...g.node];
    for (const n of g.node) subgraphs(n).forEach(edit);
  };
  if (proto.graph) edit(proto.graph);

  if (addedInitializers) raiseIr(proto, diagnostics);
  return { model, report: report() };
}
