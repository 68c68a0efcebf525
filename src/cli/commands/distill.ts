/**
 * `modelsmith distill teacher.onnx -o student.onnx (--student s.onnx | --width W) --data DATA`:
 * knowledge distillation on the engine (src/compress/distill.ts).
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { distillModels, parameterCount } from '../../compress/distill.js';
import { onnxModel } from '../../formats/onnx/read.js';
import { openModelFile, saveOnnxFile } from '../../platform/open.js';
import { arrayBatches } from '../../train/data.js';
import { DATA_HELP, parseChoice, parseFraction, parsePositiveInt } from '../data-options.js';
import { formatBytes, table } from '../output.js';
import { pct, throttled, trainHelp, trainSetup, TRAIN_OPTIONS } from '../train-options.js';
import { syncOpt } from '../weights.js';
import type { Command } from './index.js';

const DEFAULTS = { optimizer: 'adam' as const, lr: 0.002, batch: 64 };

export const distillCommand: Command = {
  name: 'distill',
  summary: 'knowledge distillation: train a smaller student on a teacher\'s soft targets (+ labels), on modelsmith\'s engine',
  help: `usage: modelsmith distill <teacher.onnx> -o <student.onnx> (--student s.onnx | --width W) --data DATA
                       [--epochs E] [--temperature T] [--alpha A] [--eval-data DATA] [--json]

Trains a student model on the teacher's softened outputs mixed with the hard labels:
  loss = A·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − A)·CE(student, labels)
with gradients from modelsmith's own engine (forward + backward in WASM, no Python). The teacher runs
during the first epoch only (its logits are cached per sample). Progress: loss and accuracy per
epoch (and accuracy on --eval-data when given). The trained student is written as ONNX.

student:
  --student FILE         an ONNX student with the same inputs and number of classes (trained from its
                         current weights)
  --width W              derive the student from the teacher: keep the fraction W of the output
                         channels of every prunable Conv/Gemm/MatMul (structured channel pruning,
                         strongest L1 norms kept), e.g. 0.5 ≈ a quarter of the parameters
  --init I               derived student: keep (default: start from the teacher's kept weights) or
                         reinit (fresh initialisation, as torch's defaults)
options:
  --epochs E             passes over --data (default 3)
  --temperature T        softening temperature (default 4)
  --alpha A              weight of the soft targets in [0, 1] (default 0.7; 0 = labels only, no teacher)
  --lr-decay D           constant (default) or cosine (per epoch)
${trainHelp(DEFAULTS)}
  --json                 one JSON report on stdout (parameters, per-epoch loss/accuracy, teacher and
                         student accuracy on --eval-data)

${DATA_HELP}

examples:
  modelsmith distill cnn.onnx -o small.onnx --width 0.5 --data train-images-idx3-ubyte --epochs 6 \\
      --eval-data t10k-images-idx3-ubyte
  modelsmith distill big.onnx -o student.onnx --student student-init.onnx --data train.npz --alpha 0.9`,
  options: {
    student: { type: 'string' },
    width: { type: 'string' },
    init: { type: 'string' },
    epochs: { type: 'string' },
    temperature: { type: 'string' },
    alpha: { type: 'string' },
    'lr-decay': { type: 'string' },
    ...TRAIN_OPTIONS,
  },
  async run(positionals, values, out) {
    const input = positionals[0];
    const output = (values.output as string | undefined) ?? positionals[1];
    if (!input || !output || positionals.length > (values.output ? 1 : 2)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'distill needs a teacher and an output (modelsmith distill teacher.onnx -o student.onnx --width 0.5 --data DATA)');
    }
    const studentPath = values.student as string | undefined;
    if ((studentPath === undefined) === (values.width === undefined)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'distill needs exactly one of --student s.onnx or --width W');
    }
    if (studentPath !== undefined && values.init !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--init applies to a student derived with --width');
    const width = values.width !== undefined ? parseFraction('--width', values.width, 0.01, 1, 1) : undefined;
    const init = parseChoice('--init', values.init, ['keep', 'reinit'] as const, 'keep');
    const epochs = parsePositiveInt('--epochs', values.epochs) ?? 3;
    const temperature = parseFraction('--temperature', values.temperature, 0.05, 100, 4);
    const alpha = parseFraction('--alpha', values.alpha, 0, 1, 0.7);
    const lrDecay = parseChoice('--lr-decay', values['lr-decay'], ['constant', 'cosine'] as const, 'constant');
    if (!output.toLowerCase().endsWith('.onnx')) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `distill writes ONNX (.onnx); got '${output}'`, { path: output });

    const t0 = performance.now();
    const teacher = await openModelFile(input);
    const student = studentPath ? await openModelFile(studentPath).catch(async (e: unknown) => { await teacher.close(); throw e; }) : undefined;
    try {
      const setup = await trainSetup('distill', teacher.model.proto, values, DEFAULTS);
      const n = setup.train.labels!.length;
      out.note(`distilling ${input} into ${studentPath ?? `a width-${width} student`} on ${n} samples of ${String(values.data)}: ${epochs} epoch(s), T ${temperature}, alpha ${alpha}`);
      const progress = throttled(out);
      const stepsPerEpoch = Math.ceil(n / setup.batch);
      const { model, report, derived } = await distillModels(
        teacher.model,
        student ? student.model : { width: width!, init, seed: setup.seed },
        { train: arrayBatches(setup.train, { batchSize: setup.batch, seed: setup.seed }), ...(setup.evalBatches ? { eval: setup.evalBatches } : {}) },
        {
          epochs, temperature, alpha, optimizer: setup.optimizer, lrDecay,
          onProgress: (p) => progress(`  epoch ${p.epoch + 1}/${epochs} step ${p.step + 1}/${stepsPerEpoch}: loss ${p.loss.toFixed(4)}, batch accuracy ${(p.accuracy * 100).toFixed(1)}%`),
          onEpoch: (e) => progress(`epoch ${e.epoch + 1}/${epochs}: loss ${e.loss.toFixed(4)}, train accuracy ${(e.accuracy * 100).toFixed(2)}%` +
            (e.eval ? `, eval accuracy ${pct(e.eval)}` : '') + ` (${e.seconds.toFixed(1)} s)`, true),
        },
      );
      const stats = await saveOnnxFile(onnxModel(model, { path: output }), output, { inputs: [input, ...(studentPath ? [studentPath] : [])], ...syncOpt(values) });
      const seconds = (performance.now() - t0) / 1000;
      const teacherParams = report.params.teacher ?? parameterCount(teacher.model.proto);
      out.say(`student: ${report.params.student.toLocaleString('en-US')} parameters (${((report.params.student / teacherParams) * 100).toFixed(1)}% of the teacher's ${teacherParams.toLocaleString('en-US')})` +
        (derived ? `, derived at width ${width} (${derived.init} weights)` : ''));
      const rows = [['epoch', 'loss', 'train acc', 'eval acc', 'seconds']];
      for (const e of report.epochs) rows.push([String(e.epoch + 1), e.loss.toFixed(4), `${(e.accuracy * 100).toFixed(2)}%`, pct(e.eval), e.seconds.toFixed(1)]);
      out.say(...table(rows));
      if (report.teacher) out.say(`eval accuracy: teacher ${pct(report.teacher)}, student ${pct(report.final)}`);
      out.say(`wrote ${stats.files.join(' + ')} (${formatBytes(stats.modelBytes + (stats.externalBytes ?? 0))}) in ${seconds.toFixed(2)} s; ${report.steps} steps, teacher ran ${report.teacherRuns} time(s)`);
      for (const d of derived?.diagnostics ?? []) out.note(`${d.level}: ${d.message}`);
      return {
        ok: true, verb: 'distill', input, output, files: stats.files, seconds,
        student: studentPath ?? { width, init, channels: derived?.channels },
        data: { train: values.data, kind: setup.trainKind, samples: n, eval: values['eval-data'] ?? null },
        ...report,
      };
    } finally {
      await student?.close();
      await teacher.close();
    }
  },
};
