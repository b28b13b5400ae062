/**
 * The whole test harness in one call: a real kube-apiserver, a real registry,
 * SSH nodes in network namespaces and the cloud endpoints, started in
 * parallel, stopped by PID. Tests ask only for the parts they use.
 *
 *   const h = await startHarness({ cluster: true, registry: { auth: 'token' }, nodes: 3, cloud: true });
 *   after(() => h.stop());
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cloud, type CloudOptions, MOTO_ACCOUNT_ID, startCloud } from './cloud/index.js';
import { type Cluster, startCluster } from './cluster/index.js';
import { type Kubelet, type KubeletOptions, startKubelet } from './kubelet/index.js';
import { type NodeControls, type NodesInfo, startNodes } from './nodes/index.js';
import { HarnessError } from './proc.js';
import { type Registry, type RegistryAuth, startRegistry } from './registry/index.js';
import type { Component } from './types.js';

export type Nodes = Component<NodesInfo> & NodeControls;

export interface HarnessOptions {
  cluster?: boolean;
  registry?: boolean | { auth: RegistryAuth };
  nodes?: number | { count: number; tmpfsSize?: string };
  cloud?: boolean | Omit<CloudOptions, 'dir' | 'signal'>;
  /**
   * A real kubelet (+ a private containerd) registered with the cluster, its sandbox
   * image from the registry. Needs `cluster` and `registry`; starts after them.
   */
  kubelet?: boolean | KubeletOptions;
  /**
   * When the registry and the cloud endpoints both run: make the registry accept
   * exactly the credentials the ACR and Google fakes mint, and moto's ECR token
   * (default true), so a test proves a minted credential really logs in.
   */
  registryAcceptsMinted?: boolean;
  /** Scratch directory; default a new one under the OS temp dir, removed on stop unless keepDir. */
  dir?: string;
  keepDir?: boolean;
  signal?: AbortSignal;
}

