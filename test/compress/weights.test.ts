import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { castWeightSet } from '../../src/compress/weights/cast.js';
import { pruneWeightSet } from '../../src/compress/weights/prune.js';
import { QUANT_METADATA_KEY, quantizeWeightSet } from '../../src/compress/weights/quantize.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { onnxWeights, replaceOnnxInitializers } from '../../src/formats/onnx/weights.js';
import { readOnnx } from '../../src/formats/onnx/read.js';
import { inMemoryTensor, type LazyTensor, type WeightSet } from '../../src/formats/weights.js';
import { MemorySource } from '../../src/io/source.js';
import { castF32ToF16 } from '../../src/kernels/cast.js';
import { initKernels } from '../../src/kernels/loader.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const SAMPLE = resolve(import.meta.dirname, '../../examples/sample/version-slim-320.onnx');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function f32(name: string, shape: number[], seed = 1): LazyTensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() - 0.5) * 2;
  return inMemoryTensor({ name, dtype: 'float32', shape, data: new Uint8Array(x.buffer) });
}

function set(...tensors: LazyTensor[]): WeightSet {
  return { format: 'test', tensors, diagnostics: [] };
}

const asF32 = (b: Uint8Array) => new Float32Array(b.slice().buffer);

describe('weight-set passes', () => {
  it('do no work until a tensor is loaded', async () => {
    let loads = 0;
    const t = f32('w', [8, 8]);
    const counted: LazyTensor = { ...t, load: async () => { loads++; return t.load(); } };
    await quantizeWeightSet(set(counted), { scheme: 'int8' });
    await castWeightSet(set(counted), { to: 'float16' });
    await pruneWeightSet(set(counted), { method: 'magnitude', sparsity: 0.5 });
    expect(loads).toBe(0);
  });

  it('int8 per-channel: data, scales and recipe; dequantized within half a step', async () => {
    const w = f32('fc.weight', [6, 10]);
    const { set: out, report } = await quantizeWeightSet(set(w, f32('fc.bias', [6], 2)), { scheme: 'int8' });
    expect(out.tensors.map((t) => `${t.name}:${t.dtype}[${t.shape}]`)).toEqual(['fc.weight:int8[6,10]', 'fc.weight.scale:float32[6]', 'fc.bias:float32[6]']);
    const q = new Int8Array((await out.tensors[0]!.load()).slice().buffer);
    const s = asF32(await out.tensors[1]!.load());
    const x = asF32(await w.load());
    for (let i = 0; i < x.length; i++) {
      const c = Math.floor(i / 10);
      expect(Math.abs(q[i]! * s[c]! - x[i]!)).toBeLessThanOrEqual(s[c]! / 2 + 1e-7);
    }
    expect(JSON.parse(out.metadata![QUANT_METADATA_KEY]!)['fc.weight']).toEqual({ scheme: 'int8', dtype: 'float32', shape: [6, 10], axis: 0 });
    expect(report.skipped).toEqual([{ name: 'fc.bias', reason: expect.stringContaining('1-D') }]);
    expect(report.processed[0]!.error!.snrDb).toBeGreaterThan(35);
    expect(report.bytesAfter).toBe(60 + 24 + 24);
  });

  it('uint8 asymmetric stores zero points; int4 packs two codes per byte with block scales', async () => {
    const w = f32('w', [4, 64], 3);
    const u8 = await quantizeWeightSet(set(w), { scheme: 'uint8', perChannel: false });
    expect(u8.set.tensors.map((t) => `${t.name}:${t.dtype}[${t.shape}]`)).toEqual(['w:uint8[4,64]', 'w.scale:float32[]', 'w.zero_point:uint8[]']);
    const q4 = await quantizeWeightSet(set(w), { scheme: 'int4', blockSize: 32 });
    expect(q4.set.tensors.map((t) => `${t.name}:${t.dtype}[${t.shape}]`)).toEqual(['w:uint8[128]', 'w.scale:float32[4,2]']);
    const data = await q4.set.tensors[0]!.load();
    const scales = asF32(await q4.set.tensors[1]!.load());
    const x = asF32(await w.load());
    for (let i = 0; i < x.length; i++) {
      const nib = (data[i >> 1]! >> ((i & 1) * 4)) & 15;
      const code = nib >= 8 ? nib - 16 : nib;
      const sc = scales[Math.floor(i / 32)]!;
      expect(Math.abs(code * sc - x[i]!)).toBeLessThanOrEqual(sc / 2 + 1e-6);
    }
    await expect(quantizeWeightSet(set(w), { scheme: 'int4', blockSize: 8 })).rejects.toMatchObject({ code: ErrorCodes.USAGE });
  });

  it('refuses weights with NaN at load, and names that would collide', async () => {
    const bad = inMemoryTensor({ name: 'w', dtype: 'float32', shape: [2, 2], data: new Uint8Array(Float32Array.of(1, NaN, 2, 3).buffer) });
    const { set: out } = await quantizeWeightSet(set(bad), { scheme: 'int8' });
    await expect(out.tensors[0]!.load()).rejects.toMatchObject({ code: ErrorCodes.RANGE_CHECK, tensor: 'w' });
    await expect(quantizeWeightSet(set(f32('w', [2, 2]), f32('w.scale', [2, 2])), { scheme: 'int8' })).rejects.toMatchObject({ code: ErrorCodes.UNSUPPORTED });
  });

  it('float16 cast matches the kernel bit for bit, keeps ints and tied storage', async () => {
    await initKernels();
    const w = { ...f32('w', [3, 5]), storageKey: 's0' };
    const steps = inMemoryTensor({ name: 'n', dtype: 'int64', shape: [], data: new Uint8Array(8) });
    const { set: out, report } = await castWeightSet(set(w, steps), { to: 'float16' });
    expect(out.tensors[1]).toBe(steps);
    expect(out.tensors[0]!.storageKey).toBe('s0');
    const want = castF32ToF16(asF32(await w.load()), { clampFinite: true });
    expect(Buffer.from(await out.tensors[0]!.load()).equals(Buffer.from(want.buffer))).toBe(true);
    expect(report.bytesAfter).toBe(30 + 8);
  });

  it('magnitude pruning is exact per tensor; 2:4 keeps 2 of every 4 along axis 1', async () => {
    const w = f32('w', [8, 16], 5);
    const { set: m, report } = await pruneWeightSet(set(w), { method: 'magnitude', sparsity: 0.3 });
    const y = asF32(await m.tensors[0]!.load());
    expect(y.filter((v) => v === 0).length).toBe(Math.round(0.3 * 128));
    expect(report.processed[0]!.sparsity).toBeCloseTo(Math.round(0.3 * 128) / 128);
    const { set: nm } = await pruneWeightSet(set(w), { method: 'nm' });
    const z = asF32(await nm.tensors[0]!.load());
    for (let r = 0; r < 8; r++) for (let g = 0; g < 16; g += 4) {
      expect([0, 1, 2, 3].filter((j) => z[r * 16 + g + j] === 0).length).toBe(2);
    }
    const odd = await pruneWeightSet(set(f32('v', [4, 6])), { method: 'nm' });
    expect(odd.report.skipped[0]!.reason).toContain('not a multiple of 4');
    await expect(pruneWeightSet(set(w), { method: 'magnitude', sparsity: 1.5 })).rejects.toMatchObject({ code: ErrorCodes.USAGE });
  });
});

