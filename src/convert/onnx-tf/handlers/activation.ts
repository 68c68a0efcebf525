/** Activations that need attrs or composites, Clip, Softmax/LogSoftmax (both opset semantics). */
import type { Cx } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { normAxis } from '../values.js';

function unaryOut(cx: Cx, ref: string): void {
  const x = cx.in(0);
  cx.outRef(0, ref, x.dtype, x.shape);
}

register('LeakyRelu', (cx) => {
  const x = cx.in(0);
  unaryOut(cx, cx.add('LeakyRelu', [cx.ref(x)], { T: a.dt(x.dtype), alpha: a.f(cx.float('alpha', 0.01)) }));
});

register('Elu', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const alpha = cx.float('alpha', 1);
  const elu = cx.add('Elu', [cx.ref(x)], T);
  if (alpha === 1) return unaryOut(cx, elu);
  // elu(x) = x for x > 0, alpha·(e^x − 1) otherwise: scale only the negative part.
  const neg = cx.add('Minimum', [elu, cx.scalar(x.dtype, 0)], T);
  const pos = cx.add('Relu', [cx.ref(x)], T);
  unaryOut(cx, cx.add('AddV2', [pos, cx.add('Mul', [neg, cx.scalar(x.dtype, alpha)], T)], T));
});

register('Selu', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const alpha = cx.float('alpha', 1.67326319217681884765625);
  const gamma = cx.float('gamma', 1.05070102214813232421875);
  // selu = gamma·(relu(x) + alpha·min(exp(x) − 1, 0)); TF's Selu bakes in the defaults only.
  const em1 = cx.add('Sub', [cx.add('Exp', [cx.ref(x)], T), cx.scalar(x.dtype, 1)], T);
  const neg = cx.add('Mul', [cx.add('Minimum', [em1, cx.scalar(x.dtype, 0)], T), cx.scalar(x.dtype, alpha)], T);
  unaryOut(cx, cx.add('Mul', [cx.add('AddV2', [cx.add('Relu', [cx.ref(x)], T), neg], T), cx.scalar(x.dtype, gamma)], T));
});

register('PRelu', (cx) => {
  const x = cx.in(0);
  const slope = cx.in(1);
  const T = { T: a.dt(x.dtype) };
  // relu(x) − slope·relu(−x): slope broadcasts in ONNX layout, which the graph keeps.
  const pos = cx.add('Relu', [cx.ref(x)], T);
  const negPart = cx.add('Relu', [cx.add('Neg', [cx.ref(x)], T)], T);
  unaryOut(cx, cx.add('Sub', [pos, cx.add('Mul', [cx.ref(slope), negPart], T)], T));
});

register('HardSigmoid', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const lin = cx.add('AddV2', [cx.add('Mul', [cx.ref(x), cx.scalar(x.dtype, cx.float('alpha', 0.2))], T), cx.scalar(x.dtype, cx.float('beta', 0.5))], T);
  unaryOut(cx, cx.add('Minimum', [cx.add('Maximum', [lin, cx.scalar(x.dtype, 0)], T), cx.scalar(x.dtype, 1)], T));
});

register('HardSwish', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const r6 = cx.add('Relu6', [cx.add('AddV2', [cx.ref(x), cx.scalar(x.dtype, 3)], T)], T);
  unaryOut(cx, cx.add('Mul', [cx.ref(x), cx.add('Mul', [r6, cx.scalar(x.dtype, 1 / 6)], T)], T));
});

register('Gelu', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const s = (v: number): string => cx.scalar(x.dtype, v);
  let inner: string;
  if (cx.str('approximate', 'none') === 'tanh') {
    const cube = cx.add('Mul', [cx.add('Mul', [cx.ref(x), cx.ref(x)], T), cx.ref(x)], T);
    const u = cx.add('Mul', [cx.add('AddV2', [cx.ref(x), cx.add('Mul', [cube, s(0.044715)], T)], T), s(0.7978845608028654)], T);
    inner = cx.add('Tanh', [u], T);
  } else {
    inner = cx.add('Erf', [cx.add('Mul', [cx.ref(x), s(Math.SQRT1_2)], T)], T);
  }
  unaryOut(cx, cx.add('Mul', [cx.add('Mul', [cx.ref(x), s(0.5)], T), cx.add('AddV2', [inner, s(1)], T)], T));
});

register('Clip', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  // Opset < 11: attrs; later: optional inputs. Absent bounds mean "no bound", not 0.
  let lo: string | undefined;
  let hi: string | undefined;
  if (cx.opset < 11) {
    if (cx.has('min')) lo = cx.scalar(x.dtype, cx.float('min', 0));
    if (cx.has('max')) hi = cx.scalar(x.dtype, cx.float('max', 0));
  } else {
    const mn = cx.opt(1);
    const mx = cx.opt(2);
    if (mn) lo = cx.ref(mn);
    if (mx) hi = cx.ref(mx);
  }
  let y = cx.ref(x);
  if (lo) y = cx.add('Maximum', [y, lo], T);
  if (hi) y = cx.add('Minimum', [y, hi], T);
  if (!lo && !hi) y = cx.add('Identity', [y], T);
  unaryOut(cx, y);
});

