/**
 * BitShift, BitwiseAnd/Or/Xor/Not and BitCast. TF has BitwiseAnd/Or/Xor, Invert, LeftShift,
 * RightShift and Bitcast, but TF.js (the reference executor) runs none of them: only BitwiseAnd is
 * listed, and its 4.22 executor reads inputs the mapper never sets. So each op is integer arithmetic
 * that is exact both in TF (which wraps at the declared width) and in TF.js (which holds every
 * integer as int32 and wraps at 2^32):
 *  - and/or/xor split int32 values into 31 bit lanes (⌊v / 2^i⌋ mod 2) plus the sign, combine the
 *    lanes (p·q, p + q − p·q, p + q − 2·p·q) and sum them back; ~a = −1 − a (2^bits − 1 − a unsigned);
 *  - shifts multiply / floor-divide by powers of two of at most 2^16 per step, so no constant or
 *    intermediate needs more than 31 bits in TF.js; 8/16-bit values are shifted in int32 and reduced
 *    modulo 2^bits, since TF.js would not wrap them at their width.
 * TF.js cannot Cast to 16-bit or unsigned 32/64-bit types, so results reach those by table lookups
 * or by computing in the type itself; 64-bit bitwise ops are refused.
 */
import { dtypeInfo, type DType } from '../../../core/dtype.js';
import type { Tensor } from '../../../core/tensor.js';
import { carrierOf } from '../carriers.js';
import { onnxDtype, type Cx, type Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { broadcastShapes, numbersTensor } from '../values.js';

const INTS = new Set<DType>(['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64']);
/** Integer types whose every value (and result) fits an int32, the only integer TF.js computes in. */
const NARROW = new Set<DType>(['int8', 'uint8', 'int16', 'uint16', 'int32']);
const I32 = { T: a.dt('int32') };

function cast(cx: Cx, ref: string, from: DType, to: DType): string {
  if (from === to) return ref;
  return cx.add('Cast', [ref], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) });
}

/**
 * An int32 tensor whose values fit `to`, as `to`. TF.js cannot Cast to 16-bit types (its dtype
 * parser returns null for them), so those read their value from a 2^16-entry table of `to`.
 */
const TABLES = new WeakMap<Cx, Map<DType, string>>();

