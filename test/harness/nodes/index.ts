/**
 * SSH "nodes" for tests: N OpenSSH servers, each in its own network namespace
 * (own address on a per-harness bridge) and its own mount namespace (private
 * tmpfs on /var/lib/kubelet, Debian's stock .bashrc over /root/.bashrc).
 *
 * Process layout per node (all started through test/harness/proc.ts):
 *   holder: setpriv --pdeathsig KILL -> ip netns exec NS -> unshare --mount -> sh -> exec sleep
 *           One PID throughout (every step execs). It configures eth0/lo, mounts the tmpfs and
 *           owns the mount namespace, so files survive sshd restarts and key rotations.
 *   sshd:   setpriv --pdeathsig KILL -> nsenter -t HOLDER -m -n -> unshare --pid --fork --kill-child
 *           -> /usr/sbin/sshd -D (PID 1 of its own PID namespace). We hold unshare's PID (our child)
 *           and sshd's host PID (unshare's only child). Stopping sends TERM to sshd: when PID 1 of a
 *           PID namespace exits, the kernel kills and reaps every session process in it, then
 *           unshare reaps sshd and exits. Nothing is left behind and nothing becomes a zombie.
 *   pdeathsig: if the test process dies (even by SIGKILL), holders and sshds die with it, so a
 *           crashed test leaves at most prefixed netns/veth/bridge names (see removeLeftovers()).
 */
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tcpOpen } from '../ports.js';
import { HarnessError, run, runBuffer, type Service, startService } from '../proc.js';
import type { Component, DoctorCheck } from '../types.js';

/** Names this module creates: `pkb<id>` bridge, `pkn<id>-<i>` netns, `pkv<id>-<i>` host-side veth. */
export const NAME_PREFIXES = { bridge: 'pkb', netns: 'pkn', veth: 'pkv' } as const;
const OWNED = /^pk([bnv])([0-9a-f]{6})(?:-(\d+))?$/;
/** Owner markers (`<id>` -> PID of the test process), so removeLeftovers() spares live harnesses. */
const OWNER_DIR = '/run/pullkeeper-nodes';
const SUPERNET = [10, 213] as const;
/** Nodes are .11 … .254 of the /24. */
const MAX_NODES = 244;
/** Processes started at once: the machine has 2 cores; more in flight only adds contention. */
const CONCURRENCY = 8;

export interface NodeInfo {
  /** `node-1` … `node-N`. */
  name: string;
  address: string;
  port: 22;
  /** SHA-256 of the host key blob, lowercase hex: what ssh2's `hostVerifier` gets with `hostHash: 'sha256'`,
   * and `createHash('sha256').update(key).digest('hex')` of the Buffer it gets without hostHash. */
  hostKeySha256: string;
  /** The same hash as OpenSSH prints it (`ssh-keygen -lf`): `SHA256:<base64, no padding>`. */
  hostKeyFingerprint: string;
  /** known_hosts line: `<address> ssh-ed25519 AAAA…`. */
  hostKeyLine: string;
}

