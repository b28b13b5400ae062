/**
 * pullkeeper-node run/stop/describe/ps/logs against real runc (as root), with
 * the busybox test image source (test/e2e/support). Everything is read from
 * inside the running containers (`runc exec`) or from what the runner wrote.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeRunCommands, type RunCommand } from '../../src/cli/pullkeeper-node-run.js';
import { serviceEnvVars } from '../../src/core/pod-env.js';
import type { PlannedPod } from '../../src/runner/plan.js';
import type { PodStatus } from '../../src/runner/pod-state.js';
import { listPods } from '../../src/runner/pods.js';
import { ALPHA_ADVICE } from '../../src/runner/runtime-class.js';
import { type BusyboxImageSource, busyboxImageSource } from './support/busybox-image-source.js';
import { stopPodsAndBridge } from './support/node-cleanup.js';
import { nodeRunCli } from './support/node-run-cli.js';

const BRIDGE = 'pkr-test0';
let root: string;
let state: string;
let nodeConfig: string;
let images: BusyboxImageSource;
let cmds: Record<string, RunCommand>;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'pk-node-run-'));
  state = join(root, 'state');
  images = busyboxImageSource(join(root, 'images'));
  cmds = makeRunCommands({ imageSource: images });
  nodeConfig = join(root, 'node.yaml');
  writeFileSync(
    nodeConfig,
    [
      'runtimeHandlers:',
      '  runc: { binary: runc }',
      '  runc-alt: { binary: runc }',
      '  crun: { binary: crun }',
      `bridge: { name: ${BRIDGE}, subnet: 10.216.0.0/24 }`,
      'nodeName: test-node',
      'hostIP: 192.0.2.2',
      'logMaxBytes: 4096',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await stopPodsAndBridge(state, BRIDGE);
  await rm(root, { recursive: true, force: true });
});

const opts = () => ['--state-dir', state, '--node-config', nodeConfig];
const { cli, run } = nodeRunCli({ cmds: () => cmds, flags: opts, dir: () => root });

/** `name` or `ns/name`. */
function podDir(ref: string): string {
  const [ns, name] = ref.includes('/') ? ref.split('/') : ['default', ref];
  return join(state, 'pods', `${ns}_${name}`);
}
function plan(name: string): PlannedPod {
  return JSON.parse(readFileSync(join(podDir(name), 'plan.json'), 'utf8')) as PlannedPod;
}
function status(name: string): PodStatus {
  return JSON.parse(readFileSync(join(podDir(name), 'status.json'), 'utf8')) as PodStatus;
}
/** Runs a command inside a running container of the pod. */
function execIn(pod: string, container: string, cmd: string): string {
  const p = plan(pod);
  const c = p.containers.find((x) => x.name === container)!;
  return execFileSync(p.runtime.binary, ['--root', p.runtime.root, 'exec', c.id, 'sh', '-c', cmd], {
    encoding: 'utf8',
  });
}
function reasons(res: { events: Array<{ reason: string }> }): string[] {
  return res.events.map((e) => e.reason);
}
function netnsList(): string {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
}

