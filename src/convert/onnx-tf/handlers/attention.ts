/**
 * Attention (opset 23/24) and RotaryEmbedding (opset 23), decomposed into BatchMatMulV2, Softmax and
 * elementwise ops. Both ops take 3-D [batch, seq, heads·head_size] or 4-D [batch, heads, seq,
 * head_size] tensors; the work happens on the 4-D form. Dims unknown at conversion time (batch,
 * sequence) are read from the run-time shape where a reshape needs them.
 */
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import { onnxDtype, type Cx, type Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { broadcastShapes, numbersTensor } from '../values.js';

/** A graph tensor with its static shape (ONNX layout, -1 = unknown). */
interface TNode {
  ref: string;
  shape: number[];
  dtype: DType;
}

/** A target-shape entry: a static size (one -1 allowed), or dim `axis` of a tensor. */
type DimSpec = number | { of: TNode; axis: number };

const INT = { T: a.dt('int32') };
/** Largest causal mask built at conversion time (elements). */
const MAX_CONST_MASK = 1 << 16;

function known(p: DimSpec): number {
  return typeof p === 'number' ? p : p.of.shape[p.axis]!;
}

/** Dim `axis` of `n` as a 1-element int32 tensor taken from the run-time shape. */
function runtimeDim(cx: Cx, n: TNode, axis: number, scalar: boolean): string {
  const s = cx.add('Shape', [n.ref], { T: a.dt(n.dtype), out_type: a.dt('int32') });
  return cx.add('StridedSlice', [s, cx.i32([axis]), cx.i32([axis + 1]), cx.i32([1])], {
    ...INT, Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(scalar ? 1 : 0),
  });
}

/** A dim as an int32 scalar tensor: a Const when static. */
function dimScalar(cx: Cx, n: TNode, axis: number): string {
  const d = n.shape[axis]!;
  return d >= 0 ? cx.scalar('int32', d) : runtimeDim(cx, n, axis, true);
}

function reshape(cx: Cx, x: TNode, parts: DimSpec[]): TNode {
  const statics = parts.map(known);
  let target: string;
  if (statics.filter((d) => d < 0).length <= 1) target = cx.i32(statics);
  else {
    // Several unknown dims: copy them from the run-time shapes (TF's Reshape allows one -1 only).
    const pieces = parts.map((p, i) => (statics[i]! >= 0 || typeof p === 'number' ? cx.i32([statics[i]!]) : runtimeDim(cx, p.of, p.axis, false)));
    target = cx.add('ConcatV2', [...pieces, cx.i32([0], [])], { ...INT, N: a.i(pieces.length), Tidx: a.dt('int32') });
  }
  const ref = cx.add('Reshape', [x.ref, target], { T: a.dt(x.dtype), Tshape: a.dt('int32') });
  return { ref, dtype: x.dtype, shape: statics };
}

function transpose(cx: Cx, x: TNode, perm: number[]): TNode {
  const ref = cx.add('Transpose', [x.ref, cx.i32(perm)], { T: a.dt(x.dtype), Tperm: a.dt('int32') });
  return { ref, dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) };
}

function binary(cx: Cx, op: string, x: TNode, y: TNode | string): TNode {
  const shape = typeof y === 'string' ? x.shape : broadcastShapes(x.shape, y.shape)!;
  return { ref: cx.add(op, [x.ref, typeof y === 'string' ? y : y.ref], { T: a.dt(x.dtype) }), dtype: x.dtype, shape };
}

function concat(cx: Cx, xs: TNode[], axis: number): TNode {
  const ref = cx.add('ConcatV2', [...xs.map((x) => x.ref), cx.i32([axis], [])], { T: a.dt(xs[0]!.dtype), N: a.i(xs.length), Tidx: a.dt('int32') });
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.some((x) => x.shape[axis]! < 0) ? -1 : xs.reduce((s, x) => s + x.shape[axis]!, 0);
  return { ref, dtype: xs[0]!.dtype, shape };
}

