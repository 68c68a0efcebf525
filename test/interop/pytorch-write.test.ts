/**
 * Interop for the PyTorch writer against the system torch 1.13 (`/usr/bin/python3`):
 *  - files we write load with `torch.load(weights_only=True)`, every tensor bit-identical
 *    (SHA-256 of the raw bytes on both sides), same dtype and shape, tied tensors share data_ptr;
 *    the same for a forced-zip64 file; Python's zipfile verifies every CRC;
 *  - torch's own files in the corpus (dtypes.pt, mobilenet_v2_fp16.pt, tiny_mlp.pt) are reproduced
 *    byte for byte from their tensors;
 *  - tiny_mlp written from the safetensors twin in our default layout loads as the same tensors;
 *  - corpus files (zip and legacy) read with our reader and written back load in torch with the
 *    SHA-256 per tensor that the corpus manifest records, and tied weights stay tied.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DType } from '../../src/core/dtype.js';
import { readPytorch } from '../../src/formats/pytorch/read.js';
import { writePytorch, type WritePytorchOptions } from '../../src/formats/pytorch/write.js';
import { inMemoryTensor, type LazyTensor } from '../../src/formats/weights.js';
import { MemorySink } from '../../src/io/source.js';
import { FileSource } from '../../src/platform/node.js';
import { runPython } from '../kernels/helpers.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const tmp = mkdtempSync(join(tmpdir(), 'pt-write-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Loads each file with weights_only=True and reports, per tensor, what torch sees. */
const VERIFY_PY = `
import sys, json, hashlib, zipfile, torch
out = {}
for path in sys.argv[1:]:
    bad = zipfile.ZipFile(path).testzip()
    sd = torch.load(path, weights_only=True)
    ts = {}
    for k, t in sd.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        ts[k] = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape),
                 'sha': hashlib.sha256(raw).hexdigest(), 'ptr': t.storage().data_ptr(),
                 'offset': t.storage_offset(), 'stride': list(t.stride()), 'grad': t.requires_grad}
    out[path] = {'type': type(sd).__name__, 'keys': list(sd.keys()), 'tensors': ts, 'crc_bad': bad}
print(json.dumps(out))
`;

/** Dumps each torch file's tensors to <out>/<name>.bin as [u64 header length][JSON header][raw bytes]. */
const DUMP_PY = `
import sys, os, json, struct, torch
out = sys.argv[1]
for src in sys.argv[2:]:
    sd = torch.load(src, weights_only=True)
    meta, blobs, off = [], [], 0
    for k, t in sd.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        meta.append({'name': k, 'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape), 'begin': off, 'end': off + len(raw)})
        blobs.append(raw); off += len(raw)
    md = getattr(sd, '_metadata', None)
    head = json.dumps({'tensors': meta, 'metadata': None if md is None else [[k, v] for k, v in md.items()]}).encode()
    with open(os.path.join(out, os.path.basename(src) + '.bin'), 'wb') as f:
        f.write(struct.pack('<Q', len(head)) + head + b''.join(blobs))
`;

interface Seen {
  type: string;
  keys: string[];
  tensors: Record<string, { dtype: string; shape: number[]; sha: string; ptr: number; offset: number; stride: number[]; grad: boolean }>;
  crc_bad: string | null;
}

