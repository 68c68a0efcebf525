/**
 * Every PyTorch file of the corpus is read and every tensor's load() bytes are hashed against the
 * manifest written by torch 1.13 (generated/) or REAL_TENSORS.json (the 2019 legacy .pth): dtype,
 * shape, SHA-256, shared storages, quantization parameters, key selection and placeholders.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemorySource, type ByteSource } from '../../../src/io/source.js';
import { FileSource } from '../../../src/platform/node.js';
import { detectPytorch, readPytorch, type PytorchFile } from '../../../src/formats/pytorch/read.js';

const CORPUS = resolve(import.meta.dirname, '../../../../shared/corpus');
const GEN = resolve(CORPUS, 'pytorch/generated');

interface ManifestTensor {
  dtype: string;
  shape: number[];
  sha256: string;
  storage_id?: number;
  storage_offset?: number;
  stride?: number[];
  q_scale?: number;
  q_zero_point?: number;
  qscheme?: string;
  int_repr_sha256?: string;
}
interface ManifestFile {
  format: string;
  tensors: Record<string, ManifestTensor>;
}
const manifest = JSON.parse(readFileSync(resolve(GEN, 'manifest.json'), 'utf8')) as { files: Record<string, ManifestFile> };
const real = JSON.parse(readFileSync(resolve(CORPUS, 'REAL_TENSORS.json'), 'utf8')) as Record<string, { tensors: Record<string, ManifestTensor> }>;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const QDTYPE: Record<string, string> = { qint8: 'int8', quint8: 'uint8', qint32: 'int32' };
const stats = { files: 0, tensors: 0 };

/** Counts reads so the "one read per contiguous tensor" promise can be checked. */
class CountingSource implements ByteSource {
  reads = 0;
  bytesRead = 0;
  constructor(private readonly inner: ByteSource) {}
  get size(): number {
    return this.inner.size;
  }
  get name(): string {
    return this.inner.name;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.reads++;
    this.bytesRead += length;
    return this.inner.read(offset, length);
  }
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads++;
    this.bytesRead += target.byteLength;
    return this.inner.readInto(offset, target);
  }
}

async function open(file: string, key?: string): Promise<PytorchFile> {
  const src = await FileSource.open(file);
  try {
    // Bytes in memory so the FileSource can be closed; the reader only sees a ByteSource either way.
    const mem = new MemorySource(new Uint8Array(await src.read(0, src.size)), file);
    return await readPytorch(mem, { path: file, ...(key !== undefined ? { key } : {}) });
  } finally {
    await src.close();
  }
}

/** Compare a read file with manifest entries; `rename` maps manifest names to ours. */
async function checkTensors(pt: PytorchFile, want: Record<string, ManifestTensor>, rename: (n: string) => string | undefined = (n) => n): Promise<number> {
  const byName = new Map(pt.tensors.map((t) => [t.name, t]));
  let n = 0;
  const storageOf = new Map<number, string>();
  for (const [mname, m] of Object.entries(want)) {
    const name = rename(mname);
    if (name === undefined) continue;
    const t = byName.get(name);
    expect(t, `tensor ${name}`).toBeDefined();
    const wantDtype = QDTYPE[m.dtype] ?? m.dtype;
    expect(t!.dtype, name).toBe(wantDtype);
    expect(t!.shape, name).toEqual(m.shape);
    const bytes = await t!.load();
    expect(bytes.byteLength, name).toBe(t!.byteLength);
    expect(sha(bytes), name).toBe(m.int_repr_sha256 ?? m.sha256);
    if (m.storage_id !== undefined) {
      const key = t!.extra?.storage as string;
      expect(key, name).toBeDefined();
      // Same storage_id ⇔ same storage key.
      const prev = storageOf.get(m.storage_id);
      if (prev !== undefined) expect(key, name).toBe(prev);
      else {
        expect([...storageOf.values()]).not.toContain(key);
        storageOf.set(m.storage_id, key);
      }
      expect(t!.extra?.storageOffset, name).toBe(m.storage_offset);
      expect(t!.extra?.stride, name).toEqual(m.stride);
    }
    if (m.qscheme !== undefined) {
      expect(t!.extra?.quantized).toBe(m.dtype);
      expect(`torch.${t!.extra?.qscheme as string}`).toBe(m.qscheme);
      if (m.q_scale !== undefined) {
        expect(t!.extra?.scale).toBeCloseTo(m.q_scale, 12);
        expect(t!.extra?.zeroPoint).toBe(m.q_zero_point);
      }
    }
    n++;
  }
  stats.tensors += n;
  stats.files++;
  return n;
}

