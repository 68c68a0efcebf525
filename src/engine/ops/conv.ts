/**
 * Conv (1-D and 2-D, groups incl. depthwise, pads/strides/dilations, auto_pad) and ConvTranspose,
 * forward and backward, on the im2col + GEMM kernels (src/kernels/conv.ts). Also the ONNX window
 * geometry (auto_pad, ceil_mode, output sizes) that the pooling ops share.
 *
 * ConvTranspose is the adjoint of the Conv that maps its output back to its input with the same
 * weight tensor ([C_in, M/group, k…] is exactly that Conv's [M', C'/group, k…] layout), so its
 * forward is that Conv's input gradient and its backward that Conv's forward and weight gradient.
 */
import type { NodeProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { channelSums, conv2dBackward, conv2dForward, type ConvGeom, type Geom2d } from '../../kernels/conv.js';
import type { Attrs } from '../attrs.js';
import { registerOp } from '../registry.js';
import type { FValue, OpContext } from '../types.js';
import { fvalue, floatInput, opLabel } from '../values.js';

const AUTO_PADS = ['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'];

/** Most spatial axes the kernels handle (1-D runs as 2-D with H = 1). */
export const MAX_SPATIAL = 2;

function unsupported(node: NodeProto, msg: string): never {
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, msg, { op: opLabel(node) });
}

function malformed(node: NodeProto, msg: string): never {
  throw new ModelsmithError(ErrorCodes.MALFORMED, msg, { op: opLabel(node) });
}

/**
 * Runs a kernel wrapper and names the node in its errors: the wrappers check geometry and sizes
 * (E_KERNEL_ARG, E_LIMIT) but do not know which node asked.
 */
export function withOp<T>(node: NodeProto, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ModelsmithError && e.op === undefined) {
      const msg = e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message;
      throw new ModelsmithError(e.code, msg, { op: opLabel(node), cause: e });
    }
    throw e;
  }
}

/**
 * Attribute checks shared by Conv and the pools, done before anything runs: known auto_pad,
 * positive strides/dilations, non-negative pads, at most two spatial axes.
 */
export function checkWindowAttrs(node: NodeProto, attrs: Attrs): void {
  const autoPad = attrs.string('auto_pad', 'NOTSET');
  if (!AUTO_PADS.includes(autoPad)) unsupported(node, `auto_pad ${autoPad} is not one of ${AUTO_PADS.join(', ')}`);
  const ks = attrs.ints('kernel_shape');
  const strides = attrs.ints('strides');
  const dil = attrs.ints('dilations');
  const pads = attrs.ints('pads');
  const rank = ks?.length ?? strides?.length ?? dil?.length ?? (pads ? pads.length / 2 : undefined);
  if (rank !== undefined && (rank < 1 || rank > MAX_SPATIAL)) unsupported(node, `${rank}-D windows (only 1-D and 2-D are implemented)`);
  if (ks && ks.some((k) => k < 1)) unsupported(node, `kernel_shape [${ks.join(',')}] has a non-positive entry`);
  if (strides && strides.some((s) => s < 1)) unsupported(node, `strides [${strides.join(',')}] has a non-positive entry`);
  if (dil && dil.some((d) => d < 1)) unsupported(node, `dilations [${dil.join(',')}] has a non-positive entry`);
  if (pads && (pads.length % 2 !== 0 || pads.some((p) => p < 0))) unsupported(node, `pads [${pads.join(',')}] must be non-negative begin/end pairs`);
}

/** Resolved window geometry over r spatial axes. */
export interface Windows {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Begin pads then end pads (ONNX order). */
  pads: number[];
  out: number[];
}

/**
 * Output sizes and effective pads from ONNX attributes. `ceil` (pools' ceil_mode) follows
 * PyTorch/onnxruntime: a window that would start inside the end padding is dropped.
 */
export function resolveWindows(node: NodeProto, attrs: Attrs, inSpatial: readonly number[], kernel: readonly number[], ceil = false): Windows {
  const r = inSpatial.length;
  if (kernel.length !== r) malformed(node, `kernel has ${kernel.length} spatial axes, input ${r}`);
  const list = (name: string, def: number): number[] => {
    const v = attrs.ints(name) ?? new Array<number>(r).fill(def);
    if (v.length !== r) malformed(node, `${name} has ${v.length} entries for ${r} spatial axes`);
    return v;
  };
  const strides = list('strides', 1);
  const dilations = list('dilations', 1);
  let pads = attrs.ints('pads') ?? new Array<number>(2 * r).fill(0);
  if (pads.length !== 2 * r) malformed(node, `pads has ${pads.length} entries for ${r} spatial axes`);
  const autoPad = attrs.string('auto_pad', 'NOTSET');
  const out: number[] = [];
  pads = [...pads];
  for (let i = 0; i < r; i++) {
    const n = inSpatial[i]!, s = strides[i]!, ek = (kernel[i]! - 1) * dilations[i]! + 1;
    let o: number;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      o = Math.ceil(n / s);
      const total = Math.max(0, (o - 1) * s + ek - n);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + r] = total - pads[i]!;
    } else {
      if (autoPad === 'VALID') pads[i] = pads[i + r] = 0;
      const span = n + pads[i]! + pads[i + r]! - ek;
      if (span < 0) malformed(node, `kernel extent ${ek} exceeds the padded input ${n + pads[i]! + pads[i + r]!} on spatial axis ${i}`);
      o = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
      if (ceil && (o - 1) * s >= n + pads[i]!) o--;
    }
    if (o < 1) malformed(node, `empty output on spatial axis ${i}`);
    out.push(o);
  }
  return { kernel: [...kernel], strides, dilations, pads, out };
}

