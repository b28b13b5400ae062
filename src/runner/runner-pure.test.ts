/**
 * Table-driven tests of the runner's pure parts: manifest parsing and
 * unsupported fields, RuntimeClass validation and handler lookup, OCI spec
 * building, event texts, hook requests and the kill-sequence timing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decideContainerSecurity } from '../core/security-context.js';
import { buildOciSpec, containerArgv, overlayOptions } from './bundle.js';
import { describeEvents, Events, humanDuration } from './events.js';
import { graceAfterPreStop, httpGetRequest, LIFECYCLE_USER_AGENT, validateSleep } from './hooks.js';
import { nodeConfigFrom } from './node-config.js';
import { containerId, sandboxNames } from './plan.js';
import { PodManifestError, parseManifest, type RuntimeClassObject, unsupportedFields } from './pod.js';
import { isValidPodKey, PodRefError, podKey } from './pod-state.js';
import {
  ALPHA_ADVICE,
  DEFAULT_NODE_RUNTIMES,
  type HandlerAvailability,
  resolveRuntimeHandler,
  validateRuntimeClass,
} from './runtime-class.js';
import { crashLoopBackoffMs, shouldRestart } from './supervisor.js';

describe('parseManifest', () => {
  const pod = `apiVersion: v1
kind: Pod
metadata: { name: web }
spec:
  containers: [{ name: c, image: busybox }]
`;
  test('defaults as the API server sets them', () => {
    const m = parseManifest(pod);
    assert.equal(m.pod?.metadata.namespace, 'default');
    assert.equal(m.pod?.spec.terminationGracePeriodSeconds, 30);
    assert.equal(m.pod?.spec.enableServiceLinks, true);
    assert.equal(m.pod?.spec.restartPolicy, 'Always');
    assert.deepEqual(m.unsupported, []);
  });
  test('JSON works too, and objects after the Pod are collected', () => {
    const m = parseManifest(
      `${JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] } })}
---
apiVersion: v1
kind: Secret
metadata: { name: s }
type: kubernetes.io/dockerconfigjson
data: { .dockerconfigjson: ${Buffer.from('{"auths":{}}').toString('base64')} }
stringData: { extra: plain }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: x }
spec: { clusterIP: None }
---
kind: Deployment
metadata: { name: d }
`,
    );
    assert.equal(m.pod?.metadata.name, 'p');
    assert.deepEqual(m.objects.secrets.s, {
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': '{"auths":{}}', extra: 'plain' },
    });
    assert.deepEqual(m.objects.services, [{ name: 'db', namespace: 'x', clusterIP: 'None', ports: [] }]);
    assert.deepEqual(m.ignored, ['Deployment/d']);
  });
  const errors: Array<[string, string, RegExp]> = [
    [
      'no containers',
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [] }',
      /spec\.containers/,
    ],
    [
      'bad container name',
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: C_1, image: x }] }',
      /DNS-1123 label/,
    ],
    [
      'duplicate container names',
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: a, image: x }, { name: a, image: y }] }',
      /two containers are named "a"/,
    ],
    ['two pods', `${pod}---\n${pod}`, /more than one Pod/],
    ['not YAML', 'a: [', /not valid YAML/],
    [
      'bad runtimeClassName',
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { runtimeClassName: Bad_Name, containers: [{ name: a, image: x }] }',
      /runtimeClassName must be a DNS subdomain/,
    ],
  ];
  for (const [name, text, re] of errors) {
    test(`refused: ${name}`, () => {
      assert.throws(
        () => parseManifest(text),
        (e: Error) => e instanceof PodManifestError && re.test(e.message),
      );
    });
  }
});

describe('unsupportedFields', () => {
  const cases: Array<[string, unknown, string[]]> = [
    [
      'empty defaults are not reported',
      { spec: { containers: [{ name: 'c', resources: {} }], volumes: [] } },
      [],
    ],
    [
      'volumes, securityContext fields not applied, init containers and container resources',
      {
        spec: {
          volumes: [{ name: 'v' }],
          initContainers: [{ name: 'i' }],
          securityContext: { runAsUser: 1, fsGroup: 2, sysctls: [{ name: 'x', value: '1' }] },
          containers: [
            {
              name: 'c',
              resources: { limits: { cpu: '1' } },
              volumeMounts: [{ name: 'v' }],
              securityContext: {
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
                seLinuxOptions: { level: 's0' },
                procMount: 'Unmasked',
              },
            },
          ],
        },
      },
      [
        'spec.volumes',
        'spec.initContainers',
        'spec.securityContext.fsGroup',
        'spec.securityContext.sysctls',
        'spec.containers[0].resources',
        'spec.containers[0].volumeMounts',
        'spec.containers[0].securityContext.seLinuxOptions',
        'spec.containers[0].securityContext.procMount',
      ],
    ],
    [
      'unknown hook kinds and probes',
      {
        spec: {
          containers: [{ lifecycle: { preStop: { grpc: { port: 1 } } }, livenessProbe: { exec: {} } }],
        },
      },
      ['spec.containers[0].lifecycle.preStop.grpc', 'spec.containers[0].livenessProbe'],
    ],
    [
      'status and server metadata are fine',
      { metadata: { resourceVersion: '1', ownerReferences: [{}] }, status: { phase: 'x' } },
      ['metadata.ownerReferences'],
    ],
  ];
  for (const [name, raw, want] of cases) test(name, () => assert.deepEqual(unsupportedFields(raw), want));
});

describe('validateRuntimeClass', () => {
  const rc = (o: Partial<RuntimeClassObject>): RuntimeClassObject => ({
    apiVersion: 'node.k8s.io/v1',
    metadata: { name: 'rc' },
    ...o,
  });
  const cases: Array<[string, RuntimeClassObject, string | RegExp]> = [
    ['v1', rc({ handler: 'runc' }), 'runc'],
    ['v1beta1', rc({ apiVersion: 'node.k8s.io/v1beta1', handler: 'runsc' }), 'runsc'],
    [
      'alpha form',
      rc({ apiVersion: 'node.k8s.io/v1alpha1', spec: { runtimeHandler: 'runc' } }),
      /uses the alpha form/,
    ],
    ['runtimeHandler under v1', rc({ spec: { runtimeHandler: 'runc' }, handler: 'runc' }), /alpha form/],
    ['missing handler', rc({}), /handler is required/],
    ['handler not a DNS label', rc({ handler: 'Run_C' }), /is not a DNS label/],
    ['handler too long', rc({ handler: 'a'.repeat(64) }), /at most 63/],
    ['other apiVersion', rc({ apiVersion: 'v1', handler: 'runc' }), /apiVersion v1 is not supported/],
    ['bad name', rc({ metadata: { name: 'Bad' }, handler: 'runc' }), /DNS-1123 subdomain/],
  ];
  for (const [name, obj, want] of cases) {
    test(name, () => {
      if (typeof want === 'string') assert.equal(validateRuntimeClass(obj), want);
      else assert.throws(() => validateRuntimeClass(obj), want);
    });
  }
  test('the alpha refusal carries the migration advice', () => {
    assert.throws(
      () =>
        validateRuntimeClass(rc({ apiVersion: 'node.k8s.io/v1alpha1', spec: { runtimeHandler: 'runc' } })),
      (e: Error) => e.message.includes(ALPHA_ADVICE) && e.message.includes('handler'),
    );
  });
});

describe('resolveRuntimeHandler', () => {
  const classes: Record<string, RuntimeClassObject> = {
    fast: { apiVersion: 'node.k8s.io/v1', metadata: { name: 'fast' }, handler: 'crun' },
    kata: { apiVersion: 'node.k8s.io/v1', metadata: { name: 'kata' }, handler: 'kata' },
  };
  const avail = (h: string): HandlerAvailability =>
    h === 'crun' ? { ok: false, reason: 'cgroups in hybrid mode not supported' } : { ok: true, version: '1' };
  const cases: Array<[string, string | undefined, { handler: string } | RegExp]> = [
    ['no class: the default handler', undefined, { handler: 'runc' }],
    [
      'unknown class',
      'nope',
      /^Failed to create pod sandbox: runtimeclasses\.node\.k8s\.io "nope" not found; create/,
    ],
    [
      'handler not configured',
      'kata',
      /names handler "kata", which is not configured on this node \(configured: crun, runc\)/,
    ],
    [
      'handler unavailable',
      'fast',
      /handler "crun" \(crun\), which this node cannot run: cgroups in hybrid mode/,
    ],
  ];
  for (const [name, cls, want] of cases) {
    test(name, () => {
      const r = resolveRuntimeHandler(cls, classes, DEFAULT_NODE_RUNTIMES, avail);
      if (want instanceof RegExp) {
        assert.equal(r.ok, false);
        assert.equal(!r.ok && r.reason, 'FailedCreatePodSandBox');
        assert.match(!r.ok ? r.message : '', want);
      } else assert.equal(r.ok && r.handler, want.handler);
    });
  }
});

describe('bundle', () => {
  const argv: Array<
    [string, { command: string[]; args: string[] }, { Entrypoint?: string[]; Cmd?: string[] }, string[]]
  > = [
    [
      'image defaults',
      { command: [], args: [] },
      { Entrypoint: ['/init'], Cmd: ['serve'] },
      ['/init', 'serve'],
    ],
    [
      'args replace Cmd',
      { command: [], args: ['x'] },
      { Entrypoint: ['/init'], Cmd: ['serve'] },
      ['/init', 'x'],
    ],
    [
      'command drops Entrypoint and Cmd',
      { command: ['sh'], args: [] },
      { Entrypoint: ['/init'], Cmd: ['serve'] },
      ['sh'],
    ],
    ['command and args', { command: ['sh'], args: ['-c', 'x'] }, { Cmd: ['serve'] }, ['sh', '-c', 'x']],
  ];
  for (const [name, spec, image, want] of argv)
    test(`argv: ${name}`, () => assert.deepEqual(containerArgv(spec, image), want));

  test('overlay: top layer first in lowerdir', () => {
    assert.equal(
      overlayOptions(['/s/a', '/s/b', '/s/c'], '/u', '/w'),
      'lowerdir=/s/c:/s/b:/s/a,upperdir=/u,workdir=/w',
    );
    assert.throws(() => overlayOptions([], '/u', '/w'), /no layers/);
    assert.throws(() => overlayOptions(['/s/a:b'], '/u', '/w'), /contains ':'/);
  });

  test('spec: pod hostname, the sandbox netns, writable rootfs', () => {
    const d = decideContainerSecurity({
      container: { runAsUser: 5, runAsGroup: 6 },
      imageUser: '',
      who: { pod: 'p', container: 'c' },
      allowPrivileged: false,
    });
    assert.ok(d.ok);
    const spec = buildOciSpec({
      args: ['sh'],
      env: ['A=1'],
      cwd: '',
      security: d.value,
      hostname: 'web-0',
      netnsPath: '/var/run/netns/pkr-pod-1',
      rootfs: 'rootfs',
    }) as {
      hostname: string;
      root: { readonly: boolean };
      process: { cwd: string; user: unknown; terminal: boolean };
      linux: { namespaces: Array<{ type: string; path?: string }> };
    };
    assert.equal(spec.hostname, 'web-0');
    assert.equal(spec.root.readonly, false);
    assert.equal(spec.process.cwd, '/');
    assert.equal(spec.process.terminal, false);
    assert.deepEqual(spec.process.user, { uid: 5, gid: 6 });
    assert.deepEqual(
      spec.linux.namespaces.find((n) => n.type === 'network'),
      { type: 'network', path: '/var/run/netns/pkr-pod-1' },
    );
  });
});

describe('events', () => {
  const durations: Array<[number, string]> = [
    [-5_000, '<invalid>'],
    [0, '0s'],
    [119_000, '119s'],
    [120_000, '2m'],
    [125_000, '2m5s'],
    [3_600_000, '60m'],
    [4 * 3_600_000 + 60_000, '4h1m'],
    [30 * 3_600_000, '30h'],
    [3 * 86_400_000, '3d'],
    [800 * 86_400_000, '2y70d'],
  ];
  for (const [ms, want] of durations)
    test(`humanDuration(${ms})`, () => assert.equal(humanDuration(ms), want));

  test('kubelet texts', () => {
    const pod = { name: 'p', namespace: 'ns', uid: 'u' };
    assert.deepEqual(Events.killing('c'), {
      type: 'Normal',
      reason: 'Killing',
      message: 'Stopping container c',
    });
    assert.equal(Events.killing('c', 'FailedPostStartHook').message, 'FailedPostStartHook');
    assert.equal(Events.created('c').message, 'Created container: c');
    assert.equal(Events.started('c').message, 'Started container c');
    assert.equal(Events.failedPostStart().message, 'PostStartHook failed');
    assert.equal(Events.failedPreStop().message, 'PreStopHook failed');
    assert.equal(Events.backOff('c', pod).message, 'Back-off restarting failed container c in pod p_ns(u)');
  });

  test('describeEvents renders a table, oldest first', () => {
    const now = Date.parse('2024-01-01T00:00:05Z');
    assert.deepEqual(
      describeEvents(
        [
          { time: '2024-01-01T00:00:00Z', type: 'Normal', reason: 'Started', message: 'Started container c' },
          {
            time: '2024-01-01T00:00:04Z',
            type: 'Warning',
            reason: 'FailedPreStopHook',
            message: 'PreStopHook failed',
          },
        ],
        now,
      ),
      [
        'Events:',
        '  Type     Reason             Age   From             Message',
        '  ----     ------             ----  ----             -------',
        '  Normal   Started            5s    pullkeeper-node  Started container c',
        '  Warning  FailedPreStopHook  1s    pullkeeper-node  PreStopHook failed',
      ],
    );
    assert.deepEqual(describeEvents([], now), ['Events:  <none>']);
  });
});

describe('hooks', () => {
  const grace: Array<[number, number, number]> = [
    [30, 0, 30],
    [30, 4_900, 26],
    [3, 3_000, 2],
    [3, 2_999, 2],
    [10, 7_000, 3],
    [0, 0, 2],
  ];
  for (const [g, elapsed, want] of grace) {
    test(`graceAfterPreStop(${g}, ${elapsed}) = ${want}`, () =>
      assert.equal(graceAfterPreStop(g, elapsed), want));
  }

  test('httpGet: named port, pod IP, default headers', () => {
    const r = httpGetRequest(
      { port: 'web', path: 'quit' },
      [{ name: 'web', containerPort: 8080 }],
      '10.0.0.5',
    );
    assert.equal(r.url, 'http://10.0.0.5:8080/quit');
    assert.deepEqual(r.headers, [
      ['User-Agent', LIFECYCLE_USER_AGENT],
      ['Accept', '*/*'],
    ]);
  });
  test('httpGet: host, scheme, repeated headers, Host header, empty Accept removed', () => {
    const r = httpGetRequest(
      {
        port: 443,
        host: 'fd00::1',
        scheme: 'HTTPS',
        httpHeaders: [
          { name: 'X-A', value: '1' },
          { name: 'X-A', value: '2' },
          { name: 'Host', value: 'example' },
          { name: 'Accept', value: '' },
          { name: 'User-Agent', value: 'mine' },
        ],
      },
      [],
      '10.0.0.5',
    );
    assert.equal(r.url, 'https://[fd00::1]:443/');
    assert.equal(r.host, 'example');
    assert.deepEqual(r.headers, [
      ['X-A', '1'],
      ['X-A', '2'],
      ['User-Agent', 'mine'],
    ]);
  });
  test('httpGet: unknown named port and no pod IP fail', () => {
    assert.throws(() => httpGetRequest({ port: 'nope' }, [], '10.0.0.5'), /couldn't find port: nope/);
    assert.throws(() => httpGetRequest({ port: 80 }, [], undefined), /failed to find networking container/);
  });
  const sleeps: Array<[number, number, boolean]> = [
    [1, 30, true],
    [30, 30, true],
    [31, 30, false],
    [0, 30, false],
    [-1, 30, false],
  ];
  for (const [s, g, ok] of sleeps) {
    test(`sleep ${s}s with grace ${g}s is ${ok ? 'valid' : 'refused'}`, () =>
      assert.equal(validateSleep(s, g) === undefined, ok));
  }
});

