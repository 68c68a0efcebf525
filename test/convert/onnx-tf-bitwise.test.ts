/**
 * BitShift, BitwiseAnd/Or/Xor/Not and BitCast converted to TF and run in TF.js: integer results must
 * be exact. onnxruntime is the oracle for the dtypes its test helper feeds (int8/uint8/int32); 16-
 * and 32-bit unsigned cases are checked against plain JS bit arithmetic.
 */
import '../../src/convert/onnx-tf/handlers/bitwise.js';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DType } from '../../src/core/dtype.js';
import { ModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { numbersTensor } from '../../src/convert/onnx-tf/values.js';
import { runConformance } from '../../src/bench/conformance.js';
import { buildModel, compare, nums, onnxNode as N, runTf } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

/** Deterministic integers in [lo, hi]. */
function ints(name: string, dtype: DType, shape: number[], lo: number, hi: number, seed: number): Tensor {
  let s = seed >>> 0 || 1;
  const n = shape.reduce((p, q) => p * q, 1);
  const vals = Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + Math.floor((s / 2 ** 32) * (hi - lo + 1));
  });
  return numbersTensor(name, dtype, shape, vals);
}

const io = (name: string, dims: number[], dtype: DType) => ({ name, dims, dtype });

async function tfOnly(nodes: ReturnType<typeof N>[], feeds: Tensor[], out: { name: string; dims: number[]; dtype: DType }, opset = 18): Promise<number[]> {
  const m = buildModel(nodes, feeds.map((f) => io(f.name, f.shape, f.dtype)), [out], [], opset);
  const res = await onnxToTf(m.model, { constants: true });
  expect(res.signature.outputs[out.name]!.dtype).toBe(out.dtype);
  const got = (await runTf(res, feeds)).get(out.name)!;
  expect(got.shape).toEqual(out.dims);
  return nums(got);
}

async function refusal(nodes: ReturnType<typeof N>[], ins: Array<{ name: string; dims: number[]; dtype: DType }>, out: { name: string; dims: number[]; dtype: DType }, ...parts: string[]): Promise<void> {
  const m = buildModel(nodes, ins, [out], [], 26);
  const e = await onnxToTf(m.model, { constants: true }).then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(ModelsmithError);
  expect((e as ModelsmithError).code).toBe('E_UNSUPPORTED');
  for (const p of parts) expect((e as Error).message).toContain(p);
}

