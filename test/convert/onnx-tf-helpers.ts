/**
 * Shared by the onnx-tf tests: hand-built ONNX models, onnxruntime-node as the ONNX oracle and
 * TF.js (runGraphDef) as the TF executor, compared element by element.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema, AttributeProto_AttributeType, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema,
  type AttributeProto, type NodeProto, type TensorProto,
} from 'onnx-buf';
import { expect } from 'vitest';
import type { DType } from '../../src/core/dtype.js';
import { dtypeInfo } from '../../src/core/dtype.js';
import { typedView, type Tensor } from '../../src/core/tensor.js';
import { decodeOnnx, type OnnxModel } from '../../src/formats/onnx/read.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { tensorToProto } from '../../src/formats/onnx/tensor.js';
import { runGraphDef } from '../../src/formats/savedmodel/tfjs.js';
import { transposeTensor } from '../../src/convert/onnx-tf/values.js';
import { onnxToTf, type OnnxToTfOptions, type OnnxToTfResult } from '../../src/convert/onnx-tf/index.js';

type AttrVal = number | number[] | string | TensorProto | { f: number } | { floats: number[] };

export function attr(name: string, v: AttrVal): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(v) });
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: v.map((x) => BigInt(x)) });
  if ('f' in v && typeof v.f === 'number') return create(AttributeProtoSchema, { name, type: T.FLOAT, f: v.f });
  if ('floats' in v) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: v.floats });
  return create(AttributeProtoSchema, { name, type: T.TENSOR, t: v as TensorProto });
}

export function onnxNode(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrVal> = {}): NodeProto {
  return create(NodeProtoSchema, { opType: op, name: `${op}_${outputs[0]}`, input: inputs, output: outputs, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
}

export interface IoSpec { name: string; dims: (number | string)[]; dtype?: DType }

export function buildModel(nodes: NodeProto[], inputs: IoSpec[], outputs: IoSpec[], inits: Tensor[] = [], opset = 17): { model: OnnxModel; bytes: Uint8Array } {
  const proto = create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: create(GraphProtoSchema, {
      name: 'g',
      node: nodes,
      input: inputs.map((i) => tensorValueInfo(i.name, i.dims, dtypeInfo(i.dtype ?? 'float32').onnx)),
      output: outputs.map((o) => tensorValueInfo(o.name, o.dims, dtypeInfo(o.dtype ?? 'float32').onnx)),
      initializer: inits.map(tensorToProto),
    }),
  });
  const bytes = toBinary(ModelProtoSchema, proto);
  return { model: decodeOnnx(bytes, { path: 'test.onnx' }), bytes };
}

/** Deterministic pseudo-random tensor. */
export function rand(name: string, shape: number[], seed = 1, dtype: DType = 'float32', lo = -1, hi = 1): Tensor {
  let s = seed >>> 0 || 1;
  const next = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const n = shape.reduce((p, q) => p * q, 1);
  const vals = Array.from({ length: n }, () => lo + (hi - lo) * next());
  return tensorOf(name, dtype, shape, vals);
}

export function tensorOf(name: string, dtype: DType, shape: number[], vals: number[]): Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  const bytes = dtypeInfo(dtype).bits / 8;
  const data = new Uint8Array(n * bytes);
  const dv = new DataView(data.buffer);
  vals.forEach((v, i) => {
    switch (dtype) {
      case 'float32': dv.setFloat32(i * 4, v, true); break;
      case 'int64': dv.setBigInt64(i * 8, BigInt(Math.round(v)), true); break;
      case 'int32': dv.setInt32(i * 4, Math.round(v), true); break;
      case 'uint8': dv.setUint8(i, Math.round(v)); break;
      case 'int8': dv.setInt8(i, Math.round(v)); break;
      case 'bool': dv.setUint8(i, v ? 1 : 0); break;
      default: throw new Error(dtype);
    }
  });
  return { name, dtype, shape, data };
}

