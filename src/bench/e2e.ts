/**
 * End-to-end quantization speed next to `cp` of the same files, measured in the same run.
 *
 * 1. Builds a synthetic ONNX model in a temp folder: x [1, 4096] → a chain of MatMul layers with
 *    [4096, 4096] float32 weights (64 MiB each; 16 layers per GiB), seeded pseudo-random values, saved
 *    with the project's own writer with every weight in `<model>.data` (a protobuf message must stay
 *    under 2 GiB).
 * 2. Times `cp` of model.onnx + model.onnx.data (run once first, so the page cache is warm for both).
 * 3. Times openModelFile → quantizeWeights(int8, per-channel, symmetric) → saveOnnxFile, once with
 *    the result inline (the int8 model is about a quarter of the input) and once with external data;
 *    each step is timed separately. Each of the two runs twice: as shipped (outputs fsynced before
 *    their rename) and with `sync: false` (the CLI's --no-fsync: still temp file + rename).
 * MB/s counts input bytes (model + data file); `ratio` = our MB/s / cp MB/s (higher is better).
 * `cp` syncs nothing, so the `.no_fsync` rows are the like-for-like comparison with it; a `cp_sync`
 * row (cp, then `sync` on the copies) is timed too, and each library row also carries
 * `ratioVsCpSync`. An untimed `sync` runs before every timed row, so no row pays for the previous
 * row's writeback. With --rounds N the cp rows and the library rows are timed N times, interleaved
 * (each round's ratios use that round's cp), which is what a machine shared with other jobs needs.
 * Peak RSS is the process's maxRSS after the step (it includes building the fixture, so the fixture
 * is built in a child process: the measuring process starts clean).
 * Usage: node dist/bench/e2e.js [--json] [--gib N] [--keep] [--rounds N] [--only synced|unsynced]
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { onnxModel } from '../formats/onnx/read.js';
import { float32TensorProto, tensorValueInfo } from '../formats/onnx/build.js';
import { openModelFile, saveOnnxFile } from '../platform/open.js';
import { quantizeWeights } from '../compress/quantize/weight.js';

const run = promisify(execFile);
const DIM = 4096;
const LAYER_BYTES = DIM * DIM * 4;

interface Row {
  name: string;
  round: number;
  value: number;
  unit: 'MB/s';
  baseline: number;
  ratio: number;
  seconds: number;
  /** Peak resident set size of the process so far, MiB. */
  peakRssMiB?: number;
  /** Per-step seconds of the library path. */
  steps?: Record<string, number>;
  /** value / MB/s of cp followed by sync of the copies (library rows). */
  ratioVsCpSync?: number;
  inputBytes: number;
  outputBytes?: number;
}

/** Weights ~ U(-0.05, 0.05) from an xorshift32 stream (fast; the values only need to look like weights). */
function fillWeights(a: Float32Array, seed: number): void {
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 0.1;
  }
}

async function buildModel(path: string, layers: number): Promise<void> {
  const nodes: NodeProto[] = [];
  const initializer: TensorProto[] = [];
  for (let l = 0; l < layers; l++) {
    const w = new Float32Array(DIM * DIM);
    fillWeights(w, l + 1);
    initializer.push(float32TensorProto(`W${l}`, [DIM, DIM], w));
    nodes.push(create(NodeProtoSchema, { opType: 'MatMul', name: `mm${l}`, input: [l === 0 ? 'x' : `h${l - 1}`, `W${l}`], output: [l === layers - 1 ? 'y' : `h${l}`] }));
  }
  const graph = create(GraphProtoSchema, { name: 'e2e', node: nodes, initializer, input: [tensorValueInfo('x', [1, DIM])], output: [tensorValueInfo('y', [1, DIM])] });
  const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph });
  await saveOnnxFile(onnxModel(proto, { path }), path, { externalData: { threshold: 1024 } });
}

const fileBytes = async (files: string[]) => (await Promise.all(files.map((f) => stat(f)))).reduce((s, st) => s + st.size, 0);
const peakRssMiB = () => Math.round(process.resourceUsage().maxRSS / 1024);
const mbps = (bytes: number, s: number) => bytes / s / 1e6;

async function timeCp(files: string[], dest: string, sync = false): Promise<number> {
  await run('sync');
  const t0 = performance.now();
  await run('cp', [...files, dest]);
  // coreutils `sync FILE…` fsyncs those files, as AtomicFileSink.commit does for our outputs.
  if (sync) await run('sync', files.map((f) => join(dest, basename(f))));
  return (performance.now() - t0) / 1000;
}

