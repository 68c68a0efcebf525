/**
 * Which parameters gradient pruning may zero: the weight of every Conv (input W) and the B operand of
 * Gemm/MatMul when it is a trainable parameter. Biases, norms and activations' constants stay dense:
 * they are few and pruning them changes every output of a channel, not one connection.
 */
import type { ModelProto } from 'onnx-buf';
import type { FValue } from '../../engine/types.js';

export interface PrunableWeight {
  name: string;
  op: 'Conv' | 'Gemm' | 'MatMul';
  /** Node name (or op#index when unnamed). */
  node: string;
  shape: number[];
}

export function prunableWeights(model: ModelProto, params: ReadonlyMap<string, FValue>, exclude: readonly string[] = []): PrunableWeight[] {
  const skip = new Set(exclude);
  const seen = new Set<string>();
  const out: PrunableWeight[] = [];
  const nodes = model.graph?.node ?? [];
  nodes.forEach((n, i) => {
    if (n.domain !== '' && n.domain !== 'ai.onnx') return;
    if (n.opType !== 'Conv' && n.opType !== 'Gemm' && n.opType !== 'MatMul') return;
    const w = n.input[1];
    const node = n.name || `${n.opType}#${i}`;
    if (!w || seen.has(w) || skip.has(w) || skip.has(node) || skip.has(n.opType)) return;
    const p = params.get(w);
    if (!p || p.data.length === 0) return;
    seen.add(w);
    out.push({ name: w, op: n.opType, node, shape: [...p.dims] });
  });
  return out;
}