/** Static split of the last axis into pieces of the given sizes. */
function splitLast(cx: Cx, x: TNode, sizes: number[]): TNode[] {
  const r = x.shape.length;
  const ref = cx.add('SplitV', [x.ref, cx.i32(sizes), cx.i32([r - 1], [])], { T: a.dt(x.dtype), Tlen: a.dt('int32'), num_split: a.i(sizes.length) });
  return sizes.map((s, i) => ({ ref: `${ref}:${i}`, dtype: x.dtype, shape: [...x.shape.slice(0, -1), s] }));
}

function nodeOf(cx: Cx, v: Val): TNode {
  return { ref: cx.ref(v), dtype: v.dtype, shape: v.shape! };
}

function matmul(cx: Cx, x: TNode, y: TNode, adjY: boolean): TNode {
  const ref = cx.add('BatchMatMulV2', [x.ref, y.ref], { T: a.dt(x.dtype), adj_x: a.b(false), adj_y: a.b(adjY) });
  const n = y.shape[adjY ? y.shape.length - 2 : y.shape.length - 1]!;
  return { ref, dtype: x.dtype, shape: [...x.shape.slice(0, -1), n] };
}

// ---- Attention -----------------------------------------------------------------------------------

/** [B, S, H·D] → [B, H, S, D]. */
function heads4(cx: Cx, x: TNode, heads: number, what: string): TNode {
  const hidden = x.shape[2]!;
  if (hidden < 0) return cx.unsupported(`3-D ${what} with an unknown hidden size`);
  if (hidden % heads !== 0) return cx.fail(ErrorCodes.MALFORMED, `${what} hidden size ${hidden} is not a multiple of ${heads} heads`);
  return transpose(cx, reshape(cx, x, [{ of: x, axis: 0 }, { of: x, axis: 1 }, heads, hidden / heads]), [0, 2, 1, 3]);
}

/**
 * x [B, qH, Sq, ·] @ y [B, kvH, ·, ·]. With grouped-query heads (qH = g·kvH, query head h reading
 * kv head ⌊h/g⌋), the g query heads of a kv head are folded into its rows: [B, kvH, g·Sq, ·] is the
 * same memory as [B, qH, Sq, ·], so no kv head is ever copied.
 */
function headMatmul(cx: Cx, x: TNode, y: TNode, adjY: boolean, qH: number, kvH: number): TNode {
  if (qH === kvH) return matmul(cx, x, y, adjY);
  const g = qH / kvH;
  const sq = x.shape[2]!;
  const folded = reshape(cx, x, [{ of: x, axis: 0 }, kvH, sq < 0 ? -1 : g * sq, { of: x, axis: 3 }]);
  const m = matmul(cx, folded, y, adjY);
  return reshape(cx, m, [{ of: m, axis: 0 }, qH, sq < 0 ? -1 : sq, { of: m, axis: 3 }]);
}

/** attn_mask as an additive bias of the scores' dtype, its last dim padded up to `total` (bool: false, float: −inf). */
function maskBias(cx: Cx, m: Val, dtype: DType, total: number): TNode {
  let n = nodeOf(cx, m);
  if (n.shape.length === 0 || n.shape.length > 4) return cx.fail(ErrorCodes.MALFORMED, `attn_mask has rank ${n.shape.length}`);
  const last = n.shape[n.shape.length - 1]!;
  const isBool = m.dtype === 'bool';
  if (!isBool && m.dtype !== dtype) return cx.fail(ErrorCodes.MALFORMED, `attn_mask is ${m.dtype}; it must be bool or ${dtype} like the query`);
  if (last >= 0 && total >= 0 && last < total) {
    const pads = cx.i32([...n.shape.slice(0, -1).flatMap(() => [0, 0]), 0, total - last], [n.shape.length, 2]);
    const fill = isBool ? cx.scalar('bool', 0) : cx.scalar(dtype, -Infinity);
    n = { ref: cx.add('PadV2', [n.ref, pads, fill], { T: a.dt(m.dtype), Tpaddings: a.dt('int32') }), dtype: m.dtype, shape: [...n.shape.slice(0, -1), total] };
  } else if (last >= 0 && total >= 0 && last > total) {
    return cx.fail(ErrorCodes.MALFORMED, `attn_mask's last dim ${last} exceeds the total sequence length ${total}`);
  }
  if (!isBool) return n;
  const ref = cx.add('SelectV2', [n.ref, cx.scalar(dtype, 0), cx.scalar(dtype, -Infinity)], { T: a.dt(dtype) });
  return { ref, dtype, shape: n.shape };
}

