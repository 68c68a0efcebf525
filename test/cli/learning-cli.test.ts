/**
 * The learning verbs through the built CLI: quantize --method static (engine calibration → QDQ that
 * onnxruntime runs, accuracy on the Fashion-MNIST fixture), and their usage errors.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture, predict } from '../../src/bench/accuracy.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/modelsmith.js');
const FIX = join(import.meta.dirname, '../fixtures/fashion-mnist');
const CNN = join(FIX, 'cnn.onnx');
const IMAGES = join(FIX, 'test-images.idx3-ubyte');

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

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'ms-learn-cli-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('quantize --method static (CLI)', () => {
  it('calibrates on IDX images with the engine and writes a QDQ model onnxruntime runs within 0.5 pp', async () => {
    const out = join(dir, 'cnn.qdq.onnx');
    const r = await cli(['quantize', CNN, '-o', out, '--method', 'static', '--calibration', IMAGES, '--samples', '500', '--calibration-method', 'percentile', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json as { method: string; calibration: { samples: number; kind: string; percentile: number }; activations: { tensor: string; zeroPoint: number }[]; biases: unknown[] };
    expect(j.method).toBe('static');
    expect(j.calibration).toMatchObject({ samples: 500, kind: 'idx', percentile: 99.99 });
    expect(j.activations.find((a) => a.tensor === 'input')).toBeDefined();
    expect(j.biases).toHaveLength(2);
    expect(r.stderr).toContain('500/500 samples');
    const fx = await loadFixture();
    const ref = await predict(fx.modelPath, fx.subset);
    const got = await predict(out, fx.subset);
    const drop = ((ref.correct - got.correct) / fx.subset.count) * 100;
    expect(drop).toBeLessThanOrEqual(0.5);
  });

  it('refuses what static quantization cannot do, naming the code', async () => {
    const out = join(dir, 'never.onnx');
    const cases: [string[], RegExp][] = [
      [['--method', 'static'], /E_USAGE: --method static needs --calibration/],
      [['--method', 'static', '--calibration', IMAGES, '--calibration-method', 'mse'], /E_USAGE: --calibration-method must be one of/],
      [['--method', 'static', '--calibration', IMAGES, '--percentile', '99'], /E_USAGE: --percentile applies to --calibration-method percentile/],
      [['--method', 'static', '--calibration', IMAGES, '--dtype', 'uint8'], /E_USAGE: --dtype does not apply to --method static/],
      [['--calibration', IMAGES], /E_USAGE: --calibration applies to --method static/],
      [['--method', 'static', '--calibration', join(dir, 'missing.npz')], /E_IO/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(['quantize', CNN, '-o', out, ...args]);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(want);
    }
    expect(existsSync(out)).toBe(false);
  });
});
