/**
 * The learning-in-WASM "done when" numbers on Fashion-MNIST, all computed by our own engine:
 *  (a) gradient (Taylor) pruning of the fixture CNN to 70% sparsity with prune → fine-tune rounds,
 *      against the fp32 model and against one-shot magnitude pruning at 70% without fine-tuning,
 *      with the per-layer sensitivity table;
 *  (b) distillation of a student with ≤ 1/4 of the teacher's parameters (derived by structured
 *      channel pruning, kept weights), and the same student trained on hard labels alone with the
 *      same budget (6 epochs over 10,000 training images, same batch order, Adam 2e-3 with cosine
 *      decay per epoch);
 *  (c) the time of one training epoch of that student over 10,000 images.
 * Training data: the official 60,000 training images (Debian dataset-fashion-mnist, gzip IDX);
 * evaluation: the fixture's 2,000 test images (never trained on). Everything is seeded.
 * Gunzip uses node:zlib (this bench is Node-only, like the other benches).
 *
 * Usage: node dist/bench/learning.js [--json] [--only prune,distill] [--train N] [--epochs E]
 *        [--width W] [--rounds R] [--fine-tune-steps S] [--data DIR] [--fixture DIR]
 * Exits non-zero, with the reasons on stderr, when a threshold of the issue is missed.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { decodeOnnx } from '../formats/onnx/read.js';
import { createEngine } from '../engine/engine.js';
import { pruneGradient, type GradientPruneReport } from '../compress/prune-gradient.js';
import { deriveStudent, distill, parameterCount, type DistillReport } from '../compress/distill.js';
import { arrayBatches, type ArrayDataset } from '../train/data.js';
import { evaluate } from '../train/loop.js';
import { CLASSES, IMAGE_SIDE, loadFixture, parseIdx, positiveIntArg, type Fixture } from './accuracy.js';

export const DEFAULT_TRAIN_DIR = '/usr/share/datasets/fashion-mnist';
const TRAIN_FILES = { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' } as const;
/** The official training set; a gzip may not inflate past this (a hostile .gz cannot exhaust memory). */
const MAX_TRAIN_IMAGES = 60_000;
const SEED = 20231;
/** The size bound: student parameters ≤ teacher / 4. */
const SIZE_RATIO = 0.25;

export interface Row {
  name: string;
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
  pass?: boolean | null;
  [k: string]: unknown;
}

async function gunzipIdx(path: string, rank: number, maxBytes: number): Promise<{ dims: number[]; data: Uint8Array }> {
  const gz = new Uint8Array(await readFile(path).catch((e: unknown) => {
    throw new ModelsmithError(ErrorCodes.IO, `cannot read the Fashion-MNIST training set (${(e as Error).message}); install it with: apt-get install dataset-fashion-mnist, or pass --data DIR`, { path, cause: e });
  }));
  let raw: Uint8Array;
  try {
    raw = gunzipSync(gz, { maxOutputLength: maxBytes });
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `not a gzip file of at most ${maxBytes} bytes: ${(e as Error).message}`, { path, cause: e });
  }
  return parseIdx(raw, path, rank);
}

/** The training images as bytes (x / 255 at batch time) with their labels. */
export async function loadTrainingSet(dir: string = DEFAULT_TRAIN_DIR, limit = MAX_TRAIN_IMAGES): Promise<ArrayDataset> {
  const px = IMAGE_SIDE * IMAGE_SIDE;
  const imgPath = join(dir, TRAIN_FILES.images), labPath = join(dir, TRAIN_FILES.labels);
  const img = await gunzipIdx(imgPath, 3, 16 + MAX_TRAIN_IMAGES * px);
  const lab = await gunzipIdx(labPath, 1, 8 + MAX_TRAIN_IMAGES);
  const n = img.dims[0]!;
  if (img.dims[1] !== IMAGE_SIDE || img.dims[2] !== IMAGE_SIDE) throw new ModelsmithError(ErrorCodes.MALFORMED, `images are ${img.dims[1]}×${img.dims[2]}, expected 28×28`, { path: imgPath, offset: 8 });
  if (lab.dims[0] !== n) throw new ModelsmithError(ErrorCodes.MALFORMED, `${lab.dims[0]} labels for ${n} images`, { path: labPath, offset: 4 });
  const bad = lab.data.findIndex((c) => c >= CLASSES);
  if (bad >= 0) throw new ModelsmithError(ErrorCodes.MALFORMED, `label ${lab.data[bad]} of image ${bad} is not a class id`, { path: labPath, offset: 8 + bad });
  const m = Math.min(n, limit);
  return { x: img.data.subarray(0, m * px), sampleDims: [1, IMAGE_SIDE, IMAGE_SIDE], labels: lab.data.subarray(0, m), inputName: 'input', divideBy: 255 };
}

