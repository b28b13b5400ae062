/**
 * What to do with one node's config.json (pure): given the bytes on the node,
 * the sidecar that records which entries are ours, and the desired entries,
 * decide unchanged / write / refuse, and render the merged file.
 *
 * Ownership: `.pullkeeper-managed.json` beside config.json holds
 * `{ version: 1, managedKeys, sha256 }`: the `auths` keys pullkeeper wrote
 * last time (so a registry removed from the config is removed from the node,
 * and every other entry is kept) and the sha256 of the config.json it wrote.
 */
import { createHash } from 'node:crypto';
import {
  type DockerConfig,
  DockerConfigError,
  mergeManagedEntries,
  parseDockerConfig,
} from '../core/docker-config.js';

export const SIDECAR_NAME = '.pullkeeper-managed.json';

/** An entry whose credential expires: when it is due for refresh, and what it was minted from. */
export interface ExpiringEntry {
  /** ISO time; before it, the entry on the node is kept even when a newer credential was minted. */
  refreshAt: string;
  /** Fingerprint of the registry's config (a changed config replaces the entry at once). */
  source: string;
}

export interface ManagedState {
  version: 1;
  managedKeys: string[];
  /** sha256 (hex) of the config.json written with these keys. */
  sha256: string;
  /** Per key with an expiring credential (ECR, ACR, GAR): see ExpiringEntry. */
  expiring?: Record<string, ExpiringEntry>;
}

export const sha256hex = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** The sidecar's path for a config.json path. */
export function sidecarPath(configPath: string): string {
  return `${configPath.slice(0, configPath.lastIndexOf('/') + 1)}${SIDECAR_NAME}`;
}

/** Where a malformed file is backed up: beside it, named by its content hash (one backup per content). */
export function backupPath(configPath: string, bytes: Uint8Array): string {
  return `${configPath}.pullkeeper-malformed-${sha256hex(bytes).slice(0, 12)}`;
}

/** Reads a sidecar; undefined when absent or not ours/unreadable (then nothing counts as previously managed). */
export function parseSidecar(bytes: Uint8Array | undefined): ManagedState | undefined {
  if (!bytes) return undefined;
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<ManagedState>;
    if (
      v?.version === 1 &&
      Array.isArray(v.managedKeys) &&
      v.managedKeys.every((k) => typeof k === 'string') &&
      typeof v.sha256 === 'string'
    )
      return {
        version: 1,
        managedKeys: v.managedKeys,
        sha256: v.sha256,
        ...(isExpiringMap(v.expiring) ? { expiring: v.expiring } : {}),
      };
  } catch {
    /* not ours */
  }
  return undefined;
}

function isExpiringMap(v: unknown): v is Record<string, ExpiringEntry> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every(
      (e) =>
        typeof e === 'object' &&
        e !== null &&
        typeof (e as ExpiringEntry).refreshAt === 'string' &&
        typeof (e as ExpiringEntry).source === 'string',
    )
  );
}

export function renderSidecar(state: ManagedState): string {
  return `${JSON.stringify(state)}\n`;
}

/** A registry key safe for messages (a `user:pass@` part redacted). */
export function describeKey(key: string): string {
  const at = key.lastIndexOf('@');
  return at < 0 ? key : `<redacted>@${key.slice(at + 1)}`;
}

export type Existing =
  | { kind: 'absent' }
  | { kind: 'ok'; json: unknown; config: DockerConfig }
  | { kind: 'malformed'; problem: string };

const BOM = [0xef, 0xbb, 0xbf];

/** How the kubelet would see the existing file: absent, usable, or rejected (and why, without contents). */
export function inspectExisting(bytes: Uint8Array | undefined): Existing {
  if (bytes === undefined) return { kind: 'absent' };
  if (BOM.every((b, i) => bytes[i] === b))
    return {
      kind: 'malformed',
      problem: 'it starts with a UTF-8 byte order mark, which the kubelet rejects',
    };
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  try {
    const config = parseDockerConfig(text, 'config.json');
    const json = JSON.parse(text) as unknown;
    if (json !== null && (typeof json !== 'object' || Array.isArray(json)))
      return { kind: 'malformed', problem: 'the top level is not a JSON object' };
    return { kind: 'ok', json, config };
  } catch (err) {
    if (err instanceof DockerConfigError) return { kind: 'malformed', problem: err.message };
    throw err;
  }
}

