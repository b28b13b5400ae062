/**
 * The pod supervisor: owns one pod's sandbox and containers for as long as
 * the pod lives, outliving the CLI call that started it.
 *
 * - Each container runs under a foreground `runc run` child, so the container's
 *   exit is this process's child-exit event (no polling; this machine's PID 1
 *   does not reap orphans). The pid file appearing marks the start.
 * - Containers start in order; PostStart runs concurrently with the entrypoint
 *   and the container is Running only when it returns; a failing PostStart
 *   kills the container (FailedPostStartHook).
 * - `stop` (over `control.sock`) runs kubelet's kill sequence on every
 *   container at once: Killing, PreStop within the grace period, TERM, then
 *   KILL after the rest of the grace period (at least 2 s).
 * - Exits per restartPolicy restart with kubelet's crash-loop back-off.
 * - Status (status.json) and events (events.jsonl) go to the pod's state dir.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, renameSync, watch, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bundlePaths, createBundle, removeBundleMount } from './bundle.js';
import { containerFieldPath, Events, type PodEvent, podFullName, redactValues } from './events.js';
import { graceAfterPreStop, type HookContext, MIN_GRACE_SECONDS, runHandler } from './hooks.js';
import { releasePodIP } from './ipam.js';
import type { PlannedContainer, PlannedPod } from './plan.js';
import type { LifecycleHandler } from './pod.js';
import type { ContainerStatus, KillTimeline, PodDir, PodStatus } from './pod-state.js';
import { mkdirPrivate, openPrivateAppendSync } from './private-fs.js';
import { createSandboxNet, removeSandboxNet } from './sandbox.js';

const execFileP = promisify(execFile);

/** Crash-loop back-off (kubelet: 10 s doubling, 300 s cap). */
export function crashLoopBackoffMs(restarts: number): number {
  if (restarts <= 0) return 0;
  return Math.min(10_000 * 2 ** (restarts - 1), 300_000);
}

/**
 * Whether a container that exited is started again.
 *
 * @example
 * shouldRestart('OnFailure', 0); // false
 * shouldRestart('Always', 0);    // true
 */
