/**
 * compareWeights (src/eval/weights.ts) against every quantized form the passes write: for each
 * method, a small mixed model (Gather table, MatMul, Gemm transB, Conv + bias) and corpus models are
 * quantized, then every quantized weight must be found in the candidate, dequantized on the host,
 * with SNR above the method's floor (int8 > 30 dB, int4 > 15 dB) and nothing reported absent.
 * Plus the host dequantization against the pass's own error report, and hostile candidates.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
} from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { broadcastParam, compareWeights, evaluate, toFloat64, type WeightReport } from '../../src/eval/compare.js';
import { onnxModel, type OnnxModel } from '../../src/formats/onnx/read.js';
import { float32TensorProto as f32, tensorValueInfo as vi } from '../../src/formats/onnx/build.js';
import { quantizeWeights } from '../../src/compress/quantize/weight.js';
import { quantizeInt4 } from '../../src/compress/quantize/int4.js';
import { quantizeDynamic } from '../../src/compress/quantize/dynamic.js';
import { castModel } from '../../src/compress/cast.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { CORPUS_ONNX, openModel, rng } from '../formats/onnx/helpers.js';

const EMB_MODEL = join(CORPUS_ONNX, 'models/openwakeword/embedding_model.onnx');
const FACE = join(CORPUS_ONNX, 'models/ultra-light-face/version-slim-320.onnx');
const RHASSPY = join(CORPUS_ONNX, 'models/openwakeword/hey_rhasspy_v0.1.onnx');
const MEL = join(CORPUS_ONNX, 'models/openwakeword/melspectrogram.onnx');
const PPOCR = join(CORPUS_ONNX, 'models/paddleocr/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const EMBEDDING = join(CORPUS_ONNX, 'pytorch-converted/test_Embedding/model.onnx');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ms-evalw-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function gauss(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

const ints = (name: string, v: number[]) => create(TensorProtoSchema, { name, dims: [BigInt(v.length)], dataType: 7, rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer) });
const attrI = (name: string, i: number) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) });
const attrIs = (name: string, v: number[]) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) });

/**
 * ids [B] → Gather(E [50, 64]) → MatMul(W1 [64, 48]) → Gemm(W2 [32, 48], transB, b2) → Reshape [B, 2, 4, 4]
 * → Conv(Wc [8, 2, 3, 3], bc, pads 1) → y. Deterministic: two calls give two identical models.
 */
function mixedModel(opset: number): OnnxModel {
  const r = rng(21);
  const t = (name: string, dims: number[], s = 0.2) => f32(name, dims, Float32Array.from({ length: dims.reduce((a, d) => a * d, 1) }, () => gauss(r) * s));
  const graph = create(GraphProtoSchema, {
    name: 'mixed',
    node: [
      create(NodeProtoSchema, { opType: 'Gather', name: 'emb', input: ['E', 'ids'], output: ['e'] }),
      create(NodeProtoSchema, { opType: 'MatMul', name: 'mm', input: ['e', 'W1'], output: ['h'] }),
      create(NodeProtoSchema, { opType: 'Gemm', name: 'gemm', input: ['h', 'W2', 'b2'], output: ['g'], attribute: [attrI('transB', 1)] }),
      create(NodeProtoSchema, { opType: 'Reshape', name: 'reshape', input: ['g', 'shape'], output: ['r'] }),
      create(NodeProtoSchema, { opType: 'Conv', name: 'conv', input: ['r', 'Wc', 'bc'], output: ['y'], attribute: [attrIs('pads', [1, 1, 1, 1]), attrIs('kernel_shape', [3, 3])] }),
    ],
    initializer: [t('E', [50, 64], 1), t('W1', [64, 48], 0.15), t('W2', [32, 48]), t('b2', [32], 0.1), ints('shape', [-1, 2, 4, 4]), t('Wc', [8, 2, 3, 3], 0.3), t('bc', [8], 0.1)],
    input: [vi('ids', ['B'], 7)],
    output: [vi('y', ['B', 8, 4, 4])],
  });
  return onnxModel(create(ModelProtoSchema, { irVersion: 7n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })], graph }));
}

