/**
 * If / Loop / Scan → StatelessIf / StatelessWhile (library functions) or inlined / unrolled bodies,
 * checked against onnxruntime on hand-built models, the ONNX node tests, and a SavedModel round trip.
 */
import '../../src/convert/onnx-tf/handlers/control-flow.js';
import '../../src/convert/onnx-tf/handlers/sequence.js';
import { resolve } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType, GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, type GraphProto, type NodeProto, type ValueInfoProto } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { runConformance } from '../../src/bench/conformance.js';
import { onnxToTf, writeOnnxAsSavedModel } from '../../src/convert/onnx-tf/index.js';
import { ModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { decodeOnnx, type OnnxModel } from '../../src/formats/onnx/read.js';
import { tensorToProto } from '../../src/formats/onnx/tensor.js';
import { freezeSignature, readSavedModel, runSignature } from '../../src/formats/savedmodel/index.js';
import { memoryFolder } from '../formats/savedmodel/memory-folder.js';
import { compare, maxDiff, nums, onnxNode, rand, runOrt, runTf, tensorOf } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');
const F = 1;
const I64 = 7;
const BOOL = 9;

function gattr(name: string, g: GraphProto) {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g });
}

function graph(name: string, nodes: NodeProto[], inputs: ValueInfoProto[], outputs: ValueInfoProto[], inits: Tensor[] = []): GraphProto {
  return create(GraphProtoSchema, { name, node: nodes, input: inputs, output: outputs, initializer: inits.map(tensorToProto) });
}

function withGraphs(n: NodeProto, gs: Record<string, GraphProto>): NodeProto {
  n.attribute.push(...Object.entries(gs).map(([k, g]) => gattr(k, g)));
  return n;
}

function model(g: GraphProto, opset = 17): { model: OnnxModel; bytes: Uint8Array } {
  const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })], graph: g });
  const bytes = toBinary(ModelProtoSchema, proto);
  return { model: decodeOnnx(bytes, { path: 'cf.onnx' }), bytes };
}

const vi = tensorValueInfo;
const scalarBool = (v: boolean, name = 'c'): Tensor => tensorOf(name, 'bool', [], [v ? 1 : 0]);
const scalarI64 = (v: number, name: string): Tensor => tensorOf(name, 'int64', [], [v]);

async function refusal(m: { model: OnnxModel }): Promise<ModelsmithError> {
  const e = await onnxToTf(m.model, { constants: true }).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ModelsmithError);
  return e as ModelsmithError;
}

/** If(c) then x·W + 1 else relu(x) − b, W a 5×5 weight (a bundle variable without `constants`). */
function ifModel(): { model: OnnxModel; bytes: Uint8Array } {
  const thenG = graph('then', [onnxNode('MatMul', ['x', 'W'], ['xw']), onnxNode('Add', ['xw', 'one'], ['t_out'])], [], [vi('t_out', [2, 5])], [tensorOf('one', 'float32', [], [1])]);
  const elseG = graph('else', [onnxNode('Relu', ['x'], ['r']), onnxNode('Sub', ['r', 'b'], ['e_out'])], [], [vi('e_out', [2, 5])]);
  const g = graph('main', [withGraphs(onnxNode('If', ['c'], ['y']), { then_branch: thenG, else_branch: elseG })],
    [vi('c', [], BOOL), vi('x', [2, 5])], [vi('y', [2, 5])], [rand('W', [5, 5], 3), rand('b', [5], 4)]);
  return model(g);
}

