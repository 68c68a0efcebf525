/**
 * float16 / bfloat16 pass (src/compress/cast.ts) and the `cast` verb.
 * Corpus: every model in models/ and light/ is converted to float16 with float32 I/O; the result must
 * pass onnx.checker (Debian onnx 1.12) whenever the original does, run in onnxruntime-node, and agree
 * with the original (cosine ≥ 0.99, no NaN) on random inputs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProto_DataType,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { castCommand } from '../../src/cli/commands/cast.js';
import { castModel } from '../../src/compress/cast.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { decodeOnnx, onnxModel, type OnnxModel } from '../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../src/formats/onnx/write.js';
import { tensorToProto } from '../../src/formats/onnx/tensor.js';
import { openModelFile, saveOnnxFile } from '../../src/platform/open.js';
import { CORPUS_ONNX, corpusName, listFiles, rng } from '../formats/onnx/helpers.js';
import { Spill } from '../../src/compress/spill.js';
import { nodeScratch } from '../../src/platform/scratch.js';

const PY = '/usr/bin/python3';
const FILES = [...listFiles(join(CORPUS_ONNX, 'models'), '.onnx'), ...listFiles(join(CORPUS_ONNX, 'light'), '.onnx')];

/** Sizes for dynamic dims, and fixed values, per model (others: dynamic dims = 1, uniform [-1, 1)). */
const INPUT_OVERRIDES: Record<string, Record<string, { dims?: number[]; int64?: bigint }>> = {
  'melspectrogram.onnx': { input: { dims: [1, 1760] } },
  'ch_ppocr_mobile_v2.0_cls_infer.onnx': { x: { dims: [1, 3, 48, 192] } },
  'silero_vad_v5.onnx': { input: { dims: [1, 512] }, state: { dims: [2, 1, 128] }, sr: { int64: 16000n } },
  'silero_vad_legacy.onnx': { input: { dims: [1, 512] }, h: { dims: [2, 1, 64] }, c: { dims: [2, 1, 64] }, sr: { int64: 16000n } },
};

/** Models whose weights sit in If branches (not converted), so the file does not shrink. */
const NO_SHRINK = new Set<string>([]);
/** light/ models hold their weights as ConstantOfShape scalars: nothing to halve. */
const isLight = (p: string): boolean => p.includes('/light/');

function graphInputs(m: ModelProto): ValueInfoProto[] {
  const inits = new Set(m.graph!.initializer.map((t) => t.name));
  return m.graph!.input.filter((v) => !inits.has(v.name));
}

function feedsFor(m: ModelProto, base: string, seed: number): Record<string, ort.Tensor> {
  const r = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const vi of graphInputs(m)) {
    const tt = vi.type!.value.case === 'tensorType' ? vi.type!.value.value : undefined;
    const o = INPUT_OVERRIDES[base]?.[vi.name];
    const dims = o?.dims ?? (tt?.shape?.dim ?? []).map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : 1));
    const n = dims.reduce((a, d) => a * d, 1);
    if (tt?.elemType === TensorProto_DataType.INT64) feeds[vi.name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => o?.int64 ?? 0n), dims);
    else feeds[vi.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => r() * 2 - 1), dims);
  }
  return feeds;
}

async function runModel(path: string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; }
  if (aa === 0 && bb === 0) return 1;
  return ab / Math.sqrt(aa * bb);
}

/** onnx.checker verdicts (true = passes) for many files in one Python run. */
function checkerVerdicts(paths: string[]): boolean[] {
  const code = 'import onnx,sys,json\nFULL=True\nout=[]\nfor p in sys.argv[1:]:\n  try:\n    onnx.checker.check_model(onnx.load(p), full_check=FULL); out.append(True)\n  except Exception:\n    out.append(False)\nprint(json.dumps(out))';
  return JSON.parse(execFileSync(PY, ['-c', code, ...paths], { encoding: 'utf8' })) as boolean[];
}

function castEdges(m: ModelProto): number {
  const producer = new Map<string, NodeProto>();
  for (const n of m.graph!.node) for (const o of n.output) producer.set(o, n);
  return m.graph!.node.filter((n) => n.opType === 'Cast' && producer.get(n.input[0]!)?.opType === 'Cast').length;
}

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'modelsmith-cast-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

