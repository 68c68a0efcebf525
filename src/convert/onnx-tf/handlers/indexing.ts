/**
 * Index-tensor ops: GatherND, ScatterND, GatherElements, ScatterElements/Scatter, TopK. TF's GatherNd / TensorScatterUpdate share ONNX's index
 * layout (the last index dim addresses the leading data dims), but TF refuses negative indices,
 * so those are wrapped in the graph with the addressed dims of the data's run-time shape.
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { normAxis } from '../values.js';

/** indices + dims[:q]·(indices < 0), with q the static last dim of the indices. */
function wrapNegative(cx: Cx, data: Val, idx: Val, what: string): string {
  const q = idx.shape?.[idx.shape.length - 1] ?? -1;
  const r = cx.rank(data, 'data');
  if (q < 1 || q > r) return cx.unsupported(`${what} needs the last indices dim static, between 1 and the data rank ${r} (got ${q})`);
  const D = idx.dtype;
  if (D !== 'int32' && D !== 'int64') return cx.fail(ErrorCodes.MALFORMED, `${what} indices are ${D}`);
  const T = { T: a.dt(D) };
  const dims = cx.add('Slice', [cx.add('Shape', [cx.ref(data)], { T: a.dt(data.dtype), out_type: a.dt(D) }), cx.i32([0]), cx.i32([q])], { ...T, Index: a.dt('int32') });
  const neg = cx.add('Cast', [cx.add('Less', [cx.ref(idx), cx.scalar(D, 0)], T)], { SrcT: a.dt('bool'), DstT: a.dt(D), Truncate: a.b(false) });
  return cx.add('AddV2', [cx.ref(idx), cx.add('Mul', [neg, dims], T)], T);
}

register('GatherND', (cx) => {
  const data = cx.in(0);
  const idx = cx.in(1);
  if (cx.int('batch_dims', 0) !== 0) return cx.unsupported('GatherND batch_dims');
  const i = wrapNegative(cx, data, idx, 'GatherND');
  const y = cx.add('GatherNd', [cx.ref(data), i], { Tparams: a.dt(data.dtype), Tindices: a.dt(idx.dtype) });
  const q = idx.shape![idx.shape!.length - 1]!;
  cx.outRef(0, y, data.dtype, data.shape ? [...idx.shape!.slice(0, -1), ...data.shape.slice(q)] : null);
});

register('ScatterND', (cx) => {
  const data = cx.in(0);
  const idx = cx.in(1);
  const upd = cx.in(2);
  const reduction = cx.str('reduction', 'none');
  const op = { none: 'TensorScatterUpdate', add: 'TensorScatterAdd', max: 'TensorScatterMax', min: 'TensorScatterMin' }[reduction];
  // TF.js runs only TensorScatterUpdate; the reductions would be graphs nothing here can check.
  if (op !== 'TensorScatterUpdate') return cx.unsupported(`ScatterND reduction '${reduction}'`);
  const i = wrapNegative(cx, data, idx, 'ScatterND');
  // TF.js's TensorScatterUpdate writes into its input's buffer, so any other reader of `data`
  // would see the updates: it gets a private copy (·1 keeps −0 and NaN; bools through And true).
  const copy = data.dtype === 'bool'
    ? cx.add('LogicalAnd', [cx.ref(data), cx.scalar('bool', 1)])
    : cx.add('Mul', [cx.ref(data), cx.scalar(data.dtype, 1)], { T: a.dt(data.dtype) });
  const y = cx.add(op, [copy, i, cx.ref(upd)], { T: a.dt(data.dtype), Tindices: a.dt(idx.dtype) });
  cx.outRef(0, y, data.dtype, data.shape);
});

/**
 * TopK on any axis: TF's TopKV2 works on the last one, so other axes are moved there and back.
 * Smallest-k is largest-k of the negation (ties still go to the lower index, as in ONNX).
 */
