/**
 * Tenant pull secrets against a real kube-apiserver, as an identity with what
 * `pullkeeper rbac` prints for the config: create, no-op rerun, in-place update watched,
 * foreign objects left alone, ServiceAccount entries of others kept, a
 * namespace without permission reported while the rest succeed, a failed
 * registry keeping the last good Secret, dry-run, ensure, and the CLI.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureNamespace } from '../../src/app/ensure.js';
import { CredentialCache } from '../../src/app/mint.js';
import { type RefreshReport, refresh, refreshFailed } from '../../src/app/refresh.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfigInput } from '../../src/config/schema.js';
import { parseDockerConfig } from '../../src/core/index.js';
import { type Identity, writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

let h: Harness;
let id: Identity;
let kubeconfig: string;
const dir = mkdtempSync(join(tmpdir(), 'pk-rotation-'));
const PASS = { a: 'rot-pass-a-5d2e', b: 'rot-pass-b-81fc' };

function writeKubeconfig(name: string, token: string): string {
  return writeTokenKubeconfig(join(dir, `${name}.kubeconfig`), h.cluster!.info, token);
}

function config(
  o: { kubeconfig?: string; tenants?: PullkeeperConfigInput['tenants']; passA?: unknown } = {},
) {
  return parseConfig({
    clusters: [{ name: 'test', kubeconfig: o.kubeconfig ?? kubeconfig }],
    registries: [
      {
        name: 'reg-a',
        kind: 'static',
        server: 'a.registry.test',
        username: { value: 'ua' },
        password: o.passA ?? { fromEnv: 'PK_ROT_PASS_A' },
        verify: false,
      },
      {
        name: 'reg-b',
        kind: 'static',
        server: 'b.registry.test',
        username: { value: 'ub' },
        password: { value: PASS.b },
        verify: false,
      },
    ],
    tenants: o.tenants ?? [
      {
        name: 'alpha',
        namespaces: { matchLabels: { tenant: 'alpha' } },
        registries: ['reg-a', 'reg-b'],
        serviceAccounts: ['default', 'builder'],
      },
      {
        name: 'beta',
        namespaces: { names: ['beta-1', 'beta-2'] },
        registries: ['reg-b'],
        serviceAccounts: '*',
      },
    ],
  });
}

const core = () => h.cluster!.admin.core;
const secretOf = (ns: string, name: string) => core().readNamespacedSecret({ namespace: ns, name });
const statuses = (r: RefreshReport) =>
  Object.fromEntries(
    r.tenants.flatMap((t) =>
      t.namespaces.map((n) => [`${t.name}/${n.name}`, `${n.secret}/${n.serviceAccounts}`]),
    ),
  );

before(async () => {
  process.env.PK_ROT_PASS_A = PASS.a;
  h = await startHarness({ cluster: true, nodes: 2 });
  for (const n of ['alpha-1', 'alpha-2', 'alpha-3']) await h.cluster!.createNamespace(n, { tenant: 'alpha' });
  for (const n of ['beta-1', 'beta-2']) await h.cluster!.createNamespace(n);
  for (const n of ['alpha-1', 'alpha-2', 'alpha-3']) await h.cluster!.createServiceAccount(n, 'builder');
  // Someone else's entry on a ServiceAccount: it must survive.
  await core().patchNamespacedServiceAccount({
    namespace: 'alpha-1',
    name: 'default',
    body: [{ op: 'add', path: '/imagePullSecrets', value: [{ name: 'their-own' }] }],
  });
  // What `pullkeeper rbac` prints for every tenant this file uses.
  const all = config({ kubeconfig: '-' });
  id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: {
      ...all,
      tenants: [
        ...all.tenants,
        { name: 'epsilon', namespaces: { matchLabels: { tenant: 'epsilon' } }, registries: ['reg-b'] },
        { name: 'delta', namespaces: { names: ['delta-1'] }, registries: ['reg-b'] },
      ],
    },
  });
  kubeconfig = writeKubeconfig('pullkeeper', id.token);
});
after(() => h?.stop());

describe('rotation with the shipped RBAC', () => {
  let first: RefreshReport;
  const cache = new CredentialCache();
  test('first run: every namespace gets the Secret, ServiceAccounts point at it, no Normal event by default', async () => {
    first = await refresh(config(), { cache });
    assert.equal(refreshFailed(first), false, JSON.stringify(first.tenants));
    assert.deepEqual(statuses(first), {
      'alpha/alpha-1': 'created/patched',
      'alpha/alpha-2': 'created/patched',
      'alpha/alpha-3': 'created/patched',
      'beta/beta-1': 'created/patched',
      'beta/beta-2': 'created/patched',
    });
    const s = await secretOf('alpha-2', 'pullkeeper-alpha');
    assert.equal(s.type, 'kubernetes.io/dockerconfigjson');
    assert.equal(s.metadata?.labels?.['app.kubernetes.io/managed-by'], 'pullkeeper');
    const cfg = parseDockerConfig(
      Buffer.from(s.data!['.dockerconfigjson']!, 'base64').toString(),
      'config.json',
    );
    assert.deepEqual(Object.keys(cfg.auths), ['a.registry.test', 'b.registry.test']);
    assert.equal(cfg.auths['a.registry.test']!.password, PASS.a);
    const sa = await core().readNamespacedServiceAccount({ namespace: 'alpha-1', name: 'default' });
    assert.deepEqual(
      sa.imagePullSecrets?.map((r) => r.name),
      ['their-own', 'pullkeeper-alpha'],
      'entries of others stay',
    );
    const builder = await core().readNamespacedServiceAccount({ namespace: 'alpha-3', name: 'builder' });
    assert.deepEqual(
      builder.imagePullSecrets?.map((r) => r.name),
      ['pullkeeper-alpha'],
    );
    const events = await core().listNamespacedEvent({ namespace: 'beta-1' });
    assert.deepEqual(
      events.items.filter((e) => e.involvedObject.name === 'pullkeeper-beta').map((e) => e.reason),
      [],
      'events: warnings (the default) posts no PullSecretCreated',
    );
    assert.ok(
      first.connections <= 32,
      `connections are reused (${first.connections} for ${first.requests} requests)`,
    );
    const text = JSON.stringify(first) + JSON.stringify(events.items);
    assert.ok(!text.includes(PASS.a) && !text.includes(PASS.b), 'no password in the report or in events');
  });

  test('a rerun with nothing changed sends zero writes and changes no resourceVersion', async () => {
    const before = (
      await core().listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=pullkeeper' })
    ).items.map((s) => s.metadata?.resourceVersion);
    const again = await refresh(config(), { cache: new CredentialCache() });
    assert.equal(again.writes, 0);
    assert.equal(again.mintCalls, 0, 'fresh Secrets: nothing minted');
    assert.ok(again.tenants.every((t) => t.fresh));
    // namespaces, one list per Secret name (2) and per listed ServiceAccount name (2), one per '*' namespace (2)
    assert.ok(again.requests <= 7, `a few list calls (${again.requests})`);
    const after = (
      await core().listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=pullkeeper' })
    ).items.map((s) => s.metadata?.resourceVersion);
    assert.deepEqual(after, before);
  });

  test('a rotated password: updated in place; a watch never sees a Secret missing or without valid data', async () => {
    process.env.PK_ROT_PASS_A = 'rot-pass-a-rotated-77';
    const seen: Array<{ type: string; valid: boolean }> = [];
    const { Watch } = await import('@kubernetes/client-node');
    const w = new Watch(h.cluster!.admin.kubeConfig);
    const ctrl = await w.watch(
      '/api/v1/namespaces/alpha-1/secrets',
      { fieldSelector: 'metadata.name=pullkeeper-alpha' },
      (type, obj: { data?: Record<string, string> }) => {
        let valid = false;
        try {
          parseDockerConfig(
            Buffer.from(obj.data?.['.dockerconfigjson'] ?? '', 'base64').toString(),
            'config.json',
          );
          valid = true;
        } catch {
          /* invalid */
        }
        seen.push({ type, valid });
      },
      () => undefined,
    );
    try {
      const r = await refresh(config(), { cache: new CredentialCache(), force: true });
      assert.equal(statuses(r)['alpha/alpha-1'], 'updated/unchanged');
      assert.equal(
        statuses(r)['beta/beta-1'],
        'unchanged/unchanged',
        'beta has no reg-a: content the same, no write',
      );
      await new Promise((res) => setTimeout(res, 500));
    } finally {
      ctrl.abort();
      process.env.PK_ROT_PASS_A = PASS.a;
    }
    assert.ok(
      seen.some((e) => e.type === 'MODIFIED'),
      JSON.stringify(seen),
    );
    assert.ok(
      seen.every((e) => e.type !== 'DELETED' && e.valid),
      JSON.stringify(seen),
    );
  });

  test('a registry that fails: existing Secrets are not touched, the reason is reported, exit status failed', async () => {
    const rv = (await secretOf('alpha-2', 'pullkeeper-alpha')).metadata?.resourceVersion;
    const r = await refresh(config({ passA: { fromEnv: 'PK_ROT_UNSET' } }), {
      cache: new CredentialCache(),
      force: true,
    });
    assert.equal(refreshFailed(r), true);
    const n = r.tenants.find((t) => t.name === 'alpha')!.namespaces.find((x) => x.name === 'alpha-2')!;
    assert.equal(n.secret, 'failed');
    assert.match(n.reason!, /reg-a failed this run; the last good Secret stays/);
    assert.equal((await secretOf('alpha-2', 'pullkeeper-alpha')).metadata?.resourceVersion, rv);
  });

  test('a foreign Secret with our name is reported and left alone; adopt: true takes it over in place', async () => {
    await h.cluster!.createNamespace('alpha-foreign', { tenant: 'alpha' });
    await h.cluster!.createServiceAccount('alpha-foreign', 'builder');
    await core().createNamespacedSecret({
      namespace: 'alpha-foreign',
      body: {
        metadata: { name: 'pullkeeper-alpha' },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
      },
    });
    const rv = (await secretOf('alpha-foreign', 'pullkeeper-alpha')).metadata?.resourceVersion;
    const r = await refresh(config(), { cache: new CredentialCache() });
    const n = r.tenants[0]!.namespaces.find((x) => x.name === 'alpha-foreign')!;
    assert.equal(n.secret, 'conflict');
    assert.match(n.reason!, /not managed by pullkeeper; set adopt: true/);
    assert.equal((await secretOf('alpha-foreign', 'pullkeeper-alpha')).metadata?.resourceVersion, rv);
    const sa = await core().readNamespacedServiceAccount({ namespace: 'alpha-foreign', name: 'default' });
    assert.equal(sa.imagePullSecrets, undefined, 'no ServiceAccount is pointed at a Secret we do not own');
    const ours = async () =>
      (await core().listNamespacedEvent({ namespace: 'alpha-foreign' })).items
        .filter((e) => e.involvedObject.name === 'pullkeeper-alpha')
        .map((e) => `${e.type}/${e.reason}`);
    assert.deepEqual(await ours(), ['Warning/PullSecretConflict'], 'the default still posts Warnings');

    const quiet = config();
    quiet.events = 'none';
    const again = await refresh(quiet, { cache: new CredentialCache() });
    assert.equal(statuses(again)['alpha/alpha-foreign'], 'conflict/unchanged');
    assert.deepEqual(await ours(), ['Warning/PullSecretConflict'], 'events: none posts nothing');

    const c = config();
    c.tenants[0]!.adopt = true;
    c.events = 'all';
    const adopted = await refresh(c, { cache: new CredentialCache() });
    assert.equal(statuses(adopted)['alpha/alpha-foreign'], 'updated/patched');
    const s = await secretOf('alpha-foreign', 'pullkeeper-alpha');
    assert.equal(s.metadata?.labels?.['app.kubernetes.io/managed-by'], 'pullkeeper');
    assert.deepEqual(
      (await ours()).sort(),
      ['Normal/PullSecretRotated', 'Warning/PullSecretConflict'],
      'events: all adds a Normal event per namespace written',
    );
    const all = JSON.stringify((await core().listNamespacedEvent({ namespace: 'alpha-foreign' })).items);
    assert.ok(!all.includes(PASS.a) && !all.includes(PASS.b), 'no password in events');
  });

  test('dry run: the plan as a diff, zero writes', async () => {
    await h.cluster!.createNamespace('alpha-dry', { tenant: 'alpha' });
    const r = await refresh(config(), { cache: new CredentialCache(), dryRun: true });
    assert.equal(r.writes, 0);
    assert.ok(r.plan?.includes('+ create alpha-dry/pullkeeper-alpha'), JSON.stringify(r.plan));
    assert.ok(
      r.plan?.includes('~ patch alpha-dry/serviceaccount/default: imagePullSecrets += pullkeeper-alpha'),
    );
    await assert.rejects(secretOf('alpha-dry', 'pullkeeper-alpha'), (e: { code?: number }) => e.code === 404);
  });

  test('ensure: a brand-new namespace is ready when the call returns', async () => {
    await h.cluster!.createNamespace('alpha-new', { tenant: 'alpha' });
    await h.cluster!.createServiceAccount('alpha-new', 'builder');
    const r = await ensureNamespace(config(), 'alpha-new', { cache: new CredentialCache() });
    assert.equal(r.ready, true, r.reasons.join('; '));
    assert.deepEqual(r.tenants, ['alpha']);
    const s = await secretOf('alpha-new', 'pullkeeper-alpha');
    assert.ok(s.data?.['.dockerconfigjson']);
    assert.ok(
      r.refresh.tenants[0]!.namespaces.every((n) => n.name === 'alpha-new'),
      'only that namespace was touched',
    );
    await assert.rejects(ensureNamespace(config(), 'kube-system'), /belongs to no configured tenant/);
  });
});

