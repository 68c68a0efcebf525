/**
 * Convolution and pooling on the WASM kernels (assembly/conv.ts), NCHW float32. 1-D is 2-D with
 * H = 1 (the engine ops map it). Geometry is resolved by the caller (ONNX attribute rules live in
 * src/engine/ops); these wrappers only check that it is self-consistent, so a bad shape is an
 * E_KERNEL_ARG here instead of an out-of-bounds write in linear memory.
 *
 * Convolution runs one image at a time: the image is copied into the arena, laid out as columns
 * (im2col) and multiplied by the weights with `gemmAt` on arena pointers, so the column buffer
 * never leaves WASM memory and the arena holds one image's worth of buffers whatever the batch.
 */
import type { Kernels } from './loader.js';
import { gemmAt } from './gemm.js';
import { windowElements, withArena } from './window.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

/** 2-D window geometry (pads are begin/end per axis; out sizes already resolved). */
export interface Geom2d {
  H: number; W: number;
  kH: number; kW: number;
  padT: number; padL: number; padB: number; padR: number;
  sH: number; sW: number;
  dH: number; dW: number;
  oH: number; oW: number;
}

/** Convolution: input channels C, output channels M, `group` groups. */
export interface ConvGeom extends Geom2d {
  C: number; M: number; group: number;
}

const I32 = 0x7fffffff;

function bad(msg: string): never {
  throw new ModelsmithError(ErrorCodes.KERNEL_ARG, msg);
}

/** Every field a positive (pads: non-negative) i32, and the output size the one the windows give. */
export function checkGeom(g: Geom2d, what: string): void {
  const pos: (keyof Geom2d)[] = ['H', 'W', 'kH', 'kW', 'sH', 'sW', 'dH', 'dW', 'oH', 'oW'];
  for (const k of pos) if (!Number.isSafeInteger(g[k]) || g[k] < 1 || g[k] > I32) bad(`${what}: ${k} must be a positive integer, got ${g[k]}`);
  for (const k of ['padT', 'padL', 'padB', 'padR'] as const) {
    if (!Number.isSafeInteger(g[k]) || g[k] < 0 || g[k] > I32) bad(`${what}: ${k} must be a non-negative integer, got ${g[k]}`);
  }
  // The last window must start inside the padded input; windows may overhang the end padding (ceil_mode).
  if ((g.oH - 1) * g.sH - g.padT >= g.H + g.padB || (g.oW - 1) * g.sW - g.padL >= g.W + g.padR) {
    bad(`${what}: output ${g.oH}x${g.oW} has windows starting beyond the padded input ${g.H}x${g.W}`);
  }
  if (g.H * g.W > I32 || g.oH * g.oW > I32 || g.kH * g.kW > I32) bad(`${what}: plane too large for the kernels`);
  // The kernels compute input coordinates as i32 (o·s − pad + k·d): every such term must fit.
  const extent = (o: number, s: number, k: number, d: number, pb: number, pe: number, n: number): number => (o - 1) * s + (k - 1) * d + pb + pe + n + s;
  if (extent(g.oH, g.sH, g.kH, g.dH, g.padT, g.padB, g.H) > I32 || extent(g.oW, g.sW, g.kW, g.dW, g.padL, g.padR, g.W) > I32) {
    bad(`${what}: window geometry exceeds the 32-bit coordinate range of the kernels`);
  }
}

function checkConv(g: ConvGeom): void {
  checkGeom(g, 'conv');
  for (const k of ['C', 'M', 'group'] as const) if (!Number.isSafeInteger(g[k]) || g[k] < 1 || g[k] > I32) bad(`conv: ${k} must be a positive integer, got ${g[k]}`);
  if (g.C % g.group || g.M % g.group) bad(`conv: ${g.C} input and ${g.M} output channels do not divide into ${g.group} groups`);
  if ((g.C / g.group) * g.kH * g.kW * g.oH * g.oW * 4 > 2 ** 32) bad('conv: column buffer of one image and group exceeds 4 GiB');
}

