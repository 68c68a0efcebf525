/**
 * Signal ops: Hann/Hamming/Blackman windows, MelWeightMatrix, DFT and STFT. TF's FFT ops need
 * complex64 tensors, which our value and signature plumbing does not carry, so a transform is a
 * product with cos/sin matrices (float32 MatMul: exact enough for the lengths these ops see). Those
 * matrices are float64-computed constants when the length is static, and built in the graph from
 * Range/FloorMod/Cos/Sin when it is only known at run time (the angle is 2π·((k·n) mod L)/L, so it
 * stays in [0, 2π) and float32 keeps its precision).
 */
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes } from '../../../core/errors.js';
import { onnxDtype, type Cx, type Val } from '../context.js';
import { register } from '../registry.js';
import { a } from '../tf-attr.js';
import { numbersTensor, tensorNumbers } from '../values.js';

/** Largest transform length whose matrices are built (L × K float32 values each). */
const MAX_DFT_LENGTH = 8192;
/** Largest constant matrix (DFT cos/sin, mel filters) built at conversion time: 16 MB of float32. */
const MAX_MATRIX_ELEMENTS = 1 << 22;
const F32 = { T: a.dt('float32') };
const I32 = { T: a.dt('int32') };

function cast(cx: Cx, ref: string, from: DType, to: DType): string {
  if (from === to) return ref;
  return cx.add('Cast', [ref], { SrcT: a.dt(from), DstT: a.dt(to), Truncate: a.b(false) });
}

function outDtype(cx: Cx, def: DType = 'float32'): DType {
  return cx.has('output_datatype') ? onnxDtype(cx.int('output_datatype', 1), { path: cx.opts.path, tensor: cx.node.output[0] ?? '' }) : def;
}

/** A float64-computed constant of `dtype` (built as float32 and cast when numbersTensor cannot hold `dtype`). */
function floatConst(cx: Cx, dtype: DType, shape: number[], values: number[]): Val {
  if (dtype === 'float32' || dtype === 'float64') return { dtype, shape, value: numbersTensor('', dtype, shape, values) };
  const ref = cast(cx, cx.constNode(numbersTensor('', 'float32', shape, values)), 'float32', dtype);
  return { dtype, shape, ref };
}

/** A scalar int input as an int32 scalar tensor, and its value when known. */
function intScalar(cx: Cx, v: Val, what: string): { ref: string; value?: number } {
  if (v.value) {
    const n = tensorNumbers(v.value);
    if (n.length !== 1) cx.fail(ErrorCodes.MALFORMED, `${what} must be a scalar, has ${n.length} elements`);
    return { ref: cx.scalar('int32', n[0]!), value: n[0]! };
  }
  const r = cast(cx, cx.ref(v), v.dtype, 'int32');
  return { ref: v.shape && v.shape.length > 0 ? cx.add('Reshape', [r, cx.i32([], [0])], { ...I32, Tshape: a.dt('int32') }) : r };
}

function range(cx: Cx, n: string): string {
  return cx.add('Range', [cx.scalar('int32', 0), n, cx.scalar('int32', 1)], { Tidx: a.dt('int32') });
}

function expand(cx: Cx, ref: string, dtype: DType, axis: number): string {
  return cx.add('ExpandDims', [ref, cx.i32([axis], [])], { T: a.dt(dtype), Tdim: a.dt('int32') });
}

// ---- windows -----------------------------------------------------------------------------------

/** w[n] = a0 − a1·cos(2πn/D) + a2·cos(4πn/D), D = N (periodic) or N − 1 (symmetric). */
const WINDOWS: Record<string, [number, number, number]> = {
  HannWindow: [0.5, 0.5, 0],
  HammingWindow: [25 / 46, 21 / 46, 0],
  BlackmanWindow: [0.42, 0.5, 0.08],
};

/** Largest window folded into a constant (bigger ones are built in the graph). */
const MAX_FOLD_WINDOW = 1 << 16;

