/**
 * Unstructured weight pruning: the weights of registered ops (quantize/registry.ts: MatMul B, Gemm B,
 * Conv W, ConvTranspose W, Gather tables) get some of their elements set to +0, and the values are
 * written back in place as raw_data with the same dtype and shape, so the graph is unchanged.
 *
 * - 'magnitude': per weight, exactly k = round(sparsity × numel) elements of smallest |w| are zeroed
 *   (the WASM exact-k kernel; ties at the threshold are taken in index order, NaN ranks largest).
 * - 'global': one threshold over all prunable weights together: exactly round(sparsity × total)
 *   elements of smallest |w| across them are zeroed (one mask over their concatenation, then split).
 * - 'nm': N:M along the input axis (Conv/ConvTranspose: the input-channel axis, MatMul B [.., K, N]:
 *   K, Gemm B: K); in each group of M consecutive elements along it the N largest |w| stay. Weights
 *   whose axis length is not a multiple of M, and Gather tables (no input axis), are skipped.
 *
 * float32 and float16 weights are pruned (float16 is ranked on its exact float32 value). 1-D weights
 * are skipped unless `includeOneDim`; biases and normalization parameters are not weight inputs of
 * the registered ops and are never touched. Storage stays dense: the file does not get smaller,
 * the report gives the sparsity. Tensors in model-local functions and training_info are not touched.
 */
import type { ModelProto, NodeProto, TensorProto } from 'onnx-buf';
import { TensorProto_DataLocation } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import { modelTensorContext, tensorDType, tensorFromProto, tensorShape } from '../formats/onnx/tensor.js';
import { initKernels } from '../kernels/loader.js';
import { castF16ToF32 } from '../kernels/cast.js';
import { applyMask, magnitudeMask, magnitudePrune, nmMask } from '../kernels/prune.js';
import { sizeReport, tensorBytes, type SizeReport } from './report.js';
import { findWeightCandidates } from './graph.js';

export type PruneMethod = 'magnitude' | 'global' | 'nm';

export interface PruneWeightsOptions {
  /** Fraction of elements to zero, 0..1. Required for 'magnitude' and 'global'; for 'nm' it may be omitted and must otherwise equal 1 − N/M. */
  sparsity?: number;
  method: PruneMethod;
  /** N:M: N kept out of every M (default 2:4). */
  n?: number;
  m?: number;
  /** Also prune 1-D weights (default false). */
  includeOneDim?: boolean;
  /** Leave weights alone by weight name, consumer node name, or consumer op type. */
  exclude?: { names?: string[]; opTypes?: string[] };
}

export interface PrunedTensor {
  name: string;
  /** Op types of the registered consumers, e.g. "Conv" or "MatMul,Gather". */
  op: string;
  scope: string;
  kind: 'initializer' | 'constant';
  dtype: 'float32' | 'float16';
  shape: number[];
  numel: number;
  /** Elements selected for pruning (already-zero ones can be among them). */
  pruned: number;
  zerosBefore: number;
  zerosAfter: number;
  /** zerosAfter / numel. */
  sparsity: number;
  /** N:M only: the axis the groups run along. */
  axis?: number;
}

export interface PruneSkippedTensor {
  name: string;
  op: string;
  scope: string;
  reason: string;
}

export interface PruneWeightsReport {
  options: { method: PruneMethod; sparsity: number; n?: number; m?: number; includeOneDim: boolean };
  pruned: PrunedTensor[];
  skipped: PruneSkippedTensor[];
  totals: { tensors: number; numel: number; pruned: number; zerosBefore: number; zerosAfter: number; sparsity: number };
  /** Dense storage: tensor bytes are the same before and after. */
  size: SizeReport;
}

interface Candidate {
  name: string;
  scope: string;
  kind: 'initializer' | 'constant';
  proto: TensorProto;
  uses: NodeProto[];
}

/** Registered weight inputs resolved to the initializer or Constant that defines them (innermost graph first). */
function findCandidates(proto: ModelProto): Candidate[] {
  return findWeightCandidates(proto).map((c) => ({ name: c.name, scope: c.frame.scope, kind: c.kind, proto: c.proto, uses: c.uses.map((u) => u.node) }));
}

function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : fallback;
}

/** The input (reduction) axis of a weight for N:M, or undefined when the op has none. */
function inputAxis(node: NodeProto, rank: number): number | undefined {
  switch (node.opType) {
    case 'Conv': return rank >= 2 ? 1 : undefined;
    case 'ConvTranspose': return rank >= 1 ? 0 : undefined;
    case 'MatMul': return rank >= 2 ? rank - 2 : rank === 1 ? 0 : undefined;
    case 'Gemm': return rank === 2 ? (intAttr(node, 'transB', 0) ? 1 : 0) : undefined;
    default: return undefined;
  }
}

