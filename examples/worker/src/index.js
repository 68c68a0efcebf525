/**
 * Cloudflare Worker: POST a model (ONNX or safetensors) and get the compressed model back.
 *
 *   curl --data-binary @model.safetensors -H 'content-type: application/octet-stream' \
 *        'https://<worker>/?mode=int8&name=model.safetensors' -D - -o model.int8.safetensors
 *
 * mode=int8 (default): ONNX weight-only int8 (per channel, symmetric, QDQ in the graph), or safetensors
 *   weight-set int8 quantization (scales beside each weight); mode=fp16: safetensors float16 cast.
 * The response body streams the compressed file; the `x-modelsmith-report` header carries a JSON summary.
 *
 * Memory (Workers allow 128 MB per isolate): the request body is never buffered whole. safetensors is
 * read forward, one tensor at a time, and only the compressed tensors are kept until the output
 * (whose layout puts them in a different order) is streamed out with backpressure: peak ≈ compressed
 * size + the largest tensor. ONNX is read forward too (quantizeOnnxSource, access 'forward'): the
 * graph is decoded without its big payloads, each float weight is quantized as it passes and only
 * its int8 codes are kept; the output is streamed by writeOnnx. Peak ≈ graph + int8 codes (¼ of the
 * float weights) + tensors not quantized + one weight. Measured in workerd (see README.md).
 */
import * as ms from '../../../dist/bundle/modelsmith.workerd.js';
import { materializeInInputOrder } from './order.js';

/** ONNX uploads: the largest size measured in workerd (160 MiB: isolate peak ~87 MiB, README.md). */
const DEFAULT_MAX_ONNX_BYTES = 160 * 1024 * 1024;
const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;
/** Largest single tensor read from the body, and most compressed bytes held before streaming out. */
const DEFAULT_MAX_TENSOR_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024;
const HEAD_BYTES = 64;

export default {
  async fetch(request, env, ctx) {
    if (request.method !== 'POST') return json(405, { error: { code: 'E_USAGE', message: 'POST a model file' } });
    const url = new URL(request.url);
    const mode = url.searchParams.get('mode') ?? 'int8';
    const name = url.searchParams.get('name') ?? 'upload';
    if (mode !== 'int8' && mode !== 'fp16') return json(400, { error: { code: 'E_USAGE', message: `mode must be int8 or fp16, got '${mode}'` } });
    const length = Number(request.headers.get('content-length'));
    if (!request.body || !Number.isSafeInteger(length) || length <= 0) {
      return json(411, { error: { code: 'E_USAGE', message: 'a Content-Length is required (the body is read as a stream of that many bytes)' } });
    }
    const maxBytes = Number(env?.MAX_BYTES ?? DEFAULT_MAX_BYTES);
    if (length > maxBytes) return json(413, { error: { code: 'E_LIMIT', message: `body of ${length} bytes is over the ${maxBytes}-byte limit` } });
    const limits = {
      onnx: Number(env?.MAX_ONNX_BYTES ?? DEFAULT_MAX_ONNX_BYTES),
      tensor: Number(env?.MAX_TENSOR_BYTES ?? DEFAULT_MAX_TENSOR_BYTES),
      held: Number(env?.MAX_HELD_BYTES ?? DEFAULT_MAX_HELD_BYTES),
    };
    // Both formats read the body forward, one tensor (or the header, or a 1 MiB chunk of graph) at a time.
    const src = new ms.ForwardStreamSource(request.body, length, name, { maxRead: limits.tensor });
    try {
      await ms.initKernels();
      const format = ms.detectFormat(await src.peek(Math.min(length, HEAD_BYTES)), name)?.name;
      if (format === 'onnx') return await onnx(src, mode, limits, ctx);
      if (format === 'safetensors') return await safetensors(src, mode, limits, ctx);
      throw new ms.ModelsmithError(ms.ErrorCodes.UNSUPPORTED, `this worker compresses ONNX and safetensors, not ${format ?? 'an unrecognised file'}`, { path: name });
    } catch (e) {
      await src.cancel(e);
      return errorResponse(e);
    }
  },
};

