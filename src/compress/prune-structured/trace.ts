/**
 * Dependency analysis: from the outputs of a group of producer layers (Conv group=1, Gemm, MatMul
 * with a constant weight) follow their channels forward and list every parameter slice that removing
 * a channel implies ("slots"), or refuse the group with the first reason it cannot be followed.
 *
 * A flow is a value whose channel axis holds the group's channels at [offset, offset + C) of `total`.
 * Channel-keeping ops pass flows on; consumers (Conv, Gemm, MatMul, after Flatten too) end them by
 * slicing their input axis; Concat shifts the offset. An element-wise op between two computed values
 * is a join: both sides must carry exactly the group's channels, so residual branches form one group.
 * Nothing here mutates the model.
 */
import type { NodeProto } from 'onnx-buf';
import { isModelsmithError } from '../../core/errors.js';
import { isDefaultDomain } from '../quantize/registry.js';
import { channelCount, ELEMENTWISE, POOLS, rankOf } from './channels.js';
import { intAttr, type GraphIndex } from './graph-index.js';
import { resolveParam, unsliceable, type Param } from './params.js';

/** Diagnostic codes of refusals (stable: scripts match on them). */
export const RefusalCodes = {
  GRAPH_OUTPUT: 'prune.graph_output',
  SUBGRAPH: 'prune.subgraph',
  UNSUPPORTED_OP: 'prune.unsupported_op',
  LAYOUT: 'prune.layout',
  SHAPE: 'prune.shape',
  RESIDUAL: 'prune.residual',
  GROUP_MISMATCH: 'prune.group_mismatch',
  SHARED: 'prune.shared',
  PARAM: 'prune.param',
  UNKNOWN_CHANNELS: 'prune.unknown_channels',
  LIMIT: 'prune.limit',
  BAD_TENSOR: 'prune.bad_tensor',
  EXCLUDED: 'prune.excluded',
  GROUPED_CONV: 'prune.grouped_conv',
  TOO_FEW: 'prune.too_few',
} as const;

/** Channel-keeping ops with one data input (input 0); their other inputs, if any, are scalars. */
const PASS = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Clip', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign',
  'ThresholdedRelu', 'Gelu', 'Mish', 'Abs', 'Neg', 'Identity', 'Dropout',
]);

/**
 * Bound on node visits over the whole analysis (every layer is traced alone, then per group, so a
 * hostile graph could make it quadratic). Real CNNs use a tiny part of it (DenseNet-121: ~4k).
 */
export const MAX_VISITS = 1_000_000;

/** Node visits left for the analysis of one model. */
export interface Budget {
  left: number;
}
/** Channel counts above this are not believed (they size per-channel arrays). */
export const MAX_CHANNELS = 1 << 20;

export interface Producer {
  node: NodeProto;
  index: number;
  label: string;
  op: 'Conv' | 'Gemm' | 'MatMul';
  weight: Param;
  /** The output-channel axis of the weight. */
  wAxis: number;
  channels: number;
  /** Channel axis of the output, counted from the end, and its rank when known. */
  outAxis: number;
  outRank?: number;
}

/** A parameter slice implied by removing channels: along `axis` of `param`, channel p owns indices [(offset+p)*block, +block). */
export interface Slot {
  param: Param;
  axis: number;
  offset: number;
  block: number;
}

export interface Refusal {
  code: string;
  message: string;
  /** Node (name or op#index) where the dependency could not be followed. */
  node: string;
}

export interface GroupPlan {
  slots: Slot[];
  /** Depthwise Convs on the path: their `group` follows their weight's new length. */
  depthwise: NodeProto[];
  /** Values whose channel count changes (their value_info goes stale). */
  changed: Set<string>;
}

export type TraceResult = { ok: true; plan: GroupPlan; joins: number[] } | { ok: false; refusal: Refusal; joins: number[] };

class Refuse extends Error {
  constructor(readonly r: Refusal) { super(r.message); }
}

interface Flow {
  value: string;
  offset: number;
  total: number;
  /** Channel axis counted from the end (−1 = last). */
  axis: number;
  rank?: number;
  /** After Flatten: each channel is a block of rows of the next MatMul/Gemm weight. */
  flat: boolean;
}

