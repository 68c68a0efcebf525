/**
 * Less common spatial ops: LpPool, MaxUnpool, Col2Im, CenterCropPad, AffineGrid, GridSample,
 * DeformConv.
 * None has a TF kernel with ONNX's exact semantics, so each is an exact decomposition into ops
 * TF.js runs: index arithmetic in int32, gathers/scatters on flattened tensors, depthwise sums.
 * Shape parameters given as graph inputs (the node tests feed them at run time) are used as
 * tensors; when they are constants the static output shape is recorded as well.
 */
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { numbersTensor, tensorNumbers } from '../values.js';
import { enterNhwc, leaveNhwc, windowAttrs } from './spatial.js';

const F: DType = 'float32';
const I: DType = 'int32';

/** Small graph-building vocabulary shared with detection.ts. */
export function ops(cx: Cx) {
  const o = {
    cast: (x: string, from: DType, to: DType): string => (from === to ? x : cx.add('Cast', [x], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) })),
    /** Elementwise op on float32 tensors. */
    f: (op: string, ...xs: string[]): string => cx.add(op, xs, { T: a.dt(F) }),
    /** Elementwise op on int32 tensors. */
    i: (op: string, ...xs: string[]): string => cx.add(op, xs, { T: a.dt(I) }),
    fc: (v: number): string => cx.scalar(F, v),
    ic: (v: number): string => cx.scalar(I, v),
    fconst: (vals: number[], shape: number[]): string => cx.constNode(numbersTensor('', F, shape, vals), `${cx.node.name || cx.node.opType}/Const`),
    reshape: (x: string, dtype: DType, shape: number[] | string): string =>
      cx.add('Reshape', [x, typeof shape === 'string' ? shape : cx.i32(shape)], { T: a.dt(dtype), Tshape: a.dt(I) }),
    transpose: (x: string, dtype: DType, perm: number[]): string => cx.add('Transpose', [x, cx.i32(perm)], { T: a.dt(dtype), Tperm: a.dt(I) }),
    concat: (xs: string[], dtype: DType, axis: number): string =>
      xs.length === 1 ? xs[0]! : cx.add('ConcatV2', [...xs, cx.i32([axis], [])], { T: a.dt(dtype), N: a.i(xs.length), Tidx: a.dt(I) }),
    pack: (xs: string[], dtype: DType, axis = 0): string => cx.add('Pack', xs, { T: a.dt(dtype), N: a.i(xs.length), axis: a.i(axis) }),
    /** Element `i` of a 1-D tensor, as a scalar. */
    at: (v: string, dtype: DType, i: number): string =>
      cx.add('StridedSlice', [v, cx.i32([i]), cx.i32([i + 1]), cx.i32([1])], {
        T: a.dt(dtype), Index: a.dt(I), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
      }),
    gather: (params: string, dtype: DType, idx: string, axis: number): string =>
      cx.add('GatherV2', [params, idx, cx.i32([axis], [])], { batch_dims: a.i(0), Tparams: a.dt(dtype), Tindices: a.dt(I), Taxis: a.dt(I) }),
    range: (n: string): string => cx.add('Range', [cx.scalar(I, 0), n, cx.scalar(I, 1)], { Tidx: a.dt(I) }),
    select: (c: string, x: string, y: string, dtype: DType): string => cx.add('SelectV2', [c, x, y], { T: a.dt(dtype) }),
    and: (x: string, y: string): string => cx.add('LogicalAnd', [x, y]),
    or: (x: string, y: string): string => cx.add('LogicalOr', [x, y]),
    /** A run-time integer vector input as int32 (shape parameters). */
    ints: (v: Val): string => o.cast(cx.ref(v), v.dtype, I),
  };
  return o;
}

/** The value of a small shape-parameter input when it is a constant, else undefined (used at run time). */
function known(v: Val | undefined): number[] | undefined {
  const t = v?.value;
  if (!t || (t.dtype !== 'int64' && t.dtype !== 'int32') || t.shape.reduce((p, q) => p * q, 1) > 64) return undefined;
  return tensorNumbers(t);
}

function floatOnly(cx: Cx, v: Val, what: string): void {
  if (v.dtype !== F) cx.unsupported(`${cx.node.opType} on ${v.dtype} ${what} (float32 only)`);
}

// ---- LpPool ------------------------------------------------------------------------------------

