import { fileURLToPath } from 'node:url';
import { create, toBinary } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { initKernels } from '../../src/kernels/loader.js';
import type { Kernels } from '../../src/kernels/loader.js';
import * as wasm from '../../src/kernels/quantize.js';
import * as ref from '../../src/kernels/reference/quantize.js';
import { setWindowBytes } from '../../src/kernels/window.js';
import { FLAVORS, LENGTHS, f32Bits as bits, randomF32, rng, runPython } from './helpers.js';
import { errorStats, errorStatsFromSums } from '../../src/eval/metrics.js';

const GEN = fileURLToPath(new URL('./gen/quantize_expected.py', import.meta.url));
const KERR = expect.objectContaining({ code: 'E_KERNEL_ARG' });
const K: Record<string, Kernels> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

/** Index of the first difference (bitwise for floats), -1 if equal, -2 on a length mismatch. */
function diff(a: ArrayLike<number>, b: ArrayLike<number>, skip?: (i: number) => boolean): number {
  if (a.length !== b.length) return -2;
  const f = a instanceof Float32Array || b instanceof Float32Array;
  for (let i = 0; i < a.length; i++) {
    if (skip?.(i)) continue;
    if (f ? bits(a[i]!) !== bits(b[i]!) : a[i] !== b[i]) return i;
  }
  return -1;
}
function bytesOf(...parts: ArrayBufferView[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o += p.byteLength;
  }
  return out;
}
const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
function channelParams(C: number, type: wasm.QType, seed: number): { scale: Float32Array; zeroPoint: Int32Array } {
  const r = rng(seed);
  const [lo, hi] = ref.QRANGE[type];
  const scale = new Float32Array(C).map(() => Math.exp(r() * 8 - 5));
  const zeroPoint = new Int32Array(C).map(() => lo + Math.floor(r() * (hi - lo + 1)));
  return { scale, zeroPoint };
}

describe('affine quantize: semantics', () => {
  it('rounds half to even, saturates, NaN -> low bound', () => {
    const x = new Float32Array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -128.5, 1e9, -1e9, Infinity, -Infinity, NaN, -0, 1e-45]);
    const i8 = [0, 2, 2, 0, -2, -2, 126, 127, -128, 127, -128, 127, -128, -128, 0, 0];
    expect(Array.from(ref.quantizeLinear(x, { type: 'int8', scale: 1 }))).toEqual(i8);
    const u8 = [10, 12, 12, 10, 8, 8, 136, 138, 0, 255, 0, 255, 0, 0, 10, 10];
    expect(Array.from(ref.quantizeLinear(x, { type: 'uint8', scale: 1, zeroPoint: 10 }))).toEqual(u8);
    for (const f of FLAVORS) {
      expect(Array.from(wasm.quantizeLinear(x, { type: 'int8', scale: 1 }, { kernels: K[f]! }))).toEqual(i8);
      expect(Array.from(wasm.quantizeLinear(x, { type: 'uint8', scale: 1, zeroPoint: 10 }, { kernels: K[f]! }))).toEqual(u8);
      // NaN in every SIMD lane position and in the scalar tail.
      const nan = new Float32Array(37).fill(NaN);
      expect(wasm.quantizeLinear(nan, { type: 'int8', scale: 0.5, zeroPoint: 3 }, { kernels: K[f]! }).every((v) => v === -128)).toBe(true);
      expect(wasm.quantizeLinear(nan, { type: 'uint8', scale: 0.5, zeroPoint: 3 }, { kernels: K[f]! }).every((v) => v === 0)).toBe(true);
    }
  });

  it('divides by the scale (a reciprocal multiply rounds differently)', () => {
    // 0.3 / 0.1 is 3.0000002 in float32 while 0.3 * (1 / 0.1) is 2.9999998; scale 0.1 and the tie
    // 0.15 / 0.1 = 1.5 -> 2 (float32 division gives exactly 1.5).
    const x = new Float32Array([0.15, 0.25, 0.35, 0.45]);
    const want = ref.quantizeLinear(x, { type: 'int8', scale: 0.1 });
    for (const f of FLAVORS) expect(diff(wasm.quantizeLinear(x, { type: 'int8', scale: 0.1 }, { kernels: K[f]! }), want)).toBe(-1);
  });

  it('dequantize is (q - zp) * scale', () => {
    const q = new Int8Array([-128, -1, 0, 5, 127]);
    const want = [-128 - 5, -6, -5, 0, 122].map((v) => Math.fround(v * Math.fround(0.1)));
    for (const f of FLAVORS) expect(Array.from(wasm.dequantizeLinear(q, { scale: 0.1, zeroPoint: 5 }, { kernels: K[f]! }))).toEqual(want);
    expect(Array.from(ref.dequantizeLinear(q, { scale: 0.1, zeroPoint: 5 }))).toEqual(want);
  });

  it('chooseQuantParams follows onnxruntime.quantization', () => {
    expect(wasm.chooseQuantParams(-1, 3, 'uint8')).toEqual({ scale: Math.fround(4 / 255), zeroPoint: 64 });
    expect(wasm.chooseQuantParams(-1, 3, 'int8')).toEqual({ scale: Math.fround(4 / 255), zeroPoint: -64 });
    expect(wasm.chooseQuantParams(-1, 3, 'int8', true)).toEqual({ scale: Math.fround(3 / 127), zeroPoint: 0 });
    expect(wasm.chooseQuantParams(-1, 3, 'uint8', true)).toEqual({ scale: Math.fround(6 / 255), zeroPoint: 128 });
    // The range always contains 0, so 0 is exactly representable.
    expect(wasm.chooseQuantParams(2, 5, 'uint8')).toEqual({ scale: Math.fround(5 / 255), zeroPoint: 0 });
    expect(wasm.chooseQuantParams(-5, -2, 'uint8')).toEqual({ scale: Math.fround(5 / 255), zeroPoint: 255 });
    expect(wasm.chooseQuantParams(0, 0, 'int8')).toEqual({ scale: 1, zeroPoint: 0 });
    const { scales, zeroPoints } = wasm.chooseQuantParamsAxis([-1, 0], [3, 0], 'uint8');
    expect(Array.from(scales)).toEqual([Math.fround(4 / 255), 1]);
    expect(Array.from(zeroPoints)).toEqual([64, 0]);
  });

  it('quantize -> dequantize stays within half a step and keeps 0 exact', () => {
    const x = randomF32(10000, 5).map((v) => Math.max(-3, Math.min(5, v)));
    for (const [type, sym] of [['int8', true], ['int8', false], ['uint8', false], ['uint8', true]] as const) {
      const { scale, zeroPoint } = wasm.chooseQuantParams(-3, 5, type, sym);
      const y = wasm.dequantizeLinear(wasm.quantizeLinear(x, { type, scale, zeroPoint }), { scale, zeroPoint });
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i]! - x[i]!));
      expect(worst).toBeLessThanOrEqual(scale * 0.5 * (1 + 1e-5));
      expect(wasm.dequantizeLinear(wasm.quantizeLinear(new Float32Array([0, -0]), { type, scale, zeroPoint }), { scale, zeroPoint })[0]).toBe(0);
    }
  });
});