afterAll(() => {
  console.log(`[pytorch read] ${stats.files} file checks, ${stats.tensors} tensors matched by SHA-256`);
});

describe('readPytorch on the corpus', () => {
  const plain = ['tiny_mlp.pt', 'tiny_mlp_legacy.pt', 'tiny_mlp_protocol4.pt', 'dtypes.pt', 'dtypes_legacy.pt', 'shared_views.pt', 'shared_views_legacy.pt', 'quantized.pt', 'mobilenet_v2_fp16.pt', 'squeezenet1_1_legacy.pt'];
  for (const f of plain) {
    it(`${f}: every tensor matches the manifest`, async () => {
      const m = manifest.files[f]!;
      const pt = await open(resolve(GEN, f));
      expect(pt.format).toBe(m.format === 'legacy' ? 'pytorch-legacy' : 'pytorch-zip');
      expect(pt.tensors.map((t) => t.name).sort()).toEqual(Object.keys(m.tensors).sort());
      expect(await checkTensors(pt, m.tensors)).toBe(Object.keys(m.tensors).length);
      expect(pt.unknownGlobals).toEqual([]);
      expect(pt.selectedKey).toBeUndefined();
    });
  }

  it('the real 2019 legacy .pth: 184 tensors match REAL_TENSORS.json', async () => {
    const rel = 'pytorch/real/ultra-light-face/version-slim-320.pth';
    const pt = await open(resolve(CORPUS, rel));
    expect(pt.format).toBe('pytorch-legacy');
    expect(pt.tensors.length).toBe(184);
    expect(await checkTensors(pt, real[rel]!.tensors)).toBe(184);
  });

  it('tied weights share a storageKey; distinct views of one storage do not', async () => {
    const pt = await open(resolve(GEN, 'shared_views.pt'));
    const key = (n: string) => pt.tensors.find((t) => t.name === n)!.storageKey;
    expect(key('embed.weight')).toBe(key('lm_head.weight'));
    expect(key('embed.weight')).toBe(key('reshaped_view')); // same bytes, same storage: a valid dedupe
    expect(key('rows_2_to_5')).not.toBe(key('embed.weight'));
    expect(key('transposed')).not.toBe(key('embed.weight'));
    expect(pt.tensors.find((t) => t.name === 'transposed')!.extra?.contiguous).toBe(false);
  });

  it('checkpoint_with_optimizer.pt: candidate keys, default selection and explicit keys', async () => {
    const file = resolve(GEN, 'checkpoint_with_optimizer.pt');
    const want = manifest.files['checkpoint_with_optimizer.pt']!.tensors;
    const pt = await open(file);
    expect(pt.stateDictKeys).toEqual(['model', 'optimizer', 'nested']);
    expect(pt.selectedKey).toBe('model');
    expect(pt.tensors.map((t) => t.name)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    await checkTensors(pt, want, (n) => (n.startsWith('model.') ? n.slice(6) : undefined));
    const opt = await open(file, 'optimizer');
    expect(opt.selectedKey).toBe('optimizer');
    expect(opt.tensors.map((t) => t.name)).toEqual(['state.0.momentum_buffer', 'state.1.momentum_buffer', 'state.2.momentum_buffer', 'state.3.momentum_buffer']);
    await checkTensors(opt, want, (n) => (n.startsWith('optimizer.') ? n.slice(10) : undefined));
    const nested = await open(file, 'nested.a');
    expect(nested.tensors.map((t) => t.name)).toEqual(['b']);
    await checkTensors(nested, want, (n) => (n === 'nested.a.b' ? 'b' : undefined));
    // The tree summarises the non-tensor parts too.
    const tree = pt.tree as Record<string, unknown>;
    expect(tree.model).toMatchObject({ '0.weight': { tensor: 'float32[8,4]' } });
    await expect(open(file, 'no_such_key')).rejects.toMatchObject({ code: 'E_USAGE', message: expect.stringContaining("'model'") });
    await expect(open(file, 'model.nope')).rejects.toMatchObject({ code: 'E_USAGE', message: expect.stringContaining("'0.weight'") });
  });

  it('full_module.pt: placeholders are reported and parameters listed under state_dict names', async () => {
    const pt = await open(resolve(GEN, 'full_module.pt'));
    expect(pt.unknownGlobals).toEqual(['torch.nn.modules.activation.ReLU', 'torch.nn.modules.container.Sequential', 'torch.nn.modules.linear.Linear']);
    expect(pt.diagnostics.map((d) => d.code)).toContain('PT_PLACEHOLDERS');
    expect(pt.tensors.map((t) => t.name)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    await checkTensors(pt, manifest.files['full_module.pt']!.tensors, (n) => n.replace(/^<module>\./, ''));
    expect(pt.tree).toMatchObject({ global: 'torch.nn.modules.container.Sequential' });
    expect(pt.stateDictKeys).toEqual([]);
  });

  it('tiny_mlp_torchscript.pt: detected as TorchScript, tensors from the placeholders\' attributes', async () => {
    const pt = await open(resolve(GEN, 'tiny_mlp_torchscript.pt'));
    expect(pt.format).toBe('torchscript');
    expect(pt.diagnostics.map((d) => d.code)).toContain('PT_TORCHSCRIPT');
    expect(pt.unknownGlobals.every((g) => g.startsWith('__torch__.'))).toBe(true);
    expect(pt.unknownGlobals.length).toBeGreaterThanOrEqual(3);
    expect(pt.tensors.map((t) => t.name).sort()).toEqual(['0.bias', '0.weight', '2.bias', '2.weight']);
    await checkTensors(pt, manifest.files['tiny_mlp_torchscript.pt']!.tensors);
  });

  it('quantized.pt: int repr bytes, per-tensor and per-channel parameters', async () => {
    const pt = await open(resolve(GEN, 'quantized.pt'));
    const pc = pt.tensors.find((t) => t.name === 'qint8_per_channel')!;
    expect(pc.extra?.axis).toBe(0);
    expect((pc.extra?.scales as number[]).length).toBe(3);
    expect((pc.extra?.zeroPoints as number[]).length).toBe(3);
    // Cross-check the parameters with torch itself through the dequantized SHA-256.
    const want = manifest.files['quantized.pt']!.tensors as Record<string, ManifestTensor & { dequant_sha256: string }>;
    for (const t of pt.tensors) {
      const q = await t.load();
      const f = new Float32Array(q.length);
      for (let i = 0; i < q.length; i++) {
        const v = t.dtype === 'int8' ? (q[i]! << 24) >> 24 : q[i]!;
        const c = Math.floor(i / (t.shape.length > 1 ? t.shape[1]! : q.length));
        // torch dequantizes per-tensor in float32 and per-channel in double, then rounds to float32.
        if (t.extra?.scale !== undefined) f[i] = Math.fround(v - (t.extra.zeroPoint as number)) * Math.fround(t.extra.scale as number);
        else f[i] = (v - (t.extra!.zeroPoints as number[])[c]!) * (t.extra!.scales as number[])[c]!;
      }
      expect(sha(new Uint8Array(f.buffer)), t.name).toBe(want[t.name]!.dequant_sha256);
    }
  });

  it('load() of a contiguous tensor is exactly one read; a view is one span read', async () => {
    const bytes = readFileSync(resolve(GEN, 'shared_views.pt'));
    const src = new CountingSource(new MemorySource(new Uint8Array(bytes)));
    const pt = await readPytorch(src);
    for (const name of ['embed.weight', 'rows_2_to_5', 'transposed', 'expanded', 'every_other_col']) {
      const before = src.reads;
      await pt.tensors.find((t) => t.name === name)!.load();
      expect(src.reads - before, name).toBe(1);
    }
    const big = new CountingSource(new MemorySource(new Uint8Array(readFileSync(resolve(GEN, 'mobilenet_v2_fp16.pt')))));
    await readPytorch(big);
    // Opening reads the index (and, batched with their headers, some small storages): far less than the 7 MB file.
    expect(big.bytesRead).toBeLessThan(big.size / 10);
  });

  it('detectPytorch', () => {
    expect(detectPytorch(readFileSync(resolve(GEN, 'tiny_mlp.pt')).subarray(0, 16))).toBe('pytorch-zip');
    expect(detectPytorch(readFileSync(resolve(GEN, 'tiny_mlp_legacy.pt')).subarray(0, 16))).toBe('pytorch-legacy');
    expect(detectPytorch(new Uint8Array([0x80, 0x02, 0x7d, 0x71, 0x00]))).toBeUndefined();
    expect(detectPytorch(new Uint8Array(0))).toBeUndefined();
  });
});
