/**
 * `pullkeeper rbac` against a real kube-apiserver, as the identity it was printed for:
 * refreshes succeed, every other Secret is out of reach (403), the admission policy stops
 * the service-account-token attack and any other Secret write; the same per namespace.
 * Concurrent `pullkeeper refresh` processes converge with one write per namespace per
 * content change, and ServiceAccounts that lost (or never had) our entry are patched on the
 * next run without any Secret write.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PatchStrategy } from '@kubernetes/client-node';
import { CredentialCache } from '../../src/app/mint.js';
import { type RefreshReport, refresh, refreshFailed } from '../../src/app/refresh.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { parseConfig } from '../../src/config/load.js';
import { parseDockerConfig } from '../../src/core/index.js';
import {
  apiStatus,
  type ClusterClient,
  type Identity,
  writeTokenKubeconfig,
} from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

const BIN = fileURLToPath(new URL('../../bin/pullkeeper.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pk-rbac-'));
let h: Harness;

const registry = (password: string) => ({
  name: 'reg',
  kind: 'static',
  server: 'rbac.registry.test',
  username: { value: 'u' },
  password: { value: password },
  verify: false,
});
function writeConfig(file: string, kubeconfig: string, tenants: unknown[], password = 'rbac-pass-1'): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    JSON.stringify({ clusters: [{ name: 'test', kubeconfig }], registries: [registry(password)], tenants }),
  );
  return path;
}

/** `pullkeeper rbac ...` in-process: the YAML it prints. */
async function rbacYaml(args: string[]): Promise<string> {
  const io = bufferIO();
  const code = await main(['rbac', ...args], io);
  assert.equal(code, 0, io.stderr.join('\n'));
  return io.stdout.join('\n');
}

const statuses = (r: RefreshReport) =>
  Object.fromEntries(
    r.tenants.flatMap((t) =>
      t.namespaces.map((n) => [`${t.name}/${n.name}`, `${n.secret}/${n.serviceAccounts}`]),
    ),
  );

/** The request's HTTP status, and the API server's message. */
async function outcome(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
    return { code: 200, message: '' };
  } catch (err) {
    const st = apiStatus(err);
    if (!st) throw err;
    return { code: st.code, message: st.message ?? '' };
  }
}

