/**
 * Proves a credential logs in before it is published: `GET /v2/` as docker
 * login does, following the registry's Basic or Bearer challenge
 * (distribution spec "Token Authentication Specification": realm, service;
 * the token answer has `token` or `access_token`). HTTPS only, except for
 * loopback registries (as Docker allows) or `insecure: true`.
 */
import type { RegistryConfig } from '../config/schema.js';
import { basicAuthAllowed, isLoopbackHost } from '../core/credential-transport.js';
import { redactSecrets } from './redact.js';
import { netReason, retryableStatus, withRetry } from './retry.js';
import type { RegistryCredential } from './types.js';

export interface VerifyResult {
  ok: boolean;
  /** Why it failed (no secrets). */
  reason?: string;
  /** E.g. "the registry allows anonymous access: login not proven". */
  note?: string;
  url?: string;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235 auth-params, quoted strings with escapes).
 *
 *   parseChallenge('Bearer realm="https://a/token",service="a"') -> { scheme: 'bearer', params: { realm, service } }
 *   parseChallenge('Basic realm="r"')                             -> { scheme: 'basic', params: { realm: 'r' } }
 */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  re.lastIndex = 0;
  const rest = m[2] ?? '';
  while (re.lastIndex < rest.length) {
    const pm = re.exec(rest);
    if (!pm) break;
    params[pm[1]!.toLowerCase()] = pm[2] !== undefined ? pm[2].replace(/\\(.)/g, '$1') : (pm[3] ?? '');
  }
  return { scheme, params };
}

export { isLoopbackHost };

/** The registry host of a config.json key: `https://index.docker.io/v1/` -> `index.docker.io`. */
export function registryHostOfKey(key: string): string {
  let h = key.replace(/^[a-z]+:\/\//i, '');
  h = h.split('/')[0] ?? h;
  if (h === 'index.docker.io' || h === 'docker.io') return 'registry-1.docker.io';
  return h;
}

export interface VerifyOptions {
  signal: AbortSignal;
  fetch?: typeof fetch;
}

export async function verifyCredential(
  cred: RegistryCredential,
  cfg: RegistryConfig,
  o: VerifyOptions,
): Promise<VerifyResult> {
  const f = o.fetch ?? fetch;
  const entries: Array<{ host: string; username: string; password: string }> = cred.hosts.length
    ? [{ host: cred.hosts[0]!, username: cred.username, password: cred.password }]
    : Object.entries(cred.entries ?? {}).map(([host, e]) => ({
        host,
        username: e.username,
        password: e.password,
      }));
  if (entries.length === 0)
    return { ok: false, reason: 'the credential names no registry host to log in to' };
  for (const e of entries) {
    let base: string;
    if (cfg.verifyEndpoint) base = cfg.verifyEndpoint.replace(/\/+$/, '');
    else {
      const host = registryHostOfKey(e.host);
      const plain = cfg.insecure || isLoopbackHost(host);
      base = `${plain ? 'http' : 'https'}://${host}`;
    }
    if (base.startsWith('http://') && !cfg.insecure && !isLoopbackHost(new URL(base).host))
      return {
        ok: false,
        reason: `${base} is plain HTTP; use https, or set insecure: true on registry ${cfg.name}`,
      };
    const r = await loginOnce(base, e.username, e.password, cfg.timeoutMs, o.signal, f);
    if (!r.ok) return { ...r, reason: redactSecrets(r.reason ?? 'login failed', e.password) };
    if (r.note) return r;
  }
  return { ok: true };
}

class HttpStatusError extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

async function loginOnce(
  base: string,
  username: string,
  password: string,
  timeoutMs: number,
  signal: AbortSignal,
  f: typeof fetch,
): Promise<VerifyResult> {
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const url = `${base}/v2/`;
  const get = (u: string, headers: Record<string, string>) =>
    withRetry(
      async (s) => {
        const res = await f(u, {
          headers: { 'user-agent': 'pullkeeper', ...headers },
          signal: s,
          redirect: 'follow',
        });
        if (retryableStatus(res.status)) {
          await res.body?.cancel();
          throw new HttpStatusError(res.status);
        }
        return res;
      },
      {
        timeoutMs,
        signal,
        retryable: (e) => e instanceof HttpStatusError || (e as Error)?.name === 'TypeError',
      },
    );
  let res: Response;
  try {
    res = await get(url, {});
  } catch (err) {
    return { ok: false, url, reason: `cannot reach ${url}: ${netReason(err)}` };
  }
  await res.body?.cancel();
  if (res.status === 200) return { ok: true, url, note: `${base} allows anonymous access: login not proven` };
  if (res.status !== 401)
    return {
      ok: false,
      url,
      reason: `GET ${url} answered HTTP ${res.status}, expected 401 with a challenge`,
    };
  const ch = parseChallenge(res.headers.get('www-authenticate'));
  if (!ch) return { ok: false, url, reason: `GET ${url} answered 401 without a Basic or Bearer challenge` };
  try {
    if (ch.scheme === 'basic') {
      const r = await get(url, { authorization: basic });
      await r.body?.cancel();
      return r.status === 200
        ? { ok: true, url }
        : { ok: false, url, reason: `the registry refused the credential (HTTP ${r.status} on ${url})` };
    }
    const realm = ch.params.realm;
    if (!realm) return { ok: false, url, reason: 'the Bearer challenge has no realm' };
    const tokenUrl = new URL(realm);
    // The registry itself is insecure (plain http) only by configuration or on loopback: its host may get Basic too.
    const insecureHosts = base.startsWith('http://') ? [new URL(base).host] : [];
    if (!basicAuthAllowed(tokenUrl, insecureHosts))
      return {
        ok: false,
        url,
        reason: `the token realm ${tokenUrl.origin} is not https: the password goes only to https, loopback, or the insecure registry's own host`,
      };
    if (ch.params.service) tokenUrl.searchParams.set('service', ch.params.service);
    tokenUrl.searchParams.set('account', username);
    const tr = await get(tokenUrl.toString(), { authorization: basic });
    if (tr.status !== 200) {
      await tr.body?.cancel();
      return {
        ok: false,
        url,
        reason: `the token service ${tokenUrl.origin}${tokenUrl.pathname} refused the credential (HTTP ${tr.status})`,
      };
    }
    const body = (await tr.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) return { ok: false, url, reason: 'the token service answered 200 without a token' };
    const r = await get(url, { authorization: `Bearer ${token}` });
    await r.body?.cancel();
    return r.status === 200
      ? { ok: true, url }
      : { ok: false, url, reason: `the registry refused the issued token (HTTP ${r.status} on ${url})` };
  } catch (err) {
    return {
      ok: false,
      url,
      reason: `login to ${base} failed: ${err instanceof HttpStatusError ? `HTTP ${err.status} after retries` : netReason(err)}`,
    };
  }
}
