/**
 * Shape and data-movement ops. Exporters compute shapes in the graph (Shape → Gather → Unsqueeze →
 * Concat → Reshape); with static input shapes those chains are folded here, so the TF graph gets
 * plain int32 Consts and ONNX's `0`-means-copy Reshape is resolved before TF sees it.
 */
import { dtypeInfo } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Tensor } from '../../../core/tensor.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { carrierOf } from '../carriers.js';
import { a } from '../tf-attr.js';
import { broadcastShapes, MAX_FOLD_ELEMENTS, normAxis, numbersTensor, tensorNumbers, transposeTensor } from '../values.js';

const I32_MAX = 2 ** 31 - 1;
/** TF refuses ranks above 254. */
const MAX_RANK = 254;
const I32_MIN = -(2 ** 31);

const prod = (s: readonly number[]): number => s.reduce((p, q) => p * q, 1);
const staticShape = (s: number[] | null): s is number[] => !!s && s.every((d) => d >= 0);

/** The value of `v` if it is small enough to compute with at conversion time. */
function foldable(v: Val): Tensor | undefined {
  const t = v.value;
  // A carried value's tensor holds its carrier: folding would forget the dtype it stands for.
  if (!t || carrierOf(v.dtype) || t.dtype === 'string' || t.dtype === 'float16' || t.dtype === 'bfloat16' || dtypeInfo(t.dtype).bits < 8) return undefined;
  return prod(t.shape) <= MAX_FOLD_ELEMENTS ? t : undefined;
}

function constOut(cx: Cx, i: number, t: Tensor): void {
  cx.out(i, { dtype: t.dtype, shape: t.shape, value: t });
}

/** Same bytes, new shape (Reshape/Squeeze/Unsqueeze/Flatten of a folded value). */
function reshaped(t: Tensor, shape: number[]): Tensor {
  return { ...t, name: '', shape };
}

function reshapeTo(cx: Cx, x: Val, shape: number[]): void {
  const f = foldable(x);
  if (f && staticShape(shape)) return constOut(cx, 0, reshaped(f, shape));
  cx.outRef(0, cx.add('Reshape', [cx.ref(x), cx.i32(shape)], { T: a.dt(x.dtype), Tshape: a.dt('int32') }), x.dtype, shape);
}

/** Resolve ONNX's 0 (copy the input dim) and -1 against the input's static shape. */
function resolveShape(cx: Cx, x: Val, target: number[], allowZero: boolean): number[] {
  const out = target.map((d, i) => {
    if (d === 0 && !allowZero) {
      const src = x.shape?.[i];
      if (src === undefined) return cx.fail(ErrorCodes.MALFORMED, `shape entry ${i} copies an input dim that does not exist`);
      return src;
    }
    return d;
  });
  if (out.filter((d) => d < 0).length > 1) return cx.unsupported(`Reshape target [${out.join(',')}] has more than one unknown dim`);
  const neg = out.indexOf(-1);
  if (neg >= 0 && staticShape(x.shape)) {
    const rest = prod(out.filter((_, i) => i !== neg));
    out[neg] = rest === 0 ? 0 : prod(x.shape) / rest;
  }
  return out;
}

