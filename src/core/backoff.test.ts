import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fullJitterDelay, parseRetryAfter } from './backoff.js';

describe('fullJitterDelay', () => {
  const cases: Array<[string, number, number, number, number, number]> = [
    // name, retry, base, cap, random, expected
    ['first retry, top of the range', 1, 100, 2000, 0.999999, 99.9999],
    ['first retry, bottom', 1, 100, 2000, 0, 0],
    ['second retry doubles the ceiling', 2, 100, 2000, 0.5, 100],
    ['third retry', 3, 100, 2000, 0.5, 200],
    ['the cap bounds the ceiling', 10, 100, 2000, 0.5, 1000],
    ['huge retry numbers stay at the cap', 2000, 100, 2000, 1, 2000],
    ['a random source out of range is clamped', 1, 100, 2000, 7, 100],
    ['a negative random source is clamped', 1, 100, 2000, -1, 0],
    ['retry 0 is treated as the first', 0, 100, 2000, 0.5, 50],
  ];
  for (const [name, retry, base, cap, r, want] of cases)
    test(name, () => assert.ok(Math.abs(fullJitterDelay(retry, base, cap, () => r) - want) < 1e-6));
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-02T03:04:05Z');
  const cases: Array<[string, string | null | undefined, number | undefined]> = [
    ['absent', undefined, undefined],
    ['null (Headers.get)', null, undefined],
    ['seconds', '3', 3000],
    ['zero seconds', '0', 0],
    ['seconds with spaces', ' 12 ', 12_000],
    ['IMF-fixdate in the future', 'Fri, 02 Jan 2026 03:04:15 GMT', 10_000],
    ['IMF-fixdate in the past is now', 'Fri, 02 Jan 2026 03:00:00 GMT', 0],
    ['RFC 850 date', 'Friday, 02-Jan-26 03:04:07 GMT', 2000],
    ['negative seconds are malformed', '-1', undefined],
    ['fractional seconds are malformed', '1.5', undefined],
    ['garbage', 'soon', undefined],
    ['empty', '', undefined],
    ['a date without GMT is malformed', '2026-01-02T03:04:15Z', undefined],
  ];
  for (const [name, value, want] of cases) test(name, () => assert.equal(parseRetryAfter(value, now), want));
});
