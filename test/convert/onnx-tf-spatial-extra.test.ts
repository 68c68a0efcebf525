/**
 * The extra spatial and detection ops (LpPool, MaxUnpool, Col2Im, CenterCropPad, AffineGrid,
 * GridSample, DeformConv, RoiAlign, NonMaxSuppression): converted with `constants`, run in TF.js
 * and compared with onnxruntime-node on seeded random inputs across their attributes (float32
 * within 1e-4, indices exact), the corpus node tests through the conformance runner, and every
 * refusal.
 */
import '../../src/convert/onnx-tf/handlers/spatial-extra.js';
import '../../src/convert/onnx-tf/handlers/detection.js';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/core/tensor.js';
import { runConformance } from '../../src/bench/conformance.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { buildModel, compare, nums, onnxNode as N, rand, runOrt, tensorOf, type IoSpec } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

type In = IoSpec & { data?: Tensor };
interface Case {
  name: string;
  nodes: ReturnType<typeof N>[];
  inputs: In[];
  outputs: IoSpec[];
  inits?: Tensor[];
  opset?: number;
}

const f = (name: string, dims: number[]): IoSpec => ({ name, dims });
const i64 = (name: string, vals: number[], shape = [vals.length]): Tensor => tensorOf(name, 'int64', shape, vals);
const f32 = (name: string, vals: number[], shape = [vals.length]): Tensor => tensorOf(name, 'float32', shape, vals);
/** A graph input with fixed data (a parameter supplied at run time). */
const given = (t: Tensor): In => ({ name: t.name, dims: t.shape, dtype: t.dtype, data: t });
const idx = (name: string, dims: (number | string)[]): IoSpec => ({ name, dims, dtype: 'int64' });

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}

/** Distinct random flat positions in [0, total), `count` of them, as MaxPool indices would be. */
function uniqueIndices(name: string, shape: number[], total: number, seed: number): Tensor {
  const next = prng(seed);
  const pool = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) { const j = Math.floor(next() * (i + 1)); [pool[i], pool[j]] = [pool[j]!, pool[i]!]; }
  return i64(name, pool.slice(0, shape.reduce((p, q) => p * q, 1)), shape);
}

/** ROIs [x1, y1, x2, y2], some reaching past the 10×12 image. */
function rois(name: string, r: number, seed: number): Tensor {
  const next = prng(seed);
  const v: number[] = [];
  for (let i = 0; i < r; i++) { const x = -2 + 12 * next(); const y = -2 + 10 * next(); v.push(x, y, x + 0.5 + 6 * next(), y + 0.5 + 6 * next()); }
  return f32(name, v, [r, 4]);
}

/** Small overlapping boxes; corners in either order for the corner format. */
function boxes(name: string, b: number, n: number, seed: number, center: boolean): Tensor {
  const next = prng(seed);
  const v: number[] = [];
  for (let i = 0; i < b * n; i++) {
    const [p, q, w, h] = [6 * next(), 6 * next(), 1 + 3 * next(), 1 + 3 * next()];
    if (center) v.push(p, q, w, h);
    else if (i % 3 === 0) v.push(q + h, p + w, q, p);
    else v.push(q, p, q + h, p + w);
  }
  return f32(name, v, [b, n, 4]);
}

const GS_X = f('x', [2, 3, 5, 6]);
const GRID = { name: 'g', dims: [2, 4, 7, 2], data: rand('g', [2, 4, 7, 2], 77, 'float32', -1.4, 1.4) };

