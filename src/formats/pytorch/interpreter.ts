/**
 * What GLOBAL / REDUCE / NEWOBJ / BUILD mean for us. Nothing is ever imported or called: an
 * allow-list of torch and builtin names is *interpreted* (tensor rebuilds become TensorRefs,
 * OrderedDict becomes a PyDict, ...) and every other name becomes an inert placeholder whose
 * name is recorded in `unknownGlobals`.
 */
import { dtypeFromKey, dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { Interpreter } from './pickle.js';
import {
  isPyInt, PyBytes, PyComplex, PyDict, PyGlobal, PyObject, PySet, PyTuple, TensorRef, TorchDtype,
  type Quantization, type StorageRef,
} from './pyobjects.js';

const FORMAT = 'pytorch';

/** Python 2 module names as Python 3's unpickler renames them (NAME_MAPPING/IMPORT_MAPPING, the parts torch files use). */
const MODULE_ALIASES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

/** Storage classes whose element type is not a plain dtype-table lookup by class name. */
const STORAGE_ALIASES: Record<string, { torch: string; quant?: string }> = {
  QInt8Storage: { torch: 'int8', quant: 'qint8' },
  QUInt8Storage: { torch: 'uint8', quant: 'quint8' },
  QInt32Storage: { torch: 'int32', quant: 'qint32' },
  UInt16Storage: { torch: 'uint16' },
  UInt32Storage: { torch: 'uint32' },
  UInt64Storage: { torch: 'uint64' },
};

const STORAGE_MODULES = new Set(['torch', 'torch.storage', 'torch.cuda', 'torch.cuda.storage']);

/** Globals that are safe and understood (interpreted below, or plain markers such as dtypes). */
const ALLOWED = new Set([
  'collections.OrderedDict', 'collections.Counter', 'builtins.set', 'builtins.frozenset', 'builtins.slice',
  'builtins.complex', 'builtins.bytearray', 'builtins.bytes', 'builtins.dict', 'builtins.list', 'builtins.tuple', 'builtins.object',
  '_codecs.encode', 'copyreg._reconstructor',
  'torch.Size', 'torch.device', 'torch.serialization._get_layout', 'torch.Tensor', 'torch.nn.parameter.Parameter',
  'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state', 'torch._utils._rebuild_qtensor',
  'torch._tensor._rebuild_from_type_v2',
  'torch.per_tensor_affine', 'torch.per_channel_affine', 'torch.per_channel_affine_float_qparams',
  'torch.per_tensor_symmetric', 'torch.per_channel_symmetric', 'torch.strided', 'torch.sparse_coo',
]);

export interface InterpreterHost {
  path?: string;
  /** Map a persistent id to a StorageRef (or whatever the container's ids mean). */
  persistentLoad(pid: unknown, offset: number): unknown;
}

export interface TorchInterpreter extends Interpreter {
  /** Sorted-later set of non-allow-listed globals met. */
  readonly unknownGlobals: Set<string>;
}

export interface StorageType {
  typeName: string;
  dtype: DType | undefined;
  elemSize: number;
  quant?: string;
}

/** Element type of a `torch.<X>Storage` class reference, or undefined when it is not one. */
export function storageType(g: unknown): StorageType | undefined {
  if (!(g instanceof PyGlobal) || !STORAGE_MODULES.has(g.module) || !g.name.endsWith('Storage')) return undefined;
  const typeName = g.qualname;
  if (g.name === 'UntypedStorage' || g.name === '_UntypedStorage') return { typeName, dtype: undefined, elemSize: 1 };
  const alias = STORAGE_ALIASES[g.name];
  const info = alias ? dtypeFromKey('torch', alias.torch) : dtypeFromKey('torchStorage', g.name);
  if (!info || info.bits < 8) return undefined;
  return { typeName, dtype: info.name, elemSize: info.bits / 8, ...(alias?.quant ? { quant: alias.quant } : {}) };
}

export function createInterpreter(host: InterpreterHost): TorchInterpreter {
  const unknownGlobals = new Set<string>();
  const fail = (msg: string, offset: number, code: typeof ErrorCodes[keyof typeof ErrorCodes] = ErrorCodes.MALFORMED): never => {
    throw new ModelsmithError(code, msg, { format: FORMAT, path: host.path, offset });
  };

  const placeholder = (callable: unknown, args: unknown[]): PyObject => {
    const cls = callable instanceof PyGlobal ? callable.qualname : callable instanceof PyObject ? callable.cls : '<non-callable>';
    return new PyObject(cls, args);
  };

  let wrapDepth = 0;

  function call(fn: unknown, args: unknown[], offset: number): unknown {
    if (!(fn instanceof PyGlobal) || !ALLOWED.has(fn.qualname)) return placeholder(fn, args);
    switch (fn.qualname) {
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2':
        return rebuildTensor(args, undefined, undefined, offset);
      case 'torch._utils._rebuild_tensor_v3':
        return rebuildTensor(args, args[6], undefined, offset);
      case 'torch._utils._rebuild_qtensor':
        return rebuildTensor(args, undefined, quantization(args[4], offset), offset);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
      case 'torch.nn.parameter.Parameter':
        return args[0] instanceof TensorRef ? args[0] : placeholder(fn, args);
      case 'torch._tensor._rebuild_from_type_v2': {
        // (func, new_type, args, state): the tensor comes from func(*args); the subclass type is dropped.
        const inner = args[2];
        // The wrapped function could itself be _rebuild_from_type_v2: bound the recursion.
        if (!(inner instanceof PyTuple) || wrapDepth >= 8) return placeholder(fn, args);
        wrapDepth++;
        try {
          return call(args[0], inner.items, offset);
        } finally {
          wrapDepth--;
        }
      }
      case 'collections.OrderedDict':
      case 'collections.Counter':
      case 'builtins.dict':
        return dictFrom(fn.qualname, args[0]);
      case 'builtins.set':
      case 'builtins.frozenset':
        return new PySet(Array.isArray(args[0]) ? [...args[0]] : args[0] instanceof PyTuple ? [...args[0].items] : [], fn.name === 'frozenset');
      case 'builtins.list':
        return Array.isArray(args[0]) ? [...args[0]] : args[0] instanceof PyTuple ? [...args[0].items] : [];
      case 'builtins.tuple':
      case 'torch.Size':
        return new PyTuple(Array.isArray(args[0]) ? [...args[0]] : args[0] instanceof PyTuple ? [...args[0].items] : []);
      case 'builtins.complex':
        return new PyComplex(typeof args[0] === 'number' ? args[0] : 0, typeof args[1] === 'number' ? args[1] : 0);
      case 'builtins.bytes': // protocol < 3 spells b'' as bytes()
      case 'builtins.bytearray':
        return args[0] instanceof PyBytes ? args[0] : new PyBytes(new Uint8Array(0));
      case '_codecs.encode':
        return typeof args[0] === 'string' ? new PyBytes(encodeString(args[0], args[1])) : placeholder(fn, args);
      case 'copyreg._reconstructor':
        // _reconstructor(cls, base, state): an instance of cls; never constructed, only recorded.
        return placeholder(args[0], args[2] === null || args[2] === undefined ? [] : [args[2]]);
      default:
        return placeholder(fn, args);
    }
  }

  function rebuildTensor(args: unknown[], dtypeArg: unknown, quant: Quantization | undefined, offset: number): unknown {
    const [storage, off, size, stride] = args;
    if (!isStorage(storage)) {
      if (storage instanceof PyObject && storage.cls === 'torch.storage._load_from_bytes') {
        return fail('tensor whose storage was pickled with plain pickle (torch.storage._load_from_bytes) is not supported', offset, ErrorCodes.UNSUPPORTED);
      }
      return fail('tensor rebuild without a storage argument', offset);
    }
    let dtype: DType | undefined = storage.dtype;
    if (dtypeArg !== undefined) {
      if (!(dtypeArg instanceof TorchDtype)) return fail('_rebuild_tensor_v3 without a dtype argument', offset);
      if (!dtypeArg.dtype) return fail(`torch dtype ${dtypeArg.torchName} is not supported`, offset, ErrorCodes.DTYPE);
      dtype = dtypeArg.dtype;
    }
    if (!dtype) return fail(`untyped storage ${storage.key} used without a dtype`, offset);
    const shape = intTuple(size, 'size', offset);
    const strides = intTuple(stride, 'stride', offset);
    if (strides.length !== shape.length) return fail(`size has ${shape.length} dims but stride has ${strides.length}`, offset);
    const o = toSafeInt(off, 'storage_offset', offset);
    if (quant) quant.qdtype = storage.quant ?? dtype;
    return new TensorRef(storage, o, shape, strides, dtype, quant);
  }

  function quantization(q: unknown, offset: number): Quantization {
    if (!(q instanceof PyTuple) || !(q.items[0] instanceof PyGlobal)) return fail('_rebuild_qtensor without quantizer parameters', offset);
    const scheme = q.items[0].name;
    if (scheme === 'per_tensor_affine' && q.items.length >= 3) {
      const scale = q.items[1];
      const zp = q.items[2];
      if (typeof scale !== 'number' || !isPyInt(zp)) return fail('per-tensor quantizer needs (scale, zero_point)', offset);
      return { qdtype: '', qscheme: scheme, scale, zeroPoint: Number(zp) };
    }
    if ((scheme === 'per_channel_affine' || scheme === 'per_channel_affine_float_qparams') && q.items.length >= 4) {
      const [, scales, zps, axis] = q.items;
      if (!(scales instanceof TensorRef) || !(zps instanceof TensorRef) || !isPyInt(axis)) return fail('per-channel quantizer needs (scales, zero_points, axis)', offset);
      return { qdtype: '', qscheme: scheme, scales, zeroPoints: zps, axis: Number(axis) };
    }
    return fail(`quantization scheme ${scheme} is not supported`, offset, ErrorCodes.UNSUPPORTED);
  }

  function toSafeInt(v: unknown, what: string, offset: number): number {
    if (!isPyInt(v)) return fail(`${what} is not an integer`, offset);
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) return fail(`${what} ${String(v)} out of range`, offset, ErrorCodes.OUT_OF_RANGE);
    return n;
  }

  function intTuple(v: unknown, what: string, offset: number): number[] {
    const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
    if (!items) return fail(`tensor ${what} is not a tuple`, offset);
    if (items.length > 64) return fail(`tensor ${what} has ${items.length} dims (cap 64)`, offset, ErrorCodes.LIMIT);
    return items.map((x) => toSafeInt(x, what, offset));
  }

  const interp: TorchInterpreter = {
    unknownGlobals,
    global(module, name) {
      const mod = MODULE_ALIASES[module] ?? module;
      const g = new PyGlobal(mod, name);
      if (mod === 'torch') {
        const info = dtypeFromKey('torch', name);
        if (info) return new TorchDtype(name, info.name);
        if (TORCH_ONLY_DTYPES.has(name)) return new TorchDtype(name, undefined);
      }
      if (!ALLOWED.has(g.qualname) && !storageType(g)) unknownGlobals.add(g.qualname);
      return g;
    },
    call,
    newobj(cls, args, offset) {
      return call(cls, args, offset);
    },
    build(obj, state) {
      if (obj instanceof PyObject) {
        if (obj.state instanceof PyDict && state instanceof PyDict) {
          for (const [k, v] of state.map) obj.state.map.set(k, v);
        } else {
          obj.state = state;
        }
      } else if (obj instanceof PyDict) {
        obj.attrs = state;
      }
      // Tensors, Parameters and plain values: their BUILD state (hooks, attributes) does not change the data.
    },
    persistentLoad: (pid, offset) => host.persistentLoad(pid, offset),
  };
  return interp;
}

