/**
 * Unstructured pruning of a weight container: values set to +0 in place (same names, dtypes and
 * shapes, so the file loads into the same module). 'magnitude' zeroes exactly round(S × numel) of
 * each weight's smallest |w|; 'nm' keeps N of every M consecutive weights along `axis` (default 1, the
 * input axis of PyTorch Linear [out, in] and Conv [out, in, kh, kw] weights). Weights whose axis is
 * not a multiple of M are skipped with a reason. Global magnitude pruning needs every weight at once
 * and is offered on ONNX models only.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel } from '../../core/tensor.js';
import { initKernels } from '../../kernels/loader.js';
import { magnitudePrune, nmPrune } from '../../kernels/prune.js';
import type { LazyTensor, WeightSet } from '../../formats/weights.js';
import { derived, finishReport, FLOAT_DTYPES, fromFloat32, nameMatcher, skipReason, toFloat32, type SelectOptions, type WeightPassReport, type WeightPassTensor } from './common.js';

export interface PruneWeightSetOptions extends SelectOptions {
  method: 'magnitude' | 'nm';
  /** magnitude: fraction of each weight's elements to zero, 0..1. */
  sparsity?: number;
  /** nm: N kept of every M (default 2:4). */
  n?: number;
  m?: number;
  /** nm: the axis the groups run along (default 1). */
  axis?: number;
}

export interface PrunedWeight extends WeightPassTensor {
  /** Elements set to zero by the pass (filled when the tensor is loaded). */
  pruned?: number;
  /** Zeros after / numel (filled when the tensor is loaded). */
  sparsity?: number;
}

export async function pruneWeightSet(set: WeightSet, opts: PruneWeightSetOptions): Promise<{ set: WeightSet; report: WeightPassReport & { processed: PrunedWeight[] } }> {
  await initKernels();
  const n = opts.n ?? 2;
  const m = opts.m ?? 4;
  if (opts.method === 'magnitude') {
    const s = opts.sparsity;
    if (s === undefined || !(s >= 0 && s <= 1)) throw new ModelsmithError(ErrorCodes.USAGE, `sparsity must be in 0..1, got ${s}`);
  } else if (!(Number.isInteger(n) && Number.isInteger(m) && n >= 1 && m > n && m <= 256)) {
    throw new ModelsmithError(ErrorCodes.USAGE, `N:M must satisfy 1 <= N < M <= 256, got ${n}:${m}`);
  }
  const excluded = nameMatcher(opts.exclude);
  const processed: PrunedWeight[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const tensors: LazyTensor[] = set.tensors.map((t) => {
    let why = skipReason(t, opts, excluded);
    const axis = opts.axis ?? 1;
    if (!why && opts.method === 'nm') {
      const a = axis < 0 ? axis + t.shape.length : axis;
      if (a < 0 || a >= t.shape.length) why = `no axis ${axis} in a ${t.shape.length}-D tensor`;
      else if (t.shape[a]! % m !== 0) why = `axis ${a} has ${t.shape[a]} elements, not a multiple of ${m}`;
    }
    if (why) {
      if (FLOAT_DTYPES.has(t.dtype)) skipped.push({ name: t.name, reason: why });
      return t;
    }
    const entry: PrunedWeight = { name: t.name, dtype: t.dtype, shape: t.shape, bytesBefore: t.byteLength, bytesAfter: t.byteLength };
    processed.push(entry);
    const out = derived(t.name, t.dtype, t.shape, async () => {
      const x = toFloat32(t.dtype, await t.load(), t.name);
      const count = numel(t.shape);
      const zerosBefore = countZeros(x);
      const y = opts.method === 'magnitude'
        ? magnitudePrune(x, Math.round(opts.sparsity! * count))
        : nmPrune(x, t.shape, axis < 0 ? axis + t.shape.length : axis, n, m);
      const zeros = countZeros(y);
      entry.pruned = zeros - zerosBefore;
      entry.sparsity = count ? zeros / count : 0;
      // y is the kernel's fresh output, so a view of it is safe to hand out.
      return fromFloat32(y, t.dtype, t.name);
    }, t.extra);
    if (t.storageKey !== undefined) out.storageKey = t.storageKey;
    return out;
  });
  return { set: { ...set, tensors }, report: { ...finishReport(set, tensors, processed, skipped), processed } };
}

function countZeros(x: Float32Array): number {
  let z = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === 0) z++;
  return z;
}
