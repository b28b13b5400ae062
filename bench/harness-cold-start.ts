/**
 * Benchmark: cold start of the full test harness (cluster + registry + 3 nodes
 * + cloud endpoints), binaries already cached.
 *
 * Baseline, named: "sequential" — the same four parts started one after the
 * other with the same code. Candidate: startHarness(), which starts them
 * concurrently. Both run in this one process, alternating, each into a fresh
 * directory (docs/harness.md benchmark protocol: nothing is deleted while timing;
 * `sync` and a pause between rounds). Reported: medians, min/max, the ratio
 * candidate/baseline, and the per-part breakdown. Target (issue #3): under 15 s.
 *
 * With --kubelet: the kubelet component instead (issue 24). Baseline "cluster +
 * registry" (what the kubelet needs), candidate the same plus `kubelet: {}`
 * (containerd, the sandbox image from the registry, kubelet until its Node is Ready).
 *
 *   npm run bench -- harness-cold-start [--rounds 5] [--kubelet]
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startCloud } from '../test/harness/cloud/index.js';
import { startCluster } from '../test/harness/cluster/index.js';
import { startHarness } from '../test/harness/index.js';
import { startNodes } from '../test/harness/nodes/index.js';
import { startRegistry } from '../test/harness/registry/index.js';
import { median, reportTable } from './stats.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { rounds: { type: 'string', default: '5' }, kubelet: { type: 'boolean', default: false } },
});
const rounds = Number(values.rounds);
const root = await mkdtemp(join(tmpdir(), 'pk-bench-harness-'));
const dirs: string[] = [];
const fresh = async (name: string) => {
  const d = join(root, `${name}-${dirs.length}`);
  await mkdir(d, { recursive: true });
  dirs.push(d);
  return d;
};

async function sequential(): Promise<{ total: number; parts: Record<string, number> }> {
  const base = await fresh('seq');
  const parts: Record<string, number> = {};
  const stops: Array<() => Promise<void>> = [];
  const t0 = performance.now();
  for (const [name, start] of [
    ['cluster', async () => startCluster({ dir: join(base, 'cluster') })],
    ['registry', async () => startRegistry({ dir: join(base, 'registry'), auth: 'token' })],
    ['nodes', async () => startNodes({ dir: join(base, 'nodes'), count: 3 })],
    ['cloud', async () => startCloud({ dir: join(base, 'cloud') })],
  ] as const) {
    await mkdir(join(base, name), { recursive: true });
    const t = performance.now();
    const c = await start();
    parts[name] = performance.now() - t;
    stops.push(() => c.stop());
  }
  const total = performance.now() - t0;
  await Promise.all(stops.map((s) => s()));
  return { total, parts };
}

async function parallel(): Promise<{ total: number; parts: Record<string, number> }> {
  const dir = await fresh('par');
  const t0 = performance.now();
  const h = await startHarness({ dir, cluster: true, registry: { auth: 'token' }, nodes: 3, cloud: true });
  const total = performance.now() - t0;
  const { total: _, ...parts } = h.timings;
  const cluster = h.cluster!.timings;
  await h.stop();
  return {
    total,
    parts: { ...parts, 'cluster.etcd': cluster.etcdMs, 'cluster.apiserver': cluster.apiserverMs },
  };
}

if (values.kubelet) {
  await kubeletBench();
  process.exit(0);
}

async function kubeletBench(): Promise<void> {
  const base: number[] = [];
  const cand: number[] = [];
  const parts: Record<string, number[]> = {};
  console.log(`kubelet cold start: ${rounds} rounds, alternating baseline and candidate`);
  for (let i = 0; i < rounds; i++) {
    for (const withKubelet of i % 2 === 0 ? [false, true] : [true, false]) {
      execFileSync('sync');
      await sleep(2000);
      const dir = await fresh(withKubelet ? 'kubelet' : 'base');
      const t0 = performance.now();
      const h = await startHarness({
        dir,
        cluster: true,
        registry: { auth: 'token' },
        ...(withKubelet ? { kubelet: {} } : {}),
      });
      const total = performance.now() - t0;
      if (h.kubelet) {
        for (const [k, v] of Object.entries(h.kubelet.timings)) {
          const list = parts[`kubelet.${k}`] ?? [];
          list.push(v);
          parts[`kubelet.${k}`] = list;
        }
      }
      await h.stop();
      (withKubelet ? cand : base).push(total);
      console.log(`  round ${i + 1} ${withKubelet ? 'kubelet ' : 'baseline'} ${(total / 1000).toFixed(2)} s`);
    }
  }
  console.log(
    reportTable('kubelet harness cold start', [
      { name: 'baseline: cluster + registry', samples: base },
      { name: 'cluster + registry + kubelet', samples: cand },
    ]),
  );
  console.log(`kubelet adds (medians): ${((median(cand) - median(base)) / 1000).toFixed(2)} s`);
  console.log(
    'kubelet breakdown, median ms (containerd ready; pause image in; kubelet until Node Ready; total)',
  );
  for (const [k, v] of Object.entries(parts))
    console.log(`  ${k.padEnd(22)} ${median(v).toFixed(0).padStart(6)}`);
  await rm(root, { recursive: true, force: true });
}

const results: Record<'sequential' | 'parallel', Array<{ total: number; parts: Record<string, number> }>> = {
  sequential: [],
  parallel: [],
};
console.log(`harness cold start: ${rounds} rounds, alternating baseline and candidate`);
for (let i = 0; i < rounds; i++) {
  for (const kind of i % 2 === 0
    ? (['sequential', 'parallel'] as const)
    : (['parallel', 'sequential'] as const)) {
    execFileSync('sync');
    await sleep(2000);
    const r = kind === 'sequential' ? await sequential() : await parallel();
    results[kind].push(r);
    console.log(`  round ${i + 1} ${kind.padEnd(10)} ${(r.total / 1000).toFixed(2)} s`);
  }
}
const seq = results.sequential.map((r) => r.total);
const par = results.parallel.map((r) => r.total);
console.log(
  reportTable('harness cold start (cluster + registry + 3 nodes + cloud)', [
    { name: 'baseline: sequential start', samples: seq },
    { name: 'startHarness (concurrent)', samples: par },
  ]),
);
console.log(`ratio startHarness / sequential (medians): ${(median(par) / median(seq)).toFixed(2)}`);
console.log(`target: under 15 s; median ${(median(par) / 1000).toFixed(2)} s`);
const partNames = Object.keys(results.parallel[0]?.parts ?? {});
console.log('breakdown, median ms (concurrent run: parts overlap; sequential: each alone)');
for (const p of partNames) {
  const inPar = median(results.parallel.map((r) => r.parts[p] ?? Number.NaN));
  const inSeq =
    results.sequential[0]?.parts[p] === undefined
      ? ''
      : median(results.sequential.map((r) => r.parts[p]!)).toFixed(0);
  console.log(`  ${p.padEnd(18)} concurrent ${inPar.toFixed(0).padStart(6)}   alone ${inSeq.padStart(6)}`);
}
await rm(root, { recursive: true, force: true });
