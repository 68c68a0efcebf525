/** Layers that declare graph inputs: Input (and upgraded net-level inputs), MemoryData, DummyData. */
import { ErrorCodes } from '../../../core/errors.js';
import type { BlobShape, LayerParameter } from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';
import type { LayerTable } from './types.js';

function dims(ctx: ConvertContext, layer: LayerParameter, s: BlobShape): number[] {
  return s.dim.map((d) => {
    if (d < 1n || d > 2n ** 31n) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `input dimension ${d} out of range`);
    return Number(d);
  });
}

function input(ctx: ConvertContext, layer: LayerParameter): void {
  const shapes = layer.inputParam?.shape ?? [];
  if (layer.top.length === 0) ctx.fail(ErrorCodes.MALFORMED, layer, 'has no tops');
  for (let i = 0; i < layer.top.length; i++) {
    // One shape for several tops applies to all of them (InputLayer does the same).
    const s = shapes.length === 1 ? shapes[0] : shapes[i];
    if (!s) ctx.fail(ErrorCodes.MALFORMED, layer, `input '${layer.top[i]}' has no shape (input_param.shape / input_dim)`);
    ctx.defineInput(layer, i, dims(ctx, layer, s));
  }
}

function memoryData(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.memoryDataParam;
  if (!p) ctx.fail(ErrorCodes.MALFORMED, layer, 'has no memory_data_param');
  const shape = [p.batchSize, p.channels, p.height, p.width];
  if (shape.some((d) => d < 1)) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `input shape [${shape.join(', ')}]`);
  ctx.defineInput(layer, 0, shape);
  // The second top (labels) is a training artefact.
}

function dummyData(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.dummyDataParam;
  for (let i = 0; i < layer.top.length; i++) {
    const s = p?.shape.length === 1 ? p.shape[0] : p?.shape[i];
    if (s) {
      ctx.defineInput(layer, i, dims(ctx, layer, s));
      continue;
    }
    const legacy = p ? [p.num, p.channels, p.height, p.width].map((l) => (l.length === 1 ? l[0] : l[i])) : [];
    if (legacy.length !== 4 || legacy.some((d) => d === undefined || d < 1)) ctx.fail(ErrorCodes.MALFORMED, layer, `top '${layer.top[i]}' has no shape`);
    ctx.defineInput(layer, i, legacy as number[]);
  }
}

export const inputLayers: LayerTable = {
  Input: input,
  MemoryData: memoryData,
  DummyData: dummyData,
};
