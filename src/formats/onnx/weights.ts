/**
 * ONNX initializers as a weight container: export them as a WeightSet (→ .pt / .safetensors), and
 * replace them from a WeightSet (a fine-tuned state_dict back into an exported graph). Only the main
 * graph's initializers take part: weights in Constant nodes or subgraphs are graph structure, and
 * a state_dict has no place for them.
 */
import { TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { Diagnostic } from '../../core/errors.js';
import type { OnnxModel } from './read.js';
import { modelTensorContext, payloadByteLength, tensorDType, tensorFromProto, tensorShape } from './tensor.js';
import type { LazyTensor, WeightSet } from '../weights.js';

export function onnxWeights(model: OnnxModel): WeightSet {
  const ctx = modelTensorContext(model);
  const diagnostics: Diagnostic[] = [];
  const tensors: LazyTensor[] = [];
  for (const tp of model.proto.graph?.initializer ?? []) {
    const dtype = tensorDType(tp, model.path);
    if (dtype === 'string') {
      diagnostics.push({ level: 'warning', code: 'W_STRING_TENSOR', message: `string initializer '${tp.name}' left out: weight containers hold numbers`, tensor: tp.name });
      continue;
    }
    tensors.push({
      name: tp.name,
      dtype,
      shape: tensorShape(tp, model.path),
      byteLength: payloadByteLength(tp, model.path),
      load: async () => (await tensorFromProto(tp, ctx)).data,
    });
  }
  return { format: 'onnx', path: model.path, tensors, diagnostics };
}

export interface ReplaceOptions {
  /** weight-set name → initializer name, for names that differ (unmapped names are used as they are). */
  map?: Record<string, string>;
  /** Fail when a tensor of the set matches no initializer (default true); otherwise it is reported. */
  strict?: boolean;
}

export interface ReplaceReport {
  replaced: { name: string; initializer: string; dtype: string; shape: number[] }[];
  /** Tensors of the set that match no initializer. */
  unmatched: string[];
  /** Initializers that no tensor of the set replaced. */
  untouched: string[];
}

/**
 * Overwrite initializers with the set's tensors (edits `model.proto` in place). Shapes and dtypes must
 * agree exactly: silently reshaping or casting a weight would give a model that runs and is wrong.
 */
export async function replaceOnnxInitializers(model: OnnxModel, set: WeightSet, opts: ReplaceOptions = {}): Promise<ReplaceReport> {
  const byName = new Map<string, TensorProto>();
  for (const tp of model.proto.graph?.initializer ?? []) byName.set(tp.name, tp);
  const report: ReplaceReport = { replaced: [], unmatched: [], untouched: [] };
  const done = new Set<string>();
  // Check everything before touching anything, so a mismatch leaves the model as it was.
  const plan: { t: LazyTensor; tp: TensorProto }[] = [];
  for (const t of set.tensors) {
    const target = opts.map?.[t.name] ?? t.name;
    const tp = byName.get(target);
    if (!tp) {
      report.unmatched.push(t.name);
      continue;
    }
    const dtype = tensorDType(tp, model.path);
    const shape = tensorShape(tp, model.path);
    if (dtype !== t.dtype || shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      throw new ModelsmithError(ErrorCodes.TENSOR_SIZE,
        `${set.path ?? set.format} has ${t.dtype}[${t.shape.join(',')}] for initializer '${target}', which is ${dtype}[${shape.join(',')}]`, { tensor: t.name, path: model.path });
    }
    if (done.has(target)) throw new ModelsmithError(ErrorCodes.USAGE, `two tensors map to initializer '${target}'`, { tensor: t.name });
    done.add(target);
    plan.push({ t, tp });
  }
  if (report.unmatched.length && opts.strict !== false) {
    const list = report.unmatched.slice(0, 8).join(', ') + (report.unmatched.length > 8 ? `, … (${report.unmatched.length} in all)` : '');
    throw new ModelsmithError(ErrorCodes.USAGE, `no initializer named ${list}; give a mapping file (--map) or allow partial replacement (--partial)`, { path: set.path });
  }
  for (const { t, tp } of plan) {
    const data = await t.load();
    if (data.byteLength !== t.byteLength) throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `loaded ${data.byteLength} bytes, expected ${t.byteLength}`, { tensor: t.name });
    // Plain raw_data: drop every other storage the initializer had (typed fields, external data).
    tp.rawData = new Uint8Array(data); // a copy (a Node Buffer's slice() is a view)
    tp.floatData = []; tp.int32Data = []; tp.int64Data = []; tp.doubleData = []; tp.uint64Data = []; tp.stringData = [];
    tp.externalData = [];
    tp.dataLocation = TensorProto_DataLocation.DEFAULT;
    report.replaced.push({ name: t.name, initializer: tp.name, dtype: t.dtype, shape: t.shape });
  }
  report.untouched = [...byName.keys()].filter((n) => !done.has(n));
  return report;
}