register(Object.keys(WINDOWS), (cx) => {
  const [a0, a1, a2] = WINDOWS[cx.node.opType]!;
  const periodic = cx.int('periodic', 1) !== 0;
  const out = outDtype(cx);
  const size = intScalar(cx, cx.in(0), 'window size');
  if (size.value !== undefined && size.value >= 0 && size.value <= MAX_FOLD_WINDOW) {
    const N = size.value;
    const D = periodic ? N : N - 1;
    const w = Array.from({ length: N }, (_, n) => a0 - a1 * Math.cos((2 * Math.PI * n) / D) + a2 * Math.cos((4 * Math.PI * n) / D));
    return cx.out(0, floatConst(cx, out, [N], w));
  }
  if (size.value !== undefined && size.value < 0) return cx.fail(ErrorCodes.MALFORMED, `window size ${size.value}`);
  const n = cast(cx, range(cx, size.ref), 'int32', 'float32');
  let D = cast(cx, size.ref, 'int32', 'float32');
  if (!periodic) D = cx.add('Sub', [D, cx.scalar('float32', 1)], F32);
  const theta = cx.add('RealDiv', [cx.add('Mul', [n, cx.scalar('float32', 2 * Math.PI)], F32), D], F32);
  let w = cx.add('Sub', [cx.scalar('float32', a0), cx.add('Mul', [cx.add('Cos', [theta], F32), cx.scalar('float32', a1)], F32)], F32);
  if (a2 !== 0) w = cx.add('AddV2', [w, cx.add('Mul', [cx.add('Cos', [cx.add('Mul', [theta, cx.scalar('float32', 2)], F32)], F32), cx.scalar('float32', a2)], F32)], F32);
  cx.outRef(0, cast(cx, w, 'float32', out), out, [size.value ?? -1]);
});

// ---- MelWeightMatrix ---------------------------------------------------------------------------

/** As the ONNX reference: triangular filters between mel-spaced FFT bins. */
function melWeights(mels: number, dftLength: number, sampleRate: number, lo: number, hi: number): number[] {
  const bins = Math.floor(dftLength / 2) + 1;
  const toMel = (hz: number): number => 2595 * Math.log10(1 + hz / 700);
  const lowMel = toMel(lo);
  // Divided by mels + 2 (the number of edges), as the reference implementation does.
  const step = (toMel(hi) - lowMel) / (mels + 2);
  const edges = Array.from({ length: mels + 2 }, (_, i) => Math.floor(((dftLength + 1) * 700 * (10 ** ((i * step + lowMel) / 2595) - 1)) / sampleRate));
  const out = new Array<number>(bins * mels).fill(0);
  const set = (j: number, i: number, v: number): void => {
    if (j >= 0 && j < bins) out[j * mels + i] = v;
  };
  for (let i = 0; i < mels; i++) {
    const [lower, center, higher] = [edges[i]!, edges[i + 1]!, edges[i + 2]!];
    // Loops clamped to the output rows: hostile edges (a tiny sample rate) must not spin for billions of steps.
    if (center === lower) set(center, i, 1);
    else for (let j = Math.max(lower, 0); j <= Math.min(center, bins - 1); j++) set(j, i, (j - lower) / (center - lower));
    if (higher > center) for (let j = Math.max(center, 0); j < Math.min(higher, bins); j++) set(j, i, (higher - j) / (higher - center));
  }
  return out;
}

register('MelWeightMatrix', (cx) => {
  const ins = [0, 1, 2, 3, 4].map((i) => cx.in(i));
  const out = outDtype(cx);
  if (ins.some((v) => !v.value)) return cx.outRef(0, cast(cx, melGraph(cx, ins), 'float32', out), out, [-1, -1]);
  const [mels, dftLength, sampleRate, lo, hi] = ins.map((v, i) => {
    const n = tensorNumbers(v.value!);
    if (n.length !== 1) cx.fail(ErrorCodes.MALFORMED, `MelWeightMatrix input ${i} must be a scalar`);
    return n[0]!;
  }) as [number, number, number, number, number];
  if (!(mels > 0 && dftLength > 0 && sampleRate > 0) || mels * (dftLength / 2 + 1) > MAX_MATRIX_ELEMENTS) {
    return cx.fail(ErrorCodes.MALFORMED, `MelWeightMatrix num_mel_bins ${mels}, dft_length ${dftLength}, sample_rate ${sampleRate}`);
  }
  cx.out(0, floatConst(cx, out, [Math.floor(dftLength / 2) + 1, mels], melWeights(mels, dftLength, sampleRate, lo, hi)));
});

