/**
 * Docker credential files the way the kubelet reads them, and the writers
 * pullkeeper needs on top.
 *
 * Reading follows kubernetes pkg/credentialprovider/config.go:
 *
 *   config.json  {"auths": {"<registry>": {"username": "…", "password": "…"}}, "HttpHeaders": {…}}
 *   .dockercfg   {"<registry>": {"username": "…", "password": "…", "email": "…"}}   (legacy, bare map)
 *
 * An entry's `auth` (base64 of `username:password`) overrides `username` and
 * `password`. Fields the kubelet has no use for are ignored exactly as it
 * ignores them: `identitytoken`, `registrytoken`, `serveraddress` in entries,
 * and `credsStore`, `credHelpers` and every other unknown top-level field in
 * config.json. `HttpHeaders` is decoded (so a wrongly typed one fails the file,
 * as in Go) but never used.
 *
 * Go's encoding/json details that change which files are valid are kept:
 * field names match case-insensitively (`"Auths"`, `"Username"` work), a JSON
 * `null` leaves a field unset, and a field of the wrong type fails the whole
 * file.
 */
import { Buffer } from 'node:buffer';
import { PullkeeperError } from './errors.js';
import {
  decodeGoJson,
  type GoJsonArrayTarget,
  type GoJsonObjectTarget,
  type GoJsonScalarKind,
  GoJsonSyntaxError,
  type GoJsonTarget,
  goJsonKindName,
  SKIP_JSON,
} from './go-json.js';

/** One registry's credentials. `email` is carried along but never used for pulls. */
export interface DockerAuthEntry {
  username: string;
  password: string;
  email?: string;
}

/** Registry key (as written in the file, e.g. `https://index.docker.io/v1/`) to credentials. */
export interface DockerConfig {
  auths: Record<string, DockerAuthEntry>;
}

/** The two on-disk formats: `config.json` has an `auths` wrapper, `dockercfg` is the bare map. */
export type DockerConfigFormat = 'config.json' | 'dockercfg';

const FORMAT_LABEL: Readonly<Record<DockerConfigFormat, string>> = {
  'config.json': 'config.json',
  dockercfg: '.dockercfg',
};

const FORMAT_SHAPE: Readonly<Record<DockerConfigFormat, string>> = {
  'config.json': '{"auths": {"<registry>": {"auth": "<base64 of username:password>"}}}',
  dockercfg:
    '{"<registry>": {"auth": "<base64 of username:password>"}} (legacy .dockercfg, no "auths" wrapper)',
};

/** Upstream's error text for an `auth` field that does not hold `username:password`. */
export const AUTH_FIELD_FORMAT_MESSAGE =
  'unable to parse auth field, must be formatted as base64(username:password)';

/**
 * A docker config file or value could not be used. The message names the
 * format and, where it applies, the registry key; it never contains a
 * password, an `auth` value or any other part of the file's contents.
 */
export class DockerConfigError extends PullkeeperError {
  readonly format: DockerConfigFormat;
  /** The registry key the problem is about, with any `user:pass@` part redacted. */
  readonly registry: string | undefined;

  constructor(format: DockerConfigFormat, message: string, options?: { registry?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.format = format;
    this.registry = options?.registry;
  }
}

// --- small helpers -------------------------------------------------------------

type JsonObject = Record<string, unknown>;

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How Go's encoding/json would name the JSON type of a value in its errors. */
function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

/** A plain object with `key` set as an own property (safe for keys like `__proto__`). */
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function getOwn<T>(target: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(target, key) ? target[key] : undefined;
}

/**
 * The folded form encoding/json uses to match an object key to a struct field
 * (bytes.EqualFold). Besides ASCII case, U+017F (ſ) folds to `s` and U+212A
 * (Kelvin sign) to `k`; `toLowerCase` already maps the latter.
 *
 *   goFieldName('Auths')      // 'auths'
 *   goFieldName('USERNAME')   // 'username'
 */
function goFieldName(key: string): string {
  return key.replace(/\u017f/g, 's').toLowerCase();
}

/**
 * A registry key as it may appear in a message: a `user:pass@` part (a key
 * may be a URL) is replaced so that credentials never reach a message.
 *
 *   describeRegistryKey('quay.io')                       // '"quay.io"'
 *   describeRegistryKey('https://bob:hunter2@quay.io')   // '"<redacted>@quay.io"'
 */
function describeRegistryKey(key: string): string {
  return JSON.stringify(redactRegistryKey(key));
}

function redactRegistryKey(key: string): string {
  const at = key.lastIndexOf('@');
  return at < 0 ? key : `<redacted>@${key.slice(at + 1)}`;
}

function fail(format: DockerConfigFormat, problem: string, registry?: string): DockerConfigError {
  const where = registry === undefined ? '' : `entry ${describeRegistryKey(registry)}: `;
  const message = `invalid ${FORMAT_LABEL[format]}: ${where}${problem}; expected ${FORMAT_SHAPE[format]}`;
  return new DockerConfigError(
    format,
    message,
    registry === undefined ? undefined : { registry: redactRegistryKey(registry) },
  );
}

// --- base64 (Go encoding/base64, non-strict StdEncoding / RawStdEncoding) -------

const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < BASE64_ALPHABET.length; i++) BASE64_VALUE[BASE64_ALPHABET.charCodeAt(i)] = i;
const PAD = 0x3d; // '='
const UTF8 = new TextEncoder();
/** UTF-8 text of bytes[from, to); invalid sequences become U+FFFD and a leading U+FEFF is kept, as in Go. */
function utf8(bytes: Uint8Array, from: number, to: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('utf8');
}

