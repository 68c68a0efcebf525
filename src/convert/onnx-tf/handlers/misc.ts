/**
 * Less common ops with direct TF counterparts or short composites: CumSum/CumProd, Range, EyeLike, OneHot,
 * Hardmax, Trilu, NonZero, Einsum, DepthToSpace/SpaceToDepth, LRN, and the normalisations built from
 * reductions (LpNormalization, MeanVarianceNormalization, RMSNormalization).
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { MAX_FOLD_ELEMENTS, normAxis, numbersTensor, tensorNumbers } from '../values.js';
import { enterNhwc, leaveNhwc } from './spatial.js';

/** Largest conversion-time mask (EyeLike, Trilu) built as a Const: 16 Mi elements. */
const MAX_MASK = 1 << 24;

for (const [onnxOp, tfOp] of [['CumSum', 'Cumsum'], ['CumProd', 'Cumprod']] as const) {
  register(onnxOp, (cx) => {
    const x = cx.in(0);
    const ax = cx.in(1);
    // A run-time axis is passed through as TF's axis tensor (a scalar; ONNX allows shape [1] too).
    const axisRef = ax.value ? cx.i32([cx.constNums(ax, `${onnxOp} axis`)[0] ?? 0], []) : cx.add('Reshape', [cx.ref(ax), cx.i32([], [0])], { T: a.dt(ax.dtype), Tshape: a.dt('int32') });
    const y = cx.add(tfOp, [cx.ref(x), axisRef], {
      T: a.dt(x.dtype), Tidx: a.dt(ax.value ? 'int32' : ax.dtype), exclusive: a.b(cx.int('exclusive', 0) === 1), reverse: a.b(cx.int('reverse', 0) === 1),
    });
    cx.outRef(0, y, x.dtype, x.shape);
  });
}

register('Range', (cx) => {
  const [s, l, d] = [0, 1, 2].map((i) => cx.in(i));
  if (s!.value && l!.value && d!.value) {
    const [start, limit, delta] = [s!, l!, d!].map((v) => tensorNumbers(v.value!)[0]!);
    if (delta === 0) return cx.fail(ErrorCodes.MALFORMED, 'Range delta 0');
    const n = Math.max(0, Math.ceil((limit! - start!) / delta!));
    if (n <= MAX_FOLD_ELEMENTS) {
      cx.out(0, { dtype: s!.dtype, shape: [n], value: numbersTensor('', s!.dtype, [n], Array.from({ length: n }, (_, i) => start! + i * delta!)) });
      return;
    }
  }
  cx.outRef(0, cx.add('Range', [cx.ref(s!), cx.ref(l!), cx.ref(d!)], { Tidx: a.dt(s!.dtype) }), s!.dtype, [-1]);
});

register('EyeLike', (cx) => {
  const x = cx.in(0);
  const s = x.shape;
  if (!s || s.length !== 2 || s.some((d) => d < 0)) return cx.unsupported('EyeLike needs a static 2-D shape');
  if (s[0]! * s[1]! > MAX_MASK) return cx.unsupported(`EyeLike of ${s[0]}×${s[1]} elements`);
  const k = cx.int('k', 0);
  const dtype = cx.has('dtype') ? (cx.int('dtype', 1) === 7 ? 'int64' : cx.int('dtype', 1) === 6 ? 'int32' : 'float32') : x.dtype;
  const vals: number[] = [];
  for (let i = 0; i < s[0]!; i++) for (let j = 0; j < s[1]!; j++) vals.push(j - i === k ? 1 : 0);
  const t = numbersTensor('', dtype, s, vals);
  cx.outRef(0, cx.constNode(t), dtype, s);
});

