/**
 * An in-memory labelled data set cut into mini-batches, reshuffled per epoch with a seed.
 * Samples are gathered into a fresh batch array per step, so memory is the data set plus one batch.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { fvalue } from '../engine/values.js';
import { epochSeed, permutation } from './shuffle.js';
import type { Batch, Labels } from './types.js';

export interface ArrayDataset {
  /** Samples back to back, each of `sampleDims` elements (C-order). Bytes (images) stay bytes until batched. */
  x: Float32Array | Uint8Array;
  /** Batched values are x / divideBy (e.g. 255 for pixels; division as numpy does it in float32). */
  divideBy?: number;
  sampleDims: readonly number[];
  labels?: Labels;
  /** Graph input name the samples feed. */
  inputName: string;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle with this seed (reshuffled per epoch); absent: data-set order. */
  seed?: number;
  /** Use only the first `limit` samples. */
  limit?: number;
  /** Keep a last batch smaller than batchSize (default true). */
  keepLast?: boolean;
}

export function sampleCount(ds: ArrayDataset): number {
  const per = ds.sampleDims.reduce((a, b) => a * b, 1);
  if (!(per >= 1) || ds.x.length % per !== 0) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `data set of ${ds.x.length} values is not a whole number of [${ds.sampleDims.join(', ')}] samples`, { tensor: ds.inputName });
  }
  const n = ds.x.length / per;
  if (ds.labels && ds.labels.length !== n) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `${ds.labels.length} labels for ${n} samples`, { tensor: ds.inputName });
  }
  return n;
}

/** A batch source for `train`: epoch → batches. */
export function arrayBatches(ds: ArrayDataset, opts: BatchOptions): (epoch: number) => Iterable<Batch> {
  const total = sampleCount(ds);
  const n = Math.min(total, opts.limit ?? total);
  const bs = opts.batchSize;
  if (!(Number.isInteger(bs) && bs >= 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `batch size must be a positive integer, got ${bs}`);
  const per = ds.sampleDims.reduce((a, b) => a * b, 1);
  const keepLast = opts.keepLast ?? true;
  const div = ds.divideBy ?? 1;
  if (!(div > 0 && Number.isFinite(div))) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `divideBy must be a positive number, got ${div}`);
  return function* (epoch: number): Iterable<Batch> {
    const order = opts.seed === undefined ? null : permutation(n, epochSeed(opts.seed, epoch));
    for (let start = 0; start < n; start += bs) {
      const count = Math.min(bs, n - start);
      if (count < bs && !keepLast) break;
      const indices = new Int32Array(count);
      const x = fvalue([count, ...ds.sampleDims]);
      let labels: Int32Array | undefined;
      if (ds.labels) labels = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const s = order ? order[start + i]! : start + i;
        indices[i] = s;
        if (div === 1) x.data.set(ds.x.subarray(s * per, (s + 1) * per), i * per);
        else for (let k = 0; k < per; k++) x.data[i * per + k] = ds.x[s * per + k]! / div;
        if (labels) labels[i] = ds.labels![s]!;
      }
      yield labels ? { inputs: { [ds.inputName]: x }, labels, indices } : { inputs: { [ds.inputName]: x }, indices };
    }
  };
}
