/**
 * An https mirror of an OpenID issuer's discovery document and JWKS, for the
 * apiserver's JWT authenticator (`--authentication-config`, `issuer.discoveryURL`).
 * The discovery document is served unchanged except `jwks_uri`, which points
 * here; the JWKS is served without `x5t`/`x5c`. Why: go-jose (the apiserver's
 * JOSE library) rejects a JWKS whose `x5t` is not a base64url SHA-1 thumbprint,
 * and the Entra fake publishes its `kid` there. The keys and the issuer are the
 * fake's own, so tokens are verified exactly as before.
 */
import { createServer, request as httpsRequest, type Server } from 'node:https';
import { makeSelfSignedCert } from '../cloud/common.js';
import { freePort } from '../ports.js';

export interface OidcMirror {
  discoveryURL: string;
  caPem: string;
  stop(): Promise<void>;
}

function getJson(url: string, ca: string | undefined): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

export async function startOidcMirror(o: {
  dir: string;
  discoveryURL: string;
  caPem?: string;
}): Promise<OidcMirror> {
  const tls = await makeSelfSignedCert(o.dir);
  const port = await freePort();
  const base = `https://127.0.0.1:${port}`;
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, async (req, res) => {
    try {
      const doc = await getJson(o.discoveryURL, o.caPem);
      let body: unknown;
      if (req.url === '/.well-known/openid-configuration') body = { ...doc, jwks_uri: `${base}/keys` };
      else if (req.url === '/keys') {
        const jwks = await getJson(String(doc.jwks_uri), o.caPem);
        const keys = (jwks.keys as Array<Record<string, unknown>>).map(({ x5t: _t, x5c: _c, ...k }) => k);
        body = { keys };
      } else {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    } catch (err) {
      res.statusCode = 502;
      res.end(String((err as Error).message));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    discoveryURL: `${base}/.well-known/openid-configuration`,
    caPem: tls.certPem,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
