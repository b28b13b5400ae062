/**
 * OCI bundles: the runtime spec of one container (pure) and its rootfs, an
 * overlay of the image's read-only layer directories with a per-container
 * writable upper dir, so no container ever writes into the image store.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PullkeeperError } from '../core/errors.js';

const execFileP = promisify(execFile);

/** The rootfs could not be mounted or unmounted. */
export class BundleError extends PullkeeperError {}

/** containerd's default capability set for a container (no privileged mode here). */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export interface ContainerSpecInput {
  /** Final argv (kubelet's command/args over the image's Entrypoint/Cmd). */
  args: string[];
  /** Final `KEY=VALUE` list (containerProcessEnv). */
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  hostname: string;
  /** `/var/run/netns/<name>` of the pod sandbox. */
  netnsPath: string;
  /** Relative to the bundle or absolute. */
  rootfs: string;
  cgroupsPath?: string;
}

/**
 * The argv a container runs (kubelet + containerd rules): `command` replaces
 * the image's Entrypoint and drops its Cmd; `args` alone replaces Cmd.
 *
 * @example
 * containerArgv({ command: [], args: ['-c', 'x'] }, { Entrypoint: ['sh'], Cmd: ['-i'] }); // ['sh', '-c', 'x']
 */
export function containerArgv(
  spec: { command: string[]; args: string[] },
  image: { Entrypoint?: string[]; Cmd?: string[] },
): string[] {
  if (spec.command.length > 0) return [...spec.command, ...spec.args];
  const entry = image.Entrypoint ?? [];
  return [...entry, ...(spec.args.length > 0 ? spec.args : (image.Cmd ?? []))];
}

/**
 * Numeric `uid[:gid]` from the image's `User` ('' and `root` are 0:0). Names
 * need the image's /etc/passwd, which is not read: they are refused.
 *
 * @example
 * parseImageUser('1000:1000'); // { uid: 1000, gid: 1000 }
 * parseImageUser('');          // { uid: 0, gid: 0 }
 */
export function parseImageUser(user: string | undefined): { uid: number; gid: number } {
  if (!user || user === 'root' || user === '0') return { uid: 0, gid: 0 };
  const [u, g] = user.split(':');
  const num = /^\d+$/;
  if (!num.test(u ?? '') || (g !== undefined && !num.test(g))) {
    throw new BundleError(
      `image USER "${user}" is not numeric; pullkeeper-node runs numeric users only: rebuild the image with USER <uid>[:<gid>]`,
    );
  }
  return { uid: Number(u), gid: g === undefined ? 0 : Number(g) };
}

/** The OCI runtime spec (config.json) of one pod container. */
export function buildOciSpec(input: ContainerSpecInput): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.uid, gid: input.gid },
      args: input.args,
      env: input.env,
      cwd: input.cwd || '/',
      capabilities: {
        bounding: DEFAULT_CAPABILITIES,
        effective: DEFAULT_CAPABILITIES,
        permitted: DEFAULT_CAPABILITIES,
      },
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      ...(input.cgroupsPath ? { cgroupsPath: input.cgroupsPath } : {}),
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network', path: input.netnsPath },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/**
 * overlayfs mount options for `layers` (base first): the top layer comes first
 * in `lowerdir`. A single layer still needs the upper dir to be writable.
 *
 * @example
 * overlayOptions(['/s/base', '/s/top'], '/c/upper', '/c/work'); // 'lowerdir=/s/top:/s/base,upperdir=/c/upper,workdir=/c/work'
 */
export function overlayOptions(layers: string[], upper: string, work: string): string {
  if (layers.length === 0) throw new BundleError('the image has no layers; pull it again');
  for (const l of layers) {
    if (/[:,]/.test(l)) throw new BundleError(`layer path ${l} contains ':' or ','; move the image store`);
  }
  return `lowerdir=${[...layers].reverse().join(':')},upperdir=${upper},workdir=${work}`;
}

export interface BundlePaths {
  dir: string;
  rootfs: string;
  upper: string;
  work: string;
}

export function bundlePaths(containerDir: string): BundlePaths {
  return {
    dir: join(containerDir, 'bundle'),
    rootfs: join(containerDir, 'bundle', 'rootfs'),
    upper: join(containerDir, 'upper'),
    work: join(containerDir, 'work'),
  };
}

/** Creates the bundle dir, mounts the overlay rootfs and writes config.json. */
export async function createBundle(
  paths: BundlePaths,
  layers: string[],
  spec: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<void> {
  await Promise.all([paths.rootfs, paths.upper, paths.work].map((d) => mkdir(d, { recursive: true })));
  try {
    await execFileP(
      'mount',
      ['-t', 'overlay', 'overlay', '-o', overlayOptions(layers, paths.upper, paths.work), paths.rootfs],
      { timeout: 15_000, signal },
    );
  } catch (err) {
    throw new BundleError(
      `could not mount the container's overlay rootfs at ${paths.rootfs}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}; the runner must run as root on a kernel with overlayfs`,
      { cause: err },
    );
  }
  await writeFile(join(paths.dir, 'config.json'), JSON.stringify(spec, null, 2));
}

/** Unmounts the rootfs (lazily, so a leftover process cannot block it); a rootfs not mounted is fine. */
export async function removeBundleMount(paths: BundlePaths): Promise<void> {
  await execFileP('umount', ['-l', paths.rootfs], { timeout: 15_000 }).catch(() => {});
}
