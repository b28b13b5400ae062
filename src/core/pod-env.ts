/**
 * Container environment as the kubelet builds it (docs/kubelet-parity.md §5): service
 * link variables, the downward API in `env`, `envFrom`, `$(VAR)` expansion,
 * the pod hostname, and the final process environment the runtime hands to
 * the container.
 *
 * Pure: no I/O, no clock. ConfigMaps, Secrets, Services and pod facts come in
 * as plain data; the caller fetches them.
 */
import { PullkeeperError } from './errors.js';

/** Default `PATH` containerd puts in every Linux container spec before anything else. */
export const DEFAULT_CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Namespace whose `kubernetes` Service every pod sees (kubelet `--master-service-namespace`). */
export const DEFAULT_MASTER_SERVICE_NAMESPACE = 'default';

/** Longest hostname the kernel accepts (64-byte `utsname` field minus the NUL). */
const HOSTNAME_MAX_LENGTH = 63;

/** Longest FQDN accepted as a kernel hostname with `setHostnameAsFQDN`. */
const FQDN_MAX_LENGTH = 64;

/** An environment variable could not be resolved; the container must not start. */
export class EnvResolutionError extends PullkeeperError {}

/** The pod's hostname or FQDN cannot be built; the sandbox must not start. */
export class PodHostnameError extends PullkeeperError {}

// ---------------------------------------------------------------------------
// Types (names as in the Kubernetes API)
// ---------------------------------------------------------------------------

/** One port of a Service, as far as service links need it. */
export interface ServicePort {
  name?: string;
  port: number;
  /** Defaults to `TCP`. */
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

/** The part of a Service that service environment variables are built from. */
export interface ServiceLink {
  name: string;
  /** `''` or `'None'` means no cluster IP (headless, ExternalName): no variables. */
  clusterIP: string;
  ports: ServicePort[];
}

/** A Service with its namespace, as listed from the cluster. */
export interface NamespacedServiceLink extends ServiceLink {
  namespace: string;
}

/** `v1.ObjectFieldSelector`. */
export interface ObjectFieldSelector {
  /** Only `v1` (the default) is accepted. */
  apiVersion?: string;
  fieldPath: string;
}

/** `v1.ResourceFieldSelector` (recognized, but not resolvable here; see {@link buildContainerEnv}). */
export interface ResourceFieldSelector {
  containerName?: string;
  resource: string;
  divisor?: string;
}

/** `v1.ConfigMapKeySelector`. */
export interface ConfigMapKeySelector {
  name: string;
  key: string;
  optional?: boolean;
}

/** `v1.SecretKeySelector`. */
export interface SecretKeySelector {
  name: string;
  key: string;
  optional?: boolean;
}

/** `v1.EnvVarSource`. The first field set wins, in kubelet's order: fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef. */
export interface EnvVarSource {
  fieldRef?: ObjectFieldSelector;
  resourceFieldRef?: ResourceFieldSelector;
  configMapKeyRef?: ConfigMapKeySelector;
  secretKeyRef?: SecretKeySelector;
}

/** `v1.EnvVar`. A non-empty `value` wins over `valueFrom`. */
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: EnvVarSource;
}

/** `v1.ConfigMapEnvSource`. */
export interface ConfigMapEnvSource {
  name: string;
  optional?: boolean;
}

/** `v1.SecretEnvSource`. */
export interface SecretEnvSource {
  name: string;
  optional?: boolean;
}

/** `v1.EnvFromSource`. `configMapRef` wins if both are set (kubelet's order). */
export interface EnvFromSource {
  prefix?: string;
  configMapRef?: ConfigMapEnvSource;
  secretRef?: SecretEnvSource;
}

