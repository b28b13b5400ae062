/**
 * The SSH node harness against a real ssh2 client: 3 netns nodes, pinned host keys, atomic SFTP
 * replace, private /var/lib/kubelet per node, sshd stop/start, host key rotation, disk full, and a
 * clean stop (plus what a crashed test process leaves and removeLeftovers() removes).
 * Run: node --import tsx --test test/harness/nodes/nodes.test.ts   (as root)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkNodes, type NodesInfo, removeLeftovers, startNodes } from './index.js';
import { sftpRead, sftpRename, sftpWrite, sha256hex, sshConnect, sshExec, withSftp } from './ssh.js';

type Nodes = Awaited<ReturnType<typeof startNodes>>;

async function ourNetObjects(info: NodesInfo): Promise<string[]> {
  const id = info.bridge.slice(3);
  const { execFileSync } = await import('node:child_process');
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{
    ifname: string;
  }>;
  const ns = JSON.parse(execFileSync('ip', ['-j', 'netns', 'list']).toString().trim() || '[]') as Array<{
    name: string;
  }>;
  return [...links.map((l) => l.ifname), ...ns.map((n) => n.name)].filter((n) => n.includes(id));
}

const alive = (pid: number) => existsSync(`/proc/${pid}`);

describe('SSH nodes harness', { timeout: 120_000 }, () => {
  let nodes: Nodes;
  let info: NodesInfo;
  let hostKubeletBefore: string[] | undefined;
  let dir = '';
  const CONFIG = '/var/lib/kubelet/config.json';

  before(async () => {
    hostKubeletBefore = existsSync('/var/lib/kubelet')
      ? (await readdir('/var/lib/kubelet')).sort()
      : undefined;
    dir = await mkdtemp(join(tmpdir(), 'pk-nodes-'));
    const t0 = performance.now();
    nodes = await startNodes({ dir, count: 3 });
    info = nodes.info;
    console.log(`3 nodes up in ${(performance.now() - t0).toFixed(0)} ms (${info.subnet}, ${info.bridge})`);
  });
  after(async () => {
    await nodes?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('doctor checks pass', async () => {
    for (const c of await checkNodes()) assert.ok(c.ok, `${c.name}: ${c.detail} (fix: ${c.fix})`);
  });

  test('info: addresses in the subnet, known_hosts lines whose fingerprint OpenSSH agrees with', async () => {
    assert.equal(info.nodes.length, 3);
    assert.equal(info.user, 'root');
    assert.match(info.bridge, /^pkb[0-9a-f]{6}$/);
    const prefix = info.subnet.replace(/0\/24$/, '');
    assert.equal(new Set(info.nodes.map((n) => n.address)).size, 3);
    const { execFileSync } = await import('node:child_process');
    for (const n of info.nodes) {
      assert.ok(n.address.startsWith(prefix), n.address);
      assert.equal(n.port, 22);
      assert.match(n.hostKeySha256, /^[0-9a-f]{64}$/);
      assert.ok(n.hostKeyLine.startsWith(`${n.address} ssh-ed25519 `));
      const kh = join(dir, 'known_hosts');
      await writeFile(kh, `${n.hostKeyLine}\n`);
      const line = execFileSync('ssh-keygen', ['-l', '-f', kh]).toString();
      assert.ok(line.includes(n.hostKeyFingerprint), `${line} vs ${n.hostKeyFingerprint}`);
      const blob = Buffer.from(n.hostKeyLine.split(' ')[2]!, 'base64');
      assert.equal(sha256hex(blob), n.hostKeySha256);
    }
    assert.match(info.clientKey.publicKey, /^ssh-ed25519 /);
  });

  test('atomic replace over SFTP on all 3 nodes; host /var/lib/kubelet untouched', async () => {
    await Promise.all(
      info.nodes.map((n) =>
        withSftp(info, n, async (s) => {
          for (const round of [1, 2]) {
            // round 2 replaces an existing file: plain rename would fail, posix-rename replaces.
            const tmp = `/var/lib/kubelet/.config.json.tmp-${round}`;
            await sftpWrite(s, tmp, JSON.stringify({ node: n.name, round }));
            await sftpRename(s, tmp, CONFIG);
          }
          assert.deepEqual(JSON.parse((await sftpRead(s, CONFIG)).toString()), { node: n.name, round: 2 });
        }),
      ),
    );
    for (const n of info.nodes) {
      const direct = await nodes.readFile(n.name, CONFIG);
      assert.deepEqual(JSON.parse(String(direct)), { node: n.name, round: 2 });
      assert.equal(await nodes.readFile(n.name, '/var/lib/kubelet/.config.json.tmp-1'), undefined);
    }
    const hostNow = existsSync('/var/lib/kubelet') ? (await readdir('/var/lib/kubelet')).sort() : undefined;
    assert.deepEqual(hostNow ?? [], hostKubeletBefore ?? []);
  });

  test('each node has its own /var/lib/kubelet (planted directly, read over SFTP)', async () => {
    for (const n of info.nodes) {
      await nodes.writeFile(n.name, '/var/lib/kubelet/planted/who', `I am ${n.name}\n`, 0o600);
    }
    const seen = await Promise.all(
      info.nodes.map((n) =>
        withSftp(info, n, async (s) => (await sftpRead(s, '/var/lib/kubelet/planted/who')).toString()),
      ),
    );
    assert.deepEqual(
      seen,
      info.nodes.map((n) => `I am ${n.name}\n`),
    );
    assert.equal(
      (await nodes.exec('node-1', 'stat -c %a /var/lib/kubelet/planted/who')).stdout.trim(),
      '600',
    );
    assert.ok(!existsSync('/var/lib/kubelet/planted'), 'host /var/lib/kubelet must not see node files');
    assert.equal(await nodes.readFile('node-1', '/var/lib/kubelet/nope'), undefined);
  });

  test('commands over SSH run with the stock .bashrc', async () => {
    const c = await sshConnect(info, info.nodes[0]!);
    try {
      const out = await sshExec(c, 'md5sum < /root/.bashrc; df --output=target /var/lib/kubelet | tail -1');
      const skel = createHash('md5').update(readFileSync('/etc/skel/.bashrc')).digest('hex');
      assert.ok(out.startsWith(skel), out);
      assert.match(out, /\/var\/lib\/kubelet/);
    } finally {
      c.end();
    }
  });

  test('a wrong pinned host key is refused', async () => {
    const n1 = info.nodes[0]!;
    await assert.rejects(sshConnect(info, n1, info.nodes[1]!.hostKeySha256), /Host denied/);
  });

  test('stopSshd: connection refused, files kept; startSshd: same key works again', async () => {
    const n2 = info.nodes[1]!;
    const before = nodes.pids('node-2');
    assert.ok(before.sshd && alive(before.sshd));
    await nodes.stopSshd('node-2');
    assert.equal(nodes.pids('node-2').sshd, undefined);
    assert.ok(!alive(before.sshd), 'old sshd PID still exists');
    await assert.rejects(sshConnect(info, n2), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
    assert.ok(await nodes.readFile('node-2', CONFIG), 'node files survive an sshd stop');
    await nodes.startSshd('node-2');
    const back = await withSftp(info, n2, async (s) => JSON.parse((await sftpRead(s, CONFIG)).toString()));
    assert.equal(back.node, 'node-2');
  });

  test('rotateHostKey: new fingerprint, old pin refused, new pin accepted', async () => {
    const n3 = info.nodes[2]!;
    const old = n3.hostKeySha256;
    const fresh = await nodes.rotateHostKey('node-3');
    assert.notEqual(fresh, old);
    assert.equal(n3.hostKeySha256, fresh);
    await assert.rejects(sshConnect(info, n3, old), /Host denied/);
    const back = await withSftp(info, n3, async (s) => JSON.parse((await sftpRead(s, CONFIG)).toString()));
    assert.equal(back.node, 'node-3');
  });

  test('fillDisk: SFTP writes fail (status 4 "Failure": sftp-server maps ENOSPC to it); freeing fixes it', async () => {
    const n1 = info.nodes[0]!;
    const fill = await nodes.fillDisk('node-1');
    await withSftp(info, n1, async (s) => {
      const err = await sftpWrite(s, '/var/lib/kubelet/.new', 'x'.repeat(10_000)).then(
        () => undefined,
        (e: Error & { code?: number }) => e,
      );
      assert.ok(err, 'write on a full disk must fail');
      assert.equal(err.code, 4);
      const vfs = await new Promise<{ f_bavail: number | bigint }>((resolve, reject) =>
        s.ext_openssh_statvfs('/var/lib/kubelet', (e, v) => (e ? reject(e) : resolve(v))),
      );
      assert.equal(Number(vfs.f_bavail), 0, 'statvfs over SFTP shows the disk full');
    });
    const shell = await nodes.exec('node-1', 'head -c 10000 /dev/zero > /var/lib/kubelet/.x', {
      allowFail: true,
    });
    assert.notEqual(shell.code, 0);
    assert.match(shell.stderr, /No space left on device/);
    await nodes.exec('node-1', `rm -f ${fill} /var/lib/kubelet/.new /var/lib/kubelet/.x`);
    await withSftp(info, n1, (s) => sftpWrite(s, '/var/lib/kubelet/.new', 'ok'));
  });

  test('stop() leaves no sshd, no netns, no bridge; is idempotent', async () => {
    const pids = info.nodes.flatMap((n) => Object.values(nodes.pids(n.name)).filter((p) => p !== undefined));
    assert.equal(pids.length, 6);
    assert.equal((await ourNetObjects(info)).length, 1 + 3 + 3); // bridge, 3 veths, 3 netns
    await nodes.stop();
    for (const pid of pids) assert.ok(!alive(pid), `PID ${pid} still exists`);
    assert.deepEqual(await ourNetObjects(info), []);
    await nodes.stop();
  });
});

/** Our children (PIDs whose parent is this process) of the kinds the harness starts, from /proc.
 * (tsx may have an esbuild service child of its own.) */
