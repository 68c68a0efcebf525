/**
 * The Fashion-MNIST accuracy bench: the fixture loads and is what train.py wrote (same accuracy and
 * logits in onnxruntime as in torch, so the Node side normalises the input identically), the int8
 * weight-only pipeline stays faithful, and every error the bench's own input handling throws.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../src/core/errors.js';
import { runPython } from '../kernels/helpers.js';
import { onnxModel } from '../../src/formats/onnx/read.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import {
  DEFAULT_FIXTURE_DIR,
  VARIANTS,
  agreementPct,
  checkThresholds,
  fashionSubset,
  inputBatch,
  loadFixture,
  parseIdx,
  positiveIntArg,
  predict,
  runAccuracy,
  type Fixture,
} from '../../src/bench/accuracy.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/fashion-mnist');

const PRUNE_ORACLE = `
import json, struct, sys
import numpy as np, torch, torch.nn.functional as F, onnx
from onnx import numpy_helper
d = sys.argv[1]
m = onnx.load(d + '/cnn.onnx')
W = {i.name: numpy_helper.to_array(i).copy() for i in m.graph.initializer}
def idx(p, r):
    b = open(p, 'rb').read()
    dims = struct.unpack('>' + 'I' * r, b[4:4 + 4 * r])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * r).reshape(dims)
x = torch.from_numpy(idx(d + '/test-images.idx3-ubyte', 3).astype(np.float32) / 255.0).unsqueeze(1)
y = idx(d + '/test-labels.idx1-ubyte', 1)
convs = [n for n in m.graph.node if n.op_type == 'Conv']
mms = [n for n in m.graph.node if n.op_type == 'MatMul']
adds = [n for n in m.graph.node if n.op_type == 'Add']
assert [n.op_type for n in m.graph.node] == ['Conv', 'Relu', 'MaxPool', 'Conv', 'Relu', 'MaxPool', 'Flatten', 'MatMul', 'Add', 'Relu', 'MatMul', 'Add']
prunable = [n.input[1] for n in convs + mms]
def run(P):
    t = lambda k: torch.from_numpy(P[k])
    h = x
    for c in convs:
        h = F.max_pool2d(F.relu(F.conv2d(h, t(c.input[1]), t(c.input[2]))), 2)
    h = torch.flatten(h, 1)
    h = F.relu(h @ t(mms[0].input[1]) + t(adds[0].input[1]))
    h = h @ t(mms[1].input[1]) + t(adds[1].input[1])
    return 100.0 * float((h.argmax(1).numpy() == y).mean())
def smallest(a, k):
    return np.argsort(np.abs(a), kind='stable')[:k]
P = dict(W)
for k in prunable:
    w = W[k].copy().ravel(); w[smallest(w, int(round(0.5 * w.size)))] = 0; P[k] = w.reshape(W[k].shape)
G = dict(W)
flat = np.concatenate([W[k].ravel() for k in prunable]); flat[smallest(flat, int(round(0.5 * flat.size)))] = 0
o = 0
for k in prunable:
    G[k] = flat[o:o + W[k].size].reshape(W[k].shape); o += W[k].size
print(json.dumps({'fp32': run(W), 'prune50': run(P), 'prune50_global': run(G)}))
`;

interface Meta {
  subset: number;
  torch_accuracy_subset_pct: number;
  torch_logits_first4: number[][];
}

let fixture: Fixture;
let meta: Meta;
let tmp: string;
beforeAll(async () => {
  fixture = await loadFixture(FIXTURE);
  meta = JSON.parse(await readFile(join(FIXTURE, 'meta.json'), 'utf8')) as Meta;
  tmp = await mkdtemp(join(tmpdir(), 'modelsmith-accuracy-test-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function expectCode(f: () => unknown, code: string, msg?: RegExp): ModelsmithError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(ModelsmithError);
  expect((err as ModelsmithError).code).toBe(code);
  if (msg) expect((err as ModelsmithError).message).toMatch(msg);
  return err as ModelsmithError;
}

async function expectCodeAsync(p: Promise<unknown>, code: string, msg?: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, `expected ${code}`).toBeInstanceOf(ModelsmithError);
  expect((err as ModelsmithError).code).toBe(code);
  if (msg) expect((err as ModelsmithError).message).toMatch(msg);
}

/** An uncompressed unsigned-byte IDX file. */
function idx(dims: number[], payload: Uint8Array | number = dims.reduce((a, b) => a * b, 1)): Uint8Array {
  const data = typeof payload === 'number' ? new Uint8Array(payload) : payload;
  const out = new Uint8Array(4 + 4 * dims.length + data.byteLength);
  out[2] = 0x08;
  out[3] = dims.length;
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

describe('fixture', () => {
  it('is the documented subset: 2,000 images 28×28 with labels 0..9 of every class', () => {
    expect(DEFAULT_FIXTURE_DIR).toBe(FIXTURE);
    expect(fixture.subset.count).toBe(2000);
    expect(meta.subset).toBe(2000);
    expect(fixture.subset.images.byteLength).toBe(2000 * 784);
    const perClass = new Array<number>(10).fill(0);
    for (const c of fixture.subset.labels) perClass[c]!++;
    // The official test set is balanced (1,000 per class); its first 2,000 are roughly so.
    for (const n of perClass) expect(n).toBeGreaterThan(150);
    // Real images, not zeros: Fashion-MNIST has a dark background and bright articles.
    const mean = fixture.subset.images.reduce((s, p) => s + p, 0) / fixture.subset.images.byteLength;
    expect(mean).toBeGreaterThan(40);
    expect(mean).toBeLessThan(110);
  });

  it('normalises the input exactly as train.py: onnxruntime logits equal torch logits', async () => {
    const p = await predict(fixture.modelPath, fixture.subset, { limit: 4 });
    const want = meta.torch_logits_first4.flat();
    expect(p.firstLogits.length).toBe(40);
    for (let i = 0; i < 40; i++) expect(Math.abs(p.firstLogits[i]! - want[i]!)).toBeLessThan(2e-3);
    // x = pixel / 255 in float32
    const t = inputBatch(fixture.subset, 0, 1);
    const f = new Float32Array(t.data.buffer, t.data.byteOffset, 784);
    for (let i = 0; i < 784; i++) expect(f[i]).toBe(Math.fround(fixture.subset.images[i]! / 255));
    expect(t.shape).toEqual([1, 1, 28, 28]);
  });

  it('fp32 top-1 is ≥ 85% on the first 500 images and matches torch on all 2,000', async () => {
    const first = await predict(fixture.modelPath, fixture.subset, { limit: 500, batch: 128 });
    expect(first.top1.length).toBe(500);
    expect((100 * first.correct) / 500).toBeGreaterThanOrEqual(85);
    const all = await predict(fixture.modelPath, fixture.subset);
    // torch and onnxruntime may disagree on a near-tie; one image is 0.05 pp.
    expect(Math.abs((100 * all.correct) / 2000 - meta.torch_accuracy_subset_pct)).toBeLessThanOrEqual(0.1);
    // Batching does not change predictions.
    expect(agreementPct(first.top1, all.top1.subarray(0, 500))).toBe(100);
  });
});

describe('variants', () => {
  it('int8 weight-only agrees with fp32 on ≥ 98% of the first 500 images at ≤ 0.3× the size', async () => {
    const [fp32, int8] = await runAccuracy(fixture, { only: ['int8'], limit: 500, workDir: tmp });
    expect(fp32!.name).toBe('fp32');
    expect(fp32!.sizeRatio).toBe(1);
    expect(fp32!.agreement).toBe(100);
    expect(int8!.name).toBe('int8');
    expect(int8!.agreement).toBeGreaterThanOrEqual(98);
    expect(int8!.sizeRatio).toBeLessThanOrEqual(0.3);
    expect(int8!.bytes).toBeLessThan(fp32!.bytes);
    expect(Math.abs(int8!.deltaPp)).toBeLessThanOrEqual(1);
    expect(int8!.failures.length).toBeLessThanOrEqual(1); // 500 images: one image is 0.2 pp
  });

  it('magnitude prune matches a torch oracle on the same weights: per weight and global, all 2,000 images', async () => {
    // The oracle prunes the fp32 ONNX weights with numpy (stable argsort: ties in index order, as the
    // pass) and runs the network in torch; a mismatch means the pass or the pipeline is wrong, while a
    // big drop that matches is the model's own sensitivity.
    const oracle = JSON.parse(new TextDecoder().decode(runPython(PRUNE_ORACLE, [FIXTURE]))) as Record<string, number>;
    const rows = await runAccuracy(fixture, { only: ['prune50', 'prune50_global'], workDir: tmp });
    const acc = Object.fromEntries(rows.map((r) => [r.name, r.accuracy]));
    expect(Math.abs(acc.fp32! - oracle.fp32!)).toBeLessThanOrEqual(0.1);
    expect(Math.abs(acc.prune50! - oracle.prune50!)).toBeLessThanOrEqual(0.1);
    expect(Math.abs(acc.prune50_global! - oracle.prune50_global!)).toBeLessThanOrEqual(0.1);
    // The two methods really differ on this model (the first Conv has 9 weights per filter).
    expect(oracle.prune50_global! - oracle.prune50!).toBeGreaterThan(5);
  });

  it('registry: unique names, fp32 first, the issue thresholds present', () => {
    const names = VARIANTS.map((v) => v.name);
    expect(names[0]).toBe('fp32');
    expect(new Set(names).size).toBe(names.length);
    const t = Object.fromEntries(VARIANTS.map((v) => [v.name, v.thresholds]));
    expect(t.int8).toEqual({ maxDropPp: 0.5, maxSizeRatio: 0.3 });
    expect(t.dynamic_int8).toEqual({ maxDropPp: 0.5 });
    expect(t.fp16).toEqual({ maxDropPp: 0.1 });
    expect(t.int4).toEqual({ maxDropPp: 2 });
    expect(t.prune50_global).toEqual({ maxDropPp: 2 });
    expect(t.prune50).toBeUndefined(); // reported only: per-layer 50% on 9-weight filters, see docs/benchmarks.md
  });

  it('checkThresholds: a drop of exactly the limit passes, more fails; gains never fail', () => {
    expect(checkThresholds({ name: 'a', deltaPp: -0.5, sizeRatio: 1 }, { maxDropPp: 0.5 })).toEqual([]);
    expect(checkThresholds({ name: 'a', deltaPp: 0.2 - 0.7, sizeRatio: 1 }, { maxDropPp: 0.5 })).toEqual([]); // float rounding
    expect(checkThresholds({ name: 'a', deltaPp: -0.55, sizeRatio: 1 }, { maxDropPp: 0.5 })).toEqual(['a loses 0.55 pp top-1 (allowed 0.5)']);
    expect(checkThresholds({ name: 'a', deltaPp: 3, sizeRatio: 1 }, { maxDropPp: 0.1 })).toEqual([]);
    expect(checkThresholds({ name: 'a', deltaPp: 0, sizeRatio: 0.31 }, { maxSizeRatio: 0.3 })).toEqual(['a file is 0.310× fp32 (allowed 0.3×)']);
    expect(checkThresholds({ name: 'a', deltaPp: NaN, sizeRatio: NaN }, { maxDropPp: 1, maxSizeRatio: 1 })).toHaveLength(2);
    expect(checkThresholds({ name: 'a', deltaPp: -50, sizeRatio: 9 })).toEqual([]);
  });

  it('agreementPct counts equal top-1 over the shorter run', () => {
    expect(agreementPct(Uint8Array.of(1, 2, 3, 4), Uint8Array.of(1, 2, 0, 4))).toBe(75);
    expect(agreementPct(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3))).toBe(100);
    expect(agreementPct(new Uint8Array(0), Uint8Array.of(1))).toBe(0);
  });
});

