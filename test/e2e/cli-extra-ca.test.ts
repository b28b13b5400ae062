/**
 * PULLKEEPER_EXTRA_CA_CERTS in the operator CLI, as in the functions: the Entra
 * ID + ACR fake serves TLS with a self-signed certificate (a private CA). Not
 * trusted, `pullkeeper mint` fails and says it is the certificate, not the
 * credential; with the CA file named in PULLKEEPER_EXTRA_CA_CERTS, the same
 * command mints. Trust is process-wide and cannot be taken back, so the
 * untrusted case runs first.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bufferIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/pullkeeper.js';
import { type EntraAcrFake, startEntraAcr } from '../harness/cloud/entra-acr.js';

const dir = mkdtempSync(join(tmpdir(), 'pk-extra-ca-'));
let acr: EntraAcrFake;
let cfg = '';
let caFile = '';

before(async () => {
  delete process.env.PULLKEEPER_EXTRA_CA_CERTS;
  acr = await startEntraAcr({ dir, tls: true });
  caFile = join(dir, 'private-ca.pem');
  writeFileSync(caFile, acr.info.caCertPem!);
  const i = acr.info;
  cfg = join(dir, 'pullkeeper.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      registries: [
        {
          name: 'acr',
          kind: 'acr',
          loginServer: i.loginServer,
          tenantId: i.tenantId,
          authorityHost: i.authorityHost,
          exchangeEndpoint: i.exchangeEndpoint,
          credential: { clientId: i.clientId, clientSecret: { value: i.clientSecret } },
          verify: false,
          timeoutMs: 5000,
        },
      ],
    }),
  );
});
after(async () => {
  delete process.env.PULLKEEPER_EXTRA_CA_CERTS;
  await acr?.stop();
});

async function mint() {
  const io = bufferIO();
  const code = await main(['mint', '--config', cfg, '--json'], io);
  const out = io.stdout.join('\n');
  assert.ok(!`${out}${io.stderr.join('\n')}`.includes(acr.info.clientSecret), 'no secret in the output');
  return { code, report: JSON.parse(out) as { registries: Array<{ status: string; error?: string }> } };
}

describe('pullkeeper honours PULLKEEPER_EXTRA_CA_CERTS', { timeout: 120_000 }, () => {
  test('without it, the private CA is not trusted: the error names TLS and the variable, not the credential', async () => {
    const r = await mint();
    assert.equal(r.code, 1);
    assert.equal(r.report.registries[0]!.status, 'failed');
    const error = r.report.registries[0]!.error!;
    assert.match(error, /TLS certificate is not trusted.*PULLKEEPER_EXTRA_CA_CERTS/);
    assert.doesNotMatch(error, /configure credential|client secret|clientId/);
  });

  test('a file that is not there stops the command with exit 2 and names the variable', async () => {
    process.env.PULLKEEPER_EXTRA_CA_CERTS = join(dir, 'missing.pem');
    try {
      const io = bufferIO();
      const code = await main(['mint', '--config', cfg, '--json'], io);
      assert.equal(code, 2);
      assert.match(
        JSON.parse(io.stdout.join('\n')).error.message,
        /PULLKEEPER_EXTRA_CA_CERTS: cannot read .*missing\.pem \(ENOENT\)/,
      );
    } finally {
      delete process.env.PULLKEEPER_EXTRA_CA_CERTS;
    }
  });

  test('with the CA file named, the same command mints', async () => {
    process.env.PULLKEEPER_EXTRA_CA_CERTS = caFile;
    const r = await mint();
    assert.equal(r.code, 0, JSON.stringify(r.report));
    assert.equal(r.report.registries[0]!.status, 'minted');
  });
});