describe('affine quantize: reference, simd and scalar agree', () => {
  const settings: [wasm.QType, number, number][] = [
    ['int8', 1, 0],
    ['int8', 0.37, -3],
    ['uint8', 0.25, 128],
    ['uint8', 3.1e-3, 7],
    ['int8', 1e-39, 0], // subnormal scale: most values saturate
  ];
  for (const n of LENGTHS) {
    it(`per tensor, n=${n}`, () => {
      const x = randomF32(n, 77 + n, true);
      for (const [type, scale, zeroPoint] of settings) {
        const p = { type, scale, zeroPoint };
        const want = ref.quantizeLinear(x, p);
        const deq = ref.dequantizeLinear(want, p);
        for (const f of FLAVORS) {
          const k = K[f]!;
          const windows = n < 70000 ? [undefined, 5 * 7, 5 * 1021] : [undefined, 5 * 4099];
          for (const windowBytes of windows) {
            const o = { kernels: k, windowBytes };
            expect(diff(wasm.quantizeLinear(x, p, o), want)).toBe(-1);
            expect(diff(wasm.dequantizeLinear(want, p, o), deq)).toBe(-1);
          }
        }
      }
    });
  }

  const shapes: [number[], number[]][] = [
    [[7, 5, 3], [0, 1, 2, -1]],
    [[1000, 17], [0, 1]],
    [[3, 4097], [0, 1]],
    [[65537], [0]],
    [[4, 1, 9, 33], [1, 2, 3]],
    [[2, 0, 3], [1]],
    [[64, 3, 2], [2]],
    [[257, 300], [0, 1]],
  ];
  for (const [shape, axes] of shapes) {
    for (const axis of axes) {
      it(`per channel, shape [${shape}] axis ${axis}`, () => {
        const n = prod(shape);
        const C = shape[(axis + shape.length) % shape.length]!;
        const x = randomF32(n, n * 3 + axis, true);
        for (const type of ['int8', 'uint8'] as const) {
          const p = { type, shape, axis, ...channelParams(C, type, C + axis) };
          const want = ref.quantizeLinear(x, p);
          const deq = ref.dequantizeLinear(want, p);
          for (const f of FLAVORS) {
            for (const windowBytes of n < 70000 ? [undefined, 5 * 7, 5 * 1021] : [undefined, 5 * 4099]) {
              const o = { kernels: K[f]!, windowBytes };
              expect(diff(wasm.quantizeLinear(x, p, o), want)).toBe(-1);
              expect(diff(wasm.dequantizeLinear(want, p, o), deq)).toBe(-1);
            }
          }
        }
      });
    }
  }

  it('the global window budget is honoured', () => {
    const x = randomF32(5000, 3, true);
    const p = { type: 'int8' as const, scale: 0.1, zeroPoint: 1 };
    const want = ref.quantizeLinear(x, p);
    const prev = setWindowBytes(64);
    try {
      for (const f of FLAVORS) expect(diff(wasm.quantizeLinear(x, p, { kernels: K[f]! }), want)).toBe(-1);
    } finally {
      setWindowBytes(prev);
    }
  });
});

