// Assembles the long-running parts on one machine: the embedded Temporal dev server, the control
// worker, the host worker and the API. `selfheal start` runs them all; `worker`, `api` and
// `dev-server` run one part each. Ctrl-C stops everything in order.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type LogLevel, type Worker } from '@temporalio/worker';
import { AuditLog } from './activities/audit';
import { watchAudit } from './activities/control';
import { startApiServer, type ApiServer } from './api/server';
import { ServiceActions } from './client/actions';
import { servicesOnHost, type Config } from './config/config';
import { resolveHost } from './config/names';

export { resolveHost };
import { createMetrics, type SelfhealMetrics } from './metrics/metrics';
import { serveMetrics } from './metrics/server';
import { SCRAPE_QUERY_TIMEOUT_MS, workflowStateSource } from './metrics/state-source';
import { breakerStatus } from './client/breaker';
import { clientConnectionOptions, nativeConnectionOptions, temporalAddress } from './temporal/connection';
import { DevServer } from './temporal/dev-server';
import { superviseDevServer, type SupervisedDevServer } from './temporal/supervisor';
import { ensureSearchAttributes } from './temporal/search-attributes';
import { createControlWorker, createFleetWorker, createHostWorker } from './worker/workers';
import { CONTROL_TASK_QUEUE, hostTaskQueue } from './workflows/definitions';

export interface RunOptions {
  config: Config;
  /** Host whose worker to run; null for none. */
  host: string | null;
  control: boolean;
  api: boolean;
  /** Start the embedded dev server (when temporal.address is `embedded`). */
  devServer: boolean;
  /** Generate and keep tokens under dataDir/secrets when the config has none (`selfheal start`). */
  generateTokens?: boolean;
  out?: (line: string) => void;
}

export interface Running {
  config: Config;
  devServer: DevServer | null;
  api: ApiServer | null;
  workers: Worker[];
  metrics: SelfhealMetrics;
  stop(): Promise<void>;
  /** Resolves when a worker stops on its own (fatal error) or stop() was called. */
  done: Promise<void>;
}

let runtimeInstalled = false;

function installRuntime(config: Config, withMetrics: boolean): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.SELFHEAL_LOG_LEVEL?.toUpperCase() ?? 'INFO') as LogLevel;
  const bind = withMetrics ? config.worker.temporalMetricsListen : null;
  Runtime.install({
    logger: new DefaultLogger(level),
    // selfheal stops its parts itself, in order.
    shutdownSignals: [],
    ...(bind ? { telemetryOptions: { metrics: { prometheus: { bindAddress: bind } } } } : {}),
  });
}

/** Reads the token from dataDir/secrets/<name>, creating a random one (0600) the first time. */
function persistentToken(dir: string, name: string): string {
  const file = join(dir, name);
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 16) return t;
  } catch {
    // first start
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return token;
}

export function withGeneratedTokens(config: Config): { config: Config; generated: string[] } {
  const dir = join(config.temporal.dataDir, 'secrets');
  const generated: string[] = [];
  const api = { ...config.api };
  if (!api.token) {
    api.token = persistentToken(dir, 'api-token');
    generated.push(join(dir, 'api-token'));
  }
  if (!api.adminToken) {
    api.adminToken = persistentToken(dir, 'admin-token');
    generated.push(join(dir, 'admin-token'));
  }
  return { config: { ...config, api }, generated };
}

