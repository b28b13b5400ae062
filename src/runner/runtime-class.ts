/**
 * RuntimeClass: validating RuntimeClass objects (docs/kubelet-parity.md §6.1),
 * resolving a pod's runtimeClassName to a node handler (§6.3; docs/node-runner.md),
 * and finding out, once, whether the node can actually run a handler's OCI runtime.
 *
 * The pure part (validation and lookup) is separate from the probe (I/O).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PullkeeperError } from '../core/errors.js';
import type { RuntimeClassObject } from './pod.js';
import { mkdirPrivate } from './private-fs.js';

const execFileP = promisify(execFile);

export const HANDLER_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A RuntimeClass object we refuse (alpha form, bad handler, bad name). */
export class RuntimeClassError extends PullkeeperError {}

/** An OCI runtime binary the node config maps a handler name to. */
export interface RuntimeHandlerConfig {
  /** Binary name or absolute path, e.g. `runc` or `/usr/bin/crun`. */
  binary: string;
  /** Global flags put before the subcommand (e.g. `--systemd-cgroup`). */
  globalArgs?: string[];
}

/** The node's handler table: the `""` handler (no runtimeClassName) is `defaultHandler`. */
export interface NodeRuntimeConfig {
  defaultHandler: string;
  handlers: Record<string, RuntimeHandlerConfig>;
}

export const DEFAULT_NODE_RUNTIMES: NodeRuntimeConfig = {
  defaultHandler: 'runc',
  handlers: { runc: { binary: 'runc' }, crun: { binary: 'crun' } },
};

const API_VERSIONS = ['node.k8s.io/v1', 'node.k8s.io/v1beta1'];

export const ALPHA_ADVICE =
  'node.k8s.io/v1alpha1 is gone: write the class as node.k8s.io/v1 with a top-level "handler" field ' +
  '(renamed from spec.runtimeHandler in v1beta1), which is required and must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (a DNS label)';

/**
 * Validates one RuntimeClass object and returns its handler. Refused: the alpha
 * form (`spec.runtimeHandler` or `node.k8s.io/v1alpha1`), another apiVersion,
 * a name that is not a DNS subdomain, a missing handler or one that is not a
 * DNS label (max 63 characters).
 *
 * @example
 * validateRuntimeClass({ apiVersion: 'node.k8s.io/v1', metadata: { name: 'gvisor' }, handler: 'runsc' }); // 'runsc'
 */
export function validateRuntimeClass(rc: RuntimeClassObject): string {
  const name = rc.metadata.name;
  if (rc.spec?.runtimeHandler !== undefined || rc.apiVersion === 'node.k8s.io/v1alpha1') {
    throw new RuntimeClassError(
      `RuntimeClass "${name}" uses the alpha form (spec.runtimeHandler); ${ALPHA_ADVICE}`,
    );
  }
  if (!API_VERSIONS.includes(rc.apiVersion)) {
    throw new RuntimeClassError(
      `RuntimeClass "${name}": apiVersion ${rc.apiVersion} is not supported; use node.k8s.io/v1 (or v1beta1)`,
    );
  }
  if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
    throw new RuntimeClassError(`RuntimeClass "${name}": metadata.name must be a DNS-1123 subdomain`);
  }
  const handler = rc.handler;
  if (typeof handler !== 'string' || handler === '') {
    throw new RuntimeClassError(
      `RuntimeClass "${name}": handler is required; set a top-level "handler" naming a runtime handler of the node`,
    );
  }
  if (handler.length > 63 || !HANDLER_PATTERN.test(handler)) {
    throw new RuntimeClassError(
      `RuntimeClass "${name}": handler "${handler}" is not a DNS label; it must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ and be at most 63 characters`,
    );
  }
  return handler;
}

/** Why a handler cannot run (from {@link probeRuntime}). */
export type HandlerAvailability = { ok: true; version: string } | { ok: false; reason: string };

export type HandlerResolution =
  | { ok: true; handler: string; runtime: RuntimeHandlerConfig; className?: string }
  | { ok: false; reason: 'FailedCreatePodSandBox'; message: string };

/**
 * Kubelet's `LookupRuntimeHandler` plus the node's handler table: which OCI
 * runtime runs the pod, or the FailedCreatePodSandBox message (kubelet's
 * text, then what to do). `availability(handler)` is the probe result.
 *
 * @example
 * resolveRuntimeHandler(undefined, {}, DEFAULT_NODE_RUNTIMES, () => ({ ok: true, version: '1.1.5' }));
 * // { ok: true, handler: 'runc', runtime: { binary: 'runc' } }
 */
