/**
 * The kubelet's credential keyring (kubernetes pkg/credentialprovider/keyring.go):
 * which credentials to try, in which order, for an image.
 *
 *   keys     every config entry becomes a key: `https://index.docker.io/v1/` -> `index.docker.io`,
 *            `myreg.io/v1/team` -> `myreg.io/team`, `http://registry.local:8080` -> `registry.local:8080`
 *   index    the keys, deduplicated and sorted in reverse byte order (`quay.io/coreos` before `quay.io`)
 *   lookup   the credentials of every key that matches the image's name, index order;
 *            if none matched, Docker Hub images fall back to the exact key `index.docker.io`
 *   union    keyrings concatenated: pod secrets, then node files, then plugins
 *
 * Matching is done on Go's `net/url` view of both strings, which differs from
 * the WHATWG `URL` that JavaScript offers: Go keeps the host's case (matching
 * is case-sensitive, `MyReg.io` never matches `myreg.io`), does not convert
 * IDNs or normalize IPv4 forms, ends the authority at the first `?` (so a `?`
 * glob can never reach the host), and rejects a `[` anywhere but at the start
 * of the host. So this file carries a small Go-compatible URL splitter instead
 * of using `URL`. It follows the Go kubelet 1.34.2 is built with (go1.24.9,
 * `godebug default=go1.24`), not current Go: an IP literal starts at the last
 * `[` of the host (anything before it is dropped), it must be IPv6 and not
 * IPv4-mapped, and only the text after the last `:` must be a port (so
 * `a:b:5000` is a valid host). See docs/kubelet-parity.md.
 *
 * Strings are handled as JavaScript strings where Go handles bytes. Image
 * names are ASCII, so this only matters for non-ASCII keys, which can never
 * match an image anyway; invalid UTF-8 produced by percent-decoding becomes
 * U+FFFD.
 */
import type { DockerConfig } from './docker-config.js';
import { parseImageRef } from './image-ref.js';

/**
 * Where a docker config came from (kubelet's `TrackedAuthConfig.Source`):
 * a pod pull Secret (`namespace/name`, with its uid when known), a file
 * standing in for one (`pullkeeper-node pull --secret FILE`), a node file, or a
 * credential provider's answer for the pod's ServiceAccount (`namespace/name` and
 * its uid: the broker, docs/pod-credentials.md).
 * Never holds a secret; safe to show.
 */
export interface CredentialSource {
  kind: 'secret' | 'file' | 'node' | 'serviceaccount';
  /** `namespace/name` for a Secret or ServiceAccount, the path for a file. */
  name: string;
  uid?: string;
}

/** A docker config that remembers where it came from; its credentials carry the source. */
export type SourcedDockerConfig = DockerConfig & { source?: CredentialSource };

/** One credential to try for an image; `key` is the keyring key that matched. */
export interface KeyringCredential {
  username: string;
  password: string;
  key: string;
  /** The config's source, when it was given one. */
  source?: CredentialSource;
}

/** Anything that answers "which credentials, in order, for this image". */
export interface Keyring {
  /**
   * `image` as a user writes it (`nginx`, `quay.io/coreos/etcd:v3`); it is
   * normalized to its fully qualified name first, tag and digest dropped.
   *
   * @throws InvalidImageRefError when the image cannot be parsed.
   */
  lookup(image: string): KeyringCredential[];
}

/** A keyring built from docker configs; `keys` is its index in lookup order. */
export interface BasicKeyring extends Keyring {
  readonly keys: readonly string[];
}

/** The key whose credentials Docker Hub images fall back to. */
export const DEFAULT_REGISTRY_KEY = 'index.docker.io';

// --- Go net/url, the parts the keyring depends on --------------------------------

interface GoUrl {
  /** `host[:port]`, percent-decoded, case kept; `[v6addr]:port` for IPv6. */
  host: string;
  /** Percent-decoded path, `''` when absent. */
  path: string;
}

