// Affine quantization, ONNX QuantizeLinear / DequantizeLinear semantics.
//
//   quantize:   q = saturate(round_half_even(x / scale) + zp)      (division, not reciprocal multiply,
//                                                                  so x / scale is bit-identical to numpy)
//   dequantize: y = (q - zp) * scale
//
// All arithmetic is float32. zp is passed as an f32 holding an integer: rint(x/scale) + zp is then
// exactly numpy's float32 `np.rint(x / scale) + zp` (exact below 2^24, saturated anyway above).
// NaN input gives the LOW bound of the range (int8 -128, uint8 0): that is what onnxruntime's MLAS
// kernel produces, since it clamps with MAXPS/FMAXNM (which return the non-NaN operand) before
// converting. +Inf/-Inf saturate to the high/low bound.
//
// Per-channel kernels view the tensor as [outer, C, inner] and take the channel c0 and inner
// offset i0 of their first element so the host can cut windows anywhere. scales[C] and zps[C]
// are f32 arrays.

// One element; `lo < y ? y : lo` also maps NaN to lo, matching f32x4.pmax(lo, y) in the SIMD path.
// @ts-ignore: decorator
@inline function q1(x: f32, s: f32, zp: f32, lo: f32, hi: f32): i32 {
  let y = nearest<f32>(x / s) + zp;
  y = lo < y ? y : lo;
  y = y < hi ? y : hi;
  return <i32>y;
}

// Four lanes, same rule: pmax(a, b) = a < b ? b : a and pmin(a, b) = b < a ? b : a.
// @ts-ignore: decorator
@inline function q4(v: v128, s: v128, zp: v128, lo: v128, hi: v128): v128 {
  let y = f32x4.add(f32x4.nearest(f32x4.div(v, s)), zp);
  y = f32x4.pmin(hi, f32x4.pmax(lo, y));
  return i32x4.trunc_sat_f32x4_s(y);
}

// 16 i32 lanes (already inside T's range) to 16 bytes.
// @ts-ignore: decorator
@inline function pack16<T>(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i16x8.narrow_i32x4_s(a, b);
  const cd = i16x8.narrow_i32x4_s(c, d);
  return isSigned<T>() ? i8x16.narrow_i16x8_s(ab, cd) : i8x16.narrow_i16x8_u(ab, cd);
}

// Quantize n floats with one scale/zp into bytes of type T saturated to [lo, hi] (a sub-range of
// T's, so the 4-bit kernels reuse it).
function qRun<T>(src: usize, dst: usize, n: i32, s: f32, zp: f32, lo: f32, hi: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vs = f32x4.splat(s);
    const vz = f32x4.splat(zp);
    const vlo = f32x4.splat(lo);
    const vhi = f32x4.splat(hi);
    for (; i + 16 <= n; i += 16) {
      const p = src + (<usize>i << 2);
      const a = q4(v128.load(p), vs, vz, vlo, vhi);
      const b = q4(v128.load(p, 16), vs, vz, vlo, vhi);
      const c = q4(v128.load(p, 32), vs, vz, vlo, vhi);
      const d = q4(v128.load(p, 48), vs, vz, vlo, vhi);
      v128.store(dst + <usize>i, pack16<T>(a, b, c, d));
    }
  }
  for (; i < n; i++) store<T>(dst + <usize>i, <T>q1(load<f32>(src + (<usize>i << 2)), s, zp, lo, hi));
}

// Quantize n floats where element j uses scales[j] / zps[j] (channels innermost).
function qRunVec<T>(src: usize, dst: usize, n: i32, scales: usize, zps: usize, lo: f32, hi: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vlo = f32x4.splat(lo);
    const vhi = f32x4.splat(hi);
    for (; i + 16 <= n; i += 16) {
      const o = <usize>i << 2;
      const p = src + o;
      const s = scales + o;
      const z = zps + o;
      const a = q4(v128.load(p), v128.load(s), v128.load(z), vlo, vhi);
      const b = q4(v128.load(p, 16), v128.load(s, 16), v128.load(z, 16), vlo, vhi);
      const c = q4(v128.load(p, 32), v128.load(s, 32), v128.load(z, 32), vlo, vhi);
      const d = q4(v128.load(p, 48), v128.load(s, 48), v128.load(z, 48), vlo, vhi);
      v128.store(dst + <usize>i, pack16<T>(a, b, c, d));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<T>(dst + <usize>i, <T>q1(load<f32>(src + o), load<f32>(scales + o), load<f32>(zps + o), lo, hi));
  }
}

