import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildContainerEnv,
  containerProcessEnv,
  DEFAULT_CONTAINER_PATH,
  type EnvFromSource,
  EnvResolutionError,
  type EnvVar,
  type EnvWarning,
  expandCommandAndArgs,
  expandEnvRefs,
  isEnvVarName,
  type NamespacedServiceLink,
  type PodEnvFacts,
  PodHostnameError,
  podHostname,
  type ResolvedEnvVar,
  type ServiceLink,
  selectServicesForPod,
  serviceEnvVars,
} from './pod-env.js';

// ---------------------------------------------------------------------------
// serviceEnvVars (§5.3)
// ---------------------------------------------------------------------------

const KUBERNETES: ServiceLink = {
  name: 'kubernetes',
  clusterIP: '10.96.0.1',
  ports: [{ name: 'https', port: 443, protocol: 'TCP' }],
};

const KUBERNETES_VARS: Array<[string, string]> = [
  ['KUBERNETES_SERVICE_HOST', '10.96.0.1'],
  ['KUBERNETES_SERVICE_PORT', '443'],
  ['KUBERNETES_SERVICE_PORT_HTTPS', '443'],
  ['KUBERNETES_PORT', 'tcp://10.96.0.1:443'],
  ['KUBERNETES_PORT_443_TCP', 'tcp://10.96.0.1:443'],
  ['KUBERNETES_PORT_443_TCP_PROTO', 'tcp'],
  ['KUBERNETES_PORT_443_TCP_PORT', '443'],
  ['KUBERNETES_PORT_443_TCP_ADDR', '10.96.0.1'],
];

interface ServiceCase {
  name: string;
  services: ServiceLink[];
  /** Exact entries, in construction order. */
  want: Array<[string, string]>;
}

const serviceCases: ServiceCase[] = [
  { name: 'kubernetes, named https port', services: [KUBERNETES], want: KUBERNETES_VARS },
  {
    name: 'redis-primary, one unnamed port, protocol defaults to TCP',
    services: [{ name: 'redis-primary', clusterIP: '10.0.0.11', ports: [{ port: 6379 }] }],
    want: [
      ['REDIS_PRIMARY_SERVICE_HOST', '10.0.0.11'],
      ['REDIS_PRIMARY_SERVICE_PORT', '6379'],
      ['REDIS_PRIMARY_PORT', 'tcp://10.0.0.11:6379'],
      ['REDIS_PRIMARY_PORT_6379_TCP', 'tcp://10.0.0.11:6379'],
      ['REDIS_PRIMARY_PORT_6379_TCP_PROTO', 'tcp'],
      ['REDIS_PRIMARY_PORT_6379_TCP_PORT', '6379'],
      ['REDIS_PRIMARY_PORT_6379_TCP_ADDR', '10.0.0.11'],
    ],
  },
  {
    name: 'dns-svc, three named ports, UDP first',
    services: [
      {
        name: 'dns-svc',
        clusterIP: '10.0.0.10',
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          { name: 'metrics', port: 9153 },
        ],
      },
    ],
    want: [
      ['DNS_SVC_SERVICE_HOST', '10.0.0.10'],
      ['DNS_SVC_SERVICE_PORT', '53'],
      ['DNS_SVC_SERVICE_PORT_DNS', '53'],
      ['DNS_SVC_SERVICE_PORT_DNS_TCP', '53'],
      ['DNS_SVC_SERVICE_PORT_METRICS', '9153'],
      ['DNS_SVC_PORT', 'udp://10.0.0.10:53'],
      ['DNS_SVC_PORT_53_UDP', 'udp://10.0.0.10:53'],
      ['DNS_SVC_PORT_53_UDP_PROTO', 'udp'],
      ['DNS_SVC_PORT_53_UDP_PORT', '53'],
      ['DNS_SVC_PORT_53_UDP_ADDR', '10.0.0.10'],
      ['DNS_SVC_PORT_53_TCP', 'tcp://10.0.0.10:53'],
      ['DNS_SVC_PORT_53_TCP_PROTO', 'tcp'],
      ['DNS_SVC_PORT_53_TCP_PORT', '53'],
      ['DNS_SVC_PORT_53_TCP_ADDR', '10.0.0.10'],
      ['DNS_SVC_PORT_9153_TCP', 'tcp://10.0.0.10:9153'],
      ['DNS_SVC_PORT_9153_TCP_PROTO', 'tcp'],
      ['DNS_SVC_PORT_9153_TCP_PORT', '9153'],
      ['DNS_SVC_PORT_9153_TCP_ADDR', '10.0.0.10'],
    ],
  },
  {
    name: 'IPv6 cluster IP is bracketed in URLs only',
    services: [{ name: 'v6', clusterIP: 'fd00::1', ports: [{ port: 80 }] }],
    want: [
      ['V6_SERVICE_HOST', 'fd00::1'],
      ['V6_SERVICE_PORT', '80'],
      ['V6_PORT', 'tcp://[fd00::1]:80'],
      ['V6_PORT_80_TCP', 'tcp://[fd00::1]:80'],
      ['V6_PORT_80_TCP_PROTO', 'tcp'],
      ['V6_PORT_80_TCP_PORT', '80'],
      ['V6_PORT_80_TCP_ADDR', 'fd00::1'],
    ],
  },
  {
    name: 'SCTP port',
    services: [
      { name: 'sig', clusterIP: '10.0.0.7', ports: [{ name: 'sctp-a', port: 3868, protocol: 'SCTP' }] },
    ],
    want: [
      ['SIG_SERVICE_HOST', '10.0.0.7'],
      ['SIG_SERVICE_PORT', '3868'],
      ['SIG_SERVICE_PORT_SCTP_A', '3868'],
      ['SIG_PORT', 'sctp://10.0.0.7:3868'],
      ['SIG_PORT_3868_SCTP', 'sctp://10.0.0.7:3868'],
      ['SIG_PORT_3868_SCTP_PROTO', 'sctp'],
      ['SIG_PORT_3868_SCTP_PORT', '3868'],
      ['SIG_PORT_3868_SCTP_ADDR', '10.0.0.7'],
    ],
  },
  {
    name: 'empty cluster IP (ExternalName) is skipped',
    services: [{ name: 'ext', clusterIP: '', ports: [{ port: 80 }] }],
    want: [],
  },
  {
    name: 'cluster IP None (headless) is skipped',
    services: [{ name: 'headless', clusterIP: 'None', ports: [{ port: 80 }] }],
    want: [],
  },
  {
    name: 'no ports: only _SERVICE_HOST',
    services: [{ name: 'bare', clusterIP: '10.0.0.9', ports: [] }],
    want: [['BARE_SERVICE_HOST', '10.0.0.9']],
  },
  {
    name: 'several services, skipped ones in between',
    services: [
      { name: 'a', clusterIP: '10.0.0.1', ports: [{ port: 1 }] },
      { name: 'b', clusterIP: 'None', ports: [{ port: 2 }] },
      { name: 'c-d-e', clusterIP: '10.0.0.3', ports: [{ port: 3, protocol: 'UDP' }] },
    ],
    want: [
      ['A_SERVICE_HOST', '10.0.0.1'],
      ['A_SERVICE_PORT', '1'],
      ['A_PORT', 'tcp://10.0.0.1:1'],
      ['A_PORT_1_TCP', 'tcp://10.0.0.1:1'],
      ['A_PORT_1_TCP_PROTO', 'tcp'],
      ['A_PORT_1_TCP_PORT', '1'],
      ['A_PORT_1_TCP_ADDR', '10.0.0.1'],
      ['C_D_E_SERVICE_HOST', '10.0.0.3'],
      ['C_D_E_SERVICE_PORT', '3'],
      ['C_D_E_PORT', 'udp://10.0.0.3:3'],
      ['C_D_E_PORT_3_UDP', 'udp://10.0.0.3:3'],
      ['C_D_E_PORT_3_UDP_PROTO', 'udp'],
      ['C_D_E_PORT_3_UDP_PORT', '3'],
      ['C_D_E_PORT_3_UDP_ADDR', '10.0.0.3'],
    ],
  },
  {
    name: 'colliding names: the later service wins',
    services: [
      { name: 'foo', clusterIP: '10.0.0.1', ports: [{ port: 80 }] },
      { name: 'foo-port-80-tcp', clusterIP: '10.0.0.2', ports: [{ port: 81 }] },
    ],
    want: [
      ['FOO_SERVICE_HOST', '10.0.0.1'],
      ['FOO_SERVICE_PORT', '80'],
      ['FOO_PORT', 'tcp://10.0.0.1:80'],
      ['FOO_PORT_80_TCP', 'tcp://10.0.0.1:80'],
      ['FOO_PORT_80_TCP_PROTO', 'tcp'],
      ['FOO_PORT_80_TCP_PORT', 'tcp://10.0.0.2:81'],
      ['FOO_PORT_80_TCP_ADDR', '10.0.0.1'],
      ['FOO_PORT_80_TCP_SERVICE_HOST', '10.0.0.2'],
      ['FOO_PORT_80_TCP_SERVICE_PORT', '81'],
      ['FOO_PORT_80_TCP_PORT_81_TCP', 'tcp://10.0.0.2:81'],
      ['FOO_PORT_80_TCP_PORT_81_TCP_PROTO', 'tcp'],
      ['FOO_PORT_80_TCP_PORT_81_TCP_PORT', '81'],
      ['FOO_PORT_80_TCP_PORT_81_TCP_ADDR', '10.0.0.2'],
    ],
  },
];

