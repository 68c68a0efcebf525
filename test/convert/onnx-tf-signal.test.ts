/**
 * Signal ops (windows, MelWeightMatrix, DFT, STFT) and Unique / ReverseSequence / TensorScatter /
 * Det converted to TF and run in TF.js, against onnxruntime on the same inputs (float32 within
 * 1e-4, relative 1e-3 for large values; integers exact) and the ONNX node tests in the corpus.
 */
import '../../src/convert/onnx-tf/handlers/signal.js';
import '../../src/convert/onnx-tf/handlers/tensor-extra.js';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DType } from '../../src/core/dtype.js';
import { ModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { runConformance } from '../../src/bench/conformance.js';
import { buildModel, compare, nums, onnxNode as N, rand, runOrt, runTf, tensorOf, type IoSpec } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

const f32 = (name: string, dims: number[]): IoSpec => ({ name, dims });
const io = (name: string, dims: number[], dtype: DType): IoSpec => ({ name, dims, dtype });
const i64 = (name: string, vals: number[], shape = [vals.length]): Tensor => tensorOf(name, 'int64', shape, vals);

/** Largest deviation allowed: 1e-4 absolute plus 1e-3 of the largest magnitude. */
async function expectClose(m: ReturnType<typeof buildModel>, feeds: Tensor[]): Promise<void> {
  const { diffs } = await compare(m, feeds);
  const want = await runOrt(m.bytes, feeds);
  for (const [k, d] of Object.entries(diffs)) {
    const scale = Math.max(...nums(want.get(k)!).map(Math.abs), 0);
    expect(d, k).toBeLessThanOrEqual(1e-4 + 1e-3 * scale);
  }
}

async function expectExact(m: ReturnType<typeof buildModel>, feeds: Tensor[]): Promise<void> {
  const { diffs } = await compare(m, feeds);
  for (const [k, d] of Object.entries(diffs)) expect(d, k).toBe(0);
}

async function refusal(m: ReturnType<typeof buildModel>, ...parts: string[]): Promise<void> {
  const e = await onnxToTf(m.model, { constants: true }).then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(ModelsmithError);
  expect((e as ModelsmithError).code).toBe('E_UNSUPPORTED');
  for (const p of parts) expect((e as Error).message).toContain(p);
}

describe('windows', () => {
  for (const op of ['HannWindow', 'HammingWindow', 'BlackmanWindow']) {
    for (const periodic of [0, 1]) {
      it(`${op} periodic=${periodic}: constant size (folded) and run-time size (Range/Cos)`, async () => {
        const folded = buildModel([N(op, ['n'], ['w'], { periodic })], [], [f32('w', [11])], [i64('n', [11], [])], 17);
        await expectClose(folded, []);
        const res = await onnxToTf(folded.model, { constants: true });
        expect(res.graph.node.some((n) => n.op === 'Cos')).toBe(false);
        const live = buildModel([N(op, ['n'], ['w'], { periodic })], [io('n', [], 'int64')], [f32('w', [-1] as number[])], [], 17);
        await expectClose(live, [i64('n', [13], [])]);
        expect((await onnxToTf(live.model, { constants: true })).graph.node.some((n) => n.op === 'Cos')).toBe(true);
      });
    }
  }

  it('output_datatype double', async () => {
    await expectClose(buildModel([N('HannWindow', ['n'], ['w'], { output_datatype: 11 })], [io('n', [], 'int64')], [io('w', [-1], 'float64')], [], 17), [i64('n', [7], [])]);
  });
});

describe('MelWeightMatrix', () => {
  it('constant parameters fold; run-time parameters are built in the graph (same filters)', async () => {
    const vals = [i64('m', [10], []), i64('d', [64], []), i64('s', [16000], []), tensorOf('lo', 'float32', [], [100]), tensorOf('hi', 'float32', [], [7000])];
    const node = N('MelWeightMatrix', ['m', 'd', 's', 'lo', 'hi'], ['w']);
    const folded = buildModel([node], [], [f32('w', [33, 10])], vals, 17);
    const res = await onnxToTf(folded.model, { constants: true });
    const want = (await runOrt(folded.bytes, [])).get('w')!;
    const got = (await runTf(res, [])).get('w')!;
    expect(got.shape).toEqual([33, 10]);
    expect(Math.max(...nums(got).map((v, i) => Math.abs(v - nums(want)[i]!)))).toBeLessThanOrEqual(1e-6);
    const live = buildModel([node], vals.map((v) => io(v.name, [], v.dtype)), [f32('w', [-1, -1])], [], 17);
    await expectClose(live, vals);
  });
});

describe('DFT', () => {
  const x = rand('x', [2, 8, 3, 1], 5);
  const xc = rand('x', [2, 8, 3, 2], 6);
  const cases: Array<{ name: string; nodes: ReturnType<typeof N>[]; input: Tensor; out: number[]; inits?: Tensor[]; opset?: number }> = [
    { name: 'real, axis 1', nodes: [N('DFT', ['x'], ['y'], { axis: 1 })], input: x, out: [2, 8, 3, 2] },
    { name: 'real, axis 2, onesided', nodes: [N('DFT', ['x'], ['y'], { axis: 2, onesided: 1 })], input: x, out: [2, 8, 2, 2] },
    { name: 'real, onesided, dft_length 6 (truncates)', nodes: [N('DFT', ['x', 'L'], ['y'], { onesided: 1 })], input: x, out: [2, 4, 3, 2], inits: [i64('L', [6], [])] },
    { name: 'complex, dft_length 12 (zero-pads)', nodes: [N('DFT', ['x', 'L'], ['y'])], input: xc, out: [2, 12, 3, 2], inits: [i64('L', [12], [])] },
    { name: 'complex inverse, axis -2 (last signal axis)', nodes: [N('DFT', ['x'], ['y'], { inverse: 1, axis: -2 })], input: xc, out: [2, 8, 3, 2] },
    { name: 'complex, negative axis 0 as -4', nodes: [N('DFT', ['x'], ['y'], { axis: -3 })], input: xc, out: [2, 8, 3, 2] },
    { name: 'opset 20: axis input, inverse of complex', nodes: [N('DFT', ['x', '', 'ax'], ['y'], { inverse: 1 })], input: xc, out: [2, 8, 3, 2], inits: [i64('ax', [1], [])], opset: 20 },
    { name: 'opset 20: default axis -2, onesided', nodes: [N('DFT', ['x'], ['y'], { onesided: 1 })], input: x, out: [2, 8, 2, 2], opset: 20 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      await expectClose(buildModel(c.nodes, [f32('x', c.input.shape)], [f32('y', c.out)], c.inits ?? [], c.opset ?? 17), [c.input]);
    });
  }

  it('length known only at run time (matrices built in the graph): real onesided, complex inverse', async () => {
    const real = buildModel([N('DFT', ['x'], ['y'], { onesided: 1 })], [{ name: 'x', dims: [2, 'n', 3, 1] }], [f32('y', [2, -1, 3, 2])], [], 17);
    await expectClose(real, [rand('x', [2, 10, 3, 1], 14)]);
    const cplx = buildModel([N('DFT', ['x'], ['y'], { inverse: 1 })], [{ name: 'x', dims: [2, 'n', 3, 2] }], [f32('y', [2, -1, 3, 2])], [], 17);
    await expectClose(cplx, [rand('x', [2, 7, 3, 2], 15)]);
    await refusal(buildModel([N('DFT', ['x', 'L'], ['y'])], [{ name: 'x', dims: [2, 'n', 1] }], [f32('y', [2, 4, 2])], [i64('L', [4], [])], 17), 'dft_length along a dim of unknown size');
  });

  it('refuses onesided inverse and a run-time axis; E_LIMIT on huge lengths', async () => {
    await refusal(buildModel([N('DFT', ['x'], ['y'], { inverse: 1, onesided: 1 })], [f32('x', [2, 8, 1])], [f32('y', [2, 5, 2])], [], 17), 'DFT with both onesided and inverse');
    await refusal(buildModel([N('DFT', ['x', '', 'ax'], ['y'])], [f32('x', [2, 8, 1]), io('ax', [], 'int64')], [f32('y', [2, 8, 2])], [], 20), 'DFT axis must be a constant');
    await refusal(buildModel([N('DFT', ['x'], ['y'])], [f32('x', [2, 8, 3])], [f32('y', [2, 8, 2])], [], 17), 'the last dim must be 1 (real) or 2 (complex)');
    const e = await onnxToTf(buildModel([N('DFT', ['x', 'L'], ['y'])], [f32('x', [1, 8, 1])], [f32('y', [1, -1, 2])], [i64('L', [1 << 20], [])], 17).model).catch((x: unknown) => x);
    expect((e as ModelsmithError).code).toBe('E_LIMIT');
  });
});