/** The 2-D kernel geometry of r ∈ {1, 2} spatial axes (1-D as H = 1). */
export function geom2d(node: NodeProto, inSpatial: readonly number[], w: Windows): Geom2d {
  const r = inSpatial.length;
  if (r === 1) {
    return {
      H: 1, W: inSpatial[0]!, kH: 1, kW: w.kernel[0]!, padT: 0, padB: 0, padL: w.pads[0]!, padR: w.pads[1]!,
      sH: 1, sW: w.strides[0]!, dH: 1, dW: w.dilations[0]!, oH: 1, oW: w.out[0]!,
    };
  }
  if (r !== 2) unsupported(node, `${r}-D input (only 1-D and 2-D are implemented)`);
  return {
    H: inSpatial[0]!, W: inSpatial[1]!, kH: w.kernel[0]!, kW: w.kernel[1]!,
    padT: w.pads[0]!, padL: w.pads[1]!, padB: w.pads[2]!, padR: w.pads[3]!,
    sH: w.strides[0]!, sW: w.strides[1]!, dH: w.dilations[0]!, dW: w.dilations[1]!, oH: w.out[0]!, oW: w.out[1]!,
  };
}

interface ConvPlan {
  N: number;
  geom: ConvGeom;
  outDims: number[];
}

function planConv(ctx: Pick<OpContext, 'node' | 'attrs'>, x: FValue, w: FValue, b: FValue | undefined): ConvPlan {
  const { node, attrs } = ctx;
  if (x.dims.length < 3) malformed(node, `input X has rank ${x.dims.length}, expected N, C and spatial axes`);
  if (w.dims.length !== x.dims.length) malformed(node, `weight W has rank ${w.dims.length}, input X ${x.dims.length}`);
  const [N, C] = x.dims as [number, number];
  const [M, Cg] = w.dims as [number, number];
  const group = attrs.int('group', 1);
  if (Cg * group !== C) malformed(node, `input has ${C} channels, weight expects ${Cg} per group × ${group} groups`);
  if (M % group !== 0) malformed(node, `${M} output channels do not divide into ${group} groups`);
  if (b && (b.dims.length !== 1 || b.dims[0] !== M)) malformed(node, `bias B has shape [${b.dims.join(',')}], expected [${M}]`);
  const kernel = w.dims.slice(2);
  const ks = attrs.ints('kernel_shape');
  if (ks && ks.join(',') !== kernel.join(',')) malformed(node, `kernel_shape [${ks.join(',')}] disagrees with the weight's [${kernel.join(',')}]`);
  const spatial = x.dims.slice(2);
  const win = resolveWindows(node, attrs, spatial, kernel);
  return { N, geom: { ...geom2d(node, spatial, win), C, M, group }, outDims: [N, M, ...win.out] };
}

registerOp('Conv', {
  check({ node, attrs }) {
    checkWindowAttrs(node, attrs);
    if (attrs.int('group', 1) < 1) unsupported(node, `group ${attrs.int('group', 1)} must be positive`);
  },
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    const w = floatInput(inputs, 1, ctx.node);
    const b = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const p = planConv(ctx, x, w, b);
    const y = withOp(ctx.node, () => conv2dForward(ctx.kernels, x.data, w.data, b?.data, p.N, p.geom));
    return { outputs: [fvalue(p.outDims, y)] };
  },
  backward(ctx, inputs, _outputs, gradOutputs) {
    const dy = gradOutputs[0];
    if (!dy) return [];
    const x = floatInput(inputs, 0, ctx.node);
    const w = floatInput(inputs, 1, ctx.node);
    const b = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const p = planConv(ctx, x, w, b);
    const want = (i: number): boolean => ctx.needsGrad?.[i] ?? true;
    const g = withOp(ctx.node, () => conv2dBackward(ctx.kernels, x.data, w.data, dy.data, p.N, p.geom, { dx: want(0), dw: want(1), db: !!b && want(2) }));
    return [g.dx ? fvalue(x.dims, g.dx) : undefined, g.dw ? fvalue(w.dims, g.dw) : undefined, b && g.db ? fvalue(b.dims, g.db) : undefined];
  },
});

interface TransposePlan {
  N: number;
  /** Geometry of the adjoint Conv: its input is this op's output, its output this op's input. */
  geom: ConvGeom;
  outDims: number[];
}

