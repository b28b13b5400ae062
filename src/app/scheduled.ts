/**
 * The scheduled refresh and its SQS fan-out, as the Lambda functions run them.
 * Small fleets refresh in one invocation; with PULLKEEPER_FANOUT_QUEUE_URL set
 * and more tenants than PULLKEEPER_FANOUT_MIN_TENANTS (default 50), the
 * scheduler only enqueues one message per tenant and per 50 nodes, and the
 * worker function does the work (docs/scale.md).
 */
import { configFromEnvOnce } from '../config/load.js';
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
  if (queue && config.tenants.length >= Number(env.PULLKEEPER_FANOUT_MIN_TENANTS ?? 50)) {
    const nodes =
      config.nodes && config.nodes.inventory !== 'kubernetes'
        ? config.nodes.inventory.map((n) => n.name)
        : [];
    const sent = await enqueueFanout(
      queue,
      fanoutMessages(
        config.tenants.map((t) => t.name),
        nodes,
      ),
      signal,
    );
    log.info('fanout: enqueued', { messages: sent, tenants: config.tenants.length, nodes: nodes.length });
    return { mode: 'fanout', enqueued: sent };
  }
  const r = await refresh(config, { signal, cache: processCache });
  await recordReport(config, r, { signal, log });
  log.info('scheduled refresh', summarize(r));
  for (const line of processMetrics.emf('pullkeeper', new Date())) process.stdout.write(`${line}\n`);
  if (refreshFailed(r)) log.warn('scheduled refresh had failures', { failed: summarize(r).registriesFailed });
  return { mode: 'inline', ...r };
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
        const r = await pushNodes(config, { nodes, signal: s });
        lastSeen.add([], r.nodes);
        const saved = await saveStatus(config, { nodes: r.nodes }, { signal: s });
        if (saved.error) wlog.warn('status not saved', { error: saved.error });
        return { ok: !r.nodes.some((n) => n.status === 'failed') };
      },
    },
    { log: wlog, signal },
  );
}
