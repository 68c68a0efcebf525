/**
 * Dynamic int8 quantization (src/compress/quantize/dynamic.ts): DynamicQuantizeLinear + MatMulInteger /
 * ConvInteger + Cast + Mul (+ bias Add), with and without reduce_range, per tensor and per channel, on
 * small in-memory models (MatMul with a [64, 48] weight + Add; grouped/strided/1-D Convs) and on every
 * corpus model, run in onnxruntime-node against the original (cosine ≥ 0.99 — one named per-tensor
 * exception). Plus a shared activation, old opsets and the CLI verb.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
} from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeDynamic } from '../../src/compress/quantize/dynamic.js';
import { onnxModel, type OnnxModel } from '../../src/formats/onnx/read.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { quantizeCommand } from '../../src/cli/commands/quantize.js';
import type { Out } from '../../src/cli/output.js';
import { openModel, rng } from '../formats/onnx/helpers.js';
import { K, M, MODELS, N, ORT_OPTS, SHAPES, cosine, f32, gauss, run, smallModel, vi } from './quant-fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-qd-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});


describe('quantizeDynamic on a small in-memory model', () => {
  it.each([
    [false, false, false], [true, false, false], [false, true, false], [false, false, true], [true, true, true],
  ] as const)('reduceRange %s, Constant weight %s, perChannel %s: DynamicQuantizeLinear → MatMulInteger → Cast → Mul, cosine ≥ 0.99', async (reduceRange, constant, perChannel) => {
    const { model } = smallModel({ constant });
    const orig = join(dir, `small-${reduceRange}-${constant}-${perChannel}.onnx`);
    await saveOnnxFile(model, orig);
    const { report } = await quantizeDynamic(model, { reduceRange, perChannel });
    expect(report.quantized).toHaveLength(1);
    expect(report.skipped).toEqual([]);
    const q = report.quantized[0]!;
    expect(q.bytesAfter).toBeLessThanOrEqual(q.bytesBefore / 4 + (perChannel ? N : 1) * 4 + 1);
    const g = model.proto.graph!;
    expect(g.node.map((n) => n.opType)).toEqual([...(constant ? ['Constant', 'Constant', 'Constant'] : []), 'DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul', 'Add']);
    const wq = g.initializer.find((t) => t.name === 'W_quantized') ?? g.node.find((n) => n.output[0] === 'W_quantized')!.attribute[0]!.t!;
    const codes = new Int8Array(wq.rawData.buffer, wq.rawData.byteOffset, wq.rawData.byteLength);
    const peak = codes.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    expect(peak).toBe(reduceRange ? 63 : 127);
    const st = g.initializer.find((t) => t.name === 'W_scale') ?? g.node.find((n) => n.output[0] === 'W_scale')!.attribute[0]!.t!;
    expect(st.dims.map(Number)).toEqual(perChannel ? [N] : []);
    const file = join(dir, `small-${reduceRange}-${constant}-${perChannel}.dyn.onnx`);
    await saveOnnxFile(model, file);
    const r = rng(7);
    const x = Float32Array.from({ length: M * K }, () => gauss(r));
    const feeds = { x: new ort.Tensor('float32', x, [M, K]) };
    const ref = (await run(orig, feeds)).y!;
    const got = (await run(file, feeds)).y!;
    expect(cosine(ref, got)).toBeGreaterThanOrEqual(0.99);
  });

  it('quantizes an activation shared by two MatMuls once; raises old opsets only when safe', async () => {
    const r = rng(5);
    const w = Float32Array.from({ length: K * N }, () => gauss(r) / 8);
    const w2 = Float32Array.from({ length: K * N }, () => gauss(r) / 8);
    const build = (opset: number) => {
      const graph = create(GraphProtoSchema, {
        name: 'shared',
        node: [
          create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['y1'], name: 'mm1' }),
          create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W2'], output: ['y2'], name: 'mm2' }),
        ],
        initializer: [f32('W', [K, N], w), f32('W2', [K, N], w2)],
        input: [vi('x', [2, K])],
        output: [vi('y1', [2, N]), vi('y2', [2, N])],
      });
      return onnxModel(create(ModelProtoSchema, { irVersion: 7n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })], graph }));
    };
    const model = build(13);
    const orig = join(dir, 'shared.onnx');
    await saveOnnxFile(model, orig);
    const { report } = await quantizeDynamic(model);
    expect(report.quantized.map((x) => x.name)).toEqual(['W', 'W2']);
    expect(model.proto.graph!.node.filter((n) => n.opType === 'DynamicQuantizeLinear')).toHaveLength(1);
    const file = join(dir, 'shared.dyn.onnx');
    await saveOnnxFile(model, file);
    const rr = rng(6);
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 2 * K }, () => gauss(rr)), [2, K]) };
    const a = await run(orig, feeds);
    const b = await run(file, feeds);
    expect(cosine(a.y1!, b.y1!)).toBeGreaterThanOrEqual(0.99);
    expect(cosine(a.y2!, b.y2!)).toBeGreaterThanOrEqual(0.99);

    const kept = build(10);
    const res = await quantizeDynamic(kept, { upgradeOpset: false });
    expect(res.report.quantized).toEqual([]);
    expect(res.report.skipped.map((s) => s.reason)).toEqual(['ai.onnx opset 10 < 11', 'ai.onnx opset 10 < 11']);
    expect(kept.proto.graph!.node.map((n) => n.opType)).toEqual(['MatMul', 'MatMul']);

    // An op whose meaning changed by opset 11 (TopK's k became an input) blocks the upgrade: model untouched.
    const blocked = build(10);
    blocked.proto.graph!.node.push(create(NodeProtoSchema, { opType: 'TopK', input: ['y1'], output: ['v', 'i'], name: 'top' }));
    const rb = await quantizeDynamic(blocked);
    expect(rb.report.quantized).toEqual([]);
    expect(rb.report.diagnostics[0]!.message).toContain('TopK ×1');
    expect(Number(blocked.proto.opsetImport[0]!.version)).toBe(10);

    const old = build(10);
    const up = await quantizeDynamic(old);
    expect(up.report.quantized.map((x) => x.name)).toEqual(['W', 'W2']);
    expect(up.report.diagnostics.map((d) => d.code)).toContain('opset.upgraded');
    expect(Number(old.proto.opsetImport[0]!.version)).toBe(11);
    await expect(quantizeDynamic(build(13), { minElements: 0 })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

/**
 * Known exception to cosine ≥ 0.99: silero_vad_v5 with one weight scale per tensor — its encoder Conv
 * weights reach only ~20–25 dB SNR per tensor and the recurrent state output (stateN) lands at
 * cosine ≈ 0.94 on random inputs (weight-only uint8 per-tensor shows the same, 0.96); per-channel passes.
 */
