/**
 * Which nodes to push to: a static list from the config, or the cluster's Node
 * objects (InternalIP or ExternalIP, by config) filtered by a label selector.
 * Per-node overrides (address, port, user, path) apply to both.
 */
import type { ClusterConfig, NodesConfig, PullkeeperConfig } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';

export class InventoryError extends PullkeeperError {}

export interface ClusterNode {
  name: string;
  addresses: Array<{ type: string; address: string }>;
  labels: Record<string, string>;
}

/** The one thing the push needs from Kubernetes. */
export interface NodeLister {
  listNodes(selector: Record<string, string> | undefined, signal?: AbortSignal): Promise<ClusterNode[]>;
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

/** Node listing through @kubernetes/client-node (loaded lazily) for a kubeconfig or in-cluster cluster. */
export function kubernetesNodeLister(cluster: ClusterConfig): NodeLister {
  return {
    async listNodes(selector, signal) {
      const k8s = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      if ('kubeconfig' in cluster) {
        try {
          kc.loadFromFile(cluster.kubeconfig);
        } catch (err) {
          throw new InventoryError(`cluster ${cluster.name}: cannot load kubeconfig ${cluster.kubeconfig}`, {
            cause: err,
          });
        }
        if (cluster.context) kc.setCurrentContext(cluster.context);
      } else if ('inCluster' in cluster) {
        kc.loadFromCluster();
      } else {
        throw new InventoryError(
          `cluster ${cluster.name}: inventory: kubernetes supports clusters with "kubeconfig" or "inCluster" for now; use one, or a static inventory`,
        );
      }
      const core = kc.makeApiClient(k8s.CoreV1Api);
      signal?.throwIfAborted();
      let list: Awaited<ReturnType<typeof core.listNode>>;
      try {
        const ls = labelSelector(selector);
        list = await core.listNode(ls ? { labelSelector: ls } : {});
      } catch (err) {
        const code = (err as { code?: number }).code;
        throw new InventoryError(
          `cluster ${cluster.name}: listing Nodes failed${code ? ` (HTTP ${code})` : ''}: pullkeeper needs "list" on nodes ("pullkeeper rbac" grants it with inventory: kubernetes)`,
          { cause: err },
        );
      }
      return list.items.map((n) => ({
        name: n.metadata?.name ?? '',
        addresses: (n.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })),
        labels: n.metadata?.labels ?? {},
      }));
    },
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
  opts: { lister?: NodeLister; signal?: AbortSignal } = {},
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
    const lister = opts.lister ?? kubernetesNodeLister(pickCluster(config, nodes));
    for (const n of await lister.listNodes(nodes.selector, opts.signal)) {
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