/**
 * The same filters built in the graph (float32) when the parameters are run-time values: with
 * j the spectrogram bin (rows) and lower/center/higher each filter's edges (columns),
 * w = (higher − j)/(higher − center) on [center, higher), else (j − lower)/(center − lower) on
 * [lower, center] (1 at a zero-width left half), else 0 — the reference's two loops, in order.
 */
function melGraph(cx: Cx, ins: Val[]): string {
  const fl = (v: Val): string => {
    const r = cast(cx, cx.ref(v), v.dtype, 'float32');
    return v.shape && v.shape.length > 0 ? cx.add('Reshape', [r, cx.i32([], [0])], { ...F32, Tshape: a.dt('int32') }) : r;
  };
  const M = intScalar(cx, ins[0]!, 'num_mel_bins').ref;
  const L = intScalar(cx, ins[1]!, 'dft_length').ref;
  const [sr, lo, hi] = [fl(ins[2]!), fl(ins[3]!), fl(ins[4]!)];
  const f = (op: string, ...xs: string[]): string => cx.add(op, xs, F32);
  const k = (v: number): string => cx.scalar('float32', v);
  const toMel = (hz: string): string => f('Mul', f('Log', f('AddV2', k(1), f('RealDiv', hz, k(700)))), k(2595 / Math.LN10));
  const lowMel = toMel(lo);
  const Mf = cast(cx, M, 'int32', 'float32');
  const step = f('RealDiv', f('Sub', toMel(hi), lowMel), f('AddV2', Mf, k(2)));
  const i = cast(cx, range(cx, cx.add('AddV2', [M, cx.scalar('int32', 2)], I32)), 'int32', 'float32');
  const hz = f('Mul', f('Sub', f('Exp', f('Mul', f('AddV2', f('Mul', i, step), lowMel), k(Math.LN10 / 2595))), k(1)), k(700));
  const Lf = cast(cx, L, 'int32', 'float32');
  const edges = f('Floor', f('RealDiv', f('Mul', f('AddV2', Lf, k(1)), hz), sr));
  const edge = (start: number): string => expand(cx, cx.add('Slice', [edges, expand(cx, cx.scalar('int32', start), 'int32', 0), expand(cx, M, 'int32', 0)], { ...F32, Index: a.dt('int32') }), 'float32', 0);
  const [lower, center, higher] = [edge(0), edge(1), edge(2)];
  const bins = cx.add('AddV2', [cx.add('FloorDiv', [L, cx.scalar('int32', 2)], I32), cx.scalar('int32', 1)], I32);
  const j = expand(cx, cast(cx, range(cx, bins), 'int32', 'float32'), 'float32', 1);
  const leftW = f('Sub', center, lower);
  const zeroLeft = cast(cx, cx.add('Equal', [leftW, k(0)], { ...F32, incompatible_shape_error: a.b(true) }), 'bool', 'float32');
  const up = f('RealDiv', f('AddV2', f('Sub', j, lower), zeroLeft), f('AddV2', leftW, zeroLeft));
  const down = f('RealDiv', f('Sub', higher, j), f('Maximum', f('Sub', higher, center), k(1)));
  const and = (p: string, q: string): string => cx.add('LogicalAnd', [p, q]);
  const cmp = (op: string, p: string, q: string): string => cx.add(op, [p, q], F32);
  const inDown = and(cmp('GreaterEqual', j, center), cmp('Less', j, higher));
  const inUp = and(cmp('GreaterEqual', j, lower), cmp('LessEqual', j, center));
  return f('SelectV2', inDown, down, f('SelectV2', inUp, up, cx.add('ZerosLike', [down], F32)));
}

// ---- DFT core ----------------------------------------------------------------------------------

interface Spectrum {
  /** [..., K] real and imaginary parts. */
  re: string;
  im: string;
}

/**
 * cos/sin matrices [N, K] of a length-L transform over the first N input samples (rows n ≥ L are
 * zero: truncation; N < L is zero padding, which needs no rows). Forward: Y = Σ x·e^{−iθ};
 * inverse: Y = Σ x·e^{+iθ} / L.
 */
