/**
 * OCI bundles: the runtime spec of one container (pure) and its rootfs, an
 * overlay of the image's read-only layer directories with a per-container
 * writable upper dir, so no container ever writes into the image store.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PullkeeperError } from '../core/errors.js';
import type { OciSeccomp } from '../core/seccomp-default.js';
import type { ContainerSecurity } from '../core/security-context.js';
import { mkdirPrivate, writePrivateFile } from './private-fs.js';

const execFileP = promisify(execFile);

/** The rootfs could not be mounted or unmounted. */
export class BundleError extends PullkeeperError {}

export interface ContainerSpecInput {
  /** Final argv (kubelet's command/args over the image's Entrypoint/Cmd). */
  args: string[];
  /** Final `KEY=VALUE` list (containerProcessEnv). */
  env: string[];
  cwd: string;
  /** The container's securityContext, decided (core/security-context.ts). */
  security: ContainerSecurity;
  /** The seccomp profile to load, or undefined for Unconfined. */
  seccomp?: OciSeccomp;
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

/** The OCI runtime spec (config.json) of one pod container. */
export function buildOciSpec(input: ContainerSpecInput): Record<string, unknown> {
  const sec = input.security;
  const caps = [...sec.capabilities];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: {
        uid: sec.uid,
        gid: sec.gid,
        ...(sec.additionalGids.length > 0 ? { additionalGids: sec.additionalGids } : {}),
      },
      args: input.args,
      env: input.env,
      cwd: input.cwd || '/',
      // containerd sets bounding, effective and permitted (not inheritable or ambient).
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: sec.noNewPrivileges,
    },
    root: { path: input.rootfs, readonly: sec.readonlyRootfs },
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
      {
        destination: '/sys',
        type: 'sysfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', sec.privileged ? 'rw' : 'ro'],
      },
    ],
    linux: {
      ...(input.cgroupsPath ? { cgroupsPath: input.cgroupsPath } : {}),
      ...(input.seccomp ? { seccomp: input.seccomp } : {}),
      resources: { devices: [{ allow: sec.privileged, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network', path: input.netnsPath },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
      ],
      // A privileged container sees /proc and /sys unmasked and writable (containerd WithPrivileged).
      maskedPaths: sec.privileged
        ? []
        : [
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
      readonlyPaths: sec.privileged
        ? []
        : ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
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

/**
 * Creates the bundle dir, mounts the overlay rootfs and writes config.json
 * (0600: it holds the resolved env). Everything is created root-only, except
 * the upper dir, whose mode becomes the mode of the container's `/` (overlayfs
 * takes the root's attributes from it): it gets the top layer's root mode, and
 * stays unreachable from the host behind the 0700 container dir.
 */
export async function createBundle(
  paths: BundlePaths,
  layers: string[],
  spec: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<void> {
  await Promise.all([paths.rootfs, paths.work].map((d) => mkdirPrivate(d)));
  await mkdir(paths.upper, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const top = layers.at(-1);
  const rootMode = top ? (await stat(top).catch(() => undefined))?.mode : undefined;
  await chmod(paths.upper, rootMode === undefined ? 0o755 : rootMode & 0o7777);
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
  const config = join(paths.dir, 'config.json');
  await rm(config, { force: true });
  await writePrivateFile(config, JSON.stringify(spec, null, 2));
}

/** Unmounts the rootfs (lazily, so a leftover process cannot block it); a rootfs not mounted is fine. */
export async function removeBundleMount(paths: BundlePaths): Promise<void> {
  await execFileP('umount', ['-l', paths.rootfs], { timeout: 15_000 }).catch(() => {});
}
