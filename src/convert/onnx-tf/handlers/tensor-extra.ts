/**
 * Unique, ReverseSequence, TensorScatter and Det. TF has ReverseSequence, MatrixDeterminant and
 * scatter ops that TF.js (the reference executor) lacks, so these are built from gathers, selects
 * and reductions it runs; every op folds at conversion time when its inputs are known constants.
 */
import { dtypeInfo, type DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Tensor } from '../../../core/tensor.js';
import { carrierOf } from '../carriers.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { MAX_FOLD_ELEMENTS, normAxis, numbersTensor, tensorNumbers } from '../values.js';

const prod = (s: readonly number[]): number => s.reduce((p, q) => p * q, 1);

function cast(cx: Cx, ref: string, from: DType, to: DType): string {
  if (from === to) return ref;
  return cx.add('Cast', [ref], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) });
}

/** The value of `v` when it is a small numeric constant we can compute with. */
function foldable(v: Val | undefined): Tensor | undefined {
  const t = v?.value;
  if (!t || carrierOf(v!.dtype) || t.dtype === 'string' || t.dtype === 'float16' || t.dtype === 'bfloat16' || dtypeInfo(t.dtype).bits < 8) return undefined;
  return prod(t.shape) <= MAX_FOLD_ELEMENTS ? t : undefined;
}

/** Dim `axis` of `ref` as an int32 scalar: a Const when static, else read from Shape at run time. */
function dimOf(cx: Cx, v: Val, ref: string, axis: number): string {
  const d = v.shape?.[axis] ?? -1;
  if (d >= 0) return cx.scalar('int32', d);
  const s = cx.add('Shape', [ref], { T: a.dt(v.dtype), out_type: a.dt('int32') });
  return cx.add('StridedSlice', [s, cx.i32([axis]), cx.i32([axis + 1]), cx.i32([1])], {
    T: a.dt('int32'), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
  });
}

function range(cx: Cx, n: string): string {
  return cx.add('Range', [cx.scalar('int32', 0), n, cx.scalar('int32', 1)], { Tidx: a.dt('int32') });
}

function expand(cx: Cx, ref: string, dtype: DType, axis: number): string {
  return cx.add('ExpandDims', [ref, cx.i32([axis], [])], { T: a.dt(dtype), Tdim: a.dt('int32') });
}

function transpose(cx: Cx, ref: string, dtype: DType, perm: number[]): string {
  if (perm.every((p, i) => p === i)) return ref;
  return cx.add('Transpose', [ref, cx.i32(perm)], { T: a.dt(dtype), Tperm: a.dt('int32') });
}

function invert(perm: number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

// ---- Det ---------------------------------------------------------------------------------------

/** Largest matrix Det expands as a sum over permutations (n! products of n terms). */
const MAX_DET_N = 5;

function permutations(n: number): Array<{ p: number[]; sign: number }> {
  if (n === 0) return [{ p: [], sign: 1 }];
  const out: Array<{ p: number[]; sign: number }> = [];
  for (const { p, sign } of permutations(n - 1)) {
    // Inserting n−1 at position i moves it past (n−1−i) elements: that many transpositions.
    for (let i = 0; i <= p.length; i++) out.push({ p: [...p.slice(0, i), n - 1, ...p.slice(i)], sign: (p.length - i) % 2 === 0 ? sign : -sign });
  }
  return out;
}

/** Determinant by LU with partial pivoting in float64 (conversion-time folding). */
function detOf(m: number[], n: number): number {
  const A = [...m];
  let det = 1;
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]!) > Math.abs(A[piv * n + c]!)) piv = r;
    if (A[piv * n + c] === 0) return 0;
    if (piv !== c) {
      for (let k = 0; k < n; k++) [A[c * n + k], A[piv * n + k]] = [A[piv * n + k]!, A[c * n + k]!];
      det = -det;
    }
    const d = A[c * n + c]!;
    det *= d;
    for (let r = c + 1; r < n; r++) {
      const f = A[r * n + c]! / d;
      for (let k = c; k < n; k++) A[r * n + k]! -= f * A[c * n + k]!;
    }
  }
  return det;
}

