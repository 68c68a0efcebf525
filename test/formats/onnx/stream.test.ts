/**
 * Ranged payload access (tensor.ts payloadReader) and writeOnnx's streaming of external payloads
 * bigger than its 16 MiB window (one reused buffer for every window of every tensor).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, TensorProtoSchema } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { float32TensorProto } from '../../../src/formats/onnx/build.js';
import { onnxModel } from '../../../src/formats/onnx/read.js';
import { collectTensors, modelTensorContext, payloadReader } from '../../../src/formats/onnx/tensor.js';
import { writeOnnx } from '../../../src/formats/onnx/write.js';
import { MemorySink } from '../../../src/io/source.js';
import { saveOnnxFile } from '../../../src/platform/open.js';
import { openModel, rng } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-onnx-stream-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function model(sizes: number[]) {
  const r = rng(5);
  const initializer = sizes.map((n, i) => float32TensorProto(`T${i}`, [n], Float32Array.from({ length: n }, () => r())));
  const graph = create(GraphProtoSchema, { name: 'g', initializer });
  return onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph }));
}

describe('payloadReader', () => {
  it('reads inline raw_data, typed fields and external data in ranges', async () => {
    const m = model([1000]);
    const raw = m.proto.graph!.initializer[0]!.rawData;
    const r = await payloadReader(m.proto.graph!.initializer[0]!);
    expect(r.length).toBe(4000);
    const part = new Uint8Array(100);
    await r.readInto(396, part);
    expect(Buffer.from(part).equals(Buffer.from(raw.subarray(396, 496)))).toBe(true);

    const typed = create(TensorProtoSchema, { name: 't', dims: [3n], dataType: 1, floatData: [1, 2, 3] });
    const tr = await payloadReader(typed);
    const all = new Uint8Array(12);
    await tr.readInto(0, all);
    expect(Array.from(new Float32Array(all.buffer))).toEqual([1, 2, 3]);

    const path = join(dir, 'ranged.onnx');
    await saveOnnxFile(model([1000]), path, { externalData: { threshold: 16 } });
    const opened = await openModel(path);
    try {
      const er = await payloadReader(opened.model.proto.graph!.initializer[0]!, modelTensorContext(opened.model));
      const got = new Uint8Array(100);
      await er.readInto(396, got);
      expect(Buffer.from(got).equals(Buffer.from(part))).toBe(true);
    } finally {
      await opened.close();
    }
  });

  it('refuses reads outside the payload (E_OUT_OF_RANGE) and string tensors (E_DTYPE)', async () => {
    const r = await payloadReader(model([10]).proto.graph!.initializer[0]!);
    await expect(r.readInto(36, new Uint8Array(8))).rejects.toMatchObject({ code: 'E_OUT_OF_RANGE', tensor: 'T0' });
    await expect(r.readInto(-1, new Uint8Array(1))).rejects.toMatchObject({ code: 'E_OUT_OF_RANGE' });
    const s = create(TensorProtoSchema, { name: 's', dims: [1n], dataType: 8, stringData: [new Uint8Array([65])] });
    await expect(payloadReader(s)).rejects.toMatchObject({ code: 'E_DTYPE', tensor: 's' });
  });
});

describe('writeOnnx: external payloads larger than one window', () => {
  it('streams two 20 MiB tensors through the reused window buffer unchanged', async () => {
    const n = 5 * 2 ** 20; // 20 MiB of float32: one full 16 MiB window and a 4 MiB one each
    const path = join(dir, 'big.onnx');
    await saveOnnxFile(model([n, n + 3]), path, { externalData: { threshold: 1024 } });
    const opened = await openModel(path);
    try {
      const data = new MemorySink();
      const sink = new MemorySink();
      const stats = await writeOnnx(opened.model, sink, { externalData: { location: 'copy.data', sink: data } });
      expect(stats.externalTensors).toBe(2);
      // Same alignment and order as the input: the copy is byte-identical to the original data file.
      const want = readFileSync(`${path}.data`);
      const got = data.bytes();
      expect(got.byteLength).toBe(want.byteLength);
      expect(Buffer.from(got).equals(want)).toBe(true);
      expect(collectTensors(opened.model).length).toBe(2);
    } finally {
      await opened.close();
    }
  });
});
