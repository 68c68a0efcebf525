/**
 * Bring any NetParameter to the current form, as Caffe's upgrade_proto does on load:
 *  - V0 (`layers { layer { type: "conv" kernelsize: … } }`) and V1 (`layers { type: CONVOLUTION }`)
 *    become `layer` entries with string types and the shared *_param messages;
 *  - net-level `input` + `input_dim` / `input_shape` become `Input` layers.
 * Everything downstream (summary, weights, conversion) then deals with one layer form only.
 */
import { create, type DescField } from '@bufbuild/protobuf';
import { reflect } from '@bufbuild/protobuf/reflect';
import type { Diagnostic } from '../../core/errors.js';
import {
  BlobShapeSchema,
  ConcatParameterSchema,
  ConvolutionParameterSchema,
  DataParameterSchema,
  DropoutParameterSchema,
  InnerProductParameterSchema,
  InputParameterSchema,
  LayerParameterSchema,
  LRNParameterSchema,
  ParamSpecSchema,
  PoolingParameterSchema,
  TransformationParameterSchema,
  V0LayerParameterSchema,
  V1LayerParameter_LayerType,
  V1LayerParameterSchema,
  type LayerParameter,
  type NetParameter,
  type V0LayerParameter,
  type V1LayerParameter,
} from './gen/caffe_pb.js';

/** V1 enum type → current type string (upgrade_proto.cpp UpgradeV1LayerType). */
export const V1_TYPE_NAMES: Readonly<Record<number, string>> = {
  [V1LayerParameter_LayerType.NONE]: '',
  [V1LayerParameter_LayerType.ABSVAL]: 'AbsVal',
  [V1LayerParameter_LayerType.ACCURACY]: 'Accuracy',
  [V1LayerParameter_LayerType.ARGMAX]: 'ArgMax',
  [V1LayerParameter_LayerType.BNLL]: 'BNLL',
  [V1LayerParameter_LayerType.CONCAT]: 'Concat',
  [V1LayerParameter_LayerType.CONTRASTIVE_LOSS]: 'ContrastiveLoss',
  [V1LayerParameter_LayerType.CONVOLUTION]: 'Convolution',
  [V1LayerParameter_LayerType.DATA]: 'Data',
  [V1LayerParameter_LayerType.DECONVOLUTION]: 'Deconvolution',
  [V1LayerParameter_LayerType.DROPOUT]: 'Dropout',
  [V1LayerParameter_LayerType.DUMMY_DATA]: 'DummyData',
  [V1LayerParameter_LayerType.EUCLIDEAN_LOSS]: 'EuclideanLoss',
  [V1LayerParameter_LayerType.ELTWISE]: 'Eltwise',
  [V1LayerParameter_LayerType.EXP]: 'Exp',
  [V1LayerParameter_LayerType.FLATTEN]: 'Flatten',
  [V1LayerParameter_LayerType.HDF5_DATA]: 'HDF5Data',
  [V1LayerParameter_LayerType.HDF5_OUTPUT]: 'HDF5Output',
  [V1LayerParameter_LayerType.HINGE_LOSS]: 'HingeLoss',
  [V1LayerParameter_LayerType.IM2COL]: 'Im2col',
  [V1LayerParameter_LayerType.IMAGE_DATA]: 'ImageData',
  [V1LayerParameter_LayerType.INFOGAIN_LOSS]: 'InfogainLoss',
  [V1LayerParameter_LayerType.INNER_PRODUCT]: 'InnerProduct',
  [V1LayerParameter_LayerType.LRN]: 'LRN',
  [V1LayerParameter_LayerType.MEMORY_DATA]: 'MemoryData',
  [V1LayerParameter_LayerType.MULTINOMIAL_LOGISTIC_LOSS]: 'MultinomialLogisticLoss',
  [V1LayerParameter_LayerType.MVN]: 'MVN',
  [V1LayerParameter_LayerType.POOLING]: 'Pooling',
  [V1LayerParameter_LayerType.POWER]: 'Power',
  [V1LayerParameter_LayerType.RELU]: 'ReLU',
  [V1LayerParameter_LayerType.SIGMOID]: 'Sigmoid',
  [V1LayerParameter_LayerType.SIGMOID_CROSS_ENTROPY_LOSS]: 'SigmoidCrossEntropyLoss',
  [V1LayerParameter_LayerType.SILENCE]: 'Silence',
  [V1LayerParameter_LayerType.SOFTMAX]: 'Softmax',
  [V1LayerParameter_LayerType.SOFTMAX_LOSS]: 'SoftmaxWithLoss',
  [V1LayerParameter_LayerType.SPLIT]: 'Split',
  [V1LayerParameter_LayerType.SLICE]: 'Slice',
  [V1LayerParameter_LayerType.TANH]: 'TanH',
  [V1LayerParameter_LayerType.WINDOW_DATA]: 'WindowData',
  [V1LayerParameter_LayerType.THRESHOLD]: 'Threshold',
};

