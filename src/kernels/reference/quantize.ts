/**
 * Plain-TypeScript twin of the quantize kernels (assembly/quantize.ts, assembly/blockq.ts): same
 * results bit for bit. It defines the semantics and holds the argument checks and layout helpers
 * shared with the WASM wrappers (../quantize.ts).
 *
 * Affine int8/uint8 (ONNX QuantizeLinear / DequantizeLinear, numpy `np.clip(np.rint(x / s) + zp)`):
 *   q = saturate(round_half_even(x / s) + zp)   in float32: x / s is a float32 division
 *   y = (q - zp) * s                            float32 product
 * NaN quantizes to the LOW bound (int8 -128, uint8 0), which is what onnxruntime's QuantizeLinear
 * returns (its MLAS kernel clamps with MAXPS / FMAXNM, which yield the non-NaN operand). ±Inf
 * saturate. Scales are rounded to float32 and must be positive and finite; zero points must be
 * integers inside the type's range.
 *
 * 4-bit blockwise (see assembly/blockq.ts for the per-block formulas): blocks of `blockSize`
 * elements along the last axis, codes packed as ONNX INT4/UINT4 (first element in the low nibble).
 */
import { axisView, checkShape, kernelArg } from './stats.js';
import type { AxisView } from './stats.js';

export type QType = 'int8' | 'uint8';

export interface DequantizeParams {
  /** One scale (per tensor), or one per index of `axis` (per channel). Rounded to float32. */
  scale: number | ArrayLike<number>;
  /** Zero point(s), same granularity as `scale` (a single number is broadcast). Default 0. */
  zeroPoint?: number | ArrayLike<number>;
  /** Tensor shape; required for per-channel parameters, checked against the data when given. */
  shape?: readonly number[];
  /** Channel axis for per-channel parameters (negative counts from the end). Default 1, as ONNX.
   *  Ignored for per-tensor parameters. */
  axis?: number;
}

export interface QuantizeParams extends DequantizeParams {
  type: QType;
}

export const QRANGE: Record<QType, readonly [number, number]> = { int8: [-128, 127], uint8: [0, 255] };

/** Resolved parameters: per tensor (view undefined) or per channel with float32 arrays of length C. */
export interface ResolvedParams {
  view?: AxisView;
  scales: Float32Array;
  zps: Float32Array;
}

/** Check scale/zero point against the data and the range [lo, hi]; every failure is E_KERNEL_ARG. */
export function resolveParams(p: DequantizeParams, length: number, lo: number, hi: number): ResolvedParams {
  const perChannel = typeof p.scale !== 'number';
  let view: AxisView | undefined;
  if (perChannel) {
    if (p.shape === undefined) throw kernelArg('per-channel scales need the tensor shape');
    view = axisView(p.shape, p.axis ?? 1, length);
  } else if (p.shape !== undefined) checkShape(p.shape, length);
  const C = perChannel ? view!.C : 1;
  const scales = new Float32Array(C);
  const zps = new Float32Array(C);
  const sIn = p.scale;
  const zIn = p.zeroPoint ?? 0;
  if (typeof sIn !== 'number' && sIn.length !== C) throw kernelArg(`expected ${C} scales (dimension ${view!.axis}), got ${sIn.length}`);
  if (typeof zIn !== 'number' && (!perChannel || zIn.length !== C)) throw kernelArg(`expected ${perChannel ? C : 'a single'} zero point(s), got ${zIn.length}`);
  for (let c = 0; c < C; c++) {
    const s = Math.fround(typeof sIn === 'number' ? sIn : sIn[c]!);
    if (!(s > 0 && s < Infinity)) throw kernelArg(`scale must be positive and finite in float32, got ${typeof sIn === 'number' ? sIn : sIn[c]}`);
    const z = typeof zIn === 'number' ? zIn : zIn[c]!;
    if (!Number.isInteger(z) || z < lo || z > hi) throw kernelArg(`zero point ${z} is not an integer in [${lo}, ${hi}]`);
    scales[c] = s;
    zps[c] = z;
  }
  return perChannel ? { view: view!, scales, zps } : { scales, zps };
}

