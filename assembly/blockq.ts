// 4-bit blockwise quantization along the last axis of a [rows, K] view, one scale (and zero point)
// per block of B consecutive elements; the last block of a row may be short.
//
// Modes:
//   0  int4 symmetric:   scale = absmax / 7, zp = 0, codes in [-8, 7] (only -7..7 are produced
//                        from finite data), stored one per byte as i8
//   1  uint4 symmetric:  same scale, zp = 8 (MatMulNBits default), codes in [0, 15]
//   2  uint4 asymmetric: lo = min(min, 0), hi = max(max, 0), scale = (hi - lo) / 15,
//                        zp = clamp(round_half_even(-lo / scale), 0, 15)
// NaN values are ignored when computing a block's range. A scale below FLT_MIN (all-zero block,
// only subnormals) is replaced by 1 (and zp by 0 in mode 2) so the division stays finite, as
// onnxruntime.quantization does. Codes then follow QuantizeLinear (quantize.ts: NaN -> low bound).
// Everything is float32 so the TypeScript reference can reproduce it bit for bit.
//
// Kernels work on unpacked codes (one byte per element, row stride `codeStride` >= K so a row can
// be padded to whole blocks as MatMulNBits wants); pack_nibbles / unpack_nibbles convert to and
// from ONNX INT4/UINT4 packing (first element in the low nibble).
import { quantize_range_f32_i8, quantize_range_f32_u8, dequantize_i8_f32, dequantize_u8_f32 } from './quantize';
import { foldRun, rangeHi, rangeLo, setRange } from './inline/range';

const FLT_MIN: f32 = 1.17549435e-38;

// Range of the current block: NaN-skipping, lane-order independent (see inline/range.ts).
function blockRange(src: usize, n: i32): void {
  setRange(f32.POSITIVE_INFINITY, f32.NEGATIVE_INFINITY);
  foldRun(src, n);
}

export function q4_quantize_f32(src: usize, rows: i32, K: i32, B: i32, mode: i32, scales: usize, zps: usize, codes: usize, codeStride: i32): void {
  const kb = (K + B - 1) / B;
  for (let r = 0; r < rows; r++) {
    const row = src + ((<usize>r * <usize>K) << 2);
    const out = codes + <usize>r * <usize>codeStride;
    const blk = <usize>r * <usize>kb;
    let zp: f32 = 0;
    for (let b = 0; b < kb; b++) {
      const k0 = b * B;
      const len = min(B, K - k0);
      blockRange(row + (<usize>k0 << 2), len);
      let lo = rangeLo();
      let hi = rangeHi();
      if (lo > hi) { lo = 0; hi = 0; } // block is all NaN
      let s: f32;
      if (mode == 2) {
        lo = min<f32>(lo, 0);
        hi = max<f32>(hi, 0);
        s = (hi - lo) / 15;
        if (s >= FLT_MIN) {
          zp = nearest<f32>(-lo / s);
          zp = 0 < zp ? zp : 0; // also maps NaN (from infinite ranges) to 0
          zp = zp < 15 ? zp : 15;
        } else {
          s = 1;
          zp = 0;
        }
      } else {
        s = max<f32>(-lo, hi) / 7;
        if (!(s >= FLT_MIN)) s = 1;
        zp = mode == 1 ? 8 : 0;
      }
      store<f32>(scales + ((blk + <usize>b) << 2), s);
      store<u8>(zps + blk + <usize>b, <u8>zp);
      if (mode == 0) quantize_range_f32_i8(row + (<usize>k0 << 2), len, s, 0, -8, 7, out + <usize>k0);
      else quantize_range_f32_u8(row + (<usize>k0 << 2), len, s, zp, 0, 15, out + <usize>k0);
    }
    // Padding codes carry the last block's zero point, i.e. they dequantize to 0.
    for (let k = K; k < codeStride; k++) store<u8>(out + <usize>k, <u8>zp);
  }
}

// Inverse of q4_quantize_f32 on unpacked codes (mode 0 codes must be sign-extended i8).
export function q4_dequantize_f32(codes: usize, rows: i32, K: i32, B: i32, mode: i32, scales: usize, zps: usize, dst: usize, codeStride: i32): void {
  const kb = (K + B - 1) / B;
  for (let r = 0; r < rows; r++) {
    const row = codes + <usize>r * <usize>codeStride;
    const out = dst + ((<usize>r * <usize>K) << 2);
    const blk = <usize>r * <usize>kb;
    for (let b = 0; b < kb; b++) {
      const k0 = b * B;
      const len = min(B, K - k0);
      const s = load<f32>(scales + ((blk + <usize>b) << 2));
      if (mode == 0) dequantize_i8_f32(row + <usize>k0, len, s, 0, out + (<usize>k0 << 2));
      else dequantize_u8_f32(row + <usize>k0, len, s, <f32>load<u8>(zps + blk + <usize>b), out + (<usize>k0 << 2));
    }
  }
}

// dst[j] = src[2j] & 15 | (src[2j+1] & 15) << 4; an odd count leaves the last high nibble 0.
export function pack_nibbles(src: usize, n: i32, dst: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    // Read byte pairs as u16 lanes (low byte = even element): keep bits 0-3 and move bits 8-11 to 4-7.
    const lo = i16x8.splat(0x000f);
    const hi = i16x8.splat(0x00f0);
    for (; i + 32 <= n; i += 32) {
      const a = v128.load(src + <usize>i);
      const b = v128.load(src + <usize>i, 16);
      const pa = v128.or(v128.and(a, lo), v128.and(i16x8.shr_u(a, 4), hi));
      const pb = v128.or(v128.and(b, lo), v128.and(i16x8.shr_u(b, 4), hi));
      v128.store(dst + (<usize>i >> 1), i8x16.narrow_i16x8_u(pa, pb));
    }
  }
  for (; i + 2 <= n; i += 2) {
    store<u8>(dst + (<usize>i >> 1), (load<u8>(src + <usize>i) & 15) | ((load<u8>(src + <usize>i + 1) & 15) << 4));
  }
  if (i < n) store<u8>(dst + (<usize>i >> 1), load<u8>(src + <usize>i) & 15);
}

// Inverse of pack_nibbles: n codes, one per byte; `signed` sign-extends (INT4), else 0..15 (UINT4).
export function unpack_nibbles(src: usize, n: i32, dst: usize, signed: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const m = i8x16.splat(15);
    const eight = i8x16.splat(8);
    for (; i + 32 <= n; i += 32) {
      const v = v128.load(src + (<usize>i >> 1));
      let l = v128.and(v, m);
      let h = i8x16.shr_u(v, 4);
      if (signed) {
        // (x ^ 8) - 8 sign-extends a 4-bit value held in a byte.
        l = i8x16.sub(v128.xor(l, eight), eight);
        h = i8x16.sub(v128.xor(h, eight), eight);
      }
      v128.store(dst + <usize>i, i8x16.shuffle(l, h, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
      v128.store(dst + <usize>i, i8x16.shuffle(l, h, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), 16);
    }
  }
  for (; i < n; i++) {
    const byte = <i32>load<u8>(src + (<usize>i >> 1));
    let x = (i & 1) ? byte >> 4 : byte & 15;
    if (signed) x = (x ^ 8) - 8;
    store<u8>(dst + <usize>i, <u8>x);
  }
}