function evalSet(fx: Fixture): ArrayDataset {
  return { x: fx.subset.images, sampleDims: [1, IMAGE_SIDE, IMAGE_SIDE], labels: fx.subset.labels, inputName: 'input', divideBy: 255 };
}

export interface PruneBenchOptions {
  trainImages: number;
  rounds: number;
  fineTuneSteps: number;
  sparsity?: number;
  log?: (s: string) => void;
}

export async function benchPruning(fx: Fixture, trainSet: ArrayDataset, o: PruneBenchOptions): Promise<{ rows: Row[]; report: GradientPruneReport; magnitude: number; failures: string[] }> {
  const sparsity = o.sparsity ?? 0.7;
  const ev = evalSet(fx);
  const evalBatches = () => arrayBatches(ev, { batchSize: 250 })(0);
  const train = arrayBatches(trainSet, { batchSize: 64, seed: SEED, limit: o.trainImages });
  // Taylor scores from 64 batches of 8 (512 images): small batches keep per-weight contributions
  // that the mean gradient of a large batch of a converged model cancels out
  const score = arrayBatches(trainSet, { batchSize: 8, seed: SEED + 1, limit: o.trainImages });

  const mag = await createEngine(decodeOnnx(fx.modelBytes, { path: fx.modelPath }));
  pruneGradient(mag, { train }, { sparsity, rounds: 1, criterion: 'magnitude', scope: 'global', fineTuneSteps: 0 });
  const magEval = evaluate(mag, evalBatches());
  o.log?.(`magnitude ${sparsity * 100}% one-shot: ${(magEval.accuracy * 100).toFixed(2)}%`);

  const engine = await createEngine(decodeOnnx(fx.modelBytes, { path: fx.modelPath }));
  const { report } = pruneGradient(engine, { train, score, eval: evalBatches }, {
    sparsity,
    rounds: o.rounds,
    scoreBatches: 64,
    fineTuneSteps: o.fineTuneSteps,
    criterion: 'taylor',
    scope: 'global',
    optimizer: { type: 'sgd', lr: 0.001, momentum: 0.9 },
    sensitivity: true,
    onRound: (r) => o.log?.(`round ${r.round}: sparsity ${(r.sparsity * 100).toFixed(1)}%, after prune ${pct(r.afterPrune?.accuracy)}, after fine-tune ${pct(r.afterFineTune?.accuracy)} (${r.seconds.toFixed(1)} s)`),
  });
  const base = report.baseline!.accuracy * 100;
  const grad = report.final!.accuracy * 100;
  const magAcc = magEval.accuracy * 100;
  const failures: string[] = [];
  if (base - grad > 1) failures.push(`gradient pruning to ${sparsity * 100}% loses ${(base - grad).toFixed(2)} pp (> 1 pp)`);
  if (!(grad > magAcc)) failures.push(`gradient pruning (${grad.toFixed(2)}%) does not beat magnitude pruning (${magAcc.toFixed(2)}%)`);
  const rows: Row[] = [
    { name: 'prune:fp32', value: base, unit: '%' },
    { name: `prune:taylor-${sparsity * 100}-finetuned`, value: grad, unit: '%', baseline: base, ratio: grad / base, delta_pp: grad - base, sparsity: report.totals.sparsity, fine_tune_steps: o.rounds * o.fineTuneSteps, pass: base - grad <= 1 },
    { name: `prune:magnitude-${sparsity * 100}-oneshot`, value: magAcc, unit: '%', baseline: base, ratio: magAcc / base, delta_pp: magAcc - base, gradient_better: grad > magAcc, pass: grad > magAcc },
  ];
  for (const l of report.layers) {
    for (const p of l.sensitivity ?? []) {
      rows.push({ name: `prune:sensitivity:${l.name}@${p.sparsity}`, value: p.accuracy * 100, unit: '%', baseline: base, ratio: (p.accuracy * 100) / base, delta_pp: p.dAccuracyPp, d_loss: p.dLoss, params: l.params, final_sparsity: l.sparsity });
    }
  }
  return { rows, report, magnitude: magAcc, failures };
}

