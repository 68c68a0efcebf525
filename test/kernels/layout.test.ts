import { beforeAll, describe, expect, it } from 'vitest';
import { type Kernels, initKernels } from '../../src/kernels/loader.js';
import { type ElementArray, type Layout4D, permute4d, transpose2d } from '../../src/kernels/layout.js';
import { permute4dRef, transpose2dRef } from '../../src/kernels/reference/layout.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { FLAVORS, rng } from './helpers.js';

type Opts = { kernels?: Kernels; windowBytes?: number; elementSize?: number };

const K: Partial<Record<'simd' | 'scalar', Kernels>> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

/** Reference, both builds, and both builds with a window small enough to force many tiles. */
function impls(): { name: string; opts: Opts }[] {
  const out: { name: string; opts: Opts }[] = [{ name: 'reference', opts: {} }];
  for (const f of FLAVORS) {
    out.push({ name: f, opts: { kernels: K[f]! } });
    out.push({ name: `${f}-windowed`, opts: { kernels: K[f]!, windowBytes: 600 } });
  }
  return out;
}

// Options without `kernels` select the plain-TS reference.
const tr = <T extends ElementArray>(x: T, r: number, c: number, o: Opts): T => (o.kernels ? transpose2d(x, r, c, o) : transpose2dRef(x, r, c, o));
const pm = <T extends ElementArray>(x: T, s: number[], l: Layout4D, o: Opts): { data: T; shape: number[] } =>
  (o.kernels ? permute4d(x, s, l, o) : permute4dRef(x, s, l, o));

/** Random bytes viewed as each element size (8-byte floats include NaN payloads: copied as bits). */
function randomArrays(n: number, seed: number): ElementArray[] {
  const r = rng(seed);
  const bytes = Uint8Array.from({ length: n * 8 }, () => Math.floor(r() * 256));
  return [
    bytes.slice(0, n),
    new Uint16Array(bytes.buffer.slice(0, n * 2)),
    new Float32Array(bytes.buffer.slice(0, n * 4)),
    new Float64Array(bytes.buffer.slice(0, n * 8)),
  ];
}

function raw(a: ElementArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** First differing byte, or -1. */
function firstDiff(a: ElementArray, b: ElementArray): number {
  const x = raw(a);
  const y = raw(b);
  if (x.length !== y.length) return -2;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** Naive index-formula permutation, element by element as raw bytes: the independent oracle. */
function naive(src: ElementArray, shape: number[], perm: number[]): Uint8Array {
  const es = src.BYTES_PER_ELEMENT;
  const s = raw(src);
  const out = new Uint8Array(s.length);
  const outShape = perm.map((p) => shape[p]!);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, d) => a * d, 1));
  const n = shape.reduce((a, d) => a * d, 1);
  const idx = new Array<number>(outShape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let rem = o;
    for (let d = outShape.length - 1; d >= 0; d--) { idx[d] = rem % outShape[d]!; rem = Math.floor(rem / outShape[d]!); }
    let si = 0;
    for (let d = 0; d < perm.length; d++) si += idx[d]! * strides[perm[d]!]!;
    out.set(s.subarray(si * es, (si + 1) * es), o * es);
  }
  return out;
}

const PERMS: Record<Layout4D, number[]> = {
  'NCHW->NHWC': [0, 2, 3, 1],
  'NHWC->NCHW': [0, 3, 1, 2],
  'OIHW->HWIO': [2, 3, 1, 0],
  'HWIO->OIHW': [3, 2, 0, 1],
};

