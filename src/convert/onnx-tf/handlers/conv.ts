/**
 * Conv (plain, depthwise, grouped; 1-D and 2-D) and ConvTranspose (2-D, group 1) in NHWC.
 * Constant filters are re-laid out to HWIO at conversion time; computed filters get an in-graph
 * Transpose. Padding is an explicit Pad + VALID (works for every conv op and in TF.js).
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { Tensor } from '../../../core/tensor.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { transposeTensor } from '../values.js';
import { enterNhwc, leaveNhwc, outDim, padNhwc, windowAttrs, type Spatial } from './spatial.js';

const HWIO = [2, 3, 1, 0];

/** Filter [M, C/g, (kh,) kw] as a 4-D ONNX tensor (1-D kernels get kh = 1). */
function filter4d(cx: Cx, w: Val, s: Spatial): Tensor | undefined {
  if (!w.value) return undefined;
  const t = w.value;
  if (t.shape.length !== (s.oneD ? 3 : 4)) return cx.fail(ErrorCodes.MALFORMED, `weight has rank ${t.shape.length}`);
  return s.oneD ? { ...t, shape: [t.shape[0]!, t.shape[1]!, 1, t.shape[2]!] } : t;
}

/** HWIO filter as a TF tensor: pre-transposed when constant, in-graph Transpose otherwise. */
function hwioRef(cx: Cx, w: Val, s: Spatial, slice?: [number, number], reshape?: number[]): string {
  const t = filter4d(cx, w, s);
  if (t) {
    // A weight shared by several convs (tied weights) is re-laid out and stored once.
    const key = `hwio:${slice?.join('-') ?? ''}:${reshape?.join('x') ?? ''}`;
    const cached = cx.derived(w.value!, key);
    if (cached) return cached;
    let src = t;
    if (slice) {
      const per = t.data.byteLength / t.shape[0]!;
      src = { ...t, shape: [slice[1] - slice[0], ...t.shape.slice(1)], data: t.data.subarray(slice[0] * per, slice[1] * per) };
    }
    const h = transposeTensor(src, HWIO);
    if (reshape) h.shape = reshape;
    return cx.derived(w.value!, key, cx.weight(h, `${cx.node.name || cx.node.output[0]}/filter`))!;
  }
  // Computed filter: the same re-layout, done in the graph.
  const T = { T: a.dt(w.dtype) };
  let wr = cx.ref(w);
  if (s.oneD) wr = cx.add('ExpandDims', [wr, cx.i32([2], [])], { ...T, Tdim: a.dt('int32') });
  let f = cx.add('Transpose', [wr, cx.i32(HWIO)], { ...T, Tperm: a.dt('int32') });
  if (slice) {
    f = cx.add('StridedSlice', [f, cx.i32([0, 0, 0, slice[0]]), cx.i32([0, 0, 0, slice[1]]), cx.i32([1, 1, 1, 1])], {
      ...T, Index: a.dt('int32'), begin_mask: a.i(7), end_mask: a.i(7), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
    });
  }
  if (reshape) f = cx.add('Reshape', [f, cx.i32(reshape)], { ...T, Tshape: a.dt('int32') });
  return f;
}

register('Conv', (cx) => {
  const x = cx.in(0);
  const w = cx.in(1);
  const b = cx.opt(2);
  const wshape = w.shape;
  if (!wshape || wshape.length < 3) return cx.unsupported('Conv weight needs a static shape');
  const s = enterNhwc(cx, x);
  const m = wshape[0]!;
  const group = cx.int('group', 1);
  const cin = s.c >= 0 ? s.c : wshape[1]! * group;
  if (group < 1 || cin % group !== 0 || m % group !== 0) return cx.fail(ErrorCodes.MALFORMED, `group ${group} does not divide ${cin} input / ${m} output channels`);
  const ks = cx.ints('kernel_shape');
  if (ks && ks.join(',') !== wshape.slice(2).join(',')) return cx.fail(ErrorCodes.MALFORMED, `kernel_shape [${ks}] disagrees with weight shape [${wshape}]`);
  const win = windowAttrs(cx, s, ks ?? wshape.slice(2));
  const T = { T: a.dt(s.dtype) };
  const common = {
    ...T,
    strides: a.ints([1, win.strides[0], win.strides[1], 1]),
    dilations: a.ints([1, win.dilations[0], win.dilations[1], 1]),
    data_format: a.s('NHWC'),
  };
  const same = win.pads === 'SAME';
  const pads = same ? [0, 0, 0, 0] : (win.pads as number[]);
  const xin = padNhwc(cx, s, s.ref, pads);
  const attrs = { ...common, padding: a.s(same ? 'SAME' : 'VALID') };
  let y: string;
  const depthwise = group > 1 && group === cin && win.strides[0] === win.strides[1];
  if (group === 1) {
    y = cx.add('Conv2D', [xin, hwioRef(cx, w, s)], attrs, 'Conv2D');
  } else if (depthwise) {
    // [M,1,kh,kw] → HWIO [kh,kw,1,M] → [kh,kw,C,M/C]: output channel c·m+j is (c, j), same bytes.
    const f = hwioRef(cx, w, s, undefined, [win.kernel[0], win.kernel[1], cin, m / cin]);
    y = cx.add('DepthwiseConv2dNative', [xin, f], attrs, 'DepthwiseConv2dNative');
  } else {
    // TF CPU has no grouped conv: split channels, convolve each group, concatenate.
    const split = cx.add('Split', [cx.i32([3], []), xin], { ...T, num_split: a.i(group) }, 'Split');
    const parts: string[] = [];
    const mg = m / group;
    for (let g = 0; g < group; g++) {
      parts.push(cx.add('Conv2D', [`${split}:${g}`, hwioRef(cx, w, s, [g * mg, (g + 1) * mg])], attrs, 'Conv2D'));
    }
    y = cx.add('ConcatV2', [...parts, cx.i32([3], [])], { ...T, N: a.i(group), Tidx: a.dt('int32') }, 'ConcatV2');
  }
  if (b) y = cx.add('BiasAdd', [y, cx.ref(b)], { ...T, data_format: a.s('NHWC') }, 'BiasAdd');
  const oh = same ? (s.h < 0 ? -1 : Math.ceil(s.h / win.strides[0])) : outDim(s.h, win.kernel[0], win.strides[0], win.dilations[0], pads[0]!, pads[2]!);
  const ow = same ? (s.w < 0 ? -1 : Math.ceil(s.w / win.strides[1])) : outDim(s.w, win.kernel[1], win.strides[1], win.dilations[1], pads[1]!, pads[3]!);
  leaveNhwc(cx, s, y, [s.n, m, oh, ow]);
});

