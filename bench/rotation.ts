/**
 * Rotation at scale on the harness apiserver: N namespaces in 10 tenants (by label), each
 * with a `default` ServiceAccount. Per size, side by side in one run:
 *   pullkeeper refresh in-process: first rotation, then a no-change rerun;
 *   the same through the CLI as the packed package runs it (`node dist/pullkeeper.mjs`,
 *   what bin/pullkeeper.js loads when there is no src/; `npm run build` first), with --cli;
 *   an older pullkeeper (a `git worktree add` of an earlier commit, built too), with --old DIR;
 *   what per-namespace tools do (client-node, GET + PUT per object, sequential), with --baseline.
 * After each case (first run + rerun) the cluster is put back (its Secrets deleted, the
 * ServiceAccounts' imagePullSecrets emptied, Events deleted; not measured), so every case
 * starts from the same cluster whatever ran before it.
 * Reported per case: wall, the tool's CPU (user + system), apiserver and etcd CPU (from
 * /proc/PID/stat), requests, writes, connections, peak RSS (the CLI's own; in-process: this
 * process's high-water mark so far), cost per namespace and tool CPU per write request.
 *
 *   npm run bench -- rotation [--namespaces 1000,3000,10000] [--transports http1,http2] [--cli]
 *     [--old /tmp/pk-old] [--baseline]
 *   PULLKEEPER_BENCH_CPU_PROF=DIR adds --cpu-prof --cpu-prof-dir DIR to the CLI runs.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeTokenKubeconfig } from '../test/harness/cluster/index.js';
import { startHarness } from '../test/harness/index.js';

const argv = process.argv.slice(2);
const opt = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const SIZES = (opt('namespaces') ?? '1000').split(',').map(Number);
const OLD = opt('old') ? resolve(opt('old')!) : undefined;
const CLI = argv.includes('--cli');
const BASELINE = argv.includes('--baseline');
/** The new client's transports to compare (PULLKEEPER_KUBE_TRANSPORT per run). */
const TRANSPORTS = (opt('transports') ?? 'http2').split(',');
const TENANTS = 10;
const HERE = resolve(new URL('..', import.meta.url).pathname);
if (SIZES.some((n) => !Number.isInteger(n) || n < TENANTS))
  throw new Error(`--namespaces takes sizes of at least ${TENANTS}, comma-separated, e.g. 1000,3000`);
for (const dir of [...(CLI ? [HERE] : []), ...(CLI && OLD ? [OLD] : [])])
  if (!existsSync(join(dir, 'dist/pullkeeper.mjs')))
    throw new Error(`${dir}/dist/pullkeeper.mjs is missing: run \`npm run build\` there first`);
if (OLD && !existsSync(join(OLD, 'src/app/refresh.ts')))
  throw new Error(`--old ${OLD}: not a pullkeeper checkout (no src/app/refresh.ts)`);

const TICK = 100; // USER_HZ on Linux
const cpuOf = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) / TICK) * 1000; // utime + stime, ms
};
const peakRss = (pid: number) =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

interface Row {
  size: number;
  impl: string;
  run: string;
  wallMs: number;
  toolCpuMs: number;
  apiserverCpuMs: number;
  etcdCpuMs: number;
  requests: number;
  writes: number;
  connections: number;
  rssMb: number;
}
type Report = {
  requests: number;
  writes: number;
  connections: number;
  tenants: Array<{ namespaces: Array<{ secret: string }> }>;
};

