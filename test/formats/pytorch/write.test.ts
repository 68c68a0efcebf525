/**
 * PyTorch writer without Python: CRC-32, pickle integers, the zip layout torch writes (64-byte
 * aligned data, data descriptors, zip64 forms), streaming behaviour, tied storages, every error
 * code, and byte identity with the torch 1.13 file in the corpus.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../../../src/formats/crc32.js';
import { encodeLong, pickleStateDict } from '../../../src/formats/pytorch/pickle-write.js';
import { contiguousStrides, writePytorch } from '../../../src/formats/pytorch/write.js';
import { ZipWriter } from '../../../src/formats/pytorch/zip-write.js';
import { inMemoryTensor, type LazyTensor } from '../../../src/formats/weights.js';
import { MemorySink, type ByteSink } from '../../../src/io/source.js';
import type { DType } from '../../../src/core/dtype.js';

const CORPUS = resolve(import.meta.dirname, '../../../../shared/corpus');

// ---------- helpers ----------

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function lazy(name: string, dtype: DType, shape: number[], data: Uint8Array, storageKey?: string): LazyTensor {
  return inMemoryTensor({ name, dtype, shape, data }, storageKey);
}

async function write(tensors: LazyTensor[], opts: Parameters<typeof writePytorch>[2] = {}): Promise<{ bytes: Uint8Array; storages: number }> {
  const sink = new MemorySink();
  const r = await writePytorch({ tensors }, sink, opts);
  expect(r.bytes).toBe(sink.position);
  return { bytes: sink.bytes(), storages: r.storages };
}

interface LocalEntry {
  name: string;
  headerOffset: number;
  dataOffset: number;
  size: number;
  crc: number;
  zip64: boolean;
  flags: number;
  fbPad: number;
}

/**
 * Walks the archive front to back the way a streaming reader would: local header, data (size taken
 * from the central directory), data descriptor. Checks every signature on the way.
 */
function parseZip(bytes: Uint8Array): { entries: LocalEntry[]; central: { name: string; offset: number; size: number; crc: number }[]; eocdCount: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  // End records first: EOCD (22 bytes, no comment), locator (20) right before it, EOCD64 at the locator's offset.
  const eocd = bytes.byteLength - 22;
  expect(v.getUint32(eocd, true)).toBe(0x06054b50);
  const loc = eocd - 20;
  expect(v.getUint32(loc, true)).toBe(0x07064b50);
  const e64 = Number(v.getBigUint64(loc + 8, true));
  expect(v.getUint32(e64, true)).toBe(0x06064b50);
  const count = Number(v.getBigUint64(e64 + 32, true));
  const cdSize = Number(v.getBigUint64(e64 + 40, true));
  const cdOffset = Number(v.getBigUint64(e64 + 48, true));
  expect(cdOffset + cdSize).toBe(e64);

  const central: { name: string; offset: number; size: number; crc: number }[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    expect(v.getUint32(p, true)).toBe(0x02014b50);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    let size = v.getUint32(p + 24, true);
    let offset = v.getUint32(p + 42, true);
    const crc = v.getUint32(p + 16, true);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x < xEnd) {
      const id = v.getUint16(x, true);
      const len = v.getUint16(x + 2, true);
      if (id === 1) {
        let q = x + 4;
        if (size === 0xffffffff) { size = Number(v.getBigUint64(q, true)); q += 16; }
        if (offset === 0xffffffff) offset = Number(v.getBigUint64(q, true));
      }
      x += 4 + len;
    }
    central.push({ name, offset, size, crc });
    p = xEnd;
  }

  const entries: LocalEntry[] = [];
  let cur = 0;
  for (const c of central) {
    expect(c.offset).toBe(cur);
    expect(v.getUint32(cur, true)).toBe(0x04034b50);
    const flags = v.getUint16(cur + 6, true);
    const nameLen = v.getUint16(cur + 26, true);
    const extraLen = v.getUint16(cur + 28, true);
    let x = cur + 30 + nameLen;
    const dataOffset = x + extraLen;
    let zip64 = false;
    let fbPad = -1;
    while (x < dataOffset) {
      const id = v.getUint16(x, true);
      const len = v.getUint16(x + 2, true);
      if (id === 1) zip64 = true;
      if (id === 0x4246) {
        fbPad = len;
        for (let k = 0; k < len; k++) expect(bytes[x + 4 + k]).toBe(0x5a);
      }
      x += 4 + len;
    }
    expect(x).toBe(dataOffset);
    const d = dataOffset + c.size;
    if (c.size === 0) {
      // miniz writes empty entries without data descriptor (flags 0x0800); the CRC of nothing is 0.
      expect(flags).toBe(0x0800);
      expect(c.crc).toBe(0);
      entries.push({ name: c.name, headerOffset: c.offset, dataOffset, size: 0, crc: 0, zip64, flags, fbPad });
      cur = d;
      continue;
    }
    expect(v.getUint32(d, true)).toBe(0x08074b50);
    expect(v.getUint32(d + 4, true)).toBe(c.crc);
    expect(crc32(bytes.subarray(dataOffset, d))).toBe(c.crc);
    if (zip64) {
      expect(Number(v.getBigUint64(d + 8, true))).toBe(c.size);
      cur = d + 24;
    } else {
      expect(v.getUint32(d + 8, true)).toBe(c.size);
      cur = d + 16;
    }
    entries.push({ name: c.name, headerOffset: c.offset, dataOffset, size: c.size, crc: c.crc, zip64, flags, fbPad });
  }
  expect(cur).toBe(cdOffset);
  return { entries, central, eocdCount: v.getUint16(eocd + 10, true) };
}