register('TopK', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axis = cx.int('axis', -1) < 0 ? cx.int('axis', -1) + r : cx.int('axis', -1);
  if (axis < 0 || axis >= r) return cx.fail(ErrorCodes.MALFORMED, `TopK axis ${cx.int('axis', -1)} for rank ${r}`);
  const largest = cx.int('largest', 1) === 1;
  if (!largest && !['float32', 'float64', 'float16', 'int32', 'int64', 'int8', 'int16'].includes(x.dtype)) return cx.unsupported(`smallest-k TopK of ${x.dtype}`);
  const T = { T: a.dt(x.dtype) };
  let k: string;
  let kStatic = -1;
  if (cx.opset < 10) {
    kStatic = cx.int('k', 0);
    k = cx.i32([kStatic], []);
  } else {
    const kv = cx.in(1);
    if (kv.value) {
      kStatic = cx.constNums(kv, 'TopK k')[0] ?? 0;
      k = cx.i32([kStatic], []);
    } else {
      const ki = kv.dtype === 'int32' ? cx.ref(kv) : cx.add('Cast', [cx.ref(kv)], { SrcT: a.dt(kv.dtype), DstT: a.dt('int32'), Truncate: a.b(false) });
      k = cx.add('Reshape', [ki, cx.i32([], [0])], { T: a.dt('int32'), Tshape: a.dt('int32') });
    }
  }
  const perm = [...Array(r).keys()];
  perm[axis] = r - 1;
  perm[r - 1] = axis;
  const move = (v: string, dtype: Val['dtype']): string => (axis === r - 1 ? v : cx.add('Transpose', [v, cx.i32(perm)], { T: a.dt(dtype), Tperm: a.dt('int32') }));
  let src = move(cx.ref(x), x.dtype);
  if (!largest) src = cx.add('Neg', [src], T);
  const top = cx.add('TopKV2', [src, k], { ...T, sorted: a.b(true), Tk: a.dt('int32'), index_type: a.dt('int32') });
  let values = `${top}:0`;
  if (!largest) values = cx.add('Neg', [values], T);
  const indices = cx.add('Cast', [move(`${top}:1`, 'int32')], { SrcT: a.dt('int32'), DstT: a.dt('int64'), Truncate: a.b(false) });
  const shape = x.shape!.map((d, i) => (i === axis ? kStatic : d));
  cx.outRef(0, move(values, x.dtype), x.dtype, shape);
  cx.outRef(1, indices, 'int64', shape);
});

/**
 * Full coordinates [S…, r] for the element-wise index ops: every dim's own position, except on
 * `axis`, where the (wrapped) index tensor gives it. Built with Range/BroadcastTo, so no
 * index-sized constant; the index shape S must be static.
 */
function elementCoords(cx: Cx, data: Val, idx: Val, axis: number, what: string): string {
  const r = cx.rank(data, 'data');
  const s = idx.shape;
  if (!s || s.length !== r || s.some((d) => d < 0)) return cx.unsupported(`${what} needs indices of static shape and the data's rank`);
  const D = idx.dtype;
  if (D !== 'int32' && D !== 'int64') return cx.fail(ErrorCodes.MALFORMED, `${what} indices are ${D}`);
  const T = { T: a.dt(D) };
  const dim = cx.add('StridedSlice', [cx.add('Shape', [cx.ref(data)], { T: a.dt(data.dtype), out_type: a.dt(D) }), cx.i32([axis]), cx.i32([axis + 1]), cx.i32([1])], {
    ...T, Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
  });
  const neg = cx.add('Cast', [cx.add('Less', [cx.ref(idx), cx.scalar(D, 0)], T)], { SrcT: a.dt('bool'), DstT: a.dt(D), Truncate: a.b(false) });
  const wrapped = cx.add('AddV2', [cx.ref(idx), cx.add('Mul', [neg, dim], T)], T);
  const I = { T: a.dt('int32') };
  const parts = s.map((n, j) => {
    if (j === axis) return D === 'int32' ? wrapped : cx.add('Cast', [wrapped], { SrcT: a.dt(D), DstT: a.dt('int32'), Truncate: a.b(false) });
    const range = cx.add('Range', [cx.scalar('int32', 0), cx.scalar('int32', n), cx.scalar('int32', 1)], { Tidx: a.dt('int32') });
    const along = cx.add('Reshape', [range, cx.i32(s.map((_, k) => (k === j ? n : 1)))], { ...I, Tshape: a.dt('int32') });
    return cx.add('BroadcastTo', [along, cx.i32(s)], { ...I, Tidx: a.dt('int32') });
  });
  return cx.add('Pack', parts, { ...I, N: a.i(r), axis: a.i(r) });
}

