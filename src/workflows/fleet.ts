// The fleet coordinator: one per namespace (id `selfheal-fleet`, task queue `selfheal-fleet`). It
// holds what no single entity workflow can know: which services have an open incident, which
// restarts are in flight, the breaker of each scope, and who waits for a restart slot. Entity
// workflows report to it (signal-with-start from their notifyFleet activity) and ask it before each
// restart; it answers each ask with a grant or a hold, and grants held ones later, in order.
// Policy is pure (src/policy/fleet.ts); this file is the durable loop around it.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import { admission, expireLeases, grant, incidentClosed, incidentOpened, release } from '../policy/admission';
import {
  closedBreaker,
  countScope,
  HOLD_REASONS,
  initialFleetState,
  resetByHand,
  scopesOf,
  serviceKey,
  stepBreakers,
  tripByHand,
  type AdmissionRequest,
  type BreakerEvent,
  type FleetSettings,
  type FleetState,
  type HoldReason,
} from '../policy/fleet';
import { FiredClock } from './clock';
import { AUDIT_EVENTS, MAX_UNDELIVERED_ESCALATIONS, type EscalationPayload } from './definitions';
import { auditLocal, delivery, DELIVERY_GRACE_MS, local } from './effects';
import {
  breakerCommandSignal,
  breakerQuery,
  fleetAnswerSignal,
  fleetReportSignal,
  FLEET_WORKFLOW_ID,
  type BreakerCommand,
  type BreakerView,
  type FleetAnswer,
  type FleetReport,
  type FleetWorkflowInput,
} from './fleet-definitions';

// The same activity options as the entity workflow's (effects.ts).

export const DEFAULT_FLEET_MAX_HISTORY_EVENTS = 5_000;
/** The alarm while something is pending (a breaker not closed, slots held, waiters). */
const BUSY_ALARM_MS = 10_000;
/** Settings are read again from the configuration this often. */
const SETTINGS_REFRESH_MS = 5 * 60_000;
/** Bounds on what one run takes in before continuing as new. */
const MAX_SIGNALS_PER_RUN = 2_000;
/**
 * The answers of one step go out together, in one workflow task. Before, each answer was awaited in
 * turn, one workflow task per answer: N restarts asked at once waited N coordinator tasks (~2.4 s
 * for 20 on 2 cores). Decided at the start of a run; runs started before replay as they were.
 */
export const PATCH_FLEET_ANSWERS_TOGETHER = 'fleet-answers-together';

/**
 * One MassFailure per storm: a scope that trips while another scope's automatic trip is still open (a
 * storm spreading to another host, or reaching the fleet-wide threshold a step later) is audited, not
 * paged again. Decided at the start of a run; runs started before page once per step, as they did.
 */
export const PATCH_ONE_PAGE_PER_STORM = 'one-mass-failure-per-storm';

/**
 * Escalations in delivery (a MassFailure) finish, bounded by DELIVERY_GRACE_MS, before the run
 * continues as new, while the coordinator keeps serving. Before, a MassFailure sent in the task that
 * continued-as-new was orphaned and carried, so it was posted twice. Decided at the start of a run.
 */
export const PATCH_FLEET_SETTLE = 'fleet-deliveries-settle-before-continue-as-new';

/**
 * The coordinator's time is never before its alarm's deadline once the alarm fired. The workflow
 * clock can read an earlier task's time in the task a timer wakes (the entity's patch
 * `wait-ends-when-its-timer-fires` has the story); here that put the alarm's step a whole period (or
 * more) in the past, so a lease or a breaker quiet period ending in between expired in a replay but
 * not live, and the commands differed. This narrows that window to the time between the alarm's
 * deadline and the task it wakes (milliseconds with a worker up; as long as no worker ran, after an
 * outage); it does not close it, because slots and quiet periods end at their own times, not at the
 * alarm's (stepping them at alarms set for their own deadlines would). Decided at the start of a run.
 */
export const PATCH_FLEET_CLOCK = 'fleet-clock-not-before-its-alarm';