export type NodePlan =
  | {
      action: 'unchanged';
      content: string;
      managedKeys: string[];
      /** For the sidecar. */
      expiring: Record<string, ExpiringEntry>;
      /** The sidecar does not describe the file (first run over a file that already matched): rewrite it only. */
      sidecarStale: boolean;
    }
  | {
      action: 'write';
      content: string;
      managedKeys: string[];
      /** For the sidecar. */
      expiring: Record<string, ExpiringEntry>;
      /** Keys that existed, were not ours, and are overwritten. */
      adopted: string[];
      /** Human summary of the difference (keys only, never values). */
      changes: string;
      /** The existing file is malformed and is replaced (back it up first). */
      replacesMalformed?: string;
    }
  | { action: 'refuse'; reason: string; malformed: boolean };

export interface PlanInput {
  existing: Uint8Array | undefined;
  sidecar: ManagedState | undefined;
  desired: DockerConfig;
  replaceMalformed: boolean;
  /** Desired keys whose credential expires. Such a key's entry on the node is kept while it is fresh. */
  expiring?: Record<string, ExpiringEntry>;
  /** Required with `expiring`. */
  now?: Date;
}

/**
 * The desired entries, with each expiring one replaced by the node's current entry
 * while that is still fresh: the file is exactly what we wrote (the sidecar's
 * hash), the sidecar's refresh time for the key has not passed, and the
 * registry's config is the same. A process that minted a new token (a cold
 * start) then leaves the node alone until the token on it is due.
 */
function keepFreshEntries(
  input: PlanInput,
  existing: Existing,
): { desired: DockerConfig; expiring: Record<string, ExpiringEntry> } {
  const expiring: Record<string, ExpiringEntry> = {};
  const wanted = Object.entries(input.expiring ?? {}).filter(([k]) => Object.hasOwn(input.desired.auths, k));
  for (const [k, e] of wanted) define(expiring, k, e);
  const sc = input.sidecar;
  if (
    existing.kind !== 'ok' ||
    !sc?.expiring ||
    !input.now ||
    input.existing === undefined ||
    sc.sha256 !== sha256hex(input.existing)
  )
    return { desired: input.desired, expiring };
  const auths = { ...input.desired.auths };
  for (const [k, want] of wanted) {
    const prev = Object.hasOwn(sc.expiring, k) ? sc.expiring[k] : undefined;
    const have = Object.hasOwn(existing.config.auths, k) ? existing.config.auths[k] : undefined;
    if (!prev || !have || prev.source !== want.source) continue;
    if (!(Date.parse(prev.refreshAt) > input.now.getTime())) continue;
    define(auths, k, { username: have.username, password: have.password });
    define(expiring, k, prev);
  }
  return { desired: { ...input.desired, auths }, expiring };
}

