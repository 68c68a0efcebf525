/**
 * Plain-TypeScript twins of the cast kernels (assembly/cast.ts): same bits for every input, used
 * as the conformance oracle and as a fallback where WebAssembly is unavailable. They are written
 * with integer arithmetic only (no FPU rounding tricks), so they double as an independent check
 * of the WASM code. NaN policy as in the kernels: quiet NaN, input sign, top payload bits.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

function u32View(a: Float32Array | Float64Array | BigInt64Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

/** One float32 bit pattern -> float16 bits, round to nearest even. */
export function f32BitsToF16Bits(x: number, clampFinite = false): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a === 0x7f800000) return sign | 0x7c00;
  if (a >= 0x477ff000) return sign | (clampFinite ? 0x7bff : 0x7c00); // |x| >= 65520
  const e = a >>> 23;
  if (e < 102) return sign; // below 2^-25: rounds to zero
  // Significand with the implicit bit, and the right shift that leaves the float16 significand
  // (for normals the exponent is re-biased; for subnormals the unit is 2^-24).
  const m = (a & 0x7fffff) | 0x800000;
  const shift = e >= 113 ? 13 : 126 - e;
  let q = m >>> shift;
  const rem = m - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q++;
  // For normals, q carries the implicit bit (0x400..0x800); adding the biased exponent above it
  // lets a rounding carry move into the exponent naturally.
  return sign | (e >= 113 ? ((e - 113) << 10) + q : q);
}

/** One float16 bit pattern -> float32 bits (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return (sign | 0x7f800000 | (m << 13) | (m !== 0 ? 0x400000 : 0)) >>> 0;
  if (e === 0) {
    if (m === 0) return sign >>> 0;
    // Normalise the subnormal: shift until the leading 1 reaches the implicit-bit position.
    let mm = m;
    let ee = 113;
    while ((mm & 0x400) === 0) { mm <<= 1; ee--; }
    return (sign | (ee << 23) | ((mm & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
}

export function f32ToF16Ref(src: Float32Array, clampFinite = false): Uint16Array {
  const x = u32View(src);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < out.length; i++) out[i] = f32BitsToF16Bits(x[i]!, clampFinite);
  return out;
}

export function f16ToF32Ref(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const o = u32View(out);
  for (let i = 0; i < src.length; i++) o[i] = f16BitsToF32Bits(src[i]!);
  return out;
}

export function f32ToBf16Ref(src: Float32Array): Uint16Array {
  const x = u32View(src);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < out.length; i++) {
    const v = x[i]!;
    if ((v & 0x7fffffff) > 0x7f800000) {
      out[i] = (v >>> 16) | 0x40;
    } else {
      // Round the low 16 bits away: up when above half, or at half when the kept lsb is odd.
      const low = v & 0xffff;
      let hi = v >>> 16;
      if (low > 0x8000 || (low === 0x8000 && (hi & 1) === 1)) hi++;
      out[i] = hi;
    }
  }
  return out;
}

export function bf16ToF32Ref(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const o = u32View(out);
  for (let i = 0; i < src.length; i++) {
    const x = (src[i]! << 16) >>> 0;
    o[i] = (x & 0x7fffffff) > 0x7f800000 ? (x | 0x400000) >>> 0 : x;
  }
  return out;
}

export function f64ToF32Ref(src: Float64Array): Float32Array {
  const w = u32View(src);
  const out = new Float32Array(src.length);
  const o = u32View(out);
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (v === v) {
      out[i] = v; // Float32Array stores with IEEE round-to-nearest-even, like Math.fround
    } else {
      const lo = w[2 * i]!;
      const hi = w[2 * i + 1]!;
      o[i] = ((hi & 0x80000000) | 0x7fc00000 | ((hi & 0xfffff) << 3) | (lo >>> 29)) >>> 0;
    }
  }
  return out;
}

/** int64 -> int32; throws E_RANGE_CHECK naming the first element outside the int32 range. */
export function i64ToI32Ref(src: BigInt64Array): Int32Array {
  const w = new Int32Array(src.buffer, src.byteOffset, src.length * 2);
  const out = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const lo = w[2 * i]!;
    // In range iff the high word is the sign extension of the low word.
    if (w[2 * i + 1]! !== lo >> 31) throw rangeError(i, src[i]!);
    out[i] = lo;
  }
  return out;
}

export function i32ToI64Ref(src: Int32Array): BigInt64Array {
  const out = new BigInt64Array(src.length);
  const w = new Int32Array(out.buffer);
  for (let i = 0; i < src.length; i++) {
    w[2 * i] = src[i]!;
    w[2 * i + 1] = src[i]! >> 31;
  }
  return out;
}

/** The error every int64 -> int32 path throws (shared so the message is identical). */
export function rangeError(index: number, value: bigint): ModelsmithError {
  return new ModelsmithError(
    ErrorCodes.RANGE_CHECK,
    `int64 -> int32: element ${index} is ${value}, outside [-2147483648, 2147483647]`,
  );
}
