// Reductions: min / max, NaN-aware. NaN values are skipped; an all-NaN or empty input gives NaN so
// the host can tell "no data". absmax is not a kernel: with NaN skipped, absmax == max(-min, max)
// exactly, so the host derives it.
//
// Determinism: the folds use f32.min / f32.max (which order -0 below +0) on data whose NaN lanes
// were replaced by the neutral element. The result, including the sign of a zero, is then the same
// whatever the lane order, so SIMD, scalar and the TypeScript reference (Math.min/Math.max) agree
// bit for bit.

import { foldRun, rangeHi, rangeLo, setRange } from './inline/range';

// Element-wise fold of `n` floats into the accumulator arrays lo[n] / hi[n] (channels are the
// innermost axis, so consecutive elements belong to consecutive channels).
function foldVec(src: usize, n: i32, lo: usize, hi: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const pinf = f32x4.splat(f32.POSITIVE_INFINITY);
    const ninf = f32x4.splat(f32.NEGATIVE_INFINITY);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const v = v128.load(src + o);
      const ok = f32x4.eq(v, v);
      v128.store(lo + o, f32x4.min(v128.load(lo + o), v128.bitselect(v, pinf, ok)));
      v128.store(hi + o, f32x4.max(v128.load(hi + o), v128.bitselect(v, ninf, ok)));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const x = load<f32>(src + o);
    if (x == x) {
      store<f32>(lo + o, min(load<f32>(lo + o), x));
      store<f32>(hi + o, max(load<f32>(hi + o), x));
    }
  }
}

// out[0] = min, out[1] = max of src[0..n), NaN for both when no non-NaN value exists.
export function minmax_f32(src: usize, n: i32, out: usize): void {
  setRange(f32.POSITIVE_INFINITY, f32.NEGATIVE_INFINITY);
  foldRun(src, n);
  // lo > hi only when nothing was folded (any value x gives lo <= x <= hi).
  const none = rangeLo() > rangeHi();
  store<f32>(out, none ? f32.NaN : rangeLo());
  store<f32>(out + 4, none ? f32.NaN : rangeHi());
}

// Accumulating form for windowed inputs: acc[0] = min(acc[0], ...), acc[1] = max(acc[1], ...).
// The host starts with acc = [+Inf, -Inf] and maps lo > hi to "no data" at the end.
export function minmax_acc_f32(src: usize, n: i32, acc: usize): void {
  setRange(load<f32>(acc), load<f32>(acc, 4));
  foldRun(src, n);
  store<f32>(acc, rangeLo());
  store<f32>(acc, rangeHi(), 4);
}

// Per-channel accumulating min/max. The tensor is viewed as [outer, C, inner]; `src` holds `n`
// consecutive elements starting at channel c0, inner offset i0 (so a window may start anywhere).
// lo[C] / hi[C] are f32 accumulators the host initialises to +Inf / -Inf.
export function minmax_axis_f32(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, lo: usize, hi: usize): void {
  let p = 0;
  let c = c0;
  if (inner == 1) {
    // Each run covers channels c..C-1 of one outer row: fold element-wise into the accumulators.
    while (p < n) {
      const run = min(C - c, n - p);
      foldVec(src + (<usize>p << 2), run, lo + (<usize>c << 2), hi + (<usize>c << 2));
      p += run;
      c = 0;
    }
    return;
  }
  let i = i0;
  while (p < n) {
    const run = min(inner - i, n - p);
    const o = <usize>c << 2;
    setRange(load<f32>(lo + o), load<f32>(hi + o));
    foldRun(src + (<usize>p << 2), run);
    store<f32>(lo + o, rangeLo());
    store<f32>(hi + o, rangeHi());
    p += run;
    i = 0;
    if (++c == C) c = 0;
  }
}
