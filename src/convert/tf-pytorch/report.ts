/** The conversion report: every TF → torch pair with its transform, and what was left unmatched. */
import type { Diagnostic } from '../../core/errors.js';

export interface TfTorchPair {
  /** TF variable name ('' for tensors torch needs that Keras does not keep, e.g. `num_batches_tracked`). */
  tf: string;
  torch: string;
  transform: string;
  shapeBefore: number[];
  shapeAfter: number[];
}

export interface TfTorchReport {
  pairs: TfTorchPair[];
  unmatchedTf: string[];
  unmatchedTorch: string[];
  diagnostics: Diagnostic[];
}

const dims = (s: number[]): string => `[${s.join(',')}]`;

/** Plain-text rendering for the CLI: one line per pair, then the unmatched names and diagnostics. */
export function formatTfTorchReport(r: TfTorchReport): string {
  const lines = r.pairs.map((p) => `${p.tf === '' ? '(generated)' : p.tf} ${dims(p.shapeBefore)} -> ${p.torch} ${dims(p.shapeAfter)}: ${p.transform}`);
  if (r.unmatchedTf.length > 0) lines.push(`unmatched TF variables (${r.unmatchedTf.length}): ${r.unmatchedTf.join(', ')}`);
  if (r.unmatchedTorch.length > 0) lines.push(`unmatched torch keys (${r.unmatchedTorch.length}): ${r.unmatchedTorch.join(', ')}`);
  for (const d of r.diagnostics) lines.push(`${d.level} ${d.code}: ${d.message}`);
  return lines.join('\n');
}
