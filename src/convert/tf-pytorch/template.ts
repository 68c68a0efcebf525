/**
 * Naming from a template state_dict (e.g. the target model's `.pt`): the template's keys are grouped
 * into modules in the order they appear, and the Keras layers' units are paired with them in order.
 * A pair must have the same parameter names and the same shapes after the transform; the first pair
 * that does not is an E_USAGE error naming both sides (an off-by-one in layer order shows up there,
 * not as silently swapped weights).
 */
import { ErrorCodes, ModelsmithError, type Diagnostics } from '../../core/errors.js';
import type { LazyTensor, WeightSet } from '../../formats/weights.js';
import { describeParams, type Unit } from './plan.js';
import type { OutParam } from './transforms.js';
import { FORMAT } from './transforms.js';

export interface TemplateModule {
  prefix: string;
  params: Map<string, LazyTensor>;
}

/** Template keys grouped by module prefix (`features.0` of `features.0.weight`), in first-seen order. */
export function templateModules(template: WeightSet): TemplateModule[] {
  const mods = new Map<string, TemplateModule>();
  for (const t of template.tensors) {
    const dot = t.name.lastIndexOf('.');
    const prefix = dot < 0 ? '' : t.name.slice(0, dot);
    const param = t.name.slice(dot + 1);
    let m = mods.get(prefix);
    if (!m) mods.set(prefix, (m = { prefix, params: new Map() }));
    m.params.set(param, t);
  }
  return [...mods.values()];
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const key = (prefix: string, param: string): string => (prefix === '' ? param : `${prefix}.${param}`);

/** Why a unit cannot fill a template module, or undefined when it can. */
function mismatch(u: Unit, m: TemplateModule): string | undefined {
  // num_batches_tracked is torch bookkeeping: a template without it still matches.
  const ours = u.params.filter((p) => m.params.has(p.param) || p.param !== 'num_batches_tracked');
  const missing = [...m.params.keys()].filter((k) => !ours.some((p) => p.param === k));
  const extra = ours.filter((p) => !m.params.has(p.param)).map((p) => p.param);
  if (missing.length > 0 || extra.length > 0) {
    return `parameters differ (${[...missing.map((k) => `torch has '${k}'`), ...extra.map((k) => `TF gives '${k}'`)].join(', ')})`;
  }
  for (const p of ours) {
    const t = m.params.get(p.param)!;
    if (!sameShape(p.shape, t.shape)) return `'${p.param}' is [${p.shape.join(',')}] after the transform, torch expects [${t.shape.join(',')}]`;
  }
  return undefined;
}

export interface TemplateNaming {
  names: Map<OutParam, string>;
  unmatchedUnits: Unit[];
  unmatchedTorch: string[];
}

export function templateNames(units: Unit[], template: WeightSet, path: string, diags: Diagnostics): TemplateNaming {
  const mods = templateModules(template);
  const names = new Map<OutParam, string>();
  const n = Math.min(units.length, mods.length);
  for (let i = 0; i < n; i++) {
    const u = units[i]!;
    const m = mods[i]!;
    const why = mismatch(u, m);
    const tfName = `${u.layer.name}${u.module === '' ? '' : `.${u.module}`}`;
    if (why !== undefined) {
      throw new ModelsmithError(ErrorCodes.USAGE,
        `template pair #${i + 1} does not match: TF layer '${tfName}' (${u.kind}: ${describeParams(u.params)}) vs torch module '${m.prefix}' (${describeParams([...m.params].map(([param, t]) => ({ param, shape: t.shape })))}): ${why}`,
        { format: FORMAT, path, tensor: m.prefix, op: u.kind });
    }
    for (const p of u.params) {
      const t = m.params.get(p.param);
      if (!t) continue; // num_batches_tracked absent from the template
      if (t.dtype !== p.dtype) diags.warn('TF_TORCH_TEMPLATE_DTYPE', `'${key(m.prefix, p.param)}' is ${t.dtype} in the template, ${p.dtype} from TF; keeping ${p.dtype}`, { tensor: key(m.prefix, p.param) });
      names.set(p, key(m.prefix, p.param));
    }
  }
  const unmatchedUnits = units.slice(n);
  const unmatchedTorch = mods.slice(n).flatMap((m) => [...m.params.keys()].map((p) => key(m.prefix, p)));
  if (unmatchedUnits.length > 0) diags.warn('TF_TORCH_TEMPLATE_SHORT', `the template has ${mods.length} modules, the TF model ${units.length}: ${unmatchedUnits.length} TF layers left unmatched`);
  if (unmatchedTorch.length > 0) diags.warn('TF_TORCH_TEMPLATE_LONG', `the template has ${mods.length} modules, the TF model ${units.length}: ${unmatchedTorch.length} torch keys left unmatched`);
  return { names, unmatchedUnits, unmatchedTorch };
}

/**
 * Mapping file + template: the map names, the template checks. Every mapped key must exist in the
 * template with the transformed shape; returns the template keys nothing was mapped to.
 */
export function checkMappedKeys(tensors: ReadonlyArray<{ name: string; shape: number[] }>, template: WeightSet, path: string): string[] {
  const want = new Map(template.tensors.map((t) => [t.name, t]));
  for (const t of tensors) {
    const w = want.get(t.name);
    if (!w) throw new ModelsmithError(ErrorCodes.USAGE, `mapped key '${t.name}' is not in the template`, { format: FORMAT, path, tensor: t.name });
    if (!sameShape(w.shape, t.shape)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `'${t.name}' is [${t.shape.join(',')}] after the transform, the template has [${w.shape.join(',')}]`, { format: FORMAT, path, tensor: t.name });
    }
  }
  const have = new Set(tensors.map((t) => t.name));
  return template.tensors.map((t) => t.name).filter((n) => !have.has(n));
}

/** The template's key order, which is what the target module's state_dict() produces. Every name must be in the template. */
export function sortLikeTemplate(tensors: Array<{ name: string }>, template: WeightSet): void {
  const order = new Map(template.tensors.map((t, i) => [t.name, i]));
  tensors.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
}
