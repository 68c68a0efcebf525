/**
 * MaxPool / AveragePool (explicit pads, ceil_mode, count_include_pad) and the rank-4 global pools,
 * all in NHWC. Explicit padding is a Pad/PadV2 + VALID pool because TF.js mis-handles EXPLICIT
 * MaxPool and AvgPool has no EXPLICIT at all.
 */
import type { Cx } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { numbersTensor } from '../values.js';
import { enterNhwc, leaveNhwc, outDim, padNhwc, windowAttrs, type Spatial, type Window } from './spatial.js';

interface Plan {
  /** [top, left, bottom, right] incl. the extra end padding ceil_mode needs. */
  pads: number[];
  out: [number, number];
}

function plan(cx: Cx, s: Spatial, win: Window): Plan {
  if (win.pads === 'SAME') return { pads: [0, 0, 0, 0], out: [s.h < 0 ? -1 : Math.ceil(s.h / win.strides[0]), s.w < 0 ? -1 : Math.ceil(s.w / win.strides[1])] };
  const p = [...win.pads];
  const ceil = cx.int('ceil_mode', 0) === 1;
  const out: [number, number] = [0, 0];
  for (const i of [0, 1]) {
    const size = i === 0 ? s.h : s.w;
    const k = win.kernel[i]!;
    const st = win.strides[i]!;
    let o = outDim(size, k, st, 1, p[i]!, p[i + 2]!, ceil);
    if (ceil && size >= 0) {
      if (size < 0) return cx.unsupported('ceil_mode needs static spatial dims');
      // A window may not start inside the end padding (ONNX and PyTorch agree).
      if ((o - 1) * st >= size + p[i]!) o--;
      const extra = (o - 1) * st + k - (size + p[i]! + p[i + 2]!);
      if (extra > 0) p[i + 2]! += extra;
    } else if (ceil) {
      cx.unsupported('ceil_mode needs static spatial dims');
    }
    out[i] = o;
  }
  return { pads: p, out };
}

/** Ops whose output is never negative (NaN aside). */
const NON_NEGATIVE = new Set(['Relu', 'Relu6', 'Sigmoid', 'Softplus', 'Abs', 'Exp', 'Sqrt', 'Square']);
/** Ops that only move or copy values, so the sign of their input carries over. */
const VALUE_PRESERVING = new Set(['Transpose', 'Identity', 'Reshape', 'ExpandDims', 'Squeeze']);

/** Whether the TF tensor `ref` is known to hold no negative values (walks back a few layout ops). */
function nonNegative(cx: Cx, ref: string): boolean {
  let name = ref;
  for (let depth = 0; depth < 8; depth++) {
    if (name.includes(':') && !name.endsWith(':0')) return false;
    const base = name.replace(/:0$/, '');
    const n = cx.nodes.find((m) => m.name === base);
    if (!n) return false;
    if (NON_NEGATIVE.has(n.op)) return true;
    if (!VALUE_PRESERVING.has(n.op) || n.input[0] === undefined) return false;
    name = n.input[0];
  }
  return false;
}

function poolAttrs(cx: Cx, s: Spatial, win: Window) {
  return {
    T: a.dt(s.dtype),
    ksize: a.ints([1, win.kernel[0], win.kernel[1], 1]),
    strides: a.ints([1, win.strides[0], win.strides[1], 1]),
    padding: a.s(win.pads === 'SAME' ? 'SAME' : 'VALID'),
    data_format: a.s('NHWC'),
  };
}

register('MaxPool', (cx) => {
  if (cx.node.output[1]) return cx.unsupported('MaxPool Indices output');
  const s = enterNhwc(cx, cx.in(0));
  const win = windowAttrs(cx, s, cx.ints('kernel_shape') ?? []);
  if (win.dilations.some((d) => d !== 1)) return cx.unsupported('MaxPool dilations > 1');
  const pl = plan(cx, s, win);
  // Zero padding equals lowest-value padding when the input cannot be negative (a window always
  // holds at least one real cell): the common Relu → MaxPool then needs a plain Pad, which every
  // TF consumer imports (OpenCV's TF importer has no PadV2).
  const lowest = nonNegative(cx, s.ref) ? 0 : s.dtype === 'float32' || s.dtype === 'float64' || s.dtype === 'float16' ? -Infinity : s.dtype === 'uint8' ? 0 : s.dtype === 'int8' ? -128 : -2147483648;
  const x = padNhwc(cx, s, s.ref, pl.pads, lowest);
  leaveNhwc(cx, s, cx.add('MaxPool', [x], poolAttrs(cx, s, win), 'MaxPool'), [s.n, s.c, ...pl.out]);
});

