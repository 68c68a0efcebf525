/** Layout layers: Concat, Slice, Flatten, Reshape, Permute, Crop, plus Softmax and Eltwise. */
import { create, isFieldSet } from '@bufbuild/protobuf';
import { ErrorCodes } from '../../../core/errors.js';
import {
  ConcatParameterSchema,
  CropParameterSchema,
  EltwiseParameter_EltwiseOp,
  EltwiseParameterSchema,
  FlattenParameterSchema,
  SliceParameterSchema,
  type LayerParameter,
} from '../../../formats/caffe/gen/caffe_pb.js';
import type { ConvertContext } from '../context.js';
import type { LayerTable } from './types.js';

const prod = (a: readonly number[]): number => a.reduce((x, y) => x * y, 1);

function concat(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.concatParam ?? create(ConcatParameterSchema, {});
  const xs = ctx.bottoms(layer, 1);
  const rank = xs[0]!.shape.length;
  // `concat_dim` is the legacy spelling; `axis` wins when both are set.
  const raw = isFieldSet(p, ConcatParameterSchema.field.axis) || !isFieldSet(p, ConcatParameterSchema.field.concatDim) ? p.axis : p.concatDim;
  const axis = ctx.axis(layer, raw, rank);
  for (const x of xs) {
    if (x.shape.length !== rank || x.shape.some((d, i) => i !== axis && d !== xs[0]!.shape[i])) {
      ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `cannot concatenate [${x.shape.join(', ')}] with [${xs[0]!.shape.join(', ')}] on axis ${axis}`);
    }
  }
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis]!, 0);
  ctx.node(layer, 'Concat', xs.map((x) => x.name), [ctx.top(layer, 0, shape)], { axis });
}

function slice(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.sliceParam ?? create(SliceParameterSchema, {});
  const x = ctx.bottom(layer);
  const raw = isFieldSet(p, SliceParameterSchema.field.axis) || !isFieldSet(p, SliceParameterSchema.field.sliceDim) ? p.axis : p.sliceDim;
  const axis = ctx.axis(layer, raw, x.shape.length);
  const dim = x.shape[axis]!;
  const n = layer.top.length;
  if (n < 1) ctx.fail(ErrorCodes.MALFORMED, layer, 'has no tops');
  let sizes: number[];
  if (p.slicePoint.length > 0) {
    if (p.slicePoint.length !== n - 1) ctx.fail(ErrorCodes.MALFORMED, layer, `${p.slicePoint.length} slice points for ${n} tops`);
    const points = [0, ...p.slicePoint, dim];
    sizes = points.slice(1).map((pt, i) => pt - points[i]!);
  } else {
    if (dim % n !== 0) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `axis size ${dim} does not split evenly into ${n} tops`);
    sizes = new Array<number>(n).fill(dim / n);
  }
  if (sizes.some((s) => s < 1)) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `slice points [${p.slicePoint.join(', ')}] are not increasing inside 1..${dim - 1}`);
  const outs = sizes.map((s, i) => {
    const shape = [...x.shape];
    shape[axis] = s;
    return ctx.top(layer, i, shape);
  });
  ctx.node(layer, 'Split', [x.name, ctx.constI64(`${layer.name}.split`, sizes)], outs, { axis });
}

function flatten(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.flattenParam ?? create(FlattenParameterSchema, {});
  const x = ctx.bottom(layer);
  const axis = ctx.axis(layer, p.axis, x.shape.length);
  const end = ctx.axis(layer, p.endAxis, x.shape.length, 'end_axis');
  if (end < axis) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `end_axis ${p.endAxis} is before axis ${p.axis}`);
  const shape = [...x.shape.slice(0, axis), prod(x.shape.slice(axis, end + 1)), ...x.shape.slice(end + 1)];
  reshapeTo(ctx, layer, x.name, shape);
}

/** Caffe Reshape: 0 copies the input dim, −1 is inferred, axis/num_axes select the replaced span. */
function reshape(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.reshapeParam;
  const x = ctx.bottom(layer);
  const dims = (p?.shape?.dim ?? []).map((d) => (d < -1n || d > 2n ** 40n ? NaN : Number(d)));
  if (dims.some((d) => Number.isNaN(d))) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, 'reshape dimension out of range');
  const rank = x.shape.length;
  const axisRaw = p?.axis ?? 0;
  const start = axisRaw < 0 ? rank + 1 + axisRaw : axisRaw;
  if (start < 0 || start > rank) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `axis ${axisRaw} out of range`);
  const numAxes = p?.numAxes ?? -1;
  const end = numAxes === -1 ? rank : start + numAxes;
  if (numAxes < -1 || end > rank) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `num_axes ${numAxes} out of range`);
  const mid = dims.map((d, i) => {
    if (d !== 0) return d;
    if (start + i >= rank) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `dim ${i} copies input axis ${start + i}, which does not exist`);
    return x.shape[start + i]!;
  });
  const shape = [...x.shape.slice(0, start), ...mid, ...x.shape.slice(end)];
  const inferred = shape.filter((d) => d === -1).length;
  if (inferred > 1) ctx.fail(ErrorCodes.MALFORMED, layer, 'more than one -1 dimension');
  const total = prod(x.shape);
  if (inferred === 1) {
    const known = prod(shape.filter((d) => d !== -1));
    if (known === 0 || total % known !== 0) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `cannot infer -1: ${total} elements into [${shape.join(', ')}]`);
    shape[shape.indexOf(-1)] = total / known;
  }
  if (prod(shape) !== total) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `cannot reshape [${x.shape.join(', ')}] into [${shape.join(', ')}]`);
  reshapeTo(ctx, layer, x.name, shape);
}

