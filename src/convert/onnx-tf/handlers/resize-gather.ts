/**
 * Resize with scales or sizes known only at run time. TF's resize kernels derive their coordinate
 * scale from in/out sizes, which differs from ONNX's (it uses the given scale) whenever
 * in·scale is not whole — and at conversion time that cannot be checked. So each axis is resized
 * separately with ONNX's own arithmetic: output coordinates are mapped back to input coordinates,
 * then rows are gathered (nearest) or gathered and blended (linear). Exact for every scale, any
 * rank; an axis whose scale is 1 maps to itself (weight 0), so batch and channel axes pass through.
 */
import type { DType } from '../../../core/dtype.js';
import type { Cx, Val } from '../context.js';
import { a } from '../tf-attr.js';

const F = 'float32';
const I = 'int32';

function cast(cx: Cx, x: string, from: DType, to: DType): string {
  return from === to ? x : cx.add('Cast', [x], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) });
}

function at(cx: Cx, v: string, dtype: DType, i: number): string {
  return cx.add('StridedSlice', [v, cx.i32([i]), cx.i32([i + 1]), cx.i32([1])], {
    T: a.dt(dtype), Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
  });
}

const COORD_MODES = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn'];
/** `simple` is Resize-10 / Upsample rounding in onnxruntime: floor when upscaling, ceil when downscaling. */
const NEAREST_MODES = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil', 'simple'];

/** Emits the resize of `x`; the caller has checked `mode` is nearest or linear. */
export function gatherResize(cx: Cx, x: Val, scales: Val | undefined, sizes: Val | undefined, mode: 'nearest' | 'linear', coord: string, nearestMode: string): void {
  if (!COORD_MODES.includes(coord)) return cx.unsupported(`Resize with run-time scales/sizes and coordinate_transformation_mode '${coord}'`);
  if (mode === 'nearest' && !NEAREST_MODES.includes(nearestMode)) return cx.unsupported(`nearest_mode '${nearestMode}'`);
  if (!scales && !sizes) return cx.unsupported('Resize needs scales or sizes');
  const r = cx.rank(x);
  const given = (sizes ?? scales)!;
  if (given.shape?.length === 1 && given.shape[0]! >= 0 && given.shape[0] !== r) return cx.unsupported(`Resize ${sizes ? 'sizes' : 'scales'} of length ${given.shape[0]} for rank ${r}`);
  const fT = { T: a.dt(F) };
  const iT = { T: a.dt(I) };
  const dims = cx.add('Shape', [cx.ref(x)], { T: a.dt(x.dtype), out_type: a.dt(I) });
  const sizeVec = sizes ? cast(cx, cx.ref(sizes), sizes.dtype, I) : undefined;
  const scaleVec = scales ? cast(cx, cx.ref(scales), scales.dtype, F) : undefined;
  const linear = mode === 'linear';
  let y = linear ? cast(cx, cx.ref(x), x.dtype, F) : cx.ref(x);
  const yDtype: DType = linear ? F : x.dtype;
  for (let k = 0; k < r; k++) {
    const dI = at(cx, dims, I, k);
    const dF = cast(cx, dI, I, F);
    let oI: string;
    let scale: string;
    if (sizeVec) {
      oI = at(cx, sizeVec, I, k);
      scale = cx.add('RealDiv', [cast(cx, oI, I, F), dF], fT);
    } else {
      scale = at(cx, scaleVec!, F, k);
      oI = cast(cx, cx.add('Floor', [cx.add('Mul', [dF, scale], fT)], fT), F, I);
    }
    const oF = cast(cx, oI, I, F);
    const i = cast(cx, cx.add('Range', [cx.scalar(I, 0), oI, cx.scalar(I, 1)], { Tidx: a.dt(I) }), I, F);
    const half = cx.add('AddV2', [i, cx.scalar(F, 0.5)], fT);
    let c: string;
    if (coord === 'half_pixel' || coord === 'pytorch_half_pixel') {
      c = cx.add('Sub', [cx.add('RealDiv', [half, scale], fT), cx.scalar(F, 0.5)], fT);
      // PyTorch maps a one-element output to coordinate 0.
      if (coord === 'pytorch_half_pixel') c = cx.add('Mul', [c, cast(cx, cx.add('Greater', [oI, cx.scalar(I, 1)], iT), 'bool', F)], fT);
    } else if (coord === 'align_corners') {
      const den = cx.add('Maximum', [cx.add('Sub', [oF, cx.scalar(F, 1)], fT), cx.scalar(F, 1)], fT);
      c = cx.add('RealDiv', [cx.add('Mul', [i, cx.add('Sub', [dF, cx.scalar(F, 1)], fT)], fT), den], fT);
    } else if (coord === 'asymmetric') {
      c = cx.add('RealDiv', [i, scale], fT);
    } else {
      c = cx.add('RealDiv', [half, scale], fT);
    }
    const last = cx.add('Sub', [dI, cx.scalar(I, 1)], iT);
    const clampIdx = (v: string): string => cx.add('Minimum', [cx.add('Maximum', [v, cx.scalar(I, 0)], iT), last], iT);
    const gather = (src: string, idx: string): string => cx.add('GatherV2', [src, idx, cx.i32([k], [])], { batch_dims: a.i(0), Tparams: a.dt(yDtype), Tindices: a.dt(I), Taxis: a.dt('int32') });
    if (!linear) {
      let n: string;
      if (nearestMode === 'floor') n = cx.add('Floor', [c], fT);
      else if (nearestMode === 'ceil') n = cx.add('Ceil', [c], fT);
      else if (nearestMode === 'round_prefer_ceil') n = cx.add('Floor', [cx.add('AddV2', [c, cx.scalar(F, 0.5)], fT)], fT);
      else if (nearestMode === 'simple') n = cx.add('SelectV2', [cx.add('Less', [scale, cx.scalar(F, 1)], fT), cx.add('Ceil', [c], fT), cx.add('Floor', [c], fT)], fT);
      else n = cx.add('Ceil', [cx.add('Sub', [c, cx.scalar(F, 0.5)], fT)], fT);
      y = gather(y, clampIdx(cast(cx, n, F, I)));
      continue;
    }
    // Linear: coordinates outside the input use the border element (ONNX and onnxruntime clamp).
    const cc = cx.add('Minimum', [cx.add('Maximum', [c, cx.scalar(F, 0)], fT), cx.add('Sub', [dF, cx.scalar(F, 1)], fT)], fT);
    const f0 = cx.add('Floor', [cc], fT);
    const i0 = clampIdx(cast(cx, f0, F, I));
    const i1 = clampIdx(cx.add('AddV2', [i0, cx.scalar(I, 1)], iT));
    // The weight varies along axis k only: shape [1, …, o, …, 1].
    const wShape = cx.i32(Array.from({ length: r }, (_, j) => (j === k ? -1 : 1)));
    const w = cx.add('Reshape', [cx.add('Sub', [cc, f0], fT), wShape], { ...fT, Tshape: a.dt('int32') });
    const g0 = gather(y, i0);
    const g1 = gather(y, i1);
    y = cx.add('AddV2', [cx.add('Mul', [g0, cx.add('Sub', [cx.scalar(F, 1), w], fT)], fT), cx.add('Mul', [g1, w], fT)], fT);
  }
  if (linear && x.dtype !== F) y = cast(cx, y, F, x.dtype);
  cx.outRef(0, y, x.dtype, new Array<number>(r).fill(-1));
}
