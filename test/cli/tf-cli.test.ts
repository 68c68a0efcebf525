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

  it('eval model.onnx saved_model_dir compares onnxruntime with the SavedModel through TF.js', async () => {
    const model = join(import.meta.dirname, '../fixtures/fashion-mnist/cnn.onnx');
    const out = join(dir, 'cnn_sm');
    await run(process.execPath, [BIN, 'convert', model, out, '--to', 'savedmodel']);
    const r = await run(process.execPath, [BIN, 'eval', model, out, '--samples', '3', '--shape', 'input=4,1,28,28', '--json']);
    const rep = JSON.parse(r.stdout);
    expect(rep.candidateFormat).toBe('savedmodel');
    expect(rep.samples).toBe(3);
    expect(rep.outputs).toHaveLength(1);
    expect(rep.outputs[0].name).toBe('logits');
    expect(rep.outputs[0].shape).toEqual([4, 10]);
    expect(rep.outputs[0].elements).toBe(120);
    expect(rep.outputs[0].maxAbs).toBeLessThanOrEqual(1e-4);
    expect(rep.outputs[0].top1).toBe(1);
    expect(rep.weights).toEqual([]);
    // A folder that is not a SavedModel is named as such.
    const bad = await run(process.execPath, [BIN, 'eval', model, dir]).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).not.toBe(0);
    expect((bad as { stderr: string }).stderr).toMatch(/E_USAGE.*without saved_model\.pb/);
  });

  it('convert --to graphdef --nhwc-io writes a frozen .pb that OpenCV dnn runs like onnxruntime', async () => {
    const model = join(import.meta.dirname, '../fixtures/fashion-mnist/cnn.onnx');
    const pb = join(dir, 'cnn.pb');
    const r = await run(process.execPath, [BIN, 'convert', model, '-o', pb, '--to', 'graphdef', '--nhwc-io', '--json']);
    const rep = JSON.parse(r.stdout);
    expect(rep).toMatchObject({ ok: true, to: 'graphdef' });
    expect(rep.report.transposesLeft).toBeLessThanOrEqual(1);
    const x = Float32Array.from({ length: 3 * 28 * 28 }, (_, i) => (Math.sin(i * 0.7) + 1) / 2);
    const py = [
      'import sys, json, numpy as np, cv2',
      'net = cv2.dnn.readNetFromTensorflow(sys.argv[1])',
      'x = np.array(json.loads(sys.stdin.read()), dtype=np.float32).reshape(3, 1, 28, 28)',
      'net.setInput(x)',
      'print(json.dumps(net.forward().astype(float).ravel().tolist()))',
    ].join('\n');
    const { execFileSync } = await import('node:child_process');
    const cv = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, pb], { input: JSON.stringify(Array.from(x)) }).toString()) as number[];
    const s = await ort.InferenceSession.create(model);
    const want = (await s.run({ input: new ort.Tensor('float32', x, [3, 1, 28, 28]) })).logits!.data as Float32Array;
    expect(cv).toHaveLength(want.length);
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(cv[i]! - want[i]!));
    expect(max).toBeLessThanOrEqual(1e-4);
    const again = await run(process.execPath, [BIN, 'convert', model, '-o', pb, '--to', 'graphdef', '--constants']).catch((e: { code: number; stderr: string }) => e);
    expect((again as { stderr: string }).stderr).toMatch(/E_USAGE: --constants is implied/);
  });
});