function checkOptions(o: PruneWeightsOptions): { sparsity: number; n: number; m: number } {
  const method = o.method as string;
  if (method === 'channel') {
    throw new ModelsmithError(ErrorCodes.USAGE, "structured channel pruning is a separate pass: use pruneChannels (compress/prune-structured.ts) or 'prune --method channel'");
  }
  if (method !== 'magnitude' && method !== 'global' && method !== 'nm') {
    throw new ModelsmithError(ErrorCodes.USAGE, `prune method must be magnitude, global or nm, got '${String(o.method)}'`);
  }
  const n = o.n ?? 2;
  const m = o.m ?? 4;
  if (method === 'nm') {
    if (!Number.isSafeInteger(n) || !Number.isSafeInteger(m) || m < 1 || n < 0 || n > m) {
      throw new ModelsmithError(ErrorCodes.USAGE, `N:M needs integers 0 <= N <= M, M >= 1, got ${String(o.n)}:${String(o.m)}`);
    }
  } else if (o.n !== undefined || o.m !== undefined) {
    throw new ModelsmithError(ErrorCodes.USAGE, `N:M (n, m) only applies to method nm, not ${method}`);
  }
  if (o.sparsity === undefined) {
    if (method === 'nm') return { sparsity: 1 - n / m, n, m };
    throw new ModelsmithError(ErrorCodes.USAGE, `method ${method} needs a sparsity in [0, 1]`);
  }
  if (typeof o.sparsity !== 'number' || !Number.isFinite(o.sparsity) || o.sparsity < 0 || o.sparsity > 1) {
    throw new ModelsmithError(ErrorCodes.USAGE, `sparsity must be a number in [0, 1], got ${String(o.sparsity)}`);
  }
  if (method === 'nm' && Math.abs(o.sparsity - (1 - n / m)) > 1e-9) {
    throw new ModelsmithError(ErrorCodes.USAGE, `N:M ${n}:${m} gives sparsity ${1 - n / m}, not ${o.sparsity}; omit the sparsity or change N:M`);
  }
  return { sparsity: o.sparsity, n, m };
}

function countZeros(x: Float32Array): number {
  let z = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === 0) z++;
  return z;
}

interface Loaded {
  c: Candidate;
  op: string;
  dtype: 'float32' | 'float16';
  shape: number[];
  /** float32 values (float16 widened exactly). */
  x: Float32Array;
  /** float16 bit patterns, for float16 weights. */
  h?: Uint16Array;
  axis?: number;
}

/** Writes the pruned values back as raw_data (inline; typed fields and external references dropped). */
function writeBack(l: Loaded, mask: Uint8Array | undefined, values: Float32Array | undefined): Float32Array {
  const tp = l.c.proto;
  let bytes: Uint8Array<ArrayBuffer>;
  let after: Float32Array;
  if (l.dtype === 'float16') {
    const h = l.h!.slice();
    after = l.x.slice();
    for (let i = 0; i < h.length; i++) if (mask![i]) { h[i] = 0; after[i] = 0; }
    bytes = new Uint8Array(h.buffer);
  } else {
    after = values!;
    bytes = new Uint8Array(after.buffer as ArrayBuffer, after.byteOffset, after.byteLength);
  }
  tp.rawData = bytes;
  tp.floatData = [];
  tp.int32Data = [];
  if (tp.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    tp.dataLocation = TensorProto_DataLocation.DEFAULT;
    tp.externalData = [];
  }
  return after;
}

/**
 * Prune the weights of `model` in place (the same object is returned). Every registered weight that
 * is not pruned is listed in `report.skipped` with the reason.
 */
