/**
 * ai.onnx.ml ops that map onto plain TF arithmetic: Binarizer, ArrayFeatureExtractor, LabelEncoder
 * (numeric or string keys, numeric values) and TreeEnsemble (opset 5). TF.js, our reference
 * executor, compares strings but cannot gather or select them, so string results are refused.
 */
import { create } from '@bufbuild/protobuf';
import type { DType } from '../../../core/dtype.js';
import { dtypeInfo } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import { numel, type Tensor } from '../../../core/tensor.js';
import { node as tfNode, shapeProto, tfDtype } from '../../../formats/savedmodel/build.js';
import { TensorProtoSchema } from '../../../formats/savedmodel/gen/tensorflow/types_pb.js';
import { sanitizeName, type Cx } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { numbersTensor, tensorNumbers } from '../values.js';

const ML = 'ai.onnx.ml::';

function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

/** Integer Binarizer inputs with the bounds their threshold is clamped to (int64's: the doubles inside it). */
const BINARIZER_INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [-(2 ** 63), 2 ** 63 - 1024],
};

register(`${ML}Binarizer`, (cx) => {
  const x = cx.in(0);
  const range = BINARIZER_INT_RANGE[x.dtype];
  if (!range && x.dtype !== 'float32' && x.dtype !== 'float64') cx.unsupported(`Binarizer on ${x.dtype} input`);
  const thr = cx.float('threshold', 0);
  const T = { T: a.dt(x.dtype) };
  let gt: string;
  if (!range) {
    gt = cx.add('Greater', [cx.ref(x), cx.scalar(x.dtype, thr)], T);
  } else {
    // For integers x > t ⇔ x > floor(t), compared in the input dtype (exact); a threshold outside
    // the dtype's range is clamped to a compare that is always true / always false.
    const [lo, hi] = range;
    const t = Math.floor(thr);
    gt = t < lo ? cx.add('GreaterEqual', [cx.ref(x), cx.scalar(x.dtype, lo)], T) : cx.add('Greater', [cx.ref(x), cx.scalar(x.dtype, Math.min(t, hi))], T);
  }
  const y = cx.add('Cast', [gt], { SrcT: a.dt('bool'), DstT: a.dt(x.dtype), Truncate: a.b(false) });
  cx.outRef(0, y, x.dtype, x.shape);
});

register(`${ML}ArrayFeatureExtractor`, (cx) => {
  const x = cx.in(0);
  const idx = cx.in(1);
  if (x.dtype === 'string') cx.unsupported('ArrayFeatureExtractor on a string tensor');
  if (idx.dtype !== 'int64' && idx.dtype !== 'int32') cx.fail(ErrorCodes.MALFORMED, `ArrayFeatureExtractor indices must be int64, got ${idx.dtype}`);
  const r = cx.rank(x);
  if (r === 0) cx.fail(ErrorCodes.MALFORMED, 'ArrayFeatureExtractor input X must have rank ≥ 1');
  const dim = x.shape![r - 1]!;
  // The indices are flattened (onnxruntime and the reference agree); a 1-D X gives a [1, k] result.
  let iref: string;
  let k = idx.shape && idx.shape.every((d) => d >= 0) ? numel(idx.shape) : -1;
  if (idx.value) {
    const iv = tensorNumbers(idx.value);
    if (iv.some((i) => !Number.isInteger(i) || i < 0 || (dim >= 0 && i >= dim))) {
      cx.fail(ErrorCodes.OUT_OF_RANGE, `ArrayFeatureExtractor index out of range for last dim ${dim}`);
    }
    iref = cx.constNode(numbersTensor('', 'int32', [iv.length], iv));
    k = iv.length;
  } else {
    iref = cx.add('Reshape', [cx.ref(idx), cx.i32([-1])], { T: a.dt(idx.dtype), Tshape: a.dt('int32') });
  }
  const Tidx = idx.value ? 'int32' : idx.dtype;
  let y = cx.add('GatherV2', [cx.ref(x), iref, cx.i32([r - 1], [])], { batch_dims: a.i(0), Tparams: a.dt(x.dtype), Tindices: a.dt(Tidx), Taxis: a.dt('int32') });
  if (r === 1) y = cx.add('Reshape', [y, cx.i32([1, -1])], { T: a.dt(x.dtype), Tshape: a.dt('int32') });
  cx.outRef(0, y, x.dtype, r === 1 ? [1, k] : [...x.shape!.slice(0, -1), k]);
});

