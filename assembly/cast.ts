// Dtype casts. All rounding is IEEE round-to-nearest-even. NaN policy (same in every cast): the
// result is a quiet NaN with the input's sign and as many of the top payload bits as fit. numpy
// keeps signalling NaNs signalling (and may turn one into 0x7c01); torch writes 0x7fc0 or 0xffff
// for every NaN. Those are the only places where our bits differ from theirs.
// Every kernel: `if (ASC_FEATURE_SIMD)` vector loop, then a scalar loop for the tail (or for all
// of it in the scalar build). Both loops compute the same bits (the float16 one by another route).

// ---- float32 -> float16 ---------------------------------------------------------------------

// |x| >= 65520 (halfway between 65504 and 2^16) rounds to Inf.
const F16_OVERFLOW: u32 = 0x477ff000;
// Smallest normal float16, 2^-14, as float32 bits.
const F16_MIN_NORMAL: u32 = 0x38800000;
// Rebias the exponent from 127 to 15: subtract (127 - 15) << 23.
const REBIAS: u32 = 0x38000000;

// @inline keeps the scalar helper free of call overhead in the tail loop.
// @ts-ignore: decorator
@inline function f32_to_f16_bits(x: u32, clampFinite: bool): u32 {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  let h: u32;
  if (a > 0x7f800000) {
    h = 0x7e00 | ((a >>> 13) & 0x3ff); // quiet bit + top payload bits
  } else if (a == 0x7f800000) {
    h = 0x7c00;
  } else if (a >= F16_OVERFLOW) {
    h = clampFinite ? 0x7bff : 0x7c00;
  } else if (a >= F16_MIN_NORMAL) {
    // Add just under half an ulp plus the lsb of the kept bits: ties go to even, carries roll
    // into the exponent (which is right, including 65504 + carry == Inf, excluded above).
    const r = a - REBIAS;
    h = (r + 0xfff + ((r >>> 13) & 1)) >>> 13;
  } else {
    // Subnormal half: count of 2^-24 units. Adding 0.5 puts the value in a binade whose float32
    // ulp is exactly 2^-24, so the FPU's RNE does the rounding; the mantissa is the count.
    h = reinterpret<u32>(reinterpret<f32>(a) + <f32>0.5) - 0x3f000000;
  }
  return sign | h;
}

// SIMD: finite lanes are rounded by the FPU. With E = max(exponent of |x|, -14), adding
// bias = 2^(E+13) lands in a binade whose float32 ulp is 2^(E-10), the float16 ulp of |x| (2^-24
// for float16 subnormals), so `(|x| + bias) - bias` is |x| rounded to nearest even at float16
// precision, exactly (a carry into the next binade included). Scaling that by 2^-112 is exact too
// and gives a float32 whose bits >>> 13 are the float16 bits: normal float16 values become normal
// float32 values with the exponent rebiased from 15 to 127, float16 subnormals become float32
// subnormals counting 2^-24 units in bit 13 up. E is capped at 15 (the last float16 binade) so
// the bias stays finite; anything that rounds to 2^16 or more gives bits >= 0x7c00, and an
// unsigned min with 0x7c00 (0x7bff when clamping) finishes overflow. Inf and NaN lanes are rare:
// a group of 8 holding one takes the scalar helper instead.
const EXP_MASK: u32 = 0x7f800000;
const E_MAX: u32 = 0x47000000; // 2^15
const BIAS_SHIFT: u32 = 13 << 23; // exponent + 13
const SCALE_DOWN: f32 = reinterpret<f32>(<u32>0x07800000); // 2^-112

// @ts-ignore: decorator
@inline function f32x4_to_f16_finite(x: v128, limit: v128): v128 {
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const e = i32x4.min_s(i32x4.max_s(v128.and(x, i32x4.splat(EXP_MASK)), i32x4.splat(F16_MIN_NORMAL)), i32x4.splat(E_MAX));
  const bias = i32x4.add(e, i32x4.splat(BIAS_SHIFT));
  const y = f32x4.mul(f32x4.sub(f32x4.add(a, bias), bias), f32x4.splat(SCALE_DOWN));
  return i32x4.min_u(i32x4.shr_u(y, 13), limit);
}

