import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN_DIR, loadTrainingSet } from '../../src/bench/learning.js';
import { arrayBatches } from '../../src/train/data.js';

function idx(dims: number[], payload: Uint8Array): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  head[2] = 8; head[3] = dims.length;
  const v = new DataView(head.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.length + payload.length);
  out.set(head); out.set(payload, head.length);
  return out;
}

describe('learning bench: training-set loader', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'learn-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  const write = async (images: Uint8Array, labels: Uint8Array): Promise<void> => {
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), images);
    await writeFile(join(dir, 'train-labels-idx1-ubyte.gz'), labels);
  };

  it('reads gzip IDX pairs and batches pixels / 255', async () => {
    const px = Uint8Array.from({ length: 3 * 784 }, (_, i) => i % 256);
    await write(gzipSync(idx([3, 28, 28], px)), gzipSync(idx([3], Uint8Array.from([4, 0, 9]))));
    const ds = await loadTrainingSet(dir, 2);
    expect(ds.labels!.length).toBe(2);
    const [b] = [...arrayBatches(ds, { batchSize: 2 })(0)];
    expect(b!.inputs.input!.dims).toEqual([2, 1, 28, 28]);
    expect((b!.inputs.input!.data as Float32Array)[300]).toBe(Math.fround(300 % 256 / 255));
    expect([...b!.labels!]).toEqual([4, 0]);
  });

  it('refuses a file that is not gzip, mismatched labels, bad classes (E_MALFORMED)', async () => {
    const px = new Uint8Array(2 * 784);
    await write(idx([2, 28, 28], px), gzipSync(idx([2], Uint8Array.from([1, 2]))));
    await expect(loadTrainingSet(dir)).rejects.toThrow(/E_MALFORMED.*not a gzip/);
    await write(gzipSync(idx([2, 28, 28], px)), gzipSync(idx([3], Uint8Array.from([1, 2, 3]))));
    await expect(loadTrainingSet(dir)).rejects.toThrow(/E_MALFORMED.*3 labels for 2 images/);
    await write(gzipSync(idx([2, 28, 28], px)), gzipSync(idx([2], Uint8Array.from([1, 12]))));
    await expect(loadTrainingSet(dir)).rejects.toThrow(/E_MALFORMED.*label 12 of image 1/);
    await write(gzipSync(idx([2, 14, 56], px)), gzipSync(idx([2], Uint8Array.from([1, 2]))));
    await expect(loadTrainingSet(dir)).rejects.toThrow(/E_MALFORMED.*14×56/);
  });

  it('names the missing training set and how to install it (E_IO)', async () => {
    await expect(loadTrainingSet(join(dir, 'missing'))).rejects.toThrow(/E_IO: cannot read the Fashion-MNIST training set.*apt-get install dataset-fashion-mnist/);
  });

  it.runIf(existsSync(join(DEFAULT_TRAIN_DIR, 'train-images-idx3-ubyte.gz')))('loads the Debian training set (60,000 images)', async () => {
    const ds = await loadTrainingSet();
    expect(ds.labels!.length).toBe(60_000);
    expect(ds.x.length).toBe(60_000 * 784);
  });
});
