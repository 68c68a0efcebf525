import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../../src/bench/accuracy.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { runPython } from '../kernels/helpers.js';
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { fvalue } from '../../src/engine/values.js';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import { tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { typedView } from '../../src/core/tensor.js';
import { analyzeSensitivity, magnitudeScores, prunableWeights, pruneGradient, pruneGradientModel, selectMasks, TaylorAccumulator, taylorScores } from '../../src/compress/prune-gradient.js';
import { arrayBatches } from '../../src/train/data.js';
import { evaluate, train } from '../../src/train/loop.js';
import { crossEntropy } from '../../src/train/losses.js';
import { Adam } from '../../src/train/optim.js';
import { BatchStream } from '../../src/train/stream.js';
import { blobs, mlp } from '../train/tiny.js';

const D = 8, H = 24, C = 4;
const trainSet = blobs(768, D, C, 7);
const testSet = blobs(384, D, C, 7);
const trainBatches = arrayBatches(trainSet, { batchSize: 32, seed: 1 });
const evalBatches = () => arrayBatches(testSet, { batchSize: 128 })(0);

/** A trained MLP (the same weights for every test that asks). */
let trainedBytes: Map<string, Float32Array>;
async function trained(): Promise<Engine> {
  const e = await createEngine(mlp(D, H, C, 3));
  for (const [k, v] of trainedBytes) e.params.get(k)!.data.set(v);
  return e;
}

beforeAll(async () => {
  const e = await createEngine(mlp(D, H, C, 3));
  train(e, trainBatches, { epochs: 6, optimizer: new Adam({ lr: 0.01 }) });
  trainedBytes = new Map([...e.params].map(([k, v]) => [k, Float32Array.from(v.data)]));
});

describe('prunable weights', () => {
  it('are Conv W and MatMul/Gemm B initializers, not biases; exclusions apply', async () => {
    const e = await trained();
    expect(prunableWeights(e.exportModel(), e.params).map((w) => [w.name, w.op, w.shape])).toEqual([['W1', 'MatMul', [D, H]], ['W2', 'MatMul', [H, C]]]);
    expect(prunableWeights(e.exportModel(), e.params, ['W2']).map((w) => w.name)).toEqual(['W1']);
    const conv = create(ModelProtoSchema, {
      graph: create(GraphProtoSchema, {
        node: [create(NodeProtoSchema, { opType: 'Conv', name: 'c', input: ['x', 'K', 'kb'], output: ['y'] }), create(NodeProtoSchema, { opType: 'Gemm', input: ['y', 'G'], output: ['z'] })],
      }),
    });
    const params = new Map([['K', fvalue([2, 1, 3, 3])], ['kb', fvalue([2])], ['G', fvalue([4, 2])]]);
    expect(prunableWeights(conv, params).map((w) => `${w.op}:${w.name}:${w.node}`)).toEqual(['Conv:K:c', 'Gemm:G:Gemm#1']);
  });
});

describe('Taylor sensitivity', () => {
  it('equals |w·∂L/∂w| exactly for one batch', async () => {
    const e = await trained();
    const batch = [...trainBatches(0)][0]!;
    const { values, tape } = e.forward(batch.inputs, { outputs: ['logits'] });
    const grads = e.backward(tape, { logits: crossEntropy(values.logits as never, batch.labels!).grad });
    const weights = prunableWeights(e.exportModel(), e.params);
    const { scores, loss } = taylorScores(e, new BatchStream([batch]), weights, 1, (l, b) => crossEntropy(l, b.labels!), 'logits');
    expect(loss).toBeGreaterThan(0);
    for (const w of weights) {
      const p = e.params.get(w.name)!.data, g = grads.get(w.name)!.data, s = scores.get(w.name)!;
      let nonzero = 0;
      for (let i = 0; i < p.length; i++) {
        expect(s[i]).toBe(Math.fround(Math.abs(p[i]! * g[i]!)));
        if (s[i]! > 0) nonzero++;
      }
      expect(nonzero).toBeGreaterThan(p.length / 2);
    }
  });

  it('gives 0 to weights with zero gradient (input feature 0 is always 0) while magnitude does not', async () => {
    const e = await trained();
    const weights = prunableWeights(e.exportModel(), e.params);
    const { scores } = taylorScores(e, new BatchStream(trainBatches), weights, 4, (l, b) => crossEntropy(l, b.labels!), 'logits');
    const mag = magnitudeScores(weights, e.params);
    const w1 = scores.get('W1')!;
    for (let j = 0; j < H; j++) {
      expect(w1[j]).toBe(0);
      expect(mag.get('W1')![j]).toBeGreaterThan(0);
    }
    // those are the first to go at the sparsity that removes exactly one row of W1
    const m = selectMasks(new Map([['W1', w1]]), H / (D * H), 'layer').get('W1')!;
    expect([...m.subarray(0, H)].every((x) => x === 0)).toBe(true);
    expect([...m.subarray(H)].every((x) => x === 1)).toBe(true);
  });

  it('refuses a gradient of the wrong size (E_OUT_OF_RANGE)', async () => {
    const e = await trained();
    const acc = new TaylorAccumulator(prunableWeights(e.exportModel(), e.params), e.params);
    expect(() => acc.add(e.params, new Map([['W1', fvalue([3])]]))).toThrow(/E_OUT_OF_RANGE.*gradient has 3 elements/);
  });
});

describe('mask selection', () => {
  const scores = new Map([['a', Float32Array.from([5, 1, 1, 1, 9, 0])], ['b', Float32Array.from([0.5, 7, 8, 1])]]);
  it('is exact-k with ties broken by position', () => {
    const g = selectMasks(scores, 0.4, 'global'); // 4 of 10: 0, 0.5, then two of the 1s (a[1], a[2])
    expect([...g.get('a')!]).toEqual([1, 0, 0, 1, 1, 0]);
    expect([...g.get('b')!]).toEqual([0, 1, 1, 1]);
    const l = selectMasks(scores, 0.5, 'layer'); // 3 of a, 2 of b
    expect([...l.get('a')!]).toEqual([1, 0, 0, 1, 1, 0]);
    expect([...l.get('b')!]).toEqual([0, 1, 1, 0]);
  });
  it('refuses bad sparsity (E_OUT_OF_RANGE) and scope (E_UNSUPPORTED)', () => {
    expect(() => selectMasks(scores, 1, 'global')).toThrow(/E_OUT_OF_RANGE/);
    expect(() => selectMasks(scores, 0.5, 'row' as never)).toThrow(/E_UNSUPPORTED.*scope/);
  });
});

describe('pruneGradient', () => {
  it('prunes to 70% with fine-tuning, keeps masks, reports layers and rounds, and beats one-shot magnitude pruning', async () => {
    const e = await trained();
    const base = evaluate(e, evalBatches());
    const { model, report, masks } = pruneGradient(e, { train: trainBatches, eval: evalBatches }, {
      sparsity: 0.7, rounds: 3, scoreBatches: 4, fineTuneSteps: 30, optimizer: { type: 'adam', lr: 0.003 }, sensitivity: true,
    });
    expect(report.totals.prunable).toBe(D * H + H * C);
    expect(report.totals.zeros).toBe(Math.round(0.7 * (D * H + H * C)));
    [0.7 - 0.7 * (2 / 3) ** 3, 0.7 - 0.7 * (1 / 3) ** 3, 0.7].forEach((s, i) => expect(report.rounds[i]!.targetSparsity).toBeCloseTo(s, 12));
    expect(report.rounds.map((r) => r.sparsity).every((s, i, a) => i === 0 || s >= a[i - 1]!)).toBe(true);
    expect(report.layers.map((l) => l.name)).toEqual(['W1', 'W2']);
    for (const l of report.layers) {
      expect(l.sensitivity!.map((p) => p.sparsity)).toEqual([0.3, 0.5, 0.7, 0.9]);
      // removing 90% of a layer hurts more than removing 30%
      expect(l.sensitivity![3]!.loss).toBeGreaterThan(l.sensitivity![0]!.loss);
    }
    expect(report.baseline!.accuracy).toBe(base.accuracy);
    // the exported model carries the zeros, and every masked weight is zero
    for (const tp of model.graph!.initializer.filter((t) => masks.has(t.name))) {
      const data = typedView(tensorFromProtoSync(tp)) as Float32Array;
      const m = masks.get(tp.name)!;
      for (let i = 0; i < m.length; i++) if (!m[i]) expect(data[i]).toBe(0);
    }
    // one-shot magnitude at the same sparsity, no fine-tuning
    const mag = await trained();
    pruneGradient(mag, { train: trainBatches }, { sparsity: 0.7, rounds: 1, criterion: 'magnitude', fineTuneSteps: 0 });
    const magEval = evaluate(mag, evalBatches());
    expect(report.final!.loss).toBeLessThan(magEval.loss);
    expect(report.final!.accuracy).toBeGreaterThanOrEqual(base.accuracy - 0.03);
    expect(report.final!.accuracy).toBeGreaterThanOrEqual(magEval.accuracy);
  });

  it('pruneGradientModel does not edit the input model', async () => {
    const m = mlp(D, H, C, 3);
    const before = typedView(tensorFromProtoSync(m.graph!.initializer[0]!)).slice();
    const r = await pruneGradientModel(m, { train: trainBatches }, { sparsity: 0.5, rounds: 1, fineTuneSteps: 2 });
    expect(r.report.totals.sparsity).toBeCloseTo(0.5, 2);
    expect([...typedView(tensorFromProtoSync(m.graph!.initializer[0]!))]).toEqual([...before]);
  });

  it('analyzeSensitivity leaves the model unchanged', async () => {
    const e = await trained();
    const before = Float32Array.from(e.params.get('W1')!.data);
    const r = analyzeSensitivity(e, { train: trainBatches, eval: evalBatches }, { scoreBatches: 2, levels: [0.5, 0.9] });
    expect(r.layers.length).toBe(2);
    expect(r.layers[0]!.points.length).toBe(2);
    expect([...e.params.get('W1')!.data]).toEqual([...before]);
  });

  it('refuses bad options and data', async () => {
    const e = await trained();
    const d = { train: trainBatches };
    expect(() => pruneGradient(e, d, { sparsity: 1 })).toThrow(/E_OUT_OF_RANGE.*sparsity/);
    expect(() => pruneGradient(e, d, { sparsity: 0.5, rounds: 0 })).toThrow(/E_OUT_OF_RANGE.*rounds/);
    expect(() => pruneGradient(e, d, { sparsity: 0.5, sensitivity: true })).toThrow(/E_USAGE.*evaluation data/);
    expect(() => pruneGradient(e, d, { sparsity: 0.5, criterion: 'hessian' as never })).toThrow(/E_UNSUPPORTED.*criterion/);
    expect(() => pruneGradient(e, d, { sparsity: 0.5, exclude: ['W1', 'W2'] })).toThrow(/E_UNSUPPORTED.*no prunable weights/);
    const unlabelled = arrayBatches({ ...trainSet, labels: undefined }, { batchSize: 32 });
    expect(() => pruneGradient(e, { train: unlabelled }, { sparsity: 0.5 })).toThrow(/E_USAGE.*labelled/);
  });
});

describe('Taylor scores on the Fashion-MNIST CNN vs torch autograd', () => {
  it('|w·∂L/∂w| of every Conv/MatMul weight matches torch within 1e-6 (8 test images)', async () => {
    const dir = resolve(import.meta.dirname, '../fixtures/fashion-mnist');
    const fx = await loadFixture(dir);
    const ds = { x: fx.subset.images, sampleDims: [1, 28, 28], labels: fx.subset.labels, inputName: 'input', divideBy: 255 };
    const e = await createEngine(decodeOnnx(fx.modelBytes, { path: fx.modelPath }));
    const weights = prunableWeights(e.exportModel(), e.params);
    expect(weights.map((w) => w.name)).toEqual(['onnx::Conv_34', 'onnx::Conv_37', 'fc1.weight', 'fc2.weight']);
    const { scores } = taylorScores(e, new BatchStream(arrayBatches(ds, { batchSize: 8, limit: 8 })), weights, 1, (l, b) => crossEntropy(l, b.labels!), 'logits');
    const ref = JSON.parse(new TextDecoder().decode(runPython(`
import sys, json, numpy as np, onnx, torch, torch.nn.functional as F
from onnx import numpy_helper
d = sys.argv[1]
m = onnx.load(d + '/cnn.onnx')
W = {t.name: torch.tensor(numpy_helper.to_array(t), requires_grad=True) for t in m.graph.initializer}
x = torch.tensor(np.frombuffer(open(d + '/test-images.idx3-ubyte', 'rb').read()[16:16 + 8 * 784], np.uint8).astype(np.float32) / 255).reshape(8, 1, 28, 28)
y = torch.tensor(list(open(d + '/test-labels.idx1-ubyte', 'rb').read()[8:16]))
h = F.max_pool2d(F.relu(F.conv2d(x, W['onnx::Conv_34'], W['onnx::Conv_35'])), 2)
h = F.max_pool2d(F.relu(F.conv2d(h, W['onnx::Conv_37'], W['onnx::Conv_38'])), 2).flatten(1)
o = F.relu(h @ W['fc1.weight'] + W['fc1.bias']) @ W['fc2.weight'] + W['fc2.bias']
F.cross_entropy(o, y).backward()
print(json.dumps({k: (v.detach() * v.grad).abs().flatten().tolist() for k, v in W.items()}))
`, [dir]))) as Record<string, number[]>;
    for (const w of weights) {
      const s = scores.get(w.name)!;
      const want = ref[w.name]!;
      expect(s.length).toBe(want.length);
      let maxDiff = 0, maxRef = 0;
      for (let i = 0; i < s.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(s[i]! - want[i]!)); maxRef = Math.max(maxRef, want[i]!); }
      expect(maxRef).toBeGreaterThan(1e-4);
      expect(maxDiff).toBeLessThan(1e-6);
    }
  });
});