// Walk n elements of a [outer, C, inner] view starting at (c0, i0), quantizing each channel run.
function qAxis<T>(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize, lo: f32, hi: f32): void {
  let p = 0;
  let c = c0;
  if (inner == 1) {
    while (p < n) {
      const run = min(C - c, n - p);
      qRunVec<T>(src + (<usize>p << 2), dst + <usize>p, run, scales + (<usize>c << 2), zps + (<usize>c << 2), lo, hi);
      p += run;
      c = 0;
    }
    return;
  }
  let i = i0;
  while (p < n) {
    const run = min(inner - i, n - p);
    const o = <usize>c << 2;
    qRun<T>(src + (<usize>p << 2), dst + <usize>p, run, load<f32>(scales + o), load<f32>(zps + o), lo, hi);
    p += run;
    i = 0;
    if (++c == C) c = 0;
  }
}

// Four bytes of type T, widened to f32 lanes.
// @ts-ignore: decorator
@inline function widen4<T>(ptr: usize): v128 {
  const b = v128.load32_zero(ptr);
  const w = isSigned<T>() ? i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(b)) : i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(b));
  return f32x4.convert_i32x4_s(w);
}

// Dequantize n bytes of type T with one scale/zp.
function dqRun<T>(src: usize, dst: usize, n: i32, s: f32, zp: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vs = f32x4.splat(s);
    const vz = f32x4.splat(zp);
    for (; i + 4 <= n; i += 4) {
      v128.store(dst + (<usize>i << 2), f32x4.mul(f32x4.sub(widen4<T>(src + <usize>i), vz), vs));
    }
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), (<f32>load<T>(src + <usize>i) - zp) * s);
}

function dqRunVec<T>(src: usize, dst: usize, n: i32, scales: usize, zps: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(dst + o, f32x4.mul(f32x4.sub(widen4<T>(src + <usize>i), v128.load(zps + o)), v128.load(scales + o)));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dst + o, (<f32>load<T>(src + <usize>i) - load<f32>(zps + o)) * load<f32>(scales + o));
  }
}

function dqAxis<T>(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize): void {
  let p = 0;
  let c = c0;
  if (inner == 1) {
    while (p < n) {
      const run = min(C - c, n - p);
      dqRunVec<T>(src + <usize>p, dst + (<usize>p << 2), run, scales + (<usize>c << 2), zps + (<usize>c << 2));
      p += run;
      c = 0;
    }
    return;
  }
  let i = i0;
  while (p < n) {
    const run = min(inner - i, n - p);
    const o = <usize>c << 2;
    dqRun<T>(src + <usize>p, dst + (<usize>p << 2), run, load<f32>(scales + o), load<f32>(zps + o));
    p += run;
    i = 0;
    if (++c == C) c = 0;
  }
}

export function quantize_f32_i8(src: usize, n: i32, scale: f32, zp: f32, dst: usize): void {
  qRun<i8>(src, dst, n, scale, zp, -128, 127);
}
export function quantize_f32_u8(src: usize, n: i32, scale: f32, zp: f32, dst: usize): void {
  qRun<u8>(src, dst, n, scale, zp, 0, 255);
}
// Saturating to a sub-range [lo, hi] of the byte type (the 4-bit kernels use [-8, 7] / [0, 15]).
export function quantize_range_f32_i8(src: usize, n: i32, scale: f32, zp: f32, lo: f32, hi: f32, dst: usize): void {
  qRun<i8>(src, dst, n, scale, zp, lo, hi);
}
export function quantize_range_f32_u8(src: usize, n: i32, scale: f32, zp: f32, lo: f32, hi: f32, dst: usize): void {
  qRun<u8>(src, dst, n, scale, zp, lo, hi);
}
export function quantize_axis_f32_i8(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize): void {
  qAxis<i8>(src, n, C, inner, c0, i0, scales, zps, dst, -128, 127);
}
export function quantize_axis_f32_u8(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize): void {
  qAxis<u8>(src, n, C, inner, c0, i0, scales, zps, dst, 0, 255);
}
export function dequantize_i8_f32(src: usize, n: i32, scale: f32, zp: f32, dst: usize): void {
  dqRun<i8>(src, dst, n, scale, zp);
}
export function dequantize_u8_f32(src: usize, n: i32, scale: f32, zp: f32, dst: usize): void {
  dqRun<u8>(src, dst, n, scale, zp);
}
export function dequantize_axis_i8_f32(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize): void {
  dqAxis<i8>(src, n, C, inner, c0, i0, scales, zps, dst);
}
export function dequantize_axis_u8_f32(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize): void {
  dqAxis<u8>(src, n, C, inner, c0, i0, scales, zps, dst);
}

