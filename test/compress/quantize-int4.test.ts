/**
 * 4-bit blockwise MatMulNBits quantization (src/compress/quantize/int4.ts): a small in-memory model
 * (MatMul with a [64, 48] weight + Add) and the corpus models that hold MatMul weights are rewritten,
 * run in onnxruntime-node, and compared with the original and with a host computation
 * A @ dequantizeMatMulNBits(...)^T. Plus skips, shared weights, Constant weights and errors.
 * Gather → GatherBlockQuantized: embedding tables run in onnxruntime-node, rows equal the host
 * dequantization bit for bit, and an embedding + MatMul model stays within cosine 0.99.
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
import { quantizeInt4 } from '../../src/compress/quantize/int4.js';
import { onnxModel } from '../../src/formats/onnx/read.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { dequantizeBlockwise4, dequantizeMatMulNBits } from '../../src/kernels/quantize.js';
import { unpackZeroPointRows } from '../../src/kernels/reference/quantize.js';
import { compareWeights } from '../../src/eval/compare.js';
import type { OnnxModel } from '../../src/formats/onnx/read.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { quantizeCommand } from '../../src/cli/commands/quantize.js';
import type { Out } from '../../src/cli/output.js';
import { openModel, rng } from '../formats/onnx/helpers.js';
import { K, M, MODELS, N, ORT_OPTS, SHAPES, cosine, f32, gauss, run, smallModel, vi } from './quant-fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-q4-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});


describe('quantizeInt4 on a small in-memory model', () => {
  it.each([
    [16, true], [32, true], [64, true], [32, false], [16, false],
  ] as const)('block %i, symmetric %s: runs in onnxruntime, matches the host dequantized product, close to float', async (blockSize, symmetric) => {
    const { model, bias } = smallModel({ constant: blockSize === 16 && symmetric });
    const orig = join(dir, `small-${blockSize}-${symmetric}.onnx`);
    await saveOnnxFile(model, orig);
    const { report } = await quantizeInt4(model, { blockSize, symmetric });
    expect(report.quantized).toHaveLength(1);
    expect(report.skipped).toEqual([]);
    const q = report.quantized[0]!;
    expect(q.shape).toEqual([K, N]);
    expect(q.bytesAfter).toBeLessThanOrEqual(q.bytesBefore * (0.5 + (symmetric ? 4 : 4.5) / blockSize) / 4);
    const g = model.proto.graph!;
    const nb = g.node.find((n) => n.opType === 'MatMulNBits')!;
    expect(nb.domain).toBe('com.microsoft');
    expect(g.node.some((n) => n.opType === 'MatMul')).toBe(false);
    expect(g.initializer.some((t) => t.name === 'W')).toBe(false);
    expect(g.node.some((n) => n.output.includes('W'))).toBe(false);
    expect(model.proto.opsetImport.some((o) => o.domain === 'com.microsoft' && o.version === 1n)).toBe(true);
    const file = join(dir, `small-${blockSize}-${symmetric}.q4.onnx`);
    await saveOnnxFile(model, file);

    const r = rng(blockSize + (symmetric ? 1 : 0));
    const x = Float32Array.from({ length: M * K }, () => gauss(r));
    const feeds = { x: new ort.Tensor('float32', x, [M, K]) };
    const ref = (await run(orig, feeds)).y!;
    const got = (await run(file, feeds)).y!;
    expect(cosine(ref, got)).toBeGreaterThanOrEqual(0.99);

    // Host computation with the stored tensors: y = x @ deq(W)^T + bias.
    const find = (name: string): Uint8Array => {
      const t = g.initializer.find((i) => i.name === name) ?? g.node.find((n) => n.opType === 'Constant' && n.output[0] === name)!.attribute[0]!.t!;
      return t.rawData;
    };
    const sb = find(nb.input[2]!);
    const m = {
      N, K, blockSize,
      B: find(nb.input[1]!),
      scales: new Float32Array(sb.buffer.slice(sb.byteOffset, sb.byteOffset + sb.byteLength)),
      ...(nb.input[3] ? { zeroPoints: find(nb.input[3]) } : {}),
    };
    expect(Boolean(m.zeroPoints)).toBe(!symmetric);
    const d = dequantizeMatMulNBits(m); // [N, K]
    let maxErr = 0;
    for (let i = 0; i < M; i++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += x[i * K + k]! * d[n * K + k]!;
        maxErr = Math.max(maxErr, Math.abs(s + bias[n]! - got[i * N + n]!));
      }
    }
    expect(maxErr).toBeLessThan(1e-4);
  });

  it('quantizes a weight shared by two MatMuls once and keeps it when another op reads it', async () => {
    const r = rng(5);
    const w = Float32Array.from({ length: K * N }, () => gauss(r) / 8);
    const graph = create(GraphProtoSchema, {
      name: 'shared',
      node: [
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['y1'], name: 'mm1' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['y2'], name: 'mm2' }),
        create(NodeProtoSchema, { opType: 'Identity', input: ['W'], output: ['wout'], name: 'id' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'x2'], output: ['y3'], name: 'mm3' }),
      ],
      initializer: [f32('W', [K, N], w)],
      input: [vi('x', [2, K]), vi('x2', [K, 3])],
      output: [vi('y1', [2, N]), vi('y2', [2, N]), vi('wout', [K, N]), vi('y3', [2, 3])],
    });
    const model = onnxModel(create(ModelProtoSchema, { irVersion: 3n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })], graph }));
    const { report } = await quantizeInt4(model, { blockSize: 32 });
    expect(report.quantized).toHaveLength(1);
    expect(report.quantized[0]!.nodes).toEqual(['mm1', 'mm2']);
    expect(report.skipped).toEqual([{ name: 'x2', node: 'mm3', scope: 'graph', reason: 'B is computed, not a constant weight' }]);
    expect(model.proto.graph!.initializer.some((t) => t.name === 'W')).toBe(true);
    expect(model.proto.graph!.node.filter((n) => n.opType === 'MatMulNBits')).toHaveLength(2);
    expect(model.proto.irVersion).toBe(4n);
    const file = join(dir, 'shared.q4.onnx');
    await saveOnnxFile(model, file);
    const rr = rng(6);
    const out = await run(file, {
      x: new ort.Tensor('float32', Float32Array.from({ length: 2 * K }, () => gauss(rr)), [2, K]),
      x2: new ort.Tensor('float32', Float32Array.from({ length: K * 3 }, () => gauss(rr)), [K, 3]),
    });
    expect(Array.from(out.y1!)).toEqual(Array.from(out.y2!));
  });

  it('skips K < block size and excluded weights; a model without MatMul is not an error', async () => {
    const a = smallModel();
    const { report } = await quantizeInt4(a.model, { blockSize: 128 });
    expect(report.quantized).toEqual([]);
    expect(report.skipped[0]!.reason).toMatch(/K = 64 < block size 128/);
    expect(a.model.proto.graph!.node.some((n) => n.opType === 'MatMul')).toBe(true);
    expect(a.model.proto.opsetImport.some((o) => o.domain === 'com.microsoft')).toBe(false);
    const b = smallModel();
    expect((await quantizeInt4(b.model, { exclude: { names: ['mm'] } })).report.skipped[0]!.reason).toBe('excluded');

    const graph = create(GraphProtoSchema, { name: 'relu', node: [create(NodeProtoSchema, { opType: 'Relu', input: ['x'], output: ['y'] })], input: [vi('x', [2])], output: [vi('y', [2])] });
    const none = onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph }));
    const res = await quantizeInt4(none);
    expect(res.report.quantized).toEqual([]);
    expect(res.report.diagnostics.map((d) => d.code)).toContain('quantize.no_matmul');
  });

  it('rejects bad block sizes and accuracy levels with E_USAGE', async () => {
    for (const blockSize of [0, 8, 48, 512, 31.5]) {
      await expect(quantizeInt4(smallModel().model, { blockSize })).rejects.toMatchObject({ code: 'E_USAGE' });
    }
    await expect(quantizeInt4(smallModel().model, { accuracyLevel: 9 })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

describe('quantizeInt4 on corpus models with MatMul weights', () => {
  it.each(MODELS.map((p) => [basename(p), p]))('%s: runs in onnxruntime, cosine ≥ 0.9', async (name, path) => {
    const { model, close } = await openModel(path);
    try {
      const { report } = await quantizeInt4(model, { blockSize: 32 });
      if (report.quantized.length === 0) {
        console.log(`int4 ${name}: no MatMul weight quantized (${report.diagnostics.map((d) => d.code).join(',')}; skipped: ${report.skipped.map((x) => `${x.name}: ${x.reason}`).join('; ')})`);
        expect(report.diagnostics.length + report.skipped.length).toBeGreaterThan(0);
        return;
      }
      const file = join(dir, `${name}.q4.onnx`);
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
      console.log(`int4 ${name}: ${report.quantized.length} MatMul weight(s), ${report.skipped.length} skipped, cosine ${JSON.stringify(cos)}`);
      for (const k of Object.keys(ref)) expect(cos[k]!, k).toBeGreaterThanOrEqual(0.9);
    } finally {
      await close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Gather → GatherBlockQuantized

const V = 100;

/** ids int64 [2, 3] → Gather(E [V, D], axis) [→ MatMul(W [D, 48])] → y; E optionally a Constant node. */
function embeddingModel(D: number, opts: { matmul?: boolean; axis?: number; constant?: boolean; seed?: number } = {}): { model: OnnxModel; e: Float32Array } {
  const r = rng(opts.seed ?? 3);
  const e = Float32Array.from({ length: V * D }, () => gauss(r));
  const nodes = [create(NodeProtoSchema, {
    opType: 'Gather', name: 'emb', input: ['E', 'ids'], output: [opts.matmul ? 'h' : 'y'],
    attribute: opts.axis === undefined ? [] : [create(AttributeProtoSchema, { name: 'axis', type: AttributeProto_AttributeType.INT, i: BigInt(opts.axis) })],
  })];
  const initializer = [];
  if (opts.constant) {
    nodes.unshift(create(NodeProtoSchema, {
      opType: 'Constant', output: ['E'], name: 'econst',
      attribute: [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: f32('', [V, D], e) })],
    }));
  } else initializer.push(f32('E', [V, D], e));
  if (opts.matmul) {
    nodes.push(create(NodeProtoSchema, { opType: 'MatMul', name: 'proj', input: ['h', 'W'], output: ['y'] }));
    initializer.push(f32('W', [D, N], Float32Array.from({ length: D * N }, () => gauss(r) / 8)));
  }
  const graph = create(GraphProtoSchema, {
    name: 'embedding', node: nodes, initializer,
    input: [tensorValueInfo('ids', ['b', 's'], 7)], output: [vi('y', ['b', 's', opts.matmul ? N : D])],
  });
  const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph });
  return { model: onnxModel(proto), e };
}

