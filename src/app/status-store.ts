/**
 * The status record (src/core/status-record.ts) kept in a ConfigMap, so that
 * the API function, the scheduled function, the fan-out workers, `pullkeeper
 * serve` and the CLI all see the last mint and push results, whichever process
 * produced them. Read-modify-write with the resourceVersion; a conflict
 * (another writer in between) is retried on a fresh read. Saving is best
 * effort: a refresh never fails because its status could not be kept.
 */
import * as z from 'zod';
import type { PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../core/rotation-plan.js';
import {
  emptyStatusRecord,
  mergeSeen,
  needsSave,
  type SeenNode,
  type SeenRegistry,
  type StatusRecord,
} from '../core/status-record.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import { getConfigMap, putConfigMap } from '../kube/resources.js';
import { retry } from '../util/retry.js';

export const STATUS_KEY = 'status.json';

export interface StatusStoreRef {
  cluster: string;
  namespace: string;
  name: string;
}

export class StatusStoreError extends PullkeeperError {}

/** Where the config keeps the status; undefined with `statusStore: false` or no cluster. */
export function statusStoreOf(config: PullkeeperConfig): StatusStoreRef | undefined {
  if (config.statusStore === false) return undefined;
  const cluster = config.statusStore?.cluster ?? config.clusters[0]?.name;
  if (!cluster) return undefined;
  return {
    cluster,
    namespace: config.statusStore?.namespace ?? 'pullkeeper-system',
    name: config.statusStore?.name ?? 'pullkeeper-status',
  };
}

const RecordSchema = z.object({
  registries: z.record(
    z.string(),
    z.object({
      kind: z.string(),
      status: z.enum(['minted', 'cached', 'failed']),
      expiresAt: z.string().nullable(),
      lastSuccess: z.string().nullable(),
      at: z.string(),
      error: z.string().optional(),
    }),
  ),
  nodes: z.record(
    z.string(),
    z.object({ status: z.string(), reason: z.string().optional(), at: z.string() }),
  ),
  savedAt: z.string().optional(),
});

/** The stored record, or an empty one when its content is unreadable (an older or damaged record is then replaced). */
function parseRecord(data: Record<string, string> | undefined): StatusRecord {
  try {
    return RecordSchema.parse(JSON.parse(data?.[STATUS_KEY] ?? '')) as StatusRecord;
  } catch {
    return emptyStatusRecord();
  }
}

function describe(ref: StatusStoreRef, err: unknown): string {
  const where = `ConfigMap ${ref.namespace}/${ref.name} in cluster ${ref.cluster}`;
  if (err instanceof KubeApiError) {
    if (err.status === 403)
      return `${where}: forbidden; apply the output of "pullkeeper rbac --config FILE" (ClusterRole pullkeeper-status, bound in ${ref.namespace}), or set statusStore: false`;
    if (err.status === 404)
      return `${where}: namespace ${ref.namespace} does not exist; create it ("pullkeeper rbac" prints it), or set statusStore.namespace`;
    return `${where}: HTTP ${err.status} ${err.reason}`;
  }
  if (err instanceof StatusStoreError) return `${where}: ${err.message}`;
  return `${where}: ${(err as Error)?.name ?? 'error'}: ${(err as Error)?.message ?? String(err)}`;
}

interface StoreOptions {
  signal?: AbortSignal;
  /** A client for the store's cluster (tests, or a caller that has one); default from the config. */
  kube?: (cluster: string) => Promise<KubeClient>;
  secrets?: SecretResolver;
}

async function withClient<T>(
  config: PullkeeperConfig,
  ref: StatusStoreRef,
  o: StoreOptions,
  fn: (k: KubeClient) => Promise<T>,
): Promise<T> {
  if (o.kube) return fn(await o.kube(ref.cluster));
  const cluster = config.clusters.find((c) => c.name === ref.cluster);
  if (!cluster) throw new StatusStoreError(`statusStore: unknown cluster ${ref.cluster}`);
  const k = await kubeClientFor(cluster, o.secrets ?? createSecretResolver({ signal: o.signal }), {
    ...config.kubeClient,
    concurrency: 2,
  });
  try {
    return await fn(k);
  } finally {
    k.close();
  }
}

/** The stored record (empty when there is none yet). Throws StatusStoreError when it cannot be read. */
export async function readStatusRecord(
  config: PullkeeperConfig,
  o: StoreOptions = {},
): Promise<StatusRecord | undefined> {
  const ref = statusStoreOf(config);
  if (!ref) return undefined;
  const signal = o.signal ?? AbortSignal.timeout(15_000);
  try {
    return await withClient(config, ref, { ...o, signal }, async (k) =>
      parseRecord((await getConfigMap(k, ref.namespace, ref.name, signal))?.data),
    );
  } catch (err) {
    throw new StatusStoreError(`cannot read the status: ${describe(ref, err)}`, { cause: err });
  }
}

export interface SaveResult {
  /** false: nothing to change, or no store configured. */
  written: boolean;
  /** Why it could not be saved (secret-free). */
  error?: string;
}

/** Merges what a run saw into the stored record. Never throws: a failure comes back as `error`. */
export async function saveStatus(
  config: PullkeeperConfig,
  seen: { registries?: readonly SeenRegistry[]; nodes?: readonly SeenNode[] },
  o: StoreOptions & { now?: Date } = {},
): Promise<SaveResult> {
  const ref = statusStoreOf(config);
  if (!ref) return { written: false };
  if (!seen.registries?.length && !seen.nodes?.length) return { written: false };
  const signal = o.signal ?? AbortSignal.timeout(15_000);
  const now = o.now ?? new Date();
  try {
    return await withClient(config, ref, { ...o, signal }, (k) =>
      updateStoreKey<SaveResult>(k, ref, STATUS_KEY, signal, (text, exists) => {
        const prev = parseRecord(text === undefined ? undefined : { [STATUS_KEY]: text });
        const next = mergeSeen(prev, seen, now);
        // Only newer times, recently saved: not worth an etcd revision (a heartbeat keeps them fresh enough).
        if (exists && !needsSave(prev, next, now)) return { result: { written: false } };
        return {
          value: JSON.stringify({ ...next, savedAt: now.toISOString() }),
          result: { written: true },
        };
      }),
    );
  } catch (err) {
    return { written: false, error: `status not saved: ${describe(ref, err)}` };
  }
}

/**
 * Read-modify-write of one key of the store's ConfigMap, the other keys kept as they
 * are (the status and the host keys trusted on first use share it). `step` gets the
 * key's current text (undefined when absent) and whether the ConfigMap exists, and
 * returns the new text (or none: nothing to write) with its result. A conflict (409:
 * another writer in between; fan-out workers finish together) re-reads and runs
 * `step` again: up to 8 tries, full jitter, at most 2 s apart. A ConfigMap of that
 * name without our label is never touched.
 */
export async function updateStoreKey<T>(
  k: KubeClient,
  ref: StatusStoreRef,
  key: string,
  signal: AbortSignal,
  step: (text: string | undefined, exists: boolean) => { value?: string; result: T },
): Promise<T> {
  return retry(
    async () => {
      const cur = await getConfigMap(k, ref.namespace, ref.name, signal);
      if (cur && cur.labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE)
        throw new StatusStoreError(
          `a ConfigMap of that name exists and is not ours (no ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}); it is left alone: set statusStore.name to another name`,
        );
      const { value, result } = step(cur?.data[key], cur !== undefined);
      if (value === undefined) return result;
      await putConfigMap(
        k,
        {
          namespace: ref.namespace,
          name: ref.name,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
          data: { ...(cur?.data ?? {}), [key]: value },
        },
        cur?.resourceVersion || undefined,
        signal,
      );
      return result;
    },
    {
      attempts: 8,
      baseMs: 100,
      maxDelayMs: 2000,
      signal,
      retryable: (err) => err instanceof KubeApiError && err.status === 409,
    },
  );
}
