/**
 * Typed access to a node's attributes with ONNX defaults. A wrong attribute type is a malformed
 * model (E_MALFORMED naming node and attribute), not a silent default.
 */
import type { AttributeProto, NodeProto, TensorProto } from 'onnx-buf';
import { AttributeProto_AttributeType as AT } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export class Attrs {
  private readonly byName = new Map<string, AttributeProto>();

  constructor(private readonly node: NodeProto) {
    for (const a of node.attribute) this.byName.set(a.name, a);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private get(name: string, type: AT): AttributeProto | undefined {
    const a = this.byName.get(name);
    if (!a) return undefined;
    // Old exporters leave `type` unset (0); trust the populated field then.
    if (a.type !== AT.UNDEFINED && a.type !== type) {
      throw new ModelsmithError(ErrorCodes.MALFORMED, `attribute ${name} has type ${AT[a.type]}, expected ${AT[type]}`, {
        op: `${this.node.opType} ${this.node.name}`,
      });
    }
    return a;
  }

  int(name: string, def: number): number;
  int(name: string): number | undefined;
  int(name: string, def?: number): number | undefined {
    const a = this.get(name, AT.INT);
    return a ? Number(a.i) : def;
  }

  ints(name: string, def: number[]): number[];
  ints(name: string): number[] | undefined;
  ints(name: string, def?: number[]): number[] | undefined {
    const a = this.get(name, AT.INTS);
    return a ? a.ints.map(Number) : def;
  }

  float(name: string, def: number): number;
  float(name: string): number | undefined;
  float(name: string, def?: number): number | undefined {
    const a = this.get(name, AT.FLOAT);
    return a ? a.f : def;
  }

  floats(name: string): number[] | undefined {
    const a = this.get(name, AT.FLOATS);
    return a ? [...a.floats] : undefined;
  }

  string(name: string, def: string): string;
  string(name: string): string | undefined;
  string(name: string, def?: string): string | undefined {
    const a = this.get(name, AT.STRING);
    return a ? new TextDecoder().decode(a.s) : def;
  }

  tensor(name: string): TensorProto | undefined {
    return this.get(name, AT.TENSOR)?.t;
  }
}
