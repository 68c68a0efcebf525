import { WEIGHT_OPS } from '../compress/quantize/registry.js';

/**
 * `--exclude a,b,Conv`: an item equal to a registered weight op type is an op type, anything else a
 * weight or node name. Shared by the compression verbs so they read the flag the same way.
 */
export function parseExclude(s: string): { names: string[]; opTypes: string[] } {
  const names: string[] = [];
  const opTypes: string[] = [];
  for (const item of s.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    if (WEIGHT_OPS.has(item)) opTypes.push(item);
    else names.push(item);
  }
  return { names, opTypes };
}
