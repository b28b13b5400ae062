/**
 * Cold-load time of each provider (module + its cloud SDK), bundled as a
 * Lambda bundle is (esbuild, minified, ESM, node24), loaded in a fresh Node
 * process: what a function pays on a cold start for one registry kind.
 * Baseline, in the same run: every provider loaded eagerly (what a build that
 * imported all SDKs up front would pay whatever its config uses).
 *
 *   npm run bench -- providers-cold-load [--rounds 7]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { median } from './stats.js';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 7;
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pk-bench-cold-'));
const kinds = {
  ecr: 'ecrProvider',
  acr: 'acrProvider',
  gar: 'garProvider',
  static: 'staticProvider',
} as const;

async function bundle(name: string, source: string): Promise<string> {
  const entry = join(dir, `${name}.entry.ts`);
  writeFileSync(entry, source);
  const out = join(dir, `${name}.mjs`);
  await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outfile: out,
    external: ['cpu-features', '*.node'],
    banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
    logLevel: 'error',
    absWorkingDir: root,
    nodePaths: [join(root, 'node_modules')],
  });
  return out;
}

/** Bundles that, once imported, have loaded the provider AND its SDK (the provider imports SDKs lazily, so force it). */
const sdkOf: Record<string, string[]> = {
  ecr: ['@aws-sdk/client-ecr', '@aws-sdk/client-sts'],
  acr: ['@azure/identity'],
  gar: ['google-auth-library'],
  static: [],
};
const src = (ks: string[]) =>
  ks
    .map(
      (k) =>
        `import { ${kinds[k as keyof typeof kinds]} as p_${k} } from ${JSON.stringify(join(root, `src/providers/${k}.ts`))};\n` +
        sdkOf[k]!.map((m, i) => `import * as m_${k}_${i} from '${m}';`).join('\n') +
        `\nglobalThis.keep_${k} = [p_${k}, ${sdkOf[k]!.map((_, i) => `m_${k}_${i}`).join(', ')}];\n`,
    )
    .join('\n');

const files: Record<string, string> = {};
for (const k of Object.keys(kinds)) files[k] = await bundle(k, src([k]));
files['all (eager baseline)'] = await bundle('all', src(Object.keys(kinds)));
files['empty (floor)'] = await bundle('empty', 'globalThis.x = 1;\n');

const timeImport = (file: string): number => {
  const code = `const t=performance.now();await import(${JSON.stringify(file)});console.log(performance.now()-t)`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`import of ${file} failed: ${r.stderr}`);
  return Number(r.stdout.trim());
};

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(files).map((k) => [k, []]));
for (let i = 0; i < rounds; i++) for (const [k, f] of Object.entries(files)) samples[k]!.push(timeImport(f));

const eager = median(samples['all (eager baseline)']!);
console.log(
  `provider cold load (bundled, minified, Node ${process.versions.node}; median of ${rounds} fresh processes)`,
);
console.log(`  ${'bundle'.padEnd(24)} ${'size'.padStart(9)} ${'load'.padStart(9)}  vs eager`);
for (const [k, f] of Object.entries(files)) {
  const m = median(samples[k]!);
  console.log(
    `  ${k.padEnd(24)} ${`${Math.round(statSync(f).size / 1024)} KB`.padStart(9)} ${`${m.toFixed(1)} ms`.padStart(9)}  ${(m / eager).toFixed(2)}x`,
  );
}
