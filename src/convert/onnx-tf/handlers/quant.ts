/**
 * QuantizeLinear / DequantizeLinear as float arithmetic (TF CPU graphs have no int8 kernels for
 * these): q = saturate(round_half_even(x / scale) + zp), x = (q − zp) · scale; 8/4-bit floats through
 * their bit carriers (narrow.ts).
 */
import type { DType } from '../../../core/dtype.js';
import { carriesBits } from '../carriers.js';
import { onnxDtype, type Cx, type Val } from '../context.js';
import { decodeSmallFloat, encodeSmallFloat } from '../narrow.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { normAxis } from '../values.js';

const RANGE: Partial<Record<DType, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767], int32: [-(2 ** 31), 2 ** 31 - 1],
  // 4/2-bit results travel in their int8/uint8 carrier (carriers.ts).
  uint4: [0, 15], int4: [-8, 7], uint2: [0, 3], int2: [-2, 1],
};

/** Float32 view of a scale/zero point, reshaped to broadcast on `axis` when it is per-channel. */
function param(cx: Cx, v: Val, x: Val): string {
  let ref = cx.ref(v);
  if (v.dtype !== 'float32') ref = cx.add('Cast', [ref], { SrcT: a.dt(v.dtype), DstT: a.dt('float32'), Truncate: a.b(false) });
  if (v.shape && v.shape.length === 1 && x.shape && x.shape.length > 1) {
    const axis = normAxis(cx.int('axis', 1), x.shape.length);
    const trailing = x.shape.length - axis - 1;
    if (trailing > 0) ref = cx.add('Reshape', [ref, cx.i32([-1, ...new Array<number>(trailing).fill(1)])], { T: a.dt('float32'), Tshape: a.dt('int32') });
  }
  return ref;
}

/**
 * saturate(round_half_even(scaled) + zp) cast to the integer type `out`: the tail every quantizing op
 * shares (QuantizeLinear, and the requantization of QLinearConv / QLinearMatMul / DynamicQuantizeLinear).
 * `zp` is a float32 tensor, broadcastable to `scaled`.
 */
export function roundToInt(cx: Cx, scaled: string, zp: string | undefined, out: DType): string {
  const range = RANGE[out] ?? cx.unsupported(`quantizing to ${out}`);
  const F = { T: a.dt('float32') };
  let q = cx.add('Round', [scaled], F);
  if (zp) q = cx.add('AddV2', [q, zp], F);
  q = cx.add('Minimum', [cx.add('Maximum', [q, cx.scalar('float32', range[0])], F), cx.scalar('float32', range[1])], F);
  return cx.add('Cast', [q], { SrcT: a.dt('float32'), DstT: a.dt(out), Truncate: a.b(false) });
}

register('QuantizeLinear', (cx) => {
  const x = cx.in(0);
  const scale = cx.in(1);
  const zp = cx.opt(2);
  if (cx.has('block_size') && cx.int('block_size', 0) > 0) return cx.unsupported('blocked QuantizeLinear');
  const out: DType = zp?.dtype ?? (cx.has('output_dtype') ? onnxDtype(cx.int('output_dtype', 2), { path: cx.opts.path, tensor: cx.node.output[0] ?? '' }) : 'uint8');
  const F = { T: a.dt('float32') };
  let xf = cx.ref(x);
  if (x.dtype !== 'float32') xf = cx.add('Cast', [xf], { SrcT: a.dt(x.dtype), DstT: a.dt('float32'), Truncate: a.b(false) });
  const scaled = cx.add('RealDiv', [xf, param(cx, scale, x)], F);
  // 8/4-bit float outputs: x / scale rounded into the format (ONNX requires their zero point to be 0).
  if (carriesBits(out) && out !== 'float8e8m0') return cx.outRef(0, encodeSmallFloat(cx, scaled, out, cx.int('saturate', 1) !== 0), out, x.shape);
  cx.outRef(0, roundToInt(cx, scaled, zp ? param(cx, zp, x) : undefined, out), out, x.shape);
});

register('DequantizeLinear', (cx) => {
  const x = cx.in(0);
  const scale = cx.in(1);
  const zp = cx.opt(2);
  if (cx.has('block_size') && cx.int('block_size', 0) > 0) return cx.unsupported('blocked DequantizeLinear');
  const F = { T: a.dt('float32') };
  // Float8 inputs are decoded from their bit carrier; their zero point is 0 by the ONNX spec.
  const bits = carriesBits(x.dtype);
  let y = bits ? decodeSmallFloat(cx, cx.ref(x), x.dtype) : cx.add('Cast', [cx.ref(x)], { SrcT: a.dt(x.dtype), DstT: a.dt('float32'), Truncate: a.b(false) });
  if (zp && !bits) y = cx.add('Sub', [y, param(cx, zp, x)], F);
  y = cx.add('Mul', [y, param(cx, scale, x)], F);
  if (scale.dtype !== 'float32') y = cx.add('Cast', [y], { SrcT: a.dt('float32'), DstT: a.dt(scale.dtype), Truncate: a.b(false) });
  cx.outRef(0, y, scale.dtype, x.shape);
});
