// 4. History growth of the entity workflow on the real time-skipping test server: events per full
// incident (alert → validation → re-check → restart → verify → idle), per duplicate alert and per
// alert resolved during validation, and how many incidents fit in one run before the workflow
// continues-as-new at DEFAULT_MAX_HISTORY_EVENTS. The prediction is then checked against a real
// continue-as-new with a small bound.
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { signalWithStartService } from '../src/client/signals';
import {
  CONTROL_TASK_QUEUE,
  SA_PHASE,
  WORKFLOW_TYPE,
  alertFiringSignal,
  alertResolvedSignal,
  stateQuery,
  workflowIdFor,
  type ServiceWorkflowInput,
} from '../src/workflows/definitions';
import { DEFAULT_MAX_HISTORY_EVENTS, DEFAULT_MAX_SIGNALS_PER_RUN } from '../src/workflows/service';
import { FakeManager } from '../test/helpers/fake-manager';
import { startWorkers, timeSkippingEnv } from '../test/helpers/temporal';
import { fleetConfig, tempDir } from './lib/fixtures';
import { sleep } from './lib/stats';

export interface IncidentMeasure {
  label: string;
  events: number;
  /** Events by type in this incident. */
  byType: Record<string, number>;
  /** Wall-clock seconds it took on the time-skipping server. */
  wallSeconds: number;
}

export interface HistoryResults {
  server: string;
  policyNote: string;
  /** Events before the first incident (workflow start and its first task). */
  startEvents: number;
  incidents: IncidentMeasure[];
  eventsPerIncident: number;
  eventsPerDuplicateAlert: number;
  eventsPerResolvedInValidation: number;
  bound: number;
  signalBound: number;
  /** Complete incidents that fit in one run under the default bound. */
  incidentsPerRun: number;
  /** The same when every incident also gets `dups` duplicate alertFiring signals (Alertmanager repeats). */
  incidentsPerRunWithDuplicates: { dups: number; incidents: number }[];
  /** Temporal's own limits, for scale. */
  temporalLimits: { warnEvents: number; hardEvents: number; suggestEvents: number };
  continueAsNewCheck: {
    bound: number;
    predictedIncidentThatContinues: number;
    observedIncidentThatContinued: number | null;
    carriedRestarts: number | null;
    runAfter: number | null;
  } | null;
}

const eventName = (t: number | null | undefined) =>
  (temporal.api.enums.v1.EventType[t ?? 0] ?? String(t)).replace(/^EVENT_TYPE_/, '');

async function waitUntil(probe: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function historyEvents(h: WorkflowHandle): Promise<{ eventType?: number | null }[]> {
  return (await h.fetchHistory()).events ?? [];
}

function countTypes(events: { eventType?: number | null }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) {
    const n = eventName(e.eventType);
    out[n] = (out[n] ?? 0) + 1;
  }
  return out;
}

/**
 * Waits without queries: on the time-skipping server a query makes the server schedule an extra
 * workflow task (three more history events), which would inflate the very counts measured here. The
 * phase comes from the SelfhealPhase search attribute (describe), progress from the history itself.
 */
