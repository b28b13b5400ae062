import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { handleFanoutBatch, type SqsEvent } from './fanout.js';
import { createLogger } from './log.js';

const rec = (messageId: string, body: unknown) => ({
  messageId,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

describe('handleFanoutBatch', () => {
  test('each record fails alone: malformed ones are dropped, failed ones are reported for redelivery', async () => {
    const logs: string[] = [];
    const event = {
      Records: [
        rec('m-ok', { v: 1, type: 'tenant', tenant: 'team-a', dryRun: false }),
        rec('m-bad-json', '{not json'),
        rec('m-reported', { v: 1, type: 'tenant', tenant: 'team-b', dryRun: false }),
        rec('m-throws', { v: 1, type: 'nodes', nodes: ['n1', 'n2'] }),
        rec('m-nodes-ok', { v: 1, type: 'nodes', nodes: ['n3'] }),
      ],
    } as unknown as SqsEvent;
    const seen: string[] = [];
    const res = await handleFanoutBatch(
      event,
      {
        tenant: async (t) => {
          seen.push(`tenant ${t}`);
          return { ok: t === 'team-a' };
        },
        nodes: async (n) => {
          seen.push(`nodes ${n.join(',')}`);
          if (n.includes('n1')) throw new Error('ssh refused');
          return { ok: true };
        },
      },
      {
        log: createLogger({ sink: (l) => logs.push(l) }),
        signal: AbortSignal.timeout(10_000),
        concurrency: 2,
      },
    );
    assert.deepEqual(res.batchItemFailures.map((f) => f.itemIdentifier).sort(), ['m-reported', 'm-throws']);
    assert.deepEqual(seen.sort(), ['nodes n1,n2', 'nodes n3', 'tenant team-a', 'tenant team-b']);
    assert.ok(logs.some((l) => l.includes('malformed message dropped') && l.includes('m-bad-json')));
  });

  for (const concurrency of [1, 3]) {
    test(`at most ${concurrency} record(s) in flight`, async () => {
      let inFlight = 0;
      let most = 0;
      const event = {
        Records: Array.from({ length: 8 }, (_, i) =>
          rec(`m${i}`, { v: 1, type: 'tenant', tenant: `t${i}`, dryRun: true }),
        ),
      } as unknown as SqsEvent;
      const res = await handleFanoutBatch(
        event,
        {
          tenant: async () => {
            inFlight++;
            most = Math.max(most, inFlight);
            await new Promise((r) => setTimeout(r, 5));
            inFlight--;
            return { ok: true };
          },
          nodes: async () => ({ ok: true }),
        },
        { log: createLogger({ sink: () => {} }), signal: AbortSignal.timeout(10_000), concurrency },
      );
      assert.deepEqual(res.batchItemFailures, []);
      assert.equal(most, concurrency);
    });
  }
});
