// A host install in a temporary root, on this machine, without touching it:
// - a holder process owns private mount, UTS and network namespaces (`unshare --mount --uts --net
//   --propagation private`): /etc, /opt and /var are copy-on-write overlays whose writes land in
//   <dir>/upper, /run is a fresh tmpfs, the hostname is the test's, and only a private loopback
//   exists (so the shipped fixed ports 5000, 7233, 9090, 9465 ... are free);
// - commands run inside with nsenter, as root, exactly as an operator would type them;
// - a unit's ExecStart runs inside under an emulation of its own sandbox (its own nested mount
//   namespace): ProtectSystem=strict makes every mount read-only except /dev, /proc, /sys and the
//   unit's ReadWritePaths=, StateDirectory= and LogsDirectory= (bound onto themselves before the
//   read-only pass), PrivateTmp= and ProtectHome= get their tmpfs mounts, and User=, Group=,
//   WorkingDirectory=, UMask=, Environment= and EnvironmentFile= apply.
// Everything started here runs in its own process group; stop() ends them all, the namespaces go with
// the last process, and the temporary root is removed.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait';

export type UnitFile = Record<string, Record<string, string[]>>;

/** systemd's unit file syntax: [Section], Key=Value (repeatable), # and ; comments, \ continuations. */
export function parseUnitFile(text: string): UnitFile {
  const unit: UnitFile = {};
  let section: Record<string, string[]> | null = null;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = unit[header[1]] = unit[header[1]] ?? {};
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`not a unit file line: ${raw}`);
    (section[kv[1]] = section[kv[1]] ?? []).push(kv[2].trim());
  }
  return unit;
}

export interface LaunchOptions {
  /**
   * Run as root instead of User=. Only for a unit that must reach a root-owned private systemd user
   * manager here (a user manager accepts only its own uid); the file system sandbox still applies.
   */
  asRoot?: boolean;
}

/** One process started inside the temporary root. */
export class RootProcess {
  readonly exited: Promise<void>;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((r) => {
      child.once('exit', () => r());
      child.once('error', () => r());
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  killGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (this.running) {
      this.killGroup('SIGTERM');
      const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.killGroup('SIGKILL');
  }
}

const HOLDER_SCRIPT = `set -euo pipefail
R="$1"; CHECKOUT="$2"; NAME="$3"
hostname "$NAME"
ip link set lo up
for d in etc opt var; do
  mkdir -p "$R/upper/$d" "$R/work/$d"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$R/upper/$d,workdir=$R/work/$d" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/systemd/system
chmod 1777 /run/lock
# Stands in for \`git clone ... /opt/selfheal && npm ci\`: this checkout, with its node_modules.
mkdir -p /opt/selfheal
mount --bind "$CHECKOUT" /opt/selfheal
echo ready
exec sleep infinity
`;

const live = new Set<InstallRoot>();
let exitHook = false;

/** The namespace a process is in (e.g. `net:[4026532281]`), or '' when it cannot be read. */
function readNs(pid: number, kind: 'net' | 'mnt'): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return '';
  }
}

/** A process's start time (field 22 of /proc/<pid>/stat): a pid and its start time name one process. */
function startTimeOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

export class InstallRoot {
  private readonly processes: RootProcess[] = [];

  private constructor(
    readonly dir: string,
    readonly hostname: string,
    private readonly holder: RootProcess,
  ) {}

  /** The holder as it was when it came up: what sweep() checks before it kills anything. */
  private identity: { start: string; net: string } | null = null;

  /** The holder's namespaces: `nsenter` arguments. */
  private get ns(): string[] {
    return ['-t', String(this.holder.child.pid), '-m', '-u', '-n', '--'];
  }