/**
 * Causal bias [Sq, L]: 0 where key j ≤ query i + offset, −inf above. The offset is the past length:
 * the queries are the last ones of the sequence when a cache precedes them.
 */
function causalBias(cx: Cx, q: TNode, k: TNode, past: TNode | undefined, dtype: DType): TNode {
  const sq = q.shape[2]!;
  const L = k.shape[2]!;
  const p = past ? past.shape[2]! : 0;
  // Small static masks are Consts; big ones (declared shapes are untrusted) are computed in the graph.
  if (sq >= 0 && L >= 0 && p >= 0 && sq * L <= MAX_CONST_MASK) {
    const vals: number[] = [];
    for (let i = 0; i < sq; i++) for (let j = 0; j < L; j++) vals.push(j <= i + p ? 0 : -Infinity);
    return { ref: cx.constNode(numbersTensor('', dtype, [sq, L], vals)), dtype, shape: [sq, L] };
  }
  const R = { Tidx: a.dt('int32') };
  const zero = cx.scalar('int32', 0);
  const one = cx.scalar('int32', 1);
  let i = cx.add('Range', [zero, dimScalar(cx, q, 2), one], R);
  if (past) i = cx.add('AddV2', [i, dimScalar(cx, past, 2)], INT);
  const col = cx.add('ExpandDims', [i, cx.i32([1], [])], { ...INT, Tdim: a.dt('int32') });
  const j = cx.add('Range', [zero, dimScalar(cx, k, 2), one], R);
  const allowed = cx.add('LessEqual', [j, col], INT);
  const ref = cx.add('SelectV2', [allowed, cx.scalar(dtype, 0), cx.scalar(dtype, -Infinity)], { T: a.dt(dtype) });
  return { ref, dtype, shape: [sq, L] };
}

/**
 * Bias of an external (static) KV cache, opset 24's nonpad_kv_seqlen [B]: keys at or past a batch's
 * valid length get −inf and, when causal without past_key, the causal frontier of batch b sits at
 * nonpad[b] − Sq (the queries are the last valid positions), as the ONNX reference defines it.
 */
function nonpadBias(cx: Cx, nonpad: Val, q: TNode, k: TNode, causal: boolean, dtype: DType): TNode {
  if (nonpad.dtype !== 'int64' && nonpad.dtype !== 'int32') return cx.fail(ErrorCodes.MALFORMED, `nonpad_kv_seqlen is ${nonpad.dtype}, not int64`);
  let n = cx.ref(nonpad);
  if (nonpad.dtype !== 'int32') n = cx.add('Cast', [n], { SrcT: a.dt(nonpad.dtype), DstT: a.dt('int32'), Truncate: a.b(false) });
  n = cx.add('Reshape', [n, cx.i32([-1, 1, 1, 1])], { ...INT, Tshape: a.dt('int32') });
  const R = { Tidx: a.dt('int32') };
  const zero = cx.scalar('int32', 0);
  const one = cx.scalar('int32', 1);
  const j = cx.add('Range', [zero, dimScalar(cx, k, 2), one], R);
  let ok = cx.add('Less', [j, n], INT);
  let shape = [q.shape[0]!, 1, 1, k.shape[2]!];
  if (causal) {
    const i = cx.add('ExpandDims', [cx.add('Range', [zero, dimScalar(cx, q, 2), one], R), cx.i32([1], [])], { ...INT, Tdim: a.dt('int32') });
    const frontier = cx.add('AddV2', [i, cx.add('Sub', [n, dimScalar(cx, q, 2)], INT)], INT);
    ok = cx.add('LogicalAnd', [ok, cx.add('LessEqual', [j, frontier], INT)]);
    shape = [q.shape[0]!, 1, q.shape[2]!, k.shape[2]!];
  }
  const ref = cx.add('SelectV2', [ok, cx.scalar(dtype, 0), cx.scalar(dtype, -Infinity)], { T: a.dt(dtype) });
  return { ref, dtype, shape };
}

