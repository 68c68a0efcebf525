/**
 * TF/Keras SavedModel → PyTorch against real torch (`/usr/bin/python3`, torch 1.13):
 *  - the corpus Keras model (tensorflow-rust keras_single_input_saved_model: Dense 5→5 relu,
 *    Dense 5→5 relu, Dense 5→1 sigmoid) converted with automatic naming loads with
 *    `torch.load(weights_only=True)` + `load_state_dict(strict=True)` into an nn.Module written here,
 *    and its outputs match the SavedModel's own execution (serving_default signature run by
 *    `runSignature`: frozen graph on TF.js) within 1e-5 max-abs on seeded random inputs, and a numpy
 *    Keras forward pass from the TF variables as a second reference;
 *  - the same through a template `.pt` saved by torch from an `nn.Sequential` (keys `0.weight`, …);
 *  - the same weights written as safetensors read back bit-identical to the `.pt` tensors.
 *
 * The numpy reference computes y = act(x @ kernel + bias) per layer in Keras layout (kernel [in, out]),
 * the model being the small Dense stack its Keras metadata describes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { savedModelToStateDict } from '../../src/convert/tf-pytorch/index.js';
import { readPytorch } from '../../src/formats/pytorch/read.js';
import { writePytorch } from '../../src/formats/pytorch/write.js';
import { readSafetensors } from '../../src/formats/safetensors/read.js';
import { writeSafetensors } from '../../src/formats/safetensors/write.js';
import { readSavedModel, type SavedModelFile } from '../../src/formats/savedmodel/index.js';
import { runSignature } from '../../src/formats/savedmodel/freeze.js';
import { MemorySink, MemorySource } from '../../src/io/source.js';
import { rng, runPython } from '../kernels/helpers.js';
import { dirResolver } from '../formats/savedmodel/helpers.js';

const MODEL = resolve(import.meta.dirname, '../../../shared/corpus/savedmodel/tensorflow-rust/keras_single_input_saved_model');
const tmp = mkdtempSync(join(tmpdir(), 'tf-pt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let file: SavedModelFile;
beforeAll(async () => {
  file = await readSavedModel(dirResolver(MODEL), { path: 'keras_single_input_saved_model' });
});

const N = 256;

/** Seeded inputs, wide enough that the sigmoid output spreads over a good part of (0, 1). */
function inputs(): Float32Array {
  const next = rng(99);
  return new Float32Array(N * 5).map(() => (next() * 2 - 1) * 40);
}

/** Writes the inputs, the TF execution's outputs and the TF variables (Keras layout, raw float32). */
async function dumpKeras(): Promise<string> {
  const x = inputs();
  const out = await runSignature(file, { test_in_input: { name: 'x', dtype: 'float32', shape: [N, 5], data: new Uint8Array(x.buffer) } });
  expect(out['test_out']!.shape).toEqual([N, 1]);
  writeFileSync(join(tmp, 'x.f32'), new Uint8Array(x.buffer));
  writeFileSync(join(tmp, 'tf.f32'), out['test_out']!.data);
  const layers: Record<string, { kernel: number[]; bias: number[]; k: string; b: string }> = {};
  for (const name of ['test_in', 'dense', 'test_out']) {
    const k = file.variables.tensors.find((t) => t.name === `${name}/kernel`)!;
    const b = file.variables.tensors.find((t) => t.name === `${name}/bias`)!;
    writeFileSync(join(tmp, `${name}.kernel`), await k.load());
    writeFileSync(join(tmp, `${name}.bias`), await b.load());
    layers[name] = { kernel: k.shape, bias: b.shape, k: join(tmp, `${name}.kernel`), b: join(tmp, `${name}.bias`) };
  }
  const p = join(tmp, 'keras.json');
  writeFileSync(p, JSON.stringify({ layers, x: join(tmp, 'x.f32'), tf: join(tmp, 'tf.f32') }));
  return p;
}