describe('supervisor rules', () => {
  const backoff: Array<[number, number]> = [
    [0, 0],
    [1, 10_000],
    [2, 20_000],
    [5, 160_000],
    [6, 300_000],
    [9, 300_000],
  ];
  for (const [n, want] of backoff)
    test(`crash-loop back-off after ${n} restarts`, () => assert.equal(crashLoopBackoffMs(n), want));
  const restart: Array<['Always' | 'OnFailure' | 'Never', number, boolean]> = [
    ['Always', 0, true],
    ['Always', 1, true],
    ['OnFailure', 0, false],
    ['OnFailure', 137, true],
    ['Never', 1, false],
  ];
  for (const [p, code, want] of restart)
    test(`${p} after exit ${code}`, () => assert.equal(shouldRestart(p, code), want));
});

describe('names and config', () => {
  test('kernel names are pkr- prefixed and short enough for links', () => {
    const n = sandboxNames('default', 'web', 'uid-1');
    assert.match(n.netns, /^pkr-pod-[0-9a-f]{8}$/);
    assert.match(n.veth, /^pkr-[0-9a-f]{8}$/);
    assert.ok(n.veth.length <= 15);
    assert.notEqual(sandboxNames('default', 'web', 'uid-2').netns, n.netns);
    assert.match(containerId('default', 'web', 'uid-1', 'c'), /^pkr-[0-9a-f]{8}-c$/);
  });
  test('pod refs', () => {
    assert.equal(podKey('web'), 'default_web');
    assert.equal(podKey('shop/web'), 'shop_web');
    assert.equal(podKey('shop/web.v1'), 'shop_web.v1');
  });
  const badRefs = ['../x', 'a/../../etc', '..', 'ns/..', 'ns/a/b', 'Web', '', '/x', 'ns/', 'x_y/z'];
  for (const ref of badRefs) {
    test(`pod ref ${JSON.stringify(ref)} refused`, () => assert.throws(() => podKey(ref), PodRefError));
  }
  const keys: Array<[string, boolean]> = [
    ['default_web', true],
    ['shop_web.v1', true],
    ['default_..', false],
    ['default_../../etc', false],
    ['../x_y', false],
    ['_web', false],
    ['default_', false],
    ['default_a/b', false],
    ['default_a_b', false],
    [`default_${'a'.repeat(254)}`, false],
  ];
  for (const [key, ok] of keys)
    test(`pod key ${key.slice(0, 30)}`, () => assert.equal(isValidPodKey(key), ok));
  test('node config defaults and a bad defaultHandler', () => {
    const c = nodeConfigFrom({}, { stateDir: '/x' });
    assert.equal(c.stateRoot, '/x');
    assert.equal(c.runtimes.defaultHandler, 'runc');
    assert.deepEqual(Object.keys(c.runtimes.handlers).sort(), ['crun', 'runc']);
    assert.equal(c.bridge.name, 'pkr-br0');
    assert.equal(c.allowPrivileged, false);
    assert.equal(c.seccompProfileRoot, '/var/lib/kubelet/seccomp');
    assert.throws(() => nodeConfigFrom({ defaultHandler: 'kata' }), /defaultHandler "kata"/);
  });
});
