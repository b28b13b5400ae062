/**
 * What a failed network call means, from the error Node or undici gives:
 * nothing listening (refused), no route or name (unreachable), no answer in
 * time (timeout), a connection cut, or a TLS certificate not trusted. Error
 * messages use it so that a server that cannot be reached is never blamed on
 * credentials or RBAC. Pure: it reads `code`, `name` and `cause` only.
 */

export type NetFailureKind = 'refused' | 'unreachable' | 'timeout' | 'reset' | 'tls';

const KINDS: ReadonlyArray<[RegExp, NetFailureKind]> = [
  [/^ECONNREFUSED$/, 'refused'],
  [/^(ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ENETDOWN|EADDRNOTAVAIL)$/, 'unreachable'],
  [/^(ETIMEDOUT|ESOCKETTIMEDOUT|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT|TimeoutError)$/, 'timeout'],
  [/^(ECONNRESET|EPIPE|UND_ERR_SOCKET|ECONNABORTED)$/, 'reset'],
  [/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|DEPTH_ZERO/, 'tls'],
];

/** The codes of an error and its causes, outermost first (a fetch TypeError carries the socket error as cause). */
export function errorCodes(err: unknown): string[] {
  const out: string[] = [];
  let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if (typeof e.code === 'string') out.push(e.code);
    if (typeof e.name === 'string' && e.name !== 'Error' && e.name !== 'TypeError') out.push(e.name);
    e = e.cause as typeof e;
  }
  return out;
}

/** The network failure an error stands for, with the code that decided it; undefined when it is not one. */
export function netFailure(err: unknown): { kind: NetFailureKind; code: string } | undefined {
  for (const code of errorCodes(err))
    for (const [re, kind] of KINDS) if (re.test(code)) return { kind, code };
  return undefined;
}

/** A short phrase for messages: "connection refused (ECONNREFUSED)". */
export function netFailureText(f: { kind: NetFailureKind; code: string }): string {
  const what: Record<NetFailureKind, string> = {
    refused: 'connection refused: nothing listens at that address and port',
    unreachable: 'unreachable: no such host or no route to it',
    timeout: 'no answer in time',
    reset: 'the connection was cut',
    tls: 'its TLS certificate is not trusted',
  };
  return `${what[f.kind]} (${f.code})`;
}
