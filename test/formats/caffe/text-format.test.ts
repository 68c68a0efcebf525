/** The generic protobuf text-format parser, on Caffe's schema and on a map-bearing WKT (Struct). */
import { StructSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { BlobProtoSchema, NetParameterSchema, V1LayerParameter_LayerType } from '../../../src/formats/caffe/gen/caffe_pb.js';
import { parseCaffePrototxt } from '../../../src/formats/caffe/index.js';
import { parseFloatText, parseIntText, parseTextFormat } from '../../../src/formats/caffe/text-format.js';

function errorOf(f: () => unknown): ModelsmithError {
  try {
    f();
  } catch (e) {
    if (e instanceof ModelsmithError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('text format: syntax', () => {
  it('reads comments, nested messages in every bracket form, separators and repeated fields', () => {
    const { message: net, diagnostics } = parseTextFormat(NetParameterSchema, `
      # leading comment
      name: "n" # trailing comment
      input: "a"; input: 'b',
      input: ["c", "d"]
      input_shape { dim: 1 dim: [2, 3] }
      input_shape: < dim: 4 >
      layer: { name: "l1" type: "ReLU" bottom: "a" top: "a" relu_param { negative_slope: 0.5 } }
      layer [{ name: "l2" }, { name: "l3" }]
      layers { type: CONVOLUTION name: "v1" }
      layers { type: 14 }
    `);
    expect(diagnostics).toEqual([]);
    expect(net.name).toBe('n');
    expect(net.input).toEqual(['a', 'b', 'c', 'd']);
    expect(net.inputShape.map((s) => s.dim)).toEqual([[1n, 2n, 3n], [4n]]);
    expect(net.layer.map((l) => l.name)).toEqual(['l1', 'l2', 'l3']);
    expect(net.layer[0]!.reluParam!.negativeSlope).toBe(0.5);
    expect(net.layers.map((l) => l.type)).toEqual([V1LayerParameter_LayerType.CONVOLUTION, V1LayerParameter_LayerType.INNER_PRODUCT]);
    expect(parseTextFormat(NetParameterSchema, 'state { phase: 0 }').message.state!.phase).toBe(0);
  });

  it('decodes string escapes, both quote styles and adjacent literals', () => {
    const { message } = parseTextFormat(NetParameterSchema, String.raw`name: "a\n\t\\\"\x41\101\u00e9\U0001F600" 'q\'s' "-z"`);
    expect(message.name).toBe('a\n\t\\"AAé😀q\'s-z');
    const raw = parseTextFormat(NetParameterSchema, 'name: "h\\303\\251"').message.name;
    expect(raw).toBe('hé');
  });

  it('reads numbers in every notation and checks their range', () => {
    const { message: b } = parseTextFormat(BlobProtoSchema, `
      num: 0x10 channels: 010 height: -7 width: 0
      data: [1, -2.5, .5, 5., 1e3, 1.5E-2, 2f, 3.25F, inf, -Infinity, nan, 0x1F]
      shape { dim: 9223372036854775807 dim: -9223372036854775808 }
    `);
    expect([b.num, b.channels, b.height, b.width]).toEqual([16, 8, -7, 0]);
    expect(b.data.slice(0, 8)).toEqual([1, -2.5, 0.5, 5, 1000, 0.015, 2, 3.25]);
    expect(b.data[8]).toBe(Infinity);
    expect(b.data[9]).toBe(-Infinity);
    expect(Number.isNaN(b.data[10])).toBe(true);
    expect(b.data[11]).toBe(31);
    expect(b.shape!.dim).toEqual([2n ** 63n - 1n, -(2n ** 63n)]);
    expect(parseIntText('0755')).toBe(493n);
    expect(parseIntText('1.5')).toBeUndefined();
    expect(parseFloatText('1e')).toBeUndefined();
  });

  it('reads booleans in all spellings', () => {
    for (const [t, v] of [['true', true], ['True', true], ['t', true], ['1', true], ['false', false], ['False', false], ['f', false], ['0', false]] as const) {
      expect(parseTextFormat(NetParameterSchema, `force_backward: ${t}`).message.forceBackward).toBe(v);
    }
  });

  it('reads map fields (Struct) with key/value entries', () => {
    const { message } = parseTextFormat(StructSchema, 'fields { key: "a" value { number_value: 2 } } fields { key: "b" value { string_value: "x" } }');
    expect(message.fields['a']!.kind).toEqual({ case: 'numberValue', value: 2 });
    expect(message.fields['b']!.kind).toEqual({ case: 'stringValue', value: 'x' });
  });

  it('skips unknown fields, blocks, lists and [extensions] with one diagnostic per name', () => {
    const { message, diagnostics } = parseTextFormat(NetParameterSchema, `
      name: "n"
      fork_option: 3 fork_option: -2.5
      fork_block { a: 1 b { c: "d" } }
      fork_list: [1, 2, 3]
      fork_msgs: [{ a: 1 }, < b: 2 >]
      [my.ext] { x: 1 }
      layer { name: "l" type: "PriorBox" prior_box_param { min_size: 30 aspect_ratio: 2 } }
    `);
    expect(message.name).toBe('n');
    expect(message.layer[0]!.type).toBe('PriorBox');
    const names = diagnostics.map((d) => d.message.match(/'([^']+)'/)![1]);
    expect(names).toEqual(['NetParameter.fork_option', 'NetParameter.fork_block', 'NetParameter.fork_list', 'NetParameter.fork_msgs', '[my.ext]', 'LayerParameter.prior_box_param']);
    expect(diagnostics[0]!.message).toContain('2 time(s)');
    expect(diagnostics[0]!.message).toContain('3:7');
  });

  it('warns when a singular field is repeated (the last value wins)', () => {
    const { message, diagnostics } = parseTextFormat(NetParameterSchema, 'name: "a" name: "b"');
    expect(message.name).toBe('b');
    expect(diagnostics.map((d) => d.code)).toEqual(['textformat.repeated_singular']);
  });
});

describe('text format: errors carry line:column', () => {
  const cases: [string, string, string][] = [
    ['layer { name: "a"\n', '2:1', 'unexpected end of input'],
    ['name "x"', '1:6', 'expected ":"'],
    ['\n\n   name: "abc', '3:10', 'unterminated string'],
    ['name: "a\\qb"', '1:9', 'unknown escape'],
    ['input_dim: 99999999999', '1:12', 'out of range'],
    ['layer { convolution_param { num_output: -1 } }', '1:42', 'out of range'],
    ['input_dim: 1.5', '1:12', 'expects an integer'],
    ['force_backward: yes', '1:17', 'expects a bool'],
    ['layers { type: NOT_A_TYPE }', '1:16', "unknown value 'NOT_A_TYPE'"],
    ['layers { type: 999 }', '1:16', '999 is not a value of enum LayerType'],
    ['layer { pooling_param { pool: -1 } }', '1:32', '-1 is not a value of enum PoolMethod'],
    ['state { phase: 5 }', '1:16', '5 is not a value of enum Phase'],
    ['name: "a" }', '1:11', 'expected a field name'],
    ['name: "a" @', '1:11', 'unexpected character'],
    ['layer { name: "a" ]', '1:19', 'expected a field name'],
    ['input: "a" "b" ["c"]', '1:21', 'expected ":" or "{"'],
    ['name: ["a"]', '1:1', 'not repeated'],
    ['layer: 3', '1:8', 'expected "{" or "<"'],
    ['unknown { a: 1 ', '1:16', 'unexpected end of input inside a block'],
  ];
  for (const [text, where, what] of cases) {
    it(`${JSON.stringify(text)} → E_MALFORMED at ${where}`, () => {
      const e = errorOf(() => parseCaffePrototxt(text, { path: 'bad.prototxt' }));
      expect(e.code).toBe(ErrorCodes.MALFORMED);
      expect(e.message).toContain(`${where}: `);
      expect(e.message).toContain(what);
      expect(e.message).toContain('bad.prototxt');
    });
  }

  it('nesting deeper than the limit → E_LIMIT, for known and unknown blocks, without recursion', () => {
    const deep = 'fork { '.repeat(50_000) + '}'.repeat(50_000);
    const e = errorOf(() => parseTextFormat(NetParameterSchema, deep));
    expect(e.code).toBe(ErrorCodes.LIMIT);
    expect(e.message).toMatch(/^E_LIMIT: 1:\d+: message nesting deeper than 100/);
    const known = 'state { '.repeat(1) + '}';
    expect(parseTextFormat(NetParameterSchema, known).message.state).toBeDefined();
    const e2 = errorOf(() => parseTextFormat(NetParameterSchema, 'layer { name: "a" }', { maxDepth: 1 }));
    expect(e2.code).toBe(ErrorCodes.LIMIT);
  });
});
