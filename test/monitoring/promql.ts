// Just enough PromQL lexing to list the metric names an expression reads.

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'atan2',
]);

/**
 * Metric names read by a PromQL expression: identifiers that are not functions or aggregations
 * (followed by `(`), keywords, label names (inside `{}` or a `by (...)`-style list), strings,
 * durations or numbers.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings (before braces: "{" in a regex)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ') // label lists
    .replace(/\boffset\s+-?\w+/gi, ' ') // offset 5m
    .replace(/@\s*(?:start|end)\s*\(\s*\)|@\s*[\d.]+/g, ' ') // @ modifiers
    .replace(/\b0x[0-9a-f]+\b|\b\d+(?:\.\d*)?(?:e[+-]?\d+)?\b|\.\d+(?:e[+-]?\d+)?\b/gi, ' '); // numbers
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const id = m[0];
    const rest = stripped.slice((m.index ?? 0) + id.length);
    if (/^\s*\(/.test(rest)) continue; // function call or aggregation
    if (KEYWORDS.has(id.toLowerCase())) continue;
    names.add(id);
  }
  return [...names].sort();
}

/** Grafana's built-in interval variables, replaced by fixed durations so promtool can evaluate. */
export const GRAFANA_VARIABLES: Record<string, string> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '10m',
  __range_s: '600',
  __interval_ms: '60000',
};

export function substituteGrafanaVariables(expr: string): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? '';
    const value = GRAFANA_VARIABLES[name];
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in ${expr}`);
    return value;
  });
}
