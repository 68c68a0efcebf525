/**
 * TF/Keras → PyTorch state_dict: every layout transform of formats.md §6.1 checked functionally
 * against torch (one python run: each converted layer computes in torch what a numpy implementation
 * of the Keras layer computes from the Keras tensors), the automatic / template / mapping-file naming,
 * the report, optimizer exclusion on the corpus model, and every error code.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DType } from '../../src/core/dtype.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { formatTfTorchReport, layerKind, parseTfTorchMap, savedModelToStateDict } from '../../src/convert/tf-pytorch/index.js';
import { writePytorch } from '../../src/formats/pytorch/write.js';
import { readSavedModel, type SavedModelFile } from '../../src/formats/savedmodel/index.js';
import { inMemoryTensor, type LazyTensor, type WeightSet } from '../../src/formats/weights.js';
import { MemorySink } from '../../src/io/source.js';
import { rng, runPython } from '../kernels/helpers.js';
import { dirResolver } from '../formats/savedmodel/helpers.js';

const CORPUS_MODEL = resolve(import.meta.dirname, '../../../shared/corpus/savedmodel/tensorflow-rust/keras_single_input_saved_model');
const tmp = mkdtempSync(join(tmpdir(), 'tf-pt-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface FakeLayer {
  name: string;
  cls: string;
  /** attribute → shape (float32 random values; `moving_variance`-like attributes positive). */
  vars?: Record<string, number[]>;
  /** Extra Keras metadata (config, build_input_shape). */
  meta?: Record<string, unknown>;
  dtype?: DType;
}

/** A SavedModelFile as readSavedModel returns it for a Keras 2 Sequential model (keras_metadata.pb style). */
function fakeModel(layers: FakeLayer[], opts: { sequential?: boolean; noKeras?: boolean; path?: string } = {}): { file: SavedModelFile; values: Map<string, { shape: number[]; data: Float32Array }> } {
  const next = rng(42);
  const values = new Map<string, { shape: number[]; data: Float32Array }>();
  const tensors: LazyTensor[] = [];
  const kerasLayers: Record<string, unknown>[] = [];
  let weighted = 0;
  layers.forEach((l, i) => {
    const hasVars = l.vars && Object.keys(l.vars).length > 0;
    const node = hasVars ? `layer_with_weights-${weighted++}` : `layer-${i}`;
    kerasLayers.push({ nodePath: `root.${node}`, identifier: '_tf_keras_layer', className: l.cls, name: l.name, metadata: JSON.stringify({ class_name: l.cls, name: l.name, config: { name: l.name }, ...l.meta }) });
    for (const [attr, shape] of Object.entries(l.vars ?? {})) {
      const n = shape.reduce((a, d) => a * d, 1);
      const data = new Float32Array(n);
      const positive = /variance/.test(attr);
      for (let k = 0; k < n; k++) data[k] = positive ? 0.5 + next() : next() * 2 - 1;
      const name = `${l.name}/${attr}`;
      values.set(name, { shape, data });
      const dtype = l.dtype ?? 'float32';
      const bytes = dtype === 'float32' ? new Uint8Array(data.buffer) : new Uint8Array(n * 8);
      tensors.push({ ...inMemoryTensor({ name, dtype, shape, data: bytes }), extra: { objectPath: `${node}/${attr}`, variableName: name, checkpointKey: `${node}/${attr}/.ATTRIBUTES/VARIABLE_VALUE` } });
    }
  });
  const rootMeta = { class_name: 'Sequential', name: 'model', config: { name: 'model', layers: layers.map((l) => ({ class_name: l.cls, config: { name: l.name } })) } };
  const root = { nodePath: 'root', identifier: '_tf_keras_sequential', className: 'Sequential', name: 'model', metadata: JSON.stringify(rootMeta) };
  const file = {
    format: 'savedmodel', path: opts.path ?? 'fake_model', metaGraphs: [], metaGraphIndex: 0, signatures: [], assets: [], diagnostics: [],
    variables: { format: 'tf-bundle', tensors, diagnostics: [] },
    ...(opts.noKeras ? {} : { keras: { source: 'keras_metadata.pb', layers: opts.sequential === false ? kerasLayers : [root, ...kerasLayers] } }),
  } as unknown as SavedModelFile;
  return { file, values };
}

