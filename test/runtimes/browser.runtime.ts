/**
 * The browser page (examples/web) end to end in real Chromium: build the bundles, serve them with
 * serve.mjs, upload corpus models, run operations in the Web Worker, download the results and check
 * them in Node — with our readers, onnxruntime-node, and byte-for-byte against the Node library run
 * with the same options (the page and the CLI must produce the same file).
 *
 * Needs Debian's /usr/bin/chromium (skipped with a message when it is absent) and a built dist/.
 * MODELSMITH_UPDATE_SCREENSHOT=1 also writes docs/web-screenshot.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { FileSource } from '../../src/platform/node.js';
import { MemorySink, MemorySource } from '../../src/io/source.js';
import { readOnnx } from '../../src/formats/onnx/read.js';
import { writeOnnx } from '../../src/formats/onnx/write.js';
import { quantizeWeights } from '../../src/compress/quantize/weight.js';
import { readSafetensors } from '../../src/formats/safetensors/read.js';
import { writeSafetensors } from '../../src/formats/safetensors/write.js';
import { quantizeWeightSet } from '../../src/compress/weights/quantize.js';
import { OrtSession } from '../../src/eval/ort.js';
import { mulberry32, randomTensor } from '../../src/eval/inputs.js';
import { errorStats } from '../../src/eval/metrics.js';
import { toFloat64 } from '../../src/eval/compare.js';

const REPO = resolve(import.meta.dirname, '../..');
const CORPUS = resolve(import.meta.dirname, '../../../shared/corpus');
const SAMPLE = join(REPO, 'examples/sample/version-slim-320.onnx');
const SILERO = join(CORPUS, 'safetensors/silero-vad/silero_vad_16k.safetensors');
const PTH = join(CORPUS, 'pytorch/real/ultra-light-face/version-slim-320.pth');
const CHROMIUM = '/usr/bin/chromium';
const run = promisify(execFile);

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let server: ChildProcess | undefined;
let browser: Browser | undefined;
let baseUrl = '';
let tmp = '';

async function startServer(): Promise<string> {
  const child = spawn(process.execPath, [join(REPO, 'examples/web/serve.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  server = child;
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`serve.mjs did not start: ${out}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]!);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => fail(new Error(`serve.mjs exited with ${code}: ${out}`)));
  });
}

/** A fresh page with the worker ready; page errors fail the test instead of passing unnoticed. */
async function openPage(): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(baseUrl);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  return { page, errors };
}

async function upload(page: Page, file: string): Promise<void> {
  await page.setInputFiles('#file', file);
  await page.waitForSelector('#summary[data-kind]', { timeout: 30_000 });
}

