/**
 * The zod schema of pullkeeper.yaml (docs/providers.md, docs/rotation.md). Every object is
 * strict: an unknown key is an error that names its path. Secret values are
 * references (see secret-ref.ts), never literal fields.
 */
import * as z from 'zod';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const name = z
  .string()
  .min(1)
  .max(63)
  .regex(
    DNS_LABEL,
    'must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );

// ---------------------------------------------------------------------------
// secret references

export const SecretRefSchema = z.union(
  [
    z.strictObject({ value: z.string() }),
    z.strictObject({ fromEnv: z.string().min(1) }),
    z.strictObject({ fromFile: z.string().min(1) }),
    z.strictObject({ fromSsm: z.string().min(1), region: z.string().optional() }),
    z.strictObject({
      fromSecretsManager: z.string().min(1),
      region: z.string().optional(),
      /** Read one key of a JSON secret string. */
      key: z.string().optional(),
    }),
  ],
  {
    error:
      'expected a secret reference: one of { value }, { fromEnv: NAME }, { fromFile: PATH }, { fromSsm: PARAMETER }, { fromSecretsManager: SECRET_ID }',
  },
);
export type SecretRef = z.infer<typeof SecretRefSchema>;

// ---------------------------------------------------------------------------
// registries

const registryCommon = {
  name,
  /** Log in with the new credential (GET /v2/) before publishing it. Default true. */
  verify: z.boolean().default(true),
  /** Allow plain HTTP for verification on a non-loopback registry. Default false. */
  insecure: z.boolean().default(false),
  /** Per-call timeout for this registry's remote calls, ms. */
  timeoutMs: z.number().int().positive().max(300_000).default(15_000),
  /**
   * Where to log in for verification instead of https://<first host> (a private
   * endpoint or proxy in front of the registry; the test harness's registry).
   */
  verifyEndpoint: z.url().optional(),
};

const awsAccessKey = z.strictObject({
  accessKeyId: SecretRefSchema,
  secretAccessKey: SecretRefSchema,
  sessionToken: SecretRefSchema.optional(),
});

export const EcrRegistrySchema = z.strictObject({
  ...registryCommon,
  kind: z.literal('ecr'),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as us-west-2'),
  /** Accounts whose registries this credential is written for (the token works for all of them). */
  registryIds: z
    .array(z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id'))
    .min(1)
    .optional(),
  /** ECR Public (public.ecr.aws): minted in us-east-1 with ecr-public:GetAuthorizationToken. */
  public: z.boolean().default(false),
  roleArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN')
    .optional(),
  externalId: z.string().optional(),
  /** VPC endpoint, FIPS endpoint, or a test endpoint. */
  endpoint: z.url().optional(),
  stsEndpoint: z.url().optional(),
  /** Static AWS keys; default: the function's own role (environment, IRSA, instance profile). */
  credentials: awsAccessKey.optional(),
});

const azureCredential = z.union([
  z.strictObject({ clientId: z.string().min(1), clientSecret: SecretRefSchema }),
  z.strictObject({
    clientId: z.string().min(1),
    /** A federated token (workload identity): AZURE_FEDERATED_TOKEN_FILE or any reference. */
    federatedToken: SecretRefSchema,
  }),
  z.strictObject({ managedIdentity: z.union([z.literal(true), z.strictObject({ clientId: z.string() })]) }),
]);

export const AcrRegistrySchema = z.strictObject({
  ...registryCommon,
  kind: z.literal('acr'),
  loginServer: z.string().min(1),
  tenantId: z.string().min(1),
  credential: azureCredential.optional(),
  /** Entra ID authority (sovereign clouds, tests). Default https://login.microsoftonline.com */
  authorityHost: z.url().optional(),
  /** Where /oauth2/exchange is served; default https://<loginServer>/oauth2/exchange (private endpoints, tests). */
  exchangeEndpoint: z.url().optional(),
  /** Audience of the Entra token presented at /oauth2/exchange. */
  audience: z.enum(['acr', 'arm']).default('acr'),
  /** Check with @azure/container-registry that the identity can see these repositories (catalog). */
  checkRepositories: z.array(z.string().min(1)).optional(),
  /** Repository-scoped token (scope map) instead of the Entra exchange. */
  repositoryToken: z
    .strictObject({
      username: z.string().min(1),
      password: SecretRefSchema,
      expiresAt: z.iso.datetime().optional(),
    })
    .optional(),
});

export const GarRegistrySchema = z.strictObject({
  ...registryCommon,
  kind: z.literal('gar'),
  hosts: z.array(z.string().min(1)).min(1),
  /** A service-account key JSON, or an external_account (workload identity federation) config JSON. */
  serviceAccountKey: SecretRefSchema.optional(),
  credentialConfig: SecretRefSchema.optional(),
  /** projects/P/locations/L/repositories/R: check it exists with @google-cloud/artifact-registry. */
  checkRepositories: z
    .array(
      z
        .string()
        .regex(
          /^projects\/[^/]+\/locations\/[^/]+\/repositories\/[^/]+$/,
          'must be projects/P/locations/L/repositories/R',
        ),
    )
    .optional(),
  /** Artifact Registry API endpoint for checkRepositories (Private Service Connect, tests). */
  apiEndpoint: z.url().optional(),
});

export const StaticRegistrySchema = z.strictObject({
  ...registryCommon,
  kind: z.literal('static'),
  server: z.string().min(1),
  /** More keys to write the same credential under. */
  aliases: z.array(z.string().min(1)).optional(),
  username: SecretRefSchema,
  password: SecretRefSchema,
  /** For credentials that do expire (IBM iambearer tokens, scoped tokens). */
  expiresAt: z.iso.datetime().optional(),
});

export const DockerConfigRegistrySchema = z.strictObject({
  ...registryCommon,
  kind: z.literal('dockerconfig'),
  source: SecretRefSchema,
  format: z.enum(['config.json', 'dockercfg']).default('config.json'),
  verify: z.boolean().default(false),
});

export const RegistrySchema = z.discriminatedUnion('kind', [
  EcrRegistrySchema,
  AcrRegistrySchema,
  GarRegistrySchema,
  StaticRegistrySchema,
  DockerConfigRegistrySchema,
]);
export type RegistryConfig = z.infer<typeof RegistrySchema>;
export type RegistryKind = RegistryConfig['kind'];
export type RegistryConfigOf<K extends RegistryKind> = Extract<RegistryConfig, { kind: K }>;

// ---------------------------------------------------------------------------
// clusters

export const ClusterSchema = z.union([
  z.strictObject({ name, kubeconfig: z.string().min(1), context: z.string().optional() }),
  z.strictObject({ name, inCluster: z.literal(true) }),
  z.strictObject({
    name,
    eks: z.strictObject({
      cluster: z.string().min(1),
      region: z.string().min(1),
      /** Endpoint and CA; when absent they come from eks:DescribeCluster. */
      server: z.url().optional(),
      caData: z.string().optional(),
      roleArn: z.string().optional(),
      stsEndpoint: z.url().optional(),
      credentials: awsAccessKey.optional(),
    }),
  }),
  z.strictObject({
    name,
    aks: z.strictObject({
      server: z.url(),
      caData: z.string().optional(),
      tenantId: z.string().min(1),
      credential: azureCredential.optional(),
      authorityHost: z.url().optional(),
    }),
  }),
  z.strictObject({
    name,
    gke: z.strictObject({
      server: z.url(),
      caData: z.string().optional(),
      serviceAccountKey: SecretRefSchema.optional(),
      credentialConfig: SecretRefSchema.optional(),
    }),
  }),
]);
export type ClusterConfig = z.infer<typeof ClusterSchema>;

// ---------------------------------------------------------------------------
// tenants

const labelMap = z.record(z.string(), z.string());
export const TenantSchema = z.strictObject({
  name,
  cluster: z.string().optional(),
  namespaces: z.union([
    z.strictObject({ names: z.array(name).min(1) }),
    z.strictObject({ matchLabels: labelMap }),
  ]),
  registries: z.array(z.string().min(1)).min(1),
  serviceAccounts: z.union([z.literal('*'), z.array(z.string().min(1))]).default(['default']),
  secretName: name.optional(),
  /** Take over a same-named Secret that pullkeeper did not create. */
  adopt: z.boolean().default(false),
  /** Delete our Secrets in namespaces that no longer belong to the tenant. */
  prune: z.boolean().default(false),
  /**
   * Pod credentials through the broker (POST /v1/credentials, docs/pod-credentials.md): only
   * these ServiceAccounts (names, `*` for any) of the tenant's namespaces get a credential.
   * Default: any ServiceAccount of its namespaces.
   */
  podCredentials: z
    .strictObject({
      serviceAccounts: z.union([z.literal('*'), z.array(z.string().min(1)).min(1)]).default('*'),
    })
    .optional(),
});
export type TenantConfig = z.infer<typeof TenantSchema>;

// ---------------------------------------------------------------------------
// nodes

export const StaticNodeSchema = z.strictObject({
  name: z.string().min(1),
  address: z.string().min(1),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().optional(),
  path: z.string().startsWith('/').optional(),
});

export const NodesSchema = z.strictObject({
  inventory: z.union([z.literal('kubernetes'), z.array(StaticNodeSchema).min(1)]),
  /** With inventory: kubernetes. */
  cluster: z.string().optional(),
  selector: labelMap.optional(),
  addressType: z.enum(['InternalIP', 'ExternalIP']).default('InternalIP'),
  path: z.string().startsWith('/').default('/var/lib/kubelet/config.json'),
  registries: z.array(z.string().min(1)).min(1),
  ssh: z.strictObject({
    user: z.string().default('root'),
    port: z.number().int().min(1).max(65535).default(22),
    privateKey: SecretRefSchema,
    knownHosts: SecretRefSchema.optional(),
    /**
     * Trust on first use, only for a host without a knownHosts pin: the key it
     * presents first is recorded (beside the status, in the statusStore ConfigMap)
     * and enforced from then on. `true`, or an object to say more; with
     * `inventory: kubernetes` it is refused unless `allowWithKubernetesInventory: true`
     * (Node objects are self-reported by kubelets). docs/nodes.md.
     */
    trustOnFirstUse: z
      .union([
        z.boolean(),
        z.strictObject({
          /** Accept the risk that a registered impostor Node is trusted on its first use. */
          allowWithKubernetesInventory: z.boolean().default(false),
        }),
      ])
      .default(false),
    concurrency: z.number().int().min(1).max(200).default(20),
    timeoutMs: z.number().int().positive().default(10_000),
  }),
  canary: z
    .strictObject({
      count: z.number().int().min(0).default(1),
      maxFailureFraction: z.number().min(0).max(1).default(0.5),
    })
    .optional(),
  /** Back up and replace a malformed existing file instead of reporting it. */
  replaceMalformed: z.boolean().default(false),
  /** Command run after a write (e.g. a runtime reload); off by default. */
  afterWrite: z.string().optional(),
  /** Per-node settings by node name (both inventories). */
  overrides: z
    .record(
      z.string(),
      z.strictObject({
        address: z.string().min(1).optional(),
        port: z.number().int().min(1).max(65535).optional(),
        user: z.string().optional(),
        path: z.string().startsWith('/').optional(),
      }),
    )
    .optional(),
  /** `pullkeeper push --pre-pull`: the node-side command and how long one pull may take. */
  prePull: z
    .strictObject({
      command: z.string().min(1).default('pullkeeper-node'),
      timeoutMs: z.number().int().positive().default(300_000),
    })
    .prefault({}),
});
export type NodesConfig = z.infer<typeof NodesSchema>;

/** `nodes.ssh.trustOnFirstUse` in one shape: whether it is on, and whether the config allows it with `inventory: kubernetes`. */
export function trustOnFirstUseOf(nodes: NodesConfig): {
  enabled: boolean;
  allowWithKubernetesInventory: boolean;
} {
  const t = nodes.ssh.trustOnFirstUse;
  if (typeof t === 'boolean') return { enabled: t, allowWithKubernetesInventory: false };
  return { enabled: true, allowWithKubernetesInventory: t.allowWithKubernetesInventory };
}

/** Why trust on first use cannot be used with this config (undefined: it can, or it is off). */
export function firstUseRefusal(nodes: NodesConfig): string | undefined {
  const t = trustOnFirstUseOf(nodes);
  if (!t.enabled) return undefined;
  if (nodes.inventory === 'kubernetes' && !t.allowWithKubernetesInventory)
    return (
      'trust on first use is refused with nodes.inventory: kubernetes: Node objects (names, addresses) are reported by the kubelets ' +
      "themselves, so an impostor node that registers would be trusted and receive the node credentials. Pin the nodes' keys in " +
      'nodes.ssh.knownHosts, or accept that risk with nodes.ssh.trustOnFirstUse: { allowWithKubernetesInventory: true }'
    );
  return undefined;
}

// ---------------------------------------------------------------------------
// the HTTP API (who may call it)

const claimValue = z.union([z.string(), z.number().transform(String), z.boolean().transform(String)]);
export const OidcIssuerSchema = z.strictObject({
  /** Exact `iss`, no trailing slash: https://token.actions.githubusercontent.com, https://gitlab.com */
  issuer: z.url(),
  /** Our own audience; a CI job must request a token for it. Never the issuer's default. */
  audience: z.string().min(1),
  /** Default: from the issuer's /.well-known/openid-configuration. */
  jwksUri: z.url().optional(),
  /** Allowed clock skew, seconds. */
  clockToleranceSec: z.number().int().min(0).max(300).default(60),
  /**
   * Rules; the first whose claims all match grants its tenants. Match on immutable ids
   * (GitHub `repository_id`, `repository_owner_id`; GitLab `project_id`), plus `ref` etc.
   */
  allow: z
    .array(
      z.strictObject({
        claims: z
          .record(z.string(), claimValue)
          .refine((c) => Object.keys(c).length > 0, 'name at least one claim'),
        tenants: z.union([z.literal('*'), z.array(z.string().min(1)).min(1)]),
      }),
    )
    .min(1),
});

/**
 * The credential broker (POST /v1/credentials, docs/pod-credentials.md): which service account
 * tokens it accepts. A token is verified by the cluster it comes from: a TokenReview with
 * `audience` against each of `clusters` (default every configured cluster), or offline with the
 * cluster's issuer keys (OIDC discovery + JWKS) when `issuers` names that cluster.
 */
export const ServiceAccountTokensSchema = z.strictObject({
  /** The audience kubelet requests (tokenAttributes.serviceAccountTokenAudience); never the apiserver's own. */
  audience: z.string().min(1).max(253),
  /** The clusters whose tokens are accepted (default all). */
  clusters: z.array(z.string().min(1)).min(1).optional(),
  /** Offline verification per cluster: the cluster's service-account issuer (`iss`). */
  issuers: z
    .array(
      z.strictObject({
        cluster: z.string().min(1),
        issuer: z.url(),
        /** Default: from the issuer's /.well-known/openid-configuration. */
        jwksUri: z.url().optional(),
        clockToleranceSec: z.number().int().min(0).max(300).default(60),
      }),
    )
    .default([]),
  /** A verified token is reused until this many seconds before it expires, at most `cacheSeconds`. */
  cacheSeconds: z.number().int().min(0).max(3600).default(300),
  /** The ServiceAccount annotation that narrows a pod's registries (comma-separated registry names). */
  registriesAnnotation: z.string().min(1).default('pullkeeper.dev/registries'),
});
export type ServiceAccountTokensConfig = z.infer<typeof ServiceAccountTokensSchema>;

export const ApiSchema = z.strictObject({
  /** The pod credential broker (POST /v1/credentials); off when absent. */
  serviceAccountTokens: ServiceAccountTokensSchema.optional(),
  auth: z
    .strictObject({
      oidc: z.array(OidcIssuerSchema).default([]),
      /** Static bearer tokens, stored as the hex sha256 of the token (`printf %s TOKEN | sha256sum`). */
      tokens: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            sha256: z.string().regex(/^[a-f0-9]{64}$/, 'must be the hex sha256 of the token'),
            tenants: z.union([z.literal('*'), z.array(z.string().min(1)).min(1)]),
          }),
        )
        .default([]),
    })
    .default({ oidc: [], tokens: [] }),
  maxBodyBytes: z
    .number()
    .int()
    .min(256)
    .max(1024 * 1024)
    .default(16 * 1024),
  /** The HTML status page at `/` (docs/status-page.md). */
  statusPage: z
    .strictObject({
      /**
       * Serve the page without sign-in, every tenant shown. For a local demo on a
       * loopback address only: never on an endpoint others can reach (a deployed
       * Lambda ignores it).
       */
      public: z.boolean().default(false),
    })
    .default({ public: false }),
  /** GET /metrics of `pullkeeper serve` (docs/deploy.md). */
  metrics: z
    .strictObject({
      /**
       * Serve /metrics without auth (a Prometheus on the same machine). Honoured only when
       * `pullkeeper serve` listens on a loopback address; it refuses to start otherwise.
       * Default: the API's bearer auth, by a caller granted every tenant.
       */
      public: z.boolean().default(false),
    })
    .default({ public: false }),
});
export type ApiConfig = z.infer<typeof ApiSchema>;

