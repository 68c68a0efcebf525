import { beforeAll, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { deriveStudent, distill, distillModels, parameterCount, type DistillEpoch } from '../../src/compress/distill.js';
import { tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { typedView } from '../../src/core/tensor.js';
import { arrayBatches } from '../../src/train/data.js';
import { evaluate, train } from '../../src/train/loop.js';
import { Adam } from '../../src/train/optim.js';
import { blobs, mlp } from '../train/tiny.js';

const D = 8, C = 5;
const trainSet = blobs(640, D, C, 21, 1.1);
const testSet = blobs(320, D, C, 21, 1.1);
const trainBatches = arrayBatches(trainSet, { batchSize: 32, seed: 4 });
const evalBatches = () => arrayBatches(testSet, { batchSize: 160 })(0);

let teacher: Engine;
beforeAll(async () => {
  teacher = await createEngine(mlp(D, 48, C, 2));
  train(teacher, trainBatches, { epochs: 8, optimizer: new Adam({ lr: 0.01 }) });
});

function weight(model: ReturnType<typeof mlp>, name: string): Float32Array {
  return typedView(tensorFromProtoSync(model.graph!.initializer.find((t) => t.name === name)!)) as Float32Array;
}

describe('distillation', () => {
  it('trains a given student on soft targets: loss falls, accuracy rises, teacher logits cached', async () => {
    const student = await createEngine(mlp(D, 6, C, 8));
    const before = evaluate(student, evalBatches());
    const epochs: DistillEpoch[] = [];
    const { model, report } = distill(teacher, student, { train: trainBatches, eval: evalBatches }, {
      epochs: 5, temperature: 3, alpha: 0.8, optimizer: { type: 'adam', lr: 0.01 }, onEpoch: (e) => epochs.push(e),
    });
    expect(epochs.length).toBe(5);
    expect(report.epochs.map((e) => e.steps)).toEqual([20, 20, 20, 20, 20]);
    expect(report.epochs[4]!.loss).toBeLessThan(report.epochs[0]!.loss * 0.7);
    expect(report.final!.accuracy).toBeGreaterThan(before.accuracy + 0.2);
    expect(report.final!.accuracy).toBeGreaterThan(report.teacher!.accuracy - 0.1);
    expect(report.params).toEqual({ student: D * 6 + 6 + 6 * C + C, teacher: D * 48 + 48 + 48 * C + C });
    // the teacher ran once per batch of the first epoch only
    expect(report.teacherRuns).toBe(20);
    // the exported model holds the trained weights
    expect([...weight(model, 'W2')]).toEqual([...student.params.get('W2')!.data]);
  });

  it('alpha = 0 is hard-label training and never needs the teacher', async () => {
    const student = await createEngine(mlp(D, 6, C, 8));
    const { report } = distill(undefined, student, { train: trainBatches }, { epochs: 2, alpha: 0, optimizer: { type: 'adam', lr: 0.01 }, maxSteps: 30 });
    expect(report.teacherRuns).toBe(0);
    expect(report.steps).toBe(30);
    expect(report.epochs[1]!.loss).toBeLessThan(report.epochs[0]!.loss);
  });

  it('derives a narrower student from the teacher (kept or re-initialised weights)', async () => {
    const t = teacher.exportModel();
    const kept = deriveStudent(t, { width: 0.25, init: 'keep' });
    expect(parameterCount(t)).toBe(D * 48 + 48 + 48 * C + C);
    expect(parameterCount(kept.model)).toBe(D * 12 + 12 + 12 * C + C);
    expect(kept.channels.layers.map((l) => [l.weight, l.channelsBefore, l.channelsAfter])).toEqual([['W1', 48, 12]]);
    // kept columns of W1 are the teacher's
    const tw = weight(t, 'W1'), sw = weight(kept.model, 'W1');
    const removed = new Set(kept.channels.layers[0]!.removed);
    const keptCols = Array.from({ length: 48 }, (_, j) => j).filter((j) => !removed.has(j));
    for (let i = 0; i < D; i++) keptCols.forEach((j, k) => expect(sw[i * 12 + k]).toBe(tw[i * 48 + j]));
    // the teacher is not edited
    expect(parameterCount(teacher.exportModel())).toBe(D * 48 + 48 + 48 * C + C);

    const fresh = deriveStudent(t, { width: 0.25, init: 'reinit', seed: 3 });
    const w1 = weight(fresh.model, 'W1'), w2 = weight(fresh.model, 'W2');
    expect(Math.max(...w1.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(D));
    expect(Math.max(...w2.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(12));
    expect([...w1]).not.toEqual([...sw]);

    // the derived student trains with distillation
    const student = await createEngine(fresh.model);
    const { report } = distill(teacher, student, { train: trainBatches, eval: evalBatches }, { epochs: 4, optimizer: { type: 'adam', lr: 0.01 } });
    expect(report.final!.accuracy).toBeGreaterThan(report.teacher!.accuracy - 0.1);
  });

  it('refuses bad options (E_OUT_OF_RANGE, E_USAGE, E_UNSUPPORTED, E_MALFORMED)', async () => {
    const student = await createEngine(mlp(D, 6, C, 8));
    const d = { train: trainBatches };
    expect(() => distill(teacher, student, d, { epochs: 1, alpha: 2 })).toThrow(/E_OUT_OF_RANGE.*alpha/);
    expect(() => distill(teacher, student, d, { epochs: 1, temperature: -1 })).toThrow(/E_OUT_OF_RANGE.*temperature/);
    expect(() => distill(undefined, student, d, { epochs: 1 })).toThrow(/E_USAGE.*need a teacher/);
    const unlabelled = arrayBatches({ ...trainSet, labels: undefined }, { batchSize: 32 });
    expect(() => distill(undefined, student, { train: unlabelled }, { epochs: 1, alpha: 0 })).toThrow(/E_USAGE.*needs labels/);
    const t = teacher.exportModel();
    expect(() => deriveStudent(t, { width: 0 })).toThrow(/E_OUT_OF_RANGE.*width/);
    expect(() => deriveStudent(t, { width: 0.5, init: 'zero' as never })).toThrow(/E_UNSUPPORTED.*init/);
    expect(() => deriveStudent(create(ModelProtoSchema, {}), { width: 0.5 })).toThrow(/E_MALFORMED.*no graph/);
  });

  it('distillModels derives the student from a width and trains it', async () => {
    const t = teacher.exportModel();
    const r = await distillModels(t, { width: 0.5, init: 'reinit', seed: 1 }, { train: trainBatches, eval: evalBatches }, { epochs: 2, optimizer: { type: 'adam', lr: 0.01 } });
    expect(r.derived!.init).toBe('reinit');
    expect(r.report.params).toEqual({ student: D * 24 + 24 + 24 * C + C, teacher: D * 48 + 48 + 48 * C + C });
    expect(parameterCount(r.model)).toBe(D * 24 + 24 + 24 * C + C);
    expect(r.report.final!.accuracy).toBeGreaterThan(0.5);
  });

  it('soft targets without labels train on the teacher alone', async () => {
    const student = await createEngine(mlp(D, 6, C, 8));
    const unlabelled = arrayBatches({ ...trainSet, labels: undefined }, { batchSize: 32, seed: 4 });
    const { report } = distill(teacher, student, { train: unlabelled, eval: evalBatches }, { epochs: 3, alpha: 0.5, optimizer: { type: 'adam', lr: 0.01 } });
    expect(report.epochs[2]!.loss).toBeLessThan(report.epochs[0]!.loss);
    expect(report.final!.accuracy).toBeGreaterThan(0.5);
  });
});
