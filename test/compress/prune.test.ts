/**
 * Unstructured pruning (src/compress/prune.ts) and the `prune` CLI verb: on real corpus models each
 * method (per-layer magnitude, global magnitude, 2:4) must zero exactly what it promises, leave 1-D
 * tensors and kept values alone, keep the onnx.checker verdict and run in onnxruntime-node with finite
 * outputs. Plus float16 weights, N:M skips, exclusion and every error the pass and the verb throw.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  type TensorProto,
} from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneWeights, type PruneWeightsOptions, type PruneWeightsReport } from '../../src/compress/prune.js';
import { onnxModel, type OnnxModel } from '../../src/formats/onnx/read.js';
import { collectTensors, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { castF32ToF16, castF16ToF32 } from '../../src/kernels/cast.js';
import { initKernels } from '../../src/kernels/loader.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { pruneCommand } from '../../src/cli/commands/prune.js';
import type { Out } from '../../src/cli/output.js';
import { CORPUS_ONNX, listFiles, openModel, rng } from '../formats/onnx/helpers.js';

const PY = '/usr/bin/python3';
const MODELS = listFiles(join(CORPUS_ONNX, 'models'), '.onnx');
const WANTED = ['version-slim-320.onnx', 'ch_ppocr_mobile_v2.0_cls_infer.onnx', 'hey_rhasspy_v0.1.onnx', 'hello_deepa.onnx'];
const PICKED = WANTED.map((n) => MODELS.find((p) => basename(p) === n)).filter((p): p is string => p !== undefined);
const SHAPES: Record<string, Record<string, number[]>> = {
  'ch_ppocr_mobile_v2.0_cls_infer.onnx': { x: [1, 3, 48, 192] },
};
const ORT_OPTS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, logSeverityLevel: 3 };
const METHODS: { tag: string; opts: PruneWeightsOptions }[] = [
  { tag: 'magnitude', opts: { method: 'magnitude', sparsity: 0.5 } },
  { tag: 'global', opts: { method: 'global', sparsity: 0.6 } },
  { tag: 'nm', opts: { method: 'nm' } },
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ms-prune-'));
  await initKernels();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function checkerVerdicts(files: string[]): boolean[] {
  const script = 'import onnx,sys\nfor p in sys.argv[1:]:\n  try:\n    onnx.checker.check_model(onnx.load(p)); print("ok")\n  except Exception as e:\n    print("fail")';
  return execFileSync(PY, ['-c', script, ...files], { encoding: 'utf8' }).trim().split('\n').map((l) => l === 'ok');
}

/** Float values (float32, or float16 widened) of every float tensor, keyed by scope + name. */
function snapshot(model: OnnxModel): Map<string, { shape: number[]; x: Float32Array }> {
  const out = new Map<string, { shape: number[]; x: Float32Array }>();
  for (const e of collectTensors(model)) {
    if (e.kind !== 'initializer' && e.kind !== 'constant') continue;
    if (e.proto.dataType !== 1 && e.proto.dataType !== 10) continue;
    const t = tensorFromProtoSync(e.proto);
    const raw = t.data.slice();
    const n = t.shape.reduce((a, d) => a * d, 1);
    const x = e.proto.dataType === 1 ? new Float32Array(raw.buffer, 0, n) : castF16ToF32(new Uint16Array(raw.buffer, 0, n));
    out.set(`${e.scope}|${e.kind === 'constant' ? e.node!.output[0] : e.name}`, { shape: t.shape, x });
  }
  return out;
}

async function runFinite(file: string): Promise<void> {
  const s = await ort.InferenceSession.create(file, ORT_OPTS);
  try {
    const r = rng(11);
    const fixed = SHAPES[basename(file).replace(/^[a-z]+-/, '')] ?? {};
    const feeds: Record<string, ort.Tensor> = {};
    s.inputNames.forEach((name, i) => {
      const meta = s.inputMetadata[i] as { shape?: (number | string)[] } | undefined;
      const shape = fixed[name] ?? (meta?.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
      const n = shape.reduce((a, d) => a * d, 1);
      feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => r() * 2 - 1), shape);
    });
    const out = await s.run(feeds);
    for (const k of s.outputNames) {
      const d = out[k]!.data as Float32Array;
      expect(d.length, k).toBeGreaterThan(0);
      expect(d.every((v) => Number.isFinite(v)), `${file} output ${k} finite`).toBe(true);
    }
  } finally {
    await s.release();
  }
}