// ---------------------------------------------------------------------------
// the whole file

export const PullkeeperConfigSchema = z
  .strictObject({
    clusters: z.array(ClusterSchema).default([]),
    registries: z.array(RegistrySchema).min(1),
    tenants: z.array(TenantSchema).default([]),
    nodes: NodesSchema.optional(),
    api: ApiSchema.optional(),
    /** Kubernetes client limits (docs/rotation.md explains the defaults). */
    kubeClient: z
      .strictObject({
        qps: z.number().positive().max(10_000).default(1000),
        burst: z.number().int().positive().max(20_000).default(2000),
        concurrency: z.number().int().min(1).max(256).default(32),
        /**
         * http1: a keep-alive pool of HTTP/1.1 connections (the default); http2: one HTTP/2
         * connection per API server, each request a stream (less CPU for pullkeeper, more for
         * kube-apiserver: docs/scale.md). Unset: PULLKEEPER_KUBE_TRANSPORT, else http1.
         */
        transport: z.enum(['http1', 'http2']).optional(),
      })
      .default({ qps: 1000, burst: 2000, concurrency: 32 }),
    /**
     * Which Kubernetes Events a refresh posts on the tenants' Secrets (docs/rotation.md):
     * warnings (default): a Warning in each namespace where a write failed or met a conflict;
     * all: also a Normal PullSecretCreated / PullSecretRotated in every namespace written;
     * none: no Events (and `pullkeeper rbac` grants no `events: create`).
     */
    events: z.enum(['all', 'warnings', 'none']).default('warnings'),
    /**
     * Where the last mint and push results are kept for the status page and GET /v1/status:
     * a ConfigMap (default pullkeeper-system/pullkeeper-status in the first cluster), or
     * false to keep them only in the memory of each process (docs/status-page.md).
     */
    statusStore: z
      .union([
        z.literal(false),
        z.strictObject({
          cluster: z.string().min(1).optional(),
          namespace: name.default('pullkeeper-system'),
          name: name.default('pullkeeper-status'),
        }),
      ])
      .optional(),
    /** Refresh a credential once this fraction of its lifetime has passed (default 0.5, see docs/providers.md). */
    refreshAtFraction: z.number().gt(0).lt(1).default(0.5),
  })
  .superRefine((cfg, ctx) => {
    const unique = (items: Array<{ name: string }>, where: string) => {
      const seen = new Set<string>();
      items.forEach((it, i) => {
        if (seen.has(it.name))
          ctx.addIssue({ code: 'custom', path: [where, i, 'name'], message: `duplicate name "${it.name}"` });
        seen.add(it.name);
      });
    };
    unique(cfg.registries, 'registries');
    unique(cfg.tenants, 'tenants');
    unique(cfg.clusters, 'clusters');
    const registryNames = new Set(cfg.registries.map((r) => r.name));
    const clusterNames = new Set(cfg.clusters.map((c) => c.name));
    const checkRegistries = (list: string[], path: (string | number)[]) =>
      list.forEach((r, i) => {
        if (!registryNames.has(r))
          ctx.addIssue({
            code: 'custom',
            path: [...path, i],
            message: `unknown registry "${r}"; defined: ${[...registryNames].join(', ')}`,
          });
      });
    cfg.tenants.forEach((t, i) => {
      checkRegistries(t.registries, ['tenants', i, 'registries']);
      if (t.cluster !== undefined && !clusterNames.has(t.cluster))
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', i, 'cluster'],
          message: `unknown cluster "${t.cluster}"`,
        });
      if (t.cluster === undefined && cfg.clusters.length > 1)
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', i, 'cluster'],
          message: 'required when more than one cluster is configured',
        });
    });
    if (
      cfg.statusStore &&
      cfg.statusStore.cluster !== undefined &&
      !clusterNames.has(cfg.statusStore.cluster)
    )
      ctx.addIssue({
        code: 'custom',
        path: ['statusStore', 'cluster'],
        message: `unknown cluster "${cfg.statusStore.cluster}"`,
      });
    if (cfg.tenants.length && cfg.clusters.length === 0)
      ctx.addIssue({ code: 'custom', path: ['clusters'], message: 'tenants need at least one cluster' });
    const sat = cfg.api?.serviceAccountTokens;
    if (sat) {
      sat.clusters?.forEach((c, i) => {
        if (!clusterNames.has(c))
          ctx.addIssue({
            code: 'custom',
            path: ['api', 'serviceAccountTokens', 'clusters', i],
            message: `unknown cluster "${c}"`,
          });
      });
      sat.issuers.forEach((x, i) => {
        if (!clusterNames.has(x.cluster))
          ctx.addIssue({
            code: 'custom',
            path: ['api', 'serviceAccountTokens', 'issuers', i, 'cluster'],
            message: `unknown cluster "${x.cluster}"`,
          });
      });
      if (cfg.clusters.length === 0)
        ctx.addIssue({
          code: 'custom',
          path: ['api', 'serviceAccountTokens'],
          message: 'the broker verifies tokens with a cluster: configure one under "clusters"',
        });
    }
    if (cfg.nodes) {
      checkRegistries(cfg.nodes.registries, ['nodes', 'registries']);
      if (cfg.nodes.inventory === 'kubernetes' && cfg.clusters.length === 0)
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', 'inventory'],
          message: 'inventory: kubernetes needs a cluster',
        });
      if (trustOnFirstUseOf(cfg.nodes).enabled && (cfg.statusStore === false || cfg.clusters.length === 0))
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', 'ssh', 'trustOnFirstUse'],
          message:
            'keys trusted on first use are recorded in the status ConfigMap, and this config has none (statusStore: false, or no cluster): pin the keys in nodes.ssh.knownHosts instead, or configure a cluster for statusStore',
        });
    }
  });

export type PullkeeperConfig = z.infer<typeof PullkeeperConfigSchema>;
export type PullkeeperConfigInput = z.input<typeof PullkeeperConfigSchema>;
