/**
 * BlobProto → shape, dtype and little-endian bytes. A blob's shape is its BlobShape when present,
 * otherwise the legacy 4-D num/channels/height/width; the values are float `data` or `double_data`,
 * or — for blobs decoded from a caffemodel — a byte view kept by lazy-blobs.ts. Read values through
 * these helpers, not through `blob.data`.
 */
import { create } from '@bufbuild/protobuf';
import type { DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { BlobProtoSchema, BlobShapeSchema, type BlobProto } from './gen/caffe_pb.js';
import { lazyBlob } from './lazy-blobs.js';

/** Largest element count we accept for one blob (2^31 floats = 8 GiB, far above any protobuf file). */
const MAX_BLOB_ELEMENTS = 2 ** 31;

export interface BlobInfo {
  shape: number[];
  /** True when the shape came from the legacy num/channels/height/width fields. */
  legacy: boolean;
  dtype: DType;
  /** Number of stored values (may disagree with the shape in a damaged file: see checkBlob). */
  count: number;
}

export function blobShape(b: BlobProto, ctx: { path?: string; tensor?: string } = {}): { shape: number[]; legacy: boolean } {
  if (b.shape) {
    const shape = b.shape.dim.map((d) => {
      if (d < 0n || d > BigInt(MAX_BLOB_ELEMENTS)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `blob dimension ${d} out of range`, { format: 'caffemodel', ...ctx });
      return Number(d);
    });
    return { shape, legacy: false };
  }
  const dims = [b.num, b.channels, b.height, b.width];
  if (dims.some((d) => d < 0)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `negative legacy blob dimension in [${dims.join(', ')}]`, { format: 'caffemodel', ...ctx });
  return { shape: dims, legacy: true };
}

export function blobInfo(b: BlobProto, ctx: { path?: string; tensor?: string } = {}): BlobInfo {
  const { shape, legacy } = blobShape(b, ctx);
  const lazy = lazyBlob(b);
  if (lazy) return { shape, legacy, dtype: lazy.dtype, count: lazy.bytes.byteLength / (lazy.dtype === 'float64' ? 8 : 4) };
  const isDouble = b.data.length === 0 && b.doubleData.length > 0;
  return { shape, legacy, dtype: isDouble ? 'float64' : 'float32', count: isDouble ? b.doubleData.length : b.data.length };
}

/** Element count of a shape, with an overflow cap. */
export function shapeNumel(shape: readonly number[], ctx: { path?: string; tensor?: string } = {}): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > MAX_BLOB_ELEMENTS) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `blob shape [${shape.join(', ')}] has too many elements`, { format: 'caffemodel', ...ctx });
  }
  return n;
}

/** Throws E_TENSOR_SIZE when the stored value count disagrees with the shape. */
export function checkBlob(b: BlobProto, ctx: { path?: string; tensor?: string } = {}): BlobInfo {
  const info = blobInfo(b, ctx);
  const n = shapeNumel(info.shape, ctx);
  // A legacy blob with all four dims 0 and no data is an empty placeholder; anything else must agree.
  if (n !== info.count) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `blob shape [${info.shape.join(', ')}] needs ${n} values but ${info.count} are stored`, { format: 'caffemodel', ...ctx });
  }
  return info;
}

/** The blob's values as float32 (double blobs are rounded). */
export function blobFloat32(b: BlobProto): Float32Array {
  const lazy = lazyBlob(b);
  if (lazy) {
    const le = leBytes(lazy.bytes, lazy.dtype);
    return lazy.dtype === 'float32' ? new Float32Array(le.buffer, le.byteOffset, le.byteLength / 4) : Float32Array.from(new Float64Array(le.buffer, le.byteOffset, le.byteLength / 8));
  }
  return b.data.length > 0 || b.doubleData.length === 0 ? Float32Array.from(b.data) : Float32Array.from(b.doubleData);
}

/** Little-endian bytes of the blob in its own dtype. */
export function blobBytes(b: BlobProto): Uint8Array {
  const lazy = lazyBlob(b);
  if (lazy) return lazy.bytes;
  const info = blobInfo(b);
  const arr = info.dtype === 'float64' ? Float64Array.from(b.doubleData) : Float32Array.from(b.data);
  // Typed arrays use the platform's byte order; every supported engine is little-endian, but check.
  if (!LITTLE_ENDIAN) {
    const out = new Uint8Array(arr.byteLength);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < arr.length; i++) {
      if (info.dtype === 'float64') dv.setFloat64(i * 8, arr[i]!, true);
      else dv.setFloat32(i * 4, arr[i]!, true);
    }
    return out;
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** An aligned copy of little-endian bytes in the platform's byte order, ready for a typed-array view. */
function leBytes(bytes: Uint8Array, dtype: 'float32' | 'float64'): Uint8Array {
  const copy = new Uint8Array(bytes); // a copy, aligned, whatever `bytes` is (node Buffers too)
  if (!LITTLE_ENDIAN) {
    const w = dtype === 'float64' ? 8 : 4;
    for (let i = 0; i < copy.length; i += w) copy.subarray(i, i + w).reverse();
  }
  return copy;
}

/**
 * Squeeze leading 1s of a (typically legacy 4-D) shape down to `rank` — never a real dim.
 * Returns undefined when that is impossible (a leading dim > 1 would have to go).
 */
export function squeezeToRank(shape: readonly number[], rank: number): number[] | undefined {
  const s = [...shape];
  while (s.length > rank && s[0] === 1) s.shift();
  if (s.length > rank) return undefined;
  while (s.length < rank) s.unshift(1);
  return s;
}

/** A float32 BlobProto with a BlobShape (what current Caffe writes). */
export function makeBlob(shape: readonly number[], data: ArrayLike<number>): BlobProto {
  return create(BlobProtoSchema, { shape: create(BlobShapeSchema, { dim: shape.map((d) => BigInt(d)) }), data: Array.from(data) });
}
