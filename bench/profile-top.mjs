#!/usr/bin/env node
/**
 * The top entries of a V8 CPU profile (`node --cpu-prof`), as the benchmarks' docs quote them:
 * self time per function (or per script with --by script), idle and "(program)" left out.
 *
 *   node bench/profile-top.mjs FILE.cpuprofile [--by function|script] [--top 15] [--inclusive]
 *
 * --inclusive: total time (self + callees) per entry, each sample counted once per entry on its stack.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1] : d);
// The first argument that is neither a flag nor the value of --by / --top.
const file = args.find((a, i) => !a.startsWith('--') && !['--by', '--top'].includes(args[i - 1] ?? ''));
if (!file) {
  console.error(
    'usage: node bench/profile-top.mjs FILE.cpuprofile [--by function|script] [--top N] [--inclusive]',
  );
  process.exit(2);
}
const by = opt('by', 'function');
const top = Number(opt('top', '15'));
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
// Sample i lasted timeDeltas[i + 1] (the delta before the next sample); the last one has none.
const self = new Map();
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i + 1] ?? 0;
  self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
}
const keyOf = (f) => {
  const script = f.url ? basename(f.url) : '';
  return by === 'script'
    ? script || f.functionName
    : `${f.functionName || '(anonymous)'}${script ? ` (${script})` : ''}`;
};
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const inclusive = args.includes('--inclusive');
const totals = new Map();
let all = 0;
for (const [id, us] of self) {
  const { callFrame: f } = byId.get(id);
  if (f.functionName === '(idle)' || f.functionName === '(program)') continue;
  all += us;
  const keys = new Set();
  for (let n = id; n !== undefined; n = inclusive ? parent.get(n) : undefined)
    keys.add(keyOf(byId.get(n).callFrame));
  for (const key of keys) totals.set(key, (totals.get(key) ?? 0) + us);
}
const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, top);
console.log(`| ${inclusive ? 'total' : 'self'} time | share | ${by} |\n|---|---|---|`);
for (const [k, us] of rows)
  console.log(`| ${(us / 1000).toFixed(1)} ms | ${((100 * us) / all).toFixed(1)}% | \`${k}\` |`);
console.log(`| ${(all / 1000).toFixed(1)} ms | 100% | all (idle and "(program)" excluded) |`);