register('LpPool', (cx) => {
  const x = cx.in(0);
  floatOnly(cx, x, 'input');
  const p = cx.int('p', 2);
  if (p < 1 || p > 64) return cx.unsupported(`LpPool p = ${p}`);
  const s = enterNhwc(cx, x);
  if (s.c < 0) return cx.unsupported('LpPool needs a static channel count');
  const win = windowAttrs(cx, s, cx.ints('kernel_shape') ?? []);
  const k = win.kernel;
  const st = win.strides;
  const dl = win.dilations;
  const span = [0, 1].map((i) => (k[i]! - 1) * dl[i]! + 1);
  let pads: number[];
  if (win.pads === 'SAME') {
    if (s.h < 0 || s.w < 0) return cx.unsupported('LpPool auto_pad SAME_UPPER needs static spatial dims');
    const total = [s.h, s.w].map((d, i) => Math.max(0, (Math.ceil(d / st[i]!) - 1) * st[i]! + span[i]! - d));
    pads = [Math.floor(total[0]! / 2), Math.floor(total[1]! / 2), total[0]! - Math.floor(total[0]! / 2), total[1]! - Math.floor(total[1]! / 2)];
  } else pads = [...win.pads];
  const out: number[] = [];
  const ceil = cx.int('ceil_mode', 0) === 1;
  for (const i of [0, 1]) {
    const size = i === 0 ? s.h : s.w;
    if (size < 0) {
      if (ceil) return cx.unsupported('LpPool ceil_mode needs static spatial dims');
      out.push(-1);
      continue;
    }
    const room = size + pads[i]! + pads[i + 2]! - span[i]!;
    if (room < 0) return cx.fail(ErrorCodes.MALFORMED, 'LpPool window larger than the padded input');
    let o = (ceil ? Math.ceil(room / st[i]!) : Math.floor(room / st[i]!)) + 1;
    if (ceil) {
      // A window may not start inside the end padding; the ceil windows read zeros past the end,
      // which add nothing to the sum of |x|^p.
      if ((o - 1) * st[i]! >= size + pads[i]!) o--;
      const extra = (o - 1) * st[i]! + span[i]! - (size + pads[i]! + pads[i + 2]!);
      if (extra > 0) pads[i + 2]! += extra;
    }
    out.push(o);
  }
  const g = ops(cx);
  let y = p === 2 ? g.f('Square', s.ref) : p === 1 ? g.f('Abs', s.ref) : g.f('Pow', g.f('Abs', s.ref), g.fc(p));
  if (pads.some((v) => v !== 0)) y = cx.add('Pad', [y, cx.i32([0, 0, pads[0]!, pads[2]!, pads[1]!, pads[3]!, 0, 0], [4, 2])], { T: a.dt(F), Tpaddings: a.dt(I) });
  // A per-channel window sum is a depthwise conv with a ones filter. TF.js cannot combine strides
  // and dilations in one conv, so dilated windows are summed at stride 1 and subsampled after.
  const split = dl.some((d) => d > 1) && st.some((v) => v > 1);
  if (k[0]! * k[1]! * s.c > 1 << 24) return cx.fail(ErrorCodes.LIMIT, `LpPool window ${k[0]}×${k[1]} over ${s.c} channels`);
  const filter = g.fconst(new Array<number>(k[0]! * k[1]! * s.c).fill(1), [k[0]!, k[1]!, s.c, 1]);
  y = cx.add('DepthwiseConv2dNative', [y, filter], {
    T: a.dt(F), strides: a.ints(split ? [1, 1, 1, 1] : [1, st[0]!, st[1]!, 1]), dilations: a.ints([1, dl[0]!, dl[1]!, 1]), padding: a.s('VALID'), data_format: a.s('NHWC'),
  });
  if (split) {
    y = cx.add('StridedSlice', [y, cx.i32([0, 0, 0, 0]), cx.i32([0, 0, 0, 0]), cx.i32([1, st[0]!, st[1]!, 1])], {
      T: a.dt(F), Index: a.dt(I), begin_mask: a.i(15), end_mask: a.i(15), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
    });
  }
  if (p === 2) y = g.f('Sqrt', y);
  else if (p !== 1) y = g.f('Pow', y, g.fc(1 / p));
  leaveNhwc(cx, s, y, [s.n, s.c, out[0]!, out[1]!]);
});

// ---- MaxUnpool ---------------------------------------------------------------------------------