/** sha256 over every path, type, mode, owner, size, link target and content under `dir`. */
function hashTree(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      h.update(`${p}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.size}\0`);
      if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else if (st.isDirectory()) walk(p);
      else if (st.isFile()) h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** Keeps the container running; TERM ends it (sh as PID 1 would ignore TERM otherwise). */
const BUSY = 'trap "exit 0" TERM; while true; do sleep 0.2; done';

describe('container environment', () => {
  test('hostname, downward API, service env vars, $(VAR) expansion and envFrom precedence, read inside the container', async () => {
    const services = [
      {
        name: 'kubernetes',
        namespace: 'default',
        clusterIP: '10.96.0.1',
        ports: [{ name: 'https', port: 443 }],
      },
      { name: 'redis-primary', namespace: 'shop', clusterIP: '10.0.0.11', ports: [{ port: 6379 }] },
      { name: 'other-ns', namespace: 'elsewhere', clusterIP: '10.0.0.99', ports: [{ port: 1 }] },
    ];
    const manifest = `
apiVersion: v1
kind: Pod
metadata: { name: env-pod, namespace: shop, uid: 11111111-2222-3333-4444-555555555555, labels: { app: web } }
spec:
  restartPolicy: Never
  serviceAccountName: builder
  containers:
    - name: main
      image: busybox:test
      command: [sh, -c, 'echo "args=$0 $1"; ${BUSY}', '$(GREETING)', '$$(NOT_EXPANDED)']
      envFrom:
        - configMapRef: { name: settings }
        - prefix: S_
          secretRef: { name: creds }
      env:
        - { name: FROM_BOTH, value: from-env }
        - { name: GREETING, value: 'hello-$(COLOR)' }
        - { name: SELF_REF, value: '$(LATER)-x' }
        - { name: LATER, value: later }
        - { name: REDIS_PRIMARY_SERVICE_HOST, value: overridden }
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        - { name: POD_NS, valueFrom: { fieldRef: { fieldPath: metadata.namespace } } }
        - { name: POD_UID, valueFrom: { fieldRef: { fieldPath: metadata.uid } } }
        - { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }
        - { name: NODE, valueFrom: { fieldRef: { fieldPath: spec.nodeName } } }
        - { name: HOST_IP, valueFrom: { fieldRef: { fieldPath: status.hostIP } } }
        - { name: SA, valueFrom: { fieldRef: { fieldPath: spec.serviceAccountName } } }
        - { name: APP, valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } }
        - { name: CM_KEY, valueFrom: { configMapKeyRef: { name: settings, key: COLOR } } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: shop }
data: { COLOR: blue, FROM_BOTH: from-configmap, "1BAD": skipped }
---
apiVersion: v1
kind: Secret
metadata: { name: creds, namespace: shop }
type: Opaque
data: { TOKEN: ${Buffer.from('s3cret').toString('base64')} }
${services
  .map(
    (s) => `---
apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: ${s.namespace} }
spec: { clusterIP: ${s.clusterIP}, ports: ${JSON.stringify(s.ports)} }`,
  )
  .join('\n')}
`;
    const { code, res } = await run(manifest);
    assert.equal(code, 0, JSON.stringify(res.events));
    assert.equal(res.phase, 'Running');
    assert.ok(
      res.events.some((e) => e.reason === 'InvalidEnvironmentVariableNames' && e.message.includes('1BAD')),
    );

    assert.equal(execIn('shop/env-pod', 'main', 'hostname').trim(), 'env-pod');
    const environ = execIn('shop/env-pod', 'main', "tr '\\0' '\\n' < /proc/1/environ");
    const env = new Map(
      environ
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
    );
    const expect: Record<string, string> = {
      HOSTNAME: 'env-pod',
      IMAGE_ONLY: 'from-image',
      COLOR: 'blue',
      FROM_BOTH: 'from-env',
      S_TOKEN: 's3cret',
      GREETING: 'hello-blue',
      SELF_REF: '$(LATER)-x',
      LATER: 'later',
      REDIS_PRIMARY_SERVICE_HOST: 'overridden',
      POD_NAME: 'env-pod',
      POD_NS: 'shop',
      POD_UID: '11111111-2222-3333-4444-555555555555',
      POD_IP: res.podIP!,
      NODE: 'test-node',
      HOST_IP: '192.0.2.2',
      SA: 'builder',
      APP: 'web',
      CM_KEY: 'blue',
    };
    for (const [k, v] of Object.entries(expect)) assert.equal(env.get(k), v, k);
    // Service links, compared with the core's vectors (the env entry above hides one).
    const want = serviceEnvVars(services.filter((s) => s.namespace !== 'elsewhere'));
    delete want.REDIS_PRIMARY_SERVICE_HOST;
    for (const [k, v] of Object.entries(want)) assert.equal(env.get(k), v, k);
    assert.ok(!env.has('OTHER_NS_SERVICE_HOST'), 'services of other namespaces are not visible');
    assert.ok(!env.has('1BAD'));
    // command/args expanded against the final env.
    const log = await cli('logs', ['shop/env-pod']);
    assert.match(log.out, /args=hello-blue \$\(NOT_EXPANDED\)/);
    // Pod IP is the sandbox's address.
    assert.match(
      execIn('shop/env-pod', 'main', 'ip -4 addr show eth0'),
      new RegExp(`inet ${res.podIP!.replaceAll('.', '\\.')}/24`),
    );
    await cli('stop', ['shop/env-pod']);
  });

  test('enableServiceLinks: false keeps only the master kubernetes service; spec.hostname and subdomain', async () => {
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: nolinks }
spec:
  restartPolicy: Never
  enableServiceLinks: false
  hostname: web-0
  subdomain: web
  containers: [{ name: c, image: busybox:test, command: [sh, -c, '${BUSY}'] }]
---
apiVersion: v1
kind: Service
metadata: { name: kubernetes, namespace: default }
spec: { clusterIP: 10.96.0.1, ports: [{ name: https, port: 443 }] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: default }
spec: { clusterIP: 10.0.0.5, ports: [{ port: 5432 }] }
`);
    assert.equal(res.phase, 'Running');
    const env = execIn('nolinks', 'c', "tr '\\0' '\\n' < /proc/1/environ");
    assert.match(env, /^KUBERNETES_SERVICE_HOST=10\.96\.0\.1$/m);
    assert.doesNotMatch(env, /DB_SERVICE_HOST/);
    assert.equal(execIn('nolinks', 'c', 'hostname').trim(), 'web-0');
    assert.match(env, /^HOSTNAME=web-0$/m);
    await cli('stop', ['nolinks']);
  });
});

describe('lifecycle hooks', () => {
  test('exec PostStart runs before Running; httpGet PreStop reaches the server in the container with kubelet headers', async () => {
    const cgi = [
      'mkdir -p /www/cgi-bin',
      "printf '#!/bin/sh\\nenv > /tmp/prestop-env\\necho Content-Type: text/plain\\necho\\necho bye\\n' > /www/cgi-bin/quit",
      'chmod +x /www/cgi-bin/quit',
      'exec httpd -f -p 8080 -h /www',
    ].join('; ');
    const { code, res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: hooks }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
    - name: web
      image: busybox:test
      command: [sh, -c, ${JSON.stringify(cgi)}]
      ports: [{ name: http, containerPort: 8080 }]
      lifecycle:
        postStart: { exec: { command: [sh, -c, 'sleep 0.3; echo ran $(cat /proc/1/comm) > /tmp/poststart'] } }
        preStop:
          httpGet: { path: /cgi-bin/quit, port: http, httpHeaders: [{ name: X-Reason, value: shutdown }] }
`);
    assert.equal(code, 0, JSON.stringify(res.events));
    assert.equal(res.phase, 'Running');
    // Running was reported only after the hook returned, so its file exists now.
    // ...and the entrypoint ran alongside it: PID 1 had already become httpd.
    assert.equal(execIn('hooks', 'web', 'cat /tmp/poststart').trim(), 'ran httpd');
    assert.deepEqual(reasons(res), ['Pulled', 'Created', 'Started']);
    const st = status('hooks');
    assert.equal(st.containers[0]!.state, 'running');

    const stop = await cli('stop', ['hooks']);
    assert.equal(stop.code, 0, stop.err);
    const upper = join(podDir('hooks'), 'containers', 'web', 'upper');
    const seen = readFileSync(join(upper, 'tmp', 'prestop-env'), 'utf8');
    assert.match(seen, /^HTTP_USER_AGENT=kube-lifecycle\/1\.34$/m);
    assert.match(seen, /^HTTP_X_REASON=shutdown$/m);
    assert.match(seen, /^REQUEST_METHOD=GET$/m);
    const after = status('hooks');
    assert.equal(after.cleanedUp, true);
    assert.ok(!netnsList().includes(plan('hooks').netns), 'the pod netns is removed');
    const describeOut = (await cli('describe', ['hooks'])).out;
    const lines = describeOut.split('\n');
    assert.ok(
      lines.findIndex((l) => l.startsWith('Events:')) > lines.findIndex((l) => l.startsWith('Containers:')),
    );
    assert.match(describeOut, /Normal\s+Killing\s+\S+\s+pullkeeper-node\s+Stopping container web/);
    assert.doesNotMatch(describeOut, /FailedPreStopHook/);
  });

  test('a failing PostStart kills the container with FailedPostStartHook', async () => {
    const { code, res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: badpost }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, 'trap "exit 1" TERM; while true; do sleep 0.2; done']
      lifecycle:
        postStart: { exec: { command: [sh, -c, 'echo secret-detail; exit 3'] } }
`);
    assert.equal(code, 1);
    assert.equal(res.phase, 'Failed');
    const ev = res.events.find((e) => e.reason === 'FailedPostStartHook');
    assert.deepEqual(ev && { type: ev.type, message: ev.message, fieldPath: ev.fieldPath }, {
      type: 'Warning',
      message: 'PostStartHook failed',
      fieldPath: 'spec.containers{c}',
    });
    assert.ok(res.events.some((e) => e.reason === 'Killing' && e.message === 'FailedPostStartHook'));
    assert.ok(!JSON.stringify(res.events).includes('secret-detail'), 'hook output stays out of events');
    assert.equal(res.containers[0]!.state, 'terminated');
    assert.equal(status('badpost').cleanedUp, true);
  });

  test('a PreStop that hangs past the grace period: TERM at the end of it, KILL at least 2 s later', async () => {
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: hang }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 3
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, 'trap "echo got-term > /tmp/term" TERM; while true; do sleep 0.2; done']
      lifecycle:
        preStop: { exec: { command: [sleep, '100'] } }
`);
    assert.equal(res.phase, 'Running');
    const stop = await cli('stop', ['hang']);
    assert.equal(stop.code, 0, stop.err);
    const c = status('hang').containers[0]!;
    const k = c.lastKill!;
    assert.ok(k.termAt && k.killAt && k.exitedAt, JSON.stringify(k));
    const hook = k.termAt - k.killingAt;
    const window = k.killAt - k.termAt;
    // Generous tolerances: the machine is shared.
    assert.ok(hook >= 2900 && hook < 6000, `TERM came ${hook} ms after Killing (grace 3 s)`);
    assert.ok(window >= 2000 && window < 5000, `KILL came ${window} ms after TERM (at least 2 s)`);
    assert.equal(k.graceSeconds, 2);
    assert.equal(c.exitCode, 137);
    const upper = join(podDir('hang'), 'containers', 'c', 'upper');
    assert.equal(readFileSync(join(upper, 'tmp', 'term'), 'utf8').trim(), 'got-term');
    const events = (await cli('describe', ['hang'])).out;
    assert.doesNotMatch(
      events,
      /FailedPreStopHook/,
      'a hook cut off by the grace period is not a failure event',
    );
  });

  test('sleep PreStop handler, then TERM ends the container (no KILL)', async () => {
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: sleeper }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, '${BUSY}']
      lifecycle:
        preStop: { sleep: { seconds: 1 } }
