/**
 * The Web Worker: every read, pass and write happens here, so the page stays responsive while a
 * model is processed. It holds the current upload (a File: bytes stay on disk, read by Blob.slice)
 * and answers the page's messages one at a time.
 */
import { initKernels, simdAvailable } from '../../dist/kernels/loader.js';
import { isModelsmithError } from '../../dist/core/errors.js';
import type { ErrorInfo, FromWorker, ToWorker } from './protocol.js';
import { inspectUpload, runOperation } from './ops.js';

interface WorkerScope {
  postMessage(message: FromWorker): void;
  addEventListener(type: 'message', listener: (e: MessageEvent<ToWorker>) => void): void;
}
const scope = self as unknown as WorkerScope;

let current: File | undefined;
// One job at a time: a second message waits for the first to finish instead of racing on the arena.
let queue: Promise<void> = Promise.resolve();

function post(m: FromWorker): void {
  scope.postMessage(m);
}

function errorInfo(e: unknown): ErrorInfo {
  if (isModelsmithError(e)) return { code: e.code, message: e.message };
  // Anything else is a bug in the library (hostile files must end in a ModelsmithError): show it whole.
  return { message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
}

/** Progress messages are throttled: thousands of tensors would otherwise flood the page. */
function progressPoster(): (phase: string, done: number, total: number) => void {
  let last = 0;
  let lastPhase = '';
  return (phase, done, total) => {
    const now = performance.now();
    if (phase === lastPhase && done < total && now - last < 50) return;
    last = now;
    lastPhase = phase;
    post({ type: 'progress', phase, done, total });
  };
}

async function handle(m: ToWorker): Promise<void> {
  try {
    if (m.type === 'open') {
      current = m.file;
      post({ type: 'summary', summary: await inspectUpload(m.file) });
    } else if (m.type === 'run') {
      if (!current) throw new Error('no model loaded');
      const result = await runOperation(current, m.options, progressPoster());
      post({ type: 'result', result });
    }
  } catch (e) {
    post({ type: 'error', error: errorInfo(e) });
  }
}

scope.addEventListener('message', (e) => {
  queue = queue.then(() => handle(e.data));
});

// Compile the WASM kernels up front so the first run does not pay for it.
initKernels().then(
  () => post({ type: 'ready', simd: simdAvailable() }),
  (e: unknown) => post({ type: 'error', error: errorInfo(e) }),
);
