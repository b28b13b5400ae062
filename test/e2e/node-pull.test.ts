/**
 * pullkeeper-node pull against the real registry in token mode: kubelet's
 * credential choice (node files, pod secrets, both, a wrong one), platform
 * selection, pull policy with counted registry requests, tenant isolation of
 * cached images, every hostile image, and a blob served with wrong bytes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper-node.js';
import { type Harness, startHarness } from '../harness/index.js';
import {
  buildImage,
  type Canary,
  hostileImages,
  hostPlatform,
  pushHostile,
  pushImage,
  pushIndex,
  seededBytes,
} from '../harness/registry/images.js';

const execFileP = promisify(execFile);
let h: Harness;
let work: string;
/** Registry requests that went through the counting proxy. */
let proxied: Array<{ method: string; url: string }> = [];
/** Response body bytes the proxy passed on to the puller, per request path. */
const served = new Map<string, number>();
let proxy: Server;
let host: string; // the proxy's host:port, used in every image reference

const PASSWORDS = { node: 'node-pass-7f3a', pod: 'pod-pass-19c2', tenantA: 'tenant-a-pass-55e0' };
const SECRETS = Object.values(PASSWORDS);
const noSecrets = (text: string) => {
  for (const s of SECRETS) assert.ok(!text.includes(s), 'a password reached the output');
};

function auth(user: string, pass: string) {
  return { auth: Buffer.from(`${user}:${pass}`).toString('base64') };
}

/** A kubernetes.io/dockerconfigjson Secret manifest file. */
async function secretFile(name: string, auths: Record<string, { auth: string }>): Promise<string> {
  const path = join(work, `${name}.yaml`);
  const data = Buffer.from(JSON.stringify({ auths })).toString('base64');
  await writeFile(
    path,
    toYaml({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': data },
    }),
  );
  return path;
}

async function rootDirWith(auths: Record<string, { auth: string }> | undefined): Promise<string> {
  const dir = await mkdtemp(join(work, 'kubelet-'));
  if (auths) await writeFile(join(dir, 'config.json'), JSON.stringify({ auths }));
  return dir;
}

async function cli(args: string[]) {
  const io = bufferIO();
  const code = await main(args, io);
  const out = io.stdout.join('\n');
  const err = io.stderr.join('\n');
  noSecrets(out + err);
  return { code, out, err, json: out.startsWith('{') ? JSON.parse(io.stdout.at(-1)!) : undefined };
}

async function pushed(repo: string, tag: string, seed: string) {
  const img = await buildImage({
    layers: [{ busybox: true }, { files: [{ path: `etc/${seed}.txt`, content: `${seed}\n` }] }],
    config: { Cmd: ['/bin/cat', `/etc/${seed}.txt`] },
  });
  await pushImage(h.registry!, repo, tag, img, { username: 'node-user', password: PASSWORDS.node });
  return img;
}

