/**
 * A real network end to end (ultra-light-face slim-320, pytorch 1.2 export, opset 9), the SavedModel
 * written from it, and the conversion's refusals.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { onnxToTf, writeOnnxAsSavedModel, supportedOps } from '../../src/convert/onnx-tf/index.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { node as tfNode, attr as tfAttr, readSavedModel } from '../../src/formats/savedmodel/index.js';
import { GraphDefSchema } from '../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { runGraphDef } from '../../src/formats/savedmodel/tfjs.js';
import { tensorProtoOf } from '../../src/convert/onnx-tf/tf-attr.js';
import { buildModel, maxDiff, onnxNode as N, rand, runOrt, runTf, tensorOf } from './onnx-tf-helpers.js';
import { memoryFolder } from '../formats/savedmodel/memory-folder.js';

const ULF = resolve(import.meta.dirname, '../../../shared/corpus/onnx/models/ultra-light-face/version-slim-320.onnx');


function expectError(f: () => Promise<unknown>, code: string, ...parts: string[]) {
  return f().then(
    () => { throw new Error('expected a failure'); },
    (e: unknown) => {
      expect(e).toBeInstanceOf(ModelsmithError);
      expect((e as ModelsmithError).code).toBe(code);
      for (const p of parts) expect((e as Error).message).toContain(p);
      return e as ModelsmithError;
    },
  );
}

describe('ultra-light-face slim-320', () => {
  const bytes = new Uint8Array(readFileSync(ULF));
  const model = decodeOnnx(bytes, { path: ULF });

  it('converts (frozen) and matches onnxruntime within 1e-4 on a random input (a second one below, through the SavedModel)', async () => {
    const res = await onnxToTf(model, { constants: true });
    const r = res.report;
    console.log(`ultra-light-face: ${r.nodes} TF nodes, transposes inserted ${r.transposesInserted}, removed ${r.transposesRemoved}, left ${r.transposesLeft}`);
    const count = (op: string) => model.proto.graph!.node.filter((n) => n.opType === op).length;
    expect(r.opsMapped.Conv).toBe(count('Conv'));
    expect(Object.values(r.opsMapped).reduce((p, q) => p + q, 0)).toBe(model.proto.graph!.node.length);
    expect(r.opsMapped.BatchNormalization).toBeGreaterThan(0);
    expect(r.transposesInserted).toBeGreaterThan(100);
    // One NHWC→NCHW transpose per detection head would be the naive result; all but one cancel.
    expect(r.transposesLeft).toBeLessThanOrEqual(2);
    expect(res.variables).toHaveLength(0);
    expect(Object.keys(res.signature.inputs)).toEqual(['input']);
    expect(res.signature.inputs.input).toMatchObject({ dtype: 'float32', shape: [1, 3, 240, 320] });
    expect(res.signature.outputs.scores!.shape).toEqual([1, 4420, 2]);
    expect(res.signature.outputs.boxes!.shape).toEqual([1, 4420, 4]);
    for (const seed of [7]) {
      const x = rand('input', [1, 3, 240, 320], seed);
      const want = await runOrt(bytes, [x]);
      const got = await runTf(res, [x]);
      for (const k of ['scores', 'boxes']) expect(maxDiff(got.get(k)!, want.get(k)!), k).toBeLessThan(1e-4);
    }
  });

  it('writes a SavedModel with variables that reads back with the ONNX signature and computes the same', async () => {
    const m = memoryFolder();
    const { files, report, signature } = await writeOnnxAsSavedModel(model, m.out);
    expect(files.map((f) => f.path)).toContain('saved_model.pb');
    expect(report.variables).toBeGreaterThan(40);
    const sm = await readSavedModel(m.dir, { path: 'ulf' });
    const sig = sm.signatures.find((s) => s.key === 'serving_default')!;
    expect(sig.inputs.map((t) => [t.key, t.name, t.dtype, t.shape])).toEqual([['input', 'input:0', 'float32', [1, 3, 240, 320]]]);
    expect(sig.outputs.map((t) => [t.key, t.dtype, t.shape]).sort()).toEqual([['boxes', 'float32', [1, 4420, 4]], ['scores', 'float32', [1, 4420, 2]]]);
    expect(sm.variables.tensors.length).toBe(report.variables);
    // Freeze by hand: each ReadVariableOp becomes a Const holding the value read back from the bundle.
    const graph = sm.metaGraphs[sm.metaGraphIndex]!.metaGraph.graphDef!;
    const byName = new Map(sm.variables.tensors.map((t) => [t.name, t]));
    const nodes = [];
    for (const n of graph.node) {
      if (n.op !== 'ReadVariableOp') { nodes.push(n); continue; }
      const v = byName.get(n.input[0]!)!;
      expect(v).toBeDefined();
      const t: Tensor = { name: v.name, dtype: v.dtype, shape: v.shape, data: await v.load() };
      nodes.push(tfNode(n.name, 'Const', [], { dtype: tfAttr.type(1), value: tfAttr.tensor(tensorProtoOf(t)) }));
    }
    const frozen = create(GraphDefSchema, { node: nodes.filter((n) => n.op !== 'VarHandleOp'), ...(graph.versions ? { versions: graph.versions } : {}) });
    const x = rand('input', [1, 3, 240, 320], 9);
    const want = await runOrt(bytes, [x]);
    const got = await runGraphDef(frozen, { 'input:0': x }, ['scores:0', 'boxes:0']);
    expect(maxDiff(got[0]!, want.get('scores')!)).toBeLessThan(1e-4);
    expect(maxDiff(got[1]!, want.get('boxes')!)).toBeLessThan(1e-4);
    expect(signature.outputs.scores!.name).toBe('scores:0');
  });

  it('--constants writes a frozen SavedModel (no variables folder) with the same signature', async () => {
    const m = memoryFolder();
    const { files, report } = await writeOnnxAsSavedModel(model, m.out, { constants: true });
    expect(files.map((f) => f.path)).toEqual(['saved_model.pb']);
    expect(report.variables).toBe(0);
    const sm = await readSavedModel(m.dir, { path: 'ulf-frozen' });
    const sig = sm.signatures.find((s) => s.key === 'serving_default')!;
    expect(sig.inputs.map((t) => t.key)).toEqual(['input']);
    expect(sig.outputs.map((t) => t.name).sort()).toEqual(['boxes:0', 'scores:0']);
    expect(sm.variables.tensors).toHaveLength(0);
    const consts = sm.metaGraphs[sm.metaGraphIndex]!.metaGraph.graphDef!.node.filter((n) => n.op === 'Const');
    expect(consts.length).toBeGreaterThan(40);
  });

  it('--nhwc-io puts the image input channels-last in the signature', async () => {
    const res = await onnxToTf(model, { constants: true, nhwcIo: true });
    expect(res.signature.inputs.input!.shape).toEqual([1, 240, 320, 3]);
    expect(res.signature.outputs.scores!.shape).toEqual([1, 4420, 2]);
    // The input transpose cancels against the first conv's.
    expect(res.report.transposesLeft).toBeLessThanOrEqual(2);
  });
});

describe('refusals', () => {
  it('lists every unsupported op with its count (E_UNSUPPORTED)', async () => {
    const m = buildModel([N('StringNormalizer', ['x'], ['a']), N('StringNormalizer', ['a'], ['b']), N('Relu', ['b'], ['c']), N('ImageDecoder', ['c'], ['y'])],
      [{ name: 'x', dims: [2, 2] }], [{ name: 'y', dims: [2, -1] }]);
    m.model.proto.graph!.node.push(create(NodeProtoSchema, { opType: 'Foo', domain: 'com.microsoft', input: ['x'], output: ['z'] }));
    const e = await expectError(() => onnxToTf(m.model), 'E_UNSUPPORTED', 'StringNormalizer ×2', 'ImageDecoder ×1', 'com.microsoft::Foo ×1', 'test.onnx');
    expect(e.message).not.toContain('Relu');
  });

  it('unsupported variants of supported ops name the node (E_UNSUPPORTED)', async () => {
    const m = buildModel([N('Resize', ['x', '', 's'], ['y'], { mode: 'cubic' })], [{ name: 'x', dims: [1, 1, 2, 2] }], [{ name: 'y', dims: [1, 1, 4, 4] }], [tensorOf('s', 'float32', [4], [1, 1, 2, 2])], 13);
    await expectError(() => onnxToTf(m.model), 'E_UNSUPPORTED', "Resize mode 'cubic'", "op 'Resize 'Resize_y''");
  });

  it('refuses dangling inputs and impossible attributes (E_MALFORMED)', async () => {
    const m = buildModel([N('Relu', ['nope'], ['y'])], [{ name: 'x', dims: [2] }], [{ name: 'y', dims: [2] }]);
    await expectError(() => onnxToTf(m.model), 'E_MALFORMED', "'nope'", 'test.onnx');
    const g = buildModel([N('Conv', ['x', 'w'], ['y'], { group: 3 })], [{ name: 'x', dims: [1, 4, 5, 5] }], [{ name: 'y', dims: [1, 6, 3, 3] }], [rand('w', [6, 2, 3, 3], 1)]);
    await expectError(() => onnxToTf(g.model), 'E_MALFORMED', 'group 3');
    const t = buildModel([N('Transpose', ['x'], ['y'], { perm: [0, 0] })], [{ name: 'x', dims: [2, 2] }], [{ name: 'y', dims: [2, 2] }]);
    await expectError(() => onnxToTf(t.model), 'E_MALFORMED', 'perm');
    const none = decodeOnnx(new Uint8Array([8, 7]), { path: 'nograph.onnx' });
    await expectError(() => onnxToTf(none), 'E_MALFORMED', 'no graph');
  });

  it('refuses unknown element types (E_DTYPE) and out-of-range constant indices (E_OUT_OF_RANGE)', async () => {
    const c = buildModel([N('Cast', ['x'], ['y'], { to: 99 })], [{ name: 'x', dims: [2] }], [{ name: 'y', dims: [2] }]);
    await expectError(() => onnxToTf(c.model), 'E_DTYPE', '99');
    const g = buildModel([N('Gather', ['x', 'i'], ['y'])], [{ name: 'x', dims: [3, 2] }], [{ name: 'y', dims: [1, 2] }], [tensorOf('i', 'int64', [1], [3])]);
    await expectError(() => onnxToTf(g.model), 'E_OUT_OF_RANGE', 'Gather');
  });

  it('caps the node count (E_LIMIT)', async () => {
    const m = buildModel([N('Relu', ['x'], ['a']), N('Relu', ['a'], ['y'])], [{ name: 'x', dims: [2] }], [{ name: 'y', dims: [2] }]);
    await expectError(() => onnxToTf(m.model, { maxNodes: 1 }), 'E_LIMIT', '2 nodes');
  });

  it('never lets a malformed node escape as a TypeError', async () => {
    // Conv weight of rank 1, Reshape to a shape of the wrong size, Split into negative sizes.
    const cases = [
      buildModel([N('Conv', ['x', 'w'], ['y'])], [{ name: 'x', dims: [1, 2, 4, 4] }], [{ name: 'y', dims: [1] }], [rand('w', [2], 1)]),
      buildModel([N('Reshape', ['x', 's'], ['y'])], [{ name: 'x', dims: [2, 3] }], [{ name: 'y', dims: [1] }], [tensorOf('s', 'int64', [3], [0, 0, 0])]),
      buildModel([N('Squeeze', ['x'], ['y'], { axes: [5] })], [{ name: 'x', dims: [2, 3] }], [{ name: 'y', dims: [1] }], [], 11),
      buildModel([N('MaxPool', ['x'], ['y'], { kernel_shape: [0, 2] })], [{ name: 'x', dims: [1, 1, 4, 4] }], [{ name: 'y', dims: [1] }]),
    ];
    for (const m of cases) {
      await onnxToTf(m.model).then(() => undefined, (e: unknown) => expect(e).toBeInstanceOf(ModelsmithError));
    }
  });

  it('the registry covers every op family the converter promises', () => {
    const ops = supportedOps();
    for (const op of ['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'HardSigmoid',
      'HardSwish', 'Softplus', 'Gelu', 'Erf', 'Clip', 'BatchNormalization', 'InstanceNormalization', 'LayerNormalization', 'MaxPool', 'AveragePool', 'GlobalAveragePool',
      'GlobalMaxPool', 'Reshape', 'Flatten', 'Transpose', 'Concat', 'Split', 'Slice', 'Gather', 'Squeeze', 'Unsqueeze', 'Shape', 'Constant', 'ConstantOfShape', 'Cast', 'Pad',
      'Resize', 'Upsample', 'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'Softmax', 'LogSoftmax', 'ArgMax', 'Where', 'Equal', 'Less', 'Greater', 'Not', 'And', 'Sqrt',
      'Exp', 'Log', 'Abs', 'Neg', 'Reciprocal', 'Identity', 'Dropout', 'Expand', 'Tile', 'MatMulInteger', 'QuantizeLinear', 'DequantizeLinear']) {
      expect(ops, op).toContain(op);
    }
  });
});
