/**
 * The training loop on the engine: forward with a tape → loss and dL/dlogits → backward → optimiser
 * step, per mini-batch. Evaluation runs inference only (no tape kept).
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { EngineApi, FValue, Value } from '../engine/types.js';
import { correctCount, crossEntropy } from './losses.js';
import type { Optimizer } from './optim.js';
import { batchesFor, type Batch, type BatchSource, type LossResult } from './types.js';

export type LossFn = (logits: FValue, batch: Batch) => LossResult;
export type LossSpec = 'cross-entropy' | LossFn;

export interface StepProgress {
  epoch: number;
  /** Step within the epoch (0-based). */
  step: number;
  /** Steps since the start of training. */
  globalStep: number;
  /** This batch's loss and top-1 accuracy (NaN when the batch has no labels). */
  loss: number;
  accuracy: number;
}

export interface EpochStats {
  epoch: number;
  steps: number;
  samples: number;
  /** Sample-weighted mean of the batch losses over the epoch (measured before each step's update). */
  loss: number;
  accuracy: number;
  seconds: number;
}

export interface TrainOptions {
  epochs: number;
  optimizer: Optimizer;
  loss?: LossSpec;
  /** Name of the logits value (the first graph output by default). */
  output?: string;
  /** Stop after this many steps in total (a training budget in steps rather than epochs). */
  maxSteps?: number;
  /**
   * Learning-rate decay per epoch from the optimiser's initial lr: 'cosine' sets
   * lr₀·½(1 + cos(π·epoch/epochs)) at the start of each epoch (default 'constant').
   */
  lrDecay?: 'constant' | 'cosine';
  onProgress?(p: StepProgress): void;
  onEpoch?(e: EpochStats): void;
}

export interface TrainResult {
  epochs: EpochStats[];
  steps: number;
}

function lossFn(spec: LossSpec | undefined): LossFn {
  if (spec === undefined || spec === 'cross-entropy') {
    return (logits, batch) => {
      if (!batch.labels) throw new ModelsmithError(ErrorCodes.USAGE, 'cross-entropy needs labels; this batch has none');
      return crossEntropy(logits, batch.labels);
    };
  }
  if (typeof spec === 'function') return spec;
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `loss ${String(spec)} (supported: cross-entropy or a function)`);
}

export function logitsOf(values: Record<string, Value>, name: string): FValue {
  const v = values[name];
  if (!v) throw new ModelsmithError(ErrorCodes.USAGE, `the model has no value named ${name}`, { tensor: name });
  if (v.dtype !== 'float32') throw new ModelsmithError(ErrorCodes.DTYPE, `logits must be float32, got ${v.dtype}`, { tensor: name });
  return v as FValue;
}

export function outputName(engine: EngineApi, output?: string): string {
  const name = output ?? engine.outputNames[0];
  if (!name) throw new ModelsmithError(ErrorCodes.USAGE, 'the model has no outputs');
  return name;
}

/** One optimisation step on one batch; returns the loss result (computed before the update). */
export function trainStep(engine: EngineApi, batch: Batch, optimizer: Optimizer, loss: LossFn, output: string): LossResult {
  const { values, tape } = engine.forward(batch.inputs, { outputs: [output] });
  const r = loss(logitsOf(values, output), batch);
  const grads = engine.backward(tape, { [output]: r.grad });
  optimizer.step(engine.params, grads);
  return r;
}

export function train(engine: EngineApi, batches: BatchSource, opts: TrainOptions): TrainResult {
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 0)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `epochs must be a non-negative integer, got ${opts.epochs}`);
  const loss = lossFn(opts.loss);
  const output = outputName(engine, opts.output);
  const maxSteps = opts.maxSteps ?? Infinity;
  const decay = opts.lrDecay ?? 'constant';
  if (decay !== 'constant' && decay !== 'cosine') throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `lr decay ${String(decay)} (supported: constant, cosine)`);
  const lr0 = opts.optimizer.lr;
  const epochs: EpochStats[] = [];
  let globalStep = 0;
  for (let epoch = 0; epoch < opts.epochs && globalStep < maxSteps; epoch++) {
    if (decay === 'cosine') opts.optimizer.lr = lr0 * 0.5 * (1 + Math.cos((Math.PI * epoch) / opts.epochs));
    const t0 = performance.now();
    let steps = 0, samples = 0, lossSum = 0, correct = 0, labelled = 0;
    for (const batch of batchesFor(batches, epoch)) {
      if (globalStep >= maxSteps) break;
      const r = trainStep(engine, batch, opts.optimizer, loss, output);
      const n = r.grad.dims[0] ?? 1;
      samples += n;
      lossSum += r.loss * n;
      if (r.correct !== undefined) { correct += r.correct; labelled += n; }
      opts.onProgress?.({ epoch, step: steps, globalStep, loss: r.loss, accuracy: r.correct !== undefined ? r.correct / n : NaN });
      steps++;
      globalStep++;
    }
    const stats: EpochStats = { epoch, steps, samples, loss: samples ? lossSum / samples : NaN, accuracy: labelled ? correct / labelled : NaN, seconds: (performance.now() - t0) / 1000 };
    epochs.push(stats);
    opts.onEpoch?.(stats);
  }
  return { epochs, steps: globalStep };
}

export interface EvalResult {
  samples: number;
  /** Mean cross-entropy (or the given loss) over labelled samples. */
  loss: number;
  accuracy: number;
}

/** Inference over the batches: mean loss and top-1 accuracy. */
export function evaluate(engine: EngineApi, batches: Iterable<Batch>, opts: { output?: string; loss?: LossSpec } = {}): EvalResult {
  const output = outputName(engine, opts.output);
  const loss = lossFn(opts.loss);
  let samples = 0, lossSum = 0, correct = 0;
  for (const batch of batches) {
    const logits = logitsOf(engine.run(batch.inputs, { outputs: [output] }), output);
    const n = logits.dims[0] ?? 1;
    const r = loss(logits, batch);
    lossSum += r.loss * n;
    correct += r.correct ?? (batch.labels ? correctCount(logits, batch.labels) : 0);
    samples += n;
  }
  return { samples, loss: samples ? lossSum / samples : NaN, accuracy: samples ? correct / samples : NaN };
}
