// Child process for onnxruntime.test.ts: onnxruntime-node can crash (SIGSEGV) or corrupt memory on
// some models, so sessions run here, one job at a time, one JSON line per finished job on stdout.
// stdin: JSON array of jobs { id, inputs: [{ name, type, dims, file }], models: [original, ...variants] }.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';

const jobs = JSON.parse(readFileSync(0, 'utf8'));
const opts = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };

function feedsOf(job) {
  const feeds = {};
  for (const i of job.inputs) {
    const bytes = readFileSync(i.file);
    if (i.type === 'string') {
      feeds[i.name] = new ort.Tensor('string', JSON.parse(bytes.toString('utf8')), i.dims);
      continue;
    }
    const b = new Uint8Array(bytes).buffer; // fresh, aligned
    const C = {
      float32: Float32Array, uint8: Uint8Array, bool: Uint8Array, int8: Int8Array, uint16: Uint16Array, float16: Uint16Array,
      int16: Int16Array, int32: Int32Array, int64: BigInt64Array, float64: Float64Array, uint32: Uint32Array, uint64: BigUint64Array,
    }[i.type];
    feeds[i.name] = new ort.Tensor(i.type, new C(b), i.dims);
  }
  return feeds;
}

function digest(t) {
  const h = createHash('sha256').update(JSON.stringify([t.type, t.dims]));
  if (t.type === 'string') h.update(JSON.stringify(t.data));
  else h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return h.digest('hex');
}

async function run(path, feeds) {
  const session = await ort.InferenceSession.create(path, opts);
  try {
    const out = await session.run(feeds);
    return session.outputNames.map((n) => digest(out[n]));
  } finally {
    await session.release();
  }
}

const firstLine = (e) => String(e && e.message ? e.message : e).split('\n')[0].slice(0, 300);

for (const job of jobs) {
  const result = { id: job.id, runs: [] };
  try {
    const feeds = feedsOf(job);
    try {
      result.runs.push(await run(job.models[0], feeds));
      result.runs.push(await run(job.models[0], feeds));
    } catch (e) {
      result.skip = `ORT cannot run the original: ${firstLine(e)}`;
    }
    if (!result.skip) {
      for (const m of job.models.slice(1)) {
        try {
          result.runs.push(await run(m, feeds));
        } catch (e) {
          result.runs.push({ error: firstLine(e) });
        }
      }
    }
  } catch (e) {
    result.skip = `runner: ${firstLine(e)}`;
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}
