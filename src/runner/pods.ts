/**
 * The runner's use cases: run a pod (plan, then hand it to a supervisor),
 * stop it, and read what later commands show (describe, ps, logs).
 *
 * A supervisor is either a detached process per pod (the default) or a pod
 * hosted by `pullkeeper-node daemon` when its socket (`<root>/daemon.sock`)
 * answers.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PullkeeperError } from '../core/errors.js';
import { bundlePaths, removeBundleMount } from './bundle.js';
import type { PodEvent } from './events.js';
import type { ImageSource } from './image-source.js';
import { releasePodIP } from './ipam.js';
import { type NodeConfig, type PlannedPod, PodStartError, planPod } from './plan.js';
import type { ParsedManifest } from './pod.js';
import { isValidPodKey, listPodDirs, PodDir, type PodStatus } from './pod-state.js';
import { openPrivateAppendSync, prepareStateRoot } from './private-fs.js';
import { removeSandboxNet } from './sandbox.js';
import { PodSupervisor } from './supervisor.js';

const execFileP = promisify(execFile);

/** A supervisor did not answer or the pod is in a state that forbids the request. */
export class PodControlError extends PullkeeperError {}

/** One JSON request, one JSON reply, over a unix socket. */
export function askSocket(path: string, req: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PodControlError(`no answer on ${path} within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (b) => {
      buf += b.toString();
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as Record<string, unknown>);
      } catch (err) {
        reject(new PodControlError(`bad answer on ${path}: ${buf.slice(0, 200)}`, { cause: err }));
      }
    });
  });
}

async function supervisorAlive(pod: PodDir): Promise<boolean> {
  try {
    await askSocket(pod.socket, { op: 'status' }, 5_000);
    return true;
  } catch {
    return false;
  }
}

/** Releases what a dead supervisor left behind (containers, mounts, netns, IP). */
export async function cleanupStale(pod: PodDir): Promise<void> {
  let plan: PlannedPod;
  try {
    plan = await pod.readPlan();
  } catch {
    return;
  }
  const rt = [...plan.runtime.globalArgs, '--root', plan.runtime.root];
  for (const c of plan.containers) {
    await execFileP(plan.runtime.binary, [...rt, 'delete', '--force', c.id], { timeout: 15_000 }).catch(
      () => {},
    );
    await removeBundleMount(bundlePaths(pod.containerDir(c.name)));
  }
  await removeSandboxNet({
    netns: plan.netns,
    vethHost: plan.vethHost,
    bridge: plan.bridge,
    podIP: plan.podIP,
    gateway: plan.gateway,
  });
  await releasePodIP(pod.root, plan.podIP, pod.key);
  const status = await pod.readStatus();
  if (status && !status.cleanedUp) {
    for (const c of status.containers)
      if (c.state !== 'terminated')
        Object.assign(c, { state: 'terminated', ready: false, reason: 'Unknown' });
    if (status.phase === 'Running' || status.phase === 'Pending') status.phase = 'Failed';
    status.cleanedUp = true;
    delete status.supervisorPid;
    await pod.writeStatus(status);
  }
}

export interface RunResult {
  plan?: PlannedPod;
  status: PodStatus;
  events: PodEvent[];
  /** The state dir had to be made private (prepareStateRoot); shown on stderr by the CLI. */
  warnings: string[];
}

/** The supervisor's entry: built beside this code in dist/ (scripts/build.mjs), else the source through tsx (a checkout). */
function supervisorArgs(): string[] {
  const built = fileURLToPath(new URL('./supervisor-main.mjs', import.meta.url));
  if (existsSync(built)) return [built];
  return [
    '--import',
    import.meta.resolve('tsx'),
    fileURLToPath(new URL('./supervisor-main.ts', import.meta.url)),
  ];
}

function spawnSupervisor(pod: PodDir, timeoutMs: number): Promise<Record<string, unknown>> {
  const logFd = openPrivateAppendSync(join(pod.dir, 'supervisor.log'));
  const child = spawn(process.execPath, [...supervisorArgs(), pod.root, pod.key], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
  });
  closeSync(logFd);
  child.unref();
  const report = child.stdio[3] as NodeJS.ReadableStream & { unref?: () => void; destroy: () => void };
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      report.destroy();
      reject(
        new PodControlError(
          `the pod supervisor did not report within ${timeoutMs / 1000} s; see ${pod.dir}/supervisor.log`,
        ),
      );
    }, timeoutMs);
    report.on('data', (b: Buffer) => {
      buf += b.toString();
    });
    report.on('end', () => {
      clearTimeout(timer);
      report.destroy();
      try {
        resolve(JSON.parse(buf) as Record<string, unknown>);
      } catch {
        reject(
          new PodControlError(`the pod supervisor exited without a report; see ${pod.dir}/supervisor.log`),
        );
      }
    });
  });
}

/** `run`: plan the pod (events recorded), then start it under a supervisor; resolves once it is Running or failed. */
export async function runPod(opts: {
  manifest: ParsedManifest;
  node: NodeConfig;
  images: ImageSource;
  signal?: AbortSignal;
  startTimeoutMs?: number;
}): Promise<RunResult> {
  const pod = opts.manifest.pod;
  if (!pod) throw new PodControlError('the manifest has no Pod (kind: Pod); give a Pod manifest');
  const warnings = await prepareStateRoot(opts.node.stateRoot);
  const dir = PodDir.of(opts.node.stateRoot, `${pod.metadata.namespace}/${pod.metadata.name}`);
  if (await supervisorAlive(dir)) {
    throw new PodControlError(
      `pod ${pod.metadata.namespace}/${pod.metadata.name} is already running; stop it first (\`pullkeeper-node stop ${pod.metadata.name}\`)`,
    );
  }
  await cleanupStale(dir);
  await rm(dir.dir, { recursive: true, force: true });
  await dir.writeManifest(pod);
  const events: Array<Promise<void>> = [];
  const emit = (e: Omit<PodEvent, 'time'>) =>
    events.push(dir.appendEvent({ time: new Date().toISOString(), ...e }));
  let plan: PlannedPod;
  try {
    plan = await planPod({
      pod,
      unsupported: opts.manifest.unsupported,
      objects: opts.manifest.objects,
      node: opts.node,
      images: opts.images,
      emit,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    await Promise.all(events);
    if (!(err instanceof PullkeeperError)) throw err;
    const status: PodStatus = {
      phase: 'Failed',
      reason: err instanceof PodStartError ? 'PodStartError' : err.name,
      message: err.message,
      cleanedUp: true,
      containers: pod.spec.containers.map((c) => ({
        name: c.name,
        state: 'waiting',
        reason:
          err instanceof PodStartError && err.waiting?.container === c.name
            ? err.waiting.reason
            : 'ContainerCreating',
        ready: false,
        restartCount: 0,
      })),
    };
    await dir.writeStatus(status);
    return { status, events: await dir.readEvents(), warnings };
  }
  await Promise.all(events);
  await dir.writePlan(plan);
  const timeout = opts.startTimeoutMs ?? 120_000;
  const daemonSock = join(opts.node.stateRoot, 'daemon.sock');
  let reply: Record<string, unknown>;
  try {
    reply = await askSocket(daemonSock, { op: 'run', key: dir.key }, timeout);
  } catch (err) {
    if (err instanceof PodControlError) throw err;
    reply = await spawnSupervisor(dir, timeout);
  }
  if (reply.ok !== true) throw new PodControlError(`the pod supervisor failed: ${String(reply.error)}`);
  return { plan, status: reply.status as PodStatus, events: await dir.readEvents(), warnings };
}

/** `stop`: the kill sequence through the supervisor, or a cleanup of what a dead one left. */
export async function stopPod(root: string, ref: string, timeoutMs?: number): Promise<PodStatus | undefined> {
  const dir = PodDir.of(root, ref);
  await dir.readManifest();
  let plan: PlannedPod;
  try {
    plan = await dir.readPlan();
  } catch {
    return dir.readStatus(); // never started: nothing to stop
  }
  const wait = timeoutMs ?? (plan.terminationGracePeriodSeconds + 60) * 1000;
  try {
    const reply = await askSocket(dir.socket, { op: 'stop' }, wait);
    if (reply.ok !== true) throw new PodControlError(`stop failed: ${String(reply.error)}`);
  } catch (err) {
    if (err instanceof PodControlError) throw err;
    await cleanupStale(dir);
  }
  return dir.readStatus();
}

export interface PodSummary {
  name: string;
  namespace: string;
  phase: string;
  ready: string;
  restarts: number;
  podIP?: string;
  runtimeHandler?: string;
  createdAt?: string;
}

export async function listPods(root: string): Promise<PodSummary[]> {
  const out: PodSummary[] = [];
  for (const dir of await listPodDirs(root)) {
    const status = await dir.readStatus();
    let plan: PlannedPod | undefined;
    try {
      plan = JSON.parse(await readFile(dir.planFile, 'utf8')) as PlannedPod;
    } catch {}
    const [namespace, name] = dir.key.split('_', 2) as [string, string];
    const cs = status?.containers ?? [];
    out.push({
      name,
      namespace,
      phase: status?.phase ?? 'Unknown',
      ready: `${cs.filter((c) => c.ready).length}/${cs.length}`,
      restarts: cs.reduce((n, c) => n + c.restartCount, 0),
      ...(status?.podIP ? { podIP: status.podIP } : {}),
      ...(plan ? { runtimeHandler: plan.runtime.handler, createdAt: plan.createdAt } : {}),
    });
  }
  return out;
}

/** Hosts supervisors in this process (`pullkeeper-node daemon`); resolves when `signal` aborts and its pods are stopped. */
export async function serveDaemon(
  root: string,
  signal: AbortSignal,
  onWarning: (message: string) => void = () => {},
): Promise<void> {
  for (const w of await prepareStateRoot(root)) onWarning(w);
  const sockPath = join(root, 'daemon.sock');
  await rm(sockPath, { force: true });
  const hosted = new Set<PodSupervisor>();
  const server = createServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (b) => {
      buf += b.toString();
      if (!buf.includes('\n')) return;
      let req: { op?: string; key?: string } = {};
      try {
        req = JSON.parse(buf) as typeof req;
      } catch {}
      buf = '';
      if (req.op !== 'run' || typeof req.key !== 'string') {
        sock.end(`${JSON.stringify({ ok: false, error: 'expected {"op":"run","key":...}' })}\n`);
        return;
      }
      // The key names a directory under <root>/pods: the same rules as a pod's namespace and name.
      if (!isValidPodKey(req.key)) {
        sock.end(
          `${JSON.stringify({ ok: false, error: 'invalid pod key: expected NAMESPACE_NAME (a DNS-1123 namespace and pod name)' })}\n`,
        );
        return;
      }
      const sup = new PodSupervisor(new PodDir(root, req.key));
      hosted.add(sup);
      void sup.done.then(() => hosted.delete(sup));
      sup.start().then(
        (status) => sock.end(`${JSON.stringify({ ok: true, status })}\n`),
        (err: Error) => {
          sock.end(`${JSON.stringify({ ok: false, error: err.message })}\n`);
          void sup.stop();
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sockPath, () => resolve());
  });
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  server.close();
  await rm(sockPath, { force: true });
  await Promise.all([...hosted].map((s) => s.stop()));
}
