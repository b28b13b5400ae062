import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorCodes, netFailure, netFailureText } from './net-failure.js';

const sys = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
const fetchFailed = (code: string) => new TypeError('fetch failed', { cause: sys(code) });

describe('netFailure', () => {
  const table: Array<[string, unknown, ReturnType<typeof netFailure>]> = [
    ['refused', sys('ECONNREFUSED'), { kind: 'refused', code: 'ECONNREFUSED' }],
    ['DNS', sys('ENOTFOUND'), { kind: 'unreachable', code: 'ENOTFOUND' }],
    ['DNS retry', sys('EAI_AGAIN'), { kind: 'unreachable', code: 'EAI_AGAIN' }],
    ['no route', sys('EHOSTUNREACH'), { kind: 'unreachable', code: 'EHOSTUNREACH' }],
    ['network down', sys('ENETUNREACH'), { kind: 'unreachable', code: 'ENETUNREACH' }],
    ['socket timeout', sys('ETIMEDOUT'), { kind: 'timeout', code: 'ETIMEDOUT' }],
    [
      'undici connect timeout',
      fetchFailed('UND_ERR_CONNECT_TIMEOUT'),
      { kind: 'timeout', code: 'UND_ERR_CONNECT_TIMEOUT' },
    ],
    [
      'AbortSignal.timeout',
      new DOMException('timed out', 'TimeoutError'),
      { kind: 'timeout', code: 'TimeoutError' },
    ],
    ['reset', sys('ECONNRESET'), { kind: 'reset', code: 'ECONNRESET' }],
    ['fetch cause', fetchFailed('ECONNREFUSED'), { kind: 'refused', code: 'ECONNREFUSED' }],
    ['self-signed', sys('SELF_SIGNED_CERT_IN_CHAIN'), { kind: 'tls', code: 'SELF_SIGNED_CERT_IN_CHAIN' }],
    [
      'unknown CA',
      sys('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      { kind: 'tls', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    ],
    ['a missing file is not a network failure', sys('ENOENT'), undefined],
    ['a plain error', new Error('boom'), undefined],
    ['not an error', 'text', undefined],
    ['undefined', undefined, undefined],
  ];
  for (const [name, err, want] of table) it(name, () => assert.deepEqual(netFailure(err), want));

  it('follows causes, outermost first, and stops at a cycle depth', () => {
    const a: { code: string; cause?: unknown } = { code: 'A' };
    a.cause = a;
    assert.equal(errorCodes(a).length, 5);
    assert.deepEqual(errorCodes(fetchFailed('ECONNREFUSED')), ['ECONNREFUSED']);
  });

  it('texts say what happened and keep the code', () => {
    assert.match(netFailureText({ kind: 'refused', code: 'ECONNREFUSED' }), /refused.*\(ECONNREFUSED\)/);
    assert.match(netFailureText({ kind: 'unreachable', code: 'ENOTFOUND' }), /unreachable.*ENOTFOUND/);
  });
});
