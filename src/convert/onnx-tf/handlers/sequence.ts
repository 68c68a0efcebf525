/**
 * Sequence ops on the converter's form of an ONNX sequence: its elements (all of one shape) stacked
 * on a new axis 0, one tensor TF.js can hold (it has no TensorList inputs). Element shapes that
 * differ are refused rather than padded. Optional ops are not converted: TF and TF.js have no
 * Optional value, and a presence flag beside every value is not worth it for what exporters emit.
 */
import { dtypeFromOnnx, type DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { mergeShapes } from '../subgraph.js';
import { a } from '../tf-attr.js';
import { normAxis, numbersTensor, tensorNumbers } from '../values.js';

const SS = { begin_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0) };

function seqIn(cx: Cx, i: number): Val {
  const v = cx.in(i);
  if (!v.sequence) cx.fail(ErrorCodes.MALFORMED, `input ${i} is a tensor, the op takes a sequence`);
  return v;
}

function elemShape(v: Val): number[] | null {
  return v.shape ? v.shape.slice(1) : null;
}

function known(v: Val | undefined): number | undefined {
  return v?.value && v.value.shape.length <= 1 ? tensorNumbers(v.value)[0] : undefined;
}

/** Number of elements as a scalar of `dtype` (int32 or int64). */
function lengthOf(cx: Cx, seq: Val, dtype: DType): string {
  const n = seq.shape?.[0];
  if (n !== undefined && n >= 0) return cx.constNode(numbersTensor('', dtype, [], [n]));
  const sh = cx.add('Shape', [cx.ref(seq)], { T: a.dt(seq.dtype), out_type: a.dt(dtype) });
  return cx.add('StridedSlice', [sh, cx.i32([0]), cx.i32([1]), cx.i32([1])], { T: a.dt(dtype), Index: a.dt('int32'), ...SS, end_mask: a.i(0), shrink_axis_mask: a.i(1) });
}

/** A position as a scalar in [0, n] (ONNX counts negative positions from the back). */
function position(cx: Cx, pos: Val, seq: Val): string {
  const D = pos.dtype;
  const T = { T: a.dt(D) };
  let p = cx.ref(pos);
  if (!pos.shape || pos.shape.length !== 0) p = cx.add('Reshape', [p, cx.i32([], [0])], { ...T, Tshape: a.dt('int32') });
  const k = known(pos);
  if (k !== undefined && k >= 0) return p;
  const neg = cx.add('Less', [p, cx.scalar(D, 0)], T);
  return cx.add('SelectV2', [neg, cx.add('AddV2', [p, lengthOf(cx, seq, D)], T), p], T);
}

/** `p` (scalar) as a one-element vector. */
function vec1(cx: Cx, p: string, D: DType): string {
  return cx.add('Reshape', [p, cx.i32([1])], { T: a.dt(D), Tshape: a.dt('int32') });
}

/** Rows [begin, end) of a stacked sequence (begin/end one-element vectors; end omitted = to the end). */
function rows(cx: Cx, s: string, dtype: DType, D: DType, begin: string, end?: string): string {
  return cx.add('StridedSlice', [s, begin, end ?? cx.constNode(numbersTensor('', D, [1], [0])), cx.constNode(numbersTensor('', D, [1], [1]))], {
    T: a.dt(dtype), Index: a.dt(D), ...SS, end_mask: a.i(end ? 0 : 1),
  });
}

function expand0(cx: Cx, x: Val): string {
  return cx.add('ExpandDims', [cx.ref(x), cx.i32([0], [])], { T: a.dt(x.dtype), Tdim: a.dt('int32') });
}

function concat0(cx: Cx, parts: string[], dtype: DType): string {
  return cx.add('ConcatV2', [...parts, cx.i32([0], [])], { T: a.dt(dtype), N: a.i(parts.length), Tidx: a.dt('int32') });
}

function compatible(x: number[] | null, y: number[] | null): boolean {
  return !x || !y || (x.length === y.length && x.every((d, i) => d < 0 || y[i]! < 0 || d === y[i]));
}

register('SequenceEmpty', (cx) => {
  const code = cx.int('dtype', 1);
  const d = dtypeFromOnnx(code);
  if (!d) return cx.fail(ErrorCodes.DTYPE, `unknown ONNX element type ${code}`);
  cx.out(0, { dtype: d.name, shape: null, sequence: true, emptySequence: true });
});

