/**
 * Caffe text files: deploy/train nets (NetParameter) and solvers (SolverParameter), parsed with the
 * generic text-format parser and upgraded to the current layer form.
 */
import type { DescEnum } from '@bufbuild/protobuf';
import type { Diagnostic } from '../../core/errors.js';
import { attachReadInfo } from './diagnostics.js';
import { NetParameterSchema, SolverParameterSchema, V1LayerParameter_LayerTypeSchema, type NetParameter, type SolverParameter } from './gen/caffe_pb.js';
import { parseTextFormat } from './text-format.js';
import { upgradeNet, V1_TYPE_NAMES } from './upgrade.js';

export interface CaffeTextOptions {
  /** File name for messages. */
  path?: string;
  /** Receives non-fatal findings (unknown fields, upgrades). They are also kept with the net. */
  diagnostics?: Diagnostic[];
}

const V1_BY_NEW_NAME = new Map<string, number>(Object.entries(V1_TYPE_NAMES).map(([k, v]) => [v, Number(k)]));

/** Some V1 files write current string types inside `layers {}` (`type: "Convolution"`). */
function enumAlias(e: DescEnum, text: string): number | undefined {
  if (e.typeName !== V1LayerParameter_LayerTypeSchema.typeName) return undefined;
  return V1_BY_NEW_NAME.get(text);
}

/** Parse a .prototxt net and upgrade it (V0/V1 layers, net-level inputs) to the current form. */
export function parseCaffePrototxt(text: string, opts: CaffeTextOptions = {}): NetParameter {
  const { message, diagnostics } = parseTextFormat(NetParameterSchema, text, { format: 'caffe-prototxt', enumAlias, ...(opts.path !== undefined ? { path: opts.path } : {}) });
  upgradeNet(message, diagnostics);
  opts.diagnostics?.push(...diagnostics);
  attachReadInfo(message, { ...(opts.path !== undefined ? { path: opts.path } : {}), diagnostics });
  return message;
}

/** Parse a *_solver.prototxt. Inline nets (`net_param`, …) are upgraded too. */
export function parseCaffeSolver(text: string, opts: CaffeTextOptions = {}): SolverParameter {
  const { message, diagnostics } = parseTextFormat(SolverParameterSchema, text, { format: 'caffe-prototxt', enumAlias, ...(opts.path !== undefined ? { path: opts.path } : {}) });
  for (const n of [message.netParam, message.trainNetParam, ...message.testNetParam]) if (n) upgradeNet(n, diagnostics);
  opts.diagnostics?.push(...diagnostics);
  return message;
}