export interface DistillBenchOptions {
  trainImages: number;
  epochs: number;
  width: number;
  lrDecay?: 'constant' | 'cosine';
  log?: (s: string) => void;
}

export async function benchDistill(fx: Fixture, trainSet: ArrayDataset, o: DistillBenchOptions): Promise<{ rows: Row[]; kd: DistillReport; hard: DistillReport; failures: string[] }> {
  const ev = evalSet(fx);
  const evalBatches = () => arrayBatches(ev, { batchSize: 250 })(0);
  const train = arrayBatches(trainSet, { batchSize: 64, seed: SEED, limit: o.trainImages });
  const teacherModel = decodeOnnx(fx.modelBytes, { path: fx.modelPath }).proto;
  const teacher = await createEngine(teacherModel);
  const derived = deriveStudent(teacherModel, { width: o.width, init: 'keep' });
  const tParams = parameterCount(teacherModel), sParams = parameterCount(derived.model);
  o.log?.(`student: width ${o.width}, ${sParams} params (teacher ${tParams}, ratio ${(sParams / tParams).toFixed(3)})`);
  const common = { epochs: o.epochs, optimizer: { type: 'adam' as const, lr: 2e-3 }, lrDecay: o.lrDecay ?? ('cosine' as const) };
  const kdStudent = await createEngine(derived.model);
  const kd = distill(teacher, kdStudent, { train, eval: evalBatches }, {
    ...common, temperature: 4, alpha: 0.7,
    onEpoch: (e) => o.log?.(`distill epoch ${e.epoch + 1}: loss ${e.loss.toFixed(4)}, train acc ${pct(e.accuracy)}, test acc ${pct(e.eval?.accuracy)} (${e.seconds.toFixed(1)} s)`),
  }).report;
  const hardStudent = await createEngine(derived.model);
  const hard = distill(undefined, hardStudent, { train, eval: evalBatches }, {
    ...common, alpha: 0,
    onEpoch: (e) => o.log?.(`hard-label epoch ${e.epoch + 1}: loss ${e.loss.toFixed(4)}, train acc ${pct(e.accuracy)}, test acc ${pct(e.eval?.accuracy)} (${e.seconds.toFixed(1)} s)`),
  }).report;
  const tAcc = kd.teacher!.accuracy * 100, kdAcc = kd.final!.accuracy * 100, hardAcc = hard.final!.accuracy * 100;
  // one epoch of pure student training (no teacher): the mean of the hard-label run's epochs, scaled to 10,000 images
  const epochSec = hard.epochs.reduce((a, e) => a + (e.seconds * 10_000) / e.samples, 0) / hard.epochs.length;
  const failures: string[] = [];
  if (sParams > tParams * SIZE_RATIO) failures.push(`student has ${sParams} params, more than 1/4 of ${tParams}`);
  if (tAcc - kdAcc > 2) failures.push(`distilled student ${kdAcc.toFixed(2)}% is more than 2 pp below the teacher's ${tAcc.toFixed(2)}%`);
  if (!(kdAcc > hardAcc)) failures.push(`distilled student (${kdAcc.toFixed(2)}%) does not beat hard labels alone (${hardAcc.toFixed(2)}%)`);
  if (epochSec >= 60) failures.push(`a student epoch over 10,000 images takes ${epochSec.toFixed(1)} s (≥ 60 s)`);
  const rows: Row[] = [
    { name: 'distill:teacher', value: tAcc, unit: '%', params: tParams },
    { name: 'distill:student-kd', value: kdAcc, unit: '%', baseline: tAcc, ratio: kdAcc / tAcc, delta_pp: kdAcc - tAcc, params: sParams, param_ratio: sParams / tParams, epochs: o.epochs, steps: kd.steps, train_images: o.trainImages, pass: tAcc - kdAcc <= 2 && sParams <= tParams * SIZE_RATIO },
    { name: 'distill:student-hard-labels', value: hardAcc, unit: '%', baseline: kdAcc, ratio: hardAcc / kdAcc, delta_pp: hardAcc - kdAcc, params: sParams, epochs: o.epochs, steps: hard.steps, kd_better: kdAcc > hardAcc, pass: kdAcc > hardAcc },
    { name: 'train:student-epoch-10k', value: epochSec, unit: 's', baseline: 60, ratio: epochSec / 60, params: sParams, batch: 64, pass: epochSec < 60 },
  ];
  return { rows, kd, hard, failures };
}

