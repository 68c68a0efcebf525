/**
 * Layout permutations on the WASM kernels (assembly/layout.ts): 2-D transpose and the 4-D
 * NCHW<->NHWC and OIHW<->HWIO changes, for elements of 1, 2, 4 or 8 bytes (moved bit-exactly).
 * Plain-TS twins and the planning are in ./reference/layout.ts.
 *
 * Windowing: a permutation is not a stream, so a big tensor is cut into 2-D tiles of its plan
 * (rows r0..r1 × cols c0..c1 of one batch entry). A tile's source rows are gathered into the
 * arena, transposed there, and its destination rows scattered back; tiles are near-square so both
 * copies move runs of a few thousand bytes.
 */
import type { Kernels } from './loader.js';
import { type KernelOptions, getWindowBytes, resolveKernels, withArena } from './window.js';
import {
  type ElementArray, type Layout4D, type LayoutOptionsBase, type TransposePlan,
  elementInfo, permutePlan, sameTypeLike, transposePlan,
} from './reference/layout.js';

export type { ElementArray, Layout4D } from './reference/layout.js';

export interface LayoutOptions extends KernelOptions, LayoutOptionsBase {}

function view(a: ElementArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function runPlan(K: Kernels, src: Uint8Array, dst: Uint8Array, es: number, p: TransposePlan, opts?: LayoutOptions): void {
  const total = p.batch * p.rows * p.cols;
  if (total === 0) return;
  const budget = opts?.windowBytes ?? getWindowBytes();
  withArena(K, () => {
    if (2 * src.byteLength <= budget) {
      // Everything fits: one kernel call over the whole plan.
      const s = K.alloc(src.byteLength);
      const d = K.alloc(src.byteLength);
      K.u8(s, src.byteLength).set(src);
      K.raw.layout_transpose(s, d, es, p.batch, p.srcBatch, p.dstBatch, p.rows, p.cols, p.srcStride, p.dstStride);
      dst.set(K.u8(d, src.byteLength));
      return;
    }
    const area = Math.max(1, Math.floor(budget / (2 * es))); // elements per tile
    const side = Math.max(1, Math.floor(Math.sqrt(area)));
    // Near-square tiles; when one dimension is shorter than `side` the other grows to fill the area.
    const tc = Math.min(p.cols, Math.max(side, Math.floor(area / Math.min(p.rows, side))));
    const tr = Math.min(p.rows, Math.max(1, Math.floor(area / tc)));
    const s = K.alloc(tr * tc * es);
    const d = K.alloc(tr * tc * es);
    for (let b = 0; b < p.batch; b++) {
      for (let r0 = 0; r0 < p.rows; r0 += tr) {
        const nr = Math.min(tr, p.rows - r0);
        for (let c0 = 0; c0 < p.cols; c0 += tc) {
          const nc = Math.min(tc, p.cols - c0);
          const sv = K.u8(s, nr * nc * es);
          for (let r = 0; r < nr; r++) {
            const from = (b * p.srcBatch + (r0 + r) * p.srcStride + c0) * es;
            sv.set(src.subarray(from, from + nc * es), r * nc * es);
          }
          K.raw.layout_transpose(s, d, es, 1, 0, 0, nr, nc, nc, nr);
          const dv = K.u8(d, nr * nc * es);
          for (let c = 0; c < nc; c++) {
            const to = (b * p.dstBatch + (c0 + c) * p.dstStride + r0) * es;
            dst.set(dv.subarray(c * nr * es, (c + 1) * nr * es), to);
          }
        }
      }
    }
  });
}

/** [rows, cols] -> [cols, rows]. */
export function transpose2d<T extends ElementArray>(src: T, rows: number, cols: number, opts?: LayoutOptions): T {
  const { es, count } = elementInfo(src, opts);
  const plan = transposePlan(rows, cols, count);
  const dst = sameTypeLike(src);
  runPlan(resolveKernels(opts), view(src), view(dst), es, plan, opts);
  return dst;
}

/** 4-D layout change (`'NCHW->NHWC'`, `'NHWC->NCHW'`, `'OIHW->HWIO'`, `'HWIO->OIHW'`); returns data and new shape. */
export function permute4d<T extends ElementArray>(src: T, shape: readonly number[], layout: Layout4D, opts?: LayoutOptions): { data: T; shape: number[] } {
  const { es, count } = elementInfo(src, opts);
  const { plan, shape: outShape } = permutePlan(shape, layout, count);
  const dst = sameTypeLike(src);
  runPlan(resolveKernels(opts), view(src), view(dst), es, plan, opts);
  return { data: dst, shape: outShape };
}
