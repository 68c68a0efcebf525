/**
 * Dense op families (elementwise, activation, matmul, shape): forward against the corpus node tests
 * and hand/Python-computed values, every backward against central finite differences (several
 * shapes, broadcasting included), and every error the handlers throw.
 */
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType as AT, NodeProtoSchema, type AttributeProto, type NodeProto } from 'onnx-buf';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../src/core/errors.js';
import '../../src/engine/ops/index.js';
import type { FValue, Value } from '../../src/engine/types.js';
import { fvalue, ivalue } from '../../src/engine/values.js';
import type { Kernels } from '../../src/kernels/loader.js';
import { runPython } from '../kernels/helpers.js';
import { closeness, gradCheck, loadNodeTest, nodeTestExists, randomValue, runOp, testKernels } from './helpers.js';

let K: Kernels;
beforeAll(async () => {
  K = await testKernels();
});

type AttrVal = number | number[] | string | { f: number };
function attr(name: string, v: AttrVal): AttributeProto {
  if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) });
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.map(BigInt) });
  return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.f });
}
function node(opType: string, nIn: number, attrs: Record<string, AttrVal> = {}, nOut = 1): NodeProto {
  return create(NodeProtoSchema, {
    opType, name: `t_${opType}`,
    input: Array.from({ length: nIn }, (_, i) => `i${i}`), output: Array.from({ length: nOut }, (_, i) => `o${i}`),
    attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
  });
}
const fwd = (n: NodeProto, opset: number, inputs: (Value | undefined)[]): Value[] => runOp(n, opset, inputs, K).result.outputs;
const nums = (v: Value): number[] => Array.from(v.data, Number);

function errorOf(fn: () => unknown): ModelsmithError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    return e as ModelsmithError;
  }
  throw new Error('expected an error');
}

// ------------------------------------------------------------------------------------------------
// forward: corpus node tests
// ------------------------------------------------------------------------------------------------

const NODE_TESTS = [
  'test_abs', 'test_add', 'test_add_bcast', 'test_concat_2d_axis_0', 'test_constant', 'test_dropout_default_old', 'test_elu_example',
  'test_gather_0', 'test_gelu_default_1', 'test_gemm_default_matrix_bias', 'test_gemm_default_scalar_bias', 'test_leakyrelu_example',
  'test_matmul_2d', 'test_mean_one_input', 'test_relu', 'test_reshape_reordered_all_dims', 'test_softmax_example', 'test_transpose_default',
];

describe('forward: corpus node tests', () => {
  it.each(NODE_TESTS)('%s', async (name) => {
    expect(nodeTestExists(name)).toBe(true);
    const t = await loadNodeTest(name);
    const out = fwd(t.node, t.opset, t.inputs);
    expect(out.length).toBeGreaterThanOrEqual(t.outputs.length);
    t.outputs.forEach((want, i) => {
      expect(out[i]!.dtype).toBe(want.dtype);
      expect(out[i]!.dims).toEqual(want.dims);
      expect(closeness(nums(out[i]!), nums(want))).toBeLessThanOrEqual(1);
    });
  });
});

// ------------------------------------------------------------------------------------------------
// forward: values computed by numpy / math in Python (ops and attribute forms the corpus lacks)
// ------------------------------------------------------------------------------------------------

