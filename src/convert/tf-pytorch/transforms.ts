/**
 * The layout transforms registry: for each Keras layer kind, which PyTorch parameters its variables
 * become and how (formats.md §6.1). Every output is lazy: `compute()` reads the TF variable(s) and
 * applies the transform, so converting a big model holds one tensor at a time.
 */
import type { DType } from '../../core/dtype.js';
import { byteLength } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type Diagnostics } from '../../core/errors.js';
import type { LazyTensor } from '../../formats/weights.js';
import type { TfLayer } from './layers.js';
import { elementSize, hwioToOihwBytes, ones, reorderBlocks, transposeBytes } from './ops.js';

export const FORMAT = 'tf-pytorch';

/** One PyTorch parameter (or buffer) produced from a Keras layer. */
export interface OutParam {
  /** Sub-module under the layer's module ('' for the layer itself; `depthwise`/`pointwise` for SeparableConv2D). */
  module: string;
  /** Parameter name inside that module (`weight`, `running_var`, `weight_hh_l0_reverse`). */
  param: string;
  /** The TF variable it comes from (undefined for synthesised tensors such as `num_batches_tracked`). */
  source?: LazyTensor;
  transform: string;
  shapeBefore: number[];
  shape: number[];
  dtype: DType;
  compute(): Promise<Uint8Array>;
}

export interface TransformContext {
  diags: Diagnostics;
  /** For a Dense fed by a Flatten of a channels-last feature map: the channel count C. */
  flattenChannels?: number;
}

type Handler = (layer: TfLayer, ctx: TransformContext) => OutParam[];

const prod = (s: readonly number[]): number => s.reduce((a, d) => a * d, 1);

async function loadChecked(t: LazyTensor, layer: TfLayer): Promise<Uint8Array> {
  const data = await t.load();
  if (data.byteLength !== byteLength(t.dtype, prod(t.shape))) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `variable holds ${data.byteLength} bytes, shape [${t.shape.join(', ')}] needs ${byteLength(t.dtype, prod(t.shape))}`, { format: FORMAT, path: layer.path, tensor: t.name });
  }
  return data;
}

/** Checks the rank, and (for tensors that will be permuted) that the dtype has a fixed element size. */
function needRank(t: LazyTensor, ranks: number[], layer: TfLayer, what: string): void {
  if (!ranks.includes(t.shape.length)) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `variable '${t.name}' (${what} of ${layer.className ?? 'layer'} '${layer.name}') has shape [${t.shape.join(', ')}]; expected rank ${ranks.join(' or ')}`, { format: FORMAT, path: layer.path, tensor: t.name, op: layer.className });
  }
  // Fail while planning, not halfway through writing the output.
  if (t.shape.length > 1) elementSize(t.dtype, t.name, layer.path);
}

function out(module: string, param: string, source: LazyTensor | undefined, transform: string, shape: number[], dtype: DType, compute: () => Promise<Uint8Array>): OutParam {
  return { module, param, ...(source ? { source } : {}), transform, shapeBefore: source ? [...source.shape] : [], shape, dtype, compute };
}

const asIs = (t: LazyTensor, param: string, layer: TfLayer, module = ''): OutParam => out(module, param, t, 'as is', [...t.shape], t.dtype, () => loadChecked(t, layer));

/** [in, out] → [out, in]. */
function transposed(t: LazyTensor, param: string, layer: TfLayer, module = ''): OutParam {
  needRank(t, [2], layer, param);
  const [r, c] = t.shape as [number, number];
  return out(module, param, t, 'transpose(1,0)', [c, r], t.dtype, async () => transposeBytes(await loadChecked(t, layer), r, c, elementSize(t.dtype, t.name)));
}

/** [...spatial, a, b] → [b, a, ...spatial]: Conv1D/2D/3D HWIO→OIHW and Conv2DTranspose [kh,kw,out,in] → [in,out,kh,kw]. */
function convKernel(t: LazyTensor, param: string, layer: TfLayer, module = ''): OutParam {
  needRank(t, [3, 4, 5], layer, param);
  const r = t.shape.length;
  const spatial = t.shape.slice(0, r - 2);
  const [a, b] = t.shape.slice(r - 2) as [number, number];
  const perm = [r - 1, r - 2, ...spatial.map((_, i) => i)];
  // Viewed as 4-D [H', W', a, b] (H' = all spatial dims but the last) it is exactly HWIO→OIHW.
  const four: [number, number, number, number] = [prod(spatial.slice(0, -1)), spatial[spatial.length - 1]!, a, b];
  return out(module, param, t, `permute(${perm.join(',')})`, [b, a, ...spatial], t.dtype, async () => hwioToOihwBytes(await loadChecked(t, layer), four, elementSize(t.dtype, t.name)));
}

