/**
 * `pullkeeper-node credential-provider` as kubelet runs it: an exec plugin fed
 * a CredentialProviderRequest on stdin. The credentials it answers with must
 * really log in to the registry (token mode).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { ImageStore } from '../../src/runner/store/store.js';
import { type Harness, startHarness } from '../harness/index.js';
import { buildImage, pushImage } from '../harness/registry/images.js';
import { runCredentialProvider } from './support/plugin.js';

const PASS = 'provider-pass-81d4';
const TEAM_PASS = 'team-pass-2b7e';
let h: Harness;
let work: string;
let credsFile: string;

const plugin = (args: string[], stdin: string) => runCredentialProvider(args, stdin, 30_000);

const request = (image: string) =>
  JSON.stringify({
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    kind: 'CredentialProviderRequest',
    image,
  });

describe('pullkeeper-node credential-provider (kubelet exec plugin protocol)', { timeout: 120_000 }, () => {
  before(async () => {
    h = await startHarness({ registry: { auth: 'token' } });
    await h.registry!.allow('provider-user', PASS);
    await h.registry!.allow('team-user', TEAM_PASS);
    work = await mkdtemp(join(h.dir, 'provider-'));
    const img = await buildImage({ layers: [{ files: [{ path: 'hello.txt', content: 'hello\n' }] }] });
    await pushImage(h.registry!, 'team/app', 'v1', img, { username: 'provider-user', password: PASS });
    const host = h.registry!.info.host;
    const port = host.split(':')[1];
    credsFile = join(work, 'credentials.json');
    // What pullkeeper's node push writes: a docker config.json plus its expiry map.
    await writeFile(
      credsFile,
      JSON.stringify({
        auths: {
          [`127.*.0.1:${port}`]: { username: 'provider-user', password: PASS },
          [`${host}/team/special`]: { username: 'team-user', password: TEAM_PASS },
        },
        pullkeeperExpiry: {
          [`127.*.0.1:${port}`]: new Date(Date.now() + 2 * 3600_000).toISOString(),
          [`${host}/team/special`]: new Date(Date.now() + 600_000).toISOString(),
        },
      }),
      { mode: 0o600 },
    );
  });
  after(async () => {
    await h?.stop();
  });

  test('a matching image: auth keyed by the match pattern, cacheDuration from the expiry; the credential logs in', async () => {
    const host = h.registry!.info.host;
    const port = host.split(':')[1];
    const r = await plugin(['--credentials', credsFile], request(`${host}/team/app:v1`));
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.apiVersion, 'credentialprovider.kubelet.k8s.io/v1');
    assert.equal(res.kind, 'CredentialProviderResponse');
    assert.deepEqual(Object.keys(res.auth), [`127.*.0.1:${port}`]);
    assert.equal(res.auth[`127.*.0.1:${port}`].username, 'provider-user');
    // Registry-wide answer would be wrong here: another key of this host has a path.
    assert.equal(res.cacheKeyType, 'Image');
    assert.match(res.cacheDuration, /^(1h59m\d+s|2h0m0s)$/);

    // What kubelet does next: pull with that credential. It must really log in.
    const store = new ImageStore({
      stateDir: join(work, 'state'),
      nodeCredentials: { rootDir: join(work, 'none'), cwd: work, home: undefined },
    });
    const t = h.registry!.tokenRequests().length;
    const pulled = await store.ensure({
      image: `${host}/team/app:v1`,
      policy: 'Always',
      podSecrets: [
        {
          auths: Object.fromEntries(
            Object.entries(res.auth).map(([k, v]) => [k, v as { username: string; password: string }]),
          ),
        },
      ],
    });
    assert.equal(pulled.pulled, true);
    assert.equal(await readFile(join(pulled.layers[0]!, 'hello.txt'), 'utf8'), 'hello\n');
    assert.ok(
      h
        .registry!.tokenRequests()
        .slice(t)
        .every((x) => x.user === 'provider-user' && x.status === 200),
    );
  });

  test('the most specific pattern comes first, and the earliest expiry bounds the cache', async () => {
    const host = h.registry!.info.host;
    const port = host.split(':')[1];
    const r = await plugin(['--credentials', credsFile], request(`${host}/team/special/x:v2`));
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(res.auth), [`${host}/team/special`, `127.*.0.1:${port}`]);
    assert.equal(res.cacheKeyType, 'Image');
    assert.match(res.cacheDuration, /^(9m\d+s|10m0s)$/);
  });

  test('a non-matching image: empty auth, not cached, exit 0', async () => {
    const r = await plugin(['--credentials', credsFile], request('quay.io/other/image:v1'));
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual(res.auth, {});
    assert.equal(res.cacheDuration, '0s');
    assert.ok(!r.stdout.includes(PASS) && !r.stderr.includes(PASS));
  });

  test('a malformed request fails with a message on stderr and nothing on stdout', async () => {
    const r = await plugin(['--credentials', credsFile], '{"kind":"Something"}');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /not a CredentialProviderRequest/);
  });

  test('the example CredentialProviderConfig in infra/ names the plugin and its API version', async () => {
    const text = await readFile(
      join(import.meta.dirname, '../../infra/kubelet/credential-provider-config.yaml'),
      'utf8',
    );
    const cfg = parseYaml(text);
    assert.equal(cfg.kind, 'CredentialProviderConfig');
    assert.equal(cfg.apiVersion, 'kubelet.config.k8s.io/v1');
    const p = cfg.providers[0];
    assert.equal(p.name, 'pullkeeper-node');
    assert.equal(p.apiVersion, 'credentialprovider.kubelet.k8s.io/v1');
    assert.deepEqual(p.args.slice(0, 1), ['credential-provider']);
    assert.ok(Array.isArray(p.matchImages) && p.matchImages.length > 0);
    assert.ok(p.defaultCacheDuration);
  });
});