const ZOO: FakeLayer[] = [
  { name: 'conv', cls: 'Conv2D', vars: { kernel: [3, 3, 2, 4], bias: [4] } },
  { name: 'dw', cls: 'DepthwiseConv2D', vars: { depthwise_kernel: [3, 3, 4, 2], bias: [8] } },
  { name: 'bn', cls: 'BatchNormalization', vars: { gamma: [8], beta: [8], moving_mean: [8], moving_variance: [8] }, meta: { config: { name: 'bn', epsilon: 0.001 } } },
  { name: 'flat', cls: 'Flatten', meta: { build_input_shape: { class_name: 'TensorShape', items: [null, 2, 3, 8] } } },
  { name: 'fc', cls: 'Dense', vars: { kernel: [48, 6], bias: [6] } },
  { name: 'emb', cls: 'Embedding', vars: { embeddings: [10, 4] } },
  { name: 'lstm', cls: 'LSTM', vars: { 'cell/kernel': [4, 12], 'cell/recurrent_kernel': [3, 12], 'cell/bias': [12] } },
  { name: 'gru', cls: 'GRU', vars: { 'cell/kernel': [4, 9], 'cell/recurrent_kernel': [3, 9], 'cell/bias': [2, 9] } },
  { name: 'c1', cls: 'Conv1D', vars: { kernel: [3, 2, 5] } },
  { name: 'c3', cls: 'Conv3D', vars: { kernel: [2, 2, 2, 2, 3], bias: [3] } },
  { name: 'sep', cls: 'SeparableConv2D', vars: { depthwise_kernel: [3, 3, 2, 2], pointwise_kernel: [1, 1, 4, 5], bias: [5] } },
  { name: 'ct', cls: 'Conv2DTranspose', vars: { kernel: [3, 3, 5, 2], bias: [5] } },
  { name: 'prelu', cls: 'PReLU', vars: { alpha: [1, 1, 3] } },
  { name: 'ln', cls: 'LayerNormalization', vars: { gamma: [6], beta: [6] } },
  {
    name: 'bi', cls: 'Bidirectional', meta: { config: { name: 'bi', layer: { class_name: 'LSTM', config: {} } } },
    vars: { 'forward_layer/cell/kernel': [4, 8], 'forward_layer/cell/recurrent_kernel': [2, 8], 'forward_layer/cell/bias': [8], 'backward_layer/cell/kernel': [4, 8], 'backward_layer/cell/recurrent_kernel': [2, 8], 'backward_layer/cell/bias': [8] },
  },
];

