// Runtime bundles built from the tsc output in dist/ (so types and bundles come from the same sources):
//   dist/bundle/modelsmith.js          universal ESM (browsers, Deno, bundlers): kernels embedded as base64
//   dist/bundle/modelsmith.workerd.js  Cloudflare Workers: kernels imported as precompiled .wasm modules,
//                                      because workerd refuses to compile WebAssembly from bytes
// Both carry the platform-neutral API plus the web byte I/O (Blob source, stream sink), the weight-set
// passes and the safetensors codec that the runtime examples need. Run `npm run build:ts` first.
import { nodeResolve } from '@rollup/plugin-node-resolve';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist').split('\\').join('/');

/**
 * What the bundles expose besides dist/index.js, as [names, module under dist/] (named, so a later
 * index.ts export of the same name is not a conflict). build/bundle.mjs writes the .d.ts from it too.
 */
export const EXTRA_EXPORTS = [
  [['BlobSource', 'StreamSink', 'BlobSink', 'ForwardStreamSource'], 'platform/web.js'],
  [['quantizeWeights'], 'compress/quantize/weight.js'],
  [['castModel'], 'compress/cast.js'],
  [['quantizeWeightSet', 'QUANT_METADATA_KEY'], 'compress/weights/quantize.js'],
  [['castWeightSet'], 'compress/weights/cast.js'],
  [['readSafetensors', 'openSafetensors', 'writeSafetensors', 'planSafetensors'], 'formats/safetensors/index.js'],
];

/** The entry text: `from` is the path prefix of dist/ as seen from the importing file. */
export function apiModule(from) {
  return [`export * from '${from}/index.js';`, ...EXTRA_EXPORTS.map(([names, mod]) => `export { ${names.join(', ')} } from '${from}/${mod}';`)].join('\n') + '\n';
}

const API = apiModule(dist);

// workerd: the two flavors come in as WebAssembly.Module imports; both are registered with the loader
// so the passes' own `initKernels()` calls hit its cache (the SIMD one stays the default, as in Node).
const WORKERD = `
export * from 'virtual:api';
import { initKernels as initFrom } from '${dist}/kernels/loader.js';
import simd from './kernels-simd.wasm';
import scalar from './kernels-scalar.wasm';
let ready;
export function initKernels(opts = {}) {
  if (opts.module) return initFrom(opts);
  ready ??= initFrom({ module: scalar, moduleFlavor: 'scalar' }).then(() => initFrom({ module: simd, moduleFlavor: 'simd' }));
  return opts.flavor === 'scalar' ? ready.then(() => initFrom({ flavor: 'scalar' })) : ready;
}
`;

// In the workerd build the embedded base64 copies would be dead weight (and unusable there).
const NO_EMBEDDED = "export const SIMD_WASM_BASE64 = '';\nexport const SCALAR_WASM_BASE64 = '';\n";

function virtual(entries, { stubWasmBytes = false } = {}) {
  return {
    name: 'modelsmith-virtual',
    resolveId(id) {
      if (id in entries) return '\0' + id;
      if (id.endsWith('.wasm')) return { id, external: true };
      return null;
    },
    load(id) {
      if (id.startsWith('\0') && id.slice(1) in entries) return entries[id.slice(1)];
      if (stubWasmBytes && id.endsWith('/kernels/wasm-bytes.generated.js')) return NO_EMBEDDED;
      return null;
    },
  };
}

const common = {
  onwarn(w, warn) {
    if (w.code === 'CIRCULAR_DEPENDENCY' && /node_modules/.test(w.message)) return;
    // tsc's __awaiter helpers test `this` at module top level; undefined there is what they expect.
    if (w.code === 'THIS_IS_UNDEFINED') return;
    warn(w);
  },
};

export default [
  {
    ...common,
    input: 'virtual:api',
    plugins: [virtual({ 'virtual:api': API }), nodeResolve({ exportConditions: ['browser', 'import', 'default'], preferBuiltins: false })],
    output: { file: 'dist/bundle/modelsmith.js', format: 'es', sourcemap: true },
  },
  {
    ...common,
    input: 'virtual:workerd',
    plugins: [
      virtual({ 'virtual:api': API, 'virtual:workerd': WORKERD }, { stubWasmBytes: true }),
      nodeResolve({ exportConditions: ['workerd', 'worker', 'browser', 'import', 'default'], preferBuiltins: false }),
    ],
    output: { file: 'dist/bundle/modelsmith.workerd.js', format: 'es', sourcemap: true },
  },
];