register('OneHot', (cx) => {
  const idx = cx.in(0);
  const dv = cx.in(1);
  const depth = dv.value ? cx.constNums(dv, 'OneHot depth')[0]! : -1;
  const vals = cx.in(2);
  const r = cx.rank(idx);
  const axis = normAxis(cx.int('axis', -1), r + 1);
  const I = { T: a.dt(idx.dtype) };
  // Negative indices count from the end in ONNX.
  const neg = cx.add('Cast', [cx.add('Less', [cx.ref(idx), cx.scalar(idx.dtype, 0)], I)], { SrcT: a.dt('bool'), DstT: a.dt(idx.dtype), Truncate: a.b(false) });
  // A run-time depth (any numeric type, scalar or [1]) becomes TF's int32 scalar depth.
  const depthCast = (): string => (dv.dtype === 'int32' ? cx.ref(dv) : cx.add('Cast', [cx.ref(dv)], { SrcT: a.dt(dv.dtype), DstT: a.dt('int32'), Truncate: a.b(false) }));
  const depthI32 = depth >= 0 ? cx.i32([depth], []) : cx.add('Reshape', [depthCast(), cx.i32([], [0])], { T: a.dt('int32'), Tshape: a.dt('int32') });
  const depthIdx = depth >= 0 ? cx.scalar(idx.dtype, depth) : idx.dtype === 'int32' ? depthI32 : cx.add('Cast', [depthI32], { SrcT: a.dt('int32'), DstT: a.dt(idx.dtype), Truncate: a.b(false) });
  let i = cx.add('AddV2', [cx.ref(idx), cx.add('Mul', [neg, depthIdx], I)], I);
  if (idx.dtype !== 'int32' && idx.dtype !== 'int64') i = cx.add('Cast', [i], { SrcT: a.dt(idx.dtype), DstT: a.dt('int64'), Truncate: a.b(false) });
  const V = { T: a.dt(vals.dtype) };
  const off = cx.add('GatherV2', [cx.ref(vals), cx.i32([0], []), cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(vals.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
  const on = cx.add('GatherV2', [cx.ref(vals), cx.i32([1], []), cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(vals.dtype), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
  const y = cx.add('OneHot', [i, depthI32, on, off], { ...V, TI: a.dt(idx.dtype === 'int32' ? 'int32' : 'int64'), axis: a.i(axis) });
  const shape = [...idx.shape!];
  shape.splice(axis, 0, depth >= 0 ? depth : -1);
  cx.outRef(0, y, vals.dtype, shape);
});

register('Hardmax', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axis = normAxis(cx.int('axis', cx.opset >= 13 ? -1 : 1), r);
  if (cx.opset < 13 && axis !== r - 1) return cx.unsupported('opset < 13 Hardmax on an axis other than the last');
  const dim = x.shape![axis]!;
  if (dim < 0) return cx.unsupported('Hardmax needs a static dim on its axis');
  const am = cx.add('ArgMax', [cx.ref(x), cx.i32([axis], [])], { T: a.dt(x.dtype), Tidx: a.dt('int32'), output_type: a.dt('int32') });
  const y = cx.add('OneHot', [am, cx.i32([dim], []), cx.scalar(x.dtype, 1), cx.scalar(x.dtype, 0)], { T: a.dt(x.dtype), TI: a.dt('int32'), axis: a.i(axis) });
  cx.outRef(0, y, x.dtype, x.shape);
});

register('Trilu', (cx) => {
  const x = cx.in(0);
  const s = x.shape;
  if (!s || s.length < 2 || s.slice(-2).some((d) => d < 0)) return cx.unsupported('Trilu needs static last two dims');
  const kv = cx.opt(1);
  const upper = cx.int('upper', 1) === 1;
  const [h, w] = [s[s.length - 2]!, s[s.length - 1]!];
  if (h * w > MAX_MASK) return cx.unsupported(`Trilu mask of ${h}×${w} elements`);
  let mask: string;
  if (!kv || kv.value) {
    const k = kv ? cx.constNums(kv, 'Trilu k')[0]! : 0;
    const m: number[] = [];
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) m.push(upper ? Number(j - i >= k) : Number(j - i <= k));
    mask = cx.constNode(numbersTensor('', 'bool', [h, w], m));
  } else {
    // Run-time k: the diagonal offsets j − i come from two Ranges (no [h, w] constant), compared with k.
    const I = { T: a.dt('int32') };
    const range = (n: number, shape: number[]): string => cx.add('Reshape', [cx.add('Range', [cx.scalar('int32', 0), cx.scalar('int32', n), cx.scalar('int32', 1)], { Tidx: a.dt('int32') }), cx.i32(shape)], { ...I, Tshape: a.dt('int32') });
    const diag = cx.add('Sub', [range(w, [1, w]), range(h, [h, 1])], I);
    // k beyond ±(h + w) selects all or nothing; clamping first keeps an int64 k from wrapping in int32.
    const K = { T: a.dt(kv.dtype) };
    const kClamped = cx.add('Minimum', [cx.add('Maximum', [cx.ref(kv), cx.scalar(kv.dtype, -(h + w))], K), cx.scalar(kv.dtype, h + w)], K);
    const kI = kv.dtype === 'int32' ? kClamped : cx.add('Cast', [kClamped], { SrcT: a.dt(kv.dtype), DstT: a.dt('int32'), Truncate: a.b(false) });
    const kRef = cx.add('Reshape', [kI, cx.i32([], [0])], { ...I, Tshape: a.dt('int32') });
    mask = cx.add(upper ? 'GreaterEqual' : 'LessEqual', [diag, kRef], I);
  }
  const y = cx.add('SelectV2', [mask, cx.ref(x), cx.add('ZerosLike', [cx.ref(x)], { T: a.dt(x.dtype) })], { T: a.dt(x.dtype) });
  cx.outRef(0, y, x.dtype, s);
});

register('NonZero', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  // TF Where(x) lists coordinates as rows [n, r]; ONNX wants them as columns [r, n].
  const w = cx.add('Where', [cx.ref(x)], { T: a.dt(x.dtype) });
  cx.outRef(0, cx.add('Transpose', [w, cx.i32([1, 0])], { T: a.dt('int64'), Tperm: a.dt('int32') }), 'int64', [r, -1]);
});

register('Einsum', (cx) => {
  const ins = cx.node.input.map((_, i) => cx.in(i));
  const eq = cx.str('equation', '').replace(/\s/g, '');
  const y = cx.add('Einsum', ins.map((v) => cx.ref(v)), { T: a.dt(ins[0]!.dtype), N: a.i(ins.length), equation: a.s(eq) });
  cx.outRef(0, y, ins[0]!.dtype, null);
});

for (const op of ['DepthToSpace', 'SpaceToDepth'] as const) {
  register(op, (cx) => {
    const x = cx.in(0);
    if (cx.rank(x) !== 4) return cx.unsupported(`${op} of a tensor that is not 4-D`);
    const b = cx.int('blocksize', 0);
    if (b < 1) return cx.fail(ErrorCodes.MALFORMED, 'blocksize must be ≥ 1');
    const [n, c, h, w] = x.shape!;
    const outShape = op === 'DepthToSpace' ? [n!, c! < 0 ? -1 : c! / (b * b), h! < 0 ? -1 : h! * b, w! < 0 ? -1 : w! * b] : [n!, c! < 0 ? -1 : c! * b * b, h! < 0 ? -1 : h! / b, w! < 0 ? -1 : w! / b];
    if (op === 'DepthToSpace' && cx.str('mode', 'DCR') === 'CRD') {
      // CRD orders channels (c, bh, bw); TF's DepthToSpace is DCR: regroup in ONNX layout instead.
      if ([c, h, w].some((d) => d! < 0)) return cx.unsupported('CRD DepthToSpace needs static C, H, W');
      const T = { T: a.dt(x.dtype) };
      const r1 = cx.add('Reshape', [cx.ref(x), cx.i32([-1, c! / (b * b), b, b, h!, w!])], { ...T, Tshape: a.dt('int32') });
      const t = cx.add('Transpose', [r1, cx.i32([0, 1, 4, 2, 5, 3])], { ...T, Tperm: a.dt('int32') });
      return cx.outRef(0, cx.add('Reshape', [t, cx.i32([-1, outShape[1]!, outShape[2]!, outShape[3]!])], { ...T, Tshape: a.dt('int32') }), x.dtype, outShape);
    }
    if (op === 'SpaceToDepth') {
      // TF.js has no SpaceToDepth kernel; the same permutation as reshape → transpose → reshape
      // (in ONNX layout: [N, C, H/b, b, W/b, b] → [N, b, b, C, H/b, W/b]) runs everywhere.
      if ([c, h, w].some((d) => d! < 0)) return cx.unsupported('SpaceToDepth needs static C, H, W');
      if (h! % b !== 0 || w! % b !== 0) return cx.fail(ErrorCodes.MALFORMED, `SpaceToDepth blocksize ${b} does not divide H ${h} and W ${w}`);
      const T = { T: a.dt(x.dtype) };
      const r1 = cx.add('Reshape', [cx.ref(x), cx.i32([-1, c!, h! / b, b, w! / b, b])], { ...T, Tshape: a.dt('int32') });
      const t = cx.add('Transpose', [r1, cx.i32([0, 3, 5, 1, 2, 4])], { ...T, Tperm: a.dt('int32') });
      return cx.outRef(0, cx.add('Reshape', [t, cx.i32([-1, outShape[1]!, outShape[2]!, outShape[3]!])], { ...T, Tshape: a.dt('int32') }), x.dtype, outShape);
    }
    const s = enterNhwc(cx, x);
    leaveNhwc(cx, s, cx.add(op, [s.ref], { T: a.dt(x.dtype), block_size: a.i(b), data_format: a.s('NHWC') }, op), outShape);
  });
}

register('LRN', (cx) => {
  const x = cx.in(0);
  const size = cx.int('size', 0);
  if (size < 1 || size % 2 === 0) return cx.unsupported(`LRN size ${size} (only odd sizes map exactly)`);
  const s = enterNhwc(cx, x);
  // TF sums over depth_radius each side and does not divide alpha by the window size.
  const y = cx.add('LRN', [s.ref], {
    T: a.dt(x.dtype), depth_radius: a.i((size - 1) / 2), bias: a.f(cx.float('bias', 1)), alpha: a.f(cx.float('alpha', 1e-4) / size), beta: a.f(cx.float('beta', 0.75)),
  }, 'LRN');
  leaveNhwc(cx, s, y, x.shape!);
});

function reduceKeep(cx: Cx, op: string, x: string, dtype: Parameters<typeof a.dt>[0], axes: number[]): string {
  return cx.add(op, [x, cx.i32(axes)], { T: a.dt(dtype), Tidx: a.dt('int32'), keep_dims: a.b(true) });
}

register('LpNormalization', (cx) => {
  const x = cx.in(0);
  const axis = normAxis(cx.int('axis', -1), cx.rank(x));
  const p = cx.int('p', 2);
  const T = { T: a.dt(x.dtype) };
  let norm: string;
  if (p === 1) norm = reduceKeep(cx, 'Sum', cx.add('Abs', [cx.ref(x)], T), x.dtype, [axis]);
  else if (p === 2) norm = cx.add('Sqrt', [reduceKeep(cx, 'Sum', cx.add('Square', [cx.ref(x)], T), x.dtype, [axis])], T);
  else return cx.fail(ErrorCodes.MALFORMED, `LpNormalization p=${p} (ONNX allows 1 or 2)`);
  cx.outRef(0, cx.add('RealDiv', [cx.ref(x), norm], T), x.dtype, x.shape);
});

register('MeanVarianceNormalization', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axes = (cx.ints('axes') ?? [0, 2, 3]).map((v) => normAxis(v, r));
  const T = { T: a.dt(x.dtype) };
  const mean = reduceKeep(cx, 'Mean', cx.ref(x), x.dtype, axes);
  const variance = cx.add('Sub', [reduceKeep(cx, 'Mean', cx.add('Square', [cx.ref(x)], T), x.dtype, axes), cx.add('Square', [mean], T)], T);
  const y = cx.add('RealDiv', [cx.add('Sub', [cx.ref(x), mean], T), cx.add('AddV2', [cx.add('Sqrt', [variance], T), cx.scalar(x.dtype, 1e-9)], T)], T);
  cx.outRef(0, y, x.dtype, x.shape);
});

register('RMSNormalization', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axis = normAxis(cx.int('axis', -1), r);
  const T = { T: a.dt(x.dtype) };
  const ms = reduceKeep(cx, 'Mean', cx.add('Square', [cx.ref(x)], T), x.dtype, [...Array(r).keys()].slice(axis));
  const inv = cx.add('Rsqrt', [cx.add('AddV2', [ms, cx.scalar(x.dtype, cx.float('epsilon', 1e-5))], T)], T);
  cx.outRef(0, cx.add('Mul', [cx.add('Mul', [cx.ref(x), inv], T), cx.ref(cx.in(1))], T), x.dtype, x.shape);
});