/** [kh, kw, C, m] → [C·m, 1, kh, kw] (output channel c·m + j, as TF orders them). */
function depthwiseKernel(t: LazyTensor, param: string, layer: TfLayer, module = ''): OutParam {
  needRank(t, [4], layer, param);
  const [kh, kw, c, m] = t.shape as [number, number, number, number];
  return out(module, param, t, 'permute(2,3,0,1)+reshape', [c * m, 1, kh, kw], t.dtype, async () => transposeBytes(await loadChecked(t, layer), kh * kw, c * m, elementSize(t.dtype, t.name)));
}

/** Dense after Flatten of [.., C] channels-last: rows in (spatial, C) order become (C, spatial), then transpose. */
function flattenDenseKernel(t: LazyTensor, channels: number, layer: TfLayer): OutParam {
  needRank(t, [2], layer, 'kernel');
  const [rows, cols] = t.shape as [number, number];
  if (channels <= 0 || rows % channels !== 0) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `Dense '${layer.name}' after Flatten: ${rows} input rows is not a multiple of ${channels} channels`, { format: FORMAT, path: layer.path, tensor: t.name, op: layer.className });
  }
  const s = rows / channels;
  return out('', 'weight', t, `flatten rows HWC→CHW (C=${channels}) + transpose(1,0)`, [cols, rows], t.dtype,
    async () => hwioToOihwBytes(await loadChecked(t, layer), [s, 1, channels, cols], elementSize(t.dtype, t.name)));
}

const zeros = (module: string, param: string, like: LazyTensor, shape: number[]): OutParam =>
  out(module, param, undefined, 'zeros', shape, like.dtype, async () => new Uint8Array(byteLength(like.dtype, prod(shape))));

function bias(layer: TfLayer, module = ''): OutParam[] {
  const b = layer.vars.get('bias');
  return b ? [asIs(b, 'bias', layer, module)] : [];
}

function required(layer: TfLayer, attr: string): LazyTensor {
  const t = layer.vars.get(attr);
  if (!t) throw new ModelsmithError(ErrorCodes.MALFORMED, `${layer.className ?? 'layer'} '${layer.name}' has no '${attr}' variable`, { format: FORMAT, path: layer.path, tensor: layer.key, op: layer.className });
  return t;
}

const dense: Handler = (layer, ctx) => {
  const k = required(layer, 'kernel');
  const w = ctx.flattenChannels !== undefined && ctx.flattenChannels > 1 ? flattenDenseKernel(k, ctx.flattenChannels, layer) : transposed(k, 'weight', layer);
  return [w, ...bias(layer)];
};

const conv: Handler = (layer) => [convKernel(required(layer, 'kernel'), 'weight', layer), ...bias(layer)];

const depthwise: Handler = (layer) => [depthwiseKernel(required(layer, 'depthwise_kernel'), 'weight', layer), ...bias(layer)];

const separable: Handler = (layer) => [
  depthwiseKernel(required(layer, 'depthwise_kernel'), 'weight', layer, 'depthwise'),
  convKernel(required(layer, 'pointwise_kernel'), 'weight', layer, 'pointwise'),
  ...bias(layer, 'pointwise'),
];

const batchNorm: Handler = (layer, ctx) => {
  const mean = required(layer, 'moving_mean');
  const vr = required(layer, 'moving_variance');
  const g = layer.vars.get('gamma');
  const b = layer.vars.get('beta');
  const c = [...mean.shape];
  const cfg = layer.meta?.config;
  const eps = cfg?.['epsilon'];
  if (typeof eps === 'number' && eps !== 1e-5) ctx.diags.info('TF_TORCH_BN_EPS', `BatchNorm '${layer.name}': Keras epsilon ${eps}; create the torch module with eps=${eps} (torch default 1e-5)`, { tensor: layer.name });
  return [
    g ? asIs(g, 'weight', layer) : out('', 'weight', undefined, 'ones (scale=False)', c, mean.dtype, async () => ones(mean.dtype, prod(c), mean.name)),
    b ? asIs(b, 'bias', layer) : zeros('', 'bias', mean, c),
    asIs(mean, 'running_mean', layer),
    asIs(vr, 'running_var', layer),
    out('', 'num_batches_tracked', undefined, 'constant 0 (int64)', [], 'int64', async () => new Uint8Array(8)),
  ];
};

