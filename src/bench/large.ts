/**
 * Peak memory of the compression passes on a model bigger than memory should allow: a generated
 * ONNX model with ≥ 6 GiB of float32 weights in external data is quantized (int8, per channel) and
 * cast (float16), each in a child process under `/usr/bin/time -v`, and the child's "Maximum
 * resident set size" is reported. Passes stream tensor by tensor and spill converted payloads to a
 * scratch file (src/compress/spill.ts), so the peak should stay near one tensor plus the arena.
 *
 * Model: x [1, 4096] → MatMul chain with weights alternating [4096, 16384] and [16384, 4096]
 * (256 MiB each, 4 layers per GiB), values from a seeded xorshift stream (real, non-repeating
 * floats). The builder writes model.onnx.data layer by layer, so building needs one layer of memory.
 *
 * Rows (JSON with --json): {"name":"large:quantize_int8","value":<peak RSS MiB>,"unit":"MiB",
 * "baseline":1536,"ratio":value/baseline,"seconds":…,"inputBytes":…,"outputBytes":…}.
 * Exits non-zero when a peak reaches 1.5 GiB. Needs ~gib × 1.75 GB of free disk (input + the
 * larger output + its spill) in --dir (default os.tmpdir()).
 * Usage: node dist/bench/large.js [--gib 6] [--json] [--keep] [--dir D]
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify, parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { tensorValueInfo } from '../formats/onnx/build.js';
import { dtypeInfo } from '../core/dtype.js';
import { openModelFile, saveOnnxFile } from '../platform/open.js';
import { quantizeWeights } from '../compress/quantize/weight.js';
import { castModel } from '../compress/cast.js';
import { Spill } from '../compress/spill.js';
import { nodeScratch } from '../platform/scratch.js';

const run = promisify(execFile);
const A = 4096;
const B = 16384;
const LAYER_ELEMENTS = A * B;
const LAYER_BYTES = LAYER_ELEMENTS * 4;
const LIMIT_MIB = 1536;
const TIME = '/usr/bin/time';

/** Weights ~ U(-0.05, 0.05) from an xorshift32 stream. */
function fillWeights(a: Float32Array, seed: number): void {
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 0.1;
  }
}

/** Writes model.onnx (graph only) and model.onnx.data (weights, 4096-aligned) one layer at a time. */
async function buildModel(path: string, layers: number): Promise<void> {
  const location = 'model.onnx.data';
  const data = await open(join(dirname(path), location), 'wx');
  const nodes: NodeProto[] = [];
  const initializer: TensorProto[] = [];
  const w = new Float32Array(LAYER_ELEMENTS);
  const bytes = new Uint8Array(w.buffer);
  try {
    let dim = A;
    for (let l = 0; l < layers; l++) {
      const next = dim === A ? B : A;
      fillWeights(w, l + 1);
      const offset = l * LAYER_BYTES;
      let done = 0;
      while (done < bytes.byteLength) done += (await data.write(bytes, done, bytes.byteLength - done, offset + done)).bytesWritten;
      initializer.push(create(TensorProtoSchema, {
        name: `W${l}`,
        dims: [BigInt(dim), BigInt(next)],
        dataType: dtypeInfo('float32').onnx,
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [
          create(StringStringEntryProtoSchema, { key: 'location', value: location }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(LAYER_BYTES) }),
        ],
      }));
      nodes.push(create(NodeProtoSchema, { opType: 'MatMul', name: `mm${l}`, input: [l === 0 ? 'x' : `h${l - 1}`, `W${l}`], output: [l === layers - 1 ? 'y' : `h${l}`] }));
      dim = next;
    }
    const graph = create(GraphProtoSchema, { name: 'large', node: nodes, initializer, input: [tensorValueInfo('x', [1, A])], output: [tensorValueInfo('y', [1, dim])] });
    const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph });
    await writeFile(path, toBinary(ModelProtoSchema, proto), { flag: 'wx' });
  } finally {
    await data.close();
  }
}

/** Child process: one pass with a spill, written with external data; prints a JSON summary. */
async function runPass(pass: string, input: string, output: string, scratchDir: string): Promise<void> {
  const t0 = performance.now();
  const opened = await openModelFile(input);
  const spill = new Spill({ scratch: nodeScratch(scratchDir) });
  try {
    let converted: number;
    if (pass === 'quantize') {
      const { report } = await quantizeWeights(opened.model, { dtype: 'int8', perChannel: true, symmetric: true, spill });
      converted = report.quantized.length;
    } else {
      const { report } = await castModel(opened.model, { to: 'float16', spill });
      converted = report.tensorsConverted;
    }
    const t1 = performance.now();
    const saved = await saveOnnxFile(opened.model, output, { externalData: { threshold: 1024 }, inputs: [input] });
    const t2 = performance.now();
    process.stdout.write(`${JSON.stringify({ converted, spilledBytes: spill.bytes, spilledTensors: spill.tensors, files: saved.files, pass: (t1 - t0) / 1000, write: (t2 - t1) / 1000 })}\n`);
  } finally {
    await spill.dispose();
    await opened.close();
  }
}