/** The 4 tensors of tiny_mlp.safetensors, in the module order torch's state_dict has. */
function tinyMlpTensors(): LazyTensor[] {
  const b = readFileSync(resolve(CORPUS, 'safetensors/generated/tiny_mlp.safetensors'));
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  return ['0.weight', '0.bias', '2.weight', '2.bias'].map((name) => {
    const h = header[name]!;
    expect(h.dtype).toBe('F32');
    const data = new Uint8Array(b.subarray(base + h.data_offsets[0], base + h.data_offsets[1]));
    return lazy(name, 'float32', h.shape, data);
  });
}

// ---------- CRC-32 ----------

describe('crc32', () => {
  it('matches the standard check value and zlib on many lengths', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const data = new Uint8Array(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    for (const len of [1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4097, data.length]) {
      expect(crc32(data.subarray(0, len)), `length ${len}`).toBe(zlibCrc32(data.subarray(0, len)));
    }
  });

  it('chains over chunks, including unaligned chunk boundaries', () => {
    const data = new Uint8Array(10_001).map((_, i) => (i * 31 + 7) & 0xff);
    const whole = crc32(data);
    for (const cut of [0, 1, 3, 8, 13, 5000, 10_000, 10_001]) {
      expect(crc32(data.subarray(cut), crc32(data.subarray(0, cut)))).toBe(whole);
    }
    // Offsets that are not 8-aligned in the underlying buffer.
    expect(crc32(data.subarray(3, 3 + 4096))).toBe(zlibCrc32(data.subarray(3, 3 + 4096)));
  });
});

// ---------- pickle ----------

describe('pickle encoding', () => {
  it('encodes longs like pickle.encode_long', () => {
    const hex = (n: bigint): string => Buffer.from(encodeLong(n)).toString('hex');
    expect(hex(0n)).toBe('');
    expect(hex(255n)).toBe('ff00');
    expect(hex(2n ** 31n)).toBe('0000008000');
    expect(hex(-1n)).toBe('ff');
    expect(hex(-128n)).toBe('80');
    expect(hex(-129n)).toBe('7fff');
    expect(hex(2n ** 40n + 5n)).toBe('050000000001');
  });

  it('picks the smallest int opcode (BININT1 / BININT2 / BININT / LONG1)', () => {
    const pkl = pickleStateDict([
      { name: 'a', storageClass: 'FloatStorage', storageKey: '0', storageNumel: 300, storageOffset: 0, shape: [70000], stride: [1] },
      { name: 'b', storageClass: 'FloatStorage', storageKey: '1', storageNumel: 2 ** 31, storageOffset: 0, shape: [2 ** 31], stride: [1] },
    ]);
    const s = Buffer.from(pkl).toString('latin1');
    expect(s).toContain('M\x2c\x01'); // 300 as BININT2
    expect(s).toContain('J\x70\x11\x01\x00'); // 70000 as BININT
    expect(s).toContain('\x8a\x05\x00\x00\x00\x80\x00'); // 2^31 as LONG1
    // Only opcodes torch's weights-only unpickler allows: never SHORT_BINUNICODE, MEMOIZE, FRAME, STACK_GLOBAL.
    expect(s.startsWith('\x80\x02')).toBe(true);
    expect(s.endsWith('u.')).toBe(true);
  });

  it('uses LONG_BINPUT / LONG_BINGET once the memo passes 255 entries', () => {
    const tensors = Array.from({ length: 80 }, (_, i) => ({
      name: `t${i}`, storageClass: 'FloatStorage', storageKey: String(i % 40), storageNumel: 1, storageOffset: 0, shape: [1], stride: [1],
    }));
    const s = Buffer.from(pickleStateDict(tensors)).toString('latin1');
    expect(s).toContain('r\x00\x01\x00\x00'); // LONG_BINPUT 256
    // Tensors 40..79 reuse the keys of tensors 0..39; the keys of the later ones sit past memo 255,
    // so they come back through LONG_BINGET, followed by the BINGET of 'cpu' (memo 7).
    expect(s).toMatch(/j[\s\S]\x01\x00\x00h\x07/);
    expect(s).toMatch(/h\x06h\x07/); // key '0' (memo 6) through plain BINGET
  });

  it('writes contiguous strides like torch (empty dims count as 1)', () => {
    expect(contiguousStrides([])).toEqual([]);
    expect(contiguousStrides([2, 3, 4])).toEqual([12, 4, 1]);
    expect(contiguousStrides([0, 3])).toEqual([3, 1]);
    expect(contiguousStrides([2, 0])).toEqual([1, 1]);
  });
});

