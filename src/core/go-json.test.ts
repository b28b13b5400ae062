import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeGoJson,
  GO_JSON_MAX_DEPTH,
  type GoJsonArrayTarget,
  type GoJsonObjectTarget,
  GoJsonSyntaxError,
  type GoJsonTarget,
  SKIP_JSON,
} from './go-json.js';

/** Records every event as a flat list, to show what a Go decoder would see. */
function recorder(): { events: string[]; target: GoJsonTarget } {
  const events: string[] = [];
  const target: GoJsonTarget = {
    scalar(kind, text) {
      events.push(kind === 'string' ? `string:${JSON.stringify(text)}` : `${kind}:${text}`);
    },
    object(): GoJsonObjectTarget {
      events.push('{');
      return {
        member(key) {
          events.push(`key:${JSON.stringify(key)}`);
          return target;
        },
        end() {
          events.push('}');
        },
      };
    },
    array(): GoJsonArrayTarget {
      events.push('[');
      return {
        element: () => target,
        end() {
          events.push(']');
        },
      };
    },
  };
  return { events, target };
}

function events(text: string): string[] {
  const r = recorder();
  decodeGoJson(text, r.target);
  return r.events;
}

describe('decodeGoJson: values and events', () => {
  const cases: Array<{ name: string; text: string; want: string[] }> = [
    { name: 'null', text: 'null', want: ['null:null'] },
    {
      name: 'literals and numbers',
      text: '[true,false,-0.5e+3,0]',
      want: ['[', 'true:true', 'false:false', 'number:-0.5e+3', 'number:0', ']'],
    },
    {
      name: 'whitespace everywhere',
      text: ' \t\r\n{ "a" : [ ] , "b" : { } }\n',
      want: ['{', 'key:"a"', '[', ']', 'key:"b"', '{', '}', '}'],
    },
    {
      name: 'duplicate keys: every occurrence, in order (JSON.parse keeps only the last)',
      text: '{"username":"u","username":null}',
      want: ['{', 'key:"username"', 'string:"u"', 'key:"username"', 'null:null', '}'],
    },
    {
      name: 'escapes',
      text: '"a\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041"',
      want: [`string:${JSON.stringify('a"\\/\b\f\n\r\tA')}`],
    },
    { name: 'lone surrogate escape decodes to U+FFFD', text: '"\\ud800"', want: ['string:"\ufffd"'] },
    { name: 'lone low surrogate escape decodes to U+FFFD', text: '"x\\udc00y"', want: ['string:"x\ufffdy"'] },
    {
      name: 'surrogate pair escape decodes to one character',
      text: '"\\ud83d\\ude00"',
      want: ['string:"😀"'],
    },
    {
      name: 'high surrogate then a non-surrogate escape: U+FFFD, then the escape',
      text: '"\\ud800\\u0041"',
      want: ['string:"\ufffdA"'],
    },
    { name: 'two high surrogates: two U+FFFD', text: '"\\ud800\\ud800"', want: ['string:"\ufffd\ufffd"'] },
    { name: 'raw non-ASCII and emoji kept', text: '"é😀"', want: ['string:"é😀"'] },
    {
      name: 'raw lone surrogate (invalid UTF-8 to Go) is U+FFFD',
      text: '"a\ud800b"',
      want: ['string:"a\ufffdb"'],
    },
    { name: 'escaped key', text: '{"\\u0061uths":1}', want: ['{', 'key:"auths"', 'number:1', '}'] },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(events(c.text), c.want));
});