async function connectNative(
  config: Config,
  out: (l: string) => void,
  deadlineMs = 120_000,
): Promise<NativeConnection> {
  const started = Date.now();
  let warned = false;
  for (;;) {
    try {
      return await NativeConnection.connect(nativeConnectionOptions(config));
    } catch (err) {
      if (Date.now() - started > deadlineMs) {
        throw new Error(`cannot reach Temporal at ${temporalAddress(config)}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (!warned) {
        out(`waiting for Temporal at ${temporalAddress(config)} (${(err as Error).message.split('\n')[0]})`);
        warned = true;
      }
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
}

const shortPath = (p: string) => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
};

export async function runSelfheal(opts: RunOptions): Promise<Running> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  let config = opts.config;
  let generated: string[] = [];
  if (opts.api && opts.generateTokens) ({ config, generated } = withGeneratedTokens(config));

  const needWorkers = opts.control || opts.host !== null;
  if (needWorkers) installRuntime(config, true);

  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        out(`while stopping: ${(err as Error).message}`);
      }
    }
  };

  try {
    const metrics = createMetrics();
    metrics.initServices(config);
    let devServer: DevServer | null = null;
    let supervised: SupervisedDevServer | null = null;
    if (opts.devServer && config.temporal.embedded) {
      out(`starting the embedded Temporal dev server (SQLite in ${shortPath(config.temporal.dataDir)}) ...`);
      const serverOpts = DevServer.optionsFor(config);
      devServer = await DevServer.start(serverOpts, out);
      const sv = (supervised = superviseDevServer(devServer, serverOpts, {
        out,
        onDown: () => metrics.temporalUp.set(0),
        onRestarted: () => metrics.embeddedTemporalRestarts.inc(),
      }));
      cleanups.push(() => sv.stop());
    }

    const audit = new AuditLog(config.audit.file);
    watchAudit(audit, metrics, (message, attrs) => out(`${message} ${JSON.stringify(attrs)}`));
    cleanups.push(async () => audit.close());

    const workers: Worker[] = [];
    let nativeConnection: NativeConnection | null = null;
    if (needWorkers) {
      const native = (nativeConnection = await connectNative(config, out));
      cleanups.push(() => native.close());
      if (opts.control && config.temporal.searchAttributes) {
        const conn = await Connection.connect(clientConnectionOptions(config));
        try {
          const added = await ensureSearchAttributes(conn, config.temporal.namespace);
          if (added.length) out(`registered search attributes: ${added.join(', ')}`);
        } finally {
          await conn.close();
        }
      }
      if (opts.control) {
        workers.push(await createControlWorker({ config, connection: native, metrics, audit }));
        workers.push(await createFleetWorker({ config, connection: native, metrics, audit }));
      }
      if (opts.host !== null) workers.push(await createHostWorker({ config, connection: native, host: opts.host }));
    }
    const runs = workers.map((w) => w.run());
    cleanups.push(async () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(runs);
    });

    let metricsUrl: string | null = null;
    if (opts.control && !opts.api && config.worker.metricsListen) {
      // Without the API in this process nothing else sets selfhealing_temporal_up: ask Temporal at scrape time.
      const probe = nativeConnection;
      if (probe) {
        metrics.setTemporalProbe(() =>
          probe.withDeadline(Date.now() + 5_000, () => probe.workflowService.getSystemInfo({})),
        );
      }
      const served = await serveMetrics(metrics.registry, config.worker.metricsListen);
      metricsUrl = served.url;
      cleanups.push(() => served.close());
    }

    let api: ApiServer | null = null;
    let client: Client | null = null;
    if (opts.api) {
      const connection = Connection.lazy(clientConnectionOptions(config));
      // Closed last: a webhook whose sender hung up may still be signalling while the API closes.
      cleanups.unshift(() => connection.close());
      client = new Client({ connection, namespace: config.temporal.namespace });
      const actions = new ServiceActions(client, config, config.api.temporalTimeoutMs);
      metrics.setStateSource(workflowStateSource(actions, config));
      const fleetClient = client;
      metrics.setFleetSource(() => breakerStatus(fleetClient, SCRAPE_QUERY_TIMEOUT_MS));
      api = await startApiServer({ config, client, metrics, actions, audit });
      const server = api;
      cleanups.push(() => server.close());
    }

    // Banner
    const lines = ['', 'selfheal is running'];
    if (api) {
      lines.push(`  API            ${api.url}  (Alertmanager webhook: POST ${api.url}/selfheal/trigger)`);
      lines.push(`  Metrics        ${api.url}/metrics   health: ${api.url}/healthz, ${api.url}/readyz`);
    }
    const ui = devServer?.uiUrl ?? config.temporal.uiUrl;
    if (ui) lines.push(`  Temporal UI    ${ui}/namespaces/${config.temporal.namespace}/workflows`);
    lines.push(
      `  Temporal       ${temporalAddress(config)}${devServer ? ` (embedded dev server, state in ${shortPath(devServer.dbFile ?? '')})` : ''}, namespace ${config.temporal.namespace}`,
    );
    lines.push(`  Data folder    ${shortPath(config.temporal.dataDir)}   audit log: ${shortPath(config.audit.file)}`);
    if (opts.control)
      lines.push(`  Control worker queue ${CONTROL_TASK_QUEUE}${metricsUrl ? `, metrics ${metricsUrl}` : ''}`);
    if (opts.host !== null) {
      const mine = servicesOnHost(config, opts.host);
      lines.push(`  Host worker    ${opts.host}: ${mine.length} service(s), queue ${hostTaskQueue(opts.host)}`);
      if (mine.length === 0) {
        const hosts = [...new Set(config.services.map((s) => s.host))].join(', ');
        lines.push(
          `  WARNING        no configured service runs on host "${opts.host}" (configured hosts: ${hosts}); use --host`,
        );
      }
    }
    if (needWorkers && config.worker.temporalMetricsListen) {
      lines.push(`  Worker metrics http://${config.worker.temporalMetricsListen}/metrics (Temporal SDK)`);
    }
    if (generated.length) lines.push(`  Tokens         generated, kept in ${generated.map(shortPath).join(' and ')}`);
    lines.push('Press Ctrl-C to stop.', '');
    out(lines.join('\n'));

    // A worker that stops on its own (fatal error) ends the process too.
    const done = Promise.race([
      ...(runs.length ? runs.map((r) => r.then(() => undefined)) : [new Promise<void>(() => undefined)]),
      ...(supervised ? [supervised.failed] : []),
    ]);
    let stopped: Promise<void> | null = null;
    return { config, devServer, api, workers, metrics, stop: () => (stopped ??= stopAll()), done };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