const layerNorm: Handler = (layer) => {
  const outs: OutParam[] = [];
  const g = layer.vars.get('gamma');
  const b = layer.vars.get('beta');
  if (g) outs.push(asIs(g, 'weight', layer));
  if (b) outs.push(asIs(b, 'bias', layer));
  return outs;
};

const embedding: Handler = (layer) => [asIs(required(layer, 'embeddings'), 'weight', layer)];

const prelu: Handler = (layer) => {
  const a = required(layer, 'alpha');
  const c = a.shape[a.shape.length - 1] ?? 1;
  if (prod(a.shape) !== c) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `PReLU '${layer.name}' has a per-position alpha [${a.shape.join(', ')}]; torch PReLU has one value per channel (use shared_axes)`, { format: FORMAT, path: layer.path, tensor: a.name, op: layer.className });
  }
  return [out('', 'weight', a, a.shape.length > 1 ? 'reshape to [C]' : 'as is', [c], a.dtype, () => loadChecked(a, layer))];
};

type RnnKind = 'LSTM' | 'GRU';

/** Gate blocks: Keras LSTM i,f,c,o = torch i,f,g,o; Keras GRU z,r,h → torch r,z,n. */
const GATES: Record<RnnKind, { n: number; order: number[] }> = { LSTM: { n: 4, order: [0, 1, 2, 3] }, GRU: { n: 3, order: [1, 0, 2] } };

function rnnKind(layer: TfLayer, cellPrefix: string): RnnKind {
  const cls = layer.className === 'Bidirectional' ? innerClass(layer) : layer.className;
  if (cls === 'LSTM' || cls === 'GRU') return cls;
  const k = layer.vars.get(`${cellPrefix}kernel`);
  const r = layer.vars.get(`${cellPrefix}recurrent_kernel`);
  const u = r?.shape[0];
  const cols = k?.shape[1] ?? r?.shape[1];
  if (u && cols === 4 * u) return 'LSTM';
  if (u && cols === 3 * u) return 'GRU';
  throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `recurrent layer '${layer.name}' (${layer.className ?? 'unknown class'}) is neither an LSTM nor a GRU`, { format: FORMAT, path: layer.path, tensor: layer.key, op: layer.className });
}

function innerClass(layer: TfLayer): string | undefined {
  const inner = layer.meta?.config?.['layer'];
  const c = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>)['class_name'] : undefined;
  return typeof c === 'string' ? c : undefined;
}

function gateKernel(t: LazyTensor, kind: RnnKind, param: string, layer: TfLayer): OutParam {
  needRank(t, [2], layer, param);
  const [r, c] = t.shape as [number, number];
  const g = GATES[kind];
  if (c % g.n !== 0) throw new ModelsmithError(ErrorCodes.MALFORMED, `${kind} '${layer.name}' kernel has ${c} columns, not ${g.n} gates`, { format: FORMAT, path: layer.path, tensor: t.name, op: kind });
  const label = kind === 'GRU' ? 'gates z,r,h→r,z,n + transpose(1,0)' : 'transpose(1,0)';
  return out('', param, t, label, [c, r], t.dtype, async () => {
    const tr = await transposeBytes(await loadChecked(t, layer), r, c, elementSize(t.dtype, t.name));
    return kind === 'GRU' ? reorderBlocks(tr, g.order) : tr;
  });
}

function gateBias(t: LazyTensor, kind: RnnKind, param: string, row: number | undefined, layer: TfLayer): OutParam {
  const n = row === undefined ? t.shape[0]! : t.shape[1]!;
  const label = `${row === undefined ? '' : `bias[${row}] `}${kind === 'GRU' ? 'gates z,r,h→r,z,n' : 'as is'}`;
  return out('', param, t, label.trim(), [n], t.dtype, async () => {
    const all = await loadChecked(t, layer);
    const size = byteLength(t.dtype, n);
    const part = row === undefined ? all : all.subarray(row * size, (row + 1) * size);
    return kind === 'GRU' ? reorderBlocks(part, GATES.GRU.order) : part.slice();
  });
}

