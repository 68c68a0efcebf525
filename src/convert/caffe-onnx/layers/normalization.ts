/**
 * BatchNorm (fused with a following Scale), Scale, Bias and LRN.
 *
 * Caffe's BatchNorm stores mean·s, var·s and s (a moving-average normaliser) and has no affine part;
 * the affine part is a separate Scale layer right after it. ONNX BatchNormalization has both, so a
 * BatchNorm whose top feeds only a Scale becomes one node.
 */
import { create } from '@bufbuild/protobuf';
import { ErrorCodes } from '../../../core/errors.js';
import {
  BatchNormParameterSchema,
  BiasParameterSchema,
  LRNParameter_NormRegion,
  LRNParameterSchema,
  ScaleParameterSchema,
  type LayerParameter,
} from '../../../formats/caffe/gen/caffe_pb.js';
import { firstAfter, type ConvertContext } from '../context.js';
import type { LayerTable } from './types.js';

function batchNorm(ctx: ConvertContext, layer: LayerParameter): number {
  const p = layer.batchNormParam ?? create(BatchNormParameterSchema, {});
  const x = ctx.bottom(layer);
  if (x.shape.length < 2) ctx.fail(ErrorCodes.UNSUPPORTED, layer, `input rank ${x.shape.length} (needs a channel axis)`);
  const c = x.shape[1]!;
  const blobs = ctx.requireBlobs(layer, 3);
  const mean = ctx.blobData(layer, blobs, 0, [c]);
  const variance = ctx.blobData(layer, blobs, 1, [c]);
  const s = ctx.blobData(layer, blobs, 2, [1])[0]!;
  // Caffe: a zero normaliser means "no statistics yet" and yields zeros.
  const factor = s === 0 ? 0 : 1 / s;
  const m = mean.map((v) => v * factor);
  const v = variance.map((u) => u * factor);
  if (!p.useGlobalStats) ctx.diagnostics.push({ level: 'info', code: 'caffe.bn_global_stats', message: `BatchNorm '${layer.name}' has use_global_stats false; the stored statistics are used (inference)`, op: layer.name });

  let gamma: Float32Array = new Float32Array(c).fill(1);
  let beta: Float32Array = new Float32Array(c);
  let out: LayerParameter = layer;
  let consumed = 0;
  let scaleLayer: LayerParameter | undefined;
  const next = ctx.peekNext();
  if (next && fusableScale(ctx, layer, next)) {
    const sp = next.scaleParam ?? create(ScaleParameterSchema, {});
    const sb = ctx.requireBlobs(next, sp.biasTerm ? 2 : 1);
    gamma = ctx.blobData(next, sb, 0, [c]);
    if (sp.biasTerm) beta = ctx.blobData(next, sb, 1, [c]);
    out = next;
    consumed = 1;
    scaleLayer = next;
  }
  const inputs = [
    x.name,
    scaleLayer ? ctx.weight(scaleLayer, 0, [c], gamma) : ctx.constF32(`${layer.name}.gamma`, [c], gamma),
    scaleLayer && (scaleLayer.scaleParam?.biasTerm ?? false) ? ctx.weight(scaleLayer, 1, [c], beta) : ctx.constF32(`${layer.name}.beta`, [c], beta),
    ctx.weight(layer, 0, [c], m),
    ctx.weight(layer, 1, [c], v),
  ];
  ctx.node(layer, 'BatchNormalization', inputs, [ctx.top(out, 0, x.shape)], { epsilon: { float: p.eps } });
  return consumed;
}

/** A Scale right after the BatchNorm, per channel, reading only the BatchNorm's output. */
function fusableScale(ctx: ConvertContext, bn: LayerParameter, next: LayerParameter): boolean {
  if (next.type !== 'Scale' || next.bottom.length !== 1 || next.bottom[0] !== bn.top[0]) return false;
  const sp = next.scaleParam ?? create(ScaleParameterSchema, {});
  if (sp.axis !== 1 || sp.numAxes !== 1) return false;
  if (ctx.blobs(next).length === 0) return false; // let the Scale handler report the missing weights
  if (next.top[0] === bn.top[0]) return true;
  // Not in place: fusing is only safe when nothing but the Scale reads the BatchNorm's output
  // before the blob is written again.
  const blob = bn.top[0]!;
  const nextWrite = firstAfter(ctx.writers.get(blob), ctx.index + 1);
  const nextRead = firstAfter(ctx.readers.get(blob), ctx.index + 1);
  return nextRead === undefined || (nextWrite !== undefined && nextRead > nextWrite);
}

/** Shape that broadcasts a parameter of dims in[axis : axis+numAxes] against the input. */
function paramShape(ctx: ConvertContext, layer: LayerParameter, inShape: number[], axisIn: number, numAxesIn: number): { dims: number[]; bcast: number[] } {
  const axis = ctx.axis(layer, axisIn, Math.max(inShape.length, 1));
  const numAxes = numAxesIn === -1 ? inShape.length - axis : numAxesIn;
  if (numAxes < 0 || axis + numAxes > inShape.length) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `num_axes ${numAxesIn} out of range`);
  const dims = inShape.slice(axis, axis + numAxes);
  const bcast = [...dims, ...inShape.slice(axis + numAxes).map(() => 1)];
  return { dims, bcast };
}

