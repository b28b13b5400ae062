/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
/**
 * The status page at `/`: server-rendered HTML from a StatusReport, readable at a
 * glance and without JavaScript. Problems first (failed registries, failed nodes,
 * tenants with errors or missing Secrets), then every registry, tenant and node,
 * each list worst first. Expiry is a countdown computed here from `now`. No
 * script, no external resource, inline CSS only; every value is escaped by
 * hono/jsx and error text passes through redactTokenLike before it is shown.
 */
import { raw } from 'hono/html';
import type { StatusNamespace, StatusReport } from '../app/status-report.js';
import { ago, countdown, redactTokenLike } from '../core/countdown.js';
import { VERSION } from '../version.js';

/** Worst first: the order of every list on the page. */
export type Level = 'problem' | 'warning' | 'unknown' | 'ok';
const RANK: Record<Level, number> = { problem: 0, warning: 1, unknown: 2, ok: 3 };

/** An expiry closer than this is a warning (refreshes normally happen well before). */
export const EXPIRY_WARNING_SECONDS = 3600;
/** A Secret whose refresh time passed this long ago is a warning: the schedule is not running. */
export const REFRESH_OVERDUE_SECONDS = 30 * 60;
/** More healthy namespaces than this in a tenant fold into a <details>. */
export const NAMESPACES_SHOWN = 10;

