/**
 * The Lambda functions as deployed: each bundle (serverless-esbuild, as
 * `serverless package` builds it) loaded cold in a fresh Node process, beside a
 * bundle of hono's Lambda adapter alone (the floor a handler cannot go under);
 * then the API's latency locally (GET /v1/status, POST /v1/namespaces/{ns}/ensure)
 * with 100 tenants on the harness apiserver; then, when `serverless package`
 * has built the artifacts, their cold first response (bench/functions-cold.ts:
 * require + first event + a warm one, beside `node -e 0`, for each function and
 * both cluster kinds, kubeconfig and EKS).
 *
 *   npm run bench -- functions [--rounds 7] [--requests 200] [--baseline DIR]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { apiDeps } from '../src/app/compose.js';
import { createLogger } from '../src/app/log.js';
import { parseConfig } from '../src/config/load.js';
import { createApp } from '../src/http/app.js';
import { writeTokenKubeconfig } from '../test/harness/cluster/index.js';
import { startHarness } from '../test/harness/index.js';
import { median } from './stats.js';

const arg = (n: string, d: number) =>
  process.argv.includes(`--${n}`) ? Number(process.argv[process.argv.indexOf(`--${n}`) + 1]) : d;
const ROUNDS = arg('rounds', 7);
const REQUESTS = arg('requests', 200);
const root = new URL('..', import.meta.url).pathname;
// The artifacts' zod (English messages only), so the init numbers are the deployed bundles'.
const [zodEnglishOnly] = createRequire(import.meta.url)('../scripts/esbuild-plugins.cjs');
// Inside the repository, so externals resolve from its node_modules as they do beside a deployed bundle.
const dir = mkdtempSync(join(root, '.esbuild-bench-'));

async function bundle(name: string, entry: string): Promise<string> {
  const out = join(dir, `${name}.js`);
  await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    outfile: out,
    // As the artifacts (scripts/esbuild-plugins.cjs): the heavy SDKs stay beside the bundle.
    external: [
      '@aws-sdk/*',
      'cpu-features',
      '*.node',
      '@google-cloud/artifact-registry',
      'google-auth-library',
      '@azure/identity',
      '@azure/container-registry',
      'ssh2',
    ],
    plugins: [zodEnglishOnly],
    logLevel: 'error',
    absWorkingDir: root,
    nodePaths: [join(root, 'node_modules')],
  });
  return out;
}
writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}\n');
const floorEntry = join(dir, 'floor.entry.ts');
writeFileSync(
  floorEntry,
  `import { Hono } from 'hono';\nimport { handle } from 'hono/aws-lambda';\nexport const handler = handle(new Hono().get('/healthz', (c) => c.json({ ok: true })));\n`,
);
const bundles: Record<string, string> = {
  'hono adapter only (floor)': await bundle('floor', floorEntry),
  api: await bundle('api', join(root, 'functions/api.ts')),
  refresh: await bundle('refresh', join(root, 'functions/refresh.ts')),
  worker: await bundle('worker', join(root, 'functions/worker.ts')),
};
// Init = require the bundle (what Lambda does before the first event); an ECR-only config loads no other SDK.
const init = (file: string) => {
  const r = spawnSync(
    process.execPath,
    ['-e', `const t=performance.now();require(${JSON.stringify(file)});console.log(performance.now()-t)`],
    { encoding: 'utf8', env: { ...process.env, PULLKEEPER_CONFIG: '/nonexistent' } },
  );
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
};
const times: Record<string, number[]> = Object.fromEntries(Object.keys(bundles).map((k) => [k, []]));
for (let i = 0; i < ROUNDS; i++) for (const [k, f] of Object.entries(bundles)) times[k]!.push(init(f));
const floor = median(times['hono adapter only (floor)']!);
console.log(
  `functions: cold init (require of the bundle in a fresh process; median of ${ROUNDS}), Node ${process.versions.node}`,
);
for (const [k, f] of Object.entries(bundles))
  console.log(
    `  ${k.padEnd(28)} ${`${(statSync(f).size / 1024).toFixed(0)} KB`.padStart(9)} ${`${median(times[k]!).toFixed(1)} ms`.padStart(9)}  (+${(median(times[k]!) - floor).toFixed(1)} ms over the floor)`,
  );

// API latency with 100 tenants.
const h = await startHarness({ cluster: true });
try {
  const N = 100;
  for (let i = 0; i < N; i += 20)
    await Promise.all(
      Array.from({ length: Math.min(20, N - i) }, (_, j) =>
        h.cluster!.createNamespace(`lat-${i + j}`, { tenant: `t${i + j}` }),
      ),
    );
  const kubeconfig = join(dir, 'kubeconfig');
  writeTokenKubeconfig(kubeconfig, h.cluster!.info, h.cluster!.info.adminToken);
  const TOKEN = 'bench-token-1';
  const config = parseConfig({
    clusters: [{ name: 'c', kubeconfig }],
    registries: [
      {
        name: 'r',
        kind: 'static',
        server: 'bench.test',
        username: { value: 'u' },
        password: { value: 'p-bench' },
        verify: false,
      },
    ],
    tenants: Array.from({ length: N }, (_, i) => ({
      name: `t${i}`,
      namespaces: { matchLabels: { tenant: `t${i}` } },
      registries: ['r'],
    })),
    api: {
      auth: {
        tokens: [{ name: 'b', sha256: createHash('sha256').update(TOKEN).digest('hex'), tenants: '*' }],
      },
    },
  });
  const app = createApp({
    ...apiDeps({ logger: createLogger({ level: 'error' }) }),
    config: async () => config,
  });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const first = await app.request('/v1/refresh', { method: 'POST', headers: auth });
  if (first.status !== 200) throw new Error(`refresh: ${first.status} ${await first.text()}`);
  const pct = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  const measure = async (fn: (i: number) => Response | Promise<Response>) => {
    const xs: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const t0 = performance.now();
      const r = await fn(i);
      await r.text();
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      xs.push(performance.now() - t0);
    }
    return xs;
  };
  const status = await measure(() => app.request('/v1/status', { headers: auth }));
  const ensure = await measure((i) =>
    app.request(`/v1/namespaces/lat-${i % N}/ensure`, { method: 'POST', headers: auth }),
  );
  console.log(
    `API latency in-process over the real apiserver, ${N} tenants, ${REQUESTS} sequential requests each`,
  );
  console.log(
    `  GET /v1/status                      p50 ${pct(status, 50).toFixed(1)} ms  p99 ${pct(status, 99).toFixed(1)} ms`,
  );
  console.log(
    `  POST /v1/namespaces/{ns}/ensure     p50 ${pct(ensure, 50).toFixed(1)} ms  p99 ${pct(ensure, 99).toFixed(1)} ms  (namespace already ready)`,
  );
} finally {
  await h.stop();
  rmSync(dir, { recursive: true, force: true });
}

// The cold first response of the packaged functions (the artifacts as Lambda unpacks them).
// Without artifacts, build them first (`serverless package`, offline, ~20 s).
if (!existsSync(join(root, '.serverless', 'api.zip'))) {
  const r = spawnSync(
    process.execPath,
    [join(root, 'node_modules/serverless/bin/serverless.js'), 'package'],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' },
    },
  );
  if (r.status !== 0) throw new Error(`serverless package failed (exit ${r.status})`);
}
await import('./functions-cold.js');
