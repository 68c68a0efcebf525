/**
 * LSTM / GRU / RNN → unrolled TF graphs, run in TF.js and compared with onnxruntime on random
 * weights (float32 within 1e-4), plus the ONNX node tests of the three ops.
 */
import '../../src/convert/onnx-tf/handlers/rnn.js';
import { resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType, type AttributeProto } from 'onnx-buf';
import { afterAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/core/tensor.js';
import { attr as tfAttr, node as tfNode } from '../../src/formats/savedmodel/build.js';
import { GraphDefSchema } from '../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { tensorProtoOf } from '../../src/convert/onnx-tf/tf-attr.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { runConformance } from '../../src/bench/conformance.js';
import { buildModel, compare, maxDiff, onnxNode as N, rand, runOrt, runTf, tensorOf, type IoSpec } from './onnx-tf-helpers.js';

type Kind = 'LSTM' | 'GRU' | 'RNN';
const GATES: Record<Kind, number> = { LSTM: 4, GRU: 3, RNN: 1 };
const TOL = 1e-4;
const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

interface Spec {
  kind: Kind;
  direction?: 'forward' | 'reverse' | 'bidirectional';
  seq?: number;
  batch?: number;
  input?: number;
  hidden?: number;
  bias?: boolean;
  /** initial_h (and initial_c for LSTM) as graph inputs. */
  init?: boolean;
  peepholes?: boolean;
  attrs?: Record<string, number | string | { f: number } | { floats: number[] }>;
  activations?: string[];
  /** W and R as graph inputs instead of initializers. */
  runtimeWeights?: boolean;
  /** sequence_lens: a constant, or `{ input }` values fed at run time. */
  lens?: number[] | { input: number[] };
  /** Which outputs the node lists ('' = omitted). */
  outputs?: string[];
  opset?: number;
  /** layout = 1 (batch-major); the oracle is the layout-0 node between Transposes (onnxruntime has no layout 1). */
  layout1?: boolean;
  seed?: number;
  /** X (and the states) declared with a symbolic batch dim. */
  dynBatch?: boolean;
  /** Leave hidden_size out: it comes from R's shape. */
  noHiddenAttr?: boolean;
}

interface Built { m: ReturnType<typeof buildModel>; feeds: Tensor[]; oracle?: ReturnType<typeof buildModel> }

function strings(name: string, vals: string[]): AttributeProto {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRINGS, strings: vals.map((v) => new TextEncoder().encode(v)) });
}

