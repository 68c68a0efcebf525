/**
 * Pooling → MaxPool / AveragePool / Global*Pool with Caffe's output size and AVE divisor.
 *
 * Caffe rounds the output size up (CEIL, unless round_mode FLOOR), then drops a last window that
 * would start inside the right padding. Instead of relying on each runtime's ceil_mode (they differ
 * on that correction), the exact Caffe size is computed here and reached with floor semantics plus
 * `extra` end padding. That extra padding must not count in an average: Caffe's divisor covers the
 * input plus the declared pad, never the overflow. So:
 *  - no overflow: symmetric pads, count_include_pad = 1 (divisor k·k, as Caffe);
 *  - overflow, no pad: count_include_pad = 0 (divisor = valid elements, as Caffe);
 *  - overflow with pad: explicit zero Pad of `pad`, then count_include_pad = 0 over the padded
 *    input, so the declared pad counts and the overflow does not.
 */
import { create } from '@bufbuild/protobuf';
import { ErrorCodes } from '../../../core/errors.js';
import { PoolingParameter_PoolMethod, PoolingParameter_RoundMode, PoolingParameterSchema, type LayerParameter } from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';
import { nchw, poolSpatial } from './spatial.js';
import type { LayerTable } from './types.js';

/** Caffe's pooled size for one spatial dim. */
export function caffePooledSize(input: number, kernel: number, stride: number, pad: number, ceil: boolean): number {
  const span = input + 2 * pad - kernel;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (pad > 0 && (out - 1) * stride >= input + pad) out--;
  return out;
}

function pooling(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.poolingParam ?? create(PoolingParameterSchema, {});
  const x = ctx.bottom(layer);
  const [n, c, h, w] = nchw(ctx, layer, x.shape);
  if (p.pool === PoolingParameter_PoolMethod.STOCHASTIC) ctx.fail(ErrorCodes.UNSUPPORTED, layer, 'STOCHASTIC pooling has no ONNX equivalent');
  const isMax = p.pool === PoolingParameter_PoolMethod.MAX;
  if (p.pool !== PoolingParameter_PoolMethod.MAX && p.pool !== PoolingParameter_PoolMethod.AVE) ctx.fail(ErrorCodes.UNSUPPORTED, layer, `pool method ${p.pool}`);
  if (p.globalPooling) {
    ctx.node(layer, isMax ? 'GlobalMaxPool' : 'GlobalAveragePool', [x.name], [ctx.top(layer, 0, [n, c, 1, 1])]);
    return;
  }
  const { kernel, stride, pad } = poolSpatial(ctx, layer, p);
  for (const i of [0, 1]) {
    if (pad[i]! >= kernel[i]!) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `pad ${pad[i]} must be smaller than the kernel ${kernel[i]}`);
  }
  const ceil = p.roundMode !== PoolingParameter_RoundMode.FLOOR;
  const inHW = [h, w];
  const out = [0, 1].map((i) => caffePooledSize(inHW[i]!, kernel[i]!, stride[i]!, pad[i]!, ceil));
  if (out.some((d) => d < 1)) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `output size [${out.join(', ')}] is empty for input [${x.shape.join(', ')}]`);
  const extra = [0, 1].map((i) => Math.max(0, (out[i]! - 1) * stride[i]! + kernel[i]! - (inHW[i]! + 2 * pad[i]!)));
  const y = ctx.top(layer, 0, [n, c, out[0]!, out[1]!]);
  const base = { kernel_shape: kernel, strides: stride };
  const overflow = extra[0]! > 0 || extra[1]! > 0;
  const endPadFits = [0, 1].every((i) => pad[i]! + extra[i]! < kernel[i]!);
  if (isMax) {
    if (endPadFits) {
      ctx.node(layer, 'MaxPool', [x.name], [y], { ...base, pads: [pad[0]!, pad[1]!, pad[0]! + extra[0]!, pad[1]! + extra[1]!] });
      return;
    }
    // Runtimes require pads < kernel: pad with -inf explicitly instead.
    const padded = explicitPad(ctx, layer, x.name, [n, c, h, w], pad, extra, -Infinity);
    ctx.node(layer, 'MaxPool', [padded], [y], base);
    return;
  }
  if (!overflow) {
    ctx.node(layer, 'AveragePool', [x.name], [y], { ...base, pads: [pad[0]!, pad[1]!, pad[0]!, pad[1]!], count_include_pad: 1 });
    return;
  }
  if (!extra.every((e, i) => e < kernel[i]!)) ctx.fail(ErrorCodes.UNSUPPORTED, layer, 'average pooling whose ceil overflow is not smaller than the kernel');
  let src = x.name;
  if (pad[0]! > 0 || pad[1]! > 0) src = explicitPad(ctx, layer, x.name, [n, c, h, w], pad, [0, 0], 0);
  ctx.node(layer, 'AveragePool', [src], [y], { ...base, pads: [0, 0, extra[0]!, extra[1]!], count_include_pad: 0 });
}

function explicitPad(ctx: ConvertContext, layer: LayerParameter, x: string, shape: number[], pad: number[], extra: number[], value: number): string {
  const pads = ctx.constI64(`${layer.name}.pads`, [0, 0, pad[0]!, pad[1]!, 0, 0, pad[0]! + extra[0]!, pad[1]! + extra[1]!]);
  const v = ctx.constF32(`${layer.name}.pad_value`, [], [value === -Infinity ? -3.4028234663852886e38 : value]);
  const out = ctx.temp(`${layer.name}/padded`, [shape[0]!, shape[1]!, shape[2]! + 2 * pad[0]! + extra[0]!, shape[3]! + 2 * pad[1]! + extra[1]!]);
  ctx.node(layer, 'Pad', [x, pads, v], [out], { mode: 'constant' });
  return out;
}

export const poolingLayers: LayerTable = { Pooling: pooling };
