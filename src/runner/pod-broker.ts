/**
 * `pullkeeper-node run` through the credential broker (docs/pod-credentials.md),
 * as the kubelet does with a KEP-4412 provider: a TokenRequest for the pod's
 * ServiceAccount with the broker's audience, bound to the pod (which must exist
 * in the cluster: the token dies with it), then the broker's answer for each
 * image. The answer is tried after the pod's own Secrets and the node file
 * (kubelet's order) and recorded by the ServiceAccount's coordinates (kind
 * `serviceaccount`, `namespace/name`, uid), as the kubelet records pulls made
 * with a service-account-token provider (ImagePulledRecord
 * `kubernetesServiceAccounts`).
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { PullkeeperError } from '../core/errors.js';
import type { SourcedDockerConfig } from '../core/index.js';
import { askBroker, type BrokerOptions } from './credential-provider.js';
import type { EnsureImageRequest, ImageSource, PulledImage } from './image-source.js';
import type { PodManifest } from './pod.js';

export class PodBrokerError extends PullkeeperError {}

export interface PodCredentialsSettings {
  broker: BrokerOptions;
  audience: string;
}

/** The ServiceAccount uid from a token the apiserver just issued (its `kubernetes.io` claim). */
function serviceAccountUid(token: string): string | undefined {
  try {
    const c = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      'kubernetes.io'?: { serviceaccount?: { uid?: unknown } };
    };
    const uid = c['kubernetes.io']?.serviceaccount?.uid;
    return typeof uid === 'string' ? uid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An ImageSource that adds the broker's credentials for `pod` to every request.
 * The token is requested once, on the first image, and reused for the pod's other images.
 */
export function withPodCredentials(
  inner: ImageSource,
  kc: KubeConfig,
  pod: PodManifest,
  settings: PodCredentialsSettings,
): ImageSource {
  const namespace = pod.metadata.namespace ?? 'default';
  const sa = pod.spec.serviceAccountName ?? 'default';
  let token: Promise<{ token: string; uid?: string }> | undefined;
  const tokenOnce = () => {
    token ??= (async () => {
      const core = kc.makeApiClient(CoreV1Api);
      let uid: string | undefined;
      try {
        uid = (await core.readNamespacedPod({ namespace, name: pod.metadata.name })).metadata?.uid;
      } catch (err) {
        throw new PodBrokerError(
          `pod ${namespace}/${pod.metadata.name} is not in the cluster (${(err as { code?: number }).code ?? (err as Error).name}): a pod credential token is bound to the pod, so create the pod in the cluster first`,
          { cause: err },
        );
      }
      try {
        const tr = await core.createNamespacedServiceAccountToken({
          namespace,
          name: sa,
          body: {
            spec: {
              audiences: [settings.audience],
              expirationSeconds: 600,
              boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid },
            },
          },
        });
        const t = tr.status?.token;
        if (!t) throw new Error('no token in the answer');
        return { token: t, uid: serviceAccountUid(t) };
      } catch (err) {
        throw new PodBrokerError(
          `cannot request a token for ServiceAccount ${namespace}/${sa} (${(err as { code?: number }).code ?? (err as Error).message}); the node identity needs create on serviceaccounts/token`,
          { cause: err },
        );
      }
    })();
    return token;
  };
  return {
    async ensure(req: EnsureImageRequest): Promise<PulledImage> {
      let provider: SourcedDockerConfig[] = [];
      try {
        const t = await tokenOnce();
        const r = await askBroker(
          {
            apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
            kind: 'CredentialProviderRequest',
            image: req.image,
            serviceAccountToken: t.token,
          },
          settings.broker,
        );
        if (r.problem)
          req.onEvent?.({
            type: 'Warning',
            reason: 'FailedPodCredentials',
            message: `${r.problem}; pulling without them`,
          });
        if (Object.keys(r.response.auth).length)
          provider = [
            {
              auths: r.response.auth,
              source: {
                kind: 'serviceaccount',
                name: `${namespace}/${sa}`,
                ...(t.uid ? { uid: t.uid } : {}),
              },
            },
          ];
      } catch (err) {
        if (!(err instanceof PodBrokerError)) throw err;
        req.onEvent?.({ type: 'Warning', reason: 'FailedPodCredentials', message: err.message });
      }
      return inner.ensure({ ...req, providerCredentials: [...(req.providerCredentials ?? []), ...provider] });
    },
  };
}