describe('If', () => {
  it('a run-time condition becomes StatelessIf over two library functions that capture outer values', async () => {
    const m = ifModel();
    for (const c of [true, false]) {
      const { diffs, res } = await compare(m, [scalarBool(c), rand('x', [2, 5], 7)]);
      expect(diffs['y']).toBeLessThanOrEqual(1e-5);
      const node = res.graph.node.find((n) => n.op === 'StatelessIf')!;
      expect(node).toBeDefined();
      expect(res.graph.library?.function.map((f) => f.signature?.name).sort()).toEqual(['If_y_else', 'If_y_then']);
      // The condition, then x, captured: the branch functions take it as an argument (W and b, known
      // constants, become Consts inside the functions with `constants`).
      expect(node.input.length).toBe(2);
      expect(res.graph.library!.function[0]!.signature!.inputArg.map((x) => x.name)).toEqual(['capture_0']);
      const thenFn = res.graph.library!.function.find((f) => f.signature?.name === 'If_y_then')!;
      // Function bodies use node:outarg:index references.
      expect(thenFn.nodeDef.find((n) => n.op === 'AddV2')!.input[0]).toMatch(/:product:0$/);
      expect(Object.values(thenFn.ret)[0]).toMatch(/:output:0$/);
    }
  });

  it('a constant condition inlines the taken branch (no function)', async () => {
    const thenG = graph('then', [onnxNode('Neg', ['x'], ['t'])], [], [vi('t', [3])]);
    const elseG = graph('else', [onnxNode('Abs', ['x'], ['e'])], [], [vi('e', [3])]);
    const g = graph('main', [
      onnxNode('Constant', [], ['c'], { value: tensorToProto(scalarBool(false, 'cv')) }),
      withGraphs(onnxNode('If', ['c'], ['y']), { then_branch: thenG, else_branch: elseG }),
    ], [vi('x', [3])], [vi('y', [3])]);
    const { diffs, res } = await compare(model(g), [rand('x', [3], 2)]);
    expect(diffs['y']).toBe(0);
    expect(res.graph.node.some((n) => n.op === 'StatelessIf')).toBe(false);
    expect(res.graph.node.some((n) => n.op === 'Abs')).toBe(true);
    expect(res.graph.library).toBeUndefined();
  });

  it('nested Ifs capture through both levels; a one-element [1] condition works', async () => {
    const innerThen = graph('it', [onnxNode('Mul', ['x', 'x'], ['it_o'])], [], [vi('it_o', [4])]);
    const innerElse = graph('ie', [onnxNode('Add', ['x', 'x'], ['ie_o'])], [], [vi('ie_o', [4])]);
    const outerThen = graph('ot', [withGraphs(onnxNode('If', ['d'], ['ot_o']), { then_branch: innerThen, else_branch: innerElse })], [], [vi('ot_o', [4])]);
    const outerElse = graph('oe', [onnxNode('Neg', ['x'], ['oe_o'])], [], [vi('oe_o', [4])]);
    const g = graph('main', [withGraphs(onnxNode('If', ['c'], ['y']), { then_branch: outerThen, else_branch: outerElse })],
      [vi('c', [1], BOOL), vi('d', [], BOOL), vi('x', [4])], [vi('y', [4])]);
    const m = model(g);
    for (const [c, d] of [[true, true], [true, false], [false, true]] as const) {
      const { diffs, res } = await compare(m, [tensorOf('c', 'bool', [1], [c ? 1 : 0]), scalarBool(d, 'd'), rand('x', [4], 5)]);
      expect(diffs['y']).toBeLessThanOrEqual(1e-6);
      expect(res.graph.library!.function).toHaveLength(4);
    }
  });

  it('branches with different output counts are malformed', async () => {
    const thenG = graph('then', [onnxNode('Neg', ['x'], ['t'])], [], [vi('t', [3])]);
    const elseG = graph('else', [onnxNode('Abs', ['x'], ['e'])], [], [vi('e', [3]), vi('x', [3])]);
    const g = graph('main', [withGraphs(onnxNode('If', ['c'], ['y']), { then_branch: thenG, else_branch: elseG })], [vi('c', [], BOOL), vi('x', [3])], [vi('y', [3])]);
    const e = await refusal(model(g));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.message).toContain("branch 'else' has 2 outputs");
  });

  it('subgraphs nested beyond the depth cap end in E_LIMIT', async () => {
    const leaf = graph('leaf', [onnxNode('Neg', ['x'], ['l0'])], [], [vi('l0', [1])]);
    let inner = graph('g0', [onnxNode('Neg', ['x'], ['o0'])], [], [vi('o0', [1])]);
    for (let k = 1; k <= 17; k++) {
      inner = graph(`g${k}`, [withGraphs(onnxNode('If', ['c'], [`o${k}`]), { then_branch: inner, else_branch: leaf })], [], [vi(`o${k}`, [1])]);
    }
    const g = graph('main', [withGraphs(onnxNode('If', ['c'], ['y']), { then_branch: inner, else_branch: leaf })], [vi('c', [], BOOL), vi('x', [1])], [vi('y', [1])]);
    const e = await refusal(model(g));
    expect(e.code).toBe('E_LIMIT');
    expect(e.message).toContain('nested deeper than 16');
  });

  it('an unsupported op inside a branch is listed up front', async () => {
    const thenG = graph('then', [onnxNode('NoSuchOp', ['x'], ['t'])], [], [vi('t', [3])]);
    const elseG = graph('else', [onnxNode('Abs', ['x'], ['e'])], [], [vi('e', [3])]);
    const g = graph('main', [withGraphs(onnxNode('If', ['c'], ['y']), { then_branch: thenG, else_branch: elseG })], [vi('c', [], BOOL), vi('x', [3])], [vi('y', [3])]);
    const e = await refusal(model(g));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toContain('unsupported ops NoSuchOp ×1');
  });
});

