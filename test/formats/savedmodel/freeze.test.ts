/**
 * freezeSignature without an executor: the shape of the frozen graph (no calls, no variables, only
 * what the outputs need) on corpus SavedModels, and every refusal on hand-built ones.
 */
import { create } from '@bufbuild/protobuf';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { typedView, type Tensor } from '../../../src/core/tensor.js';
import { attr, node, shapeProto, tensorInfo } from '../../../src/formats/savedmodel/build.js';
import { TensorProtoSchema } from '../../../src/formats/savedmodel/gen/tensorflow/types_pb.js';
import { freezeSignature, runSignature } from '../../../src/formats/savedmodel/freeze.js';
import { MAX_INLINE_DEPTH } from '../../../src/formats/savedmodel/freeze/graph.js';
import { flatOutputIndex } from '../../../src/formats/savedmodel/freeze/output-args.js';
import { variableValues } from '../../../src/formats/savedmodel/freeze/variables.js';
import {
  AttrValueSchema, FunctionDefLibrarySchema, FunctionDefSchema, GraphDefSchema, OpDefSchema, OpDef_ArgDefSchema, type FunctionDef, type NodeDef,
} from '../../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { MetaGraphDefSchema, SavedModelSchema, SignatureDefSchema, TensorInfoSchema, TensorInfo_CooSparseSchema, type TensorInfo } from '../../../src/formats/savedmodel/gen/tensorflow/meta_graph_pb.js';
import { tensorFromProto } from '../../../src/formats/savedmodel/tensor-proto.js';
import { readSavedModel, type SavedModelFile } from '../../../src/formats/savedmodel/index.js';
import { inMemoryTensor, materialize } from '../../../src/formats/weights.js';
import { CORPUS, dirResolver } from './helpers.js';

const F = 1, RES = 20;
const T = (t: number) => ({ T: attr.type(t as never) });
const f32 = (name: string, shape: number[], xs: number[]): Tensor => ({ name, dtype: 'float32', shape, data: new Uint8Array(new Float32Array(xs).buffer) });
const read = (rel: string) => readSavedModel(dirResolver(join(CORPUS, rel)), { path: rel });
const scalarF32 = (v: number) => create(TensorProtoSchema, { dtype: F as never, tensorShape: shapeProto([]), floatVal: [v] });
const ops = (nodes: NodeDef[]) => [...new Set(nodes.map((n) => n.op))].sort();

function fn(name: string, inputs: Array<[string, number]>, outputs: Array<[string, number]>, nodes: NodeDef[], ret: Record<string, string>): FunctionDef {
  const arg = ([n, t]: [string, number]) => create(OpDef_ArgDefSchema, { name: n, type: t as never });
  return create(FunctionDefSchema, { signature: create(OpDefSchema, { name, inputArg: inputs.map(arg), outputArg: outputs.map(arg) }), nodeDef: nodes, ret });
}
const call = (name: string, f: string, inputs: string[], tout: number[] = [F]) => node(name, 'StatefulPartitionedCall', inputs, {
  f: create(AttrValueSchema, { value: { case: 'func', value: { name: f } as never } }), Tout: attr.types(tout as never[]),
});

/** A SavedModelFile over a hand-built graph: signature serving_default, variables by node name. */
function fileOf(nodes: NodeDef[], io: { inputs?: Record<string, TensorInfo>; outputs: Record<string, TensorInfo> }, vars: Tensor[] = [], functions: FunctionDef[] = []): SavedModelFile {
  const metaGraph = create(MetaGraphDefSchema, {
    graphDef: create(GraphDefSchema, { node: nodes, ...(functions.length ? { library: create(FunctionDefLibrarySchema, { function: functions }) } : {}) }),
    signatureDef: { serving_default: create(SignatureDefSchema, { inputs: io.inputs ?? {}, outputs: io.outputs, methodName: 'tensorflow/serving/predict' }) },
  });
  return {
    format: 'savedmodel', path: 'hand-built', savedModel: create(SavedModelSchema, { metaGraphs: [metaGraph] }),
    metaGraphs: [{ tags: ['serve'], tensorflowVersion: '', style: 'tf2', metaGraph }], metaGraphIndex: 0, signatures: [],
    variables: { format: 'tf-bundle', tensors: vars.map((v) => inMemoryTensor(v)), diagnostics: [] }, assets: [], diagnostics: [],
  };
}