const MIN_COSINE: Record<string, number> = { 'per-tensor/silero_vad_v5.onnx': 0.9 };

describe('quantizeDynamic on Conv', () => {
  const ints = (name: string, v: number[]) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) });
  const int = (name: string, v: number) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
  /** x [1,8,10,10] → Conv(W [16,4,3,3], group 2, pads 1, stride 2, bias) → Conv(W2 [4,16,1,1], no bias) → y; and a 1-D Conv. */
  function convModel(): OnnxModel {
    const r = rng(21);
    const w = Float32Array.from({ length: 16 * 4 * 9 }, () => gauss(r) / 4);
    const b = Float32Array.from({ length: 16 }, () => gauss(r));
    const w2 = Float32Array.from({ length: 4 * 16 }, () => gauss(r) / 4);
    const w3 = Float32Array.from({ length: 6 * 8 * 3 }, () => gauss(r) / 4);
    const b3 = Float32Array.from({ length: 6 }, () => gauss(r));
    const graph = create(GraphProtoSchema, {
      name: 'conv',
      node: [
        create(NodeProtoSchema, { opType: 'Conv', input: ['x', 'W', 'B'], output: ['h'], name: 'c1', attribute: [int('group', 2), ints('pads', [1, 1, 1, 1]), ints('strides', [2, 2]), ints('kernel_shape', [3, 3])] }),
        create(NodeProtoSchema, { opType: 'Conv', input: ['h', 'W2'], output: ['y'], name: 'c2' }),
        create(NodeProtoSchema, { opType: 'Conv', input: ['x1', 'W3', 'B3'], output: ['y1'], name: 'c3', attribute: [ints('pads', [1, 1])] }),
      ],
      initializer: [f32('W', [16, 4, 3, 3], w), f32('B', [16], b), f32('W2', [4, 16, 1, 1], w2), f32('W3', [6, 8, 3], w3), f32('B3', [6], b3)],
      input: [vi('x', [1, 8, 10, 10]), vi('x1', [2, 8, 12])],
      output: [vi('y', [1, 4, 5, 5]), vi('y1', [2, 6, 12])],
    });
    return onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })], graph }));
  }
  it.each([false, true])('perChannel %s: ConvInteger with the Conv attributes, bias added after the rescale, cosine ≥ 0.99', async (perChannel) => {
    const model = convModel();
    const orig = join(dir, `conv-${perChannel}.onnx`);
    await saveOnnxFile(model, orig);
    const { report } = await quantizeDynamic(model, { perChannel });
    expect(report.quantized.map((q) => [q.name, q.op, q.scheme])).toEqual(['W', 'W2', 'W3'].map((n) => [n, 'Conv', perChannel ? 'per-channel' : 'per-tensor']));
    const g = model.proto.graph!;
    expect(g.node.filter((n) => n.opType === 'ConvInteger')).toHaveLength(3);
    expect(g.node.filter((n) => n.opType === 'Add')).toHaveLength(2);
    expect(g.node.some((n) => n.opType === 'Conv')).toBe(false);
    expect(g.initializer.some((t) => ['W', 'W2', 'W3', 'B', 'B3'].includes(t.name))).toBe(false);
    const s1 = g.initializer.find((t) => t.name === 'W_scale')!;
    expect(s1.dims.map(Number)).toEqual(perChannel ? [16, 1, 1] : []);
    const file = join(dir, `conv-${perChannel}.dyn.onnx`);
    await saveOnnxFile(model, file);
    const r = rng(22);
    const feeds = {
      x: new ort.Tensor('float32', Float32Array.from({ length: 800 }, () => gauss(r)), [1, 8, 10, 10]),
      x1: new ort.Tensor('float32', Float32Array.from({ length: 2 * 8 * 12 }, () => gauss(r)), [2, 8, 12]),
    };
    const a = await run(orig, feeds);
    const b = await run(file, feeds);
    expect(cosine(a.y!, b.y!)).toBeGreaterThanOrEqual(0.99);
    expect(cosine(a.y1!, b.y1!)).toBeGreaterThanOrEqual(0.99);
  });
  it('opTypes limits the rewrite; a computed bias is a skip', async () => {
    const m = convModel();
    expect((await quantizeDynamic(m, { opTypes: ['MatMul'] })).report.diagnostics.map((d) => d.code)).toEqual(['quantize.no_matmul']);
    m.proto.graph!.node[0]!.input[2] = 'x1';
    const { report } = await quantizeDynamic(m);
    expect(report.skipped).toEqual([{ name: 'W', node: 'c1', scope: 'graph', reason: 'Conv bias is not a constant float32 tensor' }]);
    await expect(quantizeDynamic(convModel(), { opTypes: ['Add' as 'Conv'] })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

describe('quantizeDynamic on Gemm', () => {
  const gemmModel = (transB: boolean, alpha: number, beta: number, withC: boolean): OnnxModel => {
    const r = rng(11);
    const w = Float32Array.from({ length: K * N }, () => gauss(r) / 8);
    const c = Float32Array.from({ length: N }, () => gauss(r));
    const attr = (name: string, v: number, isFloat: boolean) => create(AttributeProtoSchema, isFloat
      ? { name, type: AttributeProto_AttributeType.FLOAT, f: v }
      : { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
    const graph = create(GraphProtoSchema, {
      name: 'gemm',
      node: [create(NodeProtoSchema, {
        opType: 'Gemm', name: 'g1', input: ['x', 'W', ...(withC ? ['C'] : [])], output: ['y'],
        attribute: [attr('transB', transB ? 1 : 0, false), attr('alpha', alpha, true), attr('beta', beta, true)],
      })],
      initializer: [f32('W', transB ? [N, K] : [K, N], w), ...(withC ? [f32('C', [N], c)] : [])],
      input: [vi('x', [M, K])],
      output: [vi('y', [M, N])],
    });
    return onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })], graph }));
  };

  it.each([
    [true, 0.5, 2, true, false], [false, 1, 1, false, true], [true, 1, 1, true, true], [false, 2, 0.25, true, false],
  ] as const)('transB %s alpha %s beta %s C %s perChannel %s: MatMulInteger on [K, N], alpha/beta·C after the rescale, cosine ≥ 0.99', async (transB, alpha, beta, withC, perChannel) => {
    const model = gemmModel(transB, alpha, beta, withC);
    const orig = join(dir, `gemm-${transB}-${alpha}-${beta}-${withC}.onnx`);
    await saveOnnxFile(model, orig);
    const { report } = await quantizeDynamic(model, { perChannel });
    expect(report.quantized.map((q) => [q.op, q.shape])).toEqual([['Gemm', [K, N]]]);
    const ops = model.proto.graph!.node.map((n) => n.opType);
    expect(ops.slice(0, 5)).toEqual(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul']);
    expect(ops.filter((o) => o === 'Mul').length).toBe(2 + (alpha !== 1 ? 1 : 0) + (withC && beta !== 1 ? 1 : 0));
    expect(ops.includes('Add')).toBe(withC);
    const file = join(dir, `gemm-${transB}-${alpha}-${beta}-${withC}.dyn.onnx`);
    await saveOnnxFile(model, file);
    const r = rng(3);
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: M * K }, () => gauss(r)), [M, K]) };
    expect(cosine((await run(orig, feeds)).y!, (await run(file, feeds)).y!)).toBeGreaterThanOrEqual(0.99);
  });

  it('skips transA = 1', async () => {
    const model = gemmModel(false, 1, 1, false);
    model.proto.graph!.node[0]!.attribute.push(create(AttributeProtoSchema, { name: 'transA', type: AttributeProto_AttributeType.INT, i: 1n }));
    const { report } = await quantizeDynamic(model);
    expect(report.skipped).toEqual([{ name: 'W', node: 'g1', scope: 'graph', reason: 'Gemm with transA = 1' }]);
  });
});

