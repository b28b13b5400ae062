/**
 * One node: connect, read config.json and the ownership sidecar, plan, then
 * (unless checking) back up a malformed file, write atomically, read back and
 * compare sha256, record the sidecar, and run the optional after-write command.
 */
import type { DockerConfig } from '../core/docker-config.js';
import { PullkeeperError } from '../core/errors.js';
import type { RecordedHostKey } from '../core/host-key-record.js';
import type { NodeTarget } from './inventory.js';
import { type KnownHostEntry, lookupName, pinsFor } from './known-hosts.js';
import {
  backupPath,
  type ExpiringEntry,
  parseSidecar,
  planNode,
  renderSidecar,
  sha256hex,
  sidecarPath,
} from './plan.js';
import { type PullReport, prePullImages } from './prepull.js';
import {
  execRemote,
  HostKeyMismatchError,
  type NodeSession,
  openSession,
  type RecordedPin,
  readRemote,
  writeRemoteAtomic,
} from './ssh.js';

export type NodeStatus = 'written' | 'unchanged' | 'drift' | 'failed';

export interface NodeReportEntry {
  name: string;
  address: string;
  status: NodeStatus;
  reason?: string;
  ms: number;
  /** Things worth knowing that are not failures: host key trusted on first use, adopted keys, backups. */
  notes?: string[];
  /** The after-write command's result (when configured and a write happened). */
  afterWrite?: { code: number | null; output: string; truncated: boolean };
  /** Per image, with --pre-pull. */
  pulls?: PullReport[];
}

export interface PushNodeContext {
  desired: DockerConfig;
  /** Desired keys whose credential expires (kept on the node while fresh; src/nodes/plan.ts). */
  expiring?: Record<string, ExpiringEntry>;
  now?: Date;
  privateKey: string;
  knownHosts: readonly KnownHostEntry[];
  trustOnFirstUse: boolean;
  /** With trustOnFirstUse: the record of keys accepted on first use (src/app/host-key-store.ts). */
  hostKeys?: FirstUseRecord;
  /** Why a node without a knownHosts pin cannot be trusted on first use in this run (then it fails). */
  firstUseRefused?: string;
  timeoutMs: number;
  check: boolean;
  replaceMalformed: boolean;
  afterWrite?: string;
  prePull?: { images: string[]; command: string; timeoutMs: number };
  signal: AbortSignal;
}

/** Output kept from the after-write command, per stream. */
export const AFTER_WRITE_OUTPUT_LIMIT = 4096;

export class NodeFileError extends PullkeeperError {}

/** The part of the host key record a node push uses (src/app/host-key-store.ts implements it). */
export interface FirstUseRecord {
  readonly place: string;
  recorded(host: string): RecordedHostKey | undefined;
  accept(u: { host: string; node: string; keyType: string; sha256: string }): Promise<void>;
  seen(host: string): void;
}

