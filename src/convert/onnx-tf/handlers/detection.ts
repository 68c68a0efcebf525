/**
 * Detection ops: RoiAlign and NonMaxSuppression.
 * RoiAlign is not CropAndResize (that samples one bilinear point per output cell with its own
 * coordinate convention; ONNX averages or maxes a sampling grid per bin with onnxruntime's edge
 * rules), so it is built from its definition: every sample's bilinear taps are separable in y and
 * x, so the weighted tap rows are gathered per ROI, then the weighted tap columns of those. NonMaxSuppression runs TF's per-class NonMaxSuppressionV3 once per
 * (batch, class) pair, unrolled at conversion time, and concatenates the (batch, class, box) rows
 * in ONNX's order.
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { numbersTensor, tensorNumbers } from '../values.js';
import { ops } from './spatial-extra.js';

const F = 'float32';
const I = 'int32';
/** (batch, class) pairs NonMaxSuppression unrolls at most. */
const MAX_NMS_PAIRS = 4096;

// ---- RoiAlign ----------------------------------------------------------------------------------

register('RoiAlign', (cx) => {
  const x = cx.in(0);
  const rois = cx.in(1);
  const bidx = cx.in(2);
  if (x.dtype !== F || rois.dtype !== F) return cx.unsupported(`RoiAlign on ${x.dtype} (float32 only)`);
  const xs = x.shape;
  if (!xs || xs.length !== 4 || xs[2]! < 0 || xs[3]! < 0) return cx.unsupported('RoiAlign needs a 4-D input with static height and width');
  if (rois.shape && (rois.shape.length !== 2 || (rois.shape[1]! >= 0 && rois.shape[1] !== 4))) return cx.fail(ErrorCodes.MALFORMED, `RoiAlign rois have shape [${rois.shape}]`);
  const [, c, H, W] = xs as [number, number, number, number];
  if (c < 0) return cx.unsupported('RoiAlign needs a static channel count');
  const mode = cx.str('mode', 'avg');
  if (mode !== 'avg' && mode !== 'max') return cx.unsupported(`RoiAlign mode '${mode}'`);
  // Opset 10 had no attribute and behaved as output_half_pixel.
  const coord = cx.str('coordinate_transformation_mode', cx.opset >= 16 ? 'half_pixel' : 'output_half_pixel');
  if (coord !== 'half_pixel' && coord !== 'output_half_pixel') return cx.unsupported(`RoiAlign coordinate_transformation_mode '${coord}'`);
  const oh = cx.int('output_height', 1);
  const ow = cx.int('output_width', 1);
  const ratio = cx.int('sampling_ratio', 0);
  const scale = cx.float('spatial_scale', 1);
  if (oh < 1 || ow < 1 || oh > 4096 || ow > 4096) return cx.fail(ErrorCodes.MALFORMED, `RoiAlign output ${oh}×${ow}`);
  // The adaptive grid (ceil(roi size / bins)) varies per ROI at run time: no static graph for it.
  if (ratio <= 0) return cx.unsupported('RoiAlign sampling_ratio 0 (adaptive grid per ROI)');
  if (ratio > 64) return cx.unsupported(`RoiAlign sampling_ratio ${ratio}`);
  const g = ops(cx);
  const half = coord === 'half_pixel';
  const col = (k: number): string => g.f('Sub', g.f('Mul', g.gather(cx.ref(rois), F, cx.i32([k]), 1), g.fc(scale)), g.fc(half ? 0.5 : 0));
  const [x1, y1, x2, y2] = [0, 1, 2, 3].map(col) as [string, string, string, string];
  /** The bilinear taps of one axis's sampling points, per ROI. */
  const axis = (start: string, end: string, bins: number, size: number): { idx: string; w: string } => {
    let len = g.f('Sub', end, start);
    if (!half) len = g.f('Maximum', len, g.fc(1));
    const bin = g.f('RealDiv', len, g.fc(bins));
    const ph: number[] = [];
    const off: number[] = [];
    for (let p = 0; p < bins; p++) for (let i = 0; i < ratio; i++) { ph.push(p); off.push((i + 0.5) / ratio); }
    const k = bins * ratio;
    const pos = g.f('AddV2', g.f('AddV2', start, g.f('Mul', g.fconst(ph, [1, k]), bin)), g.f('Mul', g.fconst(off, [1, k]), bin));
    const valid = g.cast(g.and(cx.add('GreaterEqual', [pos, g.fc(-1)], { T: a.dt(F) }), cx.add('LessEqual', [pos, g.fc(size)], { T: a.dt(F) })), 'bool', F);
    const p0 = g.f('Maximum', pos, g.fc(0));
    const low0 = g.f('Floor', p0);
    // At or past the last pixel both taps sit on it and the fraction is 0 (onnxruntime's rule).
    const atEnd = cx.add('GreaterEqual', [low0, g.fc(size - 1)], { T: a.dt(F) });
    const low = g.select(atEnd, g.fc(size - 1), low0, F);
    const high = g.select(atEnd, g.fc(size - 1), g.f('AddV2', low0, g.fc(1)), F);
    const frac = g.select(atEnd, g.fc(0), g.f('Sub', p0, low0), F);
    const wl = g.f('Mul', g.f('Sub', g.fc(1), frac), valid);
    const wh = g.f('Mul', frac, valid);
    // Taps ordered (bin, sample, tap): [R, bins·ratio·2] pixel indices and weights.
    const idx = g.reshape(g.pack([g.cast(low, F, I), g.cast(high, F, I)], I, 2), I, [-1, k * 2]);
    const w = g.reshape(g.pack([wl, wh], F, 2), F, [-1, k * 2, 1]);
    return { idx, w };
  };
  const ty = axis(y1, y2, oh, H);
  const tx = axis(x1, x2, ow, W);
  const feats = g.gather(cx.ref(x), F, g.cast(cx.ref(bidx), bidx.dtype, I), 0);
  // Per-ROI gathers (batch_dims 1) of the tapped rows, then of the tapped columns, each row/column
  // scaled by its weight; only sampled pixels are read, so a non-finite pixel stays local.
  const pick = (params: string, t: { idx: string; w: string }): string =>
    g.f('Mul', cx.add('GatherV2', [params, t.idx, cx.i32([1], [])], { batch_dims: a.i(1), Tparams: a.dt(F), Tindices: a.dt(I), Taxis: a.dt(I) }), t.w);
  const sumTaps = (v: string, bins: number, rest: number): string =>
    cx.add('Sum', [g.reshape(v, F, [-1, bins, ratio * 2, rest]), cx.i32([2], [])], { T: a.dt(F), Tidx: a.dt(I), keep_dims: a.b(false) });
  const byRow = g.reshape(g.transpose(feats, F, [0, 2, 1, 3]), F, [-1, H, c * W]);
  let rows = pick(byRow, ty);
  const ky = mode === 'avg' ? oh : oh * ratio * 2;
  if (mode === 'avg') rows = sumTaps(rows, oh, c * W);
  // [R, ky, C, W] → [R, W, ky·C]: columns become the gathered axis.
  const byCol = g.reshape(g.transpose(g.reshape(rows, F, [-1, ky, c, W]), F, [0, 3, 1, 2]), F, [-1, W, ky * c]);
  const cols = pick(byCol, tx);
  let y: string;
  if (mode === 'avg') {
    const s2 = g.reshape(sumTaps(cols, ow, oh * c), F, [-1, ow, oh, c]);
    y = g.f('Mul', g.transpose(s2, F, [0, 3, 2, 1]), g.fc(1 / (ratio * ratio)));
  } else {
    const t = g.reshape(cols, F, [-1, ow, ratio * 2, oh, ratio * 2, c]);
    y = g.transpose(cx.add('Max', [t, cx.i32([2, 4])], { T: a.dt(F), Tidx: a.dt(I), keep_dims: a.b(false) }), F, [0, 3, 2, 1]);
  }
  cx.outRef(0, y, F, [rois.shape?.[0] ?? -1, c, oh, ow]);
});