/** One numpy run for many jobs (Python + numpy start-up is slow): each job gives its stdin bytes
 *  and the number of result bytes it produces; returns each job's result. */
function numpy(jobs: { job: object; input: Uint8Array; outBytes: number }[]): Uint8Array[] {
  const out = runPython(GEN, [JSON.stringify(jobs.map((j) => j.job))], bytesOf(...jobs.map((j) => j.input)));
  expect(out.length).toBe(jobs.reduce((n, j) => n + j.outBytes, 0));
  let o = 0;
  return jobs.map((j) => out.slice(o, (o += j.outBytes)));
}

describe('affine quantize: numpy', () => {
  // Over 1,000,000 values per case; NaN positions are excluded (numpy's cast of NaN is undefined)
  // and checked against the documented rule (NaN -> low bound) instead.
  interface Case { type: wasm.QType; shape: number[]; axis?: number; scale: Float32Array; zp: Int32Array }
  function check(x: Float32Array, cases: Case[]): void {
    const results = numpy(cases.map((c) => ({ job: { op: 'quant', dtype: c.type, shape: c.shape, axis: c.axis ?? null }, input: bytesOf(x, c.scale, c.zp), outBytes: x.length })));
    cases.forEach((c, k) => {
      const bytes = results[k]!;
      const want = c.type === 'int8' ? new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length) : bytes;
      const p = c.axis === undefined ? { type: c.type, scale: c.scale[0]!, zeroPoint: c.zp[0]! } : { type: c.type, shape: c.shape, axis: c.axis, scale: c.scale, zeroPoint: c.zp };
      const isNaN = (i: number): boolean => x[i] !== x[i];
      const lo = ref.QRANGE[c.type][0];
      for (const got of [ref.quantizeLinear(x, p), ...FLAVORS.map((f) => wasm.quantizeLinear(x, p, { kernels: K[f]! }))]) {
        expect(diff(got, want, isNaN)).toBe(-1);
        for (let i = 0; i < x.length; i++) if (isNaN(i) && got[i] !== lo) throw new Error(`NaN at ${i} gave ${got[i]}`);
      }
    });
  }

  it('per tensor int8 / uint8', () => {
    const N = (1 << 20) + 5;
    const x = randomF32(N, 2024, true);
    const c = (type: wasm.QType, scale: number, zp: number): Case => ({ type, shape: [N], scale: new Float32Array([scale]), zp: new Int32Array([zp]) });
    check(x, [c('int8', 0.37, -3), c('uint8', 0.25, 128), c('int8', 1, 0), c('uint8', 3.1e-3, 7)]);
  });

  it('per channel int8 / uint8 along each axis', () => {
    const shape = [64, 128, 128];
    const x = randomF32(prod(shape), 99, true);
    check(
      x,
      ([[0, 'int8'], [1, 'uint8'], [2, 'int8'], [-1, 'uint8']] as const).map(([axis, type]) => {
        const { scale, zeroPoint } = channelParams(shape[(axis + 3) % 3]!, type, 11 + axis);
        return { type, shape, axis, scale, zp: zeroPoint };
      }),
    );
  });

  it('dequantize per tensor and per channel', () => {
    const shape = [256, 4099];
    const r = rng(4);
    const cases: { q: Int8Array | Uint8Array; axis?: number; scale: Float32Array; zeroPoint: Int32Array }[] = [];
    for (const type of ['int8', 'uint8'] as const) {
      const q = type === 'int8' ? new Int8Array(prod(shape)) : new Uint8Array(prod(shape));
      for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256);
      for (const axis of [undefined, 0, 1]) cases.push({ q, axis, ...channelParams(axis === undefined ? 1 : shape[axis]!, type, 5 + (axis ?? 9)) });
    }
    const results = numpy(cases.map((c) => ({ job: { op: 'dequant', dtype: c.q instanceof Int8Array ? 'int8' : 'uint8', shape, axis: c.axis ?? null }, input: bytesOf(c.q, c.scale, c.zeroPoint), outBytes: c.q.length * 4 })));
    cases.forEach((c, k) => {
      const want = new Float32Array(results[k]!.buffer);
      const p = c.axis === undefined ? { scale: c.scale[0]!, zeroPoint: c.zeroPoint[0]! } : { shape, axis: c.axis, scale: c.scale, zeroPoint: c.zeroPoint };
      expect(diff(ref.dequantizeLinear(c.q, p), want)).toBe(-1);
      for (const f of FLAVORS) expect(diff(wasm.dequantizeLinear(c.q, p, { kernels: K[f]! }), want)).toBe(-1);
    });
  });
});

