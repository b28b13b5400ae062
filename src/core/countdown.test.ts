import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ago, countdown, formatDuration, redactTokenLike } from './countdown.js';

const NOW = new Date('2030-05-01T12:00:00Z');

describe('formatDuration', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [59.9, '59s'],
    [60, '1m'],
    [3599, '59m'],
    [3600, '1h 0m'],
    [5 * 3600 + 12 * 60 + 59, '5h 12m'],
    [86_399, '23h 59m'],
    [86_400, '1d 0h'],
    [3 * 86_400 + 4 * 3600 + 5, '3d 4h'],
    [-180, '3m'],
  ];
  for (const [s, want] of cases) test(`${s}s -> ${want}`, () => assert.equal(formatDuration(s), want));
});

describe('countdown', () => {
  const cases: Array<[string | Date | null | undefined, string, number | null]> = [
    ['2030-05-01T17:12:00Z', 'expires in 5h 12m', 18_720],
    ['2030-05-01T12:00:45Z', 'expires in 45s', 45],
    [new Date('2030-05-03T13:00:00Z'), 'expires in 2d 1h', 176_400],
    ['2030-05-01T12:00:00Z', 'expires now', 0],
    ['2030-05-01T11:57:00Z', 'expired 3m ago', -180],
    ['2030-04-29T11:00:00Z', 'expired 2d 1h ago', -176_400],
    [null, 'no expiry', null],
    [undefined, 'no expiry', null],
    ['', 'no expiry', null],
    ['not a date', 'expiry unknown', null],
  ];
  for (const [at, text, seconds] of cases)
    test(`${String(at)} -> ${text}`, () => assert.deepEqual(countdown(at, NOW), { text, seconds }));
});

describe('ago', () => {
  const cases: Array<[string | null, string]> = [
    ['2030-05-01T11:57:00Z', '3m ago'],
    ['2030-05-01T12:00:00Z', '0s ago'],
    ['2030-05-01T12:02:00Z', 'in 2m'],
    [null, 'never'],
    ['garbage', 'unknown'],
  ];
  for (const [at, want] of cases) test(`${at} -> ${want}`, () => assert.equal(ago(at, NOW), want));
});

describe('redactTokenLike', () => {
  const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl';
  const cases: Array<[string, string, string?]> = [
    [
      'verification failed: HTTP 401 from https://r.io/v2/',
      'verification failed: HTTP 401 from https://r.io/v2/',
    ],
    [`token ${JWT} rejected`, 'token <redacted> rejected', JWT],
    ['sent Authorization: Bearer abcdef123456', 'sent Authorization: Bearer <redacted>', 'abcdef123456'],
    ['header Basic dXNlcjpwYXNzd29yZA==', 'header Basic <redacted>', 'dXNlcjpwYXNzd29yZA=='],
    ['password=hunter2-xyz&user=a', 'password=<redacted>&user=a', 'hunter2-xyz'],
    ['{"auth":"dXNlcjpw","x":1}', '{"auth":"<redacted>","x":1}', 'dXNlcjpw'],
    ['client_secret: s3cr3t!', 'client_secret: <redacted>', 's3cr3t!'],
    ['GET https://bob:pa55word@r.io/v2/ failed', 'GET https://bob:<redacted>@r.io/v2/ failed', 'pa55word'],
    ['key AKIA1234abcdEFGH5678ijklMNOP9012qrst leaked', 'key <redacted> leaked', 'AKIA1234abcd'],
    // Digests and plain words stay readable.
    [
      'blob sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 missing',
      'blob sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 missing',
    ],
    ['connect ECONNREFUSED 127.0.0.1:22', 'connect ECONNREFUSED 127.0.0.1:22'],
    ['the token has expired; request a new one', 'the token has expired; request a new one'],
  ];
  // Titled by the redacted text: the inputs hold (made-up) secrets, and test output shows no secret.
  for (const [input, want, secret] of cases)
    test(`-> ${want}`, () => {
      const out = redactTokenLike(input);
      assert.equal(out, want);
      if (secret) assert.ok(!out.includes(secret));
    });
});
