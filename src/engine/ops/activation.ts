/**
 * Activations: pointwise ones (Relu, LeakyRelu, Sigmoid, Tanh, Elu, Erf, Gelu, Clip) and the
 * axis-wise Softmax/LogSoftmax. Math runs in float64 per element and rounds once to float32, which
 * keeps results within an ulp or two of onnxruntime.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { registerOp } from '../registry.js';
import type { FValue, OpContext, OpDef, Value } from '../types.js';
import { floatInput, fvalue, opLabel } from '../values.js';
import { unaryOp } from './elementwise.js';

const relu = (x: number): number => (x > 0 ? x : x < 0 ? 0 : x);
registerOp('Relu', unaryOp(relu, (x) => (x > 0 ? 1 : 0), undefined, {
  fwd(X, out) {
    for (let i = 0; i < X.length; i++) {
      const x = X[i]!;
      out[i] = x < 0 ? 0 : x;
    }
  },
  bwd(X, _Y, G, out) {
    for (let i = 0; i < X.length; i++) out[i] = X[i]! > 0 ? G[i]! : 0;
  },
}));

function sigmoid(x: number): number {
  // Split by sign so exp never overflows to Inf/Inf.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
registerOp('Sigmoid', unaryOp(sigmoid, (_x, y) => y * (1 - y), undefined, {
  fwd(X, out) {
    for (let i = 0; i < X.length; i++) out[i] = sigmoid(X[i]!);
  },
  bwd(_X, Y, G, out) {
    for (let i = 0; i < Y.length; i++) out[i] = G[i]! * Y[i]! * (1 - Y[i]!);
  },
}));
registerOp('Tanh', unaryOp(Math.tanh, (_x, y) => 1 - y * y, undefined, {
  fwd(X, out) {
    for (let i = 0; i < X.length; i++) out[i] = Math.tanh(X[i]!);
  },
  bwd(_X, Y, G, out) {
    for (let i = 0; i < Y.length; i++) out[i] = G[i]! * (1 - Y[i]! * Y[i]!);
  },
}));

/**
 * erf in float64 from the Chebyshev-fitted erfc of Numerical Recipes (fractional error < 1.2e-7,
 * below float32's half-ulp for the results that matter). JS has no Math.erf.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc : erfc - 1;
}
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
registerOp('Erf', unaryOp(erf, (x) => TWO_OVER_SQRT_PI * Math.exp(-x * x)));

const INV_SQRT2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const geluExact = unaryOp(
  (x) => 0.5 * x * (1 + erf(x * INV_SQRT2)),
  (x) => 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x),
);
const geluTanh = unaryOp(
  (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
  (x) => {
    const th = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
  },
);
const geluApprox = (ctx: Pick<OpContext, 'attrs'>): string => ctx.attrs.string('approximate', 'none');
registerOp('Gelu', {
  check(ctx) {
    const a = geluApprox(ctx);
    if (a !== 'none' && a !== 'tanh') throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `Gelu approximate="${a}" (known: none, tanh)`, { op: opLabel(ctx.node) });
  },
  forward: (ctx, inputs) => (geluApprox(ctx) === 'tanh' ? geluTanh : geluExact).forward(ctx, inputs),
  backward: (ctx, ...rest) => (geluApprox(ctx) === 'tanh' ? geluTanh : geluExact).backward!(ctx, ...rest),
});

/** Ops whose only attribute is a float `alpha`: the handler is built per call from the attribute. */
function withAlpha(def: number, make: (alpha: number) => OpDef): OpDef {
  return {
    forward: (ctx, inputs) => make(ctx.attrs.float('alpha', def)).forward(ctx, inputs),
    backward: (ctx, ...rest) => make(ctx.attrs.float('alpha', def)).backward!(ctx, ...rest),
  };
}
registerOp('LeakyRelu', withAlpha(0.01, (a) => unaryOp((x) => (x >= 0 ? x : a * x), (x) => (x > 0 ? 1 : a), undefined, {
  fwd(X, out) {
    for (let i = 0; i < X.length; i++) {
      const x = X[i]!;
      out[i] = x >= 0 ? x : a * x;
    }
  },
  bwd(X, _Y, G, out) {
    for (let i = 0; i < X.length; i++) out[i] = X[i]! > 0 ? G[i]! : a * G[i]!;
  },
})));
registerOp('Elu', withAlpha(1, (a) => unaryOp((x) => (x > 0 ? x : a * Math.expm1(x)), (x, y) => (x > 0 ? 1 : y + a))));

// ------------------------------------------------------------------------------------------------
// Clip
// ------------------------------------------------------------------------------------------------

