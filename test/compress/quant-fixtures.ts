/**
 * Shared fixtures for the quantization pass tests: a small in-memory MatMul model, corpus input shapes,
 * onnxruntime runs and a cosine helper.
 */
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type NodeProto,
} from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { onnxModel, type OnnxModel } from '../../src/formats/onnx/read.js';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import { CORPUS_ONNX, listFiles, rng } from '../formats/onnx/helpers.js';

export const ORT_OPTS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, logSeverityLevel: 3 };
export const MODELS = listFiles(join(CORPUS_ONNX, 'models'), '.onnx');
export const SHAPES: Record<string, Record<string, number[]>> = {
  'embedding_model.onnx': { input_1: [1, 76, 32, 1] },
  'melspectrogram.onnx': { input: [1, 1280] },
  'ch_ppocr_mobile_v2.0_cls_infer.onnx': { x: [1, 3, 48, 192] },
  'silero_vad_legacy.onnx': { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] },
  'silero_vad_v5.onnx': { input: [1, 512], state: [2, 1, 128] },
};

export function gauss(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  if (aa === 0 && bb === 0) return 1;
  return dot / Math.sqrt(aa * bb);
}

export const f32 = float32TensorProto;
export const vi = (name: string, dims: (number | string)[]) => tensorValueInfo(name, dims);

export const K = 64;
export const N = 48;
export const M = 5;

/** x [M, 64] → MatMul(W [64, 48]) → Add(bias [48]) → y; optionally W held in a Constant node. */
export function smallModel(opts: { constant?: boolean; seed?: number } = {}): { model: OnnxModel; w: Float32Array; bias: Float32Array } {
  const r = rng(opts.seed ?? 11);
  const w = Float32Array.from({ length: K * N }, () => gauss(r) / 8);
  const bias = Float32Array.from({ length: N }, () => gauss(r) / 8);
  const nodes: NodeProto[] = [
    create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['h'], name: 'mm' }),
    create(NodeProtoSchema, { opType: 'Add', input: ['h', 'bias'], output: ['y'], name: 'add' }),
  ];
  const initializer = [f32('bias', [N], bias)];
  if (opts.constant) {
    nodes.unshift(create(NodeProtoSchema, {
      opType: 'Constant', output: ['W'], name: 'wconst',
      attribute: [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: f32('', [K, N], w) })],
    }));
  } else {
    initializer.unshift(f32('W', [K, N], w));
  }
  const graph = create(GraphProtoSchema, { name: 'small', node: nodes, initializer, input: [vi('x', ['batch', K])], output: [vi('y', ['batch', N])] });
  const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph });
  return { model: onnxModel(proto), w, bias };
}

export async function run(file: string, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file, ORT_OPTS);
  try {
    const out = await s.run(feeds);
    const res: Record<string, Float32Array> = {};
    for (const n of s.outputNames) if (out[n]!.type === 'float32') res[n] = out[n]!.data as Float32Array;
    return res;
  } finally {
    await s.release();
  }
}
