/**
 * Real networks through ONNX → SavedModel: torchvision resnet18 and mobilenet_v2 exported by the
 * committed bench script (random init, seed 0, opset 13, dynamic batch), and the paddle2onnx
 * text-direction classifier from the corpus. Each is written as a SavedModel with bundle variables,
 * read back, frozen and run by TF.js on one seeded batch of 8 and compared with onnxruntime-node.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/core/tensor.js';
import { writeOnnxAsSavedModel, type OnnxToTfReport } from '../../src/convert/onnx-tf/index.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { freezeSignature, readSavedModel, runSignature, type SavedModelFile } from '../../src/formats/savedmodel/index.js';
import { memoryFolder } from '../formats/savedmodel/memory-folder.js';
import { buildModel, compare as compareSmall, maxDiff, nums, onnxNode as N, rand, runOrt } from './onnx-tf-helpers.js';

const SCRIPT = resolve(import.meta.dirname, '../../bench/onnx-tf/export_torchvision.py');
const PADDLE_CLS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/models/paddleocr/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const PY = '/usr/bin/python3';

function hasTorchvision(): boolean {
  try {
    execFileSync(PY, ['-c', 'import torchvision'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Converted {
  bytes: Uint8Array;
  report: OnnxToTfReport;
  sm: SavedModelFile;
  /** Transpose nodes in the frozen serving graph (what TF actually runs). */
  graphTransposes: number;
}

/** Converts with bundle variables into memory and reads the SavedModel back. */
async function convert(bytes: Uint8Array, path: string): Promise<Converted> {
  const { out, dir } = memoryFolder();
  const { report } = await writeOnnxAsSavedModel(decodeOnnx(bytes, { path }), out);
  const sm = await readSavedModel(dir, { path: `${path}.savedmodel` });
  const frozen = await freezeSignature(sm);
  return { bytes, report, sm, graphTransposes: frozen.graph.node.filter((n) => n.op === 'Transpose').length };
}

interface Agreement {
  /** Max abs difference between TF.js (through the SavedModel) and onnxruntime. */
  maxAbs: number;
  /** Largest |onnxruntime output|: a random-init network may output tiny values, where max-abs says little. */
  scale: number;
}

async function compare(c: Converted, feed: Tensor): Promise<Record<string, Agreement>> {
  const want = await runOrt(c.bytes, [feed]);
  const got = await runSignature(c.sm, { [feed.name]: feed });
  expect(Object.keys(got).sort()).toEqual([...want.keys()].sort());
  const out: Record<string, Agreement> = {};
  for (const [k, w] of want) out[k] = { maxAbs: maxDiff(got[k]!, w), scale: nums(w).reduce((m, v) => Math.max(m, Math.abs(v)), 0) };
  return out;
}

function show(a: Record<string, Agreement>): string {
  return Object.entries(a).map(([k, v]) => `${k} max-abs ${v.maxAbs.toExponential(2)} (largest |output| ${v.scale.toExponential(2)})`).join(', ');
}

const TV = hasTorchvision();
if (!TV) console.warn('onnx-tf torchvision: skipped, `/usr/bin/python3 -c "import torchvision"` fails (install Debian python3-torchvision)');

