import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { getCACertificates } from 'node:tls';
import { makeSelfSignedCert } from '../../test/harness/cloud/common.js';
import { ExtraCaError, trustExtraCaCertificates } from './extra-ca.js';

const dir = mkdtempSync(join(tmpdir(), 'pk-extra-ca-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('unset or empty: nothing changes', () => {
  const before = getCACertificates('default').length;
  assert.equal(trustExtraCaCertificates({}), 0);
  assert.equal(trustExtraCaCertificates({ PULLKEEPER_EXTRA_CA_CERTS: ' ' }), 0);
  assert.equal(getCACertificates('default').length, before);
});

test('bad files fail with the path and what to do, and change nothing', () => {
  const before = getCACertificates('default').length;
  const missing = join(dir, 'nope.pem');
  assert.throws(
    () => trustExtraCaCertificates({ PULLKEEPER_EXTRA_CA_CERTS: missing }),
    (e: Error) => {
      assert.ok(e instanceof ExtraCaError);
      assert.match(e.message, /cannot read .*nope\.pem \(ENOENT\); point it at a PEM file/);
      return true;
    },
  );
  const empty = join(dir, 'empty.pem');
  writeFileSync(empty, 'not a certificate\n');
  assert.throws(
    () => trustExtraCaCertificates({ PULLKEEPER_EXTRA_CA_CERTS: empty }),
    /holds no PEM certificate/,
  );
  assert.equal(getCACertificates('default').length, before);
});

test('a PEM bundle is added to the default trust, once, keeping what was trusted', async () => {
  const [a, b] = [(await makeSelfSignedCert(dir)).certFile, (await makeSelfSignedCert(dir)).certFile];
  const bundle = join(dir, 'bundle.pem');
  const pems = [a, b].map((f) => readFileSync(f, 'utf8').trim());
  writeFileSync(bundle, `${pems.join('\n')}\n`);
  const norm = (pem: string) => pem.replace(/\s+/g, '');
  const before = new Set(getCACertificates('default').map(norm));
  assert.ok(!pems.some((p) => before.has(norm(p))));
  assert.equal(trustExtraCaCertificates({ PULLKEEPER_EXTRA_CA_CERTS: bundle }), 2);
  const now = new Set(getCACertificates('default').map(norm));
  for (const p of pems) assert.ok(now.has(norm(p)), 'the extra CA is trusted');
  for (const p of before) assert.ok(now.has(p), 'the CAs trusted before still are');
  assert.equal(trustExtraCaCertificates({ PULLKEEPER_EXTRA_CA_CERTS: bundle }), 0, 'idempotent');
});
