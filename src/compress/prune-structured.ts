/**
 * Structured channel pruning: output channels of Conv (group=1), Gemm and MatMul layers are removed
 * physically — the weight, the bias and every parameter downstream that is indexed by those channels
 * (BatchNormalization, per-channel constants of Add/Mul/…, depthwise Convs, the input channels / rows
 * of the next Conv, Gemm or MatMul, also after Flatten and inside a Concat) — so the file and the
 * compute shrink. Layers whose channels cannot be followed are left alone with a diagnostic.
 *
 * Ranking: channels are ranked by the L1 norm of their filter (sum of |w| over the weight slice of
 * the channel). L1 rather than L2 because it is the usual criterion for filter pruning (Li et al.,
 * "Pruning Filters for Efficient ConvNets") and is less dominated by a few large weights. Layers
 * joined by a residual Add/Sum (or any element-wise op between two computed values) must drop the
 * same channels: they form one group ranked by the sum of their members' norms. Ties drop the higher
 * channel index. Per group, round(ratio × C) channels go, at most C − 1.
 *
 * Only the main graph is analysed; the model is edited in place only for the accepted groups, all at
 * the end (a refused group leaves nothing behind). Weights in external data are not read here: such
 * layers are refused (load the data into the model first).
 */
import type { ModelProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../core/errors.js';
import { isModelsmithError } from '../core/errors.js';
import { onnxModel, type OnnxModel } from '../formats/onnx/read.js';
import { applyPlans, type SlicedTensor } from './prune-structured/apply.js';
import { buildIndex } from './prune-structured/graph-index.js';
import { channelL1 } from './prune-structured/params.js';
import { findProducers, MAX_VISITS, RefusalCodes, traceGroup, type GroupPlan, type Producer } from './prune-structured/trace.js';
import { sizeReport, tensorBytes, type SizeReport } from './report.js';
import type { PruneWeightsOptions } from './prune.js';

export { RefusalCodes } from './prune-structured/trace.js';
export type { SlicedTensor } from './prune-structured/apply.js';

export interface PruneChannelsOptions {
  /** Fraction of output channels removed per prunable layer (group), 0..1; at least one channel always stays. */
  ratio: number;
  /** Leave layers alone by weight name, node name, or op type (Conv, Gemm, MatMul). */
  exclude?: PruneWeightsOptions['exclude'];
}

export interface PrunedLayer {
  /** Node name (or op#index). */
  name: string;
  op: 'Conv' | 'Gemm' | 'MatMul';
  weight: string;
  /** Layers with the same group number dropped the same channels (residual joins). */
  group: number;
  channelsBefore: number;
  channelsAfter: number;
  /** Removed output channels (original indices, ascending). */
  removed: number[];
}

export interface SkippedLayer {
  name: string;
  op: string;
  code: string;
  reason: string;
}

export interface PruneChannelsReport {
  options: { ratio: number; criterion: 'l1' };
  layers: PrunedLayer[];
  skipped: SkippedLayer[];
  /** Every tensor whose shape changed, with the fraction of its elements removed. */
  tensors: SlicedTensor[];
  totals: { layers: number; skipped: number; channelsBefore: number; channelsAfter: number };
  /** Tensor payload bytes of the model before and after. */
  size: SizeReport;
}

/** Union-find over producer positions. */
function unionFind(n: number): { find(i: number): number; union(a: number, b: number): void } {
  const parent = Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) { parent[i] = parent[parent[i]!]!; i = parent[i]!; }
    return i;
  };
  return { find, union: (a, b) => { const ra = find(a); const rb = find(b); if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb); } };
}

/** Indices of the k lowest scores (NaN ranks highest; ties drop the higher index), ascending. */
function lowest(scores: Float64Array, k: number): number[] {
  const order = Array.from(scores.keys());
  const key = (i: number): number => (Number.isNaN(scores[i]!) ? Infinity : scores[i]!);
  order.sort((a, b) => key(a) - key(b) || b - a);
  return order.slice(0, k).sort((a, b) => a - b);
}

function checkOptions(opts: PruneChannelsOptions): number {
  const r = opts?.ratio;
  if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r > 1) {
    throw new ModelsmithError(ErrorCodes.USAGE, `channel pruning ratio must be a number in [0, 1], got ${String(r)}`);
  }
  return r;
}

/**
 * Remove round(ratio × C) output channels of every prunable layer of `model` (edited in place).
 * Layers that cannot be pruned are in `report.skipped` and in `diagnostics` (code + node name).
 */
