/**
 * `pullkeeper rbac`: the RBAC (and the admission policy RBAC cannot express)
 * that one cluster needs for a config, and nothing more. Pure: config in,
 * Kubernetes objects out; the CLI renders them as YAML.
 *
 * What RBAC can narrow (kube-apiserver v1.34, RBAC reference "Referring to
 * resources"): `resourceNames` limits get/patch/update/delete, and list/watch
 * only for requests that carry `fieldSelector=metadata.name=NAME`; `create`
 * cannot be limited by name. So Secrets are read by name only, `create` is
 * granted unrestricted, and a ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1,
 * GA in 1.30) limits what the identity may create or update: type
 * kubernetes.io/dockerconfigjson, our managed-by label, one of the tenants'
 * Secret names. Without it, `create` + `get` by name would let the identity mint
 * itself a ServiceAccount token (a `kubernetes.io/service-account-token` Secret
 * under a name it may read).
 */

import { Document, isScalar, isSeq, visit } from 'yaml';
import type { PullkeeperConfig, TenantConfig } from '../config/schema.js';
import { PullkeeperError } from '../core/errors.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../core/rotation-plan.js';
import { defaultSecretName } from './refresh.js';
import { statusStoreOf } from './status-store.js';

export class RbacError extends PullkeeperError {}

export type RbacSubject =
  | { kind: 'ServiceAccount'; namespace: string; name: string }
  | { kind: 'User'; name: string };

export interface RbacOptions {
  /** The cluster to generate for (default: the first in the config). */
  cluster?: string;
  /** Who pullkeeper runs as there (default the ServiceAccount pullkeeper-system/pullkeeper). */
  subject?: RbacSubject;
  /** RoleBindings in each tenant namespace instead of cluster-wide bindings for the namespaced rules. */
  perNamespace?: boolean;
  /** Also a policy that lets only tenant admins set or change the labels tenants select namespaces by. */
  guardTenantLabels?: boolean;
}

/** One Kubernetes object, with the comment printed above it. */
export interface RbacObject {
  comment?: string;
  object: Record<string, unknown> & {
    kind: string;
    metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  };
}

export interface RbacOutput {
  cluster: string;
  username: string;
  objects: RbacObject[];
  /** What the objects cannot do by themselves (label-selected tenants with --per-namespace...). */
  notes: string[];
}

export const DEFAULT_SUBJECT: RbacSubject = {
  kind: 'ServiceAccount',
  namespace: 'pullkeeper-system',
  name: 'pullkeeper',
};
/** The group whose members may set or change tenant labels under --guard-tenant-labels. */
export const TENANT_ADMINS_GROUP = 'pullkeeper:tenant-admins';

const RBAC = 'rbac.authorization.k8s.io/v1';
const ADMISSION = 'admissionregistration.k8s.io/v1';
const labels = { 'app.kubernetes.io/name': 'pullkeeper' };

/** `system:serviceaccount:ns:name` or the user name: what admission sees in request.userInfo.username. */
export function usernameOf(s: RbacSubject): string {
  return s.kind === 'User' ? s.name : `system:serviceaccount:${s.namespace}:${s.name}`;
}

/** Parses `--service-account NAMESPACE/NAME`. */
export function parseServiceAccount(text: string): RbacSubject {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(text);
  if (!m)
    throw new RbacError(
      `--service-account ${JSON.stringify(text)}: expected NAMESPACE/NAME, e.g. pullkeeper-system/pullkeeper`,
    );
  return { kind: 'ServiceAccount', namespace: m[1]!, name: m[3]! };
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();
const celList = (xs: string[]) =>
  `[${xs.map((x) => `'${x.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(', ')}]`;

function subjectEntry(s: RbacSubject) {
  return s.kind === 'User'
    ? { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: s.name }
    : { kind: 'ServiceAccount', name: s.name, namespace: s.namespace };
}

function clusterRole(name: string, rules: unknown[]): RbacObject['object'] {
  return { apiVersion: RBAC, kind: 'ClusterRole', metadata: { name, labels }, rules };
}

function binding(role: string, subject: RbacSubject, namespace?: string, name = role): RbacObject['object'] {
  return {
    apiVersion: RBAC,
    kind: namespace ? 'RoleBinding' : 'ClusterRoleBinding',
    metadata: { name, ...(namespace ? { namespace } : {}), labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [subjectEntry(subject)],
  };
}

/** Keys and values tenants select namespaces by (matchLabels). */
function tenantLabelKeys(tenants: TenantConfig[]): string[] {
  return sorted(
    tenants.flatMap((t) => ('matchLabels' in t.namespaces ? Object.keys(t.namespaces.matchLabels) : [])),
  );
}

/** A ValidatingAdmissionPolicy that denies CREATE/UPDATE of `resource` matching `match` unless every validation holds, and its Deny binding. */
function denyPolicy(
  name: string,
  resource: string,
  match: { name: string; expression: string },
  validations: Array<{ expression: string; message: string }>,
  comment: string,
): RbacObject[] {
  return [
    {
      comment,
      object: {
        apiVersion: ADMISSION,
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name, labels },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: [resource],
              },
            ],
          },
          matchConditions: [match],
          validations,
        },
      },
    },
    {
      object: {
        apiVersion: ADMISSION,
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name, labels },
        spec: { policyName: name, validationActions: ['Deny'] },
      },
    },
  ];
}

