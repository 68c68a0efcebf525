/**
 * examples/worker in the real workerd runtime (miniflare): byte-identical outputs to the Node
 * reference, error responses with modelsmith codes, eval blocked, and a 100 MB safetensors upload
 * quantized as a stream, with the workerd process's memory high-water mark measured.
 */
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, isolateSampler, workerdStatus, nodeCompress, requireBuilt, ROOT, sha256, SAMPLE_ONNX, SILERO, TASKS, writeBigSafetensors } from './rt-helpers.js';

const WORKER = resolve(ROOT, 'examples/worker/src/index.js');
const RULES = [{ type: 'ESModule' as const, include: ['**/*.js'] }, { type: 'CompiledWasm' as const, include: ['**/*.wasm'] }];
const base = { modules: true, scriptPath: WORKER, modulesRoot: ROOT, modulesRules: RULES, compatibilityDate: '2026-04-01' };

let mf: Miniflare;
let dir: string;
let inspectorPort: number;


beforeAll(async () => {
  requireBuilt();
  dir = mkdtempSync(join(tmpdir(), 'modelsmith-workerd-'));
  inspectorPort = await freePort();
  mf = new Miniflare({
    inspectorPort,
    workers: [
      { name: 'main', ...base },
      { name: 'small', ...base, bindings: { MAX_ONNX_BYTES: '1000000', MAX_TENSOR_BYTES: '100000' } },
      { name: 'small-held', ...base, bindings: { MAX_HELD_BYTES: '100000' } },
      {
        name: 'eval-probe', modules: true, compatibilityDate: '2026-04-01',
        script: "export default { fetch() { try { (0, eval)('1'); return new Response('allowed'); } catch { return new Response('blocked'); } } }",
      },
    ],
  });
  await mf.ready;
});
afterAll(async () => {
  await mf?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A worker's fetch (miniflare's own fetch types differ from the DOM ones; the objects are the same). */
async function fetcher(name: string): Promise<{ fetch(url: string, init?: unknown): Promise<Response> }> {
  return (await mf.getWorker(name)) as unknown as { fetch(url: string, init?: unknown): Promise<Response> };
}

async function post(worker: string, query: string, body: Uint8Array | ReadableStream, length?: number): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (length !== undefined) headers['content-length'] = String(length);
  const init = { method: 'POST', body, headers, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}) };
  return (await fetcher(worker)).fetch(`http://worker/${query}`, init);
}

