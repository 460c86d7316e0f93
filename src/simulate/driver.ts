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
import { AUDIT_EVENTS, CONTROL_TASK_QUEUE, hostTaskQueue } from '../workflows/definitions';
import { FLEET_TASK_QUEUE } from '../workflows/fleet-definitions';
import { overThreshold } from '../policy/fleet';
import { planHistory, type AlertHistory, type Interval, type PlannedHistory } from './history';
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
   * Run each shard of a sharded simulation in a child process, so every core works (off by default:
   * on this busy 2-core machine it measured no faster than in-process shards). The bench run that "hung" with it was the parent not exiting after its
   * results (a Runtime installed but never used keeps Node up; it is now installed only where a shard
   * runs) together with the orphaned-escalation clock leak of the test server (fixed in the workflow).
   */
  processes?: boolean;
  /**
   * The fleet coordinator: `auto` (default) runs without it when it could never have held a restart
   * (checked on the run's own records, else run again with it); `real` always runs it; `skip` never
   * does, unchecked (tests: what the coordinator changes).
   */
  coordinator?: 'auto' | 'real' | 'skip';
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
  /** Test servers the services were spread over. */
  shards: number;
  /**
   * `real`: the fleet coordinator decided every restart; `skipped`: it could never have held one
   * (coordinatorNeverActs), so every ask was granted without it.
   */
  coordinator: 'real' | 'skipped';
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
  const started = performance.now();
  const recovery = opts.recovery ?? 'restart-fixes';
  // The simulation's own copy: no search attributes on the test server; nothing else changes.
  const config: Config = { ...opts.config, temporal: { ...opts.config.temporal, searchAttributes: false } };
  const planned = planHistory(config, opts.history);
  const from = planned.from;
  const to = opts.to ?? planned.to + (opts.tailMs ?? DEFAULT_TAIL_MS);
  const result: SimulationResult = {
    config: opts.config,
    recovery,
    planned,
    records: [],
    from,
    to,
    wallMs: 0,
    shards: 1,
    coordinator: 'skipped',
  };
  if (planned.services.size === 0) return { ...result, wallMs: performance.now() - started };

  const workflows = opts.workflows ?? (await productionWorkflows());
  const ids = [...planned.services.keys()];
  const byWork = Math.min(defaultShards(), Math.ceil(planned.deliveries.length / DELIVERIES_PER_SHARD));
  const runAll = async (shards: string[][], coordinator: boolean) => {
    const progress = new Map<number, number>();
    const report = (shard: number, done: number) => {
      progress.set(shard, done);
      opts.onProgress?.(Math.min(...shards.map((_, i) => progress.get(i) ?? 0)), to - from);
    };
    const run = shards.length > 1 && opts.processes === true ? runShardProcess : runShard;
    return Promise.all(
      shards.map((ids, i) =>
        run({
          config,
          planned,
          ids: new Set(ids),
          recovery,
          workflows,
          from,
          to,
          coordinator,
          onProgress: (d) => report(i, d),
        }),
      ),
    );
  };
  const finish = (parts: AuditRecord[][], shards: number, coordinator: SimulationResult['coordinator']) => {
    result.shards = shards;
    result.coordinator = coordinator;
    result.records = parts.flat().sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
    result.wallMs = performance.now() - started;
    return result;
  };

  // Fleet safety (breakers, restart slots, dependencies) couples the services through the fleet
  // coordinator, which costs more workflow tasks than the entities themselves (a report per opening,
  // ask, release and close, an answer, a 10 s alarm while a slot is held). Where the coordinator could
  // never have held a restart, it only ever grants: the simulation first runs without it (each ask
  // granted at once, services independent, shards of any services), then checks on its own records
  // that no breaker was ever over its threshold and no restart ever found the slots full
  // (coordinatorNeverActs); if one could have been, the simulation runs again with the coordinator.
  const mode = opts.coordinator ?? 'auto';
  if (mode === 'skip' || (mode === 'auto' && mayGrantAll(config, planned, to))) {
    const shards = partition(ids, planned, opts.shards ?? byWork);
    const parts = await runAll(shards, false);
    if (mode === 'skip' || coordinatorNeverActs(config, parts.flat(), to)) {
      return finish(parts, shards.length, 'skipped');
    }
  }

  // With the coordinator: a shard holds whole hosts (a host's breaker and slots) joined by their
  // dependencies, each shard runs its own coordinator, and the fleet-wide part (the fleet breaker,
  // the fleet's restart slots) is checked: if the fleet never had so many incidents open at once that
  // it could have acted, the shards' coordinators decided as the one coordinator would have
  // (fleetNeverActs); if it could have, the whole fleet runs in one shard.
  const margin = FLEET_CHECK_MARGIN_MS;
  let shards: string[][];
  if (opts.shards != null) shards = partition(ids, planned, opts.shards);
  else if (byWork > 1 && fleetNeverActs(config, maxOpenAtOnce(recordedSpans(planned, to), margin))) {
    shards = partitionGroups(couplingGroups(config, ids, planned), planned, byWork);
  } else shards = [ids];
  let parts = await runAll(shards, true);
  if (opts.shards == null && shards.length > 1) {
    // What the shards did, checked the same way: held to the recorded history's bound, this never fails.
    if (!fleetNeverActs(config, maxOpenAtOnce(incidentSpans(parts.flat(), to), margin))) {
      shards = [ids];
      parts = await runAll(shards, true);
    }
  }
  return finish(parts, shards.length, 'real');
}