export async function selfhealFleet(input: FleetWorkflowInput = {}): Promise<void> {
  const together = patched(PATCH_FLEET_ANSWERS_TOGETHER);
  const onePagePerStorm = patched(PATCH_ONE_PAGE_PER_STORM);
  const settleFirst = patched(PATCH_FLEET_SETTLE);
  /** The time decisions use: the workflow clock, never before a fired alarm's deadline. */
  const clock = new FiredClock(patched(PATCH_FLEET_CLOCK));
  const carried = input.carried;
  const st: FleetState = carried?.state ?? initialFleetState();
  let settings: FleetSettings | null = carried?.settings ?? null;
  let settingsAt = 0;
  let lastCommand = carried?.lastCommand ?? null;
  const run = (carried?.run ?? 0) + 1;
  const inbox: FleetReport[] = [];
  const commands: BreakerCommand[] = [];
  const outbox = new Map<string, EscalationPayload>();
  let signals = 0;
  let alarm = false;

  setHandler(fleetReportSignal, (r) => {
    signals++;
    inbox.push(r);
  });
  setHandler(breakerCommandSignal, (c) => {
    signals++;
    commands.push(c);
  });
  setHandler(breakerQuery, () => view(st, settings, lastCommand, run));

  const busy = () =>
    Object.keys(st.leases).length > 0 ||
    Object.keys(st.waiters).length > 0 ||
    Object.values(st.breakers).some((b) => b.state !== 'closed');
  const canWanted = () => {
    const info = workflowInfo();
    return (
      info.continueAsNewSuggested ||
      info.historyLength >= (input.maxHistoryEvents ?? DEFAULT_FLEET_MAX_HISTORY_EVENTS) ||
      signals >= MAX_SIGNALS_PER_RUN
    );
  };

  // Before continuing as new, escalations in delivery get DELIVERY_GRACE_MS to finish (patched runs).
  let graceStarted = false;
  let graceOver = false;
  const readyToContinue = () => canWanted() && (!settleFirst || outbox.size === 0 || graceOver);

  // The alarm steps time-driven transitions (quiet periods, expiring slots), which exist only while
  // something is pending: an idle coordinator sets no timer at all (no task a minute, forever). A
  // sleep that is never cancelled: cancelling a timer that has already fired can strand a run on the
  // time-skipping server.
  void (async () => {
    for (;;) {
      if (!busy()) await condition(busy);
      const at = clock.now() + BUSY_ALARM_MS;
      await sleep(BUSY_ALARM_MS);
      clock.fired(at);
      alarm = true;
    }
  })();

  const audit = async (scopeHost: string, event: string, decision: string, reason: string, extra = {}) => {
    try {
      await auditLocal.audit({
        time: new Date().toISOString(),
        host: scopeHost,
        service: '*',
        workflowId: FLEET_WORKFLOW_ID,
        event: event as (typeof AUDIT_EVENTS)[keyof typeof AUDIT_EVENTS],
        decision,
        reason,
        ...extra,
      });
    } catch (err) {
      log.error('audit log write failed', { event, error: (err as Error).message });
    }
  };
  const send = (p: EscalationPayload) => {
    outbox.set(p.id, p);
    delivery.escalate(p).then(
      () => outbox.delete(p.id),
      (err: unknown) => log.error('escalation delivery gave up', { id: p.id, error: (err as Error).message }),
    );
  };
  for (const p of carried?.undelivered ?? []) send(p);

  const answer = async (workflowId: string, a: FleetAnswer): Promise<boolean> => {
    try {
      await getExternalWorkflowHandle(workflowId).signal(fleetAnswerSignal, a);
      return true;
    } catch (err) {
      log.warn('cannot answer an entity workflow', { workflowId, error: (err as Error).message });
      return false;
    }
  };

  /** Answers sent in this step, awaited together at its end (or each at once, in runs before the patch). */
  const sending: Promise<void>[] = [];
  let lost = false;
  /** Answers an entity workflow; `onLost` runs when the answer cannot be delivered (the workflow is gone). */
  const reply = async (workflowId: string, a: FleetAnswer, onLost?: () => void) => {
    const sent = answer(workflowId, a).then((ok) => {
      if (ok || !onLost) return;
      onLost();
      // Runs before the patch gave the slot back in the same step, without another pass.
      if (together) lost = true;
    });
    if (together) sending.push(sent);
    else await sent;
  };

  /**
   * Audits breaker transitions. Scopes that trip in one step are one storm: one MassFailure lists them
   * all with the affected services (a one-host homelab trips its host and the fleet together).
   */
  const onBreakerEvents = async (events: BreakerEvent[]) => {
    const tripped: Extract<BreakerEvent, { kind: 'tripped' }>[] = [];
    for (const e of events) {
      const host = e.scope.startsWith('host:') ? e.scope.slice(5) : '*';
      if (e.kind === 'tripped') {
        tripped.push(e);
        await audit(host, AUDIT_EVENTS.breaker, 'trip', `breaker ${e.scope}: ${e.count.open} of ${e.count.total} open`);
      } else {
        const reason = 'reason' in e ? e.reason : e.kind;
        await audit(host, AUDIT_EVENTS.breaker, e.kind, `breaker ${e.scope}: ${reason}`);
      }
    }
    if (!tripped.length) return;
    const trippedNow = new Set(tripped.map((e) => e.scope));
    // Scopes of this storm already paged: open since an automatic trip (a human's trip pages no one)
    // less than a quiet period ago. A storm that keeps spreading chains itself (each trip is recent);
    // a breaker left open for hours (manual-reset mode, a dead host, a scope no longer configured) or
    // half-open (its storm went quiet) does not hide the next storm's page.
    const now = clock.now();
    const paged = onePagePerStorm
      ? Object.entries(st.breakers)
          .filter(
            ([scope, b]) =>
              !trippedNow.has(scope) &&
              b.state === 'open' &&
              !b.manual &&
              now - b.since < (settings?.breaker.quietPeriodMs ?? 0),
          )
          .map(([scope]) => scope)
      : [];
    if (!paged.length) return massFailure(tripped);
    const hosts = [...new Set(tripped.map((e) => (e.scope.startsWith('host:') ? e.scope.slice(5) : '*')))];
    const affected = [...new Set(tripped.flatMap((e) => e.count.affected))].sort();
    await audit(
      hosts.length === 1 ? hosts[0] : '*',
      AUDIT_EVENTS.breaker,
      'storm-widened',
      `the storm spread to ${[...trippedNow].join(', ')} (affected: ${affected.join(', ')}); its MassFailure ` +
        `went out when ${paged.join(', ')} tripped, so no new page`,
    );
  };

  const massFailure = async (tripped: Extract<BreakerEvent, { kind: 'tripped' }>[]) => {
    const affected = [...new Set(tripped.flatMap((e) => e.count.affected))].sort();
    const scopes = tripped.map((e) => `${e.scope} (${e.count.open} of ${e.count.total})`).join(', ');
    const message =
      `mass failure: too many guarded services have an open incident at once in ${scopes}; automatic restarts ` +
      `stop until it is quiet (selfheal breaker status). Affected: ${affected.join(', ')}`;
    const hosts = [...new Set(tripped.map((e) => (e.scope.startsWith('host:') ? e.scope.slice(5) : '*')))];
    const host = hosts.length === 1 ? hosts[0] : '*';
    await audit(host, AUDIT_EVENTS.escalated, 'escalate', message, { escalation: 'MassFailure' });
    const now = clock.now();
    send({
      id: `${FLEET_WORKFLOW_ID}/MassFailure/${now}`,
      event: 'MassFailure',
      host,
      service: '*',
      workflowId: FLEET_WORKFLOW_ID,
      incidentId: null,
      consecutiveFailures: 0,
      restartsLastHour: 0,
      message,
      time: new Date(now).toISOString(),
      scope: tripped.map((e) => e.scope).join(','),
      services: affected,
    });
  };

  /** An undeliverable grant gives its slot back, if the slot is still that incident's. */
  const releaseIfStill = (key: string, incidentId: string, now: number) => {
    if (st.leases[key]?.incidentId === incidentId) release(st, key, 'not-used', now);
  };

  /** Grants every waiter that can go now, oldest first; re-answers those whose reason changed. */
  const serveWaiters = async () => {
    const waiters = Object.values(st.waiters).sort((a, b) => a.since - b.since || a.ask - b.ask);
    for (const w of waiters) {
      const a = admission(st, settings!, w);
      if (a.kind === 'grant') {
        grant(st, settings!, w, a.trialFor, clock.now());
        await reply(w.workflowId, { incidentId: w.incidentId, ask: w.ask, decision: 'grant' }, () =>
          releaseIfStill(serviceKey(w.host, w.service), w.incidentId, clock.now()),
        );
      } else if (a.reason !== w.reason || a.detail !== w.detail) {
        Object.assign(w, { reason: a.reason, detail: a.detail });
        await reply(w.workflowId, { incidentId: w.incidentId, ask: w.ask, decision: 'hold', ...a });
      }
    }
  };

  const apply = async (r: FleetReport) => {
    const now = clock.now();
    const key = serviceKey(r.host, r.service);
    if (r.kind === 'opened') incidentOpened(st, r.host, r.service, now);
    else if (r.kind === 'closed') await onBreakerEvents(incidentClosed(st, r.host, r.service, now));
    else if (r.kind === 'release') {
      if (st.leases[key]?.incidentId === r.incidentId) await onBreakerEvents(release(st, key, r.result, now));
    } else {
      // A request is also a sign the incident is open (the opened report may have been lost).
      incidentOpened(st, r.host, r.service, now);
      await onBreakerEvents(stepBreakers(st, settings!, now));
      const req: AdmissionRequest = { ...r, dependsOn: r.dependsOn ?? [] };
      const a = admission(st, settings!, req);
      if (a.kind === 'grant') {
        grant(st, settings!, req, a.trialFor, now);
        await reply(r.workflowId, { incidentId: r.incidentId, ask: r.ask, decision: 'grant' }, () =>
          releaseIfStill(key, r.incidentId, now),
        );
      } else {
        const prev = st.waiters[key];
        st.waiters[key] = { ...req, since: prev?.since ?? now, reason: a.reason, detail: a.detail };
        await reply(r.workflowId, { incidentId: r.incidentId, ask: r.ask, decision: 'hold', ...a });
      }
    }
  };

  const command = async (c: BreakerCommand) => {
    const now = clock.now();
    const scopes = c.scope === 'all' ? scopesOf(st, settings!) : [c.scope];
    for (const scope of scopes) {
      const host = scope.startsWith('host:') ? scope.slice(5) : '*';
      if (c.action === 'trip') tripByHand(st, scope, c.by ?? null, c.reason ?? '', now);
      else resetByHand(st, settings!, scope, c.by ?? null, now);
      await audit(
        host,
        AUDIT_EVENTS.breaker,
        c.action,
        `breaker ${scope} ${c.action === 'trip' ? 'tripped' : 'reset'} by hand${c.reason ? `: ${c.reason}` : ''}`,
        {
          by: c.by ?? null,
        },
      );
    }
    lastCommand = c.id ?? `${c.action} ${c.scope}`;
  };

  for (;;) {
    const now = clock.now();
    if (!settings || now - settingsAt >= SETTINGS_REFRESH_MS) {
      try {
        settings = await local.fleetSettings();
        settingsAt = now;
      } catch (err) {
        log.error('cannot read the fleet settings; retrying', { error: (err as Error).message });
        if (!settings) {
          await sleep(10_000);
          continue;
        }
      }
    }
    while (commands.length) await command(commands.shift()!);
    while (inbox.length) await apply(inbox.shift()!);
    alarm = false;
    await onBreakerEvents(expireLeases(st, clock.now()));
    await onBreakerEvents(stepBreakers(st, settings, clock.now()));
    await serveWaiters();
    if (sending.length) await Promise.all(sending.splice(0));
    if (lost) {
      // A slot given back because its answer could not be delivered: serve the waiters again.
      lost = false;
      continue;
    }
    if (inbox.length || commands.length) continue;
    if (readyToContinue()) break;
    if (canWanted() && !graceStarted) {
      graceStarted = true;
      void sleep(DELIVERY_GRACE_MS).then(() => (graceOver = true));
    }
    await condition(() => inbox.length > 0 || commands.length > 0 || alarm || readyToContinue());
  }

  await condition(allHandlersFinished);
  const undelivered = [...outbox.values()].slice(-MAX_UNDELIVERED_ESCALATIONS);
  await continueAsNew<typeof selfhealFleet>({
    ...input,
    carried: { state: st, settings, run, lastCommand, undelivered },
  });
}

function view(st: FleetState, settings: FleetSettings | null, lastCommand: string | null, run: number): BreakerView {
  const byHost: Record<string, number> = {};
  for (const l of Object.values(st.leases)) byHost[l.host] = (byHost[l.host] ?? 0) + 1;
  const scopes = settings ? scopesOf(st, settings) : Object.keys(st.breakers);
  return {
    scopes: scopes.map((scope) => {
      const b = st.breakers[scope] ?? closedBreaker(0);
      const count = settings ? countScope(st, settings, scope) : { open: 0, total: 0, over: false, affected: [] };
      return { scope, ...b, count, sinceIso: new Date(b.since).toISOString() };
    }),
    restartsInFlight: Object.keys(st.leases).length,
    restartsInFlightByHost: byHost,
    held: Object.values(st.waiters).map((w) => ({
      host: w.host,
      service: w.service,
      reason: (HOLD_REASONS as readonly string[]).includes(w.reason) ? w.reason : ('breaker' as HoldReason),
      detail: w.detail,
      since: new Date(w.since).toISOString(),
    })),
    openIncidents: Object.keys(st.incidents).length,
    settings,
    lastCommand,
    run,
    historyLength: workflowInfo().historyLength,
  };
}