function fromInt32(cx: Cx, ref: string, to: DType): string {
  if (to !== 'int16' && to !== 'uint16') return cast(cx, ref, 'int32', to);
  const lo = to === 'int16' ? -32768 : 0;
  // One table per dtype and conversion, shared by every node that needs it.
  let tables = TABLES.get(cx);
  if (!tables) TABLES.set(cx, (tables = new Map()));
  let table = tables.get(to);
  if (!table) tables.set(to, (table = cx.constNode(numbersTensor('', to, [65536], Array.from({ length: 65536 }, (_, i) => lo + i)), `bitwise/table_${to}`)));
  const idx = lo === 0 ? ref : cx.add('Sub', [ref, cx.scalar('int32', lo)], I32);
  return cx.add('GatherV2', [table, idx, cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(to), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
}

function checkInt(cx: Cx, v: Val, what: string): void {
  if (!INTS.has(v.dtype)) cx.unsupported(`${what} on ${v.dtype} (ONNX defines it on 8–64-bit integers)`);
}

/** Powers 2^0 … 2^30: the bit lanes of an int32 below its sign bit. */
const LANES = Array.from({ length: 31 }, (_, i) => 2 ** i);

/**
 * A bitwise op on int32 tensors through bit lanes: bit i of v is ⌊v / 2^i⌋ mod 2 (floor division
 * gives two's complement bits for negatives too), the sign bit is v < 0. Lanes are combined
 * arithmetically and summed back; no intermediate leaves int32's range.
 */
function bitwise32(cx: Cx, x: string, y: string, kind: 'and' | 'or' | 'xor'): string {
  const pows = cx.i32(LANES);
  const bits = (v: string): string => cx.add('FloorMod', [cx.add('FloorDiv', [cx.add('ExpandDims', [v, cx.i32([-1], [])], { ...I32, Tdim: a.dt('int32') }), pows], I32), cx.scalar('int32', 2)], I32);
  const combine = (p: string, q: string): string => {
    const both = cx.add('Mul', [p, q], I32);
    if (kind === 'and') return both;
    const sum = cx.add('AddV2', [p, q], I32);
    return cx.add('Sub', [sum, kind === 'or' ? both : cx.add('Mul', [both, cx.scalar('int32', 2)], I32)], I32);
  };
  const low = cx.add('Sum', [cx.add('Mul', [combine(bits(x), bits(y)), pows], I32), cx.i32([-1], [])], { ...I32, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  const sign = (v: string): string => cast(cx, cx.add('Less', [v, cx.scalar('int32', 0)], I32), 'bool', 'int32');
  const high = combine(sign(x), sign(y));
  return cx.add('AddV2', [low, cx.add('Mul', [high, cx.scalar('int32', -(2 ** 31))], I32)], I32);
}

function binary(kind: 'and' | 'or' | 'xor') {
  return (cx: Cx): void => {
    const x = cx.in(0);
    const y = cx.in(1);
    checkInt(cx, x, cx.node.opType);
    // TF.js 4.22's BitwiseAnd kernel is unreachable (its executor reads inputs 'a'/'b', its mapper names them 'x'/'y').
    if (!NARROW.has(x.dtype)) return cx.refuse(`${cx.node.opType} on ${x.dtype}: TF.js has no ${x.dtype} arithmetic (it holds integers as int32) and no usable bitwise kernel`);
    const r = bitwise32(cx, cast(cx, cx.ref(x), x.dtype, 'int32'), cast(cx, cx.ref(y), y.dtype, 'int32'), kind);
    cx.outRef(0, fromInt32(cx, r, x.dtype), x.dtype, broadcastShapes(x.shape, y.shape));
  };
}

register('BitwiseAnd', binary('and'));
register('BitwiseOr', binary('or'));
register('BitwiseXor', binary('xor'));

register('BitwiseNot', (cx) => {
  const x = cx.in(0);
  checkInt(cx, x, 'BitwiseNot');
  const info = dtypeInfo(x.dtype);
  // ~x = −1 − x (signed) or 2^bits − 1 − x (unsigned): in range, so computed in x's own type.
  if (!info.isSigned && info.bits > 16) return cx.refuse(`BitwiseNot on ${x.dtype}: TF.js has no ${x.dtype} (it holds integers as int32, and ~x of every such value is above that range)`);
  const top = info.isSigned ? -1 : 2 ** info.bits - 1;
  cx.outRef(0, cx.add('Sub', [cx.scalar(x.dtype, top), cx.ref(x)], { T: a.dt(x.dtype) }), x.dtype, x.shape);
});

/** 2^s for an int32 `s` in [0, 16], as `dtype`, read from a table so no Cast to `dtype` is needed. */
function pow2(cx: Cx, s: string, dtype: DType): string {
  const table = cx.constNode(numbersTensor('', dtype, [17], Array.from({ length: 17 }, (_, i) => 2 ** i)));
  return cx.add('GatherV2', [table, s, cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
}

register('BitShift', (cx) => {
  const x = cx.in(0);
  const y = cx.in(1);
  const dir = cx.str('direction', '');
  if (dir !== 'LEFT' && dir !== 'RIGHT') cx.unsupported(`BitShift direction '${dir}' (LEFT or RIGHT)`);
  const D = x.dtype;
  if (D !== 'uint8' && D !== 'uint16' && D !== 'uint32' && D !== 'uint64') cx.unsupported(`BitShift on ${D} (ONNX defines uint8/16/32/64)`);
  const bits = dtypeInfo(D).bits;
  const shape = broadcastShapes(x.shape, y.shape);
  // Shift amounts ≥ the width give 0 (the ONNX reference, numpy); clamp so the powers stay small.
  const yi = cx.add('Minimum', [cast(cx, cx.ref(y), y.dtype, 'int32'), cx.scalar('int32', bits)], I32);
  const step = (k: number): string =>
    cx.add('Minimum', [cx.add('Maximum', [cx.add('Sub', [yi, cx.scalar('int32', 16 * k)], I32), cx.scalar('int32', 0)], I32), cx.scalar('int32', 16)], I32);
  if (bits <= 16) {
    // In int32, reduced modulo 2^bits: TF.js would not wrap a uint8/uint16 product at its width.
    const xi = cast(cx, cx.ref(x), D, 'int32');
    const p = pow2(cx, step(0), 'int32');
    const r = dir === 'LEFT'
      ? cx.add('FloorMod', [cx.add('Mul', [xi, p], I32), cx.scalar('int32', 2 ** bits)], I32)
      : cx.add('FloorDiv', [xi, p], I32);
    return cx.outRef(0, fromInt32(cx, r, D), D, shape);
  }
  // 32/64-bit: at most 16 bits per step in the value's own unsigned type, which TF wraps natively
  // (TF.js wraps at 2^32, which agrees on every value it can hold).
  const T = { T: a.dt(D) };
  let r = cx.ref(x);
  for (let k = 0; k < bits / 16; k++) r = cx.add(dir === 'LEFT' ? 'Mul' : 'FloorDiv', [r, pow2(cx, step(k), D)], T);
  cx.outRef(0, r, D, shape);
});

function sameBits(t: Tensor, to: DType): Tensor {
  return { name: '', dtype: to, shape: [...t.shape], data: t.data };
}

register('BitCast', (cx) => {
  const x = cx.in(0);
  const to = onnxTo(cx);
  const fi = dtypeInfo(x.dtype);
  const ti = dtypeInfo(to);
  if (fi.bits !== ti.bits) return cx.unsupported(`BitCast from ${x.dtype} to ${to} (different widths)`);
  if (carrierOf(x.dtype) || carrierOf(to)) return cx.unsupported(`BitCast between ${x.dtype} and ${to} (8/4/2-bit carried types)`);
  if (x.value && x.dtype !== 'string' && to !== 'string') return cx.out(0, { dtype: to, shape: x.shape, value: sameBits(x.value, to) });
  if (x.dtype === to) return cx.outRef(0, cx.add('Identity', [cx.ref(x)], { T: a.dt(x.dtype) }), to, x.shape);
  if (!INTS.has(x.dtype) || !INTS.has(to)) return cx.refuse(`BitCast ${x.dtype} → ${to} computed at run time: TF.js has no Bitcast`);
  if (fi.bits >= 32) {
    // Same-width integer casts in TF keep the bit pattern (two's complement); TF.js has no Cast to uint32/uint64.
    if (to === 'uint32' || to === 'uint64') return cx.refuse(`BitCast ${x.dtype} → ${to} computed at run time: TF.js has no Cast to ${to}`);
    return cx.outRef(0, cast(cx, cx.ref(x), x.dtype, to), to, x.shape);
  }
  // 8/16-bit: move between the signed and unsigned reading by ±2^bits, exact in TF.js too.
  const I = I32;
  const xi = cast(cx, cx.ref(x), x.dtype, 'int32');
  const wrap = cx.scalar('int32', 2 ** fi.bits);
  let r = xi;
  if (fi.isSigned && !ti.isSigned) {
    const neg = cast(cx, cx.add('Less', [xi, cx.scalar('int32', 0)], I), 'bool', 'int32');
    r = cx.add('AddV2', [xi, cx.add('Mul', [neg, wrap], I)], I);
  } else if (!fi.isSigned && ti.isSigned) {
    const high = cast(cx, cx.add('GreaterEqual', [xi, cx.scalar('int32', 2 ** (fi.bits - 1))], I), 'bool', 'int32');
    r = cx.add('Sub', [xi, cx.add('Mul', [high, wrap], I)], I);
  }
  cx.outRef(0, fromInt32(cx, r, to), to, x.shape);
});

function onnxTo(cx: Cx): DType {
  if (!cx.has('to')) cx.unsupported('BitCast without a `to` attribute');
  return onnxDtype(cx.int('to', 0), { path: cx.opts.path, tensor: cx.node.output[0] ?? '' });
}