async function quantizePath(input: string, output: string, external: boolean, sync: boolean): Promise<{ seconds: number; steps: Record<string, number>; files: string[] }> {
  await run('sync');
  const t0 = performance.now();
  const opened = await openModelFile(input);
  const t1 = performance.now();
  let files: string[];
  let t2: number;
  try {
    const { model } = await quantizeWeights(opened.model, { dtype: 'int8', perChannel: true, symmetric: true });
    t2 = performance.now();
    const stats = await saveOnnxFile(model, output, { inputs: [input], sync, ...(external ? { externalData: { threshold: 1024 } } : {}) });
    files = stats.files;
  } finally {
    await opened.close();
  }
  const t3 = performance.now();
  return { seconds: (t3 - t0) / 1000, steps: { read: (t1 - t0) / 1000, quantize: (t2 - t1) / 1000, write: (t3 - t2) / 1000 }, files };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      gib: { type: 'string', default: '1' },
      keep: { type: 'boolean', default: false },
      rounds: { type: 'string', default: '1' },
      only: { type: 'string' },
      // Internal: build the fixture at this path and exit (runs in a child process).
      'build-only': { type: 'string' },
      layers: { type: 'string' },
    },
  });
  if (values['build-only']) {
    await buildModel(values['build-only'], Number(values.layers));
    return;
  }
  const gib = Number(values.gib);
  if (!(gib > 0)) throw new Error(`--gib must be a positive number, got ${values.gib}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
  if (values.only !== undefined && values.only !== 'synced' && values.only !== 'unsynced') throw new Error(`--only takes synced or unsynced, got ${values.only}`);
  const syncModes = [true, false].filter((s) => values.only === undefined || (values.only === 'synced') === s);
  const layers = Math.max(1, Math.ceil((gib * 2 ** 30) / LAYER_BYTES));
  const dir = await mkdtemp(join(tmpdir(), 'modelsmith-e2e-'));
  const log = (msg: string) => { if (!values.json) process.stderr.write(`${msg}\n`); };
  try {
    const input = join(dir, 'model.onnx');
    log(`building ${layers} × [${DIM}, ${DIM}] float32 layers in ${dir} …`);
    const tb = performance.now();
    await run(process.execPath, [fileURLToPath(import.meta.url), '--build-only', input, '--layers', String(layers)], { maxBuffer: 1 << 20 });
    log(`  built in ${((performance.now() - tb) / 1000).toFixed(1)} s`);
    const inputs = [input, `${input}.data`];
    const inBytes = await fileBytes(inputs);

    // cp: one warm-up copy (also warms the page cache for the library run), then the timed copies.
    const cpDir = join(dir, 'cp');
    const cpOnce = async (sync: boolean) => {
      await run('mkdir', [cpDir]);
      const s = await timeCp(inputs, cpDir, sync);
      await rm(cpDir, { recursive: true, force: true });
      return s;
    };
    await cpOnce(false);
    const rows: Row[] = [];
    for (let round = 1; round <= rounds; round++) {
      const cpS = await cpOnce(false);
      const cpSyncS = await cpOnce(true);
      const cpMbps = mbps(inBytes, cpS);
      const cpSyncMbps = mbps(inBytes, cpSyncS);
      rows.push(
        { name: 'cp', round, value: cpMbps, unit: 'MB/s', baseline: cpMbps, ratio: 1, seconds: cpS, inputBytes: inBytes },
        { name: 'cp_sync', round, value: cpSyncMbps, unit: 'MB/s', baseline: cpMbps, ratio: cpSyncMbps / cpMbps, seconds: cpSyncS, inputBytes: inBytes },
      );
      for (const external of [false, true]) {
        for (const sync of syncModes) {
          const name = `quantize_int8.${external ? 'external' : 'inline'}${sync ? '' : '.no_fsync'}`;
          const out = join(dir, `${name}.onnx`);
          const r = await quantizePath(input, out, external, sync);
          const outBytes = await fileBytes(r.files);
          const value = mbps(inBytes, r.seconds);
          rows.push({ name, round, value, unit: 'MB/s', baseline: cpMbps, ratio: value / cpMbps, ratioVsCpSync: value / cpSyncMbps, seconds: r.seconds, peakRssMiB: peakRssMiB(), steps: r.steps, inputBytes: inBytes, outputBytes: outBytes });
          await Promise.all(r.files.map((f) => rm(f, { force: true })));
        }
      }
    }

    if (values.json) {
      for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
    } else {
      const f = (x: number, d = 2) => x.toFixed(d);
      console.log(`input: ${(inBytes / 2 ** 30).toFixed(3)} GiB (${layers} layers), node ${process.version}, ${rounds} round(s)`);
      console.log('name                       round    MB/s   ratio vs cp   vs cp+sync   seconds  peak RSS MiB  read / quantize / write s');
      for (const r of rows) {
        const steps = r.steps ? `${f(r.steps.read!)} / ${f(r.steps.quantize!)} / ${f(r.steps.write!)}` : '';
        const vsSync = r.ratioVsCpSync === undefined ? '' : f(r.ratioVsCpSync, 3);
        console.log(`${r.name.padEnd(26)} ${String(r.round).padStart(5)}  ${f(r.value, 0).padStart(6)}  ${f(r.ratio, 3).padStart(12)}  ${vsSync.padStart(11)}  ${f(r.seconds).padStart(8)}  ${String(r.peakRssMiB ?? '').padStart(12)}  ${steps}`);
      }
    }
  } finally {
    if (values.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
