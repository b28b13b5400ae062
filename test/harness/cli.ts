/**
 * The harness for humans:
 *   npm run harness -- doctor            what is installed and what is missing (exit 1 if anything is)
 *   npm run harness -- up [--nodes N]    start cluster, registry (token auth), N nodes (default 3) and cloud
 *                                        endpoints; write .harness/state.json (mode 0600); run until Ctrl-C or `down`
 *   npm run harness -- down              stop the harness that `up` started, and remove leftovers of crashed runs
 */
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { doctor, formatDoctor } from './doctor.js';
import { startHarness } from './index.js';
import { removeKubeletLeftovers } from './kubelet/index.js';
import { removeLeftovers } from './nodes/index.js';

const STATE_DIR = '.harness';
const STATE = join(STATE_DIR, 'state.json');

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'doctor': {
      const checks = await doctor();
      console.log(formatDoctor(checks));
      return checks.every((c) => c.ok) ? 0 : 1;
    }
    case 'up':
      return up(rest);
    case 'down':
      return down();
    default:
      console.error(
        'usage: npm run harness -- doctor | up [--nodes N] [--registry-auth token|htpasswd] | down',
      );
      return 2;
  }
}

async function up(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '3' },
      'registry-auth': { type: 'string', default: 'token' },
    },
  });
  const auth = values['registry-auth'];
  if (auth !== 'token' && auth !== 'htpasswd') {
    console.error('harness up: --registry-auth must be token or htpasswd');
    return 2;
  }
  const checks = await doctor();
  if (!checks.every((c) => c.ok)) {
    console.error(formatDoctor(checks));
    return 1;
  }
  console.log('harness: starting cluster, registry, nodes and cloud endpoints ...');
  const h = await startHarness({
    cluster: true,
    registry: { auth },
    nodes: Number(values.nodes),
    cloud: true,
  });
  await mkdir(STATE_DIR, { recursive: true });
  await writeFile(STATE, JSON.stringify({ pid: process.pid, ...h.info() }, null, 2), { mode: 0o600 });
  await chmod(STATE, 0o600);
  const info = h.info() as Record<string, { [k: string]: unknown }>;
  console.log(`harness: up in ${h.timings.total} ms (${JSON.stringify(h.timings)})`);
  console.log(`  kubeconfig   ${info.cluster?.kubeconfigPath}`);
  console.log(`  registry     ${info.registry?.url}`);
  console.log(
    `  nodes        ${h.nodes?.info.nodes.map((n) => n.address).join(' ')} (ssh key ${h.nodes?.info.clientKey.privateKeyPath})`,
  );
  console.log(`  ECR (moto)   ${h.cloud?.info.moto?.endpoint}`);
  console.log(`  Entra + ACR  ${h.cloud?.info.acr.baseUrl}`);
  console.log(`  Google OAuth ${h.cloud?.info.google.baseUrl}`);
  console.log(`  details      ${STATE} (test-only credentials; mode 0600)`);
  console.log('harness: running; Ctrl-C or `npm run harness -- down` stops it.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log('harness: stopping ...');
  await h.stop();
  await rm(STATE, { force: true });
  console.log('harness: stopped.');
  return 0;
}

async function down(): Promise<number> {
  let pid: number | undefined;
  try {
    pid = JSON.parse(await readFile(STATE, 'utf8')).pid;
  } catch {
    /* no state: nothing of ours is running, only leftovers may remain */
  }
  if (pid) {
    try {
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100; i++) {
        await sleep(100);
        process.kill(pid, 0);
      }
      console.error(`harness down: process ${pid} did not stop within 10 s`);
      return 1;
    } catch {
      console.log(`harness down: stopped process ${pid}`);
    }
    await rm(STATE, { force: true });
  } else {
    console.log('harness down: no harness started by `up` is running');
  }
  const removed = [...(await removeLeftovers()), ...(await removeKubeletLeftovers())];
  if (removed.length) console.log(`harness down: removed leftovers of crashed runs: ${removed.join(', ')}`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
