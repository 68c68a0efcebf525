/**
 * The graph side of weight-only quantization, shared by the in-memory pass (weight.ts) and the
 * streaming one (weight-stream.ts): for one quantized weight, the codes/scale/zero-point tensors and
 * the nodes that turn them back into the float weight under its own name (DequantizeLinear, or
 * Cast → Sub → Mul below the opsets that have it), recorded as edits; then all edits applied at once,
 * graph by graph (nothing moves while candidates are still being read).
 */
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  NodeProtoSchema,
  TensorProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { dtypeInfo } from '../../core/dtype.js';
import type { Diagnostic } from '../../core/errors.js';
import { errorStatsFromSums } from '../../eval/metrics.js';
import { tensorDType, tensorShape } from '../../formats/onnx/tensor.js';
import { subgraphs, type WeightCandidate } from '../graph.js';
import { bytesOf, constantNode } from './int4.js';
import type { QuantizedTensor, WeightQType } from './weight.js';

const Q_ONNX: Record<WeightQType, number> = { int8: dtypeInfo('int8').onnx, uint8: dtypeInfo('uint8').onnx };
const FLOAT = dtypeInfo('float32').onnx;

/** Whether the options leave `c` alone: by its name, a consumer's name or a consumer's op type. */
export function isExcluded(c: WeightCandidate, names: ReadonlySet<string>, ops: ReadonlySet<string>): boolean {
  return names.has(c.name) || c.uses.some((u) => ops.has(u.node.opType) || (u.node.name !== '' && names.has(u.node.name)));
}

/**
 * Why a (not excluded) candidate is not quantized — dtype, rank, size — or its shape, element count
 * and the axis of its per-channel scales (undefined: one scale). Both weight passes decide this here.
 */
export function weightPlan(c: WeightCandidate, path: string | undefined, minElements: number, perChannel: boolean): { skip: string } | { shape: number[]; count: number; axis: number | undefined } {
  const dtype = tensorDType(c.proto, path);
  if (dtype !== 'float32') return { skip: `dtype ${dtype} (only float32 weights are quantized)` };
  const shape = tensorShape(c.proto, path);
  if (shape.length < 2) return { skip: `rank ${shape.length} (< 2)` };
  const count = shape.reduce((a, d) => a * d, 1);
  if (count < minElements) return { skip: `${count} elements (< ${minElements})` };
  const axis = c.uses[0]!.axis(shape.length);
  return { shape, count, axis: perChannel && axis >= 0 && axis < shape.length ? axis : undefined };
}

/** The op types reading a candidate weight, for reports. */
export function candidateOps(c: WeightCandidate): string {
  return [...new Set(c.uses.map((u) => u.node.opType))].join(',');
}

/**
 * How weights are dequantized at `opset`, pushing the diagnostic that explains it; undefined below
 * opset 7 (no broadcasting Mul: nothing can be quantized, also said by a diagnostic).
 * DequantizeLinear: per tensor from opset 10, per axis from 13. Otherwise Cast → (Sub) → Mul, which
 * computes the same (q - zp) * scale in float32 and broadcasts per-channel scales; the opset is not
 * raised (ops such as Unsqueeze, Split, Slice, Clip changed signatures since then).
 */
export function dequantizeForm(opset: number | undefined, perChannel: boolean, diagnostics: Diagnostic[]): 'dq' | 'cast-mul' | undefined {
  if (opset === undefined || opset < 7) {
    diagnostics.push({
      level: 'warning',
      code: 'quantize.opset_too_old',
      message: `the model imports ai.onnx opset ${opset ?? '(none)'}; dequantizing needs opset 7 (Cast/Mul with broadcasting) or 10 (DequantizeLinear), so no weight was quantized`,
    });
    return undefined;
  }
  const form: 'dq' | 'cast-mul' = opset >= 13 || (opset >= 10 && !perChannel) ? 'dq' : 'cast-mul';
  if (form === 'cast-mul') {
    diagnostics.push({
      level: 'info',
      code: 'quantize.cast_mul_form',
      message: `ai.onnx opset ${opset} has no ${opset < 10 ? 'DequantizeLinear' : 'per-axis DequantizeLinear'}; weights are dequantized with Cast → Sub → Mul nodes instead (same values; the opset is not raised)`,
    });
  }
  return form;
}

export interface WeightEdits {
  /** graph → dequantize nodes to put first. */
  headNodes: Map<GraphProto, NodeProto[]>;
  /** Constant node → nodes that replace it. */
  replaceNodes: Map<NodeProto, NodeProto[]>;
  /** initializer → tensors that replace it. */
  replaceInits: Map<TensorProto, TensorProto[]>;
  addedInitializers: boolean;
}

export function newWeightEdits(): WeightEdits {
  return { headNodes: new Map(), replaceNodes: new Map(), replaceInits: new Map(), addedInitializers: false };
}

export interface QuantizedWeight {
  scale: number | Float32Array;
  zp: number | Int32Array;
  /** Error sums of the fused quantize kernel (for the report). */
  sums: Parameters<typeof errorStatsFromSums>[0];
  /** Puts the codes into the quantized tensor (raw_data, or a spilled external reference). */
  fill(q: TensorProto): void;
}