register('MaxUnpool', (cx) => {
  const x = cx.in(0);
  const idx = cx.in(1);
  const r = cx.rank(x);
  if (r < 3) return cx.fail(ErrorCodes.MALFORMED, `MaxUnpool input has rank ${r}`);
  if (idx.dtype !== 'int64' && idx.dtype !== 'int32') return cx.fail(ErrorCodes.MALFORMED, `MaxUnpool indices are ${idx.dtype}`);
  if (idx.shape && (idx.shape.length !== r || idx.shape.some((d, i) => d >= 0 && x.shape![i]! >= 0 && d !== x.shape![i]))) {
    return cx.fail(ErrorCodes.MALFORMED, `MaxUnpool indices [${idx.shape}] do not match the input [${x.shape}]`);
  }
  const g = ops(cx);
  const nsp = r - 2;
  const ks = cx.ints('kernel_shape') ?? [];
  if (ks.length !== nsp) return cx.fail(ErrorCodes.MALFORMED, `kernel_shape has ${ks.length} values for ${nsp} spatial dims`);
  const st = cx.ints('strides') ?? new Array<number>(nsp).fill(1);
  const pads = cx.ints('pads') ?? new Array<number>(2 * nsp).fill(0);
  if (st.length !== nsp || pads.length !== 2 * nsp || [...ks, ...st].some((v) => !(v >= 1) || v > 1 << 20) || pads.some((v) => !(v >= 0) || v > 1 << 20)) {
    return cx.fail(ErrorCodes.MALFORMED, `MaxUnpool kernel_shape [${ks}], strides [${st}], pads [${pads}] do not describe ${nsp} spatial dims`);
  }
  const shapeIn = cx.opt(2);
  let outShape: number[] | null;
  let shapeRef: string;
  let total: string;
  const given = shapeIn ? known(shapeIn) : undefined;
  if (shapeIn && !given) {
    shapeRef = g.ints(shapeIn);
    total = g.reshape(cx.add('Prod', [shapeRef, cx.i32([0], [])], { T: a.dt(I), Tidx: a.dt(I), keep_dims: a.b(false) }), I, [1]);
    outShape = new Array<number>(r).fill(-1);
  } else {
    const xs = x.shape!;
    outShape = given ?? [xs[0]!, xs[1]!, ...xs.slice(2).map((d, i) => (d < 0 ? -1 : (d - 1) * st[i]! + ks[i]! - pads[i]! - pads[i + nsp]!))];
    if (outShape.length !== r) return cx.fail(ErrorCodes.MALFORMED, `output_shape has ${outShape.length} values for rank ${r}`);
    if (outShape.some((d) => d < 0)) return cx.unsupported('MaxUnpool needs static input dims (or an output_shape)');
    const n = outShape.reduce((p, q) => p * q, 1);
    if (n > 2 ** 31 - 1) return cx.fail(ErrorCodes.LIMIT, `MaxUnpool output of ${n} elements`);
    shapeRef = cx.i32(outShape);
    total = cx.i32([n]);
  }
  // Indices address the whole flattened output (batch and channel included, as MaxPool writes
  // them); later writes win, as in onnxruntime, which TensorScatterUpdate also does.
  const flatI = g.reshape(g.cast(cx.ref(idx), idx.dtype, I), I, [-1, 1]);
  const zeros = cx.add('Fill', [total, cx.scalar(x.dtype, 0)], { T: a.dt(x.dtype), index_type: a.dt(I) });
  const y = cx.add('TensorScatterUpdate', [zeros, flatI, g.reshape(cx.ref(x), x.dtype, [-1])], { T: a.dt(x.dtype), Tindices: a.dt(I) });
  cx.outRef(0, g.reshape(y, x.dtype, shapeRef), x.dtype, outShape);
});

// ---- Col2Im ------------------------------------------------------------------------------------

