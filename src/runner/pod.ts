/**
 * The Pod subset pullkeeper-node runs, read from a manifest (YAML or JSON,
 * one or many documents). Besides the Pod, a manifest may carry the objects
 * the pod refers to: ConfigMaps, Secrets, Services and RuntimeClasses.
 *
 * Fields outside the subset are reported (as paths), never silently ignored;
 * empty values kubectl writes by default (`resources: {}`) are not reported.
 */
import { parseAllDocuments } from 'yaml';
import * as z from 'zod';
import { PullkeeperError } from '../core/errors.js';
import type { EnvFromSource, EnvVar, NamespacedServiceLink } from '../core/pod-env.js';

/** The manifest cannot be used; the message names the field and the fix. */
export class PodManifestError extends PullkeeperError {}

const httpHeader = z.object({ name: z.string(), value: z.string() });
const handlerSchema = z.object({
  exec: z.object({ command: z.array(z.string()).min(1) }).optional(),
  httpGet: z
    .object({
      path: z.string().optional(),
      port: z.union([z.number().int().min(1).max(65535), z.string().min(1)]),
      host: z.string().optional(),
      scheme: z.enum(['HTTP', 'HTTPS']).optional(),
      httpHeaders: z.array(httpHeader).optional(),
    })
    .optional(),
  sleep: z.object({ seconds: z.number().int() }).optional(),
  tcpSocket: z.object({ port: z.union([z.number(), z.string()]), host: z.string().optional() }).optional(),
});
export type LifecycleHandler = z.infer<typeof handlerSchema>;

const keySelector = z.object({ name: z.string(), key: z.string(), optional: z.boolean().optional() });
const envVarSchema = z.object({
  name: z.string().min(1),
  value: z.string().optional(),
  valueFrom: z
    .object({
      fieldRef: z.object({ apiVersion: z.string().optional(), fieldPath: z.string() }).optional(),
      resourceFieldRef: z
        .object({
          containerName: z.string().optional(),
          resource: z.string(),
          divisor: z.unknown().optional(),
        })
        .optional(),
      configMapKeyRef: keySelector.optional(),
      secretKeyRef: keySelector.optional(),
    })
    .optional(),
});
const envFromSchema = z.object({
  prefix: z.string().optional(),
  configMapRef: z.object({ name: z.string(), optional: z.boolean().optional() }).optional(),
  secretRef: z.object({ name: z.string(), optional: z.boolean().optional() }).optional(),
});

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const seccompProfileSchema = z.object({
  type: z.enum(['RuntimeDefault', 'Unconfined', 'Localhost']),
  localhostProfile: z.string().optional(),
});
const id = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);
const containerSecuritySchema = z.object({
  runAsUser: id.optional(),
  runAsGroup: id.optional(),
  runAsNonRoot: z.boolean().optional(),
  capabilities: z
    .object({ add: z.array(z.string()).optional(), drop: z.array(z.string()).optional() })
    .optional(),
  privileged: z.boolean().optional(),
  readOnlyRootFilesystem: z.boolean().optional(),
  allowPrivilegeEscalation: z.boolean().optional(),
  seccompProfile: seccompProfileSchema.optional(),
});
const podSecuritySchema = z.object({
  runAsUser: id.optional(),
  runAsGroup: id.optional(),
  runAsNonRoot: z.boolean().optional(),
  supplementalGroups: z.array(id).optional(),
  seccompProfile: seccompProfileSchema.optional(),
});

const containerSchema = z.object({
  name: z.string().max(63).regex(DNS_LABEL, 'a container name must be a DNS-1123 label'),
  image: z.string().min(1),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  workingDir: z.string().optional(),
  env: z.array(envVarSchema).optional(),
  envFrom: z.array(envFromSchema).optional(),
  ports: z
    .array(
      z.object({
        name: z.string().optional(),
        containerPort: z.number().int(),
        protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
      }),
    )
    .optional(),
  lifecycle: z.object({ postStart: handlerSchema.optional(), preStop: handlerSchema.optional() }).optional(),
  securityContext: containerSecuritySchema.optional(),
});
export type ContainerSpec = z.infer<typeof containerSchema>;

const podSchema = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('Pod'),
  metadata: z.object({
    name: z.string().max(253).regex(DNS_SUBDOMAIN, 'metadata.name must be a DNS-1123 subdomain'),
    namespace: z.string().regex(DNS_LABEL).default('default'),
    uid: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.object({
    containers: z.array(containerSchema).min(1),
    imagePullSecrets: z.array(z.object({ name: z.string() })).optional(),
    hostname: z.string().optional(),
    subdomain: z.string().optional(),
    setHostnameAsFQDN: z.boolean().optional(),
    enableServiceLinks: z.boolean().default(true),
    runtimeClassName: z.string().regex(DNS_SUBDOMAIN, 'runtimeClassName must be a DNS subdomain').optional(),
    terminationGracePeriodSeconds: z.number().int().min(0).default(30),
    restartPolicy: z.enum(['Always', 'OnFailure', 'Never']).default('Always'),
    serviceAccountName: z.string().optional(),
    nodeName: z.string().optional(),
    securityContext: podSecuritySchema.optional(),
  }),
});
export type PodManifest = z.infer<typeof podSchema>;

