/**
 * `npm run build:node -- --outdir DIR` (scripts/build.mjs, the same build `npm pack`
 * ships), the way pullkeeper-node is installed on nodes: the directory is
 * self-contained (no node_modules beside it), the launcher runs, and what every
 * command loads up front (main-pullkeeper-node.mjs and the chunks it imports
 * statically) leaves out @kubernetes/client-node, which only `run --kubeconfig`
 * needs, and zod, which `--version` does not need (bench/pull.ts and
 * `npm run bench -- startup` measure what that saves).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { VERSION } from '../../src/version.js';

const out = mkdtempSync(join(tmpdir(), 'pk-build-node-'));
after(() => rmSync(out, { recursive: true, force: true }));

/** Files a module imports statically (`from"./x.mjs"`), followed transitively. */
function staticClosure(dir: string, file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = readFileSync(join(dir, file), 'utf8');
  for (const m of text.matchAll(/(?:^|[;\s}])import\s*(?:[^'"()]*?from\s*)?["']\.\/([^"']+\.mjs)["']/g))
    staticClosure(dir, m[1]!, seen);
  return seen;
}

test('build:node builds a self-contained launcher that runs; start-up code leaves out client-node', {
  timeout: 120_000,
}, () => {
  const dist = join(out, 'dist');
  execFileSync(process.execPath, [join(import.meta.dirname, '../../scripts/build.mjs'), '--outdir', dist], {
    stdio: 'pipe',
  });
  const launcher = join(dist, 'pullkeeper-node.mjs');
  const env = { ...process.env, NODE_COMPILE_CACHE: join(out, 'cache') };
  assert.equal(
    execFileSync(process.execPath, [launcher, 'version'], { env, encoding: 'utf8' }).trim(),
    VERSION,
  );
  const state = join(out, 'state');
  assert.equal(
    execFileSync(process.execPath, [launcher, 'images', '--json', '--state-dir', state], {
      env,
      encoding: 'utf8',
    }).trim(),
    '[]',
  );
  assert.match(
    execFileSync(process.execPath, [launcher, 'help', 'pull'], { env, encoding: 'utf8' }),
    /pullkeeper-node pull/,
  );
  // kubelet runs the credential provider through a symlink in its bin dir, without `node` in front.
  const bin = join(out, 'bin');
  mkdirSync(bin);
  symlinkSync(launcher, join(bin, 'pullkeeper-node'));
  const path = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
  assert.equal(
    execFileSync(join(bin, 'pullkeeper-node'), ['version'], {
      env: { ...env, PATH: path },
      encoding: 'utf8',
    }).trim(),
    VERSION,
  );

  // `run` starts the pod supervisor from the same directory (src/runner/pods.ts looks for it
  // beside its chunk): it is built, and it loads (without arguments it prints its usage).
  const sup = spawnSync(process.execPath, [join(dist, 'supervisor-main.mjs')], { env, encoding: 'utf8' });
  assert.equal(sup.status, 2, sup.stderr);
  assert.match(sup.stderr, /usage: supervisor-main/);

  const upFront = staticClosure(dist, 'main-pullkeeper-node.mjs');
  const all = readFileSync(join(dist, 'main-pullkeeper-node.mjs'), 'utf8');
  assert.ok(all.includes('import('), 'main-pullkeeper-node.mjs loads some code lazily');
  for (const f of upFront) {
    const text = readFileSync(join(dist, f), 'utf8');
    assert.ok(!text.includes('CoreV1Api'), `${f} is loaded up front and holds client-node`);
    assert.ok(!text.includes('zod'), `${f} is loaded up front and holds zod`);
  }
  // The lazily loaded chunks do hold it (run --kubeconfig).
  const lazy = readdirSync(dist).filter(
    (f) => f.endsWith('.mjs') && !upFront.has(f) && !/^pullkeeper(-node)?\.mjs$/.test(f),
  );
  assert.ok(lazy.some((f) => readFileSync(join(dist, f), 'utf8').includes('CoreV1Api')));
});
