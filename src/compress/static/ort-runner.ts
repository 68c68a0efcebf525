/**
 * A calibration runner on onnxruntime-node (optional dependency, loaded lazily): the model is
 * re-encoded with the requested activations added as graph outputs, and one session serves every
 * batch. The engine (src/engine) is the runtime-neutral runner; this one is for Node when ORT is
 * installed (faster on big models) and is what the engine is checked against.
 */
import { create } from '@bufbuild/protobuf';
import { TypeProtoSchema, TypeProto_TensorSchema, ValueInfoProtoSchema } from 'onnx-buf';
import { dtypeInfo } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { decodeOnnx, type OnnxModel } from '../../formats/onnx/read.js';
import { encodeOnnx } from '../../formats/onnx/write.js';
import { loadOrt } from '../../eval/ort.js';
import type { Value } from '../../engine/types.js';
import type { RunFn } from './calibrate.js';

interface OrtValue { type: string; dims: readonly number[]; data: unknown }
interface Session {
  run(feeds: Record<string, unknown>): Promise<Record<string, OrtValue>>;
  release(): Promise<void>;
}

export interface OrtRunner {
  run: RunFn;
  release(): Promise<void>;
}

/** A runner returning float32 activations `names` (fixed at creation: they become graph outputs). */
export async function ortRunner(model: OnnxModel, names: readonly string[]): Promise<OrtRunner> {
  const ort = (await loadOrt()) as unknown as {
    Tensor: new (type: string, data: Float32Array, dims: readonly number[]) => unknown;
    InferenceSession: { create(bytes: Uint8Array, o: Record<string, unknown>): Promise<Session> };
  };
  // A copy: the caller's model is quantized afterwards and must not carry the extra outputs.
  const copy = decodeOnnx(await encodeOnnx(model), model.path !== undefined ? { path: model.path } : {});
  const g = copy.proto.graph!;
  const have = new Set(g.output.map((o) => o.name));
  for (const n of names) {
    if (have.has(n)) continue;
    g.output.push(create(ValueInfoProtoSchema, {
      name: n,
      type: create(TypeProtoSchema, { value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: dtypeInfo('float32').onnx }) } }),
    }));
  }
  let session: Session;
  try {
    session = await ort.InferenceSession.create(await encodeOnnx(copy), { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 4 });
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `onnxruntime cannot load the model: ${String((e as Error).message).split('\n')[0]}`, { cause: e, ...(model.path !== undefined ? { path: model.path } : {}) });
  }
  return {
    async run(feeds, wanted) {
      const f: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(feeds)) {
        if (v.dtype !== 'float32') throw new ModelsmithError(ErrorCodes.DTYPE, `feed is ${v.dtype}; the ORT runner feeds float32`, { tensor: k });
        f[k] = new ort.Tensor('float32', v.data as Float32Array, v.dims);
      }
      const out = await session.run(f);
      const res: Record<string, Value> = {};
      for (const n of wanted) {
        const o = out[n];
        if (!o || o.type !== 'float32') throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `onnxruntime returned no float32 value for '${n}'`, { tensor: n });
        res[n] = { dtype: 'float32', dims: [...o.dims], data: o.data as Float32Array };
      }
      return res;
    },
    release: () => session.release(),
  };
}
