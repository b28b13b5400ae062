/**
 * The real kubelet (v1.34.2, harness component `kubelet`: containerd 1.6 with a
 * private config) given what pullkeeper writes:
 *
 * 1. `pullkeeper push` writes the node config.json into the kubelet's root dir
 *    (over SSH from a harness node: the node's sshd sees the host filesystem
 *    outside its own /var/lib/kubelet tmpfs): a pod without pull Secrets pulls a
 *    private image; after a password rotation and a kubelet restart the next
 *    pull uses the new credential. Before the restart the kubelet still uses
 *    the old one: kubelet 1.34 caches the node's docker config for 5 minutes
 *    (pkg/credentialprovider/provider.go, NewDefaultDockerKeyring).
 * 2. The kubelet runs `pullkeeper-node credential-provider` from
 *    infra/kubelet/credential-provider-config.yaml's provider entry (paths
 *    adapted): a private image pulls; `cacheKeyType` Registry vs Image and a
 *    short `cacheDuration` behave as docs/node-runner.md says, counted through
 *    a wrapper that logs each invocation.
 * 3. Per-pod tokens (KEP-4412 tokenAttributes, the per-pod broker of issue 20):
 *    the kubelet runs as its own node user (system:node RBAC, NodeRestriction on)
 *    with the shipped `pullkeeper-broker` provider entry; the broker runs
 *    in-process with the identity `pullkeeper rbac` prints. Without the shipped
 *    node audience RBAC the token request is refused; with it, tenant A's pod
 *    pulls as A's registry user and tenant B's pod naming A's image gets B's
 *    credential, which the registry refuses for A's repository.
 *
 * Registry in token mode: which user logged in is read from the token server's
 * log (user names only; no password is printed).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve } from '@hono/node-server';
import { type KubernetesObject, PatchStrategy } from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { apiDeps, brokerFor } from '../../src/app/compose.js';
import { createLogger } from '../../src/app/log.js';
import { pushNodes } from '../../src/app/push.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfig } from '../../src/config/schema.js';
import { createApp } from '../../src/http/app.js';
import { rbacConfigFor } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';
import type { CredentialProviderEntry } from '../harness/kubelet/index.js';
import { buildImage, pushImage } from '../harness/registry/images.js';

const REPO_ROOT = join(import.meta.dirname, '../..');
const NODE_BIN = join(REPO_ROOT, 'bin/pullkeeper-node.js');
const secret = () => randomBytes(12).toString('hex');

/** Pushes a private busybox image (unique content) as `repo:tag` with an admin user; returns its reference. */
async function pushPrivate(h: Harness, repo: string, tag: string): Promise<string> {
  const admin = `admin-${randomBytes(3).toString('hex')}`;
  const pass = secret();
  await h.registry!.allow(admin, pass);
  const img = await buildImage({
    layers: [
      { busybox: true },
      { files: [{ path: 'id.txt', content: `${repo}:${tag}:${Math.random()}\n` }] },
    ],
  });
  const r = await pushImage(h.registry!, repo, tag, img, { username: admin, password: pass });
  await h.registry!.revoke(admin);
  return r.reference;
}

/** Users that got a token granting pull on `repo` since token-log index `from`. */
function pulledBy(h: Harness, repo: string, from: number): string[] {
  return h
    .registry!.tokenRequests()
    .slice(from)
    .filter((r) => r.status === 200 && r.user && r.granted?.some((g) => g.startsWith(`repository:${repo}:`)))
    .map((r) => r.user!);
}

const runPod = (h: Harness, ns: string, name: string, image: string) =>
  h.kubelet!.runPod(ns, { name, image, imagePullPolicy: 'Always' });

