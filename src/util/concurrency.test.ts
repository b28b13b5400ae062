import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import { assertNoListenerLeak } from '../../test/support/listeners.js';
import { abortable, linkedSignal, mapBounded, pool, Semaphore, sleep, TokenBucket } from './concurrency.js';

const tick = () => new Promise((r) => setImmediate(r));

/** Records the most items running at once. */
function gauge() {
  let running = 0;
  let max = 0;
  return {
    enter() {
      running++;
      max = Math.max(max, running);
    },
    leave() {
      running--;
    },
    get max() {
      return max;
    },
    get running() {
      return running;
    },
  };
}

describe('pool', () => {
  const cases: Array<{ name: string; items: number; concurrency: number; wantMax: number }> = [
    { name: 'fewer items than workers', items: 3, concurrency: 8, wantMax: 3 },
    { name: 'bounded by the concurrency', items: 20, concurrency: 4, wantMax: 4 },
    { name: 'one at a time', items: 5, concurrency: 1, wantMax: 1 },
    { name: 'a concurrency below 1 runs one', items: 5, concurrency: 0, wantMax: 1 },
    { name: 'no items', items: 0, concurrency: 4, wantMax: 0 },
  ];
  for (const c of cases)
    test(c.name, async () => {
      const g = gauge();
      const items = Array.from({ length: c.items }, (_, i) => i);
      const out = await pool(items, { concurrency: c.concurrency }, async (x) => {
        g.enter();
        await sleep(2 + ((x * 7) % 5));
        g.leave();
        return x * 10;
      });
      assert.equal(g.max, c.wantMax);
      assert.deepEqual(
        out,
        items.map((x) => x * 10),
      );
    });

  test('the first failure starts no more items, aborts the running ones, and is what it rejects with', async () => {
    const started: number[] = [];
    const aborted: number[] = [];
    const g = gauge();
    const boom = new Error('item 2 failed');
    await assert.rejects(
      pool(
        Array.from({ length: 10 }, (_, i) => i),
        { concurrency: 3 },
        async (i, _, signal) => {
          started.push(i);
          g.enter();
          try {
            if (i === 2) {
              await sleep(5);
              throw boom;
            }
            await sleep(5_000, signal);
          } catch (err) {
            // The running ones see the first failure as their signal's reason.
            if (i !== 2 && signal.reason === boom) aborted.push(i);
            throw err;
          } finally {
            g.leave();
          }
        },
      ),
      (e) => e === boom,
    );
    assert.deepEqual(started, [0, 1, 2]);
    assert.deepEqual(aborted.sort(), [0, 1]);
    assert.equal(g.running, 0, 'nothing runs after pool returns');
  });

  test('an abort starts no more items; items never started are undefined', async () => {
    const ac = new AbortController();
    const out = await pool([0, 1, 2, 3, 4], { concurrency: 2, signal: ac.signal }, async (i) => {
      if (i === 1) ac.abort(new Error('stop'));
      return i;
    });
    assert.deepEqual(out, [0, 1, undefined, undefined, undefined]);
  });

  test('stop() is asked before each item starts', async () => {
    let done = 0;
    const out = await pool([0, 1, 2, 3], { concurrency: 1, stop: () => done >= 2 }, async (i) => {
      done++;
      return i;
    });
    assert.deepEqual(out, [0, 1, undefined, undefined]);
  });

  test('leaves no listener on the caller signal', async () => {
    const ac = new AbortController();
    for (let n = 0; n < 50; n++) await pool([1, 2, 3], { concurrency: 2, signal: ac.signal }, async (x) => x);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});

describe('mapBounded', () => {
  test('every result in order', async () => {
    assert.deepEqual(await mapBounded([3, 1, 2], 2, async (x) => x * 2), [6, 2, 4]);
  });
  test('an abort before the end rejects with its reason', async () => {
    const ac = new AbortController();
    await assert.rejects(
      mapBounded(
        [0, 1, 2],
        1,
        async (i) => {
          if (i === 0) ac.abort(new Error('cancelled'));
          return i;
        },
        ac.signal,
      ),
      /cancelled/,
    );
  });
});

describe('sleep', () => {
  test('many sleeps on one signal leave no listener and no warning', async () => {
    const ac = new AbortController();
    await assertNoListenerLeak(ac.signal, () =>
      Promise.all(Array.from({ length: 500 }, () => sleep(1, ac.signal))),
    );
  });
  test('an abort ends the wait at once with the reason', async () => {
    const ac = new AbortController();
    const p = sleep(60_000, ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
  test('an already aborted signal rejects', async () => {
    await assert.rejects(sleep(1, AbortSignal.abort(new Error('gone'))), /gone/);
  });
});

describe('linkedSignal', () => {
  test('aborts with the parent, tells it from a timeout, and disposes its listener', () => {
    const parent = new AbortController();
    const l = linkedSignal(parent.signal, 60_000);
    assert.equal(getEventListeners(parent.signal, 'abort').length, 1);
    parent.abort(new Error('parent'));
    assert.equal(l.signal.aborted, true);
    assert.equal(l.timedOut(), false);
    l.dispose();
    const p2 = new AbortController();
    const l2 = linkedSignal(p2.signal);
    l2.dispose();
    assert.equal(getEventListeners(p2.signal, 'abort').length, 0);
  });
  test('times out', async () => {
    const l = linkedSignal(undefined, 5);
    await new Promise((r) => l.signal.addEventListener('abort', r));
    assert.equal(l.timedOut(), true);
    assert.equal((l.signal.reason as Error).name, 'TimeoutError');
    l.dispose();
  });
});

describe('Semaphore', () => {
  test('holds at most n; an aborted waiter leaves the queue and takes no slot', async () => {
    const sem = new Semaphore(1);
    let release!: () => void;
    const holder = sem.run(() => new Promise<void>((r) => (release = r)));
    await tick();
    const ac = new AbortController();
    const waiter = sem.run(async () => 'should not run', ac.signal);
    await tick();
    assert.equal(sem.waiting, 1);
    ac.abort(new Error('gave up'));
    await assert.rejects(waiter, /gave up/);
    assert.equal(sem.waiting, 0);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    release();
    await holder;
    // The slot came back: the next run starts at once.
    assert.equal(await sem.run(async () => 'next'), 'next');
  });
  test('waiters granted a slot remove their abort listener', async () => {
    const sem = new Semaphore(2);
    const ac = new AbortController();
    const g = gauge();
    await Promise.all(
      Array.from({ length: 100 }, () =>
        sem.run(async () => {
          g.enter();
          await sleep(1);
          g.leave();
        }, ac.signal),
      ),
    );
    assert.equal(g.max, 2);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});

describe('TokenBucket', () => {
  test('the burst is free, then one token per 1/qps', async () => {
    let t = 0;
    const b = new TokenBucket(10, 3, () => t);
    for (let i = 0; i < 3; i++) await b.take();
    // Empty: the next take waits; advance the fake clock as the wait would.
    const p = b.take();
    t = 100;
    await p;
  });
  test('waits on one signal remove their listeners; an abort mid-wait rejects at once', async () => {
    const b = new TokenBucket(1000, 1);
    const ac = new AbortController();
    for (let i = 0; i < 200; i++) await b.take(ac.signal);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    const slow = new TokenBucket(0.001, 1);
    await slow.take(ac.signal);
    const waiting = slow.take(ac.signal);
    await tick();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('cancelled'));
    await assert.rejects(waiting, /cancelled/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});

describe('abortable', () => {
  test('a call that takes no signal: the abort rejects at once, the late answer is dropped', async () => {
    const ac = new AbortController();
    let fail!: (e: Error) => void;
    const call = new Promise<string>((_, rej) => (fail = rej));
    const p = abortable(call, ac.signal);
    ac.abort(new Error('cancelled'));
    await assert.rejects(p, /cancelled/);
    // A late failure of the call is not an unhandled rejection (the test runner would report it).
    fail(new Error('late'));
    await tick();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
  test('an answer or error in time passes through and removes the listener', async () => {
    const ac = new AbortController();
    assert.equal(await abortable(Promise.resolve(7), ac.signal), 7);
    await assert.rejects(abortable(Promise.reject(new Error('no')), ac.signal), /no/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
  test('an already aborted signal rejects without waiting', async () => {
    await assert.rejects(
      abortable(new Promise(() => undefined), AbortSignal.abort(new Error('gone'))),
      /gone/,
    );
  });
});
