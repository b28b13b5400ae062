/**
 * The last-known state of registries and nodes, as the status page and
 * GET /v1/status show it: per registry its last mint result and expiry, per
 * node its last push result. Refreshes, pushes and fan-out workers each merge
 * what they saw into one record; the scheduled function, the API function and
 * the CLI run in different processes, so the record is kept in the cluster
 * (src/app/status-store.ts) as well as in memory. Pure: time is a parameter.
 */

export interface RegistryStatusEntry {
  kind: string;
  status: 'minted' | 'cached' | 'failed';
  /** The current good credential's expiry (kept across a failed mint: the last good one stays). */
  expiresAt: string | null;
  /** When it was last minted or verified; null if it never succeeded. */
  lastSuccess: string | null;
  /** The last attempt. */
  at: string;
  /** The last attempt's error (secret-free: the report's text). */
  error?: string;
}

export interface NodeStatusEntry {
  status: string;
  reason?: string;
  at: string;
}

export interface StatusRecord {
  registries: Record<string, RegistryStatusEntry>;
  nodes: Record<string, NodeStatusEntry>;
  /** When the stored copy was last written (set by the store). */
  savedAt?: string;
}

export interface SeenRegistry {
  name: string;
  kind: string;
  status: 'minted' | 'cached' | 'failed';
  expiresAt: string | null;
  error?: string;
}
export interface SeenNode {
  name: string;
  status: string;
  reason?: string;
}

/** Node entries not heard of for this long are dropped (the node left the inventory). */
export const NODE_ENTRY_TTL_MS = 7 * 24 * 3600 * 1000;
/** At most this many node entries are kept (a ConfigMap holds 1 MiB): the newest win, failures first. */
export const MAX_NODE_ENTRIES = 5000;
/** Error and reason texts are cut to this many characters. */
export const MAX_TEXT = 300;

export const emptyStatusRecord = (): StatusRecord => ({ registries: {}, nodes: {} });

const cut = (s: string | undefined) =>
  s === undefined ? undefined : s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 1)}…` : s;

/** `prev` with what one run saw merged in. Entries the run did not touch stay as they were. */
export function mergeSeen(
  prev: StatusRecord,
  seen: { registries?: readonly SeenRegistry[]; nodes?: readonly SeenNode[] },
  now: Date,
): StatusRecord {
  const at = now.toISOString();
  const registries = { ...prev.registries };
  for (const r of seen.registries ?? []) {
    const old = registries[r.name];
    const error = cut(r.error);
    registries[r.name] =
      r.status === 'failed'
        ? {
            kind: r.kind,
            status: 'failed',
            // A failed mint never replaces a working credential: the old one is still what is published.
            expiresAt: old?.expiresAt ?? null,
            lastSuccess: old?.lastSuccess ?? null,
            at,
            ...(error ? { error } : {}),
          }
        : { kind: r.kind, status: r.status, expiresAt: r.expiresAt, lastSuccess: at, at };
  }
  let nodes: Record<string, NodeStatusEntry> = {};
  for (const [name, n] of Object.entries(prev.nodes))
    if (now.getTime() - Date.parse(n.at) <= NODE_ENTRY_TTL_MS) nodes[name] = n;
  for (const n of seen.nodes ?? []) {
    const reason = cut(n.reason);
    nodes[n.name] = { status: n.status, ...(reason ? { reason } : {}), at };
  }
  const names = Object.keys(nodes);
  if (names.length > MAX_NODE_ENTRIES) {
    const rank = (e: NodeStatusEntry) => (e.status === 'failed' ? 1 : 0);
    names.sort((a, b) => rank(nodes[b]!) - rank(nodes[a]!) || nodes[b]!.at.localeCompare(nodes[a]!.at));
    nodes = Object.fromEntries(names.slice(0, MAX_NODE_ENTRIES).map((n) => [n, nodes[n]!]));
  }
  return { registries, nodes, ...(prev.savedAt ? { savedAt: prev.savedAt } : {}) };
}

/** Two records of the same fleet (the stored one and this process's): per entry, the newer attempt wins. */
export function newestOf(a: StatusRecord, b: StatusRecord): StatusRecord {
  const pick = <T extends { at: string }>(x: Record<string, T>, y: Record<string, T>) => {
    const out: Record<string, T> = { ...x };
    for (const [k, v] of Object.entries(y)) if (!out[k] || out[k]!.at < v.at) out[k] = v;
    return out;
  };
  return { registries: pick(a.registries, b.registries), nodes: pick(a.nodes, b.nodes) };
}

/** A stored record that only got newer times is rewritten at most this often (etcd history grows per write). */
export const STATUS_HEARTBEAT_MS = 15 * 60 * 1000;

/**
 * Whether `next` must be written over `prev` (stored at `prev.savedAt`): when a
 * state, expiry, error or entry changed, or the stored times are older than the heartbeat.
 */
export function needsSave(prev: StatusRecord, next: StatusRecord, now: Date): boolean {
  const states = (r: StatusRecord) =>
    canonical({
      registries: Object.fromEntries(
        Object.entries(r.registries).map(([k, e]) => [
          k,
          { ...e, at: '', lastSuccess: e.lastSuccess ? 'yes' : null },
        ]),
      ),
      nodes: Object.fromEntries(Object.entries(r.nodes).map(([k, e]) => [k, { ...e, at: '' }])),
    });
  if (states(prev) !== states(next)) return true;
  if (sameRecord(prev, next)) return false;
  const saved = prev.savedAt ? Date.parse(prev.savedAt) : Number.NaN;
  return !(now.getTime() - saved < STATUS_HEARTBEAT_MS);
}

/** Whether two records say the same thing (a write that changes nothing is skipped). */
export function sameRecord(a: StatusRecord, b: StatusRecord): boolean {
  return canonical(a) === canonical(b);
}

function canonical(r: StatusRecord): string {
  const sorted = (o: Record<string, unknown>) =>
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]);
  return JSON.stringify([sorted(r.registries), sorted(r.nodes)]);
}
