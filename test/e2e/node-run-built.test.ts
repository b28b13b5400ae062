/**
 * The built node runner runs a pod on its own, the way docs/node-runner.md
 * installs it: `scripts/build.mjs --outdir` (what `npm run build:node` and
 * `npm pack` run), the output moved to another directory with no checkout and
 * no node_modules above it, then `pullkeeper-node run pod.yaml` from there
 * with a bare PATH (Node 24, the system's bin dirs: no tsx) and no daemon, so
 * `run` starts the detached supervisor from the build (supervisor-main.mjs).
 * The image comes from the harness registry through the real image store. The
 * pod reaches Running, `logs` reads what its container printed, and `stop`
 * ends it and its supervisor. A build without its supervisor says so, before
 * anything is pulled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PodStatus } from '../../src/runner/pod-state.js';
import { type Harness, startHarness } from '../harness/index.js';
import { run } from '../harness/proc.js';
import { buildImage, pushImage } from '../harness/registry/images.js';
import { stopPodsAndBridge } from './support/node-cleanup.js';

const BRIDGE = 'pkr-built0';
const REPO = join(import.meta.dirname, '../..');
let h: Harness;
let root: string;
let install: string;
let state: string;
let daemonState: string;
let daemonPid: number | undefined;
let nodeConfig: string;
let env: NodeJS.ProcessEnv;

before(
  async () => {
    root = mkdtempSync(join(tmpdir(), 'pk-run-built-'));
    const [harness] = await Promise.all([
      startHarness({ registry: { auth: 'none' } }),
      run(process.execPath, [join(REPO, 'scripts/build.mjs'), '--outdir', join(root, 'build')], {
        cwd: REPO,
        timeoutMs: 300_000,
      }),
    ]);
    h = harness;
    // Installed elsewhere than where it was built: nothing may point back at the build dir or the checkout.
    install = join(root, 'opt', 'pullkeeper-node');
    mkdirSync(dirname(install), { recursive: true });
    renameSync(join(root, 'build'), install);
    await pushImage(h.registry!, 'apps/hello', 'v1', await buildImage({ layers: [{ busybox: true }] }));
    state = join(root, 'state');
    daemonState = join(root, 'daemon-state');
    nodeConfig = join(root, 'node.yaml');
    writeFileSync(
      nodeConfig,
      `runtimeHandlers:\n  runc: { binary: runc }\nbridge: { name: ${BRIDGE}, subnet: 10.226.0.0/24 }\nnodeName: built-node\nhostIP: 192.0.2.26\n`,
    );
    // Installed as the docs say: `pullkeeper-node` on PATH, a symlink to the launcher.
    const bin = join(root, 'bin');
    mkdirSync(bin);
    symlinkSync(join(install, 'pullkeeper-node.mjs'), join(bin, 'pullkeeper-node'));
    // Only what a node's root shell would have: that, Node 24 and the system's bin dirs.
    env = {
      PATH: `${bin}:${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: root,
      PULLKEEPER_NODE_STATE: state,
      PULLKEEPER_NODE_STATE_DIR: join(root, 'store'),
      PULLKEEPER_KUBELET_ROOT_DIR: join(root, 'kubelet'),
    };
  },
  { timeout: 400_000 },
);
after(async () => {
  if (daemonPid) process.kill(daemonPid, 'SIGTERM');
  await stopPodsAndBridge(daemonState, BRIDGE);
  await stopPodsAndBridge(state, BRIDGE);
  await h?.stop();
  await rm(root, { recursive: true, force: true });
});

/**
 * `pullkeeper-node ARGS` from PATH (through its `#!/usr/bin/env node` line), from outside any
 * checkout; or `dir`'s launcher.
 */
function node(args: string[], dir?: string) {
  return run(dir ? join(dir, 'pullkeeper-node.mjs') : 'pullkeeper-node', args, {
    cwd: root,
    env,
    allowFail: true,
    timeoutMs: 180_000,
  });
}