export function resolveRuntimeHandler(
  className: string | undefined,
  classes: Record<string, RuntimeClassObject>,
  node: NodeRuntimeConfig,
  availability: (handler: string) => HandlerAvailability,
): HandlerResolution {
  const fail = (detail: string): HandlerResolution => ({
    ok: false,
    reason: 'FailedCreatePodSandBox',
    message: `Failed to create pod sandbox: ${detail}`,
  });
  const configured = Object.keys(node.handlers).sort().join(', ');
  let handler = node.defaultHandler;
  if (className) {
    const rc = classes[className];
    if (rc === undefined) {
      return fail(
        `runtimeclasses.node.k8s.io "${className}" not found; create RuntimeClass "${className}" (node.k8s.io/v1, handler: one of ${configured}) or remove spec.runtimeClassName`,
      );
    }
    try {
      handler = validateRuntimeClass(rc);
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  const runtime = node.handlers[handler];
  const named = className
    ? `RuntimeClass "${className}" names handler "${handler}"`
    : `default handler "${handler}"`;
  if (runtime === undefined) {
    return fail(
      `${named}, which is not configured on this node (configured: ${configured}); add it under runtimeHandlers in the node config or use another RuntimeClass`,
    );
  }
  const avail = availability(handler);
  if (!avail.ok) {
    return fail(
      `${named} (${runtime.binary}), which this node cannot run: ${avail.reason}; map "${handler}" to a working OCI runtime in the node config or use another RuntimeClass`,
    );
  }
  return { ok: true, handler, runtime, ...(className ? { className } : {}) };
}

// ---------------------------------------------------------------------------
// Probe (I/O): `<binary> --version`, then a trivial container, once per binary
// ---------------------------------------------------------------------------

const memo = new Map<string, Promise<HandlerAvailability>>();

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

/**
 * Can `runtime` run a container on this node? Runs `--version`, then a
 * container of `/bin/true` on a rootfs made of read-only binds of the host's
 * /usr. The answer is cached in memory and in `<cacheDir>/handlers.json`
 * (keyed by the binary's path and mtime), so each binary is probed once.
 */
export async function probeRuntime(
  runtime: RuntimeHandlerConfig,
  cacheDir: string,
  signal?: AbortSignal,
): Promise<HandlerAvailability> {
  const key = JSON.stringify([runtime.binary, runtime.globalArgs ?? []]);
  let p = memo.get(key);
  if (!p) {
    p = probeUncached(runtime, cacheDir, key, signal);
    memo.set(key, p);
  }
  return p;
}

async function resolveBinary(binary: string): Promise<string | undefined> {
  if (binary.includes('/')) return binary;
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir, binary);
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {}
  }
  return undefined;
}

async function probeUncached(
  runtime: RuntimeHandlerConfig,
  cacheDir: string,
  key: string,
  signal?: AbortSignal,
): Promise<HandlerAvailability> {
  const path = await resolveBinary(runtime.binary);
  if (path === undefined)
    return { ok: false, reason: `${runtime.binary} is not installed (not found in PATH)` };
  let mtime: number;
  try {
    mtime = (await stat(path)).mtimeMs;
  } catch (err) {
    return { ok: false, reason: `${path}: ${(err as Error).message}` };
  }
  const cacheFile = join(cacheDir, 'handlers.json');
  const cacheKey = `${key}@${mtime}`;
  let cache: Record<string, HandlerAvailability> = {};
  try {
    cache = JSON.parse(await readFile(cacheFile, 'utf8')) as Record<string, HandlerAvailability>;
    const hit = cache[cacheKey];
    if (hit) return hit;
  } catch {}
  const result = await probeNow(path, runtime.globalArgs ?? [], cacheDir, signal);
  cache[cacheKey] = result;
  await mkdirPrivate(cacheDir);
  await writeFile(cacheFile, JSON.stringify(cache, null, 2), { mode: 0o600 });
  return result;
}

async function probeNow(
  binary: string,
  globalArgs: string[],
  cacheDir: string,
  signal?: AbortSignal,
): Promise<HandlerAvailability> {
  let version: string;
  try {
    const { stdout } = await execFileP(binary, ['--version'], { timeout: 10_000, signal });
    version = firstLine(stdout);
  } catch (err) {
    return { ok: false, reason: `${binary} --version failed: ${firstLine((err as Error).message)}` };
  }
  const dir = join(cacheDir, `probe-${process.pid}-${Date.now()}`);
  const rootfs = join(dir, 'rootfs');
  const id = `pkr-probe-${process.pid}-${Date.now()}`;
  try {
    await mkdirPrivate(dir);
    await mkdir(join(rootfs, 'usr'), { recursive: true });
    for (const l of ['bin', 'lib', 'lib64', 'sbin']) await symlink(`usr/${l}`, join(rootfs, l));
    const spec = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/true'], env: [], cwd: '/' },
      root: { path: 'rootfs', readonly: true },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/usr', type: 'bind', source: '/usr', options: ['rbind', 'ro'] },
      ],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
    };
    await writeFile(join(dir, 'config.json'), JSON.stringify(spec));
    await execFileP(binary, [...globalArgs, '--root', join(dir, 'state'), 'run', '--bundle', dir, id], {
      timeout: 20_000,
      signal,
    });
    return { ok: true, version };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = firstLine(e.stderr ?? '') || firstLine(e.message);
    return { ok: false, reason: `a test container failed to run: ${why}` };
  } finally {
    await execFileP(binary, [...globalArgs, '--root', join(dir, 'state'), 'delete', '--force', id], {
      timeout: 15_000,
    }).catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Forgets the in-memory probe results (tests). */
export function clearProbeMemo(): void {
  memo.clear();
}
