/**
 * The functions as users run them locally: `serverless offline` (osls +
 * serverless-offline + serverless-esbuild) serving serverless.yml's HTTP API,
 * and `serverless invoke local -f refresh`, against the harness: a real
 * kube-apiserver (the shipped RBAC), a real registry, SSH nodes, and a local
 * OIDC issuer playing the CI system.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDockerConfig } from '../../src/core/index.js';
import { type OidcIssuer, startOidcIssuer } from '../harness/cloud/oidc-issuer.js';
import { rbacConfigFor, writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';
import { freePort } from '../harness/ports.js';
import { run, type Service, startService } from '../harness/proc.js';
import { buildImage, pushImage } from '../harness/registry/images.js';

let offline: Service;
let base: string;
let h: Harness;
let idp: OidcIssuer;
let dir: string;
let env: NodeJS.ProcessEnv;
const REG = { username: 'ci-puller', password: 'offline-pass-3e7a' };
const GH = { repository: 'acme/app', repository_id: '424242', ref: 'refs/heads/main' };

async function token(claims: Record<string, unknown> = {}, o?: { ttlSec?: number; iatOffsetSec?: number }) {
  return idp.sign({ aud: 'pullkeeper', sub: 'repo:acme/app:ref:refs/heads/main', ...GH, ...claims }, o);
}
async function call(method: string, path: string, o: { token?: string; body?: string } = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(o.body !== undefined ? { body: o.body } : {}),
  });
  const text = await res.text();
  for (const s of [REG.password]) assert.ok(!text.includes(s), 'no secret in any answer');
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

describe('serverless offline against the harness', { timeout: 480_000 }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pk-offline-'));
    [h, idp] = await Promise.all([
      startHarness({ cluster: true, registry: { auth: 'htpasswd' }, nodes: 2 }),
      startOidcIssuer(),
    ]);
    await h.registry!.allow(REG.username, REG.password);
    await pushImage(h.registry!, 'team-a/app', 'v1', await buildImage({ layers: [{ busybox: true }] }), REG);
    for (const n of ['team-a-1', 'team-a-2']) await h.cluster!.createNamespace(n, { tenant: 'team-a' });
    await h.cluster!.createNamespace('team-b-1', { tenant: 'team-b' });
    const id = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      config: rbacConfigFor([
        { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } } },
        { name: 'team-b', namespaces: { matchLabels: { tenant: 'team-b' } } },
      ]),
    });
    const info = h.cluster!.info;
    const kubeconfig = join(dir, 'kubeconfig');
    writeTokenKubeconfig(kubeconfig, info, id.token);
    const known = join(dir, 'known_hosts');
    await writeFile(known, `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
    // serverless offline passes a function only the environment serverless.yml declares: the secret comes from a file.
    await writeFile(join(dir, 'registry-password'), REG.password, { mode: 0o600 });
    const cfgFile = join(dir, 'pullkeeper.json');
    await writeFile(
      cfgFile,
      JSON.stringify({
        clusters: [{ name: 'test', kubeconfig }],
        registries: [
          {
            name: 'team-reg',
            kind: 'static',
            server: h.registry!.info.host,
            username: { value: REG.username },
            password: { fromFile: join(dir, 'registry-password') },
          },
        ],
        tenants: [
          { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } }, registries: ['team-reg'] },
          { name: 'team-b', namespaces: { matchLabels: { tenant: 'team-b' } }, registries: ['team-reg'] },
        ],
        nodes: {
          inventory: h.nodes!.info.nodes.map((n) => ({ name: n.name, address: n.address })),
          registries: ['team-reg'],
          ssh: {
            privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
            knownHosts: { fromFile: known },
          },
        },
        api: {
          auth: {
            oidc: [
              {
                issuer: idp.info.issuer,
                audience: 'pullkeeper',
                allow: [
                  { claims: { repository_id: '424242', ref: 'refs/heads/main' }, tenants: ['team-a'] },
                  { claims: { repository_id: '777' }, tenants: '*' },
                ],
              },
            ],
          },
        },
      }),
    );
    const [httpPort, lambdaPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${httpPort}`;
    env = {
      ...process.env,
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
      PULLKEEPER_CONFIG: cfgFile,
      // No stack here: serverless.yml takes the queue from the environment when set ('' = inline runs).
      PULLKEEPER_FANOUT_QUEUE_URL: '',
    };
    offline = await startService({
      name: 'serverless offline',
      command: process.execPath,
      args: [
        'node_modules/serverless/bin/serverless.js',
        'offline',
        'start',
        '--httpPort',
        String(httpPort),
        '--lambdaPort',
        String(lambdaPort),
      ],
      env,
      logFile: join(dir, 'offline.log'),
      readyTimeoutMs: 120_000,
      ready: async (signal) => (await fetch(`${base}/healthz`, { signal })).ok,
    });
  });
  after(async () => {
    await offline?.stop();
    await Promise.allSettled([h?.stop(), idp?.stop()]);
    const log = await readFile(join(dir, 'offline.log'), 'utf8').catch(() => '');
    assert.ok(!log.includes(REG.password), 'no secret in the function logs');
  });

  test('GET /healthz answers through the bundled Lambda', async () => {
    const r = await call('GET', '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ok');
  });

  test('a CI OIDC token triggers a refresh: Secrets land in its tenant, config.json on the nodes', async () => {
    const r = await call('POST', '/v1/refresh', { token: await token(), body: '{}' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.nodes, undefined, 'a tenant-scoped caller does not push node config');
    assert.deepEqual(
      r.body.tenants.map((t: { name: string }) => t.name),
      ['team-a'],
      'only the tenants its rule grants',
    );
    assert.ok(r.headers.get('x-request-id'));
    const core = h.cluster!.admin.core;
    for (const ns of ['team-a-1', 'team-a-2']) {
      const s = await core.readNamespacedSecret({ namespace: ns, name: 'pullkeeper-team-a' });
      assert.equal(s.type, 'kubernetes.io/dockerconfigjson');
    }
    await assert.rejects(core.readNamespacedSecret({ namespace: 'team-b-1', name: 'pullkeeper-team-b' }));
    // The platform pipeline (allowed every tenant) refreshes everything, nodes included.
    const all = await call('POST', '/v1/refresh', {
      token: await token({ repository_id: '777' }),
      body: '{}',
    });
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.deepEqual(
      all.body.nodes.map((n: { status: string }) => n.status),
      ['written', 'written'],
    );
    for (const n of h.nodes!.info.nodes) {
      const file = await h.nodes!.readFile(n.name, '/var/lib/kubelet/config.json');
      assert.ok(parseDockerConfig(String(file), 'config.json').auths[h.registry!.info.host]);
    }
  });

  test('ensure on a brand-new namespace returns only when it can pull (pulled with the Secret it wrote)', async () => {
    await h.cluster!.createNamespace('team-a-new', { tenant: 'team-a' });
    const r = await call('POST', '/v1/namespaces/team-a-new/ensure', {
      token: await token(),
      body: '{"timeoutSeconds":20}',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.ready, true);
    const s = await h.cluster!.admin.core.readNamespacedSecret({
      namespace: 'team-a-new',
      name: 'pullkeeper-team-a',
    });
    const authfile = join(dir, 'authfile.json');
    await writeFile(authfile, Buffer.from(s.data!['.dockerconfigjson']!, 'base64'), { mode: 0o600 });
    const inspect = await run('skopeo', [
      'inspect',
      '--raw',
      '--authfile',
      authfile,
      '--tls-verify=false',
      `docker://${h.registry!.info.host}/team-a/app:v1`,
    ]);
    assert.match(inspect.stdout, /"schemaVersion"\s*:\s*2/);
  });

  const bad: Array<
    [string, () => Promise<{ method: string; path: string; token?: string; body?: string }>, number, RegExp]
  > = [
    ['unauthenticated', async () => ({ method: 'POST', path: '/v1/refresh' }), 401, /missing bearer token/],
    [
      'wrong audience',
      async () => ({
        method: 'POST',
        path: '/v1/refresh',
        token: await token({ aud: 'https://github.com/acme' }),
      }),
      401,
      /audience/,
    ],
    [
      'expired token',
      async () => ({
        method: 'POST',
        path: '/v1/refresh',
        token: await token({}, { ttlSec: 30, iatOffsetSec: -900 }),
      }),
      401,
      /expired/,
    ],
    [
      'a token for another tenant',
      async () => ({
        method: 'POST',
        path: '/v1/refresh',
        token: await token(),
        body: '{"tenants":["team-b"]}',
      }),
      403,
      /may not refresh tenant team-b/,
    ],
    [
      'another repository id',
      async () => ({ method: 'POST', path: '/v1/refresh', token: await token({ repository_id: '1' }) }),
      403,
      /no api.auth.oidc rule/,
    ],
    [
      'malformed JSON',
      async () => ({ method: 'POST', path: '/v1/refresh', token: await token(), body: '{"tenants":' }),
      400,
      /not valid JSON/,
    ],
    [
      'oversized body',
      async () => ({
        method: 'POST',
        path: '/v1/refresh',
        token: await token(),
        body: JSON.stringify({ pad: 'x'.repeat(80_000) }),
      }),
      413,
      /too large/,
    ],
    [
      'unknown tenant',
      async () => ({
        method: 'POST',
        path: '/v1/refresh',
        token: await token(),
        body: '{"tenants":["nope"]}',
      }),
      404,
      /unknown tenant nope/,
    ],
    [
      'unknown namespace',
      async () => ({ method: 'POST', path: '/v1/namespaces/nowhere/ensure', token: await token() }),
      404,
      /namespace nowhere is not a namespace of this caller's tenants \(or does not exist\)/,
    ],
  ];
  for (const [name, req, code, msg] of bad) {
    test(`bad input: ${name} -> ${code}, nothing written`, async () => {
      const before = (
        await h.cluster!.admin.core.listSecretForAllNamespaces({
          labelSelector: 'app.kubernetes.io/managed-by=pullkeeper',
        })
      ).items.map((s) => `${s.metadata?.namespace}/${s.metadata?.resourceVersion}`);
      const q = await req();
      const r = await call(q.method, q.path, q);
      assert.equal(r.status, code, JSON.stringify(r.body));
      assert.match(r.body.message, msg);
      if (q.token) assert.ok(!JSON.stringify(r.body).includes(q.token));
      const after = (
        await h.cluster!.admin.core.listSecretForAllNamespaces({
          labelSelector: 'app.kubernetes.io/managed-by=pullkeeper',
        })
      ).items.map((s) => `${s.metadata?.namespace}/${s.metadata?.resourceVersion}`);
      assert.deepEqual(after, before);
    });
  }

  test('serverless invoke local -f refresh, twice: the second mints nothing and writes nothing', async () => {
    const invoke = async () => {
      const r = await run(
        process.execPath,
        ['node_modules/serverless/bin/serverless.js', 'invoke', 'local', '-f', 'refresh'],
        { env, timeoutMs: 200_000 },
      );
      assert.ok(!r.stdout.includes(REG.password) && !r.stderr.includes(REG.password));
      const i = r.stdout.lastIndexOf('\n{\n');
      return JSON.parse(r.stdout.slice(i + 1)) as {
        mode: string;
        mintCalls: number;
        writes: number;
        tenants: Array<{ fresh?: boolean }>;
        nodes: Array<{ status: string }>;
      };
    };
    const invokedAt = new Date().toISOString();
    const first = await invoke();
    assert.equal(first.mode, 'inline');
    // The API function never ran this refresh (another process did): its status comes from the cluster.
    const status = await call('GET', '/v1/status', { token: await token({ repository_id: '777' }) });
    assert.equal(status.status, 200, JSON.stringify(status.body));
    assert.equal(status.body.storeError, undefined, status.body.storeError);
    for (const n of status.body.nodes as Array<{ name: string; at: string }>)
      assert.ok(n.at >= invokedAt, `node ${n.name} shows the scheduled run (${n.at} >= ${invokedAt})`);
    assert.equal(status.body.nodes.length, 2);
    assert.ok(status.body.registries[0].lastSuccess, JSON.stringify(status.body.registries));
    const second = await invoke();
    assert.equal(second.writes, 0);
    assert.equal(second.mintCalls, 0);
    assert.ok(
      second.tenants.every((t) => t.fresh),
      JSON.stringify(second.tenants),
    );
    assert.ok(
      second.nodes.every((n) => n.status === 'unchanged'),
      JSON.stringify(second.nodes),
    );
  });

  test('stopping by PID ends the process', async () => {
    await offline.stop();
    const { code, signal } = await offline.exited;
    assert.ok(code !== null || signal !== null);
  });
});
