/**
 * The rewritten corpus models (inline and with external data) go through onnx.checker.check_model of
 * Debian python3-onnx 1.12 (one python process for all files). 1.12 rejects models newer than it
 * knows (IR > 8, opset > 17, new types), so the verdict on the rewrite is compared with the verdict on
 * the original: they must agree exactly.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectTensors, decodeTensorProto, modelTensorContext, storageOf, tensorFromProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import { corpusName, corpusOnnxFiles, openModel, tensorPayloads, writeModelFile } from '../formats/onnx/helpers.js';

const PYTHON = '/usr/bin/python3';
const CHECK_SCRIPT = `
import json, sys
import onnx
out = []
for p in json.load(sys.stdin):
    try:
        onnx.checker.check_model(p)
        out.append([True, ""])
    except Exception as e:
        out.append([False, (type(e).__name__ + ": " + str(e)).splitlines()[0][:240]])
sys.stdout.write(json.dumps(out))
`;

/**
 * For each model path: python onnx loads it (with its external data) and prints the SHA-256 of every
 * dense tensor's bytes (initializers and tensor attributes, in subgraphs and functions too): raw_data
 * as stored, typed fields through numpy_helper.to_array (null where 1.12 cannot decode the type).
 */
const HASH_SCRIPT = `
import hashlib, json, sys
import onnx
from onnx import numpy_helper

def graph_tensors(g):
    for t in g.initializer:
        yield t
    yield from node_tensors(g.node)

def node_tensors(nodes):
    for n in nodes:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            for t in a.tensors:
                yield t
            if a.HasField("g"):
                yield from graph_tensors(a.g)
            for sg in a.graphs:
                yield from graph_tensors(sg)

def model_tensors(m):
    yield from graph_tensors(m.graph)
    for f in m.functions:
        yield from node_tensors(f.node)
    for ti in m.training_info:
        yield from graph_tensors(ti.initialization)
        yield from graph_tensors(ti.algorithm)

out = []
for p in json.load(sys.stdin):
    m = onnx.load(p)
    hashes = []
    for t in model_tensors(m):
        if t.data_type == onnx.TensorProto.STRING:
            continue
        if t.HasField("raw_data"):
            hashes.append(hashlib.sha256(t.raw_data).hexdigest())
            continue
        try:
            hashes.append(hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest())
        except Exception:
            hashes.append(None)
    out.append(hashes)
sys.stdout.write(json.dumps(out))
`;

/** Saves each model with onnx.save_model(save_as_external_data=True, convert_attribute=True, size_threshold=0). */
const SAVE_EXTERNAL_SCRIPT = `
import json, sys
import onnx
for src, dst in json.load(sys.stdin):
    m = onnx.load(src)
    onnx.save_model(m, dst, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0, convert_attribute=True)
sys.stdout.write("ok")
`;

