/**
 * What training needs from the engine beyond `EngineApi`: a way to get the trained model back.
 * Kept here (not in src/engine/types.ts, which is a frozen contract) as a structural type, so any
 * engine with `exportModel()` fits.
 */
import type { ModelProto } from 'onnx-buf';
import type { EngineApi, FValue, Value } from '../engine/types.js';

export interface TrainableEngine extends EngineApi {
  /** The model with the current parameter values as initializers. */
  exportModel(): ModelProto;
}

/** Class ids of a batch, one per sample. */
export type Labels = Uint8Array | Int32Array | readonly number[];

/** One mini-batch. `indices` (positions in the data set) let callers cache per-sample results such as teacher logits. */
export interface Batch {
  inputs: Record<string, Value>;
  labels?: Labels;
  indices?: Int32Array;
}

/** Batches for one epoch; a function gets the epoch number so it can reshuffle. */
export type BatchSource = Iterable<Batch> | ((epoch: number) => Iterable<Batch>);

export function batchesFor(src: BatchSource, epoch: number): Iterable<Batch> {
  return typeof src === 'function' ? src(epoch) : src;
}

export interface LossResult {
  /** Mean loss over the batch. */
  loss: number;
  /** dLoss/dLogits, same shape as the logits. */
  grad: FValue;
  /** Correctly classified samples (top-1), when labels are known. */
  correct?: number;
}
