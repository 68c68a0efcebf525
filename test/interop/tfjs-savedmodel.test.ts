/**
 * TF.js as the reference executor: runGraphDef on hand-built GraphDefs and the corpus's frozen
 * GraphDefs (expected values computed here in plain JS from the graph's definition).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import type { DType } from '../../src/core/dtype.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { typedView, type Tensor } from '../../src/core/tensor.js';
import { MemorySource } from '../../src/io/source.js';
import { attr, int32Tensor, node, stringTensor } from '../../src/formats/savedmodel/build.js';
import { GraphDefSchema, NodeDefSchema, AttrValueSchema, type NodeDef } from '../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { TensorProtoSchema } from '../../src/formats/savedmodel/gen/tensorflow/types_pb.js';
import { readGraphDef } from '../../src/formats/savedmodel/graphdef.js';
import { tensorFromProto } from '../../src/formats/savedmodel/tensor-proto.js';
import { shapeProto } from '../../src/formats/savedmodel/build.js';
import { loadTfjs, runGraphDef } from '../../src/formats/savedmodel/tfjs.js';
import { freezeSignature, runSignature } from '../../src/formats/savedmodel/freeze.js';
import { readSavedModel, writeSavedModel, type SavedModelFile } from '../../src/formats/savedmodel/index.js';
import { inMemoryTensor, materialize } from '../../src/formats/weights.js';
import { dirResolver } from '../formats/savedmodel/helpers.js';
import { memoryFolder } from '../formats/savedmodel/memory-folder.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus/savedmodel');
const FROZEN = resolve(CORPUS, 'graphdef-frozen');
const F = 1, I32 = 3, I64 = 9, BOOL = 10, STR = 7, F64 = 2;

const t = (name: string, dtype: DType, shape: number[], values: number[] | bigint[]): Tensor => {
  const data = dtype === 'float32' ? new Float32Array(values as number[]) : dtype === 'int32' ? new Int32Array(values as number[])
    : dtype === 'int64' ? new BigInt64Array(values as bigint[]) : dtype === 'float64' ? new Float64Array(values as number[]) : new Uint8Array(values as number[]);
  return { name, dtype, shape, data: new Uint8Array(data.buffer) };
};
const values = (x: Tensor) => Array.from(typedView(x) as ArrayLike<number | bigint>);
const graph = (nodes: NodeDef[]) => create(GraphDefSchema, { node: nodes });
const placeholder = (name: string, type: number, shape: number[] | null) => node(name, 'Placeholder', [], { dtype: attr.type(type as never), shape: attr.shape(shape) });
const floatConst = (name: string, shape: number[], xs: number[]) => node(name, 'Const', [], {
  dtype: attr.type(F as never),
  value: attr.tensor(create(TensorProtoSchema, { dtype: F as never, tensorShape: shapeProto(shape), tensorContent: new Uint8Array(new Float32Array(xs).buffer) })),
});
const int64Const = (name: string, xs: bigint[]) => node(name, 'Const', [], {
  dtype: attr.type(I64 as never),
  value: attr.tensor(create(TensorProtoSchema, { dtype: I64 as never, tensorShape: shapeProto([xs.length]), int64Val: xs })),
});
const T = (type: number) => ({ T: attr.type(type as never) });

async function failure(p: Promise<unknown>): Promise<ModelsmithError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    return e as ModelsmithError;
  }
  throw new Error('expected a ModelsmithError');
}
const code = async (p: Promise<unknown>): Promise<string> => (await failure(p)).code;

describe('runGraphDef', () => {
  it('computes a small dense layer from Const weights (weightSpecs path, splatted bias)', async () => {
    const g = graph([
      placeholder('x', F, [-1, 2]),
      floatConst('w', [2, 3], [1, 2, 3, 4, 5, 6]),
      // float_val with one value for three elements: the TensorProto splat rule.
      node('b', 'Const', [], { dtype: attr.type(F as never), value: attr.tensor(create(TensorProtoSchema, { dtype: F as never, tensorShape: shapeProto([3]), floatVal: [0.5] })) }),
      node('mm', 'MatMul', ['x', 'w'], T(F)),
      node('ba', 'BiasAdd', ['mm', 'b'], T(F)),
      node('y', 'Relu', ['ba'], T(F)),
    ]);
    const [y] = await runGraphDef(g, { x: t('x', 'float32', [2, 2], [1, -1, 0.5, 2]) }, ['y:0']);
    expect(y!.dtype).toBe('float32');
    expect(y!.shape).toEqual([2, 3]);
    // [1,-1]·W = [-3,-3,-3] → +0.5 → relu 0; [0.5,2]·W = [8.5,11,13.5] → +0.5
    expect(values(y!)).toEqual([0, 0, 0, 9, 11.5, 14]);
  });

  it('feeds and returns int64 (narrowed to int32 for TF.js, widened back), bool and several fetches', async () => {
    const g = graph([
      placeholder('a', I64, [3]),
      int64Const('k', [3n, -2n, 1000000n]),
      node('m', 'Mul', ['a', 'k'], T(I64)),
      node('gt', 'Greater', ['m', 'a'], T(I64)),
      node('nb', 'LogicalNot', ['gt']),
    ]);
    const [m, gt, nb] = await runGraphDef(g, { 'a:0': t('a', 'int64', [3], [2n, 5n, -7n]) }, ['m', 'gt', 'nb:0']);
    expect(m!.dtype).toBe('int64');
    expect(values(m!)).toEqual([6n, -10n, -7000000n]);
    expect(gt!.dtype).toBe('bool');
    expect(values(gt!)).toEqual([1, 0, 0]);
    expect(values(nb!)).toEqual([0, 1, 1]);
  });

  it('reads int64 feeds outside int32 as E_RANGE_CHECK, and int64 Consts too', async () => {
    const g = graph([placeholder('a', I64, [1]), node('y', 'Identity', ['a'], T(I64))]);
    expect(await code(runGraphDef(g, { a: t('a', 'int64', [1], [2n ** 40n]) }, ['y']))).toBe('E_RANGE_CHECK');
    const g2 = graph([int64Const('k', [1n, -(2n ** 33n)]), node('y', 'Identity', ['k'], T(I64))]);
    const e = await failure(runGraphDef(g2, {}, ['y']));
    expect(e).toMatchObject({ code: 'E_RANGE_CHECK', tensor: 'k' });
  });

  it('widens float64 outputs and takes float64 feeds (TF.js computes them in float32)', async () => {
    const g = graph([placeholder('a', F64, [2]), node('y', 'Neg', ['a'], T(F64))]);
    const [y] = await runGraphDef(g, { a: t('a', 'float64', [2], [0.5, -4]) }, ['y']);
    expect(y!.dtype).toBe('float64');
    expect(values(y!)).toEqual([-0.5, 4]);
  });

  it('passes string tensors through (feed and Const)', async () => {
    const g = graph([
      placeholder('s', STR, [2]),
      node('c', 'Const', [], { dtype: attr.type(STR as never), value: attr.tensor(stringTensor(['ab', 'c'])) }),
      node('r', 'StaticRegexReplace', ['s'], { pattern: attr.s('a+'), rewrite: attr.s('-'), replace_global: create(AttrValueSchema, { value: { case: 'b', value: true } }) }),
      node('axis', 'Const', [], { dtype: attr.type(I32 as never), value: attr.tensor(int32Tensor([0], [])) }),
      node('j', 'ConcatV2', ['r', 'c', 'axis'], { T: attr.type(STR as never), N: create(AttrValueSchema, { value: { case: 'i', value: 2n } }) }),
    ]);
    const enc = new TextEncoder();
    const [j] = await runGraphDef(g, { s: { name: 's', dtype: 'string', shape: [2], data: new Uint8Array(0), strings: [enc.encode('xaay'), enc.encode('aza')] } }, ['j']);
    expect(j!.dtype).toBe('string');
    expect(j!.shape).toEqual([4]);
    expect(j!.strings!.map((s) => new TextDecoder().decode(s))).toEqual(['x-y', '-z-', 'ab', 'c']);
  });

  it('prunes to what the fetches need: unrelated unknown ops, saver nodes and control inputs do not matter', async () => {
    const g = graph([
      placeholder('x', F, [2]),
      node('junk', 'FooBarOp', ['x']),
      node('dep', 'NoOp', ['^junk']),
      node('y', 'Square', ['x', '^dep'], T(F)),
    ]);
    const [y] = await runGraphDef(g, { x: t('x', 'float32', [2], [3, -2]) }, ['y']);
    expect(values(y!)).toEqual([9, 4]);
  });

  it('refuses ops TF.js lacks with E_UNSUPPORTED naming all of them', async () => {
    const g = graph([placeholder('x', F, [2]), node('a', 'FooBarOp', ['x']), node('b', 'StatefulPartitionedCall', ['a']), node('y', 'Add', ['a', 'b'], T(F))]);
    const e = await failure(runGraphDef(g, { x: t('x', 'float32', [2], [1, 2]) }, ['y']));
    expect(e).toBeInstanceOf(ModelsmithError);
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toContain('FooBarOp, StatefulPartitionedCall');
    expect(e.message).toContain('freezeSignature');
  });

  it('refuses bad feeds and fetches with E_USAGE / E_DTYPE, and broken graphs with E_MALFORMED', async () => {
    const g = graph([placeholder('x', F, [-1, 2]), node('y', 'Neg', ['x'], T(F)), node('z', 'Neg', ['nowhere'], T(F))]);
    const x = t('x', 'float32', [1, 2], [1, 2]);
    expect(await code(runGraphDef(g, { x }, ['nope']))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, { nope: x }, ['y']))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, {}, ['y']))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, { x }, []))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, { x, 'x:0': x }, ['y']))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, { x: t('x', 'float32', [2, 1], [1, 2]) }, ['y']))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, { x: t('x', 'int32', [1, 2], [1, 2]) }, ['y']))).toBe('E_DTYPE');
    expect(await code(runGraphDef(g, { x }, ['^y']))).toBe('E_USAGE');
    expect(await code(runGraphDef(g, { 'x:1': x }, ['y']))).toBe('E_UNSUPPORTED');
    // A feed no fetch needs is accepted (and ignored), as in TF.
    const extra = graph([placeholder('x', F, [2]), placeholder('unused', F, [1]), node('y', 'Neg', ['x'], T(F))]);
    const [neg] = await runGraphDef(extra, { x: t('x', 'float32', [2], [1, -2]), unused: t('u', 'float32', [1], [0]) }, ['y']);
    expect(values(neg!)).toEqual([-1, 2]);
    expect(await failure(runGraphDef(g, { x }, ['z']))).toMatchObject({ code: 'E_MALFORMED', op: 'z' });
    const dup = graph([placeholder('x', F, [2]), placeholder('x', F, [2])]);
    expect(await code(runGraphDef(dup, { x: t('x', 'float32', [2], [1, 2]) }, ['x']))).toBe('E_MALFORMED');
    const noValue = graph([node('c', 'Const', [], { dtype: attr.type(F as never) }), node('y', 'Neg', ['c'], T(F))]);
    expect(await code(runGraphDef(noValue, {}, ['y']))).toBe('E_MALFORMED');
    // A shape TF.js rejects at run time (MatMul of mismatched inner dims) is E_MALFORMED, not a TypeError.
    const mm = graph([placeholder('a', F, [1, 2]), floatConst('w', [3, 1], [1, 2, 3]), node('y', 'MatMul', ['a', 'w'], T(F))]);
    expect(await code(runGraphDef(mm, { a: t('a', 'float32', [1, 2], [1, 2]) }, ['y']))).toBe('E_MALFORMED');
  });

  it('ends a cyclic graph in E_MALFORMED (no hang) and refuses feeds whose bytes disagree with their shape', async () => {
    const g = graph([placeholder('x', F, []), node('a', 'AddV2', ['b', 'x'], T(F)), node('b', 'Neg', ['a'], T(F))]);
    expect(await code(runGraphDef(g, { x: t('x', 'float32', [], [1]) }, ['a']))).toBe('E_MALFORMED');
    const g2 = graph([placeholder('x', F, [2]), node('y', 'Neg', ['x'], T(F))]);
    expect(await code(runGraphDef(g2, { x: { name: 'x', dtype: 'float32', shape: [2], data: new Uint8Array(5) } }, ['y']))).toBe('E_TENSOR_SIZE');
    const g3 = graph([placeholder('s', STR, [2]), node('y', 'Identity', ['s'], T(STR))]);
    expect(await code(runGraphDef(g3, { s: { name: 's', dtype: 'string', shape: [2], data: new Uint8Array(0) } }, ['y']))).toBe('E_TENSOR_SIZE');
  });

  it('caps the Const bytes handed to TF.js (E_LIMIT), counting every Const', async () => {
    const g = graph([floatConst('a', [4], [1, 2, 3, 4]), floatConst('b', [4], [1, 2, 3, 4]), node('y', 'AddV2', ['a', 'b'], T(F))]);
    const e = await failure(runGraphDef(g, {}, ['y'], { maxWeightBytes: 20 }));
    expect(e).toMatchObject({ code: 'E_LIMIT', tensor: 'b' });
    const [y] = await runGraphDef(g, {}, ['y'], { maxWeightBytes: 32 });
    expect(values(y!)).toEqual([2, 4, 6, 8]);
  });

  it('refuses tensors TF.js cannot hold with E_DTYPE', async () => {
    const g = graph([placeholder('x', 8, [1]), node('y', 'Identity', ['x'], T(8))]);
    const c: Tensor = { name: 'x', dtype: 'complex64', shape: [1], data: new Uint8Array(8) };
    expect(await code(runGraphDef(g, { x: c }, ['y']))).toBe('E_DTYPE');
  });

  it('reports a missing TF.js as E_UNSUPPORTED with an install hint', async () => {
    const g = graph([placeholder('x', F, [1]), node('y', 'Neg', ['x'], T(F))]);
    const e = await failure(runGraphDef(g, { x: t('x', 'float32', [1], [1]) }, ['y'], { tfjsModule: 'no-such-tfjs-module' }));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toContain('npm install @tensorflow/tfjs');
    await expect(loadTfjs()).resolves.toBeDefined();
  });

  it('runs If with function branches whose Consts clash with graph node names', async () => {
    const fnConst = (v: number) => create(NodeDefSchema, { name: 'k', op: 'Const', attr: { dtype: attr.type(F as never), value: attr.tensor(create(TensorProtoSchema, { dtype: F as never, floatVal: [v] })) } });
    const branch = (name: string, op: string, v: number) => ({
      signature: { name, inputArg: [{ name: 'v', type: F as never }], outputArg: [{ name: 'out', type: F as never }] },
      nodeDef: [fnConst(v), create(NodeDefSchema, { name: 'r', op, input: ['v', 'k:output:0'], attr: T(F) })],
      ret: { out: 'r:z:0' },
    });
    const g = create(GraphDefSchema, {
      node: [
        placeholder('p', BOOL, []),
        placeholder('v', F, [2]),
        floatConst('k', [], [100]),
        node('if', 'If', ['p', 'v'], {
          Tcond: attr.type(BOOL as never), Tin: attr.types([F as never]), Tout: attr.types([F as never]),
          then_branch: create(AttrValueSchema, { value: { case: 'func', value: { name: 'then_fn' } as never } }),
          else_branch: create(AttrValueSchema, { value: { case: 'func', value: { name: 'else_fn' } as never } }),
        }),
        node('y', 'AddV2', ['if', 'k'], T(F)),
      ],
      library: { function: [branch('then_fn', 'Mul', 3), branch('else_fn', 'AddV2', 1)] as never },
    });
    const v = t('v', 'float32', [2], [1, 2]);
    const [a] = await runGraphDef(g, { p: t('p', 'bool', [], [1]), v }, ['y']);
    expect(values(a!)).toEqual([103, 106]);
    const [b] = await runGraphDef(g, { p: t('p', 'bool', [], [0]), v }, ['y']);
    expect(values(b!)).toEqual([102, 103]);
  });
});

describe('runGraphDef on the corpus frozen GraphDefs', () => {
  const read = async (f: string) => (await readGraphDef(new MemorySource(new Uint8Array(readFileSync(resolve(FROZEN, f))), f))).graph;

  it('tf-rust-addition.pb: z = x + y on int32', async () => {
    const g = await read('tf-rust-addition.pb');
    const [z] = await runGraphDef(g, { x: t('x', 'int32', [], [40]), y: t('y', 'int32', [], [2]) }, ['z']);
    expect(z!.dtype).toBe('int32');
    expect(values(z!)).toEqual([42]);
  });

  it('tf-rust-regression.pb: loss and gradient of y = w·x + b with the variables fed', async () => {
    const g = await read('tf-rust-regression.pb');
    const xs = [1, 2, 3, 4], ys = [3, 5, 7, 10], w = 1.5, b = 0.25;
    const feeds = { x: t('x', 'float32', [4], xs), y: t('y', 'float32', [4], ys), w: t('w', 'float32', [1], [w]), b: t('b', 'float32', [1], [b]) };
    const [loss, yhat] = await runGraphDef(g, feeds, ['Mean', 'add']);
    const r = xs.map((x, i) => w * x + b - ys[i]!);
    expect(values(loss!)[0]).toBeCloseTo(r.reduce((a, e) => a + e * e, 0) / 4, 5);
    expect(values(yhat!)).toEqual(xs.map((x) => w * x + b));
    // The gradient subgraph needs two ops TF.js lacks: refused, naming both.
    const e = await failure(runGraphDef(g, feeds, ['gradients/mul_grad/tuple/control_dependency']));
    expect(e).toMatchObject({ code: 'E_UNSUPPORTED' });
    expect(e.message).toContain('BroadcastGradientArgs, DynamicStitch');
    // The random initializer runs too (shape [1], values in [min, min + range)).
    const [init] = await runGraphDef(g, {}, ['random_uniform']);
    expect(init!.shape).toEqual([1]);
    expect(Math.abs(values(init!)[0] as number)).toBeLessThanOrEqual(1);
  });

  it('tf-rust-regression.pb: an unfed TF1 Variable is refused as an op TF.js lacks', async () => {
    const g = await read('tf-rust-regression.pb');
    const e = await failure(runGraphDef(g, { x: t('x', 'float32', [1], [1]) }, ['mul']));
    expect(e).toMatchObject({ code: 'E_UNSUPPORTED' });
    expect(e.message).toContain('Variable');
  });
});

const openModel = (rel: string) => readSavedModel(dirResolver(resolve(CORPUS, rel)), { path: rel });
/** A variable's value as numbers, found by checkpoint key prefix (the object path). */
async function variable(f: SavedModelFile, objectPath: string): Promise<number[]> {
  const t = f.variables.tensors.find((v) => v.extra?.['checkpointKey'] === objectPath || v.extra?.['checkpointKey'] === `${objectPath}/.ATTRIBUTES/VARIABLE_VALUE`);
  if (!t) throw new Error(`no variable ${objectPath}`);
  return Array.from(typedView(await materialize(t)) as ArrayLike<number | bigint>, Number);
}
const near = (got: Tensor, want: number[], digits = 6) => {
  const g = values(got).map(Number);
  expect(g.length).toBe(want.length);
  g.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, digits));
};

