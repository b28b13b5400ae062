/**
 * OCI distribution client for pulls: manifests and blobs of one registry with
 * one credential (or none), answering Basic and Bearer challenges.
 *
 * - Bearer: the token is fetched from the challenge's realm with its service
 *   and the repository's pull scope (GET, Basic-authenticated when we have a
 *   credential, as containerd does for username/password), and cached per
 *   scope until it expires.
 * - Every GET is retried on 429, 5xx and network errors (3 attempts, full
 *   jitter from 250 ms, or the registry's Retry-After up to 30 s; a timeout per
 *   attempt); 401/403/404 are not retried and become typed errors.
 * - Redirects (blob storage, a CDN) are followed; fetch drops Authorization
 *   when a redirect leaves the registry's origin (the Fetch standard's
 *   HTTP-redirect fetch), so a registry token never reaches the storage host.
 * - Manifests are read whole (at most 4 MiB) and checked against the digest;
 *   blobs are returned as streams that verify their digest as they flow.
 * - Node's fetch (undici) keeps connections alive across requests.
 */

import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { parseRetryAfter } from '../core/backoff.js';
import { basicAuthAllowed, isLoopbackHost } from '../core/credential-transport.js';
import { netFailure, netFailureText } from '../core/net-failure.js';
import { retry } from '../util/retry.js';
import { parseChallenges, pullScope } from './challenge.js';
import { assertSha256, sha256Of, VerifyingStream } from './digest.js';
import {
  DigestMismatchError,
  InsecureCredentialTransportError,
  RegistryAuthError,
  RegistryNotFoundError,
  RegistryUnavailableError,
} from './errors.js';
import { MANIFEST_ACCEPT } from './manifest.js';

export interface RegistryCredential {
  username: string;
  password: string;
  /** The keyring key it came from (named in errors instead of any value). */
  key?: string;
}

export interface DistributionClientOptions {
  /** The registry as image references name it: `quay.io`, `127.0.0.1:5000`, `docker.io`. */
  registry: string;
  credential?: RegistryCredential;
  /** Use http:// instead of https://. Default: true for loopback hosts only. */
  plainHttp?: boolean;
  /**
   * `HOST[:PORT]`s the operator listed as insecure: Basic credentials may go
   * to them over plain http (core/credential-transport.ts). Default: the
   * registry itself when `plainHttp` is set.
   */
  insecureHosts?: readonly string[];
  /** Per-request time limit for manifests and tokens, and idle limit for blob streams (default 30 s). */
  timeoutMs?: number;
  /** Attempts per GET on 429 / 5xx / network errors (default 3). */
  attempts?: number;
  /** Called for every HTTP request sent (registry and token server), for accounting. */
  onRequest?: (method: string, url: string) => void;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const USER_AGENT = 'pullkeeper-node';

/** Hosts reached over plain http unless told otherwise (containerd also falls back to http for localhost). */
export function isLoopbackRegistry(registry: string): boolean {
  return isLoopbackHost(registry);
}

/** The host to talk to for a reference domain (Docker Hub's transport host is registry-1.docker.io). */
export function registryEndpoint(domain: string): string {
  return domain === 'docker.io' ? 'registry-1.docker.io' : domain;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export class DistributionClient {
  readonly registry: string;
  readonly #base: string;
  readonly #cred: RegistryCredential | undefined;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #onRequest: ((method: string, url: string) => void) | undefined;
  /** The registry's challenge, learned from the first 401. */
  #challenge: { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string } | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #insecureHosts: readonly string[];

  constructor(opts: DistributionClientOptions) {
    this.registry = opts.registry;
    const host = registryEndpoint(opts.registry);
    const plain = opts.plainHttp ?? isLoopbackRegistry(host);
    this.#base = `${plain ? 'http' : 'https'}://${host}`;
    this.#insecureHosts = opts.insecureHosts ?? (opts.plainHttp ? [host] : []);
    this.#cred = opts.credential;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#attempts = Math.max(1, opts.attempts ?? 3);
    this.#onRequest = opts.onRequest;
  }

  get #who(): string {
    return this.#cred ? `credential ${JSON.stringify(this.#cred.key ?? this.registry)}` : 'no credential';
  }

  /**
   * GET a manifest by tag or digest. The digest is computed from the bytes and
   * checked against a digest reference or the Docker-Content-Digest header.
   */
  async getManifest(
    repo: string,
    reference: string,
    signal?: AbortSignal,
  ): Promise<{ mediaType: string; digest: string; bytes: Buffer }> {
    const what = `manifest ${this.registry}/${repo}${reference.includes(':') ? '@' : ':'}${reference}`;
    const res = await this.#get(`/v2/${repo}/manifests/${reference}`, repo, what, signal, {
      accept: MANIFEST_ACCEPT,
    });
    const bytes = await readCapped(res, MAX_MANIFEST_BYTES, what, signal, this.#timeoutMs);
    const digest = sha256Of(bytes);
    if (reference.startsWith('sha256:')) {
      if (digest !== reference) throw new DigestMismatchError(what, reference, digest);
    } else {
      const header = res.headers.get('docker-content-digest');
      if (header?.startsWith('sha256:') && header !== digest)
        throw new DigestMismatchError(what, header, digest);
    }
    return { mediaType: res.headers.get('content-type') ?? '', digest, bytes };
  }

