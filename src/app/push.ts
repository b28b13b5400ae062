/**
 * The node push use case: desired config.json entries from the nodes'
 * registries, merged into every selected node's file over SSH/SFTP, with
 * bounded fan-out and an optional canary batch. `check: true` only reports
 * drift. The CLI (`pullkeeper push`) and the refresh use case call this; a
 * bootstrap hook calls `pushNode(config, name)` to make one new node ready.
 */
import { createHash } from 'node:crypto';
import { firstUseRefusal, type PullkeeperConfig, trustOnFirstUseOf } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import { credentialsToDockerConfig, expiringKeys } from '../core/credentials.js';
import { PullkeeperError } from '../core/errors.js';
import type { KubeClient } from '../kube/client.js';
import { fanout } from '../nodes/fanout.js';
import {
  type NodeLister,
  type NodeTarget,
  type ResolvedInventory,
  resolveInventory,
} from '../nodes/inventory.js';
import { parseKnownHosts, pinsFor } from '../nodes/known-hosts.js';
import { type NodeReportEntry, pushToNode } from '../nodes/push-node.js';
import type { RegistryCredential } from '../providers/types.js';
import { type HostKeyBook, HostKeyRecordError, openHostKeyBook } from './host-key-store.js';
import { type MintOptions, type MintReportEntry, mintCredentials } from './mint.js';

export type { NodeReportEntry } from '../nodes/push-node.js';

export class PushError extends PullkeeperError {}

export interface PushOptions {
  /** Only these nodes (by name); default every node in the inventory. */
  nodes?: string[];
  /**
   * Leave out names of `nodes` the inventory no longer has, instead of failing
   * (a fan-out batch enqueued before a Node went away).
   */
  skipUnknown?: boolean;
  /** Report drift only; write nothing. */
  check?: boolean;
  signal?: AbortSignal;
  /** Already minted credentials (the refresh use case); default: mint nodes.registries here. */
  credentials?: Map<string, RegistryCredential>;
  /** The mint report that goes with `credentials`, returned as is. */
  registries?: MintReportEntry[];
  /** A Node lister (kubernetes inventory) or a fixed target list, instead of the config's. */
  inventory?: NodeLister | NodeTarget[];
  /** Images to pre-pull on every selected node after its file is in place (`pullkeeper-node pull`). */
  prePull?: string[];
  secrets?: SecretResolver;
  /** Passed to mintCredentials when minting here. */
  mint?: Omit<MintOptions, 'registries' | 'signal' | 'secrets'>;
  /** The clock (tests): decides whether an expiring entry on a node is due. */
  now?: Date;
  /** Called as each node finishes (progress display). */
  onNode?: (entry: NodeReportEntry, done: number, total: number) => void;
  /** A client for the status store's cluster, where host keys trusted on first use are recorded (tests); default from the config. */
  kube?: (cluster: string) => Promise<KubeClient>;
}

export interface PushResult {
  registries: MintReportEntry[];
  nodes: NodeReportEntry[];
  /** Set when the canary rule stopped the run. */
  halted?: string;
  /** Set when the record of host keys trusted on first use could not be read or updated (secret-free). */
  hostKeyRecordError?: string;
}

