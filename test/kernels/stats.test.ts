import { beforeAll, describe, expect, it } from 'vitest';
import { initKernels } from '../../src/kernels/loader.js';
import type { Kernels } from '../../src/kernels/loader.js';
import * as wasm from '../../src/kernels/stats.js';
import * as ref from '../../src/kernels/reference/stats.js';
import { FLAVORS, LENGTHS, f32Bits as bits, randomF32, rng } from './helpers.js';

const K: Record<string, Kernels> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

function sameMinMax(a: ref.MinMax, b: ref.MinMax): boolean {
  return bits(a.min) === bits(b.min) && bits(a.max) === bits(b.max) && bits(a.absmax) === bits(b.absmax);
}
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (bits(a[i]!) !== bits(b[i]!)) return i;
  return -1;
}
function sameAxis(a: ref.AxisMinMax, b: ref.AxisMinMax): boolean {
  return firstDiff(a.min, b.min) === -1 && firstDiff(a.max, b.max) === -1 && firstDiff(a.absmax, b.absmax) === -1;
}

describe('stats: per-tensor min/max/absmax', () => {
  it('known values, NaN skipped, -0 < +0', () => {
    for (const f of FLAVORS) {
      const o = { kernels: K[f]! };
      expect(wasm.minMax(new Float32Array([3, NaN, -2, 7, 1]), o)).toEqual({ min: -2, max: 7, absmax: 7 });
      expect(wasm.minMax(new Float32Array([-9, 4]), o)).toEqual({ min: -9, max: 4, absmax: 9 });
      const z = wasm.minMax(new Float32Array([0, -0, 0, 0, -0, 0, 0, 0, 0, 0]), o);
      expect(Object.is(z.min, -0) && Object.is(z.max, 0) && Object.is(z.absmax, 0)).toBe(true);
      const nz = wasm.minMax(new Float32Array(9).fill(-0), o);
      expect(Object.is(nz.min, -0) && Object.is(nz.max, -0) && Object.is(nz.absmax, 0)).toBe(true);
      expect(wasm.minMax(new Float32Array([NaN, -Infinity, 2]), o)).toEqual({ min: -Infinity, max: 2, absmax: Infinity });
    }
  });

  it('empty and all-NaN give NaN', () => {
    for (const x of [new Float32Array(0), new Float32Array(37).fill(NaN)]) {
      for (const f of FLAVORS) {
        const r = wasm.minMax(x, { kernels: K[f]! });
        expect([r.min, r.max, r.absmax].every((v) => Number.isNaN(v))).toBe(true);
      }
      expect(Number.isNaN(ref.minMax(x).min)).toBe(true);
    }
  });

  for (const n of LENGTHS) {
    it(`reference, simd and scalar agree bit for bit (n=${n})`, () => {
      for (const specials of [false, true]) {
        const x = randomF32(n, 1000 + n, specials);
        const want = ref.minMax(x);
        for (const f of FLAVORS) {
          expect(sameMinMax(wasm.minMax(x, { kernels: K[f]! }), want)).toBe(true);
          // Forced windowing: 16 floats, then an odd window size.
          expect(sameMinMax(wasm.minMax(x, { kernels: K[f]!, windowBytes: 64 }), want)).toBe(true);
          expect(sameMinMax(wasm.minMax(x, { kernels: K[f]!, windowBytes: 4 * 1021 }), want)).toBe(true);
        }
      }
    });
  }

  it('extremes hidden anywhere, including SIMD tails and signed zeros', () => {
    const r = rng(7);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(r() * 70);
      const x = new Float32Array(n).map(() => (r() < 0.3 ? (r() < 0.5 ? 0 : -0) : r() < 0.2 ? NaN : r() - 0.5));
      const want = ref.minMax(x);
      for (const f of FLAVORS) expect(sameMinMax(wasm.minMax(x, { kernels: K[f]! }), want)).toBe(true);
    }
  });
});

