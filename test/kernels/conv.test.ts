import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Kernels, initKernels } from '../../src/kernels/loader.js';
import {
  type ConvGeom, type Geom2d, avgPool2d, avgPool2dBackward, channelSums, col2im, conv2dBackward, conv2dForward, im2col,
  maxPool2d, maxPool2dBackward,
} from '../../src/kernels/conv.js';
import { setWindowBytes } from '../../src/kernels/window.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { FLAVORS, rng } from './helpers.js';

const K: Partial<Record<'simd' | 'scalar', Kernels>> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});
afterEach(() => {
  setWindowBytes(undefined);
});

function rand(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/** Geometry with output sizes from the floor rule (or ceil with PyTorch's last-window rule). */
function geom(H: number, W: number, kH: number, kW: number, o: Partial<Geom2d> & { ceil?: boolean } = {}): Geom2d {
  const g = { H, W, kH, kW, padT: 0, padL: 0, padB: 0, padR: 0, sH: 1, sW: 1, dH: 1, dW: 1, oH: 0, oW: 0, ...o };
  const out = (n: number, k: number, d: number, s: number, pb: number, pe: number): number => {
    const span = n + pb + pe - ((k - 1) * d + 1);
    let v = (o.ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    if (o.ceil && (v - 1) * s >= n + pb) v--;
    return v;
  };
  g.oH = out(H, kH, g.dH, g.sH, g.padT, g.padB);
  g.oW = out(W, kW, g.dW, g.sW, g.padL, g.padR);
  delete (g as { ceil?: boolean }).ceil;
  return g;
}

// Plain index-formula oracles.
function im2colRef(x: Float32Array, C: number, g: Geom2d): Float32Array {
  const out = new Float32Array(C * g.kH * g.kW * g.oH * g.oW);
  let o = 0;
  for (let c = 0; c < C; c++) for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
    for (let oh = 0; oh < g.oH; oh++) for (let ow = 0; ow < g.oW; ow++, o++) {
      const ih = oh * g.sH - g.padT + i * g.dH, iw = ow * g.sW - g.padL + j * g.dW;
      out[o] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[(c * g.H + ih) * g.W + iw]! : 0;
    }
  }
  return out;
}

function poolRef(x: Float32Array, planes: number, g: Geom2d, kind: 'max' | 'avg', includePad = false): Float32Array {
  const y = new Float32Array(planes * g.oH * g.oW);
  let o = 0;
  for (let p = 0; p < planes; p++) for (let oh = 0; oh < g.oH; oh++) for (let ow = 0; ow < g.oW; ow++, o++) {
    let best = -Infinity, sum = 0, n = 0;
    for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
      const ih = oh * g.sH - g.padT + i * g.dH, iw = ow * g.sW - g.padL + j * g.dW;
      const inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
      const inPadded = ih >= -g.padT && ih < g.H + g.padB && iw >= -g.padL && iw < g.W + g.padR;
      if (inside) {
        const v = x[(p * g.H + ih) * g.W + iw]!;
        best = Math.max(best, v);
        sum += v;
      }
      if (includePad ? inPadded : inside) n++;
    }
    y[o] = kind === 'max' ? best : n ? sum / n : 0;
  }
  return y;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const GEOMS: [string, number, Geom2d][] = [
  ['3x3 plain', 2, geom(7, 9, 3, 3)],
  ['3x3 pad 1', 3, geom(8, 8, 3, 3, { padT: 1, padL: 1, padB: 1, padR: 1 })],
  ['stride 2 asym pads', 2, geom(9, 10, 3, 2, { sH: 2, sW: 2, padT: 0, padL: 1, padB: 2, padR: 1 })],
  ['dilation 2', 1, geom(11, 12, 3, 3, { dH: 2, dW: 2, padT: 2, padL: 2, padB: 2, padR: 2 })],
  ['stride 3 dil 2 pad 3', 2, geom(13, 17, 2, 3, { sH: 3, sW: 3, dH: 2, dW: 2, padT: 3, padL: 3, padB: 1, padR: 3 })],
  ['1-D as H=1', 4, geom(1, 31, 1, 5, { sW: 2, padL: 2, padR: 2 })],
  ['stride 2 wide rows (vector gathers)', 2, geom(5, 41, 3, 3, { sH: 2, sW: 2, padT: 1, padL: 1, padB: 1, padR: 1 })],
  ['kernel wider than input + pads', 1, geom(3, 3, 3, 5, { padL: 2, padR: 2, padT: 1, padB: 1 })],
];

describe.each(FLAVORS)('conv kernels (%s)', (flavor) => {
  it.each(GEOMS)('im2col matches the index formula: %s', (_n, C, g) => {
    const x = rand(C * g.H * g.W, 11);
    const got = im2col(K[flavor]!, x, C, g);
    expect(got).toEqual(im2colRef(x, C, g));
  });

  it.each(GEOMS)('col2im is the adjoint of im2col: %s', (_n, C, g) => {
    const x = rand(C * g.H * g.W, 12);
    const c = rand(C * g.kH * g.kW * g.oH * g.oW, 13);
    const back = col2im(K[flavor]!, c, C, g);
    // <im2col(x), c> = <x, col2im(c)>, and col2im against the naive scatter of the oracle.
    expect(dot(back, x)).toBeCloseTo(dot(im2colRef(x, C, g), c), 3);
    const naive = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const e = new Float32Array(x.length);
      e[i] = 1;
      naive[i] = dot(im2colRef(e, C, g), c);
    }
    for (let i = 0; i < x.length; i++) expect(back[i]).toBeCloseTo(naive[i]!, 4);
  });

  it.each(GEOMS)('max and average pooling match the oracle, also in small windows: %s', (_n, C, g) => {
    const planes = 3 * C;
    const x = rand(planes * g.H * g.W, 14);
    setWindowBytes((g.H * g.W + 2 * g.oH * g.oW) * 4 * 2); // two planes per kernel call
    const { y, idx } = maxPool2d(K[flavor]!, x, planes, g);
    expect(y).toEqual(poolRef(x, planes, g, 'max'));
    // The argmax points at the maximum within its plane (−1 for a window made only of padding).
    for (let o = 0; o < y.length; o++) {
      const p = Math.floor(o / (g.oH * g.oW));
      if (idx[o] === -1) expect(y[o]).toBe(-Infinity);
      else expect(x[p * g.H * g.W + idx[o]!]).toBe(y[o]);
    }
    for (const inc of [false, true]) {
      const a = avgPool2d(K[flavor]!, x, planes, g, inc);
      const ref = poolRef(x, planes, g, 'avg', inc);
      for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(ref[i]!, 5);
      // Backward is the adjoint of forward.
      const dy = rand(a.length, 15);
      const dx = avgPool2dBackward(K[flavor]!, dy, planes, g, inc);
      expect(dot(dx, x)).toBeCloseTo(dot(dy, a), 3);
    }
    const dy = rand(y.length, 16);
    const dx = maxPool2dBackward(K[flavor]!, dy, idx, planes, g);
    // Max pooling is linear on its selection: <dx, x> = <dy, y> over windows that selected something.
    expect(dot(dx, x)).toBeCloseTo(dot(dy, y.map((v) => (v === -Infinity ? 0 : v))), 3);
  });

  it('max pooling propagates NaN and ceil-mode windows ignore the overhang', () => {
    const g = geom(3, 3, 2, 2, { sH: 2, sW: 2, ceil: true });
    expect([g.oH, g.oW]).toEqual([2, 2]);
    const x = Float32Array.from([1, 2, 3, 4, NaN, 6, 7, 8, 9]);
    const { y } = maxPool2d(K[flavor]!, x, 1, g);
    expect(Array.from(y)).toEqual([NaN, 6, 8, 9]);
    expect(Array.from(avgPool2d(K[flavor]!, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 1, g, false))).toEqual([3, 4.5, 7.5, 9]);
  });

  it('max pooling with NaN, ±Inf and ties on the vector path (stride 1 and 2)', () => {
    const r = rng(40);
    const pool = [NaN, Infinity, -Infinity, 0, -0, 1, 1, 2, -3];
    for (const sW of [1, 2]) {
      const g = geom(5, 37, 2, 3, { sW, padL: 1, padR: 1 });
      const x = Float32Array.from({ length: 2 * 5 * 37 }, () => (r() < 0.3 ? pool[Math.floor(r() * pool.length)]! : Math.round(r() * 4)));
      // A row of -Inf only: its windows must still point at an input element.
      x.fill(-Infinity, 0, 2 * 37);
      const { y, idx } = maxPool2d(K[flavor]!, x, 2, g);
      expect(y).toEqual(poolRef(x, 2, g, 'max'));
      const per = g.oH * g.oW;
      for (let o = 0; o < y.length; o++) {
        expect(idx[o]).toBeGreaterThanOrEqual(0);
        const p = Math.floor(o / per), oh = Math.floor((o % per) / g.oW), ow = o % g.oW;
        const at = x[p * g.H * g.W + idx[o]!]!;
        expect(Object.is(at, y[o]) || (at === 0 && y[o] === 0)).toBe(true);
        // First maximum in window order on ties: no earlier tap holds the same (or a NaN) value.
        const ih = Math.floor(idx[o]! / g.W), iw = idx[o]! % g.W;
        for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
          const th = oh * g.sH - g.padT + i, tw = ow * g.sW - g.padL + j;
          const earlier = th < ih || (th === ih && tw < iw);
          if (!earlier || th < 0 || th >= g.H || tw < 0 || tw >= g.W) continue;
          const v = x[p * g.H * g.W + th * g.W + tw]!;
          expect(v === at || Number.isNaN(v)).toBe(false);
        }
      }
    }
  });

  it('conv forward/backward on 1x1 and grouped kernels agree with a direct loop', () => {
    for (const [C, M, group, kH] of [[4, 6, 2, 1], [3, 3, 3, 3], [2, 4, 1, 3]] as const) {
      const g: ConvGeom = { ...geom(5, 6, kH, kH, kH === 3 ? { padT: 1, padL: 1, padB: 1, padR: 1 } : {}), C, M, group };
      const N = 2, Cg = C / group, Mg = M / group;
      const x = rand(N * C * g.H * g.W, 20), w = rand(M * Cg * kH * kH, 21), b = rand(M, 22);
      const y = conv2dForward(K[flavor]!, x, w, b, N, g);
      const ref = new Float32Array(y.length);
      for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) {
        const gi = Math.floor(m / Mg);
        for (let oh = 0; oh < g.oH; oh++) for (let ow = 0; ow < g.oW; ow++) {
          let s = b[m]!;
          for (let c = 0; c < Cg; c++) for (let i = 0; i < kH; i++) for (let j = 0; j < kH; j++) {
            const ih = oh - g.padT + i, iw = ow - g.padL + j;
            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
            s += x[((n * C + gi * Cg + c) * g.H + ih) * g.W + iw]! * w[((m * Cg + c) * kH + i) * kH + j]!;
          }
          ref[((n * M + m) * g.oH + oh) * g.oW + ow] = s;
        }
      }
      for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(ref[i]!, 4);
      // Adjoint identities: <dY, conv(x)> is linear in x and in w.
      const dy = rand(y.length, 23);
      const gr = conv2dBackward(K[flavor]!, x, w, dy, N, g, { dx: true, dw: true, db: true });
      const y0 = conv2dForward(K[flavor]!, x, w, undefined, N, g);
      expect(dot(gr.dx!, x)).toBeCloseTo(dot(dy, y0), 3);
      expect(dot(gr.dw!, w)).toBeCloseTo(dot(dy, y0), 3);
      const plane = g.oH * g.oW;
      for (let m = 0; m < M; m++) {
        let s = 0;
        for (let n = 0; n < N; n++) for (let k = 0; k < plane; k++) s += dy[(n * M + m) * plane + k]!;
        expect(gr.db![m]).toBeCloseTo(s, 4);
      }
    }
  });

  it('channel sums over windows of images', () => {
    setWindowBytes(64);
    const N = 5, C = 3, S = 7;
    const x = rand(N * C * S, 30), w = rand(N * C * S, 31);
    const { sum, dot: d } = channelSums(K[flavor]!, x, w, N, C, S);
    for (let c = 0; c < C; c++) {
      let s = 0, t = 0;
      for (let n = 0; n < N; n++) for (let k = 0; k < S; k++) {
        const i = (n * C + c) * S + k;
        s += x[i]!;
        t += x[i]! * w[i]!;
      }
      expect(sum[c]).toBeCloseTo(s, 5);
      expect(d![c]).toBeCloseTo(t, 5);
    }
  });
});

