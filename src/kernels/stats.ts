/**
 * min / max / absmax of float32 tensors, per tensor or per channel along any axis, on the WASM
 * kernels (assembly/stats.ts). Semantics are defined by the reference twin (reference/stats.ts):
 * NaN skipped, NaN when no value is left, -0 < +0. Inputs of any size go through bounded windows.
 */
import { axisView, finishAxis, finishMinMax } from './reference/stats.js';
import type { AxisMinMax, MinMax } from './reference/stats.js';
import { forEachWindow, resolveKernels, windowElements, withArena } from './window.js';
import type { KernelOptions } from './window.js';

export type { AxisMinMax, MinMax } from './reference/stats.js';

export function minMax(x: Float32Array, opts?: KernelOptions): MinMax {
  const k = resolveKernels(opts);
  return withArena(k, () => {
    const acc = k.alloc(8);
    k.f32(acc, 2).set([Infinity, -Infinity]);
    forEachWindow(x.length, windowElements(4, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count * 4);
        k.f32(src, count).set(x.subarray(start, start + count));
        k.raw.minmax_acc_f32(src, count, acc);
      });
    });
    const [lo, hi] = k.f32(acc, 2);
    return finishMinMax(lo!, hi!);
  });
}

/** Per-channel min/max/absmax along `axis` (negative counts from the end) of a tensor of `shape`. */
export function minMaxAxis(x: Float32Array, shape: readonly number[], axis: number, opts?: KernelOptions): AxisMinMax {
  const { C, inner } = axisView(shape, axis, x.length);
  const k = resolveKernels(opts);
  return withArena(k, () => {
    const lo = k.alloc(C * 4);
    const hi = k.alloc(C * 4);
    k.f32(lo, C).fill(Infinity);
    k.f32(hi, C).fill(-Infinity);
    forEachWindow(x.length, windowElements(4, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count * 4);
        k.f32(src, count).set(x.subarray(start, start + count));
        // The window's first element sits at channel c0, inner offset i0.
        k.raw.minmax_axis_f32(src, count, C, inner, Math.floor(start / inner) % C, start % inner, lo, hi);
      });
    });
    return finishAxis(k.f32(lo, C).slice(), k.f32(hi, C).slice());
  });
}
