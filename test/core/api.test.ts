import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../../src');

/** Every module reachable from `entry` through relative imports, with its bare imports. */
function importGraph(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);
    seen.set(file, specs.filter((s) => !s.startsWith('.')));
    for (const s of specs.filter((x) => x.startsWith('.'))) visit(resolve(dirname(file), s.replace(/\.js$/, '.ts')));
  };
  visit(entry);
  return seen;
}

describe('public API', () => {
  it('the platform-neutral entry reaches no node:* module and no runtime-specific global', () => {
    const graph = importGraph(join(SRC, 'index.ts'));
    expect(graph.size).toBeGreaterThan(15);
    for (const [file, bare] of graph) {
      expect(bare.filter((s) => s.startsWith('node:')), file).toEqual([]);
      const text = readFileSync(file, 'utf8');
      expect(/\b(process|Buffer|Deno)\./.test(text), `${file} uses a runtime global`).toBe(false);
    }
  });

  it('no eval or new Function anywhere in src (workerd and strict CSP forbid them)', () => {
    const graph = importGraph(join(SRC, 'node.ts'));
    for (const file of graph.keys()) {
      const text = readFileSync(file, 'utf8');
      // The global eval (bare or through globalThis/window/self); a method named eval (data.eval()) is not it.
      expect(/(?<![\w$.])eval\(|\b(?:globalThis|window|self)\.eval\(|new Function\(/.test(text), file).toBe(false);
    }
  });

  it('the built entry exports the codec, kernels and errors', async () => {
    const api = await import('../../dist/index.js');
    for (const name of ['readOnnx', 'writeOnnx', 'summarizeOnnx', 'initKernels', 'quantizeLinear', 'castF32ToF16', 'magnitudePrune', 'ModelsmithError', 'DTYPES']) {
      expect(api, name).toHaveProperty(name);
    }
  });
});
