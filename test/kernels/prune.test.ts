import { beforeAll, describe, expect, it } from 'vitest';
import { type Kernels, initKernels } from '../../src/kernels/loader.js';
import { applyMask, magnitudeMask, magnitudePrune, nmMask, nmPrune } from '../../src/kernels/prune.js';
import { applyMaskRef, magnitudeMaskRef, magnitudePruneRef, nmMaskRef, nmPruneRef } from '../../src/kernels/reference/prune.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { FLAVORS, LENGTHS, randomF32, rng } from './helpers.js';

type Opts = { kernels?: Kernels; windowBytes?: number };

const K: Partial<Record<'simd' | 'scalar', Kernels>> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

/** Every implementation under test; windowed ones use a tiny window to force many windows. */
function impls(): { name: string; opts?: Opts }[] {
  const out: { name: string; opts?: Opts }[] = [{ name: 'reference' }];
  for (const f of FLAVORS) {
    out.push({ name: f, opts: { kernels: K[f]! } });
    out.push({ name: `${f}-windowed`, opts: { kernels: K[f]!, windowBytes: 700 } });
  }
  return out;
}

const mMask = (w: Float32Array, k: number, o?: Opts): Uint8Array => (o ? magnitudeMask(w, k, o) : magnitudeMaskRef(w, k));
const nm = (w: Float32Array, shape: number[], axis: number, n: number, m: number, o?: Opts): Uint8Array =>
  (o ? nmMask(w, shape, axis, n, m, o) : nmMaskRef(w, shape, axis, n, m));

/** Independent oracle: sort positions by (|w| with NaN largest, index) and take the first k. */
function sortOracle(w: Float32Array, k: number): Uint8Array {
  const mag = (x: number): number => (Number.isNaN(x) ? Infinity : Math.abs(x));
  const order = Array.from(w.keys()).sort((a, b) => {
    const ma = mag(w[a]!);
    const mb = mag(w[b]!);
    if (ma !== mb) return ma < mb ? -1 : 1;
    // NaN and Inf both map to Infinity above; NaN ranks above Inf.
    const na = Number.isNaN(w[a]!) ? 1 : 0;
    const nb = Number.isNaN(w[b]!) ? 1 : 0;
    return na - nb || a - b;
  });
  const mask = new Uint8Array(w.length);
  for (let i = 0; i < k; i++) mask[order[i]!] = 1;
  return mask;
}

/** Heavily tied data: few distinct magnitudes, both signed zeros, NaN and Inf. */
function tied(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const vals = [0, -0, 1, -1, 0.5, -0.5, 2, NaN, Infinity, -Infinity, 1e-40];
  return Float32Array.from({ length: n }, () => vals[Math.floor(r() * vals.length)]!);
}

const count = (m: Uint8Array): number => m.reduce((a, b) => a + b, 0);

/** Index of the first difference, or -1 (expect().toEqual is far too slow on 300k-element arrays). */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('magnitude pruning: exact k, deterministic ties, all implementations identical', () => {
  for (const n of LENGTHS) {
    it(`n=${n}`, () => {
      for (const [label, w] of [['random', randomF32(n, 11 + n, true)], ['tied', tied(n, 5 + n)]] as const) {
        const r = rng(n + 3);
        const ks = [...new Set([0, n, Math.min(1, n), n >> 1, Math.floor(r() * (n + 1)), Math.max(0, n - 1)])];
        for (const k of ks) {
          const oracle = n <= 70000 ? sortOracle(w, k) : undefined; // the oracle sort is slow beyond that
          const expected = magnitudeMaskRef(w, k);
          expect(count(expected), `${label} k=${k}`).toBe(k);
          if (oracle) expect(firstDiff(expected, oracle), `${label} k=${k} vs sort`).toBe(-1);
          for (const { name, opts } of impls()) {
            const mask = mMask(w, k, opts);
            expect(firstDiff(mask, expected), `${label} n=${n} k=${k} ${name}`).toBe(-1);
          }
        }
      }
    });
  }

  it('zeroes exactly k for every k on a small tied array', () => {
    const w = tied(97, 1);
    for (let k = 0; k <= w.length; k++) {
      const oracle = sortOracle(w, k);
      for (const { name, opts } of impls()) {
        const pruned = opts ? magnitudePrune(w, k, opts) : magnitudePruneRef(w, k);
        const zeroed = oracle.reduce((a, m, i) => a + (m && Object.is(pruned[i], 0) ? 1 : 0), 0);
        expect(zeroed, `k=${k} ${name}`).toBe(k);
        // Everything not selected is untouched (NaN stays NaN, -0 stays -0).
        for (let i = 0; i < w.length; i++) if (!oracle[i]) expect(Object.is(pruned[i], w[i]), `k=${k} ${name} #${i}`).toBe(true);
      }
    }
  });

  it('NaN counts as the largest magnitude: pruned only after every number', () => {
    const w = Float32Array.from([NaN, 1, -Infinity, NaN, 0, -2, 3e38]);
    for (const { name, opts } of impls()) {
      expect(Array.from(mMask(w, 5, opts)), name).toEqual([0, 1, 1, 0, 1, 1, 1]);
      expect(Array.from(mMask(w, 6, opts)), name).toEqual([1, 1, 1, 0, 1, 1, 1]); // NaNs tie: lower index first
    }
  });
});

