/**
 * The executor: corpus models run end to end against their reference outputs, the Fashion-MNIST
 * CNN against onnxruntime-node, up-front refusals (unsupported ops listed together, cycles,
 * dangling inputs, bad feeds), value freeing, gradient accumulation and exportModel.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema, AttributeProto_AttributeType as AT, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema, TensorProtoSchema,
  type AttributeProto, type ModelProto, type NodeProto, type TensorProto,
} from 'onnx-buf';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../src/core/errors.js';
import { createEngine, unsupportedOps } from '../../src/engine/engine.js';
import { getOp, registerOp } from '../../src/engine/registry.js';
import type { Value } from '../../src/engine/types.js';
import { fvalue, toValue } from '../../src/engine/values.js';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import { decodeOnnx, onnxModel } from '../../src/formats/onnx/read.js';
import { openModelFile, saveOnnxFile } from '../../src/platform/open.js';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import type { Kernels } from '../../src/kernels/loader.js';
import { closeness, randomValue, testKernels } from './helpers.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus/onnx');
const FIXTURE = resolve(import.meta.dirname, '../fixtures/fashion-mnist');

let K: Kernels;
beforeAll(async () => {
  K = await testKernels();
});

// ------------------------------------------------------------------------------------------------
// in-memory model builders
// ------------------------------------------------------------------------------------------------

type AttrVal = number | number[] | string | { f: number } | TensorProto;

function attr(name: string, v: AttrVal): AttributeProto {
  if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) });
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.map(BigInt) });
  if ('f' in v && typeof v.f === 'number') return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.f });
  return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: v as TensorProto });
}

function node(opType: string, input: string[], output: string[], attrs: Record<string, AttrVal> = {}, name = `${opType}_${output[0]}`, domain = ''): NodeProto {
  return create(NodeProtoSchema, { opType, name, domain, input, output, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
}

function model(nodes: NodeProto[], inputs: [string, (number | string)[]][], outputs: string[], inits: TensorProto[] = [], opset = 17): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: create(GraphProtoSchema, {
      name: 'g',
      node: nodes,
      input: inputs.map(([n, d]) => tensorValueInfo(n, d)),
      output: outputs.map((n) => tensorValueInfo(n, [])),
      initializer: inits,
    }),
  });
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    // The message starts with the code (ModelsmithError formats it so).
    expect((e as Error).message.startsWith((e as ModelsmithError).code)).toBe(true);
    return (e as Error).message;
  }
  return 'no error';
}

// ------------------------------------------------------------------------------------------------
// corpus models end to end
// ------------------------------------------------------------------------------------------------

const ENGINE_ELEM = new Set([1, 6, 7, 9]);

/** Corpus test folders (model.onnx + test_data_set_*) whose ops and I/O types the engine covers. */
function runnableCorpusTests(): { dir: string; name: string }[] {
  const out: { dir: string; name: string }[] = [];
  for (const group of ['node', 'pytorch-converted', 'pytorch-operator', 'simple']) {
    const base = join(CORPUS, group);
    if (!existsSync(base)) continue;
    for (const t of readdirSync(base)) {
      const dir = join(base, t);
      if (!existsSync(join(dir, 'model.onnx'))) continue;
      out.push({ dir, name: `${group}/${t}` });
    }
  }
  return out;
}

async function loadCorpusModel(dir: string, name: string) {
  const m = decodeOnnx(new Uint8Array(await readFile(join(dir, 'model.onnx'))), { path: `${name}/model.onnx` });
  const g = m.proto.graph!;
  const io = [...g.input, ...g.output];
  const typesOk = io.every((vi) => vi.type?.value.case === 'tensorType' && ENGINE_ELEM.has(vi.type.value.value.elemType));
  const initsOk = g.initializer.every((t) => ENGINE_ELEM.has(t.dataType));
  return { m, runnable: typesOk && initsOk && unsupportedOps(m).length === 0 };
}

