/** Providers by kind; a second provider for the same kind is refused. Loaded lazily. */
import type { RegistryKind } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import type { CredentialProvider } from './types.js';

export class ProviderRegistryError extends PullkeeperError {}

type Loader = () => Promise<CredentialProvider>;

export class ProviderRegistry {
  readonly #loaders = new Map<RegistryKind, Loader>();
  readonly #loaded = new Map<RegistryKind, Promise<CredentialProvider>>();

  register(kind: RegistryKind, load: Loader): this {
    if (this.#loaders.has(kind))
      throw new ProviderRegistryError(`a provider for kind "${kind}" is already registered`);
    this.#loaders.set(kind, load);
    return this;
  }

  /** The provider of a kind; its module (and SDK) is imported on first use only. */
  get(kind: RegistryKind): Promise<CredentialProvider> {
    let p = this.#loaded.get(kind);
    if (!p) {
      const load = this.#loaders.get(kind);
      if (!load) throw new ProviderRegistryError(`no provider for registry kind "${kind}"`);
      p = load().then((prov) => {
        if (prov.kind !== kind)
          throw new ProviderRegistryError(`provider module for "${kind}" exports kind "${prov.kind}"`);
        return prov;
      });
      this.#loaded.set(kind, p);
    }
    return p;
  }

  kinds(): RegistryKind[] {
    return [...this.#loaders.keys()];
  }
}

/** The built-in providers, one file per cloud, each imported only when a config uses that kind. */
export function defaultProviders(): ProviderRegistry {
  return new ProviderRegistry()
    .register('ecr', async () => (await import('./ecr.js')).ecrProvider as CredentialProvider)
    .register('acr', async () => (await import('./acr.js')).acrProvider as CredentialProvider)
    .register('gar', async () => (await import('./gar.js')).garProvider as CredentialProvider)
    .register('static', async () => (await import('./static.js')).staticProvider as CredentialProvider)
    .register(
      'dockerconfig',
      async () => (await import('./dockerconfig.js')).dockerConfigProvider as CredentialProvider,
    );
}
