/**
 * The kubelet harness component: its doctor checks, its prerequisites, and two
 * harnesses with a kubelet each running side by side (own containerd socket,
 * runc root, CNI bridge and subnet, node name), with nothing left after stop.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type Harness, startHarness } from '../index.js';
import { run } from '../proc.js';
import { checkKubelet, type KubeletInfo, PAUSE_IMAGE, removeKubeletLeftovers } from './index.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('kubelet harness: doctor', () => {
  test('checkKubelet finds containerd, the CNI plugins and the built kubelet on this machine', async () => {
    const checks = await checkKubelet();
    assert.deepEqual(
      checks.map((c) => c.name),
      ['containerd', 'cni-plugins', 'kubelet'],
    );
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail} (fix: ${c.fix})`);
  });

  test('a kubelet that is not built yet is MISSING with the build command as its fix', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'pk-kubelet-cache-'));
    const saved = process.env.PULLKEEPER_CACHE;
    process.env.PULLKEEPER_CACHE = empty;
    try {
      const k = (await checkKubelet()).find((c) => c.name === 'kubelet')!;
      assert.equal(k.ok, false);
      assert.equal(k.fix, 'bash test/harness/kubelet/build.sh');
      assert.match(k.detail, /not built yet/);
    } finally {
      if (saved === undefined) delete process.env.PULLKEEPER_CACHE;
      else process.env.PULLKEEPER_CACHE = saved;
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('a kubelet without the cluster or a registry is refused with what it needs', async () => {
    await assert.rejects(
      startHarness({ cluster: true, kubelet: {} }),
      /`kubelet` needs `cluster: true` and a `registry`/,
    );
  });
});

describe('kubelet harness: two at once', { timeout: 600_000 }, () => {
  const harnesses: Harness[] = [];
  after(async () => {
    await Promise.allSettled(harnesses.map((h) => h.stop()));
  });

  test('each has its own node, containerd, bridge and subnet; pods run on both; stop leaves nothing', async () => {
    const started = await Promise.all(
      [0, 1].map(() => startHarness({ cluster: true, registry: { auth: 'none' }, kubelet: {} })),
    );
    harnesses.push(...started);
    const [a, b] = started.map((h) => h.kubelet!);
    assert.notEqual(a!.info.nodeName, b!.info.nodeName);
    assert.notEqual(a!.info.containerdSocket, b!.info.containerdSocket);
    assert.notEqual(a!.info.bridge, b!.info.bridge);
    assert.notEqual(a!.info.podSubnet, b!.info.podSubnet);
    for (const h of started) {
      const k = h.kubelet!;
      assert.ok((await k.images()).includes(PAUSE_IMAGE), 'the sandbox image is in containerd');
      const ns = await h.cluster!.createNamespace();
      await h.cluster!.admin.core.createNamespacedPod({
        namespace: ns,
        body: k.pod({ name: 'p', image: PAUSE_IMAGE, imagePullPolicy: 'Never' }),
      });
      assert.equal(await k.waitOutcome(ns, 'p'), 'Running');
      const pod = await h.cluster!.admin.core.readNamespacedPod({ namespace: ns, name: 'p' });
      const prefix = k.info.podSubnet.replace(/0\/24$/, '');
      assert.ok(pod.status?.podIP?.startsWith(prefix), `pod IP ${pod.status?.podIP} in ${k.info.podSubnet}`);
    }
    const pids = started.flatMap((h) => Object.values(h.kubelet!.pids));
    const dirs = started.map((h) => h.kubelet!.info.dir);
    const bridges = started.map((h) => h.kubelet!.info.bridge);
    await Promise.all(started.map((h) => h.stop()));
    for (const pid of pids) assert.equal(alive(pid), false, `process ${pid} still runs`);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    for (const d of dirs) {
      assert.ok(!mounts.includes(d), `something is still mounted under ${d}`);
      assert.equal(existsSync(d), false, `${d} was not removed`);
    }
    const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
    for (const br of bridges) assert.ok(!links.includes(`${br}:`), `bridge ${br} left behind`);
    const shims = (await run('ps', ['-eo', 'args'])).stdout
      .split('\n')
      .filter((l) => l.includes('containerd-shim') && dirs.some((d) => l.includes(d)));
    assert.deepEqual(shims, [], 'containerd shims left behind');
  });
});

describe('kubelet harness: a crashed run', { timeout: 300_000 }, () => {
  test('`harness down` (removeKubeletLeftovers) removes the containers, shims, mounts, bridge and dir a killed test left', async () => {
    // The fixture's whole process group is killed (harness processes included), but containerd's
    // shims run in their own process groups and keep the pod's containers alive: what a crash leaves.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'crash-fixture.ts')],
      {
        detached: true,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    const info = await new Promise<KubeletInfo & { harnessDir: string }>((ok, fail) => {
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) ok(JSON.parse(out.split('\n')[0]!));
      });
      child.once('exit', (code) => fail(new Error(`the fixture exited ${code} before it was ready`)));
    });
    const shimsOf = async () =>
      (await run('ps', ['-eo', 'args'])).stdout
        .split('\n')
        .filter((l) => l.includes('containerd-shim') && l.includes(info.containerdSocket));
    try {
      process.kill(-child.pid!, 'SIGKILL');
      await new Promise((r) =>
        child.exitCode !== null || child.signalCode ? r(undefined) : child.once('exit', r),
      );
      assert.ok((await shimsOf()).length > 0, 'the crash left shims running (the case this test is for)');
      const netnsBefore = (await run('ip', ['netns', 'list'])).stdout;
      const removed = await removeKubeletLeftovers();
      assert.ok(removed.includes(info.bridge), `removed: ${removed.join(', ')}`);
      assert.deepEqual(await shimsOf(), []);
      assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(info.dir));
      assert.equal(existsSync(info.dir), false);
      assert.ok(!(await run('ip', ['-o', 'link', 'show'])).stdout.includes(`${info.bridge}:`));
      // The pod's network namespace (CNI teardown never ran) is gone too.
      const netnsAfter = (await run('ip', ['netns', 'list'])).stdout;
      const cni = (t: string) => t.split('\n').filter((l) => l.startsWith('cni-'));
      assert.ok(cni(netnsAfter).length < cni(netnsBefore).length, 'the pod netns was removed');
    } finally {
      await rm(info.harnessDir, { recursive: true, force: true });
    }
  });
});
