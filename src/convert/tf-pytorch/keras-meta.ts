/**
 * Keras layer metadata for the converter: class, name, config and build input shape per object path,
 * plus the model's layer order and each layer's input layer (to spot a Flatten before a Dense).
 *
 * Sources: TF 2.0–2.4 keep the JSON in the object graph's SavedUserObject.metadata (read here in
 * full); `keras_metadata.pb` models come through `file.keras`, which carries class and name (and
 * the JSON too when the reader provides a `metadata` string).
 */
import type { SavedModelFile } from '../../formats/savedmodel/read.js';
import { objectPaths } from '../../formats/savedmodel/variable-names.js';

export interface KerasLayerMeta {
  /** Object path with `/` separators (`layer_with_weights-0`); '' for the model itself. */
  path: string;
  identifier: string;
  className?: string;
  name?: string;
  config?: Record<string, unknown>;
  /** `build_input_shape` (batch dim included, null for unknown). */
  inputShape?: (number | null)[];
}

export interface KerasModelMeta {
  byPath: Map<string, KerasLayerMeta>;
  byName: Map<string, KerasLayerMeta>;
  /** Layer names in the model config's order (Sequential or Functional). */
  order: string[];
  /** Layer name → name of the layer feeding it (Sequential: the previous one). */
  inputOf: Map<string, string>;
}

/** A JSON config is user data: cap what we parse so a hostile file cannot make us chew megabytes. */
const MAX_METADATA_CHARS = 16 * 2 ** 20;

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parse(json: string): Json | undefined {
  if (json.length > MAX_METADATA_CHARS) return undefined;
  try {
    const v: unknown = JSON.parse(json);
    return isObj(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Keras serialises shapes as `{class_name: "TensorShape"|"__tuple__", items: [...]}` or a bare list. */
export function shapeItems(v: unknown): (number | null)[] | undefined {
  const items = isObj(v) ? v['items'] : v;
  if (!Array.isArray(items) || items.length > 16) return undefined;
  if (!items.every((d) => d === null || (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))) return undefined;
  return items as (number | null)[];
}

function layerMeta(path: string, identifier: string, json: string | undefined, className?: string, name?: string): KerasLayerMeta {
  const m = json !== undefined ? parse(json) : undefined;
  const cls = typeof m?.['class_name'] === 'string' ? m['class_name'] : className;
  const config = isObj(m?.['config']) ? m['config'] : undefined;
  const nm = typeof m?.['name'] === 'string' ? m['name'] : typeof config?.['name'] === 'string' ? config['name'] : name;
  const inputShape = shapeItems(m?.['build_input_shape']) ?? shapeItems(config?.['batch_input_shape']);
  return {
    path, identifier,
    ...(cls !== undefined ? { className: cls } : {}),
    ...(nm !== undefined ? { name: nm } : {}),
    ...(config ? { config } : {}),
    ...(inputShape ? { inputShape } : {}),
  };
}

/** Name of the first input layer in a Functional `inbound_nodes` entry (TF 2.x list form or Keras ≥ 2.13 dict form). */
function inboundName(inbound: unknown): string | undefined {
  if (!Array.isArray(inbound) || inbound.length === 0) return undefined;
  const first: unknown = inbound[0];
  if (Array.isArray(first) && Array.isArray(first[0]) && typeof first[0][0] === 'string') return first[0][0];
  if (isObj(first) && Array.isArray(first['args'])) {
    const a: unknown = first['args'][0];
    const hist = isObj(a) && isObj(a['config']) ? a['config']['keras_history'] : undefined;
    if (Array.isArray(hist) && typeof hist[0] === 'string') return hist[0];
  }
  return undefined;
}

function modelTopology(root: KerasLayerMeta | undefined): { order: string[]; inputOf: Map<string, string> } {
  const order: string[] = [];
  const inputOf = new Map<string, string>();
  const layers = root?.config?.['layers'];
  if (!Array.isArray(layers)) return { order, inputOf };
  const sequential = root?.className === 'Sequential';
  let prev: string | undefined;
  for (const l of layers.slice(0, 100_000)) {
    if (!isObj(l)) continue;
    const cfg = isObj(l['config']) ? l['config'] : undefined;
    const name = typeof l['name'] === 'string' ? l['name'] : typeof cfg?.['name'] === 'string' ? cfg['name'] : undefined;
    if (name === undefined) continue;
    order.push(name);
    const from = sequential ? prev : inboundName(l['inbound_nodes']);
    if (from !== undefined) inputOf.set(name, from);
    prev = name;
  }
  return { order, inputOf };
}

export function kerasModelMeta(file: SavedModelFile): KerasModelMeta {
  const byPath = new Map<string, KerasLayerMeta>();
  const nodes = file.metaGraphs[file.metaGraphIndex]?.metaGraph.objectGraphDef?.nodes ?? [];
  const paths = objectPaths(nodes);
  nodes.forEach((n, id) => {
    if (n.kind.case !== 'userObject' || !n.kind.value.identifier.startsWith('_tf_keras') || !n.kind.value.metadata) return;
    const p = paths.get(id);
    if (p !== undefined) byPath.set(p, layerMeta(p, n.kind.value.identifier, n.kind.value.metadata));
  });
  for (const l of file.keras?.layers ?? []) {
    const p = l.nodePath === 'root' ? '' : l.nodePath.replace(/^root\./, '').replace(/\./g, '/');
    if (byPath.has(p)) continue;
    const json = (l as { metadata?: unknown }).metadata;
    byPath.set(p, layerMeta(p, l.identifier, typeof json === 'string' ? json : undefined, l.className, l.name));
  }
  const byName = new Map<string, KerasLayerMeta>();
  for (const m of byPath.values()) if (m.name !== undefined && m.path !== '' && !byName.has(m.name)) byName.set(m.name, m);
  return { byPath, byName, ...modelTopology(byPath.get('')) };
}
