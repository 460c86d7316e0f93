// The kinds of worker: the control worker (entity workflows + control activities, queue
// selfheal-control), beside it the fleet coordinator's worker (queue selfheal-fleet), and the host
// worker (restart/verify activities, queue selfheal-host-<host>).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { AuditLog } from '../activities/audit';
import { createControlActivities } from '../activities/control';
import { createHostActivities } from '../activities/host';
import type { ManagerFactory } from '../activities/service-manager';
import type { PrometheusClient } from '../activities/prometheus';
import type { Config } from '../config/config';
import type { SelfhealMetrics } from '../metrics/metrics';
import { projectRoot } from '../temporal/binaries';
import { CONTROL_TASK_QUEUE, hostTaskQueue } from '../workflows/definitions';
import { FLEET_TASK_QUEUE } from '../workflows/fleet-definitions';

/** Built by `npm run build`: workflow code is bundled once, not at every worker start. */
export function prebuiltBundlePath(): string {
  return join(projectRoot(), 'dist', 'workflow-bundle.js');
}

export function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  // Running from the TypeScript sources: never pick up a bundle built from older code.
  const fromSource = __filename.endsWith('.ts') || !!process.env.SELFHEAL_FROM_SOURCE;
  const bundle = process.env.SELFHEAL_WORKFLOW_BUNDLE ?? (fromSource ? null : prebuiltBundlePath());
  if (bundle && existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  // Development fallback (e.g. running from source with tsx): bundle at start.
  return { workflowsPath: require.resolve('../workflows') };
}

export interface ControlWorkerDeps {
  config: Config;
  connection: NativeConnection;
  metrics?: SelfhealMetrics;
  audit?: AuditLog;
  prometheus?: PrometheusClient | null;
  workflows?: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;
  identity?: string;
}

export function createControlWorker(deps: ControlWorkerDeps): Promise<Worker> {
  return controlQueueWorker(CONTROL_TASK_QUEUE, deps, {
    ...(deps.identity ? { identity: deps.identity } : {}),
    ...workflowCache(deps.config.worker.maxCachedWorkflows),
  });
}

/**
 * The fleet coordinator's worker: the same workflow code and control activities on the coordinator's
 * own queue, in the control process, so its tasks never queue behind entity workflow tasks.
 */
export function createFleetWorker(deps: ControlWorkerDeps): Promise<Worker> {
  return controlQueueWorker(FLEET_TASK_QUEUE, deps, deps.identity ? { identity: `${deps.identity}-fleet` } : {});
}

/** Workflow code and control activities on one of the control process's queues. */
function controlQueueWorker(
  taskQueue: string,
  deps: ControlWorkerDeps,
  extra: Partial<WorkerOptions>,
): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.config.temporal.namespace,
    taskQueue,
    ...(deps.workflows ?? workflowSource()),
    activities: createControlActivities({
      config: deps.config,
      metrics: deps.metrics,
      audit: deps.audit ?? new AuditLog(deps.config.audit.file),
      prometheus: deps.prometheus,
    }),
    ...extra,
  });
}

/**
 * The cache bound, and task slots within it: the SDK refuses more slots than cached workflows, and a
 * cache needs two pollers (sticky and normal), so a cache of one is raised to two.
 */
function workflowCache(max: number): Pick<WorkerOptions, 'maxCachedWorkflows' | 'maxConcurrentWorkflowTaskExecutions'> {
  if (max <= 0 || max >= 40) return { maxCachedWorkflows: max };
  const n = Math.max(2, max);
  return { maxCachedWorkflows: n, maxConcurrentWorkflowTaskExecutions: n };
}

export interface HostWorkerDeps {
  config: Config;
  connection: NativeConnection;
  host: string;
  managers?: ManagerFactory;
  identity?: string;
  pollIntervalMs?: number;
}

export function createHostWorker(deps: HostWorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: hostTaskQueue(deps.host),
    activities: createHostActivities({
      config: deps.config,
      host: deps.host,
      managers: deps.managers,
      pollIntervalMs: deps.pollIntervalMs,
    }),
    ...(deps.identity ? { identity: deps.identity } : {}),
    // A host runs few restarts at once; never let a burst fork dozens of systemctl processes.
    maxConcurrentActivityTaskExecutions: 8,
  });
}
