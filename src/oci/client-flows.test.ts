/**
 * The distribution client against small in-process HTTP servers: the Basic
 * and Bearer challenge flows, the token cache, retries on 429/5xx with
 * Retry-After, digest mismatches, and redirects to a blob host that must not
 * receive the registry's Authorization. (End to end against a real registry:
 * test/e2e.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { DistributionClient } from './client.js';
import {
  DigestMismatchError,
  RegistryAuthError,
  RegistryNotFoundError,
  RegistryUnavailableError,
} from './errors.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

interface Server {
  host: string;
  origin: string;
  seen: Seen[];
  handle: (req: IncomingMessage, res: ServerResponse) => void;
}

const servers: Array<{ close: () => Promise<void> }> = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(): Promise<Server> {
  const s: Server = { host: '', origin: '', seen: [], handle: (_q, r) => r.writeHead(404).end() };
  const server = createServer((req, res) => {
    s.seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => s.handle(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.origin = `http://${s.host}`;
  servers.push({
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  });
  return s;
}

const MANIFEST = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }),
);
const MANIFEST_DIGEST = sha(MANIFEST);
const BLOB = Buffer.from('layer bytes '.repeat(1000));
const BLOB_DIGEST = sha(BLOB);
const cred = { username: 'alice', password: 'p4ss-not-logged', key: '127.0.0.1' };
const basicOf = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

/** A registry that serves MANIFEST at :tag and BLOB, to `authorized(req)`; 401 with `challenge` otherwise. */
function registry(
  s: Server,
  challenge: string,
  authorized: (auth: string | undefined, url: string) => boolean,
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean,
): void {
  s.handle = (req, res) => {
    if (extra?.(req, res)) return;
    if (!authorized(req.headers.authorization, req.url!)) {
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (/\/manifests\//.test(req.url!)) {
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'docker-content-digest': MANIFEST_DIGEST,
      });
      res.end(MANIFEST);
    } else if (req.url!.endsWith(`/blobs/${BLOB_DIGEST}`)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(BLOB);
    } else res.writeHead(404).end();
  };
}

/** A token server at /token: answers `token-<scope>-<n>` to a Basic `cred`, 401 otherwise. */
function tokenServer(s: Server, o: { expiresIn?: number } = {}): { issued: number } {
  const state = { issued: 0 };
  const prev = s.handle;
  s.handle = (req, res) => {
    const u = new URL(req.url!, s.origin);
    if (u.pathname !== '/token') return prev(req, res);
    if (req.headers.authorization !== basicOf(cred.username, cred.password)) {
      res.writeHead(401).end();
      return;
    }
    state.issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token: `token-${u.searchParams.get('scope')}-${state.issued}`,
        expires_in: o.expiresIn ?? 300,
      }),
    );
  };
  return state;
}

async function drain(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A Bearer registry whose realm is its own /token; accepts any token it issued for the repository's scope. */
async function bearerRegistry(o: { expiresIn?: number } = {}) {
  const s = await serve();
  const valid = new Set<string>();
  registry(s, '', (a, url) => {
    const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url)?.[1];
    return a !== undefined && valid.has(`${repo} ${a}`);
  });
  const handle = s.handle;
  s.handle = (req, res) => {
    if (req.url!.startsWith('/v2/')) {
      const orig = res.writeHead.bind(res);
      res.writeHead = ((code: number, headers?: Record<string, string>) =>
        orig(
          code,
          code === 401
            ? { ...headers, 'www-authenticate': `Bearer realm="${s.origin}/token",service="reg.test"` }
            : headers,
        )) as typeof res.writeHead;
    }
    handle(req, res);
  };
  const tokens = tokenServer(s, o);
  const prevToken = s.handle;
  s.handle = (req, res) => {
    if (req.url!.startsWith('/token')) {
      const scope = new URL(req.url!, s.origin).searchParams.get('scope')!;
      const repo = scope.split(':')[1];
      const orig = res.end.bind(res);
      res.end = ((body?: string) => {
        if (typeof body === 'string' && body.startsWith('{')) {
          const t = (JSON.parse(body) as { token: string }).token;
          valid.add(`${repo} Bearer ${t}`);
        }
        return orig(body);
      }) as typeof res.end;
    }
    prevToken(req, res);
  };
  return { s, tokens, revoke: () => valid.clear() };
}

