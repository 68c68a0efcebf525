/**
 * The page: picks or receives a dropped model file, hands it to the worker, renders the inspect
 * summary, the operation form, progress, and the result (size, error report, download link).
 * No processing happens here, so the UI never freezes.
 */
import type { FromWorker, RunOptions, RunResult, Summary, Table, ToWorker } from './protocol.js';
import { formatBytes } from './format.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el as T;
};

const worker = new Worker(new URL('./dist/worker.js', document.baseURI));
const send = (m: ToWorker): void => worker.postMessage(m);

const fileInput = $<HTMLInputElement>('file');
const drop = $('drop');
const summaryEl = $('summary');
const form = $<HTMLFormElement>('options');
const runButton = $<HTMLButtonElement>('run');
const progressBox = $('progress-box');
const progressBar = $<HTMLProgressElement>('progress');
const progressText = $('progress-text');
const resultEl = $('result');
const errorEl = $('error');
const statusEl = $('status');

let busy = false;
let downloadUrl: string | undefined;

function setBusy(b: boolean): void {
  busy = b;
  runButton.disabled = b || summaryEl.dataset.kind === undefined;
  document.body.classList.toggle('busy', b);
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function renderTable(t: Table): HTMLElement {
  const box = el('section', undefined, 'table');
  box.append(el('h3', t.title));
  const table = el('table');
  const head = el('tr');
  for (const h of t.head) head.append(el('th', h));
  table.append(head);
  for (const r of t.rows) {
    const tr = el('tr');
    for (const c of r) tr.append(el('td', c));
    table.append(tr);
  }
  // Long tables scroll in place so the summary, the form and the result fit on one screen.
  if (t.rows.length > 8) {
    const scroller = el('div', undefined, 'scroll');
    scroller.append(table);
    box.append(scroller);
  } else {
    box.append(table);
  }
  if (t.more) box.append(el('p', `… ${t.more} more`, 'more'));
  return box;
}

function renderFacts(facts: [string, string][]): HTMLElement {
  const dl = el('dl', undefined, 'facts');
  for (const [k, v] of facts) dl.append(el('dt', k), el('dd', v));
  return dl;
}

function renderDiagnostics(d: string[]): HTMLElement[] {
  if (!d.length) return [];
  const ul = el('ul', undefined, 'diagnostics');
  for (const x of d) ul.append(el('li', x));
  return [el('h3', 'diagnostics'), ul];
}

function showSummary(s: Summary): void {
  summaryEl.replaceChildren(el('h2', s.file), renderFacts(s.facts), ...s.tables.map(renderTable), ...renderDiagnostics(s.diagnostics));
  summaryEl.dataset.kind = s.kind;
  summaryEl.hidden = false;
  form.hidden = false;
  form.dataset.kind = s.kind;
  // Graph-only choices make no sense for weight containers.
  for (const opt of form.querySelectorAll<HTMLOptionElement>('option[data-onnx-only]')) opt.disabled = s.kind !== 'onnx';
  syncForm();
}

function showResult(r: RunResult): void {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(r.blob);
  const a = el('a', `download ${r.fileName} (${formatBytes(r.outputBytes)})`, 'download');
  a.id = 'download';
  a.href = downloadUrl;
  a.download = r.fileName;
  const ratio = r.inputBytes > 0 ? r.outputBytes / r.inputBytes : 1;
  const size = el('p', `${formatBytes(r.inputBytes)} → ${formatBytes(r.outputBytes)} (${(ratio * 100).toFixed(1)}%) in ${r.seconds.toFixed(2)} s`, 'size');
  size.id = 'size';
  resultEl.replaceChildren(el('h2', 'result'), el('p', r.headline, 'headline'), size, a, ...r.tables.map(renderTable), ...renderDiagnostics(r.diagnostics));
  resultEl.hidden = false;
}

function showError(message: string, code?: string): void {
  errorEl.textContent = message;
  if (code) errorEl.dataset.code = code;
  else delete errorEl.dataset.code;
  errorEl.hidden = false;
}

worker.addEventListener('message', (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'ready':
      statusEl.textContent = `worker ready (WASM kernels: ${m.simd ? 'SIMD' : 'scalar'})`;
      document.body.dataset.ready = 'true';
      break;
    case 'summary':
      showSummary(m.summary);
      setBusy(false);
      break;
    case 'progress':
      progressBox.hidden = false;
      if (m.total <= 1 && m.done < m.total) {
        // A pass without byte counts (the ONNX graph passes): indeterminate rather than a bar stuck at 0.
        progressBar.removeAttribute('value');
      } else {
        progressBar.max = m.total > 0 ? m.total : 1;
        progressBar.value = m.total > 0 ? m.done : 1;
      }
      progressText.textContent = `${m.phase}${m.total > 1 ? ` ${formatBytes(m.done)} / ${formatBytes(m.total)}` : ''}`;
      progressBox.dataset.phases = [...new Set([...(progressBox.dataset.phases ?? '').split(' ').filter(Boolean), m.phase])].join(' ');
      break;
    case 'result':
      setBusy(false);
      showResult(m.result);
      break;
    case 'error':
      // A failed open leaves nothing to operate on: hide the stale summary and form.
      if (summaryEl.dataset.kind === undefined) {
        summaryEl.hidden = true;
        form.hidden = true;
      }
      setBusy(false);
      showError(m.error.message, m.error.code);
      break;
  }
});
worker.addEventListener('error', (e) => {
  setBusy(false);
  showError(`worker failed: ${e.message}`);
});