  static async create(opts: { checkout: string; hostname: string }): Promise<InstallRoot> {
    const dir = mkdtempSync(join(tmpdir(), 'selfheal-install-'));
    const logFile = join(dir, 'holder.log');
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(
        'unshare',
        [
          '--mount',
          '--uts',
          '--net',
          '--propagation',
          'private',
          'bash',
          '-c',
          HOLDER_SCRIPT,
          'holder',
          dir,
          opts.checkout,
          opts.hostname,
        ],
        { detached: true, stdio: ['ignore', fd, fd] },
      );
    } finally {
      closeSync(fd);
    }
    const root = new InstallRoot(dir, opts.hostname, new RootProcess('holder', child, logFile));
    live.add(root);
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const r of live) r.killNow();
      });
    }
    try {
      await waitFor(() => root.holder.log().includes('ready') || !root.holder.running, {
        what: 'the install namespaces',
        timeoutMs: 15_000,
      });
      if (!root.holder.running) throw new Error(`the namespace holder exited:\n${root.holder.log()}`);
      const pid = child.pid!;
      const net = readNs(pid, 'net');
      if (net && net !== readNs(process.pid, 'net')) root.identity = { start: startTimeOf(pid), net };
    } catch (err) {
      await root.stop();
      throw err;
    }
    return root;
  }

  /** Runs argv inside the temporary root as root, to completion. */
  exec(
    argv: string[],
    opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
  ): SpawnSyncReturns<string> {
    const r = spawnSync('nsenter', [...this.ns, ...argv], {
      input: opts.input,
      env: opts.env ?? { PATH: process.env.PATH, HOME: '/root', LANG: 'C.UTF-8' },
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 60_000,
      cwd: opts.cwd ?? '/',
    });
    if (r.error) throw r.error;
    return r;
  }

  /** A shell script inside the temporary root (bash -euo pipefail), as root. */
  bash(script: string, opts: { timeoutMs?: number } = {}): SpawnSyncReturns<string> {
    return this.exec(['bash', '-euo', 'pipefail', '-c', script], opts);
  }

  /** The content of a file as seen inside the temporary root. */
  read(path: string): string {
    const r = this.exec(['cat', '--', path]);
    if (r.status !== 0) throw new Error(`cannot read ${path} in the install root: ${r.stderr}`);
    return r.stdout;
  }

  write(path: string, content: string): void {
    const r = this.exec(['tee', '--', path], { input: content });
    if (r.status !== 0) throw new Error(`cannot write ${path} in the install root: ${r.stderr}`);
  }

  /** An HTTP request from inside the root's network namespace (its loopback is its own). */
  fetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
    const script =
      'const [u, i] = process.argv.slice(1); fetch(u, JSON.parse(i)).then(async (r) => ' +
      'process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), ' +
      '(e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause ?? e) })));';
    const r = this.exec([process.execPath, '-e', script, url, JSON.stringify(init)], { timeoutMs: 30_000 });
    if (r.status !== 0) throw new Error(`fetch ${url} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { status: number; body: string };
  }

  /** A long-running program inside the root (not sandboxed), in its own process group. */
  spawn(name: string, argv: string[], env: NodeJS.ProcessEnv): RootProcess {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    try {
      const child = spawn('nsenter', [...this.ns, ...argv], { detached: true, stdio: ['ignore', fd, fd], env });
      const p = new RootProcess(name, child, logFile);
      this.processes.push(p);
      return p;
    } finally {
      closeSync(fd);
    }
  }

  /** Starts the ExecStart of an installed unit (/etc/systemd/system/NAME) under its sandbox. */
  launchUnit(name: string, opts: LaunchOptions = {}): RootProcess {
    const u = parseUnitFile(this.read(`/etc/systemd/system/${name}`));
    const s = u.Service ?? {};
    const last = (k: string) => s[k]?.at(-1);

    const user = opts.asRoot ? 'root' : (last('User') ?? 'root');
    const group = opts.asRoot ? 'root' : (last('Group') ?? user);
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      LANG: 'C.UTF-8',
    };
    const passwd = this.exec(['getent', 'passwd', user]).stdout.trim().split(':');
    if (passwd.length < 7) throw new Error(`${name}: User=${user} does not exist in the install root`);
    Object.assign(env, { USER: user, LOGNAME: user, HOME: passwd[5], SHELL: passwd[6] });

    const words = (k: string) => (s[k] ?? []).flatMap((v) => v.split(/\s+/).filter(Boolean));
    const stateDirs = words('StateDirectory').map((d) => `/var/lib/${d}`);
    const logsDirs = words('LogsDirectory').map((d) => `/var/log/${d}`);
    if (stateDirs.length) env.STATE_DIRECTORY = stateDirs.join(':');
    if (logsDirs.length) env.LOGS_DIRECTORY = logsDirs.join(':');
    for (const e of s.Environment ?? []) {
      for (const assignment of e.match(/"[^"]*"|\S+/g) ?? []) {
        const a = assignment.replace(/^"|"$/g, '');
        const eq = a.indexOf('=');
        env[a.slice(0, eq)] = this.specifiers(a.slice(eq + 1), name);
      }
    }
    for (const f of s.EnvironmentFile ?? []) {
      const optional = f.startsWith('-');
      const path = f.replace(/^-/, '');
      const r = this.exec(['cat', '--', path]);
      if (r.status !== 0) {
        if (optional) continue;
        throw new Error(`${name}: EnvironmentFile=${path} is missing`);
      }
      for (const line of r.stdout.split('\n')) {
        const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
        if (m) env[m[1]] = m[2].trim().replace(/^(['"])(.*)\1$/, '$2');
      }
    }
    const execStart = last('ExecStart');
    if (!execStart) throw new Error(`${name}: no ExecStart=`);
    const argv = execStart.split(/\s+/).flatMap((w) => {
      const braced = /^(.*)\$\{([A-Za-z_][A-Za-z0-9_]*)\}(.*)$/.exec(w);
      if (braced) return [`${braced[1]}${env[braced[2]] ?? ''}${braced[3]}`];
      const bare = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
      if (bare) return (env[bare[1]] ?? '').split(/\s+/).filter(Boolean);
      return [w];
    });

    const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
    const rw = [...(s.ReadWritePaths ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean), ...stateDirs, ...logsDirs];
    const lines = ['set -euo pipefail'];
    // StateDirectory=/LogsDirectory=: systemd creates them, owned by User=, before the sandbox.
    for (const d of stateDirs)
      lines.push(`install -d -m ${last('StateDirectoryMode') ?? '0755'} -o ${q(user)} -g ${q(group)} ${q(d)}`);
    for (const d of logsDirs)
      lines.push(`install -d -m ${last('LogsDirectoryMode') ?? '0755'} -o ${q(user)} -g ${q(group)} ${q(d)}`);
    for (const p of rw) {
      const optional = p.startsWith('-');
      const path = p.replace(/^-/, '');
      lines.push(
        optional
          ? `if [ -e ${q(path)} ]; then mount --bind ${q(path)} ${q(path)}; fi`
          : `mount --bind ${q(path)} ${q(path)}`,
      );
    }
    const keep = rw.map((p) => p.replace(/^-/, ''));
    if (last('ProtectSystem') === 'strict') {
      lines.push(
        `keep=(${keep.map(q).join(' ')})`,
        'findmnt -rn -o TARGET | while read -r mp; do',
        '  mp=$(printf "%b" "$mp")',
        '  case "$mp" in /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) continue ;; esac',
        // A mount of the host's under a folder the install root covers (e.g. /run/netns/* under the
        // fresh /run) is unreachable here: nothing to protect.
        '  [ -e "$mp" ] || continue',
        '  for k in "${keep[@]}"; do [ "$mp" = "$k" ] && continue 2; done',
        '  mount -o remount,bind,ro "$mp"',
        'done',
      );
    } else if (last('ProtectSystem')) {
      throw new Error(`${name}: only ProtectSystem=strict is emulated here`);
    }
    if (last('PrivateTmp') === 'yes') {
      lines.push('mount -t tmpfs -o mode=1777 tmpfs /tmp', 'mount -t tmpfs -o mode=1777 tmpfs /var/tmp');
    }
    if (last('ProtectHome') === 'yes') {
      lines.push('for h in /home /root /run/user; do [ -d "$h" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$h"; done');
    }
    lines.push(`cd ${q(last('WorkingDirectory') ?? '/')}`);
    if (last('UMask')) lines.push(`umask ${last('UMask')}`);
    const envArgs = Object.entries(env).map(([k, v]) => q(`${k}=${v}`));
    const drop = user === 'root' ? '' : `setpriv --reuid=${q(user)} --regid=${q(group)} --init-groups -- `;
    lines.push(`exec ${drop}env -i ${envArgs.join(' ')} ${argv.map(q).join(' ')}`);

    return this.spawn(name, ['unshare', '--mount', '--propagation', 'private', 'bash', '-c', lines.join('\n')], {
      PATH: process.env.PATH,
    });
  }

  /** The unit specifiers the shipped units use; anything else fails loudly rather than pass through. */
  private specifiers(value: string, unit: string): string {
    return value.replace(/%(.)/g, (_, c: string) => {
      if (c === '%') return '%';
      if (c === 'H') return this.hostname;
      if (c === 'l') return this.hostname.split('.')[0];
      throw new Error(`${unit}: specifier %${c} is not emulated here`);
    });
  }

  /** A folder of the test's own (outside the overlays; visible inside as the same path). */
  scratch(name: string): string {
    const p = join(this.dir, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /**
   * SIGKILL to every process in the root's network namespace: everything started here shares it,
   * including what a systemd user manager started in its own sessions (not in any group of ours).
   * Only while the holder is provably still our holder (same pid, same start time and network
   * namespace as recorded when it came up): a reused pid would name another namespace, maybe the
   * host's, and its every process. Never the namespace this process is in.
   */
  private sweep(): void {
    const h = this.identity;
    const pid = this.holder.child.pid;
    if (!h || pid === undefined || startTimeOf(pid) !== h.start || readNs(pid, 'net') !== h.net) return;
    if (h.net === readNs(process.pid, 'net')) return;
    for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      const other = Number(p);
      if (other === process.pid || readNs(other, 'net') !== h.net) continue;
      try {
        process.kill(other, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  killNow(): void {
    for (const p of this.processes) p.killGroup('SIGKILL');
    this.sweep();
    this.holder.killGroup('SIGKILL');
  }

  async stop(): Promise<void> {
    for (const p of [...this.processes].reverse()) await p.stop();
    this.sweep();
    await this.holder.stop(2_000);
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
