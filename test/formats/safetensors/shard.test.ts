/**
 * Sharding: the huggingface split rule, file names, the index text (checked against Python's
 * json.dumps), sharded write → sharded read round trips on silero-vad, index/shard errors, and
 * parseSize.
 */
import { describe, expect, it } from 'vitest';
import type { ByteSource } from '../../../src/io/source.js';
import { MemorySink, MemorySource } from '../../../src/io/source.js';
import { inMemoryTensor, type LazyTensor } from '../../../src/formats/weights.js';
import { readSafetensors } from '../../../src/formats/safetensors/read.js';
import { readShardedSafetensors, splitIntoShards, writeShardedSafetensors } from '../../../src/formats/safetensors/shard.js';
import { parseSize } from '../../../src/formats/safetensors/size.js';
import { ModelsmithError } from '../../../src/core/errors.js';
import { runPython } from '../../kernels/helpers.js';
import { catchMs, memFile, sha256, SILERO, stFile } from './helpers.js';

const u8 = (name: string, n: number): LazyTensor => inMemoryTensor({ name, dtype: 'uint8', shape: [n], data: new Uint8Array(n).fill(n & 255) });

/** An in-memory folder: sinks to write into, a resolver to read back. */
function folder() {
  const files = new Map<string, MemorySink>();
  const opened: string[] = [];
  return {
    files,
    opened,
    openSink: async (name: string) => {
      opened.push(name);
      const s = new MemorySink();
      files.set(name, s);
      return s;
    },
    source: (name: string): ByteSource => new MemorySource(files.get(name)!.bytes(), name),
    resolver: async (name: string): Promise<ByteSource> => {
      const s = files.get(name);
      if (!s) throw new ModelsmithError('E_EXTERNAL_DATA', `no such shard '${name}'`, { path: name });
      return new MemorySource(s.bytes(), name);
    },
  };
}

describe('splitIntoShards (huggingface_hub rule)', () => {
  const names = (groups: LazyTensor[][]) => groups.map((g) => g.map((t) => t.name));
  it('fills a shard until the next tensor would pass the limit; an exact fit stays', () => {
    expect(names(splitIntoShards([u8('a', 3), u8('b', 3), u8('c', 3)], 6))).toEqual([['a', 'b'], ['c']]);
    expect(names(splitIntoShards([u8('a', 3), u8('b', 4), u8('c', 2)], 6))).toEqual([['a'], ['b', 'c']]);
  });
  it('a tensor bigger than the limit gets its own shard, placed before the shard being filled', () => {
    expect(names(splitIntoShards([u8('a', 2), u8('big', 10), u8('b', 2), u8('c', 5)], 6))).toEqual([['big'], ['a', 'b'], ['c']]);
  });
  it('empty tensors never start a shard of their own', () => {
    expect(names(splitIntoShards([u8('a', 6), u8('e', 0), u8('b', 1)], 6))).toEqual([['a', 'e'], ['b']]);
  });
});

