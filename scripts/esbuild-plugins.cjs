// esbuild plugins for serverless-esbuild (serverless.yml custom.esbuild.plugins).
// The bundles are CommonJS `.js` files (what `serverless invoke local` can
// require), but the repository's package.json says "type": "module"; a
// package.json beside the bundles makes Node read them as CommonJS locally.
// (On Lambda the artifact has no package.json, and .js is CommonJS by default.)
// serverless-esbuild then installs the external packages in the same directory
// (`npm ci`, then `npm prune`, which would put optional packages back and run
// install scripts): an .npmrc there keeps both from building native add-ons for
// this machine (ssh2's, cpu-features) that arm64 Lambda cannot load; ssh2 runs
// its pure-JavaScript code.
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

module.exports = [
  {
    name: 'commonjs-marker',
    setup(build) {
      build.onEnd(() => {
        const out = build.initialOptions.outdir ?? join(build.initialOptions.outfile ?? '.', '..');
        let dir = out;
        // outdir is .esbuild/.build (or a sub-folder): mark the .build root.
        const i = dir.indexOf(`${join('.esbuild', '.build')}`);
        if (i >= 0) dir = dir.slice(0, i + join('.esbuild', '.build').length);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}\n');
        writeFileSync(join(dir, '.npmrc'), 'ignore-scripts=true\nomit=optional\n');
      });
    },
  },
];