/** Everything one cluster needs for `config`, as objects in apply order. */
export function generateRbac(config: PullkeeperConfig, o: RbacOptions = {}): RbacOutput {
  const cluster = o.cluster ?? config.clusters[0]?.name;
  if (!cluster) throw new RbacError('the config has no clusters: add one under "clusters" first');
  if (!config.clusters.some((c) => c.name === cluster))
    throw new RbacError(
      `unknown cluster ${cluster}; the config defines ${config.clusters.map((c) => c.name).join(', ')}: pass one of those to --cluster`,
    );
  const subject = o.subject ?? DEFAULT_SUBJECT;
  const username = usernameOf(subject);
  const tenants = config.tenants.filter((t) => (t.cluster ?? config.clusters[0]?.name) === cluster);
  const secretNames = sorted(tenants.map(defaultSecretName));
  const pruneNames = sorted(tenants.filter((t) => t.prune).map(defaultSecretName));
  const namedSAs = sorted(tenants.flatMap((t) => (t.serviceAccounts === '*' ? [] : t.serviceAccounts)));
  const anySA = tenants.filter((t) => t.serviceAccounts === '*');
  const staticNs = (ts: TenantConfig[]) =>
    sorted(ts.flatMap((t) => ('names' in t.namespaces ? t.namespaces.names : [])));
  const labelled = (ts: TenantConfig[]) => ts.filter((t) => 'matchLabels' in t.namespaces);
  const nodesHere =
    config.nodes?.inventory === 'kubernetes' &&
    (config.nodes.cluster ?? config.clusters[0]?.name) === cluster;
  const store = statusStoreOf(config);
  const storeHere = store && store.cluster === cluster ? store : undefined;
  const objects: RbacObject[] = [];
  const notes: string[] = [];
  const push = (object: RbacObject['object'], comment?: string) =>
    objects.push(comment ? { comment, object } : { object });

  if (subject.kind === 'ServiceAccount') {
    push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: subject.namespace, labels } });
    push(
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: subject.name, namespace: subject.namespace, labels },
      },
      'The identity pullkeeper runs as in this cluster.',
    );
  }

  // Cluster-scoped reads: always a ClusterRoleBinding.
  const inventory: unknown[] = [];
  if (tenants.length) inventory.push({ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list'] });
  if (nodesHere) inventory.push({ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list'] });
  if (inventory.length) {
    push(
      clusterRole('pullkeeper-inventory', inventory),
      [
        'Cluster-scoped reads: namespaces (which ones belong to a tenant: names and labels, no content)',
        ...(nodesHere ? ['and nodes (nodes.inventory: kubernetes, the addresses for the SSH push).'] : []),
      ].join('\n'),
    );
    push(binding('pullkeeper-inventory', subject));
  }

  // Namespaced rules: Secrets by name, create (guarded by the policy below), ServiceAccounts, Events.
  if (tenants.length) {
    const writer: unknown[] = [
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: secretNames,
        verbs: ['get', 'list', 'watch', 'patch'],
      },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ];
    if (pruneNames.length)
      writer.push({ apiGroups: [''], resources: ['secrets'], resourceNames: pruneNames, verbs: ['delete'] });
    if (namedSAs.length)
      writer.push({
        apiGroups: [''],
        resources: ['serviceaccounts'],
        resourceNames: namedSAs,
        verbs: ['get', 'list', 'patch'],
      });
    if (config.events !== 'none') writer.push({ apiGroups: [''], resources: ['events'], verbs: ['create'] });
    push(
      clusterRole('pullkeeper-tenant-writer', writer),
      [
        "The tenants' pull Secrets, by name only: list/watch work only with",
        'fieldSelector=metadata.name=NAME (pullkeeper reads no other way), so no other',
        'Secret can be read. `create` cannot be limited by name: the admission policy',
        'below limits it.',
        ...(pruneNames.length
          ? [`delete: only for tenants with prune: true (${pruneNames.join(', ')}).`]
          : []),
        ...(namedSAs.length ? ['ServiceAccounts: the ones the tenants list, by name.'] : []),
        ...(config.events !== 'none' ? ['Events: create only (none with `events: none`).'] : []),
      ].join('\n'),
    );
    if (!o.perNamespace) push(binding('pullkeeper-tenant-writer', subject));
    else {
      for (const ns of staticNs(tenants))
        push(binding('pullkeeper-tenant-writer', subject, ns), `Tenant namespace ${ns}.`);
      for (const t of labelled(tenants))
        notes.push(
          `tenant ${t.name} selects namespaces by label (${Object.entries(
            'matchLabels' in t.namespaces ? t.namespaces.matchLabels : {},
          )
            .map(([k, v]) => `${k}=${v}`)
            .join(
              ',',
            )}): create a RoleBinding to ClusterRole pullkeeper-tenant-writer in each such namespace (e.g. in your namespace template); a namespace without one is reported as failed (403)`,
        );
    }
  }

  if (anySA.length) {
    push(
      clusterRole('pullkeeper-serviceaccounts-any', [
        { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'patch'] },
      ]),
      `serviceAccounts: '*' (tenants ${anySA.map((t) => t.name).join(', ')}): every ServiceAccount of the\ntenant's namespaces gets the pull Secret, so patch cannot be limited by name.\nBound only in those namespaces.`,
    );
    for (const ns of staticNs(anySA))
      push(binding('pullkeeper-serviceaccounts-any', subject, ns, 'pullkeeper-serviceaccounts-any'));
    const byLabel = labelled(anySA);
    if (byLabel.length) {
      if (o.perNamespace)
        notes.push(
          `tenants ${byLabel.map((t) => t.name).join(', ')} use serviceAccounts: '*' with a label selector: also bind ClusterRole pullkeeper-serviceaccounts-any with a RoleBinding in each of their namespaces`,
        );
      else
        push(
          binding('pullkeeper-serviceaccounts-any', subject),
          `Tenants ${byLabel.map((t) => t.name).join(', ')} select namespaces by label, so the namespaces are not\nknown here: bound cluster-wide (ServiceAccounts hold no credentials; only\nimagePullSecrets is ever patched). Use --per-namespace to bind per namespace.`,
        );
    }
  }

  const sat = config.api?.serviceAccountTokens;
  if (sat && tenants.length && (!sat.clusters || sat.clusters.includes(cluster))) {
    // The pod credential broker (docs/pod-credentials.md): a pod's token is checked with a
    // TokenReview (unless verified offline against this cluster's issuer), and the ServiceAccount
    // it runs as is read for its registries annotation.
    const offline = sat.issuers.some((i) => i.cluster === cluster);
    const podSAs = tenants.map((t) => t.podCredentials?.serviceAccounts ?? '*');
    const names = sorted(podSAs.flatMap((x) => (x === '*' ? [] : x)));
    push(
      clusterRole('pullkeeper-broker', [
        ...(offline
          ? []
          : [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]),
        {
          apiGroups: [''],
          resources: ['serviceaccounts'],
          ...(podSAs.includes('*') ? {} : { resourceNames: names }),
          verbs: ['get'],
        },
      ]),
      [
        'The pod credential broker (api.serviceAccountTokens):',
        ...(offline ? [] : ["TokenReview of the pods' tokens;"]),
        'get on the ServiceAccount a pod runs as (its registries annotation; ServiceAccounts hold',
        'no credentials), by name where every tenant lists podCredentials.serviceAccounts.',
      ].join('\n'),
    );
    push(binding('pullkeeper-broker', subject));
  }

  if (storeHere) {
    push(
      clusterRole('pullkeeper-status', [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
        {
          apiGroups: [''],
          resources: ['configmaps'],
          resourceNames: [storeHere.name],
          verbs: ['get', 'update'],
        },
      ]),
      `The status record (statusStore): one ConfigMap, ${storeHere.namespace}/${storeHere.name}.`,
    );
    push(binding('pullkeeper-status', subject, storeHere.namespace));
  }

  if (tenants.length)
    objects.push(
      ...denyPolicy(
        'pullkeeper-secret-writes',
        'secrets',
        { name: 'pullkeeper-identity', expression: `request.userInfo.username == '${username}'` },
        [
          {
            expression: "object.type == 'kubernetes.io/dockerconfigjson'",
            message: 'pullkeeper may only write Secrets of type kubernetes.io/dockerconfigjson',
          },
          {
            expression: `has(object.metadata.labels) && '${MANAGED_BY_LABEL}' in object.metadata.labels && object.metadata.labels['${MANAGED_BY_LABEL}'] == '${MANAGED_BY_VALUE}'`,
            message: `pullkeeper may only write Secrets labelled ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
          },
          {
            expression: `object.metadata.name in ${celList(secretNames)}`,
            message: `pullkeeper may only write the tenants' Secret names (${secretNames.join(', ')})`,
          },
        ],
        [
          'RBAC cannot limit `create`: without this policy the identity could create a',
          'kubernetes.io/service-account-token Secret under a name it may read and get a',
          'token for any ServiceAccount. Denies its Secret writes that are not',
          'kubernetes.io/dockerconfigjson, lack the managed-by label, or use another name.',
        ].join('\n'),
      ),
    );

  if (o.guardTenantLabels) {
    const keys = tenantLabelKeys(tenants);
    if (!keys.length)
      notes.push('--guard-tenant-labels: no tenant selects namespaces by label; no policy needed');
    else {
      const value = (obj: string) =>
        `(${obj} != null && has(${obj}.metadata.labels) && k in ${obj}.metadata.labels ? ${obj}.metadata.labels[k] : '')`;
      objects.push(
        ...denyPolicy(
          'pullkeeper-tenant-labels',
          'namespaces',
          {
            name: 'not-a-tenant-admin',
            expression: `!request.userInfo.groups.exists(g, g in ['system:masters', '${TENANT_ADMINS_GROUP}'])`,
          },
          [
            {
              expression: `${celList(keys)}.all(k, ${value('object')} == ${value('oldObject')})`,
              message: `only members of ${TENANT_ADMINS_GROUP} may set or change the labels pullkeeper tenants select namespaces by (${keys.join(', ')})`,
            },
          ],
          [
            'Optional (--guard-tenant-labels): a namespace joins a tenant by label, and the',
            "tenant's pull Secret follows on the next refresh. Only system:masters and the",
            `group ${TENANT_ADMINS_GROUP} may set or change ${keys.join(', ')} on namespaces.`,
          ].join('\n'),
        ),
      );
    }
  }
  return { cluster, username, objects, notes };
}

/** One object as YAML; lists of plain values on one line (`verbs: [get, list]`). */
function toYaml(o: unknown): string {
  const doc = new Document(o);
  visit(doc, {
    Seq(_, node) {
      if (isSeq(node) && node.items.every((i) => isScalar(i))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false }).trimEnd();
}

/** The objects as YAML documents (`---` separated), each under its comment; notes at the end as comments. */
export function renderRbacYaml(out: RbacOutput, header: string[] = []): string {
  const comment = (text: string) =>
    text
      .split('\n')
      .map((l) => (l ? `# ${l}` : '#'))
      .join('\n');
  const head = [
    ...header,
    `Generated by \`pullkeeper rbac\` for cluster ${out.cluster}, identity ${out.username}.`,
    'Apply with kubectl apply -f; regenerate when tenants, Secret names or ServiceAccounts change.',
  ];
  const docs = out.objects.map((o) => `${o.comment ? `${comment(o.comment)}\n` : ''}${toYaml(o.object)}`);
  const tail = out.notes.length
    ? `\n${comment(['Still to do by hand:', ...out.notes.map((n) => `- ${n}`)].join('\n'))}`
    : '';
  return `${comment(head.join('\n'))}\n---\n${docs.join('\n---\n')}\n${tail ? `${tail.slice(1)}\n` : ''}`;
}
