/**
 * Sequence ops on the stacked form (elements on a new axis 0), Optional refused,
 * checked against onnxruntime; sequences are built and consumed inside the models so that both
 * runtimes take and give plain tensors, and one test reads a sequence graph output stacked.
 */
import '../../src/convert/onnx-tf/handlers/control-flow.js';
import '../../src/convert/onnx-tf/handlers/sequence.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, TypeProtoSchema, TypeProto_SequenceSchema, ValueInfoProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { buildModel, compare, nums, onnxNode, rand, runTf, tensorOf, type IoSpec } from './onnx-tf-helpers.js';
import type { Tensor } from '../../src/core/tensor.js';
import type { NodeProto } from 'onnx-buf';

const i64 = (name: string, vals: number[], shape: number[] = [vals.length]): Tensor => tensorOf(name, 'int64', shape, vals);

async function check(nodes: NodeProto[], inputs: IoSpec[], outputs: IoSpec[], feeds: Tensor[], inits: Tensor[] = [], tol = 1e-6): Promise<void> {
  const m = buildModel(nodes, inputs, outputs, inits, 17);
  const { diffs } = await compare(m, feeds);
  for (const o of outputs) expect(diffs[o.name], o.name).toBeLessThanOrEqual(tol);
}

async function refusal(nodes: NodeProto[], inputs: IoSpec[], outputs: IoSpec[], inits: Tensor[] = []): Promise<ModelsmithError> {
  const m = buildModel(nodes, inputs, outputs, inits, 17);
  const e = await onnxToTf(m.model, { constants: true }).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ModelsmithError);
  return e as ModelsmithError;
}

const abc: IoSpec[] = [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [2, 3] }, { name: 'c', dims: [2, 3] }];
const abcFeeds = (): Tensor[] => [rand('a', [2, 3], 1), rand('b', [2, 3], 2), rand('c', [2, 3], 3)];