/** A LabelEncoder key or value list: numbers, or raw string bytes (keys only). */
interface Table { dtype: DType; nums: number[]; strs?: Uint8Array[] }

const MAX_TABLE = 1 << 16;

function stringsAttr(cx: Cx, name: string): Uint8Array[] | undefined {
  const at = cx.node.attribute.find((x) => x.name === name);
  return at ? at.strings : undefined;
}

/** keys_* / values_* of LabelEncoder (lists from opset 2, tensors from opset 4); null when absent. */
function table(cx: Cx, kind: 'keys' | 'values'): Table | null {
  const found: Table[] = [];
  const sl = stringsAttr(cx, `${kind}_strings`);
  if (sl) found.push({ dtype: 'string', nums: [], strs: sl });
  const fl = cx.floats(`${kind}_floats`);
  if (fl) found.push({ dtype: 'float32', nums: fl });
  const il = cx.ints(`${kind}_int64s`);
  if (il) found.push({ dtype: 'int64', nums: il });
  const tp = cx.tensorAttr(`${kind}_tensor`);
  if (tp) {
    const t = cx.tensorOf(tp);
    if (t.shape.length !== 1) cx.fail(ErrorCodes.MALFORMED, `LabelEncoder ${kind}_tensor must be 1-D, got shape [${t.shape.join(', ')}]`);
    found.push(t.dtype === 'string' ? { dtype: 'string', nums: [], strs: t.strings ?? [] } : { dtype: t.dtype, nums: tensorNumbers(t) });
  }
  if (found.length > 1) cx.fail(ErrorCodes.MALFORMED, `LabelEncoder sets more than one ${kind}_* attribute`);
  const tb = found[0];
  if (!tb) return null;
  // TF.js has no string Gather or Select, so a string result cannot be produced.
  if (kind === 'values' && tb.dtype === 'string') cx.unsupported('LabelEncoder with string values (TF.js cannot gather or select strings)');
  if (tableLen(tb) > MAX_TABLE) cx.unsupported(`LabelEncoder with ${tableLen(tb)} keys (at most ${MAX_TABLE}: the lookup compares against every key)`);
  return tb;
}

function tableLen(t: Table): number {
  return t.strs ? t.strs.length : t.nums.length;
}

/** The default value: default_tensor (opset 4) or default_float / default_int64 by the values' type. */
function defaultValue(cx: Cx, values: DType): number {
  const tp = cx.tensorAttr('default_tensor');
  if (tp) {
    const t: Tensor = cx.tensorOf(tp);
    if (t.dtype === 'string') cx.unsupported('LabelEncoder with a string default_tensor');
    const v = tensorNumbers(t);
    if (v.length !== 1) cx.fail(ErrorCodes.MALFORMED, `LabelEncoder default_tensor must hold one value, got ${v.length}`);
    return v[0]!;
  }
  return isFloat(values) ? cx.float('default_float', -0) : cx.int('default_int64', -1);
}

/** A DT_STRING Const (tensorProtoOf handles numeric tensors only). */
function stringConst(cx: Cx, strs: Uint8Array[]): string {
  const name = cx.unique(`${sanitizeName(cx.node.name || cx.node.output[0] || 'LabelEncoder')}/keys`);
  const value = create(TensorProtoSchema, { dtype: tfDtype('string'), tensorShape: shapeProto([strs.length]), stringVal: strs });
  cx.nodes.push(tfNode(name, 'Const', [], { dtype: a.dt('string'), value: a.tensor(value) }));
  return name;
}