describe('DistributionClient: challenges', () => {
  test('Basic: the first request is anonymous, the retry carries the credential, later ones send it at once', async () => {
    const s = await serve();
    registry(s, 'Basic realm="registry"', (a) => a === basicOf(cred.username, cred.password));
    const c = new DistributionClient({ registry: s.host, credential: cred });
    const m = await c.getManifest('team/app', 'v1');
    assert.equal(m.digest, MANIFEST_DIGEST);
    assert.deepEqual(
      s.seen.map((x) => x.authorization),
      [undefined, basicOf(cred.username, cred.password)],
    );
    assert.deepEqual(await c.getBlobBytes('team/app', BLOB_DIGEST, 1 << 20), BLOB);
    assert.equal(s.seen.length, 3, 'no second challenge');
  });

  test('Basic with no credential: a typed auth error that names no secret', async () => {
    const s = await serve();
    registry(s, 'Basic realm="registry"', (a) => a !== undefined);
    const c = new DistributionClient({ registry: s.host });
    await assert.rejects(
      c.getManifest('team/app', 'v1'),
      (e) => e instanceof RegistryAuthError && e.status === 401 && /no credential/.test(e.message),
    );
  });

  test('Bearer: the token is fetched with Basic from the realm, with service and scope, and used', async () => {
    const { s, tokens } = await bearerRegistry();
    const c = new DistributionClient({ registry: s.host, credential: cred });
    await c.getManifest('team/app', 'v1');
    const tokenReq = s.seen.find((x) => x.url.startsWith('/token'))!;
    const u = new URL(tokenReq.url, s.origin);
    assert.equal(u.searchParams.get('service'), 'reg.test');
    assert.equal(u.searchParams.get('scope'), 'repository:team/app:pull');
    assert.equal(tokenReq.authorization, basicOf(cred.username, cred.password));
    assert.equal(s.seen.at(-1)?.authorization, 'Bearer token-repository:team/app:pull-1');
    assert.equal(tokens.issued, 1);
  });
});

describe('DistributionClient: token cache', () => {
  test('one token per scope, reused until it expires', async () => {
    const { s, tokens } = await bearerRegistry();
    const c = new DistributionClient({ registry: s.host, credential: cred });
    await c.getManifest('team/app', 'v1');
    await c.getBlobBytes('team/app', BLOB_DIGEST, 1 << 20);
    await c.canReadManifest('team/app', 'v1');
    assert.equal(tokens.issued, 1, 'the token is cached for the scope');
    await c.getManifest('team/other', 'v1');
    assert.equal(tokens.issued, 2, 'another repository is another scope');
    const v2 = s.seen.filter((x) => x.url.startsWith('/v2/'));
    // Only the very first request went without a token: the challenge, once learned, is answered up front.
    assert.equal(v2.filter((x) => x.authorization === undefined).length, 1);
  });

  test('an expired token is fetched again', async () => {
    // expires_in 11 s, kept 1 s (a 10 s margin).
    const { s, tokens } = await bearerRegistry({ expiresIn: 11 });
    const c = new DistributionClient({ registry: s.host, credential: cred });
    await c.getManifest('team/app', 'v1');
    await new Promise((r) => setTimeout(r, 1100));
    await c.getManifest('team/app', 'v1');
    assert.equal(tokens.issued, 2);
  });

  test('a token the registry stops accepting is replaced once, then the answer stands', async () => {
    const { s, tokens, revoke } = await bearerRegistry();
    const c = new DistributionClient({ registry: s.host, credential: cred });
    await c.getManifest('team/app', 'v1');
    revoke();
    await c.getManifest('team/app', 'v1');
    assert.equal(tokens.issued, 2);
  });

  test('a wrong password: the token server refuses, the error says so and holds no secret', async () => {
    const { s } = await bearerRegistry();
    const c = new DistributionClient({
      registry: s.host,
      credential: { ...cred, password: 'wrong-secret-value' },
    });
    await assert.rejects(c.getManifest('team/app', 'v1'), (e) => {
      assert.ok(e instanceof RegistryAuthError);
      assert.match(e.message, /token server refused credential "127.0.0.1"/);
      assert.doesNotMatch(e.message, /wrong-secret-value|p4ss/);
      return true;
    });
  });
});

describe('DistributionClient: retries', () => {
  test('429 with Retry-After, then 503, then the manifest: 3 attempts, the Retry-After waited', async () => {
    const s = await serve();
    let n = 0;
    registry(
      s,
      'Basic realm="r"',
      () => true,
      (_req, res) => {
        n++;
        if (n === 1) res.writeHead(429, { 'retry-after': '1' }).end('slow down');
        else if (n === 2) res.writeHead(503).end();
        else return false;
        return true;
      },
    );
    const c = new DistributionClient({ registry: s.host });
    const start = performance.now();
    const m = await c.getManifest('team/app', 'v1');
    assert.equal(m.digest, MANIFEST_DIGEST);
    assert.equal(s.seen.length, 3);
    assert.ok(performance.now() - start >= 950, 'waited the Retry-After');
  });

  test('5xx on every attempt: RegistryUnavailableError after the configured attempts', async () => {
    const s = await serve();
    s.handle = (_q, r) => r.writeHead(502).end();
    const c = new DistributionClient({ registry: s.host, attempts: 2 });
    await assert.rejects(
      c.getManifest('team/app', 'v1'),
      (e) => e instanceof RegistryUnavailableError && /unexpected HTTP 502/.test(e.message),
    );
    assert.equal(s.seen.length, 2);
  });

  test('404 is not retried', async () => {
    const s = await serve();
    s.handle = (_q, r) => r.writeHead(404).end();
    const c = new DistributionClient({ registry: s.host });
    await assert.rejects(c.getManifest('team/app', 'v9'), RegistryNotFoundError);
    assert.equal(s.seen.length, 1);
  });

  test('a registry that does not answer: each attempt times out, then a clear error', async () => {
    const s = await serve();
    s.handle = () => undefined;
    // Long enough per attempt for each request to reach the server on a loaded machine (the
    // count below is the server's); the error message proves the client's own count.
    const c = new DistributionClient({ registry: s.host, attempts: 2, timeoutMs: 1500 });
    await assert.rejects(
      c.getManifest('team/app', 'v1'),
      (e) =>
        e instanceof RegistryUnavailableError &&
        /did not answer after 2 attempts \(no answer in time/.test(e.message),
    );
    assert.equal(s.seen.length, 2);
  });

  test("the caller's abort during a Retry-After wait rejects at once with its reason", async () => {
    const s = await serve();
    s.handle = (_q, r) => r.writeHead(429, { 'retry-after': '20' }).end();
    const c = new DistributionClient({ registry: s.host });
    const ac = new AbortController();
    const p = c.getManifest('team/app', 'v1', ac.signal);
    while (s.seen.length < 1) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30));
    ac.abort(new Error('cancelled'));
    await assert.rejects(p, /cancelled/);
    assert.equal(s.seen.length, 1);
  });
});