register('Col2Im', (cx) => {
  const x = cx.in(0);
  floatOnly(cx, x, 'input');
  const imageIn = cx.in(1);
  const blockIn = cx.in(2);
  const xs = x.shape;
  if (!xs || xs.length !== 3 || xs.some((d) => d < 0)) return cx.unsupported('Col2Im needs an input of static shape [N, C·∏block, L]');
  if (imageIn.shape?.[0] !== 2 || blockIn.shape?.[0] !== 2) return cx.unsupported('Col2Im with other than 2 spatial dims');
  const [n, ck, l] = xs as [number, number, number];
  if (ck * l > 1 << 24) return cx.fail(ErrorCodes.LIMIT, `Col2Im input of ${ck}×${l} columns`);
  const dl = cx.ints('dilations') ?? [1, 1];
  const st = cx.ints('strides') ?? [1, 1];
  const pads = cx.ints('pads') ?? [0, 0, 0, 0];
  if (dl.length !== 2 || st.length !== 2 || pads.length !== 4 || [...dl, ...st].some((v) => !(v >= 1) || v > 1 << 20) || pads.some((v) => !(v >= 0) || v > 1 << 20)) {
    return cx.fail(ErrorCodes.MALFORMED, `Col2Im dilations [${dl}], strides [${st}], pads [${pads}] do not describe 2 spatial dims`);
  }
  const g = ops(cx);
  const img = g.ints(imageIn);
  const blk = g.ints(blockIn);
  const H = g.at(img, I, 0);
  const W = g.at(img, I, 1);
  const bh = g.at(blk, I, 0);
  const bw = g.at(blk, I, 1);
  const kk = g.i('Mul', bh, bw);
  // Blocks per image row: (W + pads − dilated block) / stride + 1.
  const spanW = g.i('AddV2', g.i('Mul', g.i('Sub', bw, g.ic(1)), g.ic(dl[1]!)), g.ic(1));
  const ow = g.i('AddV2', g.i('FloorDiv', g.i('Sub', g.i('AddV2', W, g.ic(pads[1]! + pads[3]!)), spanW), g.ic(st[1]!)), g.ic(1));
  const j = g.reshape(g.range(g.ic(ck)), I, [ck, 1]);
  const li = g.reshape(g.range(g.ic(l)), I, [1, l]);
  const c = g.i('FloorDiv', j, kk);
  const ki = g.i('FloorMod', g.i('FloorDiv', j, bw), bh);
  const kj = g.i('FloorMod', j, bw);
  const yy = g.i('AddV2', g.i('Mul', g.i('FloorDiv', li, ow), g.ic(st[0]!)), g.i('Sub', g.i('Mul', ki, g.ic(dl[0]!)), g.ic(pads[0]!)));
  const xx = g.i('AddV2', g.i('Mul', g.i('FloorMod', li, ow), g.ic(st[1]!)), g.i('Sub', g.i('Mul', kj, g.ic(dl[1]!)), g.ic(pads[1]!)));
  const inside = (v: string, hi: string): string => g.and(cx.add('GreaterEqual', [v, g.ic(0)], { T: a.dt(I) }), cx.add('Less', [v, hi], { T: a.dt(I) }));
  const valid = g.and(inside(yy, H), inside(xx, W));
  const C = g.i('FloorDiv', g.ic(ck), kk);
  const hw = g.i('Mul', H, W);
  const chw = g.i('Mul', C, hw);
  // Padding cells go to one extra dump row, sliced off after the scatter (which sums overlaps).
  const safeTarget = g.select(valid, g.i('AddV2', g.i('Mul', c, hw), g.i('AddV2', g.i('Mul', yy, W), xx)), chw, I);
  const updates = g.reshape(g.transpose(cx.ref(x), F, [1, 2, 0]), F, [ck * l, n]);
  const summed = cx.add('ScatterNd', [g.reshape(safeTarget, I, [ck * l, 1]), updates, g.pack([g.i('AddV2', chw, g.ic(1)), g.ic(n)], I)], { T: a.dt(F), Tindices: a.dt(I) });
  const kept = cx.add('Slice', [summed, cx.i32([0, 0]), g.pack([chw, g.ic(-1)], I)], { T: a.dt(F), Index: a.dt(I) });
  const y = g.reshape(g.transpose(kept, F, [1, 0]), F, g.pack([g.ic(n), C, H, W], I));
  const im = known(imageIn);
  const bk = known(blockIn);
  cx.outRef(0, y, F, [n, bk ? ck / (bk[0]! * bk[1]!) : -1, im ? im[0]! : -1, im ? im[1]! : -1]);
});

// ---- CenterCropPad -----------------------------------------------------------------------------

register('CenterCropPad', (cx) => {
  const x = cx.in(0);
  const shapeIn = cx.in(1);
  const r = cx.rank(x);
  const axes = (cx.ints('axes') ?? [...Array(r).keys()]).map((v) => (v < 0 ? v + r : v));
  if (axes.some((v) => v < 0 || v >= r) || new Set(axes).size !== axes.length) return cx.fail(ErrorCodes.MALFORMED, `CenterCropPad axes [${cx.ints('axes')}] for rank ${r}`);
  if (shapeIn.shape?.length !== 1 || (shapeIn.shape[0]! >= 0 && shapeIn.shape[0] !== axes.length)) return cx.fail(ErrorCodes.MALFORMED, `CenterCropPad shape has ${shapeIn.shape?.[0]} values for ${axes.length} axes`);
  const g = ops(cx);
  const T = { T: a.dt(x.dtype) };
  const dims = cx.add('Shape', [cx.ref(x)], { ...T, out_type: a.dt(I) });
  const want = g.ints(shapeIn);
  // Full-rank target: the given size on the listed axes, the input's own size elsewhere.
  const parts = [...Array(r).keys()].map((i) => g.reshape(axes.includes(i) ? g.at(want, I, axes.indexOf(i)) : g.at(dims, I, i), I, [1]));
  const target = g.concat(parts, I, 0);
  const diff = g.i('Sub', dims, target);
  const crop = g.i('Maximum', diff, g.ic(0));
  const cropped = cx.add('Slice', [cx.ref(x), g.i('FloorDiv', crop, g.ic(2)), g.i('Minimum', dims, target)], { ...T, Index: a.dt(I) });
  const pad = g.i('Maximum', g.i('Neg', diff), g.ic(0));
  const before = g.i('FloorDiv', pad, g.ic(2));
  const y = cx.add('Pad', [cropped, g.pack([before, g.i('Sub', pad, before)], I, 1)], { ...T, Tpaddings: a.dt(I) });
  const k = known(shapeIn);
  cx.outRef(0, y, x.dtype, x.shape!.map((d, i) => (axes.includes(i) ? (k ? k[axes.indexOf(i)]! : -1) : d)));
});

// ---- AffineGrid --------------------------------------------------------------------------------