type Base64Result = { ok: true; bytes: Uint8Array } | { ok: false; offset: number };

function isNewline(c: number): boolean {
  return c === 0x0a || c === 0x0d;
}

/**
 * The common case of `decodeGoBase64` without a per-byte loop: only alphabet
 * characters (and, when `padded`, correct trailing `=`), no newlines. Such
 * input decodes identically with Node's decoder, which, like Go's non-strict
 * encodings, ignores non-zero trailing bits. `undefined` means "take the
 * exact path".
 */
function decodeCleanBase64(text: string, padded: boolean): Uint8Array | undefined {
  let body = text;
  if (padded) {
    const pads = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
    body = text.slice(0, text.length - pads);
    if (text.length % 4 !== 0 || (pads > 0 && body.length % 4 !== 4 - pads)) return undefined;
  } else if (text.length % 4 === 1) {
    return undefined;
  }
  // Node's decoder also accepts the URL alphabet, which Go's standard encodings do not.
  if (body.includes('-') || body.includes('_')) return undefined;
  const buf = Buffer.from(body, 'base64');
  // Node skips characters outside the alphabet (and stops at '='); each one
  // removes 6 bits, which for these lengths (body % 4 is 0, 2 or 3) always
  // shortens the output. So the full length means every character was valid.
  const tail = body.length % 4;
  if (buf.length !== ((body.length - tail) / 4) * 3 + (tail === 0 ? 0 : tail - 1)) return undefined;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/**
 * Go's base64 `Encoding.DecodeString` for the standard alphabet: `padded`
 * selects StdEncoding (padding required), otherwise RawStdEncoding (no `=`
 * allowed). `\r` and `\n` are skipped anywhere; every other byte outside the
 * alphabet is an error at its byte offset, as Go reports it. Non-zero trailing
 * bits are accepted (the encodings are not in Strict mode). Memory: the UTF-8
 * bytes of the input and the output, nothing per byte.
 *
 *   decodeGoBase64('dTo=', true)   // ok: 'u:'
 *   decodeGoBase64('dTo', false)   // ok: 'u:'
 *   decodeGoBase64('dTo=', false)  // error at byte 3
 */
function decodeGoBase64(text: string, padded: boolean): Base64Result {
  const clean = decodeCleanBase64(text, padded);
  if (clean !== undefined) return { ok: true, bytes: clean };
  const src = UTF8.encode(text);
  const out = new Uint8Array(Math.ceil(src.length / 4) * 3);
  let n = 0;
  let si = 0;
  while (si < src.length) {
    let val = 0;
    let j = 0;
    let dlen = 4;
    let err = -1;
    while (j < 4) {
      if (si === src.length) {
        if (j === 0) return { ok: true, bytes: out.subarray(0, n) };
        if (j === 1 || padded) return { ok: false, offset: si - j };
        dlen = j;
        break;
      }
      const c = src[si]!;
      si++;
      const v = BASE64_VALUE[c]!;
      if (v >= 0) {
        val = (val << 6) | v;
        j++;
        continue;
      }
      if (isNewline(c)) continue;
      if (!padded || c !== PAD) return { ok: false, offset: si - 1 };
      // Padding reached: only `xx==` and `xxx=` are valid, and nothing may follow.
      if (j === 0 || j === 1) return { ok: false, offset: si - 1 };
      if (j === 2) {
        while (si < src.length && isNewline(src[si]!)) si++;
        if (si === src.length) return { ok: false, offset: src.length };
        if (src[si] !== PAD) return { ok: false, offset: si - 1 };
        si++;
      }
      while (si < src.length && isNewline(src[si]!)) si++;
      if (si < src.length) err = si;
      dlen = j;
      break;
    }
    val <<= 6 * (4 - dlen);
    out[n++] = (val >> 16) & 0xff;
    if (dlen > 2) out[n++] = (val >> 8) & 0xff;
    if (dlen > 3) out[n++] = val & 0xff;
    if (err >= 0) return { ok: false, offset: err };
  }
  return { ok: true, bytes: out.subarray(0, n) };
}

/** Standard padded base64 of the UTF-8 bytes of `text`. */
function encodeBase64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

// unicode.IsSpace: ASCII/Latin-1 spaces plus the other White_Space code points.
function isGoSpace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) ||
    c === 0x20 ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Whether `strings.TrimSpace(s)` ends in `=`; linear, from the end. */