// ---------- byte identity with torch 1.13 ----------

describe('torch 1.13 byte identity', () => {
  it('writes tiny_mlp.pt byte for byte from the safetensors twin', async () => {
    const expected = new Uint8Array(readFileSync(resolve(CORPUS, 'pytorch/generated/tiny_mlp.pt')));
    const { bytes, storages } = await write(tinyMlpTensors(), {
      archiveName: 'tiny_mlp',
      byteorder: false,
      metadata: [['', { version: 1 }], ['0', { version: 1 }], ['1', { version: 1 }], ['2', { version: 1 }]],
    });
    expect(storages).toBe(4);
    expect(bytes.byteLength).toBe(expected.byteLength);
    expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
  });

  it('writes the same tensors in the default layout (archive/, byteorder, no _metadata)', async () => {
    const { bytes } = await write(tinyMlpTensors());
    const { entries } = parseZip(bytes);
    expect(entries.map((e) => e.name)).toEqual([
      'archive/data.pkl', 'archive/byteorder', 'archive/data/0', 'archive/data/1', 'archive/data/2', 'archive/data/3', 'archive/version',
    ]);
    const dec = new TextDecoder();
    const text = (name: string): string => {
      const e = entries.find((x) => x.name === name)!;
      return dec.decode(bytes.subarray(e.dataOffset, e.dataOffset + e.size));
    };
    expect(text('archive/byteorder')).toBe('little');
    expect(text('archive/version')).toBe('3\n');
    expect(text('archive/data.pkl')).not.toContain('_metadata');
  });
});

// ---------- zip layout ----------

describe('zip layout', () => {
  const sample = (): LazyTensor[] => [
    lazy('a', 'float32', [3], f32([1, 2, 3])),
    lazy('b', 'int64', [2, 2], new Uint8Array(32).fill(7)),
    lazy('c', 'bool', [5], Uint8Array.from([1, 0, 1, 1, 0])),
    lazy('empty', 'float16', [0, 3], new Uint8Array(0)),
  ];

  it('aligns every data record to 64 bytes with an FB field, and uses torch\'s flags and descriptors', async () => {
    const { bytes } = await write(sample(), { archiveName: 'x' });
    const { entries, eocdCount } = parseZip(bytes);
    expect(entries).toHaveLength(7);
    expect(eocdCount).toBe(7);
    for (const e of entries) {
      expect(e.dataOffset % 64, e.name).toBe(0);
      expect(e.flags).toBe(e.size ? 0x0808 : 0x0800);
      expect(e.zip64).toBe(false);
      expect(e.fbPad).toBeGreaterThanOrEqual(0);
      expect(e.fbPad).toBeLessThan(64);
    }
    expect(entries.find((e) => e.name === 'x/data/3')!.size).toBe(0);
  });

  it('forced zip64: zip64 extras everywhere, 64-bit descriptors, clamped EOCD, still aligned', async () => {
    const { bytes } = await write(sample(), { zip64: true });
    const { entries, eocdCount } = parseZip(bytes);
    expect(eocdCount).toBe(0xffff);
    expect(entries).toHaveLength(7);
    for (const e of entries) {
      expect(e.zip64, e.name).toBe(true);
      expect(e.dataOffset % 64).toBe(0);
    }
    const v = new DataView(bytes.buffer, bytes.byteOffset);
    expect(v.getUint32(bytes.byteLength - 22 + 12, true)).toBe(0xffffffff);
    expect(v.getUint32(bytes.byteLength - 22 + 16, true)).toBe(0xffffffff);
  });

  it('honours other alignments and streams chunked entries', async () => {
    const sink = new MemorySink();
    const zip = new ZipWriter(sink, { alignment: 4096 });
    await zip.add('d/a', new Uint8Array(10).fill(1));
    await zip.addStream('d/b', 7, (async function* () {
      yield Uint8Array.from([1, 2, 3]);
      yield new Uint8Array(0);
      yield Uint8Array.from([4, 5, 6, 7]);
    })());
    const r = await zip.finish();
    expect(r).toEqual({ bytes: sink.position, entries: 2 });
    const { entries } = parseZip(sink.bytes());
    expect(entries.map((e) => e.dataOffset % 4096)).toEqual([0, 0]);
    expect(entries[1]!.crc).toBe(zlibCrc32(Uint8Array.from([1, 2, 3, 4, 5, 6, 7])));
  });
});