`);
    assert.equal(res.phase, 'Running');
    await cli('stop', ['sleeper']);
    const c = status('sleeper').containers[0]!;
    const k = c.lastKill!;
    assert.ok(k.preStopEndedAt! - k.killingAt >= 1000, 'the sleep hook lasted 1 s');
    assert.ok(k.termAt! >= k.preStopEndedAt!);
    assert.equal(k.killAt, undefined);
    assert.equal(c.exitCode, 0);
    assert.equal(status('sleeper').phase, 'Succeeded');
  });
});

describe('RuntimeClass', () => {
  const rc = (name: string, body: string) => `---\n${body.replace('NAME', name)}`;
  const pod = (name: string, cls: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name} }
spec:
  restartPolicy: Never
  runtimeClassName: ${cls}
  containers: [{ name: c, image: busybox:test, command: [sh, -c, 'echo up; ${BUSY}'] }]
`;

  test('runc and a second handler (runc-alt) both run a pod', async () => {
    const classes =
      rc(
        'standard',
        'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: { name: NAME }\nhandler: runc\n',
      ) +
      rc(
        'alt',
        'apiVersion: node.k8s.io/v1beta1\nkind: RuntimeClass\nmetadata: { name: NAME }\nhandler: runc-alt\n',
      );
    const a = await run(pod('rc-std', 'standard') + classes);
    const b = await run(pod('rc-alt', 'alt') + classes);
    assert.equal(a.res.phase, 'Running');
    assert.equal(b.res.phase, 'Running');
    assert.equal(a.res.runtimeHandler, 'runc');
    assert.equal(b.res.runtimeHandler, 'runc-alt');
    // Each handler has its own runtime state root, and the container lives there.
    const altIds = execFileSync('runc', ['--root', join(state, 'runtime', 'runc-alt'), 'list', '-q'], {
      encoding: 'utf8',
    });
    assert.ok(altIds.includes(plan('rc-alt').containers[0]!.id));
    assert.equal(execIn('rc-alt', 'c', 'hostname').trim(), 'rc-alt');
    const ps = await cli('ps', []);
    assert.match(ps.out, /default\s+rc-alt\s+1\/1\s+Running\s+0\s+\S+\s+10\.216\.0\.\d+\s+runc-alt/);
    await cli('stop', ['rc-std']);
    await cli('stop', ['rc-alt']);
  });

  async function assertNothingStarted(name: string): Promise<void> {
    assert.ok(!existsSync(join(podDir(name), 'plan.json')), 'no plan: nothing was started');
    assert.ok(!existsSync(join(podDir(name), 'containers')));
    assert.equal(status(name).phase, 'Failed');
    const dirs = await listPods(state);
    assert.equal(dirs.find((p) => p.name === name)?.phase, 'Failed');
  }

  test('an unknown runtimeClassName: FailedCreatePodSandBox naming the class and the fix; nothing starts', async () => {
    const netnsBefore = netnsList();
    const { code, res } = await run(pod('rc-unknown', 'no-such-class'));
    assert.equal(code, 1);
    assert.equal(res.phase, 'Failed');
    const ev = res.events.find((e) => e.reason === 'FailedCreatePodSandBox');
    assert.equal(ev?.type, 'Warning');
    assert.match(
      ev!.message,
      /^Failed to create pod sandbox: runtimeclasses\.node\.k8s\.io "no-such-class" not found; create RuntimeClass "no-such-class"/,
    );
    assert.equal(netnsList(), netnsBefore);
    await assertNothingStarted('rc-unknown');
  });

  test('a handler the node does not have: the event names the handler', async () => {
    const { res } = await run(
      pod('rc-kata', 'kata') +
        rc(
          'kata',
          'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: { name: NAME }\nhandler: kata\n',
        ),
    );
    const ev = res.events.find((e) => e.reason === 'FailedCreatePodSandBox');
    assert.match(
      ev!.message,
      /RuntimeClass "kata" names handler "kata", which is not configured on this node \(configured: crun, runc, runc-alt\)/,
    );
    await assertNothingStarted('rc-kata');
  });

  test('crun is detected as unavailable here (cgroups in hybrid mode) and named in the event', async () => {
    const { res } = await run(
      pod('rc-crun', 'crun') +
        rc(
          'crun',
          'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: { name: NAME }\nhandler: crun\n',
        ),
    );
    const ev = res.events.find((e) => e.reason === 'FailedCreatePodSandBox');
    assert.match(
      ev!.message,
      /handler "crun" \(crun\), which this node cannot run: .*cgroups in hybrid mode not supported/,
    );
    assert.match(
      ev!.message,
      /map "crun" to a working OCI runtime in the node config or use another RuntimeClass/,
    );
    await assertNothingStarted('rc-crun');
    // The probe ran once and is cached on disk.
    const cache = JSON.parse(readFileSync(join(state, 'handlers.json'), 'utf8')) as Record<
      string,
      { ok: boolean }
    >;
    assert.ok(Object.entries(cache).some(([k, v]) => k.includes('"crun"') && v.ok === false));
  });

  test('an alpha RuntimeClass (spec.runtimeHandler) is refused with the migration advice', async () => {
    const { res } = await run(
      pod('rc-alpha', 'old') +
        rc(
          'old',
          'apiVersion: node.k8s.io/v1alpha1\nkind: RuntimeClass\nmetadata: { name: NAME }\nspec: { runtimeHandler: runc }\n',
        ),
    );
    const ev = res.events.find((e) => e.reason === 'FailedCreatePodSandBox');
    assert.ok(ev!.message.includes(ALPHA_ADVICE), ev!.message);
    await assertNothingStarted('rc-alpha');
  });
});

