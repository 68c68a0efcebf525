/**
 * Numpy-style (multidirectional) broadcasting for the elementwise ops and its adjoint, the sum over
 * broadcast axes that every backward of a broadcasting op needs. Loops walk the output with an
 * odometer over all but the last axis and a tight inner loop over the last one, so the common
 * [N, C] + [C] bias case runs as N plain loops.
 */
import { numel } from '../core/tensor.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

type NumArray = { readonly length: number; readonly [i: number]: number };
type NumOut = { [i: number]: number };

/** The broadcast shape of several shapes, or E_KERNEL_ARG naming the op and the shapes. */
export function broadcastDims(shapes: readonly (readonly number[])[], op: string): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i]!;
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) out[o] = d;
      else throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} do not broadcast`, { op });
    }
  }
  return out;
}

/** Element strides of `dims` laid against `outDims` (right-aligned), 0 where the axis is broadcast. */
export function alignedStrides(dims: readonly number[], outDims: readonly number[]): number[] {
  const r = outDims.length;
  const st = new Array<number>(r).fill(0);
  let s = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    const o = r - dims.length + i;
    st[o] = dims[i] === 1 ? 0 : s;
    s *= dims[i]!;
  }
  return st;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * One output row of a broadcast binary op: out[o + j] = op(A[pa + j·ia], B[pb + j·ib]) for j < n.
 * Hot ops pass their own row function with the arithmetic written out, so V8 compiles a tight
 * monomorphic loop for each; a per-element callback shared by every op would be megamorphic and
 * run ~20× slower.
 */
export type RowFn = (out: NumOut, o: number, A: NumArray, pa: number, ia: number, B: NumArray, pb: number, ib: number, n: number) => void;

/**
 * Applies `row` over the broadcast of aDims and bDims (outDims, already computed). Equal shapes and
 * scalar operands are one row; otherwise one row per position of all axes but the last.
 */
export function map2Rows(outDims: readonly number[], A: NumArray, aDims: readonly number[], B: NumArray, bDims: readonly number[], out: NumOut, row: RowFn): void {
  const n = numel(outDims);
  if (n === 0) return;
  const aFull = sameDims(aDims, outDims), bFull = sameDims(bDims, outDims);
  if ((aFull || A.length === 1) && (bFull || B.length === 1)) {
    row(out, 0, A, 0, aFull ? 1 : 0, B, 0, bFull ? 1 : 0, n);
    return;
  }
  const r = outDims.length;
  const sa = alignedStrides(aDims, outDims);
  const sb = alignedStrides(bDims, outDims);
  const inner = outDims[r - 1]!;
  const ia = sa[r - 1]!, ib = sb[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let pa = 0, pb = 0;
  for (let off = 0; off < n; off += inner) {
    row(out, off, A, pa, ia, B, pb, ib, inner);
    for (let d = r - 2; d >= 0; d--) {
      idx[d]!++;
      pa += sa[d]!;
      pb += sb[d]!;
      if (idx[d]! < outDims[d]!) break;
      pa -= sa[d]! * outDims[d]!;
      pb -= sb[d]! * outDims[d]!;
      idx[d] = 0;
    }
  }
}

/** `map2Rows` with a per-element function, for the cold paths (gradients of rarer ops, integer shape math). */
export function map2(
  outDims: readonly number[], A: NumArray, aDims: readonly number[], B: NumArray, bDims: readonly number[], out: NumOut,
  f: (x: number, y: number) => number,
): void {
  map2Rows(outDims, A, aDims, B, bDims, out, (o, off, X, pa, ia, Y, pb, ib, n) => {
    for (let j = 0; j < n; j++) o[off + j] = f(X[pa + j * ia]!, Y[pb + j * ib]!);
  });
}

const ZERO = [0];
const copyRow: RowFn = (out, o, A, pa, ia, _B, _pb, _ib, n) => {
  for (let j = 0; j < n; j++) out[o + j] = A[pa + j * ia]!;
};

/** X (xDims) broadcast up to outDims, as a new Float32Array. */
export function expandTo(X: NumArray, xDims: readonly number[], outDims: readonly number[]): Float32Array {
  const out = new Float32Array(numel(outDims));
  map2Rows(outDims, X, xDims, ZERO, [], out, copyRow);
  return out;
}

/**
 * The adjoint of broadcasting: X (xDims) summed down to `dims`, where `dims` broadcasts to xDims.
 * Accumulates in float64 so long reductions (a bias gradient over a large batch) keep float32 accuracy.
 */
export function sumTo(X: NumArray, xDims: readonly number[], dims: readonly number[]): Float32Array {
  if (sameDims(xDims, dims)) return Float32Array.from(X as ArrayLike<number>);
  return Float32Array.from(sumTo64(X, xDims, dims));
}

/** `sumTo` with the float64 sums themselves (integer reductions stay exact up to 2^53). */
export function sumTo64(X: NumArray, xDims: readonly number[], dims: readonly number[]): Float64Array {
  const n = numel(xDims);
  const m = numel(dims);
  if (sameDims(xDims, dims)) return Float64Array.from(X as ArrayLike<number>);
  const acc = new Float64Array(m);
  if (n > 0) {
    if (m === 1) {
      let s = 0;
      for (let i = 0; i < n; i++) s += X[i]!;
      acc[0] = s;
    } else {
      const r = xDims.length;
      const st = alignedStrides(dims, xDims);
      const inner = xDims[r - 1]!;
      const is = st[r - 1]!;
      const idx = new Array<number>(r).fill(0);
      let p = 0;
      for (let off = 0; off < n; off += inner) {
        for (let j = 0; j < inner; j++) acc[p + j * is]! += X[off + j]!;
        for (let d = r - 2; d >= 0; d--) {
          idx[d]!++;
          p += st[d]!;
          if (idx[d]! < xDims[d]!) break;
          p -= st[d]! * xDims[d]!;
          idx[d] = 0;
        }
      }
    }
  }
  return acc;
}
