/**
 * Where the distribution client sends a password (core/credential-transport.ts):
 * a small in-process registry and token server, reached on loopback and on
 * this machine's own non-loopback address (the traffic stays on the machine).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, test } from 'node:test';
import { DistributionClient } from './client.js';
import { InsecureCredentialTransportError } from './errors.js';

const CRED = { username: 'alice', password: 'pw-9d2f-not-for-http', key: 'reg.example' };
const BASIC = `Basic ${Buffer.from(`${CRED.username}:${CRED.password}`).toString('base64')}`;
const MANIFEST = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');

/** The machine's own non-loopback IPv4 address (the test needs one; it fails loudly otherwise). */
function ownAddress(): string {
  for (const addrs of Object.values(networkInterfaces()))
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('this machine has no non-loopback IPv4 address; the test needs one to play a remote host');
}

let server: Server;
let port: number;
let host: string;
/** The realm the registry's challenge names, and its scheme, per test. */
let challenge = '';
const tokenRequests: Array<{ authorization?: string }> = [];
const registryAuth: Array<string | undefined> = [];

before(async () => {
  host = ownAddress();
  server = createServer((req: IncomingMessage, res) => {
    if (req.url?.startsWith('/token')) {
      tokenRequests.push({
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: 'tok', expires_in: 300 }));
      return;
    }
    registryAuth.push(req.headers.authorization);
    const ok = req.headers.authorization === 'Bearer tok' || req.headers.authorization === BASIC;
    if (!ok) {
      res.writeHead(401, { 'www-authenticate': challenge });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end(MANIFEST);
  });
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

function reset(ch: string): void {
  challenge = ch;
  tokenRequests.length = 0;
  registryAuth.length = 0;
}

test('a plain-http token realm on a non-loopback host: the password is not sent, a clear error', async () => {
  reset(`Bearer realm="http://${host}:${port}/token",service="reg"`);
  const c = new DistributionClient({ registry: `127.0.0.1:${port}`, credential: CRED, attempts: 1 });
  await assert.rejects(c.getManifest('app', 'latest'), (err: Error) => {
    assert.ok(err instanceof InsecureCredentialTransportError, String(err));
    assert.match(err.message, new RegExp(`not sent to http://${host.replaceAll('.', '\\.')}:${port}`));
    assert.match(err.message, /--insecure-registry/);
    assert.ok(!err.message.includes(CRED.password));
    return true;
  });
  assert.deepEqual(tokenRequests, [], 'the token server was never asked');
});

test('the same realm on a host listed as insecure: Basic goes to it', async () => {
  reset(`Bearer realm="http://${host}:${port}/token",service="reg"`);
  const c = new DistributionClient({
    registry: `127.0.0.1:${port}`,
    credential: CRED,
    insecureHosts: [`${host}:5000`],
    attempts: 1,
  });
  const m = await c.getManifest('app', 'latest');
  assert.equal(m.bytes.toString(), MANIFEST.toString());
  assert.deepEqual(tokenRequests, [{ authorization: BASIC }]);
});

test('a loopback token realm gets Basic (as Docker and containerd allow)', async () => {
  reset(`Bearer realm="http://127.0.0.1:${port}/token",service="reg"`);
  const c = new DistributionClient({ registry: `127.0.0.1:${port}`, credential: CRED, attempts: 1 });
  await c.getManifest('app', 'latest');
  assert.deepEqual(tokenRequests, [{ authorization: BASIC }]);
});

test('without a credential a plain-http realm is asked anonymously', async () => {
  reset(`Bearer realm="http://${host}:${port}/token",service="reg"`);
  const c = new DistributionClient({ registry: `127.0.0.1:${port}`, attempts: 1 });
  await c.getManifest('app', 'latest');
  assert.deepEqual(tokenRequests, [{}]);
});

test('a Basic challenge from a plain-http registry not listed as insecure: not answered', async () => {
  reset('Basic realm="reg"');
  const c = new DistributionClient({
    registry: `${host}:${port}`,
    credential: CRED,
    plainHttp: true,
    insecureHosts: [],
    attempts: 1,
  });
  await assert.rejects(c.getManifest('app', 'latest'), InsecureCredentialTransportError);
  assert.ok(!registryAuth.includes(BASIC), 'the registry never saw the password');
  // Listed (the default for plainHttp: the registry itself): answered.
  reset('Basic realm="reg"');
  const listed = new DistributionClient({
    registry: `${host}:${port}`,
    credential: CRED,
    plainHttp: true,
    attempts: 1,
  });
  await listed.getManifest('app', 'latest');
  assert.ok(registryAuth.includes(BASIC));
});
