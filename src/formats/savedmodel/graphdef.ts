/**
 * Plain (frozen) GraphDef files: a bare `GraphDef` message with weights in Const nodes, no
 * SavedModel wrapper and no checkpoint.
 */
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';
import { GraphDefSchema, type GraphDef } from './gen/tensorflow/graph_pb.js';
import { decodeChecked, MAX_PROTO_BYTES } from './proto.js';

export interface GraphDefFile {
  format: 'tf-graphdef';
  path: string;
  graph: GraphDef;
  diagnostics: Diagnostic[];
}

export async function readGraphDef(src: ByteSource, opts: { path?: string } = {}): Promise<GraphDefFile> {
  const path = opts.path ?? src.name;
  if (src.size > MAX_PROTO_BYTES) throw new ModelsmithError(ErrorCodes.LIMIT, `GraphDef of ${src.size} bytes exceeds the 2 GiB protobuf limit`, { format: 'tf-graphdef', path });
  const graph = decodeChecked(GraphDefSchema, await src.read(0, src.size), { format: 'tf-graphdef', path, what: 'GraphDef' });
  const diagnostics: Diagnostic[] = [];
  if (graph.node.length === 0 && !graph.library) {
    // Any protobuf whose fields do not collide decodes as an empty GraphDef: say so rather than pretend.
    diagnostics.push({ level: 'warning', code: 'TF_GRAPHDEF_EMPTY', message: 'no nodes and no functions: probably not a GraphDef' });
  }
  return { format: 'tf-graphdef', path, graph, diagnostics };
}
