/**
 * The unpacker's rules: same-layer escapes by entry order (a directory that
 * gets a whiteout, an opaque marker or a time, then is replaced by a symlink
 * to the "host"), the rules as a table, and the bounds. Runs as root (mknod,
 * trusted.* xattrs); the "host" is a temp dir beside the layer dir, never /etc.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { buildTar, type FileEntry } from '../../../test/harness/registry/images.js';
import { unpackLayer } from './unpack.js';

const run = promisify(execFile);
let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'pk-unpack-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function xattr(path: string, name: string): Promise<string | undefined> {
  try {
    const { stdout } = await run('getfattr', ['-h', '--only-values', '-n', name, path]);
    return stdout;
  } catch {
    return undefined;
  }
}

/** A sandbox: `<case>/layer` (empty, unpacked into) and `<case>/host` (a stand-in for /etc, with a canary). */
async function sandbox(name: string) {
  const dir = join(root, name);
  const layer = join(dir, 'layer');
  const host = join(dir, 'host');
  await mkdir(layer, { recursive: true });
  await mkdir(host);
  await writeFile(join(host, 'canary'), 'canary\n');
  const old = new Date('2001-02-03T04:05:06Z');
  await utimes(host, old, old);
  return { dir, layer, host, hostTime: (await stat(host)).mtimeMs };
}

async function unpack(layer: string, files: FileEntry[]) {
  const tar = await buildTar(files, true);
  return unpackLayer(Readable.from([tar]), { dest: layer, maxBytes: 1 << 30 });
}

describe('same-layer escapes by entry order', () => {
  test('d/ then d/.wh.x then d -> host: no x appears in the host, its time is kept', async () => {
    const s = await sandbox('whiteout-then-symlink');
    await unpack(s.layer, [
      { path: 'd/', type: 'dir' },
      { path: 'd/.wh.x' },
      { path: 'd', type: 'symlink', linkname: s.host },
    ]).catch((err: Error) => assert.match(err.message, /refused|symlink/));
    assert.deepEqual(await readdir(s.host), ['canary'], 'nothing was created in the host dir');
    assert.equal((await stat(s.host)).mtimeMs, s.hostTime, 'the host dir time is unchanged');
  });

  test('d/ then d/.wh..wh..opq then d -> host: the host dir is not marked opaque', async () => {
    const s = await sandbox('opaque-then-symlink');
    await unpack(s.layer, [
      { path: 'd/', type: 'dir' },
      { path: 'd/.wh..wh..opq' },
      { path: 'd', type: 'symlink', linkname: s.host },
    ]).catch((err: Error) => assert.match(err.message, /refused|symlink/));
    assert.equal(await xattr(s.host, 'trusted.overlay.opaque'), undefined, 'the host dir has no opaque xattr');
    assert.equal((await stat(s.host)).mtimeMs, s.hostTime);
  });

  test('d/ (with a time) then d -> host: the directory time is not set through the symlink', async () => {
    const s = await sandbox('dirtime-then-symlink');
    await unpack(s.layer, [
      { path: 'd/', type: 'dir' },
      { path: 'd', type: 'symlink', linkname: s.host },
    ]).catch((err: Error) => assert.match(err.message, /refused|symlink/));
    assert.equal((await stat(s.host)).mtimeMs, s.hostTime, 'the host dir time is unchanged');
  });
});
