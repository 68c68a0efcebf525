/**
 * InnerProduct → Gemm. Caffe flattens everything from `axis` into K; ONNX Gemm wants 2-D, so a
 * Flatten goes before it when needed and a Reshape after it restores the leading dims for axis > 1.
 */
import { create } from '@bufbuild/protobuf';
import { ErrorCodes } from '../../../core/errors.js';
import { InnerProductParameterSchema, type LayerParameter } from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';
import type { LayerTable } from './types.js';

function innerProduct(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.innerProductParam ?? create(InnerProductParameterSchema, {});
  const x = ctx.bottom(layer);
  const axis = ctx.axis(layer, p.axis, x.shape.length);
  const lead = x.shape.slice(0, axis);
  const m = lead.reduce((a, b) => a * b, 1);
  const k = x.shape.slice(axis).reduce((a, b) => a * b, 1);
  const n = p.numOutput;
  if (n < 1) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, 'num_output must be at least 1');
  const blobs = ctx.requireBlobs(layer, p.biasTerm ? 2 : 1);
  const wShape = p.transpose ? [k, n] : [n, k];
  const inputs = ['', ctx.weight(layer, 0, wShape, ctx.blobData(layer, blobs, 0, wShape))];
  if (p.biasTerm) inputs.push(ctx.weight(layer, 1, [n], ctx.blobData(layer, blobs, 1, [n])));
  let a = x.name;
  if (x.shape.length !== 2 || axis !== 1) {
    a = ctx.temp(`${layer.name}/flat`, [m, k]);
    ctx.node(layer, 'Flatten', [x.name], [a], { axis });
  }
  inputs[0] = a;
  const outShape = [...lead, n];
  if (axis === 1) {
    ctx.node(layer, 'Gemm', inputs, [ctx.top(layer, 0, outShape)], { transB: p.transpose ? 0 : 1 });
    return;
  }
  const g = ctx.temp(`${layer.name}/gemm`, [m, n]);
  ctx.node(layer, 'Gemm', inputs, [g], { transB: p.transpose ? 0 : 1 });
  const shape = ctx.constI64(`${layer.name}.shape`, outShape);
  ctx.node(layer, 'Reshape', [g, shape], [ctx.top(layer, 0, outShape)]);
}

export const innerProductLayers: LayerTable = { InnerProduct: innerProduct };