function trimmedEndsWithPad(s: string): boolean {
  let end = s.length;
  while (end > 0 && isGoSpace(s.charCodeAt(end - 1))) end--;
  return end > 0 && s.charCodeAt(end - 1) === PAD;
}

/**
 * decodeDockerConfigFieldAuth: base64 `username:password`, split at the first
 * `:`. The padding decides the decoder: if the value, with surrounding Go
 * whitespace trimmed, ends in `=` it must be padded base64, else unpadded.
 *
 *   decodeAuthField('dXNlcjpwYXNz')       // { username: 'user', password: 'pass' }
 *   decodeAuthField('dXNlcjpwYXNzOjE=')   // { username: 'user', password: 'pass:1' }
 *   decodeAuthField('dTo=')               // { username: 'u', password: '' }
 *   decodeAuthField('bm9jb2xvbg==')       // { problem: 'unable to parse auth field, …' }
 */
function decodeAuthField(field: string): { username: string; password: string } | { problem: string } {
  const decoded = decodeGoBase64(field, trimmedEndsWithPad(field));
  if (!decoded.ok) {
    return { problem: `${AUTH_FIELD_FORMAT_MESSAGE} (illegal base64 data at input byte ${decoded.offset})` };
  }
  const colon = decoded.bytes.indexOf(0x3a);
  if (colon < 0) return { problem: AUTH_FIELD_FORMAT_MESSAGE };
  return {
    username: utf8(decoded.bytes, 0, colon),
    password: utf8(decoded.bytes, colon + 1, decoded.bytes.length),
  };
}

// --- parsing ---------------------------------------------------------------------
//
// Files are decoded with go-json.ts, straight into the model: each target
// below stands for the Go type the kubelet decodes into (DockerConfigJSON,
// DockerConfig = map[string]DockerConfigEntry, the entry's UnmarshalJSON,
// HttpHeaders map[string]string), so every occurrence of a duplicate key is
// applied in order, as in Go.

const ENTRY_FIELDS = new Set(['username', 'password', 'email', 'auth']);

type EntryFields = { username: string; password: string; email: string; auth: string };

function finishEntry(format: DockerConfigFormat, registry: string, fields: EntryFields): DockerAuthEntry {
  const entry: DockerAuthEntry = { username: fields.username, password: fields.password };
  if (fields.email) entry.email = fields.email;
  if (fields.auth.length > 0) {
    const decoded = decodeAuthField(fields.auth);
    if ('problem' in decoded) throw fail(format, `field "auth": ${decoded.problem}`, registry);
    entry.username = decoded.username;
    entry.password = decoded.password;
  }
  return entry;
}

// Targets are classes, not object literals built per value: tsx (esbuild
// keepNames) wraps every function literal in a naming call, which dominated
// the cost of small files.

/** A Go string field: strings set it, `null` leaves it as it is, anything else fails. */
class EntryFieldTarget implements GoJsonTarget {
  constructor(
    private readonly entry: EntryObjectTarget,
    private readonly field: keyof EntryFields,
  ) {}

  scalar(kind: GoJsonScalarKind, text: string): void {
    if (kind === 'string') this.entry.fields[this.field] = text;
    else if (kind !== 'null') throw this.wrongType(goJsonKindName(kind));
  }

  object(): GoJsonObjectTarget {
    throw this.wrongType('object');
  }

  array(): GoJsonArrayTarget {
    throw this.wrongType('array');
  }

  private wrongType(kind: string): DockerConfigError {
    return fail(
      this.entry.format,
      `field "${this.field}" must be a string, got ${kind}`,
      this.entry.registry,
    );
  }
}

/** The members of one entry object (dockerConfigEntryWithAuth), finished by UnmarshalJSON's auth step. */
class EntryObjectTarget implements GoJsonObjectTarget {
  readonly fields: EntryFields = { username: '', password: '', email: '', auth: '' };

  constructor(
    readonly format: DockerConfigFormat,
    readonly registry: string,
    private readonly into: Record<string, DockerAuthEntry>,
  ) {}

  member(key: string): GoJsonTarget {
    const field = goFieldName(key);
    return ENTRY_FIELDS.has(field) ? new EntryFieldTarget(this, field as keyof EntryFields) : SKIP_JSON;
  }

  end(): void {
    setOwn(this.into, this.registry, finishEntry(this.format, this.registry, this.fields));
  }
}

/** DockerConfigEntry.UnmarshalJSON for one occurrence of a registry key. */
class EntryTarget implements GoJsonTarget {
  constructor(
    private readonly format: DockerConfigFormat,
    private readonly registry: string,
    private readonly into: Record<string, DockerAuthEntry>,
  ) {}

