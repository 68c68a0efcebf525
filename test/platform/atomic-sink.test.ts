/**
 * AtomicFileSink and the savers built on it, with and without fsync: the `sync: false` option skips
 * only the fsync — the temp file + rename, the refusal to replace an input and the clean-up on
 * failure stay. fsync calls are observed by spying on FileHandle.prototype.sync (the one call
 * AtomicFileSink.commit makes), so the tests see what really reaches the file system.
 */
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../src/core/errors.js';
import { AtomicFileSink } from '../../src/platform/node.js';
import { openModelFile, saveOnnxFile } from '../../src/platform/open.js';
import { openWeights, saveWeights } from '../../src/platform/weights-io.js';
import { inMemoryTensor, type LazyTensor, type WeightSet } from '../../src/formats/weights.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const ONNX_MODEL = join(CORPUS, 'onnx/models/ultra-light-face/version-slim-320.onnx');

let proto: { sync: () => Promise<void> };
let syncSpy: MockInstance;
let dir: string;

beforeAll(async () => {
  // FileHandle is not exported by node:fs/promises; its prototype is reachable from any handle.
  const fh = await open(ONNX_MODEL, 'r');
  proto = Object.getPrototypeOf(fh) as typeof proto;
  await fh.close();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-atomic-'));
  syncSpy = vi.spyOn(proto, 'sync');
});

afterEach(async () => {
  syncSpy.mockRestore();
  await rm(dir, { recursive: true, force: true });
});

const tempFiles = async (d = dir) => (await readdir(d)).filter((f) => f.includes('.tmp-'));

function f32Tensor(name: string, n: number, seed: number): LazyTensor {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 1000 + i);
  return inMemoryTensor({ name, dtype: 'float32', shape: [n], data: new Uint8Array(a.buffer) });
}

function weightSet(tensors: LazyTensor[]): WeightSet {
  return { format: 'test', tensors, diagnostics: [] };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<ModelsmithError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(ModelsmithError);
  expect((e as ModelsmithError).code).toBe(code);
  return e as ModelsmithError;
}

