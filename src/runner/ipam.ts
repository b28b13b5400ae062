/**
 * Pod IPs of the node bridge's /24: one file per IP in use under
 * `<state>/ipam`, created exclusively, holding the pod key that owns it.
 */
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PullkeeperError } from '../core/errors.js';
import { mkdirPrivate } from './private-fs.js';

/** No pod IP is free. */
export class IpamError extends PullkeeperError {}

/** Reserves a free pod IP in the /24 (one file per IP under `<root>/ipam`). */
export async function allocatePodIP(stateRoot: string, subnet: string, owner: string): Promise<string> {
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  const dir = join(stateRoot, 'ipam');
  await mkdirPrivate(dir);
  const used = new Set(await readdir(dir));
  for (let i = 2; i < 255; i++) {
    const ip = `${base}.${i}`;
    if (used.has(ip)) continue;
    try {
      await writeFile(join(dir, ip), owner, { flag: 'wx', mode: 0o600 });
      return ip;
    } catch {}
  }
  throw new IpamError(`no free pod IP left in ${subnet}; stop some pods (\`pullkeeper-node ps\`)`);
}

export async function releasePodIP(stateRoot: string, ip: string, owner: string): Promise<void> {
  const f = join(stateRoot, 'ipam', ip);
  try {
    if ((await readFile(f, 'utf8')) === owner) await rm(f, { force: true });
  } catch {}
}