type EscapeMode = 'host' | 'zone' | 'path' | 'userinfo' | 'fragment';

const HOST_PUNCTUATION = new Set('-_.~!$&\'()*+,;=:[]<>"');

function isAsciiAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** url.shouldEscape(c, encodeHost): characters a host may not hold literally. */
function notAllowedInHost(c: number): boolean {
  return !isAsciiAlnum(c) && !HOST_PUNCTUATION.has(String.fromCharCode(c));
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * url.unescape: validates `%XX` escapes (and, for hosts, the characters
 * allowed) and decodes them. `undefined` means Go returns an error.
 *
 *   goUnescape('/a%20b', 'path')   // '/a b'
 *   goUnescape('/a%zz', 'path')    // undefined
 *   goUnescape('a%41', 'host')     // undefined (hosts escape only non-ASCII bytes)
 *   goUnescape('a^b', 'host')      // undefined
 */
function goUnescape(s: string, mode: EscapeMode): string | undefined {
  let escapes = 0;
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hi = i + 2 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < s.length ? hexValue(s.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) return undefined;
      const isPercent = s.slice(i, i + 3) === '%25';
      if (mode === 'host' && hi < 8 && !isPercent) return undefined;
      if (mode === 'zone') {
        const v = (hi << 4) | lo;
        if (!isPercent && v !== 0x20 && v < 0x80 && notAllowedInHost(v)) return undefined;
        if (!isPercent && v !== 0x20 && v >= 0x80) return undefined;
      }
      escapes++;
      i += 3;
      continue;
    }
    if ((mode === 'host' || mode === 'zone') && c < 0x80 && notAllowedInHost(c)) return undefined;
    i++;
  }
  if (escapes === 0) return s;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < s.length; ) {
    if (s.charCodeAt(i) === 0x25) {
      bytes.push((hexValue(s.charCodeAt(i + 1)) << 4) | hexValue(s.charCodeAt(i + 2)));
      i += 3;
      continue;
    }
    const cp = s.codePointAt(i) ?? 0;
    const ch = String.fromCodePoint(cp);
    bytes.push(...encoder.encode(ch));
    i += ch.length;
  }
  return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
}

/** url.validOptionalPort: `''` or `:` followed by digits only. */
function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

/** netip.parseIPv4Fields: four decimal octets, no leading zeros. */
function isGoIPv4(s: string): boolean {
  const fields = s.split('.');
  if (fields.length !== 4) return false;
  return fields.every((f) => /^(0|[1-9][0-9]{0,2})$/.test(f) && Number(f) <= 255);
}

/**
 * netip.ParseAddr for what may stand between `[` and `]` in a URL host under
 * Go 1.24.9: the eight 16-bit groups of an IPv6 address (optional `%zone`,
 * optional embedded IPv4 tail), or `undefined` when ParseAddr fails or gives
 * IPv4 (`1.2.3.4`, which url.Parse rejects in brackets).
 *
 *   parseGoIPv6('::1')              // [0, 0, 0, 0, 0, 0, 0, 1]
 *   parseGoIPv6('fe80::1%en0')      // [0xfe80, 0, 0, 0, 0, 0, 0, 1]
 *   parseGoIPv6('::ffff:1.2.3.4')   // [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]
 *   parseGoIPv6('1.2.3.4')          // undefined
 *   parseGoIPv6('1:2')              // undefined (too short, no ::)
 */
