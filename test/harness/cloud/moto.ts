/**
 * AWS ECR through moto's standalone server (docs.getmoto.org "Non-Python SDK's /
 * Server Mode": `moto_server -H 127.0.0.1 -p PORT`, any SDK pointed at it with
 * `endpoint`). ECR GetAuthorizationToken there (moto 5.2.1, ecr/responses.py)
 * returns base64("AWS:<registryId>-auth-token"), proxyEndpoint
 * https://<registryId>.dkr.ecr.<region>.amazonaws.com and expiresAt =
 * `time.mktime(datetime(2015, 1, 1))`, i.e. 2015-01-01 00:00 in the server's
 * LOCAL time zone: the server runs with TZ=UTC so that is 1420070400.
 * The real API (AWS ECR API reference, GetAuthorizationToken) returns a 12 h token.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { freePort } from '../ports.js';
import { HarnessError, run, type Service, startService } from '../proc.js';
import type { Component, DoctorCheck } from '../types.js';

export const MOTO_VERSION = '5.2.1';
/** moto's default account for any access key (moto.core DEFAULT_ACCOUNT_ID). */
export const MOTO_ACCOUNT_ID = '123456789012';
/** expiresAt moto reports for every ECR token (2015-01-01T00:00:00Z with TZ=UTC). */
export const MOTO_ECR_EXPIRES_AT = new Date('2015-01-01T00:00:00Z');

export interface MotoInfo {
  endpoint: string;
  region: string;
  accessKeyId: 'test';
  secretAccessKey: 'test';
  accountId: string;
}

/** A pullkeeper `ecr` registry entry that mints from this moto (login verification off: moto serves no registry). */
export function motoEcrRegistry(info: MotoInfo, name = 'ecr') {
  return {
    name,
    kind: 'ecr' as const,
    region: 'us-east-1',
    endpoint: info.endpoint,
    registryIds: [info.accountId],
    verify: false,
  };
}

export interface MotoComponent extends Component<MotoInfo> {
  readonly service: Service;
  /** POST /moto-api/reset: forget every resource. */
  reset(): Promise<void>;
}

async function onPath(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** `moto_server` when on PATH, else `python3 -m moto.server` (e.g. after `pip install --user`). */
async function motoCommand(): Promise<{ command: string; args: string[] }> {
  if (await onPath('moto_server')) return { command: 'moto_server', args: [] };
  return { command: 'python3', args: ['-m', 'moto.server'] };
}

export async function startMoto(opts: {
  dir: string;
  signal?: AbortSignal;
  region?: string;
  readyTimeoutMs?: number;
}): Promise<MotoComponent> {
  const { command, args } = await motoCommand();
  let lastErr: unknown;
  // A port found free can be taken before moto binds it: retry with another.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      const service = await startService({
        name: 'moto',
        command,
        args: [...args, '-H', '127.0.0.1', '-p', String(port)],
        logFile: join(opts.dir, 'moto.log'),
        env: { ...process.env, TZ: 'UTC', PYTHONUNBUFFERED: '1' },
        readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
        signal: opts.signal,
        ready: async (signal) => {
          const r = await fetch(`${endpoint}/moto-api/`, {
            signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]),
          });
          await r.arrayBuffer();
          return r.status < 500;
        },
      });
      return {
        service,
        info: {
          endpoint,
          region: opts.region ?? 'us-east-1',
          accessKeyId: 'test',
          secretAccessKey: 'test',
          accountId: MOTO_ACCOUNT_ID,
        },
        stop: () => service.stop(),
        async reset() {
          const r = await fetch(`${endpoint}/moto-api/reset`, {
            method: 'POST',
            signal: AbortSignal.timeout(10_000),
          });
          await r.arrayBuffer();
          if (!r.ok) throw new HarnessError(`moto reset: HTTP ${r.status}`);
        },
      };
    } catch (err) {
      lastErr = err;
      const msg = err instanceof Error ? err.message : String(err);
      if (opts.signal?.aborted || !/Address already in use/i.test(msg)) break;
    }
  }
  throw lastErr instanceof Error ? lastErr : new HarnessError(`moto did not start: ${String(lastErr)}`);
}

const PROBE = `
import json, os, sys, sysconfig, importlib.util
r = {"python": sys.executable, "pip": importlib.util.find_spec("pip") is not None,
     "externally_managed": os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))}
try:
    import moto, moto.server
    r["moto"] = moto.__version__
except Exception as e:
    r["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(r))
`;

/** Is moto (with its server extras) usable, and how to install it if not. */
export async function checkMoto(): Promise<DoctorCheck[]> {
  const spec = `'moto[server]==${MOTO_VERSION}'`;
  let probe: { python?: string; pip?: boolean; externally_managed?: boolean; moto?: string; error?: string };
  try {
    const r = await run('python3', ['-c', PROBE], { timeoutMs: 60_000, allowFail: true });
    probe = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
    if (r.code !== 0 && !probe.moto) probe.error ??= r.stderr.trim().split('\n').pop();
  } catch (err) {
    return [
      {
        name: 'python3',
        ok: false,
        detail: `python3 not runnable: ${err instanceof Error ? err.message : String(err)}`,
        fix: 'apt-get install -y python3 python3-pip',
      },
    ];
  }
  // PEP 668 (Debian/Ubuntu system python) refuses a plain `pip install`; pyenv/venv pythons do not.
  const fix = !probe.pip
    ? `apt-get install -y python3-pip && python3 -m pip install --user --break-system-packages ${spec}`
    : probe.externally_managed
      ? `python3 -m pip install --user --break-system-packages ${spec}`
      : `python3 -m pip install ${spec}`;
  const server = await onPath('moto_server');
  const checks: DoctorCheck[] = [];
  if (!probe.moto) {
    checks.push({
      name: 'moto',
      ok: false,
      detail: `moto[server] not importable by ${probe.python ?? 'python3'}: ${probe.error ?? 'unknown error'}`,
      fix,
    });
    return checks;
  }
  checks.push({
    name: 'moto',
    ok: true,
    detail: `moto ${probe.moto} (${probe.python}); server via ${server ?? 'python3 -m moto.server'}${
      probe.moto === MOTO_VERSION ? '' : `; tested with ${MOTO_VERSION}`
    }`,
    ...(probe.moto === MOTO_VERSION ? {} : { fix }),
  });
  return checks;
}