/** Reshape to a shape computed at run time; ONNX's 0 (copy the input dim) is resolved in the graph. */
function dynamicReshape(cx: Cx, x: Val, shape: Val): void {
  const len = shape.shape?.length === 1 ? shape.shape[0]! : -1;
  if (len > MAX_RANK) return cx.fail(ErrorCodes.LIMIT, `Reshape to rank ${len}`);
  const S = { T: a.dt(shape.dtype) };
  let target = cx.ref(shape);
  if (len < 0 && cx.int('allowzero', 0) !== 1) {
    // Length known only at run time: the dims a 0 copies are Shape(x) padded with zeros to the
    // target's length (a 0 past the input's rank copies nothing, as in ONNX it is invalid there).
    const dims = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt(shape.dtype) });
    const padded = cx.add('ConcatV2', [dims, cx.add('ZerosLike', [target], S), cx.i32([0], [])], { ...S, N: a.i(2), Tidx: a.dt('int32') });
    const n = cx.add('Shape', [target], { ...S, out_type: a.dt('int32') });
    const head = cx.add('Slice', [padded, cx.i32([0]), n], { ...S, Index: a.dt('int32') });
    const isZero = cx.add('Equal', [target, cx.scalar(shape.dtype, 0)], { ...S, incompatible_shape_error: a.b(true) });
    target = cx.add('SelectV2', [isZero, head, target], S);
  }
  if (len < 0) return cx.outRef(0, cx.add('Reshape', [cx.ref(x), target], { T: a.dt(x.dtype), Tshape: a.dt(shape.dtype) }), x.dtype, null);
  if (cx.int('allowzero', 0) !== 1) {
    const r = cx.rank(x);
    if (len > r) return cx.unsupported('run-time Reshape shape longer than the input rank');
    let dims = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt(shape.dtype) });
    if (len < r) {
      dims = cx.add('StridedSlice', [dims, cx.i32([0]), cx.i32([len]), cx.i32([1])], {
        ...S, Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
      });
    }
    const isZero = cx.add('Equal', [target, cx.scalar(shape.dtype, 0)], { ...S, incompatible_shape_error: a.b(true) });
    target = cx.add('SelectV2', [isZero, dims, target], S);
  }
  cx.outRef(0, cx.add('Reshape', [cx.ref(x), target], { T: a.dt(x.dtype), Tshape: a.dt(shape.dtype) }), x.dtype, new Array<number>(len).fill(-1));
}

register('Reshape', (cx) => {
  const x = cx.in(0);
  let target: number[];
  if (cx.opset < 5) target = cx.ints('shape') ?? [];
  else if (!cx.in(1).value) return dynamicReshape(cx, x, cx.in(1));
  else target = cx.constNums(cx.in(1), 'Reshape shape');
  reshapeTo(cx, x, resolveShape(cx, x, target, cx.int('allowzero', 0) === 1));
});

register('Flatten', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axis = normAxis(cx.int('axis', 1), r);
  const s = x.shape!;
  const outer = s.slice(0, axis).some((d) => d < 0) ? -1 : prod(s.slice(0, axis));
  const inner = s.slice(axis).some((d) => d < 0) ? -1 : prod(s.slice(axis));
  if (outer < 0 && inner < 0) return cx.unsupported('Flatten with unknown dims on both sides of the axis');
  reshapeTo(cx, x, [outer, inner]);
});

register('Transpose', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const perm = cx.ints('perm') ?? [...Array(r).keys()].reverse();
  if (perm.length !== r || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) return cx.fail(ErrorCodes.MALFORMED, `perm [${perm.join(',')}] is not a permutation of ${r} axes`);
  const shape = perm.map((p) => x.shape![p]!);
  const f = foldable(x);
  if (f) return constOut(cx, 0, { ...transposeTensor(f, perm), name: '' });
  const y = cx.add('Transpose', [cx.ref(x), cx.i32(perm)], { T: a.dt(x.dtype), Tperm: a.dt('int32') });
  // The layout pass may cancel it against an inserted one (an exporter's NCHW→NHWC permute after a conv).
  cx.layoutPerms.set(y, perm);
  cx.outRef(0, y, x.dtype, shape);
});

register('Concat', (cx) => {
  const ins = cx.node.input.map((_, i) => cx.in(i));
  const first = ins[0]!;
  const r = cx.rank(first);
  const axis = normAxis(cx.int('axis', 0), r);
  const shape = [...first.shape!];
  shape[axis] = ins.some((v) => !v.shape || v.shape[axis]! < 0) ? -1 : ins.reduce((s, v) => s + v.shape![axis]!, 0);
  const folded = ins.map(foldable);
  if (folded.every((t) => t) && r === 1) {
    const nums = folded.flatMap((t) => tensorNumbers(t!));
    return constOut(cx, 0, numbersTensor('', first.dtype, [nums.length], nums));
  }
  const live = ins.filter((v) => !v.shape || v.shape[axis] !== 0);
  const refs = (live.length ? live : ins).map((v) => cx.ref(v));
  const T = { T: a.dt(first.dtype) };
  const y = refs.length === 1 ? cx.add('Identity', refs, T) : cx.add('ConcatV2', [...refs, cx.i32([axis], [])], { ...T, N: a.i(refs.length), Tidx: a.dt('int32') });
  cx.outRef(0, y, first.dtype, shape);
});

