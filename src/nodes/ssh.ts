/**
 * SSH/SFTP adapter for node pushes (ssh2). Key authentication only; the host
 * key is pinned from known_hosts content, or from the record of keys trusted
 * on first use (src/app/host-key-store.ts), or accepted on first use when the
 * config says so (the caller records it before anything is sent). Files move
 * over the SFTP subsystem, so no remote shell runs for reads and writes.
 *
 * Latency: our own socket with Nagle off (every SSH round trip otherwise
 * stalls on delayed ACKs), curve25519 key exchange first, and SFTP requests
 * pipelined where the protocol allows it (the server handles them in order).
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';
import { PullkeeperError } from '../core/errors.js';
import { fingerprintOf, type HostPins, hostKeyAlgorithmsFor, lookupName } from './known-hosts.js';
import { sha256hex } from './plan.js';

export class NodeSshError extends PullkeeperError {
  readonly node: string;
  constructor(node: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.node = node;
  }
}
export class HostKeyMismatchError extends NodeSshError {}
export class DiskFullError extends NodeSshError {}

export interface SshTarget {
  name: string;
  address: string;
  port: number;
  user: string;
}

/** Where a pin came from when it is not nodes.ssh.knownHosts: the first-use record. */
export interface RecordedPin {
  firstSeen: string;
  /** Where the record lives (for the message). */
  place: string;
}

export interface ConnectOptions {
  privateKey: string | Buffer;
  pins: HostPins;
  /** Set when `pins` holds the key recorded on first use rather than a knownHosts pin. */
  recorded?: RecordedPin;
  trustOnFirstUse: boolean;
  signal: AbortSignal;
  timeoutMs: number;
}

export interface NodeSession {
  client: Client;
  sftp: SFTPWrapper;
  /** Set when the key was accepted on first use (no pin existed): the known_hosts line to add. */
  trustedOnFirstUse?: string;
  /** The key the server presented. */
  hostKey: { type: string; sha256: string };
  close(): void;
}

const KEX = [
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'diffie-hellman-group14-sha256',
];
const CIPHERS = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'chacha20-poly1305@openssh.com',
  'aes128-ctr',
];
const KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Key type name from an SSH public key blob (uint32 length + name). */
function blobKeyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

/** Connects, authenticates, opens SFTP. Rejects with a NodeSshError that says what to do. */
export function openSession(t: SshTarget, opts: ConnectOptions): Promise<NodeSession> {
  const where = `${t.address}:${t.port}`;
  const pinned = new Set(opts.pins.keys.map((k) => k.sha256));
  const tofu = pinned.size === 0 && opts.trustOnFirstUse;
  let presented: { sha256: string; type: string } | undefined;
  return new Promise((resolve, reject) => {
    if (pinned.size === 0 && !opts.trustOnFirstUse) {
      reject(
        new NodeSshError(
          t.name,
          `no pinned host key for ${lookupName(t.address, t.port)} in nodes.ssh.knownHosts; add its line ` +
            `(ssh-keyscan -t ed25519 ${t.port === 22 ? '' : `-p ${t.port} `}${t.address}, and check the fingerprint on the node) ` +
            'or set nodes.ssh.trustOnFirstUse: true',
        ),
      );
      return;
    }
    const client = new ssh2.Client();
    let settled = false;
    const sock = netConnect({ host: t.address, port: t.port });
    sock.setNoDelay(true);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      opts.signal.removeEventListener('abort', onAbort);
      client.end();
      sock.destroy();
      reject(err);
    };
    const onAbort = () =>
      fail(
        new NodeSshError(
          t.name,
          opts.signal.reason instanceof Error && opts.signal.reason.name === 'TimeoutError'
            ? `timed out after ${opts.timeoutMs} ms (nodes.ssh.timeoutMs): check that ${where} is reachable`
            : 'aborted',
          { cause: opts.signal.reason },
        ),
      );
    if (opts.signal.aborted) return onAbort();
    opts.signal.addEventListener('abort', onAbort, { once: true });
    // 'on', not 'once': ssh2 can emit more errors after the first (and after ready); unhandled they would crash.
    client.on('error', (err: Error & { code?: string; level?: string }) =>
      fail(describeConnectError(t, err, presented, opts)),
    );
    client.once('ready', () => {
      client.sftp((err, sftp) => {
        if (err)
          return fail(
            new NodeSshError(
              t.name,
              `SFTP subsystem unavailable on ${where}: enable "Subsystem sftp" in sshd_config`,
              { cause: err },
            ),
          );
        if (settled) return;
        settled = true;
        opts.signal.removeEventListener('abort', onAbort);
        resolve({
          client,
          sftp,
          hostKey: presented ?? { type: 'unknown', sha256: '' },
          ...(tofu && presented
            ? {
                trustedOnFirstUse: `${lookupName(t.address, t.port)} ${presented.type} (${fingerprintOf(presented.sha256)})`,
              }
            : {}),
          close: () => client.end(),
        });
      });
    });
    // A closed socket before 'ready' (e.g. sshd stopped during the handshake).
    client.once('close', () => fail(new NodeSshError(t.name, `connection to ${where} closed during setup`)));
    const keyTypes = opts.pins.keys.map((k) => k.keyType);
    client.connect({
      sock,
      username: t.user,
      privateKey: opts.privateKey,
      readyTimeout: opts.timeoutMs,
      algorithms: {
        kex: KEX as never,
        cipher: CIPHERS as never,
        serverHostKey: (tofu ? KEY_TYPES : hostKeyAlgorithmsFor(keyTypes)) as never,
      },
      hostVerifier: (key: Buffer) => {
        presented = { sha256: sha256hex(key), type: blobKeyType(key) };
        if (opts.pins.revoked.has(presented.sha256)) return false;
        return tofu || pinned.has(presented.sha256);
      },
    });
  });
}

