/**
 * Caffe → ONNX conversion: refusals and their error codes, weight matching, SSA naming of in-place
 * layers, BatchNorm + Scale fusion, the Caffe semantics OpenCV cannot check (Bias, LRN k, MaxPool
 * windows past the input), and the slim-320 weights against the PyTorch original (REAL_TENSORS.json).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { caffeToOnnx, caffePooledSize, supportedLayerTypes } from '../../../src/convert/caffe-onnx/index.js';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { makeBlob } from '../../../src/formats/caffe/blob.js';
import { NetParameterSchema, V1LayerParameterSchema } from '../../../src/formats/caffe/gen/caffe_pb.js';
import { parseCaffePrototxt, type NetParameter } from '../../../src/formats/caffe/index.js';
import { onnxModel } from '../../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../../src/formats/onnx/write.js';
import { CORPUS_ROOT, loadCaffemodel, loadPrototxt, seededFloats } from './helpers.js';

function errorOf(f: () => unknown): ModelsmithError {
  try {
    f();
  } catch (e) {
    if (e instanceof ModelsmithError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

/** A deploy net with its blobs filled in (deploy nets may carry their own weights). */
function withBlobs(text: string, blobs: Record<string, { shape: number[]; data: number[] }[]>): NetParameter {
  const net = parseCaffePrototxt(text);
  for (const l of net.layer) if (blobs[l.name]) l.blobs = blobs[l.name]!.map((b) => makeBlob(b.shape, b.data));
  return net;
}