/** x → call(f: x * read(v)) → y, the TF2 pattern in its smallest form. */
function tf2Model(body?: (v: string) => NodeDef[]) {
  const f = fn('f', [['x', F], ['v', RES]], [['out', F]], body?.('v') ?? [
    node('r', 'ReadVariableOp', ['v'], { dtype: attr.type(F as never) }),
    node('m', 'Mul', ['x', 'r:value:0'], T(F)),
    node('Identity', 'Identity', ['m:z:0', '^r'], T(F)),
  ], { out: 'Identity:output:0' });
  const nodes = [
    node('x', 'Placeholder', [], { dtype: attr.type(F as never), shape: attr.shape([2]) }),
    node('w', 'VarHandleOp', [], { dtype: attr.type(F as never), shape: attr.shape([2]), shared_name: attr.s('w') }),
    call('call', 'f', ['x', 'w']),
  ];
  return { nodes, f, io: { inputs: { x: tensorInfo('x:0', 'float32', [2]) }, outputs: { y: tensorInfo('call:0', 'float32', [2]) } } };
}

async function failure(p: Promise<unknown>): Promise<ModelsmithError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    return e as ModelsmithError;
  }
  throw new Error('expected a ModelsmithError');
}

describe('freezeSignature on corpus SavedModels', () => {
  it('TF2 half_plus_two: calls inlined, variables as Consts, output renamed to the inlined Identity', async () => {
    const f = await read('tf-serving/saved_model_half_plus_two_tf2_cpu/00000123');
    const fr = await freezeSignature(f);
    expect(ops(fr.graph.node)).toEqual(['AddV2', 'Const', 'Identity', 'Mul', 'PlaceholderWithDefault']);
    expect(fr.graph.library).toBeUndefined();
    expect(fr.inputs).toEqual([{ key: 'x', node: 'serving_default_x', dtype: 'float32', shape: [1] }]);
    expect(fr.outputs).toEqual([{ key: 'y', node: 'StatefulPartitionedCall_5/Identity', dtype: 'float32', shape: [1] }]);
    // The inner Consts carry the checkpoint values a = 0.5, b = 2.
    const consts = fr.graph.node.filter((n) => n.op === 'Const' && n.name.startsWith('StatefulPartitionedCall_5/'));
    const vals = consts.map((n) => {
      const v = n.attr['value']!.value;
      if (v.case !== 'tensor') throw new Error('Const without a tensor');
      return (typedView(tensorFromProto(v.value)) as Float32Array)[0];
    }).sort();
    expect(vals).toEqual([0.5, 2]);
    expect(fr.diagnostics).toEqual([expect.objectContaining({ code: 'TF_FREEZE_SUMMARY', message: expect.stringContaining('2 function calls inlined, 2 variables') })]);
    // No references to nodes that are not in the graph; no control inputs.
    const names = new Set(fr.graph.node.map((n) => n.name));
    for (const n of fr.graph.node) for (const i of n.input) expect(names.has(i.replace(/:\d+$/, '')) && !i.startsWith('^')).toBe(true);
  });

  it('TF1 half_plus_two: VariableV2 become Consts, the fed Identity becomes a Placeholder, the saver is gone', async () => {
    const f = await read('tf-serving/saved_model_half_plus_two_cpu/00000123');
    const fr = await freezeSignature(f);
    const byName = new Map(fr.graph.node.map((n) => [n.name, n]));
    expect(byName.get('x')!.op).toBe('Placeholder');
    expect(byName.get('a')!.op).toBe('Const');
    expect(byName.get('b')!.op).toBe('Const');
    expect(ops(fr.graph.node)).toEqual(['Add', 'Const', 'Identity', 'Mul', 'Placeholder']);
    expect(fr.graph.node.length).toBe(8);
  });

  it('maps TF2 variables to graph nodes through the restore function, not by their clashing names', async () => {
    const f = await read('tfjs-node/int64_multiply');
    const m = variableValues(f);
    expect(f.variables.tensors.map((t) => t.extra?.['variableName'])).toEqual(['Variable', 'Variable']);
    expect(m.get('Variable')!.extra!['checkpointKey']).toBe('v1/.ATTRIBUTES/VARIABLE_VALUE');
    expect(m.get('Variable_1')!.extra!['checkpointKey']).toBe('v2/.ATTRIBUTES/VARIABLE_VALUE');
    const kf = await read('tensorflow-rust/keras_single_input_saved_model');
    const keras = variableValues(kf);
    expect(keras.get('dense/kernel')!.extra!['checkpointKey']).toBe('layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE');
    expect(keras.get('count_1')!.extra!['checkpointKey']).toBe('keras_api/metrics/1/count/.ATTRIBUTES/VARIABLE_VALUE');
    // Every variable node of the graph has its value, each a different checkpoint tensor.
    const handles = kf.metaGraphs[0]!.metaGraph.graphDef!.node.filter((n) => n.op === 'VarHandleOp').map((n) => n.name);
    expect(handles.length).toBe(27);
    expect(new Set(handles.map((h) => keras.get(h)?.extra?.['checkpointKey'])).size).toBe(27);
  });

  it('a training signature freezes to its loss and warns that the variable updates are dropped', async () => {
    const f = await read('tensorflow-rust/regression_savedmodel');
    const fr = await freezeSignature(f, 'train');
    expect(fr.graph.node.some((n) => /Apply|Assign/.test(n.op))).toBe(false);
    expect(fr.diagnostics).toContainEqual(expect.objectContaining({ code: 'TF_FREEZE_STATE_DROPPED', level: 'warning', message: expect.stringContaining('ResourceApplyGradientDescent ×2') }));
  });

  it('refuses signatures whose outputs are variable writes (saved_model_counter)', async () => {
    const f = await read('tf-serving/saved_model_counter/00000123');
    const get = await freezeSignature(f, 'get_counter');
    expect(get.graph.node.map((n) => n.op)).toEqual(['Const']);
    for (const s of ['incr_counter', 'incr_counter_by', 'reset_counter']) {
      const e = await failure(freezeSignature(f, s));
      expect(e.code).toBe('E_UNSUPPORTED');
      expect(e.message).toMatch(/writes variable 'counter'/);
    }
  });

  it('refuses an unknown signature with E_USAGE listing the ones there are', async () => {
    const f = await read('tensorflow-rust/regression_savedmodel');
    const e = await failure(freezeSignature(f));
    expect(e.code).toBe('E_USAGE');
    expect(e.message).toContain("'b', 'train', 'w'");
  });
});

