import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PullkeeperConfig } from '../config/schema.js';
import { type DoctorCheck, runDoctor } from './doctor.js';

describe('runDoctor progress', () => {
  it('reports each check as it finishes, a failing check too, and keeps every finding', async () => {
    const ok: DoctorCheck = async () => [{ area: 'registry', subject: 'quay', ok: true, detail: 'minted' }];
    const bad: DoctorCheck = async () => {
      throw new Error('boom');
    };
    const seen: Array<[number, number, number]> = [];
    const findings = await runDoctor(
      {} as PullkeeperConfig,
      [ok, bad],
      AbortSignal.timeout(5000),
      (f, d, n) => seen.push([f.length, d, n]),
    );
    assert.deepEqual(
      seen.map(([, d, n]) => [d, n]),
      [
        [1, 2],
        [2, 2],
      ],
    );
    assert.deepEqual(seen.map(([len]) => len).sort(), [0, 1]);
    assert.deepEqual(
      findings.map((f) => [f.area, f.ok]),
      [
        ['registry', true],
        ['doctor', false],
      ],
    );
  });
});
