/**
 * Weight-only int8/uint8 quantization (src/compress/quantize/weight.ts): every real corpus model and a
 * few "light" ones are quantized (int8 per-channel symmetric, uint8 per-tensor asymmetric), written,
 * checked with onnx.checker (same verdict as the original), run in onnxruntime-node on random inputs
 * (cosine ≥ 0.99 against the original), and the weights must shrink. Plus exclusion, Constant weights
 * in subgraphs, graph-input/IR handling and every error the pass and the CLI verb throw.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  ValueInfoProtoSchema,
  type ModelProto,
} from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeWeights, type QuantizeWeightsOptions } from '../../src/compress/quantize/weight.js';
import { tensorBytes } from '../../src/compress/report.js';
import { onnxModel, type OnnxModel } from '../../src/formats/onnx/read.js';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { quantizeCommand } from '../../src/cli/commands/quantize.js';
import { memoryScratch, Spill } from '../../src/compress/spill.js';
import { nodeScratch } from '../../src/platform/scratch.js';
import { encodeOnnx } from '../../src/formats/onnx/write.js';
import { externalDataRef, modelTensorContext, tensorFromProto } from '../../src/formats/onnx/tensor.js';
import type { Out } from '../../src/cli/output.js';
import { CORPUS_ONNX, listFiles, openModel, rng } from '../formats/onnx/helpers.js';

const PY = '/usr/bin/python3';
const MODELS = listFiles(join(CORPUS_ONNX, 'models'), '.onnx');
const LIGHT = ['light_squeezenet.onnx', 'light_inception_v1.onnx'].map((n) => join(CORPUS_ONNX, 'light', n)).filter((p) => existsSync(p));
const CONFIGS: { tag: string; opts: QuantizeWeightsOptions }[] = [
  { tag: 'int8-pc-sym', opts: { dtype: 'int8', perChannel: true, symmetric: true } },
  { tag: 'uint8-pt-asym', opts: { dtype: 'uint8', perChannel: false, symmetric: false } },
];
/** Fixed input shapes / values where the declared ones are dynamic or the model checks its inputs. */
const SHAPES: Record<string, Record<string, number[]>> = {
  'embedding_model.onnx': { input_1: [1, 76, 32, 1] },
  'melspectrogram.onnx': { input: [1, 1280] },
  'ch_ppocr_mobile_v2.0_cls_infer.onnx': { x: [1, 3, 48, 192] },
  'silero_vad_legacy.onnx': { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] },
  'silero_vad_v5.onnx': { input: [1, 512], state: [2, 1, 128] },
};
/**
 * Known exceptions to cosine ≥ 0.99. silero_vad_v5 with one scale per tensor: its encoder Conv weights
 * reach only 20–25 dB SNR per tensor and the recurrent state output (stateN) lands at cosine ≈ 0.96 on
 * random inputs; per-channel int8 (the scheme the issue asks to hold 0.99) passes.
 */
const MIN_COSINE: Record<string, number> = { 'uint8-pt-asym/silero_vad_v5.onnx': 0.95 };
const ORT_OPTS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, logSeverityLevel: 3 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-qw-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function checkerVerdicts(files: string[]): boolean[] {
  const script = 'import onnx,sys\nfor p in sys.argv[1:]:\n  try:\n    onnx.checker.check_model(onnx.load(p)); print("ok")\n  except Exception as e:\n    print("fail")';
  return execFileSync(PY, ['-c', script, ...files], { encoding: 'utf8' }).trim().split('\n').map((l) => l === 'ok');
}

function feedsFor(session: ort.InferenceSession, file: string, seed: number): Record<string, ort.Tensor> {
  const r = rng(seed);
  const fixed = SHAPES[basename(file)] ?? {};
  const feeds: Record<string, ort.Tensor> = {};
  session.inputNames.forEach((name, i) => {
    const meta = session.inputMetadata[i] as { type?: string; shape?: (number | string)[] } | undefined;
    const shape = fixed[name] ?? (meta?.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
    const n = shape.reduce((a, d) => a * d, 1);
    if (meta?.type === 'int64') feeds[name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => (name === 'sr' ? 16000n : 0n)), shape);
    else feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => r() * 2 - 1), shape);
  });
  return feeds;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  if (aa === 0 && bb === 0) return 1;
  return dot / Math.sqrt(aa * bb);
}

