import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type NamespaceSelection, namespaceListSelector } from './namespace-selector.js';

const ml = (matchLabels: Record<string, string>): NamespaceSelection => ({ matchLabels });

test('namespaceListSelector: the narrowest one list that still holds every tenant namespace', () => {
  const cases: Array<[string, NamespaceSelection[], string | undefined]> = [
    ['no tenants', [], undefined],
    ['one tenant, one label', [ml({ team: 'a' })], 'team=a'],
    ['one tenant, two labels (both narrow it)', [ml({ team: 'a', env: 'prod' })], 'env=prod,team=a'],
    ['tenants sharing a key', [ml({ team: 'a' }), ml({ team: 'b' }), ml({ team: 'a' })], 'team in (a,b)'],
    [
      'a key only some tenants set is left out',
      [ml({ team: 'a', env: 'prod' }), ml({ team: 'b' })],
      'team in (a,b)',
    ],
    ['no common key: list all', [ml({ team: 'a' }), ml({ owner: 'b' })], undefined],
    ['a tenant by names: list all', [ml({ team: 'a' }), { names: ['x'] }], undefined],
    ['empty matchLabels selects every namespace: list all', [ml({ team: 'a' }), ml({})], undefined],
    ['an empty value is not put in a set', [ml({ team: '' }), ml({ team: 'b' })], undefined],
    [
      'same key and value everywhere',
      [ml({ 'pullkeeper.dev/tenant': 'x' }), ml({ 'pullkeeper.dev/tenant': 'x' })],
      'pullkeeper.dev/tenant=x',
    ],
    ['several common keys, each a set', [ml({ a: '1', b: 'x' }), ml({ a: '2', b: 'x' })], 'a in (1,2),b=x'],
  ];
  for (const [what, tenants, want] of cases) assert.equal(namespaceListSelector(tenants), want, what);
});

test('namespaceListSelector: every namespace a tenant selects matches the selector (generated)', () => {
  // A small model of set-based label selectors: `k=v` and `k in (..)`, comma = AND.
  const matches = (sel: string | undefined, labels: Record<string, string>) =>
    sel === undefined ||
    sel.split(/,(?![^(]*\))/).every((term) => {
      const inSet = /^(.+) in \((.*)\)$/.exec(term);
      if (inSet) return inSet[2]!.split(',').includes(labels[inSet[1]!] ?? '\u0000');
      const [k, v] = term.split('=');
      return labels[k!] === v;
    });
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const keys = ['team', 'env', 'tier'];
  const values = ['a', 'b', 'c'];
  for (let run = 0; run < 500; run++) {
    const tenants = Array.from({ length: 1 + rnd(4) }, () =>
      ml(Object.fromEntries(keys.filter(() => rnd(3) > 0).map((k) => [k, values[rnd(3)]!]))),
    );
    const sel = namespaceListSelector(tenants);
    for (let i = 0; i < 20; i++) {
      const labels = Object.fromEntries(keys.filter(() => rnd(2)).map((k) => [k, values[rnd(3)]!]));
      const selected = tenants.some(
        (t) => 'matchLabels' in t && Object.entries(t.matchLabels).every(([k, v]) => labels[k] === v),
      );
      if (selected) assert.ok(matches(sel, labels), `${sel} misses ${JSON.stringify(labels)}`);
    }
  }
});