export interface NodesInfo {
  nodes: NodeInfo[];
  /** Per-harness ed25519 client key (OpenSSH format, unencrypted), authorized for root on every node. */
  clientKey: { privateKeyPath: string; publicKey: string };
  user: 'root';
  /** e.g. `10.213.57.0/24`; the host (bridge) is `.1`, nodes are `.11` upwards. */
  subnet: string;
  bridge: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NodeControls {
  /** Stops the node's sshd (open sessions die too). Files on the node are kept. No-op when stopped. */
  stopSshd(name: string): Promise<void>;
  /** Starts sshd again: same address, same host key, same files. No-op when running. */
  startSshd(name: string): Promise<void>;
  /** New host key, sshd restarted; updates info in place and returns the new hostKeySha256 (hex). */
  rotateHostKey(name: string): Promise<string>;
  /** Reads a file inside the node's mount namespace (not over SSH); undefined when it does not exist. */
  readFile(name: string, path: string): Promise<Buffer | undefined>;
  /** Writes a file inside the node (creates parent directories); mode defaults to 0o644. */
  writeFile(name: string, path: string, data: string | Buffer, mode?: number): Promise<void>;
  /** Runs `sh -c shellCommand` inside the node's mount + network namespaces, as root, cwd `/`.
   * Throws HarnessError on a non-zero exit unless allowFail. */
  exec(
    name: string,
    shellCommand: string,
    opts?: { input?: string | Buffer; allowFail?: boolean },
  ): Promise<ExecResult>;
  /** Fills the node's /var/lib/kubelet tmpfs with one file (default `/var/lib/kubelet/.fill`) until no
   * block is free; returns its path (remove it with exec(`rm -f …`) to free the disk). */
  fillDisk(name: string, path?: string): Promise<string>;
  /** Host PIDs: the mount-namespace holder and sshd (undefined when stopped). */
  pids(name: string): { holder: number | undefined; sshd: number | undefined };
}

export interface StartNodesOptions {
  /** Scratch directory (keys, sshd configs, logs); created if missing. */
  dir: string;
  count: number;
  /** tmpfs size for each node's /var/lib/kubelet, `mount -o size=` syntax. Default '16m'. */
  tmpfsSize?: string;
  signal?: AbortSignal;
}

interface NodeState {
  info: NodeInfo;
  netns: string;
  veth: string;
  dir: string;
  hostKeyPath: string;
  configPath: string;
  holder?: Service;
  sshd?: Service;
  sshdPid?: number;
  /** Serialises start/stop/rotate per node. */
  queue: Promise<unknown>;
}

// ---------------------------------------------------------------------------------------------
// Emergency cleanup when the test process exits without stop() (uncaught error, SIGINT/SIGTERM).

const active = new Set<() => void>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const cleanup of active) {
      try {
        cleanup();
      } catch {
        /* best effort */
      }
    }
  });
}

