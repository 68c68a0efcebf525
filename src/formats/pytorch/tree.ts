/**
 * A JSON-able, bounded summary of an unpickled object for `inspect`: tensors as
 * `{tensor: 'float32[3,4]'}`, placeholders as `{global: 'argparse.Namespace', ...}`, long containers
 * and strings cut. Shared nodes are summarised each time they appear, so a node budget keeps
 * hostile graphs (exponential sharing, cycles) from blowing up.
 */
import { isStorage } from './interpreter.js';
import { PyBytes, PyComplex, PyDict, PyGlobal, PyObject, PySet, PyTuple, TensorRef, TorchDtype } from './pyobjects.js';
import { keyName } from './select.js';

const MAX_ITEMS = 32;
const MAX_KEYS = 200;
const MAX_DEPTH = 16;
const MAX_NODES = 20_000;
const MAX_STRING = 200;

export function summarizeTree(v: unknown): unknown {
  const budget = { nodes: 0 };
  return summarize(v, 0, budget, new Set());
}

function summarize(v: unknown, depth: number, budget: { nodes: number }, onPath: Set<unknown>): unknown {
  if (++budget.nodes > MAX_NODES || depth > MAX_DEPTH) return '…';
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}… (${v.length} chars)` : v;
  if (v instanceof TensorRef) {
    const s: Record<string, unknown> = { tensor: `${v.dtype}[${v.shape.join(',')}]` };
    if (v.quant) s.quantized = v.quant.qdtype;
    return s;
  }
  if (isStorage(v)) return { storage: v.key, type: v.typeName };
  if (v instanceof PyGlobal) return { global: v.qualname };
  if (v instanceof TorchDtype) return { dtype: v.torchName };
  if (v instanceof PyBytes) return { bytes: v.data.byteLength };
  if (v instanceof PyComplex) return { complex: [v.re, v.im] };
  if (typeof v !== 'object') return String(v);
  if (onPath.has(v)) return '<cycle>';
  onPath.add(v);
  try {
    if (Array.isArray(v) || v instanceof PyTuple || v instanceof PySet) {
      const items = Array.isArray(v) ? v : v.items;
      const out = items.slice(0, MAX_ITEMS).map((x) => summarize(x, depth + 1, budget, onPath));
      if (items.length > MAX_ITEMS) out.push(`… ${items.length - MAX_ITEMS} more`);
      return v instanceof PySet ? { set: out } : out;
    }
    if (v instanceof PyDict) return dictSummary(v.map, depth, budget, onPath);
    if (v instanceof PyObject) {
      const s: Record<string, unknown> = { global: v.cls };
      if (v.args.length) s.args = summarize(v.args, depth + 1, budget, onPath);
      if (v.state !== undefined) s.state = summarize(v.state, depth + 1, budget, onPath);
      if (v.dictItems) s.items = dictSummary(v.dictItems, depth, budget, onPath);
      if (v.listItems) s.list = summarize(v.listItems, depth + 1, budget, onPath);
      return s;
    }
    return '?';
  } finally {
    onPath.delete(v);
  }
}

function dictSummary(map: Map<unknown, unknown>, depth: number, budget: { nodes: number }, onPath: Set<unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, x] of map) {
    if (n++ >= MAX_KEYS) {
      out['…'] = `${map.size - MAX_KEYS} more keys`;
      break;
    }
    // defineProperty: a key such as '__proto__' must stay a plain key.
    Object.defineProperty(out, keyName(k), { value: summarize(x, depth + 1, budget, onPath), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