function staticMatrices(cx: Cx, N: number, L: number, K: number, inverse: boolean): { cos: string; sin: string } {
  if (N * K > MAX_MATRIX_ELEMENTS) cx.fail(ErrorCodes.LIMIT, `a length-${L} transform of ${N} samples into ${K} bins needs ${N}×${K} matrices (limit ${MAX_MATRIX_ELEMENTS} elements)`);
  const c: number[] = new Array<number>(N * K).fill(0);
  const s: number[] = new Array<number>(N * K).fill(0);
  const scale = inverse ? 1 / L : 1;
  for (let n = 0; n < Math.min(N, L); n++) {
    for (let k = 0; k < K; k++) {
      const th = (2 * Math.PI * ((k * n) % L)) / L;
      c[n * K + k] = Math.cos(th) * scale;
      s[n * K + k] = Math.sin(th) * scale;
    }
  }
  return { cos: cx.constNode(numbersTensor('', 'float32', [N, K], c)), sin: cx.constNode(numbersTensor('', 'float32', [N, K], s)) };
}

/** The same matrices for a length known only at run time (N = L, int32 scalars). */
function runtimeMatrices(cx: Cx, L: string, K: string, inverse: boolean): { cos: string; sin: string } {
  const n = expand(cx, range(cx, L), 'int32', 1);
  const k = expand(cx, range(cx, K), 'int32', 0);
  const kn = cx.add('FloorMod', [cx.add('Mul', [n, k], I32), L], I32);
  const Lf = cast(cx, L, 'int32', 'float32');
  const theta = cx.add('RealDiv', [cx.add('Mul', [cast(cx, kn, 'int32', 'float32'), cx.scalar('float32', 2 * Math.PI)], F32), Lf], F32);
  let cos = cx.add('Cos', [theta], F32);
  let sin = cx.add('Sin', [theta], F32);
  if (inverse) {
    cos = cx.add('RealDiv', [cos, Lf], F32);
    sin = cx.add('RealDiv', [sin, Lf], F32);
  }
  return { cos, sin };
}

/** x [..., N] (real, optional imaginary) times the matrices: the transform along the last axis. */
function transform(cx: Cx, re: string, im: string | undefined, m: { cos: string; sin: string }, inverse: boolean): Spectrum {
  const mm = (x: string, w: string): string => cx.add('BatchMatMulV2', [x, w], { ...F32, adj_x: a.b(false), adj_y: a.b(false) });
  // Row vectors [..., 1, N] so BatchMatMulV2 broadcasts the [N, K] matrix over the leading dims.
  const xr = expand(cx, re, 'float32', -2);
  const xi = im ? expand(cx, im, 'float32', -2) : undefined;
  // forward: re = xr·C + xi·S, im = xi·C − xr·S; inverse: re = xr·C − xi·S, im = xi·C + xr·S.
  const rc = mm(xr, m.cos);
  const rs = mm(xr, m.sin);
  let yr = rc;
  let yi = inverse ? rs : cx.add('Neg', [rs], F32);
  if (xi) {
    const ic = mm(xi, m.cos);
    const is = mm(xi, m.sin);
    yr = cx.add(inverse ? 'Sub' : 'AddV2', [rc, is], F32);
    yi = cx.add('AddV2', [ic, yi], F32);
  }
  const sq = (x: string): string => cx.add('Squeeze', [x], { ...F32, squeeze_dims: a.ints([-2]) });
  return { re: sq(yr), im: sq(yi) };
}

/** [..., K] parts → [..., K, 2]. */
function interleave(cx: Cx, s: Spectrum): string {
  return cx.add('ConcatV2', [expand(cx, s.re, 'float32', -1), expand(cx, s.im, 'float32', -1), cx.i32([-1], [])], { ...F32, N: a.i(2), Tidx: a.dt('int32') });
}

