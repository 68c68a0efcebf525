/**
 * `--no-fsync` on the verbs that write files (convert, quantize, cast, prune, distill): the CLI's main() runs
 * in-process so fsync calls can be counted by spying on FileHandle.prototype.sync; outputs must still
 * appear by rename only (no temp file left), never over an input.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openWeights } from '../../src/platform/weights-io.js';

const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const ONNX_MODEL = join(CORPUS, 'onnx/models/ultra-light-face/version-slim-320.onnx');
const TINY_PT = join(CORPUS, 'pytorch/generated/tiny_mlp.pt');

let proto: { sync: () => Promise<void> };
let syncSpy: MockInstance;
let dir: string;
let stdout: string;
let stderr: string;

beforeAll(async () => {
  const fh = await open(ONNX_MODEL, 'r');
  proto = Object.getPrototypeOf(fh) as typeof proto;
  await fh.close();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-fsync-cli-'));
  syncSpy = vi.spyOn(proto, 'sync');
  stdout = '';
  stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { stdout += String(s); return true; });
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { stderr += String(s); return true; });
});

afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

const tempFiles = async () => (await readdir(dir)).filter((f) => f.includes('.tmp-'));

describe('--no-fsync', () => {
  it('quantize ONNX: synced by default, not with --no-fsync; same bytes either way', async () => {
    expect(await main(['quantize', ONNX_MODEL, '-o', join(dir, 'a.onnx'), '--per-channel', '--quiet'])).toBe(0);
    expect(syncSpy).toHaveBeenCalledTimes(1);
    syncSpy.mockClear();
    expect(await main(['quantize', ONNX_MODEL, '-o', join(dir, 'b.onnx'), '--per-channel', '--quiet', '--no-fsync'])).toBe(0);
    expect(syncSpy).not.toHaveBeenCalled();
    const [a, b] = await Promise.all([readFile(join(dir, 'a.onnx')), readFile(join(dir, 'b.onnx'))]);
    expect(b.byteLength).toBeLessThan(0.5 * (await readFile(ONNX_MODEL)).byteLength);
    expect(b.equals(a)).toBe(true);
    expect(await tempFiles()).toEqual([]);
  });

  it('convert .pt → sharded safetensors with --no-fsync: nothing synced, tensors intact', async () => {
    const out = join(dir, 'st', 'model.safetensors.index.json');
    expect(await main(['convert', TINY_PT, '-o', out, '--shard-size', '200B', '--no-fsync', '--json', '--quiet'])).toBe(0);
    expect(syncSpy).not.toHaveBeenCalled();
    const rep = JSON.parse(stdout) as { files: string[] };
    expect(rep.files.length).toBeGreaterThanOrEqual(3);
    const [a, b] = await Promise.all([openWeights(TINY_PT), openWeights(out)]);
    try {
      expect(b.set.tensors.length).toBe(4);
      for (const t of a.set.tensors) {
        const u = b.set.tensors.find((x) => x.name === t.name)!;
        expect(Buffer.from(await u.load()).equals(Buffer.from(await t.load()))).toBe(true);
      }
    } finally {
      await a.close();
      await b.close();
    }
    expect((await readdir(join(dir, 'st'))).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('cast and prune take it too (ONNX and weight containers)', async () => {
    expect(await main(['cast', ONNX_MODEL, '-o', join(dir, 'h.onnx'), '--to', 'float16', '--quiet', '--no-fsync'])).toBe(0);
    expect(await main(['prune', ONNX_MODEL, '-o', join(dir, 'p.onnx'), '--sparsity', '0.5', '--quiet', '--no-fsync'])).toBe(0);
    expect(await main(['cast', TINY_PT, '-o', join(dir, 'h.safetensors'), '--to', 'bfloat16', '--quiet', '--no-fsync'])).toBe(0);
    expect(syncSpy).not.toHaveBeenCalled();
    expect((await readdir(dir)).sort()).toEqual(['h.onnx', 'h.safetensors', 'p.onnx']);
    expect(await main(['prune', TINY_PT, '-o', join(dir, 'p.pt'), '--sparsity', '0.5', '--quiet'])).toBe(0);
    expect(syncSpy).toHaveBeenCalledTimes(1);
  });

  it('still refuses to overwrite the input (E_IO, exit 1), input untouched, no temp file', async () => {
    const copy = join(dir, 'in.onnx');
    await writeFile(copy, await readFile(ONNX_MODEL));
    expect(await main(['quantize', copy, '-o', copy, '--quiet', '--no-fsync'])).toBe(1);
    expect(stderr).toContain('E_IO');
    expect(stderr).toContain('refusing to overwrite the input');
    expect((await readFile(copy)).equals(await readFile(ONNX_MODEL))).toBe(true);
    expect(await readdir(dir)).toEqual(['in.onnx']);
  });

  it('a failing write leaves nothing under the output name', async () => {
    // The output's folder is a file: creating the temp file fails before anything is written.
    await writeFile(join(dir, 'notadir'), 'x');
    const out = join(dir, 'notadir', 'm.onnx');
    expect(await main(['convert', ONNX_MODEL, '-o', out, '--quiet', '--no-fsync'])).toBe(1);
    expect(stderr).toContain('E_IO');
    expect(existsSync(out)).toBe(false);
    expect(await readdir(dir)).toEqual(['notadir']);
  });

  it('also skips it for SavedModel / GraphDef conversion, static quantization and distillation; read-only verbs do not know it', async () => {
    const fix = resolve(import.meta.dirname, '../fixtures/fashion-mnist');
    const cnn = join(fix, 'cnn.onnx');
    const images = join(fix, 'test-images.idx3-ubyte');
    const runs: string[][] = [
      ['convert', cnn, join(dir, 'cnn.pb'), '--to', 'graphdef'],
      ['convert', cnn, join(dir, 'cnn_sm'), '--to', 'savedmodel'],
      ['quantize', cnn, '-o', join(dir, 'cnn.qdq.onnx'), '--method', 'static', '--calibration', images, '--samples', '64'],
      ['distill', cnn, '-o', join(dir, 'student.onnx'), '--width', '0.5', '--data', images, '--samples', '128', '--epochs', '1'],
    ];
    for (const args of runs) {
      syncSpy.mockClear();
      expect(await main([...args, '--no-fsync']), `${args.join(' ')}: ${stderr}`).toBe(0);
      expect(syncSpy, args.join(' ')).not.toHaveBeenCalled();
    }
    syncSpy.mockClear();
    expect(await main(['convert', cnn, join(dir, 'cnn2.pb'), '--to', 'graphdef'])).toBe(0);
    expect(syncSpy).toHaveBeenCalledTimes(1);
    expect((await readdir(dir)).sort()).toEqual(['cnn.pb', 'cnn.qdq.onnx', 'cnn2.pb', 'cnn_sm', 'student.onnx']);
    stderr = '';
    expect(await main(['inspect', ONNX_MODEL, '--no-fsync'])).toBe(2);
    expect(stderr).toContain('E_USAGE');
  });

  it('--help of a writing verb says what is given up; the global help lists it', async () => {
    expect(await main(['quantize', '--help'])).toBe(0);
    expect(stdout).toContain('--no-fsync');
    expect(stdout).toContain('power loss or kernel crash');
    expect(stdout).toContain('still atomic');
    stdout = '';
    expect(await main(['inspect', '--help'])).toBe(0);
    expect(stdout).not.toContain('--no-fsync');
    stdout = '';
    expect(await main(['--help'])).toBe(0);
    expect(stdout).toContain('--no-fsync');
  });
});