register('SequenceConstruct', (cx) => {
  const ins = cx.node.input.map((_, i) => cx.in(i));
  if (ins.length === 0) return cx.fail(ErrorCodes.MALFORMED, 'SequenceConstruct without inputs');
  const first = ins[0]!;
  let shape = first.shape;
  for (const [i, v] of ins.entries()) {
    if (v.dtype !== first.dtype) return cx.fail(ErrorCodes.MALFORMED, `input ${i} is ${v.dtype}, input 0 ${first.dtype}`);
    if (!v.shape || !shape || v.shape.length !== shape.length || v.shape.some((d, k) => d >= 0 && shape![k]! >= 0 && d !== shape![k])) {
      return cx.unsupported(`SequenceConstruct of tensors whose shapes differ or are unknown ([${first.shape?.join(',') ?? '?'}] and [${v.shape?.join(',') ?? '?'}]): sequences are held stacked`);
    }
    shape = mergeShapes(shape, v.shape);
  }
  const y = cx.add('Pack', ins.map((v) => cx.ref(v)), { T: a.dt(first.dtype), N: a.i(ins.length), axis: a.i(0) });
  cx.out(0, { ref: y, dtype: first.dtype, shape: [ins.length, ...shape!], sequence: true });
});

register('SequenceLength', (cx) => {
  const s = seqIn(cx, 0);
  const n = s.emptySequence ? 0 : s.shape?.[0];
  if (n !== undefined && n >= 0) return cx.out(0, { dtype: 'int64', shape: [], value: numbersTensor('', 'int64', [], [n]) });
  cx.outRef(0, lengthOf(cx, s, 'int64'), 'int64', []);
});

register('SequenceAt', (cx) => {
  const s = seqIn(cx, 0);
  const pos = cx.in(1);
  if (s.emptySequence) return cx.fail(ErrorCodes.MALFORMED, 'SequenceAt on an empty sequence');
  const y = cx.add('GatherV2', [cx.ref(s), position(cx, pos, s), cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(s.dtype), Tindices: a.dt(pos.dtype), Taxis: a.dt('int32') });
  cx.outRef(0, y, s.dtype, elemShape(s));
});

register('SequenceInsert', (cx) => {
  const s = seqIn(cx, 0);
  const t = cx.in(1);
  const pos = cx.opt(2);
  if (t.dtype !== s.dtype) return cx.fail(ErrorCodes.MALFORMED, `inserting a ${t.dtype} tensor into a sequence of ${s.dtype}`);
  const e = expand0(cx, t);
  const n = s.emptySequence ? 0 : s.shape?.[0] ?? -1;
  if (s.emptySequence) return cx.out(0, { ref: e, dtype: t.dtype, shape: t.shape ? [1, ...t.shape] : null, sequence: true });
  if (!compatible(elemShape(s), t.shape)) return cx.unsupported(`SequenceInsert of a [${t.shape!.join(',')}] tensor into a sequence of [${elemShape(s)!.join(',')}] tensors: sequences are held stacked`);
  let seq = cx.ref(s);
  if (!s.shape) {
    // A sequence of unknown element shape (a loop variable that started empty) takes the inserted
    // tensor's: reshaping an empty stack to [-1, …shape(t)] gives it that shape, a no-op otherwise.
    const sh = cx.add('Shape', [cx.ref(t)], { T: a.dt(t.dtype), out_type: a.dt('int32') });
    seq = cx.add('Reshape', [seq, cx.add('ConcatV2', [cx.i32([-1]), sh, cx.i32([0], [])], { T: a.dt('int32'), N: a.i(2), Tidx: a.dt('int32') })], { T: a.dt(s.dtype), Tshape: a.dt('int32') });
  }
  const shape = [n >= 0 ? n + 1 : -1, ...(mergeShapes(elemShape(s) ?? t.shape, t.shape) ?? t.shape ?? [])];
  const outShape = t.shape ? shape : null;
  if (!pos) return cx.out(0, { ref: concat0(cx, [seq, e], t.dtype), dtype: t.dtype, shape: outShape, sequence: true });
  const D = pos.dtype;
  const p = vec1(cx, position(cx, pos, s), D);
  const y = concat0(cx, [rows(cx, seq, s.dtype, D, cx.constNode(numbersTensor('', D, [1], [0])), p), e, rows(cx, seq, s.dtype, D, p)], t.dtype);
  cx.out(0, { ref: y, dtype: t.dtype, shape: outShape, sequence: true });
});