const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(x * 100).toFixed(2)}%`);

function table(rows: Row[]): string {
  const lines = [`${'measurement'.padEnd(44)}${'value'.padStart(10)}  ${'unit'.padEnd(5)}${'vs'.padStart(9)}${'Δ'.padStart(9)}  pass`];
  for (const r of rows) {
    const d = typeof r.delta_pp === 'number' ? `${r.delta_pp > 0 ? '+' : ''}${r.delta_pp.toFixed(2)}` : '';
    const pass = r.pass === undefined || r.pass === null ? '' : r.pass ? 'ok' : 'FAIL';
    lines.push(`${r.name.padEnd(44)}${r.value.toFixed(2).padStart(10)}  ${r.unit.padEnd(5)}${(r.baseline !== undefined ? r.baseline.toFixed(2) : '').padStart(9)}${d.padStart(9)}  ${pass}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
      train: { type: 'string' },
      epochs: { type: 'string' },
      width: { type: 'string' },
      rounds: { type: 'string' },
      'fine-tune-steps': { type: 'string' },
      data: { type: 'string' },
      fixture: { type: 'string' },
    },
  });
  const only = new Set((values.only ?? 'prune,distill').split(',').map((s) => s.trim()));
  for (const o of only) if (o !== 'prune' && o !== 'distill') throw new ModelsmithError(ErrorCodes.USAGE, `--only takes prune and/or distill, got '${o}'`);
  // 0.49 keeps 8/16/63 channels: 27,151 parameters, the widest uniform student within 1/4 of 108,618
  const width = values.width !== undefined ? Number(values.width) : 0.49;
  if (!(width > 0 && width <= 1)) throw new ModelsmithError(ErrorCodes.USAGE, `--width must be in (0, 1], got '${values.width}'`);
  const log = values.json ? undefined : (s: string) => process.stderr.write(`${s}\n`);
  const fx = await loadFixture(values.fixture);
  const trainSet = await loadTrainingSet(values.data);
  const trainImages = Math.min(positiveIntArg(values.train, '--train') ?? 10_000, trainSet.labels!.length);
  const rows: Row[] = [];
  const failures: string[] = [];
  if (only.has('prune')) {
    const r = await benchPruning(fx, trainSet, { trainImages: Math.max(trainImages, 20_000), rounds: positiveIntArg(values.rounds, '--rounds') ?? 4, fineTuneSteps: positiveIntArg(values['fine-tune-steps'], '--fine-tune-steps') ?? 50, ...(log ? { log } : {}) });
    rows.push(...r.rows);
    failures.push(...r.failures);
  }
  if (only.has('distill')) {
    const r = await benchDistill(fx, trainSet, { trainImages, epochs: positiveIntArg(values.epochs, '--epochs') ?? 6, width, ...(log ? { log } : {}) });
    rows.push(...r.rows);
    failures.push(...r.failures);
  }
  if (values.json) for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
  else process.stdout.write(`${table(rows)}\n`);
  if (failures.length) {
    for (const f of failures) process.stderr.write(`bench:learning: ${f}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:learning: ${String(e instanceof Error ? e.message : e).split('\n')[0]}\n`);
    process.exitCode = 1;
  });
}
