/**
 * Which tensors of an unpickled checkpoint form "the weights", and what they are called. A
 * state_dict gives its keys; training checkpoints nest it under a key (chosen by the user or found
 * by the usual names); whole pickled modules and TorchScript objects give dotted attribute paths,
 * with nn.Module's `_parameters` / `_buffers` / `_modules` folded away so names match state_dict().
 *
 * The object graph is untrusted: it can share nodes (exponential paths) or contain cycles, so every
 * walk has a depth cap, an on-path set and a node budget.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { PyDict, PyObject, PySet, PyTuple, TensorRef } from './pyobjects.js';

const TRANSPARENT = new Set(['_parameters', '_buffers', '_modules']);
const MAX_DEPTH = 200;
const MAX_NODES = 2_000_000;
const DEFAULT_KEYS = ['state_dict', 'model_state_dict', 'model'];

export interface FoundTensor {
  name: string;
  ref: TensorRef;
}

export interface Selection {
  root: unknown;
  selectedKey?: string;
  found: FoundTensor[];
  stateDictKeys: string[];
  /** Walk stopped early (depth or node budget). */
  truncated: boolean;
}

/** Python's str() of a dict key, for the key types checkpoints use. */
export function keyName(k: unknown, depth = 0): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null || k === undefined) return 'None';
  // Tuple keys can nest arbitrarily deep in a hostile file: stop early rather than recurse.
  if (k instanceof PyTuple) return depth > 8 ? '(…)' : `(${k.items.slice(0, 16).map((x) => keyName(x, depth + 1)).join(', ')})`;
  return '?';
}

/** Named children of a container value, or undefined for leaves. */
export function children(v: unknown): [string, unknown][] | undefined {
  if (v instanceof PyDict) return [...v.map].map(([k, x]) => [keyName(k), x]);
  if (Array.isArray(v)) return v.map((x, i) => [String(i), x]);
  if (v instanceof PyTuple) return v.items.map((x, i) => [String(i), x]);
  if (v instanceof PySet) return v.items.map((x, i) => [String(i), x]);
  if (v instanceof PyObject) {
    const out: [string, unknown][] = [];
    const addState = (s: unknown): void => {
      if (s instanceof PyDict) {
        for (const [k, x] of s.map) {
          const name = keyName(k);
          if (TRANSPARENT.has(name) && x instanceof PyDict) out.push(...children(x)!);
          else out.push([name, x]);
        }
      } else if (s instanceof PyTuple) {
        // (dict_state, slot_state) from __reduce_ex__ with __slots__.
        for (const part of s.items) if (part instanceof PyDict) addState(part);
      } else if (s !== undefined && s !== null) {
        out.push(['state', s]);
      }
    };
    addState(v.state);
    if (v.dictItems) for (const [k, x] of v.dictItems) out.push([keyName(k), x]);
    if (v.listItems) v.listItems.forEach((x, i) => out.push([String(i), x]));
    return out;
  }
  return undefined;
}

class Walker {
  nodes = 0;
  truncated = false;
  private readonly onPath = new Set<unknown>();

  /** Visit every tensor below `v`; `visit` returns false to stop early. */
  walk(v: unknown, name: string, depth: number, visit: (t: TensorRef, name: string) => boolean | void): boolean {
    if (++this.nodes > MAX_NODES || depth > MAX_DEPTH) {
      this.truncated = true;
      return false;
    }
    if (v instanceof TensorRef) return visit(v, name) !== false;
    const kids = children(v);
    if (!kids || this.onPath.has(v)) return true;
    this.onPath.add(v);
    try {
      for (const [k, x] of kids) {
        if (!this.walk(x, name === '' ? k : `${name}.${k}`, depth + 1, visit)) return false;
      }
    } finally {
      this.onPath.delete(v);
    }
    return true;
  }
}

function containsTensor(v: unknown, w: Walker): boolean {
  let found = false;
  w.walk(v, '', 0, () => {
    found = true;
    return false;
  });
  return found;
}

function isTensorDict(v: unknown): boolean {
  if (!(v instanceof PyDict)) return false;
  for (const x of v.map.values()) if (x instanceof TensorRef) return true;
  return false;
}

/** Follow a dotted key; dict keys may themselves contain dots, so the longest matching key wins. */
function resolveKey(top: unknown, key: string, path?: string): unknown {
  const segs = key.split('.');
  let cur = top;
  let i = 0;
  while (i < segs.length) {
    const kids = children(cur);
    const map = new Map(kids ?? []);
    let matched = false;
    for (let j = segs.length; j > i; j--) {
      const cand = segs.slice(i, j).join('.');
      if (map.has(cand)) {
        cur = map.get(cand);
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) {
      const avail = [...map.keys()];
      const where = i === 0 ? 'at the top level' : `under '${segs.slice(0, i).join('.')}'`;
      const list = avail.length ? avail.slice(0, 50).map((k) => `'${k}'`).join(', ') + (avail.length > 50 ? `, … (${avail.length} keys)` : '') : '(none)';
      throw new ModelsmithError(ErrorCodes.USAGE, `key '${key}' not found ${where}; available keys: ${list}`, { format: 'pytorch', ...(path !== undefined ? { path } : {}) });
    }
  }
  return cur;
}

export function selectTensors(top: unknown, opts: { key?: string; path?: string } = {}): Selection {
  const stateDictKeys: string[] = [];
  // Only a dict's keys are candidates: a pickled module's attributes are submodules, not state_dicts.
  if (top instanceof PyDict) {
    // One budget for all keys: a hostile top level could share one huge tensor-free graph under every key.
    const probe = new Walker();
    for (const [k, v] of children(top)!) {
      if ((v instanceof PyDict || v instanceof PyObject) && containsTensor(v, probe)) stateDictKeys.push(k);
      if (probe.truncated) break;
    }
  }
  let root: unknown = top;
  let selectedKey: string | undefined;
  if (opts.key !== undefined && opts.key !== '') {
    root = resolveKey(top, opts.key, opts.path);
    selectedKey = opts.key;
  } else if (!isTensorDict(top) && top instanceof PyDict) {
    for (const k of DEFAULT_KEYS) {
      const v = top.map.get(k);
      if (isTensorDict(v)) {
        root = v;
        selectedKey = k;
        break;
      }
    }
  }
  const found: FoundTensor[] = [];
  const w = new Walker();
  const fallback = selectedKey !== undefined ? selectedKey.split('.').pop()! : 'tensor';
  w.walk(root, '', 0, (ref, name) => {
    found.push({ name: name === '' ? fallback : name, ref });
  });
  return { root, ...(selectedKey !== undefined ? { selectedKey } : {}), found, stateDictKeys, truncated: w.truncated };
}