register('AffineGrid', (cx) => {
  const theta = cx.in(0);
  const sizeIn = cx.in(1);
  floatOnly(cx, theta, 'theta');
  const ts = theta.shape;
  if (!ts || ts.length !== 3 || (ts[1] !== 2 && ts[1] !== 3) || ts[2] !== ts[1]! + 1) return cx.unsupported('AffineGrid theta must have static shape [N, 2, 3] or [N, 3, 4]');
  const nd = ts[1]!;
  if (sizeIn.shape?.[0] !== nd + 2) return cx.fail(ErrorCodes.MALFORMED, `AffineGrid size has ${sizeIn.shape?.[0]} values for a ${nd}-D theta`);
  const align = cx.int('align_corners', 0) === 1;
  const g = ops(cx);
  const size = g.ints(sizeIn);
  // Spatial sizes in ONNX order (D,) H, W; the grid's last axis lists x, y(, z): W first.
  const sizes = [...Array(nd).keys()].map((i) => g.at(size, I, 2 + i));
  const coords = sizes.map((S) => {
    const i = g.cast(g.range(S), I, F);
    const Sf = g.cast(S, I, F);
    if (align) return g.f('Sub', g.f('RealDiv', g.f('Mul', i, g.fc(2)), g.f('Maximum', g.f('Sub', Sf, g.fc(1)), g.fc(1))), g.fc(1));
    return g.f('Sub', g.f('RealDiv', g.f('AddV2', g.f('Mul', i, g.fc(2)), g.fc(1)), Sf), g.fc(1));
  });
  const full = g.pack(sizes, I);
  const lay = (v: string, axis: number): string => {
    const shape = sizes.map((_, k) => (k === axis ? -1 : 1));
    return cx.add('BroadcastTo', [g.reshape(v, F, shape), full], { T: a.dt(F), Tidx: a.dt(I) });
  };
  const comps = [...Array(nd).keys()].reverse().map((axis) => lay(coords[axis]!, axis));
  comps.push(cx.add('Fill', [full, g.fc(1)], { T: a.dt(F), index_type: a.dt(I) }));
  // [N·nd, nd+1] @ [nd+1, points] in one plain MatMul (no batch broadcasting), then points last-but-one.
  const base = g.reshape(g.pack(comps, F, nd), F, [-1, nd + 1]);
  const flatTheta = g.reshape(cx.ref(theta), F, [-1, nd + 1]);
  const prod = cx.add('MatMul', [flatTheta, base], { T: a.dt(F), transpose_a: a.b(false), transpose_b: a.b(true) });
  const grid = g.transpose(g.reshape(prod, F, ts[0]! >= 0 ? [ts[0]!, nd, -1] : g.pack([g.at(size, I, 0), g.ic(nd), g.ic(-1)], I)), F, [0, 2, 1]);
  const outShape = g.pack([g.at(size, I, 0), ...sizes, g.ic(nd)], I);
  const k = known(sizeIn);
  cx.outRef(0, g.reshape(grid, F, outShape), F, [ts[0]!, ...(k ? k.slice(2) : new Array<number>(nd).fill(-1)), nd]);
});

// ---- GridSample --------------------------------------------------------------------------------

const CUBIC_A = -0.75;