describe('forward: against numpy', () => {
  it('pointwise math, reductions, softmax forms, Gelu, Clip', () => {
    const x = randomValue([3, 4, 5], 21, -2, 2);
    const pos = randomValue([3, 4, 5], 22, 0.1, 3);
    const cases: { label: string; n: NodeProto; opset: number; inputs: Value[]; py: string }[] = [
      { label: 'Sqrt', n: node('Sqrt', 1), opset: 13, inputs: [pos], py: 'np.sqrt(p)' },
      { label: 'Log', n: node('Log', 1), opset: 13, inputs: [pos], py: 'np.log(p)' },
      { label: 'Exp', n: node('Exp', 1), opset: 13, inputs: [x], py: 'np.exp(x)' },
      { label: 'Neg', n: node('Neg', 1), opset: 13, inputs: [x], py: '-x' },
      { label: 'Pow', n: node('Pow', 2), opset: 15, inputs: [pos, x], py: 'np.power(p, x)' },
      { label: 'Pow bcast', n: node('Pow', 2), opset: 15, inputs: [pos, fvalue([1], Float32Array.of(3))], py: 'p ** 3' },
      { label: 'Sub bcast', n: node('Sub', 2), opset: 14, inputs: [x, fvalue([4, 1], Float32Array.of(1, 2, 3, 4))], py: 'x - np.array([[1],[2],[3],[4]], np.float32)' },
      { label: 'Div bcast', n: node('Div', 2), opset: 14, inputs: [x, fvalue([5], pos.data.slice(0, 5))], py: 'x / p.reshape(-1)[:5]' },
      { label: 'Sigmoid', n: node('Sigmoid', 1), opset: 13, inputs: [x], py: '1 / (1 + np.exp(-x))' },
      { label: 'Tanh', n: node('Tanh', 1), opset: 13, inputs: [x], py: 'np.tanh(x)' },
      { label: 'Erf', n: node('Erf', 1), opset: 13, inputs: [x], py: 'np.vectorize(math.erf)(x)' },
      { label: 'Gelu tanh', n: node('Gelu', 1, { approximate: 'tanh' }), opset: 20, inputs: [x], py: '0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))' },
      { label: 'Gelu', n: node('Gelu', 1), opset: 20, inputs: [x], py: '0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))' },
      { label: 'Clip attrs (opset 6)', n: node('Clip', 1, { min: { f: -0.5 }, max: { f: 1 } }), opset: 6, inputs: [x], py: 'np.clip(x, -0.5, 1)' },
      { label: 'Clip inputs', n: node('Clip', 3), opset: 13, inputs: [x, fvalue([], Float32Array.of(-1)), fvalue([], Float32Array.of(0.25))], py: 'np.clip(x, -1, 0.25)' },
      { label: 'Sum variadic', n: node('Sum', 3), opset: 13, inputs: [x, pos, fvalue([5], Float32Array.of(1, 2, 3, 4, 5))], py: 'x + p + np.arange(1, 6)' },
      { label: 'Mean variadic', n: node('Mean', 2), opset: 13, inputs: [x, fvalue([4, 1], Float32Array.of(1, 2, 3, 4))], py: '(x + np.arange(1, 5).reshape(4, 1)) / 2' },
      { label: 'ReduceSum axes input', n: node('ReduceSum', 2, { keepdims: 0 }), opset: 13, inputs: [x, ivalue([2], [0, -1])], py: 'x.sum(axis=(0, 2))' },
      { label: 'ReduceSum all', n: node('ReduceSum', 1), opset: 13, inputs: [x], py: 'x.sum(keepdims=True)' },
      { label: 'ReduceMean attr', n: node('ReduceMean', 1, { axes: [1] }), opset: 13, inputs: [x], py: 'x.mean(axis=1, keepdims=True)' },
      { label: 'ReduceMean input', n: node('ReduceMean', 2, { keepdims: 0 }), opset: 18, inputs: [x, ivalue([1], [2])], py: 'x.mean(axis=2)' },
      { label: 'Softmax opset 11 (2-D coercion)', n: node('Softmax', 1), opset: 11, inputs: [x], py: 'sm(x.reshape(3, 20), 1).reshape(3, 4, 5)' },
      { label: 'Softmax opset 13 axis 1', n: node('Softmax', 1, { axis: 1 }), opset: 13, inputs: [x], py: 'sm(x, 1)' },
      { label: 'LogSoftmax opset 13', n: node('LogSoftmax', 1), opset: 13, inputs: [x], py: 'np.log(sm(x, -1))' },
      { label: 'LogSoftmax opset 9 axis 2', n: node('LogSoftmax', 1, { axis: 2 }), opset: 9, inputs: [x], py: 'np.log(sm(x, 2))' },
      { label: 'MatMul batched bcast', n: node('MatMul', 2), opset: 13, inputs: [randomValue([2, 1, 3, 4], 5), randomValue([3, 4, 2], 6)], py: 'np.matmul(a, b)' },
      { label: 'MatMul 1-D × 3-D', n: node('MatMul', 2), opset: 13, inputs: [randomValue([4], 7), randomValue([3, 4, 2], 6)], py: 'np.matmul(a, b)' },
      { label: 'Gemm transA transB', n: node('Gemm', 3, { transA: 1, transB: 1, alpha: { f: 0.5 }, beta: { f: 2 } }), opset: 13, inputs: [randomValue([4, 3], 8), randomValue([5, 4], 9), randomValue([3, 1], 10)], py: '0.5 * a.T @ b.T + 2 * c' },
    ];
    const arrays = (v: Value): string => `np.array(${JSON.stringify(nums(v))}, np.float32).reshape(${JSON.stringify(v.dims)})`;
    const script = `
import json, math, sys
import numpy as np
def sm(v, ax):
    e = np.exp(v - v.max(axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)
out = []
for case in json.load(sys.stdin):
    x, p = eval(case['x']), eval(case['p'])
    a, b, c = (eval(s) if s else None for s in case['ins'])
    r = eval(case['py'], {'np': np, 'math': math, 'x': x, 'p': p, 'a': a, 'b': b, 'c': c, 'sm': sm})
    r = np.asarray(r, np.float64)
    out.append({'dims': list(r.shape), 'v': r.reshape(-1).tolist()})
print(json.dumps(out))
`;
    const payload = cases.map((c) => ({ x: arrays(x), p: arrays(pos), ins: [0, 1, 2].map((i) => (c.inputs[i] && c.inputs[i]!.dtype === 'float32' ? arrays(c.inputs[i]!) : '')), py: c.py }));
    const res = JSON.parse(new TextDecoder().decode(runPython(script, [], new TextEncoder().encode(JSON.stringify(payload))))) as { dims: number[]; v: number[] }[];
    cases.forEach((c, i) => {
      const out = fwd(c.n, c.opset, c.inputs)[0]!;
      expect(out.dims, c.label).toEqual(res[i]!.dims);
      expect(closeness(nums(out), res[i]!.v), c.label).toBeLessThanOrEqual(1);
    });
  });

  it('integer shape arithmetic (Add/Sub/Mul/Div/Neg/Abs/ReduceSum on int64)', () => {
    const a = ivalue([3], [7, -7, 9]), b = ivalue([], [2]);
    expect(nums(fwd(node('Add', 2), 14, [a, b])[0]!)).toEqual([9, -5, 11]);
    expect(nums(fwd(node('Sub', 2), 14, [a, b])[0]!)).toEqual([5, -9, 7]);
    expect(nums(fwd(node('Mul', 2), 14, [a, b])[0]!)).toEqual([14, -14, 18]);
    expect(nums(fwd(node('Div', 2), 14, [a, b])[0]!)).toEqual([3, -3, 4]);
    expect(fwd(node('Div', 2), 14, [a, b])[0]!.dtype).toBe('int64');
    expect(nums(fwd(node('Neg', 1), 13, [a])[0]!)).toEqual([-7, 7, -9]);
    expect(nums(fwd(node('Abs', 1), 13, [a])[0]!)).toEqual([7, 7, 9]);
    expect(nums(fwd(node('ReduceSum', 1, { keepdims: 0 }), 13, [a])[0]!)).toEqual([9]);
    // Sums stay exact past float32's 2^24 (accumulated in float64).
    const big = fwd(node('ReduceSum', 1, { keepdims: 0 }), 13, [ivalue([2], [2 ** 40, 1])])[0]!;
    expect(big.data[0]).toBe(2n ** 40n + 1n);
  });

  it('shape ops', () => {
    const x = randomValue([2, 3, 4], 30);
    const reshape = (spec: number[], allowzero = 0) => fwd(node('Reshape', 2, { allowzero }), 14, [x, ivalue([spec.length], spec)])[0]!.dims;
    expect(reshape([0, -1])).toEqual([2, 12]);
    expect(reshape([-1, 0, 2])).toEqual([4, 3, 2]);
    expect(fwd(node('Reshape', 2, { allowzero: 1 }), 14, [fvalue([0, 3]), ivalue([2], [3, 0])])[0]!.dims).toEqual([3, 0]);
    expect(fwd(node('Reshape', 1, { shape: [4, 6] }), 4, [x])[0]!.dims).toEqual([4, 6]);
    expect(fwd(node('Flatten', 1), 13, [x])[0]!.dims).toEqual([2, 12]);
    expect(fwd(node('Flatten', 1, { axis: -1 }), 13, [x])[0]!.dims).toEqual([6, 4]);
    expect(fwd(node('Flatten', 1, { axis: 0 }), 13, [x])[0]!.dims).toEqual([1, 24]);
    expect(fwd(node('Squeeze', 2), 13, [fvalue([1, 3, 1]), ivalue([1], [-1])])[0]!.dims).toEqual([1, 3]);
    expect(fwd(node('Squeeze', 1), 13, [fvalue([1, 3, 1])])[0]!.dims).toEqual([3]);
    expect(fwd(node('Squeeze', 1, { axes: [0] }), 11, [fvalue([1, 3, 1])])[0]!.dims).toEqual([3, 1]);
    expect(fwd(node('Unsqueeze', 2), 13, [x, ivalue([2], [0, -1])])[0]!.dims).toEqual([1, 2, 3, 4, 1]);
    expect(fwd(node('Unsqueeze', 1, { axes: [1] }), 11, [x])[0]!.dims).toEqual([2, 1, 3, 4]);
    expect(nums(fwd(node('Shape', 1), 13, [x])[0]!)).toEqual([2, 3, 4]);
    expect(nums(fwd(node('Shape', 1, { start: 1, end: -1 }), 15, [x])[0]!)).toEqual([3]);
    const t = fwd(node('Transpose', 1, { perm: [1, 2, 0] }), 13, [x])[0]!;
    expect(t.dims).toEqual([3, 4, 2]);
    expect(t.data[1 * 8 + 2 * 2 + 1]).toBe(x.data[1 * 12 + 1 * 4 + 2]);
    const ti = fwd(node('Transpose', 1), 13, [ivalue([2, 2], [1, 2, 3, 4])])[0]!;
    expect([ti.dtype, nums(ti)]).toEqual(['int64', [1, 3, 2, 4]]);
    const c = fwd(node('Concat', 2, { axis: -1 }), 13, [ivalue([2, 1], [1, 2]), ivalue([2, 2], [3, 4, 5, 6])])[0]!;
    expect([c.dims, nums(c)]).toEqual([[2, 3], [1, 3, 4, 2, 5, 6]]);
    const g = fwd(node('Gather', 2, { axis: 1 }), 13, [x, ivalue([2, 2], [-1, 0, 2, 2])])[0]!;
    expect(g.dims).toEqual([2, 2, 2, 4]);
    expect(g.data[0]).toBe(x.data[2 * 4]);
    const d = fwd(node('Dropout', 1, {}, 2), 13, [x]);
    expect(d[0]).toBe(x);
    expect([d[1]!.dtype, Array.from(d[1]!.data).every((v) => v === 1)]).toEqual(['bool', true]);
    expect(fwd(node('Identity', 1), 13, [x])[0]).toBe(x);
    const cast = (v: Value, to: number) => fwd(node('Cast', 1, { to }), 13, [v])[0]!;
    const f = fvalue([5], Float32Array.of(-2.7, -0.2, 0, 1.9, NaN));
    expect([cast(f, 7).dtype, nums(cast(f, 7))]).toEqual(['int64', [-2, 0, 0, 1, 0]]);
    expect([cast(f, 6).dtype, nums(cast(f, 6))]).toEqual(['int32', [-2, 0, 0, 1, 0]]);
    expect([cast(f, 9).dtype, nums(cast(f, 9))]).toEqual(['bool', [1, 1, 0, 1, 1]]);
    expect(nums(cast(ivalue([2], [3, -4]), 1))).toEqual([3, -4]);
    expect(cast(f, 1)).toBe(f);
  });
});