/** Loop body: y = y + x·(i+1) (x captured), scan output y, exit when sum(y) > limit. */
function loopModel(withCond: boolean, tripDims: number[] = []): { model: OnnxModel; bytes: Uint8Array } {
  const body = graph('body', [
    onnxNode('Cast', ['i'], ['fi'], { to: F }),
    onnxNode('Add', ['fi', 'one'], ['fi1']),
    onnxNode('Mul', ['x', 'fi1'], ['step']),
    onnxNode('Add', ['y_in', 'step'], ['y_out']),
    onnxNode('ReduceSum', ['y_out'], ['s'], { keepdims: 0 }),
    onnxNode('Less', ['s', 'limit'], ['c_out']),
    onnxNode('Identity', ['y_out'], ['scan']),
  ], [vi('i', [], I64), vi('c_in', [], BOOL), vi('y_in', [3])], [vi('c_out', [], BOOL), vi('y_out', [3]), vi('scan', [3])],
  [tensorOf('one', 'float32', [], [1])]);
  const g = graph('main', [withGraphs(onnxNode('Loop', ['M', withCond ? 'c' : '', 'y0'], ['y', 'ys']), { body })],
    [vi('M', tripDims, I64), ...(withCond ? [vi('c', [], BOOL)] : []), vi('y0', [3]), vi('x', [3]), vi('limit', [])], [vi('y', [3]), vi('ys', ['n', 3])]);
  return model(g);
}

