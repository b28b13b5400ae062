/**
 * The mint use case: one credential per (registry identity), cached across warm
 * invocations until its refresh time, verified by logging in before anything
 * publishes it. The CLI (`pullkeeper mint`), the refresh use case and the
 * Lambda functions all call this.
 */

import type { PullkeeperConfig, RegistryConfig, RegistryKind } from '../config/schema.js';
import { createSecretResolver, type SecretResolver } from '../config/secret-ref.js';
import { PullkeeperError } from '../core/errors.js';
import { effectiveExpiry, needsRefresh } from '../core/expiry.js';
import { redactSecrets } from '../providers/redact.js';
import { defaultProviders, type ProviderRegistry } from '../providers/registry.js';
import type { MintedToken, RegistryCredential } from '../providers/types.js';
import { type VerifyResult, verifyCredential } from '../providers/verify.js';
import { mapBounded } from '../util/concurrency.js';

/** The shared bounded pool (src/util/concurrency.ts), re-exported for refresh.ts. */

export interface MintReportEntry {
  name: string;
  kind: RegistryKind;
  hosts: string[];
  status: 'minted' | 'cached' | 'failed';
  /** ISO time; null for credentials that do not expire (or when minting failed). */
  expiresAt: string | null;
  /** null when verification is off for this registry. */
  verified: boolean | null;
  error?: string;
  notes?: string[];
}

export interface MintResult {
  registries: MintReportEntry[];
  /** Good credentials by registry name: minted or cached, and verified where verification is on. */
  credentials: Map<string, RegistryCredential>;
  /** Remote token calls made in this run (ecr, acr, gar; cache hits and static reads excluded). */
  mintCalls: number;
}

interface CacheEntry {
  token: MintedToken;
  issuedAt: Date;
  expiresAt?: Date;
  notes: string[];
}

/** Minted tokens by identity key; module scope, so a warm Lambda reuses them. Verified results per registry. */
export class CredentialCache {
  readonly tokens = new Map<string, CacheEntry>();
  readonly verified = new Map<string, { key: string; issuedAt: number }>();
  clear(): void {
    this.tokens.clear();
    this.verified.clear();
  }
}
export const processCache = new CredentialCache();

export class MintError extends PullkeeperError {}

export interface MintOptions {
  /** Only these registries (by name); default all. */
  registries?: string[];
  signal?: AbortSignal;
  now?: () => Date;
  providers?: ProviderRegistry;
  cache?: CredentialCache;
  secrets?: SecretResolver;
  /** Verify (log in) unless a registry says `verify: false`. */
  verify?: (cred: RegistryCredential, cfg: RegistryConfig, signal: AbortSignal) => Promise<VerifyResult>;
  /** Force a new mint even when a cached credential is fresh. */
  force?: boolean;
  /** Parallel mints; each cloud gets few calls anyway. */
  concurrency?: number;
  /** Called as each registry finishes (progress on a terminal). */
  onProgress?: (entry: MintReportEntry, done: number, total: number) => void;
}