function parseGoIPv6(input: string): number[] | undefined {
  // ParseAddr dispatches on the first of '.', ':' or '%'; only ':' leads to IPv6.
  const first = /[.:%]/.exec(input);
  if (first === null || first[0] !== ':') return undefined;
  let s = input;
  const pct = s.indexOf('%');
  if (pct >= 0) {
    if (pct === s.length - 1) return undefined; // empty zone
    s = s.slice(0, pct);
  }
  const groups: number[] = [];
  let ellipsis = -1; // index in `groups` where `::` stands
  if (s.startsWith('::')) {
    ellipsis = 0;
    s = s.slice(2);
  }
  while (s !== '' && groups.length < 8) {
    let off = 0;
    let acc = 0;
    for (; off < s.length; off++) {
      const d = hexValue(s.charCodeAt(off));
      if (d < 0) break;
      acc = acc * 16 + d;
      if (off > 3 || acc > 0xffff) return undefined;
    }
    if (off === 0) return undefined;
    if (off < s.length && s[off] === '.') {
      if ((ellipsis < 0 && groups.length !== 6) || groups.length + 2 > 8) return undefined;
      if (!isGoIPv4(s)) return undefined;
      const [a, b, c, d] = s.split('.').map(Number) as [number, number, number, number];
      groups.push((a << 8) | b, (c << 8) | d);
      s = '';
      break;
    }
    groups.push(acc);
    s = s.slice(off);
    if (s === '') break;
    if (s[0] !== ':' || s.length === 1) return undefined;
    s = s.slice(1);
    if (s[0] === ':') {
      if (ellipsis >= 0) return undefined;
      ellipsis = groups.length;
      s = s.slice(1);
    }
  }
  if (s !== '') return undefined;
  if (groups.length < 8) {
    if (ellipsis < 0) return undefined;
    groups.splice(ellipsis, 0, ...new Array<number>(8 - groups.length).fill(0));
  } else if (ellipsis >= 0) {
    return undefined;
  }
  return groups;
}

/** netip.Addr.Is4In6: `::ffff:a.b.c.d` in any spelling. */
function isIPv4Mapped(groups: readonly number[]): boolean {
  return groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
}

/**
 * url.parseHost for an http(s) URL, as Go 1.24.9 has it (the 1.24.8 security
 * fix, before Go 1.25.3/1.26 tightened it again):
 * - if the host holds a `[` anywhere, the IP literal starts at the **last**
 *   `[` and whatever precedes it is dropped (`junk[::1]:5000` -> `[::1]:5000`);
 * - the literal must be IPv6, and not IPv4-mapped (`[::ffff:1.2.3.4]` fails);
 * - otherwise only what follows the **last** `:` must be a port, so
 *   `a:b:5000` is accepted.
 */
function parseGoHost(host: string): string | undefined {
  const open = host.lastIndexOf('[');
  if (open >= 0) {
    const close = host.lastIndexOf(']');
    if (close < 0) return undefined; // "missing ']' in host"
    const colonPort = host.slice(close + 1);
    // A ']' before the '[' leaves the '[' in colonPort, which is then invalid.
    if (!validOptionalPort(colonPort)) return undefined;
    const hostname = host.slice(open + 1, close);
    const zone = hostname.indexOf('%25');
    let unescaped: string | undefined;
    if (zone >= 0) {
      const addr = goUnescape(hostname.slice(0, zone), 'host');
      const zonePart = goUnescape(hostname.slice(zone), 'zone');
      unescaped = addr === undefined || zonePart === undefined ? undefined : addr + zonePart;
    } else {
      unescaped = goUnescape(hostname, 'host');
    }
    if (unescaped === undefined) return undefined;
    const groups = parseGoIPv6(unescaped);
    if (groups === undefined || isIPv4Mapped(groups)) return undefined; // "invalid IP-literal"
    return `[${unescaped}]${colonPort}`;
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0 && !validOptionalPort(host.slice(colon))) return undefined;
  return goUnescape(host, 'host');
}

const USERINFO_PUNCTUATION = new Set("-._:~!$&'()*+,;=%@");

/** url.parseAuthority: `[userinfo@]host`, returning the host. */
function parseGoAuthority(authority: string): string | undefined {
  const at = authority.lastIndexOf('@');
  const host = parseGoHost(at < 0 ? authority : authority.slice(at + 1));
  if (host === undefined || at < 0) return host;
  const userinfo = authority.slice(0, at);
  for (const ch of userinfo) {
    if (!(isAsciiAlnum(ch.charCodeAt(0)) && ch.length === 1) && !USERINFO_PUNCTUATION.has(ch))
      return undefined;
  }
  const colon = userinfo.indexOf(':');
  const parts = colon < 0 ? [userinfo] : [userinfo.slice(0, colon), userinfo.slice(colon + 1)];
  return parts.every((p) => goUnescape(p, 'userinfo') !== undefined) ? host : undefined;
}

