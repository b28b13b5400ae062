/**
 * Host keys trusted on first use (src/core/host-key-record.ts), kept in the
 * status ConfigMap (`statusStore`, default pullkeeper-system/pullkeeper-status)
 * under its own key, `known-hosts.json`: the Lambda functions, `pullkeeper
 * serve` and the CLI all reach it with the RBAC they already have, and the
 * status written beside it never touches it (docs/nodes.md).
 *
 * Unlike the status, the record fails closed: when it cannot be read, or its
 * content is not a valid record, nothing is trusted on first use (nodes pinned
 * in nodes.ssh.knownHosts still work) and the record is never overwritten.
 * Writes merge into the stored record with the resourceVersion and retry on a
 * conflict; accepts of one run are batched into a few writes.
 */
import * as z from 'zod';
import type { PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import {
  emptyHostKeyRecord,
  type HostKeyRecord,
  type HostKeyUpdate,
  mergeHostKeys,
  type RecordedHostKey,
  recordedKey,
  seenIsStale,
} from '../core/host-key-record.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../core/rotation-plan.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import { getConfigMap } from '../kube/resources.js';
import { type StatusStoreRef, statusStoreOf, updateStoreKey } from './status-store.js';

export const HOST_KEYS_KEY = 'known-hosts.json';

export class HostKeyRecordError extends PullkeeperError {}

const RecordSchema = z.strictObject({
  version: z.literal(1),
  hosts: z.record(
    z.string(),
    z.strictObject({
      keyType: z.string().min(1),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      node: z.string(),
      firstSeen: z.iso.datetime(),
      lastSeen: z.iso.datetime(),
    }),
  ),
});

/** Where the record lives, for messages: `ConfigMap pullkeeper-system/pullkeeper-status (key known-hosts.json) in cluster prod`. */
export function hostKeyRecordPlace(ref: StatusStoreRef): string {
  return `ConfigMap ${ref.namespace}/${ref.name} (key ${HOST_KEYS_KEY}) in cluster ${ref.cluster}`;
}

function parse(ref: StatusStoreRef, text: string | undefined): HostKeyRecord {
  if (text === undefined) return emptyHostKeyRecord();
  try {
    return RecordSchema.parse(JSON.parse(text)) as HostKeyRecord;
  } catch (err) {
    throw new HostKeyRecordError(
      `the record of host keys trusted on first use in ${hostKeyRecordPlace(ref)} is not valid; it is left as it is and nothing is trusted on first use until it is fixed: ` +
        `pin the nodes' keys in nodes.ssh.knownHosts, or remove that key from the ConfigMap to start a new record (every unpinned node is then trusted on first use again)`,
      { cause: err },
    );
  }
}

/** The record of one run: looked up synchronously, written in batches. */
export interface HostKeyBook {
  readonly place: string;
  /** The key recorded for a host (`lookupName(address, port)`), unless expired. */
  recorded(host: string): RecordedHostKey | undefined;
  /** Records a key accepted on first use; resolves once stored. Rejects when it cannot be stored, or another run recorded another key for the host first. */
  accept(u: Omit<Extract<HostKeyUpdate, { kind: 'accept' }>, 'kind'>): Promise<void>;
  /** The host answered (with the recorded key or another): keeps its entry alive. Written by flush(). */
  seen(host: string): void;
  /** Writes pending `seen` updates; the error text when that failed (best effort). */
  flush(): Promise<string | undefined>;
  close(): void;
}

export interface HostKeyBookOptions {
  signal?: AbortSignal;
  kube?: (cluster: string) => Promise<KubeClient>;
  secrets?: SecretResolver;
  now?: () => Date;
  /** How long accepts are gathered before one write (ms). */
  batchMs?: number;
}

function describe(err: unknown): string {
  if (err instanceof HostKeyRecordError) return err.message;
  if (err instanceof KubeApiError)
    return err.status === 403
      ? 'forbidden; apply the output of "pullkeeper rbac --config FILE" (get, update of the status ConfigMap)'
      : `HTTP ${err.status} ${err.reason}`;
  return `${(err as Error)?.name ?? 'error'}: ${(err as Error)?.message ?? String(err)}`;
}

/**
 * Reads the record. Throws HostKeyRecordError (saying why, and that nothing is
 * trusted on first use) when there is no status store, it cannot be read, or
 * its content is invalid.
 */
export async function openHostKeyBook(
  config: PullkeeperConfig,
  o: HostKeyBookOptions = {},
): Promise<HostKeyBook> {
  const ref = statusStoreOf(config);
  if (!ref)
    throw new HostKeyRecordError(
      'nowhere to record host keys trusted on first use: they are kept in the status ConfigMap, and this config has none (statusStore: false, or no cluster); pin the keys in nodes.ssh.knownHosts, or configure statusStore',
    );
  const place = hostKeyRecordPlace(ref);
  const signal = o.signal ?? new AbortController().signal;
  const now = o.now ?? (() => new Date());
  let owned: KubeClient | undefined;
  let k: KubeClient;
  try {
    if (o.kube) k = await o.kube(ref.cluster);
    else {
      const cluster = config.clusters.find((c) => c.name === ref.cluster);
      if (!cluster) throw new HostKeyRecordError(`statusStore: unknown cluster ${ref.cluster}`);
      owned = await kubeClientFor(cluster, o.secrets ?? createSecretResolver({ signal }), {
        ...config.kubeClient,
        concurrency: 2,
      });
      k = owned;
    }
  } catch (err) {
    throw new HostKeyRecordError(
      `cannot read the record of host keys trusted on first use (${place}): ${describe(err)}; nothing is trusted on first use`,
      { cause: err },
    );
  }
  const timed = () => AbortSignal.any([signal, AbortSignal.timeout(15_000)]);
  let snapshot: HostKeyRecord;
  try {
    const cur = await getConfigMap(k, ref.namespace, ref.name, timed());
    if (cur && cur.labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE)
      throw new HostKeyRecordError(
        `a ConfigMap ${ref.namespace}/${ref.name} exists and is not ours (no ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}); set statusStore.name to another name`,
      );
    snapshot = parse(ref, cur?.data[HOST_KEYS_KEY]);
  } catch (err) {
    owned?.close();
    throw new HostKeyRecordError(
      `cannot read the record of host keys trusted on first use (${place}): ${describe(err)}; nothing is trusted on first use`,
      { cause: err },
    );
  }

  /** Merge-saves updates (resourceVersion retries in updateStoreKey); the accepts refused as conflicts. */
  const save = async (updates: HostKeyUpdate[]) => {
    const m = await updateStoreKey(k, ref, HOST_KEYS_KEY, timed(), (text) => {
      // An invalid record throws here: it is never overwritten.
      const m = mergeHostKeys(parse(ref, text), updates, now());
      return m.changed ? { value: JSON.stringify(m.record), result: m } : { result: m };
    });
    snapshot = m.record;
    return m.conflicts;
  };

  type Waiter = {
    u: Extract<HostKeyUpdate, { kind: 'accept' }>;
    resolve: () => void;
    reject: (e: Error) => void;
  };
  let queue: Waiter[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let chain: Promise<void> = Promise.resolve();
  const seenHosts = new Set<string>();
  const flushAccepts = () => {
    timer = undefined;
    const batch = queue;
    queue = [];
    chain = chain.then(async () => {
      try {
        const conflicts = await save(batch.map((w) => w.u));
        for (const w of batch) {
          const c = conflicts.find((x) => x.host === w.u.host);
          if (c)
            w.reject(
              new HostKeyRecordError(
                `another run recorded a different host key for ${w.u.host} first (${c.recorded.keyType}, recorded ${c.recorded.firstSeen}); refused`,
              ),
            );
          else w.resolve();
        }
      } catch (err) {
        for (const w of batch)
          w.reject(
            new HostKeyRecordError(
              `the host key trusted on first use could not be recorded (${place}: ${describe(err)}); not pushed`,
              { cause: err },
            ),
          );
      }
    });
  };

  return {
    place,
    recorded: (host) => recordedKey(snapshot, host, now()),
    accept: (u) =>
      new Promise<void>((resolve, reject) => {
        queue.push({ u: { kind: 'accept', ...u }, resolve, reject });
        timer ??= setTimeout(flushAccepts, o.batchMs ?? 50);
      }),
    seen(host) {
      const e = recordedKey(snapshot, host, now());
      if (e && seenIsStale(e, now())) seenHosts.add(host);
    },
    async flush() {
      await chain;
      if (!seenHosts.size) return undefined;
      const updates = [...seenHosts].map((host): HostKeyUpdate => ({ kind: 'seen', host }));
      seenHosts.clear();
      try {
        await save(updates);
        return undefined;
      } catch (err) {
        return `host keys last seen not saved (${place}): ${describe(err)}`;
      }
    },
    close() {
      if (timer) {
        clearTimeout(timer);
        flushAccepts();
      }
      void chain.finally(() => owned?.close());
    },
  };
}
