/**
 * Carriers for the ONNX dtypes TF.js — the executor every converted graph is checked with — cannot
 * hold: 8- and 4-bit floats and 4- and 2-bit integers. Inside a converted graph (and at its
 * signature) such a tensor travels one element per byte:
 *  - float8e4m3fn / e4m3fnuz / e5m2 / e5m2fnuz / e8m0 and float4e2m1 as uint8 bit patterns;
 *  - int4 / int2 as int8 values, uint4 / uint2 as uint8 values.
 * Converting those graphs needs only data movement, a lookup table (decode) and comparisons (encode),
 * all of which TF and TF.js run exactly (see narrow.ts). This module is the pure data side: which
 * dtype travels how, the value of every code, and packing between ONNX's layout and the carrier.
 */
import { byteLength, dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel, type Tensor } from '../../core/tensor.js';

export type CarrierDtype = 'uint8' | 'int8';

const CARRIER: Partial<Record<DType, CarrierDtype>> = {
  float8e4m3fn: 'uint8', float8e4m3fnuz: 'uint8', float8e5m2: 'uint8', float8e5m2fnuz: 'uint8', float8e8m0: 'uint8', float4e2m1: 'uint8',
  int4: 'int8', int2: 'int8', uint4: 'uint8', uint2: 'uint8',
};

/** The dtype `d` travels in inside a converted graph, or undefined when TF.js holds `d` itself. */
export function carrierOf(d: DType): CarrierDtype | undefined {
  return CARRIER[d];
}

/** True for the float formats, whose carrier holds bit patterns rather than values. */
export function carriesBits(d: DType): boolean {
  return carrierOf(d) === 'uint8' && dtypeInfo(d).isFloat;
}

/**
 * A small float format: `e` exponent and `m` mantissa bits with `bias`; `kind` says what the top codes mean.
 *  - ieee: all-ones exponent is inf (mantissa 0) / NaN (float8e5m2);
 *  - fn: only the all-ones code is NaN, no inf (float8e4m3fn);
 *  - fnuz: 0x80 (negative zero) is the only NaN, no inf, no −0 (the *fnuz formats);
 *  - finite: no inf, no NaN (float4e2m1).
 */
interface SmallFloat {
  e: number;
  m: number;
  bias: number;
  kind: 'ieee' | 'fn' | 'fnuz' | 'finite';
}

const FORMATS: Partial<Record<DType, SmallFloat>> = {
  float8e4m3fn: { e: 4, m: 3, bias: 7, kind: 'fn' },
  float8e4m3fnuz: { e: 4, m: 3, bias: 8, kind: 'fnuz' },
  float8e5m2: { e: 5, m: 2, bias: 15, kind: 'ieee' },
  float8e5m2fnuz: { e: 5, m: 2, bias: 16, kind: 'fnuz' },
  float4e2m1: { e: 2, m: 1, bias: 1, kind: 'finite' },
};

function format(d: DType): SmallFloat {
  const f = FORMATS[d];
  if (!f) throw new ModelsmithError(ErrorCodes.DTYPE, `${d} is not a small float format`, { format: 'onnx' });
  return f;
}

/** Codes of a small float (256 for 8-bit, 16 for float4e2m1). */
export function codeCount(d: DType): number {
  return d === 'float8e8m0' ? 256 : 2 ** (1 + format(d).e + format(d).m);
}

/** The value of every code of a small float format, as decode tables (exact in float32). */
export function codeValues(d: DType): number[] {
  if (d === 'float8e8m0') {
    // Exponent only: 2^(code − 127); 0xFF is NaN.
    return Array.from({ length: 256 }, (_, c) => (c === 255 ? Number.NaN : 2 ** (c - 127)));
  }
  const f = format(d);
  const half = 2 ** (f.e + f.m);
  const top = 2 ** f.e - 1;
  const mag = (c: number): number => {
    const ex = Math.floor(c / 2 ** f.m);
    const mm = c % 2 ** f.m;
    if (f.kind === 'ieee' && ex === top) return mm === 0 ? Infinity : Number.NaN;
    if (f.kind === 'fn' && c === half - 1) return Number.NaN;
    return ex === 0 ? mm * 2 ** (1 - f.bias - f.m) : (2 ** f.m + mm) * 2 ** (ex - f.bias - f.m);
  };
  return Array.from({ length: 2 * half }, (_, c) => {
    if (c < half) return mag(c);
    if (f.kind === 'fnuz' && c === half) return Number.NaN;
    return -mag(c - half);
  });
}