describe('Loop', () => {
  it('becomes StatelessWhile with loop-carried values, a scan output and an early exit', async () => {
    const m = loopModel(true);
    for (const [trips, limit] of [[4, 100], [6, 5], [0, 100]] as const) {
      const feeds = [scalarI64(trips, 'M'), scalarBool(true), rand('y0', [3], 1, 'float32', 0, 1), rand('x', [3], 2, 'float32', 0, 1), tensorOf('limit', 'float32', [], [limit])];
      const { diffs, res } = await compare(m, feeds);
      expect(diffs['y']).toBeLessThanOrEqual(1e-5);
      expect(diffs['ys']).toBeLessThanOrEqual(1e-5);
      expect(res.graph.node.filter((n) => n.op === 'StatelessWhile')).toHaveLength(1);
      expect(res.graph.library!.function.map((f) => f.signature?.name).sort()).toEqual(['Loop_y_body', 'Loop_y_cond']);
    }
    // The early exit really happened: fewer rows than trips.
    const got = await runOrt(m.bytes, [scalarI64(6, 'M'), scalarBool(true), rand('y0', [3], 1, 'float32', 0, 1), rand('x', [3], 2, 'float32', 0, 1), tensorOf('limit', 'float32', [], [5])]);
    expect(got.get('ys')!.shape[0]).toBeLessThan(6);
  });

  it('runs without a condition input and with a one-element trip count', async () => {
    const m = loopModel(false, [1]);
    const { diffs } = await compare(m, [tensorOf('M', 'int64', [1], [3]), rand('y0', [3], 3), rand('x', [3], 4), tensorOf('limit', 'float32', [], [1e9])]);
    expect(diffs['y']).toBeLessThanOrEqual(1e-5);
    expect(diffs['ys']).toBeLessThanOrEqual(1e-5);
  });

  it('a constant trip count with a constant-true condition is unrolled', async () => {
    const body = graph('body', [
      onnxNode('Cast', ['i'], ['fi'], { to: F }),
      onnxNode('Mul', ['y_in', 'fi'], ['p']),
      onnxNode('Add', ['p', 'x'], ['y_out']),
      onnxNode('Identity', ['c_in'], ['c_out']),
    ], [vi('i', [], I64), vi('c_in', [], BOOL), vi('y_in', [2])], [vi('c_out', [], BOOL), vi('y_out', [2]), vi('y_out', [2])]);
    const make = (trips: number) => graph('main', [withGraphs(onnxNode('Loop', ['M', 'c', 'x'], ['y', 'ys']), { body })], [vi('x', [2])], [vi('y', [2]), vi('ys', [trips, 2])],
      [scalarI64(trips, 'M'), scalarBool(true)]);
    const { diffs, res } = await compare(model(make(4)), [rand('x', [2], 9)]);
    expect(diffs['y']).toBeLessThanOrEqual(1e-5);
    expect(diffs['ys']).toBeLessThanOrEqual(1e-5);
    expect(res.graph.node.some((n) => n.op === 'StatelessWhile')).toBe(false);
    expect(res.graph.library).toBeUndefined();
    // Zero trips: the scan output's element shape comes from the body, through the While form.
    const zero = await compare(model(make(0)), [rand('x', [2], 9)]);
    expect(zero.diffs['y']).toBe(0);
    expect(zero.diffs['ys']).toBe(0);
    expect(zero.res.graph.node.some((n) => n.op === 'StatelessWhile')).toBe(true);
  });

  it('unrolled work counts against maxNodes (E_LIMIT), so nested constant loops cannot blow up', async () => {
    const chain = Array.from({ length: 20 }, (_, k) => onnxNode('Neg', [k === 0 ? 'y_in' : `n${k - 1}`], [k === 19 ? 'y_out' : `n${k}`]));
    const body = graph('body', [...chain, onnxNode('Identity', ['c_in'], ['c_out'])], [vi('i', [], I64), vi('c_in', [], BOOL), vi('y_in', [2])], [vi('c_out', [], BOOL), vi('y_out', [2])]);
    const g = graph('main', [withGraphs(onnxNode('Loop', ['M', ''], ['y']), { body })], [vi('x', [2])], [vi('y', [2])], [scalarI64(50, 'M')]);
    g.node[0]!.input[2] = 'x';
    const m = model(g);
    const e = await onnxToTf(m.model, { constants: true, maxNodes: 300 }).catch((x: unknown) => x as ModelsmithError);
    expect((e as ModelsmithError).code).toBe('E_LIMIT');
    expect((e as ModelsmithError).message).toContain('more than 300 nodes to convert');
    // Within the default budget the same loop unrolls and matches (50 negations: identity).
    const { diffs, res } = await compare(m, [rand('x', [2], 4)]);
    expect(diffs['y']).toBe(0);
    expect(res.graph.node.some((n) => n.op === 'StatelessWhile')).toBe(false);
  });

  it('a loop variable that grows is relaxed to an unknown dim; unused copies of nested functions are dropped', async () => {
    const thenG = graph('then', [onnxNode('Neg', ['x'], ['t'])], [], [vi('t', [1])]);
    const elseG = graph('else', [onnxNode('Abs', ['x'], ['e'])], [], [vi('e', [1])]);
    const body = graph('body', [
      withGraphs(onnxNode('If', ['flag'], ['piece']), { then_branch: thenG, else_branch: elseG }),
      onnxNode('Concat', ['y_in', 'piece'], ['y_out'], { axis: 0 }),
      onnxNode('Identity', ['c_in'], ['c_out']),
    ], [vi('i', [], I64), vi('c_in', [], BOOL), vi('y_in', [])], [vi('c_out', [], BOOL), vi('y_out', [])]);
    body.input[2]!.type = undefined;
    body.output[1]!.type = undefined;
    const g = graph('main', [withGraphs(onnxNode('Loop', ['M', '', 'y0'], ['y']), { body })], [vi('M', [], I64), vi('flag', [], BOOL), vi('x', [1]), vi('y0', [2])], [vi('y', ['n'])]);
    for (const flag of [true, false]) {
      const { diffs, res } = await compare(model(g), [scalarI64(3, 'M'), scalarBool(flag, 'flag'), rand('x', [1], 2), rand('y0', [2], 3)]);
      expect(diffs['y']).toBe(0);
      expect(res.graph.library!.function.map((f) => f.signature?.name).sort()).toEqual(['If_piece_else', 'If_piece_then', 'Loop_y_body', 'Loop_y_cond']);
    }
  });

  it('refuses a scan output whose element shape is not static', async () => {
    const body = graph('body', [onnxNode('Identity', ['c_in'], ['c_out']), onnxNode('Identity', ['x'], ['scan'])],
      [vi('i', [], I64), vi('c_in', [], BOOL)], [vi('c_out', [], BOOL), vi('scan', ['k'])]);
    const g = graph('main', [withGraphs(onnxNode('Loop', ['M', 'c'], ['ys']), { body })], [vi('M', [], I64), vi('c', [], BOOL), vi('x', ['k'])], [vi('ys', ['n', 'k'])]);
    const e = await refusal(model(g));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toContain('Loop scan output 0 needs a static element shape');
  });

  it('a body with the wrong number of inputs is malformed', async () => {
    const body = graph('body', [onnxNode('Identity', ['c_in'], ['c_out'])], [vi('i', [], I64), vi('c_in', [], BOOL), vi('extra', [1])], [vi('c_out', [], BOOL)]);
    const g = graph('main', [withGraphs(onnxNode('Loop', ['M', 'c'], []), { body }), onnxNode('Identity', ['M'], ['y'])], [vi('M', [], I64), vi('c', [], BOOL)], [vi('y', [], I64)]);
    const e = await refusal(model(g));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.message).toContain("body 'body' has 3 inputs, expected 2");
  });
});

