/** Runs a torch snippet with JSON in/out (the oracle for losses and optimiser steps). */
import { runPython } from '../kernels/helpers.js';

export function torchJson<T>(script: string, input: unknown): T {
  const prelude = 'import sys, json\nimport torch\nimport torch.nn.functional as F\ninp = json.loads(sys.stdin.read())\n';
  const out = runPython(prelude + script, [], new TextEncoder().encode(JSON.stringify(input)));
  return JSON.parse(new TextDecoder().decode(out)) as T;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
