#!/usr/bin/env node
/**
 * Bundles the page (main.ts) and the Web Worker (worker.ts) into examples/web/dist/ with rollup.
 * The library is taken from the repo's compiled dist/ (run `npm run build:ts` first); the page's own
 * .ts files are only stripped of types here (type-check them with `npx tsc -p examples/web`).
 * Any import of a Node built-in is an error: the bundle must run in a browser as is.
 *
 *   node examples/web/build.mjs [--no-sourcemap]
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rollup } from 'rollup';
import { nodeResolve } from '@rollup/plugin-node-resolve';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const out = join(here, 'dist');

if (!existsSync(join(repo, 'dist/index.js'))) {
  console.error('dist/ is missing: run `npm run build:ts` (and `npm run build:wasm` once) first');
  process.exit(1);
}

/** Our sources import './x.js' (NodeNext style); map that to the .ts file next to it and strip its types. */
function pageTypescript() {
  return {
    name: 'page-typescript',
    resolveId(source, importer) {
      if (!importer || !source.startsWith('.') || !source.endsWith('.js')) return null;
      const ts = resolve(dirname(importer), source.slice(0, -3) + '.ts');
      return ts.startsWith(here) && existsSync(ts) ? ts : null;
    },
    transform(code, id) {
      if (!id.endsWith('.ts')) return null;
      const r = ts.transpileModule(code, {
        fileName: id,
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true, sourceMap: true },
      });
      return { code: r.outputText, map: r.sourceMapText ? JSON.parse(r.sourceMapText) : null };
    },
  };
}

/** Fail on any Node built-in instead of letting rollup leave a bare import the browser cannot load. */
function noNodeBuiltins() {
  return {
    name: 'no-node-builtins',
    resolveId(source, importer) {
      if (source.startsWith('node:')) throw new Error(`${importer} imports ${source}: the web bundle must not use Node modules`);
      return null;
    },
  };
}

const sourcemap = !process.argv.includes('--no-sourcemap');
const started = performance.now();
await Promise.all(['worker', 'main'].map(async (entry) => {
  const bundle = await rollup({
    input: join(here, `${entry}.ts`),
    plugins: [noNodeBuiltins(), pageTypescript(), nodeResolve({ browser: true, preferBuiltins: false })],
    onwarn(w, warn) {
      // Unresolved imports would become runtime failures in the browser: stop the build instead.
      if (w.code === 'UNRESOLVED_IMPORT' || w.code === 'MISSING_EXPORT') throw new Error(w.message);
      if (w.code === 'CIRCULAR_DEPENDENCY' || w.code === 'THIS_IS_UNDEFINED') return;
      warn(w);
    },
  });
  // Classic scripts (iife): a module worker would be fine in current browsers, but a classic one loads everywhere.
  await bundle.write({ file: join(out, `${entry}.js`), format: 'iife', sourcemap });
  await bundle.close();
}));
console.log(`built examples/web/dist/{main,worker}.js in ${((performance.now() - started) / 1000).toFixed(1)} s`);
