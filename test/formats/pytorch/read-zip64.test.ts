/**
 * Zip64 past 4 GiB without a 4 GiB file: a sparse ByteSource serves a few real byte runs and zeros
 * elsewhere. Entries sit beyond 2^32, one storage is itself larger than 4 GiB, and the central
 * directory uses zip64 extras holding only the fields that overflowed.
 */
import { describe, expect, it } from 'vitest';
import { checkRange, type ByteSource } from '../../../src/io/source.js';
import { readPytorch } from '../../../src/formats/pytorch/read.js';
import { cat, f32Bytes, stateDictPickle } from './read-helpers.js';

class SparseSource implements ByteSource {
  readonly name = 'sparse.pt';
  reads = 0;
  constructor(readonly size: number, private readonly runs: [number, Uint8Array][]) {}
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    if (length > 64 * 1024 * 1024) throw new Error(`test source: refusing a ${length}-byte read`);
    this.reads++;
    const out = new Uint8Array(length);
    for (const [at, b] of this.runs) {
      const from = Math.max(at, offset);
      const to = Math.min(at + b.length, offset + length);
      if (from < to) out.set(b.subarray(from - at, to - at), from - offset);
    }
    return out;
  }
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    target.set(await this.read(offset, target.byteLength));
  }
}

const le = (v: number, n: number) => Array.from({ length: n }, (_, i) => Math.floor(v / 2 ** (8 * i)) % 256);
const enc = new TextEncoder();

function local(name: string, size32: number): Uint8Array {
  const n = enc.encode(name);
  return cat([...le(0x04034b50, 4), 45, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...le(0, 4), ...le(size32, 4), ...le(size32, 4), ...le(n.length, 2), 0, 0], n);
}
function central(name: string, size: number, offset: number): Uint8Array {
  const n = enc.encode(name);
  const bigSize = size >= 0xffffffff;
  const bigOff = offset >= 0xffffffff;
  const extraBody = [...(bigSize ? [...le(size, 8), ...le(size, 8)] : []), ...(bigOff ? le(offset, 8) : [])];
  const extra = extraBody.length ? [...le(1, 2), ...le(extraBody.length, 2), ...extraBody] : [];
  return cat([...le(0x02014b50, 4), 45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...le(0, 4),
    ...le(bigSize ? 0xffffffff : size, 4), ...le(bigSize ? 0xffffffff : size, 4), ...le(n.length, 2), ...le(extra.length, 2), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ...le(bigOff ? 0xffffffff : offset, 4)], n, extra);
}

describe('zip64 beyond 4 GiB', () => {
  it('locates entries past 2^32 and a storage larger than 4 GiB, reading only headers', async () => {
    const pkl = stateDictPickle([
      { name: 'far', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] },
      { name: 'huge', key: '1', numel: 1_250_000_001, shape: [1_250_000_001], stride: [1] },
      { name: 'huge_tail', key: '1', numel: 1_250_000_001, offset: 1_250_000_000, shape: [1], stride: [1] },
    ]);
    const runs: [number, Uint8Array][] = [];
    const h0 = local('big/data.pkl', pkl.length);
    runs.push([0, cat(h0, pkl)]);
    const farOff = 4_500_000_000;
    const farData = f32Bytes([1, 2, 3, 4, 5, 6]);
    const h1 = local('big/data/0', farData.length);
    runs.push([farOff, cat(h1, farData)]);
    const hugeOff = farOff + h1.length + farData.length;
    const hugeSize = 1_250_000_001 * 4; // > 4 GiB
    const h2 = local('big/data/1', 0xffffffff);
    runs.push([hugeOff, h2]);
    const hugeLast = f32Bytes([42]);
    runs.push([hugeOff + h2.length + hugeSize - 4, hugeLast]);
    const cdOff = hugeOff + h2.length + hugeSize;
    const cd = cat(central('big/data.pkl', pkl.length, 0), central('big/data/0', farData.length, farOff), central('big/data/1', hugeSize, hugeOff));
    const eocd64Off = cdOff + cd.length;
    const tail = cat(
      [...le(0x06064b50, 4), ...le(44, 8), 45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...le(3, 8), ...le(3, 8), ...le(cd.length, 8), ...le(cdOff, 8)],
      [...le(0x07064b50, 4), 0, 0, 0, 0, ...le(eocd64Off, 8), 1, 0, 0, 0],
      [...le(0x06054b50, 4), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, ...le(0xffffffff, 4), ...le(0xffffffff, 4), 0, 0],
    );
    runs.push([cdOff, cat(cd, tail)]);
    const src = new SparseSource(cdOff + cd.length + tail.length, runs);

    const pt = await readPytorch(src);
    expect(pt.tensors.map((t) => [t.name, t.byteLength])).toEqual([['far', 24], ['huge', hugeSize], ['huge_tail', 4]]);
    const before = src.reads;
    expect([...new Float32Array((await pt.tensors[0]!.load()).slice().buffer)]).toEqual([1, 4, 2, 5, 3, 6]);
    expect([...new Float32Array((await pt.tensors[2]!.load()).slice().buffer)]).toEqual([42]);
    expect(src.reads - before).toBe(2);
    expect(src.reads).toBeLessThan(12);
  });
});