function verify(paths: string[]): Record<string, Seen> {
  return JSON.parse(Buffer.from(runPython(VERIFY_PY, paths)).toString('utf8')) as Record<string, Seen>;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function writeFile(name: string, tensors: LazyTensor[], opts: WritePytorchOptions = {}): Promise<{ path: string; bytes: Uint8Array; storages: number }> {
  const sink = new MemorySink();
  const r = await writePytorch({ tensors }, sink, opts);
  const bytes = sink.bytes();
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return { path, bytes, storages: r.storages };
}

/** Deterministic bytes (xorshift), so failures reproduce. */
function pseudoBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Every dtype of torch 1.13 that our dtype table maps, with edge values, shapes and a tie. */
function allDtypeTensors(): LazyTensor[] {
  const f32Specials = new Float32Array([0, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1.401298464324817e-45, -1.5, 1e-40]);
  const f64Specials = new Float64Array([0, -0, Infinity, -Infinity, NaN, Number.MAX_VALUE, Number.MIN_VALUE, -2.5]);
  // float16 / bfloat16 bit patterns: ±0, ±inf, NaN, max, smallest subnormal, 1.0.
  const f16Bits = new Uint16Array([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7bff, 0x0001, 0x3c00]);
  const bf16Bits = new Uint16Array([0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f7f, 0x0001, 0x3f80]);
  const i64 = new BigInt64Array([0n, -1n, 9223372036854775807n, -9223372036854775808n, 42n, -42n]);
  const t = (name: string, dtype: DType, shape: number[], data: Uint8Array, key?: string): LazyTensor =>
    inMemoryTensor({ name, dtype, shape, data }, key);
  const tied = pseudoBytes(4 * 12, 7);
  return [
    t('f32_specials', 'float32', [9], bytesOf(f32Specials)),
    t('f64_specials', 'float64', [2, 4], bytesOf(f64Specials)),
    t('f16_specials', 'float16', [8], bytesOf(f16Bits)),
    t('bf16_specials', 'bfloat16', [2, 2, 2], bytesOf(bf16Bits)),
    t('i8', 'int8', [2, 128], Uint8Array.from({ length: 256 }, (_, i) => i)),
    t('u8', 'uint8', [256], Uint8Array.from({ length: 256 }, (_, i) => 255 - i)),
    t('i16', 'int16', [3], bytesOf(new Int16Array([-32768, 32767, -1]))),
    t('i32', 'int32', [3], bytesOf(new Int32Array([-2147483648, 2147483647, 0]))),
    t('i64', 'int64', [6], bytesOf(i64)),
    t('bool', 'bool', [2, 3], Uint8Array.from([1, 0, 0, 1, 1, 0])),
    t('c64', 'complex64', [2], bytesOf(new Float32Array([1, -2, NaN, Infinity]))),
    t('c128', 'complex128', [1, 2], bytesOf(new Float64Array([0.5, -0.25, -0, 1e300]))),
    t('scalar_f32', 'float32', [], bytesOf(new Float32Array([3.25]))),
    t('scalar_i64', 'int64', [], bytesOf(new BigInt64Array([-7n]))),
    t('scalar_bool', 'bool', [], Uint8Array.from([1])),
    t('empty_0x3', 'float32', [0, 3], new Uint8Array(0)),
    t('empty_2x0', 'int64', [2, 0], new Uint8Array(0)),
    t('rank5', 'float16', [1, 2, 1, 3, 2], pseudoBytes(24, 3)),
    t('big_1mb', 'float32', [512, 512], pseudoBytes(1 << 20, 11)),
    t('embed.weight', 'float32', [3, 4], tied, 'shared'),
    t('lm_head.weight', 'float32', [3, 4], tied.slice(), 'shared'),
    // Same key, different bytes (two views of one source storage): must not be tied.
    t('view_a', 'float32', [2], pseudoBytes(8, 21), 'views'),
    t('view_b', 'float32', [2], pseudoBytes(8, 22), 'views'),
    // Enough tensors to push the pickle memo past 255 (LONG_BINPUT / LONG_BINGET paths).
    ...Array.from({ length: 40 }, (_, i) => t(`many.${i}`, 'int32', [i % 4 + 1], pseudoBytes(4 * (i % 4 + 1), 100 + i))),
  ];
}

async function expectLoadsIdentically(seen: Seen, tensors: LazyTensor[]): Promise<void> {
  expect(seen.type).toBe('OrderedDict');
  expect(seen.crc_bad).toBeNull();
  expect(seen.keys).toEqual(tensors.map((t) => t.name));
  for (const t of tensors) {
    const s = seen.tensors[t.name]!;
    expect(s.dtype, t.name).toBe(t.dtype);
    expect(s.shape, t.name).toEqual(t.shape);
    expect(s.sha, t.name).toBe(sha(await t.load()));
    expect(s.offset).toBe(0);
    expect(s.grad).toBe(false);
  }
}

describe('torch.load(weights_only=True) of files we write', () => {
  it('every dtype, specials, 0-d, empty, 1 MB, ties — plain and forced zip64, with zip CRCs verified by zipfile', async () => {
    const tensors = allDtypeTensors();
    const plain = await writeFile('all.pt', tensors);
    const z64 = await writeFile('all64.pt', tensors, { zip64: true, archiveName: 'all64' });
    // 63 tensors, one tie: 62 storages.
    expect(plain.storages).toBe(tensors.length - 1);
    expect(z64.storages).toBe(tensors.length - 1);
    const seen = verify([plain.path, z64.path]);
    for (const p of [plain.path, z64.path]) {
      const s = seen[p]!;
      await expectLoadsIdentically(s, tensors);
      expect(s.tensors['embed.weight']!.ptr).toBe(s.tensors['lm_head.weight']!.ptr);
      expect(s.tensors['view_a']!.ptr).not.toBe(s.tensors['view_b']!.ptr);
      expect(s.tensors['embed.weight']!.ptr).not.toBe(s.tensors['many.0']!.ptr);
      expect(s.tensors['rank5']!.stride).toEqual([12, 6, 6, 2, 1]);
      expect(s.tensors['empty_2x0']!.stride).toEqual([1, 1]);
    }
  });
});

describe('byte identity with torch 1.13 files', () => {
  const FILES = ['dtypes', 'mobilenet_v2_fp16', 'tiny_mlp'];
  const src = (file: string): string => resolve(CORPUS, 'pytorch/generated', `${file}.pt`);
  let dumped = false;

  function dumpTensors(file: string): { tensors: LazyTensor[]; metadata: [string, Record<string, number>][] | null } {
    if (!dumped) {
      runPython(DUMP_PY, [tmp, ...FILES.map(src)]);
      dumped = true;
    }
    const buf = readFileSync(join(tmp, `${file}.pt.bin`));
    const n = Number(buf.readBigUInt64LE(0));
    const head = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as {
      tensors: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[];
      metadata: [string, Record<string, number>][] | null;
    };
    const base = 8 + n;
    const tensors = head.tensors.map((m) => inMemoryTensor({ name: m.name, dtype: m.dtype, shape: m.shape, data: new Uint8Array(buf.subarray(base + m.begin, base + m.end)) }));
    return { tensors, metadata: head.metadata };
  }

  for (const file of FILES) {
    it(`${file}.pt`, async () => {
      const { tensors, metadata } = dumpTensors(file);
      const opts: WritePytorchOptions = { archiveName: file, byteorder: false };
      if (metadata) opts.metadata = metadata;
      const sink = new MemorySink();
      const r = await writePytorch({ tensors }, sink, opts);
      expect(r.storages).toBe(tensors.length);
      const expected = readFileSync(src(file));
      expect(sink.position).toBe(expected.byteLength);
      expect(Buffer.from(sink.bytes()).equals(expected)).toBe(true);
    });
  }
});

describe('tiny_mlp from safetensors', () => {
  it('loads as the same tensors as torch\'s own tiny_mlp.pt', async () => {
    const b = readFileSync(resolve(CORPUS, 'safetensors/generated/tiny_mlp.safetensors'));
    const n = Number(b.readBigUInt64LE(0));
    const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const tensors = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([name, h]) => inMemoryTensor({ name, dtype: 'float32', shape: h.shape, data: new Uint8Array(b.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1])) }));
    expect(tensors).toHaveLength(4);
    const ours = await writeFile('tiny_mlp_ours.pt', tensors);
    const theirs = resolve(CORPUS, 'pytorch/generated/tiny_mlp.pt');
    const seen = verify([ours.path, theirs]);
    for (const t of tensors) {
      const a = seen[ours.path]!.tensors[t.name]!;
      const e = seen[theirs]!.tensors[t.name]!;
      expect({ ...a, ptr: 0 }).toEqual({ ...e, ptr: 0 });
    }
    await expectLoadsIdentically(seen[ours.path]!, tensors);
  });
});