describe('AtomicFileSink', () => {
  for (const sync of [true, false]) {
    it(`sync ${sync}: bytes go to a temp file, appear under the name only on commit, fsync ${sync ? 'once before' : 'never'}`, async () => {
      const target = join(dir, 'out.bin');
      let existedAtSync: boolean | undefined;
      syncSpy.mockImplementation(async function (this: unknown) {
        existedAtSync = existsSync(target);
      });
      const sink = await AtomicFileSink.create(target, [], { sync });
      expect(sink.sync).toBe(sync);
      await sink.write(new Uint8Array([1, 2, 3]));
      await sink.write(new Uint8Array(70_000).fill(7));
      // Before commit only the temp file exists, next to the target (same file system: rename is atomic).
      expect(existsSync(target)).toBe(false);
      expect(await tempFiles()).toEqual([sink.tempPath.slice(dir.length + 1)]);
      await sink.commit();
      expect(syncSpy).toHaveBeenCalledTimes(sync ? 1 : 0);
      if (sync) expect(existedAtSync).toBe(false);
      const got = await readFile(target);
      expect(got.byteLength).toBe(70_003);
      expect([...got.subarray(0, 4)]).toEqual([1, 2, 3, 7]);
      expect(sink.position).toBe(70_003);
      expect(await tempFiles()).toEqual([]);
    });
  }

  it('defaults to syncing', async () => {
    const sink = await AtomicFileSink.create(join(dir, 'd.bin'));
    await sink.write(new Uint8Array(10));
    await sink.commit();
    expect(syncSpy).toHaveBeenCalledTimes(1);
  });

  for (const sync of [true, false]) {
    it(`sync ${sync}: refuses an input as the target (by path and by hard link), creating nothing`, async () => {
      const input = join(dir, 'in.bin');
      await writeFile(input, 'precious');
      const e = await expectCode(AtomicFileSink.create(input, [input], { sync }), ErrorCodes.IO);
      expect(e.message).toContain('refusing to overwrite the input');
      expect(e.path).toBe(input);
      const alias = join(dir, 'alias.bin');
      await link(input, alias);
      await expectCode(AtomicFileSink.create(alias, [input], { sync }), ErrorCodes.IO);
      expect(await readFile(input, 'utf8')).toBe('precious');
      expect(await tempFiles()).toEqual([]);
    });
  }

  it('abort removes the temp file and never creates the target', async () => {
    const target = join(dir, 'a.bin');
    const sink = await AtomicFileSink.create(target, [], { sync: false });
    await sink.write(new Uint8Array(1000));
    await sink.abort();
    expect(existsSync(target)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a target in a missing folder is E_IO naming the path', async () => {
    const target = join(dir, 'no/such/dir/x.bin');
    const e = await expectCode(AtomicFileSink.create(target, [], { sync: false }), ErrorCodes.IO);
    expect(e.path).toBe(target);
  });

  for (const sync of [true, false]) {
    it(`sync ${sync}: commitAll renames a set only once all are written, and undoes it if a rename fails`, async () => {
      const a = await AtomicFileSink.create(join(dir, 'a.data'), [], { sync });
      // A non-empty folder where the second output should go: its rename fails (EISDIR/ENOTEMPTY).
      await mkdir(join(dir, 'b.onnx', 'x'), { recursive: true });
      const b = await AtomicFileSink.create(join(dir, 'b.onnx'), [], { sync });
      await a.write(new Uint8Array(100));
      await b.write(new Uint8Array(10));
      const e = await expectCode(AtomicFileSink.commitAll([a, b]), ErrorCodes.IO);
      expect(e.path).toBe(join(dir, 'b.onnx'));
      expect(syncSpy).toHaveBeenCalledTimes(sync ? 2 : 0);
      await a.abort();
      await b.abort();
      expect((await readdir(dir)).sort()).toEqual(['b.onnx']);
      expect(await readdir(join(dir, 'b.onnx'))).toEqual(['x']);
    });
  }

  it('commitAll publishes every file of the set', async () => {
    const sinks = await Promise.all(['x.bin', 'y.bin'].map((n) => AtomicFileSink.create(join(dir, n), [], { sync: false })));
    for (const s of sinks) await s.write(new Uint8Array([5]));
    await AtomicFileSink.commitAll(sinks);
    expect((await readdir(dir)).sort()).toEqual(['x.bin', 'y.bin']);
  });

  it('two sinks for one target in the same millisecond get distinct temp files', async () => {
    const target = join(dir, 'same.bin');
    const [a, b] = await Promise.all([AtomicFileSink.create(target, [], { sync: false }), AtomicFileSink.create(target, [], { sync: false })]);
    expect(a.tempPath).not.toBe(b.tempPath);
    await a.abort();
    await b.abort();
  });
});

describe('saveOnnxFile / saveWeights with sync: false', () => {
  it('ONNX model + external data: no fsync, both files renamed, model reads back identically', async () => {
    const out = join(dir, 'm.onnx');
    const src = await openModelFile(ONNX_MODEL);
    try {
      const stats = await saveOnnxFile(src.model, out, { externalData: { threshold: 1024 }, sync: false });
      expect(syncSpy).not.toHaveBeenCalled();
      expect(stats.files).toEqual([out, `${out}.data`]);
      expect(stats.externalTensors).toBeGreaterThan(10);
    } finally {
      await src.close();
    }
    expect((await readdir(dir)).sort()).toEqual(['m.onnx', 'm.onnx.data']);
    const a = await openWeights(ONNX_MODEL);
    const b = await openWeights(out);
    try {
      expect(b.set.tensors.map((t) => t.name)).toEqual(a.set.tensors.map((t) => t.name));
      for (const [i, t] of a.set.tensors.entries()) expect(Buffer.from(await b.set.tensors[i]!.load()).equals(Buffer.from(await t.load()))).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('ONNX model, default: the model and its data file are both fsynced', async () => {
    const src = await openModelFile(ONNX_MODEL);
    try {
      await saveOnnxFile(src.model, join(dir, 'm.onnx'), { externalData: { threshold: 1024 } });
    } finally {
      await src.close();
    }
    expect(syncSpy).toHaveBeenCalledTimes(2);
  });

  it('ONNX: refuses to overwrite the input with sync: false (E_IO), input untouched', async () => {
    const copy = join(dir, 'in.onnx');
    await writeFile(copy, await readFile(ONNX_MODEL));
    const before = await readFile(copy);
    const src = await openModelFile(copy);
    try {
      await expectCode(saveOnnxFile(src.model, copy, { inputs: [copy], sync: false }), ErrorCodes.IO);
    } finally {
      await src.close();
    }
    expect((await readFile(copy)).equals(before)).toBe(true);
    expect(await readdir(dir)).toEqual(['in.onnx']);
  });

  for (const sync of [true, false]) {
    it(`sharded safetensors, sync ${sync}: ${sync ? 'every shard fsynced' : 'no fsync'}, shards + index read back`, async () => {
      const tensors = [f32Tensor('a', 3000, 1), f32Tensor('b', 3000, 2), f32Tensor('c', 3000, 3)];
      const out = join(dir, 'w', 'model.safetensors');
      const r = await saveWeights(weightSet(tensors), out, { shardSize: 16_000, sync });
      expect(r.files.length).toBe(4); // 3 shards + index
      expect(syncSpy).toHaveBeenCalledTimes(sync ? 4 : 0);
      expect(await tempFiles(join(dir, 'w'))).toEqual([]);
      const back = await openWeights(join(dir, 'w', 'model.safetensors.index.json'));
      try {
        expect(back.set.tensors.map((t) => t.name).sort()).toEqual(['a', 'b', 'c']);
        const b = back.set.tensors.find((t) => t.name === 'b')!;
        expect(Buffer.from(await b.load()).equals(Buffer.from(await tensors[1]!.load()))).toBe(true);
      } finally {
        await back.close();
      }
    });
  }

  it('a tensor failing to load mid-way leaves no shard, no index and no temp file (sync: false)', async () => {
    const bad: LazyTensor = { ...f32Tensor('b', 3000, 2), load: async () => { throw new ModelsmithError(ErrorCodes.TRUNCATED, 'source shrank', { tensor: 'b' }); } };
    const out = join(dir, 'w', 'model.safetensors');
    await expectCode(saveWeights(weightSet([f32Tensor('a', 3000, 1), bad, f32Tensor('c', 3000, 3)]), out, { shardSize: 16_000, sync: false }), ErrorCodes.TRUNCATED);
    expect(await readdir(join(dir, 'w'))).toEqual([]);
  });

  it('single-file .pt with sync: false: no fsync, loads back; refuses its input as output', async () => {
    const pt = join(CORPUS, 'pytorch/generated/tiny_mlp.pt');
    const src = await openWeights(pt);
    try {
      const out = join(dir, 'copy.pt');
      const r = await saveWeights(src.set, out, { inputs: [pt], sync: false });
      expect(r.files).toEqual([out]);
      expect(syncSpy).not.toHaveBeenCalled();
      const back = await openWeights(out);
      try {
        expect(back.set.tensors.map((t) => `${t.name}:${t.dtype}[${t.shape.join(',')}]`)).toEqual(['0.weight:float32[8,4]', '0.bias:float32[8]', '2.weight:float32[3,8]', '2.bias:float32[3]']);
      } finally {
        await back.close();
      }
      await expectCode(saveWeights(src.set, pt, { inputs: [pt], sync: false }), ErrorCodes.IO);
    } finally {
      await src.close();
    }
    expect(await readdir(dir)).toEqual(['copy.pt']);
  });
});