/** What the identity must not be able to do, whatever the binding mode. */
async function assertLeastPrivilege(c: ClusterClient, o: { secretName: string; freeNamespace: string }) {
  assert.equal(
    (await outcome(c.core.readNamespacedSecret({ namespace: 'kube-system', name: 'kube-system-secret' })))
      .code,
    403,
    'a kube-system Secret',
  );
  assert.equal((await outcome(c.core.listSecretForAllNamespaces({}))).code, 403, 'list every Secret');
  assert.equal(
    (
      await outcome(
        c.core.listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=pullkeeper' }),
      )
    ).code,
    403,
    'list Secrets by label',
  );
  assert.equal(
    (await outcome(c.core.listNamespacedSecret({ namespace: o.freeNamespace }))).code,
    403,
    "list a tenant namespace's Secrets without a name",
  );
  // The service-account-token attack: the token controller would fill it, and the name is readable.
  const token = await outcome(
    c.core.createNamespacedSecret({
      namespace: o.freeNamespace,
      body: {
        metadata: {
          name: o.secretName,
          annotations: { 'kubernetes.io/service-account.name': 'default' },
          labels: { 'app.kubernetes.io/managed-by': 'pullkeeper' },
        },
        type: 'kubernetes.io/service-account-token',
      },
    }),
  );
  assert.equal(token.code, 422, `service-account-token Secret: ${token.message}`);
  assert.match(
    token.message,
    /ValidatingAdmissionPolicy.*only write Secrets of type kubernetes.io\/dockerconfigjson/,
  );
  const opaque = await outcome(
    c.core.createNamespacedSecret({
      namespace: o.freeNamespace,
      body: { metadata: { name: o.secretName }, type: 'Opaque', stringData: { x: 'y' } },
    }),
  );
  assert.equal(opaque.code, 422, `Opaque Secret: ${opaque.message}`);
  const otherName = await outcome(
    c.core.createNamespacedSecret({
      namespace: o.freeNamespace,
      body: {
        metadata: { name: 'not-a-tenant-secret', labels: { 'app.kubernetes.io/managed-by': 'pullkeeper' } },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
      },
    }),
  );
  assert.equal(otherName.code, 422, `another name: ${otherName.message}`);
  assert.match(otherName.message, /only write the tenants' Secret names/);
}

before(async () => {
  h = await startHarness({ cluster: true });
  await h.cluster!.admin.core.createNamespacedSecret({
    namespace: 'kube-system',
    body: {
      metadata: { name: 'kube-system-secret' },
      type: 'Opaque',
      stringData: { token: 'not-for-pullkeeper' },
    },
  });
});
after(() => h?.stop());

describe('the output of `pullkeeper rbac`, bound cluster-wide', () => {
  let id: Identity;
  let file: string;
  const tenants = [
    {
      name: 'wa',
      namespaces: { names: ['wa-1', 'wa-2'] },
      registries: ['reg'],
      serviceAccounts: ['default', 'builder'],
    },
    { name: 'wb', namespaces: { matchLabels: { tenant: 'wb' } }, registries: ['reg'], serviceAccounts: '*' },
  ];
  before(async () => {
    for (const n of ['wa-1', 'wa-2']) {
      await h.cluster!.createNamespace(n);
      await h.cluster!.createServiceAccount(n, 'builder');
    }
    await h.cluster!.createNamespace('wb-1', { tenant: 'wb' });
    await h.cluster!.createServiceAccount('wb-1', 'deployer');
    await h.cluster!.createNamespace('w-free');
    const yaml = await rbacYaml([
      '--config',
      writeConfig('wide-gen.json', '-', tenants),
      '--service-account',
      'pullkeeper-system/pk-wide',
    ]);
    id = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pk-wide',
      rbac: 'pullkeeper',
      yaml,
    });
    file = writeConfig(
      'wide.json',
      writeTokenKubeconfig(join(dir, 'wide.kubeconfig'), h.cluster!.info, id.token),
      tenants,
    );
  });

  test('a refresh of two tenants succeeds', async () => {
    const r = await refresh(parseConfig(JSON.parse(readFileSync(file, 'utf8'))), {
      cache: new CredentialCache(),
    });
    assert.equal(refreshFailed(r), false, JSON.stringify(r.tenants));
    assert.deepEqual(statuses(r), {
      'wa/wa-1': 'created/patched',
      'wa/wa-2': 'created/patched',
      'wb/wb-1': 'created/patched',
    });
    const deployer = await h.cluster!.admin.core.readNamespacedServiceAccount({
      namespace: 'wb-1',
      name: 'deployer',
    });
    assert.deepEqual(
      deployer.imagePullSecrets?.map((x) => x.name),
      ['pullkeeper-wb'],
    );
  });

  test('403 on every other Secret; the admission policy denies the token attack and foreign writes', async () => {
    await assertLeastPrivilege(id.client, { secretName: 'pullkeeper-wa', freeNamespace: 'w-free' });
  });

  test('a ServiceAccount stripped of its entry and a new one under "*" are patched on the next run, and only they', async () => {
    const core = h.cluster!.admin.core;
    await core.patchNamespacedServiceAccount({
      namespace: 'wa-2',
      name: 'builder',
      body: [{ op: 'remove', path: '/imagePullSecrets' }],
    });
    await h.cluster!.createServiceAccount('wb-1', 'late');
    const secretVersions = async () =>
      (
        await core.listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=pullkeeper' })
      ).items
        .map((s) => `${s.metadata?.namespace}/${s.metadata?.name}@${s.metadata?.resourceVersion}`)
        .sort();
    const before = await secretVersions();
    const io = bufferIO();
    assert.equal(await main(['refresh', '--config', file, '--json'], io), 0, io.stderr.join('\n'));
    const r = JSON.parse(io.stdout.join('\n')) as RefreshReport;
    assert.equal(r.mintCalls, 0, 'the Secrets are fresh: nothing minted');
    assert.deepEqual(statuses(r), {
      'wa/wa-1': 'unchanged/unchanged',
      'wa/wa-2': 'unchanged/patched',
      'wb/wb-1': 'unchanged/patched',
    });
    assert.equal(r.writes, 2, 'exactly the two ServiceAccount patches');
    assert.deepEqual(await secretVersions(), before, 'no Secret written');
    for (const [namespace, name, secret] of [
      ['wa-2', 'builder', 'pullkeeper-wa'],
      ['wb-1', 'late', 'pullkeeper-wb'],
    ] as const)
      assert.deepEqual(
        (await core.readNamespacedServiceAccount({ namespace, name })).imagePullSecrets?.map((x) => x.name),
        [secret],
      );
    const again = bufferIO();
    assert.equal(await main(['refresh', '--config', file, '--json'], again), 0);
    assert.equal((JSON.parse(again.stdout.join('\n')) as RefreshReport).writes, 0, 'then nothing is due');
  });

  test('doctor: no warning about Secret access for this identity', async () => {
    const io = bufferIO();
    await main(['doctor', '--config', file, '--json'], io);
    const f = (
      JSON.parse(io.stdout.join('\n')) as {
        findings: Array<{ subject: string; warning?: boolean; detail: string }>;
      }
    ).findings.find((x) => x.subject === 'test Secret access');
    assert.ok(f, io.stdout.join('\n'));
    assert.equal(f.warning, undefined, f.detail);
  });
});