/** V0 lowercase type → current type string. */
const V0_TYPE_NAMES: Readonly<Record<string, string>> = {
  accuracy: 'Accuracy', bnll: 'BNLL', concat: 'Concat', conv: 'Convolution', data: 'Data', dropout: 'Dropout',
  euclidean_loss: 'EuclideanLoss', flatten: 'Flatten', hdf5_data: 'HDF5Data', hdf5_output: 'HDF5Output', im2col: 'Im2col',
  images: 'ImageData', infogain_loss: 'InfogainLoss', innerproduct: 'InnerProduct', lrn: 'LRN',
  multinomial_logistic_loss: 'MultinomialLogisticLoss', pool: 'Pooling', relu: 'ReLU', sigmoid: 'Sigmoid',
  softmax: 'Softmax', softmax_loss: 'SoftmaxWithLoss', split: 'Split', tanh: 'TanH', window_data: 'WindowData',
};

export type CaffeNetVersion = 'V0' | 'V1' | 'V2';

/** How netron tells them apart: `layers` whose entries all carry a V0 `layer` → V0. */
export function netVersion(net: NetParameter): CaffeNetVersion {
  if (net.layers.length === 0) return 'V2';
  return net.layers.every((l) => l.layer !== undefined) ? 'V0' : 'V1';
}

/**
 * Upgrade `net` in place to `layer` entries and Input layers, and return it. Findings (the version
 * upgraded from, V0 padding layers folded into convolutions) go to `diagnostics`.
 */
export function upgradeNet(net: NetParameter, diagnostics: Diagnostic[] = []): NetParameter {
  if (net.layers.length > 0) {
    const version = netVersion(net);
    const upgraded: LayerParameter[] = [];
    let pendingPad: { top: string; pad: number } | undefined;
    for (const v1 of net.layers) {
      // V0 "padding" layers only feed a convolution; Caffe folds the pad into it.
      if (v1.layer?.type === 'padding') {
        pendingPad = { top: v1.top[0] ?? '', pad: v1.layer.pad };
        diagnostics.push({ level: 'info', code: 'caffe.v0_padding', message: `V0 padding layer '${v1.layer.name}' folded into the next convolution`, op: v1.layer.name });
        continue;
      }
      const layer = upgradeV1Layer(v1);
      if (pendingPad && layer.bottom[0] === pendingPad.top && layer.convolutionParam) {
        layer.convolutionParam.pad = [pendingPad.pad];
        layer.bottom[0] = net.layers.find((l) => l.top[0] === pendingPad!.top)?.bottom[0] ?? layer.bottom[0]!;
      }
      pendingPad = undefined;
      upgraded.push(layer);
    }
    net.layer = [...upgraded, ...net.layer];
    net.layers = [];
    diagnostics.push({ level: 'info', code: 'caffe.upgraded', message: `${version} net upgraded to the current layer format (${upgraded.length} layers)` });
  }
  upgradeNetInput(net, diagnostics);
  return net;
}

function upgradeNetInput(net: NetParameter, diagnostics: Diagnostic[]): void {
  if (net.input.length === 0) return;
  const inputs: LayerParameter[] = [];
  const byDim = net.inputDim.length > 0;
  for (const [i, name] of net.input.entries()) {
    let shape = net.inputShape[i];
    if (!shape && byDim) {
      const dims = net.inputDim.slice(i * 4, i * 4 + 4);
      if (dims.length === 4) shape = create(BlobShapeSchema, { dim: dims.map((d) => BigInt(d)) });
    }
    const layer = create(LayerParameterSchema, { name, type: 'Input', top: [name] });
    layer.inputParam = create(InputParameterSchema, { shape: shape ? [shape] : [] });
    if (!shape) diagnostics.push({ level: 'warning', code: 'caffe.input_without_shape', message: `net input '${name}' has no input_dim/input_shape`, tensor: name });
    inputs.push(layer);
  }
  net.layer = [...inputs, ...net.layer];
  net.input = [];
  net.inputDim = [];
  net.inputShape = [];
}

