/**
 * Metrics from refresh reports: seconds to expiry per registry, rotations and
 * failures per tenant, nodes in drift, mint calls. Rendered as CloudWatch
 * embedded-metric-format lines on Lambda (the log line is the metric) and as
 * Prometheus text at /metrics locally. Pure: reports in, text out.
 */
import type { MintReportEntry } from './mint.js';

/** The parts of a refresh report the metrics read (the report contract of the refresh issue). */
export interface MetricsReport {
  registries: Array<Pick<MintReportEntry, 'name' | 'kind' | 'status' | 'expiresAt'>>;
  mintCalls?: number;
  tenants?: Array<{
    name: string;
    namespaces: Array<{ name: string; secret: string; serviceAccounts?: string }>;
  }>;
  nodes?: Array<{ name: string; status: string }>;
}

interface Sample {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  labels: Record<string, string>;
  value: number;
}

export class Metrics {
  readonly #gauges = new Map<string, Sample>();
  readonly #counters = new Map<string, Sample>();

  #key(name: string, labels: Record<string, string>): string {
    return `${name}{${Object.entries(labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`)
      .join(',')}}`;
  }
  gauge(name: string, help: string, labels: Record<string, string>, value: number): void {
    this.#gauges.set(this.#key(name, labels), { name, help, type: 'gauge', labels, value });
  }
  inc(name: string, help: string, labels: Record<string, string>, by = 1): void {
    const k = this.#key(name, labels);
    const s = this.#counters.get(k);
    if (s) s.value += by;
    else this.#counters.set(k, { name, help, type: 'counter', labels, value: by });
  }

  /** Folds one refresh report in. */
  record(report: MetricsReport, now: Date): void {
    for (const r of report.registries) {
      if (r.expiresAt)
        this.gauge(
          'pullkeeper_credential_expiry_seconds',
          'Seconds until the registry credential expires',
          { registry: r.name, kind: r.kind },
          Math.round((new Date(r.expiresAt).getTime() - now.getTime()) / 1000),
        );
      if (r.status === 'failed')
        this.inc('pullkeeper_mint_failures_total', 'Credential mints or logins that failed', {
          registry: r.name,
          kind: r.kind,
        });
    }
    if (report.mintCalls)
      this.inc('pullkeeper_mint_calls_total', 'Remote credential mint calls', {}, report.mintCalls);
    for (const t of report.tenants ?? []) {
      const rotated = t.namespaces.filter((n) => n.secret === 'created' || n.secret === 'updated').length;
      const failed = t.namespaces.filter(
        (n) => n.secret === 'failed' || n.serviceAccounts === 'failed',
      ).length;
      if (rotated)
        this.inc(
          'pullkeeper_rotations_total',
          'Pull secrets created or updated',
          { tenant: t.name },
          rotated,
        );
      if (failed)
        this.inc(
          'pullkeeper_rotation_failures_total',
          'Namespaces whose rotation failed',
          { tenant: t.name },
          failed,
        );
    }
    if (report.nodes) {
      this.gauge(
        'pullkeeper_nodes_in_drift',
        'Nodes whose config.json differs from the desired one',
        {},
        report.nodes.filter((n) => n.status === 'drift').length,
      );
      this.gauge(
        'pullkeeper_nodes_failed',
        'Nodes that could not be checked or written',
        {},
        report.nodes.filter((n) => n.status === 'failed').length,
      );
    }
  }

  /**
   * One answer of the pod credential broker (POST /v1/credentials): `tenant` is the
   * tenant that served (or refused) the pod, `none` when no tenant was reached
   * (an invalid token, a namespace of no tenant).
   */
  recordPodCredential(tenant: string, outcome: 'allowed' | 'denied'): void {
    this.inc(
      'pullkeeper_pod_credentials_total',
      'Answers of the pod credential broker, by tenant and outcome',
      { tenant, outcome },
    );
  }

  /** Prometheus text exposition format 0.0.4. */
  prometheus(): string {
    const all = [...this.#gauges.values(), ...this.#counters.values()];
    const byName = new Map<string, Sample[]>();
    for (const s of all) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
    const lines: string[] = [];
    for (const [name, samples] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`# HELP ${name} ${samples[0]!.help}`, `# TYPE ${name} ${samples[0]!.type}`);
      for (const s of samples) {
        const l = Object.entries(s.labels).map(([k, v]) => `${k}="${esc(v)}"`);
        lines.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${s.value}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }

  /**
   * CloudWatch embedded metric format: one JSON line per dimension set
   * (docs: "Specification: Embedded metric format"). Counters are emitted as the
   * amount since the last call, then reset.
   */
  emf(namespace: string, now: Date): string[] {
    const out: string[] = [];
    const groups = new Map<string, Sample[]>();
    for (const s of [...this.#gauges.values(), ...this.#counters.values()]) {
      const dims = Object.keys(s.labels).sort().join(',');
      const k = `${dims}|${JSON.stringify(Object.entries(s.labels).sort())}`;
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const samples of groups.values()) {
      const labels = samples[0]!.labels;
      const line: Record<string, unknown> = {
        _aws: {
          Timestamp: now.getTime(),
          CloudWatchMetrics: [
            {
              Namespace: namespace,
              Dimensions: [Object.keys(labels).sort()],
              Metrics: samples.map((s) => ({
                Name: s.name,
                Unit: s.name.endsWith('_seconds') ? 'Seconds' : 'Count',
              })),
            },
          ],
        },
        ...labels,
      };
      for (const s of samples) line[s.name] = s.value;
      out.push(JSON.stringify(line));
    }
    this.#counters.clear();
    return out;
  }
}
