/**
 * The learning verbs through the built CLI on the Fashion-MNIST fixture: quantize --method static
 * (engine calibration → QDQ that onnxruntime runs), prune --method gradient (Taylor + fine-tuning,
 * per-layer sensitivity) and distill (derived student), with their usage errors. Training here uses
 * fixture images 0..1499 and evaluates on all 2,000 (a smoke-sized run; the held-out benchmark with
 * the 60,000 training images is npm run bench:learning).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFileSync } from 'node:child_process';
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

function checker(path: string): string {
  return execFileSync('/usr/bin/python3', ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")', path]).toString().trim();
}

describe('prune --method gradient (CLI)', () => {
  it('prunes to 70% with fine-tuning, keeps accuracy within 1 pp on the fixture and reports per-layer sensitivity', async () => {
    const out = join(dir, 'cnn.g70.onnx');
    const r = await cli(['prune', CNN, '-o', out, '--method', 'gradient', '--sparsity', '0.7', '--data', IMAGES, '--samples', '1500',
      '--eval-data', IMAGES, '--rounds', '2', '--fine-tune-steps', '20', '--sensitivity', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json as { totals: { sparsity: number }; baseline: { accuracy: number }; final: { accuracy: number }; layers: { name: string; sparsity: number; sensitivity: { sparsity: number; accuracy: number }[] }[]; rounds: unknown[] };
    expect(j.totals.sparsity).toBeCloseTo(0.7, 3);
    expect(j.rounds).toHaveLength(2);
    expect(j.baseline.accuracy - j.final.accuracy).toBeLessThanOrEqual(0.01);
    expect(j.layers).toHaveLength(4);
    for (const l of j.layers) expect(l.sensitivity.map((p) => p.sparsity)).toEqual([0.3, 0.5, 0.7, 0.9]);
    expect(r.stderr).toMatch(/round 2\/2: sparsity 70\.0%/);
    expect(checker(out)).toBe('ok');
    const fx = await loadFixture();
    const got = await predict(out, fx.subset);
    expect(got.correct / fx.subset.count).toBeCloseTo(j.final.accuracy, 6);
  });
});

describe('distill (CLI)', () => {
  it('trains a width-0.49 student (≤ 1/4 of the parameters) that onnxruntime runs, reporting per-epoch accuracy', async () => {
    const out = join(dir, 'student.onnx');
    const r = await cli(['distill', CNN, '-o', out, '--width', '0.49', '--data', IMAGES, '--samples', '1500', '--epochs', '2', '--eval-data', IMAGES, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json as { params: { student: number; teacher: number }; epochs: { loss: number; eval: { accuracy: number } }[]; teacherRuns: number; steps: number; final: { accuracy: number } };
    expect(j.params.teacher).toBe(108_618);
    expect(j.params.student).toBeLessThanOrEqual(j.params.teacher / 4);
    expect(j.epochs).toHaveLength(2);
    expect(j.epochs[1]!.loss).toBeLessThan(j.epochs[0]!.loss);
    expect(j.steps).toBe(48);
    expect(j.teacherRuns).toBe(24);
    expect(j.final.accuracy).toBeGreaterThan(0.8);
    expect(checker(out)).toBe('ok');
    const fx = await loadFixture();
    const got = await predict(out, fx.subset);
    expect(got.correct / fx.subset.count).toBeCloseTo(j.final.accuracy, 6);
  });

  it('refuses bad learning-verb arguments, naming the code, and writes nothing', async () => {
    const out = join(dir, 'nothing.onnx');
    const cases: [string[], RegExp][] = [
      [['distill', CNN, '-o', out, '--data', IMAGES], /E_USAGE: distill needs exactly one of --student/],
      [['distill', CNN, '-o', out, '--width', '0.5'], /E_USAGE: distill needs --data/],
      [['distill', CNN, '-o', out, '--width', '2', '--data', IMAGES], /E_USAGE: --width must be a number in/],
      [['distill', CNN, '-o', out, '--width', '0.5', '--data', IMAGES, '--alpha', '1.5'], /E_USAGE: --alpha/],
      [['distill', CNN, '-o', out, '--student', CNN, '--init', 'reinit', '--data', IMAGES], /E_USAGE: --init applies/],
      [['distill', CNN, '-o', out, '--width', '0.5', '--data', join(FIX, 'test-labels.idx1-ubyte')], /E_(USAGE|MALFORMED)/],
      [['prune', CNN, '-o', out, '--method', 'gradient', '--data', IMAGES], /E_USAGE: --method gradient needs --sparsity/],
      [['prune', CNN, '-o', out, '--method', 'gradient', '--sparsity', '0.5'], /E_USAGE: prune --method gradient needs --data/],
      [['prune', CNN, '-o', out, '--method', 'gradient', '--sparsity', '0.5', '--data', IMAGES, '--sensitivity'], /E_USAGE: --sensitivity needs --eval-data/],
      [['prune', CNN, '-o', out, '--method', 'magnitude', '--sparsity', '0.5', '--data', IMAGES], /E_USAGE: --data applies to --method gradient/],
      [['prune', CNN, '-o', out, '--method', 'gradient', '--sparsity', '0.5', '--data', IMAGES, '--criterion', 'hessian'], /E_USAGE: --criterion must be one of/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(want);
    }
    expect(existsSync(out)).toBe(false);
  });
});
