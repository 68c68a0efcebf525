/**
 * Op handler registry: ONNX op type (default domain) → handler. Families register from their own
 * module (./ops/*.ts); ./ops/index.ts imports them all, so importing the engine fills the table.
 */
import type { OpDef } from './types.js';

const ops = new Map<string, OpDef>();

export function registerOp(opType: string, def: OpDef): void {
  if (ops.has(opType)) throw new Error(`engine: op ${opType} registered twice`);
  ops.set(opType, def);
}

export function getOp(opType: string): OpDef | undefined {
  return ops.get(opType);
}

export function engineOps(): string[] {
  return [...ops.keys()].sort();
}
