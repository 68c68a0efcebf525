/**
 * BatchNormalization (inference), InstanceNormalization, LayerNormalization, GroupNormalization. Batch norm with
 * constant statistics folds to one scale and one shift per channel; in 4-D it runs inside the NHWC
 * wrap so that Conv → BN → Relu → Conv chains lose all their inner transposes.
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { normAxis, numbersTensor, tensorNumbers } from '../values.js';
import { enterNhwc, leaveNhwc } from './spatial.js';

/** A per-channel vector broadcast over axis 1 of a rank-r ONNX tensor: [C, 1, …, 1]. */
function channelRef(cx: Cx, v: Val, r: number): string {
  const ones = new Array<number>(Math.max(0, r - 2)).fill(1);
  if (v.value) return cx.weight({ ...v.value, shape: [v.value.shape[0] ?? 1, ...ones] }, `${cx.node.name || cx.node.output[0]}/${v.value.name || 'param'}`);
  return cx.add('Reshape', [cx.ref(v), cx.i32([-1, ...ones])], { T: a.dt(v.dtype), Tshape: a.dt('int32') });
}

register('BatchNormalization', (cx) => {
  if (cx.node.output.slice(1).some((o) => o)) return cx.unsupported('BatchNormalization training outputs');
  if (cx.int('training_mode', 0) === 1) return cx.unsupported('BatchNormalization training_mode=1');
  const x = cx.in(0);
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => cx.in(i)) as [Val, Val, Val, Val];
  const eps = cx.float('epsilon', 1e-5);
  const r = cx.rank(x);
  const T = { T: a.dt(x.dtype) };
  if (scale.value && bias.value && mean.value && variance.value && x.dtype === 'float32') {
    const [g, b, m, v] = [scale, bias, mean, variance].map((p) => tensorNumbers(p.value!));
    const s = g!.map((gi, i) => gi / Math.sqrt(v![i]! + eps));
    const t = b!.map((bi, i) => bi - m![i]! * s[i]!);
    const base = cx.node.name || cx.node.output[0]!;
    if (r === 4) {
      const sp = enterNhwc(cx, x);
      const y = cx.add('AddV2', [cx.add('Mul', [sp.ref, cx.weight(numbersTensor(`${base}/scale`, 'float32', [s.length], s))], T, 'Mul'),
        cx.weight(numbersTensor(`${base}/shift`, 'float32', [t.length], t))], T, 'AddV2');
      return leaveNhwc(cx, sp, y, x.shape!);
    }
    const ones = new Array<number>(Math.max(0, r - 2)).fill(1);
    const y = cx.add('AddV2', [cx.add('Mul', [cx.ref(x), cx.weight(numbersTensor(`${base}/scale`, 'float32', [s.length, ...ones], s))], T),
      cx.weight(numbersTensor(`${base}/shift`, 'float32', [t.length, ...ones], t))], T);
    return cx.outRef(0, y, x.dtype, x.shape);
  }
  // Computed statistics: y = (x − mean)·scale/√(var+ε) + bias, all broadcast on axis 1.
  const inv = cx.add('Rsqrt', [cx.add('AddV2', [channelRef(cx, variance, r), cx.scalar(x.dtype, eps)], T)], T);
  const centered = cx.add('Sub', [cx.ref(x), channelRef(cx, mean, r)], T);
  const y = cx.add('AddV2', [cx.add('Mul', [cx.add('Mul', [centered, inv], T), channelRef(cx, scale, r)], T), channelRef(cx, bias, r)], T);
  cx.outRef(0, y, x.dtype, x.shape);
});

/** (x − mean(x))·rsqrt(var(x) + ε) over `axes`, keeping dims for broadcasting. */
function normalize(cx: Cx, x: Val, axes: number[], eps: number): string {
  return normalizeParts(cx, x, axes, eps).y;
}

function normalizeParts(cx: Cx, x: Val, axes: number[], eps: number): { y: string; mean: string; inv: string } {
  const T = { T: a.dt(x.dtype) };
  const R = { ...T, Tidx: a.dt('int32'), keep_dims: a.b(true) };
  const mean = cx.add('Mean', [cx.ref(x), cx.i32(axes)], R);
  const variance = cx.add('Mean', [cx.add('SquaredDifference', [cx.ref(x), mean], T), cx.i32(axes)], R);
  const inv = cx.add('Rsqrt', [cx.add('AddV2', [variance, cx.scalar(x.dtype, eps)], T)], T);
  return { y: cx.add('Mul', [cx.add('Sub', [cx.ref(x), mean], T), inv], T), mean, inv };
}