test('doctor warns when the identity can read Secrets it does not need (the old shipped rules)', async () => {
  const broad = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pk-broad',
    rbac: [
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'patch'] },
    ],
  });
  const file = writeConfig(
    'broad.json',
    writeTokenKubeconfig(join(dir, 'broad.kubeconfig'), h.cluster!.info, broad.token),
    [{ name: 'wa', namespaces: { names: ['wa-1'] }, registries: ['reg'] }],
  );
  const io = bufferIO();
  await main(['doctor', '--config', file], io);
  const text = io.stdout.join('\n');
  assert.match(
    text,
    /WARN cluster +test Secret access: the identity can read Secrets it does not need: get Secrets in kube-system; list every Secret in the cluster\n +fix: apply `pullkeeper rbac --config FILE`/,
  );
});

describe('the output of `pullkeeper rbac --per-namespace`', () => {
  let id: Identity;
  let file: string;
  const tenants = [
    { name: 'na', namespaces: { names: ['na-1', 'na-2'] }, registries: ['reg'] },
    { name: 'nb', namespaces: { matchLabels: { tenant: 'nb' } }, registries: ['reg'] },
  ];
  before(async () => {
    for (const n of ['na-1', 'na-2']) await h.cluster!.createNamespace(n);
    await h.cluster!.createNamespace('nb-1', { tenant: 'nb' });
    const io = bufferIO();
    assert.equal(
      await main(
        [
          'rbac',
          '--config',
          writeConfig('ns-gen.json', '-', tenants),
          '--service-account',
          'pullkeeper-system/pk-ns',
          '--per-namespace',
        ],
        io,
      ),
      0,
    );
    assert.match(
      io.stderr.join('\n'),
      /tenant nb selects namespaces by label \(tenant=nb\): create a RoleBinding/,
    );
    // The label-selected tenant's RoleBinding, added as the note says (tenantNamespaces).
    id = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pk-ns',
      rbac: 'pullkeeper',
      yaml: io.stdout.join('\n'),
      tenantNamespaces: ['nb-1'],
    });
    file = writeConfig(
      'ns.json',
      writeTokenKubeconfig(join(dir, 'ns.kubeconfig'), h.cluster!.info, id.token),
      tenants,
    );
  });

  test('a refresh of two tenants succeeds; every other Secret is out of reach; the policy holds', async () => {
    const io = bufferIO();
    assert.equal(
      await main(['refresh', '--config', file, '--json'], io),
      0,
      io.stderr.join('\n') + io.stdout.join('\n'),
    );
    assert.deepEqual(statuses(JSON.parse(io.stdout.join('\n'))), {
      'na/na-1': 'created/patched',
      'na/na-2': 'created/patched',
      'nb/nb-1': 'created/patched',
    });
    // A tenant namespace (where it may create) is where the policy has to hold.
    await assertLeastPrivilege(id.client, { secretName: 'pullkeeper-na', freeNamespace: 'nb-1' });
    assert.equal(
      (await outcome(id.client.core.readNamespacedSecret({ namespace: 'wa-1', name: 'pullkeeper-wa' }))).code,
      403,
      'a Secret outside its namespaces',
    );
  });
});

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}
function runCli(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('concurrent refreshes of 50 namespaces (separate processes)', () => {
  const N = 50;
  const names = Array.from({ length: N }, (_, i) => `cc-${String(i).padStart(2, '0')}`);
  let kubeconfig: string;
  const tenants = [{ name: 'cc', namespaces: { matchLabels: { tenant: 'cc' } }, registries: ['reg'] }];
  before(async () => {
    for (const n of names) await h.cluster!.createNamespace(n, { tenant: 'cc' });
    const id = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pk-cc',
      rbac: 'pullkeeper',
      yaml: await rbacYaml([
        '--config',
        writeConfig('cc-gen.json', '-', tenants),
        '--service-account',
        'pullkeeper-system/pk-cc',
      ]),
    });
    kubeconfig = writeTokenKubeconfig(join(dir, 'cc.kubeconfig'), h.cluster!.info, id.token);
  });

  /** Runs 5 `pullkeeper refresh` at once while an admin watch counts Secret and ServiceAccount events. */
  async function round(args: string[], password: string) {
    const file = writeConfig(`cc-${password}.json`, kubeconfig, tenants, password);
    const events: Array<{ kind: 'secret' | 'sa'; type: string; ns: string; rv: string; valid: boolean }> = [];
    const { Watch } = await import('@kubernetes/client-node');
    const w = new Watch(h.cluster!.admin.kubeConfig);
    const ours = (ns: string) => ns.startsWith('cc-');
    const secrets = await w.watch(
      '/api/v1/secrets',
      { fieldSelector: 'metadata.name=pullkeeper-cc', resourceVersion: '0', allowWatchBookmarks: false },
      (
        type,
        obj: { metadata: { namespace: string; resourceVersion: string }; data?: Record<string, string> },
      ) => {
        let valid = false;
        try {
          const c = parseDockerConfig(
            Buffer.from(obj.data?.['.dockerconfigjson'] ?? '', 'base64').toString(),
            'config.json',
          );
          valid = c.auths['rbac.registry.test']?.password !== undefined;
        } catch {
          /* invalid */
        }
        events.push({
          kind: 'secret',
          type,
          ns: obj.metadata.namespace,
          rv: obj.metadata.resourceVersion,
          valid,
        });
      },
      () => undefined,
    );
    const sas = await w.watch(
      '/api/v1/serviceaccounts',
      { fieldSelector: 'metadata.name=default' },
      (type, obj: { metadata: { namespace: string; resourceVersion: string } }) => {
        if (ours(obj.metadata.namespace))
          events.push({
            kind: 'sa',
            type,
            ns: obj.metadata.namespace,
            rv: obj.metadata.resourceVersion,
            valid: true,
          });
      },
      () => undefined,
    );
    // The initial ADDED events of the watch (state before the round) are dropped below.
    await new Promise((res) => setTimeout(res, 1000));
    const skip = events.length;
    const t0 = Date.now();
    let results: RunResult[];
    try {
      results = await Promise.all(
        Array.from({ length: 5 }, () => runCli(['refresh', '--config', file, '--json', ...args])),
      );
      // The watch may lag behind on a busy machine: wait until it has delivered every object's current version.
      const core = h.cluster!.admin.core;
      const current = [
        ...(
          await core.listSecretForAllNamespaces({ fieldSelector: 'metadata.name=pullkeeper-cc' })
        ).items.map((x) => `secret ${x.metadata?.namespace}@${x.metadata?.resourceVersion}`),
        ...(await core.listServiceAccountForAllNamespaces({ fieldSelector: 'metadata.name=default' })).items
          .filter((x) => ours(x.metadata?.namespace ?? ''))
          .map((x) => `sa ${x.metadata?.namespace}@${x.metadata?.resourceVersion}`),
      ];
      for (let i = 0; i < 300; i++) {
        const delivered = new Set(events.map((e) => `${e.kind} ${e.ns}@${e.rv}`));
        if (current.every((c) => delivered.has(c))) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      await new Promise((res) => setTimeout(res, 500));
    } finally {
      secrets.abort();
      sas.abort();
    }
    const seen = events.slice(skip);
    const count = (kind: string, type: string) =>
      seen.filter((e) => e.kind === kind && e.type === type).length;
    const reports = results.map((r) => {
      try {
        return JSON.parse(r.stdout) as RefreshReport;
      } catch {
        return undefined;
      }
    });
    const numbers = {
      exits: results.map((r) => r.code),
      ms: Date.now() - t0,
      secretAdded: count('secret', 'ADDED'),
      secretModified: count('secret', 'MODIFIED'),
      secretDeleted: count('secret', 'DELETED'),
      saModified: count('sa', 'MODIFIED'),
      writes: reports.map((r) => r?.writes),
    };
    console.log(`concurrency ${args.join(' ') || '(no flags)'} ${password}: ${JSON.stringify(numbers)}`);
    for (const r of results) assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(0, 2000)}`);
    assert.ok(
      seen.every((e) => e.valid && e.type !== 'DELETED'),
      JSON.stringify(seen.filter((e) => !e.valid)),
    );
    assert.ok(!results.some((r) => (r.stdout + r.stderr).includes(password)), 'no password in any output');
    return numbers;
  }

  test('5 forced creates, 5 forced updates after a rotation, 5 no-change runs: all exit 0, one write per namespace per change', {
    timeout: 600_000,
  }, async () => {
    const created = await round(['--force'], 'cc-pass-1');
    assert.equal(created.secretAdded, N, 'one create per namespace');
    assert.equal(created.secretModified, 0);
    assert.equal(created.saModified, N, 'one ServiceAccount patch per namespace');
    const rotated = await round(['--force'], 'cc-pass-2');
    assert.equal(rotated.secretAdded, 0);
    assert.equal(rotated.secretModified, N, 'one update per namespace');
    assert.equal(rotated.saModified, 0);
    const quiet = await round([], 'cc-pass-2');
    assert.deepEqual([quiet.secretAdded, quiet.secretModified, quiet.saModified], [0, 0, 0]);
    assert.deepEqual(quiet.writes, [0, 0, 0, 0, 0]);
  });
});

describe('--guard-tenant-labels', () => {
  test('only tenant admins may set or change a tenant label on a namespace', {
    timeout: 120_000,
  }, async () => {
    const io = bufferIO();
    const gen = writeConfig('guard-gen.json', '-', [
      { name: 'gt', namespaces: { matchLabels: { 'team.example/tenant': 'gt' } }, registries: ['reg'] },
    ]);
    assert.equal(await main(['rbac', '--config', gen, '--guard-tenant-labels', '--json'], io), 0);
    const { objects } = JSON.parse(io.stdout.join('\n')) as {
      objects: Array<{ object: { kind: string; metadata: { name: string } } }>;
    };
    const guard = objects.map((o) => o.object).filter((o) => o.metadata.name === 'pullkeeper-tenant-labels');
    assert.deepEqual(
      guard.map((o) => o.kind),
      ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'],
    );
    const admin = h.cluster!.admin;
    for (const o of guard)
      await admin.objects.patch(
        o as never,
        undefined,
        undefined,
        'pullkeeper-test',
        true,
        PatchStrategy.ServerSideApply,
      );
    try {
      // Someone who may manage namespaces, but is not a tenant admin.
      const ops = await h.cluster!.createIdentity({
        namespace: 'pullkeeper-system',
        name: 'ns-operator',
        rbac: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'create', 'patch'] }],
      });
      const label = (name: string, value: string | null) =>
        outcome(
          ops.client.core.patchNamespace({
            name,
            body: [
              {
                op: value === null ? 'remove' : 'add',
                path: '/metadata/labels/team.example~1tenant',
                ...(value === null ? {} : { value }),
              },
            ],
          }),
        );
      await h.cluster!.createNamespace('gt-1', { 'team.example/tenant': 'gt' });
      await h.cluster!.createNamespace('gt-plain', { other: 'x' });
      // The policy reaches the API server through an informer: wait until it denies.
      let joined = await label('gt-plain', 'gt');
      for (let i = 0; i < 50 && joined.code === 200; i++) {
        await label('gt-plain', null);
        await new Promise((res) => setTimeout(res, 200));
        joined = await label('gt-plain', 'gt');
      }
      assert.equal(joined.code, 422, `joining a tenant by label: ${joined.message}`);
      assert.match(joined.message, /only members of pullkeeper:tenant-admins may set or change/);
      assert.equal((await label('gt-1', 'other-tenant')).code, 422, 'changing the tenant label');
      assert.equal((await label('gt-1', null)).code, 422, 'removing the tenant label');
      const created = await outcome(
        ops.client.core.createNamespace({
          body: { metadata: { name: 'gt-new', labels: { 'team.example/tenant': 'gt' } } },
        }),
      );
      assert.equal(created.code, 422, 'a new namespace with the tenant label');
      assert.equal(
        (
          await outcome(
            ops.client.core.createNamespace({
              body: { metadata: { name: 'gt-unlabelled', labels: { other: 'y' } } },
            }),
          )
        ).code,
        200,
        'other namespaces and labels are not affected',
      );
      // A tenant admin (system:masters here) still may.
      await h.cluster!.createNamespace('gt-2', { 'team.example/tenant': 'gt' });
    } finally {
      await admin.objects.delete(guard[1] as never);
      await admin.objects.delete(guard[0] as never);
    }
  });
});
