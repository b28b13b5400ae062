/**
 * The cold first response of the deployed functions (issue 22): each artifact
 * (`serverless package`'s zip, unpacked) in a fresh Node process: require the
 * bundle, handle one event, then a second (warm) one, beside `node -e 0`.
 * Against the harness: ECR on moto, one cluster (by kubeconfig, and as EKS with
 * a token aws-iam-authenticator's way, checked by the harness webhook against
 * moto's STS), 100 namespaces already fresh (so nothing is minted or written).
 *
 *   npx serverless package && npm run bench -- functions-cold [--rounds 5] [--artifacts .serverless]
 *     [--baseline DIR]   another build's zips (e.g. main's), measured in the same run, rounds interleaved
 *   PULLKEEPER_BENCH_CPU_PROF=DIR adds --cpu-prof --cpu-prof-dir DIR to the measured children
 *   (one profile per cold process; `node bench/profile-top.mjs FILE` prints its top entries).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { motoEcrRegistry, startMoto } from '../test/harness/cloud/moto.js';
import { startEksWebhook } from '../test/harness/cluster/eks-webhook.js';
import { startCluster, writeTokenKubeconfig } from '../test/harness/cluster/index.js';
import { median } from './stats.js';

const arg = (n: string, d: string) =>
  process.argv.includes(`--${n}`) ? process.argv[process.argv.indexOf(`--${n}`) + 1]! : d;
const ROUNDS = Number(arg('rounds', '5'));
const root = new URL('..', import.meta.url).pathname;
const artifacts = resolve(root, arg('artifacts', '.serverless'));
const baseline = process.argv.includes('--baseline') ? resolve(root, arg('baseline', '')) : undefined;
const SETS: Record<string, string> = { ...(baseline ? { baseline } : {}), artifacts };
const FUNCTIONS = ['api', 'refresh'] as const;

/** Spawns (never spawnSync: the EKS webhook answers from this process) and collects stdout. */
function run(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<string> {
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, args, { env, ...(cwd ? { cwd } : {}) });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('error', fail);
    p.on('close', (code) => (code === 0 ? ok(out) : fail(new Error(`exit ${code}: ${err.slice(-2000)}`))));
  });
}

const PROF = process.env.PULLKEEPER_BENCH_CPU_PROF;
/** Profiler flags for one measured child (none unless PULLKEEPER_BENCH_CPU_PROF is set). */
const profile = (name: string) =>
  PROF
    ? [
        '--cpu-prof',
        '--cpu-prof-dir',
        resolve(PROF),
        '--cpu-prof-name',
        `${name}-${Date.now()}.cpuprofile`,
        '--cpu-prof-interval',
        '100',
      ]
    : [];

const dir = mkdtempSync(join(tmpdir(), 'pk-bench-cold-'));
/** set -> function -> the unpacked bundle. */
const unpacked: Record<string, Record<string, string>> = {};
for (const [set, from] of Object.entries(SETS))
  for (const fn of FUNCTIONS) {
    const to = join(dir, set, fn);
    mkdirSync(to, { recursive: true });
    // The artifact as Lambda unpacks it into /var/task (no package.json above it: .js is CommonJS).
    await new Promise<void>((ok, fail) =>
      spawn('unzip', ['-q', join(from, `${fn}.zip`), '-d', to], { stdio: 'inherit' })
        .on('error', fail)
        .on('close', (c) =>
          c === 0
            ? ok()
            : fail(new Error(`unzip ${from}/${fn}.zip: exit ${c}; run npx serverless package first`)),
        ),
    );
    unpacked[set] = { ...unpacked[set], [fn]: join(to, 'functions', `${fn}.js`) };
  }