// ---------------------------------------------------------------------------------------------
// Fused quantize + error statistics. Quantizes like the kernels above (same bytes) and, in the
// same pass over cache-sized chunks, accumulates how far the dequantized value g = (q - zp) * s
// (float32, exactly what dequantize_* returns) is from the input r, in float64:
//   acc[0] max |r - g|   acc[1] Σ|r - g|   acc[2] Σ r²   acc[3] Σ (r - g)²   acc[4] Σ r·g
//   acc[5] Σ g²          acc[6] number of elements counted
// Non-finite r are skipped (not counted), as in errorStats (src/eval/metrics.ts). g is never NaN
// (q and zp are bounded, s is positive and finite), so |r - g| is never NaN for a counted element.
// The dequantized array is never materialised: this replaces quantize + dequantize + a JS reduction.
//
// Order of accumulation: the scalar build adds element by element in index order, so its sums are
// bit-identical to errorStats on the same data. The SIMD build keeps two partial sums per statistic
// (the lanes of one f64x2 accumulator, each fed with pairs of elements) and adds them into acc at
// the end of each chunk: the same numbers rounded in a different order, which differs from
// errorStats in the last bits only (each order is within (n - 1)·2^-53 relative of the exact sum of
// these same-sign terms).

const STATS_CHUNK = 2048; // 8 KiB of float32 + 2 KiB of codes: both stay in L1 between the two loops

let sMax: f64 = 0;
let sSum: f64 = 0;
let sSig: f64 = 0;
let sNoi: f64 = 0;
let sDot: f64 = 0;
let sGG: f64 = 0;
let sCnt: f64 = 0;

function statsLoad(acc: usize): void {
  sMax = load<f64>(acc);
  sSum = load<f64>(acc, 8);
  sSig = load<f64>(acc, 16);
  sNoi = load<f64>(acc, 24);
  sDot = load<f64>(acc, 32);
  sGG = load<f64>(acc, 40);
  sCnt = load<f64>(acc, 48);
}

function statsStore(acc: usize): void {
  store<f64>(acc, sMax);
  store<f64>(acc, sSum, 8);
  store<f64>(acc, sSig, 16);
  store<f64>(acc, sNoi, 24);
  store<f64>(acc, sDot, 32);
  store<f64>(acc, sGG, 40);
  store<f64>(acc, sCnt, 48);
}

// errorStats' loop body for one element.
// @ts-ignore: decorator
@inline function stat1(r: f32, g: f32): void {
  if (r - r == 0) {
    const rd = <f64>r;
    const gd = <f64>g;
    const e = rd - gd;
    const d = abs<f64>(e);
    if (!(d <= sMax)) sMax = d == d ? d : f64.POSITIVE_INFINITY;
    sSum += d;
    sSig += rd * rd;
    sNoi += e * e;
    sDot += rd * gd;
    sGG += gd * gd;
    sCnt += 1;
  }
}

// Statistics of n elements dequantized with one scale/zp (P = u64) or with scales[j] / zps[j] for
// element j (P = u32; channels innermost). P only selects the variant at compile time, so each loop
// is specialised instead of testing a flag per element. The SIMD partial sums are locals: the scalar
// build has no v128 type, so they cannot be module globals.
function statsRun<T, P>(src: usize, q: usize, n: i32, s: f32, zp: f32, scales: usize, zps: usize): void {
  const perElem = sizeof<P>() == 4;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    if (n >= 4) {
      const zero = f64x2.splat(0);
      // One f64x2 accumulator per statistic, fed with the sum of lanes 0-1 and lanes 2-3 of each group
      // of four: few enough live v128 values that nothing spills out of the 16 xmm registers (two
      // accumulator sets measured 2-3x slower from spilling).
      let mx = zero, su = zero, si = zero, no = zero, dt = zero, gg = zero;
      let cnt = i32x4.splat(0);
      const vs = f32x4.splat(s);
      const vz = f32x4.splat(zp);
      const fz = f32x4.splat(0);
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2;
        const r = v128.load(src + o);
        const w = widen4<T>(q + <usize>i);
        const g = perElem ? f32x4.mul(f32x4.sub(w, v128.load(zps + o)), v128.load(scales + o)) : f32x4.mul(f32x4.sub(w, vz), vs);
        // Lanes whose r is not finite contribute nothing (their r and g become +0).
        const m = f32x4.eq(f32x4.sub(r, r), fz);
        const rm = v128.and(r, m);
        const gm = v128.and(g, m);
        cnt = i32x4.sub(cnt, m);
        const ra = f64x2.promote_low_f32x4(rm);
        const ga = f64x2.promote_low_f32x4(gm);
        const rb = f64x2.promote_low_f32x4(v128.shuffle<f32>(rm, rm, 2, 3, 2, 3));
        const gb = f64x2.promote_low_f32x4(v128.shuffle<f32>(gm, gm, 2, 3, 2, 3));
        const ea = f64x2.sub(ra, ga);
        const eb = f64x2.sub(rb, gb);
        const da = f64x2.abs(ea);
        const db = f64x2.abs(eb);
        // pmax is one maxpd; d is never NaN or -0 here, so it equals max.
        mx = f64x2.pmax(mx, f64x2.pmax(da, db));
        su = f64x2.add(su, f64x2.add(da, db));
        si = f64x2.add(si, f64x2.add(f64x2.mul(ra, ra), f64x2.mul(rb, rb)));
        no = f64x2.add(no, f64x2.add(f64x2.mul(ea, ea), f64x2.mul(eb, eb)));
        dt = f64x2.add(dt, f64x2.add(f64x2.mul(ra, ga), f64x2.mul(rb, gb)));
        gg = f64x2.add(gg, f64x2.add(f64x2.mul(ga, ga), f64x2.mul(gb, gb)));
      }
      const mxs = max(f64x2.extract_lane(mx, 0), f64x2.extract_lane(mx, 1));
      if (!(mxs <= sMax)) sMax = mxs;
      sSum += f64x2.extract_lane(su, 0) + f64x2.extract_lane(su, 1);
      sSig += f64x2.extract_lane(si, 0) + f64x2.extract_lane(si, 1);
      sNoi += f64x2.extract_lane(no, 0) + f64x2.extract_lane(no, 1);
      sDot += f64x2.extract_lane(dt, 0) + f64x2.extract_lane(dt, 1);
      sGG += f64x2.extract_lane(gg, 0) + f64x2.extract_lane(gg, 1);
      sCnt += <f64>(i32x4.extract_lane(cnt, 0) + i32x4.extract_lane(cnt, 1) + i32x4.extract_lane(cnt, 2) + i32x4.extract_lane(cnt, 3));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const sc = perElem ? load<f32>(scales + o) : s;
    const z = perElem ? load<f32>(zps + o) : zp;
    stat1(load<f32>(src + o), (<f32>load<T>(q + <usize>i) - z) * sc);
  }
}

