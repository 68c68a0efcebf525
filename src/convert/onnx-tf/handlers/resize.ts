/**
 * Resize / Upsample. When a TF resize kernel reproduces the ONNX arithmetic exactly (formats.md
 * §5.3), 4-D NCHW tensors are resized on H and W in NHWC with it; every other linear/nearest form
 * (non-whole scales, other rounding rules, run-time scales or sizes, other ranks) uses the exact
 * gather form of resize-gather.ts instead of drifting. Cubic is refused.
 */
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { numbersTensor } from '../values.js';
import { gatherResize } from './resize-gather.js';
import { enterNhwc, leaveNhwc } from './spatial.js';

interface KernelPlan {
  op: 'ResizeBilinear' | 'ResizeNearestNeighbor';
  oh: number;
  ow: number;
  align: boolean;
  half: boolean;
}

/**
 * The TF resize kernel that reproduces this ONNX Resize exactly, or undefined. TF derives its
 * coordinate scale from in/out sizes while ONNX uses the given scale, so scales whose product with
 * the input dim is not whole, and rounding rules TF has no flag for, have no kernel form.
 */
function kernelPlan(x: Val, scales: number[] | undefined, sizes: number[] | undefined, kind: 'linear' | 'nearest', coord: string, nearestMode: string): KernelPlan | undefined {
  const sh = x.shape;
  if (!sh || sh.length !== 4) return undefined;
  const [n, c, h, w] = sh as [number, number, number, number];
  if (h <= 0 || w <= 0) return undefined;
  let oh: number;
  let ow: number;
  if (sizes && sizes.length === 4) {
    if ((sizes[0] !== n && n >= 0) || (sizes[1] !== c && c >= 0)) return undefined;
    [oh, ow] = [sizes[2]!, sizes[3]!];
  } else if (scales && scales.length === 4) {
    if (scales[0] !== 1 || scales[1] !== 1) return undefined;
    if (!Number.isInteger(h * scales[2]!) || !Number.isInteger(w * scales[3]!)) return undefined;
    oh = h * scales[2]!;
    ow = w * scales[3]!;
  } else {
    return undefined;
  }
  if (oh <= 0 || ow <= 0) return undefined;
  const integerScale = oh % h === 0 && ow % w === 0;
  if (kind === 'linear') {
    if (coord === 'half_pixel' || (coord === 'pytorch_half_pixel' && oh > 1 && ow > 1)) return { op: 'ResizeBilinear', oh, ow, align: false, half: true };
    if (coord === 'align_corners') return { op: 'ResizeBilinear', oh, ow, align: true, half: false };
    // pytorch_half_pixel maps a one-element output to 0, as asymmetric does, but only if both are.
    if (coord === 'asymmetric' || (coord === 'pytorch_half_pixel' && oh === 1 && ow === 1)) return { op: 'ResizeBilinear', oh, ow, align: false, half: false };
    return undefined;
  }
  const near: KernelPlan = { op: 'ResizeNearestNeighbor', oh, ow, align: false, half: false };
  if (coord === 'asymmetric' && (nearestMode === 'floor' || (nearestMode === 'simple' && oh >= h && ow >= w))) return near;
  if (coord === 'align_corners' && nearestMode === 'round_prefer_ceil') return { ...near, align: true };
  if (coord === 'tf_half_pixel_for_nn' && nearestMode === 'floor') return { ...near, half: true };
  // Whole-number upscaling: half-pixel coordinates never land on .5, so rounding them picks the
  // same source pixel as flooring the asymmetric ones (flooring them would not).
  if ((coord === 'half_pixel' || coord === 'pytorch_half_pixel') && integerScale && (nearestMode === 'round_prefer_floor' || nearestMode === 'round_prefer_ceil')) return near;
  return undefined;
}

function constVal(dtype: 'float32' | 'int64', values: number[]): Val {
  return { dtype, shape: [values.length], value: numbersTensor('', dtype, [values.length], values) };
}

