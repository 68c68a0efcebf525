/**
 * ai.onnx.preview.training optimizers (Adagrad, Adam, Momentum, opset 1): one update step of
 * several tensors per node, as plain element-wise TF math. Inputs are R (learning rate), T (update
 * count), then the variadic groups X..., G..., and the optimizer state; outputs are the new X...
 * followed by the new state tensors, in the same group order.
 */
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';

const DOMAIN = 'ai.onnx.preview.training';
const FLOATS: ReadonlySet<DType> = new Set<DType>(['float16', 'bfloat16', 'float32', 'float64']);

/** The emitting helpers one optimizer step needs, all in the optimized tensors' float dtype. */
interface Step {
  dt: DType;
  /** R cast to `dt`. */
  r: string;
  /** T cast to `dt`. */
  t: string;
  /** groups[k][i] = i-th tensor of group k (X, G, then state), as a Val. */
  groups: Val[][];
  s(v: number): string;
  op(name: string, ins: string[]): string;
  mul(x: string, y: string): string;
  add(x: string, y: string): string;
  sub(x: string, y: string): string;
}

/** A one-element R or T as a `to` scalar: a [1]-shaped one would otherwise give a scalar X a rank. */
function scalarOf(cx: Cx, v: Val, to: DType): string {
  let ref = cx.ref(v);
  if (v.shape?.length !== 0) ref = cx.add('Reshape', [ref, cx.i32([], [0])], { T: a.dt(v.dtype), Tshape: a.dt('int32') });
  return v.dtype === to ? ref : cx.add('Cast', [ref], { SrcT: a.dt(v.dtype), DstT: a.dt(to), Truncate: a.b(false) });
}

/** Splits the variadic inputs into `nGroups` equal groups and checks their dtypes. */
function step(cx: Cx, nGroups: number): Step {
  const r = cx.in(0);
  const t = cx.in(1);
  const rest = cx.node.input.length - 2;
  if (rest < nGroups || rest % nGroups !== 0) {
    cx.fail(ErrorCodes.MALFORMED, `expects R, T and ${nGroups} equally long groups of tensors, got ${cx.node.input.length} inputs`);
  }
  const n = rest / nGroups;
  const groups: Val[][] = [];
  for (let k = 0; k < nGroups; k++) groups.push(Array.from({ length: n }, (_, i) => cx.in(2 + k * n + i)));
  const dt = groups[0]![0]!.dtype;
  for (const g of groups) {
    for (const v of g) {
      if (!FLOATS.has(v.dtype)) cx.unsupported(`optimized tensors must be float or double, got ${v.dtype}`);
      if (v.dtype !== dt) cx.unsupported(`optimized tensors mix dtypes ${dt} and ${v.dtype}`);
    }
  }
  if (!FLOATS.has(r.dtype)) cx.unsupported(`learning rate R must be float or double, got ${r.dtype}`);
  if (t.dtype !== 'int64' && t.dtype !== 'int32') cx.unsupported(`update count T must be int64, got ${t.dtype}`);
  for (const [v, what] of [[r, 'learning rate R'], [t, 'update count T']] as const) {
    if (!v.shape) cx.unsupported(`${what} has unknown rank (it must be a scalar)`);
    if (v.shape.some((d) => d !== 1)) cx.unsupported(`${what} must be a scalar, got shape [${v.shape.join(', ')}]`);
  }
  const T = { T: a.dt(dt) };
  const op = (name: string, ins: string[]): string => cx.add(name, ins, T);
  return {
    dt,
    r: scalarOf(cx, r, dt),
    t: scalarOf(cx, t, dt),
    groups,
    s: (v) => cx.scalar(dt, v),
    op,
    mul: (x, y) => op('Mul', [x, y]),
    add: (x, y) => op('AddV2', [x, y]),
    sub: (x, y) => op('Sub', [x, y]),
  };
}

/** `T > 0 ? ifPositive : otherwise` for scalars. */
function whenCounted(cx: Cx, st: Step, ifPositive: string, otherwise: string): string {
  const pos = cx.add('Greater', [st.t, st.s(0)], { T: a.dt(st.dt) });
  return cx.add('SelectV2', [pos, ifPositive, otherwise], { T: a.dt(st.dt) });
}

/** norm_coefficient·X + G, the L2-regularized gradient. */
function regularized(st: Step, x: string, g: string, norm: number): string {
  return norm === 0 ? g : st.add(st.mul(st.s(norm), x), g);
}

function emit(cx: Cx, st: Step, outputs: string[][]): void {
  outputs.forEach((group, k) =>
    group.forEach((ref, i) => {
      const x = st.groups[0]![i]!;
      cx.outRef(k * group.length + i, ref, st.dt, x.shape);
    }),
  );
}