describe('kubelet reads the config.json that pullkeeper push writes into its root dir', {
  timeout: 600_000,
}, () => {
  let h: Harness;
  let ns: string;
  let image: string;
  const PASS1 = secret();
  const PASS2 = secret();
  const config = (password: string) => {
    const info = h.nodes!.info;
    return parseConfig({
      registries: [
        {
          name: 'harness',
          kind: 'static',
          server: h.registry!.info.host,
          username: { value: 'node-user' },
          password: { value: password },
          verify: false,
        },
      ],
      nodes: {
        inventory: [{ name: info.nodes[0]!.name, address: info.nodes[0]!.address }],
        registries: ['harness'],
        // The kubelet runs on the host; the node's sshd writes into the host's file system
        // everywhere but its own /var/lib/kubelet tmpfs.
        path: join(h.kubelet!.info.rootDir, 'config.json'),
        ssh: {
          privateKey: { fromFile: info.clientKey.privateKeyPath },
          knownHosts: { value: `${info.nodes[0]!.hostKeyLine}\n` },
          timeoutMs: 30_000,
        },
      },
    });
  };

  before(async () => {
    h = await startHarness({ cluster: true, registry: { auth: 'token' }, nodes: 1, kubelet: {} });
    ns = await h.cluster!.createNamespace();
    image = await pushPrivate(h, 'team/node-config', 'v1');
  });
  after(() => h?.stop());

  test('no config.json: the private image does not pull (the registry wants credentials)', async () => {
    assert.equal(await runPod(h, ns, 'before-push', image), 'ErrImagePull');
  });

  test('pushed config.json: a pod without pull Secrets pulls the private image with it', async () => {
    // The kubelet read the (absent) file in the previous test and caches that for 5 minutes:
    // restart it so this test sees the push, as an operator's after-write hook would.
    await h.registry!.allow('node-user', PASS1);
    const r = await pushNodes(config(PASS1));
    assert.deepEqual(
      r.nodes.map((n) => n.status),
      ['written'],
      JSON.stringify(r.nodes.map((n) => n.reason)),
    );
    assert.ok(!JSON.stringify(r).includes(PASS1));
    const text = await readFile(join(h.kubelet!.info.rootDir, 'config.json'), 'utf8');
    assert.ok(JSON.parse(text).auths[h.registry!.info.host], 'the push wrote the registry key');
    await h.kubelet!.restart();
    const from = h.registry!.tokenRequests().length;
    assert.equal(await runPod(h, ns, 'after-push', image), 'Running');
    assert.deepEqual([...new Set(pulledBy(h, 'team/node-config', from))], ['node-user']);
  });

  test('rotation: the old password is refused; kubelet keeps its cached file until restarted, then pulls with the new one', async () => {
    await h.registry!.allow('node-user', PASS2); // replaces PASS1: the registry refuses it from now on
    const r = await pushNodes(config(PASS2));
    assert.deepEqual(
      r.nodes.map((n) => n.status),
      ['written'],
    );
    // Within 5 minutes of its last read, kubelet 1.34 still offers the cached (old) password.
    let from = h.registry!.tokenRequests().length;
    assert.equal(await runPod(h, ns, 'cached-old', image), 'ErrImagePull');
    assert.deepEqual(pulledBy(h, 'team/node-config', from), []);
    await h.kubelet!.restart();
    from = h.registry!.tokenRequests().length;
    assert.equal(await runPod(h, ns, 'rotated', image), 'Running');
    assert.deepEqual([...new Set(pulledBy(h, 'team/node-config', from))], ['node-user']);
  });
});

