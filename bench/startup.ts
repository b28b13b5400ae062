/**
 * Start-up of both CLIs, each beside `node -e 0` (the baseline: Node itself) in
 * one hyperfine run, as ratios of medians:
 *   pullkeeper --version, pullkeeper-node --version, pullkeeper refresh --help,
 *   a no-change `pullkeeper refresh` over 1,000 namespaces in 10 tenants (ECR
 *   through moto, the harness apiserver), and `pullkeeper-node credential-provider`
 *   answering from a file (what kubelet runs per image pull).
 * Two builds of the same commands: the checkout (bin/*.js through tsx) and the
 * package as users install it (`npm pack`, then `npm install --omit=dev` of the
 * tarball into a new directory: dist/, no TypeScript loader). Node's compile cache
 * (a directory of this run) is warm after hyperfine's warm-up runs, as it is on a
 * machine after the first use. Targets: --version within 3x of `node -e 0`, the
 * credential provider within 4x.
 *
 *   npm run bench -- startup [--runs 15] [--namespaces 1000]
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { motoEcrRegistry, startMoto } from '../test/harness/cloud/moto.js';
import { writeTokenKubeconfig } from '../test/harness/cluster/index.js';
import { startHarness } from '../test/harness/index.js';
import { type RunOptions, run as runCommand } from '../test/harness/proc.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const RUNS = arg('runs', 15);
const N = arg('namespaces', 1000);
const TENANTS = 10;
const REPO = join(import.meta.dirname, '..');

/** Runs a command to completion (from the repository unless told); fails loudly with its stderr. */
const run = async (cmd: string, args: string[], opts: RunOptions = {}): Promise<string> =>
  (await runCommand(cmd, args, { cwd: REPO, timeoutMs: 900_000, ...opts })).stdout;

const h = await startHarness({ cluster: true });
const moto = await startMoto({ dir: h.dir });
try {
  const dir = join(h.dir, 'startup');
  mkdirSync(dir);
  process.stderr.write('npm pack, then npm install --omit=dev of the tarball…\n');
  await run('npm', ['pack', '--silent', '--pack-destination', dir]);
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{"name":"bench-startup","private":true}\n');
  await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', join(dir, tgz)], {
    cwd: app,
  });

  process.stderr.write(`creating ${N} namespaces in ${TENANTS} tenants…\n`);
  const names = Array.from({ length: N }, (_, i) => `startup-${i % TENANTS}-${i}`);
  for (let i = 0; i < names.length; i += 50)
    await Promise.all(
      names
        .slice(i, i + 50)
        .map((n, j) => h.cluster!.createNamespace(n, { tenant: `t${(i + j) % TENANTS}` })),
    );
  const kubeconfig = join(dir, 'bench.kubeconfig');
  writeTokenKubeconfig(kubeconfig, h.cluster!.info, h.cluster!.info.adminToken);
  const config = join(dir, 'pullkeeper.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      clusters: [{ name: 'bench', kubeconfig }],
      registries: [motoEcrRegistry(moto.info)],
      tenants: Array.from({ length: TENANTS }, (_, t) => ({
        name: `t${t}`,
        namespaces: { matchLabels: { tenant: `t${t}` } },
        registries: ['ecr'],
      })),
    }),
  );
  const creds = join(dir, 'credentials.json');
  writeFileSync(
    creds,
    JSON.stringify({
      auths: { 'registry.example.com': { auth: Buffer.from('u:bench').toString('base64') } },
    }),
  );
  const request = join(dir, 'request.json');
  writeFileSync(
    request,
    JSON.stringify({
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      kind: 'CredentialProviderRequest',
      image: 'registry.example.com/team/app:1.0',
    }),
  );
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    NODE_COMPILE_CACHE: join(dir, 'compile-cache'),
  };

  const builds = {
    checkout: { pk: join(REPO, 'bin/pullkeeper.js'), node: join(REPO, 'bin/pullkeeper-node.js') },
    packed: {
      pk: join(app, 'node_modules/pullkeeper/bin/pullkeeper.js'),
      node: join(app, 'node_modules/pullkeeper/bin/pullkeeper-node.js'),
    },
  };
  // The first refresh writes every Secret; what follows changes nothing (checked for each build).
  const first = JSON.parse(
    await run('node', [builds.checkout.pk, 'refresh', '--config', config, '--json'], { env }),
  );
  process.stderr.write(`first refresh: ${first.writes} writes, ${first.requests} requests\n`);
  for (const [name, b] of Object.entries(builds)) {
    const again = JSON.parse(await run('node', [b.pk, 'refresh', '--config', config, '--json'], { env }));
    if (again.writes !== 0) throw new Error(`${name}: a no-change refresh wrote ${again.writes} objects`);
  }

  const cases = (b: { pk: string; node: string }) => ({
    '--version': `node ${b.pk} --version`,
    'pullkeeper-node --version': `node ${b.node} --version`,
    'refresh --help': `node ${b.pk} refresh --help`,
    [`refresh, no change, ${N} namespaces`]: `node ${b.pk} refresh --config ${config}`,
    'credential-provider (file)': `node ${b.node} credential-provider --credentials ${creds} < ${request}`,
  });
  const commands: Record<string, string> = { 'node -e 0': 'node -e 0' };
  for (const [name, b] of Object.entries(builds))
    for (const [c, cmd] of Object.entries(cases(b))) commands[`${name}: ${c}`] = cmd;

  const json = join(dir, 'hyperfine.json');
  process.stderr.write(`hyperfine: ${Object.keys(commands).length} commands, ${RUNS} runs each…\n`);
  await run(
    'hyperfine',
    [
      '--warmup',
      '3',
      '--runs',
      String(RUNS),
      '--export-json',
      json,
      ...Object.entries(commands).flatMap(([name, cmd]) => ['--command-name', name, cmd]),
    ],
    { env },
  );
  const results = JSON.parse(readFileSync(json, 'utf8')).results as {
    command: string;
    median: number;
    user: number;
    system: number;
  }[];
  // Wall: the median. CPU: user + system (hyperfine reports their means), steadier when other
  // processes compete for the two cores.
  const wall = Object.fromEntries(results.map((r) => [r.command, r.median * 1000]));
  const cpu = Object.fromEntries(results.map((r) => [r.command, (r.user + r.system) * 1000]));
  const base = wall['node -e 0']!;
  const baseCpu = cpu['node -e 0']!;
  console.log(
    `startup: hyperfine, ${RUNS} runs, warm compile cache; ratios to \`node -e 0\` (wall median ${base.toFixed(0)} ms, CPU ${baseCpu.toFixed(0)} ms); load average ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log(
    `  ${'command'.padEnd(36)} ${'checkout (tsx): wall'.padStart(22)} ${'CPU'.padStart(14)} ${'packed (dist/): wall'.padStart(22)} ${'CPU'.padStart(14)}`,
  );
  for (const c of Object.keys(cases(builds.checkout))) {
    const cell = (b: string) => {
      const w = wall[`${b}: ${c}`]!;
      const u = cpu[`${b}: ${c}`]!;
      return `${`${w.toFixed(0)} ms ${(w / base).toFixed(1)}x`.padStart(22)} ${`${u.toFixed(0)} ms ${(u / baseCpu).toFixed(1)}x`.padStart(14)}`;
    };
    console.log(`  ${c.padEnd(36)} ${cell('checkout')} ${cell('packed')}`);
  }
  console.log('  targets (packed): --version <= 3x, credential-provider <= 4x');
} finally {
  await moto.stop();
  await h.stop();
}