/** Typed-field tensors made by onnx 1.12's helper.make_tensor, with numpy's view of their bytes. */
const TYPED_SCRIPT = `
import json, sys
import numpy as np
from onnx import helper, numpy_helper, TensorProto as T
vals = [0.0, -1.5, 3.25, 65504.0, 1e-3, -0.0]
cases = [
    (T.FLOAT, [2, 3], vals), (T.DOUBLE, [6], vals), (T.FLOAT16, [3, 2], vals), (T.BFLOAT16, [6], vals),
    (T.INT8, [4], [-128, -1, 0, 127]), (T.UINT8, [4], [0, 1, 200, 255]), (T.INT16, [3], [-32768, -2, 32767]),
    (T.UINT16, [3], [0, 1, 65535]), (T.INT32, [3], [-(2**31), -1, 2**31 - 1]), (T.INT64, [3], [-(2**63), -1, 2**63 - 1]),
    (T.UINT32, [2], [0, 2**32 - 1]), (T.UINT64, [2], [0, 2**64 - 1]), (T.BOOL, [3], [True, False, True]),
    (T.COMPLEX64, [2], [1 + 2j, -3.5 - 4j]), (T.COMPLEX128, [2], [1 + 2j, -3.5 - 4j]), (T.FLOAT, [], [7.0]), (T.FLOAT, [0, 3], []),
    (T.STRING, [2], [b"ab", "\u00e9".encode()]),
]
out = []
for dt, dims, v in cases:
    t = helper.make_tensor("x", dt, dims, v)
    if dt == T.STRING:
        want = [s.encode("utf-8").hex() for s in numpy_helper.to_array(t).flatten()]
    elif dt == T.BFLOAT16:
        want = np.array(t.int32_data, dtype=np.uint16).tobytes().hex()  # to_array widens bf16 to float32
    elif dt in (T.COMPLEX64, T.COMPLEX128):
        want = np.array(v, dtype=np.complex64 if dt == T.COMPLEX64 else np.complex128).tobytes().hex()  # 1.12 to_array fails on complex
    else:
        want = numpy_helper.to_array(t).tobytes().hex()
    out.append([t.SerializeToString().hex(), want])
sys.stdout.write(json.dumps(out))
`;

