// Service managers behind one interface. Commands run with argv (execFile, never a shell), and
// only after the unit name passed validation and the allowlist check in the host activities.
import { execFile } from 'node:child_process';
import { isValidUnitName } from '../config/names';
import type { ManagerKind } from '../config/config';

export interface UnitStatus {
  unit: string;
  /** `loaded`, `not-found`, `masked`, ... */
  loadState: string;
  /** `active`, `inactive`, `failed`, `activating`, `deactivating`, ... */
  activeState: string;
  subState: string;
  mainPid: number;
  /** Changes on every start of the unit; empty when it never ran. */
  invocationId: string;
  activeEnterMonotonicUs: number;
  nRestarts: number;
}

/** A value that changes whenever the unit is (re)started: used to tell whether a restart happened. */
export function startFingerprint(s: UnitStatus): string {
  return `${s.invocationId}|${s.activeEnterMonotonicUs}|${s.mainPid}`;
}

export interface ServiceManager {
  readonly kind: string;
  status(unit: string): Promise<UnitStatus>;
  restart(unit: string): Promise<void>;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type CommandRunner = (argv: readonly string[], opts: { timeoutMs: number }) => Promise<CommandResult>;

/** Runs argv directly (no shell), with a timeout. Never rejects for a non-zero exit. */
export const execRunner: CommandRunner = (argv, { timeoutMs }) =>
  new Promise((resolve, reject) => {
    execFile(
      argv[0],
      argv.slice(1),
      { timeout: timeoutMs, maxBuffer: 1024 * 1024, env: process.env, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          // Spawn failure (ENOENT, EACCES): the command itself is missing.
          reject(new Error(`cannot run ${argv[0]}: ${err.message}`));
          return;
        }
        const code = err ? ((err as { code?: number }).code ?? (err.killed ? 124 : 1)) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });

/** A command that ran but did not do what was asked; carries systemd's own words. */
export class ServiceCommandError extends Error {
  constructor(
    message: string,
    readonly result: CommandResult,
  ) {
    super(message);
    this.name = 'ServiceCommandError';
  }
}

const SHOW_PROPS = 'Id,LoadState,ActiveState,SubState,MainPID,InvocationID,ActiveEnterTimestampMonotonic,NRestarts';

export class SystemdManager implements ServiceManager {
  readonly kind: string;
  constructor(
    private readonly scope: 'system' | 'user',
    private readonly run: CommandRunner = execRunner,
    private readonly systemctl = 'systemctl',
    private readonly restartTimeoutMs = 5 * 60_000,
    /** Prefix for the restart command only (e.g. `sudo -n`); status needs no privilege. */
    private readonly restartPrefix: readonly string[] = [],
  ) {
    this.kind = scope === 'user' ? 'systemd-user' : 'systemd';
  }

  private argv(...rest: string[]): string[] {
    return [this.systemctl, ...(this.scope === 'user' ? ['--user'] : []), '--no-ask-password', ...rest];
  }

  private check(unit: string): void {
    // Defence in depth: callers validate too.
    if (!isValidUnitName(unit)) throw new Error(`refusing invalid unit name ${JSON.stringify(unit)}`);
  }

  async status(unit: string): Promise<UnitStatus> {
    this.check(unit);
    const res = await this.run(this.argv('show', `--property=${SHOW_PROPS}`, '--', unit), { timeoutMs: 30_000 });
    if (res.code !== 0) {
      throw new ServiceCommandError(`systemctl show ${unit} failed (exit ${res.code}): ${res.stderr.trim()}`, res);
    }
    const props = new Map<string, string>();
    for (const line of res.stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
    }
    return {
      unit,
      loadState: props.get('LoadState') ?? 'unknown',
      activeState: props.get('ActiveState') ?? 'unknown',
      subState: props.get('SubState') ?? 'unknown',
      mainPid: Number(props.get('MainPID') ?? 0) || 0,
      invocationId: props.get('InvocationID') ?? '',
      activeEnterMonotonicUs: Number(props.get('ActiveEnterTimestampMonotonic') ?? 0) || 0,
      nRestarts: Number(props.get('NRestarts') ?? 0) || 0,
    };
  }

  async restart(unit: string): Promise<void> {
    this.check(unit);
    const res = await this.run([...this.restartPrefix, ...this.argv('restart', '--', unit)], {
      timeoutMs: this.restartTimeoutMs,
    });
    if (res.code !== 0) {
      const why = res.stderr.trim().split('\n')[0] || `exit code ${res.code}`;
      throw new ServiceCommandError(`systemctl restart ${unit} failed: ${why}`, res);
    }
  }
}

export type ManagerFactory = (kind: ManagerKind) => ServiceManager;

export function defaultManagers(run: CommandRunner = execRunner, opts: { sudo?: boolean } = {}): ManagerFactory {
  const system = new SystemdManager('system', run, 'systemctl', 5 * 60_000, opts.sudo ? ['sudo', '-n'] : []);
  const user = new SystemdManager('user', run);
  return (kind) => (kind === 'systemd-user' ? user : system);
}
