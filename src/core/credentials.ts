/**
 * Minted registry credentials as docker config entries (pure). Rotation (pull
 * secrets) and node push both render through here, so a Secret and a node's
 * config.json always hold the same entries for the same credentials.
 */
import type { DockerAuthEntry, DockerConfig } from './docker-config.js';
import { refreshAt } from './expiry.js';

export interface CredentialEntries {
  /** config.json keys for the main credential. */
  hosts: string[];
  username: string;
  password: string;
  /** Further per-host entries (an imported docker config). */
  entries?: Record<string, DockerAuthEntry>;
}

/**
 * Merges credentials into one DockerConfig. Earlier credentials win a shared
 * key (the order of the tenant's `registries` list is its priority), and
 * within one credential the main hosts win over its extra entries.
 *
 *   credentialsToDockerConfig([{ hosts: ['a.io'], username: 'u', password: 'p' }])
 *   -> { auths: { 'a.io': { username: 'u', password: 'p' } } }
 */
export function credentialsToDockerConfig(creds: readonly CredentialEntries[]): DockerConfig {
  const auths: Record<string, DockerAuthEntry> = {};
  const put = (key: string, entry: DockerAuthEntry) => {
    if (!Object.hasOwn(auths, key))
      Object.defineProperty(auths, key, {
        value: entry,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  };
  for (const c of creds) {
    for (const h of c.hosts) put(h, { username: c.username, password: c.password });
    for (const [k, e] of Object.entries(c.entries ?? {})) put(k, { ...e });
  }
  return { auths };
}

/**
 * For each config.json key whose credential expires, when it is due for
 * refresh and where it came from; keyed as credentialsToDockerConfig keys
 * them (earlier credentials win a shared key, extra entries never expire).
 *
 *   expiringKeys([{ hosts: ['a.io'], …, issuedAt: T, expiresAt: T+12h, source: 'f1' }], 0.5)
 *   -> { 'a.io': { refreshAt: '…T+6h', source: 'f1' } }
 */
export function expiringKeys(
  creds: ReadonlyArray<CredentialEntries & { issuedAt: Date; expiresAt?: Date; source: string }>,
  fraction: number,
): Record<string, { refreshAt: string; source: string }> {
  const claimed = new Set<string>();
  const out: Record<string, { refreshAt: string; source: string }> = {};
  for (const c of creds) {
    for (const h of c.hosts) {
      if (claimed.has(h)) continue;
      claimed.add(h);
      if (c.expiresAt)
        Object.defineProperty(out, h, {
          value: { refreshAt: refreshAt(c.issuedAt, c.expiresAt, fraction).toISOString(), source: c.source },
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    for (const k of Object.keys(c.entries ?? {})) claimed.add(k);
  }
  return out;
}