export async function mintCredentials(config: PullkeeperConfig, opts: MintOptions = {}): Promise<MintResult> {
  const now = opts.now ?? (() => new Date());
  const signal = opts.signal ?? new AbortController().signal;
  const providers = opts.providers ?? defaultProviders();
  const cache = opts.cache ?? processCache;
  const secrets = opts.secrets ?? createSecretResolver({ signal });
  const verify = opts.verify ?? ((cred, cfg, s) => verifyCredential(cred, cfg, { signal: s }));
  const fraction = config.refreshAtFraction;

  let selected = config.registries;
  if (opts.registries?.length) {
    const unknown = opts.registries.filter((n) => !config.registries.some((r) => r.name === n));
    if (unknown.length)
      throw new MintError(
        `unknown registry ${unknown.map((u) => `"${u}"`).join(', ')}; the config defines ${config.registries.map((r) => r.name).join(', ')}`,
      );
    selected = config.registries.filter((r) => opts.registries!.includes(r.name));
  }

  let mintCalls = 0;
  // One in-flight mint per identity key: registries sharing an identity wait on the same promise.
  const inflight = new Map<string, Promise<{ entry: CacheEntry; fresh: boolean }>>();
  const mintShared = (key: string, cfg: RegistryConfig, run: () => Promise<MintedToken>) => {
    let p = inflight.get(key);
    if (!p) {
      p = (async () => {
        const hit = cache.tokens.get(key);
        if (!opts.force && hit && !needsRefresh(now(), hit.issuedAt, hit.expiresAt, fraction))
          return { entry: hit, fresh: false };
        // Remote token calls only: static and dockerconfig credentials are read from their references.
        if (cfg.kind !== 'static' && cfg.kind !== 'dockerconfig') mintCalls++;
        const issuedAt = now();
        const token = await run();
        const exp = effectiveExpiry(token.reportedExpiresAt, issuedAt, token.documentedLifetimeMs);
        const entry: CacheEntry = {
          token,
          issuedAt,
          expiresAt: exp?.expiresAt,
          notes: exp?.note ? [exp.note] : [],
        };
        // Only credentials that expire are cached; static ones are re-read each run (a rotated password is picked up).
        if (entry.expiresAt) cache.tokens.set(key, entry);
        else cache.tokens.delete(key);
        return { entry, fresh: true };
      })();
      inflight.set(key, p);
    }
    return p;
  };

  const credentials = new Map<string, RegistryCredential>();
  let finished = 0;
  const mintOne = async (cfg: RegistryConfig): Promise<MintReportEntry> => {
    const base = { name: cfg.name, kind: cfg.kind };
    let hosts: string[] = [];
    try {
      const provider = await providers.get(cfg.kind);
      const timeoutMs = cfg.timeoutMs;
      const key = `${cfg.kind}:${provider.identityKey(cfg as never)}`;
      const { entry, fresh } = await mintShared(key, cfg, () =>
        provider.mint(cfg as never, { secrets, signal, timeoutMs, now }),
      );
      hosts = provider.hosts(cfg as never, entry.token);
      const cred: RegistryCredential = {
        registry: cfg.name,
        kind: cfg.kind,
        hosts,
        username: entry.token.username,
        password: entry.token.password,
        issuedAt: entry.issuedAt,
        expiresAt: entry.expiresAt,
        entries: entry.token.entries,
        source: entry.token.source,
        notes: [...entry.notes],
      };
      let verified: boolean | null = null;
      if (cfg.verify) {
        const vkey = `${cfg.name}`;
        const done = cache.verified.get(vkey);
        if (!fresh && done && done.key === key && done.issuedAt === entry.issuedAt.getTime()) {
          verified = true;
        } else {
          const v = await verify(cred, cfg, signal);
          if (!v.ok) {
            cache.verified.delete(vkey);
            return {
              ...base,
              hosts,
              status: 'failed',
              expiresAt: null,
              verified: false,
              error: redactSecrets(`verification failed: ${v.reason}`, cred),
              notes: cred.notes.length ? cred.notes : undefined,
            };
          }
          if (v.note) cred.notes.push(v.note);
          cache.verified.set(vkey, { key, issuedAt: entry.issuedAt.getTime() });
          verified = true;
        }
      }
      credentials.set(cfg.name, cred);
      return {
        ...base,
        hosts,
        status: fresh ? 'minted' : 'cached',
        expiresAt: cred.expiresAt?.toISOString() ?? null,
        verified,
        ...(cred.notes.length ? { notes: cred.notes } : {}),
      };
    } catch (err) {
      return {
        ...base,
        hosts,
        status: 'failed',
        expiresAt: null,
        verified: null,
        error: describeError(err),
      };
    }
  };
  const results = await mapBounded(selected, opts.concurrency ?? 8, async (cfg) => {
    const entry = await mintOne(cfg);
    opts.onProgress?.(entry, ++finished, selected.length);
    return entry;
  });
  return { registries: results, credentials, mintCalls };
}

function describeError(err: unknown): string {
  if (err instanceof PullkeeperError) return err.message;
  // Unknown errors may carry request data: name the type only.
  return `unexpected ${(err as Error)?.name ?? 'error'}; run with the registry alone (--registry NAME) and check its configuration`;
}