/** Component `c` (0 real, 1 imaginary) of a [..., 2] tensor, dropping the last axis. */
function component(cx: Cx, x: string, rank: number, c: number): string {
  return cx.add('GatherV2', [x, cx.i32([c], []), cx.i32([rank - 1], [])], { batch_dims: a.i(0), Tparams: a.dt('float32'), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
}

function checkFloat(cx: Cx, v: Val, what: string): void {
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(v.dtype)) cx.unsupported(`${what} of ${v.dtype} values`);
}

// ---- DFT ---------------------------------------------------------------------------------------

register('DFT', (cx) => {
  const x = cx.in(0);
  checkFloat(cx, x, 'DFT');
  const r = cx.rank(x);
  const shape = x.shape!;
  const c = shape[r - 1]!;
  if (r < 2 || (c !== 1 && c !== 2)) return cx.unsupported(`DFT input [${shape.join(',')}]: the last dim must be 1 (real) or 2 (complex)`);
  let axisRaw: number;
  if (cx.opset >= 20) {
    const av = cx.opt(2);
    axisRaw = av ? cx.constNums(av, 'DFT axis')[0] ?? -2 : -2;
  } else axisRaw = cx.int('axis', 1);
  const axis = axisRaw < 0 ? axisRaw + r : axisRaw;
  if (axis < 0 || axis >= r - 1) return cx.fail(ErrorCodes.MALFORMED, `DFT axis ${axisRaw} out of range for rank ${r} (the last dim holds the complex parts)`);
  const inverse = cx.int('inverse', 0) !== 0;
  const onesided = cx.int('onesided', 0) !== 0;
  const N = shape[axis]!;
  const lenV = cx.opt(1);
  const L = lenV ? cx.constNums(lenV, 'DFT dft_length')[0]! : N;
  if (onesided && inverse) return cx.unsupported('DFT with both onesided and inverse');
  // Unknown length along the axis (and no dft_length): the matrices are built in the graph from it.
  const live = N < 0 && !lenV;
  if (N < 0 && lenV) return cx.unsupported('DFT with a dft_length along a dim of unknown size');
  if (!live && (!(L >= 1) || L > MAX_DFT_LENGTH)) return cx.fail(ErrorCodes.LIMIT, `DFT length ${L} (1 to ${MAX_DFT_LENGTH} supported)`);
  const K = live ? -1 : onesided ? Math.floor(L / 2) + 1 : L;
  // The transformed axis goes next to the complex axis, then back.
  const perm = [...[...Array(r - 1).keys()].filter((k) => k !== axis), axis, r - 1];
  const inv = new Array<number>(r);
  perm.forEach((p, i) => (inv[p] = i));
  const identity = perm.every((p, i) => p === i);
  let xf = cast(cx, cx.ref(x), x.dtype, 'float32');
  if (!identity) xf = cx.add('Transpose', [xf, cx.i32(perm)], { ...F32, Tperm: a.dt('int32') });
  const re = component(cx, xf, r, 0);
  const im = c === 2 ? component(cx, xf, r, 1) : undefined;
  let m: { cos: string; sin: string };
  if (live) {
    const Lr = cx.add('StridedSlice', [cx.add('Shape', [xf], { ...F32, out_type: a.dt('int32') }), cx.i32([r - 2]), cx.i32([r - 1]), cx.i32([1])], {
      ...I32, Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
    });
    m = runtimeMatrices(cx, Lr, onesided ? cx.add('AddV2', [cx.add('FloorDiv', [Lr, cx.scalar('int32', 2)], I32), cx.scalar('int32', 1)], I32) : Lr, inverse);
  } else m = staticMatrices(cx, N, L, K, inverse);
  let y = interleave(cx, transform(cx, re, im, m, inverse));
  if (!identity) y = cx.add('Transpose', [y, cx.i32(inv)], { ...F32, Tperm: a.dt('int32') });
  const outShape = [...shape];
  outShape[axis] = K;
  outShape[r - 1] = 2;
  cx.outRef(0, cast(cx, y, 'float32', x.dtype), x.dtype, outShape);
});

// ---- STFT --------------------------------------------------------------------------------------

register('STFT', (cx) => {
  const signal = cx.in(0);
  checkFloat(cx, signal, 'STFT');
  const r = cx.rank(signal);
  const shape = signal.shape!;
  const c = r === 3 ? shape[2]! : 1;
  if ((r !== 2 && r !== 3) || (c !== 1 && c !== 2)) return cx.unsupported(`STFT signal [${shape.join(',')}] (expects [batch, length, 1 or 2])`);
  const onesided = cx.int('onesided', 1) !== 0;
  const step = intScalar(cx, cx.in(1), 'frame_step');
  const window = cx.opt(2);
  const lenV = cx.opt(3);
  let L: { ref: string; value?: number };
  if (lenV) L = intScalar(cx, lenV, 'frame_length');
  else if (window) {
    const w = window.shape?.length === 1 ? window.shape[0]! : -1;
    if (w < 0) return cx.unsupported('STFT window of unknown length without frame_length');
    L = { ref: cx.scalar('int32', w), value: w };
  } else return cx.fail(ErrorCodes.MALFORMED, 'STFT needs a window or a frame_length');
  if (L.value !== undefined && (L.value < 1 || L.value > MAX_DFT_LENGTH)) return cx.fail(ErrorCodes.LIMIT, `STFT frame length ${L.value} (1 to ${MAX_DFT_LENGTH} supported)`);
  if (step.value !== undefined && step.value < 1) return cx.fail(ErrorCodes.MALFORMED, `STFT frame_step ${step.value}`);
  const wLen = window?.shape?.length === 1 ? window.shape[0]! : -1;
  if (wLen >= 0 && L.value !== undefined && wLen !== L.value) return cx.fail(ErrorCodes.MALFORMED, `STFT window of ${wLen} samples for frame length ${L.value}`);
  const T = shape[1]!;
  if (T >= 0 && L.value !== undefined && T < L.value) return cx.fail(ErrorCodes.MALFORMED, `STFT signal of ${T} samples is shorter than the frame length ${L.value}`);
  const Tref = T >= 0 ? cx.scalar('int32', T) : cx.add('StridedSlice', [cx.add('Shape', [cx.ref(signal)], { T: a.dt(signal.dtype), out_type: a.dt('int32') }), cx.i32([1]), cx.i32([2]), cx.i32([1])], {
    ...I32, Index: a.dt('int32'), begin_mask: a.i(0), end_mask: a.i(0), ellipsis_mask: a.i(0), new_axis_mask: a.i(0), shrink_axis_mask: a.i(1),
  });
  // frames = ⌊(T − L) / step⌋ + 1; frame f covers samples f·step … f·step + L − 1.
  const F = cx.add('AddV2', [cx.add('FloorDiv', [cx.add('Sub', [Tref, L.ref], I32), step.ref], I32), cx.scalar('int32', 1)], I32);
  const idx = cx.add('AddV2', [expand(cx, cx.add('Mul', [range(cx, F), step.ref], I32), 'int32', 1), expand(cx, range(cx, L.ref), 'int32', 0)], I32);
  const sf = cast(cx, cx.ref(signal), signal.dtype, 'float32');
  const frames = (part: string): string => {
    let fr = cx.add('GatherV2', [part, idx, cx.i32([1], [])], { batch_dims: a.i(0), Tparams: a.dt('float32'), Tindices: a.dt('int32'), Taxis: a.dt('int32') });
    if (window) fr = cx.add('Mul', [fr, cast(cx, cx.ref(window), window.dtype, 'float32')], F32);
    return fr;
  };
  const re = frames(r === 3 ? component(cx, sf, 3, 0) : sf);
  const im = c === 2 ? frames(component(cx, sf, 3, 1)) : undefined;
  const Kv = L.value !== undefined ? (onesided ? Math.floor(L.value / 2) + 1 : L.value) : undefined;
  const m = L.value !== undefined
    ? staticMatrices(cx, L.value, L.value, Kv!, false)
    : runtimeMatrices(cx, L.ref, onesided ? cx.add('AddV2', [cx.add('FloorDiv', [L.ref, cx.scalar('int32', 2)], I32), cx.scalar('int32', 1)], I32) : L.ref, false);
  const y = interleave(cx, transform(cx, re, im, m, false));
  const nFrames = T >= 0 && L.value !== undefined && step.value !== undefined ? Math.floor((T - L.value) / step.value) + 1 : -1;
  cx.outRef(0, cast(cx, y, 'float32', signal.dtype), signal.dtype, [shape[0]!, nFrames, Kv ?? -1, 2]);
});