async function castFile(path: string, opts: Parameters<typeof castModel>[1]): Promise<{ orig: OnnxModel; out: string; bytes: Uint8Array; report: Awaited<ReturnType<typeof castModel>>['report']; model: OnnxModel }> {
  const orig = decodeOnnx(readFileSync(path), { path });
  const model = decodeOnnx(readFileSync(path), { path });
  const { report } = await castModel(model, opts);
  const bytes = await encodeOnnx(model);
  const out = join(dir, `${corpusName(path).replace(/[/\\]/g, '_')}.${opts.to}.${opts.keepIoTypes === false ? 'io' : 'keep'}.onnx`);
  writeFileSync(out, bytes);
  return { orig, out, bytes, report, model };
}

describe('float16 on the corpus (models/ and light/)', () => {
  const converted: { path: string; out: string }[] = [];

  for (const path of FILES) {
    const base = path.split('/').pop()!;
    it(`${corpusName(path)}: runs in onnxruntime, cosine ≥ 0.99, no NaN, no Cast chains`, async () => {
      const { orig, out, bytes, report, model } = await castFile(path, { to: 'float16' });
      converted.push({ path, out });
      const origSize = readFileSync(path).byteLength;
      if (!isLight(path) && !NO_SHRINK.has(base)) expect(bytes.byteLength).toBeLessThan(origSize * 0.6);
      if (NO_SHRINK.has(base)) expect(report.nodesKeptFloat32.If).toBeGreaterThan(0);
      expect(castEdges(model.proto)).toBeLessThanOrEqual(castEdges(orig.proto));
      // float32 interface kept.
      for (const v of [...graphInputs(model.proto), ...model.proto.graph!.output]) {
        expect(v.type!.value.case === 'tensorType' && v.type!.value.value.elemType).toBe(
          [...graphInputs(orig.proto), ...orig.proto.graph!.output].find((o) => o.name === v.name)!.type!.value.value!.elemType,
        );
      }
      for (const seed of [1, 2]) {
        const feeds = feedsFor(orig.proto, base, seed);
        const a = await runModel(path, feeds);
        const b = await runModel(out, feeds);
        for (const name of Object.keys(a)) {
          const ta = a[name]!, tb = b[name]!;
          expect(tb.type, name).toBe(ta.type);
          expect(tb.dims, name).toEqual(ta.dims);
          if (ta.type !== 'float32') continue;
          const da = ta.data as Float32Array, db = tb.data as Float32Array;
          expect(db.some((x) => Number.isNaN(x)), `${name} has NaN`).toBe(da.some((x) => Number.isNaN(x)));
          expect(cosine(da, db), `${base} ${name}`).toBeGreaterThanOrEqual(0.99);
        }
      }
    });
  }

  it('onnx.checker gives every float16 model the verdict of its original', () => {
    expect(converted.length).toBe(FILES.length);
    const before = checkerVerdicts(converted.map((c) => c.path));
    const after = checkerVerdicts(converted.map((c) => c.out));
    const diff = converted.filter((_, i) => before[i] && !after[i]).map((c) => corpusName(c.path));
    expect(diff).toEqual([]);
  });
});

describe('whole corpus (node/, simple/, pytorch-*)', () => {
  it('every model converts to float16 (or is refused with E_UNSUPPORTED) and keeps its onnx.checker verdict', async () => {
    const others = listFiles(CORPUS_ONNX, '.onnx').filter((p) => !FILES.includes(p));
    const pairs: string[] = [];
    const refused: string[] = [];
    for (const path of others) {
      try {
        const { out } = await castFile(path, { to: 'float16' });
        pairs.push(path, out);
      } catch (e) {
        expect(e).toBeInstanceOf(ModelsmithError);
        expect((e as ModelsmithError).code).toBe('E_UNSUPPORTED');
        refused.push(corpusName(path));
      }
    }
    // Only a SequenceMap expansion (SequenceAt of an untyped sequence) is refused today.
    expect(refused.length).toBeLessThanOrEqual(2);
    const v = checkerVerdicts(pairs);
    const regressions = pairs.filter((p, i) => i % 2 === 0 && v[i] && !v[i + 1]).map(corpusName);
    expect(regressions).toEqual([]);
  });
});