function reshapeTo(ctx: ConvertContext, layer: LayerParameter, x: string, shape: number[]): void {
  ctx.node(layer, 'Reshape', [x, ctx.constI64(`${layer.name}.shape`, shape)], [ctx.top(layer, 0, shape)]);
}

/** SSD Permute: `order` may list only the leading axes; the rest keep their order. */
function permute(ctx: ConvertContext, layer: LayerParameter): void {
  const x = ctx.bottom(layer);
  const rank = x.shape.length;
  const order = [...(layer.permuteParam?.order ?? [])];
  if (order.some((a) => a >= rank) || new Set(order).size !== order.length) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `order [${order.join(', ')}] is not a permutation of ${rank} axes`);
  for (let a = 0; a < rank; a++) if (!order.includes(a)) order.push(a);
  ctx.node(layer, 'Transpose', [x.name], [ctx.top(layer, 0, order.map((a) => x.shape[a]!))], { perm: order });
}

/** Crop bottom 0 to bottom 1's size from `axis` on, starting at `offset`. */
function crop(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.cropParam ?? create(CropParameterSchema, {});
  const [a, b] = ctx.bottoms(layer, 2) as [{ name: string; shape: number[] }, { name: string; shape: number[] }];
  const rank = a.shape.length;
  const axis = ctx.axis(layer, p.axis, rank);
  if (b.shape.length !== rank) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, 'both bottoms must have the same rank');
  const n = rank - axis;
  if (p.offset.length > 1 && p.offset.length !== n) ctx.fail(ErrorCodes.MALFORMED, layer, `${p.offset.length} offsets for ${n} cropped axes`);
  const starts: number[] = [];
  const ends: number[] = [];
  const axes: number[] = [];
  const shape = [...a.shape];
  for (let i = 0; i < n; i++) {
    const off = p.offset.length === 0 ? 0 : p.offset.length === 1 ? p.offset[0]! : p.offset[i]!;
    const d = axis + i;
    if (off + b.shape[d]! > a.shape[d]!) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `crop of ${b.shape[d]} at offset ${off} exceeds axis ${d} of size ${a.shape[d]}`);
    starts.push(off);
    ends.push(off + b.shape[d]!);
    axes.push(d);
    shape[d] = b.shape[d]!;
  }
  ctx.node(layer, 'Slice', [a.name, ctx.constI64(`${layer.name}.starts`, starts), ctx.constI64(`${layer.name}.ends`, ends), ctx.constI64(`${layer.name}.axes`, axes)], [ctx.top(layer, 0, shape)]);
}

/** Softmax over one axis (opset ≥ 13 semantics: not the flattened-2-D of older opsets). */
function softmax(ctx: ConvertContext, layer: LayerParameter): void {
  const x = ctx.bottom(layer);
  const axis = ctx.axis(layer, layer.softmaxParam?.axis ?? 1, x.shape.length);
  ctx.node(layer, 'Softmax', [x.name], [ctx.top(layer, 0, x.shape)], { axis });
}

function eltwise(ctx: ConvertContext, layer: LayerParameter): void {
  const p = layer.eltwiseParam ?? create(EltwiseParameterSchema, {});
  const xs = ctx.bottoms(layer, 1);
  const shape = xs[0]!.shape;
  for (const x of xs) {
    if (x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) ctx.fail(ErrorCodes.OUT_OF_RANGE, layer, `bottom shapes differ: [${x.shape.join(', ')}] vs [${shape.join(', ')}]`);
  }
  const out = (): string => ctx.top(layer, 0, shape);
  if (xs.length === 1) {
    ctx.node(layer, 'Identity', [xs[0]!.name], [out()]);
    return;
  }
  switch (p.operation) {
    case EltwiseParameter_EltwiseOp.PROD:
      ctx.node(layer, 'Mul', chain(ctx, layer, 'Mul', xs.map((x) => x.name), shape), [out()]);
      return;
    case EltwiseParameter_EltwiseOp.MAX:
      ctx.node(layer, 'Max', xs.map((x) => x.name), [out()]);
      return;
    case EltwiseParameter_EltwiseOp.SUM: {
      if (p.coeff.length > 0 && p.coeff.length !== xs.length) ctx.fail(ErrorCodes.MALFORMED, layer, `${p.coeff.length} coefficients for ${xs.length} bottoms`);
      const terms = xs.map((x, i) => {
        const c = p.coeff[i] ?? 1;
        if (c === 1) return x.name;
        const t = ctx.temp(`${layer.name}/coeff${i}`, shape);
        ctx.node(layer, 'Mul', [x.name, ctx.constF32(`${layer.name}.coeff${i}`, [], [c])], [t]);
        return t;
      });
      ctx.node(layer, 'Sum', terms, [out()]);
      return;
    }
    default:
      ctx.fail(ErrorCodes.UNSUPPORTED, layer, `eltwise operation ${p.operation}`);
  }
}

/** Reduce n inputs of a binary op to the last two (earlier pairs become temporaries). */
function chain(ctx: ConvertContext, layer: LayerParameter, op: string, names: string[], shape: number[]): string[] {
  let acc = names[0]!;
  for (let i = 1; i < names.length - 1; i++) {
    const t = ctx.temp(`${layer.name}/${op}${i}`, shape);
    ctx.node(layer, op, [acc, names[i]!], [t]);
    acc = t;
  }
  return [acc, names[names.length - 1]!];
}

export const tensorOpLayers: LayerTable = {
  Concat: concat,
  Slice: slice,
  Flatten: flatten,
  Reshape: reshape,
  Permute: permute,
  Crop: crop,
  Softmax: softmax,
  Eltwise: eltwise,
};