async function runOrt(net: NetParameter, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const ort = await import('onnxruntime-node');
  const { model } = caffeToOnnx(net, undefined);
  const session = await ort.InferenceSession.create(await encodeOnnx(onnxModel(model)));
  try {
    const f: Record<string, InstanceType<typeof ort.Tensor>> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', v.data, v.dims);
    const out = await session.run(f);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

describe('weights matching', () => {
  it('MTCNN det2: the caffemodel has no conv4 weights → refused naming conv4', () => {
    const e = errorOf(() => caffeToOnnx(loadPrototxt('mtcnn-jfda/det2.prototxt'), loadCaffemodel('mtcnn-jfda/det2.caffemodel'), { path: 'det2.caffemodel' }));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    expect(e.op).toBe('conv4');
    expect(e.message).toContain("no weights for 2 layer(s): 'conv4' (Convolution), 'prelu5' (PReLU)");
    expect(e.path).toBe('det2.caffemodel');
  });

  it('a deploy net without any weights is refused at its first weighted layer', () => {
    const e = errorOf(() => caffeToOnnx(loadPrototxt('bvlc/examples/mnist_lenet.prototxt'), undefined));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    expect(e.op).toBe('conv1');
  });

  it('training-only caffemodel layers are ignored with a diagnostic; matched by name, not order', () => {
    const { diagnostics, report } = caffeToOnnx(loadPrototxt('mtcnn-jfda/det4.prototxt'), loadCaffemodel('mtcnn-jfda/det4.caffemodel'));
    const d = diagnostics.find((x) => x.code === 'caffe.training_layers_ignored')!;
    for (const name of ['target_slice (Slice)', 'landmark_slice (Slice)', 'loss_1 (EuclideanLoss)', 'loss_5 (EuclideanLoss)']) expect(d.message).toContain(name);
    expect(report.unusedWeightLayers).toEqual([]);
    expect(report.initializers).toBe(17 + 1); // 17 blobs + the Reshape shape
  });

  it('a weight blob of the wrong size → E_TENSOR_SIZE naming the layer', () => {
    const deploy = loadPrototxt('lenet-v1-2014/lenet.prototxt');
    deploy.layer.find((l) => l.name === 'ip2')!.innerProductParam!.numOutput = 11;
    const e = errorOf(() => caffeToOnnx(deploy, loadCaffemodel('lenet-v1-2014/lenet_iter_10000')));
    expect(e.code).toBe(ErrorCodes.TENSOR_SIZE);
    expect(e.op).toBe('ip2');
    expect(e.message).toContain('5000 values');
  });

  it('weights with names the deploy net lacks are reported as unused', () => {
    const deploy = loadPrototxt('mtcnn-jfda/det1.prototxt');
    const weights = loadCaffemodel('mtcnn-jfda/det1.caffemodel');
    weights.layer.find((l) => l.name === 'conv1')!.name = 'conv1_renamed';
    deploy.layer.find((l) => l.name === 'conv1')!.blobs = weights.layer.find((l) => l.name === 'conv1_renamed')!.blobs;
    const { report, diagnostics } = caffeToOnnx(deploy, weights);
    expect(report.unusedWeightLayers).toEqual(['conv1_renamed']);
    expect(diagnostics.map((x) => x.code)).toContain('caffe.unused_weights');
  });
});

describe('graph structure', () => {
  it('in-place layers get unique value names; outputs keep the Caffe blob names', () => {
    const { model, report } = caffeToOnnx(loadPrototxt('mtcnn-jfda/det1.prototxt'), loadCaffemodel('mtcnn-jfda/det1.caffemodel'), { opset: 17 });
    expect(model.irVersion).toBe(8n);
    expect(model.opsetImport[0]!.version).toBe(17n);
    const outs = model.graph!.node.flatMap((n) => n.output);
    expect(new Set(outs).size).toBe(outs.length);
    const prelu1 = model.graph!.node.find((n) => n.opType === 'PRelu')!;
    expect(prelu1.input[0]).toBe('conv1');
    expect(prelu1.output[0]).toBe('conv1/prelu1');
    expect(report.outputs.map((o) => [o.name, o.layer, o.shape])).toEqual([['prob', 'prob', [1, 2, 1, 1]], ['bbox_pred', 'bbox_pred', [1, 4, 1, 1]], ['landmark_pred', 'landmark_pred', [1, 10, 1, 1]]]);
    expect(model.graph!.initializer.map((t) => t.name)).toContain('prelu1.weight');
    expect(model.graph!.initializer.find((t) => t.name === 'prelu1.weight')!.dims).toEqual([10n, 1n, 1n]);
  });

  it('an output written in place is renamed back to its blob name', () => {
    const net = withBlobs(`
      input: "x" input_shape { dim: 1 dim: 2 }
      layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 bias_term: false } }
      layer { name: "act" type: "ReLU" bottom: "y" top: "y" }`, { fc: [{ shape: [2, 2], data: [1, 0, 0, 1] }] });
    const { model, report } = caffeToOnnx(net, undefined);
    expect(report.outputs.map((o) => o.name)).toEqual(['y']);
    expect(model.graph!.node.map((n) => `${n.opType}:${n.input[0]}->${n.output[0]}`)).toEqual(['Gemm:x->y/act', 'Relu:y/act->y']);
  });

  it('BatchNorm + in-place Scale fuse into one BatchNormalization (corpus BN prototxt)', () => {
    const text = `input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
      layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
      layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
      layer { name: "bn2" type: "BatchNorm" bottom: "x" top: "b2" }`;
    const bn = [{ shape: [2], data: [2, 4] }, { shape: [2], data: [8, 16] }, { shape: [1], data: [2] }];
    const net = withBlobs(text, { bn, sc: [{ shape: [2], data: [3, 5] }, { shape: [2], data: [0.5, -1] }], bn2: bn });
    const { model, report } = caffeToOnnx(net, undefined);
    expect(report.fusedBatchNormScale).toBe(1);
    expect(model.graph!.node.map((n) => n.opType)).toEqual(['BatchNormalization', 'BatchNormalization']);
    const init = (name: string) => Array.from(new Float32Array(model.graph!.initializer.find((t) => t.name === name)!.rawData.slice().buffer));
    expect(init('bn.mean')).toEqual([1, 2]);
    expect(init('bn.variance')).toEqual([4, 8]);
    expect(init('sc.weight')).toEqual([3, 5]);
    expect(init('sc.bias')).toEqual([0.5, -1]);
    expect(init('bn2.gamma')).toEqual([1, 1]);
  });

  it('a BatchNorm + Scale that is not in place fuses only when nothing else reads the BatchNorm output', () => {
    const bn = [{ shape: [2], data: [0, 0] }, { shape: [2], data: [1, 1] }, { shape: [1], data: [1] }];
    const sc = [{ shape: [2], data: [2, 2] }];
    const head = 'input: "x" input_shape { dim: 1 dim: 2 dim: 2 dim: 2 }\n' +
      'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "b" }\nlayer { name: "sc" type: "Scale" bottom: "b" top: "s" }\n';
    const alone = caffeToOnnx(withBlobs(head, { bn, sc }), undefined);
    expect(alone.report.fusedBatchNormScale).toBe(1);
    expect(alone.report.outputs.map((o) => o.name)).toEqual(['s']);
    const shared = caffeToOnnx(withBlobs(head + 'layer { name: "r" type: "ReLU" bottom: "b" top: "b" }\n', { bn, sc }), undefined);
    expect(shared.report.fusedBatchNormScale).toBe(0);
    expect(shared.model.graph!.node.map((n) => n.opType)).toEqual(['BatchNormalization', 'Mul', 'Relu']);
  });

  it('large nets convert in linear time (20,000 layers)', () => {
    let text = 'input: "x" input_shape { dim: 1 dim: 2 dim: 2 dim: 2 }\n';
    for (let i = 0; i < 10_000; i++) text += `layer { name: "r${i}" type: "ReLU" bottom: "x" top: "x" }\nlayer { name: "d${i}" type: "Dropout" bottom: "x" top: "x" }\n`;
    const t0 = performance.now();
    const { report } = caffeToOnnx(parseCaffePrototxt(text), undefined);
    expect(report.nodes).toBe(10_000);
    expect(report.outputs.map((o) => o.name)).toEqual(['x']);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('phase rules drop TRAIN layers; what is left unsupported is listed with counts', () => {
    const e = errorOf(() => caffeToOnnx(loadPrototxt('bvlc/models/bvlc_alexnet/train_val.prototxt'), undefined));
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toContain('Data ×1');
    expect(e.message).toContain('Accuracy ×1');
    expect(e.message).toContain('SoftmaxWithLoss ×1');
    const fork = errorOf(() => caffeToOnnx(parseCaffePrototxt('layer { name: "a" type: "PriorBox" } layer { name: "b" type: "PriorBox" } layer { name: "c" type: "Interp" } layer { name: "d" type: "Upsample" }'), undefined));
    expect(fork.message).toContain('PriorBox ×2, Interp ×1, Upsample ×1');
    expect(supportedLayerTypes()).toEqual(expect.arrayContaining(['Convolution', 'Deconvolution', 'InnerProduct', 'Pooling', 'BatchNorm', 'Scale', 'Bias', 'Eltwise', 'Concat', 'Slice', 'Split', 'Flatten', 'Reshape', 'Permute', 'Softmax', 'Dropout', 'LRN', 'Power', 'Crop', 'Input', 'PReLU', 'ELU']));
  });
});

describe('Caffe semantics checked by hand', () => {
  it('Bias adds a per-channel blob; a second bottom works as the bias', async () => {
    const net = withBlobs(`input: "x" input_shape { dim: 1 dim: 2 dim: 1 dim: 2 }
      input: "b" input_shape { dim: 2 }
      layer { name: "bias" type: "Bias" bottom: "x" top: "y" }
      layer { name: "bias2" type: "Bias" bottom: "x" bottom: "b" top: "z" }`, { bias: [{ shape: [2], data: [10, 20] }] });
    const out = await runOrt(net, { x: { data: Float32Array.from([1, 2, 3, 4]), dims: [1, 2, 1, 2] }, b: { data: Float32Array.from([-1, 1]), dims: [2] } });
    expect(Array.from(out['y']!)).toEqual([11, 12, 23, 24]);
    expect(Array.from(out['z']!)).toEqual([0, 1, 4, 5]);
  });

  it('InnerProduct transpose: true reads the weight as [K, N] (y = x·W, as Caffe; OpenCV 4.6 does not)', async () => {
    const net = withBlobs(`input: "x" input_shape { dim: 2 dim: 3 }
      layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 4 transpose: true bias_term: false } }`,
    { ip: [{ shape: [3, 4], data: Array.from({ length: 12 }, (_, i) => i) }] });
    const out = await runOrt(net, { x: { data: Float32Array.from([0, 1, 2, 3, 4, 5]), dims: [2, 3] } });
    expect(Array.from(out['y']!)).toEqual([20, 23, 26, 29, 56, 68, 80, 92]);
  });

  it('Scale with a second bottom multiplies by it along axis 1', async () => {
    const net = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 2 dim: 1 dim: 2 }
      input: "s" input_shape { dim: 1 dim: 2 }
      layer { name: "sc" type: "Scale" bottom: "x" bottom: "s" top: "y" scale_param { axis: 0 num_axes: 2 } }`);
    const out = await runOrt(net, { x: { data: Float32Array.from([1, 2, 3, 4]), dims: [1, 2, 1, 2] }, s: { data: Float32Array.from([10, -1]), dims: [1, 2] } });
    expect(Array.from(out['y']!)).toEqual([10, 20, -3, -4]);
  });

  it('MemoryData and DummyData declare graph inputs', () => {
    const { report } = caffeToOnnx(parseCaffePrototxt(`
      layer { name: "m" type: "MemoryData" top: "a" top: "label" memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }
      layer { name: "d" type: "DummyData" top: "b" dummy_data_param { num: 1 channels: 3 height: 4 width: 5 } }
      layer { name: "r" type: "Eltwise" bottom: "b" bottom: "b" top: "c" }
      layer { name: "r2" type: "ReLU" bottom: "a" top: "e" }`), undefined);
    expect(report.inputs).toEqual([{ name: 'a', shape: [2, 3, 4, 5] }, { name: 'b', shape: [1, 3, 4, 5] }]);
    expect(report.outputs.map((o) => o.name)).toEqual(['c', 'e']);
  });

  it('LRN across channels uses k (OpenCV 4.6 does not)', async () => {
    const net = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 3 dim: 1 dim: 2 }
      layer { name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }`);
    const x = seededFloats(6, 5);
    const out = (await runOrt(net, { x: { data: x, dims: [1, 3, 1, 2] } }))['y']!;
    for (let c = 0; c < 3; c++) {
      for (let s = 0; s < 2; s++) {
        let sum = 0;
        for (let j = Math.max(0, c - 1); j <= Math.min(2, c + 1); j++) sum += x[j * 2 + s]! ** 2;
        expect(out[c * 2 + s]).toBeCloseTo(x[c * 2 + s]! / (2 + (0.5 / 3) * sum) ** 0.75, 5);
      }
    }
  });

  it('LRN with alpha 0 is the constant k^-β (runtimes refuse alpha/beta 0); negative beta is refused', async () => {
    const net = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 3 dim: 1 dim: 1 }
      layer { name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { alpha: 0 beta: 0.5 k: 4 } }`);
    const out = (await runOrt(net, { x: { data: Float32Array.from([1, -2, 3]), dims: [1, 3, 1, 1] } }))['y']!;
    expect(Array.from(out)).toEqual([0.5, -1, 1.5]);
    const bad = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 3 dim: 1 dim: 1 }
      layer { name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { beta: -1 } }`);
    expect(errorOf(() => caffeToOnnx(bad, undefined)).code).toBe(ErrorCodes.OUT_OF_RANGE);
  });

  it('Caffe pooled sizes: ceil, the pad correction, floor mode', () => {
    expect(caffePooledSize(10, 3, 2, 1, true)).toBe(6);
    expect(caffePooledSize(10, 3, 2, 0, true)).toBe(5);
    expect(caffePooledSize(10, 2, 3, 1, true)).toBe(4); // ceil gives 5, the last window would start in the pad
    expect(caffePooledSize(10, 3, 2, 0, false)).toBe(4);
    expect(caffePooledSize(22, 3, 2, 0, true)).toBe(11);
  });

  it('a MaxPool window that starts past the input yields -FLT_MAX, as in Caffe', async () => {
    const net = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 1 dim: 1 dim: 4 }
      layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_h: 1 kernel_w: 1 stride_h: 1 stride_w: 3 } }`);
    const out = (await runOrt(net, { x: { data: Float32Array.from([1, 2, 3, 4]), dims: [1, 1, 1, 4] } }))['y']!;
    // Caffe: out = ceil((4 - 1) / 3) + 1 = 2 → windows at 0 and 3.
    expect(Array.from(out)).toEqual([1, 4]);
    const net2 = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 1 dim: 1 dim: 5 }
      layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 1 stride: 2 } }`);
    const out2 = (await runOrt(net2, { x: { data: Float32Array.from([1, 2, 3, 4, 5]), dims: [1, 1, 1, 5] } }))['y']!;
    expect(Array.from(out2)).toEqual([1, 3, 5]);
    expect(caffePooledSize(10, 1, 2, 0, true)).toBe(6);
    const net3 = parseCaffePrototxt(`input: "x" input_shape { dim: 1 dim: 1 dim: 1 dim: 10 }
      layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_h: 1 kernel_w: 1 stride_h: 1 stride_w: 2 } }`);
    const out3 = (await runOrt(net3, { x: { data: Float32Array.from({ length: 10 }, (_, i) => i), dims: [1, 1, 1, 10] } }))['y']!;
    expect(Array.from(out3.slice(0, 5))).toEqual([0, 2, 4, 6, 8]);
    expect(out3[5]).toBeCloseTo(-3.4028234663852886e38, -30);
  });
});

