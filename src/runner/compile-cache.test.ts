/**
 * The launcher's compile cache directory: used only when no other user can
 * change it or any directory above it. Runs as root (like the runner) and
 * plays the other user with uid 65534.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { compileCacheDir, safeCompileCacheDir, unsafeCacheDirReason } from './compile-cache.js';

const OTHER = 65534;
const base = mkdtempSync(join(tmpdir(), 'pk-ccache-'));
after(() => rmSync(base, { recursive: true, force: true }));
assert.equal(process.getuid?.(), 0, 'this test runs as root, like the node runner');

let n = 0;
/** A fresh directory under `base` with `mode`, owned by `uid`. */
function dir(mode: number, uid = 0): string {
  const d = join(base, `d${++n}`);
  mkdirSync(d);
  chmodSync(d, mode);
  chownSync(d, uid, uid);
  return d;
}

test('a new directory under root-only parents: created 0700 and used', () => {
  const parent = dir(0o700);
  const cache = join(parent, 'state', 'compile-cache');
  assert.equal(safeCompileCacheDir(cache, 0), cache);
  assert.equal(statSync(cache).mode & 0o777, 0o700);
  assert.equal(statSync(join(parent, 'state')).mode & 0o777, 0o700);
});

test('created 0700 whatever the umask', () => {
  const old = process.umask(0);
  try {
    const cache = join(dir(0o755), 'cc');
    assert.equal(safeCompileCacheDir(cache, 0), cache);
    assert.equal(statSync(cache).mode & 0o777, 0o700);
  } finally {
    process.umask(old);
  }
});

test('an existing directory of ours with wider modes is tightened and used', () => {
  const cache = join(dir(0o755), 'cc');
  mkdirSync(cache, { mode: 0o777 });
  chmodSync(cache, 0o777);
  assert.equal(safeCompileCacheDir(cache, 0), cache);
  assert.equal(statSync(cache).mode & 0o777, 0o700);
});

const refused: Array<[string, () => string, RegExp]> = [
  ['a world-writable parent (no sticky bit)', () => join(dir(0o777), 'cc'), /writable by other users/],
  [
    'a directory another user made in a sticky temp dir (the OS temp dir attack)',
    () => {
      const cache = join(dir(0o1777), 'node-compile-cache');
      mkdirSync(cache, { mode: 0o700 });
      chownSync(cache, OTHER, OTHER);
      return cache;
    },
    /belongs to uid 65534/,
  ],
  ['a parent owned by another user', () => join(dir(0o755, OTHER), 'cc'), /belongs to uid 65534/],
  [
    'a symbolic link',
    () => {
      const target = dir(0o700);
      const link = join(base, `link${++n}`);
      symlinkSync(target, link);
      return link;
    },
    /symbolic link/,
  ],
];
for (const [name, make, why] of refused) {
  test(`refused: ${name}`, () => {
    const cache = make();
    assert.equal(safeCompileCacheDir(cache, 0), undefined);
    assert.match(unsafeCacheDirReason(cache, 0) ?? '', why);
  });
}

test('a cache dir Node made below ours (0755, ours) passes the check', () => {
  const cache = join(dir(0o700), 'v24-x64');
  mkdirSync(cache, { mode: 0o755 });
  chmodSync(cache, 0o755);
  assert.equal(unsafeCacheDirReason(cache, 0), undefined);
  chmodSync(cache, 0o775);
  assert.match(unsafeCacheDirReason(cache, 0) ?? '', /writable by other users/);
});

test('compileCacheDir: under $PULLKEEPER_NODE_STATE; off with NODE_DISABLE_COMPILE_CACHE', () => {
  const state = join(dir(0o700), 'state');
  assert.equal(compileCacheDir({ PULLKEEPER_NODE_STATE: state }), join(state, 'compile-cache'));
  assert.equal(compileCacheDir({ PULLKEEPER_NODE_STATE: state, NODE_DISABLE_COMPILE_CACHE: '1' }), undefined);
});