  scalar(kind: GoJsonScalarKind): void {
    // A null entry reaches UnmarshalJSON as `null`, which leaves every field empty.
    if (kind === 'null') setOwn(this.into, this.registry, { username: '', password: '' });
    else throw this.notAnObject(goJsonKindName(kind));
  }

  object(): GoJsonObjectTarget {
    return new EntryObjectTarget(this.format, this.registry, this.into);
  }

  array(): GoJsonArrayTarget {
    throw this.notAnObject('array');
  }

  private notAnObject(kind: string): DockerConfigError {
    return fail(
      this.format,
      `must be an object with "auth" or "username" and "password", got ${kind}`,
      this.registry,
    );
  }
}

/** map[string]DockerConfigEntry: each member is one registry. */
class EntriesObjectTarget implements GoJsonObjectTarget {
  constructor(
    private readonly format: DockerConfigFormat,
    private readonly into: Record<string, DockerAuthEntry>,
  ) {}

  member(registry: string): GoJsonTarget {
    return new EntryTarget(this.format, registry, this.into);
  }

  end(): void {}
}

/** DockerConfigJSON: `auths` (any case variant, decoded into one map; null resets it), `HttpHeaders`. */
class ConfigJsonTarget implements GoJsonTarget, GoJsonObjectTarget {
  auths: Record<string, DockerAuthEntry> = {};
  private readonly format: DockerConfigFormat = 'config.json';
  private currentKey = '';

  /** The top level: an object, or null (valid and empty, as in Go). */
  scalar(kind: GoJsonScalarKind): void {
    if (kind !== 'null') throw topLevelWrongType(this.format, goJsonKindName(kind));
  }

  object(): GoJsonObjectTarget {
    return this;
  }

  array(): GoJsonArrayTarget {
    throw topLevelWrongType(this.format, 'array');
  }

  member(key: string): GoJsonTarget {
    const field = goFieldName(key);
    if (field === 'auths') {
      this.currentKey = key;
      return new AuthsTarget(this);
    }
    if (field === 'httpheaders') return new HeadersTarget(this.format, key);
    return SKIP_JSON;
  }

  end(): void {}

  /** The `auths` value: an object of entries, or null (resets the map); anything else fails. */
  authsWrongType(kind: string): DockerConfigError {
    return fail(this.format, `"${this.currentKey}" must be an object of registry entries, got ${kind}`);
  }
}

class AuthsTarget implements GoJsonTarget {
  constructor(private readonly config: ConfigJsonTarget) {}

  scalar(kind: GoJsonScalarKind): void {
    if (kind === 'null') this.config.auths = {};
    else throw this.config.authsWrongType(goJsonKindName(kind));
  }

  object(): GoJsonObjectTarget {
    return new EntriesObjectTarget('config.json', this.config.auths);
  }

  array(): GoJsonArrayTarget {
    throw this.config.authsWrongType('array');
  }
}

/** A legacy .dockercfg: the top level is the registry map itself. */
class DockercfgTarget implements GoJsonTarget {
  readonly auths: Record<string, DockerAuthEntry> = {};

  scalar(kind: GoJsonScalarKind): void {
    if (kind !== 'null') throw topLevelWrongType('dockercfg', goJsonKindName(kind));
  }

  object(): GoJsonObjectTarget {
    return new EntriesObjectTarget('dockercfg', this.auths);
  }

  array(): GoJsonArrayTarget {
    throw topLevelWrongType('dockercfg', 'array');
  }
}

/** HttpHeaders map[string]string: decoded (so a wrong type fails the file) and dropped. */
class HeadersTarget implements GoJsonTarget, GoJsonObjectTarget {
  private inside = false;

  constructor(
    private readonly format: DockerConfigFormat,
    private readonly key: string,
  ) {}

  scalar(kind: GoJsonScalarKind): void {
    // The map itself may be null; each value must be a string or null.
    if (kind !== 'null' && !(this.inside && kind === 'string')) throw this.wrongType();
  }

  object(): GoJsonObjectTarget {
    if (this.inside) throw this.wrongType();
    this.inside = true;
    return this;
  }

  array(): GoJsonArrayTarget {
    throw this.wrongType();
  }

  member(): GoJsonTarget {
    return this;
  }

  end(): void {}

  private wrongType(): DockerConfigError {
    return fail(this.format, `"${this.key}" must be an object of string header values`);
  }
}

function topLevelWrongType(format: DockerConfigFormat, kind: string): DockerConfigError {
  return fail(format, `the top level must be a JSON object, got ${kind}`);
}

