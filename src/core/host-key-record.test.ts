import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  emptyHostKeyRecord,
  HOST_KEY_TTL_MS,
  HOST_SEEN_HEARTBEAT_MS,
  type HostKeyRecord,
  type HostKeyUpdate,
  MAX_HOST_KEYS,
  mergeHostKeys,
  recordedKey,
} from './host-key-record.js';

const T0 = new Date('2026-12-01T00:00:00.000Z');
const later = (ms: number) => new Date(T0.getTime() + ms);
const KEY_A = 'a'.repeat(64);
const KEY_B = 'b'.repeat(64);
const accept = (host: string, sha256: string, node = 'n1'): HostKeyUpdate => ({
  kind: 'accept',
  host,
  node,
  keyType: 'ssh-ed25519',
  sha256,
});
const recordOf = (host: string, sha256: string, at: Date): HostKeyRecord => ({
  version: 1,
  hosts: {
    [host]: {
      keyType: 'ssh-ed25519',
      sha256,
      node: 'n1',
      firstSeen: at.toISOString(),
      lastSeen: at.toISOString(),
    },
  },
});

test('mergeHostKeys', () => {
  const first = recordOf('10.0.0.1', KEY_A, T0);
  const cases: Array<{
    why: string;
    prev: HostKeyRecord;
    updates: HostKeyUpdate[];
    now: Date;
    want: { keys: Record<string, string>; conflicts: string[]; changed: boolean; lastSeen?: string };
  }> = [
    {
      why: 'a first use is recorded',
      prev: emptyHostKeyRecord(),
      updates: [accept('10.0.0.1', KEY_A)],
      now: T0,
      want: { keys: { '10.0.0.1': KEY_A }, conflicts: [], changed: true },
    },
    {
      why: 'the same key again, soon after: nothing to write',
      prev: first,
      updates: [accept('10.0.0.1', KEY_A), { kind: 'seen', host: '10.0.0.1' }],
      now: later(60_000),
      want: { keys: { '10.0.0.1': KEY_A }, conflicts: [], changed: false },
    },
    {
      why: 'another key for a recorded host is a conflict; the recorded key stays',
      prev: first,
      updates: [accept('10.0.0.1', KEY_B)],
      now: later(60_000),
      want: { keys: { '10.0.0.1': KEY_A }, conflicts: ['10.0.0.1'], changed: false },
    },
    {
      why: 'seen after the heartbeat: lastSeen moves',
      prev: first,
      updates: [{ kind: 'seen', host: '10.0.0.1' }],
      now: later(HOST_SEEN_HEARTBEAT_MS + 1),
      want: {
        keys: { '10.0.0.1': KEY_A },
        conflicts: [],
        changed: true,
        lastSeen: later(HOST_SEEN_HEARTBEAT_MS + 1).toISOString(),
      },
    },
    {
      why: 'seen for a host never recorded adds nothing',
      prev: emptyHostKeyRecord(),
      updates: [{ kind: 'seen', host: '10.0.0.9' }],
      now: T0,
      want: { keys: {}, conflicts: [], changed: false },
    },
    {
      why: 'an entry not seen for the TTL is dropped, and that host is a first use again',
      prev: first,
      updates: [accept('10.0.0.1', KEY_B)],
      now: later(HOST_KEY_TTL_MS + 1),
      want: { keys: { '10.0.0.1': KEY_B }, conflicts: [], changed: true },
    },
    {
      why: 'hosts are keyed as known_hosts names them: another port is another host',
      prev: first,
      updates: [accept('[10.0.0.1]:2222', KEY_B)],
      now: later(1000),
      want: { keys: { '10.0.0.1': KEY_A, '[10.0.0.1]:2222': KEY_B }, conflicts: [], changed: true },
    },
  ];
  for (const c of cases) {
    const got = mergeHostKeys(c.prev, c.updates, c.now);
    assert.deepEqual(
      Object.fromEntries(Object.entries(got.record.hosts).map(([h, e]) => [h, e.sha256])),
      c.want.keys,
      c.why,
    );
    assert.deepEqual(
      got.conflicts.map((x) => x.host),
      c.want.conflicts,
      c.why,
    );
    assert.equal(got.changed, c.want.changed, c.why);
    if (c.want.lastSeen) assert.equal(got.record.hosts['10.0.0.1']!.lastSeen, c.want.lastSeen, c.why);
  }
});

test('recordedKey: expired entries do not count; names like __proto__ are plain keys', () => {
  const r = recordOf('10.0.0.1', KEY_A, T0);
  assert.equal(recordedKey(r, '10.0.0.1', later(1000))?.sha256, KEY_A);
  assert.equal(recordedKey(r, '10.0.0.1', later(HOST_KEY_TTL_MS + 1)), undefined);
  assert.equal(recordedKey(r, '__proto__', T0), undefined);
  assert.equal(recordedKey(r, 'toString', T0), undefined);
});

test('mergeHostKeys: the size is capped, the most recently seen kept', () => {
  const prev: HostKeyRecord = { version: 1, hosts: {} };
  for (let i = 0; i < MAX_HOST_KEYS; i++)
    prev.hosts[`10.1.${i >> 8}.${i & 255}`] = {
      keyType: 'ssh-ed25519',
      sha256: KEY_A,
      node: `n${i}`,
      firstSeen: later(i).toISOString(),
      lastSeen: later(i).toISOString(),
    };
  const got = mergeHostKeys(prev, [accept('10.9.9.9', KEY_B)], later(MAX_HOST_KEYS + 10));
  assert.equal(Object.keys(got.record.hosts).length, MAX_HOST_KEYS);
  assert.ok(got.record.hosts['10.9.9.9'], 'the new entry is kept');
  assert.equal(got.record.hosts['10.1.0.0'], undefined, 'the least recently seen is dropped');
});