interface Issue {
  level: Level;
  word: string;
  /** `#id` of the row it is about. */
  anchor: string;
  what: string;
  detail: string;
}
export interface RegistryRow {
  id: string;
  name: string;
  kind: string;
  level: Level;
  word: string;
  expiry: string;
  expiresAt: string | null;
  lastSuccess: string;
  detail?: string;
}
export interface NamespaceRow {
  id: string;
  name: string;
  level: Level;
  word: string;
  expiry: string;
  expiresAt?: string;
  refresh: string;
  hash?: string;
  detail?: string;
}
export interface TenantRow {
  id: string;
  name: string;
  cluster: string;
  level: Level;
  word: string;
  detail?: string;
  namespaces: NamespaceRow[];
}
export interface NodeRow {
  id: string;
  name: string;
  level: Level;
  word: string;
  result: string;
  when: string;
  at: string;
  detail?: string;
}
export interface StatusView {
  time: string;
  problems: number;
  warnings: number;
  /** "2 problems", "1 problem, 1 warning", "1 warning", "all good". */
  summary: string;
  level: Level;
  issues: Issue[];
  registries: RegistryRow[];
  tenants: TenantRow[];
  nodes: NodeRow[];
  /** false: this caller is not granted every tenant, so no node is shown (the report has none). */
  nodesVisible: boolean;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const worst = (levels: Level[]): Level => levels.reduce<Level>((a, b) => (RANK[b] < RANK[a] ? b : a), 'ok');
/** Stable, worst first, then by name. */
function byLevel<T extends { level: Level; name: string }>(rows: T[]): T[] {
  return [...rows].sort((a, b) => RANK[a.level] - RANK[b.level] || a.name.localeCompare(b.name));
}
/** An HTML id from a name (unique with its prefix and index). */
const idOf = (prefix: string, name: string, i: number) =>
  `${prefix}-${i}-${name}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 120);

function registryRow(r: StatusReport['registries'][number], i: number, now: Date): RegistryRow {
  const cd = countdown(r.expiresAt, now);
  const base = {
    id: idOf('registry', r.name, i),
    name: r.name,
    kind: r.kind,
    expiry: cd.text,
    expiresAt: r.expiresAt,
    lastSuccess: r.lastSuccess ? ago(r.lastSuccess, now) : 'never (by this server)',
  };
  if (r.lastError) return { ...base, level: 'problem', word: 'FAILED', detail: redactTokenLike(r.lastError) };
  if (cd.seconds !== null && cd.seconds <= 0)
    return { ...base, level: 'problem', word: 'EXPIRED', detail: 'the last credential minted has expired' };
  if (!r.lastSuccess)
    return {
      ...base,
      level: 'unknown',
      word: 'NO DATA',
      detail: 'no refresh has run in this server process yet; the Secrets below show what the cluster holds',
    };
  if (cd.seconds !== null && cd.seconds < EXPIRY_WARNING_SECONDS)
    return {
      ...base,
      level: 'warning',
      word: 'EXPIRES SOON',
      detail: 'the credential expires within the hour',
    };
  return { ...base, level: 'ok', word: 'OK' };
}

function namespaceRow(tenant: string, ns: StatusNamespace, i: number, now: Date): NamespaceRow {
  const cd = countdown(ns.expiresAt, now);
  const base = {
    id: idOf(`ns-${tenant}`, ns.name, i),
    name: ns.name,
    expiry: ns.secret === 'present' ? cd.text : '—',
    ...(ns.expiresAt ? { expiresAt: ns.expiresAt } : {}),
    refresh: ns.refreshAt ? refreshText(ns.refreshAt, now) : '—',
    ...(ns.hash ? { hash: ns.hash } : {}),
  };
  if (ns.secret === 'missing')
    return {
      ...base,
      level: 'problem',
      word: 'MISSING',
      detail: 'no pull Secret of this tenant here yet (or a Secret pullkeeper does not own holds its name)',
    };
  if (ns.secret === 'foreign')
    return {
      ...base,
      level: 'problem',
      word: 'CONFLICT',
      detail: "the Secret's name is held by another tenant's Secret",
    };
  if (cd.seconds !== null && cd.seconds <= 0)
    return { ...base, level: 'problem', word: 'EXPIRED', detail: 'the credential in the Secret has expired' };
  if (cd.seconds !== null && cd.seconds < EXPIRY_WARNING_SECONDS)
    return {
      ...base,
      level: 'warning',
      word: 'EXPIRES SOON',
      detail: 'the credential expires within the hour',
    };
  const refreshAt = ns.refreshAt ? Date.parse(ns.refreshAt) : Number.NaN;
  if (!Number.isNaN(refreshAt) && now.getTime() - refreshAt > REFRESH_OVERDUE_SECONDS * 1000)
    return {
      ...base,
      level: 'warning',
      word: 'REFRESH OVERDUE',
      detail: `the refresh was due ${ago(ns.refreshAt, now)}; is the schedule running?`,
    };
  return { ...base, level: 'ok', word: 'OK' };
}

function refreshText(at: string, now: Date): string {
  const t = Date.parse(at);
  if (Number.isNaN(t)) return 'unknown';
  return t > now.getTime() ? `due ${ago(at, now)}` : `was due ${ago(at, now)}`;
}

function tenantRow(t: StatusReport['tenants'][number], i: number, now: Date): TenantRow {
  const namespaces = byLevel(t.namespaces.map((ns, j) => namespaceRow(t.name, ns, j, now)));
  const base = { id: idOf('tenant', t.name, i), name: t.name, cluster: t.cluster, namespaces };
  if (t.error) return { ...base, level: 'problem', word: 'FAILED', detail: redactTokenLike(t.error) };
  if (namespaces.length === 0)
    return { ...base, level: 'unknown', word: 'NO NAMESPACES', detail: 'no namespace matches this tenant' };
  const level = worst(namespaces.map((n) => n.level));
  const bad = namespaces.filter((n) => n.level === level).length;
  const word = level === 'ok' ? 'OK' : level === 'problem' ? 'PROBLEM' : 'WARNING';
  return {
    ...base,
    level,
    word,
    ...(level === 'ok'
      ? {}
      : { detail: `${plural(bad, 'namespace')} ${bad === 1 ? 'needs' : 'need'} attention` }),
  };
}

function nodeRow(n: NonNullable<StatusReport['nodes']>[number], i: number, now: Date): NodeRow {
  const base = {
    id: idOf('node', n.name, i),
    name: n.name,
    result: n.status,
    when: ago(n.at, now),
    at: n.at,
  };
  const detail = n.reason ? { detail: redactTokenLike(n.reason) } : {};
  if (n.status === 'failed') return { ...base, level: 'problem', word: 'FAILED', ...detail };
  if (n.status === 'drift') return { ...base, level: 'warning', word: 'DRIFT', ...detail };
  if (n.status === 'written' || n.status === 'unchanged')
    return { ...base, level: 'ok', word: 'OK', ...detail };
  return { ...base, level: 'unknown', word: n.status.toUpperCase(), ...detail };
}

/** The page's content, ordered and worded; pure (time is a parameter). */
export function statusView(report: StatusReport, now: Date): StatusView {
  const registries = byLevel(report.registries.map((r, i) => registryRow(r, i, now)));
  const tenants = byLevel(report.tenants.map((t, i) => tenantRow(t, i, now)));
  const nodes = byLevel((report.nodes ?? []).map((n, i) => nodeRow(n, i, now)));
  const flagged = (l: Level) => l === 'problem' || l === 'warning';
  const issues: Issue[] = [
    ...(report.storeError
      ? [
          {
            level: 'warning' as const,
            word: 'WARNING',
            anchor: 'registries',
            what: 'Stored status',
            detail: `${redactTokenLike(report.storeError)} (registries and nodes show only what this process saw)`,
          },
        ]
      : []),
    ...registries
      .filter((r) => flagged(r.level))
      .map((r) => ({
        level: r.level,
        word: r.word,
        anchor: r.id,
        what: `Registry ${r.name}`,
        detail: r.detail ?? r.expiry,
      })),
    ...nodes
      .filter((n) => flagged(n.level))
      .map((n) => ({
        level: n.level,
        word: n.word,
        anchor: n.id,
        what: `Node ${n.name}`,
        detail: n.detail ?? n.result,
      })),
    ...tenants.flatMap((t): Issue[] =>
      t.detail && t.level === 'problem' && t.namespaces.length === 0
        ? [{ level: t.level, word: t.word, anchor: t.id, what: `Tenant ${t.name}`, detail: t.detail }]
        : t.namespaces
            .filter((n) => flagged(n.level))
            .map((n) => ({
              level: n.level,
              word: n.word,
              anchor: n.id,
              what: `Tenant ${t.name}, namespace ${n.name}`,
              detail: n.detail ?? n.expiry,
            })),
    ),
  ].sort((a, b) => RANK[a.level] - RANK[b.level]);
  const problems = issues.filter((x) => x.level === 'problem').length;
  const warnings = issues.length - problems;
  const summary =
    problems && warnings
      ? `${plural(problems, 'problem')}, ${plural(warnings, 'warning')}`
      : problems
        ? plural(problems, 'problem')
        : warnings
          ? plural(warnings, 'warning')
          : 'all good';
  return {
    time: report.time,
    problems,
    warnings,
    summary,
    level: problems ? 'problem' : warnings ? 'warning' : 'ok',
    issues,
    registries,
    tenants,
    nodes,
    nodesVisible: report.nodes !== undefined,
  };
}

const CSS = `
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.4;color:#1a1a1a;background:#fafafa}
body{margin:0 auto;max-width:72rem;padding:1rem 1.5rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.25rem 0 .25rem}
.summary{font-size:1.4rem;font-weight:700;padding:.6rem 1rem;border-radius:.4rem;border:2px solid}
.meta,.note{color:#555;font-size:.9rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.25rem 0 .75rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e2e2e2;vertical-align:top}
thead th{background:#f0f0f0;font-size:.85rem;text-transform:uppercase;letter-spacing:.03em}
.badge{display:inline-block;font-weight:700;font-size:.8rem;padding:.1rem .45rem;border-radius:.25rem;border:1px solid;white-space:nowrap}
.problem{color:#8c0014;background:#fde7ea;border-color:#d3394f}
.warning{color:#6b4000;background:#fff3dc;border-color:#d98e04}
.unknown{color:#3d3d3d;background:#eee;border-color:#999}
.ok{color:#14532d;background:#e6f4ea;border-color:#3a9a5b}
.issues li{margin:.3rem 0}.detail{color:#333}
code{font-size:.85rem}caption{text-align:left;caption-side:top}
th[scope=row],time,td:first-child{white-space:nowrap}
.banner{padding:.5rem 1rem;border:2px dashed #d98e04;background:#fff3dc}
a{color:#0b57d0}
`;

const Badge = (p: { level: Level; word: string }) => <span class={`badge ${p.level}`}>{p.word}</span>;
const When = (p: { at: string | null | undefined; text: string }) =>
  p.at ? <time datetime={p.at}>{p.text}</time> : <span>{p.text}</span>;

function Layout(p: { title: string; refreshSeconds?: number; children?: unknown }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        {p.refreshSeconds ? <meta http-equiv="refresh" content={String(p.refreshSeconds)} /> : null}
        <meta name="robots" content="noindex" />
        <title>{p.title}</title>
        <style>{raw(CSS)}</style>
      </head>
      <body>{p.children as never}</body>
    </html>
  );
}

function NamespaceTable(p: { tenant: TenantRow; rows: NamespaceRow[]; caption: string }) {
  return (
    <table>
      <caption class="note">{p.caption}</caption>
      <thead>
        <tr>
          <th scope="col">State</th>
          <th scope="col">Namespace</th>
          <th scope="col">Expiry</th>
          <th scope="col">Refresh</th>
          <th scope="col">Hash</th>
          <th scope="col">Detail</th>
        </tr>
      </thead>
      <tbody>
        {p.rows.map((n) => (
          <tr id={n.id} class="ns-row" data-level={n.level}>
            <td>
              <Badge level={n.level} word={n.word} />
            </td>
            <th scope="row">{n.name}</th>
            <td>
              <When at={n.expiresAt} text={n.expiry} />
            </td>
            <td>{n.refresh}</td>
            <td>{n.hash ? <code>{n.hash}</code> : '—'}</td>
            <td class="detail">{n.detail ?? ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Tenant(p: { t: TenantRow }) {
  const t = p.t;
  const attention = t.namespaces.filter((n) => n.level !== 'ok');
  const healthy = t.namespaces.filter((n) => n.level === 'ok');
  const fold = healthy.length > NAMESPACES_SHOWN;
  const shown = fold ? attention : t.namespaces;
  return (
    <section id={t.id} class="tenant" data-level={t.level} aria-labelledby={`${t.id}-h`}>
      <h3 id={`${t.id}-h`}>
        <Badge level={t.level} word={t.word} /> Tenant {t.name}
      </h3>
      <p class="note">
        cluster {t.cluster} · {plural(t.namespaces.length, 'namespace')}
        {t.detail ? ` · ${t.detail}` : ''}
      </p>
      {shown.length ? (
        <NamespaceTable tenant={t} rows={shown} caption={`Pull Secrets of tenant ${t.name}`} />
      ) : null}
      {fold ? (
        <details>
          <summary>{plural(healthy.length, 'healthy namespace')}</summary>
          <NamespaceTable tenant={t} rows={healthy} caption={`Healthy namespaces of tenant ${t.name}`} />
        </details>
      ) : null}
    </section>
  );
}

function StatusPage(p: {
  v: StatusView;
  now: Date;
  viewer?: string;
  publicMode?: boolean;
  refreshSeconds: number;
}) {
  const v = p.v;
  return (
    <Layout title={`pullkeeper: ${v.summary}`} refreshSeconds={p.refreshSeconds}>
      <header>
        <h1>pullkeeper status</h1>
        {p.publicMode ? (
          <p class="banner" role="note">
            Public mode (<code>api.statusPage.public</code>): anyone who can reach this address sees this
            page. Use it only on a loopback address.
          </p>
        ) : null}
        <p id="summary" class={`summary ${v.level}`} role="status">
          {v.summary}
        </p>
        <p class="meta">
          As of <time datetime={v.time}>{v.time.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}</time> · this
          page reloads every {p.refreshSeconds} s{p.viewer ? ` · signed in as ${p.viewer}` : ''} · pullkeeper{' '}
          {VERSION}
        </p>
      </header>
      <main>
        {v.issues.length ? (
          <section id="problems" aria-labelledby="problems-h">
            <h2 id="problems-h">Problems</h2>
            <ul class="issues">
              {v.issues.map((x) => (
                <li>
                  <Badge level={x.level} word={x.word} /> <a href={`#${x.anchor}`}>{x.what}</a>:{' '}
                  <span class="detail">{x.detail}</span>
                </li>
              ))}
            </ul>
          </section>
        ) : null}
        <section id="registries" aria-labelledby="registries-h">
          <h2 id="registries-h">Registries</h2>
          {v.registries.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col">Registry</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Expiry</th>
                  <th scope="col">Last success</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {v.registries.map((r) => (
                  <tr id={r.id} data-level={r.level}>
                    <td>
                      <Badge level={r.level} word={r.word} />
                    </td>
                    <th scope="row">{r.name}</th>
                    <td>{r.kind}</td>
                    <td>
                      <When at={r.expiresAt} text={r.expiry} />
                    </td>
                    <td>{r.lastSuccess}</td>
                    <td class="detail">{r.detail ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="note">No registry is used by the tenants shown.</p>
          )}
        </section>
        <section id="tenants" aria-labelledby="tenants-h">
          <h2 id="tenants-h">Tenants</h2>
          {v.tenants.length ? (
            v.tenants.map((t) => <Tenant t={t} />)
          ) : (
            <p class="note">No tenant is visible to this caller.</p>
          )}
        </section>
        <section id="nodes" aria-labelledby="nodes-h">
          <h2 id="nodes-h">Nodes</h2>
          {v.nodes.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col">Node</th>
                  <th scope="col">Last push</th>
                  <th scope="col">When</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {v.nodes.map((n) => (
                  <tr id={n.id} data-level={n.level}>
                    <td>
                      <Badge level={n.level} word={n.word} />
                    </td>
                    <th scope="row">{n.name}</th>
                    <td>{n.result}</td>
                    <td>
                      <When at={n.at} text={n.when} />
                    </td>
                    <td class="detail">{n.detail ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : v.nodesVisible ? (
            <p class="note">No node push has run in this server process yet.</p>
          ) : (
            <p class="note">Nodes are shown only to callers granted every tenant.</p>
          )}
        </section>
      </main>
    </Layout>
  );
}

function toHtml(el: unknown): string {
  const s = (el as { toString(): string | Promise<string> }).toString();
  if (typeof s !== 'string') throw new TypeError('the status page must render synchronously');
  return `<!doctype html>${s}`;
}

export interface StatusPageOptions {
  now: Date;
  /** Who is looking (a token's name or a CI identity); no secret. */
  viewer?: string;
  publicMode?: boolean;
  /** `<meta http-equiv="refresh">` seconds; default 30. */
  refreshSeconds?: number;
}

/** The whole page as an HTML document. */
export function renderStatusPage(report: StatusReport, o: StatusPageOptions): string {
  return toHtml(
    <StatusPage
      v={statusView(report, o.now)}
      now={o.now}
      refreshSeconds={o.refreshSeconds ?? 30}
      {...(o.viewer ? { viewer: o.viewer } : {})}
      {...(o.publicMode ? { publicMode: true } : {})}
    />,
  );
}

/** A short page for the cases without a report: not configured, sign-in needed, refused, broken config. */
export function renderMessagePage(o: { title: string; lines: string[]; code?: string[] }): string {
  return toHtml(
    <Layout title={`pullkeeper: ${o.title}`}>
      <main>
        <h1>{o.title}</h1>
        {o.lines.map((l) => (
          <p>{l}</p>
        ))}
        {o.code?.length ? <pre>{o.code.join('\n')}</pre> : null}
        <p class="note">pullkeeper {VERSION} · docs/status-page.md</p>
      </main>
    </Layout>,
  );
}
