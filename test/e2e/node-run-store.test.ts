/**
 * pullkeeper-node end to end on real parts: a pod whose image is private in the
 * harness registry runs with runc, its image pulled by the real store with the
 * pod's own pull Secret; the container writes to its root filesystem and the
 * image store is unchanged.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bufferIO } from '../../src/cli/io.js';
import { makeRunCommands } from '../../src/cli/pullkeeper-node-run.js';
import { ImageStore } from '../../src/runner/store/store.js';
import { type Harness, startHarness } from '../harness/index.js';
import { buildImage, pushImage } from '../harness/registry/images.js';
import { stopPodsAndBridge } from './support/node-cleanup.js';

const BRIDGE = 'pkr-test3';
let h: Harness;
let root: string;
const REG = { username: 'runner', password: 'run-store-pass-44d1' };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pk-run-store-'));
  h = await startHarness({ registry: { auth: 'token' } });
  await h.registry!.allow(REG.username, REG.password);
  await pushImage(h.registry!, 'team-a/app', 'v1', await buildImage({ layers: [{ busybox: true }] }), REG);
});
after(async () => {
  await stopPodsAndBridge(join(root, 'state'), BRIDGE);
  await h?.stop();
  await rm(root, { recursive: true, force: true });
});

/** sha256 over every path, mode and file content under dir (the image store). */
function treeHash(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      hash.update(`${p}:${st?.mode}`);
      if (st?.isFile()) hash.update(readFileSync(p));
      else if (st?.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return hash.digest('hex');
}

test('a private image runs with the pod pull Secret through the real store; the store is unchanged by the container', {
  timeout: 120_000,
}, async () => {
  const storeDir = join(root, 'store');
  const store = new ImageStore({ stateDir: storeDir, nodeCredentials: { rootDir: join(root, 'kubelet') } });
  const cmds = makeRunCommands({ imageSource: store });
  const nodeConfig = join(root, 'node.yaml');
  writeFileSync(
    nodeConfig,
    `runtimeHandlers:\n  runc: { binary: runc }\nbridge: { name: ${BRIDGE}, subnet: 10.219.0.0/24 }\nnodeName: n\nhostIP: 192.0.2.3\n`,
  );
  const auth = JSON.stringify({
    auths: { [h.registry!.info.host]: { username: REG.username, password: REG.password } },
  });
  const pod = join(root, 'pod.yaml');
  writeFileSync(
    pod,
    `apiVersion: v1
kind: Pod
metadata: { name: private-app }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  imagePullSecrets: [{ name: regcred }]
  containers:
    - name: app
      image: ${h.registry!.info.host}/team-a/app:v1
      command: [sh, -c, 'echo written > /in-rootfs.txt; while true; do sleep 1; done']
---
apiVersion: v1
kind: Secret
metadata: { name: regcred }
type: kubernetes.io/dockerconfigjson
data: { .dockerconfigjson: ${Buffer.from(auth).toString('base64')} }
`,
  );
  const state = join(root, 'state');
  const opts = ['--state-dir', state, '--node-config', nodeConfig];
  const io = bufferIO();
  const code = await cmds.run!([pod, '--json', ...opts], io);
  assert.equal(code, 0, io.stderr.join('\n'));
  const res = JSON.parse(io.stdout.join('\n')) as {
    phase: string;
    events: Array<{ reason: string; message: string }>;
  };
  assert.equal(res.phase, 'Running');
  assert.ok(
    res.events.some((e) => e.reason === 'Pulled'),
    JSON.stringify(res.events.map((e) => e.reason)),
  );
  assert.ok(!JSON.stringify(res).includes(REG.password));
  const before = treeHash(storeDir);
  // Give the container time to write into its root filesystem (its own upper dir).
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(treeHash(storeDir), before, 'the image store is read-only to containers');
  const stop = bufferIO();
  assert.equal(await cmds.stop!(['private-app', ...opts], stop), 0, stop.stderr.join('\n'));
  assert.ok((await store.list()).some((i) => i.ref.includes('team-a/app')));
});