describe('sequence ops', () => {
  it('SequenceConstruct → SequenceAt at positive, negative and run-time positions; SequenceLength', async () => {
    for (const pos of [0, 2, -1, -3]) {
      await check([onnxNode('SequenceConstruct', ['a', 'b', 'c'], ['s']), onnxNode('SequenceAt', ['s', 'p'], ['y'])], abc, [{ name: 'y', dims: [2, 3] }], abcFeeds(), [i64('p', [pos], [])]);
    }
    const nodes = [onnxNode('SequenceConstruct', ['a', 'b', 'c'], ['s']), onnxNode('SequenceAt', ['s', 'p'], ['y']), onnxNode('SequenceLength', ['s'], ['n'])];
    for (const pos of [1, -2]) {
      await check(nodes, [...abc, { name: 'p', dims: [], dtype: 'int64' }], [{ name: 'y', dims: [2, 3] }, { name: 'n', dims: [], dtype: 'int64' }], [...abcFeeds(), i64('p', [pos], [])]);
    }
  });

  it('SequenceInsert (appended, at positions, into SequenceEmpty) and SequenceErase (last, at positions)', async () => {
    const out = [{ name: 'y', dims: [] }];
    const cat = (s: string): NodeProto => onnxNode('ConcatFromSequence', [s], ['y'], { axis: 0 });
    const seq = onnxNode('SequenceConstruct', ['a', 'b'], ['s']);
    await check([seq, onnxNode('SequenceInsert', ['s', 'c'], ['t']), cat('t')], abc, out, abcFeeds());
    for (const pos of [0, 1, 2, -1, -2]) {
      await check([seq, onnxNode('SequenceInsert', ['s', 'c', 'p'], ['t']), cat('t')], abc, out, abcFeeds(), [i64('p', [pos], [])]);
      await check([seq, onnxNode('SequenceInsert', ['s', 'c', 'p'], ['t']), cat('t')], [...abc, { name: 'p', dims: [], dtype: 'int64' }], out, [...abcFeeds(), i64('p', [pos], [])]);
    }
    await check([onnxNode('SequenceEmpty', [], ['e'], { dtype: 1 }), onnxNode('SequenceInsert', ['e', 'a'], ['t1']), onnxNode('SequenceInsert', ['t1', 'b', 'z'], ['t']), cat('t')],
      abc, out, abcFeeds(), [i64('z', [0], [])]);
    const seq3 = onnxNode('SequenceConstruct', ['a', 'b', 'c'], ['s']);
    await check([seq3, onnxNode('SequenceErase', ['s'], ['t']), cat('t')], abc, out, abcFeeds());
    for (const pos of [0, 1, -1, -3]) {
      await check([seq3, onnxNode('SequenceErase', ['s', 'p'], ['t']), cat('t')], [...abc, { name: 'p', dims: [], dtype: 'int64' }], out, [...abcFeeds(), i64('p', [pos], [])]);
    }
  });

  it('ConcatFromSequence along every axis, with and without a new axis', async () => {
    const seq = onnxNode('SequenceConstruct', ['a', 'b', 'c'], ['s']);
    for (const axis of [0, 1, -1]) await check([seq, onnxNode('ConcatFromSequence', ['s'], ['y'], { axis })], abc, [{ name: 'y', dims: [] }], abcFeeds());
    for (const axis of [0, 1, 2, -1, -3]) await check([seq, onnxNode('ConcatFromSequence', ['s'], ['y'], { axis, new_axis: 1 })], abc, [{ name: 'y', dims: [] }], abcFeeds());
  });

  it('SplitToSequence: chunks of one (keepdims 0/1), constant and run-time split sizes', async () => {
    const x: IoSpec[] = [{ name: 'x', dims: [4, 6] }];
    const feed = (): Tensor[] => [rand('x', [4, 6], 5)];
    const cat = onnxNode('ConcatFromSequence', ['s'], ['y'], { axis: 0, new_axis: 1 });
    for (const axis of [0, 1, -1]) {
      for (const keepdims of [0, 1]) await check([onnxNode('SplitToSequence', ['x'], ['s'], { axis, keepdims }), cat], x, [{ name: 'y', dims: [] }], feed());
    }
    for (const [axis, split] of [[0, i64('sp', [2], [])], [1, i64('sp', [3], [])], [1, i64('sp', [2, 2, 2])], [0, i64('sp', [1, 1, 1, 1])]] as const) {
      await check([onnxNode('SplitToSequence', ['x', 'sp'], ['s'], { axis }), cat], x, [{ name: 'y', dims: [] }], feed(), [split]);
    }
    // Run-time scalar split, and the sequence length that follows from it.
    const nodes = [onnxNode('SplitToSequence', ['x', 'sp'], ['s'], { axis: 1 }), cat, onnxNode('SequenceLength', ['s'], ['n'])];
    for (const sp of [1, 2, 3, 6]) {
      await check(nodes, [...x, { name: 'sp', dims: [], dtype: 'int64' }], [{ name: 'y', dims: [] }, { name: 'n', dims: [], dtype: 'int64' }], [...feed(), i64('sp', [sp], [])]);
    }
  });

  it('a sequence graph output is the elements stacked on axis 0', async () => {
    const seqOut = create(ValueInfoProtoSchema, {
      name: 's',
      type: create(TypeProtoSchema, { value: { case: 'sequenceType', value: create(TypeProto_SequenceSchema, { elemType: tensorValueInfo('e', [2, 3]).type! }) } }),
    });
    const proto = create(ModelProtoSchema, {
      irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })],
      graph: create(GraphProtoSchema, { name: 'g', node: [onnxNode('SequenceConstruct', ['a', 'b'], ['s0']), onnxNode('SequenceInsert', ['s0', 'c', 'p'], ['s'])], input: abc.map((i) => tensorValueInfo(i.name, i.dims)), output: [seqOut], initializer: [] }),
    });
    proto.graph!.initializer.push(...[]);
    const model = decodeOnnx(toBinary(ModelProtoSchema, proto), { path: 'seq.onnx' });
    model.proto.graph!.node[1]!.input[2] = '';
    const res = await onnxToTf(model, { constants: true });
    expect(res.report.ioForms['s']).toContain('stacked on a new axis 0');
    const feeds = abcFeeds();
    const got = (await runTf(res, feeds)).get('s')!;
    expect(got.shape).toEqual([3, 2, 3]);
    expect(nums(got)).toEqual(feeds.flatMap((t) => nums(t)));
  });

  it('refuses elements of different shapes, uneven splits and an empty sequence of unknown element shape', async () => {
    let e = await refusal([onnxNode('SequenceConstruct', ['a', 'd'], ['s']), onnxNode('ConcatFromSequence', ['s'], ['y'], { axis: 0 })],
      [{ name: 'a', dims: [2, 3] }, { name: 'd', dims: [1, 3] }], [{ name: 'y', dims: [] }]);
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toContain('SequenceConstruct of tensors whose shapes differ');
    e = await refusal([onnxNode('SplitToSequence', ['x', 'sp'], ['s'], { axis: 1 }), onnxNode('ConcatFromSequence', ['s'], ['y'], { axis: 0 })],
      [{ name: 'x', dims: [4, 6] }], [{ name: 'y', dims: [] }], [i64('sp', [2, 4])]);
    expect(e.message).toContain('SplitToSequence into chunks of different sizes [2,4]');
    e = await refusal([onnxNode('SplitToSequence', ['x', 'sp'], ['s'], { axis: 1 }), onnxNode('ConcatFromSequence', ['s'], ['y'], { axis: 0 })],
      [{ name: 'x', dims: [4, 6] }], [{ name: 'y', dims: [] }], [i64('sp', [4], [])]);
    expect(e.message).toContain('SplitToSequence of 6 into chunks of 4');
    e = await refusal([onnxNode('SplitToSequence', ['x', 'sp'], ['s'], { axis: 1 }), onnxNode('ConcatFromSequence', ['s'], ['y'], { axis: 0 })],
      [{ name: 'x', dims: [4, 6] }, { name: 'sp', dims: [2], dtype: 'int64' }], [{ name: 'y', dims: [] }]);
    expect(e.message).toContain('run-time split sizes (a list)');
    e = await refusal([onnxNode('SequenceEmpty', [], ['s']), onnxNode('ConcatFromSequence', ['s'], ['y'], { axis: 0 })], [], [{ name: 'y', dims: [] }]);
    expect(e.message).toContain('ConcatFromSequence of an empty sequence of unknown element shape');
    e = await refusal([onnxNode('SequenceConstruct', ['a', 'b'], ['s']), onnxNode('Relu', ['s'], ['y'])], abc.slice(0, 2), [{ name: 'y', dims: [] }]);
    expect(e.message).toContain("Relu on sequence 's'");
    e = await refusal([onnxNode('SequenceEmpty', [], ['s'], { dtype: 999 }), onnxNode('SequenceLength', ['s'], ['y'])], [], [{ name: 'y', dims: [], dtype: 'int64' }]);
    expect(e.code).toBe('E_DTYPE');
    e = await refusal([onnxNode('SequenceEmpty', [], ['s']), onnxNode('SequenceAt', ['s', 'p'], ['y'])], [], [{ name: 'y', dims: [] }], [i64('p', [0], [])]);
    expect(e.code).toBe('E_MALFORMED');
    expect(e.message).toContain('SequenceAt on an empty sequence');
  });
});

describe('Optional', () => {
  it('is not converted: every Optional op is listed as unsupported up front', async () => {
    const m = buildModel([onnxNode('Optional', ['a'], ['o']), onnxNode('OptionalGetElement', ['o'], ['y'])], [{ name: 'a', dims: [2] }], [{ name: 'y', dims: [2] }]);
    await expect(onnxToTf(m.model, { constants: true })).rejects.toThrow(/E_UNSUPPORTED: cannot convert to TensorFlow: unsupported ops (Optional ×1, OptionalGetElement ×1|OptionalGetElement ×1, Optional ×1)/);
  });
});