// ---- NonMaxSuppression -------------------------------------------------------------------------

/** A scalar float parameter: constant, run-time input, or the default when absent. */
function scalarParam(cx: Cx, v: Val | undefined, def: number): string {
  const g = ops(cx);
  if (!v) return g.fc(def);
  if (v.dtype !== F) return cx.unsupported(`NonMaxSuppression threshold of type ${v.dtype}`);
  return g.reshape(cx.ref(v), F, []);
}

register('NonMaxSuppression', (cx) => {
  const boxes = cx.in(0);
  const scores = cx.in(1);
  if (boxes.dtype !== F || scores.dtype !== F) return cx.unsupported(`NonMaxSuppression on ${boxes.dtype} boxes (float32 only)`);
  const bs = boxes.shape;
  const ss = scores.shape;
  if (!bs || bs.length !== 3 || !ss || ss.length !== 3) return cx.fail(ErrorCodes.MALFORMED, 'NonMaxSuppression boxes and scores must be 3-D');
  const [nb, , four] = bs as [number, number, number];
  const [, nc] = ss as [number, number, number];
  if (four >= 0 && four !== 4) return cx.fail(ErrorCodes.MALFORMED, `NonMaxSuppression boxes have ${four} coordinates`);
  const agree = (p: number, q: number): boolean => p < 0 || q < 0 || p === q;
  if (!agree(bs[0]!, ss[0]!) || !agree(bs[1]!, ss[2]!)) return cx.fail(ErrorCodes.MALFORMED, `NonMaxSuppression boxes [${bs}] do not match scores [${ss}]`);
  if (nb < 0 || nc < 0) return cx.unsupported('NonMaxSuppression needs static batch and class counts');
  if (nb * nc > MAX_NMS_PAIRS) return cx.unsupported(`NonMaxSuppression over ${nb}×${nc} (batch, class) pairs`);
  const center = cx.int('center_point_box', 0);
  if (center !== 0 && center !== 1) return cx.fail(ErrorCodes.MALFORMED, `center_point_box ${center}`);
  const g = ops(cx);
  const maxIn = cx.opt(2);
  const empty = (): void => {
    cx.out(0, { dtype: 'int64', shape: [0, 3], value: numbersTensor('', 'int64', [0, 3], []) });
  };
  // A missing or zero max_output_boxes_per_class selects nothing.
  if (!maxIn || nb * nc === 0) return empty();
  if (maxIn.value && maxIn.value.data.byteLength > 0 && tensorNumbers(maxIn.value)[0]! <= 0) return empty();
  // Clamp in the input's own dtype: an int64 beyond int32 must not wrap negative.
  let maxOut = g.reshape(cx.ref(maxIn), maxIn.dtype, []);
  maxOut = cx.add('Maximum', [maxOut, cx.scalar(maxIn.dtype, 0)], { T: a.dt(maxIn.dtype) });
  maxOut = g.cast(cx.add('Minimum', [maxOut, cx.scalar(maxIn.dtype, 2 ** 31 - 1)], { T: a.dt(maxIn.dtype) }), maxIn.dtype, I);
  // ONNX suppresses when IoU > threshold, TF.js when IoU ≥ threshold: nudge the threshold one
  // float32 step up (so an IoU of exactly 0 never suppresses at threshold 0).
  const iou0 = scalarParam(cx, cx.opt(3), 0);
  const iou = g.f('AddV2', iou0, g.f('Maximum', g.f('Mul', g.f('Abs', iou0), g.fc(2 ** -23)), g.fc(2 ** -126)));
  const scoreThr = scalarParam(cx, cx.opt(4), -Infinity);
  const rows: string[] = [];
  for (let b = 0; b < nb; b++) {
    let bx = g.reshape(g.gather(cx.ref(boxes), F, cx.i32([b], []), 0), F, [-1, 4]);
    if (center === 1) {
      // [xc, yc, w, h] → corners [y1, x1, y2, x2].
      const comp = (k: number): string => g.gather(bx, F, cx.i32([k]), 1);
      const [xc, yc, w, h] = [0, 1, 2, 3].map(comp) as [string, string, string, string];
      const hw = g.f('Mul', w, g.fc(0.5));
      const hh = g.f('Mul', h, g.fc(0.5));
      bx = g.concat([g.f('Sub', yc, hh), g.f('Sub', xc, hw), g.f('AddV2', yc, hh), g.f('AddV2', xc, hw)], F, 1);
    }
    for (let k = 0; k < nc; k++) {
      const sc = g.reshape(g.gather(g.gather(cx.ref(scores), F, cx.i32([b], []), 0), F, cx.i32([k], []), 0), F, [-1]);
      const sel = cx.add('NonMaxSuppressionV3', [bx, sc, maxOut, iou, scoreThr], { T: a.dt(F), T_threshold: a.dt(F) });
      const idx = cx.add('ExpandDims', [sel, g.ic(1)], { T: a.dt(I), Tdim: a.dt(I) });
      const bc = g.i('AddV2', cx.add('ZerosLike', [idx], { T: a.dt(I) }), cx.i32([b, k], [1, 2]));
      rows.push(g.concat([bc, idx], I, 1));
    }
  }
  const all = g.concat(rows, I, 0);
  cx.outRef(0, g.cast(all, I, 'int64'), 'int64', [-1, 3]);
});
