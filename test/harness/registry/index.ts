/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8)
 * on a free 127.0.0.1 port, with filesystem storage under the caller's dir and
 * delete enabled, in one of three auth modes:
 *
 * - `htpasswd`: Basic auth against a bcrypt htpasswd file. distribution 2.8
 *   re-reads the file whenever its mtime changes (checked before every request;
 *   measured here), so `allow()`/`revoke()` rewrite the file atomically and
 *   bump its mtime: no restart.
 * - `token`: Bearer tokens from our own in-process token server (node:http on
 *   a free port). It checks Basic credentials (GET) or the OAuth2 password
 *   grant (POST, as containerd sends) against the allow-list, grants every
 *   requested scope to allowed users, and gives anonymous callers a token with
 *   an empty access list (so pulls fail with 401 like real registries).
 *   Faults: `failNext(n, status)`, `setTokenDelay(ms)`, `setTokenTtl(s)`.
 * - `none`: no auth at all.
 *
 * The allow-list is the whole truth: the registry accepts exactly the allowed
 * credentials. Passwords are never logged; the token log keeps user names only.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, rename, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { delimiter, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../ports.js';
import { HarnessError, run, type Service, startService } from '../proc.js';
import { parseScope } from '../token-scope.js';
import type { Component, DoctorCheck } from '../types.js';

export type RegistryAuth = 'htpasswd' | 'token' | 'none';

export interface RegistryInfo {
  /** `127.0.0.1:PORT`, the registry host as it appears in image references. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  auth: RegistryAuth;
  /** Token mode: the realm the registry's challenge names (`http://127.0.0.1:P/token`). */
  tokenRealm?: string;
  /** Token mode: the `service` of challenges and the token audience. */
  service?: string;
  /** Token mode: the token issuer. */
  issuer?: string;
  /** The scratch directory (config.yml, htpasswd, token.crt, registry.log). */
  dir: string;
  /** Filesystem storage root of the registry (`<dir>/data`). */
  storageDir: string;
  logFile: string;
}

/** One request the token server answered (no secrets: user name only). */
export interface TokenRequestRecord {
  method: string;
  /** The user name that authenticated; undefined for anonymous or refused requests. */
  user?: string;
  /** Requested scopes, as sent. */
  scopes: string[];
  /** Scopes the token granted (`repository:team-a/app:pull`), after the user's repository limits. */
  granted?: string[];
  status: number;
  at: number;
}

export interface Registry extends Component<RegistryInfo> {
  /** PID of the running docker-registry (changes after restart()). */
  readonly pid: number;
  /** Adds or replaces a credential the registry accepts. */
  allow(username: string, password: string): Promise<void>;
  /** Removes a user; its credential is refused from the next request on. */
  revoke(username: string): Promise<void>;
  /**
   * Token mode: the user is granted only repositories whose names start with one
   * of the prefixes (like a registry's repository permissions: ACR scope maps,
   * ECR repository policies); undefined lifts the limit.
   */
  limitRepositories(username: string, prefixes: string[] | undefined): void;
  /** Token mode: the next `n` token requests fail with `status` (default 503). */
  failNext(n: number, status?: number): void;
  /** Token mode: every token response is delayed by `ms` (0 to stop). */
  setTokenDelay(ms: number): void;
  /** Token mode: lifetime of issued tokens in seconds (default 300). */
  setTokenTtl(seconds: number): void;
  /** Token mode: every request the token server saw, oldest first. */
  tokenRequests(): readonly TokenRequestRecord[];
  /**
   * Replaces the bytes the registry stores (and serves) for a blob or manifest
   * digest, behind the registry's back. For corrupt-content tests.
   */
  overwriteBlob(digest: string, data: Buffer): Promise<void>;
  /** Path of a blob's data file in the filesystem storage. */
  blobPath(digest: string): string;
  /** Restarts docker-registry on the same port (storage and credentials kept). */
  restart(): Promise<void>;
}

export interface StartRegistryOptions {
  dir: string;
  auth: RegistryAuth;
  /** Aborts startup only. */
  signal?: AbortSignal;
  /** Initial credentials. */
  users?: Record<string, string>;
}

const SERVICE = 'test-registry';
const ISSUER = 'test-issuer';
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32, no padding. */
function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust key ID: base32(sha256(SPKI DER)[:30]) in groups of 4 joined by ':'. */
export function libtrustKeyId(spkiDer: Buffer): string {
  const b = base32(createHash('sha256').update(spkiDer).digest().subarray(0, 30));
  return b.match(/.{1,4}/g)!.join(':');
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

interface Access {
  type: string;
  name: string;
  actions: string[];
}

function basicCreds(req: IncomingMessage): { username: string; password: string } | 'none' | 'malformed' {
  const h = req.headers.authorization;
  if (!h) return 'none';
  const m = /^Basic\s+(\S+)$/i.exec(h);
  if (!m) return 'malformed';
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return 'malformed';
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

/** Constant-time-ish compare; this is a test server, but no reason to be sloppy. */
function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return ha.equals(hb);
}

interface TokenServer {
  server: Server;
  port: number;
  certPath: string;
  failNext(n: number, status: number): void;
  setDelay(ms: number): void;
  setTtl(s: number): void;
  log: TokenRequestRecord[];
}

async function startTokenServer(
  dir: string,
  users: Map<string, string>,
  repoLimits: Map<string, string[]>,
): Promise<TokenServer> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.crt');
  await writeFile(keyPath, keyPem, { mode: 0o600 });
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    keyPath,
    '-subj',
    '/CN=pullkeeper test token issuer',
    '-days',
    '3650',
    '-out',
    certPath,
  ]);
  const kid = libtrustKeyId(publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  const signingKey = createPrivateKey(keyPem);

  let failures = 0;
  let failStatus = 503;
  let delayMs = 0;
  let ttl = 300;
  const log: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>(); // refresh token -> user

  const mint = (user: string | undefined, scopes: string[]) => {
    const now = Math.floor(Date.now() / 1000);
    const access: Access[] = [];
    if (user !== undefined) {
      const limit = repoLimits.get(user);
      for (const s of scopes) {
        const a = parseScope(s);
        // A repository outside the user's prefixes is left out of the grant (the registry then answers 401).
        if (a && (!limit || a.type !== 'repository' || limit.some((p) => a.name.startsWith(p))))
          access.push(a);
      }
    }
    const header = { typ: 'JWT', alg: 'ES256', kid };
    const claims = {
      iss: ISSUER,
      sub: user ?? '',
      aud: SERVICE,
      exp: now + ttl,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key: signingKey, dsaEncoding: 'ieee-p1363' });
    return {
      token: `${input}.${b64url(sig)}`,
      expiresIn: ttl,
      issuedAt: new Date(now * 1000).toISOString(),
      granted: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: TokenRequestRecord = { method: req.method ?? 'GET', scopes: [], status: 0, at: Date.now() };
    log.push(record);
    const reply = (status: number, body: unknown, headers?: Record<string, string>) => {
      record.status = status;
      sendJson(res, status, body, headers);
    };
    if (delayMs > 0) await sleep(delayMs);
    if (url.pathname !== '/token')
      return reply(404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
    if (failures > 0) {
      failures--;
      return reply(failStatus, { errors: [{ code: 'UNAVAILABLE', message: 'injected failure' }] });
    }
    let user: string | undefined;
    let offline = false;
    if (req.method === 'GET') {
      record.scopes = url.searchParams.getAll('scope');
      const creds = basicCreds(req);
      if (creds === 'malformed') return reply(400, { error: 'invalid_request' });
      if (creds !== 'none') {
        const want = users.get(creds.username);
        if (want === undefined || !sameSecret(want, creds.password)) {
          return reply(
            401,
            { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
            { 'www-authenticate': 'Basic realm="test-token"' },
          );
        }
        user = creds.username;
      }
      offline = url.searchParams.get('offline_token') === 'true';
    } else if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      record.scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const grant = form.get('grant_type');
      if (grant === 'password') {
        const username = form.get('username') ?? '';
        const want = users.get(username);
        if (want === undefined || !sameSecret(want, form.get('password') ?? '')) {
          return reply(401, { error: 'invalid_grant' });
        }
        user = username;
      } else if (grant === 'refresh_token') {
        const u = refreshTokens.get(form.get('refresh_token') ?? '');
        if (u === undefined || !users.has(u)) return reply(401, { error: 'invalid_grant' });
        user = u;
      } else {
        return reply(400, { error: 'unsupported_grant_type' });
      }
      offline = form.get('access_type') === 'offline';
    } else {
      return reply(405, { error: 'method not allowed' });
    }
    record.user = user;
    const t = mint(user, record.scopes);
    record.granted = t.granted;
    const body: Record<string, unknown> = {
      token: t.token,
      access_token: t.token,
      expires_in: t.expiresIn,
      issued_at: t.issuedAt,
    };
    if (offline && user !== undefined) {
      const rt = randomBytes(24).toString('base64url');
      refreshTokens.set(rt, user);
      body.refresh_token = rt;
    }
    reply(200, body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    server,
    port,
    certPath,
    log,
    failNext(n, status) {
      failures = n;
      failStatus = status;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    setTtl(s) {
      ttl = s;
    },
  };
}

function configYaml(o: {
  storageDir: string;
  port: number;
  auth: RegistryAuth;
  htpasswdPath: string;
  tokenRealm?: string;
  certPath?: string;
}): string {
  const q = JSON.stringify; // JSON strings are valid YAML scalars
  const lines = [
    'version: 0.1',
    'log: { level: info, accesslog: { disabled: true } }',
    `storage: { filesystem: { rootdirectory: ${q(o.storageDir)} }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } }`,
    `http: { addr: ${q(`127.0.0.1:${o.port}`)}, secret: test-only }`,
  ];
  if (o.auth === 'htpasswd') {
    lines.push('auth:', `  htpasswd: { realm: test-basic, path: ${q(o.htpasswdPath)} }`);
  } else if (o.auth === 'token') {
    lines.push(
      'auth:',
      `  token: { realm: ${q(o.tokenRealm!)}, service: ${SERVICE}, issuer: ${ISSUER}, rootcertbundle: ${q(o.certPath!)} }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** bcrypt line for one user, computed by `htpasswd` (password on stdin, never in argv). */
async function htpasswdLine(username: string, password: string): Promise<string> {
  if (username.includes(':') || /[\r\n]/.test(username)) {
    throw new HarnessError('htpasswd user names cannot contain ":" or newlines');
  }
  const r = await run('htpasswd', ['-niB', '-C', '5', username], { input: `${password}\n` });
  return r.stdout.trim();
}

/** Starts docker-registry (and the token server in token mode). */
export async function startRegistry(opts: StartRegistryOptions): Promise<Registry> {
  const dir = resolve(opts.dir);
  const storageDir = join(dir, 'data');
  await mkdir(storageDir, { recursive: true });
  const htpasswdPath = join(dir, 'htpasswd');
  const logFile = join(dir, 'registry.log');
  const configPath = join(dir, 'config.yml');
  const users = new Map<string, string>();
  const repoLimits = new Map<string, string[]>();
  const hashes = new Map<string, { password: string; line: string }>();
  let htpasswdMtime = Math.floor(Date.now() / 1000) - 1000;

  // allow()/revoke() may overlap: writes go one at a time, each with the latest list.
  let writing: Promise<void> = Promise.resolve();
  const writeHtpasswd = () => {
    const next = writing.then(writeHtpasswdNow, writeHtpasswdNow);
    writing = next.catch(() => undefined);
    return next;
  };
  const writeHtpasswdNow = async () => {
    const lines: string[] = [];
    for (const [u, p] of [...users].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      let h = hashes.get(u);
      if (!h || h.password !== p) {
        h = { password: p, line: await htpasswdLine(u, p) };
        hashes.set(u, h);
      }
      lines.push(h.line);
    }
    for (const u of hashes.keys()) if (!users.has(u)) hashes.delete(u);
    const tmp = `${htpasswdPath}.tmp`;
    await writeFile(tmp, lines.length ? `${lines.join('\n')}\n` : '', { mode: 0o600 });
    // The registry reloads when the mtime differs from what it saw; two writes in
    // the same clock tick must still differ, so the mtime is our own counter.
    htpasswdMtime += 1;
    await utimes(tmp, htpasswdMtime, htpasswdMtime);
    await rename(tmp, htpasswdPath);
  };

  let token: TokenServer | undefined;
  let tokenRealm: string | undefined;
  if (opts.auth === 'token') {
    token = await startTokenServer(dir, users, repoLimits);
    tokenRealm = `http://127.0.0.1:${token.port}/token`;
  }
  for (const [u, p] of Object.entries(opts.users ?? {})) users.set(u, p);
  if (opts.auth === 'htpasswd') await writeHtpasswd();

  let port = 0;
  let svc: Service | undefined;
  const launch = async (signal?: AbortSignal) => {
    const base = `http://127.0.0.1:${port}`;
    return startService({
      name: `docker-registry(${opts.auth})`,
      command: 'docker-registry',
      args: ['serve', configPath],
      logFile,
      signal,
      readyTimeoutMs: 15_000,
      ready: async (s) => {
        const r = await fetch(`${base}/v2/`, { signal: s });
        await r.arrayBuffer();
        return r.status === 200 || r.status === 401;
      },
    });
  };
  // A free port can be taken by someone else between probe and bind: retry.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    await writeFile(
      configPath,
      configYaml({ storageDir, port, auth: opts.auth, htpasswdPath, tokenRealm, certPath: token?.certPath }),
    );
    try {
      svc = await launch(opts.signal);
      break;
    } catch (err) {
      if (attempt >= 3 || opts.signal?.aborted) {
        token?.server.closeAllConnections();
        token?.server.close();
        throw err;
      }
    }
  }

  const host = `127.0.0.1:${port}`;
  const info: RegistryInfo = {
    host,
    url: `http://${host}`,
    auth: opts.auth,
    dir,
    storageDir,
    logFile,
    ...(token ? { tokenRealm, service: SERVICE, issuer: ISSUER } : {}),
  };
  const needToken = (what: string) => {
    if (!token) throw new HarnessError(`${what}: only in token mode (this registry uses ${opts.auth})`);
    return token;
  };
  let stopped = false;
  const blobPath = (digest: string) => {
    const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
    if (!m) throw new HarnessError(`not a sha256 digest: ${digest}`);
    return join(storageDir, 'docker/registry/v2/blobs/sha256', m[1]!.slice(0, 2), m[1]!, 'data');
  };

  return {
    info,
    get pid() {
      return svc!.pid;
    },
    async allow(username, password) {
      if (opts.auth === 'none') return;
      users.set(username, password);
      if (opts.auth === 'htpasswd') await writeHtpasswd();
    },
    limitRepositories(username, prefixes) {
      needToken('limitRepositories');
      if (prefixes) repoLimits.set(username, [...prefixes]);
      else repoLimits.delete(username);
    },
    async revoke(username) {
      if (opts.auth === 'none') return;
      users.delete(username);
      if (opts.auth === 'htpasswd') await writeHtpasswd();
    },
    failNext(n, status = 503) {
      needToken('failNext').failNext(n, status);
    },
    setTokenDelay(ms) {
      needToken('setTokenDelay').setDelay(ms);
    },
    setTokenTtl(seconds) {
      needToken('setTokenTtl').setTtl(seconds);
    },
    tokenRequests() {
      return token ? [...token.log] : [];
    },
    blobPath,
    async overwriteBlob(digest, data) {
      const p = blobPath(digest);
      await access(p).catch(() => {
        throw new HarnessError(`overwriteBlob: ${digest} is not stored in this registry (push it first)`);
      });
      await writeFile(p, data);
    },
    async restart() {
      if (stopped) throw new HarnessError('restart: the registry was stopped');
      await svc!.stop();
      svc = await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await svc?.stop();
      if (token) {
        token.server.closeAllConnections();
        await new Promise<void>((ok) => token!.server.close(() => ok()));
      }
    },
  };
}

async function onPath(cmd: string): Promise<string | undefined> {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const p = join(d, cmd);
    try {
      await access(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Doctor checks for the registry harness: the tools it runs and the package that fixes each. */
export async function checkRegistry(): Promise<DoctorCheck[]> {
  const tools: Array<{ name: string; cmd: string; pkg: string; version?: string[] }> = [
    { name: 'docker-registry', cmd: 'docker-registry', pkg: 'docker-registry', version: ['--version'] },
    { name: 'htpasswd', cmd: 'htpasswd', pkg: 'apache2-utils' },
    { name: 'openssl', cmd: 'openssl', pkg: 'openssl', version: ['version'] },
    { name: 'skopeo', cmd: 'skopeo', pkg: 'skopeo', version: ['--version'] },
    { name: 'umoci', cmd: 'umoci', pkg: 'umoci', version: ['--version'] },
  ];
  const checks = await Promise.all(
    tools.map(async (t): Promise<DoctorCheck> => {
      const fix = `apt-get update && apt-get install -y ${t.pkg}`;
      const path = await onPath(t.cmd);
      if (!path) return { name: t.name, ok: false, detail: `${t.cmd} not found on PATH`, fix };
      let detail = path;
      if (t.version) {
        const r = await run(t.cmd, t.version, { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
        const v = (r?.stdout || r?.stderr || '').trim().split('\n')[0];
        if (v) detail = `${path}: ${v}`;
      }
      return { name: t.name, ok: true, detail };
    }),
  );
  // The busybox test image layer needs a statically linked busybox.
  const bb = await run('file', ['-L', '/bin/busybox'], { allowFail: true }).catch(() => undefined);
  const fixBb = 'apt-get update && apt-get install -y busybox-static';
  try {
    await access('/bin/busybox', fsConstants.X_OK);
    const isStatic = bb ? /statically linked|static-pie/.test(bb.stdout) : true;
    checks.push({
      name: 'busybox-static',
      ok: isStatic,
      detail: isStatic ? '/bin/busybox (static)' : '/bin/busybox is dynamically linked',
      ...(isStatic ? {} : { fix: fixBb }),
    });
  } catch {
    checks.push({ name: 'busybox-static', ok: false, detail: '/bin/busybox not found', fix: fixBb });
  }
  return checks;
}
