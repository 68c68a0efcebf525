/**
 * Naming from a mapping file: a JSON object `{ "<TF variable>": "<torch key>" }`. A TF variable may
 * be given by graph variable name (`dense/kernel`), object path (`layer_with_weights-1/kernel`) or
 * checkpoint key. Tensors torch needs but Keras does not keep (BatchNorm `num_batches_tracked`, the
 * LSTM's zero `bias_hh`, the second half of a GRU bias) follow the module of the mapped variables.
 */
import { ErrorCodes, ModelsmithError, type Diagnostics } from '../../core/errors.js';
import type { LazyTensor } from '../../formats/weights.js';
import type { Unit } from './plan.js';
import { FORMAT, type OutParam } from './transforms.js';

/** A mapping file is a list of names; anything near this size is not one. */
const MAX_MAP_BYTES = 64 * 2 ** 20;
const MAX_MAP_ENTRIES = 1_000_000;

/** Parses and validates a mapping file's text. */
export function parseTfTorchMap(text: string | Uint8Array, path = 'map.json'): Record<string, string> {
  const size = typeof text === 'string' ? text.length : text.byteLength;
  if (size > MAX_MAP_BYTES) throw new ModelsmithError(ErrorCodes.LIMIT, `mapping file of ${size} bytes (limit ${MAX_MAP_BYTES})`, { format: FORMAT, path });
  const s = typeof text === 'string' ? text : new TextDecoder('utf-8').decode(text);
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    const at = /position (\d+)/.exec((e as Error).message);
    throw new ModelsmithError(ErrorCodes.MALFORMED, `mapping file is not JSON: ${(e as Error).message}`, { format: FORMAT, path, ...(at ? { offset: Number(at[1]) } : {}), cause: e });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, 'mapping file must be a JSON object {"<TF variable>": "<torch key>"}', { format: FORMAT, path });
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_MAP_ENTRIES) throw new ModelsmithError(ErrorCodes.LIMIT, `mapping file has ${entries.length} entries`, { format: FORMAT, path });
  const out: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (typeof val !== 'string' || val === '') throw new ModelsmithError(ErrorCodes.MALFORMED, `mapping for '${k}' must be a non-empty string (the torch key)`, { format: FORMAT, path, tensor: k });
    out[k] = val;
  }
  return out;
}

/** Every name a user may use for a TF variable. */
export function tfAliases(t: LazyTensor): string[] {
  const a = [t.name];
  for (const k of ['variableName', 'objectPath', 'checkpointKey']) {
    const v = t.extra?.[k];
    if (typeof v === 'string') a.push(v);
  }
  const ck = t.extra?.['checkpointKey'];
  if (typeof ck === 'string') a.push(ck.replace(/\/\.ATTRIBUTES\/VARIABLE_VALUE$/, ''));
  return a;
}

export interface MapNaming {
  names: Map<OutParam, string>;
  /** Units none of whose variables are mapped. */
  unmappedUnits: Unit[];
}

export function mapNames(units: Unit[], map: Record<string, string>, excluded: LazyTensor[], path: string, diags: Diagnostics): MapNaming {
  const byAlias = new Map<string, LazyTensor>();
  for (const u of units) for (const p of u.params) if (p.source) for (const a of tfAliases(p.source)) if (!byAlias.has(a)) byAlias.set(a, p.source);
  const excludedAlias = new Set(excluded.flatMap(tfAliases));
  const target = new Map<LazyTensor, string>();
  for (const [tf, torch] of Object.entries(map)) {
    const t = byAlias.get(tf);
    if (!t) {
      const why = excludedAlias.has(tf) ? 'is optimizer/metric state (set includeOptimizer to convert it)' : 'is not a variable of the model';
      throw new ModelsmithError(ErrorCodes.USAGE, `mapping entry '${tf}' → '${torch}': '${tf}' ${why}`, { format: FORMAT, path, tensor: tf });
    }
    if (target.has(t) && target.get(t) !== torch) throw new ModelsmithError(ErrorCodes.USAGE, `variable '${t.name}' is mapped twice ('${target.get(t)}' and '${torch}')`, { format: FORMAT, path, tensor: tf });
    target.set(t, torch);
  }
  const names = new Map<OutParam, string>();
  const unmappedUnits: Unit[] = [];
  for (const u of units) {
    // The module prefix comes from the first mapped variable: its key minus the parameter name.
    let prefix: string | undefined;
    const primary = new Set<LazyTensor>();
    for (const p of u.params) {
      if (!p.source || primary.has(p.source)) continue;
      const k = target.get(p.source);
      if (k === undefined) continue;
      primary.add(p.source);
      names.set(p, k);
      prefix ??= k.endsWith(`.${p.param}`) ? k.slice(0, -p.param.length - 1) : k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : '';
    }
    if (prefix === undefined) {
      unmappedUnits.push(u);
      continue;
    }
    for (const p of u.params) {
      if (names.has(p)) continue;
      if (p.source && !target.has(p.source)) {
        diags.warn('TF_TORCH_MAP_PARTIAL', `layer '${u.layer.name}': '${p.source.name}' is not in the mapping while other variables of the layer are`, { tensor: p.source.name });
        continue;
      }
      names.set(p, prefix === '' ? p.param : `${prefix}.${p.param}`);
    }
  }
  return { names, unmappedUnits };
}
