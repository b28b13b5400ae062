/**
 * kubelet's credential provider exec plugin protocol
 * (`credentialprovider.kubelet.k8s.io/v1`), answered from the credentials
 * pullkeeper pushed to the node.
 *
 * The credentials file is a docker config.json. pullkeeper's node push may add
 * a top-level `pullkeeperExpiry` map (`{"<registry key>": "<RFC 3339>"}`),
 * which docker and kubelet ignore; without it a password that is a JWT gives
 * its `exp`. The response's `cacheDuration` is the time left until the
 * earliest expiry among the returned credentials, so kubelet never caches a
 * credential past its lifetime. A non-matching image gets an empty `auth`
 * and `cacheDuration: 0s`, so a credential pushed later is used at once.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as z from 'zod';
import { PullkeeperError } from '../core/errors.js';
import { normalizeKeyringKey, parseDockerConfig } from '../core/index.js';
import {
  CREDENTIAL_PROVIDER_API_VERSION,
  type CredentialProviderResponse,
  emptyProviderResponse,
  type ProviderCredentials,
} from '../core/provider-response.js';

export {
  answerProviderRequest,
  CREDENTIAL_PROVIDER_API_VERSION,
  type CredentialProviderResponse,
  goDuration,
  type ProviderCredentials,
} from '../core/provider-response.js';

export class CredentialProviderError extends PullkeeperError {}

const requestSchema = z.object({
  apiVersion: z.string(),
  kind: z.literal('CredentialProviderRequest'),
  image: z.string().min(1),
  serviceAccountToken: z.string().optional(),
  serviceAccountAnnotations: z.record(z.string(), z.string()).optional(),
});
export type CredentialProviderRequest = z.infer<typeof requestSchema>;

/** Parses the request kubelet writes on stdin. */
export function parseProviderRequest(text: string): CredentialProviderRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new CredentialProviderError(
      'the request on stdin is not JSON; kubelet sends a CredentialProviderRequest',
      {
        cause,
      },
    );
  }
  const r = requestSchema.safeParse(doc);
  if (!r.success) {
    throw new CredentialProviderError(
      `the request on stdin is not a CredentialProviderRequest (${r.error.issues.map((i) => i.path.join('.') || i.message).join(', ')})`,
    );
  }
  if (r.data.apiVersion !== CREDENTIAL_PROVIDER_API_VERSION) {
    throw new CredentialProviderError(
      `apiVersion ${JSON.stringify(r.data.apiVersion)} is not supported; set apiVersion: ${CREDENTIAL_PROVIDER_API_VERSION} in the CredentialProviderConfig`,
    );
  }
  return r.data;
}

/** A JWT's `exp` in ms, if the string is a JWT with one. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the credentials file's text: auths plus pullkeeper's expiry map. */
export function parseProviderCredentials(text: string): ProviderCredentials {
  const config = parseDockerConfig(text, 'config.json');
  const expiry = new Map<string, number>();
  const doc = JSON.parse(text) as { pullkeeperExpiry?: unknown };
  const declared = doc?.pullkeeperExpiry;
  if (declared && typeof declared === 'object') {
    for (const [k, v] of Object.entries(declared as Record<string, unknown>)) {
      const key = normalizeKeyringKey(k);
      const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
      if (key !== undefined && Number.isFinite(ms)) expiry.set(key, ms);
    }
  }
  for (const [k, e] of Object.entries(config.auths)) {
    const key = normalizeKeyringKey(k);
    if (key === undefined || expiry.has(key)) continue;
    const exp = jwtExpiry(e.password);
    if (exp !== undefined) expiry.set(key, exp);
  }
  return { config, expiry };
}

export interface BrokerOptions {
  /** The broker's base URL (`https://pullkeeper.example.com`); POST {url}/v1/credentials. */
  url: string;
  /** PEM CA bundle that signed the broker's certificate (default: the system's). */
  ca?: string;
  /** The whole exchange, connect to last byte. */
  timeoutMs: number;
}

/** How long the kubelet keeps an empty answer when the broker could not be asked. */
export const BROKER_DOWN_CACHE_SECONDS = 10;

/**
 * Asks the broker for the pod's credentials (the request's serviceAccountToken as the
 * bearer; only the image in the body: annotations the plugin was given are not sent, the
 * broker reads the ServiceAccount itself). Answers the broker's response, or, when it cannot
 * be asked or refuses, an empty `auth` cached for a few seconds and the reason (without the token).
 */
export async function askBroker(
  req: CredentialProviderRequest,
  o: BrokerOptions,
): Promise<{ response: CredentialProviderResponse; problem?: string }> {
  const empty = (problem: string) => ({
    response: emptyProviderResponse(BROKER_DOWN_CACHE_SECONDS),
    problem,
  });
  let url: URL;
  try {
    url = new URL('v1/credentials', o.url.endsWith('/') ? o.url : `${o.url}/`);
  } catch {
    throw new CredentialProviderError(
      `--broker ${JSON.stringify(o.url)} is not a URL; pass https://HOST[:PORT]`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new CredentialProviderError(`--broker must be an https:// URL, not ${url.protocol}`);
  const body = JSON.stringify({ image: req.image });
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  try {
    let timer: NodeJS.Timeout | undefined;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      timer = setTimeout(() => {
        const e = new Error('timeout');
        e.name = 'TimeoutError';
        r.destroy(e);
        reject(e);
      }, o.timeoutMs);
      const r = send(
        url,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${req.serviceAccountToken}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'user-agent': 'pullkeeper-node credential-provider',
          },
          ...(o.ca ? { ca: o.ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 1024 * 1024) r.destroy(new Error('the answer is larger than 1 MiB'));
            else chunks.push(c);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      r.on('error', reject);
      r.end(body);
    }).finally(() => clearTimeout(timer));
    if (status !== 200) {
      let why = '';
      try {
        why = String((JSON.parse(text) as { message?: unknown }).message ?? '');
      } catch {
        /* not JSON */
      }
      return empty(`the broker answered HTTP ${status}${why ? ` (${why})` : ''}`);
    }
    const parsed = responseSchema.safeParse(JSON.parse(text));
    if (!parsed.success)
      return empty('the broker answered something that is not a CredentialProviderResponse');
    return { response: parsed.data };
  } catch (err) {
    const e = err as { name?: string; code?: string; message?: string };
    const why =
      e.name === 'TimeoutError' || e.name === 'AbortError'
        ? `no answer within ${o.timeoutMs / 1000}s`
        : `${e.code ?? e.name ?? 'error'}${e.code ? '' : `: ${e.message ?? ''}`}`;
    return empty(`the broker at ${url.origin} could not be asked (${why})`);
  }
}

const responseSchema = z.object({
  apiVersion: z.literal(CREDENTIAL_PROVIDER_API_VERSION),
  kind: z.literal('CredentialProviderResponse'),
  cacheKeyType: z.enum(['Image', 'Registry', 'Global']),
  cacheDuration: z
    .string()
    .regex(/^(\d+h)?(\d+m)?\d+(\.\d+)?s$|^0s$/)
    .optional(),
  auth: z.record(z.string(), z.object({ username: z.string(), password: z.string() })),
});
