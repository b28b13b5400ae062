/**
 * The status record kept in a ConfigMap (src/app/status-store.ts), against a
 * real kube-apiserver with exactly the RBAC `pullkeeper rbac` prints and
 * real SSH nodes: a CLI refresh in one process, and the status report read
 * in another (as the API function reads what the scheduled function did);
 * a failed mint keeping the last good expiry; concurrent writers (fan-out
 * workers) all landing; an identity without the store's RBAC still refreshing,
 * with a warning that says what to do; a same-named ConfigMap of someone else
 * left alone.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { statusReport } from '../../src/app/status-report.js';
import { readStatusRecord, STATUS_KEY, saveStatus } from '../../src/app/status-store.js';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { parseConfig } from '../../src/config/load.js';
import { writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

let h: Harness;
const dir = mkdtempSync(join(tmpdir(), 'pk-status-store-'));
const PASS = 'status-store-pass-7c1e';
let kubeconfig: string;
const BIN = join(import.meta.dirname, '../../bin/pullkeeper.js');

function configJson(o: { kubeconfig?: string; password?: unknown; statusStore?: unknown } = {}) {
  return {
    clusters: [{ name: 'test', kubeconfig: o.kubeconfig ?? kubeconfig }],
    registries: [
      {
        name: 'reg',
        kind: 'static',
        server: 'reg.registry.test',
        username: { value: 'robot' },
        password: o.password ?? { value: PASS },
        verify: false,
      },
    ],
    tenants: [{ name: 'alpha', namespaces: { names: ['ss-alpha'] }, registries: ['reg'] }],
    nodes: {
      inventory: h.nodes!.info.nodes.map((n) => ({ name: n.name, address: n.address })),
      registries: ['reg'],
      ssh: {
        privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
        knownHosts: { fromFile: join(dir, 'known_hosts') },
        timeoutMs: 5000,
      },
    },
    ...(o.statusStore !== undefined ? { statusStore: o.statusStore } : {}),
  };
}

function writeConfig(name: string, o: Parameters<typeof configJson>[0] = {}): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(configJson(o)));
  return path;
}

/** `pullkeeper ARGS` in its own process, as an operator or a scheduled job runs it. */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const storedMap = () =>
  h.cluster!.admin.core.readNamespacedConfigMap({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper-status',
  });

