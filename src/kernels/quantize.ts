/**
 * Affine int8/uint8 and 4-bit blockwise quantization on the WASM kernels (assembly/quantize.ts,
 * assembly/blockq.ts). The semantics, formulas and argument rules are documented and defined by
 * the reference twin (reference/quantize.ts); results are bit-identical to it. Inputs of any size
 * are processed in bounded windows (window.ts).
 */
import type { Kernels } from './loader.js';
import {
  ERROR_SUMS,
  QRANGE,
  Q4_MODE_CODE,
  block4View,
  checkBlockSize,
  checkBlockwise4,
  checkMatMulNBits,
  checkMatMulNBitsWeights,
  packZeroPointRows,
  resolveParams,
  unpackZeroPointRows,
} from './reference/quantize.js';
import type { Block4View, Blockwise4, DequantizeParams, MatMulNBitsWeights, Q4Mode, QuantizeParams, ResolvedParams } from './reference/quantize.js';
import { forEachWindow, resolveKernels, windowElements, withArena } from './window.js';
import type { KernelOptions } from './window.js';

export { chooseQuantParams, chooseQuantParamsAxis, packNibbles, unpackNibbles } from './reference/quantize.js';
export type { Blockwise4, DequantizeParams, MatMulNBitsWeights, Q4Mode, QType, QuantizeParams } from './reference/quantize.js';
export type { KernelOptions } from './window.js';

/** Copy per-channel scales and zero points into the arena once (they stay for every window). */
function channelParams(k: Kernels, r: ResolvedParams): { scales: number; zps: number } {
  const C = r.scales.length;
  const scales = k.alloc(C * 4);
  const zps = k.alloc(C * 4);
  k.f32(scales, C).set(r.scales);
  k.f32(zps, C).set(r.zps);
  return { scales, zps };
}

export function quantizeLinear(x: Float32Array, p: QuantizeParams & { type: 'int8' }, opts?: KernelOptions): Int8Array;
export function quantizeLinear(x: Float32Array, p: QuantizeParams & { type: 'uint8' }, opts?: KernelOptions): Uint8Array;
export function quantizeLinear(x: Float32Array, p: QuantizeParams, opts?: KernelOptions): Int8Array | Uint8Array;
export function quantizeLinear(x: Float32Array, p: QuantizeParams, opts?: KernelOptions): Int8Array | Uint8Array {
  const [lo, hi] = QRANGE[p.type];
  const r = resolveParams(p, x.length, lo, hi);
  const out = p.type === 'int8' ? new Int8Array(x.length) : new Uint8Array(x.length);
  const suffix = p.type === 'int8' ? 'i8' : 'u8';
  const k = resolveKernels(opts);
  withArena(k, () => {
    const ch = r.view ? channelParams(k, r) : undefined;
    forEachWindow(x.length, windowElements(5, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count * 4);
        const dst = k.alloc(count);
        k.f32(src, count).set(x.subarray(start, start + count));
        if (r.view && ch) {
          const { C, inner } = r.view;
          k.raw[`quantize_axis_f32_${suffix}`](src, count, C, inner, Math.floor(start / inner) % C, start % inner, ch.scales, ch.zps, dst);
        } else {
          k.raw[`quantize_f32_${suffix}`](src, count, r.scales[0], r.zps[0], dst);
        }
        out.set(p.type === 'int8' ? k.i8(dst, count) : k.u8(dst, count), start);
      });
    });
  });
  return out;
}

