/**
 * Fan-out for large fleets: the scheduled refresh sends one SQS message per
 * tenant (and per batch of nodes); the worker function handles a batch and
 * answers with partial batch failures (`ReportBatchItemFailures`), so one
 * failed tenant is redelivered alone. Messages are idempotent: handling one
 * twice converges to the same state (refresh writes only what changed).
 */
import * as z from 'zod';
import { mapBounded } from '../util/concurrency.js';
import type { Logger } from './log.js';

export const FanoutMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    v: z.literal(1),
    type: z.literal('tenant'),
    tenant: z.string().min(1),
    dryRun: z.boolean().default(false),
  }),
  z.strictObject({
    v: z.literal(1),
    type: z.literal('nodes'),
    nodes: z.array(z.string().min(1)).min(1).max(500),
  }),
]);
export type FanoutMessage = z.infer<typeof FanoutMessageSchema>;

/** The SQS event as Lambda delivers it (the fields used here). */
export interface SqsEvent {
  Records: Array<{ messageId: string; body: string; attributes?: { ApproximateReceiveCount?: string } }>;
}
export interface SqsBatchResponse {
  batchItemFailures: Array<{ itemIdentifier: string }>;
}

export interface FanoutHandlers {
  tenant(tenant: string, dryRun: boolean, signal: AbortSignal): Promise<{ ok: boolean }>;
  nodes(nodes: string[], signal: AbortSignal): Promise<{ ok: boolean }>;
}

/** Handles a batch; a malformed message is logged and dropped (redelivering it cannot help). */
export async function handleFanoutBatch(
  event: SqsEvent,
  handlers: FanoutHandlers,
  o: { log: Logger; signal: AbortSignal; concurrency?: number },
): Promise<SqsBatchResponse> {
  const failures: Array<{ itemIdentifier: string }> = [];
  // Each record's failure is its own (reported for redelivery), so no record stops the others.
  await mapBounded(event.Records, o.concurrency ?? 4, async (rec) => {
    let msg: FanoutMessage;
    try {
      msg = FanoutMessageSchema.parse(JSON.parse(rec.body));
    } catch {
      o.log.error('fanout: malformed message dropped', { messageId: rec.messageId });
      return;
    }
    try {
      const res =
        msg.type === 'tenant'
          ? await handlers.tenant(msg.tenant, msg.dryRun, o.signal)
          : await handlers.nodes(msg.nodes, o.signal);
      if (!res.ok) throw new Error('reported failure');
      o.log.info('fanout: done', { messageId: rec.messageId, type: msg.type });
    } catch (err) {
      failures.push({ itemIdentifier: rec.messageId });
      o.log.warn('fanout: failed; SQS will redeliver it', {
        messageId: rec.messageId,
        type: msg.type,
        ...(msg.type === 'tenant' ? { tenant: msg.tenant } : { nodes: msg.nodes.length }),
        receiveCount: rec.attributes?.ApproximateReceiveCount,
        reason: (err as Error).message,
      });
    }
  });
  return { batchItemFailures: failures };
}

/** The messages for one scheduled run: a message per tenant, nodes in batches. */
export function fanoutMessages(
  tenants: string[],
  nodes: string[],
  nodeBatch = 50,
  dryRun = false,
): FanoutMessage[] {
  const out: FanoutMessage[] = tenants.map((tenant) => ({ v: 1, type: 'tenant', tenant, dryRun }));
  for (let i = 0; i < nodes.length; i += nodeBatch)
    out.push({ v: 1, type: 'nodes', nodes: nodes.slice(i, i + nodeBatch) });
  return out;
}

/** Sends messages to a queue, 10 per SendMessageBatch (the SQS maximum); fails loudly on any entry that failed. */
export async function enqueueFanout(
  queueUrl: string,
  messages: FanoutMessage[],
  signal: AbortSignal,
): Promise<number> {
  const { SQSClient, SendMessageBatchCommand } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({});
  try {
    let sent = 0;
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      const out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((m, j) => ({ Id: String(j), MessageBody: JSON.stringify(m) })),
        }),
        { abortSignal: signal },
      );
      if (out.Failed?.length)
        throw new Error(
          `SQS refused ${out.Failed.length} message(s): ${out.Failed.map((f) => f.Code).join(', ')}`,
        );
      sent += chunk.length;
    }
    return sent;
  } finally {
    sqs.destroy();
  }
}

/**
 * Local stand-in for Lambda's SQS event source (what serverless-offline-sqs
 * does): receive up to `batchSize`, hand the batch to the worker, delete every
 * message not listed in batchItemFailures; failed ones reappear after the
 * queue's visibility timeout. Stops when `signal` aborts or after `maxEmptyPolls`.
 */
export async function pollQueue(
  queueUrl: string,
  worker: (e: SqsEvent) => Promise<SqsBatchResponse>,
  o: { signal: AbortSignal; batchSize?: number; waitSeconds?: number; maxEmptyPolls?: number },
): Promise<{ batches: number; deleted: number; failed: number }> {
  const { SQSClient, ReceiveMessageCommand, DeleteMessageBatchCommand } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({});
  const stats = { batches: 0, deleted: 0, failed: 0 };
  let empty = 0;
  try {
    while (!o.signal.aborted && empty < (o.maxEmptyPolls ?? Number.POSITIVE_INFINITY)) {
      const got = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: Math.min(10, o.batchSize ?? 10),
          WaitTimeSeconds: o.waitSeconds ?? 1,
          MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        }),
        { abortSignal: o.signal },
      );
      const msgs = got.Messages ?? [];
      if (!msgs.length) {
        empty++;
        continue;
      }
      empty = 0;
      stats.batches++;
      const res = await worker({
        Records: msgs.map((m) => ({
          messageId: m.MessageId!,
          body: m.Body ?? '',
          attributes: { ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount },
        })),
      });
      const failed = new Set(res.batchItemFailures.map((f) => f.itemIdentifier));
      const done = msgs.filter((m) => !failed.has(m.MessageId!));
      stats.failed += failed.size;
      if (done.length) {
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
        stats.deleted += done.length;
      }
    }
    return stats;
  } finally {
    sqs.destroy();
  }
}