function build(s: Spec): Built {
  const D = s.direction === 'bidirectional' ? 2 : 1;
  const S = s.seq ?? 7;
  const Bt = s.batch ?? 3;
  const I = s.input ?? 5;
  const H = s.hidden ?? 4;
  const G = GATES[s.kind];
  const seed = s.seed ?? 1;
  const lstm = s.kind === 'LSTM';
  const opset = s.opset ?? 14;
  const inits: Tensor[] = [];
  const inputs: IoSpec[] = [];
  const feeds: Tensor[] = [];
  const feed = (t: Tensor): void => {
    const dims = s.dynBatch && ['X', 'h0', 'c0', 'lens'].includes(t.name) ? t.shape.map((d, i) => (i === (t.name === 'X' ? (s.layout1 ? 0 : 1) : t.name === 'lens' ? 0 : s.layout1 ? 0 : 1) ? 'batch' : d)) : t.shape;
    inputs.push({ name: t.name, dims, dtype: t.dtype });
    feeds.push(t);
  };
  const x = rand('X', s.layout1 ? [Bt, S, I] : [S, Bt, I], seed);
  feed(x);
  const w = rand('W', [D, G * H, I], seed + 1);
  const r = rand('R', [D, G * H, H], seed + 2);
  if (s.runtimeWeights) { feed(w); feed(r); } else inits.push(w, r);
  const names = ['X', 'W', 'R'];
  const opt = (name: string, t: Tensor | undefined, asInput: boolean): void => {
    names.push(t ? name : '');
    if (!t) return;
    if (asInput) feed(t); else inits.push(t);
  };
  opt('B', s.bias ? rand('B', [D, 2 * G * H], seed + 3) : undefined, false);
  if (s.lens) {
    const vals = Array.isArray(s.lens) ? s.lens : s.lens.input;
    opt('lens', tensorOf('lens', 'int32', [Bt], vals), !Array.isArray(s.lens));
  } else names.push('');
  const state = (name: string, k: number): Tensor | undefined => (s.init ? rand(name, s.layout1 ? [Bt, D, H] : [D, Bt, H], seed + k) : undefined);
  opt('h0', state('h0', 4), true);
  if (lstm) {
    opt('c0', state('c0', 5), true);
    opt('P', s.peepholes ? rand('P', [D, 3 * H], seed + 6) : undefined, false);
  }
  while (names.length && names[names.length - 1] === '') names.pop();
  const outs = s.outputs ?? (lstm ? ['Y', 'Y_h', 'Y_c'] : ['Y', 'Y_h']);
  const attrs = { ...(s.noHiddenAttr ? {} : { hidden_size: H }), ...(s.direction ? { direction: s.direction } : {}), ...(s.attrs ?? {}) };
  const outSpecs = (l1: boolean): IoSpec[] => outs.filter((o) => o).map((o) => ({ name: o, dims: o === 'Y' ? (l1 ? [Bt, S, D, H] : [S, D, Bt, H]) : l1 ? [Bt, D, H] : [D, Bt, H] }));
  const node = (ins: string[], o: string[], layout: number) => {
    const n = N(s.kind, ins, o, layout ? { ...attrs, layout } : attrs);
    if (s.activations) n.attribute.push(strings('activations', s.activations));
    return n;
  };
  const m = buildModel([node(names, outs, s.layout1 ? 1 : 0)], inputs, outSpecs(!!s.layout1), inits, opset);
  if (!s.layout1) return { m, feeds };
  // The same computation in layout 0 between Transposes, for onnxruntime.
  const pre: ReturnType<typeof N>[] = [];
  const ins = names.map((n) => {
    if (n === 'X') { pre.push(N('Transpose', ['X'], ['X_t'], { perm: [1, 0, 2] })); return 'X_t'; }
    if (n === 'h0' || n === 'c0') { pre.push(N('Transpose', [n], [`${n}_t`], { perm: [1, 0, 2] })); return `${n}_t`; }
    return n;
  });
  const inner = outs.map((o) => (o ? `${o}_0` : ''));
  const post = outs.filter((o) => o).map((o) => N('Transpose', [`${o}_0`], [o], { perm: o === 'Y' ? [2, 0, 1, 3] : [1, 0, 2] }));
  const oracle = buildModel([...pre, node(ins, inner, 0), ...post], inputs, outSpecs(true), inits, opset);
  return { m, feeds, oracle };
}

const results: Array<{ name: string; diff: number }> = [];

async function check(name: string, s: Spec): Promise<Record<string, number>> {
  const b = build(s);
  let diffs: Record<string, number>;
  // onnxruntime needs hidden_size: the oracle is the same node with it.
  const oracle = b.oracle ?? (s.noHiddenAttr ? build({ ...s, noHiddenAttr: false }).m : undefined);
  if (oracle) {
    const res = await onnxToTf(b.m.model, { constants: true });
    const want = await runOrt(oracle.bytes, b.feeds);
    const got = await runTf(res, b.feeds);
    diffs = {};
    for (const [k, w] of want) diffs[k] = maxDiff(got.get(k)!, w);
  } else {
    diffs = (await compare(b.m, b.feeds)).diffs;
  }
  const outs = (s.outputs ?? (s.kind === 'LSTM' ? ['Y', 'Y_h', 'Y_c'] : ['Y', 'Y_h'])).filter((o) => o);
  expect(Object.keys(diffs).sort()).toEqual([...outs].sort());
  const worst = Math.max(...Object.values(diffs));
  results.push({ name, diff: worst });
  for (const [k, v] of Object.entries(diffs)) expect(v, `${name} ${k}`).toBeLessThanOrEqual(TOL);
  return diffs;
}

afterAll(() => {
  if (!results.length) return;
  for (const op of ['LSTM', 'GRU', 'RNN']) {
    const mine = results.filter((r) => r.name.startsWith(op));
    const worst = mine.reduce((p, q) => (q.diff > p.diff ? q : p));
    console.log(`${op}: ${mine.length} configurations vs onnxruntime, worst max-abs ${worst.diff.toExponential(2)} (${worst.name})`);
  }
});

