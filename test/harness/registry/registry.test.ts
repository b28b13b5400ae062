/**
 * The registry harness against itself: real docker-registry in htpasswd and
 * token mode, images pushed with our client and pulled back, the reference
 * pull (skopeo + umoci), deterministic digests, and the corrupt-blob image.
 * Credentials are random per run and never appear in assertion messages.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HarnessError, run } from '../proc.js';
import {
  type BuiltImage,
  buildImage,
  buildIndex,
  type Creds,
  hostileImages,
  pushHostile,
  pushImage,
  pushIndex,
  RegistryClient,
  sha256,
} from './images.js';
import { checkRegistry, type Registry, startRegistry } from './index.js';

const secret = () => randomBytes(18).toString('base64url');

/** Runs a command whose argv holds a secret; a failure message has the secret masked. */
async function runSecret(cmd: string, args: string[], secrets: string[]) {
  try {
    return await run(cmd, args, { timeoutMs: 60_000 });
  } catch (err) {
    let msg = err instanceof Error ? err.message : String(err);
    for (const s of secrets) msg = msg.split(s).join('***');
    throw new HarnessError(msg);
  }
}

/** Pulls a manifest by digest and every blob it names; checks bytes against the built image. */
async function verifyImage(client: RegistryClient, repo: string, img: BuiltImage) {
  const m = await client.getManifest(repo, img.digest);
  assert.equal(m.status, 200, `GET manifest ${repo}@${img.digest}`);
  assert.equal(sha256(m.data), img.digest, 'manifest bytes hash to the digest');
  assert.ok(m.data.equals(img.manifest.data), 'manifest bytes as pushed');
  assert.equal(m.mediaType, img.mediaType);
  for (const b of [img.config, ...img.layers]) {
    const r = await client.getBlob(repo, b.digest);
    assert.equal(r.status, 200, `GET blob ${b.digest}`);
    assert.equal(sha256(r.data), b.digest, 'blob bytes hash to the digest');
    assert.equal(r.data.length, b.size);
  }
}

const smallImage = (word: string, mediaTypes: 'oci' | 'docker' = 'oci') =>
  buildImage({
    layers: [{ busybox: true }, { files: [{ path: 'etc/word', content: `${word}\n` }] }],
    config: { Cmd: ['/bin/cat', '/etc/word'] },
    mediaTypes,
  });