before(async () => {
  h = await startHarness({ cluster: true, nodes: 2 });
  await h.cluster!.createNamespace('ss-alpha');
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: configJson({ kubeconfig: '-' }),
  });
  kubeconfig = writeTokenKubeconfig(join(dir, 'kubeconfig'), h.cluster!.info, id.token);
  writeFileSync(join(dir, 'known_hosts'), `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
});
after(async () => {
  await h?.stop();
});

test('a refresh in one process is what the status report shows in another', {
  timeout: 180_000,
}, async () => {
  const file = writeConfig('pk.json');
  const r = cli(['refresh', '--config', file, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /status not saved/);

  // This test process never refreshed: what it reports comes from the cluster.
  const config = parseConfig(configJson());
  const report = await statusReport(config, ['alpha']);
  assert.equal(report.storeError, undefined);
  assert.equal(report.registries.length, 1);
  const reg = report.registries[0]!;
  assert.equal(reg.name, 'reg');
  assert.ok(reg.lastSuccess, 'the CLI run minted the registry');
  assert.ok(Date.now() - Date.parse(reg.lastSuccess!) < 120_000);
  assert.deepEqual(
    report.nodes!.map((n) => [n.name, n.status]),
    h.nodes!.info.nodes.map((n) => [n.name, 'written']),
  );
  assert.equal(report.tenants[0]?.namespaces[0]?.secret, 'present');

  const cm = await storedMap();
  assert.equal(cm.metadata?.labels?.['app.kubernetes.io/managed-by'], 'pullkeeper');
  assert.ok(!JSON.stringify(cm).includes(PASS), 'no secret in the ConfigMap');

  // A second run: the nodes' result changed (written -> unchanged), so the record is rewritten.
  const rv = cm.metadata?.resourceVersion;
  assert.equal(cli(['refresh', '--config', file]).code, 0);
  const again = await readStatusRecord(config);
  assert.equal(again?.nodes['node-1']?.status, 'unchanged');
  const rv2 = (await storedMap()).metadata?.resourceVersion;
  assert.notEqual(rv2, rv);
  // A third run with the same results and only newer times does not rewrite it (etcd history).
  assert.equal(cli(['refresh', '--config', file]).code, 0);
  assert.equal((await storedMap()).metadata?.resourceVersion, rv2);
});

test('a failed mint is shown with its error and the last good credential’s time', {
  timeout: 180_000,
}, async () => {
  const before = await readStatusRecord(parseConfig(configJson()));
  const file = writeConfig('pk-broken.json', { password: { fromEnv: 'PK_STATUS_STORE_UNSET' } });
  const r = cli(['refresh', '--config', file, '--force', '--json']);
  assert.equal(r.code, 1, 'the mint failed');
  const report = await statusReport(parseConfig(configJson()), ['alpha']);
  const reg = report.registries[0]!;
  assert.match(reg.lastError ?? '', /PK_STATUS_STORE_UNSET/);
  assert.equal(reg.lastSuccess, before?.registries.reg?.lastSuccess, 'the last success is kept');
});

test('concurrent writers (fan-out workers) all land', { timeout: 60_000 }, async () => {
  const config = parseConfig(configJson());
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      saveStatus(config, { nodes: [{ name: `worker-node-${i}`, status: 'written' }] }),
    ),
  );
  assert.deepEqual(
    results.map((x) => x.error),
    Array(12).fill(undefined),
  );
  const stored = await readStatusRecord(config);
  for (let i = 0; i < 12; i++)
    assert.equal(stored?.nodes[`worker-node-${i}`]?.status, 'written', `worker ${i}`);
  assert.ok(stored?.nodes['node-1'], 'the earlier entries stay');
});

test('without the store’s RBAC the refresh still works, and the warning says what to do', {
  timeout: 180_000,
}, async () => {
  // What `pullkeeper rbac` prints for a config with statusStore: false: no ConfigMap rights.
  const other = await h.cluster!.createIdentity({
    namespace: 'pk-elsewhere',
    name: 'pk',
    rbac: 'pullkeeper',
    config: configJson({ kubeconfig: '-', statusStore: false }),
  });
  const file = writeConfig('pk-elsewhere.json', {
    kubeconfig: writeTokenKubeconfig(join(dir, 'elsewhere.kubeconfig'), h.cluster!.info, other.token),
  });
  const r = cli(['refresh', '--config', file, '--force']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: status not saved: ConfigMap pullkeeper-system\/pullkeeper-status in cluster test: forbidden; apply the output of "pullkeeper rbac --config FILE"/,
  );
  const d = cli(['doctor', '--config', file, '--json']);
  const finding = (
    JSON.parse(d.stdout) as {
      findings: Array<{ subject: string; ok: boolean; detail: string; fix?: string }>;
    }
  ).findings.find((f) => /status store/.test(f.subject));
  assert.equal(finding?.ok, false, d.stdout);
  assert.match(finding!.detail, /not allowed: create configmaps, get configmaps\/pullkeeper-status/);
  assert.match(finding!.fix!, /ClusterRole pullkeeper-status/);
  assert.ok(!(r.stdout + r.stderr + d.stdout).includes(PASS));
});

test('a same-named ConfigMap of someone else is left alone', { timeout: 60_000 }, async () => {
  await h.cluster!.admin.core.createNamespacedConfigMap({
    namespace: 'pullkeeper-system',
    body: { metadata: { name: 'theirs' }, data: { [STATUS_KEY]: 'their data' } },
  });
  const config = parseConfig(
    configJson({ kubeconfig: h.cluster!.info.kubeconfigPath, statusStore: { name: 'theirs' } }),
  );
  const saved = await saveStatus(config, { nodes: [{ name: 'n', status: 'written' }] });
  assert.equal(saved.written, false);
  assert.match(saved.error ?? '', /exists and is not ours .* set statusStore\.name to another name/);
  const cm = await h.cluster!.admin.core.readNamespacedConfigMap({
    namespace: 'pullkeeper-system',
    name: 'theirs',
  });
  assert.equal(cm.data?.[STATUS_KEY], 'their data');

  // statusStore: false keeps nothing in the cluster, and asks nothing of it.
  const off = parseConfig(configJson({ statusStore: false }));
  assert.deepEqual(await saveStatus(off, { nodes: [{ name: 'n', status: 'written' }] }), { written: false });
  const io = bufferIO();
  assert.equal(
    await main(['config', 'check', writeConfig('pk-bad.json', { statusStore: { cluster: 'nope' } })], io),
    2,
  );
  assert.match(io.stderr.join('\n'), /statusStore\.cluster.*unknown cluster "nope"/);
});