function upgradeV1Layer(v1: V1LayerParameter): LayerParameter {
  const out = create(LayerParameterSchema, {
    name: v1.name,
    type: V1_TYPE_NAMES[v1.type] ?? `V1Type${v1.type}`,
    bottom: [...v1.bottom],
    top: [...v1.top],
    blobs: v1.blobs,
    include: v1.include,
    exclude: v1.exclude,
    lossWeight: [...v1.lossWeight],
  });
  const nParams = Math.max(v1.param.length, v1.blobsLr.length, v1.weightDecay.length, v1.blobShareMode.length);
  for (let i = 0; i < nParams; i++) {
    const p = create(ParamSpecSchema, {});
    if (i < v1.param.length) p.name = v1.param[i]!;
    if (i < v1.blobsLr.length) p.lrMult = v1.blobsLr[i]!;
    if (i < v1.weightDecay.length) p.decayMult = v1.weightDecay[i]!;
    if (i < v1.blobShareMode.length) p.shareMode = v1.blobShareMode[i]! as number;
    out.param.push(p);
  }
  // The *_param messages have the same types in both layer forms, only other field numbers.
  const src = reflect(V1LayerParameterSchema, v1);
  const dst = reflect(LayerParameterSchema, out);
  for (const f of src.desc.fields) {
    if (!f.name.endsWith('_param') || f.fieldKind !== 'message' || !src.isSet(f)) continue;
    const target = dst.desc.fields.find((g) => g.name === f.name) as DescField | undefined;
    if (target && target.fieldKind === 'message') dst.set(target, src.get(f));
  }
  if (v1.layer) upgradeV0Layer(v1.layer, out);
  return out;
}

function upgradeV0Layer(v0: V0LayerParameter, out: LayerParameter): void {
  out.name = v0.name;
  out.type = V0_TYPE_NAMES[v0.type] ?? v0.type;
  const r = reflect(V0LayerParameterSchema, v0);
  const set = (name: string): boolean => {
    const f = V0LayerParameterSchema.fields.find((x) => x.name === name);
    return f !== undefined && r.isSet(f);
  };
  if (v0.blobs.length > 0) out.blobs = v0.blobs;
  if (v0.blobsLr.length > 0 || v0.weightDecay.length > 0) {
    out.param = [];
    for (let i = 0; i < Math.max(v0.blobsLr.length, v0.weightDecay.length); i++) {
      const p = create(ParamSpecSchema, {});
      if (i < v0.blobsLr.length) p.lrMult = v0.blobsLr[i]!;
      if (i < v0.weightDecay.length) p.decayMult = v0.weightDecay[i]!;
      out.param.push(p);
    }
  }
  switch (v0.type) {
    case 'conv': {
      const p = create(ConvolutionParameterSchema, {});
      if (set('num_output')) p.numOutput = v0.numOutput;
      if (set('biasterm')) p.biasTerm = v0.biasterm;
      if (set('pad')) p.pad = [v0.pad];
      if (set('kernelsize')) p.kernelSize = [v0.kernelsize];
      if (set('group')) p.group = v0.group;
      if (set('stride')) p.stride = [v0.stride];
      if (v0.weightFiller) p.weightFiller = v0.weightFiller;
      if (v0.biasFiller) p.biasFiller = v0.biasFiller;
      out.convolutionParam = p;
      break;
    }
    case 'innerproduct': {
      const p = create(InnerProductParameterSchema, {});
      if (set('num_output')) p.numOutput = v0.numOutput;
      if (set('biasterm')) p.biasTerm = v0.biasterm;
      if (v0.weightFiller) p.weightFiller = v0.weightFiller;
      if (v0.biasFiller) p.biasFiller = v0.biasFiller;
      out.innerProductParam = p;
      break;
    }
    case 'pool': {
      const p = create(PoolingParameterSchema, {});
      if (set('pool')) p.pool = v0.pool as number;
      if (set('kernelsize')) p.kernelSize = v0.kernelsize;
      if (set('stride')) p.stride = v0.stride;
      if (set('pad')) p.pad = v0.pad;
      out.poolingParam = p;
      break;
    }
    case 'dropout':
      out.dropoutParam = create(DropoutParameterSchema, set('dropout_ratio') ? { dropoutRatio: v0.dropoutRatio } : {});
      break;
    case 'lrn': {
      const p = create(LRNParameterSchema, {});
      if (set('local_size')) p.localSize = v0.localSize;
      if (set('alpha')) p.alpha = v0.alpha;
      if (set('beta')) p.beta = v0.beta;
      if (set('k')) p.k = v0.k;
      out.lrnParam = p;
      break;
    }
    case 'concat':
      out.concatParam = create(ConcatParameterSchema, set('concat_dim') ? { concatDim: v0.concatDim } : {});
      break;
    case 'data': {
      const p = create(DataParameterSchema, {});
      if (set('source')) p.source = v0.source;
      if (set('batchsize')) p.batchSize = v0.batchsize;
      if (set('rand_skip')) p.randSkip = v0.randSkip;
      out.dataParam = p;
      const t = create(TransformationParameterSchema, {});
      if (set('scale')) t.scale = v0.scale;
      if (set('meanfile')) t.meanFile = v0.meanfile;
      if (set('cropsize')) t.cropSize = v0.cropsize;
      if (set('mirror')) t.mirror = v0.mirror;
      out.transformParam = t;
      break;
    }
    default:
      break;
  }
}
