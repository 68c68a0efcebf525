/**
 * The done-when for static quantization: the Fashion-MNIST CNN calibrated on 500 fixture
 * images by our engine, quantized to QDQ int8, evaluated on all 2,000 in onnxruntime-node.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { OperatorSetIdProtoSchema } from 'onnx-buf';
import { batches, openDataset } from '../../src/data/dataset.js';
import { calibrate, type CalibrationMethod, type CalibrationResult } from '../../src/compress/static/calibrate.js';
import { planStatic } from '../../src/compress/static/plan.js';
import { quantizeStatic } from '../../src/compress/static/quantize.js';
import { ortRunner } from '../../src/compress/static/ort-runner.js';
import { staticQuantize } from '../../src/compress/static/pipeline.js';
import { modelInputs } from '../../src/data/model-inputs.js';
import { createEngine } from '../../src/engine/engine.js';
import { decodeOnnx, type OnnxModel } from '../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../src/formats/onnx/write.js';
import { tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { typedView } from '../../src/core/tensor.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { loadFixture, predict, type Fixture } from '../../src/bench/accuracy.js';
import { loadOrt } from '../../src/eval/ort.js';
import { runPython } from '../kernels/helpers.js';
import { nodeIo } from '../data/io.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/fashion-mnist');
const INPUTS = [{ name: 'input', dims: ['N', 1, 28, 28] as (string | number)[] }];

let fx: Fixture;
let tmp: string;
let fp32Correct = 0;
const results = new Map<string, { correct: number; path: string; model: OnnxModel; cal: CalibrationResult }>();

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ModelsmithError)) throw e;
    return e.code;
  }
  return 'none';
}

async function calibrated(method: CalibrationMethod, runner: 'engine' | 'ort' = 'engine'): Promise<{ model: OnnxModel; cal: CalibrationResult }> {
  const model = decodeOnnx(fx.modelBytes, { path: fx.modelPath });
  const ds = await openDataset(join(FIXTURE, 'test-images.idx3-ubyte'), nodeIo, { inputs: INPUTS, maxSamples: 500 });
  if (runner === 'engine') {
    const engine = await createEngine(model);
    return { model, cal: await calibrate(model, batches(ds, 100), { method, run: (feeds, names) => engine.run(feeds, { outputs: names }) }) };
  }
  const r = await ortRunner(model, planStatic(model.proto).calibrate);
  try {
    return { model, cal: await calibrate(model, batches(ds, 100), { method, run: r.run }) };
  } finally {
    await r.release();
  }
}

beforeAll(async () => {
  fx = await loadFixture(FIXTURE);
  tmp = await mkdtemp(join(tmpdir(), 'ms-static-'));
  fp32Correct = (await predict(fx.modelPath, fx.subset)).correct;
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('static int8 QDQ of the Fashion-MNIST CNN', () => {
  it.each(['minmax', 'percentile', 'entropy'] as const)('%s: calibrated on 500 images, top-1 drop ≤ 0.5 pp on 2,000 in onnxruntime', async (method) => {
    const { model, cal } = await calibrated(method);
    expect(cal.samples).toBe(500);
    expect(cal.batches).toBe(5);
    const { report } = await quantizeStatic(model, cal.ranges);
    const path = join(tmp, `${method}.onnx`);
    await writeFile(path, await encodeOnnx(model));
    const { correct } = await predict(path, fx.subset);
    const dropPp = ((fp32Correct - correct) / fx.subset.count) * 100;
    console.log(`static ${method}: fp32 ${(fp32Correct / 20).toFixed(2)}% → int8 ${(correct / 20).toFixed(2)}% (Δ ${dropPp.toFixed(2)} pp)`);
    expect(dropPp).toBeLessThanOrEqual(0.5);
    expect(report.weights.quantized).toHaveLength(4);
    expect(report.biases).toHaveLength(2);
    results.set(method, { correct, path, model, cal });
  });

  it.each(['minmax', 'percentile', 'entropy'] as const)('%s with uint8 asymmetric weights (u8·u8 kernels: no 16-bit saturation on x86 without VNNI) within 0.5 pp', async (method) => {
    const model = decodeOnnx(fx.modelBytes, { path: fx.modelPath });
    const { report } = await quantizeStatic(model, results.get(method)!.cal.ranges, { weightType: 'uint8' });
    expect(report.weights.quantized.every((w) => w.dtype === 'uint8' && !w.symmetric && w.scheme === 'per-channel')).toBe(true);
    const path = join(tmp, `${method}-u8w.onnx`);
    await writeFile(path, await encodeOnnx(model));
    const { correct } = await predict(path, fx.subset);
    const dropPp = ((fp32Correct - correct) / fx.subset.count) * 100;
    console.log(`static ${method}, uint8 weights: fp32 ${(fp32Correct / 20).toFixed(2)}% → ${(correct / 20).toFixed(2)}% (Δ ${dropPp.toFixed(2)} pp)`);
    expect(dropPp).toBeLessThanOrEqual(0.5);
  });

  it('the QDQ layout: uint8 activations, int8 per-channel weights (Conv axis 0, MatMul axis 1), int32 biases with x_scale · w_scale', () => {
    const { model } = results.get('minmax')!;
    const g = model.proto.graph!;
    const ops = g.node.map((n) => n.opType);
    // input, Relu, Relu_1, Relu_2 calibrated; MaxPool, MaxPool_1, Flatten outputs share their source's parameters.
    expect(ops.filter((o) => o === 'QuantizeLinear')).toHaveLength(7);
    expect(ops.filter((o) => o === 'DequantizeLinear')).toHaveLength(7 + 4 + 2);
    const qMax = g.node.find((n) => n.opType === 'QuantizeLinear' && n.input[0] === '/MaxPool_output_0')!;
    const qRelu0 = g.node.find((n) => n.opType === 'QuantizeLinear' && n.input[0] === '/Relu_output_0')!;
    expect(qMax.input.slice(1)).toEqual(qRelu0.input.slice(1));
    const init = new Map(g.initializer.map((t) => [t.name, t]));
    const val = (name: string) => typedView(tensorFromProtoSync(init.get(name)!));
    const dq = (out: string) => g.node.find((n) => n.opType === 'DequantizeLinear' && n.output[0] === out)!;
    const axis = (n: { attribute: { name: string; i: bigint }[] }) => Number(n.attribute.find((a) => a.name === 'axis')?.i ?? -1);
    const w1 = dq('onnx::Conv_34');
    expect(init.get(w1.input[0]!)!.dataType).toBe(3); // INT8
    expect(axis(w1)).toBe(0);
    expect(val(w1.input[1]!).length).toBe(16);
    expect(axis(dq('fc1.weight'))).toBe(1);
    expect(val(dq('fc1.weight').input[1]!).length).toBe(128);
    // Activations: QuantizeLinear zero points are uint8 (data type 2); Relu outputs get zero point 0.
    const qRelu = g.node.find((n) => n.opType === 'QuantizeLinear' && n.input[0] === '/Relu_output_0')!;
    expect(init.get(qRelu.input[2]!)!.dataType).toBe(2);
    expect(val(qRelu.input[2]!)[0]).toBe(0);
    // Bias of conv1: int32, scale = input scale × weight scale per channel.
    const conv1 = g.node.find((n) => n.opType === 'Conv')!;
    const bdq = dq(conv1.input[2]!);
    expect(init.get(bdq.input[0]!)!.dataType).toBe(6); // INT32
    const qIn = g.node.find((n) => n.opType === 'QuantizeLinear' && n.input[0] === 'input')!;
    const xs = val(qIn.input[1]!)[0] as number;
    const ws = val(w1.input[1]!) as Float32Array;
    const bs = val(bdq.input[1]!) as Float32Array;
    for (let c = 0; c < 16; c++) expect(bs[c]).toBe(Math.fround(xs * ws[c]!));
    // Graph inputs and outputs stay float.
    expect(g.input.map((i) => i.name)).toEqual(['input']);
    expect(g.output.map((o) => o.name)).toEqual(['logits']);
  });

  it('passes onnx.checker (full check) and onnxruntime fuses it into QLinearConv / QGemm', async () => {
    const paths = [...results.values()].map((r) => r.path);
    expect(paths).toHaveLength(3);
    const out = new TextDecoder().decode(runPython('import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\nprint("ok")', paths));
    expect(out.trim()).toBe('ok');
    const ort = (await loadOrt()) as unknown as { InferenceSession: { create(p: string, o: Record<string, unknown>): Promise<{ release(): Promise<void> }> } };
    const optimized = join(tmp, 'optimized.onnx');
    const s = await ort.InferenceSession.create(results.get('minmax')!.path, { optimizedModelFilePath: optimized, graphOptimizationLevel: 'all', logSeverityLevel: 4 });
    await s.release();
    const ops = new Set(decodeOnnx(new Uint8Array(await readFile(optimized))).proto.graph!.node.map((n) => n.opType));
    expect(ops.has('QLinearConv')).toBe(true);
    expect(ops.has('Conv')).toBe(false);
    // fc1 (MatMul + bias Add, Relu output quantized) becomes an integer QGemm; MaxPool runs on uint8 data.
    expect(ops.has('QGemm')).toBe(true);
    expect(ops.has('NhwcMaxPool') || ops.has('MaxPool')).toBe(true);
  });

  it('the engine and onnxruntime-node give the same calibration ranges (within 1e-5 relative)', async () => {
    const { cal: viaOrt } = await calibrated('percentile', 'ort');
    const viaEngine = results.get('percentile')!.cal;
    expect(Object.keys(viaOrt.ranges).sort()).toEqual(Object.keys(viaEngine.ranges).sort());
    for (const [n, r] of Object.entries(viaEngine.ranges)) {
      const o = viaOrt.ranges[n]!;
      const tol = 1e-5 * Math.max(1, Math.abs(r.max), Math.abs(r.min));
      expect(Math.abs(o.min - r.min), n).toBeLessThanOrEqual(tol);
      expect(Math.abs(o.max - r.max), n).toBeLessThanOrEqual(tol);
    }
  });

  it('observer memory does not grow with the data: the same state bytes for 100 and 500 samples', async () => {
    const model = decodeOnnx(fx.modelBytes, { path: fx.modelPath });
    const engine = await createEngine(model);
    const state = async (n: number) => {
      const ds = await openDataset(join(FIXTURE, 'test-images.idx3-ubyte'), nodeIo, { inputs: INPUTS, maxSamples: n });
      return (await calibrate(model, batches(ds, 50), { method: 'entropy', run: (f, names) => engine.run(f, { outputs: names }) })).stateBytes;
    };
    const small = await state(100);
    expect(small).toBe(await state(500));
    expect(small).toBeLessThan(4 * (2048 * 8 + 64)); // four histograms of 2,048 float64 bins
  });

  it('int8 activations (asymmetric) via staticQuantize (engine, declared inputs) also run in onnxruntime within 0.5 pp', async () => {
    const model = decodeOnnx(fx.modelBytes, { path: fx.modelPath });
    const ds = await openDataset(join(FIXTURE, 'test-images.idx3-ubyte'), nodeIo, { inputs: modelInputs(model.proto), maxSamples: 500 });
    const { report, calibration } = await staticQuantize(model, ds, { method: 'minmax', activationType: 'int8', batchSize: 100 });
    expect(calibration.samples).toBe(500);
    expect(report.activations.every((a) => a.zeroPoint >= -128 && a.zeroPoint <= 127)).toBe(true);
    expect(report.activations.find((a) => a.tensor === '/Relu_output_0')!.zeroPoint).toBe(-128);
    const path = join(tmp, 'int8-act.onnx');
    await writeFile(path, await encodeOnnx(model));
    const { correct } = await predict(path, fx.subset);
    expect(((fp32Correct - correct) / fx.subset.count) * 100).toBeLessThanOrEqual(0.5);
  });
});

describe('quantizeStatic errors and fallbacks', () => {
  it('a missing range, a non-finite range, an unknown activation type', async () => {
    const ranges = results.get('minmax')!.cal.ranges;
    const fresh = () => decodeOnnx(fx.modelBytes, { path: fx.modelPath });
    const { input: _drop, ...missing } = ranges;
    expect(await code(quantizeStatic(fresh(), missing))).toBe('E_USAGE');
    expect(await code(quantizeStatic(fresh(), { ...ranges, input: { min: 0, max: NaN } }))).toBe('E_OUT_OF_RANGE');
    expect(await code(quantizeStatic(fresh(), ranges, { activationType: 'int4' as 'int8' }))).toBe('E_USAGE');
  });

  it('opset < 10 is refused; opset 10..12 falls back to per-tensor weights with a diagnostic and still runs', async () => {
    const ranges = results.get('minmax')!.cal.ranges;
    const at = (v: number) => {
      const m = decodeOnnx(fx.modelBytes, { path: fx.modelPath });
      m.proto.opsetImport = [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(v) })];
      return m;
    };
    expect(await code(quantizeStatic(at(9), ranges))).toBe('E_UNSUPPORTED');
    const m = at(11);
    const { report } = await quantizeStatic(m, ranges);
    expect(report.diagnostics.map((d) => d.code)).toContain('quantize.per_tensor_fallback');
    expect(report.weights.quantized.every((w) => w.scheme === 'per-tensor')).toBe(true);
    const path = join(tmp, 'opset11.onnx');
    await writeFile(path, await encodeOnnx(m));
    const { correct } = await predict(path, fx.subset, { limit: 500 });
    expect(correct).toBeGreaterThan(400);
  });
});