/** Row ids, one negative (Gather counts it from the end; GatherBlockQuantized must too). */
const IDS = [7, 0, 99, 42, -1, 63];
const row = (id: number): number => (id < 0 ? id + V : id);
const idsFeed = () => ({ ids: new ort.Tensor('int64', BigInt64Array.from(IDS.map(BigInt)), [2, 3]) });

describe('quantizeInt4 on Gather (embedding tables → GatherBlockQuantized)', () => {
  it.each([
    [64, 32, true, false], [64, 32, false, false], [80, 32, true, false], [96, 64, false, false], [64, 16, false, true],
  ] as const)('D %i, block %i, symmetric %s, Constant %s: onnxruntime output equals the host dequantized rows', async (D, blockSize, symmetric, constant) => {
    const { model, e } = embeddingModel(D, { constant });
    const { report } = await quantizeInt4(model, { blockSize, symmetric });
    expect(report.skipped).toEqual([]);
    expect(report.quantized).toHaveLength(1);
    const q = report.quantized[0]!;
    expect(q).toMatchObject({ name: 'E', op: 'Gather', shape: [V, D], nodes: ['emb'], kind: constant ? 'constant' : 'initializer' });
    const kb = Math.ceil(D / blockSize);
    expect(q.bytesAfter).toBe(V * (D / 2 + kb * 4 + (symmetric ? 0 : Math.ceil(kb / 2))));
    expect(q.snrDb).toBeGreaterThan(15);
    const g = model.proto.graph!;
    const node = g.node.find((n) => n.opType === 'GatherBlockQuantized')!;
    expect(node.domain).toBe('com.microsoft');
    expect(Object.fromEntries(node.attribute.map((a) => [a.name, Number(a.i)]))).toEqual({ bits: 4, block_size: blockSize, gather_axis: 0, quantize_axis: 1 });
    expect(g.node.some((n) => n.opType === 'Gather')).toBe(false);
    expect(g.initializer.some((t) => t.name === 'E') || g.node.some((n) => n.output.includes('E'))).toBe(false);
    expect(model.proto.opsetImport.some((o) => o.domain === 'com.microsoft')).toBe(true);
    const file = join(dir, `gather-${D}-${blockSize}-${symmetric}-${constant}.onnx`);
    await saveOnnxFile(model, file);
    const got = (await run(file, idsFeed())).y!;
    expect(got.length).toBe(IDS.length * D);

    // The stored tensors, dequantized on the host, give exactly the rows onnxruntime returns.
    const find = (name: string): Uint8Array => (g.initializer.find((i) => i.name === name) ?? g.node.find((n) => n.opType === 'Constant' && n.output[0] === name)!.attribute[0]!.t!).rawData;
    const sb = find(node.input[2]!);
    const deq = dequantizeBlockwise4({
      mode: 'uint4', shape: [V, D], blockSize, data: find(node.input[0]!),
      scales: new Float32Array(sb.buffer.slice(sb.byteOffset, sb.byteOffset + sb.byteLength)),
      zeroPoints: unpackZeroPointRows(node.input[3] ? find(node.input[3]) : undefined, V, kb),
    });
    let hostErr = 0;
    let floatErr = 0;
    IDS.map(row).forEach((id, i) => {
      for (let d = 0; d < D; d++) {
        hostErr = Math.max(hostErr, Math.abs(got[i * D + d]! - deq[id * D + d]!));
        floatErr = Math.max(floatErr, Math.abs(got[i * D + d]! - e[id * D + d]!));
      }
    });
    expect(hostErr).toBe(0);
    expect(floatErr).toBeGreaterThan(0);
    expect(floatErr).toBeLessThanOrEqual(q.maxAbs);
    const gotRows = Float32Array.from(IDS.map(row).flatMap((id) => Array.from(e.subarray(id * D, (id + 1) * D))));
    expect(cosine(gotRows, got)).toBeGreaterThan(0.98);
  });

  it('embedding + MatMul end to end: both rewritten, cosine ≥ 0.99 against the float model, eval finds both weights', async () => {
    const ref = embeddingModel(128, { matmul: true });
    const orig = join(dir, 'emb-mm.onnx');
    await saveOnnxFile(ref.model, orig);
    const { model } = embeddingModel(128, { matmul: true });
    const { report } = await quantizeInt4(model, { blockSize: 32 });
    expect(report.quantized.map((q) => [q.name, q.op])).toEqual([['W', 'MatMul'], ['E', 'Gather']]);
    expect(report.options.opTypes).toEqual(['MatMul', 'Gather']);
    const file = join(dir, 'emb-mm.q4.onnx');
    await saveOnnxFile(model, file);
    const a = (await run(orig, idsFeed())).y!;
    const b = (await run(file, idsFeed())).y!;
    expect(cosine(a, b)).toBeGreaterThanOrEqual(0.99);
    const rows = await compareWeights(embeddingModel(128, { matmul: true }).model, model);
    expect(rows.map((w) => [w.name, w.form])).toEqual([['E', 'gather-block'], ['W', 'matmulnbits']]);
    for (const w of rows) expect(w.stats!.snrDb).toBeGreaterThan(15);
  });

  it('a table read by a Gather and a MatMul (tied weights) gets both forms and is then dropped', async () => {
    const r = rng(9);
    const e = Float32Array.from({ length: V * 64 }, () => gauss(r));
    const graph = create(GraphProtoSchema, {
      name: 'tied',
      node: [
        create(NodeProtoSchema, { opType: 'Gather', name: 'emb', input: ['E', 'ids'], output: ['h'] }),
        create(NodeProtoSchema, { opType: 'MatMul', name: 'logits', input: ['x', 'E'], output: ['y'] }),
      ],
      initializer: [f32('E', [V, 64], e)],
      input: [tensorValueInfo('ids', [2, 3], 7), vi('x', [2, V])],
      output: [vi('h', [2, 3, 64]), vi('y', [2, 64])],
    });
    const model = onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph }));
    const { report } = await quantizeInt4(model, { blockSize: 32 });
    expect(report.quantized.map((q) => q.op).sort()).toEqual(['Gather', 'MatMul']);
    expect(model.proto.graph!.initializer.some((t) => t.name === 'E')).toBe(false);
    const file = join(dir, 'tied.q4.onnx');
    await saveOnnxFile(model, file);
    const rr = rng(10);
    const out = await run(file, { ...idsFeed(), x: new ort.Tensor('float32', Float32Array.from({ length: 2 * V }, () => gauss(rr)), [2, V]) });
    expect(out.h!.length).toBe(6 * 64);
    expect(out.y!.length).toBe(2 * 64);
  });

  it('skips odd widths, narrow tables, other axes, excluded names; opTypes limits the ops; computed data is ignored', async () => {
    const reasons = async (D: number, opts: Parameters<typeof embeddingModel>[1] = {}, q: Parameters<typeof quantizeInt4>[1] = {}) => {
      const { model } = embeddingModel(D, opts);
      const { report } = await quantizeInt4(model, q);
      expect(report.quantized).toEqual([]);
      expect(model.proto.graph!.node.some((n) => n.opType === 'Gather')).toBe(true);
      return report.skipped.map((x) => x.reason);
    };
    expect(await reasons(65, {}, { blockSize: 16 })).toEqual(['D = 65 is odd (packed rows need an even width)']);
    expect(await reasons(24)).toEqual(['D = 24 < block size 32']);
    expect(await reasons(64, { axis: 1 })).toEqual(['Gather axis 1 (GatherBlockQuantized here gathers rows, axis 0)']);
    expect(await reasons(64, {}, { exclude: { names: ['emb'] } })).toEqual(['excluded']);
    expect(await reasons(64, { matmul: true }, { exclude: { names: ['E', 'W'] } })).toEqual(['excluded', 'excluded']);
    const only = embeddingModel(64, { matmul: true });
    const { report } = await quantizeInt4(only.model, { opTypes: ['MatMul'] });
    expect(report.quantized.map((q) => q.op)).toEqual(['MatMul']);
    expect(only.model.proto.graph!.node.some((n) => n.opType === 'Gather')).toBe(true);
    // Gather of a computed tensor (a shape, indices): not a weight, not even a skip line.
    const graph = create(GraphProtoSchema, {
      name: 'shape', node: [create(NodeProtoSchema, { opType: 'Shape', input: ['x'], output: ['s'] }), create(NodeProtoSchema, { opType: 'Gather', input: ['s', 'i'], output: ['y'] })],
      input: [vi('x', [2, 3]), vi('i', [1])], output: [vi('y', [1])],
    });
    const m = onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph }));
    const res = await quantizeInt4(m);
    expect(res.report.skipped).toEqual([]);
    expect(res.report.diagnostics.map((d) => d.code)).toContain('quantize.no_matmul');
  });

  it('rejects unknown opTypes with E_USAGE', async () => {
    await expect(quantizeInt4(embeddingModel(64).model, { opTypes: ['Conv' as 'MatMul'] })).rejects.toMatchObject({ code: 'E_USAGE', message: expect.stringMatching(/not 'Conv'/) });
  });
});

describe('quantize CLI verb, --method int4', () => {
  const out: Out = { json: true, say: () => {}, note: () => {}, report: () => {} };
  it('writes a MatMulNBits model and reports; bad --block-size is E_USAGE', async () => {
    const { model } = smallModel();
    const src = join(dir, 'cli-src.onnx');
    await saveOnnxFile(model, src);
    const o = join(dir, 'cli-int4.onnx');
    const rep = (await quantizeCommand.run([src], { output: o, method: 'int4', 'block-size': '16' }, out)) as Record<string, unknown>;
    expect(rep.ok).toBe(true);
    expect(rep.method).toBe('int4');
    expect((rep.quantized as unknown[]).length).toBe(1);
    expect(rep.outputBytes as number).toBeLessThan(rep.inputBytes as number);
    expect(existsSync(o)).toBe(true);
    const never = join(dir, 'never.onnx');
    for (const b of ['12', 'x', '1024']) {
      await expect(quantizeCommand.run([src], { output: never, method: 'int4', 'block-size': b }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    }
    await expect(quantizeCommand.run([src], { output: never, method: 'weight', 'block-size': '32' }, out)).rejects.toMatchObject({ code: 'E_USAGE' });
    expect(existsSync(never)).toBe(false);
  });
});
