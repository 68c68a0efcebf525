/**
 * The pickle VM against CPython's own pickler: the same object pickled with protocols 0–5 must decode
 * to the same value (ints past 2^53, floats, unicode, bytes, sets, shared references, 2,000-item
 * batches, Python-2 module names). Python is the oracle, run once for all protocols.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createInterpreter } from '../../../src/formats/pytorch/interpreter.js';
import { unpickle, PickleNeedMore } from '../../../src/formats/pytorch/pickle.js';
import { PyBytes, PyComplex, PyDict, PyObject, PySet, PyTuple } from '../../../src/formats/pytorch/pyobjects.js';

const SCRIPT = String.raw`
import pickle, json, sys
obj = {
  'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, 2**53 - 1, 2**53 + 1, 2**63, -2**70, 10**30],
  'floats': [0.0, -0.0, 1.5, -2.25e-300, 1e308, 3.141592653589793],
  'strs': ['', 'a', 'héllo wörld', '日本語', 'emoji \U0001F600', 'line\nbreak', 'back\\slash', "quote'\""],
  'bytes': [b'', b'\x00\x01\xff', bytes(range(256))],
  'tuple': (1, (2, (3,)), ()),
  'set': {1, 2, 3},
  'frozen': frozenset({'x'}),
  'none': None, 'bools': [True, False],
  'big_list': list(range(2000)),
  'nested': {'a': {'b': {'c': [1, [2, [3]]]}}},
  'complex': 1.5 - 2j,
  7: 'int key',
}
shared = [1, 2]
obj['shared'] = [shared, shared]
def canon(v):
  if isinstance(v, bool) or v is None: return v
  if isinstance(v, int): return v if abs(v) <= 2**53 - 1 else {'bigint': str(v)}
  if isinstance(v, float): return v
  if isinstance(v, str): return v
  if isinstance(v, (bytes, bytearray)): return {'bytes': v.hex()}
  if isinstance(v, tuple): return {'tuple': [canon(x) for x in v]}
  if isinstance(v, list): return [canon(x) for x in v]
  if isinstance(v, (set, frozenset)): return {'set': sorted(canon(x) for x in v)}
  if isinstance(v, complex): return {'complex': [v.real, v.imag]}
  if isinstance(v, dict): return {str(k): canon(x) for k, x in v.items()}
  raise TypeError(type(v))
out = {'expected': canon(obj), 'pickles': {p: pickle.dumps(obj, protocol=p).hex() for p in range(6)}}
json.dump(out, sys.stdout)
`;

function canon(v: unknown): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return { bigint: v.toString() };
  if (v instanceof PyBytes) return { bytes: Buffer.from(v.data).toString('hex') };
  if (v instanceof PyTuple) return { tuple: v.items.map(canon) };
  if (Array.isArray(v)) return v.map(canon);
  if (v instanceof PySet) return { set: v.items.map(canon).sort() };
  if (v instanceof PyComplex) return { complex: [v.re, v.im] };
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), canon(x)]));
  if (v instanceof PyObject) return { placeholder: v.cls };
  throw new Error(`unexpected ${String(v)}`);
}

const interp = () => createInterpreter({ path: 'x.pkl', persistentLoad: () => { throw new Error('no persistent ids here'); } });

describe('pickle VM vs CPython', () => {
  const out = JSON.parse(execFileSync('/usr/bin/python3', ['-c', SCRIPT], { encoding: 'utf8' })) as { expected: unknown; pickles: Record<string, string> };

  for (let p = 0; p <= 5; p++) {
    it(`protocol ${p}`, () => {
      const bytes = new Uint8Array(Buffer.from(out.pickles[p]!, 'hex'));
      const i = interp();
      const r = unpickle(bytes, { interpreter: i, path: 'x.pkl' });
      expect(r.end).toBe(bytes.length);
      expect(canon(r.value)).toEqual(out.expected);
      // Only builtins/codecs names appear, and they are all allow-listed (incl. Python-2 '__builtin__' for protocols 0-1).
      expect([...i.unknownGlobals]).toEqual([]);
      // Shared references stay shared (memo).
      const shared = (r.value as PyDict).map.get('shared') as unknown[];
      expect(shared[0]).toBe(shared[1]);
    });
  }

  it('a prefix that ends mid-stream asks for more bytes when told it is a prefix', () => {
    const bytes = new Uint8Array(Buffer.from(out.pickles[2]!, 'hex'));
    expect(() => unpickle(bytes.subarray(0, 100), { interpreter: interp(), isPrefix: true })).toThrow(PickleNeedMore);
    expect(() => unpickle(bytes.subarray(0, 100), { interpreter: interp() })).toThrow(/E_TRUNCATED/);
  });

  it('error offsets point into the file (baseOffset)', () => {
    try {
      unpickle(new Uint8Array([0x80, 0x02, 0xff]), { interpreter: interp(), baseOffset: 1000, path: 'f.pt' });
      expect.unreachable();
    } catch (e) {
      expect((e as { offset: number }).offset).toBe(1002);
      expect((e as Error).message).toContain('f.pt');
    }
  });
});