export interface WeightEditArgs {
  c: WeightCandidate;
  op: string;
  shape: number[];
  count: number;
  /** Channel axis when per-channel, else undefined. */
  axis: number | undefined;
  form: 'dq' | 'cast-mul';
  dtype: WeightQType;
  symmetric: boolean;
  unique: (base: string) => string;
}

/** Records the replacement of one weight and returns its report entry. */
export function recordQuantizedWeight(edits: WeightEdits, q: QuantizedWeight, a: WeightEditArgs): QuantizedTensor {
  const { c, shape, axis, unique } = a;
  const channel = axis !== undefined;
  const err = errorStatsFromSums(q.sums);
  const qName = unique(`${c.name}_quantized`);
  const sName = unique(`${c.name}_scale`);
  const zName = unique(`${c.name}_zero_point`);
  const pDims = channel ? [BigInt(shape[axis]!)] : [];
  const scales = typeof q.scale === 'number' ? Float32Array.of(q.scale) : q.scale;
  const zpsArr = typeof q.zp === 'number' ? [q.zp] : Array.from(q.zp);
  const zBytes = a.dtype === 'int8' ? new Uint8Array(Int8Array.from(zpsArr).buffer) : Uint8Array.from(zpsArr);
  const qT = create(TensorProtoSchema, { name: qName, dims: shape.map((d) => BigInt(d)), dataType: Q_ONNX[a.dtype] });
  q.fill(qT);
  const deq: NodeProto[] = [];
  let sT = create(TensorProtoSchema, { name: sName, dims: pDims, dataType: FLOAT, rawData: bytesOf(scales) });
  let zT = create(TensorProtoSchema, { name: zName, dims: pDims, dataType: Q_ONNX[a.dtype], rawData: zBytes as Uint8Array<ArrayBuffer> });
  let hasZp = true;
  if (a.form === 'dq') {
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
    sT = create(TensorProtoSchema, { name: sName, dims: bDims, dataType: FLOAT, rawData: bytesOf(scales) });
    zT = create(TensorProtoSchema, { name: zName, dims: bDims, dataType: FLOAT, rawData: bytesOf(Float32Array.from(zpsArr)) });
    hasZp = zpsArr.some((z) => z !== 0);
    const castOut = unique(`${c.name}_cast`);
    deq.push(create(NodeProtoSchema, {
      opType: 'Cast', name: unique(`${c.name}_Cast`), input: [qName], output: [castOut],
      attribute: [create(AttributeProtoSchema, { name: 'to', type: AttributeProto_AttributeType.INT, i: BigInt(FLOAT) })],
    }));
    let mulIn = castOut;
    if (hasZp) {
      mulIn = unique(`${c.name}_shifted`);
      deq.push(create(NodeProtoSchema, { opType: 'Sub', name: unique(`${c.name}_Sub`), input: [castOut, zName], output: [mulIn] }));
    }
    deq.push(create(NodeProtoSchema, { opType: 'Mul', name: unique(`${c.name}_Mul`), input: [mulIn, sName], output: [c.name] }));
  }
  const params = hasZp ? [qT, sT, zT] : [qT, sT];
  if (c.kind === 'initializer') {
    edits.replaceInits.set(c.proto, params);
    const list = edits.headNodes.get(c.frame.graph) ?? [];
    list.push(...deq);
    edits.headNodes.set(c.frame.graph, list);
    edits.addedInitializers = true;
  } else {
    edits.replaceNodes.set(c.constNode!, [...params.map((t) => constantNode(t, unique(`${t.name}_Constant`))), ...deq]);
  }
  // The codes may live in a spill file: count them by element, the small parameters by raw_data.
  const bytesAfter = a.count + params.slice(1).reduce((s, t) => s + t.rawData.byteLength, 0);
  const entry: QuantizedTensor = {
    name: c.name, op: a.op, scope: c.frame.scope, kind: c.kind, form: a.form, shape, scheme: channel ? 'per-channel' : 'per-tensor',
    dtype: a.dtype, symmetric: a.symmetric, bytesBefore: a.count * 4, bytesAfter,
    maxAbs: err.maxAbs, meanAbs: err.meanAbs, snrDb: err.snrDb, cosine: err.cosine,
  };
  if (channel) entry.axis = axis;
  return entry;
}

/** Applies the recorded edits to every graph of the model (subgraphs included). */
export function applyWeightEdits(proto: ModelProto, edits: WeightEdits): void {
  const edit = (g: GraphProto): void => {
    if (g.initializer.some((t) => edits.replaceInits.has(t))) {
      const removed = new Set(g.initializer.filter((t) => edits.replaceInits.has(t)).map((t) => t.name));
      g.initializer = g.initializer.flatMap((t) => edits.replaceInits.get(t) ?? [t]);
      // An initializer also listed as a graph input (old exporters) must not stay feedable.
      g.input = g.input.filter((v) => !removed.has(v.name));
    }
    if (g.node.some((n) => edits.replaceNodes.has(n))) g.node = g.node.flatMap((n) => edits.replaceNodes.get(n) ?? [n]);
    const head = edits.headNodes.get(g);
    if (head) g.node = [...head, ...g.node];
    for (const n of g.node) subgraphs(n).forEach(edit);
  };
  if (proto.graph) edit(proto.graph);
}