function open(file: File): void {
  if (busy) return;
  errorEl.hidden = true;
  resultEl.hidden = true;
  progressBox.hidden = true;
  delete summaryEl.dataset.kind;
  summaryEl.replaceChildren(el('p', `reading ${file.name} (${formatBytes(file.size)})…`));
  summaryEl.hidden = false;
  setBusy(true);
  send({ type: 'open', file });
}

fileInput.addEventListener('change', () => {
  const f = fileInput.files?.[0];
  if (f) open(f);
});
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (f) open(f);
});

const field = <T extends HTMLInputElement | HTMLSelectElement>(name: string): T => form.elements.namedItem(name) as T;

/** Shows only the fields of the chosen operation (and method). */
function syncForm(): void {
  const op = field<HTMLSelectElement>('op').value;
  const method = field<HTMLSelectElement>('method').value;
  for (const row of form.querySelectorAll<HTMLElement>('[data-op]')) {
    const ops = row.dataset.op!.split(' ');
    const methods = row.dataset.method?.split(' ');
    row.hidden = !ops.includes(op) || (methods !== undefined && !methods.includes(method));
  }
  for (const opt of field<HTMLSelectElement>('target').options) opt.disabled = opt.value === 'onnx' && form.dataset.kind !== 'onnx';
}
form.addEventListener('change', syncForm);

function readOptions(): RunOptions {
  const op = field<HTMLSelectElement>('op').value as RunOptions['op'];
  return {
    op,
    method: field<HTMLSelectElement>('method').value as RunOptions['method'],
    dtype: field<HTMLSelectElement>('dtype').value as RunOptions['dtype'],
    perChannel: field<HTMLInputElement>('perChannel').checked,
    symmetric: field<HTMLInputElement>('symmetric').checked,
    to: field<HTMLSelectElement>('to').value as RunOptions['to'],
    pruneMethod: field<HTMLSelectElement>('pruneMethod').value as RunOptions['pruneMethod'],
    sparsity: Number(field<HTMLInputElement>('sparsity').value),
    target: field<HTMLSelectElement>('target').value as RunOptions['target'],
  };
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (busy) return;
  errorEl.hidden = true;
  resultEl.hidden = true;
  progressBox.hidden = false;
  progressBox.dataset.phases = '';
  progressBar.removeAttribute('value');
  progressText.textContent = 'starting…';
  setBusy(true);
  send({ type: 'run', options: readOptions() });
});
syncForm();
