// Field kinds for the schema: each names its YAML key, its default and how it is checked, so a key
// is added in one place (src/config/schema.ts) and its section's type follows from it.
import { closeSync, openSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseListen, parseSize } from '../util/parse';
import { show, type Checker, type Obj, type Path } from './check';

export interface ReadContext {
  /** Relative paths resolve against this folder. */
  cwd: string;
  /** The fields of this section read so far (a default may depend on an earlier field). */
  section: Obj;
}

export interface Field<T> {
  /** The key in the YAML file (the section's property may be named differently, e.g. `timeout` → `timeoutMs`). */
  readonly key: string;
  read(c: Checker, value: unknown, path: Path, ctx: ReadContext): T;
}

export type FieldTable = Record<string, Field<unknown>>;

/** The values a table reads, property by property (doc comments carry over). */
export type Fields<S extends FieldTable> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

type Default<T> = T | ((section: Obj) => T);
type Check<T> = (value: T, section: Obj) => string | null;
const dflt = <T>(d: Default<T>, ctx: ReadContext): T =>
  typeof d === 'function' ? (d as (section: Obj) => T)(ctx.section) : d;

/** A field read by `read`, then checked by `check` (a message, or null when fine) at the same path. */
function field<T>(key: string, read: Field<T>['read'], check?: Check<T>): Field<T> {
  return {
    key,
    read(c, value, path, ctx) {
      const v = read(c, value, path, ctx);
      const problem = check?.(v, ctx.section);
      if (problem) c.problem(path, problem);
      return v;
    },
  };
}

export const text = (key: string, d: Default<string>, check?: Check<string>) =>
  field(key, (c, v, path, ctx) => c.string(v, path, dflt(d, ctx))!, check);

export const optionalText = (key: string, d: Default<string | null> = null, check?: Check<string | null>) =>
  field(key, (c, v, path, ctx) => c.string(v, path, dflt(d, ctx)), check);

export const integer = (key: string, d: Default<number>, min: number, max: number) =>
  field(key, (c, v, path, ctx) => c.integer(v, path, dflt(d, ctx), min, max));

export const flag = (key: string, d: boolean) => field(key, (c, v, path) => c.boolean(v, path, d));

export const choice = <T extends string>(key: string, allowed: readonly T[], d: T) =>
  field(key, (c, v, path) => c.oneOf(v, path, allowed, d));

export const duration = (key: string, d: number, opts: { min?: number } = {}) =>
  field(key, (c, v, path) => c.duration(v, path, d, opts));

export const httpUrl = (key: string, d: Default<string | null>) =>
  field(key, (c, v, path, ctx) => c.url(v, path, dflt(d, ctx)));

/** A file or folder, absolute (relative to the working folder). */
export const localPath = (key: string, d: Default<string>) =>
  field(key, (c, v, path, ctx) => resolve(ctx.cwd, c.string(v, path, dflt(d, ctx))!));

/**
 * A file the process reads at start (a certificate, a key): absolute, and checked now, so a
 * missing or unreadable file is a config problem with its line rather than a failure later.
 */
export const readableFile = (key: string, required: boolean) =>
  field(key, (c, v, path, ctx) => {
    const s = c.string(v, path, null);
    if (s === null) {
      if (required) c.problem(path, 'is required');
      return null;
    }
    const file = resolve(ctx.cwd, s);
    try {
      if (statSync(file).isDirectory()) throw Object.assign(new Error('folder'), { code: 'EISDIR' });
      closeSync(openSync(file, 'r'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'is a folder'
              : String(code);
      c.problem(path, `cannot read ${show(file)} (${why})`);
    }
    return file;
  });

/** host:port to listen on. */
export const listen = (key: string, d: string) =>
  text(key, d, (v) => (parseListen(v) ? null : `${show(v)} must be host:port, e.g. 127.0.0.1:5000`));

/** host:port to listen on, or `""` for off (null). */
export const listenOrOff = (key: string, d: string) =>
  field(
    key,
    (c, v, path) => c.string(v, path, d, { allowEmpty: true }) || null,
    (v) => (v && !parseListen(v) ? `${show(v)} must be host:port, or "" to disable` : null),
  );

/** A size such as 512KiB or 2MiB, in bytes. */
export const size = (key: string, d: string) =>
  field(key, (c, v, path) => {
    const s = c.string(v, path, d)!;
    const bytes = parseSize(s);
    if (bytes === null) c.problem(path, `${show(s)} is not a size; write it like 512KiB or 2MiB`);
    return bytes ?? parseSize(d)!;
  });

/** A list of strings; anything else is one problem and the default. */
export const stringList = (key: string, d: readonly string[], what: string) =>
  field(key, (c, v, path) => {
    if (v === undefined) return [...d];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      c.problem(path, `must be a list of ${what}`);
      return [...d];
    }
    return v as string[];
  });

/** A mapping with keys of the user's choosing and string values (e.g. HTTP headers). */
export const stringMap = (key: string) =>
  field(key, (c, v, path) => {
    const out: Record<string, string> = {};
    const o = c.object(v, path, Object.keys((v as Obj) ?? {}));
    for (const [k, x] of Object.entries(o ?? {})) {
      const s = c.string(x, [...path, k], null);
      if (s !== null) out[k] = s;
    }
    return out;
  });

/** A field whose reading is its own (nested sections, lists). */
export const custom = <T>(key: string, read: Field<T>['read']) => field(key, read);

/** The value as the file has it, for a reader that needs more than this section to read it. */
export const raw = (key: string) => field<unknown>(key, (_c, v) => v);

export const keysOf = (table: FieldTable) => Object.values(table).map((f) => f.key);

function readFields<S extends FieldTable>(c: Checker, o: Obj, path: Path, table: S, cwd: string): Fields<S> {
  const section: Obj = {};
  for (const [name, f] of Object.entries(table))
    section[name] = f.read(c, o[f.key], [...path, f.key], { cwd, section });
  return section as Fields<S>;
}

/**
 * Reads one mapping by its table: unknown keys are reported (with a suggestion), every field is read
 * in table order. A value that is not a mapping is reported and read as empty (all defaults).
 */
export function readSection<S extends FieldTable>(c: Checker, raw: unknown, path: Path, table: S, cwd: string) {
  return readFields(c, c.object(raw, path, keysOf(table)) ?? {}, path, table, cwd);
}

/** Like readSection, but null for a value that is not a mapping (a list entry that cannot be used at all). */
export function readEntry<S extends FieldTable>(c: Checker, raw: unknown, path: Path, table: S, cwd: string) {
  const o = c.object(raw, path, keysOf(table));
  return o && readFields(c, o, path, table, cwd);
}
