/**
 * inventory: kubernetes: Node objects in the harness cluster point at the
 * harness SSH nodes (no kubelets run here). Listed with pullkeeper's shipped
 * RBAC (what `pullkeeper rbac` prints for it), filtered by a label selector, addressed
 * by InternalIP or ExternalIP; a Node that appears later is written on the
 * next run, and pushNode() readies one at once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pushNode, pushNodes } from '../../src/app/push.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfig } from '../../src/config/schema.js';
import { kubernetesNodeLister } from '../../src/nodes/inventory.js';
import { rbacConfigFor } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

const CONFIG = '/var/lib/kubelet/config.json';
const PASSWORD = randomBytes(12).toString('hex');
let h: Harness;
let kubeconfig = '';
let knownHosts = '';

async function createNode(
  name: string,
  labels: Record<string, string>,
  addresses: Array<{ type: string; address: string }>,
) {
  const core = h.cluster!.admin.core;
  await core.createNode({ body: { metadata: { name, labels } } });
  const node = await core.readNode({ name });
  node.status = { addresses };
  await core.replaceNodeStatus({ name, body: node });
}

function config(over: Record<string, unknown> = {}): PullkeeperConfig {
  return parseConfig({
    clusters: [{ name: 'test', kubeconfig }],
    registries: [
      {
        name: 'reg',
        kind: 'static',
        server: 'reg.example',
        username: { value: 'user' },
        password: { value: PASSWORD },
        verify: false,
      },
    ],
    nodes: {
      inventory: 'kubernetes',
      selector: { 'pullkeeper.test/push': 'yes' },
      registries: ['reg'],
      ssh: {
        privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
        knownHosts: { fromFile: knownHosts },
      },
      ...over,
    },
  });
}

before(async () => {
  h = await startHarness({ cluster: true, nodes: 3 });
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    // What `pullkeeper rbac` prints for nodes.inventory: kubernetes (node reads), no tenants.
    config: rbacConfigFor([], {
      nodes: { inventory: 'kubernetes', registries: ['placeholder'], ssh: { privateKey: { value: 'k' } } },
    }),
  });
  kubeconfig = join(h.dir, 'pullkeeper.kubeconfig');
  await writeFile(kubeconfig, id.kubeConfig.exportConfig(), { mode: 0o600 });
  knownHosts = join(h.dir, 'known_hosts');
  await writeFile(knownHosts, `${h.nodes!.info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
  const [n1, n2, n3] = h.nodes!.info.nodes;
  await createNode('worker-a', { 'pullkeeper.test/push': 'yes' }, [
    { type: 'InternalIP', address: n1!.address },
    { type: 'Hostname', address: 'worker-a' },
  ]);
  // ExternalIP points at another harness node, so the address type is observable.
  await createNode('worker-b', { 'pullkeeper.test/push': 'yes' }, [
    { type: 'InternalIP', address: n2!.address },
    { type: 'ExternalIP', address: n3!.address },
  ]);
  await createNode('other', { 'pullkeeper.test/push': 'no' }, [{ type: 'InternalIP', address: n3!.address }]);
});
after(() => h?.stop());

describe('node push with inventory: kubernetes', { timeout: 180_000 }, () => {
  test('lister: selector applied by the API server, addresses and labels returned', async () => {
    const nodes = await kubernetesNodeLister(config().clusters[0]!).listNodes({
      'pullkeeper.test/push': 'yes',
    });
    assert.deepEqual(nodes.map((n) => n.name).sort(), ['worker-a', 'worker-b']);
    assert.deepEqual(nodes.find((n) => n.name === 'worker-a')!.addresses[0], {
      type: 'InternalIP',
      address: h.nodes!.info.nodes[0]!.address,
    });
  });

  test('selected Nodes are written at their InternalIP; others untouched; a new Node is written on the next run', async () => {
    const r = await pushNodes(config());
    assert.ok(!JSON.stringify(r).includes(PASSWORD));
    assert.deepEqual(
      r.nodes.map((n) => [n.name, n.address, n.status]),
      [
        ['worker-a', h.nodes!.info.nodes[0]!.address, 'written'],
        ['worker-b', h.nodes!.info.nodes[1]!.address, 'written'],
      ],
    );
    assert.ok(await h.nodes!.readFile('node-1', CONFIG));
    assert.ok(await h.nodes!.readFile('node-2', CONFIG));
    assert.equal(
      await h.nodes!.readFile('node-3', CONFIG),
      undefined,
      'a Node outside the selector was written',
    );

    await h.cluster!.admin.core.patchNode(
      {
        name: 'other',
        body: [{ op: 'replace', path: '/metadata/labels/pullkeeper.test~1push', value: 'yes' }],
      },
      undefined,
    );
    const r2 = await pushNodes(config());
    assert.deepEqual(
      r2.nodes.map((n) => [n.name, n.status]),
      [
        ['other', 'written'],
        ['worker-a', 'unchanged'],
        ['worker-b', 'unchanged'],
      ],
    );
  });

  test('ExternalIP by config; a Node without that address type is reported failed; pushNode readies one node', async () => {
    await h.nodes!.exec('node-3', `rm -f ${CONFIG}`);
    const r = await pushNodes(config({ addressType: 'ExternalIP' }));
    const m = new Map(r.nodes.map((n) => [n.name, n]));
    assert.equal(m.get('worker-b')!.address, h.nodes!.info.nodes[2]!.address);
    assert.equal(m.get('worker-b')!.status, 'written');
    for (const n of ['worker-a', 'other']) {
      assert.equal(m.get(n)!.status, 'failed');
      assert.match(m.get(n)!.reason!, /no ExternalIP address; set nodes.addressType or nodes.overrides/);
    }
    await h.nodes!.exec('node-1', `rm -f ${CONFIG}`);
    const one = await pushNode(config(), 'worker-a');
    assert.equal(one.status, 'written');
    assert.ok(await h.nodes!.readFile('node-1', CONFIG));
  });
});
