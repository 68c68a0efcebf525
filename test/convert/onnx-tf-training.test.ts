import '../../src/convert/onnx-tf/handlers/training.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { dtypeInfo, type DType } from '../../src/core/dtype.js';
import type { Tensor } from '../../src/core/tensor.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { decodeOnnx, type OnnxModel } from '../../src/formats/onnx/read.js';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { nums, onnxNode, rand, runTf, tensorOf } from './onnx-tf-helpers.js';

const NODE_DIR = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');
const DOMAIN = 'ai.onnx.preview.training';

/** float32 tolerance: 1e-4 absolute, 1e-3 relative for large values. */
function expectClose(got: number[], want: number[], what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tol = Math.max(1e-4, 1e-3 * Math.abs(want[i]!));
    expect(Number.isFinite(got[i]!), `${what}[${i}] finite`).toBe(true);
    expect(Math.abs(got[i]! - want[i]!), `${what}[${i}]: got ${got[i]}, want ${want[i]}`).toBeLessThanOrEqual(tol);
  }
}

type AttrVal = Parameters<typeof onnxNode>[3] extends Record<string, infer V> | undefined ? V : never;

/** A one-node model in the training domain (plus ai.onnx, which the rest of a real graph would use). */
function trainingModel(op: string, groups: string[], n: number, shapes: number[][], attrs: Record<string, AttrVal>, opts: { dtype?: DType; inputs?: string[]; rShape?: number[] } = {}): { model: OnnxModel; inputs: string[]; outputs: string[] } {
  const names = (g: string): string[] => Array.from({ length: n }, (_, i) => `${g}${i}`);
  const inputs = opts.inputs ?? ['R', 'T', ...groups.flatMap(names)];
  const outGroups = groups.filter((g) => g !== 'G');
  const outputs = outGroups.flatMap((g) => names(g).map((x) => `${x}_new`));
  const node = onnxNode(op, inputs, outputs, attrs);
  node.domain = DOMAIN;
  const dt = dtypeInfo(opts.dtype ?? 'float32').onnx;
  const shapeOf = (name: string): number[] => (name === 'R' ? (opts.rShape ?? []) : name === 'T' ? [] : shapes[Number(name.slice(1))]!);
  const proto = create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n }), create(OperatorSetIdProtoSchema, { domain: DOMAIN, version: 1n })],
    graph: create(GraphProtoSchema, {
      name: 'g',
      node: [node],
      input: [...new Set(inputs)].map((i) => tensorValueInfo(i, shapeOf(i), i === 'T' ? dtypeInfo('int64').onnx : i === 'R' ? dtypeInfo('float32').onnx : dt)),
      output: outputs.map((o) => tensorValueInfo(o, shapeOf(o.slice(0, -4)), dt)),
    }),
  });
  return { model: decodeOnnx(toBinary(ModelProtoSchema, proto), { path: 'train.onnx' }), inputs, outputs };
}

// ---- the spec's formulas, in float64, as the oracle onnxruntime cannot be ---------------------------

type Arr = number[];
const zip = (f: (...v: number[]) => number, ...xs: Arr[]): Arr => xs[0]!.map((_, i) => f(...xs.map((x) => x[i]!)));

function adagradRef(r: number, t: number, x: Arr, g: Arr, h: Arr, at: { decay_factor: number; epsilon: number; norm_coefficient: number }): [Arr, Arr] {
  const rr = r / (1 + t * at.decay_factor);
  const gr = zip((xi, gi) => at.norm_coefficient * xi + gi, x, g);
  const hn = zip((hi, gi) => hi + gi * gi, h, gr);
  const xn = zip((xi, gi, hi) => xi - (rr * gi) / (Math.sqrt(hi) + at.epsilon), x, gr, hn);
  return [xn, hn];
}

function adamRef(r: number, t: number, x: Arr, g: Arr, v: Arr, h: Arr, at: { alpha: number; beta: number; epsilon: number; norm_coefficient: number; norm_coefficient_post: number }): [Arr, Arr, Arr] {
  const gr = zip((xi, gi) => at.norm_coefficient * xi + gi, x, g);
  const vn = zip((vi, gi) => at.alpha * vi + (1 - at.alpha) * gi, v, gr);
  const hn = zip((hi, gi) => at.beta * hi + (1 - at.beta) * gi * gi, h, gr);
  const ra = t > 0 ? (r * Math.sqrt(1 - at.beta ** t)) / (1 - at.alpha ** t) : r;
  const xn = zip((xi, vi, hi) => (1 - at.norm_coefficient_post) * (xi - ra * (vi / (Math.sqrt(hi) + at.epsilon))), x, vn, hn);
  return [xn, vn, hn];
}