register('AveragePool', (cx) => {
  const s = enterNhwc(cx, cx.in(0));
  const win = windowAttrs(cx, s, cx.ints('kernel_shape') ?? []);
  if (win.dilations.some((d) => d !== 1)) return cx.unsupported('AveragePool dilations > 1');
  const pl = plan(cx, s, win);
  const includePad = cx.int('count_include_pad', 0) === 1;
  const attrs = poolAttrs(cx, s, win);
  if (win.pads === 'SAME' && !includePad) {
    // TF SAME already divides by the in-image count.
    return leaveNhwc(cx, s, cx.add('AvgPool', [s.ref], attrs, 'AvgPool'), [s.n, s.c, ...pl.out]);
  }
  if (win.pads === 'SAME') return cx.unsupported('AveragePool SAME_UPPER with count_include_pad=1');
  let y = cx.add('AvgPool', [padNhwc(cx, s, s.ref, pl.pads)], attrs, 'AvgPool');
  const orig = win.pads as number[];
  if (pl.pads.some((p) => p !== 0)) {
    // The VALID pool divided by k_h·k_w; ONNX divides by the cells inside the input (or inside the
    // declared pads with count_include_pad, never the ceil_mode extra): rescale per output cell.
    if (s.h < 0 || s.w < 0) return cx.unsupported('padded AveragePool needs static spatial dims');
    const [oh, ow] = pl.out;
    if (oh * ow > 1 << 24) return cx.unsupported(`padded AveragePool with a ${oh}×${ow} output`);
    const lim = (i: 0 | 1): [number, number] => (includePad ? [-orig[i]!, (i === 0 ? s.h : s.w) + orig[i + 2]!] : [0, i === 0 ? s.h : s.w]);
    const [h0, h1] = lim(0);
    const [w0, w1] = lim(1);
    const kk = win.kernel[0] * win.kernel[1];
    const f: number[] = [];
    let trivial = true;
    for (let i = 0; i < oh; i++) {
      const ys = i * win.strides[0] - orig[0]!;
      const ch = Math.min(ys + win.kernel[0], h1) - Math.max(ys, h0);
      for (let j = 0; j < ow; j++) {
        const xs = j * win.strides[1] - orig[1]!;
        const cw = Math.min(xs + win.kernel[1], w1) - Math.max(xs, w0);
        const v = kk / Math.max(1, ch * cw);
        if (v !== 1) trivial = false;
        f.push(v);
      }
    }
    if (!trivial) y = cx.add('Mul', [y, cx.constNode(numbersTensor('', s.dtype, [1, oh, ow, 1], f), `${cx.node.name || 'AveragePool'}/divisor`)], { T: a.dt(s.dtype) }, 'Mul');
  }
  leaveNhwc(cx, s, y, [s.n, s.c, ...pl.out]);
});

for (const [onnx, tf] of [['GlobalAveragePool', 'Mean'], ['GlobalMaxPool', 'Max']] as const) {
  register(onnx, (cx) => {
    const x = cx.in(0);
    const r = cx.rank(x);
    const T = { T: a.dt(x.dtype), Tidx: a.dt('int32'), keep_dims: a.b(true) };
    if (r === 4) {
      // Reduced in NHWC like the other spatial ops, so the layout transposes around it cancel
      // against the neighbouring convs' (and importers that expect TF's NHWC, e.g. OpenCV, see
      // the global pooling over [1, 2] they know).
      const s = enterNhwc(cx, x);
      const y = cx.add(tf, [s.ref, cx.i32([1, 2])], T);
      return leaveNhwc(cx, s, y, [s.n, s.c, 1, 1]);
    }
    const axes = [...Array(r).keys()].slice(2);
    const y = cx.add(tf, [cx.ref(x), cx.i32(axes)], T);
    cx.outRef(0, y, x.dtype, x.shape!.map((d, i) => (i >= 2 ? 1 : d)));
  });
}
