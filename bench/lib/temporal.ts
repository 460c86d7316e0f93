// The real Temporal pieces for the benches: the product's own embedded dev server (DevServer.start:
// SQLite file with WAL, history cache sized for the fleet, search attributes), a client, and the
// control and host workers (the product's createControlWorker/createHostWorker, with the in-memory
// FakeManager instead of systemd).
import { rmSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { AuditLog } from '../../src/activities/audit';
import type { Config } from '../../src/config/config';
import type { SelfhealMetrics } from '../../src/metrics/metrics';
import { DevServer } from '../../src/temporal/dev-server';
import { createControlWorker, createFleetWorker, createHostWorker } from '../../src/worker/workers';
import { FakeManager } from '../../test/helpers/fake-manager';
import { workflowBundle } from '../../test/helpers/temporal';
import { tempDir } from './fixtures';
import { freePort } from '../../test/helpers/ports';

export interface BenchTemporal {
  server: DevServer;
  address: string;
  dataDir: string;
  client: Client;
  native: NativeConnection;
  /** Seconds from spawning the dev server until it answered. */
  startSeconds: number;
  close(): Promise<void>;
}

/** Dev servers this process started: killed on exit, so an aborted bench leaves nothing running. */
const running = new Set<number>();
process.on('exit', () => {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Starts a fresh dev server on free loopback ports with a temporary SQLite file. */
export async function startDevServer(services: number): Promise<BenchTemporal> {
  const dataDir = tempDir('selfheal-bench-temporal-');
  const port = await freePort();
  const t0 = performance.now();
  const server = await DevServer.start({
    dataDir,
    port,
    uiPort: await freePort(),
    namespace: 'default',
    headless: true,
    services,
    searchAttributes: true,
    readyTimeoutMs: 90_000,
  });
  const startSeconds = (performance.now() - t0) / 1000;
  const pid = server.pid;
  if (pid) running.add(pid);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: 'default' });
  const native = await NativeConnection.connect({ address: server.address });
  return {
    server,
    address: server.address,
    dataDir,
    client,
    native,
    startSeconds,
    async close() {
      await connection.close().catch(() => undefined);
      await native.close().catch(() => undefined);
      await server.stop();
      if (pid) running.delete(pid);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface BenchWorkers {
  workers: Worker[];
  fake: FakeManager;
  maxCachedWorkflows: number;
  shutdown(): Promise<void>;
}

/** The control worker plus one host worker per host, all in this process, like `selfheal start`. */
export async function startBenchWorkers(
  t: { native: NativeConnection },
  config: Config,
  hosts: readonly string[],
  metrics?: SelfhealMetrics,
): Promise<BenchWorkers> {
  const fake = new FakeManager();
  const bundle = await workflowBundle();
  const control = await createControlWorker({
    config,
    connection: t.native,
    metrics,
    audit: new AuditLog(config.audit.file),
    workflows: { workflowBundle: bundle },
  });
  const fleet = await createFleetWorker({
    config,
    connection: t.native,
    metrics,
    audit: new AuditLog(config.audit.file),
    workflows: { workflowBundle: bundle },
  });
  const hostWorkers = await Promise.all(
    hosts.map((host) =>
      createHostWorker({ config, connection: t.native, host, managers: () => fake, pollIntervalMs: 50 }),
    ),
  );
  const workers = [control, fleet, ...hostWorkers];
  const runs = workers.map((w) => w.run());
  return {
    workers,
    fake,
    maxCachedWorkflows: control.options.maxCachedWorkflows,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(runs);
    },
  };
}
