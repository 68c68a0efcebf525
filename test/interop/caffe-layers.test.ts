/**
 * Every layer family of the Caffe → ONNX registry, on small synthetic nets with seeded random
 * weights: the converted model passes onnx.checker and onnxruntime matches OpenCV dnn running the
 * same prototxt + caffemodel (8 inputs, 1e-4 max-abs). The nets cover the parameter forms that change
 * the mapping: _h/_w overrides, group, dilation, ceil pooling with and without pad (all three AVE
 * divisor paths), BatchNorm + Scale fusion, in-place chains, coeffs…
 * Not here: Bias (OpenCV 4.6 has no Bias layer) and MaxPool windows that start past the input (Caffe
 * yields -FLT_MAX there, OpenCV does not), and LRN with k ≠ 1 (OpenCV 4.6 ignores k; checked here
 * against numpy: it computes x / (1 + α/n·Σx²)^β whatever k is), and InnerProduct with transpose: true
 * (OpenCV 4.6 reads the [K, N] weight as [N, K]). These are checked against hand-computed values in
 * test/formats/caffe/convert.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBlob } from '../../src/formats/caffe/blob.js';
import { decodeCaffemodel, parseCaffePrototxt, writeCaffemodel } from '../../src/formats/caffe/index.js';
import { MemorySink } from '../../src/io/source.js';
import { seededFloats } from '../formats/caffe/helpers.js';
import { compareWithOpenCV, type CaseOutcome, type OracleCase } from '../formats/caffe/oracle.js';

interface NetCase {
  name: string;
  text: string;
  /** layer → blob shapes; BatchNorm blobs are made positive. */
  blobs: Record<string, number[][]>;
  /** node op types the conversion must use (checks the intended mapping path was taken). */
  ops?: string[];
}

const L = (name: string, type: string, bottom: string | string[], top: string | string[], param = ''): string =>
  `layer { name: "${name}" type: "${type}" ${[bottom].flat().map((b) => `bottom: "${b}"`).join(' ')} ${[top].flat().map((t) => `top: "${t}"`).join(' ')} ${param} }\n`;

