import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { GraphDefSchema } from '../../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { TensorProtoSchema, type TensorProto } from '../../../src/formats/savedmodel/gen/tensorflow/types_pb.js';
import { graphConstants, node, readGraphDef, readSavedModel, shapeProto, summarizeGraphDef, tensorFromProto } from '../../../src/formats/savedmodel/index.js';
import { CORPUS, dirResolver, fileSource } from './helpers.js';

const tp = (dtype: number, dims: number[] | null, fields: Record<string, unknown> = {}): TensorProto =>
  create(TensorProtoSchema, { dtype, tensorShape: shapeProto(dims), ...fields } as never);

function code(f: () => unknown, c: string): ModelsmithError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelsmithError);
  expect((err as ModelsmithError).code).toBe(c);
  return err as ModelsmithError;
}

const floats = (b: Uint8Array) => Array.from(new Float32Array(b.slice().buffer));

describe('TensorProto decoding', () => {
  it('applies the splat rule (repeat the last value; empty means zeros)', () => {
    expect(floats(tensorFromProto(tp(1, [4], { floatVal: [0.5] })).data)).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(floats(tensorFromProto(tp(1, [2, 2], { floatVal: [1, 2] })).data)).toEqual([1, 2, 2, 2]);
    expect(floats(tensorFromProto(tp(1, [3])).data)).toEqual([0, 0, 0]);
    expect(tensorFromProto(tp(7, [3], { stringVal: [new Uint8Array([97])] })).strings!.map((s) => s[0])).toEqual([97, 97, 97]);
    expect(floats(tensorFromProto(tp(1, [])).data)).toEqual([0]); // absent dims = scalar
  });

  it('decodes each typed field to little-endian bytes', () => {
    const content = new Uint8Array(Float32Array.from([1.5, -2]).buffer);
    expect(tensorFromProto(tp(1, [2], { tensorContent: content })).data).toEqual(content);
    expect(Array.from(tensorFromProto(tp(6, [2], { intVal: [-1, 5] })).data)).toEqual([0xff, 5]); // int8
    expect(Array.from(new BigInt64Array(tensorFromProto(tp(9, [2], { int64Val: [-3n, 2n ** 40n] })).data.slice().buffer))).toEqual([-3n, 2n ** 40n]);
    expect(Array.from(tensorFromProto(tp(10, [3], { boolVal: [true, false] })).data)).toEqual([1, 0, 0]);
    expect(Array.from(new Uint16Array(tensorFromProto(tp(19, [2], { halfVal: [0x3c00, 0xc000] })).data.slice().buffer))).toEqual([0x3c00, 0xc000]);
    expect(tensorFromProto(tp(14, [1], { halfVal: [0x3f80] })).dtype).toBe('bfloat16');
    expect(floats(tensorFromProto(tp(8, [2], { scomplexVal: [1, 2] })).data)).toEqual([1, 2, 1, 2]);
    expect(Array.from(new Float64Array(tensorFromProto(tp(2, [1], { doubleVal: [0.1] })).data.slice().buffer))).toEqual([0.1]);
    expect(Array.from(new Uint32Array(tensorFromProto(tp(22, [1], { uint32Val: [4e9] })).data.slice().buffer))).toEqual([4e9]);
  });

  it('refuses malformed and oversized tensors', () => {
    code(() => tensorFromProto(tp(1, [2], { tensorContent: new Uint8Array(4) })), 'E_TENSOR_SIZE');
    code(() => tensorFromProto(tp(1, [1], { floatVal: [1, 2] })), 'E_TENSOR_SIZE');
    code(() => tensorFromProto(tp(1, [-1])), 'E_MALFORMED');
    code(() => tensorFromProto(tp(1, null)), 'E_MALFORMED');
    code(() => tensorFromProto(tp(8, [1], { scomplexVal: [1] })), 'E_MALFORMED');
    expect(code(() => tensorFromProto(tp(20, [])), 'E_DTYPE').message).toMatch(/DT_RESOURCE/);
    code(() => tensorFromProto(tp(29, [2], { intVal: [1] })), 'E_UNSUPPORTED'); // int4 typed values
    // A few bytes of proto declaring 4 GB: refused before allocating.
    code(() => tensorFromProto(tp(1, [1_000_000_000], { floatVal: [1] })), 'E_LIMIT');
    code(() => tensorFromProto(tp(7, [500_000_000], { stringVal: [new Uint8Array(1)] })), 'E_LIMIT');
    code(() => tensorFromProto(tp(1, [2 ** 40, 2 ** 40])), 'E_OUT_OF_RANGE');
  });

  it('lists the constants of a frozen GraphDef and of a SavedModel graph', async () => {
    const r = await readGraphDef(fileSource(join(CORPUS, 'graphdef-frozen/tf-rust-regression.pb')));
    const ws = graphConstants(r.graph);
    expect(ws.tensors).toHaveLength(16);
    const lr = ws.tensors.find((t) => t.name === 'train/learning_rate')!;
    expect(floats(await lr.load())).toEqual([0.5]);
    expect(summarizeGraphDef(r).graph).toMatchObject({ constCount: 16, constBytes: 64 });
    const f = await readSavedModel(dirResolver(join(CORPUS, 'tf-serving/saved_model_half_plus_two_cpu/00000123')));
    const consts = graphConstants(f.metaGraphs[0]!.metaGraph.graphDef!);
    expect(floats(await consts.tensors.find((t) => t.name === 'b/initial_value')!.load())).toEqual([2]);
    const g = create(GraphDefSchema, { node: [node('k', 'Const', [])] });
    expect(code(() => graphConstants(g), 'E_MALFORMED').op).toBe('k');
  });
});
