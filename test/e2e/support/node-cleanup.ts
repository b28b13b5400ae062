/**
 * After a node-runner e2e file: stop every pod it left under `state` (by the
 * runner's own stop) and delete its pod bridge.
 */
import { execFileSync } from 'node:child_process';
import { listPods, stopPod } from '../../../src/runner/pods.js';

export async function stopPodsAndBridge(state: string, bridge: string): Promise<void> {
  for (const p of await listPods(state).catch(() => []))
    await stopPod(state, `${p.namespace}/${p.name}`).catch(() => {});
  try {
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  } catch {}
}
