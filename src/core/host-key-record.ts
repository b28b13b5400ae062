/**
 * The record of SSH host keys accepted on first use (`nodes.ssh.trustOnFirstUse`).
 * A key accepted once is recorded per host (`address` on port 22, else
 * `[address]:port`, as OpenSSH's known_hosts names it) and enforced from then
 * on, like a pin in `nodes.ssh.knownHosts`. Pure: time is a parameter; the
 * record is kept beside the status in the status ConfigMap (src/app/host-key-store.ts).
 *
 * Bounded: an entry whose host has not answered at all for HOST_KEY_TTL_MS is
 * dropped (a host that answers with another key still counts as seen, so a
 * changed key never ages out into a new first use), and at most MAX_HOST_KEYS
 * entries are kept, the most recently seen first.
 */

export interface RecordedHostKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`… */
  keyType: string;
  /** SHA-256 of the key blob, lowercase hex (what known_hosts pins compare). */
  sha256: string;
  /** The node name it was first accepted for (for people; the host is the key). */
  node: string;
  firstSeen: string;
  lastSeen: string;
}

export interface HostKeyRecord {
  version: 1;
  hosts: Record<string, RecordedHostKey>;
}

/** A host not heard of for this long is forgotten (the next connection is a first use again). */
export const HOST_KEY_TTL_MS = 90 * 24 * 3600 * 1000;
/** At most this many hosts are kept (the ConfigMap also holds the status; 1 MiB in all). */
export const MAX_HOST_KEYS = 3000;
/** `lastSeen` is rewritten at most this often per host (every write is an etcd revision). */
export const HOST_SEEN_HEARTBEAT_MS = 24 * 3600 * 1000;

export const emptyHostKeyRecord = (): HostKeyRecord => ({ version: 1, hosts: {} });

/** What a run asks to record: a key accepted on first use, or a host seen again. */
export type HostKeyUpdate =
  | { kind: 'accept'; host: string; node: string; keyType: string; sha256: string }
  | { kind: 'seen'; host: string };

export interface HostKeyMerge {
  record: HostKeyRecord;
  /** Accepts refused because the host already has another, still valid, key recorded (another run got there first). */
  conflicts: Array<{ host: string; recorded: RecordedHostKey }>;
  /** Whether `record` differs from `prev` (a write is needed). */
  changed: boolean;
}

const live = (e: RecordedHostKey, now: Date) => now.getTime() - Date.parse(e.lastSeen) <= HOST_KEY_TTL_MS;

/** The recorded key of a host, unless it has expired. */
export function recordedKey(r: HostKeyRecord, host: string, now: Date): RecordedHostKey | undefined {
  const e = Object.hasOwn(r.hosts, host) ? r.hosts[host] : undefined;
  return e && live(e, now) ? e : undefined;
}

/** Whether a host seen now needs its `lastSeen` rewritten. */
export function seenIsStale(e: RecordedHostKey, now: Date): boolean {
  return now.getTime() - Date.parse(e.lastSeen) >= HOST_SEEN_HEARTBEAT_MS;
}

/** `prev` with the updates applied, expired entries dropped and the size capped. */
export function mergeHostKeys(
  prev: HostKeyRecord,
  updates: readonly HostKeyUpdate[],
  now: Date,
): HostKeyMerge {
  const at = now.toISOString();
  let hosts: Record<string, RecordedHostKey> = {};
  for (const [h, e] of Object.entries(prev.hosts)) if (live(e, now)) hosts[h] = e;
  const conflicts: HostKeyMerge['conflicts'] = [];
  for (const u of updates) {
    const cur = Object.hasOwn(hosts, u.host) ? hosts[u.host] : undefined;
    if (u.kind === 'seen') {
      if (cur && seenIsStale(cur, now)) hosts[u.host] = { ...cur, lastSeen: at };
      continue;
    }
    if (!cur) {
      hosts[u.host] = { keyType: u.keyType, sha256: u.sha256, node: u.node, firstSeen: at, lastSeen: at };
    } else if (cur.sha256 !== u.sha256) {
      conflicts.push({ host: u.host, recorded: cur });
    } else if (seenIsStale(cur, now)) {
      hosts[u.host] = { ...cur, lastSeen: at };
    }
  }
  const names = Object.keys(hosts);
  if (names.length > MAX_HOST_KEYS) {
    names.sort((a, b) => hosts[b]!.lastSeen.localeCompare(hosts[a]!.lastSeen) || a.localeCompare(b));
    hosts = Object.fromEntries(names.slice(0, MAX_HOST_KEYS).map((n) => [n, hosts[n]!]));
  }
  const record: HostKeyRecord = { version: 1, hosts };
  return { record, conflicts, changed: canonical(prev) !== canonical(record) };
}

function canonical(r: HostKeyRecord): string {
  return JSON.stringify(
    Object.keys(r.hosts)
      .sort()
      .map((k) => [k, r.hosts[k]]),
  );
}
