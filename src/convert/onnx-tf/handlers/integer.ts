/**
 * The integer and linear-quantized ops our own quantization passes and onnxruntime's quantizer
 * write: DynamicQuantizeLinear, ConvInteger, QLinearConv, QLinearMatMul. TF CPU has no 8-bit
 * conv/matmul kernels (nor does TF.js), so the integer products are computed in float32 on values
 * with their zero points removed — exact while an accumulator stays below 2^24, and rounded like a
 * float32 conversion of the int32 beyond — and requantized as onnxruntime does:
 * round_half_even(acc · (x_scale · w_scale / y_scale)) + y_zero_point, saturated.
 */
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema } from 'onnx-buf';
import type { DType } from '../../../core/dtype.js';
import type { Cx, Val } from '../context.js';
import { handlerFor, register } from '../registry.js';
import { a } from '../tf-attr.js';
import { roundToInt } from './quant.js';

const F = { T: a.dt('float32') };

function toFloat(cx: Cx, v: Val): string {
  if (v.dtype === 'float32') return cx.ref(v);
  const r = cx.add('Cast', [cx.ref(v)], { SrcT: a.dt(v.dtype), DstT: a.dt('float32'), Truncate: a.b(false) });
  // Its shape, for the layout pass (zero points and scales are scalars or per-channel vectors).
  if (v.shape) cx.tensorShapes.set(r, v.shape);
  return r;
}

/**
 * A per-axis parameter (length > 1) reshaped to broadcast along `axis` of a rank-`rank` value;
 * scalars and one-element tensors as they are.
 */
function alongAxis(cx: Cx, ref: string, v: Val, axis: number, rank: number): string {
  const n = v.shape?.length === 1 ? v.shape[0]! : 1;
  if (n === 1 || rank <= axis + 1) return ref;
  const shape = [n, ...new Array<number>(rank - axis - 1).fill(1)];
  const r = cx.add('Reshape', [ref, cx.i32(shape)], { ...F, Tshape: a.dt('int32') });
  if (n > 0) cx.tensorShapes.set(r, shape);
  return r;
}

/** `v` − zero point in float32 (the zero point broadcast along `axis`). */
function centered(cx: Cx, v: Val, zp: Val | undefined, axis: number): string {
  const f = toFloat(cx, v);
  if (!zp) return f;
  return cx.add('Sub', [f, alongAxis(cx, toFloat(cx, zp), zp, axis, v.shape?.length ?? 0)], F);
}

/**
 * Runs another op's handler on substituted inputs (float32 values computed here) and returns its
 * output 0: ConvInteger and QLinearConv reuse Conv's layout, padding and group handling.
 */
function viaHandler(cx: Cx, opType: string, inputs: Val[]): Val {
  const node = cx.node;
  const base = `${node.name || node.output[0] || opType}/${opType}`;
  const names = inputs.map((v, i) => {
    const n = `${base}:in${i}`;
    cx.vals.set(n, v);
    return n;
  });
  const out = `${base}:out`;
  cx.node = create(NodeProtoSchema, { ...node, opType, input: names, output: [out] });
  try {
    handlerFor(opType)!(cx);
  } finally {
    cx.node = node;
    for (const n of names) cx.vals.delete(n);
  }
  const v = cx.vals.get(out)!;
  cx.vals.delete(out);
  return v;
}

function floatVal(ref: string, shape: number[] | null): Val {
  return { dtype: 'float32', shape, ref };
}

/** Requantize a float32 accumulator: saturate(round(acc · multiplier) + zp) in the zero point's dtype. */
function requantize(cx: Cx, acc: string, mult: string, zp: Val | undefined, out: DType): string {
  return roundToInt(cx, cx.add('Mul', [acc, mult], F), zp ? toFloat(cx, zp) : undefined, out);
}

/** x_scale · w_scale / y_scale, left to right in float32 as onnxruntime computes it, broadcast along `axis`. */
function multiplier(cx: Cx, xs: Val, ws: Val, ys: Val, axis: number, rank: number): string {
  const w = alongAxis(cx, toFloat(cx, ws), ws, axis, rank);
  return cx.add('RealDiv', [cx.add('Mul', [toFloat(cx, xs), w], F), toFloat(cx, ys)], F);
}