/** float32[n] at src -> float16 bits[n] at dst. clampFinite != 0: finite |x| > 65504 -> ±65504. */
export function cast_f32_f16(src: usize, n: i32, dst: usize, clampFinite: i32): void {
  const clamp = clampFinite != 0;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const limit = i32x4.splat(clamp ? 0x7bff : 0x7c00);
    const expMask = i32x4.splat(EXP_MASK);
    for (; i + 8 <= n; i += 8) {
      const x0 = v128.load(src + (<usize>i << 2));
      const x1 = v128.load(src + (<usize>i << 2), 16);
      const special = v128.or(i32x4.eq(v128.and(x0, expMask), expMask), i32x4.eq(v128.and(x1, expMask), expMask));
      if (v128.any_true(special)) {
        for (let j = i; j < i + 8; j++) {
          store<u16>(dst + (<usize>j << 1), <u16>f32_to_f16_bits(load<u32>(src + (<usize>j << 2)), clamp));
        }
        continue;
      }
      // Lanes hold values <= 0x7c00, so the saturating narrow is exact; the sign is the top bit
      // of each input's upper half (arithmetic shift keeps it in i16 range for the signed narrow).
      const mag = i16x8.narrow_i32x4_u(f32x4_to_f16_finite(x0, limit), f32x4_to_f16_finite(x1, limit));
      const sign = v128.and(i16x8.narrow_i32x4_s(i32x4.shr_s(x0, 16), i32x4.shr_s(x1, 16)), i16x8.splat(-0x8000));
      v128.store(dst + (<usize>i << 1), v128.or(mag, sign));
    }
  }
  for (; i < n; i++) {
    store<u16>(dst + (<usize>i << 1), <u16>f32_to_f16_bits(load<u32>(src + (<usize>i << 2)), clamp));
  }
}

// ---- float16 -> float32 (exact) ---------------------------------------------------------------

// 2^112 = 2^(127-15): moves a float16 exponent placed in float32 position to the float32 bias.
// Multiplying (not adding to the exponent field) also normalises float16 subnormals exactly.
const F16_SCALE: f32 = reinterpret<f32>(<u32>0x77800000);

// @ts-ignore: decorator
@inline function f16_to_f32_bits(h: u32): u32 {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  if (em >= 0x7c00) return sign | 0x7f800000 | (em << 13) | (em > 0x7c00 ? 0x400000 : 0);
  return sign | reinterpret<u32>(reinterpret<f32>(em << 13) * F16_SCALE);
}

// @ts-ignore: decorator
@inline function f16_lanes_to_f32x4(h: v128): v128 {
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const em = v128.and(h, i32x4.splat(0x7fff));
  const finite = f32x4.mul(i32x4.shl(em, 13), f32x4.splat(F16_SCALE));
  const isNaN = i32x4.gt_s(em, i32x4.splat(0x7c00));
  const special = v128.or(v128.or(i32x4.splat(0x7f800000), i32x4.shl(em, 13)), v128.and(isNaN, i32x4.splat(0x400000)));
  return v128.or(sign, v128.bitselect(special, finite, i32x4.ge_s(em, i32x4.splat(0x7c00))));
}

/** float16 bits[n] at src -> float32[n] at dst. */
export function cast_f16_f32(src: usize, n: i32, dst: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), f16_lanes_to_f32x4(i32x4.extend_low_i16x8_u(h)));
      v128.store(dst + (<usize>i << 2), f16_lanes_to_f32x4(i32x4.extend_high_i16x8_u(h)), 16);
    }
  }
  for (; i < n; i++) {
    store<u32>(dst + (<usize>i << 2), f16_to_f32_bits(load<u16>(src + (<usize>i << 1))));
  }
}

// ---- float32 <-> bfloat16 -------------------------------------------------------------------

/** float32[n] at src -> bfloat16 bits[n] at dst (RNE; overflow rounds to ±Inf as in torch). */
export function cast_f32_bf16(src: usize, n: i32, dst: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      const a = v128.load(src + (<usize>i << 2));
      const b = v128.load(src + (<usize>i << 2), 16);
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(bf16_lanes(a), bf16_lanes(b)));
    }
  }
  for (; i < n; i++) {
    const x = load<u32>(src + (<usize>i << 2));
    // Unsigned wrap-around cannot happen: the largest non-NaN pattern is 0xff800000.
    const h = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    store<u16>(dst + (<usize>i << 1), <u16>h);
  }
}

// @ts-ignore: decorator
@inline function bf16_lanes(x: v128): v128 {
  const lsb = v128.and(i32x4.shr_u(x, 16), i32x4.splat(1));
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(x, i32x4.splat(0x7fff)), lsb), 16);
  const nan = v128.or(i32x4.shr_u(x, 16), i32x4.splat(0x40));
  const isNaN = i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.bitselect(nan, rounded, isNaN);
}

