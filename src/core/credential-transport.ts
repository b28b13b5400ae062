/**
 * Where a password may travel. Basic credentials (user name and password in
 * the clear, base64) are sent only to:
 * - an https URL,
 * - a loopback host (127.0.0.0/8, ::1, localhost: what Docker and containerd
 *   treat as insecure by default, and traffic that never leaves the machine),
 * - a host the operator listed as insecure (`insecure: true` on a registry,
 *   `--insecure-registry HOST[:PORT]` on pullkeeper-node).
 * The Lambda verifier (providers/verify.ts) and the pull client (oci/client.ts)
 * both ask this one rule. Pure.
 */

/**
 * True for hosts Docker treats as insecure by default: 127.0.0.0/8, ::1, localhost.
 *
 * @example
 * isLoopbackHost('127.0.0.1:5000'); // true
 * isLoopbackHost('[::1]:5000');     // true
 * isLoopbackHost('10.0.0.1');       // false
 */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostPort.startsWith('[')
    ? hostPort.slice(1, hostPort.indexOf(']'))
    : hostPort.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** `HOST[:PORT]` (or `[v6]:PORT`) without the port, lowercased. */
function hostnameOf(hostPort: string): string {
  const h = hostPort.startsWith('[')
    ? hostPort.slice(0, hostPort.indexOf(']') + 1)
    : hostPort.replace(/:\d+$/, '');
  return h.toLowerCase();
}

/**
 * Whether Basic credentials may be sent to `url`; `insecureHosts` are
 * `HOST[:PORT]` entries (a port-less entry covers every port of the host; an
 * entry with a port covers the same host on any port too, as a registry's
 * token server often listens beside it).
 *
 * @example
 * basicAuthAllowed('https://auth.example/token', []);            // true
 * basicAuthAllowed('http://auth.example/token', []);             // false
 * basicAuthAllowed('http://127.0.0.1:5001/token', []);           // true
 * basicAuthAllowed('http://reg.local:5001/token', ['reg.local:5000']); // true
 */
export function basicAuthAllowed(url: string | URL, insecureHosts: readonly string[]): boolean {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return false;
  }
  if (u.protocol === 'https:') return true;
  if (u.protocol !== 'http:') return false;
  if (isLoopbackHost(u.host)) return true;
  const host = hostnameOf(u.host);
  return insecureHosts.some((h) => hostnameOf(h) === host);
}