const CASES: Case[] = [
  // ---- LpPool
  { name: 'LpPool p=2, pads, strides', nodes: [N('LpPool', ['x'], ['y'], { p: 2, kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })], inputs: [f('x', [2, 3, 7, 9])], outputs: [f('y', [2, 3, 4, 5])], opset: 18 },
  { name: 'LpPool p=1, ceil_mode, asymmetric pads', nodes: [N('LpPool', ['x'], ['y'], { p: 1, kernel_shape: [2, 3], strides: [2, 2], pads: [0, 1, 1, 0], ceil_mode: 1 })], inputs: [f('x', [2, 3, 7, 9])], outputs: [f('y', [2, 3, 5, 5])], opset: 18 },
  { name: 'LpPool p=3, dilations with strides', nodes: [N('LpPool', ['x'], ['y'], { p: 3, kernel_shape: [2, 2], strides: [2, 2], dilations: [2, 3] })], inputs: [f('x', [1, 2, 8, 9])], outputs: [f('y', [1, 2, 3, 3])], opset: 18 },
  { name: 'LpPool SAME_UPPER and 1-D', nodes: [N('LpPool', ['x'], ['y'], { kernel_shape: [3, 2], strides: [2, 2], auto_pad: 'SAME_UPPER' }), N('LpPool', ['x1'], ['z'], { kernel_shape: [3], strides: [2], p: 2 })],
    inputs: [f('x', [1, 2, 7, 9]), f('x1', [2, 3, 11])], outputs: [f('y', [1, 2, 4, 5]), f('z', [2, 3, 5])], opset: 18 },
  { name: 'LpPool opset 11 (no dilations attribute)', nodes: [N('LpPool', ['x'], ['y'], { kernel_shape: [2, 2], p: 2 })], inputs: [f('x', [1, 3, 4, 5])], outputs: [f('y', [1, 3, 3, 4])], opset: 11 },
  // ---- MaxUnpool
  { name: 'MaxUnpool, default output shape', nodes: [N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2, 2], strides: [2, 2] })],
    inputs: [f('x', [2, 3, 3, 4]), given(uniqueIndices('i', [2, 3, 3, 4], 2 * 3 * 6 * 8, 5))], outputs: [f('y', [2, 3, 6, 8])] },
  { name: 'MaxUnpool, pads, constant output_shape', nodes: [N('MaxUnpool', ['x', 'i', 's'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })],
    inputs: [f('x', [1, 2, 3, 3]), given(uniqueIndices('i', [1, 2, 3, 3], 2 * 6 * 6, 6))], outputs: [f('y', [1, 2, 6, 6])], inits: [i64('s', [1, 2, 6, 6])] },
  { name: 'MaxUnpool, run-time output_shape, 1-D, a repeated index (last write wins)', nodes: [N('MaxUnpool', ['x', 'i', 's'], ['y'], { kernel_shape: [2], strides: [2] })],
    inputs: [f('x', [1, 2, 4]), given(i64('i', [0, 3, 3, 6, 9, 10, 12, 17], [1, 2, 4])), given(i64('s', [1, 2, 9]))], outputs: [f('y', [1, 2, 9])] },
  // ---- Col2Im
  { name: 'Col2Im strides, dilations, pads (constant shapes)', nodes: [N('Col2Im', ['x', 'im', 'bl'], ['y'], { strides: [1, 2], dilations: [2, 1], pads: [1, 0, 1, 1] })],
    inputs: [f('x', [2, 12, 15])], outputs: [f('y', [2, 2, 5, 6])], inits: [i64('im', [5, 6]), i64('bl', [2, 3])], opset: 18 },
  { name: 'Col2Im overlapping blocks (run-time shapes)', nodes: [N('Col2Im', ['x', 'im', 'bl'], ['y'])],
    inputs: [f('x', [1, 12, 12]), given(i64('im', [4, 5])), given(i64('bl', [2, 2]))], outputs: [f('y', [1, 3, 4, 5])], opset: 18 },
  // ---- CenterCropPad
  { name: 'CenterCropPad crop and pad, odd differences (constant shape)', nodes: [N('CenterCropPad', ['x', 's'], ['y'])], inputs: [f('x', [5, 8, 3])], outputs: [f('y', [4, 3, 6])], inits: [i64('s', [4, 3, 6])], opset: 18 },
  { name: 'CenterCropPad on negative axes (run-time shape)', nodes: [N('CenterCropPad', ['x', 's'], ['y'], { axes: [-1, 1] })],
    inputs: [f('x', [2, 7, 4]), given(i64('s', [9, 2]))], outputs: [f('y', [2, 2, 9])], opset: 18 },
  // ---- AffineGrid
  { name: 'AffineGrid 2-D, align_corners 0 and 1', nodes: [N('AffineGrid', ['t', 's'], ['a'], { align_corners: 0 }), N('AffineGrid', ['t', 's'], ['b'], { align_corners: 1 })],
    inputs: [f('t', [2, 2, 3])], outputs: [f('a', [2, 4, 5, 2]), f('b', [2, 4, 5, 2])], inits: [i64('s', [2, 3, 4, 5])], opset: 20 },
  { name: 'AffineGrid 3-D, align_corners 0 and 1 (run-time size)', nodes: [N('AffineGrid', ['t', 's'], ['a']), N('AffineGrid', ['t', 's'], ['b'], { align_corners: 1 })],
    inputs: [f('t', [2, 3, 4]), given(i64('s', [2, 1, 3, 4, 5]))], outputs: [f('a', [2, 3, 4, 5, 3]), f('b', [2, 3, 4, 5, 3])], opset: 20 },
  // ---- GridSample: every mode × padding × align_corners
  ...(['linear', 'nearest', 'cubic'] as const).flatMap((mode) => (['zeros', 'border', 'reflection'] as const).map((pad): Case => ({
    name: `GridSample ${mode}, ${pad}, align_corners 0 and 1`,
    nodes: [N('GridSample', ['x', 'g'], ['a'], { mode, padding_mode: pad }), N('GridSample', ['x', 'g'], ['b'], { mode, padding_mode: pad, align_corners: 1 })],
    inputs: [GS_X, GRID], outputs: [f('a', [2, 3, 4, 7]), f('b', [2, 3, 4, 7])], opset: 20,
  }))),
  ...(['linear', 'nearest'] as const).map((mode): Case => ({
    name: `GridSample 5-D ${mode}: zeros, border (align_corners 1), reflection`,
    nodes: [N('GridSample', ['x', 'g'], ['a'], { mode }), N('GridSample', ['x', 'g'], ['b'], { mode, padding_mode: 'border', align_corners: 1 }), N('GridSample', ['x', 'g'], ['c'], { mode, padding_mode: 'reflection' })],
    inputs: [f('x', [2, 3, 4, 5, 6]), { name: 'g', dims: [2, 3, 2, 4, 3], data: rand('g', [2, 3, 2, 4, 3], 78, 'float32', -1.4, 1.4) }],
    outputs: [f('a', [2, 3, 3, 2, 4]), f('b', [2, 3, 3, 2, 4]), f('c', [2, 3, 3, 2, 4])], opset: 20,
  })),
  { name: 'GridSample opset 16 names (bilinear, bicubic)', nodes: [N('GridSample', ['x', 'g'], ['a']), N('GridSample', ['x', 'g'], ['b'], { mode: 'bicubic', padding_mode: 'border' })],
    inputs: [GS_X, GRID], outputs: [f('a', [2, 3, 4, 7]), f('b', [2, 3, 4, 7])], opset: 16 },
  { name: 'GridSample zeros: taps outside the image read 0 even next to a non-finite edge pixel', nodes: [N('GridSample', ['x', 'g'], ['a']), N('GridSample', ['x', 'g'], ['b'], { mode: 'cubic' })],
    inputs: [{ name: 'x', dims: [1, 1, 3, 3], data: f32('x', [Infinity, 1, 2, 3, 4, 5, 6, 7, Number.NaN], [1, 1, 3, 3]) }, given(f32('g', [-3, -3, -2.5, -4, 3, 3.5, 0, 0], [1, 2, 2, 2]))],
    outputs: [f('a', [1, 1, 2, 2]), f('b', [1, 1, 2, 2])], opset: 20 },
  // ---- DeformConv
  { name: 'DeformConv groups, offset groups, pads, bias, mask', nodes: [N('DeformConv', ['x', 'w', 'o', 'b', 'm'], ['y'], { group: 2, offset_group: 2, pads: [1, 1, 1, 1], kernel_shape: [3, 3] })],
    inputs: [f('x', [2, 4, 6, 7]), { name: 'o', dims: [2, 36, 6, 7], data: rand('o', [2, 36, 6, 7], 91, 'float32', -2, 2) }, { name: 'm', dims: [2, 18, 6, 7], data: rand('m', [2, 18, 6, 7], 92, 'float32', 0, 1) }],
    outputs: [f('y', [2, 6, 6, 7])], inits: [rand('w', [6, 2, 3, 3], 93), rand('b', [6], 94)], opset: 19 },
  { name: 'DeformConv strides and dilations, run-time weight', nodes: [N('DeformConv', ['x', 'w', 'o'], ['y'], { strides: [2, 1], dilations: [1, 2], pads: [0, 1, 1, 0] })],
    inputs: [f('x', [1, 3, 7, 6]), f('w', [4, 3, 2, 2]), { name: 'o', dims: [1, 8, 4, 5], data: rand('o', [1, 8, 4, 5], 95, 'float32', -3, 3) }], outputs: [f('y', [1, 4, 4, 5])], opset: 19 },
  // ---- RoiAlign
  ...(['avg', 'max'] as const).flatMap((mode) => (['half_pixel', 'output_half_pixel'] as const).map((coord): Case => ({
    name: `RoiAlign ${mode}, ${coord}, sampling_ratio 2 and 3, spatial_scale`,
    nodes: [N('RoiAlign', ['x', 'r', 'bi'], ['a'], { mode, coordinate_transformation_mode: coord, output_height: 3, output_width: 4, sampling_ratio: 2 }),
      N('RoiAlign', ['x', 'r', 'bi'], ['b'], { mode, coordinate_transformation_mode: coord, output_height: 2, output_width: 2, sampling_ratio: 3, spatial_scale: { f: 0.5 } })],
    inputs: [f('x', [2, 3, 10, 12]), given(rois('r', 6, 81)), given(i64('bi', [0, 1, 1, 0, 1, 0]))], outputs: [f('a', [6, 3, 3, 4]), f('b', [6, 3, 2, 2])], opset: 16,
  }))),
  { name: 'RoiAlign opset 10 (output_half_pixel, sampling_ratio 1)', nodes: [N('RoiAlign', ['x', 'r', 'bi'], ['y'], { output_height: 2, output_width: 3, sampling_ratio: 1 })],
    inputs: [f('x', [2, 3, 10, 12]), given(rois('r', 4, 82)), given(i64('bi', [1, 0, 1, 0]))], outputs: [f('y', [4, 3, 2, 3])], opset: 10 },
  { name: 'RoiAlign: a non-finite pixel no ROI samples stays out of the result', nodes: [N('RoiAlign', ['x', 'r', 'bi'], ['y'], { output_height: 2, output_width: 2, sampling_ratio: 2, mode: 'max' }),
    N('RoiAlign', ['x', 'r', 'bi'], ['z'], { output_height: 2, output_width: 2, sampling_ratio: 2 })],
    inputs: [{ name: 'x', dims: [1, 2, 6, 6], data: f32('x', Array.from({ length: 72 }, (_, i) => (i === 35 ? Infinity : i === 71 ? Number.NaN : Math.sin(i))), [1, 2, 6, 6]) },
      given(f32('r', [0, 0, 3, 3, 1, 0.5, 2.5, 3], [2, 4])), given(i64('bi', [0, 0]))], outputs: [f('y', [2, 2, 2, 2]), f('z', [2, 2, 2, 2])], opset: 16 },
  // ---- NonMaxSuppression
  ...([0, 1] as const).map((center): Case => ({
    name: `NonMaxSuppression center_point_box ${center}: run-time limits, constant limits, no score threshold`,
    nodes: [N('NonMaxSuppression', ['b', 's', 'k', 'iou', 'st'], ['a'], { center_point_box: center }), N('NonMaxSuppression', ['b', 's', 'k2', 'iou2'], ['c'], { center_point_box: center })],
    inputs: [given(boxes('b', 2, 20, 60 + center, center === 1)), { name: 's', dims: [2, 3, 20], data: rand('s', [2, 3, 20], 70 + center, 'float32', 0, 1) }, given(i64('k', [4])), given(f32('iou', [0.4])), given(f32('st', [0.3]))],
    outputs: [idx('a', ['n', 3]), idx('c', ['m', 3])], inits: [i64('k2', [100]), f32('iou2', [0])], opset: 11,
  })),
  { name: 'NonMaxSuppression without max_output_boxes_per_class selects nothing', nodes: [N('NonMaxSuppression', ['b', 's'], ['a'])],
    inputs: [given(boxes('b', 1, 5, 3, false)), f('s', [1, 2, 5])], outputs: [idx('a', ['n', 3])], opset: 11 },
];

