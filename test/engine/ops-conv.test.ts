import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType as AT, NodeProtoSchema, type NodeProto } from 'onnx-buf';
import '../../src/engine/ops/conv.js';
import '../../src/engine/ops/pool.js';
import '../../src/engine/ops/norm.js';
import type { Kernels } from '../../src/kernels/loader.js';
import { initKernels } from '../../src/kernels/loader.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import type { FValue, Value } from '../../src/engine/types.js';
import { toValue } from '../../src/engine/values.js';
import { getOp } from '../../src/engine/registry.js';
import { closeness, gradCheck, loadNodeTest, opContext, randomValue, runOp } from './helpers.js';
import { FLAVORS, rng, runPython } from '../kernels/helpers.js';

type AttrVal = number | string | number[] | { float: number };

function node(opType: string, attrs: Record<string, AttrVal> = {}, nIn = 1, nOut = 1): NodeProto {
  return create(NodeProtoSchema, {
    name: `test_${opType}`,
    opType,
    input: Array.from({ length: nIn }, (_, i) => `in${i}`),
    output: Array.from({ length: nOut }, (_, i) => `out${i}`),
    attribute: Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) });
      if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v) });
      if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.map((x) => BigInt(x)) });
      return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.float });
    }),
  });
}

/** Distinct values (spaced 0.05 apart, shuffled) so max pooling has no near-ties for finite differences. */
function distinctValue(dims: number[], seed: number): FValue {
  const n = dims.reduce((a, b) => a * b, 1);
  const r = rng(seed);
  const v = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * 0.05);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return { dtype: 'float32', dims, data: v };
}

const K: Partial<Record<'simd' | 'scalar', Kernels>> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

const CORPUS = [
  'test_conv_with_strides_padding',
  'test_maxpool_2d_default',
  'test_averagepool_2d_ceil',
  'test_globalaveragepool_precomputed',
  'test_globalmaxpool_precomputed',
  'test_batchnorm_example',
  'test_layer_normalization_2d_axis0',
  'test_layer_normalization_2d_axis1',
  'test_convtranspose_1d',
  // Old PyTorch exporter (opset 6), single-node tests.
  '../pytorch-converted/test_Conv1d_pad1size1',
  '../pytorch-converted/test_AvgPool2d',
  '../pytorch-converted/test_MaxPool1d',
  '../pytorch-converted/test_BatchNorm1d_3d_input_eval',
];

describe.each(FLAVORS)('corpus node tests (%s)', (flavor) => {
  it.each(CORPUS)('%s forward within 1e-4', async (name) => {
    const t = await loadNodeTest(name);
    const { result } = runOp(t.node, t.opset, t.inputs, K[flavor]!);
    expect(t.outputs.length).toBeGreaterThan(0);
    for (let o = 0; o < t.outputs.length; o++) {
      const got = result.outputs[o]!;
      expect(got.dims).toEqual(t.outputs[o]!.dims);
      expect(closeness(got.data as Float32Array, t.outputs[o]!.data as Float32Array)).toBeLessThanOrEqual(1);
    }
  });
});

interface GradCase {
  name: string;
  node: NodeProto;
  inputs: (Value | undefined)[];
  wrt: number[];
  eps?: number;
}