export const CASES: NetCase[] = [
  {
    name: 'conv',
    text: 'name: "conv"\ninput: "data"\ninput_shape { dim: 1 dim: 4 dim: 11 dim: 13 }\n' +
      L('c1', 'Convolution', 'data', 'c1', 'convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 group: 2 }') +
      L('c2', 'Convolution', 'data', 'c2', 'convolution_param { num_output: 3 kernel_size: 3 dilation: 2 pad: 2 bias_term: false }') +
      L('d1', 'Deconvolution', 'c2', 'd1', 'convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 }'),
    blobs: { c1: [[6, 2, 3, 2], [6]], c2: [[3, 4, 3, 3]], d1: [[3, 4, 3, 3], [4]] },
    ops: ['Conv', 'ConvTranspose'],
  },
  {
    name: 'pool',
    text: 'name: "pool"\ninput: "data"\ninput_dim: 1\ninput_dim: 2\ninput_dim: 10\ninput_dim: 9\n' +
      L('p1', 'Pooling', 'data', 'p1', 'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }') +
      L('p2', 'Pooling', 'data', 'p2', 'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }') +
      L('p3', 'Pooling', 'data', 'p3', 'pooling_param { pool: AVE kernel_size: 3 stride: 2 }') +
      L('p4', 'Pooling', 'data', 'p4', 'pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 }') +
      L('p5', 'Pooling', 'data', 'p5', 'pooling_param { pool: AVE global_pooling: true }') +
      L('p6', 'Pooling', 'data', 'p6', 'pooling_param { pool: MAX global_pooling: true }') +
      L('p8', 'Pooling', 'data', 'p8', 'pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 2 pad_h: 1 pad_w: 0 }'),
    blobs: {},
    ops: ['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Pad'],
  },
  {
    name: 'norm',
    text: 'name: "norm"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 5 dim: 6 } } }\n' +
      L('c0', 'Convolution', 'data', 'c0', 'convolution_param { num_output: 3 kernel_size: 1 }') +
      L('bn1', 'BatchNorm', 'c0', 'c0', 'batch_norm_param { use_global_stats: true }') +
      L('sc1', 'Scale', 'c0', 'c0', 'scale_param { bias_term: true }') +
      L('r1', 'ReLU', 'c0', 'c0', 'relu_param { negative_slope: 0.1 }') +
      L('bn2', 'BatchNorm', 'data', 'bn2', 'batch_norm_param { eps: 0.001 }') +
      L('sc2', 'Scale', 'data', 'sc2', '') +
      L('lrn1', 'LRN', 'data', 'lrn1', 'lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 1 }') +
      L('lrn2', 'LRN', 'data', 'lrn2', 'lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }'),
    blobs: { c0: [[3, 3, 1, 1], [3]], bn1: [[3], [3], [1]], sc1: [[3], [3]], bn2: [[3], [3], [1]], sc2: [[3]] },
    ops: ['BatchNormalization', 'LeakyRelu', 'Mul', 'Add', 'LRN', 'AveragePool', 'Pow'],
  },
  {
    name: 'elementwise',
    text: 'name: "elementwise"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 3 dim: 5 } } }\n' +
      L('prelu1', 'PReLU', 'data', 'prelu1') +
      L('prelu2', 'PReLU', 'data', 'prelu2', 'prelu_param { channel_shared: true }') +
      L('sig', 'Sigmoid', 'data', 'sig') +
      L('tanh', 'TanH', 'data', 'tanh') +
      L('elu', 'ELU', 'data', 'elu', 'elu_param { alpha: 0.5 }') +
      L('abs', 'AbsVal', 'data', 'abs') +
      L('bnll', 'BNLL', 'data', 'bnll') +
      L('pow', 'Power', 'data', 'pow', 'power_param { power: 2 scale: 0.5 shift: 1.5 }') +
      L('exp', 'Exp', 'data', 'exp', 'exp_param { base: 2 scale: 0.5 }') +
      L('e1', 'Eltwise', ['sig', 'tanh'], 'e1', 'eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }') +
      L('e2', 'Eltwise', ['sig', 'tanh', 'abs'], 'e2', 'eltwise_param { operation: PROD }') +
      L('e3', 'Eltwise', ['elu', 'bnll', 'pow'], 'e3', 'eltwise_param { operation: MAX }') +
      L('e4', 'Eltwise', ['prelu1', 'prelu2'], 'e4', '') +
      L('drop', 'Dropout', 'e4', 'e4', 'dropout_param { dropout_ratio: 0.3 }') +
      L('relu', 'ReLU', 'e4', 'e4'),
    blobs: { prelu1: [[4]], prelu2: [[1]] },
    ops: ['PRelu', 'Sigmoid', 'Tanh', 'Elu', 'Abs', 'Softplus', 'Pow', 'Exp', 'Sum', 'Max', 'Relu'],
  },
  {
    name: 'shape',
    text: 'name: "shape"\nlayer { name: "data" type: "Input" top: "data" top: "small" input_param { shape { dim: 2 dim: 6 dim: 4 dim: 5 } shape { dim: 2 dim: 6 dim: 2 dim: 3 } } }\n' +
      L('cat', 'Concat', ['data', 'data'], 'cat', 'concat_param { axis: 1 }') +
      L('slice', 'Slice', 'data', ['s1', 's2', 's3'], 'slice_param { axis: 1 slice_point: 1 slice_point: 4 }') +
      L('split', 'Split', 's2', ['sa', 'sb']) +
      L('sum', 'Eltwise', ['sa', 'sb'], 'sum') +
      L('flat', 'Flatten', 'data', 'flat', 'flatten_param { axis: 1 end_axis: 2 }') +
      L('resh', 'Reshape', 'data', 'resh', 'reshape_param { shape { dim: 0 dim: -1 dim: 10 } }') +
      L('perm', 'Permute', 'data', 'perm', 'permute_param { order: 0 order: 2 order: 3 order: 1 }') +
      L('sm', 'Softmax', 'data', 'sm', 'softmax_param { axis: 2 }') +
      L('ip', 'InnerProduct', 'data', 'ip', 'inner_product_param { num_output: 7 }') +
      L('ip2', 'InnerProduct', 'data', 'ip2', 'inner_product_param { num_output: 3 axis: 2 }') +
      L('crop', 'Crop', ['data', 's2'], 'crop', 'crop_param { axis: 1 offset: 1 offset: 0 offset: 0 }') +
      L('crop2', 'Crop', ['data', 'small'], 'crop2', 'crop_param { axis: 2 offset: 1 }') +
      L('sink', 'Concat', ['s1', 's3'], 'sink', 'concat_param { axis: 1 }'),
    blobs: { ip: [[7, 120], [7]], ip2: [[3, 20], [3]] },
    ops: ['Concat', 'Split', 'Sum', 'Reshape', 'Transpose', 'Softmax', 'Gemm', 'Flatten', 'Slice'],
  },
];

let dir: string;
let outcomes: CaseOutcome[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'caffe-layers-'));
  const cases: OracleCase[] = [];
  for (const [ci, c] of CASES.entries()) {
    const prototxtPath = join(dir, `${c.name}.prototxt`);
    writeFileSync(prototxtPath, c.text);
    const net = parseCaffePrototxt(c.text, { path: prototxtPath });
    for (const layer of net.layer) {
      const shapes = c.blobs[layer.name];
      if (!shapes) continue;
      layer.blobs = shapes.map((s, i) => {
        const n = s.reduce((a, b) => a * b, 1);
        const positive = layer.type === 'BatchNorm';
        return makeBlob(s, seededFloats(n, 97 * ci + 13 * i + layer.name.length, positive ? 0.5 : -1, positive ? 1.5 : 1));
      });
    }
    const sink = new MemorySink();
    await writeCaffemodel(net, sink);
    const caffemodelPath = join(dir, `${c.name}.caffemodel`);
    writeFileSync(caffemodelPath, sink.bytes());
    cases.push({ name: c.name, prototxtPath, caffemodelPath, deploy: parseCaffePrototxt(c.text), weights: decodeCaffemodel(sink.bytes(), { path: caffemodelPath }) });
  }
  outcomes = await compareWithOpenCV(dir, cases);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Caffe layer registry vs OpenCV dnn (synthetic nets)', () => {
  for (const c of CASES) {
    it(`${c.name}: checker ok, onnxruntime == OpenCV within 1e-4`, () => {
      const o = outcomes.find((x) => x.name === c.name)!;
      expect(o.error).toBeUndefined();
      expect(o.checker).toBe('ok');
      const ops = new Set(o.result.model.graph!.node.map((n) => n.opType));
      for (const op of c.ops ?? []) expect(ops, `op ${op}`).toContain(op);
      expect(o.varies).toBe(true);
      expect(o.worst, JSON.stringify(o.perOutput)).toBeLessThanOrEqual(1e-4);
    });
  }
});
