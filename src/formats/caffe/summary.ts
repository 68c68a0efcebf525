/**
 * The `inspect` view of a Caffe net: name, layer format it was read in, inputs, and per layer its
 * type, bottoms, tops, phase rules and blob shapes. Plain JSON-able data.
 */
import { isFieldSet } from '@bufbuild/protobuf';
import { blobInfo } from './blob.js';
import { readDiagnostics } from './diagnostics.js';
import { NetStateRuleSchema, Phase, type LayerParameter, type NetParameter, type NetStateRule } from './gen/caffe_pb.js';

export interface CaffeLayerSummary {
  name: string;
  type: string;
  bottoms: string[];
  tops: string[];
  blobs: { shape: number[]; dtype: string; legacy?: true }[];
  include?: string[];
  exclude?: string[];
  inputShapes?: number[][];
}

export interface CaffeSummary {
  format: 'caffe';
  name: string;
  layerCount: number;
  typeCounts: Record<string, number>;
  inputs: { name: string; shape?: number[] }[];
  blobCount: number;
  parameterCount: number;
  layers: CaffeLayerSummary[];
  diagnostics: { level: string; code: string; message: string }[];
}

function ruleText(r: NetStateRule): string {
  const parts: string[] = [];
  if (isFieldSet(r, NetStateRuleSchema.field.phase)) parts.push(`phase ${Phase[r.phase] ?? r.phase}`);
  if (isFieldSet(r, NetStateRuleSchema.field.minLevel)) parts.push(`min_level ${r.minLevel}`);
  if (isFieldSet(r, NetStateRuleSchema.field.maxLevel)) parts.push(`max_level ${r.maxLevel}`);
  for (const s of r.stage) parts.push(`stage ${s}`);
  for (const s of r.notStage) parts.push(`not_stage ${s}`);
  return parts.join(', ');
}

function layerSummary(l: LayerParameter): CaffeLayerSummary {
  const s: CaffeLayerSummary = {
    name: l.name,
    type: l.type,
    bottoms: [...l.bottom],
    tops: [...l.top],
    blobs: l.blobs.map((b) => {
      const info = blobInfo(b);
      return { shape: info.shape, dtype: info.dtype, ...(info.legacy ? { legacy: true as const } : {}) };
    }),
  };
  if (l.include.length) s.include = l.include.map(ruleText);
  if (l.exclude.length) s.exclude = l.exclude.map(ruleText);
  if (l.inputParam) s.inputShapes = l.inputParam.shape.map((sh) => sh.dim.map(Number));
  return s;
}

export function summarizeCaffe(net: NetParameter): CaffeSummary {
  const layers = net.layer.map(layerSummary);
  const typeCounts: Record<string, number> = {};
  for (const l of layers) typeCounts[l.type] = (typeCounts[l.type] ?? 0) + 1;
  const inputs: { name: string; shape?: number[] }[] = [];
  for (const l of net.layer) {
    if (l.type !== 'Input') continue;
    for (const [i, top] of l.top.entries()) {
      const sh = l.inputParam?.shape[i] ?? l.inputParam?.shape[0];
      inputs.push(sh ? { name: top, shape: sh.dim.map(Number) } : { name: top });
    }
  }
  let blobCount = 0;
  let parameterCount = 0;
  for (const l of net.layer) {
    for (const b of l.blobs) {
      blobCount++;
      parameterCount += blobInfo(b).count;
    }
  }
  return {
    format: 'caffe',
    name: net.name,
    layerCount: layers.length,
    typeCounts,
    inputs,
    blobCount,
    parameterCount,
    layers,
    diagnostics: readDiagnostics(net).map((d) => ({ level: d.level, code: d.code, message: d.message })),
  };
}