describe('LSTM / GRU / RNN vs onnxruntime', () => {
  const kinds: Kind[] = ['LSTM', 'GRU', 'RNN'];
  const dirs = ['forward', 'reverse', 'bidirectional'] as const;
  for (const kind of kinds) {
    for (const direction of dirs) {
      for (const full of [false, true]) {
        // Alternate batch 1/3 and seq 1/7 across the grid so each op meets every size.
        const batch = full ? 3 : direction === 'reverse' ? 3 : 1;
        const seq = direction === 'forward' && !full ? 1 : 7;
        const name = `${kind} ${direction}${full ? ' + B + initial states' : ''} (batch ${batch}, seq ${seq})`;
        it(name, async () => {
          await check(name, { kind, direction, bias: full, init: full, batch, seq, seed: 7 + kinds.indexOf(kind) * 10 + dirs.indexOf(direction), attrs: kind === 'GRU' && full ? { linear_before_reset: 1 } : {} });
        });
      }
    }
  }

  it('LSTM peepholes, input_forget, clip (bidirectional)', async () => {
    await check('LSTM peepholes', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, peepholes: true, seed: 41 });
    await check('LSTM peepholes no initial', { kind: 'LSTM', direction: 'forward', bias: true, peepholes: true, seed: 42 });
    await check('LSTM input_forget', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, peepholes: true, attrs: { input_forget: 1 }, seed: 43 });
    await check('LSTM clip', { kind: 'LSTM', direction: 'reverse', bias: true, init: true, attrs: { clip: { f: 0.5 } }, seed: 44 });
  });

  it('GRU linear_before_reset 0 and 1, with and without initial state, clip', async () => {
    for (const lbr of [0, 1]) {
      await check(`GRU lbr ${lbr}`, { kind: 'GRU', direction: 'bidirectional', bias: true, init: true, attrs: { linear_before_reset: lbr }, seed: 50 + lbr });
      await check(`GRU lbr ${lbr} no initial`, { kind: 'GRU', direction: 'forward', bias: true, attrs: { linear_before_reset: lbr }, seed: 52 + lbr });
      await check(`GRU lbr ${lbr} clip`, { kind: 'GRU', direction: 'reverse', bias: true, init: true, attrs: { linear_before_reset: lbr, clip: { f: 0.3 } }, seed: 54 + lbr });
    }
  });

  it('RNN Relu, clip, and every other activation with alpha/beta', async () => {
    await check('RNN Relu', { kind: 'RNN', direction: 'bidirectional', bias: true, init: true, activations: ['Relu', 'Relu'], seed: 60 });
    await check('LSTM per-direction activations', { kind: 'LSTM', direction: 'bidirectional', bias: true, activations: ['Sigmoid', 'Relu', 'Softsign', 'HardSigmoid', 'Tanh', 'Tanh'], seed: 61 });
    await check('RNN clip', { kind: 'RNN', direction: 'forward', bias: true, init: true, attrs: { clip: { f: 0.2 } }, seed: 62 });
    const acts: Array<[string, number[], number[]]> = [
      ['Affine', [0.7], [0.1]], ['LeakyRelu', [0.2], []], ['ThresholdedRelu', [0.1], []], ['ScaledTanh', [1.5], [0.8]],
      ['HardSigmoid', [0.3], [0.4]], ['HardSigmoid', [], []], ['Elu', [0.6], []], ['Elu', [], []], ['Softsign', [], []], ['Softplus', [], []], ['Sigmoid', [], []], ['LeakyRelu', [], []],
    ];
    for (const [act, al, be] of acts) {
      await check(`RNN ${act} α${al} β${be}`, { kind: 'RNN', bias: true, init: true, activations: [act], attrs: { ...(al.length ? { activation_alpha: { floats: al } } : {}), ...(be.length ? { activation_beta: { floats: be } } : {}) }, seed: 63 });
    }
    // Parameters are consumed in order by the activations that take them: (f, g, h) = (HardSigmoid α β, ScaledTanh α β, LeakyRelu α).
    await check('LSTM HardSigmoid/ScaledTanh/LeakyRelu', { kind: 'LSTM', bias: true, init: true, activations: ['HardSigmoid', 'ScaledTanh', 'LeakyRelu'], attrs: { activation_alpha: { floats: [0.25, 1.2, 0.05] }, activation_beta: { floats: [0.45, 0.9] } }, seed: 70 });
    await check('GRU tanh/relu case-insensitive', { kind: 'GRU', direction: 'bidirectional', bias: true, init: true, activations: ['sigmoid', 'relu', 'HARDSIGMOID', 'Tanh'], seed: 71 });
  });

  it('layout = 1 (batch-major X, Y, states)', async () => {
    await check('LSTM layout 1', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, peepholes: true, layout1: true, seed: 80 });
    await check('GRU layout 1', { kind: 'GRU', direction: 'bidirectional', bias: true, init: true, layout1: true, attrs: { linear_before_reset: 1 }, seed: 81 });
    await check('RNN layout 1', { kind: 'RNN', direction: 'reverse', bias: true, init: true, layout1: true, seed: 82 });
  });

  it('run-time W and R, omitted outputs, opset 7 and 22', async () => {
    await check('LSTM run-time weights', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, runtimeWeights: true, seed: 90 });
    await check('GRU run-time weights lbr 0', { kind: 'GRU', direction: 'bidirectional', bias: true, init: true, runtimeWeights: true, seed: 91 });
    await check('GRU run-time weights lbr 1', { kind: 'GRU', direction: 'reverse', bias: true, init: true, runtimeWeights: true, attrs: { linear_before_reset: 1 }, seed: 92 });
    await check('LSTM only Y_c', { kind: 'LSTM', bias: true, outputs: ['', '', 'Y_c'], seed: 93 });
    await check('GRU only Y_h', { kind: 'GRU', direction: 'bidirectional', outputs: ['', 'Y_h'], seed: 94 });
    await check('LSTM opset 7', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, opset: 7, seed: 95 });
    await check('LSTM symbolic batch', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, dynBatch: true, lens: { input: [3, 7, 5] }, seed: 98 });
    await check('GRU symbolic batch, no initial state', { kind: 'GRU', direction: 'reverse', bias: true, dynBatch: true, seed: 99 });
    await check('GRU without hidden_size', { kind: 'GRU', direction: 'bidirectional', bias: true, init: true, noHiddenAttr: true, seed: 97 });
    await check('RNN opset 22', { kind: 'RNN', direction: 'bidirectional', bias: true, init: true, opset: 22, seed: 96 });
  });

  it('sequence_lens: full-length constant, partial constant and run-time input (masking)', async () => {
    await check('LSTM lens all full', { kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, lens: [7, 7, 7], seed: 100 });
    const b = build({ kind: 'LSTM', lens: [7, 7, 7] });
    const res = await onnxToTf(b.m.model, { constants: true });
    expect(res.graph.node.some((n) => n.op === 'Less')).toBe(false);
    for (const kind of ['LSTM', 'GRU', 'RNN'] as const) {
      await check(`${kind} lens partial`, { kind, direction: 'bidirectional', bias: true, init: true, lens: [7, 3, 5], seed: 101 });
      await check(`${kind} lens run-time`, { kind, direction: 'bidirectional', bias: true, lens: { input: [2, 7, 1] }, seed: 102 });
      await check(`${kind} lens zero`, { kind, direction: 'bidirectional', bias: true, init: true, lens: { input: [0, 7, 4] }, seed: 103 });
    }
  });
});