// One child: require + first event (the cold first response), then a warm second event.
const CHILD = `
const t0 = performance.now();
const { handler } = require(process.env.PK_BUNDLE);
const t1 = performance.now();
const ev = JSON.parse(process.env.PK_EVENT);
const check = (r) => {
  if (r && r.statusCode !== undefined && r.statusCode !== 200) throw new Error('HTTP ' + r.statusCode + ' ' + r.body);
  if (r && r.mode && !process.env.PK_WARMUP && (r.mintCalls || r.writes)) throw new Error('not fresh: ' + r.mintCalls + ' mints, ' + r.writes + ' writes: ' + JSON.stringify({ registries: r.registries, ns: r.tenants?.[0]?.namespaces?.[0] }));
};
(async () => {
  const a = await handler(ev ?? undefined, {});
  const t2 = performance.now();
  check(a);
  const b = await handler(ev ?? undefined, {});
  const t3 = performance.now();
  check(b);
  console.log(JSON.stringify({ require: t1 - t0, first: t2 - t0, warm: t3 - t2, fresh: a.mode ? a.mintCalls + '/' + a.writes : undefined }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

const TOKEN = 'bench-cold-token-1';
const statusEvent = {
  version: '2.0',
  routeKey: '$default',
  rawPath: '/v1/status',
  rawQueryString: '',
  headers: { host: 'bench.test', authorization: `Bearer ${TOKEN}` },
  isBase64Encoded: false,
  requestContext: {
    accountId: '000000000000',
    apiId: 'api',
    domainName: 'bench.test',
    domainPrefix: 'bench',
    http: {
      method: 'GET',
      path: '/v1/status',
      protocol: 'HTTP/1.1',
      sourceIp: '127.0.0.1',
      userAgent: 'bench',
    },
    requestId: 'r1',
    routeKey: '$default',
    stage: '$default',
    time: '03/Dec/2026:00:00:00 +0000',
    timeEpoch: 0,
  },
};

const moto = await startMoto({ dir });
const hook = await startEksWebhook({
  dir,
  clusterId: 'pk-bench',
  stsEndpoint: moto.info.endpoint,
  keys: { [moto.info.accessKeyId]: moto.info.secretAccessKey },
  mapArn: (arn) =>
    arn.split(':')[4] === moto.info.accountId
      ? { username: 'eks:bench', groups: ['system:masters'] }
      : undefined,
});
const cluster = await startCluster({
  dir: join(dir, 'cluster'),
  authn: { tokenWebhook: { url: hook.url, caPem: hook.caPem } },
});
try {
  const N = 100;
  for (let i = 0; i < N; i += 20)
    await Promise.all(
      Array.from({ length: Math.min(20, N - i) }, (_, j) =>
        cluster.createNamespace(`cold-${i + j}`, { bench: 'cold' }),
      ),
    );
  const kubeconfig = writeTokenKubeconfig(join(dir, 'kubeconfig'), cluster.info, cluster.info.adminToken);
  const clusters = {
    kubeconfig: { name: 'c', kubeconfig },
    eks: {
      name: 'c',
      eks: {
        cluster: 'pk-bench',
        region: 'us-east-1',
        server: cluster.info.server,
        caData: cluster.info.caData,
        stsEndpoint: moto.info.endpoint,
      },
    },
  };
  const env = {
    ...process.env,
    // As on Lambda: the role's keys in the environment, no config-held keys.
    AWS_ACCESS_KEY_ID: moto.info.accessKeyId,
    AWS_SECRET_ACCESS_KEY: moto.info.secretAccessKey,
    AWS_REGION: 'us-east-1',
    PULLKEEPER_FANOUT_QUEUE_URL: '',
    PULLKEEPER_LOG_LEVEL: 'error',
    NODE_OPTIONS: '',
  };
  const rows: string[] = [];
  const base: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    await run(['-e', '0'], env);
    base.push(performance.now() - t);
  }
  rows.push(`  node -e 0 (process start and exit)       ${median(base).toFixed(1).padStart(7)} ms`);
  for (const [kind, c] of Object.entries(clusters)) {
    const cfg = join(dir, `pullkeeper-${kind}.json`);
    writeFileSync(
      cfg,
      JSON.stringify({
        clusters: [c],
        registries: [motoEcrRegistry(moto.info)],
        tenants: [{ name: 't', namespaces: { matchLabels: { bench: 'cold' } }, registries: ['ecr'] }],
        api: {
          auth: {
            tokens: [{ name: 'b', sha256: createHash('sha256').update(TOKEN).digest('hex'), tenants: '*' }],
          },
        },
      }),
    );
    const e = { ...env, PULLKEEPER_CONFIG: cfg };
    // Make the 100 namespaces fresh first (this run mints and writes; the measured ones must not).
    await run(['-e', CHILD], {
      ...e,
      PK_BUNDLE: unpacked.artifacts!.refresh!,
      PK_EVENT: 'null',
      PK_WARMUP: '1',
    });
    for (const fn of FUNCTIONS) {
      type Times = { require: number; first: number; warm: number };
      const xs: Record<string, Times[]> = Object.fromEntries(Object.keys(SETS).map((k) => [k, []]));
      for (let i = 0; i < ROUNDS; i++)
        for (const set of Object.keys(SETS))
          xs[set]!.push(
            JSON.parse(
              await run([...profile(`${set}-${fn}-${kind}`), '-e', CHILD], {
                ...e,
                PK_BUNDLE: unpacked[set]![fn]!,
                PK_EVENT: JSON.stringify(fn === 'api' ? statusEvent : null),
              }),
            ),
          );
      for (const set of Object.keys(SETS)) {
        const m = (k: keyof Times) =>
          median(xs[set]!.map((x) => x[k]))
            .toFixed(1)
            .padStart(7);
        rows.push(
          `  ${`${fn === 'api' ? 'api GET /v1/status' : 'refresh'} (${kind})${baseline ? ` ${set}` : ''}`.padEnd(48)} ${m('first')} ms   require ${m('require')} ms   warm ${m('warm')} ms`,
        );
      }
    }
  }
  console.log(
    `functions: cold first response (fresh process: require + first event; then a warm event; median of ${ROUNDS}), artifacts in ${artifacts}${baseline ? ` beside ${baseline}` : ''}, Node ${process.versions.node}`,
  );
  for (const r of rows) console.log(r);
} finally {
  await cluster.stop();
  await hook.stop();
  await moto.stop();
  rmSync(dir, { recursive: true, force: true });
}
