/** Imports every entry of an existing config.json / .dockercfg, parsed by the core (kubelet's rules). */
import type { RegistryConfigOf } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import { DockerConfigError, parseDockerConfig } from '../core/index.js';
import type { CredentialProvider } from './types.js';

export class DockerConfigImportError extends PullkeeperError {}

export const dockerConfigProvider: CredentialProvider<'dockerconfig'> = {
  kind: 'dockerconfig',
  identityKey: (cfg) => `dockerconfig:${cfg.name}`,
  async mint(cfg: RegistryConfigOf<'dockerconfig'>, ctx) {
    const text = await ctx.secrets.resolve(cfg.source);
    let parsed: ReturnType<typeof parseDockerConfig>;
    try {
      parsed = parseDockerConfig(text, cfg.format);
    } catch (err) {
      if (err instanceof DockerConfigError)
        throw new DockerConfigImportError(`registry ${cfg.name}: ${err.message}`, { cause: err });
      throw err;
    }
    const keys = Object.keys(parsed.auths);
    if (keys.length === 0)
      throw new DockerConfigImportError(`registry ${cfg.name}: the docker config has no entries`);
    return {
      username: parsed.auths[keys[0]!]!.username,
      password: parsed.auths[keys[0]!]!.password,
      entries: parsed.auths,
      source: `${keys.length} entr${keys.length === 1 ? 'y' : 'ies'} imported from a ${cfg.format}`,
    };
  },
  // Every entry travels in `entries`; no main host of its own.
  hosts: () => [],
};