/** Deliveries below which another shard is not worth its start-up (a process, a test server). */
export const DELIVERIES_PER_SHARD = 200;

/** Shards by default: enough to overlap the round trips of a 2-core machine, few enough for its memory. */
export function defaultShards(): number {
  return Math.max(2, Math.min(8, availableParallelism() * 2));
}

/** Splits services into at most `n` shards of about equal work (deliveries), heaviest first. */
export function partition(ids: string[], planned: PlannedHistory, n: number): string[][] {
  return partitionGroups(
    ids.map((id) => [id]),
    planned,
    n,
  );
}

/** Splits groups of services (kept whole) into at most `n` shards of about equal work, heaviest first. */
export function partitionGroups(groups: string[][], planned: PlannedHistory, n: number): string[][] {
  const work = new Map<string, number>();
  for (const d of planned.deliveries)
    for (const s of d.plan.signals) work.set(s.workflowId, (work.get(s.workflowId) ?? 0) + 1);
  const weighed = groups.map((ids) => ({ ids, work: ids.reduce((a, id) => a + (work.get(id) ?? 0), 0) }));
  const shards = Array.from({ length: Math.max(1, Math.min(n, groups.length)) }, () => ({
    ids: [] as string[],
    work: 0,
  }));
  weighed.sort((a, b) => b.work - a.work || a.ids[0].localeCompare(b.ids[0]));
  for (const g of weighed) {
    const lightest = shards.reduce((a, b) => (b.work < a.work ? b : a));
    lightest.ids.push(...g.ids);
    lightest.work += g.work;
  }
  return shards.map((s) => s.ids).filter((ids) => ids.length > 0);
}

/**
 * Services that must share a coordinator: every service of a host (its breaker and restart slots)
 * and the hosts joined by a `dependsOn` (a held dependent waits on its dependency's incident).
 */
export function couplingGroups(config: Config, ids: string[], planned: PlannedHistory): string[][] {
  const parent = new Map<string, string>();
  const find = (h: string): string => {
    const p = parent.get(h) ?? h;
    if (p === h) return h;
    const root = find(p);
    parent.set(h, root);
    return root;
  };
  const union = (a: string, b: string) => parent.set(find(a), find(b));
  for (const s of config.services)
    for (const dep of s.dependsOn ?? []) {
      const slash = dep.indexOf('/');
      union(s.host, slash > 0 ? dep.slice(0, slash) : s.host);
    }
  const groups = new Map<string, string[]>();
  for (const id of ids) {
    const root = find(planned.services.get(id)!.host);
    groups.set(root, [...(groups.get(root) ?? []), id]);
  }
  return [...groups.values()];
}

/** Widening of every incident span in the fleet check: well over the simulated clock's jitter. */
export const FLEET_CHECK_MARGIN_MS = 60_000;

/**
 * Upper bounds on when each service could have had an incident open: its recorded outages (an
 * incident opens on a firing alert and ends by the time its alert resolves, or at the end).
 */
export function recordedSpans(planned: PlannedHistory, to: number): Interval[] {
  return [...planned.down.values()].flat().map((iv) => ({ start: iv.start, end: Math.min(iv.end, to) }));
}

