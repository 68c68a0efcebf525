/**
 * Element-wise layers: ReLU / PReLU / Sigmoid / TanH / ELU / AbsVal / BNLL / Power / Exp / Log /
 * Threshold, and the layers that are the identity at inference (Dropout, Split, Silence).
 */
import { create } from '@bufbuild/protobuf';
import { ErrorCodes } from '../../../core/errors.js';
import { ExpParameterSchema, LogParameterSchema, PowerParameterSchema, type LayerParameter } from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';
import type { LayerTable } from './types.js';

function unary(op: string, attrs: (layer: LayerParameter) => Record<string, { float: number }> = () => ({})) {
  return (ctx: ConvertContext, layer: LayerParameter): void => {
    const x = ctx.bottom(layer);
    ctx.node(layer, op, [x.name], [ctx.top(layer, 0, x.shape)], attrs(layer));
  };
}

function relu(ctx: ConvertContext, layer: LayerParameter): void {
  const slope = layer.reluParam?.negativeSlope ?? 0;
  const x = ctx.bottom(layer);
  const y = ctx.top(layer, 0, x.shape);
  if (slope === 0) ctx.node(layer, 'Relu', [x.name], [y]);
  else ctx.node(layer, 'LeakyRelu', [x.name], [y], { alpha: { float: slope } });
}

/** ONNX PRelu broadcasts the slope from the right, so a per-channel slope becomes [C, 1, 1]. */
function prelu(ctx: ConvertContext, layer: LayerParameter): void {
  const x = ctx.bottom(layer);
  if (x.shape.length < 2) ctx.fail(ErrorCodes.UNSUPPORTED, layer, `input rank ${x.shape.length} (needs a channel axis)`);
  const shared = layer.preluParam?.channelShared ?? false;
  const c = shared ? 1 : x.shape[1]!;
  const blobs = ctx.requireBlobs(layer, 1);
  const dims = shared ? [1] : [c, ...x.shape.slice(2).map(() => 1)];
  const slope = ctx.weight(layer, 0, dims, ctx.blobData(layer, blobs, 0, [c]));
  ctx.node(layer, 'PRelu', [x.name, slope], [ctx.top(layer, 0, x.shape)]);
}

/** y = (shift + scale·x)^power, skipping the identity parts. */
function power(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.powerParam ?? create(PowerParameterSchema, {});
  const x = ctx.bottom(layer);
  let v = x.name;
  const step = (op: string, value: number, last: boolean): void => {
    const c = ctx.constF32(`${layer.name}.${op.toLowerCase()}`, [], [value]);
    const out = last ? ctx.top(layer, 0, x.shape) : ctx.temp(`${layer.name}/${op}`, x.shape);
    ctx.node(layer, op, [v, c], [out]);
    v = out;
  };
  const ops: [string, number][] = [];
  if (p.scale !== 1) ops.push(['Mul', p.scale]);
  if (p.shift !== 0) ops.push(['Add', p.shift]);
  if (p.power !== 1) ops.push(['Pow', p.power]);
  if (ops.length === 0) {
    ctx.node(layer, 'Identity', [x.name], [ctx.top(layer, 0, x.shape)]);
    return;
  }
  ops.forEach(([op, value], i) => step(op, value, i === ops.length - 1));
}

/** Exp: y = base^(shift + scale·x); Log: y = log_base(shift + scale·x). base −1 means e. */
function expLog(isExp: boolean) {
  return (ctx: ConvertContext, layer: LayerParameter): void => {
    const p = isExp ? (layer.expParam ?? create(ExpParameterSchema, {})) : (layer.logParam ?? create(LogParameterSchema, {}));
    if (p.base !== -1 && !(p.base > 0)) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `base ${p.base} must be positive (or -1 for e)`);
    const lnBase = p.base === -1 ? 1 : Math.log(p.base);
    const x = ctx.bottom(layer);
    let v = x.name;
    const mulAdd = (op: string, value: number): void => {
      const out = ctx.temp(`${layer.name}/${op}`, x.shape);
      ctx.node(layer, op, [v, ctx.constF32(`${layer.name}.${op.toLowerCase()}`, [], [value])], [out]);
      v = out;
    };
    if (isExp) {
      if (p.scale * lnBase !== 1) mulAdd('Mul', p.scale * lnBase);
      if (p.shift * lnBase !== 0) mulAdd('Add', p.shift * lnBase);
      ctx.node(layer, 'Exp', [v], [ctx.top(layer, 0, x.shape)]);
      return;
    }
    if (p.scale !== 1) mulAdd('Mul', p.scale);
    if (p.shift !== 0) mulAdd('Add', p.shift);
    if (lnBase === 1) {
      ctx.node(layer, 'Log', [v], [ctx.top(layer, 0, x.shape)]);
      return;
    }
    const ln = ctx.temp(`${layer.name}/Log`, x.shape);
    ctx.node(layer, 'Log', [v], [ln]);
    ctx.node(layer, 'Mul', [ln, ctx.constF32(`${layer.name}.inv_ln_base`, [], [1 / lnBase])], [ctx.top(layer, 0, x.shape)]);
  };
}

/** y = x > threshold ? 1 : 0 */
function threshold(ctx: ConvertContext, layer: LayerParameter): void {
  const x = ctx.bottom(layer);
  const t = ctx.constF32(`${layer.name}.threshold`, [], [layer.thresholdParam?.threshold ?? 0]);
  const b = ctx.temp(`${layer.name}/greater`, x.shape);
  ctx.node(layer, 'Greater', [x.name, t], [b]);
  ctx.node(layer, 'Cast', [b], [ctx.top(layer, 0, x.shape)], { to: 1 });
}

/** Identity at inference: every top is the bottom's value, no node. */
function passThrough(ctx: ConvertContext, layer: LayerParameter): void {
  const x = ctx.bottom(layer, 0, false);
  for (let i = 0; i < layer.top.length; i++) ctx.alias(layer, i, x.name);
}

function silence(ctx: ConvertContext, layer: LayerParameter): void {
  for (let i = 0; i < layer.bottom.length; i++) ctx.bottom(layer, i);
}

export const activationLayers: LayerTable = {
  ReLU: relu,
  PReLU: prelu,
  Sigmoid: unary('Sigmoid'),
  TanH: unary('Tanh'),
  AbsVal: unary('Abs'),
  BNLL: unary('Softplus'),
  ELU: unary('Elu', (l) => ({ alpha: { float: l.eluParam?.alpha ?? 1 } })),
  Power: power,
  Exp: expLog(true),
  Log: expLog(false),
  Threshold: threshold,
  Dropout: passThrough,
  Split: passThrough,
  Silence: silence,
};
