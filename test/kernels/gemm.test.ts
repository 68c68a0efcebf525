import { beforeAll, describe, expect, it } from 'vitest';
import { type Kernels, initKernels } from '../../src/kernels/loader.js';
import { gemm, gemmAt, type GemmOptions } from '../../src/kernels/gemm.js';
import { ErrorCodes, ModelsmithError } from '../../src/core/errors.js';
import { FLAVORS, rng, runPython } from './helpers.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matmulModelBytes } from '../../src/bench/gemm-ort.js';
import { loadOrt } from '../../src/eval/ort.js';

const K: Partial<Record<'simd' | 'scalar', Kernels>> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

function uniform(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/**
 * float64 reference and a per-element error bound: float32 accumulation of k products is off by
 * at most ~k·eps·Σ|a·b| (plus the alpha/beta roundings). A misplaced or missing term is of the
 * order of one |a·b|, far above that bound for these value ranges.
 */
function reference(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, o: GemmOptions): { want: Float64Array; tol: Float64Array } {
  const alpha = o.alpha ?? 1;
  const beta = o.beta ?? 0;
  const want = new Float64Array(m * n);
  const tol = new Float64Array(m * n);
  const eps = 2 ** -23;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let mag = 0;
      for (let p = 0; p < k; p++) {
        const av = o.transA ? a[p * m + i]! : a[i * k + p]!;
        const bv = o.transB ? b[j * k + p]! : b[p * n + j]!;
        s += av * bv;
        mag += Math.abs(av * bv);
      }
      const cv = beta === 0 ? 0 : beta * c[i * n + j]!;
      want[i * n + j] = alpha * s + cv;
      tol[i * n + j] = 2 * (k + 3) * eps * (Math.abs(alpha) * mag + Math.abs(cv)) + 1e-30;
    }
  }
  return { want, tol };
}

/** Index of the first element outside its bound, or -1. */
function firstBad(got: Float32Array, want: Float64Array, tol: Float64Array): number {
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol[i]!)) return i;
  }
  return -1;
}

function check(k: Kernels, m: number, n: number, kk: number, o: GemmOptions, seed: number): void {
  const a = uniform(m * kk, seed);
  const b = uniform(kk * n, seed + 1);
  const c0 = uniform(m * n, seed + 2);
  const c = c0.slice();
  gemm(k, a, b, c, m, n, kk, o);
  const { want, tol } = reference(a, b, c0, m, n, kk, o);
  const bad = firstBad(c, want, tol);
  expect(bad, `${k.flavor} ${m}×${n}×${kk} ${JSON.stringify(o)}: C[${bad}] = ${c[bad]} want ${want[bad]} ± ${tol[bad]}`).toBe(-1);
}

// Shapes around the micro-tile (4×8), the blocks (MC = 128 rows, KC = 256 depth, NC = 2048
// columns), vectors, and tall/skinny products.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 13, 5], [4, 8, 1], [4, 8, 256], [4, 8, 257], [5, 9, 3], [64, 64, 64],
  [100, 3, 257], [3, 100, 257], [1, 300, 40], [300, 1, 40], [200, 2, 2], [2, 200, 2],
  [130, 17, 513], [1000, 4, 16], [4, 1000, 16], [6, 2050, 20], [33, 31, 300],
  // Vector products (the dot and row-sum paths): SIMD strips of 16 and 4 plus a scalar tail.
  [1, 37, 300], [300, 1, 37], [1, 1, 100], [1, 21, 1], [21, 1, 1], [1, 64, 3], [50, 1, 16],
];
const TRANS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];
const SCALARS: { alpha: number; beta: number }[] = [
  { alpha: 1, beta: 0 }, { alpha: 0.5, beta: 0 }, { alpha: -1.5, beta: 2 }, { alpha: 1, beta: 1 }, { alpha: 2, beta: -0.25 },
];

