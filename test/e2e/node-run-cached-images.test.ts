/**
 * KEP-2535 on the pod runner, with real runc, the real image store and the
 * token registry where each tenant's credential may read only its own
 * repositories. Tenant B holds a *valid* credential for the registry; the
 * trust boundary is whether the node hands B the copy of tenant A's private
 * image that A's pod left in the store.
 *
 * Registry traffic is read from the registry itself: the token server's log
 * (every store client starts without a token, so any registry call shows up
 * there) and docker-registry's own request log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bufferIO } from '../../src/cli/io.js';
import { makeRunCommands, type RunCommand } from '../../src/cli/pullkeeper-node-run.js';
import { stopPod } from '../../src/runner/pods.js';
import { ImageStore } from '../../src/runner/store/store.js';
import { type Harness, startHarness } from '../harness/index.js';
import { buildImage, pushImage } from '../harness/registry/images.js';
import { stopPodsAndBridge } from './support/node-cleanup.js';

const BRIDGE = 'pkr-kep2535';
const PASS = { a: 'tenant-a-pass-8c1e', b: 'tenant-b-pass-2f9d', pusher: 'pusher-pass-6a07' };
let h: Harness;
let root: string;
let state: string;
let storeDir: string;
let host: string;
let cmds: Record<string, RunCommand>;

interface RunOut {
  phase: string;
  message?: string;
  events: Array<{ type: string; reason: string; message: string }>;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pk-run-kep2535-'));
  state = join(root, 'state');
  storeDir = join(root, 'store');
  h = await startHarness({ registry: { auth: 'token' } });
  host = h.registry!.info.host;
  await h.registry!.allow('pusher', PASS.pusher);
  await h.registry!.allow('tenant-a', PASS.a);
  await h.registry!.allow('tenant-b', PASS.b);
  // Each tenant's robot may read only its own repositories (like ACR scope maps).
  h.registry!.limitRepositories('tenant-a', ['team-a/']);
  h.registry!.limitRepositories('tenant-b', ['team-b/']);
  const img = await buildImage({
    layers: [{ busybox: true }, { files: [{ path: 'etc/owner', content: 'team-a\n' }] }],
  });
  await pushImage(h.registry!, 'team-a/app', 'v1', img, { username: 'pusher', password: PASS.pusher });
  // No node credentials at all: only pod Secrets can read the registry.
  const store = new ImageStore({ stateDir: storeDir, nodeCredentials: { rootDir: join(root, 'kubelet') } });
  cmds = makeRunCommands({ imageSource: store });
});

after(async () => {
  await stopPodsAndBridge(state, BRIDGE);
  await h?.stop();
  await rm(root, { recursive: true, force: true });
});

/** A node config file: the shared parts plus the KEP-2535 lines under test (none: kubelet's default). */
function nodeConfig(name: string, extra: string[] = []): string {
  const path = join(root, `${name}.yaml`);
  writeFileSync(
    path,
    [
      'runtimeHandlers:',
      '  runc: { binary: runc }',
      `bridge: { name: ${BRIDGE}, subnet: 10.223.0.0/24 }`,
      'nodeName: kep-node',
      'hostIP: 192.0.2.9',
      ...extra,
      '',
    ].join('\n'),
  );
  return path;
}

/**
 * A pod holding `tenant`'s credential, naming `image` with IfNotPresent. By
 * default in namespace team-<tenant> with Secret regcred-<tenant>; `as` writes
 * another namespace and Secret name (what a manifest may claim).
 */
function podFile(
  tenant: 'a' | 'b',
  name: string,
  image = `${host}/team-a/app:v1`,
  as: 'a' | 'b' = tenant,
): string {
  // The Secret is valid for the whole registry host; the registry limits what it may read.
  const auth = JSON.stringify({
    auths: { [host]: { username: `tenant-${tenant}`, password: PASS[tenant] } },
  });
  const path = join(root, `${tenant}-${name}.yaml`);
  writeFileSync(
    path,
    `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: team-${as} }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  imagePullSecrets: [{ name: regcred-${as} }]
  containers:
    - name: app
      image: ${image}
      imagePullPolicy: IfNotPresent
      command: [sh, -c, 'trap "exit 0" TERM; cat /etc/owner; while true; do sleep 1; done']
---
apiVersion: v1
kind: Secret
metadata: { name: regcred-${as}, uid: claimed-uid-${as} }
type: kubernetes.io/dockerconfigjson
data: { .dockerconfigjson: ${Buffer.from(auth).toString('base64')} }
`,
  );
  return path;
}