/** How a float32 value is encoded: what the converter's comparison search needs (narrow.ts). */
export interface EncodeTable {
  /** Sign bit of the format (0x80, or 0x8 for float4e2m1). */
  signBit: number;
  /** Largest finite magnitude code. */
  maxCode: number;
  /**
   * Rounding thresholds between magnitude codes: |x| goes to code k + 1 or above when it exceeds
   * `thresholds[k]`, or equals it and `tieUp[k]` (round half to even: code k + 1 is even). The last
   * threshold is the overflow one: crossing it means "beyond the largest finite value".
   */
  thresholds: number[];
  tieUp: boolean[];
  /** Code for NaN inputs, and for overflow / ±inf when not saturating (sign added unless `unsigned`). */
  nan: { code: number; signed: boolean };
  overflow: { code: number; signed: boolean };
  /** No negative zero: a value rounding to zero is code 0 whatever its sign. */
  noNegativeZero: boolean;
}

export function encodeTable(d: DType): EncodeTable {
  const f = format(d);
  const half = 2 ** (f.e + f.m);
  const values = codeValues(d).slice(0, half);
  let maxCode = half - 1;
  while (!Number.isFinite(values[maxCode]!)) maxCode--;
  const thresholds: number[] = [];
  const tieUp: boolean[] = [];
  // One past the largest finite value: the next power-of-two step, as if the format went on.
  const ulpTop = values[maxCode]! - values[maxCode - 1]!;
  for (let k = 0; k <= maxCode; k++) {
    const next = k < maxCode ? values[k + 1]! : values[maxCode]! + ulpTop;
    thresholds.push((values[k]! + next) / 2);
    tieUp.push((k + 1) % 2 === 0);
  }
  switch (f.kind) {
    case 'fn': return { signBit: half, maxCode, thresholds, tieUp, nan: { code: half - 1, signed: false }, overflow: { code: half - 1, signed: true }, noNegativeZero: false };
    case 'ieee': return { signBit: half, maxCode, thresholds, tieUp, nan: { code: half - 1, signed: false }, overflow: { code: maxCode + 1, signed: true }, noNegativeZero: false };
    case 'fnuz': return { signBit: half, maxCode, thresholds, tieUp, nan: { code: half, signed: false }, overflow: { code: half, signed: false }, noNegativeZero: true };
    // float4e2m1 has no NaN; the ONNX reference gives NaN the code of −0 (test_cast_FLOAT16_to_FLOAT4E2M1).
    case 'finite': return { signBit: half, maxCode, thresholds, tieUp, nan: { code: half, signed: false }, overflow: { code: maxCode, signed: true }, noNegativeZero: false };
  }
}

function ctxOf(t: Tensor) {
  return { format: 'onnx', tensor: t.name };
}

/** ONNX layout (sub-byte types packed, low bits first) → carrier tensor with one byte per element. */
export function toCarrier(t: Tensor): Tensor {
  const carrier = carrierOf(t.dtype);
  if (!carrier) return t;
  const n = numel(t.shape, ctxOf(t));
  const bits = dtypeInfo(t.dtype).bits;
  const want = byteLength(t.dtype, n);
  if (t.data.byteLength !== want) throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${t.dtype}[${t.shape.join(',')}] needs ${want} bytes, got ${t.data.byteLength}`, ctxOf(t));
  // 8-bit formats already hold one byte per element: the carrier is the same bytes, not a copy.
  if (bits === 8) return { name: t.name, dtype: carrier, shape: [...t.shape], data: t.data };
  const out = new Uint8Array(n);
  const perByte = 8 / bits;
  const mask = 2 ** bits - 1;
  const signed = carrier === 'int8' && dtypeInfo(t.dtype).isSigned;
  for (let i = 0; i < n; i++) {
    let v = (t.data[Math.floor(i / perByte)]! >> ((i % perByte) * bits)) & mask;
    if (signed && v >= 2 ** (bits - 1)) v -= 2 ** bits;
    out[i] = v & 0xff;
  }
  return { name: t.name, dtype: carrier, shape: [...t.shape], data: out };
}

/** Carrier tensor (one byte per element, any integer dtype TF.js returned) → ONNX layout of `dtype`. */
export function fromCarrier(t: Tensor, dtype: DType): Tensor {
  if (!carrierOf(dtype)) return t;
  const n = numel(t.shape, ctxOf(t));
  const view = t.dtype === 'int32' ? new Int32Array(t.data.buffer, t.data.byteOffset, n) : t.data;
  const bits = dtypeInfo(dtype).bits;
  const out = new Uint8Array(byteLength(dtype, n));
  const perByte = 8 / bits;
  const mask = 2 ** bits - 1;
  for (let i = 0; i < n; i++) out[Math.floor(i / perByte)]! |= (Number(view[i]!) & mask) << ((i % perByte) * bits);
  return { name: t.name, dtype, shape: [...t.shape], data: out };
}

/**
 * ONNX ops that may take a carried value. ONNX itself only allows the 8/4/2-bit types in data
 * movement ops and in the casts and (de)quantizers, which convert them explicitly; any other op
 * seeing one would compute on bit patterns, so the converter refuses it instead.
 */
export const CARRIER_OPS = new Set(['Cast', 'CastLike', 'QuantizeLinear', 'DequantizeLinear', 'Identity', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Shape', 'Size']);
