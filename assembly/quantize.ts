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
