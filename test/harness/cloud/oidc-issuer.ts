/**
 * A local OIDC issuer that plays a CI system's token service (GitHub Actions:
 * docs "OpenID Connect reference"; GitLab "OIDC Authentication Using ID
 * Tokens"): `/.well-known/openid-configuration` with `issuer` and `jwks_uri`,
 * a JWKS of RS256 keys (`kid`, `use: sig`), and ID tokens signed with them.
 * `sign()` issues tokens as the CI system would; `rotateKey()` adds a new key.
 */
import { createServer, type Server } from 'node:http';
import type { Component } from '../types.js';

export interface OidcIssuerInfo {
  issuer: string;
  jwksUri: string;
}

export interface OidcIssuer extends Component<OidcIssuerInfo> {
  /** An RS256 ID token with iat/nbf/exp around now (exp = now + ttlSec, default 300) plus the claims given. */
  sign(
    claims: Record<string, unknown>,
    o?: { ttlSec?: number; iatOffsetSec?: number; alg?: 'RS256' | 'HS256' | 'none'; kid?: string },
  ): Promise<string>;
  /** A new signing key; the old one stays in the JWKS. */
  rotateKey(): Promise<void>;
  /** Requests served, by path. */
  hits(): Record<string, number>;
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
  const jose = await import('jose');
  type Key = {
    kid: string;
    privateKey: Awaited<ReturnType<typeof jose.generateKeyPair>>['privateKey'];
    jwk: Record<string, unknown>;
  };
  const keys: Key[] = [];
  const addKey = async () => {
    const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
    const kid = `k${keys.length + 1}`;
    keys.push({
      kid,
      privateKey,
      jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
    });
  };
  await addKey();
  const hits: Record<string, number> = {};
  let base = '';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits[path] = (hits[path] ?? 0) + 1;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/.well-known/openid-configuration')
      return json(200, {
        issuer: base,
        jwks_uri: `${base}/.well-known/jwks`,
        subject_types_supported: ['public', 'pairwise'],
        response_types_supported: ['id_token'],
        id_token_signing_alg_values_supported: ['RS256'],
        claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti', 'nbf', 'repository_id', 'project_id'],
      });
    if (path === '/.well-known/jwks') return json(200, { keys: keys.map((k) => k.jwk) });
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    info: { issuer: base, jwksUri: `${base}/.well-known/jwks` },
    async sign(claims, o = {}) {
      const now = Math.floor(Date.now() / 1000) + (o.iatOffsetSec ?? 0);
      const payload = {
        jti: crypto.randomUUID(),
        iss: base,
        iat: now,
        nbf: now - 5,
        exp: now + (o.ttlSec ?? 300),
        ...claims,
      };
      if (o.alg === 'none') {
        const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
        return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(payload)}.`;
      }
      if (o.alg === 'HS256')
        return new jose.SignJWT(payload)
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
          .sign(new TextEncoder().encode('x'.repeat(32)));
      const key = keys.at(-1)!;
      return new jose.SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: o.kid ?? key.kid })
        .sign(key.privateKey);
    },
    rotateKey: addKey,
    hits: () => ({ ...hits }),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
