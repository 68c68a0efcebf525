/**
 * Gradient-based pruning on the execution engine: weights are ranked by first-order Taylor
 * importance |w·∂L/∂w| measured on data (or by magnitude for comparison), pruned to a sparsity that
 * follows a schedule over several rounds, and the network is fine-tuned between rounds with the
 * masks held (pruned weights stay exactly zero). Optionally a per-layer sensitivity analysis is run
 * first on evaluation data. Output: the pruned model (engine.exportModel()) and a report.
 *
 * The engine's parameters are edited in place: the caller's engine ends up pruned and fine-tuned.
 */
import type { ModelProto } from 'onnx-buf';
import { createEngine, type EngineOptions } from '../engine/engine.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { evaluate, outputName, trainStep, type EvalResult, type LossFn, type StepProgress } from '../train/loop.js';
import { crossEntropy } from '../train/losses.js';
import { applyMask, maskSparsity, type Masks } from '../train/masks.js';
import { createOptimizer, type OptimizerSpec } from '../train/optim.js';
import { checkSchedule, sparsityAt, type SparsitySchedule } from '../train/schedule.js';
import { BatchStream } from '../train/stream.js';
import type { Batch, BatchSource, TrainableEngine } from '../train/types.js';
import { forcePruned, magnitudeScores, taylorScores, type Criterion, type Scores } from './prune-gradient/scores.js';
import { selectMasks, type Scope } from './prune-gradient/select.js';
import { DEFAULT_SENSITIVITY_LEVELS, layerSensitivity, type LayerSensitivity, type SensitivityPoint } from './prune-gradient/sensitivity.js';
import { prunableWeights, type PrunableWeight } from './prune-gradient/targets.js';

export type { Criterion, Scores } from './prune-gradient/scores.js';
export type { Scope } from './prune-gradient/select.js';
export type { PrunableWeight } from './prune-gradient/targets.js';
export type { LayerSensitivity, SensitivityPoint } from './prune-gradient/sensitivity.js';
export { prunableWeights } from './prune-gradient/targets.js';
export { TaylorAccumulator, magnitudeScores, taylorScores } from './prune-gradient/scores.js';
export { selectMasks } from './prune-gradient/select.js';
export { layerSensitivity, DEFAULT_SENSITIVITY_LEVELS } from './prune-gradient/sensitivity.js';

export interface GradientPruneData {
  /** Training batches (scoring and fine-tuning); a function of the epoch may reshuffle. */
  train: BatchSource;
  /**
   * Batches for the Taylor scores (default: `train`). Smaller batches than for fine-tuning give a
   * better estimate at the same cost: near convergence the mean gradient of a big batch cancels
   * towards zero, while per-batch |w·g| over small batches keeps each weight's contribution.
   */
  score?: BatchSource;
  /** Evaluation batches (sensitivity analysis and per-round accuracy); called once per evaluation. */
  eval?: () => Iterable<Batch>;
}

export interface GradientPruneOptions {
  /** Final fraction of prunable weights set to zero, 0..1. */
  sparsity: number;
  /** Default: polynomial from 0 to `sparsity` (Zhu & Gupta). */
  schedule?: 'constant' | 'polynomial' | SparsitySchedule;
  /** Prune → fine-tune rounds (default 4; 1 means one-shot). */
  rounds?: number;
  criterion?: Criterion;
  /** Rank all prunable weights together (global, default) or give each tensor the same sparsity. */
  scope?: Scope;
  /** Batches whose gradients are accumulated for the Taylor scores each round (default 8). */
  scoreBatches?: number;
  /** Optimiser steps after each pruning round (default 50; 0: no fine-tuning). */
  fineTuneSteps?: number;
  /** Default SGD, lr 0.001, momentum 0.9 (fine-tuning a converged model: a training-size step undoes it). */
  optimizer?: OptimizerSpec;
  /** Per-layer sensitivity analysis on the evaluation data before pruning (needs `data.eval`). */
  sensitivity?: boolean | { levels: number[] };
  /** Weights (initializer names), node names or op types left dense. */
  exclude?: string[];
  /** Logits value name (first graph output by default). */
  output?: string;
  /** Loss on (logits, batch); default softmax cross-entropy with the batch labels. */
  loss?: LossFn;
  onRound?(r: RoundReport): void;
  onProgress?(p: StepProgress & { round: number }): void;
}

export interface RoundReport {
  round: number;
  targetSparsity: number;
  /** Zeros among prunable weights after this round's pruning. */
  sparsity: number;
  /** Mean training loss on the scoring batches (before this round's pruning; NaN for magnitude). */
  scoreLoss: number;
  fineTuneSteps: number;
  /** Mean training loss over the fine-tuning steps. */
  fineTuneLoss: number;
  afterPrune?: EvalResult;
  afterFineTune?: EvalResult;
  seconds: number;
}

