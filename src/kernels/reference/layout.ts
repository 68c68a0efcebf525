/**
 * Plain-TypeScript twins of the layout kernels (assembly/layout.ts) and the shared planning: every
 * supported permutation is a batch of strided 2-D transposes (see `TransposePlan`). Elements are
 * moved as opaque 1, 2, 4 or 8 byte units, so any dtype (including NaN payloads) is copied bit-exactly.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

export type ElementArray =
  | Uint8Array | Int8Array | Uint8ClampedArray | Uint16Array | Int16Array
  | Uint32Array | Int32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

export type Layout4D = 'NCHW->NHWC' | 'NHWC->NCHW' | 'OIHW->HWIO' | 'HWIO->OIHW';

export interface LayoutOptionsBase {
  /** Element size in bytes when `src` holds raw bytes (Uint8Array) of a wider dtype; default: the array's own. */
  elementSize?: number;
}

/** dst[b*dstBatch + c*dstStride + r] = src[b*srcBatch + r*srcStride + c], counts in elements. */
export interface TransposePlan {
  batch: number; srcBatch: number; dstBatch: number;
  rows: number; cols: number; srcStride: number; dstStride: number;
}

const bad = (msg: string): ModelsmithError => new ModelsmithError(ErrorCodes.KERNEL_ARG, msg);

/** Element size and count of `src`, validated. */
export function elementInfo(src: ElementArray, opts?: LayoutOptionsBase): { es: number; count: number } {
  const es = opts?.elementSize ?? src.BYTES_PER_ELEMENT;
  if (es !== 1 && es !== 2 && es !== 4 && es !== 8) throw bad(`element size ${es} is not 1, 2, 4 or 8 bytes`);
  if (opts?.elementSize !== undefined && src.BYTES_PER_ELEMENT !== 1 && es !== src.BYTES_PER_ELEMENT) {
    throw bad(`elementSize ${es} given for a ${src.BYTES_PER_ELEMENT}-byte typed array (only raw byte arrays take elementSize)`);
  }
  if (src.byteLength % es !== 0) throw bad(`${src.byteLength} bytes is not a whole number of ${es}-byte elements`);
  return { es, count: src.byteLength / es };
}

function checkDims(dims: readonly number[], count: number, what: string): void {
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`${what}: bad dimensions [${dims.join(', ')}]`);
  const size = dims.reduce((a, d) => a * d, 1);
  if (size !== count) throw bad(`${what}: [${dims.join(', ')}] holds ${size} elements, input has ${count}`);
}

export function transposePlan(rows: number, cols: number, count: number): TransposePlan {
  checkDims([rows, cols], count, 'transpose');
  return { batch: 1, srcBatch: 0, dstBatch: 0, rows, cols, srcStride: cols, dstStride: rows };
}

/** Plan and output shape of a 4-D layout change. */
export function permutePlan(shape: readonly number[], layout: Layout4D, count: number): { plan: TransposePlan; shape: number[] } {
  if (shape.length !== 4) throw bad(`${layout}: shape must have 4 dimensions, got [${shape.join(', ')}]`);
  checkDims(shape, count, layout);
  const [a, b, c, d] = shape as [number, number, number, number];
  switch (layout) {
    case 'NCHW->NHWC': // per n: [C, HW] -> [HW, C]
      return { plan: { batch: a, srcBatch: b * c * d, dstBatch: b * c * d, rows: b, cols: c * d, srcStride: c * d, dstStride: b }, shape: [a, c, d, b] };
    case 'NHWC->NCHW': // per n: [HW, C] -> [C, HW]
      return { plan: { batch: a, srcBatch: b * c * d, dstBatch: b * c * d, rows: b * c, cols: d, srcStride: d, dstStride: b * c }, shape: [a, d, b, c] };
    case 'OIHW->HWIO': // [O, I, HW] -> [HW, I, O]: per i, transpose [O, HW] with strides I*HW and I*O
      return { plan: { batch: b, srcBatch: c * d, dstBatch: a, rows: a, cols: c * d, srcStride: b * c * d, dstStride: b * a }, shape: [c, d, b, a] };
    case 'HWIO->OIHW': // [HW, I, O] -> [O, I, HW]: per i, transpose [HW, O] with strides I*O and I*HW
      return { plan: { batch: c, srcBatch: d, dstBatch: a * b, rows: a * b, cols: d, srcStride: c * d, dstStride: c * a * b }, shape: [d, c, a, b] };
    default:
      throw bad(`unknown layout change '${String(layout)}'`);
  }
}

/** A fresh array of the same type and byte length as `src`. */
export function sameTypeLike<T extends ElementArray>(src: T): T {
  const Ctor = src.constructor as new (n: number) => T;
  return new Ctor(src.length);
}

/** Unsigned view with `es`-byte elements (8-byte elements as pairs of 32-bit words). */
function unitView(a: ElementArray, es: number): Uint8Array | Uint16Array | Uint32Array {
  const n = a.byteLength / Math.min(es, 4);
  if (es === 1) return new Uint8Array(a.buffer, a.byteOffset, n);
  if (es === 2) return new Uint16Array(a.buffer, a.byteOffset, n);
  return new Uint32Array(a.buffer, a.byteOffset, n);
}

export function runPlanRef(src: ElementArray, dst: ElementArray, es: number, p: TransposePlan): void {
  // A raw byte array need not be aligned for wider views: work on an aligned copy then.
  const aligned = src.byteOffset % es === 0 ? src : new Uint8Array(src.buffer, src.byteOffset, src.byteLength).slice();
  const s = unitView(aligned, es);
  const d = unitView(dst, es);
  const w = es === 8 ? 2 : 1; // 32-bit words per element
  for (let b = 0; b < p.batch; b++) {
    for (let r = 0; r < p.rows; r++) {
      for (let c = 0; c < p.cols; c++) {
        const si = (b * p.srcBatch + r * p.srcStride + c) * w;
        const di = (b * p.dstBatch + c * p.dstStride + r) * w;
        d[di] = s[si]!;
        if (w === 2) d[di + 1] = s[si + 1]!;
      }
    }
  }
}

/** [rows, cols] -> [cols, rows]. */
export function transpose2dRef<T extends ElementArray>(src: T, rows: number, cols: number, opts?: LayoutOptionsBase): T {
  const { es, count } = elementInfo(src, opts);
  const plan = transposePlan(rows, cols, count);
  const dst = sameTypeLike(src);
  runPlanRef(src, dst, es, plan);
  return dst;
}

/** 4-D layout change; returns the permuted data and its shape. */
export function permute4dRef<T extends ElementArray>(src: T, shape: readonly number[], layout: Layout4D, opts?: LayoutOptionsBase): { data: T; shape: number[] } {
  const { es, count } = elementInfo(src, opts);
  const { plan, shape: outShape } = permutePlan(shape, layout, count);
  const dst = sameTypeLike(src);
  runPlanRef(src, dst, es, plan);
  return { data: dst, shape: outShape };
}
