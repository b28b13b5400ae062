/**
 * Entra ID credentials from @azure/identity, shared by the `acr` provider and
 * the AKS connector: a client secret, a federated token (workload identity),
 * a managed identity, or the default chain.
 *
 * The SDK's own retries are off (`retryOptions.maxRetries: 0`). With its
 * defaults the identity client sends a throttled token request 4 times (3
 * retries; the test beside this file counts them) and the managed identity
 * client up to 6, under each of our attempts. pullkeeper's retry
 * (src/util/retry.ts) is the only one, with the caller's attempts, timeout and
 * abort. MSAL (under @azure/identity 4.x) also remembers a 429/5xx answer and
 * refuses to repeat the same request, locally, for its Retry-After (60 s when
 * absent; msal-common `network/ThrottlingUtils`): a throttled Entra ID sees one
 * call per mint.
 */
import type { SecretRef } from '../config/schema.js';
import type { SecretResolver } from '../config/secret-ref.js';

export type TokenCredential = import('@azure/core-auth').TokenCredential;

export type AzureCredentialConfig =
  | { clientId: string; clientSecret: SecretRef }
  | { clientId: string; federatedToken: SecretRef }
  | { managedIdentity: true | { clientId: string } };

/** No retries inside the SDK: ours wrap every call. */
export const NO_SDK_RETRIES = { retryOptions: { maxRetries: 0 } } as const;

export async function azureCredential(
  o: { tenantId: string; authorityHost?: string; credential?: AzureCredentialConfig },
  secrets: SecretResolver,
): Promise<TokenCredential> {
  const id = await import('@azure/identity');
  const common = {
    ...NO_SDK_RETRIES,
    ...(o.authorityHost ? { authorityHost: o.authorityHost, disableInstanceDiscovery: true } : {}),
  };
  const c = o.credential;
  if (!c) return new id.DefaultAzureCredential({ tenantId: o.tenantId, ...common });
  if ('clientSecret' in c)
    return new id.ClientSecretCredential(
      o.tenantId,
      c.clientId,
      await secrets.resolve(c.clientSecret),
      common,
    );
  if ('federatedToken' in c) {
    const ref = c.federatedToken;
    return new id.ClientAssertionCredential(o.tenantId, c.clientId, () => secrets.resolve(ref), common);
  }
  return new id.ManagedIdentityCredential({
    ...NO_SDK_RETRIES,
    ...(c.managedIdentity === true ? {} : { clientId: c.managedIdentity.clientId }),
  });
}
