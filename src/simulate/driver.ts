// Drives a recorded alert history through the product's own entity workflow on Temporal's
// time-skipping test server (its own process and namespace: never the live cluster). The worker
// runs the production workflow code; its activities are the simulated host and control activities
// (host.ts). Results are read from the workflows' own audit records, in recorded time.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
  Worker,
  type WorkerOptions,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { AuditRecord } from '../activities';
import { deliverPlan, type PlannedSignal } from '../client/alert-intake';
import type { Config } from '../config/config';
import { testServerPath } from '../temporal/binaries';
import { workflowSource } from '../worker/workers';
import { CONTROL_TASK_QUEUE, hostTaskQueue } from '../workflows/definitions';
import { planHistory, type AlertHistory, type PlannedHistory } from './history';
import { HostModel, simulatedControlActivities, simulatedHostActivities, type RecoveryModel } from './host';

/** Simulated time after the last recorded event, so open waits (cooldown, budget) play out. */
export const DEFAULT_TAIL_MS = 2 * 3_600_000;

export interface SimulateOptions {
  config: Config;
  history: AlertHistory;
  recovery?: RecoveryModel;
  /** End of the simulated range (recorded time); default: the last event plus `tailMs`. */
  to?: number;
  tailMs?: number;
  /** The workflow code to run; default: what production runs (workflowSource()). */
  workflows?: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;
  /** Called as simulated time advances: done and total simulated milliseconds. */
  onProgress?: (doneMs: number, totalMs: number) => void;
}

export interface SimulationResult {
  config: Config;
  recovery: RecoveryModel;
  planned: PlannedHistory;
  /** Every audit record the workflows wrote, with `time` in recorded time. */
  records: AuditRecord[];
  from: number;
  to: number;
  wallMs: number;
}

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    const level = process.env.SELFHEAL_SIMULATE_LOG === '1' ? 'INFO' : 'ERROR';
    // Core's own logs too: the test server lacks features a live cluster has, and says so at WARN.
    Runtime.install({
      logger: new DefaultLogger(level),
      telemetryOptions: { logging: { filter: { core: level, other: level }, forward: {} } },
    });
  } catch {
    // already installed in this process (tests)
  }
}

/** Production's workflow code, bundled once per process when it is not prebuilt. */
let bundle: Promise<WorkflowBundleWithSourceMap> | null = null;
export async function productionWorkflows(): Promise<Pick<WorkerOptions, 'workflowBundle'>> {
  const src = workflowSource();
  if (src.workflowBundle) return { workflowBundle: src.workflowBundle };
  bundle ??= bundleWorkflowCode({ workflowsPath: src.workflowsPath!, logger: new DefaultLogger('WARN') });
  return { workflowBundle: await bundle };
}

export async function startTestServer(): Promise<TestWorkflowEnvironment> {
  const path = testServerPath();
  return TestWorkflowEnvironment.createTimeSkipping(
    path ? { server: { executable: { type: 'existing-path', path } } } : {},
  );
}

export async function simulate(opts: SimulateOptions): Promise<SimulationResult> {
  quietRuntime();
  const started = performance.now();
  const recovery = opts.recovery ?? 'restart-fixes';
  // The simulation's own copy: no search attributes on the test server; nothing else changes.
  const config: Config = { ...opts.config, temporal: { ...opts.config.temporal, searchAttributes: false } };
  const planned = planHistory(config, opts.history);
  const from = planned.from;
  const to = opts.to ?? planned.to + (opts.tailMs ?? DEFAULT_TAIL_MS);
  const result: SimulationResult = { config: opts.config, recovery, planned, records: [], from, to, wallMs: 0 };
  if (planned.services.size === 0) return { ...result, wallMs: performance.now() - started };

  const workflows = opts.workflows ?? (await productionWorkflows());
  const env = await startTestServer();
  const model = new HostModel(recovery, planned.down);
  const records: AuditRecord[] = [];
  const workers: Worker[] = [];
  const runs: Promise<void>[] = [];
  let offset = 0;
  try {
    const namespace = env.namespace ?? 'default';
    workers.push(
      await Worker.create({
        connection: env.nativeConnection,
        namespace,
        taskQueue: CONTROL_TASK_QUEUE,
        ...workflows,
        activities: simulatedControlActivities(config, model, { audit: records }),
      }),
    );
    const hosts = new Set([...planned.services.values()].map((s) => s.host));
    for (const host of hosts) {
      workers.push(
        await Worker.create({
          connection: env.nativeConnection,
          namespace,
          taskQueue: hostTaskQueue(host),
          activities: simulatedHostActivities(config, model),
        }),
      );
    }
    for (const w of workers) runs.push(w.run());

    // Simulation clock = recorded clock + offset; start a second before the first event.
    offset = (await env.currentTimeMs()) + 1_000 - from;
    model.setOffset(offset);
    const advanceTo = async (recorded: number) => {
      const now = await env.currentTimeMs();
      const target = recorded + offset;
      if (target > now) await env.sleep(target - now);
    };
    for (let i = 0; i < planned.deliveries.length;) {
      const at = planned.deliveries[i].at;
      await advanceTo(at);
      const signals: PlannedSignal[] = [];
      for (; i < planned.deliveries.length && planned.deliveries[i].at === at; i++) {
        for (const s of planned.deliveries[i].plan.signals) {
          // restart-fixes: a repeated notification of an outage a simulated restart fixed is not news.
          if (s.status === 'firing' && model.alreadyFixed(s.workflowId, at)) continue;
          signals.push(s);
        }
      }
      if (signals.length) await deliverPlan(env.client, config, signals);
      opts.onProgress?.(at - from, to - from);
    }
    await advanceTo(to);
    opts.onProgress?.(to - from, to - from);
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
    await env.teardown();
  }
  result.records = records
    .map((r) => ({ ...r, time: new Date(Date.parse(r.time) - offset).toISOString() }))
    .sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  result.wallMs = performance.now() - started;
  return result;
}
