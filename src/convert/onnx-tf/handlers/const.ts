/** Constant, ConstantOfShape and Cast (folded at conversion time when the value is known). */
import { dtypeInfo, type DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Tensor } from '../../../core/tensor.js';
import { onnxDtype } from '../context.js';
import { register } from '../registry.js';
import { carrierOf, carriesBits, toCarrier } from '../carriers.js';
import type { Cx, Val } from '../context.js';
import { decodeSmallFloat, encodeSmallFloat } from '../narrow.js';
import { dtypeGap } from '../tfjs-limits.js';
import { a } from '../tf-attr.js';
import { MAX_FOLD_ELEMENTS, numbersTensor, tensorNumbers } from '../values.js';

register('Constant', (cx) => {
  const tp = cx.tensorAttr('value');
  let t: Tensor;
  if (tp) t = cx.tensorOf(tp);
  else if (cx.has('value_float')) t = numbersTensor('', 'float32', [], [cx.float('value_float', 0)]);
  else if (cx.has('value_floats')) { const v = cx.floats('value_floats')!; t = numbersTensor('', 'float32', [v.length], v); }
  else if (cx.has('value_int')) t = numbersTensor('', 'int64', [], [cx.int('value_int', 0)]);
  else if (cx.has('value_ints')) { const v = cx.ints('value_ints')!; t = numbersTensor('', 'int64', [v.length], v); }
  else return cx.unsupported('Constant without a value, value_float(s) or value_int(s) attribute (sparse/string constants)');
  if (t.dtype === 'string') return cx.unsupported('string constants');
  cx.out(0, { dtype: t.dtype, shape: t.shape, value: toCarrier({ ...t, name: cx.node.output[0] ?? '' }) });
});

register('ConstantOfShape', (cx) => {
  const tp = cx.tensorAttr('value');
  const fill = tp ? cx.tensorOf(tp) : numbersTensor('', 'float32', [1], [0]);
  const v = tensorNumbers(fill)[0] ?? 0;
  const shapeIn = cx.in(0);
  if (shapeIn.value) {
    const dims = tensorNumbers(shapeIn.value);
    if (dims.some((d) => d < 0)) return cx.fail(ErrorCodes.MALFORMED, `negative dim in [${dims.join(',')}]`);
    const n = dims.reduce((p, q) => p * q, 1);
    if (n <= MAX_FOLD_ELEMENTS) {
      cx.out(0, { dtype: fill.dtype, shape: dims, value: numbersTensor('', fill.dtype, dims, new Array<number>(n).fill(v)) });
      return;
    }
    const y = cx.add('Fill', [cx.i32(dims), cx.scalar(fill.dtype, v)], { T: a.dt(fill.dtype), index_type: a.dt('int32') });
    return cx.outRef(0, y, fill.dtype, dims);
  }
  const len = shapeIn.shape?.[0] ?? -1;
  if (len > 254) return cx.fail(ErrorCodes.LIMIT, `ConstantOfShape of rank ${len}`);
  const y = cx.add('Fill', [cx.ref(shapeIn), cx.scalar(fill.dtype, v)], { T: a.dt(fill.dtype), index_type: a.dt(shapeIn.dtype) });
  cx.outRef(0, y, fill.dtype, len >= 0 ? new Array<number>(len).fill(-1) : null);
});

register(['Cast', 'CastLike'], (cx) => {
  const x = cx.in(0);
  const to = cx.node.opType === 'CastLike' ? cx.in(1).dtype : onnxDtype(cx.int('to', 0), { path: cx.opts.path, tensor: cx.node.output[0] ?? '' });
  const info = dtypeInfo(to);
  const simple = (d: string): boolean => ['float32', 'float64', 'int32', 'int64', 'int8', 'uint8', 'int16', 'uint16', 'bool'].includes(d);
  if (x.value && simple(x.dtype) && simple(to) && x.value.data.byteLength <= MAX_FOLD_ELEMENTS * 8) {
    const vals = tensorNumbers(x.value).map((v) => (to === 'bool' ? Number(v !== 0) : info.isFloat ? v : Math.trunc(v)));
    cx.out(0, { dtype: to, shape: x.value.shape, value: numbersTensor('', to, x.value.shape, vals) });
    return;
  }
  if (to === x.dtype) return cx.out(0, x);
  if (carrierOf(x.dtype) || carrierOf(to)) return castCarried(cx, x, to);
  const gap = dtypeGap(x.dtype) ?? dtypeGap(to);
  if (gap) return cx.refuse(`Cast ${x.dtype} → ${to}: ${gap}`);
  cx.outRef(0, cx.add('Cast', [cx.ref(x)], { SrcT: a.dt(x.dtype), DstT: a.dt(to), Truncate: a.b(false) }), to, x.shape);
});

/**
 * Casts from or to a carried dtype (carriers.ts). Small floats are decoded through a table and
 * encoded by comparisons (narrow.ts); 4/2-bit integers already hold their values in int8/uint8, so
 * casting from them is a plain Cast of the carrier.
 */
function castCarried(cx: Cx, x: Val, to: DType): void {
  const F = { SrcT: a.dt('float32'), DstT: a.dt(to), Truncate: a.b(false) };
  if (to === 'float8e8m0') return cx.unsupported('Cast to float8e8m0 (its round_mode encodings are not converted)');
  if (carrierOf(to) && !carriesBits(to)) return cx.unsupported(`Cast to ${to} (ONNX does not pin down rounding and saturation into 4/2-bit integers; not converted)`);
  let ref = cx.ref(x);
  let from = x.dtype;
  if (carriesBits(from)) {
    ref = decodeSmallFloat(cx, ref, from);
    from = 'float32';
  }
  if (carriesBits(to)) {
    if (from !== 'float32') ref = cx.add('Cast', [ref], { SrcT: a.dt(from), DstT: a.dt('float32'), Truncate: a.b(false) });
    return cx.outRef(0, encodeSmallFloat(cx, ref, to, cx.int('saturate', 1) !== 0), to, x.shape);
  }
  if (from !== to) ref = cx.add('Cast', [ref], { ...F, SrcT: a.dt(from) });
  cx.outRef(0, ref, to, x.shape);
}
