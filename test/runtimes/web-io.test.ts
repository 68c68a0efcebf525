/**
 * src/platform/web.ts: Blob source, stream sinks and the forward-only stream source, in Node's web
 * globals (the same classes run in browsers, Deno and workerd). Fast: part of the main suite.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../src/core/errors.js';
import { MemorySink, MemorySource } from '../../src/io/source.js';
import { readSafetensors } from '../../src/formats/safetensors/read.js';
import { writeSafetensors } from '../../src/formats/safetensors/write.js';
import { BlobSink, BlobSource, ForwardStreamSource, StreamSink } from '../../src/platform/web.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const SILERO = resolve(CORPUS, 'safetensors/silero-vad/silero_vad_16k.safetensors');

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 255);

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ModelsmithError);
    return (e as ModelsmithError).code;
  }
  return undefined;
}

/** A ReadableStream yielding `data` in chunks of the given sizes (cycled). */
function chunked(data: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let pos = 0;
  let k = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (pos >= data.byteLength) return c.close();
      const n = sizes[k++ % sizes.length]!;
      c.enqueue(data.slice(pos, pos + n));
      pos += n;
    },
  });
}

describe('BlobSource', () => {
  it('reads ranges of a Blob and takes the File name', async () => {
    const data = bytes(1000);
    const src = new BlobSource(new File([data], 'model.bin'));
    expect(src.size).toBe(1000);
    expect(src.name).toBe('model.bin');
    expect(await src.read(10, 5)).toEqual(data.subarray(10, 15));
    expect(await src.read(1000, 0)).toEqual(new Uint8Array(0));
    const t = new Uint8Array(100);
    await src.readInto(900, t);
    expect(t).toEqual(data.subarray(900));
    expect(new BlobSource(new Blob([data])).name).toBe('<blob>');
  });

  it('refuses reads past the end (E_TRUNCATED) and negative ranges (E_OUT_OF_RANGE), naming the blob', async () => {
    const src = new BlobSource(new Blob([bytes(10)]), 'up.onnx');
    const err = await src.read(8, 4).catch((e: ModelsmithError) => e);
    expect((err as ModelsmithError).code).toBe(ErrorCodes.TRUNCATED);
    expect((err as ModelsmithError).path).toBe('up.onnx');
    expect((err as ModelsmithError).offset).toBe(8);
    expect(await code(src.read(-1, 2))).toBe(ErrorCodes.OUT_OF_RANGE);
  });

  it('turns a failing Blob read into E_IO and a short one into E_TRUNCATED', async () => {
    const failing = { size: 10, slice: () => ({ arrayBuffer: () => Promise.reject(new Error('NotReadableError')) }) } as unknown as Blob;
    expect(await code(new BlobSource(failing, 'f').read(0, 4))).toBe(ErrorCodes.IO);
    const short = { size: 10, slice: () => ({ arrayBuffer: async () => new ArrayBuffer(2) }) } as unknown as Blob;
    expect(await code(new BlobSource(short, 's').read(0, 4))).toBe(ErrorCodes.TRUNCATED);
  });

  it('reads a corpus safetensors file to the same tensors as an in-memory source', async () => {
    const file = readFileSync(SILERO);
    const a = await readSafetensors(new BlobSource(new Blob([file]), 'silero.safetensors'));
    const b = await readSafetensors(new MemorySource(file, 'silero.safetensors'));
    expect(a.tensors.length).toBe(15);
    for (let i = 0; i < a.tensors.length; i++) {
      expect(a.tensors[i]!.name).toBe(b.tensors[i]!.name);
      expect(sha(await a.tensors[i]!.load())).toBe(sha(await b.tensors[i]!.load()));
    }
  });
});

describe('StreamSink', () => {
  it('writes copies of the chunks, so a reused buffer does not change the output', async () => {
    const got: Uint8Array[] = [];
    const sink = StreamSink.of(new WritableStream<Uint8Array>({ write: (c) => void got.push(c) }), 'out');
    const buf = new Uint8Array([1, 2, 3]);
    await sink.write(buf);
    buf.fill(9);
    await sink.write(buf);
    await sink.write(new Uint8Array(0));
    await sink.close();
    expect(sink.position).toBe(6);
    expect(got).toEqual([new Uint8Array([1, 2, 3]), new Uint8Array([9, 9, 9])]);
  });

  it('waits for a slow consumer instead of queueing (backpressure)', async () => {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 1 }, { highWaterMark: 0 });
    const sink = StreamSink.of(writable);
    let written = 0;
    const producer = (async () => {
      for (let i = 0; i < 8; i++) {
        await sink.write(new Uint8Array(1024));
        written++;
      }
      await sink.close();
    })();
    await new Promise((r) => setTimeout(r, 20));
    // Nobody reads yet: the producer must be stuck after at most a couple of chunks.
    expect(written).toBeLessThanOrEqual(2);
    let total = 0;
    for await (const c of readable as unknown as AsyncIterable<Uint8Array>) total += c.byteLength;
    await producer;
    expect(total).toBe(8 * 1024);
    expect(written).toBe(8);
  });

  it('reports a failed or aborted stream as E_IO with the offset reached', async () => {
    let n = 0;
    const sink = StreamSink.of(new WritableStream<Uint8Array>({ write: () => { if (++n === 2) throw new Error('client went away'); } }), 'resp');
    await sink.write(new Uint8Array(5));
    const err = await sink.write(new Uint8Array(5)).catch((e: ModelsmithError) => e);
    expect((err as ModelsmithError).code).toBe(ErrorCodes.IO);
    expect((err as ModelsmithError).offset).toBe(5);
    expect(await code(sink.close())).toBe(ErrorCodes.IO);
  });
});