describe('structure', () => {
  it('hoists the input projection into one MatMul for every step and direction', async () => {
    const b = build({ kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, seq: 7 });
    const res = await onnxToTf(b.m.model, { constants: true });
    const mm = res.graph.node.filter((n) => n.op === 'MatMul');
    // 1 hoisted + one H·Rᵀ per step and direction.
    expect(mm).toHaveLength(1 + 7 * 2);
    const ops = new Set(res.graph.node.map((n) => n.op));
    for (const op of ops) expect(['Placeholder', 'Const', 'Identity', 'MatMul', 'Reshape', 'AddV2', 'Unpack', 'Pack', 'Split', 'Mul', 'Sub', 'Sigmoid', 'Tanh']).toContain(op);
  });

  it('unrolls the 1024-step limit with per-step node names (conversion stays linear)', async () => {
    const b = build({ kind: 'GRU', seq: 1024, batch: 1, input: 3, hidden: 2, bias: true, init: true });
    const t0 = Date.now();
    const res = await onnxToTf(b.m.model, { constants: true });
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(res.graph.node.filter((n) => n.op === 'MatMul')).toHaveLength(1 + 2 * 1024);
    expect(res.graph.node.some((n) => n.name.endsWith('/d0/t1023/MatMul'))).toBe(true);
  });

  it('a longer sequence (64 steps, bidirectional LSTM with masking) still matches', async () => {
    await check('LSTM seq 64', { kind: 'LSTM', direction: 'bidirectional', seq: 64, batch: 2, bias: true, init: true, peepholes: true, lens: { input: [64, 40] }, seed: 120 });
  });

  it('keeps a symbolic batch dim symbolic', async () => {
    const b = build({ kind: 'LSTM', bias: true, init: true, dynBatch: true });
    const res = await onnxToTf(b.m.model, { constants: true });
    expect(res.signature.inputs.X!.shape).toEqual([7, -1, 5]);
    expect(res.signature.inputs.h0!.shape).toEqual([1, -1, 4]);
  });

  it('stores constant weights pre-transposed (no transpose_b on constants)', async () => {
    const b = build({ kind: 'GRU', direction: 'bidirectional', bias: true, init: true });
    const res = await onnxToTf(b.m.model, { constants: true });
    for (const n of res.graph.node.filter((x) => x.op === 'MatMul')) expect(n.attr.transpose_b?.value.value).toBe(false);
  });
});