register('SequenceErase', (cx) => {
  const s = seqIn(cx, 0);
  const pos = cx.opt(1);
  if (s.emptySequence) return cx.fail(ErrorCodes.MALFORMED, 'SequenceErase on an empty sequence');
  const n = s.shape?.[0] ?? -1;
  const shape = s.shape ? [n > 0 ? n - 1 : -1, ...s.shape.slice(1)] : null;
  const seq = cx.ref(s);
  const D: DType = pos?.dtype ?? 'int32';
  const zero = cx.constNode(numbersTensor('', D, [1], [0]));
  let y: string;
  if (!pos) {
    y = rows(cx, seq, s.dtype, D, zero, cx.constNode(numbersTensor('', D, [1], [-1])));
  } else {
    const p = position(cx, pos, s);
    const after = vec1(cx, cx.add('AddV2', [p, cx.scalar(D, 1)], { T: a.dt(D) }), D);
    y = concat0(cx, [rows(cx, seq, s.dtype, D, zero, vec1(cx, p, D)), rows(cx, seq, s.dtype, D, after)], s.dtype);
  }
  cx.out(0, { ref: y, dtype: s.dtype, shape, sequence: true });
});

/** Stacked sequence → tensor with the stacking axis moved to `axis` (perm [1..axis, 0, axis+1..]). */
function moveStackAxis(cx: Cx, s: Val, axis: number, rank: number): string {
  if (axis === 0) return cx.add('Identity', [cx.ref(s)], { T: a.dt(s.dtype) });
  const perm = [...Array(rank).keys()].slice(1);
  perm.splice(axis, 0, 0);
  return cx.add('Transpose', [cx.ref(s), cx.i32(perm)], { T: a.dt(s.dtype), Tperm: a.dt('int32') });
}

register('ConcatFromSequence', (cx) => {
  const s = seqIn(cx, 0);
  if (s.emptySequence) return cx.unsupported('ConcatFromSequence of an empty sequence of unknown element shape');
  if (!s.shape) return cx.unsupported('ConcatFromSequence of a sequence of unknown element rank');
  const er = s.shape.length - 1;
  const newAxis = cx.int('new_axis', 0) === 1;
  if (!cx.has('axis')) return cx.fail(ErrorCodes.MALFORMED, 'attribute axis is required');
  const axis = normAxis(cx.int('axis', 0), newAxis ? er + 1 : er);
  if (axis < 0 || axis > (newAxis ? er : er - 1)) return cx.fail(ErrorCodes.MALFORMED, `axis ${cx.int('axis', 0)} out of range for elements of rank ${er}`);
  const moved = moveStackAxis(cx, s, axis, er + 1);
  const el = s.shape.slice(1);
  if (newAxis) {
    const shape = [...el];
    shape.splice(axis, 0, s.shape[0]!);
    return cx.outRef(0, moved, s.dtype, shape);
  }
  const n = s.shape[0]!;
  const merged = n >= 0 && el[axis]! >= 0 ? n * el[axis]! : -1;
  const shape = el.map((d, i) => (i === axis ? merged : d));
  let target: string;
  if (shape.filter((d) => d < 0).length <= 1) target = cx.i32(shape);
  else {
    const sh = cx.add('Shape', [moved], { T: a.dt(s.dtype), out_type: a.dt('int32') });
    const head = cx.add('StridedSlice', [sh, cx.i32([0]), cx.i32([axis]), cx.i32([1])], { T: a.dt('int32'), Index: a.dt('int32'), ...SS, end_mask: a.i(0) });
    const tail = cx.add('StridedSlice', [sh, cx.i32([axis + 2]), cx.i32([0]), cx.i32([1])], { T: a.dt('int32'), Index: a.dt('int32'), ...SS, end_mask: a.i(1) });
    target = cx.add('ConcatV2', [head, cx.i32([-1]), tail, cx.i32([0], [])], { T: a.dt('int32'), N: a.i(3), Tidx: a.dt('int32') });
  }
  cx.outRef(0, cx.add('Reshape', [moved, target], { T: a.dt(s.dtype), Tshape: a.dt('int32') }), s.dtype, shape);
});

