import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  HASH_ANNOTATION,
  MANAGED_BY_LABEL,
  planTenant,
  REFRESH_ANNOTATION,
  type SecretState,
  type ServiceAccountState,
  secretRefreshDue,
  serviceAccountPlan,
  TENANT_LABEL,
  type TenantPlanInput,
} from './rotation-plan.js';

const ours = (ns: string, hash: string, tenant = 't', name = 'pk-t'): SecretState => ({
  namespace: ns,
  name,
  resourceVersion: `rv-${ns}`,
  labels: { [MANAGED_BY_LABEL]: 'pullkeeper', [TENANT_LABEL]: tenant },
  annotations: { [HASH_ANNOTATION]: hash },
});
const foreign = (ns: string): SecretState => ({
  namespace: ns,
  name: 'pk-t',
  resourceVersion: 'rv-f',
  labels: {},
  annotations: {},
});
const sa = (ns: string, name: string, ips?: string[]): ServiceAccountState => ({
  namespace: ns,
  name,
  resourceVersion: '1',
  ...(ips ? { imagePullSecrets: ips } : {}),
});

function input(over: Partial<TenantPlanInput> = {}): TenantPlanInput {
  return {
    tenant: 't',
    secretName: 'pk-t',
    serviceAccounts: ['default'],
    adopt: false,
    prune: false,
    namespaces: ['a'],
    desired: { hash: 'h1', registries: ['r'], missing: [] },
    secrets: [],
    serviceAccountsByNamespace: new Map([['a', [sa('a', 'default')]]]),
    ...over,
  };
}
const kindOf = (i: TenantPlanInput) => planTenant(i).namespaces[0]!.secret.kind;

describe('planTenant: the Secret', () => {
  const cases: Array<[string, Partial<TenantPlanInput>, string]> = [
    ['no Secret yet: create', {}, 'create'],
    ['ours with the same hash: unchanged', { secrets: [ours('a', 'h1')] }, 'unchanged'],
    ['ours with another hash: update', { secrets: [ours('a', 'h0')] }, 'update'],
    ['not ours: conflict', { secrets: [foreign('a')] }, 'conflict'],
    ['not ours, adopt: update', { secrets: [foreign('a')], adopt: true }, 'update'],
    ["ours but another tenant's: conflict", { secrets: [ours('a', 'h1', 'other')] }, 'conflict'],
    [
      'a registry failed and a Secret exists: skip (the last good stays)',
      { secrets: [ours('a', 'h0')], desired: { hash: 'h2', registries: ['r'], missing: ['s'] } },
      'skip',
    ],
    [
      'a registry failed and no Secret yet: create with what there is',
      { desired: { hash: 'h2', registries: ['r'], missing: ['s'] } },
      'create',
    ],
    ['no credential at all: skip', { desired: undefined }, 'skip'],
    ['terminating namespace: skip', { terminating: ['a'] }, 'skip'],
  ];
  for (const [name, over, want] of cases) test(name, () => assert.equal(kindOf(input(over)), want));
  test('update carries the resourceVersion it was planned from', () => {
    const s = planTenant(input({ secrets: [ours('a', 'h0')] })).namespaces[0]!.secret;
    assert.deepEqual(s, { kind: 'update', resourceVersion: 'rv-a', adopt: false });
  });
});

describe('planTenant: ServiceAccounts', () => {
  const cases: Array<[string, Partial<TenantPlanInput>, string[], string[]]> = [
    ['default without entries: patch', {}, ['default'], []],
    [
      'already listed: nothing',
      { serviceAccountsByNamespace: new Map([['a', [sa('a', 'default', ['x', 'pk-t'])]]]) },
      [],
      [],
    ],
    [
      "others' entries only: patch (add ours)",
      { serviceAccountsByNamespace: new Map([['a', [sa('a', 'default', ['x'])]]]) },
      ['default'],
      [],
    ],
    [
      '"*": every ServiceAccount',
      {
        serviceAccounts: '*',
        serviceAccountsByNamespace: new Map([['a', [sa('a', 'default'), sa('a', 'ci')]]]),
      },
      ['default', 'ci'],
      [],
    ],
    [
      'a named one that does not exist: reported missing',
      { serviceAccounts: ['default', 'builder'] },
      ['default'],
      ['builder'],
    ],
    ['conflict: no ServiceAccount points at a Secret we do not own', { secrets: [foreign('a')] }, [], []],
  ];
  for (const [name, over, patch, missing] of cases)
    test(name, () => {
      const p = planTenant(input(over)).namespaces[0]!;
      assert.deepEqual(
        p.patchServiceAccounts.map((s) => s.name),
        patch,
      );
      assert.deepEqual(p.missingServiceAccounts, missing);
    });
});

describe('planTenant: namespaces that left the tenant', () => {
  test('prune off: reported as orphans, not deleted', () => {
    const p = planTenant(input({ secrets: [ours('gone', 'h1')] }));
    assert.deepEqual(
      p.orphans.map((s) => s.namespace),
      ['gone'],
    );
    assert.deepEqual(p.prune, []);
  });
  test('prune on: deleted', () => {
    const p = planTenant(input({ prune: true, secrets: [ours('gone', 'h1')] }));
    assert.deepEqual(
      p.prune.map((s) => s.namespace),
      ['gone'],
    );
  });
  test("another tenant's Secret is never pruned", () => {
    const p = planTenant(input({ prune: true, secrets: [ours('gone', 'h1', 'other')] }));
    assert.deepEqual(p.prune, []);
  });
  test('namespaces are planned in sorted order', () => {
    const p = planTenant(input({ namespaces: ['c', 'a', 'b'] }));
    assert.deepEqual(
      p.namespaces.map((n) => n.namespace),
      ['a', 'b', 'c'],
    );
  });
});

describe('secretRefreshDue', () => {
  const now = new Date('2026-11-28T12:00:00Z');
  const at = (v?: string): SecretState => ({
    ...ours('a', 'h'),
    annotations: v ? { [REFRESH_ANNOTATION]: v } : {},
  });
  const cases: Array<[string, string | undefined, boolean]> = [
    ['no annotation: due', undefined, true],
    ['in the future: not due', '2026-11-28T13:00:00Z', false],
    ['in the past: due', '2026-11-28T11:00:00Z', true],
    ['exactly now: due', '2026-11-28T12:00:00Z', true],
    ['garbage: due', 'soon', true],
  ];
  for (const [name, v, want] of cases) test(name, () => assert.equal(secretRefreshDue(at(v), now), want));
});

describe('serviceAccountPlan', () => {
  const cases: Array<[string, '*' | string[], ServiceAccountState[], string[], string[]]> = [
    ['listed, without our entry: patched', ['default'], [sa('a', 'default')], ['default'], []],
    ['listed, with our entry: nothing', ['default'], [sa('a', 'default', ['pk-t'])], [], []],
    ['listed, entry of others only: patched', ['default'], [sa('a', 'default', ['theirs'])], ['default'], []],
    ['listed but absent: missing', ['default', 'builder'], [sa('a', 'default', ['pk-t'])], [], ['builder']],
    ["'*': every one without our entry", '*', [sa('a', 'default', ['pk-t']), sa('a', 'late')], ['late'], []],
    ["'*' in an empty namespace: nothing, nothing missing", '*', [], [], []],
  ];
  for (const [name, wanted, sas, patch, missing] of cases)
    test(name, () => {
      const p = serviceAccountPlan(wanted, 'pk-t', sas);
      assert.deepEqual(
        p.patchServiceAccounts.map((s) => s.name),
        patch,
      );
      assert.deepEqual(p.missingServiceAccounts, missing);
    });
});