describe('DistributionClient: digests', () => {
  test('a manifest by digest whose bytes hash otherwise is refused', async () => {
    const s = await serve();
    registry(s, 'Basic realm="r"', () => true);
    const c = new DistributionClient({ registry: s.host });
    const wrong = sha('something else');
    await assert.rejects(
      c.getManifest('team/app', wrong),
      (e) => e instanceof DigestMismatchError && e.expected === wrong && e.actual === MANIFEST_DIGEST,
    );
  });

  test('a manifest by tag whose Docker-Content-Digest disagrees with the bytes is refused', async () => {
    const s = await serve();
    const lie = sha('lie');
    s.handle = (_q, r) => r.writeHead(200, { 'docker-content-digest': lie }).end(MANIFEST);
    const c = new DistributionClient({ registry: s.host });
    await assert.rejects(
      c.getManifest('team/app', 'v1'),
      (e) => e instanceof DigestMismatchError && e.expected === lie,
    );
  });

  test('a small blob and a streamed blob with the wrong bytes both fail', async () => {
    const s = await serve();
    s.handle = (_q, r) => r.writeHead(200).end(Buffer.concat([BLOB.subarray(1), Buffer.from('x')]));
    const c = new DistributionClient({ registry: s.host });
    await assert.rejects(c.getBlobBytes('team/app', BLOB_DIGEST, 1 << 20), DigestMismatchError);
    const stream = await c.openBlob('team/app', BLOB_DIGEST, BLOB.length);
    await assert.rejects(drain(stream), DigestMismatchError);
  });

  test('a streamed blob with the right bytes flows through', async () => {
    const s = await serve();
    registry(s, 'Basic realm="r"', () => true);
    const c = new DistributionClient({ registry: s.host });
    assert.deepEqual(await drain(await c.openBlob('team/app', BLOB_DIGEST, BLOB.length)), BLOB);
  });
});

describe('DistributionClient: redirects', () => {
  test('a blob redirected to another host is fetched without the Authorization header', async () => {
    const storage = await serve();
    storage.handle = (_q, r) => r.writeHead(200).end(BLOB);
    const s = await serve();
    registry(
      s,
      'Basic realm="r"',
      (a) => a === basicOf(cred.username, cred.password),
      (req, res) => {
        if (!req.url!.includes('/blobs/') || !req.headers.authorization) return false;
        res.writeHead(307, { location: `${storage.origin}/data/${BLOB_DIGEST}?sig=abc` }).end();
        return true;
      },
    );
    const c = new DistributionClient({ registry: s.host, credential: cred });
    await c.getManifest('team/app', 'v1'); // learns the Basic challenge
    assert.deepEqual(await c.getBlobBytes('team/app', BLOB_DIGEST, 1 << 20), BLOB);
    assert.deepEqual(await drain(await c.openBlob('team/app', BLOB_DIGEST, BLOB.length)), BLOB);
    assert.equal(storage.seen.length, 2);
    for (const x of storage.seen)
      assert.equal(x.authorization, undefined, 'no credential to the storage host');
    // The registry itself got the credential on the blob requests.
    assert.ok(s.seen.filter((x) => x.url.includes('/blobs/')).every((x) => x.authorization !== undefined));
  });

  test('a redirect on the same origin keeps the Authorization header', async () => {
    const s = await serve();
    const auth = basicOf(cred.username, cred.password);
    registry(
      s,
      'Basic realm="r"',
      (a) => a === auth,
      (req, res) => {
        if (req.url!.startsWith('/v2/team/app/blobs/') && req.headers.authorization) {
          res.writeHead(307, { location: `/v2/mirror/blobs/${BLOB_DIGEST}` }).end();
          return true;
        }
        return false;
      },
    );
    const c = new DistributionClient({ registry: s.host, credential: cred });
    await c.getManifest('team/app', 'v1');
    assert.deepEqual(await c.getBlobBytes('team/app', BLOB_DIGEST, 1 << 20), BLOB);
    assert.equal(s.seen.find((x) => x.url.startsWith('/v2/mirror/'))?.authorization, auth);
  });
});
