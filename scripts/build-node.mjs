// Builds pullkeeper-node for installing on nodes: `npm run build:node [-- --outdir DIR]`.
//
// Output (default dist/pullkeeper-node/):
//   pullkeeper-node.mjs   the executable: turns on Node's compile cache, then loads main.mjs
//   compile-cache.mjs     where that cache may live (src/runner/compile-cache.ts), loaded first
//   main.mjs, chunk-*.mjs ES modules split by esbuild, so what only `run --kubeconfig`
//                         needs (@kubernetes/client-node, ~17 MB of source) is parsed only then
//
// Node parses all of a module's source before running it: a single-file bundle made
// every `pullkeeper-node pull` (and every kubelet credential-provider call) parse 19 MB
// first. With the compile cache (module.enableCompileCache, Node >= 22.1) later runs
// reuse V8's compiled code from disk. The runner runs as root and Node trusts the cache's
// entries without checking who owns the directory, so the launcher never uses the OS temp
// dir: the cache lives in <state>/compile-cache (0700, every parent root-owned), or is off.
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { outdir: { type: 'string', default: 'dist/pullkeeper-node' } },
});
const root = resolve(import.meta.dirname, '..');
const outdir = resolve(values.outdir);
await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
const t0 = performance.now();
await build({
  absWorkingDir: root,
  entryPoints: {
    main: join(root, 'src/cli/pullkeeper-node.ts'),
    'compile-cache': join(root, 'src/runner/compile-cache.ts'),
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minify: true,
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
  // CommonJS dependencies call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
});
const launcher = join(outdir, 'pullkeeper-node.mjs');
await writeFile(
  launcher,
  [
    '#!/usr/bin/env node',
    "import module from 'node:module';",
    "import { compileCacheDir, unsafeCacheDirReason } from './compile-cache.mjs';",
    '// Later runs reuse V8 code compiled by earlier ones, from a directory only root can change.',
    '// $NODE_COMPILE_CACHE is applied by Node itself before this line runs: it is only checked.',
    'const preset = module.getCompileCacheDir?.();',
    'if (preset) {',
    '  const why = unsafeCacheDirReason(preset, process.getuid?.() ?? 0);',
    '  if (why)',
    '    process.stderr.write("pullkeeper-node: warning: NODE_COMPILE_CACHE " + preset + " is not root-only (" + why + "); unset it\\n");',
    '} else {',
    '  const dir = compileCacheDir();',
    '  if (dir) module.enableCompileCache?.(dir);',
    '}',
    "const { main } = await import('./main.mjs');",
    'process.exitCode = await main(process.argv.slice(2));',
    '',
  ].join('\n'),
);
await chmod(launcher, 0o755);
console.log(`built ${launcher} in ${Math.round(performance.now() - t0)} ms`);
