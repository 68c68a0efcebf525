/**
 * Every corpus .onnx goes read → write → read, inline and with external data; the graph (all but the
 * tensor payloads) and the normalised tensor bytes must survive, and summarizeOnnx must answer.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeOnnx } from '../../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../../src/formats/onnx/write.js';
import { summarizeOnnx } from '../../../src/formats/onnx/summary.js';
import { collectTensors, isExternal } from '../../../src/formats/onnx/tensor.js';
import { sniffOnnx } from '../../../src/formats/onnx/index.js';
import { corpusName, corpusOnnxFiles, normalisedGraphBytes, openModel, sameBytes, tensorPayloads, writeModelFile } from './helpers.js';

const files = corpusOnnxFiles();
let tmp: string;
const counts = { identical: 0, streamedIdentical: 0, externalOk: 0, externalTensors: 0, sniffed: 0 };

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelsmith-onnx-corpus-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  console.log(
    `[onnx corpus] ${files.length} files: ${counts.identical} re-encoded byte-identically, ${counts.streamedIdentical} identical with every payload streamed, ` +
      `${counts.externalOk} external-data round trips (${counts.externalTensors} tensors moved), ${counts.sniffed} sniffed as ONNX`,
  );
});

describe('onnx corpus round trip', () => {
  it('finds the corpus', () => {
    expect(files.length).toBeGreaterThanOrEqual(272);
  });

  it.each(files.map((f) => [corpusName(f), f]))('%s', async (_name, file) => {
    const original = new Uint8Array(await readFile(file));
    if (sniffOnnx(original.subarray(0, 64))) counts.sniffed++;
    const { model, close } = await openModel(file);
    try {
      const payloads = await tensorPayloads(model);
      const graph = normalisedGraphBytes(model.proto);

      // Inline, default streaming threshold: same bytes as protobuf-es would produce.
      const inline = await encodeOnnx(model);
      expect(sameBytes(inline, toBinary(ModelProtoSchema, model.proto))).toBe(true);
      if (sameBytes(inline, original)) counts.identical++;

      // Every raw_data payload streamed with hand-written framing: still the same bytes.
      const streamed = await encodeOnnx(model, { streamThreshold: 0 });
      expect(sameBytes(streamed, inline)).toBe(true);
      counts.streamedIdentical++;

      const back = decodeOnnx(inline, { path: file });
      expect(sameBytes(normalisedGraphBytes(back.proto), graph)).toBe(true);

      // External data (threshold 0 so that even the tiny corpus tensors move), attributes too.
      const dir = join(tmp, corpusName(file).replace(/[\\/]/g, '__'));
      const { path, stats } = await writeModelFile(model, dir, 'model.onnx', { external: true, threshold: 0, attributes: true });
      const reread = await openModel(path);
      try {
        const tensors = collectTensors(reread.model);
        const external = tensors.filter((e) => isExternal(e.proto)).length;
        expect(external).toBe(stats.externalTensors);
        counts.externalTensors += external;
        expect(sameBytes(normalisedGraphBytes(reread.model.proto), graph)).toBe(true);
        const payloads2 = await tensorPayloads(reread.model);
        expect(payloads2.map((p) => p.name)).toEqual(payloads.map((p) => p.name));
        for (let i = 0; i < payloads.length; i++) {
          if (!sameBytes(payloads2[i]!.bytes, payloads[i]!.bytes)) throw new Error(`tensor ${payloads[i]!.name} differs after external round trip`);
        }
        // And back to a single file: external tensors are inlined again.
        const inlinedAgain = await encodeOnnx(reread.model);
        const m3 = decodeOnnx(inlinedAgain, { path: 'again' });
        expect(collectTensors(m3).some((e) => isExternal(e.proto))).toBe(false);
        expect(sameBytes(normalisedGraphBytes(m3.proto), graph)).toBe(true);
        const payloads3 = await tensorPayloads(m3);
        for (let i = 0; i < payloads.length; i++) expect(sameBytes(payloads3[i]!.bytes, payloads[i]!.bytes)).toBe(true);
        counts.externalOk++;
      } finally {
        await reread.close();
      }

      const report = summarizeOnnx(model);
      const json = JSON.parse(JSON.stringify(report)) as typeof report;
      expect(json.format).toBe('onnx');
      expect(json.tensorCount).toBe(payloads.length);
    } finally {
      await close();
    }
  });
});
