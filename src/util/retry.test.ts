import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import { assertNoListenerLeak } from '../../test/support/listeners.js';
import { type RetryOptions, retry, TimeoutError } from './retry.js';

class Status extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs?: number,
  ) {
    super(`HTTP ${status}`);
  }
}

const retryableStatus = (e: unknown) => e instanceof Status && (e.status === 429 || e.status >= 500);

describe('retry', () => {
  // Each case: what the attempts answer (a status or 'ok'), the options, and what must happen.
  const cases: Array<{
    name: string;
    answers: Array<number | 'ok'>;
    opts?: Partial<RetryOptions>;
    calls: number;
    result: 'ok' | RegExp;
    delays?: number[];
  }> = [
    { name: 'success at once', answers: ['ok'], calls: 1, result: 'ok' },
    { name: '503 then success', answers: [503, 'ok'], calls: 2, result: 'ok', delays: [100] },
    {
      name: 'exhausts the attempts and rejects with the last error',
      answers: [503, 500, 502],
      calls: 3,
      result: /HTTP 502/,
    },
    { name: 'a 4xx is not retried', answers: [403, 'ok'], calls: 1, result: /HTTP 403/ },
    {
      name: 'one attempt: no retry',
      answers: [503, 'ok'],
      opts: { attempts: 1 },
      calls: 1,
      result: /HTTP 503/,
    },
    {
      name: 'full jitter: the ceiling doubles, capped',
      answers: [503, 503, 503, 503, 'ok'],
      opts: { attempts: 5, baseMs: 100, maxDelayMs: 300 },
      calls: 5,
      result: 'ok',
      delays: [50, 100, 150, 150],
    },
  ];
  for (const c of cases)
    test(c.name, async () => {
      let calls = 0;
      const delays: number[] = [];
      const run = retry(
        async () => {
          const a = c.answers[calls++]!;
          if (a === 'ok') return 'ok';
          throw new Status(a);
        },
        {
          attempts: 3,
          baseMs: 200,
          retryable: retryableStatus,
          random: () => 0.5,
          onRetry: (_e, _n, d) => delays.push(d),
          ...c.opts,
        },
      );
      if (c.result === 'ok') assert.equal(await run, 'ok');
      else await assert.rejects(run, c.result);
      assert.equal(calls, c.calls);
      if (c.delays) assert.deepEqual(delays, c.delays);
    });

  test('Retry-After replaces the jitter, capped by maxRetryAfterMs', async () => {
    const delays: number[] = [];
    let calls = 0;
    const answers = [new Status(429, 30), new Status(503, 60_000)];
    const out = await retry(
      async () => {
        const a = answers[calls++];
        if (a) throw a;
        return 'ok';
      },
      {
        attempts: 3,
        retryable: retryableStatus,
        retryAfterMs: (e) => (e as Status).retryAfterMs,
        maxRetryAfterMs: 40,
        onRetry: (_e, _n, d) => delays.push(d),
      },
    );
    assert.equal(out, 'ok');
    assert.deepEqual(delays, [30, 40]);
  });

  test('maxElapsedMs: no wait that would end past the bound', async () => {
    let t = 0;
    let calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          t += 400;
          throw new Status(503, 500);
        },
        {
          attempts: 10,
          retryable: retryableStatus,
          retryAfterMs: (e) => (e as Status).retryAfterMs,
          maxElapsedMs: 1000,
          now: () => t,
        },
      ),
      /HTTP 503/,
    );
    // 400 ms spent, 500 ms wait fits (ends at 900); the second attempt ends at 1300: give up.
    assert.equal(calls, 2);
  });

  test('a per-attempt timeout aborts the attempt and is retried as a TimeoutError', async () => {
    let calls = 0;
    const signals: AbortSignal[] = [];
    await assert.rejects(
      retry(
        (signal) => {
          calls++;
          signals.push(signal);
          return new Promise<never>((_, rej) => signal.addEventListener('abort', () => rej(signal.reason)));
        },
        { attempts: 2, timeoutMs: 20, baseMs: 1, retryable: () => false },
      ),
      (e) => e instanceof TimeoutError && /timed out after 20 ms/.test(e.message),
    );
    assert.equal(calls, 2);
    assert.ok(signals.every((s) => s.aborted));
  });

  test('the caller aborting mid-wait rejects at once with its reason', async () => {
    const ac = new AbortController();
    const started = performance.now();
    const p = retry(
      async () => {
        throw new Status(503, 60_000);
      },
      {
        attempts: 3,
        retryable: retryableStatus,
        retryAfterMs: (e) => (e as Status).retryAfterMs,
        maxRetryAfterMs: 60_000,
        signal: ac.signal,
        onRetry: () => setImmediate(() => ac.abort(new Error('cancelled'))),
      },
    );
    await assert.rejects(p, /cancelled/);
    assert.ok(performance.now() - started < 30_000);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  test('the caller aborting mid-attempt aborts the attempt and does not retry', async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = retry(
      (signal) => {
        calls++;
        setImmediate(() => ac.abort(new Error('cancelled')));
        return new Promise<never>((_, rej) => signal.addEventListener('abort', () => rej(signal.reason)));
      },
      { attempts: 5, timeoutMs: 60_000, retryable: () => true, signal: ac.signal },
    );
    await assert.rejects(p, /cancelled/);
    assert.equal(calls, 1);
  });

  test('an aborted signal runs nothing', async () => {
    let calls = 0;
    await assert.rejects(
      retry(async () => calls++, {
        attempts: 3,
        retryable: () => true,
        signal: AbortSignal.abort(new Error('gone')),
      }),
      /gone/,
    );
    assert.equal(calls, 0);
  });

  test('many retries on one long-lived signal leave no listener and no warning', async () => {
    const ac = new AbortController();
    await assertNoListenerLeak(ac.signal, () =>
      Promise.all(
        Array.from({ length: 300 }, () => {
          let n = 0;
          return retry(
            async () => {
              if (n++ < 2) throw new Status(503);
              return n;
            },
            { attempts: 3, baseMs: 1, timeoutMs: 10_000, retryable: retryableStatus, signal: ac.signal },
          );
        }),
      ),
    );
  });
});