async function runOutputs(file: string, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file, ORT_OPTS);
  try {
    const out = await s.run(feeds);
    const res: Record<string, Float32Array> = {};
    for (const n of s.outputNames) {
      const t = out[n]!;
      if (t.type === 'float32') res[n] = t.data as Float32Array;
    }
    return res;
  } finally {
    await s.release();
  }
}

function initializerBytes(m: ModelProto): number {
  return (m.graph?.initializer ?? []).reduce((a, t) => a + t.rawData.byteLength + t.floatData.length * 4, 0);
}

describe.each(CONFIGS)('quantizeWeights $tag on the corpus', ({ tag, opts }) => {
  it.each([...MODELS, ...LIGHT].map((p) => [basename(p), p]))('%s: valid, runs, close to the original, smaller', async (name, path) => {
    const { model, close } = await openModel(path);
    let out: string;
    let report;
    const beforeBytes = tensorBytes(model);
    try {
      ({ report } = await quantizeWeights(model, opts));
      out = join(dir, `${tag}-${name}`);
      await saveOnnxFile(model, out, { inputs: [path] });
    } finally {
      await close();
    }
    // Every quantized tensor: error consistent with the scale.
    for (const q of report.quantized) {
      expect(q.snrDb, q.name).toBeGreaterThan(opts.perChannel ? 25 : 15);
      expect(q.bytesAfter).toBeLessThan(q.bytesBefore);
    }
    const original = readFileSync(path);
    const written = readFileSync(out);
    // onnx.checker: same verdict as the original.
    const [vOrig, vNew] = checkerVerdicts([path, out]);
    if (vOrig) expect(vNew, 'onnx.checker').toBe(true);
    // Sizes: each quantized weight takes 1 byte per element plus its scale(s) and zero point(s).
    let params = 0;
    for (const q of report.quantized) {
      const n = q.shape.reduce((a, d) => a * d, 1);
      const C = q.scheme === 'per-channel' ? q.shape[q.axis!]! : 1;
      expect(q.bytesAfter, q.name).toBeLessThanOrEqual(n + C * 8);
      params += C;
    }
    const quantBefore = report.quantized.reduce((a, q) => a + q.bytesBefore, 0);
    const quantAfter = report.quantized.reduce((a, q) => a + q.bytesAfter, 0);
    expect(report.size.before.total).toBe(beforeBytes.total);
    // Where weights dominate and channels are not tiny (depthwise 3x3 convs carry a 4-byte scale per
    // 9 weights), int8 weights are at most 0.3x their float32 bytes, and so is the model's tensor data.
    // The size report accounts for exactly the bytes the pass changed.
    expect(report.size.after.total).toBe(report.size.before.total - quantBefore + quantAfter);
    if (quantBefore > 0 && quantBefore / 4 / params >= 32) {
      expect(quantAfter / quantBefore, 'quantized weights').toBeLessThanOrEqual(0.3);
      if (quantBefore > 0.95 * beforeBytes.total) expect(report.size.ratio, 'all tensor bytes').toBeLessThanOrEqual(0.3);
    }
    if (quantBefore > 0) expect(written.byteLength).toBeLessThan(original.byteLength);
    // onnxruntime: outputs close to the original's.
    const probe = await ort.InferenceSession.create(path, ORT_OPTS);
    const feeds = feedsFor(probe, path, 7);
    await probe.release();
    const ref = await runOutputs(path, feeds);
    const got = await runOutputs(out, feeds);
    expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
    for (const k of Object.keys(ref)) {
      expect(cosine(ref[k]!, got[k]!), `${name} output ${k}`).toBeGreaterThanOrEqual(MIN_COSINE[`${tag}/${name}`] ?? 0.99);
    }
    if (MODELS.includes(path)) expect(report.quantized.length, 'real models have weights').toBeGreaterThan(0);
  });
});