describe('variables mode', () => {
  it('stores the pre-transposed weight slices as variables, each once, and computes the same', async () => {
    const b = build({ kind: 'LSTM', direction: 'bidirectional', bias: true, init: true, peepholes: true, hidden: 6, seed: 110 });
    const res = await onnxToTf(b.m.model, { constants: false });
    // Wᵀ for both directions, Rᵀ per direction, B and P.
    expect(res.variables.map((v) => [v.name, v.shape]).sort()).toEqual([['B', [2, 48]], ['P', [2, 18]], ['R/rnn_T0_24', [6, 24]], ['R/rnn_T24_48', [6, 24]], ['W/rnn_T0_48', [5, 48]]]);
    // What writeSavedModel adds: each variable read, here as the Const it restores to.
    const reads = await Promise.all(res.variables.map(async (v) => tfNode(`${v.name}/Read/ReadVariableOp`, 'Const', [], { dtype: tfAttr.type(1), value: tfAttr.tensor(tensorProtoOf({ name: v.name, dtype: v.dtype, shape: v.shape, data: await v.load() })) })));
    const graph = create(GraphDefSchema, { ...res.graph, node: [...res.graph.node, ...reads] });
    const want = await runOrt(b.m.bytes, b.feeds);
    const got = await runTf({ ...res, graph }, b.feeds);
    for (const k of ['Y', 'Y_h', 'Y_c']) expect(maxDiff(got.get(k)!, want.get(k)!), k).toBeLessThanOrEqual(TOL);
  });

  it('GRU without linear_before_reset stores Rzr and Rh apart, and no unused full R slice', async () => {
    const b = build({ kind: 'GRU', direction: 'bidirectional', hidden: 6, seed: 111 });
    const res = await onnxToTf(b.m.model, { constants: false });
    expect(res.variables.map((v) => v.name).sort()).toEqual(['R/rnn_T0_12', 'R/rnn_T12_18', 'R/rnn_T18_30', 'R/rnn_T30_36', 'W/rnn_T0_36']);
  });
});

