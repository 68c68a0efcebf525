/**
 * Elementwise arithmetic with numpy broadcasting (Add, Sub, Mul, Div, Pow), unary math (Neg, Sqrt,
 * Exp, Log, Abs), variadic Sum/Mean and the ReduceSum/ReduceMean reductions. Plain TS loops: they
 * are memory-bound and V8 compiles them well; only GEMM/conv are worth a trip into WASM.
 * Integer inputs are accepted where exported graphs use them for shape arithmetic (forward only).
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel } from '../../core/tensor.js';
import { broadcastDims, expandTo, map2, map2Rows, sumTo, sumTo64, type RowFn } from '../broadcast.js';
import { registerOp } from '../registry.js';
import type { EData, EDType, FValue, ForwardResult, OpContext, OpDef, Value } from '../types.js';
import { anyInput, floatInput, fvalue, intsOf, opLabel } from '../values.js';

type NumFn2 = (x: number, y: number) => number;

/** Integer data as float64 numbers (exact up to 2^53, far beyond any shape or index). */
function toNumbers(d: EData): ArrayLike<number> {
  return d instanceof BigInt64Array ? Float64Array.from(d, Number) : (d as ArrayLike<number>);
}

/** Numbers back into an integer dtype; a non-finite result (integer division by zero) is refused rather than wrapped. */
function fromNumbers(dtype: EDType, src: Float64Array, op: string): EData {
  for (let i = 0; i < src.length; i++) {
    if (!Number.isFinite(src[i]!)) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `integer result ${src[i]} at element ${i} (division by zero?)`, { op });
  }
  if (dtype === 'int64') return BigInt64Array.from(src, (v) => BigInt(v));
  if (dtype === 'int32') return Int32Array.from(src);
  throw new ModelsmithError(ErrorCodes.DTYPE, `no integer arithmetic on ${dtype}`, { op });
}

const isInt = (t: EDType): boolean => t === 'int64' || t === 'int32';

// Row kernels of the hot float ops, arithmetic written out (see RowFn on why not a callback).
const addRow: RowFn = (out, o, A, pa, ia, B, pb, ib, n) => {
  for (let j = 0; j < n; j++) out[o + j] = A[pa + j * ia]! + B[pb + j * ib]!;
};
const subRow: RowFn = (out, o, A, pa, ia, B, pb, ib, n) => {
  for (let j = 0; j < n; j++) out[o + j] = A[pa + j * ia]! - B[pb + j * ib]!;
};
const mulRow: RowFn = (out, o, A, pa, ia, B, pb, ib, n) => {
  for (let j = 0; j < n; j++) out[o + j] = A[pa + j * ia]! * B[pb + j * ib]!;
};
const divRow: RowFn = (out, o, A, pa, ia, B, pb, ib, n) => {
  for (let j = 0; j < n; j++) out[o + j] = A[pa + j * ia]! / B[pb + j * ib]!;
};
const negDivRow: RowFn = (out, o, A, pa, ia, B, pb, ib, n) => {
  for (let j = 0; j < n; j++) out[o + j] = -A[pa + j * ia]! / B[pb + j * ib]!;
};

function negated(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = -x[i]!;
  return out;
}

function binaryForward(ctx: OpContext, inputs: readonly (Value | undefined)[], row: RowFn, intF?: NumFn2): ForwardResult {
  const op = opLabel(ctx.node);
  const a = anyInput(inputs, 0, ctx.node), b = anyInput(inputs, 1, ctx.node);
  const dims = broadcastDims([a.dims, b.dims], op);
  const n = numel(dims);
  if (a.dtype === 'float32' && b.dtype === 'float32') {
    const out = new Float32Array(n);
    map2Rows(dims, a.data as Float32Array, a.dims, b.data as Float32Array, b.dims, out, row);
    return { outputs: [fvalue(dims, out)] };
  }
  if (intF && isInt(a.dtype) && a.dtype === b.dtype) {
    const out = new Float64Array(n);
    map2(dims, toNumbers(a.data), a.dims, toNumbers(b.data), b.dims, out, intF);
    return { outputs: [{ dtype: a.dtype, dims, data: fromNumbers(a.dtype, out, op) }] };
  }
  throw new ModelsmithError(ErrorCodes.DTYPE, `${ctx.node.opType} of ${a.dtype} and ${b.dtype} is not supported`, { op });
}

