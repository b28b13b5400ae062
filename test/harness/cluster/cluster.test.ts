/**
 * The cluster harness against a real kube-apiserver + etcd: TLS is verified, the
 * RBAC `pullkeeper rbac` prints is enough for pullkeeper's writes and
 * no more, the API server validates dockerconfigjson, server-side apply on a
 * ServiceAccount works with field manager `pullkeeper`, and stop() leaves no process.
 *
 *   cd /work/main && node --import tsx --test test/harness/cluster/cluster.test.ts
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CoreV1Api, PatchStrategy, setHeaderOptions, type V1Secret } from '@kubernetes/client-node';
import { tcpOpen } from '../ports.js';
import {
  apiStatus,
  type Cluster,
  checkCluster,
  type Identity,
  rbacConfigFor,
  startCluster,
} from './index.js';

const SSA = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const MANAGED = { 'app.kubernetes.io/managed-by': 'pullkeeper' };

function dockerConfigSecret(namespace: string, name: string, dockerconfigjson: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels: MANAGED },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(dockerconfigjson).toString('base64') },
  };
}

function dockerConfig(user: string, pass: string): string {
  const auth = Buffer.from(`${user}:${pass}`).toString('base64');
  return JSON.stringify({ auths: { '127.0.0.1:5050': { username: user, password: pass, auth } } });
}

/** The HTTP status and reason of a rejected call (fails the test if the call succeeded). */
async function rejection(
  call: Promise<unknown>,
): Promise<{ code: number; reason?: string; message?: string }> {
  try {
    await call;
  } catch (err) {
    const status = apiStatus(err);
    assert.ok(status, `expected an ApiException, got ${String(err)}`);
    return status;
  }
  assert.fail('expected the API server to refuse the call');
}

async function applySecret(core: CoreV1Api, secret: V1Secret, force = true): Promise<V1Secret> {
  return core.patchNamespacedSecret(
    {
      name: secret.metadata!.name!,
      namespace: secret.metadata!.namespace!,
      body: secret,
      fieldManager: 'pullkeeper',
      force,
    },
    SSA,
  );
}

