/**
 * Static credentials: Oracle OCIR (`<namespace>/<user>` + auth token), IBM
 * Cloud (`iamapikey` + API key), Docker Hub (user + PAT), any basic-auth
 * registry. Nothing to mint: the values come from secret references.
 */
import type { RegistryConfigOf } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import type { CredentialProvider } from './types.js';

export class StaticCredentialError extends PullkeeperError {}

export const staticProvider: CredentialProvider<'static'> = {
  kind: 'static',
  identityKey: (cfg) => `static:${cfg.name}`,
  async mint(cfg: RegistryConfigOf<'static'>, ctx) {
    const [username, password] = await Promise.all([
      ctx.secrets.resolve(cfg.username),
      ctx.secrets.resolve(cfg.password),
    ]);
    if (!username)
      throw new StaticCredentialError(`registry ${cfg.name}: the username resolved to an empty value`);
    if (username.includes(':'))
      throw new StaticCredentialError(
        `registry ${cfg.name}: the username contains ":", which docker's auth field cannot carry (kubelet splits at the first ":")`,
      );
    if (!password)
      throw new StaticCredentialError(`registry ${cfg.name}: the password resolved to an empty value`);
    return {
      username: username.trim(),
      password: password.replace(/\r?\n$/, ''),
      reportedExpiresAt: cfg.expiresAt ? new Date(cfg.expiresAt) : undefined,
      source: `static credential for ${cfg.server}`,
    };
  },
  hosts: (cfg) => [cfg.server, ...(cfg.aliases ?? [])],
};
