#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step needed).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/pullkeeper.ts');
process.exitCode = await main(process.argv.slice(2));