function childrenOfUs(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (ppid === process.pid && comm !== 'esbuild') out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('start that fails half-way', { timeout: 60_000 }, () => {
  test('aborted after the namespaces exist: everything it created is removed', async () => {
    const netnsNow = () => (existsSync('/run/netns') ? readdirSync('/run/netns') : []);
    const before = new Set(netnsNow());
    const ac = new AbortController();
    let sawNew: string[] = [];
    const watcher = setInterval(() => {
      const fresh = netnsNow().filter((n) => n.startsWith('pkn') && !before.has(n));
      if (fresh.length && !ac.signal.aborted) {
        sawNew = fresh;
        ac.abort(new Error('test abort'));
      }
    }, 2);
    const dir = await mkdtemp(join(tmpdir(), 'pk-nodes-abort-'));
    try {
      await assert.rejects(startNodes({ dir, count: 3, signal: ac.signal }), /test abort/);
    } finally {
      clearInterval(watcher);
    }
    assert.ok(sawNew.length > 0, 'abort happened after netns creation');
    const id = sawNew[0]!.slice(3, 9);
    const { execFileSync } = await import('node:child_process');
    const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{
      ifname: string;
    }>;
    assert.deepEqual(
      [...links.map((l) => l.ifname), ...netnsNow()].filter((n) => n.includes(id)),
      [],
    );
    assert.deepEqual(childrenOfUs(), []);
    assert.ok(!existsSync(`/run/pullkeeper-nodes/${id}`));
    await rm(dir, { recursive: true, force: true });
  });
});

describe('crashed test process', { timeout: 60_000 }, () => {
  test('SIGKILLed owner: its sshds die with it; removeLeftovers() removes its netns and bridge', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pk-nodes-crash-'));
    const index = fileURLToPath(new URL('./index.ts', import.meta.url));
    const script = `import { startNodes } from ${JSON.stringify(index)};
      const n = await startNodes({ dir: ${JSON.stringify(dir)}, count: 2 });
      console.log(JSON.stringify({ info: n.info, pids: n.info.nodes.map((x) => n.pids(x.name)) }));
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const { info, pids } = JSON.parse(line) as {
      info: NodesInfo;
      pids: Array<{ holder: number; sshd: number }>;
    };
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const all = pids.flatMap((p) => [p.holder, p.sshd]);
    for (let i = 0; i < 100 && all.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
    // pdeathsig: nothing of the dead owner keeps running (a zombie entry may linger until reaped).
    for (const pid of all) {
      const state = existsSync(`/proc/${pid}/stat`)
        ? readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]
        : 'gone';
      assert.ok(state === 'gone' || state?.startsWith('Z'), `PID ${pid} still running: ${state}`);
    }
    const left = await ourNetObjects(info);
    assert.ok(left.length > 0, 'netns/bridge of a crashed owner are still there');
    const removed = await removeLeftovers();
    for (const name of left.filter((l) => !l.startsWith('pkv'))) assert.ok(removed.includes(name), name);
    for (let i = 0; i < 100 && (await ourNetObjects(info)).length; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await ourNetObjects(info), []);
    await rm(dir, { recursive: true, force: true });
  });
});
