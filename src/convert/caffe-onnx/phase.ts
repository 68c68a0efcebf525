/**
 * Caffe's NetStateRule filtering (net.cpp FilterNet / StateMeetsRule): a layer with `include` rules
 * is kept when one matches; a layer with `exclude` rules is dropped when one matches. The state is
 * the net's `state` (default phase TEST, level 0, no stages), which is what a deploy run uses.
 */
import { isFieldSet } from '@bufbuild/protobuf';
import { NetStateRuleSchema, Phase, type LayerParameter, type NetParameter, type NetStateRule } from '../../formats/caffe/gen/caffe_pb.js';

interface State { phase: Phase; level: number; stages: Set<string> }

function meets(state: State, r: NetStateRule): boolean {
  if (isFieldSet(r, NetStateRuleSchema.field.phase) && r.phase !== state.phase) return false;
  if (isFieldSet(r, NetStateRuleSchema.field.minLevel) && state.level < r.minLevel) return false;
  if (isFieldSet(r, NetStateRuleSchema.field.maxLevel) && state.level > r.maxLevel) return false;
  if (r.stage.some((s) => !state.stages.has(s))) return false;
  if (r.notStage.some((s) => state.stages.has(s))) return false;
  return true;
}

export function filterLayers(net: NetParameter, phase: Phase = net.state?.phase ?? Phase.TEST): { kept: LayerParameter[]; dropped: LayerParameter[] } {
  const state: State = { phase, level: net.state?.level ?? 0, stages: new Set(net.state?.stage ?? []) };
  const kept: LayerParameter[] = [];
  const dropped: LayerParameter[] = [];
  for (const l of net.layer) {
    const keep = l.include.length > 0 ? l.include.some((r) => meets(state, r)) : !l.exclude.some((r) => meets(state, r));
    (keep ? kept : dropped).push(l);
  }
  return { kept, dropped };
}