/** Softmax over the last axis, in softmax_precision when it names a wider float type than the scores'. */
function softmax(cx: Cx, x: string, dtype: DType): string {
  const code = cx.int('softmax_precision', 0);
  const prec = code ? onnxDtype(code, { path: cx.opts.path }) : dtype;
  if (prec === dtype) return cx.add('Softmax', [x], { T: a.dt(dtype) });
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(prec)) return cx.fail(ErrorCodes.MALFORMED, `softmax_precision is ${prec}, not a float type`);
  const cast = (v: string, from: DType, to: DType): string => cx.add('Cast', [v], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) });
  return cast(cx.add('Softmax', [cast(x, dtype, prec)], { T: a.dt(prec) }), prec, dtype);
}

register('Attention', (cx) => {
  const Q = cx.in(0);
  const K = cx.in(1);
  const V = cx.in(2);
  const mask = cx.opt(3);
  const pastK = cx.opt(4);
  const pastV = cx.opt(5);
  const nonpad = cx.opt(6);
  const r = cx.rank(Q, 'Q');
  if (cx.rank(K, 'K') !== r || cx.rank(V, 'V') !== r || (r !== 3 && r !== 4)) {
    return cx.fail(ErrorCodes.MALFORMED, `Q, K and V must all be 3-D or all 4-D (got ranks ${r}, ${K.shape!.length}, ${V.shape!.length})`);
  }
  if (!!pastK !== !!pastV) return cx.fail(ErrorCodes.MALFORMED, 'past_key and past_value must be given together');
  const mode = cx.int('qk_matmul_output_mode', 0);
  if (cx.node.output[3] && ![0, 1, 2, 3].includes(mode)) return cx.unsupported(`Attention qk_matmul_output_mode ${mode} (modes 0 to 3 are converted)`);
  const dtype = Q.dtype;
  const T = { T: a.dt(dtype) };

  let q: TNode;
  let k: TNode;
  let v: TNode;
  let qH: number;
  let kvH: number;
  if (r === 3) {
    qH = cx.int('q_num_heads', 0);
    kvH = cx.int('kv_num_heads', 0);
    if (qH <= 0 || kvH <= 0) return cx.fail(ErrorCodes.MALFORMED, '3-D Attention needs q_num_heads and kv_num_heads');
    q = heads4(cx, nodeOf(cx, Q), qH, 'Q');
    k = heads4(cx, nodeOf(cx, K), kvH, 'K');
    v = heads4(cx, nodeOf(cx, V), kvH, 'V');
  } else {
    q = nodeOf(cx, Q);
    k = nodeOf(cx, K);
    v = nodeOf(cx, V);
    qH = q.shape[1]! >= 0 ? q.shape[1]! : cx.int('q_num_heads', -1);
    kvH = k.shape[1]! >= 0 ? k.shape[1]! : cx.int('kv_num_heads', -1);
    if (qH < 0 || kvH < 0) return cx.unsupported('4-D Attention with unknown head counts (give static head dims or q_num_heads/kv_num_heads)');
  }
  if (qH <= 0 || kvH <= 0 || qH % kvH !== 0) return cx.fail(ErrorCodes.MALFORMED, `q_num_heads ${qH} is not a multiple of kv_num_heads ${kvH}`);

  let past: TNode | undefined;
  if (pastK && pastV) {
    past = nodeOf(cx, pastK);
    if (past.shape.length !== 4 || pastV.shape?.length !== 4) return cx.fail(ErrorCodes.MALFORMED, 'past_key and past_value must be 4-D [batch, kv_heads, past_len, head_size]');
    k = concat(cx, [past, k], 2);
    v = concat(cx, [nodeOf(cx, pastV), v], 2);
  }
  cx.outRef(1, k.ref, dtype, k.shape);
  cx.outRef(2, v.ref, dtype, v.shape);

  const D = q.shape[3]!;
  if (D >= 0 && k.shape[3]! >= 0 && k.shape[3] !== D) return cx.fail(ErrorCodes.MALFORMED, `query head size ${D} differs from key head size ${k.shape[3]}`);
  let scale: number;
  if (cx.has('scale')) scale = cx.float('scale', 1);
  else if (D > 0) scale = 1 / Math.sqrt(D);
  else return cx.unsupported('Attention without a scale attribute needs a static head size');
  const qs = scale === 1 ? q : binary(cx, 'Mul', q, cx.scalar(dtype, scale));
  let s = headMatmul(cx, qs, k, true, qH, kvH);
  // The optional qk output at the stage its mode names: 0 the scaled product, 1 after softcap,
  // 2 after the mask/causal bias, 3 the softmax (the order of onnxruntime and the ONNX reference:
  // softcap comes before the bias so that masked scores stay −inf).
  const stages: TNode[] = [s];

  const softcap = cx.float('softcap', 0);
  if (softcap > 0) {
    const t = cx.add('Tanh', [cx.add('Mul', [s.ref, cx.scalar(dtype, 1 / softcap)], T)], T);
    s = { ...s, ref: cx.add('Mul', [t, cx.scalar(dtype, softcap)], T) };
  }
  stages.push(s);
  // Mask and causal bias add up (a bool mask becomes 0 / −inf first).
  const L = k.shape[2]!;
  let bias: TNode | undefined = mask ? maskBias(cx, mask, dtype, L) : undefined;
  const causal = cx.int('is_causal', 0) === 1;
  const extra = nonpad ? nonpadBias(cx, nonpad, q, k, causal && !past, dtype) : undefined;
  const c = causal && !(nonpad && !past) ? causalBias(cx, q, k, past, dtype) : undefined;
  for (const b of [c, extra]) if (b) bias = bias ? binary(cx, 'AddV2', bias, b) : b;
  if (bias) s = binary(cx, 'AddV2', s, bias);
  stages.push(s);
  const probs: TNode = { ...s, ref: softmax(cx, s.ref, dtype) };
  stages.push(probs);
  const qk = stages[mode];
  if (qk) cx.outRef(3, qk.ref, dtype, qk.shape);

  let y = headMatmul(cx, probs, v, false, qH, kvH);
  if (r === 3) {
    const t = transpose(cx, y, [0, 2, 1, 3]);
    const dv = y.shape[3]!;
    y = reshape(cx, t, [{ of: t, axis: 0 }, { of: t, axis: 1 }, dv < 0 ? -1 : qH * dv]);
  }
  cx.outRef(0, y.ref, dtype, y.shape);
});