describe('freezeSignature on hand-built graphs', () => {
  it('inlines nested calls, maps multi-output args, keeps call results addressable', async () => {
    // g returns (unique(a) * 2, unique indices): Unique's second output arg exercises outarg mapping.
    const g = fn('g', [['a', F]], [['p', F], ['q', 3]], [
      node('u', 'Unique', ['a'], T(F)),
      node('two', 'Const', [], { dtype: attr.type(F as never), value: attr.tensor(scalarF32(2)) }),
      node('d', 'Mul', ['u:y:0', 'two:output:0'], T(F)),
    ], { p: 'd:z:0', q: 'u:idx:0' });
    const f = fn('f', [['x', F]], [['o1', F], ['o2', 3]], [call('inner', 'g', ['x'], [F, 3]), node('id', 'Identity', ['inner:output:1'], T(3))], { o1: 'inner:output:0', o2: 'id:output:0' });
    const nodes = [node('x', 'Placeholder', [], { dtype: attr.type(F as never), shape: attr.shape([3]) }), call('outer', 'f', ['x'], [F, 3])];
    const file = fileOf(nodes, { inputs: { x: tensorInfo('x:0', 'float32', [3]) }, outputs: { d: tensorInfo('outer:0', 'float32', null), idx: tensorInfo('outer:1', 'int32', null) } }, [], [f, g]);
    const fr = await freezeSignature(file);
    expect(fr.outputs.map((o) => o.node)).toEqual(['outer/inner/d', 'outer/id']);
    const byName = new Map(fr.graph.node.map((n) => [n.name, n]));
    expect(byName.get('outer/id')!.input).toEqual(['outer/inner/u:1']);
    expect(byName.get('outer/inner/d')!.input).toEqual(['outer/inner/u', 'outer/inner/two']);
    expect(flatOutputIndex(byName.get('outer/inner/u')!, 'idx', 0)).toBe(1);
    expect(flatOutputIndex(node('p', 'ParseExampleV2', [], { num_sparse: create(AttrValueSchema, { value: { case: 'i', value: 2n } }), sparse_types: attr.types([1, 9] as never[]) }), 'sparse_shapes', 1)).toBe(5);
  });

  it('rewrites ResourceGather to GatherV2 of the variable value and VarIsInitializedOp to true', async () => {
    const nodes = [
      node('ids', 'Placeholder', [], { dtype: attr.type(3 as never), shape: attr.shape([2]) }),
      node('emb', 'VarHandleOp', [], { dtype: attr.type(F as never), shape: attr.shape([3, 2]) }),
      node('g', 'ResourceGather', ['emb', 'ids'], { dtype: attr.type(F as never), Tindices: attr.type(3 as never) }),
      node('init', 'VarIsInitializedOp', ['emb']),
    ];
    const file = fileOf(nodes, { inputs: { ids: tensorInfo('ids:0', 'int32', [2]) }, outputs: { g: tensorInfo('g:0', 'float32', [2, 2]), ok: tensorInfo('init:0', 'bool', []) } }, [f32('emb', [3, 2], [1, 2, 3, 4, 5, 6])]);
    const fr = await freezeSignature(file);
    const byName = new Map(fr.graph.node.map((n) => [n.name, n]));
    expect(byName.get('g')).toMatchObject({ op: 'GatherV2', input: ['g/params', 'ids', 'g/axis'] });
    expect(byName.get('g/params')!.op).toBe('Const');
    expect(byName.get('init')!.op).toBe('Const');
  });

  it('E_UNSUPPORTED: handle uses, list arguments, polymorphic bodies, sparse inputs, resource outputs, non-:0 inputs', async () => {
    const handle = fileOf([node('v', 'VarHandleOp', [], { dtype: attr.type(F as never), shape: attr.shape([]) }), node('s', 'Size', ['v'])],
      { outputs: { s: tensorInfo('s:0', 'int32', []) } }, [f32('v', [], [1])]);
    expect((await failure(freezeSignature(handle))).message).toMatch(/takes the handle of variable 'v'/);

    const m = tf2Model();
    m.f.signature!.inputArg[0]!.numberAttr = 'N';
    expect((await failure(freezeSignature(fileOf(m.nodes, m.io, [f32('w', [2], [1, 1])], [m.f])))).code).toBe('E_UNSUPPORTED');

    const poly = tf2Model((v) => [node('r', 'ReadVariableOp', [v], { dtype: create(AttrValueSchema, { value: { case: 'placeholder', value: 'T' } }) }), node('Identity', 'Identity', ['r:value:0'])]);
    expect((await failure(freezeSignature(fileOf(poly.nodes, poly.io, [f32('w', [2], [1, 1])], [poly.f])))).message).toMatch(/polymorphic/);

    const sparse = create(TensorInfoSchema, { dtype: F as never, encoding: { case: 'cooSparse', value: create(TensorInfo_CooSparseSchema, { valuesTensorName: 'x:0' }) } });
    const base = tf2Model();
    expect((await failure(freezeSignature(fileOf(base.nodes, { inputs: { x: sparse }, outputs: base.io.outputs }, [f32('w', [2], [1, 1])], [base.f])))).code).toBe('E_UNSUPPORTED');
    const resOut = create(TensorInfoSchema, { dtype: RES as never, encoding: { case: 'name', value: 'w:0' } });
    expect((await failure(freezeSignature(fileOf(base.nodes, { outputs: { h: resOut } }, [], [base.f])))).code).toBe('E_UNSUPPORTED');
    const split = fileOf([node('s', 'Split', [], {}), node('y', 'Neg', ['s:1'], T(F))], { inputs: { x: tensorInfo('s:1', 'float32', [1]) }, outputs: { y: tensorInfo('y:0', 'float32', [1]) } });
    expect((await failure(freezeSignature(split))).message).toMatch(/only :0 inputs/);
    const unreadable = tf2Model((v) => [node('r', 'ReadVariableOp', ['x'], { dtype: attr.type(F as never) }), node('Identity', 'Identity', ['r:value:0', `^${v}`])]);
    expect((await failure(freezeSignature(fileOf(unreadable.nodes, unreadable.io, [f32('w', [2], [1, 1])], [unreadable.f])))).code).toBe('E_UNSUPPORTED');
  });

  it('E_MALFORMED: dangling references, missing functions, wrong arity, bad inner references, missing values, duplicates', async () => {
    const cases: Array<[string, SavedModelFile, RegExp]> = [];
    const m = tf2Model();
    cases.push(['missing variable value', fileOf(m.nodes, m.io, [], [m.f]), /variable 'w' has no value/]);
    cases.push(['missing function', fileOf(m.nodes, m.io, [f32('w', [2], [1, 1])], []), /does not define/]);
    const arity = tf2Model();
    arity.nodes[2] = call('call', 'f', ['x']);
    cases.push(['arity', fileOf(arity.nodes, arity.io, [f32('w', [2], [1, 1])], [arity.f]), /passes 1 inputs/]);
    const badRef = tf2Model(() => [node('Identity', 'Identity', ['nowhere:output:0'])]);
    cases.push(['bad inner ref', fileOf(badRef.nodes, badRef.io, [], [badRef.f]), /neither an argument nor a node/]);
    const badArg = tf2Model(() => [node('u', 'Unique', ['x'], T(F)), node('Identity', 'Identity', ['u:nope:0'])]);
    cases.push(['bad outarg', fileOf(badArg.nodes, badArg.io, [], [badArg.f]), /has no output 'nope'/]);
    cases.push(['dangling', fileOf([node('y', 'Neg', ['ghost'], T(F))], { outputs: { y: tensorInfo('y:0', 'float32', []) } }), /'ghost'/]);
    cases.push(['duplicate', fileOf([node('y', 'Neg', [], T(F)), node('y', 'Neg', [], T(F))], { outputs: { y: tensorInfo('y:0', 'float32', []) } }), /duplicate node name/]);
    const loose = tf2Model();
    cases.push(['unfed placeholder', fileOf(loose.nodes, { outputs: loose.io.outputs }, [f32('w', [2], [1, 1])], [loose.f]), /placeholder 'x', which is not a signature input/]);
    const noRet = tf2Model();
    noRet.f.ret = {};
    cases.push(['no ret', fileOf(noRet.nodes, noRet.io, [f32('w', [2], [1, 1])], [noRet.f]), /returns nothing/]);
    for (const [what, file, msg] of cases) {
      const e = await failure(freezeSignature(file));
      expect([what, e.code]).toEqual([what, 'E_MALFORMED']);
      expect(e.message).toMatch(msg);
      expect(e.path).toBe('hand-built');
    }
  });

  it('E_LIMIT: a recursive function stops at the inlining depth cap', async () => {
    const rec = fn('r', [['x', F]], [['o', F]], [call('again', 'r', ['x'])], { o: 'again:output:0' });
    const file = fileOf([node('x', 'Placeholder', [], { dtype: attr.type(F as never) }), call('c', 'r', ['x'])], { inputs: { x: tensorInfo('x:0', 'float32', []) }, outputs: { y: tensorInfo('c:0', 'float32', []) } }, [], [rec]);
    const e = await failure(freezeSignature(file));
    expect(e.code).toBe('E_LIMIT');
    expect(e.message).toContain(String(MAX_INLINE_DEPTH));
  });

  it('E_DTYPE: a read whose dtype differs from the checkpoint value', async () => {
    const m = tf2Model();
    const e = await failure(freezeSignature(fileOf(m.nodes, m.io, [{ name: 'w', dtype: 'int32', shape: [2], data: new Uint8Array(8) }], [m.f])));
    expect(e).toMatchObject({ code: 'E_DTYPE', tensor: 'w' });
  });

  it('runSignature: E_USAGE for unknown feeds and unfed inputs without a default', async () => {
    const m = tf2Model();
    const file = fileOf(m.nodes, m.io, [f32('w', [2], [1, 1])], [m.f]);
    expect((await failure(runSignature(file, { nope: f32('nope', [2], [1, 2]) }))).code).toBe('E_USAGE');
    expect((await failure(runSignature(file, {}))).message).toMatch(/input 'x' is not fed/);
    expect((await failure(freezeSignature(fileOf(m.nodes, { inputs: m.io.inputs, outputs: {} }, [], [m.f])))).code).toBe('E_USAGE');
  });

  it('loads variable values lazily: only the ones the signature reads', async () => {
    const m = tf2Model();
    let loads = 0;
    const file = fileOf(m.nodes, m.io, [f32('w', [2], [1, 1])], [m.f]);
    file.variables.tensors.push({ ...inMemoryTensor(f32('unused', [1], [0])), load: async () => { loads++; return new Uint8Array(4); } });
    await freezeSignature(file);
    expect(loads).toBe(0);
    expect(await materialize(file.variables.tensors[0]!)).toBeDefined();
  });
});
