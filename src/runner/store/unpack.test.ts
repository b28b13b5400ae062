/**
 * The unpacker's rules: same-layer escapes by entry order (a directory that
 * gets a whiteout, an opaque marker or a time, then is replaced by a symlink
 * to the "host"), the rules as a table, and the bounds. Runs as root (mknod,
 * trusted.* xattrs); the "host" is a temp dir beside the layer dir, never /etc.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { pack as tarPack } from 'tar-stream';
import { buildTar, type FileEntry } from '../../../test/harness/registry/images.js';
import {
  ImageBudget,
  ImageTooLargeError,
  LayerTooLargeError,
  storeLimits,
  TooManyInodesError,
} from './limits.js';
import { PaxHeaderTooLargeError } from './tar-guard.js';
import { UnsafeLayerError, unpackLayer } from './unpack.js';

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
  return unpackLayer(Readable.from([tar]), { dest: layer });
}

describe('same-layer escapes by entry order', () => {
  test('d/ then d/.wh.x then d -> host: refused, no x appears in the host, its time is kept', async () => {
    const s = await sandbox('whiteout-then-symlink');
    await assert.rejects(
      unpack(s.layer, [
        { path: 'd/', type: 'dir' },
        { path: 'd/.wh.x' },
        { path: 'd', type: 'symlink', linkname: s.host },
      ]),
      (err: Error) =>
        err instanceof UnsafeLayerError &&
        /"d\/\.wh\.x": its whiteout directory "d" is a symlink by the end of the layer/.test(err.message),
    );
    assert.deepEqual(await readdir(s.host), ['canary'], 'nothing was created in the host dir');
    assert.equal((await stat(s.host)).mtimeMs, s.hostTime, 'the host dir time is unchanged');
  });

  test('d/ then d/.wh..wh..opq then d -> host: refused, the host dir is not marked opaque', async () => {
    const s = await sandbox('opaque-then-symlink');
    await assert.rejects(
      unpack(s.layer, [
        { path: 'd/', type: 'dir' },
        { path: 'd/.wh..wh..opq' },
        { path: 'd', type: 'symlink', linkname: s.host },
      ]),
      /its opaque marker directory "d" is a symlink by the end of the layer/,
    );
    assert.equal(
      await xattr(s.host, 'trusted.overlay.opaque'),
      undefined,
      'the host dir has no opaque xattr',
    );
    assert.equal((await stat(s.host)).mtimeMs, s.hostTime);
  });

  test('d/ (with a time) then d -> host: unpacked, the time is not set through the symlink', async () => {
    const s = await sandbox('dirtime-then-symlink');
    await unpack(s.layer, [
      { path: 'd/', type: 'dir' },
      { path: 'd', type: 'symlink', linkname: s.host },
    ]);
    assert.ok((await lstat(join(s.layer, 'd'))).isSymbolicLink());
    assert.equal((await stat(s.host)).mtimeMs, s.hostTime, 'the host dir time is unchanged');
  });

  test('a/b/ then a -> host then a/b/c: refused (the write resolves its parents again)', async () => {
    const s = await sandbox('parent-replaced');
    await assert.rejects(
      unpack(s.layer, [
        { path: 'a/b/', type: 'dir' },
        { path: 'a', type: 'symlink', linkname: s.host },
        { path: 'a/b/c', content: 'x' },
      ]),
      /"a\/b\/c": it writes through "a", a symlink/,
    );
    assert.deepEqual(await readdir(s.host), ['canary']);
  });
});

/** The layer dir as `path: what` lines (d dir, f:content, l->target, c0:0 whiteout, opaque marks). */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      if (st.isDirectory()) {
        const opq = (await xattr(p, 'trusted.overlay.opaque')) === 'y' ? ' opaque' : '';
        out.push(`${r}: d${opq} ${(st.mode & 0o7777).toString(8)}`);
        await walk(p, r);
      } else if (st.isSymbolicLink()) out.push(`${r}: l->${await readlink(p)}`);
      else if (st.isCharacterDevice()) out.push(`${r}: c${st.rdev >> 8}:${st.rdev & 0xff}`);
      else if (st.isFile()) {
        const links = st.nlink > 1 ? ` nlink=${st.nlink}` : '';
        out.push(`${r}: f:${await readFile(p, 'utf8')} ${(st.mode & 0o7777).toString(8)}${links}`);
      } else out.push(`${r}: other`);
    }
  };
  await walk(dir, '');
  return out;
}

type Row = {
  name: string;
  entries: FileEntry[];
} & ({ tree: string[]; implicit?: string[] } | { refuse: RegExp });

