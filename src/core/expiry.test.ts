import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { effectiveExpiry, needsRefresh, refreshAt } from './expiry.js';

const T = new Date('2026-11-28T00:00:00Z');
const H = 3600_000;
const at = (ms: number) => new Date(T.getTime() + ms);

describe('effectiveExpiry', () => {
  const cases: Array<
    [
      string,
      Date | undefined,
      number | undefined,
      { expiresAt?: Date; assumed?: boolean; note?: RegExp } | undefined,
    ]
  > = [
    [
      'a future expiry within the lifetime is trusted',
      at(11 * H),
      12 * H,
      { expiresAt: at(11 * H), assumed: false },
    ],
    [
      'moto ECR: 2015-01-01 is never trusted',
      new Date('2015-01-01T00:00:00Z'),
      12 * H,
      {
        expiresAt: at(12 * H),
        assumed: true,
        note: /not in the future; assuming the documented 12 h lifetime/,
      },
    ],
    [
      'expiry equal to the issue time is past',
      T,
      12 * H,
      { expiresAt: at(12 * H), assumed: true, note: /not in the future/ },
    ],
    [
      'no expiry reported: the documented lifetime',
      undefined,
      H,
      { expiresAt: at(H), assumed: true, note: /no expiry reported; assuming the documented 1 h/ },
    ],
    [
      'an invalid date: the documented lifetime',
      new Date('nope'),
      H,
      { expiresAt: at(H), assumed: true, note: /is invalid/ },
    ],
    [
      'beyond the documented lifetime: capped',
      at(48 * H),
      12 * H,
      { expiresAt: at(12 * H), assumed: true, note: /beyond the documented lifetime/ },
    ],
    ['slightly beyond (5% skew) is fine', at(12.5 * H), 12 * H, { expiresAt: at(12.5 * H), assumed: false }],
    ['static credential: no expiry, none documented', undefined, undefined, undefined],
    [
      'a static credential with a configured future expiry',
      at(30 * 24 * H),
      undefined,
      { expiresAt: at(30 * 24 * H), assumed: false },
    ],
    [
      'a configured expiry already past, none documented',
      at(-H),
      undefined,
      { expiresAt: T, assumed: true, note: /already past/ },
    ],
  ];
  for (const [name, reported, life, want] of cases) {
    test(name, () => {
      const got = effectiveExpiry(reported, T, life);
      if (!want) return assert.equal(got, undefined);
      assert.ok(got);
      assert.equal(got.expiresAt.toISOString(), want.expiresAt!.toISOString());
      assert.equal(got.assumed, want.assumed);
      if (want.note) assert.match(got.note ?? '', want.note);
      else assert.equal(got.note, undefined);
    });
  }
});

describe('refreshAt / needsRefresh', () => {
  const cases: Array<[string, number, number, number]> = [
    ['ECR 12 h at one half: 6 h', 12 * H, 0.5, 6 * H],
    ['ACR 3 h at one half: 1.5 h', 3 * H, 0.5, 1.5 * H],
    ['Google 1 h at one half: 30 min', H, 0.5, 0.5 * H],
    ['workload identity 15 min: 7.5 min', 15 * 60_000, 0.5, 7.5 * 60_000],
    ['a late fraction is held 10 min before expiry', 12 * H, 0.99, 12 * H - 10 * 60_000],
    ['short lifetimes keep a tenth as margin', 20 * 60_000, 0.99, 18 * 60_000],
  ];
  for (const [name, life, fraction, wantMs] of cases) {
    test(name, () => {
      assert.equal(refreshAt(T, at(life), fraction).getTime() - T.getTime(), wantMs);
      assert.equal(needsRefresh(at(wantMs - 1), T, at(life), fraction), false);
      assert.equal(needsRefresh(at(wantMs), T, at(life), fraction), true);
    });
  }
  test('a credential that does not expire never needs a refresh', () => {
    assert.equal(needsRefresh(at(1e12), T, undefined, 0.5), false);
  });
  test('an expiry at or before issue: refresh now', () => {
    assert.equal(needsRefresh(T, T, T, 0.5), true);
  });
});
