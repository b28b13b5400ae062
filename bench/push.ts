/**
 * Benchmark: config.json to 50 SSH nodes (issue #8).
 *
 * Baselines, named, in this one process against the same 50 harness nodes:
 *   (a) "sequential scp loop": the docs' recipe, `for n in $nodes; do scp config.json root@$n:…; done`
 *       (OpenSSH defaults, pinned known_hosts, the harness key);
 *   (b) "parallel-scp -p P": Debian pssh's parallel-scp with the same parallelism as pullkeeper.
 * Candidate: pushNodes() (read, merge, check, temp+fsync+rename, read-back sha256, sidecar), and
 * the whole `pullkeeper push` CLI process (Node + tsx start-up included). Each candidate round
 * rotates the password, so every node really is written; then a no-change rerun is timed and must
 * write 0 files. Rounds alternate order; `sync` and a pause between runs (docs/harness.md protocol;
 * nothing is deleted while timing: the scp baselines overwrite one file).
 *
 *   npm run bench -- push [--nodes 50] [--rounds 5] [--concurrency 20]
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pushNodes } from '../src/app/push.js';
import { parseConfig } from '../src/config/load.js';
import type { PullkeeperConfig } from '../src/config/schema.js';
import { startHarness } from '../test/harness/index.js';
import { median, reportTable } from './stats.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    nodes: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '20' },
  },
});
const count = Number(values.nodes);
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);

for (const bin of ['scp', 'parallel-scp']) {
  try {
    execFileSync('which', [bin], { stdio: 'ignore' });
  } catch {
    console.error(`${bin} is missing: apt-get install -y ${bin === 'scp' ? 'openssh-client' : 'pssh'}`);
    process.exit(2);
  }
}

console.log(`push bench: ${count} nodes, ${rounds} rounds, concurrency ${concurrency}`);
console.log(`load before: ${execFileSync('uptime').toString().trim()}`);
const h = await startHarness({ nodes: count });
const info = h.nodes!.info;
const key = info.clientKey.privateKeyPath;
const knownHosts = join(h.dir, 'known_hosts');
await writeFile(knownHosts, `${info.nodes.map((n) => n.hostKeyLine).join('\n')}\n`);
const hostsFile = join(h.dir, 'hosts');
await writeFile(hostsFile, `${info.nodes.map((n) => n.address).join('\n')}\n`);

const configFor = (password: string): PullkeeperConfig =>
  parseConfig({
    registries: [
      {
        name: 'reg',
        kind: 'static',
        server: 'registry.example.com',
        username: { value: 'bench' },
        password: { value: password },
        verify: false,
      },
    ],
    nodes: {
      inventory: info.nodes.map((n) => ({ name: n.name, address: n.address })),
      registries: ['reg'],
      ssh: { privateKey: { fromFile: key }, knownHosts: { fromFile: knownHosts }, concurrency },
    },
  });

// The file the scp baselines copy: what pullkeeper writes on a node without a file.
const payload = join(h.dir, 'config.json');
await pushNodes(configFor('warm-up'), { nodes: [info.nodes[0]!.name] });
await writeFile(payload, (await h.nodes!.readFile(info.nodes[0]!.name, '/var/lib/kubelet/config.json'))!, {
  mode: 0o600,
});
const sshOpts = [
  '-i',
  key,
  '-o',
  `UserKnownHostsFile=${knownHosts}`,
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  'BatchMode=yes',
];

function runProc(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0
        ? resolve(performance.now() - t0)
        : reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

const scpLoop = () =>
  runProc('sh', [
    '-c',
    `for n in $(cat "$1"); do scp -q ${sshOpts.map((o) => `'${o}'`).join(' ')} "$2" root@$n:/var/lib/kubelet/config.json || exit 1; done`,
    'loop',
    hostsFile,
    payload,
  ]);
const pscp = () =>
  runProc('parallel-scp', [
    '-p',
    String(concurrency),
    '-h',
    hostsFile,
    '-l',
    'root',
    '-x',
    sshOpts.join(' '),
    payload,
    '/var/lib/kubelet/config.json',
  ]);

async function candidate(): Promise<{ ms: number; written: number }> {
  const cfg = configFor(randomBytes(8).toString('hex'));
  const t0 = performance.now();
  const r = await pushNodes(cfg);
  const ms = performance.now() - t0;
  const bad = r.nodes.filter((n) => n.status !== 'written');
  if (bad.length) throw new Error(`push: ${bad.length} nodes not written: ${bad[0]!.reason}`);
  return { ms, written: r.nodes.length };
}
async function rerun(): Promise<{ ms: number; written: number }> {
  const cfg = configFor(lastPassword);
  const t0 = performance.now();
  const r = await pushNodes(cfg);
  const ms = performance.now() - t0;
  if (r.nodes.some((n) => n.status === 'failed')) throw new Error('rerun failed');
  return { ms, written: r.nodes.filter((n) => n.status === 'written').length };
}
let lastPassword = '';
async function cliRun(): Promise<number> {
  lastPassword = randomBytes(8).toString('hex');
  const file = join(h.dir, `cli-${randomBytes(4).toString('hex')}.json`);
  await writeFile(file, JSON.stringify(configFor(lastPassword)), { mode: 0o600 });
  return runProc(process.execPath, [
    new URL('../bin/pullkeeper.js', import.meta.url).pathname,
    'push',
    '--config',
    file,
  ]);
}

const samples: Record<string, number[]> = { loop: [], pscp: [], push: [], cli: [], rerun: [] };
let rerunWrites = 0;
const pause = async () => {
  execFileSync('sync');
  await sleep(1500);
};
try {
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? ['loop', 'pscp', 'push', 'cli'] : ['cli', 'push', 'pscp', 'loop'];
    for (const kind of order) {
      await pause();
      if (kind === 'loop') samples.loop!.push(await scpLoop());
      if (kind === 'pscp') samples.pscp!.push(await pscp());
      if (kind === 'push') samples.push!.push((await candidate()).ms);
      if (kind === 'cli') {
        samples.cli!.push(await cliRun());
        // No-change rerun right after the CLI wrote this password.
        await pause();
        const r = await rerun();
        samples.rerun!.push(r.ms);
        rerunWrites += r.written;
      }
    }
    console.log(
      `  round ${i + 1}: loop ${(samples.loop!.at(-1)! / 1000).toFixed(2)} s, parallel-scp ${(samples.pscp!.at(-1)! / 1000).toFixed(2)} s, ` +
        `push ${(samples.push!.at(-1)! / 1000).toFixed(2)} s, CLI ${(samples.cli!.at(-1)! / 1000).toFixed(2)} s, rerun ${(samples.rerun!.at(-1)! / 1000).toFixed(2)} s`,
    );
  }
} finally {
  await h.stop();
}
console.log(
  reportTable(`config.json to ${count} nodes (parallelism ${concurrency})`, [
    { name: '(a) sequential scp loop', samples: samples.loop! },
    { name: `(b) parallel-scp -p ${concurrency}`, samples: samples.pscp! },
    { name: 'pullkeeper pushNodes()', samples: samples.push! },
    { name: 'pullkeeper push (CLI process)', samples: samples.cli! },
    { name: 'no-change rerun (pushNodes)', samples: samples.rerun! },
  ]),
);
const m = (k: string) => median(samples[k]!);
console.log(`ratio (a) scp loop / pushNodes:        ${(m('loop') / m('push')).toFixed(1)}x`);
console.log(`ratio (b) parallel-scp / pushNodes:    ${(m('pscp') / m('push')).toFixed(1)}x`);
console.log(`ratio (a) scp loop / CLI process:      ${(m('loop') / m('cli')).toFixed(1)}x`);
console.log(`ratio (b) parallel-scp / CLI process:  ${(m('pscp') / m('cli')).toFixed(1)}x`);
console.log(
  `no-change rerun: median ${(m('rerun') / 1000).toFixed(2)} s, files written over all reruns: ${rerunWrites}`,
);
console.log(`target: ${count} nodes under 1 s: pushNodes median ${(m('push') / 1000).toFixed(2)} s`);
console.log(`load after: ${execFileSync('uptime').toString().trim()}`);
