/**
 * The pod sandbox's network: one network namespace per pod (`pkr-pod-<hash>`),
 * loopback up, and a veth (`pkr-<hash>`) on the node bridge (`pkr-br0`,
 * `<subnet>.1/24`) that gives the pod its IP. The node reaches the pod IP
 * over the bridge (httpGet hooks); nothing is routed or NATed beyond it.
 */
import { spawn } from 'node:child_process';
import { PullkeeperError } from '../core/errors.js';

/** The sandbox could not be created. */
export class SandboxError extends PullkeeperError {}

function ipBatch(
  args: string[],
  commands: string[],
  signal?: AbortSignal,
): Promise<{ code: number; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', [...args, '-batch', '-'], {
      stdio: ['pipe', 'ignore', 'pipe'],
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(15_000)]) : AbortSignal.timeout(15_000),
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, err: err.trim() }));
    child.stdin.end(`${commands.join('\n')}\n`);
  });
}

export interface SandboxNet {
  netns: string;
  vethHost: string;
  bridge: string;
  podIP: string;
  gateway: string;
}

/** Creates the bridge if needed, then the pod's netns and veth. */
export async function createSandboxNet(s: SandboxNet, signal?: AbortSignal): Promise<void> {
  // The bridge is shared by all pods; concurrent creators may race, so errors here are checked below.
  await ipBatch(
    ['-force'],
    [
      `link add ${s.bridge} type bridge`,
      `addr add ${s.gateway}/24 dev ${s.bridge}`,
      `link set ${s.bridge} up`,
    ],
    signal,
  );
  const host = await ipBatch(
    [],
    [
      `netns add ${s.netns}`,
      `link add ${s.vethHost} type veth peer name eth0 netns ${s.netns}`,
      `link set ${s.vethHost} master ${s.bridge} up`,
    ],
    signal,
  );
  if (host.code !== 0) {
    await removeSandboxNet(s);
    throw new SandboxError(
      `could not create the pod network namespace ${s.netns}: ${host.err}; run as root with iproute2`,
    );
  }
  const inner = await ipBatch(
    ['-n', s.netns],
    [
      'link set lo up',
      `addr add ${s.podIP}/24 dev eth0`,
      'link set eth0 up',
      `route add default via ${s.gateway}`,
    ],
    signal,
  );
  if (inner.code !== 0) {
    await removeSandboxNet(s);
    throw new SandboxError(`could not configure the network of ${s.netns}: ${inner.err}`);
  }
}

/** Removes the pod's netns (its veth goes with it); missing pieces are fine. The bridge stays. */
export async function removeSandboxNet(s: SandboxNet): Promise<void> {
  await ipBatch(['-force'], [`link del ${s.vethHost}`, `netns del ${s.netns}`]).catch(() => {});
}
