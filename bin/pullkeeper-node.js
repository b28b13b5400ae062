#!/usr/bin/env node
// Runs the node CLI through tsx (no build step needed).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `pullkeeper-node needs Node 24 or newer (this is ${process.version}). ` +
      'Run `export PATH="$(bash scripts/node24.sh):$PATH"` in the project directory, then try again.',
  );
  process.exit(2);
}
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../src/cli/pullkeeper-node.ts');
process.exitCode = await main(process.argv.slice(2));