describe('serviceEnvVars', () => {
  for (const c of serviceCases) {
    test(c.name, () => {
      assert.deepEqual(Object.entries(serviceEnvVars(c.services)), c.want);
    });
  }
});

// ---------------------------------------------------------------------------
// selectServicesForPod (§5.3 which services, name clashes)
// ---------------------------------------------------------------------------

const svc = (namespace: string, name: string, clusterIP = '10.0.0.1'): NamespacedServiceLink => ({
  namespace,
  name,
  clusterIP,
  ports: [{ port: 80 }],
});

interface SelectCase {
  name: string;
  podNamespace: string;
  enableServiceLinks: boolean;
  masterNamespace?: string;
  services: NamespacedServiceLink[];
  /** `namespace/name@clusterIP` of the selected services, in order. */
  want: string[];
}

const masterK8s = svc('default', 'kubernetes', '10.96.0.1');

const selectCases: SelectCase[] = [
  {
    name: 'master kubernetes is included even with enableServiceLinks false',
    podNamespace: 'team-a',
    enableServiceLinks: false,
    services: [masterK8s, svc('team-a', 'db')],
    want: ['default/kubernetes@10.96.0.1'],
  },
  {
    name: 'same-namespace services only with enableServiceLinks',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [
      svc('team-a', 'web', '10.0.0.2'),
      masterK8s,
      svc('team-a', 'db', '10.0.0.3'),
      svc('team-b', 'x'),
    ],
    want: ['team-a/db@10.0.0.3', 'default/kubernetes@10.96.0.1', 'team-a/web@10.0.0.2'],
  },
  {
    name: 'other services in the master namespace are not included for a pod elsewhere',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [masterK8s, svc('default', 'metrics')],
    want: ['default/kubernetes@10.96.0.1'],
  },
  {
    name: 'pod in default namespace sees default services with links',
    podNamespace: 'default',
    enableServiceLinks: true,
    services: [masterK8s, svc('default', 'metrics', '10.0.0.4')],
    want: ['default/kubernetes@10.96.0.1', 'default/metrics@10.0.0.4'],
  },
  {
    name: 'pod in default namespace without links sees only kubernetes',
    podNamespace: 'default',
    enableServiceLinks: false,
    services: [masterK8s, svc('default', 'metrics', '10.0.0.4')],
    want: ['default/kubernetes@10.96.0.1'],
  },
  {
    name: 'same-namespace kubernetes overrides the master one (listed after)',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [masterK8s, svc('team-a', 'kubernetes', '10.0.0.99')],
    want: ['team-a/kubernetes@10.0.0.99'],
  },
  {
    name: 'same-namespace kubernetes overrides the master one (listed before)',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [svc('team-a', 'kubernetes', '10.0.0.99'), masterK8s],
    want: ['team-a/kubernetes@10.0.0.99'],
  },
  {
    name: 'same-namespace kubernetes is ignored without links',
    podNamespace: 'team-a',
    enableServiceLinks: false,
    services: [svc('team-a', 'kubernetes', '10.0.0.99'), masterK8s],
    want: ['default/kubernetes@10.96.0.1'],
  },
  {
    name: 'a master service already chosen is not replaced by another master-namespace entry',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [masterK8s, svc('default', 'kubernetes', '10.96.0.2')],
    want: ['default/kubernetes@10.96.0.1'],
  },
  {
    name: 'headless same-namespace kubernetes does not hide the master one',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [masterK8s, svc('team-a', 'kubernetes', 'None')],
    want: ['default/kubernetes@10.96.0.1'],
  },
  {
    name: 'services without a cluster IP are skipped',
    podNamespace: 'team-a',
    enableServiceLinks: true,
    services: [svc('team-a', 'headless', 'None'), svc('team-a', 'ext', ''), svc('default', 'kubernetes', '')],
    want: [],
  },
  {
    name: 'custom master namespace',
    podNamespace: 'team-a',
    enableServiceLinks: false,
    masterNamespace: 'kube-master',
    services: [masterK8s, svc('kube-master', 'kubernetes', '10.200.0.1')],
    want: ['kube-master/kubernetes@10.200.0.1'],
  },
];