describe('corpus round trip: readPytorch → writePytorch → torch.load', () => {
  const GENERATED = resolve(CORPUS, 'pytorch/generated');
  const manifest = JSON.parse(readFileSync(join(GENERATED, 'manifest.json'), 'utf8')) as {
    files: Record<string, { tensors: Record<string, { dtype: string; shape: number[]; sha256: string; storage_id: number }> }>;
  };
  const FILES = [
    'tiny_mlp.pt', 'tiny_mlp_legacy.pt', 'tiny_mlp_protocol4.pt', 'dtypes.pt', 'dtypes_legacy.pt',
    'shared_views.pt', 'shared_views_legacy.pt', 'mobilenet_v2_fp16.pt', 'squeezenet1_1_legacy.pt',
  ];

  async function roundTrip(file: string): Promise<{ path: string; storages: number; n: number }> {
    const src = await FileSource.open(join(GENERATED, file));
    try {
      const set = await readPytorch(src);
      const out = await writeFile(`rt_${file}`, set.tensors, { archiveName: file.replace(/\.pt$/, '') });
      return { path: out.path, storages: out.storages, n: set.tensors.length };
    } finally {
      await src.close();
    }
  }

  it(`${FILES.length} files: tensors bit-identical to the manifest, ties kept`, async () => {
    const written = new Map<string, { path: string; storages: number; n: number }>();
    for (const f of FILES) written.set(f, await roundTrip(f));
    const seen = verify([...written.values()].map((w) => w.path));
    let tensors = 0;
    for (const f of FILES) {
      const w = written.get(f)!;
      const s = seen[w.path]!;
      const want = manifest.files[f]!.tensors;
      expect(s.crc_bad, f).toBeNull();
      expect(s.keys, f).toEqual(Object.keys(want));
      for (const [name, m] of Object.entries(want)) {
        const got = s.tensors[name]!;
        expect(got.sha, `${f} ${name}`).toBe(m.sha256);
        expect(got.dtype, `${f} ${name}`).toBe(m.dtype);
        expect(got.shape, `${f} ${name}`).toEqual(m.shape);
        tensors++;
      }
    }
    expect(tensors).toBeGreaterThan(400);
    for (const f of ['shared_views.pt', 'shared_views_legacy.pt']) {
      const t = seen[written.get(f)!.path]!.tensors;
      expect(t['embed.weight']!.ptr, f).toBe(t['lm_head.weight']!.ptr);
    }
  });

  it('refuses quantized tensors with E_UNSUPPORTED naming the tensor', async () => {
    const src = await FileSource.open(join(GENERATED, 'quantized.pt'));
    try {
      const set = await readPytorch(src);
      const e = await writePytorch(set, new MemorySink()).then(() => undefined, (x: unknown) => x as { code: string; tensor?: string });
      expect(e?.code).toBe('E_UNSUPPORTED');
      expect(set.tensors.map((t) => t.name)).toContain(e?.tensor);
    } finally {
      await src.close();
    }
  });
});
