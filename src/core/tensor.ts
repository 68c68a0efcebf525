import { byteLength, dtypeInfo, type DType } from './dtype.js';
import { ErrorCodes, ModelsmithError } from './errors.js';

/**
 * A tensor as every reader hands it over: little-endian, C-order bytes. Storage variants of the
 * formats (typed proto fields, strided torch views, legacy Caffe blobs) are normalised at the
 * reader boundary so passes see only this shape. String tensors carry their elements in `strings`.
 */
export interface Tensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Element bytes (empty for string tensors). May be a view into a larger buffer: never assume offset 0. */
  data: Uint8Array;
  /** Elements of a string tensor, as raw bytes (formats do not promise UTF-8). */
  strings?: Uint8Array[];
}

/** Element count of a shape, refusing negative dims and products past 2^53. */
export function numel(shape: readonly number[], ctx: { tensor?: string } = {}): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `invalid dimension ${d} in shape [${shape.join(',')}]`, ctx);
    }
    n *= d;
    if (!Number.isSafeInteger(n)) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `shape [${shape.join(',')}] has too many elements`, ctx);
    }
  }
  return n;
}

/** Expected byte size of a tensor's data (‑1 for strings). */
export function expectedBytes(dtype: DType, shape: readonly number[], ctx: { tensor?: string } = {}): number {
  return byteLength(dtype, numel(shape, ctx));
}

export function makeTensor(name: string, dtype: DType, shape: number[], data: Uint8Array): Tensor {
  const want = expectedBytes(dtype, shape, { tensor: name });
  if (want >= 0 && data.byteLength !== want) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${dtype}[${shape.join(',')}] needs ${want} bytes, got ${data.byteLength}`, { tensor: name });
  }
  return { name, dtype, shape, data };
}

type View = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/**
 * A typed-array view of a tensor's data. Copies only when the bytes are not aligned for the element
 * size (protobuf and zip offsets are arbitrary). float16/bfloat16 come back as their uint16 bit patterns.
 */
export function typedView(t: Tensor): View {
  const info = dtypeInfo(t.dtype);
  const ctors: Partial<Record<DType, { new (b: ArrayBufferLike, o: number, l: number): View; BYTES_PER_ELEMENT: number }>> = {
    float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
    int16: Int16Array, uint16: Uint16Array, float16: Uint16Array, bfloat16: Uint16Array,
    int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
    complex64: Float32Array, complex128: Float64Array,
  };
  const C = ctors[t.dtype];
  if (!C || info.bits < 8) {
    if (info.bits === 8) return t.data;
    throw new ModelsmithError(ErrorCodes.DTYPE, `no typed view for ${t.dtype}`, { tensor: t.name });
  }
  const d = t.data;
  const len = d.byteLength / C.BYTES_PER_ELEMENT;
  if (d.byteOffset % C.BYTES_PER_ELEMENT === 0) return new C(d.buffer, d.byteOffset, len);
  // new Uint8Array(d), not d.slice(): on a Node Buffer slice() is a view, not a copy at offset 0.
  const copy = new Uint8Array(d);
  return new C(copy.buffer, 0, len);
}

/**
 * True when no element is NaN or ±Inf. x * 0 is NaN exactly for those, so one branch-free pass
 * (cheaper than a call to Number.isFinite per element on large weights).
 */
export function allFinite(x: Float32Array | Float64Array): boolean {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * 0;
  return s === 0;
}
