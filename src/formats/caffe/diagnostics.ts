/**
 * Reader findings travel with the NetParameter they describe, so `caffeWeights(net)` and the
 * converter can report what the reader saw without every API growing a diagnostics parameter.
 * A WeakMap keeps the generated message type untouched and lets the findings die with the net.
 */
import type { Diagnostic } from '../../core/errors.js';
import type { NetParameter } from './gen/caffe_pb.js';

const byNet = new WeakMap<NetParameter, { path?: string; diagnostics: Diagnostic[] }>();

export function attachReadInfo(net: NetParameter, info: { path?: string; diagnostics: Diagnostic[] }): void {
  byNet.set(net, info);
}

/** Diagnostics recorded when `net` was read (empty for nets built in memory). */
export function readDiagnostics(net: NetParameter): Diagnostic[] {
  return byNet.get(net)?.diagnostics ?? [];
}

/** The file `net` was read from, if any. */
export function readPath(net: NetParameter): string | undefined {
  return byNet.get(net)?.path;
}