/**
 * url.Parse for a string that starts with `http://` or `https://`, reduced to
 * what the keyring reads: host and path. `undefined` means Go returns an error.
 *
 *   parseGoHttpUrl('https://quay.io/v1/team?x#y')   // { host: 'quay.io', path: '/v1/team' }
 *   parseGoHttpUrl('https://MyReg.io')              // { host: 'MyReg.io', path: '' }
 *   parseGoHttpUrl('https://my[reg].io')            // undefined
 */
function parseGoHttpUrl(raw: string): GoUrl | undefined {
  const hash = raw.indexOf('#');
  const u = hash < 0 ? raw : raw.slice(0, hash);
  const fragment = hash < 0 ? '' : raw.slice(hash + 1);
  if (/[\x00-\x1f\x7f]/.test(u)) return undefined; // "invalid control character in URL"
  let rest = u.slice(u.indexOf(':') + 1);
  const query = rest.indexOf('?');
  if (query >= 0) rest = rest.slice(0, query);
  // rest is "//authority/path"
  let authority = rest.slice(2);
  let rawPath = '';
  const slash = authority.indexOf('/');
  if (slash >= 0) {
    rawPath = authority.slice(slash);
    authority = authority.slice(0, slash);
  }
  const host = parseGoAuthority(authority);
  const path = goUnescape(rawPath, 'path');
  if (host === undefined || path === undefined) return undefined;
  if (fragment !== '' && goUnescape(fragment, 'fragment') === undefined) return undefined;
  return { host, path };
}

/** ParseSchemelessURL: url.Parse("https://" + s), scheme dropped. */
function parseSchemeless(s: string): GoUrl | undefined {
  return parseGoHttpUrl(`https://${s}`);
}

/** net.SplitHostPort; `undefined` where Go returns an error. */
function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  const i = hostport.lastIndexOf(':');
  if (i < 0) return undefined;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0 || end + 1 !== i) return undefined;
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return undefined;
  }
  if (hostport.slice(j).includes('[') || hostport.slice(k).includes(']')) return undefined;
  return { host, port: hostport.slice(i + 1) };
}

/** SplitURL: host labels and port; a host that SplitHostPort rejects is one unported host. */
function splitUrl(url: GoUrl): { labels: string[]; port: string } {
  const hp = splitHostPort(url.host) ?? { host: url.host, port: '' };
  return { labels: hp.host.split('.'), port: hp.port };
}

// --- Go path/filepath.Match (Unix), on code points ----------------------------------

const BAD_PATTERN = Symbol('bad pattern');

function scanChunk(p: string[]): { star: boolean; chunk: string[]; rest: string[] } {
  let start = 0;
  while (start < p.length && p[start] === '*') start++;
  let inRange = false;
  let i = start;
  for (; i < p.length; i++) {
    const ch = p[i];
    if (ch === '\\') {
      if (i + 1 < p.length) i++;
    } else if (ch === '[') {
      inRange = true;
    } else if (ch === ']') {
      inRange = false;
    } else if (ch === '*' && !inRange) {
      break;
    }
  }
  return { star: start > 0, chunk: p.slice(start, i), rest: p.slice(i) };
}

/** getEsc: one possibly escaped character of a class; `undefined` for a bad pattern. */
function classChar(chunk: string[], at: number): { cp: number; next: number } | undefined {
  let i = at;
  if (i >= chunk.length || chunk[i] === '-' || chunk[i] === ']') return undefined;
  if (chunk[i] === '\\') {
    i++;
    if (i >= chunk.length) return undefined;
  }
  const cp = chunk[i]!.codePointAt(0) ?? 0;
  if (i + 1 >= chunk.length) return undefined;
  return { cp, next: i + 1 };
}

