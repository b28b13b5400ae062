/**
 * Lifecycle hook handlers (exec, httpGet, sleep) and the timing of the kill
 * sequence, as the kubelet does them (docs/kubelet-parity.md §7.2, §7.3).
 *
 * Pure parts: {@link graceAfterPreStop}, {@link httpGetRequest},
 * {@link execHookFailure}, {@link validateSleep}. I/O: {@link runHandler}.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { PullkeeperError } from '../core/errors.js';
import type { LifecycleHandler } from './pod.js';

/** A hook failed; the message is kubelet's (it may include the hook's output: never put it in events). */
export class HookError extends PullkeeperError {}

/** kubelet `minimumGracePeriodInSeconds`: the shortest TERM-to-KILL window. */
export const MIN_GRACE_SECONDS = 2;

/** The `User-Agent` of lifecycle httpGet requests (`kube-lifecycle/<major>.<minor>`). */
export const LIFECYCLE_USER_AGENT = 'kube-lifecycle/1.34';

/** Most of a hook response body the kubelet reads (and discards). */
const MAX_BODY_BYTES = 10 * 1024;

/**
 * Seconds between TERM and KILL after a PreStop hook (kubelet `killContainer`):
 * the hook's whole elapsed seconds count against the grace period, and the
 * window is never shorter than 2 s.
 *
 * @example
 * graceAfterPreStop(30, 0);       // 30
 * graceAfterPreStop(30, 4_900);   // 26  (4.9 s counts as 4)
 * graceAfterPreStop(3, 3_000);    // 2   (clamped)
 * graceAfterPreStop(0, 0);        // 2
 */
export function graceAfterPreStop(gracePeriodSeconds: number, preStopElapsedMs: number): number {
  const left = gracePeriodSeconds - Math.floor(preStopElapsedMs / 1000);
  return Math.max(left, MIN_GRACE_SECONDS);
}

/** Kubelet's message for a failed exec hook (logged, never put in an event). */
export function execHookFailure(
  command: string[],
  container: string,
  podFullName: string,
  error: string,
  output: string,
): string {
  return `Exec lifecycle hook ([${command.join(' ')}]) for Container "${container}" in Pod "${podFullName}" failed - error: ${error}, message: ${JSON.stringify(output)}`;
}

/**
 * `sleep` validation (`must be greater than 0 and less than terminationGracePeriodSeconds`).
 * Returns the error text or undefined.
 */
export function validateSleep(seconds: number, terminationGracePeriodSeconds: number): string | undefined {
  if (seconds <= 0 || seconds > terminationGracePeriodSeconds) {
    return `sleep.seconds: Invalid value: ${seconds}: must be greater than 0 and less than terminationGracePeriodSeconds (${terminationGracePeriodSeconds})`;
  }
  return undefined;
}

export interface HttpGetRequest {
  url: string;
  headers: Array<[string, string]>;
  /** The `Host` header, if set (Go: `req.Host`). */
  host?: string;
}

/**
 * The request a lifecycle httpGet sends: host = `httpGet.host` or the pod IP;
 * a named port is looked up in the container's ports; scheme lowercased
 * (default http); path default `/`; `User-Agent: kube-lifecycle/1.34` and
 * `Accept: *\/*` unless the hook sets them (an empty Accept removes it).
 *
 * @example
 * httpGetRequest({ port: 'web', path: '/quit' }, [{ name: 'web', containerPort: 8080 }], '10.0.0.5').url;
 * // 'http://10.0.0.5:8080/quit'
 */
export function httpGetRequest(
  get: NonNullable<LifecycleHandler['httpGet']>,
  ports: Array<{ name?: string; containerPort: number }>,
  podIP: string | undefined,
): HttpGetRequest {
  const host = get.host || podIP;
  if (!host) throw new HookError('failed to find networking container');
  let port: number;
  if (typeof get.port === 'number') port = get.port;
  else if (/^\d+$/.test(get.port)) port = Number(get.port);
  else {
    const found = ports.find((p) => p.name === get.port);
    if (!found) throw new HookError(`couldn't find port: ${get.port} in container ports`);
    port = found.containerPort;
  }
  const scheme = (get.scheme ?? 'HTTP').toLowerCase();
  let path = get.path ?? '/';
  if (!path.startsWith('/')) path = `/${path}`;
  const hostPort = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const headers: Array<[string, string]> = [];
  let hostHeader: string | undefined;
  for (const h of get.httpHeaders ?? []) {
    if (h.name.toLowerCase() === 'host') hostHeader = h.value;
    else headers.push([h.name, h.value]);
  }
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  if (!has('user-agent')) headers.push(['User-Agent', LIFECYCLE_USER_AGENT]);
  if (!has('accept')) headers.push(['Accept', '*/*']);
  const cleaned = headers.filter(([k, v]) => !(k.toLowerCase() === 'accept' && v === ''));
  return {
    url: `${scheme}://${hostPort}${path}`,
    headers: cleaned,
    ...(hostHeader ? { host: hostHeader } : {}),
  };
}

