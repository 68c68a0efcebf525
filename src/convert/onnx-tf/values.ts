/**
 * Small numeric helpers over core Tensors: the converter folds shape arithmetic (Shape → Gather →
 * Concat → Reshape chains that exporters emit) at conversion time, so it needs the values of small
 * constant tensors as plain numbers and a way back.
 */
import { byteLength, dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel, typedView, type Tensor } from '../../core/tensor.js';

/** Largest constant the converter evaluates itself; bigger ones stay graph constants. */
export const MAX_FOLD_ELEMENTS = 4096;

export function tensorNumbers(t: Tensor): number[] {
  if (t.dtype === 'string' || t.dtype === 'float16' || t.dtype === 'bfloat16' || dtypeInfo(t.dtype).bits < 8) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot evaluate a ${t.dtype} constant at conversion time`, { format: 'onnx', tensor: t.name });
  }
  const v = typedView(t);
  const out = new Array<number>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Number(v[i]!);
  return out;
}

export function numbersTensor(name: string, dtype: DType, shape: number[], values: readonly number[]): Tensor {
  const n = numel(shape);
  const data = new Uint8Array(byteLength(dtype, n));
  const dv = new DataView(data.buffer);
  for (let i = 0; i < n; i++) {
    const x = values[i] ?? 0;
    switch (dtype) {
      case 'float32': dv.setFloat32(4 * i, x, true); break;
      case 'float64': dv.setFloat64(8 * i, x, true); break;
      case 'int32': dv.setInt32(4 * i, x, true); break;
      case 'uint32': dv.setUint32(4 * i, x, true); break;
      case 'int64': dv.setBigInt64(8 * i, BigInt(Math.trunc(x)), true); break;
      case 'uint64': dv.setBigUint64(8 * i, BigInt(Math.trunc(x)), true); break;
      case 'int16': dv.setInt16(2 * i, x, true); break;
      case 'uint16': dv.setUint16(2 * i, x, true); break;
      case 'int8': dv.setInt8(i, x); break;
      case 'uint8': dv.setUint8(i, x); break;
      case 'bool': dv.setUint8(i, x ? 1 : 0); break;
      default:
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot build a ${dtype} constant`, { format: 'onnx', tensor: name });
    }
  }
  return { name, dtype, shape, data };
}

/** C-order transpose of a constant, for pre-transposing weights (never done in the graph). */
export function transposeTensor(t: Tensor, perm: readonly number[]): Tensor {
  const es = byteLength(t.dtype, 1);
  const shape = perm.map((p) => t.shape[p]!);
  const inStrides = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((x, y) => x * y, 1));
  const n = numel(t.shape);
  const out = new Uint8Array(n * es);
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let k = 0; k < shape.length; k++) src += idx[k]! * inStrides[perm[k]!]!;
    out.set(t.data.subarray(src * es, src * es + es), o * es);
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k]! < shape[k]!) break;
      idx[k] = 0;
    }
  }
  return { name: t.name, dtype: t.dtype, shape, data: out };
}

/** numpy broadcasting of two static shapes (-1 = unknown dim); null when either rank is unknown. */
export function broadcastShapes(x: readonly number[] | null, y: readonly number[] | null): number[] | null {
  if (!x || !y) return null;
  const r = Math.max(x.length, y.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const p = x[x.length - r + i] ?? 1;
    const q = y[y.length - r + i] ?? 1;
    out.push(p === 1 ? q : q === 1 ? p : p === -1 ? q : p);
  }
  return out;
}

export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}
