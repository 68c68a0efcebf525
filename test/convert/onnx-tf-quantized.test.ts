/**
 * Our own quantized models convert to TF: every quantization pass (weight-only int8/uint8 per tensor
 * and per channel, dynamic int8 with DynamicQuantizeLinear + MatMulInteger/ConvInteger, 4-bit
 * MatMulNBits + GatherBlockQuantized) is applied to one small net, and the converted graph in TF.js
 * must give what onnxruntime gives for the quantized ONNX model. Plus the ONNX node tests of the
 * integer ops (ONNX reference outputs).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runConformance } from '../../src/bench/conformance.js';
import { quantizeDynamic } from '../../src/compress/quantize/dynamic.js';
import { quantizeInt4 } from '../../src/compress/quantize/int4.js';
import { quantizeWeights } from '../../src/compress/quantize/weight.js';
import type { Tensor } from '../../src/core/tensor.js';
import { decodeOnnx, type OnnxModel } from '../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../src/formats/onnx/write.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { buildModel, compare, nums, onnxNode as N, rand, runTf, tensorOf } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

/** Conv → Relu → MatMul → Relu → MatMul, and an embedding Gather: every op the passes rewrite. */
function net(): { model: OnnxModel; bytes: Uint8Array } {
  const inits: Tensor[] = [
    rand('cw', [8, 3, 3, 3], 11, 'float32', -0.4, 0.4), rand('cb', [8], 12, 'float32', -0.1, 0.1),
    rand('w1', [512, 48], 13, 'float32', -0.08, 0.08), rand('b1', [48], 14, 'float32', -0.1, 0.1),
    rand('w2', [48, 10], 15, 'float32', -0.3, 0.3), rand('emb', [20, 64], 16, 'float32', -1, 1),
    tensorOf('shape', 'int64', [2], [2, 512]),
  ];
  const nodes = [
    N('Conv', ['x', 'cw', 'cb'], ['c'], { pads: [1, 1, 1, 1] }), N('Relu', ['c'], ['r']), N('Reshape', ['r', 'shape'], ['f']),
    N('MatMul', ['f', 'w1'], ['h0']), N('Add', ['h0', 'b1'], ['h1']), N('Relu', ['h1'], ['h']), N('MatMul', ['h', 'w2'], ['y']),
    N('Gather', ['emb', 'ids'], ['e']),
  ];
  return buildModel(nodes, [{ name: 'x', dims: [2, 3, 8, 8] }, { name: 'ids', dims: [2, 5], dtype: 'int64' }], [{ name: 'y', dims: [2, 10] }, { name: 'e', dims: [2, 5, 64] }], inits, 17);
}

const feeds = (): Tensor[] => [rand('x', [2, 3, 8, 8], 21, 'float32', 0, 1), tensorOf('ids', 'int64', [2, 5], [0, 19, 3, -1, 7, 7, 12, -20, 5, 1])];

async function reencode(m: OnnxModel): Promise<{ model: OnnxModel; bytes: Uint8Array }> {
  const bytes = await encodeOnnx(m);
  return { model: decodeOnnx(bytes, { path: 'q.onnx' }), bytes };
}

function opsOf(m: OnnxModel): string[] {
  return [...new Set(m.proto.graph!.node.map((n) => (n.domain ? `${n.domain}::${n.opType}` : n.opType)))].sort();
}

