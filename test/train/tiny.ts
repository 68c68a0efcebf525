/** Tiny in-memory models and a synthetic classification problem for training tests. */
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema, type ModelProto, type NodeProto } from 'onnx-buf';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import { seededRandom } from '../../src/train/shuffle.js';
import type { ArrayDataset } from '../../src/train/data.js';

function node(opType: string, input: string[], output: string[]): NodeProto {
  return create(NodeProtoSchema, { opType, name: `${opType}_${output[0]}`, input, output });
}

function uniform(n: number, bound: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * bound);
}

/** x[N,D] → MatMul W1 → Add b1 → Relu → MatMul W2 → Add b2 → logits[N,C], torch-like init. */
export function mlp(d: number, h: number, c: number, seed = 1): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, {
      name: 'mlp',
      node: [
        node('MatMul', ['x', 'W1'], ['h0']),
        node('Add', ['h0', 'b1'], ['h1']),
        node('Relu', ['h1'], ['h2']),
        node('MatMul', ['h2', 'W2'], ['o0']),
        node('Add', ['o0', 'b2'], ['logits']),
      ],
      input: [tensorValueInfo('x', ['N', d])],
      output: [tensorValueInfo('logits', ['N', c])],
      initializer: [
        float32TensorProto('W1', [d, h], uniform(d * h, 1 / Math.sqrt(d), seed)),
        float32TensorProto('b1', [h], uniform(h, 1 / Math.sqrt(d), seed + 1)),
        float32TensorProto('W2', [h, c], uniform(h * c, 1 / Math.sqrt(h), seed + 2)),
        float32TensorProto('b2', [c], uniform(c, 1 / Math.sqrt(h), seed + 3)),
      ],
    }),
  });
}

/**
 * Gaussian blobs: `c` classes with random centres in `d` dimensions (feature 0 is always zero, so its
 * weights never get a gradient), `n` samples, seeded.
 */
export function blobs(n: number, d: number, c: number, seed: number, noise = 0.8): ArrayDataset {
  const r = seededRandom(seed);
  const centres = Array.from({ length: c }, () => Array.from({ length: d }, () => (r() * 2 - 1) * 2));
  const x = new Float32Array(n * d);
  const labels = new Int32Array(n);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  for (let i = 0; i < n; i++) {
    const y = Math.floor(r() * c);
    labels[i] = y;
    for (let j = 1; j < d; j++) x[i * d + j] = centres[y]![j]! + noise * gauss();
  }
  return { x, sampleDims: [d], labels, inputName: 'x' };
}
