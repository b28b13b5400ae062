import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  emptyStatusRecord,
  MAX_NODE_ENTRIES,
  MAX_TEXT,
  mergeSeen,
  NODE_ENTRY_TTL_MS,
  needsSave,
  newestOf,
  STATUS_HEARTBEAT_MS,
  type StatusRecord,
  sameRecord,
} from './status-record.js';

const T0 = new Date('2026-11-29T00:00:00.000Z');
const T1 = new Date('2026-11-29T01:00:00.000Z');
const EXP = '2026-11-29T12:00:00.000Z';

test('mergeSeen: registries', () => {
  const minted = mergeSeen(
    emptyStatusRecord(),
    { registries: [{ name: 'ecr', kind: 'ecr', status: 'minted', expiresAt: EXP }] },
    T0,
  );
  const cases: Array<{ why: string; got: StatusRecord; want: StatusRecord['registries'] }> = [
    {
      why: 'a minted credential records its expiry and success time',
      got: minted,
      want: {
        ecr: {
          kind: 'ecr',
          status: 'minted',
          expiresAt: EXP,
          lastSuccess: T0.toISOString(),
          at: T0.toISOString(),
        },
      },
    },
    {
      why: 'a failed mint keeps the last good expiry and success time, and says why',
      got: mergeSeen(
        minted,
        { registries: [{ name: 'ecr', kind: 'ecr', status: 'failed', expiresAt: null, error: 'HTTP 500' }] },
        T1,
      ),
      want: {
        ecr: {
          kind: 'ecr',
          status: 'failed',
          expiresAt: EXP,
          lastSuccess: T0.toISOString(),
          at: T1.toISOString(),
          error: 'HTTP 500',
        },
      },
    },
    {
      why: 'a registry that never succeeded has no expiry and no success time',
      got: mergeSeen(
        emptyStatusRecord(),
        {
          registries: [
            { name: 'acr', kind: 'acr', status: 'failed', expiresAt: null, error: 'AADSTS7000215' },
          ],
        },
        T0,
      ),
      want: {
        acr: {
          kind: 'acr',
          status: 'failed',
          expiresAt: null,
          lastSuccess: null,
          at: T0.toISOString(),
          error: 'AADSTS7000215',
        },
      },
    },
    {
      why: 'a run that did not mint a registry leaves its entry as it was',
      got: mergeSeen(
        minted,
        { registries: [{ name: 'gar', kind: 'gar', status: 'cached', expiresAt: EXP }] },
        T1,
      ),
      want: {
        ecr: minted.registries.ecr!,
        gar: {
          kind: 'gar',
          status: 'cached',
          expiresAt: EXP,
          lastSuccess: T1.toISOString(),
          at: T1.toISOString(),
        },
      },
    },
    {
      why: 'a long error is cut',
      got: mergeSeen(
        emptyStatusRecord(),
        {
          registries: [
            { name: 'x', kind: 'static', status: 'failed', expiresAt: null, error: 'e'.repeat(1000) },
          ],
        },
        T0,
      ),
      want: {
        x: {
          kind: 'static',
          status: 'failed',
          expiresAt: null,
          lastSuccess: null,
          at: T0.toISOString(),
          error: `${'e'.repeat(MAX_TEXT - 1)}…`,
        },
      },
    },
  ];
  for (const c of cases) assert.deepEqual(c.got.registries, c.want, c.why);
});