const HOST = '/nonexistent-host-dir';
const rules: Row[] = [
  {
    name: 'dirs, files, symlinks as given (mode kept, setuid dropped)',
    entries: [
      { path: 'etc/', type: 'dir', mode: 0o755 },
      { path: 'etc/motd', content: 'hi', mode: 0o640 },
      { path: 'bin/su', content: 'x', mode: 0o4755 },
      { path: 'etc/link', type: 'symlink', linkname: '/etc/motd' },
    ],
    tree: ['bin: d 755', 'bin/su: f:x 755', 'etc: d 755', 'etc/link: l->/etc/motd', 'etc/motd: f:hi 640'],
    implicit: ['bin'],
  },
  { name: 'absolute name', entries: [{ path: '/etc/x', content: 'x' }], refuse: /absolute path/ },
  { name: '.. component', entries: [{ path: 'a/../../x', content: 'x' }], refuse: /climbs out/ },
  {
    name: 'write through a symlink of the layer',
    entries: [
      { path: 'sub/', type: 'dir' },
      { path: 'l', type: 'symlink', linkname: 'sub' },
      { path: 'l/x', content: 'x' },
    ],
    refuse: /writes through "l", a symlink/,
  },
  {
    name: 'write under a regular file',
    entries: [
      { path: 'f', content: 'x' },
      { path: 'f/x', content: 'x' },
    ],
    refuse: /its parent "f" is not a directory/,
  },
  {
    name: 'hardlink to an earlier regular file',
    entries: [
      { path: 'a', content: 'A' },
      { path: 'b', type: 'hardlink', linkname: 'a' },
    ],
    tree: ['a: f:A 644 nlink=2', 'b: f:A 644 nlink=2'],
  },
  {
    name: 'hardlink to a missing file',
    entries: [{ path: 'b', type: 'hardlink', linkname: 'nope' }],
    refuse: /hardlink target "nope" is not a regular file earlier in this layer/,
  },
  {
    name: 'hardlink to a symlink',
    entries: [
      { path: 's', type: 'symlink', linkname: HOST },
      { path: 'b', type: 'hardlink', linkname: 's' },
    ],
    refuse: /hardlink target "s" is not a regular file/,
  },
  {
    name: 'hardlink through a symlinked dir',
    entries: [
      { path: 'd/', type: 'dir' },
      { path: 'd/f', content: 'x' },
      { path: 'l', type: 'symlink', linkname: 'd' },
      { path: 'b', type: 'hardlink', linkname: 'l/f' },
    ],
    refuse: /hardlink target "l\/f" is not a regular file/,
  },
  {
    name: 'hardlink to itself',
    entries: [
      { path: 'a', content: 'A' },
      { path: 'a', type: 'hardlink', linkname: 'a' },
    ],
    refuse: /hardlink target "a" is not a regular file/,
  },
  {
    name: 'whiteout becomes a 0:0 char device; opaque marker an xattr',
    entries: [
      { path: 'd/', type: 'dir' },
      { path: 'd/.wh.gone' },
      { path: 'o/', type: 'dir' },
      { path: 'o/.wh..wh..opq' },
    ],
    tree: ['d: d 755', 'd/gone: c0:0', 'o: d opaque 755'],
  },
  {
    name: 'whiteout of a name this layer creates: the name stays',
    entries: [{ path: '.wh.x' }, { path: 'x', content: 'kept' }],
    tree: ['x: f:kept 644'],
  },
  {
    name: 'the same whiteout and opaque marker twice: one each',
    entries: [
      { path: 'd/.wh.x' },
      { path: 'd/.wh.x' },
      { path: 'd/.wh..wh..opq' },
      { path: 'd/.wh..wh..opq' },
    ],
    tree: ['d: d opaque 755', 'd/x: c0:0'],
  },
  { name: 'whiteout of ..', entries: [{ path: 'a/.wh...' }], refuse: /would remove a parent directory/ },
  { name: 'aufs bookkeeping ignored', entries: [{ path: '.wh..wh.plnk' }], tree: [] },
  {
    name: 'devices and fifos are not created',
    entries: [
      { path: 'mem', type: 'char', devmajor: 1, devminor: 1 },
      { path: 'loop', type: 'block', devmajor: 7, devminor: 0 },
      { path: 'p', type: 'fifo' },
    ],
    tree: [],
  },
  {
    name: 'a dir replaced by a file, a file by a dir',
    entries: [
      { path: 'd/', type: 'dir' },
      { path: 'd/x', content: 'x' },
      { path: 'd', content: 'now a file' },
      { path: 'f', content: 'x' },
      { path: 'f/', type: 'dir', mode: 0o700 },
    ],
    tree: ['d: f:now a file 644', 'f: d 700'],
  },
  {
    name: 'a symlink replaced by a dir and a file (never followed)',
    entries: [
      { path: 'd', type: 'symlink', linkname: HOST },
      { path: 'd/', type: 'dir' },
      { path: 'x', type: 'symlink', linkname: `${HOST}/x` },
      { path: 'x', content: 'own' },
    ],
    tree: ['d: d 755', 'x: f:own 644'],
  },
  {
    name: 'whiteout whose dir is later replaced by a file',
    entries: [{ path: 'd/', type: 'dir' }, { path: 'd/.wh.x' }, { path: 'd', content: 'file' }],
    refuse: /its whiteout directory "d" is not a directory by the end of the layer/,
  },
  {
    name: 'opaque marker whose dir is later removed with its parent',
    entries: [{ path: 'a/b/', type: 'dir' }, { path: 'a/b/.wh..wh..opq' }, { path: 'a', content: 'file' }],
    refuse: /its opaque marker directory "a" is not a directory/,
  },
  {
    name: 'implicit parents are made and reported',
    entries: [{ path: 'a/b/c', content: 'c' }],
    tree: ['a: d 755', 'a/b: d 755', 'a/b/c: f:c 644'],
    implicit: ['a', 'a/b'],
  },
];