/**
 * Largest result the wrappers allocate, in elements (4 GiB of float32). Pads and strides come from
 * the model, so an absurd geometry must end in E_LIMIT rather than a RangeError from a typed array.
 */
export const MAX_RESULT_ELEMENTS = 2 ** 30;

function result(n: number, what: string): Float32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_RESULT_ELEMENTS) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `${what}: ${n} elements exceeds the ${MAX_RESULT_ELEMENTS}-element limit for one value`);
  }
  return new Float32Array(n);
}

function checkLen(a: ArrayLike<number>, n: number, what: string): void {
  if (a.length !== n) bad(`${what}: expected ${n} elements, got ${a.length}`);
}

function geomArgs(g: Geom2d): number[] {
  return [g.kH, g.kW, g.padT, g.padL, g.sH, g.sW, g.dH, g.dW, g.oH, g.oW];
}

/** im2col on arena pointers for C channels of one image. */
export function im2colAt(K: Kernels, x: number, col: number, C: number, g: Geom2d): void {
  K.raw.im2col_f32(x, col, C, g.H, g.W, ...geomArgs(g));
}

/** col2im on arena pointers; accumulates into dx. */
export function col2imAt(K: Kernels, col: number, dx: number, C: number, g: Geom2d): void {
  K.raw.col2im_f32(col, dx, C, g.H, g.W, ...geomArgs(g));
}

/** Column matrix [C·kH·kW, oH·oW] of one image [C, H, W] (copies; for tests and tools). */
export function im2col(K: Kernels, x: Float32Array, C: number, g: Geom2d): Float32Array {
  checkGeom(g, 'im2col');
  checkLen(x, C * g.H * g.W, 'im2col input');
  const n = C * g.kH * g.kW * g.oH * g.oW;
  return withArena(K, () => {
    const px = K.alloc(x.length * 4);
    const pc = K.alloc(n * 4);
    K.f32(px, x.length).set(x);
    im2colAt(K, px, pc, C, g);
    return K.f32(pc, n).slice();
  });
}

/** Adjoint of `im2col`: image [C, H, W] from a column matrix (copies). */
export function col2im(K: Kernels, col: Float32Array, C: number, g: Geom2d): Float32Array {
  checkGeom(g, 'col2im');
  checkLen(col, C * g.kH * g.kW * g.oH * g.oW, 'col2im input');
  const n = C * g.H * g.W;
  return withArena(K, () => {
    const pc = K.alloc(col.length * 4);
    const px = K.alloc(n * 4);
    K.f32(pc, col.length).set(col);
    K.f32(px, n).fill(0);
    col2imAt(K, pc, px, C, g);
    return K.f32(px, n).slice();
  });
}

/** Whether the column matrix of an image is the image itself (1×1 kernel, stride 1, no padding). */
function isPointwise(g: Geom2d): boolean {
  return g.kH === 1 && g.kW === 1 && g.sH === 1 && g.sW === 1 && g.padT === 0 && g.padL === 0 && g.oH === g.H && g.oW === g.W;
}

/** Y[N, M, oH, oW] = conv(X[N, C, H, W], W[M, C/group, kH, kW]) + B[M]. */
export function conv2dForward(K: Kernels, x: Float32Array, w: Float32Array, b: Float32Array | undefined, N: number, g: ConvGeom): Float32Array {
  checkConv(g);
  const { C, M, group } = g;
  const Cg = C / group, Mg = M / group;
  const kk = Cg * g.kH * g.kW;
  const inImg = C * g.H * g.W, outPlane = g.oH * g.oW, outImg = M * outPlane;
  checkLen(x, N * inImg, 'conv input');
  checkLen(w, M * kk, 'conv weight');
  if (b) checkLen(b, M, 'conv bias');
  const y = result(N * outImg, 'conv output');
  const direct = isPointwise(g);
  withArena(K, () => {
    const pw = K.alloc(w.length * 4);
    const px = K.alloc(inImg * 4);
    const pcol = direct ? 0 : K.alloc(kk * outPlane * 4);
    const py = K.alloc(outImg * 4);
    K.f32(pw, w.length).set(w);
    for (let n = 0; n < N; n++) {
      K.f32(px, inImg).set(x.subarray(n * inImg, (n + 1) * inImg));
      if (b) {
        const yv = K.f32(py, outImg);
        for (let m = 0; m < M; m++) yv.fill(b[m]!, m * outPlane, (m + 1) * outPlane);
      }
      for (let gi = 0; gi < group; gi++) {
        const xg = px + gi * Cg * g.H * g.W * 4;
        const src = direct ? xg : pcol;
        if (!direct) im2colAt(K, xg, pcol, Cg, g);
        gemmAt(K, pw + gi * Mg * kk * 4, src, py + gi * Mg * outPlane * 4, Mg, outPlane, kk, { beta: b ? 1 : 0 });
      }
      y.set(K.f32(py, outImg), n * outImg);
    }
  });
  return y;
}

