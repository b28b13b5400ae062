/**
 * TEST FIXTURE (kubelet.test.ts, "a crashed run"): starts a harness with a kubelet, runs one
 * pod, prints the kubelet's info as one JSON line, then waits to be killed without stopping.
 */
import { startHarness } from '../index.js';
import { PAUSE_IMAGE } from './index.js';

const h = await startHarness({ cluster: true, registry: { auth: 'none' }, kubelet: {} });
const k = h.kubelet!;
const ns = await h.cluster!.createNamespace();
await h.cluster!.admin.core.createNamespacedPod({
  namespace: ns,
  body: k.pod({ name: 'p', image: PAUSE_IMAGE, imagePullPolicy: 'Never' }),
});
if ((await k.waitOutcome(ns, 'p')) !== 'Running') throw new Error('the pod did not run');
process.stdout.write(`${JSON.stringify({ harnessDir: h.dir, ...k.info })}\n`);
setInterval(() => undefined, 60_000);
