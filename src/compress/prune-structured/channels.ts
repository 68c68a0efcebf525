/**
 * How many channels a value has along an axis (counted from the end), without a full shape
 * inference: Concat offsets need the channel counts of the *other* inputs. Counts come from declared
 * shapes or from the weight of the layer that made the value, through ops that keep channels.
 */
import { isDefaultDomain } from '../quantize/registry.js';
import { declaredDims, intAttr, type GraphIndex } from './graph-index.js';
import { resolveParam } from './params.js';

/** Ops whose output 0 has the shape of input 0 (channels included). */
export const SAME_SHAPE = new Set([
  'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Clip', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign',
  'ThresholdedRelu', 'Gelu', 'Mish', 'Abs', 'Neg', 'Identity', 'Dropout', 'BatchNormalization', 'InstanceNormalization', 'LRN',
]);
/** Pooling keeps the channel axis (axis 1) and its length. */
export const POOLS = new Set(['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool', 'GlobalLpPool']);
/** Element-wise ops with broadcasting: every input has the output's channels, or broadcasts along them. */
export const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Sum', 'Max', 'Min', 'Mean']);

const MAX_DEPTH = 1000;

/**
 * Channels of `value` along axis `axis` (negative: counted from the end), or undefined when not
 * known. `rank` is the value's rank when known (a Concat with a positive axis needs it).
 */
export function channelCount(idx: GraphIndex, value: string, axis: number, rank: number | undefined, memo: Map<string, number | undefined>, depth = 0): number | undefined {
  const key = `${value}|${axis}|${rank ?? ''}`;
  if (memo.has(key)) return memo.get(key);
  memo.set(key, undefined); // cycles (invalid graphs) end as unknown
  const r = count(idx, value, axis, rank, memo, depth);
  memo.set(key, r);
  return r;
}

function count(idx: GraphIndex, value: string, axis: number, rank: number | undefined, memo: Map<string, number | undefined>, depth: number): number | undefined {
  if (depth > MAX_DEPTH) return undefined;
  const dims = declaredDims(idx, value);
  if (dims && dims.length + axis >= 0) {
    const d = dims[dims.length + axis];
    if (d !== undefined) return d;
  }
  const prod = idx.producer.get(value);
  if (!prod || prod.output !== 0 || !isDefaultDomain(prod.node.domain)) return undefined;
  const n = prod.node;
  const rec = (v: string): number | undefined => channelCount(idx, v, axis, rank, memo, depth + 1);
  const param = (v: string): number[] | undefined => {
    try { return resolveParam(idx, v)?.shape; } catch { return undefined; }
  };
  switch (n.opType) {
    case 'Conv': {
      const w = param(n.input[1] ?? '');
      // The channel axis of a Conv output is 1, i.e. 1 - rank from the end.
      return w && w.length >= 3 && axis === 1 - w.length ? w[0] : undefined;
    }
    case 'Gemm': {
      const b = param(n.input[1] ?? '');
      return b && b.length === 2 && axis === -1 ? b[intAttr(n, 'transB', 0) ? 0 : 1] : undefined;
    }
    case 'MatMul': {
      const b = param(n.input[1] ?? '');
      return b && b.length === 2 && axis === -1 ? b[1] : undefined;
    }
    case 'Concat': {
      const raw = intAttr(n, 'axis', 0);
      // A positive axis needs the rank to compare with ours; without it, adding could mis-count.
      const a = raw < 0 ? raw : rank !== undefined ? raw - rank : undefined;
      if (a === undefined) return undefined;
      if (a !== axis) return rec(n.input[0] ?? '');
      let sum = 0;
      for (const v of n.input) {
        const c = rec(v);
        if (c === undefined) return undefined;
        sum += c;
      }
      return sum;
    }
    default:
      if (SAME_SHAPE.has(n.opType) || POOLS.has(n.opType)) return rec(n.input[0] ?? '');
      if (ELEMENTWISE.has(n.opType)) {
        for (const v of n.input) {
          const p = param(v);
          if (p) {
            const d = p.length + axis >= 0 ? p[p.length + axis] : undefined;
            if (d !== undefined && d !== 1) return d;
            continue;
          }
          const c = rec(v);
          if (c !== undefined && c !== 1) return c;
        }
      }
      return undefined;
  }
}

/** Rank of `value` (memo: one map for ranks only) from declarations or the op that made it (Gemm 2, Conv its weight's, MatMul its inputs'), or undefined. */
export function rankOf(idx: GraphIndex, value: string, memo: Map<string, number | undefined>, depth = 0): number | undefined {
  const key = value; // callers keep a memo for ranks only
  if (memo.has(key)) return memo.get(key);
  memo.set(key, undefined);
  let r: number | undefined;
  const dims = declaredDims(idx, value);
  if (dims) r = dims.length;
  else if (depth <= MAX_DEPTH) {
    const prod = idx.producer.get(value);
    const n = prod && prod.output === 0 && isDefaultDomain(prod.node.domain) ? prod.node : undefined;
    const param = (v: string): number[] | undefined => {
      try { return resolveParam(idx, v)?.shape; } catch { return undefined; }
    };
    const rec = (v: string): number | undefined => param(v)?.length ?? rankOf(idx, v, memo, depth + 1);
    if (!n) r = param(value)?.length;
    else if (n.opType === 'Gemm') r = 2;
    else if (n.opType === 'Conv') r = param(n.input[1] ?? '')?.length;
    else if (n.opType === 'MatMul') {
      const a = rec(n.input[0] ?? '');
      const b = rec(n.input[1] ?? '');
      // 1-D operands lose their axis; only the plain case (both ≥ 2-D) is inferred.
      r = a !== undefined && b !== undefined && a >= 2 && b >= 2 ? Math.max(a, b) : undefined;
    } else if (SAME_SHAPE.has(n.opType) || POOLS.has(n.opType) || n.opType === 'Concat') r = rec(n.input[0] ?? '');
    else if (ELEMENTWISE.has(n.opType)) {
      const ranks = n.input.map(rec);
      r = ranks.every((x) => x !== undefined) ? Math.max(...(ranks as number[])) : undefined;
    }
  }
  memo.set(key, r);
  return r;
}