describe('sharded write → read', () => {
  it('silero-vad in 300 kB shards: names, index, and every tensor bit-identical', async () => {
    const orig = await readSafetensors(memFile(SILERO));
    const f = folder();
    const { files, index } = await writeShardedSafetensors({ tensors: orig.tensors, metadata: { format: 'pt' } }, f.openSink, { shardSize: 300_000, baseName: 'model' });
    const shardNames = files.slice(0, -1);
    expect(shardNames.length).toBeGreaterThan(2);
    shardNames.forEach((n, i) => expect(n).toBe(`model-${String(i + 1).padStart(5, '0')}-of-${String(shardNames.length).padStart(5, '0')}.safetensors`));
    expect(files.at(-1)).toBe('model.safetensors.index.json');
    expect(f.opened).toEqual(files);
    const sum = orig.tensors.reduce((s, t) => s + t.byteLength, 0);
    expect(index.metadata.total_size).toBe(sum);
    expect(Object.keys(index.weight_map).length).toBe(15);

    for (const n of shardNames) {
      const shard = await readSafetensors(f.source(n));
      expect(shard.metadata).toEqual({ format: 'pt' });
      const payload = shard.tensors.reduce((s, t) => s + t.byteLength, 0);
      expect(payload <= 300_000 || shard.tensors.length === 1).toBe(true);
      for (const t of shard.tensors) expect(index.weight_map[t.name]).toBe(n);
    }

    const back = await readShardedSafetensors(f.source('model.safetensors.index.json'), f.resolver);
    expect(back.format).toBe('safetensors');
    expect(back.metadata).toEqual({ format: 'pt' });
    expect(back.diagnostics).toEqual([]);
    expect(back.tensors.map((t) => t.name).sort()).toEqual(orig.tensors.map((t) => t.name).sort());
    for (const t of orig.tensors) {
      const b = back.tensors.find((x) => x.name === t.name)!;
      expect(b.shape).toEqual(t.shape);
      expect(b.extra!['shard']).toBe(index.weight_map[t.name]);
      expect(sha256(await b.load())).toBe(sha256(await t.load()));
    }
  });

  it('one shard: model.safetensors and no index file, as save_pretrained does', async () => {
    const f = folder();
    const { files, index } = await writeShardedSafetensors({ tensors: [u8('a', 4), u8('b', 4)] }, f.openSink, { shardSize: 1000, baseName: 'model' });
    expect(files).toEqual(['model.safetensors']);
    expect(index.weight_map).toEqual({ a: 'model.safetensors', b: 'model.safetensors' });
    expect((await readSafetensors(f.source('model.safetensors'))).tensors.length).toBe(2);
  });

  it('the index text is exactly Python json.dumps(index, indent=2, sort_keys=True) + "\\n"', async () => {
    const f = folder();
    const names = ['z.weight', 'a.bias', 'é', '😀', '\uffff', 'quote"back\\slash', 'tab\t', 'del\u007f', '10', '9'];
    await writeShardedSafetensors({ tensors: names.map((n, i) => u8(n, 10 + i)) }, f.openSink, { shardSize: 25, baseName: 'pytorch' });
    const text = f.files.get('pytorch.safetensors.index.json')!.bytes();
    const py = runPython(
      'import json,sys\nd=json.loads(sys.stdin.buffer.read())\nsys.stdout.write(json.dumps(d, indent=2, sort_keys=True) + "\\n")',
      [],
      text,
    );
    expect(new TextDecoder().decode(text)).toBe(new TextDecoder().decode(py));
    expect(Array.from(text).every((c) => c < 0x80)).toBe(true);
    const back = await readShardedSafetensors(f.source('pytorch.safetensors.index.json'), f.resolver);
    expect(back.tensors.map((t) => t.name).sort()).toEqual([...names].sort());
  });

  it('refuses bad options and bad tensors before opening any file', async () => {
    const f = folder();
    expect((await catchMs(() => writeShardedSafetensors({ tensors: [u8('a', 1)] }, f.openSink, { shardSize: 0, baseName: 'm' }))).code).toBe('E_USAGE');
    expect((await catchMs(() => writeShardedSafetensors({ tensors: [u8('a', 1)] }, f.openSink, { shardSize: 1.5, baseName: 'm' }))).code).toBe('E_USAGE');
    expect((await catchMs(() => writeShardedSafetensors({ tensors: [u8('a', 1)] }, f.openSink, { shardSize: 10, baseName: '' }))).code).toBe('E_USAGE');
    const dup = await catchMs(() => writeShardedSafetensors({ tensors: [u8('a', 5), u8('b', 5), u8('a', 5)] }, f.openSink, { shardSize: 5, baseName: 'm' }));
    expect(dup.code).toBe('E_MALFORMED');
    expect(dup.tensor).toBe('a');
    const bad: LazyTensor = { name: 'c', dtype: 'complex128', shape: [1], byteLength: 16, load: async () => new Uint8Array(16) };
    const dt = await catchMs(() => writeShardedSafetensors({ tensors: [u8('a', 5), bad] }, f.openSink, { shardSize: 5, baseName: 'm' }));
    expect(dt.code).toBe('E_DTYPE');
    expect(f.opened).toEqual([]);
  });
});