function planConvTranspose(ctx: Pick<OpContext, 'node' | 'attrs'>, x: FValue, w: FValue, b: FValue | undefined): TransposePlan {
  const { node, attrs } = ctx;
  if (x.dims.length < 3) malformed(node, `input X has rank ${x.dims.length}, expected N, C and spatial axes`);
  if (w.dims.length !== x.dims.length) malformed(node, `weight W has rank ${w.dims.length}, input X ${x.dims.length}`);
  const [N, C] = x.dims as [number, number];
  const group = attrs.int('group', 1);
  if (w.dims[0] !== C || C % group !== 0) malformed(node, `input has ${C} channels, weight [${w.dims.join(',')}] with ${group} groups`);
  const M = w.dims[1]! * group;
  if (b && (b.dims.length !== 1 || b.dims[0] !== M)) malformed(node, `bias B has shape [${b.dims.join(',')}], expected [${M}]`);
  const kernel = w.dims.slice(2);
  const ks = attrs.ints('kernel_shape');
  if (ks && ks.join(',') !== kernel.join(',')) malformed(node, `kernel_shape [${ks.join(',')}] disagrees with the weight's [${kernel.join(',')}]`);
  const spatial = x.dims.slice(2);
  const r = spatial.length;
  const list = (name: string, def: number): number[] => {
    const v = attrs.ints(name) ?? new Array<number>(r).fill(def);
    if (v.length !== r) malformed(node, `${name} has ${v.length} entries for ${r} spatial axes`);
    return v;
  };
  const strides = list('strides', 1), dilations = list('dilations', 1), outPad = list('output_padding', 0);
  let pads = attrs.ints('pads') ?? new Array<number>(2 * r).fill(0);
  if (pads.length !== 2 * r) malformed(node, `pads has ${pads.length} entries for ${r} spatial axes`);
  pads = [...pads];
  const autoPad = attrs.string('auto_pad', 'NOTSET');
  let outShape = attrs.ints('output_shape');
  if (outShape && outShape.length === r + 2) outShape = outShape.slice(2);
  if (outShape && outShape.length !== r) malformed(node, `output_shape has ${outShape.length} entries for ${r} spatial axes`);
  if (!outShape && (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER')) outShape = spatial.map((n, i) => n * strides[i]!);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const full = strides[i]! * (spatial[i]! - 1) + outPad[i]! + (kernel[i]! - 1) * dilations[i]! + 1;
    if (outShape) {
      // The spec's split: SAME_UPPER puts the smaller half first, everything else the larger half.
      const total = full - outShape[i]!;
      if (total < 0) unsupported(node, `output_shape ${outShape[i]} beyond the full output ${full} on spatial axis ${i} (negative padding)`);
      const half = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? half : total - half;
      pads[i + r] = total - pads[i]!;
    } else if (autoPad === 'VALID') pads[i] = pads[i + r] = 0;
    const o = full - pads[i]! - pads[i + r]!;
    if (o < 1) malformed(node, `empty output on spatial axis ${i}`);
    out.push(o);
  }
  // Geometry of the Conv from this op's output (size `out`) back to its input (size `spatial`).
  const win: Windows = { kernel, strides, dilations, pads, out: spatial };
  const geom = { ...geom2d(node, out, win), C: M, M: C, group };
  return { N, geom, outDims: [N, M, ...out] };
}

registerOp('ConvTranspose', {
  check({ node, attrs }) {
    checkWindowAttrs(node, attrs);
    if (attrs.int('group', 1) < 1) unsupported(node, `group ${attrs.int('group', 1)} must be positive`);
    const op = attrs.ints('output_padding');
    if (op && op.some((v) => v < 0)) unsupported(node, `output_padding [${op.join(',')}] has a negative entry`);
  },
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    const w = floatInput(inputs, 1, ctx.node);
    const b = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const p = planConvTranspose(ctx, x, w, b);
    const y = withOp(ctx.node, () => conv2dBackward(ctx.kernels, undefined, w.data, x.data, p.N, p.geom, { dx: true, dw: false, db: false }).dx!);
    if (b) {
      const plane = p.geom.H * p.geom.W, M = p.geom.C;
      for (let n = 0; n < p.N; n++) for (let m = 0; m < M; m++) {
        const o = (n * M + m) * plane, bv = b.data[m]!;
        for (let k = 0; k < plane; k++) y[o + k]! += bv;
      }
    }
    return { outputs: [fvalue(p.outDims, y)] };
  },
  backward(ctx, inputs, _outputs, gradOutputs) {
    const dy = gradOutputs[0];
    if (!dy) return [];
    const x = floatInput(inputs, 0, ctx.node);
    const w = floatInput(inputs, 1, ctx.node);
    const b = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const p = planConvTranspose(ctx, x, w, b);
    return withOp(ctx.node, () => {
      const dx = conv2dForward(ctx.kernels, dy.data, w.data, undefined, p.N, p.geom);
      const dw = conv2dBackward(ctx.kernels, dy.data, w.data, x.data, p.N, p.geom, { dx: false, dw: true, db: false }).dw!;
      const db = b ? channelSums(ctx.kernels, dy.data, undefined, p.N, p.geom.C, p.geom.H * p.geom.W).sum : undefined;
      return [fvalue(x.dims, dx), fvalue(w.dims, dw), b ? fvalue(b.dims, db) : undefined];
    });
  },
});
