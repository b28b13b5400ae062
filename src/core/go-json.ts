/**
 * JSON read the way Go's encoding/json (Go 1.24, as kubelet 1.34.2 is built)
 * reads it, for the few Go types the kubelet and the API server decode
 * credentials into. `JSON.parse` differs from Go in ways that change results:
 *
 * - Go applies **every** occurrence of a duplicate key, in order, to its
 *   target (`{"a":1,"a":null}` decodes `a` twice; `null` leaves a string
 *   field as it was); `JSON.parse` keeps only the last value.
 * - Go rejects nesting deeper than 10,000 levels (`exceeded max depth`)
 *   anywhere in the input, even inside a field it then ignores.
 * - Go turns a lone surrogate escape (`"\ud800"`) into U+FFFD.
 * - Go checks the syntax of the whole input before decoding, so a syntax
 *   error anywhere wins over a type error earlier in the text.
 *
 * `decodeGoJson` is a single iterative pass (an explicit stack, no recursion
 * on input depth) that calls a **target** for every value, the way Go's
 * decoder walks its reflect target: objects and arrays ask their target for
 * the target of each member or element, scalars are handed over as they are
 * read. Memory stays proportional to the input: strings without escapes are
 * slices of it, and nothing else is built unless a target builds it.
 */
import { PullkeeperError } from './errors.js';

/** encoding/json's `maxNestingDepth`: 10,000 nested objects/arrays are fine, one more is not. */
export const GO_JSON_MAX_DEPTH = 10_000;

/** The kind of a scalar JSON value. */
export type GoJsonScalarKind = 'string' | 'number' | 'true' | 'false' | 'null';

/** Where a decoded value goes. Throwing from any method is a decode error (see `decodeGoJson`). */
export interface GoJsonTarget {
  /** A scalar value: the decoded string, the number as written, or the literal. */
  scalar(kind: GoJsonScalarKind, text: string): void;
  /** An object begins; the returned target receives its members. */
  object(): GoJsonObjectTarget;
  /** An array begins; the returned target receives its elements. */
  array(): GoJsonArrayTarget;
}

export interface GoJsonObjectTarget {
  /** Target for the value of the member `key` (called once per occurrence, in order). */
  member(key: string): GoJsonTarget;
  /** The object is complete. */
  end(): void;
}

export interface GoJsonArrayTarget {
  /** Target for the next element. */
  element(): GoJsonTarget;
  /** The array is complete. */
  end(): void;
}

/** Accepts and discards any value, as Go does for fields a struct does not have. */
export const SKIP_JSON: GoJsonTarget = {
  scalar() {},
  object: () => SKIP_OBJECT,
  array: () => SKIP_ARRAY,
};
const SKIP_OBJECT: GoJsonObjectTarget = { member: () => SKIP_JSON, end() {} };
const SKIP_ARRAY: GoJsonArrayTarget = { element: () => SKIP_JSON, end() {} };

/**
 * The input is not JSON as Go's scanner accepts it. The message never quotes
 * the input (it may hold credentials); `offset` is the index (UTF-16 code
 * units) where the scanner stopped.
 */
