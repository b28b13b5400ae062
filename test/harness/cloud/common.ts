import { createPublicKey, generateKeyPair, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { run } from '../proc.js';

// ---------------------------------------------------------------- JWT

export type JsonObject = Record<string, unknown>;

export function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export class JwtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwtError';
  }
}

export interface DecodedJwt {
  header: JsonObject;
  payload: JsonObject;
  signingInput: string;
  signature: Buffer;
}

/** Signs `payload` as an RS256 compact JWS. */
export function signJwt(payload: JsonObject, key: KeyObject, header: JsonObject = {}): string {
  const h = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(payload));
  const input = `${h}.${p}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
}

/** Parses a compact JWS without checking it. Throws JwtError when malformed. */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    throw new JwtError('not a compact JWS (three base64url parts)');
  }
  const [h, p, s] = parts as [string, string, string];
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown;
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as unknown;
    if (!isObject(header) || !isObject(payload)) throw new Error('not objects');
    return { header, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
  } catch {
    throw new JwtError('JWT header or payload is not base64url JSON');
  }
}

/** Checks an RS256 signature against any of `keys`; returns the decoded token. */
export function verifyJwt(token: string, keys: KeyObject | KeyObject[]): DecodedJwt {
  const d = decodeJwt(token);
  if (d.header.alg !== 'RS256') throw new JwtError(`unsupported alg ${String(d.header.alg)}`);
  for (const key of Array.isArray(keys) ? keys : [keys]) {
    if (verify('sha256', Buffer.from(d.signingInput), key, d.signature)) return d;
  }
  throw new JwtError('signature does not verify');
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function newRsaKey(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048 }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ publicKey, privateKey }),
    );
  });
}

/** Public JWK (RFC 7517) of an RSA key, with `kid`, `use: sig`, `alg: RS256`. */
export function publicJwk(key: KeyObject, kid: string): JsonObject {
  const jwk = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' });
  return { kty: jwk.kty, use: 'sig', alg: 'RS256', kid, n: jwk.n, e: jwk.e };
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);
export const randomId = (bytes = 16): string => randomBytes(bytes).toString('hex');
export function uuid(): string {
  return globalThis.crypto.randomUUID();
}

// ---------------------------------------------------------------- failures

/**
 * What `failNext` can inject: an HTTP 500, a 429 with Retry-After, a response
 * that only comes after `delayMs` (then succeeds normally), or the answer the
 * real service gives to a wrong credential.
 */
export type FailureKind = 500 | 429 | 'slow' | 'bad-credentials';

export interface FailOptions {
  /** Only requests to this endpoint name are affected (see each fake's `Endpoint` type). Default: any token endpoint. */
  endpoint?: string;
  /** Retry-After seconds for 429 (default 1). */
  retryAfterSeconds?: number;
  /** Delay for 'slow' (default 3000 ms). */
  delayMs?: number;
}

export interface Failure {
  kind: FailureKind;
  retryAfterSeconds: number;
  delayMs: number;
}

export class FailureQueue {
  private readonly queue: Array<Failure & { endpoint?: string; left: number }> = [];

  push(n: number, kind: FailureKind, opts: FailOptions = {}): void {
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`failNext: n must be a positive integer, got ${n}`);
    this.queue.push({
      kind,
      left: n,
      endpoint: opts.endpoint,
      retryAfterSeconds: opts.retryAfterSeconds ?? 1,
      delayMs: opts.delayMs ?? 3000,
    });
  }

  /** Takes the first pending failure that applies to `endpoint`, if any. */
  take(endpoint: string): Failure | undefined {
    const i = this.queue.findIndex((f) => f.endpoint === undefined || f.endpoint === endpoint);
    if (i < 0) return undefined;
    const f = this.queue[i]!;
    f.left -= 1;
    if (f.left === 0) this.queue.splice(i, 1);
    return { kind: f.kind, retryAfterSeconds: f.retryAfterSeconds, delayMs: f.delayMs };
  }

  clear(): void {
    this.queue.length = 0;
  }

  get pending(): number {
    return this.queue.reduce((a, f) => a + f.left, 0);
  }
}

// ---------------------------------------------------------------- minted credentials

/** A docker credential one of the fakes issued. `password` is a secret: never log it. */
export interface MintRecord {
  kind: 'acr' | 'google';
  /** `00000000-0000-0000-0000-000000000000` (ACR refresh token) or `oauth2accesstoken`. */
  username: string;
  password: string;
  expiresAt: Date;
  issuedAt: Date;
  /** Who it was minted for: the Entra client id, or the service account email. */
  subject: string;
  /** ACR login server (service) or Google scopes. */
  audience: string;
}

export type MintListener = (m: MintRecord) => void;

export class MintLog {
  private readonly records: MintRecord[] = [];
  private readonly listeners = new Set<MintListener>();

  add(m: MintRecord): void {
    this.records.push(m);
    for (const cb of this.listeners) {
      try {
        cb(m);
      } catch {
        /* a listener's error must not break the token endpoint */
      }
    }
  }

  list(): MintRecord[] {
    return this.records.map((r) => ({ ...r }));
  }

  on(cb: MintListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** The record whose username and password match exactly and that has not expired. */
  find(username: string, password: string, at = new Date()): MintRecord | undefined {
    return this.records.find((r) => r.username === username && r.password === password && r.expiresAt > at);
  }
}

// ---------------------------------------------------------------- HTTP

export interface RequestLogEntry {
  at: Date;
  method: string;
  /** Path without the query string (queries may carry tokens). */
  path: string;
  endpoint: string;
  status: number;
  injected?: FailureKind;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface FakeRequest {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  /** Form fields (application/x-www-form-urlencoded) or JSON object fields, as strings; repeated keys kept. */
  form: URLSearchParams;
  /** Aborted when the client goes away (for 'slow'). */
  signal: AbortSignal;
}

export type Handler = (req: FakeRequest) => Promise<Reply> | Reply;

export interface Route {
  method: string;
  /** Matched against the path (no query). */
  path: RegExp;
  endpoint: string;
  /** Token endpoints are where failNext applies. */
  mints: boolean;
  handle: Handler;
  /** Reply for an injected failure, in the shape the real service uses. */
  onFailure?: (f: Failure, req: FakeRequest) => Reply | undefined;
}

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
}

export interface FakeServer {
  readonly port: number;
  readonly baseUrl: string;
  readonly log: RequestLogEntry[];
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseForm(contentType: string | undefined, body: Buffer): URLSearchParams {
  if (body.length === 0) return new URLSearchParams();
  if (contentType?.toLowerCase().includes('application/json')) {
    const obj = JSON.parse(body.toString('utf8')) as unknown;
    const form = new URLSearchParams();
    if (isObject(obj)) {
      for (const [k, v] of Object.entries(obj)) {
        for (const item of Array.isArray(v) ? v : [v])
          form.append(k, typeof item === 'string' ? item : String(item));
      }
    }
    return form;
  }
  return new URLSearchParams(body.toString('utf8'));
}

function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Starts a server on 127.0.0.1 (port 0 = any free port; bound directly, so no
 * race with another process taking it between probe and listen).
 */
export async function startFakeServer(opts: {
  routes: () => Route[];
  failures: FailureQueue;
  notFound: (req: FakeRequest) => Reply;
  tls?: TlsMaterial;
  port?: number;
  signal?: AbortSignal;
}): Promise<FakeServer> {
  const log: RequestLogEntry[] = [];
  const closing = new AbortController();

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const signal = AbortSignal.any([gone.signal, closing.signal]);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    let endpoint = 'unknown';
    let injected: FailureKind | undefined;
    let reply: Reply;
    try {
      const body = await readBody(req);
      let form: URLSearchParams;
      try {
        form = parseForm(req.headers['content-type'], body);
      } catch {
        form = new URLSearchParams();
      }
      const fr: FakeRequest = { method, url, headers: req.headers, form, signal };
      const route = opts
        .routes()
        .find((r) => (r.method === method || r.method === '*') && r.path.test(url.pathname));
      if (!route) {
        reply = opts.notFound(fr);
      } else {
        endpoint = route.endpoint;
        const failure = route.mints ? opts.failures.take(route.endpoint) : undefined;
        injected = failure?.kind;
        if (failure?.kind === 'slow') {
          if (!(await delay(failure.delayMs, signal))) {
            log.push({ at: new Date(), method, path: url.pathname, endpoint, status: 0, injected });
            return;
          }
          reply = await route.handle(fr);
        } else if (failure) {
          reply = route.onFailure?.(failure, fr) ?? defaultFailure(failure);
        } else {
          reply = await route.handle(fr);
        }
      }
    } catch (err) {
      reply = { status: 500, body: { error: 'fake_internal_error', error_description: String(err) } };
    }
    log.push({ at: new Date(), method, path: url.pathname, endpoint, status: reply.status, injected });
    if (res.destroyed) return;
    const headers: Record<string, string> = {
      'cache-control': 'no-store',
      pragma: 'no-cache',
      ...reply.headers,
    };
    let payload: string | undefined;
    if (reply.body !== undefined) {
      payload = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
        headers['content-type'] = 'application/json; charset=utf-8';
      }
    }
    res.writeHead(reply.status, headers);
    res.end(payload);
  };

  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, (q, s) => void handler(q, s))
    : createHttpServer((q, s) => void handler(q, s));
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(opts.signal?.reason ?? new Error('aborted'));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      opts.signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  }).catch((err) => {
    server.close();
    throw err;
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  let closed: Promise<void> | undefined;
  return {
    port,
    baseUrl: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    log,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function defaultFailure(f: Failure): Reply {
  if (f.kind === 429) {
    return {
      status: 429,
      headers: { 'retry-after': String(f.retryAfterSeconds) },
      body: { error: 'too_many_requests' },
    };
  }
  if (f.kind === 'bad-credentials') return { status: 401, body: { error: 'invalid_client' } };
  return { status: 500, body: { error: 'server_error' } };
}

/** Basic credentials from an Authorization header, if present. */
export function basicAuth(headers: IncomingMessage['headers']): { user: string; pass: string } | undefined {
  const h = headers.authorization;
  if (!h || !/^basic /i.test(h)) return undefined;
  const raw = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = raw.indexOf(':');
  if (i < 0) return undefined;
  return { user: raw.slice(0, i), pass: raw.slice(i + 1) };
}

/**
 * A self-signed certificate for 127.0.0.1 (SAN IP:127.0.0.1, DNS:localhost),
 * made with the openssl CLI: node:crypto can check X.509 but not create it.
 * Trust it in a client with `ca: certPem` (https.request / tls) or
 * NODE_EXTRA_CA_CERTS=<certFile> for a child process.
 */
export async function makeSelfSignedCert(
  dir: string,
): Promise<TlsMaterial & { certFile: string; keyFile: string }> {
  const certFile = join(dir, `cloud-fake-${randomId(4)}.crt`);
  const keyFile = certFile.replace(/\.crt$/, '.key');
  await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { timeoutMs: 30_000 },
  );
  return {
    certFile,
    keyFile,
    certPem: await readFile(certFile, 'utf8'),
    keyPem: await readFile(keyFile, 'utf8'),
  };
}