/** Producer candidates of the main graph, and the layers that cannot be producers with the reason. */
export function findProducers(idx: GraphIndex): { producers: Producer[]; skipped: { index: number; label: string; op: string; code: string; reason: string }[] } {
  const producers: Producer[] = [];
  const rankMemo = new Map<string, number | undefined>();
  const skipped: { index: number; label: string; op: string; code: string; reason: string }[] = [];
  idx.graph.node.forEach((node, index) => {
    if (!isDefaultDomain(node.domain) || !['Conv', 'Gemm', 'MatMul'].includes(node.opType)) return;
    const op = node.opType as Producer['op'];
    const label = idx.label(index);
    const skip = (code: string, reason: string): void => { skipped.push({ index, label, op, code, reason }); };
    let w: Param | undefined;
    try {
      w = resolveParam(idx, node.input[1] ?? '');
    } catch (e) {
      if (!isModelsmithError(e)) throw e;
      skip(RefusalCodes.BAD_TENSOR, e.message);
      return;
    }
    if (!w) {
      // MatMul between two computed values is attention, not a layer: nothing to say about it.
      if (op !== 'MatMul') skip(RefusalCodes.PARAM, `weight '${node.input[1] ?? ''}' is not a constant`);
      return;
    }
    if (!node.output[0]) return;
    const r = w.shape.length;
    if (op === 'Conv') {
      const g = intAttr(node, 'group', 1);
      if (g !== 1) { skip(RefusalCodes.GROUPED_CONV, `group=${g}: a grouped/depthwise Conv is pruned with the layer that feeds it, not on its own`); return; }
      if (r < 3) { skip(RefusalCodes.SHAPE, `weight has rank ${r}`); return; }
      producers.push({ node, index, label, op, weight: w, wAxis: 0, channels: w.shape[0]!, outAxis: 1 - r, outRank: r });
    } else if (op === 'Gemm') {
      if (r !== 2) { skip(RefusalCodes.SHAPE, `weight has rank ${r}`); return; }
      const wAxis = intAttr(node, 'transB', 0) ? 0 : 1;
      producers.push({ node, index, label, op, weight: w, wAxis, channels: w.shape[wAxis]!, outAxis: -1, outRank: 2 });
    } else {
      if (r !== 2) { skip(RefusalCodes.SHAPE, `weight has rank ${r} (only 2-D MatMul weights are pruned)`); return; }
      const p: Producer = { node, index, label, op, weight: w, wAxis: 1, channels: w.shape[1]!, outAxis: -1 };
      const outRank = rankOf(idx, node.output[0], rankMemo);
      if (outRank !== undefined) p.outRank = outRank;
      producers.push(p);
    }
  });
  return { producers, skipped };
}

/**
 * Follow the channels of `group` (producers that must drop the same channels) through the graph.
 * `joins` lists the element-wise nodes where a flow met another computed value, also on refusal:
 * the caller unites producers meeting at the same join.
 */