describe('refusals', () => {
  const convert = (s: Spec, mutate?: (m: ReturnType<typeof build>) => void) => {
    const b = build(s);
    mutate?.(b);
    return onnxToTf(b.m.model, { constants: true });
  };

  it('refuses a dynamic sequence length', async () => {
    const W = rand('W', [1, 4, 5], 1);
    const R = rand('R', [1, 4, 4], 2);
    const m = buildModel([N('RNN', ['X', 'W', 'R'], ['Y'], { hidden_size: 4 })], [{ name: 'X', dims: ['seq', 2, 5] }], [{ name: 'Y', dims: ['seq', 1, 2, 4] }], [W, R]);
    await expect(onnxToTf(m.model, { constants: true })).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/dynamic sequence length/) });
  });

  it('refuses more than 1024 steps', async () => {
    await expect(convert({ kind: 'RNN', seq: 1025, batch: 1, input: 2, hidden: 2 })).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/1025 time steps.*limit 1024/) });
  });

  it('refuses an unknown activation and a wrong activation count', async () => {
    await expect(convert({ kind: 'RNN', activations: ['Gelu'] })).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/activation 'Gelu'/) });
    await expect(convert({ kind: 'LSTM', activations: ['Sigmoid', 'Tanh'] })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/activations has 2 entries; LSTM takes 3/) });
    await expect(convert({ kind: 'GRU', direction: 'bidirectional', activations: ['Sigmoid', 'Tanh'] })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/activations has 2 entries; GRU takes 2 per direction \(4 for 2 directions\)/) });
  });

  it('refuses malformed attributes and shapes', async () => {
    await expect(convert({ kind: 'GRU', attrs: { direction: 'sideways' } })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/direction 'sideways'/) });
    await expect(convert({ kind: 'GRU', attrs: { layout: 2 } })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/layout 2/) });
    await expect(convert({ kind: 'GRU', attrs: { hidden_size: 5 } })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/W has shape/) });
    await expect(convert({ kind: 'GRU', attrs: { hidden_size: 1 << 20 } })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/hidden_size 1048576/) });
    await expect(convert({ kind: 'RNN', attrs: { clip: { f: -1 } } })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/clip -1/) });
    const bad = buildModel([N('RNN', ['X', 'W', 'R', '', 'lens'], ['Y'], { hidden_size: 4 })], [{ name: 'X', dims: [7, 3, 5] }], [{ name: 'Y', dims: [7, 1, 3, 4] }],
      [rand('W', [1, 4, 5], 1), rand('R', [1, 4, 4], 2), tensorOf('lens', 'int32', [2], [7, 7])]);
    await expect(onnxToTf(bad.model, { constants: true })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/sequence_lens has shape \[2\], expected \[3\]/) });
    await expect(convert({ kind: 'RNN', seq: 0 })).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/empty sequence/) });
    const m = buildModel([N('RNN', ['X', 'W', 'R'], ['Y'], { hidden_size: 4 })], [{ name: 'X', dims: [3, 2] }], [{ name: 'Y', dims: [3, 1, 2, 4] }], [rand('W', [1, 4, 2], 1), rand('R', [1, 4, 4], 2)]);
    await expect(onnxToTf(m.model, { constants: true })).rejects.toMatchObject({ code: 'E_MALFORMED', message: expect.stringMatching(/X has rank 2/) });
  });

  it('refuses non-float inputs', async () => {
    const m = buildModel([N('RNN', ['X', 'W', 'R'], ['Y'], { hidden_size: 2 })], [{ name: 'X', dims: [3, 1, 2], dtype: 'int32' }], [{ name: 'Y', dims: [3, 1, 1, 2], dtype: 'int32' }],
      [tensorOf('W', 'int32', [1, 2, 2], [1, 2, 3, 4]), tensorOf('R', 'int32', [1, 2, 2], [1, 2, 3, 4])]);
    await expect(onnxToTf(m.model, { constants: true })).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/RNN on int32/) });
  });
});

describe('ONNX node tests', () => {
  it('test_lstm_defaults, test_gru_defaults, test_gru_with_initial_bias, test_simple_rnn_defaults pass', async () => {
    const want = ['test_gru_defaults', 'test_gru_with_initial_bias', 'test_lstm_defaults', 'test_simple_rnn_defaults'];
    const s = await runConformance(NODE_TESTS, (t) => want.includes(t));
    expect(s.results.map((r) => [r.test, r.outcome, r.detail])).toEqual(want.map((t) => [t, 'pass', undefined]));
  });
});