register(`${DOMAIN}::Adagrad`, (cx) => {
  const st = step(cx, 3);
  const decay = cx.float('decay_factor', 0);
  const eps = cx.float('epsilon', 0);
  const norm = cx.float('norm_coefficient', 0);
  // r = R / (1 + T·decay_factor): the learning rate decays with the update count.
  const r = decay === 0 ? st.r : st.op('RealDiv', [st.r, st.add(st.s(1), st.mul(st.t, st.s(decay)))]);
  const [xs, gs, hs] = st.groups as [Val[], Val[], Val[]];
  const xNew: string[] = [];
  const hNew: string[] = [];
  xs.forEach((xv, i) => {
    const x = cx.ref(xv);
    const g = regularized(st, x, cx.ref(gs[i]!), norm);
    const h = st.add(cx.ref(hs[i]!), st.op('Square', [g]));
    const denom = st.add(st.op('Sqrt', [h]), st.s(eps));
    xNew.push(st.sub(x, st.op('RealDiv', [st.mul(r, g), denom])));
    hNew.push(h);
  });
  emit(cx, st, [xNew, hNew]);
});

register(`${DOMAIN}::Adam`, (cx) => {
  const st = step(cx, 4);
  const alpha = cx.float('alpha', 0.9);
  const beta = cx.float('beta', 0.999);
  const eps = cx.float('epsilon', 0);
  const norm = cx.float('norm_coefficient', 0);
  const post = cx.float('norm_coefficient_post', 0);
  // Bias correction R·sqrt(1 − beta^T) / (1 − alpha^T) applies only once T > 0; at T = 0 it is
  // 0/0, so it is computed from max(T, 1) and the select keeps the NaN out of the graph.
  const t1 = st.op('Maximum', [st.t, st.s(1)]);
  const corr = st.op('RealDiv', [
    st.op('Sqrt', [st.sub(st.s(1), st.op('Pow', [st.s(beta), t1]))]),
    st.sub(st.s(1), st.op('Pow', [st.s(alpha), t1])),
  ]);
  const r = whenCounted(cx, st, st.mul(st.r, corr), st.r);
  const [xs, gs, vs, hs] = st.groups as [Val[], Val[], Val[], Val[]];
  const out: string[][] = [[], [], []];
  xs.forEach((xv, i) => {
    const x = cx.ref(xv);
    const g = regularized(st, x, cx.ref(gs[i]!), norm);
    const v = st.add(st.mul(st.s(alpha), cx.ref(vs[i]!)), st.mul(st.s(1 - alpha), g));
    const h = st.add(st.mul(st.s(beta), cx.ref(hs[i]!)), st.mul(st.s(1 - beta), st.op('Square', [g])));
    const denom = st.add(st.op('Sqrt', [h]), st.s(eps));
    let xn = st.sub(x, st.mul(r, st.op('RealDiv', [v, denom])));
    if (post !== 0) xn = st.mul(st.s(1 - post), xn);
    out[0]!.push(xn);
    out[1]!.push(v);
    out[2]!.push(h);
  });
  emit(cx, st, out);
});

register(`${DOMAIN}::Momentum`, (cx) => {
  const st = step(cx, 3);
  // alpha, beta, mode and norm_coefficient are all required by the spec: no defaults to guess.
  for (const name of ['alpha', 'beta', 'mode', 'norm_coefficient']) {
    if (!cx.has(name)) cx.fail(ErrorCodes.MALFORMED, `required attribute '${name}' is missing`);
  }
  const alpha = cx.float('alpha', 0);
  const beta = cx.float('beta', 0);
  const norm = cx.float('norm_coefficient', 0);
  const mode = cx.str('mode', '');
  if (mode !== 'standard' && mode !== 'nesterov') cx.unsupported(`mode '${mode}' (expected 'standard' or 'nesterov')`);
  // The first step (T = 0) takes the whole gradient: beta applies from the second update on.
  const b = whenCounted(cx, st, st.s(beta), st.s(1));
  const [xs, gs, vs] = st.groups as [Val[], Val[], Val[]];
  const xNew: string[] = [];
  const vNew: string[] = [];
  xs.forEach((xv, i) => {
    const x = cx.ref(xv);
    const g = regularized(st, x, cx.ref(gs[i]!), norm);
    const v = st.add(st.mul(st.s(alpha), cx.ref(vs[i]!)), st.mul(b, g));
    const dir = mode === 'standard' ? v : st.add(g, st.mul(st.s(alpha), v));
    xNew.push(st.sub(x, st.mul(st.r, dir)));
    vNew.push(v);
  });
  emit(cx, st, [xNew, vNew]);
});
