#!/usr/bin/env node
// `pullkeeper`. Installed from the package (npm pack, a release tarball): runs the compiled
// build in dist/ (scripts/build.mjs). In a checkout (src/ is beside bin/): runs the
// TypeScript source through tsx, so edits take effect without a build.
import { existsSync } from 'node:fs';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `pullkeeper needs Node 24 or newer (this is ${process.version}). ` +
      '(In a checkout of pullkeeper: `export PATH="$(bash scripts/node24.sh):$PATH"`.)',
  );
  process.exit(2);
}
if (existsSync(new URL('../src/cli/pullkeeper.ts', import.meta.url))) {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/pullkeeper.ts');
  process.exitCode = await main(process.argv.slice(2));
} else {
  await import('../dist/pullkeeper.mjs');
}
