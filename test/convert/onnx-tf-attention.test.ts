/**
 * Attention, RotaryEmbedding, SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: each converted
 * graph runs in TF.js and is compared with onnxruntime on random inputs over the attributes, plus
 * the ONNX node tests of these ops in the corpus.
 */
import '../../src/convert/onnx-tf/handlers/attention.js';
import '../../src/convert/onnx-tf/handlers/loss.js';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { runConformance } from '../../src/bench/conformance.js';
import { buildModel, maxDiff, nums, onnxNode as N, rand, runOrt, runTf, tensorOf, type IoSpec } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

interface Case {
  name: string;
  node: ReturnType<typeof N>;
  inputs: Tensor[];
  outputs: IoSpec[];
  opset?: number;
  inits?: Tensor[];
}

const io = (t: Tensor): IoSpec => ({ name: t.name, dims: t.shape, dtype: t.dtype });
const f = (name: string, dims: number[]): IoSpec => ({ name, dims });
const seeded = (seed: number) => {
  let s = seed >>> 0;
  return (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
};
const ints = (name: string, shape: number[], hi: number, seed: number, dtype: 'int64' | 'int32' = 'int64'): Tensor => {
  const r = seeded(seed);
  return tensorOf(name, dtype, shape, Array.from({ length: shape.reduce((p, q) => p * q, 1) }, () => Math.floor(r() * hi)));
};
/** A bool mask with at least one true per row (a fully masked row is NaN in ONNX, left out of the comparison). */
const boolMask = (name: string, shape: number[], seed: number): Tensor => {
  const r = seeded(seed);
  const last = shape[shape.length - 1]!;
  const n = shape.reduce((p, q) => p * q, 1);
  return tensorOf(name, 'bool', shape, Array.from({ length: n }, (_, i) => (i % last === 0 ? 1 : r() < 0.6 ? 1 : 0)));
};

/**
 * Max-abs difference per output between TF.js and onnxruntime. The expected outputs must be all
 * finite: maxDiff skips NaN pairs, so a graph that is NaN everywhere would otherwise pass.
 */
async function compareFinite(m: ReturnType<typeof buildModel>, feeds: Tensor[]): Promise<Record<string, number>> {
  const res = await onnxToTf(m.model, { constants: true });
  const want = await runOrt(m.bytes, feeds);
  const got = await runTf(res, feeds);
  const diffs: Record<string, number> = {};
  for (const [k, w] of want) {
    expect(nums(w).every(Number.isFinite), `${k} has non-finite values`).toBe(true);
    diffs[k] = maxDiff(got.get(k)!, w);
  }
  return diffs;
}

async function check(c: Case): Promise<Record<string, number>> {
  return compareFinite(buildModel([c.node], c.inputs.map(io), c.outputs, c.inits ?? [], c.opset ?? 23), c.inputs);
}

const report: string[] = [];
function record(name: string, diffs: Record<string, number>): void {
  report.push(`${name}: ${Object.entries(diffs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
}
afterAll(() => {
  if (report.length) console.log(`max-abs vs reference:\n${report.join('\n')}`);
});

// ---- Attention -----------------------------------------------------------------------------------

const ATTN: Case[] = [
  { name: '4-D MHA default scale', node: N('Attention', ['q', 'k', 'v'], ['y']),
    inputs: [rand('q', [2, 3, 4, 8], 1), rand('k', [2, 3, 6, 8], 2), rand('v', [2, 3, 6, 5], 3)], outputs: [f('y', [2, 3, 4, 5])] },
  { name: '3-D MHA, scale', node: N('Attention', ['q', 'k', 'v'], ['y'], { q_num_heads: 2, kv_num_heads: 2, scale: { f: 0.3 } }),
    inputs: [rand('q', [2, 4, 16], 4), rand('k', [2, 5, 16], 5), rand('v', [2, 5, 12], 6)], outputs: [f('y', [2, 4, 12])] },
  { name: '3-D GQA (4 q heads, 2 kv heads), causal', node: N('Attention', ['q', 'k', 'v'], ['y'], { q_num_heads: 4, kv_num_heads: 2, is_causal: 1 }),
    inputs: [rand('q', [2, 5, 32], 7), rand('k', [2, 5, 16], 8), rand('v', [2, 5, 16], 9)], outputs: [f('y', [2, 5, 32])] },
  { name: '4-D MQA (1 kv head), float mask broadcast [Sq, L]', node: N('Attention', ['q', 'k', 'v', 'm'], ['y']),
    inputs: [rand('q', [1, 4, 3, 8], 10), rand('k', [1, 1, 7, 8], 11), rand('v', [1, 1, 7, 8], 12), rand('m', [3, 7], 13, 'float32', -2, 2)], outputs: [f('y', [1, 4, 3, 8])] },
  { name: '4-D bool mask [B, 1, Sq, L]', node: N('Attention', ['q', 'k', 'v', 'm'], ['y']),
    inputs: [rand('q', [2, 2, 3, 4], 14), rand('k', [2, 2, 5, 4], 15), rand('v', [2, 2, 5, 4], 16), boolMask('m', [2, 1, 3, 5], 17)], outputs: [f('y', [2, 2, 3, 4])] },
  { name: '4-D past key/value, causal, present outputs', node: N('Attention', ['q', 'k', 'v', '', 'pk', 'pv'], ['y', 'pko', 'pvo'], { is_causal: 1 }),
    inputs: [rand('q', [2, 2, 3, 4], 18), rand('k', [2, 2, 3, 4], 19), rand('v', [2, 2, 3, 6], 20), rand('pk', [2, 2, 4, 4], 21), rand('pv', [2, 2, 4, 6], 22)],
    outputs: [f('y', [2, 2, 3, 6]), f('pko', [2, 2, 7, 4]), f('pvo', [2, 2, 7, 6])] },
  { name: '3-D GQA with past and float mask', node: N('Attention', ['q', 'k', 'v', 'm', 'pk', 'pv'], ['y', 'pko', 'pvo'], { q_num_heads: 6, kv_num_heads: 2 }),
    inputs: [rand('q', [1, 2, 24], 23), rand('k', [1, 2, 8], 24), rand('v', [1, 2, 8], 25), rand('m', [1, 6, 2, 5], 26), rand('pk', [1, 2, 3, 4], 27), rand('pv', [1, 2, 3, 4], 28)],
    outputs: [f('y', [1, 2, 24]), f('pko', [1, 2, 5, 4]), f('pvo', [1, 2, 5, 4])] },
  { name: 'softcap', node: N('Attention', ['q', 'k', 'v'], ['y'], { softcap: { f: 0.8 }, scale: { f: 2 } }),
    inputs: [rand('q', [1, 2, 4, 8], 29), rand('k', [1, 2, 4, 8], 30), rand('v', [1, 2, 4, 8], 31)], outputs: [f('y', [1, 2, 4, 8])] },
  { name: 'qk_matmul_output mode 0', node: N('Attention', ['q', 'k', 'v', 'm'], ['y', '', '', 'qk'], { qk_matmul_output_mode: 0 }),
    inputs: [rand('q', [1, 2, 3, 4], 32), rand('k', [1, 2, 5, 4], 33), rand('v', [1, 2, 5, 4], 34), rand('m', [3, 5], 35)], outputs: [f('y', [1, 2, 3, 4]), f('qk', [1, 2, 3, 5])] },
  { name: 'qk_matmul_output mode 1 (after softcap)', node: N('Attention', ['q', 'k', 'v', 'm'], ['y', '', '', 'qk'], { qk_matmul_output_mode: 1, softcap: { f: 0.5 } }),
    inputs: [rand('q', [1, 2, 3, 4], 39), rand('k', [1, 2, 5, 4], 40), rand('v', [1, 2, 5, 4], 41), rand('m', [3, 5], 42)], outputs: [f('y', [1, 2, 3, 4]), f('qk', [1, 2, 3, 5])] },
  { name: 'qk_matmul_output mode 2 (after softcap and float mask), 3-D GQA', node: N('Attention', ['q', 'k', 'v', 'm'], ['y', '', '', 'qk'], { qk_matmul_output_mode: 2, softcap: { f: 1.5 }, q_num_heads: 4, kv_num_heads: 2 }),
    inputs: [rand('q', [2, 3, 16], 43), rand('k', [2, 5, 8], 44), rand('v', [2, 5, 8], 45), rand('m', [2, 4, 3, 5], 46)], outputs: [f('y', [2, 3, 16]), f('qk', [2, 4, 3, 5])] },
  { name: 'causal + float mask, cross lengths (Sq 3, L 6)', node: N('Attention', ['q', 'k', 'v', 'm'], ['y'], { is_causal: 1 }),
    inputs: [rand('q', [2, 2, 3, 4], 47), rand('k', [2, 2, 6, 4], 48), rand('v', [2, 2, 6, 4], 49), rand('m', [2, 1, 3, 6], 50)], outputs: [f('y', [2, 2, 3, 4])] },
  { name: 'causal + bool mask, 3-D', node: N('Attention', ['q', 'k', 'v', 'm'], ['y'], { is_causal: 1, q_num_heads: 2, kv_num_heads: 1 }),
    inputs: [rand('q', [1, 4, 8], 51), rand('k', [1, 4, 4], 52), rand('v', [1, 4, 4], 53), boolMask('m', [4, 4], 54)], outputs: [f('y', [1, 4, 8])] },
  { name: 'opset 24 nonpad_kv_seqlen (external cache)', node: N('Attention', ['q', 'k', 'v', '', '', '', 'n'], ['y']), opset: 24,
    inputs: [rand('q', [2, 2, 3, 4], 55), rand('k', [2, 2, 6, 4], 56), rand('v', [2, 2, 6, 4], 57), tensorOf('n', 'int64', [2], [4, 6])], outputs: [f('y', [2, 2, 3, 4])] },
  { name: 'opset 24 nonpad_kv_seqlen + causal (per-batch frontier), 3-D GQA', node: N('Attention', ['q', 'k', 'v', '', '', '', 'n'], ['y'], { is_causal: 1, q_num_heads: 4, kv_num_heads: 2 }), opset: 24,
    inputs: [rand('q', [2, 2, 16], 58), rand('k', [2, 6, 8], 59), rand('v', [2, 6, 8], 65), tensorOf('n', 'int64', [2], [3, 6])], outputs: [f('y', [2, 2, 16])] },
  { name: 'qk_matmul_output mode 3 (softmax), GQA', node: N('Attention', ['q', 'k', 'v'], ['y', '', '', 'qk'], { qk_matmul_output_mode: 3, is_causal: 1 }),
    inputs: [rand('q', [1, 4, 3, 4], 36), rand('k', [1, 2, 3, 4], 37), rand('v', [1, 2, 3, 4], 38)], outputs: [f('y', [1, 4, 3, 4]), f('qk', [1, 4, 3, 3])] },
];

describe('Attention', () => {
  for (const c of ATTN) {
    it(c.name, async () => {
      const d = await check(c);
      record(`Attention ${c.name}`, d);
      for (const v of Object.values(d)) expect(v).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('Attention mask padding and big causal masks', () => {
  it('a bool / float mask shorter than the total length is padded (masked), as the ONNX reference does', async () => {
    // onnxruntime refuses short masks: its result on the explicitly padded mask is the oracle.
    const q = rand('q', [1, 2, 3, 4], 66);
    const k = rand('k', [1, 2, 5, 4], 67);
    const v = rand('v', [1, 2, 5, 4], 68);
    for (const [short, padded] of [
      [boolMask('m', [3, 3], 69), tensorOf('m', 'bool', [3, 5], [...nums(boolMask('m', [3, 3], 69))].flatMap((x, i) => (i % 3 === 2 ? [x, 0, 0] : [x])))],
      [rand('m', [1, 1, 3, 4], 70), tensorOf('m', 'float32', [1, 1, 3, 5], [...nums(rand('m', [1, 1, 3, 4], 70))].flatMap((x, i) => (i % 4 === 3 ? [x, -Infinity] : [x])))],
    ] as const) {
      const node = N('Attention', ['q', 'k', 'v', 'm'], ['y']);
      const tf = await onnxToTf(buildModel([node], [io(q), io(k), io(v), io(short)], [f('y', [1, 2, 3, 4])], [], 23).model, { constants: true });
      const got = (await runTf(tf, [q, k, v, short])).get('y')!;
      const want = (await runOrt(buildModel([node], [io(q), io(k), io(v), io(padded)], [f('y', [1, 2, 3, 4])], [], 23).bytes, [q, k, v, padded])).get('y')!;
      expect(nums(want).every(Number.isFinite)).toBe(true);
      const d = maxDiff(got, want);
      record(`Attention short ${short.dtype} mask`, { y: d });
      expect(d).toBeLessThanOrEqual(1e-4);
    }
  });

  it('a causal mask above the Const cap is computed in the graph (Sq = L = 300)', async () => {
    const c: Case = { name: 'big causal', node: N('Attention', ['q', 'k', 'v'], ['y'], { is_causal: 1 }),
      inputs: [rand('q', [1, 1, 300, 4], 71), rand('k', [1, 1, 300, 4], 72), rand('v', [1, 1, 300, 4], 73)], outputs: [f('y', [1, 1, 300, 4])] };
    const m = buildModel([c.node], c.inputs.map(io), c.outputs, [], 23);
    const res = await onnxToTf(m.model, { constants: true });
    expect(res.graph.node.some((n) => n.op === 'Range')).toBe(true);
    const d = await check(c);
    record('Attention causal 300×300 (graph-built mask)', d);
    expect(d.y).toBeLessThanOrEqual(1e-4);
  });
});

/** Same data, symbolic batch and sequence dims: the reshapes take them from the run-time shape. */
describe('Attention with dynamic dims', () => {
  it('3-D GQA with past, causal, dims unknown at conversion', async () => {
    const q = rand('q', [2, 3, 16], 60);
    const k = rand('k', [2, 3, 8], 61);
    const v = rand('v', [2, 3, 8], 62);
    const pk = rand('pk', [2, 2, 4, 4], 63);
    const pv = rand('pv', [2, 2, 4, 4], 64);
    const m = buildModel([N('Attention', ['q', 'k', 'v', '', 'pk', 'pv'], ['y', 'pko', 'pvo'], { q_num_heads: 4, kv_num_heads: 2, is_causal: 1 })],
      [{ name: 'q', dims: ['b', 's', 16] }, { name: 'k', dims: ['b', 's', 8] }, { name: 'v', dims: ['b', 's', 8] }, { name: 'pk', dims: ['b', 2, 'p', 4] }, { name: 'pv', dims: ['b', 2, 'p', 4] }],
      [{ name: 'y', dims: ['b', 's', 16] }, { name: 'pko', dims: ['b', 2, 't', 4] }, { name: 'pvo', dims: ['b', 2, 't', 4] }], [], 23);
    const diffs = await compareFinite(m, [q, k, v, pk, pv]);
    record('Attention dynamic dims', diffs);
    for (const d of Object.values(diffs)) expect(d).toBeLessThanOrEqual(1e-4);
  });
});

// ---- RotaryEmbedding -----------------------------------------------------------------------------

const pos = (name: string, shape: number[], max: number, seed: number): Tensor => ints(name, shape, max, seed);
const ROPE: Case[] = [
  { name: '4-D, no position_ids, full rotation', node: N('RotaryEmbedding', ['x', 'c', 's'], ['y']),
    inputs: [rand('x', [2, 3, 4, 8], 70), rand('c', [2, 4, 4], 71), rand('s', [2, 4, 4], 72)], outputs: [f('y', [2, 3, 4, 8])] },
  { name: '4-D, position_ids, interleaved', node: N('RotaryEmbedding', ['x', 'c', 's', 'p'], ['y'], { interleaved: 1 }),
    inputs: [rand('x', [2, 2, 5, 6], 73), rand('c', [10, 3], 74), rand('s', [10, 3], 75), pos('p', [2, 5], 10, 76)], outputs: [f('y', [2, 2, 5, 6])] },
  { name: '3-D num_heads 2, position_ids, partial rotation (4 of 8)', node: N('RotaryEmbedding', ['x', 'c', 's', 'p'], ['y'], { num_heads: 2, rotary_embedding_dim: 4 }),
    inputs: [rand('x', [2, 4, 16], 77), rand('c', [12, 2], 78), rand('s', [12, 2], 79), pos('p', [2, 4], 12, 80)], outputs: [f('y', [2, 4, 16])] },
  { name: '3-D num_heads 3, no position_ids, partial interleaved (4 of 6)', node: N('RotaryEmbedding', ['x', 'c', 's'], ['y'], { num_heads: 3, rotary_embedding_dim: 4, interleaved: 1 }),
    inputs: [rand('x', [1, 5, 18], 81), rand('c', [1, 5, 2], 82), rand('s', [1, 5, 2], 83)], outputs: [f('y', [1, 5, 18])] },
  { name: '4-D, partial rotation, interleaved, position_ids', node: N('RotaryEmbedding', ['x', 'c', 's', 'p'], ['y'], { rotary_embedding_dim: 6, interleaved: 1 }),
    inputs: [rand('x', [1, 2, 3, 10], 84), rand('c', [8, 3], 85), rand('s', [8, 3], 86), pos('p', [1, 3], 8, 87)], outputs: [f('y', [1, 2, 3, 10])] },
];

describe('RotaryEmbedding', () => {
  for (const c of ROPE) {
    it(c.name, async () => {
      const d = await check(c);
      record(`RotaryEmbedding ${c.name}`, d);
      for (const v of Object.values(d)) expect(v).toBeLessThanOrEqual(1e-4);
    });
  }
  it('3-D with dynamic batch and sequence', async () => {
    const x = rand('x', [2, 3, 8], 88);
    const c = rand('c', [6, 2], 89);
    const s = rand('s', [6, 2], 90);
    const p = pos('p', [2, 3], 6, 91);
    const m = buildModel([N('RotaryEmbedding', ['x', 'c', 's', 'p'], ['y'], { num_heads: 2, interleaved: 1 })],
      [{ name: 'x', dims: ['b', 's', 8] }, io(c), io(s), { name: 'p', dims: ['b', 's'], dtype: 'int64' }], [{ name: 'y', dims: ['b', 's', 8] }], [], 23);
    const diffs = await compareFinite(m, [x, c, s, p]);
    record('RotaryEmbedding dynamic dims', diffs);
    expect(diffs.y).toBeLessThanOrEqual(1e-4);
  });
});

// ---- losses --------------------------------------------------------------------------------------

/** Targets in [0, C) with every `every`-th one set to `ignore`. */
const targets = (name: string, shape: number[], C: number, seed: number, ignore?: number, every = 4): Tensor => {
  const t = ints(name, shape, C, seed);
  if (ignore === undefined) return t;
  const v = new BigInt64Array(t.data.buffer);
  for (let i = 1; i < v.length; i += every) v[i] = BigInt(ignore);
  return t;
};

const LOSS: Case[] = [
  { name: 'NLL [N, C] mean', node: N('NegativeLogLikelihoodLoss', ['x', 't'], ['y']),
    inputs: [rand('x', [5, 4], 100), targets('t', [5], 4, 101)], outputs: [f('y', [])], opset: 13 },
  { name: 'NLL [N, C, d] sum, weight', node: N('NegativeLogLikelihoodLoss', ['x', 't', 'w'], ['y'], { reduction: 'sum' }),
    inputs: [rand('x', [3, 5, 4], 102), targets('t', [3, 4], 5, 103), rand('w', [5], 104, 'float32', 0.1, 2)], outputs: [f('y', [])], opset: 13 },
  { name: 'NLL [N, C, d1, d2] mean, weight, ignore_index 1', node: N('NegativeLogLikelihoodLoss', ['x', 't', 'w'], ['y'], { ignore_index: 1 }),
    inputs: [rand('x', [2, 3, 4, 5], 105), targets('t', [2, 4, 5], 3, 106, 1), rand('w', [3], 107, 'float32', 0.1, 2)], outputs: [f('y', [])], opset: 13 },
  { name: 'NLL [N, C, d] none, ignore_index -100', node: N('NegativeLogLikelihoodLoss', ['x', 't'], ['y'], { reduction: 'none', ignore_index: -100 }),
    inputs: [rand('x', [3, 4, 6], 108), targets('t', [3, 6], 4, 109, -100, 3)], outputs: [f('y', [3, 6])], opset: 12 },
  { name: 'NLL [N, C] mean, ignore_index, no weight', node: N('NegativeLogLikelihoodLoss', ['x', 't'], ['y'], { ignore_index: 2 }),
    inputs: [rand('x', [8, 3], 110), targets('t', [8], 3, 111, 2, 3)], outputs: [f('y', [])], opset: 22 },
  { name: 'NLL none, −inf log-probabilities off target stay out of the loss', node: N('NegativeLogLikelihoodLoss', ['x', 't', 'w'], ['y'], { reduction: 'none' }),
    inputs: [tensorOf('x', 'float32', [2, 3], [-Infinity, -0.5, -1, -2, -Infinity, -0.1]), tensorOf('t', 'int64', [2], [1, 2]), tensorOf('w', 'float32', [3], [0.5, 2, 3])], outputs: [f('y', [2])], opset: 13 },
  { name: 'SCE [N, C] mean', node: N('SoftmaxCrossEntropyLoss', ['x', 't'], ['y']),
    inputs: [rand('x', [4, 6], 120, 'float32', -3, 3), targets('t', [4], 6, 121)], outputs: [f('y', [])], opset: 13 },
  { name: 'SCE [N, C, d] sum, weight, log_prob', node: N('SoftmaxCrossEntropyLoss', ['x', 't', 'w'], ['y', 'lp'], { reduction: 'sum' }),
    inputs: [rand('x', [2, 5, 3], 122, 'float32', -3, 3), targets('t', [2, 3], 5, 123), rand('w', [5], 124, 'float32', 0.1, 2)], outputs: [f('y', []), f('lp', [2, 5, 3])], opset: 13 },
  { name: 'SCE [N, C, d1, d2] none, weight, ignore_index, log_prob', node: N('SoftmaxCrossEntropyLoss', ['x', 't', 'w'], ['y', 'lp'], { reduction: 'none', ignore_index: 0 }),
    inputs: [rand('x', [2, 3, 4, 2], 125, 'float32', -3, 3), targets('t', [2, 4, 2], 3, 126, 0), rand('w', [3], 127, 'float32', 0.1, 2)], outputs: [f('y', [2, 4, 2]), f('lp', [2, 3, 4, 2])], opset: 13 },
  { name: 'SCE [N, C, d] mean, ignore_index -1, no weight', node: N('SoftmaxCrossEntropyLoss', ['x', 't'], ['y'], { ignore_index: -1 }),
    inputs: [rand('x', [3, 4, 5], 128, 'float32', -3, 3), targets('t', [3, 5], 4, 129, -1, 2)], outputs: [f('y', [])], opset: 12 },
  { name: 'SCE [N, C, d] mean, weight, ignore_index', node: N('SoftmaxCrossEntropyLoss', ['x', 't', 'w'], ['y'], { ignore_index: 3 }),
    inputs: [rand('x', [3, 4, 5], 130, 'float32', -3, 3), targets('t', [3, 5], 4, 131, 3, 2), rand('w', [4], 132, 'float32', 0.1, 2)], outputs: [f('y', [])], opset: 13 },
];

describe('losses', () => {
  for (const c of LOSS) {
    it(c.name, async () => {
      const d = await check(c);
      record(c.name, d);
      for (const v of Object.values(d)) expect(v).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('losses with dynamic dims', () => {
  it('SCE with symbolic N and d, weight and ignore_index, mean', async () => {
    const x = rand('x', [3, 4, 5], 140, 'float32', -3, 3);
    const t = targets('t', [3, 5], 4, 141, 2, 3);
    const w = rand('w', [4], 142, 'float32', 0.1, 2);
    const m = buildModel([N('SoftmaxCrossEntropyLoss', ['x', 't', 'w'], ['y', 'lp'], { ignore_index: 2 })],
      [{ name: 'x', dims: ['n', 4, 'd'] }, { name: 't', dims: ['n', 'd'], dtype: 'int64' }, io(w)], [f('y', []), { name: 'lp', dims: ['n', 4, 'd'] }], [], 13);
    const diffs = await compareFinite(m, [x, t, w]);
    record('SCE dynamic dims', diffs);
    for (const d of Object.values(diffs)) expect(d).toBeLessThanOrEqual(1e-4);
  });
});

// ---- ONNX node tests -----------------------------------------------------------------------------

const NODE = /^test_(attention|rotary_embedding|sce|nllloss|softmax_cross_entropy|negative_log_likelihood)/;
const REQUIRED = ['test_attention_3d', 'test_attention_3d_transpose_verification', 'test_rotary_embedding_no_position_ids_rotary_dim', 'test_sce_sum', 'test_sce_sum_expanded'];

async function nodeTestMaxAbs(test: string): Promise<number> {
  const dir = join(NODE_TESTS, test);
  const bytes = new Uint8Array(await readFile(join(dir, 'model.onnx')));
  const model = decodeOnnx(bytes, { path: `${test}/model.onnx` });
  const g = model.proto.graph!;
  const pb = async (f: string): Promise<Tensor> => tensorFromProtoSync(decodeTensorProto(new Uint8Array(await readFile(join(dir, 'test_data_set_0', f))), f));
  const feeds = await Promise.all(g.input.map(async (vi, i) => ({ ...(await pb(`input_${i}.pb`)), name: vi.name })));
  const res = await onnxToTf(model, { constants: true });
  const got = await runTf(res, feeds);
  let m = 0;
  for (const [i, o] of g.output.entries()) m = Math.max(m, maxDiff(got.get(o.name)!, await pb(`output_${i}.pb`)));
  return m;
}

describe('ONNX node tests', () => {
  it('every attention / rotary / loss node test in the corpus passes', async () => {
    const s = await runConformance(NODE_TESTS, (t) => NODE.test(t));
    const names = s.results.map((r) => r.test);
    for (const t of REQUIRED) expect(names).toContain(t);
    for (const r of s.results) expect(`${r.test}: ${r.outcome} ${r.detail ?? ''}`.trim()).toBe(`${r.test}: pass`);
    report.push(`node tests (${names.length}) all pass: ${names.join(', ')}`);
  }, 60_000);

  it('max-abs of the float32 node tests of these ops', async () => {
    for (const t of REQUIRED) {
      const d = await nodeTestMaxAbs(t);
      report.push(`${t}: max-abs ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-4);
    }
  }, 60_000);
});