describe('test cluster (etcd + kube-apiserver)', () => {
  let cluster: Cluster;
  let pk: Identity;
  let tenantNs: string;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pk-cluster-'));
    cluster = await startCluster({ dir });
    console.log(`cluster ready: ${JSON.stringify(cluster.timings)} (dir ${dir})`);
    tenantNs = await cluster.createNamespace(undefined, { tenant: 'team-a' });
    pk = await cluster.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      // What `pullkeeper rbac` prints for tenant team-a, with nodes from the cluster.
      config: rbacConfigFor([{ name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } } }], {
        nodes: { inventory: 'kubernetes', registries: ['placeholder'], ssh: { privateKey: { value: 'k' } } },
      }),
    });
  });
  after(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('doctor sees the cached binaries', async () => {
    const checks = await checkCluster();
    const bins = checks.find((c) => c.name === 'kube-apiserver + etcd');
    assert.equal(bins?.ok, true, JSON.stringify(checks));
  });

  test('TLS is verified against the test CA and tokens are checked', async () => {
    const ns = await cluster.admin.core.readNamespace({ name: tenantNs });
    assert.deepEqual(ns.metadata?.labels?.tenant, 'team-a');
    const sa = await cluster.admin.core.readNamespacedServiceAccount({
      namespace: tenantNs,
      name: 'default',
    });
    assert.equal(sa.metadata?.name, 'default');

    // The same server without our CA: the system trust store must refuse it.
    const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: cluster.info.server, skipTLSVerify: false }],
      users: [{ name: 'u', token: cluster.info.adminToken }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    await assert.rejects(kc.makeApiClient(CoreV1Api).listNamespace(), (err: Error) => {
      assert.match(`${err.message} ${String((err as { cause?: unknown }).cause ?? '')}`, /certificate/i);
      return true;
    });

    const wrongToken = await rejection(cluster.clientFor('not-a-token').core.listNamespace());
    assert.equal(wrongToken.code, 401);
  });

  test('TokenRequest gives the identity a short-lived token', () => {
    assert.equal(pk.username, 'system:serviceaccount:pullkeeper-system:pullkeeper');
    const left = pk.expiresAt.getTime() - Date.now();
    assert.ok(left > 0 && left <= 601_000, `token lifetime ${left} ms`);
    const claims = JSON.parse(Buffer.from(pk.token.split('.')[1]!, 'base64url').toString()) as {
      sub: string;
    };
    assert.equal(claims.sub, pk.username);
  });

  test('the shipped RBAC lets pullkeeper find tenants and write a dockerconfigjson Secret', async () => {
    const other = await cluster.createNamespace(undefined, { tenant: 'team-b' });
    const tenants = await pk.client.core.listNamespace({ labelSelector: 'tenant=team-a' });
    assert.deepEqual(
      tenants.items.map((n) => n.metadata?.name),
      [tenantNs],
    );
    assert.ok(!tenants.items.some((n) => n.metadata?.name === other));

    const created = await pk.client.core.createNamespacedSecret({
      namespace: tenantNs,
      body: dockerConfigSecret(tenantNs, 'pullkeeper-team-a', dockerConfig('ci', 'one')),
    });
    assert.equal(created.type, 'kubernetes.io/dockerconfigjson');

    // Read back as admin: what the kubelet would see.
    const stored = await cluster.admin.core.readNamespacedSecret({
      namespace: tenantNs,
      name: 'pullkeeper-team-a',
    });
    const cfg = JSON.parse(Buffer.from(stored.data!['.dockerconfigjson']!, 'base64').toString());
    assert.equal(cfg.auths['127.0.0.1:5050'].username, 'ci');

    // Update in place with server-side apply; re-applying the same content writes nothing.
    const rotated = await applySecret(
      pk.client.core,
      dockerConfigSecret(tenantNs, 'pullkeeper-team-a', dockerConfig('ci', 'two')),
    );
    assert.equal(rotated.metadata?.uid, created.metadata?.uid);
    assert.notEqual(rotated.metadata?.resourceVersion, created.metadata?.resourceVersion);
    const again = await applySecret(
      pk.client.core,
      dockerConfigSecret(tenantNs, 'pullkeeper-team-a', dockerConfig('ci', 'two')),
    );
    assert.equal(again.metadata?.resourceVersion, rotated.metadata?.resourceVersion);

    // Secrets are listed by name only (RBAC resourceNames + fieldSelector metadata.name).
    const managed = await pk.client.core.listSecretForAllNamespaces({
      fieldSelector: 'metadata.name=pullkeeper-team-a',
    });
    assert.deepEqual(
      managed.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`),
      [`${tenantNs}/pullkeeper-team-a`],
    );
    const nodes = await pk.client.core.listNode();
    assert.deepEqual(nodes.items, []);
  });

  test('the identity is forbidden what rbac.yaml does not grant', async () => {
    const cases: [string, () => Promise<unknown>][] = [
      ['delete a namespace', () => pk.client.core.deleteNamespace({ name: tenantNs })],
      [
        'create a ClusterRole',
        () =>
          pk.client.rbac.createClusterRole({
            body: {
              metadata: { name: 'escalate' },
              rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }],
            },
          }),
      ],
      [
        'delete a Secret',
        () => pk.client.core.deleteNamespacedSecret({ namespace: tenantNs, name: 'pullkeeper-team-a' }),
      ],
      ['list pods', () => pk.client.core.listPodForAllNamespaces()],
      [
        'create a ServiceAccount',
        () =>
          pk.client.core.createNamespacedServiceAccount({
            namespace: tenantNs,
            body: { metadata: { name: 'x' } },
          }),
      ],
    ];
    for (const [what, call] of cases) {
      const status = await rejection(call());
      assert.equal(status.code, 403, `${what}: ${status.message}`);
      assert.equal(status.reason, 'Forbidden', what);
    }
    // And none of it happened.
    const ns = await cluster.admin.core.readNamespace({ name: tenantNs });
    assert.equal(ns.status?.phase, 'Active');
    await cluster.admin.core.readNamespacedSecret({ namespace: tenantNs, name: 'pullkeeper-team-a' });
  });

  test('the API server rejects an invalid .dockerconfigjson with 422', async () => {
    for (const [what, body] of [
      ['not JSON', 'this is not json'],
      ['a JSON array', '["auths"]'],
      ['a JSON string', '"auths"'],
    ] as const) {
      const status = await rejection(
        pk.client.core.createNamespacedSecret({
          namespace: tenantNs,
          body: dockerConfigSecret(tenantNs, 'bad-config', body),
        }),
      );
      assert.equal(status.code, 422, `${what}: ${status.message}`);
      assert.equal(status.reason, 'Invalid', what);
      assert.match(status.message ?? '', /\.dockerconfigjson/, what);
    }
    const missing = await rejection(
      pk.client.core.createNamespacedSecret({
        namespace: tenantNs,
        body: { metadata: { name: 'bad-config' }, type: 'kubernetes.io/dockerconfigjson', data: {} },
      }),
    );
    assert.equal(missing.code, 422);
  });

  test('server-side apply sets a ServiceAccount imagePullSecrets as field manager pullkeeper', async () => {
    const applySa = (namespace: string, secrets: string[], fieldManager: string, force?: boolean) =>
      (fieldManager === 'pullkeeper' ? pk.client : cluster.admin).core.patchNamespacedServiceAccount(
        {
          name: 'default',
          namespace,
          body: {
            apiVersion: 'v1',
            kind: 'ServiceAccount',
            metadata: { name: 'default', namespace },
            imagePullSecrets: secrets.map((name) => ({ name })),
          },
          fieldManager,
          force,
        },
        SSA,
      );

    const sa = await applySa(tenantNs, ['pullkeeper-team-a'], 'pullkeeper', true);
    assert.deepEqual(
      sa.imagePullSecrets?.map((r) => r.name),
      ['pullkeeper-team-a'],
    );
    const entry = sa.metadata?.managedFields?.find((f) => f.manager === 'pullkeeper');
    assert.equal(entry?.operation, 'Apply');
    assert.ok(JSON.stringify(entry?.fieldsV1).includes('f:imagePullSecrets'));

    // imagePullSecrets is an atomic list under SSA: a tenant's own entry makes a
    // non-forced apply of a different list conflict (409), rather than merge.
    const ns2 = await cluster.createNamespace();
    await applySa(ns2, ['tenant-own'], 'tenant');
    const conflict = await rejection(applySa(ns2, ['pullkeeper-team-a'], 'pullkeeper', false));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.reason, 'Conflict');
  });

  test('the per-namespace RoleBinding variant limits Secret writes to bound namespaces', async () => {
    const bound = await cluster.createNamespace(undefined, { tenant: 'team-c' });
    const unbound = await cluster.createNamespace(undefined, { tenant: 'team-c' });
    const scoped = await cluster.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper-scoped',
      rbac: 'pullkeeper',
      tenantNamespaces: [bound],
      config: rbacConfigFor([{ name: 'team-c', namespaces: { matchLabels: { tenant: 'team-c' } } }]),
    });
    await scoped.client.core.createNamespacedSecret({
      namespace: bound,
      body: dockerConfigSecret(bound, 'pullkeeper-team-c', dockerConfig('ci', 'c')),
    });
    const denied = await rejection(
      scoped.client.core.createNamespacedSecret({
        namespace: unbound,
        body: dockerConfigSecret(unbound, 'pullkeeper-team-c', dockerConfig('ci', 'c')),
      }),
    );
    assert.equal(denied.code, 403);
    // Cluster-wide listing needs the cluster-wide binding.
    assert.equal((await rejection(scoped.client.core.listSecretForAllNamespaces())).code, 403);
    // Namespaces are still listable (inventory role is always cluster-wide).
    const tenants = await scoped.client.core.listNamespace({ labelSelector: 'tenant=team-c' });
    assert.equal(tenants.items.length, 2);
  });

  test('stop() ends etcd and kube-apiserver', async () => {
    const { pids } = cluster;
    const port = Number(new URL(cluster.info.server).port);
    assert.equal(await tcpOpen('127.0.0.1', port), true);
    await cluster.stop();
    await cluster.stop(); // idempotent
    for (const [name, pid] of Object.entries(pids)) {
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `${name} (pid ${pid}) still exists`);
    }
    assert.equal(await tcpOpen('127.0.0.1', port), false);
  });
});