/** bfloat16 bits[n] at src -> float32[n] at dst (exact; NaN gets the quiet bit). */
export function cast_bf16_f32(src: usize, n: i32, dst: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), bf16_to_f32x4(i32x4.extend_low_i16x8_u(h)));
      v128.store(dst + (<usize>i << 2), bf16_to_f32x4(i32x4.extend_high_i16x8_u(h)), 16);
    }
  }
  for (; i < n; i++) {
    const x = <u32>load<u16>(src + (<usize>i << 1)) << 16;
    store<u32>(dst + (<usize>i << 2), (x & 0x7fffffff) > 0x7f800000 ? x | 0x400000 : x);
  }
}

// @ts-ignore: decorator
@inline function bf16_to_f32x4(h: v128): v128 {
  const x = i32x4.shl(h, 16);
  const isNaN = i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.or(x, v128.and(isNaN, i32x4.splat(0x400000)));
}

// ---- float64 -> float32 ---------------------------------------------------------------------

// f32.demote_f64 rounds to nearest even, but wasm leaves the NaN payload of the result
// non-deterministic, so NaN lanes are rebuilt from the float64 bits: sign, quiet bit, top
// 22 payload bits.
// @ts-ignore: decorator
@inline function f64_nan_to_f32_bits(hi: u32, lo: u32): u32 {
  return (hi & 0x80000000) | 0x7fc00000 | ((hi & 0xfffff) << 3) | (lo >>> 29);
}

/** float64[n] at src -> float32[n] at dst. */
export function cast_f64_f32(src: usize, n: i32, dst: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) {
      const p = src + (<usize>i << 3);
      const a = v128.load(p);
      const b = v128.load(p, 16);
      const d = v128.shuffle<i32>(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
      const lo = v128.shuffle<i32>(a, b, 0, 2, 4, 6);
      const hi = v128.shuffle<i32>(a, b, 1, 3, 5, 7);
      const nan = v128.or(
        v128.or(v128.and(hi, i32x4.splat(0x80000000)), i32x4.splat(0x7fc00000)),
        v128.or(i32x4.shl(v128.and(hi, i32x4.splat(0xfffff)), 3), i32x4.shr_u(lo, 29)),
      );
      v128.store(dst + (<usize>i << 2), v128.bitselect(nan, d, f32x4.ne(d, d)));
    }
  }
  for (; i < n; i++) {
    const p = src + (<usize>i << 3);
    const x = load<f64>(p);
    const bits = x != x ? f64_nan_to_f32_bits(load<u32>(p, 4), load<u32>(p)) : reinterpret<u32>(<f32>x);
    store<u32>(dst + (<usize>i << 2), bits);
  }
}

// ---- int64 <-> int32 ------------------------------------------------------------------------

/**
 * int64[n] at src -> int32[n] at dst. Returns -1, or the index of the first element outside the
 * int32 range (the output is then only valid below that index).
 */
export function cast_i64_i32(src: usize, n: i32, dst: usize): i32 {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) {
      const a = v128.load(src + (<usize>i << 3));
      const b = v128.load(src + (<usize>i << 3), 16);
      const low = v128.shuffle<i32>(a, b, 0, 2, 4, 6);
      // In range iff sign-extending the low word gives the value back.
      const ok = v128.and(i64x2.eq(i64x2.extend_low_i32x4_s(low), a), i64x2.eq(i64x2.extend_high_i32x4_s(low), b));
      if (!i64x2.all_true(ok)) break; // the scalar loop finds the exact index
      v128.store(dst + (<usize>i << 2), low);
    }
  }
  for (; i < n; i++) {
    const v = load<i64>(src + (<usize>i << 3));
    if (v != <i64><i32>v) return i;
    store<i32>(dst + (<usize>i << 2), <i32>v);
  }
  return -1;
}

/** int32[n] at src -> int64[n] at dst (sign extension). */
export function cast_i32_i64(src: usize, n: i32, dst: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(src + (<usize>i << 2));
      v128.store(dst + (<usize>i << 3), i64x2.extend_low_i32x4_s(v));
      v128.store(dst + (<usize>i << 3), i64x2.extend_high_i32x4_s(v), 16);
    }
  }
  for (; i < n; i++) {
    store<i64>(dst + (<usize>i << 3), <i64>load<i32>(src + (<usize>i << 2)));
  }
}