interface Row {
  name: string;
  value: number;
  unit: 'MiB';
  baseline: number;
  ratio: number;
  seconds: number;
  inputBytes: number;
  outputBytes: number;
  steps: { pass: number; write: number };
  converted: number;
  spilledBytes: number;
}

const fileBytes = async (files: string[]) => (await Promise.all(files.map((f) => stat(f)))).reduce((s, st) => s + st.size, 0);

function parseTime(stderr: string): { maxRssKiB: number; elapsed: number } {
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  const el = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(stderr);
  if (!rss || !el) throw new Error(`cannot parse /usr/bin/time -v output:\n${stderr.slice(-2000)}`);
  return { maxRssKiB: Number(rss[1]), elapsed: Number(el[1] ?? 0) * 3600 + Number(el[2]) * 60 + Number(el[3]) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      gib: { type: 'string', default: '6' },
      keep: { type: 'boolean', default: false },
      dir: { type: 'string' },
      // Internal (child processes).
      'build-only': { type: 'string' },
      layers: { type: 'string' },
      pass: { type: 'string' },
      input: { type: 'string' },
      output: { type: 'string' },
    },
  });
  if (values['build-only']) return buildModel(values['build-only'], Number(values.layers));
  if (values.pass) return runPass(values.pass, values.input!, values.output!, dirname(values.output!));

  const gib = Number(values.gib);
  if (!(gib > 0)) throw new Error(`--gib must be a positive number, got ${values.gib}`);
  await access(TIME, constants.X_OK).catch(() => {
    throw new Error(`${TIME} is missing (Debian/Ubuntu: apt-get install time)`);
  });
  const layers = Math.max(1, Math.ceil((gib * 2 ** 30) / LAYER_BYTES));
  const dir = await mkdtemp(join(values.dir ?? tmpdir(), 'modelsmith-large-'));
  const log = (msg: string) => { if (!values.json) process.stderr.write(`${msg}\n`); };
  const self = fileURLToPath(import.meta.url);
  let over = false;
  try {
    const input = join(dir, 'model.onnx');
    log(`building ${layers} × 256 MiB float32 layers (${((layers * LAYER_BYTES) / 2 ** 30).toFixed(2)} GiB) in ${dir} …`);
    const tb = performance.now();
    await run(process.execPath, [self, '--build-only', input, '--layers', String(layers)], { maxBuffer: 1 << 20 });
    log(`  built in ${((performance.now() - tb) / 1000).toFixed(1)} s`);
    const inBytes = await fileBytes([input, join(dir, 'model.onnx.data')]);

    const rows: Row[] = [];
    for (const [pass, name] of [['quantize', 'large:quantize_int8'], ['cast', 'large:cast_float16']] as const) {
      const output = join(dir, `${pass}.onnx`);
      log(`${name} …`);
      const r = await run(TIME, ['-v', process.execPath, self, '--pass', pass, '--input', input, '--output', output], { maxBuffer: 1 << 20 });
      const t = parseTime(r.stderr);
      const child = JSON.parse(r.stdout.trim().split('\n').pop()!) as { converted: number; spilledBytes: number; files: string[]; pass: number; write: number };
      if (child.converted !== layers) throw new Error(`${name}: converted ${child.converted} of ${layers} weights`);
      const value = Math.round(t.maxRssKiB / 1024);
      over ||= value >= LIMIT_MIB;
      rows.push({
        name, value, unit: 'MiB', baseline: LIMIT_MIB, ratio: value / LIMIT_MIB, seconds: t.elapsed, inputBytes: inBytes,
        outputBytes: await fileBytes(child.files), steps: { pass: child.pass, write: child.write }, converted: child.converted, spilledBytes: child.spilledBytes,
      });
      if (!values.keep) await Promise.all(child.files.map((f) => rm(f, { force: true })));
    }

    if (values.json) {
      for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
    } else {
      console.log(`input: ${(inBytes / 2 ** 30).toFixed(3)} GiB (${layers} layers of 256 MiB), node ${process.version}, limit ${LIMIT_MIB} MiB`);
      console.log('name                   peak RSS MiB  × limit  seconds  pass / write s   output GiB  spilled GiB');
      for (const r of rows) {
        console.log(`${r.name.padEnd(22)} ${String(r.value).padStart(12)}  ${r.ratio.toFixed(3).padStart(7)}  ${r.seconds.toFixed(1).padStart(7)}  ${`${r.steps.pass.toFixed(1)} / ${r.steps.write.toFixed(1)}`.padStart(13)}  ${(r.outputBytes / 2 ** 30).toFixed(3).padStart(10)}  ${(r.spilledBytes / 2 ** 30).toFixed(3).padStart(11)}`);
      }
    }
  } finally {
    if (values.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  if (over) {
    console.error(`peak RSS reached ${LIMIT_MIB} MiB`);
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
