/**
 * The label selector for one namespace list that returns every namespace a cluster's tenants
 * can select, and as few others as possible (pure; the refresh lists with it, then matches each
 * tenant exactly). Tenants select namespaces by `names` or by `matchLabels`; the union of
 * several `matchLabels` is not one Kubernetes selector (selectors only AND), but when every
 * tenant pins the same key, `key in (v1,v2,...)` holds for all of their namespaces. That is the
 * usual layout (`pullkeeper.dev/tenant: team-a`, `...: team-b`), and in a cluster of 10,000
 * namespaces of which 1,000 are the tenants', it moves the other 9,000 out of the response.
 */

/** What a tenant selects, as the config states it. */
export type NamespaceSelection = { names: string[] } | { matchLabels: Record<string, string> };

/**
 * `undefined`: list every namespace (a tenant selects by name, or by no label, or the tenants
 * share no key). Otherwise a `labelSelector` value: for each key that every tenant sets, with
 * a non-empty value, `key=value` (one value) or `key in (v1,v2)` (several), joined by commas.
 */
export function namespaceListSelector(tenants: readonly NamespaceSelection[]): string | undefined {
  if (tenants.length === 0) return undefined;
  const maps: Array<Record<string, string>> = [];
  for (const t of tenants) {
    if (!('matchLabels' in t)) return undefined;
    maps.push(t.matchLabels);
  }
  const keys = Object.keys(maps[0]!)
    .filter((k) => maps.every((m) => Object.hasOwn(m, k) && m[k] !== ''))
    .sort();
  if (keys.length === 0) return undefined;
  return keys
    .map((k) => {
      const values = [...new Set(maps.map((m) => m[k]!))].sort();
      return values.length === 1 ? `${k}=${values[0]}` : `${k} in (${values.join(',')})`;
    })
    .join(',');
}
