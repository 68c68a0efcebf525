/** Kernel / stride / pad / dilation of Convolution and Pooling, with Caffe's _h/_w overrides. */
import { isFieldSet } from '@bufbuild/protobuf';
import { ErrorCodes } from '../../../core/errors.js';
import {
  ConvolutionParameterSchema,
  PoolingParameterSchema,
  type ConvolutionParameter,
  type LayerParameter,
  type PoolingParameter,
} from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';

export interface Spatial2D {
  kernel: [number, number];
  stride: [number, number];
  pad: [number, number];
  dilation: [number, number];
}

/** One value means "all spatial dims"; two are (h, w). */
function pair(ctx: ConvertContext, layer: LayerParameter, what: string, list: readonly number[], dflt: number): [number, number] {
  if (list.length === 0) return [dflt, dflt];
  if (list.length === 1) return [list[0]!, list[0]!];
  if (list.length === 2) return [list[0]!, list[1]!];
  return ctx.fail(ErrorCodes.UNSUPPORTED, layer, `${what} has ${list.length} values: only 2-D spatial layers are supported`);
}

export function convSpatial(ctx: ConvertContext, layer: LayerParameter, p: ConvolutionParameter): Spatial2D {
  const S = ConvolutionParameterSchema.field;
  const kernel = isFieldSet(p, S.kernelH) || isFieldSet(p, S.kernelW)
    ? ([p.kernelH, p.kernelW] as [number, number])
    : pair(ctx, layer, 'kernel_size', p.kernelSize, 0);
  const stride = isFieldSet(p, S.strideH) || isFieldSet(p, S.strideW) ? ([p.strideH, p.strideW] as [number, number]) : pair(ctx, layer, 'stride', p.stride, 1);
  const pad = isFieldSet(p, S.padH) || isFieldSet(p, S.padW) ? ([p.padH, p.padW] as [number, number]) : pair(ctx, layer, 'pad', p.pad, 0);
  const dilation = pair(ctx, layer, 'dilation', p.dilation, 1);
  return validate(ctx, layer, { kernel, stride, pad, dilation });
}

export function poolSpatial(ctx: ConvertContext, layer: LayerParameter, p: PoolingParameter): Spatial2D {
  const S = PoolingParameterSchema.field;
  const kernel: [number, number] = isFieldSet(p, S.kernelH) || isFieldSet(p, S.kernelW) ? [p.kernelH, p.kernelW] : [p.kernelSize, p.kernelSize];
  const stride: [number, number] = isFieldSet(p, S.strideH) || isFieldSet(p, S.strideW) ? [p.strideH, p.strideW] : [p.stride, p.stride];
  const pad: [number, number] = isFieldSet(p, S.padH) || isFieldSet(p, S.padW) ? [p.padH, p.padW] : [p.pad, p.pad];
  return validate(ctx, layer, { kernel, stride, pad, dilation: [1, 1] });
}

function validate(ctx: ConvertContext, layer: LayerParameter, s: Spatial2D): Spatial2D {
  const cap = 1 << 20;
  for (const [what, v, min] of [['kernel', s.kernel, 1], ['stride', s.stride, 1], ['pad', s.pad, 0], ['dilation', s.dilation, 1]] as const) {
    for (const x of v) if (!Number.isInteger(x) || x < min || x > cap) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `${what} ${x} is out of range`);
  }
  return s;
}

/** Spatial dims of a rank-4 NCHW shape, or an error naming the layer. */
export function nchw(ctx: ConvertContext, layer: LayerParameter, shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4) ctx.fail(ErrorCodes.UNSUPPORTED, layer, `expects a 4-D (N, C, H, W) input, got [${shape.join(', ')}]`);
  return [shape[0]!, shape[1]!, shape[2]!, shape[3]!];
}
