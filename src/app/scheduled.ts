/**
 * The scheduled refresh and its SQS fan-out, as the Lambda functions run them.
 * Small fleets refresh in one invocation; with PULLKEEPER_FANOUT_QUEUE_URL set
 * (serverless.yml: the stack's FanoutQueue) and at least
 * PULLKEEPER_FANOUT_MIN_TENANTS tenants (default 50), the scheduler only
 * enqueues one message per tenant and per batch of nodes
 * (PULLKEEPER_FANOUT_NODE_BATCH, default 50) of either inventory (a
 * `kubernetes` one is listed here), and the worker function does the work
 * (docs/scale.md).
 */
import { configFromEnvOnce } from '../config/load.js';
import type { PullkeeperConfig } from '../config/schema.js';
import { processMetrics, recordReport, summarize } from './compose.js';
import {
  enqueueFanout,
  fanoutMessages,
  handleFanoutBatch,
  type SqsBatchResponse,
  type SqsEvent,
} from './fanout.js';
import { createLogger } from './log.js';
import { processCache } from './mint.js';
import { refresh, refreshFailed } from './refresh.js';
import { lastSeen } from './status-report.js';
import { saveStatus } from './status-store.js';

const log = createLogger({}, { fn: 'refresh' });

export async function scheduledRefresh(env: NodeJS.ProcessEnv = process.env) {
  const signal = AbortSignal.timeout(Number(env.PULLKEEPER_DEADLINE_MS ?? 110_000));
  const config = await configFromEnvOnce(env);
  const queue = env.PULLKEEPER_FANOUT_QUEUE_URL;
  if (queue && config.tenants.length >= Number(env.PULLKEEPER_FANOUT_MIN_TENANTS || 50)) {
    const { nodes, nodesError } = await inventoryNames(config, signal);
    const sent = await enqueueFanout(
      queue,
      fanoutMessages(
        config.tenants.map((t) => t.name),
        nodes,
        Math.min(500, Math.max(1, Number(env.PULLKEEPER_FANOUT_NODE_BATCH) || 50)),
      ),
      signal,
    );
    log.info('fanout: enqueued', { messages: sent, tenants: config.tenants.length, nodes: nodes.length });
    return { mode: 'fanout', enqueued: sent, nodes: nodes.length, ...(nodesError ? { nodesError } : {}) };
  }
  const r = await refresh(config, { signal, cache: processCache });
  await recordReport(config, r, { signal, log });
  log.info('scheduled refresh', summarize(r));
  for (const line of processMetrics.emf('pullkeeper', new Date())) process.stdout.write(`${line}\n`);
  if (refreshFailed(r)) log.warn('scheduled refresh had failures', { failed: summarize(r).registriesFailed });
  return { mode: 'inline', ...r };
}

/**
 * Every node name of the inventory, once each (a `kubernetes` inventory is
 * listed from its cluster). A failed listing does not hold back the tenants'
 * messages: it is logged and returned, and the next run lists again.
 */
async function inventoryNames(
  config: PullkeeperConfig,
  signal: AbortSignal,
): Promise<{ nodes: string[]; nodesError?: string }> {
  if (!config.nodes) return { nodes: [] };
  try {
    const { resolveInventory } = await import('../nodes/inventory.js');
    const inv = await resolveInventory(config, { signal });
    // Unaddressable Nodes go too: the worker reports them failed, so the run names every node.
    return { nodes: [...new Set([...inv.targets, ...inv.unaddressable].map((n) => n.name))] };
  } catch (err) {
    const nodesError = (err as Error).message;
    log.error('fanout: the node inventory could not be read; no node batch this run', { error: nodesError });
    return { nodes: [], nodesError };
  }
}

export async function fanoutWorker(
  event: SqsEvent,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SqsBatchResponse> {
  const signal = AbortSignal.timeout(Number(env.PULLKEEPER_DEADLINE_MS ?? 110_000));
  const config = await configFromEnvOnce(env);
  const wlog = log.child({ fn: 'worker' });
  return handleFanoutBatch(
    event,
    {
      async tenant(tenant, dryRun, s) {
        const r = await refresh(config, {
          tenants: [tenant],
          dryRun,
          signal: s,
          cache: processCache,
          nodes: false,
        });
        if (!dryRun) await recordReport(config, r, { signal: s, log: wlog });
        wlog.info('tenant refreshed', { tenant, ...summarize(r) });
        return { ok: !refreshFailed(r) };
      },
      async nodes(nodes, s) {
        const { pushNodes } = await import('./push.js');
        const r = await pushNodes(config, { nodes, signal: s, skipUnknown: true });
        const gone = nodes.filter((n) => !r.nodes.some((x) => x.name === n));
        if (gone.length) wlog.info('nodes no longer in the inventory, skipped', { nodes: gone });
        lastSeen.add([], r.nodes);
        const saved = await saveStatus(config, { nodes: r.nodes }, { signal: s });
        if (saved.error) wlog.warn('status not saved', { error: saved.error });
        return { ok: !r.nodes.some((n) => n.status === 'failed') };
      },
    },
    { log: wlog, signal },
  );
}
