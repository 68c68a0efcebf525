import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { MemorySink, MemorySource } from '../../../src/io/source.js';
import { crc32c, maskCrc, unmaskCrc } from '../../../src/formats/savedmodel/bundle/crc32c.js';
import { loadStrings, readTensorBundle, shardFileName } from '../../../src/formats/savedmodel/bundle/read.js';
import { snappyDecompress } from '../../../src/formats/savedmodel/bundle/snappy.js';
import { parseBlock, readTable } from '../../../src/formats/savedmodel/bundle/sstable-read.js';
import { shortestSeparator, shortSuccessor, TableWriter } from '../../../src/formats/savedmodel/bundle/sstable-write.js';
import { bundleStringTensor, writeTensorBundle } from '../../../src/formats/savedmodel/bundle/write.js';
import { BundleEntryProtoSchema, BundleHeaderProtoSchema, TensorSliceProtoSchema } from '../../../src/formats/savedmodel/gen/tensorflow/tensor_bundle_pb.js';
import { TensorShapeProtoSchema, TensorShapeProto_DimSchema, VersionDefSchema } from '../../../src/formats/savedmodel/gen/tensorflow/types_pb.js';
import { inMemoryTensor, type LazyTensor } from '../../../src/formats/weights.js';
import { blockContents, CORPUS, fileSource, savedModelDirs, shardsOf, tableBlocks } from './helpers.js';

const enc = new TextEncoder();

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<ModelsmithError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(ModelsmithError);
  expect((err as ModelsmithError).code).toBe(code);
  return err as ModelsmithError;
}

function f32(b: Uint8Array): number[] {
  return Array.from(new Float32Array(b.slice().buffer));
}

async function openCorpus(d: string) {
  const dir = join(CORPUS, d);
  return readTensorBundle(fileSource(join(dir, 'variables/variables.index')), shardsOf(dir));
}

/** Build an index from raw (key, value) entries, for hostile-input tests. */
async function tableOf(entries: Array<[string, Uint8Array]>): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = new TableWriter(sink);
  for (const [k, v] of entries) await w.add(enc.encode(k), v);
  await w.finish();
  return sink.bytes();
}

const HEADER = toBinary(BundleHeaderProtoSchema, create(BundleHeaderProtoSchema, { numShards: 1, version: create(VersionDefSchema, { producer: 1 }) }));

function entry(fields: Record<string, unknown>): Uint8Array {
  return toBinary(BundleEntryProtoSchema, create(BundleEntryProtoSchema, fields as never));
}

function shapeOf(dims: number[]) {
  return create(TensorShapeProtoSchema, { dim: dims.map((d) => create(TensorShapeProto_DimSchema, { size: BigInt(d) })) });
}