register('ConvTranspose', (cx) => {
  const x = cx.in(0);
  const w = cx.in(1);
  const b = cx.opt(2);
  const wshape = w.shape;
  // A computed weight is fine (hwioRef re-lays it out in the graph); its shape must be static.
  if (!wshape || wshape.length < 3 || wshape.some((d) => d < 0)) return cx.unsupported('ConvTranspose weight needs a static shape');
  const s = enterNhwc(cx, x);
  if (cx.int('group', 1) !== 1) return cx.unsupported('grouped ConvTranspose');
  if (s.h < 0 || s.w < 0) return cx.unsupported('ConvTranspose needs static spatial dims');
  const cout = wshape[1]!;
  const k = (cx.ints('kernel_shape') ?? wshape.slice(2));
  const two = (v: number[] | undefined, def: number): [number, number] => {
    const vals = v && v.length ? v : s.oneD ? [def] : [def, def];
    return s.oneD ? [def === 0 ? 0 : 1, vals[0]!] : [vals[0]!, vals[1]!];
  };
  const kk = two(k, 1);
  const st = two(cx.ints('strides'), 1);
  const dl = two(cx.ints('dilations'), 1);
  const op = two(cx.ints('output_padding'), 0);
  if (s.oneD) { op[0] = 0; }
  const full = [0, 1].map((i) => ([s.h, s.w][i]! - 1) * st[i]! + (kk[i]! - 1) * dl[i]! + 1 + op[i]!);
  let pb = [0, 0];
  let pe = [0, 0];
  const outShape = cx.ints('output_shape');
  const autoPad = cx.str('auto_pad', 'NOTSET');
  if (outShape || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const target = outShape ? (s.oneD ? [1, outShape[outShape.length - 1]!] : outShape.slice(-2)) : [s.h * st[0], s.w * st[1]];
    const total = [0, 1].map((i) => full[i]! - target[i]!);
    if (total.some((t) => t < 0)) return cx.unsupported('output_shape larger than the full transposed-conv output');
    const upper = autoPad === 'SAME_UPPER';
    pb = total.map((t) => (upper ? Math.floor(t / 2) : t - Math.floor(t / 2)));
    pe = total.map((t, i) => t - pb[i]!);
  } else if (autoPad !== 'VALID') {
    const p = cx.ints('pads') ?? [];
    if (p.length) {
      if (s.oneD) { pb = [0, p[0]!]; pe = [0, p[1]!]; } else { pb = [p[0]!, p[1]!]; pe = [p[2]!, p[3]!]; }
    }
  }
  // Filter [Cin, Cout, kh, kw] → [kh, kw, Cout, Cin], which is what (2,3,1,0) gives.
  const f = hwioRef(cx, w, s);
  const T = { T: a.dt(s.dtype) };
  const batch = cx.add('StridedSlice', [cx.add('Shape', [s.ref], { T: a.dt(s.dtype), out_type: a.dt('int32') }, 'Shape'), cx.i32([0]), cx.i32([1]), cx.i32([1])],
    { T: a.dt('int32'), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0) }, 'StridedSlice');
  const sizes = cx.add('ConcatV2', [batch, cx.i32([full[0]!, full[1]!, cout]), cx.i32([0], [])], { T: a.dt('int32'), N: a.i(2), Tidx: a.dt('int32') }, 'input_sizes');
  let y = cx.add('Conv2DBackpropInput', [sizes, f, s.ref], {
    ...T, strides: a.ints([1, st[0], st[1], 1]), dilations: a.ints([1, dl[0], dl[1], 1]), padding: a.s('VALID'), data_format: a.s('NHWC'),
  }, 'Conv2DBackpropInput');
  const oh = full[0]! - pb[0]! - pe[0]!;
  const ow = full[1]! - pb[1]! - pe[1]!;
  if (pb.some((v) => v !== 0) || pe.some((v) => v !== 0)) {
    y = cx.add('Slice', [y, cx.i32([0, pb[0]!, pb[1]!, 0]), cx.i32([-1, oh, ow, -1])], { ...T, Index: a.dt('int32') }, 'Slice');
  }
  if (b) y = cx.add('BiasAdd', [y, cx.ref(b)], { ...T, data_format: a.s('NHWC') }, 'BiasAdd');
  leaveNhwc(cx, s, y, [s.n, cout, oh, ow]);
});