/** numpy Keras semantics vs torch on the converted tensors; prints max-abs per layer. */
const FUNCTIONAL_PY = `
import sys, json, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view as swv
spec = json.load(open(sys.argv[1])); sd = torch.load(sys.argv[2], weights_only=True)
K = {k: np.fromfile(v['file'], dtype='<f4').reshape(v['shape']) for k, v in spec.items()}
rng = np.random.default_rng(7)
R = lambda *s: rng.standard_normal(s).astype(np.float32)
t = torch.from_numpy
res = {}
def cmp(name, keras, torch_out):
    res[name] = float(np.abs(np.asarray(keras, np.float64) - torch_out.detach().numpy().astype(np.float64)).max())
nhwc = lambda y: y.permute(0, 2, 3, 1)
x = R(2, 6, 7, 2)
cmp('conv', np.einsum('nyxihw,hwio->nyxo', swv(x, (3, 3), axis=(1, 2)), K['conv/kernel']) + K['conv/bias'],
    nhwc(F.conv2d(t(x).permute(0, 3, 1, 2), sd['conv.weight'], sd['conv.bias'])))
x = R(2, 6, 7, 4)
ref = np.einsum('nyxchw,hwcm->nyxcm', swv(x, (3, 3), axis=(1, 2)), K['dw/depthwise_kernel'])
cmp('dw', ref.reshape(ref.shape[:3] + (8,)) + K['dw/bias'], nhwc(F.conv2d(t(x).permute(0, 3, 1, 2), sd['dw.weight'], sd['dw.bias'], groups=4)))
x = R(5, 8)
ref = K['bn/gamma'] * (x - K['bn/moving_mean']) / np.sqrt(K['bn/moving_variance'] + 1e-3) + K['bn/beta']
cmp('bn', ref, F.batch_norm(t(x), sd['bn.running_mean'], sd['bn.running_var'], sd['bn.weight'], sd['bn.bias'], training=False, eps=1e-3))
res['bn_tracked'] = [str(sd['bn.num_batches_tracked'].dtype), list(sd['bn.num_batches_tracked'].shape), int(sd['bn.num_batches_tracked'])]
x = R(2, 2, 3, 8)
cmp('fc', x.reshape(2, 48) @ K['fc/kernel'] + K['fc/bias'], F.linear(t(x).permute(0, 3, 1, 2).reshape(2, 48), sd['fc.weight'], sd['fc.bias']))
ids = np.array([0, 3, 9, 3])
cmp('emb', K['emb/embeddings'][ids], F.embedding(t(ids), sd['emb.weight']))
sig = lambda v: 1 / (1 + np.exp(-v))
def keras_lstm(x, k, r, b, reverse=False):
    u = r.shape[0]; h = np.zeros((x.shape[0], u), np.float32); c = h.copy(); out = []
    steps = range(x.shape[1])[::-1] if reverse else range(x.shape[1])
    for s in steps:
        z = x[:, s] @ k + h @ r + b
        i, f, g, o = sig(z[:, :u]), sig(z[:, u:2*u]), np.tanh(z[:, 2*u:3*u]), sig(z[:, 3*u:])
        c = f * c + i * g; h = o * np.tanh(c); out.append(h)
    out = np.stack(out, 1)
    return out[:, ::-1] if reverse else out
def keras_gru(x, k, r, b):
    u = r.shape[0]; h = np.zeros((x.shape[0], u), np.float32); out = []
    for s in range(x.shape[1]):
        mx = x[:, s] @ k + b[0]; mh = h @ r + b[1]
        z = sig(mx[:, :u] + mh[:, :u]); rr = sig(mx[:, u:2*u] + mh[:, u:2*u]); hh = np.tanh(mx[:, 2*u:] + rr * mh[:, 2*u:])
        h = z * h + (1 - z) * hh; out.append(h)
    return np.stack(out, 1)
def sub(prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
x = R(2, 5, 4)
m = nn.LSTM(4, 3, batch_first=True); m.load_state_dict(sub('lstm.'), strict=True)
cmp('lstm', keras_lstm(x, K['lstm/cell/kernel'], K['lstm/cell/recurrent_kernel'], K['lstm/cell/bias']), m(t(x))[0])
m = nn.GRU(4, 3, batch_first=True); m.load_state_dict(sub('gru.'), strict=True)
cmp('gru', keras_gru(x, K['gru/cell/kernel'], K['gru/cell/recurrent_kernel'], K['gru/cell/bias']), m(t(x))[0])
m = nn.LSTM(4, 2, batch_first=True, bidirectional=True); m.load_state_dict(sub('bi.'), strict=True)
fw = keras_lstm(x, K['bi/forward_layer/cell/kernel'], K['bi/forward_layer/cell/recurrent_kernel'], K['bi/forward_layer/cell/bias'])
bw = keras_lstm(x, K['bi/backward_layer/cell/kernel'], K['bi/backward_layer/cell/recurrent_kernel'], K['bi/backward_layer/cell/bias'], reverse=True)
cmp('bi', np.concatenate([fw, bw], -1), m(t(x))[0])
res['c1_has_bias'] = 'c1.bias' in sd
x = R(2, 8, 2)
cmp('c1', np.einsum('ntik,kio->nto', swv(x, 3, axis=1), K['c1/kernel']), F.conv1d(t(x).permute(0, 2, 1), sd['c1.weight']).permute(0, 2, 1))
x = R(1, 4, 4, 4, 2)
cmp('c3', np.einsum('ndyxiabc,abcio->ndyxo', swv(x, (2, 2, 2), axis=(1, 2, 3)), K['c3/kernel']) + K['c3/bias'],
    F.conv3d(t(x).permute(0, 4, 1, 2, 3), sd['c3.weight'], sd['c3.bias']).permute(0, 2, 3, 4, 1))
x = R(2, 5, 5, 2)
d = np.einsum('nyxchw,hwcm->nyxcm', swv(x, (3, 3), axis=(1, 2)), K['sep/depthwise_kernel']); d = d.reshape(d.shape[:3] + (4,))
ref = np.einsum('nyxj,jo->nyxo', d, K['sep/pointwise_kernel'][0, 0]) + K['sep/bias']
y = F.conv2d(F.conv2d(t(x).permute(0, 3, 1, 2), sd['sep.depthwise.weight'], groups=2), sd['sep.pointwise.weight'], sd['sep.pointwise.bias'])
cmp('sep', ref, nhwc(y))
x = R(1, 4, 4, 2); k = K['ct/kernel']; ref = np.zeros((1, 6, 6, 5), np.float32)
for dy in range(3):
    for dx in range(3):
        ref[:, dy:dy+4, dx:dx+4, :] += np.einsum('nyxi,oi->nyxo', x, k[dy, dx])
cmp('ct', ref + K['ct/bias'], nhwc(F.conv_transpose2d(t(x).permute(0, 3, 1, 2), sd['ct.weight'], sd['ct.bias'])))
x = R(2, 4, 4, 3)
cmp('prelu', np.where(x > 0, x, K['prelu/alpha'] * x), nhwc(F.prelu(t(x).permute(0, 3, 1, 2), sd['prelu.weight'])))
x = R(3, 6)
ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * K['ln/gamma'] + K['ln/beta']
cmp('ln', ref, F.layer_norm(t(x), (6,), sd['ln.weight'], sd['ln.bias'], eps=1e-3))
res['keys'] = list(sd.keys())
print(json.dumps(res))
`;