export function shouldRestart(policy: PlannedPod['restartPolicy'], exitCode: number): boolean {
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

interface Live {
  plan: PlannedContainer;
  status: ContainerStatus;
  child?: ChildProcess;
  exited?: Promise<number>;
  /** Settles once the exit of the current run is recorded. */
  afterExit?: Promise<void>;
  restartTimer?: NodeJS.Timeout;
  killing?: Promise<void>;
  lastKill?: KillTimeline;
}

/** A size-capped log file: past `max` bytes the file becomes `<file>.1` and a new one starts. */
class CappedLog {
  private fd: number;
  private size = 0;
  constructor(
    private readonly file: string,
    private readonly max: number,
  ) {
    this.fd = openPrivateAppendSync(file);
  }
  write(chunk: Buffer): void {
    if (this.size + chunk.length > this.max && this.size > 0) {
      closeSync(this.fd);
      renameSync(this.file, `${this.file}.1`);
      this.fd = openPrivateAppendSync(this.file);
      this.size = 0;
    }
    const part = chunk.length > this.max ? chunk.subarray(chunk.length - this.max) : chunk;
    writeSync(this.fd, part);
    this.size += part.length;
  }
  close(): void {
    closeSync(this.fd);
  }
}

export class PodSupervisor {
  private plan!: PlannedPod;
  private status!: PodStatus;
  private readonly live = new Map<string, Live>();
  private server?: Server;
  private stopping?: Promise<void>;
  private finished = false;
  private resolveDone!: () => void;
  /** Resolves when the pod is over and everything is released: the host may exit. */
  readonly done = new Promise<void>((r) => {
    this.resolveDone = r;
  });

  constructor(private readonly pod: PodDir) {}

  private async event(e: Omit<PodEvent, 'time'>): Promise<void> {
    await this.pod.appendEvent({ time: new Date().toISOString(), ...e, message: this.redact(e.message) });
  }

  /** The text with the pod's Secret values replaced (events and the supervisor log never hold them). */
  redact(text: string): string {
    return redactValues(text, this.plan?.redact ?? []);
  }

  /** One line to the supervisor log (stderr), redacted. */
  log(text: string): void {
    process.stderr.write(`${new Date().toISOString()} ${this.redact(text)}\n`);
  }

  private async save(): Promise<void> {
    this.status.containers = [...this.live.values()].map((l) => ({
      ...l.status,
      ...(l.lastKill ? { lastKill: l.lastKill } : {}),
    }));
    await this.pod.writeStatus(this.status);
  }

  private runtimeArgs(): string[] {
    return [...this.plan.runtime.globalArgs, '--root', this.plan.runtime.root];
  }

  /** Brings the pod up; resolves with its status once every container is Running, or the pod failed. */
  async start(): Promise<PodStatus> {
    this.plan = await this.pod.readPlan();
    this.status = {
      phase: 'Pending',
      podIP: this.plan.podIP,
      startTime: new Date().toISOString(),
      supervisorPid: process.pid,
      containers: [],
    };
    for (const c of this.plan.containers) {
      this.live.set(c.name, {
        plan: c,
        status: {
          name: c.name,
          state: 'waiting',
          reason: 'ContainerCreating',
          ready: false,
          restartCount: 0,
        },
      });
    }
    await this.save();
    await this.listen();
    try {
      await createSandboxNet({
        netns: this.plan.netns,
        vethHost: this.plan.vethHost,
        bridge: this.plan.bridge,
        podIP: this.plan.podIP,
        gateway: this.plan.gateway,
      });
    } catch (err) {
      await this.event(
        Events.failedCreatePodSandBox(`Failed to create pod sandbox: ${(err as Error).message}`),
      );
      this.status.phase = 'Failed';
      this.status.reason = 'FailedCreatePodSandBox';
      await this.finish();
      return this.status;
    }
    for (const l of this.live.values()) {
      if (this.stopping) break;
      await this.startContainer(l);
    }
    if (!this.stopping && !this.finished) {
      if ([...this.live.values()].some((l) => l.status.state === 'running')) this.status.phase = 'Running';
      await this.save();
    }
    return this.status;
  }

  private async startContainer(l: Live): Promise<void> {
    const c = l.plan;
    const fieldPath = containerFieldPath(c.name);
    const dir = this.pod.containerDir(c.name);
    const paths = bundlePaths(dir);
    try {
      await removeBundleMount(paths);
      await createBundle(paths, c.layers, c.ociSpec);
    } catch (err) {
      await this.event({ ...Events.failed((err as Error).message), fieldPath });
      await this.containerExited(l, 128, 'CreateContainerError');
      return;
    }
    await this.event({ ...Events.created(c.name), fieldPath });
    const pidFile = join(dir, 'pid');
    await rm(pidFile, { force: true });
    const log = new CappedLog(this.pod.logFile(c.name), this.plan.logMaxBytes);
    let stderrTail = '';
    const child = spawn(
      this.plan.runtime.binary,
      [...this.runtimeArgs(), 'run', '--bundle', paths.dir, '--pid-file', pidFile, c.id],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    l.child = child;
    child.stdout!.on('data', (b: Buffer) => log.write(b));
    child.stderr!.on('data', (b: Buffer) => {
      log.write(b);
      stderrTail = (stderrTail + b.toString('utf8')).slice(-2000);
    });
    l.exited = new Promise<number>((resolve) => {
      child.on('error', () => resolve(128));
      child.on('close', (code, sig) => {
        log.close();
        resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15));
      });
    });
    const started = await this.waitForPidFile(dir, pidFile, l.exited);
    if (!started) {
      const code = await l.exited;
      l.child = undefined;
      const why = stderrTail.trim().split('\n').pop() ?? `exit code ${code}`;
      await this.event({ ...Events.failed(why), fieldPath });
      await this.containerExited(l, code, 'StartError');
      return;
    }
    const startedAt = new Date().toISOString();
    await this.event({ ...Events.started(c.name), fieldPath });
    l.afterExit = l.exited.then((code) => this.onExit(l, child, code));
    const postStart = c.lifecycle?.postStart;
    if (postStart) {
      const ok = await this.runHook(l, postStart, new AbortController().signal);
      if (!ok) {
        await this.event({ ...Events.failedPostStart(), fieldPath });
        await this.killContainer(l, 'FailedPostStartHook');
        return;
      }
    }
    if (l.child === child && l.status.state !== 'terminated') {
      l.status = {
        name: c.name,
        state: 'running',
        startedAt,
        ready: true,
        restartCount: l.status.restartCount,
      };
      await this.save();
    }
  }

  /** Resolves true when the pid file appears (runc writes it once the process runs), false when runc exits first. */
  private waitForPidFile(dir: string, pidFile: string, exited: Promise<number>): Promise<boolean> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (v: boolean) => {
        if (settled) return;
        settled = true;
        watcher.close();
        resolve(v);
      };
      const watcher = watch(dir, (_type, name) => {
        if (name === 'pid' && existsSync(pidFile)) done(true);
      });
      if (existsSync(pidFile)) done(true);
      void exited.then(() => done(existsSync(pidFile)));
    });
  }

  private hookContext(l: Live): HookContext {
    return {
      runtime: {
        binary: this.plan.runtime.binary,
        globalArgs: this.plan.runtime.globalArgs,
        root: this.plan.runtime.root,
      },
      containerId: l.plan.id,
      container: l.plan.name,
      ports: l.plan.ports,
      podIP: this.plan.podIP,
      podFullName: podFullName(this.plan),
      terminationGracePeriodSeconds: this.plan.terminationGracePeriodSeconds,
      onEvent: (e) => void this.event({ ...e, fieldPath: containerFieldPath(l.plan.name) }),
    };
  }

  /** Runs a hook; its detail goes to the supervisor log only (kubelet keeps it out of events). */
  private async runHook(l: Live, h: LifecycleHandler, signal: AbortSignal): Promise<boolean> {
    try {
      await runHandler(h, this.hookContext(l), signal);
      return true;
    } catch (err) {
      this.log(`hook failed: ${(err as Error).message}`);
      return false;
    }
  }

  private async onExit(l: Live, child: ChildProcess, code: number): Promise<void> {
    if (l.child !== child) return;
    l.child = undefined;
    if (l.lastKill && !l.lastKill.exitedAt) l.lastKill.exitedAt = Date.now();
    await this.containerExited(l, code, code === 0 ? 'Completed' : 'Error');
  }

  private async containerExited(l: Live, exitCode: number, reason: string): Promise<void> {
    const paths = bundlePaths(this.pod.containerDir(l.plan.name));
    await execFileP(this.plan.runtime.binary, [...this.runtimeArgs(), 'delete', '--force', l.plan.id], {
      timeout: 15_000,
    }).catch(() => {});
    await removeBundleMount(paths);
    l.status = {
      name: l.plan.name,
      state: 'terminated',
      reason,
      exitCode,
      ...(l.status.startedAt ? { startedAt: l.status.startedAt } : {}),
      finishedAt: new Date().toISOString(),
      ready: false,
      restartCount: l.status.restartCount,
    };
    if (!this.stopping && shouldRestart(this.plan.restartPolicy, exitCode)) {
      const delay = crashLoopBackoffMs(l.status.restartCount);
      if (delay > 0) {
        await this.event({
          ...Events.backOff(l.plan.name, this.plan),
          fieldPath: containerFieldPath(l.plan.name),
        });
        l.status = { ...l.status, state: 'waiting', reason: 'CrashLoopBackOff' };
      }
      await this.save();
      l.restartTimer = setTimeout(() => {
        l.restartTimer = undefined;
        l.status.restartCount += 1;
        void this.startContainer(l);
      }, delay);
      return;
    }
    await this.save();
    await this.maybeFinish();
  }

  private async maybeFinish(): Promise<void> {
    if (this.stopping || this.finished) return;
    const all = [...this.live.values()];
    if (all.some((l) => l.status.state !== 'terminated' || l.restartTimer)) return;
    this.status.phase = all.every((l) => l.status.exitCode === 0) ? 'Succeeded' : 'Failed';
    await this.finish();
  }

  /** kubelet `killContainer`: Killing, PreStop within the grace period, TERM, at least 2 s, KILL. */
  private killContainer(l: Live, message?: string): Promise<void> {
    if (l.killing) return l.killing;
    l.killing = (async () => {
      try {
        const child = l.child;
        const exited = l.exited;
        if (!child || !exited) return;
        let grace = this.plan.terminationGracePeriodSeconds;
        const timeline: KillTimeline = { killingAt: Date.now(), graceSeconds: grace };
        l.lastKill = timeline;
        const fieldPath = containerFieldPath(l.plan.name);
        await this.event({ ...Events.killing(l.plan.name, message), fieldPath });
        const preStop = l.plan.lifecycle?.preStop;
        if (preStop && grace > 0) {
          const t0 = Date.now();
          const abort = new AbortController();
          let timedOut = false;
          const timer = setTimeout(() => {
            timedOut = true;
            abort.abort();
          }, grace * 1000);
          const ok = await Promise.race([this.runHook(l, preStop, abort.signal), exited.then(() => true)]);
          clearTimeout(timer);
          abort.abort();
          timeline.preStopEndedAt = Date.now();
          // kubelet: a hook still running at the end of the grace period is only logged; a failure is an event.
          if (!ok && !timedOut) await this.event({ ...Events.failedPreStop(), fieldPath });
          if (timedOut) this.log(`PreStop hook for ${l.plan.name} not completed in grace period`);
          grace = graceAfterPreStop(grace, Date.now() - t0);
        } else {
          grace = Math.max(grace, MIN_GRACE_SECONDS);
        }
        timeline.graceSeconds = grace;
        if (l.child !== child) return;
        timeline.termAt = Date.now();
        await this.signal(l, 'TERM');
        const gone = await Promise.race([
          exited.then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), grace * 1000).unref()),
        ]);
        if (!gone && l.child === child) {
          timeline.killAt = Date.now();
          await this.signal(l, 'KILL');
        }
        await exited;
        timeline.exitedAt ??= Date.now();
        await l.afterExit;
      } finally {
        l.killing = undefined;
      }
    })();
    return l.killing;
  }

  private async signal(l: Live, sig: 'TERM' | 'KILL'): Promise<void> {
    await execFileP(this.plan.runtime.binary, [...this.runtimeArgs(), 'kill', l.plan.id, sig], {
      timeout: 10_000,
    }).catch(() => {
      // Already gone, or not yet created: a KILL to runc itself ends it.
      if (sig === 'KILL') l.child?.kill('SIGKILL');
    });
  }

  /** Stops the pod: every container's kill sequence at once, then the sandbox is released. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const l of this.live.values()) {
        if (l.restartTimer) {
          clearTimeout(l.restartTimer);
          l.restartTimer = undefined;
        }
      }
      await Promise.all([...this.live.values()].map((l) => this.killContainer(l)));
      // Let exit handlers finish their bookkeeping.
      await Promise.all([...this.live.values()].map((l) => l.afterExit));
      if (!this.finished) {
        const all = [...this.live.values()];
        this.status.phase = all.every((l) => l.status.exitCode === 0) ? 'Succeeded' : 'Failed';
        await this.finish();
      }
    })();
    return this.stopping;
  }

  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    for (const l of this.live.values()) {
      if (l.status.state !== 'terminated') l.status = { ...l.status, state: 'terminated', ready: false };
      await removeBundleMount(bundlePaths(this.pod.containerDir(l.plan.name)));
    }
    await removeSandboxNet({
      netns: this.plan.netns,
      vethHost: this.plan.vethHost,
      bridge: this.plan.bridge,
      podIP: this.plan.podIP,
      gateway: this.plan.gateway,
    });
    await releasePodIP(this.pod.root, this.plan.podIP, this.pod.key);
    this.status.cleanedUp = true;
    delete this.status.supervisorPid;
    await this.save();
    await rm(this.pod.socket, { force: true });
    // `done` waits for open control connections (a stop's reply) to end, at most 5 s.
    const server = this.server;
    if (!server) return this.resolveDone();
    const t = setTimeout(() => this.resolveDone(), 5_000);
    server.close(() => {
      clearTimeout(t);
      this.resolveDone();
    });
  }

  /** `control.sock`: one JSON request per line (`{"op":"stop"}` or `{"op":"status"}`), one JSON reply. */
  private async listen(): Promise<void> {
    await mkdirPrivate(this.pod.dir);
    await rm(this.pod.socket, { force: true });
    const server = createServer((sock) => {
      let buf = '';
      sock.on('error', () => {});
      sock.on('data', (b) => {
        buf += b.toString();
        const nl = buf.indexOf('\n');
        if (nl === -1) return;
        const line = buf.slice(0, nl);
        buf = '';
        let op = '';
        try {
          op = (JSON.parse(line) as { op?: string }).op ?? '';
        } catch {}
        if (op === 'stop') {
          void this.stop().then(
            () => sock.end(`${JSON.stringify({ ok: true, status: this.status })}\n`),
            (err: Error) => sock.end(`${JSON.stringify({ ok: false, error: err.message })}\n`),
          );
        } else if (op === 'status') {
          sock.end(`${JSON.stringify({ ok: true, status: this.status })}\n`);
        } else {
          sock.end(`${JSON.stringify({ ok: false, error: `unknown op "${op}"` })}\n`);
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.pod.socket, () => resolve());
    });
    this.server = server;
  }
}