describe.each([
  { tag: 'per-tensor', perChannel: false },
  { tag: 'per-channel', perChannel: true },
])('quantizeDynamic $tag on corpus models with MatMul / Conv weights', ({ tag, perChannel }) => {
  it.each(MODELS.map((p) => [basename(p), p]))('%s: runs in onnxruntime, cosine ≥ 0.99', async (name, path) => {
    const { model, close } = await openModel(path);
    try {
      const { report } = await quantizeDynamic(model, { perChannel });
      if (report.quantized.length === 0) {
        console.log(`dynamic ${tag} ${name}: nothing quantized (${report.diagnostics.map((d) => d.code).join(',')}; skipped: ${report.skipped.slice(0, 3).map((x) => `${x.name}: ${x.reason}`).join('; ')}${report.skipped.length > 3 ? '; …' : ''})`);
        expect(report.diagnostics.length + report.skipped.length).toBeGreaterThan(0);
        return;
      }
      const file = join(dir, `${name}.${tag}.dyn.onnx`);
      await saveOnnxFile(model, file, { inputs: [path] });
      const s = await ort.InferenceSession.create(path, ORT_OPTS);
      const r = rng(1);
      const fixed = SHAPES[name] ?? {};
      const feeds: Record<string, ort.Tensor> = {};
      s.inputNames.forEach((n, i) => {
        const meta = s.inputMetadata[i] as { type?: string; shape?: (number | string)[] } | undefined;
        const shape = fixed[n] ?? (meta?.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
        const cnt = shape.reduce((a, d) => a * d, 1);
        if (meta?.type === 'int64') feeds[n] = new ort.Tensor('int64', BigInt64Array.from({ length: cnt }, () => (n === 'sr' ? 16000n : 0n)), shape);
        else feeds[n] = new ort.Tensor('float32', Float32Array.from({ length: cnt }, () => r() * 2 - 1), shape);
      });
      await s.release();
      const ref = await run(path, feeds);
      const got = await run(file, feeds);
      const cos: Record<string, number> = {};
      for (const k of Object.keys(ref)) cos[k] = cosine(ref[k]!, got[k]!);
      console.log(`dynamic ${tag} ${name}: ${report.quantized.length} weight(s) (${[...new Set(report.quantized.map((q) => q.op))].join('/')}), ${report.skipped.length} skipped, cosine ${JSON.stringify(cos)}`);
      expect(report.quantized.every((q) => q.scheme === tag)).toBe(true);
      for (const k of Object.keys(ref)) expect(cos[k]!, k).toBeGreaterThanOrEqual(MIN_COSINE[`${tag}/${name}`] ?? 0.99);
    } finally {
      await close();
    }
  });
});

describe('quantize CLI verb, --method dynamic', () => {
  const out: Out = { json: true, say: () => {}, note: () => {}, report: () => {} };
  it('writes a MatMulInteger model and reports; options of other methods are E_USAGE', async () => {
    const { model } = smallModel();
    const src = join(dir, 'cli-src.onnx');
    await saveOnnxFile(model, src);
    const o = join(dir, 'cli-dyn.onnx');
    const rep = (await quantizeCommand.run([src], { output: o, method: 'dynamic', 'reduce-range': true }, out)) as Record<string, unknown>;
    expect(rep.ok).toBe(true);
    expect(rep.method).toBe('dynamic');
    expect((rep.quantized as { reduceRange: boolean }[])[0]!.reduceRange).toBe(true);
    expect(rep.outputBytes as number).toBeLessThan(rep.inputBytes as number);
    expect(existsSync(o)).toBe(true);
    const never = join(dir, 'never.onnx');
    await expect(quantizeCommand.run([src], { output: never, method: 'dynamic', 'block-size': '32' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([src], { output: never, method: 'dynamic', dtype: 'uint8' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(quantizeCommand.run([src], { output: never, method: 'weight', 'reduce-range': true }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    expect(existsSync(never)).toBe(false);
  });
});
