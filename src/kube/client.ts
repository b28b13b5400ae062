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
import { PullkeeperError } from '../core/errors.js';

export class KubeApiError extends PullkeeperError {
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly apiMessage: string,
    readonly method: string,
    readonly path: string,
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
  /** Current bearer token (called per request: tokens that rotate, e.g. EKS every ~14 min). */
  token?: () => Promise<string | undefined>;
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

/** Token bucket: `qps` per second, `burst` at once. */
class TokenBucket {
  #tokens: number;
  #last = performance.now();
  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.#tokens = burst;
  }
  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.qps);
      this.#last = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      const wait = ((1 - this.#tokens) / this.qps) * 1000;
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, wait);
        signal?.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            reject(signal.reason);
          },
          { once: true },
        );
      });
    }
  }
}

/** Counting semaphore for bounded concurrency. */
class Semaphore {
  #free: number;
  readonly #queue: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#queue.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    }
  }
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

  async request<T = unknown>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const attempts = (init.retry ?? method === 'GET') ? 4 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once<T>(method, path, init);
      } catch (err) {
        const status = err instanceof KubeApiError ? err.status : 0;
        const retryable =
          status === 429 || status >= 500 || (!(err instanceof KubeApiError) && !init.signal?.aborted);
        if (attempt >= attempts || !retryable) throw err;
        this.stats.retries++;
        const wait =
          (err as { retryAfterMs?: number }).retryAfterMs ??
          Math.min(2000, 100 * 2 ** attempt) * Math.random();
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async #once<T>(method: string, path: string, init: RequestInit): Promise<T> {
    await this.#bucket.take(init.signal);
    return this.#sem.run(async () => {
      this.stats.requests++;
      if (method !== 'GET') this.stats.writes++;
      const token = await this.#conn.token?.();
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
      const signal = init.signal
        ? AbortSignal.any([init.signal, AbortSignal.timeout(this.#timeoutMs)])
        : AbortSignal.timeout(this.#timeoutMs);
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
            const e = new KubeApiError(status, reason, message, method, path.split('?')[0]!);
            const ra = Number(res.headers['retry-after']);
            if (Number.isFinite(ra) && ra > 0) Object.assign(e, { retryAfterMs: Math.min(ra, 10) * 1000 });
            reject(e);
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    });
  }
}
