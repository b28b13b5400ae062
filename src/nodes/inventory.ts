/**
 * Which nodes to push to: a static list from the config, or the cluster's Node
 * objects (InternalIP or ExternalIP, by config) filtered by a label selector,
 * listed from any cluster kind pullkeeper connects to.
 * Per-node overrides (address, port, user, path) apply to both.
 */
import type { ClusterConfig, NodesConfig, PullkeeperConfig } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { KubeApiError, type KubeClient, type KubeClientOptions } from '../kube/client.js';
import { kubeClientFor } from '../kube/connect.js';
import { clusterFailureMessage } from '../kube/failure.js';
import { listAll } from '../kube/resources.js';

export class InventoryError extends PullkeeperError {}

export interface ClusterNode {
  name: string;
  addresses: Array<{ type: string; address: string }>;
  labels: Record<string, string>;
}

/** The one thing the push needs from Kubernetes. */
export interface NodeLister {
  listNodes(selector: Record<string, string> | undefined, signal?: AbortSignal): Promise<ClusterNode[]>;
  /**
   * Only the named Nodes (a fan-out worker's batch: no full list per batch);
   * a Node that no longer exists is left out.
   */
  getNodes?(names: string[], signal?: AbortSignal): Promise<ClusterNode[]>;
}

export interface NodeTarget {
  name: string;
  address: string;
  port: number;
  user: string;
  /** config.json path on the node. */
  path: string;
}

/** A label selector string (`a=b,c=d`) from a map. */
export function labelSelector(selector: Record<string, string> | undefined): string | undefined {
  if (!selector || Object.keys(selector).length === 0) return undefined;
  return Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

interface NodeObj {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { addresses?: Array<{ type: string; address: string }> };
}

/** What the node inventory needs in RBAC (`pullkeeper rbac` grants it with inventory: kubernetes). */
const NODES_RBAC =
  'apply the output of "pullkeeper rbac --config FILE" (ClusterRole pullkeeper-inventory: "get" and "list" on nodes with inventory: kubernetes) for this identity';

/**
 * Node listing through pullkeeper's own Kubernetes client (src/kube), so every
 * cluster kind works: kubeconfig, inCluster, and EKS, AKS and GKE tokens.
 * Pages of 500; the label selector is applied by the API server.
 */
export function kubernetesNodeLister(
  cluster: ClusterConfig,
  o: { secrets?: SecretResolver; kubeClient?: KubeClientOptions } = {},
): NodeLister {
  const toNode = (n: NodeObj): ClusterNode => ({
    name: n.metadata?.name ?? '',
    addresses: (n.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })),
    labels: n.metadata?.labels ?? {},
  });
  const withClient = async <T>(signal: AbortSignal | undefined, fn: (k: KubeClient) => Promise<T>) => {
    let k: KubeClient | undefined;
    try {
      k = await kubeClientFor(cluster, o.secrets ?? createSecretResolver({ signal }), o.kubeClient);
      return await fn(k);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new InventoryError(
        `reading Nodes failed: ${clusterFailureMessage(cluster.name, err, NODES_RBAC)}`,
        { cause: err },
      );
    } finally {
      k?.close();
    }
  };
  return {
    listNodes: (selector, signal) =>
      withClient(signal, async (k) => {
        const ls = labelSelector(selector);
        const items = await listAll<NodeObj>(k, '/api/v1/nodes', ls ? { labelSelector: ls } : {}, signal);
        return items.map(toNode);
      }),
    getNodes: (names, signal) =>
      withClient(signal, async (k) => {
        // The client bounds the requests in flight (kubeClient.concurrency).
        const got = await Promise.all(
          names.map(async (name) => {
            try {
              return toNode(
                await k.request<NodeObj>('GET', `/api/v1/nodes/${encodeURIComponent(name)}`, { signal }),
              );
            } catch (err) {
              if (err instanceof KubeApiError && err.status === 404) return undefined;
              throw err;
            }
          }),
        );
        return got.filter((n) => n !== undefined);
      }),
  };
}

export interface ResolvedInventory {
  targets: NodeTarget[];
  /** Nodes that cannot be addressed (no address of the configured type): reported as failed. */
  unaddressable: Array<{ name: string; reason: string }>;
}

function matches(labels: Record<string, string>, selector: Record<string, string> | undefined) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** The push targets for a config: a static list in its order, cluster Nodes by name. */
export async function resolveInventory(
  config: PullkeeperConfig,
  opts: {
    lister?: NodeLister;
    signal?: AbortSignal;
    secrets?: SecretResolver;
    /** Only these nodes: a kubernetes inventory reads just them (when the lister can). */
    names?: string[];
  } = {},
): Promise<ResolvedInventory> {
  const nodes = config.nodes;
  if (!nodes)
    throw new InventoryError(
      'the config has no "nodes" section: add one to push node credentials (docs/nodes.md)',
    );
  const targets: NodeTarget[] = [];
  const unaddressable: ResolvedInventory['unaddressable'] = [];
  const base = (
    name: string,
    address: string,
    o?: { port?: number; user?: string; path?: string },
  ): NodeTarget => {
    const ov = nodes.overrides?.[name];
    return {
      name,
      address: ov?.address ?? address,
      port: ov?.port ?? o?.port ?? nodes.ssh.port,
      user: ov?.user ?? o?.user ?? nodes.ssh.user,
      path: ov?.path ?? o?.path ?? nodes.path,
    };
  };
  if (nodes.inventory === 'kubernetes') {
    const lister =
      opts.lister ??
      kubernetesNodeLister(pickCluster(config, nodes), {
        ...(opts.secrets ? { secrets: opts.secrets } : {}),
        ...(config.kubeClient ? { kubeClient: config.kubeClient } : {}),
      });
    const found =
      opts.names?.length && lister.getNodes
        ? await lister.getNodes([...new Set(opts.names)], opts.signal)
        : await lister.listNodes(nodes.selector, opts.signal);
    for (const n of found) {
      // The selector is applied here too, so a lister that ignores it cannot widen the push.
      if (!n.name || !matches(n.labels, nodes.selector)) continue;
      const addr = n.addresses.find((a) => a.type === nodes.addressType)?.address;
      if (!addr && !nodes.overrides?.[n.name]?.address) {
        unaddressable.push({
          name: n.name,
          reason: `the Node has no ${nodes.addressType} address; set nodes.addressType or nodes.overrides.${n.name}.address`,
        });
        continue;
      }
      targets.push(base(n.name, addr ?? ''));
    }
    // The API's order is by name already; make it explicit (the canary batch is the first K).
    targets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } else {
    // A static list keeps its order: list the canary nodes first.
    for (const s of nodes.inventory) targets.push(base(s.name, s.address, s));
  }
  return { targets, unaddressable };
}

function pickCluster(config: PullkeeperConfig, nodes: NodesConfig): ClusterConfig {
  const c = nodes.cluster ? config.clusters.find((x) => x.name === nodes.cluster) : config.clusters[0];
  if (!c)
    throw new InventoryError(
      nodes.cluster
        ? `nodes.cluster "${nodes.cluster}" is not defined in clusters`
        : 'inventory: kubernetes needs a cluster in "clusters"',
    );
  return c;
}
