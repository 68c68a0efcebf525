/**
 * Seeded random mutations (byte flips, truncations, insertions) of small corpus .pt files. Each
 * case must end in success or a ModelsmithError — never another exception — within a time budget,
 * opening and then loading every tensor.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { MemorySource } from '../../../src/io/source.js';
import { readPytorch } from '../../../src/formats/pytorch/read.js';
import { rng } from '../../kernels/helpers.js';
import { GEN, torchZip } from './read-helpers.js';

const FILES = [
  'tiny_mlp.pt', 'tiny_mlp_legacy.pt', 'tiny_mlp_protocol4.pt', 'shared_views.pt', 'shared_views_legacy.pt',
  'quantized.pt', 'checkpoint_with_optimizer.pt', 'full_module.pt', 'tiny_mlp_torchscript.pt',
];
const CASES_PER_FILE = Number(process.env.PT_FUZZ_CASES ?? 250);
const BUDGET_MS = 2000;

function mutate(src: Uint8Array, r: () => number): { bytes: Uint8Array; what: string } {
  const pick = (n: number) => Math.floor(r() * n);
  // Half the edits land in the structured parts: the head (pickle / local headers) and the tail (directory).
  const pos = (len: number) => {
    const z = r();
    if (z < 0.35) return pick(Math.min(len, 1024));
    if (z < 0.5) return Math.max(0, len - 1 - pick(Math.min(len, 256)));
    return pick(len);
  };
  const kind = pick(3);
  if (kind === 0) {
    const out = src.slice();
    const n = 1 + pick(8);
    const at: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = pos(out.length);
      out[p] = r() < 0.3 ? 0xff : pick(256);
      at.push(p);
    }
    return { bytes: out, what: `flip @${at.join(',')}` };
  }
  if (kind === 1) {
    const n = pos(src.length);
    return { bytes: src.slice(0, n), what: `truncate to ${n}` };
  }
  const p = pos(src.length);
  const ins = new Uint8Array(1 + pick(16)).map(() => pick(256));
  const out = new Uint8Array(src.length + ins.length);
  out.set(src.subarray(0, p));
  out.set(ins, p);
  out.set(src.subarray(p), p + ins.length);
  return { bytes: out, what: `insert ${ins.length} @${p}` };
}

describe('seeded mutation fuzzing of corpus .pt files', () => {
  it(`${FILES.length * CASES_PER_FILE} mutations end in success or a ModelsmithError`, async () => {
    const outcomes = new Map<string, number>();
    let slowest = 0;
    let cases = 0;
    for (const [fi, f] of FILES.entries()) {
      const orig = new Uint8Array(readFileSync(resolve(GEN, f)));
      const r = rng(Number(process.env.PT_FUZZ_SEED ?? 1000) + fi);
      for (let c = 0; c < CASES_PER_FILE; c++) {
        const { bytes, what } = mutate(orig, r);
        const t0 = performance.now();
        let outcome = 'OK';
        try {
          const pt = await readPytorch(new MemorySource(bytes, f), { path: f });
          for (const t of pt.tensors) {
            const b = await t.load();
            if (b.byteLength !== t.byteLength) throw new Error(`load() gave ${b.byteLength} bytes, byteLength says ${t.byteLength}`);
          }
          JSON.stringify(pt.tree);
        } catch (e) {
          if (!(e instanceof ModelsmithError)) {
            throw new Error(`${f} case ${c} (${what}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          }
          outcome = e.code;
        }
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        expect(ms, `${f} case ${c} (${what})`).toBeLessThan(BUDGET_MS);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        cases++;
      }
    }
    console.log(`[pytorch fuzz] ${cases} cases, slowest ${slowest.toFixed(1)} ms:`, Object.fromEntries([...outcomes].sort()));
    expect(cases).toBeGreaterThanOrEqual(2000);
    // The mutations must exercise both paths.
    expect(outcomes.get('OK') ?? 0).toBeGreaterThan(50);
    expect(cases - (outcomes.get('OK') ?? 0)).toBeGreaterThan(500);
  }, 120_000);
});

/** Random opcode programs over a torch-flavoured vocabulary: reaches VM states byte flips rarely do. */
function randomProgram(r: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(r() * n);
  const enc = new TextEncoder();
  const strs = ['storage', '0', '1', 'cpu', 'w', 'weight', '_parameters', '_modules', 'state_dict', 'latin1', ''];
  const globals = [
    'torch._utils\n_rebuild_tensor_v2', 'torch._utils\n_rebuild_tensor_v3', 'torch._utils\n_rebuild_qtensor', 'torch._utils\n_rebuild_parameter',
    'torch._tensor\n_rebuild_from_type_v2', 'collections\nOrderedDict', 'torch\nFloatStorage', 'torch\nUntypedStorage', 'torch\nQInt8Storage',
    'os\nsystem', 'torch\nfloat32', 'torch\nuint16', 'torch\nper_channel_affine', 'torch\nper_tensor_affine', '_codecs\nencode', 'builtins\nset',
    '__builtin__\nfrozenset', 'torch\nSize', 'argparse\nNamespace', 'copy_reg\n_reconstructor',
  ];
  const noArg = [0x28, 0x29, 0x30, 0x31, 0x32, 0x4e, 0x5d, 0x61, 0x65, 0x6c, 0x74, 0x73, 0x75, 0x7d, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x93, 0x94, 0x52, 0x62, 0x81, 0x92, 0x51, 0x64, 0x6f];
  const out: number[] = [0x80, 2];
  const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  const n = 5 + pick(200);
  for (let i = 0; i < n; i++) {
    const k = pick(12);
    if (k < 5) out.push(noArg[pick(noArg.length)]!);
    else if (k === 5) out.push(0x4b, pick(256));
    else if (k === 6) out.push(0x4a, ...u32(pick(4) === 0 ? 0xffffffff : pick(100)));
    else if (k === 7) out.push(0x63, ...enc.encode(globals[pick(globals.length)]! + '\n'));
    else if (k === 8) {
      const b = enc.encode(strs[pick(strs.length)]!);
      out.push(0x58, ...u32(b.length), ...b);
    } else if (k === 9) out.push(pick(2) ? 0x71 : 0x68, pick(8));
    else if (k === 10) out.push(0x8a, 1 + pick(3), ...Array.from({ length: 3 }, () => pick(256)));
    else out.push(0x47, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0);
  }
  out.push(0x2e);
  return new Uint8Array(out);
}

