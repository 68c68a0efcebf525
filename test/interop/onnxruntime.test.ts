/**
 * onnxruntime-node runs each corpus test model (node/, simple/, pytorch-*) on its test_data_set_0
 * inputs (decoded with our tensor.ts), original vs rewritten; the outputs must be byte-identical.
 * The real models (models/, light/) run on deterministic synthetic inputs.
 *
 * Rewrites compared: external data with onnx's defaults (1024-byte threshold), and every initializer
 * external (threshold 0). The inline rewrite is byte-identical to the original file (asserted here
 * directly), so running it would prove nothing more.
 *
 * ORT runs in child processes (ort-runner.mjs): it segfaults on some models (e.g. sequence outputs)
 * and once corrupted memory across sessions. A crashed or hung job is skipped and counted, like
 * models ORT cannot load, nondeterministic ones, and inputs that are not plain tensors.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ValueInfoProto } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { encodeOnnx } from '../../src/formats/onnx/write.js';
import type { Tensor } from '../../src/core/tensor.js';
import type { OnnxModel } from '../../src/formats/onnx/read.js';
import { REPO_ROOT, corpusName, corpusOnnxFiles, openModel, rng, sameBytes, writeModelFile } from '../formats/onnx/helpers.js';

const ORT_TYPES = new Set(['float32', 'uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'string', 'bool', 'float16', 'float64', 'uint32', 'uint64']);

interface Input { name: string; type: string; dims: number[]; file: string }
interface Job { id: number; name: string; withData: boolean; inputs: Input[]; models: string[] }
interface Result { id: number; skip?: string; runs: (string[] | { error: string })[] }

function graphInputs(model: OnnxModel): ValueInfoProto[] {
  const g = model.proto.graph!;
  const inits = new Set(g.initializer.map((t) => t.name));
  return g.input.filter((v) => !inits.has(v.name));
}

async function saveInput(dir: string, k: number, name: string, t: Tensor): Promise<Input | string> {
  if (!ORT_TYPES.has(t.dtype)) return `dtype ${t.dtype} has no onnxruntime-node tensor type`;
  const file = join(dir, `input_${k}.bin`);
  if (t.dtype === 'string') await writeFile(file, JSON.stringify((t.strings ?? []).map((s) => new TextDecoder().decode(s))));
  else await writeFile(file, t.data);
  return { name, type: t.dtype, dims: t.shape, file };
}

/** Inputs from test_data_set_0/input_*.pb, decoded with tensor.ts. */
async function inputsFromPb(model: OnnxModel, dataDir: string, dir: string): Promise<Input[] | string> {
  const names = readdirSync(dataDir).filter((n) => /^input_\d+\.pb$/.test(n)).sort((a, b) => parseInt(a.slice(6)) - parseInt(b.slice(6)));
  const declared = graphInputs(model);
  const out: Input[] = [];
  for (const [i, n] of names.entries()) {
    const vi = declared[i];
    if (!vi) return 'more input files than graph inputs';
    if (vi.type?.value.case !== 'tensorType') return `input is ${vi.type?.value.case ?? 'untyped'}`;
    let t: Tensor;
    try {
      t = tensorFromProtoSync(decodeTensorProto(readFileSync(join(dataDir, n)), n));
    } catch (e) {
      return `cannot decode ${n}: ${(e as Error).message}`;
    }
    const saved = await saveInput(dir, i, vi.name, t);
    if (typeof saved === 'string') return saved;
    out.push(saved);
  }
  return out;
}

/** Deterministic inputs from the declared types (unknown dims = 1). */
async function syntheticInputs(model: OnnxModel, seed: number, dir: string): Promise<Input[] | string> {
  const r = rng(seed);
  const out: Input[] = [];
  for (const [k, vi] of graphInputs(model).entries()) {
    const tt = vi.type?.value.case === 'tensorType' ? vi.type.value.value : undefined;
    if (!tt) return 'input is not a tensor';
    const shape = (tt.shape?.dim ?? []).map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : 1));
    const n = shape.reduce((a, d) => a * d, 1);
    let data: Uint8Array;
    switch (tt.elemType) {
      case 1: data = new Uint8Array(Float32Array.from({ length: n }, () => r() * 2 - 1).buffer); break;
      case 7: data = new Uint8Array(BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 4))).buffer); break;
      case 6: data = new Uint8Array(Int32Array.from({ length: n }, () => Math.floor(r() * 4)).buffer); break;
      case 9: data = Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)); break;
      default: return `synthetic input of elem_type ${tt.elemType}`;
    }
    const dtype = ({ 1: 'float32', 7: 'int64', 6: 'int32', 9: 'bool' } as const)[tt.elemType as 1 | 7 | 6 | 9];
    const saved = await saveInput(dir, k, vi.name, { name: vi.name, dtype, shape, data });
    if (typeof saved === 'string') return saved;
    out.push(saved);
  }
  return out;
}

