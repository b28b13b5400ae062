import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { credentialsToDockerConfig, expiringKeys } from './credentials.js';
import { parseDockerConfig, renderDockerConfigJson } from './docker-config.js';

describe('credentialsToDockerConfig', () => {
  test('one credential under each of its hosts', () => {
    assert.deepEqual(credentialsToDockerConfig([{ hosts: ['a.io', 'b.io'], username: 'u', password: 'p' }]), {
      auths: { 'a.io': { username: 'u', password: 'p' }, 'b.io': { username: 'u', password: 'p' } },
    });
  });
  test('earlier credentials win a shared key (the tenant list is its priority)', () => {
    const c = credentialsToDockerConfig([
      { hosts: ['a.io'], username: 'first', password: 'p1' },
      { hosts: ['a.io', 'c.io'], username: 'second', password: 'p2' },
    ]);
    assert.equal(c.auths['a.io']!.username, 'first');
    assert.equal(c.auths['c.io']!.username, 'second');
  });
  test('imported entries follow the main hosts; a main host wins over an entry', () => {
    const c = credentialsToDockerConfig([
      {
        hosts: ['x.io'],
        username: 'main',
        password: 'p',
        entries: { 'x.io': { username: 'entry', password: 'q' }, 'y.io': { username: 'e', password: 'r' } },
      },
    ]);
    assert.deepEqual(Object.keys(c.auths), ['x.io', 'y.io']);
    assert.equal(c.auths['x.io']!.username, 'main');
  });
  test('a __proto__ key is an own entry, not a prototype change', () => {
    const c = credentialsToDockerConfig([{ hosts: ['__proto__'], username: 'u', password: 'p' }]);
    assert.ok(Object.hasOwn(c.auths, '__proto__'));
    assert.equal(Object.getPrototypeOf(c.auths), Object.prototype);
  });
  test('renders to a config.json the core parses back to the same entries', () => {
    const c = credentialsToDockerConfig([{ hosts: ['a.io'], username: 'AWS', password: 'tok:with:colons' }]);
    assert.deepEqual(parseDockerConfig(renderDockerConfigJson(c), 'config.json'), c);
  });
  test('no credentials: an empty config', () => {
    assert.deepEqual(credentialsToDockerConfig([]), { auths: {} });
  });
});

test('expiringKeys: keys of expiring credentials, the first credential winning a shared key', () => {
  const T = new Date('2026-11-29T00:00:00.000Z');
  const H12 = new Date('2026-11-29T12:00:00.000Z');
  const got = expiringKeys(
    [
      { hosts: ['static.io'], username: 's', password: 'p', issuedAt: T, source: 'st' },
      {
        hosts: ['ecr.io', 'static.io'],
        username: 'AWS',
        password: 't',
        issuedAt: T,
        expiresAt: H12,
        source: 'ec',
      },
      {
        hosts: ['gar.io'],
        username: 'oauth2accesstoken',
        password: 'g',
        issuedAt: T,
        expiresAt: H12,
        source: 'ga',
        entries: { 'x.io': { username: 'x', password: 'y' } },
      },
      { hosts: ['x.io'], username: 'AWS', password: 't', issuedAt: T, expiresAt: H12, source: 'late' },
    ],
    0.5,
  );
  assert.deepEqual(got, {
    'ecr.io': { refreshAt: '2026-11-29T06:00:00.000Z', source: 'ec' },
    'gar.io': { refreshAt: '2026-11-29T06:00:00.000Z', source: 'ga' },
  });
});