export interface ConvGrads {
  dx?: Float32Array;
  dw?: Float32Array;
  db?: Float32Array;
}

/**
 * Gradients of `conv2dForward` given dY: dX = col2im(Wᵀ·dY), dW = Σ_n dY·colᵀ, dB = Σ_n,s dY.
 * The columns are recomputed from X per image rather than kept from the forward pass: im2col is
 * cheap next to the GEMMs and keeping them would cost kH·kW times the activations.
 * `x` is only read for dW (ConvTranspose uses the dX part alone as its forward pass).
 */
export function conv2dBackward(
  K: Kernels, x: Float32Array | undefined, w: Float32Array, dy: Float32Array, N: number, g: ConvGeom,
  want: { dx: boolean; dw: boolean; db: boolean },
): ConvGrads {
  checkConv(g);
  const { C, M, group } = g;
  const Cg = C / group, Mg = M / group;
  const kk = Cg * g.kH * g.kW;
  const inImg = C * g.H * g.W, outPlane = g.oH * g.oW, outImg = M * outPlane;
  if (want.dw) {
    if (!x) bad('conv backward: dW needs the input');
    checkLen(x, N * inImg, 'conv input');
  }
  checkLen(w, M * kk, 'conv weight');
  checkLen(dy, N * outImg, 'conv output gradient');
  const out: ConvGrads = {};
  if (want.dx) out.dx = result(N * inImg, 'conv input gradient');
  const direct = isPointwise(g);
  withArena(K, () => {
    const pw = K.alloc(w.length * 4);
    const pdw = K.alloc(w.length * 4);
    const pdb = K.alloc(M * 4);
    const px = K.alloc(inImg * 4);
    const pdx = K.alloc(inImg * 4);
    const pdy = K.alloc(outImg * 4);
    const pcol = K.alloc(kk * outPlane * 4);
    K.f32(pw, w.length).set(w);
    K.f32(pdw, w.length).fill(0);
    K.f32(pdb, M).fill(0);
    for (let n = 0; n < N; n++) {
      K.f32(pdy, outImg).set(dy.subarray(n * outImg, (n + 1) * outImg));
      if (want.db) K.raw.channel_sums_f32(pdy, 0, pdb, 0, 1, M, outPlane);
      if (!want.dx && !want.dw) continue;
      if (want.dw) K.f32(px, inImg).set(x!.subarray(n * inImg, (n + 1) * inImg));
      if (want.dx) K.f32(pdx, inImg).fill(0);
      for (let gi = 0; gi < group; gi++) {
        const xg = px + gi * Cg * g.H * g.W * 4;
        const dxg = pdx + gi * Cg * g.H * g.W * 4;
        const wg = pw + gi * Mg * kk * 4;
        const dyg = pdy + gi * Mg * outPlane * 4;
        if (want.dw) {
          const cols = direct ? xg : pcol;
          if (!direct) im2colAt(K, xg, pcol, Cg, g);
          gemmAt(K, dyg, cols, pdw + gi * Mg * kk * 4, Mg, kk, outPlane, { transB: true, beta: 1 });
        }
        if (want.dx) {
          if (direct) gemmAt(K, wg, dyg, dxg, kk, outPlane, Mg, { transA: true });
          else {
            gemmAt(K, wg, dyg, pcol, kk, outPlane, Mg, { transA: true });
            col2imAt(K, pcol, dxg, Cg, g);
          }
        }
      }
      if (want.dx) out.dx!.set(K.f32(pdx, inImg), n * inImg);
    }
    if (want.dw) out.dw = K.f32(pdw, w.length).slice();
    if (want.db) out.db = K.f32(pdb, M).slice();
  });
  return out;
}