describe('ONNX initializers as a weight set', () => {
  it('exports the sample model initializers bit-identical to REAL_TENSORS.json', async () => {
    const model = await readOnnx(new MemorySource(readFileSync(SAMPLE)), { path: SAMPLE });
    const ws = onnxWeights(model);
    const expected = JSON.parse(readFileSync(resolve(CORPUS, 'REAL_TENSORS.json'), 'utf8'))['onnx/models/ultra-light-face/version-slim-320.onnx'].tensors as Record<string, { dtype: string; shape: number[]; sha256: string }>;
    expect(ws.tensors.length).toBe(Object.keys(expected).length);
    for (const t of ws.tensors) {
      const e = expected[t.name]!;
      expect(t.dtype).toBe(e.dtype);
      expect(t.shape).toEqual(e.shape);
      expect(createHash('sha256').update(await t.load()).digest('hex')).toBe(e.sha256);
    }
  });

  it('replaces initializers by name (with a map), and refuses mismatches before touching anything', async () => {
    const model = await readOnnx(new MemorySource(readFileSync(SAMPLE)), { path: SAMPLE });
    const first = model.proto.graph!.initializer[0]!;
    const [d0, d1] = [Number(first.dims[0]), first.dims.slice(1).reduce((a, b) => a * Number(b), 1)];
    const repl = inMemoryTensor({ name: 'renamed', dtype: 'float32', shape: first.dims.map(Number), data: new Uint8Array(d0 * d1 * 4).fill(0) });
    const before = first.rawData.slice();
    const wrongShape = inMemoryTensor({ name: first.name, dtype: 'float32', shape: [1], data: new Uint8Array(4) });
    await expect(replaceOnnxInitializers(model, set(wrongShape))).rejects.toMatchObject({ code: ErrorCodes.TENSOR_SIZE });
    await expect(replaceOnnxInitializers(model, set(repl))).rejects.toMatchObject({ code: ErrorCodes.USAGE });
    expect(Buffer.from(first.rawData).equals(Buffer.from(before))).toBe(true);
    const report = await replaceOnnxInitializers(model, set(repl), { map: { renamed: first.name } });
    expect(report.replaced).toHaveLength(1);
    expect(report.untouched.length).toBe(model.proto.graph!.initializer.length - 1);
    expect(first.rawData.every((b) => b === 0)).toBe(true);
  });
});