register('Split', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axis = normAxis(cx.int('axis', 0), r);
  const n = cx.node.output.length;
  let sizes: number[] | undefined = cx.opset < 13 ? cx.ints('split') : cx.opt(1) ? cx.constNums(cx.opt(1), 'Split sizes') : undefined;
  const dim = x.shape![axis]!;
  if (!sizes || sizes.length === 0) {
    if (dim < 0) return cx.unsupported('Split without sizes needs a static dim');
    const parts = cx.opset >= 18 ? cx.int('num_outputs', n) : n;
    if (parts !== n) return cx.fail(ErrorCodes.MALFORMED, `num_outputs ${parts} but ${n} outputs`);
    const chunk = Math.ceil(dim / parts);
    sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
  }
  const y = cx.add('SplitV', [cx.ref(x), cx.i32(sizes), cx.i32([axis], [])], { T: a.dt(x.dtype), Tlen: a.dt('int32'), num_split: a.i(sizes.length) });
  sizes.forEach((s, i) => {
    const shape = [...x.shape!];
    shape[axis] = s;
    cx.outRef(i, `${y}:${i}`, x.dtype, shape);
  });
});

function sliceLen(dim: number, b: number, e: number, st: number): number {
  if (dim < 0) return -1;
  const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));
  let s = b < 0 ? b + dim : b;
  let t = e < 0 ? e + dim : e;
  if (st > 0) {
    s = clamp(s, 0, dim);
    t = clamp(t, 0, dim);
    return Math.max(0, Math.ceil((t - s) / st));
  }
  s = clamp(s, -1, dim - 1);
  t = clamp(t, -1, dim - 1);
  return Math.max(0, Math.ceil((s - t) / -st));
}

const SS_MASKS = { ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0) };

/** Element `i` of a 1-D int tensor as a scalar. */
function elementAt(cx: Cx, v: string, dtype: Val['dtype'], i: number): string {
  return cx.add('StridedSlice', [v, cx.i32([i]), cx.i32([i + 1]), cx.i32([1])], {
    T: a.dt(dtype), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
  });
}

/** An int value as a TF tensor of `dtype` (casting run-time values of another int type). */
function intRef(cx: Cx, v: Val, dtype: Val['dtype']): string {
  if (v.value && foldable(v)) return cx.constNode(numbersTensor('', dtype, v.value.shape, tensorNumbers(v.value)));
  return v.dtype === dtype ? cx.ref(v) : cx.add('Cast', [cx.ref(v)], { SrcT: a.dt(v.dtype), DstT: a.dt(dtype), Truncate: a.b(false) });
}

/**
 * Begin/end clamped as ONNX (and TF) define them, with end never past begin. TF gives an empty
 * result when a positive-stride slice starts after its end, but TF.js's kernel rejects such a
 * slice (negative size), so the bounds are made canonical first. Under a negative stride the
 * position before element 0 (−1 after clamping) is written −dim−1: a plain −1 would mean the last.
 */
function canonicalBounds(cx: Cx, D: Val['dtype'], dims: string, begin: string, end: string, strides: string): [string, string] {
  const T = { T: a.dt(D) };
  const zero = cx.scalar(D, 0);
  const one = cx.scalar(D, 1);
  const wrap = (v: string): string => cx.add('AddV2', [v, cx.add('Mul', [dims, cx.add('Cast', [cx.add('Less', [v, zero], T)], { SrcT: a.dt('bool'), DstT: a.dt(D), Truncate: a.b(false) })], T)], T);
  const clamp = (v: string, lo: string, hi: string): string => cx.add('Minimum', [cx.add('Maximum', [v, lo], T), hi], T);
  const bw = wrap(begin);
  const ew = wrap(end);
  const bPos = clamp(bw, zero, dims);
  const ePos = cx.add('Maximum', [clamp(ew, zero, dims), bPos], T);
  const minusOne = cx.scalar(D, -1);
  const last = cx.add('Sub', [dims, one], T);
  const bNeg0 = clamp(bw, minusOne, last);
  const eNeg0 = cx.add('Minimum', [clamp(ew, minusOne, last), bNeg0], T);
  const before = cx.add('Sub', [cx.add('Neg', [dims], T), one], T);
  const fix = (v: string): string => cx.add('SelectV2', [cx.add('Equal', [v, minusOne], { ...T, incompatible_shape_error: a.b(true) }), before, v], T);
  const pos = cx.add('Greater', [strides, zero], T);
  return [cx.add('SelectV2', [pos, bPos, fix(bNeg0)], T), cx.add('SelectV2', [pos, ePos, fix(eNeg0)], T)];
}