function softmax(tfOp: 'Softmax' | 'LogSoftmax') {
  return (cx: Cx): void => {
    const x = cx.in(0);
    const r = cx.rank(x);
    const T = { T: a.dt(x.dtype) };
    if (cx.opset >= 13) {
      const axis = normAxis(cx.int('axis', -1), r);
      if (axis === r - 1) return unaryOut(cx, cx.add(tfOp, [cx.ref(x)], T));
      // TF normalises over the last axis only: swap the axis there and back.
      const perm = [...Array(r).keys()];
      perm[axis] = r - 1;
      perm[r - 1] = axis;
      const t = cx.add('Transpose', [cx.ref(x), cx.i32(perm)], { ...T, Tperm: a.dt('int32') });
      const sm = cx.add(tfOp, [t], T);
      return unaryOut(cx, cx.add('Transpose', [sm, cx.i32(perm)], { ...T, Tperm: a.dt('int32') }));
    }
    // Opset < 13: coerce to 2-D [∏d[:axis], ∏d[axis:]], normalise rows, restore the shape.
    const axis = normAxis(cx.int('axis', 1), r);
    if (axis === r - 1) return unaryOut(cx, cx.add(tfOp, [cx.ref(x)], T));
    const shape = x.shape!;
    const dynamic = shape.some((d) => d < 0);
    const inner = shape.slice(axis).reduce((p, q) => p * q, 1);
    if (dynamic && shape.slice(axis).some((d) => d < 0)) return cx.unsupported('opset < 13 softmax needs static dims after the axis');
    const flat = cx.add('Reshape', [cx.ref(x), cx.i32([-1, inner])], { ...T, Tshape: a.dt('int32') });
    const sm = cx.add(tfOp, [flat], T);
    const back = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt('int32') });
    unaryOut(cx, cx.add('Reshape', [sm, back], { ...T, Tshape: a.dt('int32') }));
  };
}
register('Softmax', softmax('Softmax'));
register('LogSoftmax', softmax('LogSoftmax'));

register('Swish', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const alpha = cx.float('alpha', 1);
  const ax = alpha === 1 ? cx.ref(x) : cx.add('Mul', [cx.ref(x), cx.scalar(x.dtype, alpha)], T);
  unaryOut(cx, cx.add('Mul', [cx.ref(x), cx.add('Sigmoid', [ax], T)], T));
});

register('Softsign', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  // x / (1 + |x|): TF's Softsign kernel is missing from TF.js, the composite runs everywhere.
  unaryOut(cx, cx.add('RealDiv', [cx.ref(x), cx.add('AddV2', [cx.add('Abs', [cx.ref(x)], T), cx.scalar(x.dtype, 1)], T)], T));
});

register('Celu', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const alpha = cx.float('alpha', 1);
  // max(0, x) + min(0, alpha·(exp(x/alpha) − 1))
  const e = cx.add('Sub', [cx.add('Exp', [cx.add('Mul', [cx.ref(x), cx.scalar(x.dtype, 1 / alpha)], T)], T), cx.scalar(x.dtype, 1)], T);
  const neg = cx.add('Minimum', [cx.add('Mul', [e, cx.scalar(x.dtype, alpha)], T), cx.scalar(x.dtype, 0)], T);
  unaryOut(cx, cx.add('AddV2', [cx.add('Relu', [cx.ref(x)], T), neg], T));
});

register('Mish', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  unaryOut(cx, cx.add('Mul', [cx.ref(x), cx.add('Tanh', [cx.add('Softplus', [cx.ref(x)], T)], T)], T));
});

register('ThresholdedRelu', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const mask = cx.add('Greater', [cx.ref(x), cx.scalar(x.dtype, cx.float('alpha', 1))], T);
  unaryOut(cx, cx.add('SelectV2', [mask, cx.ref(x), cx.add('ZerosLike', [cx.ref(x)], T)], T));
});

register('Shrink', (cx) => {
  const x = cx.in(0);
  const T = { T: a.dt(x.dtype) };
  const lambd = cx.float('lambd', 0.5);
  const bias = cx.float('bias', 0);
  const lo = cx.add('Less', [cx.ref(x), cx.scalar(x.dtype, -lambd)], T);
  const hi = cx.add('Greater', [cx.ref(x), cx.scalar(x.dtype, lambd)], T);
  const zero = cx.add('ZerosLike', [cx.ref(x)], T);
  const y = cx.add('SelectV2', [lo, cx.add('AddV2', [cx.ref(x), cx.scalar(x.dtype, bias)], T),
    cx.add('SelectV2', [hi, cx.add('Sub', [cx.ref(x), cx.scalar(x.dtype, bias)], T), zero], T)], T);
  unaryOut(cx, y);
});
