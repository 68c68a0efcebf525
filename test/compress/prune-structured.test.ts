/**
 * Structured channel pruning (src/compress/prune-structured.ts) and `prune --method channel`.
 *
 * Small models are built here with weights chosen so that the channels L1 ranking removes contribute
 * exactly nothing (zero filters, zero bias, zero BatchNorm mean/shift, zero depthwise bias): the
 * pruned model must then compute the same outputs as the original (within 1e-6), which only holds
 * if every slice (weights, BN, per-channel constants, Concat offsets, Flatten row blocks, residual
 * groups, depthwise groups) was taken at the right place. Pruned files pass onnx.checker (full
 * check) and run in onnxruntime-node. Refusals leave the model byte-identical. The real corpus
 * models (onnx/light/*, ultra-light-face) are pruned at 0.25 and must run with the original output
 * shapes and keep the checker verdict.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { clone, create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneChannels, RefusalCodes, type PruneChannelsReport } from '../../src/compress/prune-structured.js';
import { pruneCommand } from '../../src/cli/commands/prune.js';
import type { Out } from '../../src/cli/output.js';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import { tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { isModelsmithError } from '../../src/core/errors.js';
import { f32ToF16Ref } from '../../src/kernels/reference/cast.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { CORPUS_ONNX, REPO_ROOT, listFiles, openModel, rng } from '../formats/onnx/helpers.js';

const PY = '/usr/bin/python3';
const ORT_OPTS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, logSeverityLevel: 3 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-prune-ch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------------
// builders
// ------------------------------------------------------------------------------------------------

type Attr = number | number[] | { f: number };

function node(opType: string, input: string[], output: string[], attrs: Record<string, Attr> = {}, name = output[0]!): NodeProto {
  const attribute = Object.entries(attrs).map(([k, v]) => {
    if (Array.isArray(v)) return create(AttributeProtoSchema, { name: k, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) });
    if (typeof v === 'object') return create(AttributeProtoSchema, { name: k, type: AttributeProto_AttributeType.FLOAT, f: v.f });
    return create(AttributeProtoSchema, { name: k, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
  });
  return create(NodeProtoSchema, { opType, input, output, attribute, name });
}

function int64Tensor(name: string, values: number[]): TensorProto {
  const raw = new Uint8Array(values.length * 8);
  const dv = new DataView(raw.buffer);
  values.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
  return create(TensorProtoSchema, { name, dims: [BigInt(values.length)], dataType: 7, rawData: raw });
}

function buildModel(nodes: NodeProto[], inits: TensorProto[], inputs: [string, number[]][], outputs: [string, number[]][], opset = 13): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'prune-structured.test',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: create(GraphProtoSchema, {
      name: 'g',
      node: nodes,
      initializer: inits,
      input: inputs.map(([n, d]) => tensorValueInfo(n, d)),
      output: outputs.map(([n, d]) => tensorValueInfo(n, d)),
    }),
  });
}

/** Random weights of the given shape, with the listed slices along `axis` set to zero. */
function weights(seed: number, shape: number[], zero: number[] = [], axis = 0, scale = 0.5): Float32Array {
  const r = rng(seed);
  const x = Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => (r() * 2 - 1) * scale);
  const inner = shape.slice(axis + 1).reduce((a, d) => a * d, 1);
  const len = shape[axis]!;
  for (let i = 0; i < x.length; i++) if (zero.includes(Math.floor(i / inner) % len)) x[i] = 0;
  return x;
}

function w(name: string, seed: number, shape: number[], zero: number[] = [], axis = 0, scale = 0.5): TensorProto {
  return float32TensorProto(name, shape, weights(seed, shape, zero, axis, scale));
}

/** BatchNorm params of C channels: mean and shift zero on `zero`, variance positive. */
function bn(prefix: string, seed: number, c: number, zero: number[]): TensorProto[] {
  const r = rng(seed);
  const vals = (f: (i: number) => number): Float32Array => Float32Array.from({ length: c }, (_, i) => f(i));
  return [
    float32TensorProto(`${prefix}_scale`, [c], vals(() => 0.5 + r())),
    float32TensorProto(`${prefix}_b`, [c], vals((i) => (zero.includes(i) ? 0 : r() - 0.5))),
    float32TensorProto(`${prefix}_mean`, [c], vals((i) => (zero.includes(i) ? 0 : r() - 0.5))),
    float32TensorProto(`${prefix}_var`, [c], vals(() => 0.5 + r())),
  ];
}
const bnInputs = (p: string): string[] => [`${p}_scale`, `${p}_b`, `${p}_mean`, `${p}_var`];

function input(seed: number, shape: number[]): ort.Tensor {
  const r = rng(seed);
  return new ort.Tensor('float32', Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => r() * 2 - 1), shape);
}

async function run(model: ModelProto | string, feeds: Record<string, ort.Tensor>): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>> {
  const s = typeof model === 'string' ? await ort.InferenceSession.create(model, ORT_OPTS) : await ort.InferenceSession.create(toBinary(ModelProtoSchema, model), ORT_OPTS);
  try {
    const out = await s.run(feeds);
    const r: Record<string, { dims: readonly number[]; data: Float32Array }> = {};
    for (const k of s.outputNames) r[k] = { dims: out[k]!.dims, data: out[k]!.data as Float32Array };
    return r;
  } finally {
    await s.release();
  }
}