describe('selectServicesForPod', () => {
  for (const c of selectCases) {
    test(c.name, () => {
      const got = selectServicesForPod({
        podNamespace: c.podNamespace,
        enableServiceLinks: c.enableServiceLinks,
        services: c.services,
        ...(c.masterNamespace !== undefined ? { masterNamespace: c.masterNamespace } : {}),
      });
      assert.deepEqual(
        got.map((s) => `${s.namespace}/${s.name}@${s.clusterIP}`),
        c.want,
      );
    });
  }

  test('composes with serviceEnvVars: an overriding same-namespace kubernetes gives its own vars', () => {
    const vars = serviceEnvVars(
      selectServicesForPod({
        podNamespace: 'team-a',
        enableServiceLinks: true,
        services: [masterK8s, svc('team-a', 'kubernetes', '10.0.0.99')],
      }),
    );
    assert.equal(vars.KUBERNETES_SERVICE_HOST, '10.0.0.99');
  });
});

// ---------------------------------------------------------------------------
// expandEnvRefs (§5.5)
// ---------------------------------------------------------------------------

const fromRecord =
  (...maps: Array<Record<string, string>>) =>
  (name: string): string | undefined => {
    for (const m of maps) if (Object.hasOwn(m, name)) return m[name];
    return undefined;
  };

interface ExpandCase {
  name: string;
  input: string;
  want: string;
}

const specVars = { A: 'A', B: 'B', EMPTY: '', REF: '$(A)' };

const specExpandCases: ExpandCase[] = [
  { name: 'repeat', input: '$(A)-$(A)', want: 'A-A' },
  { name: 'escape and expand', input: '$$(B)_$(A)', want: '$(B)_A' },
  { name: 'escaped operator before text', input: 'f000-$$A', want: 'f000-$A' },
  { name: 'empty value', input: 'foo$(EMPTY)bar', want: 'foobar' },
  { name: 'no recursion', input: '$(REF)', want: '$(A)' },
  { name: 'undefined stays', input: '$(DNE)', want: '$(DNE)' },
  { name: 'odd run of operators before a defined var', input: '$$$$$$$(A)', want: '$$$A' },
  { name: 'no nesting', input: '$(A$(B))', want: '$(A$(B))' },
  { name: 'shell braces ignored', input: `\${A}`, want: `\${A}` },
  { name: 'trailing unterminated', input: '$(B)___$(', want: 'B___$(' },
  { name: 'trailing operator', input: 'Afoo$', want: 'Afoo$' },
];

// Upstream expand_test.go doExpansionTest, run with a single and with a two-map context.
const upstreamSingle = {
  VAR_A: 'A',
  VAR_B: 'B',
  VAR_C: 'C',
  VAR_REF: '$(VAR_A)',
  VAR_EMPTY: '',
};
const upstreamDual: [Record<string, string>, Record<string, string>] = [
  { VAR_A: 'A', VAR_EMPTY: '' },
  { VAR_B: 'B', VAR_C: 'C', VAR_REF: '$(VAR_A)' },
];

const upstreamExpandCases: ExpandCase[] = [
  { name: 'whole string', input: '$(VAR_A)', want: 'A' },
  { name: 'repeat', input: '$(VAR_A)-$(VAR_A)', want: 'A-A' },
  { name: 'beginning', input: '$(VAR_A)-1', want: 'A-1' },
  { name: 'middle', input: '___$(VAR_B)___', want: '___B___' },
  { name: 'end', input: '___$(VAR_C)', want: '___C' },
  { name: 'compound', input: '$(VAR_A)_$(VAR_B)_$(VAR_C)', want: 'A_B_C' },
  { name: 'escape & expand', input: '$$(VAR_B)_$(VAR_A)', want: '$(VAR_B)_A' },
  { name: 'compound escape', input: '$$(VAR_A)_$$(VAR_B)', want: '$(VAR_A)_$(VAR_B)' },
  { name: 'mixed in escapes', input: 'f000-$$VAR_A', want: 'f000-$VAR_A' },
  { name: 'backslash escape ignored', input: 'foo\\$(VAR_C)bar', want: 'foo\\Cbar' },
  { name: 'double backslash escape ignored', input: 'foo\\\\$(VAR_C)bar', want: 'foo\\\\Cbar' },
  { name: 'lots of backslashes', input: 'foo\\\\\\\\$(VAR_A)bar', want: 'foo\\\\\\\\Abar' },
  { name: 'nested var references', input: '$(VAR_A$(VAR_B))', want: '$(VAR_A$(VAR_B))' },
  { name: 'nested var references second type', input: '$(VAR_A$(VAR_B)', want: '$(VAR_A$(VAR_B)' },
  { name: 'value is a reference', input: '$(VAR_REF)', want: '$(VAR_A)' },
  { name: 'value is a reference x 2', input: '%%$(VAR_REF)--$(VAR_REF)%%', want: '%%$(VAR_A)--$(VAR_A)%%' },
  { name: 'empty var', input: 'foo$(VAR_EMPTY)bar', want: 'foobar' },
  { name: 'unterminated expression', input: 'foo$(VAR_Awhoops!', want: 'foo$(VAR_Awhoops!' },
  { name: 'expression without operator', input: 'f00__(VAR_A)__', want: 'f00__(VAR_A)__' },
  { name: 'shell special vars pass through', input: '$?_boo_$!', want: '$?_boo_$!' },
  { name: 'bare operators are ignored', input: '$VAR_A', want: '$VAR_A' },
  { name: 'undefined vars are passed through', input: '$(VAR_DNE)', want: '$(VAR_DNE)' },
  { name: 'multiple (even) operators, var undefined', input: '$$$$$$(BIG_MONEY)', want: '$$$(BIG_MONEY)' },
  { name: 'multiple (even) operators, var defined', input: '$$$$$$(VAR_A)', want: '$$$(VAR_A)' },
  { name: 'multiple (odd) operators, var undefined', input: '$$$$$$$(GOOD_ODDS)', want: '$$$$(GOOD_ODDS)' },
  { name: 'multiple (odd) operators, var defined', input: '$$$$$$$(VAR_A)', want: '$$$A' },
  { name: 'missing open expression', input: '$VAR_A)', want: '$VAR_A)' },
  { name: 'shell syntax ignored', input: `\${VAR_A}`, want: `\${VAR_A}` },
  { name: 'trailing incomplete expression not consumed', input: '$(VAR_B)_______$(A', want: 'B_______$(A' },
  {
    name: 'trailing incomplete expression, no content, is not consumed',
    input: '$(VAR_C)_______$(',
    want: 'C_______$(',
  },
  { name: 'operator at end of input string is preserved', input: '$(VAR_A)foobarzab$', want: 'Afoobarzab$' },
  { name: 'shell escaped incomplete expr', input: 'foo-\\$(VAR_A', want: 'foo-\\$(VAR_A' },
  { name: 'lots of $( in middle', input: '--$($($($($--', want: '--$($($($($--' },
  { name: 'lots of $( in beginning', input: '$($($($($--foo$(', want: '$($($($($--foo$(' },
  { name: 'lots of $( at end', input: 'foo0--$($($($(', want: 'foo0--$($($($(' },
  { name: 'escaped operators in variable names are not escaped', input: '$(foo$$var)', want: '$(foo$$var)' },
  { name: 'newline not expanded', input: '\n', want: '\n' },
];