describe('one refresh: tenants and nodes', () => {
  test('the refresh report gains nodes; a second run writes nothing anywhere', async () => {
    const info = h.nodes!.info;
    const known = join(dir, 'known_hosts');
    writeFileSync(known, `${info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
    const c = parseConfig({
      ...JSON.parse(
        JSON.stringify(
          config({
            tenants: [{ name: 'beta', namespaces: { names: ['beta-1', 'beta-2'] }, registries: ['reg-b'] }],
          }),
        ),
      ),
      nodes: {
        inventory: info.nodes.map((n) => ({ name: n.name, address: n.address })),
        registries: ['reg-b'],
        ssh: { privateKey: { fromFile: info.clientKey.privateKeyPath }, knownHosts: { fromFile: known } },
      },
    });
    const r = await refresh(c, { cache: new CredentialCache() });
    assert.equal(refreshFailed(r), false, JSON.stringify(r.nodes));
    assert.deepEqual(
      r.nodes?.map((n) => [n.name, n.status]),
      info.nodes.map((n) => [n.name, 'written']),
    );
    const onNode = await h.nodes!.readFile(info.nodes[0]!.name, '/var/lib/kubelet/config.json');
    assert.deepEqual(Object.keys(parseDockerConfig(String(onNode), 'config.json').auths), [
      'b.registry.test',
    ]);
    const again = await refresh(c, { cache: new CredentialCache() });
    assert.equal(again.writes, 0);
    assert.deepEqual(
      again.nodes?.map((n) => n.status),
      info.nodes.map(() => 'unchanged'),
    );
  });
});

describe('the apiserver killed mid-run and restarted', () => {
  test('the run fails cleanly; a rerun converges', { timeout: 120_000 }, async () => {
    const names = Array.from({ length: 40 }, (_, i) => `eps-${i}`);
    for (const n of names) await h.cluster!.createNamespace(n, { tenant: 'epsilon' });
    const c = config({
      tenants: [
        { name: 'epsilon', namespaces: { matchLabels: { tenant: 'epsilon' } }, registries: ['reg-b'] },
      ],
    });
    const running = refresh(c, { cache: new CredentialCache(), concurrency: 2 }).then(
      (r) => ({ r }),
      (err: unknown) => ({ err }),
    );
    await new Promise((res) => setTimeout(res, 150));
    await h.cluster!.killApiserver();
    const interrupted = await running;
    await h.cluster!.startApiserver();
    if ('r' in interrupted) assert.ok(interrupted.r.tenants[0]!.namespaces.length > 0);
    let again = await refresh(c, { cache: new CredentialCache() });
    for (let i = 0; i < 10 && refreshFailed(again); i++) {
      await new Promise((res) => setTimeout(res, 300));
      again = await refresh(c, { cache: new CredentialCache() });
    }
    assert.equal(refreshFailed(again), false, JSON.stringify(again.tenants));
    const secrets = await core().listSecretForAllNamespaces({
      labelSelector: 'pullkeeper.dev/tenant=epsilon',
    });
    assert.equal(secrets.items.length, names.length, 'every namespace has exactly one Secret');
    for (const n of names) {
      const sa = await core().readNamespacedServiceAccount({ namespace: n, name: 'default' });
      assert.deepEqual(
        sa.imagePullSecrets?.map((r) => r.name),
        ['pullkeeper-epsilon'],
        `${n}: listed once`,
      );
    }
    const third = await refresh(c, { cache: new CredentialCache() });
    assert.equal(third.writes, 0);
  });
});

describe('namespace-scoped RBAC: one namespace without permission', () => {
  test('that namespace reports 403; the others succeed', async () => {
    for (const n of ['gamma-1', 'gamma-2', 'gamma-3'])
      await h.cluster!.createNamespace(n, { tenant: 'gamma' });
    const scoped = await h.cluster!.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper-scoped',
      rbac: 'pullkeeper',
      tenantNamespaces: ['gamma-1', 'gamma-3'],
      config: config({
        kubeconfig: '-',
        tenants: [{ name: 'gamma', namespaces: { matchLabels: { tenant: 'gamma' } }, registries: ['reg-b'] }],
      }),
    });
    const c = config({
      kubeconfig: writeKubeconfig('scoped', scoped.token),
      tenants: [{ name: 'gamma', namespaces: { matchLabels: { tenant: 'gamma' } }, registries: ['reg-b'] }],
    });
    const r = await refresh(c, { cache: new CredentialCache() });
    const st = statuses(r);
    assert.equal(st['gamma/gamma-1'], 'created/patched');
    assert.equal(st['gamma/gamma-3'], 'created/patched');
    assert.equal(st['gamma/gamma-2'], 'failed/failed');
    assert.match(r.tenants[0]!.namespaces.find((n) => n.name === 'gamma-2')!.reason!, /forbidden \(403\)/);
  });
});

describe('pullkeeper refresh / ensure (CLI)', () => {
  test('--json report with tenants and writes; ensure; --dry-run; exit codes', async () => {
    const file = join(dir, 'pk.json');
    writeFileSync(
      file,
      JSON.stringify({
        clusters: [{ name: 'test', kubeconfig }],
        registries: [
          {
            name: 'reg-b',
            kind: 'static',
            server: 'b.registry.test',
            username: { value: 'ub' },
            password: { value: PASS.b },
            verify: false,
          },
        ],
        tenants: [{ name: 'delta', namespaces: { names: ['delta-1'] }, registries: ['reg-b'] }],
      }),
    );
    await h.cluster!.createNamespace('delta-1');
    const dry = bufferIO();
    assert.equal(await main(['refresh', '--config', file, '--dry-run'], dry), 0, dry.stderr.join('\n'));
    assert.match(dry.stdout.join('\n'), /\+ create delta-1\/pullkeeper-delta/);
    const io = bufferIO();
    assert.equal(
      await main(['refresh', '--config', file, '--json', '--tenant', 'delta'], io),
      0,
      io.stderr.join('\n'),
    );
    const rep = JSON.parse(io.stdout.join('\n'));
    assert.deepEqual(rep.tenants, [
      {
        name: 'delta',
        cluster: 'test',
        namespaces: [{ name: 'delta-1', secret: 'created', serviceAccounts: 'patched' }],
      },
    ]);
    assert.ok(rep.writes >= 2);
    assert.ok(Array.isArray(rep.registries));
    const e = bufferIO();
    assert.equal(await main(['ensure', 'delta-1', '--config', file, '--json'], e), 0, e.stderr.join('\n'));
    assert.equal(JSON.parse(e.stdout.join('\n')).ready, true);
    const bad = bufferIO();
    assert.equal(await main(['refresh', '--config', file, '--tenant', 'nope'], bad), 2);
    assert.match(bad.stderr.join('\n'), /unknown tenant nope/);
    assert.ok(!JSON.stringify([io.stdout, e.stdout, dry.stdout]).includes(PASS.b));
  });
});