describe('Scan', () => {
  const body = graph('body', [
    onnxNode('Add', ['s_in', 'a'], ['s_out']),
    onnxNode('Mul', ['s_out', 'b'], ['o1']),
    onnxNode('Sub', ['a', 'w'], ['o2']),
  ], [vi('s_in', [3]), vi('a', [3]), vi('b', [3])], [vi('s_out', [3]), vi('o1', [3]), vi('o2', [3])]);
  const configs: Array<Record<string, number[]>> = [
    {},
    { scan_input_axes: [1, 0], scan_input_directions: [1, 0] },
    { scan_output_axes: [1, -1], scan_output_directions: [1, 0] },
    { scan_input_axes: [-1, 0], scan_input_directions: [0, 1], scan_output_axes: [0, 1], scan_output_directions: [0, 1] },
  ];

  /** Runs every config with scanned length `len` (declared as `declared`: a number or a dim name). */
  async function scanCase(len: number, declared: number | string): Promise<string[]> {
    const ops: string[] = [];
    for (const cfg of configs) {
      const transposed = cfg['scan_input_axes']?.[0] === 1 || cfg['scan_input_axes']?.[0] === -1;
      const xDims = transposed ? [3, len] : [len, 3];
      const n = withGraphs(onnxNode('Scan', ['s0', 'xa', 'xb'], ['s', 'y1', 'y2'], { num_scan_inputs: 2, ...cfg }), { body });
      const g = graph('main', [n], [vi('s0', [3]), vi('xa', transposed ? [3, declared] : [declared, 3]), vi('xb', [declared, 3])], [vi('s', [3]), vi('y1', []), vi('y2', [])], [rand('w', [3], 8)]);
      // Outputs declared without dims: onnxruntime reports what it computes.
      g.output.forEach((o) => { if (o.type?.value.case === 'tensorType') o.type.value.value.shape = undefined; });
      const { diffs, res } = await compare(model(g), [rand('s0', [3], 1), rand('xa', xDims, 2), rand('xb', [len, 3], 3)]);
      for (const k of ['s', 'y1', 'y2']) expect(diffs[k], `${JSON.stringify(cfg)} ${k}`).toBeLessThanOrEqual(1e-4);
      ops.push(...res.graph.node.map((x) => x.op));
    }
    return ops;
  }

  it('is unrolled over a static length, across input/output axes and directions', async () => {
    const ops = await scanCase(4, 4);
    expect(ops).not.toContain('StatelessWhile');
    expect(ops).toContain('Pack');
  });

  it('becomes StatelessWhile over a run-time length or one too long to unroll (zero steps included)', async () => {
    for (const [len, declared] of [[5, 'n'], [70, 70]] as const) {
      const ops = await scanCase(len, declared);
      expect(ops.filter((o) => o === 'StatelessWhile')).toHaveLength(configs.length);
    }
    // Zero steps (onnxruntime refuses them): the state passes through, the outputs are empty.
    const n = withGraphs(onnxNode('Scan', ['s0', 'xa', 'xb'], ['s', 'y1', 'y2'], { num_scan_inputs: 2 }), { body });
    const g = graph('main', [n], [vi('s0', [3]), vi('xa', ['n', 3]), vi('xb', ['n', 3])], [vi('s', [3]), vi('y1', ['n', 3]), vi('y2', ['n', 3])], [rand('w', [3], 8)]);
    const res = await onnxToTf(model(g).model, { constants: true });
    const s0 = rand('s0', [3], 1);
    const got = await runTf(res, [s0, tensorOf('xa', 'float32', [0, 3], []), tensorOf('xb', 'float32', [0, 3], [])]);
    expect(nums(got.get('s')!)).toEqual(nums(s0));
    expect(got.get('y1')!.shape).toEqual([0, 3]);
    expect(got.get('y2')!.shape).toEqual([0, 3]);
  });

  it('refuses opset 8 Scan and a While scan output of unknown element shape; malformed axes', async () => {
    const plain = graph('body', [onnxNode('Add', ['s_in', 'a'], ['s_out'])], [vi('s_in', [3]), vi('a', [3])], [vi('s_out', [3])]);
    const g = graph('main', [withGraphs(onnxNode('Scan', ['s0', 'xa'], ['s'], { num_scan_inputs: 1 }), { body: plain })], [vi('s0', [3]), vi('xa', ['n', 3])], [vi('s', [3])]);
    const e8 = await refusal(model(g, 8));
    expect(e8.code).toBe('E_UNSUPPORTED');
    expect(e8.message).toContain('Scan before opset 9');
    const dyn = graph('body', [onnxNode('Identity', ['a'], ['o'])], [vi('a', ['k'])], [vi('o', ['k'])]);
    const gd = graph('main', [withGraphs(onnxNode('Scan', ['xa'], ['y'], { num_scan_inputs: 1 }), { body: dyn })], [vi('xa', ['n', 'k'])], [vi('y', ['n', 'k'])]);
    const ed = await refusal(model(gd));
    expect(ed.code).toBe('E_UNSUPPORTED');
    expect(ed.message).toContain('Scan output 0 needs a static element shape');
    const bad = graph('main', [withGraphs(onnxNode('Scan', ['s0', 'xa'], ['s'], { num_scan_inputs: 1, scan_input_axes: [2] }), { body: plain })], [vi('s0', [3]), vi('xa', [4, 3])], [vi('s', [3])]);
    const em = await refusal(model(bad));
    expect(em.code).toBe('E_MALFORMED');
    expect(em.message).toContain('scan input axis 2 out of range for rank 2');
  });
});

