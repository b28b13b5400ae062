import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runtimeDefaultSeccomp } from './seccomp-default.js';
import {
  ALL_CAPABILITIES,
  type ContainerSecurityContext,
  capabilitySet,
  DEFAULT_CAPABILITIES,
  decideContainerSecurity,
  effectiveSecurityContext,
  type PodSecurityContext,
  parseImageUserField,
  verifyRunAsNonRoot,
} from './security-context.js';

const WHO = { pod: 'web_shop(uid-1)', container: 'app' };

describe('effectiveSecurityContext: container wins, field by field', () => {
  const cases: Array<[string, PodSecurityContext | undefined, ContainerSecurityContext | undefined, object]> =
    [
      ['neither', undefined, undefined, {}],
      ['pod only', { runAsUser: 1, runAsNonRoot: true }, undefined, { runAsUser: 1, runAsNonRoot: true }],
      ['container only', undefined, { runAsGroup: 7 }, { runAsGroup: 7 }],
      [
        'container over pod',
        { runAsUser: 1, runAsGroup: 2, runAsNonRoot: true },
        { runAsUser: 3, runAsNonRoot: false },
        { runAsUser: 3, runAsGroup: 2, runAsNonRoot: false },
      ],
      [
        'seccomp: container over pod',
        { seccompProfile: { type: 'RuntimeDefault' } },
        { seccompProfile: { type: 'Unconfined' } },
        { seccompProfile: { type: 'Unconfined' } },
      ],
      ['supplementalGroups from the pod', { supplementalGroups: [5, 6] }, {}, { supplementalGroups: [5, 6] }],
      [
        'container-only fields',
        {},
        { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false },
        { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false },
      ],
    ];
  for (const [name, pod, container, want] of cases)
    test(name, () => assert.deepEqual(effectiveSecurityContext(pod, container), want));
});

describe('image USER (kubelet getImageUser)', () => {
  const cases: Array<[string | undefined, object]> = [
    [undefined, { uid: 0 }],
    ['', { uid: 0 }],
    ['0', { uid: 0 }],
    ['1000', { uid: 1000 }],
    ['1000:50', { uid: 1000, gid: 50 }],
    ['root', { username: 'root' }],
    ['app', { username: 'app' }],
    ['app:staff', { username: 'app', groupname: 'staff' }],
    ['1000:staff', { uid: 1000, groupname: 'staff' }],
  ];
  for (const [u, want] of cases) test(`USER ${u}`, () => assert.deepEqual(parseImageUserField(u), want));
});

describe('verifyRunAsNonRoot (kubelet messages)', () => {
  const tail = '(pod: "web_shop(uid-1)", container: app)';
  const cases: Array<[string, object, string | undefined, string | undefined]> = [
    ['not asked', {}, '', undefined],
    ['false', { runAsNonRoot: false }, '', undefined],
    [
      'root image',
      { runAsNonRoot: true },
      '',
      `container has runAsNonRoot and image will run as root ${tail}`,
    ],
    [
      'USER 0',
      { runAsNonRoot: true },
      '0:0',
      `container has runAsNonRoot and image will run as root ${tail}`,
    ],
    [
      'named user',
      { runAsNonRoot: true },
      'app',
      `container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root ${tail}`,
    ],
    [
      'USER root is a name too',
      { runAsNonRoot: true },
      'root',
      `container has runAsNonRoot and image has non-numeric user (root), cannot verify user is non-root ${tail}`,
    ],
    ['numeric non-root image', { runAsNonRoot: true }, '1000', undefined],
    ['runAsUser over a root image', { runAsNonRoot: true, runAsUser: 1000 }, '', undefined],
    ['runAsUser over a named user', { runAsNonRoot: true, runAsUser: 1000 }, 'app', undefined],
    [
      'runAsUser 0',
      { runAsNonRoot: true, runAsUser: 0 },
      '1000',
      `container's runAsUser breaks non-root policy ${tail}`,
    ],
  ];
  for (const [name, sc, user, want] of cases)
    test(name, () => assert.equal(verifyRunAsNonRoot(sc, parseImageUserField(user), WHO), want));
});