function python(script: string, input: unknown): string {
  const r = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Our view of the same tensors: SHA-256 of the normalised bytes, strings and sparse parts left out. */
async function ourHashes(path: string): Promise<string[]> {
  const { model, close } = await openModel(path);
  try {
    const ctx = modelTensorContext(model);
    const out: string[] = [];
    for (const e of collectTensors(model)) {
      if (e.sparse || e.proto.dataType === 8) continue;
      out.push(sha256((await tensorFromProto(e.proto, ctx)).data));
    }
    return out;
  } finally {
    await close();
  }
}

function haveChecker(): boolean {
  if (!existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import onnx.checker; print(onnx.__version__)'], { encoding: 'utf8' });
  return r.status === 0;
}

/** Runs the checker on each path; a crash of the python process fails the test. */
function check(paths: string[]): [boolean, string][] {
  const r = spawnSync(PYTHON, ['-c', CHECK_SCRIPT], { input: JSON.stringify(paths), encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`checker process failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as [boolean, string][];
}

const available = haveChecker();
const files = corpusOnnxFiles();
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelsmith-onnx-checker-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!available)('onnx 1.12 checker on rewritten models', () => {
  it('agrees with the verdict on the originals, inline and with external data', async () => {
    const inline: string[] = [];
    const external: string[] = [];
    const externalDefault: string[] = [];
    for (const [i, file] of files.entries()) {
      const { model, close } = await openModel(file);
      try {
        const dir = join(tmp, String(i));
        inline.push((await writeModelFile(model, join(dir, 'inline'), 'model.onnx')).path);
        // threshold 0 + attributes: every tensor that can move does, to stress the external form.
        external.push((await writeModelFile(model, join(dir, 'ext'), 'model.onnx', { external: true, threshold: 0, attributes: true })).path);
        // onnx's defaults (1024-byte threshold, initializers only).
        externalDefault.push((await writeModelFile(model, join(dir, 'extdef'), 'model.onnx', { external: true })).path);
      } finally {
        await close();
      }
    }
    const all = check([...files, ...inline, ...external, ...externalDefault]);
    const n = files.length;
    const orig = all.slice(0, n);
    const variants = { inline: all.slice(n, 2 * n), external: all.slice(2 * n, 3 * n), 'external (defaults)': all.slice(3 * n) };
    const passOrig = orig.filter((r) => r[0]).length;
    const lines: string[] = [`[onnx checker 1.12] originals: ${passOrig} pass, ${n - passOrig} fail (too new for 1.12 or invalid)`];
    const mismatches: string[] = [];
    for (const [label, res] of Object.entries(variants)) {
      let pass = 0;
      let agree = 0;
      res.forEach((r, i) => {
        if (r[0]) pass++;
        if (r[0] === orig[i]![0]) agree++;
        else mismatches.push(`${label} ${corpusName(files[i]!)}: original ${orig[i]![0] ? 'passes' : `fails (${orig[i]![1]})`}, rewrite ${r[0] ? 'passes' : `fails (${r[1]})`}`);
      });
      lines.push(`  ${label}: ${pass} pass, ${n - pass} fail, ${agree}/${n} agree with the original`);
    }
    const reasons = new Map<string, number>();
    for (const r of orig) if (!r[0]) reasons.set(r[1].replace(/\d+/g, 'N').slice(0, 90), (reasons.get(r[1].replace(/\d+/g, 'N').slice(0, 90)) ?? 0) + 1);
    lines.push('  original failures by reason:', ...[...reasons].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `    ${v} × ${k}`));
    console.log(lines.join('\n'));
    expect(mismatches).toEqual([]);
    expect(passOrig).toBeGreaterThan(100);

    // Negative control: the checker does look at external data when given the path.
    const victim = external.find((_, i) => orig[i]![0])!;
    await rename(`${victim}.data`, `${victim}.data.moved`);
    expect(check([victim])[0]![0]).toBe(false);
    await rename(`${victim}.data.moved`, `${victim}.data`);

    // python onnx loads our external data and sees the same tensor bytes as we do in the originals.
    const theirs = JSON.parse(python(HASH_SCRIPT, external)) as (string | null)[][];
    let compared = 0;
    let undecodable = 0;
    for (const [i, file] of files.entries()) {
      const ours = await ourHashes(file);
      const t = theirs[i]!;
      expect(t.length, corpusName(file)).toBe(ours.length);
      t.forEach((h, j) => {
        if (h === null) undecodable++;
        else {
          expect(h, `${corpusName(file)} tensor #${j}`).toBe(ours[j]);
          compared++;
        }
      });
    }
    console.log(`[onnx 1.12 load] ${compared} tensors read back by python onnx from our external-data files match (${undecodable} typed tensors of types 1.12 cannot decode)`);
    expect(compared).toBeGreaterThan(1000);
  });

  it('reads external data written by python onnx (save_as_external_data)', async () => {
    const pairs = files.map((f, i) => [f, join(tmp, 'pyext', String(i), 'model.onnx')] as [string, string]);
    for (const [, dst] of pairs) await mkdir(join(dst, '..'), { recursive: true });
    expect(python(SAVE_EXTERNAL_SCRIPT, pairs)).toBe('ok');
    let external = 0;
    for (const [src, dst] of pairs) {
      const a = await openModel(src);
      const b = await openModel(dst);
      try {
        external += collectTensors(b.model).filter((e) => e.proto.dataLocation === 1).length;
        const pa = await tensorPayloads(a.model);
        const pb = await tensorPayloads(b.model);
        expect(pb.length).toBe(pa.length);
        pa.forEach((p, j) => expect(sha256(pb[j]!.bytes), `${corpusName(src)} ${p.name}`).toBe(sha256(p.bytes)));
      } finally {
        await a.close();
        await b.close();
      }
    }
    console.log(`[onnx 1.12 save] ${external} external tensors written by python onnx read back identically`);
    expect(external).toBeGreaterThan(1000);
  });

  it('decodes the typed fields of onnx helper.make_tensor like numpy_helper.to_array', () => {
    const cases = JSON.parse(python(TYPED_SCRIPT, null)) as [string, string | string[]][];
    for (const [pb, want] of cases) {
      const tp = decodeTensorProto(Buffer.from(pb, 'hex'));
      const t = tensorFromProtoSync(tp);
      const label = `${t.dtype}[${t.shape.join(',')}] (${storageOf(tp)})`;
      if (Array.isArray(want)) expect(t.strings!.map((s) => Buffer.from(s).toString('hex')), label).toEqual(want);
      else expect(Buffer.from(t.data).toString('hex'), label).toBe(want);
    }
    expect(cases.length).toBe(18);
  });
});