describe('bitwise ops match onnxruntime exactly', () => {
  for (const dtype of ['int32', 'int8', 'uint8'] as const) {
    const [lo, hi] = dtype === 'int32' ? [-(2 ** 31), 2 ** 31 - 1] : dtype === 'int8' ? [-128, 127] : [0, 255];
    it(`BitwiseAnd/Or/Xor/Not on ${dtype} (full range, broadcast)`, async () => {
      const x = ints('x', dtype, [3, 5], lo, hi, 7);
      const y = ints('y', dtype, [5], lo, hi, 8);
      const m = buildModel([N('BitwiseAnd', ['x', 'y'], ['and']), N('BitwiseOr', ['x', 'y'], ['or']), N('BitwiseXor', ['x', 'y'], ['xor']), N('BitwiseNot', ['x'], ['not'])],
        [io('x', [3, 5], dtype), io('y', [5], dtype)], ['and', 'or', 'xor', 'not'].map((n) => io(n, [3, 5], dtype)), [], 18);
      const { diffs } = await compare(m, [x, y]);
      expect(diffs).toEqual({ and: 0, or: 0, xor: 0, not: 0 });
    });
  }

  it('BitShift LEFT/RIGHT on uint8, every shift 0..8 (LEFT wraps at 2^8)', async () => {
    const x = ints('x', 'uint8', [4, 9], 0, 255, 3);
    const y = numbersTensor('y', 'uint8', [9], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const m = buildModel([N('BitShift', ['x', 'y'], ['l'], { direction: 'LEFT' }), N('BitShift', ['x', 'y'], ['r'], { direction: 'RIGHT' })],
      [io('x', [4, 9], 'uint8'), io('y', [9], 'uint8')], [io('l', [4, 9], 'uint8'), io('r', [4, 9], 'uint8')], [], 11);
    const { diffs } = await compare(m, [x, y]);
    expect(diffs).toEqual({ l: 0, r: 0 });
  });
});

describe('16/32-bit unsigned forms against JS bit arithmetic', () => {
  it('BitShift uint16 LEFT wraps at 2^16, RIGHT floors; shifts ≥ 16 give 0', async () => {
    const xs = [1, 0xffff, 0x8001, 12345, 0x7fff, 3, 0xffff, 40000];
    const ys = [15, 1, 1, 4, 16, 17, 0, 15];
    const x = numbersTensor('x', 'uint16', [8], xs);
    const y = numbersTensor('y', 'uint16', [8], ys);
    const out = io('z', [8], 'uint16');
    const left = await tfOnly([N('BitShift', ['x', 'y'], ['z'], { direction: 'LEFT' })], [x, y], out, 11);
    expect(left).toEqual(xs.map((v, i) => (ys[i]! >= 16 ? 0 : (v << ys[i]!) & 0xffff)));
    const right = await tfOnly([N('BitShift', ['x', 'y'], ['z'], { direction: 'RIGHT' })], [x, y], out, 11);
    expect(right).toEqual(xs.map((v, i) => (ys[i]! >= 16 ? 0 : v >>> ys[i]!)));
  });

  it('BitShift uint32: LEFT wraps at 2^32, RIGHT up to 31 bits, shift 32 gives 0', async () => {
    const xs = [0x40000001, 1, 0x7fffffff, 5, 0x12345678, 0x7fffffff, 3, 0x10000];
    const ys = [2, 30, 31, 0, 4, 17, 32, 15];
    const x = numbersTensor('x', 'uint32', [8], xs);
    const y = numbersTensor('y', 'uint32', [8], ys);
    const out = io('z', [8], 'uint32');
    // Only results TF.js can hold (below 2^31) are compared; 0x40000001 << 2 wraps to 4.
    const left = await tfOnly([N('BitShift', ['x', 'y'], ['z'], { direction: 'LEFT' })], [x, y], out, 11);
    const wantLeft = xs.map((v, i) => (ys[i]! >= 32 ? 0 : Number((BigInt(v) << BigInt(ys[i]!)) & 0xffffffffn)));
    wantLeft.forEach((w, i) => { if (w < 2 ** 31) expect(left[i], `element ${i}`).toBe(w); });
    expect(wantLeft.filter((w) => w < 2 ** 31).length).toBeGreaterThanOrEqual(5);
    expect(left[0]).toBe(4);
    const right = await tfOnly([N('BitShift', ['x', 'y'], ['z'], { direction: 'RIGHT' })], [x, y], out, 11);
    expect(right).toEqual(xs.map((v, i) => (ys[i]! >= 32 ? 0 : v >>> ys[i]!)));
  });

  it('BitShift uint64 in four 16-bit steps (results below 2^31, the TF.js range)', async () => {
    const xs = [1, 0x7fffffff, 3, 0x10000, 12345, 0x40000000];
    const ys = [30, 20, 29, 14, 0, 64];
    const x = numbersTensor('x', 'uint64', [6], xs);
    const y = numbersTensor('y', 'uint64', [6], ys);
    const out = io('z', [6], 'uint64');
    expect(await tfOnly([N('BitShift', ['x', 'y'], ['z'], { direction: 'RIGHT' })], [x, y], out, 11)).toEqual(xs.map((v, i) => (ys[i]! >= 64 ? 0 : Math.floor(v / 2 ** ys[i]!))));
    const small = numbersTensor('y', 'uint64', [6], [30, 0, 29, 14, 3, 0]);
    expect(await tfOnly([N('BitShift', ['x', 'y'], ['z'], { direction: 'LEFT' })], [numbersTensor('x', 'uint64', [6], [1, 0x7fffffff, 3, 0x10000, 12345, 0x40000000]), small], out, 11))
      .toEqual([2 ** 30, 0x7fffffff, 3 * 2 ** 29, 2 ** 30, 12345 * 8, 0x40000000]);
  });

  it('BitwiseAnd/Or/Xor/Not on int16 and uint16 (results through the 16-bit table)', async () => {
    for (const [dtype, lo, hi] of [['int16', -32768, 32767], ['uint16', 0, 65535]] as const) {
      const x = ints('x', dtype, [12], lo, hi, 21);
      const y = ints('y', dtype, [12], lo, hi, 22);
      const xv = nums(x);
      const yv = nums(y);
      const fix = (v: number): number => (dtype === 'uint16' ? v & 0xffff : (v << 16) >> 16);
      const out = io('z', [12], dtype);
      for (const [op, f] of [['BitwiseAnd', (p: number, q: number) => p & q], ['BitwiseOr', (p: number, q: number) => p | q], ['BitwiseXor', (p: number, q: number) => p ^ q]] as const) {
        expect(await tfOnly([N(op, ['x', 'y'], ['z'])], [x, y], out), `${op} ${dtype}`).toEqual(xv.map((v, i) => fix(f(v, yv[i]!))));
      }
      expect(await tfOnly([N('BitwiseNot', ['x'], ['z'])], [x], out)).toEqual(xv.map((v) => fix(~v)));
    }
  });

  it('16-bit results share one lookup table per dtype', async () => {
    const m = buildModel([N('BitwiseAnd', ['x', 'y'], ['a']), N('BitwiseOr', ['a', 'y'], ['o']), N('BitwiseXor', ['o', 'x'], ['z'])],
      [io('x', [4], 'uint16'), io('y', [4], 'uint16')], [io('z', [4], 'uint16')], [], 18);
    const res = await onnxToTf(m.model, { constants: true });
    expect(res.graph.node.filter((n) => n.name.includes('table_uint16'))).toHaveLength(1);
    const x = numbersTensor('x', 'uint16', [4], [1, 0xffff, 0x1234, 0x8000]);
    const y = numbersTensor('y', 'uint16', [4], [3, 0x00ff, 0xf0f0, 0x8001]);
    const got = nums((await runTf(res, [x, y])).get('z')!);
    expect(got).toEqual(nums(x).map((v, i) => (((v & nums(y)[i]!) | nums(y)[i]!) ^ v) & 0xffff));
  });

  it('BitCast between the signed and unsigned readings of 8- and 16-bit integers', async () => {
    const u16 = numbersTensor('x', 'uint16', [5], [0, 1, 32767, 32768, 65535]);
    expect(await tfOnly([N('BitCast', ['x'], ['z'], { to: 5 })], [u16], io('z', [5], 'int16'), 26)).toEqual([0, 1, 32767, -32768, -1]);
    const i16 = numbersTensor('x', 'int16', [4], [-32768, -1, 0, 32767]);
    expect(await tfOnly([N('BitCast', ['x'], ['z'], { to: 4 })], [i16], io('z', [4], 'uint16'), 26)).toEqual([32768, 65535, 0, 32767]);
    const i8 = numbersTensor('x', 'int8', [4], [-128, -1, 0, 127]);
    expect(await tfOnly([N('BitCast', ['x'], ['z'], { to: 2 })], [i8], io('z', [4], 'uint8'), 26)).toEqual([128, 255, 0, 127]);
    const u8 = numbersTensor('x', 'uint8', [3], [128, 255, 7]);
    expect(await tfOnly([N('BitCast', ['x'], ['z'], { to: 3 })], [u8], io('z', [3], 'int8'), 26)).toEqual([-128, -1, 7]);
  });

  it('BitCast of a constant folds to the same bytes (float32 → int32)', async () => {
    const c = numbersTensor('c', 'float32', [3], [1, -2, 0.5]);
    const m = buildModel([N('BitCast', ['c'], ['z'], { to: 6 })], [], [io('z', [3], 'int32')], [c], 26);
    const res = await onnxToTf(m.model, { constants: true });
    const got = nums((await runTf(res, [])).get('z')!);
    expect(got).toEqual(Array.from(new Int32Array(new Float32Array([1, -2, 0.5]).buffer)));
  });
});

describe('refusals (E_UNSUPPORTED)', () => {
  it('64-bit and uint32 bitwise ops, uint32 BitwiseNot: TF.js has no such integers', async () => {
    await refusal([N('BitwiseAnd', ['x', 'y'], ['z'])], [io('x', [2], 'int64'), io('y', [2], 'int64')], io('z', [2], 'int64'), 'unsupported form', 'BitwiseAnd on int64', 'TF.js has no');
    await refusal([N('BitwiseXor', ['x', 'y'], ['z'])], [io('x', [2], 'uint32'), io('y', [2], 'uint32')], io('z', [2], 'uint32'), 'unsupported form', 'BitwiseXor on uint32');
    await refusal([N('BitwiseNot', ['x'], ['z'])], [io('x', [2], 'uint32')], io('z', [2], 'uint32'), 'unsupported form', 'BitwiseNot on uint32', 'TF.js has no');
  });

  it('run-time BitCast involving floats or into uint32, and BitCast across widths', async () => {
    await refusal([N('BitCast', ['x'], ['z'], { to: 6 })], [io('x', [2], 'float32')], io('z', [2], 'int32'), 'unsupported form', 'BitCast float32 → int32', 'TF.js has no Bitcast');
    await refusal([N('BitCast', ['x'], ['z'], { to: 12 })], [io('x', [2], 'int32')], io('z', [2], 'uint32'), 'unsupported form', 'TF.js has no Cast to uint32');
    await refusal([N('BitCast', ['x'], ['z'], { to: 6 })], [io('x', [2], 'int16')], io('z', [2], 'int32'), 'BitCast from int16 to int32 (different widths)');
  });

  it('BitShift on a signed type or with an unknown direction, bitwise ops on floats', async () => {
    await refusal([N('BitShift', ['x', 'y'], ['z'], { direction: 'LEFT' })], [io('x', [2], 'int32'), io('y', [2], 'int32')], io('z', [2], 'int32'), 'BitShift on int32', "op 'BitShift 'BitShift_z''");
    await refusal([N('BitShift', ['x', 'y'], ['z'], { direction: 'UP' })], [io('x', [2], 'uint8'), io('y', [2], 'uint8')], io('z', [2], 'uint8'), "direction 'UP'");
    await refusal([N('BitwiseOr', ['x', 'y'], ['z'])], [io('x', [2], 'float32'), io('y', [2], 'float32')], io('z', [2], 'float32'), 'BitwiseOr on float32');
  });
});

describe('ONNX node tests', () => {
  it('bitshift, bitwise and bitcast node tests pass', async () => {
    const names = ['test_bitshift_left_uint32', 'test_bitwise_and_i32_2d', 'test_bitwise_or_i32_2d', 'test_bitwise_xor_i32_2d', 'test_bitwise_not_2d', 'test_bitcast_uint16_to_int16'];
    const s = await runConformance(NODE_TESTS, (t) => names.includes(t));
    expect(s.results.map((r) => [r.test, r.outcome, r.detail])).toEqual([...names].sort().map((t) => [t, 'pass', undefined]));
  });
});
