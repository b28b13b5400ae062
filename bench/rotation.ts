/**
 * 1,000 namespaces in 10 tenants on the harness apiserver, each with a
 * `default` ServiceAccount. Side by side in one run:
 *   pullkeeper refresh (first rotation, then a no-change rerun)
 *   baseline: what existing tools do, per namespace and sequentially (GET the
 *   Secret, create or update it, GET and update the ServiceAccount), with
 *   @kubernetes/client-node 2.0.1; then its rerun (the same requests again).
 * Reported: medians, ratios, requests and writes per namespace, connections,
 * peak RSS of the apiserver and of this process.
 *
 *   npm run bench -- rotation [--namespaces 1000] [--rounds 3]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CredentialCache } from '../src/app/mint.js';
import { refresh } from '../src/app/refresh.js';
import { parseConfig } from '../src/config/load.js';
import { writeTokenKubeconfig } from '../test/harness/cluster/index.js';
import { startHarness } from '../test/harness/index.js';
import { median } from './stats.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('namespaces', 1000);
const ROUNDS = arg('rounds', 3);
const TENANTS = 10;

const h = await startHarness({ cluster: true });
const peakRss = (pid: number) =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
try {
  const core = h.cluster!.admin.core;
  process.stderr.write(`creating ${N} namespaces in ${TENANTS} tenants…\n`);
  const names = Array.from({ length: N }, (_, i) => `bench-${i % TENANTS}-${i}`);
  for (let i = 0; i < names.length; i += 50)
    await Promise.all(
      names
        .slice(i, i + 50)
        .map((n, j) => h.cluster!.createNamespace(n, { tenant: `t${(i + j) % TENANTS}` })),
    );
  const kubeconfig = join(h.dir, 'bench.kubeconfig');
  writeTokenKubeconfig(kubeconfig, h.cluster!.info, h.cluster!.info.adminToken);
  const cfg = (round: number) =>
    parseConfig({
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
        namespaces: { matchLabels: { tenant: `t${t}` } },
        registries: ['r'],
        secretName: `pk-r${round}-t${t}`,
      })),
    });
  const dockerconfigjson = Buffer.from(
    JSON.stringify({
      auths: { 'bench.registry.test': { auth: Buffer.from('u:bench-pass').toString('base64') } },
    }),
  ).toString('base64');

  async function baseline(round: number): Promise<{ ms: number; requests: number }> {
    let requests = 0;
    const t0 = performance.now();
    for (const ns of names) {
      const name = `base-r${round}`;
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
      requests++;
      if (exists) await core.replaceNamespacedSecret({ namespace: ns, name, body });
      else await core.createNamespacedSecret({ namespace: ns, body });
      requests++;
      const sa = await core.readNamespacedServiceAccount({ namespace: ns, name: 'default' });
      const list = sa.imagePullSecrets ?? [];
      if (!list.some((r) => r.name === name)) sa.imagePullSecrets = [...list, { name }];
      requests++;
      await core.replaceNamespacedServiceAccount({ namespace: ns, name: 'default', body: sa });
    }
    return { ms: performance.now() - t0, requests };
  }

  const rows: Record<string, number[]> = { pkFirst: [], pkRerun: [], baseFirst: [], baseRerun: [] };
  let pkStats = { requests: 0, writes: 0, connections: 0, rerunRequests: 0, rerunWrites: 0 };
  let baseRequests = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const c = cfg(round);
    let t0 = performance.now();
    const first = await refresh(c, { cache: new CredentialCache(), nodes: false });
    rows.pkFirst!.push(performance.now() - t0);
    const failed = first.tenants.flatMap((t) => t.namespaces).filter((n) => n.secret !== 'created');
    if (failed.length)
      throw new Error(
        `pullkeeper first rotation: ${failed.length} namespaces not created: ${JSON.stringify(failed[0])}`,
      );
    t0 = performance.now();
    const rerun = await refresh(c, { cache: new CredentialCache(), nodes: false });
    rows.pkRerun!.push(performance.now() - t0);
    pkStats = {
      requests: first.requests,
      writes: first.writes,
      connections: first.connections,
      rerunRequests: rerun.requests,
      rerunWrites: rerun.writes,
    };
    const b1 = await baseline(round);
    rows.baseFirst!.push(b1.ms);
    const b2 = await baseline(round);
    rows.baseRerun!.push(b2.ms);
    baseRequests = b1.requests;
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  const m = (k: string) => median(rows[k]!);
  const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `rotation: ${N} namespaces, ${TENANTS} tenants, harness kube-apiserver 1.34.2; median of ${ROUNDS} rounds`,
  );
  console.log(
    `  pullkeeper first rotation   ${f(m('pkFirst'))}   ${pkStats.requests} requests (${(pkStats.requests / N).toFixed(2)}/ns), ${pkStats.writes} writes (Secret + ServiceAccount + Event per ns), ${pkStats.connections} connections`,
  );
  console.log(
    `  baseline first rotation     ${f(m('baseFirst'))}   ${baseRequests} requests (${(baseRequests / N).toFixed(2)}/ns)`,
  );
  console.log(
    `  ratio baseline/pullkeeper   ${(m('baseFirst') / m('pkFirst')).toFixed(1)}x (target >= 6x, pullkeeper < 1.5 s)`,
  );
  console.log(
    `  pullkeeper no-change rerun  ${f(m('pkRerun'))}   ${pkStats.rerunRequests} requests, ${pkStats.rerunWrites} writes`,
  );
  console.log(
    `  baseline rerun              ${f(m('baseRerun'))}   ${baseRequests} requests (every PUT sent again)`,
  );
  console.log(
    `  ratio baseline/pullkeeper   ${(m('baseRerun') / m('pkRerun')).toFixed(1)}x (target pullkeeper < 1 s, 0 writes)`,
  );
  console.log(
    `  peak RSS: apiserver ${peakRss(h.cluster!.pids.apiserver).toFixed(0)} MB, this process ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
} finally {
  await h.stop();
}