/** g (output shape) combined elementwise with a broadcast operand, then summed down to `dims`. */
function gradVia(g: FValue, other: Value, row: RowFn, dims: readonly number[]): FValue {
  const tmp = new Float32Array(g.data.length);
  map2Rows(g.dims, g.data, g.dims, other.data as Float32Array, other.dims, tmp, row);
  return fvalue(dims, sumTo(tmp, g.dims, dims));
}

const reduceGrad = (g: FValue, dims: readonly number[]): FValue => fvalue(dims, sumTo(g.data, g.dims, dims));
const floatOrUndef = (v: Value | undefined, g: () => FValue): FValue | undefined => (v?.dtype === 'float32' ? g() : undefined);

function registerBinary(opType: string, row: RowFn, intF: NumFn2 | undefined, backward: OpDef['backward']): void {
  const def: OpDef = { forward: (ctx, inputs) => binaryForward(ctx, inputs, row, intF) };
  if (backward) def.backward = backward;
  registerOp(opType, def);
}

registerBinary('Add', addRow, (x, y) => x + y, (_c, [a, b], _o, [g]) => (g ? [floatOrUndef(a, () => reduceGrad(g, a!.dims)), floatOrUndef(b, () => reduceGrad(g, b!.dims))] : []));

registerBinary('Sub', subRow, (x, y) => x - y, (_c, [a, b], _o, [g]) => {
  if (!g) return [];
  return [floatOrUndef(a, () => reduceGrad(g, a!.dims)), floatOrUndef(b, () => fvalue(b!.dims, sumTo(negated(g.data), g.dims, b!.dims)))];
});

registerBinary('Mul', mulRow, (x, y) => x * y, (_c, [a, b], _o, [g]) => {
  if (!g) return [];
  return [floatOrUndef(a, () => gradVia(g, b!, mulRow, a!.dims)), floatOrUndef(b, () => gradVia(g, a!, mulRow, b!.dims))];
});

// Integer Div truncates toward zero, as onnxruntime's C++ division does.
registerBinary('Div', divRow, (x, y) => Math.trunc(x / y), (_c, [a, b], [y], [g]) => {
  if (!g) return [];
  return [
    floatOrUndef(a, () => gradVia(g, b!, divRow, a!.dims)),
    floatOrUndef(b, () => {
      // d(a/b)/db = -y/b: combine g·y first (output shape), then divide by broadcast b.
      const gy = new Float32Array(g.data.length);
      mulRow(gy, 0, g.data, 0, 1, y!.data as Float32Array, 0, 1, gy.length);
      return gradVia(fvalue(g.dims, gy), b!, negDivRow, b!.dims);
    }),
  ];
});

registerOp('Pow', {
  forward(ctx, inputs) {
    const op = opLabel(ctx.node);
    const a = floatInput(inputs, 0, ctx.node);
    const b = anyInput(inputs, 1, ctx.node);
    if (b.dtype === 'bool') throw new ModelsmithError(ErrorCodes.DTYPE, 'Pow exponent of type bool', { op });
    const dims = broadcastDims([a.dims, b.dims], op);
    const out = new Float32Array(numel(dims));
    map2(dims, a.data, a.dims, toNumbers(b.data), b.dims, out, Math.pow);
    return { outputs: [fvalue(dims, out)] };
  },
  backward(_ctx, [a, b], [y], [g]) {
    if (!g) return [];
    const A = expandTo(a!.data as Float32Array, a!.dims, g.dims);
    const B = expandTo(toNumbers(b!.data), b!.dims, g.dims);
    const Y = y!.data as Float32Array;
    const ga = new Float32Array(g.data.length), gb = new Float32Array(g.data.length);
    for (let i = 0; i < ga.length; i++) {
      ga[i] = B[i] === 0 ? 0 : g.data[i]! * B[i]! * Math.pow(A[i]!, B[i]! - 1);
      // torch's convention: no gradient through the exponent where the base is 0.
      gb[i] = A[i] === 0 ? 0 : g.data[i]! * Y[i]! * Math.log(A[i]!);
    }
    return [fvalue(a!.dims, sumTo(ga, g.dims, a!.dims)), b!.dtype === 'float32' ? fvalue(b!.dims, sumTo(gb, g.dims, b!.dims)) : undefined];
  },
});

