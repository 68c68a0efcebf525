/**
 * Constant inputs channel pruning has to slice, wherever they come from. Besides initializers and
 * Constant nodes, exported CNNs hold parameters as small constant expressions: the ONNX "light"
 * test models replace every weight by ConstantOfShape(shape initializer), and caffe2 exports feed
 * per-channel scales through Unsqueeze. Slicing such a parameter means editing its root: the bytes
 * of a tensor, or the dims listed in a ConstantOfShape shape.
 */
import type { NodeProto, TensorProto } from 'onnx-buf';
import { dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { isExternal, tensorDType, tensorFromProtoSync, tensorShape } from '../../formats/onnx/tensor.js';
import { f16BitsToF32Bits } from '../../kernels/reference/cast.js';
import { constantTensor } from '../graph.js';
import { isDefaultDomain } from '../quantize/registry.js';
import { intsAttr, type GraphIndex } from './graph-index.js';

/** Where the bytes (or the dims) of a parameter live. */
export type ParamRoot =
  | { kind: 'tensor'; tp: TensorProto; label: string }
  | { kind: 'fill'; shapeTp: TensorProto; node: NodeProto; fill: number; label: string };

export interface Param {
  /** The value read by the consuming node. */
  name: string;
  shape: number[];
  root: ParamRoot;
  /** Param axis → root axis; -1 for an axis Unsqueeze inserted (always length 1). */
  axisMap: number[];
  /** Values from the consumer's input back to the root: each must have a single reader to edit in place. */
  chain: string[];
}

/** ConstantOfShape shapes longer than this are not weights. */
const MAX_FILL_RANK = 8;
/** Dims of a ConstantOfShape shape above this are not believed (nothing is allocated for them, but counts derive from them). */
const MAX_FILL_DIM = 0x7fffffff;
const MAX_CHAIN = 16;

/** The float value of element 0 of a small tensor (ConstantOfShape `value`), or undefined. */
function scalarValue(tp: TensorProto, path: string): number | undefined {
  const t = tensorFromProtoSync(tp, { path });
  if (t.data.byteLength === 0) return undefined;
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const read = elementReader(t.dtype);
  return read ? read(dv, 0) : undefined;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Reads element i of a little-endian buffer as a number; undefined for dtypes not ranked/filled here. */
export function elementReader(dtype: DType): ((dv: DataView, i: number) => number) | undefined {
  switch (dtype) {
    case 'float32': return (dv, i) => dv.getFloat32(i * 4, true);
    case 'float64': return (dv, i) => dv.getFloat64(i * 8, true);
    case 'float16': return (dv, i) => { scratchU32[0] = f16BitsToF32Bits(dv.getUint16(i * 2, true)); return scratchF32[0]!; };
    case 'bfloat16': return (dv, i) => { scratchU32[0] = dv.getUint16(i * 2, true) << 16; return scratchF32[0]!; };
    case 'int8': return (dv, i) => dv.getInt8(i);
    case 'uint8': return (dv, i) => dv.getUint8(i);
    case 'int32': return (dv, i) => dv.getInt32(i * 4, true);
    case 'int64': return (dv, i) => Number(dv.getBigInt64(i * 8, true));
    default: return undefined;
  }
}

/** The int64 values of a small inline 1-D tensor (a shape or axes list), or undefined. */
export function smallInt64s(tp: TensorProto, path: string, max: number): bigint[] | undefined {
  if (isExternal(tp) || tensorDType(tp, path) !== 'int64') return undefined;
  const shape = tensorShape(tp, path);
  if (shape.length !== 1 || shape[0]! > max) return undefined;
  const t = tensorFromProtoSync(tp, { path });
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out: bigint[] = [];
  for (let i = 0; i < shape[0]!; i++) out.push(dv.getBigInt64(i * 8, true));
  return out;
}

/**
 * Resolve a value to the constant expression defining it, or undefined when it is not one we can
 * slice (a computed value, an If output, …). Malformed tensors throw ModelsmithError.
 */
export function resolveParam(idx: GraphIndex, name: string, depth = 0): Param | undefined {
  if (!name || depth > MAX_CHAIN) return undefined;
  const prod = idx.producer.get(name);
  if (!prod) {
    const tp = idx.inits.get(name);
    if (!tp) return undefined;
    const shape = tensorShape(tp, idx.path);
    return { name, shape, root: { kind: 'tensor', tp, label: name }, axisMap: shape.map((_, i) => i), chain: [name] };
  }
  const n = prod.node;
  if (!isDefaultDomain(n.domain) || prod.output !== 0) return undefined;
  if (n.opType === 'Constant') {
    const tp = constantTensor(n);
    if (!tp) return undefined;
    const shape = tensorShape(tp, idx.path);
    return { name, shape, root: { kind: 'tensor', tp, label: name }, axisMap: shape.map((_, i) => i), chain: [name] };
  }
  if (n.opType === 'ConstantOfShape') {
    const s = resolveParam(idx, n.input[0] ?? '', depth + 1);
    if (!s || s.root.kind !== 'tensor' || s.shape.length !== 1) return undefined;
    const dims = smallInt64s(s.root.tp, idx.path, MAX_FILL_RANK);
    if (!dims || dims.some((d) => d < 0n || d > BigInt(MAX_FILL_DIM))) return undefined;
    const shape = dims.map(Number);
    const v = n.attribute.find((a) => a.name === 'value')?.t;
    const fill = v ? scalarValue(v, idx.path) : 0;
    if (fill === undefined) return undefined;
    return { name, shape, root: { kind: 'fill', shapeTp: s.root.tp, node: n, fill, label: name }, axisMap: shape.map((_, i) => i), chain: [name, ...s.chain] };
  }
  if (n.opType === 'Unsqueeze') {
    const inner = resolveParam(idx, n.input[0] ?? '', depth + 1);
    if (!inner) return undefined;
    let axes: number[] | undefined;
    if (idx.opset < 13) axes = intsAttr(n, 'axes');
    else {
      const a = resolveParam(idx, n.input[1] ?? '', depth + 1);
      const vals = a && a.root.kind === 'tensor' ? smallInt64s(a.root.tp, idx.path, MAX_FILL_RANK) : undefined;
      axes = vals?.map(Number);
    }
    if (!axes) return undefined;
    const rank = inner.shape.length + axes.length;
    if (rank > MAX_FILL_RANK) return undefined;
    const norm = axes.map((a) => (a < 0 ? a + rank : a));
    if (norm.some((a) => !Number.isSafeInteger(a) || a < 0 || a >= rank) || new Set(norm).size !== norm.length) return undefined;
    const shape: number[] = [];
    const axisMap: number[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) {
      if (norm.includes(i)) { shape.push(1); axisMap.push(-1); } else { shape.push(inner.shape[k]!); axisMap.push(inner.axisMap[k]!); k++; }
    }
    return { name, shape, root: inner.root, axisMap, chain: [name, ...inner.chain] };
  }
  return undefined;
}

/** Why the root of `p` cannot be sliced here, or undefined when it can. Decodes the tensor to validate it. */
export function unsliceable(p: Param, path: string): string | undefined {
  if (p.root.kind === 'fill') return undefined;
  const tp = p.root.tp;
  if (isExternal(tp)) return `'${p.root.label}' keeps its data in an external file (load external data into the model first)`;
  const dtype = tensorDType(tp, path);
  const bits = dtypeInfo(dtype).bits;
  if (bits < 8) return `'${p.root.label}' has dtype ${dtype} (strings and sub-byte types are not sliced)`;
  tensorFromProtoSync(tp, { path }); // size and storage checks (throws E_TENSOR_SIZE etc.)
  return undefined;
}

/**
 * L1 norm of every slice of `p` along `axis` (one per output channel). Unsqueeze keeps the element
 * order, so the root's bytes are read in the param's own shape. NaN norms stay NaN (ranked largest).
 */
export function channelL1(p: Param, axis: number, path: string): Float64Array {
  const shape = p.shape;
  const c = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((a, d) => a * d, 1);
  const outer = shape.slice(0, axis).reduce((a, d) => a * d, 1);
  const out = new Float64Array(c);
  if (p.root.kind === 'fill') {
    out.fill(Math.abs(p.root.fill) * inner * outer);
    return out;
  }
  const t = tensorFromProtoSync(p.root.tp, { path });
  const read = elementReader(t.dtype);
  if (!read || !dtypeInfo(t.dtype).isFloat) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `cannot rank channels of a ${t.dtype} weight (float32, float16, bfloat16, float64 only)`, { format: 'onnx', path, tensor: p.root.label });
  }
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < c; k++) {
      let s = 0;
      const base = (o * c + k) * inner;
      for (let j = 0; j < inner; j++) s += Math.abs(read(dv, base + j));
      out[k]! += s;
    }
  }
  return out;
}

/** Remove the listed indices along each axis of C-order bytes; returns the new bytes and shape. */
export function sliceBytes(data: Uint8Array, shape: number[], elemBytes: number, remove: Map<number, Set<number>>): { data: Uint8Array<ArrayBuffer>; shape: number[] } {
  let cur: Uint8Array = data;
  const dims = shape.slice();
  for (const [axis, drop] of [...remove.entries()].sort((a, b) => a[0] - b[0])) {
    const len = dims[axis]!;
    const keep: number[] = [];
    for (let i = 0; i < len; i++) if (!drop.has(i)) keep.push(i);
    const inner = dims.slice(axis + 1).reduce((a, d) => a * d, 1) * elemBytes;
    const outer = dims.slice(0, axis).reduce((a, d) => a * d, 1);
    const next = new Uint8Array(outer * keep.length * inner);
    let w = 0;
    for (let o = 0; o < outer; o++) {
      const base = o * len * inner;
      for (const k of keep) {
        next.set(cur.subarray(base + k * inner, base + (k + 1) * inner), w);
        w += inner;
      }
    }
    cur = next;
    dims[axis] = keep.length;
  }
  const out = new Uint8Array(cur.byteLength);
  out.set(cur);
  return { data: out, shape: dims };
}