/**
 * Slice whose starts/ends/axes/steps are computed at run time: TF's StridedSlice takes begin, end
 * and strides as tensors, so the full-rank vectors are built in the graph. Axes not sliced get
 * begin 0, end = dim, stride 1 (ScatterNd fills the sliced axes into those defaults); negative axes
 * are wrapped. ONNX's clamping of out-of-range starts/ends is what StridedSlice does too.
 */
function dynamicSlice(cx: Cx, x: Val, r: number): void {
  const st = cx.in(1);
  const D = st.dtype === 'int32' ? 'int32' : 'int64';
  const T = { T: a.dt(D) };
  const ax = cx.opt(3);
  const stp = cx.opt(4);
  const k = st.shape?.length === 1 ? st.shape[0]! : -1;
  if (k > r) return cx.fail(ErrorCodes.MALFORMED, `Slice starts has ${k} entries for rank ${r}`);
  const starts = intRef(cx, st, D);
  const ends = intRef(cx, cx.in(2), D);
  let axes = ax ? intRef(cx, ax, D) : undefined;
  if (!axes) {
    if (k < 0) return cx.unsupported('Slice without axes needs starts of static length');
    axes = cx.constNode(numbersTensor('', D, [k], [...Array(k).keys()]));
  } else {
    const neg = cx.add('Cast', [cx.add('Less', [axes, cx.scalar(D, 0)], T)], { SrcT: a.dt('bool'), DstT: a.dt(D), Truncate: a.b(false) });
    axes = cx.add('AddV2', [axes, cx.add('Mul', [neg, cx.scalar(D, r)], T)], T);
  }
  const idx = cx.add('ExpandDims', [axes, cx.i32([-1], [])], { ...T, Tdim: a.dt('int32') });
  const rankVec = cx.constNode(numbersTensor('', D, [1], [r]));
  const scatter = (upd: string): string => cx.add('ScatterNd', [idx, upd, rankVec], { T: a.dt(D), Tindices: a.dt(D) });
  const dims = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt(D) });
  const begin = scatter(starts);
  // end = dim on untouched axes; on sliced axes dim + (end − dim) = end.
  const dimsAt = cx.add('GatherV2', [dims, axes, cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(D), Tindices: a.dt(D), Taxis: a.dt('int32') });
  const end = cx.add('AddV2', [dims, scatter(cx.add('Sub', [ends, dimsAt], T))], T);
  const strides = stp ? cx.add('AddV2', [scatter(cx.add('Sub', [intRef(cx, stp, D), cx.scalar(D, 1)], T)), cx.scalar(D, 1)], T) : cx.constNode(numbersTensor('', D, [r], new Array<number>(r).fill(1)));
  const [b, e] = canonicalBounds(cx, D, dims, begin, end, strides);
  const y = cx.add('StridedSlice', [cx.ref(x), b, e, strides], { T: a.dt(x.dtype), Index: a.dt(D), begin_mask: a.i(0), end_mask: a.i(0), ...SS_MASKS });
  // Which axes change is only known at run time when axes are; otherwise only the sliced ones.
  const fixedAxes = ax ? (ax.value ? tensorNumbers(ax.value).map((v) => normAxis(v, r)) : undefined) : [...Array(Math.max(k, 0)).keys()];
  cx.outRef(0, y, x.dtype, x.shape!.map((d, i) => (fixedAxes && !fixedAxes.includes(i) ? d : -1)));
}