register('GatherElements', (cx) => {
  const data = cx.in(0);
  const idx = cx.in(1);
  const axis = normAxis(cx.int('axis', 0), cx.rank(data));
  const coords = elementCoords(cx, data, idx, axis, 'GatherElements');
  cx.outRef(0, cx.add('GatherNd', [cx.ref(data), coords], { Tparams: a.dt(data.dtype), Tindices: a.dt('int32') }), data.dtype, idx.shape);
});

register(['ScatterElements', 'Scatter'], (cx) => {
  const data = cx.in(0);
  const idx = cx.in(1);
  const upd = cx.in(2);
  const reduction = cx.str('reduction', 'none');
  if (reduction !== 'none') return cx.unsupported(`${cx.node.opType} reduction '${reduction}'`);
  const axis = normAxis(cx.int('axis', 0), cx.rank(data));
  const coords = elementCoords(cx, data, idx, axis, cx.node.opType);
  // A private copy: TF.js's TensorScatterUpdate writes into its input (see ScatterND).
  const copy = data.dtype === 'bool'
    ? cx.add('LogicalAnd', [cx.ref(data), cx.scalar('bool', 1)])
    : cx.add('Mul', [cx.ref(data), cx.scalar(data.dtype, 1)], { T: a.dt(data.dtype) });
  cx.outRef(0, cx.add('TensorScatterUpdate', [copy, coords, cx.ref(upd)], { T: a.dt(data.dtype), Tindices: a.dt('int32') }), data.dtype, data.shape);
});

/** Compress: the positions where the condition holds (Where), gathered; without an axis, of the flattened input. */
register('Compress', (cx) => {
  const x = cx.in(0);
  const cond = cx.in(1);
  if (cond.dtype !== 'bool') return cx.fail(ErrorCodes.MALFORMED, `Compress condition is ${cond.dtype}`);
  const r = cx.rank(x);
  const hasAxis = cx.has('axis');
  const axis = hasAxis ? normAxis(cx.int('axis', 0), r) : 0;
  if (axis < 0 || axis >= r) return cx.fail(ErrorCodes.MALFORMED, `Compress axis ${cx.int('axis', 0)} for rank ${r}`);
  const src = hasAxis ? cx.ref(x) : cx.add('Reshape', [cx.ref(x), cx.i32([-1])], { T: a.dt(x.dtype), Tshape: a.dt('int32') });
  const flatCond = cx.add('Reshape', [cx.ref(cond), cx.i32([-1])], { T: a.dt('bool'), Tshape: a.dt('int32') });
  const where = cx.add('Reshape', [cx.add('Where', [flatCond], { T: a.dt('bool') }), cx.i32([-1])], { T: a.dt('int64'), Tshape: a.dt('int32') });
  const y = cx.add('GatherV2', [src, where, cx.i32([axis], [])], { batch_dims: a.i(0), Tparams: a.dt(x.dtype), Tindices: a.dt('int64'), Taxis: a.dt('int32') });
  cx.outRef(0, y, x.dtype, hasAxis ? x.shape!.map((d, i) => (i === axis ? -1 : d)) : [-1]);
});