const ownExpandCases: ExpandCase[] = [
  { name: 'empty input', input: '', want: '' },
  { name: 'lone operator', input: '$', want: '$' },
  { name: 'escaped operator only', input: '$$', want: '$' },
  { name: 'three operators', input: '$$$', want: '$$' },
  { name: 'empty name is looked up and left as written', input: '$()', want: '$()' },
  { name: 'unterminated, then an escape later still unescapes', input: '$(x $$ y', want: '$(x $ y' },
  { name: 'escape right before an unterminated reference', input: '$$$(', want: '$$(' },
  { name: 'names are taken verbatim, spaces included', input: '$( VAR_A)', want: '$( VAR_A)' },
  { name: 'non-ASCII text around references', input: 'é$(VAR_A)→$(VAR_B)😀', want: 'éA→B😀' },
  {
    name: 'prototype names are not variables',
    input: '$(constructor)$(toString)',
    want: '$(constructor)$(toString)',
  },
];

describe('expandEnvRefs', () => {
  describe('docs/kubelet-parity.md §5.5 vectors', () => {
    for (const c of specExpandCases) {
      test(c.name, () => assert.equal(expandEnvRefs(c.input, fromRecord(specVars)), c.want));
    }
  });
  describe('upstream expand_test.go, one context map', () => {
    for (const c of upstreamExpandCases) {
      test(c.name, () => assert.equal(expandEnvRefs(c.input, fromRecord(upstreamSingle)), c.want));
    }
  });
  describe('upstream expand_test.go, two context maps', () => {
    for (const c of upstreamExpandCases) {
      test(c.name, () => assert.equal(expandEnvRefs(c.input, fromRecord(...upstreamDual)), c.want));
    }
  });
  describe('own edge cases', () => {
    for (const c of ownExpandCases) {
      test(c.name, () => assert.equal(expandEnvRefs(c.input, fromRecord(upstreamSingle)), c.want));
    }
  });

  test('first context map wins over the second', () => {
    assert.equal(expandEnvRefs('$(X)', fromRecord({ X: 'first' }, { X: 'second' })), 'first');
  });

  test('long unterminated input stays linear and literal', () => {
    const input = '$('.repeat(50_000);
    assert.equal(
      expandEnvRefs(input, () => 'never'),
      input,
    );
  });
});

// ---------------------------------------------------------------------------
// isEnvVarName
// ---------------------------------------------------------------------------

describe('isEnvVarName', () => {
  const rows: Array<{ name: string; input: string; want: boolean }> = [
    { name: 'upper with underscore', input: 'MY_ENV', want: true },
    { name: 'dots and dashes', input: 'my.env-name', want: true },
    { name: 'leading dot', input: '.hidden', want: true },
    { name: 'digit inside', input: 'MyEnvName1', want: true },
    { name: 'leading digit', input: '1ABC', want: false },
    { name: 'empty', input: '', want: false },
    { name: 'space', input: 'A B', want: false },
    { name: 'equals', input: 'A=B', want: false },
    { name: 'single dot', input: '.', want: false },
    { name: 'double dot', input: '..', want: false },
    { name: 'double dot prefix', input: '..x', want: false },
  ];
  for (const r of rows) test(r.name, () => assert.equal(isEnvVarName(r.input), r.want));
});

// ---------------------------------------------------------------------------
// buildContainerEnv (§5.2, §5.4, §5.5)
// ---------------------------------------------------------------------------

const POD: PodEnvFacts = {
  name: 'web-0',
  namespace: 'shop',
  uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
  nodeName: 'node-1',
  serviceAccountName: 'builder',
  hostIP: '192.168.1.10',
  podIP: '10.244.1.7',
  podIPs: ['10.244.1.7', 'fd00:10:244::7'],
  labels: { app: 'web', 'app.kubernetes.io/name': 'shop-web' },
  annotations: { 'example.com/Owner': 'team-a' },
};

const K8S_ENV = Object.fromEntries(KUBERNETES_VARS);

interface BuildInput {
  env?: EnvVar[];
  envFrom?: EnvFromSource[];
  configMaps?: Record<string, Record<string, string>>;
  secrets?: Record<string, Record<string, string>>;
  pod?: PodEnvFacts;
  serviceEnv?: Record<string, string>;
}

const build = (i: BuildInput) =>
  buildContainerEnv({
    ...(i.env !== undefined ? { env: i.env } : {}),
    ...(i.envFrom !== undefined ? { envFrom: i.envFrom } : {}),
    configMaps: i.configMaps ?? {},
    secrets: i.secrets ?? {},
    pod: i.pod ?? POD,
    serviceEnv: i.serviceEnv ?? {},
  });

interface BuildCase {
  name: string;
  input: BuildInput;
  /** Exact output, in order. */
  want?: ResolvedEnvVar[];
  /** Only these names are checked (value, or undefined for "absent"). */
  some?: Record<string, string | undefined>;
  warnings?: EnvWarning[];
}

const pairs = (...kv: Array<[string, string]>): ResolvedEnvVar[] =>
  kv.map(([name, value]) => ({ name, value }));