async function run(pod: string, config: string): Promise<RunOut> {
  const io = bufferIO();
  await cmds.run!([pod, '--json', '--state-dir', state, '--node-config', config], io);
  const text = io.stdout.join('\n') + io.stderr.join('\n');
  for (const p of Object.values(PASS)) assert.ok(!text.includes(p), 'a password reached the runner output');
  assert.ok(io.stdout.length > 0, io.stderr.join('\n'));
  return JSON.parse(io.stdout.join('\n')) as RunOut;
}

async function stop(name: string, ns: string): Promise<void> {
  await stopPod(state, `${ns}/${name}`);
}

/** What the registry saw: token requests (user, granted scopes) and docker-registry's request log lines. */
function registrySeen(): { tokens: number; requests: number } {
  const log = readFileSync(h.registry!.info.logFile, 'utf8');
  const requests = log.split('\n').filter((l) => l.includes('http.request.uri="/v2/team-a/')).length;
  return { tokens: h.registry!.tokenRequests().length, requests };
}

function tokensSince(n: number) {
  return h.registry!.tokenRequests().slice(n);
}

const pulledEvent = (r: RunOut) => r.events.find((e) => e.reason === 'Pulled')?.message ?? '';
const CAN_ACCESS = /already present on machine and can be accessed by the pod/;

/** Drops every pull record from the store index: the images look preloaded (present before pullkeeper recorded pulls). */
function makePreloaded(): void {
  const path = join(storeDir, 'images.json');
  const index = JSON.parse(readFileSync(path, 'utf8')) as {
    images: Record<string, { credentials?: unknown }>;
  };
  for (const r of Object.values(index.images)) delete r.credentials;
  writeFileSync(path, JSON.stringify(index));
}