function rnnParams(layer: TfLayer, cellPrefix: string, suffix: string): OutParam[] {
  const kind = rnnKind(layer, cellPrefix);
  const k = required(layer, `${cellPrefix}kernel`);
  const r = required(layer, `${cellPrefix}recurrent_kernel`);
  const outs = [gateKernel(k, kind, `weight_ih_l0${suffix}`, layer), gateKernel(r, kind, `weight_hh_l0${suffix}`, layer)];
  const b = layer.vars.get(`${cellPrefix}bias`);
  if (!b) return outs;
  if (kind === 'LSTM') {
    needRank(b, [1], layer, 'bias');
    return [...outs, asIs(b, `bias_ih_l0${suffix}`, layer), zeros('', `bias_hh_l0${suffix}`, b, [...b.shape])];
  }
  const cfg = layer.meta?.config;
  const inner = layer.className === 'Bidirectional' ? (cfg?.['layer'] as Record<string, unknown> | undefined)?.['config'] as Record<string, unknown> | undefined : cfg;
  if (b.shape.length === 1 || inner?.['reset_after'] === false) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `GRU '${layer.name}' uses reset_after=False, which torch.nn.GRU cannot express`, { format: FORMAT, path: layer.path, tensor: b.name, op: 'GRU' });
  }
  needRank(b, [2], layer, 'bias');
  if (b.shape[0] !== 2) throw new ModelsmithError(ErrorCodes.MALFORMED, `GRU '${layer.name}' bias has shape [${b.shape.join(', ')}]; expected [2, 3·units]`, { format: FORMAT, path: layer.path, tensor: b.name, op: 'GRU' });
  return [...outs, gateBias(b, kind, `bias_ih_l0${suffix}`, 0, layer), gateBias(b, kind, `bias_hh_l0${suffix}`, 1, layer)];
}

const rnn: Handler = (layer) => rnnParams(layer, 'cell/', '');

const bidirectional: Handler = (layer) => [...rnnParams(layer, 'forward_layer/cell/', ''), ...rnnParams(layer, 'backward_layer/cell/', '_reverse')];

/** Unknown layers: variables carried over unchanged under their attribute names. */
const identity: Handler = (layer) => [...layer.vars.entries()].map(([attr, t]) => asIs(t, attr.replace(/[^A-Za-z0-9_]/g, '_'), layer));

export const HANDLERS: Record<string, Handler> = {
  Dense: dense, Conv1D: conv, Conv2D: conv, Conv3D: conv, Conv1DTranspose: conv, Conv2DTranspose: conv, Conv3DTranspose: conv,
  DepthwiseConv2D: depthwise, SeparableConv2D: separable, BatchNormalization: batchNorm, LayerNormalization: layerNorm,
  Embedding: embedding, PReLU: prelu, LSTM: rnn, GRU: rnn, Bidirectional: bidirectional, identity,
};

/** Keras' older spellings of the same classes. */
const ALIASES: Record<string, string> = {
  Convolution1D: 'Conv1D', Convolution2D: 'Conv2D', Convolution3D: 'Conv3D', Convolution2DTranspose: 'Conv2DTranspose',
  SeparableConvolution2D: 'SeparableConv2D', DepthwiseConvolution2D: 'DepthwiseConv2D', SyncBatchNormalization: 'BatchNormalization',
  CuDNNLSTM: 'LSTM', CuDNNGRU: 'GRU', LSTMV1: 'LSTM', GRUV1: 'GRU',
};

/** The layer's kind: its Keras class when the registry knows it, else inferred from its variables. */
export function layerKind(layer: TfLayer): string {
  const cls = layer.className !== undefined ? ALIASES[layer.className] ?? layer.className : undefined;
  if (cls !== undefined && cls !== 'identity' && HANDLERS[cls]) return cls;
  const v = layer.vars;
  if (v.has('forward_layer/cell/kernel')) return 'Bidirectional';
  const rec = v.get('cell/recurrent_kernel');
  if (rec) return rec.shape.length === 2 && rec.shape[1] === 3 * rec.shape[0]! ? 'GRU' : 'LSTM';
  if (v.has('depthwise_kernel')) return v.has('pointwise_kernel') ? 'SeparableConv2D' : 'DepthwiseConv2D';
  if (v.has('moving_mean')) return 'BatchNormalization';
  if (v.has('gamma') || (v.has('beta') && v.size <= 2)) return 'LayerNormalization';
  if (v.has('embeddings')) return 'Embedding';
  if (v.has('alpha')) return 'PReLU';
  const k = v.get('kernel');
  if (k && k.shape.length === 2) return 'Dense';
  if (k && k.shape.length >= 3 && k.shape.length <= 5) return 'Conv2D';
  return 'identity';
}

export function layerParams(layer: TfLayer, ctx: TransformContext): { kind: string; params: OutParam[] } {
  const kind = layerKind(layer);
  if (kind === 'identity') {
    ctx.diags.warn('TF_TORCH_UNKNOWN_LAYER', `layer '${layer.name}' (${layer.className ?? 'no Keras class'}) has no known PyTorch layout; its variables are copied as is`, { tensor: layer.key });
  }
  return { kind, params: HANDLERS[kind]!(layer, ctx) };
}