type Method = (m: OnnxModel) => Promise<string[]>;

const METHODS: Record<string, { run: Method; forms: WeightReport['form'][]; snr: number }> = {
  'weight int8 per-channel (DequantizeLinear)': {
    run: async (m) => (await quantizeWeights(m, { dtype: 'int8', perChannel: true, symmetric: true })).report.quantized.map((q) => q.name),
    forms: ['dequantize', 'cast-mul'], snr: 30,
  },
  'weight uint8 per-tensor asymmetric': {
    run: async (m) => (await quantizeWeights(m, { dtype: 'uint8', perChannel: false, symmetric: false })).report.quantized.map((q) => q.name),
    forms: ['dequantize', 'cast-mul'], snr: 30,
  },
  'weight uint8 per-channel asymmetric': {
    run: async (m) => (await quantizeWeights(m, { dtype: 'uint8', perChannel: true, symmetric: false })).report.quantized.map((q) => q.name),
    forms: ['dequantize', 'cast-mul'], snr: 30,
  },
  'int4 symmetric (MatMulNBits, GatherBlockQuantized)': {
    run: async (m) => (await quantizeInt4(m, { blockSize: 32 })).report.quantized.map((q) => q.name),
    forms: ['matmulnbits', 'gather-block'], snr: 15,
  },
  'int4 asymmetric block 16': {
    run: async (m) => (await quantizeInt4(m, { blockSize: 16, symmetric: false })).report.quantized.map((q) => q.name),
    forms: ['matmulnbits', 'gather-block'], snr: 15,
  },
  'dynamic per-tensor (MatMulInteger/ConvInteger)': {
    run: async (m) => (await quantizeDynamic(m)).report.quantized.map((q) => q.name),
    forms: ['integer'], snr: 30,
  },
  'dynamic per-channel': {
    run: async (m) => (await quantizeDynamic(m, { perChannel: true })).report.quantized.map((q) => q.name),
    forms: ['integer'], snr: 30,
  },
};

/** Every quantized weight found in the expected form above the SNR floor; no row absent or not comparable. */
function checkRows(rows: WeightReport[], quantized: string[], forms: WeightReport['form'][], snr: number): void {
  const bad = rows.filter((w) => w.form === 'absent' || w.form === 'dtype-change');
  expect(bad, JSON.stringify(bad)).toEqual([]);
  for (const name of quantized) {
    const w = rows.find((x) => x.name === name);
    expect(w, name).toBeDefined();
    expect(forms, `${name}: ${w!.form} ${w!.note ?? ''}`).toContain(w!.form);
    expect(w!.stats!.snrDb, name).toBeGreaterThan(snr);
    expect(w!.stats!.cosine, name).toBeGreaterThan(0.97);
    expect(w!.stats!.maxAbs, name).toBeGreaterThan(0); // quantized, so it moved
  }
  for (const w of rows) if (!quantized.includes(w.name)) expect(w.stats?.maxAbs, w.name).toBe(0);
}

