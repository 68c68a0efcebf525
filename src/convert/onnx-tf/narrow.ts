/**
 * TF subgraphs between float32 and the carriers of 8/4-bit floats (carriers.ts). Both directions use
 * only ops TF and TF.js compute exactly, so a converted graph gives the ONNX reference's bits:
 *  - decode: one GatherV2 from a table of every code's value;
 *  - encode: a binary search of |x| over the rounding thresholds between codes (GatherV2 +
 *    GreaterEqual per step; ties to even folded into the thresholds), then sign, overflow and NaN.
 * No exponent arithmetic: Log/Pow are not exact in every TF kernel, comparisons are.
 */
import type { DType } from '../../core/dtype.js';
import type { Cx } from './context.js';
import { codeValues, encodeTable } from './carriers.js';
import { a } from './tf-attr.js';
import { numbersTensor } from './values.js';

const F32 = { T: a.dt('float32') };
const I32 = { T: a.dt('int32') };

function gather(cx: Cx, table: string, idx: string, dtype: DType): string {
  return cx.add('GatherV2', [table, idx, cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
}

/** Smallest float32 above positive `t`: `x ≥ nextUp(t)` is `x > t` for float32 x. */
function nextUpF32(t: number): number {
  const f = new Float32Array([t]);
  const u = new Uint32Array(f.buffer);
  u[0] = u[0]! + 1;
  return f[0]!;
}

/** float32 values of a carried small float (`bits`: its uint8 carrier). */
export function decodeSmallFloat(cx: Cx, bits: string, dtype: DType): string {
  const values = codeValues(dtype);
  const table = cx.constNode(numbersTensor('', 'float32', [values.length], values), `${dtype}_values`);
  const idx = cx.add('Cast', [bits], { SrcT: a.dt('uint8'), DstT: a.dt('int32'), Truncate: a.b(false) });
  return gather(cx, table, idx, 'float32');
}

/**
 * uint8 carrier of float32 `x` rounded to `dtype` (round half to even). With `saturate`, values
 * beyond the largest finite one (and ±inf) become ±max, as ONNX's Cast/QuantizeLinear default;
 * without it they become the format's inf or NaN.
 */
export function encodeSmallFloat(cx: Cx, x: string, dtype: DType, saturate: boolean): string {
  const e = encodeTable(dtype);
  // Table index i holds the threshold to cross for code i (index 0 is never read); padding is NaN,
  // which no value reaches. Ties go up only where the code above is even: else compare strictly.
  let size = 1;
  while (size < e.thresholds.length + 1) size *= 2;
  const thr = new Array<number>(size).fill(Number.NaN);
  e.thresholds.forEach((t, k) => (thr[k + 1] = e.tieUp[k] ? t : nextUpF32(t)));
  const table = cx.constNode(numbersTensor('', 'float32', [size], thr), `${dtype}_thresholds`);
  const ax = cx.add('Abs', [x], F32);
  let code = cx.i32([0], []);
  for (let step = size / 2; step >= 1; step /= 2) {
    const idx = cx.add('AddV2', [code, cx.i32([step], [])], I32);
    const cross = cx.add('GreaterEqual', [ax, gather(cx, table, idx, 'float32')], F32);
    code = cx.add('SelectV2', [cross, idx, code], I32);
  }
  // Negative includes −0 (1/−0 = −inf), which the formats with a −0 keep.
  const neg = cx.add('LogicalOr', [cx.add('Less', [x, cx.scalar('float32', 0)], F32), cx.add('Less', [cx.add('Reciprocal', [x], F32), cx.scalar('float32', 0)], F32)]);
  const signOf = (mag: string): string =>
    cx.add('AddV2', [mag, cx.add('Mul', [cx.add('Cast', [neg], { SrcT: a.dt('bool'), DstT: a.dt('int32'), Truncate: a.b(false) }), cx.i32([e.signBit], [])], I32)], I32);
  const overflowed = cx.add('Greater', [code, cx.i32([e.maxCode], [])], I32);
  const mag = cx.add('Minimum', [code, cx.i32([e.maxCode], [])], I32);
  let out = signOf(mag);
  if (e.noNegativeZero) out = cx.add('SelectV2', [cx.add('Equal', [mag, cx.i32([0], [])], I32), cx.i32([0], []), out], I32);
  if (!saturate) {
    const ovf = e.overflow.signed ? signOf(cx.i32([e.overflow.code], [])) : cx.i32([e.overflow.code], []);
    out = cx.add('SelectV2', [overflowed, ovf, out], I32);
  }
  out = cx.add('SelectV2', [cx.add('IsNan', [x], F32), cx.i32([e.nan.code], []), out], I32);
  return cx.add('Cast', [out], { SrcT: a.dt('int32'), DstT: a.dt('uint8'), Truncate: a.b(false) });
}