describe.each(FLAVORS)('gemm (%s)', (flavor) => {
  it('matches a float64 reference on every shape, transpose combination and alpha/beta', () => {
    const k = K[flavor]!;
    let seed = 1;
    let cases = 0;
    for (const [m, n, kk] of SHAPES) {
      for (const [transA, transB] of TRANS) {
        const s = SCALARS[(seed++) % SCALARS.length]!;
        check(k, m, n, kk, { transA, transB, ...s }, seed * 7);
        cases++;
      }
    }
    expect(cases).toBe(SHAPES.length * 4);
  });

  it('applies every alpha/beta pair on tile-aligned and ragged shapes', () => {
    const k = K[flavor]!;
    for (const s of SCALARS) {
      check(k, 16, 24, 40, s, 11);
      check(k, 13, 21, 300, { ...s, transA: true }, 12);
    }
  });

  it('beta = 0 never reads C (NaN garbage is overwritten), beta ≠ 0 propagates it', () => {
    const k = K[flavor]!;
    const [m, n, kk] = [9, 11, 7];
    const a = uniform(m * kk, 3);
    const b = uniform(kk * n, 4);
    const c = new Float32Array(m * n).fill(NaN);
    gemm(k, a, b, c, m, n, kk, { beta: 0 });
    expect(c.every((v) => Number.isFinite(v))).toBe(true);
    c.fill(NaN);
    gemm(k, a, b, c, m, n, kk, { beta: 1 });
    expect(c.every((v) => Number.isNaN(v))).toBe(true);
  });

  it('k = 0 gives C = beta·C (zeros for beta = 0, even over NaN)', () => {
    const k = K[flavor]!;
    const c = Float32Array.from({ length: 12 }, (_, i) => i - 3);
    gemm(k, new Float32Array(0), new Float32Array(0), c, 3, 4, 0, { beta: 0.5 });
    expect(Array.from(c)).toEqual(Array.from({ length: 12 }, (_, i) => (i - 3) * 0.5));
    c.fill(NaN);
    gemm(k, new Float32Array(0), new Float32Array(0), c, 3, 4, 0, { beta: 0 });
    expect(Array.from(c)).toEqual(new Array(12).fill(0));
  });

  it('m = 0 or n = 0 is a no-op', () => {
    const k = K[flavor]!;
    const c = new Float32Array([42]);
    gemm(k, new Float32Array(5), new Float32Array(5), c, 0, 1, 5);
    gemm(k, new Float32Array(5), new Float32Array(5), c, 1, 0, 5);
    expect(c[0]).toBe(42);
  });

  it('gemmAt writes only C, leaves A and B intact and releases its scratch', () => {
    const k = K[flavor]!;
    const [m, n, kk] = [37, 45, 290];
    const a = uniform(m * kk, 21);
    const b = uniform(kk * n, 22);
    const guard = 64;
    const mark = k.mark();
    const pa = k.alloc(m * kk * 4);
    const pb = k.alloc(kk * n * 4);
    const region = k.alloc((m * n + 2 * guard) * 4);
    const pc = region + guard * 4;
    k.f32(pa, m * kk).set(a);
    k.f32(pb, kk * n).set(b);
    k.f32(region, m * n + 2 * guard).fill(-7);
    const top = k.mark();
    gemmAt(k, pa, pb, pc, m, n, kk, { transB: true });
    expect(k.mark()).toBe(top);
    const all = k.f32(region, m * n + 2 * guard);
    expect(all.subarray(0, guard).every((v) => v === -7)).toBe(true);
    expect(all.subarray(guard + m * n).every((v) => v === -7)).toBe(true);
    expect(k.f32(pa, m * kk)).toEqual(a);
    expect(k.f32(pb, kk * n)).toEqual(b);
    const { want, tol } = reference(a, b, new Float32Array(m * n), m, n, kk, { transB: true });
    expect(firstBad(k.f32(pc, m * n).slice(), want, tol)).toBe(-1);
    k.reset(mark);
  });
});

