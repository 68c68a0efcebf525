/**
 * Layer discovery: groups a SavedModel's variables into Keras layers (object path prefix + attribute),
 * drops optimizer state, and attaches each layer's class, config and place in the model.
 *
 * TF2 checkpoints name variables by object path (`layer_with_weights-3/moving_mean`), which is what
 * identifies the layer; TF1 graphs only have variable names (`conv2d_1/kernel`), grouped by prefix.
 */
import type { Diagnostics } from '../../core/errors.js';
import type { SavedModelFile } from '../../formats/savedmodel/read.js';
import type { LazyTensor } from '../../formats/weights.js';
import { kerasModelMeta, type KerasLayerMeta, type KerasModelMeta } from './keras-meta.js';

export interface TfLayer {
  /** The SavedModel folder, for messages. */
  path: string;
  /** Object path (TF2) or variable-name prefix (TF1) shared by the layer's variables. */
  key: string;
  /** Keras layer name where known, else derived from the variable names. */
  name: string;
  /** Keras class (from metadata), or undefined when the model carries none. */
  className?: string;
  meta?: KerasLayerMeta;
  /** Attribute path inside the layer (`kernel`, `cell/recurrent_kernel`, `forward_layer/cell/bias`) → variable. */
  vars: Map<string, LazyTensor>;
}

export interface DiscoveredLayers {
  layers: TfLayer[];
  /** Variables left out (optimizer slots, counters, metrics) — kept for the report. */
  excluded: LazyTensor[];
  keras: KerasModelMeta;
}

const OPTIMIZER_MARKERS = ['.OPTIMIZER_SLOT', '_CHECKPOINTABLE_OBJECT_GRAPH'];
const OPTIMIZER_PREFIXES = ['optimizer/', 'save_counter', 'keras_api/metrics', 'global_step'];

/** Optimizer slots and counters, metrics state and checkpoint bookkeeping: not model weights. */
export function isTrainingState(t: LazyTensor): boolean {
  const key = typeof t.extra?.['checkpointKey'] === 'string' ? t.extra['checkpointKey'] : t.name;
  const path = typeof t.extra?.['objectPath'] === 'string' ? t.extra['objectPath'] : key;
  if (OPTIMIZER_MARKERS.some((m) => key.includes(m))) return true;
  if (OPTIMIZER_PREFIXES.some((p) => path.startsWith(p) || key.startsWith(p))) return true;
  // TF1 Adam/Momentum slots are separate variables named `<var>/Adam`, `<var>/Momentum`.
  return /\/(Adam(_\d+)?|Momentum|RMSProp(_\d+)?|Adagrad|Ftrl(_\d+)?)$/.test(t.name) || /^(beta[12]_power|Adam\/)/.test(t.name);
}

/** Splits an attribute path off a variable path: RNN cells and Bidirectional halves stay with the attribute. */
export function splitAttribute(path: string): { prefix: string; attr: string } {
  const parts = path.split('/');
  let n = 1;
  if (parts.length > n && parts[parts.length - 1 - n] === 'cell') n++;
  if (parts.length > n && /^(forward_layer|backward_layer)$/.test(parts[parts.length - 1 - n]!)) n++;
  // A layer must keep at least one segment of its own.
  if (n >= parts.length) n = Math.max(1, parts.length - 1);
  return { prefix: parts.slice(0, parts.length - n).join('/'), attr: parts.slice(parts.length - n).join('/') };
}

/** Natural order of object paths: `layer_with_weights-2` before `layer_with_weights-10`. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export function discoverLayers(file: SavedModelFile, includeOptimizer: boolean, diags: Diagnostics): DiscoveredLayers {
  const keras = kerasModelMeta(file);
  const excluded: LazyTensor[] = [];
  const byKey = new Map<string, TfLayer>();
  for (const t of file.variables.tensors) {
    if (!includeOptimizer && isTrainingState(t)) {
      excluded.push(t);
      continue;
    }
    const objectPath = typeof t.extra?.['objectPath'] === 'string' ? t.extra['objectPath'] : undefined;
    const variableName = typeof t.extra?.['variableName'] === 'string' ? t.extra['variableName'] : t.name;
    const { prefix, attr } = splitAttribute(objectPath ?? variableName);
    let layer = byKey.get(prefix);
    if (!layer) {
      const meta = (objectPath !== undefined ? keras.byPath.get(prefix) : undefined) ?? keras.byName.get(variableName.split('/')[0]!);
      // Root-level variables (TF1 `a`, `b`) form one nameless layer: their torch keys are bare names.
      const name = meta?.name ?? (objectPath !== undefined && prefix !== '' ? variableName.split('/')[0]! : prefix);
      layer = { path: file.path, key: prefix, name, vars: new Map(), ...(meta ? { meta } : {}), ...(meta?.className ? { className: meta.className } : {}) };
      byKey.set(prefix, layer);
    }
    if (layer.vars.has(attr)) {
      diags.warn('TF_TORCH_DUPLICATE_VARIABLE', `layer '${layer.name}' has two variables for '${attr}'; keeping the first`, { tensor: t.name });
      continue;
    }
    layer.vars.set(attr, t);
  }
  const rank = new Map(keras.order.map((n, i) => [n, i]));
  // Layers of a nested model take the place of that model in the outer config.
  const rankOf = (l: TfLayer): number => rank.get(l.name) ?? rank.get(keras.byPath.get(l.key.split('/')[0]!)?.name ?? '') ?? Infinity;
  const layers = [...byKey.values()].sort((a, b) => {
    // Layers the model config lists come in its order; any others (subclassed parts) after them.
    const ra = rankOf(a);
    const rb = rankOf(b);
    return ra !== rb ? (ra < rb ? -1 : 1) : naturalCompare(a.key, b.key);
  });
  if (excluded.length > 0) diags.info('TF_TORCH_TRAINING_STATE', `${excluded.length} optimizer/metric variables left out`);
  return { layers, excluded, keras };
}