describe('extra spatial / detection ops match onnxruntime in TF.js', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const m = buildModel(c.nodes, c.inputs, c.outputs, c.inits ?? [], c.opset ?? 17);
      const feeds = c.inputs.map((i, k) => i.data ?? rand(i.name, i.dims as number[], 100 + k));
      const { diffs } = await compare(m, feeds);
      for (const o of c.outputs) {
        const exact = o.dtype !== undefined && o.dtype !== 'float32';
        expect(diffs[o.name], o.name).toBeLessThanOrEqual(exact ? 0 : 1e-4);
      }
    });
  }

  it('NonMaxSuppression selects a non-trivial set, in (batch, class, score) order', async () => {
    const c = CASES.find((x) => x.name.startsWith('NonMaxSuppression center_point_box 0'))!;
    const m = buildModel(c.nodes, c.inputs, c.outputs, c.inits ?? [], c.opset);
    const got = nums((await runOrt(m.bytes, c.inputs.map((i) => i.data ?? rand(i.name, i.dims as number[], 1)))).get('a')!);
    // 2 batches × 3 classes, at most 4 each, some pairs fewer: the comparison above is not vacuous.
    expect(got.length / 3).toBeGreaterThan(12);
    expect(got.length / 3).toBeLessThanOrEqual(24);
    const pairs = [];
    for (let i = 0; i < got.length; i += 3) pairs.push(got[i]! * 3 + got[i + 1]!);
    expect(pairs).toEqual([...pairs].sort((p, q) => p - q));
  });
});

