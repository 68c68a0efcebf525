/**
 * ONNX op type → handler. A handler reads its node through the context, emits TF raw ops with every
 * attr TF requires, and records each output's dtype and static shape (and value, when it folds).
 * Families register themselves from handlers/*.ts; lookups are by ai.onnx op type, or by
 * `domain::op` for other domains (e.g. `com.microsoft::MatMulNBits`, which our int4 pass writes).
 */
import type { Cx } from './context.js';

export type Handler = (cx: Cx) => void;

const handlers = new Map<string, Handler>();

export function register(ops: string | string[], h: Handler): void {
  for (const op of Array.isArray(ops) ? ops : [ops]) handlers.set(op, h);
}

export function handlerFor(op: string): Handler | undefined {
  return handlers.get(op);
}

export function supportedOps(): string[] {
  return [...handlers.keys()].sort();
}
