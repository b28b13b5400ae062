/**
 * The objects a pod refers to, read from a cluster (what the kubelet's
 * informers give it): the ConfigMaps and Secrets its env, envFrom and
 * imagePullSecrets name, the Services of its namespace (when
 * `enableServiceLinks`) plus `default/kubernetes`, and its RuntimeClass.
 * A missing object is left out, so the kubelet rules (optional or not,
 * RuntimeClass not found) decide what happens.
 *
 * RBAC the node identity needs: get on configmaps, secrets and services and
 * list on services in the pod's namespace; get on runtimeclasses.node.k8s.io.
 */
import { CoreV1Api, type KubeConfig, NodeV1Api } from '@kubernetes/client-node';
import { PullkeeperError } from '../core/errors.js';
import type { PodManifest, PodObjects, RuntimeClassObject } from './pod.js';
import { emptyObjects } from './pod.js';

/** The cluster could not be read (other than a missing object). */
export class ClusterObjectsError extends PullkeeperError {}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number };
  return typeof e.code === 'number' ? e.code : e.statusCode;
}

async function orMissing<T>(what: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    const code = statusCode(err);
    if (code === 404) return undefined;
    throw new ClusterObjectsError(
      `cannot read ${what} from the cluster (${code ?? (err as Error).message}); check the kubeconfig and that the node identity may get it`,
      { cause: err },
    );
  }
}

/** Names of the ConfigMaps and Secrets a pod refers to. */
export function referencedObjects(pod: PodManifest): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const s of pod.spec.imagePullSecrets ?? []) secrets.add(s.name);
  for (const c of pod.spec.containers) {
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef) configMaps.add(f.configMapRef.name);
      else if (f.secretRef) secrets.add(f.secretRef.name);
    }
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef) configMaps.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef) secrets.add(e.valueFrom.secretKeyRef.name);
    }
  }
  return { configMaps: [...configMaps].sort(), secrets: [...secrets].sort() };
}

export async function fetchPodObjects(kc: KubeConfig, pod: PodManifest): Promise<PodObjects> {
  const core = kc.makeApiClient(CoreV1Api);
  const nodeApi = kc.makeApiClient(NodeV1Api);
  const namespace = pod.metadata.namespace;
  const out = emptyObjects();
  const refs = referencedObjects(pod);
  await Promise.all([
    ...refs.configMaps.map(async (name) => {
      const cm = await orMissing(`ConfigMap ${namespace}/${name}`, () =>
        core.readNamespacedConfigMap({ name, namespace }),
      );
      if (cm) out.configMaps[name] = { ...cm.data };
    }),
    ...refs.secrets.map(async (name) => {
      const s = await orMissing(`Secret ${namespace}/${name}`, () =>
        core.readNamespacedSecret({ name, namespace }),
      );
      if (!s) return;
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
      out.secrets[name] = {
        type: s.type ?? 'Opaque',
        data,
        ...(s.metadata?.uid ? { uid: s.metadata.uid } : {}),
      };
    }),
    (async () => {
      const svc = await orMissing('Service default/kubernetes', () =>
        core.readNamespacedService({ name: 'kubernetes', namespace: 'default' }),
      );
      const list = pod.spec.enableServiceLinks
        ? ((await orMissing(`Services of ${namespace}`, () => core.listNamespacedService({ namespace })))
            ?.items ?? [])
        : [];
      for (const s of [...(svc ? [svc] : []), ...list]) {
        out.services.push({
          name: s.metadata?.name ?? '',
          namespace: s.metadata?.namespace ?? namespace,
          clusterIP: s.spec?.clusterIP ?? '',
          ports: (s.spec?.ports ?? []).map((p) => ({
            ...(p.name ? { name: p.name } : {}),
            port: p.port,
            ...(p.protocol ? { protocol: p.protocol as 'TCP' | 'UDP' | 'SCTP' } : {}),
          })),
        });
      }
    })(),
    (async () => {
      const name = pod.spec.runtimeClassName;
      if (!name) return;
      const rc = await orMissing(`RuntimeClass ${name}`, () => nodeApi.readRuntimeClass({ name }));
      if (rc) {
        out.runtimeClasses[name] = {
          apiVersion: 'node.k8s.io/v1',
          metadata: { name },
          handler: rc.handler,
        } satisfies RuntimeClassObject;
      }
    })(),
  ]);
  return out;
}
