/** One access entry of a registry token: `repository:team/app:pull,push`. */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Parses a distribution token scope (`repository:NAME:ACTIONS`, `registry:catalog:*`).
 * NAME may itself contain `:` (a port), so type is before the first `:` and
 * actions after the last. Returns undefined for anything else.
 */
export function parseScope(scope: string): TokenAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}
