/**
 * Valid but rare encodings torch 1.13 does not produce for the corpus: _rebuild_tensor_v3 over an
 * UntypedStorage (torch ≥ 2.1 dtypes), _rebuild_from_type_v2 wrappers, legacy view storages,
 * nested-key selection, and the tar format refusal.
 */
import { describe, expect, it } from 'vitest';
import { MemorySource } from '../../../src/io/source.js';
import { readPytorch } from '../../../src/formats/pytorch/read.js';
import { cat, f32Bytes, legacyStream, P, stateDictPickle, torchZip } from './read-helpers.js';

const read = (bytes: Uint8Array, key?: string) => readPytorch(new MemorySource(bytes, 'edge.pt'), { path: 'edge.pt', ...(key !== undefined ? { key } : {}) });

/** _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype) args for one tensor. */
function v3Tensor(key: string, bytes: number, dtype: string, shape: number[], module = 'torch'): number[][] {
  return [
    P.global('torch._utils', '_rebuild_tensor_v3'), P.mark(),
    P.mark(), P.str('storage'), P.global(module, 'UntypedStorage'), P.str(key), P.str('cuda:0'), P.int(bytes), P.tuple(), P.binpersid(),
    P.int(0), P.mark(), ...shape.map((d) => P.int(d)), P.tuple(), P.mark(), ...(shape.length ? [P.int(1)] : []), P.tuple(),
    P.newfalse(), P.global('collections', 'OrderedDict'), P.emptyTuple(), P.reduce(), P.global('torch', dtype), P.tuple(), P.reduce(),
  ];
}