describe('mask apply', () => {
  for (const n of LENGTHS) {
    it(`n=${n}: zeroes the selected as +0 and returns their count`, () => {
      const w = randomF32(n, 77 + n, true);
      const r = rng(n);
      const mask = Uint8Array.from({ length: n }, () => (r() < 0.3 ? Math.floor(r() * 255) + 1 : 0));
      const want = applyMaskRef(w, mask);
      expect(want.count).toBe(mask.reduce((a, b) => a + (b ? 1 : 0), 0));
      const wantBits = new Uint32Array(want.values.buffer);
      const inBits = new Uint32Array(w.buffer);
      expect(firstDiff(wantBits, inBits.map((b, i) => (mask[i] ? 0 : b)))).toBe(-1);
      for (const { name, opts } of impls()) {
        if (!opts) continue;
        const got = applyMask(w, mask, opts);
        expect(got.count, name).toBe(want.count);
        expect(firstDiff(new Uint32Array(got.values.buffer), wantBits), name).toBe(-1);
      }
    });
  }
});

describe('N:M masks', () => {
  // [shape, axis, N, M]: lengths 0, 1, 3, 4k±1 and large; inner == 1 (the contiguous 2:4 path),
  // inner >= 4 (lanes across inner, with a scalar tail) and small inner.
  const cases: [number[], number, number, number][] = [
    [[0, 4], 1, 2, 4],
    [[1], 0, 1, 1],
    [[1, 3], 1, 2, 3],
    [[4, 1023], 0, 2, 4],
    [[4, 1025], 0, 2, 4],
    [[3, 4095], 0, 1, 3],
    [[257, 16], 1, 2, 4],
    [[256, 16], -1, 2, 4],
    [[16, 8, 3], 1, 1, 4],
    [[2, 8, 5, 7], 1, 3, 8],
    [[64, 32, 3, 3], 1, 2, 4],
    [[1024, 300], 1, 2, 4],
    [[300, 1024], 0, 2, 4],
    [[12, 6], 1, 0, 2],
    [[12, 6], 1, 2, 2],
  ];
  for (const [shape, axis, n, m] of cases) {
    it(`${n}:${m} shape [${shape.join(', ')}] axis ${axis}`, () => {
      const size = shape.reduce((a, d) => a * d, 1);
      for (const w of [randomF32(size, size + 1, true), tied(size, size + 2)]) {
        const expected = nmMaskRef(w, shape, axis, n, m);
        checkGroups(expected, w, shape, axis, n, m);
        for (const { name, opts } of impls()) {
          if (!opts) continue;
          expect(firstDiff(nm(w, shape, axis, n, m, opts), expected), name).toBe(-1);
        }
      }
    });
  }

  it('keeps the lower index among equal magnitudes', () => {
    const w = Float32Array.from([1, -1, 1, 1, 5, 5, -5, 5, NaN, 0, NaN, 7]);
    for (const { name, opts } of impls()) {
      expect(Array.from(nm(w, [3, 4], 1, 2, 4, opts)), name).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1]);
      const pruned = opts ? nmPrune(w, [3, 4], 1, 2, 4, opts) : nmPruneRef(w, [3, 4], 1, 2, 4);
      expect(Array.from(pruned), name).toEqual([1, -1, 0, 0, 5, 5, 0, 0, NaN, 0, NaN, 0]);
    }
  });
});