/** Elements zeroed by the pass (nonzero before, zero after) never outrank an element kept nonzero. */
function checkThreshold(pairs: { a: Float32Array; b: Float32Array }[]): void {
  let maxPruned = 0;
  let minKept = Infinity;
  let changed = 0;
  for (const { a, b } of pairs) {
    for (let i = 0; i < a.length; i++) {
      if (b[i] === 0) { if (a[i] !== 0) maxPruned = Math.max(maxPruned, Math.abs(a[i]!)); } else {
        if (!Object.is(b[i], a[i])) changed++; // kept values untouched
        minKept = Math.min(minKept, Math.abs(a[i]!));
      }
    }
  }
  expect(changed, 'kept values changed').toBe(0);
  expect(maxPruned).toBeLessThanOrEqual(minKept);
}

function checkReport(tag: string, report: PruneWeightsReport, before: ReturnType<typeof snapshot>, after: ReturnType<typeof snapshot>): void {
  const key = (p: { scope: string; name: string }): string => `${p.scope}|${p.name}`;
  const pairs: { a: Float32Array; b: Float32Array }[] = [];
  for (const p of report.pruned) {
    const a = before.get(key(p))!.x;
    const b = after.get(key(p))!.x;
    expect(b.length).toBe(a.length);
    let zb = 0, za = 0;
    for (let i = 0; i < a.length; i++) { if (a[i] === 0) zb++; if (b[i] === 0) za++; }
    expect([p.zerosBefore, p.zerosAfter], p.name).toEqual([zb, za]);
    expect(p.sparsity).toBe(za / a.length);
    expect(p.shape.length).toBeGreaterThanOrEqual(2);
    if (tag === 'magnitude') {
      const k = Math.round(0.5 * a.length);
      expect(p.pruned, p.name).toBe(k);
      expect(za, p.name).toBe(Math.max(k, zb));
      checkThreshold([{ a, b }]);
    } else if (tag === 'nm') {
      // Exactly 2 zeros per group of 4 along the input axis (when the original had at most 2 zeros there).
      const shape = p.shape;
      const ax = p.axis!;
      const inner = shape.slice(ax + 1).reduce((x, d) => x * d, 1);
      const len = shape[ax]!;
      const outer = a.length / (len * inner);
      let badGroups = 0;
      for (let o = 0; o < outer; o++) {
        for (let g = 0; g < len; g += 4) {
          for (let j = 0; j < inner; j++) {
            let zeros = 0, origZeros = 0, maxPruned = 0, minKept = Infinity;
            for (let t = 0; t < 4; t++) {
              const i = (o * len + g + t) * inner + j;
              if (a[i] === 0) origZeros++;
              if (b[i] === 0) { zeros++; maxPruned = Math.max(maxPruned, Math.abs(a[i]!)); } else minKept = Math.min(minKept, Math.abs(a[i]!));
            }
            if (zeros !== Math.max(2, origZeros) || maxPruned > minKept) badGroups++;
          }
        }
      }
      expect(badGroups, `${p.name}: groups of 4 without exactly 2 zeros`).toBe(0);
      checkThreshold([{ a: Float32Array.from(a, (v, i) => (b[i] === 0 ? 0 : v)), b }]); // kept values untouched
    }
    pairs.push({ a, b });
  }
  if (tag === 'global') {
    const total = report.pruned.reduce((s, p) => s + p.numel, 0);
    expect(report.totals.numel).toBe(total);
    expect(report.totals.pruned).toBe(Math.round(0.6 * total));
    checkThreshold(pairs);
  }
  // Every other tensor, 1-D ones included, is untouched.
  const prunedKeys = new Set(report.pruned.map(key));
  for (const [k, v] of before) {
    if (prunedKeys.has(k)) continue;
    expect(after.get(k)!.x, k).toEqual(v.x);
  }
}

