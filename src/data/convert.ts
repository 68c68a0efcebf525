/**
 * Element conversion of data-set payloads: every numeric dtype becomes float32 for model inputs
 * (the engine computes in float32), integer dtypes become int32 class ids for labels.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { DType } from '../core/dtype.js';
import { typedView } from '../core/tensor.js';
import { f16BitsToF32Bits } from '../kernels/reference/cast.js';

const INPUT_DTYPES: ReadonlySet<DType> = new Set<DType>([
  'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool',
]);
const LABEL_DTYPES: ReadonlySet<DType> = new Set<DType>(['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64']);

export function checkInputDType(dtype: DType, path: string, tensor?: string): void {
  if (!INPUT_DTYPES.has(dtype)) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `${dtype} data cannot be a model input (numeric and bool only)`, { path, ...(tensor ? { tensor } : {}) });
  }
}

export function checkLabelDType(dtype: DType, path: string): void {
  if (!LABEL_DTYPES.has(dtype)) throw new ModelsmithError(ErrorCodes.DTYPE, `labels must be integers, got ${dtype}`, { path, tensor: 'labels' });
}

/** Little-endian payload bytes of `dtype` → float32, optionally divided by `divisor` (pixels / 255). */
export function toFloat32(bytes: Uint8Array, dtype: DType, divisor = 1): Float32Array {
  const view = typedView({ name: '', dtype, shape: [], data: bytes });
  const n = view.length;
  const out = new Float32Array(n);
  if (dtype === 'float16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = f16BitsToF32Bits((view as Uint16Array)[i]!);
  } else if (view instanceof BigInt64Array || view instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) out[i] = Number(view[i]!);
  } else {
    out.set(view as ArrayLike<number>);
  }
  // Division rather than multiplication by 1/divisor: the same bits as numpy's `x / 255`.
  if (divisor !== 1) for (let i = 0; i < n; i++) out[i] = out[i]! / divisor;
  return out;
}

/** Integer payload → int32 class ids; values outside int32 are refused (no class id is that big). */
export function toLabels(bytes: Uint8Array, dtype: DType, path: string, firstIndex: number): Int32Array {
  const view = typedView({ name: 'labels', dtype, shape: [], data: bytes });
  const out = new Int32Array(view.length);
  for (let i = 0; i < view.length; i++) {
    const v = Number(view[i]!);
    if (v < -(2 ** 31) || v >= 2 ** 31) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `label ${String(view[i])} of sample ${firstIndex + i} does not fit int32`, { path, tensor: 'labels' });
    }
    out[i] = v;
  }
  return out;
}
