/**
 * The CLI verbs on weight containers (built bin): inspect, convert between .pt / .safetensors (single
 * and sharded) / ONNX initializers, and the weight-only passes — with the results checked by real
 * torch (Debian python3-torch, torch.load(weights_only=True)) and against the corpus manifests.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOnnx } from '../../src/formats/onnx/read.js';
import { tensorFromProto } from '../../src/formats/onnx/tensor.js';
import { MemorySource } from '../../src/io/source.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/modelsmith.js');
const SAMPLE = join(import.meta.dirname, '../../examples/sample/version-slim-320.onnx');
const PT = join(import.meta.dirname, '../../../shared/corpus/pytorch/generated');
const ST = join(import.meta.dirname, '../../../shared/corpus/safetensors');
const MANIFEST = JSON.parse(await readFile(join(PT, 'manifest.json'), 'utf8')).files as Record<string, { tensors: Record<string, { dtype: string; shape: number[]; sha256: string }> }>;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string; json?: Record<string, unknown> }> {
  let r: { code: number; stdout: string; stderr: string };
  try {
    const x = await run(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
    r = { code: 0, stdout: x.stdout, stderr: x.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    r = { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
  return args.includes('--json') && r.stdout.trim() ? { ...r, json: JSON.parse(r.stdout) } : r;
}

/** torch.load(weights_only=True) → {name: [dtype, shape, sha256 of C-contiguous bytes]} (bf16 as raw bits). */
function torchTensors(path: string): Record<string, [string, number[], string]> {
  const py = `
import sys, json, hashlib, torch
sd = torch.load(sys.argv[1], weights_only=True)
out = {}
for k, t in sd.items():
    c = t.contiguous()
    b = (c.view(torch.int16) if c.dtype == torch.bfloat16 else c).numpy().tobytes()
    out[k] = [str(t.dtype).replace('torch.', ''), list(t.shape), hashlib.sha256(b).hexdigest()]
print(json.dumps(out))`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, path], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-wcli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('weight containers through the CLI', () => {
  it('inspect lists a checkpoint\'s tensors and state dicts without running its pickle', async () => {
    const r = await cli(['inspect', join(PT, 'checkpoint_with_optimizer.pt'), '--json']);
    expect(r.code).toBe(0);
    expect(r.json!.tensorCount).toBe(4);
    expect((r.json!.details as { stateDictKeys: string[] }).stateDictKeys).toEqual(['model', 'optimizer', 'nested']);
    const opt = await cli(['inspect', join(PT, 'checkpoint_with_optimizer.pt'), '--key', 'nope']);
    expect(opt.code).toBe(2);
    expect(opt.stderr).toMatch(/E_USAGE.*model/);
    const full = await cli(['inspect', join(PT, 'full_module.pt')]);
    expect(full.stdout).toContain('torch.nn.modules.linear.Linear');
  });

  it('mobilenet_v2_fp16.pt → safetensors → .pt round-trips bit-identically (checked in torch)', async () => {
    const st = join(dir, 'mnv2.safetensors');
    const back = join(dir, 'mnv2.pt');
    expect((await cli(['convert', join(PT, 'mobilenet_v2_fp16.pt'), '-o', st])).code).toBe(0);
    const r = await cli(['convert', st, back, '--json']);
    expect(r.code).toBe(0);
    expect(r.json!.tensors).toBe(314);
    const got = torchTensors(back);
    const want = MANIFEST['mobilenet_v2_fp16.pt']!.tensors;
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const [k, w] of Object.entries(want)) expect(got[k], k).toEqual([w.dtype, w.shape, w.sha256]);
  });

  it('tied weights stay tied from a legacy file to a new .pt', async () => {
    const out = join(dir, 'tied.pt');
    expect((await cli(['convert', join(PT, 'shared_views_legacy.pt'), '-o', out])).code).toBe(0);
    const py = `import torch,sys; sd=torch.load(sys.argv[1], weights_only=True); print(sd['embed.weight'].data_ptr()==sd['lm_head.weight'].data_ptr())`;
    expect(execFileSync('/usr/bin/python3', ['-c', py, out], { encoding: 'utf8' }).trim()).toBe('True');
  });

  it('refuses to convert a pickle with non-allow-listed globals unless told, and never overwrites the input', async () => {
    const r = await cli(['convert', join(PT, 'full_module.pt'), '-o', join(dir, 'full.safetensors')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/E_UNSUPPORTED.*torch\.nn\.modules\.container\.Sequential/);
    expect(existsSync(join(dir, 'full.safetensors'))).toBe(false);
    const ok = await cli(['convert', join(PT, 'full_module.pt'), '-o', join(dir, 'full.safetensors'), '--allow-unknown-globals', '--json']);
    expect(ok.json!.tensors).toBe(4);
    const copy = join(dir, 'copy.safetensors');
    await writeFile(copy, await readFile(join(ST, 'silero-vad/silero_vad_16k.safetensors')));
    const same = await cli(['cast', copy, '-o', copy, '--to', 'float16']);
    expect(same.code).toBe(1);
    expect(same.stderr).toContain('E_IO');
  });

  it('sharded safetensors out and back in; the shards load in torch', async () => {
    const idx = join(dir, 'shards', 'model.safetensors.index.json');
    const r = await cli(['convert', join(PT, 'squeezenet1_1_legacy.pt'), '-o', join(dir, 'shards', 'model.safetensors'), '--shard-size', '2MB', '--json']);
    expect(r.code).toBe(0);
    expect((await readdir(join(dir, 'shards'))).sort()).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
    const pt = join(dir, 'squeeze.pt');
    expect((await cli(['convert', idx, '-o', pt])).code).toBe(0);
    const got = torchTensors(pt);
    const want = MANIFEST['squeezenet1_1_legacy.pt']!.tensors;
    for (const [k, w] of Object.entries(want)) expect(got[k], k).toEqual([w.dtype, w.shape, w.sha256]);
  });

  it('quantize / cast / prune a state_dict: the outputs load in torch with the documented layout', async () => {
    const q = join(dir, 'q.pt');
    const rq = await cli(['quantize', join(PT, 'squeezenet1_1_legacy.pt'), '-o', q, '--per-channel', '--symmetric', '--json']);
    expect(rq.code).toBe(0);
    const tq = torchTensors(q);
    expect(tq['features.0.weight']!.slice(0, 2)).toEqual(['int8', [64, 3, 3, 3]]);
    expect(tq['features.0.weight.scale']!.slice(0, 2)).toEqual(['float32', [64]]);
    expect(tq['features.0.bias']![0]).toBe('float32');
    expect((rq.json!.outputBytes as number) / (rq.json!.inputBytes as number)).toBeLessThan(0.3);

    const c = join(dir, 'c.safetensors');
    expect((await cli(['cast', join(PT, 'squeezenet1_1_legacy.pt'), '-o', c, '--to', 'bfloat16'])).code).toBe(0);
    const back = join(dir, 'c.pt');
    expect((await cli(['convert', c, '-o', back])).code).toBe(0);
    expect(Object.values(torchTensors(back)).every(([d]) => d === 'bfloat16')).toBe(true);

    const p = join(dir, 'p.pt');
    const rp = await cli(['prune', join(PT, 'squeezenet1_1_legacy.pt'), '-o', p, '--sparsity', '0.5', '--json']);
    expect(rp.code).toBe(0);
    const py = `import torch,sys; sd=torch.load(sys.argv[1], weights_only=True); w=sd['features.0.weight']; print((w==0).sum().item(), w.numel())`;
    const [zeros, n] = execFileSync('/usr/bin/python3', ['-c', py, p], { encoding: 'utf8' }).trim().split(' ').map(Number);
    expect(zeros).toBe(Math.round(n! / 2));
    expect((await cli(['prune', join(PT, 'tiny_mlp.pt'), '-o', join(dir, 'g.pt'), '--sparsity', '0.5', '--method', 'global'])).code).toBe(2);
  });

  it('ONNX initializers → .pt → back into the ONNX model (same tensors as the original)', async () => {
    const pt = join(dir, 'slim.pt');
    expect((await cli(['convert', SAMPLE, '-o', pt])).code).toBe(0);
    expect(Object.keys(torchTensors(pt))).toHaveLength(184);
    const plain = join(dir, 'plain.onnx');
    const swapped = join(dir, 'swapped.onnx');
    expect((await cli(['convert', SAMPLE, '-o', plain])).code).toBe(0);
    const r = await cli(['convert', SAMPLE, '-o', swapped, '--weights', pt, '--json']);
    expect(r.code).toBe(0);
    expect((r.json!.replaced as { replaced: unknown[] }).replaced).toHaveLength(184);
    // Typed-field initializers come back as raw_data, so compare tensors, not bytes.
    const tensors = async (f: string) => {
      const m = await readOnnx(new MemorySource(await readFile(f)), { path: f });
      return Promise.all(m.proto.graph!.initializer.map(async (tp) => {
        const t = await tensorFromProto(tp);
        return [t.name, t.dtype, t.shape.join(','), Buffer.from(t.data).toString('base64')].join(':');
      }));
    };
    expect(await tensors(swapped)).toEqual(await tensors(plain));
    const bad = await cli(['convert', SAMPLE, '-o', join(dir, 'bad.onnx'), '--weights', join(PT, 'tiny_mlp.pt')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--map');
  });

  it('a Keras SavedModel becomes a PyTorch state_dict (torch layouts), or its raw variables with --tf-layout', async () => {
    const sm = join(import.meta.dirname, '../../../shared/corpus/savedmodel/tensorflow-rust/keras_single_input_saved_model');
    const pt = join(dir, 'keras.pt');
    const r = await cli(['convert', sm, '-o', pt, '--json']);
    expect(r.code).toBe(0);
    const got = torchTensors(pt);
    expect(Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v[1]]))).toEqual({
      'test_in.weight': [5, 5], 'test_in.bias': [5], 'dense.weight': [5, 5], 'dense.bias': [5], 'test_out.weight': [1, 5], 'test_out.bias': [1],
    });
    expect((r.json!.report as { pairs: { transform: string }[] }).pairs[4]!.transform).toContain('transpose');
    const raw = await cli(['convert', sm, '-o', join(dir, 'keras.safetensors'), '--tf-layout', '--json']);
    expect(raw.json!.tensors).toBe(27);
  });

  it('--recipe chains passes on a weight container', async () => {
    const recipe = join(dir, 'r.json');
    await writeFile(recipe, JSON.stringify({ steps: [{ pass: 'prune', method: 'nm' }, { pass: 'cast', to: 'float16' }] }));
    const out = join(dir, 'r.safetensors');
    const r = await cli(['convert', join(PT, 'squeezenet1_1_legacy.pt'), '-o', out, '--recipe', recipe, '--json']);
    expect(r.code).toBe(0);
    expect((r.json!.report as { steps: unknown[] }).steps).toHaveLength(2);
    expect((r.json!.outputBytes as number) / (r.json!.inputBytes as number)).toBeLessThan(0.51);
  });
});