describe('quantizeWeights specifics', () => {
  const slim = MODELS.find((p) => p.endsWith('version-slim-320.onnx'));
  const ppocr = MODELS.find((p) => p.endsWith('ch_ppocr_mobile_v2.0_cls_infer.onnx'));
  const silero = MODELS.find((p) => p.endsWith('silero_vad_v5.onnx'));
  const wake = MODELS.find((p) => p.endsWith('hey_rhasspy_v0.1.onnx'));

  it('removes replaced initializers from graph.input; below opset 13 per-channel uses Cast/Mul', async () => {
    if (!slim) return;
    const { model, close } = await openModel(slim);
    try {
      const g = model.proto.graph!;
      const inputsBefore = g.input.length;
      const { report } = await quantizeWeights(model, { dtype: 'int8', perChannel: true, symmetric: true });
      expect(report.quantized.length).toBeGreaterThan(0);
      expect(report.quantized.every((q) => q.scheme === 'per-channel' && q.form === 'cast-mul')).toBe(true);
      expect(report.diagnostics.map((d) => d.code)).toContain('quantize.cast_mul_form');
      expect(model.proto.opsetImport.find((o) => o.domain === '')?.version).toBe(9n);
      const names = new Set(g.input.map((v) => v.name));
      for (const q of report.quantized) expect(names.has(q.name)).toBe(false);
      expect(g.input.length).toBe(inputsBefore - report.quantized.length);
      // Cast → Mul (symmetric int8: no Sub) first, the Mul output under the original name.
      const mul = g.node.filter((n) => n.opType === 'Mul' && report.quantized.some((q) => q.name === n.output[0]));
      expect(mul.length).toBe(report.quantized.length);
      expect(g.node[0]!.opType).toBe('Cast');
      expect(g.node.some((n) => n.opType === 'DequantizeLinear')).toBe(false);
    } finally {
      await close();
    }
  });

  it('quantizes weights held by Constant nodes (paddle2onnx) in place', async () => {
    if (!ppocr) return;
    const { model, close } = await openModel(ppocr);
    try {
      const { report } = await quantizeWeights(model, { dtype: 'uint8', perChannel: false, symmetric: false });
      expect(report.quantized.length).toBeGreaterThan(0);
      expect(report.quantized.every((q) => q.kind === 'constant' && q.form === 'cast-mul')).toBe(true);
      const g = model.proto.graph!;
      // Each DequantizeLinear comes after the Constants that feed it.
      const pos = new Map<string, number>();
      g.node.forEach((n, i) => n.output.forEach((o) => pos.set(o, i)));
      for (const [i, n] of g.node.entries()) {
        if (n.opType !== 'Cast' && n.opType !== 'Sub' && n.opType !== 'Mul') continue;
        for (const x of n.input) expect(pos.get(x)!).toBeLessThan(i);
      }
    } finally {
      await close();
    }
  });

  it('reaches Constant weights inside If subgraphs (silero v5)', async () => {
    if (!silero) return;
    const { model, close } = await openModel(silero);
    try {
      const { report } = await quantizeWeights(model, { dtype: 'int8', perChannel: true, symmetric: true });
      expect(report.quantized.some((q) => q.scope.includes(':then_branch') || q.scope.includes(':else_branch'))).toBe(true);
    } finally {
      await close();
    }
  });

  it('excludes by op type and by weight name', async () => {
    if (!wake) return;
    const a = await openModel(wake);
    let all: string[];
    try {
      all = (await quantizeWeights(a.model, { dtype: 'int8', perChannel: true, symmetric: true })).report.quantized.map((q) => q.name);
    } finally {
      await a.close();
    }
    expect(all.length).toBeGreaterThan(1);
    const b = await openModel(wake);
    try {
      const { report } = await quantizeWeights(b.model, { dtype: 'int8', perChannel: true, symmetric: true, exclude: { opTypes: ['Gemm'] } });
      expect(report.quantized.filter((q) => q.op.includes('Gemm'))).toEqual([]);
      expect(report.skipped.filter((s) => s.reason === 'excluded').length).toBeGreaterThan(0);
    } finally {
      await b.close();
    }
    const c = await openModel(wake);
    try {
      const { report } = await quantizeWeights(c.model, { dtype: 'int8', perChannel: true, symmetric: true, exclude: { names: [all[0]!] } });
      expect(report.quantized.map((q) => q.name)).toEqual(all.slice(1));
      expect(report.skipped.find((s) => s.name === all[0])?.reason).toBe('excluded');
    } finally {
      await c.close();
    }
  });

  // A tiny model built here: MatMul with a weight shared by two consumers, a small weight, an IR 3 file.
  function tinyModel(opset: number, ir = 7): OnnxModel {
    const r = rng(3);
    const w = Float32Array.from({ length: 8 * 4 }, () => r() * 2 - 1);
    const small = Float32Array.from({ length: 2 * 2 }, () => r());
    const tensor = float32TensorProto;
    const vi = (name: string, dims: number[]) => tensorValueInfo(name, dims);
    const graph = create(GraphProtoSchema, {
      name: 'tiny',
      node: [
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['y1'], name: 'mm1' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['y2'], name: 'mm2' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x2', 'S'], output: ['y3'], name: 'mm3' }),
      ],
      initializer: [tensor('W', [8, 4], w), tensor('S', [2, 2], small)],
      input: ir < 4 ? [vi('x', [1, 8]), vi('x2', [1, 2]), vi('W', [8, 4]), vi('S', [2, 2])] : [vi('x', [1, 8]), vi('x2', [1, 2])],
      output: [vi('y1', [1, 4]), vi('y2', [1, 4]), vi('y3', [1, 2])],
    });
    const proto: ModelProto = create(ModelProtoSchema, { irVersion: BigInt(ir), opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })], graph });
    return onnxModel(proto);
  }

  it('quantizes a shared weight once, skips tiny ones, per-channel axis = last dim of MatMul B', async () => {
    const m = tinyModel(13);
    const { report } = await quantizeWeights(m, { dtype: 'uint8', perChannel: true, symmetric: false });
    expect(report.quantized.map((q) => [q.name, q.axis, q.op])).toEqual([['W', 1, 'MatMul']]);
    expect(report.skipped).toEqual([{ name: 'S', op: 'MatMul', scope: 'graph', reason: '4 elements (< 16)' }]);
    const g = m.proto.graph!;
    expect(g.node.filter((n) => n.opType === 'DequantizeLinear').length).toBe(1);
    expect(g.initializer.map((t) => t.name)).toEqual(['W_quantized', 'W_scale', 'W_zero_point', 'S']);
    // minElements lowers the bar.
    const m2 = tinyModel(13);
    const r2 = await quantizeWeights(m2, { dtype: 'int8', perChannel: false, symmetric: true, minElements: 1 });
    expect(r2.report.quantized.map((q) => q.name)).toEqual(['W', 'S']);
  });

  it('raises IR 3 to 4 and drops replaced initializers from the inputs; the result passes onnx.checker', async () => {
    const m = tinyModel(13, 3);
    const { report } = await quantizeWeights(m, { dtype: 'int8', perChannel: true, symmetric: true });
    expect(m.proto.irVersion).toBe(4n);
    expect(report.diagnostics.map((d) => d.code)).toContain('quantize.ir_version_raised');
    expect(m.proto.graph!.input.map((v) => v.name)).toEqual(['x', 'x2', 'S']);
    const out = join(dir, 'tiny-ir3.onnx');
    await saveOnnxFile(m, out);
    expect(checkerVerdicts([out])).toEqual([true]);
  });

  it('uses DequantizeLinear per tensor at opset 10..12 and Cast/Mul for per-channel there', async () => {
    const a = tinyModel(11);
    const ra = await quantizeWeights(a, { dtype: 'int8', perChannel: false, symmetric: true });
    expect(ra.report.quantized.map((q) => [q.form, q.scheme])).toEqual([['dq', 'per-tensor']]);
    expect(a.proto.graph!.node[0]!.opType).toBe('DequantizeLinear');
    const b = tinyModel(11);
    const rb = await quantizeWeights(b, { dtype: 'uint8', perChannel: true, symmetric: true });
    expect(rb.report.quantized.map((q) => [q.form, q.scheme])).toEqual([['cast-mul', 'per-channel']]);
    // uint8 symmetric: zero point 128 → a Sub node; scale shaped [1, 4] for MatMul B [8, 4].
    expect(b.proto.graph!.node.slice(0, 3).map((n) => n.opType)).toEqual(['Cast', 'Sub', 'Mul']);
    expect(b.proto.graph!.initializer.find((t) => t.name === 'W_scale')!.dims).toEqual([1n, 4n]);
    for (const [m, tag] of [[a, 'dq11'], [b, 'castmul11']] as const) {
      const out = join(dir, `tiny-${tag}.onnx`);
      await saveOnnxFile(m, out);
      expect(checkerVerdicts([out])).toEqual([true]);
      const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 8 }, (_, i) => i / 8 - 0.5), [1, 8]), x2: new ort.Tensor('float32', Float32Array.of(1, 2), [1, 2]) };
      const got = await runOutputs(out, feeds);
      expect(got.y1!.length).toBe(4);
    }
  });

  it('skips everything below opset 7 with a diagnostic', async () => {
    const m = tinyModel(6);
    const { report } = await quantizeWeights(m, { dtype: 'int8', perChannel: true, symmetric: true });
    expect(report.quantized).toEqual([]);
    expect(report.skipped.length).toBe(2);
    expect(report.diagnostics.map((d) => d.code)).toEqual(['quantize.opset_too_old']);
  });

  it('throws E_UNSUPPORTED for another dtype and E_USAGE for a bad minElements', async () => {
    await expect(quantizeWeights(tinyModel(13), { dtype: 'int4' as 'int8', perChannel: false, symmetric: true })).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    await expect(quantizeWeights(tinyModel(13), { dtype: 'int8', perChannel: false, symmetric: true, minElements: 0 })).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('new names never collide with existing ones', async () => {
    const m = tinyModel(13);
    const g = m.proto.graph!;
    g.node.push(create(NodeProtoSchema, { opType: 'Identity', input: ['x'], output: ['W_quantized'], name: 'taken' }));
    g.output.push(create(ValueInfoProtoSchema, { name: 'W_quantized' }));
    await quantizeWeights(m, { dtype: 'int8', perChannel: false, symmetric: true });
    expect(g.initializer.map((t) => t.name)).toContain('W_quantized_1');
  });
});

