/**
 * View materialisation against a naive per-element reference: random shapes, strides (incl. 0 and
 * transposed), offsets and element sizes 1–16, through the span-gather path and the row-by-row
 * path taken for sparse views of huge spans.
 */
import { describe, expect, it } from 'vitest';
import { MemorySource } from '../../../src/io/source.js';
import { readView, swapInPlace, viewExtent, type ViewSpec } from '../../../src/formats/pytorch/strided.js';
import { rng } from '../../kernels/helpers.js';

function naive(storage: Uint8Array, base: number, v: ViewSpec): Uint8Array {
  const n = v.shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * v.elemSize);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let e = v.offset;
    for (let d = v.shape.length - 1; d >= 0; d--) {
      e += (rem % v.shape[d]!) * v.stride[d]!;
      rem = Math.floor(rem / v.shape[d]!);
    }
    out.set(storage.subarray(base + e * v.elemSize, base + (e + 1) * v.elemSize), i * v.elemSize);
  }
  return out;
}

describe('strided view materialisation', () => {
  it('matches the per-element reference on 600 random views', async () => {
    const r = rng(42);
    const pick = (n: number) => Math.floor(r() * n);
    const storage = new Uint8Array(200_000).map(() => pick(256));
    // Odd base offset: the span buffer is unaligned and must be realigned before word copies.
    const base = 13;
    const src = new MemorySource(storage);
    let checked = 0;
    for (let c = 0; c < 600; c++) {
      const es = [1, 2, 4, 8, 16, 3][pick(6)]!;
      const nd = pick(5);
      const shape = Array.from({ length: nd }, () => pick(6));
      const stride = Array.from({ length: nd }, () => (r() < 0.15 ? 0 : pick(40)));
      if (r() < 0.3 && nd > 0) {
        // C-contiguous strides, sometimes transposed.
        let s = 1;
        for (let d = nd - 1; d >= 0; d--) {
          stride[d] = s;
          s *= Math.max(1, shape[d]!);
        }
        if (nd >= 2 && r() < 0.5) [stride[0], stride[1], shape[0], shape[1]] = [stride[1]!, stride[0]!, shape[1]!, shape[0]!];
      }
      const v: ViewSpec = { offset: pick(50), shape, stride, elemSize: es };
      const ext = viewExtent(v, {});
      if ((ext.end * es) + base > storage.length) continue;
      const want = naive(storage, base, v);
      expect(await readView(src, base, v, ext), JSON.stringify(v)).toEqual(want);
      // Force the row-by-row path (tiny span limit).
      expect(await readView(src, base, v, ext, 64), `rows ${JSON.stringify(v)}`).toEqual(want);
      checked++;
    }
    expect(checked).toBeGreaterThan(400);
  });

  it('detects C-contiguity ignoring size-1 dims, and rejects overflowing views', () => {
    expect(viewExtent({ offset: 0, shape: [3, 1, 4], stride: [4, 99, 1], elemSize: 4 }, {}).contiguous).toBe(true);
    expect(viewExtent({ offset: 0, shape: [3, 4], stride: [1, 3], elemSize: 4 }, {}).contiguous).toBe(false);
    expect(viewExtent({ offset: 5, shape: [0, 4], stride: [4, 1], elemSize: 4 }, {})).toEqual({ numel: 0, end: 0, contiguous: true });
    expect(() => viewExtent({ offset: 0, shape: [2 ** 30, 2 ** 30], stride: [2 ** 30, 1], elemSize: 8 }, { tensor: 't' })).toThrow(/E_OUT_OF_RANGE/);
  });

  it('swapInPlace reverses each word', () => {
    const b = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    swapInPlace(b, 4);
    expect([...b]).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
  });
});