describe('compareWeights finds every quantized weight, per method, on a small mixed model', () => {
  it.each(Object.entries(METHODS))('%s', async (_, m) => {
    const ref = mixedModel(17);
    const cand = mixedModel(17);
    const names = await m.run(cand);
    expect(names.length).toBeGreaterThanOrEqual(m.forms.includes('integer') ? 3 : 2);
    const rows = await compareWeights(ref, cand);
    checkRows(rows, names, m.forms, m.snr);
    // The biases and the table are reported too (unchanged), Conv's bias even when the dynamic pass moved it.
    expect(rows.map((w) => w.name).sort()).toEqual(['E', 'W1', 'W2', 'Wc', 'b2', 'bc']);
  });

  it('the host dequantization equals the error the pass reported for the same weight', async () => {
    for (const run of [
      async (m: OnnxModel) => (await quantizeInt4(m, { blockSize: 32, symmetric: false })).report.quantized,
      async (m: OnnxModel) => (await quantizeDynamic(m, { perChannel: true })).report.quantized,
      async (m: OnnxModel) => (await quantizeWeights(m, { dtype: 'uint8', perChannel: false, symmetric: false })).report.quantized,
    ]) {
      const ref = mixedModel(17);
      const cand = mixedModel(17);
      const q = await run(cand);
      const rows = await compareWeights(ref, cand);
      for (const e of q) {
        const w = rows.find((x) => x.name === e.name)!;
        expect(w.stats!.maxAbs, e.name).toBeCloseTo(e.maxAbs, 6);
        expect(w.stats!.snrDb, e.name).toBeCloseTo(e.snrDb, 3);
      }
    }
  });

  it('Cast → Mul (int8, zero point 0, per channel below opset 13) and Cast → Sub → Mul (uint8 below opset 10)', async () => {
    for (const [opset, opts, note] of [
      [11, { dtype: 'int8', perChannel: true, symmetric: true }, 'Cast → Mul'],
      [9, { dtype: 'uint8', perChannel: false, symmetric: false }, 'Cast → Sub → Mul'],
      [9, { dtype: 'uint8', perChannel: true, symmetric: false }, 'Cast → Sub → Mul'],
    ] as const) {
      const ref = mixedModel(opset);
      const cand = mixedModel(opset);
      const { report } = await quantizeWeights(cand, opts);
      expect(report.quantized.every((q) => q.form === 'cast-mul')).toBe(true);
      const rows = await compareWeights(ref, cand);
      checkRows(rows, report.quantized.map((q) => q.name), ['cast-mul'], 30);
      for (const q of report.quantized) expect(rows.find((w) => w.name === q.name)!.note).toBe(note);
    }
  });

  it('float16 and bfloat16 casts', async () => {
    for (const to of ['float16', 'bfloat16'] as const) {
      const ref = mixedModel(17);
      const cand = mixedModel(17);
      await castModel(cand, { to });
      const rows = await compareWeights(ref, cand);
      const big = rows.filter((w) => w.shape.reduce((a, d) => a * d, 1) >= 64);
      expect(big.length).toBeGreaterThanOrEqual(4);
      for (const w of rows) {
        expect(['cast', 'cast-node', 'same'], `${to} ${w.name} ${w.form}`).toContain(w.form);
        expect(w.stats!.snrDb, w.name).toBeGreaterThan(to === 'float16' ? 60 : 40);
      }
      for (const w of big) expect(w.candidateDtype).toBe(to);
    }
  });

  it('eval --weights-only over saved files lists every int4 weight with its error', async () => {
    const refFile = join(tmp, 'mixed.onnx');
    const candFile = join(tmp, 'mixed.q4.onnx');
    await saveOnnxFile(mixedModel(17), refFile);
    const cand = mixedModel(17);
    await quantizeInt4(cand, { blockSize: 32 });
    await saveOnnxFile(cand, candFile);
    const r = await evaluate(refFile, candFile, { weightsOnly: true });
    expect(r.weightSummary).toEqual({ compared: 6, changed: 2, notComparable: 0, absent: 0 });
    expect(r.weights.find((w) => w.name === 'W1')!.form).toBe('matmulnbits');
    expect(r.weights.find((w) => w.name === 'E')!.form).toBe('gather-block');
  });
});

