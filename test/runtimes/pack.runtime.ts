/**
 * The published-style package: `npm pack`, install the tarball into a fresh project, then use it the
 * way a user would — `import` from ESM (Node entry), `modelsmith/web`, the export conditions of the
 * other runtimes, and the CLI through `npx`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeCompress, requireBuilt, ROOT, sha256, SAMPLE_ONNX } from './rt-helpers.js';

const run = promisify(execFile);
let dir: string;
let app: string;

beforeAll(async () => {
  requireBuilt();
  dir = mkdtempSync(join(tmpdir(), 'modelsmith-pack-'));
  // --ignore-scripts: dist/ is already built; `prepare` would rebuild it.
  await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  app = join(dir, 'app');
  await run('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  // onnxruntime-node is optional (only `eval` needs it) and large: leave it out, as a user may.
  await run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--omit=optional', '--prefer-offline', join(dir, tgz)], { cwd: app });
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm pack + install', () => {
  it('the tarball carries the tsc output, the bundles and the kernel .wasm, not the sources or tests', async () => {
    const { stdout } = await run('tar', ['-tzf', join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!)]);
    const files = stdout.split('\n');
    for (const f of ['package/dist/node.js', 'package/dist/index.d.ts', 'package/dist/bundle/modelsmith.js', 'package/dist/bundle/modelsmith.workerd.js', 'package/dist/bundle/kernels-simd.wasm', 'package/bin/modelsmith.js']) {
      expect(files).toContain(f);
    }
    expect(files.some((f) => f.startsWith('package/src/') || f.startsWith('package/test/'))).toBe(false);
  });

  it('`import` from ESM gets the Node entry; with the packaged bundle it compresses byte-identically to the sources', async () => {
    const out = join(dir, 'esm.onnx');
    // The passes are not exported from the package root yet (src/index.ts), so the compression goes
    // through the packaged universal bundle (`modelsmith/bundle/*`), fed by the Node entry's file I/O.
    const script = `
      import { FileSource, AtomicFileSink, readOnnx as readFromRoot } from 'modelsmith';
      import { BlobSource } from 'modelsmith/web';
      import * as ms from 'modelsmith/bundle/modelsmith.js';
      const src = await FileSource.open(${JSON.stringify(SAMPLE_ONNX)});
      const model = await ms.readOnnx(src);
      const { report } = await ms.quantizeWeights(model, { dtype: 'int8', perChannel: true, symmetric: true });
      const sink = await AtomicFileSink.create(${JSON.stringify(out)}, [src.name]);
      await ms.writeOnnx(model, sink);
      await sink.commit();
      await src.close();
      console.log(JSON.stringify({ root: typeof readFromRoot, web: typeof BlobSource, quantized: report.quantized.length }));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    expect(JSON.parse(stdout)).toEqual({ root: 'function', web: 'function', quantized: 42 });
    expect(sha256(readFileSync(out))).toBe(sha256(await nodeCompress(SAMPLE_ONNX, 'int8')));
  });

  it('export conditions: deno/browser → universal bundle, workerd → workerd bundle, node → dist/node.js', async () => {
    const resolveWith = async (cond?: string) => {
      const args = [...(cond ? [`--conditions=${cond}`] : []), '--input-type=module', '-e', "console.log(import.meta.resolve('modelsmith'))"];
      return (await run(process.execPath, args, { cwd: app })).stdout.trim();
    };
    expect(await resolveWith()).toMatch(/node_modules\/modelsmith\/dist\/node\.js$/);
    expect(await resolveWith('deno')).toMatch(/dist\/bundle\/modelsmith\.js$/);
    expect(await resolveWith('browser')).toMatch(/dist\/bundle\/modelsmith\.js$/);
    expect(await resolveWith('workerd')).toMatch(/dist\/bundle\/modelsmith\.workerd\.js$/);
  });

  it('the CLI runs through npx and its int8 output equals the API reference', async () => {
    const out = join(dir, 'cli.onnx');
    const { stdout } = await run('npx', ['--no-install', 'modelsmith', 'quantize', SAMPLE_ONNX, '-o', out, '--per-channel', '--symmetric', '--json'], { cwd: app });
    expect(JSON.parse(stdout)).toBeTypeOf('object');
    expect(sha256(readFileSync(out))).toBe(sha256(await nodeCompress(SAMPLE_ONNX, 'int8')));
    const bad = await run('npx', ['--no-install', 'modelsmith', 'quantize', join(dir, 'missing.onnx'), '-o', join(dir, 'x.onnx')], { cwd: app }).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).not.toBe(0);
    expect((bad as { stderr: string }).stderr).toMatch(/E_IO/);
  });
});