describe('random opcode programs', () => {
  it('3000 programs end in success or a ModelsmithError', async () => {
    const r = rng(Number(process.env.PT_FUZZ_SEED ?? 1000) + 99);
    const storage = new Uint8Array(64);
    const outcomes = new Map<string, number>();
    for (let c = 0; c < 3000; c++) {
      const pkl = randomProgram(r);
      let outcome = 'OK';
      try {
        const pt = await readPytorch(new MemorySource(torchZip('f', pkl, { 0: storage, 1: storage }), 'prog.pt'));
        for (const t of pt.tensors) await t.load();
        JSON.stringify(pt.tree);
      } catch (e) {
        if (!(e instanceof ModelsmithError)) throw new Error(`program ${c} (${Buffer.from(pkl).toString('hex')}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        outcome = e.code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    console.log('[pytorch opcode fuzz]', Object.fromEntries([...outcomes].sort()));
    expect(outcomes.get('OK') ?? 0).toBeGreaterThan(0);
    expect(outcomes.get('E_MALFORMED') ?? 0).toBeGreaterThan(100);
  }, 60_000);
});

/** Opcode-level edits (delete, duplicate, swap, insert) of real torch pickles: valid framing, wrong semantics. */
describe('opcode-level mutations of corpus pickles', () => {
  it('3000 edited pickles end in success or a ModelsmithError', async () => {
    const script = [
      'import zipfile, pickletools, json, sys',
      'out = {}',
      'for f in sys.argv[2:]:',
      '  z = zipfile.ZipFile(sys.argv[1] + "/" + f)',
      '  names = [n for n in z.namelist() if n.endswith("/data.pkl")]',
      '  data = z.read(names[0])',
      '  ops = [pos for (_, _, pos) in pickletools.genops(data)]',
      '  stor = {n.split("/data/")[1]: z.read(n).hex() for n in z.namelist() if "/data/" in n}',
      '  out[f] = {"pkl": data.hex(), "ops": ops, "storages": stor}',
      'json.dump(out, sys.stdout)',
    ].join('\n');
    const files = ['tiny_mlp.pt', 'quantized.pt', 'full_module.pt', 'checkpoint_with_optimizer.pt', 'shared_views.pt', 'tiny_mlp_torchscript.pt'];
    const corpus = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, GEN, ...files], { encoding: 'utf8' })) as Record<string, { pkl: string; ops: number[]; storages: Record<string, string> }>;
    const r = rng(Number(process.env.PT_FUZZ_SEED ?? 1000) + 7);
    const pick = (n: number) => Math.floor(r() * n);
    const outcomes = new Map<string, number>();
    for (let c = 0; c < 3000; c++) {
      const f = files[c % files.length]!;
      const { pkl, ops, storages } = corpus[f]!;
      const bytes = Buffer.from(pkl, 'hex');
      const bounds = [...ops, bytes.length];
      const segs = ops.map((o, i) => bytes.subarray(o, bounds[i + 1]));
      const edits = 1 + pick(3);
      for (let e = 0; e < edits; e++) {
        const i = pick(segs.length);
        const j = pick(segs.length);
        const kind = pick(4);
        if (kind === 0) segs.splice(i, 1);
        else if (kind === 1) segs.splice(i, 0, segs[j]!);
        else if (kind === 2) [segs[i], segs[j]] = [segs[j]!, segs[i]!];
        else segs.splice(i, 0, Buffer.from(randomProgram(r).subarray(2, -1)).subarray(0, 1 + pick(12)));
      }
      const edited = new Uint8Array(Buffer.concat(segs));
      const st = Object.fromEntries(Object.entries(storages).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'hex'))]));
      let outcome = 'OK';
      try {
        const pt = await readPytorch(new MemorySource(torchZip('e', edited, st), 'edit.pt'));
        for (const t of pt.tensors) await t.load();
        JSON.stringify(pt.tree);
      } catch (e) {
        if (!(e instanceof ModelsmithError)) throw new Error(`${f} edit ${c} (${Buffer.from(edited).toString('hex')}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        outcome = e.code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    console.log('[pytorch opcode-edit fuzz]', Object.fromEntries([...outcomes].sort()));
    expect(outcomes.get('OK') ?? 0).toBeGreaterThan(100);
  }, 60_000);
});
