/**
 * Plain-TypeScript twin of the stats kernels (assembly/stats.ts): same results bit for bit, used
 * by the conformance tests and as the definition of the semantics. Also holds the argument checks
 * shared by the kernel wrappers.
 *
 * Semantics: NaN values are skipped; when nothing is left (empty or all-NaN) min, max and absmax
 * are NaN. Zeros are ordered -0 < +0 (Math.min/Math.max, wasm f32.min/f32.max), so min of {+0, -0}
 * is -0 and max is +0. absmax = max(-min, max), which equals max |x| over the non-NaN values.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

export interface MinMax {
  min: number;
  max: number;
  absmax: number;
}

export interface AxisMinMax {
  min: Float32Array;
  max: Float32Array;
  absmax: Float32Array;
}

/** A tensor viewed as [outer, C, inner] around one axis. */
export interface AxisView {
  outer: number;
  C: number;
  inner: number;
  /** The axis, normalised to [0, rank). */
  axis: number;
}

export function kernelArg(message: string): ModelsmithError {
  return new ModelsmithError(ErrorCodes.KERNEL_ARG, message);
}

/** Check that `shape` is made of non-negative integers and holds exactly `length` elements. */
export function checkShape(shape: readonly number[], length: number): void {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw kernelArg(`bad dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  if (n !== length) throw kernelArg(`shape [${shape.join(', ')}] holds ${n} elements but the data has ${length}`);
}

/** Validate `shape` against `length` and resolve `axis` (negative counts from the end). */
export function axisView(shape: readonly number[], axis: number, length: number): AxisView {
  checkShape(shape, length);
  const rank = shape.length;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw kernelArg(`axis ${axis} out of range for rank ${rank}`);
  const a = axis < 0 ? axis + rank : axis;
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < a; i++) outer *= shape[i]!;
  for (let i = a + 1; i < rank; i++) inner *= shape[i]!;
  return { outer, C: shape[a]!, inner, axis: a };
}

/** Final step shared with the wrappers: accumulators that saw nothing (lo > hi) become NaN. */
export function finishMinMax(lo: number, hi: number): MinMax {
  if (lo > hi) return { min: NaN, max: NaN, absmax: NaN };
  return { min: lo, max: hi, absmax: Math.max(-lo, hi) };
}

export function finishAxis(lo: Float32Array, hi: Float32Array): AxisMinMax {
  const C = lo.length;
  const out: AxisMinMax = { min: new Float32Array(C), max: new Float32Array(C), absmax: new Float32Array(C) };
  for (let c = 0; c < C; c++) {
    const r = finishMinMax(lo[c]!, hi[c]!);
    out.min[c] = r.min;
    out.max[c] = r.max;
    out.absmax[c] = r.absmax;
  }
  return out;
}

export function minMax(x: Float32Array): MinMax {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v === v) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return finishMinMax(lo, hi);
}

/** Per-channel min/max/absmax along `axis` of a tensor of `shape`; one value per index of that axis. */
export function minMaxAxis(x: Float32Array, shape: readonly number[], axis: number): AxisMinMax {
  const { outer, C, inner } = axisView(shape, axis, x.length);
  const lo = new Float32Array(C).fill(Infinity);
  const hi = new Float32Array(C).fill(-Infinity);
  let p = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < C; c++) {
      let l = lo[c]!;
      let h = hi[c]!;
      for (let i = 0; i < inner; i++, p++) {
        const v = x[p]!;
        if (v === v) {
          l = Math.min(l, v);
          h = Math.max(h, v);
        }
      }
      lo[c] = l;
      hi[c] = h;
    }
  }
  return finishAxis(lo, hi);
}

/** min/max results plus the number of NaN / ±Inf elements (the *_nf kernels fold both in one pass). */
export type Checked<T> = T & { nonFinite: number };

export function countNonFinite(x: Float32Array): number {
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v !== 0) n++;
  }
  return n;
}

export function minMaxChecked(x: Float32Array): Checked<MinMax> {
  return { ...minMax(x), nonFinite: countNonFinite(x) };
}

export function minMaxAxisChecked(x: Float32Array, shape: readonly number[], axis: number): Checked<AxisMinMax> {
  return { ...minMaxAxis(x, shape, axis), nonFinite: countNonFinite(x) };
}