export async function pushToNode(t: NodeTarget, ctx: PushNodeContext): Promise<NodeReportEntry> {
  const t0 = performance.now();
  const notes: string[] = [];
  const done = (status: NodeStatus, extra: Partial<NodeReportEntry> = {}): NodeReportEntry => ({
    name: t.name,
    address: t.address,
    status,
    ...extra,
    ...(notes.length ? { notes } : {}),
    ms: Math.round(performance.now() - t0),
  });
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.timeoutMs)]);
  let session: NodeSession | undefined;
  const onAbort = () => session?.client.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  const host = lookupName(t.address, t.port);
  let pins = pinsFor(ctx.knownHosts, t.address, t.port);
  let recorded: RecordedPin | undefined;
  let firstUse = false;
  if (pins.keys.length === 0 && ctx.trustOnFirstUse) {
    if (ctx.firstUseRefused || !ctx.hostKeys)
      return done('failed', {
        reason: `no pinned host key for ${host} in nodes.ssh.knownHosts, and ${ctx.firstUseRefused ?? 'no record of host keys trusted on first use is open'}`,
      });
    const rec = ctx.hostKeys.recorded(host);
    if (rec) {
      // Enforced like a pin from now on.
      pins = { keys: [{ keyType: rec.keyType, sha256: rec.sha256, line: 0 }], revoked: pins.revoked };
      recorded = { firstSeen: rec.firstSeen, place: ctx.hostKeys.place };
    } else firstUse = true;
  }
  try {
    try {
      session = await openSession(t, {
        privateKey: ctx.privateKey,
        pins,
        ...(recorded ? { recorded } : {}),
        trustOnFirstUse: firstUse,
        signal,
        timeoutMs: ctx.timeoutMs,
      });
    } catch (err) {
      // The host answered, with another key: its record entry stays alive (a changed key never ages into a first use).
      if (recorded && err instanceof HostKeyMismatchError) ctx.hostKeys?.seen(host);
      throw err;
    }
    if (recorded) ctx.hostKeys?.seen(host);
    if (session.trustedOnFirstUse) {
      if (ctx.check)
        notes.push(
          `host key would be trusted on first use: ${session.trustedOnFirstUse} (a check records nothing)`,
        );
      else {
        // Recorded before anything is read or written: from now on this key is enforced.
        await ctx.hostKeys!.accept({
          host,
          node: t.name,
          keyType: session.hostKey.type,
          sha256: session.hostKey.sha256,
        });
        notes.push(
          `host key trusted on first use: ${session.trustedOnFirstUse}; recorded in ${ctx.hostKeys!.place} and enforced from now on (pin it in nodes.ssh.knownHosts to make it permanent)`,
        );
      }
    }
    const s = session.sftp;
    const sidecar = sidecarPath(t.path);
    const [existing, sidecarBytes] = await Promise.all([readRemote(s, t.path), readRemote(s, sidecar)]);
    const plan = planNode({
      existing,
      sidecar: parseSidecar(sidecarBytes),
      desired: ctx.desired,
      replaceMalformed: ctx.replaceMalformed,
      ...(ctx.expiring ? { expiring: ctx.expiring, now: ctx.now ?? new Date() } : {}),
    });
    const sidecarOf = (sha256: string) =>
      renderSidecar({
        version: 1,
        managedKeys: plan.action === 'refuse' ? [] : plan.managedKeys,
        sha256,
        ...(plan.action !== 'refuse' && Object.keys(plan.expiring).length ? { expiring: plan.expiring } : {}),
      });

    if (ctx.check) {
      if (plan.action === 'unchanged') return done('unchanged');
      if (plan.action === 'write') return done('drift', { reason: plan.changes });
      return done('drift', { reason: plan.reason });
    }

    if (plan.action === 'refuse') {
      if (plan.malformed && existing) {
        const bak = backupPath(t.path, existing);
        if ((await readRemote(s, bak)) === undefined) await writeRemoteAtomic(s, t.name, bak, existing);
        return done('failed', {
          reason: `${plan.reason}; backed up to ${bak}; not replaced (fix or remove the file, or set nodes.replaceMalformed: true)`,
        });
      }
      return done('failed', { reason: plan.reason });
    }

    if (plan.action === 'unchanged') {
      if (plan.sidecarStale) await writeRemoteAtomic(s, t.name, sidecar, sidecarOf(sha256hex(plan.content)));
      const pulled = await prePull(session, ctx);
      return done(pulled.reason ? 'failed' : 'unchanged', pulled);
    }

    if (plan.replacesMalformed && existing) {
      const bak = backupPath(t.path, existing);
      if ((await readRemote(s, bak)) === undefined) await writeRemoteAtomic(s, t.name, bak, existing);
      notes.push(
        `the existing file was malformed (${plan.replacesMalformed}); backed up to ${bak} and replaced`,
      );
    }
    if (plan.adopted.length) notes.push(`took over existing entries: ${plan.adopted.join(', ')}`);

    const want = sha256hex(plan.content);
    await writeRemoteAtomic(s, t.name, t.path, plan.content);
    // The sidecar records the keys of the file just renamed into place, so it is written while the
    // read-back runs (the server handles the requests in order; this saves round trips).
    const [back] = await Promise.all([
      readRemote(s, t.path),
      writeRemoteAtomic(s, t.name, sidecar, sidecarOf(want)),
    ]);
    if (!back || sha256hex(back) !== want)
      throw new NodeFileError(
        `read-back of ${t.path} does not match what was written (sha256 ${back ? sha256hex(back).slice(0, 12) : 'missing'} vs ${want.slice(0, 12)}): another writer on the node? rerun`,
      );
    const extra: Partial<NodeReportEntry> = {};
    if (ctx.afterWrite) {
      const r = await execRemote(session.client, ctx.afterWrite, {
        limit: AFTER_WRITE_OUTPUT_LIMIT,
        signal,
      }).catch((err: Error) => ({ code: null, stdout: '', stderr: err.message, truncated: false }));
      const output = [r.stdout, r.stderr].filter(Boolean).join(r.stdout && r.stderr ? '\n' : '');
      extra.afterWrite = { code: r.code, output, truncated: r.truncated };
      if (r.code !== 0)
        extra.reason = `afterWrite exited ${r.code ?? 'without a status'} (the file was written)`;
    }
    const pulled = await prePull(session, ctx);
    if (pulled.reason)
      return done('failed', { ...extra, ...pulled, reason: `${pulled.reason} (config.json was written)` });
    return done('written', { ...extra, ...pulled });
  } catch (err) {
    return done('failed', { reason: reasonOf(err, signal, ctx.timeoutMs) });
  } finally {
    signal.removeEventListener('abort', onAbort);
    session?.close();
  }
}

async function prePull(session: NodeSession, ctx: PushNodeContext): Promise<Partial<NodeReportEntry>> {
  if (!ctx.prePull?.images.length) return {};
  const pulls = await prePullImages(session.client, ctx.prePull.images, {
    command: ctx.prePull.command,
    timeoutMs: ctx.prePull.timeoutMs,
    signal: ctx.signal,
  });
  const bad = pulls.filter((p) => p.status === 'failed');
  return {
    pulls,
    ...(bad.length ? { reason: `pre-pull failed: ${bad.map((p) => p.image).join(', ')}` } : {}),
  };
}

function reasonOf(err: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (err instanceof PullkeeperError) return err.message;
  if (signal.aborted && (signal.reason as Error)?.name === 'TimeoutError')
    return `timed out after ${timeoutMs} ms (nodes.ssh.timeoutMs)`;
  if (err instanceof RangeError) return err.message;
  const e = err as Error & { code?: number | string };
  return `${e?.message ?? 'unexpected error'}${e?.code !== undefined ? ` (code ${e.code})` : ''}`;
}
