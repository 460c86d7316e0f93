// Temporal servers and workers for tests: the real time-skipping test server and the real dev
// server, both from the binaries `npm run setup` installed (the SDK download is the fallback).
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment, TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { AuditLog } from '../../src/activities/audit';
import type { ManagerFactory } from '../../src/activities/service-manager';
import type { Config } from '../../src/config/config';
import type { SelfhealMetrics } from '../../src/metrics/metrics';
import { temporalCliPath, testServerPath } from '../../src/temporal/binaries';
import { ensureSearchAttributes } from '../../src/temporal/search-attributes';
import { createControlWorker, createFleetWorker, createHostWorker } from '../../src/worker/workers';
import { SA_FAILURES, SA_HOST, SA_PHASE, SA_SERVICE, SA_STATUS } from '../../src/workflows/definitions';

try {
  Runtime.install({ logger: new DefaultLogger(process.env.SELFHEAL_TEST_LOG === '1' ? 'INFO' : 'ERROR') });
} catch {
  // already installed in this process
}

export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const path = testServerPath();
  const env = await TestWorkflowEnvironment.createTimeSkipping(
    path ? { server: { executable: { type: 'existing-path', path } } } : {},
  );
  // The test server has no start option for custom search attributes: add them through its operator service.
  await ensureSearchAttributes(env.connection, 'default');
  return env;
}

export async function devServerEnv(): Promise<TestWorkflowEnvironment> {
  const path = temporalCliPath();
  return TestWorkflowEnvironment.createLocal({
    server: {
      ...(path ? { executable: { type: 'existing-path' as const, path } } : {}),
      searchAttributes: [SA_SERVICE, SA_HOST, SA_PHASE, SA_STATUS, SA_FAILURES],
      extraArgs: ['--sqlite-pragma', 'journal_mode=WAL'],
    },
  });
}

let bundlePromise: Promise<WorkflowBundleWithSourceMap> | null = null;

/** The workflow bundle, built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundlePromise ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    logger: new DefaultLogger('WARN'),
  });
  return bundlePromise;
}

export interface RunningWorkers {
  workers: Worker[];
  shutdown(): Promise<void>;
}

/** A control worker plus one host worker per host, running until shutdown(). */
export async function startWorkers(
  env: Pick<TestWorkflowEnvironment, 'nativeConnection'>,
  config: Config,
  opts: {
    hosts: string[];
    managers?: ManagerFactory;
    metrics?: SelfhealMetrics;
    pollIntervalMs?: number;
    /** Run the fleet coordinator's worker (default); false: the coordinator cannot be consulted. */
    fleet?: boolean;
  },
): Promise<RunningWorkers> {
  const bundle = await workflowBundle();
  const control = await createControlWorker({
    config,
    connection: env.nativeConnection,
    metrics: opts.metrics,
    audit: new AuditLog(config.audit.file),
    workflows: { workflowBundle: bundle },
  });
  const fleet =
    opts.fleet === false
      ? []
      : [
          await createFleetWorker({
            config,
            connection: env.nativeConnection,
            metrics: opts.metrics,
            audit: new AuditLog(config.audit.file),
            workflows: { workflowBundle: bundle },
          }),
        ];
  const hosts = await Promise.all(
    opts.hosts.map((host) =>
      createHostWorker({
        config,
        connection: env.nativeConnection,
        host,
        managers: opts.managers,
        pollIntervalMs: opts.pollIntervalMs ?? 50,
      }),
    ),
  );
  const workers = [control, ...fleet, ...hosts];
  const runs = workers.map((w) => w.run());
  return {
    workers,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(runs);
    },
  };
}

/** An activity context for calling activity functions directly, with a quiet logger. */
export function mockActivityEnv(info: Partial<Info> = {}): MockActivityEnvironment {
  return new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
}

/** MockActivityEnvironment.run with the result type kept. */
export function runActivity<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run(fn, ...args) as Promise<R>;
}