/**
 * Parses a docker config file the way the kubelet does.
 *
 *   parseDockerConfig('{"auths":{"quay.io":{"auth":"dXNlcjpwYXNz"}}}', 'config.json')
 *   // { auths: { 'quay.io': { username: 'user', password: 'pass' } } }
 *   parseDockerConfig('{"quay.io":{"username":"u","password":"p"}}', 'dockercfg')
 *   // { auths: { 'quay.io': { username: 'u', password: 'p' } } }
 *   parseDockerConfig('{"credsStore":"desktop"}', 'config.json')
 *   // { auths: {} }  (valid: a config.json without "auths" has no credentials)
 *   parseDockerConfig('{"auths":{"quay.io":{"auth":"bm9jb2xvbg=="}}}', 'config.json')
 *   // throws DockerConfigError: invalid config.json: entry "quay.io": field "auth":
 *   //   unable to parse auth field, must be formatted as base64(username:password); …
 *
 * JSON is read as Go reads it (go-json.ts): every occurrence of a duplicate
 * key is applied in order (`{"auths":{…},"auths":null}` has no credentials,
 * `{"auths":{"q":"s"},"auths":null}` is an error), nesting deeper than
 * 10,000 levels is an error anywhere in the file, and lone surrogate escapes
 * decode to U+FFFD. Memory and time are proportional to the text; nothing
 * recurses on its depth.
 *
 * Keys are kept as written (normalization is the keyring's job). `email` is
 * set only when non-empty. A top-level JSON `null` is valid and empty, as in Go.
 *
 * Callers decoding file bytes should keep a leading byte order mark (use
 * `new TextDecoder('utf-8', { ignoreBOM: true })`): Go rejects such a file and
 * so does this parser, but a default TextDecoder would silently drop it.
 * Callers reading files should bound them first (`MAX_NODE_DOCKER_CONFIG_BYTES`).
 *
 * @throws DockerConfigError naming the format and registry key; file contents,
 * passwords and `auth` values are never part of the message.
 */
export function parseDockerConfig(text: string, format: DockerConfigFormat): DockerConfig {
  const root = format === 'dockercfg' ? new DockercfgTarget() : new ConfigJsonTarget();
  try {
    decodeGoJson(text, root);
  } catch (err) {
    if (err instanceof GoJsonSyntaxError) {
      // The scanner's messages never quote the input; no cause is kept all the same.
      throw fail(format, `not valid JSON (${err.message}; contents not shown)`);
    }
    throw err;
  }
  return { auths: root.auths };
}

// --- writing -----------------------------------------------------------------------

/** The JSON object written for one entry: username, password, (email), auth. */
function renderEntry(registry: string, entry: DockerAuthEntry): Record<string, string> {
  if (entry.username.includes(':')) {
    // The auth field is split at the first ':', so the kubelet would read a different user.
    throw new DockerConfigError(
      'config.json',
      `cannot write entry ${describeRegistryKey(registry)}: the username contains ":", which the auth ` +
        'field (base64 of username:password) cannot carry; use a username without ":"',
      { registry: redactRegistryKey(registry) },
    );
  }
  const out: Record<string, string> = { username: entry.username, password: entry.password };
  if (entry.email) out.email = entry.email;
  out.auth = encodeBase64(`${entry.username}:${entry.password}`);
  return out;
}

/**
 * Serializes credentials as a config.json / `.dockerconfigjson` value: compact
 * JSON, registry keys sorted by UTF-16 code unit, each entry
 * `{username, password, [email], auth}` with `auth` the padded standard base64
 * of `username:password`. The same input always gives the same bytes, so a
 * refresh can compare strings to decide whether anything changed.
 *
 *   renderDockerConfigJson({ auths: { 'quay.io': { username: 'user', password: 'pass' } } })
 *   // '{"auths":{"quay.io":{"username":"user","password":"pass","auth":"dXNlcjpwYXNz"}}}'
 *
 * @throws DockerConfigError when a username contains `:` (it cannot round-trip
 * through `auth`).
 */
export function renderDockerConfigJson(config: DockerConfig): string {
  const keys = Object.keys(config.auths).sort();
  const parts = keys.map(
    (key) => `${JSON.stringify(key)}:${JSON.stringify(renderEntry(key, getOwn(config.auths, key)!))}`,
  );
  return `{"auths":{${parts.join(',')}}}`;
}

/**
 * Merges configs by registry key; for the same key the **earlier** argument
 * wins. Pass the most authoritative source first: that is how every kubelet
 * list reads (pod secrets before node files before plugins, the first config
 * file found wins, credentials are tried first to last), so "first wins" means
 * the same thing here as everywhere else in pullkeeper.
 *
 *   mergeDockerConfigs(
 *     { auths: { 'quay.io': { username: 'fresh', password: 'a' } } },
 *     { auths: { 'quay.io': { username: 'stale', password: 'b' }, 'gcr.io': { username: 'g', password: 'c' } } },
 *   )
 *   // { auths: { 'quay.io': { username: 'fresh', … }, 'gcr.io': { username: 'g', … } } }
 *
 * Keys are compared as written: `quay.io` and `https://quay.io/v1/` are
 * different keys here even though the keyring files both under `quay.io`
 * (where both credentials are then tried, in order). Inputs are not modified.
 */
