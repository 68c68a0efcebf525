/**
 * MaxPool (optional Indices), AveragePool, GlobalAveragePool, GlobalMaxPool, forward and backward,
 * on the pooling kernels (src/kernels/conv.ts). Window geometry is shared with Conv.
 */
import type { NodeProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { avgPool2d, avgPool2dBackward, maxPool2d, maxPool2dBackward, type Geom2d } from '../../kernels/conv.js';
import type { Attrs } from '../attrs.js';
import { registerOp } from '../registry.js';
import type { FValue, OpContext, Value } from '../types.js';
import { fvalue, floatInput, opLabel } from '../values.js';
import { checkWindowAttrs, geom2d, resolveWindows, withOp } from './conv.js';

function unsupported(node: NodeProto, msg: string): never {
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, msg, { op: opLabel(node) });
}

interface PoolPlan {
  planes: number;
  geom: Geom2d;
  outDims: number[];
}

function planPool(node: NodeProto, attrs: Attrs, x: FValue, ceilAttr: boolean): PoolPlan {
  if (x.dims.length < 3) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `input X has rank ${x.dims.length}, expected N, C and spatial axes`, { op: opLabel(node) });
  }
  const kernel = attrs.ints('kernel_shape');
  if (!kernel) throw new ModelsmithError(ErrorCodes.MALFORMED, 'kernel_shape attribute is required', { op: opLabel(node) });
  const spatial = x.dims.slice(2);
  const win = resolveWindows(node, attrs, spatial, kernel, ceilAttr && attrs.int('ceil_mode', 0) === 1);
  return { planes: x.dims[0]! * x.dims[1]!, geom: geom2d(node, spatial, win), outDims: [x.dims[0]!, x.dims[1]!, ...win.out] };
}

/** Global pools are one window over all spatial positions, flattened to a 1×S plane. */
function planGlobal(node: NodeProto, x: FValue): PoolPlan {
  if (x.dims.length < 3) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `input X has rank ${x.dims.length}, expected N, C and spatial axes`, { op: opLabel(node) });
  }
  const S = x.dims.slice(2).reduce((a, b) => a * b, 1);
  if (S < 1) throw new ModelsmithError(ErrorCodes.MALFORMED, 'input X has an empty spatial extent', { op: opLabel(node) });
  const geom: Geom2d = { H: 1, W: S, kH: 1, kW: S, padT: 0, padL: 0, padB: 0, padR: 0, sH: 1, sW: 1, dH: 1, dW: 1, oH: 1, oW: 1 };
  return { planes: x.dims[0]! * x.dims[1]!, geom, outDims: [x.dims[0]!, x.dims[1]!, ...x.dims.slice(2).map(() => 1)] };
}

function checkMaxPool({ node, attrs }: Pick<OpContext, 'node' | 'attrs'>): void {
  checkWindowAttrs(node, attrs);
  if (!attrs.has('kernel_shape')) unsupported(node, 'kernel_shape attribute is missing');
  const order = attrs.int('storage_order', 0);
  if (order !== 0) unsupported(node, `storage_order ${order} (only 0, row-major indices)`);
  const ceil = attrs.int('ceil_mode', 0);
  if (ceil !== 0 && ceil !== 1) unsupported(node, `ceil_mode ${ceil}`);
}

/** Indices output: flat offsets into X (N, C, H, W in row-major order), as ONNX storage_order 0 defines them. */
function flatIndices(idx: Int32Array, planes: number, inPlane: number, dims: number[]): Value {
  const outPlane = idx.length / Math.max(1, planes);
  const out = new BigInt64Array(idx.length);
  for (let p = 0; p < planes; p++) {
    const base = p * inPlane;
    for (let o = 0; o < outPlane; o++) {
      const k = p * outPlane + o;
      out[k] = BigInt(base + Math.max(0, idx[k]!));
    }
  }
  return { dtype: 'int64', dims: [...dims], data: out };
}

