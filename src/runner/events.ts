/**
 * Kubelet-style events: reasons and message texts (docs/kubelet-parity.md §4.2, §6.3, §7),
 * and their rendering as `kubectl describe` prints them. Pure.
 */

export type EventType = 'Normal' | 'Warning';

/** One event as stored in a pod's `events.jsonl`. */
export interface PodEvent {
  /** ISO 8601. */
  time: string;
  type: EventType;
  reason: string;
  message: string;
  /** `spec.containers{<name>}` for container events; absent for the pod itself. */
  fieldPath?: string;
}

/** The pod's identity in kubelet's messages: `name_namespace(uid)`. */
export function podFullName(pod: { name: string; namespace: string; uid: string }): string {
  return `${pod.name}_${pod.namespace}(${pod.uid})`;
}

export function containerFieldPath(container: string): string {
  return `spec.containers{${container}}`;
}

/** Event reasons and messages, as the kubelet words them. */
export const Events = {
  created: (c: string) =>
    ({ type: 'Normal', reason: 'Created', message: `Created container: ${c}` }) as const,
  started: (c: string) => ({ type: 'Normal', reason: 'Started', message: `Started container ${c}` }) as const,
  killing: (c: string, message?: string) =>
    ({ type: 'Normal', reason: 'Killing', message: message || `Stopping container ${c}` }) as const,
  failedPostStart: () =>
    ({ type: 'Warning', reason: 'FailedPostStartHook', message: 'PostStartHook failed' }) as const,
  failedPreStop: () =>
    ({ type: 'Warning', reason: 'FailedPreStopHook', message: 'PreStopHook failed' }) as const,
  backOff: (c: string, pod: { name: string; namespace: string; uid: string }) =>
    ({
      type: 'Warning',
      reason: 'BackOff',
      message: `Back-off restarting failed container ${c} in pod ${podFullName(pod)}`,
    }) as const,
  failed: (message: string) => ({ type: 'Warning', reason: 'Failed', message: `Error: ${message}` }) as const,
  failedCreatePodSandBox: (message: string) =>
    ({ type: 'Warning', reason: 'FailedCreatePodSandBox', message }) as const,
  httpFallback: (host: string) =>
    ({
      type: 'Warning',
      reason: 'LifecycleHTTPFallback',
      message: `request to HTTPS lifecycle hook ${host} got HTTP response, retry with HTTP succeeded`,
    }) as const,
  unsupportedFields: (paths: string[]) =>
    ({
      type: 'Warning',
      reason: 'UnsupportedFields',
      message: `pullkeeper-node does not implement these fields; they were not applied: ${paths.join(', ')}`,
    }) as const,
};

/**
 * `text` with every occurrence of each value replaced by `[redacted]` (longest
 * values first, so a value containing another is replaced whole).
 *
 * @example
 * redactValues('exec: "s3cret-token": not found', ['s3cret-token']); // 'exec: "[redacted]": not found'
 */
export function redactValues(text: string, values: readonly string[]): string {
  let out = text;
  for (const v of [...values].sort((a, b) => b.length - a.length)) {
    if (v !== '') out = out.split(v).join('[redacted]');
  }
  return out;
}

/**
 * kubectl's `HumanDuration` (the Age column).
 *
 * @example
 * humanDuration(5_000);      // '5s'
 * humanDuration(125_000);    // '2m5s'
 * humanDuration(3_600_000);  // '60m'
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const years = Math.floor(hours / (24 * 365));
  if (hours < 24 * 365 * 8) {
    const d = Math.floor(hours / 24) % 365;
    return d === 0 ? `${years}y` : `${years}y${d}d`;
  }
  return `${years}y`;
}

/** Left-aligned columns separated by at least two spaces (kubectl's tabwriter look). */
export function table(rows: string[][], indent = ''): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map(
    (r) =>
      indent +
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 2)))
        .join('')
        .trimEnd(),
  );
}

/**
 * The `Events:` section of `kubectl describe` (oldest first).
 *
 * @example
 * describeEvents([{ time: '2024-01-01T00:00:00Z', type: 'Normal', reason: 'Started', message: 'Started container c' }],
 *   Date.parse('2024-01-01T00:00:05Z'));
 * // ['Events:',
 * //  '  Type    Reason   Age   From             Message',
 * //  '  ----    ------   ----  ----             -------',
 * //  '  Normal  Started  5s    pullkeeper-node  Started container c']
 */
export function describeEvents(events: PodEvent[], now: number, from = 'pullkeeper-node'): string[] {
  if (events.length === 0) return ['Events:  <none>'];
  const rows = [
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    ['----', '------', '----', '----', '-------'],
    ...events.map((e) => [e.type, e.reason, humanDuration(now - Date.parse(e.time)), from, e.message]),
  ];
  return ['Events:', ...table(rows, '  ')];
}