export async function pushNodes(config: PullkeeperConfig, opts: PushOptions = {}): Promise<PushResult> {
  const nodes = config.nodes;
  if (!nodes)
    throw new PushError(
      'the config has no "nodes" section: add one to push node credentials (docs/nodes.md)',
    );
  const signal = opts.signal ?? new AbortController().signal;
  const secrets = opts.secrets ?? createSecretResolver({ signal });

  // Credentials first: nothing is pushed unless every configured registry has a good one.
  let registries = opts.registries ?? [];
  let credentials = opts.credentials;
  if (!credentials) {
    const minted = await mintCredentials(config, {
      ...opts.mint,
      registries: nodes.registries,
      signal,
      secrets,
      ...(opts.nodes?.length ? { names: opts.nodes } : {}),
    });
    registries = minted.registries;
    credentials = minted.credentials;
  }

  let inv: ResolvedInventory;
  if (Array.isArray(opts.inventory)) inv = { targets: opts.inventory, unaddressable: [] };
  else
    inv = await resolveInventory(config, {
      ...(opts.inventory ? { lister: opts.inventory } : {}),
      signal,
      secrets,
      ...(opts.nodes?.length ? { names: opts.nodes } : {}),
    });

  if (opts.nodes?.length) {
    const known = new Set([...inv.targets.map((t) => t.name), ...inv.unaddressable.map((u) => u.name)]);
    const unknown = opts.nodes.filter((n) => !known.has(n));
    if (unknown.length && !opts.skipUnknown)
      throw new PushError(
        `unknown node ${unknown.map((u) => `"${u}"`).join(', ')}; the inventory has ${[...known].join(', ') || 'no nodes'}`,
      );
    const want = new Set(opts.nodes);
    inv = {
      targets: inv.targets.filter((t) => want.has(t.name)),
      unaddressable: inv.unaddressable.filter((u) => want.has(u.name)),
    };
  }

  const failedEntry = (name: string, address: string, reason: string): NodeReportEntry => ({
    name,
    address,
    status: 'failed',
    reason,
    ms: 0,
  });
  const unaddressable = inv.unaddressable.map((u) => failedEntry(u.name, '', u.reason));

  const missing = nodes.registries.filter((r) => !credentials.has(r));
  if (missing.length) {
    const why = missing
      .map((r) => {
        const e = registries.find((x) => x.name === r)?.error;
        return `${r}${e ? ` (${e})` : ''}`;
      })
      .join('; ');
    const reason = `not pushed: no good credential for ${why}; the node keeps its last good file`;
    return {
      registries,
      nodes: [...inv.targets.map((t) => failedEntry(t.name, t.address, reason)), ...unaddressable],
    };
  }
  const creds = nodes.registries.map((r) => credentials.get(r)!);
  const desired = credentialsToDockerConfig(creds);
  // Entries of expiring credentials stay on a node until due (a cold start mints anew: no rewrite).
  const expiring = expiringKeys(
    creds.map((c) => ({ ...c, source: registryFingerprint(config, c.registry) })),
    config.refreshAtFraction,
  );
  const now = opts.now ?? new Date();
  const privateKey = await secrets.resolve(nodes.ssh.privateKey);
  const knownHosts = parseKnownHosts(nodes.ssh.knownHosts ? await secrets.resolve(nodes.ssh.knownHosts) : '');

  // Trust on first use: the record of accepted keys is read once; a key accepted now is recorded before
  // anything is sent to that node. Unreadable, the record fails closed (only pinned nodes are pushed).
  const tofu = trustOnFirstUseOf(nodes).enabled;
  let firstUseRefused = firstUseRefusal(nodes);
  let book: HostKeyBook | undefined;
  let hostKeyRecordError: string | undefined;
  const unpinned = inv.targets.some((t) => !pinsFor(knownHosts, t.address, t.port).keys.length);
  if (tofu && !firstUseRefused && unpinned) {
    try {
      book = await openHostKeyBook(config, { signal, secrets, ...(opts.kube ? { kube: opts.kube } : {}) });
    } catch (err) {
      if (!(err instanceof HostKeyRecordError)) throw err;
      hostKeyRecordError = err.message;
      firstUseRefused = `not trusted on first use: ${err.message}`;
    }
  }

  let done = 0;
  const total = inv.targets.length;
  const { results, halted } = await fanout(
    inv.targets,
    { concurrency: nodes.ssh.concurrency, ...(nodes.canary ? { canary: nodes.canary } : {}), signal },
    async (t) => {
      const entry = await pushToNode(t, {
        desired,
        expiring,
        now,
        privateKey,
        knownHosts,
        trustOnFirstUse: tofu,
        ...(book ? { hostKeys: book } : {}),
        ...(firstUseRefused ? { firstUseRefused } : {}),
        timeoutMs: nodes.ssh.timeoutMs,
        check: opts.check ?? false,
        replaceMalformed: nodes.replaceMalformed,
        ...(nodes.afterWrite ? { afterWrite: nodes.afterWrite } : {}),
        ...(opts.prePull?.length && !opts.check
          ? {
              prePull: {
                images: opts.prePull,
                command: nodes.prePull.command,
                timeoutMs: nodes.prePull.timeoutMs,
              },
            }
          : {}),
        signal,
      });
      opts.onNode?.(entry, ++done, total);
      return entry;
    },
    (e) => e.status !== 'failed',
  ).finally(async () => {
    if (!book) return;
    hostKeyRecordError ??= await book.flush();
    book.close();
  });
  // Array.from, not map: items never attempted are holes in `results`.
  const entries = Array.from(
    results,
    (r, i) =>
      r ??
      failedEntry(
        inv.targets[i]!.name,
        inv.targets[i]!.address,
        halted ? `not attempted: ${halted}` : 'not attempted: the run was aborted',
      ),
  );
  return {
    registries,
    nodes: [...entries, ...unaddressable],
    ...(halted ? { halted } : {}),
    ...(hostKeyRecordError ? { hostKeyRecordError } : {}),
  };
}

/** What a registry's credential is minted from, for the node sidecar: a 64-bit hash of its config (secret references, or a literal value), kept beside the file that holds the credential itself. */
function registryFingerprint(config: PullkeeperConfig, name: string): string {
  const r = config.registries.find((x) => x.name === name);
  return createHash('sha256')
    .update(JSON.stringify(r ?? name))
    .digest('hex')
    .slice(0, 16);
}

/** Makes one node ready now (a bootstrap hook for a new node). */
export async function pushNode(
  config: PullkeeperConfig,
  name: string,
  opts: Omit<PushOptions, 'nodes'> = {},
): Promise<NodeReportEntry> {
  const r = await pushNodes(config, { ...opts, nodes: [name] });
  return r.nodes[0]!;
}