describe('KEP-2535 on the pod runner (real runc, token registry with per-tenant repositories)', {
  timeout: 600_000,
}, () => {
  test("default node config: tenant B, with a valid credential for its own repositories, is refused A's cached image; A's second pod uses the cache with no registry request", async () => {
    const defaults = nodeConfig('default');
    const first = await run(podFile('a', 'a-first'), defaults);
    assert.equal(first.phase, 'Running', first.message);
    assert.match(pulledEvent(first), /Successfully pulled image/);

    // The record holds a keyed hash of A's credential, never the secret; store files are root-only.
    const indexText = readFileSync(join(storeDir, 'images.json'), 'utf8');
    const rec = Object.values(JSON.parse(indexText).images)[0] as {
      credentials: { nodeAccessible: boolean; secrets: Array<{ source: { name: string }; hash: string }> };
    };
    assert.equal(rec.credentials.nodeAccessible, false);
    // By namespace/name; a manifest's metadata.uid is a claim, not recorded.
    assert.deepEqual(
      rec.credentials.secrets.map((s) => s.source),
      [{ kind: 'secret', name: 'team-a/regcred-a' }],
    );
    assert.match(rec.credentials.secrets[0]!.hash, /^hmac-sha256:[0-9a-f]{64}$/);
    assert.ok(
      !indexText.includes(PASS.a) &&
        !indexText.includes(Buffer.from(`tenant-a:${PASS.a}`).toString('base64')),
    );
    assert.equal(statSync(join(storeDir, 'images.json')).mode & 0o077, 0, 'images.json is root-only');
    assert.equal(statSync(join(storeDir, 'pull-records.key')).mode & 0o077, 0, 'the hash key is root-only');

    const t0 = h.registry!.tokenRequests().length;
    const b = await run(podFile('b', 'b-borrow'), defaults);
    assert.equal(b.phase, 'Failed', "tenant B must not run tenant A's cached image");
    const failed = b.events.find(
      (e) => e.reason === 'Failed' && e.message.startsWith('Failed to pull image'),
    );
    assert.ok(failed, JSON.stringify(b.events));
    assert.match(
      failed.message,
      /Secret "team-b\/regcred-b": manifest .*team-a\/app.*pull access denied .*\(HTTP 40[13]\)/,
    );
    assert.ok(
      b.events.some((e) => e.message === 'Error: ErrImagePull'),
      JSON.stringify(b.events),
    );
    assert.match(
      b.message ?? '',
      /the image is cached on this node, but no credential of the pod may read it/,
    );
    // The registry was asked with B's own credential, and refused it team-a/app.
    const asked = tokensSince(t0).filter((t) => t.user === 'tenant-b');
    assert.ok(asked.length >= 1, JSON.stringify(tokensSince(t0)));
    assert.ok(asked.every((t) => !(t.granted ?? []).some((g) => g.includes('team-a/'))));

    const before = registrySeen();
    const second = await run(podFile('a', 'a-second'), defaults);
    assert.equal(second.phase, 'Running', second.message);
    assert.match(pulledEvent(second), CAN_ACCESS);
    assert.deepEqual(registrySeen(), before, "A's second pod made no registry request");
    await stop('a-first', 'team-a');
    await stop('a-second', 'team-a');
  });

  test("a manifest naming A's namespace, Secret name and uid with B's credential is still checked and refused", async () => {
    const impostor = await run(podFile('b', 'a-impostor', undefined, 'a'), nodeConfig('default-impostor'));
    assert.equal(impostor.phase, 'Failed');
    assert.ok(
      impostor.events.some((e) =>
        /Secret "team-a\/regcred-a": manifest .*pull access denied/.test(e.message),
      ),
      JSON.stringify(impostor.events),
    );
  });

  test('AlwaysVerify checks even a preloaded image once (then the record serves A); the default trusts preloaded images', async () => {
    makePreloaded();
    // kubelet's default exempts images it did not pull itself: B gets the preloaded copy.
    const loose = await run(podFile('b', 'b-preloaded'), nodeConfig('default2'));
    assert.equal(loose.phase, 'Running', loose.message);
    await stop('b-preloaded', 'team-b');

    makePreloaded();
    const always = nodeConfig('always', ['imagePullCredentialsVerificationPolicy: AlwaysVerify']);
    const t0 = h.registry!.tokenRequests().length;
    const before = registrySeen();
    const a = await run(podFile('a', 'a-verified'), always);
    assert.equal(a.phase, 'Running', a.message);
    assert.match(pulledEvent(a), CAN_ACCESS);
    assert.ok(
      tokensSince(t0).some(
        (t) => t.user === 'tenant-a' && (t.granted ?? []).some((g) => g.includes('team-a/app')),
      ),
      "AlwaysVerify asked the registry with A's credential",
    );
    const after1 = registrySeen();
    assert.ok(after1.requests > before.requests, 'one manifest check reached the registry');
    const again = await run(podFile('a', 'a-again'), always);
    assert.equal(again.phase, 'Running', again.message);
    assert.deepEqual(registrySeen(), after1, 'the recorded Secret serves A without a registry request');

    const b = await run(podFile('b', 'b-always'), always);
    assert.equal(b.phase, 'Failed');
    assert.ok(
      b.events.some((e) => /Secret "team-b\/regcred-b"/.test(e.message)),
      JSON.stringify(b.events),
    );
    await stop('a-verified', 'team-a');
    await stop('a-again', 'team-a');
  });

  test("NeverVerify (dangerous: any pod on the node may run any cached image) lets tenant B run A's image without asking the registry", async () => {
    const never = nodeConfig('never', ['imagePullCredentialsVerificationPolicy: NeverVerify']);
    const before = registrySeen();
    const b = await run(podFile('b', 'b-never'), never);
    assert.equal(b.phase, 'Running', b.message);
    assert.deepEqual(registrySeen(), before);
    await stop('b-never', 'team-b');
  });

  test('NeverVerifyAllowlistedImages: an allowlisted image is never checked; anything else is', async () => {
    const listed = nodeConfig('allow-a', [
      'imagePullCredentialsVerificationPolicy: NeverVerifyAllowlistedImages',
      `preloadedImagesVerificationAllowlist: ['${host}/team-a/*']`,
    ]);
    const before = registrySeen();
    const b = await run(podFile('b', 'b-listed'), listed);
    assert.equal(b.phase, 'Running', b.message);
    assert.deepEqual(registrySeen(), before);
    await stop('b-listed', 'team-b');

    const other = nodeConfig('allow-base', [
      'imagePullCredentialsVerificationPolicy: NeverVerifyAllowlistedImages',
      `preloadedImagesVerificationAllowlist: ['${host}/base/*', '${host}/team-a/app-tools']`,
    ]);
    const refused = await run(podFile('b', 'b-unlisted'), other);
    assert.equal(refused.phase, 'Failed');
    assert.ok(refused.events.some((e) => /Secret "team-b\/regcred-b"/.test(e.message)));
  });

  test('a node config with both the old boolean and the policy is refused before anything runs', async () => {
    const both = nodeConfig('both', [
      'verifyCachedCredentials: true',
      'imagePullCredentialsVerificationPolicy: AlwaysVerify',
    ]);
    const io = bufferIO();
    const code = await cmds.run!([podFile('a', 'a-both'), '--state-dir', state, '--node-config', both], io);
    assert.equal(code, 1);
    assert.match(
      io.stderr.join('\n'),
      /sets both imagePullCredentialsVerificationPolicy and verifyCachedCredentials/,
    );
  });
});