/** Round half to even, like f32.nearest / np.rint (Math.round rounds halves up). */
export function rint(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One element of QuantizeLinear saturated to [lo, hi]; `lo < y ? y : lo` sends NaN to lo. */
export function quantize1(x: number, s: number, zp: number, lo: number, hi: number): number {
  let y = Math.fround(rint(Math.fround(x / s)) + zp);
  y = lo < y ? y : lo;
  return y < hi ? y : hi;
}

/** Channel of flat element index `i` in an [outer, C, inner] view. */
function channelOf(i: number, v: AxisView): number {
  return Math.floor(i / v.inner) % v.C;
}

export function quantizeLinear(x: Float32Array, p: QuantizeParams & { type: 'int8' }): Int8Array;
export function quantizeLinear(x: Float32Array, p: QuantizeParams & { type: 'uint8' }): Uint8Array;
export function quantizeLinear(x: Float32Array, p: QuantizeParams): Int8Array | Uint8Array;
export function quantizeLinear(x: Float32Array, p: QuantizeParams): Int8Array | Uint8Array {
  const [lo, hi] = QRANGE[p.type];
  const { view, scales, zps } = resolveParams(p, x.length, lo, hi);
  const out = p.type === 'int8' ? new Int8Array(x.length) : new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = view ? channelOf(i, view) : 0;
    out[i] = quantize1(x[i]!, scales[c]!, zps[c]!, lo, hi);
  }
  return out;
}

export function dequantizeLinear(q: Int8Array | Uint8Array, p: DequantizeParams): Float32Array {
  const [lo, hi] = QRANGE[q instanceof Int8Array ? 'int8' : 'uint8'];
  const { view, scales, zps } = resolveParams(p, q.length, lo, hi);
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const c = view ? channelOf(i, view) : 0;
    // (q - zp) has at most 10 significant bits, so the double product is exact and fround rounds once.
    out[i] = Math.fround((q[i]! - zps[c]!) * scales[c]!);
  }
  return out;
}

/**
 * Float64 sums behind the error statistics of a reconstruction `got` of `ref` (the numbers
 * src/eval/metrics.ts `errorStatsFromSums` turns into maxAbs / meanAbs / SNR / cosine):
 * [max |r - g|, Σ|r - g|, Σ r², Σ (r - g)², Σ r·g, Σ g², elements counted]. Elements whose r is
 * NaN or ±Inf are skipped; a NaN difference makes the max +Inf.
 */
export const ERROR_SUMS = 7;

/** The errorStats loop body for one element, accumulating into `acc` (length ERROR_SUMS). */
export function accumulateError(acc: Float64Array, r: number, g: number): void {
  if (r - r !== 0) return;
  const e = r - g;
  const d = e < 0 ? -e : e;
  if (!(d <= acc[0]!)) acc[0] = d === d ? d : Infinity;
  acc[1] += d;
  acc[2] += r * r;
  acc[3] += e * e;
  acc[4] += r * g;
  acc[5] += g * g;
  acc[6] += 1;
}

/**
 * QuantizeLinear plus the error sums of its dequantized value against `x`, in index order: the
 * twin of the quantize_stats_* kernels, and equal bit for bit to the sums of
 * errorStats(x, dequantizeLinear(quantizeLinear(x, p), p)).
 */
export function quantizeLinearStats(x: Float32Array, p: QuantizeParams): { q: Int8Array | Uint8Array; sums: Float64Array } {
  const [lo, hi] = QRANGE[p.type];
  const { view, scales, zps } = resolveParams(p, x.length, lo, hi);
  const q = p.type === 'int8' ? new Int8Array(x.length) : new Uint8Array(x.length);
  const sums = new Float64Array(ERROR_SUMS);
  for (let i = 0; i < x.length; i++) {
    const c = view ? channelOf(i, view) : 0;
    const v = quantize1(x[i]!, scales[c]!, zps[c]!, lo, hi);
    q[i] = v;
    accumulateError(sums, x[i]!, Math.fround((v - zps[c]!) * scales[c]!));
  }
  return { q, sums };
}

/**
 * Scale and zero point for a value range, as onnxruntime.quantization (compute_scale_zp,
 * reduce_range off) chooses them:
 *   rmin = min(min, 0), rmax = max(max, 0)           (0 must be exactly representable)
 *   symmetric: rmax = max(|rmin|, |rmax|), rmin = -rmax; q range int8 [-127, 127], uint8 [0, 255]
 *   asymmetric: q range int8 [-128, 127], uint8 [0, 255]
 *   scale = (rmax - rmin) / (qmax - qmin)             (float64, then rounded to float32)
 *   zp = symmetric ? round((qmin + qmax) / 2)         (int8 0, uint8 128)
 *                  : round(qmin - rmin / scale)       (round half even, float64 scale)
 *   a scale below FLT_MIN (all-zero range) becomes 1 with zp 0.
 */