const GRAD_CASES: GradCase[] = [
  {
    name: 'Conv groups=2 stride 2 pads dilation 2 + bias',
    node: node('Conv', { group: 2, strides: [2, 2], pads: [1, 2, 2, 1], dilations: [2, 1] }, 3),
    inputs: [randomValue([2, 4, 7, 6], 1), randomValue([6, 2, 3, 2], 2), randomValue([6], 3)],
    wrt: [0, 1, 2],
  },
  {
    name: 'Conv depthwise 3x3 SAME_UPPER stride 2',
    node: node('Conv', { group: 3, strides: [2, 2], auto_pad: 'SAME_UPPER' }, 2),
    inputs: [randomValue([1, 3, 6, 5], 4), randomValue([3, 1, 3, 3], 5)],
    wrt: [0, 1],
  },
  {
    name: 'Conv 1x1 pointwise (no im2col) + bias',
    node: node('Conv', { kernel_shape: [1, 1] }, 3),
    inputs: [randomValue([2, 3, 4, 4], 6), randomValue([5, 3, 1, 1], 7), randomValue([5], 8)],
    wrt: [0, 1, 2],
  },
  {
    name: 'Conv 1-D SAME_LOWER stride 2 dilation 2',
    node: node('Conv', { auto_pad: 'SAME_LOWER', strides: [2], dilations: [2] }, 3),
    inputs: [randomValue([2, 3, 11], 9), randomValue([4, 3, 3], 10), randomValue([4], 11)],
    wrt: [0, 1, 2],
  },
  {
    name: 'ConvTranspose groups=2 stride 2 pads output_padding dilation + bias',
    node: node('ConvTranspose', { group: 2, strides: [2, 3], pads: [1, 0, 0, 2], output_padding: [1, 2], dilations: [1, 2] }, 3),
    inputs: [randomValue([2, 4, 4, 3], 60), randomValue([4, 3, 3, 2], 61), randomValue([6], 62)],
    wrt: [0, 1, 2],
  },
  {
    name: 'ConvTranspose 1-D output_shape SAME_UPPER',
    node: node('ConvTranspose', { strides: [2], output_shape: [9], auto_pad: 'SAME_UPPER' }, 2),
    inputs: [randomValue([1, 2, 5], 63), randomValue([2, 3, 4], 64)],
    wrt: [0, 1],
  },
  {
    name: 'MaxPool 3x3 stride 2 pads ceil_mode',
    node: node('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }),
    inputs: [distinctValue([2, 2, 6, 7], 12)],
    wrt: [0],
    eps: 1e-3,
  },
  {
    name: 'MaxPool 2x2 dilation 2, 1-D 3 stride 2',
    node: node('MaxPool', { kernel_shape: [2, 2], dilations: [2, 2] }),
    inputs: [distinctValue([1, 3, 6, 6], 13)],
    wrt: [0],
    eps: 1e-3,
  },
  {
    name: 'MaxPool 1-D kernel 3 stride 2 VALID',
    node: node('MaxPool', { kernel_shape: [3], strides: [2], auto_pad: 'VALID' }),
    inputs: [distinctValue([2, 3, 9], 14)],
    wrt: [0],
    eps: 1e-3,
  },
  {
    name: 'AveragePool 3x3 stride 2 pads ceil_mode count_include_pad',
    node: node('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 }),
    inputs: [randomValue([2, 2, 6, 7], 15)],
    wrt: [0],
  },
  {
    name: 'AveragePool 2x3 stride 2 pads excluded',
    node: node('AveragePool', { kernel_shape: [2, 3], strides: [2, 2], pads: [1, 1, 0, 1] }),
    inputs: [randomValue([1, 3, 5, 6], 16)],
    wrt: [0],
  },
  { name: 'GlobalAveragePool', node: node('GlobalAveragePool'), inputs: [randomValue([2, 3, 4, 5], 17)], wrt: [0] },
  { name: 'GlobalMaxPool', node: node('GlobalMaxPool'), inputs: [distinctValue([2, 3, 4, 5], 18)], wrt: [0], eps: 1e-3 },
  {
    name: 'BatchNormalization eval, scale and B',
    node: node('BatchNormalization', { epsilon: { float: 1e-3 } }, 5),
    inputs: [randomValue([3, 4, 3, 2], 19, -2, 2), randomValue([4], 20), randomValue([4], 21), randomValue([4], 22), randomValue([4], 23, 0.5, 2)],
    wrt: [0, 1, 2],
  },
  {
    name: 'LayerNormalization axis -1',
    node: node('LayerNormalization', {}, 3),
    inputs: [randomValue([3, 2, 6], 24, -2, 2), randomValue([6], 25), randomValue([6], 26)],
    wrt: [0, 1, 2],
  },
  {
    name: 'LayerNormalization axis 1 (over 2 axes), no bias',
    node: node('LayerNormalization', { axis: 1, epsilon: { float: 1e-2 } }, 2),
    inputs: [randomValue([2, 3, 4], 27, -2, 2), randomValue([3, 4], 28)],
    wrt: [0, 1],
  },
];

describe('gradients against finite differences', () => {
  it.each(GRAD_CASES.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    for (const f of FLAVORS) {
      const { worst } = gradCheck(c.node, 18, c.inputs, K[f]!, { wrt: c.wrt, eps: c.eps ?? 1e-2 });
      for (const i of c.wrt) expect(worst.get(i), `${f} input ${i}`).toBeLessThanOrEqual(1);
    }
  });

  it('MaxPool backward does not need the saved indices (recomputes them)', () => {
    const c = GRAD_CASES.find((g) => g.name.startsWith('MaxPool 3x3'))!;
    const k = K.simd!;
    const def = getOp('MaxPool')!;
    const ctx = opContext(c.node, 18, k, true);
    const fwd = def.forward(ctx, c.inputs);
    const dy = randomValue(fwd.outputs[0]!.dims, 3);
    const a = def.backward!(ctx, c.inputs, fwd.outputs, [dy], fwd.saved)[0]!;
    const b = def.backward!(ctx, c.inputs, fwd.outputs, [dy], undefined)[0]!;
    expect(b.data).toEqual(a.data);
  });

  it('MaxPool Indices output: flat NCHW offsets of the selected elements', () => {
    for (const [attrs, dims] of [
      [{ kernel_shape: [3, 2], strides: [2, 1], pads: [1, 0, 1, 1], dilations: [1, 2] }, [2, 3, 7, 6]],
      [{ kernel_shape: [3], strides: [2], auto_pad: 'SAME_UPPER' }, [2, 2, 9]],
    ] as const) {
      const n = node('MaxPool', attrs as Record<string, AttrVal>, 1, 2);
      const x = distinctValue([...dims], 70);
      const { result } = runOp(n, 18, [x], K.simd!);
      const [y, ind] = result.outputs as [FValue, Value];
      expect(ind.dtype).toBe('int64');
      expect(ind.dims).toEqual(y.dims);
      const plane = dims.slice(2).reduce((a, b) => a * b, 1);
      const outPlane = y.dims.slice(2).reduce((a, b) => a * b, 1);
      for (let o = 0; o < y.data.length; o++) {
        const at = Number((ind.data as BigInt64Array)[o]);
        expect(x.data[at]).toBe(y.data[o]);
        // Inside the same (n, c) plane as the output.
        expect(Math.floor(at / plane)).toBe(Math.floor(o / outPlane));
      }
    }
  });

  it('LayerNormalization gradients through the Mean and InvStdDev outputs', () => {
    const n = node('LayerNormalization', { axis: 1 }, 3, 3);
    const k = K.simd!;
    const def = getOp('LayerNormalization')!;
    const x = randomValue([3, 5], 30, -2, 2), s = randomValue([5], 31), b = randomValue([5], 32);
    const gm = randomValue([3, 1], 33), gi = randomValue([3, 1], 34);
    const loss = (xv: FValue): number => {
      const o = def.forward(opContext(n, 18, k), [xv, s, b]).outputs;
      let t = 0;
      for (let r = 0; r < 3; r++) t += o[1]!.data[r] as number * gm.data[r]! + (o[2]!.data[r] as number) * gi.data[r]!;
      return t;
    };
    const fwd = def.forward(opContext(n, 18, k, true), [x, s, b]);
    const dx = def.backward!(opContext(n, 18, k, true), [x, s, b], fwd.outputs, [undefined, gm, gi], fwd.saved)[0]!;
    const num = new Float64Array(x.data.length);
    for (let i = 0; i < num.length; i++) {
      const p = Float32Array.from(x.data), m = Float32Array.from(x.data);
      p[i]! += 1e-2;
      m[i]! -= 1e-2;
      num[i] = (loss({ ...x, data: p }) - loss({ ...x, data: m })) / 2e-2;
    }
    expect(closeness(dx.data, num, 1e-2, 1e-2)).toBeLessThanOrEqual(1);
  });
});

// Torch autograd oracle: float64 forward and backward with a fixed upstream gradient.
const TORCH = String.raw`
import sys, json, torch
import torch.nn.functional as F
torch.set_grad_enabled(True)
out = []
for c in json.load(sys.stdin):
    t = lambda v: torch.tensor(v['data'], dtype=torch.float64).reshape(v['dims']).requires_grad_(True)
    ins = [t(v) for v in c['inputs']]
    a = c['args']
    k = c['kind']
    if k == 'conv2d': y = F.conv2d(*ins, stride=a['stride'], padding=a['padding'], dilation=a['dilation'], groups=a['groups'])
    elif k == 'conv1d': y = F.conv1d(*ins, stride=a['stride'], padding=a['padding'], dilation=a['dilation'], groups=a['groups'])
    elif k == 'conv_transpose2d': y = F.conv_transpose2d(*ins, stride=a['stride'], padding=a['padding'], output_padding=a['output_padding'], groups=a['groups'], dilation=a['dilation'])
    elif k == 'max_pool2d': y = F.max_pool2d(ins[0], a['kernel'], a['stride'], a['padding'], a['dilation'], ceil_mode=a['ceil'])
    elif k == 'avg_pool2d': y = F.avg_pool2d(ins[0], a['kernel'], a['stride'], a['padding'], ceil_mode=a['ceil'], count_include_pad=a['include_pad'])
    elif k == 'batch_norm': y = F.batch_norm(ins[0], ins[3].detach(), ins[4].detach(), ins[1], ins[2], training=False, eps=a['eps'])
    elif k == 'layer_norm': y = F.layer_norm(ins[0], a['shape'], ins[1], ins[2], eps=a['eps'])
    gy = torch.tensor(c['gy'], dtype=torch.float64).reshape(y.shape)
    y.backward(gy)
    out.append({'y': y.detach().flatten().tolist(), 'dims': list(y.shape), 'grads': [None if i.grad is None else i.grad.flatten().tolist() for i in ins]})
json.dump(out, sys.stdout)
`;

interface TorchCase {
  name: string;
  kind: string;
  args: Record<string, unknown>;
  node: NodeProto;
  inputs: FValue[];
  /** Inputs whose gradients are compared. */
  wrt: number[];
}

const TORCH_CASES: TorchCase[] = [
  {
    name: 'conv2d groups=2 stride 2 padding 1 dilation 2',
    kind: 'conv2d', args: { stride: 2, padding: 1, dilation: 2, groups: 2 },
    node: node('Conv', { group: 2, strides: [2, 2], pads: [1, 1, 1, 1], dilations: [2, 2] }, 3),
    inputs: [randomValue([3, 4, 11, 10], 40), randomValue([6, 2, 3, 3], 41), randomValue([6], 42)], wrt: [0, 1, 2],
  },
  {
    name: 'conv2d depthwise padding (2,1)',
    kind: 'conv2d', args: { stride: 1, padding: [2, 1], dilation: 1, groups: 4 },
    node: node('Conv', { group: 4, pads: [2, 1, 2, 1] }, 3),
    inputs: [randomValue([2, 4, 8, 9], 43), randomValue([8, 1, 3, 3], 44), randomValue([8], 45)], wrt: [0, 1, 2],
  },
  {
    name: 'conv1d stride 3 padding 2',
    kind: 'conv1d', args: { stride: 3, padding: 2, dilation: 1, groups: 1 },
    node: node('Conv', { strides: [3], pads: [2, 2] }, 3),
    inputs: [randomValue([2, 3, 20], 46), randomValue([5, 3, 4], 47), randomValue([5], 48)], wrt: [0, 1, 2],
  },
  {
    name: 'conv_transpose2d groups=2 stride 2 padding 1 output_padding 1 dilation 2',
    kind: 'conv_transpose2d', args: { stride: 2, padding: 1, output_padding: 1, groups: 2, dilation: 2 },
    node: node('ConvTranspose', { group: 2, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1], dilations: [2, 2] }, 3),
    inputs: [randomValue([2, 4, 5, 6], 65), randomValue([4, 3, 3, 3], 66), randomValue([6], 67)], wrt: [0, 1, 2],
  },
  {
    name: 'max_pool2d 3 stride 2 padding 1 ceil_mode',
    kind: 'max_pool2d', args: { kernel: 3, stride: 2, padding: 1, dilation: 1, ceil: true },
    node: node('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }),
    inputs: [distinctValue([2, 3, 10, 9], 49)], wrt: [0],
  },
  {
    name: 'max_pool2d 2 dilation 2 stride 1',
    kind: 'max_pool2d', args: { kernel: 2, stride: 1, padding: 0, dilation: 2, ceil: false },
    node: node('MaxPool', { kernel_shape: [2, 2], dilations: [2, 2] }),
    inputs: [distinctValue([1, 2, 7, 8], 50)], wrt: [0],
  },
  ...[false, true].map((inc): TorchCase => ({
    name: `avg_pool2d 3 stride 2 padding 1 ceil_mode count_include_pad=${inc}`,
    kind: 'avg_pool2d', args: { kernel: 3, stride: 2, padding: 1, ceil: true, include_pad: inc },
    node: node('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: inc ? 1 : 0 }),
    inputs: [randomValue([2, 3, 10, 9], 51)], wrt: [0],
  })),
  {
    name: 'batch_norm eval',
    kind: 'batch_norm', args: { eps: 1e-5 },
    node: node('BatchNormalization', { epsilon: { float: 1e-5 } }, 5),
    inputs: [randomValue([4, 3, 5, 5], 52, -3, 3), randomValue([3], 53), randomValue([3], 54), randomValue([3], 55), randomValue([3], 56, 0.2, 2)],
    wrt: [0, 1, 2],
  },
  {
    name: 'layer_norm over the last two axes',
    kind: 'layer_norm', args: { shape: [4, 8], eps: 1e-5 },
    node: node('LayerNormalization', { axis: 1 }, 3),
    inputs: [randomValue([3, 4, 8], 57, -3, 3), randomValue([4, 8], 58), randomValue([4, 8], 59)],
    wrt: [0, 1, 2],
  },
];

describe('torch autograd cross-check (float64 oracle, 1e-4)', () => {
  it('conv2d/conv1d/conv_transpose2d/max_pool2d/avg_pool2d/batch_norm/layer_norm forward and gradients', () => {
    const k = K.simd!;
    const runs = TORCH_CASES.map((c) => {
      const def = getOp(c.node.opType)!;
      const ctx = opContext(c.node, 18, k, true);
      const fwd = def.forward(ctx, c.inputs);
      const gy = randomValue(fwd.outputs[0]!.dims, 99);
      const grads = def.backward!(ctx, c.inputs, fwd.outputs, [gy], fwd.saved);
      return { c, y: fwd.outputs[0]!, gy, grads };
    });
    const payload = runs.map((r) => ({
      kind: r.c.kind, args: r.c.args, gy: Array.from(r.gy.data),
      inputs: r.c.inputs.map((v) => ({ dims: v.dims, data: Array.from(v.data) })),
    }));
    const res = JSON.parse(new TextDecoder().decode(runPython(TORCH, [], new TextEncoder().encode(JSON.stringify(payload))))) as
      { y: number[]; dims: number[]; grads: (number[] | null)[] }[];
    expect(res.length).toBe(TORCH_CASES.length);
    runs.forEach((r, i) => {
      const t = res[i]!;
      expect(r.y.dims, r.c.name).toEqual(t.dims);
      expect(closeness(r.y.data as Float32Array, t.y), `${r.c.name} forward`).toBeLessThanOrEqual(1);
      for (const w of r.c.wrt) {
        expect(closeness(r.grads[w]!.data, t.grads[w]!), `${r.c.name} grad ${w}`).toBeLessThanOrEqual(1);
      }
    });
  });
});

describe('refusals', () => {
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(ModelsmithError);
      expect((e as ModelsmithError).message).toContain('test_');
      return (e as ModelsmithError).code;
    }
    return undefined;
  };
  const x4 = randomValue([1, 2, 5, 5], 1);
  const w4 = randomValue([2, 2, 3, 3], 2);

  it('E_UNSUPPORTED from check for attribute values the ops do not implement', () => {
    const k = K.simd!;
    const cases: [NodeProto, (Value | undefined)[]][] = [
      [node('Conv', { auto_pad: 'SAME' }, 2), [x4, w4]],
      [node('Conv', { kernel_shape: [3, 3, 3] }, 2), [x4, w4]],
      [node('Conv', { group: 0 }, 2), [x4, w4]],
      [node('Conv', { strides: [0, 1] }, 2), [x4, w4]],
      [node('ConvTranspose', { output_padding: [-1, 0] }, 2), [x4, w4]],
      [node('MaxPool', { kernel_shape: [2, 2], storage_order: 1 }), [x4]],
      [node('MaxPool', {}), [x4]],
      [node('AveragePool', { kernel_shape: [2, 2], ceil_mode: 2 }), [x4]],
      [node('AveragePool', { kernel_shape: [2, 2], pads: [1, 1, -1, 0] }), [x4]],
      [node('BatchNormalization', { training_mode: 1 }, 5), []],
      [node('BatchNormalization', {}, 5, 3), []],
      [node('LayerNormalization', { stash_type: 10 }, 3), []],
    ];
    for (const [n, ins] of cases) expect(code(() => runOp(n, 18, ins, k)), n.opType).toBe('E_UNSUPPORTED');
    // spatial=0 only exists before opset 9.
    const bn = node('BatchNormalization', { spatial: 0 }, 5);
    expect(code(() => getOp('BatchNormalization')!.check!({ node: bn, attrs: opContext(bn, 7, k).attrs, opset: 7 }))).toBe('E_UNSUPPORTED');
    // A Scale that only broadcasts is refused at run time.
    expect(code(() => runOp(node('LayerNormalization', {}, 2), 18, [randomValue([2, 4], 1), randomValue([1], 2)], k))).toBe('E_UNSUPPORTED');
    // output_shape beyond the full output would need negative padding.
    expect(code(() => runOp(node('ConvTranspose', { output_shape: [20, 20] }, 2), 18, [x4, w4], k))).toBe('E_UNSUPPORTED');
    // 3-D inputs when no attribute tells up front.
    expect(code(() => runOp(node('Conv', {}, 2), 18, [randomValue([1, 1, 3, 3, 3], 1), randomValue([1, 1, 2, 2, 2], 2)], k))).toBe('E_UNSUPPORTED');
  });

  it('E_MALFORMED for shapes that disagree', () => {
    const k = K.simd!;
    expect(code(() => runOp(node('Conv', {}, 2), 18, [randomValue([1, 3, 5, 5], 1), w4], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('Conv', { kernel_shape: [2, 2] }, 2), 18, [x4, w4], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('Conv', {}, 3), 18, [x4, w4, randomValue([3], 3)], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('Conv', { pads: [0, 0] }, 2), 18, [x4, w4], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('Conv', {}, 2), 18, [randomValue([1, 2, 2, 2], 1), w4], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('ConvTranspose', {}, 2), 18, [randomValue([1, 3, 5, 5], 1), w4], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('ConvTranspose', { output_shape: [1, 2, 3] }, 2), 18, [x4, w4], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('MaxPool', { kernel_shape: [2, 2] }), 18, [randomValue([4, 4], 1)], k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('GlobalAveragePool'), 18, [randomValue([4, 4], 1)], k))).toBe('E_MALFORMED');
    const bnIns = [x4, randomValue([3], 1), randomValue([2], 2), randomValue([2], 3), randomValue([2], 4)];
    expect(code(() => runOp(node('BatchNormalization', {}, 5), 18, bnIns, k))).toBe('E_MALFORMED');
    expect(code(() => runOp(node('LayerNormalization', { axis: 2 }, 2), 18, [randomValue([2, 4], 1), randomValue([4], 2)], k))).toBe('E_MALFORMED');
  });

  it('E_LIMIT / E_KERNEL_ARG for hostile pads, naming the node', () => {
    const k = K.simd!;
    // 40,005² outputs: fits an i32 plane but not the per-value cap.
    expect(code(() => runOp(node('MaxPool', { kernel_shape: [1, 1], pads: [20000, 20000, 20000, 20000] }), 18, [x4], k))).toBe('E_LIMIT');
    expect(code(() => runOp(node('Conv', { pads: [2 ** 40, 0, 2 ** 40, 0] }, 2), 18, [x4, w4], k))).toBe('E_KERNEL_ARG');
    expect(code(() => runOp(node('AveragePool', { kernel_shape: [3, 3], strides: [2 ** 33, 1] }), 18, [x4], k))).toBe('E_KERNEL_ARG');
  });

  it('E_DTYPE for non-float inputs, E_KERNEL_ARG for missing ones', () => {
    const k = K.simd!;
    const ints: Value = { dtype: 'int32', dims: [1, 1, 2, 2], data: new Int32Array(4) };
    expect(code(() => runOp(node('MaxPool', { kernel_shape: [2, 2] }), 18, [ints], k))).toBe('E_DTYPE');
    expect(code(() => runOp(node('Conv', {}, 2), 18, [x4, undefined], k))).toBe('E_KERNEL_ARG');
  });

  it('the corpus uint8 MaxPool is not something the float engine loads', async () => {
    await expect(loadNodeTest('test_maxpool_2d_uint8')).rejects.toMatchObject({ code: 'E_DTYPE' });
  });
});