// ---- RotaryEmbedding -----------------------------------------------------------------------------

register('RotaryEmbedding', (cx) => {
  const X = cx.in(0);
  const cosV = cx.in(1);
  const sinV = cx.in(2);
  const pos = cx.opt(3);
  const r = cx.rank(X);
  if (r !== 3 && r !== 4) return cx.fail(ErrorCodes.MALFORMED, `RotaryEmbedding input has rank ${r} (3 or 4)`);
  const x0 = nodeOf(cx, X);
  let x: TNode;
  let D: number;
  // Work on [B, S, H, D] (3-D input) or [B, H, S, D] (4-D): cos/sin [B, S, rot/2] get a unit heads axis.
  let headsAxis: number;
  if (r === 3) {
    const H = cx.int('num_heads', 0);
    if (H <= 0) return cx.fail(ErrorCodes.MALFORMED, '3-D RotaryEmbedding input needs the num_heads attribute');
    const hidden = x0.shape[2]!;
    if (hidden < 0) return cx.unsupported('3-D RotaryEmbedding input with an unknown hidden size');
    if (hidden % H !== 0) return cx.fail(ErrorCodes.MALFORMED, `hidden size ${hidden} is not a multiple of ${H} heads`);
    D = hidden / H;
    x = reshape(cx, x0, [{ of: x0, axis: 0 }, { of: x0, axis: 1 }, H, D]);
    headsAxis = 2;
  } else {
    x = x0;
    D = x0.shape[3]!;
    if (D < 0) return cx.unsupported('RotaryEmbedding with an unknown head size');
    headsAxis = 1;
  }
  const rot = cx.int('rotary_embedding_dim', 0) || D;
  if (rot < 0 || rot % 2 !== 0 || rot > D) return cx.fail(ErrorCodes.MALFORMED, `rotary_embedding_dim ${rot} must be even and at most the head size ${D}`);
  const half = rot / 2;
  const dtype = X.dtype;

  const table = (v: Val): TNode => {
    let n = nodeOf(cx, v);
    if (pos) {
      const ref = cx.add('GatherV2', [n.ref, cx.ref(pos), cx.i32([0], [])], { batch_dims: a.i(0), Tparams: a.dt(v.dtype), Tindices: a.dt(pos.dtype), Taxis: a.dt('int32') });
      n = { ref, dtype: v.dtype, shape: [...(pos.shape ?? [-1, -1]), ...n.shape.slice(1)] };
    }
    if (n.shape.length !== 3) return cx.fail(ErrorCodes.MALFORMED, `cos/sin values have rank ${n.shape.length}; [batch, seq, rot/2] expected`);
    const last = n.shape[2]!;
    if (last >= 0 && last !== half) return cx.fail(ErrorCodes.MALFORMED, `cos/sin caches have ${last} columns; rotary dim ${rot} needs ${half}`);
    const ref = cx.add('ExpandDims', [n.ref, cx.i32([headsAxis], [])], { T: a.dt(v.dtype), Tdim: a.dt('int32') });
    const shape = [...n.shape];
    shape.splice(headsAxis, 0, 1);
    return { ref, dtype: v.dtype, shape };
  };
  let cos = table(cosV);
  let sin = table(sinV);

  const [xr, xp] = rot < D ? splitLast(cx, x, [rot, D - rot]) : [x, undefined];
  const interleaved = cx.int('interleaved', 0) === 1;
  let x1: TNode;
  let x2: TNode;
  let pairs: TNode | undefined;
  if (interleaved) {
    // Pairs (x[2i], x[2i+1]): a trailing axis of 2 holds them.
    pairs = reshape(cx, xr, [{ of: xr, axis: 0 }, { of: xr, axis: 1 }, { of: xr, axis: 2 }, half, 2]);
    [x1, x2] = splitLast(cx, pairs, [1, 1]) as [TNode, TNode];
    const E = (n: TNode): TNode => ({ ref: cx.add('ExpandDims', [n.ref, cx.i32([-1], [])], { T: a.dt(n.dtype), Tdim: a.dt('int32') }), dtype: n.dtype, shape: [...n.shape, 1] });
    cos = E(cos);
    sin = E(sin);
  } else {
    [x1, x2] = splitLast(cx, xr, [half, half]) as [TNode, TNode];
  }
  const real = binary(cx, 'Sub', binary(cx, 'Mul', x1, cos), binary(cx, 'Mul', x2, sin));
  const imag = binary(cx, 'AddV2', binary(cx, 'Mul', x1, sin), binary(cx, 'Mul', x2, cos));
  let out = concat(cx, [real, imag], x1.shape.length - 1);
  if (pairs) out = reshape(cx, out, [{ of: out, axis: 0 }, { of: out, axis: 1 }, { of: out, axis: 2 }, rot]);
  if (xp) out = concat(cx, [out, xp], 3);
  if (r === 3) out = reshape(cx, out, [{ of: x0, axis: 0 }, { of: x0, axis: 1 }, x0.shape[2]!]);
  cx.outRef(0, out.ref, dtype, X.shape);
});
