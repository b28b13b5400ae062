/**
 * A small Kubernetes API client for the few calls pullkeeper makes: JSON over
 * one keep-alive HTTPS agent (connections are reused: client-node 1.4 opened a
 * TLS connection per request, which made 1,000 namespaces CPU-bound), a
 * token-bucket rate limit, bounded concurrency, a timeout and an AbortSignal
 * per request, and retries of throttling and 5xx for safe requests.
 *
 * Limits (config `kubeClient`, docs/rotation.md): 32 requests in flight and a
 * token bucket of 1,000 QPS with a burst of 2,000. The in-flight bound is what
 * normally paces pullkeeper (32 / the API server's latency); the bucket only
 * caps a runaway loop. client-go's 5/10 would stretch a 1,000-namespace first
 * rotation (3 writes per namespace) over ten minutes, controller-runtime's 20/30
 * over two and a half: pullkeeper is a short batch job that writes only what
 * changed, so a brief burst costs the API server less than a long trickle, and
 * API Priority and Fairness still protects it (429 + Retry-After is honoured).
 */

import { Agent as HttpAgent, request as httpRequest } from 'node:http';
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
  }

  get server(): string {
    return this.#conn.server;
  }

  close(): void {
    this.#agent.destroy();
  }

  /**
   * One API call. Safe calls (GET, or `retry: true`) are retried on 429, 5xx and
   * network errors: 4 attempts, full jitter from 200 ms up to 2 s, or the
   * server's Retry-After (at most 10 s). The signal ends waits and the request.
   */
  async request<T = unknown>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    return retry(() => this.#once<T>(method, path, init), {
      attempts: (init.retry ?? method === 'GET') ? 4 : 1,
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
      const link = linkedSignal(init.signal, this.#timeoutMs);
      try {
        return await this.#send<T>(method, path, init, link.signal);
      } finally {
        link.dispose();
      }
    }, init.signal);
  }

  async #send<T>(method: string, path: string, init: RequestInit, signal: AbortSignal): Promise<T> {
    this.stats.requests++;
    if (method !== 'GET') this.stats.writes++;
    const token = await this.#conn.token?.(signal);
    const body = init.body === undefined ? undefined : Buffer.from(JSON.stringify(init.body));
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.#ua,
      ...this.#conn.headers,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body
        ? { 'content-type': init.contentType ?? 'application/json', 'content-length': String(body.length) }
        : {}),
    };
    const opts: RequestOptions = {
      method,
      host: this.#url.hostname,
      port: this.#url.port || (this.#url.protocol === 'http:' ? 80 : 443),
      path: `${this.#url.pathname.replace(/\/$/, '')}${path}`,
      headers,
      agent: this.#agent as Agent,
      signal,
    };
    const send = this.#url.protocol === 'http:' ? httpRequest : httpsRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            try {
              resolve((text ? JSON.parse(text) : {}) as T);
            } catch (err) {
              reject(err);
            }
            return;
          }
          let reason = res.statusMessage ?? '';
          let message = '';
          try {
            const s = JSON.parse(text) as { reason?: string; message?: string };
            reason = s.reason ?? reason;
            message = s.message ?? '';
          } catch {
            /* not a Status */
          }
          const ra = res.headers['retry-after'];
          reject(
            new KubeApiError(
              status,
              reason,
              message,
              method,
              path.split('?')[0]!,
              parseRetryAfter(Array.isArray(ra) ? ra[0] : ra, Date.now()),
            ),
          );
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}