function momentumRef(r: number, t: number, x: Arr, g: Arr, v: Arr, at: { alpha: number; beta: number; norm_coefficient: number; mode: string }): [Arr, Arr] {
  const gr = zip((xi, gi) => at.norm_coefficient * xi + gi, x, g);
  const b = t > 0 ? at.beta : 1;
  const vn = zip((vi, gi) => at.alpha * vi + b * gi, v, gr);
  const xn = at.mode === 'standard' ? zip((xi, vi) => xi - r * vi, x, vn) : zip((xi, gi, vi) => xi - r * (gi + at.alpha * vi), x, gr, vn);
  return [xn, vn];
}

const f32 = (v: number): number => Math.fround(v);

/** Random X/G/V/H tensors for n optimized tensors of the given shapes (state tensors non-negative). */
function feedsFor(groups: string[], shapes: number[][], seed: number, r: number, t: number): Tensor[] {
  const feeds: Tensor[] = [tensorOf('R', 'float32', [], [r]), tensorOf('T', 'int64', [], [t])];
  groups.forEach((g, k) =>
    shapes.forEach((s, i) => feeds.push(rand(`${g}${i}`, s, seed * 31 + k * 7 + i, 'float32', g === 'H' ? 0 : -1, g === 'H' ? 2 : 1))),
  );
  return feeds;
}

async function runModel(m: ReturnType<typeof trainingModel>, feeds: Tensor[]): Promise<Map<string, number[]>> {
  const res = await onnxToTf(m.model, { constants: true });
  const out = await runTf(res, feeds);
  return new Map([...out].map(([k, v]) => [k, nums(v)]));
}

const arr = (feeds: Tensor[], name: string): Arr => nums(feeds.find((f) => f.name === name)!).map(f32);

describe('ai.onnx.preview.training against the ONNX node tests', () => {
  for (const test of ['test_adagrad', 'test_adam', 'test_momentum']) {
    it(test, async () => {
      const dir = resolve(NODE_DIR, test);
      const model = decodeOnnx(readFileSync(resolve(dir, 'model.onnx')), { path: `${test}/model.onnx` });
      const g = model.proto.graph!;
      const load = (f: string): Tensor => tensorFromProtoSync(decodeTensorProto(readFileSync(resolve(dir, 'test_data_set_0', f)), f));
      const feeds = g.input.map((inp, i) => ({ ...load(`input_${i}.pb`), name: inp.name }));
      const res = await onnxToTf(model, { constants: true });
      const got = await runTf(res, feeds);
      expect(got.size).toBe(g.output.length);
      g.output.forEach((o, i) => {
        const want = load(`output_${i}.pb`);
        const t = got.get(o.name)!;
        expect(t.shape).toEqual(want.shape);
        expectClose(nums(t), nums(want), `${test} ${o.name}`);
      });
    });
  }
});

describe('Adagrad', () => {
  const groups = ['X', 'G', 'H'];
  const cases = [
    { n: 1, shapes: [[5]], t: 0, r: 0.1, at: { decay_factor: 0, epsilon: 0, norm_coefficient: 0 } },
    { n: 2, shapes: [[3, 4], [2, 1, 3]], t: 3, r: 0.05, at: { decay_factor: 0.1, epsilon: 1e-5, norm_coefficient: 0.001 } },
    { n: 3, shapes: [[2], [4, 2], [1]], t: 17, r: 1.5, at: { decay_factor: 0.5, epsilon: 0.01, norm_coefficient: 0.2 } },
  ];
  cases.forEach((c, ci) =>
    it(`matches the spec formulas (case ${ci}: ${c.n} tensors, T=${c.t})`, async () => {
      const m = trainingModel('Adagrad', groups, c.n, c.shapes, { decay_factor: { f: c.at.decay_factor }, epsilon: { f: c.at.epsilon }, norm_coefficient: { f: c.at.norm_coefficient } });
      const feeds = feedsFor(groups, c.shapes, ci + 1, c.r, c.t);
      const got = await runModel(m, feeds);
      for (let i = 0; i < c.n; i++) {
        const [xn, hn] = adagradRef(f32(c.r), c.t, arr(feeds, `X${i}`), arr(feeds, `G${i}`), arr(feeds, `H${i}`), c.at);
        expectClose(got.get(`X${i}_new`)!, xn, `X${i}_new`);
        expectClose(got.get(`H${i}_new`)!, hn, `H${i}_new`);
        // The step must actually move X (guards against an identity graph passing on tiny updates).
        expect(Math.max(...zip((p, q) => Math.abs(p - q), xn, arr(feeds, `X${i}`)))).toBeGreaterThan(1e-3);
      }
    }),
  );

  it('uses the spec defaults when attributes are absent', async () => {
    const m = trainingModel('Adagrad', groups, 1, [[6]], {});
    const feeds = feedsFor(groups, [[6]], 9, 0.3, 4);
    const got = await runModel(m, feeds);
    const [xn, hn] = adagradRef(f32(0.3), 4, arr(feeds, 'X0'), arr(feeds, 'G0'), arr(feeds, 'H0'), { decay_factor: 0, epsilon: 0, norm_coefficient: 0 });
    expectClose(got.get('X0_new')!, xn, 'X0_new');
    expectClose(got.get('H0_new')!, hn, 'H0_new');
  });
});

