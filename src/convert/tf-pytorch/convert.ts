/**
 * TF / Keras SavedModel weights → PyTorch state_dict (formats.md §6): discover layers, plan the
 * layout transforms, name the outputs (mapping file > template > automatic), and return a lazy
 * WeightSet that `writePytorch` / `writeSafetensors` stream out one tensor at a time.
 */
import { byteLength } from '../../core/dtype.js';
import { Diagnostics, ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { SavedModelFile } from '../../formats/savedmodel/read.js';
import type { LazyTensor, WeightSet } from '../../formats/weights.js';
import { discoverLayers } from './layers.js';
import { mapNames } from './mapping.js';
import { autoNames } from './naming.js';
import { planUnits, type Unit } from './plan.js';
import type { TfTorchPair, TfTorchReport } from './report.js';
import { checkMappedKeys, sortLikeTemplate, templateNames } from './template.js';
import { FORMAT, type OutParam } from './transforms.js';

export interface TfToTorchOptions {
  /** Target names and shapes, e.g. a `.pt` read with readPytorch: layers are paired with its modules in order. */
  template?: WeightSet;
  /** TF variable name (or object path / checkpoint key) → torch key; wins over `template` for naming. */
  map?: Record<string, string>;
  /** Default false: optimizer slots, counters and metric state are left out. */
  includeOptimizer?: boolean;
  /**
   * Dense layer name → channel count C of the feature map flattened before it, for models whose
   * Keras metadata does not say (the Flatten HWC→CHW row permutation is applied with this C).
   */
  flatten?: Record<string, number>;
}

export interface TfToTorchResult {
  set: WeightSet;
  report: TfTorchReport;
}

const prod = (s: readonly number[]): number => s.reduce((a, d) => a * d, 1);

function lazy(p: OutParam, name: string): LazyTensor {
  return {
    name, dtype: p.dtype, shape: p.shape, byteLength: byteLength(p.dtype, prod(p.shape)),
    load: () => p.compute(),
    extra: { tfVariable: p.source?.name ?? '', transform: p.transform },
  };
}

const tfNames = (units: Unit[]): string[] => [...new Set(units.flatMap((u) => u.params.flatMap((p) => (p.source ? [p.source.name] : []))))];

export function savedModelToStateDict(file: SavedModelFile, opts: TfToTorchOptions = {}): TfToTorchResult {
  const diags = new Diagnostics();
  const path = file.path;
  const found = discoverLayers(file, opts.includeOptimizer ?? false, diags);
  if (found.layers.length === 0) {
    throw new ModelsmithError(ErrorCodes.USAGE, `the SavedModel has no weights to convert (${file.variables.tensors.length} variables, ${found.excluded.length} of them optimizer/metric state)`, { format: FORMAT, path });
  }
  const units = planUnits(found, opts.flatten, diags);

  let names: Map<OutParam, string>;
  let unmatchedTorch: string[] = [];
  if (opts.map) {
    const m = mapNames(units, opts.map, found.excluded, path, diags);
    names = m.names;
  } else if (opts.template) {
    const t = templateNames(units, opts.template, path, diags);
    names = t.names;
    unmatchedTorch = t.unmatchedTorch;
  } else {
    names = autoNames(units);
  }

  const tensors: LazyTensor[] = [];
  const pairs: TfTorchPair[] = [];
  const seen = new Map<string, string>();
  for (const u of units) {
    for (const p of u.params) {
      const name = names.get(p);
      if (name === undefined) continue;
      const from = p.source?.name ?? '';
      if (seen.has(name)) {
        throw new ModelsmithError(ErrorCodes.USAGE, `torch key '${name}' would be written twice (from '${seen.get(name) || '(generated)'}' and '${from || '(generated)'}')`, { format: FORMAT, path, tensor: name });
      }
      seen.set(name, from);
      tensors.push(lazy(p, name));
      pairs.push({ tf: from, torch: name, transform: p.transform, shapeBefore: p.shapeBefore, shapeAfter: p.shape });
    }
  }

  if (opts.template) {
    if (opts.map) unmatchedTorch = checkMappedKeys(tensors, opts.template, path);
    sortLikeTemplate(tensors, opts.template);
  }

  const used = new Set(pairs.map((p) => p.tf));
  const report: TfTorchReport = { pairs, unmatchedTf: tfNames(units).filter((n) => !used.has(n)), unmatchedTorch, diagnostics: [...file.diagnostics, ...diags.items] };
  const set: WeightSet = { format: 'tf-pytorch', path, tensors, diagnostics: report.diagnostics };
  return { set, report };
}
