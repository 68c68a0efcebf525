import { describe, expect, it } from 'vitest';
import { initKernels } from '../../src/kernels/loader.js';

describe('kernel loader', () => {
  for (const flavor of ['simd', 'scalar'] as const) {
    it(`instantiates the ${flavor} build and runs minmax`, async () => {
      const k = await initKernels({ flavor });
      expect(k.flavor).toBe(flavor);
      const src = k.alloc(4 * 5);
      k.f32(src, 5).set([3, NaN, -2, 7, 1]);
      const out = k.alloc(8);
      k.raw.minmax_f32(src, 5, out);
      expect(Array.from(k.f32(out, 2))).toEqual([-2, 7]);
      k.reset();
    });
  }
});
