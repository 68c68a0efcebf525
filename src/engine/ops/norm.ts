/**
 * BatchNormalization (inference form) and LayerNormalization, forward and backward.
 *
 * These are single streaming passes over the activations with per-channel or per-row float64
 * accumulators; they run as plain loops on the JS heap, where copying into the kernel arena would
 * cost as much as the work. BatchNorm only exists in its inference form: fine-tuning runs in eval
 * mode, so the running mean/var are constants and receive no gradient.
 */
import type { NodeProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { registerOp } from '../registry.js';
import type { FValue } from '../types.js';
import { fvalue, floatInput, opLabel } from '../values.js';

function unsupported(node: NodeProto, msg: string): never {
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, msg, { op: opLabel(node) });
}

function malformed(node: NodeProto, msg: string): never {
  throw new ModelsmithError(ErrorCodes.MALFORMED, msg, { op: opLabel(node) });
}

function perChannel(node: NodeProto, v: FValue, C: number, what: string): Float32Array {
  if (v.data.length !== C) malformed(node, `${what} has ${v.data.length} elements for ${C} channels`);
  return v.data;
}

interface BnPlan {
  N: number;
  C: number;
  S: number;
  /** scale / sqrt(var + eps): y = a·x + (B − mean·a). */
  a: Float64Array;
  mean: Float32Array;
}

function planBn(node: NodeProto, eps: number, inputs: readonly (FValue | undefined)[]): BnPlan & { shift: Float64Array } {
  const x = inputs[0]!;
  if (x.dims.length < 2) malformed(node, `input X has rank ${x.dims.length}, expected at least N and C`);
  const [N, C] = x.dims as [number, number];
  const S = x.dims.slice(2).reduce((p, d) => p * d, 1);
  const scale = perChannel(node, inputs[1]!, C, 'scale');
  const bias = perChannel(node, inputs[2]!, C, 'B');
  const mean = perChannel(node, inputs[3]!, C, 'input_mean');
  const variance = perChannel(node, inputs[4]!, C, 'input_var');
  const a = new Float64Array(C), shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    a[c] = scale[c]! / Math.sqrt(variance[c]! + eps);
    shift[c] = bias[c]! - mean[c]! * a[c]!;
  }
  return { N, C, S, a, mean, shift };
}

registerOp('BatchNormalization', {
  check({ node, attrs, opset }) {
    if (attrs.int('training_mode', 0) !== 0) unsupported(node, 'training_mode=1 (the engine runs BatchNormalization in inference form; fine-tuning uses eval mode)');
    if (opset < 9 && attrs.int('spatial', 1) !== 1) unsupported(node, 'spatial=0 (per-activation statistics)');
    // Extra outputs only exist for the training form (running/saved statistics).
    if (node.output.slice(1).some((o) => o !== '')) unsupported(node, `${node.output.length} outputs (only Y: the training form is not implemented)`);
  },
  forward(ctx, inputs) {
    const ins = [0, 1, 2, 3, 4].map((i) => floatInput(inputs, i, ctx.node));
    const p = planBn(ctx.node, ctx.attrs.float('epsilon', 1e-5), ins);
    const x = ins[0]!.data;
    const y = new Float32Array(x.length);
    for (let n = 0, o = 0; n < p.N; n++) {
      for (let c = 0; c < p.C; c++) {
        const a = p.a[c]!, b = p.shift[c]!;
        for (let s = 0; s < p.S; s++, o++) y[o] = x[o]! * a + b;
      }
    }
    return { outputs: [fvalue(ins[0]!.dims, y)] };
  },
  backward(ctx, inputs, _outputs, gradOutputs) {
    const dyv = gradOutputs[0];
    if (!dyv) return [];
    const ins = [0, 1, 2, 3, 4].map((i) => floatInput(inputs, i, ctx.node));
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const p = planBn(ctx.node, eps, ins);
    const x = ins[0]!.data, dy = dyv.data, variance = ins[4]!.data;
    const dx = new Float32Array(x.length);
    // dScale = Σ dY·(x − mean)/σ and dB = Σ dY, accumulated per channel in float64; centring before
    // the product avoids the cancellation of Σ dY·x − mean·Σ dY.
    const dxh = new Float64Array(p.C), db = new Float64Array(p.C);
    for (let n = 0, o = 0; n < p.N; n++) {
      for (let c = 0; c < p.C; c++) {
        const a = p.a[c]!, m = p.mean[c]!;
        let sx = 0, sb = 0;
        for (let s = 0; s < p.S; s++, o++) {
          const g = dy[o]!;
          dx[o] = g * a;
          sx += g * (x[o]! - m);
          sb += g;
        }
        dxh[c] += sx;
        db[c] += sb;
      }
    }
    const dscale = new Float32Array(p.C);
    for (let c = 0; c < p.C; c++) dscale[c] = dxh[c]! / Math.sqrt(variance[c]! + eps);
    return [fvalue(ins[0]!.dims, dx), fvalue(ins[1]!.dims, dscale), fvalue(ins[2]!.dims, Float32Array.from(db)), undefined, undefined];
  },
});

interface LnPlan {
  /** Rows (product of the axes before `axis`) and row length (product from `axis`). */
  R: number;
  D: number;
  statDims: number[];
}