const buildCases: BuildCase[] = [
  // Order dependence and visibility
  {
    name: 'order dependence: FOO, ZOO=$(FOO)-1, BLU=$(ZOO)-2',
    input: {
      env: [
        { name: 'FOO', value: 'bar' },
        { name: 'ZOO', value: '$(FOO)-1' },
        { name: 'BLU', value: '$(ZOO)-2' },
      ],
    },
    want: pairs(['FOO', 'bar'], ['ZOO', 'bar-1'], ['BLU', 'bar-1-2']),
  },
  {
    name: 'later env entries are invisible',
    input: {
      env: [
        { name: 'A', value: '$(B)-x' },
        { name: 'B', value: 'b' },
      ],
    },
    want: pairs(['A', '$(B)-x'], ['B', 'b']),
  },
  {
    name: 'PATH=$(PATH):/x stays literal (image ENV is invisible)',
    input: { env: [{ name: 'PATH', value: '$(PATH):/x' }] },
    want: pairs(['PATH', '$(PATH):/x']),
  },
  {
    name: 'PATH=$(PATH):/x expands when PATH came from envFrom',
    input: {
      envFrom: [{ configMapRef: { name: 'paths' } }],
      configMaps: { paths: { PATH: '/opt/bin' } },
      env: [{ name: 'PATH', value: '$(PATH):/x' }],
    },
    want: pairs(['PATH', '/opt/bin:/x']),
  },
  {
    name: 'PATH=$(PATH):/x expands when PATH came from an earlier env entry',
    input: {
      env: [
        { name: 'PATH', value: '/a' },
        { name: 'PATH', value: '$(PATH):/x' },
      ],
    },
    want: pairs(['PATH', '/a:/x']),
  },
  {
    name: 'service variables are visible to expansion',
    input: {
      env: [{ name: 'API', value: 'https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)' }],
      serviceEnv: K8S_ENV,
    },
    some: { API: 'https://10.96.0.1:443', KUBERNETES_SERVICE_HOST: '10.96.0.1' },
  },
  {
    name: 'envFrom shadows a service variable during expansion',
    input: {
      envFrom: [{ configMapRef: { name: 'cm' } }],
      configMaps: { cm: { KUBERNETES_SERVICE_HOST: 'from-cm' } },
      env: [{ name: 'X', value: '$(KUBERNETES_SERVICE_HOST)' }],
      serviceEnv: K8S_ENV,
    },
    some: { X: 'from-cm', KUBERNETES_SERVICE_HOST: 'from-cm' },
  },
  {
    name: 'an env entry may reference the service variable it replaces',
    input: {
      env: [{ name: 'KUBERNETES_SERVICE_HOST', value: '$(KUBERNETES_SERVICE_HOST)-proxy' }],
      serviceEnv: { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    },
    want: pairs(['KUBERNETES_SERVICE_HOST', '10.96.0.1-proxy']),
  },
  {
    name: '$$ in a value is unescaped',
    input: { env: [{ name: 'PRICE', value: '$$5 $$(NOT)' }] },
    want: pairs(['PRICE', '$5 $(NOT)']),
  },
  // Precedence
  {
    name: 'precedence: env > envFrom > service vars, no duplicates',
    input: {
      envFrom: [{ configMapRef: { name: 'cm' } }],
      configMaps: { cm: { SHARED: 'from-envFrom', ONLY_CM: 'cm', KUBERNETES_PORT: 'from-envFrom' } },
      env: [{ name: 'SHARED', value: 'from-env' }],
      serviceEnv: { KUBERNETES_PORT: 'tcp://10.96.0.1:443', KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    },
    want: pairs(
      ['SHARED', 'from-env'],
      ['ONLY_CM', 'cm'],
      ['KUBERNETES_PORT', 'from-envFrom'],
      ['KUBERNETES_SERVICE_HOST', '10.96.0.1'],
    ),
  },
  {
    name: 'env replaces a service variable',
    input: {
      env: [{ name: 'KUBERNETES_SERVICE_PORT', value: '6443' }],
      serviceEnv: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
    },
    want: pairs(['KUBERNETES_SERVICE_PORT', '6443'], ['KUBERNETES_SERVICE_HOST', '10.96.0.1']),
  },
  {
    name: 'empty value with no valueFrom sets "" and hides the service variable',
    input: {
      env: [{ name: 'KUBERNETES_SERVICE_HOST' }],
      serviceEnv: { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    },
    want: pairs(['KUBERNETES_SERVICE_HOST', '']),
  },
  {
    name: 'later envFrom source overwrites an earlier one',
    input: {
      envFrom: [{ configMapRef: { name: 'a' } }, { secretRef: { name: 'b' } }],
      configMaps: { a: { X: 'from-a', Y: 'y' } },
      secrets: { b: { X: 'from-b' } },
    },
    want: pairs(['X', 'from-b'], ['Y', 'y']),
  },
  {
    name: 'envFrom prefix is prepended',
    input: {
      envFrom: [{ prefix: 'DB_', secretRef: { name: 'db' } }],
      secrets: { db: { USER: 'app', HOST: 'db.local' } },
    },
    want: pairs(['DB_USER', 'app'], ['DB_HOST', 'db.local']),
  },
  {
    name: 'prefix can make a key valid',
    input: {
      envFrom: [{ prefix: 'P_', configMapRef: { name: 'cm' } }],
      configMaps: { cm: { '1st': 'one' } },
    },
    want: pairs(['P_1st', 'one']),
    warnings: [],
  },
  {
    name: 'configMapRef wins when an envFrom names both',
    input: {
      envFrom: [{ configMapRef: { name: 'cm' }, secretRef: { name: 's' } }],
      configMaps: { cm: { X: 'cm' } },
      secrets: { s: { X: 's' } },
    },
    want: pairs(['X', 'cm']),
  },
  // Invalid keys
  {
    name: 'invalid configMap keys are skipped with a sorted warning',
    input: {
      envFrom: [{ configMapRef: { name: 'settings' } }],
      configMaps: { settings: { 'b key': '1', GOOD: 'ok', '1abc': '2', '..dots': '3' } },
    },
    want: pairs(['GOOD', 'ok']),
    warnings: [
      {
        reason: 'InvalidEnvironmentVariableNames',
        message:
          'Keys [..dots, 1abc, b key] from the EnvFrom configMap shop/settings were skipped since they are considered invalid environment variable names.',
      },
    ],
  },
  {
    name: 'invalid secret keys warn with the prefixed names',
    input: {
      envFrom: [{ prefix: 'S-', secretRef: { name: 'creds' } }],
      secrets: { creds: { 'a=b': 'x', TOKEN: 't' } },
    },
    want: pairs(['S-TOKEN', 't']),
    warnings: [
      {
        reason: 'InvalidEnvironmentVariableNames',
        message:
          'Keys [S-a=b] from the EnvFrom secret shop/creds were skipped since they are considered invalid environment variable names.',
      },
    ],
  },
  // Missing sources
  {
    name: 'optional missing envFrom configMap is skipped',
    input: { envFrom: [{ configMapRef: { name: 'nope', optional: true } }] },
    want: [],
    warnings: [],
  },
  {
    name: 'optional missing envFrom secret is skipped',
    input: { envFrom: [{ secretRef: { name: 'nope', optional: true } }] },
    want: [],
  },
  {
    name: 'configMapKeyRef resolves and is never expanded',
    input: {
      env: [
        { name: 'FOO', value: 'foo' },
        { name: 'RAW', valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } },
      ],
      configMaps: { cm: { k: '$(FOO)' } },
    },
    want: pairs(['FOO', 'foo'], ['RAW', '$(FOO)']),
  },
  {
    name: 'secretKeyRef resolves',
    input: {
      env: [{ name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
      secrets: { db: { password: 's3cr3t' } },
    },
    want: pairs(['PASSWORD', 's3cr3t']),
  },
  {
    name: 'missing optional key omits the variable and the service variable survives',
    input: {
      env: [
        {
          name: 'KUBERNETES_SERVICE_HOST',
          valueFrom: { configMapKeyRef: { name: 'cm', key: 'x', optional: true } },
        },
      ],
      configMaps: { cm: {} },
      serviceEnv: { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    },
    want: pairs(['KUBERNETES_SERVICE_HOST', '10.96.0.1']),
  },
  {
    name: 'missing optional secret omits the variable and keeps an envFrom value',
    input: {
      envFrom: [{ configMapRef: { name: 'cm' } }],
      configMaps: { cm: { TOKEN: 'from-cm' } },
      env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'gone', key: 't', optional: true } } }],
    },
    want: pairs(['TOKEN', 'from-cm']),
  },
  {
    name: 'a non-empty value wins over valueFrom',
    input: { env: [{ name: 'X', value: 'v', valueFrom: { secretKeyRef: { name: 'missing', key: 'k' } } }] },
    want: pairs(['X', 'v']),
  },
  // fieldRef
  {
    name: 'fieldRef: every allowed path',
    input: {
      env: [
        { name: 'NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace', apiVersion: 'v1' } } },
        { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'HOST_IPS', valueFrom: { fieldRef: { fieldPath: 'status.hostIPs' } } },
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'POD_IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        {
          name: 'APP_NAME',
          valueFrom: { fieldRef: { fieldPath: "metadata.labels['app.kubernetes.io/name']" } },
        },
        {
          name: 'OWNER',
          valueFrom: { fieldRef: { fieldPath: "metadata.annotations['example.com/Owner']" } },
        },
        { name: 'NO_LABEL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['absent']" } } },
      ],
    },
    want: pairs(
      ['NAME', 'web-0'],
      ['NS', 'shop'],
      ['UID', '1b4e28ba-2fa1-11d2-883f-0016d3cca427'],
      ['NODE', 'node-1'],
      ['SA', 'builder'],
      ['HOST_IP', '192.168.1.10'],
      ['HOST_IPS', '192.168.1.10'],
      ['POD_IP', '10.244.1.7'],
      ['POD_IPS', '10.244.1.7,fd00:10:244::7'],
      ['APP', 'web'],
      ['APP_NAME', 'shop-web'],
      ['OWNER', 'team-a'],
      ['NO_LABEL', ''],
    ),
  },
  {
    name: 'fieldRef: podIP is the first of podIPs; unset nodeName is empty',
    input: {
      pod: { name: 'p', namespace: 'n', uid: 'u', podIP: '10.0.0.1', podIPs: ['fd00::1', '10.0.0.1'] },
      env: [
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      ],
    },
    want: pairs(['POD_IP', 'fd00::1'], ['NODE', '']),
  },
  {
    name: 'fieldRef: podIP alone, hostIPs list',
    input: {
      pod: { name: 'p', namespace: 'n', uid: 'u', podIP: '10.0.0.1', hostIPs: ['192.168.0.2', 'fd00::2'] },
      env: [
        { name: 'POD_IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'HOST_IPS', valueFrom: { fieldRef: { fieldPath: 'status.hostIPs' } } },
      ],
    },
    want: pairs(['POD_IPS', '10.0.0.1'], ['HOST_IP', '192.168.0.2'], ['HOST_IPS', '192.168.0.2,fd00::2']),
  },
];