export async function pruneWeights(model: OnnxModel, opts: PruneWeightsOptions): Promise<{ model: OnnxModel; report: PruneWeightsReport }> {
  const { sparsity, n, m } = checkOptions(opts);
  await initKernels();
  const before = tensorBytes(model);
  const exNames = new Set(opts.exclude?.names ?? []);
  const exOps = new Set(opts.exclude?.opTypes ?? []);
  const includeOneDim = opts.includeOneDim ?? false;
  const skipped: PruneSkippedTensor[] = [];
  const loaded: Loaded[] = [];
  const ctx = modelTensorContext(model);

  for (const c of findCandidates(model.proto)) {
    const op = [...new Set(c.uses.map((u) => u.opType))].join(',');
    const skip = (reason: string): void => { skipped.push({ name: c.name, op, scope: c.scope, reason }); };
    if (exNames.has(c.name) || c.uses.some((u) => exOps.has(u.opType) || (u.name !== '' && exNames.has(u.name)))) { skip('excluded'); continue; }
    const dtype = tensorDType(c.proto, model.path);
    if (dtype !== 'float32' && dtype !== 'float16') { skip(`dtype ${dtype} (only float32 and float16 weights are pruned)`); continue; }
    const shape = tensorShape(c.proto, model.path);
    if (shape.length === 0) { skip('scalar'); continue; }
    if (shape.length === 1 && !includeOneDim) { skip('1-D (pass includeOneDim / --include-1d to prune it)'); continue; }
    const numel = shape.reduce((a, d) => a * d, 1);
    if (numel === 0) { skip('empty'); continue; }
    let axis: number | undefined;
    if (opts.method === 'nm') {
      const axes = new Set(c.uses.map((u) => inputAxis(u, shape.length)));
      if (axes.size !== 1 || axes.has(undefined)) { skip(axes.size > 1 ? 'consumers disagree on the input axis' : `${op} weight has no input axis for N:M`); continue; }
      axis = [...axes][0]!;
      if (shape[axis]! % m !== 0) { skip(`input axis ${axis} has length ${shape[axis]}, not a multiple of M=${m}`); continue; }
    }
    const t = await tensorFromProto(c.proto, ctx);
    const raw = new Uint8Array(t.data); // aligned copy (a Node Buffer's slice() would be a view)
    let x: Float32Array;
    let h: Uint16Array | undefined;
    if (dtype === 'float16') {
      h = new Uint16Array(raw.buffer, 0, numel);
      x = castF16ToF32(h);
    } else {
      x = new Float32Array(raw.buffer, 0, numel);
    }
    const l: Loaded = { c, op, dtype, shape, x };
    if (h) l.h = h;
    if (axis !== undefined) l.axis = axis;
    loaded.push(l);
  }

  const pruned: PrunedTensor[] = [];
  const record = (l: Loaded, k: number, after: Float32Array): void => {
    const numel = l.x.length;
    const zerosAfter = countZeros(after);
    const e: PrunedTensor = {
      name: l.c.name, op: l.op, scope: l.c.scope, kind: l.c.kind, dtype: l.dtype, shape: l.shape, numel,
      pruned: k, zerosBefore: countZeros(l.x), zerosAfter, sparsity: zerosAfter / numel,
    };
    if (l.axis !== undefined) e.axis = l.axis;
    pruned.push(e);
  };

  if (opts.method === 'global') {
    const total = loaded.reduce((a, l) => a + l.x.length, 0);
    const all = new Float32Array(total);
    let off = 0;
    for (const l of loaded) { all.set(l.x, off); off += l.x.length; }
    const mask = magnitudeMask(all, Math.round(sparsity * total));
    off = 0;
    for (const l of loaded) {
      const mk = mask.subarray(off, off + l.x.length);
      off += l.x.length;
      let k = 0;
      for (let i = 0; i < mk.length; i++) k += mk[i]!;
      let values: Float32Array | undefined;
      if (l.dtype === 'float32') values = applyMask(l.x, mk).values;
      record(l, k, writeBack(l, mk, values));
    }
  } else {
    for (const l of loaded) {
      let mask: Uint8Array | undefined;
      let values: Float32Array | undefined;
      let k: number;
      if (opts.method === 'magnitude') {
        k = Math.round(sparsity * l.x.length);
        if (l.dtype === 'float32') values = magnitudePrune(l.x, k);
        else mask = magnitudeMask(l.x, k);
      } else {
        mask = nmMask(l.x, l.shape, l.axis!, n, m);
        k = 0;
        for (let i = 0; i < mask.length; i++) k += mask[i]!;
        if (l.dtype === 'float32') values = applyMask(l.x, mask).values;
      }
      record(l, k, writeBack(l, mask, values));
    }
  }

  const sum = (f: (p: PrunedTensor) => number): number => pruned.reduce((a, p) => a + f(p), 0);
  const numel = sum((p) => p.numel);
  const zerosAfter = sum((p) => p.zerosAfter);
  const options: PruneWeightsReport['options'] = { method: opts.method, sparsity, includeOneDim };
  if (opts.method === 'nm') { options.n = n; options.m = m; }
  return {
    model,
    report: {
      options,
      pruned,
      skipped,
      totals: { tensors: pruned.length, numel, pruned: sum((p) => p.pruned), zerosBefore: sum((p) => p.zerosBefore), zerosAfter, sparsity: numel > 0 ? zerosAfter / numel : 0 },
      size: sizeReport(before, tensorBytes(model)),
    },
  };
}