describe('ONNX node tests', () => {
  it('pass for If, Loop, Scan and sequences; the ones needing Optional ops are outside the registry', async () => {
    const PASS = ['test_if', 'test_loop11', 'test_scan9_sum', 'test_scan9_scalar', 'test_range_float_type_positive_delta_expanded',
      'test_range_bfloat16_type_positive_delta_expanded', 'test_split_to_sequence_1', 'test_sequence_map_identity_1_sequence_expanded'];
    const OPTIONAL = ['test_if_opt', 'test_loop16_seq_none', 'test_optional_get_element_tensor', 'test_optional_has_element_empty_no_input_tensor_input'];
    const s = await runConformance(NODE_TESTS, (t) => PASS.includes(t) || OPTIONAL.includes(t));
    const by = Object.fromEntries(s.results.map((r) => [r.test, r]));
    for (const t of PASS) expect(by[t]?.outcome, `${t}: ${by[t]?.detail}`).toBe('pass');
    for (const t of OPTIONAL) expect(by[t]?.outcome, t).toBe('unsupported');
  }, 60_000);
});

describe('SavedModel with functions', () => {
  it('writes the library, reloads, freezes and runs If and Loop like onnxruntime', async () => {
    const { files, out, dir } = memoryFolder();
    const m = ifModel();
    await writeOnnxAsSavedModel(m.model, out);
    // W (25 elements) is a bundle variable the then-branch captures.
    expect(files.has('variables/variables.index')).toBe(true);
    const sm = await readSavedModel(dir, { path: 'if.savedmodel' });
    const frozen = await freezeSignature(sm);
    expect(frozen.graph.library?.function.length).toBe(2);
    for (const c of [true, false]) {
      const feeds = [scalarBool(c), rand('x', [2, 5], 7)];
      const want = await runOrt(m.bytes, feeds);
      const got = await runSignature(sm, Object.fromEntries(feeds.map((t) => [t.name, t])));
      expect(maxDiff(got['y']!, want.get('y')!)).toBeLessThanOrEqual(1e-5);
    }

    files.clear();
    const l = loopModel(true);
    await writeOnnxAsSavedModel(l.model, out);
    const sl = await readSavedModel(dir, { path: 'loop.savedmodel' });
    const feeds = [scalarI64(5, 'M'), scalarBool(true), rand('y0', [3], 1), rand('x', [3], 2), tensorOf('limit', 'float32', [], [100])];
    const want = await runOrt(l.bytes, feeds);
    const got = await runSignature(sl, Object.fromEntries(feeds.map((t) => [t.name, t])));
    expect(maxDiff(got['y']!, want.get('y')!)).toBeLessThanOrEqual(1e-5);
    expect(maxDiff(got['ys']!, want.get('ys')!)).toBeLessThanOrEqual(1e-5);
  });
});