async function onnx(src, mode, limits, ctx) {
  if (mode !== 'int8') throw new ms.ModelsmithError(ms.ErrorCodes.USAGE, 'ONNX: only mode=int8 is offered here', { path: src.name });
  const max = limits.onnx;
  if (src.size > max) {
    throw new ms.ModelsmithError(ms.ErrorCodes.LIMIT, `ONNX upload of ${src.size} bytes is over the ${max}-byte limit of this worker`, { path: src.name, format: 'onnx' });
  }
  const opts = { dtype: 'int8', perChannel: true, symmetric: true };
  // One forward pass over the body: weights are quantized as they arrive, the rest of the big
  // payloads are kept as they pass (capped), and nothing is read twice.
  const { model, report } = await ms.quantizeOnnxSource(src, { ...opts, access: 'forward', maxTensorBytes: limits.tensor, maxKeptBytes: limits.held });
  src.forget();
  await src.finish();
  const summary = {
    format: 'onnx', mode, bytesIn: src.size,
    quantized: report.quantized.length, skipped: report.skipped.length,
    size: report.size,
  };
  return streamOut(summary, ctx, (sink) => ms.writeOnnx(model, sink), 'application/octet-stream');
}

async function safetensors(src, mode, limits, ctx) {
  const set = await ms.readSafetensors(src, { path: src.name });
  for (const t of set.tensors) {
    if (t.byteLength > limits.tensor) {
      throw new ms.ModelsmithError(ms.ErrorCodes.LIMIT, `tensor of ${t.byteLength} bytes is over the ${limits.tensor}-byte limit of this worker`, { path: src.name, tensor: t.name, format: 'safetensors' });
    }
  }
  const { set: out, report } = mode === 'fp16' ? await ms.castWeightSet(set, { to: 'float16' }) : await ms.quantizeWeightSet(set, { scheme: 'int8' });
  if (report.bytesAfter > limits.held) {
    throw new ms.ModelsmithError(ms.ErrorCodes.LIMIT, `compressed model of ${report.bytesAfter} bytes is over the ${limits.held}-byte limit this worker can hold while reordering`, { path: src.name, format: 'safetensors' });
  }
  // Run the pass now, reading the body forward; only the compressed tensors stay in memory.
  const ready = await materializeInInputOrder(set, out, () => src.forget());
  await src.finish();
  const summary = {
    format: 'safetensors', mode, bytesIn: src.size,
    processed: report.processed.length, skipped: report.skipped.length,
    bytesBefore: report.bytesBefore, bytesAfter: report.bytesAfter, ratio: report.ratio,
    bytesOut: ms.planSafetensors(ready).totalBytes,
  };
  return streamOut(summary, ctx, (sink) => ms.writeSafetensors(ready, sink, { path: src.name }), 'application/octet-stream');
}

/** Headers now, body as it is produced; a failure mid-body aborts the stream (the client sees an error, not a short file). */
function streamOut(summary, ctx, write, type) {
  const { readable, writable } = new TransformStream();
  const sink = ms.StreamSink.of(writable, 'response');
  const done = (async () => {
    try {
      await write(sink);
      await sink.close();
    } catch (e) {
      await sink.abort(e);
    }
  })();
  ctx?.waitUntil?.(done);
  const headers = { 'content-type': type, 'x-modelsmith-report': JSON.stringify(summary) };
  if (summary.bytesOut !== undefined) headers['content-length'] = String(summary.bytesOut);
  return new Response(readable, { headers });
}

const STATUS = { E_LIMIT: 413, E_UNSUPPORTED: 415, E_UNKNOWN_FORMAT: 415, E_IO: 500 };

function errorResponse(e) {
  if (ms.isModelsmithError(e)) return json(STATUS[e.code] ?? 400, { error: e.toJSON() });
  return json(500, { error: { code: 'E_INTERNAL', message: String(e?.message ?? e) } });
}

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