describe('BlobSink', () => {
  it('collects a safetensors file into a Blob byte-identical to MemorySink', async () => {
    const set = await readSafetensors(new MemorySource(readFileSync(SILERO), 'silero.safetensors'));
    const a = new BlobSink();
    const b = new MemorySink();
    await writeSafetensors(set, a);
    await writeSafetensors(set, b);
    const blob = a.toBlob();
    expect(blob.size).toBe(a.position);
    expect(sha(new Uint8Array(await blob.arrayBuffer()))).toBe(sha(b.bytes()));
  });
});

describe('ForwardStreamSource', () => {
  const data = bytes(10_000);

  it('reads forward across chunk borders, skipping what is not asked for', async () => {
    const src = new ForwardStreamSource(chunked(data, [7, 1000, 3, 4096]), data.byteLength, 'body');
    expect(await src.peek(16)).toEqual(data.subarray(0, 16));
    expect(await src.read(0, 16)).toEqual(data.subarray(0, 16));
    expect(await src.read(5000, 2000)).toEqual(data.subarray(5000, 7000));
    // The last range can be read again (a pass loading the same tensor twice).
    expect(await src.read(5500, 10)).toEqual(data.subarray(5500, 5510));
    await src.finish();
  });

  it('refuses a backward read with E_UNSUPPORTED, naming the stream and offset', async () => {
    const src = new ForwardStreamSource(chunked(data, [100]), data.byteLength, 'body');
    await src.read(0, 10);
    await src.read(500, 10);
    src.forget();
    const err = await src.read(100, 10).catch((e: ModelsmithError) => e);
    expect((err as ModelsmithError).code).toBe(ErrorCodes.UNSUPPORTED);
    expect((err as ModelsmithError).path).toBe('body');
    expect((err as ModelsmithError).offset).toBe(100);
  });

  it('E_TRUNCATED when the stream ends before the announced size, E_MALFORMED when it runs longer', async () => {
    const short = new ForwardStreamSource(chunked(data.subarray(0, 100), [64]), 200, 'short');
    expect(await code(short.read(50, 100))).toBe(ErrorCodes.TRUNCATED);
    const short2 = new ForwardStreamSource(chunked(data.subarray(0, 100), [64]), 200, 'short2');
    expect(await code(short2.finish())).toBe(ErrorCodes.TRUNCATED);
    const long = new ForwardStreamSource(chunked(data, [64]), 100, 'long');
    await long.read(0, 100);
    expect(await code(long.finish())).toBe(ErrorCodes.MALFORMED);
    // Reads past the announced size never touch the stream.
    expect(await code(new ForwardStreamSource(chunked(data, [64]), 100).read(90, 20))).toBe(ErrorCodes.TRUNCATED);
  });

  it('E_OUT_OF_RANGE for an impossible size or peek, E_IO for a broken stream or a non-byte chunk', () => {
    expect(() => new ForwardStreamSource(chunked(data, [1]), -1)).toThrow(expect.objectContaining({ code: ErrorCodes.OUT_OF_RANGE }));
    expect(() => new ForwardStreamSource(chunked(data, [1]), 1.5)).toThrow(expect.objectContaining({ code: ErrorCodes.OUT_OF_RANGE }));
    return (async () => {
      expect(await code(new ForwardStreamSource(chunked(data, [1]), 10).peek(2 << 20))).toBe(ErrorCodes.OUT_OF_RANGE);
      // A read over the cap fails before allocating (a hostile header announcing one huge tensor).
      const capped = new ForwardStreamSource(chunked(data, [64]), data.byteLength, 'c', { maxRead: 1000 });
      expect(await capped.read(0, 1000)).toEqual(data.subarray(0, 1000));
      expect(await code(capped.read(1000, 1001))).toBe(ErrorCodes.LIMIT);
      const broken = new ReadableStream<Uint8Array>({ pull: (c) => c.error(new Error('reset')) });
      expect(await code(new ForwardStreamSource(broken, 10, 'b').read(0, 4))).toBe(ErrorCodes.IO);
      const text = new ReadableStream<unknown>({ pull: (c) => c.enqueue('abc') }) as ReadableStream<Uint8Array>;
      expect(await code(new ForwardStreamSource(text, 10, 't').read(0, 4))).toBe(ErrorCodes.IO);
    })();
  });

  it('reads a corpus safetensors file forward in 1 KiB chunks to the same tensors', async () => {
    const file = readFileSync(SILERO);
    const set = await readSafetensors(new ForwardStreamSource(chunked(file, [1024]), file.byteLength, 'silero'));
    const ref = await readSafetensors(new MemorySource(file, 'silero'));
    // Load in file order: the only order a forward-only source can serve.
    const order = [...set.tensors.keys()].sort((a, b) => Number(set.tensors[a]!.extra!.fileOffset) - Number(set.tensors[b]!.extra!.fileOffset));
    for (const i of order) expect(sha(await set.tensors[i]!.load())).toBe(sha(await ref.tensors[i]!.load()));
  });
});