describe('Cloudflare Worker example in workerd', () => {
  for (const t of TASKS) {
    it(`${t.name}: byte-identical to Node, with a JSON report header`, async () => {
      const body = readFileSync(t.input);
      const res = await post('main', `?mode=${t.mode}&name=${t.input.split('/').pop()}`, body, body.byteLength);
      const out = new Uint8Array(await res.arrayBuffer());
      expect(res.status).toBe(200);
      const report = JSON.parse(res.headers.get('x-modelsmith-report')!) as Record<string, number | string>;
      expect(report.bytesIn).toBe(body.byteLength);
      if (t.input.endsWith('.onnx')) {
        expect(report.format).toBe('onnx');
        expect(report.quantized).toBe(42);
      } else {
        expect(report.format).toBe('safetensors');
        expect(report.processed).toBe(15);
        expect(report.bytesOut).toBe(out.byteLength);
      }
      expect(sha256(out)).toBe(sha256(await nodeCompress(t.input, t.mode)));
    });
  }

  it('safetensors int8 (weight-set quantization, read forward from the body) matches Node', async () => {
    const body = readFileSync(SILERO);
    const res = await post('main', '?mode=int8&name=silero.safetensors', body, body.byteLength);
    expect(res.status).toBe(200);
    expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(sha256(await nodeCompress(SILERO, 'int8')));
  });

  it('eval is blocked in workerd (the bundle must not need it)', async () => {
    const res = await (await fetcher('eval-probe')).fetch('http://probe/');
    expect(await res.text()).toBe('blocked');
  });

  it('answers bad requests with status + modelsmith error code', async () => {
    const json = async (r: Response) => ((await r.json()) as { error: { code: string; message: string } }).error;
    const get = await (await fetcher('main')).fetch('http://worker/');
    expect(get.status).toBe(405);
    await get.arrayBuffer();

    const onnx = readFileSync(SAMPLE_ONNX);
    let r = await post('main', '?mode=int3', onnx, onnx.byteLength);
    expect(r.status).toBe(400);
    expect((await json(r)).code).toBe('E_USAGE');

    r = await post('main', '?mode=fp16&name=m.onnx', onnx, onnx.byteLength);
    expect(r.status).toBe(400);
    expect((await json(r)).code).toBe('E_USAGE');

    const text = new TextEncoder().encode('just some text, no model here\n');
    r = await post('main', '?name=notes.txt', text, text.byteLength);
    expect(r.status).toBe(415);
    expect((await json(r)).code).toBe('E_UNSUPPORTED');

    const cut = readFileSync(SILERO).subarray(0, 5000);
    r = await post('main', '?mode=fp16&name=cut.safetensors', cut, cut.byteLength);
    expect(r.status).toBe(400);
    const e = await json(r);
    expect(e.code).toBe('E_TRUNCATED');
    expect(e.message).toContain('cut.safetensors');

    r = await post('small', '?name=big.onnx', onnx, onnx.byteLength);
    expect(r.status).toBe(413);
    expect((await json(r)).code).toBe('E_LIMIT');

    // Memory caps of the streaming safetensors path: one tensor too big, or too much to hold.
    const silero = readFileSync(SILERO);
    r = await post('small', '?mode=fp16&name=s.safetensors', silero, silero.byteLength);
    expect(r.status).toBe(413);
    const big = await json(r);
    expect(big.code).toBe('E_LIMIT');
    expect(big.message).toMatch(/tensor '.+'/);
    r = await post('small-held', '?mode=fp16&name=s.safetensors', silero, silero.byteLength);
    expect(r.status).toBe(413);
    expect((await json(r)).message).toMatch(/hold while reordering/);

    // Chunked upload without Content-Length: the size must be known to read the body as a stream.
    const stream = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(onnx.subarray(0, 100)); c.close(); } });
    r = await post('main', '?name=m.onnx', stream);
    expect(r.status).toBe(411);
    await r.arrayBuffer();
  });

  it('quantizes a 100 MB safetensors upload as a stream: same bytes as Node, isolate peak < 112 MiB', async () => {
    const big = join(dir, 'big.safetensors');
    const size = writeBigSafetensors(big);
    expect(size).toBeGreaterThan(100 * 1024 * 1024);
    const before = workerdStatus();
    const sampler = await isolateSampler(inspectorPort, 'main');
    const body = Readable.toWeb(createReadStream(big)) as unknown as ReadableStream<Uint8Array>;
    const res = await post('main', '?mode=int8&name=big.safetensors', body, size);
    expect(res.status).toBe(200);
    const report = JSON.parse(res.headers.get('x-modelsmith-report')!) as { processed: number; bytesOut: number };
    expect(report.processed).toBe(25);
    // Hash the response as it streams: the test never holds it whole either.
    const { createHash } = await import('node:crypto');
    const h = createHash('sha256');
    let n = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      h.update(c);
      n += c.byteLength;
    }
    const isolate = await sampler.stop();
    const after = workerdStatus();
    expect(n).toBe(report.bytesOut);
    expect(h.digest('hex')).toBe(sha256(await nodeCompress(big, 'int8')));
    const growthMiB = (after.hwmKiB - before.rssKiB) / 1024;
    console.log(`isolate memory (JS heap + ArrayBuffers, ${isolate.samples} samples): idle ${isolate.idleMiB.toFixed(1)} MiB, peak ${isolate.peakMiB.toFixed(1)} MiB`);
    console.log(`workerd process: RSS ${(before.rssKiB / 1024).toFixed(0)} MiB before, high-water ${(after.hwmKiB / 1024).toFixed(0)} MiB after a ${(size / 2 ** 20).toFixed(0)} MiB upload (+${growthMiB.toFixed(0)} MiB, output ${(n / 2 ** 20).toFixed(1)} MiB)`);
    // The Workers limit applies to the isolate: its sampled peak must stay well under 128 MiB
    // (a buffered upload alone would be 100 MiB). The process high-water mark is a looser upper
    // bound (it also counts workerd's I/O buffers and allocator slack); it must stay under it too.
    expect(isolate.samples).toBeGreaterThanOrEqual(5);
    expect(isolate.peakMiB).toBeGreaterThan(25); // the sampler saw the work (output alone is 25 MiB)
    expect(isolate.peakMiB).toBeLessThan(112);
    expect(growthMiB).toBeLessThan(128);
  });
});