export function dequantizeLinear(q: Int8Array | Uint8Array, p: DequantizeParams, opts?: KernelOptions): Float32Array {
  const signed = q instanceof Int8Array;
  const [lo, hi] = QRANGE[signed ? 'int8' : 'uint8'];
  const r = resolveParams(p, q.length, lo, hi);
  const out = new Float32Array(q.length);
  const suffix = signed ? 'i8' : 'u8';
  const k = resolveKernels(opts);
  withArena(k, () => {
    const ch = r.view ? channelParams(k, r) : undefined;
    forEachWindow(q.length, windowElements(5, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count);
        const dst = k.alloc(count * 4);
        (signed ? k.i8(src, count) : k.u8(src, count)).set(q.subarray(start, start + count));
        if (r.view && ch) {
          const { C, inner } = r.view;
          k.raw[`dequantize_axis_${suffix}_f32`](src, count, C, inner, Math.floor(start / inner) % C, start % inner, ch.scales, ch.zps, dst);
        } else {
          k.raw[`dequantize_${suffix}_f32`](src, count, r.scales[0], r.zps[0], dst);
        }
        out.set(k.f32(dst, count), start);
      });
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fused quantize + error statistics (quantize_stats_* kernels): the codes of quantizeLinear and the
// float64 sums of reference/quantize.ts `accumulateError` over the dequantized values, without
// materialising them. The scalar build matches the reference bit for bit; the SIMD build adds in
// four interleaved partial sums (see assembly/quantize.ts), so its sums differ in the last bits.

/** Quantizes consecutive windows of one tensor held in the arena, accumulating the error sums. */
export interface QuantizeStatsWindows {
  /** Quantize `count` floats at `src` (elements start..start+count of the tensor) into bytes at `dst`. */
  add(src: number, start: number, count: number, dst: number): void;
  /** [max |r - g|, Σ|r - g|, Σ r², Σ (r - g)², Σ r·g, Σ g², count] so far (a copy). */
  sums(): Float64Array;
}

/**
 * Checks `p` against a tensor of `length` elements and allocates its parameters and accumulator in
 * the arena: call inside the caller's arena scope.
 */
export function quantizeStatsWindows(k: Kernels, p: QuantizeParams, length: number): QuantizeStatsWindows {
  const [lo, hi] = QRANGE[p.type];
  const r = resolveParams(p, length, lo, hi);
  const suffix = p.type === 'int8' ? 'i8' : 'u8';
  const ch = r.view ? channelParams(k, r) : undefined;
  const acc = k.alloc(ERROR_SUMS * 8);
  k.f64(acc, ERROR_SUMS).fill(0);
  const axisKernel = k.raw[`quantize_stats_axis_f32_${suffix}`] as (...a: number[]) => void;
  const flatKernel = k.raw[`quantize_stats_f32_${suffix}`] as (...a: number[]) => void;
  return {
    add(src, start, count, dst) {
      if (r.view && ch) {
        const { C, inner } = r.view;
        axisKernel(src, count, C, inner, Math.floor(start / inner) % C, start % inner, ch.scales, ch.zps, dst, acc);
      } else {
        flatKernel(src, count, r.scales[0]!, r.zps[0]!, dst, acc);
      }
    },
    sums: () => k.f64(acc, ERROR_SUMS).slice(),
  };
}

export function quantizeLinearStats(x: Float32Array, p: QuantizeParams, opts?: KernelOptions): { q: Int8Array | Uint8Array; sums: Float64Array } {
  const out = p.type === 'int8' ? new Int8Array(x.length) : new Uint8Array(x.length);
  const k = resolveKernels(opts);
  return withArena(k, () => {
    const w = quantizeStatsWindows(k, p, x.length);
    forEachWindow(x.length, windowElements(5, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count * 4);
        const dst = k.alloc(count);
        k.f32(src, count).set(x.subarray(start, start + count));
        w.add(src, start, count, dst);
        out.set(p.type === 'int8' ? k.i8(dst, count) : k.u8(dst, count), start);
      });
    });
    return { q: out, sums: w.sums() };
  });
}

// ---------------------------------------------------------------------------------------------
// 4-bit blockwise. Windows hold whole rows; with an odd row length K the flat nibble packing puts
// row boundaries mid-byte, so windows then hold an even number of rows.

interface Q4Out {
  data: Uint8Array;
  scales: Float32Array;
  zps: Uint8Array;
}

/** Quantize rows of `x` ([rows, K]) to packed codes with rows `codeStride` codes apart. */
function q4Quantize(x: Float32Array, v: Block4View, blockSize: number, mode: number, codeStride: number, opts?: KernelOptions): Q4Out {
  const { rows, K, kBlocks } = v;
  const res: Q4Out = { data: new Uint8Array(Math.ceil((rows * codeStride) / 2)), scales: new Float32Array(rows * kBlocks), zps: new Uint8Array(rows * kBlocks) };
  const k = resolveKernels(opts);
  const rowBytes = K * 4 + codeStride * 1.5 + kBlocks * 5;
  forEachWindow(rows, windowElements(rowBytes, codeStride % 2 ? 2 : 1, opts), (r0, count) => {
    withArena(k, () => {
      const n = count * codeStride;
      const src = k.alloc(count * K * 4);
      const scales = k.alloc(count * kBlocks * 4);
      const zps = k.alloc(count * kBlocks);
      const codes = k.alloc(n);
      const packed = k.alloc(Math.ceil(n / 2));
      k.f32(src, count * K).set(x.subarray(r0 * K, (r0 + count) * K));
      k.raw.q4_quantize_f32(src, count, K, blockSize, mode, scales, zps, codes, codeStride);
      k.raw.pack_nibbles(codes, n, packed);
      res.data.set(k.u8(packed, Math.ceil(n / 2)), (r0 * codeStride) / 2);
      res.scales.set(k.f32(scales, count * kBlocks), r0 * kBlocks);
      res.zps.set(k.u8(zps, count * kBlocks), r0 * kBlocks);
    });
  });
  return res;
}

