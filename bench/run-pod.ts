/**
 * Benchmark: `pullkeeper-node run` to Running with an exec PostStart hook, and
 * `stop` of a pod without hooks, each beside its named baseline.
 *
 * - Baseline "runc run -d + runc exec": the bare runtime on a prepared bundle
 *   (overlay rootfs already mounted, config.json written): `runc run -d`, then
 *   `runc exec` of the same command the hook runs.
 * - Candidate "run (daemon)": the `run` command (called in this process, as the
 *   CLI would) with a `pullkeeper-node daemon` already serving the state dir:
 *   parse, RuntimeClass, image (test image source), env, bundle + overlay mount,
 *   netns + veth, `runc run`, Started, PostStart exec, Running.
 * - Candidate "run (detached supervisor)": the same without a daemon: a
 *   supervisor process is spawned per pod (Node + tsx start-up included).
 * - Stop baseline "runc kill KILL + runc delete"; candidate `stop` of a pod
 *   whose container exits on TERM (Killing, TERM, exit, delete, umount, netns).
 *
 * Targets (issue #10): run overhead under 100 ms (median), stop within 50 ms
 * of the baseline. Every run uses a fresh bundle / pod directory; nothing is
 * deleted while timing (docs/harness.md protocol).
 *
 *   npm run bench -- run-pod [--rounds 10] [--detached-rounds 3]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { bufferIO } from '../src/cli/io.js';
import { makeRunCommands } from '../src/cli/pullkeeper-node-run.js';
import { decideContainerSecurity } from '../src/core/security-context.js';
import { buildOciSpec, overlayOptions } from '../src/runner/bundle.js';
import { serveDaemon } from '../src/runner/pods.js';
import { busyboxImageSource } from '../test/e2e/support/busybox-image-source.js';
import { median } from './stats.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    rounds: { type: 'string', default: '10' },
    'detached-rounds': { type: 'string', default: '3' },
    'daemon-child': { type: 'string' },
  },
});

if (values['daemon-child']) {
  // The daemon, in its own process as systemd would run it.
  const ac = new AbortController();
  process.once('SIGTERM', () => ac.abort());
  await serveDaemon(values['daemon-child'], ac.signal);
  process.exit(0);
}

const rounds = Number(values.rounds);
const detachedRounds = Number(values['detached-rounds']);
const root = mkdtempSync(join(tmpdir(), 'pk-bench-run-pod-'));
const state = join(root, 'state');
const images = busyboxImageSource(join(root, 'images'));
const cmds = makeRunCommands({ imageSource: images });
const nodeConfig = join(root, 'node.yaml');
writeFileSync(nodeConfig, 'bridge: { name: pkr-bench0, subnet: 10.217.0.0/24 }\n');
const opts = ['--state-dir', state, '--node-config', nodeConfig];
const HOOK = 'echo ran > /tmp/poststart';
const MAIN = 'trap "exit 0" TERM; sleep 100000 & wait';

async function cli(name: string, args: string[]): Promise<void> {
  const io = bufferIO();
  const code = await cmds[name]!([...args, ...opts], io);
  if (code !== 0)
    throw new Error(`${name} ${args.join(' ')}: ${io.stderr.join('\n')} ${io.stdout.join('\n')}`);
}

function podManifest(name: string, hook: boolean): string {
  const file = join(root, `${name}.yaml`);
  const lifecycle = hook
    ? `\n      lifecycle: { postStart: { exec: { command: [sh, -c, '${HOOK}'] } } }`
    : '';
  writeFileSync(
    file,
    `apiVersion: v1
kind: Pod
metadata: { name: ${name} }
spec:
  restartPolicy: Never
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, '${MAIN}']${lifecycle}
`,
  );
  return file;
}

const runtimeRoot = join(root, 'bare-runc');
/** What a pod without securityContext gets (root, containerd's default capabilities). */
function bareSecurity() {
  const d = decideContainerSecurity({
    imageUser: '',
    who: { pod: 'bench', container: 'c' },
    allowPrivileged: false,
  });
  if (!d.ok) throw new Error(d.message);
  return d.value;
}

function prepareBareBundle(i: number): { dir: string; id: string } {
  const dir = join(root, `bare-${i}`);
  for (const d of ['bundle/rootfs', 'upper', 'work']) mkdirSync(join(dir, d), { recursive: true });
  execFileSync('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    overlayOptions([images.layerDir], join(dir, 'upper'), join(dir, 'work')),
    join(dir, 'bundle/rootfs'),
  ]);
  const spec = buildOciSpec({
    args: ['sh', '-c', MAIN],
    env: ['PATH=/bin'],
    cwd: '/',
    security: bareSecurity(),
    hostname: `bare-${i}`,
    netnsPath: '',
    rootfs: 'rootfs',
  }) as { linux: { namespaces: Array<{ type: string; path?: string }> } };
  spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network' } : n));
  writeFileSync(join(dir, 'bundle/config.json'), JSON.stringify(spec));
  return { dir, id: `pkr-bench-bare-${i}` };
}