export function pruneChannels(model: ModelProto | OnnxModel, opts: PruneChannelsOptions): { report: PruneChannelsReport; diagnostics: Diagnostic[] } {
  const ratio = checkOptions(opts);
  const om = 'proto' in model ? model : onnxModel(model);
  const path = om.path;
  const graph = om.proto.graph;
  if (!graph) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the model has no graph to prune', { format: 'onnx', path });
  const before = tensorBytes(om);
  const idx = buildIndex(om.proto, graph, path);
  const diagnostics: Diagnostic[] = [];
  const skipped: SkippedLayer[] = [];
  const skip = (name: string, op: string, code: string, reason: string, level: Diagnostic['level'], weight: string): void => {
    skipped.push({ name, op, code, reason });
    const d: Diagnostic = { level, code, message: `${op} '${name}' not pruned: ${reason}`, op: name };
    if (weight) d.tensor = weight;
    diagnostics.push(d);
  };

  const found = findProducers(idx);
  for (const s of found.skipped) skip(s.label, s.op, s.code, s.reason, s.code === RefusalCodes.GROUPED_CONV ? 'info' : 'warning', graph.node[s.index]?.input[1] ?? '');
  const producers = found.producers;

  // Phase 1: each layer alone, to learn which layers meet at residual joins.
  const memo = new Map<string, number | undefined>();
  const budget = { left: MAX_VISITS };
  const uf = unionFind(producers.length);
  const byJoin = new Map<number, number>();
  producers.forEach((p, i) => {
    for (const j of traceGroup(idx, [p], memo, budget).joins) {
      const other = byJoin.get(j);
      if (other === undefined) byJoin.set(j, i);
      else uf.union(other, i);
    }
  });
  const groups = new Map<number, Producer[]>();
  producers.forEach((p, i) => {
    const r = uf.find(i);
    let g = groups.get(r);
    if (!g) groups.set(r, (g = []));
    g.push(p);
  });

  // Phase 2: each group as a whole; the rank decides which channels go.
  const exNames = new Set(opts.exclude?.names ?? []);
  const exOps = new Set(opts.exclude?.opTypes ?? []);
  const accepted: { plan: GroupPlan; removed: number[] }[] = [];
  const layers: PrunedLayer[] = [];
  const order = new Map<PrunedLayer, number>();
  let groupNo = 0;
  for (const members of groups.values()) {
    const names = members.map((m) => m.label).join(', ');
    const refuseAll = (code: string, reason: string, level: Diagnostic['level'] = 'warning'): void => {
      for (const m of members) skip(m.label, m.op, code, members.length > 1 ? `${reason} (joined with ${names})` : reason, level, m.node.input[1] ?? '');
    };
    const excluded = members.find((m) => exOps.has(m.op) || exNames.has(m.label) || exNames.has(m.node.input[1] ?? ''));
    if (excluded) { refuseAll(RefusalCodes.EXCLUDED, members.length > 1 ? `excluded (via ${excluded.label})` : 'excluded', 'info'); continue; }
    const t = traceGroup(idx, members, memo, budget);
    if (!t.ok) { refuseAll(t.refusal.code, `${t.refusal.message} [at ${t.refusal.node}]`); continue; }
    const C = members[0]!.channels;
    const k = Math.min(C - 1, Math.round(ratio * C));
    if (k <= 0) { refuseAll(RefusalCodes.TOO_FEW, `${C} channel(s): ratio ${ratio} removes none`, 'info'); continue; }
    let removed: number[];
    try {
      const scores = new Float64Array(C);
      for (const m of members) {
        const l1 = channelL1(m.weight, m.wAxis, path);
        for (let c = 0; c < C; c++) scores[c]! += l1[c]!;
      }
      removed = lowest(scores, k);
    } catch (e) {
      if (!isModelsmithError(e)) throw e;
      refuseAll(RefusalCodes.BAD_TENSOR, e.message);
      continue;
    }
    accepted.push({ plan: t.plan, removed });
    for (const m of members) {
      const l: PrunedLayer = { name: m.label, op: m.op, weight: m.node.input[1] ?? '', group: groupNo, channelsBefore: C, channelsAfter: C - k, removed };
      order.set(l, m.index);
      layers.push(l);
    }
    groupNo++;
  }

  const tensors = applyPlans(idx, accepted);
  layers.sort((a, b) => order.get(a)! - order.get(b)!);
  return {
    report: {
      options: { ratio, criterion: 'l1' },
      layers,
      skipped,
      tensors,
      totals: {
        layers: layers.length,
        skipped: skipped.length,
        channelsBefore: layers.reduce((a, l) => a + l.channelsBefore, 0),
        channelsAfter: layers.reduce((a, l) => a + l.channelsAfter, 0),
      },
      size: sizeReport(before, tensorBytes(om)),
    },
    diagnostics,
  };
}