function describeConnectError(
  t: SshTarget,
  err: Error & { code?: string; level?: string },
  presented: { sha256: string; type: string } | undefined,
  opts: Pick<ConnectOptions, 'pins' | 'recorded'>,
): NodeSshError {
  const where = `${t.address}:${t.port}`;
  if (/verification failed/i.test(err.message) && presented && opts.recorded) {
    const rec = opts.pins.keys[0];
    return new HostKeyMismatchError(
      t.name,
      `host key mismatch for ${lookupName(t.address, t.port)}: the host key changed since it was trusted on first use. ` +
        `It presented ${presented.type} ${fingerprintOf(presented.sha256)}, not the ${rec?.keyType ?? ''} ${rec ? fingerprintOf(rec.sha256) : ''} recorded ` +
        `on ${opts.recorded.firstSeen} (${opts.recorded.place}); refused, nothing was sent. If the node was reinstalled or its key rotated on purpose, ` +
        `check the new fingerprint on the node (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it in nodes.ssh.knownHosts ` +
        `(a pin takes precedence over the record): ssh-keyscan -t ed25519 ${t.port === 22 ? '' : `-p ${t.port} `}${t.address} >> KNOWN_HOSTS`,
      { cause: err },
    );
  }
  if (/verification failed/i.test(err.message) && presented) {
    return new HostKeyMismatchError(
      t.name,
      `host key mismatch for ${lookupName(t.address, t.port)}: it presented ${presented.type} ${fingerprintOf(presented.sha256)}, ` +
        'which is not the key pinned in nodes.ssh.knownHosts; refused. If the node was reinstalled or its key rotated on purpose, ' +
        `check the new fingerprint on the node (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update the pin: ` +
        `ssh-keygen -R ${lookupName(t.address, t.port)} -f KNOWN_HOSTS; ssh-keyscan -t ed25519 ${t.port === 22 ? '' : `-p ${t.port} `}${t.address} >> KNOWN_HOSTS`,
      { cause: err },
    );
  }
  switch (err.code) {
    case 'ECONNREFUSED':
      return new NodeSshError(
        t.name,
        `connection refused at ${where}: is sshd running on the node and listening on port ${t.port}?`,
        { cause: err },
      );
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new NodeSshError(
        t.name,
        `${where} is unreachable (${err.code}): check the node's address and routes`,
        { cause: err },
      );
    case 'ECONNRESET':
      return new NodeSshError(t.name, `connection to ${where} was reset during setup`, { cause: err });
  }
  if (err.level === 'client-authentication')
    return new NodeSshError(
      t.name,
      `${where} refused the key for user "${t.user}": add the public key of nodes.ssh.privateKey to that user's authorized_keys`,
      { cause: err },
    );
  if (/Timed out while waiting for handshake/i.test(err.message))
    return new NodeSshError(t.name, `SSH handshake with ${where} timed out`, { cause: err });
  return new NodeSshError(t.name, `SSH to ${where} failed: ${err.message}`, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// SFTP helpers (promises; requests pipelined where possible)

const SFTP_NO_SUCH_FILE = 2;
const SFTP_FAILURE = 4;
/** A config.json bigger than this is refused (the kubelet's are a few KB). */
export const MAX_REMOTE_FILE_BYTES = 1024 * 1024;
const CHUNK = 32 * 1024;

type SftpErr = Error & { code?: number | string };
const cb =
  <T>(resolve: (v: T) => void, reject: (e: SftpErr) => void) =>
  (err: SftpErr | undefined | null, v: T) =>
    err ? reject(err) : resolve(v);

const openFile = (s: SFTPWrapper, path: string, flags: 'r' | 'w', mode?: number) =>
  new Promise<Buffer>((resolve, reject) =>
    mode === undefined
      ? s.open(path, flags, cb(resolve, reject))
      : s.open(path, flags, { mode }, cb(resolve, reject)),
  );
const closeFile = (s: SFTPWrapper, h: Buffer) =>
  new Promise<void>((resolve, reject) => s.close(h, cb(resolve, reject)));

/** Reads a whole file; undefined when it does not exist. */
export async function readRemote(s: SFTPWrapper, path: string): Promise<Buffer | undefined> {
  let h: Buffer;
  try {
    h = await openFile(s, path, 'r');
  } catch (err) {
    if ((err as SftpErr).code === SFTP_NO_SUCH_FILE) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  let pos = 0;
  try {
    for (;;) {
      const buf = Buffer.alloc(CHUNK);
      const n = await new Promise<number>((resolve, reject) =>
        s.read(h, buf, 0, CHUNK, pos, (err, bytes) => {
          // EOF is an SFTP status 1 error in ssh2 for reads past the end.
          if (err && (err as SftpErr).code === 1) return resolve(0);
          return err ? reject(err) : resolve(bytes);
        }),
      );
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      pos += n;
      if (pos > MAX_REMOTE_FILE_BYTES)
        throw new RangeError(`${path} is larger than ${MAX_REMOTE_FILE_BYTES} bytes`);
    }
  } finally {
    await closeFile(s, h).catch(() => undefined);
  }
  return Buffer.concat(chunks);
}

export interface StatVfs {
  bavail: number;
  frsize: number;
}
export const statvfs = (s: SFTPWrapper, path: string) =>
  new Promise<StatVfs>((resolve, reject) =>
    s.ext_openssh_statvfs(
      path,
      (err, v: { f_bavail: number | bigint; f_frsize: number | bigint; f_bsize: number | bigint }) =>
        err ? reject(err) : resolve({ bavail: Number(v.f_bavail), frsize: Number(v.f_frsize || v.f_bsize) }),
    ),
  );

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

/**
 * Atomic replace: temp file in the same directory (mode 0600), write, fsync, close,
 * posix-rename over the target. The temp file is removed on failure; a generic
 * SFTP failure is checked against statvfs and reported as "disk full" when it is.
 */
export async function writeRemoteAtomic(
  s: SFTPWrapper,
  node: string,
  path: string,
  data: string | Buffer,
  mode = 0o600,
): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const base = path.slice(path.lastIndexOf('/') + 1);
  const tmp = `${dirOf(path)}/.${base}.pullkeeper-tmp-${randomBytes(4).toString('hex')}`;
  let created = false;
  try {
    const h = await openFile(s, tmp, 'w', mode);
    created = true;
    const ops: Array<Promise<unknown>> = [];
    for (let off = 0; off < bytes.length; off += CHUNK) {
      const len = Math.min(CHUNK, bytes.length - off);
      ops.push(new Promise<void>((resolve, reject) => s.write(h, bytes, off, len, off, cb(resolve, reject))));
    }
    // fsetstat: the mode asked for at open is subject to the server's umask.
    ops.push(new Promise<void>((resolve, reject) => s.fsetstat(h, { mode }, cb(resolve, reject))));
    ops.push(new Promise((resolve, reject) => s.ext_openssh_fsync(h, cb(resolve, reject))));
    const closed = closeFile(s, h);
    const results = await Promise.allSettled([...ops, closed]);
    const bad = results.find((r) => r.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
    await new Promise<void>((resolve, reject) => s.ext_openssh_rename(tmp, path, cb(resolve, reject)));
    created = false;
  } catch (err) {
    if (created) await new Promise<void>((resolve) => s.unlink(tmp, () => resolve()));
    if ((err as SftpErr).code === SFTP_FAILURE) {
      const vfs = await statvfs(s, dirOf(path)).catch(() => undefined);
      if (vfs && vfs.bavail * vfs.frsize < bytes.length + 4096)
        throw new DiskFullError(
          node,
          `disk full: ${dirOf(path)} on the node has ${vfs.bavail * vfs.frsize} bytes free, ${bytes.length} needed; free space there and rerun (the old file is unchanged)`,
          { cause: err },
        );
    }
    throw new NodeSshError(
      node,
      `writing ${path} failed: ${(err as Error).message} (the old file is unchanged)`,
      { cause: err },
    );
  }
}

export interface ExecOutput {
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/** Runs a command over an exec channel; output captured up to `limit` bytes per stream. */
export function execRemote(
  client: Client,
  command: string,
  opts: { limit: number; signal: AbortSignal },
): Promise<ExecOutput> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch: ClientChannel) => {
      if (err) return reject(err);
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let outN = 0;
      let errN = 0;
      let truncated = false;
      const take = (list: Buffer[], n: number, d: Buffer) => {
        const room = opts.limit - n;
        if (room <= 0) {
          truncated = true;
          return 0;
        }
        if (d.length > room) truncated = true;
        list.push(d.subarray(0, room));
        return Math.min(room, d.length);
      };
      ch.on('data', (d: Buffer) => {
        outN += take(out, outN, d);
      });
      ch.stderr.on('data', (d: Buffer) => {
        errN += take(errs, errN, d);
      });
      let code: number | null = null;
      let sig: string | undefined;
      ch.on('exit', (c: number | null, s?: string) => {
        code = c;
        sig = s ?? undefined;
      });
      const onAbort = () => ch.close();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      ch.on('close', () => {
        opts.signal.removeEventListener('abort', onAbort);
        if (opts.signal.aborted) return reject(new Error('remote command timed out'));
        resolve({
          code,
          ...(sig ? { signal: sig } : {}),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(errs).toString('utf8'),
          truncated,
        });
      });
    });
  });
}
