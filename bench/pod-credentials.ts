/**
 * The pod credential broker (docs/pod-credentials.md): the latency of
 * POST /v1/credentials over loopback HTTP with a warm cache (token verified and
 * credential minted once), beside the same request when every token is reviewed
 * again (api.serviceAccountTokens.cacheSeconds: 0, one TokenReview per answer);
 * then the wall time of one plugin process per image as the kubelet runs it,
 * `pullkeeper-node credential-provider --broker` beside the same command answering
 * from the node file. Harness apiserver, pullkeeper's least-privilege identity.
 *
 *   npm run bench -- pod-credentials [--requests 500] [--rounds 15]
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { type KubernetesObject, PatchStrategy } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { apiDeps, brokerFor } from '../src/app/compose.js';
import { createLogger } from '../src/app/log.js';
import { parseConfig } from '../src/config/load.js';
import type { PullkeeperConfigInput } from '../src/config/schema.js';
import { createApp } from '../src/http/app.js';
import { startHarness } from '../test/harness/index.js';
import { median } from './stats.js';

const arg = (n: string, d: number) =>
  process.argv.includes(`--${n}`) ? Number(process.argv[process.argv.indexOf(`--${n}`) + 1]) : d;
const REQUESTS = arg('requests', 500);
const ROUNDS = arg('rounds', 15);
const root = new URL('..', import.meta.url).pathname;
const BIN = join(root, 'bin/pullkeeper-node.js');
const IMAGE = 'registry.bench.example/team-a/app:v1';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

function run(args: string[], stdin: string): Promise<{ ms: number; code: number | null; out: string }> {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [BIN, 'credential-provider', ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (c) => {
      out += c;
    });
    p.on('error', fail);
    p.on('close', (code) => ok({ ms: performance.now() - t0, code, out }));
    p.stdin.end(stdin);
  });
}

const h = await startHarness({ cluster: true });
try {
  const c = h.cluster!;
  await c.createNamespace('team-a-1');
  const id = await c.createIdentity({
    namespace: 'pullkeeper-system',
    name: 'pullkeeper',
    rbac: 'pullkeeper',
  });
  for (const d of parseAllDocuments(
    await readFile(join(root, 'infra/kubernetes/pod-credentials-rbac.yaml'), 'utf8'),
  )) {
    const obj = d.toJS() as KubernetesObject | null;
    if (obj)
      await c.admin.objects.patch(obj, undefined, undefined, 'bench', true, PatchStrategy.ServerSideApply);
  }
  for (;;) {
    const r = await id.client.authorization.createSelfSubjectAccessReview({
      body: {
        spec: {
          resourceAttributes: { group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' },
        },
      },
    });
    if (r.status?.allowed) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const kubeconfig = join(h.dir, 'pullkeeper.kubeconfig');
  await writeFile(kubeconfig, id.kubeConfig.exportConfig(), { mode: 0o600 });
  const base = (cacheSeconds: number): PullkeeperConfigInput => ({
    clusters: [{ name: 'bench', kubeconfig }],
    registries: [
      {
        name: 'reg-a',
        kind: 'static',
        server: 'registry.bench.example',
        username: { value: 'a-user' },
        password: { value: 'bench-pass-a' },
        verify: false,
      },
    ],
    tenants: [{ name: 'team-a', namespaces: { names: ['team-a-1'] }, registries: ['reg-a'] }],
    api: { serviceAccountTokens: { audience: 'pullkeeper.bench', cacheSeconds } },
    statusStore: false,
  });
  const tr = await c.admin.core.createNamespacedServiceAccountToken({
    namespace: 'team-a-1',
    name: 'default',
    body: { spec: { audiences: ['pullkeeper.bench'], expirationSeconds: 3600 } },
  });
  const token = tr.status!.token!;
  const quiet = createLogger({ sink: () => undefined });

  const servers: Array<{ close: (cb: () => void) => void }> = [];
  const start = async (cacheSeconds: number) => {
    const config = parseConfig(base(cacheSeconds));
    const app = createApp(apiDeps({ config: async () => config, logger: quiet }));
    const url = await new Promise<string>((ok) => {
      servers.push(
        serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (i) => ok(`http://127.0.0.1:${i.port}`)),
      );
    });
    return { url, config };
  };
  const warm = await start(300);
  const cold = await start(0);

  const latency = async (url: string) => {
    const ask = async () => {
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/credentials`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ image: IMAGE }),
      });
      const body = (await res.json()) as { auth?: object };
      if (res.status !== 200 || !Object.keys(body.auth ?? {}).length)
        throw new Error(`unexpected answer ${res.status}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 20; i++) await ask();
    const xs: number[] = [];
    for (let i = 0; i < REQUESTS; i++) xs.push(await ask());
    return xs;
  };
  const w = await latency(warm.url);
  const r = await latency(cold.url);
  console.log(`POST /v1/credentials, ${REQUESTS} sequential requests over loopback HTTP (after 20 warm-up)`);
  console.log(`  ${'variant'.padEnd(44)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`);
  const row = (n: string, xs: number[]) =>
    console.log(
      `  ${n.padEnd(44)} ${`${pct(xs, 50).toFixed(2)} ms`.padStart(8)} ${`${pct(xs, 99).toFixed(2)} ms`.padStart(8)} ${`${Math.max(...xs).toFixed(2)} ms`.padStart(8)}`,
    );
  row('warm cache (token verified, credential minted)', w);
  row('TokenReview every answer (cacheSeconds: 0)', r);

  // One plugin process per image, as the kubelet runs it.
  const file = join(h.dir, 'node-credentials.json');
  await writeFile(
    file,
    JSON.stringify({ auths: { 'registry.bench.example': { username: 'n', password: 'node-pass' } } }),
  );
  const req = (withToken: boolean) =>
    JSON.stringify({
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      kind: 'CredentialProviderRequest',
      image: IMAGE,
      ...(withToken ? { serviceAccountToken: token } : {}),
    });
  const viaBroker: number[] = [];
  const viaFile: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const b = await run(['--broker', warm.url], req(true));
    const f = await run(['--credentials', file], req(false));
    if (b.code !== 0 || !b.out.includes('a-user') || f.code !== 0 || !f.out.includes('"n"'))
      throw new Error('a plugin run failed');
    viaBroker.push(b.ms);
    viaFile.push(f.ms);
  }
  console.log(
    `\npullkeeper-node credential-provider, one process per image (${ROUNDS} rounds, alternating; bin/pullkeeper-node.js)`,
  );
  console.log(`  ${'variant'.padEnd(44)} ${'median'.padStart(8)} ${'min'.padStart(8)} ${'max'.padStart(8)}`);
  const row2 = (n: string, xs: number[]) =>
    console.log(
      `  ${n.padEnd(44)} ${`${median(xs).toFixed(0)} ms`.padStart(8)} ${`${Math.min(...xs).toFixed(0)} ms`.padStart(8)} ${`${Math.max(...xs).toFixed(0)} ms`.padStart(8)}`,
    );
  row2('--broker URL (token; warm broker)', viaBroker);
  row2('--credentials FILE (baseline)', viaFile);
  for (const s of servers) await new Promise<void>((ok) => s.close(() => ok()));
  brokerFor(warm.config).close();
  brokerFor(cold.config).close();
} finally {
  await h.stop();
}