describe('pullkeeper-node pull (registry in token mode)', { timeout: 300_000 }, () => {
  before(async () => {
    h = await startHarness({ registry: { auth: 'token' } });
    await h.registry!.allow('node-user', PASSWORDS.node);
    await h.registry!.allow('pod-user', PASSWORDS.pod);
    await h.registry!.allow('tenant-a', PASSWORDS.tenantA);
    work = await mkdtemp(join(h.dir, 'node-pull-'));
    // kubelet's search order also looks at cwd and $HOME: keep them empty.
    process.env.HOME = await mkdtemp(join(work, 'home-'));
    process.chdir(work);
    const target = new URL(h.registry!.info.url);
    proxy = createServer((req, res) => {
      proxied.push({ method: req.method ?? 'GET', url: req.url ?? '' });
      const up = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          const path = (req.url ?? '').split('?')[0]!;
          r.on('data', (c: Buffer) => served.set(path, (served.get(path) ?? 0) + c.length));
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const addr = proxy.address();
    host = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  after(async () => {
    proxy?.closeAllConnections();
    proxy?.close();
    await h?.stop();
  });

  const tokensSince = (n: number) => h.registry!.tokenRequests().slice(n);

  test('node-file credentials (kubelet root dir config.json)', async () => {
    const img = await pushed('team/app', 'v1', 'node-file');
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const state = join(work, 'state-node');
    const t = h.registry!.tokenRequests().length;
    const r = await cli([
      'pull',
      `${host}/team/app:v1`,
      '--state-dir',
      state,
      '--root-dir',
      rootDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.json.digest, img.digest);
    assert.equal(r.json.pulled, true);
    assert.equal(r.json.layers.length, 2);
    assert.equal(await readFile(join(r.json.layers[1], 'etc/node-file.txt'), 'utf8'), 'node-file\n');
    assert.ok((await stat(join(r.json.layers[0], 'bin/busybox'))).mode & 0o100);
    assert.deepEqual(
      [...new Set(tokensSince(t).map((x) => x.user))],
      ['node-user'],
      'every token was asked for with the node credential',
    );
  });

  test('pod-secret credentials (a Secret manifest), no node file', async () => {
    const img = await pushed('team/secret-only', 'v1', 'pod-secret');
    const secret = await secretFile('pod-pull', { [host]: auth('pod-user', PASSWORDS.pod) });
    const t = h.registry!.tokenRequests().length;
    const r = await cli([
      'pull',
      `${host}/team/secret-only:v1`,
      '--secret',
      secret,
      '--state-dir',
      join(work, 'state-pod'),
      '--root-dir',
      await rootDirWith(undefined),
      '--json',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.json.digest, img.digest);
    assert.deepEqual([...new Set(tokensSince(t).map((x) => x.user))], ['pod-user']);
  });

  test('both: the pod secret is tried first, then the node file (order seen at the token server)', async () => {
    await pushed('team/both', 'v1', 'both');
    const secret = await secretFile('pod-stale', { [host]: auth('pod-user', 'stale-password') });
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const t = h.registry!.tokenRequests().length;
    const r = await cli([
      'pull',
      `${host}/team/both:v1`,
      '--secret',
      secret,
      '--state-dir',
      join(work, 'state-both'),
      '--root-dir',
      rootDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.err);
    const seen = tokensSince(t);
    assert.equal(seen[0]!.status, 401, 'the first token request used the pod secret and was refused');
    assert.equal(seen[0]!.user, undefined);
    assert.ok(
      seen.slice(1).every((x) => x.user === 'node-user' && x.status === 200),
      JSON.stringify(seen),
    );
    assert.ok(seen.length >= 2);
  });

  test('a wrong credential: kubelet error naming the key, no anonymous retry', async () => {
    await pushed('team/wrong', 'v1', 'wrong');
    const secret = await secretFile('pod-wrong', { [`${host}/team`]: auth('pod-user', 'not-the-password') });
    const t = h.registry!.tokenRequests().length;
    const r = await cli([
      'pull',
      `${host}/team/wrong:v1`,
      '--secret',
      secret,
      '--state-dir',
      join(work, 'state-wrong'),
      '--root-dir',
      await rootDirWith(undefined),
      '--json',
    ]);
    assert.equal(r.code, 1);
    assert.equal(r.json.error.reason, 'ErrImagePull');
    assert.match(r.json.error.message, /^Failed to pull image ".*team\/wrong:v1": /);
    assert.match(r.json.error.message, new RegExp(`credential "${host}/team"`));
    assert.match(r.json.error.message, /token server refused/);
    assert.ok(!r.json.error.message.includes('not-the-password'));
    const seen = tokensSince(t);
    assert.ok(seen.length >= 1);
    assert.ok(
      seen.every((x) => x.status === 401),
      `no token was granted (no anonymous retry): ${JSON.stringify(seen)}`,
    );
  });

  test('a 503 from the token server is retried; a missing tag is a clear 404', async () => {
    await pushed('team/flaky', 'v1', 'flaky');
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const base = ['--state-dir', join(work, 'state-flaky'), '--root-dir', rootDir, '--json'];
    const t = h.registry!.tokenRequests().length;
    h.registry!.failNext(1, 503);
    const r = await cli(['pull', `${host}/team/flaky:v1`, ...base]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      tokensSince(t)
        .slice(0, 2)
        .map((x) => x.status),
      [503, 200],
    );
    const missing = await cli(['pull', `${host}/team/flaky:no-such-tag`, ...base]);
    assert.equal(missing.code, 1);
    assert.match(missing.json.error.message, /not found \(HTTP 404\); check the image name, tag or digest/);
  });

  test('a multi-arch index: the host platform is chosen', async () => {
    const hostP = hostPlatform();
    const other = hostP.architecture === 'arm64' ? 'linux/amd64' : 'linux/arm64';
    const mine = await buildImage({ layers: [{ files: [{ path: 'arch.txt', content: 'host\n' }] }] });
    const foreign = await buildImage({
      layers: [{ files: [{ path: 'arch.txt', content: 'foreign\n' }] }],
      platform: { os: 'linux', architecture: other.split('/')[1]! },
    });
    const creds = { username: 'node-user', password: PASSWORDS.node };
    const idx = await pushIndex(
      h.registry!,
      'team/multi',
      'v1',
      { [other]: foreign, [`linux/${hostP.architecture}`]: mine },
      creds,
      {
        attestations: true,
      },
    );
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const r = await cli([
      'pull',
      `${host}/team/multi:v1`,
      '--state-dir',
      join(work, 'state-multi'),
      '--root-dir',
      rootDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.json.digest, mine.digest);
    assert.notEqual(r.json.digest, idx.digest);
    assert.equal(await readFile(join(r.json.layers[0], 'arch.txt'), 'utf8'), 'host\n');
  });

  test('IfNotPresent on a present image: zero registry requests; --always-pull-images asks the registry', async () => {
    await pushed('team/cached', 'v1', 'cached');
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const state = join(work, 'state-cached');
    const base = ['--state-dir', state, '--root-dir', rootDir, '--json'];
    assert.equal((await cli(['pull', `${host}/team/cached:v1`, ...base])).code, 0);
    proxied = [];
    const t = h.registry!.tokenRequests().length;
    const again = await cli(['pull', `${host}/team/cached:v1`, '--policy', 'IfNotPresent', ...base]);
    assert.equal(again.code, 0, again.err);
    assert.equal(again.json.pulled, false);
    assert.equal(proxied.length, 0, `registry requests: ${JSON.stringify(proxied)}`);
    assert.equal(tokensSince(t).length, 0);
    const never = await cli(['pull', `${host}/team/cached:v1`, '--policy', 'Never', ...base]);
    assert.equal(never.json.pulled, false);
    assert.equal(proxied.length, 0);

    const always = await cli([
      'pull',
      `${host}/team/cached:v1`,
      '--policy',
      'IfNotPresent',
      '--always-pull-images',
      ...base,
    ]);
    assert.equal(always.code, 0, always.err);
    assert.equal(always.json.pulled, true);
    assert.ok(
      proxied.some((p) => p.url.includes('/manifests/')),
      'the registry was asked',
    );

    const absent = await cli(['pull', `${host}/team/never-pushed:v1`, '--policy', 'Never', ...base]);
    assert.equal(absent.code, 3);
    assert.equal(absent.json.error.reason, 'ErrImageNeverPull');
    assert.match(absent.json.error.message, /is not present with pull policy of Never/);
  });

  test("tenant isolation (KEP-2535, on by default): tenant B is kept off tenant A's cached private image", async () => {
    const img = await pushed('tenant-a/private', 'v1', 'tenant-a');
    const state = join(work, 'state-tenants');
    const emptyRoot = await rootDirWith(undefined);
    const secretA = await secretFile('tenant-a', {
      [`${host}/tenant-a`]: auth('tenant-a', PASSWORDS.tenantA),
    });
    // Tenant B's secret is valid for its own repositories only.
    const secretB = await secretFile('tenant-b', { [`${host}/tenant-b`]: auth('pod-user', PASSWORDS.pod) });
    const ref = `${host}/tenant-a/private:v1`;
    const base = ['--state-dir', state, '--root-dir', emptyRoot, '--json', '--policy', 'IfNotPresent'];
    const a = await cli(['pull', ref, '--secret', secretA, ...base]);
    assert.equal(a.code, 0, a.err);
    assert.equal(a.json.digest, img.digest);

    // kubelet 1.35's default (NeverVerifyPreloadedImages): B's credentials are checked and refused.
    proxied = [];
    const bDefault = await cli(['pull', ref, '--secret', secretB, ...base]);
    assert.equal(bDefault.code, 1, 'tenant B may not use the cached image');
    assert.equal(bDefault.json.error.reason, 'ErrImagePull');
    assert.match(bDefault.json.error.message, /pull access denied with no credential/);
    assert.deepEqual(
      proxied.map((p) => `${p.method} ${p.url.split('/manifests/')[0]}`),
      ['HEAD /v2/tenant-a/private', 'HEAD /v2/tenant-a/private'],
      'one manifest HEAD (and its retry with a token), no layer',
    );

    // A's own Secret is on the record: no registry request at all.
    proxied = [];
    const aAgain = await cli(['pull', ref, '--secret', secretA, ...base]);
    assert.equal(aAgain.code, 0, aAgain.err);
    assert.equal(aAgain.json.pulled, false);
    assert.equal(proxied.length, 0, JSON.stringify(proxied));

    // The deprecated flag still works: AlwaysVerify.
    const bStrict = await cli(['pull', ref, '--secret', secretB, '--verify-cached-credentials', ...base]);
    assert.equal(bStrict.code, 1);
    assert.equal(bStrict.json.error.reason, 'ErrImagePull');
    const aStrict = await cli(['pull', ref, '--secret', secretA, '--verify-cached-credentials', ...base]);
    assert.equal(aStrict.code, 0, aStrict.err);
    assert.match(aStrict.err, /--verify-cached-credentials is deprecated; it means .* AlwaysVerify/);
    assert.equal(aStrict.json.pulled, false, 'tenant A keeps using the cache');
    const both = await cli([
      'pull',
      ref,
      '--verify-cached-credentials',
      '--image-pull-credentials-verification-policy',
      'AlwaysVerify',
      ...base,
    ]);
    assert.equal(both.code, 2);
    assert.match(both.err, /deprecated spelling/);

    // NeverVerify (the old default) hands the cached copy to anyone on the node.
    const bLoose = await cli([
      'pull',
      ref,
      '--secret',
      secretB,
      '--image-pull-credentials-verification-policy',
      'NeverVerify',
      ...base,
    ]);
    assert.equal(bLoose.code, 0, bLoose.err);
    assert.equal(bLoose.json.pulled, false);
  });

  test('a blob served with wrong bytes is refused and not stored', async () => {
    const img = await pushed('team/tampered', 'v1', 'tampered');
    const layer = img.layers[1]!;
    const evil = await buildImage({
      layers: [{ files: [{ path: 'etc/tampered.txt', content: 'EVIL!!!!!\n' }] }],
    });
    await h.registry!.overwriteBlob(layer.digest, evil.layers[0]!.data);
    const state = join(work, 'state-tampered');
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const r = await cli([
      'pull',
      `${host}/team/tampered:v1`,
      '--state-dir',
      state,
      '--root-dir',
      rootDir,
      '--json',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.json.error.message, /does not match its digest/);
    assert.ok(!existsSync(join(state, 'layers/sha256', layer.diffId.slice(7))), 'the layer was not stored');
    assert.deepEqual(await readdir(join(state, 'tmp')), [], 'no partial download is left');
    const images = await cli(['images', '--state-dir', state, '--json']);
    assert.deepEqual(images.json ?? JSON.parse(images.out), []);
  });

  test('whiteouts and opaque dirs are what overlayfs reads; setuid is dropped', async () => {
    const img = await buildImage({
      layers: [
        {
          files: [
            { path: 'a/keep.txt', content: 'keep\n' },
            { path: 'a/gone.txt', content: 'gone\n' },
            { path: 'd/old.txt', content: 'old\n' },
            { path: 'bin/su', content: 'x', mode: 0o4755 },
          ],
        },
        {
          files: [
            { path: 'a/.wh.gone.txt' },
            { path: 'd/.wh..wh..opq' },
            { path: 'd/new.txt', content: 'new\n' },
          ],
        },
      ],
    });
    await pushImage(h.registry!, 'team/overlay', 'v1', img, {
      username: 'node-user',
      password: PASSWORDS.node,
    });
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const r = await cli([
      'pull',
      `${host}/team/overlay:v1`,
      '--state-dir',
      join(work, 'state-overlay'),
      '--root-dir',
      rootDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.err);
    const [lower, upper] = r.json.layers as string[];
    assert.equal((await stat(join(lower!, 'bin/su'))).mode & 0o7777, 0o755, 'setuid dropped by default');
    const wh = await stat(join(upper!, 'a/gone.txt'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'a whiteout is a 0:0 character device');
    const mnt = await mkdtemp(join(work, 'overlay-'));
    for (const d of ['upper', 'work', 'merged']) await mkdir(join(mnt, d));
    const merged = join(mnt, 'merged');
    await execFileP('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${upper}:${lower},upperdir=${mnt}/upper,workdir=${mnt}/work`,
      merged,
    ]);
    try {
      assert.deepEqual((await readdir(join(merged, 'a'))).sort(), ['keep.txt']);
      assert.deepEqual(await readdir(join(merged, 'd')), ['new.txt'], 'the opaque dir hides the lower one');
    } finally {
      await execFileP('umount', [merged]);
    }
  });

  /** What a refused pull must leave in its state dir: nothing committed, nothing half-written. */
  async function assertStoreEmpty(state: string) {
    for (const d of ['layers/sha256', 'blobs/sha256', 'tmp']) {
      assert.deepEqual(await readdir(join(state, d)).catch(() => []), [], `${d} is empty`);
    }
    assert.deepEqual(JSON.parse((await cli(['images', '--state-dir', state, '--json'])).out), []);
  }

  test('byte, inode and PAX header bounds: refused while streaming, nothing left in the store', async () => {
    // Two 60 kB layers: each fits in 100 kB, together they do not.
    const img = await buildImage({
      layers: [
        { randomBytes: 60_000, seed: 'big-1' },
        { randomBytes: 60_000, seed: 'big-2' },
      ],
    });
    await pushImage(h.registry!, 'team/big', 'v1', img, { username: 'node-user', password: PASSWORDS.node });
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const pull = (ref: string, state: string, ...flags: string[]) =>
      cli(['pull', ref, '--root-dir', rootDir, '--json', '--state-dir', state, ...flags]);
    /** Pulls with `flags` into a fresh state dir: ErrImagePull with `message`, and an empty store. */
    const refused = async (repo: string, state: string, flags: string[], message: RegExp) => {
      const r = await pull(`${host}/${repo}:v1`, join(work, state), ...flags);
      assert.equal(r.code, 1, `${flags.join(' ')} refuses ${repo}`);
      assert.equal(r.json.error.reason, 'ErrImagePull');
      assert.match(r.json.error.message, message);
      await assertStoreEmpty(join(work, state));
    };

    // The whole-image bound is counted across layers as they stream: the layer that crosses it
    // stops, and the one that fit is not committed either.
    const big = 'team/big';
    await refused(
      big,
      'state-big',
      ['--max-image-bytes', '100000'],
      /the image unpacks to more than 100000 bytes .*raise --max-image-bytes/,
    );
    await refused(
      big,
      'state-big-layer',
      ['--max-layer-bytes', '50000'],
      /the layer unpacks to more than 50000 bytes .*raise --max-layer-bytes/,
    );
    // --max-image-bytes alone still bounds every layer (the layer bound defaults to it).
    await refused(big, 'state-big-alone', ['--max-image-bytes', '50000'], /more than 50000 bytes/);
    await refused(
      big,
      'state-big-inodes',
      ['--max-image-inodes', '3'],
      /more than 3 files, directories and links .*--max-image-inodes/,
    );
    // Within the bounds the same image pulls.
    const fits = await pull(`${host}/${big}:v1`, join(work, 'state-big-fits'), '--max-image-bytes', '120000');
    assert.equal(fits.code, 0, fits.err);

    // A long name makes a PAX header (~330 bytes here); 200 is too small for it.
    const longName = `${'d'.repeat(120)}/${'f'.repeat(120)}/file.txt`;
    const pax = await buildImage({ layers: [{ files: [{ path: longName, content: 'x\n' }] }] });
    await pushImage(h.registry!, 'team/pax', 'v1', pax, { username: 'node-user', password: PASSWORDS.node });
    await refused(
      'team/pax',
      'state-pax',
      ['--max-pax-header-bytes', '200'],
      /a tar PAX header of \d+ bytes is larger than the 200 allowed/,
    );
    const paxOk = await pull(`${host}/team/pax:v1`, join(work, 'state-pax-ok'));
    assert.equal(paxOk.code, 0, paxOk.err);
    assert.equal(await readFile(join(paxOk.json.layers[0], longName), 'utf8'), 'x\n');
  });

  test('a layer over the bound stops at once: most of its blob is never downloaded', async (t) => {
    // 2 MB, then 32 MB of incompressible data in one layer; the bound is crossed by the first file.
    const img = await buildImage({
      layers: [
        {
          files: [
            { path: 'data/a-first.bin', content: seededBytes(2_000_000, 'stream-1') },
            { path: 'data/b-rest.bin', content: seededBytes(32_000_000, 'stream-2') },
          ],
          gzipLevel: 1,
        },
      ],
    });
    await pushImage(h.registry!, 'team/huge', 'v1', img, { username: 'node-user', password: PASSWORDS.node });
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const state = join(work, 'state-huge');
    const blobPath = `/v2/team/huge/blobs/${img.layers[0]!.digest}`;
    served.delete(blobPath);
    const r = await cli([
      'pull',
      `${host}/team/huge:v1`,
      '--root-dir',
      rootDir,
      '--json',
      '--state-dir',
      state,
      '--max-image-bytes',
      '1000000',
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.json.error.message,
      /the image unpacks to more than 1000000 bytes \(at "data\/a-first\.bin"/,
    );
    const got = served.get(blobPath) ?? 0;
    const size = img.layers[0]!.size;
    t.diagnostic(`over-bound layer: ${got} of ${size} blob bytes passed the proxy before the pull stopped`);
    assert.ok(got < size / 2, `the pull stopped early (${got} of ${size} bytes)`);
    await assertStoreEmpty(state);
  });

  test('images and gc', async () => {
    const state = join(work, 'state-cached');
    const list = JSON.parse((await cli(['images', '--state-dir', state, '--json'])).out) as Array<{
      ref: string;
    }>;
    assert.deepEqual(
      list.map((i) => i.ref),
      [`${host}/team/cached:v1`],
    );
    const layersBefore = await readdir(join(state, 'layers/sha256'));
    const gc = await cli(['gc', '--state-dir', state, '--image', `${host}/team/cached:v1`, '--json']);
    assert.equal(gc.code, 0);
    assert.deepEqual(gc.json.removedImages, [`${host}/team/cached:v1`]);
    assert.equal(gc.json.removedLayers, layersBefore.length);
    assert.deepEqual(await readdir(join(state, 'layers/sha256')), []);
  });

  describe('hostile images are refused or contained; nothing lands outside the state dir', () => {
    for (const [name, builder] of Object.entries(hostileImages)) {
      test(`${name}: ${builder.description}`, async () => {
        const hi = await builder.build();
        const repo = `hostile/${name}`;
        await pushHostile(h.registry!, repo, 'v1', hi, { username: 'node-user', password: PASSWORDS.node });
        const sandbox = await mkdtemp(join(work, `sandbox-${name}-`));
        const state = join(sandbox, 'state');
        await mkdir(state);
        // Canaries that must stay untouched exist beforehand.
        const canaryPath = (c: Canary, rootfs: string) =>
          c.base === 'host'
            ? c.path
            : c.base === 'rootfsParent'
              ? join(sandbox, c.path)
              : join(rootfs, c.path);
        const dirCanaries = new Map<string, string>();
        for (const c of hi.canaries.filter((c) => c.expect === 'untouched')) {
          const p = canaryPath(c, state);
          if (c.dir) {
            await mkdir(p);
            await writeFile(join(p, 'canary'), 'canary\n');
            await utimes(p, new Date('2001-01-01T00:00:00Z'), new Date('2001-01-01T00:00:00Z'));
            dirCanaries.set(p, await dirState(p));
          } else await writeFile(p, 'canary\n');
        }
        const hostBefore = await listings();
        const sandboxBefore = await tree(sandbox, state);
        const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
        const r = await cli([
          'pull',
          `${host}/${repo}:v1`,
          '--state-dir',
          state,
          '--root-dir',
          rootDir,
          '--json',
        ]);
        try {
          if (hi.outcome === 'refuse') assert.equal(r.code, 1, `${name} must be refused`);
          if (r.code !== 0) {
            assert.equal(r.json.error.reason, 'ErrImagePull');
            assert.ok(r.json.error.message.length > 20);
            assert.match(
              r.json.error.message,
              /refused|digest|not a regular file|symlink|climbs|absolute|parent/,
            );
            assert.deepEqual(await readdir(join(state, 'tmp')), [], 'the refused layer is removed');
          }
          const roots: string[] = r.code === 0 ? r.json.layers : [];
          for (const c of hi.canaries) {
            const places =
              c.base === 'rootfs' ? roots.map((root) => canaryPath(c, root)) : [canaryPath(c, state)];
            for (const p of places) {
              const st = await lstat(p).catch(() => undefined);
              if (c.expect === 'absent') assert.equal(st, undefined, `${p} must not exist`);
              if (c.expect === 'untouched' && c.dir) {
                assert.equal(await dirState(p), dirCanaries.get(p), `${p} changed`);
              } else if (c.expect === 'untouched') {
                assert.equal(await readFile(p, 'utf8'), 'canary\n', `${p} changed`);
                assert.equal(st!.nlink, 1, `${p} gained a hardlink`);
              }
            }
            if (c.expect === 'present' && r.code === 0) {
              assert.ok(
                roots.some((root) => existsSync(canaryPath(c, root))),
                `${c.path} must still be in the image`,
              );
            }
          }
          assert.deepEqual(
            await tree(sandbox, state),
            sandboxBefore,
            'nothing appeared beside the state dir',
          );
          assert.deepEqual(await listings(), hostBefore, 'nothing appeared in /, /tmp, /etc or the work dir');
        } finally {
          for (const c of hi.canaries.filter((c) => c.base === 'host')) {
            await rm(c.path, { force: true, recursive: true });
          }
        }
      });
    }
  });

  test('the bin: --json on stdout, exit code, events on stderr', async () => {
    await pushed('team/bin', 'v1', 'bin');
    const rootDir = await rootDirWith({ [host]: auth('node-user', PASSWORDS.node) });
    const { stdout, stderr } = await execFileP(
      process.execPath,
      [
        join(import.meta.dirname, '../../bin/pullkeeper-node.js'),
        'pull',
        `${host}/team/bin:v1`,
        '--state-dir',
        join(work, 'state-bin'),
        '--root-dir',
        rootDir,
      ],
      { timeout: 60_000 },
    );
    assert.match(stdout, new RegExp(`^${host}/team/bin:v1@sha256:[a-f0-9]{64} pulled\n`));
    assert.match(stderr, /Normal Pulling: Pulling image/);
    assert.match(stderr, /Normal Pulled: Successfully pulled image .* Image size: \d+ bytes\./);
    noSecrets(stdout + stderr);
  });
});

/**
 * What a vulnerable unpacker would leave: hostile names in /, /tmp and /etc
 * (other processes share those, so only hostile names count), and anything
 * new in the test's work dir.
 */
async function listings(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const d of ['/', '/tmp', '/etc'])
    out[d] = (await readdir(d)).filter((n) => n.includes('pullkeeper-hostile')).sort();
  out[work] = (await readdir(work)).filter((n) => !n.startsWith('kubelet-') && !n.endsWith('.yaml')).sort();
  return out;
}

/** A directory canary's listing, mtime, ctime and extended attributes (getfattr -h: the dir itself). */
async function dirState(p: string): Promise<string> {
  const st = await lstat(p);
  const { stdout } = await execFileP('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', p]);
  return JSON.stringify({
    dir: st.isDirectory(),
    list: (await readdir(p)).sort(),
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
    xattrs: stdout.trim(),
  });
}

/** Every path under `dir`, except inside `skip`. */
async function tree(dir: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (p === skip) continue;
      out.push(p);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}
