/**
 * The SQS fan-out against a real SQS-compatible server (moto) and the real
 * refresh and node push: the scheduled function (as Lambda runs it, with the
 * queue URL set) lists the `kubernetes` node inventory of the harness cluster
 * through pullkeeper's own client and enqueues one message per tenant and per
 * node batch; the worker handles batches through the local poller (what
 * Lambda's event source does). Every tenant and every node is handled exactly
 * once; only the failing tenant's and the failing node batch's messages come
 * back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pollQueue, type SqsEvent } from '../../src/app/fanout.js';
import { fanoutWorker, scheduledRefresh } from '../../src/app/scheduled.js';
import { readStatusRecord } from '../../src/app/status-store.js';
import { configFromEnvOnce } from '../../src/config/load.js';
import { rbacConfigFor, writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

let h: Harness;
const dir = mkdtempSync(join(tmpdir(), 'pk-fanout-'));
const REG = { username: 'fan', password: 'fanout-pass-6c1d' };
const TENANTS = Array.from({ length: 60 }, (_, i) => `t${String(i).padStart(2, '0')}`);
const FAILING = 't07';
/** Node objects for the 5 netns nodes, and one whose SSH port is closed (sorted last: its batch is alone). */
const GOOD_NODES = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e'];
const BROKEN_NODE = 'zz-broken';
const CONFIG_JSON = '/var/lib/kubelet/config.json';

async function createNode(name: string, address: string) {
  const core = h.cluster!.admin.core;
  await core.createNode({ body: { metadata: { name, labels: { 'pullkeeper.test/fanout': 'yes' } } } });
  const node = await core.readNode({ name });
  node.status = { addresses: [{ type: 'InternalIP', address }] };
  await core.replaceNodeStatus({ name, body: node });
}

before(async () => {
  h = await startHarness({ cluster: true, nodes: 5, registry: { auth: 'htpasswd' }, cloud: {} });
  await h.registry!.allow(REG.username, REG.password);
  for (const t of TENANTS) await h.cluster!.createNamespace(`${t}-ns`);
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: rbacConfigFor(
      TENANTS.map((t) => ({ name: t, namespaces: { names: [`${t}-ns`] } })),
      {
        nodes: { inventory: 'kubernetes', registries: ['placeholder'], ssh: { privateKey: { value: 'k' } } },
      },
    ),
  });
  const nodes = h.nodes!.info.nodes;
  for (const [i, name] of GOOD_NODES.entries()) await createNode(name, nodes[i]!.address);
  await createNode(BROKEN_NODE, nodes[0]!.address);
  // A Node outside the selector is never pushed, whatever the queue says.
  await h.cluster!.admin.core.createNode({ body: { metadata: { name: 'not-selected' } } });

  const kubeconfig = join(dir, 'kubeconfig');
  writeTokenKubeconfig(kubeconfig, h.cluster!.info, id.token);
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
  const cfg = join(dir, 'pullkeeper.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      clusters: [{ name: 'test', kubeconfig }],
      registries: [
        {
          name: 'good',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: REG.username },
          password: { value: REG.password },
        },
        // Logs in with a wrong password: verification fails, so this tenant's refresh fails.
        {
          name: 'bad',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: REG.username },
          password: { value: 'wrong-password-x' },
        },
      ],
      tenants: TENANTS.map((t) => ({
        name: t,
        namespaces: { names: [`${t}-ns`] },
        registries: [t === FAILING ? 'bad' : 'good'],
      })),
      nodes: {
        inventory: 'kubernetes',
        selector: { 'pullkeeper.test/fanout': 'yes' },
        registries: ['good'],
        ssh: {
          privateKey: { fromFile: h.nodes!.info.clientKey.privateKeyPath },
          knownHosts: { fromFile: knownHosts },
          timeoutMs: 5000,
        },
        // Nothing listens on port 1: this node's push fails (connection refused).
        overrides: { [BROKEN_NODE]: { port: 1 } },
      },
    }),
  );
  Object.assign(process.env, {
    PULLKEEPER_CONFIG: cfg,
    PULLKEEPER_LOG_LEVEL: 'error',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: h.cloud!.moto!.info.endpoint,
  });
});
after(() => h?.stop());

