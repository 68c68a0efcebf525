import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batches, openDataset, type Dataset } from '../../src/data/dataset.js';
import type { Batch, DataIo } from '../../src/data/types.js';
import { MemorySource } from '../../src/io/source.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { typedView } from '../../src/core/tensor.js';
import { inputBatch, loadFixture } from '../../src/bench/accuracy.js';
import { deflateRawSync } from 'node:zlib';
import { inflateCursor } from '../../src/data/cursor.js';
import { rng, runPython } from '../kernels/helpers.js';
import { nodeIo } from './io.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');
const FIXTURE = resolve(import.meta.dirname, '../fixtures/fashion-mnist');

let dir: string;

async function all(ds: Dataset, size: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of batches(ds, size)) out.push(b);
  return out;
}

/** Bitwise equality of float arrays (vitest's deep equality is slow on 100k+ elements). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function concat(bs: Batch[], name: string): Float32Array {
  const parts = bs.map((b) => b.inputs[name]!.data as Float32Array);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** float32 values numpy computes for `expr` (a float32 array), as raw bytes. */
function npF32(path: string, expr = 'a.astype(np.float32)'): Float32Array {
  const b = runPython(`import numpy as np, sys\na = np.load(sys.argv[1])\nsys.stdout.buffer.write(np.ascontiguousarray(${expr}).tobytes())`, [path]);
  return new Float32Array(b.slice().buffer);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ModelsmithError)) throw e;
    return e.code;
  }
  return 'none';
}

/** A DataIo over in-memory files: hostile bytes without touching the disk. */
function memIo(files: Record<string, Uint8Array>): DataIo {
  return {
    async open(p) {
      const b = files[p];
      if (!b) throw new ModelsmithError('E_IO', 'missing', { path: p });
      return new MemorySource(b, p);
    },
    async list(p) {
      if (files[p]) return undefined;
      return Object.keys(files).filter((k) => k.startsWith(`${p}/`)).map((k) => ({ name: k.slice(p.length + 1), directory: false }));
    },
  };
}

function npyBytes(header: string, payload: Uint8Array, version = 1): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let h = header;
  while ((pre + h.length + 1) % 64) h += ' ';
  h += '\n';
  const out = new Uint8Array(pre + h.length + payload.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, h.length, true);
  else dv.setUint32(8, h.length, true);
  for (let i = 0; i < h.length; i++) out[pre + i] = h.charCodeAt(i);
  out.set(payload, pre + h.length);
  return out;
}
const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-data-'));
  // numpy writes every file the readers are checked on.
  runPython(`
import numpy as np, sys, os
from numpy.lib import format as F
d = sys.argv[1]
rng = np.random.default_rng(7)
x = rng.standard_normal((10, 2, 3)).astype(np.float32)
os.makedirs(d + '/folder')
np.save(d + '/folder/a_batch.npy', x[:4])
for i in range(4, 10):
    np.save(d + '/folder/b_%02d.npy' % i, x[i])          # one sample per file (rank 2 = sample rank)
np.save(d + '/folder/labels.npy', np.arange(10, dtype=np.int64) % 3)
os.makedirs(d + '/dtypes')
for name, arr in [('f8', x.astype(np.float64)), ('i8', (x * 10).astype(np.int64)), ('i4', (x * 10).astype(np.int32)),
                  ('u1', (np.abs(x) * 50).astype(np.uint8)), ('b1', x > 0), ('f2', x.astype(np.float16))]:
    os.makedirs(d + '/dtypes/' + name)
    np.save(d + '/dtypes/%s/x.npy' % name, arr)
for v in [(2, 0), (3, 0)]:
    os.makedirs(d + '/v%d' % v[0])
    with open(d + '/v%d/x.npy' % v[0], 'wb') as f:
        F.write_array(f, x, version=v)
np.savez(d + '/stored.npz', x=x, labels=np.arange(10, dtype=np.int32))
np.savez(d + '/two.npz', a=x, b=x * 2)
np.savez_compressed(d + '/deflated.npz', x=x, labels=np.arange(10, dtype=np.uint8))
big = rng.standard_normal((3000, 64)).astype(np.float32)
np.savez_compressed(d + '/big.npz', data=big)
np.save(d + '/big.npy', big)
np.save(d + '/x.npy', x)
np.save(d + '/fortran.npy', np.asfortranarray(x))
np.save(d + '/bigendian.npy', x.astype('>f4'))
np.save(d + '/complex.npy', x.astype(np.complex64))
np.save(d + '/flabels.npy', x[:, 0, 0])
`, [dir]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npy folders', () => {
  it('streams batch files and one-sample files in name order, with labels, across file boundaries', async () => {
    const ds = await openDataset(join(dir, 'folder'), nodeIo, { inputs: [{ name: 'x', dims: ['N', 2, 3] }] });
    expect(ds.kind).toBe('npy');
    expect(ds.sampleCount).toBe(10);
    expect(ds.sampleDims).toEqual({ x: [2, 3] });
    const bs = await all(ds, 3);
    expect(bs.map((b) => b.inputs.x!.dims)).toEqual([[3, 2, 3], [3, 2, 3], [3, 2, 3], [1, 2, 3]]);
    const want = npF32(join(dir, 'x.npy'));
    expect(concat(bs, 'x')).toEqual(want);
    expect(bs.flatMap((b) => [...b.labels!])).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
  });

  it.each(['f8', 'i8', 'i4', 'u1', 'b1', 'f2'])('converts %s to float32 as numpy does', async (name) => {
    const ds = await openDataset(join(dir, 'dtypes', name), nodeIo);
    expect(ds.inputNames).toEqual(['input']);
    expect(concat(await all(ds, 4), 'input')).toEqual(npF32(join(dir, 'dtypes', name, 'x.npy')));
  });

  it.each(['v2', 'v3'])('reads format version %s headers', async (v) => {
    const ds = await openDataset(join(dir, v), nodeIo);
    expect(concat(await all(ds, 10), 'input')).toEqual(npF32(join(dir, 'x.npy')));
  });

  it('maxSamples stops early', async () => {
    const ds = await openDataset(join(dir, 'x.npy'), nodeIo, { maxSamples: 4 });
    const bs = await all(ds, 3);
    expect(bs.map((b) => b.inputs.input!.dims[0])).toEqual([3, 1]);
  });
});