export function chooseQuantParams(min: number, max: number, type: QType, symmetric = false): { scale: number; zeroPoint: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) throw kernelArg(`bad value range [${min}, ${max}]`);
  const qmin = type === 'int8' && symmetric ? -127 : QRANGE[type][0];
  const qmax = QRANGE[type][1];
  let rmin = Math.min(min, 0);
  let rmax = Math.max(max, 0);
  if (symmetric) {
    rmax = Math.max(-rmin, rmax);
    rmin = -rmax;
  }
  const scale = (rmax - rmin) / (qmax - qmin);
  if (scale < 2 ** -126) return { scale: 1, zeroPoint: 0 };
  const zp = symmetric ? rint((qmin + qmax) / 2) : rint(qmin - rmin / scale);
  return { scale: Math.fround(scale), zeroPoint: Math.min(qmax, Math.max(qmin, zp)) };
}

/** chooseQuantParams per channel (e.g. with the output of minMaxAxis). */
export function chooseQuantParamsAxis(min: ArrayLike<number>, max: ArrayLike<number>, type: QType, symmetric = false): { scales: Float32Array; zeroPoints: Int32Array } {
  if (min.length !== max.length) throw kernelArg(`${min.length} minima but ${max.length} maxima`);
  const scales = new Float32Array(min.length);
  const zeroPoints = new Int32Array(min.length);
  for (let c = 0; c < min.length; c++) {
    const r = chooseQuantParams(min[c]!, max[c]!, type, symmetric);
    scales[c] = r.scale;
    zeroPoints[c] = r.zeroPoint;
  }
  return { scales, zeroPoints };
}

// ---------------------------------------------------------------------------------------------
// 4-bit blockwise

/** 'int4': symmetric signed codes; 'uint4-sym': symmetric with zero point 8; 'uint4': per-block zero point. */
export type Q4Mode = 'int4' | 'uint4-sym' | 'uint4';
export const Q4_MODE_CODE: Record<Q4Mode, number> = { int4: 0, 'uint4-sym': 1, uint4: 2 };

/** ONNX blocked QuantizeLinear output (axis = last, block_size = blockSize). */
export interface Blockwise4 {
  mode: Q4Mode;
  shape: number[];
  blockSize: number;
  /** INT4 (mode int4) or UINT4 codes of the whole tensor, packed two per byte, first in the low nibble. */
  data: Uint8Array;
  /** Scales, shape [...shape[:-1], ceil(K / blockSize)]. */
  scales: Float32Array;
  /** One zero point per block (same shape as scales), unpacked: int4 0, uint4-sym 8. */
  zeroPoints: Uint8Array;
}

/** com.microsoft MatMulNBits (bits = 4) weight inputs for a logical [N, K] weight. */
export interface MatMulNBitsWeights {
  N: number;
  K: number;
  blockSize: number;
  /** Input B: uint8 [N, kBlocks, blockSize / 2]; each row padded to whole blocks. */
  B: Uint8Array;
  /** Input scales: float32 [N, kBlocks]. */
  scales: Float32Array;
  /** Input zero_points: uint8 [N, ceil(kBlocks / 2)], packed like B; absent when symmetric (default 8). */
  zeroPoints?: Uint8Array;
}

/** Geometry of a [rows, K] view with blocks along K. */
export interface Block4View {
  rows: number;
  K: number;
  kBlocks: number;
}

/** ONNX blocked quantization allows any block size; we support 16..256 (MatMulNBits: powers of two). */
export function checkBlockSize(blockSize: number, powerOfTwo: boolean): void {
  const ok = Number.isInteger(blockSize) && blockSize >= 16 && blockSize <= 256 && (!powerOfTwo || (blockSize & (blockSize - 1)) === 0);
  if (!ok) throw kernelArg(`block size must be ${powerOfTwo ? 'a power of two ' : 'an integer '}in [16, 256], got ${blockSize}`);
}

export function block4View(shape: readonly number[], length: number, blockSize: number): Block4View {
  if (shape.length === 0) throw kernelArg('blockwise quantization needs rank >= 1');
  axisView(shape, -1, length);
  const K = shape[shape.length - 1]!;
  const rows = K === 0 ? 0 : length / K;
  return { rows, K, kBlocks: Math.ceil(K / blockSize) };
}

