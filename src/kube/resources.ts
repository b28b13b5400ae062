/** The few Kubernetes calls pullkeeper makes, typed to the fields it uses. */
import type { SecretState, ServiceAccountState } from '../core/rotation-plan.js';
import { KubeApiError, type KubeClient } from './client.js';

interface ObjectMeta {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
}
interface List<T> {
  metadata?: { continue?: string; resourceVersion?: string };
  items: T[];
}
export interface NamespaceObj {
  metadata: ObjectMeta;
  status?: { phase?: string };
}
export interface SecretObj {
  metadata: ObjectMeta;
  type?: string;
  data?: Record<string, string>;
}
interface ServiceAccountObj {
  metadata: ObjectMeta;
  imagePullSecrets?: Array<{ name?: string }>;
}

const enc = encodeURIComponent;

/** Items per list page: a large cluster is read in pages, never as one giant response. */
export const LIST_PAGE = 500;

/**
 * Lists all pages (`limit` 500, `continue`) of a collection. A continue token that expired
 * (410 Gone, the API server compacted past it) starts the list over once more from the
 * first page, as client-go's pager does without a consistent snapshot.
 */
export async function listAll<T>(
  k: KubeClient,
  path: string,
  query: Record<string, string>,
  signal?: AbortSignal,
): Promise<T[]> {
  for (let attempt = 1; ; attempt++) {
    const items: T[] = [];
    let cont: string | undefined;
    try {
      do {
        const q = new URLSearchParams({
          ...query,
          limit: String(LIST_PAGE),
          ...(cont ? { continue: cont } : {}),
        });
        const page = await k.request<List<T>>('GET', `${path}?${q}`, { signal });
        for (const it of page.items) items.push(it);
        cont = page.metadata?.continue || undefined;
      } while (cont);
      return items;
    } catch (err) {
      if (!(cont && err instanceof KubeApiError && err.status === 410 && attempt < 3)) throw err;
    }
  }
}

export function toSecretState(s: SecretObj): SecretState {
  return {
    namespace: s.metadata.namespace ?? '',
    name: s.metadata.name,
    resourceVersion: s.metadata.resourceVersion ?? '',
    labels: s.metadata.labels ?? {},
    annotations: s.metadata.annotations ?? {},
    type: s.type,
  };
}

export function toServiceAccountState(sa: ServiceAccountObj): ServiceAccountState {
  return {
    namespace: sa.metadata.namespace ?? '',
    name: sa.metadata.name,
    resourceVersion: sa.metadata.resourceVersion ?? '',
    ...(sa.imagePullSecrets ? { imagePullSecrets: sa.imagePullSecrets.map((r) => r.name ?? '') } : {}),
  };
}

export const listNamespaces = (k: KubeClient, signal?: AbortSignal, labelSelector?: string) =>
  listAll<NamespaceObj>(k, '/api/v1/namespaces', labelSelector ? { labelSelector } : {}, signal);