register('Slice', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (cx.opset < 10) {
    starts = cx.ints('starts') ?? [];
    ends = cx.ints('ends') ?? [];
    axes = cx.ints('axes');
  } else {
    const ax = cx.opt(3);
    const stp = cx.opt(4);
    if (!cx.in(1).value || !cx.in(2).value || (ax && !ax.value) || (stp && !stp.value)) return dynamicSlice(cx, x, r);
    starts = cx.constNums(cx.in(1), 'Slice starts');
    ends = cx.constNums(cx.in(2), 'Slice ends');
    axes = ax ? cx.constNums(ax, 'Slice axes') : undefined;
    steps = stp ? cx.constNums(stp, 'Slice steps') : undefined;
  }
  axes = (axes ?? starts.map((_, i) => i)).map((v) => normAxis(v, r));
  const begin = new Array<number>(r).fill(0);
  const end = new Array<number>(r).fill(0);
  const stride = new Array<number>(r).fill(1);
  let beginMask = 0;
  let endMask = 0;
  const shape = [...x.shape!];
  for (let k = 0; k < r; k++) {
    const j = axes.indexOf(k);
    if (j < 0) {
      beginMask |= 1 << k;
      endMask |= 1 << k;
      continue;
    }
    const st = steps?.[j] ?? 1;
    if (st === 0) return cx.fail(ErrorCodes.MALFORMED, 'Slice step 0');
    const dim = x.shape![k]!;
    const b = starts[j]!;
    const e = ends[j]!;
    shape[k] = sliceLen(dim, b, e, st);
    if (shape[k] === 0) {
      // Empty: TF.js rejects a slice whose begin lies past its end, so say [0, 0) instead.
      continue;
    }
    begin[k] = Math.max(I32_MIN, Math.min(I32_MAX, b));
    stride[k] = st;
    // Ends past either edge mean "to the edge"; TF expresses that with the mask bit.
    if ((st > 0 && e >= I32_MAX) || (st < 0 && (e <= I32_MIN || (dim >= 0 && e < -dim)))) endMask |= 1 << k;
    else end[k] = Math.max(I32_MIN, Math.min(I32_MAX, e));
  }
  const f = foldable(x);
  if (f && r === 1 && staticShape(x.shape)) {
    const vals = tensorNumbers(f);
    const out: number[] = [];
    const dim = x.shape[0]!;
    const st = stride[0]!;
    let i = beginMask & 1 ? (st > 0 ? 0 : dim - 1) : begin[0]! < 0 ? begin[0]! + dim : begin[0]!;
    i = st > 0 ? Math.max(0, Math.min(dim, i)) : Math.max(-1, Math.min(dim - 1, i));
    for (let n = 0; n < shape[0]!; n++, i += st) out.push(vals[i]!);
    return constOut(cx, 0, numbersTensor('', f.dtype, [out.length], out));
  }
  const y = cx.add('StridedSlice', [cx.ref(x), cx.i32(begin), cx.i32(end), cx.i32(stride)], {
    T: a.dt(x.dtype), Index: a.dt('int32'), begin_mask: a.i(beginMask), end_mask: a.i(endMask),
    ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
  });
  cx.outRef(0, y, x.dtype, shape);
});

