/**
 * A kubeconfig reader of our own (with `yaml`), for what a cluster connection
 * needs: the current (or named) context's server, CA, client certificate and
 * credentials (token, tokenFile, basic auth, exec plugins of
 * client.authentication.k8s.io/v1 and v1beta1), and in-cluster config. It
 * replaces client-node's KubeConfig, whose generated API surface made every
 * cold start and every Lambda artifact heavy (docs/deploy.md). Legacy
 * `auth-provider` entries (removed from kubectl for gcp/azure in 1.26) are not
 * read: the error says to use an exec plugin.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { PullkeeperError } from '../core/errors.js';

export class KubeconfigError extends PullkeeperError {}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export interface KubeconfigAccess {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTLSVerify?: boolean;
  /** The bearer token now (exec plugins run again when their credential expires); undefined: none. */
  token?: (signal?: AbortSignal) => Promise<string | undefined>;
  headers: Record<string, string>;
}

export function expandHome(p: string): string {
  return p.startsWith('~/') ? `${homedir()}${p.slice(1)}` : p;
}

function named(list: unknown, name: string, key: string, what: string): Obj {
  const hit = (Array.isArray(list) ? list : []).map(obj).find((e) => e.name === name);
  if (!hit) throw new KubeconfigError(`the kubeconfig has no ${what} named ${name}`);
  return obj(hit[key]);
}

/** Inline base64 data, or a file relative to the kubeconfig's directory. */
async function material(base: string, data: unknown, file: unknown): Promise<Buffer | undefined> {
  if (str(data)) return Buffer.from(data as string, 'base64');
  const f = str(file);
  if (!f) return undefined;
  return readFile(isAbsolute(f) ? f : resolve(base, expandHome(f)));
}

interface ExecCredential {
  token?: string;
  cert?: Buffer;
  key?: Buffer;
  expires?: number;
}

/** Runs a client-go credential plugin (exec) and reads its ExecCredential status. */
async function runExec(exec: Obj, base: string, signal?: AbortSignal): Promise<ExecCredential> {
  // Loaded here: only kubeconfigs with an exec plugin start a process.
  const { execFile } = await import('node:child_process');
  const command = str(exec.command);
  if (!command) throw new KubeconfigError('the kubeconfig exec plugin has no command');
  const args = (Array.isArray(exec.args) ? exec.args : []).map(String);
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  for (const e of Array.isArray(exec.env) ? exec.env.map(obj) : [])
    if (str(e.name)) env[e.name as string] = String(e.value ?? '');
  env.KUBERNETES_EXEC_INFO = JSON.stringify({
    apiVersion: str(exec.apiVersion) ?? 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    spec: { interactive: false },
  });
  // A relative command with a slash is relative to the kubeconfig, as client-go does.
  const cmd = command.includes('/') && !isAbsolute(command) ? resolve(base, command) : command;
  return new Promise((ok, fail) => {
    execFile(
      cmd,
      args,
      { env, timeout: 60_000, maxBuffer: 1 << 20, ...(signal ? { signal } : {}) },
      (err, stdout) => {
        if (err)
          return fail(
            new KubeconfigError(
              `the kubeconfig exec plugin ${command} failed (${err.message.split('\n')[0]}); run it by hand to see why`,
              { cause: err },
            ),
          );
        try {
          const st = obj(obj(JSON.parse(stdout)).status);
          const exp = str(st.expirationTimestamp);
          ok({
            ...(str(st.token) ? { token: st.token as string } : {}),
            ...(str(st.clientCertificateData)
              ? { cert: Buffer.from(st.clientCertificateData as string) }
              : {}),
            ...(str(st.clientKeyData) ? { key: Buffer.from(st.clientKeyData as string) } : {}),
            ...(exp ? { expires: Date.parse(exp) } : {}),
          });
        } catch (e) {
          fail(
            new KubeconfigError(`the kubeconfig exec plugin ${command} printed no ExecCredential JSON`, {
              cause: e,
            }),
          );
        }
      },
    );
  });
}

/** Reads a kubeconfig file: the given context, else current-context. */
export async function loadKubeconfig(path: string, context?: string): Promise<KubeconfigAccess> {
  const file = expandHome(path);
  const { parse } = await import('yaml');
  const doc = obj(parse(await readFile(file, 'utf8')));
  const base = dirname(file);
  const ctxName = context ?? str(doc['current-context']);
  if (!ctxName) throw new KubeconfigError('the kubeconfig has no current-context');
  const ctx = named(doc.contexts, ctxName, 'context', 'context');
  const cl = named(doc.clusters, String(ctx.cluster), 'cluster', 'cluster');
  const user = str(ctx.user) ? named(doc.users, ctx.user as string, 'user', 'user') : {};
  const server = str(cl.server);
  if (!server) throw new KubeconfigError(`the kubeconfig's cluster ${String(ctx.cluster)} has no server`);
  if (user['auth-provider'])
    throw new KubeconfigError(
      'the kubeconfig user uses a legacy auth-provider, which pullkeeper does not read; use an exec credential plugin (client.authentication.k8s.io/v1) instead',
    );
  const [ca, cert, key] = await Promise.all([
    material(base, cl['certificate-authority-data'], cl['certificate-authority']),
    material(base, user['client-certificate-data'], user['client-certificate']),
    material(base, user['client-key-data'], user['client-key']),
  ]);
  const headers: Record<string, string> = {};
  if (str(user.username) && str(user.password))
    headers.Authorization = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
  if (str(user.as)) headers['Impersonate-User'] = user.as as string;
  let token: KubeconfigAccess['token'];
  const exec = user.exec ? obj(user.exec) : undefined;
  let execCred: ExecCredential | undefined;
  if (exec) {
    // The first run decides whether the plugin gives a token or a client certificate.
    execCred = await runExec(exec, base);
    if (execCred.token) {
      let cur = execCred;
      token = async (signal) => {
        if (cur.expires !== undefined && cur.expires - Date.now() < 60_000)
          cur = await runExec(exec, base, signal);
        return cur.token;
      };
    }
  } else if (str(user.token)) {
    const t = user.token as string;
    token = async () => t;
  } else if (str(user.tokenFile)) {
    const f = user.tokenFile as string;
    // Re-read (rotating projected tokens), at most once a minute.
    let cached: { at: number; value: Promise<string> } | undefined;
    token = () => {
      if (!cached || Date.now() - cached.at > 60_000)
        cached = { at: Date.now(), value: readFile(resolve(base, f), 'utf8').then((s) => s.trim()) };
      return cached.value;
    };
  }
  return {
    server,
    ...(ca ? { ca } : {}),
    ...((cert ?? execCred?.cert) ? { cert: cert ?? execCred?.cert } : {}),
    ...((key ?? execCred?.key) ? { key: key ?? execCred?.key } : {}),
    ...(cl['insecure-skip-tls-verify'] === true ? { insecureSkipTLSVerify: true } : {}),
    ...(token ? { token } : {}),
    headers,
  };
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** In-cluster config: the ServiceAccount token (re-read, it rotates) and CA, KUBERNETES_SERVICE_HOST/PORT. */
export async function loadInCluster(dir = SA_DIR): Promise<KubeconfigAccess> {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new KubeconfigError(
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod)',
    );
  const ca = await readFile(`${dir}/ca.crt`);
  let cached: { at: number; value: Promise<string> } | undefined;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca,
    headers: {},
    token: () => {
      if (!cached || Date.now() - cached.at > 60_000)
        cached = { at: Date.now(), value: readFile(`${dir}/token`, 'utf8').then((s) => s.trim()) };
      return cached.value;
    },
  };
}
