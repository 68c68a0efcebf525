import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../src/core/errors.js';
import { readIntoArena } from '../../src/kernels/arena-io.js';
import { initKernels } from '../../src/kernels/loader.js';
import { FileSource } from '../../src/platform/node.js';
import { quantizeLinear as quantizeRef } from '../../src/kernels/reference/quantize.js';

describe('file bytes straight into the arena', () => {
  it('reads a float32 payload from a file into WASM memory and quantizes it in place', async () => {
    const k = await initKernels();
    const n = 100_003;
    const x = new Float32Array(n).map((_, i) => Math.sin(i) * 3);
    const dir = await mkdtemp(join(tmpdir(), 'ms-arena-'));
    const header = new Uint8Array(13).fill(7); // unaligned file offset on purpose
    const file = join(dir, 'w.bin');
    await writeFile(file, Buffer.concat([header, new Uint8Array(x.buffer)]));
    const src = await FileSource.open(file);
    const mark = k.mark();
    try {
      const ptr = await readIntoArena(k, src, 13, n * 4);
      expect(Array.from(k.f32(ptr, 5))).toEqual(Array.from(x.subarray(0, 5)));
      const out = k.alloc(n);
      k.raw.quantize_f32_i8(ptr, n, 0.05, 0, out);
      expect(Array.from(k.i8(out, n))).toEqual(Array.from(quantizeRef(x, { type: 'int8', scale: 0.05 })));
    } finally {
      k.reset(mark);
      await src.close();
    }
  });

  it('a read past the end is E_TRUNCATED naming the file and offset', async () => {
    const k = await initKernels();
    const dir = await mkdtemp(join(tmpdir(), 'ms-arena-'));
    const file = join(dir, 'short.bin');
    await writeFile(file, new Uint8Array(10));
    const src = await FileSource.open(file);
    const mark = k.mark();
    try {
      const err = await readIntoArena(k, src, 4, 100).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ModelsmithError);
      expect((err as ModelsmithError).code).toBe('E_TRUNCATED');
      expect((err as ModelsmithError).offset).toBe(4);
      expect((err as ModelsmithError).message).toContain('short.bin');
    } finally {
      k.reset(mark);
      await src.close();
    }
  });
});