describe('STFT', () => {
  const sig = rand('s', [2, 64, 1], 9, 'float32', -4, 4);
  it('window from HannWindow, constant step and length, onesided', async () => {
    const m = buildModel([N('HannWindow', ['wl'], ['w']), N('STFT', ['s', 'step', 'w', 'len'], ['y'])], [f32('s', [2, 64, 1])], [f32('y', [2, 7, 9, 2])],
      [i64('wl', [16], []), i64('step', [8], []), i64('len', [16], [])], 17);
    await expectClose(m, [sig]);
  });

  it('run-time frame_step and frame_length (matrices built in the graph), no window', async () => {
    const m = buildModel([N('STFT', ['s', 'step', '', 'len'], ['y'])], [f32('s', [2, 64, 1]), io('step', [], 'int64'), io('len', [], 'int64')], [f32('y', [2, -1, -1, 2])], [], 17);
    await expectClose(m, [sig, i64('step', [6], []), i64('len', [12], [])]);
  });

  it('complex signal two-sided (frame_length only), real signal two-sided with a window only', async () => {
    const c = buildModel([N('STFT', ['s', 'step', '', 'len'], ['y'], { onesided: 0 })], [f32('s', [1, 40, 2])], [f32('y', [1, 7, 10, 2])], [i64('step', [5], []), i64('len', [10], [])], 17);
    await expectClose(c, [rand('s', [1, 40, 2], 12)]);
    const r = buildModel([N('STFT', ['s', 'step', 'w'], ['y'], { onesided: 0 })], [f32('s', [1, 40, 1])], [f32('y', [1, 7, 10, 2])], [i64('step', [5], []), rand('w', [10], 4, 'float32', 0, 1)], 17);
    await expectClose(r, [rand('s', [1, 40, 1], 13)]);
  });

  it('refuses a signal of rank 4 and needs a window or a frame_length', async () => {
    await refusal(buildModel([N('STFT', ['s', 'step'], ['y'])], [f32('s', [1, 2, 40, 1])], [f32('y', [1, -1, -1, 2])], [i64('step', [5], [])], 17), 'STFT signal [1,2,40,1]');
    const e = await onnxToTf(buildModel([N('STFT', ['s', 'step'], ['y'])], [f32('s', [1, 40, 1])], [f32('y', [1, -1, -1, 2])], [i64('step', [5], [])], 17).model).catch((x: unknown) => x);
    expect((e as ModelsmithError).code).toBe('E_MALFORMED');
    expect((e as Error).message).toContain('STFT needs a window or a frame_length');
  });
});