export async function getNamespace(
  k: KubeClient,
  name: string,
  signal?: AbortSignal,
): Promise<NamespaceObj | undefined> {
  try {
    return await k.request<NamespaceObj>('GET', `/api/v1/namespaces/${enc(name)}`, { signal });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * The Secrets named `name`, cluster-wide (`namespace` undefined) or in one namespace. Always
 * with `fieldSelector=metadata.name=NAME`: the only Secret list that RBAC limited by
 * resourceNames allows (what `pullkeeper rbac` grants), so pullkeeper never asks for any
 * other Secret. Data is dropped.
 */
export async function listSecretsNamed(
  k: KubeClient,
  name: string,
  namespace: string | undefined,
  signal?: AbortSignal,
): Promise<SecretState[]> {
  const path = namespace ? `/api/v1/namespaces/${enc(namespace)}/secrets` : '/api/v1/secrets';
  return (await listAll<SecretObj>(k, path, { fieldSelector: `metadata.name=${name}` }, signal)).map(
    toSecretState,
  );
}

export async function getSecret(
  k: KubeClient,
  ns: string,
  name: string,
  signal?: AbortSignal,
): Promise<SecretObj | undefined> {
  try {
    return await k.request<SecretObj>('GET', `/api/v1/namespaces/${enc(ns)}/secrets/${enc(name)}`, {
      signal,
    });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * ServiceAccounts cluster-wide (`namespace` undefined) or in one namespace; with `name`, only
 * those of that name (`fieldSelector=metadata.name=NAME`, which RBAC resourceNames allow).
 */
export async function listServiceAccounts(
  k: KubeClient,
  namespace: string | undefined,
  signal?: AbortSignal,
  name?: string,
): Promise<ServiceAccountState[]> {
  const path = namespace ? `/api/v1/namespaces/${enc(namespace)}/serviceaccounts` : '/api/v1/serviceaccounts';
  const query: Record<string, string> = name ? { fieldSelector: `metadata.name=${name}` } : {};
  return (await listAll<ServiceAccountObj>(k, path, query, signal)).map(toServiceAccountState);
}

export async function getServiceAccount(
  k: KubeClient,
  ns: string,
  name: string,
  signal?: AbortSignal,
): Promise<ServiceAccountState | undefined> {
  try {
    return toServiceAccountState(
      await k.request<ServiceAccountObj>(
        'GET',
        `/api/v1/namespaces/${enc(ns)}/serviceaccounts/${enc(name)}`,
        { signal },
      ),
    );
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

export interface SecretBody {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  dockerconfigjson: string;
}

function secretObject(b: SecretBody, resourceVersion?: string) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: b.name,
      namespace: b.namespace,
      labels: b.labels,
      annotations: b.annotations,
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(b.dockerconfigjson).toString('base64') },
  };
}

/** Creates; 409 AlreadyExists when someone made it since we read. */
export async function createSecret(k: KubeClient, b: SecretBody, signal?: AbortSignal): Promise<void> {
  await k.request('POST', `/api/v1/namespaces/${enc(b.namespace)}/secrets?fieldManager=pullkeeper`, {
    body: secretObject(b),
    signal,
  });
}

/**
 * Updates in place with server-side apply (field manager `pullkeeper`), guarded
 * by the resourceVersion we planned from: never delete-and-recreate, so there is
 * no moment without a Secret. 409 when it changed under us.
 */
export async function applySecret(
  k: KubeClient,
  b: SecretBody,
  resourceVersion: string,
  signal?: AbortSignal,
): Promise<void> {
  await k.request(
    'PATCH',
    `/api/v1/namespaces/${enc(b.namespace)}/secrets/${enc(b.name)}?fieldManager=pullkeeper&force=true`,
    {
      body: secretObject(b, resourceVersion),
      contentType: 'application/apply-patch+yaml',
      signal,
    },
  );
}

export async function deleteSecret(
  k: KubeClient,
  ns: string,
  name: string,
  resourceVersion: string,
  signal?: AbortSignal,
): Promise<void> {
  await k.request('DELETE', `/api/v1/namespaces/${enc(ns)}/secrets/${enc(name)}`, {
    body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion } },
    signal,
  });
}

/**
 * Adds `secretName` to a ServiceAccount's imagePullSecrets with a JSON Patch
 * guarded by a `test` of what we read: entries others put there stay, and a
 * concurrent change makes the patch fail (then the caller re-reads).
 */
export async function addImagePullSecret(
  k: KubeClient,
  sa: ServiceAccountState,
  secretName: string,
  signal?: AbortSignal,
): Promise<void> {
  const ops =
    sa.imagePullSecrets === undefined
      ? [
          { op: 'test', path: '/metadata/resourceVersion', value: sa.resourceVersion },
          { op: 'add', path: '/imagePullSecrets', value: [{ name: secretName }] },
        ]
      : [
          { op: 'test', path: '/imagePullSecrets', value: sa.imagePullSecrets.map((name) => ({ name })) },
          { op: 'add', path: '/imagePullSecrets/-', value: { name: secretName } },
        ];
  await k.request(
    'PATCH',
    `/api/v1/namespaces/${enc(sa.namespace)}/serviceaccounts/${enc(sa.name)}?fieldManager=pullkeeper`,
    {
      body: ops,
      contentType: 'application/json-patch+json',
      signal,
    },
  );
}

export interface EventBody {
  namespace: string;
  involved: { kind: string; name: string; apiVersion: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  now: Date;
}

/** A core/v1 Event (kubectl describe and `kubectl get events` show it). */
export async function createEvent(k: KubeClient, e: EventBody, signal?: AbortSignal): Promise<void> {
  const ts = e.now.toISOString().replace(/\.\d+Z$/, 'Z');
  await k.request('POST', `/api/v1/namespaces/${enc(e.namespace)}/events`, {
    body: {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${e.involved.name}.`, namespace: e.namespace },
      involvedObject: { ...e.involved, namespace: e.namespace },
      reason: e.reason,
      message: e.message.slice(0, 1024),
      type: e.type,
      source: { component: 'pullkeeper' },
      reportingComponent: 'pullkeeper',
      reportingInstance: 'pullkeeper',
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    },
    signal,
  });
}

export interface ConfigMapState {
  resourceVersion: string;
  labels: Record<string, string>;
  data: Record<string, string>;
}

/** A ConfigMap's data and resourceVersion; undefined when it does not exist. */
export async function getConfigMap(
  k: KubeClient,
  ns: string,
  name: string,
  signal?: AbortSignal,
): Promise<ConfigMapState | undefined> {
  try {
    const o = await k.request<{ metadata: ObjectMeta; data?: Record<string, string> }>(
      'GET',
      `/api/v1/namespaces/${enc(ns)}/configmaps/${enc(name)}`,
      { signal },
    );
    return {
      resourceVersion: o.metadata.resourceVersion ?? '',
      labels: o.metadata.labels ?? {},
      data: o.data ?? {},
    };
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * Creates the ConfigMap, or replaces it when `resourceVersion` is given (optimistic
 * concurrency: 409 Conflict when someone wrote it since that read, 409 AlreadyExists
 * when someone created it first).
 */
export async function putConfigMap(
  k: KubeClient,
  o: { namespace: string; name: string; labels: Record<string, string>; data: Record<string, string> },
  resourceVersion: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const body = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: o.name,
      namespace: o.namespace,
      labels: o.labels,
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    data: o.data,
  };
  const base = `/api/v1/namespaces/${enc(o.namespace)}/configmaps`;
  if (resourceVersion)
    await k.request('PUT', `${base}/${enc(o.name)}?fieldManager=pullkeeper`, { body, signal });
  else await k.request('POST', `${base}?fieldManager=pullkeeper`, { body, signal });
}