// ------------------------------------------------------------------------------------------------
// backward: finite differences
// ------------------------------------------------------------------------------------------------

type GCase = [label: string, n: NodeProto, opset: number, inputs: (Value | undefined)[], wrt: number[]];
const rv = randomValue;
const posv = (dims: number[], seed: number): FValue => randomValue(dims, seed, 0.5, 2);
/** Values away from 0 (the kink of Relu/Abs/LeakyRelu). */
function awayFromZero(dims: number[], seed: number): FValue {
  const v = randomValue(dims, seed, 0.2, 1.5);
  v.data.forEach((x, i) => (v.data[i] = i % 2 ? -x : x));
  return v;
}

const GRAD_CASES: GCase[] = [
  ['Add same', node('Add', 2), 14, [rv([3, 4], 1), rv([3, 4], 2)], [0, 1]],
  ['Add [2,3,4]+[4]', node('Add', 2), 14, [rv([2, 3, 4], 1), rv([4], 2)], [0, 1]],
  ['Add [3,1]+[1,4]', node('Add', 2), 14, [rv([3, 1], 1), rv([1, 4], 2)], [0, 1]],
  ['Sub scalar', node('Sub', 2), 14, [rv([], 1), rv([2, 3], 2)], [0, 1]],
  ['Sub [2,3,4]-[3,1]', node('Sub', 2), 14, [rv([2, 3, 4], 3), rv([3, 1], 4)], [0, 1]],
  ['Mul same', node('Mul', 2), 14, [rv([3, 4], 1), rv([3, 4], 2)], [0, 1]],
  ['Mul [2,3,4]*[3,1]', node('Mul', 2), 14, [rv([2, 3, 4], 5), rv([3, 1], 6)], [0, 1]],
  ['Div same', node('Div', 2), 14, [rv([3, 4], 1), posv([3, 4], 2)], [0, 1]],
  ['Div [4] / [2,3,4]', node('Div', 2), 14, [rv([4], 1), posv([2, 3, 4], 2)], [0, 1]],
  ['Pow', node('Pow', 2), 15, [posv([3, 4], 1), rv([3, 4], 2)], [0, 1]],
  ['Pow bcast exponent', node('Pow', 2), 15, [posv([2, 3], 1), rv([1], 2)], [0, 1]],
  ['Neg', node('Neg', 1), 13, [rv([5, 2], 3)], [0]],
  ['Abs', node('Abs', 1), 13, [awayFromZero([5, 2], 3)], [0]],
  ['Sqrt', node('Sqrt', 1), 13, [posv([5, 2], 3)], [0]],
  ['Exp', node('Exp', 1), 13, [rv([5, 2], 3)], [0]],
  ['Log', node('Log', 1), 13, [posv([5, 2], 3)], [0]],
  ['Sum 3 inputs bcast', node('Sum', 3), 13, [rv([2, 3], 1), rv([3], 2), rv([2, 1], 3)], [0, 1, 2]],
  ['Mean 2 inputs bcast', node('Mean', 2), 13, [rv([2, 3], 1), rv([1, 3], 2)], [0, 1]],
  ['ReduceSum axes input keepdims 0', node('ReduceSum', 2, { keepdims: 0 }), 13, [rv([2, 3, 4], 1), ivalue([2], [0, 2])], [0]],
  ['ReduceSum all', node('ReduceSum', 1), 13, [rv([2, 3], 1)], [0]],
  ['ReduceMean attr', node('ReduceMean', 1, { axes: [-1] }), 13, [rv([2, 3, 4], 1)], [0]],
  ['ReduceMean input keepdims 0', node('ReduceMean', 2, { keepdims: 0 }), 18, [rv([2, 3, 4], 1), ivalue([1], [1])], [0]],
  ['Relu', node('Relu', 1), 14, [awayFromZero([4, 5], 7)], [0]],
  ['LeakyRelu', node('LeakyRelu', 1, { alpha: { f: 0.2 } }), 16, [awayFromZero([4, 5], 7)], [0]],
  ['Sigmoid', node('Sigmoid', 1), 13, [rv([4, 5], 7, -3, 3)], [0]],
  ['Tanh', node('Tanh', 1), 13, [rv([4, 5], 7, -2, 2)], [0]],
  ['Gelu', node('Gelu', 1), 20, [rv([4, 5], 7, -3, 3)], [0]],
  ['Gelu tanh', node('Gelu', 1, { approximate: 'tanh' }), 20, [rv([4, 5], 7, -3, 3)], [0]],
  ['Erf', node('Erf', 1), 13, [rv([4, 5], 7, -2, 2)], [0]],
  ['Elu', node('Elu', 1, { alpha: { f: 0.7 } }), 22, [awayFromZero([4, 5], 8)], [0]],
  ['Softmax opset 13 axis -1', node('Softmax', 1), 13, [rv([3, 4, 5], 9, -2, 2)], [0]],
  ['Softmax opset 13 axis 1', node('Softmax', 1, { axis: 1 }), 13, [rv([3, 4, 5], 9, -2, 2)], [0]],
  ['Softmax opset 11 coerced', node('Softmax', 1), 11, [rv([3, 4, 5], 9, -2, 2)], [0]],
  ['LogSoftmax opset 13 axis 0', node('LogSoftmax', 1, { axis: 0 }), 13, [rv([3, 4], 9, -2, 2)], [0]],
  ['LogSoftmax opset 9', node('LogSoftmax', 1), 9, [rv([3, 4, 2], 9, -2, 2)], [0]],
  ['Clip inputs', node('Clip', 3), 13, [awayFromZero([4, 5], 10), fvalue([], Float32Array.of(-0.9)), fvalue([], Float32Array.of(0.8))], [0]],
  ['Clip attrs', node('Clip', 1, { min: { f: -0.7 }, max: { f: 1.1 } }), 6, [awayFromZero([4, 5], 10)], [0]],
  ['MatMul 2-D', node('MatMul', 2), 13, [rv([3, 4], 1), rv([4, 5], 2)], [0, 1]],
  ['MatMul batch folded', node('MatMul', 2), 13, [rv([2, 3, 4], 1), rv([4, 5], 2)], [0, 1]],
  ['MatMul batched', node('MatMul', 2), 13, [rv([2, 3, 4], 1), rv([2, 4, 5], 2)], [0, 1]],
  ['MatMul bcast A', node('MatMul', 2), 13, [rv([1, 3, 4], 1), rv([2, 4, 5], 2)], [0, 1]],
  ['MatMul bcast both', node('MatMul', 2), 13, [rv([2, 1, 3, 4], 1), rv([3, 4, 2], 2)], [0, 1]],
  ['MatMul 1-D × 2-D', node('MatMul', 2), 13, [rv([4], 1), rv([4, 5], 2)], [0, 1]],
  ['MatMul 2-D × 1-D', node('MatMul', 2), 13, [rv([3, 4], 1), rv([4], 2)], [0, 1]],
  ['Gemm C [N]', node('Gemm', 3), 13, [rv([3, 4], 1), rv([4, 5], 2), rv([5], 3)], [0, 1, 2]],
  ['Gemm transA', node('Gemm', 3, { transA: 1 }), 13, [rv([4, 3], 1), rv([4, 5], 2), rv([3, 1], 3)], [0, 1, 2]],
  ['Gemm transB alpha beta', node('Gemm', 3, { transB: 1, alpha: { f: 0.5 }, beta: { f: -2 } }), 13, [rv([3, 4], 1), rv([5, 4], 2), rv([3, 5], 3)], [0, 1, 2]],
  ['Gemm transA transB scalar C', node('Gemm', 3, { transA: 1, transB: 1 }), 13, [rv([4, 3], 1), rv([5, 4], 2), rv([], 3)], [0, 1, 2]],
  ['Gemm no C', node('Gemm', 2, { alpha: { f: 1.5 } }), 13, [rv([3, 4], 1), rv([4, 5], 2)], [0, 1]],
  ['Reshape', node('Reshape', 2), 14, [rv([2, 3, 4], 1), ivalue([2], [4, -1])], [0]],
  ['Flatten', node('Flatten', 1, { axis: 2 }), 13, [rv([2, 3, 4], 1)], [0]],
  ['Transpose perm', node('Transpose', 1, { perm: [2, 0, 1] }), 13, [rv([2, 3, 4], 1)], [0]],
  ['Transpose default', node('Transpose', 1), 13, [rv([2, 3, 4], 1)], [0]],
  ['Concat axis 1', node('Concat', 3, { axis: 1 }), 13, [rv([2, 1, 3], 1), rv([2, 2, 3], 2), rv([2, 3, 3], 3)], [0, 1, 2]],
  ['Identity', node('Identity', 1), 13, [rv([3, 2], 1)], [0]],
  ['Dropout', node('Dropout', 1), 13, [rv([3, 2], 1)], [0]],
  ['Squeeze', node('Squeeze', 2), 13, [rv([3, 1, 2], 1), ivalue([1], [1])], [0]],
  ['Unsqueeze', node('Unsqueeze', 2), 13, [rv([3, 2], 1), ivalue([1], [0])], [0]],
  ['Gather axis 0 repeated', node('Gather', 2), 13, [rv([4, 3], 1), ivalue([3], [1, -3, 3])], [0]],
  ['Gather axis 1 2-D indices', node('Gather', 2, { axis: 1 }), 13, [rv([2, 4, 3], 1), ivalue([2, 2], [0, -1, 3, 0])], [0]],
  ['Cast float→float', node('Cast', 1, { to: 1 }), 13, [rv([3, 2], 1)], [0]],
];