  /** GET a small blob (a config) whole, verified. */
  async getBlobBytes(repo: string, digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    const what = `blob ${digest} of ${this.registry}/${repo}`;
    assertSha256(digest, what);
    const res = await this.#get(`/v2/${repo}/blobs/${digest}`, repo, what, signal);
    const bytes = await readCapped(res, maxBytes, what, signal, this.#timeoutMs);
    const actual = sha256Of(bytes);
    if (actual !== digest) throw new DigestMismatchError(what, digest, actual);
    return bytes;
  }

  /**
   * GET a blob as a stream that fails (with DigestMismatchError) unless the
   * bytes hash to `digest` and number `size`. Consumers must not commit what
   * they wrote until the stream has ended without error.
   */
  async openBlob(
    repo: string,
    digest: string,
    size: number | undefined,
    signal?: AbortSignal,
  ): Promise<VerifyingStream> {
    const what = `blob ${digest} of ${this.registry}/${repo}`;
    assertSha256(digest, what);
    const res = await this.#get(`/v2/${repo}/blobs/${digest}`, repo, what, signal);
    if (!res.body) throw new RegistryUnavailableError(`${what}: empty response body`);
    const verify = new VerifyingStream({ digest, size, what, idleTimeoutMs: this.#timeoutMs });
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>, { signal });
    body.on('error', (err) => verify.destroy(err));
    body.pipe(verify);
    return verify;
  }

  /** Checks that the credential can read the manifest (HEAD, no body). Throws like getManifest. */
  async canReadManifest(repo: string, reference: string, signal?: AbortSignal): Promise<string | undefined> {
    const what = `manifest ${this.registry}/${repo}:${reference}`;
    const res = await this.#get(
      `/v2/${repo}/manifests/${reference}`,
      repo,
      what,
      signal,
      {
        accept: MANIFEST_ACCEPT,
      },
      'HEAD',
    );
    await res.arrayBuffer().catch(() => undefined);
    return res.headers.get('docker-content-digest') ?? undefined;
  }

  async #get(
    path: string,
    repo: string,
    what: string,
    signal: AbortSignal | undefined,
    headers: Record<string, string> = {},
    method: 'GET' | 'HEAD' = 'GET',
  ): Promise<Response> {
    const url = `${this.#base}${path}`;
    const scope = pullScope(repo);
    let res = await this.#send(method, url, headers, await this.#authHeader(scope, signal), signal, what);
    if (res.status === 401) {
      const fresh = this.#learnChallenge(res);
      await res.arrayBuffer().catch(() => undefined);
      if (fresh || this.#challenge?.scheme === 'bearer') this.#tokens.delete(scope);
      const auth = await this.#authHeader(scope, signal);
      if (auth !== undefined) res = await this.#send(method, url, headers, auth, signal, what);
    }
    if (res.ok) return res;
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 401 || res.status === 403) {
      throw new RegistryAuthError(
        `${what}: pull access denied with ${this.#who} (HTTP ${res.status}); the repository does not exist or ` +
          'the credential may not read it: check the image name and the pull secret',
        res.status,
      );
    }
    if (res.status === 404) {
      throw new RegistryNotFoundError(`${what}: not found (HTTP 404); check the image name, tag or digest`);
    }
    throw new RegistryUnavailableError(`${what}: unexpected HTTP ${res.status} from ${this.registry}`);
  }