test('60 tenants and a kubernetes node inventory through the queue: each handled once, only failures redelivered', {
  timeout: 300_000,
}, async () => {
  const { SQSClient, CreateQueueCommand, GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({});
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: 'pk-fanout', Attributes: { VisibilityTimeout: '1' } }),
  );

  // The scheduled function as Lambda runs it: enough tenants, so it only enqueues.
  const scheduled = (await scheduledRefresh({
    ...process.env,
    PULLKEEPER_FANOUT_QUEUE_URL: QueueUrl!,
    PULLKEEPER_FANOUT_MIN_TENANTS: '50',
    PULLKEEPER_FANOUT_NODE_BATCH: '5',
  })) as { mode: string; enqueued: number; nodes: number; nodesError?: string };
  assert.equal(scheduled.nodesError, undefined);
  assert.equal(scheduled.mode, 'fanout');
  assert.equal(scheduled.nodes, 6, 'every selected Node of the cluster, once');
  assert.equal(scheduled.enqueued, 60 + 2, 'a message per tenant, and 6 nodes in batches of 5');

  const tenantsSeen = new Map<string, number>();
  const nodesSeen = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const worker = async (e: SqsEvent) => {
    for (const r of e.Records) {
      const msg = JSON.parse(r.body) as { type: string; tenant?: string; nodes?: string[] };
      if (msg.type === 'tenant') bump(tenantsSeen, msg.tenant!);
      else for (const n of msg.nodes!) bump(nodesSeen, n);
    }
    return fanoutWorker(e);
  };
  const ac = new AbortController();
  // Poll until everything was handled and both failures have come back at least twice.
  const stop = setInterval(() => {
    if (
      TENANTS.every((t) => tenantsSeen.has(t)) &&
      GOOD_NODES.every((n) => nodesSeen.has(n)) &&
      (tenantsSeen.get(FAILING) ?? 0) >= 3 &&
      (nodesSeen.get(BROKEN_NODE) ?? 0) >= 3
    )
      ac.abort();
  }, 100);
  await pollQueue(QueueUrl!, worker, { signal: ac.signal, waitSeconds: 1 }).catch((err) => {
    if (!ac.signal.aborted) throw err;
  });
  clearInterval(stop);

  for (const t of TENANTS)
    if (t !== FAILING) assert.equal(tenantsSeen.get(t), 1, `tenant ${t} handled exactly once`);
  assert.ok(
    tenantsSeen.get(FAILING)! >= 3,
    `the failing tenant is redelivered (${tenantsSeen.get(FAILING)})`,
  );
  for (const n of GOOD_NODES) assert.equal(nodesSeen.get(n), 1, `node ${n} handled exactly once`);
  assert.ok(nodesSeen.get(BROKEN_NODE)! >= 3, 'the failing node batch is redelivered');
  assert.equal(nodesSeen.has('not-selected'), false);

  const core = h.cluster!.admin.core;
  const s = await core.readNamespacedSecret({ namespace: 't53-ns', name: 'pullkeeper-t53' });
  assert.equal(s.type, 'kubernetes.io/dockerconfigjson');
  await assert.rejects(
    core.readNamespacedSecret({ namespace: `${FAILING}-ns`, name: `pullkeeper-${FAILING}` }),
  );
  // The nodes' files were written by the workers, through their InternalIP.
  for (const node of h.nodes!.info.nodes) {
    const file = await h.nodes!.readFile(node.name, CONFIG_JSON);
    assert.ok(file, `${node.name} has config.json`);
    assert.ok(JSON.parse(file.toString()).auths[h.registry!.info.host], `${node.name}: the registry's entry`);
  }
  // The run's record names every node once: written, or failed with the real cause.
  const record = await readStatusRecord(await configFromEnvOnce());
  assert.deepEqual(Object.keys(record!.nodes).sort(), [...GOOD_NODES, BROKEN_NODE]);
  for (const n of GOOD_NODES) assert.equal(record!.nodes[n]!.status, 'written', n);
  assert.equal(record!.nodes[BROKEN_NODE]!.status, 'failed');
  assert.ok(!JSON.stringify(record).includes(REG.password), 'no secret in the status record');

  const attrs = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  const left =
    Number(attrs.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(attrs.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
  assert.equal(left, 2, 'only the failing tenant and the failing node batch are still in the queue');
  sqs.destroy();
});