export function mergeDockerConfigs(...configs: DockerConfig[]): DockerConfig {
  const auths: Record<string, DockerAuthEntry> = {};
  for (const config of configs) {
    for (const [key, entry] of Object.entries(config.auths)) {
      if (!Object.hasOwn(auths, key)) setOwn(auths, key, { ...entry });
    }
  }
  return { auths };
}

/**
 * Writes our entries into an existing config.json (already `JSON.parse`d)
 * without touching anything we do not own:
 * - every top-level field other than `auths` keeps its value and position;
 * - every `auths` entry whose key we do not manage keeps its value (the same
 *   object) and position;
 * - our entries replace same-keyed entries in place, and new ones are appended
 *   in sorted order;
 * - keys in `previouslyManagedKeys` that `managed` no longer has are removed.
 *
 *   mergeManagedEntries(
 *     { auths: { 'gcr.io': {…theirs}, 'old.io': {…} }, credsStore: 'desktop' },
 *     { auths: { 'quay.io': { username: 'u', password: 'p' } } },
 *     ['old.io'],
 *   )
 *   // { json: { auths: { 'gcr.io': {…theirs}, 'quay.io': {…ours} }, credsStore: 'desktop' },
 *   //   managedKeys: ['quay.io'], adopted: [] }
 *
 * `managedKeys` (sorted) is what to pass as `previouslyManagedKeys` next time.
 * `adopted` lists keys that existed, were not ours before, and were
 * overwritten; report them. `existing` may be `undefined` or `null` (no file).
 * Only the exact key `auths` is edited; a case variant (`"Auths"`, which the
 * kubelet also reads) is kept as is. The kubelet rejects a whole file when any
 * entry's `auth` is malformed, so callers should run `parseDockerConfig` over
 * the result before writing it.
 *
 * @throws DockerConfigError when `existing` is not a JSON object or its `auths`
 * is not an object: such a file must be backed up and reported, not replaced.
 */
export function mergeManagedEntries(
  existing: unknown,
  managed: DockerConfig,
  previouslyManagedKeys: string[],
): { json: Record<string, unknown>; managedKeys: string[]; adopted: string[] } {
  const base = existing === undefined || existing === null ? {} : existing;
  if (!isJsonObject(base)) {
    throw new DockerConfigError(
      'config.json',
      `the existing config.json is not a JSON object (got ${jsonKind(base)}); back it up and fix or remove it ` +
        'before pullkeeper writes to it',
    );
  }
  const currentAuths = getOwn(base, 'auths');
  if (currentAuths !== undefined && currentAuths !== null && !isJsonObject(currentAuths)) {
    throw new DockerConfigError(
      'config.json',
      `the existing config.json has "auths" of type ${jsonKind(currentAuths)}, not an object; back it up and ` +
        'fix or remove it before pullkeeper writes to it',
    );
  }
  const ours = new Map<string, Record<string, string>>();
  for (const key of Object.keys(managed.auths).sort())
    ours.set(key, renderEntry(key, getOwn(managed.auths, key)!));
  const dropped = new Set(previouslyManagedKeys);

  const auths: Record<string, unknown> = {};
  const adopted: string[] = [];
  for (const [key, value] of Object.entries(isJsonObject(currentAuths) ? currentAuths : {})) {
    const mine = ours.get(key);
    if (mine !== undefined) {
      setOwn(auths, key, mine);
      if (!dropped.has(key)) adopted.push(key);
    } else if (!dropped.has(key)) {
      setOwn(auths, key, value);
    }
  }
  for (const [key, entry] of ours) if (!Object.hasOwn(auths, key)) setOwn(auths, key, entry);

  const json: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(base)) setOwn(json, key, key === 'auths' ? auths : value);
  if (!Object.hasOwn(json, 'auths')) setOwn(json, 'auths', auths);
  return { json, managedKeys: [...ours.keys()], adopted };
}

// --- node search order (docs/kubelet-parity.md §1.1) ---------------------------------

/** The kubelet's default `--root-dir` (upstream default, not re-read in source). */
export const DEFAULT_KUBELET_ROOT_DIR = '/var/lib/kubelet';

/** Go path.Clean for slash-separated paths. */
function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** Go filepath.Join: empty elements are skipped; all empty gives ''. */
function joinPath(...elems: string[]): string {
  const kept = elems.filter((e) => e !== '');
  return kept.length === 0 ? '' : cleanPath(kept.join('/'));
}

/** Go filepath.Abs against an explicit working directory. */
function absPath(p: string, cwd: string): string {
  return p.startsWith('/') ? cleanPath(p) : joinPath(cwd, p);
}