  /** Reads the 401's challenge; true when it is new or changed. */
  #learnChallenge(res: Response): boolean {
    const challenges = parseChallenges(res.headers.get('www-authenticate') ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const before = JSON.stringify(this.#challenge);
    if (bearer) {
      this.#challenge = { scheme: 'bearer', realm: bearer.params.realm!, service: bearer.params.service };
    } else if (challenges.some((c) => c.scheme === 'basic')) {
      this.#challenge = { scheme: 'basic' };
    }
    return JSON.stringify(this.#challenge) !== before;
  }

  /** The Basic header for `url`, or undefined without a credential; throws if `url` may not receive it. */
  #basicFor(url: string | URL): string | undefined {
    if (!this.#cred) return undefined;
    if (!basicAuthAllowed(url, this.#insecureHosts)) {
      const origin = new URL(url).origin;
      throw new InsecureCredentialTransportError(
        `${this.registry}: ${this.#who} was not sent to ${origin}: it is plain http and neither loopback nor listed as ` +
          "insecure; make the registry's token server use https, or list the host with --insecure-registry if it is trusted",
      );
    }
    return `Basic ${Buffer.from(`${this.#cred.username}:${this.#cred.password}`).toString('base64')}`;
  }

  async #authHeader(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.#challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') return this.#basicFor(this.#base);
    const cached = this.#tokens.get(scope);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const token = await this.#fetchToken(ch.realm, ch.service, scope, signal);
    this.#tokens.set(scope, token);
    return `Bearer ${token.token}`;
  }

  async #fetchToken(
    realm: string,
    service: string | undefined,
    scope: string,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    let u: URL;
    try {
      u = new URL(realm);
    } catch (cause) {
      throw new RegistryUnavailableError(`${this.registry}: the auth challenge's realm is not a URL`, {
        cause,
      });
    }
    if (service) u.searchParams.set('service', service);
    u.searchParams.set('scope', scope);
    const what = `token for ${scope} from ${u.origin}${u.pathname}`;
    const headers: Record<string, string> = {};
    const basic = this.#basicFor(u);
    if (basic) headers.authorization = basic;
    const res = await this.#send('GET', u.toString(), headers, basic, signal, what);
    const text = await readCapped(res, 1024 * 1024, what, signal, this.#timeoutMs).then((b) =>
      b.toString('utf8'),
    );
    if (res.status === 401 || res.status === 403) {
      throw new RegistryAuthError(
        `${what}: the token server refused ${this.#who} (HTTP ${res.status}); the user name or password is wrong ` +
          'or expired: refresh the pull secret or node credentials',
        res.status,
      );
    }
    if (!res.ok) throw new RegistryUnavailableError(`${what}: unexpected HTTP ${res.status}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text);
    } catch (cause) {
      throw new RegistryUnavailableError(`${what}: the token response is not JSON`, { cause });
    }
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryUnavailableError(`${what}: the token response has no token`);
    }
    // Tokens live at least 60 s per the spec; keep a margin for clock skew and request time.
    const ttl = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { token, expiresAt: Date.now() + Math.max(1, ttl - 10) * 1000 };
  }

  /**
   * One request with retries on 429, 5xx and network errors (full jitter from
   * 250 ms, or the registry's Retry-After up to 30 s); other 4xx are returned as
   * they are, and so is the last attempt's 429/5xx.
   */
  async #send(
    method: string,
    url: string,
    headers: Record<string, string>,
    auth: string | undefined,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<Response> {
    const h: Record<string, string> = { 'user-agent': USER_AGENT, ...headers };
    if (auth) h.authorization = auth;
    try {
      return await retry(
        async (attemptSignal, attempt) => {
          this.#onRequest?.(method, url);
          const res = await fetch(url, {
            method,
            headers: h,
            redirect: 'follow',
            // The caller's signal also ends a body still streaming after this returns.
            signal: signal ? AbortSignal.any([signal, attemptSignal]) : attemptSignal,
          });
          if ((res.status === 429 || res.status >= 500) && attempt < this.#attempts) {
            await res.arrayBuffer().catch(() => undefined);
            throw new RetryableStatus(
              `${what}: HTTP ${res.status}`,
              parseRetryAfter(res.headers.get('retry-after'), Date.now()),
            );
          }
          return res;
        },
        {
          attempts: this.#attempts,
          baseMs: 250,
          maxDelayMs: 4_000,
          timeoutMs: this.#timeoutMs,
          ...(signal ? { signal } : {}),
          retryable: () => true,
          retryAfterMs: (err) => (err instanceof RetryableStatus ? err.retryAfterMs : undefined),
        },
      );
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const net = netFailure(err);
      const detail = net ? netFailureText(net) : err instanceof Error ? err.message : String(err);
      throw new RegistryUnavailableError(
        `${what}: ${this.registry} did not answer after ${this.#attempts} attempts (${detail}); check that the ` +
          'registry is reachable and try again',
        { cause: err },
      );
    }
  }
}

/** A 429/5xx worth another attempt, with the wait the registry asked for. */
class RetryableStatus extends RegistryUnavailableError {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

async function readCapped(
  res: Response,
  max: number,
  what: string,
  signal: AbortSignal | undefined,
  timeoutMs: number,
): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? '-1');
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new RegistryUnavailableError(`${what}: ${declared} bytes is more than the ${max} allowed`);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let n = 0;
  const timer = setTimeout(() => res.body?.cancel().catch(() => undefined), timeoutMs);
  try {
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (signal?.aborted) throw signal.reason;
      n += c.length;
      if (n > max) {
        await res.body.cancel().catch(() => undefined);
        throw new RegistryUnavailableError(`${what}: more than the ${max} bytes allowed`);
      }
      chunks.push(Buffer.from(c));
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}
