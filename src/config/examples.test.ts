/** Every example under infra/examples is a valid config (docs must not lie). */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { loadConfigFile } from './load.js';

const dir = new URL('../../infra/examples/', import.meta.url).pathname;
for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
  test(`infra/examples/${f} is a valid pullkeeper config`, async () => {
    const c = await loadConfigFile(`${dir}${f}`);
    assert.ok(c.registries.length > 0);
  });
}
