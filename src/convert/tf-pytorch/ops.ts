/**
 * Byte-level layout changes behind the Keras → PyTorch transforms. Tensors are moved as opaque
 * 1/2/4/8-byte elements, so every fixed-width dtype is converted bit-exactly (no float round trip).
 * The heavy permutations run on the WASM layout kernels; block reorders are plain copies.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { dtypeInfo, type DType } from '../../core/dtype.js';
import { permute4d, transpose2d } from '../../kernels/layout.js';
import { initKernels } from '../../kernels/loader.js';

/** Bytes per element, or an error for dtypes a layout change cannot move (strings, packed sub-byte). */
export function elementSize(dtype: DType, tensor: string, path?: string): number {
  const bits = dtypeInfo(dtype).bits;
  if (bits !== 8 && bits !== 16 && bits !== 32 && bits !== 64) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `cannot change the layout of a ${dtype} tensor`, { format: 'tf-pytorch', ...(path !== undefined ? { path } : {}), tensor });
  }
  return bits / 8;
}

/** [rows, cols] → [cols, rows]. */
export async function transposeBytes(data: Uint8Array, rows: number, cols: number, es: number): Promise<Uint8Array> {
  await initKernels();
  return transpose2d(data, rows, cols, { elementSize: es });
}

/** [a, b, c, d] → [d, c, a, b], the HWIO → OIHW permutation (3, 2, 0, 1). */
export async function hwioToOihwBytes(data: Uint8Array, shape: readonly [number, number, number, number], es: number): Promise<Uint8Array> {
  await initKernels();
  return permute4d(data, shape, 'HWIO->OIHW', { elementSize: es }).data;
}

/**
 * Reorders equal blocks along the leading dimension: block i of the output is block `order[i]` of the
 * input. Used for the GRU gate order (Keras z,r,h → torch r,z,n) after the kernels are transposed.
 */
export function reorderBlocks(data: Uint8Array, order: readonly number[]): Uint8Array {
  const n = order.length;
  const size = data.byteLength / n;
  const out = new Uint8Array(data.byteLength);
  order.forEach((from, to) => out.set(data.subarray(from * size, (from + 1) * size), to * size));
  return out;
}

/** `count` elements of value 1 in a float dtype (BatchNorm `scale=False` → weight 1). */
export function ones(dtype: DType, count: number, tensor: string): Uint8Array {
  const out = new Uint8Array(count * elementSize(dtype, tensor));
  const dv = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'float32': dv.setFloat32(i * 4, 1, true); break;
      case 'float64': dv.setFloat64(i * 8, 1, true); break;
      case 'float16': dv.setUint16(i * 2, 0x3c00, true); break;
      case 'bfloat16': dv.setUint16(i * 2, 0x3f80, true); break;
      default:
        throw new ModelsmithError(ErrorCodes.DTYPE, `cannot make a ones tensor of ${dtype}`, { format: 'tf-pytorch', tensor });
    }
  }
  return out;
}
