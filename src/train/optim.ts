/**
 * Optimisers updating the engine's parameters in place, with torch.optim's update rules (so a step
 * matches torch on the same params and grads): SGD with momentum/dampening/Nesterov and L2 weight
 * decay; Adam (L2 decay added to the gradient) and AdamW (decoupled decay), both bias-corrected.
 * State (momentum buffers, moments) is float32 like torch's; the arithmetic runs in float64 and is
 * rounded on store, which stays within float32 rounding of torch's results.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { FValue } from '../engine/types.js';
import { applyMask, type Masks } from './masks.js';

export interface Optimizer {
  /** Learning rate; a schedule may change it between steps. */
  lr: number;
  /** Pruned weights by parameter name; masked entries stay zero through every step. */
  readonly masks: Masks;
  /** One update of every parameter that has a gradient (parameters without one are left alone, as torch does). */
  step(params: Map<string, FValue>, grads: Map<string, FValue>): void;
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** AdamW: decay applied to the weight directly instead of through the gradient. */
  decoupled?: boolean;
}

export type OptimizerSpec = ({ type: 'sgd' } & SgdOptions) | ({ type: 'adam' | 'adamw' } & AdamOptions);

function checkNumber(name: string, v: number, lo: number, hi = Infinity): void {
  if (!(v >= lo && v <= hi) || Number.isNaN(v)) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `optimizer: ${name} must be in [${lo}, ${hi}], got ${v}`);
  }
}

function checkGrad(name: string, p: FValue, g: FValue): void {
  if (g.data.length !== p.data.length) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `gradient has ${g.data.length} elements for a parameter of ${p.data.length}`, { tensor: name });
  }
}

/** The gradient with the mask applied (a copy only when masked, so the caller's grads are not edited). */
function maskedGrad(masks: Masks, name: string, g: FValue): Float32Array {
  const m = masks.get(name);
  if (!m) return g.data;
  const out = Float32Array.from(g.data);
  applyMask(out, m, name);
  return out;
}

export class Sgd implements Optimizer {
  lr: number;
  readonly masks: Masks;
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly weightDecay: number;
  private readonly nesterov: boolean;
  private readonly buffers = new Map<string, Float32Array>();

  constructor(opts: SgdOptions, masks: Masks = new Map()) {
    checkNumber('lr', opts.lr, 0);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    checkNumber('momentum', this.momentum, 0);
    checkNumber('dampening', this.dampening, 0, 1);
    checkNumber('weightDecay', this.weightDecay, 0);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, 'optimizer: Nesterov momentum requires momentum > 0 and zero dampening');
    }
    this.masks = masks;
  }

  step(params: Map<string, FValue>, grads: Map<string, FValue>): void {
    for (const [name, p] of params) {
      const gv = grads.get(name);
      if (!gv) continue;
      checkGrad(name, p, gv);
      const g = maskedGrad(this.masks, name, gv);
      const w = p.data;
      let buf = this.buffers.get(name);
      const first = !buf && this.momentum !== 0;
      if (first) { buf = new Float32Array(w.length); this.buffers.set(name, buf); }
      for (let i = 0; i < w.length; i++) {
        let d = g[i]! + this.weightDecay * w[i]!;
        if (buf) {
          // torch initialises the buffer with the first gradient (no dampening on step 1)
          const b = first ? d : this.momentum * buf[i]! + (1 - this.dampening) * d;
          buf[i] = b;
          d = this.nesterov ? d + this.momentum * buf[i]! : buf[i]!;
        }
        w[i] = w[i]! - this.lr * d;
      }
      const m = this.masks.get(name);
      if (m) applyMask(w, m, name);
    }
  }
}

export class Adam implements Optimizer {
  lr: number;
  readonly masks: Masks;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly decoupled: boolean;
  private readonly state = new Map<string, { m: Float32Array; v: Float32Array; t: number }>();

  constructor(opts: AdamOptions = {}, masks: Masks = new Map()) {
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.decoupled = opts.decoupled ?? false;
    // torch's AdamW defaults weight_decay to 0.01, Adam to 0
    this.weightDecay = opts.weightDecay ?? (this.decoupled ? 1e-2 : 0);
    checkNumber('lr', this.lr, 0);
    checkNumber('beta1', this.beta1, 0, 1 - Number.EPSILON);
    checkNumber('beta2', this.beta2, 0, 1 - Number.EPSILON);
    checkNumber('eps', this.eps, 0);
    checkNumber('weightDecay', this.weightDecay, 0);
    this.masks = masks;
  }

  step(params: Map<string, FValue>, grads: Map<string, FValue>): void {
    for (const [name, p] of params) {
      const gv = grads.get(name);
      if (!gv) continue;
      checkGrad(name, p, gv);
      const g = maskedGrad(this.masks, name, gv);
      const w = p.data;
      let s = this.state.get(name);
      if (!s) { s = { m: new Float32Array(w.length), v: new Float32Array(w.length), t: 0 }; this.state.set(name, s); }
      s.t++;
      const bc1 = 1 - Math.pow(this.beta1, s.t);
      const bc2 = Math.sqrt(1 - Math.pow(this.beta2, s.t));
      const stepSize = this.lr / bc1;
      const decay = this.decoupled ? 1 - this.lr * this.weightDecay : 1;
      const l2 = this.decoupled ? 0 : this.weightDecay;
      const { m, v } = s;
      for (let i = 0; i < w.length; i++) {
        const wi = w[i]! * decay;
        const gi = g[i]! + l2 * w[i]!;
        m[i] = this.beta1 * m[i]! + (1 - this.beta1) * gi;
        v[i] = this.beta2 * v[i]! + (1 - this.beta2) * gi * gi;
        w[i] = wi - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / bc2 + this.eps);
      }
      const mk = this.masks.get(name);
      if (mk) applyMask(w, mk, name);
    }
  }
}

/** An optimiser from a JSON-able spec (CLI / recipes). */
export function createOptimizer(spec: OptimizerSpec, masks?: Masks): Optimizer {
  switch (spec.type) {
    case 'sgd': return new Sgd(spec, masks);
    case 'adam': return new Adam({ ...spec, decoupled: false }, masks);
    case 'adamw': return new Adam({ ...spec, decoupled: true }, masks);
    default:
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `optimizer type ${(spec as { type: unknown }).type} (supported: sgd, adam, adamw)`);
  }
}
