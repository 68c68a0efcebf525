/**
 * min / max / absmax of float32 tensors, per tensor or per channel along any axis, on the WASM
 * kernels (assembly/stats.ts). Semantics are defined by the reference twin (reference/stats.ts):
 * NaN skipped, NaN when no value is left, -0 < +0. Inputs of any size go through bounded windows.
 */
import { axisView, finishAxis, finishMinMax } from './reference/stats.js';
import type { AxisMinMax, Checked, MinMax } from './reference/stats.js';
import type { Kernels } from './loader.js';
import { forEachWindow, resolveKernels, windowElements, withArena } from './window.js';
import type { KernelOptions } from './window.js';

export type { AxisMinMax, Checked, MinMax } from './reference/stats.js';

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

// ---------------------------------------------------------------------------------------------
// Checked variants: min/max plus the number of NaN / ±Inf values, from one pass (the *_nf kernels).
// The window accumulators work on data the caller already placed in the arena (read straight from
// a file by readIntoArena, say), so a tensor is never copied just to be scanned.

/** Running per-tensor min/max over consecutive windows of one tensor held in the arena. */
export interface MinMaxWindows {
  /** Fold `count` floats at arena pointer `ptr` (elements start..start+count of the tensor). */
  add(ptr: number, start: number, count: number): void;
  finish(): Checked<MinMax>;
}

/** Allocates its accumulator in the arena: call inside the caller's arena scope (withArena / mark-reset). */
export function minMaxWindows(k: Kernels): MinMaxWindows {
  const acc = k.alloc(8);
  k.f32(acc, 2).set([Infinity, -Infinity]);
  let nonFinite = 0;
  return {
    add(ptr, _start, count) {
      nonFinite += k.raw.minmax_acc_nf_f32(ptr, count, acc) as number;
    },
    finish() {
      const [lo, hi] = k.f32(acc, 2);
      return { ...finishMinMax(lo!, hi!), nonFinite };
    },
  };
}

export interface AxisMinMaxWindows {
  add(ptr: number, start: number, count: number): void;
  finish(): Checked<AxisMinMax>;
}

/** Per-channel twin of minMaxWindows for a tensor of `shape` (checked against `length`). */
export function minMaxAxisWindows(k: Kernels, shape: readonly number[], axis: number, length: number): AxisMinMaxWindows {
  const { C, inner } = axisView(shape, axis, length);
  const lo = k.alloc(C * 4);
  const hi = k.alloc(C * 4);
  k.f32(lo, C).fill(Infinity);
  k.f32(hi, C).fill(-Infinity);
  let nonFinite = 0;
  return {
    add(ptr, start, count) {
      nonFinite += k.raw.minmax_axis_nf_f32(ptr, count, C, inner, Math.floor(start / inner) % C, start % inner, lo, hi) as number;
    },
    finish() {
      return { ...finishAxis(k.f32(lo, C).slice(), k.f32(hi, C).slice()), nonFinite };
    },
  };
}

/** minMax plus the number of NaN / ±Inf elements, in one pass. */
export function minMaxChecked(x: Float32Array, opts?: KernelOptions): Checked<MinMax> {
  const k = resolveKernels(opts);
  return withArena(k, () => {
    const w = minMaxWindows(k);
    forEachWindow(x.length, windowElements(4, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count * 4);
        k.f32(src, count).set(x.subarray(start, start + count));
        w.add(src, start, count);
      });
    });
    return w.finish();
  });
}

/** minMaxAxis plus the number of NaN / ±Inf elements, in one pass. */
export function minMaxAxisChecked(x: Float32Array, shape: readonly number[], axis: number, opts?: KernelOptions): Checked<AxisMinMax> {
  const k = resolveKernels(opts);
  return withArena(k, () => {
    const w = minMaxAxisWindows(k, shape, axis, x.length);
    forEachWindow(x.length, windowElements(4, 1, opts), (start, count) => {
      withArena(k, () => {
        const src = k.alloc(count * 4);
        k.f32(src, count).set(x.subarray(start, start + count));
        w.add(src, start, count);
      });
    });
    return w.finish();
  });
}
