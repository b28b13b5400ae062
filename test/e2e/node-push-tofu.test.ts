/**
 * Trust on first use against harness nodes (netns + real sshd) and a real
 * apiserver, with pullkeeper's shipped RBAC: the first push records each
 * node's host key in the status ConfigMap (two runs at once merge), the next
 * push enforces it, and a node whose key then changes is refused (its
 * config.json untouched) while the others are written. A knownHosts pin wins
 * over the record. With inventory: kubernetes, first use is refused unless
 * allowed, and doctor says why.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkHostKeyTrust } from '../../src/app/doctor.js';
import { HOST_KEYS_KEY } from '../../src/app/host-key-store.js';
import { type PushResult, pushNodes } from '../../src/app/push.js';
import { STATUS_KEY, saveStatus } from '../../src/app/status-store.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfig } from '../../src/config/schema.js';
import { rbacConfigFor } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

const CONFIG = '/var/lib/kubelet/config.json';
const secrets: string[] = [];
const secret = () => {
  const s = randomBytes(12).toString('hex');
  secrets.push(s);
  return s;
};
let h: Harness;
let kubeconfig = '';

function config(
  o: { password?: string; knownHosts?: string; nodes?: Record<string, unknown> } = {},
): PullkeeperConfig {
  return parseConfig({
    clusters: [{ name: 'test', kubeconfig }],
    registries: [
      {
        name: 'reg',
        kind: 'static',
        server: 'reg.example',
        username: { value: 'user' },
        password: { value: o.password ?? secrets[0]! },
        verify: false,
      },
    ],
    nodes: {
      inventory: h.nodes!.info.nodes.map((n) => ({ name: n.name, address: n.address })),
      registries: ['reg'],
      ssh: {
        privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
        ...(o.knownHosts ? { knownHosts: { fromFile: o.knownHosts } } : {}),
        trustOnFirstUse: true,
        timeoutMs: 20_000,
      },
      ...o.nodes,
    },
  });
}

async function push(cfg: PullkeeperConfig, opts: Parameters<typeof pushNodes>[1] = {}): Promise<PushResult> {
  const r = await pushNodes(cfg, opts);
  const text = JSON.stringify(r);
  for (const s of secrets) assert.ok(!text.includes(s), 'a password reached the report');
  return r;
}
const statusOf = (r: PushResult) => Object.fromEntries(r.nodes.map((n) => [n.name, n.status]));
const byName = (r: PushResult) => new Map(r.nodes.map((n) => [n.name, n]));
const sha = (b: Buffer | undefined) => (b ? createHash('sha256').update(b).digest('hex') : 'absent');

async function storedData(): Promise<Record<string, string>> {
  const cm = await h.cluster!.admin.core.readNamespacedConfigMap({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper-status',
  });
  return cm.data ?? {};
}
async function recordedKeys(): Promise<Record<string, string>> {
  const rec = JSON.parse((await storedData())[HOST_KEYS_KEY] ?? '{"hosts":{}}') as {
    hosts: Record<string, { sha256: string; node: string }>;
  };
  return Object.fromEntries(Object.entries(rec.hosts).map(([host, e]) => [e.node, `${host} ${e.sha256}`]));
}
const expectedKey = (i: number) => {
  const n = h.nodes!.info.nodes[i]!;
  return `${n.address} ${n.hostKeySha256}`;
};

before(async () => {
  secret();
  h = await startHarness({ cluster: true, nodes: 3 });
  // What `pullkeeper rbac` prints for nodes from the cluster (node reads, the status ConfigMap).
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: rbacConfigFor([], {
      nodes: { inventory: 'kubernetes', registries: ['placeholder'], ssh: { privateKey: { value: 'k' } } },
    }),
  });
  kubeconfig = join(h.dir, 'pullkeeper.kubeconfig');
  await writeFile(kubeconfig, id.kubeConfig.exportConfig(), { mode: 0o600 });
});
after(() => h?.stop());

describe('host keys trusted on first use', { timeout: 240_000 }, () => {
  test('first push records every key (two runs at once merge); the status written later keeps the record', async () => {
    const [a, b] = await Promise.all([
      push(config(), { nodes: ['node-1'] }),
      push(config(), { nodes: ['node-2', 'node-3'] }),
    ]);
    const all = [...a.nodes, ...b.nodes];
    assert.deepEqual(
      all.map((n) => [n.name, n.status]),
      [
        ['node-1', 'written'],
        ['node-2', 'written'],
        ['node-3', 'written'],
      ],
    );
    for (const n of all)
      assert.match(
        n.notes?.join(' ') ?? '',
        /host key trusted on first use: .*recorded in ConfigMap pullkeeper-system\/pullkeeper-status/,
      );
    assert.deepEqual(await recordedKeys(), {
      'node-1': expectedKey(0),
      'node-2': expectedKey(1),
      'node-3': expectedKey(2),
    });
    const saved = await saveStatus(config(), { nodes: all });
    assert.equal(saved.error, undefined);
    const data = await storedData();
    assert.ok(data[STATUS_KEY], 'the status was saved');
    assert.ok(data[HOST_KEYS_KEY], 'saving the status dropped the host key record');
  });

  test('second push with the same keys: enforced, nothing trusted anew', async () => {
    const r = await push(config());
    assert.deepEqual(statusOf(r), { 'node-1': 'unchanged', 'node-2': 'unchanged', 'node-3': 'unchanged' });
    for (const n of r.nodes) assert.equal(n.notes, undefined, `${n.name}: ${n.notes?.join(' ')}`);
    assert.equal(r.hostKeyRecordError, undefined);
  });

  test('a changed key is refused and reported; that node keeps its file; the others are written', async () => {
    const before2 = sha(await h.nodes!.readFile('node-2', CONFIG));
    await h.nodes!.rotateHostKey('node-2');
    const r = await push(config({ password: secret() }));
    assert.deepEqual(statusOf(r), { 'node-1': 'written', 'node-2': 'failed', 'node-3': 'written' });
    const reason = byName(r).get('node-2')!.reason!;
    assert.match(reason, /host key mismatch for .*: the host key changed since it was trusted on first use/);
    assert.match(reason, new RegExp(h.nodes!.info.nodes[1]!.hostKeyFingerprint.replace(/[+/]/g, '\\$&')));
    assert.match(reason, /refused, nothing was sent.*pin it in nodes\.ssh\.knownHosts/);
    assert.equal(sha(await h.nodes!.readFile('node-2', CONFIG)), before2, 'node-2 config.json changed');
    // The record still holds the first key: the change is not "learned".
    const keys = await recordedKeys();
    assert.notEqual(keys['node-2'], expectedKey(1));
    const again = await push(config());
    assert.equal(byName(again).get('node-2')!.status, 'failed');
  });

  test('a knownHosts pin takes precedence over the record', async () => {
    const kh = join(h.dir, 'known_hosts-node-2');
    await writeFile(kh, `${h.nodes!.info.nodes[1]!.hostKeyLine}\n`);
    // node-2 still holds the first password's file (the refused runs wrote nothing there).
    const r = await push(config({ knownHosts: kh }), { nodes: ['node-2'] });
    assert.equal(r.nodes[0]!.status, 'unchanged', r.nodes[0]!.reason);
    const w = await push(config({ knownHosts: kh, password: secret() }), { nodes: ['node-2'] });
    assert.equal(w.nodes[0]!.status, 'written', w.nodes[0]!.reason);
  });

  test('inventory: kubernetes refuses first use unless allowed; doctor says why', async () => {
    const core = h.cluster!.admin.core;
    await core.createNode({ body: { metadata: { name: 'worker-new', labels: { 'pk.test/tofu': 'yes' } } } });
    const node = await core.readNode({ name: 'worker-new' });
    node.status = { addresses: [{ type: 'InternalIP', address: h.nodes!.info.nodes[2]!.address }] };
    await core.replaceNodeStatus({ name: 'worker-new', body: node });
    const kubeInv = (allow?: boolean) =>
      config({
        nodes: {
          inventory: 'kubernetes',
          selector: { 'pk.test/tofu': 'yes' },
          ssh: {
            privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
            trustOnFirstUse: allow === undefined ? true : { allowWithKubernetesInventory: allow },
            timeoutMs: 20_000,
          },
        },
      });
    for (const cfg of [kubeInv(), kubeInv(false)]) {
      const r = await push(cfg);
      assert.equal(r.nodes[0]!.status, 'failed');
      assert.match(
        r.nodes[0]!.reason!,
        /no pinned host key .* trust on first use is refused with nodes\.inventory: kubernetes.*impostor.*allowWithKubernetesInventory: true/,
      );
      const [finding] = await checkHostKeyTrust(cfg, AbortSignal.timeout(30_000));
      assert.equal(finding!.ok, false);
      assert.match(finding!.detail, /Node objects .* are reported by the kubelets themselves/);
    }
    // Allowed: the address was recorded by the static runs above, so the record is enforced here too.
    const allowed = kubeInv(true);
    const r = await push(allowed);
    assert.deepEqual(statusOf(r), { 'worker-new': 'unchanged' });
    const [finding] = await checkHostKeyTrust(allowed, AbortSignal.timeout(30_000));
    assert.equal(finding!.ok, true);
    assert.match(finding!.detail, /recorded in ConfigMap .*allowed with inventory: kubernetes/);
  });

  test('a damaged record fails closed: no node is trusted on first use, and the record is left as it is', async () => {
    const core = h.cluster!.admin.core;
    const cm = await core.readNamespacedConfigMap({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper-status',
    });
    cm.data = { ...cm.data, [HOST_KEYS_KEY]: '{"version":1,"hosts":{"10.0.0.1":{"sha256":"nope"}}}' };
    await core.replaceNamespacedConfigMap({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper-status',
      body: cm,
    });
    const r = await push(config({ password: secret() }));
    assert.deepEqual(statusOf(r), { 'node-1': 'failed', 'node-2': 'failed', 'node-3': 'failed' });
    for (const n of r.nodes)
      assert.match(
        n.reason!,
        /no pinned host key .*not trusted on first use: .*is not valid; it is left as it is/,
      );
    assert.match(r.hostKeyRecordError!, /known-hosts\.json.*not valid/);
    const saved = await saveStatus(config(), { nodes: r.nodes });
    assert.equal(saved.error, undefined);
    assert.equal(
      (await storedData())[HOST_KEYS_KEY],
      cm.data[HOST_KEYS_KEY],
      'the damaged record was overwritten',
    );
  });
});