export class GoJsonSyntaxError extends PullkeeperError {
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

/** How Go names the JSON type of a scalar in its errors (`string`, `number`, `bool`, `null`). */
export function goJsonKindName(kind: GoJsonScalarKind | 'object' | 'array'): string {
  return kind === 'true' || kind === 'false' ? 'bool' : kind;
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// A run of string characters that need no attention: no quote, backslash,
// control character or surrogate half.
const PLAIN_RUN_RE = /[^"\\\x00-\x1f\ud800-\udfff]*/y;

const CH_TAB = 0x09;
const CH_NEWLINE = 0x0a;
const CH_RETURN = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_DIGIT_0 = 0x30;
const CH_DIGIT_9 = 0x39;
const CH_COLON = 0x3a;
const CH_OPEN_BRACKET = 0x5b;
const CH_BACKSLASH = 0x5c;
const CH_CLOSE_BRACKET = 0x5d;
const CH_OPEN_BRACE = 0x7b;
const CH_CLOSE_BRACE = 0x7d;

function hex4(text: string, at: number): number {
  if (at + 4 > text.length) return -1;
  let v = 0;
  for (let k = at; k < at + 4; k++) {
    const c = text.charCodeAt(k);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
    else return -1;
    v = (v << 4) | d;
  }
  return v;
}

const SIMPLE_ESCAPES: Readonly<Record<number, number>> = {
  34: 0x22, // \"
  92: 0x5c, // \\
  47: 0x2f, // \/
  98: 0x08, // \b
  102: 0x0c, // \f
  110: 0x0a, // \n
  114: 0x0d, // \r
  116: 0x09, // \t
};

/** Growable UTF-16 buffer for strings with escapes (memory: 2 bytes per output unit). */
class Utf16Builder {
  private buf = new Uint16Array(256);
  private len = 0;

  push(unit: number): void {
    if (this.len === this.buf.length) this.grow(1);
    this.buf[this.len++] = unit;
  }

  pushRange(text: string, from: number, to: number): void {
    const n = to - from;
    if (this.len + n > this.buf.length) this.grow(n);
    const buf = this.buf;
    let at = this.len;
    for (let k = from; k < to; k++) buf[at++] = text.charCodeAt(k);
    this.len = at;
  }

  private grow(extra: number): void {
    const next = new Uint16Array(Math.max(this.buf.length * 2, this.len + extra));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  toString(): string {
    const parts: string[] = [];
    const CHUNK = 8192;
    for (let k = 0; k < this.len; k += CHUNK) {
      parts.push(String.fromCharCode(...this.buf.subarray(k, Math.min(k + CHUNK, this.len))));
    }
    return parts.join('');
  }
}

/** Thrown inside the scanner; converted to GoJsonSyntaxError at the top. */
class Stop {
  constructor(
    readonly message: string,
    readonly offset: number,
  ) {}
}

function isWhitespace(c: number): boolean {
  return c === CH_SPACE || c === CH_NEWLINE || c === CH_RETURN || c === CH_TAB;
}

function skipWhitespace(text: string, from: number): number {
  let i = from;
  while (i < text.length && isWhitespace(text.charCodeAt(i))) i++;
  return i;
}

/**
 * Reads the string whose opening quote is at `at`; returns the decoded value
 * and the index after the closing quote. Escapes as Go's `unquote`: a `\u`
 * surrogate pair becomes one character, a lone surrogate U+FFFD. A raw lone
 * surrogate half in the JavaScript string (invalid UTF-8 to Go) is U+FFFD too.
 */
function readString(text: string, at: number): [string, number] {
  const n = text.length;
  let i = at + 1;
  let start = i;
  let built: Utf16Builder | undefined;
  for (;;) {
    PLAIN_RUN_RE.lastIndex = i;
    PLAIN_RUN_RE.test(text);
    i = PLAIN_RUN_RE.lastIndex;
    if (i >= n) throw new Stop('unexpected end of JSON input', n);
    const c = text.charCodeAt(i);
    if (c === CH_QUOTE) {
      if (built === undefined) return [text.slice(start, i), i + 1];
      built.pushRange(text, start, i);
      return [built.toString(), i + 1];
    }
    if (c < 0x20) throw new Stop(`invalid control character in string literal at character ${i}`, i);
    built ??= new Utf16Builder();
    built.pushRange(text, start, i);
    if (c !== CH_BACKSLASH) {
      // A raw surrogate half: a valid pair is kept, a lone half becomes U+FFFD.
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        built.push(c);
        built.push(next);
        i += 2;
      } else {
        built.push(0xfffd);
        i += 1;
      }
      start = i;
      continue;
    }
    if (i + 1 >= n) throw new Stop('unexpected end of JSON input', n);
    const e = text.charCodeAt(i + 1);
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      built.push(simple);
      i += 2;
    } else if (e === 0x75) {
      const unit = hex4(text, i + 2);
      if (unit < 0) {
        if (i + 6 > n && /^[0-9a-fA-F]*$/.test(text.slice(i + 2))) {
          throw new Stop('unexpected end of JSON input', n);
        }
        throw new Stop(`invalid escape in string literal at character ${i}`, i);
      }
      i += 6;
      if (unit >= 0xd800 && unit <= 0xdfff) {
        // utf16.DecodeRune with the following \uXXXX, if any.
        const low =
          text.charCodeAt(i) === CH_BACKSLASH && text.charCodeAt(i + 1) === 0x75 ? hex4(text, i + 2) : -1;
        if (unit <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
          built.push(unit);
          built.push(low);
          i += 6;
        } else {
          built.push(0xfffd);
        }
      } else {
        built.push(unit);
      }
    } else {
      throw new Stop(`invalid escape in string literal at character ${i}`, i);
    }
    start = i;
  }
}

/** Reads `true`, `false` or `null` at `at`; returns its kind and the index after it. */
function readLiteral(text: string, at: number): [GoJsonScalarKind, number] {
  const c = text.charCodeAt(at);
  const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null';
  for (let k = 0; k < word.length; k++) {
    if (at + k >= text.length) throw new Stop('unexpected end of JSON input', text.length);
    if (text.charCodeAt(at + k) !== word.charCodeAt(k)) {
      throw new Stop(`invalid character in literal at character ${at + k}`, at + k);
    }
  }
  return [word as GoJsonScalarKind, at + word.length];
}

/**
 * Decodes `text` into `root` with Go's encoding/json semantics (see the file
 * comment). Go's `Unmarshal` order of errors is kept: a syntax error anywhere
 * in the input (including `exceeded max depth` and trailing data) is thrown
 * as a `GoJsonSyntaxError`; otherwise the first error a target threw is
 * rethrown. After a target throws, the rest of the input is only checked for
 * syntax.
 *
 *   decodeGoJson('{"a":"x","a":null}', target)   // target sees member a twice
 *   decodeGoJson('[[[…10,001 levels…]]]', SKIP_JSON)
 *   // throws GoJsonSyntaxError: exceeded max depth
 */
export function decodeGoJson(text: string, root: GoJsonTarget): void {
  let targetError: { error: unknown } | undefined;
  const guard = <T>(call: () => T, fallback: T): T => {
    if (targetError !== undefined) return fallback;
    try {
      return call();
    } catch (error) {
      targetError = { error };
      return fallback;
    }
  };

  // The stack: one entry per open object (GoJsonObjectTarget) or array (GoJsonArrayTarget).
  const objects: Array<GoJsonObjectTarget | undefined> = [];
  const arrays: Array<GoJsonArrayTarget | undefined> = [];
  const n = text.length;
  let i = 0;
  let target: GoJsonTarget = root;

  try {
    value: for (;;) {
      i = skipWhitespace(text, i);
      if (i >= n) throw new Stop('unexpected end of JSON input', n);
      const c = text.charCodeAt(i);
      const t = targetError === undefined ? target : SKIP_JSON;
      if (c === CH_OPEN_BRACE || c === CH_OPEN_BRACKET) {
        if (objects.length + 1 > GO_JSON_MAX_DEPTH) throw new Stop('exceeded max depth', i);
        i = skipWhitespace(text, i + 1);
        if (c === CH_OPEN_BRACE) {
          const obj = guard(() => t.object(), SKIP_OBJECT);
          objects.push(obj);
          arrays.push(undefined);
          if (i < n && text.charCodeAt(i) === CH_CLOSE_BRACE) {
            i++;
          } else {
            target = readMember(obj);
            continue;
          }
        } else {
          const arr = guard(() => t.array(), SKIP_ARRAY);
          objects.push(undefined);
          arrays.push(arr);
          if (i < n && text.charCodeAt(i) === CH_CLOSE_BRACKET) {
            i++;
          } else {
            target = guard(() => arr.element(), SKIP_JSON);
            continue;
          }
        }
        // An empty container: close it right away.
        closeTop();
      } else if (c === CH_QUOTE) {
        const [s, next] = readString(text, i);
        i = next;
        guard(() => t.scalar('string', s), undefined);
      } else if (c === CH_MINUS || (c >= CH_DIGIT_0 && c <= CH_DIGIT_9)) {
        NUMBER_RE.lastIndex = i;
        if (!NUMBER_RE.test(text)) {
          if (i + 1 >= n) throw new Stop('unexpected end of JSON input', n);
          throw new Stop(`invalid character in numeric literal at character ${i + 1}`, i + 1);
        }
        const end = NUMBER_RE.lastIndex;
        // "1." or "1e" (cut short) and "1-" are not numbers.
        if (end < n && /[.eE+-]/.test(text[end] ?? '')) {
          throw new Stop(`invalid character in numeric literal at character ${end}`, end);
        }
        const numberText = text.slice(i, end);
        i = end;
        guard(() => t.scalar('number', numberText), undefined);
      } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
        const [kind, next] = readLiteral(text, i);
        i = next;
        guard(() => t.scalar(kind, kind), undefined);
      } else {
        throw new Stop(`invalid character looking for beginning of value at character ${i}`, i);
      }

      // After a value: a separator, a closing bracket, or the end of input.
      for (;;) {
        i = skipWhitespace(text, i);
        const depth = objects.length;
        if (depth === 0) {
          if (i < n) throw new Stop(`invalid character after top-level value at character ${i}`, i);
          break value;
        }
        if (i >= n) throw new Stop('unexpected end of JSON input', n);
        const d = text.charCodeAt(i);
        const obj = objects[depth - 1];
        if (obj !== undefined) {
          if (d === CH_COMMA) {
            i = skipWhitespace(text, i + 1);
            target = readMember(obj);
            continue value;
          }
          if (d !== CH_CLOSE_BRACE) {
            throw new Stop(`invalid character after object key:value pair at character ${i}`, i);
          }
        } else {
          if (d === CH_COMMA) {
            i++;
            const arr = arrays[depth - 1]!;
            target = guard(() => arr.element(), SKIP_JSON);
            continue value;
          }
          if (d !== CH_CLOSE_BRACKET)
            throw new Stop(`invalid character after array element at character ${i}`, i);
        }
        i++;
        closeTop();
      }
    }
  } catch (err) {
    if (err instanceof Stop) throw new GoJsonSyntaxError(err.message, err.offset);
    throw err;
  }
  if (targetError !== undefined) throw targetError.error;

  /** Reads `"key":` at `i` (whitespace already skipped) and returns the member's target. */
  function readMember(obj: GoJsonObjectTarget): GoJsonTarget {
    if (i >= n) throw new Stop('unexpected end of JSON input', n);
    if (text.charCodeAt(i) !== CH_QUOTE) {
      throw new Stop(`invalid character looking for beginning of object key string at character ${i}`, i);
    }
    const [key, next] = readString(text, i);
    i = skipWhitespace(text, next);
    if (i >= n) throw new Stop('unexpected end of JSON input', n);
    if (text.charCodeAt(i) !== CH_COLON)
      throw new Stop(`invalid character after object key at character ${i}`, i);
    i++;
    return guard(() => obj.member(key), SKIP_JSON);
  }

  function closeTop(): void {
    const obj = objects.pop();
    const arr = arrays.pop();
    if (obj !== undefined) guard(() => obj.end(), undefined);
    else if (arr !== undefined) guard(() => arr.end(), undefined);
  }
}
