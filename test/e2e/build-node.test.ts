/**
 * `npm run build:node -- --outdir DIR` (scripts/build.mjs, the same build `npm pack`
 * ships), the way pullkeeper-node is installed on nodes: the directory is
 * self-contained (no node_modules beside it), the launcher runs, and what every
 * command loads up front (main-pullkeeper-node.mjs and the chunks it imports
 * statically) leaves out @kubernetes/client-node, which only `run --kubeconfig`
 * needs, and zod, which `--version` does not need (bench/pull.ts and
 * `npm run bench -- startup` measure what that saves). The launcher's compile
 * cache never lives in the OS temp dir.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
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

/** `npm run build:node` into `<out>/dist`, once for the file. */
function built(): string {
  const dist = join(out, 'dist');
  if (!existsSync(join(dist, 'pullkeeper-node.mjs')))
    execFileSync(process.execPath, [join(import.meta.dirname, '../../scripts/build.mjs'), '--outdir', dist], {
      stdio: 'pipe',
    });
  return dist;
}

test('build:node builds a self-contained launcher that runs; start-up code leaves out client-node', {
  timeout: 120_000,
}, () => {
  const dist = built();
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
    assert.ok(!text.includes('_zod'), `${f} is loaded up front and holds zod`);
  }
  // The lazily loaded chunks do hold it (run --kubeconfig).
  const lazy = readdirSync(dist).filter(
    (f) => f.endsWith('.mjs') && !upFront.has(f) && !/^pullkeeper(-node)?\.mjs$/.test(f),
  );
  assert.ok(lazy.some((f) => readFileSync(join(dist, f), 'utf8').includes('CoreV1Api')));
});

test('the launcher keeps its compile cache in <state>/compile-cache (0700), never in the OS temp dir', {
  timeout: 120_000,
}, () => {
  const launcher = join(built(), 'pullkeeper-node.mjs');
  const tmp = join(out, 'tmp');
  mkdirSync(tmp);
  chmodSync(tmp, 0o1777);
  const state = join(out, 'cc-state');
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, PULLKEEPER_NODE_STATE: state };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_DISABLE_COMPILE_CACHE;
  assert.equal(
    execFileSync(process.execPath, [launcher, 'version'], { env, encoding: 'utf8' }).trim(),
    VERSION,
  );
  const cache = join(state, 'compile-cache');
  assert.equal(statSync(cache).mode & 0o777, 0o700);
  assert.equal(statSync(state).mode & 0o777, 0o700);
  const entries = readdirSync(cache, { recursive: true });
  assert.ok(entries.length > 0, 'the cache was written');
  assert.ok(!existsSync(join(tmp, 'node-compile-cache')), 'nothing in the temp dir');

  // A state dir another user could change: no cache at all (and still runs).
  const open = join(out, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const env2 = { ...env, PULLKEEPER_NODE_STATE: join(open, 'state') };
  assert.equal(
    execFileSync(process.execPath, [launcher, 'version'], { env: env2, encoding: 'utf8' }).trim(),
    VERSION,
  );
  assert.deepEqual(readdirSync(join(open, 'state', 'compile-cache')), [], 'unsafe: the cache stays off');
  assert.ok(!existsSync(join(tmp, 'node-compile-cache')));

  // NODE_COMPILE_CACHE is applied by Node before the launcher runs: a safe one is quiet, an unsafe one warned about.
  const quiet = spawnSync(process.execPath, [launcher, 'version'], {
    env: { ...env, NODE_COMPILE_CACHE: join(out, 'cache-ok') },
    encoding: 'utf8',
  });
  assert.equal(quiet.stderr, '');
  const loud = spawnSync(process.execPath, [launcher, 'version'], {
    env: { ...env, NODE_COMPILE_CACHE: join(open, 'cc') },
    encoding: 'utf8',
  });
  assert.equal(loud.stdout.trim(), VERSION);
  assert.match(loud.stderr, /warning: NODE_COMPILE_CACHE .* is not root-only \(.*writable by other users\)/);
});