describe('Unique', () => {
  const x = tensorOf('x', 'float32', [12], [3, 1, 2, 3, -1, 2, 2, 7, 1, 0.5, 3, -1]);
  const outs = (yShape: number[], n: number): IoSpec[] => [f32('y', yShape), io('i', [-1], 'int64'), io('inv', [n], 'int64'), io('c', [-1], 'int64')];
  for (const sorted of [1, 0]) {
    it(`flattened, sorted=${sorted}, all four outputs`, async () => {
      await expectExact(buildModel([N('Unique', ['x'], ['y', 'i', 'inv', 'c'], { sorted })], [f32('x', [12])], outs([-1], 12), [], 11), [x]);
    });
  }

  it('int64 input of rank 2 (flattened), sorted', async () => {
    const xi = tensorOf('x', 'int64', [2, 6], [5, -3, 5, 9, 0, 0, -3, 5, 8, 8, 1, 9]);
    await expectExact(buildModel([N('Unique', ['x'], ['y', 'i', 'inv', 'c'])], [io('x', [2, 6], 'int64')], [io('y', [-1], 'int64'), io('i', [-1], 'int64'), io('inv', [12], 'int64'), io('c', [-1], 'int64')], [], 11), [xi]);
  });

  it('unsorted slices along axis 0', async () => {
    const xs = tensorOf('x', 'float32', [5, 3], [1, 2, 3, 4, 5, 6, 1, 2, 3, 0, 0, 0, 4, 5, 6]);
    await expectExact(buildModel([N('Unique', ['x'], ['y', 'i', 'inv', 'c'], { sorted: 0, axis: 0 })], [f32('x', [5, 3])], outs([-1, 3], 5), [], 11), [xs]);
  });

  it('constant input folds, sorted along axis 1', async () => {
    const c = tensorOf('x', 'float32', [2, 4], [2, 1, 2, 0, 5, 3, 5, 3]);
    const m = buildModel([N('Unique', ['x'], ['y', 'i', 'inv', 'c'], { axis: 1 })], [], [f32('y', [2, 3]), io('i', [3], 'int64'), io('inv', [4], 'int64'), io('c', [3], 'int64')], [c], 11);
    await expectExact(m, []);
    expect((await onnxToTf(m.model, { constants: true })).graph.node.some((n) => n.op.startsWith('Unique'))).toBe(false);
  });

  it('sorted slices along an axis at run time (lexicographic rank), axis 1 and axis 0', async () => {
    const xs = tensorOf('x', 'float32', [3, 5], [2, 1, 2, 0, 1, 5, 3, 5, 3, 3, 1, 1, 1, 1, 1]);
    await expectExact(buildModel([N('Unique', ['x'], ['y', 'i', 'inv', 'c'], { axis: 1 })], [f32('x', [3, 5])], [f32('y', [3, -1]), io('i', [-1], 'int64'), io('inv', [5], 'int64'), io('c', [-1], 'int64')], [], 11), [xs]);
    const rows = tensorOf('x', 'int64', [6, 2], [3, 1, 1, 9, 3, 0, 1, 9, -2, 5, 3, 1]);
    await expectExact(buildModel([N('Unique', ['x'], ['y', 'i', 'inv', 'c'], { axis: -2 })], [io('x', [6, 2], 'int64')], [io('y', [-1, 2], 'int64'), io('i', [-1], 'int64'), io('inv', [6], 'int64'), io('c', [-1], 'int64')], [], 11), [rows]);
  });

  it('refuses sorted Unique of bools at run time', async () => {
    await refusal(buildModel([N('Unique', ['x'], ['y'])], [io('x', [4], 'bool')], [io('y', [-1], 'bool')], [], 11), 'sorted Unique of bool values');
  });
});