describe('capabilitySet (containerd WithCapabilities)', () => {
  const without = (...c: string[]) => DEFAULT_CAPABILITIES.filter((x) => !c.includes(x));
  const sorted = (l: readonly string[]) => ALL_CAPABILITIES.filter((c) => l.includes(c));
  const cases: Array<[string, { add?: string[]; drop?: string[] } | undefined, boolean, string[] | RegExp]> =
    [
      ['default', undefined, false, sorted(DEFAULT_CAPABILITIES)],
      ['drop CHOWN', { drop: ['CHOWN'] }, false, sorted(without('CAP_CHOWN'))],
      ['lower case names', { drop: ['chown'] }, false, sorted(without('CAP_CHOWN'))],
      ['add NET_ADMIN', { add: ['NET_ADMIN'] }, false, sorted([...DEFAULT_CAPABILITIES, 'CAP_NET_ADMIN'])],
      ['drop ALL', { drop: ['ALL'] }, false, []],
      ['drop ALL, add one', { drop: ['ALL'], add: ['NET_BIND_SERVICE'] }, false, ['CAP_NET_BIND_SERVICE']],
      [
        'add ALL, drop one',
        { add: ['ALL'], drop: ['SYS_ADMIN'] },
        false,
        ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_ADMIN'),
      ],
      [
        'added and dropped: dropped',
        { add: ['NET_ADMIN'], drop: ['NET_ADMIN'] },
        false,
        sorted(DEFAULT_CAPABILITIES),
      ],
      ['privileged: all', { drop: ['ALL'] }, true, [...ALL_CAPABILITIES]],
      ['CAP_ prefix is not a name', { add: ['CAP_NET_ADMIN'] }, false, /unknown capability "CAP_NET_ADMIN"/],
      ['unknown', { drop: ['FLY'] }, false, /capabilities\.drop: unknown capability "FLY"/],
    ];
  for (const [name, caps, priv, want] of cases) {
    test(name, () => {
      if (want instanceof RegExp) assert.throws(() => capabilitySet(caps, priv), want);
      else assert.deepEqual(capabilitySet(caps, priv), want);
    });
  }
});