/** Inverse of q4Quantize given unpacked per-block zero points. */
function q4Dequantize(data: Uint8Array, v: Block4View, blockSize: number, mode: number, scalesIn: Float32Array, zpsIn: Uint8Array, codeStride: number, opts?: KernelOptions): Float32Array {
  const { rows, K, kBlocks } = v;
  const out = new Float32Array(rows * K);
  const k = resolveKernels(opts);
  const rowBytes = K * 4 + codeStride * 1.5 + kBlocks * 5;
  forEachWindow(rows, windowElements(rowBytes, codeStride % 2 ? 2 : 1, opts), (r0, count) => {
    withArena(k, () => {
      const n = count * codeStride;
      const packed = k.alloc(Math.ceil(n / 2));
      const codes = k.alloc(n);
      const scales = k.alloc(count * kBlocks * 4);
      const zps = k.alloc(count * kBlocks);
      const dst = k.alloc(count * K * 4);
      const p0 = (r0 * codeStride) / 2;
      k.u8(packed, Math.ceil(n / 2)).set(data.subarray(p0, p0 + Math.ceil(n / 2)));
      k.f32(scales, count * kBlocks).set(scalesIn.subarray(r0 * kBlocks, (r0 + count) * kBlocks));
      k.u8(zps, count * kBlocks).set(zpsIn.subarray(r0 * kBlocks, (r0 + count) * kBlocks));
      k.raw.unpack_nibbles(packed, n, codes, mode === 0 ? 1 : 0);
      k.raw.q4_dequantize_f32(codes, count, K, blockSize, mode, scales, zps, dst, codeStride);
      out.set(k.f32(dst, count * K), r0 * K);
    });
  });
  return out;
}

/**
 * ONNX blocked QuantizeLinear along the last axis (block_size = blockSize, any integer 16..256):
 * INT4 codes for 'int4', UINT4 otherwise, packed over the whole tensor.
 */
export function quantizeBlockwise4(x: Float32Array, shape: readonly number[], blockSize: number, mode: Q4Mode, opts?: KernelOptions): Blockwise4 {
  checkBlockSize(blockSize, false);
  const v = block4View(shape, x.length, blockSize);
  const q = q4Quantize(x, v, blockSize, Q4_MODE_CODE[mode], v.K, opts);
  return { mode, shape: [...shape], blockSize, data: q.data, scales: q.scales, zeroPoints: q.zps };
}

/** ONNX blocked DequantizeLinear: (code - zp) * scale per block. */
export function dequantizeBlockwise4(b: Blockwise4, opts?: KernelOptions): Float32Array {
  const v = checkBlockwise4(b);
  return q4Dequantize(b.data, v, b.blockSize, Q4_MODE_CODE[b.mode], b.scales, b.zeroPoints, v.K, opts);
}

/**
 * MatMulNBits (bits = 4) inputs for a row-major [N, K] float32 weight, i.e. MatMul's [K, N] B
 * transposed. blockSize must be a power of two in 16..256. Symmetric uses zero point 8 and omits
 * the zero_points input; asymmetric stores packed per-block zero points.
 */
export function quantizeMatMulNBits(w: Float32Array, N: number, K: number, blockSize: number, symmetric: boolean, opts?: KernelOptions): MatMulNBitsWeights {
  const v = checkMatMulNBits(w.length, N, K, blockSize);
  const q = q4Quantize(w, v, blockSize, symmetric ? 1 : 2, v.kBlocks * blockSize, opts);
  const out: MatMulNBitsWeights = { N, K, blockSize, B: q.data, scales: q.scales };
  if (!symmetric) out.zeroPoints = packZeroPointRows(q.zps, N, v.kBlocks);
  return out;
}

/** MatMulNBits inputs back to the row-major [N, K] float32 weight. */
export function dequantizeMatMulNBits(m: MatMulNBitsWeights, opts?: KernelOptions): Float32Array {
  const v = checkMatMulNBitsWeights(m);
  const zps = unpackZeroPointRows(m.zeroPoints, m.N, v.kBlocks);
  return q4Dequantize(m.B, v, m.blockSize, 2, m.scales, zps, v.kBlocks * m.blockSize, opts);
}
