/**
 * One small interface for every registry kind: each cloud narrowed to a local
 * interface, chosen by kind from a registry that refuses duplicates, returning
 * one typed credential (docs/providers.md).
 */

import type { RegistryConfigOf, RegistryKind } from '../config/schema.js';
import type { SecretResolver } from '../config/secret-ref.js';
import type { DockerAuthEntry } from '../core/index.js';

/**
 * What one mint call returns: a docker credential, valid for every registry
 * that shares the identity. Never logged; `toJSON` of reports leaves it out.
 */
export interface MintedToken {
  username: string;
  password: string;
  /** When the cloud says the credential expires; undefined for credentials that do not expire. */
  reportedExpiresAt?: Date;
  /** The documented lifetime, used when the reported expiry is missing or already past (moto's is 2015). */
  documentedLifetimeMs?: number;
  /** Extra, per-host entries (the `dockerconfig` kind imports a whole file). */
  entries?: Record<string, DockerAuthEntry>;
  /** Hosts the cloud names (ECR's proxyEndpoint), when the config names none. */
  defaultHosts?: string[];
  /** Human text: which call produced it (no secrets). */
  source: string;
}

/** A credential ready to publish for one configured registry. */
export interface RegistryCredential {
  registry: string;
  kind: RegistryKind;
  /** config.json keys this credential is written under. */
  hosts: string[];
  username: string;
  password: string;
  issuedAt: Date;
  /** Undefined: does not expire. */
  expiresAt?: Date;
  /** Other hosts with their own credentials (`dockerconfig`). */
  entries?: Record<string, DockerAuthEntry>;
  source: string;
  /** Things the report should say (expiry fallbacks, TOFU...). */
  notes: string[];
}

export interface MintContext {
  secrets: SecretResolver;
  signal: AbortSignal;
  /** Per remote call. */
  timeoutMs: number;
  now: () => Date;
}

export interface CredentialProvider<K extends RegistryKind = RegistryKind> {
  readonly kind: K;
  /**
   * Registries with the same identity key share one mint per run (ECR: one
   * GetAuthorizationToken per account identity and region).
   */
  identityKey(cfg: RegistryConfigOf<K>): string;
  mint(cfg: RegistryConfigOf<K>, ctx: MintContext): Promise<MintedToken>;
  /** The config.json keys for this registry, given the token. */
  hosts(cfg: RegistryConfigOf<K>, token: MintedToken): string[];
}