async function toPt(set: WeightSet, name: string): Promise<string> {
  const sink = new MemorySink();
  await writePytorch(set, sink);
  const p = join(tmp, name);
  writeFileSync(p, sink.bytes());
  return p;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<ModelsmithError> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    expect((e as ModelsmithError).code).toBe(code);
    return e as ModelsmithError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('layout transforms against torch', () => {
  let result: Record<string, unknown>;
  let report: ReturnType<typeof savedModelToStateDict>['report'];
  beforeAll(async () => {
    const { file, values } = fakeModel(ZOO);
    const conv = savedModelToStateDict(file);
    report = conv.report;
    const spec: Record<string, { file: string; shape: number[] }> = {};
    for (const [name, v] of values) {
      const f = join(tmp, name.replace(/\//g, '__'));
      writeFileSync(f, new Uint8Array(v.data.buffer));
      spec[name] = { file: f, shape: v.shape };
    }
    writeFileSync(join(tmp, 'spec.json'), JSON.stringify(spec));
    result = JSON.parse(new TextDecoder().decode(runPython(FUNCTIONAL_PY, [join(tmp, 'spec.json'), await toPt(conv.set, 'zoo.pt')]))) as Record<string, unknown>;
  });

  it.each(['conv', 'dw', 'bn', 'fc', 'emb', 'lstm', 'gru', 'bi', 'c1', 'c3', 'sep', 'ct', 'prelu', 'ln'])('%s: torch output equals the Keras computation', (layer) => {
    expect(typeof result[layer]).toBe('number');
    expect(result[layer] as number).toBeLessThan(1e-5);
  });

  it('BatchNorm gets num_batches_tracked int64 0; a Conv1D without bias gets none', () => {
    expect(result['bn_tracked']).toEqual(['torch.int64', [], 0]);
    expect(result['c1_has_bias']).toBe(false);
  });

  it('reports every pair with its transform and shapes', () => {
    const by = new Map(report.pairs.map((p) => [p.torch, p]));
    expect(by.get('conv.weight')).toMatchObject({ tf: 'conv/kernel', transform: 'permute(3,2,0,1)', shapeBefore: [3, 3, 2, 4], shapeAfter: [4, 2, 3, 3] });
    expect(by.get('dw.weight')).toMatchObject({ shapeBefore: [3, 3, 4, 2], shapeAfter: [8, 1, 3, 3] });
    expect(by.get('fc.weight')!.transform).toMatch(/flatten rows HWC→CHW \(C=8\)/);
    expect(by.get('gru.weight_ih_l0')!.transform).toMatch(/z,r,h→r,z,n/);
    expect(by.get('gru.bias_hh_l0')).toMatchObject({ tf: 'gru/cell/bias', shapeBefore: [2, 9], shapeAfter: [9] });
    expect(by.get('lstm.bias_hh_l0')).toMatchObject({ tf: '', transform: 'zeros', shapeAfter: [12] });
    expect(by.get('bn.num_batches_tracked')).toMatchObject({ tf: '', shapeAfter: [] });
    expect(by.get('c3.weight')!.shapeAfter).toEqual([3, 2, 2, 2, 2]);
    expect(by.get('ct.weight')!.shapeAfter).toEqual([2, 5, 3, 3]);
    expect(by.get('sep.pointwise.weight')!.shapeAfter).toEqual([5, 4, 1, 1]);
    expect(by.get('bi.weight_hh_l0_reverse')!.tf).toBe('bi/backward_layer/cell/recurrent_kernel');
    expect(report.pairs).toHaveLength(39);
    expect(report.unmatchedTf).toEqual([]);
    expect(report.diagnostics.some((d) => d.code === 'TF_TORCH_BN_EPS')).toBe(true);
    const text = formatTfTorchReport(report);
    expect(text.split('\n').filter((l) => l.includes('->'))).toHaveLength(39);
    expect(text).toContain('(generated) [] -> bn.num_batches_tracked []');
  });
});

const dense = (name: string, i: number, o: number): FakeLayer => ({ name, cls: 'Dense', vars: { kernel: [i, o], bias: [o] } });
const bnLayer = (name: string, c: number): FakeLayer => ({ name, cls: 'BatchNormalization', vars: { gamma: [c], beta: [c], moving_mean: [c], moving_variance: [c] } });
const tpl = (entries: [string, number[], DType?][]): WeightSet => ({
  format: 'pytorch-zip', tensors: entries.map(([name, shape, dtype]) => inMemoryTensor({ name, dtype: dtype ?? 'float32', shape, data: new Uint8Array(shape.reduce((a, d) => a * d, 1) * 4) })), diagnostics: [],
});
const f32 = async (t: LazyTensor): Promise<number[]> => [...new Float32Array((await t.load()).slice().buffer)];

describe('the corpus Keras model', () => {
  let file: SavedModelFile;
  beforeAll(async () => {
    file = await readSavedModel(dirResolver(CORPUS_MODEL), { path: 'keras_single_input_saved_model' });
  });

  it('leaves out the 21 optimizer/metric variables and maps the 6 weights', () => {
    const { set, report } = savedModelToStateDict(file);
    expect(set.tensors.map((t) => t.name)).toEqual(['test_in.weight', 'test_in.bias', 'dense.weight', 'dense.bias', 'test_out.weight', 'test_out.bias']);
    expect(report.pairs.map((p) => p.transform)).toEqual(['transpose(1,0)', 'as is', 'transpose(1,0)', 'as is', 'transpose(1,0)', 'as is']);
    expect(report.pairs[4]).toMatchObject({ tf: 'test_out/kernel', shapeBefore: [5, 1], shapeAfter: [1, 5] });
    expect(report.diagnostics.find((d) => d.code === 'TF_TORCH_TRAINING_STATE')!.message).toMatch(/^21 /);
    expect(set.tensors.some((t) => /Adam|count|total|iter/.test(t.name))).toBe(false);
  });

  it('transposes the kernel exactly (element [i][o] of Keras is [o][i] of torch)', async () => {
    const { set } = savedModelToStateDict(file);
    const k = await f32(file.variables.tensors.find((t) => t.name === 'test_out/kernel')!);
    const w = await f32(set.tensors.find((t) => t.name === 'test_out.weight')!);
    expect(w).toEqual(k); // [5,1] → [1,5] keeps the order
    const k2 = await f32(file.variables.tensors.find((t) => t.name === 'dense/kernel')!);
    const w2 = await f32(set.tensors.find((t) => t.name === 'dense.weight')!);
    for (let i = 0; i < 5; i++) for (let o = 0; o < 5; o++) expect(w2[o * 5 + i]).toBe(k2[i * 5 + o]);
  });

  it('includeOptimizer keeps optimizer slots and counters under unique names', () => {
    const { set } = savedModelToStateDict(file, { includeOptimizer: true });
    expect(set.tensors.length).toBeGreaterThan(6 + 12);
    expect(new Set(set.tensors.map((t) => t.name)).size).toBe(set.tensors.length);
    expect(set.tensors.some((t) => t.name.includes('Adam'))).toBe(true);
  });

  it('mapping file: names by variable name, object path or checkpoint key; the rest is reported unmatched', () => {
    const map = parseTfTorchMap(JSON.stringify({
      'test_in/kernel': 'net.0.weight', 'layer_with_weights-0/bias': 'net.0.bias',
      'layer_with_weights-2/kernel/.ATTRIBUTES/VARIABLE_VALUE': 'head.weight',
    }));
    const { set, report } = savedModelToStateDict(file, { map });
    expect(set.tensors.map((t) => t.name)).toEqual(['net.0.weight', 'net.0.bias', 'head.weight']);
    expect(report.unmatchedTf).toEqual(['dense/kernel', 'dense/bias', 'test_out/bias']);
    expect(report.diagnostics.some((d) => d.code === 'TF_TORCH_MAP_PARTIAL')).toBe(true);
  });

  it('mapping + template: template order, unmatched template keys listed, wrong keys and shapes refused', async () => {
    const template = tpl([['a.weight', [5, 5]], ['a.bias', [5]], ['b.weight', [5, 5]], ['b.bias', [5]], ['c.weight', [1, 5]], ['c.bias', [1]]]);
    const map = { 'dense/bias': 'b.bias', 'dense/kernel': 'b.weight', 'test_in/kernel': 'a.weight' };
    const { set, report } = savedModelToStateDict(file, { map, template });
    expect(set.tensors.map((t) => t.name)).toEqual(['a.weight', 'b.weight', 'b.bias']);
    expect(report.unmatchedTorch).toEqual(['a.bias', 'c.weight', 'c.bias']);
    const e1 = await expectCode(() => savedModelToStateDict(file, { map: { 'dense/kernel': 'z.weight' }, template }), 'E_USAGE');
    expect(e1.message).toMatch(/'z.weight' is not in the template/);
    const e2 = await expectCode(() => savedModelToStateDict(file, { map: { 'test_out/kernel': 'a.weight' }, template }), 'E_USAGE');
    expect(e2.message).toMatch(/\[1,5\] after the transform, the template has \[5,5\]/);
  });

  it('mapping errors: unknown variable, optimizer state, twice the same torch key', async () => {
    const e1 = await expectCode(() => savedModelToStateDict(file, { map: { 'nope/kernel': 'x.weight' } }), 'E_USAGE');
    expect(e1.message).toMatch(/'nope\/kernel' is not a variable/);
    expect(e1.path).toBe('keras_single_input_saved_model');
    const e2 = await expectCode(() => savedModelToStateDict(file, { map: { 'Adam/dense/bias/m': 'x.m' } }), 'E_USAGE');
    expect(e2.message).toMatch(/includeOptimizer/);
    const e3 = await expectCode(() => savedModelToStateDict(file, { map: { 'dense/bias': 'x.bias', 'test_in/bias': 'x.bias' } }), 'E_USAGE');
    expect(e3.message).toMatch(/'x.bias' would be written twice/);
  });
});

describe('a TF1 SavedModel (tf-serving half_plus_two, variables a, a2, b, c, c2)', () => {
  it('root-level variables keep their names, copied as is with a warning', async () => {
    const file = await readSavedModel(dirResolver(resolve(CORPUS_MODEL, '../../tf-serving/saved_model_half_plus_two_cpu/00000123')), { path: 'half_plus_two' });
    const { set, report } = savedModelToStateDict(file);
    expect(set.tensors.map((t) => t.name).sort()).toEqual(['a', 'a2', 'b', 'c', 'c2']);
    expect(report.pairs.every((p) => p.transform === 'as is' && p.tf === p.torch)).toBe(true);
    expect(report.diagnostics.some((d) => d.code === 'TF_TORCH_UNKNOWN_LAYER')).toBe(true);
    expect(await f32(set.tensors.find((t) => t.name === 'a')!)).toEqual([0.5]);
  });
});

describe('template matching', () => {
  const model = fakeModel([dense('fc1', 4, 3), bnLayer('bn', 3), dense('fc2', 3, 2)]).file;

  it('pairs layers in order by parameters and transformed shapes; template without num_batches_tracked is fine', () => {
    const template = tpl([['body.0.weight', [3, 4]], ['body.0.bias', [3]], ['body.1.weight', [3]], ['body.1.bias', [3]], ['body.1.running_mean', [3]], ['body.1.running_var', [3]], ['head.weight', [2, 3]], ['head.bias', [2]]]);
    const { set, report } = savedModelToStateDict(model, { template });
    expect(set.tensors.map((t) => t.name)).toEqual(template.tensors.map((t) => t.name));
    expect(report.pairs.find((p) => p.torch === 'body.1.running_var')!.tf).toBe('bn/moving_variance');
    expect(report.unmatchedTf).toEqual([]);
    expect(report.unmatchedTorch).toEqual([]);
  });

  it('output follows the template order even when the template lists params differently', () => {
    const template = tpl([['x.bias', [3]], ['x.weight', [3, 4]], ['n.num_batches_tracked', [], 'int64'], ['n.running_var', [3]], ['n.running_mean', [3]], ['n.bias', [3]], ['n.weight', [3]], ['y.weight', [2, 3]], ['y.bias', [2]]]);
    const { set } = savedModelToStateDict(model, { template });
    expect(set.tensors.map((t) => t.name)).toEqual(template.tensors.map((t) => t.name));
    expect(set.tensors[2]!.dtype).toBe('int64');
  });

  it('names the first failing pair (shape after transform)', async () => {
    // The Keras kernel is [4,3]; a template that forgot the transpose has [4,3] too — and must fail.
    const template = tpl([['a.weight', [4, 3]], ['a.bias', [3]]]);
    const e = await expectCode(() => savedModelToStateDict(model, { template }), 'E_USAGE');
    expect(e.message).toMatch(/template pair #1 .*TF layer 'fc1' \(Dense: weight \[3,4\], bias \[3\]\) vs torch module 'a'.*'weight' is \[3,4\] after the transform, torch expects \[4,3\]/);
    expect(e.tensor).toBe('a');
  });

  it('names the first failing pair (kind: a Linear where the BatchNorm should be)', async () => {
    const template = tpl([['a.weight', [3, 4]], ['a.bias', [3]], ['b.weight', [3, 3]], ['b.bias', [3]]]);
    const e = await expectCode(() => savedModelToStateDict(model, { template }), 'E_USAGE');
    expect(e.message).toMatch(/template pair #2 .*'bn'.*BatchNormalization.*parameters differ/);
  });

  it('a shorter or longer template leaves the rest unmatched, with warnings', () => {
    const short = savedModelToStateDict(model, { template: tpl([['a.weight', [3, 4]], ['a.bias', [3]]]) });
    expect(short.report.unmatchedTf).toEqual(['bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance', 'fc2/kernel', 'fc2/bias']);
    expect(short.report.diagnostics.some((d) => d.code === 'TF_TORCH_TEMPLATE_SHORT')).toBe(true);
    const long = savedModelToStateDict(fakeModel([dense('fc1', 4, 3)]).file, { template: tpl([['a.weight', [3, 4]], ['a.bias', [3]], ['extra.weight', [7]]]) });
    expect(long.report.unmatchedTorch).toEqual(['extra.weight']);
    expect(long.set.tensors.map((t) => t.name)).toEqual(['a.weight', 'a.bias']);
  });
});

describe('layer discovery and automatic naming', () => {
  it('orders layer_with_weights-N numerically when the model config gives no order', () => {
    const layers = Array.from({ length: 12 }, (_, i) => dense(`d${i}`, 2, 2));
    const { set } = savedModelToStateDict(fakeModel(layers, { sequential: false }).file);
    expect(set.tensors.filter((t) => t.name.endsWith('.weight')).map((t) => t.name)).toEqual(layers.map((l) => `${l.name}.weight`));
  });

  it('infers layer kinds from the variables when there is no Keras metadata', () => {
    const { file } = fakeModel(ZOO, { noKeras: true });
    const { report } = savedModelToStateDict(file);
    const by = new Map(report.pairs.map((p) => [p.torch, p]));
    expect(by.get('conv.weight')!.shapeAfter).toEqual([4, 2, 3, 3]);
    expect(by.get('dw.weight')!.shapeAfter).toEqual([8, 1, 3, 3]);
    expect(by.get('bn.num_batches_tracked')).toBeDefined();
    expect(by.get('gru.weight_ih_l0')!.transform).toMatch(/z,r,h→r,z,n/);
    expect(by.get('lstm.bias_hh_l0')!.transform).toBe('zeros');
    expect(by.get('bi.weight_ih_l0_reverse')).toBeDefined();
    expect(by.get('sep.depthwise.weight')!.shapeAfter).toEqual([4, 1, 3, 3]);
    // Without metadata the Flatten is invisible: rows stay as they are, and nothing claims otherwise.
    expect(by.get('fc.weight')!.transform).toBe('transpose(1,0)');
    expect(layerKind({ path: '', key: 'x', name: 'x', vars: new Map([['embeddings', inMemoryTensor({ name: 'e', dtype: 'float32', shape: [2, 2], data: new Uint8Array(16) })]]) })).toBe('Embedding');
  });

  it('flatten option gives C where the metadata does not; an unknown Flatten input shape is a warning', async () => {
    const { file, values } = fakeModel([{ name: 'flat', cls: 'Flatten' }, dense('fc', 6, 2)]);
    const plain = savedModelToStateDict(file);
    expect(plain.report.diagnostics.some((d) => d.code === 'TF_TORCH_FLATTEN_UNKNOWN')).toBe(true);
    const { set } = savedModelToStateDict(file, { flatten: { fc: 3 } });
    // rows (s, c) with S=2, C=3: torch row c*2+s ← Keras row s*3+c; torch weight [2 out, 6 in].
    const k = values.get('fc/kernel')!.data;
    const w = await f32(set.tensors.find((t) => t.name === 'fc.weight')!);
    for (let o = 0; o < 2; o++) for (let s = 0; s < 2; s++) for (let c = 0; c < 3; c++) expect(w[o * 6 + c * 2 + s]).toBe(k[(s * 3 + c) * 2 + o]);
  });

  it('BatchNorm with center=False / scale=False gets bias 0 / weight 1', async () => {
    const { set } = savedModelToStateDict(fakeModel([{ name: 'bn', cls: 'BatchNormalization', vars: { moving_mean: [2], moving_variance: [2] } }]).file);
    expect(await f32(set.tensors.find((t) => t.name === 'bn.weight')!)).toEqual([1, 1]);
    expect(await f32(set.tensors.find((t) => t.name === 'bn.bias')!)).toEqual([0, 0]);
  });

  it('unknown layers are copied as is, with a warning', () => {
    const { set, report } = savedModelToStateDict(fakeModel([{ name: 'odd', cls: 'MyLayer', vars: { x: [3] } }]).file);
    expect(set.tensors.map((t) => t.name)).toEqual(['odd.x']);
    expect(report.diagnostics.some((d) => d.code === 'TF_TORCH_UNKNOWN_LAYER')).toBe(true);
  });

  it('moves 8-byte elements bit-exactly (float64 Dense)', async () => {
    const t: LazyTensor = { ...inMemoryTensor({ name: 'd/kernel', dtype: 'float64', shape: [2, 3], data: new Uint8Array(new Float64Array([1, 2, 3, 4, 5, 6]).buffer) }), extra: { objectPath: 'layer_with_weights-0/kernel', variableName: 'd/kernel' } };
    const file = { ...fakeModel([]).file, variables: { format: 'tf-bundle', tensors: [t], diagnostics: [] } } as SavedModelFile;
    const { set } = savedModelToStateDict(file);
    expect([...new Float64Array((await set.tensors[0]!.load()).slice().buffer)]).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe('hostile Keras metadata', () => {
  it('garbage JSON, wrong types and absurd shapes in the metadata do not crash the conversion', () => {
    const { file } = fakeModel([{ name: 'flat', cls: 'Flatten', meta: { build_input_shape: { items: ['a', -1] } } }, dense('fc', 6, 2)]);
    const layers = (file.keras!.layers as unknown as { metadata: string }[]);
    const variants = ['not json', '{"class_name": 5, "config": "x"}', '{"class_name": "Sequential", "config": {"layers": "x"}}',
      '{"class_name": "Functional", "config": {"layers": [null, 3, {"name": "fc", "inbound_nodes": [[[7]]]}, {"name": "fc", "inbound_nodes": [{"args": [{"config": {"keras_history": [null]}}]}]}]}}',
      JSON.stringify({ class_name: 'Sequential', config: { layers: [{ class_name: 'Flatten', config: { name: 'flat' } }, { class_name: 'Dense', config: { name: 'fc' } }] } })];
    for (const v of variants) {
      layers[0]!.metadata = v;
      const { set, report } = savedModelToStateDict(file);
      expect(set.tensors.map((t) => t.name)).toEqual(['fc.weight', 'fc.bias']);
      expect(report.pairs[0]!.shapeAfter).toEqual([2, 6]);
    }
    // A Flatten whose input shape claims more channels than the Dense has rows is refused, not obeyed blindly.
    layers[1]!.metadata = JSON.stringify({ class_name: 'Flatten', name: 'flat', build_input_shape: [null, 1, 1, 7] });
    expect(() => savedModelToStateDict(file)).toThrow(/not a multiple of 7 channels/);
  });
});

describe('errors', () => {
  it('E_USAGE: no weights to convert', async () => {
    const e = await expectCode(() => savedModelToStateDict(fakeModel([], { path: 'empty_model' }).file), 'E_USAGE');
    expect(e.path).toBe('empty_model');
  });

  it('E_MALFORMED: a Dense kernel that is not 2-D, a missing BatchNorm statistic, a Flatten C that does not divide the rows', async () => {
    const e1 = await expectCode(() => savedModelToStateDict(fakeModel([{ name: 'fc', cls: 'Dense', vars: { kernel: [2, 2, 2] } }], { path: 'm' }).file), 'E_MALFORMED');
    expect(e1.message).toMatch(/variable 'fc\/kernel' \(weight of Dense 'fc'\) has shape \[2, 2, 2\]/);
    expect(e1.tensor).toBe('fc/kernel');
    expect(e1.path).toBe('m');
    await expectCode(() => savedModelToStateDict(fakeModel([{ name: 'bn', cls: 'BatchNormalization', vars: { moving_mean: [2] } }]).file), 'E_MALFORMED');
    await expectCode(() => savedModelToStateDict(fakeModel([dense('fc', 6, 2)]).file, { flatten: { fc: 4 } }), 'E_MALFORMED');
    await expectCode(() => savedModelToStateDict(fakeModel([{ name: 'g', cls: 'GRU', vars: { 'cell/kernel': [2, 6], 'cell/recurrent_kernel': [2, 6], 'cell/bias': [3, 6] } }]).file), 'E_MALFORMED');
  });

  it('E_UNSUPPORTED: GRU reset_after=False, per-position PReLU, a recurrent layer that is neither LSTM nor GRU', async () => {
    const e1 = await expectCode(() => savedModelToStateDict(fakeModel([{ name: 'g', cls: 'GRU', vars: { 'cell/kernel': [2, 6], 'cell/recurrent_kernel': [2, 6], 'cell/bias': [6] } }]).file), 'E_UNSUPPORTED');
    expect(e1.message).toMatch(/reset_after=False/);
    await expectCode(() => savedModelToStateDict(fakeModel([{ name: 'p', cls: 'PReLU', vars: { alpha: [4, 4, 3] } }]).file), 'E_UNSUPPORTED');
    await expectCode(() => savedModelToStateDict(fakeModel([{ name: 'r', cls: 'SimpleRNN', vars: { 'cell/kernel': [2, 2], 'cell/recurrent_kernel': [2, 2] } }]).file), 'E_UNSUPPORTED');
  });

  it('E_DTYPE: a string kernel cannot be transposed (found while planning)', async () => {
    const t: LazyTensor = { ...inMemoryTensor({ name: 'd/kernel', dtype: 'string', shape: [2, 2], data: new Uint8Array(0) }), extra: { objectPath: 'layer_with_weights-0/kernel', variableName: 'd/kernel' } };
    const file = { ...fakeModel([]).file, variables: { format: 'tf-bundle', tensors: [t], diagnostics: [] } } as SavedModelFile;
    const e = await expectCode(() => savedModelToStateDict(file), 'E_DTYPE');
    expect(e.tensor).toBe('d/kernel');
  });

  it('E_TENSOR_SIZE on load: a variable whose bytes do not fill its shape', async () => {
    const t: LazyTensor = { name: 'd/kernel', dtype: 'float32', shape: [2, 2], byteLength: 16, load: async () => new Uint8Array(12), extra: { objectPath: 'layer_with_weights-0/kernel', variableName: 'd/kernel' } };
    const file = { ...fakeModel([]).file, variables: { format: 'tf-bundle', tensors: [t], diagnostics: [] } } as SavedModelFile;
    const e = await expectCode(savedModelToStateDict(file).set.tensors[0]!.load(), 'E_TENSOR_SIZE');
    expect(e.tensor).toBe('d/kernel');
  });

  it('mapping file: E_MALFORMED for bad JSON (with offset), a non-object or a non-string value; E_LIMIT for a huge file', async () => {
    expect(parseTfTorchMap(new TextEncoder().encode('{"a/kernel": "a.weight"}'))).toEqual({ 'a/kernel': 'a.weight' });
    const e1 = await expectCode(() => parseTfTorchMap('{"a": ', 'm.json'), 'E_MALFORMED');
    expect(e1.path).toBe('m.json');
    await expectCode(() => parseTfTorchMap('["a", "b"]'), 'E_MALFORMED');
    const e3 = await expectCode(() => parseTfTorchMap('{"a": 3}'), 'E_MALFORMED');
    expect(e3.tensor).toBe('a');
    await expectCode(() => parseTfTorchMap(new Uint8Array(65 * 2 ** 20)), 'E_LIMIT');
  });
});
