/**
 * Command-line data sets for the learning verbs (quantize --method static, prune --method gradient,
 * distill): parsing of the shared flags and opening the data set against the model's inputs.
 */
import type { ModelProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { batches, openDataset, type Dataset } from '../data/dataset.js';
import type { ArrayDataset } from '../train/data.js';
import { modelInputs } from '../data/model-inputs.js';
import type { Batch } from '../data/types.js';
import { nodeDataIo } from '../platform/data-io.js';

export const DATA_HELP = `data sets (DATA): a folder of .npy files (one sample or a batch [n, ...] per file, sorted by
  name; labels.npy optional), an .npz (members named after the model inputs, 'labels' optional), a
  folder of ONNX TensorProto .pb files (input_0.pb … or test_data_set_N folders), or an IDX image
  file (Fashion-MNIST style; pixels divided by 255, labels from the sibling *labels*/idx1 file).`;

export function parsePositiveInt(flag: string, v: unknown, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < min) throw new ModelsmithError(ErrorCodes.USAGE, `${flag} must be an integer ≥ ${min}, got '${String(v)}'`);
  return n;
}

export function parseFraction(flag: string, v: unknown, lo: number, hi: number, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi || String(v).trim() === '') {
    throw new ModelsmithError(ErrorCodes.USAGE, `${flag} must be a number in [${lo}, ${hi}], got '${String(v)}'`);
  }
  return n;
}

export function parseChoice<T extends string>(flag: string, v: unknown, choices: readonly T[], def: T): T {
  if (v === undefined) return def;
  if (!(choices as readonly string[]).includes(String(v))) throw new ModelsmithError(ErrorCodes.USAGE, `${flag} must be one of ${choices.join(', ')}, got '${String(v)}'`);
  return v as T;
}

/** Opens DATA for `model`'s inputs; `maxSamples` caps how much of it is used. */
export async function openModelData(path: string, model: ModelProto, maxSamples?: number): Promise<Dataset> {
  return openDataset(path, nodeDataIo, { inputs: modelInputs(model), ...(maxSamples !== undefined ? { maxSamples } : {}) });
}

/** Passes batches through, calling `onBatch(samplesSoFar)` after each. */
export async function* counted(src: AsyncIterable<Batch>, onBatch: (samples: number) => void): AsyncGenerator<Batch> {
  let n = 0;
  for await (const b of src) {
    yield b;
    const first = Object.values(b.inputs)[0];
    n += first ? first.dims[0] ?? 1 : 0;
    onBatch(n);
  }
}

/**
 * A labelled data set read whole into memory for training (shuffled every epoch, read many times):
 * one model input, float32 samples back to back. Training on data that does not fit is not offered;
 * `--samples` caps what is read.
 */
export async function loadTrainingData(path: string, model: ModelProto, maxSamples: number | undefined, what: string): Promise<{ data: ArrayDataset; kind: string }> {
  const ds = await openModelData(path, model, maxSamples);
  if (ds.inputNames.length !== 1) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${what}: training takes models with one input; ${path} feeds ${ds.inputNames.length} (${ds.inputNames.join(', ')})`, { path });
  }
  if (!ds.hasLabels) {
    throw new ModelsmithError(ErrorCodes.USAGE, `${what}: ${path} has no labels (labels.npy, an npz member 'labels', or an IDX labels file next to the images)`, { path });
  }
  const name = ds.inputNames[0]!;
  const dims = [...ds.sampleDims[name]!];
  const per = dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(ds.sampleCount * per);
  const labels = new Int32Array(ds.sampleCount);
  let n = 0;
  for await (const b of batches(ds, 256)) {
    const v = b.inputs[name]!;
    const count = v.dims[0] ?? 1;
    x.set(v.data as Float32Array, n * per);
    labels.set(b.labels!, n);
    n += count;
  }
  return { data: { x, sampleDims: dims, labels, inputName: name }, kind: ds.kind };
}