// ---- refusals and malformed nodes ----------------------------------------------------------------

async function convertError(node: ReturnType<typeof N>, inputs: IoSpec[], outputs: IoSpec[], opset = 23): Promise<ModelsmithError> {
  const m = buildModel([node], inputs, outputs, [], opset);
  const e = await onnxToTf(m.model, { constants: true }).then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(ModelsmithError);
  return e as ModelsmithError;
}

describe('refusals', () => {
  const q4 = f('q', [1, 2, 3, 4]);
  const k4 = f('k', [1, 2, 3, 4]);
  const v4 = f('v', [1, 2, 3, 4]);
  it('E_UNSUPPORTED: unknown qk_matmul_output_mode, unknown head counts, unknown head size, unknown class count', async () => {
    let e = await convertError(N('Attention', ['q', 'k', 'v'], ['y', '', '', 'qk'], { qk_matmul_output_mode: 4 }), [q4, k4, v4], [f('y', [1, 2, 3, 4]), f('qk', [1, 2, 3, 3])]);
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toContain('qk_matmul_output_mode 4');
    expect(e.message).toContain('Attention');
    e = await convertError(N('Attention', ['q', 'k', 'v'], ['y']), [{ name: 'q', dims: [1, 'h', 3, 4] }, { name: 'k', dims: [1, 'g', 3, 4] }, v4], [f('y', [1, 2, 3, 4])]);
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toContain('unknown head counts');
    e = await convertError(N('Attention', ['q', 'k', 'v'], ['y']), [{ name: 'q', dims: [1, 2, 3, 'd'] }, { name: 'k', dims: [1, 2, 3, 'd'] }, v4], [f('y', [1, 2, 3, 4])]);
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toContain('static head size');
    e = await convertError(N('RotaryEmbedding', ['x', 'c', 's'], ['y'], { num_heads: 2 }), [{ name: 'x', dims: [1, 3, 'h'] }, f('c', [1, 3, 2]), f('s', [1, 3, 2])], [f('y', [1, 3, 8])]);
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toContain('unknown hidden size');
    e = await convertError(N('SoftmaxCrossEntropyLoss', ['x', 't'], ['y']), [{ name: 'x', dims: [4, 'c'] }, { name: 't', dims: [4], dtype: 'int64' }], [f('y', [])], 13);
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toContain('unknown class count');
  });

  it('E_MALFORMED: inconsistent ranks, missing heads, bad rotary dim, bad reduction, bad target', async () => {
    const cases: Array<[ReturnType<typeof N>, IoSpec[], string, number?]> = [
      [N('Attention', ['q', 'k', 'v'], ['y']), [f('q', [1, 3, 8]), k4, v4], 'must all be 3-D or all 4-D'],
      [N('Attention', ['q', 'k', 'v'], ['y']), [f('q', [1, 3, 8]), f('k', [1, 3, 8]), f('v', [1, 3, 8])], 'q_num_heads and kv_num_heads'],
      [N('Attention', ['q', 'k', 'v'], ['y'], { q_num_heads: 3, kv_num_heads: 2 }), [f('q', [1, 3, 12]), f('k', [1, 3, 8]), f('v', [1, 3, 8])], 'not a multiple of kv_num_heads'],
      [N('Attention', ['q', 'k', 'v', 'm'], ['y']), [q4, k4, v4, f('m', [3, 5])], 'exceeds the total sequence length'],
      [N('Attention', ['q', 'k', 'v', '', 'pk'], ['y']), [q4, k4, v4, f('pk', [1, 2, 2, 4])], 'past_key and past_value'],
      [N('RotaryEmbedding', ['x', 'c', 's'], ['y']), [f('x', [1, 3, 8]), f('c', [1, 3, 4]), f('s', [1, 3, 4])], 'num_heads'],
      [N('RotaryEmbedding', ['x', 'c', 's'], ['y'], { rotary_embedding_dim: 3 }), [q4, f('c', [1, 3, 2]), f('s', [1, 3, 2])], 'must be even'],
      [N('RotaryEmbedding', ['x', 'c', 's'], ['y']), [q4, f('c', [1, 3, 3]), f('s', [1, 3, 3])], 'columns'],
      [N('NegativeLogLikelihoodLoss', ['x', 't'], ['y'], { reduction: 'max' }), [f('x', [2, 3]), { name: 't', dims: [2], dtype: 'int64' }], "reduction 'max'", 13],
      [N('NegativeLogLikelihoodLoss', ['x', 't'], ['y']), [f('x', [2, 3]), f('t', [2])], 'target is float32', 13],
      [N('SoftmaxCrossEntropyLoss', ['x', 't'], ['y']), [f('x', [2, 3, 4]), { name: 't', dims: [2], dtype: 'int64' }], 'target has rank 1', 13],
    ];
    for (const [node, ins, msg, opset] of cases) {
      // RotaryEmbedding's first input is named x.
      const named = node.opType === 'RotaryEmbedding' ? ins.map((v, i) => (i === 0 ? { ...v, name: 'x' } : v)) : ins;
      const e = await convertError(node, named, [f('y', [])], opset);
      expect(e.code, msg).toBe(ErrorCodes.MALFORMED);
      expect(e.message).toContain(msg);
      expect(e.message).toContain(node.opType);
    }
  });
});
