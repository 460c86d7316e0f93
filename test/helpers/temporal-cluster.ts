// A real Temporal cluster for tests (DESIGN.md, "Test environment"): the Temporal server built from
// source by scripts/cluster.mjs, on a private PostgreSQL (initdb + pg_ctl on a temp folder and a
// free port, run as the `postgres` user), its schema set up with the server's own SQL tool, the
// server started from the module's config/development-postgres12.yaml with every port changed to a
// free one, the `default` namespace created with the Temporal CLI and selfheal's search attributes
// registered the way the product does (ensureSearchAttributes).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { projectRoot, temporalCliPath } from '../../src/temporal/binaries';
import { ensureSearchAttributes } from '../../src/temporal/search-attributes';
import { freePortsBelow } from './ports';
import { waitFor } from './wait';

const run = promisify(execFile);
const SERVER_DIR = join(projectRoot(), '.tools', 'temporal-server');
const SERVER_BIN = join(SERVER_DIR, 'bin', 'server');
const SQL_BIN = join(SERVER_DIR, 'bin', 'sql');
const PG_BASE = '/usr/lib/postgresql';

/** Why the cluster cannot run here (for a skip message), or null when it can. */
export function clusterUnavailable(): string | null {
  if (!existsSync(SERVER_BIN) || !existsSync(SQL_BIN)) {
    return 'the Temporal server is not built: run `node scripts/setup.mjs --cluster` (or `npm run test:cluster`)';
  }
  if (!pgBin()) return 'PostgreSQL is not installed (apt-get install postgresql)';
  return null;
}

function pgBin(): string | null {
  for (const v of ['17', '16', '15']) if (existsSync(join(PG_BASE, v, 'bin', 'pg_ctl'))) return join(PG_BASE, v, 'bin');
  return null;
}