function clipBounds(ctx: OpContext, inputs: readonly (Value | undefined)[]): [number, number] {
  // Opset < 11 carries min/max as attributes (defaulting to the float range), later as optional inputs.
  if (ctx.opset < 11) return [ctx.attrs.float('min', -Infinity), ctx.attrs.float('max', Infinity)];
  const scalar = (i: number, def: number): number => {
    const v = inputs[i];
    if (!v) return def;
    if (v.data.length !== 1) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `Clip bound (input ${i}) must be a scalar, got [${v.dims.join(',')}]`, { op: opLabel(ctx.node) });
    return Number(v.data[0]);
  };
  return [scalar(1, -Infinity), scalar(2, Infinity)];
}

registerOp('Clip', {
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    const [lo, hi] = clipBounds(ctx, inputs);
    // ONNX: min is applied first, then max, so min > max gives max everywhere (numpy.clip agrees).
    const X = x.data, out = new Float32Array(X.length), floor = Math.min(lo, hi);
    for (let i = 0; i < X.length; i++) {
      const v = X[i]!;
      out[i] = v < lo ? floor : v > hi ? hi : v;
    }
    return { outputs: [fvalue(x.dims, out)] };
  },
  backward(ctx, inputs, _o, [g]) {
    if (!g) return [];
    const [lo, hi] = clipBounds(ctx, inputs);
    const X = (inputs[0] as FValue).data;
    // Inclusive bounds pass the gradient, as torch.clamp does.
    const G = g.data, out = new Float32Array(G.length);
    for (let i = 0; i < G.length; i++) out[i] = X[i]! >= lo && X[i]! <= hi ? G[i]! : 0;
    return [fvalue(g.dims, out)];
  },
});

// ------------------------------------------------------------------------------------------------
// Softmax / LogSoftmax
// ------------------------------------------------------------------------------------------------

interface AxisLayout {
  outer: number;
  len: number;
  inner: number;
}

/**
 * Opset < 13 coerces the input to 2-D at `axis` (default 1) and normalises whole rows; opset ≥ 13
 * normalises along the one axis (default -1).
 */
function softmaxLayout(ctx: OpContext, dims: readonly number[]): AxisLayout {
  const r = dims.length;
  const old = ctx.opset < 13;
  let axis = ctx.attrs.int('axis', old ? 1 : -1);
  if (axis < -r || axis > (old ? r : r - 1) || (r === 0 && !old)) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `axis ${axis} is out of range for rank ${r}`, { op: opLabel(ctx.node) });
  }
  if (axis < 0) axis += r;
  const prod = (a: number, b: number): number => dims.slice(a, b).reduce((p, d) => p * d, 1);
  if (old) return { outer: prod(0, axis), len: prod(axis, r), inner: 1 };
  return { outer: prod(0, axis), len: dims[axis]!, inner: prod(axis + 1, r) };
}

/** Calls fn(base, stride) for every softmax row: elements base + j·stride, j < len. */
function forRows(l: AxisLayout, fn: (base: number, stride: number) => void): void {
  for (let o = 0; o < l.outer; o++) for (let i = 0; i < l.inner; i++) fn(o * l.len * l.inner + i, l.inner);
}

function softmaxOp(log: boolean): OpDef {
  return {
    forward(ctx, inputs) {
      const x = floatInput(inputs, 0, ctx.node);
      const X = x.data;
      const out = new Float32Array(X.length);
      const l = softmaxLayout(ctx, x.dims);
      forRows(l, (b, s) => {
        let max = -Infinity;
        for (let j = 0; j < l.len; j++) max = Math.max(max, X[b + j * s]!);
        let sum = 0;
        for (let j = 0; j < l.len; j++) sum += Math.exp(X[b + j * s]! - max);
        const lse = Math.log(sum);
        for (let j = 0; j < l.len; j++) {
          const d = X[b + j * s]! - max;
          out[b + j * s] = log ? d - lse : Math.exp(d) / sum;
        }
      });
      return { outputs: [fvalue(x.dims, out)] };
    },
    backward(ctx, _inputs, [y], [g]) {
      if (!g) return [];
      const Y = y!.data as Float32Array, G = g.data;
      const out = new Float32Array(Y.length);
      const l = softmaxLayout(ctx, y!.dims);
      forRows(l, (b, s) => {
        let dot = 0;
        // softmax: dx = y·(g − Σ g·y); log-softmax: dx = g − softmax·Σ g.
        for (let j = 0; j < l.len; j++) dot += log ? G[b + j * s]! : G[b + j * s]! * Y[b + j * s]!;
        for (let j = 0; j < l.len; j++) {
          const k = b + j * s;
          out[k] = log ? G[k]! - Math.exp(Y[k]!) * dot : Y[k]! * (G[k]! - dot);
        }
      });
      return [fvalue(y!.dims, out)];
    },
  };
}

registerOp('Softmax', softmaxOp(false));
registerOp('LogSoftmax', softmaxOp(true));
