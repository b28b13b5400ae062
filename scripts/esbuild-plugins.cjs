// esbuild plugins for serverless-esbuild (serverless.yml custom.esbuild.plugins).
//
// commonjs-marker: the bundles are CommonJS `.js` files (what `serverless invoke
// local` can require), but the repository's package.json says "type": "module";
// a package.json beside the bundles makes Node read them as CommonJS locally.
// (On Lambda the artifact has no package.json, and .js is CommonJS by default.)
//
// heavy-sdks: the SDKs a config may or may not use (AWS clients, Azure, Google,
// ssh2, jose, the SigV4 signer) stay out of the function's bundle, so a cold start parses only what its
// first call loads; each is `require`d on demand. Instead of an `npm install` of
// those packages into the artifact (minutes, and 150 MB of type declarations,
// ESM copies, source maps and the packages' own dependencies per function), each
// package the function's bundle can load becomes ONE minified CommonJS file,
// node_modules/<package>/index.js, bundled from the version in node_modules
// (package-lock.json's, the one the tests ran). serverless-esbuild puts files
// under `__only_<function>/` into that function's zip only, without the prefix
// (docs/deploy.md, "Artifacts"). Locally (serverless offline, invoke local) the
// bundles resolve these packages from the repository's node_modules as before.
const { createHash } = require('node:crypto');
const { mkdirSync, writeFileSync, readFileSync, existsSync, cpSync } = require('node:fs');
const { join, basename, dirname, resolve } = require('node:path');

/** Loaded on demand, shipped as one file each; the same list is in test/e2e/serverless-package.test.ts. */
const HEAVY = [
  '@aws-sdk/client-ecr',
  '@aws-sdk/client-ecr-public',
  '@aws-sdk/client-eks',
  '@aws-sdk/client-secrets-manager',
  '@aws-sdk/client-sqs',
  '@aws-sdk/client-ssm',
  '@aws-sdk/client-sts',
  '@aws-sdk/credential-provider-node',
  '@google-cloud/artifact-registry',
  'google-auth-library',
  '@azure/identity',
  '@azure/container-registry',
  'ssh2',
  // Smaller, but only some calls need them: jose verifies OIDC and service-account tokens
  // (not API tokens), the SigV4 signer (143 KB with the @smithy/core parts it pulls in)
  // signs EKS tokens only.
  'jose',
  '@smithy/signature-v4',
];
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function buildRootOf(outdir) {
  const marker = join('.esbuild', '.build');
  const i = outdir.indexOf(marker);
  return i >= 0 ? outdir.slice(0, i + marker.length) : outdir;
}

/** Cached vendor builds are keyed by package version and this file (its build options). */
const SELF = createHash('sha256').update(readFileSync(__filename)).digest('hex').slice(0, 12);
/** One vendor build per package and process (the functions share them). */
const vendored = new Map();
function vendor(esbuild, root, pkg) {
  if (!vendored.has(pkg)) {
    const pkgJson = require.resolve(`${pkg}/package.json`, { paths: [root] });
    const { version } = JSON.parse(readFileSync(pkgJson, 'utf8'));
    const out = join(root, '.esbuild', '.vendor', `${pkg.replace('/', '+')}@${version}-${SELF}`, 'index.js');
    vendored.set(
      pkg,
      existsSync(out)
        ? Promise.resolve({ out, version })
        : esbuild
            .build({
              stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: root },
              bundle: true,
              minify: true,
              platform: 'node',
              target: 'node24',
              format: 'cjs',
              // ssh2's optional native add-ons (its own, cpu-features) are tried in try/catch:
              // left out, ssh2 runs its pure-JavaScript code (they would be built for this machine, not arm64).
              external: ['*.node', 'cpu-features'],
              legalComments: 'none',
              logLevel: 'error',
              outfile: out,
            })
            .then(() => ({ out, version })),
    );
  }
  return vendored.get(pkg);
}

module.exports = [
  {
    // zod's `z` namespace re-exports every locale (`z.locales`), ~260 KB of the bundle that
    // every cold start compiled; the code uses only the English messages zod sets itself.
    name: 'zod-english-only',
    setup(build) {
      build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) =>
        /[\\/]node_modules[\\/]zod[\\/]/.test(a.importer)
          ? { path: join(dirname(a.importer), '..', 'locales', 'en.js'), namespace: 'zod-english-only' }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, (a) => ({
        contents: `export { default as en } from ${JSON.stringify(a.path)};\n`,
        resolveDir: dirname(a.path),
      }));
    },
  },
  {
    name: 'commonjs-marker',
    setup(build) {
      build.onEnd(() => {
        const out = build.initialOptions.outdir ?? dirname(build.initialOptions.outfile ?? 'x');
        const dir = buildRootOf(out);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}\n');
      });
    },
  },
  {
    name: 'heavy-sdks',
    setup(build) {
      build.initialOptions.metafile = true;
      // `import()` of these becomes require(): a vendored package is one bundled CommonJS
      // file whose export names Node's ESM loader cannot see (cjs-module-lexer), so a real
      // import() would give only `default`.
      build.initialOptions.supported = { ...build.initialOptions.supported, 'dynamic-import': false };
      const filter = new RegExp(`^(${HEAVY.map(escapeRe).join('|')})$`);
      build.onResolve({ filter }, (a) => ({ path: a.path, external: true }));
      build.onEnd(async (result) => {
        if (result.errors.length || !result.metafile) return;
        const root = build.initialOptions.absWorkingDir ?? process.cwd();
        const outdir = build.initialOptions.outdir ?? dirname(build.initialOptions.outfile ?? 'x');
        const buildRoot = buildRootOf(resolve(root, outdir));
        // Only serverless-esbuild's builds (under .esbuild/.build) are artifacts.
        if (!buildRoot.endsWith(join('.esbuild', '.build'))) return;
        const esbuild = require('esbuild');
        for (const [file, o] of Object.entries(result.metafile.outputs)) {
          if (!o.entryPoint || !file.endsWith('.js')) continue;
          const fn = basename(file, '.js');
          const used = [
            ...new Set(o.imports.filter((i) => i.external && HEAVY.includes(i.path)).map((i) => i.path)),
          ];
          for (const pkg of used) {
            const { out, version } = await vendor(esbuild, root, pkg);
            const to = join(buildRoot, `__only_${fn}`, 'node_modules', pkg);
            mkdirSync(to, { recursive: true });
            cpSync(out, join(to, 'index.js'));
            writeFileSync(
              join(to, 'package.json'),
              `${JSON.stringify({ name: pkg, version, main: 'index.js' })}\n`,
            );
          }
        }
      });
    },
  },
];
module.exports.HEAVY = HEAVY;
