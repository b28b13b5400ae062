/**
 * Benchmark: cold pull + unpack of a 5-layer, ~50 MB, 3,000-file image from
 * the harness registry (token mode).
 *
 * Baseline, named: "skopeo copy + umoci unpack" (chained, the reference pull +
 * unpack in docs/harness.md). Candidate: `pullkeeper-node pull` (layers downloaded,
 * verified and unpacked concurrently, streamed), run as installed (`npm run
 * build:node`: split ES modules, Node's compile cache) and as the dev shim
 * (bin/pullkeeper-node.js through tsx, which adds its start-up). Every timed
 * run writes into a fresh directory, nothing is deleted while timing, page
 * caches are dropped before each run, and the order alternates per round.
 *
 * Second part: IfNotPresent on a present image: registry requests (counted by
 * a proxy: must be 0), the in-process decision time (ImageStore.ensure), and
 * the CLI's wall time beside `skopeo inspect --raw`.
 *
 *   npm run bench -- pull [--rounds 5]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ImageStore } from '../src/runner/store/store.js';
import { buildImage, type FileEntry, pushImage, seededBytes } from '../test/harness/registry/images.js';
import { startRegistry } from '../test/harness/registry/index.js';
import { median, reportTable } from './stats.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { rounds: { type: 'string', default: '5' } },
});
const rounds = Number(values.rounds);
const root = await mkdtemp(join(tmpdir(), 'pk-bench-pull-'));
let seq = 0;
const fresh = async (name: string) => {
  const d = join(root, `${name}-${seq++}`);
  await mkdir(d, { recursive: true });
  return d;
};
const dropCaches = async () => {
  execFileSync('sync');
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
  } catch {
    /* not root: caches stay */
  }
  await sleep(1000);
};
/** Wall time of a command. Asynchronous: the token server runs in this process's event loop. */
const wall = (cmd: string, args: string[]) =>
  new Promise<number>((ok, fail) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), 300_000);
    p.on('error', fail);
    p.on('close', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code !== 0) fail(new Error(`${cmd} ${args[0]} failed (${code}): ${stderr.slice(-500)}`));
      else ok(ms);
    });
  });