export interface Harness {
  readonly dir: string;
  readonly cluster?: Cluster;
  readonly registry?: Registry;
  readonly nodes?: Nodes;
  readonly cloud?: Cloud;
  readonly kubelet?: Kubelet;
  /** Milliseconds each part took to start (they start concurrently), and the whole. */
  readonly timings: Record<string, number>;
  /**
   * Resolves once the registry accepts every credential minted so far (the
   * allow-list update after a mint is asynchronous in htpasswd mode).
   */
  credentialsSynced(): Promise<void>;
  /** Plain connection details of every started part (test-only credentials included). */
  info(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** moto's ECR token decodes to `AWS:<account>-auth-token` (see cloud/moto.ts). */
export const MOTO_ECR_PASSWORD = `${MOTO_ACCOUNT_ID}-auth-token`;

async function timed<T>(timings: Record<string, number>, name: string, start: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const value = await start();
  timings[name] = Math.round(performance.now() - t0);
  return value;
}

export async function startHarness(opts: HarnessOptions): Promise<Harness> {
  const kubeletOpts = opts.kubelet === true ? {} : opts.kubelet || undefined;
  if (kubeletOpts && (!opts.cluster || !opts.registry)) {
    throw new HarnessError(
      'harness: `kubelet` needs `cluster: true` and a `registry` (its sandbox image comes from there)',
    );
  }
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'pullkeeper-harness-')));
  const sub = async (name: string) => {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    return d;
  };
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const nodeOpts = typeof opts.nodes === 'number' ? { count: opts.nodes } : opts.nodes;
  const registryAuth = opts.registry === true ? 'token' : opts.registry ? opts.registry.auth : undefined;
  const cloudOpts = opts.cloud === true ? {} : opts.cloud || undefined;

  const parts = await Promise.allSettled([
    opts.cluster
      ? timed(timings, 'cluster', async () =>
          startCluster({
            dir: await sub('cluster'),
            signal: opts.signal,
            // The kubelet as a node user: its name is fixed before the apiserver reads its tokens.
            ...(kubeletOpts?.identity === 'node'
              ? { nodeIdentity: { name: `pk-kubelet-${randomBytes(3).toString('hex')}` } }
              : {}),
          }),
        )
      : undefined,
    registryAuth
      ? timed(timings, 'registry', async () =>
          startRegistry({ dir: await sub('registry'), auth: registryAuth, signal: opts.signal }),
        )
      : undefined,
    nodeOpts && nodeOpts.count > 0
      ? timed(timings, 'nodes', async () =>
          startNodes({ dir: await sub('nodes'), ...nodeOpts, signal: opts.signal }),
        )
      : undefined,
    cloudOpts
      ? timed(timings, 'cloud', async () =>
          startCloud({ dir: await sub('cloud'), ...cloudOpts, signal: opts.signal }),
        )
      : undefined,
  ]);
  const started = parts.map((p) => (p.status === 'fulfilled' ? p.value : undefined));
  const [cluster, registry, nodes, cloud] = started as [
    Cluster | undefined,
    Registry | undefined,
    Nodes | undefined,
    Cloud | undefined,
  ];
  let kubelet: Kubelet | undefined;
  let kubeletFailure: PromiseRejectedResult | undefined;
  if (kubeletOpts && cluster && registry) {
    try {
      kubelet = await timed(timings, 'kubelet', async () =>
        startKubelet({ dir: await sub('kubelet'), cluster, registry, ...kubeletOpts, signal: opts.signal }),
      );
    } catch (reason) {
      kubeletFailure = { status: 'rejected', reason };
    }
  }
  timings.total = Math.round(performance.now() - t0);

  const stopAll = async () => {
    // The kubelet first (it deletes its pods through the apiserver), then the rest in
    // parallel; report every failure, not only the first.
    const first = await Promise.allSettled([kubelet?.stop()]);
    const results = [...first, ...(await Promise.allSettled(started.map((c) => c?.stop())))];
    if (!opts.dir && !opts.keepDir) await rm(dir, { recursive: true, force: true });
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length)
      throw new AggregateError(
        failed.map((f) => f.reason),
        'harness: some parts did not stop',
      );
  };

  const failures = [
    ...parts.filter((p): p is PromiseRejectedResult => p.status === 'rejected'),
    ...(kubeletFailure ? [kubeletFailure] : []),
  ];
  if (failures.length) {
    await stopAll().catch(() => undefined);
    const detail = failures.map((f) => (f.reason instanceof Error ? f.reason.message : String(f.reason)));
    throw new HarnessError(
      `harness: ${failures.length} part(s) failed to start:\n- ${detail.join('\n- ')}\nRun \`npm run harness -- doctor\` for what is missing and how to fix it.`,
      { cause: failures[0]?.reason },
    );
  }

  let unsubscribe: (() => void) | undefined;
  const pending = new Set<Promise<void>>();
  if (registry && cloud && opts.registryAcceptsMinted !== false) {
    unsubscribe = cloud.onMint((rec) => {
      const p = registry.allow(rec.username, rec.password).finally(() => pending.delete(p));
      pending.add(p);
    });
    if (cloud.moto) await registry.allow('AWS', MOTO_ECR_PASSWORD);
  }

  let stopping: Promise<void> | undefined;
  return {
    dir,
    cluster,
    registry,
    nodes,
    cloud,
    kubelet,
    timings,
    credentialsSynced: async () => {
      await Promise.all([...pending]);
    },
    info: () => ({
      dir,
      ...(cluster && { cluster: cluster.info }),
      ...(registry && { registry: registry.info }),
      ...(nodes && { nodes: nodes.info }),
      ...(cloud && { cloud: cloud.info }),
      ...(kubelet && { kubelet: kubelet.info }),
    }),
    stop() {
      unsubscribe?.();
      stopping ??= stopAll();
      return stopping;
    },
  };
}
