/**
 * OpenSSH known_hosts content (pure): which host keys are pinned for a host.
 *
 * Lines: `[marker] hostpatterns keytype base64-key [comment]`, where
 * - hostpatterns is a comma list of names, `[host]:port` for a non-22 port,
 *   `*` / `?` wildcards and `!negation`, or one hashed entry `|1|salt|hash`
 *   (HMAC-SHA1 of the name as it would be written, keyed with the salt);
 * - marker `@revoked` marks a key that must be refused; `@cert-authority`
 *   lines (host certificates) are not used by pullkeeper and are skipped.
 *
 * The pin compared against is the SHA-256 of the key blob (what ssh2's
 * hostVerifier receives), so OpenSSH's `SHA256:…` fingerprints line up.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface KnownHostEntry {
  /** 1-based line number in the known_hosts content (for messages). */
  line: number;
  marker?: '@revoked';
  /** Raw host field. */
  hosts: string;
  keyType: string;
  /** SHA-256 of the key blob, lowercase hex. */
  sha256: string;
}

export interface HostPins {
  /** Accepted keys for this host. */
  keys: Array<{ keyType: string; sha256: string; line: number }>;
  /** Keys refused outright (`@revoked`). */
  revoked: Set<string>;
}

/** `SHA256:<base64, no padding>`, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(sha256hex: string): string {
  return `SHA256:${Buffer.from(sha256hex, 'hex').toString('base64').replace(/=+$/, '')}`;
}

/** Parses known_hosts text; unusable lines (comments, certificates, bad base64) are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const fields = l.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    if (marker !== undefined && marker !== '@revoked') return; // @cert-authority and unknown markers
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return;
    const blob = Buffer.from(b64, 'base64');
    if (blob.length < 8) return;
    out.push({
      line: i + 1,
      ...(marker ? { marker: '@revoked' as const } : {}),
      hosts,
      keyType,
      sha256: createHash('sha256').update(blob).digest('hex'),
    });
  });
  return out;
}

/** The name OpenSSH looks up: `host` on port 22, else `[host]:port`. */
export function lookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(name);
}

function hashedMatch(field: string, name: string): boolean {
  const parts = field.split('|');
  // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const want = Buffer.from(parts[3]!, 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Whether a known_hosts host field names `host`:`port` (OpenSSH's match_hostname rules). */
export function hostFieldMatches(field: string, host: string, port: number): boolean {
  const name = lookupName(host, port);
  if (field.startsWith('|')) return hashedMatch(field, name);
  let positive = false;
  for (const p of field.split(',')) {
    if (!p) continue;
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) {
      positive = true;
    }
  }
  return positive;
}

/** The pins for one host. */
export function pinsFor(entries: readonly KnownHostEntry[], host: string, port: number): HostPins {
  const pins: HostPins = { keys: [], revoked: new Set() };
  for (const e of entries) {
    if (!hostFieldMatches(e.hosts, host, port)) continue;
    if (e.marker === '@revoked') pins.revoked.add(e.sha256);
    else pins.keys.push({ keyType: e.keyType, sha256: e.sha256, line: e.line });
  }
  // A key revoked anywhere is never accepted, even if another line pins it.
  pins.keys = pins.keys.filter((k) => !pins.revoked.has(k.sha256));
  return pins;
}

/** ssh2 `serverHostKey` algorithms that can present a key of these known_hosts key types. */
export function hostKeyAlgorithmsFor(keyTypes: readonly string[]): string[] {
  const out: string[] = [];
  const add = (...a: string[]) => {
    for (const x of a) if (!out.includes(x)) out.push(x);
  };
  for (const t of keyTypes) {
    if (t === 'ssh-rsa') add('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else add(t);
  }
  return out;
}
