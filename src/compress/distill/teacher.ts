/**
 * Teacher logits per batch, cached by sample index when batches carry `indices`: the teacher is
 * larger than the student, so running it again every epoch would cost more than training the
 * student. Memory: classes floats per distinct sample seen (10 floats per image on Fashion-MNIST).
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { EngineApi, FValue } from '../../engine/types.js';
import { fvalue } from '../../engine/values.js';
import { logitsOf } from '../../train/loop.js';
import type { Batch } from '../../train/types.js';

export class TeacherLogits {
  private readonly rows = new Map<number, Float32Array>();
  /** Teacher forward passes run (batches). */
  runs = 0;

  constructor(private readonly teacher: EngineApi, private readonly output: string, private readonly cache: boolean) {}

  get(batch: Batch, student: FValue): FValue {
    const [n, c] = student.dims as [number, number];
    const idx = batch.indices;
    if (this.cache && idx && idx.length === n) {
      const out = fvalue([n, c]);
      let hit = true;
      for (let i = 0; i < n && hit; i++) {
        const row = this.rows.get(idx[i]!);
        if (row) out.data.set(row, i * c);
        else hit = false;
      }
      if (hit) return out;
    }
    const t = logitsOf(this.teacher.run(batch.inputs, { outputs: [this.output] }), this.output);
    this.runs++;
    if (t.dims.length !== 2 || t.dims[0] !== n || t.dims[1] !== c) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `teacher logits [${t.dims.join(', ')}] do not match the student's [${n}, ${c}]`, { tensor: this.output });
    }
    if (this.cache && idx && idx.length === n) for (let i = 0; i < n; i++) this.rows.set(idx[i]!, t.data.slice(i * c, (i + 1) * c));
    return t;
  }
}