describe('2-D transpose: all element sizes, all implementations bit-identical to the index formula', () => {
  // Element counts 0, 1, 3, 4k±1 and large; square, skinny and tile-unaligned shapes.
  const shapes: [number, number][] = [[0, 5], [5, 0], [1, 1], [1, 3], [3, 1], [4, 4], [63, 65], [17, 241], [33, 31], [2, 2049], [517, 613]];
  for (const [rows, cols] of shapes) {
    it(`[${rows}, ${cols}]`, () => {
      for (const x of randomArrays(rows * cols, rows * 1000 + cols)) {
        const want = naive(x, [rows, cols], [1, 0]);
        for (const { name, opts } of impls()) {
          const got = tr(x, rows, cols, opts);
          expect(got.constructor, name).toBe(x.constructor);
          expect(firstDiff(got, want), `es=${x.BYTES_PER_ELEMENT} ${name}`).toBe(-1);
        }
      }
    });
  }

  it('raw bytes with an explicit element size, at an unaligned offset', () => {
    const base = randomArrays(3 + 7 * 9 * 8, 3)[0] as Uint8Array;
    for (const es of [1, 2, 4, 8]) {
      const src = base.subarray(3, 3 + 7 * 9 * es); // odd byteOffset
      const want = naive(new (es === 1 ? Uint8Array : es === 2 ? Uint16Array : es === 4 ? Uint32Array : Float64Array)(src.slice().buffer), [7, 9], [1, 0]);
      for (const { name, opts } of impls()) {
        expect(firstDiff(tr(src, 7, 9, { ...opts, elementSize: es }), want), `es=${es} ${name}`).toBe(-1);
      }
    }
  });
});

describe('4-D layout changes', () => {
  const shapes = [[0, 2, 3, 4], [1, 1, 1, 1], [1, 3, 1, 1], [3, 5, 7, 39], [2, 5, 19, 43], [64, 32, 3, 3], [4, 3, 65, 67], [16, 64, 7, 7]];
  for (const layout of Object.keys(PERMS) as Layout4D[]) {
    it(layout, () => {
      for (const shape of shapes) {
        const n = shape.reduce((a, d) => a * d, 1);
        for (const x of randomArrays(n, n + shape[1]!)) {
          const want = naive(x, shape, PERMS[layout]);
          for (const { name, opts } of impls()) {
            const got = pm(x, shape, layout, opts);
            expect(got.shape).toEqual(PERMS[layout].map((p) => shape[p]!));
            expect(firstDiff(got.data, want), `[${shape.join(', ')}] es=${x.BYTES_PER_ELEMENT} ${name}`).toBe(-1);
          }
        }
      }
    });
  }

  it('round trips are the identity', () => {
    const x = randomArrays(6 * 5 * 4 * 3, 9)[2]!;
    const shape = [6, 5, 4, 3];
    for (const { name, opts } of impls()) {
      const a = pm(x, shape, 'NCHW->NHWC', opts);
      expect(firstDiff(pm(a.data, a.shape, 'NHWC->NCHW', opts).data, x), name).toBe(-1);
      const b = pm(x, shape, 'OIHW->HWIO', opts);
      expect(firstDiff(pm(b.data, b.shape, 'HWIO->OIHW', opts).data, x), name).toBe(-1);
    }
  });
});

describe('layout argument errors are ModelsmithError E_KERNEL_ARG', () => {
  const f = new Float32Array(24);
  const b = new Uint8Array(24);
  const bad: [string, (o: Opts) => unknown][] = [
    ['transpose dims do not match the data', (o) => tr(f, 5, 5, o)],
    ['negative dimension', (o) => tr(f, -4, -6, o)],
    ['non-integer dimension', (o) => tr(f, 2.5, 9.6, o)],
    ['element size 3', (o) => tr(b, 2, 4, { ...o, elementSize: 3 })],
    ['elementSize on a wider typed array', (o) => tr(f, 2, 12, { ...o, elementSize: 2 })],
    ['bytes not a whole number of elements', (o) => tr(b.subarray(0, 23), 1, 2, { ...o, elementSize: 8 })],
    ['4-D shape does not match the data', (o) => pm(f, [1, 2, 3, 5], 'NCHW->NHWC', o)],
    ['shape is not 4-D', (o) => pm(f, [4, 6], 'NCHW->NHWC', o)],
    ['unknown layout', (o) => pm(f, [1, 2, 3, 4], 'NCHW->CHWN' as Layout4D, o)],
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