describe('decideContainerSecurity', () => {
  const decide = (
    pod: PodSecurityContext | undefined,
    container: ContainerSecurityContext | undefined,
    imageUser: string | undefined,
    allowPrivileged = false,
  ) =>
    decideContainerSecurity({
      ...(pod ? { pod } : {}),
      ...(container ? { container } : {}),
      imageUser,
      who: WHO,
      allowPrivileged,
    });

  test('nothing set: the image user, default capabilities, no no_new_privs, writable root, unconfined', () => {
    assert.deepEqual(decide(undefined, undefined, '1000:50'), {
      ok: true,
      value: {
        uid: 1000,
        gid: 50,
        additionalGids: [],
        capabilities: capabilitySet(undefined, false),
        noNewPrivileges: false,
        readonlyRootfs: false,
        privileged: false,
        seccomp: { type: 'Unconfined' },
      },
    });
  });

  const cases: Array<[string, Parameters<typeof decide>, object | RegExp]> = [
    ['runAsUser over the image', [{ runAsUser: 2000 }, undefined, '1000:50'], { uid: 2000, gid: 50 }],
    ['runAsGroup', [{ runAsUser: 2000, runAsGroup: 3000 }, undefined, ''], { uid: 2000, gid: 3000 }],
    ['container runAsUser wins', [{ runAsUser: 2000 }, { runAsUser: 4000 }, ''], { uid: 4000, gid: 0 }],
    [
      'supplementalGroups, without the primary group and repeats',
      [{ runAsGroup: 5, supplementalGroups: [5, 6, 6, 7] }, undefined, ''],
      { gid: 5, additionalGids: [6, 7] },
    ],
    ['named image user with runAsUser', [undefined, { runAsUser: 10 }, 'app'], { uid: 10, gid: 0 }],
    ['named image user without runAsUser', [undefined, undefined, 'app'], /not numeric.*runAsUser/],
    ['named group without runAsGroup', [undefined, undefined, '10:staff'], /names a group.*runAsGroup/],
    ['runAsNonRoot with a root image', [{ runAsNonRoot: true }, undefined, ''], /image will run as root/],
    [
      'runAsNonRoot satisfied by runAsUser',
      [{ runAsNonRoot: true, runAsUser: 1 }, undefined, ''],
      { uid: 1 },
    ],
    [
      'readOnlyRootFilesystem and allowPrivilegeEscalation: false',
      [undefined, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false }, ''],
      { readonlyRootfs: true, noNewPrivileges: true },
    ],
    [
      'allowPrivilegeEscalation: true',
      [undefined, { allowPrivilegeEscalation: true }, ''],
      { noNewPrivileges: false },
    ],
    [
      'privileged refused by default',
      [undefined, { privileged: true }, ''],
      /privileged: true.*allowPrivileged: true/,
    ],
    [
      'privileged allowed by the node: all capabilities, unconfined',
      [undefined, { privileged: true, seccompProfile: { type: 'RuntimeDefault' } }, '', true],
      { privileged: true, capabilities: [...ALL_CAPABILITIES], seccomp: { type: 'Unconfined' } },
    ],
    [
      'no privilege escalation with privileged',
      [undefined, { privileged: true, allowPrivilegeEscalation: false }, '', true],
      /allowPrivilegeEscalation` to false and `privileged` to true/,
    ],
    [
      'no privilege escalation with CAP_SYS_ADMIN',
      [undefined, { allowPrivilegeEscalation: false, capabilities: { add: ['SYS_ADMIN'] } }, ''],
      /capabilities.Add` CAP_SYS_ADMIN/,
    ],
    [
      'RuntimeDefault from the pod',
      [{ seccompProfile: { type: 'RuntimeDefault' } }, undefined, ''],
      { seccomp: { type: 'RuntimeDefault' } },
    ],
    [
      'Localhost',
      [undefined, { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/a.json' } }, ''],
      { seccomp: { type: 'Localhost', localhostProfile: 'profiles/a.json' } },
    ],
    [
      'Localhost outside the dir',
      [undefined, { seccompProfile: { type: 'Localhost', localhostProfile: '../x' } }, ''],
      /without "\.\."/,
    ],
    [
      'Localhost absolute',
      [undefined, { seccompProfile: { type: 'Localhost', localhostProfile: '/etc/x' } }, ''],
      /relative path/,
    ],
    [
      'Localhost without a profile',
      [undefined, { seccompProfile: { type: 'Localhost' } }, ''],
      /relative path/,
    ],
    [
      'unknown capability',
      [undefined, { capabilities: { drop: ['NOPE'] } }, ''],
      /unknown capability "NOPE"/,
    ],
  ];
  for (const [name, args, want] of cases) {
    test(name, () => {
      const d = decide(...args);
      if (want instanceof RegExp) {
        assert.equal(d.ok, false);
        assert.match((d as { message: string }).message, want);
      } else {
        assert.equal(d.ok, true, (d as { message?: string }).message);
        const v = (d as unknown as { value: Record<string, unknown> }).value;
        for (const [k, x] of Object.entries(want)) assert.deepEqual(v[k], x, k);
      }
    });
  }
});

describe('RuntimeDefault seccomp profile', () => {
  const names = (p: ReturnType<typeof runtimeDefaultSeccomp>) =>
    p.syscalls.filter((s) => !s.args).flatMap((s) => s.names);
  test('denylist: mount, unshare, keyctl refused with EPERM by default; architectures for x64', () => {
    const p = runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, 'x64');
    assert.equal(p.defaultAction, 'SCMP_ACT_ALLOW');
    assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    for (const n of ['mount', 'unshare', 'setns', 'keyctl', 'bpf', 'kexec_load', 'init_module'])
      assert.ok(names(p).includes(n), n);
    assert.ok(p.syscalls.some((s) => s.names.includes('clone') && s.args?.[0]?.value === 0x10000000));
    assert.equal(p.syscalls.find((s) => s.names.includes('clone3'))?.errnoRet, 38);
  });
  const lifted: Array<[string, string]> = [
    ['CAP_SYS_ADMIN', 'mount'],
    ['CAP_SYS_TIME', 'settimeofday'],
    ['CAP_SYS_MODULE', 'init_module'],
    ['CAP_SYS_BOOT', 'reboot'],
    ['CAP_BPF', 'bpf'],
  ];
  for (const [cap, syscall] of lifted) {
    test(`${cap} lifts ${syscall}`, () => {
      assert.ok(names(runtimeDefaultSeccomp(DEFAULT_CAPABILITIES, 'x64')).includes(syscall));
      assert.ok(!names(runtimeDefaultSeccomp([...DEFAULT_CAPABILITIES, cap], 'x64')).includes(syscall));
    });
  }
  test('keyrings stay refused whatever the capabilities', () => {
    assert.ok(names(runtimeDefaultSeccomp(ALL_CAPABILITIES, 'x64')).includes('keyctl'));
    assert.ok(
      !runtimeDefaultSeccomp(ALL_CAPABILITIES, 'x64').syscalls.some((s) => s.names.includes('clone')),
    );
  });
});
