import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  fingerprintOf,
  hostFieldMatches,
  hostKeyAlgorithmsFor,
  parseKnownHosts,
  pinsFor,
} from './known-hosts.js';

/** An ssh-ed25519 public key line body (`ssh-ed25519 AAAA…`) and its blob's sha256. */
function edKey(): { text: string; sha256: string } {
  const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(Buffer.from(jwk.x!, 'base64url'))]);
  return {
    text: `ssh-ed25519 ${blob.toString('base64')}`,
    sha256: createHash('sha256').update(blob).digest('hex'),
  };
}

const K1 = edKey();
const K2 = edKey();
const K3 = edKey();
const TEXT = [
  '# comment',
  '',
  `*.example.com,!bad.example.com ${K1.text}`,
  `[10.0.0.5]:2222 ${K2.text} with a comment`,
  `10.0.0.6,node-6 ${K1.text}`,
  `10.0.0.6 ${K3.text}`,
  `@revoked 10.0.0.6 ${K3.text}`,
  `@cert-authority *.example.com ${K2.text}`,
  'broken-line-without-key',
  `10.0.0.7 ssh-ed25519 not*base64`,
  `node-?.lab ${K2.text}`,
].join('\n');

const cases: Array<{ host: string; port: number; want: string[] }> = [
  { host: 'a.example.com', port: 22, want: [K1.sha256] },
  { host: 'A.EXAMPLE.COM', port: 22, want: [K1.sha256] },
  { host: 'bad.example.com', port: 22, want: [] },
  { host: 'a.example.com', port: 2222, want: [] },
  { host: '10.0.0.5', port: 2222, want: [K2.sha256] },
  { host: '10.0.0.5', port: 22, want: [] },
  // K3 is pinned and revoked for 10.0.0.6: only K1 remains.
  { host: '10.0.0.6', port: 22, want: [K1.sha256] },
  { host: 'node-6', port: 22, want: [K1.sha256] },
  { host: 'node-1.lab', port: 22, want: [K2.sha256] },
  { host: 'node-10.lab', port: 22, want: [] },
  { host: '10.0.0.7', port: 22, want: [] },
];

describe('known_hosts', () => {
  const entries = parseKnownHosts(TEXT);
  test('parses usable lines only (comments, certificate authorities, broken lines skipped)', () => {
    assert.deepEqual(
      entries.map((e) => [e.line, e.marker ?? '', e.hosts]),
      [
        [3, '', '*.example.com,!bad.example.com'],
        [4, '', '[10.0.0.5]:2222'],
        [5, '', '10.0.0.6,node-6'],
        [6, '', '10.0.0.6'],
        [7, '@revoked', '10.0.0.6'],
        [11, '', 'node-?.lab'],
      ],
    );
  });
  for (const c of cases)
    test(`pins for ${c.host}:${c.port}`, () => {
      assert.deepEqual(
        pinsFor(entries, c.host, c.port).keys.map((k) => k.sha256),
        c.want,
      );
    });
  test('revoked keys are listed', () => {
    assert.ok(pinsFor(entries, '10.0.0.6', 22).revoked.has(K3.sha256));
  });

  describe('agrees with OpenSSH (ssh-keygen -F, and -H hashed entries)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pk-kh-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const plain = join(dir, 'plain');
    const plainLines = [
      `*.example.com,!bad.example.com ${K1.text}`,
      `[10.0.0.5]:2222 ${K2.text}`,
      `10.0.0.6 ${K1.text}`,
    ].join('\n');
    writeFileSync(plain, `${plainLines}\n`);
    const hashed = join(dir, 'hashed');
    writeFileSync(hashed, `${plainLines}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', hashed], { stdio: 'ignore' });
    const hashedText = readFileSync(hashed, 'utf8');
    test('ssh-keygen -H hashed the names', () => {
      assert.equal(hashedText.split('\n').filter((l) => l.startsWith('|1|')).length, 2);
    });
    const lookups: Array<[string, number, string]> = [
      ['a.example.com', 22, 'a.example.com'],
      ['bad.example.com', 22, 'bad.example.com'],
      ['10.0.0.5', 2222, '[10.0.0.5]:2222'],
      ['10.0.0.5', 22, '10.0.0.5'],
      ['10.0.0.6', 22, '10.0.0.6'],
      ['10.0.0.6', 2200, '[10.0.0.6]:2200'],
    ];
    for (const [host, port, name] of lookups) {
      test(`${name}`, () => {
        for (const file of [plain, hashed]) {
          let openssh = false;
          try {
            openssh = execFileSync('ssh-keygen', ['-F', name, '-f', file]).toString().includes('ssh-ed25519');
          } catch {
            openssh = false; // exit 1: not found
          }
          const ours = pinsFor(parseKnownHosts(readFileSync(file, 'utf8')), host, port).keys.length > 0;
          assert.equal(
            ours,
            openssh,
            `${file === plain ? 'plain' : 'hashed'}: ours ${ours}, OpenSSH ${openssh}`,
          );
        }
      });
    }
  });

  test('hostFieldMatches: negation wins, wildcards, ports', () => {
    assert.equal(hostFieldMatches('*,!10.0.0.1', '10.0.0.1', 22), false);
    assert.equal(hostFieldMatches('*,!10.0.0.1', '10.0.0.2', 22), true);
    assert.equal(hostFieldMatches('[h]:*', 'h', 2222), true);
    assert.equal(hostFieldMatches('!h', 'h', 22), false);
    assert.equal(hostFieldMatches('!h', 'x', 22), false);
  });

  test('fingerprint as ssh-keygen -l prints it; host key algorithms per pinned type', () => {
    assert.match(fingerprintOf(K1.sha256), /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.deepEqual(hostKeyAlgorithmsFor(['ssh-ed25519', 'ssh-rsa', 'ssh-ed25519']), [
      'ssh-ed25519',
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
    ]);
  });
});