describe('fixture CNN first conv layer', () => {
  it('forward + backward on a batch of 128 28x28 images', () => {
    const model = decodeOnnx(new Uint8Array(readFileSync(resolve(import.meta.dirname, '../fixtures/fashion-mnist/cnn.onnx'))), { path: 'cnn.onnx' });
    const g = model.proto.graph!;
    const conv = g.node.find((n) => n.opType === 'Conv')!;
    const init = (name: string): FValue => toValue(tensorFromProtoSync(g.initializer.find((t) => t.name === name)!)) as FValue;
    const w = init(conv.input[1]!), b = init(conv.input[2]!);
    const x = randomValue([128, 1, 28, 28], 5, 0, 1);
    const def = getOp('Conv')!;
    for (const f of FLAVORS) {
      const ctx = opContext(conv, 13, K[f]!, true);
      // Best of 3 after a warm-up run (the first call includes compiling the kernels' tiers).
      let tf = Infinity, tb = Infinity;
      let fwd = def.forward(ctx, [x, w, b]);
      let grads = def.backward!(ctx, [x, w, b], fwd.outputs, [fwd.outputs[0] as FValue], fwd.saved);
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        fwd = def.forward(ctx, [x, w, b]);
        const t1 = performance.now();
        grads = def.backward!(ctx, [x, w, b], fwd.outputs, [fwd.outputs[0] as FValue], fwd.saved);
        const t2 = performance.now();
        tf = Math.min(tf, t1 - t0);
        tb = Math.min(tb, t2 - t1);
      }
      console.log(`fixture conv1 [128,1,28,28] * [16,1,3,3] (${f}): forward ${tf.toFixed(1)} ms, backward (dX, dW, dB) ${tb.toFixed(1)} ms`);
      expect(fwd.outputs[0]!.dims).toEqual([128, 16, 26, 26]);
      expect(grads[1]!.dims).toEqual([16, 1, 3, 3]);
      // dB = Σ dY = Σ Y here; a cheap consistency check of the batch-wide accumulation.
      const y = fwd.outputs[0]!.data as Float32Array;
      let s0 = 0;
      for (let i = 0; i < 128; i++) for (let k = 0; k < 676; k++) s0 += y[i * 16 * 676 + k]!;
      expect(grads[2]!.data[0]).toBeCloseTo(s0, 0);
    }
  });
});
