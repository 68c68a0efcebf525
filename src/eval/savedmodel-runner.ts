/**
 * A SavedModel as the candidate of `modelsmith eval model.onnx saved_model_dir`: its serving
 * signature is frozen once (variables → constants, functions inlined) and every sample runs through
 * TF.js (`runGraphDef`). Same surface as OrtSession (output names, run, release) so `evaluate`
 * compares it with onnxruntime's run of the ONNX model exactly as it compares two ONNX models.
 * Loaded lazily by compare.ts: TF.js and the SavedModel reader stay out of ONNX-only runs.
 */
import { join } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { readSavedModel } from '../formats/savedmodel/read.js';
import { DEFAULT_SIGNATURE, freezeSignature, type FrozenGraph } from '../formats/savedmodel/freeze.js';
import { runGraphDef } from '../formats/savedmodel/tfjs.js';
import { FileSource, siblingResolver } from '../platform/node.js';

export class SavedModelRunner {
  private constructor(
    readonly path: string,
    private readonly frozen: FrozenGraph,
  ) {}

  static async open(dir: string, signature: string = DEFAULT_SIGNATURE): Promise<SavedModelRunner> {
    const files: FileSource[] = [];
    try {
      const file = await readSavedModel(siblingResolver(join(dir, 'saved_model.pb'), files), { path: dir });
      return new SavedModelRunner(dir, await freezeSignature(file, signature));
    } finally {
      // Freezing copied every variable into the graph's constants: the files are no longer needed.
      await Promise.all(files.map((f) => f.close().catch(() => undefined)));
    }
  }

  get inputNames(): readonly string[] {
    return this.frozen.inputs.map((i) => i.key);
  }

  get outputNames(): readonly string[] {
    return this.frozen.outputs.map((o) => o.key);
  }

  /** Runs once; inputs are matched to signature inputs by name; outputs come back in outputNames order. */
  async run(inputs: readonly Tensor[], hint?: string): Promise<Tensor[]> {
    const feeds: Record<string, Tensor> = {};
    for (const t of inputs) {
      const i = this.frozen.inputs.find((x) => x.key === t.name);
      if (!i) {
        throw new ModelsmithError(ErrorCodes.USAGE, `the SavedModel signature has no input '${t.name}' (it has ${this.inputNames.map((n) => `'${n}'`).join(', ')})`, { path: this.path, tensor: t.name });
      }
      feeds[i.node] = t;
    }
    try {
      const got = await runGraphDef(this.frozen.graph, feeds, this.frozen.outputs.map((o) => o.node), {
        path: this.path,
        fetchDtypes: this.frozen.outputs.map((o) => o.dtype),
      });
      return got.map((t, k) => ({ ...t, name: this.frozen.outputs[k]!.key }));
    } catch (e) {
      if (e instanceof ModelsmithError) throw e;
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `TF.js failed to run the SavedModel: ${String((e as Error)?.message ?? e).split('\n')[0]}${hint ? `; ${hint}` : ''}`, { path: this.path, cause: e });
    }
  }

  async release(): Promise<void> {}
}