const latin1 = new TextDecoder('latin1');

register(`${ML}LabelEncoder`, (cx) => {
  const x = cx.in(0);
  if (cx.has('classes_strings')) cx.unsupported('LabelEncoder (opset 1) string ↔ int64 mapping (TF.js cannot gather or select strings)');
  const keys = table(cx, 'keys');
  const values = table(cx, 'values');
  if (!keys || !values) return cx.fail(ErrorCodes.MALFORMED, 'LabelEncoder needs one keys_* and one values_* attribute');
  if (tableLen(keys) !== tableLen(values)) cx.fail(ErrorCodes.MALFORMED, `LabelEncoder has ${tableLen(keys)} keys but ${tableLen(values)} values`);
  if (keys.dtype !== x.dtype) cx.fail(ErrorCodes.MALFORMED, `LabelEncoder keys are ${keys.dtype} but input X is ${x.dtype}`);
  const vd = values.dtype;
  if (dtypeInfo(vd).bits < 8 || vd === 'float16' || vd === 'bfloat16') cx.unsupported(`LabelEncoder values of type ${vd}`);
  const def = defaultValue(cx, vd);
  const V = { T: a.dt(vd) };
  const xr = cx.ref(x);

  // A key repeated with another value has no agreed meaning (onnxruntime keeps the first, the
  // reference the last), so it is refused. NaN keys never compare equal: they take an IsNan branch.
  const keyOf = (i: number): number | string => (keys.strs ? latin1.decode(keys.strs[i]!) : keys.nums[i]!);
  const keyIdx = new Map<number | string, number>();
  let nanIdx = -1;
  for (let i = 0; i < tableLen(keys); i++) {
    const k = keyOf(i);
    const isNan = typeof k === 'number' && Number.isNaN(k);
    const prev = isNan ? (nanIdx >= 0 ? nanIdx : undefined) : keyIdx.get(k);
    if (prev !== undefined) {
      if (!Object.is(values.nums[prev], values.nums[i])) cx.unsupported(`LabelEncoder key ${String(k)} maps to two values (${values.nums[prev]} and ${values.nums[i]}); runtimes disagree on which wins`);
      continue;
    }
    if (isNan) nanIdx = i;
    else keyIdx.set(k, i);
  }
  const idx = [...keyIdx.values()];
  const vs = idx.map((i) => values.nums[i]!);

  let y: string;
  if (idx.length === 0) {
    const shape = cx.add('Shape', [xr], { T: a.dt(x.dtype), out_type: a.dt('int32') });
    y = cx.add('Fill', [shape, cx.scalar(vd, def)], { T: a.dt(vd), index_type: a.dt('int32') });
  } else {
    // [..., 1] == [n] → [..., n]; the matching column's index picks the value, no match the default.
    const kref = keys.strs ? stringConst(cx, idx.map((i) => keys.strs![i]!)) : cx.constNode(numbersTensor('', x.dtype, [idx.length], idx.map((i) => keys.nums[i]!)));
    const xe = cx.add('ExpandDims', [xr, cx.i32([-1], [])], { T: a.dt(x.dtype), Tdim: a.dt('int32') });
    const eq = cx.add('Equal', [xe, kref], { T: a.dt(x.dtype), incompatible_shape_error: a.b(true) });
    const hit = cx.add('Any', [eq, cx.i32([-1], [])], { Tidx: a.dt('int32'), keep_dims: a.b(false) });
    const col = cx.add('ArgMax', [cx.add('Cast', [eq], { SrcT: a.dt('bool'), DstT: a.dt('int32'), Truncate: a.b(false) }), cx.i32([-1], [])],
      { T: a.dt('int32'), Tidx: a.dt('int32'), output_type: a.dt('int32') });
    const picked = cx.add('GatherV2', [cx.constNode(numbersTensor('', vd, [vs.length], vs)), col, cx.i32([0], [])],
      { batch_dims: a.i(0), Tparams: a.dt(vd), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
    y = cx.add('SelectV2', [hit, picked, cx.scalar(vd, def)], V);
  }
  if (nanIdx >= 0) {
    const nan = cx.add('IsNan', [xr], { T: a.dt(x.dtype) });
    y = cx.add('SelectV2', [nan, cx.scalar(vd, values.nums[nanIdx]!), y], V);
  }
  cx.outRef(0, y, vd, x.shape);
});

// ---- TreeEnsemble (ai.onnx.ml opset 5) ---------------------------------------------------------
//
// Evaluated without control flow (BRANCH_MEMBER included): every node's condition is computed for
// every row at once, and a root-to-leaf path is taken iff all its conditions point its way. With
// C[n, j] = 1 when node j's
// condition holds and D[j, p] = +1 / −1 when path p leaves j by its true / false branch, (C·D)[n, p]
// = (#true steps that hold) − (#false steps that do not hold), which reaches #true steps of p only
// when every step agrees; a second matmul with the paths' leaf weights sums the trees. These
// integer-valued sums stay exact in float32.

/** Bound on nodes × paths of the dense path matrix (16 MB of float32). */
const MAX_PATH_MATRIX = 1 << 22;

/** Bound on path-enumeration steps (deep or shared-subtree hostile trees must not hang). */
const MAX_PATH_WORK = 1 << 25;

/** MIN / MAX emit a few ops per target. */
const MAX_MINMAX_TARGETS = 256;

const TREE_MODES = ['LessEqual', 'Less', 'GreaterEqual', 'Greater', 'Equal', 'NotEqual'] as const;

function tensorNums(cx: Cx, name: string): number[] | undefined {
  const tp = cx.tensorAttr(name);
  return tp ? tensorNumbers(cx.tensorOf(tp)) : undefined;
}

/**
 * BRANCH_MEMBER sets as (node, member) pairs: membership_values lists each member node's set in
 * node order, each ended (the last one optionally) by a NaN.
 */
function memberSets(cx: Cx, modes: number[]): Array<[number, number]> {
  const nodes = modes.flatMap((m, j) => (m === 6 ? [j] : []));
  if (!nodes.length) return [];
  const mv = tensorNums(cx, 'membership_values');
  if (!mv) return cx.fail(ErrorCodes.MALFORMED, 'TreeEnsemble has BRANCH_MEMBER nodes but no membership_values');
  const groups: number[][] = [[]];
  for (const v of mv) {
    if (Number.isNaN(v)) groups.push([]);
    else groups[groups.length - 1]!.push(v);
  }
  if (groups.length > nodes.length && groups[groups.length - 1]!.length === 0) groups.pop();
  if (groups.length !== nodes.length) cx.fail(ErrorCodes.MALFORMED, `TreeEnsemble membership_values holds ${groups.length} sets for ${nodes.length} BRANCH_MEMBER nodes`);
  return nodes.flatMap((j, i) => groups[i]!.map((v): [number, number] => [j, v]));
}

register(`${ML}TreeEnsemble`, (cx) => {
  const x = cx.in(0);
  if (x.dtype !== 'float32' && x.dtype !== 'float64') cx.unsupported(`TreeEnsemble on ${x.dtype} input`);
  if (cx.rank(x) !== 2) cx.unsupported(`TreeEnsemble on a rank-${x.shape!.length} input (expects [N, F])`);
  const agg = cx.int('aggregate_function', 1);
  if (agg !== 0 && agg !== 1 && agg !== 2 && agg !== 3) cx.unsupported(`TreeEnsemble aggregate_function ${agg} (only AVERAGE, SUM, MIN and MAX)`);
  // The spec numbers SOFTMAX 1 and LOGISTIC 2, onnxruntime applies a logistic for 1, and the
  // reference ignores the attribute: with no agreed meaning, any transform is refused.
  const post = cx.int('post_transform', 0);
  if (post !== 0) cx.unsupported(`TreeEnsemble post_transform ${post} (only NONE: runtimes disagree on the others)`);
  const nTargets = cx.int('n_targets', 0);
  const req = (name: string): number[] => {
    const v = name === 'nodes_modes' || name === 'nodes_splits' || name === 'leaf_weights' ? tensorNums(cx, name) : cx.ints(name);
    return v ?? cx.fail(ErrorCodes.MALFORMED, `TreeEnsemble is missing attribute ${name}`);
  };
  const feat = req('nodes_featureids');
  const splits = req('nodes_splits');
  const modes = req('nodes_modes');
  const tIds = req('nodes_truenodeids');
  const fIds = req('nodes_falsenodeids');
  const tLeaf = cx.ints('nodes_trueleafs') ?? [];
  const fLeaf = cx.ints('nodes_falseleafs') ?? [];
  const mvtt = cx.ints('nodes_missing_value_tracks_true') ?? [];
  const leafT = req('leaf_targetids');
  const leafW = req('leaf_weights');
  const roots = req('tree_roots');
  const M = feat.length;
  const L = leafT.length;
  for (const [name, arr] of [['nodes_splits', splits], ['nodes_modes', modes], ['nodes_truenodeids', tIds], ['nodes_falsenodeids', fIds]] as const) {
    if (arr.length !== M) cx.fail(ErrorCodes.MALFORMED, `TreeEnsemble ${name} has ${arr.length} entries for ${M} nodes`);
  }
  for (const [name, arr] of [['nodes_trueleafs', tLeaf], ['nodes_falseleafs', fLeaf], ['nodes_missing_value_tracks_true', mvtt]] as const) {
    if (arr.length !== 0 && arr.length !== M) cx.fail(ErrorCodes.MALFORMED, `TreeEnsemble ${name} has ${arr.length} entries for ${M} nodes`);
  }
  if (leafW.length !== L) cx.fail(ErrorCodes.MALFORMED, `TreeEnsemble has ${L} leaf_targetids but ${leafW.length} leaf_weights`);
  if (M === 0 || roots.length === 0) cx.fail(ErrorCodes.MALFORMED, 'TreeEnsemble has no nodes or no tree_roots');
  if (nTargets <= 0 || leafT.some((t) => !Number.isInteger(t) || t < 0 || t >= nTargets)) cx.fail(ErrorCodes.OUT_OF_RANGE, `TreeEnsemble leaf_targetids must lie in [0, n_targets = ${nTargets})`);
  if (leafW.some((w) => !Number.isFinite(w))) cx.unsupported('TreeEnsemble with non-finite leaf_weights (the path matmul would spread them to every row)');
  const F = x.shape![1]!;
  if (feat.some((f) => !Number.isInteger(f) || f < 0 || (F >= 0 && f >= F))) cx.fail(ErrorCodes.OUT_OF_RANGE, `TreeEnsemble nodes_featureids must lie in [0, ${F})`);
  if (modes.some((m) => !Number.isInteger(m) || m < 0 || m > 6)) cx.fail(ErrorCodes.MALFORMED, 'TreeEnsemble nodes_modes must be 0..6');
  const sets = memberSets(cx, modes);
  if (sets.length * M > MAX_PATH_MATRIX) cx.unsupported(`TreeEnsemble with ${sets.length} set members for ${M} nodes (at most ${MAX_PATH_MATRIX} member × node entries)`);

  // Enumerate root-to-leaf paths by an explicit stack; a path revisiting a node is a cycle.
  const dCols: Array<Map<number, number>> = [];
  const pathLeaf: number[] = [];
  const pathTree: number[] = [];
  const budget = Math.max(1, Math.floor(MAX_PATH_MATRIX / M));
  let work = 0;
  for (const [tree, root] of roots.entries()) {
    if (!Number.isInteger(root) || root < 0 || root >= M) cx.fail(ErrorCodes.OUT_OF_RANGE, `TreeEnsemble tree root ${root} is not a node index (0..${M - 1})`);
    const stack: Array<{ node: number; steps: Map<number, number> }> = [{ node: root, steps: new Map() }];
    while (stack.length) {
      const { node, steps } = stack.pop()!;
      work += steps.size + 1;
      if (work > MAX_PATH_WORK) cx.unsupported(`TreeEnsemble paths too long or too many to enumerate (over ${MAX_PATH_WORK} steps)`);
      for (const [dir, next, leaf] of [[1, tIds[node]!, tLeaf[node] ?? 0], [-1, fIds[node]!, fLeaf[node] ?? 0]] as const) {
        const s = new Map(steps).set(node, dir);
        if (leaf) {
          if (!Number.isInteger(next) || next < 0 || next >= L) cx.fail(ErrorCodes.OUT_OF_RANGE, `TreeEnsemble node ${node} points at leaf ${next} of ${L}`);
          if (dCols.length >= budget) cx.unsupported(`TreeEnsemble with more than ${budget} root-to-leaf paths for ${M} nodes`);
          dCols.push(s);
          pathLeaf.push(next);
          pathTree.push(tree);
        } else {
          if (!Number.isInteger(next) || next < 0 || next >= M) cx.fail(ErrorCodes.OUT_OF_RANGE, `TreeEnsemble node ${node} points at node ${next} of ${M}`);
          if (s.has(next)) cx.fail(ErrorCodes.MALFORMED, `TreeEnsemble node ${next} is reached twice on one path (a cycle)`);
          stack.push({ node: next, steps: s });
        }
      }
    }
  }
  const P = dCols.length;
  if (P * nTargets > MAX_PATH_MATRIX) cx.unsupported(`TreeEnsemble with ${P} paths × ${nTargets} targets (at most ${MAX_PATH_MATRIX} entries)`);
  const T = x.dtype;
  const TT = { T: a.dt(T) };
  const D = new Array<number>(M * P).fill(0);
  const want: number[] = [];
  dCols.forEach((s, p) => {
    let w = 0;
    for (const [j, dir] of s) { D[j * P + p] = dir; if (dir > 0) w++; }
    want.push(w);
  });
  const scale = agg === 0 ? 1 / roots.length : 1;
  const W = new Array<number>(P * nTargets).fill(0);
  pathLeaf.forEach((leaf, p) => { W[p * nTargets + leafT[leaf]!]! += leafW[leaf]! * scale; });

  // Conditions: one compare per mode present, merged with constant per-node masks.
  const xg = cx.add('GatherV2', [cx.ref(x), cx.i32(feat), cx.i32([1], [])], { batch_dims: a.i(0), Tparams: a.dt(T), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
  const split = cx.constNode(numbersTensor('', T, [M], splits));
  const boolConst = (vals: number[]): string => cx.constNode(numbersTensor('', 'bool', [M], vals));
  let cond: string | undefined;
  const toT = (b: string): string => cx.add('Cast', [b], { SrcT: a.dt('bool'), DstT: a.dt(T), Truncate: a.b(false) });
  for (let m = 0; m < TREE_MODES.length; m++) {
    const sel = modes.map((v) => (v === m ? 1 : 0));
    if (!sel.some((v) => v)) continue;
    const op = TREE_MODES[m]!;
    let c = cx.add(op, [xg, split], op === 'Equal' || op === 'NotEqual' ? { ...TT, incompatible_shape_error: a.b(true) } : TT);
    if (sel.some((v) => !v)) c = cx.add('LogicalAnd', [c, boolConst(sel)]);
    cond = cond ? cx.add('LogicalOr', [cond, c]) : c;
  }
  if (sets.length) {
    // All set members at once: x[:, feature of the member's node] == member, counted per node.
    const q = sets.map(([, v]) => v);
    const xq = cx.add('GatherV2', [cx.ref(x), cx.i32(sets.map(([j]) => feat[j]!)), cx.i32([1], [])], { batch_dims: a.i(0), Tparams: a.dt(T), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
    const eqq = cx.add('Equal', [xq, cx.constNode(numbersTensor('', T, [q.length], q))], { ...TT, incompatible_shape_error: a.b(true) });
    const owner = new Array<number>(q.length * M).fill(0);
    sets.forEach(([j], i) => { owner[i * M + j] = 1; });
    const hits = cx.add('MatMul', [toT(eqq), cx.weight(numbersTensor('', T, [q.length, M], owner))], { ...TT, transpose_a: a.b(false), transpose_b: a.b(false) });
    const member = cx.add('Greater', [hits, cx.scalar(T, 0.5)], TT);
    cond = cond ? cx.add('LogicalOr', [cond, member]) : member;
  }
  if (!cond) {
    // Only BRANCH_MEMBER nodes with empty sets: every condition is false.
    cond = cx.add('Less', [xg, cx.scalar(T, -Infinity)], TT);
  }
  if (mvtt.some((v) => v)) {
    // A missing (NaN) feature takes the true branch where the node asks for it; elsewhere the
    // compare decides as onnxruntime's does (false, except NotEqual).
    const nan = cx.add('IsNan', [xg], TT);
    cond = cx.add('LogicalOr', [cond, cx.add('LogicalAnd', [nan, boolConst(mvtt.map((v) => (v ? 1 : 0)))])]);
  }
  const score = cx.add('MatMul', [toT(cond), cx.weight(numbersTensor('', T, [M, P], D))], { ...TT, transpose_a: a.b(false), transpose_b: a.b(false) });
  const taken = cx.add('Equal', [score, cx.constNode(numbersTensor('', T, [P], want))], { ...TT, incompatible_shape_error: a.b(true) });
  let y: string;
  if (agg <= 1) {
    y = cx.add('MatMul', [toT(taken), cx.weight(numbersTensor('', T, [P, nTargets], W))], { ...TT, transpose_a: a.b(false), transpose_b: a.b(false) });
  } else {
    // MIN / MAX: per target, the extreme weight over the taken paths that vote for it. A target no
    // taken path votes for is 0 in onnxruntime but the dtype's extreme in the reference, so it must
    // not happen: each target needs a tree all of whose leaves vote for it.
    if (nTargets > MAX_MINMAX_TARGETS) cx.unsupported(`TreeEnsemble MIN/MAX with ${nTargets} targets (at most ${MAX_MINMAX_TARGETS})`);
    const onlyTarget = new Map<number, number>();
    pathLeaf.forEach((l, p) => {
      const t = pathTree[p]!;
      const prev = onlyTarget.get(t);
      onlyTarget.set(t, prev === undefined || prev === leafT[l] ? leafT[l]! : -1);
    });
    for (let k = 0; k < nTargets; k++) {
      if (![...onlyTarget.values()].includes(k)) cx.unsupported(`TreeEnsemble MIN/MAX where target ${k} may get no vote (runtimes disagree on its value: onnxruntime 0, the reference the float extreme)`);
    }
    // Paths not taken must never win the reduction.
    const fill = cx.scalar(T, agg === 2 ? Infinity : -Infinity);
    const pathW = cx.weight(numbersTensor('', T, [P], pathLeaf.map((l) => leafW[l]!)));
    const cols: string[] = [];
    for (let k = 0; k < nTargets; k++) {
      const votes = cx.add('LogicalAnd', [taken, cx.constNode(numbersTensor('', 'bool', [P], pathLeaf.map((l) => (leafT[l] === k ? 1 : 0))))]);
      const v = cx.add('SelectV2', [votes, pathW, fill], TT);
      cols.push(cx.add(agg === 2 ? 'Min' : 'Max', [v, cx.i32([1], [])], { ...TT, Tidx: a.dt('int32'), keep_dims: a.b(false) }));
    }
    y = cx.add('Pack', cols, { ...TT, N: a.i(nTargets), axis: a.i(1) });
  }
  cx.outRef(0, y, T, [x.shape![0]!, nTargets]);
});
