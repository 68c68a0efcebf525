import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

// The slow runtime suite (`npm run test:runtimes`): real deno and workerd binaries, rollup bundles,
// npm pack. Files are named *.runtime.ts so the main suite (test/**/*.test.ts) does not pick them up.
// Needs `npm run build && npm run build:bundle` first (the script does both).
export default defineConfig({
  root: resolve(import.meta.dirname, '../..'),
  test: {
    include: ['test/runtimes/**/*.runtime.ts'],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    pool: 'forks',
    // Two shared cores: one runtime at a time keeps timings and the memory measurement meaningful.
    fileParallelism: false,
  },
});