describe.each(PICKED.map((p) => [basename(p), p]))('pruneWeights on %s', (name, path) => {
  it('magnitude / global / 2:4: exact zeros, checker verdict kept, runs with finite outputs', async () => {
    const files: string[] = [];
    for (const { tag, opts } of METHODS) {
      const { model, close } = await openModel(path);
      try {
        const before = snapshot(model);
        const { report } = await pruneWeights(model, opts);
        expect(report.pruned.length, `${tag}: real models have weights`).toBeGreaterThan(0);
        expect(report.size.after.total).toBe(report.size.before.total); // dense storage
        checkReport(tag, report, before, snapshot(model));
        const out = join(dir, `${tag}-${name}`);
        await saveOnnxFile(model, out, { inputs: [path] });
        files.push(out);
      } finally {
        await close();
      }
    }
    const [vOrig, ...vNew] = checkerVerdicts([path, ...files]);
    for (const v of vNew) expect(v, 'onnx.checker verdict').toBe(vOrig);
    for (const f of files) await runFinite(f);
  }, 30_000);
});

describe('pruneWeights specifics', () => {
  const tensor = (name: string, dims: number[], dataType: number, bytes: Uint8Array): TensorProto =>
    create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType, rawData: bytes as Uint8Array<ArrayBuffer> });
  /** MatMul W [8,4] (f32), MatMul H [8,4] (f16), MatMul V [6,4] (K not a multiple of 4), MatMul B1 [8] (1-D), Gather E [5,4]. */
  function tiny(): OnnxModel {
    const r = rng(5);
    const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => r() * 2 - 1);
    const u8 = (a: Float32Array | Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const graph = create(GraphProtoSchema, {
      name: 'tiny',
      node: [
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'W'], output: ['y1'], name: 'mm1' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['xh', 'H'], output: ['y2'], name: 'mm2' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x6', 'V'], output: ['y3'], name: 'mm3' }),
        create(NodeProtoSchema, { opType: 'MatMul', input: ['x', 'B1'], output: ['y4'], name: 'mm4' }),
        create(NodeProtoSchema, { opType: 'Gather', input: ['E', 'idx'], output: ['y5'], name: 'g' }),
      ],
      initializer: [
        tensor('W', [8, 4], 1, u8(f(32))), tensor('H', [8, 4], 10, u8(castF32ToF16(f(32)))), tensor('V', [6, 4], 1, u8(f(24))),
        tensor('B1', [8], 1, u8(f(8))), tensor('E', [5, 4], 1, u8(f(20))),
      ],
    });
    return onnxModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })], graph }));
  }

  it('prunes float16 weights exactly and skips 1-D weights unless asked', async () => {
    const m = tiny();
    const before = snapshot(m);
    const { report } = await pruneWeights(m, { method: 'magnitude', sparsity: 0.25 });
    expect(report.pruned.map((p) => [p.name, p.dtype, p.pruned])).toEqual([['W', 'float32', 8], ['H', 'float16', 8], ['V', 'float32', 6], ['E', 'float32', 5]]);
    expect(report.skipped.map((s) => [s.name, s.reason.startsWith('1-D')])).toEqual([['B1', true]]);
    checkReport('x', report, before, snapshot(m));
    const h = before.get('graph|H')!.x;
    const ha = snapshot(m).get('graph|H')!.x;
    expect(ha.filter((v) => v === 0).length).toBe(8);
    checkThreshold([{ a: h, b: ha }]);
    const m2 = tiny();
    const r2 = await pruneWeights(m2, { method: 'magnitude', sparsity: 0.25, includeOneDim: true });
    expect(r2.report.pruned.find((p) => p.name === 'B1')?.pruned).toBe(2);
  });

  it('N:M skips axes not a multiple of M and Gather tables; 1:4 keeps one per group', async () => {
    const m = tiny();
    const { report } = await pruneWeights(m, { method: 'nm', n: 1, m: 4 });
    expect(report.pruned.map((p) => [p.name, p.axis, p.zerosAfter])).toEqual([['W', 0, 24], ['H', 0, 24]]);
    expect(report.options).toMatchObject({ method: 'nm', n: 1, m: 4, sparsity: 0.75 });
    const reasons = Object.fromEntries(report.skipped.map((s) => [s.name, s.reason]));
    expect(reasons.V).toMatch(/not a multiple of M=4/);
    expect(reasons.E).toMatch(/no input axis/);
  });

  it('global over the model gives the exact total; exclusion by name and op type', async () => {
    const m = tiny();
    const { report } = await pruneWeights(m, { method: 'global', sparsity: 0.3, exclude: { names: ['W'], opTypes: ['Gather'] } });
    expect(report.pruned.map((p) => p.name)).toEqual(['H', 'V']);
    expect(report.totals.pruned).toBe(Math.round(0.3 * 56));
    expect(report.skipped.filter((s) => s.reason === 'excluded').map((s) => s.name).sort()).toEqual(['E', 'W']);
  });

  it('throws for every bad option', async () => {
    const bad = async (o: unknown, code: string): Promise<void> => {
      await expect(pruneWeights(tiny(), o as PruneWeightsOptions)).rejects.toMatchObject({ code });
    };
    await bad({ method: 'magnitude', sparsity: 1.5 }, 'E_USAGE');
    await bad({ method: 'magnitude', sparsity: -0.1 }, 'E_USAGE');
    await bad({ method: 'global', sparsity: Number.NaN }, 'E_USAGE');
    await bad({ method: 'magnitude' }, 'E_USAGE');
    await bad({ method: 'lottery', sparsity: 0.5 }, 'E_USAGE');
    await bad({ method: 'channel', sparsity: 0.5 }, 'E_USAGE');
    await bad({ method: 'nm', n: 5, m: 4 }, 'E_USAGE');
    await bad({ method: 'nm', n: 1, m: 0 }, 'E_USAGE');
    await bad({ method: 'nm', n: 1.5, m: 4 }, 'E_USAGE');
    await bad({ method: 'nm', sparsity: 0.3 }, 'E_USAGE');
    await bad({ method: 'magnitude', sparsity: 0.5, n: 2, m: 4 }, 'E_USAGE');
    // sparsity 0 and 1 are fine.
    const r0 = await pruneWeights(tiny(), { method: 'magnitude', sparsity: 0 });
    expect(r0.report.totals.pruned).toBe(0);
    const r1 = await pruneWeights(tiny(), { method: 'global', sparsity: 1 });
    expect(r1.report.totals.zerosAfter).toBe(r1.report.totals.numel);
  });
});

