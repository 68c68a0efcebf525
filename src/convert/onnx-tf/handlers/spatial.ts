/**
 * Shared plumbing of the spatial ops (conv, pooling): the graph keeps ONNX layout (NCHW), so each
 * spatial op is wrapped in NCHW→NHWC / NHWC→NCHW transposes that the layout pass later cancels
 * between neighbours. 1-D ops run as 2-D with H = 1 (ExpandDims/Squeeze around the wrap).
 */
import type { DType } from '../../../core/dtype.js';
import type { Cx, Val } from '../context.js';
import { a } from '../tf-attr.js';

export const TO_NHWC = [0, 2, 3, 1];
export const TO_NCHW = [0, 3, 1, 2];

export interface Spatial {
  /** NHWC TF tensor. */
  ref: string;
  dtype: DType;
  n: number;
  c: number;
  h: number;
  w: number;
  oneD: boolean;
}

export function enterNhwc(cx: Cx, x: Val): Spatial {
  const r = cx.rank(x);
  if (r !== 3 && r !== 4) return cx.unsupported(`only 1-D and 2-D spatial ops are supported, input has rank ${r}`);
  let ref = cx.ref(x);
  let shape = x.shape!;
  if (r === 3) {
    ref = cx.add('ExpandDims', [ref, cx.i32([2], [])], { T: a.dt(x.dtype), Tdim: a.dt('int32') }, 'ExpandDims');
    shape = [shape[0]!, shape[1]!, 1, shape[2]!];
  }
  return { ref: cx.layoutTranspose(ref, TO_NHWC, x.dtype), dtype: x.dtype, n: shape[0]!, c: shape[1]!, h: shape[2]!, w: shape[3]!, oneD: r === 3 };
}

/** Back to ONNX layout; `shape` is the NCHW (2-D form) output shape. */
export function leaveNhwc(cx: Cx, s: Spatial, ref: string, shape: number[], dtype: DType = s.dtype): void {
  let y = cx.layoutTranspose(ref, TO_NCHW, dtype);
  let out = shape;
  if (s.oneD) {
    y = cx.add('Squeeze', [y], { T: a.dt(dtype), squeeze_dims: a.ints([2]) }, 'Squeeze');
    out = [shape[0]!, shape[1]!, shape[3]!];
  }
  cx.outRef(0, y, dtype, out);
}

export interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right] explicit pads, or 'SAME' for TF's own SAME_UPPER padding. */
  pads: [number, number, number, number] | 'SAME';
}

/** Kernel/stride/dilation/pad attrs normalised to 2-D (1-D ops get H = 1). */
export function windowAttrs(cx: Cx, s: Spatial, kernel: number[]): Window {
  const two = (v: number[] | undefined, def: number): [number, number] => {
    const vals = v && v.length > 0 ? v : s.oneD ? [def] : [def, def];
    if (vals.length !== (s.oneD ? 1 : 2)) return cx.fail('E_MALFORMED', `attribute has ${vals.length} values for ${s.oneD ? 1 : 2} spatial dims`);
    return s.oneD ? [1, vals[0]!] : [vals[0]!, vals[1]!];
  };
  const k = two(kernel, 1);
  const strides = two(cx.ints('strides'), 1);
  const dilations = two(cx.ints('dilations'), 1);
  if ([...k, ...strides, ...dilations].some((v) => !(v >= 1) || v > 1 << 20)) return cx.fail('E_MALFORMED', 'kernel, strides and dilations must be ≥ 1');
  const autoPad = cx.str('auto_pad', 'NOTSET');
  let pads: Window['pads'];
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    if (autoPad === 'SAME_UPPER') pads = 'SAME';
    else {
      if (s.h < 0 || s.w < 0) return cx.unsupported('auto_pad SAME_LOWER needs static spatial dims');
      const total = [s.h, s.w].map((d, i) => Math.max(0, (Math.ceil(d / strides[i]!) - 1) * strides[i]! + (k[i]! - 1) * dilations[i]! + 1 - d));
      pads = [Math.ceil(total[0]! / 2), Math.ceil(total[1]! / 2), Math.floor(total[0]! / 2), Math.floor(total[1]! / 2)];
    }
  } else if (autoPad === 'VALID') {
    pads = [0, 0, 0, 0];
  } else {
    const p = cx.ints('pads') ?? [];
    if (p.length === 0) pads = [0, 0, 0, 0];
    else if (s.oneD && p.length === 2) pads = [0, p[0]!, 0, p[1]!];
    else if (!s.oneD && p.length === 4) pads = [p[0]!, p[1]!, p[2]!, p[3]!];
    else return cx.fail('E_MALFORMED', `pads has ${p.length} values`);
    if (pads.some((v) => v < 0 || v > 1 << 20)) return cx.unsupported('negative pads');
  }
  return { kernel: k, strides, dilations, pads };
}

/** Output size of one spatial dim (-1 when the input dim is unknown). */
export function outDim(size: number, k: number, s: number, d: number, pb: number, pe: number, ceil = false): number {
  if (size < 0) return -1;
  const span = size + pb + pe - ((k - 1) * d + 1);
  return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
}

/** Pad the NHWC tensor with [top,left,bottom,right] using `value` (0 for conv, lowest for max pool). */
export function padNhwc(cx: Cx, s: Spatial, ref: string, pads: readonly number[], value?: number): string {
  if (pads.every((p) => p === 0)) return ref;
  const paddings = cx.i32([0, 0, pads[0]!, pads[2]!, pads[1]!, pads[3]!, 0, 0], [4, 2]);
  const T = { T: a.dt(s.dtype), Tpaddings: a.dt('int32') };
  if (value === undefined || value === 0) return cx.add('Pad', [ref, paddings], T, 'Pad');
  return cx.add('PadV2', [ref, paddings, cx.scalar(s.dtype, value)], T, 'PadV2');
}
