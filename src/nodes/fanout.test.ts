import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CanaryGate, fanout } from './fanout.js';

describe('CanaryGate', () => {
  const table: Array<{
    name: string;
    policy?: { count: number; maxFailureFraction: number };
    results: boolean[];
    halt: boolean;
  }> = [
    { name: 'no policy never halts', results: [false, false, false], halt: false },
    {
      name: 'canary not complete yet',
      policy: { count: 3, maxFailureFraction: 0 },
      results: [false, false],
      halt: false,
    },
    {
      name: 'canary all failed',
      policy: { count: 2, maxFailureFraction: 0.5 },
      results: [false, false],
      halt: true,
    },
    {
      name: 'exactly the fraction is not more',
      policy: { count: 2, maxFailureFraction: 0.5 },
      results: [true, false],
      halt: false,
    },
    { name: 'zero tolerance', policy: { count: 1, maxFailureFraction: 0 }, results: [false], halt: true },
    {
      name: 'count 0: judged from the first result on',
      policy: { count: 0, maxFailureFraction: 0.5 },
      results: [false],
      halt: true,
    },
    {
      name: 'later failures push it over',
      policy: { count: 1, maxFailureFraction: 0.5 },
      results: [true, false, false],
      halt: true,
    },
    {
      name: 'fraction 1 never halts',
      policy: { count: 1, maxFailureFraction: 1 },
      results: [false, false],
      halt: false,
    },
  ];
  for (const c of table)
    test(c.name, () => {
      const g = new CanaryGate(c.policy);
      for (const r of c.results) g.record(r);
      assert.equal(g.haltReason() !== undefined, c.halt);
    });
});

describe('fanout', () => {
  test('bounded concurrency, results in item order', async () => {
    let inFlight = 0;
    let peak = 0;
    const { results, halted } = await fanout(
      [5, 1, 4, 2, 3, 0, 6],
      { concurrency: 3 },
      async (ms) => {
        peak = Math.max(peak, ++inFlight);
        await sleep(ms * 3);
        inFlight--;
        return ms * 10;
      },
      () => true,
    );
    assert.equal(halted, undefined);
    assert.equal(peak, 3);
    assert.deepEqual(results, [50, 10, 40, 20, 30, 0, 60]);
  });

  test('the canary batch runs first and alone; a failed canary stops the rest', async () => {
    const started: number[] = [];
    const { results, halted } = await fanout(
      [0, 1, 2, 3, 4, 5],
      { concurrency: 10, canary: { count: 2, maxFailureFraction: 0.4 } },
      async (i) => {
        started.push(i);
        await sleep(5);
        return i !== 1;
      },
      (ok) => ok,
    );
    assert.deepEqual(started, [0, 1]);
    assert.match(halted!, /1 of the first 2 nodes failed/);
    assert.deepEqual(results, [true, false, undefined, undefined, undefined, undefined]);
  });

  test('a good canary lets the rest run', async () => {
    const order: number[] = [];
    const { results } = await fanout(
      [0, 1, 2, 3],
      { concurrency: 4, canary: { count: 1, maxFailureFraction: 0.5 } },
      async (i) => {
        order.push(i);
        await sleep(i === 0 ? 20 : 1);
        return true;
      },
      (ok) => ok,
    );
    assert.equal(order[0], 0);
    assert.ok(results.every((r) => r === true));
  });

  test('an aborted signal stops starting new items', async () => {
    const ac = new AbortController();
    const { results } = await fanout(
      [0, 1, 2, 3],
      { concurrency: 1, signal: ac.signal },
      async (i) => {
        if (i === 1) ac.abort();
        return i;
      },
      () => true,
    );
    assert.deepEqual(results, [0, 1, undefined, undefined]);
  });
});
