/**
 * Test-side SSH helpers for the harness nodes: connect with the host key
 * pinned (sha256 of the key blob, hex), SFTP read/write/rename, exec.
 * Uses the fast settings docs/harness.md measured: own socket with no delayed
 * ACKs, curve25519 key exchange.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Client, SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';
import type { NodeInfo, NodesInfo } from './index.js';

export const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function sshConnect(info: NodesInfo, node: NodeInfo, pin = node.hostKeySha256): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: node.address, port: node.port });
    sock.setNoDelay(true);
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    client.once('error', (err) => {
      client.end();
      reject(err);
    });
    client.connect({
      sock,
      username: info.user,
      privateKey: readFileSync(info.clientKey.privateKeyPath),
      hostVerifier: (key: Buffer) => sha256hex(key) === pin,
      algorithms: { kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'] },
      readyTimeout: 10_000,
    });
  });
}

export function sftpOf(c: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
}
export const sftpWrite = (s: SFTPWrapper, path: string, data: string | Buffer) =>
  new Promise<void>((resolve, reject) => s.writeFile(path, data, (err) => (err ? reject(err) : resolve())));
export const sftpRead = (s: SFTPWrapper, path: string) =>
  new Promise<Buffer>((resolve, reject) => s.readFile(path, (err, d) => (err ? reject(err) : resolve(d))));
export const sftpRename = (s: SFTPWrapper, from: string, to: string) =>
  new Promise<void>((resolve, reject) =>
    s.ext_openssh_rename(from, to, (err) => (err ? reject(err) : resolve())),
  );
export const sshExec = (c: Client, cmd: string) =>
  new Promise<string>((resolve, reject) =>
    c.exec(cmd, (err, ch) => {
      if (err) return reject(err);
      let out = '';
      ch.on('data', (d: Buffer) => {
        out += d;
      });
      ch.stderr.resume();
      ch.on('close', () => resolve(out));
    }),
  );

/** Connect, run fn over SFTP, disconnect. */
export async function withSftp<T>(
  info: NodesInfo,
  node: NodeInfo,
  fn: (s: SFTPWrapper, c: Client) => Promise<T>,
) {
  const c = await sshConnect(info, node);
  try {
    return await fn(await sftpOf(c), c);
  } finally {
    c.end();
  }
}