function tail(file: string, n = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Runs a command as the postgres user (initdb and the server refuse root). */
const asPostgres = (cmd: string, args: string[]) => run('runuser', ['-u', 'postgres', '--', cmd, ...args]);

export class TemporalCluster {
  private server: ChildProcess | null = null;
  private constructor(
    readonly dir: string,
    readonly pgPort: number,
    readonly frontendPort: number,
    private readonly ports: number[],
  ) {}

  /** host:port of the frontend, for temporal.address. */
  get address(): string {
    return `127.0.0.1:${this.frontendPort}`;
  }

  get serverLog(): string {
    return join(this.dir, 'server.log');
  }

  static async start(opts: { namespace?: string } = {}): Promise<TemporalCluster> {
    const why = clusterUnavailable();
    if (why) throw new Error(why);
    const dir = mkdtempSync(join(tmpdir(), 'selfheal-cluster-'));
    chownSync(dir, Number((await run('id', ['-u', 'postgres'])).stdout), 0);
    const ports = await freePortsBelow(12);
    const cluster = new TemporalCluster(dir, ports[0], ports[1], ports);
    try {
      await cluster.startPostgres();
      await cluster.setupSchema();
      await cluster.startServer();
      await cluster.createNamespace(opts.namespace ?? 'default');
    } catch (err) {
      const logs = `\n--- server.log ---\n${tail(cluster.serverLog)}\n--- postgres.log ---\n${tail(join(dir, 'postgres.log'))}`;
      await cluster.stop();
      throw new Error(`${(err as Error).message}${logs}`, { cause: err });
    }
    return cluster;
  }

  private async startPostgres(): Promise<void> {
    const bin = pgBin()!;
    const data = join(this.dir, 'pgdata');
    // Trust on a private loopback port: the SQL tool and the server still send user and password.
    await asPostgres(join(bin, 'initdb'), ['-D', data, '-U', 'temporal', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const options = `-c listen_addresses=127.0.0.1 -p ${this.pgPort} -c unix_socket_directories=${this.dir} -c fsync=off -c max_connections=200`;
    await asPostgres(join(bin, 'pg_ctl'), [
      '-D',
      data,
      '-l',
      join(this.dir, 'postgres.log'),
      '-o',
      options,
      '-w',
      '-t',
      '60',
      'start',
    ]);
  }

  private async sql(db: string, ...args: string[]): Promise<void> {
    const conn = ['--plugin', 'postgres12', '--endpoint', '127.0.0.1', '--port', String(this.pgPort)];
    await run(SQL_BIN, [...conn, '--user', 'temporal', '--password', 'temporal', '--database', db, ...args], {
      timeout: 120_000,
    });
  }

  private async setupSchema(): Promise<void> {
    const schema = join(SERVER_DIR, 'schema', 'postgresql', 'v12');
    for (const [db, folder] of [
      ['temporal', 'temporal'],
      ['temporal_visibility', 'visibility'],
    ]) {
      await this.sql(db, 'create-database');
      await this.sql(db, 'setup-schema', '-v', '0.0');
      await this.sql(db, 'update-schema', '-d', join(schema, folder, 'versioned'));
    }
  }

  /** The module's development-postgres12.yaml with this cluster's ports and files. */
  private serverConfig(): string {
    const c = parse(readFileSync(join(SERVER_DIR, 'config', 'development-postgres12.yaml'), 'utf8'));
    const [
      ,
      frontend,
      frontendMembership,
      http,
      matching,
      matchingM,
      history,
      historyM,
      worker,
      workerM,
      pprof,
      metrics,
    ] = this.ports;
    for (const ds of Object.values(c.persistence.datastores) as { sql: { connectAddr: string } }[]) {
      ds.sql.connectAddr = `127.0.0.1:${this.pgPort}`;
    }
    c.global.pprof.port = pprof;
    c.global.metrics.prometheus.listenAddress = `127.0.0.1:${metrics}`;
    const rpc = (grpcPort: number, membershipPort: number) => ({ grpcPort, membershipPort, bindOnLocalHost: true });
    c.services.frontend.rpc = { ...rpc(frontend, frontendMembership), httpPort: http };
    c.services.matching.rpc = rpc(matching, matchingM);
    c.services.history.rpc = rpc(history, historyM);
    c.services.worker.rpc = rpc(worker, workerM);
    c.clusterMetadata.clusterInformation.active.rpcAddress = `127.0.0.1:${frontend}`;
    const dynamic = join(this.dir, 'dynamicconfig.yaml');
    writeFileSync(dynamic, readFileSync(join(SERVER_DIR, 'config', 'dynamicconfig', 'development-sql.yaml')));
    c.dynamicConfigClient = { filepath: dynamic, pollInterval: '10s' };
    const file = join(this.dir, 'server.yaml');
    writeFileSync(file, stringify(c));
    return file;
  }

  private async startServer(): Promise<void> {
    const file = this.serverConfig();
    const log = createWriteStream(this.serverLog);
    const server = spawn(SERVER_BIN, ['--config-file', file, '--allow-no-auth', 'start'], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    server.stdout?.pipe(log);
    server.stderr?.pipe(log);
    this.server = server;
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`the Temporal server exited (${server.exitCode})`);
      try {
        const conn = await Connection.connect({ address: this.address, connectTimeout: '2s' });
        try {
          await conn.workflowService.getSystemInfo({});
          return;
        } finally {
          await conn.close();
        }
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`the Temporal server on ${this.address} did not answer: ${String(err)}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  private async createNamespace(namespace: string): Promise<void> {
    const cli = temporalCliPath() ?? 'temporal';
    await run(cli, ['operator', 'namespace', 'create', '--namespace', namespace, '--address', this.address]);
    // The frontend learns new namespaces from its cache (refreshed every few seconds): retry until it does.
    const conn = await Connection.connect({ address: this.address });
    try {
      await waitFor(async () => (await ensureSearchAttributes(conn, namespace), true), {
        what: `search attributes in namespace ${namespace}`,
        timeoutMs: 60_000,
        intervalMs: 1_000,
      });
      await waitFor(
        async () => {
          const r = await conn.operatorService.listSearchAttributes({ namespace });
          return Object.keys(r.customAttributes ?? {}).includes('SelfhealService');
        },
        { what: 'search attributes visible', timeoutMs: 30_000, intervalMs: 500 },
      );
    } finally {
      await conn.close();
    }
  }

  /** Resident memory of the server process, in bytes (for the benchmark). */
  rssBytes(): number {
    const pid = this.server?.pid;
    if (!pid) return 0;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }

  /** The PostgreSQL postmaster's pid (its backends are its children), for the benchmark. */
  postgresPid(): number | null {
    try {
      return Number(readFileSync(join(this.dir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
    } catch {
      return null;
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    const bin = pgBin();
    const data = join(this.dir, 'pgdata');
    if (bin && existsSync(join(data, 'postmaster.pid'))) {
      await asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']).catch(() => {});
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
