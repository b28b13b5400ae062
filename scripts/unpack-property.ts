/**
 * The unpacker's property test, longer than the unit suite's run:
 *   node --import tsx scripts/unpack-property.ts [--seed N] [--runs N]
 * (default: a random seed, 5,000 runs). A failure prints fast-check's report
 * with the seed and the shrunk counterexample; rerun with that seed.
 */
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { checkUnpackProperty, makeSandbox } from '../test/support/unpack-property.js';

const { values } = parseArgs({
  options: { seed: { type: 'string' }, runs: { type: 'string', default: '5000' } },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const runs = Number(values.runs);
if (!Number.isInteger(seed) || !Number.isInteger(runs) || runs <= 0) {
  console.error('usage: scripts/unpack-property.ts [--seed INTEGER] [--runs POSITIVE_INTEGER]');
  process.exit(2);
}
const s = await makeSandbox();
const seen = { unpacked: 0, refused: 0 };
const t0 = performance.now();
try {
  await checkUnpackProperty(s, {
    seed,
    runs,
    onRun: (n, o) => {
      seen[o]++;
      if (n % 500 === 0) console.log(`${n}/${runs} (${seen.unpacked} unpacked, ${seen.refused} refused)`);
    },
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `ok: seed ${seed}, ${runs} layers (${seen.unpacked} unpacked, ${seen.refused} refused) in ${secs} s`,
  );
} catch (err) {
  console.error(`FAILED with seed ${seed}:\n${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await rm(s.root, { recursive: true, force: true });
}