describe('gemm flavors and oracles', () => {
  it('SIMD and scalar builds agree on the engine shapes (dense 128×800·800×128, conv 32×144·144×484)', () => {
    for (const [m, n, kk] of [[128, 128, 800], [32, 484, 144]] as const) {
      const a = uniform(m * kk, 31);
      const b = uniform(kk * n, 32);
      const out = FLAVORS.map((f) => {
        const c = new Float32Array(m * n);
        gemm(K[f]!, a, b, c, m, n, kk);
        return c;
      });
      const { want, tol } = reference(a, b, new Float32Array(m * n), m, n, kk, {});
      for (const c of out) expect(firstBad(c, want, tol)).toBe(-1);
    }
  });

  it('matches numpy.matmul (float32) with transposed operands', () => {
    const [m, n, kk] = [37, 53, 291];
    const a = uniform(m * kk, 41); // stored K×M
    const b = uniform(n * kk, 42); // stored N×K
    const script = [
      'import sys, numpy as np',
      'm, n, k = map(int, sys.argv[1:4])',
      'buf = sys.stdin.buffer.read()',
      'a = np.frombuffer(buf, dtype="<f4", count=k*m).reshape(k, m)',
      'b = np.frombuffer(buf, dtype="<f4", count=n*k, offset=4*k*m).reshape(n, k)',
      'sys.stdout.buffer.write(np.ascontiguousarray(np.matmul(a.T, b.T), dtype="<f4").tobytes())',
    ].join('\n');
    const input = new Uint8Array((a.length + b.length) * 4);
    input.set(new Uint8Array(a.buffer), 0);
    input.set(new Uint8Array(b.buffer), a.length * 4);
    const out = runPython(script, [String(m), String(n), String(kk)], input);
    const np = new Float32Array(out.slice().buffer);
    expect(np.length).toBe(m * n);
    for (const f of FLAVORS) {
      const c = new Float32Array(m * n);
      gemm(K[f]!, a, b, c, m, n, kk, { transA: true, transB: true });
      let worst = 0;
      for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(c[i]! - np[i]!) / (1 + Math.abs(np[i]!)));
      expect(worst, f).toBeLessThan(1e-5);
    }
  });
});

describe('gemm bench baseline', () => {
  it('the in-memory MatMul model runs in onnxruntime-node and computes the product our kernel does', async () => {
    const ort = await loadOrt();
    const [m, n, kk] = [24, 40, 70];
    const a = uniform(m * kk, 51);
    const b = uniform(kk * n, 52);
    const dir = mkdtempSync(join(tmpdir(), 'gemm-test-'));
    try {
      const path = join(dir, 'mm.onnx');
      writeFileSync(path, matmulModelBytes(m, n, kk));
      const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
      const out = await session.run({ A: new ort.Tensor('float32', a, [m, kk]), B: new ort.Tensor('float32', b, [kk, n]) });
      await session.release();
      const y = out['Y']!;
      expect(y.dims).toEqual([m, n]);
      const c = new Float32Array(m * n);
      gemm(K.simd!, a, b, c, m, n, kk);
      const ref = y.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(c[i]! - ref[i]!));
      expect(worst).toBeLessThan(1e-4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('gemm argument errors', () => {
  it.each([
    [-1, 2, 2],
    [2, 1.5, 2],
    [2, 2, Number.NaN],
    [2 ** 31, 1, 1],
  ])('E_KERNEL_ARG for bad dimension m=%s n=%s k=%s', (m, n, kk) => {
    const k = K.simd!;
    const call = () => gemm(k, new Float32Array(4), new Float32Array(4), new Float32Array(4), m, n, kk);
    expect(call).toThrow(ModelsmithError);
    expect(call).toThrow(expect.objectContaining({ code: ErrorCodes.KERNEL_ARG }));
    expect(() => gemmAt(k, 0, 0, 0, m, n, kk)).toThrow(expect.objectContaining({ code: ErrorCodes.KERNEL_ARG }));
  });

  it('E_KERNEL_ARG when an operand range lies outside kernel memory (no wasm trap)', () => {
    const k = K.simd!;
    const end = k.capacity;
    for (const [a, b, c] of [[end - 8, 0, 0], [0, end - 8, 0], [0, 0, end - 8], [-4, 0, 0], [0.5, 0, 0]]) {
      expect(() => gemmAt(k, a!, b!, c!, 4, 4, 4)).toThrow(expect.objectContaining({ code: ErrorCodes.KERNEL_ARG }));
    }
  });

  it('E_KERNEL_ARG when an array is shorter than its operand', () => {
    const k = K.simd!;
    const f = (a: number, b: number, c: number) => () => gemm(k, new Float32Array(a), new Float32Array(b), new Float32Array(c), 3, 4, 5);
    for (const call of [f(14, 20, 12), f(15, 19, 12), f(15, 20, 11)]) {
      expect(call).toThrow(expect.objectContaining({ code: ErrorCodes.KERNEL_ARG }));
    }
    expect(f(15, 20, 12)).not.toThrow();
  });
});