/** Keras forward in numpy vs the converted file in torch; prints a JSON verdict. */
const CHECK_PY = `
import sys, json, numpy as np, torch, torch.nn as nn
spec = json.load(open(sys.argv[1])); keras = spec['layers']
def kv(name):
    L = keras[name]
    k = np.fromfile(L['k'], dtype='<f4').reshape(L['kernel']); b = np.fromfile(L['b'], dtype='<f4').reshape(L['bias'])
    return k, b
x = np.fromfile(spec['x'], dtype='<f4').reshape(-1, 5)
tf = np.fromfile(spec['tf'], dtype='<f4').reshape(-1, 1)
h = x
acts = [lambda v: np.maximum(v, 0), lambda v: np.maximum(v, 0), lambda v: 1 / (1 + np.exp(-v))]
for name, act in zip(['test_in', 'dense', 'test_out'], acts):
    k, b = kv(name); h = act(h @ k + b)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.test_in = nn.Linear(5, 5); self.dense = nn.Linear(5, 5); self.test_out = nn.Linear(5, 1)
    def forward(self, x):
        return torch.sigmoid(self.test_out(torch.relu(self.dense(torch.relu(self.test_in(x))))))
out = []
for pt, mode in zip(sys.argv[2::2], sys.argv[3::2]):
    net = Net() if mode == 'auto' else nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
    sd = torch.load(pt, weights_only=True)
    net.load_state_dict(sd, strict=True)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    out.append({'keys': list(sd.keys()), 'shapes': [list(v.shape) for v in sd.values()], 'maxabs': float(np.abs(y - tf).max()),
                'numpy': float(np.abs(y - h).max()), 'spread': float(tf.max() - tf.min()), 'shape': list(y.shape)})
print(json.dumps(out))
`;

/** A torch-written template: the same network as an nn.Sequential, random weights. */
const TEMPLATE_PY = `
import sys, torch, torch.nn as nn
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
torch.save(net.state_dict(), sys.argv[1])
`;

async function savePt(set: Parameters<typeof writePytorch>[0], name: string): Promise<string> {
  const sink = new MemorySink();
  await writePytorch(set, sink);
  const p = join(tmp, name);
  writeFileSync(p, sink.bytes());
  return p;
}

/** maxabs: torch vs the TF execution; numpy: torch vs the numpy Keras forward pass. */
interface Verdict { keys: string[]; shapes: number[][]; maxabs: number; numpy: number; spread: number; shape: number[] }

/** One python run (torch import is the slow part) for every (file, module kind) pair. */
async function check(files: [string, 'auto' | 'template'][]): Promise<Verdict[]> {
  return JSON.parse(new TextDecoder().decode(runPython(CHECK_PY, [await dumpKeras(), ...files.flat()]))) as Verdict[];
}

describe('Keras SavedModel → torch (real torch)', () => {
  it('automatic naming and a torch-written template .pt: both load strictly, outputs within 1e-5 of the TF execution', async () => {
    const auto = savedModelToStateDict(file);
    expect(auto.report.unmatchedTf).toEqual([]);
    expect(auto.report.unmatchedTorch).toEqual([]);

    const tp = join(tmp, 'template.pt');
    runPython(TEMPLATE_PY, [tp]);
    const template = await readPytorch(new MemorySource(new Uint8Array(readFileSync(tp)), tp), { path: tp });
    const templated = savedModelToStateDict(file, { template });
    expect(templated.report.pairs.map((p) => `${p.tf}->${p.torch}`)).toEqual([
      'test_in/kernel->0.weight', 'test_in/bias->0.bias', 'dense/kernel->2.weight', 'dense/bias->2.bias', 'test_out/kernel->4.weight', 'test_out/bias->4.bias',
    ]);
    expect(templated.report.unmatchedTorch).toEqual([]);

    const [a, t] = await check([[await savePt(auto.set, 'auto.pt'), 'auto'], [await savePt(templated.set, 'templated.pt'), 'template']]);
    expect(a!.keys).toEqual(['test_in.weight', 'test_in.bias', 'dense.weight', 'dense.bias', 'test_out.weight', 'test_out.bias']);
    expect(a!.shapes).toEqual([[5, 5], [5], [5, 5], [5], [1, 5], [1]]);
    expect(a!.shape).toEqual([N, 1]);
    // The outputs must vary, or matching them would prove nothing.
    expect(a!.spread).toBeGreaterThan(0.05);
    expect(a!.maxabs).toBeLessThan(1e-5);
    expect(a!.numpy).toBeLessThan(1e-5);
    expect(t!.keys).toEqual(['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
    expect(t!.maxabs).toBeLessThan(1e-5);
    expect(t!.numpy).toBeLessThan(1e-5);
  });

  it('safetensors output holds the same bytes as the .pt', async () => {
    const { set } = savedModelToStateDict(file);
    const sink = new MemorySink();
    await writeSafetensors(set, sink);
    const st = await readSafetensors(new MemorySource(sink.bytes(), 'out.safetensors'), { path: 'out.safetensors' });
    const ptPath = await savePt(set, 'for-st.pt');
    const pt = await readPytorch(new MemorySource(new Uint8Array(readFileSync(ptPath)), ptPath), { path: ptPath });
    expect(st.tensors.map((t) => t.name).sort()).toEqual(pt.tensors.map((t) => t.name).sort());
    for (const t of st.tensors) {
      const other = pt.tensors.find((p) => p.name === t.name)!;
      expect(t.shape).toEqual(other.shape);
      expect(Buffer.from(await t.load()).equals(Buffer.from(await other.load()))).toBe(true);
    }
  });
});