export function checkMatMulNBits(length: number, N: number, K: number, blockSize: number): Block4View {
  checkBlockSize(blockSize, true);
  if (!Number.isSafeInteger(N) || !Number.isSafeInteger(K) || N < 0 || K < 0 || N * K !== length) {
    throw kernelArg(`weight of ${length} elements is not [N=${N}, K=${K}]`);
  }
  return { rows: N, K, kBlocks: Math.ceil(K / blockSize) };
}

/** Block scale and zero point exactly as q4_quantize_f32 computes them (float32 arithmetic). */
function block4Params(x: Float32Array, off: number, len: number, mode: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = off; i < off + len; i++) {
    const v = x[i]!;
    if (v === v) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (lo > hi) lo = hi = 0;
  const FLT_MIN = 2 ** -126;
  if (mode === 2) {
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
    const s = Math.fround(Math.fround(hi - lo) / 15);
    if (!(s >= FLT_MIN)) return [1, 0];
    let zp = rint(Math.fround(-lo / s));
    zp = 0 < zp ? zp : 0;
    return [s, zp < 15 ? zp : 15];
  }
  const s = Math.fround(Math.max(-lo, hi) / 7);
  return [s >= FLT_MIN ? s : 1, mode === 1 ? 8 : 0];
}

/**
 * Unpacked twin of q4_quantize_f32: codes one per array element (int4 codes as signed values),
 * rows `codeStride` apart, padding after K filled with the last block's zero point.
 */
export function q4QuantizeRows(x: Float32Array, v: Block4View, blockSize: number, mode: number, codeStride: number): { codes: Int8Array; scales: Float32Array; zps: Uint8Array } {
  const { rows, K, kBlocks } = v;
  const codes = new Int8Array(rows * codeStride);
  const scales = new Float32Array(rows * kBlocks);
  const zps = new Uint8Array(rows * kBlocks);
  const [lo, hi] = mode === 0 ? [-8, 7] : [0, 15];
  for (let r = 0; r < rows; r++) {
    let zp = 0;
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const len = Math.min(blockSize, K - k0);
      const [s, z] = block4Params(x, r * K + k0, len, mode);
      zp = z;
      scales[r * kBlocks + b] = s;
      zps[r * kBlocks + b] = z;
      for (let k = k0; k < k0 + len; k++) codes[r * codeStride + k] = quantize1(x[r * K + k]!, s, z, lo, hi);
    }
    for (let k = K; k < codeStride; k++) codes[r * codeStride + k] = zp;
  }
  return { codes, scales, zps };
}

/** Twin of q4_dequantize_f32 on unpacked codes. */
export function q4DequantizeRows(codes: ArrayLike<number>, v: Block4View, blockSize: number, mode: number, scales: ArrayLike<number>, zps: ArrayLike<number>, codeStride: number): Float32Array {
  const { rows, K, kBlocks } = v;
  const out = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < K; k++) {
      const b = r * kBlocks + Math.floor(k / blockSize);
      const zp = mode === 0 ? 0 : zps[b]!;
      out[r * K + k] = Math.fround((codes[r * codeStride + k]! - zp) * scales[b]!);
    }
  }
  return out;
}

/** Pack 4-bit codes two per byte, first in the low nibble (the high nibble of an odd tail is 0). */
export function packNibbles(codes: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) out[i >> 1]! |= (codes[i]! & 15) << ((i & 1) * 4);
  return out;
}

/** Unpack `n` 4-bit codes; `signed` sign-extends (INT4). */
export function unpackNibbles(packed: Uint8Array, n: number, signed: boolean): Int8Array {
  if (packed.length !== Math.ceil(n / 2)) throw kernelArg(`${n} 4-bit codes need ${Math.ceil(n / 2)} bytes, got ${packed.length}`);
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const x = (packed[i >> 1]! >> ((i & 1) * 4)) & 15;
    out[i] = signed ? (x ^ 8) - 8 : x;
  }
  return out;
}

/** Pack per-row zero points of MatMulNBits: [rows, kBlocks] -> [rows, ceil(kBlocks / 2)]. */
export function packZeroPointRows(zps: Uint8Array, rows: number, kBlocks: number): Uint8Array {
  const stride = Math.ceil(kBlocks / 2);
  const out = new Uint8Array(rows * stride);
  for (let r = 0; r < rows; r++) out.set(packNibbles(zps.subarray(r * kBlocks, (r + 1) * kBlocks)), r * stride);
  return out;
}