register('InstanceNormalization', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const T = { T: a.dt(x.dtype) };
  const n = normalize(cx, x, [...Array(r).keys()].slice(2), cx.float('epsilon', 1e-5));
  const y = cx.add('AddV2', [cx.add('Mul', [n, channelRef(cx, cx.in(1), r)], T), channelRef(cx, cx.in(2), r)], T);
  cx.outRef(0, y, x.dtype, x.shape);
});

register('LayerNormalization', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const axis = normAxis(cx.int('axis', -1), r);
  const T = { T: a.dt(x.dtype) };
  const parts = normalizeParts(cx, x, [...Array(r).keys()].slice(axis), cx.float('epsilon', 1e-5));
  const statShape = x.shape!.map((d, i) => (i >= axis ? 1 : d));
  cx.outRef(1, parts.mean, x.dtype, statShape);
  cx.outRef(2, parts.inv, x.dtype, statShape);
  let y = cx.add('Mul', [parts.y, cx.ref(cx.in(1))], T);
  const b = cx.opt(2);
  if (b) y = cx.add('AddV2', [y, cx.ref(b)], T);
  cx.outRef(0, y, x.dtype, x.shape);
});

/**
 * GroupNormalization: statistics over each group of C/G channels and all spatial positions, on a
 * [N, G, C/G·rest] view. Opset 21 scales and shifts per channel; opset 18 per group.
 */
register('GroupNormalization', (cx) => {
  const x = cx.in(0);
  const r = cx.rank(x);
  const g = cx.int('num_groups', 0);
  const s = x.shape!;
  if (r < 2 || s.slice(1).some((d) => d < 0)) return cx.unsupported('GroupNormalization needs static channel and spatial dims');
  const c = s[1]!;
  if (g < 1 || c % g !== 0) return cx.fail(ErrorCodes.MALFORMED, `num_groups ${g} does not divide ${c} channels`);
  if (cx.int('stash_type', 1) !== 1) return cx.unsupported('GroupNormalization stash_type other than float32');
  const rest = s.slice(2).reduce((p, q) => p * q, 1);
  const T = { T: a.dt(x.dtype) };
  const R = { ...T, Tshape: a.dt('int32') };
  const grouped = cx.add('Reshape', [cx.ref(x), cx.i32([-1, g, (c / g) * rest])], R);
  const mean = cx.add('Mean', [grouped, cx.i32([2])], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(true) });
  const centred = cx.add('Sub', [grouped, mean], T);
  const variance = cx.add('Mean', [cx.add('Square', [centred], T), cx.i32([2])], { ...T, Tidx: a.dt('int32'), keep_dims: a.b(true) });
  let y = cx.add('Mul', [centred, cx.add('Rsqrt', [cx.add('AddV2', [variance, cx.scalar(x.dtype, cx.float('epsilon', 1e-5))], T)], T)], T);
  const [scale, bias] = [cx.in(1), cx.in(2)];
  const perGroup = cx.opset < 21;
  const want = perGroup ? g : c;
  for (const p of [scale, bias]) if (p.shape && p.shape.length === 1 && p.shape[0]! >= 0 && p.shape[0] !== want) return cx.fail(ErrorCodes.MALFORMED, `scale/bias of ${p.shape[0]} for ${want} ${perGroup ? 'groups' : 'channels'}`);
  if (perGroup) {
    const v = (p: Val): string => cx.add('Reshape', [cx.ref(p), cx.i32([g, 1])], { T: a.dt(p.dtype), Tshape: a.dt('int32') });
    y = cx.add('AddV2', [cx.add('Mul', [y, v(scale)], T), v(bias)], T);
    y = cx.add('Reshape', [y, cx.i32([-1, ...s.slice(1)])], R);
  } else {
    y = cx.add('Reshape', [y, cx.i32([-1, ...s.slice(1)])], R);
    y = cx.add('AddV2', [cx.add('Mul', [y, channelRef(cx, scale, r)], T), channelRef(cx, bias, r)], T);
  }
  cx.outRef(0, y, x.dtype, s);
});
