/**
 * Path rules for layer entries (pure). A layer is unpacked into its own
 * directory; every entry must name a place inside it. Refused: absolute
 * paths, any `..` component, whiteouts of `.`/`..`. Accepted: `./a`, `a//b`,
 * `a/./b` (cleaned), trailing `/` (directories).
 */

export type EntryPath = { ok: true; parts: string[]; rel: string } | { ok: false; reason: string };

/**
 * Cleans a tar entry name into components inside the layer root.
 *
 *   entryPath('./usr/bin/sh')  // { ok: true, parts: ['usr', 'bin', 'sh'], rel: 'usr/bin/sh' }
 *   entryPath('../x')          // { ok: false, reason: 'the path climbs out of the layer with ".."' }
 *   entryPath('/etc/passwd')   // { ok: false, reason: 'absolute path' }
 *   entryPath('./')            // { ok: true, parts: [], rel: '' } (the root itself)
 */
export function entryPath(name: string): EntryPath {
  if (name.includes('\0')) return { ok: false, reason: 'the name contains a NUL byte' };
  if (name.startsWith('/')) return { ok: false, reason: 'absolute path' };
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') return { ok: false, reason: 'the path climbs out of the layer with ".."' };
    parts.push(p);
  }
  return { ok: true, parts, rel: parts.join('/') };
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

export type WhiteoutKind =
  | { kind: 'none' }
  | { kind: 'opaque' }
  | { kind: 'whiteout'; target: string }
  | { kind: 'meta' }
  | { kind: 'invalid'; reason: string };

/**
 * What an entry's base name means under the OCI whiteout rules.
 *
 *   whiteoutOf('.wh.foo')       // { kind: 'whiteout', target: 'foo' }
 *   whiteoutOf('.wh..wh..opq')  // { kind: 'opaque' }
 *   whiteoutOf('.wh..wh.plnk')  // { kind: 'meta' } (aufs bookkeeping, ignored)
 *   whiteoutOf('.wh...')        // { kind: 'invalid', … } (would delete the parent)
 *   whiteoutOf('foo')           // { kind: 'none' }
 */
export function whiteoutOf(base: string): WhiteoutKind {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque' };
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'meta' };
  const target = base.slice(WHITEOUT_PREFIX.length);
  if (target === '' || target === '.' || target === '..') {
    return {
      kind: 'invalid',
      reason: `whiteout of ${JSON.stringify(target)} would remove a parent directory`,
    };
  }
  return { kind: 'whiteout', target };
}

/** Permission bits to apply: setuid/setgid dropped unless kept; sticky and rwx kept. */
export function safeMode(mode: number, keepSetuid: boolean): { mode: number; stripped: boolean } {
  const m = mode & 0o7777;
  if (keepSetuid) return { mode: m, stripped: false };
  const stripped = (m & 0o6000) !== 0;
  return { mode: m & ~0o6000, stripped };
}