describe('4-bit blockwise', () => {
  const modes: wasm.Q4Mode[] = ['int4', 'uint4-sym', 'uint4'];

  it('packs the first element into the low nibble', () => {
    expect(Array.from(wasm.packNibbles([1, 2, 3]))).toEqual([0x21, 0x03]);
    expect(Array.from(wasm.packNibbles([-1, 7, -8]))).toEqual([0x7f, 0x08]);
    expect(Array.from(wasm.unpackNibbles(new Uint8Array([0x7f, 0x08]), 3, true))).toEqual([-1, 7, -8]);
    expect(Array.from(wasm.unpackNibbles(new Uint8Array([0x7f, 0x08]), 4, false))).toEqual([15, 7, 8, 0]);
  });

  it('per-block scales and zero points', () => {
    const x = new Float32Array(32);
    for (let i = 0; i < 16; i++) x[i] = i; // block 0: [0, 15]
    for (let i = 16; i < 32; i++) x[i] = -(i - 16) / 2; // block 1: [-7.5, 0]
    x[20] = NaN;
    for (const f of FLAVORS) {
      const o = { kernels: K[f]! };
      const a = wasm.quantizeBlockwise4(x, [32], 16, 'uint4', o);
      expect(Array.from(a.scales)).toEqual([1, 0.5]);
      expect(Array.from(a.zeroPoints)).toEqual([0, 15]);
      const codes = wasm.unpackNibbles(a.data, 32, false);
      expect(Array.from(codes.subarray(0, 16))).toEqual([...Array(16).keys()]);
      expect(codes[17]).toBe(14); // -0.5 / 0.5 + 15
      expect(codes[20]).toBe(0); // NaN -> low bound
      const s = wasm.quantizeBlockwise4(x, [32], 16, 'int4', o);
      expect(Array.from(s.scales)).toEqual([Math.fround(15 / 7), Math.fround(7.5 / 7)]);
      expect(Array.from(s.zeroPoints)).toEqual([0, 0]);
      expect(wasm.unpackNibbles(s.data, 32, true)[15]).toBe(7);
      const u = wasm.quantizeBlockwise4(x, [32], 16, 'uint4-sym', o);
      expect(Array.from(u.zeroPoints)).toEqual([8, 8]);
      expect(wasm.unpackNibbles(u.data, 32, false)[31]).toBe(1); // -7.5 -> -7 + 8
      // An all-zero block gets scale 1.
      expect(Array.from(wasm.quantizeBlockwise4(new Float32Array(16), [16], 16, 'uint4', o).scales)).toEqual([1]);
    }
  });

  it('round trip stays within half a step for finite data', () => {
    const x = randomF32(40 * 96, 8);
    for (const mode of modes) {
      const b = wasm.quantizeBlockwise4(x, [40, 96], 32, mode);
      const y = wasm.dequantizeBlockwise4(b);
      let worst = 0; // error in units of the block's step
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i]! - x[i]!) / b.scales[Math.floor(i / 32)]!);
      expect(worst).toBeLessThanOrEqual(0.5 * (1 + 1e-5));
    }
  });

  const shapes: number[][] = [[1, 1], [3, 15], [2, 16], [5, 17], [7, 255], [4, 257], [33, 1000], [2, 3, 65], [0, 40], [6, 0]];
  for (const blockSize of [16, 32, 48, 100, 256]) {
    it(`ONNX blocked layout, block ${blockSize}: reference, simd and scalar agree`, () => {
      for (const shape of shapes) {
        const x = randomF32(prod(shape), prod(shape) + blockSize, true);
        for (const mode of modes) {
          const want = ref.quantizeBlockwise4(x, shape, blockSize, mode);
          const deq = ref.dequantizeBlockwise4(want);
          for (const f of FLAVORS) {
            for (const windowBytes of [undefined, 1, 4000]) {
              const o = { kernels: K[f]!, windowBytes };
              const got = wasm.quantizeBlockwise4(x, shape, blockSize, mode, o);
              expect(diff(got.data, want.data)).toBe(-1);
              expect(diff(got.scales, want.scales)).toBe(-1);
              expect(diff(got.zeroPoints, want.zeroPoints)).toBe(-1);
              expect(diff(wasm.dequantizeBlockwise4(want, o), deq)).toBe(-1);
            }
          }
        }
      }
    });
  }

  for (const blockSize of [16, 32, 64, 128, 256]) {
    it(`MatMulNBits layout, block ${blockSize}: reference, simd and scalar agree`, () => {
      for (const [N, Kd] of [[1, 1], [3, 15], [5, 17], [7, 255], [4, 4097], [64, 300], [0, 8]] as const) {
        const w = randomF32(N * Kd, N * 7 + Kd, true);
        for (const symmetric of [true, false]) {
          const want = ref.quantizeMatMulNBits(w, N, Kd, blockSize, symmetric);
          const kb = Math.ceil(Kd / blockSize);
          expect(want.B.length).toBe(N * kb * (blockSize / 2));
          expect(want.scales.length).toBe(N * kb);
          expect(want.zeroPoints?.length).toBe(symmetric ? undefined : N * Math.ceil(kb / 2));
          const deq = ref.dequantizeMatMulNBits(want);
          for (const f of FLAVORS) {
            for (const windowBytes of [undefined, 1]) {
              const o = { kernels: K[f]!, windowBytes };
              const got = wasm.quantizeMatMulNBits(w, N, Kd, blockSize, symmetric, o);
              expect(diff(got.B, want.B)).toBe(-1);
              expect(diff(got.scales, want.scales)).toBe(-1);
              if (!symmetric) expect(diff(got.zeroPoints!, want.zeroPoints!)).toBe(-1);
              expect(diff(wasm.dequantizeMatMulNBits(want, o), deq)).toBe(-1);
            }
          }
        }
      }
    });
  }

  it('MatMulNBits rows are padded to whole blocks with the zero point', () => {
    // K = 40, block 16: 3 blocks per row (the last holds 8 values + 8 padding codes), and the
    // packed zero points of a row take 2 bytes with an unused high nibble.
    const w = new Float32Array(2 * 40).map((_, i) => 10 - (i % 40));
    const m = wasm.quantizeMatMulNBits(w, 2, 40, 16, false);
    expect(m.B.length).toBe(2 * 3 * 8);
    expect(m.zeroPoints!.length).toBe(2 * 2);
    // Blocks: [10..-5] -> zp 5; [-6..-21] -> zp 15; [-22..-29] -> zp 15.
    expect(Array.from(wasm.unpackNibbles(m.zeroPoints!, 8, false))).toEqual([5, 15, 15, 0, 5, 15, 15, 0]);
    const codes = wasm.unpackNibbles(m.B, 2 * 48, false);
    expect(Array.from(codes.subarray(40, 48))).toEqual(new Array(8).fill(15));
    expect(Array.from(wasm.dequantizeMatMulNBits(m).subarray(0, 3))).toEqual([10, 9, 8]);
  });

  it('matches numpy', () => {
    const cases: { rows: number; Kd: number; blockSize: number; mode: wasm.Q4Mode; x: Float32Array }[] = [];
    for (const [rows, Kd, blockSize] of [[257, 1000, 64], [31, 1001, 48], [8, 4096, 256], [100, 17, 16]] as const) {
      const x = randomF32(rows * Kd, rows + Kd, true);
      for (const mode of modes) cases.push({ rows, Kd, blockSize, mode, x });
    }
    const nbOf = (c: (typeof cases)[number]): number => c.rows * Math.ceil(c.Kd / c.blockSize);
    const results = numpy(cases.map((c) => ({ job: { op: 'block4', mode: c.mode, rows: c.rows, K: c.Kd, block: c.blockSize }, input: bytesOf(c.x), outBytes: nbOf(c) * 5 + c.rows * c.Kd })));
    cases.forEach((c, k) => {
      const out = results[k]!;
      const nb = nbOf(c);
      const scales = new Float32Array(out.buffer, 0, nb);
      const zps = out.subarray(nb * 4, nb * 5);
      const codes = new Int8Array(out.buffer, nb * 5, c.rows * c.Kd);
      const { x, rows, Kd, blockSize, mode } = c;
      for (const got of [ref.quantizeBlockwise4(x, [rows, Kd], blockSize, mode), ...FLAVORS.map((f) => wasm.quantizeBlockwise4(x, [rows, Kd], blockSize, mode, { kernels: K[f]! }))]) {
        expect(diff(got.scales, scales)).toBe(-1);
        expect(diff(got.zeroPoints, zps)).toBe(-1);
        expect(diff(wasm.unpackNibbles(got.data, rows * Kd, mode === 'int4'), codes)).toBe(-1);
      }
    });
  });
});