describe('readShardedSafetensors errors and diagnostics', () => {
  const shardA = stFile({ x: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, extra: { dtype: 'U8', shape: [1], data_offsets: [2, 3] } }, new Uint8Array([1, 2, 3]));
  const shardB = stFile({ __metadata__: { format: 'tf' }, y: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array([9]));
  const resolver = async (n: string): Promise<ByteSource> => {
    if (n === 'a.safetensors') return new MemorySource(shardA, n);
    if (n === 'b.safetensors') return new MemorySource(shardB, n);
    if (n === 'bad.safetensors') return new MemorySource(new Uint8Array(4), n);
    throw new ModelsmithError('E_EXTERNAL_DATA', `no such file '${n}'`, { path: n });
  };
  const index = (text: string) => new MemorySource(new TextEncoder().encode(text), 'model.safetensors.index.json');

  it('warns about unlisted tensors, a total_size mismatch and differing shard metadata', async () => {
    const set = await readShardedSafetensors(index('{"metadata":{"total_size":999},"weight_map":{"y":"b.safetensors","x":"a.safetensors"}}'), resolver);
    expect(set.tensors.map((t) => t.name)).toEqual(['y', 'x']);
    expect(Array.from(await set.tensors[1]!.load())).toEqual([1, 2]);
    expect(set.metadata).toEqual({ format: 'tf' });
    const codes = set.diagnostics.map((d) => d.code);
    expect(set.diagnostics.find((d) => d.code === 'SAFETENSORS_UNLISTED_TENSOR')?.tensor).toBe('extra');
    expect(codes).toContain('SAFETENSORS_UNLISTED_TENSOR');
    expect(codes).toContain('SAFETENSORS_TOTAL_SIZE');
    expect(codes).toContain('SAFETENSORS_SHARD_METADATA');
  });

  it('a weight_map entry missing from its shard → E_MALFORMED naming tensor and index', async () => {
    const text = '{"weight_map":{"x":"a.safetensors","y":"a.safetensors"}}';
    const e = await catchMs(() => readShardedSafetensors(index(text), resolver));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.tensor).toBe('y');
    expect(e.message).toContain('model.safetensors.index.json');
    expect(e.offset).toBe(text.indexOf('"y"'));
  });

  it.each([
    ['no weight_map', '{"metadata":{}}'],
    ['weight_map not an object', '{"weight_map":[]}'],
    ['non-string file', '{"weight_map":{"x":1}}'],
    ['empty file name', '{"weight_map":{"x":""}}'],
    ['duplicate key', '{"weight_map":{"x":"a.safetensors","x":"b.safetensors"}}'],
    ['not JSON', '{"weight_map":'],
    ['not an object', '[1]'],
  ])('%s → E_MALFORMED', async (_n, text) => {
    const e = await catchMs(() => readShardedSafetensors(index(text), resolver));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.path).toBe('model.safetensors.index.json');
  });

  it('non-UTF-8 index → E_MALFORMED with the offset', async () => {
    const e = await catchMs(() => readShardedSafetensors(new MemorySource(new Uint8Array([0x7b, 0xff]), 'i.json'), resolver));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.offset).toBe(1);
  });

  it('an oversized index → E_LIMIT without reading it', async () => {
    let reads = 0;
    const huge: ByteSource = { size: 1 << 30, name: 'huge.json', read: async () => (reads++, new Uint8Array(0)), readInto: async () => void reads++ };
    expect((await catchMs(() => readShardedSafetensors(huge, resolver))).code).toBe('E_LIMIT');
    expect(reads).toBe(0);
  });

  it('shard errors carry the shard name; resolver refusals pass through', async () => {
    const e = await catchMs(() => readShardedSafetensors(index('{"weight_map":{"x":"bad.safetensors"}}'), resolver));
    expect(e.code).toBe('E_TRUNCATED');
    expect(e.message).toContain('HeaderTooSmall');
    expect(e.path).toBe('bad.safetensors');
    const r = await catchMs(() => readShardedSafetensors(index('{"weight_map":{"x":"../../etc/passwd"}}'), resolver));
    expect(r.code).toBe('E_EXTERNAL_DATA');
  });
});

describe('parseSize', () => {
  it.each([
    ['123456', 123456],
    ['2GB', 2_000_000_000],
    ['500MB', 500_000_000],
    ['5gb', 5_000_000_000],
    ['1.5GiB', 1_610_612_736],
    ['64 KiB', 65_536],
    ['10KB', 10_000],
    ['1TB', 1e12],
    ['1MiB', 1_048_576],
    ['0.3KB', 300],
    ['100B', 100],
    [' 7 ', 7],
    ['1.0000000001KB', 1000],
  ])('%s → %d', (text, want) => {
    expect(parseSize(text)).toBe(want);
  });

  it.each(['', 'GB', '-1GB', '1e9', '0', '0.0001KB', '2XB', '1.GB', '.5GB', '1,5GB', 'constructor', '1toString', '99999999999TB', 'NaN'])('%j → E_USAGE', (text) => {
    let err: unknown;
    try {
      parseSize(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelsmithError);
    expect((err as ModelsmithError).code).toBe('E_USAGE');
  });
});