describe('buildContainerEnv', () => {
  for (const c of buildCases) {
    test(c.name, () => {
      const got = build(c.input);
      if (c.want !== undefined) assert.deepEqual(got.env, c.want);
      if (c.some !== undefined) {
        const m = new Map(got.env.map((e) => [e.name, e.value]));
        for (const [k, v] of Object.entries(c.some)) assert.equal(m.get(k), v, k);
        assert.equal(m.size, got.env.length, 'no duplicate names');
      }
      assert.deepEqual(got.warnings, c.warnings ?? []);
    });
  }

  interface ErrorCase {
    name: string;
    input: BuildInput;
    message: string | RegExp;
  }

  const errorCases: ErrorCase[] = [
    {
      name: 'required key missing in ConfigMap',
      input: {
        env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm', key: 'K' } } }],
        configMaps: { cm: { other: '1' } },
      },
      message: "couldn't find key K in ConfigMap shop/cm",
    },
    {
      name: 'required key missing in Secret',
      input: {
        env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'K', optional: false } } }],
        secrets: { s: {} },
      },
      message: "couldn't find key K in Secret shop/s",
    },
    {
      name: 'prototype key names are not keys',
      input: {
        env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm', key: 'constructor' } } }],
        configMaps: { cm: {} },
      },
      message: "couldn't find key constructor in ConfigMap shop/cm",
    },
    {
      name: 'required ConfigMap missing (configMapKeyRef)',
      input: { env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'gone', key: 'K' } } }] },
      message: 'configmaps "gone" not found',
    },
    {
      name: 'required Secret missing (secretKeyRef)',
      input: { env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'gone', key: 'K' } } }] },
      message: 'secrets "gone" not found',
    },
    {
      name: 'required ConfigMap missing (envFrom)',
      input: { envFrom: [{ configMapRef: { name: 'gone' } }] },
      message: 'configmaps "gone" not found',
    },
    {
      name: 'required Secret missing (envFrom)',
      input: { envFrom: [{ secretRef: { name: 'toString', optional: false } }] },
      message: 'secrets "toString" not found',
    },
    {
      name: 'unknown fieldPath',
      input: { env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.restartPolicy' } } }] },
      message:
        /^env X: fieldRef fieldPath "spec\.restartPolicy" is not supported; use one of metadata\.name, /,
    },
    {
      name: 'whole label map is not allowed in env',
      input: { env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'metadata.labels' } } }] },
      message: /fieldPath "metadata\.labels" is not supported/,
    },
    {
      name: 'subscript on a field that has none',
      input: { env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: "spec.nodeName['a']" } } }] },
      message: /fieldPath "spec\.nodeName\['a'\]" is not supported/,
    },
    {
      name: 'invalid label key subscript',
      input: { env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: "metadata.labels['bad key']" } } }] },
      message: /^invalid key subscript in metadata\.labels\['bad key'\] \(env X\)/,
    },
    {
      name: 'unsupported apiVersion',
      input: {
        env: [{ name: 'X', valueFrom: { fieldRef: { apiVersion: 'v2', fieldPath: 'metadata.name' } } }],
      },
      message: 'unsupported pod version: v2',
    },
    {
      name: 'resourceFieldRef is refused',
      input: { env: [{ name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }] },
      message: /^env CPU: resourceFieldRef \(limits\.cpu\) is not supported/,
    },
  ];

  for (const c of errorCases) {
    test(`error: ${c.name}`, () => {
      assert.throws(
        () => build(c.input),
        (err: unknown) => {
          assert.ok(err instanceof EnvResolutionError);
          assert.equal(err.name, 'EnvResolutionError');
          if (typeof c.message === 'string') assert.equal(err.message, c.message);
          else assert.match(err.message, c.message);
          return true;
        },
      );
    });
  }

  test('does not mutate its inputs', () => {
    const serviceEnv = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };
    const env: EnvVar[] = [{ name: 'KUBERNETES_SERVICE_HOST', value: 'x' }];
    build({ env, serviceEnv });
    assert.deepEqual(serviceEnv, { KUBERNETES_SERVICE_HOST: '10.96.0.1' });
    assert.deepEqual(env, [{ name: 'KUBERNETES_SERVICE_HOST', value: 'x' }]);
  });

  test('one warning per offending envFrom source', () => {
    const got = build({
      envFrom: [
        { configMapRef: { name: 'a' } },
        { configMapRef: { name: 'b' } },
        { configMapRef: { name: 'a' } },
      ],
      configMaps: { a: { '9': 'x' }, b: { OK: 'y' } },
    });
    const msg =
      'Keys [9] from the EnvFrom configMap shop/a were skipped since they are considered invalid environment variable names.';
    assert.deepEqual(
      got.warnings.map((w) => w.message),
      [msg, msg],
    );
    assert.deepEqual(got.env, pairs(['OK', 'y']));
  });
});

