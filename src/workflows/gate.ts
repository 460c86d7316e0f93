// Fleet safety in the incident: before each restart, the incident asks the fleet coordinator
// (breaker, concurrency, dependencies) and checks Alertmanager's silences; while it may not act it
// waits in phase `held`, spends no budget, and is still cancelled by a resolve or a skip. A held
// incident that is let go re-checks the service before acting (a queued alert may be stale).
import { condition, log, proxyLocalActivities, sleep } from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import { formatDuration } from '../policy/duration';
import { type ReleaseResult } from '../policy/admission';
import { serviceKey, silenceRecheckAt, SILENCE_RECHECK_MS, type HoldReason } from '../policy/fleet';
import { AUDIT_EVENTS } from './definitions';
import type { FleetAnswer, FleetReport } from './fleet-definitions';
import type { IncidentContext, Next } from './incident';
import { Effects } from './effects';
import type { EntityState } from './state';

// Quick and local: a report is one signal-with-start; silences one HTTP round trip.
const fleetLocal = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '15s',
  scheduleToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 3 },
});

type ReportBody = FleetReport extends infer R ? (R extends unknown ? Omit<R, 'host' | 'service'> : never) : never;

const DEFAULT_ANSWER_TIMEOUT_MS = 30_000;
/** A held incident asks again this often (a lost answer, a restarted coordinator); sooner when unavailable. */
const HELD_REASK_MS = 5 * 60_000;
const UNAVAILABLE_RETRY_MS = 60_000;

/** Tells the coordinator; false when it could not be told (Temporal unreachable from the worker). */
export async function notifyFleet(e: EntityState, report: ReportBody): Promise<boolean> {
  if (e.input.fleetReports === false && report.kind !== 'request') return true;
  try {
    await fleetLocal.notifyFleet({ ...report, host: e.input.host, service: e.input.service } as FleetReport);
    return true;
  } catch (err) {
    log.error('cannot reach the fleet coordinator', { kind: report.kind, error: (err as Error).message });
    return false;
  }
}

/** Gives back the incident's restart slot, if it holds one. */
export async function releaseSlot(i: IncidentContext, result: ReleaseResult): Promise<void> {
  if (!i.e.fleet || !i.inc.granted) return;
  i.inc.granted = false;
  await notifyFleet(i.e, { kind: 'release', incidentId: i.inc.id, result });
}

/** Before a restart: silences, then the coordinator's admission. Grant → restart; else held. */
export async function gate(i: IncidentContext): Promise<Next> {
  if (await i.boundary()) return i.skipped();
  const approved = i.e.s.approvalPending;
  if (!approved) {
    const silence = await fleetLocal
      .activeSilence({ host: i.e.input.host, service: i.e.input.service, alertnames: i.inc.alertnames })
      .catch((err: Error) => ({ reachable: false as const, detail: err.message }));
    if (silence.reachable === true && silence.silence) {
      await releaseSlot(i, 'not-used');
      const s = silence.silence;
      return hold(
        i,
        'silenced',
        `silence ${s.id} by ${s.createdBy || 'unknown'}${s.comment ? `: ${s.comment}` : ''}${s.endsAt ? ` (ends ${s.endsAt})` : ''}`,
        // Runs started before the patch re-ask every minute as they did: a shorter wait changes what a
        // wake by a human signal after the silence's end does (re-check instead of another timer).
        i.e.clock.on ? silenceRecheckAt(i.e.now(), s.endsAt) : i.e.now() + SILENCE_RECHECK_MS,
      );
    }
    if (silence.reachable === false && 'hold' in silence && silence.hold) {
      await releaseSlot(i, 'not-used');
      return hold(
        i,
        'silenced',
        `cannot ask Alertmanager for silences (${silence.detail}); holding (alertmanager.unreachable: hold)`,
        i.e.now() + SILENCE_RECHECK_MS,
      );
    }
    if (silence.reachable === false) {
      await i.fx.audit({
        event: AUDIT_EVENTS.decision,
        decision: 'proceed',
        reason: `cannot ask Alertmanager for silences (${silence.detail}); acting as if none`,
      });
    }
  }
  if (i.inc.granted) return go(i);
  const ask = (i.inc.asks ?? 0) + 1;
  i.inc.asks = ask;
  i.e.fleetAnswer = null;
  const sent = await notifyFleet(i.e, {
    kind: 'request',
    workflowId: i.e.workflowId,
    incidentId: i.inc.id,
    ask,
    approved,
    dependsOn: i.inc.dependsOn ?? [],
  });
  const answer = sent ? await awaitAnswer(i, ask) : null;
  if (i.inc.granted) return go(i);
  if (!answer) {
    const timeout = i.inc.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    return hold(
      i,
      'breaker-unavailable',
      sent
        ? `the fleet coordinator did not answer within ${formatDuration(timeout)}; nothing restarts until it does`
        : 'the fleet coordinator cannot be reached; nothing restarts until it can',
      i.e.now() + UNAVAILABLE_RETRY_MS,
    );
  }
  return hold(i, answer.reason ?? 'breaker', answer.detail ?? '', i.e.now() + HELD_REASK_MS);
}

