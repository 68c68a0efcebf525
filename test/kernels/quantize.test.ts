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
import { FLAVORS, LENGTHS, randomF32, rng, runPython } from './helpers.js';

const GEN = fileURLToPath(new URL('./gen/quantize_expected.py', import.meta.url));
const KERR = expect.objectContaining({ code: 'E_KERNEL_ARG' });
const K: Record<string, Kernels> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);
/** float32 bits, NaN canonicalised (wasm does not fix NaN payloads). */
function bits(x: number): number {
  if (x !== x) return 0x7fc00000;
  scratchF[0] = x;
  return scratchU[0]!;
}
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
    const u8 = [10, 12, 12, 10, 8, 8, 137, 138, 0, 255, 0, 255, 0, 0, 10, 10];
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
      const q = wasm.quantizeLinear(x, { type, scale, zeroPoint });
      const y = wasm.dequantizeLinear(q, { scale, zeroPoint });
      for (let i = 0; i < x.length; i++) expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(scale * 0.5000001);
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

describe('affine quantize: numpy', () => {
  // Over 1,000,000 values per case; NaN positions are excluded (numpy's cast of NaN is undefined)
  // and checked against the documented rule instead.
  const N = (1 << 20) + 5;
  function check(x: Float32Array, type: wasm.QType, shape: number[], axis: number | undefined, scale: Float32Array, zp: Int32Array): void {
    const expected = runPython(GEN, ['quant', type, shape.join(','), axis === undefined ? 'none' : String(axis)], bytesOf(x, scale, zp));
    const want = type === 'int8' ? new Int8Array(expected.buffer, expected.byteOffset, expected.length) : expected;
    const p = axis === undefined ? { type, scale: scale[0]!, zeroPoint: zp[0]! } : { type, shape, axis, scale, zeroPoint: zp };
    const isNaN = (i: number): boolean => x[i] !== x[i];
    const lo = ref.QRANGE[type][0];
    const results = [ref.quantizeLinear(x, p), ...FLAVORS.map((f) => wasm.quantizeLinear(x, p, { kernels: K[f]! }))];
    for (const got of results) {
      expect(diff(got, want, isNaN)).toBe(-1);
      for (let i = 0; i < x.length; i++) if (isNaN(i) && got[i] !== lo) throw new Error(`NaN at ${i} gave ${got[i]}`);
    }
  }

  it('per tensor int8 / uint8', () => {
    const x = randomF32(N, 2024, true);
    check(x, 'int8', [N], undefined, new Float32Array([0.37]), new Int32Array([-3]));
    check(x, 'uint8', [N], undefined, new Float32Array([0.25]), new Int32Array([128]));
    check(x, 'int8', [N], undefined, new Float32Array([1]), new Int32Array([0]));
    check(x, 'uint8', [N], undefined, new Float32Array([3.1e-3]), new Int32Array([7]));
  });

  it('per channel int8 / uint8 along each axis', () => {
    const shape = [64, 128, 128];
    const x = randomF32(prod(shape), 99, true);
    for (const [axis, type] of [[0, 'int8'], [1, 'uint8'], [2, 'int8'], [-1, 'uint8']] as const) {
      const C = shape[(axis + 3) % 3]!;
      const { scale, zeroPoint } = channelParams(C, type, 11 + axis);
      check(x, type, shape, axis, scale, zeroPoint);
    }
  });

  it('dequantize per tensor and per channel', () => {
    const shape = [256, 4099];
    const r = rng(4);
    for (const type of ['int8', 'uint8'] as const) {
      const q = type === 'int8' ? new Int8Array(prod(shape)) : new Uint8Array(prod(shape));
      for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 256);
      for (const axis of [undefined, 0, 1]) {
        const C = axis === undefined ? 1 : shape[axis]!;
        const { scale, zeroPoint } = channelParams(C, type, 5 + (axis ?? 9));
        const out = runPython(GEN, ['dequant', type, shape.join(','), axis === undefined ? 'none' : String(axis)], bytesOf(q, scale, zeroPoint));
        const want = new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.length));
        const p = axis === undefined ? { scale: scale[0]!, zeroPoint: zeroPoint[0]! } : { shape, axis, scale, zeroPoint };
        expect(diff(ref.dequantizeLinear(q, p), want)).toBe(-1);
        for (const f of FLAVORS) expect(diff(wasm.dequantizeLinear(q, p, { kernels: K[f]! }), want)).toBe(-1);
      }
    }
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
      for (let i = 0; i < x.length; i++) {
        const s = b.scales[Math.floor(i / 32)]!;
        expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(s * 0.5000001 + 1e-30);
      }
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
    const w = new Float32Array(2 * 20).map((_, i) => (i % 20) - 10);
    const m = wasm.quantizeMatMulNBits(w, 2, 20, 16, false);
    const codes = wasm.unpackNibbles(m.B, 2 * 32, false);
    const zps = wasm.unpackNibbles(m.zeroPoints!, 4, false);
    expect(zps[2]).toBe(0); // unused high nibble of the odd block count... kb = 2 here: both used
    expect(Array.from(codes.subarray(20, 32)).every((c) => c === zps[1])).toBe(true);
    // Block 1 of row 0 holds 6..9: its range is [0, 9], so zero point 0.
    expect(zps[1]).toBe(0);
  });

  it('matches numpy', () => {
    for (const [rows, Kd, blockSize] of [[257, 1000, 64], [31, 1001, 48], [16, 4096, 256], [100, 17, 16]] as const) {
      const x = randomF32(rows * Kd, rows + Kd, true);
      for (const mode of modes) {
        const out = runPython(GEN, ['block4', mode, String(rows), String(Kd), String(blockSize)], bytesOf(x));
        const nb = rows * Math.ceil(Kd / blockSize);
        const scales = new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + nb * 4));
        const zps = out.subarray(nb * 4, nb * 5);
        const codes = new Int8Array(out.buffer, out.byteOffset + nb * 5, rows * Kd);
        for (const got of [ref.quantizeBlockwise4(x, [rows, Kd], blockSize, mode), ...FLAVORS.map((f) => wasm.quantizeBlockwise4(x, [rows, Kd], blockSize, mode, { kernels: K[f]! }))]) {
          expect(diff(got.scales, scales)).toBe(-1);
          expect(diff(got.zeroPoints, zps)).toBe(-1);
          expect(diff(wasm.unpackNibbles(got.data, rows * Kd, mode === 'int4'), codes)).toBe(-1);
        }
      }
    }
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
        { name: 'B', dataType: 2, dims: [BigInt(N), BigInt(kb), BigInt(B / 2)], rawData: m.B },
        { name: 'S', dataType: 1, dims: [BigInt(N), BigInt(kb)], rawData: new Uint8Array(m.scales.buffer) },
      ];
      const inputs = ['A', 'B', 'S'];
      if (m.zeroPoints) {
        initializer.push({ name: 'Z', dataType: 2, dims: [BigInt(N), BigInt(Math.ceil(kb / 2))], rawData: m.zeroPoints });
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
