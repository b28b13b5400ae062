import assert from 'node:assert/strict';
import { test } from 'node:test';
import { basicAuthAllowed, isLoopbackHost } from './credential-transport.js';

const cases: Array<[string, string[], boolean]> = [
  ['https://auth.example/token', [], true],
  ['https://auth.example:8443/token', [], true],
  ['http://auth.example/token', [], false],
  ['http://auth.example:5001/token', ['other.example:5000'], false],
  ['http://auth.example:5001/token', ['auth.example:5000'], true],
  ['http://auth.example/token', ['auth.example'], true],
  ['http://AUTH.example/token', ['auth.example'], true],
  ['http://auth.example.evil/token', ['auth.example'], false],
  ['http://127.0.0.1:5001/token', [], true],
  ['http://127.8.9.10/token', [], true],
  ['http://localhost:5001/token', [], true],
  ['http://[::1]:5001/token', [], true],
  ['http://[fd00::1]:5001/token', [], false],
  ['http://[fd00::1]:5001/token', ['[fd00::1]:5000'], true],
  ['http://128.0.0.1/token', [], false],
  ['ftp://auth.example/token', ['auth.example'], false],
  ['not a url', [], false],
];
for (const [url, insecure, want] of cases)
  test(`basic auth to ${url} with insecure [${insecure.join(',')}]: ${want}`, () =>
    assert.equal(basicAuthAllowed(url, insecure), want));

test('isLoopbackHost', () => {
  assert.equal(isLoopbackHost('127.0.0.1:5000'), true);
  assert.equal(isLoopbackHost('localhost'), true);
  assert.equal(isLoopbackHost('[::1]:1'), true);
  assert.equal(isLoopbackHost('10.0.0.1'), false);
});