describe('rare but valid encodings', () => {
  it('_rebuild_tensor_v3 over UntypedStorage (torch and torch.storage modules)', async () => {
    const u16 = new Uint8Array(new Uint16Array([1, 65535, 300]).buffer);
    const pkl = cat(P.proto(2), P.emptyDict(), P.mark(),
      P.str('u16'), ...v3Tensor('0', 6, 'uint16', [3]),
      P.str('f8'), ...v3Tensor('1', 2, 'float8_e4m3fn', [2], 'torch.storage'),
      P.setitems(), P.stop());
    const pt = await read(torchZip('v3', pkl, { 0: u16, 1: new Uint8Array([0x38, 0xc0]) }));
    expect(pt.unknownGlobals).toEqual([]);
    const [a, b] = pt.tensors;
    expect(a!.dtype).toBe('uint16');
    expect([...new Uint16Array((await a!.load()).slice().buffer)]).toEqual([1, 65535, 300]);
    expect(b!.dtype).toBe('float8e4m3fn');
    expect([...(await b!.load())]).toEqual([0x38, 0xc0]);
  });

  it('a dtype our table lacks → E_DTYPE', async () => {
    const pkl = cat(P.proto(2), P.emptyDict(), P.mark(), P.str('c32'), ...v3Tensor('0', 4, 'complex32', [1]), P.setitems(), P.stop());
    await expect(read(torchZip('c', pkl, { 0: new Uint8Array(4) }))).rejects.toMatchObject({ code: 'E_DTYPE' });
  });

  it('_rebuild_from_type_v2 and _rebuild_parameter wrappers yield the inner tensor', async () => {
    const inner = stateDictPickle([{ name: 'w', key: '0', numel: 2, shape: [2], stride: [1] }]);
    // Take the "_rebuild_tensor_v2 (...) R" part of the generated pickle: after the key string, before SETITEMS.
    const start = 2 + 1 + 1 + 1 + 4 + 1; // PROTO, EMPTY_DICT, MARK, BINUNICODE 'w'
    const tensorOps = inner.subarray(start, inner.length - 2);
    const wrapped = cat(P.proto(2), P.emptyDict(), P.mark(),
      P.str('sub'), P.global('torch._tensor', '_rebuild_from_type_v2'), P.mark(),
      P.global('torch._utils', '_rebuild_tensor_v2'), P.global('my.module', 'MyTensor'),
      // args tuple of the inner call, state dict
      tensorOps.subarray(P.global('torch._utils', '_rebuild_tensor_v2').length, tensorOps.length - 1), P.emptyDict(), P.tuple(), P.reduce(),
      P.str('param'), P.global('torch._utils', '_rebuild_parameter'), P.mark(), tensorOps, P.newfalse(), P.global('collections', 'OrderedDict'), P.emptyTuple(), P.reduce(), P.tuple(), P.reduce(),
      P.setitems(), P.stop());
    const pt = await read(torchZip('w', wrapped, { 0: f32Bytes([7, 8]) }));
    expect(pt.tensors.map((t) => t.name)).toEqual(['sub', 'param']);
    expect(pt.unknownGlobals).toEqual(['my.module.MyTensor']);
    expect(pt.tensors[0]!.storageKey).toBe(pt.tensors[1]!.storageKey);
    expect(new Float32Array((await pt.tensors[0]!.load()).slice().buffer)).toEqual(new Float32Array([7, 8]));
  });

  it('legacy view storages (view_metadata) slice their root storage', async () => {
    const parts: number[][] = [P.proto(2), P.emptyDict(), P.mark(), P.str('v'), P.global('torch._utils', '_rebuild_tensor_v2'), P.mark(),
      P.mark(), P.str('storage'), P.global('torch', 'FloatStorage'), P.str('root'), P.str('cpu'), P.int(6),
      P.str('view1'), P.int(3), P.int(3), P.tuple3(), // (view_key, offset, numel)
      P.tuple(), P.binpersid(), P.int(1), P.mark(), P.int(2), P.tuple(), P.mark(), P.int(1), P.tuple(), P.newfalse(), P.none(), P.tuple(), P.reduce(),
      P.setitems(), P.stop()];
    const pt = await read(legacyStream(cat(...parts), [['root', f32Bytes([0, 1, 2, 3, 4, 5]), 4]]));
    // view starts at element 3 of root; the tensor starts at element 1 of the view → [4, 5].
    expect(new Float32Array((await pt.tensors[0]!.load()).slice().buffer)).toEqual(new Float32Array([4, 5]));
    expect(pt.tensors[0]!.storageKey).toBe('root+3@1:2:1');
  });

  it('nested dicts of tensors: default takes the top dict with dotted names; dotted keys select inside', async () => {
    const t = (name: string, key: string) => ({ name, key, numel: 1, shape: [] as number[], stride: [] as number[] });
    const sd = stateDictPickle([t('a.b', '0'), t('c', '1')]);
    const pkl = cat(P.proto(2), P.emptyDict(), P.mark(), P.str('top'), P.int(1), P.str('net'), sd.subarray(2, sd.length - 1), P.setitems(), P.stop());
    const bytes = torchZip('n', pkl, { 0: f32Bytes([1]), 1: f32Bytes([2]) });
    const all = await read(bytes);
    expect(all.selectedKey).toBeUndefined();
    expect(all.stateDictKeys).toEqual(['net']);
    expect(all.tensors.map((x) => x.name)).toEqual(['net.a.b', 'net.c']);
    const net = await read(bytes, 'net');
    expect(net.tensors.map((x) => x.name)).toEqual(['a.b', 'c']);
    // 'net.a.b' is a key containing a dot inside 'net': the longest match wins.
    const one = await read(bytes, 'net.a.b');
    expect(one.tensors.map((x) => x.name)).toEqual(['b']);
    expect(one.tensors[0]!.shape).toEqual([]);
  });

  it('storages pickled with plain pickle (_load_from_bytes) → E_UNSUPPORTED', async () => {
    const pkl = cat(P.proto(2), P.emptyDict(), P.mark(), P.str('w'), P.global('torch._utils', '_rebuild_tensor_v2'), P.mark(),
      P.global('torch.storage', '_load_from_bytes'), P.mark(), P.str('x'), P.tuple(), P.reduce(),
      P.int(0), P.mark(), P.int(1), P.tuple(), P.mark(), P.int(1), P.tuple(), P.newfalse(), P.none(), P.tuple(), P.reduce(), P.setitems(), P.stop());
    await expect(read(torchZip('lfb', pkl, {}))).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('_load_from_bytes') });
  });

  it('a tar archive (torch ≤ 0.1) → E_UNSUPPORTED', async () => {
    const tar = new Uint8Array(1024);
    tar.set(new TextEncoder().encode('storages'), 0);
    tar.set(new TextEncoder().encode('ustar'), 257);
    await expect(read(tar)).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});
