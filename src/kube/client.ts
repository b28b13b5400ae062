/**
 * A small Kubernetes API client for the few calls pullkeeper makes: JSON over
 * one keep-alive HTTP/1.1 agent per cluster (connections reused), or over one
 * HTTP/2 session, every request a stream (`transport: 'http2'`,
 * PULLKEEPER_KUBE_TRANSPORT=http2; leaner for pullkeeper, dearer for the API
 * server: docs/scale.md), a token-bucket rate
 * limit, bounded concurrency (which also bounds the streams), a timeout and an
 * AbortSignal per request, and retries of throttling and 5xx for safe requests.
 *
 * Limits (config `kubeClient`, docs/rotation.md): 32 requests in flight and a
 * token bucket of 1,000 QPS with a burst of 2,000. The in-flight bound is what
 * normally paces pullkeeper (32 / the API server's latency); the bucket only
 * caps a runaway loop. client-go's 5/10 would stretch a 1,000-namespace first
 * rotation (2-3 writes per namespace) over 7-10 minutes, controller-runtime's 20/30
 * over 2-2.5: pullkeeper is a short batch job that writes only what
 * changed, so a brief burst costs the API server less than a long trickle, and
 * API Priority and Fairness still protects it (429 + Retry-After is honoured).
 */

import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  STATUS_CODES,
} from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { parseRetryAfter } from '../core/backoff.js';
import { PullkeeperError } from '../core/errors.js';
import { linkedSignal, Semaphore, TokenBucket } from '../util/concurrency.js';
import { retry } from '../util/retry.js';

/** The longest Retry-After honoured (a longer one is waited this long, then retried). */
const MAX_RETRY_AFTER_MS = 10_000;

export class KubeApiError extends PullkeeperError {
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly apiMessage: string,
    readonly method: string,
    readonly path: string,
    /** The wait the API server asked for (Retry-After, seconds or an HTTP date). */
    readonly retryAfterMs?: number,
  ) {
    super(`${method} ${path}: HTTP ${status} ${reason}${apiMessage ? `: ${apiMessage}` : ''}`);
  }
}

export interface KubeConnection {
  /** https://host:port */
  server: string;
  /** PEM CA bundle; undefined: the system's. */
  ca?: string | Buffer;
  /** Client certificate auth. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Current bearer token (called per request: tokens that rotate, e.g. EKS every ~14 min); the request's signal. */
  token?: (signal?: AbortSignal) => Promise<string | undefined>;
  /** Extra headers from the kubeconfig (exec plugins, impersonation). */
  headers?: Record<string, string>;
  insecureSkipTLSVerify?: boolean;
}

export interface KubeClientOptions {
  qps?: number;
  burst?: number;
  /** Requests in flight at once. */
  concurrency?: number;
  timeoutMs?: number;
  userAgent?: string;
  /**
   * `http1`: a keep-alive HTTP/1.1 pool of `concurrency` connections (the default);
   * `http2`: one HTTP/2 session per client, requests as streams (like client-go; the
   * in-flight bound caps the streams). Default: PULLKEEPER_KUBE_TRANSPORT, else http1
   * (docs/scale.md has the measurement). An http: server gets http2 (h2c) only by name.
   */
  transport?: KubeTransport;
}

export type KubeTransport = 'http1' | 'http2';

/**
 * The transport a client uses when none is given: PULLKEEPER_KUBE_TRANSPORT, else http1.
 * Measured side by side (docs/scale.md): HTTP/2 costs pullkeeper ~25% less CPU, but
 * kube-apiserver ~15-20% more, and the API server's CPU is what bounds a rotation's wall.
 */
export function defaultTransport(env: NodeJS.ProcessEnv = process.env): KubeTransport {
  return env.PULLKEEPER_KUBE_TRANSPORT === 'http2' ? 'http2' : 'http1';
}

export interface KubeStats {
  requests: number;
  writes: number;
  /** TLS/TCP connections opened (a reused connection is not counted again). */
  connections: number;
  retries: number;
}

export interface RequestInit {
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Retry 429/5xx/network errors (only for requests that are safe to repeat). */
  retry?: boolean;
}

export class KubeClient {
  readonly stats: KubeStats = { requests: 0, writes: 0, connections: 0, retries: 0 };
  readonly #conn: KubeConnection;
  readonly #url: URL;
  readonly #agent: Agent | HttpAgent;
  readonly #bucket: TokenBucket;
  readonly #sem: Semaphore;
  readonly #timeoutMs: number;
  readonly #ua: string;
  readonly #transport: KubeTransport;
  #session: ClientHttp2Session | undefined;
  /** Streams open on the session: an idle session does not keep the process alive (like an idle keep-alive socket). */
  readonly #streams = new WeakMap<ClientHttp2Session, number>();
  readonly #base: string;