/** onnx.checker verdicts (full_check: strict shape inference, so stale value_info fails too). */
function checker(files: string[], full = true): string[] {
  const script = `import onnx,sys\nfor p in sys.argv[1:]:\n  try:\n    onnx.checker.check_model(onnx.load(p), full_check=${full ? 'True' : 'False'}); print("ok")\n  except Exception as e:\n    print(("fail " + str(e)).replace("\\n", " ")[:300])`;
  return execFileSync(PY, ['-c', script, ...files], { encoding: 'utf8' }).trim().split('\n');
}

async function save(m: ModelProto, name: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, toBinary(ModelProtoSchema, m));
  return p;
}

function dims(m: ModelProto, name: string): number[] {
  const t = m.graph!.initializer.find((x) => x.name === name)!;
  return t.dims.map(Number);
}

function values(m: ModelProto, name: string): Float32Array {
  const t = tensorFromProtoSync(m.graph!.initializer.find((x) => x.name === name)!);
  const raw = t.data.slice();
  return new Float32Array(raw.buffer, 0, raw.byteLength / 4);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Prune, then: checker passes, same output shapes and values (the removed channels contributed nothing). */
async function pruneAndCompare(m: ModelProto, feeds: Record<string, ort.Tensor>, name: string): Promise<PruneChannelsReport> {
  const before = await run(m, feeds);
  const { report } = pruneChannels(m, { ratio: 0.25 });
  const after = await run(m, feeds);
  for (const k of Object.keys(before)) {
    expect(after[k]!.dims, k).toEqual(before[k]!.dims);
    expect(maxAbsDiff(after[k]!.data, before[k]!.data), `${name}: output ${k}`).toBeLessThan(1e-6);
    expect(before[k]!.data.some((v) => v !== 0), 'non-trivial output').toBe(true);
  }
  expect(checker([await save(m, `${name}.onnx`)])).toEqual(['ok']);
  return report;
}

// ------------------------------------------------------------------------------------------------
// models
// ------------------------------------------------------------------------------------------------

/** Conv(3→8) → BN → Relu → Conv(8→6) → GlobalAveragePool → Flatten → Gemm(6→4). Zero channels: c1 {2,5}, c2 {1,4}. */
function chainModel(): ModelProto {
  const m = buildModel(
    [
      node('Conv', ['x', 'W1', 'B1'], ['t1'], { pads: [1, 1, 1, 1] }, 'c1'),
      node('BatchNormalization', ['t1', ...bnInputs('bn')], ['t2'], { epsilon: { f: 1e-5 } }, 'bn'),
      node('Relu', ['t2'], ['t3'], {}, 'relu'),
      node('Conv', ['t3', 'W2', 'B2'], ['t4'], { pads: [1, 1, 1, 1] }, 'c2'),
      node('GlobalAveragePool', ['t4'], ['t5'], {}, 'gap'),
      node('Flatten', ['t5'], ['t6'], {}, 'flat'),
      node('Gemm', ['t6', 'FB', 'FC'], ['y'], {}, 'fc'),
    ],
    [
      w('W1', 1, [8, 3, 3, 3], [2, 5]), w('B1', 2, [8], [2, 5]), ...bn('bn', 3, 8, [2, 5]),
      w('W2', 4, [6, 8, 3, 3], [1, 4]), w('B2', 5, [6], [1, 4]), w('FB', 6, [6, 4]), w('FC', 7, [4]),
    ],
    [['x', [1, 3, 8, 8]]],
    [['y', [1, 4]]],
  );
  // A value_info that goes stale when c1 shrinks: it must not survive (full_check would fail).
  m.graph!.valueInfo.push(tensorValueInfo('t3', [1, 8, 8, 8]));
  return m;
}

/** Conv(3→4) → Relu → Flatten → Gemm(transB, 100→3). Zero channel 1 = columns 25..49 of B. */
function flattenModel(): ModelProto {
  return buildModel(
    [
      node('Conv', ['x', 'W', 'B'], ['t1'], { pads: [1, 1, 1, 1] }, 'conv'),
      node('Relu', ['t1'], ['t2'], {}, 'relu'),
      node('Flatten', ['t2'], ['t3'], { axis: 1 }, 'flat'),
      node('Gemm', ['t3', 'FB', 'FC'], ['y'], { transB: 1 }, 'fc'),
    ],
    [w('W', 11, [4, 3, 3, 3], [1]), w('B', 12, [4], [1]), w('FB', 13, [3, 100]), w('FC', 14, [3])],
    [['x', [1, 3, 5, 5]]],
    [['y', [1, 3]]],
  );
}

/** convA(3→8) → Relu → convB(8→8) → Add(·, relu) → Relu → convC(8→5). Zero channels {3,6} in A and B. */
function residualModel(): ModelProto {
  return buildModel(
    [
      node('Conv', ['x', 'WA', 'BA'], ['a'], { pads: [1, 1, 1, 1] }, 'convA'),
      node('Relu', ['a'], ['ra'], {}, 'reluA'),
      node('Conv', ['ra', 'WB', 'BB'], ['b'], { pads: [1, 1, 1, 1] }, 'convB'),
      node('Add', ['b', 'ra'], ['s'], {}, 'add'),
      node('Relu', ['s'], ['rs'], {}, 'reluS'),
      node('Conv', ['rs', 'WC', 'BC'], ['y'], {}, 'convC'),
    ],
    [
      w('WA', 21, [8, 3, 3, 3], [3, 6]), w('BA', 22, [8], [3, 6]),
      w('WB', 23, [8, 8, 3, 3], [3, 6], 0, 0.2), w('BB', 24, [8], [3, 6]),
      w('WC', 25, [5, 8, 1, 1]), w('BC', 26, [5]),
    ],
    [['x', [1, 3, 6, 6]]],
    [['y', [1, 5, 6, 6]]],
  );
}

/**
 * convA(3→4) ‖ convB(3→6) → Concat → BN(10) → Mul(Unsqueeze(s)) → Relu → depthwise Conv(10) → Relu →
 * convC(10→5). Zero: A {0}, B {2,5} → concat positions {0, 6, 9}.
 */
function concatModel(): ModelProto {
  const zero = [0, 6, 9];
  const dwB = weights(37, [10], zero);
  return buildModel(
    [
      node('Conv', ['x', 'WA'], ['a'], { pads: [1, 1, 1, 1] }, 'convA'),
      node('Conv', ['x', 'WB', 'BB'], ['b'], {}, 'convB'),
      node('Concat', ['a', 'b'], ['cat'], { axis: 1 }, 'concat'),
      node('BatchNormalization', ['cat', ...bnInputs('bn')], ['n'], {}, 'bn'),
      node('Unsqueeze', ['S', 'axes'], ['s3'], {}, 'unsq'),
      node('Mul', ['n', 's3'], ['m'], {}, 'mul'),
      node('Relu', ['m'], ['r'], {}, 'relu'),
      node('Conv', ['r', 'WD', 'BD'], ['d'], { group: 10, pads: [1, 1, 1, 1] }, 'dw'),
      node('Relu', ['d'], ['rd'], {}, 'relu2'),
      node('Conv', ['rd', 'WC'], ['y'], {}, 'convC'),
    ],
    [
      w('WA', 31, [4, 3, 3, 3], [0]), w('WB', 32, [6, 3, 1, 1], [2, 5]), w('BB', 33, [6], [2, 5]), ...bn('bn', 34, 10, zero),
      w('S', 35, [10]), int64Tensor('axes', [1, 2]), w('WD', 36, [10, 1, 3, 3]), float32TensorProto('BD', [10], dwB), w('WC', 38, [5, 10, 1, 1]),
    ],
    [['x', [1, 3, 6, 6]]],
    [['y', [1, 5, 6, 6]]],
  );
}

/** Gemm(6→8, bias) → Relu → MatMul(8→5) → Add(const) → Tanh → Gemm(transB, 5→3). Zero: g1 {1,7}, m1 {2}. */
function mlpModel(): ModelProto {
  return buildModel(
    [
      node('Gemm', ['x', 'G1', 'C1'], ['h1'], {}, 'g1'),
      node('Relu', ['h1'], ['r1'], {}, 'relu'),
      node('MatMul', ['r1', 'M1'], ['h2'], {}, 'm1'),
      node('Add', ['h2', 'A1'], ['h3'], {}, 'bias'),
      node('Tanh', ['h3'], ['r2'], {}, 'tanh'),
      node('Gemm', ['r2', 'G2'], ['y'], { transB: 1 }, 'g2'),
    ],
    [w('G1', 61, [6, 8], [1, 7], 1), w('C1', 62, [8], [1, 7]), w('M1', 63, [8, 5], [2], 1), w('A1', 64, [5], [2]), w('G2', 65, [3, 5])],
    [['x', [2, 6]]],
    [['y', [2, 3]]],
  );
}

// ------------------------------------------------------------------------------------------------
// tests
// ------------------------------------------------------------------------------------------------

describe('pruneChannels on built models (removed channels contribute nothing → same outputs)', () => {
  it('Conv → BN → Relu → Conv → GlobalAveragePool → Flatten → Gemm', async () => {
    const m = chainModel();
    const orig = clone(ModelProtoSchema, m);
    const bytesBefore = toBinary(ModelProtoSchema, m).byteLength;
    const report = await pruneAndCompare(m, { x: input(1, [1, 3, 8, 8]) }, 'chain');
    expect(report.layers.map((l) => [l.name, l.channelsBefore, l.channelsAfter, l.removed])).toEqual([
      ['c1', 8, 6, [2, 5]],
      ['c2', 6, 4, [1, 4]],
    ]);
    expect(report.skipped).toEqual([expect.objectContaining({ name: 'fc', code: RefusalCodes.GRAPH_OUTPUT })]);
    expect(dims(m, 'W1')).toEqual([6, 3, 3, 3]);
    expect(dims(m, 'bn_var')).toEqual([6]);
    expect(dims(m, 'W2')).toEqual([4, 6, 3, 3]);
    expect(dims(m, 'B2')).toEqual([4]);
    expect(dims(m, 'FB')).toEqual([4, 4]);
    expect(dims(m, 'FC')).toEqual([4]);
    // Kept rows of the Gemm weight are the original rows 0, 2, 3, 5.
    const fb = values(orig, 'FB');
    expect(values(m, 'FB')).toEqual(Float32Array.from([0, 2, 3, 5].flatMap((r) => [...fb.subarray(r * 4, r * 4 + 4)])));
    expect(m.graph!.valueInfo.map((v) => v.name)).not.toContain('t3');
    // W1 2·27 + B1 2 + BN 4·2 + W2 (6·8 − 4·6)·9 + B2 2 + FB 2·4 = 290 floats.
    const removed = 290 * 4;
    expect(report.size.before.total - report.size.after.total).toBe(removed);
    const sw = report.tensors.find((t) => t.name === 'W2')!;
    expect(sw).toMatchObject({ shapeBefore: [6, 8, 3, 3], shapeAfter: [4, 6, 3, 3] });
    expect(sw.sparsity).toBeCloseTo(1 - 216 / 432, 12);
    const bytesAfter = toBinary(ModelProtoSchema, m).byteLength;
    expect(bytesBefore - bytesAfter).toBeGreaterThan(removed - 40);
    expect(bytesBefore - bytesAfter).toBeLessThan(removed + 120);
  });

  it('Conv → Relu → Flatten → Gemm (transB): blocks of H·W columns per channel', async () => {
    const m = flattenModel();
    const fb = values(m, 'FB');
    const report = await pruneAndCompare(m, { x: input(2, [1, 3, 5, 5]) }, 'flatten');
    expect(report.layers.map((l) => [l.name, l.channelsAfter, l.removed])).toEqual([['conv', 3, [1]]]);
    expect(dims(m, 'FB')).toEqual([3, 75]);
    const kept = Array.from({ length: 100 }, (_, i) => i).filter((i) => i < 25 || i >= 50);
    expect(values(m, 'FB')).toEqual(Float32Array.from([0, 1, 2].flatMap((r) => kept.map((c) => fb[r * 100 + c]!))));
    expect(report.size.before.total - report.size.after.total).toBe((27 + 1 + 75) * 4);
  });

  it('residual Add: both branches drop the same channels as one group', async () => {
    const m = residualModel();
    const report = await pruneAndCompare(m, { x: input(3, [1, 3, 6, 6]) }, 'residual');
    expect(report.layers.map((l) => [l.name, l.channelsAfter, l.removed])).toEqual([
      ['convA', 6, [3, 6]],
      ['convB', 6, [3, 6]],
    ]);
    expect(report.layers[0]!.group).toBe(report.layers[1]!.group);
    expect(dims(m, 'WB')).toEqual([6, 6, 3, 3]);
    expect(dims(m, 'WC')).toEqual([5, 6, 1, 1]);
  });

  it('Concat + BatchNorm + Mul(Unsqueeze const) + depthwise Conv: offsets per producer', async () => {
    const m = concatModel();
    const report = await pruneAndCompare(m, { x: input(4, [1, 3, 6, 6]) }, 'concat');
    expect(report.layers.map((l) => [l.name, l.channelsAfter, l.removed])).toEqual([
      ['convA', 3, [0]],
      ['convB', 4, [2, 5]],
    ]);
    for (const n of ['bn_scale', 'bn_var', 'S', 'BD']) expect(dims(m, n), n).toEqual([7]);
    expect(dims(m, 'WD')).toEqual([7, 1, 3, 3]);
    expect(dims(m, 'WC')).toEqual([5, 7, 1, 1]);
    const dw = m.graph!.node.find((n) => n.name === 'dw')!;
    expect(dw.attribute.find((a) => a.name === 'group')!.i).toBe(7n);
    expect(report.skipped.map((s) => [s.name, s.code])).toEqual([
      ['dw', RefusalCodes.GROUPED_CONV],
      ['convC', RefusalCodes.GRAPH_OUTPUT],
    ]);
  });

  it('Gemm → Relu → MatMul → Add(const) → Tanh → Gemm (transB): weight columns and rows', async () => {
    const m = mlpModel();
    const report = await pruneAndCompare(m, { x: input(5, [2, 6]) }, 'mlp');
    expect(report.layers.map((l) => [l.name, l.op, l.channelsAfter, l.removed])).toEqual([
      ['g1', 'Gemm', 6, [1, 7]],
      ['m1', 'MatMul', 4, [2]],
    ]);
    expect([dims(m, 'G1'), dims(m, 'C1'), dims(m, 'M1'), dims(m, 'A1'), dims(m, 'G2')]).toEqual([[6, 6], [6], [6, 4], [4], [3, 4]]);
  });

  it('ranks by L1 norm: a layer with no zero channel loses its smallest filters; ratio 1 keeps one channel', () => {
    const m = flattenModel();
    const wv = values(m, 'W');
    const l1 = [0, 1, 2, 3].map((c) => wv.subarray(c * 27, c * 27 + 27).reduce((a, v) => a + Math.abs(v), 0));
    const m1 = flattenModel();
    const r1 = pruneChannels(m1, { ratio: 0.75 }).report;
    const expected = [0, 1, 2, 3].sort((a, b) => l1[a]! - l1[b]!).slice(0, 3).sort();
    expect(r1.layers[0]!.removed).toEqual(expected);
    const m2 = flattenModel();
    const r2 = pruneChannels(m2, { ratio: 1 }).report;
    expect(r2.layers[0]!.channelsAfter).toBe(1);
    expect(dims(m2, 'FB')).toEqual([3, 25]);
  });
});

describe('pruneChannels on other dtypes', () => {
  it('float16 weights are ranked on their values and sliced as 2-byte elements; integer weights are refused', () => {
    const ref = flattenModel();
    const r32 = pruneChannels(ref, { ratio: 0.5 }).report;
    const m = flattenModel();
    for (const name of ['W', 'B', 'FB', 'FC']) {
      const tp = m.graph!.initializer.find((t) => t.name === name)!;
      const h = f32ToF16Ref(values(m, name));
      tp.dataType = 10;
      tp.rawData = new Uint8Array(h.buffer);
    }
    const fbBefore = m.graph!.initializer.find((t) => t.name === 'FB')!.rawData.slice();
    const r16 = pruneChannels(m, { ratio: 0.5 }).report;
    expect(r16.layers[0]!.removed).toEqual(r32.layers[0]!.removed);
    const [a, b] = r16.layers[0]!.removed as [number, number];
    const fb = m.graph!.initializer.find((t) => t.name === 'FB')!;
    expect(fb.dims.map(Number)).toEqual([3, 50]);
    const keep = Array.from({ length: 100 }, (_, i) => i).filter((i) => Math.floor(i / 25) !== a && Math.floor(i / 25) !== b);
    const src = new Uint16Array(fbBefore.buffer);
    expect(new Uint16Array(fb.rawData.slice().buffer)).toEqual(Uint16Array.from([0, 1, 2].flatMap((r) => keep.map((c) => src[r * 100 + c]!))));

    const q = flattenModel();
    const wq = q.graph!.initializer.find((t) => t.name === 'W')!;
    wq.dataType = 6; // int32: same byte size, not a float weight
    const { report, diagnostics } = pruneChannels(q, { ratio: 0.5 });
    expect(report.layers).toEqual([]);
    expect(diagnostics.find((d) => d.op === 'conv')).toMatchObject({ code: RefusalCodes.BAD_TENSOR, message: expect.stringMatching(/E_DTYPE/) });
  });
});

describe('pruneChannels refusals leave the model unchanged', () => {
  const unchanged = (m: ModelProto, ratio = 0.5): ReturnType<typeof pruneChannels> => {
    const before = toBinary(ModelProtoSchema, m);
    const r = pruneChannels(m, { ratio });
    expect(Buffer.from(toBinary(ModelProtoSchema, m)).equals(Buffer.from(before))).toBe(true);
    expect(r.report.layers).toEqual([]);
    expect(r.report.size.after.total).toBe(r.report.size.before.total);
    return r;
  };

  it('a graph output in the path', async () => {
    const m = chainModel();
    m.graph!.output.push(tensorValueInfo('t3', [1, 8, 8, 8]));
    m.graph!.output[0]!.name = 't4'; // c2's output leaves the graph too
    m.graph!.output[0]!.type = tensorValueInfo('t4', [1, 6, 8, 8]).type!;
    m.graph!.node.splice(4); // GAP, Flatten, Gemm go
    m.graph!.initializer = m.graph!.initializer.filter((t) => t.name !== 'FB' && t.name !== 'FC');
    const { diagnostics } = unchanged(m);
    expect(diagnostics.map((d) => [d.op, d.code])).toEqual([
      ['c1', RefusalCodes.GRAPH_OUTPUT],
      ['c2', RefusalCodes.GRAPH_OUTPUT],
    ]);
    expect(diagnostics[0]!.message).toMatch(/'t3' is a graph output/);
    expect(checker([await save(m, 'refuse-out.onnx')])).toEqual(['ok']);
  });

  it('a Reshape in the path', () => {
    const m = buildModel(
      [
        node('Conv', ['x', 'W'], ['t1'], {}, 'conv'),
        node('Reshape', ['t1', 'shape'], ['t2'], {}, 'reshape'),
        node('Relu', ['t2'], ['y'], {}, 'relu'),
      ],
      [w('W', 41, [4, 3, 1, 1]), int64Tensor('shape', [1, -1])],
      [['x', [1, 3, 2, 2]]],
      [['y', [1, 16]]],
    );
    const { diagnostics } = unchanged(m);
    expect(diagnostics).toEqual([expect.objectContaining({ level: 'warning', code: RefusalCodes.UNSUPPORTED_OP, op: 'conv' })]);
    expect(diagnostics[0]!.message).toMatch(/Reshape reads 't1'.*\[at reshape\]/);
  });

  it('a residual Add with the graph input, a value read in a subgraph, an excluded layer', () => {
    const res = buildModel(
      [node('Conv', ['x', 'W'], ['t1'], { pads: [1, 1, 1, 1] }, 'conv'), node('Add', ['x', 't1'], ['t2'], {}, 'add'), node('Conv', ['t2', 'W2'], ['y'], {}, 'head')],
      [w('W', 42, [3, 3, 3, 3]), w('W2', 43, [2, 3, 1, 1])],
      [['x', [1, 3, 4, 4]]],
      [['y', [1, 2, 4, 4]]],
    );
    expect(unchanged(res).diagnostics.map((d) => [d.op, d.code])).toEqual([
      ['conv', RefusalCodes.RESIDUAL],
      ['head', RefusalCodes.GRAPH_OUTPUT],
    ]);

    const sub = flattenModel();
    const body = create(GraphProtoSchema, { name: 'then', node: [node('Identity', ['t2'], ['o'], {}, 'inner')], output: [tensorValueInfo('o', [1, 4, 5, 5])] });
    sub.graph!.initializer.push(create(TensorProtoSchema, { name: 'cond', dims: [], dataType: 9, rawData: new Uint8Array([1]) }));
    const ifNode = create(NodeProtoSchema, {
      opType: 'If', name: 'if', input: ['cond'], output: ['z'],
      attribute: [
        create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: body }),
        create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: clone(GraphProtoSchema, body) }),
      ],
    });
    sub.graph!.node.push(ifNode);
    sub.graph!.output.push(tensorValueInfo('z', [1, 4, 5, 5]));
    expect(unchanged(sub).diagnostics.map((d) => [d.op, d.code])).toEqual([
      ['conv', RefusalCodes.SUBGRAPH],
      ['fc', RefusalCodes.GRAPH_OUTPUT],
    ]);

    const ex = residualModel();
    const r = pruneChannels(ex, { ratio: 0.25, exclude: { names: ['convB'] } });
    expect(r.report.layers).toEqual([]);
    expect(r.report.skipped.filter((s) => s.code === RefusalCodes.EXCLUDED).map((s) => s.name)).toEqual(['convA', 'convB']);
    const ex2 = chainModel();
    const r2 = pruneChannels(ex2, { ratio: 0.25, exclude: { names: ['W1'] } });
    expect(r2.report.layers.map((l) => l.name)).toEqual(['c2']);
    const r3 = pruneChannels(chainModel(), { ratio: 0.25, exclude: { opTypes: ['Conv'] } });
    expect(r3.report.layers).toEqual([]);
  });

  it('ratio 0 removes nothing; a shared weight is not sliced', () => {
    const r = unchanged(chainModel(), 0);
    expect(r.report.skipped.filter((s) => s.code === RefusalCodes.TOO_FEW).map((s) => s.name)).toEqual(['c1', 'c2']);
    const shared = buildModel(
      [node('Conv', ['x', 'W'], ['a'], {}, 'c1'), node('Conv', ['a', 'V'], ['b'], {}, 'c2'), node('Conv', ['x', 'W'], ['c'], {}, 'c3'), node('Add', ['b', 'c'], ['y'], {}, 'add')],
      [w('W', 51, [3, 3, 1, 1]), w('V', 52, [3, 3, 1, 1])],
      [['x', [1, 3, 2, 2]]],
      [['y', [1, 3, 2, 2]]],
    );
    const d = unchanged(shared).diagnostics;
    expect(d.find((x) => x.op === 'c1')?.code).toBe(RefusalCodes.SHARED);
  });

  it('a weight in external data is refused, not read', () => {
    const m = flattenModel();
    const W = m.graph!.initializer.find((t) => t.name === 'W')!;
    W.dataLocation = TensorProto_DataLocation.EXTERNAL;
    W.externalData = [create(StringStringEntryProtoSchema, { key: 'location', value: 'w.bin' })];
    W.rawData = new Uint8Array(0);
    const { diagnostics } = unchanged(m);
    expect(diagnostics.find((d) => d.op === 'conv')).toMatchObject({ code: RefusalCodes.PARAM, message: expect.stringMatching(/external file/) });
  });

  it('damaged models end in a result or a ModelsmithError, never another exception', () => {
    const r = rng(99);
    const seeds = [chainModel, flattenModel, residualModel, concatModel, mlpModel].map((f) => toBinary(ModelProtoSchema, f()));
    let decoded = 0;
    let pruned = 0;
    for (let i = 0; i < 300; i++) {
      const bytes = seeds[i % seeds.length]!.slice();
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      let model;
      try {
        model = decodeOnnx(bytes, { path: `fuzz-${i}.onnx` });
      } catch (e) {
        expect(isModelsmithError(e), String(e)).toBe(true);
        continue;
      }
      decoded++;
      try {
        if (pruneChannels(model, { ratio: 0.5 }).report.layers.length > 0) pruned++;
      } catch (e) {
        expect(isModelsmithError(e), `${i}: ${String(e)}`).toBe(true);
      }
    }
    expect(decoded).toBeGreaterThan(100);
    expect(pruned).toBeGreaterThan(20);
  });

  it('a graph that would make the analysis quadratic hits the visit budget instead of hanging', () => {
    const n = 1000;
    const nodes: NodeProto[] = [];
    const inits: TensorProto[] = [];
    for (let i = 0; i < n; i++) {
      nodes.push(node('Conv', ['x', `W${i}`], [`p${i}`], {}, `c${i}`));
      inits.push(w(`W${i}`, i, [2, 1, 1, 1]));
    }
    nodes.push(node('Concat', Array.from({ length: n }, (_, i) => `p${i}`), ['r0'], { axis: 1 }, 'cat'));
    for (let i = 0; i < n; i++) nodes.push(node('Relu', [`r${i}`], [`r${i + 1}`], {}, `relu${i}`));
    nodes.push(node('Conv', [`r${n}`, 'H'], ['y'], {}, 'head'));
    inits.push(w('H', 5, [1, 2 * n, 1, 1]));
    const m = buildModel(nodes, inits, [['x', [1, 1, 1, 1]]], [['y', [1, 1, 1, 1]]]);
    const t0 = performance.now();
    const { diagnostics } = unchanged(m);
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(diagnostics.filter((d) => d.code === RefusalCodes.LIMIT).length).toBeGreaterThan(n / 4);
  });

  it('throws E_USAGE for a bad ratio and E_MALFORMED for a model without graph', () => {
    for (const ratio of [-0.1, 1.5, NaN, Infinity, '0.5' as unknown as number]) {
      expect(() => pruneChannels(chainModel(), { ratio }), String(ratio)).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
    }
    const m = chainModel();
    m.graph = undefined;
    expect(() => pruneChannels(m, { ratio: 0.5 })).toThrow(expect.objectContaining({ code: 'E_MALFORMED' }));
  });
});