/**
 * Waits for the answer to this ask, a grant, a skip, or the deadline. The deadline is a sleep raced
 * with the condition, never a cancelled timer (see the coordinator's alarm).
 */
async function awaitAnswer(i: IncidentContext, ask: number): Promise<FleetAnswer | null> {
  let late = false;
  const timeout = i.inc.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
  void sleep(timeout).then(() => (late = true));
  await condition(() => late || i.inc.granted === true || i.e.fleetAnswer?.ask === ask || i.e.s.skipPending);
  const a = i.e.fleetAnswer;
  return a && (a.ask === ask || a.decision === 'grant') ? a : null;
}

function go(i: IncidentContext): Next {
  i.inc.held = null;
  i.fx.enter('restarting');
  return 'restart';
}

/** Enters phase `held` for `reason` (audited when the reason changes); asks again at `retryAt`. */
export async function hold(
  i: IncidentContext,
  reason: HoldReason,
  detail: string,
  retryAt: number | null,
): Promise<Next> {
  const changed = i.inc.held?.reason !== reason;
  i.inc.held = { reason, detail, since: changed ? i.e.now() : (i.inc.held?.since ?? i.e.now()) };
  i.inc.waitUntil = retryAt;
  i.fx.enter('held');
  if (changed) await i.fx.audit({ event: AUDIT_EVENTS.held, decision: `hold-${reason}`, reason: detail });
  return 'wait-held';
}

/** Held: until a grant (then re-check), an approval (ask again, approved), a resolve or skip, or time to ask again. */
export async function waitHeld(i: IncidentContext): Promise<Next> {
  const woke = await i.e.waitFor(
    ['granted', 'resolved', 'approve'],
    () => i.inc.waitUntil,
    () => i.fx.boundary(),
    () => Effects.timer(`held (${i.inc.held?.reason ?? 'breaker'}), ask again`, i.inc.waitUntil),
  );
  if (woke === 'continue-as-new') return woke;
  if (woke === 'skip') return i.skipped();
  if (woke === 'resolved') return i.close('resolved', `alert resolved while held (${i.inc.held?.reason ?? ''})`, {});
  i.inc.waitUntil = null;
  if (woke === 'granted') {
    await i.fx.audit({
      event: AUDIT_EVENTS.released,
      decision: 'recheck',
      reason: `let go after holding (${i.inc.held?.reason ?? 'breaker'}); re-checking before acting`,
    });
    i.inc.held = null;
    i.fx.enter('checking');
    return 'recheck';
  }
  // Time to ask again, or an approval: ask again (as approved). A flapping hold has no deadline.
  return 'gate';
}

export const keyOf = (e: EntityState) => serviceKey(e.input.host, e.input.service);