  constructor(conn: KubeConnection, o: KubeClientOptions = {}) {
    this.#conn = conn;
    this.#url = new URL(conn.server);
    const concurrency = o.concurrency ?? 32;
    this.#agent =
      this.#url.protocol === 'http:'
        ? new HttpAgent({ keepAlive: true, maxSockets: concurrency })
        : new Agent({
            keepAlive: true,
            maxSockets: concurrency,
            ca: conn.ca,
            cert: conn.cert,
            key: conn.key,
            rejectUnauthorized: !conn.insecureSkipTLSVerify,
          });
    this.#agent.on('free', () => undefined);
    const countConnection = () => {
      this.stats.connections++;
    };
    // A new socket is created only when no idle one can be reused.
    const origCreate = (this.#agent as unknown as { createConnection: (...a: unknown[]) => unknown })
      .createConnection;
    (this.#agent as unknown as { createConnection: (...a: unknown[]) => unknown }).createConnection = (
      ...a: unknown[]
    ) => {
      countConnection();
      return origCreate.apply(this.#agent, a);
    };
    this.#bucket = new TokenBucket(o.qps ?? 1000, o.burst ?? 2000);
    this.#sem = new Semaphore(concurrency);
    this.#timeoutMs = o.timeoutMs ?? 15_000;
    this.#ua = o.userAgent ?? 'pullkeeper';
    // An http: server (kubectl proxy) gets HTTP/1.1 unless HTTP/2 (h2c) is asked for by name.
    this.#transport = o.transport ?? (this.#url.protocol === 'https:' ? defaultTransport() : 'http1');
    this.#base = this.#url.pathname.replace(/\/$/, '');
  }

  /** The transport in use (http1 or http2). */
  get transport(): KubeTransport {
    return this.#transport;
  }

  get server(): string {
    return this.#conn.server;
  }

  close(): void {
    this.#agent.destroy();
    this.#session?.destroy();
    this.#session = undefined;
  }

  /** The HTTP/2 session, opened on first use and again after it closed (GOAWAY, error, server gone). */
  #h2(): ClientHttp2Session {
    const cur = this.#session;
    if (cur && !cur.closed && !cur.destroyed) return cur;
    const c = this.#conn;
    // node:http2 loads on first use: the default transport never needs it (it cost a cold start ~10 ms).
    const { connect } = process.getBuiltinModule('node:http2') as typeof import('node:http2');
    const s = connect(this.#url.origin, {
      ca: c.ca,
      cert: c.cert,
      key: c.key,
      rejectUnauthorized: !c.insecureSkipTLSVerify,
      // kube-apiserver allows 1,000 streams per connection by default; the in-flight bound is lower.
      peerMaxConcurrentStreams: 1000,
    });
    this.stats.connections++;
    const forget = () => {
      if (this.#session === s) this.#session = undefined;
    };
    s.on('error', forget); // each stream sees the error too
    s.on('goaway', forget);
    s.on('close', forget);
    this.#session = s;
    return s;
  }

  /**
   * One API call. Safe calls (GET, or `retry: true`) are retried on 429, 5xx and
   * network errors: 4 attempts, full jitter from 200 ms up to 2 s, or the
   * server's Retry-After (at most 10 s). The signal ends waits and the request.
   */
  async request<T = unknown>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    // A write is sent once: no retry loop around it (it is most of a rotation's requests).
    if (!(init.retry ?? method === 'GET')) return this.#once<T>(method, path, init);
    return retry(() => this.#once<T>(method, path, init), {
      attempts: 4,
      baseMs: 200,
      maxDelayMs: 2000,
      signal: init.signal,
      retryable: (err) => {
        const status = err instanceof KubeApiError ? err.status : 0;
        return status === 429 || status >= 500 || !(err instanceof KubeApiError);
      },
      retryAfterMs: (err) => (err instanceof KubeApiError ? err.retryAfterMs : undefined),
      maxRetryAfterMs: MAX_RETRY_AFTER_MS,
      onRetry: () => {
        this.stats.retries++;
      },
    });
  }

  async #once<T>(method: string, path: string, init: RequestInit): Promise<T> {
    await this.#bucket.take(init.signal);
    return this.#sem.run(async () => {
      if (this.#transport === 'http1') return this.#send<T>(method, path, init, init.signal);
      const link = linkedSignal(init.signal, this.#timeoutMs);
      try {
        return await this.#send<T>(method, path, init, link.signal);
      } finally {
        link.dispose();
      }
    }, init.signal);
  }

  /**
   * Sends one request. HTTP/2: `signal` already carries the deadline (a linked signal). HTTP/1.1:
   * `signal` is the caller's, and the deadline is a timer here; neither makes an AbortController
   * or a listener chain per request (they were ~7% of a rotation's CPU: docs/scale.md).
   */
  async #send<T>(
    method: string,
    path: string,
    init: RequestInit,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    this.stats.requests++;
    if (method !== 'GET') this.stats.writes++;
    signal?.throwIfAborted();
    const token = await this.#conn.token?.(signal);
    const body = init.body === undefined ? undefined : Buffer.from(JSON.stringify(init.body));
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.#ua,
      ...this.#conn.headers,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body) {
      headers['content-type'] = init.contentType ?? 'application/json';
      headers['content-length'] = String(body.length);
    }
    const full = `${this.#base}${path}`;
    return new Promise<T>((resolve, reject) => {
      const done = (status: number, statusMessage: string, h: IncomingHttpHeaders, chunks: Buffer[]) => {
        const text =
          chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        if (status >= 200 && status < 300) {
          try {
            resolve((text ? JSON.parse(text) : {}) as T);
          } catch (err) {
            reject(err);
          }
          return;
        }
        reject(apiError(status, statusMessage, text, h['retry-after'], method, path));
      };
      if (this.#transport === 'http2') {
        let req: ReturnType<ClientHttp2Session['request']>;
        const session = this.#h2();
        try {
          req = session.request(
            { ':method': method, ':path': full, ...headers },
            { signal, endStream: !body },
          );
        } catch (err) {
          reject(err);
          return;
        }
        const open = this.#streams.get(session) ?? 0;
        this.#streams.set(session, open + 1);
        if (open === 0) session.ref();
        req.on('close', () => {
          // Closed without an answer (reset, abort): settle once (a settled promise ignores this).
          if (!req.readableEnded)
            reject(signal?.aborted ? signal.reason : new Error(`HTTP/2 stream closed (code ${req.rstCode})`));
          const left = (this.#streams.get(session) ?? 1) - 1;
          this.#streams.set(session, left);
          if (left === 0 && !session.destroyed) session.unref();
        });
        const chunks: Buffer[] = [];
        let status = 0;
        let h: IncomingHttpHeaders = {};
        req.on('response', (rh) => {
          status = Number(rh[':status']);
          h = rh as IncomingHttpHeaders;
        });
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('error', reject);
        req.on('end', () => done(status, STATUS_CODES[status] ?? '', h, chunks));
        if (body) req.end(body);
        return;
      }
      const opts: RequestOptions = {
        method,
        host: this.#url.hostname,
        port: this.#url.port || (this.#url.protocol === 'http:' ? 80 : 443),
        path: full,
        headers,
        agent: this.#agent as Agent,
      };
      const send = this.#url.protocol === 'http:' ? httpRequest : httpsRequest;
      // The deadline and the caller's abort end the request (its socket is destroyed, not reused)
      // and settle the promise with their own reason; the request's later 'error' is then moot.
      const stop = (reason: unknown) => {
        settle();
        reject(reason);
        req.destroy();
      };
      const ms = this.#timeoutMs;
      const timer = setTimeout(() => stop(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
      const onAbort = () => stop(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const req = send(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => {
          settle();
          reject(err);
        });
        res.on('end', () => {
          settle();
          done(res.statusCode ?? 0, res.statusMessage ?? '', res.headers, chunks);
        });
      });
      req.on('error', (err) => {
        settle();
        reject(err);
      });
      req.end(body);
    });
  }
}

/** A non-2xx answer as a KubeApiError: the Status's reason and message, and Retry-After. */
function apiError(
  status: number,
  statusMessage: string,
  text: string,
  ra: string | string[] | undefined,
  method: string,
  path: string,
): KubeApiError {
  let reason = statusMessage;
  let message = '';
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    reason = s.reason ?? reason;
    message = s.message ?? '';
  } catch {
    /* not a Status */
  }
  return new KubeApiError(
    status,
    reason,
    message,
    method,
    path.split('?')[0]!,
    parseRetryAfter(Array.isArray(ra) ? ra[0] : ra, Date.now()),
  );
}