describe('prune --method channel (CLI verb)', () => {
  const out: Out = { json: true, say: () => {}, note: () => {}, report: () => {} };

  it('prunes a model file and reports layers, skipped layers and sizes', async () => {
    const src = await save(chainModel(), 'cli-in.onnx');
    const o = join(dir, 'cli-out.onnx');
    const rep = (await pruneCommand.run([src], { output: o, method: 'channel', sparsity: '0.25' }, out)) as Record<string, unknown> & PruneChannelsReport;
    expect(rep.ok).toBe(true);
    expect(rep.method).toBe('channel');
    expect(rep.layers.map((l) => [l.name, l.channelsAfter])).toEqual([['c1', 6], ['c2', 4]]);
    expect(rep.skipped.map((s) => s.code)).toEqual([RefusalCodes.GRAPH_OUTPUT]);
    expect(rep.outputBytes).toBe(statSync(o).size);
    expect(statSync(src).size - statSync(o).size).toBeGreaterThan(290 * 4 - 40);
    expect(checker([o])).toEqual(['ok']);
    const o2 = join(dir, 'cli-out2.onnx');
    const rep2 = (await pruneCommand.run([src, o2], { method: 'channel', sparsity: '0.5', exclude: 'c1,nothing' }, out)) as Record<string, unknown> & PruneChannelsReport;
    expect(rep2.layers.map((l) => [l.name, l.channelsAfter])).toEqual([['c2', 3]]);
    expect(rep2.skipped.find((k) => k.name === 'c1')?.code).toBe(RefusalCodes.EXCLUDED);
  });

  it('refuses bad arguments with E_USAGE / E_UNSUPPORTED', async () => {
    const src = await save(chainModel(), 'cli-bad.onnx');
    const o = join(dir, 'never.onnx');
    const bad = async (v: Record<string, string | boolean>, code: string): Promise<void> => {
      await expect(pruneCommand.run([src], v, out), JSON.stringify(v)).rejects.toMatchObject({ code });
    };
    await bad({ output: o, method: 'channel' }, 'E_USAGE');
    await bad({ output: o, method: 'channel', sparsity: '1.5' }, 'E_USAGE');
    await bad({ output: o, method: 'channel', sparsity: 'x' }, 'E_USAGE');
    await bad({ output: o, method: 'channel', sparsity: '0.5', nm: '2:4' }, 'E_USAGE');
    await bad({ output: o, method: 'channel', sparsity: '0.5', 'include-1d': true }, 'E_USAGE');
    await bad({ output: join(dir, 'x.tflite'), method: 'channel', sparsity: '0.5' }, 'E_UNSUPPORTED');
    expect(existsSync(o)).toBe(false);
    expect(pruneCommand.help).toMatch(/channel +structured/);
  });
});

