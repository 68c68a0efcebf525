/**
 * Turns the library's inspect reports (summarizeOnnx / summarizeWeights) into the page's Summary:
 * the same facts the CLI `inspect` prints, as tables instead of text.
 */
import type { InspectReport } from '../../dist/formats/onnx/summary.js';
import type { WeightsSummary } from '../../dist/formats/weights-summary.js';
import type { Summary } from './protocol.js';
import { formatBytes, formatShape } from './format.js';

const MAX_ROWS = 40;

export function onnxSummary(file: string, fileBytes: number, r: InspectReport): Summary {
  const facts: [string, string][] = [
    ['format', 'ONNX'],
    ['file size', formatBytes(fileBytes)],
    ['producer', `${r.producer.name || '(none)'} ${r.producer.version}`.trim()],
    ['IR version', String(r.irVersion)],
    ['opsets', r.opsetImports.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ') || '(none)'],
    ['nodes', `${r.nodes.total} (${r.nodes.mainGraph} main graph, ${r.nodes.subgraphs} in subgraphs)`],
    ['parameters', `${r.parameters.toLocaleString('en-US')} in ${r.tensorCount} tensors`],
  ];
  const ops = [...r.ops].sort((a, b) => b.count + b.nestedCount - (a.count + a.nestedCount));
  return {
    file, format: 'onnx', kind: 'onnx', fileBytes, facts,
    tables: [
      { title: 'inputs', head: ['name', 'type'], rows: r.inputs.map((v) => [v.name, v.type]) },
      { title: 'outputs', head: ['name', 'type'], rows: r.outputs.map((v) => [v.name, v.type]) },
      { title: 'ops', head: ['op', 'count'], rows: ops.map((o) => [o.op, String(o.count + o.nestedCount)]) },
      { title: 'bytes by dtype', head: ['dtype', 'tensors', 'bytes'], rows: Object.entries(r.bytesByDtype).map(([d, v]) => [d, String(v.tensors), formatBytes(v.bytes)]) },
      { title: 'largest tensors', head: ['name', 'type', 'bytes'], rows: r.largestTensors.map((t) => [t.name, `${t.dtype}${formatShape(t.shape)}`, formatBytes(t.bytes)]) },
    ],
    diagnostics: r.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`),
  };
}

export function weightsSummary(file: string, fileBytes: number, s: WeightsSummary, details: { unknownGlobals?: string[]; stateDictKeys?: string[] } = {}): Summary {
  const facts: [string, string][] = [
    ['format', s.format],
    ['file size', formatBytes(fileBytes)],
    ['tensors', `${s.tensorCount} (${formatBytes(s.bytes)} of tensor data)`],
    ['parameters', s.parameters.toLocaleString('en-US')],
  ];
  if (s.sharedStorage) facts.push(['tied', `${s.sharedStorage} tensors share storage with another`]);
  if (details.stateDictKeys?.length) facts.push(['state dicts', details.stateDictKeys.join(', ')]);
  if (details.unknownGlobals?.length) facts.push(['not allow-listed (inert)', details.unknownGlobals.join(', ')]);
  const shown = s.tensors.length <= MAX_ROWS ? s.tensors : s.largestTensors;
  const tables = [
    { title: 'bytes by dtype', head: ['dtype', 'tensors', 'bytes'], rows: Object.entries(s.bytesByDtype).map(([d, v]) => [d, String(v.tensors), formatBytes(v.bytes)]) },
    {
      title: s.tensors.length <= MAX_ROWS ? 'tensors' : `largest tensors (of ${s.tensors.length})`,
      head: ['name', 'type', 'bytes'],
      rows: shown.map((t) => [t.name, `${t.dtype}${formatShape(t.shape)}`, formatBytes(t.bytes)]),
    },
  ];
  if (s.metadata) tables.push({ title: 'metadata', head: ['key', 'value'], rows: Object.entries(s.metadata).map(([k, v]) => [k, v.length > 120 ? v.slice(0, 117) + '...' : v]) });
  return { file, format: s.format, kind: 'weights', fileBytes, facts, tables, diagnostics: s.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`) };
}