describe('models from our quantization passes convert and agree with onnxruntime', () => {
  const passes: Array<[string, (m: OnnxModel) => Promise<OnnxModel>, string[]]> = [
    ['weight int8 per channel', async (m) => (await quantizeWeights(m, { dtype: 'int8', perChannel: true, symmetric: true })).model, ['DequantizeLinear']],
    ['weight uint8 per tensor', async (m) => (await quantizeWeights(m, { dtype: 'uint8', perChannel: false, symmetric: false })).model, ['DequantizeLinear']],
    // 7-bit weight codes: onnxruntime's u8×s8 MatMulInteger saturates on CPUs without VNNI (this one), so
    // only reduce-range models give the oracle exact sums (the full-range case is checked exactly below).
    ['dynamic int8', async (m) => (await quantizeDynamic(m, { reduceRange: true })).model, ['DynamicQuantizeLinear', 'MatMulInteger', 'ConvInteger']],
    ['dynamic int8 per channel', async (m) => (await quantizeDynamic(m, { perChannel: true, reduceRange: true })).model, ['DynamicQuantizeLinear', 'MatMulInteger', 'ConvInteger']],
    ['int4 symmetric', async (m) => (await quantizeInt4(m)).model, ['com.microsoft::MatMulNBits', 'com.microsoft::GatherBlockQuantized']],
    ['int4 asymmetric, block 16', async (m) => (await quantizeInt4(m, { symmetric: false, blockSize: 16 })).model, ['com.microsoft::MatMulNBits', 'com.microsoft::GatherBlockQuantized']],
  ];
  for (const [name, pass, expectOps] of passes) {
    it(name, async () => {
      const q = await reencode(await pass(net().model));
      for (const op of expectOps) expect(opsOf(q.model), name).toContain(op);
      // The graph as written: onnxruntime's optimizer would requantize DequantizeLinear → MatMul dynamically.
      const { diffs, res } = await compare(q, feeds(), { ort: { optimization: 'disabled' } });
      expect(diffs['y']!, `${name}: y`).toBeLessThan(1e-4);
      expect(diffs['e']!, `${name}: e`).toBeLessThan(1e-5);
      // 4-bit codes stay packed in the graph: the converted model keeps the quantized size.
      if (name.startsWith('int4')) {
        const consts = res.graph.node.filter((n) => n.op === 'Const');
        const uint8Bytes = consts.filter((n) => n.attr['dtype']!.value.value === 4).reduce((s, n) => s + (n.attr['value']!.value.value as { tensorContent: Uint8Array }).tensorContent.byteLength, 0);
        expect(uint8Bytes).toBeGreaterThanOrEqual((512 * 48) / 2);
        expect(consts.some((n) => n.attr['dtype']!.value.value === 1 && (n.attr['value']!.value.value as { tensorContent: Uint8Array }).tensorContent.byteLength >= 512 * 48 * 4)).toBe(false);
      }
    });
  }

  it('the dynamic model\'s own scale and zero point come out as onnxruntime computes them', async () => {
    const nodes = [N('DynamicQuantizeLinear', ['x'], ['q', 's', 'z'])];
    const m = buildModel(nodes, [{ name: 'x', dims: [3, 7] }], [{ name: 'q', dims: [3, 7], dtype: 'uint8' }, { name: 's', dims: [] }, { name: 'z', dims: [], dtype: 'uint8' }], [], 11);
    for (const [lo, hi] of [[-2, 3], [0.5, 4], [-3, -1], [0, 0]] as const) {
      const { diffs } = await compare(m, [rand('x', [3, 7], 5, 'float32', lo, hi)]);
      expect(diffs, `[${lo}, ${hi}]`).toEqual({ q: 0, s: 0, z: 0 });
    }
  });
});

describe('layout of a dynamically quantized conv net', () => {
  it('keeps activations in NHWC between ConvIntegers: only filter re-layouts and the input transpose remain', async () => {
    const sample = resolve(import.meta.dirname, '../../examples/sample/version-slim-320.onnx');
    const q = (await quantizeDynamic(decodeOnnx(new Uint8Array(readFileSync(sample)), { path: sample }), { perChannel: true })).model;
    const res = await onnxToTf(q, { constants: true });
    const byName = new Map(res.graph.node.map((n) => [n.name, n]));
    const producer = (i: string) => byName.get(i.replace(/:\d+$/, ''));
    // A filter re-layout transposes (Cast(int8 Const) − zero point): constant, folded by TF at load.
    const isFilter = (t: (typeof res.graph.node)[number]) => {
      const sub = producer(t.input[0]!);
      return sub?.op === 'Sub' && producer(sub.input[0]!)?.op === 'Cast' && producer(producer(sub.input[0]!)!.input[0]!)?.op === 'Const';
    };
    const transposes = res.graph.node.filter((n) => n.op === 'Transpose');
    expect(transposes.filter((t) => !isFilter(t)).length).toBeLessThanOrEqual(2);
    expect(res.report.transposesInserted).toBeGreaterThan(100);
  });
});

describe('integer products are exact', () => {
  it('MatMulInteger over full-range u8 × s8 equals integer arithmetic (onnxruntime\'s saturating kernel does not here)', async () => {
    const w = rand('w', [512, 48], 13, 'int8', -127, 127);
    const m = buildModel([N('MatMulInteger', ['a', 'w', 'az'], ['y'])], [{ name: 'a', dims: [2, 512], dtype: 'uint8' }], [{ name: 'y', dims: [2, 48], dtype: 'int32' }], [w, tensorOf('az', 'uint8', [], [3])], 17);
    const a = rand('a', [2, 512], 21, 'uint8', 0, 255);
    const got = nums((await runTf(await onnxToTf(m.model, { constants: true }), [a])).get('y')!);
    const av = nums(a);
    const wv = nums(w);
    const exact: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 48; j++) {
      let sum = 0;
      for (let k = 0; k < 512; k++) sum += (av[i * 512 + k]! - 3) * wv[k * 48 + j]!;
      exact.push(sum);
    }
    expect(got).toEqual(exact);
  });
});