/** What a handler needs to know about where it runs. */
export interface HookContext {
  /** The OCI runtime binary, its global args, and `--root`. */
  runtime: { binary: string; globalArgs: string[]; root: string };
  containerId: string;
  container: string;
  ports: Array<{ name?: string; containerPort: number }>;
  podIP?: string;
  podFullName: string;
  terminationGracePeriodSeconds: number;
  /** Called for events a handler itself emits (LifecycleHTTPFallback). */
  onEvent?: (e: { type: 'Normal' | 'Warning'; reason: string; message: string }) => void;
}

/** Runs one hook; resolves when it is done, throws {@link HookError} when it fails or `signal` aborts it. */
export async function runHandler(h: LifecycleHandler, ctx: HookContext, signal: AbortSignal): Promise<void> {
  if (h.exec) return runExec(h.exec.command, ctx, signal);
  if (h.httpGet) return runHttpGet(h.httpGet, ctx, signal);
  if (h.sleep) {
    const invalid = validateSleep(h.sleep.seconds, ctx.terminationGracePeriodSeconds);
    if (invalid) throw new HookError(`Cannot run handler: ${invalid}`);
    return sleepFor(h.sleep.seconds * 1000, signal);
  }
  const kind = h.tcpSocket ? 'tcpSocket' : 'no handler set';
  throw new HookError(`Cannot run handler: invalid handler: ${kind}`);
}

function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new HookError('container terminated before sleep hook finished'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new HookError('container terminated before sleep hook finished'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function runExec(command: string[], ctx: HookContext, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      ctx.runtime.binary,
      [...ctx.runtime.globalArgs, '--root', ctx.runtime.root, 'exec', ctx.containerId, ...command],
      { stdio: ['ignore', 'pipe', 'pipe'], signal, killSignal: 'SIGKILL' },
    );
    let output = '';
    const collect = (b: Buffer) => {
      if (output.length < MAX_BODY_BYTES) output += b.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (err) => {
      if (signal.aborted) reject(new HookError('hook aborted: the grace period ran out', { cause: err }));
      else
        reject(new HookError(execHookFailure(command, ctx.container, ctx.podFullName, err.message, output)));
    });
    child.on('close', (code, sig) => {
      if (code === 0) return resolve();
      if (signal.aborted) return reject(new HookError('hook aborted: the grace period ran out'));
      const error = sig ? `signal: ${sig}` : `command '${command.join(' ')}' exited with ${code}`;
      reject(new HookError(execHookFailure(command, ctx.container, ctx.podFullName, error, output.trim())));
    });
  });
}

function oneRequest(
  req: HttpGetRequest,
  signal: AbortSignal,
  dropAuthorization: boolean,
): Promise<{ status: number }> {
  const url = new URL(req.url);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of req.headers) {
    if (dropAuthorization && k.toLowerCase() === 'authorization') continue;
    const prev = headers[k];
    headers[k] = prev === undefined ? v : ([] as string[]).concat(prev, v);
  }
  if (req.host) headers.Host = req.host;
  // Go's client (kubelet) accepts bare-LF header lines from CGI servers; so does the lenient parser.
  return new Promise((resolve, reject) => {
    const r = send(
      url,
      { method: 'GET', headers, signal, rejectUnauthorized: false, insecureHTTPParser: true },
      (res) => {
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_BODY_BYTES) res.destroy();
        });
        res.on('close', () => resolve({ status: res.statusCode ?? 0 }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    r.on('error', reject);
    r.end();
  });
}

async function runHttpGet(
  get: NonNullable<LifecycleHandler['httpGet']>,
  ctx: HookContext,
  signal: AbortSignal,
): Promise<void> {
  const req = httpGetRequest(get, ctx.ports, ctx.podIP);
  try {
    // Only transport errors fail the hook; any HTTP status is success (kubelet).
    await oneRequest(req, signal, false);
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    const plainHttp = req.url.startsWith('https:') && /WRONG_VERSION_NUMBER|EPROTO/.test(`${code} ${err}`);
    if (!plainHttp || signal.aborted) {
      throw new HookError(
        `Http lifecycle hook (${get.path ?? '/'}) for Container "${ctx.container}" in Pod "${ctx.podFullName}" failed - error: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const fallback = { ...req, url: req.url.replace(/^https:/, 'http:') };
    await oneRequest(fallback, signal, true);
    ctx.onEvent?.({
      type: 'Warning',
      reason: 'LifecycleHTTPFallback',
      message: `request to HTTPS lifecycle hook ${new URL(req.url).host} got HTTP response, retry with HTTP succeeded`,
    });
  }
}