// ---------- streaming ----------

describe('streaming', () => {
  it('loads one tensor at a time, after the previous one is written, and never loads twice without ties', async () => {
    const events: string[] = [];
    let live = 0;
    let peakLive = 0;
    let peakChunk = 0;
    const sink: ByteSink & { position: number } = {
      position: 0,
      async write(chunk) {
        peakChunk = Math.max(peakChunk, chunk.byteLength);
        this.position += chunk.byteLength;
        // A data chunk of a tensor ends its life: the writer holds nothing after writing it.
        if (chunk.byteLength === 1 << 16) {
          events.push('write');
          live--;
        }
      },
    };
    const tensors: LazyTensor[] = Array.from({ length: 6 }, (_, i) => ({
      name: `w${i}`,
      dtype: 'float32' as DType,
      shape: [1 << 14],
      byteLength: 1 << 16,
      load: async () => {
        events.push(`load${i}`);
        live++;
        peakLive = Math.max(peakLive, live);
        return new Uint8Array(1 << 16).fill(i);
      },
    }));
    const r = await writePytorch({ tensors }, sink);
    expect(r.storages).toBe(6);
    expect(events).toEqual(['load0', 'write', 'load1', 'write', 'load2', 'write', 'load3', 'write', 'load4', 'write', 'load5', 'write']);
    expect(peakLive).toBe(1);
    expect(peakChunk).toBe(1 << 16);
  });
});

// ---------- tied storages ----------

describe('tied weights', () => {
  it('one storage for same key + same bytes, separate storages for same key + different bytes', async () => {
    const w = f32([1, 2, 3, 4, 5, 6]);
    const tensors = [
      lazy('emb.weight', 'float32', [2, 3], w, 's0'),
      lazy('head.weight', 'float32', [2, 3], w.slice(), 's0'),
      lazy('q', 'float32', [3], f32([1, 2, 3]), 's1'),
      lazy('k', 'float32', [3], f32([4, 5, 6]), 's1'),
      lazy('flat', 'float32', [6], w.slice(), 's0'), // same bytes, other shape: still one storage
      lazy('untied', 'float32', [2, 3], w.slice()), // no key: never shared
    ];
    const { bytes, storages } = await write(tensors);
    expect(storages).toBe(4);
    const { entries } = parseZip(bytes);
    expect(entries.filter((e) => e.name.startsWith('archive/data/')).map((e) => e.size)).toEqual([24, 12, 12, 24]);
    const pkl = entries[0]!;
    const s = Buffer.from(bytes.subarray(pkl.dataOffset, pkl.dataOffset + pkl.size)).toString('latin1');
    // Storage key '0' is written once (BINUNICODE) and fetched by BINGET for the tied tensors.
    expect(s.split('X\x01\x00\x00\x000').length - 1).toBe(1);
  });

  it('does not tie tensors of the same key whose dtypes differ, even with equal bytes', async () => {
    const bytes4 = Uint8Array.from([0, 0, 128, 63]);
    const { storages } = await write([lazy('a', 'float32', [1], bytes4, 'k'), lazy('b', 'int32', [1], bytes4.slice(), 'k')]);
    expect(storages).toBe(2);
  });
});

// ---------- errors ----------

