/**
 * Shared pieces of the runtime suite: paths, the two reference compressions computed in Node from the
 * sources (what every runtime must reproduce byte for byte), and a deterministic big safetensors file.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { MemorySink } from '../../src/io/source.js';
import { FileSource } from '../../src/platform/node.js';
import { readOnnx } from '../../src/formats/onnx/read.js';
import { writeOnnx } from '../../src/formats/onnx/write.js';
import { readSafetensors } from '../../src/formats/safetensors/read.js';
import { writeSafetensors } from '../../src/formats/safetensors/write.js';
import { quantizeWeights } from '../../src/compress/quantize/weight.js';
import { castWeightSet } from '../../src/compress/weights/cast.js';
import { quantizeWeightSet } from '../../src/compress/weights/quantize.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CORPUS = resolve(ROOT, '../shared/corpus');
export const BUNDLE = resolve(ROOT, 'dist/bundle/modelsmith.js');
export const WORKERD_BUNDLE = resolve(ROOT, 'dist/bundle/modelsmith.workerd.js');

export const SAMPLE_ONNX = resolve(ROOT, 'examples/sample/version-slim-320.onnx');
export const SILERO = resolve(CORPUS, 'safetensors/silero-vad/silero_vad_16k.safetensors');

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export function requireBuilt(): void {
  for (const f of [BUNDLE, WORKERD_BUNDLE, resolve(ROOT, 'dist/index.js')]) {
    if (!existsSync(f)) throw new Error(`${f} missing: run \`npm run build && npm run build:bundle\` (npm run test:runtimes does)`);
  }
}

/** The tasks every runtime runs: [input, mode] → output bytes. */
export const TASKS = [
  { name: 'onnx int8', input: SAMPLE_ONNX, mode: 'int8' as const },
  { name: 'safetensors fp16', input: SILERO, mode: 'fp16' as const },
];

/** The Node reference: the same recipes as examples/deno/compress.ts and examples/worker/src/index.js. */
export async function nodeCompress(input: string, mode: 'int8' | 'fp16'): Promise<Uint8Array> {
  const src = await FileSource.open(input);
  try {
    const sink = new MemorySink();
    if (input.endsWith('.onnx')) {
      const model = await readOnnx(src);
      await quantizeWeights(model, { dtype: 'int8', perChannel: true, symmetric: true });
      await writeOnnx(model, sink);
    } else {
      const set = await readSafetensors(src);
      const r = mode === 'fp16' ? await castWeightSet(set, { to: 'float16' }) : await quantizeWeightSet(set, { scheme: 'int8' });
      await writeSafetensors(r.set, sink);
    }
    return sink.bytes();
  } finally {
    await src.close();
  }
}

/**
 * A float32 safetensors file of `layers` [rows, cols] weights filled from a fixed LCG (written
 * tensor by tensor: the test process never holds the whole file).
 */
export function writeBigSafetensors(path: string, layers = 25, rows = 1024, cols = 1024): number {
  const header: Record<string, unknown> = {};
  const bytesPer = rows * cols * 4;
  for (let i = 0; i < layers; i++) {
    header[`layers.${String(i).padStart(2, '0')}.weight`] = { dtype: 'F32', shape: [rows, cols], data_offsets: [i * bytesPer, (i + 1) * bytesPer] };
  }
  let json = JSON.stringify(header);
  while (json.length % 8) json += ' ';
  const fd = openSync(path, 'w');
  try {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
    writeSync(fd, prefix);
    writeSync(fd, new TextEncoder().encode(json));
    let s = 1;
    const f = new Float32Array(rows * cols);
    for (let i = 0; i < layers; i++) {
      for (let j = 0; j < f.length; j++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        f[j] = (s / 4294967296 - 0.5) * (1 + (j % cols) / cols);
      }
      writeSync(fd, new Uint8Array(f.buffer));
    }
  } finally {
    closeSync(fd);
  }
  return 8 + json.length + layers * bytesPer;
}

/** A free TCP port on 127.0.0.1 (for workerd's inspector). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/**
 * Samples a workerd isolate's memory through the V8 inspector on `port` (Runtime.getHeapUsage: JS heap +
 * ArrayBuffer backing stores, which include the kernels' WASM memory) — the quantity the Workers limit is about.
 */
export async function isolateSampler(port: number, worker: string): Promise<{ stop(): Promise<{ peakMiB: number; idleMiB: number; samples: number }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/core:user:${worker}`);
  await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
  let id = 0;
  const waiting = new Map<number, (v: Record<string, number>) => void>();
  ws.on('message', (m) => {
    const d = JSON.parse(String(m)) as { id?: number; result?: Record<string, number> };
    if (d.id !== undefined) {
      waiting.get(d.id)?.(d.result ?? {});
      waiting.delete(d.id);
    }
  });
  const usage = () => new Promise<number>((res) => {
    const i = ++id;
    waiting.set(i, (r) => res((r.usedSize ?? 0) + (r.backingStorageSize ?? 0)));
    ws.send(JSON.stringify({ id: i, method: 'Runtime.getHeapUsage' }));
  });
  const idle = await usage();
  let peak = idle;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await usage());
      samples++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      ws.close();
      return { peakMiB: peak / 2 ** 20, idleMiB: idle / 2 ** 20, samples };
    },
  };
}

/** The workerd process miniflare started (a child of this test process): its peak and current RSS. */
export function workerdStatus(): { pid: number; hwmKiB: number; rssKiB: number } {
  const pids = execFileSync('pgrep', ['-P', String(process.pid)]).toString().trim().split('\n').map(Number);
  for (const pid of pids) {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workerd')) continue;
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { pid, hwmKiB: Number(/VmHWM:\s+(\d+)/.exec(s)![1]), rssKiB: Number(/VmRSS:\s+(\d+)/.exec(s)![1]) };
  }
  throw new Error('workerd process not found');
}