describe('onnxruntime agrees', () => {
  const dims = (d: number[]) => ({ dim: d.map((v) => ({ value: { case: 'dimValue' as const, value: BigInt(v) } })) });
  const vi = (name: string, elemType: number, d: number[]) => ({ name, type: { value: { case: 'tensorType' as const, value: { elemType, shape: dims(d) } } } });
  function model(graph: Parameters<typeof create<typeof GraphProtoSchema>>[1], opsets: [string, bigint][]): Uint8Array {
    return toBinary(ModelProtoSchema, create(ModelProtoSchema, { irVersion: 8n, opsetImport: opsets.map(([domain, version]) => ({ domain, version })), graph: create(GraphProtoSchema, graph) }));
  }

  it('QuantizeLinear int8/uint8 incl. NaN (-> low bound)', async () => {
    const n = 100003;
    const x = randomF32(n, 12, true);
    for (const [type, elem, zp] of [['int8', 3, -3], ['uint8', 2, 130]] as const) {
      const bytes = model(
        {
          name: 'q',
          node: [{ input: ['x', 's', 'z'], output: ['y'], opType: 'QuantizeLinear' }],
          initializer: [
            { name: 's', dataType: 1, floatData: [0.37] },
            { name: 'z', dataType: elem, int32Data: [zp] },
          ],
          input: [vi('x', 1, [n])],
          output: [vi('y', elem, [n])],
        },
        [['', 13n]],
      );
      const session = await ort.InferenceSession.create(bytes);
      const y = (await session.run({ x: new ort.Tensor('float32', x, [n]) })).y!.data as Int8Array | Uint8Array;
      for (const f of FLAVORS) expect(diff(wasm.quantizeLinear(x, { type, scale: 0.37, zeroPoint: zp }, { kernels: K[f]! }), y)).toBe(-1);
    }
  });

  it('MatMulNBits reads our layout (identity activations)', async () => {
    for (const [N, Kd, B, symmetric] of [[5, 70, 32, false], [6, 70, 32, true], [4, 33, 16, false]] as const) {
      const w = randomF32(N * Kd, N + Kd);
      const m = wasm.quantizeMatMulNBits(w, N, Kd, B, symmetric);
      const kb = Math.ceil(Kd / B);
      const initializer = [
        { name: 'B', dataType: 2, dims: [BigInt(N), BigInt(kb), BigInt(B / 2)], rawData: Uint8Array.from(m.B) },
        { name: 'S', dataType: 1, dims: [BigInt(N), BigInt(kb)], rawData: new Uint8Array(Float32Array.from(m.scales).buffer) },
      ];
      const inputs = ['A', 'B', 'S'];
      if (m.zeroPoints) {
        initializer.push({ name: 'Z', dataType: 2, dims: [BigInt(N), BigInt(Math.ceil(kb / 2))], rawData: Uint8Array.from(m.zeroPoints) });
        inputs.push('Z');
      }
      const attr = (name: string, i: number) => ({ name, type: 2, i: BigInt(i) });
      const bytes = model(
        {
          name: 'm',
          node: [{ input: inputs, output: ['Y'], opType: 'MatMulNBits', domain: 'com.microsoft', attribute: [attr('K', Kd), attr('N', N), attr('bits', 4), attr('block_size', B)] }],
          initializer,
          input: [vi('A', 1, [Kd, Kd])],
          output: [vi('Y', 1, [Kd, N])],
        },
        [['', 17n], ['com.microsoft', 1n]],
      );
      const session = await ort.InferenceSession.create(bytes);
      const eye = new Float32Array(Kd * Kd);
      for (let i = 0; i < Kd; i++) eye[i * Kd + i] = 1;
      const y = (await session.run({ A: new ort.Tensor('float32', eye, [Kd, Kd]) })).Y!.data as Float32Array;
      // Y = I @ W^T, so Y[k, n] = dequant(W)[n, k].
      const d = wasm.dequantizeMatMulNBits(m);
      const t = new Float32Array(N * Kd);
      for (let nn = 0; nn < N; nn++) for (let k = 0; k < Kd; k++) t[nn * Kd + k] = y[k * N + nn]!;
      expect(diff(t, d)).toBe(-1);
    }
  });
});

