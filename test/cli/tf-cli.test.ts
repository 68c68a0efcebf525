/**
 * `convert model.onnx out_dir --to savedmodel` through the built CLI: the folder appears whole, its
 * serving signature run through freeze → TF.js matches onnxruntime, and an existing folder is refused.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSavedModel, runSignature } from '../../src/formats/savedmodel/index.js';
import { FileSource, siblingResolver } from '../../src/platform/node.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/modelsmith.js');
const SAMPLE = join(import.meta.dirname, '../../examples/sample/version-slim-320.onnx');

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'ms-tfcli-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('convert --to savedmodel (CLI)', () => {
  it('writes a SavedModel whose TF.js execution matches onnxruntime; refuses an existing folder', async () => {
    const out = join(dir, 'slim_sm');
    const r = await run(process.execPath, [BIN, 'convert', SAMPLE, out, '--to', 'savedmodel', '--json']);
    const rep = JSON.parse(r.stdout);
    expect(rep.ok).toBe(true);
    expect(rep.report.transposesLeft).toBeLessThanOrEqual(2);
    expect((await readdir(dir)).sort()).toEqual(['slim_sm']);
    const opened: FileSource[] = [];
    const sm = await readSavedModel(siblingResolver(join(out, 'saved_model.pb'), opened), { path: out });
    const x = Float32Array.from({ length: 3 * 240 * 320 }, (_, i) => Math.sin(i * 0.37));
    const tf = await runSignature(sm, { input: { name: 'input', dtype: 'float32', shape: [1, 3, 240, 320], data: new Uint8Array(x.buffer) } });
    await Promise.all(opened.map((f) => f.close()));
    const s = await ort.InferenceSession.create(SAMPLE);
    const want = await s.run({ input: new ort.Tensor('float32', x, [1, 3, 240, 320]) });
    for (const k of ['scores', 'boxes']) {
      const got = new Float32Array(tf[k]!.data.slice().buffer);
      const ref = want[k]!.data as Float32Array;
      expect(got.length).toBe(ref.length);
      let max = 0;
      for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(got[i]! - ref[i]!));
      expect(max, k).toBeLessThanOrEqual(1e-4);
    }
    const again = await run(process.execPath, [BIN, 'convert', SAMPLE, out, '--to', 'savedmodel']).catch((e: { code: number; stderr: string }) => e);
    expect((again as { code: number }).code).toBe(1);
    expect((again as { stderr: string }).stderr).toContain('E_IO');
    expect(existsSync(join(out, 'saved_model.pb'))).toBe(true);
  });
});