register('SplitToSequence', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  if (r === 0) return cx.fail(ErrorCodes.MALFORMED, 'SplitToSequence of a scalar');
  const axis = normAxis(cx.int('axis', 0), r);
  if (axis < 0 || axis >= r) return cx.fail(ErrorCodes.MALFORMED, `axis ${cx.int('axis', 0)} out of range for rank ${r}`);
  const split = cx.opt(1);
  const d = x.shape![axis]!;
  const T = { T: a.dt(x.dtype) };
  const toFront = [axis, ...[...Array(r).keys()].filter((i) => i !== axis)];
  if (!split) {
    // Chunks of one: the stack is x with `axis` moved to the front (kept as a 1-dim when keepdims).
    let y = axis === 0 ? cx.ref(x) : cx.add('Transpose', [cx.ref(x), cx.i32(toFront)], { ...T, Tperm: a.dt('int32') });
    const rest = toFront.slice(1).map((i) => x.shape![i]!);
    let shape = [d, ...rest];
    if (cx.int('keepdims', 1) === 1) {
      y = cx.add('ExpandDims', [y, cx.i32([axis + 1], [])], { ...T, Tdim: a.dt('int32') });
      shape = [d, ...x.shape!.map((s, i) => (i === axis ? 1 : s))];
    } else if (axis === 0) y = cx.add('Identity', [y], T);
    return cx.out(0, { ref: y, dtype: x.dtype, shape, sequence: true });
  }
  let size: number | string;
  const sizes = split.value ? tensorNumbers(split.value) : undefined;
  if (split.shape && split.shape.length === 1) {
    if (!sizes) return cx.unsupported('SplitToSequence with run-time split sizes (a list): the chunk shapes must be known to hold the sequence stacked');
    if (sizes.some((v) => v !== sizes[0])) return cx.unsupported(`SplitToSequence into chunks of different sizes [${sizes.join(',')}]: sequences are held stacked`);
    size = sizes[0]!;
    if (d >= 0 && sizes.reduce((p, q) => p + q, 0) !== d) return cx.fail(ErrorCodes.MALFORMED, `split sizes [${sizes.join(',')}] do not add up to ${d}`);
  } else if (sizes) {
    size = sizes[0]!;
  } else {
    size = cx.add('Reshape', [cx.ref(split), cx.i32([1])], { T: a.dt(split.dtype), Tshape: a.dt('int32') });
    if (split.dtype !== 'int32') size = cx.add('Cast', [size], { SrcT: a.dt(split.dtype), DstT: a.dt('int32'), Truncate: a.b(false) });
  }
  if (typeof size === 'number') {
    if (size <= 0) return cx.fail(ErrorCodes.MALFORMED, `split size ${size}`);
    if (d >= 0 && d % size !== 0) return cx.unsupported(`SplitToSequence of ${d} into chunks of ${size} (the last is shorter): sequences are held stacked`);
  }
  // [.., d, ..] → [.., d/size, size, ..], then the chunk axis to the front.
  const dims = x.shape!;
  let target: string;
  if (typeof size === 'number' && dims.filter((v, i) => i !== axis && v < 0).length === 0) {
    target = cx.i32([...dims.slice(0, axis), -1, size, ...dims.slice(axis + 1)]);
  } else {
    const sh = cx.add('Shape', [cx.ref(x)], { ...T, out_type: a.dt('int32') });
    const head = cx.add('StridedSlice', [sh, cx.i32([0]), cx.i32([axis]), cx.i32([1])], { T: a.dt('int32'), Index: a.dt('int32'), ...SS, end_mask: a.i(0) });
    const tail = cx.add('StridedSlice', [sh, cx.i32([axis + 1]), cx.i32([0]), cx.i32([1])], { T: a.dt('int32'), Index: a.dt('int32'), ...SS, end_mask: a.i(1) });
    target = cx.add('ConcatV2', [head, cx.i32([-1]), typeof size === 'number' ? cx.i32([size]) : size, tail, cx.i32([0], [])], { T: a.dt('int32'), N: a.i(4), Tidx: a.dt('int32') });
  }
  const reshaped = cx.add('Reshape', [cx.ref(x), target], { ...T, Tshape: a.dt('int32') });
  const perm = [axis, ...[...Array(r + 1).keys()].filter((i) => i !== axis)];
  const y = cx.add('Transpose', [reshaped, cx.i32(perm)], { ...T, Tperm: a.dt('int32') });
  const chunk = typeof size === 'number' ? size : -1;
  const n = typeof size === 'number' && d >= 0 ? d / size : -1;
  cx.out(0, { ref: y, dtype: x.dtype, shape: [n, ...dims.map((v, i) => (i === axis ? chunk : v))], sequence: true });
});
