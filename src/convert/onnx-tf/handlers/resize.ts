/**
 * Resize / Upsample of 4-D NCHW tensors on H and W, in NHWC. Only the ONNX coordinate modes that a
 * TF kernel reproduces exactly are accepted (formats.md §5.3); the rest fail rather than drift.
 */
import type { Cx } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { enterNhwc, leaveNhwc } from './spatial.js';

function resize(cx: Cx, scales: number[] | undefined, sizes: number[] | undefined, mode: string, coord: string, nearestMode: string): void {
  const x = cx.in(0);
  if (cx.rank(x) !== 4) return cx.unsupported('Resize of a tensor that is not 4-D');
  const s = enterNhwc(cx, x);
  let oh: number;
  let ow: number;
  let integerScale = false;
  if (sizes && sizes.length === 4) {
    if (sizes[0] !== s.n && s.n >= 0 || sizes[1] !== s.c && s.c >= 0) return cx.unsupported('Resize of the batch or channel dims');
    [oh, ow] = [sizes[2]!, sizes[3]!];
    integerScale = s.h > 0 && s.w > 0 && oh % s.h === 0 && ow % s.w === 0;
  } else if (scales && scales.length === 4) {
    if (scales[0] !== 1 || scales[1] !== 1) return cx.unsupported('Resize of the batch or channel dims');
    if (s.h < 0 || s.w < 0) return cx.unsupported('Resize by scales needs static spatial dims');
    oh = Math.floor(s.h * scales[2]!);
    ow = Math.floor(s.w * scales[3]!);
    integerScale = Number.isInteger(scales[2]) && Number.isInteger(scales[3]) && scales[2]! >= 1 && scales[3]! >= 1;
  } else {
    return cx.unsupported('Resize needs 4 constant scales or sizes');
  }
  let op: string;
  let align = false;
  let half = false;
  if (mode === 'linear' || mode === 'bilinear') {
    op = 'ResizeBilinear';
    if (coord === 'half_pixel' || (coord === 'pytorch_half_pixel' && oh > 1 && ow > 1)) half = true;
    else if (coord === 'align_corners') align = true;
    else if (coord !== 'asymmetric') cx.unsupported(`linear Resize with coordinate_transformation_mode '${coord}'`);
  } else if (mode === 'nearest') {
    op = 'ResizeNearestNeighbor';
    if (coord === 'asymmetric' && nearestMode === 'floor') { /* TF default */ }
    else if (coord === 'align_corners' && nearestMode === 'round_prefer_ceil') align = true;
    else if (coord === 'tf_half_pixel_for_nn') half = true;
    // With whole-number upscaling, half-pixel rounding picks the same source pixel as floor.
    else if ((coord === 'half_pixel' || coord === 'pytorch_half_pixel' || coord === 'asymmetric') && integerScale && nearestMode !== 'ceil') { /* floor */ }
    else return cx.unsupported(`nearest Resize with '${coord}' and nearest_mode '${nearestMode}'`);
  } else {
    return cx.unsupported(`Resize mode '${mode}' (cubic kernels differ from TF's)`);
  }
  let y = cx.add(op, [s.ref, cx.i32([oh, ow])], { T: a.dt(s.dtype), align_corners: a.b(align), half_pixel_centers: a.b(half) }, op);
  if (op === 'ResizeBilinear' && s.dtype !== 'float32') y = cx.add('Cast', [y], { SrcT: a.dt('float32'), DstT: a.dt(s.dtype), Truncate: a.b(false) });
  leaveNhwc(cx, s, y, [s.n, s.c, oh, ow]);
}

register('Resize', (cx) => {
  const mode = cx.str('mode', 'nearest');
  if (cx.opset < 11) {
    return resize(cx, cx.constNums(cx.in(1), 'Resize scales'), undefined, mode, 'asymmetric', 'floor');
  }
  const sc = cx.opt(2);
  const sz = cx.opt(3);
  const scales = sc && sc.shape?.[0] !== 0 ? cx.constNums(sc, 'Resize scales') : undefined;
  const sizes = sz ? cx.constNums(sz, 'Resize sizes') : undefined;
  if (cx.has('axes')) return cx.unsupported('Resize axes attribute');
  if (cx.str('keep_aspect_ratio_policy', 'stretch') !== 'stretch') return cx.unsupported('Resize keep_aspect_ratio_policy');
  resize(cx, scales?.length ? scales : undefined, sizes, mode, cx.str('coordinate_transformation_mode', 'half_pixel'), cx.str('nearest_mode', 'round_prefer_floor'));
});

register('Upsample', (cx) => {
  const mode = cx.str('mode', 'nearest');
  const scales = cx.opset >= 9 ? cx.constNums(cx.in(1), 'Upsample scales') : cx.floats('scales');
  resize(cx, scales, undefined, mode, 'asymmetric', 'floor');
});