/** Runs the jobs in ort-runner.mjs; a crash or a hang skips the job in progress and restarts with the rest. */
async function runJobs(jobs: Job[], perJobTimeoutMs = 120_000): Promise<Map<number, Result>> {
  const results = new Map<number, Result>();
  let pending = jobs;
  while (pending.length) {
    const batch = pending;
    const done = await new Promise<{ exited: string }>((resolveBatch) => {
      const child = spawn(process.execPath, [join(REPO_ROOT, 'test/interop/ort-runner.mjs')], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
      let buf = '';
      let timer: NodeJS.Timeout;
      const arm = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          child.kill('SIGKILL');
        }, perJobTimeoutMs);
      };
      arm();
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (s: string) => {
        buf += s;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const r = JSON.parse(line) as Result;
          results.set(r.id, r);
          arm();
        }
      });
      child.stderr.resume();
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolveBatch({ exited: signal ? `signal ${signal}` : `exit ${code}` });
      });
      child.stdin.end(JSON.stringify(batch));
    });
    const rest = batch.filter((j) => !results.has(j.id));
    if (rest.length) {
      // The first unfinished job crashed or hung the runner.
      const culprit = rest[0]!;
      results.set(culprit.id, { id: culprit.id, skip: `ORT runner died (${done.exited})`, runs: [] });
      pending = rest.slice(1);
    } else pending = [];
  }
  return results;
}

function cases(): { model: string; data?: string }[] {
  const out: { model: string; data?: string }[] = [];
  for (const f of corpusOnnxFiles()) {
    const top = corpusName(f).split(/[\\/]/)[0]!;
    const data = join(dirname(f), 'test_data_set_0');
    if (['node', 'simple', 'pytorch-converted', 'pytorch-operator'].includes(top)) {
      if (existsSync(data) && readdirSync(data).some((n) => n.startsWith('input_'))) out.push({ model: f, data });
    } else out.push({ model: f });
  }
  return out;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelsmith-onnx-ort-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('onnxruntime: rewritten models give byte-identical outputs', () => {
  it('runs the corpus originals and rewrites', async () => {
    const skipped = new Map<string, number>();
    const skip = (why: string): void => {
      const k = why.replace(/\d+/g, 'N').slice(0, 110);
      skipped.set(k, (skipped.get(k) ?? 0) + 1);
    };
    const jobs: Job[] = [];
    const all = cases();
    for (const [id, c] of all.entries()) {
      const name = corpusName(c.model);
      const { model, close } = await openModel(c.model);
      try {
        // onnxruntime-node segfaults when a graph output is a sequence/optional/map: skip those.
        const nonTensor = model.proto.graph?.output.find((o) => o.type?.value.case !== 'tensorType');
        if (nonTensor) {
          skip(`output is ${nonTensor.type?.value.case ?? 'untyped'}`);
          continue;
        }
        const dir = join(tmp, String(id));
        await mkdir(dir, { recursive: true });
        const inputs = c.data ? await inputsFromPb(model, c.data, dir) : await syntheticInputs(model, id, dir);
        if (typeof inputs === 'string') {
          skip(inputs);
          continue;
        }
        // The inline rewrite (every payload streamed) is the original file, byte for byte.
        expect(sameBytes(await encodeOnnx(model, { streamThreshold: 0 }), readFileSync(c.model)), name).toBe(true);
        const ext = await writeModelFile(model, join(dir, 'ext'), 'model.onnx', { external: true });
        const ext0 = await writeModelFile(model, join(dir, 'ext0'), 'model.onnx', { external: true, threshold: 0 });
        jobs.push({ id, name, withData: !!c.data, inputs, models: [c.model, ext.path, ext0.path] });
      } finally {
        await close();
      }
    }

    const results = await runJobs(jobs);
    const ran = { withData: 0, synthetic: 0, variants: 0, shapeInferenceLimit: 0 };
    const failures: string[] = [];
    for (const job of jobs) {
      const r = results.get(job.id)!;
      if (r.skip) {
        skip(
          r.skip
            .replace(/Load model from \S+ failed:/, '')
            .replace(/^(ORT cannot run the original: ).*?(Could not find an implementation|Unsupported model IR version|is not a registered function\/op|Type Error).*$/, '$1$2…'),
        );
        continue;
      }
      const [a, b, ...variants] = r.runs as string[][];
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        skip('nondeterministic outputs');
        continue;
      }
      if (job.withData) ran.withData++;
      else ran.synthetic++;
      variants.forEach((v, i) => {
        const label = i === 0 ? 'external data (threshold 1024)' : 'external data (threshold 0)';
        if ('error' in v) {
          // ONNX shape inference (inside ORT) cannot read external initializers, e.g. the shape input of
          // Reshape/ConstantOfShape; that is why onnx's default threshold is 1024 bytes.
          if (i === 1 && /Cannot parse data from external tensors/.test((v as { error: string }).error)) ran.shapeInferenceLimit++;
          else failures.push(`${job.name} ${label}: ${(v as { error: string }).error}`);
          return;
        }
        ran.variants++;
        if (JSON.stringify(v) !== JSON.stringify(a)) failures.push(`${job.name} ${label}: outputs differ`);
      });
    }
    const total = [...skipped.values()].reduce((s, n) => s + n, 0);
    console.log(
      `[onnxruntime-node] ${all.length} candidate models: ${ran.withData} ran on their test_data_set_0, ${ran.synthetic} on synthetic inputs; ` +
        `${ran.variants} rewritten variants gave byte-identical outputs; ${ran.shapeInferenceLimit} threshold-0 rewrites refused by ORT's shape inference ` +
        `(external shape initializers); ${total} skipped:\n` +
        [...skipped].sort((x, y) => y[1] - x[1]).map(([k, v]) => `    ${v} × ${k}`).join('\n'),
    );
    expect(failures).toEqual([]);
    expect(ran.withData).toBeGreaterThan(120);
    expect(ran.synthetic).toBeGreaterThan(8);
  }, 900_000);
});