describe('rootfs', () => {
  test('a container writing to its rootfs leaves the image store unchanged', async () => {
    const before = hashTree(images.layerDir);
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: writer }
spec:
  restartPolicy: Never
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, 'echo new > /bin/added; rm /var/www/index.html; echo x >> /etc/passwd; chmod 700 /bin; echo done; ${BUSY}']
`);
    assert.equal(res.phase, 'Running');
    for (let i = 0; i < 50 && !(await cli('logs', ['writer'])).out.includes('done'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(execIn('writer', 'c', 'cat /bin/added').trim(), 'new');
    assert.equal(execIn('writer', 'c', 'test -e /var/www/index.html && echo yes || echo no').trim(), 'no');
    await cli('stop', ['writer']);
    assert.equal(hashTree(images.layerDir), before);
    const upper = join(podDir('writer'), 'containers', 'c', 'upper');
    assert.equal(readFileSync(join(upper, 'bin', 'added'), 'utf8'), 'new\n');
  });

  test('logs are capped per container (the previous file moves to .log.1; older output is dropped)', async () => {
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: chatty }
spec:
  restartPolicy: Never
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, 'i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); [ $i = 200 ] && sleep 0.5; done; echo end; ${BUSY}']
`);
    assert.equal(res.phase, 'Running');
    const log = join(podDir('chatty'), 'logs', 'c.log');
    for (let i = 0; i < 50 && !readFileSync(log, 'utf8').includes('end'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(lstatSync(log).size <= 4096);
    assert.ok(lstatSync(`${log}.1`).size <= 4096);
    const out = (await cli('logs', ['chatty', '-c', 'c'])).out;
    assert.match(out, /line-399-\S+\nend$/);
    const kept = out.split('\n').filter((l) => l.startsWith('line-')).length;
    assert.ok(kept < 400 && kept > 100, `${kept} of 400 lines kept within two 4 KiB files`);
    await cli('stop', ['chatty']);
  });
});