const runc = (args: string[]) =>
  execFileSync('runc', ['--root', runtimeRoot, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });

const samples = {
  bareRun: [] as number[],
  daemonRun: [] as number[],
  detachedRun: [] as number[],
  bareStop: [] as number[],
  stop: [] as number[],
};

console.log(
  `run-pod: ${rounds} rounds (daemon), ${detachedRounds} rounds (detached), load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
const daemon = spawn(
  process.execPath,
  ['--import', 'tsx', new URL(import.meta.url).pathname, '--daemon-child', state],
  {
    stdio: 'inherit',
  },
);
await sleep(1500); // the daemon process starts (Node + tsx)

// Warm-up: probes the runtime once (cached), creates the bridge.
await cli('run', [podManifest('warm', true)]);
await cli('stop', ['warm']);

const bareMounts: string[] = [];
try {
  for (let i = 0; i < rounds; i++) {
    execFileSync('sync');
    await sleep(300);
    const order = i % 2 === 0 ? ['bare', 'daemon'] : ['daemon', 'bare'];
    for (const kind of order) {
      if (kind === 'bare') {
        const b = prepareBareBundle(i);
        bareMounts.push(join(b.dir, 'bundle/rootfs'));
        const t0 = performance.now();
        const child = spawn(
          'runc',
          ['--root', runtimeRoot, 'run', '-d', '--bundle', join(b.dir, 'bundle'), b.id],
          {
            stdio: 'ignore',
          },
        );
        await new Promise((r) => child.on('close', r));
        runc(['exec', b.id, 'sh', '-c', HOOK]);
        samples.bareRun.push(performance.now() - t0);
        const t1 = performance.now();
        runc(['kill', b.id, 'KILL']);
        // `delete` refuses a container that is still stopping: retry as runc users do.
        for (;;) {
          try {
            runc(['delete', b.id]);
            break;
          } catch {
            await sleep(1);
          }
        }
        samples.bareStop.push(performance.now() - t1);
      } else {
        const name = `bench-${i}`;
        const withHook = podManifest(name, true);
        const t0 = performance.now();
        await cli('run', [withHook]);
        samples.daemonRun.push(performance.now() - t0);
        await cli('stop', [name]);
        const plain = podManifest(`plain-${i}`, false);
        await cli('run', [plain]);
        const t1 = performance.now();
        await cli('stop', [`plain-${i}`]);
        samples.stop.push(performance.now() - t1);
      }
    }
  }
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('close', r));
}

for (let i = 0; i < detachedRounds; i++) {
  const name = `detached-${i}`;
  const file = podManifest(name, true);
  const t0 = performance.now();
  await cli('run', [file]);
  samples.detachedRun.push(performance.now() - t0);
  await cli('stop', [name]);
}

const ms = (xs: number[]) =>
  `${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}, n ${xs.length})`;
console.log('run to Running with an exec PostStart hook');
console.log(`  baseline runc run -d + runc exec   ${ms(samples.bareRun)}`);
console.log(`  run (daemon)                       ${ms(samples.daemonRun)}`);
console.log(`  run (detached supervisor)          ${ms(samples.detachedRun)}`);
const over = median(samples.daemonRun) - median(samples.bareRun);
console.log(
  `  ratio daemon/baseline ${(median(samples.daemonRun) / median(samples.bareRun)).toFixed(2)}, overhead ${over.toFixed(1)} ms (target < 100 ms): ${over < 100 ? 'met' : 'NOT met'}`,
);
console.log(
  `  ratio detached/baseline ${(median(samples.detachedRun) / median(samples.bareRun)).toFixed(2)}, overhead ${(median(samples.detachedRun) - median(samples.bareRun)).toFixed(1)} ms`,
);
console.log('stop of a pod without hooks');
console.log(`  baseline runc kill KILL + delete   ${ms(samples.bareStop)}`);
console.log(`  stop                               ${ms(samples.stop)}`);
const dStop = median(samples.stop) - median(samples.bareStop);
console.log(
  `  ratio ${(median(samples.stop) / median(samples.bareStop)).toFixed(2)}, difference ${dStop.toFixed(1)} ms (target within 50 ms): ${dStop <= 50 ? 'met' : 'NOT met'}`,
);
console.log(
  `load after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);

for (const m of bareMounts) execFileSync('umount', ['-l', m]);
try {
  execFileSync('ip', ['link', 'del', 'pkr-bench0'], { stdio: 'ignore' });
} catch {}
await rm(root, { recursive: true, force: true });