function planLn(node: NodeProto, axisAttr: number, x: FValue, scale: FValue, bias: FValue | undefined): LnPlan {
  const r = x.dims.length;
  const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
  if (axis < 0 || axis >= r) malformed(node, `axis ${axisAttr} is outside rank ${r}`);
  const R = x.dims.slice(0, axis).reduce((p, d) => p * d, 1);
  const D = x.dims.slice(axis).reduce((p, d) => p * d, 1);
  // Scale/B broadcast over the normalised axes; only the full-shape form (what exporters write) is implemented.
  if (scale.data.length !== D) unsupported(node, `Scale of shape [${scale.dims.join(',')}] for normalised shape [${x.dims.slice(axis).join(',')}] (only a full-shape Scale is implemented)`);
  if (bias && bias.data.length !== D) unsupported(node, `B of shape [${bias.dims.join(',')}] for normalised shape [${x.dims.slice(axis).join(',')}]`);
  return { R, D, statDims: x.dims.map((d, i) => (i < axis ? d : 1)) };
}

interface LnStats {
  means: Float32Array;
  invs: Float32Array;
}

/** Per-row mean and 1/sqrt(var + eps), two passes in float64 (no E[x²] − E[x]² cancellation). */
function lnStats(xs: Float32Array, p: LnPlan, eps: number): LnStats {
  const means = new Float32Array(p.R), invs = new Float32Array(p.R);
  for (let r = 0; r < p.R; r++) {
    const o = r * p.D;
    let s = 0;
    for (let j = 0; j < p.D; j++) s += xs[o + j]!;
    const mean = s / p.D;
    let v = 0;
    for (let j = 0; j < p.D; j++) {
      const d = xs[o + j]! - mean;
      v += d * d;
    }
    means[r] = mean;
    invs[r] = 1 / Math.sqrt(v / p.D + eps);
  }
  return { means, invs };
}

registerOp('LayerNormalization', {
  check({ node, attrs }) {
    const st = attrs.int('stash_type', 1);
    if (st !== 1) unsupported(node, `stash_type ${st} (statistics are computed in float32 or better)`);
  },
  forward(ctx, inputs) {
    const x = floatInput(inputs, 0, ctx.node);
    const scale = floatInput(inputs, 1, ctx.node);
    const bias = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const p = planLn(ctx.node, ctx.attrs.int('axis', -1), x, scale, bias);
    const st = lnStats(x.data, p, ctx.attrs.float('epsilon', 1e-5));
    const xs = x.data, sc = scale.data, bs = bias?.data;
    const y = new Float32Array(xs.length);
    for (let r = 0; r < p.R; r++) {
      const o = r * p.D, mean = st.means[r]!, inv = st.invs[r]!;
      for (let j = 0; j < p.D; j++) y[o + j] = (xs[o + j]! - mean) * inv * sc[j]! + (bs ? bs[j]! : 0);
    }
    const all = [fvalue(x.dims, y), fvalue(p.statDims, st.means), fvalue(p.statDims, st.invs)];
    return { outputs: all.slice(0, Math.max(1, ctx.node.output.length)), saved: ctx.training ? st : undefined };
  },
  backward(ctx, inputs, _outputs, gradOutputs, saved) {
    const [gy, gMean, gInv] = gradOutputs;
    if (!gy && !gMean && !gInv) return [];
    const x = floatInput(inputs, 0, ctx.node);
    const scale = floatInput(inputs, 1, ctx.node);
    const bias = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const p = planLn(ctx.node, ctx.attrs.int('axis', -1), x, scale, bias);
    const { means, invs } = (saved as LnStats | undefined) ?? lnStats(x.data, p, ctx.attrs.float('epsilon', 1e-5));
    const xs = x.data, sc = scale.data;
    const dx = new Float32Array(xs.length);
    const dsc = new Float64Array(p.D), db = new Float64Array(p.D);
    for (let r = 0; r < p.R; r++) {
      const o = r * p.D, mean = means[r]!, inv = invs[r]!;
      // dx = inv·(g − mean(g) − x̂·mean(g·x̂)) with g = dY·scale, plus the paths through the Mean
      // and InvStdDev outputs when something downstream used them.
      let sg = 0, sgx = 0;
      if (gy) {
        for (let j = 0; j < p.D; j++) {
          const d = gy.data[o + j]!, xh = (xs[o + j]! - mean) * inv, g = d * sc[j]!;
          sg += g;
          sgx += g * xh;
          dsc[j] += d * xh;
          db[j] += d;
        }
      }
      const mg = sg / p.D, mgx = sgx / p.D;
      const fromMean = gMean ? gMean.data[r]! / p.D : 0;
      const fromInv = gInv ? (-gInv.data[r]! * inv * inv * inv) / p.D : 0;
      for (let j = 0; j < p.D; j++) {
        const c = xs[o + j]! - mean, xh = c * inv;
        const g = gy ? gy.data[o + j]! * sc[j]! : 0;
        dx[o + j] = (gy ? inv * (g - mg - xh * mgx) : 0) + fromMean + fromInv * c;
      }
    }
    return [fvalue(x.dims, dx), fvalue(scale.dims, Float32Array.from(dsc)), bias ? fvalue(bias.dims, Float32Array.from(db)) : undefined];
  },
});
