/**
 * Service account token calls (authentication.k8s.io/v1): TokenReview (the broker
 * asks the cluster whether a token is valid for its audience) and TokenRequest (the
 * node runner asks for a pod's token, bound to the pod, as the kubelet does).
 * Tokens are only ever sent in request bodies; errors never carry them.
 */
import { KubeApiError, type KubeClient } from './client.js';

const enc = encodeURIComponent;

export interface TokenReviewStatus {
  authenticated?: boolean;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  error?: string;
}

/** POST tokenreviews with `spec.audiences`: the apiserver checks signature, expiry, audience and bound objects. */
export async function reviewToken(
  k: KubeClient,
  token: string,
  audiences: string[],
  signal?: AbortSignal,
): Promise<TokenReviewStatus> {
  const r = await k.request<{ status?: TokenReviewStatus }>(
    'POST',
    '/apis/authentication.k8s.io/v1/tokenreviews',
    {
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences },
      },
      signal,
      retry: true,
    },
  );
  return r.status ?? {};
}

export interface TokenRequestOptions {
  audiences: string[];
  expirationSeconds?: number;
  /** Bind the token to this pod (it stops working when the pod is gone). */
  boundPod?: { name: string; uid?: string };
}

/** POST serviceaccounts/NAME/token: a short-lived token for the ServiceAccount. */
export async function requestToken(
  k: KubeClient,
  namespace: string,
  serviceAccount: string,
  o: TokenRequestOptions,
  signal?: AbortSignal,
): Promise<{ token: string; expirationTimestamp?: string }> {
  const r = await k.request<{ status?: { token?: string; expirationTimestamp?: string } }>(
    'POST',
    `/api/v1/namespaces/${enc(namespace)}/serviceaccounts/${enc(serviceAccount)}/token`,
    {
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: o.audiences,
          expirationSeconds: o.expirationSeconds ?? 600,
          ...(o.boundPod
            ? {
                boundObjectRef: {
                  apiVersion: 'v1',
                  kind: 'Pod',
                  name: o.boundPod.name,
                  ...(o.boundPod.uid ? { uid: o.boundPod.uid } : {}),
                },
              }
            : {}),
        },
      },
      signal,
    },
  );
  if (!r.status?.token)
    throw new KubeApiError(500, 'NoToken', 'the TokenRequest answered without a token', 'POST', 'token');
  return {
    token: r.status.token,
    ...(r.status.expirationTimestamp ? { expirationTimestamp: r.status.expirationTimestamp } : {}),
  };
}

/** A ServiceAccount's annotations; undefined when it does not exist. */
export async function getServiceAccountAnnotations(
  k: KubeClient,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<Record<string, string> | undefined> {
  try {
    const sa = await k.request<{ metadata?: { annotations?: Record<string, string> } }>(
      'GET',
      `/api/v1/namespaces/${enc(namespace)}/serviceaccounts/${enc(name)}`,
      { signal },
    );
    return sa.metadata?.annotations ?? {};
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}