describe('backward: finite differences', () => {
  it.each(GRAD_CASES)('%s', (_label, n, opset, inputs, wrt) => {
    const { worst } = gradCheck(n, opset, inputs, K, { wrt, eps: 1e-2 });
    for (const i of wrt) expect(worst.get(i), `input ${i}`).toBeLessThanOrEqual(1);
  });

  it('non-differentiable inputs and ops get no gradient', () => {
    const x = rv([4, 3], 1), idx = ivalue([2], [0, 1]);
    const { def, ctx, result } = runOp(node('Gather', 2), 13, [x, idx], K, true);
    const g = def.backward!(ctx, [x, idx], result.outputs, [rv(result.outputs[0]!.dims, 2)], result.saved);
    expect(g[1]).toBeUndefined();
    const cast = runOp(node('Cast', 1, { to: 7 }), 13, [x], K, true);
    expect(cast.def.backward!(cast.ctx, [x], cast.result.outputs, [undefined], undefined)).toEqual([]);
    expect(runOp(node('Shape', 1), 13, [x], K).def.backward).toBeUndefined();
  });
});

// ------------------------------------------------------------------------------------------------
// errors thrown by the handlers
// ------------------------------------------------------------------------------------------------

describe('errors', () => {
  it('E_KERNEL_ARG: shapes, axes, indices and missing inputs the op cannot use', () => {
    const x = rv([2, 3], 1);
    const cases: [NodeProto, number, (Value | undefined)[], RegExp][] = [
      [node('Add', 2), 14, [x, rv([4], 2)], /do not broadcast/],
      [node('Relu', 1), 14, [undefined], /input 0 is missing/],
      [node('MatMul', 2), 13, [x, rv([2, 3], 2)], /inner dimensions/],
      [node('MatMul', 2), 13, [rv([], 1), x], /rank ≥ 1/],
      [node('Gemm', 2), 13, [rv([2, 3, 1], 1), x], /2-D/],
      [node('Gemm', 3), 13, [x, rv([3, 4], 2), rv([3, 4], 3)], /broadcast/],
      [node('Gemm', 3), 13, [x, rv([3, 4], 2), rv([1, 2, 4], 3)], /does not broadcast to \[2,4\]/],
      [node('Reshape', 2), 14, [x, ivalue([2], [4, -1])], /cannot reshape/],
      [node('Reshape', 2), 14, [x, ivalue([2], [-1, -1])], /invalid target shape/],
      [node('Reshape', 2), 14, [x, ivalue([3], [1, 1, 0])], /does not have/],
      [node('Transpose', 1, { perm: [0, 0] }), 13, [x], /not a permutation/],
      [node('Concat', 2, { axis: 0 }), 13, [x, rv([2, 4], 2)], /differ outside axis/],
      [node('Concat', 2), 13, [x, x], /needs an axis/],
      [node('Gather', 2), 13, [x, ivalue([1], [2])], /index 2 .* out of range/],
      [node('Gather', 2, { axis: 2 }), 13, [x, ivalue([1], [0])], /axis 2 is out of range/],
      [node('Squeeze', 2), 13, [x, ivalue([1], [0])], /cannot squeeze axis 0 of size 2/],
      [node('Unsqueeze', 1), 13, [x], /needs axes/],
      [node('Unsqueeze', 2), 13, [x, ivalue([2], [0, 0])], /repeated axis/],
      [node('Softmax', 1, { axis: 2 }), 13, [x], /axis 2 is out of range/],
      [node('ReduceSum', 2), 13, [x, ivalue([1], [3])], /axis 3 is out of range/],
      [node('Flatten', 1, { axis: 3 }), 13, [x], /out of range/],
      [node('Clip', 3), 13, [x, rv([2], 2), undefined], /must be a scalar/],
      [node('Div', 2), 14, [ivalue([1], [1]), ivalue([1], [0])], /division by zero/],
    ];
    for (const [n, opset, inputs, re] of cases) {
      const e = errorOf(() => fwd(n, opset, inputs));
      expect(e.code, n.opType).toBe('E_KERNEL_ARG');
      expect(e.message).toMatch(re);
      expect(e.op).toBe(`${n.opType} t_${n.opType}`);
    }
  });

  it('E_DTYPE: inputs of a type the op does not compute with', () => {
    const i = ivalue([2], [1, 2]);
    const cases: [NodeProto, number, (Value | undefined)[]][] = [
      [node('Relu', 1), 14, [i]],
      [node('Add', 2), 14, [rv([2], 1), i]],
      [node('MatMul', 2), 13, [i, i]],
      [node('Concat', 2, { axis: 0 }), 13, [rv([2], 1), i]],
      [node('Gather', 2), 13, [rv([2], 1), rv([1], 2)]],
      [node('Sqrt', 1), 13, [{ dtype: 'bool', dims: [1], data: Uint8Array.of(1) }]],
      [node('Pow', 2), 15, [rv([2], 1), { dtype: 'bool', dims: [1], data: Uint8Array.of(1) }]],
    ];
    for (const [n, opset, inputs] of cases) expect(errorOf(() => fwd(n, opset, inputs)).code, n.opType).toBe('E_DTYPE');
  });

  it('E_UNSUPPORTED: attribute values outside what the handlers implement, reported by check', () => {
    for (const n of [node('Cast', 1, { to: 10 }), node('Cast', 1, { to: 99 }), node('Gelu', 1, { approximate: 'fast' }), node('Constant', 0)]) {
      expect(errorOf(() => fwd(n, 20, [rv([1], 1)])).code, n.opType).toBe('E_UNSUPPORTED');
    }
  });

  it('E_OUT_OF_RANGE: shape values beyond 2^53', () => {
    const big: Value = { dtype: 'int64', dims: [1], data: BigInt64Array.of(1n << 60n) };
    expect(errorOf(() => fwd(node('Reshape', 2), 14, [rv([2], 1), big])).code).toBe('E_OUT_OF_RANGE');
  });

  it('E_MALFORMED: an attribute of the wrong type', () => {
    expect(errorOf(() => fwd(node('Softmax', 1, { axis: 'x' }), 13, [rv([2], 1)])).code).toBe('E_MALFORMED');
  });
});
