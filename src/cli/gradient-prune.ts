/**
 * `modelsmith prune model.onnx -o out.onnx --method gradient --data DATA --sparsity S`: Taylor
 * (|w·∂L/∂w|) pruning on the engine with prune → fine-tune rounds (src/compress/prune-gradient.ts).
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { pruneGradientModel, type Criterion, type Scope } from '../compress/prune-gradient.js';
import { onnxModel } from '../formats/onnx/read.js';
import { modelFileBytes, openModelFile, saveOnnxFile } from '../platform/open.js';
import { arrayBatches } from '../train/data.js';
import { parseExclude } from './exclude.js';
import { syncOpt } from './weights.js';
import { formatBytes, table, type Out } from './output.js';
import { parseChoice, parsePositiveInt } from './data-options.js';
import { pct, throttled, trainHelp, trainSetup, TRAIN_OPTIONS } from './train-options.js';

export const GRADIENT_OPTIONS = {
  ...TRAIN_OPTIONS,
  'fine-tune-steps': { type: 'string' },
  rounds: { type: 'string' },
  schedule: { type: 'string' },
  criterion: { type: 'string' },
  scope: { type: 'string' },
  'score-batches': { type: 'string' },
  sensitivity: { type: 'boolean' },
} as const;

const DEFAULTS = { optimizer: 'sgd' as const, lr: 0.001, batch: 64 };

export const GRADIENT_HELP = `gradient (--method gradient --data DATA): weights are ranked by first-order Taylor importance
|w·∂L/∂w| accumulated over small batches of DATA (gradients from modelsmith's engine), pruned to S
in rounds (sparsity schedule), with fine-tuning steps between rounds that keep the pruned weights at
zero. Prunable: Conv and MatMul/Gemm weights. Output: same graph, zeros in place.
  --sparsity S           final fraction of prunable weights set to zero (required)
  --rounds R             prune → fine-tune rounds (default 4; 1 = one shot)
  --fine-tune-steps N    optimiser steps after each round (default 50; 0 = none)
  --schedule K           polynomial (default: Zhu & Gupta, 0 → S) or constant (S every round)
  --criterion C          taylor (default) or magnitude (|w|, for comparison)
  --scope G              global (default: one ranking over all layers) or layer (S in every layer)
  --score-batches N      batches of 8 samples whose gradients score the weights each round (default 64)
  --sensitivity          with --eval-data: per layer, prune only it to 30/50/70/90% and report the accuracy
${trainHelp(DEFAULTS)}`;

export async function runGradient(input: string, output: string, values: Record<string, unknown>, out: Out): Promise<Record<string, unknown>> {
  for (const k of ['nm', 'include-1d']) if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} does not apply to --method gradient`);
  if (values.sparsity === undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--method gradient needs --sparsity S (0..1)');
  const sparsity = Number(values.sparsity);
  if (!Number.isFinite(sparsity) || sparsity < 0 || sparsity >= 1 || String(values.sparsity).trim() === '') {
    throw new ModelsmithError(ErrorCodes.USAGE, `--sparsity must be a number in [0, 1), got '${String(values.sparsity)}'`);
  }
  const rounds = parsePositiveInt('--rounds', values.rounds) ?? 4;
  const fineTuneSteps = parsePositiveInt('--fine-tune-steps', values['fine-tune-steps'], 0) ?? 50;
  const schedule = parseChoice('--schedule', values.schedule, ['polynomial', 'constant'] as const, 'polynomial');
  const criterion = parseChoice<Criterion>('--criterion', values.criterion, ['taylor', 'magnitude'], 'taylor');
  const scope = parseChoice<Scope>('--scope', values.scope, ['global', 'layer'], 'global');
  const scoreBatches = parsePositiveInt('--score-batches', values['score-batches']) ?? 64;
  if (values.sensitivity && !values['eval-data']) throw new ModelsmithError(ErrorCodes.USAGE, '--sensitivity needs --eval-data DATA (held-out labelled data to measure each layer on)');
  if (!output.toLowerCase().endsWith('.onnx')) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `gradient pruning writes ONNX (.onnx); got '${output}'`, { path: output });
  const exclude = values.exclude !== undefined ? parseExclude(values.exclude as string) : undefined;

  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  try {
    const inputBytes = await modelFileBytes(input, model);
    const setup = await trainSetup('prune --method gradient', model.proto, values, DEFAULTS);
    out.note(`pruning ${input} to ${(sparsity * 100).toFixed(1)}% by ${criterion} in ${rounds} round(s), ${fineTuneSteps} fine-tune step(s) each, on ${setup.train.labels!.length} samples of ${String(values.data)}`);
    const progress = throttled(out);
    const { model: pruned, report } = await pruneGradientModel(model, {
      train: arrayBatches(setup.train, { batchSize: setup.batch, seed: setup.seed }),
      score: arrayBatches(setup.train, { batchSize: 8, seed: setup.seed + 1 }),
      ...(setup.evalBatches ? { eval: setup.evalBatches } : {}),
    }, {
      sparsity, rounds, fineTuneSteps, schedule, criterion, scope, scoreBatches, optimizer: setup.optimizer,
      ...(values.sensitivity ? { sensitivity: true } : {}),
      ...(exclude ? { exclude: [...exclude.names, ...exclude.opTypes] } : {}),
      onProgress: (p) => progress(`  round ${p.round}/${rounds} step ${p.step + 1}: loss ${p.loss.toFixed(4)}`),
      onRound: (r) => progress(`round ${r.round}/${rounds}: sparsity ${(r.sparsity * 100).toFixed(1)}%` +
        (r.afterPrune ? `, accuracy after pruning ${pct(r.afterPrune)}` : '') + (r.afterFineTune ? `, after fine-tuning ${pct(r.afterFineTune)}` : '') +
        ` (${r.seconds.toFixed(1)} s)`, true),
    });
    const result = onnxModel(pruned, { path: output });
    const stats = await saveOnnxFile(result, output, { inputs: [input], ...syncOpt(values) });
    const outputBytes = stats.modelBytes + (stats.externalBytes ?? 0);
    const seconds = (performance.now() - t0) / 1000;
    out.say(`pruned ${report.totals.zeros} of ${report.totals.prunable} prunable weights (${(report.totals.sparsity * 100).toFixed(2)}%) by ${criterion}, ${rounds} round(s) × ${fineTuneSteps} fine-tune step(s)`);
    if (report.baseline || report.final) out.say(`accuracy on --eval-data: ${pct(report.baseline)} → ${pct(report.final)}`);
    out.say(`file: ${formatBytes(inputBytes)} → ${formatBytes(outputBytes)} (dense storage: zeros in place) in ${seconds.toFixed(2)} s → ${stats.files.join(' + ')}`);
    const levels = report.layers.find((l) => l.sensitivity)?.sensitivity?.map((p) => p.sparsity) ?? [];
    const rows = [['weight', 'op', 'shape', 'sparsity', ...levels.map((s) => `acc@${Math.round(s * 100)}%`)]];
    for (const l of report.layers) {
      rows.push([l.name, l.op, `[${l.shape.join(',')}]`, `${(l.sparsity * 100).toFixed(1)}%`, ...(l.sensitivity ?? []).map((p) => `${(p.accuracy * 100).toFixed(2)}%`)]);
    }
    out.say(...table(rows));
    if (levels.length) out.say('(acc@N%: accuracy on --eval-data with only that layer pruned to N%, before any fine-tuning — the per-layer sensitivity)');
    return { ok: true, verb: 'prune', method: 'gradient', input, output, files: stats.files, inputBytes, outputBytes, seconds, data: { train: values.data, kind: setup.trainKind, samples: setup.train.labels!.length, eval: values['eval-data'] ?? null }, ...report };
  } finally {
    await close();
  }
}
