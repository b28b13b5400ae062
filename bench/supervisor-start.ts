/**
 * Start-up of the detached pod supervisor, which `pullkeeper-node run` spawns per pod when no
 * daemon runs: the process loading all its code (without arguments it then prints its usage
 * and exits 2), beside `node -e 0` (the baseline: Node itself), in one hyperfine run:
 *   - checkout: `node --import tsx src/runner/supervisor-main.ts` (what a checkout starts)
 *   - built, no cache: `node DIR/supervisor-main.mjs` of `scripts/build.mjs --outdir DIR`,
 *     NODE_DISABLE_COMPILE_CACHE=1
 *   - built, warm cache: the same with NODE_COMPILE_CACHE (what `run` from a build passes on:
 *     the launcher's cache under the state dir), warm after hyperfine's warm-up runs
 *
 *   npm run bench -- supervisor-start [--runs 15]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { runs: { type: 'string', default: '15' } },
});
const REPO = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'pk-bench-sup-'));
try {
  const dist = join(dir, 'dist');
  const b = spawnSync(process.execPath, [join(REPO, 'scripts/build.mjs'), '--outdir', dist], {
    encoding: 'utf8',
  });
  if (b.status !== 0) throw new Error(`build failed: ${b.stderr}`);
  const cache = join(dir, 'cache');
  mkdirSync(cache, { mode: 0o700 });
  const node = process.execPath;
  const commands: Record<string, string> = {
    'node -e 0': `${node} -e 0`,
    'checkout (tsx)': `${node} --import tsx ${join(REPO, 'src/runner/supervisor-main.ts')}`,
    'built, no cache': `NODE_DISABLE_COMPILE_CACHE=1 ${node} ${join(dist, 'supervisor-main.mjs')}`,
    'built, warm cache': `NODE_COMPILE_CACHE=${cache} ${node} ${join(dist, 'supervisor-main.mjs')}`,
  };
  // hyperfine must ignore the exit code 2 of the usage message: check each command's output first.
  for (const [name, cmd] of Object.entries(commands)) {
    if (name === 'node -e 0') continue;
    const r = spawnSync('sh', ['-c', cmd], { cwd: REPO, encoding: 'utf8' });
    if (r.status !== 2 || !r.stderr.includes('usage: supervisor-main'))
      throw new Error(`${name}: expected the usage message, got ${r.status}: ${r.stderr}`);
  }
  const json = join(dir, 'hyperfine.json');
  const h = spawnSync(
    'hyperfine',
    [
      '--ignore-failure',
      '--warmup',
      '3',
      '--runs',
      values.runs,
      '--export-json',
      json,
      ...Object.entries(commands).flatMap(([name, cmd]) => ['--command-name', name, cmd]),
    ],
    { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (h.status !== 0) throw new Error('hyperfine failed (is it installed? Debian: hyperfine)');
  const results = JSON.parse(readFileSync(json, 'utf8')).results as Array<{
    command: string;
    median: number;
    min: number;
    max: number;
    user: number;
    system: number;
  }>;
  // Wall: the median. CPU: user + system (hyperfine's means), steadier when other processes
  // compete for the cores.
  const base = results.find((r) => r.command === 'node -e 0')!;
  const baseCpu = base.user + base.system;
  console.log(`supervisor-start: hyperfine, ${values.runs} runs; load average ${loadavg()[0]!.toFixed(1)}`);
  for (const r of results) {
    const cpu = r.user + r.system;
    console.log(
      `  ${r.command.padEnd(20)} wall median ${(r.median * 1000).toFixed(0).padStart(5)} ms (${(r.min * 1000).toFixed(0)}-${(r.max * 1000).toFixed(0)}) ${(r.median / base.median).toFixed(1)}x   CPU ${(cpu * 1000).toFixed(0).padStart(5)} ms ${(cpu / baseCpu).toFixed(1)}x`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