console.log(`load before: ${execFileSync('uptime').toString().trim()}`);
const registry = await startRegistry({ dir: await fresh('registry'), auth: 'token' });
const USER = 'bench';
const PASS = 'bench-pass';
await registry.allow(USER, PASS);
const host = registry.info.host;
try {
  // 1 busybox layer + 4 layers of 750 files: ~3,000 files, ~50 MB.
  const layerFiles = (n: number): FileEntry[] =>
    Array.from({ length: 750 }, (_, i) => ({
      path: `data/l${n}/d${i % 25}/f${i}.bin`,
      content: seededBytes(2048 + ((i * 7919) % 30000), `l${n}-${i}`),
    }));
  const image = await buildImage({
    layers: [{ busybox: true }, ...[1, 2, 3, 4].map((n) => ({ files: layerFiles(n), gzipLevel: 1 }))],
  });
  const bytes = image.layers.reduce((a, l) => a + l.size, 0);
  await pushImage(registry, 'bench/img', 'v1', image, { username: USER, password: PASS });
  console.log(
    `image: ${image.layers.length} layers, ${(bytes / 1e6).toFixed(1)} MB compressed, ~3,000 files`,
  );

  // As installed on nodes: `npm run build:node` (split ES modules + Node's compile cache).
  const built = join(root, 'pullkeeper-node');
  execFileSync(process.execPath, [join(import.meta.dirname, '../scripts/build.mjs'), '--outdir', built], {
    stdio: 'ignore',
  });
  const bundle = join(built, 'pullkeeper-node.mjs');
  // Its compile cache lives with this run (the first, untimed run fills it, as the first use on a node does).
  process.env.NODE_COMPILE_CACHE = join(root, 'compile-cache');
  const shim = join(import.meta.dirname, '../bin/pullkeeper-node.js');
  const kubelet = await fresh('kubelet');
  const auth = { auth: Buffer.from(`${USER}:${PASS}`).toString('base64') };
  await writeFile(join(kubelet, 'config.json'), JSON.stringify({ auths: { [host]: auth } }));
  const ref = `${host}/bench/img:v1`;
  /** Not timed: the run really stored the image with every layer. */
  const pulledInto = async (state: string) => {
    const list = await new ImageStore({ stateDir: state }).list();
    if (list.length !== 1 || list[0]!.layers.length !== image.layers.length)
      throw new Error(`no image in ${state}`);
  };

  const variants: Record<string, () => Promise<number>> = {
    'skopeo copy + umoci unpack': async () => {
      const d = await fresh('skopeo');
      return await wall('sh', [
        '-c',
        `skopeo copy -q --src-creds "$1" --src-tls-verify=false "docker://$2" "oci:$3/oci:v1" && umoci unpack --image "$3/oci:v1" "$3/bundle"`,
        'sh',
        `${USER}:${PASS}`,
        ref,
        d,
      ]);
    },
    'pullkeeper-node (bundle)': async () => {
      const d = await fresh('pk');
      const ms = await wall(process.execPath, [
        bundle,
        'pull',
        ref,
        '--state-dir',
        d,
        '--root-dir',
        kubelet,
        '--json',
      ]);
      await pulledInto(d);
      return ms;
    },
    'pullkeeper-node (tsx shim)': async () => {
      const d = await fresh('pk-tsx');
      const ms = await wall(process.execPath, [
        shim,
        'pull',
        ref,
        '--state-dir',
        d,
        '--root-dir',
        kubelet,
        '--json',
      ]);
      await pulledInto(d);
      return ms;
    },
  };
  // Warm-up (not timed): the registry's first reads, tsx's compile cache.
  for (const v of Object.values(variants)) await v();
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    const names = Object.keys(variants);
    if (r % 2 === 1) names.reverse();
    for (const name of names) {
      await dropCaches();
      samples[name]!.push(await variants[name]!());
    }
  }
  console.log(
    reportTable(
      '\ncold pull + unpack',
      Object.entries(samples).map(([name, s]) => ({ name, samples: s })),
    ),
  );
  const base = median(samples['skopeo copy + umoci unpack']!);
  for (const name of ['pullkeeper-node (bundle)', 'pullkeeper-node (tsx shim)']) {
    console.log(
      `  ratio ${name} / baseline: ${(median(samples[name]!) / base).toFixed(2)}x (target <= 0.7x)`,
    );
  }

  // --- IfNotPresent on a present image -----------------------------------------
  const target = new URL(registry.info.url);
  let proxied = 0;
  const proxy = createServer((req, res) => {
    proxied++;
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
  const addr = proxy.address();
  const phost = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const pref = `${phost}/bench/img:v1`;
  const state = await fresh('present');
  await writeFile(join(kubelet, 'config.json'), JSON.stringify({ auths: { [host]: auth, [phost]: auth } }));
  await wall(process.execPath, [bundle, 'pull', pref, '--state-dir', state, '--root-dir', kubelet]);
  proxied = 0;
  const tokensBefore = registry.tokenRequests().length;
  let requests = 0;
  const store = new ImageStore({
    stateDir: state,
    nodeCredentials: { rootDir: kubelet },
    onRequest: () => requests++,
  });
  const decide: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const r = await store.ensure({ image: pref, policy: 'IfNotPresent', podSecrets: [] });
    decide.push(performance.now() - t0);
    if (r.pulled) throw new Error('IfNotPresent pulled a present image');
  }
  const cliPresent: number[] = [];
  const cliPresentTsx: number[] = [];
  const inspect: number[] = [];
  for (let i = 0; i < 5; i++) {
    cliPresent.push(
      await wall(process.execPath, [
        bundle,
        'pull',
        pref,
        '--policy',
        'IfNotPresent',
        '--state-dir',
        state,
        '--root-dir',
        kubelet,
      ]),
    );
    cliPresentTsx.push(
      await wall(process.execPath, [
        shim,
        'pull',
        pref,
        '--policy',
        'IfNotPresent',
        '--state-dir',
        state,
        '--root-dir',
        kubelet,
      ]),
    );
  }
  const registryRequests = proxied + requests + (registry.tokenRequests().length - tokensBefore);
  for (let i = 0; i < 5; i++) {
    inspect.push(
      await wall('skopeo', [
        'inspect',
        '--raw',
        '--creds',
        `${USER}:${PASS}`,
        '--tls-verify=false',
        `docker://${ref}`,
      ]),
    );
  }
  proxy.closeAllConnections();
  proxy.close();
  console.log(
    `\nIfNotPresent on a present image: ${registryRequests} registry requests (in-process and CLI, 30 decisions)`,
  );
  console.log(`  decision in-process (ImageStore.ensure), median of 20: ${median(decide).toFixed(2)} ms`);
  console.log(
    reportTable('  wall time', [
      { name: 'pullkeeper-node (bundle)', samples: cliPresent },
      { name: 'pullkeeper-node (tsx shim)', samples: cliPresentTsx },
      { name: 'skopeo inspect --raw', samples: inspect },
    ]),
  );
  console.log(`  ratio bundle / skopeo inspect: ${(median(cliPresent) / median(inspect)).toFixed(2)}x`);
  console.log(`load after: ${execFileSync('uptime').toString().trim()}`);
} finally {
  await registry.stop();
  // After every timed run: removing trees while timing would skew the next run (docs/harness.md).
  await rm(root, { recursive: true, force: true });
}