describe('Adam', () => {
  const groups = ['X', 'G', 'V', 'H'];
  const cases = [
    { n: 1, shapes: [[4]], t: 0, r: 0.1, at: { alpha: 0.9, beta: 0.999, epsilon: 1e-7, norm_coefficient: 0, norm_coefficient_post: 0 } },
    { n: 2, shapes: [[3, 2], [5]], t: 1, r: 0.01, at: { alpha: 0.95, beta: 0.1, epsilon: 1e-7, norm_coefficient: 0.001, norm_coefficient_post: 0 } },
    { n: 3, shapes: [[2, 2], [3], [1, 4]], t: 7, r: 0.2, at: { alpha: 0.5, beta: 0.8, epsilon: 0.01, norm_coefficient: 0.3, norm_coefficient_post: 0.05 } },
  ];
  cases.forEach((c, ci) =>
    it(`matches the spec formulas (case ${ci}: ${c.n} tensors, T=${c.t})`, async () => {
      const m = trainingModel('Adam', groups, c.n, c.shapes, {
        alpha: { f: c.at.alpha }, beta: { f: c.at.beta }, epsilon: { f: c.at.epsilon }, norm_coefficient: { f: c.at.norm_coefficient }, norm_coefficient_post: { f: c.at.norm_coefficient_post },
      });
      const feeds = feedsFor(groups, c.shapes, ci + 11, c.r, c.t);
      const got = await runModel(m, feeds);
      const a = { alpha: f32(c.at.alpha), beta: f32(c.at.beta), epsilon: f32(c.at.epsilon), norm_coefficient: f32(c.at.norm_coefficient), norm_coefficient_post: f32(c.at.norm_coefficient_post) };
      for (let i = 0; i < c.n; i++) {
        const [xn, vn, hn] = adamRef(f32(c.r), c.t, arr(feeds, `X${i}`), arr(feeds, `G${i}`), arr(feeds, `V${i}`), arr(feeds, `H${i}`), a);
        expectClose(got.get(`X${i}_new`)!, xn, `X${i}_new`);
        expectClose(got.get(`V${i}_new`)!, vn, `V${i}_new`);
        expectClose(got.get(`H${i}_new`)!, hn, `H${i}_new`);
      }
    }),
  );

  it('applies the bias correction only when T > 0', async () => {
    const at = { alpha: 0.9, beta: 0.999, epsilon: 0, norm_coefficient: 0, norm_coefficient_post: 0 };
    const m = trainingModel('Adam', groups, 1, [[3]], {});
    const x: Record<number, number[]> = {};
    for (const t of [0, 2]) {
      const feeds = feedsFor(groups, [[3]], 5, 0.1, t);
      const got = await runModel(m, feeds);
      const [xn] = adamRef(f32(0.1), t, arr(feeds, 'X0'), arr(feeds, 'G0'), arr(feeds, 'V0'), arr(feeds, 'H0'), { ...at, alpha: f32(0.9), beta: f32(0.999) });
      expectClose(got.get('X0_new')!, xn, `X0_new T=${t}`);
      x[t] = got.get('X0_new')!;
    }
    // Same inputs, different T: the corrected step differs (≈ R·sqrt(0.002)/0.19 vs R).
    expect(Math.abs(x[0]![0]! - x[2]![0]!)).toBeGreaterThan(1e-3);
  });
});