describe('compareWeights on corpus models, per method', () => {
  const cases: [string, string, string, number][] = [
    ['hey_rhasspy int8 per-channel', RHASSPY, 'weight int8 per-channel (DequantizeLinear)', 30],
    ['version-slim-320 (opset 9) uint8 per-channel: Cast→Sub→Mul', FACE, 'weight uint8 per-channel asymmetric', 30],
    ['ch_ppocr (opset 9, Constant weights) int8 per-channel: Cast→Mul', PPOCR, 'weight int8 per-channel (DequantizeLinear)', 30],
    ['melspectrogram int4', MEL, 'int4 symmetric (MatMulNBits, GatherBlockQuantized)', 15],
    ['ch_ppocr int4 asymmetric', PPOCR, 'int4 asymmetric block 16', 15],
    ['hey_rhasspy dynamic (Gemm)', RHASSPY, 'dynamic per-tensor (MatMulInteger/ConvInteger)', 30],
    ['embedding_model dynamic per-channel (Conv)', EMB_MODEL, 'dynamic per-channel', 30],
  ];
  it.each(cases)('%s', async (label, path, method, snr) => {
    const m = METHODS[method]!;
    const a = await openModel(path);
    const b = await openModel(path);
    try {
      const names = await m.run(b.model);
      expect(names.length).toBeGreaterThan(0);
      const rows = await compareWeights(a.model, b.model);
      checkRows(rows, names, m.forms, snr);
      const q = rows.filter((w) => names.includes(w.name));
      console.log(`${label}: ${rows.length} weights, ${q.length} quantized (${[...new Set(q.map((w) => w.form))].join(', ')}), min SNR ${Math.min(...q.map((w) => w.stats!.snrDb)).toFixed(1)} dB`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('test_Embedding: a [4, 3] table is too narrow for GatherBlockQuantized; eval reports it unchanged', async () => {
    const a = await openModel(EMBEDDING);
    const b = await openModel(EMBEDDING);
    try {
      const { report } = await quantizeInt4(b.model, { blockSize: 16 });
      expect(report.quantized).toEqual([]);
      expect(report.skipped.map((s) => s.reason)).toEqual(['D = 3 < block size 16']);
      const rows = await compareWeights(a.model, b.model);
      expect(rows.map((w) => [w.form, w.stats?.maxAbs])).toEqual([['same', 0]]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('compareWeights on hostile or unusual candidates', () => {
  /** The int4 candidate of the mixed model, with `edit` applied to it. */
  async function edited(edit: (m: OnnxModel) => void): Promise<WeightReport[]> {
    const ref = mixedModel(17);
    const cand = mixedModel(17);
    await quantizeInt4(cand, { blockSize: 32, symmetric: false });
    edit(cand);
    return compareWeights(ref, cand);
  }
  const node = (m: OnnxModel, op: string) => m.proto.graph!.node.find((n) => n.opType === op)!;
  const init = (m: OnnxModel, name: string) => m.proto.graph!.initializer.find((t) => t.name === name)!;

  it('truncated MatMulNBits B, wrong zero-point size, computed scales, mismatched K: not comparable, with the reason', async () => {
    let rows = await edited((m) => { const t = init(m, node(m, 'MatMulNBits').input[1]!); t.rawData = t.rawData.subarray(0, 10); });
    expect(rows.find((w) => w.name === 'W1')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/not comparable: .*|B is uint8 with 10 bytes/) });
    rows = await edited((m) => { const t = init(m, node(m, 'MatMulNBits').input[3]!); t.rawData = t.rawData.subarray(1); t.dims = [BigInt(t.rawData.length)]; });
    expect(rows.find((w) => w.name === 'W1')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/zero_points hold \d+ bytes/) });
    rows = await edited((m) => { node(m, 'MatMulNBits').input[2] = 'ids'; });
    expect(rows.find((w) => w.name === 'W1')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/not comparable: .*MatMulNBits input scales \('ids'\) is not a constant/) });
    rows = await edited((m) => { node(m, 'MatMulNBits').attribute.find((a) => a.name === 'K')!.i = 1000000000n; });
    expect(rows.find((w) => w.name === 'W1')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/K=1000000000/) });
    rows = await edited((m) => { node(m, 'GatherBlockQuantized').attribute.find((a) => a.name === 'block_size')!.i = 7n; });
    expect(rows.find((w) => w.name === 'E')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/block_size=7/) });
    rows = await edited((m) => { const t = init(m, node(m, 'GatherBlockQuantized').input[0]!); t.dims = [50n, 31n]; t.rawData = t.rawData.subarray(0, 50 * 31); });
    expect(rows.find((w) => w.name === 'E')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/expected \[50,32\]/) });
  });

  it('a scale that does not broadcast (E_MALFORMED) is reported, not thrown', async () => {
    const ref = mixedModel(11);
    const cand = mixedModel(11);
    await quantizeWeights(cand, { dtype: 'int8', perChannel: true, symmetric: true });
    const mul = cand.proto.graph!.node.find((n) => n.opType === 'Mul' && n.output[0] === 'W1')!;
    const s = cand.proto.graph!.initializer.find((t) => t.name === mul.input[1])!;
    s.dims = [48n, 1n];
    const rows = await compareWeights(ref, cand);
    expect(rows.find((w) => w.name === 'W1')).toMatchObject({ form: 'dtype-change', note: expect.stringMatching(/scale of shape \[48,1\] does not broadcast to \[64,48\]/) });
    expect(() => broadcastParam(new Float64Array(3), [3], [2, 2], -1, 'scale')).toThrow(expect.objectContaining({ code: 'E_MALFORMED' }));
    expect(() => broadcastParam(new Float64Array(3), [1, 2], [2, 2], -1, 'scale')).toThrow(expect.objectContaining({ code: 'E_MALFORMED' }));
  });

  it('GatherBlockQuantized with INT4 data (zero point 0) reads the same values as the packed uint8 form', async () => {
    const ref = mixedModel(17);
    const cand = mixedModel(17);
    await quantizeInt4(cand, { blockSize: 32 });
    const before = (await compareWeights(ref, cand)).find((w) => w.name === 'E')!;
    const node = cand.proto.graph!.node.find((n) => n.opType === 'GatherBlockQuantized')!;
    const t = cand.proto.graph!.initializer.find((x) => x.name === node.input[0])!;
    // uint4 code c with zero point 8 is the int4 value c - 8: the same nibble with its top bit flipped.
    t.rawData = t.rawData.map((b) => b ^ 0x88);
    t.dims = [50n, 64n];
    t.dataType = 22;
    const after = (await compareWeights(ref, cand)).find((w) => w.name === 'E')!;
    expect(after).toMatchObject({ form: 'gather-block', candidateDtype: 'int4' });
    expect(after.stats).toEqual(before.stats);
    expect(after.stats!.snrDb).toBeGreaterThan(15);
  });

  it('toFloat64 refuses int4 data shorter than its shape (E_TENSOR_SIZE)', () => {
    expect(() => toFloat64({ name: 'q', dtype: 'int4', shape: [5], data: new Uint8Array(2) })).toThrow(expect.objectContaining({ code: 'E_TENSOR_SIZE' }));
    expect(Array.from(toFloat64({ name: 'q', dtype: 'int4', shape: [3], data: Uint8Array.of(0x8f, 0x07) }))).toEqual([-1, -8, 7]);
  });

  it('broadcastParam: numpy rules, and a 1-D parameter along a given axis (ConvInteger zero points)', () => {
    const v = Float64Array.of(10, 20);
    const at = broadcastParam(v, [2, 1], [2, 3], -1, 'p');
    expect([0, 1, 2, 3, 4, 5].map(at)).toEqual([10, 10, 10, 20, 20, 20]);
    const last = broadcastParam(v, [2], [3, 2], -1, 'p');
    expect([0, 1, 2, 3].map(last)).toEqual([10, 20, 10, 20]);
    const ax0 = broadcastParam(v, [2], [2, 1, 3, 3], 0, 'p');
    expect([0, 8, 9, 17].map(ax0)).toEqual([10, 10, 20, 20]);
    expect(broadcastParam(Float64Array.of(7), [], [4, 4], -1, 'p')(13)).toBe(7);
  });
});