/** When incidents were open, from the workflows' audit records (incident-opened → incident-closed). */
export function incidentSpans(records: readonly AuditRecord[], to: number): (Interval & { host: string })[] {
  const open = new Map<string, { host: string; start: number }>();
  const spans: (Interval & { host: string })[] = [];
  for (const r of [...records].sort((a, b) => Date.parse(a.time) - Date.parse(b.time))) {
    if (r.event === AUDIT_EVENTS.incidentOpened) open.set(r.workflowId, { host: r.host, start: Date.parse(r.time) });
    else if (r.event === AUDIT_EVENTS.incidentClosed && open.has(r.workflowId)) {
      spans.push({ ...open.get(r.workflowId)!, end: Date.parse(r.time) });
      open.delete(r.workflowId);
    }
  }
  for (const o of open.values()) spans.push({ ...o, end: to });
  return spans;
}

/** The most spans that overlap at any moment, each widened by `marginMs` on both sides. */
export function maxOpenAtOnce(spans: readonly Interval[], marginMs: number): number {
  const edges: [number, number][] = [];
  for (const s of spans) edges.push([s.start - marginMs, 1], [s.end + marginMs, -1]);
  // At equal times an opening counts before a closing: touching spans overlap (conservative).
  edges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (open += d));
  return max;
}

/**
 * Whether the fleet-wide part of fleet safety could never have acted with at most `maxOpen`
 * incidents open at once: the fleet breaker never over its limits, and never as many restarts in
 * flight as the fleet's slots (a restart slot belongs to an open incident, so slots ≤ incidents).
 * Host breakers, host slots and dependencies are decided whole inside a shard.
 */
export function fleetNeverActs(config: Config, maxOpen: number): boolean {
  const f = config.fleet;
  if (maxOpen >= f.maxRestartsInFlight) return false;
  const total = Math.max(config.services.length, maxOpen);
  return !f.breaker.enabled || !overThreshold(maxOpen, total, f.breaker.fleet);
}

/** Widening of every restart-slot span in the coordinator check: well over the simulated clock's jitter. */
export const SLOT_CHECK_MARGIN_MS = 5_000;

/** A dependent waits while its dependency has an incident open: only the coordinator knows. */
const hasDependencies = (config: Config) => config.services.some((s) => (s.dependsOn ?? []).length > 0);

/**
 * Whether the coordinator could hold nothing in this history, judged before running it: no
 * dependencies (a dependent waits while its dependency has an incident open), and no breaker over its
 * threshold even if every recorded outage were an incident. Restart slots are judged after the run
 * (coordinatorNeverActs); this only avoids a run whose check would fail anyway.
 */
export function mayGrantAll(config: Config, planned: PlannedHistory, to: number): boolean {
  if (hasDependencies(config)) return false;
  const spans = [...planned.down.entries()].flatMap(([id, ivs]) =>
    ivs.map((iv) => ({ host: planned.services.get(id)?.host ?? '', start: iv.start, end: Math.min(iv.end, to) })),
  );
  return breakersNeverOver(config, spans);
}

function breakersNeverOver(config: Config, incidents: readonly (Interval & { host: string })[]): boolean {
  const b = config.fleet.breaker;
  if (!b.enabled) return true;
  const margin = FLEET_CHECK_MARGIN_MS;
  const perHost = new Map<string, number>();
  for (const s of config.services) perHost.set(s.host, (perHost.get(s.host) ?? 0) + 1);
  const fleetOpen = maxOpenAtOnce(incidents, margin);
  if (overThreshold(fleetOpen, Math.max(config.services.length, fleetOpen), b.fleet)) return false;
  for (const [host, spans] of groupBy(incidents, (s) => s.host)) {
    const open = maxOpenAtOnce(spans, margin);
    if (overThreshold(open, Math.max(perHost.get(host) ?? 0, open), b.host)) return false;
  }
  return true;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) out.set(key(t), [...(out.get(key(t)) ?? []), t]);
  return out;
}

/**
 * When restart slots were held, from the workflows' audit records: a slot is granted just before
 * its restart (the `restart` record) and given back with the attempt's result (`attempt-finished`),
 * or at the incident's close, or at the end.
 */
export function slotSpans(records: readonly AuditRecord[], to: number): (Interval & { host: string })[] {
  const open = new Map<string, { host: string; start: number }>();
  const spans: (Interval & { host: string })[] = [];
  const end = (key: string, at: number) => {
    const s = open.get(key);
    if (s) spans.push({ host: s.host, start: s.start, end: at });
    open.delete(key);
  };
  for (const r of [...records].sort((a, b) => Date.parse(a.time) - Date.parse(b.time))) {
    const t = Date.parse(r.time);
    if (r.event === AUDIT_EVENTS.restart) {
      end(r.workflowId, t);
      open.set(r.workflowId, { host: r.host, start: t });
    } else if (r.event === AUDIT_EVENTS.attemptFinished || r.event === AUDIT_EVENTS.incidentClosed)
      end(r.workflowId, t);
  }
  for (const [key] of [...open]) end(key, to);
  return spans;
}