/** matchChunk: the rest of `s` after `chunk` matched its start, `undefined` if not, or BAD_PATTERN. */
function matchChunk(chunk: string[], s: string[]): string[] | undefined | typeof BAD_PATTERN {
  let failed = false;
  let c = 0;
  let i = 0;
  while (c < chunk.length) {
    if (!failed && i >= s.length) failed = true;
    const ch = chunk[c];
    if (ch === '[') {
      const r = failed ? -1 : (s[i]!.codePointAt(0) ?? 0);
      if (!failed) i++;
      c++;
      let negated = false;
      if (c < chunk.length && chunk[c] === '^') {
        negated = true;
        c++;
      }
      let match = false;
      let ranges = 0;
      for (;;) {
        if (c < chunk.length && chunk[c] === ']' && ranges > 0) {
          c++;
          break;
        }
        const lo = classChar(chunk, c);
        if (lo === undefined) return BAD_PATTERN;
        c = lo.next;
        let hi = lo.cp;
        if (chunk[c] === '-') {
          const h = classChar(chunk, c + 1);
          if (h === undefined) return BAD_PATTERN;
          c = h.next;
          hi = h.cp;
        }
        if (lo.cp <= r && r <= hi) match = true;
        ranges++;
      }
      if (match === negated) failed = true;
    } else if (ch === '?') {
      if (!failed) {
        if (s[i] === '/') failed = true;
        i++;
      }
      c++;
    } else {
      if (ch === '\\') {
        c++;
        if (c >= chunk.length) return BAD_PATTERN;
      }
      if (!failed) {
        if (chunk[c] !== s[i]) failed = true;
        i++;
      }
      c++;
    }
  }
  return failed ? undefined : s.slice(i);
}

/**
 * filepath.Match on one host label: `*` (any run of characters), `?` and
 * `[...]` classes (`[^...]` negates), `\` escapes. A malformed pattern does
 * not match. In keyring keys only `*` can occur in practice: `?` starts a URL
 * query, `[` outside a bracketed IPv6 host fails url.Parse, and `\` and `^` are
 * not allowed in a host.
 *
 *   globMatch('*', 'myreg')      // true
 *   globMatch('pre*', 'prefix')  // true
 *   globMatch('*', '')           // true (but a label is rarely empty)
 *   globMatch('My*', 'myreg')    // false (case-sensitive)
 */
function globMatch(pattern: string, name: string): boolean {
  let p = Array.from(pattern);
  let n = Array.from(name);
  outer: while (p.length > 0) {
    const scanned = scanChunk(p);
    p = scanned.rest;
    if (scanned.star && scanned.chunk.length === 0) return !n.includes('/');
    const here = matchChunk(scanned.chunk, n);
    if (Array.isArray(here) && (here.length === 0 || p.length > 0)) {
      n = here;
      continue;
    }
    if (here === BAD_PATTERN) return false;
    if (scanned.star) {
      for (let i = 0; i < n.length && n[i] !== '/'; i++) {
        const later = matchChunk(scanned.chunk, n.slice(i + 1));
        if (Array.isArray(later)) {
          if (p.length === 0 && later.length > 0) continue;
          n = later;
          continue outer;
        }
        if (later === BAD_PATTERN) return false;
      }
    }
    return false;
  }
  return n.length === 0;
}

// --- keys and matching -------------------------------------------------------------------