describe('prune CLI verb', () => {
  const out: Out = { json: true, say: () => {}, note: () => {}, report: () => {} };
  const wake = MODELS.find((p) => p.endsWith('hey_rhasspy_v0.1.onnx'))!;

  it('writes the model and reports per-tensor and total sparsity', async () => {
    const o = join(dir, 'cli.onnx');
    const rep = (await pruneCommand.run([wake], { output: o, sparsity: '0.5', exclude: 'Conv,nothing' }, out)) as Record<string, unknown> & PruneWeightsReport;
    expect(rep.ok).toBe(true);
    expect(rep.pruned.length).toBeGreaterThan(0);
    expect(rep.totals.sparsity).toBeGreaterThanOrEqual(0.49);
    expect(existsSync(o)).toBe(true);
    const o2 = join(dir, 'cli-nm.onnx');
    const rep2 = (await pruneCommand.run([wake, o2], { nm: '2:4' }, out)) as Record<string, unknown> & PruneWeightsReport;
    expect(rep2.method).toBe('nm');
    expect(rep2.options).toMatchObject({ n: 2, m: 4, sparsity: 0.5 });
  });

  it('refuses bad arguments with E_USAGE', async () => {
    const o = join(dir, 'never.onnx');
    const bad = async (v: Record<string, string | boolean>, code: string, pos = [wake]): Promise<void> => {
      await expect(pruneCommand.run(pos, v, out)).rejects.toMatchObject({ code });
    };
    await bad({ output: o, method: 'random', sparsity: '0.5' }, 'E_USAGE');
    await bad({ output: o }, 'E_USAGE'); // no --sparsity
    await bad({ output: o, sparsity: '1.5' }, 'E_USAGE');
    await bad({ output: o, sparsity: 'half' }, 'E_USAGE');
    await bad({ output: o, sparsity: '' }, 'E_USAGE');
    await bad({ output: o, nm: '3:2' }, 'E_USAGE');
    await bad({ output: o, nm: '2-4' }, 'E_USAGE');
    await bad({ output: o, nm: '2:0' }, 'E_USAGE');
    await bad({ output: o, nm: '2:4', method: 'global', sparsity: '0.5' }, 'E_USAGE');
    await bad({ output: o, nm: '2:4', sparsity: '0.3' }, 'E_USAGE');
    await bad({ sparsity: '0.5' }, 'E_USAGE'); // no output
    await bad({ output: join(dir, 'x.tflite'), sparsity: '0.5' }, 'E_UNSUPPORTED');
    expect(existsSync(o)).toBe(false);
    expect(pruneCommand.help).toMatch(/examples:/);
  });
});