function podFile(name: string): string {
  const file = join(root, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: v1
kind: Pod
metadata: { name: ${name} }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      image: ${h.registry!.info.host}/apps/hello:v1
      command: [sh, -c, 'trap "exit 0" TERM; echo "hello from $HOSTNAME"; while true; do sleep 0.2; done']
`,
  );
  return file;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the built runner, installed elsewhere without tsx, runs a detached pod to Running; logs and stop work', {
  timeout: 300_000,
}, async () => {
  const r = await node(['run', podFile('built-pod'), '--json', '--node-config', nodeConfig]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { phase: string; events: Array<{ reason: string }> };
  assert.equal(res.phase, 'Running', r.stdout);
  assert.ok(
    res.events.some((e) => e.reason === 'Pulled'),
    JSON.stringify(res.events.map((e) => e.reason)),
  );

  // The supervisor is the built entry point of this install, not the TypeScript source through tsx.
  const podDir = join(state, 'pods', 'default_built-pod');
  const status = JSON.parse(readFileSync(join(podDir, 'status.json'), 'utf8')) as PodStatus;
  const pid = status.supervisorPid!;
  assert.ok(pid && alive(pid), 'the detached supervisor is running');
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  assert.deepEqual(argv.slice(1, 2), [join(install, 'supervisor-main.mjs')], argv.join(' '));
  assert.ok(!argv.some((a) => a.includes('tsx')), argv.join(' '));
  // It shares the launcher's compile cache (under the state dir), never the OS temp dir's.
  const supEnv = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  assert.ok(supEnv.includes(`NODE_COMPILE_CACHE=${join(state, 'compile-cache')}`), supEnv.join(' '));

  const ps = await node(['ps', '--json']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.deepEqual(
    (JSON.parse(ps.stdout) as Array<{ name: string; phase: string }>).map((p) => [p.name, p.phase]),
    [['built-pod', 'Running']],
  );

  // The container's first line reaches its log (the supervisor writes it; give it a moment).
  let logs = '';
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(200)) {
    const l = await node(['logs', 'built-pod']);
    assert.equal(l.code, 0, l.stderr);
    logs = l.stdout;
    if (logs.includes('hello from')) break;
  }
  assert.match(logs, /^hello from built-pod$/m);

  const stop = await node(['stop', 'built-pod', '--json']);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(JSON.parse(stop.stdout), { pod: 'built-pod', phase: 'Succeeded' });
  for (const deadline = Date.now() + 30_000; alive(pid) && Date.now() < deadline; ) await sleep(100);
  assert.ok(!alive(pid), 'the supervisor exits once its pod has stopped');
  const after = JSON.parse((await node(['ps', '--json'])).stdout) as Array<{ phase: string }>;
  assert.deepEqual(
    after.map((p) => p.phase),
    ['Succeeded'],
  );
});

test('a build without its supervisor: `run` says what is missing and what to do, before pulling; with the daemon it runs', {
  timeout: 240_000,
}, async () => {
  const partial = join(root, 'partial');
  cpSync(install, partial, { recursive: true });
  rmSync(join(partial, 'supervisor-main.mjs'));
  const r = await node(['run', podFile('partial-pod'), '--node-config', nodeConfig], partial);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /supervisor-main\.mjs/);
  assert.match(r.stderr, /pullkeeper-node daemon/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(!existsSync(join(state, 'pods', 'default_partial-pod')), 'nothing was planned or pulled');

  // The advice holds: the same build's daemon hosts the pod (its own state dir here).
  const daemon = spawn(join(partial, 'pullkeeper-node.mjs'), ['daemon', '--state-dir', daemonState], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  daemonPid = daemon.pid;
  let daemonErr = '';
  daemon.stderr.on('data', (b) => {
    daemonErr += b;
  });
  const exited = new Promise((r) => daemon.once('close', r));
  for (const deadline = Date.now() + 60_000; !existsSync(join(daemonState, 'daemon.sock')); await sleep(100))
    assert.ok(Date.now() < deadline && daemon.exitCode === null, `the daemon did not start: ${daemonErr}`);
  const d = await node(
    ['run', podFile('partial-pod'), '--json', '--node-config', nodeConfig, '--state-dir', daemonState],
    partial,
  );
  assert.equal(d.code, 0, d.stderr);
  assert.equal((JSON.parse(d.stdout) as { phase: string }).phase, 'Running', d.stdout);
  const st = JSON.parse(
    readFileSync(join(daemonState, 'pods', 'default_partial-pod', 'status.json'), 'utf8'),
  ) as PodStatus;
  assert.equal(st.supervisorPid, daemon.pid, 'the daemon hosts the supervisor');
  const stop = await node(['stop', 'partial-pod', '--state-dir', daemonState], partial);
  assert.equal(stop.code, 0, stop.stderr);
  daemon.kill('SIGTERM');
  await exited;
  daemonPid = undefined;
});