describe('errors', () => {
  const err = async (p: Promise<unknown>): Promise<{ code: string; tensor?: string; message: string }> => {
    try {
      await p;
    } catch (e) {
      return e as { code: string; tensor?: string; message: string };
    }
    throw new Error('expected a rejection');
  };

  it('E_DTYPE names the tensor whose dtype torch cannot store', async () => {
    for (const dtype of ['uint16', 'float8e4m3fn', 'int4', 'string'] as DType[]) {
      const e = await err(write([lazy('ok', 'float32', [1], f32([1])), lazy('bad', dtype, [2], new Uint8Array(dtype === 'string' ? 0 : 4))]));
      expect(e.code, dtype).toBe('E_DTYPE');
      expect(e.tensor).toBe('bad');
      expect(e.message).toContain(dtype);
    }
  });

  it('E_TENSOR_SIZE when the declared or loaded byte length disagrees with dtype × shape', async () => {
    const declared = await err(write([lazy('t', 'float32', [2], new Uint8Array(7))]));
    expect(declared.code).toBe('E_TENSOR_SIZE');
    expect(declared.tensor).toBe('t');
    const lying: LazyTensor = { name: 'liar', dtype: 'float32', shape: [2], byteLength: 8, load: async () => new Uint8Array(4) };
    const loaded = await err(write([lying], { path: 'out.pt' }));
    expect(loaded.code).toBe('E_TENSOR_SIZE');
    expect(loaded.tensor).toBe('liar');
    expect(loaded.message).toContain('out.pt');
  });

  it('E_UNSUPPORTED for quantized tensors (their scale/zero point would be lost)', async () => {
    const q: LazyTensor = { ...lazy('q', 'int8', [2], new Uint8Array(2)), extra: { quantized: 'qint8', scale: 0.5, zeroPoint: 0 } };
    const e = await err(write([q]));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.tensor).toBe('q');
  });

  it('E_OUT_OF_RANGE for an invalid shape', async () => {
    const e = await err(write([{ name: 'neg', dtype: 'float32', shape: [-1], byteLength: 0, load: async () => new Uint8Array(0) }]));
    expect(e.code).toBe('E_OUT_OF_RANGE');
    expect(e.tensor).toBe('neg');
  });

  it('E_MALFORMED for duplicate tensor names and duplicate zip entries', async () => {
    const e = await err(write([lazy('x', 'float32', [1], f32([1])), lazy('x', 'float32', [1], f32([2]))]));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.tensor).toBe('x');
    const zip = new ZipWriter(new MemorySink());
    await zip.add('a/b', new Uint8Array(1));
    expect((await err(zip.add('a/b', new Uint8Array(1)))).code).toBe('E_MALFORMED');
  });

  it('E_USAGE for a bad archive name, a bad alignment and writing after finish', async () => {
    for (const name of ['', 'a/b', '..', 'a\\b', 'nul\u0000']) {
      expect((await err(write([], { archiveName: name }))).code, JSON.stringify(name)).toBe('E_USAGE');
    }
    expect(() => new ZipWriter(new MemorySink(), { alignment: 0 })).toThrow(/E_USAGE/);
    const zip = new ZipWriter(new MemorySink());
    await zip.finish();
    expect((await err(zip.add('a/b', new Uint8Array(1)))).code).toBe('E_USAGE');
  });

  it('zip: E_OUT_OF_RANGE for bad names and sizes, E_TENSOR_SIZE when a stream does not match its size', async () => {
    const zip = new ZipWriter(new MemorySink(), { path: 'z.pt' });
    expect((await err(zip.add('', new Uint8Array(1)))).code).toBe('E_OUT_OF_RANGE');
    expect((await err(zip.add('x'.repeat(70_000), new Uint8Array(1)))).code).toBe('E_OUT_OF_RANGE');
    expect((await err(zip.addStream('n', -1, []))).code).toBe('E_OUT_OF_RANGE');
    expect((await err(zip.addStream('c', 1, [new Uint8Array(1)], { crc: -1 }))).code).toBe('E_OUT_OF_RANGE');
    expect((await err(zip.addStream('c2', 1, [new Uint8Array(1)], { crc: 2 ** 32 }))).code).toBe('E_OUT_OF_RANGE');
    const short = await err(zip.addStream('short', 5, [new Uint8Array(3)]));
    expect(short.code).toBe('E_TENSOR_SIZE');
    expect(short.message).toContain('z.pt');
    expect((await err(zip.addStream('long', 2, [new Uint8Array(3)]))).code).toBe('E_TENSOR_SIZE');
  });

  it('an empty state_dict is a valid archive', async () => {
    const { bytes, storages } = await write([]);
    expect(storages).toBe(0);
    const { entries } = parseZip(bytes);
    const pkl = entries[0]!;
    expect(Buffer.from(bytes.subarray(pkl.dataOffset, pkl.dataOffset + pkl.size)).toString('hex')).toBe(
      Buffer.from('\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.', 'latin1').toString('hex'),
    );
  });
});