describe('unpack rules (entries -> outcome)', () => {
  for (const [i, row] of rules.entries()) {
    test(row.name, async () => {
      const layer = join(root, `rule-${i}`);
      await mkdir(layer);
      const p = unpack(layer, row.entries);
      if ('refuse' in row) {
        await assert.rejects(
          p,
          (err: Error) => err instanceof UnsafeLayerError && row.refuse.test(err.message),
        );
        return;
      }
      const report = await p;
      assert.deepEqual(await listing(layer), row.tree);
      if (row.implicit) assert.deepEqual(report.implicitDirs, row.implicit);
    });
  }

  test('directory times are set after the entries under them', async () => {
    const layer = join(root, 'dir-times');
    await mkdir(layer);
    const tar = await buildTar([
      { path: 'd/', type: 'dir' },
      { path: 'd/x', content: 'x' },
      { path: 'd/.wh.y' },
    ]);
    await unpackLayer(Readable.from([tar]), { dest: layer });
    assert.equal((await stat(join(layer, 'd'))).mtimeMs, 0, 'the tar time (0) is the last word');
  });
});

describe('bounds, enforced before the write', () => {
  test('a layer over --max-layer-bytes stops at the entry that crosses it', async () => {
    const layer = join(root, 'layer-bytes');
    await mkdir(layer);
    const tar = await buildTar([
      { path: 'a', content: '12345' },
      { path: 'b', content: '123456' },
    ]);
    await assert.rejects(
      unpackLayer(Readable.from([tar]), { dest: layer, limits: { maxLayerBytes: 10 } }),
      (err: Error) =>
        err instanceof LayerTooLargeError &&
        err.limit === '--max-layer-bytes' &&
        /the layer unpacks to more than 10 bytes \(at "b"\); raise --max-layer-bytes/.test(err.message),
    );
    assert.deepEqual(await readdir(layer), ['a'], 'b was not written');
  });

  test('the image bound counts what other layers used (a shared budget)', async () => {
    const layer = join(root, 'image-bytes');
    await mkdir(layer);
    const budget = new ImageBudget(storeLimits({ maxImageBytes: 100 }), { bytes: 95, inodes: 0 });
    const tar = await buildTar([{ path: 'a', content: '123456' }]);
    await assert.rejects(
      unpackLayer(Readable.from([tar]), { dest: layer, budget }),
      (err: Error) =>
        err instanceof ImageTooLargeError &&
        err.limit === '--max-image-bytes' &&
        /the image unpacks to more than 100 bytes .*raise --max-image-bytes/.test(err.message),
    );
    assert.deepEqual(await readdir(layer), []);
  });

  test('entries and implicit dirs over --max-image-inodes', async () => {
    const layer = join(root, 'inodes');
    await mkdir(layer);
    const tar = await buildTar([{ path: 'a/b/c/d', content: 'x' }], true);
    await assert.rejects(
      unpackLayer(Readable.from([tar]), { dest: layer, limits: { maxImageInodes: 3 } }),
      (err: Error) =>
        err instanceof TooManyInodesError &&
        /more than 3 files, directories and links .*raise --max-image-inodes/.test(err.message),
    );
  });

  test('a PAX header over --max-pax-header-bytes is refused before it is buffered; smaller ones pass', async () => {
    const paxTar = async (value: string, content = 'x') => {
      const p = tarPack();
      const chunks: Buffer[] = [];
      p.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      const done = new Promise<void>((ok) => p.on('end', () => ok()));
      p.entry({ name: 'f', pax: { comment: value }, size: content.length }, content);
      p.finalize();
      await done;
      return Buffer.concat(chunks);
    };
    const big = join(root, 'pax-big');
    await mkdir(big);
    await assert.rejects(
      unpackLayer(Readable.from([await paxTar('y'.repeat(5000))]), {
        dest: big,
        limits: { maxPaxHeaderBytes: 4096 },
      }),
      (err: Error) =>
        err instanceof PaxHeaderTooLargeError &&
        /a tar PAX header of \d+ bytes is larger than the 4096 allowed; raise --max-pax-header-bytes/.test(
          err.message,
        ),
    );
    assert.deepEqual(await readdir(big), []);
    // A file whose data holds what looks like a huge PAX header is data, not framing.
    const fake = (await paxTar('y'.repeat(5000))).subarray(0, 512);
    const small = join(root, 'pax-small');
    await mkdir(small);
    const r = await unpackLayer(Readable.from([await paxTar('ok', fake.toString('latin1'))]), {
      dest: small,
      limits: { maxPaxHeaderBytes: 4096 },
    });
    assert.equal(r.entries, 1);
    assert.deepEqual(await readFile(join(small, 'f')), Buffer.from(fake.toString('latin1')));
  });
});
