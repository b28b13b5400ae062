/**
 * The pod credential broker (POST /v1/credentials) with a real apiserver issuing
 * real ServiceAccount tokens (TokenRequest through the admin client, as the
 * kubelet would get them), pullkeeper reviewing them with its own least-privilege
 * identity (infra/kubernetes/rbac.yaml + pod-credentials-rbac.yaml), the real
 * registry checking the credential, and `pullkeeper-node credential-provider
 * --broker` run as the kubelet runs it.
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serve } from '@hono/node-server';
import type { KubernetesObject } from '@kubernetes/client-node';
import { PatchStrategy } from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { apiDeps, brokerFor, processMetrics } from '../../src/app/compose.js';
import { createLogger } from '../../src/app/log.js';
import { bufferIO } from '../../src/cli/io.js';
import { makeRunCommands } from '../../src/cli/pullkeeper-node-run.js';
import { parseConfig } from '../../src/config/load.js';
import type { PullkeeperConfig, PullkeeperConfigInput } from '../../src/config/schema.js';
import { createApp } from '../../src/http/app.js';
import { ImageStore } from '../../src/runner/store/store.js';
import { rbacConfigFor } from '../harness/cluster/index.js';
import { type Harness, startHarness } from '../harness/index.js';
import { buildImage, pushImage } from '../harness/registry/images.js';
import { stopPodsAndBridge } from './support/node-cleanup.js';
import { runCredentialProvider } from './support/plugin.js';

const AUDIENCE = 'pullkeeper.test';
const PASS_A = 'pod-cred-pass-a-7c19e2';
const PASS_B = 'pod-cred-pass-b-3f0a55';
const BRIDGE = 'pkr-test20';
const RBAC_EXTRA = join(import.meta.dirname, '../../infra/kubernetes/pod-credentials-rbac.yaml');

let h: Harness;
let host: string;
let base: PullkeeperConfigInput;
let config: PullkeeperConfig;
let server: ReturnType<typeof serve>;
let brokerUrl: string;
const logs: string[] = [];
const tokens: string[] = [];
let app: ReturnType<typeof createApp>;

const plugin = (args: string[], stdin: string) => runCredentialProvider(args, stdin, 60_000);

const providerRequest = (image: string, token?: string, annotations?: Record<string, string>) =>
  JSON.stringify({
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    kind: 'CredentialProviderRequest',
    image,
    ...(token ? { serviceAccountToken: token } : {}),
    ...(annotations ? { serviceAccountAnnotations: annotations } : {}),
  });

async function tokenFor(
  namespace: string,
  sa = 'default',
  o: { audience?: string; pod?: { name: string; uid: string } } = {},
): Promise<string> {
  const tr = await h.cluster!.admin.core.createNamespacedServiceAccountToken({
    namespace,
    name: sa,
    body: {
      spec: {
        audiences: [o.audience ?? AUDIENCE],
        expirationSeconds: 600,
        ...(o.pod
          ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: o.pod.name, uid: o.pod.uid } }
          : {}),
      },
    },
  });
  const t = tr.status!.token!;
  tokens.push(t);
  return t;
}

const ask = (a: ReturnType<typeof createApp>, token: string | undefined, image: string) =>
  a.request('/v1/credentials', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ image }),
  });

/** A JWT with the payload changed and the signature kept. */
function tamper(token: string, change: (p: Record<string, unknown>) => void): string {
  const [hd, pl, sig] = token.split('.');
  const p = JSON.parse(Buffer.from(pl!, 'base64url').toString('utf8')) as Record<string, unknown>;
  change(p);
  return `${hd}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.${sig}`;
}