register('GridSample', (cx) => {
  const x = cx.in(0);
  const grid = cx.in(1);
  floatOnly(cx, x, 'input');
  floatOnly(cx, grid, 'grid');
  const xs = x.shape;
  const gs = grid.shape;
  if (!xs || (xs.length !== 4 && xs.length !== 5) || !gs || gs.length !== xs.length) return cx.unsupported('GridSample other than 4-D or 5-D');
  if (xs.some((d) => d < 0) || gs.some((d) => d < 0)) return cx.unsupported('GridSample needs static input and grid shapes');
  const r = xs.length;
  const nd = r - 2;
  const [n, c] = xs as [number, number];
  /** Input spatial sizes in ONNX order (D,) H, W. */
  const sizes = xs.slice(2);
  const outDims = gs.slice(1, 1 + nd);
  if (gs[0] !== n || gs[r - 1] !== nd) return cx.fail(ErrorCodes.MALFORMED, `GridSample grid [${gs}] does not match input [${xs}]`);
  const rawMode = cx.str('mode', cx.opset >= 20 ? 'linear' : 'bilinear');
  const mode = rawMode === 'bilinear' ? 'linear' : rawMode === 'bicubic' ? 'cubic' : rawMode;
  if (mode !== 'linear' && mode !== 'nearest' && mode !== 'cubic') return cx.unsupported(`GridSample mode '${rawMode}'`);
  if (mode === 'cubic' && nd !== 2) return cx.unsupported('GridSample cubic on a 5-D input');
  const padding = cx.str('padding_mode', 'zeros');
  if (padding !== 'zeros' && padding !== 'border' && padding !== 'reflection') return cx.unsupported(`GridSample padding_mode '${padding}'`);
  const align = cx.int('align_corners', 0) === 1;
  if (padding === 'reflection' && align && sizes.includes(1)) return cx.unsupported('GridSample reflection with align_corners over a size-1 axis');
  const P = outDims.reduce((p, q) => p * q, 1);
  const inner = sizes.reduce((p, q) => p * q, 1);
  if (n * P > 1 << 22 || n * P * c > 1 << 26 || n * inner > 1 << 28) return cx.fail(ErrorCodes.LIMIT, `GridSample output of ${n}×${c}×${P}`);
  const g = ops(cx);
  const gr = g.reshape(cx.ref(grid), F, [n, P, nd]);
  // Grid component k addresses spatial axis nd−1−k (x is over W, the last axis).
  const comp = (k: number): string => g.reshape(g.gather(gr, F, cx.i32([k], []), 2), F, [n, P]);
  const denorm = (v: string, size: number): string =>
    align ? g.f('Mul', g.f('AddV2', v, g.fc(1)), g.fc((size - 1) / 2)) : g.f('RealDiv', g.f('Sub', g.f('Mul', g.f('AddV2', v, g.fc(1)), g.fc(size)), g.fc(1)), g.fc(2));
  const reflect = (v: string, mn: number, mx: number): string => {
    const range = mx - mn;
    const fold = (d: string, fromMin: boolean): string => {
      const k = g.f('Floor', g.f('RealDiv', d, g.fc(range)));
      const rem = g.f('Sub', d, g.f('Mul', k, g.fc(range)));
      const even = cx.add('Equal', [g.f('FloorMod', k, g.fc(2)), g.fc(0)], { T: a.dt(F), incompatible_shape_error: a.b(true) });
      const nearSide = fromMin ? g.f('AddV2', g.fc(mn), rem) : g.f('Sub', g.fc(mx), rem);
      const farSide = fromMin ? g.f('Sub', g.fc(mx), rem) : g.f('AddV2', g.fc(mn), rem);
      return g.select(even, nearSide, farSide, F);
    };
    const below = cx.add('Less', [v, g.fc(mn)], { T: a.dt(F) });
    const above = cx.add('Greater', [v, g.fc(mx)], { T: a.dt(F) });
    return g.select(below, fold(g.f('Sub', g.fc(mn), v), true), g.select(above, fold(g.f('Sub', v, g.fc(mx)), false), v, F), F);
  };
  /** Taps along one axis: float pixel positions and their weights. */
  const taps = (v: string): Array<{ pos: string; w: string | undefined }> => {
    if (mode === 'nearest') return [{ pos: v, w: undefined }];
    const fl = g.f('Floor', v);
    const t = g.f('Sub', v, fl);
    if (mode === 'linear') return [{ pos: fl, w: g.f('Sub', g.fc(1), t) }, { pos: g.f('AddV2', fl, g.fc(1)), w: t }];
    const A = CUBIC_A;
    const near = (d: string): string => g.f('AddV2', g.f('Mul', g.f('Mul', g.f('Sub', g.f('Mul', g.fc(A + 2), d), g.fc(A + 3)), d), d), g.fc(1));
    const far = (d: string): string => g.f('Sub', g.f('Mul', g.f('AddV2', g.f('Mul', g.f('Sub', g.f('Mul', g.fc(A), d), g.fc(5 * A)), d), g.fc(8 * A)), d), g.fc(4 * A));
    const ws = [far(g.f('AddV2', t, g.fc(1))), near(t), near(g.f('Sub', g.fc(1), t)), far(g.f('Sub', g.fc(2), t))];
    return ws.map((w, k) => ({ pos: g.f('AddV2', fl, g.fc(k - 1)), w }));
  };
  /**
   * Pixel index of one tap along an axis (int32) and the validity factor of zeros padding: each
   * tap is padded on its own, as onnxruntime does (for cubic border this differs from clamping
   * the sampling point first).
   */
  const pixel = (pos: string, size: number): { idx: string; valid?: string } => {
    const clamp = (v: string): string => g.f('Minimum', g.f('Maximum', v, g.fc(0)), g.fc(size - 1));
    if (padding === 'zeros') {
      const inside = g.and(cx.add('GreaterEqual', [pos, g.fc(0)], { T: a.dt(F) }), cx.add('LessEqual', [pos, g.fc(size - 1)], { T: a.dt(F) }));
      return { idx: g.cast(clamp(pos), F, I), valid: inside };
    }
    if (padding === 'border') return { idx: g.cast(clamp(pos), F, I) };
    // Reflection of an integer tap, truncated toward zero as onnxruntime's cast does.
    const reflected = align ? reflect(pos, 0, size - 1) : reflect(pos, -0.5, size - 0.5);
    return { idx: g.cast(clamp(reflected), F, I) };
  };
  type Tap = { idx: string; valid?: string; w: string | undefined };
  const perAxis: Tap[][] = sizes.map((size, axis) => {
    let v = denorm(comp(nd - 1 - axis), size);
    if (mode === 'nearest') v = g.f('Round', v);
    return taps(v).map((t) => ({ w: t.w, ...pixel(t.pos, size) }));
  });
  const strides = sizes.map((_, axis) => sizes.slice(axis + 1).reduce((p, q) => p * q, 1));
  // Pixels as rows of [N·∏sizes, C]; each combination of per-axis taps gathers one row per point.
  const table = g.reshape(g.transpose(cx.ref(x), F, [0, ...sizes.map((_, i) => i + 2), 1]), F, [n * inner, c]);
  const base = cx.i32(Array.from({ length: n * P }, (_, k) => Math.floor(k / P) * inner), [n, P]);
  let acc: string | undefined;
  const visit = (axis: number, chosen: Tap[]): void => {
    if (axis === nd) {
      let flat = base;
      chosen.forEach((t, i) => { flat = g.i('AddV2', flat, strides[i] === 1 ? t.idx : g.i('Mul', t.idx, g.ic(strides[i]!))); });
      let v = g.gather(table, F, flat, 0);
      // A tap outside the image reads zero (selected, not multiplied, so a non-finite border pixel
      // does not leak in as 0·inf).
      const valids = chosen.map((t) => t.valid).filter((m): m is string => m !== undefined);
      if (valids.length) {
        let m = valids[0]!;
        for (const q of valids.slice(1)) m = g.and(m, q);
        v = g.select(g.reshape(m, 'bool', [n, P, 1]), v, g.fc(0), F);
      }
      const ws = chosen.map((t) => t.w).filter((w): w is string => w !== undefined);
      if (ws.length) {
        let w = ws[0]!;
        for (const m of ws.slice(1)) w = g.f('Mul', w, m);
        v = g.f('Mul', v, g.reshape(w, F, [n, P, 1]));
      }
      acc = acc ? g.f('AddV2', acc, v) : v;
      return;
    }
    for (const t of perAxis[axis]!) visit(axis + 1, [...chosen, t]);
  };
  visit(0, []);
  const y = g.transpose(g.reshape(acc!, F, [n, ...outDims, c]), F, [0, r - 1, ...outDims.map((_, i) => i + 1)]);
  cx.outRef(0, y, F, [n, c, ...outDims]);
});