describe('ReverseSequence', () => {
  it('time_axis 0 / batch_axis 1, rank 3', async () => {
    const m = buildModel([N('ReverseSequence', ['x', 'l'], ['y'], { time_axis: 0, batch_axis: 1 })], [f32('x', [5, 3, 2]), io('l', [3], 'int64')], [f32('y', [5, 3, 2])], [], 10);
    await expectExact(m, [rand('x', [5, 3, 2], 2), i64('l', [5, 2, 1])]);
  });

  it('batch_axis 0 / time_axis 1', async () => {
    const m = buildModel([N('ReverseSequence', ['x', 'l'], ['y'], { time_axis: 1, batch_axis: 0 })], [f32('x', [3, 6, 2]), io('l', [3], 'int64')], [f32('y', [3, 6, 2])], [], 10);
    await expectExact(m, [rand('x', [3, 6, 2], 3), i64('l', [6, 3, 1])]);
  });
});

describe('TensorScatter', () => {
  /** The op as its spec reads: past copied, then update[j] written at (w[b] + j) along the axis, wrapped in circular mode. */
  function oracle(past: number[], pShape: number[], upd: number[], uShape: number[], w: number[], axis: number, circular: boolean): number[] {
    const out = [...past];
    const strides = (s: number[]): number[] => s.map((_, i) => s.slice(i + 1).reduce((p, q) => p * q, 1));
    const ps = strides(pShape);
    const us = strides(uShape);
    for (let u = 0; u < upd.length; u++) {
      const idx = us.map((st, i) => Math.floor(u / st) % uShape[i]!);
      let p = idx[axis]! + w[idx[0]!]!;
      if (circular) p %= pShape[axis]!;
      if (p >= pShape[axis]!) continue;
      idx[axis] = p;
      out[idx.reduce((s, v, i) => s + v * ps[i]!, 0)] = upd[u]!;
    }
    return out;
  }

  for (const mode of ['linear', 'circular']) {
    it(`${mode}, axis -2 with write indices, and axis 1 without`, async () => {
      const past = rand('past', [3, 2, 6, 4], 31);
      const upd = rand('upd', [3, 2, 3, 4], 32);
      const w = i64('w', mode === 'linear' ? [0, 2, 3] : [4, 5, 1]);
      const m = buildModel([N('TensorScatter', ['past', 'upd', 'w'], ['y'], { mode })], [f32('past', [3, 2, 6, 4]), f32('upd', [3, 2, 3, 4]), io('w', [3], 'int64')], [f32('y', [3, 2, 6, 4])], [], 24);
      const got = nums((await runTf(await onnxToTf(m.model, { constants: true }), [past, upd, w])).get('y')!);
      expect(got).toEqual(oracle(nums(past), past.shape, nums(upd), upd.shape, nums(w), 2, mode === 'circular'));
      const m1 = buildModel([N('TensorScatter', ['past', 'upd'], ['y'], { mode, axis: 1 })], [f32('past', [3, 2, 6, 4]), f32('u1', [3, 1, 6, 4])].map((v, i) => (i === 1 ? { ...v, name: 'upd' } : v)), [f32('y', [3, 2, 6, 4])], [], 24);
      const u1 = rand('upd', [3, 1, 6, 4], 33);
      const got1 = nums((await runTf(await onnxToTf(m1.model, { constants: true }), [past, u1])).get('y')!);
      expect(got1).toEqual(oracle(nums(past), past.shape, nums(u1), u1.shape, [0, 0, 0], 1, mode === 'circular'));
    });
  }

  it('refuses an unknown mode and the batch axis', async () => {
    await refusal(buildModel([N('TensorScatter', ['p', 'u'], ['y'], { mode: 'ring' })], [f32('p', [2, 4, 3]), f32('u', [2, 1, 3])], [f32('y', [2, 4, 3])], [], 24), "TensorScatter mode 'ring'");
    const e = await onnxToTf(buildModel([N('TensorScatter', ['p', 'u'], ['y'], { axis: 0 })], [f32('p', [2, 4, 3]), f32('u', [2, 1, 3])], [f32('y', [2, 4, 3])], [], 24).model).catch((x: unknown) => x);
    expect((e as ModelsmithError).code).toBe('E_MALFORMED');
  });
});

