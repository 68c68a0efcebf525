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

// ---------------------------------------------------------------------------------------------
// min/max that also count non-finite values (NaN, +Inf, -Inf), so a caller that must refuse such
// tensors (weight quantization) learns it from the same pass instead of a second scan. The min/max
// results are those of the kernels above, bit for bit; the return value is the count for this call.
// x is finite exactly when x - x == 0 (NaN - NaN and Inf - Inf are NaN).

let nfLo: f32 = 0;
let nfHi: f32 = 0;

// SIMD min/max on order keys: a float's bits with the 31 low bits flipped when the sign is set
// compare as signed integers exactly like f32.min / f32.max order floats (-Inf < … < -0 < +0 < …
// < +Inf), so one pminsd / pmaxsd replaces the long NaN- and zero-aware f32x4.min / max sequence.
// NaN lanes are replaced by the neutral key first, as above; the key map is its own inverse.
// @ts-ignore: decorator
@inline function key4(v: v128): v128 {
  return v128.xor(v, v128.and(i32x4.shr_s(v, 31), i32x4.splat(0x7fffffff)));
}
// @ts-ignore: decorator
@inline function key1(bits: i32): i32 {
  return bits ^ ((bits >> 31) & 0x7fffffff);
}
const PINF_KEY: i32 = 0x7f800000;
const NINF_KEY: i32 = 0x7f800000 ^ -1; // key of -Inf (0xff800000): -0x7f800001

function foldRunNf(src: usize, n: i32): i32 {
  let lo = nfLo;
  let hi = nfHi;
  let finite = 0;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    if (n >= 8) {
      const pinf = i32x4.splat(PINF_KEY);
      const ninf = i32x4.splat(NINF_KEY);
      const zero = f32x4.splat(0);
      let vlo = i32x4.splat(key1(reinterpret<i32>(lo)));
      let vhi = i32x4.splat(key1(reinterpret<i32>(hi)));
      // Lane counts of finite values; a window holds < 2^31 elements, so i32 lanes cannot overflow.
      let vfin = i32x4.splat(0);
      for (; i + 4 <= n; i += 4) {
        const v = v128.load(src + (<usize>i << 2));
        const ok = f32x4.eq(v, v);
        const kv = key4(v);
        vlo = i32x4.min_s(vlo, v128.bitselect(kv, pinf, ok));
        vhi = i32x4.max_s(vhi, v128.bitselect(kv, ninf, ok));
        vfin = i32x4.sub(vfin, f32x4.eq(f32x4.sub(v, v), zero)); // true lanes are -1
      }
      const kl = min(min(i32x4.extract_lane(vlo, 0), i32x4.extract_lane(vlo, 1)), min(i32x4.extract_lane(vlo, 2), i32x4.extract_lane(vlo, 3)));
      const kh = max(max(i32x4.extract_lane(vhi, 0), i32x4.extract_lane(vhi, 1)), max(i32x4.extract_lane(vhi, 2), i32x4.extract_lane(vhi, 3)));
      lo = reinterpret<f32>(key1(kl));
      hi = reinterpret<f32>(key1(kh));
      finite = i32x4.extract_lane(vfin, 0) + i32x4.extract_lane(vfin, 1) + i32x4.extract_lane(vfin, 2) + i32x4.extract_lane(vfin, 3);
    }
  }
  for (; i < n; i++) {
    const x = load<f32>(src + (<usize>i << 2));
    if (x == x) {
      lo = min(lo, x);
      hi = max(hi, x);
    }
    finite += i32(x - x == 0);
  }
  nfLo = lo;
  nfHi = hi;
  return n - finite;
}

// Element-wise fold into accumulators that hold order KEYS (see keysInPlace), lo[j] / hi[j] for
// element j (channels innermost).
function foldVecNf(src: usize, n: i32, lo: usize, hi: usize): i32 {
  let finite = 0;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const pinf = i32x4.splat(PINF_KEY);
    const ninf = i32x4.splat(NINF_KEY);
    const zero = f32x4.splat(0);
    let vfin = i32x4.splat(0);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const v = v128.load(src + o);
      const ok = f32x4.eq(v, v);
      const kv = key4(v);
      v128.store(lo + o, i32x4.min_s(v128.load(lo + o), v128.bitselect(kv, pinf, ok)));
      v128.store(hi + o, i32x4.max_s(v128.load(hi + o), v128.bitselect(kv, ninf, ok)));
      vfin = i32x4.sub(vfin, f32x4.eq(f32x4.sub(v, v), zero));
    }
    finite = i32x4.extract_lane(vfin, 0) + i32x4.extract_lane(vfin, 1) + i32x4.extract_lane(vfin, 2) + i32x4.extract_lane(vfin, 3);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const x = load<f32>(src + o);
    if (x == x) {
      const kx = key1(reinterpret<i32>(x));
      store<i32>(lo + o, min(load<i32>(lo + o), kx));
      store<i32>(hi + o, max(load<i32>(hi + o), kx));
    }
    finite += i32(x - x == 0);
  }
  return n - finite;
}

// Floats <-> order keys in place (the map is an involution).
function keysInPlace(p: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = p + (<usize>i << 2);
    store<i32>(o, key1(load<i32>(o)));
  }
}

// minmax_acc_f32 plus the number of non-finite values among src[0..n).
export function minmax_acc_nf_f32(src: usize, n: i32, acc: usize): i32 {
  nfLo = load<f32>(acc);
  nfHi = load<f32>(acc, 4);
  const bad = foldRunNf(src, n);
  store<f32>(acc, nfLo);
  store<f32>(acc, nfHi, 4);
  return bad;
}

// minmax_axis_f32 plus the number of non-finite values among src[0..n).
export function minmax_axis_nf_f32(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, lo: usize, hi: usize): i32 {
  let bad = 0;
  let p = 0;
  let c = c0;
  if (inner == 1) {
    // The accumulators hold keys during the call (C conversions each way, against n >= C folds in
    // the usual one-window-per-tensor case).
    keysInPlace(lo, C);
    keysInPlace(hi, C);
    while (p < n) {
      const run = min(C - c, n - p);
      bad += foldVecNf(src + (<usize>p << 2), run, lo + (<usize>c << 2), hi + (<usize>c << 2));
      p += run;
      c = 0;
    }
    keysInPlace(lo, C);
    keysInPlace(hi, C);
    return bad;
  }
  let i = i0;
  while (p < n) {
    const run = min(inner - i, n - p);
    const o = <usize>c << 2;
    nfLo = load<f32>(lo + o);
    nfHi = load<f32>(hi + o);
    bad += foldRunNf(src + (<usize>p << 2), run);
    store<f32>(lo + o, nfLo);
    store<f32>(hi + o, nfHi);
    p += run;
    i = 0;
    if (++c == C) c = 0;
  }
  return bad;
}
