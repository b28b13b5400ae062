import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, formatPath, loadConfigFile, parseConfig, parseConfigText } from './load.js';
import { firstUseRefusal, trustOnFirstUseOf } from './schema.js';

const ok = {
  clusters: [{ name: 'prod', kubeconfig: '~/.kube/config' }],
  registries: [
    { name: 'prod-ecr', kind: 'ecr', region: 'us-west-2', registryIds: ['123456789012'] },
    {
      name: 'ocir',
      kind: 'static',
      server: 'iad.ocir.io',
      username: { value: 'ns/u' },
      password: { fromSsm: '/pk/ocir' },
    },
  ],
  tenants: [
    { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } }, registries: ['prod-ecr', 'ocir'] },
  ],
};
const clone = <T>(v: T): T => structuredClone(v);
/** Sets registries[i][key] and returns the config (for the table below). */
function setReg(c: typeof ok, i: number, key: string, value: unknown): typeof ok {
  (c.registries[i] as Record<string, unknown>)[key] = value;
  return c;
}
function then<T>(c: T, change: (c: T) => unknown): T {
  change(c);
  return c;
}

function issues(value: unknown): Array<[string, string]> {
  try {
    parseConfig(value, 'pk.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.issues.map((i) => [i.path, i.message]);
  }
  assert.fail('expected a ConfigError');
}

describe('config: a valid file gets its defaults', () => {
  test('defaults: verify on, 15 s timeout, default ServiceAccount, refresh at half the lifetime', () => {
    const c = parseConfig(ok);
    assert.equal(c.registries[0]!.verify, true);
    assert.equal(c.registries[0]!.timeoutMs, 15_000);
    assert.deepEqual(c.tenants[0]!.serviceAccounts, ['default']);
    assert.equal(c.refreshAtFraction, 0.5);
    assert.equal(c.events, 'warnings', 'Warning Events only, unless asked');
    assert.equal(c.kubeClient.transport, undefined, 'the transport defaults at the client (env, else http1)');
  });
  test('events and kubeClient.transport take their values and refuse others', () => {
    const c = parseConfig({ ...clone(ok), events: 'all', kubeClient: { transport: 'http2' } });
    assert.equal(c.events, 'all');
    assert.deepEqual(c.kubeClient, { qps: 1000, burst: 2000, concurrency: 32, transport: 'http2' });
    assert.throws(
      () => parseConfig({ ...clone(ok), events: 'some' }),
      (e: ConfigError) => e.issues.some((i) => i.path === 'events' && /all|warnings|none/.test(i.message)),
    );
    assert.throws(
      () => parseConfig({ ...clone(ok), kubeClient: { transport: 'http3' } }),
      (e: ConfigError) => e.issues.some((i) => i.path === 'kubeClient.transport'),
    );
  });
  test('dockerconfig registries verify only when asked', () => {
    const c = parseConfig({
      registries: [{ name: 'legacy', kind: 'dockerconfig', source: { fromFile: '/x' } }],
    });
    assert.equal(c.registries[0]!.verify, false);
  });
});

describe('config: nodes.ssh.trustOnFirstUse', () => {
  const withTofu = (inventory: unknown, trustOnFirstUse: unknown) =>
    parseConfig({
      ...clone(ok),
      nodes: { inventory, registries: ['ocir'], ssh: { privateKey: { fromFile: '/k' }, trustOnFirstUse } },
    });
  const statics = [{ name: 'n', address: 'a' }];
  const cases: Array<[string, unknown, unknown, { enabled: boolean; refused: boolean }]> = [
    ['off by default', statics, undefined, { enabled: false, refused: false }],
    ['true with a static inventory', statics, true, { enabled: true, refused: false }],
    ['true with inventory: kubernetes is refused', 'kubernetes', true, { enabled: true, refused: true }],
    [
      'the object form, not allowed with kubernetes',
      'kubernetes',
      { allowWithKubernetesInventory: false },
      { enabled: true, refused: true },
    ],
    [
      'allowed with kubernetes by name',
      'kubernetes',
      { allowWithKubernetesInventory: true },
      { enabled: true, refused: false },
    ],
    ['false with kubernetes: nothing to refuse', 'kubernetes', false, { enabled: false, refused: false }],
  ];
  for (const [name, inventory, tofu, want] of cases)
    test(name, () => {
      const nodes = withTofu(inventory, tofu).nodes!;
      assert.equal(trustOnFirstUseOf(nodes).enabled, want.enabled);
      const why = firstUseRefusal(nodes);
      assert.equal(why !== undefined, want.refused);
      if (why) assert.match(why, /impostor.*allowWithKubernetesInventory: true/s);
    });
});

describe('config: every error names its path and what is expected', () => {
  const cases: Array<[string, (c: typeof ok) => unknown, Array<[string, RegExp]>]> = [
    [
      'wrong region',
      (c) => setReg(c, 0, 'region', 'mars'),
      [['registries[0].region', /must be an AWS region/]],
    ],
    ['unknown key', (c) => setReg(c, 1, 'pasword', 'x'), [['registries[1].pasword', /^unknown key$/]]],
    ['unknown kind', (c) => setReg(c, 0, 'kind', 'quay'), [['registries[0].kind', /./]]],
    [
      'a tenant names an unknown registry',
      (c) => then(c, (x) => x.tenants[0]!.registries.push('nope')),
      [['tenants[0].registries[2]', /unknown registry "nope"; defined: prod-ecr, ocir/]],
    ],
    [
      'duplicate registry names',
      (c) => then(c, (x) => x.registries.push(clone(c.registries[0]!))),
      [['registries[2].name', /duplicate name "prod-ecr"/]],
    ],
    [
      'a name that is not a DNS label',
      (c) => setReg(c, 0, 'name', 'Prod_ECR'),
      [['registries[0].name', /DNS label/]],
    ],
    ['no registries', (c) => ({ ...c, registries: [] }), [['registries', /./]]],
    [
      'a plain string where a secret reference belongs',
      (c) => setReg(c, 1, 'password', 'hunter2'),
      [['registries[1].password', /expected a secret reference/]],
    ],
    [
      'two clusters and a tenant without one',
      (c) => then(c, (x) => x.clusters.push({ name: 'dr', kubeconfig: '/k' })),
      [['tenants[0].cluster', /required when more than one cluster/]],
    ],
    [
      'a tenant without clusters',
      (c) => ({ ...c, clusters: [] }),
      [['clusters', /tenants need at least one cluster/]],
    ],
    [
      'a 13-digit account id',
      (c) => setReg(c, 0, 'registryIds', ['1234567890123']),
      [['registries[0].registryIds[0]', /12-digit/]],
    ],
    [
      'a node path that is not absolute',
      (c) => ({
        ...c,
        nodes: {
          inventory: [{ name: 'n', address: 'a' }],
          path: 'config.json',
          registries: ['ocir'],
          ssh: { privateKey: { fromFile: '/k' } },
        },
      }),
      [['nodes.path', /\//]],
    ],
    [
      'trust on first use with nowhere to record the keys',
      (c) => ({
        ...c,
        statusStore: false,
        nodes: {
          inventory: [{ name: 'n', address: 'a' }],
          registries: ['ocir'],
          ssh: { privateKey: { fromFile: '/k' }, trustOnFirstUse: true },
        },
      }),
      [['nodes.ssh.trustOnFirstUse', /recorded in the status ConfigMap.*statusStore: false/]],
    ],
    [
      'trust on first use with a misspelt option',
      (c) => ({
        ...c,
        nodes: {
          inventory: 'kubernetes',
          registries: ['ocir'],
          ssh: { privateKey: { fromFile: '/k' }, trustOnFirstUse: { allowWithKubernetes: true } },
        },
      }),
      [['nodes.ssh.trustOnFirstUse.allowWithKubernetes', /^unknown key$/]],
    ],
  ];
  for (const [name, mutate, want] of cases) {
    test(name, () => {
      const got = issues(mutate(clone(ok)));
      for (const [path, msg] of want) {
        const hit = got.find(([p]) => p === path);
        assert.ok(hit, `no issue at ${path}; got ${JSON.stringify(got)}`);
        assert.match(hit[1], msg);
      }
    });
  }
  test('a secret given inline by mistake is never echoed in the error', () => {
    const c = clone(ok) as Record<string, unknown>;
    (c.registries as Array<Record<string, unknown>>)[1]!.password = 'S3cr3t-value-9';
    try {
      parseConfig(c, 'pk.yaml');
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(!(err as Error).message.includes('S3cr3t-value-9'));
      assert.match((err as Error).message, /^pk\.yaml: invalid pullkeeper config/);
    }
  });
});

describe('config: files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pk-config-'));
  test('YAML syntax errors name the line', () => {
    assert.throws(
      () => parseConfigText('registries:\n  - name: [x\n', 'f.yaml'),
      /f\.yaml: .*line \d+, column \d+: not valid YAML/s,
    );
  });
  test('duplicate YAML keys are refused', () => {
    assert.throws(
      () => parseConfigText('registries: []\nregistries: []\n', 'f.yaml'),
      /not valid YAML: DUPLICATE_KEY/,
    );
  });
  test('a missing file says how to pass one', async () => {
    await assert.rejects(
      loadConfigFile(join(dir, 'none.yaml')),
      /no such file; pass --config PATH or set PULLKEEPER_CONFIG/,
    );
  });
  test('a file over 1 MiB is refused without reading it all', async () => {
    const p = join(dir, 'big.yaml');
    writeFileSync(p, `# ${'x'.repeat(1024 * 1024)}\n`);
    await assert.rejects(loadConfigFile(p), /larger than 1048576 bytes/);
  });
  test('/dev/zero is refused quickly', async () => {
    await assert.rejects(loadConfigFile('/dev/zero'), /larger than/);
  });
  test('a list at the top level', () => {
    assert.throws(() => parseConfigText('- a\n- b\n'), /expected a mapping/);
  });
});

test('formatPath', () => {
  assert.equal(formatPath(['registries', 2, 'region']), 'registries[2].region');
  assert.equal(formatPath([]), '(root)');
  assert.equal(formatPath(['nodes', 'ssh', 'privateKey']), 'nodes.ssh.privateKey');
});