/**
 * The keyring key for a config entry's location (`BasicDockerKeyring.Add`):
 * `https://` is prepended unless the location starts with `http://` or
 * `https://`; a leading `/v1/` or `/v2/` path loses its first 3 characters;
 * the key is host (with port) plus path, or just the host when the path is
 * empty or `/`. `undefined` when Go's url.Parse fails (upstream logs and
 * ignores the entry).
 *
 *   normalizeKeyringKey('https://index.docker.io/v1/')   // 'index.docker.io'
 *   normalizeKeyringKey('myreg.io/v1/team')              // 'myreg.io/team'
 *   normalizeKeyringKey('myreg.io/v2')                   // 'myreg.io/v2' (no trailing slash)
 *   normalizeKeyringKey('http://registry.local:8080')    // 'registry.local:8080'
 *   normalizeKeyringKey('*.azurecr.io')                  // '*.azurecr.io'
 *   normalizeKeyringKey('MyReg.io')                      // 'MyReg.io' (case kept)
 *   normalizeKeyringKey('quay.io?team=a')                // 'quay.io' (query dropped)
 *   normalizeKeyringKey('*.example.io:*')                // undefined (port must be digits)
 *   normalizeKeyringKey('my[reg].io')                    // undefined (invalid IP-literal)
 */
export function normalizeKeyringKey(location: string): string | undefined {
  const value =
    location.startsWith('https://') || location.startsWith('http://') ? location : `https://${location}`;
  const parsed = parseGoHttpUrl(value);
  if (parsed === undefined) return undefined;
  let path = parsed.path;
  if (path.startsWith('/v2/') || path.startsWith('/v1/')) path = path.slice(3);
  return path.length > 0 && path !== '/' ? parsed.host + path : parsed.host;
}

function urlsMatchParsed(glob: GoUrl, target: GoUrl): boolean {
  const g = splitUrl(glob);
  const t = splitUrl(target);
  if (g.port !== t.port) return false;
  if (g.labels.length !== t.labels.length) return false;
  if (!target.path.startsWith(glob.path)) return false;
  return g.labels.every((label, i) => globMatch(label, t.labels[i]!));
}

/**
 * URLsMatchStr: whether a keyring key (or a credential-provider plugin's
 * `matchImages` entry) covers a target name, both without scheme:
 * 1. the ports are equal (`''` when absent);
 * 2. the hosts have the same number of `.`-separated labels;
 * 3. the target's path starts with the key's path (a plain string prefix, so
 *    `reg.io/a` covers `reg.io/ab`);
 * 4. each label matches as a filepath.Match glob, case-sensitively.
 * Anything Go's url.Parse rejects does not match.
 *
 *   urlsMatch('*.dkr.ecr.*.amazonaws.com', '123.dkr.ecr.eu-central-1.amazonaws.com/app')  // true
 *   urlsMatch('*.azurecr.io', 'a.b.azurecr.io/x')       // false (4 labels vs 3)
 *   urlsMatch('localhost', 'localhost:5000/foo')        // false (port '' vs '5000')
 *   urlsMatch('myreg.azurecr.io/a', 'myreg.azurecr.io/ab')  // true (string prefix)
 */
export function urlsMatch(glob: string, target: string): boolean {
  const g = parseSchemeless(glob);
  const t = parseSchemeless(target);
  return g !== undefined && t !== undefined && urlsMatchParsed(g, t);
}

/**
 * isDefaultRegistryMatch: whether an image name (as the kubelet has it,
 * usually fully qualified) may use the Docker Hub fallback credentials.
 *
 *   isDefaultRegistryMatch('foo')                      // true
 *   isDefaultRegistryMatch('foo/bar')                  // true
 *   isDefaultRegistryMatch('docker.io/foo/bar')        // true
 *   isDefaultRegistryMatch('index.docker.io/foo/bar')  // true
 *   isDefaultRegistryMatch('')                         // false
 *   isDefaultRegistryMatch('registry.tld/foo/bar')     // false
 *   isDefaultRegistryMatch('registry:5000/foo/bar')    // false
 *   isDefaultRegistryMatch('localhost/foo')            // true (no '.' or ':' in the first segment)
 */
export function isDefaultRegistryMatch(image: string): boolean {
  const slash = image.indexOf('/');
  const first = slash < 0 ? image : image.slice(0, slash);
  if (first.length === 0) return false;
  if (slash < 0) return true;
  if (first === 'docker.io' || first === 'index.docker.io') return true;
  return !/[.:]/.test(first);
}

