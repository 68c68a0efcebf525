/**
 * The common shape of weight-only containers (PyTorch state_dicts, safetensors, TF tensor bundles,
 * Caffe blobs): a flat list of named tensors whose bytes are read on demand. Readers return a
 * WeightSet without touching tensor payloads, so `inspect` on a 6 GB checkpoint reads only its index,
 * and converters stream one tensor at a time (memory bounded by the largest tensor, not the file).
 */
import type { DType } from '../core/dtype.js';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';

export interface LazyTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Bytes of the C-contiguous, little-endian data (what `load` resolves to). */
  byteLength: number;
  /**
   * Read the tensor's bytes, C-contiguous and little-endian (strided views materialised, big-endian
   * sources swapped). Each call may read the file again; callers that need the bytes twice keep them.
   */
  load(): Promise<Uint8Array>;
  /**
   * Optional ranged read of the same bytes `load()` returns: `target.byteLength` bytes from `offset`
   * straight into the caller's buffer. Readers offer it where the bytes lie contiguous in the source;
   * writers that have it copy through one reused buffer instead of allocating the whole tensor —
   * fresh multi-hundred-MiB buffers cost page faults and double the peak memory.
   */
  readInto?(offset: number, target: Uint8Array): Promise<void>;
  /**
   * Tensors with the same key share storage in the source (tied weights). Writers that can express
   * sharing (PyTorch) write one storage for them; others write the bytes once per tensor.
   */
  storageKey?: string;
  /** Format-specific facts worth showing or carrying over (e.g. torch quantization params). */
  extra?: Record<string, unknown>;
}

export interface WeightSet {
  /** Container kind, e.g. "pytorch-zip", "pytorch-legacy", "safetensors", "tf-bundle", "caffemodel". */
  format: string;
  /** File (or folder) it was read from, for messages. */
  path?: string;
  tensors: LazyTensor[];
  /** String metadata the container carries (safetensors `__metadata__`). */
  metadata?: Record<string, string>;
  diagnostics: Diagnostic[];
}

/** Load a lazy tensor into the plain Tensor shape the passes use. */
export async function materialize(t: LazyTensor): Promise<Tensor> {
  return { name: t.name, dtype: t.dtype, shape: t.shape, data: await t.load() };
}

/** A LazyTensor over bytes already in memory (writers and tests build WeightSets from these). */
export function inMemoryTensor(t: Tensor, storageKey?: string): LazyTensor {
  return {
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    byteLength: t.data.byteLength,
    load: async () => t.data,
    ...(storageKey !== undefined ? { storageKey } : {}),
  };
}

/** Check a ranged read against the tensor's size (shared by readers that offer `readInto`). */
export function checkTensorRange(t: { name: string; byteLength: number }, offset: number, length: number, path?: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > t.byteLength) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `read of ${length} bytes at ${offset} is outside the tensor's ${t.byteLength} bytes`, { tensor: t.name, ...(path !== undefined ? { path } : {}) });
  }
}
