/** Convolution → Conv, Deconvolution → ConvTranspose. Weights are already in ONNX's layout. */
import { ErrorCodes } from '../../../core/errors.js';
import { ConvolutionParameterSchema, type LayerParameter } from '../../../formats/caffe/gen/caffe_pb.js';
import { create } from '@bufbuild/protobuf';
import type { ConvertContext } from '../context.js';
import { convSpatial, nchw } from './spatial.js';
import type { LayerTable } from './types.js';

function convolution(ctx: ConvertContext, layer: LayerParameter, transposed: boolean): void {
  const p = layer.convolutionParam ?? create(ConvolutionParameterSchema, {});
  if (p.axis !== 1) ctx.fail(ErrorCodes.UNSUPPORTED, layer, `axis ${p.axis} (only the channel axis 1 is supported)`);
  const x = ctx.bottom(layer);
  const [n, c, h, w] = nchw(ctx, layer, x.shape);
  const { kernel, stride, pad, dilation } = convSpatial(ctx, layer, p);
  const group = p.group;
  const cout = p.numOutput;
  if (cout < 1) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, 'num_output must be at least 1');
  if (group < 1 || c % group !== 0 || cout % group !== 0) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `group ${group} does not divide the ${c} input and ${cout} output channels`);
  const blobs = ctx.requireBlobs(layer, p.biasTerm ? 2 : 1);
  const wShape = transposed ? [c, cout / group, kernel[0], kernel[1]] : [cout, c / group, kernel[0], kernel[1]];
  const inputs = [x.name, ctx.weight(layer, 0, wShape, ctx.blobData(layer, blobs, 0, wShape))];
  if (p.biasTerm) inputs.push(ctx.weight(layer, 1, [cout], ctx.blobData(layer, blobs, 1, [cout])));
  const ek = [dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1];
  const out = transposed
    ? [0, 1].map((i) => ([h, w][i]! - 1) * stride[i]! - 2 * pad[i]! + ek[i]!)
    : [0, 1].map((i) => Math.floor(([h, w][i]! + 2 * pad[i]! - ek[i]!) / stride[i]!) + 1);
  if (out.some((d) => d < 1)) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `output spatial size [${out.join(', ')}] is empty for input [${x.shape.join(', ')}]`);
  const y = ctx.top(layer, 0, [n, cout, out[0]!, out[1]!]);
  ctx.node(layer, transposed ? 'ConvTranspose' : 'Conv', inputs, [y], {
    kernel_shape: kernel,
    strides: stride,
    pads: [pad[0], pad[1], pad[0], pad[1]],
    dilations: dilation,
    group,
  });
}

export const convLayers: LayerTable = {
  Convolution: (ctx, layer) => convolution(ctx, layer, false),
  Deconvolution: (ctx, layer) => convolution(ctx, layer, true),
};
