/**
 * float16 / bfloat16 conversion of a weight container (state_dict, safetensors, bundle): every
 * floating tensor of another float type becomes the target type — 1-D ones too, as `model.half()`
 * does, since a runtime loading the file expects one float type throughout. Integer and bool tensors
 * (e.g. `num_batches_tracked`) are passed through. float16 is clamped to ±65504 rather than ±Inf.
 */
import type { DType } from '../../core/dtype.js';
import { initKernels } from '../../kernels/loader.js';
import type { LazyTensor, WeightSet } from '../../formats/weights.js';
import { derived, finishReport, FLOAT_DTYPES, fromFloat32, nameMatcher, toFloat32, type WeightPassReport, type WeightPassTensor } from './common.js';

export interface CastWeightsOptions {
  to: 'float16' | 'bfloat16';
  /** Names (or `*` globs) to leave in their type. */
  exclude?: string[];
}

export async function castWeightSet(set: WeightSet, opts: CastWeightsOptions): Promise<{ set: WeightSet; report: WeightPassReport }> {
  await initKernels();
  const excluded = nameMatcher(opts.exclude);
  const processed: WeightPassTensor[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const tensors: LazyTensor[] = set.tensors.map((t) => {
    if (!FLOAT_DTYPES.has(t.dtype)) return t;
    if (t.dtype === opts.to) return t;
    if (excluded(t.name)) {
      skipped.push({ name: t.name, reason: 'excluded by name' });
      return t;
    }
    const to: DType = opts.to;
    const out = derived(t.name, to, t.shape, async () => fromFloat32(toFloat32(t.dtype, await t.load(), t.name), to, t.name), t.extra);
    // Tied tensors stay tied: equal inputs give equal outputs, so the shared storage still holds.
    if (t.storageKey !== undefined) out.storageKey = t.storageKey;
    processed.push({ name: t.name, dtype: to, shape: t.shape, bytesBefore: t.byteLength, bytesAfter: out.byteLength });
    return out;
  });
  return { set: { ...set, tensors }, report: finishReport(set, tensors, processed, skipped) };
}
