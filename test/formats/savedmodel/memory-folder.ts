/** A SavedModel folder in memory for tests: the writer's sink factory and the reader's resolver over one map. */
import { ModelsmithError } from '../../../src/core/errors.js';
import { MemorySink, MemorySource, type SiblingResolver } from '../../../src/io/source.js';

export function memoryFolder(): { files: Map<string, MemorySink>; out: (rel: string) => Promise<MemorySink>; dir: SiblingResolver } {
  const files = new Map<string, MemorySink>();
  const out = async (rel: string): Promise<MemorySink> => {
    const s = new MemorySink();
    files.set(rel, s);
    return s;
  };
  const dir: SiblingResolver = async (rel) => {
    const s = files.get(rel);
    if (!s) throw new ModelsmithError('E_EXTERNAL_DATA', `missing ${rel}`);
    return new MemorySource(s.bytes(), rel);
  };
  return { files, out, dir };
}
