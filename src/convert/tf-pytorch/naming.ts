/**
 * Automatic naming without a template: each Keras layer becomes a torch module named after the layer
 * (`test_in.weight`, `bn1.running_var`), which is what an `nn.Module` with attributes named like the
 * Keras layers expects. Names torch cannot use as attributes are made into identifiers.
 */
import type { OutParam } from './transforms.js';
import type { Unit } from './plan.js';

/** A Keras layer name as a torch attribute name. */
export function moduleName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, '_');
  return s === '' || /^[0-9]/.test(s) ? `_${s}` : s;
}

export function autoNames(units: Unit[]): Map<OutParam, string> {
  const names = new Map<OutParam, string>();
  const taken = new Map<string, string>(); // module name → layer key that owns it
  for (const u of units) {
    if (u.layer.name === '' && u.layer.key === '') {
      // Root-level variables: the torch key is the variable's own name.
      for (const p of u.params) names.set(p, [u.module, p.param].filter((s) => s !== '').join('.'));
      continue;
    }
    let base = moduleName(u.layer.name);
    // Two layers with one name (nested models reuse names): fall back to the object path.
    const owner = taken.get(base);
    if (owner !== undefined && owner !== u.layer.key) base = moduleName(u.layer.key.replace(/\//g, '_'));
    for (let k = 1; taken.has(base) && taken.get(base) !== u.layer.key; k++) base = `${moduleName(u.layer.name)}_${k}`;
    taken.set(base, u.layer.key);
    for (const p of u.params) names.set(p, [base, u.module, p.param].filter((s) => s !== '').join('.'));
  }
  return names;
}
