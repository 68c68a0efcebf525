/**
 * The synthetic state_dict behind the large weight-container bench, described once so the generator
 * (which writes it) and the checker (which regenerates a tensor to compare with what was converted)
 * cannot drift apart.
 *
 * One block = 448 MiB of float32 matrices (256 + 128 + 64 MiB, the sizes of transformer MLP and
 * attention weights) plus the small tensors a real checkpoint carries (bias, norm weight, an int64
 * counter), so the converter sees both bulk copies and many tiny records. Values come from an
 * xorshift32 stream seeded per tensor: cheap to produce at memory speed, yet real non-repeating floats
 * (zeros or a constant pattern would let a broken offset go unnoticed, and could be special-cased by a
 * filesystem or a compressor).
 */
import { byteLength } from '../core/dtype.js';
import type { DType } from '../core/dtype.js';
import { numel } from '../core/tensor.js';
import type { LazyTensor } from '../formats/weights.js';

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
  /** Seed of the value stream (unique per tensor). */
  seed: number;
}

const MIB = 1024 * 1024;
/** Bytes of one block (its three matrices plus the small tensors). */
export const BLOCK_BYTES = 448 * MIB + 2 * 4096 * 4 + 8;

/** The tensors of a state_dict of at least `gib` GiB, in state_dict order. */
export function largeStateDict(gib: number): TensorSpec[] {
  const blocks = Math.max(1, Math.ceil((gib * 1024 * MIB) / BLOCK_BYTES));
  const specs: TensorSpec[] = [];
  const add = (name: string, dtype: DType, shape: number[]) => specs.push({ name, dtype, shape, seed: specs.length + 1 });
  for (let b = 0; b < blocks; b++) {
    add(`blocks.${b}.attn.weight`, 'float32', [4096, 4096]);
    add(`blocks.${b}.attn.bias`, 'float32', [4096]);
    add(`blocks.${b}.mlp.up.weight`, 'float32', [16384, 4096]);
    add(`blocks.${b}.mlp.down.weight`, 'float32', [4096, 8192]);
    add(`blocks.${b}.norm.weight`, 'float32', [4096]);
    add(`blocks.${b}.norm.num_batches_tracked`, 'int64', []);
  }
  return specs;
}

export function specBytes(s: TensorSpec): number {
  return byteLength(s.dtype, numel(s.shape));
}

/** The bytes of a tensor: floats ~ U(-0.05, 0.05), int64 = the seed. */
export function tensorBytes(s: TensorSpec): Uint8Array {
  const n = numel(s.shape);
  if (s.dtype === 'int64') {
    const a = new BigInt64Array(n).fill(BigInt(s.seed));
    return new Uint8Array(a.buffer);
  }
  const a = new Float32Array(n);
  let x = (s.seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = ((x >>> 8) / 16777216 - 0.5) * 0.1;
  }
  return new Uint8Array(a.buffer);
}

/** LazyTensors that produce their bytes on load(), so the writer holds one tensor at a time. */
export function lazyStateDict(specs: TensorSpec[]): LazyTensor[] {
  return specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, byteLength: specBytes(s), load: async () => tensorBytes(s) }));
}
