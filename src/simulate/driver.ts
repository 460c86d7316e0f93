// Drives a recorded alert history through the product's own entity workflow on Temporal's
// time-skipping test server (its own process and namespace: never the live cluster). The worker
// runs the production workflow code; its activities are the simulated host and control activities
// (host.ts). Results are read from the workflows' own audit records, in recorded time.
import { availableParallelism } from 'node:os';
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
import { runShardProcess } from './shard-process';
import { deliverPlan, type PlannedSignal } from '../client/alert-intake';
import type { Config } from '../config/config';
import { testServerPath } from '../temporal/binaries';
import { workflowSource } from '../worker/workers';
import { CONTROL_TASK_QUEUE, hostTaskQueue } from '../workflows/definitions';
import { FLEET_TASK_QUEUE } from '../workflows/fleet-definitions';
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
  /** Independent test servers to spread the services over (default: defaultShards()). */
  shards?: number;
  /**
   * Run each shard in a child process, so every core works (off by default: one bench run hung with it
   * and was not yet explained; in-process shards already overlap the server round trips).
   */
  processes?: boolean;
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
export function quietRuntime(): void {
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
  // Without fleet safety services never interact, so they are simulated in independent shards, each on its own test
  // server and clock: a shard waits only for its own services' timers and activities.
  // A small history is quicker in one shard in this process than to start more.
  // Fleet safety (breaker, restart slots, dependencies) couples the services: then one shard, so the
  // coordinator sees the whole fleet, unless the caller asks for shards (faster, breaker per shard).
  const coupled = config.fleet.breaker.enabled || config.services.some((s) => (s.dependsOn ?? []).length > 0);
  const wanted =
    opts.shards ??
    (coupled ? 1 : Math.min(defaultShards(), Math.ceil(planned.deliveries.length / DELIVERIES_PER_SHARD)));
  const shards = partition([...planned.services.keys()], planned, wanted);
  const progress = new Map<number, number>();
  const report = (shard: number, done: number) => {
    progress.set(shard, done);
    opts.onProgress?.(Math.min(...shards.map((_, i) => progress.get(i) ?? 0)), to - from);
  };
  const run = shards.length > 1 && opts.processes === true ? runShardProcess : runShard;
  const parts = await Promise.all(
    shards.map((ids, i) =>
      run({ config, planned, ids: new Set(ids), recovery, workflows, from, to, onProgress: (d) => report(i, d) }),
    ),
  );
  result.records = parts.flat().sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  result.wallMs = performance.now() - started;
  return result;
}

/** Deliveries below which another shard is not worth its start-up (a process, a test server). */
export const DELIVERIES_PER_SHARD = 200;

/** Shards by default: enough to overlap the round trips of a 2-core machine, few enough for its memory. */
export function defaultShards(): number {
  return Math.max(2, Math.min(8, availableParallelism() * 2));
}

/** Splits services into at most `n` shards of about equal work (deliveries), heaviest first. */
export function partition(ids: string[], planned: PlannedHistory, n: number): string[][] {
  const work = new Map<string, number>(ids.map((id) => [id, 0]));
  for (const d of planned.deliveries)
    for (const s of d.plan.signals) work.set(s.workflowId, (work.get(s.workflowId) ?? 0) + 1);
  const shards = Array.from({ length: Math.max(1, Math.min(n, ids.length)) }, () => ({ ids: [] as string[], work: 0 }));
  for (const id of [...ids].sort((a, b) => work.get(b)! - work.get(a)! || a.localeCompare(b))) {
    const lightest = shards.reduce((a, b) => (b.work < a.work ? b : a));
    lightest.ids.push(id);
    lightest.work += work.get(id)!;
  }
  return shards.map((s) => s.ids);
}

export interface ShardInput {
  config: Config;
  planned: PlannedHistory;
  ids: Set<string>;
  recovery: RecoveryModel;
  workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;
  from: number;
  to: number;
  onProgress?: (doneMs: number) => void;
}

/** One shard on its own test server: the audit records of its services, in recorded time. */
export async function runShard(x: ShardInput): Promise<AuditRecord[]> {
  const { config, planned, ids } = x;
  const env = await startTestServer();
  const model = new HostModel(x.recovery, planned.down);
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
        ...x.workflows,
        activities: simulatedControlActivities(config, model, { audit: records }),
      }),
    );
    workers.push(
      await Worker.create({
        connection: env.nativeConnection,
        namespace,
        taskQueue: FLEET_TASK_QUEUE,
        ...x.workflows,
        activities: simulatedControlActivities(config, model, { audit: records }),
      }),
    );
    const hosts = new Set([...ids].map((id) => planned.services.get(id)!.host));
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
    offset = (await env.currentTimeMs()) + 1_000 - x.from;
    model.setOffset(offset);
    const advanceTo = async (recorded: number) => {
      const now = (await env.currentTimeMs()) - offset;
      if (recorded > now) await env.sleep(recorded - now);
    };
    const deliveries = planned.deliveries.filter((d) => d.plan.signals.some((s) => ids.has(s.workflowId)));
    for (let i = 0; i < deliveries.length;) {
      const at = deliveries[i].at;
      await advanceTo(at);
      const signals: PlannedSignal[] = [];
      for (; i < deliveries.length && deliveries[i].at === at; i++) {
        for (const s of deliveries[i].plan.signals) {
          if (!ids.has(s.workflowId)) continue;
          // restart-fixes: a repeated notification of an outage a simulated restart fixed is not news.
          if (s.status === 'firing' && model.alreadyFixed(s.workflowId, at)) continue;
          signals.push(s);
        }
      }
      if (signals.length) await deliverPlan(env.client, config, signals);
      x.onProgress?.(at - x.from);
    }
    await advanceTo(x.to);
    x.onProgress?.(x.to - x.from);
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
    await env.teardown();
  }
  return records.map((r) => ({ ...r, time: new Date(Date.parse(r.time) - offset).toISOString() }));
}
