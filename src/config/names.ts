// Names that end up in argv, task queue names and workflow ids. Validated strictly: a name that
// fails here is never passed to a service manager, whatever the allowlist says.
import { hostname } from 'node:os';

/** systemd unit names: letters, digits and `:_.@-`; no leading `-` or `.` (could read as an option or a path). */
const UNIT_RE = /^[A-Za-z0-9_:@][A-Za-z0-9_.:@-]{0,254}$/;
/** Host names as used in task queues and workflow ids. */
const HOST_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$/;

export function unitNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'must be a non-empty string';
  if (name.length > 255) return 'is longer than 255 characters';
  if (!UNIT_RE.test(name)) {
    const bad = [...new Set(name.replace(/[A-Za-z0-9_.:@-]/g, ''))].join('');
    if (bad) return `contains characters not allowed in a unit name: ${JSON.stringify(bad)}`;
    return 'must not start with "-" or "."';
  }
  return null;
}

export function isValidUnitName(name: unknown): name is string {
  return unitNameProblem(name) === null;
}

export function hostNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'must be a non-empty string';
  if (!HOST_RE.test(name))
    return 'may contain only letters, digits, "_", "." and "-", and must not start with "." or "-"';
  return null;
}

/** Unit types systemd knows; a name without one of these suffixes is a service to systemctl. */
const UNIT_SUFFIX_RE = /\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)$/;

/** `jira-worker` → `jira-worker.service`, as systemctl mangles it before asking systemd (and polkit). */
export function normalizeUnitName(name: string): string {
  return UNIT_SUFFIX_RE.test(name) ? name : `${name}.service`;
}

/** --host, else SELFHEAL_HOST, else the machine's hostname (short form). */
export function resolveHost(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const h = flag ?? env.SELFHEAL_HOST ?? hostname().split('.')[0];
  const problem = hostNameProblem(h);
  if (problem) throw new Error(`host name ${JSON.stringify(h)} ${problem}`);
  return h;
}
