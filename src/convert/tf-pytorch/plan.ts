/**
 * The conversion plan: each discovered Keras layer turned into one or more torch modules ("units":
 * usually one; SeparableConv2D gives a depthwise and a pointwise conv), with their lazy parameters.
 * Naming (automatic, template or mapping file) only assigns keys to these parameters.
 */
import type { Diagnostics } from '../../core/errors.js';
import type { DiscoveredLayers, TfLayer } from './layers.js';
import { flattenChannels } from './flatten.js';
import { layerParams, type OutParam } from './transforms.js';

export interface Unit {
  layer: TfLayer;
  /** Registry kind (Keras class or inferred). */
  kind: string;
  /** Sub-module of the layer ('' for the layer itself). */
  module: string;
  params: OutParam[];
}

export function planUnits(found: DiscoveredLayers, flatten: Record<string, number> | undefined, diags: Diagnostics): Unit[] {
  const units: Unit[] = [];
  for (const layer of found.layers) {
    const c = flattenChannels(layer, found.keras, flatten, diags);
    const { kind, params } = layerParams(layer, { diags, ...(c !== undefined ? { flattenChannels: c } : {}) });
    if (kind !== 'Dense' && c !== undefined) diags.warn('TF_TORCH_FLATTEN_IGNORED', `flatten channels given for '${layer.name}', which is a ${kind}, not a Dense`, { tensor: layer.name });
    const byModule = new Map<string, OutParam[]>();
    for (const p of params) {
      const list = byModule.get(p.module) ?? [];
      list.push(p);
      byModule.set(p.module, list);
    }
    for (const [module, ps] of byModule) units.push({ layer, kind, module, params: ps });
  }
  return units;
}

/** Short description of a unit's parameters for messages: `weight [5,5], bias [5]`. */
export function describeParams(ps: ReadonlyArray<{ param: string; shape: number[] }>): string {
  return ps.map((p) => `${p.param} [${p.shape.join(',')}]`).join(', ');
}