describe('quantize CLI verb', () => {
  const out: Out = { json: true, say: () => {}, note: () => {}, report: () => {} };
  const wake = MODELS.find((p) => p.endsWith('hey_rhasspy_v0.1.onnx'))!;

  it('writes the model and reports sizes, ratio and per-tensor errors', async () => {
    const o = join(dir, 'cli.onnx');
    const rep = (await quantizeCommand.run([wake], { output: o, 'per-channel': true, symmetric: true, exclude: 'Conv,nothing' }, out)) as Record<string, unknown>;
    expect(rep.ok).toBe(true);
    expect(rep.outputBytes as number).toBeLessThan(rep.inputBytes as number);
    expect(rep.ratio as number).toBeLessThan(0.5);
    expect((rep.quantized as unknown[]).length).toBeGreaterThan(0);
    expect(existsSync(o)).toBe(true);
  });

  it('refuses bad arguments with E_USAGE (--method dynamic / int4: test/compress/quantize-{dynamic,int4}.test.ts)', async () => {
    const o = join(dir, 'never.onnx');
    await expect(quantizeCommand.run([wake], { output: o, method: 'dynamic', dtype: 'int8' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([wake], { output: o, method: 'int4', 'block-size': '48' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([wake], { output: o, method: 'magic' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([wake], { output: o, dtype: 'int16' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([wake], { output: o, 'min-elements': '-3' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([wake], {}, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([wake], { output: join(dir, 'x.tflite') }, out)).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    expect(existsSync(o)).toBe(false);
  });
});

describe('streamed weights and spilling (src/compress/spill.ts)', () => {
  /** MatMul chain with external-data weights, one of which holds a NaN and one an Inf. */
  function chainModel(): OnnxModel {
    const r = rng(41);
    const dims = [64, 96, 64, 48, 32];
    const init = dims.slice(0, -1).map((d, i) => {
      const w = Float32Array.from({ length: d * dims[i + 1]! }, () => r() * 2 - 1);
      if (i === 2) w[7] = NaN;
      if (i === 3) w[100] = -Infinity;
      return float32TensorProto(`W${i}`, [d, dims[i + 1]!], w);
    });
    const node = init.map((t, i) => create(NodeProtoSchema, { opType: 'MatMul', name: `mm${i}`, input: [i ? `h${i - 1}` : 'x', t.name], output: [i === init.length - 1 ? 'y' : `h${i}`] }));
    const graph = create(GraphProtoSchema, { name: 'chain', node, initializer: init, input: [tensorValueInfo('x', [1, 64])], output: [tensorValueInfo('y', [1, 32])] });
    return onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph }));
  }
  const OPTS: QuantizeWeightsOptions = { dtype: 'int8', perChannel: true, symmetric: true };
  let input: string;
  beforeAll(async () => {
    input = join(dir, 'chain.onnx');
    await saveOnnxFile(chainModel(), input, { externalData: { threshold: 1024 } });
  });

  it('skips weights holding NaN or ±Inf (found by the min/max pass)', async () => {
    const { report } = await quantizeWeights(chainModel(), OPTS);
    expect(report.quantized.map((q) => q.name)).toEqual(['W0', 'W1']);
    expect(report.skipped).toEqual([
      expect.objectContaining({ name: 'W2', reason: 'holds NaN or infinite values' }),
      expect.objectContaining({ name: 'W3', reason: 'holds NaN or infinite values' }),
    ]);
  });

  it('a spilled model writes the same bytes as an in-memory one, inline and with external data', async () => {
    const a = await openModel(input);
    const b = await openModel(input);
    const spill = new Spill({ scratch: nodeScratch(dir), threshold: 1024 });
    try {
      const ra = await quantizeWeights(a.model, OPTS);
      const rb = await quantizeWeights(b.model, { ...OPTS, spill });
      expect(rb.report.quantized).toEqual(ra.report.quantized);
      expect(rb.report.size).toEqual(ra.report.size);
      // W0 and W1 codes (64·96 and 96·64 bytes) went to the scratch file; the small scales did not.
      expect(spill.tensors).toBe(2);
      expect(spill.bytes).toBe(2 * 64 * 96);
      const q0 = b.model.proto.graph!.initializer.find((t) => t.name === 'W0_quantized')!;
      expect(externalDataRef(q0)?.location).toBe(spill.location);
      const inlineA = await encodeOnnx(a.model);
      expect(Buffer.from(await encodeOnnx(b.model)).equals(Buffer.from(inlineA))).toBe(true);
      // Through files with external data: the same tensors come back, and no spill name leaks out.
      const outA = join(dir, 'chain-a.onnx');
      const outB = join(dir, 'chain-b.onnx');
      await saveOnnxFile(a.model, outA, { externalData: { threshold: 1024 } });
      await saveOnnxFile(b.model, outB, { externalData: { threshold: 1024 } });
      expect(readFileSync(`${outB}.data`).equals(readFileSync(`${outA}.data`))).toBe(true);
      const back = await openModel(outB);
      try {
        expect(back.model.proto.graph!.initializer.every((t) => !externalDataRef(t)?.location.includes('spill'))).toBe(true);
        const t = await tensorFromProto(back.model.proto.graph!.initializer.find((x) => x.name === 'W1_quantized')!, modelTensorContext(back.model));
        const u = await tensorFromProto(a.model.proto.graph!.initializer.find((x) => x.name === 'W1_quantized')!, modelTensorContext(a.model));
        expect(Buffer.from(t.data).equals(Buffer.from(u.data))).toBe(true);
      } finally {
        await back.close();
      }
    } finally {
      await spill.dispose();
      await a.close();
      await b.close();
    }
    // The scratch folder is gone; the spilled tensors cannot be read any more.
    expect(readdirSync(dir).some((n) => n.startsWith('modelsmith-spill-'))).toBe(false);
    const q1 = b.model.proto.graph!.initializer.find((t) => t.name === 'W1_quantized')!;
    await expect(tensorFromProto(q1, modelTensorContext(b.model))).rejects.toMatchObject({ code: 'E_IO' });
  });

  it('windowed reads (arenaBytes) give the same codes as whole-tensor reads', async () => {
    const a = await openModel(input);
    const b = await openModel(input);
    try {
      const ra = await quantizeWeights(a.model, OPTS);
      // 4 KiB windows: 1024 floats, cutting the 96-wide rows anywhere.
      const rb = await quantizeWeights(b.model, { ...OPTS, arenaBytes: 4096 });
      const codes = async (m: OnnxModel) => Promise.all(m.proto.graph!.initializer.filter((t) => t.name.endsWith('_quantized')).map(async (t) => (await tensorFromProto(t, modelTensorContext(m))).data));
      const [ca, cb] = [await codes(a.model), await codes(b.model)];
      expect(ca.length).toBe(2);
      for (let i = 0; i < ca.length; i++) expect(Buffer.from(cb[i]!).equals(Buffer.from(ca[i]!))).toBe(true);
      for (const [i, q] of rb.report.quantized.entries()) {
        const p = ra.report.quantized[i]!;
        expect(q.maxAbs).toBe(p.maxAbs);
        expect(Math.abs(q.snrDb - p.snrDb)).toBeLessThan(1e-9);
        expect(Math.abs(q.cosine - p.cosine)).toBeLessThan(1e-12);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('spills to memory too, and a released spill is E_EXTERNAL_DATA', async () => {
    const m = chainModel();
    const spill = new Spill({ scratch: memoryScratch(), threshold: 0 });
    const ref = await quantizeWeights(chainModel(), OPTS);
    await quantizeWeights(m, { ...OPTS, spill });
    // Only the codes are spilled (threshold 0: all of them); scales and zero points stay inline.
    expect(spill.tensors).toBe(2);
    expect(spill.bytes).toBe(64 * 96 * 2);
    const ctx = modelTensorContext(m);
    const q0 = m.proto.graph!.initializer.find((t) => t.name === 'W0_quantized')!;
    expect(Buffer.from((await tensorFromProto(q0, ctx)).data).equals(Buffer.from(ref.model.proto.graph!.initializer.find((t) => t.name === 'W0_quantized')!.rawData))).toBe(true);
    // A model built in memory has no folder: other external locations are refused through the chain.
    const stray = float32TensorProto('stray', [2], new Float32Array(2));
    stray.dataLocation = 1;
    stray.externalData = [create(StringStringEntryProtoSchema, { key: 'location', value: 'other.bin' })];
    await expect(tensorFromProto(stray, modelTensorContext(m))).rejects.toMatchObject({ code: 'E_EXTERNAL_DATA' });
    await spill.dispose();
    // This model already opened the scratch data (E_IO from the released source); a model that never
    // read it is refused by the resolver chain itself.
    const q1 = m.proto.graph!.initializer.find((t) => t.name === 'W1_quantized')!;
    await expect(tensorFromProto(q1, modelTensorContext(m))).rejects.toMatchObject({ code: 'E_IO' });
    const m2 = chainModel();
    const spill2 = new Spill({ scratch: memoryScratch(), threshold: 0 });
    await quantizeWeights(m2, { ...OPTS, spill: spill2 });
    await spill2.dispose();
    const q2 = m2.proto.graph!.initializer.find((t) => t.name === 'W1_quantized')!;
    await expect(tensorFromProto(q2, modelTensorContext(m2))).rejects.toMatchObject({ code: 'E_EXTERNAL_DATA' });
  });

  it('bad spill threshold or arenaBytes is E_USAGE', async () => {
    expect(() => new Spill({ scratch: memoryScratch(), threshold: -1 })).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
    await expect(quantizeWeights(chainModel(), { ...OPTS, arenaBytes: 2 })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});