/** Resize by constant scales or sizes: a TF kernel when one is exact, else the gather form. */
function resize(cx: Cx, scales: number[] | undefined, sizes: number[] | undefined, mode: string, coord: string, nearestMode: string): void {
  const x = cx.in(0);
  const kind = mode === 'linear' || mode === 'bilinear' ? 'linear' : mode === 'nearest' ? 'nearest' : undefined;
  if (!kind) return cx.unsupported(`Resize mode '${mode}' (cubic kernels differ from TF's)`);
  if (!scales?.length && !sizes?.length) return cx.unsupported('Resize needs constant scales or sizes');
  const plan = kernelPlan(x, scales, sizes, kind, coord, nearestMode);
  if (!plan) return gatherResize(cx, x, sizes ? undefined : constVal('float32', scales!), sizes ? constVal('int64', sizes) : undefined, kind, coord, nearestMode);
  const s = enterNhwc(cx, x);
  const { op, oh, ow } = plan;
  let y = cx.add(op, [s.ref, cx.i32([oh, ow])], { T: a.dt(s.dtype), align_corners: a.b(plan.align), half_pixel_centers: a.b(plan.half) }, op);
  if (op === 'ResizeBilinear' && s.dtype !== 'float32') y = cx.add('Cast', [y], { SrcT: a.dt('float32'), DstT: a.dt(s.dtype), Truncate: a.b(false) });
  leaveNhwc(cx, s, y, [s.n, s.c, oh, ow]);
}

/** Linear or nearest (else E_UNSUPPORTED), for the run-time path. */
function runtimeMode(cx: Cx, mode: string): 'linear' | 'nearest' {
  if (mode === 'linear' || mode === 'bilinear') return 'linear';
  if (mode === 'nearest') return 'nearest';
  return cx.unsupported(`Resize mode '${mode}' with run-time scales/sizes`);
}

register('Resize', (cx) => {
  const mode = cx.str('mode', 'nearest');
  // Anti-aliased downscaling filters over more than two input pixels: no TF kernel, no gather form.
  if (cx.int('antialias', 0) !== 0) return cx.unsupported('Resize antialias');
  if (cx.opset < 11) {
    if (!cx.in(1).value) return gatherResize(cx, cx.in(0), cx.in(1), undefined, runtimeMode(cx, mode), 'asymmetric', 'simple');
    return resize(cx, cx.constNums(cx.in(1), 'Resize scales'), undefined, mode, 'asymmetric', 'simple');
  }
  const sc = cx.opt(2);
  const sz = cx.opt(3);
  // An empty scales input means "use sizes" (only knowable when its shape is static).
  const liveScales = sc && sc.shape?.[0] !== 0 ? sc : undefined;
  if ((liveScales && !liveScales.value) || (sz && !sz.value)) {
    if (cx.has('axes')) return cx.unsupported('Resize axes attribute');
    if (cx.str('keep_aspect_ratio_policy', 'stretch') !== 'stretch') return cx.unsupported('Resize keep_aspect_ratio_policy');
    const coord = cx.str('coordinate_transformation_mode', 'half_pixel');
    return gatherResize(cx, cx.in(0), sz ? undefined : liveScales, sz, runtimeMode(cx, mode), coord, cx.str('nearest_mode', 'round_prefer_floor'));
  }
  const scales = sc && sc.shape?.[0] !== 0 ? cx.constNums(sc, 'Resize scales') : undefined;
  const sizes = sz ? cx.constNums(sz, 'Resize sizes') : undefined;
  if (cx.has('axes')) return cx.unsupported('Resize axes attribute');
  if (cx.str('keep_aspect_ratio_policy', 'stretch') !== 'stretch') return cx.unsupported('Resize keep_aspect_ratio_policy');
  resize(cx, scales?.length ? scales : undefined, sizes, mode, cx.str('coordinate_transformation_mode', 'half_pixel'), cx.str('nearest_mode', 'round_prefer_floor'));
});

register('Upsample', (cx) => {
  const mode = cx.str('mode', 'nearest');
  if (cx.opset >= 9 && !cx.in(1).value) return gatherResize(cx, cx.in(0), cx.in(1), undefined, runtimeMode(cx, mode), 'asymmetric', 'simple');
  const scales = cx.opset >= 9 ? cx.constNums(cx.in(1), 'Upsample scales') : cx.floats('scales');
  resize(cx, scales, undefined, mode, 'asymmetric', 'simple');
});