function qsRun<T>(src: usize, dst: usize, n: i32, s: f32, zp: f32, lo: f32, hi: f32): void {
  for (let p = 0; p < n; p += STATS_CHUNK) {
    const m = min(STATS_CHUNK, n - p);
    const x = src + (<usize>p << 2);
    const q = dst + <usize>p;
    qRun<T>(x, q, m, s, zp, lo, hi);
    statsRun<T, u64>(x, q, m, s, zp, 0, 0);
  }
}

function qsRunVec<T>(src: usize, dst: usize, n: i32, scales: usize, zps: usize, lo: f32, hi: f32): void {
  for (let p = 0; p < n; p += STATS_CHUNK) {
    const m = min(STATS_CHUNK, n - p);
    const o = <usize>p << 2;
    qRunVec<T>(src + o, dst + <usize>p, m, scales + o, zps + o, lo, hi);
    statsRun<T, u32>(src + o, dst + <usize>p, m, 0, 0, scales + o, zps + o);
  }
}

function qsAxis<T>(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize, lo: f32, hi: f32): void {
  let p = 0;
  let c = c0;
  if (inner == 1) {
    while (p < n) {
      const run = min(C - c, n - p);
      qsRunVec<T>(src + (<usize>p << 2), dst + <usize>p, run, scales + (<usize>c << 2), zps + (<usize>c << 2), lo, hi);
      p += run;
      c = 0;
    }
    return;
  }
  let i = i0;
  while (p < n) {
    const run = min(inner - i, n - p);
    const o = <usize>c << 2;
    qsRun<T>(src + (<usize>p << 2), dst + <usize>p, run, load<f32>(scales + o), load<f32>(zps + o), lo, hi);
    p += run;
    i = 0;
    if (++c == C) c = 0;
  }
}

// quantize_f32_* plus the statistics, accumulated into acc[7] (f64; the host starts it at zeros).
export function quantize_stats_f32_i8(src: usize, n: i32, scale: f32, zp: f32, dst: usize, acc: usize): void {
  statsLoad(acc);
  qsRun<i8>(src, dst, n, scale, zp, -128, 127);
  statsStore(acc);
}
export function quantize_stats_f32_u8(src: usize, n: i32, scale: f32, zp: f32, dst: usize, acc: usize): void {
  statsLoad(acc);
  qsRun<u8>(src, dst, n, scale, zp, 0, 255);
  statsStore(acc);
}
export function quantize_stats_axis_f32_i8(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize, acc: usize): void {
  statsLoad(acc);
  qsAxis<i8>(src, n, C, inner, c0, i0, scales, zps, dst, -128, 127);
  statsStore(acc);
}
export function quantize_stats_axis_f32_u8(src: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, dst: usize, acc: usize): void {
  statsLoad(acc);
  qsAxis<u8>(src, n, C, inner, c0, i0, scales, zps, dst, 0, 255);
  statsStore(acc);
}
