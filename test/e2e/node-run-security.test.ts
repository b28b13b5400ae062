/**
 * The node never trusts a neighbour (issue 17), against real runc as root:
 * - pod data in the state dir is unreadable to other users (walked as
 *   nobody with setpriv), Secret values stay out of events, output and the
 *   supervisor log, and a state dir with wider modes is tightened;
 * - securityContext is applied (seen from inside the containers) or refused
 *   as kubelet refuses it, with nothing started;
 * - the daemon socket refuses a pod key that leaves `<state>/pods`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeRunCommands, type RunCommand } from '../../src/cli/pullkeeper-node-run.js';
import type { PlannedPod } from '../../src/runner/plan.js';
import { askSocket, serveDaemon } from '../../src/runner/pods.js';
import { type BusyboxImageSource, busyboxImageSource } from './support/busybox-image-source.js';
import { stopPodsAndBridge } from './support/node-cleanup.js';
import { nodeRunCli } from './support/node-run-cli.js';

const BRIDGE = 'pkr-test7';
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const SECRET = 'pk-secret-7f3a9c1e-do-not-leak';
let root: string;
let state: string;
let nodeConfig: string;
let images: BusyboxImageSource;
let cmds: Record<string, RunCommand>;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'pk-node-sec-'));
  // Traversable by everyone, so an unprivileged user reaches the state dir itself.
  chmodSync(root, 0o755);
  state = join(root, 'state');
  images = busyboxImageSource(join(root, 'images'));
  cmds = makeRunCommands({ imageSource: images });
  nodeConfig = join(root, 'node.yaml');
  // A Localhost profile: everything allowed but mkdir.
  mkdirSync(join(root, 'seccomp', 'profiles'), { recursive: true });
  writeFileSync(
    join(root, 'seccomp', 'profiles', 'no-mkdir.json'),
    JSON.stringify({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
    }),
  );
  writeFileSync(
    nodeConfig,
    [
      'runtimeHandlers:',
      '  runc: { binary: runc }',
      `bridge: { name: ${BRIDGE}, subnet: 10.233.0.0/24 }`,
      'nodeName: test-node',
      'hostIP: 192.0.2.2',
      `seccompProfileRoot: ${join(root, 'seccomp')}`,
      '',
    ].join('\n'),
  );
});

after(async () => {
  await stopPodsAndBridge(state, BRIDGE);
  await rm(root, { recursive: true, force: true });
});

const { cli, run } = nodeRunCli({
  cmds: () => cmds,
  flags: () => ['--state-dir', state, '--node-config', nodeConfig],
  dir: () => root,
});

const podDir = (name: string) => join(state, 'pods', `default_${name}`);
const plan = (name: string) =>
  JSON.parse(readFileSync(join(podDir(name), 'plan.json'), 'utf8')) as PlannedPod;

/** The container's log once it holds `marker` (the process writes it right after starting). */
async function logOf(pod: string, container: string, marker: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await cli('logs', [pod, '-c', container]);
    if (r.out.includes(marker) || Date.now() > deadline) return r.out;
    await sleep(200);
  }
}