describe('stats: per-channel along any axis', () => {
  const cases: [number[], number[]][] = [
    [[7, 5, 3], [0, 1, 2, -1, -3]],
    [[1000, 17], [0, 1]],
    [[3, 4097], [0, 1]],
    [[65537], [0]],
    [[4, 1, 9, 33], [0, 1, 2, 3]],
    [[2, 0, 3], [0, 1, 2]],
    [[64, 3, 2], [2]],
    [[257, 300], [0, 1]],
  ];
  for (const [shape, axes] of cases) {
    for (const axis of axes) {
      it(`shape [${shape}] axis ${axis}`, () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = randomF32(n, n + axis * 31, true);
        const want = ref.minMaxAxis(x, shape, axis);
        expect(want.min.length).toBe(shape[(axis + shape.length) % shape.length]);
        for (const f of FLAVORS) {
          const k = K[f]!;
          expect(sameAxis(wasm.minMaxAxis(x, shape, axis, { kernels: k }), want)).toBe(true);
          // Windows that start mid-channel and mid-row.
          expect(sameAxis(wasm.minMaxAxis(x, shape, axis, { kernels: k, windowBytes: 4 * 7 }), want)).toBe(true);
          if (n < 5000) expect(sameAxis(wasm.minMaxAxis(x, shape, axis, { kernels: k, windowBytes: 4 }), want)).toBe(true);
        }
      });
    }
  }

  it('matches a direct computation and marks NaN-only channels', () => {
    // [2, 3, 2] along axis 1: channel c holds x[o, c, i] for all o, i.
    const x = new Float32Array([1, -5, NaN, NaN, 0, 2, 8, 3, NaN, NaN, -0, 4]);
    for (const f of FLAVORS) {
      const r = wasm.minMaxAxis(x, [2, 3, 2], 1, { kernels: K[f]! });
      expect(Array.from(r.min)).toEqual([-5, NaN, -0]);
      expect(Array.from(r.max)).toEqual([8, NaN, 4]);
      expect(Array.from(r.absmax)).toEqual([8, NaN, 4]);
    }
  });
});

describe('stats: argument errors', () => {
  const x = new Float32Array(12);
  for (const f of FLAVORS) {
    it(`axis out of range (${f})`, () => {
      expect(() => wasm.minMaxAxis(x, [3, 4], 2, { kernels: K[f]! })).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
      expect(() => wasm.minMaxAxis(x, [3, 4], -3, { kernels: K[f]! })).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
      expect(() => wasm.minMaxAxis(x, [3, 4], 0.5, { kernels: K[f]! })).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
      expect(() => wasm.minMaxAxis(new Float32Array(1), [], 0, { kernels: K[f]! })).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
    });
    it(`shape does not match the data length (${f})`, () => {
      expect(() => wasm.minMaxAxis(x, [5, 4], 0, { kernels: K[f]! })).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
      expect(() => wasm.minMaxAxis(x, [-3, -4], 0, { kernels: K[f]! })).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
    });
  }
  it('reference throws the same errors', () => {
    expect(() => ref.minMaxAxis(x, [3, 4], 2)).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
    expect(() => ref.minMaxAxis(x, [3, 5], 0)).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
  });
});

describe('stats: checked min/max (non-finite count in the same pass)', () => {
  const cases: [string, Float32Array][] = [
    ['finite', randomF32(4097, 11)],
    ['with specials', randomF32(65537, 12, true)],
    ['empty', new Float32Array(0)],
    ['all NaN', new Float32Array(9).fill(NaN)],
    ['Inf only', new Float32Array([Infinity, -Infinity, 1, 2, 3, 4, 5, 6, 7, 8])],
  ];
  for (const [label, x] of cases) {
    it(`per tensor and per channel agree with the reference (${label})`, () => {
      const want = ref.minMaxChecked(x);
      expect(want.nonFinite).toBe(x.filter((v) => !Number.isFinite(v)).length);
      const shape = x.length % 17 === 0 && x.length > 0 ? [x.length / 17, 17] : [x.length];
      const wantAxis = ref.minMaxAxisChecked(x, shape, -1);
      for (const f of FLAVORS) {
        for (const windowBytes of [undefined, 4 * 7, 4 * 1021]) {
          const o = { kernels: K[f]!, windowBytes };
          const got = wasm.minMaxChecked(x, o);
          expect(got.nonFinite).toBe(want.nonFinite);
          expect(sameMinMax(got, want)).toBe(true);
          const ga = wasm.minMaxAxisChecked(x, shape, -1, o);
          expect(ga.nonFinite).toBe(want.nonFinite);
          expect(sameAxis(ga, wantAxis)).toBe(true);
        }
      }
    });
  }

  it('per channel with inner > 1 and inner == 1, windows cut anywhere', () => {
    const x = randomF32(3 * 4097, 99, true);
    for (const axis of [0, 1]) {
      const want = ref.minMaxAxisChecked(x, [3, 4097], axis);
      for (const f of FLAVORS) {
        const got = wasm.minMaxAxisChecked(x, [3, 4097], axis, { kernels: K[f]!, windowBytes: 4 * 1000 });
        expect(got.nonFinite).toBe(want.nonFinite);
        expect(sameAxis(got, want)).toBe(true);
      }
    }
  });

  it('a shape that does not match the data is E_KERNEL_ARG', () => {
    expect(() => wasm.minMaxAxisChecked(new Float32Array(6), [4, 2], 0)).toThrow(expect.objectContaining({ code: 'E_KERNEL_ARG' }));
  });
});