// The built CLI, when dist holds this feature (CI builds before testing; a stale local dist is not spawned).
const CLI_ROOT = REPO_ROOT;
const built = existsSync(join(CLI_ROOT, 'dist/compress/prune-structured.js')) && readFileSync(join(CLI_ROOT, 'dist/cli/commands/prune.js'), 'utf8').includes('pruneChannels');
if (built) {
  describe('modelsmith prune --method channel (spawned)', () => {
    it('writes the pruned model, prints the JSON report, exits 2 on usage errors', async () => {
      const src = await save(chainModel(), 'spawn-in.onnx');
      const o = join(dir, 'spawn-out.onnx');
      const bin = join(CLI_ROOT, 'bin/modelsmith.js');
      const r = spawnSync(process.execPath, [bin, 'prune', src, '-o', o, '--method', 'channel', '--sparsity', '0.25', '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const rep = JSON.parse(r.stdout) as PruneChannelsReport & { method: string };
      expect(rep.method).toBe('channel');
      expect(rep.layers.map((l) => [l.name, l.channelsAfter])).toEqual([['c1', 6], ['c2', 4]]);
      expect(statSync(o).size).toBeLessThan(statSync(src).size - 1000);
      const bad = spawnSync(process.execPath, [bin, 'prune', src, '-o', join(dir, 'x.onnx'), '--method', 'channel'], { encoding: 'utf8' });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/E_USAGE/);
    });
  });
}

// ------------------------------------------------------------------------------------------------
// corpus
// ------------------------------------------------------------------------------------------------

const CORPUS = [...listFiles(join(CORPUS_ONNX, 'light'), '.onnx'), join(CORPUS_ONNX, 'models/ultra-light-face/version-slim-320.onnx')];
/** Layers pruned / skipped at 0.25 (skips: LRN, grouped Convs, Reshape/Transpose/Softmax heads, graph outputs). */
const EXPECTED: Record<string, [number, number]> = {
  'light_bvlc_alexnet.onnx': [2, 6],
  'light_densenet121.onnx': [120, 1],
  'light_inception_v1.onnx': [51, 7],
  'light_inception_v2.onnx': [65, 5],
  'light_resnet50.onnx': [49, 5],
  'light_shufflenet.onnx': [0, 50],
  'light_squeezenet.onnx': [25, 1],
  'light_vgg19.onnx': [17, 2],
  'light_zfnet512.onnx': [4, 4],
  'version-slim-320.onnx': [15, 27],
};

/**
 * ultra-light-face with its real weights, but the channels the pass removes made inert first: their
 * filters, every BatchNorm shift/mean and depthwise bias on their path are zeroed, so they are 0 all
 * the way to the next dense Conv. The pruned model must then compute what the inert original does.
 */
function makeInert(model: ModelProto, removedByLayer: Map<string, number[]>): number {
  const g = model.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const floats = (name: string): Float32Array => {
    const t = tensorFromProtoSync(inits.get(name)!);
    const raw = t.data.slice();
    return new Float32Array(raw.buffer, 0, raw.byteLength / 4);
  };
  const put = (name: string, x: Float32Array): void => {
    const tp = inits.get(name)!;
    tp.rawData = new Uint8Array(x.buffer.slice(0));
    tp.floatData = [];
  };
  const zeroAt = (name: string, channels: number[]): void => {
    const x = floats(name);
    const per = x.length / inits.get(name)!.dims.map(Number)[0]!;
    for (const c of channels) x.fill(0, c * per, (c + 1) * per);
    put(name, x);
  };
  let zeroed = 0;
  g.node.forEach((n, i) => {
    const removed = removedByLayer.get(n.name || `${n.opType}#${i}`);
    if (!removed) return;
    zeroAt(n.input[1]!, removed);
    if (n.input[2]) zeroAt(n.input[2], removed);
    const work = [n.output[0]!];
    while (work.length > 0) {
      const v = work.pop()!;
      for (const c of g.node.filter((x) => x.input[0] === v)) {
        const group = Number(c.attribute.find((a) => a.name === 'group')?.i ?? 1n);
        if (c.opType === 'BatchNormalization') { zeroAt(c.input[2]!, removed); zeroAt(c.input[3]!, removed); zeroed++; }
        else if (c.opType === 'Conv' && group > 1) { if (c.input[2]) zeroAt(c.input[2], removed); zeroAt(c.input[1]!, removed); zeroed++; }
        else if (c.opType !== 'Relu') continue;
        work.push(c.output[0]!);
      }
    }
  });
  return zeroed;
}

describe('pruneChannels on the corpus models (ratio 0.25)', () => {
  it('ultra-light-face with inert channels: pruned outputs equal the original', async () => {
    const f = join(CORPUS_ONNX, 'models/ultra-light-face/version-slim-320.onnx');
    const first = await openModel(f);
    const r0 = pruneChannels(first.model, { ratio: 0.25 }).report;
    await first.close();
    const removedByLayer = new Map(r0.layers.map((l) => [l.name, l.removed]));
    const { model, close } = await openModel(f);
    try {
      expect(makeInert(model.proto, removedByLayer)).toBeGreaterThan(20);
      const feeds = { input: input(77, [1, 3, 240, 320]) };
      const before = await run(model.proto, feeds);
      const r1 = pruneChannels(model, { ratio: 0.25 }).report;
      // Zeroed channels rank lowest, so the same channels go.
      expect(r1.layers.map((l) => [l.name, l.removed])).toEqual(r0.layers.map((l) => [l.name, l.removed]));
      const after = await run(model.proto, feeds);
      for (const k of ['scores', 'boxes']) {
        expect(after[k]!.dims).toEqual(before[k]!.dims);
        expect(maxAbsDiff(after[k]!.data, before[k]!.data), k).toBeLessThan(1e-5);
      }
    } finally {
      await close();
    }
  });


  it('runs in onnxruntime with the original output shapes and keeps the checker verdict', async () => {
    expect(CORPUS.length).toBe(10);
    const pruned: string[] = [];
    const summary: string[] = [];
    for (const f of CORPUS) {
      const name = basename(f);
      const { model, close } = await openModel(f);
      let report: PruneChannelsReport;
      // Inputs and expected output shapes from the original's declarations (all static here), so
      // only the pruned model has to run.
      const g = model.proto.graph!;
      const inits = new Set(g.initializer.map((t) => t.name));
      const staticDims = (v: (typeof g.input)[number]): number[] => {
        const t = v.type?.value;
        return t?.case === 'tensorType' ? t.value.shape!.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : -1)) : [];
      };
      const feeds: Record<string, ort.Tensor> = {};
      g.input.filter((v) => !inits.has(v.name)).forEach((v, i) => { feeds[v.name] = input(i + 7, staticDims(v)); });
      const expectedDims = Object.fromEntries(g.output.map((v) => [v.name, staticDims(v)]));
      const o = join(dir, `c25-${name}`);
      try {
        report = pruneChannels(model, { ratio: 0.25 }).report;
        await saveOnnxFile(model, o, { inputs: [f] });
        pruned.push(o);
      } finally {
        await close();
      }
      expect([report.totals.layers, report.totals.skipped], name).toEqual(EXPECTED[name]);
      for (const l of report.layers) expect(l.channelsAfter, `${name} ${l.name}`).toBe(l.channelsBefore - Math.round(0.25 * l.channelsBefore));
      expect(report.size.after.total).toBeLessThanOrEqual(report.size.before.total);
      const b = await run(o, feeds);
      expect(Object.keys(b).sort()).toEqual(Object.keys(expectedDims).sort());
      for (const [k, d] of Object.entries(expectedDims)) {
        expect(d.length, `${name} ${k} declared`).toBeGreaterThan(0);
        expect(d.every((x) => x > 0), `${name} ${k} static`).toBe(true);
        expect(b[k]!.dims, `${name} ${k}`).toEqual(d);
        expect(b[k]!.data.every((v) => Number.isFinite(v)), `${name} ${k} finite`).toBe(true);
      }
      summary.push(`${name}: ${report.totals.layers} pruned, ${report.totals.skipped} skipped, tensor bytes ${report.size.before.total} → ${report.size.after.total}, file ${statSync(f).size} → ${statSync(o).size}`);
    }
    // The originals all pass the full check (strict shape inference), so the pruned models must too.
    expect(checker(pruned)).toEqual(pruned.map(() => 'ok'));
    console.log(summary.join('\n'));
  }, 120_000);
});