export function traceGroup(idx: GraphIndex, group: Producer[], memo: Map<string, number | undefined>, budget: Budget): TraceResult {
  const joins: number[] = [];
  const slots: Slot[] = [];
  const depthwise: NodeProto[] = [];
  const changed = new Set<string>();
  const visited = new Set<string>();
  const joinReqs: { index: number; value: string }[] = [];
  const C = group[0]!.channels;
  const work: Flow[] = [];
  const at = (n: { index: number }): string => idx.label(n.index);

  const refuse = (code: string, node: string, message: string): never => { throw new Refuse({ code, node, message }); };

  const addSlot = (p: Param, axis: number, offset: number, block: number, where: string): void => {
    for (const v of p.chain) {
      if ((idx.reads.get(v) ?? 0) > 1) refuse(RefusalCodes.SHARED, where, `'${v}' is read by ${idx.reads.get(v)} nodes/outputs; slicing it for one would change the others`);
    }
    const why = unsliceable(p, idx.path);
    if (why) refuse(RefusalCodes.PARAM, where, why);
    slots.push({ param: p, axis, offset, block });
    for (const v of p.chain) changed.add(v);
  };

  /** A constant operand broadcast against a flow: slice it when it has the flow's channels. */
  const broadcastParam = (p: Param, f: Flow, where: string): void => {
    const pa = p.shape.length + f.axis;
    if (pa < 0) return;
    const d = p.shape[pa]!;
    if (d === 1) return;
    if (f.flat) refuse(RefusalCodes.LAYOUT, where, `constant '${p.name}' varies along a flattened channel axis`);
    if (d !== f.total) refuse(RefusalCodes.SHAPE, where, `constant '${p.name}' has ${d} entries along the channel axis, expected ${f.total}`);
    addSlot(p, pa, f.offset, 1, where);
  };

  const needParam = (name: string, where: string): Param => {
    const p = resolveParam(idx, name);
    if (!p) return refuse(RefusalCodes.PARAM, where, `input '${name}' is not a constant`);
    return p;
  };

  /** Outputs beyond `from` must be unused (Dropout mask, MaxPool indices, BatchNorm training stats). */
  const noExtraOutputs = (n: NodeProto, from: number, where: string): void => {
    for (let i = from; i < n.output.length; i++) {
      const o = n.output[i]!;
      if (o && ((idx.reads.get(o) ?? 0) > 0)) refuse(RefusalCodes.UNSUPPORTED_OP, where, `${n.opType} output ${i} ('${o}') is used`);
    }
  };

  const channelAxisIs1 = (f: Flow, where: string, op: string): number => {
    if (f.flat || f.rank === undefined || f.axis !== 1 - f.rank) {
      refuse(RefusalCodes.LAYOUT, where, `${op} needs the channels on axis 1 of a tensor of known rank`);
    }
    return f.rank!;
  };

  const step = (f: Flow): void => {
    const producer = idx.producer.get(f.value);
    const from = producer ? idx.label(producer.index) : f.value;
    if (idx.graphOutputs.has(f.value)) refuse(RefusalCodes.GRAPH_OUTPUT, from, `'${f.value}' is a graph output: its channel count is part of the model's interface`);
    if (idx.subgraphReads.has(f.value)) refuse(RefusalCodes.SUBGRAPH, from, `'${f.value}' is read inside a subgraph (If/Loop/Scan body)`);
    for (const c of idx.consumers.get(f.value) ?? []) {
      budget.left -= 1 + c.node.input.length; // Concat/Sum loop over their inputs
      if (budget.left < 0) refuse(RefusalCodes.LIMIT, group[0]!.label, `the dependency analysis exceeded ${MAX_VISITS} node visits for this model`);
      const n = c.node;
      const where = at(c);
      const op = n.opType;
      const out0 = n.output[0] ?? '';
      if (!isDefaultDomain(n.domain)) refuse(RefusalCodes.UNSUPPORTED_OP, where, `${n.domain}::${op} reads '${f.value}'; pruning cannot follow channels through it`);
      const next = (g: Partial<Flow>): void => {
        if (!out0) return;
        work.push({ ...f, ...g, value: out0 });
      };
      if (PASS.has(op)) {
        if (c.input !== 0) refuse(RefusalCodes.UNSUPPORTED_OP, where, `'${f.value}' is input ${c.input} of ${op}`);
        noExtraOutputs(n, 1, where);
        next({});
      } else if (POOLS.has(op)) {
        channelAxisIs1(f, where, op);
        noExtraOutputs(n, 1, where);
        next({});
      } else if (op === 'BatchNormalization' || op === 'InstanceNormalization') {
        if (c.input !== 0) refuse(RefusalCodes.UNSUPPORTED_OP, where, `'${f.value}' is input ${c.input} of ${op}`);
        channelAxisIs1(f, where, op);
        const last = op === 'BatchNormalization' ? 4 : 2;
        for (let i = 1; i <= last; i++) {
          const p = needParam(n.input[i] ?? '', where);
          if (p.shape.length !== 1 || p.shape[0] !== f.total) refuse(RefusalCodes.SHAPE, where, `'${p.name}' has shape [${p.shape.join(',')}], expected [${f.total}]`);
          addSlot(p, 0, f.offset, 1, where);
        }
        noExtraOutputs(n, 1, where);
        next({});
      } else if (ELEMENTWISE.has(op) || op === 'PRelu') {
        if (op === 'PRelu' && c.input !== 0) refuse(RefusalCodes.UNSUPPORTED_OP, where, `'${f.value}' is the slope of ${op}`);
        let rank = f.rank;
        for (let j = 0; j < n.input.length; j++) {
          const v = n.input[j]!;
          if (j === c.input || !v || v === f.value) continue;
          const p = resolveParam(idx, v);
          if (p) {
            broadcastParam(p, f, where);
            if (rank !== undefined) rank = Math.max(rank, p.shape.length);
            continue;
          }
          // Two computed values meet: both must carry exactly this group's channels.
          joins.push(c.index);
          if (f.flat || f.offset !== 0 || f.total !== C) {
            refuse(RefusalCodes.RESIDUAL, where, `${op} joins '${f.value}', which holds other layers' channels too (through a Concat)`);
          }
          joinReqs.push({ index: c.index, value: v });
        }
        next(rank === undefined ? {} : { rank });
      } else if (op === 'Concat') {
        const raw = intAttr(n, 'axis', 0);
        const axis = raw < 0 ? raw : f.rank !== undefined ? raw - f.rank : undefined;
        if (f.flat || axis === undefined || axis !== f.axis) refuse(RefusalCodes.LAYOUT, where, `Concat axis ${raw} is not the channel axis of '${f.value}'`);
        let before = 0;
        let total = 0;
        for (let j = 0; j < n.input.length; j++) {
          const v = n.input[j]!;
          const k = v === f.value ? f.total : channelCount(idx, v, f.axis, f.rank, memo);
          if (k === undefined) return refuse(RefusalCodes.UNKNOWN_CHANNELS, where, `channel count of Concat input '${v}' is unknown`);
          if (j < c.input) before += k;
          total += k;
        }
        if (total > MAX_CHANNELS) refuse(RefusalCodes.LIMIT, where, `Concat output has ${total} channels`);
        next({ offset: f.offset + before, total });
      } else if (op === 'Conv' || op === 'ConvTranspose') {
        if (c.input !== 0) refuse(RefusalCodes.UNSUPPORTED_OP, where, `'${f.value}' is input ${c.input} of ${op}`);
        const rank = channelAxisIs1(f, where, op);
        const w = needParam(n.input[1] ?? '', where);
        const g = intAttr(n, 'group', 1);
        if (w.shape.length !== rank) refuse(RefusalCodes.SHAPE, where, `weight '${w.name}' has rank ${w.shape.length}, input has rank ${rank}`);
        if (op === 'ConvTranspose') {
          if (g !== 1) refuse(RefusalCodes.GROUPED_CONV, where, `ConvTranspose with group=${g}`);
          if (w.shape[0] !== f.total) refuse(RefusalCodes.SHAPE, where, `weight '${w.name}' has ${w.shape[0]} input channels, expected ${f.total}`);
          addSlot(w, 0, f.offset, 1, where);
        } else if (g === 1) {
          if (w.shape[1] !== f.total) refuse(RefusalCodes.SHAPE, where, `weight '${w.name}' has ${w.shape[1]} input channels, expected ${f.total}`);
          addSlot(w, 1, f.offset, 1, where);
        } else if (g === f.total && w.shape[0] === f.total && w.shape[1] === 1) {
          // Depthwise (one filter per channel): its output channels are its input channels.
          addSlot(w, 0, f.offset, 1, where);
          const b = n.input[2];
          if (b) {
            const p = needParam(b, where);
            if (p.shape.length !== 1 || p.shape[0] !== f.total) refuse(RefusalCodes.SHAPE, where, `bias '${b}' has shape [${p.shape.join(',')}]`);
            addSlot(p, 0, f.offset, 1, where);
          }
          if (!depthwise.includes(n)) depthwise.push(n);
          next({});
        } else {
          refuse(RefusalCodes.GROUPED_CONV, where, `grouped Conv (group=${g}, weight [${w.shape.join(',')}]) mixes channel groups`);
        }
      } else if (op === 'Gemm' || op === 'MatMul') {
        if (c.input !== 0) refuse(RefusalCodes.UNSUPPORTED_OP, where, `'${f.value}' is input ${c.input} of ${op}`);
        if (op === 'Gemm' && intAttr(n, 'transA', 0)) refuse(RefusalCodes.LAYOUT, where, 'Gemm with transA=1 reads channels as rows');
        if (f.axis !== -1 || (op === 'Gemm' && !f.flat && f.rank !== 2)) refuse(RefusalCodes.LAYOUT, where, `${op} needs the channels on the last axis of '${f.value}'`);
        const b = needParam(n.input[1] ?? '', where);
        if (b.shape.length !== 2) refuse(RefusalCodes.SHAPE, where, `weight '${b.name}' has rank ${b.shape.length}`);
        const axis = op === 'Gemm' && intAttr(n, 'transB', 0) ? 1 : 0;
        const k = b.shape[axis]!;
        let block = 1;
        if (f.flat) {
          // Flatten of [N, C, H, W]: channel c owns rows c*H*W .. (c+1)*H*W - 1.
          block = k / f.total;
          if (!Number.isInteger(block) || block < 1) refuse(RefusalCodes.SHAPE, where, `weight '${b.name}' has ${k} input rows, not a multiple of ${f.total} channels`);
        } else if (k !== f.total) refuse(RefusalCodes.SHAPE, where, `weight '${b.name}' has ${k} input rows, expected ${f.total}`);
        addSlot(b, axis, f.offset, block, where);
      } else if (op === 'Flatten') {
        const rank = channelAxisIs1(f, where, op);
        const raw = intAttr(n, 'axis', 1);
        if ((raw < 0 ? raw + rank : raw) !== 1) refuse(RefusalCodes.LAYOUT, where, `Flatten axis ${raw} does not keep the batch axis alone`);
        next({ axis: -1, rank: 2, flat: true });
      } else {
        refuse(RefusalCodes.UNSUPPORTED_OP, where, `${op} reads '${f.value}'; pruning cannot follow channels through it`);
      }
    }
  };

  try {
    for (const p of group) {
      const where = p.label;
      if (p.channels !== C) refuse(RefusalCodes.GROUP_MISMATCH, where, `joined layers have ${C} and ${p.channels} output channels`);
      if (C > MAX_CHANNELS) refuse(RefusalCodes.LIMIT, where, `${C} output channels`);
      addSlot(p.weight, p.wAxis, 0, 1, where);
      const bias = p.node.input[2];
      if (bias) {
        const b = needParam(bias, where);
        if (p.op === 'Conv') {
          if (b.shape.length !== 1 || b.shape[0] !== C) refuse(RefusalCodes.SHAPE, where, `bias '${bias}' has shape [${b.shape.join(',')}]`);
          addSlot(b, 0, 0, 1, where);
        } else {
          broadcastParam(b, { value: p.node.output[0]!, offset: 0, total: C, axis: -1, rank: 2, flat: false }, where);
        }
      }
      const f: Flow = { value: p.node.output[0]!, offset: 0, total: C, axis: p.outAxis, flat: false };
      if (p.outRank !== undefined) f.rank = p.outRank;
      work.push(f);
    }
    while (work.length > 0) {
      const f = work.pop()!;
      const key = `${f.value}@${f.offset}`;
      if (visited.has(key)) continue;
      visited.add(key);
      changed.add(f.value);
      step(f);
    }
    for (const j of joinReqs) {
      if (!visited.has(`${j.value}@0`)) {
        refuse(RefusalCodes.RESIDUAL, idx.label(j.index), `input '${j.value}' of ${idx.graph.node[j.index]!.opType} does not come from a layer pruned together with this one (residual branches must drop the same channels)`);
      }
    }
    return { ok: true, plan: { slots, depthwise, changed }, joins };
  } catch (e) {
    if (e instanceof Refuse) return { ok: false, refusal: e.r, joins };
    if (isModelsmithError(e)) return { ok: false, refusal: { code: RefusalCodes.BAD_TENSOR, node: group[0]!.label, message: e.message }, joins };
    throw e;
  }
}
