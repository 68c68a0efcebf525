/**
 * Transpose cancellation. Spatial ops are emitted inside NCHW→NHWC / NHWC→NCHW transposes; between
 * two spatial ops that leaves inverse pairs, often separated by other ops. This pass
 * - cancels a transpose that reads the inverse transpose (rewiring its readers to the original),
 * - sinks transposes below elementwise ops (unary; binary when the other operand is a scalar Const or
 *   the same transpose) and below ConcatV2 of same-perm inputs (remapping the axis), so that the
 *   inverse pairs meet; a transpose with other readers is copied only when the copy will cancel,
 * - drops what no output needs any more,
 * - then tries copying a transpose with several elementwise readers below each of them (kept only
 *   when the total falls).
 * One rewrite per round keeps the bookkeeping trivial; graphs stay far below the round cap.
 */
import type { NodeDef } from '../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { attr, int32Tensor, node as tfNode, shapeProto } from '../../formats/savedmodel/build.js';
import { parseInput } from '../../formats/savedmodel/graph-utils.js';

/** Ops for which op(transpose(x)) == transpose(op(x)). */
const UNARY = new Set([
  'Relu', 'Relu6', 'LeakyRelu', 'Elu', 'Selu', 'Sigmoid', 'Tanh', 'Softplus', 'Softsign', 'Exp', 'Log', 'Sqrt', 'Rsqrt',
  'Abs', 'Neg', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Sin', 'Cos', 'Erf', 'Square', 'Identity', 'LogicalNot', 'Cast',
]);
/** Reductions whose result does not depend on element order (Sum/Mean would round differently). */
const ORDER_FREE = new Set(['Min', 'Max', 'All', 'Any']);
const BINARY = new Set(['AddV2', 'Sub', 'Mul', 'RealDiv', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference']);

/** Re-runs of the pass spent on fan-out tries (each costs one full pass). */
const MAX_FAN_OUT_TRIALS = 256;
/** Graphs above this many nodes skip the fan-out tries: 256 full passes would cost too much there. */
const MAX_FAN_OUT_NODES = 20_000;

export interface LayoutStats {
  before: number;
  after: number;
}

function isScalarConst(n: NodeDef | undefined): boolean {
  if (!n || n.op !== 'Const') return false;
  const v = n.attr['value']?.value;
  return v?.case === 'tensor' && (v.value.tensorShape?.dim.length ?? 0) === 0;
}

/** `name:index` of an input, index 0 spelled out, as the `shapes` map keys them. */
function outputKey(input: string): string {
  const p = parseInput(input);
  return `${p.node}:${p.index}`;
}

/** Dims of a Const node's value, or undefined. */
function constDims(n: NodeDef | undefined): number[] | undefined {
  const v = n?.op === 'Const' ? n.attr['value']?.value : undefined;
  return v?.case === 'tensor' ? (v.value.tensorShape?.dim ?? []).map((d) => Number(d.size)) : undefined;
}

/**
 * The shape a Const operand needs on the other side of a transpose with `perm` (c' with
 * op(T(x), c) = T(op(x, c'))), when that is a pure reshape: at most one dim above 1, rank ≤ the
 * transpose's. Per-channel scales and biases ([C, 1, 1]) are the case that matters.
 */
function constAcross(dims: number[], perm: number[]): number[] | undefined {
  const r = perm.length;
  if (dims.length > r || dims.filter((d) => d !== 1).length > 1) return undefined;
  const padded = [...new Array<number>(r - dims.length).fill(1), ...dims];
  return perm.map((_, i) => padded[perm.indexOf(i)]!);
}
/**
 * For an elementwise op or a ConcatV2 whose data inputs are all produced by transposes with one perm
 * (binary ops may instead have a scalar Const second operand): those transposes, the perm, and for
 * ConcatV2 the axis in the pre-transpose layout.
 */
function sinkPlan(n: NodeDef, tr: (i: string | undefined) => NodeDef | undefined, perms: Map<string, number[]>, byName: Map<string, NodeDef>, shapes: ReadonlyMap<string, number[]>): { ts: NodeDef[]; perm: number[]; axis?: number; constShape?: number[]; reshapeTo?: number[] } | undefined {
  const t1 = tr(n.input[0]);
  if (!t1) return undefined;
  const perm = perms.get(t1.name)!;
  const same = (t: NodeDef | undefined): t is NodeDef => !!t && perms.get(t.name)!.length === perm.length && perms.get(t.name)!.every((q, i) => q === perm[i]);
  if (UNARY.has(n.op)) return { ts: [t1], perm };
  if (BINARY.has(n.op)) {
    const t2 = tr(n.input[1]);
    if (same(t2)) return { ts: [t1, t2], perm };
    const other = n.input[1] ?? '';
    const c = byName.get(parseInput(other).node);
    const known = shapes.get(outputKey(other));
    if (isScalarConst(c) || known?.length === 0) return { ts: [t1], perm };
    const dims = constDims(c);
    if (dims) {
      const across = constAcross(dims, perm);
      return across ? { ts: [t1], perm, constShape: across } : undefined;
    }
    // A computed operand of known shape (a per-channel scale [C, 1, 1]) goes through a Reshape.
    const across = known && constAcross(known, perm);
    return across ? { ts: [t1], perm, reshapeTo: across } : undefined;
  }
  const ts = n.input.slice(0, -1).map(tr);
  if (!ts.every(same)) return undefined;
  const axisNode = byName.get(parseInput(n.input[n.input.length - 1] ?? '').node);
  const v = axisNode?.op === 'Const' ? axisNode.attr['value']?.value : undefined;
  if (v?.case !== 'tensor' || v.value.intVal.length !== 1) return undefined;
  const r = perm.length;
  const axis = v.value.intVal[0]! < 0 ? v.value.intVal[0]! + r : v.value.intVal[0]!;
  // concat(T(a), T(b), axis k) = T(concat(a, b, axis perm[k])).
  return { ts: ts as NodeDef[], perm, axis: perm[axis]! };
}

/**
 * `shapes`: static shapes of computed tensors by `node:index` (from the converter), so binary ops
 * with a computed scalar or per-channel operand (dynamic quantization scales) let transposes through.
 */
export function cancelTransposes(nodes: NodeDef[], perms: Map<string, number[]>, keep: ReadonlySet<string>, shapes: ReadonlyMap<string, number[]> = new Map()): { nodes: NodeDef[]; stats: LayoutStats } {
  const before = nodes.filter((n) => n.op === 'Transpose').length;
  let list = sinkAndCancel(nodes, perms, keep, shapes);
  // A transpose read by several elementwise ops (x feeding both arms of x·relu6(x+3)/6) cannot
  // sink as one node. Try copying it below every reader and re-running the pass; keep the result
  // only when fewer transposes remain, so a copy that never meets its inverse costs nothing.
  // Each transpose is tried once (a failed try is not repeated) and the re-runs are capped: the
  // pass stays bounded on hostile or huge graphs.
  const tried = new Set<string>();
  let budget = list.length > MAX_FAN_OUT_NODES ? 0 : MAX_FAN_OUT_TRIALS;
  for (let trial = 0; trial < MAX_FAN_OUT_TRIALS && budget > 0; trial++) {
    const count = list.filter((n) => n.op === 'Transpose').length;
    let improved = false;
    for (const t of list) {
      if (budget <= 0) break;
      if (t.op !== 'Transpose' || !perms.has(t.name) || keep.has(t.name) || tried.has(t.name)) continue;
      const readers = list.filter((m) => m.input.some((i) => parseInput(i).node === t.name));
      if (readers.length < 2 || !readers.every((m) => (UNARY.has(m.op) || BINARY.has(m.op)) && !keep.has(m.name))) continue;
      tried.add(t.name);
      budget--;
      const copyPerms = new Map(perms);
      const copy = list.map((n) => ({ ...n, input: [...n.input] }));
      const out = sinkAndCancel(fanOut(copy, t.name, copyPerms), copyPerms, keep, shapes);
      if (out.filter((n) => n.op === 'Transpose').length < count) {
        list = out;
        perms.clear();
        for (const [k, v] of copyPerms) perms.set(k, v);
        improved = true;
        break;
      }
    }
    if (!improved) break;
  }
  return { nodes: list, stats: { before, after: list.filter((n) => n.op === 'Transpose').length } };
}

/** Replaces transpose `name` by one private copy per reader (same perm), so each copy can sink on its own. */
function fanOut(list: NodeDef[], name: string, perms: Map<string, number[]>): NodeDef[] {
  const t = list.find((n) => n.name === name)!;
  const perm = perms.get(name)!;
  const names = new Set(list.map((n) => n.name));
  const out = [...list];
  let k = 0;
  for (const m of list) {
    for (let i = 0; i < m.input.length; i++) {
      const p = parseInput(m.input[i]!);
      if (p.node !== name || p.index !== 0 || m === t) continue;
      while (names.has(`${name}_fan${k}`)) k++;
      const copyName = `${name}_fan${k}`;
      names.add(copyName);
      out.push({ ...t, name: copyName, input: [...t.input] });
      perms.set(copyName, perm);
      m.input[i] = copyName;
    }
  }
  return out;
}

function sinkAndCancel(nodes: NodeDef[], perms: Map<string, number[]>, keep: ReadonlySet<string>, shapes: ReadonlyMap<string, number[]>): NodeDef[] {
  let list = nodes;
  for (let round = 0; round < 10_000; round++) {
    const byName = new Map(list.map((n) => [n.name, n]));
    const uses = new Map<string, number>();
    // Readers by producer node, built once per round: per-node scans made big graphs quadratic.
    const readersOf = new Map<string, NodeDef[]>();
    for (const n of list) {
      for (const i of n.input) {
        const p = parseInput(i).node;
        uses.set(p, (uses.get(p) ?? 0) + 1);
        const r = readersOf.get(p);
        if (!r) readersOf.set(p, [n]);
        else if (r[r.length - 1] !== n) r.push(n);
      }
    }
    for (const k of keep) uses.set(k, (uses.get(k) ?? 0) + 1);
    /** Transpose node feeding input `i` (output 0 only), if it is one the pass knows the perm of. */
    const tr = (i: string | undefined): NodeDef | undefined => {
      if (i === undefined) return undefined;
      const p = parseInput(i);
      const n = byName.get(p.node);
      return n && p.index === 0 && perms.has(n.name) ? n : undefined;
    };
    const rewire = (from: string, to: string, except?: NodeDef): void => {
      for (const n of list) {
        if (n === except) continue;
        n.input = n.input.map((i) => (i === from || i === `${from}:0` ? to : i));
      }
    };
    const fresh = (base: string): string => {
      let k = 0;
      while (byName.has(`${base}_${k}`)) k++;
      const name = `${base}_${k}`;
      byName.set(name, undefined as never);
      return name;
    };
    let changed = false;
    for (const n of list) {
      if (n.op === 'Transpose' && perms.has(n.name)) {
        const t1 = tr(n.input[0]);
        if (t1) {
          const p1 = perms.get(t1.name)!;
          const p2 = perms.get(n.name)!;
          if (p1.length === p2.length && p2.every((q, i) => p1[q] === i)) {
            rewire(n.name, t1.input[0]!);
            perms.delete(n.name);
            changed = true;
            break;
          }
        }
      }
      if (n.op === 'Reshape' && !keep.has(n.name)) {
        // Reshape(T(x), [-1]) read only by order-free reductions (Min/Max of a dynamic quantization
        // range): the element order is irrelevant, so it can read x directly.
        const t = tr(n.input[0]);
        const shapeNode = byName.get(parseInput(n.input[1] ?? '').node);
        const sv = shapeNode?.op === 'Const' ? shapeNode.attr['value']?.value : undefined;
        const flat = sv?.case === 'tensor' && sv.value.intVal.length === 1 && sv.value.intVal[0] === -1 && (sv.value.tensorShape?.dim.length ?? 0) === 1;
        const readers = readersOf.get(n.name) ?? [];
        if (t && flat && readers.length > 0 && readers.every((m) => ORDER_FREE.has(m.op) && !keep.has(m.name))) {
          n.input[0] = t.input[0]!;
          changed = true;
          break;
        }
      }
      if (UNARY.has(n.op) || BINARY.has(n.op) || n.op === 'ConcatV2') {
        // A kept node is a graph output: its layout is part of the contract.
        if (keep.has(n.name)) continue;
        const plan = sinkPlan(n, tr, perms, byName, shapes);
        if (!plan) continue;
        const { ts, perm } = plan;
        const singleUse = ts.every((t) => (uses.get(t.name) ?? 0) === 1) && new Set(ts).size === ts.length;
        // A shared transpose is only worth duplicating below n when that copy will cancel.
        const inv = perm.map((_, i) => perm.indexOf(i));
        const isInv = (m: NodeDef, src: string): boolean => m.op === 'Transpose' && m.input[0] === src && !!perms.get(m.name)?.every((q, i) => q === inv[i]);
        const readers = (readersOf.get(n.name) ?? []).filter((m) => m.input.includes(n.name));
        // Look one elementwise op further (Add → Relu → conv is the residual-block shape).
        const cancels = readers.some((m) => isInv(m, n.name)) ||
          (readers.length === 1 && UNARY.has(readers[0]!.op) && !keep.has(readers[0]!.name) && (readersOf.get(readers[0]!.name) ?? []).some((m) => isInv(m, readers[0]!.name)));
        if (!singleUse && !cancels) continue;
        const dataInputs = n.op === 'ConcatV2' ? n.input.length - 1 : UNARY.has(n.op) ? 1 : 2;
        let post: NodeDef;
        if (singleUse) {
          post = ts[0]!;
        } else {
          const pc = fresh(`${n.name}/sunk_perm`);
          list.push(tfNode(pc, 'Const', [], { dtype: attr.type(3), value: attr.tensor(int32Tensor(perm)) }));
          post = tfNode(fresh(`${n.name}/sunk_transpose`), 'Transpose', [n.name], { Tperm: attr.type(3) });
          post.input.push(pc);
          list.push(post);
          perms.set(post.name, perm);
        }
        // n(T(x)…) → T(n(x…)): consumers of n now read the transpose placed after it, which moves
        // n's output dtype (a Cast changes it).
        const outT = n.op === 'Cast' ? n.attr['DstT'] : n.op === 'LogicalNot' ? attr.type(10 /* DT_BOOL */) : n.attr['T'];
        // A fresh attr map: fan-out copies of a transpose share theirs.
        if (outT) post.attr = { ...post.attr, T: outT };
        rewire(n.name, post.name, post);
        if (plan.constShape) {
          // The Const operand on x's side of the transpose: same values, permuted (unit) dims.
          const c = byName.get(parseInput(n.input[1]!).node)!;
          const v = c.attr['value']!.value;
          if (v.case === 'tensor') {
            const name = fresh(`${n.name}/sunk_const`);
            const tensor = { ...v.value, tensorShape: shapeProto(plan.constShape) };
            list.push(tfNode(name, 'Const', [], { dtype: c.attr['dtype']!, value: attr.tensor(tensor as typeof v.value) }));
            n.input[1] = name;
          }
        }
        if (plan.reshapeTo) {
          const shapeName = fresh(`${n.name}/sunk_shape`);
          list.push(tfNode(shapeName, 'Const', [], { dtype: attr.type(3), value: attr.tensor(int32Tensor(plan.reshapeTo)) }));
          const name = fresh(`${n.name}/sunk_reshape`);
          list.push(tfNode(name, 'Reshape', [n.input[1]!, shapeName], { ...(n.attr['T'] ? { T: n.attr['T'] } : {}), Tshape: attr.type(3) }));
          n.input[1] = name;
        }
        for (let k = 0; k < dataInputs; k++) {
          const t = tr(n.input[k]);
          if (t) n.input[k] = t.input[0]!;
        }
        if (n.op === 'ConcatV2') {
          const axisName = fresh(`${n.name}/sunk_axis`);
          list.push(tfNode(axisName, 'Const', [], { dtype: attr.type(3), value: attr.tensor(int32Tensor([plan.axis!], [])) }));
          n.input[n.input.length - 1] = axisName;
        }
        if (singleUse) post.input[0] = n.name;
        changed = true;
        break;
      }
    }
    list = prune(list, keep);
    if (!changed) break;
  }
  return list;
}

/** Nodes that some kept node depends on (inputs and control inputs), in their original order. */
export function prune(nodes: NodeDef[], keep: ReadonlySet<string>): NodeDef[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const live = new Set<string>();
  const stack = [...keep];
  while (stack.length) {
    const name = stack.pop()!;
    if (live.has(name)) continue;
    live.add(name);
    for (const i of byName.get(name)?.input ?? []) stack.push(parseInput(i).node);
  }
  return nodes.filter((n) => live.has(n.name));
}