/** Every regular file under `dir` (not following symlinks), as root. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Runs `sh -c script args...` as nobody (uid/gid 65534, no supplementary groups). */
function asNobody(script: string, args: string[] = []): string {
  return execFileSync('setpriv', [...NOBODY, '--', 'sh', '-c', script, 'sh', ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

const BUSY = 'trap "exit 0" TERM; while true; do sleep 0.2; done';

describe('node state is private', () => {
  test('a pod with a Secret in its env: no file under the state dir readable by nobody holds the value; events, output and supervisor log never do', async () => {
    // An existing state dir with wider modes, as an older version left it.
    const stale = join(state, 'pods', 'default_old');
    mkdirSync(stale, { recursive: true, mode: 0o755 });
    chmodSync(state, 0o755);
    chmodSync(join(state, 'pods'), 0o755);
    chmodSync(stale, 0o755);
    writeFileSync(join(stale, 'events.jsonl'), `{"message":"${SECRET}"}\n`, { mode: 0o644 });
    chmodSync(join(stale, 'events.jsonl'), 0o644);

    // Modes are set at creation whatever the umask: run with umask 0.
    const oldUmask = process.umask(0);
    let r: Awaited<ReturnType<typeof run>>;
    try {
      r = await run(`
apiVersion: v1
kind: Pod
metadata: { name: secret-pod }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
    - name: app
      image: busybox:test
      command: [sh, -c, 'echo "token is $TOKEN"; echo "$S_TOKEN" > /tmp/copy; ${BUSY}']
      env:
        - { name: TOKEN, valueFrom: { secretKeyRef: { name: creds, key: token } } }
      envFrom:
        - { prefix: S_, secretRef: { name: creds } }
    - name: leaky
      image: busybox:test
      command: ['$(TOKEN)']
      env:
        - { name: TOKEN, valueFrom: { secretKeyRef: { name: creds, key: token } } }
---
apiVersion: v1
kind: Secret
metadata: { name: creds }
type: Opaque
stringData: { token: ${SECRET} }
`);
    } finally {
      process.umask(oldUmask);
    }
    assert.equal(r.res.phase, 'Running', JSON.stringify(r.res.events));
    assert.match(r.err, /warning: the state dir .* had mode 0755; it is now 0700/);
    assert.equal(statSync(state).mode & 0o777, 0o700);
    assert.equal(statSync(join(stale, 'events.jsonl')).mode & 0o777, 0o600, 'old pod data tightened too');
    assert.equal(statSync(stale).mode & 0o777, 0o700);

    // The container really has the value (so the files below really hold it).
    assert.match(await logOf('secret-pod', 'app', 'token is'), new RegExp(`token is ${SECRET}`));
    // The failing container's runc error names its argv: redacted in the event.
    const leakEvent = (await cli('describe', ['secret-pod', '--json'])).out;
    assert.match(leakEvent, /\[redacted\]/, 'the Failed event of the leaky container is redacted');

    const files = filesUnder(state);
    const holding = files.filter((f) => readFileSync(f).includes(SECRET));
    const rel = holding.map((f) => f.slice(state.length + 1)).sort();
    for (const want of ['pods/default_secret-pod/plan.json', 'pods/default_secret-pod/logs/app.log'])
      assert.ok(rel.includes(want), `${want} holds the value (found in ${rel.join(', ')})`);
    assert.ok(
      rel.some((f) => /containers\/app\/bundle\/config\.json$/.test(f)),
      'the bundle config.json holds it',
    );

    // The unprivileged walk: it reaches the state dir, reads what it can, finds nothing.
    const canary = join(root, 'canary');
    writeFileSync(canary, 'canary-readable\n', { mode: 0o644 });
    chmodSync(canary, 0o644);
    assert.equal(asNobody('test -d "$1" && echo reached', [state]).trim(), 'reached');
    const byPath = asNobody('for f; do cat -- "$f" 2>/dev/null; done; true', [canary, ...files]);
    assert.match(byPath, /canary-readable/, 'nobody can read a world-readable file (the walk works)');
    assert.ok(!byPath.includes(SECRET), 'no file under the state dir is readable by nobody with the value');
    const recursive = asNobody('grep -r -l -F -e "$1" "$2" 2>/dev/null; true', [SECRET, state]);
    assert.equal(recursive.trim(), '');

    // Modes as created: dirs 0700, files 0600 (the container's own rootfs aside).
    for (const p of [
      state,
      join(state, 'pods'),
      podDir('secret-pod'),
      join(podDir('secret-pod'), 'logs'),
      join(podDir('secret-pod'), 'containers'),
      join(podDir('secret-pod'), 'containers', 'app'),
      join(podDir('secret-pod'), 'containers', 'app', 'bundle'),
      join(state, 'ipam'),
      join(state, 'runtime'),
    ])
      assert.equal(statSync(p).mode & 0o777, 0o700, p);
    for (const f of [
      'plan.json',
      'pod.json',
      'status.json',
      'events.jsonl',
      'supervisor.log',
      'logs/app.log',
      'containers/app/bundle/config.json',
    ])
      assert.equal(statSync(join(podDir('secret-pod'), f)).mode & 0o777, 0o600, f);

    // Never in events, run/describe output or the supervisor log.
    assert.ok(!r.out.includes(SECRET), 'run --json output');
    assert.ok(!leakEvent.includes(SECRET), 'describe --json');
    assert.ok(!(await cli('describe', ['secret-pod'])).out.includes(SECRET), 'describe');
    assert.ok(!readFileSync(join(podDir('secret-pod'), 'events.jsonl'), 'utf8').includes(SECRET), 'events');
    const supLog = readFileSync(join(podDir('secret-pod'), 'supervisor.log'), 'utf8');
    assert.ok(!supLog.includes(SECRET), 'supervisor.log');
    await cli('stop', ['secret-pod']);
    assert.ok(
      !readFileSync(join(podDir('secret-pod'), 'events.jsonl'), 'utf8').includes(SECRET),
      'events after stop',
    );
  });
});

describe('securityContext', () => {
  /** One line per fact the test checks, then stays up. */
  const REPORT = [
    'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"',
    'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status | tr "\\t\\n" "  "; echo',
    'if touch /probe 2>/dev/null; then echo write=ok; else echo write=failed; fi',
    'touch /dev/shm/f; if chown 1:1 /dev/shm/f 2>/dev/null; then echo chown=ok; else echo chown=failed; fi',
    'echo done',
    BUSY,
  ].join('; ');

  test('runAsUser/runAsGroup/supplementalGroups, readOnlyRootFilesystem, a dropped capability, no_new_privs and RuntimeDefault seccomp, seen from inside; a control container shows the defaults', async () => {
    const { code, res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: secctx }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  securityContext:
    supplementalGroups: [3456]
    seccompProfile: { type: RuntimeDefault }
  containers:
    - name: user
      image: busybox:test
      command: [sh, -c, '${REPORT}']
      securityContext: { runAsUser: 1234, runAsGroup: 2345, runAsNonRoot: true, allowPrivilegeEscalation: false }
    - name: ro
      image: busybox:test
      command: [sh, -c, '${REPORT}']
      securityContext: { readOnlyRootFilesystem: true }
    - name: nochown
      image: busybox:test
      command: [sh, -c, '${REPORT}']
      securityContext: { capabilities: { drop: [CHOWN] }, seLinuxOptions: { level: s0 } }
    - name: control
      image: busybox:test
      command: [sh, -c, '${REPORT}']
      securityContext: { seccompProfile: { type: Unconfined } }
`);
    assert.equal(code, 0, JSON.stringify(res.events));
    assert.equal(res.phase, 'Running');
    const unsupported = res.events.find((e) => e.reason === 'UnsupportedFields');
    assert.match(unsupported?.message ?? '', /spec\.containers\[2\]\.securityContext\.seLinuxOptions/);

    const user = await logOf('secctx', 'user', 'done');
    assert.match(user, /^uid=1234 gid=2345 groups=2345 3456$/m);
    assert.match(user, /NoNewPrivs:\s+1/);
    assert.match(user, /Seccomp:\s+2/);
    const ro = await logOf('secctx', 'ro', 'done');
    assert.match(ro, /^write=failed$/m);
    assert.match(ro, /^chown=ok$/m);
    const nochown = await logOf('secctx', 'nochown', 'done');
    assert.match(nochown, /^chown=failed$/m);
    assert.match(nochown, /^write=ok$/m);
    const control = await logOf('secctx', 'control', 'done');
    assert.match(control, /^uid=0 gid=0 groups=0 3456$/m);
    assert.match(control, /^write=ok$/m);
    assert.match(control, /^chown=ok$/m);
    assert.match(control, /NoNewPrivs:\s+0/);
    assert.match(control, /Seccomp:\s+0/);

    const spec = plan('secctx').containers.find((c) => c.name === 'nochown')!.ociSpec as {
      process: { capabilities: { effective: string[] } };
    };
    assert.ok(!spec.process.capabilities.effective.includes('CAP_CHOWN'));
    await cli('stop', ['secctx']);
  });

  test('seccompProfile Localhost: the node profile is loaded; a missing one is refused before anything starts', async () => {
    const { code, res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: localprof }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, 'if mkdir /tmp/d 2>/dev/null; then echo mkdir=ok; else echo mkdir=failed; fi; grep Seccomp: /proc/self/status; echo done; ${BUSY}']
      securityContext: { seccompProfile: { type: Localhost, localhostProfile: profiles/no-mkdir.json } }
`);
    assert.equal(code, 0, JSON.stringify(res.events));
    const log = await logOf('localprof', 'c', 'done');
    assert.match(log, /^mkdir=failed$/m);
    assert.match(log, /Seccomp:\s+2/);
    await cli('stop', ['localprof']);

    const missing = await run(`
apiVersion: v1
kind: Pod
metadata: { name: noprof }
spec:
  containers:
    - name: c
      image: busybox:test
      securityContext: { seccompProfile: { type: Localhost, localhostProfile: profiles/absent.json } }
`);
    assert.equal(missing.code, 1);
    assert.match(
      missing.res.events.find((e) => e.reason === 'Failed')?.message ?? '',
      /cannot load seccomp profile .*profiles\/absent\.json/,
    );
    assert.ok(!existsSync(join(podDir('noprof'), 'plan.json')));
  });

  test('runAsNonRoot with a root image: CreateContainerConfigError with kubelet message, nothing started', async () => {
    const { code, res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: nonroot, uid: 0a0a0a0a-1111-2222-3333-444444444444 }
spec:
  securityContext: { runAsNonRoot: true }
  containers: [{ name: c, image: busybox:test, command: [sh, -c, '${BUSY}'] }]
`);
    assert.equal(code, 1);
    assert.equal(res.phase, 'Failed');
    const failed = res.events.find((e) => e.reason === 'Failed');
    assert.equal(
      failed?.message,
      'Error: container has runAsNonRoot and image will run as root (pod: "nonroot_default(0a0a0a0a-1111-2222-3333-444444444444)", container: c)',
    );
    assert.equal(failed?.fieldPath, 'spec.containers{c}');
    assert.match(res.message ?? '', /CreateContainerConfigError/);
    assert.equal(res.containers[0]?.reason, 'CreateContainerConfigError');
    assert.ok(!res.events.some((e) => e.reason === 'Created' || e.reason === 'Started'));
    assert.ok(!existsSync(join(podDir('nonroot'), 'plan.json')), 'no plan: no supervisor, no container');
    assert.ok(!existsSync(join(podDir('nonroot'), 'containers')));
  });

  test('privileged: true is refused by default, nothing started', async () => {
    const { code, res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: priv }
spec:
  containers:
    - { name: c, image: busybox:test, command: [sh, -c, '${BUSY}'], securityContext: { privileged: true } }
`);
    assert.equal(code, 1);
    assert.equal(res.phase, 'Failed');
    assert.match(
      res.events.find((e) => e.reason === 'Failed')?.message ?? '',
      /privileged: true, which this node does not allow; set allowPrivileged: true in the node config/,
    );
    assert.ok(!existsSync(join(podDir('priv'), 'plan.json')));
  });
});

describe('daemon socket', () => {
  test('a pod key that leaves <state>/pods is refused; the plan it points at is never read', async () => {
    // What an attacker would point the daemon at: a plan outside the pods dir.
    const evil = join(root, 'evil');
    mkdirSync(evil, { recursive: true });
    writeFileSync(join(evil, 'plan.json'), JSON.stringify({ ...plan('secctx'), name: 'evil' }));
    const ac = new AbortController();
    const served = serveDaemon(state, ac.signal);
    const sock = join(state, 'daemon.sock');
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(50);
      for (const key of ['../../evil', 'default_../../../evil', '..', 'default_a/b', '']) {
        const reply = await askSocket(sock, { op: 'run', key }, 30_000);
        assert.equal(reply.ok, false, key);
        assert.match(String(reply.error), key === '' ? /invalid pod key|expected/ : /invalid pod key/, key);
      }
      assert.ok(!existsSync(join(evil, 'status.json')), 'no supervisor wrote into the evil dir');
      assert.ok(!existsSync(join(evil, 'control.sock')));
    } finally {
      ac.abort();
      await served;
    }
  });
});