describe('decodeGoJson: syntax errors (Go scanner)', () => {
  const cases: Array<{ name: string; text: string; message: RegExp }> = [
    { name: 'empty input', text: '', message: /^unexpected end of JSON input$/ },
    { name: 'whitespace only', text: ' \n', message: /^unexpected end of JSON input$/ },
    { name: 'truncated object', text: '{"a":', message: /^unexpected end of JSON input$/ },
    { name: 'truncated string', text: '"abc', message: /^unexpected end of JSON input$/ },
    { name: 'trailing comma in object', text: '{"a":1,}', message: /object key string/ },
    { name: 'trailing comma in array', text: '[1,]', message: /beginning of value/ },
    { name: 'trailing data', text: '{} {}', message: /after top-level value/ },
    { name: 'leading zero', text: '01', message: /after top-level value/ },
    { name: 'bare minus', text: '-', message: /unexpected end/ },
    { name: 'number cut short', text: '[1.]', message: /numeric literal/ },
    { name: 'plus sign', text: '+1', message: /beginning of value/ },
    { name: 'single quotes', text: "{'a':1}", message: /object key string/ },
    { name: 'control character in string', text: '"a\nb"', message: /control character/ },
    { name: 'bad escape', text: '"\\x41"', message: /invalid escape/ },
    { name: 'short \\u escape', text: '"\\u12"', message: /invalid escape/ },
    { name: 'byte order mark', text: '\ufeff{}', message: /beginning of value/ },
    { name: 'NaN', text: 'NaN', message: /beginning of value/ },
    { name: 'misspelled literal', text: 'nul', message: /unexpected end/ },
    { name: 'literal with junk', text: 'trux', message: /literal/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.throws(
        () => decodeGoJson(c.text, SKIP_JSON),
        (err: unknown) => err instanceof GoJsonSyntaxError && c.message.test(err.message),
      );
    });
  }
});

describe('decodeGoJson: depth (maxNestingDepth 10000), without recursion', () => {
  const nest = (levels: number, open = '[', close = ']'): string =>
    open.repeat(levels) + close.repeat(levels);
  test('10,000 nested arrays are fine', () => decodeGoJson(nest(GO_JSON_MAX_DEPTH), SKIP_JSON));
  test('10,000 nested objects are fine', () => {
    decodeGoJson(`${'{"a":'.repeat(GO_JSON_MAX_DEPTH - 1)}{}${'}'.repeat(GO_JSON_MAX_DEPTH - 1)}`, SKIP_JSON);
  });
  test('10,001 nested arrays: exceeded max depth', () => {
    assert.throws(() => decodeGoJson(nest(GO_JSON_MAX_DEPTH + 1), SKIP_JSON), {
      name: 'GoJsonSyntaxError',
      message: 'exceeded max depth',
    });
  });
  test('a million levels: exceeded max depth, no stack overflow', () => {
    assert.throws(() => decodeGoJson(nest(1_000_000), SKIP_JSON), { message: 'exceeded max depth' });
  });
  test('depth counts mixed objects and arrays', () => {
    const text = `${'[{"k":'.repeat(5000)}[]${'}]'.repeat(5000)}`;
    assert.throws(() => decodeGoJson(text, SKIP_JSON), { message: 'exceeded max depth' });
  });
});

describe('decodeGoJson: error order (Go checks syntax before decoding)', () => {
  const failing: GoJsonTarget = {
    scalar() {
      throw new Error('type error');
    },
    object: () => ({ member: () => failing, end() {} }),
    array: () => ({ element: () => failing, end() {} }),
  };
  test('a type error is reported when the syntax is fine', () => {
    assert.throws(() => decodeGoJson('{"a":1,"b":2}', failing), { message: 'type error' });
  });
  test('a syntax error later in the text wins over an earlier type error', () => {
    assert.throws(() => decodeGoJson('{"a":1,"b":}', failing), GoJsonSyntaxError);
  });
  test('depth later in the text wins over an earlier type error', () => {
    assert.throws(() => decodeGoJson(`{"a":1,"b":${'['.repeat(10_001)}}`, failing), {
      message: 'exceeded max depth',
    });
  });
  test('after a type error, later targets are not called', () => {
    let calls = 0;
    const counting: GoJsonTarget = {
      scalar() {
        calls++;
        throw new Error('first');
      },
      object: () => ({ member: () => counting, end() {} }),
      array: () => ({ element: () => counting, end() {} }),
    };
    assert.throws(() => decodeGoJson('[1,2,3]', counting), { message: 'first' });
    assert.equal(calls, 1);
  });
});

describe('decodeGoJson: strings with many escapes stay proportional', () => {
  test('a long escaped string decodes fully', () => {
    const r = recorder();
    decodeGoJson(`"${'\\n'.repeat(100_000)}"`, r.target);
    assert.equal(r.events[0], `string:${JSON.stringify('\n'.repeat(100_000))}`);
  });
});