/** Planes per kernel call so that one window's buffers stay within the arena budget. */
function planesPerWindow(bytesPerPlane: number): number {
  return windowElements(bytesPerPlane);
}

/** Max pooling over `planes` planes; `idx` is the argmax within each plane (−1: empty window). */
export function maxPool2d(K: Kernels, x: Float32Array, planes: number, g: Geom2d): { y: Float32Array; idx: Int32Array } {
  checkGeom(g, 'maxpool');
  const inP = g.H * g.W, outP = g.oH * g.oW;
  checkLen(x, planes * inP, 'maxpool input');
  const y = result(planes * outP, 'maxpool output');
  const idx = new Int32Array(y.length);
  const per = planesPerWindow((inP + 2 * outP) * 4);
  withArena(K, () => {
    const cap = Math.min(per, planes);
    const px = K.alloc(cap * inP * 4), py = K.alloc(cap * outP * 4), pi = K.alloc(cap * outP * 4);
    for (let p0 = 0; p0 < planes; p0 += cap) {
      const np = Math.min(cap, planes - p0);
      K.f32(px, np * inP).set(x.subarray(p0 * inP, (p0 + np) * inP));
      K.raw.maxpool2d_f32(px, py, pi, np, g.H, g.W, g.oH, g.oW, g.kH, g.kW, g.padT, g.padL, g.sH, g.sW, g.dH, g.dW);
      y.set(K.f32(py, np * outP), p0 * outP);
      idx.set(K.i32(pi, np * outP), p0 * outP);
    }
  });
  return { y, idx };
}

/** dX of max pooling: each dY element goes to its window's argmax. */
export function maxPool2dBackward(K: Kernels, dy: Float32Array, idx: Int32Array, planes: number, g: Geom2d): Float32Array {
  checkGeom(g, 'maxpool backward');
  const inP = g.H * g.W, outP = g.oH * g.oW;
  checkLen(dy, planes * outP, 'maxpool output gradient');
  checkLen(idx, planes * outP, 'maxpool indices');
  for (let i = 0; i < idx.length; i++) if (idx[i]! >= inP || idx[i]! < -1) bad(`maxpool backward: index ${idx[i]} outside a plane of ${inP}`);
  const dx = result(planes * inP, 'pool input gradient');
  const per = planesPerWindow((inP + 2 * outP) * 4);
  withArena(K, () => {
    const cap = Math.min(per, planes);
    const pdy = K.alloc(cap * outP * 4), pi = K.alloc(cap * outP * 4), pdx = K.alloc(cap * inP * 4);
    for (let p0 = 0; p0 < planes; p0 += cap) {
      const np = Math.min(cap, planes - p0);
      K.f32(pdy, np * outP).set(dy.subarray(p0 * outP, (p0 + np) * outP));
      K.i32(pi, np * outP).set(idx.subarray(p0 * outP, (p0 + np) * outP));
      K.f32(pdx, np * inP).fill(0);
      K.raw.maxpool2d_bwd_f32(pdy, pi, pdx, np, inP, outP);
      dx.set(K.f32(pdx, np * inP), p0 * inP);
    }
  });
  return dx;
}

function avgArgs(g: Geom2d, includePad: boolean): number[] {
  return [g.H, g.W, g.oH, g.oW, g.kH, g.kW, g.padT, g.padL, g.padB, g.padR, g.sH, g.sW, g.dH, g.dW, includePad ? 1 : 0];
}