async function settle(
  h: WorkflowHandle,
  what: string,
  ready: (phase: string | undefined) => boolean,
  timeoutMs = 30_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let lastLen = -1;
  let stableSince = 0;
  let phase: string | undefined;
  while (Date.now() < deadline) {
    phase = (await h.describe()).typedSearchAttributes.get(SA_PHASE);
    const len = (await historyEvents(h)).length;
    if (len !== lastLen) {
      lastLen = len;
      stableSince = Date.now();
    } else if (ready(phase) && Date.now() - stableSince >= 300) {
      return len;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}; phase ${phase ?? 'none'}, ${lastLen} events`);
}

export async function runHistoryBench(log: (l: string) => void): Promise<HistoryResults> {
  const svc = 'hist.service';
  const canSvc = 'can.service';
  const config = fleetConfig({
    services: [
      { name: svc, host: 'h1' },
      { name: canSvc, host: 'h1' },
    ],
    dataDir: tempDir(),
    // Default policy (2m validation, 60s cooldown, 3/h) except: verification needs no 10 s of real
    // stability (activities run in real time even on the time-skipping server); heartbeats are not events.
    policy: 'verifyStableFor: 0s, hostTimeout: 5s',
  });
  const env: TestWorkflowEnvironment = await timeSkippingEnv();
  const fake = new FakeManager();
  const workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake, pollIntervalMs: 20 });
  const client: Client = env.client;
  try {
    const h = client.workflow.getHandle(workflowIdFor('h1', svc));
    const fire = () =>
      signalWithStartService(client, config, 'h1', svc, alertFiringSignal, {
        alertnames: ['ServiceDown'],
        summary: `${svc} on h1 is down`,
      });
    const incidents: IncidentMeasure[] = [];
    let before = 0;
    let restarts = 0;

    const fullIncident = async (label: string, dups: number) => {
      const t0 = performance.now();
      fake.stop(svc);
      await fire();
      let len = await settle(h, `${label}: validating`, (p) => p === 'validating');
      for (let i = 0; i < dups; i++) {
        await fire();
        const prev = len;
        len = await settle(h, `${label}: duplicate ${i + 1}`, (p) => p === 'validating', 30_000);
        if (len === prev) throw new Error(`${label}: duplicate ${i + 1} left no trace in the history`);
      }
      await env.sleep('2m');
      restarts++;
      await waitUntil(() => fake.restartsOf(svc) >= restarts, `${label}: restart`);
      await settle(h, `${label}: back to idle`, (p) => p === 'idle');
      const events = await historyEvents(h);
      const mine = events.slice(before);
      incidents.push({
        label,
        events: mine.length,
        byType: countTypes(mine),
        wallSeconds: (performance.now() - t0) / 1000,
      });
      before = events.length;
      log(`  ${label}: ${mine.length} events (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      // Space incidents so the hourly budget (3/h) never refuses one: 21 simulated minutes.
      await env.sleep('21m');
    };

    await fullIncident('incident 1 (starts the workflow)', 0);
    await fullIncident('incident 2', 0);
    await fullIncident('incident 3', 0);
    const dups = 10;
    await fullIncident(`incident 4 with ${dups} duplicate alerts`, dups);

    // An alert that resolves during validation: no restart.
    const t0 = performance.now();
    await fire();
    await settle(h, 'validating (to be resolved)', (p) => p === 'validating');
    await env.sleep('30s');
    await h.signal(alertResolvedSignal, { alertnames: ['ServiceDown'] });
    await settle(h, 'idle after resolve', (p) => p === 'idle');
    const events = await historyEvents(h);
    const resolvedEvents = events.slice(before);
    incidents.push({
      label: 'alert resolved during validation (no restart)',
      events: resolvedEvents.length,
      byType: countTypes(resolvedEvents),
      wallSeconds: (performance.now() - t0) / 1000,
    });
    log(`  resolved during validation: ${resolvedEvents.length} events`);
    // Only now (measurements done) ask the workflow itself.
    const final = await h.query(stateQuery);
    if (final.totals.restarts !== restarts || final.totals.incidents !== 5) {
      log(`  note: workflow reports ${final.totals.incidents} incidents, ${final.totals.restarts} restarts`);
    }

    const perIncident = incidents[1].events;
    if (incidents[2].events !== perIncident) {
      log(`  note: incidents 2 and 3 differ (${perIncident} vs ${incidents[2].events} events)`);
    }
    // Incident 1 also contains the workflow's start: the difference is the per-run overhead.
    const startEvents = incidents[0].events - perIncident;
    const perDup = (incidents[3].events - perIncident) / dups;
    const bound = DEFAULT_MAX_HISTORY_EVENTS;
    const fit = (per: number) => Math.floor((bound - startEvents) / per);

    // Check the prediction: a workflow whose bound lets exactly two incidents fit.
    let continueAsNewCheck: HistoryResults['continueAsNewCheck'] = null;
    try {
      const smallBound = startEvents + 2 * perIncident + 1;
      const input: ServiceWorkflowInput = {
        host: 'h1',
        service: canSvc,
        searchAttributes: true,
        maxHistoryEvents: smallBound,
      };
      const ch = client.workflow.getHandle(workflowIdFor('h1', canSvc));
      let observed: number | null = null;
      let firstRun: string | null = null;
      for (let i = 1; i <= 4 && observed == null; i++) {
        fake.stop(canSvc);
        await client.workflow.signalWithStart(WORKFLOW_TYPE, {
          workflowId: workflowIdFor('h1', canSvc),
          taskQueue: CONTROL_TASK_QUEUE,
          args: [input],
          signal: alertFiringSignal.name,
          signalArgs: [{ alertnames: ['ServiceDown'] }],
        });
        await settle(ch, `can ${i}: validating`, (p) => p === 'validating');
        firstRun ??= (await ch.describe()).runId;
        await env.sleep('2m');
        await waitUntil(() => fake.restartsOf(canSvc) >= i, `can ${i}: restart`);
        await settle(ch, `can ${i}: idle`, (p) => p === 'idle');
        if ((await ch.describe()).runId !== firstRun) observed = i;
        await env.sleep('21m');
      }
      const last = await ch.query(stateQuery);
      continueAsNewCheck = {
        bound: smallBound,
        predictedIncidentThatContinues: Math.floor((smallBound - startEvents) / perIncident) + 1,
        observedIncidentThatContinued: observed,
        carriedRestarts: last.totals.restarts,
        runAfter: last.run,
      };
      log(`  continue-as-new check: bound ${smallBound}, continued during incident ${observed ?? '—'}`);
    } catch (err) {
      log(`  continue-as-new check failed: ${(err as Error).message}`);
    }

    return {
      server: 'time-skipping test server (temporal-test-server)',
      policyNote: 'default policy; verifyStableFor 0s and hostTimeout 5s (history does not depend on them)',
      startEvents,
      incidents,
      eventsPerIncident: perIncident,
      eventsPerDuplicateAlert: perDup,
      eventsPerResolvedInValidation: resolvedEvents.length,
      bound,
      signalBound: DEFAULT_MAX_SIGNALS_PER_RUN,
      incidentsPerRun: fit(perIncident),
      incidentsPerRunWithDuplicates: [1, 5, 10].map((d) => ({ dups: d, incidents: fit(perIncident + d * perDup) })),
      temporalLimits: { warnEvents: 10_240, hardEvents: 51_200, suggestEvents: 4_096 },
      continueAsNewCheck,
    };
  } finally {
    await workers.shutdown();
    await env.teardown();
  }
}
