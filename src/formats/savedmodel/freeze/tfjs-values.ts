/**
 * Tensor ↔ TF.js values. TF.js computes in float32, int32, bool and string only, so wider or
 * narrower types are mapped onto those on the way in (int64 with a range check: silently wrapping
 * a value would make the reference executor lie) and widened back on the way out where the graph
 * says the output was declared wider.
 */
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes, ModelsmithError, isModelsmithError } from '../../../core/errors.js';
import { expectedBytes, numel, typedView, type Tensor } from '../../../core/tensor.js';
import { bf16ToF32Ref, f16ToF32Ref, f64ToF32Ref, i32ToI64Ref, i64ToI32Ref } from '../../../kernels/reference/cast.js';

export type TfjsDtype = 'float32' | 'int32' | 'bool' | 'string';

export interface TfjsValues {
  dtype: TfjsDtype;
  shape: number[];
  /** Numeric values, or the raw bytes of each string element. */
  values: Float32Array | Int32Array | Uint8Array | Uint8Array[];
}

export const TFJS_FORMAT = 'tf-graphdef';

/** The TF.js dtype a tensor of `dtype` is computed in, or undefined when TF.js cannot hold it. */
export function tfjsDtypeOf(dtype: DType): TfjsDtype | undefined {
  switch (dtype) {
    case 'float32': case 'float64': case 'float16': case 'bfloat16': return 'float32';
    case 'int32': case 'int64': case 'int16': case 'int8': case 'uint8': case 'uint16': case 'uint32': case 'uint64': return 'int32';
    case 'bool': return 'bool';
    case 'string': return 'string';
    default: return undefined;
  }
}

function outOfRange(index: number, value: bigint | number, dtype: DType, tensor: string): never {
  throw new ModelsmithError(ErrorCodes.RANGE_CHECK, `${dtype} element ${index} is ${value}, outside TF.js's int32 range`, { format: TFJS_FORMAT, tensor });
}

/** Our tensor as the values TF.js is given (a copy: TF.js keeps what it is handed). */
export function toTfjsValues(t: Tensor): TfjsValues {
  const ctx = { format: TFJS_FORMAT, tensor: t.name };
  const dtype = tfjsDtypeOf(t.dtype);
  if (!dtype) throw new ModelsmithError(ErrorCodes.DTYPE, `TF.js has no dtype for ${t.dtype}`, ctx);
  const count = numel(t.shape, ctx);
  if (t.dtype === 'string') {
    const strings = t.strings ?? [];
    if (strings.length !== count) throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `string[${t.shape.join(',')}] has ${strings.length} elements`, ctx);
    return { dtype, shape: [...t.shape], values: strings };
  }
  const want = expectedBytes(t.dtype, t.shape, ctx);
  if (t.data.byteLength !== want) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${t.dtype}[${t.shape.join(',')}] needs ${want} bytes, got ${t.data.byteLength}`, ctx);
  }
  const view = typedView(t);
  let values: Float32Array | Int32Array | Uint8Array;
  switch (t.dtype) {
    case 'float32': values = Float32Array.from(view as Float32Array); break;
    case 'float64': values = f64ToF32Ref(view as Float64Array); break;
    case 'float16': values = f16ToF32Ref(view as Uint16Array); break;
    case 'bfloat16': values = bf16ToF32Ref(view as Uint16Array); break;
    case 'bool': values = Uint8Array.from(view as Uint8Array, (v) => (v ? 1 : 0)); break;
    case 'int64':
      try {
        values = i64ToI32Ref(view as BigInt64Array);
      } catch (e) {
        if (!isModelsmithError(e)) throw e;
        throw new ModelsmithError(ErrorCodes.RANGE_CHECK, `${e.message.replace(/^E_RANGE_CHECK: /, '')}: TF.js has no int64`, ctx);
      }
      break;
    case 'uint64': {
      const src = view as BigUint64Array;
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        if (src[i]! > 0x7fffffffn) outOfRange(i, src[i]!, t.dtype, t.name);
        out[i] = Number(src[i]!);
      }
      values = out;
      break;
    }
    case 'uint32': {
      const src = view as Uint32Array;
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        if (src[i]! > 0x7fffffff) outOfRange(i, src[i]!, t.dtype, t.name);
        out[i] = src[i]!;
      }
      values = out;
      break;
    }
    default: values = Int32Array.from(view as Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array); break;
  }
  return { dtype, shape: [...t.shape], values };
}

/**
 * A TF.js result as our tensor. `declared` is the dtype the graph gives the output: int32 results of
 * int64 outputs become int64 again, float32 results of float64 outputs float64; nothing else changes.
 */
export function fromTfjsValues(name: string, v: TfjsValues, declared?: DType): Tensor {
  const shape = [...v.shape];
  if (v.dtype === 'string') return { name, dtype: 'string', shape, data: new Uint8Array(0), strings: v.values as Uint8Array[] };
  if (v.dtype === 'int32' && declared === 'int64') {
    const wide = i32ToI64Ref(Int32Array.from(v.values as Int32Array));
    return { name, dtype: 'int64', shape, data: new Uint8Array(wide.buffer) };
  }
  if (v.dtype === 'float32' && declared === 'float64') {
    const wide = Float64Array.from(v.values as Float32Array);
    return { name, dtype: 'float64', shape, data: new Uint8Array(wide.buffer) };
  }
  const src = v.values as Float32Array | Int32Array | Uint8Array;
  const dtype: DType = v.dtype;
  // TF.js may return Float32Array for bool/int32 on some backends: normalise to the dtype's layout.
  const data = dtype === 'float32' ? Float32Array.from(src) : dtype === 'int32' ? Int32Array.from(src) : Uint8Array.from(src, (x) => (x ? 1 : 0));
  return { name, dtype, shape, data: new Uint8Array(data.buffer) };
}

/** Bytes of TF.js weightData for one value set (little-endian; strings as u32 length + bytes). */
export function weightBytes(v: TfjsValues): Uint8Array {
  if (v.dtype === 'string') {
    const strings = v.values as Uint8Array[];
    const total = strings.reduce((a, s) => a + 4 + s.length, 0);
    const out = new Uint8Array(total);
    const dv = new DataView(out.buffer);
    let o = 0;
    for (const s of strings) {
      dv.setUint32(o, s.length, true);
      out.set(s, o + 4);
      o += 4 + s.length;
    }
    return out;
  }
  const a = v.values as Float32Array | Int32Array | Uint8Array;
  // Typed arrays are host-endian; every platform TF.js runs on is little-endian, as TF.js assumes too.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