/** Orders strings as Go compares them (UTF-8 bytes), i.e. by code point. */
function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a, (ch) => ch.codePointAt(0) ?? 0);
  const y = Array.from(b, (ch) => ch.codePointAt(0) ?? 0);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/**
 * Builds one keyring (BasicDockerKeyring) from configs added in order, as the
 * kubelet adds a pod's pull secrets one after another into a single keyring.
 * Entries whose location Go cannot parse are ignored. Credentials for the
 * same key are kept in the order added, so two secrets for `quay.io` both get
 * tried; this differs from `unionKeyrings`, where each keyring sorts and falls
 * back on its own.
 *
 *   const kr = buildKeyring({ auths: {
 *     'quay.io': { username: 'a', password: '…' },
 *     'quay.io/coreos': { username: 'b', password: '…' },
 *   } });
 *   kr.keys                          // ['quay.io/coreos', 'quay.io']
 *   kr.lookup('quay.io/coreos/etcd') // [b (quay.io/coreos), a (quay.io)]
 *   kr.lookup('nginx')               // [] (no match, no index.docker.io key)
 *
 * Within one config, locations that normalize to the same key are added in
 * the config's key order (upstream ranges over a Go map, whose order is
 * random). Returned credentials are fresh objects. A config with a `source`
 * hands it to each of its credentials (kubelet's tracked keyring, KEP-2535).
 */
export function buildKeyring(...configs: SourcedDockerConfig[]): BasicKeyring {
  const creds = new Map<string, Array<{ username: string; password: string; source?: CredentialSource }>>();
  for (const config of configs) {
    for (const [location, entry] of Object.entries(config.auths)) {
      const key = normalizeKeyringKey(location);
      if (key === undefined) continue;
      const list = creds.get(key) ?? [];
      list.push({
        username: entry.username,
        password: entry.password,
        ...(config.source ? { source: { ...config.source } } : {}),
      });
      creds.set(key, list);
    }
  }
  const keys = [...creds.keys()].sort((a, b) => compareCodePoints(b, a));
  const index = keys.map((key) => ({ key, glob: parseSchemeless(key) }));
  const copies = (key: string): KeyringCredential[] =>
    (creds.get(key) ?? []).map((c) => ({
      username: c.username,
      password: c.password,
      key,
      ...(c.source ? { source: { ...c.source } } : {}),
    }));

  return {
    keys,
    lookup(image: string): KeyringCredential[] {
      const name = parseImageRef(image).name;
      const target = parseSchemeless(name);
      const found: KeyringCredential[] = [];
      if (target !== undefined) {
        for (const { key, glob } of index) {
          if (glob !== undefined && urlsMatchParsed(glob, target)) found.push(...copies(key));
        }
      }
      if (found.length > 0) return found;
      if (isDefaultRegistryMatch(name) && creds.has(DEFAULT_REGISTRY_KEY))
        return copies(DEFAULT_REGISTRY_KEY);
      return [];
    },
  };
}

/**
 * UnionDockerKeyring: the concatenation of each keyring's answer, in argument
 * order. Ordering by specificity and the Docker Hub fallback happen inside
 * each keyring, never across them.
 *
 *   const secrets = buildKeyring({ auths: { 'quay.io': s } });
 *   const node = buildKeyring({ auths: { 'https://index.docker.io/v1/': hub } });
 *   unionKeyrings(secrets, node).lookup('nginx')   // [hub]  (node keyring's own fallback)
 *
 * @throws InvalidImageRefError from `lookup` when the image cannot be parsed,
 * even when there are no keyrings.
 */
export function unionKeyrings(...keyrings: Keyring[]): Keyring {
  return {
    lookup(image: string): KeyringCredential[] {
      parseImageRef(image);
      return keyrings.flatMap((keyring) => keyring.lookup(image));
    },
  };
}
