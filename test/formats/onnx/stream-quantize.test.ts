/**
 * Streaming weight-only quantization (src/compress/quantize/weight-stream.ts) against the in-memory
 * path (readOnnx → quantizeWeights → writeOnnx): byte-identical output on the ONNX corpus, reading
 * the source at random ('random') and as a request body read once ('forward').
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { quantizeWeights, type QuantizeWeightsOptions } from '../../../src/compress/quantize/weight.js';
import { quantizeOnnxSource, quantizeOnnxStream } from '../../../src/compress/quantize/weight-stream.js';
import { readOnnx } from '../../../src/formats/onnx/read.js';
import { writeOnnx } from '../../../src/formats/onnx/write.js';
import { corpusOnnxFiles } from './helpers.js';
import { MemorySink, MemorySource, type ByteSource } from '../../../src/io/source.js';
import { ForwardStreamSource } from '../../../src/platform/web.js';
import { defaultOpset } from '../../../src/compress/graph.js';

const CORPUS_MODELS = corpusOnnxFiles();

/** A request body: the bytes arrive in 64 KiB chunks and can be read once, forward. */
export function forwardSource(bytes: Uint8Array, name: string): ForwardStreamSource {
  let o = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (o >= bytes.byteLength) return c.close();
      c.enqueue(bytes.slice(o, o + 65536));
      o += 65536;
    },
  });
  return new ForwardStreamSource(stream, bytes.byteLength, name);
}

async function reference(bytes: Uint8Array, name: string, opts: QuantizeWeightsOptions): Promise<{ bytes: Uint8Array; opset: number | undefined } | undefined> {
  let model;
  try {
    model = await readOnnx(new MemorySource(bytes, name));
  } catch {
    return undefined;
  }
  const opset = defaultOpset(model.proto);
  await quantizeWeights(model, opts);
  const sink = new MemorySink();
  await writeOnnx(model, sink);
  return { bytes: sink.bytes(), opset };
}

const INT8: QuantizeWeightsOptions = { dtype: 'int8', perChannel: true, symmetric: true };

describe('quantizeOnnxStream', () => {
  // The node tests are tiny single-op models: the second option set runs on the real models only.
  const REAL = CORPUS_MODELS.filter((f) => !f.includes('/node/'));
  for (const [label, opts, files0, minFiles, minQuantized] of [
    ['int8 per-channel symmetric (the worker default)', INT8, CORPUS_MODELS, 250, 150],
    ['uint8 per-tensor asymmetric', { dtype: 'uint8', perChannel: false, symmetric: false }, REAL, 60, 100],
  ] as [string, QuantizeWeightsOptions, string[], number, number][]) {
    it(`${label}: same bytes as the in-memory path on the corpus, random and forward access`, async () => {
      let files = 0;
      let quantized = 0;
      let forwardOk = 0;
      let refused = 0;
      let consumed = 0;
      for (const f of files0) {
        const bytes = readFileSync(f);
        const ref = await reference(bytes, f, opts);
        if (!ref) continue;
        const want = ref.bytes;
        files++;
        const sink = new MemorySink();
        const r = await quantizeOnnxStream(new MemorySource(bytes, f), sink, { ...opts, lazyThreshold: 256 });
        quantized += r.report.quantized.length;
        expect(Buffer.from(sink.bytes()).equals(Buffer.from(want)), `random: ${f}`).toBe(true);
        const fsink = new MemorySink();
        const run = quantizeOnnxStream(forwardSource(bytes, f), fsink, { ...opts, lazyThreshold: 256, access: 'forward' });
        if (r.report.quantized.length === 0 && (ref.opset ?? 0) < 7) {
          // Weights passed before the opset (at the end of the file) said they must stay float.
          const e = await run.then(() => undefined, (x: unknown) => x as { code: string; message: string });
          if (e) {
            expect(e.code, f).toBe('E_UNSUPPORTED');
            expect(e.message).toMatch(/opset/);
            refused++;
            continue;
          }
        } else {
          consumed += (await run).payloads.consumed;
        }
        expect(Buffer.from(fsink.bytes()).equals(Buffer.from(want)), `forward: ${f}`).toBe(true);
        forwardOk++;
      }
      expect(files).toBeGreaterThan(minFiles);
      expect(forwardOk + refused).toBe(files);
      expect(refused).toBeLessThan(files / 10);
      expect(quantized).toBeGreaterThan(minQuantized);
      // Most weights were quantized as the forward scan passed them (not kept as floats).
      expect(consumed).toBeGreaterThan(quantized / 2);
      console.log(`${label}: ${files} corpus models, ${quantized} weights quantized; forward: ${forwardOk} identical (${consumed} weights quantized as they passed), ${refused} refused (opset < 7)`);
    }, 120_000);
  }
});