/** Sets an own property, whatever the key (a registry key may be `__proto__`). */
function define<T>(o: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

const sortedJson = (o: Record<string, unknown> | undefined) =>
  JSON.stringify(
    Object.keys(o ?? {})
      .sort()
      .map((k) => [k, o![k]]),
  );

/** The merged file's text: two-space JSON with a trailing newline. */
export function renderConfig(json: unknown): string {
  return `${JSON.stringify(json, null, 2)}\n`;
}

function sameEntry(
  a: { username: string; password: string } | undefined,
  b: { username: string; password: string },
) {
  return a !== undefined && a.username === b.username && a.password === b.password;
}

/**
 * Decides what to do with one node.
 *
 *   planNode({ existing: undefined, sidecar: undefined, desired: { auths: { 'a.io': … } }, replaceMalformed: false })
 *   // { action: 'write', content: '{\n  "auths": {\n    "a.io": {…}\n  }\n}\n', managedKeys: ['a.io'], adopted: [], … }
 */
export function planNode(input: PlanInput): NodePlan {
  const existing = inspectExisting(input.existing);
  const fresh = keepFreshEntries(input, existing);
  const desired = fresh.desired;
  let base: unknown;
  let replacesMalformed: string | undefined;
  if (existing.kind === 'malformed') {
    if (!input.replaceMalformed)
      return {
        action: 'refuse',
        malformed: true,
        reason: `existing file is malformed (${existing.problem})`,
      };
    replacesMalformed = existing.problem;
    base = undefined;
  } else if (existing.kind === 'ok') {
    base = existing.json;
  }
  const previously = existing.kind === 'malformed' ? [] : (input.sidecar?.managedKeys ?? []);
  let merged: ReturnType<typeof mergeManagedEntries>;
  try {
    merged = mergeManagedEntries(base, desired, previously);
  } catch (err) {
    if (err instanceof DockerConfigError) return { action: 'refuse', malformed: true, reason: err.message };
    throw err;
  }
  const content = renderConfig(merged.json);
  // The kubelet must accept the result and read our entries from it (a case variant such as "Auths"
  // later in the file would win over "auths" in Go's decoder).
  let effective: DockerConfig;
  try {
    effective = parseDockerConfig(content, 'config.json');
  } catch (err) {
    if (err instanceof DockerConfigError)
      return {
        action: 'refuse',
        malformed: true,
        reason: `the merged file would be rejected: ${err.message}`,
      };
    throw err;
  }
  const shadowed = Object.entries(desired.auths)
    .filter(([k, e]) => !sameEntry(Object.hasOwn(effective.auths, k) ? effective.auths[k] : undefined, e))
    .map(([k]) => describeKey(k));
  if (shadowed.length)
    return {
      action: 'refuse',
      malformed: false,
      reason: `the kubelet would not read our entries (${shadowed.join(', ')}) from the merged file: a case variant of "auths" (e.g. "Auths") later in the file overrides them; merge it into "auths" on the node`,
    };

  if (existing.kind === 'ok' && JSON.stringify(existing.json) === JSON.stringify(merged.json)) {
    const sidecarStale =
      !input.sidecar ||
      input.sidecar.sha256 !== sha256hex(input.existing!) ||
      input.sidecar.managedKeys.join('\n') !== merged.managedKeys.join('\n') ||
      sortedJson(input.sidecar.expiring) !== sortedJson(fresh.expiring);
    // Keep the node's bytes (formatting) when the content already matches.
    return {
      action: 'unchanged',
      content: Buffer.from(input.existing!).toString('utf8'),
      managedKeys: merged.managedKeys,
      expiring: fresh.expiring,
      sidecarStale,
    };
  }
  return {
    action: 'write',
    content,
    managedKeys: merged.managedKeys,
    expiring: fresh.expiring,
    adopted: merged.adopted,
    changes: describeChanges(existing, desired, previously),
    ...(replacesMalformed ? { replacesMalformed } : {}),
  };
}

/** Keys missing, outdated, or to be removed: for drift reports and logs. Never values. */
export function describeChanges(existing: Existing, desired: DockerConfig, previously: string[]): string {
  if (existing.kind === 'absent') return 'file missing';
  if (existing.kind === 'malformed') return `file malformed (${existing.problem})`;
  const have = existing.config.auths;
  const missing: string[] = [];
  const outdated: string[] = [];
  for (const [k, e] of Object.entries(desired.auths)) {
    if (!Object.hasOwn(have, k)) missing.push(describeKey(k));
    else if (!sameEntry(have[k], e)) outdated.push(describeKey(k));
  }
  const removed = previously.filter((k) => !Object.hasOwn(desired.auths, k) && Object.hasOwn(have, k));
  const parts = [
    missing.length ? `missing ${missing.join(', ')}` : '',
    outdated.length ? `outdated ${outdated.join(', ')}` : '',
    removed.length ? `no longer configured ${removed.map(describeKey).join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'entries reformatted';
}
