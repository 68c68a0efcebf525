import { describe, expect, it } from 'vitest';
import { sparsityAt } from '../../src/train/schedule.js';
import { epochSeed, permutation } from '../../src/train/shuffle.js';
import { arrayBatches } from '../../src/train/data.js';

describe('sparsity schedules', () => {
  it('constant', () => {
    expect([1, 2, 5].map((t) => sparsityAt({ kind: 'constant', sparsity: 0.7 }, t, 5))).toEqual([0.7, 0.7, 0.7]);
  });
  it('polynomial (Zhu & Gupta cubic)', () => {
    const s = { kind: 'polynomial', initial: 0, final: 0.8 } as const;
    const v = [0, 1, 2, 3, 4].map((t) => sparsityAt(s, t, 4));
    // s_t = 0.8 + (0 − 0.8)(1 − t/4)^3
    const want = [0, 0.8 - 0.8 * 0.421875, 0.8 - 0.8 * 0.125, 0.8 - 0.8 * 0.015625, 0.8];
    v.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 12));
    expect(sparsityAt({ ...s, initial: 0.2 }, 2, 4)).toBeCloseTo(0.8 - 0.6 * 0.125, 12);
    expect(sparsityAt({ ...s, power: 1 }, 1, 4)).toBeCloseTo(0.2, 12);
    expect(sparsityAt(s, 9, 4)).toBe(0.8);
  });
  it('refuses bad values', () => {
    expect(() => sparsityAt({ kind: 'constant', sparsity: 1 }, 1, 1)).toThrow(/E_OUT_OF_RANGE/);
    expect(() => sparsityAt({ kind: 'polynomial', initial: 0, final: 0.5 }, 1, 0)).toThrow(/E_OUT_OF_RANGE.*round count/);
    expect(() => sparsityAt({ kind: 'cosine' } as never, 1, 1)).toThrow(/E_UNSUPPORTED/);
  });
});

describe('deterministic shuffling and batches', () => {
  it('same seed, same permutation; a permutation of all indices', () => {
    const a = permutation(100, 5);
    expect([...a]).toEqual([...permutation(100, 5)]);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect([...a]).not.toEqual([...permutation(100, 6)]);
    expect(epochSeed(5, 0)).not.toBe(epochSeed(5, 1));
  });
  it('batches gather the right samples and labels, reshuffled per epoch', () => {
    const x = Float32Array.from({ length: 10 * 2 }, (_, i) => Math.floor(i / 2));
    const labels = Int32Array.from({ length: 10 }, (_, i) => i % 3);
    const src = arrayBatches({ x, sampleDims: [2], labels, inputName: 'in' }, { batchSize: 4, seed: 1 });
    const e0 = [...src(0)];
    expect(e0.map((b) => b.indices!.length)).toEqual([4, 4, 2]);
    for (const b of e0) {
      const xs = b.inputs.in!.data as Float32Array;
      b.indices!.forEach((s, i) => {
        expect(xs[2 * i]).toBe(s);
        expect(b.labels![i]).toBe(s % 3);
      });
    }
    const order0 = e0.flatMap((b) => [...b.indices!]);
    const order1 = [...src(1)].flatMap((b) => [...b.indices!]);
    expect(order0).not.toEqual(order1);
    expect(order0).toEqual([...src(0)].flatMap((b) => [...b.indices!]));
    expect(() => arrayBatches({ x, sampleDims: [3], inputName: 'in' }, { batchSize: 2 })).toThrow(/E_OUT_OF_RANGE/);
    expect(() => arrayBatches({ x, sampleDims: [2], inputName: 'in' }, { batchSize: 0 })).toThrow(/E_OUT_OF_RANGE.*batch size/);
  });
});