describe('corpus models through the executor', () => {
  it('every runnable corpus test matches its reference outputs within 1e-4', async () => {
    const ran: string[] = [];
    let values = 0;
    for (const { dir, name } of runnableCorpusTests()) {
      const { m, runnable } = await loadCorpusModel(dir, name);
      if (!runnable) continue;
      const engine = await createEngine(m, { kernels: K });
      const g = m.proto.graph!;
      for (const ds of readdirSync(dir).filter((d) => d.startsWith('test_data_set_'))) {
        const load = async (f: string): Promise<Value> => toValue(tensorFromProtoSync(decodeTensorProto(new Uint8Array(await readFile(join(dir, ds, f))), f)));
        const feeds: Record<string, Value> = {};
        for (let i = 0; i < engine.inputNames.length; i++) feeds[engine.inputNames[i]!] = await load(`input_${i}.pb`);
        const got = engine.run(feeds);
        for (let o = 0; o < g.output.length; o++) {
          const want = await load(`output_${o}.pb`);
          const v = got[g.output[o]!.name]!;
          expect(v.dtype, `${name} output ${o}`).toBe(want.dtype);
          expect(v.dims, `${name} output ${o}`).toEqual(want.dims);
          expect(closeness(Array.from(v.data, Number), Array.from(want.data, Number)), `${name} output ${o}`).toBeLessThanOrEqual(1);
          values += v.data.length;
        }
      }
      ran.push(name);
    }
    console.log(`engine corpus: ${ran.length} models, ${values} output values: ${ran.join(', ')}`);
    // The dense families alone cover at least these; conv/pool/norm add more once they land.
    for (const must of ['node/test_gemm_default_matrix_bias', 'node/test_softmax_example', 'node/test_gather_0', 'pytorch-converted/test_Linear', 'pytorch-operator/test_operator_view']) {
      expect(ran).toContain(must);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Fashion-MNIST CNN against onnxruntime-node
// ------------------------------------------------------------------------------------------------

describe('Fashion-MNIST CNN', () => {
  // Conv/MaxPool come from the conv/pool op family; the test runs as soon as they are registered.
  it.skipIf(!getOp('Conv') || !getOp('MaxPool'))('logits of 64 fixture images match onnxruntime-node within 1e-4', async () => {
    const { loadFixture, inputBatch } = await import('../../src/bench/accuracy.js');
    const fx = await loadFixture(FIXTURE);
    const engine = await createEngine(decodeOnnx(fx.modelBytes, { path: fx.modelPath }), { kernels: K });
    const batch = inputBatch(fx.subset, 0, 64);
    const got = engine.run({ input: toValue(batch) }).logits!;
    expect(got.dims).toEqual([64, 10]);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(fx.modelPath);
    const x = new Float32Array(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength / 4);
    const res = await session.run({ input: new ort.Tensor('float32', x, batch.shape) });
    const want = res.logits!.data as Float32Array;
    expect(closeness(got.data as Float32Array, want)).toBeLessThanOrEqual(1);
    // Same top-1 for every image (the logits are not just close on average).
    for (let i = 0; i < 64; i++) {
      const row = (a: ArrayLike<number>): number => { let b = 0; for (let c = 1; c < 10; c++) if (a[i * 10 + c]! > a[i * 10 + b]!) b = c; return b; };
      expect(row(got.data as Float32Array)).toBe(row(want));
    }
    await session.release();
    // Gradients flow through the whole CNN (conv/pool backward included) to every parameter.
    const { values, tape } = engine.forward({ input: toValue(inputBatch(fx.subset, 0, 8)) });
    const seed = fvalue([8, 10], new Float32Array(80).fill(0.1));
    const grads = engine.backward(tape, { logits: seed });
    expect(values.logits!.dims).toEqual([8, 10]);
    expect([...grads.keys()].sort()).toEqual([...engine.params.keys()].sort());
    for (const [name, g] of grads) {
      expect(g.dims, name).toEqual(engine.params.get(name)!.dims);
      expect(g.data.every(Number.isFinite), name).toBe(true);
    }
    // The output bias gradient is the column sum of the seed: 8 rows × 0.1.
    expect(closeness(grads.get('fc2.bias')!.data, new Float32Array(10).fill(0.8))).toBeLessThanOrEqual(1);
    // The CNN's weights are all trainable parameters: 2 conv + 2 dense layers, weight + bias each.
    expect(engine.params.size).toBe(8);
  });
});

// ------------------------------------------------------------------------------------------------
// refusals at creation and at run time
// ------------------------------------------------------------------------------------------------

describe('refusals', () => {
  it('lists every unsupported op with its node name in one E_UNSUPPORTED error', async () => {
    const sub = create(GraphProtoSchema, { name: 'then' });
    const ifNode = node('If', ['c'], ['z']);
    ifNode.attribute.push(create(AttributeProtoSchema, { name: 'then_branch', type: AT.GRAPH, g: sub }));
    const m = model([
      node('Relu', ['x'], ['a']),
      node('TopK', ['a', 'k'], ['v', 'i'], {}, 'my_topk'),
      node('FusedGemm', ['a', 'a'], ['f'], {}, 'fused', 'com.microsoft'),
      node('Unique', ['a'], ['u'], {}, 'uniq'),
      ifNode,
    ], [['x', [2]], ['k', [1]], ['c', []]], ['a']);
    expect(unsupportedOps(m)).toEqual([
      { opType: 'TopK', node: 'my_topk' },
      { opType: 'com.microsoft::FusedGemm', node: 'fused' },
      { opType: 'Unique', node: 'uniq' },
      { opType: 'If', node: 'If_z' },
    ]);
    const msg = await codeOf(createEngine(m, { kernels: K, path: 'bad.onnx' }));
    expect(msg).toMatch(/^E_UNSUPPORTED: .*4 node/);
    for (const s of ['TopK (my_topk)', 'com.microsoft::FusedGemm (fused)', 'Unique (uniq)', 'If (If_z)', 'bad.onnx']) expect(msg).toContain(s);
  });

  it('collects unsupported attributes from the handlers’ checks (E_UNSUPPORTED)', async () => {
    const m = model([node('Cast', ['x'], ['a'], { to: 10 }, 'to_half'), node('Gelu', ['x'], ['b'], { approximate: 'erf2' }, 'g')], [['x', [2]]], ['a', 'b'], [], 20);
    const msg = await codeOf(createEngine(m, { kernels: K }));
    expect(msg).toMatch(/^E_UNSUPPORTED: .*2 node/);
    expect(msg).toContain('Cast to_half');
    expect(msg).toContain('Gelu g');
  });

  it('refuses cycles, dangling inputs and values produced twice (E_MALFORMED)', async () => {
    const cyc = model([node('Relu', ['b'], ['a']), node('Relu', ['a'], ['b'])], [['x', [1]]], ['a']);
    expect(await codeOf(createEngine(cyc, { kernels: K }))).toMatch(/^E_MALFORMED: .*cycle/);
    const dangling = model([node('Relu', ['nowhere'], ['a'])], [['x', [1]]], ['a']);
    expect(await codeOf(createEngine(dangling, { kernels: K }))).toMatch(/^E_MALFORMED: .*'nowhere'.*Relu_a/);
    const twice = model([node('Relu', ['x'], ['a']), node('Neg', ['x'], ['a'])], [['x', [1]]], ['a']);
    expect(await codeOf(createEngine(twice, { kernels: K }))).toMatch(/^E_MALFORMED: .*produced twice/);
    const noGraph = create(ModelProtoSchema, {});
    expect(await codeOf(createEngine(noGraph, { kernels: K }))).toMatch(/^E_MALFORMED: .*no graph/);
  });

  it('validates feeds against the declared inputs (E_KERNEL_ARG naming input and expected shape)', async () => {
    const e = await createEngine(model([node('Relu', ['x'], ['y'])], [['x', ['N', 3]]], ['y']), { kernels: K });
    expect(await codeOf(() => e.run({ x: fvalue([2, 4]) }))).toMatch(/^E_KERNEL_ARG: input 'x' expects float32 \[\?,3\], got float32 \[2,4\]/);
    expect(await codeOf(() => e.run({ x: fvalue([3]) }))).toMatch(/E_KERNEL_ARG: .*\[\?,3\]/);
    expect(await codeOf(() => e.run({ x: { dtype: 'int64', dims: [1, 3], data: new BigInt64Array(3) } }))).toMatch(/E_KERNEL_ARG: .*got int64/);
    expect(await codeOf(() => e.run({}))).toMatch(/E_KERNEL_ARG: input 'x' is missing/);
    expect(await codeOf(() => e.run({ x: fvalue([1, 3]), extra: fvalue([1]) }))).toMatch(/E_KERNEL_ARG: 'extra' is not a graph input/);
    expect(await codeOf(() => e.run({ x: { dtype: 'float32', dims: [1, 3], data: new Float32Array(2) } }))).toMatch(/E_KERNEL_ARG: .*2 elements/);
    expect(await codeOf(() => e.run({ x: fvalue([1, 3]) }, { outputs: ['nope'] }))).toMatch(/E_KERNEL_ARG: unknown value 'nope'/);
    expect(e.run({ x: fvalue([5, 3], new Float32Array(15).fill(-1)) }).y!.data).toEqual(new Float32Array(15));
  });

  it('does not mistake Object.prototype members for feeds', async () => {
    const e = await createEngine(model([node('Add', ['x', 'toString'], ['constructor'])], [['x', [2]]], ['constructor'], [float32TensorProto('toString', [2], Float32Array.of(1, 2))]), { kernels: K });
    expect(Array.from(e.run({ x: fvalue([2], Float32Array.of(3, 4)) }).constructor!.data)).toEqual([4, 6]);
    const f = await createEngine(model([node('Relu', ['valueOf'], ['y'])], [['valueOf', [1]]], ['y']), { kernels: K });
    expect(await codeOf(() => f.run({}))).toMatch(/E_KERNEL_ARG: input 'valueOf' is missing/);
  });

  it('reports an op failing on its inputs as a ModelsmithError naming the node', async () => {
    const e = await createEngine(model([node('MatMul', ['x', 'w'], ['y'], {}, 'mm')], [['x', [2, 3]], ['w', [4, 2]]], ['y']), { kernels: K, path: 'mm.onnx' });
    const msg = await codeOf(() => e.run({ x: fvalue([2, 3]), w: fvalue([4, 2]) }));
    expect(msg).toMatch(/^E_KERNEL_ARG: .*inner dimensions.*op 'MatMul mm'/);
  });

  it('refuses a backward pass through an op without a gradient (E_UNSUPPORTED)', async () => {
    registerOp('TestNoGrad', { forward: (_c, [x]) => ({ outputs: [x!] }) });
    const e = await createEngine(
      model([node('TestNoGrad', ['w'], ['a'], {}, 'opaque'), node('Relu', ['a'], ['y'])], [['x', [1]]], ['y'], [float32TensorProto('w', [2], Float32Array.of(1, 2))]),
      { kernels: K },
    );
    const { tape } = e.forward({});
    expect(await codeOf(() => e.backward(tape, { y: fvalue([2], Float32Array.of(1, 1)) }))).toMatch(/^E_UNSUPPORTED: .*TestNoGrad has no gradient.*opaque/);
  });

  it('asks handlers only for the gradients a parameter or a wrt input needs', async () => {
    const seen: boolean[][] = [];
    registerOp('TestSpy', {
      forward: (_c, [a, b]) => ({ outputs: [{ ...a!, data: Float32Array.from(a!.data as Float32Array, (v, i) => v * (b!.data as Float32Array)[i]!) }] }),
      backward: (ctx, [a, b], _o, [g]) => {
        seen.push([...(ctx.needsGrad ?? [])]);
        return [fvalue(a!.dims, Float32Array.from(g!.data, (v, i) => v * (b!.data as Float32Array)[i]!)), fvalue(b!.dims, Float32Array.from(g!.data, (v, i) => v * (a!.data as Float32Array)[i]!))];
      },
    });
    const e = await createEngine(model([node('TestSpy', ['x', 'w'], ['y'])], [['x', [2]]], ['y'], [float32TensorProto('w', [2], Float32Array.of(2, 3))]), { kernels: K });
    const { tape } = e.forward({ x: fvalue([2], Float32Array.of(5, 7)) });
    const g = e.backward(tape, { y: fvalue([2], Float32Array.of(1, 1)) });
    expect(seen.at(-1)).toEqual([false, true]);
    expect(Array.from(g.get('w')!.data)).toEqual([5, 7]);
    expect(g.has('x')).toBe(false);
    const g2 = e.backward(tape, { y: fvalue([2], Float32Array.of(1, 1)) }, ['x']);
    expect(seen.at(-1)).toEqual([true, true]);
    expect(Array.from(g2.get('x')!.data)).toEqual([2, 3]);
  });

  it('checks seeds and wrt (E_KERNEL_ARG)', async () => {
    const e = await createEngine(model([node('Relu', ['x'], ['y'])], [['x', [2]]], ['y']), { kernels: K });
    const { tape } = e.forward({ x: fvalue([2], Float32Array.of(1, -1)) });
    expect(await codeOf(() => e.backward(tape, { y: fvalue([3]) }))).toMatch(/E_KERNEL_ARG: seed for 'y' must be float32 \[2\]/);
    expect(await codeOf(() => e.backward(tape, { q: fvalue([2]) }))).toMatch(/E_KERNEL_ARG: seed for 'q'/);
    expect(await codeOf(() => e.backward(tape, { y: fvalue([2]) }, ['y']))).toMatch(/E_KERNEL_ARG: wrt: 'y' is not a graph input/);
    const other = await createEngine(model([node('Relu', ['x'], ['y'])], [['x', [2]]], ['y']), { kernels: K });
    expect(await codeOf(() => other.backward(tape, {}))).toMatch(/E_KERNEL_ARG: .*another engine/);
    const g = e.backward(tape, { y: fvalue([2], Float32Array.of(3, 3)) }, ['x']);
    expect(Array.from(g.get('x')!.data)).toEqual([3, 0]);
  });
});

// ------------------------------------------------------------------------------------------------
// memory, gradients through the graph, export
// ------------------------------------------------------------------------------------------------

describe('execution', () => {
  it('frees intermediate values once no later node needs them', async () => {
    const n = 40;
    const nodes = [node('Relu', ['x'], ['v0'])];
    for (let i = 1; i < n; i++) nodes.push(node(i % 2 ? 'Neg' : 'Sigmoid', [`v${i - 1}`], [`v${i}`]));
    const e = await createEngine(model(nodes, [['x', [1000]]], [`v${n - 1}`]), { kernels: K });
    const out = e.run({ x: randomValue([1000], 3) });
    expect(out[`v${n - 1}`]!.dims).toEqual([1000]);
    // A chain holds at most the value being read and the one being written, whatever its length.
    expect(e.lastRun).toEqual({ nodesRun: n, peakLive: 2, freed: n - 1 });
    // Asking for an intermediate keeps it, and runs only the nodes it needs.
    const mid = e.run({ x: randomValue([1000], 3) }, { outputs: ['v9'] });
    expect(Object.keys(mid)).toEqual(['v9']);
    expect(e.lastRun.nodesRun).toBe(10);
  });

  it('accumulates gradients of a value read by several nodes', async () => {
    // a = W·x feeds Sigmoid and Tanh; W also feeds the final Mul directly: three paths to W.
    const W = randomValue([4], 11), x = randomValue([4], 12);
    const e = await createEngine(
      model(
        [node('Mul', ['W', 'x'], ['a']), node('Sigmoid', ['a'], ['s']), node('Tanh', ['a'], ['t']), node('Add', ['s', 't'], ['u']), node('Mul', ['u', 'W'], ['y'])],
        [['x', [4]]], ['y'], [float32TensorProto('W', [4], W.data)],
      ),
      { kernels: K },
    );
    const { tape } = e.forward({ x });
    const g = e.backward(tape, { y: fvalue([4], new Float32Array(4).fill(1)) }, ['x']);
    for (let i = 0; i < 4; i++) {
      const w = W.data[i]!, xi = x.data[i]!, a = w * xi;
      const s = 1 / (1 + Math.exp(-a)), t = Math.tanh(a);
      const du = s * (1 - s) + (1 - t * t);
      expect(g.get('W')!.data[i]).toBeCloseTo((s + t) + w * du * xi, 5);
      expect(g.get('x')!.data[i]).toBeCloseTo(w * du * w, 5);
    }
  });

  it('records only nodes that depend on a parameter or input; constants are folded', async () => {
    const shape = create(AttributeProtoSchema, { name: 'value', type: AT.TENSOR, t: { ...float32TensorProto('c', [2], Float32Array.of(2, 3)) } });
    const cnode = node('Constant', [], ['c']);
    cnode.attribute.push(shape);
    const e = await createEngine(
      model([cnode, node('Exp', ['c'], ['ce']), node('Mul', ['x', 'ce'], ['y'])], [['x', [2]]], ['y']),
      { kernels: K },
    );
    const x = fvalue([2], Float32Array.of(1, 2));
    const { values, tape } = e.forward({ x });
    expect(Array.from(values.y!.data)).toEqual([1 * Math.fround(Math.exp(2)), 2 * Math.fround(Math.exp(3))].map(Math.fround));
    expect((tape as unknown as { entries: unknown[] }).entries.length).toBe(1);
    const g = e.backward(tape, { y: fvalue([2], Float32Array.of(1, 1)) }, ['x']);
    expect(g.get('x')!.data[1]).toBeCloseTo(Math.exp(3), 3);
    expect(e.params.size).toBe(0);
  });

  it('loads initializers stored as external data', async () => {
    const W = randomValue([16, 8], 41), b = randomValue([8], 42);
    const m = model([node('MatMul', ['x', 'W'], ['h']), node('Add', ['h', 'b'], ['y'])], [['x', ['N', 16]]], ['y'], [float32TensorProto('W', [16, 8], W.data), float32TensorProto('b', [8], b.data)]);
    const dir = await mkdtemp(join(tmpdir(), 'engine-ext-'));
    try {
      const file = join(dir, 'ext.onnx');
      const saved = await saveOnnxFile(onnxModel(m, { path: file }), file, { externalData: { threshold: 16 } });
      expect(saved.externalTensors).toBe(2);
      const opened = await openModelFile(file);
      try {
        expect(opened.model.proto.graph!.initializer.every((t) => t.rawData.length === 0 && t.externalData.length > 0)).toBe(true);
        const fromDisk = await createEngine(opened.model, { kernels: K });
        const inMemory = await createEngine(m, { kernels: K });
        const x = randomValue([3, 16], 43);
        expect(Array.from(fromDisk.run({ x }).y!.data)).toEqual(Array.from(inMemory.run({ x }).y!.data));
        expect(Array.from(fromDisk.params.get('W')!.data)).toEqual(Array.from(W.data));
      } finally {
        await opened.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('turns a handler’s RangeError into E_LIMIT and other exceptions into E_KERNEL_ARG, naming the node', async () => {
    registerOp('TestThrowsRange', { forward: () => { throw new RangeError('Invalid typed array length: 99999999999'); } });
    registerOp('TestThrowsType', { forward: () => { throw new TypeError('x is undefined'); } });
    const a = await createEngine(model([node('TestThrowsRange', ['x'], ['y'], {}, 'big')], [['x', [1]]], ['y']), { kernels: K, path: 'r.onnx' });
    expect(await codeOf(() => a.run({ x: fvalue([1]) }))).toMatch(/^E_LIMIT: Invalid typed array length.*r\.onnx.*TestThrowsRange big/);
    const b = await createEngine(model([node('TestThrowsType', ['x'], ['y'], {}, 'bug')], [['x', [1]]], ['y']), { kernels: K });
    expect(await codeOf(() => b.run({ x: fvalue([1]) }))).toMatch(/^E_KERNEL_ARG: x is undefined.*TestThrowsType bug/);
  });

  it('refuses an initializer of a type the engine does not compute with (E_DTYPE naming it)', async () => {
    const half = create(TensorProtoSchema, { name: 'h', dims: [1n], dataType: 10, rawData: new Uint8Array(2) });
    const msg = await codeOf(createEngine(model([node('Relu', ['x'], ['y'])], [['x', [1]]], ['y'], [half]), { kernels: K, path: 'half.onnx' }));
    expect(msg).toMatch(/^E_DTYPE: .*float16.*half\.onnx.*tensor 'h'/);
    const c = node('Constant', [], ['k'], { value: half }, 'half_const');
    const msg2 = await codeOf(createEngine(model([c, node('Relu', ['k'], ['y'])], [['x', [1]]], ['y']), { kernels: K }));
    expect(msg2).toMatch(/^E_DTYPE: Constant value: .*float16.*Constant half_const/);
  });

  it('exportModel writes the current parameter values', async () => {
    const m = model([node('Gemm', ['x', 'W', 'b'], ['y'], { transB: 1 })], [['x', ['N', 3]]], ['y'], [
      float32TensorProto('W', [2, 3], randomValue([2, 3], 5).data), float32TensorProto('b', [2], Float32Array.of(0.5, -0.5)),
    ]);
    const e = await createEngine(m, { kernels: K });
    e.params.get('W')!.data.fill(1);
    e.params.get('b')!.data[0] = 7;
    const out = e.exportModel();
    expect(out).not.toBe(m);
    const again = await createEngine(out, { kernels: K });
    const x = randomValue([2, 3], 9);
    expect(Array.from(again.run({ x }).y!.data)).toEqual(Array.from(e.run({ x }).y!.data));
    expect(Array.from(again.params.get('W')!.data)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(again.params.get('b')!.data[0]).toBe(7);
    // The source model is untouched.
    expect(new Float32Array(m.graph!.initializer[1]!.rawData.slice().buffer)[0]).toBe(0.5);
  });
});