/** Click run, wait for the result, and save the download into tmp. */
async function runAndDownload(page: Page): Promise<{ bytes: Uint8Array; name: string }> {
  await page.click('#run');
  await page.waitForSelector('#result:not([hidden]), #error:not([hidden])', { timeout: 60_000 });
  const err = await page.locator('#error').isVisible();
  if (err) throw new Error(`page reported: ${await page.textContent('#error')}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const path = join(tmp, download.suggestedFilename());
  await download.saveAs(path);
  return { bytes: new Uint8Array(await readFile(path)), name: download.suggestedFilename() };
}

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser tests skipped: ${CHROMIUM} not found (apt-get install chromium)`);

describe.skipIf(!haveChromium)('examples/web in Chromium', () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'modelsmith-web-'));
    await run(process.execPath, [join(REPO, 'examples/web/build.mjs'), '--no-sourcemap'], { cwd: REPO });
    baseUrl = await startServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    server?.kill('SIGTERM');
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('quantizes the sample ONNX model to int8: same bytes as Node, runs in onnxruntime with cosine ≥ 0.99', async () => {
    const { page, errors } = await openPage();

    await upload(page, SAMPLE);
    const summary = await page.textContent('#summary');
    expect(summary).toContain('version-slim-320.onnx');
    expect(summary).toContain('ONNX');
    expect(summary).toMatch(/Conv\s*\d+/); // op histogram
    expect(summary).toContain('float32[1,3,240,320]'); // the declared input

    // Defaults of the form are the CLI's: weight-only int8, per tensor, asymmetric.
    await page.selectOption('select[name="op"]', 'quantize');
    await page.selectOption('select[name="method"]', 'weight');
    await page.selectOption('select[name="dtype"]', 'int8');
    const { bytes, name } = await runAndDownload(page);
    expect(name).toBe('version-slim-320.int8.onnx');

    // The page showed progress through every phase and ended full.
    expect(await page.getAttribute('#progress-box', 'data-phases')).toMatch(/reading.*quantizing.*writing.*done/);
    expect(await page.evaluate(() => { const p = document.getElementById('progress') as HTMLProgressElement; return p.value === p.max; })).toBe(true);
    // The size line and the per-weight error report.
    const sizeLine = (await page.textContent('#size'))!;
    expect(sizeLine).toMatch(/1\.14 MiB → \d+(\.\d+)? KiB \(\d+\.\d%\)/);
    const result = (await page.textContent('#result'))!;
    expect(result).toMatch(/quantized \d+ weight\(s\) to int8 per-tensor asymmetric/);
    expect(result).toContain('SNR dB');

    // Byte-identical to the Node library with the same options.
    const src = await FileSource.open(SAMPLE);
    const ref = await readOnnx(src, { path: SAMPLE });
    await src.close();
    const { report } = await quantizeWeights(ref, { dtype: 'int8', perChannel: false, symmetric: false });
    const sink = new MemorySink();
    await writeOnnx(ref, sink);
    expect(report.quantized.length).toBeGreaterThan(10);
    expect(sha256(bytes)).toBe(sha256(sink.bytes()));
    expect(bytes.byteLength).toBeLessThan((await readFile(SAMPLE)).byteLength * 0.4);

    // Our reader accepts the download, and it holds int8 weights behind DequantizeLinear (or the
    // Cast → Sub → Mul form the pass uses below opset 10).
    const got = await readOnnx(new MemorySource(bytes, name));
    const ops = got.proto.graph!.node.map((n) => n.opType);
    const dq = report.quantized.filter((q) => q.form === 'dq').length;
    expect(ops.filter((o) => o === 'DequantizeLinear').length).toBe(dq);
    expect(ops.filter((o) => o === 'Cast').length).toBeGreaterThanOrEqual(report.quantized.length - dq);
    expect(got.proto.graph!.initializer.filter((t) => t.dataType === 3).length).toBe(report.quantized.length); // INT8

    // onnxruntime-node runs it; outputs stay close to the float model on a random input.
    const qPath = join(tmp, name);
    const [a, b] = [await OrtSession.create(SAMPLE), await OrtSession.create(qPath)];
    const input = randomTensor(a.inputNames[0]!, 'float32', [1, 3, 240, 320], mulberry32(7));
    const [ra, rb] = [await a.run([input]), await b.run([input])];
    expect(rb.length).toBe(2);
    for (let i = 0; i < ra.length; i++) {
      const s = errorStats(toFloat64(ra[i]!), toFloat64(rb[i]!));
      expect(s.cosine, `output ${a.outputNames[i]}`).toBeGreaterThanOrEqual(0.99);
    }
    await a.release();
    await b.release();

    const shot = join(tmp, 'web-screenshot.png');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: shot, fullPage: true });
    const png = await readFile(shot);
    expect([...png.subarray(1, 4)]).toEqual([0x50, 0x4e, 0x47]); // "PNG"
    if (process.env.MODELSMITH_UPDATE_SCREENSHOT === '1') await copyFile(shot, join(REPO, 'docs/web-screenshot.png'));

    expect(errors).toEqual([]);
    await page.close();
  });

  it('quantizes a safetensors file (weight container) to int8 with the same bytes as Node', async () => {
    const { page, errors } = await openPage();
    // Record every Blob.slice the worker makes: a weight container must be read piece by piece.
    const worker = page.workers()[0] ?? (await page.waitForEvent('worker'));
    await worker.evaluate(() => {
      const g = globalThis as unknown as { sliceReads: number[][] };
      g.sliceReads = [];
      const orig = Blob.prototype.slice;
      Blob.prototype.slice = function (this: Blob, start?: number, end?: number, type?: string) {
        g.sliceReads.push([start ?? 0, (end ?? this.size) - (start ?? 0), this.size]);
        return orig.call(this, start, end, type);
      };
    });
    await upload(page, SILERO);
    const summary = (await page.textContent('#summary'))!;
    expect(summary).toContain('safetensors');
    expect(summary).toMatch(/tensors\s*15 \(/);

    await page.selectOption('select[name="op"]', 'quantize');
    await page.selectOption('select[name="method"]', 'weight');
    const { bytes, name } = await runAndDownload(page);
    expect(name).toBe('silero_vad_16k.int8.safetensors');
    expect(await page.textContent('#result')).toMatch(/quantize: \d+ tensor\(s\) processed/);

    const src = await FileSource.open(SILERO);
    const set = await readSafetensors(src, { path: SILERO });
    const q = await quantizeWeightSet(set, { scheme: 'int8', perChannel: false });
    const sink = new MemorySink();
    await writeSafetensors(q.set, sink);
    await src.close();
    expect(sha256(bytes)).toBe(sha256(sink.bytes()));

    const back = await readSafetensors(new MemorySource(bytes, name));
    expect(back.tensors.filter((t) => t.dtype === 'int8').length).toBe(q.report.processed.length);
    expect(q.report.processed.length).toBeGreaterThan(0);

    const fileSize = (await readFile(SILERO)).byteLength;
    const reads = (await worker.evaluate(() => (globalThis as unknown as { sliceReads: number[][] }).sliceReads)).filter((r) => r[2] === fileSize);
    expect(reads.length).toBeGreaterThan(15); // header + one read per tensor, for inspect and for the run
    expect(Math.max(...reads.map((r) => r[1]!))).toBeLessThan(fileSize / 2);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('inspects a PyTorch checkpoint and converts it to safetensors', async () => {
    const { page, errors } = await openPage();
    await upload(page, PTH);
    const summary = (await page.textContent('#summary'))!;
    expect(summary).toMatch(/pytorch-(zip|legacy)/);

    await page.selectOption('select[name="op"]', 'convert');
    await page.selectOption('select[name="target"]', 'safetensors');
    const { bytes, name } = await runAndDownload(page);
    expect(name).toBe('version-slim-320.converted.safetensors');
    const back = await readSafetensors(new MemorySource(bytes, name));
    const count = Number(/tensors\s*(\d+) \(/.exec(summary)![1]);
    expect(back.tensors.length).toBe(count);
    expect(count).toBeGreaterThan(50);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows library errors with their code and the file name, and stays usable', async () => {
    const { page } = await openPage();
    const bad = join(tmp, 'broken.onnx');
    await writeFile(bad, new Uint8Array([0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    await page.setInputFiles('#file', bad);
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    expect(await page.getAttribute('#error', 'data-code')).toMatch(/^E_(TRUNCATED|MALFORMED|LIMIT)$/);
    expect(await page.textContent('#error')).toContain('broken.onnx');

    const unknown = join(tmp, 'notes.txt');
    await writeFile(unknown, 'hello, not a model');
    await page.setInputFiles('#file', unknown);
    await page.waitForFunction(() => document.getElementById('error')?.dataset.code === 'E_UNKNOWN_FORMAT', undefined, { timeout: 30_000 });

    // Multi-file formats cannot come through one upload: refused by name, not misread.
    const index = join(tmp, 'model.safetensors.index.json');
    await writeFile(index, '{"weight_map": {}}');
    await page.setInputFiles('#file', index);
    await page.waitForFunction(() => document.getElementById('error')?.dataset.code === 'E_UNSUPPORTED', undefined, { timeout: 30_000 });
    expect(await page.textContent('#error')).toContain('model.safetensors.index.json');
    // Nothing to operate on after a failed open.
    expect(await page.locator('#options').isVisible()).toBe(false);

    // A good file afterwards still works.
    await upload(page, SAMPLE);
    expect(await page.locator('#error').isVisible()).toBe(false);
    await page.close();
  });
});
