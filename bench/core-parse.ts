/**
 * Benchmark: reading a docker config.json the way the kubelet does
 * (`parseDockerConfig`: Go-compatible JSON, every `auth` decoded) against the
 * named baseline "JSON.parse + Buffer.from(auth, 'base64')" of the same text.
 *
 * Input: a config.json with one registry whose `auth` is as long as the size
 * allows (the shape of issue #13's 6.7 MB file), at 10 KB, 1 MiB and the read
 * limit (MAX_NODE_DOCKER_CONFIG_BYTES, 4 MiB). Each file is written once into
 * a fresh directory before anything is timed.
 *
 * - Time: in this process, warmed up, baseline and candidate alternating,
 *   median of the rounds; inputs under 4 MB are parsed in batches per round.
 * - Memory: a fresh child process per (variant, size), run with a young
 *   generation large enough (`--max-semi-space-size=256`) that no garbage is
 *   collected during one parse, reads the file, collects garbage and reports
 *   how much V8 heap plus external memory (Buffers) one parse allocated. With
 *   nothing freed in between, that is an upper bound on the parse's peak, and
 *   it is deterministic (RSS peaks on a shared VM are not).
 *
 * Target (issue #13): the candidate within 3x the baseline in time and memory.
 *
 *   npm run bench -- core-parse [--rounds 15]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_NODE_DOCKER_CONFIG_BYTES, parseDockerConfig } from '../src/core/index.js';
import { median } from './stats.js';

type Variant = 'baseline' | 'candidate';

/** The baseline: what a JavaScript reader does without Go's rules. */
function baseline(text: string): number {
  const doc = JSON.parse(text) as { auths?: Record<string, { auth?: string }> };
  let bytes = 0;
  for (const entry of Object.values(doc.auths ?? {})) {
    if (entry.auth) bytes += Buffer.from(entry.auth, 'base64').toString('utf8').length;
  }
  return bytes;
}

function candidate(text: string): number {
  let chars = 0;
  for (const entry of Object.values(parseDockerConfig(text, 'config.json').auths)) {
    chars += entry.username.length + entry.password.length;
  }
  return chars;
}

const run: Record<Variant, (text: string) => number> = { baseline, candidate };

/** A config.json of exactly `size` bytes or just under: one registry, one long auth. */
function makeConfig(size: number): string {
  const head = '{"auths":{"quay.io":{"auth":"';
  const tail = '"}}}';
  const room = size - head.length - tail.length;
  const passwordBytes = Math.floor(room / 4) * 3 - 2;
  const auth = Buffer.from(`u:${'p'.repeat(passwordBytes)}`).toString('base64');
  return head + auth + tail;
}

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { rounds: { type: 'string', default: '15' }, child: { type: 'string' } },
  allowPositionals: true,
});

if (values.child !== undefined) {
  // Child: one parse of one file, reporting the memory it allocated.
  const variant = values.child as Variant;
  const text = readFileSync(positionals[0]!, 'utf8');
  const gc = (globalThis as { gc?: () => void }).gc;
  const used = (): number => {
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  run[variant]('{"auths":{"q":{"auth":"dTo="}}}'); // load and compile the code first
  gc?.();
  gc?.();
  const before = used();
  const result = run[variant](text);
  const allocated = used() - before;
  console.log(JSON.stringify({ allocated, result }));
  process.exit(0);
}

const rounds = Number(values.rounds);
const sizes: Array<{ label: string; bytes: number }> = [
  { label: '10 KB', bytes: 10 * 1000 },
  { label: '1 MiB', bytes: 1024 * 1024 },
  {
    label: `${MAX_NODE_DOCKER_CONFIG_BYTES / (1024 * 1024)} MiB (limit)`,
    bytes: MAX_NODE_DOCKER_CONFIG_BYTES,
  },
];
const dir = await mkdtemp(join(tmpdir(), 'pk-bench-core-parse-'));
const files = new Map<number, string>();
for (const { bytes } of sizes) {
  const path = join(dir, `config-${bytes}.json`);
  await writeFile(path, makeConfig(bytes));
  files.set(bytes, path);
}
execFileSync('sync');

const here = new URL('.', import.meta.url).pathname;
function childAllocated(variant: Variant, path: string): number {
  const res = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '--max-semi-space-size=256',
      '--import',
      'tsx',
      join(here, 'core-parse.ts'),
      '--child',
      variant,
      path,
    ],
    { encoding: 'utf8' },
  );
  if (res.status !== 0) throw new Error(`child ${variant} failed: ${res.stderr}`);
  return (JSON.parse(res.stdout) as { allocated: number }).allocated;
}

const mb = (b: number): string =>
  b < 1024 * 1024 ? `${(b / 1024).toFixed(0)} KB` : `${(b / (1024 * 1024)).toFixed(1)} MB`;
const msf = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(1)} us` : `${ms.toFixed(2)} ms`);
console.log(
  `core-parse: parseDockerConfig vs JSON.parse + Buffer.from(base64); ${rounds} timed rounds per size`,
);
const rows: string[] = [];
for (const { label, bytes } of sizes) {
  const path = files.get(bytes)!;
  const text = readFileSync(path, 'utf8');
  if (baseline(text) !== candidate(text) + 1) throw new Error('baseline and candidate disagree');
  const times: Record<Variant, number[]> = { baseline: [], candidate: [] };
  // Small inputs are timed in batches (per-parse time = batch time / batch), after the same warm-up for both.
  const batch = Math.max(1, Math.floor(4_000_000 / bytes));
  for (let w = 0; w < 5 * batch; w++) for (const v of ['baseline', 'candidate'] as const) run[v](text);
  for (let i = 0; i < rounds; i++) {
    for (const v of i % 2 === 0
      ? (['baseline', 'candidate'] as const)
      : (['candidate', 'baseline'] as const)) {
      const t0 = performance.now();
      for (let k = 0; k < batch; k++) run[v](text);
      times[v].push((performance.now() - t0) / batch);
    }
  }
  const allocated: Record<Variant, number[]> = { baseline: [], candidate: [] };
  for (let i = 0; i < 3; i++) {
    for (const v of ['baseline', 'candidate'] as const) allocated[v].push(childAllocated(v, path));
  }
  const tb = median(times.baseline);
  const tc = median(times.candidate);
  const mbase = median(allocated.baseline);
  const mcand = median(allocated.candidate);
  rows.push(
    `  ${label.padEnd(14)} ${msf(tb).padStart(10)} ${msf(tc).padStart(10)} ${`${(tc / tb).toFixed(2)}x`.padStart(7)}` +
      `   ${mb(mbase).padStart(9)} ${mb(mcand).padStart(9)} ${`${(mcand / Math.max(mbase, 1)).toFixed(2)}x`.padStart(7)}`,
  );
}
console.log(
  `  ${'input'.padEnd(14)} ${'baseline'.padStart(10)} ${'candidate'.padStart(10)} ${'ratio'.padStart(7)}` +
    `   ${'base mem'.padStart(9)} ${'cand mem'.padStart(9)} ${'ratio'.padStart(7)}`,
);
for (const r of rows) console.log(r);
console.log(
  '  time: median in-process; mem: median of 3 fresh processes, heap + external allocated by one parse',
);
console.log('target (issue #13): candidate at most 3x the baseline in time and in memory');
await rm(dir, { recursive: true, force: true });