describe('argument errors (E_KERNEL_ARG)', () => {
  const x = new Float32Array(12);
  const o = (): { kernels: Kernels } => ({ kernels: K.simd! });
  it('zero, negative, NaN or infinite scale', () => {
    for (const scale of [0, -1, NaN, Infinity, 1e-50]) {
      expect(() => wasm.quantizeLinear(x, { type: 'int8', scale }, o())).toThrow(KERR);
      expect(() => ref.quantizeLinear(x, { type: 'int8', scale })).toThrow(KERR);
      expect(() => wasm.dequantizeLinear(new Int8Array(3), { scale }, o())).toThrow(KERR);
    }
    expect(() => wasm.quantizeLinear(x, { type: 'uint8', scale: [1, 0, 1], shape: [4, 3], axis: 1 }, o())).toThrow(KERR);
  });
  it('per-tensor parameters with a shape check the shape only', () => {
    expect(wasm.quantizeLinear(x, { type: 'int8', scale: 1, shape: [12] }, o()).length).toBe(12);
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: 1, shape: [13] }, o())).toThrow(KERR);
  });
  it('zero point outside the range or not an integer', () => {
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: 1, zeroPoint: 128 }, o())).toThrow(KERR);
    expect(() => wasm.quantizeLinear(x, { type: 'uint8', scale: 1, zeroPoint: -1 }, o())).toThrow(KERR);
    expect(() => wasm.quantizeLinear(x, { type: 'uint8', scale: 1, zeroPoint: 1.5 }, o())).toThrow(KERR);
  });
  it('axis out of range', () => {
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: [1, 1, 1], shape: [4, 3], axis: 2 }, o())).toThrow(KERR);
    expect(() => wasm.dequantizeLinear(new Uint8Array(12), { scale: [1, 1, 1], shape: [4, 3], axis: -3 }, o())).toThrow(KERR);
  });
  it('length mismatches', () => {
    // shape vs data
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: [1, 1, 1], shape: [5, 3], axis: 1 }, o())).toThrow(KERR);
    // scales vs channels
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: [1, 1], shape: [4, 3], axis: 1 }, o())).toThrow(KERR);
    // zero points vs channels
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: [1, 1, 1], zeroPoint: [0, 0], shape: [4, 3], axis: 1 }, o())).toThrow(KERR);
    // per-channel parameters without a shape
    expect(() => wasm.quantizeLinear(x, { type: 'int8', scale: [1, 1, 1] }, o())).toThrow(KERR);
    // packed 4-bit data too short
    const b = wasm.quantizeBlockwise4(new Float32Array(32), [2, 16], 16, 'uint4', o());
    expect(() => wasm.dequantizeBlockwise4({ ...b, data: b.data.subarray(1) }, o())).toThrow(KERR);
    expect(() => wasm.dequantizeBlockwise4({ ...b, scales: b.scales.subarray(1) }, o())).toThrow(KERR);
    expect(() => wasm.quantizeBlockwise4(new Float32Array(30), [2, 16], 16, 'uint4', o())).toThrow(KERR);
    expect(() => wasm.quantizeMatMulNBits(new Float32Array(30), 2, 16, 16, true, o())).toThrow(KERR);
    const m = wasm.quantizeMatMulNBits(new Float32Array(64), 2, 32, 16, false, o());
    expect(() => wasm.dequantizeMatMulNBits({ ...m, B: m.B.subarray(2) }, o())).toThrow(KERR);
    expect(() => wasm.dequantizeMatMulNBits({ ...m, zeroPoints: new Uint8Array(1) }, o())).toThrow(KERR);
  });
  it('bad block size', () => {
    for (const bs of [0, 8, 15, 257, 512, 16.5, NaN]) {
      expect(() => wasm.quantizeBlockwise4(new Float32Array(64), [64], bs, 'int4', o())).toThrow(KERR);
      expect(() => ref.quantizeBlockwise4(new Float32Array(64), [64], bs, 'int4')).toThrow(KERR);
    }
    // MatMulNBits needs a power of two.
    expect(() => wasm.quantizeMatMulNBits(new Float32Array(96), 1, 96, 48, true, o())).toThrow(KERR);
    expect(wasm.quantizeBlockwise4(new Float32Array(96), [96], 48, 'int4', o()).scales.length).toBe(2);
  });
  it('int4 zero points must be 0, uint4 zero points at most 15', () => {
    const b = wasm.quantizeBlockwise4(new Float32Array(32), [32], 16, 'int4', o());
    expect(() => wasm.dequantizeBlockwise4({ ...b, zeroPoints: new Uint8Array([0, 1]) }, o())).toThrow(KERR);
    expect(() => wasm.dequantizeBlockwise4({ ...b, mode: 'uint4', zeroPoints: new Uint8Array([0, 16]) }, o())).toThrow(KERR);
  });
  it('bad value range for chooseQuantParams', () => {
    expect(() => wasm.chooseQuantParams(NaN, 1, 'int8')).toThrow(KERR);
    expect(() => wasm.chooseQuantParams(0, Infinity, 'int8')).toThrow(KERR);
    expect(() => wasm.chooseQuantParams(2, 1, 'int8')).toThrow(KERR);
  });
  it('bad window size', () => {
    expect(() => setWindowBytes(0)).toThrow(KERR);
  });
});

