// esbuild plugins for serverless-esbuild (serverless.yml custom.esbuild.plugins).
// The bundles are CommonJS `.js` files (what `serverless invoke local` can
// require), but the repository's package.json says "type": "module"; a
// package.json beside the bundles makes Node read them as CommonJS locally.
// (On Lambda the artifact has no package.json, and .js is CommonJS by default.)
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
      });
    },
  },
];
