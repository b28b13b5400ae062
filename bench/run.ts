/**
 * Runs benchmarks by name: `npm run bench -- NAME [args]`; with no name, lists them.
 * Each benchmark measures a candidate beside its named baseline in one process.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const here = new URL('.', import.meta.url);
const names = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'stats.ts'].includes(f))
  .map((f) => f.slice(0, -3));
const [name, ...args] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.log(`usage: npm run bench -- NAME [args]\nbenchmarks: ${names.join(', ')}`);
  process.exit(name ? 2 : 0);
}
const res = spawnSync(process.execPath, ['--import', 'tsx', new URL(`${name}.ts`, here).pathname, ...args], {
  stdio: 'inherit',
});
process.exit(res.status ?? 1);