register('Det', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  if (r < 2) return cx.fail(ErrorCodes.MALFORMED, `Det input has rank ${r} (needs [..., M, M])`);
  const n = x.shape![r - 1]!;
  if (n < 0 || x.shape![r - 2] !== n) return cx.unsupported(`Det needs static square trailing dims, got [${x.shape!.join(',')}]`);
  if (x.dtype !== 'float32' && x.dtype !== 'float64') return cx.unsupported(`Det on ${x.dtype}`);
  const batch = x.shape!.slice(0, r - 2);
  const f = foldable(x);
  if (f && batch.every((d) => d >= 0)) {
    const v = tensorNumbers(f);
    const dets = Array.from({ length: prod(batch) }, (_, b) => detOf(v.slice(b * n * n, (b + 1) * n * n), n));
    return cx.out(0, { dtype: x.dtype, shape: batch, value: numbersTensor('', x.dtype, batch, dets) });
  }
  if (n === 0 || n > MAX_DET_N) return cx.unsupported(`Det of ${n}×${n} matrices computed at run time (1 to ${MAX_DET_N} supported)`);
  const T = { T: a.dt(x.dtype) };
  // Leibniz: det = Σ_σ sign(σ) Π_i a[i, σ(i)], gathered from the flattened matrix in one GatherV2.
  const perms = permutations(n);
  const flat = cx.add('Reshape', [cx.ref(x), cx.i32([-1, n * n])], { ...T, Tshape: a.dt('int32') });
  const idx = cx.i32(perms.flatMap(({ p }) => p.map((c, i) => i * n + c)), [perms.length, n]);
  const g = cx.add('GatherV2', [flat, idx, cx.i32([1], [])], { batch_dims: a.i(0), Tparams: a.dt(x.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
  const terms = cx.add('Prod', [g, cx.i32([2], [])], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  const signs = cx.constNode(numbersTensor('', x.dtype, [perms.length], perms.map((q) => q.sign)));
  const det = cx.add('Sum', [cx.add('Mul', [terms, signs], T), cx.i32([1], [])], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  let outShape: string;
  if (batch.every((d) => d >= 0)) outShape = cx.i32(batch);
  else {
    const s = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt('int32') });
    outShape = cx.add('StridedSlice', [s, cx.i32([0]), cx.i32([r - 2]), cx.i32([1])], {
      T: a.dt('int32'), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
    });
  }
  cx.outRef(0, cx.add('Reshape', [det, outShape], { ...T, Tshape: a.dt('int32') }), x.dtype, batch);
});

// ---- ReverseSequence ---------------------------------------------------------------------------

register('ReverseSequence', (cx) => {
  const x = cx.in(0);
  const lens = cx.in(1);
  const r = cx.rank(x);
  if (r < 2) return cx.fail(ErrorCodes.MALFORMED, `ReverseSequence input has rank ${r} (needs ≥ 2)`);
  const batchAxis = cx.int('batch_axis', 1);
  const timeAxis = cx.int('time_axis', 0);
  if (![0, 1].includes(batchAxis) || ![0, 1].includes(timeAxis) || batchAxis === timeAxis) {
    return cx.fail(ErrorCodes.MALFORMED, `ReverseSequence batch_axis ${batchAxis} / time_axis ${timeAxis} must be 0 and 1`);
  }
  // Work in [batch, time, ...]: then source time = len − 1 − t for t < len, t otherwise, per batch.
  const perm = batchAxis === 0 ? [...Array(r).keys()] : [1, 0, ...Array.from({ length: r - 2 }, (_, i) => i + 2)];
  const xt = transpose(cx, cx.ref(x), x.dtype, perm);
  const I = { T: a.dt('int32') };
  const t = expand(cx, range(cx, dimOf(cx, x, cx.ref(x), timeAxis)), 'int32', 0);
  const l = expand(cx, cast(cx, cx.ref(lens), lens.dtype, 'int32'), 'int32', 1);
  const rev = cx.add('Sub', [cx.add('Sub', [l, cx.scalar('int32', 1)], I), t], I);
  const inside = cx.add('Less', [t, l], I);
  const idx = cx.add('SelectV2', [inside, rev, cx.add('AddV2', [t, cx.add('ZerosLike', [rev], I)], I)], I);
  const y = cx.add('GatherV2', [xt, idx, cx.i32([1], [])], { batch_dims: a.i(1), Tparams: a.dt(x.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
  cx.outRef(0, transpose(cx, y, x.dtype, perm), x.dtype, x.shape);
});

// ---- TensorScatter -----------------------------------------------------------------------------

register('TensorScatter', (cx) => {
  const past = cx.in(0);
  const upd = cx.in(1);
  const w = cx.opt(2);
  const r = cx.rank(past);
  if (cx.rank(upd, 'update') !== r) return cx.fail(ErrorCodes.MALFORMED, `TensorScatter update rank ${upd.shape!.length} ≠ past_cache rank ${r}`);
  const axis = normAxis(cx.int('axis', -2), r);
  if (axis <= 0 || axis >= r) return cx.fail(ErrorCodes.MALFORMED, `TensorScatter axis ${cx.int('axis', -2)} (must not be the batch axis 0)`);
  const mode = cx.str('mode', 'linear');
  if (mode !== 'linear' && mode !== 'circular') return cx.unsupported(`TensorScatter mode '${mode}'`);
  // Work in [batch, seq, rest...]: output position p takes update[p − w[b]] where that is in range.
  const perm = [0, axis, ...[...Array(r).keys()].filter((k) => k !== 0 && k !== axis)];
  const I = { T: a.dt('int32') };
  const pt = transpose(cx, cx.ref(past), past.dtype, perm);
  const ut = transpose(cx, cx.ref(upd), upd.dtype, perm);
  const M = dimOf(cx, past, cx.ref(past), axis);
  const S = dimOf(cx, upd, cx.ref(upd), axis);
  const pos = expand(cx, range(cx, M), 'int32', 0);
  // Without write indices every batch starts at 0; the index tensor still needs its batch dim for GatherV2.
  const B = dimOf(cx, past, cx.ref(past), 0);
  const start = w
    ? expand(cx, cast(cx, cx.ref(w), w.dtype, 'int32'), 'int32', 1)
    : cx.add('Fill', [cx.add('ConcatV2', [expand(cx, B, 'int32', 0), cx.i32([1]), cx.i32([0], [])], { ...I, N: a.i(2), Tidx: a.dt('int32') }), cx.scalar('int32', 0)], { ...I, index_type: a.dt('int32') });
  let j = cx.add('Sub', [pos, start], I);
  if (mode === 'circular') j = cx.add('FloorMod', [j, M], I);
  const inRange = cx.add('LogicalAnd', [cx.add('GreaterEqual', [j, cx.scalar('int32', 0)], I), cx.add('Less', [j, S], I)]);
  const jc = cx.add('Minimum', [cx.add('Maximum', [j, cx.scalar('int32', 0)], I), cx.add('Sub', [S, cx.scalar('int32', 1)], I)], I);
  const g = cx.add('GatherV2', [ut, jc, cx.i32([1], [])], { batch_dims: a.i(1), Tparams: a.dt(upd.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
  let mask = inRange;
  for (let k = 2; k < r; k++) mask = expand(cx, mask, 'bool', -1);
  // SelectV2's condition must match in TF.js: broadcast it to the full shape first.
  const full = cx.add('BroadcastTo', [mask, cx.add('Shape', [pt], { T: a.dt(past.dtype), out_type: a.dt('int32') })], { T: a.dt('bool'), Tidx: a.dt('int32') });
  const y = cx.add('SelectV2', [full, g, pt], { T: a.dt(past.dtype) });
  cx.outRef(0, transpose(cx, y, past.dtype, invert(perm)), past.dtype, past.shape);
});

// ---- Unique ------------------------------------------------------------------------------------

/** Unique over a constant, as ONNX defines it: flattened (no axis) or slices along `axis`. */
function foldUnique(cx: Cx, t: Tensor, axis: number | undefined, sorted: boolean): void {
  const v = tensorNumbers(t);
  const shape = axis === undefined ? [v.length] : t.shape;
  const ax = axis ?? 0;
  const outer = prod(shape.slice(0, ax));
  const dim = shape[ax]!;
  const inner = prod(shape.slice(ax + 1));
  const slice = (k: number): number[] => {
    const s: number[] = [];
    for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) s.push(v[(o * dim + k) * inner + i]!);
    return s;
  };
  const slices = Array.from({ length: dim }, (_, k) => slice(k));
  const key = (s: number[]): string => s.join(',');
  const firstOf = new Map<string, number>();
  const order: number[] = [];
  slices.forEach((s, k) => {
    if (!firstOf.has(key(s))) {
      firstOf.set(key(s), order.length);
      order.push(k);
    }
  });
  if (sorted) {
    order.sort((p, q) => {
      const sp = slices[p]!;
      const sq = slices[q]!;
      for (let i = 0; i < sp.length; i++) if (sp[i] !== sq[i]) return sp[i]! - sq[i]!;
      return 0;
    });
  }
  const rank = new Map(order.map((k, u) => [key(slices[k]!), u]));
  const inverse = slices.map((s) => rank.get(key(s))!);
  const counts = order.map((_, u) => inverse.filter((i) => i === u).length);
  const K = order.length;
  const yShape = [...shape];
  yShape[ax] = K;
  const yVals: number[] = new Array<number>(prod(yShape));
  for (let o = 0; o < outer; o++) for (let u = 0; u < K; u++) for (let i = 0; i < inner; i++) yVals[(o * K + u) * inner + i] = slices[order[u]!]![o * inner + i]!;
  const consts: Array<[number, Tensor]> = [
    [0, numbersTensor('', t.dtype, yShape, yVals)],
    [1, numbersTensor('', 'int64', [K], order)],
    [2, numbersTensor('', 'int64', [dim], inverse)],
    [3, numbersTensor('', 'int64', [K], counts)],
  ];
  for (const [i, c] of consts) cx.out(i, { dtype: c.dtype, shape: c.shape, value: c });
}

/**
 * For the K slices of `y` along `axis`: how many slices are lexicographically smaller (row-major
 * order of the slice). Slice b < slice a when, at the first element where they differ, b's is
 * smaller: Σ_d [b_d < a_d]·Π_{e<d} [b_e = a_e], the product being an exclusive Cumprod.
 */
function lexRank(cx: Cx, y: string, D: DType, r: number, axis: number, k: string): string {
  const I = { T: a.dt('int32') };
  const rows = cx.add('Reshape', [transpose(cx, y, D, [axis, ...[...Array(r).keys()].filter((i) => i !== axis)]),
    cx.add('ConcatV2', [expand(cx, k, 'int32', 0), cx.i32([-1]), cx.i32([0], [])], { ...I, N: a.i(2), Tidx: a.dt('int32') })], { T: a.dt(D), Tshape: a.dt('int32') });
  const A = expand(cx, rows, D, 1);
  const B = expand(cx, rows, D, 0);
  const lt = cast(cx, cx.add('Less', [B, A], { T: a.dt(D) }), 'bool', 'int32');
  const eq = cast(cx, cx.add('Equal', [B, A], { T: a.dt(D), incompatible_shape_error: a.b(true) }), 'bool', 'int32');
  const before = cx.add('Cumprod', [eq, cx.scalar('int32', 2)], { ...I, Tidx: a.dt('int32'), exclusive: a.b(true), reverse: a.b(false) });
  const smaller = cx.add('Sum', [cx.add('Mul', [lt, before], I), cx.i32([2], [])], { ...I, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  return cx.add('Sum', [smaller, cx.i32([1], [])], { ...I, Tidx: a.dt('int32'), keep_dims: a.b(false) });
}

register('Unique', (cx) => {
  const x = cx.in(0);
  const sorted = cx.int('sorted', 1) !== 0;
  const r = cx.rank(x);
  let axis = cx.has('axis') ? normAxis(cx.int('axis', 0), r) : undefined;
  if (axis !== undefined && (axis < 0 || axis >= r)) return cx.fail(ErrorCodes.MALFORMED, `Unique axis ${cx.int('axis', 0)} out of range for rank ${r}`);
  const f = foldable(x);
  if (f) return foldUnique(cx, f, axis, sorted);
  if (axis !== undefined && r === 1) axis = undefined;
  const D = x.dtype;
  if (sorted && (D === 'bool' || D === 'string')) return cx.unsupported(`sorted Unique of ${D} values computed at run time`);
  const I = { T: a.dt('int32') };
  let u: string;
  let n: string;
  if (axis === undefined) {
    const flat = cx.add('Reshape', [cx.ref(x), cx.i32([-1])], { T: a.dt(D), Tshape: a.dt('int32') });
    u = cx.add('Unique', [flat], { T: a.dt(D), out_idx: a.dt('int32') });
    n = cx.add('Size', [flat], { T: a.dt(D), out_type: a.dt('int32') });
  } else {
    u = cx.add('UniqueV2', [cx.ref(x), cx.i32([axis])], { T: a.dt(D), Taxis: a.dt('int32'), out_idx: a.dt('int32') });
    n = dimOf(cx, x, cx.ref(x), axis);
  }
  const y = `${u}:0`;
  const inv = `${u}:1`;
  const k = axis === undefined ? cx.add('Size', [y], { T: a.dt(D), out_type: a.dt('int32') }) : dimOf(cx, { dtype: D, shape: null }, y, axis);
  // eq[u, i] = (inverse[i] == u): counts are its row sums, first occurrences its row minima of i.
  const eq = cx.add('Equal', [expand(cx, inv, 'int32', 0), expand(cx, range(cx, k), 'int32', 1)], { ...I, incompatible_shape_error: a.b(true) });
  const eqi = cast(cx, eq, 'bool', 'int32');
  const counts = cx.add('Sum', [eqi, cx.i32([1], [])], { ...I, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  const miss = cx.add('Mul', [cx.add('Sub', [cx.scalar('int32', 1), eqi], I), n], I);
  const first = cx.add('Min', [cx.add('AddV2', [expand(cx, range(cx, n), 'int32', 0), miss], I), cx.i32([1], [])], { ...I, Tidx: a.dt('int32'), keep_dims: a.b(false) });
  let outs = { y, first, inv, counts };
  if (sorted && axis !== undefined) {
    // Slices: rank each unique slice by how many others are lexicographically smaller, then gather in rank order.
    const rank = lexRank(cx, y, D, x.shape!.length, axis, k);
    const order = cx.add('ScatterNd', [expand(cx, rank, 'int32', 1), range(cx, k), expand(cx, k, 'int32', 0)], { T: a.dt('int32'), Tindices: a.dt('int32') });
    const take = (ref: string, dt: DType, ax: number): string => cx.add('GatherV2', [ref, order, cx.i32([ax], [])], { batch_dims: a.i(0), Tparams: a.dt(dt), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
    outs = { y: take(y, D, axis), first: take(first, 'int32', 0), inv: cx.add('GatherV2', [rank, inv, cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt('int32'), Tindices: a.dt('int32'), Taxis: a.dt('int32') }), counts: take(counts, 'int32', 0) };
  } else if (sorted) {
    // Rank of each unique value = how many unique values are smaller; scatter everything to its rank.
    const less = cx.add('Less', [expand(cx, y, D, 0), expand(cx, y, D, 1)], { T: a.dt(D) });
    const rank = cx.add('Sum', [cast(cx, less, 'bool', 'int32'), cx.i32([1], [])], { ...I, Tidx: a.dt('int32'), keep_dims: a.b(false) });
    const at = expand(cx, rank, 'int32', 1);
    const kv = expand(cx, k, 'int32', 0);
    const scatter = (ref: string, dt: DType): string => cx.add('ScatterNd', [at, ref, kv], { T: a.dt(dt), Tindices: a.dt('int32') });
    outs = { y: scatter(y, D), first: scatter(first, 'int32'), inv: cx.add('GatherV2', [rank, inv, cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt('int32'), Tindices: a.dt('int32'), Taxis: a.dt('int32') }), counts: scatter(counts, 'int32') };
  }
  const yShape = axis === undefined ? [-1] : x.shape!.map((d, i) => (i === axis ? -1 : d));
  cx.outRef(0, outs.y, D, yShape);
  cx.outRef(1, cast(cx, outs.first, 'int32', 'int64'), 'int64', [-1]);
  cx.outRef(2, cast(cx, outs.inv, 'int32', 'int64'), 'int64', [axis === undefined ? (x.shape!.every((d) => d >= 0) ? prod(x.shape!) : -1) : x.shape![axis]!]);
  cx.outRef(3, cast(cx, outs.counts, 'int32', 'int64'), 'int64', [-1]);
});
