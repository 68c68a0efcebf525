/**
 * Knowledge distillation on the execution engine: a student is trained on the teacher's softened
 * outputs mixed with the hard labels (Hinton et al. 2015: α·T²·KL(p_t ‖ p_s) + (1 − α)·CE), and the
 * trained student is returned as ONNX (engine.exportModel()). The student is given, or derived from
 * the teacher by structured channel pruning (./distill/derive.ts). With alpha = 0 the same loop is
 * plain hard-label training, the baseline distillation is compared with under the same budget.
 */
import type { ModelProto } from 'onnx-buf';
import { createEngine, type EngineOptions } from '../engine/engine.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import { deriveStudent, type DeriveStudentOptions, type DerivedStudent } from './distill/derive.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { EngineApi } from '../engine/types.js';
import { evaluate, outputName, train, type EpochStats, type EvalResult, type LossFn, type StepProgress } from '../train/loop.js';
import { crossEntropy, distillationLoss } from '../train/losses.js';
import { createOptimizer, type OptimizerSpec } from '../train/optim.js';
import type { Batch, BatchSource, TrainableEngine } from '../train/types.js';
import { TeacherLogits } from './distill/teacher.js';

export { deriveStudent, parameterCount, type DeriveStudentOptions, type DerivedStudent, type StudentInit } from './distill/derive.js';
export { TeacherLogits } from './distill/teacher.js';

export interface DistillData {
  train: BatchSource;
  /** Evaluated after every epoch (accuracy per epoch in the report). */
  eval?: () => Iterable<Batch>;
}

export interface DistillOptions {
  epochs: number;
  /** Default 4. */
  temperature?: number;
  /** Soft-target weight in [0, 1] (default 0.7); 0 trains on hard labels only and never runs the teacher. */
  alpha?: number;
  /** Default Adam, lr 1e-3. */
  optimizer?: OptimizerSpec;
  /** Stop after this many steps in total (a budget shared with the hard-label baseline). */
  maxSteps?: number;
  /** Per-epoch learning-rate decay (see train()); default constant. */
  lrDecay?: 'constant' | 'cosine';
  /** Logits names (first graph outputs by default). */
  studentOutput?: string;
  teacherOutput?: string;
  /** Cache teacher logits by sample index (default true). */
  cacheTeacher?: boolean;
  onProgress?(p: StepProgress): void;
  onEpoch?(e: DistillEpoch): void;
}

export interface DistillEpoch extends EpochStats {
  eval?: EvalResult;
}

export interface DistillReport {
  options: { epochs: number; temperature: number; alpha: number; optimizer: OptimizerSpec; maxSteps?: number; lrDecay: 'constant' | 'cosine' };
  params: { student: number; teacher?: number };
  teacher?: EvalResult;
  epochs: DistillEpoch[];
  steps: number;
  teacherRuns: number;
  final?: EvalResult;
}

function paramTotal(e: EngineApi): number {
  let n = 0;
  for (const p of e.params.values()) n += p.data.length;
  return n;
}

/**
 * Trains `student` in place. `teacher` may be undefined only when alpha is 0 (hard labels alone).
 */
export function distill(teacher: EngineApi | undefined, student: TrainableEngine, data: DistillData, opts: DistillOptions): { model: ModelProto; report: DistillReport } {
  const temperature = opts.temperature ?? 4;
  const alpha = opts.alpha ?? 0.7;
  if (!(alpha >= 0 && alpha <= 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `distill: alpha must be in [0, 1], got ${alpha}`);
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `distill: temperature must be a positive number, got ${temperature}`);
  if (alpha > 0 && !teacher) throw new ModelsmithError(ErrorCodes.USAGE, 'distill: soft targets (alpha > 0) need a teacher');
  const optSpec: OptimizerSpec = opts.optimizer ?? { type: 'adam', lr: 1e-3 };
  const sOut = outputName(student, opts.studentOutput);
  const soft = alpha > 0 && teacher ? new TeacherLogits(teacher, outputName(teacher, opts.teacherOutput), opts.cacheTeacher ?? true) : undefined;

  const loss: LossFn = (logits, batch) => {
    if (!soft) {
      if (!batch.labels) throw new ModelsmithError(ErrorCodes.USAGE, 'distill: hard-label training needs labels');
      return crossEntropy(logits, batch.labels);
    }
    return distillationLoss(logits, soft.get(batch, logits), batch.labels, { temperature, alpha });
  };

  const epochs: DistillEpoch[] = [];
  const evalNow = (e: EngineApi, out?: string): EvalResult | undefined => (data.eval ? evaluate(e, data.eval(), out ? { output: out } : {}) : undefined);
  const teacherEval = teacher && data.eval ? evalNow(teacher, opts.teacherOutput) : undefined;
  const result = train(student, data.train, {
    epochs: opts.epochs,
    optimizer: createOptimizer(optSpec),
    loss,
    output: sOut,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    ...(opts.lrDecay ? { lrDecay: opts.lrDecay } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    onEpoch: (e) => {
      const ev = evalNow(student, sOut);
      const rec: DistillEpoch = ev ? { ...e, eval: ev } : e;
      epochs.push(rec);
      opts.onEpoch?.(rec);
    },
  });
  const final = epochs.at(-1)?.eval;
  const report: DistillReport = {
    options: { epochs: opts.epochs, temperature, alpha, optimizer: optSpec, lrDecay: opts.lrDecay ?? 'constant', ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}) },
    params: teacher ? { student: paramTotal(student), teacher: paramTotal(teacher) } : { student: paramTotal(student) },
    ...(teacherEval ? { teacher: teacherEval } : {}),
    epochs,
    steps: result.steps,
    teacherRuns: soft?.runs ?? 0,
    ...(final ? { final } : {}),
  };
  return { model: student.exportModel(), report };
}

/**
 * Models in, trained student out: builds the engines, derives the student when `student` gives a
 * width instead of a model (the CLI's `--student s.onnx` / `--width w`).
 */
export async function distillModels(
  teacher: ModelProto | OnnxModel,
  student: ModelProto | OnnxModel | DeriveStudentOptions,
  data: DistillData,
  opts: DistillOptions,
  engineOpts: EngineOptions = {},
): Promise<{ model: ModelProto; report: DistillReport; derived?: DerivedStudent }> {
  const tProto = 'proto' in teacher ? teacher.proto : teacher;
  const derived = 'width' in student ? deriveStudent(tProto, student) : undefined;
  const teacherEngine = (opts.alpha ?? 0.7) > 0 ? await createEngine(teacher, engineOpts) : undefined;
  const studentEngine = await createEngine(derived ? derived.model : (student as ModelProto | OnnxModel), engineOpts);
  const r = distill(teacherEngine, studentEngine, data, opts);
  return derived ? { ...r, derived } : r;
}