describe('Det', () => {
  for (const shape of [[2, 2], [3, 3, 3], [2, 4, 4], [5, 5], [2, 1, 1]]) {
    it(`[${shape.join(',')}] at run time (Leibniz expansion)`, async () => {
      await expectClose(buildModel([N('Det', ['x'], ['y'])], [f32('x', shape)], [f32('y', shape.slice(0, -2))], [], 11), [rand('x', shape, shape.length * 7 + shape[shape.length - 1]!)]);
    });
  }

  it('constant input folds (LU in float64)', async () => {
    const m = buildModel([N('Det', ['x'], ['y'])], [], [f32('y', [2])], [rand('x', [2, 6, 6], 41)], 11);
    await expectClose(m, []);
  });

  it('refuses run-time matrices above 5×5 and non-square ones', async () => {
    await refusal(buildModel([N('Det', ['x'], ['y'])], [f32('x', [6, 6])], [f32('y', [])], [], 11), 'Det of 6×6 matrices computed at run time');
    await refusal(buildModel([N('Det', ['x'], ['y'])], [f32('x', [3, 4])], [f32('y', [])], [], 11), 'Det needs static square trailing dims');
  });
});

describe('malformed parameters (E_MALFORMED) and limits (E_LIMIT)', () => {
  async function code(m: ReturnType<typeof buildModel>, want: string, part: string): Promise<void> {
    const e = await onnxToTf(m.model, { constants: true }).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(ModelsmithError);
    expect((e as ModelsmithError).code).toBe(want);
    expect((e as Error).message).toContain(part);
    expect((e as Error).message).toContain('test.onnx');
  }

  it('names the node and the bad value', async () => {
    await code(buildModel([N('HannWindow', ['n'], ['w'])], [], [f32('w', [1])], [i64('n', [-3], [])], 17), 'E_MALFORMED', 'window size -3');
    await code(buildModel([N('HannWindow', ['n'], ['w'])], [], [f32('w', [1])], [i64('n', [3, 4], [2])], 17), 'E_MALFORMED', 'window size must be a scalar');
    const mel = [i64('m', [0], []), i64('d', [64], []), i64('s', [16000], []), tensorOf('lo', 'float32', [], [0]), tensorOf('hi', 'float32', [], [8000])];
    await code(buildModel([N('MelWeightMatrix', ['m', 'd', 's', 'lo', 'hi'], ['w'])], [], [f32('w', [33, 1])], mel, 17), 'E_MALFORMED', 'num_mel_bins 0');
    await code(buildModel([N('DFT', ['x'], ['y'], { axis: 2 })], [f32('x', [2, 8, 1])], [f32('y', [2, 8, 2])], [], 17), 'E_MALFORMED', 'DFT axis 2 out of range');
    await code(buildModel([N('STFT', ['s', 'step', '', 'len'], ['y'])], [f32('s', [1, 40, 1])], [f32('y', [1, -1, -1, 2])], [i64('step', [0], []), i64('len', [8], [])], 17), 'E_MALFORMED', 'STFT frame_step 0');
    await code(buildModel([N('STFT', ['s', 'step', '', 'len'], ['y'])], [f32('s', [1, 9000, 1])], [f32('y', [1, -1, -1, 2])], [i64('step', [1], []), i64('len', [8000], [])], 17), 'E_LIMIT', 'limit');
    await code(buildModel([N('STFT', ['s', 'step', 'w', 'len'], ['y'])], [f32('s', [1, 40, 1])], [f32('y', [1, -1, -1, 2])], [i64('step', [4], []), rand('w', [6], 1), i64('len', [8], [])], 17), 'E_MALFORMED', 'STFT window of 6 samples for frame length 8');
    await code(buildModel([N('STFT', ['s', 'step', '', 'len'], ['y'])], [f32('s', [1, 6, 1])], [f32('y', [1, -1, -1, 2])], [i64('step', [4], []), i64('len', [8], [])], 17), 'E_MALFORMED', 'shorter than the frame length 8');
    await code(buildModel([N('Unique', ['x'], ['y'], { axis: 3 })], [f32('x', [2, 4])], [f32('y', [-1])], [], 11), 'E_MALFORMED', 'Unique axis 3 out of range');
    await code(buildModel([N('Det', ['x'], ['y'])], [f32('x', [4])], [f32('y', [])], [], 11), 'E_MALFORMED', 'Det input has rank 1');
    await code(buildModel([N('ReverseSequence', ['x', 'l'], ['y'], { batch_axis: 0, time_axis: 0 })], [f32('x', [3, 4]), io('l', [3], 'int64')], [f32('y', [3, 4])], [], 10), 'E_MALFORMED', 'must be 0 and 1');
    await code(buildModel([N('TensorScatter', ['p', 'u'], ['y'])], [f32('p', [2, 4, 3]), f32('u', [2, 1])], [f32('y', [2, 4, 3])], [], 24), 'E_MALFORMED', 'update rank 2');
  });
});

describe('ONNX node tests', () => {
  it('every signal / Unique / ReverseSequence / TensorScatter / Det node test passes', async () => {
    const names = ['test_blackmanwindow', 'test_hammingwindow', 'test_hannwindow', 'test_melweightmatrix', 'test_dft_rfft_opset19', 'test_stft', 'test_unique_length_1',
      'test_reversesequence_time', 'test_tensorscatter', 'test_det_2d'];
    const s = await runConformance(NODE_TESTS, (t) => names.includes(t));
    expect(s.results.map((r) => [r.test, r.outcome, r.detail])).toEqual([...names].sort().map((t) => [t, 'pass', undefined]));
  });
});