register('Gather', (cx) => {
  const x = cx.in(0);
  const idx = cx.in(1);
  const r = cx.rank(x);
  const axis = normAxis(cx.int('axis', 0), r);
  const dim = x.shape![axis]!;
  const shape = idx.shape ? [...x.shape!.slice(0, axis), ...idx.shape, ...x.shape!.slice(axis + 1)] : null;
  const fx = foldable(x);
  const fi = foldable(idx);
  if (fi) {
    const iv = tensorNumbers(fi).map((i) => (i < 0 && dim >= 0 ? i + dim : i));
    if (dim >= 0 && iv.some((i) => i < 0 || i >= dim)) return cx.fail(ErrorCodes.OUT_OF_RANGE, `Gather index out of range for dim ${dim}`);
    if (fx && r === 1) {
      const xv = tensorNumbers(fx);
      return constOut(cx, 0, numbersTensor('', x.dtype, fi.shape, iv.map((i) => xv[i]!)));
    }
    if (iv.some((i) => i < 0)) return cx.unsupported('negative Gather indices on a dim of unknown size');
    const iref = cx.constNode(numbersTensor('', 'int32', fi.shape, iv));
    const y = cx.add('GatherV2', [cx.ref(x), iref, cx.i32([axis], [])], { batch_dims: a.i(0), Tparams: a.dt(x.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
    return cx.outRef(0, y, x.dtype, shape);
  }
  // Run-time indices: wrap negatives (TF refuses them) with i + dim·(i < 0).
  let iref = cx.ref(idx);
  const I = { T: a.dt(idx.dtype) };
  if (dim < 0) return cx.unsupported('Gather with computed indices needs a static dim on the gather axis');
  const neg = cx.add('Cast', [cx.add('Less', [iref, cx.scalar(idx.dtype, 0)], I)], { SrcT: a.dt('bool'), DstT: a.dt(idx.dtype), Truncate: a.b(false) });
  iref = cx.add('AddV2', [iref, cx.add('Mul', [neg, cx.scalar(idx.dtype, dim)], I)], I);
  const y = cx.add('GatherV2', [cx.ref(x), iref, cx.i32([axis], [])], { batch_dims: a.i(0), Tparams: a.dt(x.dtype), Tindices: a.dt(idx.dtype), Taxis: a.dt('int32') });
  cx.outRef(0, y, x.dtype, shape);
});

function axesOf(cx: Cx, what: string): number[] | undefined {
  if (cx.opset < 13) return cx.ints('axes');
  const v = cx.opt(1);
  return v ? cx.constNums(v, `${what} axes`) : undefined;
}

register('Squeeze', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  let axes = axesOf(cx, 'Squeeze')?.map((v) => normAxis(v, r));
  if (!axes) {
    if (x.shape!.some((d) => d < 0)) return cx.unsupported('Squeeze without axes needs a static shape');
    axes = x.shape!.flatMap((d, i) => (d === 1 ? [i] : []));
  }
  const shape = x.shape!.filter((_, i) => !axes.includes(i));
  const f = foldable(x);
  if (f) return constOut(cx, 0, reshaped(f, shape));
  cx.outRef(0, cx.add('Squeeze', [cx.ref(x)], { T: a.dt(x.dtype), squeeze_dims: a.ints(axes) }), x.dtype, shape);
});

register('Unsqueeze', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const raw = axesOf(cx, 'Unsqueeze');
  if (!raw) return cx.fail(ErrorCodes.MALFORMED, 'Unsqueeze needs axes');
  const axes = raw.map((v) => normAxis(v, r + raw.length)).sort((p, q) => p - q);
  const shape = [...x.shape!];
  for (const ax of axes) shape.splice(ax, 0, 1);
  const f = foldable(x);
  if (f) return constOut(cx, 0, reshaped(f, shape));
  let y = cx.ref(x);
  for (const ax of axes) y = cx.add('ExpandDims', [y, cx.i32([ax], [])], { T: a.dt(x.dtype), Tdim: a.dt('int32') });
  cx.outRef(0, y, x.dtype, shape);
});

register('Shape', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const clampAxis = (v: number): number => Math.max(0, Math.min(r, v < 0 ? v + r : v));
  const start = clampAxis(cx.int('start', 0));
  const end = clampAxis(cx.int('end', r));
  const dims = x.shape!.slice(start, end);
  if (dims.every((d) => d >= 0)) return constOut(cx, 0, numbersTensor('', 'int64', [dims.length], dims));
  let y = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt('int64') });
  if (start !== 0 || end !== r) {
    y = cx.add('StridedSlice', [y, cx.i32([start]), cx.i32([end]), cx.i32([1])], {
      T: a.dt('int64'), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
    });
  }
  cx.outRef(0, y, 'int64', [dims.length]);
});

register('Size', (cx) => {
  const x = cx.in(0);
  if (!staticShape(x.shape)) return cx.unsupported('Size needs a static shape');
  constOut(cx, 0, numbersTensor('', 'int64', [], [prod(x.shape)]));
});

