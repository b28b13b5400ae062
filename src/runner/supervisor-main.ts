/**
 * Entry point of a detached pod supervisor process:
 *   node --import tsx supervisor-main.ts STATE_ROOT POD_KEY
 * Writes one JSON line with the pod's status to fd 3 once the pod is Running
 * (or failed), then keeps supervising until the pod ends or is stopped.
 * SIGTERM/SIGINT stop the pod (kill sequence) before exiting.
 */
import { createWriteStream } from 'node:fs';
import { isValidPodKey, PodDir } from './pod-state.js';
import { PodSupervisor } from './supervisor.js';

const [root, key] = process.argv.slice(2);
if (!root || !key || !isValidPodKey(key)) {
  process.stderr.write('usage: supervisor-main.ts STATE_ROOT POD_KEY\n');
  process.exit(2);
}
const sup = new PodSupervisor(new PodDir(root, key));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void sup.stop());
let report: ReturnType<typeof createWriteStream> | undefined;
try {
  report = createWriteStream('', { fd: 3 });
  report.on('error', () => {});
} catch {}
try {
  const status = await sup.start();
  report?.end(`${JSON.stringify({ ok: true, status })}\n`);
} catch (err) {
  sup.log(`${(err as Error).stack}`);
  report?.end(`${JSON.stringify({ ok: false, error: (err as Error).message })}\n`);
  await sup.stop().catch(() => {});
}
await sup.done;
process.exit(0);
