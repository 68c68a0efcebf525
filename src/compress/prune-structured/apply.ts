/**
 * Rewriting: the slots of every accepted group, with the channels each group drops, become index
 * sets per parameter root and axis, and each root is edited once (several groups can cut the same
 * weight: its input channels for one, its output channels for another). Then the bookkeeping that
 * keeps onnx.checker and onnxruntime happy: depthwise `group` attributes, dims of initializers that
 * are also declared graph inputs (IR < 4 habit), and value_info of values whose shape changed.
 */
import { create } from '@bufbuild/protobuf';
import { TensorShapeProto_DimensionSchema, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { dtypeInfo } from '../../core/dtype.js';
import { tensorDType, tensorFromProtoSync, tensorShape } from '../../formats/onnx/tensor.js';
import type { GraphIndex } from './graph-index.js';
import { resolveParam, sliceBytes, smallInt64s, type ParamRoot } from './params.js';
import type { GroupPlan } from './trace.js';

export interface SlicedTensor {
  /** Initializer / Constant output name, or the ConstantOfShape output for a filled weight. */
  name: string;
  kind: 'tensor' | 'fill';
  shapeBefore: number[];
  shapeAfter: number[];
  /** Elements removed / elements before. */
  sparsity: number;
}

interface RootEdit {
  root: ParamRoot;
  axes: Map<number, Set<number>>;
}

function setRawInt64(tp: TensorProto, values: bigint[]): void {
  const raw = new Uint8Array(values.length * 8);
  const dv = new DataView(raw.buffer);
  values.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
  clearTyped(tp);
  tp.rawData = raw;
}

function clearTyped(tp: TensorProto): void {
  tp.floatData = [];
  tp.int32Data = [];
  tp.int64Data = [];
  tp.doubleData = [];
  tp.uint64Data = [];
}

const numelOf = (s: number[]): number => s.reduce((a, d) => a * d, 1);

/** Apply the accepted groups' plans; `removed[i]` are the channels (0-based, of the group) plan i drops. */
export function applyPlans(idx: GraphIndex, plans: { plan: GroupPlan; removed: number[] }[]): SlicedTensor[] {
  const edits = new Map<TensorProto, RootEdit>();
  for (const { plan, removed } of plans) {
    for (const s of plan.slots) {
      const rootAxis = s.param.axisMap[s.axis]!;
      const key = s.param.root.kind === 'tensor' ? s.param.root.tp : s.param.root.shapeTp;
      let e = edits.get(key);
      if (!e) edits.set(key, (e = { root: s.param.root, axes: new Map() }));
      let set = e.axes.get(rootAxis);
      if (!set) e.axes.set(rootAxis, (set = new Set()));
      for (const r of removed) for (let b = 0; b < s.block; b++) set.add((s.offset + r) * s.block + b);
    }
  }

  const out: SlicedTensor[] = [];
  const newDims = new Map<string, number[]>();
  for (const e of edits.values()) {
    if (e.root.kind === 'tensor') {
      const tp = e.root.tp;
      const shape = tensorShape(tp, idx.path);
      const t = tensorFromProtoSync(tp, { path: idx.path });
      const elem = dtypeInfo(tensorDType(tp, idx.path)).bits / 8;
      const r = sliceBytes(t.data, shape, elem, e.axes);
      clearTyped(tp);
      tp.rawData = r.data;
      tp.dims = r.shape.map((d) => BigInt(d));
      newDims.set(tp.name, r.shape);
      out.push({ name: e.root.label, kind: 'tensor', shapeBefore: shape, shapeAfter: r.shape, sparsity: 1 - numelOf(r.shape) / Math.max(1, numelOf(shape)) });
    } else {
      const dims = smallInt64s(e.root.shapeTp, idx.path, 8)!.map(Number);
      const after = dims.map((d, i) => d - (e.axes.get(i)?.size ?? 0));
      setRawInt64(e.root.shapeTp, after.map((d) => BigInt(d)));
      out.push({ name: e.root.label, kind: 'fill', shapeBefore: dims, shapeAfter: after, sparsity: 1 - numelOf(after) / Math.max(1, numelOf(dims)) });
    }
  }

  for (const { plan } of plans) {
    for (const n of plan.depthwise) fixDepthwise(idx, n);
  }
  const changed = new Set<string>();
  for (const { plan } of plans) for (const v of plan.changed) changed.add(v);
  updateDeclared(idx.graph, newDims, changed);
  return out;
}

function fixDepthwise(idx: GraphIndex, n: NodeProto): void {
  const w = resolveParam(idx, n.input[1] ?? '');
  const g = n.attribute.find((a) => a.name === 'group');
  if (w && g) g.i = BigInt(w.shape[0]!);
}

/**
 * Initializers declared as graph inputs get their new dims; value_info entries of changed values are
 * dropped (a wrong shape there is worse than none: runtimes trust it).
 */
function updateDeclared(g: GraphProto, newDims: Map<string, number[]>, changed: Set<string>): void {
  for (const vi of g.input) {
    const dims = newDims.get(vi.name);
    const t = vi.type?.value;
    if (!dims || t?.case !== 'tensorType' || !t.value.shape) continue;
    t.value.shape.dim = dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } }));
  }
  g.valueInfo = g.valueInfo.filter((vi) => !changed.has(vi.name) && !newDims.has(vi.name));
}
