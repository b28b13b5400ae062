/**
 * `pullkeeper-node run --kubeconfig`: ConfigMaps, Secrets, Services and the
 * RuntimeClass come from a real kube-apiserver (harness), and the pod runs on
 * real runc with them. Also: the control commands from later calls (daemon
 * mode: a `pullkeeper-node daemon` hosts the supervisor).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { NodeV1Api } from '@kubernetes/client-node';
import { bufferIO } from '../../src/cli/io.js';
import { makeRunCommands, type RunCommand } from '../../src/cli/pullkeeper-node-run.js';
import type { PlannedPod } from '../../src/runner/plan.js';
import { listPods, serveDaemon, stopPod } from '../../src/runner/pods.js';
import { type Harness, startHarness } from '../harness/index.js';
import { busyboxImageSource } from './support/busybox-image-source.js';

const BRIDGE = 'pkr-test1';
let h: Harness;
let root: string;
let state: string;
let nodeConfig: string;
let cmds: Record<string, RunCommand>;
const daemon = new AbortController();
let daemonDone: Promise<void>;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pk-node-run-cluster-'));
  state = join(root, 'state');
  h = await startHarness({ dir: join(root, 'harness'), cluster: true });
  cmds = makeRunCommands({ imageSource: busyboxImageSource(join(root, 'images')) });
  nodeConfig = join(root, 'node.yaml');
  writeFileSync(
    nodeConfig,
    `runtimeHandlers: { runc: { binary: runc }, runc-alt: { binary: runc } }\nbridge: { name: ${BRIDGE}, subnet: 10.218.0.0/24 }\n`,
  );
  daemonDone = serveDaemon(state, daemon.signal);
});

after(async () => {
  for (const p of await listPods(state)) await stopPod(state, `${p.namespace}/${p.name}`).catch(() => {});
  daemon.abort();
  await daemonDone;
  try {
    execFileSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
  } catch {}
  await h?.stop();
  await rm(root, { recursive: true, force: true });
});

async function cli(name: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = bufferIO();
  const code = await cmds[name]!([...args, '--state-dir', state, '--node-config', nodeConfig], io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

test('objects from the cluster: env, envFrom, service links and the RuntimeClass handler', async () => {
  const ns = await h.cluster!.createNamespace();
  const core = h.cluster!.admin.core;
  await core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'settings' }, data: { COLOR: 'green', SHARED: 'from-cm' } },
  });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'creds' }, type: 'Opaque', stringData: { TOKEN: 'cluster-secret' } },
  });
  await core.createNamespacedService({
    namespace: ns,
    body: { metadata: { name: 'cache' }, spec: { ports: [{ name: 'redis', port: 6379 }] } },
  });
  const svc = await core.readNamespacedService({ name: 'cache', namespace: ns });
  const k8s = await core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
  const rcName = `alt-${ns}`;
  await h.cluster!.admin.kubeConfig.makeApiClient(NodeV1Api).createRuntimeClass({
    body: {
      apiVersion: 'node.k8s.io/v1',
      kind: 'RuntimeClass',
      metadata: { name: rcName },
      handler: 'runc-alt',
    },
  });

  const file = join(root, 'pod.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Pod
metadata: { name: from-cluster, namespace: ${ns} }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  runtimeClassName: ${rcName}
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, 'trap "exit 0" TERM; sleep 100000 & wait']
      envFrom: [{ configMapRef: { name: settings } }]
      env:
        - { name: SHARED, value: from-env }
        - { name: TOKEN, valueFrom: { secretKeyRef: { name: creds, key: TOKEN } } }
        - { name: MAYBE, valueFrom: { configMapKeyRef: { name: absent, key: x, optional: true } } }
`,
  );
  const r = await cli('run', [file, '--kubeconfig', h.cluster!.info.kubeconfigPath, '--json']);
  assert.equal(r.code, 0, r.err || r.out);
  const res = JSON.parse(r.out) as { phase: string; runtimeHandler: string };
  assert.equal(res.phase, 'Running');
  assert.equal(res.runtimeHandler, 'runc-alt');

  const plan = JSON.parse(
    readFileSync(join(state, 'pods', `${ns}_from-cluster`, 'plan.json'), 'utf8'),
  ) as PlannedPod;
  const env = execFileSync(
    'runc',
    [
      '--root',
      plan.runtime.root,
      'exec',
      plan.containers[0]!.id,
      'sh',
      '-c',
      "tr '\\0' '\\n' < /proc/1/environ",
    ],
    { encoding: 'utf8' },
  );
  assert.match(env, /^COLOR=green$/m);
  assert.match(env, /^SHARED=from-env$/m);
  assert.match(env, /^TOKEN=cluster-secret$/m);
  assert.doesNotMatch(env, /^MAYBE=/m);
  assert.match(env, new RegExp(`^CACHE_SERVICE_HOST=${svc.spec!.clusterIP!.replaceAll('.', '\\.')}$`, 'm'));
  assert.match(env, /^CACHE_SERVICE_PORT_REDIS=6379$/m);
  assert.match(
    env,
    new RegExp(`^KUBERNETES_SERVICE_HOST=${k8s.spec!.clusterIP!.replaceAll('.', '\\.')}$`, 'm'),
  );

  // Later commands: the daemon hosts the supervisor (no per-pod process).
  const status = JSON.parse(
    readFileSync(join(state, 'pods', `${ns}_from-cluster`, 'status.json'), 'utf8'),
  ) as {
    supervisorPid: number;
  };
  assert.equal(status.supervisorPid, process.pid, 'the daemon (this process) supervises the pod');
  const ps = await cli('ps', ['--json']);
  assert.ok(
    (JSON.parse(ps.out) as Array<{ name: string; phase: string }>).some(
      (p) => p.name === 'from-cluster' && p.phase === 'Running',
    ),
  );
  const stop = await cli('stop', [`${ns}/from-cluster`]);
  assert.equal(stop.code, 0, stop.err);
  const describe = await cli('describe', [`${ns}/from-cluster`]);
  assert.match(describe.out, new RegExp(`Runtime Class Name:\\s+${rcName}`));
  assert.match(describe.out, /Killing\s+\S+\s+pullkeeper-node\s+Stopping container c\s*$/);
  assert.doesNotMatch(describe.out + r.out, /cluster-secret/, 'secret values stay out of output');
});

test('a RuntimeClass missing from the cluster: FailedCreatePodSandBox', async () => {
  const file = join(root, 'pod-missing.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Pod
metadata: { name: no-class }
spec:
  runtimeClassName: not-in-cluster
  containers: [{ name: c, image: busybox:test }]
`,
  );
  const r = await cli('run', [file, '--kubeconfig', h.cluster!.info.kubeconfigPath]);
  assert.equal(r.code, 1);
  assert.match(
    r.out,
    /FailedCreatePodSandBox: Failed to create pod sandbox: runtimeclasses\.node\.k8s\.io "not-in-cluster" not found/,
  );
});
