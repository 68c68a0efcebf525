/**
 * An endless stream of batches over a batch source, moving to the next epoch (and its shuffle)
 * when one is used up. Pruning draws a few batches for scoring and a few for fine-tuning at a time,
 * so it needs "the next N batches" rather than whole epochs.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { batchesFor, type Batch, type BatchSource } from './types.js';

export class BatchStream {
  private it: Iterator<Batch> | undefined;
  /** Epochs started so far. */
  epoch = -1;

  constructor(private readonly source: BatchSource) {}

  next(): Batch {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.it) {
        const r = this.it.next();
        if (!r.done) return r.value;
      }
      this.epoch++;
      this.it = batchesFor(this.source, this.epoch)[Symbol.iterator]();
    }
    // a fresh epoch yielded nothing: looping again would never end
    throw new ModelsmithError(ErrorCodes.USAGE, 'the training data yielded no batches');
  }
}