describe('pod lifecycle', () => {
  test('restartPolicy OnFailure: restart, then BackOff with kubelet message; stop cancels the back-off', async () => {
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: crashy, uid: crash-uid }
spec:
  restartPolicy: OnFailure
  containers: [{ name: c, image: busybox:test, command: [sh, -c, 'echo boom; exit 3'] }]
`);
    assert.notEqual(res.phase, 'Failed');
    const events = join(podDir('crashy'), 'events.jsonl');
    for (let i = 0; i < 100 && !readFileSync(events, 'utf8').includes('BackOff'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const backOff = readFileSync(events, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; reason: string; message: string })
      .find((e) => e.reason === 'BackOff');
    assert.deepEqual(backOff && { type: backOff.type, message: backOff.message }, {
      type: 'Warning',
      message: 'Back-off restarting failed container c in pod crashy_default(crash-uid)',
    });
    const c = status('crashy').containers[0]!;
    assert.equal(c.restartCount, 1, 'the first restart is immediate, the second waits 10 s');
    assert.equal(c.reason, 'CrashLoopBackOff');
    assert.equal(c.exitCode, 3);
    const stop = await cli('stop', ['crashy']);
    assert.equal(stop.code, 0, stop.err);
    assert.equal(status('crashy').phase, 'Failed');
    assert.equal(status('crashy').cleanedUp, true);
    assert.match((await cli('logs', ['crashy'])).out, /^boom\nboom$/);
  });

  test('unsupported fields are reported; a running pod cannot be run twice; unknown pods are errors', async () => {
    const manifest = `
apiVersion: v1
kind: Pod
metadata: { name: twice }
spec:
  restartPolicy: Never
  volumes: [{ name: data, emptyDir: {} }]
  containers:
    - name: c
      image: busybox:test
      command: [sh, -c, '${BUSY}']
      resources: { limits: { memory: 64Mi } }
`;
    const first = await run(manifest);
    assert.equal(first.res.phase, 'Running');
    const warn = first.res.events.find((e) => e.reason === 'UnsupportedFields');
    assert.equal(warn?.type, 'Warning');
    assert.match(warn!.message, /spec\.volumes, spec\.containers\[0\]\.resources/);
    const file = join(root, 'twice.yaml');
    writeFileSync(file, manifest);
    const second = await cli('run', [file]);
    assert.equal(second.code, 1);
    assert.match(second.err, /pod default\/twice is already running; stop it first/);
    await cli('stop', ['twice']);
    const missing = await cli('describe', ['nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /pod default\/nope not found .*pullkeeper-node ps/);
  });

  test('images: defaulted pull policy and the pod pull secrets go to the image source; a missing secret is an event', async () => {
    const config = JSON.stringify({
      auths: { 'registry.test:5000': { auth: Buffer.from('u:p').toString('base64') } },
    });
    const seen = images.requests.length;
    const { res } = await run(`
apiVersion: v1
kind: Pod
metadata: { name: pulls }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  imagePullSecrets: [{ name: regcred }, { name: absent }]
  containers:
    - { name: a, image: busybox, command: [sh, -c, '${BUSY}'] }
    - { name: b, image: 'busybox:1.36', command: [sh, -c, '${BUSY}'] }
    - { name: c, image: 'busybox:1.36', imagePullPolicy: Never, command: [sh, -c, '${BUSY}'] }
---
apiVersion: v1
kind: Secret
metadata: { name: regcred }
type: kubernetes.io/dockerconfigjson
data: { .dockerconfigjson: ${Buffer.from(config).toString('base64')} }
`);
    assert.equal(res.phase, 'Running');
    const reqs = images.requests.slice(seen);
    assert.deepEqual(
      reqs.map((r) => [r.image, r.policy]),
      [
        ['busybox', 'Always'],
        ['busybox:1.36', 'IfNotPresent'],
        ['busybox:1.36', 'Never'],
      ],
    );
    assert.equal(reqs[0]!.podSecrets.length, 1);
    assert.deepEqual(Object.keys(reqs[0]!.podSecrets[0]!.auths ?? {}), ['registry.test:5000']);
    // KEP-2535: the store gets each Secret's name (a manifest's uid is not trusted) and kubelet's default policy.
    assert.deepEqual(reqs[0]!.podSecrets[0]!.source, { kind: 'secret', name: 'default/regcred' });
    assert.equal(reqs[0]!.verificationPolicy, 'NeverVerifyPreloadedImages');
    const warn = res.events.find((e) => e.reason === 'FailedToRetrieveImagePullSecret');
    assert.equal(
      warn?.message,
      'Unable to retrieve some image pull secrets (absent); attempting to pull the image may not succeed.',
    );
    assert.deepEqual(
      res.events.filter((e) => e.reason === 'Started').map((e) => e.fieldPath),
      ['spec.containers{a}', 'spec.containers{b}', 'spec.containers{c}'],
    );
    assert.ok(!JSON.stringify(res.events).includes(Buffer.from('u:p').toString('base64')));
    await cli('stop', ['pulls']);
  });
});
