/**
 * The unpacker's property over generated layers (test/support/unpack-property.ts):
 * nothing outside the layer dir is created, changed or removed, refusals are
 * clear errors, every run ends. Fixed seed here; any seed and count with
 * `node --import tsx scripts/unpack-property.ts --seed N --runs N`.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { checkUnpackProperty, makeSandbox, type Sandbox } from '../../../test/support/unpack-property.js';

let s: Sandbox;
before(async () => {
  s = await makeSandbox();
});
after(async () => {
  await rm(s.root, { recursive: true, force: true });
});

test('300 generated layers (seed 17): nothing outside the layer dir changes', {
  timeout: 240_000,
}, async () => {
  const seen = { unpacked: 0, refused: 0 };
  await checkUnpackProperty(s, { seed: 17, runs: 300, onRun: (_, o) => seen[o]++ });
  // Both outcomes occur, so the generator reaches the refusals and the unpacking paths.
  assert.ok(seen.unpacked > 30 && seen.refused > 30, JSON.stringify(seen));
});
