/**
 * Real Caffe topologies from the corpus that come without a caffemodel (AlexNet, GoogLeNet, CaffeNet in
 * V0 syntax, CIFAR-10 full and quick (V1), LeNet, siamese, net surgery),
 * given seeded He-scaled random weights: the converted ONNX model passes onnx.checker and
 * onnxruntime matches OpenCV dnn on the same prototxt + caffemodel (2 inputs each, batch forced to 1),
 * within 1e-4 of the largest output value. This covers group convolution, LRN (across and within
 * channel), ceil pooling in inception blocks, Concat fan-in and in-place chains at network scale.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffePooledSize } from '../../src/convert/caffe-onnx/index.js';
import { makeBlob } from '../../src/formats/caffe/blob.js';
import { decodeCaffemodel, parseCaffePrototxt, writeCaffemodel, type NetParameter } from '../../src/formats/caffe/index.js';
import { MemorySink } from '../../src/io/source.js';
import { CORPUS_CAFFE, seededFloats } from '../formats/caffe/helpers.js';
import { compareWithOpenCV, type CaseOutcome } from '../formats/caffe/oracle.js';

const NETS = [
  'bvlc/models/bvlc_alexnet/deploy.prototxt',
  'bvlc/models/bvlc_googlenet/deploy.prototxt',
  'bvlc/examples/cifar10_cifar10_full.prototxt',
  'bvlc/examples/mnist_lenet.prototxt',
  'bvlc/examples/siamese_mnist_siamese.prototxt',
  'bvlc/examples/net_surgery_conv.prototxt',
  'bvlc-legacy/v0-2014-03/imagenet_imagenet_deploy.prototxt',
  'bvlc-legacy/v1-2015-02/cifar10_cifar10_quick.prototxt',
];

/**
 * The blob shapes each layer needs, by propagating N·C·H·W through the layer types these nets use
 * (written independently of the converter so that a shape bug there cannot hide here).
 */
function blobShapes(net: NetParameter): Map<string, number[][]> {
  const shapes = new Map<string, number[]>();
  const out = new Map<string, number[][]>();
  for (const l of net.layer) {
    const x = shapes.get(l.bottom[0] ?? '') ?? [];
    switch (l.type) {
      case 'Input':
        l.top.forEach((t, i) => shapes.set(t, (l.inputParam!.shape[i] ?? l.inputParam!.shape[0]!).dim.map(Number)));
        break;
      case 'Convolution': {
        const p = l.convolutionParam!;
        const k = p.kernelSize[0] ?? p.kernelH;
        const s = p.stride[0] ?? 1;
        const pad = p.pad[0] ?? 0;
        out.set(l.name, [[p.numOutput, x[1]! / p.group, k, k], ...(p.biasTerm ? [[p.numOutput]] : [])]);
        const o = (d: number) => Math.floor((d + 2 * pad - k) / s) + 1;
        shapes.set(l.top[0]!, [x[0]!, p.numOutput, o(x[2]!), o(x[3]!)]);
        break;
      }
      case 'Pooling': {
        const p = l.poolingParam!;
        const o = (d: number) => caffePooledSize(d, p.kernelSize, p.stride, p.pad, true);
        shapes.set(l.top[0]!, [x[0]!, x[1]!, o(x[2]!), o(x[3]!)]);
        break;
      }
      case 'InnerProduct': {
        const p = l.innerProductParam!;
        const k = x.slice(1).reduce((a, b) => a * b, 1);
        out.set(l.name, [[p.numOutput, k], ...(p.biasTerm ? [[p.numOutput]] : [])]);
        shapes.set(l.top[0]!, [x[0]!, p.numOutput]);
        break;
      }
      case 'Concat': {
        const xs = l.bottom.map((b) => shapes.get(b)!);
        shapes.set(l.top[0]!, [x[0]!, xs.reduce((a, s) => a + s[1]!, 0), x[2]!, x[3]!]);
        break;
      }
      default: // ReLU, LRN, Dropout, Softmax: same shape
        for (const t of l.top) shapes.set(t, x);
    }
  }
  return out;
}

/**
 * Batch 1 (the first dimension written in the file is the batch), and the 4096-wide fully connected
 * layers of the ImageNet nets narrowed to 64: 60 M random parameters would only cost time.
 */
const shrink = (text: string): string => text.replace(/((?:input_)?dim\s*:\s*)\d+/, '$11').replace(/num_output: 4096/g, 'num_output: 64');

let dir: string;
let outcomes: CaseOutcome[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'caffe-topo-'));
  const cases = [];
  for (const [n, rel] of NETS.entries()) {
    const text = shrink(readFileSync(join(CORPUS_CAFFE, rel), 'utf8'));
    const name = `${n}_${basename(rel, '.prototxt')}`;
    const prototxtPath = join(dir, `${name}.prototxt`);
    writeFileSync(prototxtPath, text);
    const net = parseCaffePrototxt(text);
    for (const [layer, shapes] of blobShapes(net)) {
      const l = net.layer.find((x) => x.name === layer)!;
      l.blobs = shapes.map((s, i) => {
        const count = s.reduce((a, b) => a * b, 1);
        const scale = i === 0 ? Math.sqrt(6 / (count / s[0]!)) : 0.1; // He-uniform weights, small biases
        return makeBlob(s, seededFloats(count, 1009 * n + 17 * i + layer.length, -scale, scale));
      });
    }
    const sink = new MemorySink();
    await writeCaffemodel(net, sink);
    const caffemodelPath = join(dir, `${name}.caffemodel`);
    writeFileSync(caffemodelPath, sink.bytes());
    cases.push({ name, prototxtPath, caffemodelPath, deploy: parseCaffePrototxt(text, { path: rel }), weights: decodeCaffemodel(sink.bytes(), { path: caffemodelPath }) });
  }
  outcomes = await compareWithOpenCV(dir, cases, 2);
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('corpus topologies with random weights vs OpenCV dnn', () => {
  for (const [n, rel] of NETS.entries()) {
    it(rel, () => {
      const o = outcomes.find((x) => x.name === `${n}_${basename(rel, '.prototxt')}`)!;
      expect(o.error).toBeUndefined();
      expect(o.checker).toBe('ok');
      expect(o.varies).toBe(true);
      expect(o.largest).toBeGreaterThan(0);
      expect(o.worst / o.largest, JSON.stringify(o.perOutput)).toBeLessThanOrEqual(1e-4);
    });
  }
});
