/**
 * The learning features in another runtime: the universal bundle under the real `deno` binary (code
 * generation from strings disallowed) runs the execution engine on the Fashion-MNIST fixture —
 * inference, one training step's gradients, static calibration → QDQ model — and must agree with the
 * same work done by the sources in Node.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, requireBuilt, ROOT, sha256 } from './rt-helpers.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../src/formats/onnx/write.js';
import { initKernels } from '../../src/kernels/loader.js';
import { createEngine } from '../../src/engine/engine.js';
import { calibrate } from '../../src/compress/static/calibrate.js';
import { engineRunner } from '../../src/compress/static/pipeline.js';
import { quantizeStatic } from '../../src/compress/static/quantize.js';
import { crossEntropy } from '../../src/train/losses.js';

const DENO = resolve(ROOT, 'node_modules/.bin/deno');
const FIX = resolve(ROOT, 'test/fixtures/fashion-mnist');
const N = 32;

/** The same job, as text both runtimes execute: `ms` is the module namespace, `bytes`/`pixels` the fixture. */
const JOB = `
async function job(ms, bytes, pixels, labels) {
  await ms.initKernels();
  const model = ms.decodeOnnx(bytes, { path: 'cnn.onnx' });
  const engine = await ms.createEngine(model);
  const x = new Float32Array(${N} * 784);
  for (let i = 0; i < x.length; i++) x[i] = pixels[16 + i] / 255;
  const input = { dtype: 'float32', dims: [${N}, 1, 28, 28], data: x };
  const logits = engine.run({ input }).logits;
  const { values, tape } = engine.forward({ input });
  const loss = ms.crossEntropy(values.logits, Array.from(labels.subarray(8, 8 + ${N})));
  const grads = engine.backward(tape, { logits: loss.grad });
  const gradSums = {};
  for (const [k, g] of grads) gradSums[k] = g.data.reduce((a, b) => a + Math.abs(b), 0);
  const batches = [0, 1].map((b) => ({ inputs: { input: { ...input, dims: [${N / 2}, 1, 28, 28], data: x.slice(b * ${N / 2} * 784, (b + 1) * ${N / 2} * 784) } } }));
  const cal = await ms.calibrate(model, batches, { method: 'entropy', run: ms.engineRunner(engine) });
  const { report } = await ms.quantizeStatic(model, cal.ranges, {});
  const qdq = await ms.encodeOnnx(model);
  return { logits: Array.from(logits.data), loss: loss.loss, gradSums, scales: report.activations.map((a) => [a.tensor, a.scale, a.zeroPoint]), qdqBytes: qdq.byteLength, qdq };
}
`;

let dir: string;
beforeAll(() => {
  requireBuilt();
  dir = mkdtempSync(join(tmpdir(), 'modelsmith-engine-rt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('execution engine in Deno (universal bundle)', () => {
  it('inference, gradients and static calibration agree with Node', async () => {
    const script = join(dir, 'engine.ts');
    writeFileSync(script, `import * as ms from ${JSON.stringify(BUNDLE)};
${JOB}
const r = await job(ms, await Deno.readFile(${JSON.stringify(join(FIX, 'cnn.onnx'))}), await Deno.readFile(${JSON.stringify(join(FIX, 'test-images.idx3-ubyte'))}), await Deno.readFile(${JSON.stringify(join(FIX, 'test-labels.idx1-ubyte'))}));
await Deno.writeFile(${JSON.stringify(join(dir, 'qdq.onnx'))}, r.qdq);
delete r.qdq;
console.log(JSON.stringify(r));
`);
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      execFile(DENO, ['run', '--no-lock', '--no-prompt', '--v8-flags=--disallow-code-generation-from-strings', '--allow-read', `--allow-write=${dir}`, script],
        { cwd: ROOT, env: { ...process.env, DENO_DIR: join(dir, '.deno'), NO_COLOR: '1' }, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
    expect(out.code, out.stderr).toBe(0);
    const got = JSON.parse(out.stdout.trim()) as { logits: number[]; loss: number; gradSums: Record<string, number>; scales: [string, number, number][]; qdqBytes: number };

    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the job text is ours; Node runs it the same way Deno does
    const job = new Function(`${JOB}; return job;`)() as (ms: unknown, b: Uint8Array, p: Uint8Array, l: Uint8Array) => Promise<typeof got & { qdq: Uint8Array }>;
    const want = await job({ initKernels, decodeOnnx, createEngine, crossEntropy, calibrate, engineRunner, quantizeStatic, encodeOnnx },
      readFileSync(join(FIX, 'cnn.onnx')), readFileSync(join(FIX, 'test-images.idx3-ubyte')), readFileSync(join(FIX, 'test-labels.idx1-ubyte')));

    expect(got.logits).toHaveLength(N * 10);
    let worst = 0;
    for (let i = 0; i < want.logits.length; i++) worst = Math.max(worst, Math.abs(got.logits[i]! - want.logits[i]!));
    expect(worst).toBeLessThanOrEqual(1e-5);
    expect(got.loss).toBeCloseTo(want.loss, 5);
    expect(Object.keys(got.gradSums).sort()).toEqual(Object.keys(want.gradSums).sort());
    expect(Object.keys(got.gradSums)).toHaveLength(8);
    for (const [k, v] of Object.entries(want.gradSums)) expect(got.gradSums[k]!, k).toBeCloseTo(v, 4);
    expect(got.scales).toEqual(want.scales);
    expect(got.qdqBytes).toBe(want.qdq.byteLength);
    expect(sha256(readFileSync(join(dir, 'qdq.onnx')))).toBe(sha256(want.qdq));
  });
});
