import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/modelsmith.js');
const SAMPLE = join(import.meta.dirname, '../../examples/sample/version-slim-320.onnx');
const CORPUS = join(import.meta.dirname, '../../../shared/corpus/onnx');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('modelsmith CLI (built bin)', () => {
  it('inspect --json prints exactly one JSON object with the model facts', async () => {
    const r = await cli(['inspect', SAMPLE, '--json']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const rep = JSON.parse(lines[0]!);
    expect(rep.ok).toBe(true);
    expect(rep.format).toBe('onnx');
    expect(rep.irVersion).toBe(4);
    expect(rep.producer.name).toBe('pytorch');
    expect(rep.inputs.map((v: { name: string }) => v.name)).toEqual(['input']);
    expect(rep.outputs.map((v: { name: string }) => v.name)).toEqual(['scores', 'boxes']);
    expect(rep.ops.find((o: { op: string }) => o.op === 'Conv').count).toBe(42);
    expect(rep.parameters).toBeGreaterThan(290_000);
  });

  it('inspect without --json writes the human report to stdout', async () => {
    const r = await cli(['inspect', SAMPLE]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('largest tensors:');
    expect(r.stdout).toContain('base_net.12.3.weight');
  });

  it('convert --external-data writes a model + data file that re-reads identically', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ms-cli-'));
    const out = join(dir, 'm.onnx');
    const r = await cli(['convert', SAMPLE, '-o', out, '--external-data', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.externalTensors).toBeGreaterThan(10);
    expect((await readdir(dir)).sort()).toEqual(['m.onnx', 'm.onnx.data']);
    const again = await cli(['inspect', out, '--json']);
    const a = JSON.parse((await cli(['inspect', SAMPLE, '--json'])).stdout);
    const b = JSON.parse(again.stdout);
    expect(b.parameters).toBe(a.parameters);
    expect(b.externalData[0].location).toBe('m.onnx.data');
  });

  it('refuses to overwrite its input and leaves it untouched', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ms-cli-'));
    const p = join(dir, 'in.onnx');
    const bytes = await readFile(SAMPLE);
    await writeFile(p, bytes);
    const r = await cli(['convert', p, p]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^modelsmith: E_IO: refusing to overwrite/m);
    expect((await readFile(p)).equals(bytes)).toBe(true);
    expect(await readdir(dir)).toEqual(['in.onnx']);
  });

  it('a corrupt input ends in one error line with a code, no output file, JSON error under --json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ms-cli-'));
    const p = join(dir, 'bad.onnx');
    await writeFile(p, (await readFile(SAMPLE)).subarray(0, 5000));
    const out = join(dir, 'out.onnx');
    const r = await cli(['convert', p, out, '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/modelsmith: E_(TRUNCATED|MALFORMED)/);
    expect(JSON.parse(r.stdout).error.code).toMatch(/^E_/);
    await expect(stat(out)).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['bad.onnx']);
  });

  it('usage errors exit 2 with E_USAGE; an unknown verb is a usage error', async () => {
    const u = await cli(['inspect']);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('E_USAGE');
    const bad = await cli(['inspect', SAMPLE, '--frobnicate']);
    expect(bad.code).toBe(2);
    const q = await cli(['distill', SAMPLE]);
    expect(q.code).toBe(2);
    expect(q.stderr).toMatch(/E_USAGE: distill needs a teacher and an output/);
    const v = await cli(['frobnicate', SAMPLE]);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('E_USAGE');
  });

  it('every recognised format is read; unknown files are refused with E_UNKNOWN_FORMAT', async () => {
    for (const f of ['../pytorch/generated/tiny_mlp.pt', '../caffe/mtcnn-jfda/det1.prototxt', '../savedmodel/tf-serving/saved_model_half_plus_two_cpu/00000123']) {
      const r = await cli(['inspect', join(CORPUS, f), '--json']);
      expect(r.code, f).toBe(0);
      expect(JSON.parse(r.stdout).ok).toBe(true);
    }
    const dir = await mkdtemp(join(tmpdir(), 'ms-cli-'));
    const junk = join(dir, 'junk.bin');
    await writeFile(junk, 'hello world, not a model');
    const j = await cli(['inspect', junk]);
    expect(j.stderr).toContain('E_UNKNOWN_FORMAT');
  });

  it('--help teaches each verb', async () => {
    for (const verb of ['inspect', 'convert', 'demo']) {
      const r = await cli([verb, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`usage: modelsmith ${verb}`);
      expect(r.stdout).toContain('example');
    }
  });

  it('demo runs the main job on the bundled sample: writes compressed variants, evaluates them, verifies the rewrite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ms-demo-'));
    const r = await cli(['demo', '-o', dir, '--samples', '2', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.convert.verify.identical).toBe(rep.convert.verify.total);
    expect(rep.variants.map((v: { file: string }) => v.file.split('/').pop())).toEqual(['int8.onnx', 'uint8.onnx', 'float16.onnx', 'pruned50.onnx', 'dynamic.onnx', 'channels25.onnx']);
    const dyn = rep.variants[4];
    expect(dyn.cosine).toBeGreaterThan(0.999);
    expect(dyn.bytes).toBeLessThan(rep.originalBytes * 0.6);
    // Channel pruning makes the file physically smaller and the model still runs.
    expect(rep.variants[5].bytes).toBeLessThan(rep.originalBytes * 0.8);
    expect(rep.variants[5].cosine).toBeGreaterThan(0);
    for (const v of rep.variants.slice(0, 3)) {
      // Quantized and cast variants ran in onnxruntime and stayed close to the original.
      expect(v.cosine, v.name).toBeGreaterThan(0.999);
      expect(v.bytes, v.name).toBeLessThan(rep.originalBytes * 0.6);
    }
    // 50% pruning without fine-tuning moves the outputs measurably, and storage stays dense.
    const pruned = rep.variants[3];
    expect(pruned.cosine).toBeLessThan(0.9999);
    expect(pruned.cosine).toBeGreaterThan(0);
    expect(Math.abs(pruned.bytes - rep.originalBytes)).toBeLessThan(rep.originalBytes * 0.05);
    expect((await readdir(dir)).sort()).toEqual(['channels25.onnx', 'dynamic.onnx', 'dynamic_savedmodel', 'float16.onnx', 'int8.onnx', 'model.onnx', 'model.onnx.data', 'pruned50.onnx', 'uint8.onnx']);
    // The dynamic int8 model as a TF SavedModel (DynamicQuantizeLinear / ConvInteger converted) runs in
    // TF.js with the outputs onnxruntime gives for the ONNX model.
    expect((await readdir(join(dir, 'dynamic_savedmodel'))).sort()).toEqual(['saved_model.pb', 'variables']);
    expect(rep.tensorflow.cosine).toBeGreaterThan(0.9999);
    expect(rep.tensorflow.ops).toBeGreaterThan(100);
    const int4 = rep.weightPreview.find((s: { scheme: string }) => s.scheme.startsWith('int4'));
    expect(int4.meanSnrDb).toBeGreaterThan(10);
    // Ten models evaluated, one through TF.js: minutes on a loaded 2-core machine.
  }, 300_000);
});

describe('convert never destroys an input external data file', () => {
  it('refuses an output whose .data file is the input model\'s external data', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ms-cli-'));
    const a = join(dir, 'a.onnx');
    expect((await cli(['convert', SAMPLE, a, '--external-data', '--location', 'shared.data'])).code).toBe(0);
    const before = await readFile(join(dir, 'shared.data'));
    const r = await cli(['convert', a, join(dir, 'b.onnx'), '--external-data', '--location', 'shared.data']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('E_IO: refusing to overwrite');
    expect((await readFile(join(dir, 'shared.data'))).equals(before)).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(['a.onnx', 'shared.data']);
  });
});