/**
 * Fields the runner understands, as a tree (`true` = any value below it).
 * Anything else with a non-empty value is reported by {@link unsupportedFields}.
 */
const HANDLER_FIELDS = { exec: true, httpGet: true, sleep: true, tcpSocket: true } as const;
const SECCOMP_FIELDS = { type: true, localhostProfile: true } as const;
/** securityContext fields applied (docs/node-runner.md); the others (seLinuxOptions, appArmorProfile, procMount, ...) are reported. */
const CONTAINER_SECURITY_FIELDS = {
  runAsUser: true,
  runAsGroup: true,
  runAsNonRoot: true,
  capabilities: { add: true, drop: true },
  privileged: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: true,
  seccompProfile: SECCOMP_FIELDS,
} as const;
const POD_SECURITY_FIELDS = {
  runAsUser: true,
  runAsGroup: true,
  runAsNonRoot: true,
  supplementalGroups: true,
  seccompProfile: SECCOMP_FIELDS,
} as const;
const CONTAINER_FIELDS = {
  name: true,
  image: true,
  imagePullPolicy: true,
  command: true,
  args: true,
  workingDir: true,
  env: true,
  envFrom: true,
  ports: true,
  lifecycle: { postStart: HANDLER_FIELDS, preStop: HANDLER_FIELDS },
  securityContext: CONTAINER_SECURITY_FIELDS,
  // kubectl/apiserver defaults that change nothing here:
  terminationMessagePath: true,
  terminationMessagePolicy: true,
} as const;
type FieldTree = { readonly [k: string]: true | FieldTree | readonly [FieldTree] };
const POD_FIELDS: FieldTree = {
  apiVersion: true,
  kind: true,
  metadata: {
    name: true,
    namespace: true,
    uid: true,
    labels: true,
    annotations: true,
    // informational, set by the API server:
    creationTimestamp: true,
    resourceVersion: true,
    generation: true,
    managedFields: true,
    selfLink: true,
  },
  spec: {
    containers: [CONTAINER_FIELDS],
    imagePullSecrets: true,
    hostname: true,
    subdomain: true,
    setHostnameAsFQDN: true,
    enableServiceLinks: true,
    runtimeClassName: true,
    terminationGracePeriodSeconds: true,
    restartPolicy: true,
    serviceAccountName: true,
    serviceAccount: true,
    nodeName: true,
    securityContext: POD_SECURITY_FIELDS,
    // defaults that change nothing for one node without a scheduler or DNS server:
    schedulerName: true,
    dnsPolicy: true,
    priority: true,
    preemptionPolicy: true,
    tolerations: true,
  },
  status: true,
};

function isEmptyValue(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v).length === 0;
  return false;
}

/**
 * Paths of fields the runner does not implement, in document order.
 *
 * @example
 * unsupportedFields({ spec: { volumes: [{ name: 'x' }], containers: [{ name: 'c', resources: {} }] } });
 * // ['spec.volumes']
 */
export function unsupportedFields(raw: unknown, tree: FieldTree = POD_FIELDS, path = ''): string[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return [];
  const out: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const p = path ? `${path}.${key}` : key;
    const known = tree[key];
    if (known === undefined) {
      if (!isEmptyValue(value)) out.push(p);
      continue;
    }
    if (known === true) continue;
    if (Array.isArray(known)) {
      if (Array.isArray(value)) {
        value.forEach((item, i) => {
          out.push(...unsupportedFields(item, (known as readonly [FieldTree])[0], `${p}[${i}]`));
        });
      }
      continue;
    }
    out.push(...unsupportedFields(value, known as FieldTree, p));
  }
  return out;
}

/** A RuntimeClass object as read from a manifest or the cluster (validated later, see runtime-class.ts). */
export interface RuntimeClassObject {
  apiVersion: string;
  metadata: { name: string };
  handler?: unknown;
  spec?: { runtimeHandler?: unknown };
  [k: string]: unknown;
}

/** The objects a pod refers to, by name, in the pod's namespace (Services: all namespaces). */
export interface PodObjects {
  configMaps: Record<string, Record<string, string>>;
  /**
   * Values already decoded from base64 (`stringData` merged over `data`).
   * `uid` only from the API server: KEP-2535 trusts a Secret by uid, and a
   * manifest's `metadata.uid` could be anyone's claim.
   */
  secrets: Record<string, { type: string; data: Record<string, string>; uid?: string }>;
  services: NamespacedServiceLink[];
  runtimeClasses: Record<string, RuntimeClassObject>;
}