describe('refusals and their codes', () => {
  const tiny = 'input: "x" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }\n';
  const cases: [string, string, string, string?][] = [
    ['opset 12', tiny + 'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }', ErrorCodes.UNSUPPORTED],
    ['no input', 'layer { name: "r" type: "ReLU" bottom: "x" top: "x" }', ErrorCodes.MALFORMED, 'r'],
    ['bottom never produced', tiny + 'layer { name: "r" type: "ReLU" bottom: "nope" top: "y" }', ErrorCodes.MALFORMED, 'r'],
    ['concat axis out of range', tiny + 'layer { name: "c" type: "Concat" bottom: "x" bottom: "x" top: "y" concat_param { axis: 5 } }', ErrorCodes.OUT_OF_RANGE, 'c'],
    ['empty pooling output', tiny + 'layer { name: "c" type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 9 } }', ErrorCodes.OUT_OF_RANGE, 'c'],
    ['group not dividing channels', tiny + 'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 3 kernel_size: 1 group: 2 } blobs { shape { dim: 3 dim: 1 dim: 1 dim: 1 } data: [1, 2, 3] } blobs { shape { dim: 3 } data: [0, 0, 0] } }', ErrorCodes.OUT_OF_RANGE, 'c'],
    ['stride 0', tiny + 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 2 stride: 0 } }', ErrorCodes.OUT_OF_RANGE, 'p'],
    ['3-D conv kernel', tiny + 'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 1 kernel_size: 1 kernel_size: 1 kernel_size: 1 } blobs { data: 1 } }', ErrorCodes.UNSUPPORTED, 'c'],
    ['stochastic pooling', tiny + 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: STOCHASTIC kernel_size: 2 } }', ErrorCodes.UNSUPPORTED, 'p'],
    ['reshape count mismatch', tiny + 'layer { name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: 3 dim: -1 } } }', ErrorCodes.OUT_OF_RANGE, 'r'],
    ['input without shape', 'input: "x"\nlayer { name: "r" type: "ReLU" bottom: "x" top: "y" }', ErrorCodes.MALFORMED, 'x'],
    ['every blob consumed', tiny + 'layer { name: "s" type: "Silence" bottom: "x" }', ErrorCodes.MALFORMED],
  ];
  for (const [what, text, code, op] of cases) {
    it(`${what} → ${code}`, () => {
      const e = errorOf(() => caffeToOnnx(parseCaffePrototxt(text), undefined, { opset: what === 'opset 12' ? 12 : 13 }));
      expect(e.code).toBe(code);
      if (op) expect(e.op).toBe(op);
    });
  }

  it('nets that were not upgraded (V1 `layers`) → E_UNSUPPORTED', () => {
    const net = create(NetParameterSchema, { layers: [create(V1LayerParameterSchema, { name: 'a' })] });
    expect(errorOf(() => caffeToOnnx(net, undefined)).code).toBe(ErrorCodes.UNSUPPORTED);
  });
});

