/**
 * Ranged reads (`LazyTensor.readInto`) of the PyTorch and safetensors readers return exactly the bytes
 * of `load()`, refuse reads outside the tensor, and the safetensors writer copying through them writes
 * the same file as through `load()`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { readPytorch } from '../../src/formats/pytorch/read.js';
import { readSafetensors } from '../../src/formats/safetensors/read.js';
import { planSafetensors, writePlan, writeSafetensors } from '../../src/formats/safetensors/write.js';
import type { WeightSet } from '../../src/formats/weights.js';
import { MemorySink, MemorySource } from '../../src/io/source.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');

async function checkRanges(set: WeightSet): Promise<number> {
  let ranged = 0;
  for (const t of set.tensors) {
    if (!t.readInto || t.byteLength === 0) continue;
    ranged++;
    const all = await t.load();
    const cut = Math.floor(t.byteLength / 3);
    const a = new Uint8Array(cut);
    const b = new Uint8Array(t.byteLength - cut);
    await t.readInto(0, a);
    await t.readInto(cut, b);
    expect(Buffer.concat([a, b]).equals(Buffer.from(all)), t.name).toBe(true);
    await expect(t.readInto(t.byteLength - 1, new Uint8Array(2))).rejects.toMatchObject({ code: ErrorCodes.OUT_OF_RANGE, tensor: t.name });
  }
  return ranged;
}

describe('LazyTensor.readInto', () => {
  it('PyTorch: contiguous tensors (zip and legacy) offer it and agree with load(); strided views do not', async () => {
    for (const f of ['pytorch/generated/mobilenet_v2_fp16.pt', 'pytorch/generated/squeezenet1_1_legacy.pt']) {
      const set = await readPytorch(new MemorySource(readFileSync(resolve(CORPUS, f))), { path: f });
      expect(await checkRanges(set)).toBeGreaterThan(40);
    }
    const views = await readPytorch(new MemorySource(readFileSync(resolve(CORPUS, 'pytorch/generated/shared_views.pt'))));
    const strided = views.tensors.filter((t) => (t.extra as { contiguous: boolean }).contiguous === false);
    expect(strided.length).toBeGreaterThan(0);
    expect(strided.every((t) => t.readInto === undefined)).toBe(true);
  });

  it('safetensors: agrees with load(), and the writer copying through it writes the same bytes', async () => {
    const bytes = readFileSync(resolve(CORPUS, 'safetensors/silero-vad/silero_vad_16k.safetensors'));
    const set = await readSafetensors(new MemorySource(bytes));
    expect(await checkRanges(set)).toBe(15);
    // A 4 KiB chunk sends every tensor above 4 KiB through readInto.
    const viaRanges = new MemorySink();
    await writePlan(planSafetensors(set), viaRanges, undefined, 4096);
    expect(set.tensors.filter((t) => t.byteLength > 4096).length).toBeGreaterThan(3);
    const viaLoad = new MemorySink();
    await writeSafetensors({ ...set, tensors: set.tensors.map(({ readInto: _r, ...t }) => t) }, viaLoad);
    expect(Buffer.from(viaRanges.bytes()).equals(Buffer.from(viaLoad.bytes()))).toBe(true);
  });
});