register('DynamicQuantizeLinear', (cx) => {
  const x = cx.in(0);
  const flat = cx.add('Reshape', [toFloat(cx, x), cx.i32([-1])], { ...F, Tshape: a.dt('int32') });
  const R = { ...F, Tidx: a.dt('int32'), keep_dims: a.b(false) };
  const zero = cx.scalar('float32', 0);
  // The range always includes 0 so that 0 is exact; an all-zero input gets scale 1 (as onnxruntime).
  const mn = cx.add('Minimum', [cx.add('Min', [flat, cx.i32([0], [])], R), zero], F);
  const mx = cx.add('Maximum', [cx.add('Max', [flat, cx.i32([0], [])], R), zero], F);
  const span = cx.add('RealDiv', [cx.add('Sub', [mx, mn], F), cx.scalar('float32', 255)], F);
  const scale = cx.add('SelectV2', [cx.add('Equal', [mx, mn], F), cx.scalar('float32', 1), span], F);
  const zpf = cx.add('Round', [cx.add('Minimum', [cx.add('Maximum', [cx.add('Neg', [cx.add('RealDiv', [mn, scale], F)], F), zero], F), cx.scalar('float32', 255)], F)], F);
  // Scalars: the layout pass may move transposes through the elementwise ops that use them.
  for (const r of [scale, zpf]) cx.tensorShapes.set(r, []);
  cx.outRef(0, roundToInt(cx, cx.add('RealDiv', [toFloat(cx, x), scale], F), zpf, 'uint8'), 'uint8', x.shape);
  cx.outRef(1, scale, 'float32', []);
  cx.outRef(2, cx.add('Cast', [zpf], { SrcT: a.dt('float32'), DstT: a.dt('uint8'), Truncate: a.b(false) }), 'uint8', []);
});

register('ConvInteger', (cx) => {
  const x = cx.in(0);
  const w = cx.in(1);
  const xs = centered(cx, x, cx.opt(2), 1);
  // w_zero_point may be per output channel (axis 0 of the filter).
  const ws = centered(cx, w, cx.opt(3), 0);
  const y = viaHandler(cx, 'Conv', [floatVal(xs, x.shape), floatVal(ws, w.shape)]);
  cx.outRef(0, cx.add('Cast', [cx.ref(y)], { SrcT: a.dt('float32'), DstT: a.dt('int32'), Truncate: a.b(false) }), 'int32', y.shape);
});

register('QLinearConv', (cx) => {
  const [x, xScale, xZp, w, wScale, wZp, yScale, yZp] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => cx.opt(i));
  if (!x || !xScale || !w || !wScale || !yScale) return cx.unsupported('QLinearConv needs x, x_scale, w, w_scale and y_scale');
  const b = cx.opt(8);
  const acc = viaHandler(cx, 'Conv', [floatVal(centered(cx, x, xZp, 1), x.shape), floatVal(centered(cx, w, wZp, 0), w.shape)]);
  let accRef = cx.ref(acc);
  const rank = acc.shape?.length ?? x.shape?.length ?? 4;
  // The int32 bias is in the accumulator's scale (x_scale · w_scale), one per output channel.
  if (b) accRef = cx.add('AddV2', [accRef, alongAxis(cx, toFloat(cx, b), b, 1, rank)], F);
  const out = yZp?.dtype ?? x.dtype;
  cx.outRef(0, requantize(cx, accRef, multiplier(cx, xScale, wScale, yScale, 1, rank), yZp, out), out, acc.shape);
});

register('QLinearMatMul', (cx) => {
  const [A, aScale, aZp, B, bScale, bZp, yScale, yZp] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => cx.in(i));
  const ra = A!.shape?.length ?? 2;
  const rb = B!.shape?.length ?? 2;
  // Per-row parameters of A broadcast along its rows (axis −2), per-column ones of B along columns.
  const ac = cx.add('Sub', [toFloat(cx, A!), alongAxis(cx, toFloat(cx, aZp!), aZp!, ra - 2, ra)], F);
  const bc = cx.add('Sub', [toFloat(cx, B!), toFloat(cx, bZp!)], F);
  const acc = viaHandler(cx, 'MatMul', [floatVal(ac, A!.shape), floatVal(bc, B!.shape)]);
  const rank = acc.shape?.length ?? Math.max(ra, rb);
  const as = alongAxis(cx, toFloat(cx, aScale!), aScale!, rank - 2, rank);
  const mult = cx.add('RealDiv', [cx.add('Mul', [as, toFloat(cx, bScale!)], F), toFloat(cx, yScale!)], F);
  const out = yZp!.dtype;
  cx.outRef(0, requantize(cx, cx.ref(acc), mult, yZp, out), out, acc.shape);
});