/** torch dtype names our dtype table has no entry for (recognised so they are not reported as unknown globals). */
const TORCH_ONLY_DTYPES = new Set(['qint8', 'quint8', 'qint32', 'quint4x2', 'quint2x4', 'complex32', 'chalf', 'bits8', 'bits16', 'bits1x8', 'bits2x4', 'bits4x2', 'float4_e2m1fn_x2']);

export function isStorage(v: unknown): v is StorageRef {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'storage';
}

function dictFrom(cls: string, init: unknown): PyDict {
  const d = new PyDict(cls);
  const pairs = Array.isArray(init) ? init : init instanceof PyTuple ? init.items : init instanceof PyDict ? [...init.map].map((e) => new PyTuple(e)) : [];
  for (const p of pairs) {
    const kv = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : undefined;
    if (kv && kv.length === 2) d.map.set(kv[0], kv[1]);
  }
  return d;
}

/** `_codecs.encode(str, 'latin1')` is how protocol 2 spells bytes. */
function encodeString(s: string, encoding: unknown): Uint8Array {
  if (typeof encoding === 'string' && /^(latin-?1|iso-?8859-?1)$/i.test(encoding)) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
    return out;
  }
  return new TextEncoder().encode(s);
}

/** The element size of a dtype in bytes (all dtypes a torch tensor can rebuild to are whole bytes). */
export function elemSize(dtype: DType): number {
  return dtypeInfo(dtype).bits / 8;
}