register('Expand', (cx) => {
  const x = cx.in(0);
  const sh = cx.in(1);
  if (!sh.value) {
    // ONNX Expand broadcasts both ways (a target dim of 1 keeps the input's); BroadcastTo does not,
    // so the target is first broadcast with the input's shape (BroadcastArgs).
    const len = sh.shape?.length === 1 ? sh.shape[0]! : -1;
    if (len > MAX_RANK) return cx.fail(ErrorCodes.LIMIT, `Expand to rank ${len}`);
    const D = sh.dtype === 'int32' ? 'int32' : 'int64';
    const dims = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt(D) });
    const target = cx.add('BroadcastArgs', [dims, intRef(cx, sh, D)], { T: a.dt(D) });
    const y = cx.add('BroadcastTo', [cx.ref(x), target], { T: a.dt(x.dtype), Tidx: a.dt(D) });
    const rank = len >= 0 && x.shape ? Math.max(len, x.shape.length) : -1;
    return cx.outRef(0, y, x.dtype, rank >= 0 ? new Array<number>(rank).fill(-1) : null);
  }
  const target = broadcastShapes(cx.constNums(sh, 'Expand shape'), x.shape);
  if (!staticShape(target)) return cx.unsupported('Expand needs a static input shape');
  const y = cx.add('BroadcastTo', [cx.ref(x), cx.i32(target)], { T: a.dt(x.dtype), Tidx: a.dt('int32') });
  cx.outRef(0, y, x.dtype, target);
});

register('Tile', (cx) => {
  const x = cx.in(0);
  const rep = cx.in(1);
  const reps = rep.value ? tensorNumbers(rep.value) : undefined;
  const mult = reps ? cx.i32(reps) : cx.ref(rep);
  const shape = x.shape ? x.shape.map((d, i) => (reps && d >= 0 ? d * reps[i]! : -1)) : null;
  cx.outRef(0, cx.add('Tile', [cx.ref(x), mult], { T: a.dt(x.dtype), Tmultiples: a.dt(reps ? 'int32' : rep.dtype) }), x.dtype, shape);
});

/**
 * ONNX pads [b0..b(r-1), e0..e(r-1)] as TF paddings [r, 2]: a Const when known, otherwise built in
 * the graph (reshape to [2, k], transpose, and scatter into the axes Pad-18 names).
 */
function paddingsOf(cx: Cx, r: number): { ref: string; pads?: number[] } {
  const pv = cx.in(1);
  const ax = cx.opt(3);
  if (ax && !ax.value) return cx.unsupported('Pad axes computed at run time');
  const axes = ax ? cx.constNums(ax, 'Pad axes').map((v) => normAxis(v, r)) : undefined;
  if (axes?.some((v) => v < 0 || v >= r)) return cx.fail(ErrorCodes.MALFORMED, `Pad axes [${axes.join(',')}] outside rank ${r}`);
  const k = axes?.length ?? r;
  if (pv.value) {
    let pads = cx.constNums(pv, 'Pad pads');
    if (pads.length !== 2 * k) return cx.fail(ErrorCodes.MALFORMED, `pads has ${pads.length} values for ${k} axes`);
    if (axes) {
      const full = new Array<number>(2 * r).fill(0);
      axes.forEach((axis, i) => { full[axis] = pads[i]!; full[axis + r] = pads[i + k]!; });
      pads = full;
    }
    return { ref: cx.i32(Array.from({ length: r }, (_, i) => [pads[i]!, pads[i + r]!]).flat(), [r, 2]), pads };
  }
  if (pv.shape?.length === 1 && pv.shape[0]! >= 0 && pv.shape[0] !== 2 * k) return cx.fail(ErrorCodes.MALFORMED, `pads has ${pv.shape[0]} values for ${k} axes`);
  const D = pv.dtype === 'int32' ? 'int32' : 'int64';
  const T = { T: a.dt(D) };
  const pairs = cx.add('Transpose', [cx.add('Reshape', [intRef(cx, pv, D), cx.i32([2, k])], { ...T, Tshape: a.dt('int32') }), cx.i32([1, 0])], { ...T, Tperm: a.dt('int32') });
  if (!axes) return { ref: pairs };
  const idx = cx.constNode(numbersTensor('', 'int32', [k, 1], axes));
  return { ref: cx.add('ScatterNd', [idx, pairs, cx.i32([r, 2])], { T: a.dt(D), Tindices: a.dt('int32') }) };
}