export interface PrunedWeightReport {
  name: string;
  op: string;
  node: string;
  shape: number[];
  params: number;
  sparsity: number;
  /** Mean Taylor score (per batch) in the first round, or mean |w| for magnitude. */
  meanScore: number;
  sensitivity?: SensitivityPoint[];
}

export interface GradientPruneReport {
  options: { sparsity: number; schedule: SparsitySchedule; rounds: number; criterion: Criterion; scope: Scope; scoreBatches: number; fineTuneSteps: number; optimizer: OptimizerSpec };
  baseline?: EvalResult;
  final?: EvalResult;
  layers: PrunedWeightReport[];
  rounds: RoundReport[];
  totals: { prunable: number; zeros: number; sparsity: number };
}

function resolveSchedule(s: GradientPruneOptions['schedule'], sparsity: number): SparsitySchedule {
  if (s === undefined || s === 'polynomial') return { kind: 'polynomial', initial: 0, final: sparsity };
  if (s === 'constant') return { kind: 'constant', sparsity };
  checkSchedule(s);
  return s;
}

function positiveInt(name: string, v: number, min: number): void {
  if (!(Number.isInteger(v) && v >= min)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `prune: ${name} must be an integer ≥ ${min}, got ${v}`);
}

const defaultLoss: LossFn = (logits, batch) => {
  if (!batch.labels) throw new ModelsmithError(ErrorCodes.USAGE, 'gradient pruning with the default loss needs labelled data');
  return crossEntropy(logits, batch.labels);
};

function scoresFor(engine: TrainableEngine, stream: BatchStream, weights: readonly PrunableWeight[], criterion: Criterion, batches: number, loss: LossFn, output: string): { scores: Scores; loss: number } {
  if (criterion === 'taylor') return taylorScores(engine, stream, weights, batches, loss, output);
  if (criterion === 'magnitude') return { scores: magnitudeScores(weights, engine.params), loss: NaN };
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `pruning criterion ${String(criterion)} (supported: taylor, magnitude)`);
}

function meanFinite(a: Float32Array, div: number): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]!)) s += a[i]!;
  return a.length ? s / a.length / div : 0;
}

/**
 * Sensitivity analysis alone (no pruning kept): scores from `scoreBatches` training batches, then
 * each layer pruned alone to each level and evaluated.
 */
export function analyzeSensitivity(
  engine: TrainableEngine,
  data: GradientPruneData & { eval: () => Iterable<Batch> },
  opts: { criterion?: Criterion; scoreBatches?: number; levels?: number[]; exclude?: string[]; output?: string; loss?: LossFn } = {},
): { baseline: EvalResult; layers: LayerSensitivity[] } {
  const output = outputName(engine, opts.output);
  const weights = prunableWeights(engine.exportModel(), engine.params, opts.exclude);
  const scoreBatches = opts.scoreBatches ?? 8;
  const { scores } = scoresFor(engine, new BatchStream(data.score ?? data.train), weights, opts.criterion ?? 'taylor', scoreBatches, opts.loss ?? defaultLoss, output);
  return layerSensitivity(engine, weights, scores, data.eval, { levels: opts.levels ?? [...DEFAULT_SENSITIVITY_LEVELS], output, scoreBatches: opts.criterion === 'magnitude' ? 1 : scoreBatches });
}