describe('Momentum', () => {
  const groups = ['X', 'G', 'V'];
  const cases = [
    { n: 1, shapes: [[4]], t: 0, r: 0.1, at: { alpha: 0.95, beta: 0.1, norm_coefficient: 0.001, mode: 'standard' } },
    { n: 2, shapes: [[2, 3], [4]], t: 5, r: 0.1, at: { alpha: 0.95, beta: 0.1, norm_coefficient: 0.001, mode: 'standard' } },
    { n: 2, shapes: [[3], [2, 2]], t: 0, r: 0.2, at: { alpha: 0.9, beta: 0.5, norm_coefficient: 0.01, mode: 'nesterov' } },
    { n: 3, shapes: [[3], [1, 2], [5]], t: 9, r: 0.3, at: { alpha: 0.6, beta: 0.7, norm_coefficient: 0, mode: 'nesterov' } },
  ];
  cases.forEach((c, ci) =>
    it(`matches the spec formulas (case ${ci}: ${c.at.mode}, ${c.n} tensors, T=${c.t})`, async () => {
      const m = trainingModel('Momentum', groups, c.n, c.shapes, { alpha: { f: c.at.alpha }, beta: { f: c.at.beta }, norm_coefficient: { f: c.at.norm_coefficient }, mode: c.at.mode });
      const feeds = feedsFor(groups, c.shapes, ci + 21, c.r, c.t);
      const got = await runModel(m, feeds);
      const a = { ...c.at, alpha: f32(c.at.alpha), beta: f32(c.at.beta), norm_coefficient: f32(c.at.norm_coefficient) };
      for (let i = 0; i < c.n; i++) {
        const [xn, vn] = momentumRef(f32(c.r), c.t, arr(feeds, `X${i}`), arr(feeds, `G${i}`), arr(feeds, `V${i}`), a);
        expectClose(got.get(`X${i}_new`)!, xn, `X${i}_new`);
        expectClose(got.get(`V${i}_new`)!, vn, `V${i}_new`);
      }
    }),
  );
});

describe('scalar inputs', () => {
  it('takes a one-element R and keeps a scalar X scalar', async () => {
    const m = trainingModel('Momentum', ['X', 'G', 'V'], 1, [[]], { alpha: { f: 0.9 }, beta: { f: 0.5 }, norm_coefficient: { f: 0.1 }, mode: 'nesterov' }, { rShape: [1] });
    const feeds = feedsFor(['X', 'G', 'V'], [[]], 3, 0.25, 2).map((f) => (f.name === 'R' ? { ...f, shape: [1] } : f));
    const res = await onnxToTf(m.model, { constants: true });
    const out = await runTf(res, feeds);
    expect(out.get('X0_new')!.shape).toEqual([]);
    const [xn, vn] = momentumRef(f32(0.25), 2, arr(feeds, 'X0'), arr(feeds, 'G0'), arr(feeds, 'V0'), { alpha: f32(0.9), beta: 0.5, norm_coefficient: f32(0.1), mode: 'nesterov' });
    expectClose(nums(out.get('X0_new')!), xn, 'X0_new');
    expectClose(nums(out.get('V0_new')!), vn, 'V0_new');
  });
});

describe('refusals', () => {
  const convert = (m: ReturnType<typeof trainingModel>): Promise<unknown> => onnxToTf(m.model, { constants: true });

  it('refuses an unknown Momentum mode (E_UNSUPPORTED naming it)', async () => {
    const m = trainingModel('Momentum', ['X', 'G', 'V'], 1, [[2]], { alpha: { f: 0.9 }, beta: { f: 1 }, norm_coefficient: { f: 0 }, mode: 'heavyball' });
    await expect(convert(m)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining("mode 'heavyball'") });
  });

  it('rejects a Momentum node missing a required attribute (E_MALFORMED)', async () => {
    const m = trainingModel('Momentum', ['X', 'G', 'V'], 1, [[2]], { alpha: { f: 0.9 }, beta: { f: 1 }, norm_coefficient: { f: 0 } });
    await expect(convert(m)).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringContaining("'mode'") });
  });

  it('rejects inputs that do not split into equal groups (E_MALFORMED)', async () => {
    const m = trainingModel('Adam', ['X', 'G', 'V', 'H'], 1, [[2]], {}, { inputs: ['R', 'T', 'X0', 'G0', 'V0'] });
    await expect(convert(m)).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringContaining('4 equally long groups') });
  });

  it('refuses a learning rate that is not a scalar (E_UNSUPPORTED)', async () => {
    const m = trainingModel('Adagrad', ['X', 'G', 'H'], 1, [[2]], {}, { rShape: [2] });
    await expect(convert(m)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('learning rate R must be a scalar, got shape [2]') });
  });

  it('refuses integer optimized tensors (E_UNSUPPORTED)', async () => {
    const m = trainingModel('Adagrad', ['X', 'G', 'H'], 1, [[2]], {}, { dtype: 'int32' });
    await expect(convert(m)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('must be float or double, got int32') });
  });
});
