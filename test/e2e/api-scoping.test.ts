/**
 * What each caller of the real API (createApp + the real use cases, a real
 * apiserver, pullkeeper's shipped RBAC) gets to see and do: a tenant's token
 * sees only its tenant's namespaces and no node, in GET /v1/status and on the
 * status page; ensure acts for the caller's tenants only (a namespace two
 * tenants share gets only the caller's Secret); ensure on another tenant's
 * namespace and on one that does not exist answer identically.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { apiDeps } from '../../src/app/compose.js';
import { createLogger } from '../../src/app/log.js';
import { saveStatus } from '../../src/app/status-store.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfig } from '../../src/config/schema.js';
import { createApp } from '../../src/http/app.js';
import { rbacConfigFor } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

const OPS = 'pk-ops-token-5d1e2a';
const TEAM_A = 'pk-team-a-token-0b77c3';
const PASSWORD = 'scoping-password-8a1f3c';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
let h: Harness;
let config: PullkeeperConfig;
let app: ReturnType<typeof createApp>;
const logs: string[] = [];

const call = (method: string, path: string, token: string, basic = false) =>
  app.request(path, {
    method,
    headers: {
      authorization: basic ? `Basic ${Buffer.from(`me:${token}`).toString('base64')}` : `Bearer ${token}`,
      ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
    },
    ...(method === 'POST' ? { body: '{}' } : {}),
  });

before(async () => {
  h = await startHarness({ cluster: true });
  await h.cluster!.createNamespace('team-a-1', { tenant: 'team-a' });
  await h.cluster!.createNamespace('team-b-1', { tenant: 'team-b' });
  // Shared: team-a selects it by label, team-b by name.
  await h.cluster!.createNamespace('shared', { tenant: 'team-a' });
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: rbacConfigFor([
      { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } } },
      { name: 'team-b', namespaces: { names: ['team-b-1', 'shared'] } },
    ]),
  });
  const kubeconfig = join(h.dir, 'pullkeeper.kubeconfig');
  await writeFile(kubeconfig, id.kubeConfig.exportConfig(), { mode: 0o600 });
  config = parseConfig({
    clusters: [{ name: 'test', kubeconfig }],
    registries: [
      {
        name: 'reg-a',
        kind: 'static',
        server: 'reg-a.example',
        username: { value: 'a' },
        password: { value: PASSWORD },
        verify: false,
      },
      {
        name: 'reg-b',
        kind: 'static',
        server: 'reg-b.example',
        username: { value: 'b' },
        password: { value: PASSWORD },
        verify: false,
      },
    ],
    tenants: [
      { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } }, registries: ['reg-a'] },
      { name: 'team-b', namespaces: { names: ['team-b-1', 'shared'] }, registries: ['reg-b'] },
    ],
    api: {
      auth: {
        tokens: [
          { name: 'ops', sha256: sha(OPS), tenants: '*' },
          { name: 'team-a-ci', sha256: sha(TEAM_A), tenants: ['team-a'] },
        ],
      },
    },
  });
  app = createApp(
    apiDeps({ config: async () => config, logger: createLogger({ sink: (l) => logs.push(l) }) }),
  );
  // A node result in the status store, as a push of any process would leave it.
  const saved = await saveStatus(config, { nodes: [{ name: 'node-fleet-7', status: 'written' }] });
  assert.equal(saved.error, undefined);
});
after(() => h?.stop());

describe('API scoping against a real apiserver', { timeout: 240_000 }, () => {
  test("team-a's token: its namespaces only, no node; ops sees every tenant and the nodes", async () => {
    const mine = await call('GET', '/v1/status', TEAM_A);
    assert.equal(mine.status, 200);
    const text = await mine.text();
    const body = JSON.parse(text) as {
      tenants: Array<{ name: string; namespaces: Array<{ name: string }> }>;
      registries: Array<{ name: string }>;
      nodes?: unknown;
    };
    assert.deepEqual(
      body.tenants.map((t) => [t.name, t.namespaces.map((n) => n.name)]),
      [['team-a', ['shared', 'team-a-1']]],
    );
    assert.deepEqual(
      body.registries.map((r) => r.name),
      ['reg-a'],
    );
    assert.equal(body.nodes, undefined);
    for (const hidden of ['team-b-1', 'team-b', 'reg-b', 'node-fleet-7'])
      assert.ok(!text.includes(hidden), hidden);

    const page = await (await call('GET', '/', TEAM_A, true)).text();
    for (const hidden of ['team-b-1', 'Tenant team-b', 'node-fleet-7'])
      assert.ok(!page.includes(hidden), hidden);
    assert.match(page, /Nodes are shown only to callers granted every tenant/);

    const ops = (await (await call('GET', '/v1/status', OPS)).json()) as {
      tenants: Array<{ name: string }>;
      nodes: Array<{ name: string }>;
    };
    assert.deepEqual(
      ops.tenants.map((t) => t.name),
      ['team-a', 'team-b'],
    );
    assert.deepEqual(
      ops.nodes.map((n) => n.name),
      ['node-fleet-7'],
    );
  });

  test("ensure on another tenant's namespace and on a non-existent one: identical answers", async (t) => {
    const answer = async (ns: string) => {
      const res = await call('POST', `/v1/namespaces/${ns}/ensure`, TEAM_A);
      return {
        status: res.status,
        headers: [...res.headers.entries()].filter(([k]) => k !== 'x-request-id').sort(),
        body: (await res.text()).replaceAll(ns, 'NS'),
      };
    };
    const foreign = await answer('team-b-1');
    const missing = await answer('no-such-ns');
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign, missing);
    // Nothing was written for team-b.
    await assert.rejects(
      h.cluster!.admin.core.readNamespacedSecret({ namespace: 'team-b-1', name: 'pullkeeper-team-b' }),
    );
    // How long each answer takes (reported, not asserted: the machine is shared).
    const times = async (ns: string) => {
      const out: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        await call('POST', `/v1/namespaces/${ns}/ensure`, TEAM_A);
        out.push(performance.now() - t0);
      }
      return out.sort((a, b) => a - b)[7]!.toFixed(1);
    };
    t.diagnostic(
      `median ms: another tenant's ${await times('team-b-1')}, non-existent ${await times('no-such-ns')}`,
    );
  });

  test("ensure of a shared namespace acts for the caller's tenants only", async () => {
    const res = await call('POST', '/v1/namespaces/shared/ensure', TEAM_A);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.ok(!text.includes(PASSWORD));
    const body = JSON.parse(text) as { tenants: string[]; ready: boolean };
    assert.deepEqual(body.tenants, ['team-a']);
    assert.equal(body.ready, true);
    const core = h.cluster!.admin.core;
    assert.ok(await core.readNamespacedSecret({ namespace: 'shared', name: 'pullkeeper-team-a' }));
    await assert.rejects(core.readNamespacedSecret({ namespace: 'shared', name: 'pullkeeper-team-b' }));
    // Ops (every tenant) ensures it for both.
    const ops = (await (await call('POST', '/v1/namespaces/shared/ensure', OPS)).json()) as {
      tenants: string[];
    };
    assert.deepEqual(ops.tenants.sort(), ['team-a', 'team-b']);
    assert.ok(await core.readNamespacedSecret({ namespace: 'shared', name: 'pullkeeper-team-b' }));
    for (const t of [OPS, TEAM_A, PASSWORD]) assert.ok(!logs.join('\n').includes(t));
  });
});
