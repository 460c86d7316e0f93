// The checker: walks the parsed YAML, collects every problem with the key at fault and its line,
// and falls back to the default so one pass reports them all.
import { isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { parseDuration } from '../policy/duration';

export type Path = (string | number)[];

export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(
    readonly source: string,
    problems: ConfigProblem[],
  ) {
    const sorted = [...problems].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    super(
      `${source}: ${sorted.length} problem${sorted.length === 1 ? '' : 's'}:\n` +
        sorted.map((p) => `  - ${p.line ? `line ${p.line}: ` : ''}${p.path || '(top level)'}: ${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = sorted;
  }
}

export type Obj = Record<string, unknown>;

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}

function suggest(key: string, allowed: readonly string[]): string {
  const best = allowed
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best.k}"?)` : '';
}

/** A value as a message quotes it. */
export const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v)));

function formatPath(path: Path): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** Collects problems while walking the parsed YAML; each check returns the default when the value is unusable. */
export class Checker {
  readonly problems: ConfigProblem[] = [];
  constructor(private readonly lineOf: (path: Path) => number | undefined) {}

  problem(path: Path, message: string): void {
    this.problems.push({ path: formatPath(path), message, line: this.lineOf(path) });
  }

  object(v: unknown, path: Path, allowed: readonly string[]): Obj | null {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.problem(path, `must be a mapping (key: value), got ${show(v)}`);
      return null;
    }
    for (const key of Object.keys(v)) {
      if (!allowed.includes(key)) {
        this.problem([...path, key], `unknown key${suggest(key, allowed)}; allowed here: ${allowed.join(', ')}`);
      }
    }
    return v as Obj;
  }

  string(v: unknown, path: Path, dflt: string | null, opts: { allowEmpty?: boolean } = {}): string | null {
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v !== 'string') {
      this.problem(path, `must be a string, got ${show(v)}`);
      return dflt;
    }
    if (v === '' && !opts.allowEmpty) return dflt;
    return v;
  }

  duration(v: unknown, path: Path, dflt: number, opts: { min?: number } = {}): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') {
      this.problem(path, `must be a duration with a unit, like 90s, 2m or 1h (got ${show(v)})`);
      return dflt;
    }
    const ms = parseDuration(v);
    if (ms === null) {
      this.problem(path, `${show(v)} is not a duration; write it like 500ms, 90s, 2m, 1h or 1h30m`);
      return dflt;
    }
    if (opts.min !== undefined && ms < opts.min) {
      this.problem(path, `${show(v)} is too short (minimum ${opts.min}ms)`);
      return dflt;
    }
    return ms;
  }

  integer(v: unknown, path: Path, dflt: number, min: number, max: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.problem(path, `must be a whole number, got ${show(v)}`);
      return dflt;
    }
    if (v < min || v > max) {
      this.problem(path, `must be between ${min} and ${max}, got ${v}`);
      return dflt;
    }
    return v;
  }

  boolean(v: unknown, path: Path, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.problem(path, `must be true or false, got ${show(v)}`);
      return dflt;
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: Path, allowed: readonly T[], dflt: T): T {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.problem(path, `must be one of ${allowed.join(', ')}; got ${show(v)}`);
      return dflt;
    }
    return v as T;
  }

  url(v: unknown, path: Path, dflt: string | null): string | null {
    const s = this.string(v, path, dflt);
    if (s === null || s === dflt) return s;
    try {
      const u = new URL(s);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      return s.replace(/\/+$/, '');
    } catch {
      this.problem(path, `${show(s)} is not an http(s) URL`);
      return dflt;
    }
  }
}

/** `${NAME}`, `${NAME:-default}`; `$${` stays a literal `${`. Applied to string values only, after YAML parsing. */
export function substituteEnv(value: unknown, path: Path, env: NodeJS.ProcessEnv, c: Checker): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (whole, name: string, dflt?: string) => {
      if (whole.startsWith('$$')) return whole.slice(1);
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (dflt !== undefined) return dflt;
      c.problem(path, `environment variable ${name} is not set (write \${${name}:-} to make it optional)`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...path, i], env, c));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, [...path, k], env, c)]));
  }
  return value;
}

/** Line of the key (or list item) a path names; falls back to the nearest ancestor that exists. */
export function lineFinder(doc: Document, lineCounter: LineCounter): (path: Path) => number | undefined {
  return (path) => {
    let node: unknown = doc.contents;
    let line: number | undefined = undefined;
    for (const part of path) {
      if (isMap(node)) {
        const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(part));
        if (!pair) break;
        const keyRange = (pair.key as { range?: [number, number, number] }).range;
        if (keyRange) line = lineCounter.linePos(keyRange[0]).line;
        node = pair.value;
      } else if (isSeq(node) && typeof part === 'number') {
        node = node.items[part];
        const range = (node as { range?: [number, number, number] } | undefined)?.range;
        if (range) line = lineCounter.linePos(range[0]).line;
      } else break;
    }
    return line;
  };
}