/** Average pooling; `includePad` counts padding taps in the divisor (never taps beyond the end padding). */
export function avgPool2d(K: Kernels, x: Float32Array, planes: number, g: Geom2d, includePad: boolean): Float32Array {
  checkGeom(g, 'avgpool');
  const inP = g.H * g.W, outP = g.oH * g.oW;
  checkLen(x, planes * inP, 'avgpool input');
  const y = result(planes * outP, 'avgpool output');
  const per = planesPerWindow((inP + outP) * 4);
  withArena(K, () => {
    const cap = Math.min(per, planes);
    const px = K.alloc(cap * inP * 4), py = K.alloc(cap * outP * 4);
    for (let p0 = 0; p0 < planes; p0 += cap) {
      const np = Math.min(cap, planes - p0);
      K.f32(px, np * inP).set(x.subarray(p0 * inP, (p0 + np) * inP));
      K.raw.avgpool2d_f32(px, py, np, ...avgArgs(g, includePad));
      y.set(K.f32(py, np * outP), p0 * outP);
    }
  });
  return y;
}

/** dX of average pooling (the kernel scales its arena copy of dY in place). */
export function avgPool2dBackward(K: Kernels, dy: Float32Array, planes: number, g: Geom2d, includePad: boolean): Float32Array {
  checkGeom(g, 'avgpool backward');
  const inP = g.H * g.W, outP = g.oH * g.oW;
  checkLen(dy, planes * outP, 'avgpool output gradient');
  const dx = result(planes * inP, 'pool input gradient');
  const per = planesPerWindow((inP + outP) * 4);
  withArena(K, () => {
    const cap = Math.min(per, planes);
    const pdy = K.alloc(cap * outP * 4), pdx = K.alloc(cap * inP * 4);
    for (let p0 = 0; p0 < planes; p0 += cap) {
      const np = Math.min(cap, planes - p0);
      K.f32(pdy, np * outP).set(dy.subarray(p0 * outP, (p0 + np) * outP));
      K.f32(pdx, np * inP).fill(0);
      K.raw.avgpool2d_bwd_f32(pdy, pdx, np, ...avgArgs(g, includePad));
      dx.set(K.f32(pdx, np * inP), p0 * inP);
    }
  });
  return dx;
}

/**
 * Per-channel sums of x [N, C, S] and, with `w` (same shape), of x·w: the reductions behind bias
 * and BatchNorm gradients. Images are streamed through the arena in windows.
 */
export function channelSums(K: Kernels, x: Float32Array, w: Float32Array | undefined, N: number, C: number, S: number): { sum: Float32Array; dot?: Float32Array } {
  for (const [k, v] of [['N', N], ['C', C], ['S', S]] as const) if (!Number.isSafeInteger(v) || v < 0 || v > I32) bad(`channel sums: bad ${k} ${v}`);
  checkLen(x, N * C * S, 'channel sums input');
  if (w) checkLen(w, N * C * S, 'channel sums weights');
  const img = C * S;
  const per = Math.min(Math.max(N, 1), planesPerWindow(Math.max(1, img * (w ? 8 : 4))));
  return withArena(K, () => {
    const ps = K.alloc(C * 4), pd = K.alloc(C * 4);
    K.f32(ps, C).fill(0);
    K.f32(pd, C).fill(0);
    const px = K.alloc(per * img * 4), pw = w ? K.alloc(per * img * 4) : 0;
    for (let n0 = 0; n0 < N; n0 += per) {
      const nn = Math.min(per, N - n0);
      K.f32(px, nn * img).set(x.subarray(n0 * img, (n0 + nn) * img));
      if (w) K.f32(pw, nn * img).set(w.subarray(n0 * img, (n0 + nn) * img));
      K.raw.channel_sums_f32(px, pw, ps, pd, nn, C, S);
    }
    const sum = K.f32(ps, C).slice();
    return w ? { sum, dot: K.f32(pd, C).slice() } : { sum };
  });
}
