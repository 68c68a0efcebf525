/**
 * Which activations static quantization puts QuantizeLinear → DequantizeLinear pairs on, following
 * the patterns onnxruntime's QDQ optimiser fuses into integer kernels:
 *
 * - The activation inputs of Conv / MatMul / Gemm (DQ → op), and their output (op → Q) — or, when
 *   the output's only reader is a Relu, the Relu's output instead: ORT drops a Relu followed by a Q
 *   whose zero point is the type minimum, which a calibrated Relu range [0, max] gives.
 * - Ops that only move or select values (MaxPool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
 *   Identity) pass their input's quantization through to their output with the same scale and zero
 *   point, so ORT can run them on the 8-bit data (DQ → op → Q with equal parameters).
 * Only the main graph is planned; If/Loop bodies stay float.
 */
import type { ModelProto, NodeProto } from 'onnx-buf';
import { isDefaultDomain, weightSlot } from '../quantize/registry.js';

/** Ops whose float inputs/outputs are quantized (each also has a constant weight input in the registry). */
export const COMPUTE_OPS: ReadonlySet<string> = new Set(['Conv', 'MatMul', 'Gemm']);
/** Ops whose output keeps the input's scale and zero point (values are moved, never computed). */
export const PASSTHROUGH_OPS: ReadonlySet<string> = new Set(['MaxPool', 'Flatten', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity']);

export interface StaticPlan {
  /** Tensors that get their own calibrated range, in graph order. */
  calibrate: string[];
  /** Tensor → the calibrated tensor whose parameters it shares (passthrough outputs). */
  derived: Map<string, string>;
  /** The compute nodes quantized (their weight slots are quantized too). */
  nodes: NodeProto[];
}

export function planStatic(proto: ModelProto): StaticPlan {
  const g = proto.graph;
  const plan: StaticPlan = { calibrate: [], derived: new Map(), nodes: [] };
  if (!g) return plan;
  const consts = new Set(g.initializer.map((t) => t.name));
  for (const n of g.node) if (n.opType === 'Constant' && isDefaultDomain(n.domain)) n.output.forEach((o) => consts.add(o));
  const readers = new Map<string, NodeProto[]>();
  for (const n of g.node) for (const i of n.input) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);
  const graphOut = new Set(g.output.map((o) => o.name));
  const marked = new Set<string>();
  /** The one node reading `t`, when `t` is not also a graph output. */
  const soleReader = (t: string): NodeProto | undefined => {
    const rs = readers.get(t) ?? [];
    return rs.length === 1 && !graphOut.has(t) ? rs[0] : undefined;
  };
  const mark = (t: string): void => {
    if (!t || consts.has(t) || marked.has(t) || plan.derived.has(t)) return;
    marked.add(t);
    plan.calibrate.push(t);
  };
  for (const n of g.node) {
    if (!isDefaultDomain(n.domain)) continue;
    if (COMPUTE_OPS.has(n.opType)) {
      const slot = weightSlot(n);
      if (!slot || !consts.has(n.input[slot.input] ?? '')) continue;
      plan.nodes.push(n);
      // Activation inputs: everything before the bias that is not the constant weight.
      const dataInputs = n.opType === 'Gemm' || n.opType === 'Conv' ? n.input.slice(0, 2) : n.input;
      dataInputs.forEach((t, i) => { if (i !== slot.input) mark(t); });
      let out = n.output[0];
      if (!out) continue;
      // MatMul + bias Add: the sum is what is quantized (the bias then costs no extra rounding).
      const bias = soleReader(out);
      if (n.opType === 'MatMul' && bias?.opType === 'Add' && isDefaultDomain(bias.domain) && bias.input.some((x) => x !== out && consts.has(x)) && bias.output[0]) {
        out = bias.output[0];
      }
      const relu = soleReader(out);
      if (relu && relu.opType === 'Relu' && isDefaultDomain(relu.domain) && relu.output[0]) {
        if ((readers.get(relu.output[0]) ?? []).length) mark(relu.output[0]);
      } else if ((readers.get(out) ?? []).length) {
        mark(out);
      }
    } else if (PASSTHROUGH_OPS.has(n.opType)) {
      const src = n.input[0] ?? '';
      const out = n.output[0];
      if (!out || !(marked.has(src) || plan.derived.has(src)) || !(readers.get(out) ?? []).length) continue;
      plan.derived.set(out, plan.derived.get(src) ?? src);
    }
  }
  return plan;
}