/** The pod facts the downward API in `env` can read. */
export interface PodEnvFacts {
  name: string;
  namespace: string;
  uid: string;
  nodeName?: string;
  serviceAccountName?: string;
  hostIP?: string;
  /** All host IPs (`status.hostIPs`); defaults to `[hostIP]`. */
  hostIPs?: string[];
  podIP?: string;
  /** In the node's IP-family preference order; `status.podIP` is its first entry when non-empty. */
  podIPs?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A resolved `NAME=value` pair. */
export interface ResolvedEnvVar {
  name: string;
  value: string;
}

/** A Warning event to record on the pod. */
export interface EnvWarning {
  reason: string;
  message: string;
}

// ---------------------------------------------------------------------------
// Service environment variables (§5.3)
// ---------------------------------------------------------------------------

/** True unless the cluster IP is `''` or `'None'` (kubelet `IsServiceIPSet`). */
function hasClusterIP(service: ServiceLink): boolean {
  return service.clusterIP !== '' && service.clusterIP !== 'None';
}

/** `redis-primary` -> `REDIS_PRIMARY` (upstream's TODO about dots and leading digits cannot arise for DNS-1035 names). */
function mangleServiceName(name: string): string {
  return name.replaceAll('-', '_').toUpperCase();
}

/** Go `net.JoinHostPort`: brackets a host that contains a colon. */
function joinHostPort(host: string, port: string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The Docker-link-style variables the kubelet injects for `services`, in
 * kubelet's per-service order (HOST, PORT, named PORTs, `_PORT`, then four
 * variables per port). Services without a cluster IP are skipped; a later
 * service overwrites an earlier one's same-named variable.
 *
 * A service with no ports (impossible for a ClusterIP Service that passed API
 * validation; the kubelet would panic) yields only `_SERVICE_HOST`.
 *
 * @example
 * serviceEnvVars([{ name: 'redis-primary', clusterIP: '10.0.0.11', ports: [{ port: 6379 }] }]);
 * // {
 * //   REDIS_PRIMARY_SERVICE_HOST: '10.0.0.11',
 * //   REDIS_PRIMARY_SERVICE_PORT: '6379',
 * //   REDIS_PRIMARY_PORT: 'tcp://10.0.0.11:6379',
 * //   REDIS_PRIMARY_PORT_6379_TCP: 'tcp://10.0.0.11:6379',
 * //   REDIS_PRIMARY_PORT_6379_TCP_PROTO: 'tcp',
 * //   REDIS_PRIMARY_PORT_6379_TCP_PORT: '6379',
 * //   REDIS_PRIMARY_PORT_6379_TCP_ADDR: '10.0.0.11',
 * // }
 * serviceEnvVars([{ name: 'v6', clusterIP: 'fd00::1', ports: [{ port: 80 }] }]).V6_PORT; // 'tcp://[fd00::1]:80'
 */
export function serviceEnvVars(services: ServiceLink[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const service of services) {
    if (!hasClusterIP(service)) continue;
    const prefix = mangleServiceName(service.name);
    const ip = service.clusterIP;
    out[`${prefix}_SERVICE_HOST`] = ip;
    const first = service.ports[0];
    if (first === undefined) continue;
    out[`${prefix}_SERVICE_PORT`] = String(first.port);
    for (const p of service.ports) {
      if (p.name) out[`${prefix}_SERVICE_PORT_${mangleServiceName(p.name)}`] = String(p.port);
    }
    service.ports.forEach((p, i) => {
      const protocol = p.protocol || 'TCP';
      const proto = protocol.toLowerCase();
      const port = String(p.port);
      const url = `${proto}://${joinHostPort(ip, port)}`;
      if (i === 0) out[`${prefix}_PORT`] = url;
      const base = `${prefix}_PORT_${port}_${protocol.toUpperCase()}`;
      out[base] = url;
      out[`${base}_PROTO`] = proto;
      out[`${base}_PORT`] = port;
      out[`${base}_ADDR`] = ip;
    });
  }
  return out;
}

/**
 * The services whose variables a pod sees (kubelet `getServiceEnvVarMap`):
 * - services without a cluster IP are skipped;
 * - `kubernetes` in `masterNamespace` (default `default`) is always included,
 *   even with `enableServiceLinks: false`, and is never replaced by another
 *   master-namespace entry;
 * - with `enableServiceLinks`, every service in the pod's namespace is
 *   included, and a same-namespace `kubernetes` (pod namespace ≠ master
 *   namespace) replaces the master one.
 *
 * Returned sorted by name, so the result does not depend on list order
 * (kubelet iterates a Go map here; the order only matters in the rare case of
 * two services whose variable names collide).
 *
 * @example
 * selectServicesForPod({
 *   podNamespace: 'team-a',
 *   enableServiceLinks: false,
 *   services: [
 *     { namespace: 'default', name: 'kubernetes', clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] },
 *     { namespace: 'team-a', name: 'db', clusterIP: '10.0.0.5', ports: [{ port: 5432 }] },
 *   ],
 * }).map((s) => s.name); // ['kubernetes']
 */
export function selectServicesForPod<S extends NamespacedServiceLink>(opts: {
  podNamespace: string;
  enableServiceLinks: boolean;
  services: S[];
  masterNamespace?: string;
}): S[] {
  const master = opts.masterNamespace ?? DEFAULT_MASTER_SERVICE_NAMESPACE;
  const byName = new Map<string, S>();
  for (const service of opts.services) {
    if (!hasClusterIP(service)) continue;
    if (service.namespace === master && service.name === 'kubernetes') {
      if (!byName.has(service.name)) byName.set(service.name, service);
    } else if (service.namespace === opts.podNamespace && opts.enableServiceLinks) {
      byName.set(service.name, service);
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// ---------------------------------------------------------------------------
// $(VAR) expansion (§5.5)
// ---------------------------------------------------------------------------

/**
 * Kubernetes `$(VAR)` expansion. `$(NAME)` becomes `lookup(NAME)`, or stays
 * as written when the lookup gives `undefined`; `$$` becomes `$`; an
 * unterminated `$(`, a trailing `$`, `$X` and `${X}` are left alone. Values
 * are not expanded again (no recursion), and there is no nesting: the name
 * runs to the first `)`.
 *
 * @example
 * const vars: Record<string, string> = { A: 'A', B: 'B' };
 * const lookup = (n: string) => (Object.hasOwn(vars, n) ? vars[n] : undefined);
 * expandEnvRefs('$(A)-$(A)', lookup); // 'A-A'
 * expandEnvRefs('$$(B)_$(A)', lookup); // '$(B)_A'
 * expandEnvRefs('$(DNE)', lookup); // '$(DNE)'
 * expandEnvRefs('${A} $A', lookup); // '${A} $A'
 */
export function expandEnvRefs(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let copied = 0; // input[copied..i) is still to be copied verbatim
  let noCloserAhead = false; // once no ')' follows, none will: skip rescanning
  let i = 0;
  while (i < input.length - 1) {
    if (input[i] !== '$') {
      i++;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += `${input.slice(copied, i)}$`;
      i += 2;
      copied = i;
    } else if (next === '(') {
      const close = noCloserAhead ? -1 : input.indexOf(')', i + 2);
      if (close === -1) {
        noCloserAhead = true;
        // Unterminated: keep "$(" and carry on scanning after it.
        i += 2;
        continue;
      }
      const name = input.slice(i + 2, close);
      const value = lookup(name);
      out += input.slice(copied, i) + (value ?? `$(${name})`);
      i = close + 1;
      copied = i;
    } else {
      // A lone operator: "$X" stays as written.
      i += 2;
    }
  }
  return out + input.slice(copied);
}

// ---------------------------------------------------------------------------
// Building the container's env (§5.2, §5.4)
// ---------------------------------------------------------------------------

const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * Kubernetes `IsEnvVarName`: letters, digits, `_`, `-`, `.`; not starting
 * with a digit; not `.`, `..`, or starting with `..`.
 *
 * @example
 * isEnvVarName('MY_ENV.NAME'); // true
 * isEnvVarName('1ABC'); // false
 * isEnvVarName('..x'); // false
 */
export function isEnvVarName(name: string): boolean {
  return ENV_VAR_NAME.test(name) && name !== '.' && !name.startsWith('..');
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Kubernetes `IsQualifiedName`: `[prefix/]name`, name ≤ 63, prefix a DNS-1123 subdomain ≤ 253. */
function isQualifiedName(value: string): boolean {
  const parts = value.split('/');
  if (parts.length > 2) return false;
  const name = parts.length === 2 ? parts[1]! : parts[0]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return false;
  }
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

/** `fieldPath`s an `env[].valueFrom.fieldRef` may name (besides label/annotation subscripts). */
const FIELD_PATHS = [
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
] as const;

type FieldPath = (typeof FIELD_PATHS)[number];

function isFieldPath(path: string): path is FieldPath {
  return (FIELD_PATHS as readonly string[]).includes(path);
}

/** `metadata.labels['k']` -> `['labels', 'k']` (fieldpath `SplitMaybeSubscriptedPath`). */
function splitSubscript(path: string): [string, string] | undefined {
  if (!path.endsWith("']")) return undefined;
  const body = path.slice(0, -2);
  const open = body.indexOf("['");
  if (open <= 0) return undefined;
  return [body.slice(0, open), body.slice(open + 2)];
}

function ownValue(record: Record<string, string> | undefined, key: string): string | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

function fieldRefValue(envName: string, ref: ObjectFieldSelector, pod: PodEnvFacts): string {
  const apiVersion = ref.apiVersion || 'v1';
  if (apiVersion !== 'v1') {
    throw new EnvResolutionError(`unsupported pod version: ${apiVersion}`);
  }
  const path = ref.fieldPath;
  const sub = splitSubscript(path);
  if (sub !== undefined) {
    const [base, key] = sub;
    if (base === 'metadata.labels' || base === 'metadata.annotations') {
      const checked = base === 'metadata.annotations' ? key.toLowerCase() : key;
      if (!isQualifiedName(checked)) {
        throw new EnvResolutionError(
          `invalid key subscript in ${path} (env ${envName}): a qualified name is an optional DNS subdomain prefix and '/', then 1-63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character`,
        );
      }
      return ownValue(base === 'metadata.labels' ? pod.labels : pod.annotations, key) ?? '';
    }
  }
  if (!isFieldPath(path)) {
    throw new EnvResolutionError(
      `env ${envName}: fieldRef fieldPath "${path}" is not supported; use one of ${FIELD_PATHS.join(', ')}, metadata.labels['<key>'] or metadata.annotations['<key>']`,
    );
  }
  const podIPs = pod.podIPs?.length ? pod.podIPs : pod.podIP ? [pod.podIP] : [];
  const hostIPs = pod.hostIPs?.length ? pod.hostIPs : pod.hostIP ? [pod.hostIP] : [];
  switch (path) {
    case 'metadata.name':
      return pod.name;
    case 'metadata.namespace':
      return pod.namespace;
    case 'metadata.uid':
      return pod.uid;
    case 'spec.nodeName':
      return pod.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.serviceAccountName ?? '';
    case 'status.hostIP':
      return hostIPs[0] ?? '';
    case 'status.hostIPs':
      return hostIPs.join(',');
    case 'status.podIP':
      return podIPs[0] ?? '';
    case 'status.podIPs':
      return podIPs.join(',');
  }
}

/**
 * The environment the kubelet passes to the runtime for one container
 * (`makeEnvironmentVariables`):
 *
 * 1. `envFrom` sources in order (optional `prefix` prepended); keys failing
 *    {@link isEnvVarName} are skipped with one `InvalidEnvironmentVariableNames`
 *    warning per source; later sources overwrite earlier ones.
 * 2. `env` in order: a non-empty `value` is `$(VAR)`-expanded against
 *    envFrom values and *earlier* env entries, then `serviceEnv`; otherwise
 *    `valueFrom` is resolved (never expanded). Each entry overwrites the
 *    same name and hides the same-name service variable.
 * 3. Service variables not already set.
 *
 * A missing optional ConfigMap/Secret (or key) omits the variable (a
 * same-name service variable then survives). A missing required one throws
 * {@link EnvResolutionError} with kubelet's message, e.g.
 * `couldn't find key K in ConfigMap ns/name` or `configmaps "name" not found`.
 * `resourceFieldRef` throws: container resources and node allocatable are not
 * inputs here.
 *
 * `configMaps` and `secrets` are the pod namespace's objects by name; Secret
 * values must already be decoded from base64.
 *
 * Output order (kubelet's is random): names in the order they were first set
 * (envFrom keys in source order, then new `env` names), followed by the
 * remaining service variables in `serviceEnv` order. Overwriting a name keeps
 * its first position.
 *
 * @example
 * buildContainerEnv({
 *   env: [{ name: 'FOO', value: 'bar' }, { name: 'ZOO', value: '$(FOO)-1' }, { name: 'BLU', value: '$(ZOO)-2' }],
 *   configMaps: {},
 *   secrets: {},
 *   pod: { name: 'p', namespace: 'ns', uid: 'u' },
 *   serviceEnv: {},
 * }).env;
 * // [{ name: 'FOO', value: 'bar' }, { name: 'ZOO', value: 'bar-1' }, { name: 'BLU', value: 'bar-1-2' }]
 */
export function buildContainerEnv(input: {
  env?: EnvVar[];
  envFrom?: EnvFromSource[];
  configMaps: Record<string, Record<string, string>>;
  secrets: Record<string, Record<string, string>>;
  pod: PodEnvFacts;
  serviceEnv: Record<string, string>;
}): { env: ResolvedEnvVar[]; warnings: EnvWarning[] } {
  const ns = input.pod.namespace;
  const warnings: EnvWarning[] = [];
  const declared = new Map<string, string>();
  const serviceEnv = new Map(Object.entries(input.serviceEnv));

  const source = (kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> | undefined => {
    const all = kind === 'ConfigMap' ? input.configMaps : input.secrets;
    return Object.hasOwn(all, name) ? all[name] : undefined;
  };
  const notFound = (kind: 'ConfigMap' | 'Secret', name: string): EnvResolutionError =>
    new EnvResolutionError(`${kind === 'ConfigMap' ? 'configmaps' : 'secrets'} "${name}" not found`);

  for (const from of input.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (ref === undefined) continue;
    const kind = from.configMapRef !== undefined ? 'ConfigMap' : 'Secret';
    const data = source(kind, ref.name);
    if (data === undefined) {
      if (ref.optional) continue;
      throw notFound(kind, ref.name);
    }
    const invalid: string[] = [];
    for (const [key, value] of Object.entries(data)) {
      const name = (from.prefix ?? '') + key;
      if (!isEnvVarName(name)) {
        invalid.push(name);
        continue;
      }
      declared.set(name, value);
    }
    if (invalid.length > 0) {
      invalid.sort();
      warnings.push({
        reason: 'InvalidEnvironmentVariableNames',
        message: `Keys [${invalid.join(', ')}] from the EnvFrom ${kind === 'ConfigMap' ? 'configMap' : 'secret'} ${ns}/${ref.name} were skipped since they are considered invalid environment variable names.`,
      });
    }
  }

  const lookup = (name: string): string | undefined =>
    declared.has(name) ? declared.get(name) : serviceEnv.get(name);

  for (const envVar of input.env ?? []) {
    let value = envVar.value ?? '';
    if (value !== '') {
      value = expandEnvRefs(value, lookup);
    } else if (envVar.valueFrom !== undefined) {
      const from = envVar.valueFrom;
      if (from.fieldRef !== undefined) {
        value = fieldRefValue(envVar.name, from.fieldRef, input.pod);
      } else if (from.resourceFieldRef !== undefined) {
        throw new EnvResolutionError(
          `env ${envVar.name}: resourceFieldRef (${from.resourceFieldRef.resource}) is not supported by pullkeeper-node; set the value explicitly`,
        );
      } else {
        const keyRef = from.configMapKeyRef ?? from.secretKeyRef;
        if (keyRef !== undefined) {
          const kind = from.configMapKeyRef !== undefined ? 'ConfigMap' : 'Secret';
          const data = source(kind, keyRef.name);
          if (data === undefined) {
            if (keyRef.optional) continue;
            throw notFound(kind, keyRef.name);
          }
          const found = ownValue(data, keyRef.key);
          if (found === undefined) {
            if (keyRef.optional) continue;
            throw new EnvResolutionError(`couldn't find key ${keyRef.key} in ${kind} ${ns}/${keyRef.name}`);
          }
          value = found;
        }
      }
    }
    serviceEnv.delete(envVar.name);
    declared.set(envVar.name, value);
  }

  const env: ResolvedEnvVar[] = [];
  for (const [name, value] of declared) env.push({ name, value });
  for (const [name, value] of serviceEnv) {
    if (!declared.has(name)) env.push({ name, value });
  }
  return { env, warnings };
}

/**
 * Expands `$(VAR)` in a container's `command` and `args` against the final
 * env list (kubelet `ExpandContainerCommandAndArgs`; a later duplicate name
 * wins). Empty result arrays mean "not set": use the image's
 * ENTRYPOINT/CMD, as the kubelet does for empty lists.
 *
 * @example
 * expandCommandAndArgs(['sh', '-c'], ['echo $(GREETING) $$(HOME)'], [{ name: 'GREETING', value: 'hi' }]);
 * // { command: ['sh', '-c'], args: ['echo hi $(HOME)'] }
 */
export function expandCommandAndArgs(
  command: string[] | undefined,
  args: string[] | undefined,
  env: ResolvedEnvVar[],
): { command: string[]; args: string[] } {
  const vars = new Map<string, string>();
  for (const e of env) vars.set(e.name, e.value);
  const lookup = (name: string): string | undefined => vars.get(name);
  return {
    command: (command ?? []).map((c) => expandEnvRefs(c, lookup)),
    args: (args ?? []).map((a) => expandEnvRefs(a, lookup)),
  };
}

// ---------------------------------------------------------------------------
// Hostname (§5.1)
// ---------------------------------------------------------------------------

function dnsLabelProblems(value: string): string {
  const problems: string[] = [];
  if (value.length > HOSTNAME_MAX_LENGTH)
    problems.push(`must be no more than ${HOSTNAME_MAX_LENGTH} characters`);
  if (!DNS1123_LABEL.test(value)) {
    problems.push(
      "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')",
    );
  }
  return problems.join('; ');
}

/**
 * The pod's hostname (kubelet `GeneratePodHostNameAndDomain` and
 * `GetNodenameForKernel`).
 *
 * - The short name is `spec.hostname` (must be a DNS-1123 label) or the pod
 *   name; a name longer than 63 characters is cut to 63 and then loses any
 *   trailing `-` and `.`.
 * - With a `subdomain` (a DNS-1123 label), `fqdn` is
 *   `<short>.<subdomain>.<namespace>.svc.<clusterDomain>`.
 * - `hostname` is the kernel hostname for the sandbox (and `HOSTNAME`): the
 *   short name, or `fqdn` when `setHostnameAsFQDN` is true and a subdomain is
 *   set; then an FQDN over 64 characters is an error.
 *
 * Throws {@link PodHostnameError}.
 *
 * @example
 * podHostname({ name: 'web-0', subdomain: 'web', namespace: 'shop' }, 'cluster.local');
 * // { hostname: 'web-0', fqdn: 'web-0.web.shop.svc.cluster.local' }
 * podHostname({ name: 'web-0', subdomain: 'web', namespace: 'shop', setHostnameAsFQDN: true }, 'cluster.local');
 * // { hostname: 'web-0.web.shop.svc.cluster.local', fqdn: 'web-0.web.shop.svc.cluster.local' }
 */
export function podHostname(
  pod: {
    name: string;
    hostname?: string;
    subdomain?: string;
    namespace: string;
    setHostnameAsFQDN?: boolean;
  },
  clusterDomain: string,
): { hostname: string; fqdn?: string } {
  let short = pod.name;
  if (pod.hostname) {
    const problems = dnsLabelProblems(pod.hostname);
    if (problems)
      throw new PodHostnameError(`Pod Hostname "${pod.hostname}" is not a valid DNS label: ${problems}`);
    short = pod.hostname;
  }
  if (short.length > HOSTNAME_MAX_LENGTH) {
    const truncated = short.slice(0, HOSTNAME_MAX_LENGTH).replace(/[-.]+$/, '');
    if (truncated === '')
      throw new PodHostnameError(`hostname for pod "${pod.name}" was invalid: "${short}"`);
    short = truncated;
  }
  if (!pod.subdomain) return { hostname: short };

  const problems = dnsLabelProblems(pod.subdomain);
  if (problems)
    throw new PodHostnameError(`Pod Subdomain "${pod.subdomain}" is not a valid DNS label: ${problems}`);
  const fqdn = `${short}.${pod.subdomain}.${pod.namespace}.svc.${clusterDomain}`;
  if (!pod.setHostnameAsFQDN) return { hostname: short, fqdn };
  if (fqdn.length > FQDN_MAX_LENGTH) {
    throw new PodHostnameError(
      `failed to construct FQDN from pod hostname and cluster domain, FQDN ${fqdn} is too long (${FQDN_MAX_LENGTH} characters is the max, ${fqdn.length} characters requested)`,
    );
  }
  return { hostname: fqdn, fqdn };
}

// ---------------------------------------------------------------------------
// Process environment (containerd)
// ---------------------------------------------------------------------------

/**
 * The container process's final `KEY=VALUE` list, built as containerd does:
 * default `PATH`, then `HOSTNAME=<hostname>`, then the image's `ENV`, then the
 * kubelet's list; a later entry replaces the same key in place, a new key is
 * appended, and an image entry without `=` unsets the key.
 *
 * Net precedence: kubelet env > image ENV > HOSTNAME > default PATH.
 * `hostname` is the sandbox hostname; pass the node's hostname when that is
 * empty (hostNetwork pods), as containerd falls back to `os.Hostname()`.
 *
 * @example
 * containerProcessEnv(['PATH=/app/bin', 'LANG=C.UTF-8'], [{ name: 'LANG', value: 'en_US.UTF-8' }], 'web-0');
 * // ['PATH=/app/bin', 'HOSTNAME=web-0', 'LANG=en_US.UTF-8']
 */
export function containerProcessEnv(
  imageEnv: string[],
  kubeletEnv: ResolvedEnvVar[],
  hostname: string,
): string[] {
  const entries = new Map<string, string>([
    ['PATH', `PATH=${DEFAULT_CONTAINER_PATH}`],
    ['HOSTNAME', `HOSTNAME=${hostname}`],
  ]);
  for (const entry of imageEnv) {
    const eq = entry.indexOf('=');
    if (eq === -1) entries.delete(entry);
    else entries.set(entry.slice(0, eq), entry);
  }
  for (const { name, value } of kubeletEnv) entries.set(name, `${name}=${value}`);
  return [...entries.values()];
}
