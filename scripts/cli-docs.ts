/** Writes docs/cli.md from the CLI help table: `node --import tsx scripts/cli-docs.ts`. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliMarkdown } from '../src/cli/docs.js';

const file = join(import.meta.dirname, '..', 'docs', 'cli.md');
writeFileSync(file, cliMarkdown());
console.log(`wrote ${file}`);
