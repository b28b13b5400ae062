import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from './log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({
    sink: (l) => lines.push(JSON.parse(l)),
    now: () => new Date(0),
    level: 'debug',
  });
  return { log, lines };
}

describe('logger', () => {
  test('one JSON object a line with time, level, message and context', () => {
    const { log, lines } = capture();
    log.child({ requestId: 'r1' }).info('refresh', { tenants: 2 });
    assert.deepEqual(lines, [
      { time: '1970-01-01T00:00:00.000Z', level: 'info', msg: 'refresh', requestId: 'r1', tenants: 2 },
    ]);
  });
  const fields: Array<[string, unknown]> = [
    ['password', 'p'],
    ['clientSecret', 's'],
    ['authorization', 'Bearer x'],
    ['accessToken', 't'],
    ['privateKey', 'k'],
    ['auth', 'dTpw'],
  ];
  for (const [k, v] of fields)
    test(`a field named ${k} is redacted, at any depth`, () => {
      const { log, lines } = capture();
      log.info('x', { [k]: v, nested: { [k]: v, list: [{ [k]: v }] } });
      const text = JSON.stringify(lines);
      assert.ok(!text.includes(`"${String(v)}"`), text);
      assert.equal((lines[0] as Record<string, unknown>)[k], '<redacted>');
    });
  test('a registered secret is cut out of every string, in children too, and of error messages', () => {
    const { log, lines } = capture();
    log.addSecrets('s3cr3t-value');
    log
      .child({ a: 1 })
      .error('failed', { reason: 'login with s3cr3t-value refused', err: new Error('bad s3cr3t-value') });
    assert.ok(!JSON.stringify(lines).includes('s3cr3t-value'));
    assert.match(String(lines[0]!.reason), /<redacted>/);
  });
  test('levels below the minimum are dropped', () => {
    const lines: string[] = [];
    const log = createLogger({ sink: (l) => lines.push(l), level: 'warn' });
    log.info('no');
    log.warn('yes');
    assert.equal(lines.length, 1);
  });
  test('booleans named like secrets stay (verified: true is not a secret)', () => {
    const { log, lines } = capture();
    log.info('x', { tokenValid: true });
    assert.equal(lines[0]!.tokenValid, true);
  });
});