// ---- DeformConv --------------------------------------------------------------------------------

register('DeformConv', (cx) => {
  const x = cx.in(0);
  const w = cx.in(1);
  const offset = cx.in(2);
  const bias = cx.opt(3);
  const mask = cx.opt(4);
  for (const [v, what] of [[x, 'input'], [w, 'weight'], [offset, 'offset']] as const) floatOnly(cx, v, what);
  const xs = x.shape;
  const ws = w.shape;
  if (!xs || xs.length !== 4 || xs.some((d) => d < 0)) return cx.unsupported('DeformConv needs a 4-D input of static shape (2-D only)');
  if (!ws || ws.length !== 4 || ws.some((d) => d < 0)) return cx.unsupported('DeformConv needs a weight of static shape');
  const [n, c, H, W] = xs as [number, number, number, number];
  const [m, ci, kh, kw] = ws as [number, number, number, number];
  const ks = cx.ints('kernel_shape');
  if (ks && ks.join(',') !== `${kh},${kw}`) return cx.fail(ErrorCodes.MALFORMED, `kernel_shape [${ks}] disagrees with weight shape [${ws}]`);
  const group = cx.int('group', 1);
  const og = cx.int('offset_group', 1);
  if (group < 1 || c % group !== 0 || m % group !== 0 || ci !== c / group) return cx.fail(ErrorCodes.MALFORMED, `group ${group} does not fit ${c} input / ${m} output channels and weight [${ws}]`);
  if (og < 1 || c % og !== 0) return cx.fail(ErrorCodes.MALFORMED, `offset_group ${og} does not divide ${c} channels`);
  const st = cx.ints('strides') ?? [1, 1];
  const dl = cx.ints('dilations') ?? [1, 1];
  const pads = cx.ints('pads') ?? [0, 0, 0, 0];
  if (st.length !== 2 || dl.length !== 2 || pads.length !== 4 || [...st, ...dl].some((v) => v < 1) || pads.some((v) => v < 0)) return cx.fail(ErrorCodes.MALFORMED, 'DeformConv strides/dilations/pads do not describe 2 spatial dims');
  const oh = Math.floor((H + pads[0]! + pads[2]! - ((kh - 1) * dl[0]! + 1)) / st[0]!) + 1;
  const ow = Math.floor((W + pads[1]! + pads[3]! - ((kw - 1) * dl[1]! + 1)) / st[1]!) + 1;
  if (oh < 1 || ow < 1) return cx.fail(ErrorCodes.MALFORMED, 'DeformConv kernel larger than the padded input');
  const kk = kh * kw;
  const P = oh * ow;
  const cg = c / og;
  if (n * og * kk * P * cg * 4 > 1 << 26) return cx.fail(ErrorCodes.LIMIT, `DeformConv sampling ${n}×${c}×${kk}×${P} values`);
  const os = offset.shape;
  if (os && os.length === 4 && os.every((d) => d >= 0) && os.join(',') !== `${n},${og * 2 * kk},${oh},${ow}`) return cx.fail(ErrorCodes.MALFORMED, `DeformConv offset shape [${os}], expected [${n},${og * 2 * kk},${oh},${ow}]`);
  const g = ops(cx);
  // Undeformed sampling positions per (tap, output cell), then shifted by the offsets:
  // offset channel 2·k is the y shift of tap k, 2·k+1 its x shift.
  const baseY: number[] = [];
  const baseX: number[] = [];
  for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let p = 0; p < P; p++) {
    baseY.push(Math.floor(p / ow) * st[0]! - pads[0]! + i * dl[0]!);
    baseX.push((p % ow) * st[1]! - pads[1]! + j * dl[1]!);
  }
  const off = g.reshape(cx.ref(offset), F, [n, og, kk, 2, P]);
  const part = (k: number): string => g.reshape(g.gather(off, F, cx.i32([k], []), 3), F, [n, og, kk, P]);
  const py = g.f('AddV2', g.fconst(baseY, [1, 1, kk, P]), part(0));
  const px = g.f('AddV2', g.fconst(baseX, [1, 1, kk, P]), part(1));
  // Pixels as rows of [N·G·H·W, C/G]; bilinear corners outside the image read zero.
  const table = g.reshape(g.transpose(g.reshape(cx.ref(x), F, [n, og, cg, H * W]), F, [0, 1, 3, 2]), F, [n * og * H * W, cg]);
  const base = cx.i32(Array.from({ length: n * og }, (_, k) => k * H * W), [n, og, 1, 1]);
  const y0 = g.f('Floor', py);
  const x0 = g.f('Floor', px);
  const fy = g.f('Sub', py, y0);
  const fx = g.f('Sub', px, x0);
  const corner = (pos: string, size: number): { idx: string; valid: string } => {
    const inside = g.and(cx.add('GreaterEqual', [pos, g.fc(0)], { T: a.dt(F) }), cx.add('LessEqual', [pos, g.fc(size - 1)], { T: a.dt(F) }));
    return { idx: g.cast(g.f('Minimum', g.f('Maximum', pos, g.fc(0)), g.fc(size - 1)), F, I), valid: inside };
  };
  const ys = [{ ...corner(y0, H), w: g.f('Sub', g.fc(1), fy) }, { ...corner(g.f('AddV2', y0, g.fc(1)), H), w: fy }];
  const xs2 = [{ ...corner(x0, W), w: g.f('Sub', g.fc(1), fx) }, { ...corner(g.f('AddV2', x0, g.fc(1)), W), w: fx }];
  let acc: string | undefined;
  for (const b of ys) {
    for (const e of xs2) {
      const flat = g.i('AddV2', base, g.i('AddV2', g.i('Mul', b.idx, g.ic(W)), e.idx));
      const expand = (t: string, dtype: DType): string => cx.add('ExpandDims', [t, g.ic(-1)], { T: a.dt(dtype), Tdim: a.dt(I) });
      // Corners outside the image read zero (selected, so a non-finite edge pixel stays out).
      const read = g.select(expand(g.and(b.valid, e.valid), 'bool'), g.gather(table, F, flat, 0), g.fc(0), F);
      const v = g.f('Mul', read, expand(g.f('Mul', b.w, e.w), F));
      acc = acc ? g.f('AddV2', acc, v) : v;
    }
  }
  // acc: [N, G, kk, P, C/G].
  if (mask) {
    floatOnly(cx, mask, 'mask');
    acc = g.f('Mul', acc!, g.reshape(cx.ref(mask), F, [n, og, kk, P, 1]));
  }
  // Columns [N, group, C/group·kk, P] against filters [group, M/group, C/group·kk].
  // Equal batch dims (TF.js mis-broadcasts some batch shapes): [group, K, N·P] columns.
  const cols = g.reshape(g.transpose(g.reshape(g.transpose(acc!, F, [0, 1, 4, 2, 3]), F, [n, group, ci * kk, P]), F, [1, 2, 0, 3]), F, [group, ci * kk, n * P]);
  const filt = g.reshape(cx.ref(w), F, [group, m / group, ci * kk]);
  const prod = cx.add('BatchMatMulV2', [filt, cols], { T: a.dt(F), adj_x: a.b(false), adj_y: a.b(false) });
  let y = g.reshape(g.transpose(g.reshape(prod, F, [group, m / group, n, P]), F, [2, 0, 1, 3]), F, [n, m, oh, ow]);
  if (bias) y = g.f('AddV2', y, g.reshape(cx.ref(bias), F, [1, m, 1, 1]));
  cx.outRef(0, y, F, [n, m, oh, ow]);
});