/** A second bottom used as a parameter: reshape it so it broadcasts from `axis`. */
function bottomParam(ctx: ConvertContext, layer: LayerParameter, dims: number[], bcast: number[]): string {
  const p = ctx.bottom(layer, 1);
  if (p.shape.length !== dims.length || p.shape.some((d, i) => d !== dims[i])) {
    ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `second bottom has shape [${p.shape.join(', ')}], expected [${dims.join(', ')}]`);
  }
  if (bcast.length === dims.length) return p.name;
  const out = ctx.temp(`${layer.name}/param`, bcast);
  ctx.node(layer, 'Reshape', [p.name, ctx.constI64(`${layer.name}.param_shape`, bcast)], [out]);
  return out;
}

function scale(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.scaleParam ?? create(ScaleParameterSchema, {});
  const x = ctx.bottom(layer);
  const { dims, bcast } = paramShape(ctx, layer, x.shape, p.axis, p.numAxes);
  const two = layer.bottom.length > 1;
  let gamma: string;
  let biasIndex = 1;
  if (two) {
    gamma = bottomParam(ctx, layer, dims, bcast);
    biasIndex = 0;
  } else {
    const blobs = ctx.requireBlobs(layer, p.biasTerm ? 2 : 1);
    gamma = ctx.weight(layer, 0, bcast, ctx.blobData(layer, blobs, 0, dims));
  }
  if (!p.biasTerm) {
    ctx.node(layer, 'Mul', [x.name, gamma], [ctx.top(layer, 0, x.shape)]);
    return;
  }
  const blobs = ctx.requireBlobs(layer, biasIndex + 1);
  const beta = ctx.weight(layer, biasIndex, bcast, ctx.blobData(layer, blobs, biasIndex, dims), 'bias');
  const t = ctx.temp(`${layer.name}/scaled`, x.shape);
  ctx.node(layer, 'Mul', [x.name, gamma], [t]);
  ctx.node(layer, 'Add', [t, beta], [ctx.top(layer, 0, x.shape)]);
}

function bias(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.biasParam ?? create(BiasParameterSchema, {});
  const x = ctx.bottom(layer);
  const { dims, bcast } = paramShape(ctx, layer, x.shape, p.axis, p.numAxes);
  const b = layer.bottom.length > 1
    ? bottomParam(ctx, layer, dims, bcast)
    : ctx.weight(layer, 0, bcast, ctx.blobData(layer, ctx.requireBlobs(layer, 1), 0, dims));
  ctx.node(layer, 'Add', [x.name, b], [ctx.top(layer, 0, x.shape)]);
}

function lrn(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.lrnParam ?? create(LRNParameterSchema, {});
  const x = ctx.bottom(layer);
  if (p.localSize < 1 || p.localSize % 2 === 0) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `local_size ${p.localSize} must be odd`);
  // Caffe's LRN layer, like ONNX LRN, is defined on N·C·H·W only.
  if (x.shape.length !== 4) ctx.fail(ErrorCodes.UNSUPPORTED, layer, `LRN needs a 4-D input, got [${x.shape.join(', ')}]`);
  if (!Number.isFinite(p.alpha) || !Number.isFinite(p.beta) || !Number.isFinite(p.k) || p.alpha < 0 || p.beta < 0) {
    ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `alpha ${p.alpha}, beta ${p.beta}, k ${p.k}: alpha and beta must be finite and non-negative`);
  }
  if (p.alpha === 0 || p.beta === 0) {
    // Degenerate (runtimes refuse LRN with alpha or beta 0): the normaliser is the constant k^-β
    // across channels, 1^-β = 1 within a channel.
    const factor = p.normRegion === LRNParameter_NormRegion.ACROSS_CHANNELS ? p.k ** -p.beta : 1;
    ctx.node(layer, 'Mul', [x.name, ctx.constF32(`${layer.name}.factor`, [], [factor])], [ctx.top(layer, 0, x.shape)]);
    return;
  }
  if (p.normRegion === LRNParameter_NormRegion.ACROSS_CHANNELS) {
    ctx.node(layer, 'LRN', [x.name], [ctx.top(layer, 0, x.shape)], { size: p.localSize, alpha: { float: p.alpha }, beta: { float: p.beta }, bias: { float: p.k } });
    return;
  }
  // WITHIN_CHANNEL: x · (1 + α · avgpool_{n×n}(x²))^(−β); Caffe ignores k here.
  const n = p.localSize;
  const half = (n - 1) / 2;
  const sq = ctx.temp(`${layer.name}/sq`, x.shape);
  ctx.node(layer, 'Mul', [x.name, x.name], [sq]);
  const avg = ctx.temp(`${layer.name}/avg`, x.shape);
  ctx.node(layer, 'AveragePool', [sq], [avg], { kernel_shape: [n, n], strides: [1, 1], pads: [half, half, half, half], count_include_pad: 1 });
  const scaled = ctx.temp(`${layer.name}/alpha`, x.shape);
  ctx.node(layer, 'Mul', [avg, ctx.constF32(`${layer.name}.alpha`, [], [p.alpha])], [scaled]);
  const shifted = ctx.temp(`${layer.name}/one_plus`, x.shape);
  ctx.node(layer, 'Add', [scaled, ctx.constF32(`${layer.name}.one`, [], [1])], [shifted]);
  const powed = ctx.temp(`${layer.name}/pow`, x.shape);
  ctx.node(layer, 'Pow', [shifted, ctx.constF32(`${layer.name}.neg_beta`, [], [-p.beta])], [powed]);
  ctx.node(layer, 'Mul', [x.name, powed], [ctx.top(layer, 0, x.shape)]);
}

export const normalizationLayers: LayerTable = {
  BatchNorm: batchNorm,
  Scale: scale,
  Bias: bias,
  LRN: lrn,
};
