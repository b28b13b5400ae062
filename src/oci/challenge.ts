/**
 * WWW-Authenticate challenges as registries send them (RFC 7235 auth-params,
 * Docker token auth): `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`
 * or `Basic realm="x"`. Pure; no I/O.
 */

export interface AuthChallenge {
  /** Lowercased scheme: `bearer`, `basic`, or whatever the server sent. */
  scheme: string;
  /** auth-params, names lowercased, quoted values unescaped. */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;

/**
 * Parses one or more challenges from a WWW-Authenticate value.
 *
 *   parseChallenges('Bearer realm="https://a/token",service="reg"')
 *   // [{ scheme: 'bearer', params: { realm: 'https://a/token', service: 'reg' } }]
 *   parseChallenges('Basic realm="x", Bearer realm="y"')
 *   // [{ scheme: 'basic', params: { realm: 'x' } }, { scheme: 'bearer', params: { realm: 'y' } }]
 */
export function parseChallenges(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(s);
    if (!m) return undefined;
    i += m[0].length;
    return m[0];
  };
  while (i < s.length) {
    skipWs();
    while (s[i] === ',') {
      i++;
      skipWs();
    }
    const scheme = token();
    if (scheme === undefined) break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    skipWs();
    // auth-params: name = value, comma separated, until a token not followed by '='.
    for (;;) {
      const save = i;
      skipWs();
      const name = token();
      if (name === undefined) {
        i = save;
        break;
      }
      skipWs();
      if (s[i] !== '=') {
        i = save; // the next challenge's scheme (or token68, ignored)
        break;
      }
      i++;
      skipWs();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++; // closing quote
      } else {
        value = token() ?? '';
      }
      challenge.params[name.toLowerCase()] = value;
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}

/** The repository scope a pull needs: `repository:<repo>:pull`. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}
