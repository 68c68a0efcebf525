/**
 * readOnnxLazy (src/formats/onnx/stream): the skeleton scan leaves big raw_data payloads in the
 * source, and writing the lazy model gives the same bytes as the eager reader's model.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readOnnx } from '../../../src/formats/onnx/read.js';
import { writeOnnx } from '../../../src/formats/onnx/write.js';
import { readOnnxLazy } from '../../../src/formats/onnx/stream/lazy.js';
import { corpusOnnxFiles } from './helpers.js';
import { MemorySink, MemorySource } from '../../../src/io/source.js';



const CORPUS_MODELS = corpusOnnxFiles();

async function written(m: Parameters<typeof writeOnnx>[0]): Promise<Uint8Array> {
  const sink = new MemorySink();
  await writeOnnx(m, sink);
  return sink.bytes();
}

describe('readOnnxLazy', () => {
  it('writes every corpus model byte-identically to the eager reader (payloads ≥ 256 B left in the source)', async () => {
    let lazyPayloads = 0;
    let files = 0;
    for (const f of CORPUS_MODELS) {
      const bytes = readFileSync(f);
      let eager;
      try {
        eager = await readOnnx(new MemorySource(bytes, f));
      } catch {
        continue; // files the eager reader refuses are covered by the hostile tests
      }
      const lazy = await readOnnxLazy(new MemorySource(bytes, f), { threshold: 256 });
      lazyPayloads += lazy.scan.payloads.length;
      files++;
      expect(Buffer.from(await written(lazy)).equals(Buffer.from(await written(eager))), f).toBe(true);
    }
    expect(files).toBeGreaterThan(250);
    expect(lazyPayloads).toBeGreaterThan(450);
  });
});