describe.skipIf(!TV)('torchvision resnet18 / mobilenet_v2 (exported by bench/onnx-tf/export_torchvision.py)', () => {
  let dir: string;
  const models = new Map<string, Converted>();
  // One seeded batch of 8 images, the dynamic batch axis of the export.
  const batch = rand('input', [8, 3, 224, 224], 2024);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-tv-'));
    execFileSync(PY, [SCRIPT, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const name of ['resnet18', 'mobilenet_v2']) {
      const path = join(dir, `${name}.onnx`);
      models.set(name, await convert(new Uint8Array(readFileSync(path)), path));
    }
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // TF.js's CPU conv is plain JS: resnet18 on 8 images takes tens of seconds, more on a busy machine.
  it('resnet18: the SavedModel matches onnxruntime within 1e-4 on 8 random images; ≤ 2 transposes left', async () => {
    const c = models.get('resnet18')!;
    const r = c.report;
    const d = (await compare(c, batch)).output!;
    console.log(`resnet18: ${show({ output: d })}; transposes inserted ${r.transposesInserted}, removed ${r.transposesRemoved}, left ${r.transposesLeft} (frozen graph: ${c.graphTransposes})`);
    expect(r.opsMapped.Conv).toBe(20);
    expect(r.variables).toBeGreaterThanOrEqual(21);
    expect(d.scale).toBeGreaterThan(0.1);
    expect(d.maxAbs).toBeLessThanOrEqual(1e-4);
    expect(r.transposesLeft).toBeLessThanOrEqual(2);
    expect(c.graphTransposes).toBe(r.transposesLeft);
    const sig = c.sm.signatures.find((s) => s.key === 'serving_default')!;
    expect(sig.inputs.map((t) => [t.key, t.shape])).toEqual([['input', [-1, 3, 224, 224]]]);
    expect(sig.outputs.map((t) => [t.key, t.shape])).toEqual([['output', [-1, 1000]]]);
  }, 600_000);

  it('mobilenet_v2: the SavedModel matches onnxruntime within 1e-4 on 8 random images', async () => {
    const c = models.get('mobilenet_v2')!;
    const r = c.report;
    const d = (await compare(c, batch)).output!;
    console.log(`mobilenet_v2: ${show({ output: d })}; transposes inserted ${r.transposesInserted}, removed ${r.transposesRemoved}, left ${r.transposesLeft} (frozen graph: ${c.graphTransposes})`);
    expect(r.opsMapped.Conv).toBe(52);
    expect(d.maxAbs).toBeLessThanOrEqual(1e-4);
    // torchvision's kaiming init (mode='fan_out') shrinks activations through the depthwise convs (outputs ~1e-9), so
    // the absolute bound alone would pass anything: hold the difference to 1e-4 of the output scale too.
    expect(d.scale).toBeGreaterThan(0);
    expect(d.maxAbs).toBeLessThanOrEqual(1e-4 * d.scale);
    expect(c.graphTransposes).toBe(r.transposesLeft);
    expect(r.transposesLeft).toBeLessThanOrEqual(2);
  }, 300_000);
});

describe('paddleocr ch_ppocr_mobile_v2.0_cls (paddle2onnx, opset 9)', () => {
  it('the SavedModel matches onnxruntime within 1e-4 on 8 random text crops', async () => {
    const c = await convert(new Uint8Array(readFileSync(PADDLE_CLS)), PADDLE_CLS);
    const r = c.report;
    const diffs = await compare(c, rand('x', [8, 3, 48, 192], 77));
    console.log(`paddleocr cls: ${show(diffs)}; transposes inserted ${r.transposesInserted}, removed ${r.transposesRemoved}, left ${r.transposesLeft} (frozen graph: ${c.graphTransposes})`);
    expect(Object.keys(diffs)).toEqual(['softmax_0.tmp_0']);
    for (const [k, d] of Object.entries(diffs)) {
      expect(d.scale, k).toBeGreaterThan(0.5);
      expect(d.maxAbs, k).toBeLessThanOrEqual(1e-4);
    }
    expect(c.graphTransposes).toBe(r.transposesLeft);
    // Hard-swish and squeeze-excite blocks read one tensor twice: only the fan-out of the layout
    // pass gets this below the naive count (54 were left without it).
    expect(r.transposesLeft).toBeLessThanOrEqual(2);
  }, 120_000);
});

/** The graph forms these networks need, on small hand-built models (also what OpenCV's importer reads). */
describe('forms the CNN exports rely on', () => {
  const ops = (nodes: { op: string }[]) => nodes.map((n) => n.op);

  it('Gemm with a constant transB weight stores it pre-transposed (MatMul without transpose_b)', async () => {
    const m = buildModel([N('Gemm', ['x', 'w', 'b'], ['y'], { transB: 1 })], [{ name: 'x', dims: [3, 5] }], [{ name: 'y', dims: [3, 4] }], [rand('w', [4, 5], 3), rand('b', [4], 4)], 13);
    const { diffs, res } = await compareSmall(m, [rand('x', [3, 5], 5)]);
    expect(diffs.y).toBeLessThan(1e-5);
    const mm = res.graph.node.find((n) => n.op === 'MatMul')!;
    expect(mm.attr.transpose_b?.value).toEqual({ case: 'b', value: false });
    const w = res.graph.node.find((n) => n.name === mm.input[1])!;
    expect(w.attr.value?.value.case === 'tensor' && w.attr.value.value.value.tensorShape?.dim.map((d) => Number(d.size))).toEqual([5, 4]);
    // A computed B keeps the attribute.
    const dyn = buildModel([N('Gemm', ['x', 'w'], ['y'], { transB: 1 })], [{ name: 'x', dims: [3, 5] }, { name: 'w', dims: [4, 5] }], [{ name: 'y', dims: [3, 4] }], [], 13);
    const d2 = await compareSmall(dyn, [rand('x', [3, 5], 6), rand('w', [4, 5], 7)]);
    expect(d2.diffs.y).toBeLessThan(1e-5);
    expect(d2.res.graph.node.find((n) => n.op === 'MatMul')!.attr.transpose_b?.value).toEqual({ case: 'b', value: true });
  });

  it('GlobalAveragePool/GlobalMaxPool reduce NHWC [1, 2], so conv → pool → conv keeps only the I/O transposes', async () => {
    for (const pool of ['GlobalAveragePool', 'GlobalMaxPool']) {
      const m = buildModel([N('Conv', ['x', 'w1'], ['a'], { pads: [1, 1, 1, 1] }), N(pool, ['a'], ['p']), N('Conv', ['p', 'w2'], ['y'])],
        [{ name: 'x', dims: [2, 3, 6, 6] }], [{ name: 'y', dims: [2, 5, 1, 1] }], [rand('w1', [4, 3, 3, 3], 8), rand('w2', [5, 4, 1, 1], 9)], 13);
      const { diffs, res } = await compareSmall(m, [rand('x', [2, 3, 6, 6], 10)]);
      expect(diffs.y, pool).toBeLessThan(1e-5);
      const red = res.graph.node.find((n) => n.op === (pool === 'GlobalAveragePool' ? 'Mean' : 'Max'))!;
      const axes = res.graph.node.find((n) => n.name === red.input[1])!;
      const tp = axes.attr.value?.value.case === 'tensor' ? axes.attr.value.value.value : undefined;
      expect(tp && (tp.intVal.length ? [...tp.intVal] : [...new Int32Array(tp.tensorContent.slice().buffer)])).toEqual([1, 2]);
      expect(res.report.transposesLeft, pool).toBe(2);
    }
  });

  it('MaxPool pads with zeros after a Relu (Pad) and with -inf otherwise (PadV2)', async () => {
    const relu = buildModel([N('Relu', ['x'], ['r']), N('MaxPool', ['r'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })],
      [{ name: 'x', dims: [1, 2, 7, 7] }], [{ name: 'y', dims: [1, 2, 4, 4] }], [], 13);
    const a = await compareSmall(relu, [rand('x', [1, 2, 7, 7], 11)]);
    expect(a.diffs.y).toBe(0);
    expect(ops(a.res.graph.node)).toContain('Pad');
    expect(ops(a.res.graph.node)).not.toContain('PadV2');
    // All-negative input: zero padding would wrongly win the border windows.
    const raw = buildModel([N('MaxPool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })],
      [{ name: 'x', dims: [1, 2, 7, 7] }], [{ name: 'y', dims: [1, 2, 4, 4] }], [], 13);
    const b = await compareSmall(raw, [rand('x', [1, 2, 7, 7], 12, 'float32', -2, -1)]);
    expect(b.diffs.y).toBe(0);
    expect(ops(b.res.graph.node)).toContain('PadV2');
  });

  it('a transpose read by both arms of x·relu6(x+3)/6 is copied below each and cancels (conv → hard-swish → conv)', async () => {
    const m = buildModel([
      N('Conv', ['x', 'w1'], ['c']), N('Add', ['c', 'three'], ['a']), N('Clip', ['a', 'zero', 'six'], ['r']),
      N('Mul', ['c', 'r'], ['p']), N('Div', ['p', 'six'], ['h']), N('Conv', ['h', 'w2'], ['y']),
    ], [{ name: 'x', dims: [1, 3, 5, 5] }], [{ name: 'y', dims: [1, 2, 5, 5] }],
    [rand('w1', [4, 3, 1, 1], 13), rand('w2', [2, 4, 1, 1], 14), rand('three', [], 1, 'float32', 3, 3), rand('zero', [], 1, 'float32', 0, 0), rand('six', [], 1, 'float32', 6, 6)], 13);
    const { diffs, res } = await compareSmall(m, [rand('x', [1, 3, 5, 5], 15, 'float32', -4, 4)]);
    expect(diffs.y).toBeLessThan(1e-5);
    // Input and output transposes only; without the fan-out the pair around the hard-swish stays.
    expect(res.report.transposesLeft).toBe(2);
  });
});