before(async () => {
  h = await startHarness({ cluster: true, registry: { auth: 'token' } });
  host = h.registry!.info.host;
  await h.registry!.allow('a-user', PASS_A);
  const img = await buildImage({ layers: [{ files: [{ path: 'hello.txt', content: 'from team a\n' }] }] });
  await pushImage(h.registry!, 'team-a/app', 'v1', img, { username: 'a-user', password: PASS_A });
  const runnable = await buildImage({ layers: [{ busybox: true }] });
  await pushImage(h.registry!, 'team-a/runnable', 'v1', runnable, { username: 'a-user', password: PASS_A });
  const c = h.cluster!;
  await c.createNamespace('team-a-1', { tenant: 'team-a' });
  await c.createNamespace('team-b-1');
  await c.createNamespace('team-c-1');
  await c.createNamespace('loose');
  await c.createServiceAccount('team-c-1', 'builder');
  await c.admin.core.createNamespacedServiceAccount({
    namespace: 'team-a-1',
    body: { metadata: { name: 'narrow', annotations: { 'pullkeeper.dev/registries': 'reg-b' } } },
  });
  // pullkeeper's identity: what `pullkeeper rbac` prints for this config, plus the broker's extra file.
  const id = await c.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
    config: rbacConfigFor(
      [
        { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } } },
        { name: 'team-b', namespaces: { names: ['team-b-1'] } },
        {
          name: 'team-c',
          namespaces: { names: ['team-c-1'] },
          podCredentials: { serviceAccounts: ['builder'] },
        },
      ],
      { api: { serviceAccountTokens: { audience: AUDIENCE } }, statusStore: false },
    ),
  });
  for (const d of parseAllDocuments(await readFile(RBAC_EXTRA, 'utf8'))) {
    const obj = d.toJS() as KubernetesObject | null;
    if (obj)
      await c.admin.objects.patch(obj, undefined, undefined, 'test', true, PatchStrategy.ServerSideApply);
  }
  const kubeconfig = join(h.dir, 'pullkeeper.kubeconfig');
  await writeFile(kubeconfig, id.kubeConfig.exportConfig(), { mode: 0o600 });
  // RBAC takes effect asynchronously: wait until pullkeeper may create TokenReviews.
  for (let i = 0; ; i++) {
    const r = await id.client.authorization.createSelfSubjectAccessReview({
      body: {
        spec: {
          resourceAttributes: { group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' },
        },
      },
    });
    if (r.status?.allowed) break;
    if (i > 100) throw new Error('pullkeeper was never allowed to create TokenReviews');
    await new Promise((r) => setTimeout(r, 100));
  }
  base = {
    clusters: [{ name: 'test', kubeconfig }],
    registries: [
      {
        name: 'reg-a',
        kind: 'static',
        server: host,
        username: { value: 'a-user' },
        password: { value: PASS_A },
        verify: false,
      },
      {
        name: 'reg-b',
        kind: 'static',
        server: 'reg-b.example',
        username: { value: 'b-user' },
        password: { value: PASS_B },
        verify: false,
      },
    ],
    tenants: [
      { name: 'team-a', namespaces: { matchLabels: { tenant: 'team-a' } }, registries: ['reg-a'] },
      { name: 'team-b', namespaces: { names: ['team-b-1'] }, registries: ['reg-b'] },
      {
        name: 'team-c',
        namespaces: { names: ['team-c-1'] },
        registries: ['reg-a'],
        podCredentials: { serviceAccounts: ['builder'] },
      },
    ],
    api: { serviceAccountTokens: { audience: AUDIENCE, cacheSeconds: 60 } },
    statusStore: false,
  };
  config = parseConfig(base);
  app = createApp(
    apiDeps({ config: async () => config, logger: createLogger({ sink: (l) => logs.push(l) }) }),
  );
  await new Promise<void>((ok) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
      brokerUrl = `http://127.0.0.1:${info.port}`;
      ok();
    });
  });
});

after(async () => {
  if (h) await stopPodsAndBridge(join(h.dir, 'run-state'), BRIDGE);
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  if (config) brokerFor(config).close();
  await h?.stop();
  // No token and no password in any log line.
  const all = logs.join('\n');
  for (const t of tokens) assert.ok(!all.includes(t), 'a token reached the log');
  for (const p of [PASS_A, PASS_B]) assert.ok(!all.includes(p), 'a password reached the log');
});

