// The entity workflow: one per (host, service), id selfheal/<host>/<service>, living for as long as
// the service is guarded. It watches for alerts, remediates each incident (incident.ts), and
// continues-as-new with its policy state (state.ts) before its history grows large.
import { allHandlersFinished, condition, continueAsNew, patched, setHandler } from '@temporalio/workflow';
import { pruneRestarts } from '../policy/policy';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  pauseSignal,
  resumeSignal,
  skipSignal,
  stateQuery,
  type ServiceWorkflowInput,
} from './definitions';
import { Effects } from './effects';
import { remediate, resumeAt } from './incident';
import { openIncident } from './open';
import { alertRefs, humanPayload, payloadObject } from './payloads';
import { fleetAnswerSignal } from './fleet-definitions';
import { stateView } from './view';
import {
  EntityState,
  PATCH_DELIVER_BEFORE_CONTINUE,
  PATCH_FLEET_SAFETY,
  PATCH_TIMER_ENDS_WAIT,
  PATCHES,
  WAIT_PHASES,
} from './state';

export { DEFAULT_MAX_HISTORY_EVENTS, DEFAULT_MAX_SIGNALS_PER_RUN } from './state';

/** The entity workflow of one service on one host. */
export async function selfhealService(input: ServiceWorkflowInput): Promise<void> {
  for (const id of PATCHES) patched(id);
  const e = new EntityState(input);
  // Decided above, in the first task; this reads the cached decision.
  e.fleet = patched(PATCH_FLEET_SAFETY);
  e.clock.on = patched(PATCH_TIMER_ENDS_WAIT);
  // Kept as decided here: asked again later, a run started before would record the marker live after
  // local activities, where a replay may not find it.
  const settleBeforeContinue = patched(PATCH_DELIVER_BEFORE_CONTINUE);
  const fx = new Effects(e);

  setHandler(alertFiringSignal, (p) => {
    const o = payloadObject(p);
    e.onFiring(alertRefs(o), typeof o.summary === 'string' ? o.summary : undefined);
  });
  setHandler(alertResolvedSignal, (p) => e.onResolved(payloadObject(p)));
  setHandler(approveSignal, (p) => e.onHuman('approve', humanPayload(p)));
  setHandler(skipSignal, (p) => e.onHuman('skip', humanPayload(p)));
  setHandler(pauseSignal, (p) => e.onPause(payloadObject(p).until, humanPayload(p)));
  setHandler(resumeSignal, (p) => e.onHuman('resume', humanPayload(p)));
  setHandler(stateQuery, () => stateView(e));
  setHandler(fleetAnswerSignal, (a) => e.onFleetAnswer(a));

  fx.resendUndelivered();
  for (;;) {
    await fx.boundary();
    if (WAIT_PHASES.includes(e.s.phase) && e.continueAsNewWanted()) break;
    if (e.s.incident) {
      if ((await remediate(e, fx, resumeAt(e.s.phase))) === 'continue-as-new') break;
    } else if (!e.expirePauseIfDue()) {
      if (e.s.pendingAlert) await openIncident(e, fx);
      else await waitForAlert(e);
    }
  }

  // Continue-as-new from here only, once every handler is done, carrying plain JSON. Escalations in
  // delivery finish first (bounded), so no activity is scheduled in the task that continues-as-new.
  if (settleBeforeContinue) await fx.settleDeliveries();
  await condition(allHandlersFinished);
  await fx.flushHumanEvents();
  e.s.restarts = pruneRestarts(e.s.restarts, e.now());
  e.s.undelivered = fx.undelivered();
  e.s.run++;
  await continueAsNew<typeof selfhealService>({ ...input, carried: e.s });
}

/** Watching: until an alert arrives, a human acts, a timed pause ends, or it is time to continue-as-new. */
async function waitForAlert(e: EntityState): Promise<void> {
  const wake = () => e.s.pendingAlert != null || e.humanEvents.length > 0 || e.continueAsNewWanted();
  if (wake()) return;
  const until = e.s.pause?.until ?? null;
  if (until == null) await condition(wake);
  else await e.waitUntil(wake, until, () => 'pause ends');
}