describe('runSignature: corpus SavedModels through freeze → TF.js', () => {
  const halfPlusTwo = [
    'tf-serving/saved_model_half_plus_two_cpu/00000123',
    'tf-serving/saved_model_half_plus_two_2_versions/00000123',
    'tf-serving/saved_model_half_plus_two_2_versions/00000124',
    'tf-serving/saved_model_half_plus_two_cpu_with_saved_model_config/00000123',
  ];
  it.each(halfPlusTwo)('%s: serving_default y = x/2 + 2, regress_x2_to_y3 y3 = x2/2 + 3 (TF1 VariableV2)', async (rel) => {
    const f = await openModel(rel);
    const xs = [0, 1, 2.5, -4, 1e6];
    const { y } = await runSignature(f, { x: t('x', 'float32', [5, 1], xs) });
    expect(y!.shape).toEqual([5, 1]);
    near(y!, xs.map((x) => x / 2 + 2));
    // The same from the checkpoint values (a·x + b), so a model with other weights would fail here.
    const [a, b] = [await variable(f, 'a'), await variable(f, 'b')];
    near(y!, xs.map((x) => a[0]! * x + b[0]!));
    const { outputs } = await runSignature(f, { inputs: t('x2', 'float32', [2, 1], [4, -2]) }, 'regress_x2_to_y3');
    near(outputs!, [5, 2]);
  });

  it('TF2 half_plus_two: serving_default through two inlined calls; the PlaceholderWithDefault default when not fed', async () => {
    const f = await openModel('tf-serving/saved_model_half_plus_two_tf2_cpu/00000123');
    const { y } = await runSignature(f, { x: t('x', 'float32', [1], [7]) });
    near(y!, [5.5]);
    const frozen = await freezeSignature(f);
    const dflt = frozen.graph.node.find((n) => n.name === 'serving_default_x/input')!;
    const d = values({ ...tensorFromProtoOf(dflt), name: 'd' }).map(Number);
    const { y: y0 } = await runSignature(f, {});
    near(y0!, d.map((x) => x / 2 + 2));
    const { scores } = await runSignature(f, { inputs: t('x', 'float32', [1], [10]) }, 'classify_x2_to_y3');
    near(scores!, [8]);
  });

  it('signatures that parse tf.Example protos are refused: TF.js has no ParseExample / ParseExampleV2', async () => {
    const ex = { name: 'e', dtype: 'string' as const, shape: [1], data: new Uint8Array(0), strings: [new Uint8Array(0)] };
    const tf1 = await openModel('tf-serving/saved_model_half_plus_two_cpu/00000123');
    const e1 = await failure(runSignature(tf1, { inputs: ex }, 'classify_x_to_y'));
    expect(e1).toMatchObject({ code: 'E_UNSUPPORTED', op: 'ParseExample' });
    const tf2 = await openModel('tf-serving/saved_model_half_plus_two_tf2_cpu/00000123');
    const e2 = await failure(runSignature(tf2, { inputs: { ...ex, shape: [1] } }, 'regress_x_to_y'));
    expect(e2).toMatchObject({ code: 'E_UNSUPPORTED', op: 'ParseExampleV2' });
  });

  it('saved_model_counter: get_counter returns the checkpointed counter; the writing signatures are refused', async () => {
    const f = await openModel('tf-serving/saved_model_counter/00000123');
    const { output } = await runSignature(f, {}, 'get_counter');
    expect(output!.shape).toEqual([]);
    near(output!, await variable(f, 'counter'));
    expect(await code(runSignature(f, {}, 'incr_counter'))).toBe('E_UNSUPPORTED');
  });

  it('tfjs-node times_three_float: x * 3', async () => {
    const f = await openModel('tfjs-node/times_three_float');
    expect(await variable(f, 'v')).toEqual([3]);
    const { output_0 } = await runSignature(f, { x: t('x', 'float32', [], [1.5]) });
    near(output_0!, [4.5]);
  });

  it('tfjs-node module_with_multiple_signatures: serving_default x * v, timestwo x * two', async () => {
    const f = await openModel('tfjs-node/module_with_multiple_signatures');
    const [v, two] = [await variable(f, 'v'), await variable(f, 'two')];
    expect(two).toEqual([2]);
    const a = await runSignature(f, { x: t('x', 'float32', [], [5]) });
    near(a['output_0']!, [5 * v[0]!]);
    const b = await runSignature(f, { x: t('x', 'float32', [], [5]) }, 'timestwo');
    near(b['output_0']!, [10]);
  });

  it('tfjs-node model_multi_output: int32 in, two int32 outputs (x * two, y)', async () => {
    const f = await openModel('tfjs-node/model_multi_output');
    const two = await variable(f, 'two');
    const out = await runSignature(f, { x: t('x', 'int32', [], [5]), y: t('y', 'int32', [], [-7]) });
    expect(Object.keys(out).sort()).toEqual(['output_0', 'output_1']);
    expect(out['output_0']!.dtype).toBe('int32');
    expect(values(out['output_0']!)).toEqual([5 * two[0]!]);
    expect(values(out['output_1']!)).toEqual([-7]);
  });

  it('tfjs-node int64_multiply: int64 in and out (narrowed for TF.js, range-checked, widened back)', async () => {
    const f = await openModel('tfjs-node/int64_multiply');
    const [v1, v2] = [await variable(f, 'v1'), await variable(f, 'v2')];
    const { output_0 } = await runSignature(f, { x: t('x', 'int64', [2], [7n, -11n]) });
    expect(output_0!.dtype).toBe('int64');
    expect(values(output_0!)).toEqual([7n, -11n].map((x) => x * BigInt(v1[0]!) * BigInt(v2[0]!)));
    expect(await code(runSignature(f, { x: t('x', 'int64', [2], [1n, 2n ** 31n]) }))).toBe('E_RANGE_CHECK');
  });

  it('tensorflow-rust regression_savedmodel: w and b read the variables; train returns its loss', async () => {
    const f = await openModel('tensorflow-rust/regression_savedmodel');
    const [w, b] = [await variable(f, 'w'), await variable(f, 'b')];
    near((await runSignature(f, {}, 'w'))['output']!, w);
    near((await runSignature(f, {}, 'b'))['output']!, b);
    const xs = [1, 2, 3], ys = [2, 4.5, 6];
    const { loss } = await runSignature(f, { x: t('x', 'float32', [3], xs), y: t('y', 'float32', [3], ys) }, 'train');
    near(loss!, [xs.reduce((a, x, i) => a + (w[0]! * x + b[0]! - ys[i]!) ** 2, 0) / 3], 5);
  });

  it('tensorflow-rust Keras Sequential: the Dense(relu) → Dense(relu) → Dense(sigmoid) stack computed from its variables', async () => {
    const f = await openModel('tensorflow-rust/keras_single_input_saved_model');
    const layer = async (p: string) => ({ k: await variable(f, `${p}/kernel`), b: await variable(f, `${p}/bias`) });
    const layers = [await layer('layer_with_weights-0'), await layer('layer_with_weights-1'), await layer('layer_with_weights-2')];
    const dense = (x: number[], { k, b }: { k: number[]; b: number[] }, act: (v: number) => number) =>
      b.map((bj, j) => act(x.reduce((s, xi, i) => s + xi * k[i * b.length + j]!, bj)));
    const relu = (v: number) => Math.max(0, v);
    const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
    const batch = [[0.1, -0.2, 0.3, 0.4, -0.5], [1, 2, 3, 4, 5], [-3, 0, 2, -1, 0.5]];
    const { test_out } = await runSignature(f, { test_in_input: t('x', 'float32', [3, 5], batch.flat()) });
    expect(test_out!.shape).toEqual([3, 1]);
    const want = batch.map((x) => dense(dense(dense(x, layers[0]!, relu), layers[1]!, relu), layers[2]!, sigmoid)[0]!);
    near(test_out!, want, 5);
    expect(new Set(want.map((v) => v.toFixed(3))).size).toBe(3);
  });
});

