/**
 * The SQS fan-out against a real SQS-compatible server (moto) and the real
 * refresh: the scheduler enqueues one message per tenant, the worker handles
 * batches through the local poller (what Lambda's event source does), and only
 * the failing tenant's message comes back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { enqueueFanout, fanoutMessages, pollQueue, type SqsEvent } from '../../src/app/fanout.js';
import { fanoutWorker } from '../../src/app/scheduled.js';
import { rbacConfigFor, writeTokenKubeconfig } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';

let h: Harness;
const dir = mkdtempSync(join(tmpdir(), 'pk-fanout-'));
const REG = { username: 'fan', password: 'fanout-pass-6c1d' };
const TENANTS = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
const FAILING = 't07';

before(async () => {
  h = await startHarness({ cluster: true, registry: { auth: 'htpasswd' }, cloud: { acr: {}, google: {} } });
  await h.registry!.allow(REG.username, REG.password);
  for (const t of TENANTS) await h.cluster!.createNamespace(`${t}-ns`);
  const id = await h.cluster!.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: rbacConfigFor(TENANTS.map((t) => ({ name: t, namespaces: { names: [`${t}-ns`] } }))),
  });
  const kubeconfig = join(dir, 'kubeconfig');
  writeTokenKubeconfig(kubeconfig, h.cluster!.info, id.token);
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

test('20 tenants through the queue, one failing: only its message is redelivered', {
  timeout: 120_000,
}, async () => {
  const { SQSClient, CreateQueueCommand, GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({});
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: 'pk-fanout', Attributes: { VisibilityTimeout: '1' } }),
  );
  const sent = await enqueueFanout(QueueUrl!, fanoutMessages(TENANTS, []), AbortSignal.timeout(10_000));
  assert.equal(sent, 20);

  const handled = new Map<string, number>();
  const worker = async (e: SqsEvent) => {
    for (const r of e.Records) {
      const t = JSON.parse(r.body).tenant as string;
      handled.set(t, (handled.get(t) ?? 0) + 1);
    }
    return fanoutWorker(e);
  };
  const ac = new AbortController();
  // Poll until every good tenant is done and the failing one has come back at least twice.
  const stop = setInterval(() => {
    if (TENANTS.every((t) => (handled.get(t) ?? 0) >= 1) && (handled.get(FAILING) ?? 0) >= 3) ac.abort();
  }, 100);
  const stats = await pollQueue(QueueUrl!, worker, { signal: ac.signal, waitSeconds: 1 }).catch((err) => {
    if (ac.signal.aborted) return undefined;
    throw err;
  });
  clearInterval(stop);
  void stats;
  for (const t of TENANTS) {
    if (t === FAILING)
      assert.ok(handled.get(t)! >= 3, `the failing tenant is redelivered (${handled.get(t)})`);
    else assert.equal(handled.get(t), 1, `${t} handled exactly once`);
  }
  const core = h.cluster!.admin.core;
  const s = await core.readNamespacedSecret({ namespace: 't03-ns', name: 'pullkeeper-t03' });
  assert.equal(s.type, 'kubernetes.io/dockerconfigjson');
  await assert.rejects(
    core.readNamespacedSecret({ namespace: `${FAILING}-ns`, name: `pullkeeper-${FAILING}` }),
  );
  const attrs = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  const left =
    Number(attrs.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(attrs.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
  assert.equal(left, 1, 'only the failing message is still in the queue');
  sqs.destroy();
});