describe('ONNX node tests of these ops pass through the conformance runner', () => {
  const NAMES = ['test_lppool_2d_dilations', 'test_maxunpool_export_without_output_shape', 'test_col2im', 'test_center_crop_pad_crop_axes_chw', 'test_gridsample_bicubic',
    'test_affine_grid_2d', 'test_roialign_aligned_true', 'test_nonmaxsuppression_single_box', 'test_basic_deform_conv_without_padding'];
  it(`${NAMES.length} node tests`, async () => {
    const s = await runConformance(NODE_TESTS, (t) => NAMES.includes(t));
    expect(s.results.map((r) => r.test).sort()).toEqual([...NAMES].sort());
    for (const r of s.results) expect(r.outcome, `${r.test}: ${r.detail ?? ''}`).toBe('pass');
  });
});

describe('refusals name the node and say what is not converted', () => {
  const refuse = async (nodes: ReturnType<typeof N>[], inputs: IoSpec[], outputs: IoSpec[], code: string, text: string, inits: Tensor[] = [], opset = 20): Promise<void> => {
    const m = buildModel(nodes, inputs, outputs, inits, opset);
    await expect(onnxToTf(m.model, { constants: true })).rejects.toMatchObject({ code, message: expect.stringMatching(new RegExp(`${text.replace(/[()[\]|.*+?]/g, '\\$&')}.*op '${nodes[0]!.opType} '${nodes[0]!.name}''`)) });
  };
  const x4 = f('x', [1, 2, 4, 4]);

  it('E_UNSUPPORTED', async () => {
    await refuse([N('GridSample', ['x', 'g'], ['y'])], [f('x', [1, 1, 3, 4]), f('g', [1, 2, 3, 4, 3])], [f('y', [1, 1, 2, 3, 4])], 'E_UNSUPPORTED', 'GridSample other than 4-D or 5-D');
    await refuse([N('GridSample', ['x', 'g'], ['y'], { mode: 'cubic' })], [f('x', [1, 1, 2, 3, 4]), f('g', [1, 2, 3, 4, 3])], [f('y', [1, 1, 2, 3, 4])], 'E_UNSUPPORTED', 'GridSample cubic on a 5-D input');
    await refuse([N('GridSample', ['x', 'g'], ['y'])], [{ name: 'x', dims: ['n', 2, 4, 4] }, f('g', [1, 3, 3, 2])], [f('y', [1, 2, 3, 3])], 'E_UNSUPPORTED', 'GridSample needs static input and grid shapes');
    await refuse([N('GridSample', ['x', 'g'], ['y'], { mode: 'area' })], [x4, f('g', [1, 3, 3, 2])], [f('y', [1, 2, 3, 3])], 'E_UNSUPPORTED', "GridSample mode 'area'");
    await refuse([N('GridSample', ['x', 'g'], ['y'], { padding_mode: 'wrap' })], [x4, f('g', [1, 3, 3, 2])], [f('y', [1, 2, 3, 3])], 'E_UNSUPPORTED', "GridSample padding_mode 'wrap'");
    await refuse([N('GridSample', ['x', 'g'], ['y'], { padding_mode: 'reflection', align_corners: 1 })], [f('x', [1, 2, 1, 4]), f('g', [1, 3, 3, 2])], [f('y', [1, 2, 3, 3])], 'E_UNSUPPORTED', 'GridSample reflection with align_corners over a size-1 axis');
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'])], [x4, f('r', [2, 4]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_UNSUPPORTED', 'RoiAlign sampling_ratio 0 (adaptive grid per ROI)', [], 16);
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'], { sampling_ratio: 2, coordinate_transformation_mode: 'tf_crop' })], [x4, f('r', [2, 4]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_UNSUPPORTED', "RoiAlign coordinate_transformation_mode 'tf_crop'", [], 16);
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'], { sampling_ratio: 2, mode: 'median' })], [x4, f('r', [2, 4]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_UNSUPPORTED', "RoiAlign mode 'median'", [], 16);
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'], { sampling_ratio: 2 })], [{ name: 'x', dims: [1, 2, 'h', 4] }, f('r', [2, 4]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_UNSUPPORTED', 'RoiAlign needs a 4-D input with static height and width', [], 16);
    await refuse([N('NonMaxSuppression', ['b', 's', 'k'], ['y'])], [{ name: 'b', dims: ['n', 5, 4] }, { name: 's', dims: ['n', 2, 5] }], [idx('y', ['m', 3])], 'E_UNSUPPORTED', 'NonMaxSuppression needs static batch and class counts', [i64('k', [3])], 11);
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'], { sampling_ratio: 2 })], [{ name: 'x', dims: [1, 'c', 4, 4] }, f('r', [2, 4]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_UNSUPPORTED', 'RoiAlign needs a static channel count', [], 16);
    await refuse([N('NonMaxSuppression', ['b', 's', 'k'], ['y'])], [f('b', [1, 5, 4]), f('s', [1, 5000, 5])], [idx('y', ['m', 3])], 'E_UNSUPPORTED', 'NonMaxSuppression over 1×5000 (batch, class) pairs', [i64('k', [3])], 11);
    await refuse([N('NonMaxSuppression', ['b', 's', 'k', 'iou'], ['y'])], [f('b', [1, 5, 4]), f('s', [1, 2, 5])], [idx('y', ['m', 3])], 'E_UNSUPPORTED', 'NonMaxSuppression threshold of type int64', [i64('k', [3]), i64('iou', [0])], 11);
    await refuse([N('LpPool', ['x'], ['y'], { kernel_shape: [2, 2, 2] })], [f('x', [1, 1, 4, 4, 4])], [f('y', [1, 1, 3, 3, 3])], 'E_UNSUPPORTED', 'only 1-D and 2-D spatial ops are supported', [], 18);
    await refuse([N('LpPool', ['x'], ['y'], { kernel_shape: [2, 2] })], [{ name: 'x', dims: [1, 'c', 4, 4] }], [f('y', [1, 1, 3, 3])], 'E_UNSUPPORTED', 'LpPool needs a static channel count', [], 18);
    await refuse([N('Col2Im', ['x', 'im', 'bl'], ['y'])], [f('x', [1, 8, 8])], [f('y', [1, 1, 3, 3, 3])], 'E_UNSUPPORTED', 'Col2Im with other than 2 spatial dims', [i64('im', [3, 3, 3]), i64('bl', [2, 2, 2])], 18);
    await refuse([N('Col2Im', ['x', 'im', 'bl'], ['y'])], [{ name: 'x', dims: [1, 4, 'l'] }], [f('y', [1, 1, 3, 3])], 'E_UNSUPPORTED', 'Col2Im needs an input of static shape', [i64('im', [3, 3]), i64('bl', [2, 2])], 18);
    await refuse([N('DeformConv', ['x', 'w', 'o'], ['y'])], [{ name: 'x', dims: ['n', 1, 3, 3] }, f('o', [1, 8, 2, 2])], [f('y', [1, 1, 2, 2])], 'E_UNSUPPORTED', 'DeformConv needs a 4-D input of static shape', [rand('w', [1, 1, 2, 2], 1)], 19);
    await refuse([N('AffineGrid', ['t', 's'], ['y'])], [f('t', [1, 2, 4])], [f('y', [1, 2, 2, 2])], 'E_UNSUPPORTED', 'AffineGrid theta must have static shape', [i64('s', [1, 1, 2, 2])]);
    await refuse([N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2, 2] })], [{ name: 'x', dims: [1, 1, 'h', 2] }, idx('i', [1, 1, 'h', 2])], [f('y', [1, 1, 4, 4])], 'E_UNSUPPORTED', 'MaxUnpool needs static input dims');
    await refuse([N('LpPool', ['x'], ['y'], { kernel_shape: [2, 2] })], [{ name: 'x', dims: [1, 2, 4, 4], dtype: 'int32' }], [{ name: 'y', dims: [1, 2, 3, 3], dtype: 'int32' }], 'E_UNSUPPORTED', 'LpPool on int32 input (float32 only)', [], 18);
  });

  it('E_MALFORMED and E_LIMIT', async () => {
    await refuse([N('CenterCropPad', ['x', 's'], ['y'], { axes: [3] })], [f('x', [2, 3, 4])], [f('y', [2, 3, 4])], 'E_MALFORMED', 'CenterCropPad axes [3] for rank 3', [i64('s', [2])], 18);
    await refuse([N('CenterCropPad', ['x', 's'], ['y'], { axes: [0, 1] })], [f('x', [2, 3, 4])], [f('y', [2, 3, 4])], 'E_MALFORMED', 'CenterCropPad shape has 3 values for 2 axes', [i64('s', [2, 2, 2])], 18);
    await refuse([N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2] })], [x4, idx('i', [1, 2, 4, 4])], [f('y', [1, 2, 8, 8])], 'E_MALFORMED', 'kernel_shape has 1 values for 2 spatial dims');
    await refuse([N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2, 2] })], [x4, f('i', [1, 2, 4, 4])], [f('y', [1, 2, 8, 8])], 'E_MALFORMED', 'MaxUnpool indices are float32');
    await refuse([N('MaxUnpool', ['x', 'i', 's'], ['y'], { kernel_shape: [2, 2] })], [x4, idx('i', [1, 2, 4, 4])], [f('y', [1, 2, 8, 8])], 'E_MALFORMED', 'output_shape has 3 values for rank 4', [i64('s', [1, 2, 8])]);
    await refuse([N('MaxUnpool', ['x', 'i', 's'], ['y'], { kernel_shape: [2, 2] })], [x4, idx('i', [1, 2, 4, 4])], [f('y', [1, 2, 8, 8])], 'E_LIMIT', 'MaxUnpool output of 20000000000 elements', [i64('s', [1, 2, 100000, 100000])]);
    await refuse([N('Col2Im', ['x', 'im', 'bl'], ['y'], { strides: [1] })], [f('x', [1, 4, 4])], [f('y', [1, 1, 3, 3])], 'E_MALFORMED', 'Col2Im dilations [1,1], strides [1], pads [0,0,0,0] do not describe 2 spatial dims', [i64('im', [3, 3]), i64('bl', [2, 2])], 18);
    await refuse([N('Col2Im', ['x', 'im', 'bl'], ['y'], { strides: [1, 0] })], [f('x', [1, 4, 4])], [f('y', [1, 1, 3, 3])], 'E_MALFORMED', 'strides [1,0]', [i64('im', [3, 3]), i64('bl', [2, 2])], 18);
    await refuse([N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2, 2], strides: [2] })], [x4, idx('i', [1, 2, 4, 4])], [f('y', [1, 2, 8, 8])], 'E_MALFORMED', 'MaxUnpool kernel_shape [2,2], strides [2], pads [0,0,0,0] do not describe 2 spatial dims');
    await refuse([N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2, 2], pads: [0, -1, 0, 0] })], [x4, idx('i', [1, 2, 4, 4])], [f('y', [1, 2, 8, 8])], 'E_MALFORMED', 'pads [0,-1,0,0]');
    await refuse([N('Col2Im', ['x', 'im', 'bl'], ['y'])], [f('x', [1, 4096, 8192])], [f('y', [1, 1, 3, 3])], 'E_LIMIT', 'Col2Im input of 4096×8192 columns', [i64('im', [3, 3]), i64('bl', [2, 2])], 18);
    await refuse([N('AffineGrid', ['t', 's'], ['y'])], [f('t', [1, 2, 3])], [f('y', [1, 2, 2, 2])], 'E_MALFORMED', 'AffineGrid size has 5 values for a 2-D theta', [i64('s', [1, 1, 2, 2, 2])]);
    await refuse([N('GridSample', ['x', 'g'], ['y'])], [x4, f('g', [2, 3, 3, 2])], [f('y', [1, 2, 3, 3])], 'E_MALFORMED', 'GridSample grid [2,3,3,2] does not match input [1,2,4,4]');
    await refuse([N('GridSample', ['x', 'g'], ['y'])], [x4, f('g', [1, 3000, 3000, 2])], [f('y', [1, 2, 3000, 3000])], 'E_LIMIT', 'GridSample output of 1×2×9000000');
    await refuse([N('LpPool', ['x'], ['y'], { kernel_shape: [5, 5] })], [x4], [f('y', [1, 2, 1, 1])], 'E_MALFORMED', 'LpPool window larger than the padded input', [], 18);
    await refuse([N('LpPool', ['x'], ['y'], { kernel_shape: [5000, 5000] })], [{ name: 'x', dims: [1, 2, 'h', 'w'] }], [f('y', [1, 2, 1, 1])], 'E_LIMIT', 'LpPool window 5000×5000 over 2 channels', [], 18);
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'], { sampling_ratio: 1 })], [x4, f('r', [2, 5]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_MALFORMED', 'RoiAlign rois have shape [2,5]', [], 16);
    await refuse([N('RoiAlign', ['x', 'r', 'b'], ['y'], { sampling_ratio: 1, output_height: 0 })], [x4, f('r', [2, 4]), idx('b', [2])], [f('y', [2, 2, 1, 1])], 'E_MALFORMED', 'RoiAlign output 0×1', [], 16);
    await refuse([N('NonMaxSuppression', ['b', 's', 'k'], ['y'])], [f('b', [1, 5, 5]), f('s', [1, 2, 5])], [idx('y', ['m', 3])], 'E_MALFORMED', 'NonMaxSuppression boxes have 5 coordinates', [i64('k', [3])], 11);
    await refuse([N('NonMaxSuppression', ['b', 's', 'k'], ['y'])], [f('b', [1, 5, 4]), f('s', [1, 2, 6])], [idx('y', ['m', 3])], 'E_MALFORMED', 'NonMaxSuppression boxes [1,5,4] do not match scores [1,2,6]', [i64('k', [3])], 11);
    await refuse([N('MaxUnpool', ['x', 'i'], ['y'], { kernel_shape: [2, 2] })], [x4, idx('i', [1, 2, 4, 3])], [f('y', [1, 2, 8, 8])], 'E_MALFORMED', 'MaxUnpool indices [1,2,4,3] do not match the input [1,2,4,4]');
    await refuse([N('NonMaxSuppression', ['b', 's', 'k'], ['y'], { center_point_box: 2 })], [f('b', [1, 5, 4]), f('s', [1, 2, 5])], [idx('y', ['m', 3])], 'E_MALFORMED', 'center_point_box 2', [i64('k', [3])], 11);
    await refuse([N('NonMaxSuppression', ['b', 's', 'k'], ['y'])], [f('b', [5, 4]), f('s', [1, 2, 5])], [idx('y', ['m', 3])], 'E_MALFORMED', 'NonMaxSuppression boxes and scores must be 3-D', [i64('k', [3])], 11);
    await refuse([N('DeformConv', ['x', 'w', 'o'], ['y'], { group: 3 })], [x4, f('o', [1, 8, 3, 3])], [f('y', [1, 1, 3, 3])], 'E_MALFORMED', 'group 3 does not fit 2 input / 3 output channels', [rand('w', [3, 1, 2, 2], 1)], 19);
    await refuse([N('DeformConv', ['x', 'w', 'o'], ['y'])], [x4, f('o', [1, 6, 3, 3])], [f('y', [1, 1, 3, 3])], 'E_MALFORMED', 'DeformConv offset shape [1,6,3,3], expected [1,8,3,3]', [rand('w', [1, 2, 2, 2], 1)], 19);
  });
});