describe('slim-320 against the PyTorch original (REAL_TENSORS.json)', () => {
  it('the 34 byte-identical .pth tensors reappear unchanged among the ONNX initializers', () => {
    const real = JSON.parse(readFileSync(join(CORPUS_ROOT, 'REAL_TENSORS.json'), 'utf8'));
    const pth = real['pytorch/real/ultra-light-face/version-slim-320.pth'].tensors as Record<string, { sha256: string; shape: number[] }>;
    const { model } = caffeToOnnx(loadPrototxt('ultra-light-face/slim-320.prototxt'), loadCaffemodel('ultra-light-face/slim-320.caffemodel'));
    const onnxHashes = new Map<string, { name: string; dims: number[] }>();
    for (const t of model.graph!.initializer) {
      if (t.dataType !== 1) continue;
      onnxHashes.set(createHash('sha256').update(t.rawData).digest('hex'), { name: t.name, dims: t.dims.map(Number) });
    }
    const matched = Object.entries(pth).filter(([, t]) => onnxHashes.has(t.sha256));
    expect(matched.length).toBe(34);
    for (const [, t] of matched) {
      const o = onnxHashes.get(t.sha256)!;
      expect(o.dims.reduce((a, b) => a * b, 1)).toBe(t.shape.reduce((a, b) => a * b, 1));
    }
    // The unfolded tensors are the depthwise/pointwise conv weights without BatchNorm and the head biases.
    expect(matched.some(([name]) => name.startsWith('regression_headers'))).toBe(true);
    expect(model.graph!.initializer.filter((t) => t.dataType === 1).length).toBe(84);
  });
});