test('mergeSeen: nodes', () => {
  const old = mergeSeen(
    emptyStatusRecord(),
    {
      nodes: [
        { name: 'gone', status: 'written' },
        { name: 'n1', status: 'failed', reason: 'host key mismatch' },
      ],
    },
    T0,
  );
  const later = new Date(T0.getTime() + NODE_ENTRY_TTL_MS + 1);
  const next = mergeSeen(old, { nodes: [{ name: 'n1', status: 'unchanged' }] }, later);
  assert.deepEqual(
    next.nodes,
    { n1: { status: 'unchanged', at: later.toISOString() } },
    'stale entries drop out',
  );
  assert.deepEqual(
    mergeSeen(old, { nodes: [{ name: 'n2', status: 'written' }] }, T1).nodes,
    { ...old.nodes, n2: { status: 'written', at: T1.toISOString() } },
    'untouched nodes stay',
  );

  // Over the cap: failures are kept first, then the newest.
  const many = Array.from({ length: MAX_NODE_ENTRIES + 10 }, (_, i) => ({
    name: `n${i}`,
    status: i === 3 ? 'failed' : 'unchanged',
  }));
  const capped = mergeSeen(
    mergeSeen(emptyStatusRecord(), { nodes: many.slice(0, 20) }, T0),
    { nodes: many.slice(20) },
    T1,
  );
  assert.equal(Object.keys(capped.nodes).length, MAX_NODE_ENTRIES);
  assert.equal(capped.nodes.n3?.status, 'failed', 'a failed node is kept although its entry is older');
  const kept = Object.entries(capped.nodes);
  assert.equal(
    kept.filter(([, e]) => e.at === T1.toISOString()).length,
    MAX_NODE_ENTRIES - 10,
    'every entry of the newer run stays',
  );
  assert.equal(
    kept.filter(([, e]) => e.at === T0.toISOString() && e.status !== 'failed').length,
    9,
    'the 10 entries over the cap are old healthy ones',
  );
});

test('newestOf: per entry, the newer attempt wins; sameRecord ignores key order', () => {
  const stored = mergeSeen(
    emptyStatusRecord(),
    {
      registries: [
        { name: 'a', kind: 'static', status: 'minted', expiresAt: null },
        { name: 'b', kind: 'static', status: 'minted', expiresAt: null },
      ],
      nodes: [{ name: 'n1', status: 'written' }],
    },
    T1,
  );
  const mine = mergeSeen(
    emptyStatusRecord(),
    {
      registries: [
        { name: 'a', kind: 'static', status: 'failed', expiresAt: null, error: 'x' },
        { name: 'c', kind: 'static', status: 'minted', expiresAt: null },
      ],
      nodes: [{ name: 'n1', status: 'failed' }],
    },
    T0,
  );
  const both = newestOf(stored, mine);
  assert.equal(both.registries.a?.status, 'minted', 'the stored one is newer');
  assert.ok(both.registries.b && both.registries.c);
  assert.equal(both.nodes.n1?.status, 'written');
  assert.deepEqual(newestOf(mine, stored), both, 'symmetric');

  const reordered: StatusRecord = {
    registries: Object.fromEntries(Object.entries(both.registries).reverse()),
    nodes: both.nodes,
  };
  assert.ok(sameRecord(both, reordered));
  assert.ok(!sameRecord(both, stored));
});

test('needsSave: states, expiries and errors are written at once; newer times only after the heartbeat', () => {
  const seen = {
    registries: [{ name: 'ecr', kind: 'ecr', status: 'minted' as const, expiresAt: EXP }],
    nodes: [{ name: 'n1', status: 'written' }],
  };
  const stored = { ...mergeSeen(emptyStatusRecord(), seen, T0), savedAt: T0.toISOString() };
  const soon = new Date(T0.getTime() + 5 * 60_000);
  const late = new Date(T0.getTime() + STATUS_HEARTBEAT_MS + 1);
  const cases: Array<[string, StatusRecord, Date, boolean]> = [
    ['nothing seen', mergeSeen(stored, {}, soon), soon, false],
    ['the same results, 5 min later', mergeSeen(stored, seen, soon), soon, false],
    ['the same results, after the heartbeat', mergeSeen(stored, seen, late), late, true],
    [
      'a node changed state',
      mergeSeen(stored, { nodes: [{ name: 'n1', status: 'unchanged' }] }, soon),
      soon,
      true,
    ],
    ['a new node', mergeSeen(stored, { nodes: [{ name: 'n2', status: 'written' }] }, soon), soon, true],
    [
      'a new expiry',
      mergeSeen(
        stored,
        { registries: [{ ...seen.registries[0]!, expiresAt: '2026-11-30T00:00:00.000Z' }] },
        soon,
      ),
      soon,
      true,
    ],
    [
      'a failure',
      mergeSeen(
        stored,
        { registries: [{ ...seen.registries[0]!, status: 'failed', expiresAt: null, error: 'x' }] },
        soon,
      ),
      soon,
      true,
    ],
  ];
  for (const [why, next, now, want] of cases) assert.equal(needsSave(stored, next, now), want, why);
  assert.equal(
    needsSave(emptyStatusRecord(), mergeSeen(emptyStatusRecord(), seen, T0), T0),
    true,
    'first save',
  );
});