export function emptyObjects(): PodObjects {
  return { configMaps: {}, secrets: {}, services: [], runtimeClasses: {} };
}

export interface ParsedManifest {
  pod?: PodManifest;
  unsupported: string[];
  objects: PodObjects;
  /** Objects of kinds we do not read, as `Kind/name`. */
  ignored: string[];
}

function issueText(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`).join('; ');
}

const configMapSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  data: z.record(z.string(), z.string()).optional(),
  binaryData: z.record(z.string(), z.string()).optional(),
});
const secretSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  type: z.string().default('Opaque'),
  data: z.record(z.string(), z.string()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});
const serviceSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string().default('default') }),
  spec: z.object({
    clusterIP: z.string().default(''),
    ports: z
      .array(
        z.object({
          name: z.string().optional(),
          port: z.number().int(),
          protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
        }),
      )
      .default([]),
  }),
});
const runtimeClassSchema = z.looseObject({
  apiVersion: z.string(),
  metadata: z.object({ name: z.string() }),
});

/** Adds one Kubernetes object (already parsed JSON) to `objects`; returns false for kinds we do not read. */
export function addObject(objects: PodObjects, doc: Record<string, unknown>, where: string): boolean {
  const parse = <T>(schema: z.ZodType<T>): T => {
    const r = schema.safeParse(doc);
    if (!r.success) throw new PodManifestError(`${where}: ${doc.kind} is invalid: ${issueText(r.error)}`);
    return r.data;
  };
  switch (doc.kind) {
    case 'ConfigMap': {
      const cm = parse(configMapSchema);
      objects.configMaps[cm.metadata.name] = { ...cm.data };
      return true;
    }
    case 'Secret': {
      const s = parse(secretSchema);
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
      Object.assign(data, s.stringData);
      objects.secrets[s.metadata.name] = { type: s.type, data };
      return true;
    }
    case 'Service': {
      const svc = parse(serviceSchema);
      objects.services.push({
        name: svc.metadata.name,
        namespace: svc.metadata.namespace,
        clusterIP: svc.spec.clusterIP,
        ports: svc.spec.ports,
      });
      return true;
    }
    case 'RuntimeClass': {
      const rc = parse(runtimeClassSchema) as RuntimeClassObject;
      objects.runtimeClasses[rc.metadata.name] = rc;
      return true;
    }
    case 'List': {
      for (const item of (doc.items as Record<string, unknown>[] | undefined) ?? []) {
        addObject(objects, item, where);
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * Reads a manifest: at most one Pod, plus any ConfigMaps, Secrets, Services
 * and RuntimeClasses (also inside a `List`). JSON is YAML, so both work.
 * Throws {@link PodManifestError} naming the field that is wrong.
 */
export function parseManifest(text: string, where = 'manifest'): ParsedManifest {
  const objects = emptyObjects();
  const ignored: string[] = [];
  let pod: PodManifest | undefined;
  let unsupported: string[] = [];
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length > 0)
      throw new PodManifestError(`${where}: not valid YAML or JSON: ${d.errors[0]!.message}`);
    const doc = d.toJS() as unknown;
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new PodManifestError(`${where}: every document must be a Kubernetes object (a mapping)`);
    }
    const obj = doc as Record<string, unknown>;
    if (obj.kind === 'Pod') {
      if (pod !== undefined) throw new PodManifestError(`${where}: more than one Pod; give one Pod per run`);
      const r = podSchema.safeParse(obj);
      if (!r.success) throw new PodManifestError(`${where}: Pod is invalid: ${issueText(r.error)}`);
      pod = r.data;
      unsupported = unsupportedFields(obj);
      const names = new Set<string>();
      for (const c of pod.spec.containers) {
        if (names.has(c.name)) throw new PodManifestError(`${where}: two containers are named "${c.name}"`);
        names.add(c.name);
      }
    } else if (!addObject(objects, obj, where)) {
      ignored.push(`${String(obj.kind)}/${String((obj.metadata as { name?: string } | undefined)?.name)}`);
    }
  }
  return { ...(pod ? { pod } : {}), unsupported, objects, ignored };
}

/** Merges `more` into `into` (later wins by name). */
export function mergeObjects(into: PodObjects, more: PodObjects): void {
  Object.assign(into.configMaps, more.configMaps);
  Object.assign(into.secrets, more.secrets);
  Object.assign(into.runtimeClasses, more.runtimeClasses);
  into.services.push(...more.services);
}

/** The env types of the core, from the parsed manifest (the shapes match). */
export function containerEnvInput(c: ContainerSpec): { env: EnvVar[]; envFrom: EnvFromSource[] } {
  return { env: (c.env ?? []) as EnvVar[], envFrom: c.envFrom ?? [] };
}