describe('pod credential broker against a real apiserver', { timeout: 300_000 }, () => {
  test("tenant A's token: the plugin prints A's credential and the pull with it succeeds", async () => {
    const token = await tokenFor('team-a-1');
    const r = await plugin(
      ['--broker', brokerUrl, '--timeout', '20'],
      providerRequest(`${host}/team-a/app:v1`, token),
    );
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.kind, 'CredentialProviderResponse');
    assert.deepEqual(Object.keys(res.auth), [host]);
    assert.equal(res.auth[host].username, 'a-user');
    assert.equal(res.cacheKeyType, 'Registry');
    assert.ok(!r.stderr.includes(token));

    const store = new ImageStore({
      stateDir: join(h.dir, 'pod-cred-state'),
      nodeCredentials: { rootDir: join(h.dir, 'none'), cwd: h.dir, home: undefined },
    });
    const t = h.registry!.tokenRequests().length;
    const pulled = await store.ensure({
      image: `${host}/team-a/app:v1`,
      policy: 'Always',
      podSecrets: [{ auths: res.auth }],
    });
    assert.equal(pulled.pulled, true);
    assert.equal(await readFile(join(pulled.layers[0]!, 'hello.txt'), 'utf8'), 'from team a\n');
    const seen = h.registry!.tokenRequests().slice(t);
    assert.ok(seen.length > 0 && seen.every((x) => x.user === 'a-user' && x.status === 200));

    const line = logs.find((l) => l.includes('"pod credentials"') && l.includes('team-a-1'));
    assert.ok(line, 'the answer is logged');
    assert.match(line!, /"serviceAccount":"default"/);
    assert.match(
      processMetrics.prometheus(),
      /pullkeeper_pod_credentials_total\{tenant="team-a",outcome="allowed"\} [1-9]/,
    );
  });

  test("tenant B's token asking for A's image, and a namespace of no tenant: no credential", async () => {
    for (const ns of ['team-b-1', 'loose']) {
      const res = await ask(app, await tokenFor(ns), `${host}/team-a/app:v1`);
      assert.equal(res.status, 200, ns);
      const body = (await res.json()) as { auth: object; cacheDuration: string };
      assert.deepEqual(body.auth, {}, ns);
      assert.equal(body.cacheDuration, '0s');
    }
    // B gets its own registry's credential.
    const own = (await (
      await ask(app, await tokenFor('team-b-1'), 'reg-b.example/team-b/app:v1')
    ).json()) as {
      auth: Record<string, { username: string }>;
    };
    assert.equal(own.auth['reg-b.example']?.username, 'b-user');
    assert.match(
      processMetrics.prometheus(),
      /pullkeeper_pod_credentials_total\{tenant="none",outcome="denied"\}/,
    );
  });

  test('another audience, an expired token, a tampered payload, a malformed or no token: 401 and nothing', async () => {
    const good = await tokenFor('team-b-1');
    const cases: Record<string, string | undefined> = {
      'other audience': await tokenFor('team-a-1', 'default', { audience: 'someone-else' }),
      // B's real token claiming to be team-a's ServiceAccount (the signature no longer matches).
      tampered: tamper(good, (p) => {
        p.sub = 'system:serviceaccount:team-a-1:default';
        const k = p['kubernetes.io'] as { namespace: string };
        k.namespace = 'team-a-1';
      }),
      expired: await signed('team-a-1', { exp: Math.floor(Date.now() / 1000) - 120 }),
      'forged key': await signed('team-a-1', {}, true),
      malformed: 'not-a-jwt',
      none: undefined,
    };
    for (const [name, token] of Object.entries(cases)) {
      const res = await ask(app, token, `${host}/team-a/app:v1`);
      assert.equal(res.status, 401, name);
      const text = await res.text();
      assert.ok(!text.includes(PASS_A) && !text.includes('a-user'), name);
      assert.deepEqual(JSON.parse(text), {
        error: 'unauthorized',
        message: 'a valid service account token is required',
      });
    }
    // The plugin, given a rejected token, answers empty auth and says why on stderr.
    const r = await plugin(['--broker', brokerUrl], providerRequest(`${host}/team-a/app:v1`, cases.tampered));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).auth, {});
    assert.match(r.stderr, /HTTP 401/);
  });

  test('a bad body is 400; a ServiceAccount the tenant does not allow is 403', async () => {
    const token = await tokenFor('team-c-1');
    const bad = await app.request('/v1/credentials', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ image: `${host}/x:v1`, extra: 1 }),
    });
    assert.equal(bad.status, 400);
    assert.equal((await ask(app, token, 'UPPER/Case::bad')).status, 400);
    const denied = await ask(app, token, `${host}/team-a/app:v1`);
    assert.equal(denied.status, 403);
    const allowed = await ask(app, await tokenFor('team-c-1', 'builder'), `${host}/team-a/app:v1`);
    assert.equal(allowed.status, 200);
    assert.deepEqual(Object.keys(((await allowed.json()) as { auth: object }).auth), [host]);
    assert.match(
      processMetrics.prometheus(),
      /pullkeeper_pod_credentials_total\{tenant="team-c",outcome="denied"\}/,
    );
  });

  test('the registries annotation is read from the ServiceAccount; what the plugin request claims is not trusted', async () => {
    // ServiceAccount `narrow` is annotated reg-b, which team-a does not have: nothing for A's image.
    const token = await tokenFor('team-a-1', 'narrow');
    const r = await plugin(
      ['--broker', brokerUrl],
      // A node (or anyone) claiming a wider annotation changes nothing: it is not sent.
      providerRequest(`${host}/team-a/app:v1`, token, { 'pullkeeper.dev/registries': 'reg-a' }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).auth, {});
  });

  test('a pod-bound token works and names the pod in the log; deleting the pod invalidates it', async () => {
    // No cache here, so the next answer asks the apiserver again.
    const noCache = parseConfig({
      ...base,
      api: { serviceAccountTokens: { audience: AUDIENCE, cacheSeconds: 0 } },
    });
    const a2 = createApp(
      apiDeps({ config: async () => noCache, logger: createLogger({ sink: (l) => logs.push(l) }) }),
    );
    try {
      const pod = await h.cluster!.admin.core.createNamespacedPod({
        namespace: 'team-a-1',
        body: {
          metadata: { name: 'web-7d4c' },
          spec: { containers: [{ name: 'app', image: `${host}/team-a/app:v1` }] },
        },
      });
      const token = await tokenFor('team-a-1', 'default', {
        pod: { name: 'web-7d4c', uid: pod.metadata!.uid! },
      });
      const ok = await ask(a2, token, `${host}/team-a/app:v1`);
      assert.equal(ok.status, 200);
      assert.deepEqual(Object.keys(((await ok.json()) as { auth: object }).auth), [host]);
      const line = logs.find((l) => l.includes('"pod":"web-7d4c"'));
      assert.ok(line, 'the pod name is in the log');
      assert.match(line!, new RegExp(`"podUid":"${pod.metadata!.uid}"`));
      // No kubelet runs here: an unscheduled pod is removed at once (no graceful wait).
      await h.cluster!.admin.core.deleteNamespacedPod({
        namespace: 'team-a-1',
        name: 'web-7d4c',
        gracePeriodSeconds: 0,
      });
      // kube-apiserver caches a successful token authentication for 10 s (its token cache), so
      // TokenReview says "invalid" once that entry is gone: ask until it does, a minute at most.
      const deleted = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - deleted < 60_000) {
        await new Promise((r) => setTimeout(r, 1000));
        status = (await ask(a2, token, `${host}/team-a/app:v1`)).status;
      }
      assert.equal(status, 401);
      console.log(
        `# pod-bound token refused ${((Date.now() - deleted) / 1000).toFixed(1)} s after the pod was deleted`,
      );
    } finally {
      brokerFor(noCache).close();
    }
  });

  test('offline verification with the issuer keys (JWKS): the same answers without a TokenReview', async () => {
    const pub = createPublicKey(await readFile(join(h.dir, 'cluster', 'sa.pub')));
    // As the apiserver serves it at /openid/v1/jwks: kid = base64url(sha256(DER of the public key)).
    const kid = createHash('sha256')
      .update(pub.export({ format: 'der', type: 'spki' }))
      .digest('base64url');
    const jwk = { ...pub.export({ format: 'jwk' }), kid, use: 'sig', alg: 'ES256' };
    const jwks: Server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((ok) => jwks.listen(0, '127.0.0.1', ok));
    const offline = parseConfig({
      ...base,
      api: {
        serviceAccountTokens: {
          audience: AUDIENCE,
          issuers: [
            {
              cluster: 'test',
              issuer: 'https://kubernetes.default.svc',
              jwksUri: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/keys`,
            },
          ],
        },
      },
    });
    const a3 = createApp(
      apiDeps({ config: async () => offline, logger: createLogger({ sink: (l) => logs.push(l) }) }),
    );
    try {
      const good = await ask(a3, await tokenFor('team-a-1'), `${host}/team-a/app:v1`);
      assert.equal(good.status, 200);
      assert.deepEqual(Object.keys(((await good.json()) as { auth: object }).auth), [host]);
      const other = await tokenFor('team-a-1', 'default', { audience: 'someone-else' });
      assert.equal((await ask(a3, other, `${host}/team-a/app:v1`)).status, 401);
      const b = await tokenFor('team-b-1');
      const forged = tamper(b, (p) => {
        p.sub = 'system:serviceaccount:team-a-1:default';
      });
      assert.equal((await ask(a3, forged, `${host}/team-a/app:v1`)).status, 401);
    } finally {
      brokerFor(offline).close();
      await new Promise((r) => jwks.close(r));
    }
  });

  test('pullkeeper-node run: a pod with no imagePullSecrets pulls its private image through the broker (runc)', async () => {
    const c = h.cluster!;
    // The pod exists in the cluster (the token is bound to it); no kubelet runs it there.
    await c.admin.core.createNamespacedPod({
      namespace: 'team-a-1',
      body: {
        metadata: { name: 'secretless' },
        spec: { containers: [{ name: 'app', image: `${host}/team-a/runnable:v1` }] },
      },
    });
    const storeDir = join(h.dir, 'run-store');
    const store = new ImageStore({
      stateDir: storeDir,
      nodeCredentials: { rootDir: join(h.dir, 'run-kubelet') },
    });
    const cmds = makeRunCommands({ imageSource: store });
    const nodeConfig = join(h.dir, 'run-node.yaml');
    await writeFile(
      nodeConfig,
      `runtimeHandlers:\n  runc: { binary: runc }\nbridge: { name: ${BRIDGE}, subnet: 10.220.20.0/24 }\nnodeName: n\nhostIP: 192.0.2.3\n` +
        `podCredentials: { broker: "${brokerUrl}", audience: ${AUDIENCE}, timeoutSeconds: 20 }\n`,
    );
    const pod = join(h.dir, 'secretless.yaml');
    await writeFile(
      pod,
      `apiVersion: v1
kind: Pod
metadata: { name: secretless, namespace: team-a-1 }
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
    - name: app
      image: ${host}/team-a/runnable:v1
      command: [sh, -c, 'while true; do sleep 1; done']
`,
    );
    const opts = ['--state-dir', join(h.dir, 'run-state'), '--node-config', nodeConfig];
    const t = h.registry!.tokenRequests().length;
    const io = bufferIO();
    const code = await cmds.run!([pod, '--json', '--kubeconfig', c.info.kubeconfigPath, ...opts], io);
    assert.equal(code, 0, io.stderr.join('\n') + io.stdout.join('\n'));
    const res = JSON.parse(io.stdout.join('\n')) as { phase: string; events: Array<{ reason: string }> };
    assert.equal(res.phase, 'Running', JSON.stringify(res.events));
    assert.ok(!JSON.stringify(res).includes(PASS_A));
    const seen = h.registry!.tokenRequests().slice(t);
    assert.ok(
      seen.some((x) => x.user === 'a-user' && x.status === 200),
      'pulled with the broker credential',
    );
    // KEP-2535: the pull is recorded by the ServiceAccount it was answered for.
    const rec = (await store.list()).find((i) => i.ref.includes('team-a/runnable'));
    assert.deepEqual(
      rec?.credentials?.secrets.map((x) => [x.source.kind, x.source.name]),
      [['serviceaccount', 'team-a-1/default']],
    );
    assert.ok(
      logs.some((l) => l.includes('"pod":"secretless"')),
      'the broker logged the pod',
    );
    const stop = bufferIO();
    assert.equal(await cmds.stop!(['team-a-1/secretless', ...opts], stop), 0, stop.stderr.join('\n'));
  });

  test('the shipped kubelet config has the broker entry with tokenAttributes', async () => {
    const cfg = parseYaml(
      await readFile(
        join(import.meta.dirname, '../../infra/kubelet/credential-provider-config.yaml'),
        'utf8',
      ),
    ) as { providers: Array<{ name: string; args: string[]; tokenAttributes?: Record<string, unknown> }> };
    const p = cfg.providers.find((x) => x.tokenAttributes);
    assert.ok(p, 'a provider with tokenAttributes');
    assert.notEqual(p.name, cfg.providers[0]!.name, 'provider names are unique');
    assert.deepEqual(p.args.slice(0, 2), ['credential-provider', '--broker']);
    assert.equal(p.tokenAttributes!.cacheType, 'ServiceAccount');
    assert.equal(p.tokenAttributes!.requireServiceAccount, true);
    assert.equal(typeof p.tokenAttributes!.serviceAccountTokenAudience, 'string');
    // The node audience RBAC names the same audience.
    const rbac = await readFile(RBAC_EXTRA, 'utf8');
    assert.ok(rbac.includes(`resources: ["${p.tokenAttributes!.serviceAccountTokenAudience}"]`));
  });

  test('broker down: empty auth with a short cacheDuration, the reason on stderr, within the timeout', async () => {
    // Refused: nothing listens.
    const dead = createServer();
    await new Promise<void>((ok) => dead.listen(0, '127.0.0.1', ok));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const token = await tokenFor('team-a-1');
    const refused = await plugin(
      ['--broker', `http://127.0.0.1:${port}`],
      providerRequest(`${host}/team-a/app:v1`, token),
    );
    assert.equal(refused.code, 0, refused.stderr);
    assert.deepEqual(JSON.parse(refused.stdout), {
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      kind: 'CredentialProviderResponse',
      cacheKeyType: 'Registry',
      cacheDuration: '10s',
      auth: {},
    });
    assert.match(refused.stderr, /could not be asked \(ECONNREFUSED\)/);
    assert.ok(!refused.stderr.includes(token));
    // Hanging: accepts and never answers. The plugin gives up at its timeout.
    const hang = createServer(() => undefined);
    await new Promise<void>((ok) => hang.listen(0, '127.0.0.1', ok));
    try {
      const r = await plugin(
        ['--broker', `http://127.0.0.1:${(hang.address() as AddressInfo).port}`, '--timeout', '1'],
        providerRequest(`${host}/team-a/app:v1`, token),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).auth, {});
      assert.equal(JSON.parse(r.stdout).cacheDuration, '10s');
      assert.match(r.stderr, /no answer within 1s/);
    } finally {
      hang.closeAllConnections();
      await new Promise((r) => hang.close(r));
    }
    // Without a token (or without --broker) the node file answers, as before.
    const file = join(h.dir, 'node-creds.json');
    await writeFile(
      file,
      JSON.stringify({ auths: { [host]: { username: 'node-user', password: 'node-pass-1' } } }),
    );
    const viaFile = await plugin(
      ['--broker', `http://127.0.0.1:${port}`, '--credentials', file],
      providerRequest(`${host}/x:v1`),
    );
    assert.equal(JSON.parse(viaFile.stdout).auth[host].username, 'node-user');
  });
});

/**
 * A ServiceAccount token signed here: with the cluster's own key (a past `exp`) or, with
 * `foreignKey`, with a key of our own (a forgery). Claims as the apiserver issues them.
 */
async function signed(namespace: string, over: { exp?: number }, foreignKey = false): Promise<string> {
  const jose = await import('jose');
  const sa = await h.cluster!.admin.core.readNamespacedServiceAccount({ namespace, name: 'default' });
  const now = Math.floor(Date.now() / 1000);
  const key = foreignKey
    ? (await jose.generateKeyPair('ES256')).privateKey
    : createPrivateKey(await readFile(join(h.dir, 'cluster', 'sa.key')));
  const t = await new jose.SignJWT({
    aud: [AUDIENCE],
    sub: `system:serviceaccount:${namespace}:default`,
    'kubernetes.io': { namespace, serviceaccount: { name: 'default', uid: sa.metadata!.uid } },
  })
    .setProtectedHeader({
      alg: 'ES256',
      kid: createHash('sha256').update(namespace).digest('hex').slice(0, 8),
    })
    .setIssuer('https://kubernetes.default.svc')
    .setIssuedAt(now - 600)
    .setNotBefore(now - 600)
    .setExpirationTime(over.exp ?? now + 600)
    .sign(key);
  tokens.push(t);
  return t;
}