function tryKill(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

// ---------------------------------------------------------------------------------------------

export async function startNodes(opts: StartNodesOptions): Promise<Component<NodesInfo> & NodeControls> {
  const { count, signal } = opts;
  const tmpfsSize = opts.tmpfsSize ?? '16m';
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) {
    throw new HarnessError(`startNodes: count must be an integer 1..${MAX_NODES}, got ${count}`);
  }
  if (!/^\d+[kmg%]?$/i.test(tmpfsSize)) throw new HarnessError(`startNodes: bad tmpfsSize ${tmpfsSize}`);
  if (process.getuid?.() !== 0) throw new HarnessError('startNodes: must run as root (netns, mounts)');
  signal?.throwIfAborted();

  const dir = resolve(opts.dir);
  const id = randomBytes(3).toString('hex');
  const bridge = `${NAME_PREFIXES.bridge}${id}`;
  const ownerFile = join(OWNER_DIR, id);
  const nodes: NodeState[] = [];
  const byName = new Map<string, NodeState>();
  let stopped: Promise<void> | undefined;

  const syncCleanup = () => {
    for (const n of nodes) {
      tryKill(n.sshd?.pid === undefined ? undefined : n.sshdPid, 'SIGKILL');
      tryKill(n.sshd?.pid, 'SIGKILL');
      tryKill(n.holder?.pid, 'SIGKILL');
    }
    // Let the killed processes go and their TCP sockets finish closing over the bridge first: a socket
    // left in LAST_ACK behind a deleted bridge keeps its netns (and the veth) alive for minutes.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    const lines = [...nodes.map((n) => `netns del ${n.netns}`), `link del ${bridge}`];
    spawnSync('ip', ['-force', '-batch', '-'], {
      input: `${lines.join('\n')}\n`,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    rmSync(ownerFile, { force: true });
  };
  hookExit();
  active.add(syncCleanup);

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const errors: string[] = [];
      await Promise.all(
        nodes.map(async (n) => {
          await killSshd(n).catch((e) => errors.push(String(e)));
          const h = n.holder;
          n.holder = undefined;
          await h?.stop(1000);
        }),
      );
      // Delete only what exists (a start that failed half-way created only part of it). Deleting a netns
      // destroys its veth pair in the background (~50 ms for 50); deleting 50 veths one by one takes ~1 s.
      const ours = (l: string) => l === bridge || nodes.some((n) => n.veth === l);
      const namespaces = new Set(await listNetns());
      const batch = [
        ...nodes.filter((n) => namespaces.has(n.netns)).map((n) => `netns del ${n.netns}`),
        ...((await listLinks()).includes(bridge) ? [`link del ${bridge}`] : []),
      ];
      if (batch.length) {
        const r = await run('ip', ['-force', '-batch', '-'], {
          input: `${batch.join('\n')}\n`,
          allowFail: true,
        });
        if (r.code !== 0) errors.push(`ip -batch: ${r.stderr.trim()}`);
      }
      let leftLinks = (await listLinks()).filter(ours);
      for (let waited = 0; leftLinks.length && waited < 3000; waited += 20) {
        await sleep(20);
        leftLinks = (await listLinks()).filter(ours);
      }
      if (leftLinks.length) {
        const del = leftLinks.map((l) => `link del ${l}`).join('\n');
        await run('ip', ['-force', '-batch', '-'], { input: `${del}\n`, allowFail: true });
        leftLinks = (await listLinks()).filter(ours);
      }
      await rm(ownerFile, { force: true });
      active.delete(syncCleanup);
      const leftNs = (await listNetns()).filter((ns) => nodes.some((n) => n.netns === ns));
      if (leftLinks.length || leftNs.length)
        errors.push(`left behind: ${[...leftLinks, ...leftNs].join(' ')}`);
      if (errors.length) throw new HarnessError(`nodes ${id}: stop failed: ${errors.join('; ')}`);
    })();
    return stopped;
  };

  const node = (name: string): NodeState => {
    const n = byName.get(name);
    if (!n) throw new HarnessError(`no node named ${name} (have ${[...byName.keys()].join(', ')})`);
    if (stopped) throw new HarnessError(`nodes ${id} are stopped`);
    return n;
  };
  const serial = <T>(n: NodeState, fn: () => Promise<T>): Promise<T> => {
    const p = n.queue.then(fn, fn);
    n.queue = p.catch(() => undefined);
    return p;
  };

  const startSshdOf = async (n: NodeState, sig?: AbortSignal): Promise<void> => {
    if (n.sshd) return;
    if (!n.holder) throw new HarnessError(`${n.info.name}: node is down`);
    const svc = await startService({
      name: `sshd ${n.info.name} (${n.info.address})`,
      command: 'setpriv',
      args: [
        '--pdeathsig',
        'KILL',
        '--',
        'nsenter',
        '-t',
        String(n.holder.pid),
        '-m',
        '-n',
        '--',
        'unshare',
        '--pid',
        '--fork',
        '--kill-child',
        '--',
        '/usr/sbin/sshd',
        '-D',
        '-e',
        '-f',
        n.configPath,
      ],
      logFile: join(n.dir, 'sshd.log'),
    });
    n.sshd = svc;
    try {
      // Ready = a TCP connect from the host namespace succeeds. Polled every 10 ms (a refused connect
      // costs nothing; startService's backoff would add up to ~2x the start time under load).
      await waitReady(svc, () => tcpOpen(n.info.address, 22, 1000), sig);
      n.sshdPid = childOf(svc.pid);
      if (n.sshdPid === undefined) {
        throw new HarnessError(
          `${n.info.name}: sshd is listening but its PID was not found under ${svc.pid}`,
        );
      }
    } catch (err) {
      await killSshd(n);
      throw err;
    }
  };

  const killSshd = async (n: NodeState): Promise<void> => {
    const svc = n.sshd;
    if (!svc) return;
    const pid = n.sshdPid;
    n.sshd = undefined;
    n.sshdPid = undefined;
    let exited = false;
    void svc.exited.then(() => {
      exited = true;
    });
    // TERM sshd itself (PID 1 of its PID namespace); unshare blocks TERM, so it is not signalled.
    if (pid !== undefined) tryKill(pid, 'SIGTERM');
    else tryKill(svc.pid, 'SIGKILL');
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3000).unref());
    if ((await Promise.race([svc.exited, timeout])) === 'timeout' && !exited) {
      tryKill(pid, 'SIGKILL');
      await Promise.race([svc.exited, new Promise((r) => setTimeout(r, 1000).unref())]);
      tryKill(svc.pid, 'SIGKILL');
      await svc.exited;
    }
  };

  const readHostKey = async (n: NodeState): Promise<void> => {
    const pub = (await readFile(`${n.hostKeyPath}.pub`, 'utf8')).trim().split(/\s+/);
    const blob = Buffer.from(pub[1] ?? '', 'base64');
    const digest = createHash('sha256').update(blob).digest();
    n.info.hostKeySha256 = digest.toString('hex');
    n.info.hostKeyFingerprint = `SHA256:${digest.toString('base64').replace(/=+$/, '')}`;
    n.info.hostKeyLine = `${n.info.address} ${pub[0]} ${pub[1]}`;
  };

  const nsRun = (n: NodeState, args: string[], input?: string | Buffer) => {
    if (!n.holder) throw new HarnessError(`${n.info.name}: node is down`);
    return run('nsenter', ['-t', String(n.holder.pid), '-m', '-n', '--wd=/', '--', ...args], {
      allowFail: true,
      ...(input === undefined ? {} : { input }),
    });
  };

  const exec = async (
    name: string,
    shellCommand: string,
    o: { input?: string | Buffer; allowFail?: boolean } = {},
  ): Promise<ExecResult> => {
    const n = node(name);
    const r = await nsRun(n, ['sh', '-c', shellCommand], o.input);
    if (r.code !== 0 && !o.allowFail) {
      throw new HarnessError(
        `${name}: \`${shellCommand}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`,
      );
    }
    return r;
  };

  let info: NodesInfo | undefined;
  try {
    await mkdir(dir, { recursive: true });
    await mkdir(OWNER_DIR, { recursive: true });
    await writeFile(ownerFile, `${process.pid}\n`);
    // Mount point and sshd privilege-separation directory (both exist on a real node).
    await mkdir('/var/lib/kubelet', { recursive: true });
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

    // Network: a free /24, the bridge with .1.
    const third = await createBridge(bridge, signal);
    const subnet = `${SUPERNET[0]}.${SUPERNET[1]}.${third}.0/24`;

    for (let i = 1; i <= count; i++) {
      const ndir = join(dir, `node-${i}`);
      const n: NodeState = {
        netns: `${NAME_PREFIXES.netns}${id}-${i}`,
        veth: `${NAME_PREFIXES.veth}${id}-${i}`,
        dir: ndir,
        hostKeyPath: join(ndir, 'ssh_host_ed25519_key'),
        configPath: join(ndir, 'sshd_config'),
        queue: Promise.resolve(),
        info: {
          name: `node-${i}`,
          address: `${SUPERNET[0]}.${SUPERNET[1]}.${third}.${10 + i}`,
          port: 22,
          hostKeySha256: '',
          hostKeyFingerprint: '',
          hostKeyLine: '',
        },
      };
      nodes.push(n);
      byName.set(n.info.name, n);
    }

    // Keys (generated in-process: no ssh-keygen per key) and configs.
    const clientKeyPath = join(dir, 'client_ed25519');
    await sshKeygen(clientKeyPath, `pullkeeper-harness-${id}`);
    const publicKey = (await readFile(`${clientKeyPath}.pub`, 'utf8')).trim();
    await pool(nodes, 8, async (n) => {
      await mkdir(n.dir, { recursive: true });
      await sshKeygen(n.hostKeyPath, `${n.info.name}-${id}`);
      await readHostKey(n);
      await writeFile(join(n.dir, 'authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
      await writeFile(n.configPath, sshdConfig(n), { mode: 0o600 });
    });
    signal?.throwIfAborted();

    // Namespaces and veths in one `ip` process.
    await run('ip', ['-batch', '-'], {
      input: `${nodes
        .flatMap((n) => [
          `netns add ${n.netns}`,
          `link add ${n.veth} type veth peer name eth0 netns ${n.netns}`,
          `link set ${n.veth} master ${bridge} up`,
        ])
        .join('\n')}\n`,
    });
    signal?.throwIfAborted();

    // Holders (addresses, tmpfs, .bashrc), then sshds.
    await pool(nodes, CONCURRENCY, async (n) => {
      const holderScript = [
        'set -e',
        `printf 'addr replace %s/24 dev eth0\\nlink set eth0 up\\nlink set lo up\\n' "$1" | ip -batch -`,
        'mount -t tmpfs -o "size=$2,mode=0755" "$3" /var/lib/kubelet',
        'if [ -f /root/.bashrc ] && [ -f /etc/skel/.bashrc ]; then mount --bind /etc/skel/.bashrc /root/.bashrc; fi',
        'echo holder-ready',
        'exec sleep infinity',
      ].join('\n');
      const logFile = join(n.dir, 'holder.log');
      await writeFile(logFile, '');
      n.holder = await startService({
        name: `node ${n.info.name} holder`,
        command: 'setpriv',
        args: [
          '--pdeathsig',
          'KILL',
          '--',
          'ip',
          'netns',
          'exec',
          n.netns,
          'unshare',
          '--mount',
          '--propagation',
          'private',
          '--',
          'sh',
          '-c',
          holderScript,
          'holder',
          n.info.address,
          tmpfsSize,
          `kubelet-${n.netns}`,
        ],
        logFile,
      });
      // Every step execs, so the PID we hold is the one that becomes `sleep` right after this line.
      await waitReady(
        n.holder,
        async () => (await readFile(logFile, 'utf8')).includes('holder-ready'),
        signal,
      );
    });
    await pool(nodes, CONCURRENCY, (n) => startSshdOf(n, signal));

    info = {
      nodes: nodes.map((n) => n.info),
      clientKey: { privateKeyPath: clientKeyPath, publicKey },
      user: 'root',
      subnet,
      bridge,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  return {
    info,
    stop,
    stopSshd: (name) => {
      const n = node(name);
      return serial(n, () => killSshd(n));
    },
    startSshd: (name) => {
      const n = node(name);
      return serial(n, () => startSshdOf(n));
    },
    rotateHostKey: (name) => {
      const n = node(name);
      return serial(n, async () => {
        await killSshd(n);
        await sshKeygen(n.hostKeyPath, `${n.info.name}-${id}-rotated`);
        await readHostKey(n);
        await startSshdOf(n);
        return n.info.hostKeySha256;
      });
    },
    readFile: async (name, path) => {
      const n = node(name);
      if (!n.holder) throw new HarnessError(`${name}: node is down`);
      const r = await runBuffer(
        'nsenter',
        [
          '-t',
          String(n.holder.pid),
          '-m',
          '-n',
          '--wd=/',
          '--',
          'sh',
          '-c',
          '[ -e "$1" ] || exit 44; exec cat -- "$1"',
          'read',
          path,
        ],
        { allowFail: true },
      );
      if (r.code === 44) return undefined;
      if (r.code !== 0) throw new HarnessError(`${name}: read ${path} failed: ${r.stderr.trim()}`);
      return r.stdout;
    },
    writeFile: async (name, path, data, mode = 0o644) => {
      const n = node(name);
      const r = await nsRun(
        n,
        [
          'sh',
          '-c',
          'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"',
          'write',
          path,
          mode.toString(8),
        ],
        data,
      );
      if (r.code !== 0) throw new HarnessError(`${name}: write ${path} failed: ${r.stderr.trim()}`);
    },
    exec,
    fillDisk: async (name, path = '/var/lib/kubelet/.fill') => {
      const n = node(name);
      const r = await nsRun(n, [
        'sh',
        '-c',
        'mkdir -p -- "$(dirname -- "$1")"; cat /dev/zero > "$1" 2>/dev/null; stat -f -c %a -- "$(dirname -- "$1")"',
        'fill',
        path,
      ]);
      if (r.stdout.trim() !== '0') {
        throw new HarnessError(
          `${name}: fillDisk(${path}) left ${r.stdout.trim()} blocks free: ${r.stderr.trim()}`,
        );
      }
      return path;
    },
    pids: (name) => {
      const n = node(name);
      return { holder: n.holder?.pid, sshd: n.sshd ? n.sshdPid : undefined };
    },
  };
}

// ---------------------------------------------------------------------------------------------

function sshdConfig(n: NodeState): string {
  return [
    'Port 22',
    `ListenAddress ${n.info.address}`,
    `HostKey ${n.hostKeyPath}`,
    `PidFile ${join(n.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(n.dir, 'authorized_keys')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'StrictModes no',
    'UsePAM no',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/** Polls `check` every 10 ms until it is true; throws (with the log tail) if the process exits first. */
async function waitReady(
  svc: Service,
  check: () => Promise<boolean>,
  signal?: AbortSignal,
  timeoutMs = 20_000,
): Promise<void> {
  let exited = false;
  void svc.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      throw new HarnessError(
        `${svc.name} exited before it was ready. Last log lines (${svc.logFile}):\n${svc.tail()}`,
      );
    }
    if (await check().catch(() => false)) return;
    if (signal?.aborted) throw signal.reason;
    if (Date.now() > deadline) {
      throw new HarnessError(
        `${svc.name} was not ready within ${timeoutMs} ms. Last log lines:\n${svc.tail()}`,
      );
    }
    await sleep(10);
  }
}

/** The single child of `pid` (unshare --fork's child: sshd), from /proc. */
function childOf(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    const child = Number(first);
    return Number.isInteger(child) && child > 0 ? child : undefined;
  } catch {
    return undefined;
  }
}

/** SSH wire-format string: uint32 length + bytes. */
function sshString(data: Buffer | string): Buffer {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(buf.length);
  return Buffer.concat([len, buf]);
}

/**
 * An unencrypted ed25519 key pair in OpenSSH format (what `ssh-keygen -t ed25519 -N ''` writes), built
 * from node:crypto without a process. (ssh2's utils.generateKeyPairSync is not used: about 1 key in 100
 * comes out with a 31-byte key that OpenSSH rejects, "error in libcrypto".)
 */
export function ed25519KeyPair(comment: string): { privateKey: string; publicKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d ?? '', 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  if (seed.length !== 32 || pub.length !== 32) throw new HarnessError('ed25519 key export failed');
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let section = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const pad = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(blob),
    sshString(section),
  ]).toString('base64');
  const lines = body.match(/.{1,70}/g) ?? [];
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${blob.toString('base64')} ${comment}`,
  };
}

async function sshKeygen(path: string, comment: string): Promise<void> {
  const pair = ed25519KeyPair(comment);
  await writeFile(path, pair.privateKey, { mode: 0o600 });
  await writeFile(`${path}.pub`, `${pair.publicKey}\n`, { mode: 0o644 });
}

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

async function listLinks(): Promise<string[]> {
  const r = await run('ip', ['-j', 'link', 'show']);
  return (JSON.parse(r.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

async function listNetns(): Promise<string[]> {
  const r = await run('ip', ['-j', 'netns', 'list']);
  return (JSON.parse(r.stdout.trim() || '[]') as Array<{ name: string }>).map((n) => n.name);
}

const ipToInt = (ip: string): number => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);

/** IPv4 networks (as [base, prefix]) in use on host interfaces and routes. */
async function usedNetworks(): Promise<Array<{ ifname: string; base: number; prefix: number }>> {
  const out: Array<{ ifname: string; base: number; prefix: number }> = [];
  const addrs = JSON.parse((await run('ip', ['-j', '-4', 'addr', 'show'])).stdout || '[]') as Array<{
    ifname: string;
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  for (const a of addrs) {
    for (const ai of a.addr_info ?? [])
      out.push({ ifname: a.ifname, base: ipToInt(ai.local), prefix: ai.prefixlen });
  }
  const routes = JSON.parse((await run('ip', ['-j', '-4', 'route', 'show'])).stdout || '[]') as Array<{
    dst: string;
    dev?: string;
  }>;
  for (const r of routes) {
    if (r.dst === 'default') continue;
    const [net, len] = r.dst.split('/');
    out.push({
      ifname: r.dev ?? '',
      base: ipToInt(net ?? '0.0.0.0'),
      prefix: len === undefined ? 32 : Number(len),
    });
  }
  return out;
}

function overlaps(a: number, b: number, prefix: number): boolean {
  const shift = 32 - prefix;
  return prefix === 0 || Math.floor(a / 2 ** shift) === Math.floor(b / 2 ** shift);
}

/** Creates the bridge on a random /24 of 10.213.0.0/16 that nothing else on the host uses; returns its third octet. */
async function createBridge(bridge: string, signal?: AbortSignal): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    signal?.throwIfAborted();
    const used = await usedNetworks();
    const free: number[] = [];
    for (let t = 0; t < 256; t++) {
      const base = ipToInt(`${SUPERNET[0]}.${SUPERNET[1]}.${t}.0`);
      if (!used.some((u) => overlaps(u.base, base, Math.min(u.prefix, 24)))) free.push(t);
    }
    if (!free.length) throw new HarnessError('no free /24 left in 10.213.0.0/16');
    const third = free[randomInt(free.length)]!;
    await run('ip', ['-batch', '-'], {
      input: `link add ${bridge} type bridge\naddr add ${SUPERNET[0]}.${SUPERNET[1]}.${third}.1/24 dev ${bridge}\nlink set ${bridge} up\n`,
    }).catch(async (err) => {
      await run('ip', ['link', 'del', bridge], { allowFail: true });
      throw err;
    });
    // Another harness may have picked the same /24 at the same moment: check again, retry on a clash.
    const base = ipToInt(`${SUPERNET[0]}.${SUPERNET[1]}.${third}.0`);
    const clash = (await usedNetworks()).some(
      (u) => u.ifname !== bridge && overlaps(u.base, base, Math.min(u.prefix, 24)),
    );
    if (!clash) return third;
    await run('ip', ['link', 'del', bridge], { allowFail: true });
    await new Promise((r) => setTimeout(r, randomInt(10, 60)));
  }
  throw new HarnessError('could not claim a free /24 in 10.213.0.0/16 after 20 attempts');
}

// ---------------------------------------------------------------------------------------------

function ownerAlive(id: string): boolean {
  try {
    const pid = Number(readFileSync(join(OWNER_DIR, id), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * For `harness down`: deletes the netns, veths and bridges with our prefixes that belong to no running
 * harness (its owner process is gone) and have no live process in them. Returns the names it removed.
 */
export async function removeLeftovers(): Promise<string[]> {
  const idOf = (name: string) => OWNED.exec(name)![2]!;
  const namespaces = (await listNetns()).filter((n) => OWNED.test(n) && n.startsWith(NAME_PREFIXES.netns));
  const links = (await listLinks()).filter((l) => OWNED.test(l));
  const keep = new Set<string>();
  for (const id of new Set([...namespaces, ...links].map(idOf))) if (ownerAlive(id)) keep.add(id);
  for (const ns of namespaces) {
    if (keep.has(idOf(ns))) continue;
    const pids = (await run('ip', ['netns', 'pids', ns], { allowFail: true })).stdout.trim();
    if (pids) keep.add(idOf(ns));
  }
  const doomed = (names: string[], prefix: string) =>
    names.filter((n) => n.startsWith(prefix) && !keep.has(idOf(n)));
  const veths = doomed(links, NAME_PREFIXES.veth);
  const netns = doomed(namespaces, NAME_PREFIXES.netns);
  const bridges = doomed(links, NAME_PREFIXES.bridge);
  // Explicit veth deletion: a netns can outlive its name while a socket still references it.
  const batch = [
    ...veths.map((v) => `link del ${v}`),
    ...netns.map((n) => `netns del ${n}`),
    ...bridges.map((b) => `link del ${b}`),
  ];
  if (batch.length) {
    await run('ip', ['-force', '-batch', '-'], { input: `${batch.join('\n')}\n`, allowFail: true });
  }
  for (const id of new Set([...veths, ...netns, ...bridges].map(idOf))) {
    await rm(join(OWNER_DIR, id), { force: true });
  }
  return [...veths, ...netns, ...bridges];
}

// ---------------------------------------------------------------------------------------------

/** `harness doctor` lines for the SSH nodes. */
export async function checkNodes(): Promise<DoctorCheck[]> {
  const probe = async (cmd: string, args: string[]): Promise<string | undefined> => {
    try {
      const r = await run(cmd, args, { allowFail: true, timeoutMs: 10_000 });
      const text = `${r.stdout}\n${r.stderr}`.trim().split('\n')[0]?.trim();
      return r.code === 0 || text ? text || 'ok' : undefined;
    } catch {
      return undefined;
    }
  };
  const tool = async (name: string, cmd: string, args: string[], pkg: string): Promise<DoctorCheck> => {
    const found = await probe(cmd, args);
    return found
      ? { name, ok: true, detail: found }
      : {
          name,
          ok: false,
          detail: `${name.slice('nodes: '.length)} not found`,
          fix: `apt-get update && apt-get install -y ${pkg}`,
        };
  };
  const root = process.getuid?.() === 0;
  const checks: DoctorCheck[] = [
    root
      ? { name: 'nodes: root', ok: true, detail: 'uid 0 (netns, mounts)' }
      : {
          name: 'nodes: root',
          ok: false,
          detail: `uid ${process.getuid?.()}: network/mount namespaces need root`,
          fix: 'sudo -E npm test',
        },
    await tool('nodes: ip', 'ip', ['-V'], 'iproute2'),
    await tool('nodes: unshare', 'unshare', ['--version'], 'util-linux'),
    await tool('nodes: nsenter', 'nsenter', ['--version'], 'util-linux'),
    await tool('nodes: setpriv', 'setpriv', ['--version'], 'util-linux'),
    await tool('nodes: sshd', '/usr/sbin/sshd', ['-V'], 'openssh-server'),
    await tool('nodes: ssh-keygen', 'sh', ['-c', 'command -v ssh-keygen'], 'openssh-client'),
  ];
  let skel = false;
  try {
    await access('/etc/skel/.bashrc');
    skel = true;
  } catch {
    /* missing */
  }
  checks.push(
    skel
      ? { name: 'nodes: /etc/skel/.bashrc', ok: true, detail: 'stock .bashrc for nodes' }
      : {
          name: 'nodes: /etc/skel/.bashrc',
          ok: false,
          detail: 'missing (nodes keep the image .bashrc: slow ssh commands)',
          fix: 'apt-get update && apt-get install -y --reinstall bash',
        },
  );
  return checks;
}