describe('conv kernel argument checks', () => {
  it('refuses inconsistent geometry and lengths with E_KERNEL_ARG', () => {
    const k = K.simd!;
    const g = geom(4, 4, 3, 3);
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ModelsmithError);
        return (e as ModelsmithError).code;
      }
      return undefined;
    };
    expect(code(() => im2col(k, new Float32Array(15), 1, g))).toBe('E_KERNEL_ARG');
    expect(code(() => im2col(k, new Float32Array(16), 1, { ...g, oH: 5 }))).toBe('E_KERNEL_ARG');
    expect(code(() => im2col(k, new Float32Array(16), 1, { ...g, sH: 0 }))).toBe('E_KERNEL_ARG');
    expect(code(() => col2im(k, new Float32Array(3), 1, g))).toBe('E_KERNEL_ARG');
    expect(code(() => conv2dForward(k, new Float32Array(32), new Float32Array(27), undefined, 1, { ...g, C: 2, M: 3, group: 2 }))).toBe('E_KERNEL_ARG');
    expect(code(() => maxPool2dBackward(k, new Float32Array(4), Int32Array.from([0, 1, 99, 2]), 1, g))).toBe('E_KERNEL_ARG');
    expect(code(() => channelSums(k, new Float32Array(5), undefined, 1, 2, 3))).toBe('E_KERNEL_ARG');
    expect(code(() => avgPool2d(k, new Float32Array(16), 1, { ...g, padT: -1 }, false))).toBe('E_KERNEL_ARG');
    // Every term fits i32 alone, but o·s + k·d does not: refused before the kernel could wrap around.
    expect(code(() => maxPool2d(k, new Float32Array(16), 1, { ...g, kW: 3, dW: 2 ** 30, padL: 2 ** 30, padR: 2 ** 30, oW: 2 }))).toBe('E_KERNEL_ARG');
  });
});
