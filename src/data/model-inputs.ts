/**
 * The declared inputs of an ONNX model as data-set declarations (graph inputs that are not
 * initializers), so a data set can name, split and reshape its tensors for that model.
 */
import type { ModelProto } from 'onnx-buf';
import type { InputDecl } from './types.js';

export function modelInputs(proto: ModelProto): InputDecl[] {
  const g = proto.graph;
  if (!g) return [];
  const inits = new Set(g.initializer.map((t) => t.name));
  return g.input.filter((v) => !inits.has(v.name)).map((v) => {
    const decl: InputDecl = { name: v.name };
    const tt = v.type?.value.case === 'tensorType' ? v.type.value.value : undefined;
    if (tt?.shape) {
      decl.dims = tt.shape.dim.map((d) =>
        d.value.case === 'dimValue' && d.value.value > 0n ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : undefined);
    }
    return decl;
  });
}