/** Each group of M along the axis has exactly M - N pruned, and no pruned |w| beats a kept one. */
function checkGroups(mask: Uint8Array, w: Float32Array, shape: number[], axis: number, n: number, m: number): void {
  const ax = axis < 0 ? axis + shape.length : axis;
  const len = shape[ax]!;
  const inner = shape.slice(ax + 1).reduce((a, d) => a * d, 1);
  const outer = shape.slice(0, ax).reduce((a, d) => a * d, 1);
  const mag = (x: number): number => (Number.isNaN(x) ? Infinity : Math.abs(x));
  for (let o = 0; o < outer; o++) {
    for (let g = 0; g < len; g += m) {
      for (let i = 0; i < inner; i++) {
        let pruned = 0;
        let maxPruned = -1;
        let minKept = Infinity;
        for (let j = 0; j < m; j++) {
          const at = (o * len + g + j) * inner + i;
          if (mask[at]) { pruned++; maxPruned = Math.max(maxPruned, mag(w[at]!)); } else minKept = Math.min(minKept, mag(w[at]!));
        }
        if (pruned !== m - n || maxPruned > minKept) {
          expect.fail(`group at outer ${o}, axis ${g}, inner ${i}: ${pruned} pruned (want ${m - n}), max pruned |w| ${maxPruned} vs min kept ${minKept}`);
        }
      }
    }
  }
}

describe('prune argument errors are ModelsmithError E_KERNEL_ARG', () => {
  const w = randomF32(24, 1);
  const bad: [string, (o?: Opts) => unknown][] = [
    ['k < 0', (o) => mMask(w, -1, o)],
    ['k > n', (o) => mMask(w, 25, o)],
    ['k not an integer', (o) => mMask(w, 2.5, o)],
    ['mask length differs', (o) => (o ? applyMask(w, new Uint8Array(23), o) : applyMaskRef(w, new Uint8Array(23)))],
    ['M = 0', (o) => nm(w, [6, 4], 1, 0, 0, o)],
    ['N > M', (o) => nm(w, [6, 4], 1, 5, 4, o)],
    ['N negative', (o) => nm(w, [6, 4], 1, -1, 4, o)],
    ['axis out of range', (o) => nm(w, [6, 4], 2, 2, 4, o)],
    ['axis length not a multiple of M', (o) => nm(w, [6, 4], 0, 2, 4, o)],
    ['shape does not match the data', (o) => nm(w, [5, 4], 1, 2, 4, o)],
    ['negative dimension', (o) => nm(w, [-6, -4], 1, 2, 4, o)],
  ];
  for (const [label, fn] of bad) {
    it(label, () => {
      for (const { name, opts } of impls()) {
        let err: unknown;
        try { fn(opts); } catch (e) { err = e; }
        expect(err, name).toBeInstanceOf(ModelsmithError);
        expect((err as ModelsmithError).code, name).toBe('E_KERNEL_ARG');
      }
    });
  }
});

describe('magnitudePrune on large tensors and with a caller-owned output', () => {
  const n = 1_000_003;
  const w = randomF32(n, 4242, true);
  // Many exact ties: quantized values force the tie-break rule on large inputs.
  const tied = new Float32Array(n).map((_, i) => (((i * 7919) % 61) - 30) / 8);
  for (const [label, data] of [['random+specials', w], ['tied', tied]] as const) {
    for (const k of [1, n >>> 1, n - 1]) {
      it(`${label}, k=${k}: SIMD, scalar and windowed equal the reference bit for bit`, () => {
        const want = magnitudePruneRef(data, k);
        for (const impl of impls().slice(1)) {
          const got = magnitudePrune(data, k, impl.opts);
          expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), impl.name).toBe(true);
        }
      });
    }
  }

  it('writes into `out` (and prunes in place when out is the input)', () => {
    const k = 12345;
    const want = magnitudePruneRef(w, k);
    const out = new Float32Array(n);
    expect(magnitudePrune(w, k, { kernels: K.simd!, out })).toBe(out);
    expect(Buffer.from(out.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    const inPlace = w.slice();
    magnitudePrune(inPlace, k, { kernels: K.scalar!, out: inPlace });
    expect(Buffer.from(inPlace.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  });

  it('an `out` of the wrong length is E_KERNEL_ARG', () => {
    expect(() => magnitudePrune(w, 3, { kernels: K.simd!, out: new Float32Array(5) })).toThrowError(/E_KERNEL_ARG/);
  });
});