describe('bfloat16 (weights-only)', () => {
  const OPSET13 = FILES.filter((p) => /openwakeword/.test(p));
  for (const path of OPSET13) {
    const base = path.split('/').pop()!;
    it(`${corpusName(path)}: bfloat16 weights, float32 compute, cosine ≥ 0.99`, async () => {
      const { orig, out, bytes, report } = await castFile(path, { to: 'bfloat16' });
      expect(report.mode).toBe('weights-only');
      expect(bytes.byteLength).toBeLessThan(readFileSync(path).byteLength * 0.6);
      expect(checkerVerdicts([out])).toEqual(checkerVerdicts([path]));
      const feeds = feedsFor(orig.proto, base, 3);
      const a = await runModel(path, feeds);
      const b = await runModel(out, feeds);
      for (const name of Object.keys(a)) {
        const da = a[name]!.data as Float32Array, db = b[name]!.data as Float32Array;
        expect(db.some((x) => Number.isNaN(x))).toBe(false);
        expect(cosine(da, db)).toBeGreaterThanOrEqual(0.99);
      }
    });
  }

  it('refuses a model below opset 13 (no Cast to bfloat16 there)', async () => {
    const path = FILES.find((p) => p.endsWith('version-slim-320.onnx'))!;
    const m = decodeOnnx(readFileSync(path), { path });
    await expect(castModel(m, { to: 'bfloat16' })).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/opset 13/) });
  });
});

// ------------------------------------------------------------------------------------------------
// small hand-built models
// ------------------------------------------------------------------------------------------------

/** tensorValueInfo with the element type first, as these tests read best. */
const tensorValue = (name: string, elemType: number, dims: (number | string)[]): ValueInfoProto => tensorValueInfo(name, dims, elemType);

function f32(name: string, shape: number[], values: number[]) {
  return tensorToProto({ name, dtype: 'float32', shape, data: new Uint8Array(Float32Array.from(values).buffer) });
}

function node(opType: string, input: string[], output: string[], attrs: { name: string; i?: bigint; floats?: number[] }[] = [], domain = ''): NodeProto {
  return create(NodeProtoSchema, {
    opType, input, output, domain,
    attribute: attrs.map((a) => create(AttributeProtoSchema, a.i !== undefined
      ? { name: a.name, type: AttributeProto_AttributeType.INT, i: a.i }
      : { name: a.name, type: AttributeProto_AttributeType.FLOATS, floats: a.floats ?? [] })),
  });
}

function model(nodes: NodeProto[], inputs: ValueInfoProto[], outputs: ValueInfoProto[], inits = [] as ReturnType<typeof f32>[], opset = 17n): OnnxModel {
  return onnxModel(create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: opset })],
    graph: create(GraphProtoSchema, { name: 'g', node: nodes, input: inputs, output: outputs, initializer: inits }),
  }));
}

async function save(m: OnnxModel, name: string): Promise<string> {
  const p = join(dir, name);
  writeFileSync(p, await encodeOnnx(m));
  return p;
}