describe('npz', () => {
  it.each(['stored.npz', 'deflated.npz'])('%s: members by name, labels member', async (f) => {
    const ds = await openDataset(join(dir, f), nodeIo);
    expect(ds.kind).toBe('npz');
    expect(ds.inputNames).toEqual(['x']);
    const bs = await all(ds, 4);
    expect(concat(bs, 'x')).toEqual(npF32(join(dir, 'x.npy')));
    expect(bs.flatMap((b) => [...b.labels!])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('several members are several inputs, matched to the declared names', async () => {
    const ds = await openDataset(join(dir, 'two.npz'), nodeIo, { inputs: [{ name: 'b', dims: ['N', 2, 3] }, { name: 'a', dims: ['N', 2, 3] }] });
    expect([...ds.inputNames].sort()).toEqual(['a', 'b']);
    expect(ds.hasLabels).toBe(false);
    const [b] = await all(ds, 10);
    const a = b!.inputs.a!.data as Float32Array;
    expect(b!.inputs.b!.data).toEqual(a.map((v) => v * 2));
    expect(await code(openDataset(join(dir, 'two.npz'), nodeIo, { inputs: [{ name: 'a' }, { name: 'c' }] }))).toBe('E_USAGE');
  });

  it('a deflated member is inflated as batches are drawn (768 KB, batches of 100), renamed to the one model input', async () => {
    const ds = await openDataset(join(dir, 'big.npz'), nodeIo, { inputs: [{ name: 'features', dims: ['N', 64] }] });
    expect(ds.inputNames).toEqual(['features']);
    const bs = await all(ds, 100);
    expect(bs).toHaveLength(30);
    expect(sameBits(concat(bs, 'features'), npF32(join(dir, 'big.npy')))).toBe(true);
  });
});

describe('ONNX .pb and IDX', () => {
  it('test_data_set_N folders (corpus node test): input_0.pb is the first input', async () => {
    const ds = await openDataset(join(CORPUS, 'test_abs'), nodeIo, { inputs: [{ name: 'x', dims: [3, 4, 5] }] });
    expect(ds.kind).toBe('pb');
    const bs = await all(ds, 2);
    const t = tensorFromProtoSync(decodeTensorProto(new Uint8Array(await readFile(join(CORPUS, 'test_abs/test_data_set_0/input_0.pb')))));
    expect(bs.map((b) => b.inputs.x!.dims)).toEqual([[2, 4, 5], [1, 4, 5]]);
    expect(concat(bs, 'x')).toEqual(typedView(t));
  });

  it('an eval-style folder of input_K.pb maps files to the model inputs in order', async () => {
    const src = join(CORPUS, 'test_abs/test_data_set_0');
    const ds = await openDataset(src, nodeIo, { inputs: [{ name: 'x', dims: ['N', 4, 5] }] });
    expect(ds.sampleCount).toBe(3);
  });

  it('IDX images + labels: pixel / 255 reshaped to the model input, as the accuracy bench feeds it', async () => {
    const fx = await loadFixture(FIXTURE);
    const ds = await openDataset(join(FIXTURE, 'test-images.idx3-ubyte'), nodeIo, { inputs: [{ name: 'input', dims: ['N', 1, 28, 28] }], maxSamples: 300 });
    expect(ds.kind).toBe('idx');
    expect(ds.sampleDims).toEqual({ input: [1, 28, 28] });
    const bs = await all(ds, 128);
    expect(bs.map((b) => b.inputs.input!.dims[0])).toEqual([128, 128, 44]);
    const want = inputBatch(fx.subset, 0, 300);
    expect(sameBits(concat(bs, 'input'), new Float32Array(want.data.buffer))).toBe(true);
    expect(bs.flatMap((b) => [...b.labels!])).toEqual([...fx.subset.labels.subarray(0, 300)]);
  });
});

describe('hostile and wrong inputs', () => {
  const good = npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", f32(1, 2));

  it('a well-formed hand-made file reads', async () => {
    const ds = await openDataset('/d', memIo({ '/d/a.npy': good }));
    expect(concat(await all(ds, 2), 'input')).toEqual(Float32Array.of(1, 2));
  });

  it.each([
    ['E_TRUNCATED', good.subarray(0, 8)],
    ['E_TRUNCATED', good.subarray(0, good.byteLength - 1)],
    ['E_TRUNCATED', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999), }", f32(1))],
    ['E_MALFORMED', Uint8Array.from([...good.subarray(0, 5), 0x58, ...good.subarray(6)])],
    ['E_MALFORMED', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }", f32(1, 2))],
    ['E_MALFORMED', npyBytes("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", f32(1, 2))],
    ['E_MALFORMED', npyBytes("{'descr': '<f4', 'shape': (2,), }", f32(1, 2))],
    ['E_MALFORMED', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", f32(1, 2))],
    ['E_MALFORMED', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", f32(1, 2))],
    ['E_UNSUPPORTED', npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", f32(1, 2))],
    ['E_UNSUPPORTED', npyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 1), }", f32(1, 2))],
    ['E_UNSUPPORTED', npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f32(1, 2))],
    ['E_UNSUPPORTED', Uint8Array.from([...good.subarray(0, 6), 4, ...good.subarray(7)])],
    ['E_DTYPE', npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", f32(1, 2))],
    ['E_DTYPE', npyBytes("{'descr': '<U2', 'fortran_order': False, 'shape': (1,), }", f32(1, 2))],
    ['E_LIMIT', (() => { const b = good.slice(); new DataView(b.buffer).setUint16(8, 65535, true); const v2 = npyBytes('{}', new Uint8Array(0), 2); new DataView(v2.buffer).setUint32(8, 2 ** 30, true); return v2; })()],
  ] as [string, Uint8Array][])('%s (case %#)', async (want, bytes) => {
    expect(await code(openDataset('/d', memIo({ '/d/a.npy': bytes })))).toBe(want);
  });

  it('numpy-written files refused with the right code: fortran order, big-endian, complex', async () => {
    expect(await code(openDataset(join(dir, 'fortran.npy'), nodeIo))).toBe('E_UNSUPPORTED');
    expect(await code(openDataset(join(dir, 'bigendian.npy'), nodeIo))).toBe('E_UNSUPPORTED');
    expect(await code(openDataset(join(dir, 'complex.npy'), nodeIo))).toBe('E_DTYPE');
  });

  it('every truncation and every single-byte corruption of an .npy ends in a ModelsmithError or a clean read', async () => {
    for (let n = 0; n < good.byteLength; n++) {
      expect(await code(openDataset('/d', memIo({ '/d/a.npy': good.subarray(0, n) })))).toMatch(/^E_/);
    }
    for (let i = 0; i < good.byteLength; i++) {
      for (const v of [0, 0x27, 0x7b, 0xff]) {
        const b = good.slice();
        b[i] = v;
        const c = await code((async () => { const ds = await openDataset('/d', memIo({ '/d/a.npy': b })); await all(ds, 1); })());
        expect(c === 'none' || c.startsWith('E_'), `byte ${i} = ${v}: ${c}`).toBe(true);
      }
    }
  });

  it('npz: corrupt deflate stream, truncated archive, no members, unknown method, short member', async () => {
    const z = new Uint8Array(await readFile(join(dir, 'deflated.npz')));
    // Find the first member's data (local header: name and extra lengths at 26/28).
    const dv = new DataView(z.buffer, z.byteOffset);
    const start = 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    const corrupt = z.slice();
    corrupt.fill(0xff, start, start + 40);
    const run = async (b: Uint8Array): Promise<string> => code((async () => all(await openDataset('/d.npz', memIo({ '/d.npz': b })), 4))());
    expect(await run(corrupt)).toBe('E_MALFORMED');
    expect(await run(z.subarray(0, z.byteLength - 30))).toBe('E_TRUNCATED');
    const method = z.slice();
    new DataView(method.buffer).setUint16(8, 12, true); // local header method: not read; patch the central copy too
    const cd = findCentral(method);
    new DataView(method.buffer).setUint16(cd + 10, 12, true);
    expect(await run(method)).toBe('E_UNSUPPORTED');
    const bigger = z.slice();
    new DataView(bigger.buffer).setUint32(cd + 24, dv.getUint32(cd + 24, true) + 1000, true); // declares more than it inflates to
    expect(await run(bigger)).toBe('E_MALFORMED'); // the .npy header no longer matches the member size
    const bomb = z.slice();
    new DataView(bomb.buffer).setUint32(cd + 24, 2 ** 31, true);
    expect(await run(bomb)).toBe('E_MALFORMED');
    const noNpy = z.slice();
    const nl = dv.getUint16(cd + 28, true);
    noNpy[cd + 46 + nl - 1] = 0x78; // x.npy → x.npx in the central directory
    const rest = findCentral(noNpy, cd + 46);
    noNpy[rest + 46 + dv.getUint16(rest + 28, true) - 1] = 0x78;
    expect(await run(noNpy)).toBe('E_MALFORMED');
  });

  it('inflate cursor: a stream shorter than declared is E_TRUNCATED, longer is E_MALFORMED', async () => {
    const plain = new Uint8Array(5000).map((_, i) => i % 251);
    const packed = new Uint8Array(deflateRawSync(plain));
    const src = new MemorySource(packed, 'm');
    const short = inflateCursor(src, 0, packed.byteLength, 6000, 'm');
    expect(await short.next(4000)).toEqual(plain.subarray(0, 4000));
    expect(await code(short.next(1500))).toBe('E_TRUNCATED');
    await short.close();
    const long = inflateCursor(src, 0, packed.byteLength, 100, 'm');
    expect(await code(long.next(100))).toBe('E_MALFORMED');
    await long.close();
    const past = inflateCursor(src, 0, packed.byteLength, 5000, 'm');
    expect(await code(past.next(5001))).toBe('E_TRUNCATED');
    await past.close();
  });

  it('fuzz: truncations and random byte corruptions of both .npz kinds end in a ModelsmithError or a clean read', async () => {
    const r = rng(99);
    for (const f of ['stored.npz', 'deflated.npz']) {
      const z = new Uint8Array(await readFile(join(dir, f)));
      const cases: Uint8Array[] = [];
      for (let n = 0; n < z.byteLength; n += 13) cases.push(z.subarray(0, n));
      for (let k = 0; k < 150; k++) {
        const b = z.slice();
        for (let j = 0; j < 3; j++) b[Math.floor(r() * b.byteLength)] = Math.floor(r() * 256);
        cases.push(b);
      }
      for (const b of cases) {
        const c = await code((async () => all(await openDataset('/d.npz', memIo({ '/d.npz': b })), 3))());
        expect(c === 'none' || c.startsWith('E_'), c).toBe(true);
      }
    }
  });

  it('labels: float labels, wrong count, values beyond int32', async () => {
    const x = npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", f32(1, 2));
    const lab = (descr: string, shape: string, payload: Uint8Array): Record<string, Uint8Array> => ({ '/d/a.npy': x, '/d/labels.npy': npyBytes(`{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`, payload) });
    expect(await code(openDataset('/d', memIo(lab('<f4', '(2,)', f32(0, 1)))))).toBe('E_DTYPE');
    expect(await code(openDataset('/d', memIo(lab('<i4', '(3,)', new Uint8Array(12)))))).toBe('E_USAGE');
    const huge = new Uint8Array(BigInt64Array.of(1n, 2n ** 40n).buffer);
    expect(await code((async () => all(await openDataset('/d', memIo(lab('<i8', '(2,)', huge))), 2))())).toBe('E_OUT_OF_RANGE');
  });

  it('pb garbage, IDX truncated, shapes that fit no input, bad batch size, empty folder', async () => {
    expect(await code(openDataset('/d', memIo({ '/d/input_0.pb': Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0x0f) })))).toMatch(/E_MALFORMED|E_TRUNCATED/);
    const idx = new Uint8Array(await readFile(join(FIXTURE, 'test-images.idx3-ubyte')));
    const openIdx = (b: Uint8Array) => openDataset('/i.idx3-ubyte', memIo({ '/i.idx3-ubyte': b }));
    expect(await code(openIdx(idx.subarray(0, 5000)))).toBe('E_TRUNCATED');
    expect(await code(openIdx(idx.subarray(0, 10)))).toBe('E_TRUNCATED');
    expect(await code(openIdx(Uint8Array.from([...idx.subarray(0, 4000), 0])))).toBe('E_TRUNCATED');
    const trailing = new Uint8Array(idx.byteLength + 3);
    trailing.set(idx);
    expect(await code(openIdx(trailing))).toBe('E_MALFORMED');
    const floatIdx = idx.slice();
    floatIdx[2] = 0x0d;
    expect(await code(openIdx(floatIdx))).toBe('E_UNSUPPORTED');
    const hugeDims = idx.slice(0, 16);
    new DataView(hugeDims.buffer).setUint32(4, 0xffffffff, false);
    expect(await code(openIdx(hugeDims))).toBe('E_TRUNCATED');
    // A .pb larger than the whole-file cap is refused before any read.
    const huge: DataIo = { open: async (p) => ({ name: p, size: 2 ** 31, read: () => { throw new Error('read'); }, readInto: () => { throw new Error('read'); } }), list: async () => undefined };
    expect(await code(openDataset('/x.pb', huge))).toBe('E_LIMIT');
    // A batch larger than the in-memory cap is refused, not allocated.
    const wide = npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 300000000), }", new Uint8Array(0));
    const wideIo: DataIo = { open: async (p) => ({ name: p, size: wide.byteLength + 300000000, read: async (o, n) => (o + n <= wide.byteLength ? wide.subarray(o, o + n) : new Uint8Array(n)), readInto: async () => undefined }), list: async () => undefined };
    const wds = await openDataset('/w.npy', wideIo);
    expect(await code(all(wds, 1))).toBe('E_LIMIT');
    expect(await code(openDataset(join(dir, 'x.npy'), nodeIo, { inputs: [{ name: 'input', dims: ['N', 7] }] }))).toBe('E_USAGE');
    const ds = await openDataset(join(dir, 'x.npy'), nodeIo);
    expect(await code(all(ds, 0))).toBe('E_USAGE');
    expect(await code(openDataset('/empty', memIo({ '/other': good })))).toBe('E_USAGE');
  });
});

/** Offset of the first central directory record at or after `from`. */
function findCentral(z: Uint8Array, from = 0): number {
  const dv = new DataView(z.buffer, z.byteOffset);
  for (let i = Math.max(from, 0); i + 4 <= z.byteLength; i++) if (dv.getUint32(i, true) === 0x02014b50) return i;
  throw new Error('no central directory');
}

// Keep the unused-import checker quiet for helpers only some runs use.
void mkdir; void writeFile;
