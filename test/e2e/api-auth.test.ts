/**
 * CI authentication against a local OIDC issuer: GitHub- and GitLab-shaped ID
 * tokens verified with jose (issuer, audience, RS256, expiry), mapped to
 * tenants by immutable ids; static tokens by hash. No token in any message.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { AuthError, type Authenticator, createAuthenticator } from '../../src/http/auth.js';
import { type OidcIssuer, startOidcIssuer } from '../harness/cloud/oidc-issuer.js';

let idp: OidcIssuer;
let auth: Authenticator;
const STATIC = 'pk-static-token-2f9c1d';
const GH = {
  repository: 'acme/app',
  repository_id: '650001',
  repository_owner_id: '42',
  ref: 'refs/heads/main',
};

before(async () => {
  idp = await startOidcIssuer();
  const cfg = parseConfig({
    registries: [
      { name: 'r', kind: 'static', server: 'x.io', username: { value: 'u' }, password: { value: 'p' } },
    ],
    api: {
      auth: {
        oidc: [
          {
            issuer: idp.info.issuer,
            audience: 'pullkeeper',
            allow: [
              { claims: { repository_id: '650001', ref: 'refs/heads/main' }, tenants: ['team-a'] },
              { claims: { project_id: 77, ref_protected: 'true' }, tenants: '*' },
            ],
          },
        ],
        tokens: [
          { name: 'ops', sha256: createHash('sha256').update(STATIC).digest('hex'), tenants: ['team-b'] },
        ],
      },
    },
  });
  auth = createAuthenticator(cfg.api);
});
after(() => idp?.stop());

async function status(header: string | undefined): Promise<{ code: number; message: string }> {
  try {
    await auth.authenticate(header);
    return { code: 200, message: '' };
  } catch (err) {
    assert.ok(err instanceof AuthError, `unexpected ${(err as Error).name}`);
    return { code: err.status, message: err.message };
  }
}

describe('OIDC tokens', () => {
  test('a GitHub token for our audience and an allowed repository id: its tenants', async () => {
    const p = await auth.authenticate(
      `Bearer ${await idp.sign({ aud: 'pullkeeper', sub: 'repo:acme/app:ref:refs/heads/main', ...GH })}`,
    );
    assert.deepEqual(p.tenants, ['team-a']);
    assert.equal(p.kind, 'oidc');
  });
  test('a GitLab token (string claims) matches a rule written with a number', async () => {
    const p = await auth.authenticate(
      `Bearer ${await idp.sign({ aud: 'pullkeeper', sub: 'project_path:g/p:ref_type:branch:ref:main', project_id: '77', ref_protected: 'true' })}`,
    );
    assert.equal(p.tenants, '*');
  });
  const bad: Array<[string, () => Promise<string | undefined>, number, RegExp]> = [
    ['no header', async () => undefined, 401, /missing bearer token/],
    ['not Bearer', async () => 'Basic dTpw', 401, /missing bearer token/],
    [
      'wrong audience (the issuer default)',
      async () => `Bearer ${await idp.sign({ aud: 'https://github.com/acme', ...GH })}`,
      401,
      /audience is not pullkeeper's/,
    ],
    [
      'expired beyond the skew',
      async () =>
        `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH }, { ttlSec: 60, iatOffsetSec: -600 })}`,
      401,
      /expired/,
    ],
    [
      'not yet valid',
      async () =>
        `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH, nbf: Math.floor(Date.now() / 1000) + 3600 })}`,
      401,
      /"nbf" claim/,
    ],
    [
      'another repository (same name, new id)',
      async () => `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH, repository_id: '999' })}`,
      403,
      /no api\.auth\.oidc rule/,
    ],
    [
      'another branch',
      async () => `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH, ref: 'refs/heads/dev' })}`,
      403,
      /no api\.auth\.oidc rule/,
    ],
    [
      'alg none',
      async () => `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH }, { alg: 'none' })}`,
      401,
      /bearer token is not valid|malformed|not signed with RS256/,
    ],
    [
      'HS256',
      async () => `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH }, { alg: 'HS256' })}`,
      401,
      /not signed with RS256/,
    ],
    [
      'an unknown kid',
      async () => `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH }, { kid: 'nope' })}`,
      401,
      /no key of the issuer's JWKS/,
    ],
    [
      'an untrusted issuer',
      async () => `Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH, iss: 'https://evil.example' })}`,
      401,
      /issuer is not trusted/,
    ],
    [
      'a forged signature',
      async () => `Bearer ${(await idp.sign({ aud: 'pullkeeper', ...GH })).slice(0, -6)}AAAAAA`,
      401,
      /signature does not verify/,
    ],
    ['a wrong static token', async () => 'Bearer pk-static-token-wrong', 401, /bearer token is not valid/],
  ];
  for (const [name, header, code, msg] of bad) {
    test(`refused: ${name}`, async () => {
      const h = await header();
      const got = await status(h);
      assert.equal(got.code, code, got.message);
      assert.match(got.message, msg);
      const token = h?.split(' ')[1];
      if (token && token.length > 8) assert.ok(!got.message.includes(token), 'the token is never echoed');
    });
  }
  test('a token from a key rotated in within the refetch cooldown (30 s) is refused clearly, not crashed', async () => {
    await idp.rotateKey();
    const got = await status(`Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH })}`);
    assert.equal(got.code, 401);
    assert.match(got.message, /no key of the issuer's JWKS matches/);
  });
  test('the JWKS is fetched once per process, not per request', async () => {
    const before = idp.hits()['/.well-known/jwks'] ?? 0;
    for (let i = 0; i < 5; i++)
      await status(`Bearer ${await idp.sign({ aud: 'pullkeeper', ...GH }, { kid: 'k1' })}`);
    assert.equal((idp.hits()['/.well-known/jwks'] ?? 0) - before, 0);
  });
});

describe('static tokens', () => {
  test('a configured token by its hash: its tenants', async () => {
    const p = await auth.authenticate(`Bearer ${STATIC}`);
    assert.deepEqual(p, { kind: 'token', name: 'token ops', tenants: ['team-b'] });
  });
  test('no API auth configured: every token is refused', async () => {
    const none = createAuthenticator(undefined);
    await assert.rejects(none.authenticate(`Bearer ${STATIC}`), /bearer token is not valid/);
  });
});
