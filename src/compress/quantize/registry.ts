/**
 * Which inputs of which ops are weights, and along which axis their output channels lie. The
 * weight-only quantizer (weight.ts) asks this table; a new op is one entry here.
 *
 * Only ops of the default ONNX domain ('' / 'ai.onnx') are registered.
 */
import type { NodeProto } from 'onnx-buf';

export interface WeightSlot {
  /** Index of the weight among the node's inputs. */
  input: number;
  /** Output-channel axis of the weight for per-channel quantization, given its rank. */
  axis(rank: number): number;
}

export interface OpWeightHandler {
  opType: string;
  /** The weight input of this node, or undefined when the node has none we can quantize. */
  slot(node: NodeProto): WeightSlot | undefined;
}

function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : fallback;
}

const fixed = (opType: string, input: number, axis: (rank: number) => number): OpWeightHandler => ({
  opType,
  slot: () => ({ input, axis }),
});

/** op type → handler. */
export const WEIGHT_OPS: ReadonlyMap<string, OpWeightHandler> = new Map<string, OpWeightHandler>([
  // B is [..., K, N]: one output channel per column.
  ['MatMul', fixed('MatMul', 1, (rank) => rank - 1)],
  // B is [K, N], or [N, K] with transB = 1.
  ['Gemm', { opType: 'Gemm', slot: (node) => { const t = intAttr(node, 'transB', 0); return { input: 1, axis: () => (t ? 0 : 1) }; } }],
  // W is [M, C/group, k...].
  ['Conv', fixed('Conv', 1, () => 0)],
  // W is [C, M/group, k...].
  ['ConvTranspose', fixed('ConvTranspose', 1, () => 1)],
  // Embedding tables [vocab, dim]: one scale per row (the gathered axis, usually 0).
  ['Gather', { opType: 'Gather', slot: (node) => { const a = intAttr(node, 'axis', 0); return { input: 0, axis: (rank) => (a < 0 ? a + rank : a) }; } }],
]);

export function isDefaultDomain(domain: string): boolean {
  return domain === '' || domain === 'ai.onnx';
}

/** The weight slot of a node, if its op is registered. */
export function weightSlot(node: NodeProto): WeightSlot | undefined {
  if (!isDefaultDomain(node.domain)) return undefined;
  return WEIGHT_OPS.get(node.opType)?.slot(node);
}