describe('QLinearConv / QLinearMatMul', () => {
  it('requantize like onnxruntime (per-tensor and per-channel weight scales, bias)', async () => {
    const u8 = (name: string, shape: number[], seed: number): Tensor => rand(name, shape, seed, 'uint8', 0, 255);
    const inits = [
      tensorOf('xs', 'float32', [], [0.02]), tensorOf('xz', 'uint8', [], [120]), u8('w', [4, 3, 3, 3], 3),
      tensorOf('ws', 'float32', [4], [0.01, 0.02, 0.005, 0.03]), tensorOf('wz', 'uint8', [4], [128, 120, 130, 125]), tensorOf('ys', 'float32', [], [0.5]),
      tensorOf('yz', 'uint8', [], [100]), tensorOf('b', 'int32', [4], [100, -2000, 0, 5000]),
    ];
    const m = buildModel([N('QLinearConv', ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'b'], ['y'], { pads: [1, 1, 1, 1] })],
      [{ name: 'x', dims: [1, 3, 6, 6], dtype: 'uint8' }], [{ name: 'y', dims: [1, 4, 6, 6], dtype: 'uint8' }], inits, 13);
    const { diffs } = await compare(m, [u8('x', [1, 3, 6, 6], 7)]);
    expect(diffs['y']).toBe(0);

    const mm = buildModel([N('QLinearMatMul', ['a', 'as', 'az', 'bm', 'bs', 'bz', 'ys', 'yz'], ['y'])], [{ name: 'a', dims: [5, 16], dtype: 'uint8' }], [{ name: 'y', dims: [5, 6], dtype: 'uint8' }],
      [tensorOf('as', 'float32', [], [0.03]), tensorOf('az', 'uint8', [], [128]), u8('bm', [16, 6], 9), tensorOf('bs', 'float32', [], [0.02]), tensorOf('bz', 'uint8', [], [127]),
        tensorOf('ys', 'float32', [], [0.4]), tensorOf('yz', 'uint8', [], [128])], 13);
    const r = await compare(mm, [u8('a', [5, 16], 4)]);
    expect(r.diffs['y']).toBe(0);
  });
});

describe('refusals of the contrib quantized ops name what is not converted', () => {
  const msNode = (op: string, inputs: string[], attrs: Record<string, number>) => ({ ...N(op, inputs, ['y'], attrs), domain: 'com.microsoft' });
  it('MatMulNBits with g_idx or 3-bit codes; GatherBlockQuantized on another axis', async () => {
    const B = tensorOf('B', 'uint8', [4, 1, 16], new Array<number>(64).fill(0x88));
    const s = tensorOf('s', 'float32', [4, 1], [1, 1, 1, 1]);
    const g = tensorOf('g', 'int32', [32], new Array<number>(32).fill(0));
    const nb = (attrs: Record<string, number>, extra: string[] = [], inits = [B, s]) =>
      buildModel([msNode('MatMulNBits', ['a', 'B', 's', ...extra], { K: 32, N: 4, block_size: 32, ...attrs })], [{ name: 'a', dims: [2, 32] }], [{ name: 'y', dims: [2, 4] }], inits, 17);
    await expect(onnxToTf(nb({}, ['', 'g'], [B, s, g]).model)).rejects.toThrow(/E_UNSUPPORTED: MatMulNBits with g_idx/);
    await expect(onnxToTf(nb({ bits: 3 }).model)).rejects.toThrow(/E_UNSUPPORTED: MatMulNBits with bits = 3/);
    const gq = buildModel([msNode('GatherBlockQuantized', ['d', 'i', 's'], { block_size: 32, gather_axis: 1 })], [{ name: 'i', dims: [2], dtype: 'int64' }], [{ name: 'y', dims: [4, 2] }],
      [tensorOf('d', 'uint8', [4, 16], new Array<number>(64).fill(0x88)), s], 17);
    await expect(onnxToTf(gq.model)).rejects.toThrow(/E_UNSUPPORTED: GatherBlockQuantized other than gather_axis 0/);
  });
});

describe('ONNX node tests of the integer ops', () => {
  it('pass', async () => {
    const want = ['test_dynamicquantizelinear', 'test_convinteger_without_padding', 'test_qlinearconv', 'test_qlinearmatmul_2D_int8_float16'];
    const s = await runConformance(NODE_TESTS, (t) => want.includes(t));
    expect(s.results.map((r) => [r.test, r.outcome, r.detail ?? ''])).toEqual(want.sort().map((t) => [t, 'pass', '']));
  });
});