// ------------------------------------------------------------------------------------------------
// unary
// ------------------------------------------------------------------------------------------------

/**
 * A unary float op: y = f(x), dy/dx = df(x, y) (both available, so Sigmoid/Tanh/Exp use y).
 * `intF` admits integer inputs (Neg, Abs), forward only. Shared with ./activation.ts.
 */
export interface UnaryLoops {
  /** out[i] = f(X[i]) with f written out: the monomorphic twin of `f` for hot activations. */
  fwd(X: Float32Array, out: Float32Array): void;
  /** out[i] = G[i]·f'(X[i]) given Y = f(X). */
  bwd(X: Float32Array, Y: Float32Array, G: Float32Array, out: Float32Array): void;
}

export function unaryOp(f: (x: number) => number, df?: (x: number, y: number) => number, intF?: (x: number) => number, loops?: UnaryLoops): OpDef {
  const def: OpDef = {
    forward(ctx, inputs) {
      const x = anyInput(inputs, 0, ctx.node);
      if (x.dtype === 'float32') {
        const X = x.data as Float32Array;
        const out = new Float32Array(X.length);
        if (loops) loops.fwd(X, out);
        else for (let i = 0; i < X.length; i++) out[i] = f(X[i]!);
        return { outputs: [fvalue(x.dims, out)] };
      }
      if (intF && isInt(x.dtype)) {
        const X = toNumbers(x.data);
        const out = new Float64Array(X.length);
        for (let i = 0; i < X.length; i++) out[i] = intF(X[i]!);
        return { outputs: [{ dtype: x.dtype, dims: [...x.dims], data: fromNumbers(x.dtype, out, opLabel(ctx.node)) }] };
      }
      throw new ModelsmithError(ErrorCodes.DTYPE, `${ctx.node.opType} of ${x.dtype} is not supported`, { op: opLabel(ctx.node) });
    },
  };
  if (df) {
    def.backward = (_ctx, [x], [y], [g]) => {
      if (!g || x!.dtype !== 'float32') return [];
      const X = x!.data as Float32Array, Y = y!.data as Float32Array;
      const out = new Float32Array(X.length);
      if (loops) loops.bwd(X, Y, g.data, out);
      else for (let i = 0; i < X.length; i++) out[i] = g.data[i]! * df(X[i]!, Y[i]!);
      return [fvalue(x!.dims, out)];
    };
  }
  return def;
}

registerOp('Neg', unaryOp((x) => -x, () => -1, (x) => -x));
registerOp('Abs', unaryOp(Math.abs, (x) => (x > 0 ? 1 : x < 0 ? -1 : 0), Math.abs));
registerOp('Sqrt', unaryOp(Math.sqrt, (_x, y) => 0.5 / y));
registerOp('Exp', unaryOp(Math.exp, (_x, y) => y));
registerOp('Log', unaryOp(Math.log, (x) => 1 / x));

// ------------------------------------------------------------------------------------------------
// variadic Sum / Mean
// ------------------------------------------------------------------------------------------------