/**
 * Whether the fleet coordinator would have granted every restart of this run at once, judged on its
 * audit records: no breaker (fleet or host) ever over its threshold with the incidents open at once,
 * and never so many restarts in flight (fleet-wide, per host) that the next one would have found the
 * slots full. A run that passes decided exactly as with the coordinator: the two runs are the same
 * up to the first ask the coordinator would not have granted, and there was none. Dependencies are
 * excluded before the run (mayGrantAll). Every span is widened by a margin (the clock's jitter).
 */
export function coordinatorNeverActs(config: Config, records: readonly AuditRecord[], to: number): boolean {
  if (hasDependencies(config)) return false;
  if (!breakersNeverOver(config, incidentSpans(records, to))) return false;
  const slots = slotSpans(records, to);
  // A restart finds the slots full when as many others are in flight as the limit: so at most the
  // limit in flight at once, that restart included.
  if (maxOpenAtOnce(slots, SLOT_CHECK_MARGIN_MS) > config.fleet.maxRestartsInFlight) return false;
  for (const [, spans] of groupBy(slots, (s) => s.host)) {
    if (maxOpenAtOnce(spans, SLOT_CHECK_MARGIN_MS) > config.fleet.maxRestartsInFlightPerHost) return false;
  }
  return true;
}

export interface ShardInput {
  config: Config;
  planned: PlannedHistory;
  ids: Set<string>;
  recovery: RecoveryModel;
  workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;
  from: number;
  to: number;
  /** Whether the fleet coordinator runs (else every ask is granted at once: simulatedControlActivities). */
  coordinator: boolean;
  onProgress?: (doneMs: number) => void;
}

/** One shard on its own test server: the audit records of its services, in recorded time. */
export async function runShard(x: ShardInput): Promise<AuditRecord[]> {
  // Installed only where a shard runs: a process whose Runtime is installed but never used by a
  // worker does not exit (the parent of child-process shards stayed up after its results; the
  // "hung" bench run with `processes`).
  quietRuntime();
  const { config, planned, ids } = x;
  const env = await startTestServer();
  const model = new HostModel(x.recovery, planned.down);
  const records: AuditRecord[] = [];
  const workers: Worker[] = [];
  const runs: Promise<void>[] = [];
  let offset = 0;
  try {
    const namespace = env.namespace ?? 'default';
    // The entity workflows and the fleet coordinator, each on its own queue, as in production.
    for (const taskQueue of x.coordinator ? [CONTROL_TASK_QUEUE, FLEET_TASK_QUEUE] : [CONTROL_TASK_QUEUE]) {
      workers.push(
        await Worker.create({
          connection: env.nativeConnection,
          namespace,
          taskQueue,
          ...x.workflows,
          activities: simulatedControlActivities(config, model, { audit: records }, undefined, {
            coordinator: x.coordinator,
          }),
        }),
      );
    }
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
      // Without the coordinator the entities send it nothing but their asks (granted at once).
      if (signals.length) {
        await deliverPlan(env.client, config, signals, x.coordinator ? {} : { input: { fleetReports: false } });
      }
      x.onProgress?.(at - x.from);
    }
    await advanceTo(x.to);
    x.onProgress?.(x.to - x.from);
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
    await env.teardown();
  }
  return records.map((r) => inRecordedTime(r, offset, x.from + offset));
}

const ISO_TIME = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z\b/g;

/**
 * An audit record of the simulation clock in recorded time: its `time`, and every date written into
 * its text (a budget's or cooldown's "until ...", an escalation's message), so a reader sees the
 * recorded timeline's dates, never the test server's. A date before the simulation clock's start
 * (`simStart`) was never on it (a recorded time carried in an alert) and stays as it is.
 */
export function inRecordedTime(r: AuditRecord, offset: number, simStart: number): AuditRecord {
  const shift = (text: string) =>
    text.replace(ISO_TIME, (iso) => {
      const t = Date.parse(iso);
      if (!Number.isFinite(t) || t < simStart) return iso;
      const out = new Date(t - offset).toISOString();
      return iso.includes('.') ? out : out.replace(/\.\d{3}Z$/, 'Z');
    });
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return shift(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return { ...(walk(r) as AuditRecord), time: new Date(Date.parse(r.time) - offset).toISOString() };
}
