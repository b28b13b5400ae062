// Builds both CLIs into plain JavaScript: `npm run build [-- --outdir DIR]` (default dist/).
// `npm pack` (prepack), `make build` and `npm run build:node` (the node runner for nodes:
// `-- --outdir /usr/local/lib/pullkeeper-node`) all run this one build.
//
// Output, self-contained (no node_modules needed beside it):
//   pullkeeper.mjs, pullkeeper-node.mjs   launchers: check the Node version, turn on Node's
//                         compile cache in a private directory, then load their main module
//   compile-cache.mjs     where that cache may live (src/runner/compile-cache.ts)
//   main-pullkeeper.mjs, main-pullkeeper-node.mjs, chunk-*.mjs
//                         ES modules split by esbuild: code both CLIs share is in chunks, and
//                         what only some commands need (a cloud SDK, ssh2, the image store, the
//                         pod runner, client-node) is in chunks loaded by `import()` when that
//                         command runs, so `--version` or `credential-provider` parse only
//                         what they use
//   supervisor-main.mjs   the detached pod supervisor that `pullkeeper-node run` starts
//
// Every library is bundled, the cloud SDKs and client-node too: a bundled chunk loads 2-3x
// faster than the same package's hundreds of files from node_modules (client-node: ~0.25 s
// against ~0.7 s on the shared VM). ssh2's optional native add-ons (cpu-features,
// sshcrypto.node) are left out: ssh2 then uses its pure-JavaScript code.
//
// Why bundles and not tsc output: Node resolves, reads and compiles each module file before
// running any of it; the numbers are in docs/dependencies.md (`npm run bench -- startup`).
// With the compile cache (module.enableCompileCache, Node >= 22.1) later runs reuse V8's
// compiled code from disk (where: below, at the launchers).
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { outdir: { type: 'string', default: 'dist' } },
});
const root = resolve(import.meta.dirname, '..');

/** Is this resolved file an ES module (by extension, else its package's "type")? */
function isEsm(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  for (let d = dirname(file); d !== dirname(d); d = dirname(d)) {
    const p = join(d, 'package.json');
    if (!existsSync(p)) continue;
    const pkg = JSON.parse(readFileSync(p, 'utf8'));
    if (pkg.name || pkg.type) return pkg.type === 'module';
  }
  return false;
}

/**
 * `await import('google-auth-library')` in our code, where the package is CommonJS: with
 * code splitting, esbuild puts the package in a chunk whose only export is `default`, so
 * `const { GoogleAuth } = await import(...)` would get undefined. This routes such an
 * import through a small ES module that re-exports the package's names (read by loading
 * the package once at build time), as Node's own CommonJS import does.
 */
const cjsNamedExports = {
  name: 'cjs-named-exports',
  setup(b) {
    b.onResolve({ filter: /^[@a-z]/ }, async (args) => {
      if (
        args.kind !== 'dynamic-import' ||
        args.pluginData?.inner ||
        args.importer.includes('/node_modules/')
      )
        return undefined;
      const r = await b.resolve(args.path, {
        kind: 'dynamic-import',
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { inner: true },
      });
      if (r.errors.length || r.external || isEsm(r.path)) return undefined;
      return { path: r.path, namespace: 'cjs-named-exports' };
    });
    b.onLoad({ filter: /.*/, namespace: 'cjs-named-exports' }, (args) => {
      const names = Object.keys(createRequire(import.meta.url)(args.path)).filter(
        (k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default' && k !== '__esModule',
      );
      return {
        contents: `const m = require(${JSON.stringify(args.path)});\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`,
        resolveDir: dirname(args.path),
        loader: 'js',
      };
    });
  },
};
const outdir = resolve(values.outdir);

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
const t0 = performance.now();
await build({
  absWorkingDir: root,
  entryPoints: {
    'main-pullkeeper': join(root, 'src/cli/pullkeeper.ts'),
    'main-pullkeeper-node': join(root, 'src/cli/pullkeeper-node.ts'),
    'supervisor-main': join(root, 'src/runner/supervisor-main.ts'),
    // Where the launchers keep the compile cache; imports only Node built-ins, loaded first.
    'compile-cache': join(root, 'src/runner/compile-cache.ts'),
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minify: process.env.PK_NOMIN !== '1',
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  external: ['cpu-features', '*.node'],
  plugins: [cjsNamedExports],
  logLevel: 'warning',
  // CommonJS dependencies call require() for Node's built-ins, and ssh2 reads __dirname.
  banner: {
    js: [
      "import { createRequire as __cr } from 'node:module';",
      "import { fileURLToPath as __fu } from 'node:url';",
      'const require = __cr(import.meta.url);',
      "const __filename = __fu(import.meta.url), __dirname = __fu(new URL('.', import.meta.url));",
    ].join(' '),
  },
});
// Node trusts the entries of a compile cache directory without checking who owns it, and its
// default, <os.tmpdir()>/node-compile-cache, is writable by every user: someone could plant code
// the next run executes (as root, for pullkeeper-node). So the launchers never use the temp dir:
// pullkeeper-node keeps the cache in <state>/compile-cache, pullkeeper in
// $XDG_CACHE_HOME/pullkeeper/compile-cache (default ~/.cache), each used only when no one but
// root or the user can change it (src/runner/compile-cache.ts), else the cache is off.
const cacheDir = {
  pullkeeper:
    "safeCompileCacheDir(join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'pullkeeper', 'compile-cache'))",
  'pullkeeper-node': 'compileCacheDir()',
};
for (const cli of ['pullkeeper', 'pullkeeper-node']) {
  const launcher = join(outdir, `${cli}.mjs`);
  await writeFile(
    launcher,
    [
      '#!/usr/bin/env node',
      "import module from 'node:module';",
      "import { homedir } from 'node:os';",
      "import { join } from 'node:path';",
      "import { compileCacheDir, safeCompileCacheDir, unsafeCacheDirReason } from './compile-cache.mjs';",
      "if (Number(process.versions.node.split('.')[0]) < 24) {",
      `  console.error(\`${cli} needs Node 24 or newer (this is \${process.version}).\`);`,
      '  process.exit(2);',
      '}',
      '// Later runs reuse V8 code compiled by earlier ones, from a directory only we (or root) can change.',
      '// $NODE_COMPILE_CACHE is applied by Node itself before this line runs: it is only checked.',
      'const preset = module.getCompileCacheDir?.();',
      'if (preset) {',
      '  const why = unsafeCacheDirReason(preset, process.getuid?.() ?? 0);',
      '  if (why)',
      `    process.stderr.write(\`${cli}: warning: NODE_COMPILE_CACHE \${preset} is not ${cli === 'pullkeeper-node' ? 'root-only' : 'private'} (\${why}); unset it\\n\`);`,
      '} else if (!process.env.NODE_DISABLE_COMPILE_CACHE) {',
      `  const dir = ${cacheDir[cli]};`,
      '  if (dir) module.enableCompileCache?.(dir);',
      '}',
      `const { main } = await import('./main-${cli}.mjs');`,
      'process.exitCode = await main(process.argv.slice(2));',
      '',
    ].join('\n'),
  );
  await chmod(launcher, 0o755);
}
console.log(`built ${outdir} in ${Math.round(performance.now() - t0)} ms`);
