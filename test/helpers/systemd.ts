// A private systemd user manager for real restart tests (DESIGN.md, "Test environment"): in a
// private mount namespace, a tmpfs on /run/systemd with /run/systemd/system, a fresh 0700
// XDG_RUNTIME_DIR, and `systemd --user`. `systemctl --user` with the same XDG_RUNTIME_DIR drives it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface UnitState {
  ActiveState: string;
  SubState: string;
  MainPID: number;
  InvocationID: string;
  NRestarts: number;
}

export class UserSystemd {
  private constructor(
    private readonly child: ChildProcess,
    readonly dir: string,
    readonly runtimeDir: string,
    readonly configHome: string,
  ) {}

  /** Environment for processes that should talk to this manager with `systemctl --user`. */
  get env(): Record<string, string> {
    return { XDG_RUNTIME_DIR: this.runtimeDir };
  }

  get unitDir(): string {
    return join(this.configHome, 'systemd', 'user');
  }

  /** `hostname`: run the manager in its own UTS namespace with this host name (specifiers %H, %l). */
  static async start(opts: { hostname?: string } = {}): Promise<UserSystemd> {
    const dir = mkdtempSync(join(tmpdir(), 'selfheal-systemd-'));
    const runtimeDir = join(dir, 'run');
    const configHome = join(dir, 'config');
    mkdirSync(runtimeDir);
    chmodSync(runtimeDir, 0o700);
    mkdirSync(join(configHome, 'systemd', 'user'), { recursive: true });
    const script =
      (opts.hostname ? 'hostname "$SELFHEAL_TEST_HOSTNAME" && ' : '') +
      'mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec /lib/systemd/systemd --user';
    const ns = ['--mount', ...(opts.hostname ? ['--uts'] : []), '--propagation', 'private'];
    const child = spawn('unshare', [...ns, 'sh', '-c', script], {
      env: {
        ...process.env,
        XDG_RUNTIME_DIR: runtimeDir,
        XDG_CONFIG_HOME: configHome,
        SELFHEAL_TEST_HOSTNAME: opts.hostname ?? '',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const mgr = new UserSystemd(child, dir, runtimeDir, configHome);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`systemd --user exited (${child.exitCode}): ${stderr}`);
      if (existsSync(join(runtimeDir, 'systemd', 'private'))) {
        try {
          await mgr.systemctl('show', '--property=Version');
          break;
        } catch {
          // not answering yet
        }
      }
      if (Date.now() > deadline) throw new Error(`systemd --user did not come up: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return mgr;
  }

  async systemctl(...args: string[]): Promise<string> {
    const { stdout } = await run('systemctl', ['--user', ...args], {
      env: { ...process.env, XDG_RUNTIME_DIR: this.runtimeDir },
    });
    return stdout;
  }

  /** Writes a unit file and reloads the manager. */
  /**
   * Every private manager puts its units in the same cgroup (/app.slice/<unit>), and stopping a unit
   * kills every process in its cgroup: two managers running a unit of the same name (two test runs
   * at once on one machine) would stop each other's processes. A slice of its own keeps them apart.
   */
  readonly slice = `selfheal${randomBytes(6).toString('hex')}.slice`;

  async addUnit(name: string, content: string): Promise<void> {
    writeFileSync(join(this.unitDir, name), content);
    mkdirSync(join(this.unitDir, `${name}.d`), { recursive: true });
    writeFileSync(join(this.unitDir, `${name}.d`, 'slice.conf'), `[Service]\nSlice=${this.slice}\n`);
    await this.systemctl('daemon-reload');
  }

  async show(unit: string): Promise<UnitState> {
    const out = await this.systemctl(
      'show',
      '--property=ActiveState,SubState,MainPID,InvocationID,NRestarts',
      '--',
      unit,
    );
    const p = Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    return {
      ActiveState: p.ActiveState,
      SubState: p.SubState,
      MainPID: Number(p.MainPID),
      InvocationID: p.InvocationID,
      NRestarts: Number(p.NRestarts),
    };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      // systemd --user stops its units on SIGTERM, then exits.
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