describe('runSignature on a SavedModel we write', () => {

  it('writeSavedModel → readSavedModel → freeze → TF.js gives relu(x·W + b) and the int64 step', async () => {
    const W = [1, -2, 0.5, 3, 0, -1], B = [0.25, -0.5, 1];
    const m = memoryFolder();
    await writeSavedModel({
      nodes: [
        placeholder('x', F, [-1, 2]),
        node('MatMul', 'MatMul', ['x', 'dense/kernel/Read/ReadVariableOp'], T(F)),
        node('BiasAdd', 'BiasAdd', ['MatMul', 'dense/bias/Read/ReadVariableOp'], T(F)),
        node('Relu', 'Relu', ['BiasAdd'], T(F)),
        node('y', 'Identity', ['Relu'], T(F)),
        node('step', 'Identity', ['global_step/Read/ReadVariableOp'], T(I64)),
      ],
      variables: [
        inMemoryTensor(t('dense/kernel', 'float32', [2, 3], W)),
        inMemoryTensor(t('dense/bias', 'float32', [3], B)),
        inMemoryTensor(t('global_step', 'int64', [], [123456789n])),
      ],
      signatures: [{
        inputs: { x: { name: 'x:0', dtype: 'float32', shape: [-1, 2] } },
        outputs: { y: { name: 'y:0', dtype: 'float32', shape: [-1, 3] }, step: { name: 'step:0', dtype: 'int64', shape: [] } },
      }],
    }, m.out);
    const f = await readSavedModel(m.dir, { path: 'written' });
    const xs = [[1, 2], [-1, 0.5], [0, 0]];
    const out = await runSignature(f, { x: t('x', 'float32', [3, 2], xs.flat()) });
    const want = xs.flatMap(([a, c]) => B.map((bj, j) => Math.max(0, a! * W[j]! + c! * W[3 + j]! + bj)));
    expect(out['y']!.shape).toEqual([3, 3]);
    near(out['y']!, want);
    expect(out['step']).toMatchObject({ dtype: 'int64', shape: [] });
    expect(values(out['step']!)).toEqual([123456789n]);
    const frozen = await freezeSignature(f);
    expect(frozen.graph.node.some((n) => ['VarHandleOp', 'ReadVariableOp', 'RestoreV2', 'AssignVariableOp'].includes(n.op))).toBe(false);
  });
});

function tensorFromProtoOf(n: NodeDef): Tensor {
  const v = n.attr['value']!.value;
  if (v.case !== 'tensor') throw new Error('not a Const');
  return tensorFromProto(v.value);
}