// ---------------------------------------------------------------------------
// expandCommandAndArgs
// ---------------------------------------------------------------------------

describe('expandCommandAndArgs', () => {
  const env = pairs(['GREETING', 'hi'], ['TARGET', 'world'], ['TARGET', 'everyone'], ['EMPTY', '']);
  const rows: Array<{
    name: string;
    command: string[] | undefined;
    args: string[] | undefined;
    want: { command: string[]; args: string[] };
  }> = [
    { name: 'nothing set', command: undefined, args: undefined, want: { command: [], args: [] } },
    { name: 'empty lists', command: [], args: [], want: { command: [], args: [] } },
    {
      name: 'expands both, later duplicate name wins',
      command: ['/bin/echo', '$(GREETING)'],
      args: ['$(TARGET)', '$(EMPTY)x', '$(MISSING)', '$$(GREETING)', `\${GREETING}`],
      want: {
        command: ['/bin/echo', 'hi'],
        args: ['everyone', 'x', '$(MISSING)', '$(GREETING)', `\${GREETING}`],
      },
    },
    {
      name: 'args only',
      command: undefined,
      args: ['--name=$(TARGET)'],
      want: { command: [], args: ['--name=everyone'] },
    },
  ];
  for (const r of rows) {
    test(r.name, () => assert.deepEqual(expandCommandAndArgs(r.command, r.args, env), r.want));
  }

  test('sees every final variable, including ones declared after a reference in env', () => {
    const { env: finalEnv } = build({
      env: [
        { name: 'A', value: '$(B)' },
        { name: 'B', value: 'b' },
      ],
      serviceEnv: { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    });
    assert.deepEqual(
      expandCommandAndArgs(['run', '$(B)', '$(A)', '$(KUBERNETES_SERVICE_HOST)'], undefined, finalEnv),
      {
        command: ['run', 'b', '$(B)', '10.96.0.1'],
        args: [],
      },
    );
  });
});

// ---------------------------------------------------------------------------
// podHostname (§5.1)
// ---------------------------------------------------------------------------

type HostnamePod = Parameters<typeof podHostname>[0];

describe('podHostname', () => {
  const name70 = `a${'b'.repeat(69)}`;
  const name63 = `a${'b'.repeat(62)}`;
  // 62 chars then "-.", then more: truncation leaves a trailing "-." to trim.
  const trailing = `${'c'.repeat(61)}-.-d${'e'.repeat(10)}`;
  // FQDN of exactly 64 characters: "h." + "s." + "n." + "svc." + domain
  const domain54 = `${'d'.repeat(50)}.dom`;

  const rows: Array<{
    name: string;
    pod: HostnamePod;
    domain?: string;
    want: { hostname: string; fqdn?: string };
  }> = [
    { name: 'pod name', pod: { name: 'web-0', namespace: 'shop' }, want: { hostname: 'web-0' } },
    {
      name: 'spec.hostname wins over the pod name',
      pod: { name: 'web-0', hostname: 'primary', namespace: 'shop' },
      want: { hostname: 'primary' },
    },
    {
      name: '63 characters is kept',
      pod: { name: name63, namespace: 'shop' },
      want: { hostname: name63 },
    },
    {
      name: 'longer names are truncated to 63',
      pod: { name: name70, namespace: 'shop' },
      want: { hostname: name70.slice(0, 63) },
    },
    {
      name: 'truncation trims trailing - and .',
      pod: { name: trailing, namespace: 'shop' },
      want: { hostname: 'c'.repeat(61) },
    },
    {
      name: 'subdomain gives an FQDN, hostname stays short',
      pod: { name: 'web-0', subdomain: 'web', namespace: 'shop' },
      want: { hostname: 'web-0', fqdn: 'web-0.web.shop.svc.cluster.local' },
    },
    {
      name: 'setHostnameAsFQDN makes the kernel hostname the FQDN',
      pod: { name: 'web-0', subdomain: 'web', namespace: 'shop', setHostnameAsFQDN: true },
      want: { hostname: 'web-0.web.shop.svc.cluster.local', fqdn: 'web-0.web.shop.svc.cluster.local' },
    },
    {
      name: 'setHostnameAsFQDN without a subdomain has no effect',
      pod: { name: 'web-0', namespace: 'shop', setHostnameAsFQDN: true },
      want: { hostname: 'web-0' },
    },
    {
      name: 'FQDN of exactly 64 characters is accepted',
      pod: { name: 'h', subdomain: 's', namespace: 'n', setHostnameAsFQDN: true },
      domain: domain54,
      want: { hostname: `h.s.n.svc.${domain54}`, fqdn: `h.s.n.svc.${domain54}` },
    },
    {
      name: 'long FQDN without setHostnameAsFQDN is fine',
      pod: { name: name63, subdomain: 'web', namespace: 'shop' },
      want: { hostname: name63, fqdn: `${name63}.web.shop.svc.cluster.local` },
    },
    {
      name: 'FQDN uses the truncated hostname',
      pod: { name: name70, subdomain: 's', namespace: 'n' },
      domain: 'c',
      want: { hostname: name70.slice(0, 63), fqdn: `${name70.slice(0, 63)}.s.n.svc.c` },
    },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const got = podHostname(r.pod, r.domain ?? 'cluster.local');
      assert.deepEqual(got, r.want);
      assert.ok(got.hostname.length <= 64);
    });
  }

  const errors: Array<{ name: string; pod: HostnamePod; domain?: string; message: string | RegExp }> = [
    {
      name: 'FQDN over 64 characters',
      pod: {
        name: 'web-0',
        subdomain: 'web',
        namespace: 'a-rather-long-namespace-name-for-test',
        setHostnameAsFQDN: true,
      },
      message:
        'failed to construct FQDN from pod hostname and cluster domain, FQDN web-0.web.a-rather-long-namespace-name-for-test.svc.cluster.local is too long (64 characters is the max, 65 characters requested)',
    },
    {
      name: 'FQDN of 65 characters',
      pod: { name: 'hh', subdomain: 's', namespace: 'n', setHostnameAsFQDN: true },
      domain: domain54,
      message: /is too long \(64 characters is the max, 65 characters requested\)$/,
    },
    {
      name: 'spec.hostname not a DNS label',
      pod: { name: 'web-0', hostname: 'Bad_Name', namespace: 'shop' },
      message: /^Pod Hostname "Bad_Name" is not a valid DNS label: a lowercase RFC 1123 label/,
    },
    {
      name: 'spec.hostname too long',
      pod: { name: 'web-0', hostname: 'h'.repeat(64), namespace: 'shop' },
      message: /is not a valid DNS label: must be no more than 63 characters$/,
    },
    {
      name: 'subdomain not a DNS label',
      pod: { name: 'web-0', subdomain: 'a.b', namespace: 'shop' },
      message: /^Pod Subdomain "a\.b" is not a valid DNS label/,
    },
  ];
  for (const e of errors) {
    test(`error: ${e.name}`, () => {
      assert.throws(
        () => podHostname(e.pod, e.domain ?? 'cluster.local'),
        (err: unknown) => {
          assert.ok(err instanceof PodHostnameError);
          if (typeof e.message === 'string') assert.equal(err.message, e.message);
          else assert.match(err.message, e.message);
          return true;
        },
      );
    });
  }
});