it('checkRegistry finds every tool', async () => {
  const checks = await checkRegistry();
  for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail} (fix: ${c.fix})`);
  assert.deepEqual(
    checks.map((c) => c.name),
    ['docker-registry', 'htpasswd', 'openssl', 'skopeo', 'umoci', 'busybox-static'],
  );
});

it('the same spec builds the same digests twice', async () => {
  const spec = () =>
    buildImage({
      layers: [
        { busybox: true },
        {
          files: [
            { path: 'a/b/c.txt', content: 'x' },
            { path: 'a/link', type: 'symlink', linkname: 'b/c.txt' },
          ],
        },
        { randomBytes: 300_000, seed: 'det' },
      ],
      config: { Env: ['A=1'], Entrypoint: ['/bin/sh'], Cmd: ['-c', 'true'], WorkingDir: '/a', User: '65534' },
    });
  const [a, b] = [await spec(), await spec()];
  assert.equal(a.digest, b.digest);
  assert.deepEqual(
    a.layers.map((l) => [l.digest, l.diffId]),
    b.layers.map((l) => [l.digest, l.diffId]),
  );
  // gzip header: no name, mtime 0
  for (const l of a.layers) assert.equal(l.data.readUInt32LE(4), 0, 'gzip mtime is 0');
  const other = await buildImage({ layers: [{ randomBytes: 300_000, seed: 'other' }] });
  assert.notEqual(other.layers[0]!.digest, a.layers[2]!.digest, 'seed changes the bytes');
  const idx1 = buildIndex({ 'linux/amd64': a, 'linux/arm64': b }, { attestations: true });
  const idx2 = buildIndex({ 'linux/amd64': a, 'linux/arm64': b }, { attestations: true });
  assert.equal(idx1.digest, idx2.digest);
});

for (const auth of ['htpasswd', 'token'] as const) {
  describe(`registry with ${auth} auth`, () => {
    let reg: Registry;
    let dir: string;
    const creds: Creds = { username: 'ci-user', password: secret() };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `pk-registry-${auth}-`));
      reg = await startRegistry({ dir: join(dir, 'registry'), auth });
      await reg.allow(creds.username, creds.password);
    });
    after(async () => {
      await reg?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('refuses an anonymous pull with 401', async () => {
      const img = await smallImage('anon');
      await pushImage(reg, 'team/anon', 'v1', img, creds);
      const anon = new RegistryClient(reg);
      assert.equal((await anon.getManifest('team/anon', 'v1')).status, 401);
      assert.equal((await anon.getBlob('team/anon', img.layers[1]!.digest)).status, 401);
      await assert.rejects(pushImage(reg, 'team/anon', 'v2', img), /HTTP 401/);
    });

    it('an allowed credential pushes and pulls back single-arch images (OCI and docker media types)', async () => {
      for (const mt of ['oci', 'docker'] as const) {
        const img = await smallImage(`single-${mt}`, mt);
        const pushed = await pushImage(reg, 'team/app', `v1-${mt}`, img, creds);
        assert.equal(pushed.digest, img.digest);
        assert.equal(pushed.reference, `${reg.info.host}/team/app:v1-${mt}`);
        const client = new RegistryClient(reg, creds);
        const byTag = await client.getManifest('team/app', `v1-${mt}`);
        assert.equal(byTag.status, 200);
        assert.equal(byTag.digest, img.digest);
        await verifyImage(client, 'team/app', img);
      }
    });

    it('an allowed credential pushes and pulls back a multi-arch index with an attestation', async () => {
      const amd = await buildImage({
        layers: [{ busybox: true }],
        platform: { os: 'linux', architecture: 'amd64' },
      });
      const arm = await buildImage({
        layers: [{ busybox: true }],
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      });
      assert.notEqual(amd.digest, arm.digest);
      const r = await pushIndex(
        reg,
        'team/multi',
        'v1',
        { 'linux/amd64': amd, 'linux/arm64/v8': arm },
        creds,
        {
          attestations: true,
        },
      );
      const client = new RegistryClient(reg, creds);
      const got = await client.getManifest('team/multi', 'v1');
      assert.equal(got.status, 200);
      assert.equal(got.mediaType, 'application/vnd.oci.image.index.v1+json');
      assert.equal(sha256(got.data), r.digest);
      const index = JSON.parse(got.data.toString()) as {
        manifests: Array<{
          digest: string;
          platform: { os: string; architecture: string; variant?: string };
        }>;
      };
      assert.deepEqual(
        index.manifests.map((m) => [m.platform.os, m.platform.architecture, m.platform.variant]),
        [
          ['linux', 'amd64', undefined],
          ['linux', 'arm64', 'v8'],
          ['unknown', 'unknown', undefined],
          ['unknown', 'unknown', undefined],
        ],
      );
      for (const m of r.index.manifests) await verifyImage(client, 'team/multi', m);
      const armConfig = JSON.parse(arm.config.data.toString()) as { architecture: string; variant: string };
      assert.deepEqual([armConfig.architecture, armConfig.variant], ['arm64', 'v8']);
      // a docker manifest list as well
      const list = await pushIndex(
        reg,
        'team/multi',
        'v1-docker',
        {
          'linux/amd64': await smallImage('list-amd', 'docker'),
        },
        creds,
        { mediaTypes: 'docker' },
      );
      const gotList = await client.getManifest('team/multi', 'v1-docker');
      assert.equal(gotList.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
      assert.equal(sha256(gotList.data), list.digest);
    });

    it('accepts exactly the allowed credentials: revoked and unknown ones are refused', async () => {
      const img = await smallImage('revoke');
      await pushImage(reg, 'team/rev', 'v1', img, creds);
      const temp: Creds = { username: 'temp-user', password: secret() };
      const pid = reg.pid;
      await reg.allow(temp.username, temp.password);
      assert.equal(
        (await new RegistryClient(reg, temp).getManifest('team/rev', 'v1')).status,
        200,
        'newly allowed',
      );
      await reg.allow(temp.username, secret()); // password rotated: the old one stops working
      assert.equal(
        (await new RegistryClient(reg, temp).getManifest('team/rev', 'v1')).status,
        401,
        'old password',
      );
      await reg.allow(temp.username, temp.password);
      assert.equal(
        (await new RegistryClient(reg, temp).getManifest('team/rev', 'v1')).status,
        200,
        're-allowed',
      );
      await reg.revoke(temp.username);
      assert.equal(
        (await new RegistryClient(reg, temp).getManifest('team/rev', 'v1')).status,
        401,
        'revoked',
      );
      const unknown: Creds = { username: 'nobody-here', password: secret() };
      assert.equal(
        (await new RegistryClient(reg, unknown).getManifest('team/rev', 'v1')).status,
        401,
        'unknown',
      );
      const wrongPw: Creds = { username: creds.username, password: secret() };
      assert.equal(
        (await new RegistryClient(reg, wrongPw).getManifest('team/rev', 'v1')).status,
        401,
        'wrong pw',
      );
      assert.equal(
        (await new RegistryClient(reg, creds).getManifest('team/rev', 'v1')).status,
        200,
        'still allowed',
      );
      assert.equal(reg.pid, pid, 'no restart was needed');
    });

    if (auth === 'token')
      it('limitRepositories: a user reads only repositories under its prefixes, until the limit is lifted', async () => {
        const img = await smallImage('limits');
        await pushImage(reg, 'team-a/app', 'v1', img, creds);
        await pushImage(reg, 'team-b/app', 'v1', img, creds);
        const tb: Creds = { username: 'team-b-user', password: secret() };
        await reg.allow(tb.username, tb.password);
        reg.limitRepositories(tb.username, ['team-b/']);
        const client = () => new RegistryClient(reg, tb);
        assert.equal((await client().getManifest('team-b/app', 'v1')).status, 200, 'own repository');
        assert.equal((await client().getManifest('team-a/app', 'v1')).status, 401, "another team's");
        reg.limitRepositories(tb.username, undefined);
        assert.equal((await client().getManifest('team-a/app', 'v1')).status, 200, 'limit lifted');
        await reg.revoke(tb.username);
      });

    it('skopeo copy + umoci unpack (the reference pull) produce a rootfs with /bin/busybox', async () => {
      const img = await smallImage('reference');
      await pushImage(reg, 'team/ref', 'v1', img, creds);
      const oci = join(dir, 'oci-ref');
      const bundle = join(dir, 'bundle-ref');
      await runSecret(
        'skopeo',
        [
          '--insecure-policy',
          'copy',
          '--src-creds',
          `${creds.username}:${creds.password}`,
          '--src-tls-verify=false',
          `docker://${reg.info.host}/team/ref:v1`,
          `oci:${oci}:v1`,
        ],
        [creds.password],
      );
      await run('umoci', ['unpack', '--image', `${oci}:v1`, bundle]);
      const bb = await readFile(join(bundle, 'rootfs/bin/busybox'));
      assert.equal(sha256(bb), sha256(await readFile('/bin/busybox')));
      assert.equal(await readlink(join(bundle, 'rootfs/bin/sh')), 'busybox');
      assert.equal(await readFile(join(bundle, 'rootfs/etc/word'), 'utf8'), 'reference\n');
      assert.equal(((await lstat(join(bundle, 'rootfs/tmp'))).mode & 0o7777).toString(8), '1777');
      const index = JSON.parse(await readFile(join(oci, 'index.json'), 'utf8')) as {
        manifests: Array<{ digest: string }>;
      };
      assert.equal(index.manifests[0]?.digest, img.digest, 'skopeo kept the manifest digest');
      const wrong = await run(
        'skopeo',
        [
          '--insecure-policy',
          'inspect',
          '--raw',
          '--tls-verify=false',
          `docker://${reg.info.host}/team/ref:v1`,
        ],
        { allowFail: true },
      );
      assert.notEqual(wrong.code, 0, 'skopeo without credentials is refused');
    });

    it('the corrupt-blob hostile images really serve bytes that do not match their digests', async () => {
      const layer = await hostileImages['corrupt-layer-blob']!.build();
      await pushHostile(reg, 'hostile/corrupt-layer', 'v1', layer, creds);
      const client = new RegistryClient(reg, creds);
      const payload = layer.image.layers[1]!;
      const served = await client.getBlob('hostile/corrupt-layer', payload.digest);
      assert.equal(served.status, 200);
      assert.equal(served.data.length, payload.size, 'same size as the descriptor says');
      assert.notEqual(sha256(served.data), payload.digest, 'served bytes do not hash to the digest');

      const man = await hostileImages['corrupt-manifest']!.build();
      await pushHostile(reg, 'hostile/corrupt-manifest', 'v1', man, creds);
      const got = await client.getManifest('hostile/corrupt-manifest', man.image.digest);
      assert.equal(got.status, 200);
      assert.equal(got.digest, man.image.digest, 'the registry still claims the good digest');
      assert.notEqual(sha256(got.data), man.image.digest, 'served manifest does not hash to the digest');
    });

    it('accepts every hostile image', async () => {
      const client = new RegistryClient(reg, creds);
      for (const [name, h] of Object.entries(hostileImages)) {
        const built = await h.build();
        const r = await pushHostile(reg, `hostile/${name}`, 'v1', built, creds);
        assert.equal(r.digest, built.image.digest, name);
        assert.equal((await client.getManifest(`hostile/${name}`, 'v1')).status, 200, name);
      }
    });

    if (auth === 'token') {
      it('token server: anonymous gets an empty grant, failures can be injected, no secrets logged', async () => {
        await pushImage(reg, 'team/tok', 'v1', await smallImage('tok'), creds);
        const before = reg.tokenRequests().length;
        reg.failNext(1, 503);
        const r = await new RegistryClient(reg, creds).getManifest('team/tok', 'v1');
        assert.equal(r.status, 503);
        assert.equal((await new RegistryClient(reg, creds).getManifest('team/tok', 'v1')).status, 200);
        reg.setTokenDelay(150);
        const t0 = Date.now();
        assert.equal((await new RegistryClient(reg, creds).getManifest('team/tok', 'v1')).status, 200);
        assert.ok(Date.now() - t0 >= 150, 'token delay applies');
        reg.setTokenDelay(0);
        const log = reg.tokenRequests().slice(before);
        assert.deepEqual(
          log.map((l) => [l.status, l.user]),
          [
            [503, undefined],
            [200, creds.username],
            [200, creds.username],
          ],
        );
        assert.ok(!JSON.stringify(reg.tokenRequests()).includes(creds.password), 'token log has no password');
        // anonymous: a token is issued, but it grants nothing
        const anonToken = await fetch(
          `${reg.info.tokenRealm}?service=test-registry&scope=repository:team/tok:pull`,
        );
        const body = (await anonToken.json()) as { token: string };
        const claims = JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString()) as {
          access: unknown[];
          aud: string;
        };
        assert.deepEqual(claims.access, []);
        assert.equal(claims.aud, 'test-registry');
        // containerd's OAuth2 password grant
        const post = await fetch(reg.info.tokenRealm!, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'password',
            username: creds.username,
            password: creds.password,
            service: 'test-registry',
            scope: 'repository:team/tok:pull',
            client_id: 'test',
          }),
        });
        assert.equal(post.status, 200);
        const { access_token } = (await post.json()) as { access_token: string };
        const viaPost = await fetch(`${reg.info.url}/v2/team/tok/manifests/v1`, {
          headers: {
            authorization: `Bearer ${access_token}`,
            accept: 'application/vnd.oci.image.manifest.v1+json',
          },
        });
        assert.equal(viaPost.status, 200);
      });
    }

    it('never logs the password', async () => {
      const log = await readFile(reg.info.logFile, 'utf8');
      assert.ok(!log.includes(creds.password), 'registry log has no password');
    });
  });
}