describe('errors', () => {
  const P = 'x.idx';
  it('E_TRUNCATED: short header, dims larger than the file, short payload', () => {
    expectCode(() => parseIdx(Uint8Array.of(0, 0, 8), P, 1), 'E_TRUNCATED', /x\.idx.*byte 0/);
    expectCode(() => parseIdx(Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 2), P, 3), 'E_TRUNCATED', /byte 4/);
    expectCode(() => parseIdx(idx([0xffffffff, 0xffffffff, 0xffffffff], 0), P, 3), 'E_TRUNCATED', /byte 4\)/);
    expectCode(() => parseIdx(idx([3, 28, 28], 2 * 784), P, 3), 'E_TRUNCATED', /dims \[3, 28, 28…\] need more bytes/);
    expectCode(() => parseIdx(idx([2], 1), P, 1), 'E_TRUNCATED', /needs 2 bytes, file has 1.*byte 9/);
  });

  it('E_MALFORMED: magic, element type, rank, trailing bytes, image size, labels', () => {
    const ok = idx([2]);
    expect(parseIdx(ok, P, 1).dims).toEqual([2]);
    expectCode(() => parseIdx(Uint8Array.of(1, ...ok.subarray(1)), P, 1), 'E_MALFORMED', /byte 0/);
    expectCode(() => parseIdx(Uint8Array.of(0, 0, 0x0d, ...ok.subarray(3)), P, 1), 'E_MALFORMED', /0xd.*byte 2/);
    expectCode(() => parseIdx(ok, P, 3), 'E_MALFORMED', /rank 1, expected 3/);
    expectCode(() => parseIdx(Uint8Array.of(...ok, 7), P, 1), 'E_MALFORMED', /1 bytes after/);
    const paths = { images: 'i.idx', labels: 'l.idx' };
    expectCode(() => fashionSubset(idx([1, 32, 32]), idx([1]), paths), 'E_MALFORMED', /32×32.*i\.idx/);
    expectCode(() => fashionSubset(idx([0, 28, 28]), idx([0]), paths), 'E_MALFORMED', /no images/);
    expectCode(() => fashionSubset(idx([2, 28, 28]), idx([3]), paths), 'E_MALFORMED', /3 labels for 2 images.*l\.idx/);
    expectCode(() => fashionSubset(idx([2, 28, 28]), idx([2], Uint8Array.of(9, 10)), paths), 'E_MALFORMED', /label 10 of image 1.*byte 9/);
    expect(fashionSubset(idx([2, 28, 28]), idx([2], Uint8Array.of(9, 0)), paths).count).toBe(2);
  });

  it('E_LIMIT: more images than the test set has', () => {
    expectCode(() => fashionSubset(idx([10_001, 28, 28]), idx([10_001]), { images: 'i.idx', labels: 'l.idx' }), 'E_LIMIT', /10001 images/);
  });

  it('E_OUT_OF_RANGE: a batch outside the subset', () => {
    expectCode(() => inputBatch(fixture.subset, 1990, 20), 'E_OUT_OF_RANGE', /\[1990, 2010\)/);
    expectCode(() => inputBatch(fixture.subset, -1, 1), 'E_OUT_OF_RANGE');
    expectCode(() => inputBatch(fixture.subset, 0, 0), 'E_OUT_OF_RANGE');
  });

  it('E_USAGE: bad numbers and unknown variant names', async () => {
    expect(positiveIntArg(undefined, '--limit')).toBeUndefined();
    expect(positiveIntArg('500', '--limit')).toBe(500);
    for (const bad of ['0', '-3', '1.5', 'x', '', '1e400']) expectCode(() => positiveIntArg(bad, '--batch'), 'E_USAGE', /--batch must be a positive integer/);
    await expectCodeAsync(runAccuracy(fixture, { only: ['int9'], workDir: tmp }), 'E_USAGE', /unknown variant 'int9'.*fp32, int8/);
  });

  it('E_UNSUPPORTED: a model that does not answer with [N, 10] logits', async () => {
    const graph = create(GraphProtoSchema, {
      name: 'id',
      node: [create(NodeProtoSchema, { opType: 'Identity', input: ['input'], output: ['logits'] })],
      input: [tensorValueInfo('input', ['N', 1, 28, 28])],
      output: [tensorValueInfo('logits', ['N', 1, 28, 28])],
    });
    const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })], graph });
    const path = join(tmp, 'identity.onnx');
    await saveOnnxFile(onnxModel(proto, { path }), path);
    await expectCodeAsync(predict(path, fixture.subset, { limit: 3 }), 'E_UNSUPPORTED', /expected float32 logits \[3, 10\], got float32 \[3, 1, 28, 28\].*identity\.onnx/);
  });

  it('E_IO from a missing fixture folder names the file', async () => {
    await expectCodeAsync(loadFixture(join(tmp, 'nope')), 'E_IO', /nope/);
  });
});
