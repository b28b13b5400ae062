import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseConfig, parseConfigText } from '../config/load.js';
import { generateRbac, parseServiceAccount, RbacError, type RbacOptions, renderRbacYaml } from './rbac.js';

const base = {
  clusters: [{ name: 'c1', kubeconfig: '/k' }],
  registries: [
    { name: 'r', kind: 'static', server: 'r.test', username: { value: 'u' }, password: { value: 'p' } },
  ],
};
const cfg = (over: Record<string, unknown>) => parseConfig({ ...base, ...over });
type Rule = { resources: string[]; verbs: string[]; resourceNames?: string[] };
const kinds = (o: ReturnType<typeof generateRbac>) =>
  o.objects.map((x) => `${x.object.kind}/${x.object.metadata.namespace ?? ''}/${x.object.metadata.name}`);
const rules = (o: ReturnType<typeof generateRbac>, role: string) =>
  (o.objects.find((x) => x.object.kind === 'ClusterRole' && x.object.metadata.name === role)?.object.rules ??
    []) as Rule[];
const grants = (o: ReturnType<typeof generateRbac>, role: string) =>
  rules(o, role).map(
    (r) =>
      `${r.resources.join(',')}:${r.verbs.join(',')}${r.resourceNames ? `@${r.resourceNames.join(',')}` : ''}`,
  );