function variadic(scaleByCount: boolean): OpDef {
  return {
    forward(ctx, inputs) {
      const op = opLabel(ctx.node);
      if (inputs.length === 0) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `${ctx.node.opType} needs at least one input`, { op });
      const xs = inputs.map((_, i) => floatInput(inputs, i, ctx.node));
      const dims = broadcastDims(xs.map((x) => x.dims), op);
      let acc: Float32Array = expandTo(xs[0]!.data, xs[0]!.dims, dims);
      for (let i = 1; i < xs.length; i++) {
        const next = new Float32Array(acc.length);
        map2(dims, acc, dims, xs[i]!.data, xs[i]!.dims, next, (p, q) => p + q);
        acc = next;
      }
      if (scaleByCount) for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / xs.length;
      return { outputs: [fvalue(dims, acc)] };
    },
    backward(_ctx, inputs, _o, [g]) {
      if (!g) return [];
      const s = scaleByCount ? 1 / inputs.length : 1;
      const gs = s === 1 ? g : fvalue(g.dims, g.data.map((v) => v * s));
      return inputs.map((x) => reduceGrad(gs, x!.dims));
    },
  };
}

registerOp('Sum', variadic(false));
registerOp('Mean', variadic(true));

// ------------------------------------------------------------------------------------------------
// ReduceSum / ReduceMean
// ------------------------------------------------------------------------------------------------

interface ReducePlan {
  /** Input dims with 1 on reduced axes (the keepdims shape). */
  keep: number[];
  out: number[];
  /** Elements summed into each output (1 when nothing is reduced). */
  count: number;
}

function reducePlan(ctx: OpContext, inputs: readonly (Value | undefined)[], axesAsInputFrom: number): ReducePlan {
  const op = opLabel(ctx.node);
  const x = anyInput(inputs, 0, ctx.node);
  const r = x.dims.length;
  const fromInput = ctx.opset >= axesAsInputFrom;
  const given = fromInput ? (inputs[1] ? intsOf(inputs[1], `${op} axes`) : []) : ctx.attrs.ints('axes', []);
  const keepdims = ctx.attrs.int('keepdims', 1) !== 0;
  if (given.length === 0 && fromInput && ctx.attrs.int('noop_with_empty_axes', 0) !== 0) {
    return { keep: [...x.dims], out: [...x.dims], count: 1 };
  }
  const axes = new Set<number>();
  for (const a of given.length ? given : x.dims.map((_, i) => i)) {
    if (a < -r || a >= r) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `axis ${a} is out of range for rank ${r}`, { op });
    axes.add(a < 0 ? a + r : a);
  }
  const keep = x.dims.map((d, i) => (axes.has(i) ? 1 : d));
  const out = keepdims ? keep : x.dims.filter((_, i) => !axes.has(i));
  let count = 1;
  for (const a of axes) count *= x.dims[a]!;
  return { keep, out, count };
}

function reduceOp(mean: boolean, axesAsInputFrom: number): OpDef {
  return {
    forward(ctx, inputs) {
      const x = anyInput(inputs, 0, ctx.node);
      const p = reducePlan(ctx, inputs, axesAsInputFrom);
      const sums = sumTo64(toNumbers(x.data), x.dims, p.keep);
      if (mean) for (let i = 0; i < sums.length; i++) sums[i] = sums[i]! / p.count;
      if (x.dtype === 'float32') return { outputs: [fvalue(p.out, Float32Array.from(sums))] };
      if (isInt(x.dtype)) return { outputs: [{ dtype: x.dtype, dims: p.out, data: fromNumbers(x.dtype, sums.map(Math.trunc), opLabel(ctx.node)) }] };
      throw new ModelsmithError(ErrorCodes.DTYPE, `${ctx.node.opType} of ${x.dtype} is not supported`, { op: opLabel(ctx.node) });
    },
    backward(ctx, inputs, _o, [g]) {
      if (!g || inputs[0]!.dtype !== 'float32') return [];
      const p = reducePlan(ctx, inputs, axesAsInputFrom);
      const full = expandTo(g.data, p.keep, inputs[0]!.dims);
      if (mean) for (let i = 0; i < full.length; i++) full[i] = full[i]! / p.count;
      return [fvalue(inputs[0]!.dims, full)];
    },
  };
}

// axes moved from attribute to input in opset 13 for ReduceSum, in opset 18 for the other reductions.
registerOp('ReduceSum', reduceOp(false, 13));
registerOp('ReduceMean', reduceOp(true, 18));