const h = await startHarness({ cluster: true });
const rows: Row[] = [];
try {
  const pids = h.cluster!.pids;
  const max = Math.max(...SIZES);
  process.stderr.write(`creating ${max} namespaces in ${TENANTS} tenants…\n`);
  // Namespace i carries `bench-size-S: tK` for every size S > i: a size selects its first S.
  const names = Array.from({ length: max }, (_, i) => `bench-${i % TENANTS}-${i}`);
  for (let i = 0; i < names.length; i += 50)
    await Promise.all(
      names.slice(i, i + 50).map((n, j) => {
        const idx = i + j;
        const labels = Object.fromEntries(
          SIZES.filter((s) => idx < s).map((s) => [`bench-size-${s}`, `t${idx % TENANTS}`]),
        );
        return h.cluster!.createNamespace(n, labels);
      }),
    );
  const kubeconfig = join(h.dir, 'bench.kubeconfig');
  writeTokenKubeconfig(kubeconfig, h.cluster!.info, h.cluster!.info.adminToken);
  const rawConfig = (size: number, tag: string) => ({
    clusters: [{ name: 'bench', kubeconfig }],
    registries: [
      {
        name: 'r',
        kind: 'static',
        server: 'bench.registry.test',
        username: { value: 'u' },
        password: { value: 'bench-pass' },
        verify: false,
      },
    ],
    tenants: Array.from({ length: TENANTS }, (_, t) => ({
      name: `t${t}`,
      namespaces: { matchLabels: { [`bench-size-${size}`]: `t${t}` } },
      registries: ['r'],
      secretName: `pk-${tag}-t${t}`,
    })),
  });

  const check = (r: Report, size: number, want: string, what: string) => {
    const ns = r.tenants.flatMap((t) => t.namespaces);
    const bad = ns.filter((n) => n.secret !== want);
    if (ns.length !== size || bad.length)
      throw new Error(
        `${what}: ${ns.length} namespaces, ${bad.length} not ${want}: ${JSON.stringify(bad[0])}`,
      );
  };

  /** One measured call: wall, CPU of the apiserver and etcd around it. */
  async function measure(
    base: Omit<
      Row,
      | 'wallMs'
      | 'apiserverCpuMs'
      | 'etcdCpuMs'
      | 'toolCpuMs'
      | 'requests'
      | 'writes'
      | 'connections'
      | 'rssMb'
    >,
    fn: () => Promise<{ report: Report; toolCpuMs: number; rssMb: number }>,
    want: string,
  ): Promise<void> {
    const a0 = cpuOf(pids.apiserver);
    const e0 = cpuOf(pids.etcd);
    const t0 = performance.now();
    const { report, toolCpuMs, rssMb } = await fn();
    const wallMs = performance.now() - t0;
    const row: Row = {
      ...base,
      wallMs,
      toolCpuMs,
      apiserverCpuMs: cpuOf(pids.apiserver) - a0,
      etcdCpuMs: cpuOf(pids.etcd) - e0,
      requests: report.requests,
      writes: report.writes,
      connections: report.connections,
      rssMb,
    };
    check(report, base.size, want, `${base.impl} ${base.run} at ${base.size}`);
    rows.push(row);
    process.stderr.write(`${fmt(row)}\n`);
  }

  async function inProcess(root: string, transport?: string) {
    const { refresh } = (await import(
      join(root, 'src/app/refresh.ts')
    )) as typeof import('../src/app/refresh.js');
    const { CredentialCache } = (await import(
      join(root, 'src/app/mint.ts')
    )) as typeof import('../src/app/mint.js');
    const { parseConfig } = (await import(
      join(root, 'src/config/load.ts')
    )) as typeof import('../src/config/load.js');
    return async (raw: unknown) => {
      if (transport) process.env.PULLKEEPER_KUBE_TRANSPORT = transport;
      const c0 = process.cpuUsage();
      const report = (await refresh(parseConfig(raw), {
        cache: new CredentialCache(),
        nodes: false,
      })) as Report;
      const c = process.cpuUsage(c0);
      return { report, toolCpuMs: (c.user + c.system) / 1000, rssMb: process.resourceUsage().maxRSS / 1024 };
    };
  }

  /** The packed package's way: node DIR/dist/pullkeeper.mjs refresh --json, under /usr/bin/time. */
  function viaCli(root: string, transport?: string) {
    return async (raw: unknown) => {
      const cfgFile = join(h.dir, `cli-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(cfgFile, JSON.stringify(raw));
      const prof = process.env.PULLKEEPER_BENCH_CPU_PROF;
      const args = [
        '-f',
        '%U %S %M',
        process.execPath,
        ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []),
        join(root, 'dist/pullkeeper.mjs'),
        'refresh',
        '--config',
        cfgFile,
        '--json',
      ];
      const env = { ...process.env, ...(transport ? { PULLKEEPER_KUBE_TRANSPORT: transport } : {}) };
      const child = spawn('/usr/bin/time', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
      });
      const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
      if (code !== 0) throw new Error(`CLI ${root} exited ${code}: ${err.slice(-2000)}`);
      const [user, sys, rssKb] = err.trim().split('\n').at(-1)!.split(' ').map(Number);
      return {
        report: JSON.parse(out) as Report,
        toolCpuMs: (user! + sys!) * 1000,
        rssMb: rssKb! / 1024,
      };
    };
  }

  const impls: Array<{
    name: string;
    run: (raw: unknown) => Promise<{ report: Report; toolCpuMs: number; rssMb: number }>;
  }> = [];
  if (OLD) impls.push({ name: 'old in-process', run: await inProcess(OLD) });
  for (const t of TRANSPORTS) impls.push({ name: `new in-process ${t}`, run: await inProcess(HERE, t) });
  if (CLI && OLD) impls.push({ name: 'old CLI', run: viaCli(OLD) });
  // The CLI with the last transport listed (the default one): each CLI run costs a full rotation.
  const cliT = TRANSPORTS.at(-1)!;
  if (CLI) impls.push({ name: `new CLI ${cliT}`, run: viaCli(HERE, cliT) });

  /**
   * Puts the cluster back as it was before a case (not measured): its Secrets deleted, the
   * ServiceAccounts' imagePullSecrets emptied, the Events gone. Otherwise every case leaves
   * ~3 objects per namespace behind, the API server's cost per write grows with them, and
   * later cases (and larger sizes) are measured on a heavier cluster than earlier ones.
   */
  async function cleanUp(size: number, secretPrefix: string) {
    const { KubeClient } = await import('../src/kube/client.js');
    const { mapBounded } = await import('../src/util/concurrency.js');
    const info = h.cluster!.info;
    const k = new KubeClient(
      { server: info.server, ca: Buffer.from(info.caData, 'base64'), token: async () => info.adminToken },
      { concurrency: 32, timeoutMs: 60_000 },
    );
    try {
      await mapBounded(names.slice(0, size), 32, async (ns, i) => {
        const base = `/api/v1/namespaces/${ns}`;
        await k
          .request('DELETE', `${base}/secrets/${secretPrefix}-t${i % TENANTS}`, { retry: true })
          .catch((e: { status?: number }) => {
            if (e.status !== 404) throw e;
          });
        await k.request('PATCH', `${base}/serviceaccounts/default`, {
          body: { imagePullSecrets: null },
          contentType: 'application/merge-patch+json',
          retry: true,
        });
        await k.request('DELETE', `${base}/events`, { retry: true });
      });
    } finally {
      k.close();
    }
  }

  for (const size of SIZES) {
    for (const [i, impl] of impls.entries()) {
      const tag = `${size}-${i}`;
      const raw = rawConfig(size, tag);
      await measure({ size, impl: impl.name, run: 'first' }, () => impl.run(raw), 'created');
      await measure({ size, impl: impl.name, run: 'rerun' }, () => impl.run(raw), 'unchanged');
      const t0 = performance.now();
      await cleanUp(size, `pk-${tag}`);
      process.stderr.write(
        `  (cleaned up in ${((performance.now() - t0) / 1000).toFixed(1)} s, not measured)\n`,
      );
    }
    if (BASELINE) await perNamespaceBaseline(size);
  }

  /** What per-namespace tools do: sequential GET + create/replace of the Secret, GET + PUT of the ServiceAccount. */
  async function perNamespaceBaseline(size: number) {
    const core = h.cluster!.admin.core;
    const dockerconfigjson = Buffer.from(
      JSON.stringify({
        auths: { 'bench.registry.test': { auth: Buffer.from('u:bench-pass').toString('base64') } },
      }),
    ).toString('base64');
    const name = `base-${size}`;
    await measure(
      { size, impl: 'per-namespace tool', run: 'first' },
      async () => {
        const c0 = process.cpuUsage();
        let requests = 0;
        for (const ns of names.slice(0, size)) {
          let exists = true;
          try {
            requests++;
            await core.readNamespacedSecret({ namespace: ns, name });
          } catch {
            exists = false;
          }
          const body = {
            metadata: { name, namespace: ns },
            type: 'kubernetes.io/dockerconfigjson',
            data: { '.dockerconfigjson': dockerconfigjson },
          };
          requests += 3;
          if (exists) await core.replaceNamespacedSecret({ namespace: ns, name, body });
          else await core.createNamespacedSecret({ namespace: ns, body });
          const sa = await core.readNamespacedServiceAccount({ namespace: ns, name: 'default' });
          const list = sa.imagePullSecrets ?? [];
          if (!list.some((r) => r.name === name)) sa.imagePullSecrets = [...list, { name }];
          await core.replaceNamespacedServiceAccount({ namespace: ns, name: 'default', body: sa });
        }
        const c = process.cpuUsage(c0);
        const report: Report = {
          requests,
          writes: size * 2,
          connections: Number.NaN,
          tenants: [{ namespaces: names.slice(0, size).map(() => ({ secret: 'created' })) }],
        };
        return {
          report,
          toolCpuMs: (c.user + c.system) / 1000,
          rssMb: process.resourceUsage().maxRSS / 1024,
        };
      },
      'created',
    );
  }

  console.log(
    `\nrotation: ${TENANTS} tenants by label, harness kube-apiserver 1.34.2 + etcd, ${require_cores()} cores; one run per case`,
  );
  console.log(
    '| namespaces | implementation | run | wall | tool CPU | apiserver CPU | etcd CPU | requests | writes | connections | peak RSS | wall per ns | tool CPU per write |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(mdRow(r));
  for (const size of SIZES) {
    const first = (impl: string) => rows.find((r) => r.size === size && r.impl === impl && r.run === 'first');
    for (const kind of ['in-process', 'CLI']) {
      const o = first(`old ${kind}`);
      for (const n of rows.filter(
        (r) => r.size === size && r.run === 'first' && r.impl.startsWith(`new ${kind}`),
      ))
        if (o)
          console.log(
            `${size} ${n.impl}: first rotation wall new/old = ${(n.wallMs / o.wallMs).toFixed(2)}x, tool CPU new/old = ${(n.toolCpuMs / o.toolCpuMs).toFixed(2)}x`,
          );
    }
  }
  // CPU per write without the fixed costs (start-up, JIT warm-up, the reads): the first run's CPU
  // less the no-change rerun's (the same start-up and reads, no writes), per write; and the
  // marginal cost between two sizes of the same implementation.
  for (const impl of [...new Set(rows.map((r) => r.impl))])
    for (const size of SIZES) {
      const f = rows.find((r) => r.size === size && r.impl === impl && r.run === 'first');
      const z = rows.find((r) => r.size === size && r.impl === impl && r.run === 'rerun');
      if (f && z && f.writes)
        console.log(
          `${size} ${impl}: tool CPU per write beyond the rerun's (start-up + reads) = ${((f.toolCpuMs - z.toolCpuMs) / f.writes).toFixed(3)} ms`,
        );
    }
  for (const impl of [...new Set(rows.map((r) => r.impl))]) {
    const fs = SIZES.map((size) =>
      rows.find((r) => r.size === size && r.impl === impl && r.run === 'first'),
    ).filter((r) => r !== undefined);
    for (let i = 1; i < fs.length; i++)
      console.log(
        `${impl}: marginal tool CPU per write from ${fs[i - 1]!.size} to ${fs[i]!.size} = ${((fs[i]!.toolCpuMs - fs[i - 1]!.toolCpuMs) / (fs[i]!.writes - fs[i - 1]!.writes)).toFixed(3)} ms`,
      );
  }
  const lo = Math.min(...SIZES);
  const hi = Math.max(...SIZES);
  for (const impl of TRANSPORTS.flatMap((t) => [`new in-process ${t}`, `new CLI ${t}`])) {
    const a = rows.find((r) => r.size === lo && r.impl === impl && r.run === 'first');
    const b = rows.find((r) => r.size === hi && r.impl === impl && r.run === 'first');
    if (a && b && lo !== hi)
      console.log(
        `${impl}: wall per namespace at ${hi} / at ${lo} = ${(b.wallMs / hi / (a.wallMs / lo)).toFixed(2)}x`,
      );
  }
  console.log(
    `apiserver peak RSS ${peakRss(pids.apiserver).toFixed(0)} MB, etcd ${peakRss(pids.etcd).toFixed(0)} MB`,
  );
} finally {
  await h.stop();
}

function require_cores(): number {
  return (readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm) ?? []).length;
}
function fmt(r: Row): string {
  return `${r.size} ${r.impl} ${r.run}: wall ${(r.wallMs / 1000).toFixed(2)} s, tool CPU ${(r.toolCpuMs / 1000).toFixed(2)} s, apiserver ${(r.apiserverCpuMs / 1000).toFixed(2)} s, etcd ${(r.etcdCpuMs / 1000).toFixed(2)} s, ${r.requests} requests, ${r.writes} writes, ${r.connections} connections, RSS ${r.rssMb.toFixed(0)} MB`;
}
function mdRow(r: Row): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return `| ${r.size.toLocaleString('en')} | ${r.impl} | ${r.run} | ${s(r.wallMs)} | ${s(r.toolCpuMs)} | ${s(r.apiserverCpuMs)} | ${s(r.etcdCpuMs)} | ${r.requests} | ${r.writes} | ${r.connections} | ${r.rssMb.toFixed(0)} MB | ${(r.wallMs / r.size).toFixed(2)} ms | ${r.writes ? (r.toolCpuMs / r.writes).toFixed(3) : '-'} ms |`;
}