describe('generateRbac', () => {
  const cases: Array<{
    name: string;
    config: Record<string, unknown>;
    opts?: RbacOptions;
    writer?: string[];
    inventory?: string[];
    has?: string[];
    hasNot?: string[];
    notes?: RegExp;
  }> = [
    {
      name: 'named namespaces, default ServiceAccount: Secrets and ServiceAccounts by name only',
      config: { tenants: [{ name: 'a', namespaces: { names: ['a1', 'a2'] }, registries: ['r'] }] },
      writer: [
        'secrets:get,list,watch,patch@pullkeeper-a',
        'secrets:create',
        'serviceaccounts:get,list,patch@default',
        'events:create',
      ],
      inventory: ['namespaces:get,list'],
      has: [
        'ClusterRoleBinding//pullkeeper-tenant-writer',
        'ValidatingAdmissionPolicy//pullkeeper-secret-writes',
        'ValidatingAdmissionPolicyBinding//pullkeeper-secret-writes',
        'RoleBinding/pullkeeper-system/pullkeeper-status',
      ],
      hasNot: ['ClusterRole//pullkeeper-serviceaccounts-any'],
    },
    {
      name: 'two tenants, a custom secretName, prune: delete only for the pruning tenant',
      config: {
        tenants: [
          {
            name: 'a',
            namespaces: { names: ['a1'] },
            registries: ['r'],
            secretName: 'regcred',
            prune: true,
            serviceAccounts: ['builder', 'default'],
          },
          { name: 'b', namespaces: { matchLabels: { team: 'b' } }, registries: ['r'] },
        ],
      },
      writer: [
        'secrets:get,list,watch,patch@pullkeeper-b,regcred',
        'secrets:create',
        'secrets:delete@regcred',
        'serviceaccounts:get,list,patch@builder,default',
        'events:create',
      ],
    },
    {
      name: 'events: none: no Events permission at all',
      config: {
        events: 'none',
        tenants: [{ name: 'a', namespaces: { names: ['a1'] }, registries: ['r'] }],
      },
      writer: [
        'secrets:get,list,watch,patch@pullkeeper-a',
        'secrets:create',
        'serviceaccounts:get,list,patch@default',
      ],
    },
    {
      name: "serviceAccounts '*' with named namespaces: unrestricted ServiceAccounts bound only there",
      config: {
        tenants: [
          { name: 'a', namespaces: { names: ['a1', 'a2'] }, registries: ['r'], serviceAccounts: '*' },
        ],
      },
      writer: ['secrets:get,list,watch,patch@pullkeeper-a', 'secrets:create', 'events:create'],
      has: ['RoleBinding/a1/pullkeeper-serviceaccounts-any', 'RoleBinding/a2/pullkeeper-serviceaccounts-any'],
      hasNot: ['ClusterRoleBinding//pullkeeper-serviceaccounts-any'],
    },
    {
      name: "serviceAccounts '*' by label: bound cluster-wide (namespaces unknown), said in a comment",
      config: {
        tenants: [
          { name: 'a', namespaces: { matchLabels: { t: 'a' } }, registries: ['r'], serviceAccounts: '*' },
        ],
      },
      has: ['ClusterRoleBinding//pullkeeper-serviceaccounts-any'],
    },
    {
      name: '--per-namespace: a RoleBinding per named namespace, none cluster-wide; label tenants get a note',
      config: {
        tenants: [
          { name: 'a', namespaces: { names: ['a1', 'a2'] }, registries: ['r'] },
          { name: 'b', namespaces: { matchLabels: { team: 'b' } }, registries: ['r'] },
        ],
      },
      opts: { perNamespace: true },
      has: [
        'RoleBinding/a1/pullkeeper-tenant-writer',
        'RoleBinding/a2/pullkeeper-tenant-writer',
        'ClusterRoleBinding//pullkeeper-inventory',
      ],
      hasNot: ['ClusterRoleBinding//pullkeeper-tenant-writer'],
      notes:
        /tenant b selects namespaces by label \(team=b\): create a RoleBinding to ClusterRole pullkeeper-tenant-writer/,
    },
    {
      name: 'nodes from the cluster: node reads; statusStore false: no ConfigMap rights',
      config: {
        tenants: [{ name: 'a', namespaces: { names: ['a1'] }, registries: ['r'] }],
        nodes: { inventory: 'kubernetes', registries: ['r'], ssh: { privateKey: { value: 'k' } } },
        statusStore: false,
      },
      inventory: ['namespaces:get,list', 'nodes:get,list'],
      hasNot: ['ClusterRole//pullkeeper-status', 'RoleBinding/pullkeeper-system/pullkeeper-status'],
    },
    {
      name: 'a user instead of a ServiceAccount: no Namespace/ServiceAccount objects',
      config: { tenants: [{ name: 'a', namespaces: { names: ['a1'] }, registries: ['r'] }] },
      opts: { subject: { kind: 'User', name: 'arn:aws:iam::1:role/pk' } },
      hasNot: ['Namespace//pullkeeper-system', 'ServiceAccount/pullkeeper-system/pullkeeper'],
    },
    {
      name: 'a cluster without tenants: only what the status store needs',
      config: {
        clusters: [
          { name: 'c1', kubeconfig: '/k' },
          { name: 'c2', kubeconfig: '/k2' },
        ],
        tenants: [{ name: 'a', cluster: 'c1', namespaces: { names: ['a1'] }, registries: ['r'] }],
        statusStore: { cluster: 'c2' },
      },
      opts: { cluster: 'c2' },
      has: ['ClusterRole//pullkeeper-status'],
      hasNot: [
        'ClusterRole//pullkeeper-tenant-writer',
        'ValidatingAdmissionPolicy//pullkeeper-secret-writes',
        'ClusterRole//pullkeeper-inventory',
      ],
    },
    {
      name: 'the pod credential broker: TokenReview and ServiceAccount get (by name when every tenant lists them)',
      config: {
        tenants: [
          {
            name: 'a',
            namespaces: { names: ['a1'] },
            registries: ['r'],
            podCredentials: { serviceAccounts: ['builder'] },
          },
        ],
        api: { serviceAccountTokens: { audience: 'pk' } },
      },
      has: ['ClusterRole//pullkeeper-broker', 'ClusterRoleBinding//pullkeeper-broker'],
    },
    {
      name: '--guard-tenant-labels: a namespace policy over the selector keys',
      config: {
        tenants: [{ name: 'b', namespaces: { matchLabels: { team: 'b', env: 'prod' } }, registries: ['r'] }],
      },
      opts: { guardTenantLabels: true },
      has: [
        'ValidatingAdmissionPolicy//pullkeeper-tenant-labels',
        'ValidatingAdmissionPolicyBinding//pullkeeper-tenant-labels',
      ],
    },
  ];
  for (const c of cases)
    test(c.name, () => {
      const out = generateRbac(cfg(c.config), c.opts);
      if (c.writer) assert.deepEqual(grants(out, 'pullkeeper-tenant-writer'), c.writer);
      if (c.inventory) assert.deepEqual(grants(out, 'pullkeeper-inventory'), c.inventory);
      for (const h of c.has ?? []) assert.ok(kinds(out).includes(h), `${h} in ${kinds(out).join(' ')}`);
      for (const h of c.hasNot ?? []) assert.ok(!kinds(out).includes(h), `${h} not expected`);
      if (c.notes) assert.match(out.notes.join('\n'), c.notes);
      else if (!c.opts?.perNamespace) assert.deepEqual(out.notes, []);
      // Never a Secret read without names, never a wildcard.
      for (const o of out.objects)
        for (const r of (o.object.rules ?? []) as Rule[]) {
          assert.ok(!r.verbs.includes('*') && !r.resources.includes('*'), 'no wildcard');
          if (r.resources.includes('secrets') && r.verbs.some((v) => ['get', 'list', 'watch'].includes(v)))
            assert.ok(r.resourceNames?.length, 'Secret reads are limited by name');
        }
    });

  test('the policy matches the identity and lists exactly the Secret names', () => {
    const out = generateRbac(
      cfg({
        tenants: [{ name: 'a', namespaces: { names: ['a1'] }, registries: ['r'], secretName: 'regcred' }],
      }),
      { subject: parseServiceAccount('ops/pk') },
    );
    const vap = out.objects.find((o) => o.object.kind === 'ValidatingAdmissionPolicy')!.object as unknown as {
      spec: { matchConditions: Array<{ expression: string }>; validations: Array<{ expression: string }> };
    };
    assert.equal(
      vap.spec.matchConditions[0]!.expression,
      "request.userInfo.username == 'system:serviceaccount:ops:pk'",
    );
    assert.deepEqual(
      vap.spec.validations.map((v) => v.expression),
      [
        "object.type == 'kubernetes.io/dockerconfigjson'",
        "has(object.metadata.labels) && 'app.kubernetes.io/managed-by' in object.metadata.labels && object.metadata.labels['app.kubernetes.io/managed-by'] == 'pullkeeper'",
        "object.metadata.name in ['regcred']",
      ],
    );
  });

  test('broker rules: TokenReview only without an offline issuer; any ServiceAccount unless every tenant lists them', () => {
    const tenant = (podCredentials?: unknown) => ({
      name: 'a',
      namespaces: { names: ['a1'] },
      registries: ['r'],
      ...(podCredentials ? { podCredentials } : {}),
    });
    const listed = generateRbac(
      cfg({
        tenants: [tenant({ serviceAccounts: ['builder'] })],
        api: { serviceAccountTokens: { audience: 'pk' } },
      }),
    );
    assert.deepEqual(grants(listed, 'pullkeeper-broker'), [
      'tokenreviews:create',
      'serviceaccounts:get@builder',
    ]);
    const offline = generateRbac(
      cfg({
        tenants: [tenant()],
        api: {
          serviceAccountTokens: {
            audience: 'pk',
            issuers: [{ cluster: 'c1', issuer: 'https://issuer.test' }],
          },
        },
      }),
    );
    assert.deepEqual(grants(offline, 'pullkeeper-broker'), ['serviceaccounts:get']);
    const off = generateRbac(cfg({ tenants: [tenant()] }));
    assert.deepEqual(grants(off, 'pullkeeper-broker'), []);
  });

  test('bad input: unknown cluster and a malformed --service-account say what to pass', () => {
    const c = cfg({ tenants: [{ name: 'a', namespaces: { names: ['a1'] }, registries: ['r'] }] });
    assert.throws(
      () => generateRbac(c, { cluster: 'nope' }),
      (e: Error) => e instanceof RbacError && /defines c1: pass one of those to --cluster/.test(e.message),
    );
    assert.throws(() => parseServiceAccount('just-a-name'), /expected NAMESPACE\/NAME/);
    assert.throws(() => parseServiceAccount('a/b/c'), RbacError);
  });

  test('the YAML is one document per object, comments included, and reads back the same', () => {
    const out = generateRbac(
      cfg({ tenants: [{ name: 'a', namespaces: { names: ['a1'] }, registries: ['r'] }] }),
      {
        perNamespace: true,
      },
    );
    const text = renderRbacYaml(out, ['header line']);
    assert.match(text, /^# header line\n# Generated by `pullkeeper rbac` for cluster c1/);
    const docs = parseAllDocuments(text)
      .map((d) => d.toJS())
      .filter(Boolean);
    assert.deepEqual(
      docs,
      out.objects.map((o) => o.object),
    );
  });
});

describe('infra/kubernetes/rbac.yaml', () => {
  test('is what `pullkeeper rbac` prints for infra/examples/plain.yaml', () => {
    const root = new URL('../../', import.meta.url);
    const example = parseConfigText(readFileSync(new URL('infra/examples/plain.yaml', root), 'utf8'));
    const shipped = readFileSync(new URL('infra/kubernetes/rbac.yaml', root), 'utf8');
    const body = renderRbacYaml(generateRbac(example));
    assert.ok(shipped.endsWith(body), 'regenerate it: npm run rbac:example (scripts/rbac-example.ts)');
    assert.match(shipped, /pullkeeper rbac --config/);
  });
});