describe('cast pass details', () => {
  it('clamps a weight beyond 65504 to ±65504, never Inf', async () => {
    const m = model([node('Add', ['x', 'w'], ['y'])], [tensorValue('x', 1, [4])], [tensorValue('y', 1, [4])], [f32('w', [4], [1e5, -1e6, 0.5, -1e-12])]);
    const { report } = await castModel(m, { to: 'float16' });
    expect(report.clampedValues).toBe(2);
    expect(report.tinyValuesRaised).toBe(1);
    const w = m.proto.graph!.initializer.find((t) => t.name === 'w')!;
    expect(w.dataType).toBe(TensorProto_DataType.FLOAT16);
    expect(Array.from(new Uint16Array(w.rawData.slice().buffer))).toEqual([0x7bff, 0xfbff, 0x3800, 0x8001]);
    const p = await save(m, 'clamp.onnx');
    const out = await runModel(p, { x: new ort.Tensor('float32', Float32Array.of(0, 0, 0, 0), [4]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([65504, -65504, 0.5, -(2 ** -24)]);
    expect(checkerVerdicts([p])).toEqual([true]);
  });

  it('keeps Resize scales float32, patches Cast(to=FLOAT), and folds what it would chain', async () => {
    // x(int64) → Cast(to=FLOAT) → Mul(w) → Resize(scales) → y; the Resize scales stay float32.
    const m = model(
      [
        node('Cast', ['x'], ['xf'], [{ name: 'to', i: 1n }]),
        node('Mul', ['xf', 'w'], ['m']),
        node('Resize', ['m', '', 'scales'], ['y'], []),
      ],
      [tensorValue('x', TensorProto_DataType.INT64, [1, 1, 2, 2])],
      [tensorValue('y', 1, [1, 1, 4, 4])],
      [f32('w', [1], [0.5]), f32('scales', [4], [1, 1, 2, 2])],
    );
    const { report } = await castModel(m, { to: 'float16' });
    const g = m.proto.graph!;
    expect(g.initializer.find((t) => t.name === 'scales')!.dataType).toBe(TensorProto_DataType.FLOAT);
    expect(report.castNodesPatched).toBe(1);
    expect(g.node.find((n) => n.output[0] === 'xf')!.attribute[0]!.i).toBe(BigInt(TensorProto_DataType.FLOAT16));
    expect(castEdges(m.proto)).toBe(0);
    const p = await save(m, 'resize.onnx');
    expect(checkerVerdicts([p])).toEqual([true]);
    const out = await runModel(p, { x: new ort.Tensor('int64', BigInt64Array.of(1n, 2n, 3n, 4n), [1, 1, 2, 2]) });
    expect(out.y!.type).toBe('float32');
    expect((out.y!.data as Float32Array)[0]).toBe(0.5);
  });

  it('a blocked op stays float32 between Casts; --no-keep-io-types declares float16 I/O', async () => {
    const mk = (): OnnxModel => model(
      [node('Mul', ['x', 'w'], ['a']), node('Softmax', ['a'], ['b']), node('Add', ['b', 'w'], ['y'])],
      [tensorValue('x', 1, [1, 4])], [tensorValue('y', 1, [1, 4])], [f32('w', [4], [1, 2, 3, 4])],
    );
    const m = mk();
    m.proto.graph!.valueInfo = [tensorValue('a', 1, [1, 4]), tensorValue('b', 1, [1, 4])];
    const { report } = await castModel(m, { to: 'float16', blockOps: ['Softmax'] });
    expect(report.nodesKeptFloat32).toEqual({ Softmax: 1 });
    expect(m.proto.graph!.valueInfo.map((v) => v.type!.value.value!.elemType)).toEqual([TensorProto_DataType.FLOAT16, TensorProto_DataType.FLOAT]);
    const p = await save(m, 'blocked.onnx');
    expect(checkerVerdicts([p])).toEqual([true]);
    const x = new ort.Tensor('float32', Float32Array.of(0.1, 0.2, 0.3, 0.4), [1, 4]);
    const want = (await runModel(await save(mk(), 'blocked-orig.onnx'), { x })).y!.data as Float32Array;
    expect(cosine(want, (await runModel(p, { x })).y!.data as Float32Array)).toBeGreaterThan(0.999);

    const m2 = mk();
    await castModel(m2, { to: 'float16', keepIoTypes: false });
    const g = m2.proto.graph!;
    expect(g.input[0]!.type!.value.value!.elemType).toBe(TensorProto_DataType.FLOAT16);
    expect(g.output[0]!.type!.value.value!.elemType).toBe(TensorProto_DataType.FLOAT16);
    const p2 = await save(m2, 'io16.onnx');
    expect(checkerVerdicts([p2])).toEqual([true]);
    const out = await runModel(p2, { x: new ort.Tensor('float16', Uint16Array.of(0x2e66, 0x3266, 0x34cd, 0x3666), [1, 4]) });
    expect(out.y!.type).toBe('float16');
  });

  it('converts If and Loop bodies behind float32 interfaces; bodies read outer weights in float16', async () => {
    const g = (name: string, nodes: NodeProto[], inputs: ValueInfoProto[], outputs: ValueInfoProto[]) =>
      create(GraphProtoSchema, { name, node: nodes, input: inputs, output: outputs });
    const graphAttr = (name: string, sg: ReturnType<typeof g>) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g: sg });
    const mk = (): OnnxModel => {
      const ifNode = node('If', ['c'], ['yi']);
      ifNode.attribute = [
        graphAttr('then_branch', g('then', [node('Mul', ['x', 'w'], ['t'])], [], [tensorValue('t', 1, [2])])),
        graphAttr('else_branch', g('else', [node('Add', ['x', 'w'], ['e'])], [], [tensorValue('e', 1, [2])])),
      ];
      const loopNode = node('Loop', ['n', '', 'yi'], ['yl']);
      loopNode.attribute = [graphAttr('body', g('body',
        [node('Identity', ['cond'], ['cond_out']), node('Mul', ['v', 'w'], ['v_out'])],
        [tensorValue('iter', TensorProto_DataType.INT64, []), tensorValue('cond', TensorProto_DataType.BOOL, []), tensorValue('v', 1, [2])],
        [tensorValue('cond_out', TensorProto_DataType.BOOL, []), tensorValue('v_out', 1, [2])]))];
      return model([ifNode, loopNode],
        [tensorValue('x', 1, [2]), tensorValue('c', TensorProto_DataType.BOOL, []), tensorValue('n', TensorProto_DataType.INT64, [])],
        [tensorValue('yl', 1, [2])], [f32('w', [2], [0.5, 3])]);
    };
    const orig = mk();
    const m = mk();
    const { report } = await castModel(m, { to: 'float16' });
    expect(m.proto.graph!.initializer.map((t) => t.dataType)).toEqual([TensorProto_DataType.FLOAT16]);
    expect(report.nodesKeptFloat32).toEqual({ If: 1, Loop: 1 });
    const p = await save(m, 'subgraphs.onnx');
    expect(checkerVerdicts([p])).toEqual([true]);
    for (const c of [true, false]) {
      const feeds = {
        x: new ort.Tensor('float32', Float32Array.of(1.5, -2), [2]),
        c: new ort.Tensor('bool', Uint8Array.of(c ? 1 : 0), []),
        n: new ort.Tensor('int64', BigInt64Array.of(3n), []),
      };
      const want = (await runModel(await save(orig, 'subgraphs-orig.onnx'), feeds)).yl!.data as Float32Array;
      const got = (await runModel(p, feeds)).yl!.data as Float32Array;
      expect(Array.from(got)).toEqual(Array.from(want));
    }
  });

  it('errors: bad target, bad op name, no graph, unknown value types', async () => {
    const simple = (): OnnxModel => model([node('Relu', ['x'], ['y'])], [tensorValue('x', 1, [2])], [tensorValue('y', 1, [2])]);
    await expect(castModel(simple(), { to: 'float8' as never })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(castModel(simple(), { to: 'float16', blockOps: ['Bad Op'] })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(castModel(onnxModel(create(ModelProtoSchema, { irVersion: 8n })), { to: 'float16' })).rejects.toMatchObject({ code: 'E_MALFORMED' });
    const custom = model([node('MyOp', ['x'], ['t'], [], 'my.domain'), node('Relu', ['t'], ['y'])], [tensorValue('x', 1, [2])], [tensorValue('y', 1, [2])]);
    const err = await castModel(custom, { to: 'float16' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelsmithError);
    expect((err as ModelsmithError).code).toBe('E_UNSUPPORTED');
    expect((err as ModelsmithError).message).toMatch(/MyOp.*'t'/);
    // With value_info the custom op is kept float32 between Casts.
    const typed = model([node('MyOp', ['x'], ['t'], [], 'my.domain'), node('Relu', ['t'], ['y'])], [tensorValue('x', 1, [2])], [tensorValue('y', 1, [2])]);
    typed.proto.graph!.valueInfo = [tensorValue('t', 1, [2])];
    const { report } = await castModel(typed, { to: 'float16' });
    expect(report.nodesKeptFloat32).toEqual({ 'my.domain.MyOp': 1 });
    const g = typed.proto.graph!;
    expect(g.node.find((n) => n.opType === 'MyOp')!.input).toEqual(['x']);
    const relu = g.node.find((n) => n.opType === 'Relu')!;
    expect(g.node.find((n) => n.output[0] === relu.input[0])!.opType).toBe('Cast');
    expect(g.valueInfo[0]!.type!.value.value!.elemType).toBe(TensorProto_DataType.FLOAT);
  });
});

describe('cast verb', () => {
  const out = { json: true, say: () => {}, note: () => {}, report: () => {} };
  const slim = FILES.find((p) => p.endsWith('version-slim-320.onnx'))!;

  it('writes the model and reports sizes, counts and time', async () => {
    const o = join(dir, 'cli.fp16.onnx');
    const r = (await castCommand.run([slim], { output: o, to: 'float16' }, out)) as Record<string, number>;
    expect(r.sizeAfter).toBeLessThan(r.sizeBefore * 0.6);
    expect(r.tensorsConverted).toBeGreaterThan(0);
    expect(r.castNodesInserted).toBeGreaterThanOrEqual(2);
    expect(typeof r.seconds).toBe('number');
    expect(r.clampedValues).toBe(0);
  });

  it('a model with external data is written with external data, and runs', async () => {
    const ext = join(dir, 'slim-ext.onnx');
    const { model: m, close } = await openModelFile(slim);
    await saveOnnxFile(m, ext, { externalData: {} });
    await close();
    const o = join(dir, 'slim-ext.fp16.onnx');
    const r = (await castCommand.run([ext], { output: o, to: 'float16' }, out)) as { files: string[]; sizeAfter: number };
    expect(r.files).toEqual([o, `${o}.data`]);
    const orig = decodeOnnx(readFileSync(slim), { path: slim });
    const feeds = feedsFor(orig.proto, 'version-slim-320.onnx', 5);
    const a = await runModel(slim, feeds);
    const b = await runModel(o, feeds);
    for (const k of Object.keys(a)) expect(cosine(a[k]!.data as Float32Array, b[k]!.data as Float32Array)).toBeGreaterThan(0.99);
  });

  it('usage errors', async () => {
    await expect(castCommand.run([slim], { output: join(dir, 'x.onnx') }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(castCommand.run([slim], { output: join(dir, 'x.onnx'), to: 'int8' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(castCommand.run([], { to: 'float16' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(castCommand.run([slim], { output: join(dir, 'x.onnx'), to: 'float16', 'keep-io-types': true, 'no-keep-io-types': true }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(castCommand.run([slim], { output: join(dir, 'x.pt'), to: 'float16' }, out)).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});

describe('streamed conversion and spilling (src/compress/spill.ts)', () => {
  function mlp(): OnnxModel {
    const r = rng(77);
    const w0 = Float32Array.from({ length: 64 * 96 }, () => r() - 0.5);
    const w1 = Float32Array.from({ length: 96 * 32 }, () => r() - 0.5);
    w0[5] = 1e6; // beyond float16: clamped to 65504
    w1[9] = -1e-9; // below 2^-24: raised to -2^-24
    const node = [
      create(NodeProtoSchema, { opType: 'MatMul', name: 'mm0', input: ['x', 'W0'], output: ['h'] }),
      create(NodeProtoSchema, { opType: 'Relu', name: 'relu', input: ['h'], output: ['r'] }),
      create(NodeProtoSchema, { opType: 'MatMul', name: 'mm1', input: ['r', 'W1'], output: ['y'] }),
    ];
    const initializer = [
      tensorToProto({ name: 'W0', dtype: 'float32', shape: [64, 96], data: new Uint8Array(w0.buffer) }),
      tensorToProto({ name: 'W1', dtype: 'float32', shape: [96, 32], data: new Uint8Array(w1.buffer) }),
    ];
    const graph = create(GraphProtoSchema, { name: 'mlp', node, initializer, input: [tensorValueInfo('x', [1, 64])], output: [tensorValueInfo('y', [1, 32])] });
    return onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph }));
  }

  for (const to of ['float16', 'bfloat16'] as const) {
    it(`${to}: a spilled model (external-data input) writes the same bytes as an in-memory one`, async () => {
      const input = join(dir, `mlp-${to}.onnx`);
      await saveOnnxFile(mlp(), input, { externalData: { threshold: 1024 } });
      const a = await openModelFile(input);
      const b = await openModelFile(input);
      const spill = new Spill({ scratch: nodeScratch(dir), threshold: 1024 });
      try {
        const ra = await castModel(a.model, { to });
        const rb = await castModel(b.model, { to, spill });
        expect(rb.report).toEqual(ra.report);
        expect(ra.report.tensorsConverted).toBe(2);
        expect(ra.report.clampedValues).toBe(to === 'float16' ? 1 : 0);
        expect(ra.report.tinyValuesRaised).toBe(to === 'float16' ? 1 : 0);
        expect(spill.tensors).toBe(2);
        expect(spill.bytes).toBe((64 * 96 + 96 * 32) * 2);
        const bytesA = await encodeOnnx(a.model);
        expect(Buffer.from(await encodeOnnx(b.model)).equals(Buffer.from(bytesA))).toBe(true);
        // The converted values themselves: the clamp and the raise happened in the streamed windows.
        if (to === 'float16') {
          const m = decodeOnnx(bytesA);
          const w0 = new Uint16Array(m.proto.graph!.initializer.find((t) => t.name === 'W0')!.rawData.slice().buffer);
          const w1 = new Uint16Array(m.proto.graph!.initializer.find((t) => t.name === 'W1')!.rawData.slice().buffer);
          expect(w0[5]).toBe(0x7bff); // 65504
          expect(w1[9]).toBe(0x8001); // -2^-24
        }
      } finally {
        await spill.dispose();
        await a.close();
        await b.close();
      }
    });
  }
});