const ORT_TYPE: Partial<Record<DType, string>> = { float32: 'float32', int64: 'int64', int32: 'int32', uint8: 'uint8', int8: 'int8', bool: 'bool', float64: 'float64' };

/**
 * `optimization: 'disabled'` runs the graph as written: onnxruntime's optimizer rewrites some
 * quantized patterns with different numerics (a DequantizeLinear weight feeding MatMul becomes a
 * dynamically quantized MatMul), which is not what the ONNX graph says.
 */
export async function runOrt(bytes: Uint8Array, feeds: Tensor[], opts: { optimization?: 'disabled' | 'all' } = {}): Promise<Map<string, Tensor>> {
  const ort = (await import('onnxruntime-node')) as unknown as {
    Tensor: new (type: string, data: unknown, dims: readonly number[]) => unknown;
    InferenceSession: { create(b: Uint8Array, o?: Record<string, unknown>): Promise<{ outputNames: readonly string[]; run(f: Record<string, unknown>): Promise<Record<string, { type: string; dims: readonly number[]; data: ArrayBufferView }>>; release(): Promise<void> }> };
  };
  const sess = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, ...(opts.optimization ? { graphOptimizationLevel: opts.optimization } : {}) });
  const f: Record<string, unknown> = {};
  for (const t of feeds) {
    const v = typedView(t);
    f[t.name] = new ort.Tensor(ORT_TYPE[t.dtype]!, t.dtype === 'bool' ? Uint8Array.from(v as Uint8Array) : v, t.shape);
  }
  const res = await sess.run(f);
  const out = new Map<string, Tensor>();
  for (const name of sess.outputNames) {
    const r = res[name]!;
    const d = r.data;
    const dtype = (Object.entries(ORT_TYPE).find(([, v]) => v === r.type)?.[0] ?? 'float32') as DType;
    out.set(name, { name, dtype, shape: [...r.dims], data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice() });
  }
  await sess.release();
  return out;
}

export async function runTf(res: OnnxToTfResult, feeds: Tensor[]): Promise<Map<string, Tensor>> {
  const f: Record<string, Tensor> = {};
  for (const t of feeds) f[res.signature.inputs[t.name]!.name] = t;
  const names = Object.keys(res.signature.outputs);
  const outs = await runGraphDef(res.graph, f, names.map((n) => res.signature.outputs[n]!.name), { fetchDtypes: names.map((n) => res.signature.outputs[n]!.dtype) });
  return new Map(names.map((n, i) => [n, outs[i]!]));
}

export function nums(t: Tensor): number[] {
  return Array.from(typedView(t) as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Max abs difference; shapes must agree. */
export function maxDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  const x = nums(a);
  const y = nums(b);
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i]!) && Number.isNaN(y[i]!)) continue;
    if (x[i] === y[i]) continue;
    m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

/** Convert with `--constants`, run both, and return the max abs difference per output. */
export async function compare(m: { model: OnnxModel; bytes: Uint8Array }, feeds: Tensor[], opts: OnnxToTfOptions & { ort?: { optimization?: 'disabled' | 'all' } } = {}): Promise<{ diffs: Record<string, number>; res: OnnxToTfResult }> {
  const res = await onnxToTf(m.model, { constants: true, ...opts });
  const nhwc = (t: Tensor): Tensor => (opts.nhwcIo && t.shape.length === 4 ? { ...transposeTensor(t, [0, 2, 3, 1]), name: t.name } : t);
  const want = new Map([...(await runOrt(m.bytes, feeds, opts.ort))].map(([k, v]) => [k, nhwc(v)]));
  const got = await runTf(res, feeds.map(nhwc));
  const diffs: Record<string, number> = {};
  for (const [k, w] of want) {
    const g = got.get(k)!;
    // TF.js computes narrow integers as int32; the signature must still declare the ONNX dtype.
    expect(res.signature.outputs[k]!.dtype).toBe(w.dtype);
    diffs[k] = maxDiff(g, w);
  }
  return { diffs, res };
}