/**
 * The eight files the kubelet tries, in order: four `config.json`, then four
 * `.dockercfg` (pkg/credentialprovider/config.go).
 *
 *   nodeDockerConfigSearchPaths('/var/lib/kubelet', '/', '/root')
 *   // ['/var/lib/kubelet/config.json', '/config.json', '/root/.docker/config.json', '/.docker/config.json',
 *   //  '/var/lib/kubelet/.dockercfg', '/.dockercfg', '/root/.dockercfg', '/.dockercfg']
 *
 * `cwd` is the kubelet's working directory (absolute); the "" entry upstream
 * is resolved against it by `filepath.Abs`.
 *
 * Empty or unset HOME: `os.UserHomeDir` fails, and upstream ignores the error
 * and keeps `""` as the home directory, so the entry is *not* skipped: it
 * becomes relative to the working directory. `$HOME/.docker` turns into
 * `<cwd>/.docker/config.json` and `$HOME` into `<cwd>/.dockercfg` (a repeat of
 * the cwd entry). Upstream computes these at process start, so HOME means the
 * kubelet's environment when it started. Duplicates are kept, as upstream
 * checks them twice.
 */
export function nodeDockerConfigSearchPaths(
  rootDir: string,
  cwd: string,
  home: string | undefined,
): string[] {
  const homeDir = home ?? '';
  const jsonDirs = [rootDir, '', joinPath(homeDir, '.docker'), joinPath('/', '.docker')];
  const cfgDirs = [rootDir, '', homeDir, '/'];
  return [
    ...jsonDirs.map((dir) => absPath(joinPath(dir, 'config.json'), cwd)),
    ...cfgDirs.map((dir) => absPath(joinPath(dir, '.dockercfg'), cwd)),
  ];
}

/** `.dockercfg` when the file's base name says so, otherwise `config.json`. */
function formatOfPath(path: string): DockerConfigFormat {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base === '.dockercfg' ? 'dockercfg' : 'config.json';
}

/**
 * ReadDockerConfigFile: picks the node's credentials from candidate files
 * (typically `nodeDockerConfigSearchPaths` with each file's text, `undefined`
 * when it does not exist or cannot be read).
 *
 * - config.json candidates are tried first, in the order given; `.dockercfg`
 *   candidates (base name `.dockercfg`) only when no config.json was valid;
 * - a missing file, invalid JSON or a bad entry (e.g. a malformed `auth`)
 *   skips that file and the search moves on;
 * - the first file that parses wins, including a config.json without `auths`
 *   (no credentials, and no `.dockercfg` is consulted); files are never merged.
 *
 *   selectNodeDockerConfig([
 *     { path: '/var/lib/kubelet/config.json', text: undefined },
 *     { path: '/root/.docker/config.json', text: '{"auths":{"quay.io":{"auth":"dXNlcjpwYXNz"}}}' },
 *   ])
 *   // { path: '/root/.docker/config.json', config: { auths: { 'quay.io': {…} } } }
 *
 * Returns `undefined` when no candidate is usable (the kubelet then has no
 * node credentials).
 */
export function selectNodeDockerConfig(
  candidates: Array<{ path: string; text: string | undefined }>,
): { path: string; config: DockerConfig } | undefined {
  for (const wanted of ['config.json', 'dockercfg'] as const) {
    for (const { path, text } of candidates) {
      const format = formatOfPath(path);
      if (format !== wanted || text === undefined) continue;
      try {
        return { path, config: parseDockerConfig(text, format) };
      } catch (err) {
        if (!(err instanceof DockerConfigError)) throw err;
      }
    }
  }
  return undefined;
}

// --- API server Secret validation (docs/kubelet-parity.md §8) -------------------------

/** Upper bound on the sum of a Secret's data value sizes (core `MaxSecretSize`). */
export const MAX_SECRET_DATA_BYTES = 1024 * 1024;

/**
 * Largest docker config file (node `config.json` / `.dockercfg`, or a
 * credential file given to the CLI) pullkeeper reads: 4 MiB. The kubelet
 * reads node files whole, without a limit; real ones are a few KiB, and a
 * Secret's data is at most `MAX_SECRET_DATA_BYTES` (1 MiB), so 4 MiB leaves
 * room for a Secret manifest (base64 grows data by a third) and for large
 * hand-written files while keeping memory bounded. Read at most this many
 * bytes plus one, and refuse the file when the extra byte arrives (a
 * device such as /dev/zero has no size to stat). See docs/kubelet-parity.md.
 */
export const MAX_NODE_DOCKER_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * The API server would reject this Secret data. `field` is the path in
 * upstream's form (`data[.dockerconfigjson]`, `data`); the message never
 * contains the data.
 */
