/**
 * The state directory of the runner: one small directory per pod, read by
 * later commands (`stop`, `describe`, `logs`, `ps`).
 *
 * Everything below the root holds pod data (Secret values in plan.json and the
 * bundles' config.json, logs): directories are 0700 and files 0600, owned by
 * root (private-fs.ts); the root itself is made private before each run.
 *
 *   <root>/pods/<namespace>_<name>/
 *     pod.json         the Pod as parsed (written first by `run`)
 *     plan.json        what to run (written by `run`, read by the supervisor)
 *     status.json      phase and container states (written by the supervisor, atomically)
 *     events.jsonl     one PodEvent per line, appended
 *     control.sock     the supervisor's control socket (while it lives)
 *     logs/<c>.log     container output (and <c>.log.1, the previous file, past the size cap)
 *     containers/<c>/  bundle/ (config.json, rootfs mount), upper/, work/
 *   <root>/runtime/<handler>/   the OCI runtime's --root
 *   <root>/ipam/<ip>            one file per pod IP in use
 *   <root>/handlers.json        cached runtime probes
 */
import { readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { PullkeeperError } from '../core/errors.js';
import type { PodEvent } from './events.js';
import type { PlannedPod } from './plan.js';
import { DNS_LABEL, DNS_SUBDOMAIN, type PodManifest } from './pod.js';
import { appendPrivateFile, mkdirPrivate, writePrivateFile } from './private-fs.js';

/** No such pod in the state dir. */
export class PodNotFoundError extends PullkeeperError {}

export { DEFAULT_STATE_ROOT } from './defaults.js';

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

/** When each step of a container's last kill sequence happened (ms since epoch). */
export interface KillTimeline {
  killingAt: number;
  preStopEndedAt?: number;
  termAt?: number;
  killAt?: number;
  exitedAt?: number;
  /** Seconds between TERM and KILL that were granted. */
  graceSeconds: number;
}

export interface ContainerStatus {
  name: string;
  state: 'waiting' | 'running' | 'terminated';
  reason?: string;
  exitCode?: number;
  startedAt?: string;
  finishedAt?: string;
  ready: boolean;
  restartCount: number;
  lastKill?: KillTimeline;
}

export interface PodStatus {
  phase: PodPhase;
  reason?: string;
  message?: string;
  podIP?: string;
  startTime?: string;
  supervisorPid?: number;
  /** True once the supervisor has released the sandbox (containers deleted, mounts and netns removed). */
  cleanedUp?: boolean;
  containers: ContainerStatus[];
}

/** A pod reference or key that is not a namespace (DNS label) and a pod name (DNS subdomain). */
export class PodRefError extends PullkeeperError {}

/**
 * Whether `key` is `<namespace>_<name>` with the same rules as a Pod's
 * metadata (namespace a DNS-1123 label, name a DNS-1123 subdomain): no `/`,
 * no `..`, so a key always names one directory under `<root>/pods`.
 */
export function isValidPodKey(key: string): boolean {
  const i = key.indexOf('_');
  if (i <= 0) return false;
  const ns = key.slice(0, i);
  const name = key.slice(i + 1);
  return ns.length <= 63 && DNS_LABEL.test(ns) && name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

/** `ns/name` or `name` (namespace `default`) -> the pod's directory key; throws {@link PodRefError} for anything else. */
export function podKey(ref: string): string {
  const parts = ref.includes('/') ? ref.split('/') : ['default', ref];
  const key = parts.length === 2 ? `${parts[0]}_${parts[1]}` : '';
  if (!isValidPodKey(key)) {
    throw new PodRefError(
      `"${ref}" is not a pod: give NAME or NAMESPACE/NAME (a DNS-1123 namespace and pod name); \`pullkeeper-node ps\` lists the pods`,
    );
  }
  return key;
}

export class PodDir {
  constructor(
    readonly root: string,
    readonly key: string,
  ) {}

  static of(root: string, ref: string): PodDir {
    return new PodDir(root, podKey(ref));
  }

  get dir(): string {
    return join(this.root, 'pods', this.key);
  }
  get planFile(): string {
    return join(this.dir, 'plan.json');
  }
  get manifestFile(): string {
    return join(this.dir, 'pod.json');
  }
  get statusFile(): string {
    return join(this.dir, 'status.json');
  }
  get eventsFile(): string {
    return join(this.dir, 'events.jsonl');
  }
  get socket(): string {
    return join(this.dir, 'control.sock');
  }
  logFile(container: string): string {
    return join(this.dir, 'logs', `${container}.log`);
  }
  containerDir(container: string): string {
    return join(this.dir, 'containers', container);
  }

  async writePlan(plan: PlannedPod): Promise<void> {
    await mkdirPrivate(join(this.dir, 'logs'));
    await atomicWrite(this.planFile, JSON.stringify(plan, null, 2));
  }

  async writeManifest(pod: PodManifest): Promise<void> {
    await mkdirPrivate(join(this.dir, 'logs'));
    await atomicWrite(this.manifestFile, JSON.stringify(pod, null, 2));
  }

  async readManifest(): Promise<PodManifest> {
    try {
      return JSON.parse(await readFile(this.manifestFile, 'utf8')) as PodManifest;
    } catch (err) {
      throw new PodNotFoundError(
        `pod ${this.key.replace('_', '/')} not found in ${this.root}; \`pullkeeper-node ps\` lists the pods`,
        { cause: err },
      );
    }
  }

  async readPlan(): Promise<PlannedPod> {
    try {
      return JSON.parse(await readFile(this.planFile, 'utf8')) as PlannedPod;
    } catch (err) {
      throw new PodNotFoundError(
        `pod ${this.key.replace('_', '/')} not found in ${this.root}; \`pullkeeper-node ps\` lists the pods`,
        { cause: err },
      );
    }
  }

  async writeStatus(status: PodStatus): Promise<void> {
    await atomicWrite(this.statusFile, JSON.stringify(status, null, 2));
  }

  async readStatus(): Promise<PodStatus | undefined> {
    try {
      return JSON.parse(await readFile(this.statusFile, 'utf8')) as PodStatus;
    } catch {
      return undefined;
    }
  }

  async appendEvent(e: PodEvent): Promise<void> {
    await appendLine(this.eventsFile, JSON.stringify(e));
  }

  async readEvents(): Promise<PodEvent[]> {
    let text: string;
    try {
      text = await readFile(this.eventsFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as PodEvent);
  }
}

/** Writes in flight per path: writes to one file go in call order, so the last call's data wins. */
const writesInFlight = new Map<string, Promise<void>>();
let tmpCounter = 0;

/** Runs `write` after every earlier write to `path` (from this process) has settled. */
function inOrder(path: string, write: () => Promise<void>): Promise<void> {
  const prev = writesInFlight.get(path) ?? Promise.resolve();
  const next = prev.catch(() => undefined).then(write);
  writesInFlight.set(path, next);
  void next
    .finally(() => {
      if (writesInFlight.get(path) === next) writesInFlight.delete(path);
    })
    .catch(() => undefined);
  return next;
}

export function atomicWrite(path: string, data: string): Promise<void> {
  // One temp name per write: two overlapping writes of the same file must not share (and lose) one temp file.
  const tmp = `${path}.${process.pid}.${++tmpCounter}.tmp`;
  return inOrder(path, async () => {
    await writePrivateFile(tmp, data);
    await rename(tmp, path);
  });
}

/**
 * Appends a line to `path`, after every earlier append from this process. Two overlapping
 * `appendFile` calls run on libuv's thread pool and may land in either order.
 */
export function appendLine(path: string, line: string): Promise<void> {
  return inOrder(path, () => appendPrivateFile(path, `${line}\n`));
}

/** Every pod directory under `root`. */
export async function listPodDirs(root: string): Promise<PodDir[]> {
  try {
    const names = await readdir(join(root, 'pods'));
    return names.sort().map((n) => new PodDir(root, n));
  } catch {
    return [];
  }
}
