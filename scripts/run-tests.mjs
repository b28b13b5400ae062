#!/usr/bin/env node
// Runs the test suites with Node's own test runner (TypeScript through tsx).
//   unit: every *.test.ts beside the code (src/, functions/): pure, no services.
//   e2e:  every *.test.ts under test/: starts the real harness (see test/harness).
//   all:  both. Exits non-zero when any test fails or no test file is found.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const mode = process.argv[2] ?? 'all';
const extra = process.argv.slice(3);

function find(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const suites = {
  unit: { files: [...find('src'), ...find('functions')], concurrency: 2 },
  // e2e tests share real services (one kube-apiserver, one set of nodes): one file at a time.
  e2e: { files: find('test'), concurrency: 1 },
};
const order = mode === 'all' ? ['unit', 'e2e'] : [mode];
let failed = false;
for (const name of order) {
  const suite = suites[name];
  if (!suite) {
    console.error(`run-tests: unknown suite "${name}"; use unit, e2e or all`);
    process.exit(2);
  }
  if (suite.files.length === 0) {
    console.error(`run-tests: no ${name} test files found`);
    process.exit(1);
  }
  if (name === 'e2e') {
    // Real components only: a missing one fails the run here, with the fix, instead of skipping tests.
    const doctor = spawnSync(process.execPath, ['--import', 'tsx', 'test/harness/cli.ts', 'doctor'], {
      stdio: 'inherit',
    });
    if (doctor.status !== 0) {
      console.error('run-tests: the e2e harness is incomplete (see above); no e2e test was run.');
      process.exit(1);
    }
  }
  console.log(`\n== ${name} tests (${suite.files.length} files)`);
  const res = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      `--test-concurrency=${suite.concurrency}`,
      ...extra,
      ...suite.files,
    ],
    { stdio: 'inherit', env: { ...process.env, PULLKEEPER_TEST_SUITE: name } },
  );
  if (res.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
