/**
 * LSTM, GRU and RNN, unrolled into straight-line ops rather than a TF while loop: exporters write
 * static sequence lengths, and plain per-step ops are what every TF consumer (TF.js, OpenCV's
 * importer, TFLite converters) reads without control-flow support. The input projection X·Wᵀ (+ the
 * biases that do not depend on the state) of every step and direction is one MatMul before the loop;
 * each step only adds H·Rᵀ and the gate math.
 * Gate orders are ONNX's: LSTM [i o f c], GRU [z r h], peepholes [i o f].
 * sequence_lens is honoured by masking: past a batch entry's length the state is held and Y is 0,
 * which also makes the reverse direction start at that entry's last valid step; an empty sequence
 * ends in zero states, as in onnxruntime. */
import type { DType } from '../../../core/dtype.js';
import { byteLength, dtypeInfo } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import type { Tensor } from '../../../core/tensor.js';
import type { Cx, Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { transposeTensor } from '../values.js';

type Kind = 'LSTM' | 'GRU' | 'RNN';

/** Unrolling emits ~15 ops per step and direction; longer sequences make graphs TF loads slowly. */
export const MAX_RNN_STEPS = 1024;
/** A sanity bound on the hidden_size attribute (gate weights would be ≥ 64 GB past it). */
const MAX_HIDDEN = 1 << 16;

const GATES: Record<Kind, number> = { LSTM: 4, GRU: 3, RNN: 1 };
const DEFAULT_ACTS: Record<Kind, string[]> = { LSTM: ['Sigmoid', 'Tanh', 'Tanh'], GRU: ['Sigmoid', 'Tanh'], RNN: ['Tanh'] };

interface Act { name: string; alpha: number; beta: number }

/**
 * Which activations take alpha/beta and their defaults, as onnxruntime (our oracle) reads them:
 * values are consumed in list order only by the functions that use them; without a default the
 * parameter is 0.
 */
const ACT_PARAMS: Record<string, { alpha?: number; beta?: number }> = {
  relu: {}, tanh: {}, sigmoid: {}, softsign: {}, softplus: {},
  affine: { alpha: 0, beta: 0 },
  leakyrelu: { alpha: 0.01 },
  thresholdedrelu: { alpha: 0 },
  scaledtanh: { alpha: 0, beta: 0 },
  hardsigmoid: { alpha: 0.2, beta: 0.5 },
  elu: { alpha: 1 },
};

function activations(cx: Cx, kind: Kind, dirs: number): Act[][] {
  const per = DEFAULT_ACTS[kind].length;
  let list = cxStrings(cx, 'activations') ?? [];
  // As the spec (and onnxruntime): a given list names every direction's functions.
  if (list.length === 0) list = Array.from({ length: dirs }, () => DEFAULT_ACTS[kind]).flat();
  else if (list.length !== per * dirs) cx.fail(ErrorCodes.MALFORMED, `activations has ${list.length} entries; ${kind} takes ${per} per direction (${per * dirs} for ${dirs} direction${dirs > 1 ? 's' : ''})`);
  const alphas = cx.floats('activation_alpha') ?? [];
  const betas = cx.floats('activation_beta') ?? [];
  let ai = 0;
  let bi = 0;
  const acts = list.map((raw): Act => {
    const name = raw.toLowerCase();
    const p = ACT_PARAMS[name];
    if (!p) return cx.unsupported(`activation '${raw}' (supported: Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus)`);
    const alpha = p.alpha === undefined ? 0 : ai < alphas.length ? alphas[ai++]! : p.alpha;
    const beta = p.beta === undefined ? 0 : bi < betas.length ? betas[bi++]! : p.beta;
    return { name, alpha, beta };
  });
  return Array.from({ length: dirs }, (_, d) => acts.slice(d * per, (d + 1) * per));
}

/** A STRINGS attribute (Cx exposes single strings only). */
function cxStrings(cx: Cx, name: string): string[] | undefined {
  const x = cx.node.attribute.find((at) => at.name === name);
  return x ? x.strings.map((s) => new TextDecoder().decode(s)) : undefined;
}

/**
 * Emission helpers bound to one node. Nodes are named by step and direction (`scope`) and small
 * constants are made once per node: thousands of same-named ops or Consts under one prefix would make
 * unique naming quadratic.
 */
class Em {
  private readonly consts = new Map<string, string>();
  readonly T: Record<string, ReturnType<typeof a.dt>>;
  scope = '';

  constructor(readonly cx: Cx, readonly dtype: DType, readonly clip: number | undefined) {
    this.T = { T: a.dt(dtype) };
  }

  emit(op: string, inputs: string[], attrs: Record<string, ReturnType<typeof a.dt>>): string {
    return this.cx.add(op, inputs, attrs, this.scope ? `${this.scope}/${op}` : undefined);
  }

  s(v: number): string {
    const key = `s${v}`;
    let r = this.consts.get(key);
    if (!r) this.consts.set(key, (r = this.cx.scalar(this.dtype, v)));
    return r;
  }

  i32(values: number[], shape: number[] = [values.length]): string {
    const key = `i${values.join(',')}:${shape.join(',')}`;
    let r = this.consts.get(key);
    if (!r) this.consts.set(key, (r = this.cx.i32(values, shape)));
    return r;
  }

  op(op: string, inputs: string[]): string {
    return this.emit(op, inputs, this.T);
  }

  add(x: string, y: string): string { return this.op('AddV2', [x, y]); }
  mul(x: string, y: string): string { return this.op('Mul', [x, y]); }
  sub(x: string, y: string): string { return this.op('Sub', [x, y]); }

  matmul(x: string, w: { ref: string; tb: boolean }): string {
    return this.emit('MatMul', [x, w.ref], { ...this.T, transpose_a: a.b(false), transpose_b: a.b(w.tb) });
  }

  split(x: string, n: number, axis: number): string[] {
    if (n === 1) return [x];
    const s = this.emit('Split', [this.i32([axis], []), x], { ...this.T, num_split: a.i(n) });
    return Array.from({ length: n }, (_, k) => `${s}:${k}`);
  }

  unpack(x: string, n: number, axis: number, T = this.T): string[] {
    const u = this.emit('Unpack', [x], { ...T, num: a.i(n), axis: a.i(axis) });
    return Array.from({ length: n }, (_, k) => `${u}:${k}`);
  }

  pack(xs: string[], axis: number): string {
    return this.emit('Pack', xs, { ...this.T, N: a.i(xs.length), axis: a.i(axis) });
  }

  reshape(x: string, shape: number[]): string {
    return this.emit('Reshape', [x, this.i32(shape)], { ...this.T, Tshape: a.dt('int32') });
  }

  /** The `clip` attribute bounds every gate's pre-activation. */
  clipped(x: string): string {
    if (this.clip === undefined) return x;
    return this.op('Maximum', [this.op('Minimum', [x, this.s(this.clip)]), this.s(-this.clip)]);
  }

  act(x: string, f: Act): string {
    const s = (v: number): string => this.s(v);
    switch (f.name) {
      case 'sigmoid': return this.op('Sigmoid', [x]);
      case 'tanh': return this.op('Tanh', [x]);
      case 'relu': return this.op('Relu', [x]);
      case 'softplus': return this.op('Softplus', [x]);
      // TF's Softsign kernel is missing from TF.js.
      case 'softsign': return this.op('RealDiv', [x, this.add(this.op('Abs', [x]), s(1))]);
      case 'affine': return this.add(this.mul(x, s(f.alpha)), s(f.beta));
      case 'leakyrelu': return this.emit('LeakyRelu', [x], { ...this.T, alpha: a.f(f.alpha) });
      case 'thresholdedrelu': return this.op('SelectV2', [this.op('Greater', [x, s(f.alpha)]), x, this.op('ZerosLike', [x])]);
      case 'scaledtanh': return this.mul(this.op('Tanh', [this.mul(x, s(f.beta))]), s(f.alpha));
      case 'hardsigmoid': return this.op('Minimum', [this.op('Maximum', [this.add(this.mul(x, s(f.alpha)), s(f.beta)), s(0)]), s(1)]);
      case 'elu': {
        const elu = this.op('Elu', [x]);
        if (f.alpha === 1) return elu;
        // Only the negative branch scales: relu(x) + alpha·min(elu(x), 0).
        return this.add(this.op('Relu', [x]), this.mul(this.op('Minimum', [elu, s(0)]), s(f.alpha)));
      }
      default: return this.cx.unsupported(`activation '${f.name}'`);
    }
  }
}

/**
 * Rows [r0, r1) of a weight viewed as [rows, cols], transposed for `x · w`. A constant is sliced and
 * transposed at conversion time (one stored copy per slice); a run-time weight is sliced in the graph
 * and multiplied with transpose_b.
 */
function rowsT(cx: Cx, em: Em, v: Val, r0: number, r1: number, total: number, cols: number): { ref: string; tb: boolean } {
  if (v.value) {
    const t = v.value;
    const key = `rnnT:${r0}:${r1}:${cols}`;
    const known = cx.derived(t, key);
    if (known) return { ref: known, tb: false };
    const es = byteLength(t.dtype, 1);
    const part: Tensor = { name: t.name, dtype: t.dtype, shape: [r1 - r0, cols], data: t.data.subarray(r0 * cols * es, r1 * cols * es) };
    const ref = cx.weight(transposeTensor(part, [1, 0]), t.name ? `${t.name}/rnn_T${r0}_${r1}` : undefined);
    return { ref: cx.derived(t, key, ref)!, tb: false };
  }
  let ref = em.reshape(cx.ref(v), [-1, cols]);
  if (r0 !== 0 || r1 !== total) {
    ref = cx.add('StridedSlice', [ref, cx.i32([r0, 0]), cx.i32([r1, 0]), cx.i32([1, 1])], {
      ...em.T, Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(2), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(0),
    });
  }
  return { ref, tb: true };
}

function checkShape(cx: Cx, v: Val | undefined, what: string, want: number[]): void {
  if (!v?.shape) return;
  const ok = v.shape.length === want.length && v.shape.every((d, i) => d < 0 || want[i]! < 0 || d === want[i]);
  if (!ok) cx.fail(ErrorCodes.MALFORMED, `${what} has shape [${v.shape}], expected [${want}]`);
}

function convert(kind: Kind) {
  return (cx: Cx): void => {
    const X = cx.in(0);
    const W = cx.in(1);
    const R = cx.in(2);
    const B = cx.opt(3);
    const lens = cx.opt(4);
    const h0 = cx.opt(5);
    const c0 = kind === 'LSTM' ? cx.opt(6) : undefined;
    const P = kind === 'LSTM' ? cx.opt(7) : undefined;
    const dtype = X.dtype;
    const info = dtypeInfo(dtype);
    if (!info.isFloat || info.bits < 16) cx.unsupported(`${kind} on ${dtype} (float types only)`);

    const direction = cx.str('direction', 'forward');
    if (direction !== 'forward' && direction !== 'reverse' && direction !== 'bidirectional') cx.fail(ErrorCodes.MALFORMED, `direction '${direction}' (forward, reverse or bidirectional)`);
    const D = direction === 'bidirectional' ? 2 : 1;
    const layout = cx.opset >= 14 ? cx.int('layout', 0) : 0;
    if (layout !== 0 && layout !== 1) cx.fail(ErrorCodes.MALFORMED, `layout ${layout} (0 or 1)`);
    const G = GATES[kind];

    if (cx.rank(X, 'X') !== 3) cx.fail(ErrorCodes.MALFORMED, `X has rank ${X.shape!.length}, expected 3`);
    const S = X.shape![layout === 0 ? 0 : 1]!;
    const batch = X.shape![layout === 0 ? 1 : 0]!;
    if (S < 0) cx.unsupported(`${kind} with a dynamic sequence length (the time loop is unrolled: give X a static sequence dim)`);
    if (S === 0) cx.unsupported(`${kind} over an empty sequence`);
    if (S > MAX_RNN_STEPS) cx.unsupported(`${kind} over ${S} time steps (the time loop is unrolled; limit ${MAX_RNN_STEPS} steps)`);

    const Rs = R.shape;
    let H = cx.has('hidden_size') ? cx.int('hidden_size', 0) : Rs?.length === 3 ? Rs[2]! : -1;
    if (H < 0 && Rs?.length === 3 && Rs[1]! > 0) H = Rs[1]! / G;
    if (!Number.isInteger(H) || H < 0) cx.unsupported(`${kind} needs a static hidden size (hidden_size attribute or R's shape)`);
    if (H === 0 || H > MAX_HIDDEN) cx.fail(ErrorCodes.MALFORMED, `hidden_size ${H} (1..${MAX_HIDDEN})`);
    const I = W.shape?.length === 3 && W.shape[2]! >= 0 ? W.shape[2]! : X.shape![2]!;
    if (I < 0) cx.unsupported(`${kind} needs a static input size (X's or W's last dim)`);
    const GH = G * H;
    checkShape(cx, X, 'X', layout === 0 ? [S, -1, I] : [-1, S, I]);
    checkShape(cx, W, 'W', [D, GH, I]);
    checkShape(cx, R, 'R', [D, GH, H]);
    checkShape(cx, B, 'B', [D, 2 * GH]);
    checkShape(cx, h0, 'initial_h', layout === 0 ? [D, batch, H] : [batch, D, H]);
    checkShape(cx, c0, 'initial_c', layout === 0 ? [D, batch, H] : [batch, D, H]);
    checkShape(cx, P, 'P', [D, 3 * H]);
    checkShape(cx, lens, 'sequence_lens', [batch]);
    if (W.shape && W.shape.length !== 3) cx.fail(ErrorCodes.MALFORMED, `W has rank ${W.shape.length}, expected 3`);

    const clip = cx.has('clip') ? cx.float('clip', 0) : undefined;
    if (clip !== undefined && !(clip > 0)) cx.fail(ErrorCodes.MALFORMED, `clip ${clip} must be positive`);
    const lbr = kind === 'GRU' && cx.int('linear_before_reset', 0) !== 0;
    const inputForget = kind === 'LSTM' && cx.int('input_forget', 0) !== 0;
    const acts = activations(cx, kind, D);
    const em = new Em(cx, dtype, clip);

    // sequence_lens equal to S everywhere changes nothing; anything else masks the steps.
    let masks: string[] | undefined;
    let nonEmpty: string | undefined;
    if (lens) {
      const full = lens.value ? cx.constNums(lens, 'sequence_lens').every((n) => n === S) : false;
      if (!full) {
        let l = cx.ref(lens);
        if (lens.dtype !== 'int32') l = cx.add('Cast', [l], { SrcT: a.dt(lens.dtype), DstT: a.dt('int32'), Truncate: a.b(false) });
        // All steps' masks at once: [S, 1, 1] step indices < [1, B, 1] lengths → S masks [B, 1].
        const lens3 = cx.add('Reshape', [l, cx.i32([1, -1, 1])], { T: a.dt('int32'), Tshape: a.dt('int32') });
        const steps = cx.i32(Array.from({ length: S }, (_, t) => t), [S, 1, 1]);
        masks = em.unpack(cx.add('Less', [steps, lens3], { T: a.dt('int32') }), S, 0, { T: a.dt('bool') });
        // onnxruntime gives an empty sequence zero final states, not its initial ones.
        const lens2 = cx.add('Reshape', [l, cx.i32([-1, 1])], { T: a.dt('int32'), Tshape: a.dt('int32') });
        nonEmpty = cx.add('Less', [cx.i32([0], []), lens2], { T: a.dt('int32') });
      }
    }

    // ---- hoisted input projection: [S·B, I] · [I, D·G·H] (+ Wb + Rb where additive) ----------
    let xs = cx.ref(X);
    if (layout === 1) xs = cx.add('Transpose', [xs, cx.i32([1, 0, 2])], { ...em.T, Tperm: a.dt('int32') });
    let proj = em.matmul(em.reshape(xs, [-1, I]), rowsT(cx, em, W, 0, D * GH, D * GH, I));
    let rbh: string[] = [];
    if (B) {
      const [wb, rb] = em.unpack(em.reshape(cx.ref(B), [D, 2, GH]), 2, 1) as [string, string];
      let rbHoisted = rb;
      if (lbr) {
        // GRU with linear_before_reset: Rbh sits inside r ⊙ (H·Rhᵀ + Rbh), so it is not hoisted.
        const [rz, rr, rh] = em.split(rb, 3, 1) as [string, string, string];
        rbHoisted = cx.add('ConcatV2', [rz, rr, em.op('ZerosLike', [rh]), cx.i32([1], [])], { ...em.T, N: a.i(3), Tidx: a.dt('int32') });
        rbh = em.unpack(rh, D, 0);
      }
      proj = em.add(proj, em.reshape(em.add(wb, rbHoisted), [-1]));
    }
    const perDir = D === 1 ? [em.reshape(proj, [S, -1, GH])] : em.unpack(em.reshape(proj, [S, -1, D, GH]), D, 2);
    const xw = perDir.map((p) => em.unpack(p, S, 0));

    const stateAxis = layout === 0 ? 0 : 1;
    const hInit = h0 ? em.unpack(cx.ref(h0), D, stateAxis) : undefined;
    const cInit = c0 ? em.unpack(cx.ref(c0), D, stateAxis) : undefined;
    const peep = P ? em.unpack(cx.ref(P), D, 0).map((p) => em.split(p, 3, 0)) : undefined;

    /** Past a batch entry's length the state is held (zeros if none yet) and Y is 0. */
    const hold = (t: number, next: string, prev: string | undefined): string =>
      masks ? em.op('SelectV2', [masks[t]!, next, prev ?? em.op('ZerosLike', [next])]) : next;
    const yAt = (t: number, next: string): string => (masks ? em.op('SelectV2', [masks[t]!, next, em.op('ZerosLike', [next])]) : next);

    const ys: string[][] = [];
    const finalH: string[] = [];
    const finalC: string[] = [];
    for (let d = 0; d < D; d++) {
      const reverse = direction === 'reverse' || d === 1;
      em.scope = `d${d}`;
      const [f, g, hAct] = acts[d]! as [Act, Act, Act];
      // GRU without linear_before_reset multiplies r ⊙ H by Rh, so Rzr and Rh are used apart.
      const splitR = kind === 'GRU' && !lbr;
      const rAll = splitR ? undefined : rowsT(cx, em, R, d * GH, (d + 1) * GH, D * GH, H);
      const rZr = splitR ? rowsT(cx, em, R, d * GH, d * GH + 2 * H, D * GH, H) : undefined;
      const rH = splitR ? rowsT(cx, em, R, d * GH + 2 * H, (d + 1) * GH, D * GH, H) : undefined;
      let h = hInit?.[d];
      let c = cInit?.[d];
      const out = new Array<string>(S);
      for (let k = 0; k < S; k++) {
        const t = reverse ? S - 1 - k : k;
        em.scope = `d${d}/t${t}`;
        const x = xw[d]![t]!;
        let hNext: string;
        let cNext: string | undefined;
        if (kind === 'RNN') {
          hNext = em.act(em.clipped(h ? em.add(x, em.matmul(h, rAll!)) : x), f);
        } else if (kind === 'LSTM') {
          const [gi, go, gf, gc] = em.split(h ? em.add(x, em.matmul(h, rAll!)) : x, 4, 1) as [string, string, string, string];
          const pk = peep?.[d];
          const i = em.act(em.clipped(pk && c ? em.add(gi, em.mul(pk[0]!, c)) : gi), f);
          const cand = em.act(em.clipped(gc), g);
          cNext = em.mul(i, cand);
          if (c) {
            const fg = inputForget ? em.sub(em.s(1), i) : em.act(em.clipped(pk ? em.add(gf, em.mul(pk[2]!, c)) : gf), f);
            cNext = em.add(em.mul(fg, c), cNext);
          }
          const o = em.act(em.clipped(pk ? em.add(go, em.mul(pk[1]!, cNext)) : go), f);
          hNext = em.mul(o, em.act(cNext, hAct));
        } else {
          const [xz, xr, xh] = em.split(x, 3, 1) as [string, string, string];
          let z: string;
          let cand: string;
          if (!h) {
            z = em.act(em.clipped(xz), f);
            // H₀ = 0: the recurrent terms vanish except Rbh, which r still scales.
            const rb = lbr ? rbh[d] : undefined;
            cand = em.act(em.clipped(rb ? em.add(xh, em.mul(em.act(em.clipped(xr), f), rb)) : xh), g);
            hNext = em.mul(em.sub(em.s(1), z), cand);
          } else {
            if (lbr) {
              const [hz, hr, hhRaw] = em.split(em.matmul(h, rAll!), 3, 1) as [string, string, string];
              z = em.act(em.clipped(em.add(xz, hz)), f);
              const r = em.act(em.clipped(em.add(xr, hr)), f);
              const hh = rbh[d] ? em.add(hhRaw, rbh[d]!) : hhRaw;
              cand = em.act(em.clipped(em.add(xh, em.mul(r, hh))), g);
            } else {
              const [hz, hr] = em.split(em.matmul(h, rZr!), 2, 1) as [string, string];
              z = em.act(em.clipped(em.add(xz, hz)), f);
              const r = em.act(em.clipped(em.add(xr, hr)), f);
              cand = em.act(em.clipped(em.add(xh, em.matmul(em.mul(r, h), rH!))), g);
            }
            // (1 − z) ⊙ h̃ + z ⊙ H, with one multiply.
            hNext = em.add(cand, em.mul(z, em.sub(h, cand)));
          }
        }
        if (cx.node.output[0]) out[t] = yAt(t, hNext);
        h = hold(t, hNext, h);
        if (cNext !== undefined) c = hold(t, cNext, c);
      }
      ys.push(out);
      const final = (v: string): string => (nonEmpty ? em.op('SelectV2', [nonEmpty, v, em.op('ZerosLike', [v])]) : v);
      finalH.push(final(h!));
      if (c !== undefined) finalC.push(final(c));
    }

    em.scope = '';
    if (cx.node.output[0]) {
      // Y: [S, D, B, H] (layout 0) or [B, S, D, H] (layout 1).
      const perD = ys.map((o) => em.pack(o, layout === 0 ? 0 : 1));
      cx.outRef(0, em.pack(perD, layout === 0 ? 1 : 2), dtype, layout === 0 ? [S, D, batch, H] : [batch, S, D, H]);
    }
    const stateShape = layout === 0 ? [D, batch, H] : [batch, D, H];
    if (cx.node.output[1]) cx.outRef(1, em.pack(finalH, stateAxis), dtype, stateShape);
    if (kind === 'LSTM' && cx.node.output[2]) cx.outRef(2, em.pack(finalC, stateAxis), dtype, stateShape);
  };
}

register('LSTM', convert('LSTM'));
register('GRU', convert('GRU'));
register('RNN', convert('RNN'));