/**
 * Edge and wrap padding have no TF op: each axis is gathered with indices range(−before, dim +
 * after), clipped to [0, dim − 1] (edge: repeats the border element) or taken modulo dim (wrap).
 * Works for run-time pads too.
 */
function gatherPad(cx: Cx, x: Val, paddings: string, pads: number[] | undefined, wrap: boolean): string {
  const r = x.shape!.length;
  const D = 'int32';
  const T = { T: a.dt(D) };
  let y = cx.ref(x);
  const dims = cx.add('Shape', [y], { T: a.dt(x.dtype), out_type: a.dt(D) });
  const pI = pads ? undefined : cx.add('Reshape', [cx.add('Cast', [paddings], { SrcT: a.dt(paddingsDtype(cx)), DstT: a.dt(D), Truncate: a.b(false) }), cx.i32([2 * r])], { ...T, Tshape: a.dt('int32') });
  for (let k = 0; k < r; k++) {
    if (pads && pads[k] === 0 && pads[k + r] === 0) continue;
    const before = pads ? cx.scalar(D, pads[k]!) : elementAt(cx, pI!, D, 2 * k);
    const after = pads ? cx.scalar(D, pads[k + r]!) : elementAt(cx, pI!, D, 2 * k + 1);
    const dim = elementAt(cx, dims, D, k);
    const range = cx.add('Range', [cx.add('Neg', [before], T), cx.add('AddV2', [dim, after], T), cx.scalar(D, 1)], { Tidx: a.dt(D) });
    const idx = wrap ? cx.add('FloorMod', [range, dim], T) : cx.add('Minimum', [cx.add('Maximum', [range, cx.scalar(D, 0)], T), cx.add('Sub', [dim, cx.scalar(D, 1)], T)], T);
    y = cx.add('GatherV2', [y, idx, cx.i32([k], [])], { batch_dims: a.i(0), Tparams: a.dt(x.dtype), Tindices: a.dt(D), Taxis: a.dt('int32') });
  }
  return y;
}

function paddingsDtype(cx: Cx): Val['dtype'] {
  return cx.in(1).dtype === 'int32' ? 'int32' : 'int64';
}

register('Pad', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const mode = cx.str('mode', 'constant');
  let paddings: string;
  let pads: number[] | undefined;
  let value: string | undefined;
  if (cx.opset < 11) {
    pads = cx.ints('pads') ?? cx.ints('paddings') ?? [];
    if (pads.length !== 2 * r) return cx.fail(ErrorCodes.MALFORMED, `pads has ${pads.length} values for rank ${r}`);
    paddings = cx.i32(Array.from({ length: r }, (_, i) => [pads![i]!, pads![i + r]!]).flat(), [r, 2]);
    const v = cx.float('value', 0);
    if (v !== 0) value = cx.scalar(x.dtype, v);
  } else {
    ({ ref: paddings, pads } = paddingsOf(cx, r));
    const cv = cx.opt(2);
    if (cv) value = cx.ref(cv);
  }
  if (pads?.some((p) => p < 0)) return cx.unsupported('negative pads');
  const shape = x.shape!.map((d, i) => (d < 0 || !pads ? -1 : d + pads[i]! + pads[i + r]!));
  const T = { T: a.dt(x.dtype), Tpaddings: a.dt(pads ? 'int32' : paddingsDtype(cx)) };
  let y: string;
  if (mode === 'constant') y = value ? cx.add('PadV2', [cx.ref(x), paddings, value], T) : cx.add('Pad', [cx.ref(x), paddings], T);
  else if (mode === 'reflect') y = cx.add('MirrorPad', [cx.ref(x), paddings], { ...T, mode: a.s('REFLECT') });
  else if (mode === 'edge' || mode === 'wrap') y = gatherPad(cx, x, paddings, pads, mode === 'wrap');
  else return cx.fail(ErrorCodes.MALFORMED, `Pad mode '${mode}'`);
  cx.outRef(0, y, x.dtype, shape);
});