describe('crc32c and snappy', () => {
  it('computes CRC-32C and TF masking', () => {
    expect(crc32c(enc.encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(enc.encode('6789'), crc32c(enc.encode('12345')))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    // The counter fixture stores mask(crc32c(float32 0)) = 0x3a117ba6.
    expect(maskCrc(crc32c(new Uint8Array(4)))).toBe(0x3a117ba6);
    for (const v of [0, 1, 0xffffffff, 0x12345678]) expect(unmaskCrc(maskCrc(v))).toBe(v);
    // The word-at-a-time path agrees with the byte path at every alignment and length.
    const big = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff);
    const bytewise = (b: Uint8Array) => { let c = 0; for (const x of b) c = crc32c(Uint8Array.of(x), c); return c; };
    for (const [start, end] of [[0, 300], [1, 299], [2, 40], [3, 19], [5, 21], [7, 300]] as const) {
      expect(crc32c(big.subarray(start, end))).toBe(bytewise(big.subarray(start, end)));
    }
  });

  it('decompresses literals and overlapping copies', () => {
    // len 10; literal "ab" (tag 0x04); copy-1 len 8 offset 2 (tag ((8-4)<<2)|1 = 0x11, offset byte 2).
    const out = snappyDecompress(Uint8Array.from([10, 0x04, 0x61, 0x62, 0x11, 0x02]), { base: 0 });
    expect(new TextDecoder().decode(out)).toBe('ababababab');
    // copy-2: len 3 offset 2 → tag ((3-1)<<2)|2 = 0x0a.
    expect(new TextDecoder().decode(snappyDecompress(Uint8Array.from([5, 0x04, 0x78, 0x79, 0x0a, 0x02, 0x00]), { base: 0 }))).toBe('xyxyx');
    // copy-4: same with a 4-byte offset (tag 0x0b).
    expect(new TextDecoder().decode(snappyDecompress(Uint8Array.from([5, 0x04, 0x78, 0x79, 0x0b, 0x02, 0, 0, 0]), { base: 0 }))).toBe('xyxyx');
    // long literal: 61 bytes use one extra length byte (tag 60<<2, then len-1).
    const lit = new Uint8Array(61).fill(7);
    expect(snappyDecompress(Uint8Array.from([61, 60 << 2, 60, ...lit]), { base: 0 })).toEqual(lit);
  });

  it('refuses hostile snappy blocks with offsets', async () => {
    const w = { path: 'x.index', base: 100 };
    expect((await expectCode(() => snappyDecompress(Uint8Array.from([10, 0x11, 0x02]), w), 'E_MALFORMED')).offset).toBe(101); // copy before any output
    await expectCode(() => snappyDecompress(Uint8Array.from([10, 0x04, 0x61]), w), 'E_TRUNCATED'); // literal past end
    await expectCode(() => snappyDecompress(Uint8Array.from([3, 0x04, 0x61, 0x62]), w), 'E_TRUNCATED'); // fewer bytes than declared
    await expectCode(() => snappyDecompress(Uint8Array.from([1, 0x04, 0x61, 0x62]), w), 'E_MALFORMED'); // overflows declared length
    await expectCode(() => snappyDecompress(Uint8Array.from([0xff, 0xff, 0xff, 0x7f, 0x04]), w), 'E_MALFORMED'); // impossible size, no 256 MiB allocation
    await expectCode(() => snappyDecompress(Uint8Array.from([0xff, 0xff]), w), 'E_TRUNCATED'); // unterminated length
  });

  it('computes LevelDB separators', () => {
    const s = (a: string, b: string) => new TextDecoder().decode(shortestSeparator(enc.encode(a), enc.encode(b)));
    expect(s('abc', 'abz')).toBe('abd');
    expect(s('abc', 'abd')).toBe('abc'); // no room between
    expect(s('ab', 'abc')).toBe('ab'); // prefix
    expect(new TextDecoder().decode(shortSuccessor(enc.encode('counter')))).toBe('d');
    expect(shortSuccessor(Uint8Array.from([0xff, 0xff, 3]))).toEqual(Uint8Array.from([0xff, 0xff, 4]));
  });
});

describe('corpus bundles', () => {
  const dirs = savedModelDirs();

  it('reads every bundle in the corpus and verifies every tensor CRC', async () => {
    let tensors = 0;
    for (const d of dirs) {
      const ws = await openCorpus(d);
      expect(ws.format).toBe('tf-bundle');
      expect(ws.diagnostics).toEqual([]);
      for (const t of ws.tensors) {
        const b = await t.load();
        expect(b.byteLength).toBe(t.byteLength);
        tensors++;
      }
    }
    expect(dirs.length).toBe(12);
    expect(tensors).toBe(67);
  });

  it('has the known values', async () => {
    const values = async (d: string) => {
      const out: Record<string, number[] | bigint[]> = {};
      for (const t of (await openCorpus(d)).tensors) {
        const b = (await t.load()).slice();
        if (t.dtype === 'float32') out[t.name] = f32(b);
        if (t.dtype === 'int64') out[t.name] = Array.from(new BigInt64Array(b.buffer));
        if (t.dtype === 'int32') out[t.name] = Array.from(new Int32Array(b.buffer));
      }
      return out;
    };
    expect(await values('tf-serving/saved_model_half_plus_two_cpu/00000123')).toEqual({ a: [0.5], a2: [0.5], b: [2], c: [3], c2: [3] });
    expect(await values('tf-serving/saved_model_half_plus_two_2_versions/00000124')).toEqual({ a: [0.5], b: [2], c: [3] });
    expect(await values('tf-serving/saved_model_counter/00000123')).toEqual({ counter: [0] });
    const tf2 = await values('tf-serving/saved_model_half_plus_two_tf2_cpu/00000123');
    expect(tf2['a/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([0.5]);
    expect(tf2['b/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([2]);
    expect(tf2['c/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([3]);
    const i64 = await values('tfjs-node/int64_multiply');
    expect(i64['v1/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([3n]);
    expect(i64['v2/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([2n]);
    const multi = await values('tfjs-node/model_multi_output');
    expect(multi['v/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([3]);
    expect(multi['two/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([2]);
    expect((await values('tfjs-node/times_three_float'))['v/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([3]);
    const keras = await values('tensorflow-rust/keras_single_input_saved_model');
    expect(keras['layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE']).toHaveLength(25);
    expect(keras['optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([1n]);
    expect(keras['optimizer/learning_rate/.ATTRIBUTES/VARIABLE_VALUE']![0]).toBeCloseTo(0.001, 7);
    for (const [k, v] of Object.entries(keras)) if (typeof v[0] === 'number') expect((v as number[]).every(Number.isFinite), k).toBe(true);
    const reg = await values('tensorflow-rust/regression_savedmodel');
    expect(reg['optimizer/learning_rate/.ATTRIBUTES/VARIABLE_VALUE']).toEqual([0.5]);
    expect(reg['w/.ATTRIBUTES/VARIABLE_VALUE']![0]).toBeCloseTo(0.2043, 4);
  });

  it('reads the _CHECKPOINTABLE_OBJECT_GRAPH string tensor', async () => {
    const ws = await openCorpus('tf-serving/saved_model_half_plus_two_tf2_cpu/00000123');
    const g = ws.tensors.find((t) => t.name === '_CHECKPOINTABLE_OBJECT_GRAPH')!;
    expect(g.dtype).toBe('string');
    expect(g.shape).toEqual([]);
    const [s] = await loadStrings(g);
    expect(s!.byteLength).toBe(613);
    await expectCode(loadStrings(ws.tensors.find((t) => t.dtype === 'float32')!), 'E_DTYPE');
  });

  it('writes bundles that re-read identically, and reproduces uncompressed TF indexes byte for byte', async () => {
    let exact = 0;
    let compared = 0;
    for (const d of dirs) {
      const dir = join(CORPUS, d);
      const ws = await openCorpus(d);
      // TF appends data in SaveV2 order; replaying that order (the stored offsets) gives the same layout.
      const ordered = [...ws.tensors].sort((x, y) => (x.extra!['offset'] as number) - (y.extra!['offset'] as number));
      const idx = new MemorySink();
      const data = new MemorySink();
      const sizes = await writeTensorBundle(ordered, idx, data);
      expect(sizes.indexBytes).toBe(idx.position);
      expect(sizes.dataBytes).toBe(data.position);
      const back = await readTensorBundle(new MemorySource(idx.bytes(), 'w.index'), async () => new MemorySource(data.bytes(), 'w.data'));
      expect(back.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(ws.tensors.map((t) => [t.name, t.dtype, t.shape]));
      for (let i = 0; i < ws.tensors.length; i++) expect(await back.tensors[i]!.load()).toEqual(await ws.tensors[i]!.load());
      const original = readFileSync(join(dir, 'variables/variables.index'));
      expect(data.bytes()).toEqual(new Uint8Array(readFileSync(join(dir, shardFileName('variables/variables', 0, 1)))));
      const table = await readTable(fileSource(join(dir, 'variables/variables.index')));
      if (table.dataBlockCompression.every((c) => c === 0)) {
        expect(idx.bytes(), d).toEqual(new Uint8Array(original));
        exact++;
      }
      // Snappy-written indexes too: data and metaindex blocks decompress to exactly our blocks, and the
      // index block has the same separator keys (its handles differ only by the compressed sizes).
      const theirs = new Uint8Array(original);
      const ours = idx.bytes();
      const tb = tableBlocks(theirs);
      const ob = tableBlocks(ours);
      expect(ob.map((b) => b[2])).toEqual(ob.map(() => 0));
      const contents = (bytes: Uint8Array, blocks: typeof tb) => blocks.slice(0, -1).map(([o, s]) => blockContents(bytes, o, s));
      expect(contents(ours, ob)).toEqual(contents(theirs, tb));
      const keys = (bytes: Uint8Array, [o, s]: [number, number, number]) => parseBlock(blockContents(bytes, o, s), { base: o }, 'index').map((e) => e.key);
      expect(keys(ours, ob.at(-1)!)).toEqual(keys(theirs, tb.at(-1)!));
      compared += tb.length;
    }
    expect(exact).toBe(9);
    expect(compared).toBe(36);
  });

  it('writes multi-block indexes whose separators TF would accept', async () => {
    // Long names force several 256 KiB data blocks.
    const tensors: LazyTensor[] = [];
    for (let i = 0; i < 600; i++) {
      const data = new Uint8Array(4);
      new DataView(data.buffer).setFloat32(0, i, true);
      tensors.push(inMemoryTensor({ name: `layer_${String(i).padStart(4, '0')}/${'k'.repeat(1000)}`, dtype: 'float32', shape: [], data }));
    }
    tensors.push(bundleStringTensor('strings', [2], [enc.encode('hello'), new Uint8Array(0)]));
    const idx = new MemorySink();
    const data = new MemorySink();
    await writeTensorBundle(tensors.reverse(), idx, data);
    const table = await readTable(new MemorySource(idx.bytes()));
    expect(table.dataBlockCompression.length).toBeGreaterThan(1);
    const back = await readTensorBundle(new MemorySource(idx.bytes()), async () => new MemorySource(data.bytes()));
    expect(back.tensors).toHaveLength(601);
    expect(f32(await back.tensors[599]!.load())).toEqual([599]);
    expect((await loadStrings(back.tensors[600]!)).map((s) => new TextDecoder().decode(s))).toEqual(['hello', '']);
  });
});

describe('bundle errors', () => {
  const half = join(CORPUS, 'tf-serving/saved_model_half_plus_two_cpu/00000123');
  const counter = join(CORPUS, 'tf-serving/saved_model_counter/00000123');
  const idxOf = (dir: string) => new Uint8Array(readFileSync(join(dir, 'variables/variables.index')));
  const dataOf = (dir: string) => new Uint8Array(readFileSync(join(dir, 'variables/variables.data-00000-of-00001')));

  it('detects a corrupt block CRC (Snappy and plain blocks) with the block offset', async () => {
    for (const dir of [half, counter]) {
      const b = idxOf(dir);
      b[5]! ^= 0x01; // inside data block 0
      const e = await expectCode(readTensorBundle(new MemorySource(b, 'bad.index'), shardsOf(dir)), 'E_MALFORMED');
      expect(e.offset).toBe(0);
      expect(e.path).toBe('bad.index');
      expect(e.message).toMatch(/CRC32C/);
    }
  });

  it('detects a corrupt tensor CRC on load with the shard offset and tensor name', async () => {
    const d = dataOf(half);
    d[9]! ^= 0x40; // tensor "b" at offset 8
    const ws = await readTensorBundle(fileSource(join(half, 'variables/variables.index')), shardsOf(half, 'variables/variables', d));
    await ws.tensors[0]!.load(); // "a" is intact
    const e = await expectCode(ws.tensors.find((t) => t.name === 'b')!.load(), 'E_MALFORMED');
    expect(e.offset).toBe(8);
    expect(e.tensor).toBe('b');
  });

  it('detects corrupt string tensors', async () => {
    const dir = join(CORPUS, 'tfjs-node/times_three_float');
    const d = dataOf(dir);
    const ws0 = await readTensorBundle(fileSource(join(dir, 'variables/variables.index')), shardsOf(dir));
    const g = ws0.tensors.find((t) => t.dtype === 'string')!;
    const off = g.extra!['offset'] as number;
    const d1 = d.slice();
    d1[off + 20]! ^= 1; // a string byte: entry CRC
    const ws1 = await readTensorBundle(fileSource(join(dir, 'variables/variables.index')), shardsOf(dir, 'variables/variables', d1));
    expect((await expectCode(ws1.tensors.find((t) => t.dtype === 'string')!.load(), 'E_MALFORMED')).offset).toBe(off);
    const d2 = d.slice();
    d2[off + 2]! ^= 1; // the lengths CRC
    const ws2 = await readTensorBundle(fileSource(join(dir, 'variables/variables.index')), shardsOf(dir, 'variables/variables', d2));
    expect((await expectCode(ws2.tensors.find((t) => t.dtype === 'string')!.load(), 'E_MALFORMED')).message).toMatch(/lengths checksum/);
    const d3 = d.slice();
    d3[off] = 0xff; // first length: varint continues into the CRC, then a huge length
    d3[off + 1] = 0x7f;
    const ws3 = await readTensorBundle(fileSource(join(dir, 'variables/variables.index')), shardsOf(dir, 'variables/variables', d3));
    await expectCode(ws3.tensors.find((t) => t.dtype === 'string')!.load(), 'E_TRUNCATED');
  });

  it('refuses truncated indexes and shards', async () => {
    const b = idxOf(half);
    await expectCode(readTensorBundle(new MemorySource(b.subarray(0, 40), 't.index'), shardsOf(half)), 'E_TRUNCATED');
    // Drop the middle: the footer's handles now point past the table data.
    const cut = new Uint8Array([...b.subarray(0, 60), ...b.subarray(b.length - 48)]);
    const e = await expectCode(readTensorBundle(new MemorySource(cut, 't.index'), shardsOf(half)), 'E_TRUNCATED');
    expect(e.offset).toBeGreaterThan(0);
    const short = dataOf(half).subarray(0, 10);
    const e2 = await expectCode(readTensorBundle(fileSource(join(half, 'variables/variables.index')), shardsOf(half, 'variables/variables', short)), 'E_TRUNCATED');
    expect(e2.tensor).toBe('b');
    expect(e2.offset).toBe(8);
  });

  it('refuses bad magic, bad headers and bad entries', async () => {
    const b = idxOf(counter);
    b[b.length - 1] = 0;
    await expectCode(readTensorBundle(new MemorySource(b), shardsOf(counter)), 'E_MALFORMED');
    const shards = async () => new MemorySource(new Uint8Array(64));
    const hdr = (f: Record<string, unknown>) => toBinary(BundleHeaderProtoSchema, create(BundleHeaderProtoSchema, f as never));
    await expectCode(readTensorBundle(new MemorySource(await tableOf([['x', entry({ dtype: 1, size: 4n })]])), shards), 'E_MALFORMED'); // no header
    await expectCode(readTensorBundle(new MemorySource(await tableOf([['', hdr({ numShards: 0 })]])), shards), 'E_OUT_OF_RANGE');
    await expectCode(readTensorBundle(new MemorySource(await tableOf([['', hdr({ numShards: 1, endianness: 1 })]])), shards), 'E_UNSUPPORTED');
    await expectCode(readTensorBundle(new MemorySource(await tableOf([['', hdr({ numShards: 1, version: create(VersionDefSchema, { producer: 2, minConsumer: 2 }) })]])), shards), 'E_UNSUPPORTED');
    await expectCode(readTensorBundle(new MemorySource(await tableOf([['', Uint8Array.from([0x08])]])), shards), 'E_MALFORMED'); // undecodable header (unterminated varint)
    const run = async (e: Uint8Array) => readTensorBundle(new MemorySource(await tableOf([['', HEADER], ['t', e]])), shards);
    const slices = [create(TensorSliceProtoSchema, {})];
    expect((await expectCode(run(entry({ dtype: 1, shape: shapeOf([2]), slices })), 'E_UNSUPPORTED')).tensor).toBe('t');
    await expectCode(run(entry({ dtype: 1, shape: shapeOf([2]), size: 4n })), 'E_TENSOR_SIZE');
    await expectCode(run(entry({ dtype: 7, shape: shapeOf([3]), size: 5n })), 'E_TENSOR_SIZE');
    await expectCode(run(entry({ dtype: 1, shape: shapeOf([-1]), size: 4n })), 'E_MALFORMED');
    await expectCode(run(entry({ dtype: 1, shape: shapeOf(new Array(300).fill(1)), size: 4n })), 'E_LIMIT');
    await expectCode(run(entry({ dtype: 1, shape: shapeOf([2 ** 40, 2 ** 40]), size: 4n })), 'E_OUT_OF_RANGE');
    await expectCode(run(entry({ dtype: 1, shardId: 3, size: 4n })), 'E_OUT_OF_RANGE');
    await expectCode(run(entry({ dtype: 1, offset: -5n, size: 4n })), 'E_OUT_OF_RANGE');
    await expectCode(run(entry({ dtype: 1, offset: 62n, size: 4n })), 'E_TRUNCATED');
    await expectCode(run(Uint8Array.from([0x12, 0x09])), 'E_MALFORMED');
    const variant = await run(entry({ dtype: 21, size: 4n }));
    expect(variant.tensors).toEqual([]);
    expect(variant.diagnostics[0]!.code).toBe('TF_BUNDLE_DTYPE');
  });

  it('refuses damaged table structure', async () => {
    // Hand-made block: restart count larger than the block.
    const block = Uint8Array.from([0, 0, 0, 0, 0xff, 0, 0, 0]);
    const trailer = new Uint8Array(5);
    const crc = maskCrc(crc32c(Uint8Array.from([0]), crc32c(block)));
    new DataView(trailer.buffer).setUint32(1, crc, true);
    const footer = new Uint8Array(48);
    footer.set([0, 0, 0, 8], 0); // metaindex (0,0), index at 0 size 8
    footer.set([0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb], 40);
    const file = new Uint8Array([...block, ...trailer, ...footer]);
    const e = await expectCode(readTable(new MemorySource(file, 'r.index')), 'E_MALFORMED');
    expect(e.offset).toBe(4);
    // Unknown compression type 2 with a valid CRC.
    const block2 = Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0]);
    const t2 = Uint8Array.from([2, 0, 0, 0, 0]);
    new DataView(t2.buffer).setUint32(1, maskCrc(crc32c(Uint8Array.from([2]), crc32c(block2))), true);
    await expectCode(readTable(new MemorySource(new Uint8Array([...block2, ...t2, ...footer]))), 'E_UNSUPPORTED');
  });

  it('refuses bad writer input', async () => {
    const sink = () => new MemorySink();
    const t = (name: string, dtype: 'float32' | 'float4e2m1' | 'string', data: Uint8Array, shape = [1]) => ({ ...inMemoryTensor({ name, dtype, shape, data }) });
    await expectCode(writeTensorBundle([t('', 'float32', new Uint8Array(4))], sink(), sink()), 'E_MALFORMED');
    await expectCode(writeTensorBundle([t('a', 'float32', new Uint8Array(4)), t('a', 'float32', new Uint8Array(4))], sink(), sink()), 'E_MALFORMED');
    await expectCode(writeTensorBundle([t('a', 'float4e2m1', new Uint8Array(1))], sink(), sink()), 'E_DTYPE');
    await expectCode(writeTensorBundle([t('a', 'float32', new Uint8Array(3))], sink(), sink()), 'E_TENSOR_SIZE');
    await expectCode(writeTensorBundle([t('a', 'string', new Uint8Array(3))], sink(), sink()), 'E_UNSUPPORTED');
    await expectCode(() => bundleStringTensor('s', [3], [new Uint8Array(1)]), 'E_TENSOR_SIZE');
  });
});