export function pruneGradient(engine: TrainableEngine, data: GradientPruneData, opts: GradientPruneOptions): { model: ModelProto; report: GradientPruneReport; masks: Masks } {
  if (!(opts.sparsity >= 0 && opts.sparsity < 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `prune: sparsity must be in [0, 1), got ${opts.sparsity}`);
  const schedule = resolveSchedule(opts.schedule, opts.sparsity);
  const rounds = opts.rounds ?? 4;
  const scoreBatches = opts.scoreBatches ?? 8;
  const fineTuneSteps = opts.fineTuneSteps ?? 50;
  positiveInt('rounds', rounds, 1);
  positiveInt('scoreBatches', scoreBatches, 1);
  positiveInt('fineTuneSteps', fineTuneSteps, 0);
  const criterion = opts.criterion ?? 'taylor';
  const scope = opts.scope ?? 'global';
  const optSpec: OptimizerSpec = opts.optimizer ?? { type: 'sgd', lr: 0.001, momentum: 0.9 };
  if (opts.sensitivity && !data.eval) throw new ModelsmithError(ErrorCodes.USAGE, 'prune: the sensitivity analysis needs evaluation data');
  const output = outputName(engine, opts.output);
  const loss = opts.loss ?? defaultLoss;
  const weights = prunableWeights(engine.exportModel(), engine.params, opts.exclude);
  if (weights.length === 0) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'prune: the model has no prunable weights (Conv W, Gemm/MatMul B initializers)');

  const stream = new BatchStream(data.train);
  const scoreStream = data.score ? new BatchStream(data.score) : stream;
  const masks: Masks = new Map();
  const optimizer = createOptimizer(optSpec, masks);
  const evalNow = (): EvalResult | undefined => (data.eval ? evaluate(engine, data.eval(), { output, loss }) : undefined);
  const baseline = evalNow();
  const layerInfo = new Map<string, { meanScore: number; sensitivity?: SensitivityPoint[] }>();
  const roundReports: RoundReport[] = [];

  for (let round = 1; round <= rounds; round++) {
    const t0 = performance.now();
    const target = sparsityAt(schedule, round, rounds);
    const { scores, loss: scoreLoss } = scoresFor(engine, scoreStream, weights, criterion, scoreBatches, loss, output);
    const perBatch = criterion === 'taylor' ? scoreBatches : 1;
    if (round === 1) {
      for (const w of weights) layerInfo.set(w.name, { meanScore: meanFinite(scores.get(w.name)!, perBatch) });
      if (opts.sensitivity && data.eval) {
        const levels = typeof opts.sensitivity === 'object' ? opts.sensitivity.levels : [...DEFAULT_SENSITIVITY_LEVELS];
        const sens = layerSensitivity(engine, weights, scores, data.eval, { levels, output, ...(baseline ? { baseline } : {}) });
        for (const l of sens.layers) layerInfo.get(l.name)!.sensitivity = l.points;
      }
    }
    forcePruned(scores, masks);
    for (const [name, m] of selectMasks(scores, target, scope)) {
      masks.set(name, m);
      applyMask(engine.params.get(name)!.data, m, name);
    }
    const afterPrune = fineTuneSteps > 0 ? evalNow() : undefined;
    let ftLoss = 0;
    for (let step = 0; step < fineTuneSteps; step++) {
      const batch = stream.next();
      const r = trainStep(engine, batch, optimizer, loss, output);
      ftLoss += r.loss;
      const n = r.grad.dims[0] ?? 1;
      opts.onProgress?.({ round, epoch: stream.epoch, step, globalStep: (round - 1) * fineTuneSteps + step, loss: r.loss, accuracy: r.correct !== undefined ? r.correct / n : NaN });
    }
    const afterFineTune = evalNow();
    const rep: RoundReport = {
      round,
      targetSparsity: target,
      sparsity: totals(weights, masks).sparsity,
      scoreLoss,
      fineTuneSteps,
      fineTuneLoss: fineTuneSteps ? ftLoss / fineTuneSteps : NaN,
      ...(afterPrune ? { afterPrune } : {}),
      ...(afterFineTune ? { afterFineTune } : {}),
      seconds: (performance.now() - t0) / 1000,
    };
    roundReports.push(rep);
    opts.onRound?.(rep);
  }

  const final = roundReports.at(-1)?.afterFineTune;
  const report: GradientPruneReport = {
    options: { sparsity: opts.sparsity, schedule, rounds, criterion, scope, scoreBatches, fineTuneSteps, optimizer: optSpec },
    ...(baseline ? { baseline } : {}),
    ...(final ? { final } : {}),
    layers: weights.map((w) => {
      const info = layerInfo.get(w.name)!;
      const m = masks.get(w.name);
      return { name: w.name, op: w.op, node: w.node, shape: w.shape, params: engine.params.get(w.name)!.data.length, sparsity: m ? maskSparsity(m) : 0, meanScore: info.meanScore, ...(info.sensitivity ? { sensitivity: info.sensitivity } : {}) };
    }),
    rounds: roundReports,
    totals: totals(weights, masks),
  };
  return { model: engine.exportModel(), report, masks };
}

function totals(weights: readonly PrunableWeight[], masks: Masks): { prunable: number; zeros: number; sparsity: number } {
  let prunable = 0, zeros = 0;
  for (const w of weights) {
    const m = masks.get(w.name);
    const n = w.shape.reduce((a, b) => a * b, 1);
    prunable += n;
    if (m) zeros += Math.round(maskSparsity(m) * m.length);
  }
  return { prunable, zeros, sparsity: prunable ? zeros / prunable : 0 };
}

/** Model in, pruned model out (builds the engine; the input model is not edited). */
export async function pruneGradientModel(model: ModelProto | OnnxModel, data: GradientPruneData, opts: GradientPruneOptions, engineOpts: EngineOptions = {}): Promise<{ model: ModelProto; report: GradientPruneReport; masks: Masks }> {
  return pruneGradient(await createEngine(model, engineOpts), data, opts);
}
