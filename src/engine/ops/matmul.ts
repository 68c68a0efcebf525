/**
 * MatMul (numpy semantics: 1-D operands promoted and squeezed back, batch dims broadcast) and Gemm.
 * All products run in the WASM GEMM kernel. Operands are copied into the arena once per op and the
 * batch loop calls `gemmAt` on pointers, so a batched MatMul does not copy per matrix.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel } from '../../core/tensor.js';
import { gemmAt } from '../../kernels/gemm.js';
import type { Kernels } from '../../kernels/loader.js';
import { withArena } from '../../kernels/window.js';
import { alignedStrides, broadcastDims, expandTo, sumTo } from '../broadcast.js';
import { registerOp } from '../registry.js';
import type { FValue } from '../types.js';
import { floatInput, fvalue, opLabel } from '../values.js';

interface MatMulPlan {
  M: number;
  K: number;
  N: number;
  batch: number[];
  /** Matrix index into A / B for each batch element (broadcast batch dims repeat a matrix). */
  aIdx: Int32Array;
  bIdx: Int32Array;
  aMats: number;
  bMats: number;
  /** Output dims as the op reports them (promoted 1-D axes removed again). */
  outDims: number[];
  /** B is one matrix shared by every batch element, and A is not broadcast: fold the batch into M. */
  foldBatch: boolean;
}

