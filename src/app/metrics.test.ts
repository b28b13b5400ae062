import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Metrics } from './metrics.js';

const now = new Date('2026-11-28T00:00:00Z');
const report = {
  registries: [
    {
      name: 'prod-ecr',
      kind: 'ecr' as const,
      status: 'minted' as const,
      expiresAt: '2026-11-28T12:00:00.000Z',
    },
    { name: 'ocir', kind: 'static' as const, status: 'minted' as const, expiresAt: null },
    { name: 'acr', kind: 'acr' as const, status: 'failed' as const, expiresAt: null },
  ],
  mintCalls: 2,
  tenants: [
    {
      name: 'team-a',
      namespaces: [
        { name: 'a1', secret: 'created' },
        { name: 'a2', secret: 'unchanged' },
        { name: 'a3', secret: 'failed' },
      ],
    },
  ],
  nodes: [
    { name: 'n1', status: 'drift' },
    { name: 'n2', status: 'unchanged' },
  ],
};

describe('metrics', () => {
  test('prometheus text: expiry seconds, rotations, failures, drift, mint calls', () => {
    const m = new Metrics();
    m.record(report, now);
    m.record({ registries: [], mintCalls: 1 }, now);
    const text = m.prometheus();
    assert.match(text, /^pullkeeper_credential_expiry_seconds\{registry="prod-ecr",kind="ecr"\} 43200$/m);
    assert.doesNotMatch(text, /registry="ocir"/, 'no expiry gauge for credentials that do not expire');
    assert.match(text, /^pullkeeper_mint_failures_total\{registry="acr",kind="acr"\} 1$/m);
    assert.match(text, /^pullkeeper_mint_calls_total 3$/m);
    assert.match(text, /^pullkeeper_rotations_total\{tenant="team-a"\} 1$/m);
    assert.match(text, /^pullkeeper_rotation_failures_total\{tenant="team-a"\} 1$/m);
    assert.match(text, /^pullkeeper_nodes_in_drift 1$/m);
    assert.match(text, /^# TYPE pullkeeper_mint_calls_total counter$/m);
  });
  test('EMF: one line per dimension set, CloudWatch metadata, counters reset after emitting', () => {
    const m = new Metrics();
    m.record(report, now);
    const lines = m.emf('pullkeeper', now).map((l) => JSON.parse(l));
    const expiry = lines.find((l) => 'pullkeeper_credential_expiry_seconds' in l);
    assert.equal(expiry.registry, 'prod-ecr');
    assert.deepEqual(expiry._aws.CloudWatchMetrics[0].Dimensions, [['kind', 'registry']]);
    assert.equal(expiry._aws.CloudWatchMetrics[0].Metrics[0].Unit, 'Seconds');
    assert.equal(expiry._aws.Timestamp, now.getTime());
    const again = m.emf('pullkeeper', now).map((l) => JSON.parse(l));
    assert.ok(!again.some((l) => 'pullkeeper_mint_calls_total' in l));
    assert.ok(
      again.some((l) => 'pullkeeper_credential_expiry_seconds' in l),
      'gauges stay',
    );
  });
  test('label values are escaped', () => {
    const m = new Metrics();
    m.gauge('x', 'h', { a: 'q"\\\n' }, 1);
    assert.match(m.prometheus(), /^x\{a="q\\"\\\\\\n"\} 1$/m);
  });
});