describe('fused quantize + error statistics (quantize_stats_*)', () => {
  /**
   * Relative closeness of two float64 sums of n same-sign terms added in different orders (the SIMD
   * build keeps four partial sums). Each order is within (n - 1)·2^-53 of the exact sum, so the two
   * differ by at most twice that: 1e-12 below ~4500 elements; more for long runs of equal terms
   * (saturated codes make the rounding errors of the index-order sum add up instead of cancel).
   */
  const close = (a: number, b: number, n: number): boolean => a === b || Math.abs(a - b) <= Math.max(1e-12, 2 * n * 2 ** -53) * Math.abs(b);
  function check(x: Float32Array, p: wasm.QuantizeParams, windows: (number | undefined)[]): void {
    const want = ref.quantizeLinearStats(x, p);
    // The reference sums are errorStats' sums over the materialised dequantized tensor, bit for bit.
    const q = ref.quantizeLinear(x, p);
    expect(diff(want.q, q)).toBe(-1);
    expect(errorStatsFromSums(want.sums)).toEqual(errorStats(x, ref.dequantizeLinear(q, p)));
    for (const f of FLAVORS) {
      for (const windowBytes of windows) {
        const got = wasm.quantizeLinearStats(x, p, { kernels: K[f]!, windowBytes });
        expect(diff(got.q, q), `${f} codes`).toBe(-1);
        if (f === 'scalar') expect(Array.from(got.sums), 'scalar sums are exact').toEqual(Array.from(want.sums));
        else {
          // max and count do not depend on the order of additions.
          expect(got.sums[0]).toBe(want.sums[0]);
          expect(got.sums[6]).toBe(want.sums[6]);
          for (let i = 1; i < 6; i++) expect(close(got.sums[i]!, want.sums[i]!, x.length), `${f} sum ${i}: ${got.sums[i]} vs ${want.sums[i]}`).toBe(true);
        }
      }
    }
  }

  for (const n of [0, 1, 5, 4097, 65537]) {
    it(`per tensor, n=${n}, with NaN/Inf (skipped, not counted)`, () => {
      const x = randomF32(n, 901 + n, true);
      for (const p of [{ type: 'int8' as const, scale: 0.37, zeroPoint: -3 }, { type: 'uint8' as const, scale: 3.1e-3, zeroPoint: 7 }]) {
        check(x, p, n < 5000 ? [undefined, 5 * 7, 5 * 1021] : [undefined, 5 * 4099]);
      }
    });
  }

  for (const [shape, axis] of [[[7, 5, 3], 1], [[1000, 17], 1], [[3, 4097], 0], [[257, 300], 1], [[2, 0, 3], 1]] as [number[], number][]) {
    it(`per channel, shape [${shape}] axis ${axis}`, () => {
      const n = prod(shape);
      const x = randomF32(n, 17 * n + axis, true);
      for (const type of ['int8', 'uint8'] as const) {
        const p = { type, shape, axis, ...channelParams(shape[axis]!, type, 5 + axis) };
        check(x, p, [undefined, 5 * 7, 5 * 1021]);
      }
    });
  }

  it('counts only finite references and matches errorStats on a weight-like tensor', () => {
    const x = new Float32Array([1, NaN, -2, Infinity, 0.5, -Infinity, 3]);
    const p = { type: 'int8' as const, scale: 0.02, zeroPoint: 0 };
    for (const f of FLAVORS) {
      const { sums } = wasm.quantizeLinearStats(x, p, { kernels: K[f]! });
      expect(sums[6]).toBe(4);
      // 3 / 0.02 = 150 saturates at 127 → g = 2.54, the largest error.
      expect(sums[0]).toBeCloseTo(3 - Math.fround(127 * Math.fround(0.02)), 12);
    }
    const w = randomF32(1 << 16, 7);
    const pw = { type: 'int8' as const, scale: 1 / 127, zeroPoint: 0 };
    const s = errorStatsFromSums(wasm.quantizeLinearStats(w, pw, { kernels: K.simd! }).sums);
    const e = errorStats(w, wasm.dequantizeLinear(wasm.quantizeLinear(w, pw), pw));
    expect(s.maxAbs).toBe(e.maxAbs);
    expect(Math.abs(s.snrDb - e.snrDb)).toBeLessThan(1e-9);
    expect(Math.abs(s.cosine - e.cosine)).toBeLessThan(1e-12);
    expect(Math.abs(s.meanAbs - e.meanAbs)).toBeLessThanOrEqual(1e-12 * e.meanAbs);
  });

  it('argument errors are E_KERNEL_ARG', () => {
    const x = new Float32Array(6);
    expect(() => wasm.quantizeLinearStats(x, { type: 'int8', scale: 0 })).toThrow(KERR);
    expect(() => wasm.quantizeLinearStats(x, { type: 'int8', scale: [1, 1], shape: [2, 2], axis: 0 })).toThrow(KERR);
  });
});