// ---------------------------------------------------------------------------
// containerProcessEnv (containerd)
// ---------------------------------------------------------------------------

describe('containerProcessEnv', () => {
  const rows: Array<{
    name: string;
    image: string[];
    kubelet: ResolvedEnvVar[];
    hostname: string;
    want: string[];
  }> = [
    {
      name: 'defaults only',
      image: [],
      kubelet: [],
      hostname: 'web-0',
      want: [`PATH=${DEFAULT_CONTAINER_PATH}`, 'HOSTNAME=web-0'],
    },
    {
      name: 'image PATH replaces the default in place',
      image: ['LANG=C.UTF-8', 'PATH=/app/bin'],
      kubelet: [],
      hostname: 'web-0',
      want: ['PATH=/app/bin', 'HOSTNAME=web-0', 'LANG=C.UTF-8'],
    },
    {
      name: 'image ENV beats HOSTNAME, kubelet env beats image ENV',
      image: ['HOSTNAME=from-image', 'MODE=image', 'KEEP=1'],
      kubelet: pairs(['MODE', 'kubelet'], ['EXTRA', 'x']),
      hostname: 'web-0',
      want: [`PATH=${DEFAULT_CONTAINER_PATH}`, 'HOSTNAME=from-image', 'MODE=kubelet', 'KEEP=1', 'EXTRA=x'],
    },
    {
      name: 'kubelet env beats everything (PATH and HOSTNAME)',
      image: ['PATH=/image'],
      kubelet: pairs(['PATH', '/kubelet'], ['HOSTNAME', 'override']),
      hostname: 'web-0',
      want: ['PATH=/kubelet', 'HOSTNAME=override'],
    },
    {
      name: 'a literal $(PATH) from the kubelet is passed through unexpanded',
      image: ['PATH=/image'],
      kubelet: pairs(['PATH', '$(PATH):/x']),
      hostname: 'h',
      want: ['PATH=$(PATH):/x', 'HOSTNAME=h'],
    },
    {
      name: 'image entry without = unsets',
      image: ['TMP=1', 'TMP', 'PATH'],
      kubelet: [],
      hostname: 'h',
      want: ['HOSTNAME=h'],
    },
    {
      name: 'values keep their own = signs; duplicates in image ENV collapse',
      image: ['OPTS=a=b=c', 'OPTS=x=y'],
      kubelet: pairs(['EQ', '=']),
      hostname: 'h',
      want: [`PATH=${DEFAULT_CONTAINER_PATH}`, 'HOSTNAME=h', 'OPTS=x=y', 'EQ=='],
    },
    {
      name: 'empty kubelet value still overrides',
      image: ['DEBUG=1'],
      kubelet: pairs(['DEBUG', '']),
      hostname: 'h',
      want: [`PATH=${DEFAULT_CONTAINER_PATH}`, 'HOSTNAME=h', 'DEBUG='],
    },
  ];
  for (const r of rows) {
    test(r.name, () => assert.deepEqual(containerProcessEnv(r.image, r.kubelet, r.hostname), r.want));
  }

  test('end to end: the kubelet list, service vars included, beats image ENV', () => {
    const services = selectServicesForPod({
      podNamespace: 'shop',
      enableServiceLinks: true,
      services: [{ namespace: 'default', ...KUBERNETES }],
    });
    const { env } = build({
      env: [{ name: 'PATH', value: '$(PATH):/x' }],
      serviceEnv: serviceEnvVars(services),
    });
    const host = podHostname({ name: 'web-0', namespace: 'shop' }, 'cluster.local').hostname;
    const proc = containerProcessEnv(['PATH=/image/bin', 'KUBERNETES_SERVICE_HOST=stale'], env, host);
    assert.equal(proc[0], 'PATH=$(PATH):/x');
    assert.equal(proc[1], 'HOSTNAME=web-0');
    assert.ok(proc.includes('KUBERNETES_SERVICE_HOST=10.96.0.1'));
    assert.ok(!proc.includes('KUBERNETES_SERVICE_HOST=stale'));
    assert.equal(proc.length, 2 + KUBERNETES_VARS.length);
  });
});

// Deliberate differences from kubelet 1.34.2, kept on purpose (docs/kubelet-parity.md).
describe('deliberate differences from kubelet 1.34.2 (issue #13)', () => {
  test('$ before a non-ASCII character keeps the character (kubernetes#136323 fix; 1.34.2 writes invalid UTF-8)', () => {
    assert.equal(
      expandEnvRefs('a$é$😀$(VAR)', (n) => (n === 'VAR' ? 'v' : undefined)),
      'a$é$😀v',
    );
  });
  test('non-ASCII service names: JavaScript full case mapping (ß -> SS), not Go simple mapping', () => {
    assert.deepEqual(Object.keys(serviceEnvVars([{ name: 'straße', clusterIP: '10.0.0.1', ports: [] }])), [
      'STRASSE_SERVICE_HOST',
    ]);
  });
  test('a Service with a cluster IP and no ports: only _SERVICE_HOST (kubelet FromServices panics)', () => {
    assert.deepEqual(serviceEnvVars([{ name: 'bare', clusterIP: '10.0.0.9', ports: [] }]), {
      BARE_SERVICE_HOST: '10.0.0.9',
    });
  });
});