export class InvalidSecretDataError extends PullkeeperError {
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** interface{}: anything goes, but numbers become float64, which must be finite. */
const GO_INTERFACE_VALUE: GoJsonTarget = {
  scalar(kind, text) {
    if (kind === 'number' && !Number.isFinite(Number(text))) throw new NumberRangeProblem();
  },
  object: () => GO_INTERFACE_OBJECT,
  array: () => GO_INTERFACE_ARRAY,
};
const GO_INTERFACE_OBJECT: GoJsonObjectTarget = { member: () => GO_INTERFACE_VALUE, end() {} };
const GO_INTERFACE_ARRAY = { element: () => GO_INTERFACE_VALUE, end() {} };

class NumberRangeProblem extends Error {}
class TopLevelTypeProblem extends Error {}

/** map[string]interface{} at the top level: an object or null. */
const GO_STRING_MAP: GoJsonTarget = {
  scalar(kind) {
    if (kind !== 'null') throw new TopLevelTypeProblem(goJsonKindName(kind));
  },
  object: () => GO_INTERFACE_OBJECT,
  array: () => {
    throw new TopLevelTypeProblem('array');
  },
};

/**
 * ValidateSecret for `kubernetes.io/dockerconfigjson` (or, with
 * `key: '.dockercfg'`, `kubernetes.io/dockercfg`): the value must unmarshal
 * into a Go `map[string]interface{}`. Whether `auths` is present is not
 * checked, as upstream does not check it.
 *
 *   validateDockerConfigJsonSecretData('{"auths":{}}')   // ok
 *   validateDockerConfigJsonSecretData('{}')             // ok
 *   validateDockerConfigJsonSecretData('null')           // ok: Go unmarshals null into a nil map
 *   validateDockerConfigJsonSecretData('')
 *   // throws InvalidSecretDataError: data[.dockerconfigjson]: Invalid value:
 *   //   "<secret contents redacted>": unexpected end of JSON input; …
 *   validateDockerConfigJsonSecretData('[]')
 *   // throws …: json: cannot unmarshal array into Go value of type map[string]interface {}; …
 *
 * Go's syntax errors quote a character of the input; ours say only
 * `invalid JSON syntax` and where. The JSON is read as Go reads it
 * (go-json.ts): at most 10,000 levels deep (`exceeded max depth`), every
 * number within float64 range, in one pass that does not recurse on depth.
 */
export function validateDockerConfigJsonSecretData(
  value: string,
  key: '.dockerconfigjson' | '.dockercfg' = '.dockerconfigjson',
): void {
  const field = `data[${key}]`;
  const reject = (reason: string): InvalidSecretDataError =>
    new InvalidSecretDataError(
      field,
      `${field}: Invalid value: "<secret contents redacted>": ${reason}; the value must be a JSON object ` +
        `such as ${key === '.dockercfg' ? '{"<registry>":{"auth":"…"}}' : '{"auths":{"<registry>":{"auth":"…"}}}'}`,
    );
  try {
    decodeGoJson(value, GO_STRING_MAP);
  } catch (err) {
    if (err instanceof GoJsonSyntaxError) {
      // The scanner's messages never quote the input.
      throw reject(
        err.message === 'unexpected end of JSON input' || err.message === 'exceeded max depth'
          ? err.message
          : `invalid JSON syntax (${err.message})`,
      );
    }
    if (err instanceof TopLevelTypeProblem) {
      throw reject(`json: cannot unmarshal ${err.message} into Go value of type map[string]interface {}`);
    }
    if (err instanceof NumberRangeProblem) {
      throw reject('json: cannot unmarshal a number outside the float64 range');
    }
    throw err;
  }
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

/**
 * The size the API server counts for a Secret: the sum of the byte lengths of
 * its data values (keys are not counted). Strings are the decoded values and
 * count as UTF-8.
 *
 *   secretDataBytes({ '.dockerconfigjson': '{"auths":{}}' })   // 12
 */
export function secretDataBytes(data: Record<string, string | Uint8Array>): number {
  let total = 0;
  for (const value of Object.values(data))
    total += typeof value === 'string' ? utf8Length(value) : value.length;
  return total;
}

/**
 * Rejects Secret data over `MAX_SECRET_DATA_BYTES` (1 MiB) in total, as the API
 * server does with `TooLong(data)`.
 *
 *   validateSecretDataSize({ '.dockerconfigjson': 'x'.repeat(1024 * 1024) })       // ok
 *   validateSecretDataSize({ '.dockerconfigjson': 'x'.repeat(1024 * 1024 + 1) })
 *   // throws InvalidSecretDataError: data: Too long: may not be more than 1048576 bytes …
 */
export function validateSecretDataSize(data: Record<string, string | Uint8Array>): void {
  const total = secretDataBytes(data);
  if (total > MAX_SECRET_DATA_BYTES) {
    throw new InvalidSecretDataError(
      'data',
      `data: Too long: may not be more than ${MAX_SECRET_DATA_BYTES} bytes (the values add up to ${total}); ` +
        'split the registries over several Secrets',
    );
  }
}