describe('kubelet runs pullkeeper-node credential-provider (file mode)', { timeout: 600_000 }, () => {
  let h: Harness;
  let ns: string;
  let work: string;
  let credsFile: string;
  let invocations: string;
  let entry: CredentialProviderEntry;
  let binDir: string;
  const PASS = secret();
  let imageA: string;
  let imageB: string;
  const repoOf = (image: string) => image.replace(/:v1$/, '');

  /**
   * The plugin's invocations so far: the `image` of each request. kubelet sends the repository
   * it looks credentials up for (`host/team/app`: no tag, no digest), not the pod's image string.
   */
  const calls = async () =>
    (await readFile(invocations, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { image: string }).image);

  /** What pullkeeper's node push writes for the plugin: a docker config.json plus the expiry map. */
  const writeCreds = async (keys: string[], expiresInMs: number) => {
    const expires = new Date(Date.now() + expiresInMs).toISOString();
    await writeFile(
      credsFile,
      JSON.stringify({
        auths: Object.fromEntries(keys.map((k) => [k, { username: 'plugin-user', password: PASS }])),
        pullkeeperExpiry: Object.fromEntries(keys.map((k) => [k, expires])),
      }),
      { mode: 0o600 },
    );
  };
  /** A kubelet restart empties its plugin cache. */
  const restartKubelet = () => h.kubelet!.restart({ credentialProviders: { binDir, providers: [entry] } });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'pullkeeper-kubelet-plugin-'));
    binDir = join(work, 'bin');
    await mkdir(binDir, { recursive: true });
    credsFile = join(work, 'credentials.json');
    invocations = join(work, 'invocations.log');
    // The wrapper kubelet execs: logs the request (an image name, no secret), then runs the real plugin.
    const wrapper = join(binDir, 'pullkeeper-node');
    await writeFile(
      wrapper,
      `#!/bin/sh\nreq=$(cat)\nprintf '%s\\n' "$req" >> '${invocations}'\nprintf '%s' "$req" | exec '${process.execPath}' '${NODE_BIN}' "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    // The shipped provider entry with the credentials path adapted; matchImages is left to the
    // harness, which sets it to its registry's host.
    const shipped = parseYaml(
      await readFile(join(REPO_ROOT, 'infra/kubelet/credential-provider-config.yaml'), 'utf8'),
    ) as { providers: Required<CredentialProviderEntry>[] };
    const { matchImages: _shipped, ...p } = shipped.providers.find((x) => x.name === 'pullkeeper-node')!;
    const args = [...p.args];
    args[args.indexOf('--credentials') + 1] = credsFile;
    entry = { ...p, args };
    h = await startHarness({
      cluster: true,
      registry: { auth: 'token' },
      kubelet: { credentialProviders: { binDir, providers: [entry] } },
    });
    await h.registry!.allow('plugin-user', PASS);
    await writeCreds([h.registry!.info.host], 2 * 3600_000);
    ns = await h.cluster!.createNamespace();
    imageA = await pushPrivate(h, 'team/app', 'v1');
    imageB = await pushPrivate(h, 'team/other', 'v1');
  });
  after(async () => {
    await h?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('a private image pulls through the plugin; a Registry-keyed answer is reused for another repository', async () => {
    const before = (await calls()).length;
    const from = h.registry!.tokenRequests().length;
    assert.equal(await runPod(h, ns, 'plugin-a1', imageA), 'Running');
    assert.deepEqual([...new Set(pulledBy(h, 'team/app', from))], ['plugin-user']);
    assert.equal(await runPod(h, ns, 'plugin-a2', imageA), 'Running');
    assert.equal(await runPod(h, ns, 'plugin-b1', imageB), 'Running');
    // One answer (cacheKeyType Registry, cacheDuration ~2h) served all three pulls.
    assert.deepEqual((await calls()).slice(before), [repoOf(imageA)]);
  });

  test('an Image-keyed answer (a key with a path covers the registry) is asked again for another image', async () => {
    const host = h.registry!.info.host;
    await writeCreds([host, `${host}/team/special`], 2 * 3600_000);
    await restartKubelet();
    const before = (await calls()).length;
    assert.equal(await runPod(h, ns, 'image-a1', imageA), 'Running');
    assert.equal(await runPod(h, ns, 'image-a2', imageA), 'Running');
    assert.equal(await runPod(h, ns, 'image-b1', imageB), 'Running');
    assert.deepEqual((await calls()).slice(before), [repoOf(imageA), repoOf(imageB)]);
  });

  test('a short cacheDuration is re-asked once it has passed', async () => {
    const host = h.registry!.info.host;
    const ttlMs = 45_000;
    await writeCreds([host], ttlMs);
    const expiresAt = Date.now() + ttlMs;
    await restartKubelet();
    const before = (await calls()).length;
    assert.equal(await runPod(h, ns, 'short-1', imageA), 'Running');
    const afterFirst = (await calls()).length;
    assert.equal(afterFirst - before, 1);
    if (Date.now() < expiresAt - 10_000) {
      // Still within the answer's cacheDuration: served from kubelet's cache.
      assert.equal(await runPod(h, ns, 'short-2', imageA), 'Running');
      if (Date.now() < expiresAt - 1_000) assert.equal((await calls()).length, afterFirst);
    }
    // Past the expiry: kubelet asks the plugin again.
    await sleep(Math.max(0, expiresAt - Date.now() + 1_000));
    await writeCreds([host], 2 * 3600_000);
    const beforeThird = (await calls()).length;
    assert.equal(await runPod(h, ns, 'short-3', imageA), 'Running');
    assert.equal((await calls()).length - beforeThird, 1);
  });
});

describe('per-pod credentials: the kubelet passes the pod token to pullkeeper-node credential-provider --broker', {
  timeout: 600_000,
}, () => {
  let h: Harness;
  let work: string;
  let calls: string;
  let server: ReturnType<typeof serve>;
  let config: PullkeeperConfig | undefined;
  let audience: string;
  let image: string;
  const logs: string[] = [];
  const PASS_A = secret();
  const PASS_B = secret();
  const registries = ['reg-a', 'reg-b'];

  /** The plugin's requests as the wrapper logged them (the token replaced by `<redacted>`). */
  const pluginCalls = async () =>
    (await readFile(calls, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { image: string; serviceAccountToken?: string });
  /** Token-server answers to `user` for repository `repo`: what was granted. */
  const grants = (user: string, repo: string, from: number) =>
    h
      .registry!.tokenRequests()
      .slice(from)
      .filter((r) => r.user === user && r.scopes.some((s) => s.startsWith(`repository:${repo}:`)));
  const podFor = (ns: string, name: string) =>
    h.kubelet!.runPod(ns, { name, image, imagePullPolicy: 'Always', hostNetwork: true });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'pullkeeper-kubelet-broker-'));
    const binDir = join(work, 'bin');
    await mkdir(binDir, { recursive: true });
    calls = join(work, 'calls.log');
    // The broker, in-process; its config is read per request (set once the cluster is up).
    const app = createApp(
      apiDeps({
        config: async () => {
          if (!config) throw new Error('the broker was asked before the test configured it');
          return config;
        },
        logger: createLogger({ sink: (l) => logs.push(l) }),
      }),
    );
    const brokerUrl = await new Promise<string>((ok) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (i) =>
        ok(`http://127.0.0.1:${i.port}`),
      );
    });
    // The shipped broker entry: its name, tokenAttributes and timeout; the URL is ours (plain
    // http on loopback, so no --ca-file). matchImages is left to the harness (its registry host).
    const shipped = parseYaml(
      await readFile(join(REPO_ROOT, 'infra/kubelet/credential-provider-config.yaml'), 'utf8'),
    ) as { providers: Required<CredentialProviderEntry>[] };
    const { matchImages: _m, ...p } = shipped.providers.find((x) => x.name === 'pullkeeper-broker')!;
    audience = p.tokenAttributes.serviceAccountTokenAudience;
    const args = ['credential-provider', '--broker', brokerUrl, '--timeout', p.args.at(-1)!];
    // The wrapper logs each request with the token redacted, then runs the real plugin.
    await writeFile(
      join(binDir, p.name),
      `#!/bin/sh\nreq=$(cat)\nprintf '%s\\n' "$req" | sed 's/"serviceAccountToken":"[^"]*"/"serviceAccountToken":"<redacted>"/' >> '${calls}'\n` +
        `printf '%s' "$req" | exec '${process.execPath}' '${NODE_BIN}' "$@"\n`,
    );
    await chmod(join(binDir, p.name), 0o755);
    h = await startHarness({
      cluster: true,
      registry: { auth: 'token' },
      kubelet: { identity: 'node', credentialProviders: { binDir, providers: [{ ...p, args }] } },
    });
    const reg = h.registry!;
    const host = reg.info.host;
    image = await pushPrivate(h, 'team-a/app', 'v1');
    // Per-user repository limits: each tenant's registry user sees only its own repositories.
    await reg.allow('a-user', PASS_A);
    await reg.allow('b-user', PASS_B);
    reg.limitRepositories('a-user', ['team-a/']);
    reg.limitRepositories('b-user', ['team-b/']);
    const c = h.cluster!;
    await c.createNamespace('tenant-a');
    await c.createNamespace('tenant-b');
    const tenants = [
      { name: 'a', namespaces: { names: ['tenant-a'] }, registries: ['reg-a'] },
      { name: 'b', namespaces: { names: ['tenant-b'] }, registries: ['reg-b'] },
    ];
    const sat = { audience };
    // pullkeeper's identity: exactly what `pullkeeper rbac` prints for this config.
    const id = await c.createIdentity({
      namespace: 'pullkeeper-system',
      name: 'pullkeeper',
      rbac: 'pullkeeper',
      config: rbacConfigFor(tenants, { api: { serviceAccountTokens: sat }, statusStore: false }),
    });
    const kubeconfig = join(work, 'pullkeeper.kubeconfig');
    await writeFile(kubeconfig, id.kubeConfig.exportConfig(), { mode: 0o600 });
    await untilAllowed(id.client, {
      group: 'authentication.k8s.io',
      resource: 'tokenreviews',
      verb: 'create',
    });
    const user = (name: string, u: string, pass: string) => ({
      name,
      kind: 'static' as const,
      server: host,
      username: { value: u },
      password: { value: pass },
      verify: false,
    });
    config = parseConfig({
      clusters: [{ name: 'test', kubeconfig }],
      registries: [user(registries[0]!, 'a-user', PASS_A), user(registries[1]!, 'b-user', PASS_B)],
      tenants,
      api: { serviceAccountTokens: { ...sat, cacheSeconds: 60 } },
      statusStore: false,
    });
  });
  after(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    if (config) brokerFor(config).close();
    await h?.stop();
    await rm(work, { recursive: true, force: true });
    const all = logs.join('\n');
    for (const p of [PASS_A, PASS_B]) assert.ok(!all.includes(p), 'a password reached the broker log');
    assert.doesNotMatch(all, /eyJ[\w-]+\.[\w-]+\./, 'a token reached the broker log');
  });

  test('NodeRestriction: without the audience grant the node may not request the token; nothing is pulled', async () => {
    const before = (await pluginCalls()).length;
    assert.equal(await podFor('tenant-a', 'no-grant'), 'ErrImagePull');
    assert.equal((await pluginCalls()).length, before, 'the plugin was not run without a token');
    // NodeRestriction's answer, as the kubelet logs it (kubelet 1.34: "audience ... not found in pod
    // spec volume, system:node:NAME is not authorized to request tokens for this audience").
    const log = await readFile(h.kubelet!.info.logFiles.kubelet, 'utf8');
    const refusal = new RegExp(
      `audience \\\\?"${audience.replace(/\./g, '\\.')}\\\\?" not found in pod spec volume[^"\\\\\\n]*`,
    ).exec(log);
    assert.ok(refusal, 'the kubelet logged the refused token request');
    console.log(`# kubelet: ${refusal[0]}`);
  });

  test("with the shipped node audience RBAC: tenant A's pod pulls as A's registry user through the pod token", async () => {
    const c = h.cluster!;
    // infra/kubernetes/pod-credentials-rbac.yaml as shipped (its audience is the shipped one).
    for (const d of parseAllDocuments(
      await readFile(join(REPO_ROOT, 'infra/kubernetes/pod-credentials-rbac.yaml'), 'utf8'),
    )) {
      const obj = d.toJS() as KubernetesObject | null;
      if (obj)
        await c.admin.objects.patch(obj, undefined, undefined, 'test', true, PatchStrategy.ServerSideApply);
    }
    await untilAllowed(
      c.admin,
      { resource: audience, verb: 'request-serviceaccounts-token-audience' },
      {
        user: `system:node:${h.kubelet!.info.nodeName}`,
        groups: ['system:nodes', 'system:authenticated'],
      },
    );
    // No node file could have answered: the kubelet's root dir has no config.json.
    assert.equal(existsSync(join(h.kubelet!.info.rootDir, 'config.json')), false);
    const before = (await pluginCalls()).length;
    const from = h.registry!.tokenRequests().length;
    assert.equal(await podFor('tenant-a', 'pod-a'), 'Running');
    assert.deepEqual([...new Set(pulledBy(h, 'team-a/app', from))], ['a-user']);
    const asked = (await pluginCalls()).slice(before);
    assert.ok(asked.length >= 1);
    assert.ok(
      asked.every((r) => r.serviceAccountToken === '<redacted>'),
      'the kubelet passed a token',
    );
    assert.doesNotMatch(await readFile(calls, 'utf8'), /eyJ[\w-]+\./, 'the call log holds no token');
    const line = logs.find((l) => l.includes('"pod credentials"') && l.includes('"pod":"pod-a"'));
    assert.ok(line, 'the broker answered for the pod the token is bound to');
    assert.match(line!, /"namespace":"tenant-a"/);
  });

  test("tenant B's pod naming A's image gets B's credential, which the registry refuses for A's repository", async () => {
    const from = h.registry!.tokenRequests().length;
    const before = (await pluginCalls()).length;
    assert.equal(await podFor('tenant-b', 'pod-b'), 'ErrImagePull');
    assert.ok((await pluginCalls()).slice(before).some((r) => r.serviceAccountToken === '<redacted>'));
    assert.deepEqual(pulledBy(h, 'team-a/app', from), [], 'nobody was granted A’s repository');
    const asB = grants('b-user', 'team-a/app', from);
    assert.ok(asB.length > 0, 'the kubelet tried with B’s credential');
    assert.ok(asB.every((r) => !r.granted?.some((g) => g.startsWith('repository:team-a/'))));
    assert.equal(
      grants('a-user', 'team-a/app', from).length,
      0,
      'A’s credential was not offered for B’s pod',
    );
    const line = logs.find((l) => l.includes('"pod credentials"') && l.includes('"pod":"pod-b"'));
    assert.match(line ?? '', /"tenants":\["b"\]/);
  });
});

/** Waits until RBAC (applied asynchronously) allows the action, for `as` or the client's own user. */
async function untilAllowed(
  client: NonNullable<Harness['cluster']>['admin'],
  attrs: { group?: string; resource: string; verb: string },
  as?: { user: string; groups: string[] },
): Promise<void> {
  for (let i = 0; ; i++) {
    const r = as
      ? await client.authorization.createSubjectAccessReview({
          body: { spec: { user: as.user, groups: as.groups, resourceAttributes: attrs } },
        })
      : await client.authorization.createSelfSubjectAccessReview({
          body: { spec: { resourceAttributes: attrs } },
        });
    if (r.status?.allowed) return;
    if (i > 150) throw new Error(`RBAC never allowed ${attrs.verb} ${attrs.resource}`);
    await sleep(100);
  }
}