function maxForward(plan: PoolPlan, ctx: OpContext, x: FValue) {
  const { y, idx } = withOp(ctx.node, () => maxPool2d(ctx.kernels, x.data, plan.planes, plan.geom));
  const outputs: Value[] = [fvalue(plan.outDims, y)];
  if (ctx.node.output.length > 1 && ctx.node.output[1] !== '') {
    outputs.push(flatIndices(idx, plan.planes, plan.geom.H * plan.geom.W, plan.outDims));
  }
  return { outputs, saved: ctx.training ? idx : undefined };
}

function maxBackward(plan: PoolPlan, ctx: OpContext, x: FValue, dy: FValue, saved: unknown): FValue {
  return withOp(ctx.node, () => {
    const idx = saved instanceof Int32Array ? saved : maxPool2d(ctx.kernels, x.data, plan.planes, plan.geom).idx;
    return fvalue(x.dims, maxPool2dBackward(ctx.kernels, dy.data, idx, plan.planes, plan.geom));
  });
}

registerOp('MaxPool', {
  check: checkMaxPool,
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    return maxForward(planPool(ctx.node, ctx.attrs, x, true), ctx, x);
  },
  backward(ctx, inputs, _outputs, gradOutputs, saved) {
    const dy = gradOutputs[0];
    if (!dy) return [];
    const x = floatInput(inputs, 0, ctx.node);
    return [maxBackward(planPool(ctx.node, ctx.attrs, x, true), ctx, x, dy, saved)];
  },
});

registerOp('GlobalMaxPool', {
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    return maxForward(planGlobal(ctx.node, x), ctx, x);
  },
  backward(ctx, inputs, _outputs, gradOutputs, saved) {
    const dy = gradOutputs[0];
    if (!dy) return [];
    const x = floatInput(inputs, 0, ctx.node);
    return [maxBackward(planGlobal(ctx.node, x), ctx, x, dy, saved)];
  },
});

registerOp('AveragePool', {
  check({ node, attrs }) {
    checkWindowAttrs(node, attrs);
    if (!attrs.has('kernel_shape')) unsupported(node, 'kernel_shape attribute is missing');
    for (const a of ['ceil_mode', 'count_include_pad']) {
      const v = attrs.int(a, 0);
      if (v !== 0 && v !== 1) unsupported(node, `${a} ${v}`);
    }
  },
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    const plan = planPool(ctx.node, ctx.attrs, x, true);
    const inc = ctx.attrs.int('count_include_pad', 0) === 1;
    return { outputs: [fvalue(plan.outDims, withOp(ctx.node, () => avgPool2d(ctx.kernels, x.data, plan.planes, plan.geom, inc)))] };
  },
  backward(ctx, inputs, _outputs, gradOutputs) {
    const dy = gradOutputs[0];
    if (!dy) return [];
    const x = floatInput(inputs, 0, ctx.node);
    const plan = planPool(ctx.node, ctx.attrs, x, true);
    const inc = ctx.attrs.int('count_include_pad', 0) === 1;
    return [fvalue(x.dims, withOp(ctx.node, () => avgPool2dBackward(ctx.kernels, dy.data, plan.planes, plan.geom, inc)))];
  },
});

registerOp('GlobalAveragePool', {
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    const plan = planGlobal(ctx.node, x);
    return { outputs: [fvalue(plan.outDims, withOp(ctx.node, () => avgPool2d(ctx.kernels, x.data, plan.planes, plan.geom, false)))] };
  },
  backward(ctx, inputs, _outputs, gradOutputs) {
    const dy = gradOutputs[0];
    if (!dy) return [];
    const x = floatInput(inputs, 0, ctx.node);
    const plan = planGlobal(ctx.node, x);
    return [fvalue(x.dims, withOp(ctx.node, () => avgPool2dBackward(ctx.kernels, dy.data, plan.planes, plan.geom, false)))];
  },
});