export function unpackZeroPointRows(packed: Uint8Array | undefined, rows: number, kBlocks: number): Uint8Array {
  const stride = Math.ceil(kBlocks / 2);
  if (packed === undefined) return new Uint8Array(rows * kBlocks).fill(8);
  if (packed.length !== rows * stride) throw kernelArg(`zero_points must hold ${rows * stride} bytes, got ${packed.length}`);
  const out = new Uint8Array(rows * kBlocks);
  for (let r = 0; r < rows; r++) out.set(unpackNibbles(packed.subarray(r * stride, (r + 1) * stride), 2 * stride, false).subarray(0, kBlocks), r * kBlocks);
  return out;
}

/** Validate a Blockwise4 for dequantization; returns its view. */
export function checkBlockwise4(b: Blockwise4): Block4View {
  checkBlockSize(b.blockSize, false);
  let n = 1;
  for (const d of b.shape) n *= d;
  const v = block4View(b.shape, Number.isSafeInteger(n) ? n : -1, b.blockSize);
  if (b.data.length !== Math.ceil(n / 2)) throw kernelArg(`${n} 4-bit codes need ${Math.ceil(n / 2)} bytes, got ${b.data.length}`);
  const nb = v.rows * v.kBlocks;
  if (b.scales.length !== nb || b.zeroPoints.length !== nb) throw kernelArg(`expected ${nb} scales and zero points, got ${b.scales.length} and ${b.zeroPoints.length}`);
  for (const z of b.zeroPoints) {
    if (b.mode === 'int4' ? z !== 0 : z > 15) throw kernelArg(`zero point ${z} invalid for ${b.mode}`);
  }
  return v;
}

export function quantizeBlockwise4(x: Float32Array, shape: readonly number[], blockSize: number, mode: Q4Mode): Blockwise4 {
  checkBlockSize(blockSize, false);
  const v = block4View(shape, x.length, blockSize);
  const { codes, scales, zps } = q4QuantizeRows(x, v, blockSize, Q4_MODE_CODE[mode], v.K);
  return { mode, shape: [...shape], blockSize, data: packNibbles(codes), scales, zeroPoints: zps };
}

export function dequantizeBlockwise4(b: Blockwise4): Float32Array {
  const v = checkBlockwise4(b);
  const codes = unpackNibbles(b.data, v.rows * v.K, b.mode === 'int4');
  return q4DequantizeRows(codes, v, b.blockSize, Q4_MODE_CODE[b.mode], b.scales, b.zeroPoints, v.K);
}

/** Quantize a row-major [N, K] weight (MatMul's B transposed) to MatMulNBits inputs. */
export function quantizeMatMulNBits(w: Float32Array, N: number, K: number, blockSize: number, symmetric: boolean): MatMulNBitsWeights {
  const v = checkMatMulNBits(w.length, N, K, blockSize);
  const { codes, scales, zps } = q4QuantizeRows(w, v, blockSize, symmetric ? 1 : 2, v.kBlocks * blockSize);
  const out: MatMulNBitsWeights = { N, K, blockSize, B: packNibbles(codes), scales };
  if (!symmetric) out.zeroPoints = packZeroPointRows(zps, N, v.kBlocks);
  return out;
}

export function checkMatMulNBitsWeights(m: MatMulNBitsWeights): Block4View {
  const v = checkMatMulNBits(m.N * m.K, m.N, m.K, m.blockSize);
  if (m.B.length !== m.N * v.kBlocks * (m.blockSize / 2)) throw kernelArg(`B must hold ${m.N * v.kBlocks * (m.blockSize / 2)} bytes, got ${m.B.length}`);
  if (m.scales.length !== m.N * v.kBlocks) throw kernelArg(`scales must hold ${m.N * v.kBlocks} values, got ${m.scales.length}`);
  return v;
}

/** Dequantize MatMulNBits inputs back to the row-major [N, K] float32 weight. */
export function dequantizeMatMulNBits(m: MatMulNBitsWeights): Float32Array {
  const v = checkMatMulNBitsWeights(m);
  const zps = unpackZeroPointRows(m.zeroPoints, m.N, v.kBlocks);
  const stride = v.kBlocks * m.blockSize;
  return q4DequantizeRows(unpackNibbles(m.B, m.N * stride, false), v, m.blockSize, 2, m.scales, zps, stride);
}
