/**
 * `inspect` summary of a weight container: counts, bytes per dtype, the largest tensors and the
 * container's metadata. Reads no tensor payloads.
 */
import { dtypeInfo } from '../core/dtype.js';
import type { Diagnostic } from '../core/errors.js';
import { numel } from '../core/tensor.js';
import type { WeightSet } from './weights.js';

export interface WeightsSummary {
  path?: string;
  format: string;
  tensorCount: number;
  /** Elements over all floating tensors (what "parameters" means to a model author). */
  parameters: number;
  bytes: number;
  bytesByDtype: Record<string, { tensors: number; bytes: number }>;
  largestTensors: { name: string; dtype: string; shape: number[]; bytes: number }[];
  /** Tensors that share storage with an earlier one (tied weights). */
  sharedStorage: number;
  metadata?: Record<string, string>;
  tensors: { name: string; dtype: string; shape: number[]; bytes: number }[];
  diagnostics: Diagnostic[];
}

export function summarizeWeights(set: WeightSet, opts: { largest?: number } = {}): WeightsSummary {
  const bytesByDtype: WeightsSummary['bytesByDtype'] = {};
  let parameters = 0;
  let bytes = 0;
  const keys = new Set<string>();
  let sharedStorage = 0;
  for (const t of set.tensors) {
    const d = (bytesByDtype[t.dtype] ??= { tensors: 0, bytes: 0 });
    d.tensors++;
    d.bytes += t.byteLength;
    bytes += t.byteLength;
    if (dtypeInfo(t.dtype).isFloat) parameters += numel(t.shape, { tensor: t.name });
    if (t.storageKey !== undefined) {
      if (keys.has(t.storageKey)) sharedStorage++;
      keys.add(t.storageKey);
    }
  }
  const tensors = set.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.byteLength }));
  const largestTensors = [...tensors].sort((a, b) => b.bytes - a.bytes).slice(0, opts.largest ?? 10);
  return {
    ...(set.path !== undefined ? { path: set.path } : {}),
    format: set.format,
    tensorCount: set.tensors.length,
    parameters,
    bytes,
    bytesByDtype,
    largestTensors,
    sharedStorage,
    ...(set.metadata && Object.keys(set.metadata).length ? { metadata: set.metadata } : {}),
    tensors,
    diagnostics: set.diagnostics,
  };
}
