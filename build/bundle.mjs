// Builds the runtime bundles (rollup.config.mjs) from dist/ and puts the kernel .wasm files next to the
// workerd bundle, which imports them as modules. Needs `npm run build:ts` (and build:wasm) first.
import { rollup } from 'rollup';
import { copyFileSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
if (!existsSync('dist/index.js')) {
  console.error('bundle: dist/index.js missing, run `npm run build:ts` first');
  process.exit(1);
}
const { default: configs, apiModule } = await import('../rollup.config.mjs');
const t0 = Date.now();
for (const cfg of configs) {
  const { output, ...input } = cfg;
  const bundle = await rollup(input);
  await bundle.write(output);
  await bundle.close();
}
mkdirSync('dist/bundle', { recursive: true });
for (const f of ['kernels-simd.wasm', 'kernels-scalar.wasm']) {
  const from = existsSync(join('dist/wasm', f)) ? join('dist/wasm', f) : join('build/out', f);
  copyFileSync(from, join('dist/bundle', f));
}
// Types for direct imports of a bundle file (`modelsmith/bundle/modelsmith.js`): the same declarations
// tsc wrote for dist/, re-exported under the bundle's surface.
const dts = apiModule('..');
writeFileSync('dist/bundle/modelsmith.d.ts', dts);
writeFileSync(
  'dist/bundle/modelsmith.workerd.d.ts',
  dts + "/** Registers the imported kernel modules (both flavors) with the loader; the passes call it themselves. */\nexport { initKernels } from '../kernels/loader.js';\n",
);
for (const f of ['modelsmith.js', 'modelsmith.workerd.js', 'kernels-simd.wasm', 'kernels-scalar.wasm']) {
  console.error(`bundle: dist/bundle/${f} ${statSync(join('dist/bundle', f)).size} B`);
}
console.error(`bundle: done in ${Date.now() - t0} ms`);
