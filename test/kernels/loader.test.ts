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

describe('kernel loader: precompiled module (the workerd path)', () => {
  it('instantiates a WebAssembly.Module compiled from the built .wasm file', async () => {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const bytes = await readFile(join(import.meta.dirname, '../../build/out/kernels-scalar.wasm'));
    const module = await WebAssembly.compile(bytes);
    const k = await initKernels({ module, moduleFlavor: 'scalar' });
    expect(k.flavor).toBe('scalar');
    const src = k.alloc(8);
    k.f32(src, 2).set([5, -1]);
    const out = k.alloc(8);
    k.raw.minmax_f32(src, 2, out);
    expect(Array.from(k.f32(out, 2))).toEqual([-1, 5]);
    k.reset();
  });

  it('the arena starts above the module\'s static data and grows on demand', async () => {
    const k = await initKernels({ flavor: 'simd' });
    const first = k.alloc(1);
    expect(first).toBeGreaterThanOrEqual(k.raw.heap_base());
    expect(first % 64).toBe(0);
    const before = k.capacity;
    const big = k.alloc(before + 65536);
    expect(k.capacity).toBeGreaterThanOrEqual(big + before + 65536);
    k.reset();
  });

  it('refuses allocations past the wasm32 4 GiB limit with E_LIMIT', async () => {
    const k = await initKernels({ flavor: 'simd' });
    expect(() => k.alloc(5 * 1024 ** 3)).toThrowError(/E_LIMIT/);
    k.reset();
  });
});