/** Matrix indices of a broadcast batch: for each element of `batch`, which matrix of `dims` it reads. */
function batchIndex(dims: readonly number[], batch: readonly number[]): Int32Array {
  const n = numel(batch);
  const st = alignedStrides(dims, batch);
  const out = new Int32Array(n);
  const idx = new Array<number>(batch.length).fill(0);
  let p = 0;
  for (let i = 0; i < n; i++) {
    out[i] = p;
    for (let d = batch.length - 1; d >= 0; d--) {
      idx[d]!++;
      p += st[d]!;
      if (idx[d]! < batch[d]!) break;
      p -= st[d]! * batch[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function matmulPlan(aDims: readonly number[], bDims: readonly number[], op: string): MatMulPlan {
  if (aDims.length === 0 || bDims.length === 0) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, 'MatMul operands must have rank ≥ 1', { op });
  const a = aDims.length === 1 ? [1, aDims[0]!] : [...aDims];
  const b = bDims.length === 1 ? [bDims[0]!, 1] : [...bDims];
  const M = a[a.length - 2]!, K = a[a.length - 1]!, K2 = b[b.length - 2]!, N = b[b.length - 1]!;
  if (K !== K2) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `MatMul inner dimensions differ: [${aDims.join(',')}] × [${bDims.join(',')}]`, { op });
  const ba = a.slice(0, -2), bb = b.slice(0, -2);
  const batch = broadcastDims([ba, bb], op);
  const outDims = [...batch];
  if (aDims.length > 1) outDims.push(M);
  if (bDims.length > 1) outDims.push(N);
  const aMats = numel(ba), bMats = numel(bb);
  return {
    M, K, N, batch, outDims, aMats, bMats,
    aIdx: batchIndex(ba, batch),
    bIdx: batchIndex(bb, batch),
    foldBatch: bMats === 1 && aMats === numel(batch),
  };
}

/** Copies arrays into the arena, returning their pointers (allocations first: a later alloc may grow memory and detach views). */
function place(K: Kernels, arrays: (Float32Array | number)[]): number[] {
  const ptrs = arrays.map((a) => K.alloc(Math.max(4, (typeof a === 'number' ? a : a.length) * 4)));
  arrays.forEach((a, i) => {
    if (typeof a === 'number') K.f32(ptrs[i]!, a).fill(0);
    else K.f32(ptrs[i]!, a.length).set(a);
  });
  return ptrs;
}

registerOp('MatMul', {
  forward(ctx, inputs) {
    const op = opLabel(ctx.node);
    const a = floatInput(inputs, 0, ctx.node), b = floatInput(inputs, 1, ctx.node);
    const p = matmulPlan(a.dims, b.dims, op);
    const K = ctx.kernels;
    const total = numel(p.batch) * p.M * p.N;
    const out = withArena(K, () => {
      const [pa, pb, pc] = place(K, [a.data, b.data, total]);
      if (p.foldBatch) gemmAt(K, pa!, pb!, pc!, p.aMats * p.M, p.N, p.K);
      else {
        for (let i = 0; i < p.aIdx.length; i++) {
          gemmAt(K, pa! + p.aIdx[i]! * p.M * p.K * 4, pb! + p.bIdx[i]! * p.K * p.N * 4, pc! + i * p.M * p.N * 4, p.M, p.N, p.K);
        }
      }
      return K.f32(pc!, total).slice();
    });
    return { outputs: [fvalue(p.outDims, out)] };
  },
  backward(ctx, [av, bv], _o, [g]) {
    if (!g) return [];
    const a = av as FValue, b = bv as FValue;
    const p = matmulPlan(a.dims, b.dims, opLabel(ctx.node));
    const K = ctx.kernels;
    const { M, N } = p, KK = p.K;
    return withArena(K, () => {
      const [pa, pb, pg, pga, pgb] = place(K, [a.data, b.data, g.data, p.aMats * M * KK, p.bMats * KK * N]);
      if (p.foldBatch) {
        const rows = p.aMats * M;
        gemmAt(K, pg!, pb!, pga!, rows, KK, N, { transB: true }); // dA = G·Bᵀ
        gemmAt(K, pa!, pg!, pgb!, KK, N, rows, { transA: true }); // dB = Aᵀ·G over all rows
      } else {
        // Broadcast batch elements accumulate into the matrix they read (beta = 1 on zeroed buffers).
        for (let i = 0; i < p.aIdx.length; i++) {
          const offA = pa! + p.aIdx[i]! * M * KK * 4, offB = pb! + p.bIdx[i]! * KK * N * 4, offG = pg! + i * M * N * 4;
          gemmAt(K, offG, offB, pga! + p.aIdx[i]! * M * KK * 4, M, KK, N, { transB: true, beta: 1 });
          gemmAt(K, offA, offG, pgb! + p.bIdx[i]! * KK * N * 4, KK, N, M, { transA: true, beta: 1 });
        }
      }
      return [fvalue(a.dims, K.f32(pga!, p.aMats * M * KK).slice()), fvalue(b.dims, K.f32(pgb!, p.bMats * KK * N).slice())];
    });
  },
});

// ------------------------------------------------------------------------------------------------
// Gemm: Y = alpha·op(A)·op(B) + beta·C
// ------------------------------------------------------------------------------------------------

registerOp('Gemm', {
  forward(ctx, inputs) {
    const op = opLabel(ctx.node);
    const a = floatInput(inputs, 0, ctx.node), b = floatInput(inputs, 1, ctx.node);
    const c = inputs[2] ? floatInput(inputs, 2, ctx.node) : undefined;
    const g = gemmShape(ctx.attrs.int('transA', 0) !== 0, ctx.attrs.int('transB', 0) !== 0, a.dims, b.dims, op);
    const alpha = ctx.attrs.float('alpha', 1), beta = ctx.attrs.float('beta', 1);
    const useC = c !== undefined && beta !== 0;
    const init = useC ? expandTo(c.data, broadcastCheck(c.dims, [g.M, g.N], op), [g.M, g.N]) : g.M * g.N;
    const K = ctx.kernels;
    const out = withArena(K, () => {
      const [pa, pb, pc] = place(K, [a.data, b.data, init]);
      gemmAt(K, pa!, pb!, pc!, g.M, g.N, g.K, { transA: g.tA, transB: g.tB, alpha, beta: useC ? beta : 0 });
      return K.f32(pc!, g.M * g.N).slice();
    });
    return { outputs: [fvalue([g.M, g.N], out)] };
  },
  backward(ctx, [av, bv, cv], _o, [gv]) {
    if (!gv) return [];
    const a = av as FValue, b = bv as FValue, c = cv as FValue | undefined;
    const { M, N, K: KK, tA, tB } = gemmShape(ctx.attrs.int('transA', 0) !== 0, ctx.attrs.int('transB', 0) !== 0, a.dims, b.dims, opLabel(ctx.node));
    const alpha = ctx.attrs.float('alpha', 1), beta = ctx.attrs.float('beta', 1);
    const K = ctx.kernels;
    const [ga, gb] = withArena(K, () => {
      const [pa, pb, pg, pga, pgb] = place(K, [a.data, b.data, gv.data, M * KK, KK * N]);
      // d op(A) = α·G·op(B)ᵀ and d op(B) = α·op(A)ᵀ·G, transposed back when A or B is stored transposed.
      if (!tA) gemmAt(K, pg!, pb!, pga!, M, KK, N, { transB: !tB, alpha });
      else gemmAt(K, pb!, pg!, pga!, KK, M, N, { transA: tB, transB: true, alpha });
      if (!tB) gemmAt(K, pa!, pg!, pgb!, KK, N, M, { transA: !tA, alpha });
      else gemmAt(K, pg!, pa!, pgb!, N, KK, M, { transA: true, transB: tA, alpha });
      return [K.f32(pga!, M * KK).slice(), K.f32(pgb!, KK * N).slice()];
    });
    const grads: (FValue | undefined)[] = [fvalue(a.dims, ga!), fvalue(b.dims, gb!)];
    if (c) grads.push(fvalue(c.dims, sumTo(beta === 1 ? gv.data : gv.data.map((x) => x * beta), [M, N], c.dims)));
    return grads;
  },
});

function gemmShape(tA: boolean, tB: boolean, aDims: readonly number[], bDims: readonly number[], op: string) {
  if (aDims.length !== 2 || bDims.length !== 2) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `Gemm needs 2-D A and B, got [${aDims.join(',')}] and [${bDims.join(',')}]`, { op });
  const M = tA ? aDims[1]! : aDims[0]!, K = tA ? aDims[0]! : aDims[1]!;
  const K2 = tB ? bDims[1]! : bDims[0]!, N = tB ? bDims[0]! : bDims[1]!;
  if (K !== K2) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `Gemm inner dimensions differ: op(A) is ${M}×${K}, op(B) is ${K2}×${N}`, { op });
  return { M, N, K, tA, tB };
}

/** C must broadcast to [M, N] one way (Gemm's unidirectional broadcast). */
function broadcastCheck(cDims: readonly number[], target: number[], op: string): readonly number[] {
  const out = broadcastDims([cDims, target], op);
  if (out.length !== 2 || out[0] !== target[0] || out[1] !== target[1]) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `Gemm C [${cDims.join(',')}] does not broadcast to [${target.join(',')}]`, { op });
  }
  return cDims;
}
