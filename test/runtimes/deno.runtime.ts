/**
 * examples/deno/compress.ts under the real `deno` binary (npm package `deno`), with code generation
 * from strings disallowed: outputs must be byte-identical to the Node reference, errors must be one
 * line with the modelsmith code and leave no output file behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeCompress, requireBuilt, ROOT, sha256, SILERO, TASKS } from './rt-helpers.js';

const DENO = resolve(ROOT, 'node_modules/.bin/deno');
const SCRIPT = resolve(ROOT, 'examples/deno/compress.ts');
const CONFIG = resolve(ROOT, 'examples/deno/deno.json');
let dir: string;

function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = ['run', '--no-lock', '--no-prompt', `--config=${CONFIG}`, '--v8-flags=--disallow-code-generation-from-strings', `--allow-read`, `--allow-write=${dir}`, SCRIPT, ...args];
  return new Promise((res) => {
    execFile(DENO, argv, { cwd: ROOT, env: { ...process.env, DENO_DIR: join(dir, '.deno'), NO_COLOR: '1' } }, (err, stdout, stderr) => {
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(() => {
  requireBuilt();
  dir = mkdtempSync(join(tmpdir(), 'modelsmith-deno-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Deno example', () => {
  for (const t of TASKS) {
    it(`${t.name}: byte-identical to Node`, async () => {
      const out = join(dir, `out-${t.mode}${t.input.endsWith('.onnx') ? '.onnx' : '.safetensors'}`);
      const r = await deno([t.input, out, t.mode]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const line = JSON.parse(r.stdout.trim()) as { bytesOut: number; format: string };
      const got = readFileSync(out);
      expect(got.byteLength).toBe(line.bytesOut);
      expect(sha256(got)).toBe(sha256(await nodeCompress(t.input, t.mode)));
    });
  }

  it('eval is really blocked under the flag the test runs Deno with', async () => {
    const probe = join(dir, 'probe.ts');
    writeFileSync(probe, "try { (0, eval)('1'); console.log('allowed'); } catch { console.log('blocked'); }\n");
    const r = await new Promise<string>((res) => execFile(DENO, ['run', '--no-lock', '--v8-flags=--disallow-code-generation-from-strings', probe], { env: { ...process.env, DENO_DIR: join(dir, '.deno') } }, (_e, so) => res(so)));
    expect(r.trim()).toBe('blocked');
  });

  it('E_IO for a missing input, E_UNSUPPORTED for another format, E_TRUNCATED for a cut file; no output left behind', async () => {
    const missing = await deno([join(dir, 'nope.onnx'), join(dir, 'a.onnx')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^E_IO: cannot open/);
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not a model at all, just some text\n');
    const other = await deno([text, join(dir, 'b.onnx')]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^E_UNSUPPORTED: .*notes\.txt/);
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, readFileSync(SILERO).subarray(0, 5000));
    const trunc = await deno([cut, join(dir, 'c.safetensors'), 'fp16']);
    expect(trunc.code).toBe(1);
    expect(trunc.stderr).toMatch(/^E_TRUNCATED: .*cut\.safetensors/);
    expect(existsSync(join(dir, 'c.safetensors'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const usage = await deno([text]);
    expect(usage.code).toBe(2);
  });
});
