// The opening of an incident: the pending alert becomes an incident (or is dropped for a service no
// longer configured), validation starts, and with fleet safety the coordinator counts it and flap
// detection looks at the service's recent incidents. The rest of the incident is incident.ts.
import { log, patched, sleep } from '@temporalio/workflow';
import { formatDuration } from '../policy/duration';
import { DEFAULT_FLAPPING, failuresInForce, isFlapping, recentIncidents } from '../policy/policy';
import { AUDIT_EVENTS } from './definitions';
import type { Effects } from './effects';
import { notifyFleet } from './gate';
import { PATCH_FAILURES_SURVIVE_RECOVERY, type EntityState } from './state';

/** Opens an incident for the pending alert (or drops it for a service no longer configured). */
export async function openIncident(e: EntityState, fx: Effects): Promise<void> {
  const s = e.s;
  const alert = s.pendingAlert!;
  s.pendingAlert = null;
  let resolved: Awaited<ReturnType<Effects['resolveService']>>;
  try {
    resolved = await fx.resolveService();
  } catch (err) {
    // Cannot happen short of a broken control worker; keep the alert and try again later.
    log.error('cannot read the service configuration; retrying in 1 minute', { error: (err as Error).message });
    s.pendingAlert = alert;
    await sleep(60_000, { summary: 'retry reading the service configuration' });
    return;
  }
  if (!resolved.configured) {
    await fx.audit({ event: AUDIT_EVENTS.notConfigured, decision: 'no-restart', reason: resolved.reason });
    return;
  }
  const now = e.now();
  // Failures survive a recovery on its own, but not a quiet hour before the next incident.
  if (patched(PATCH_FAILURES_SURVIVE_RECOVERY)) {
    s.consecutiveFailures = failuresInForce(s.consecutiveFailures, s.lastFailureAt, now);
  }
  s.incidentSeq++;
  s.totals.incidents++;
  s.incident = {
    id: `inc-${s.incidentSeq}`,
    openedAt: now,
    alertnames: alert.alertnames,
    summary: alert.summary,
    attempts: 0,
    duplicateAlerts: 0,
    waitUntil: now + resolved.policy.validationWindowMs,
    policy: resolved.policy,
    unit: resolved.unit,
    manager: resolved.manager,
    hostUnreachableEscalated: false,
    approvalRequested: false,
  };
  fx.enter('validating');
  await fx.audit({
    event: AUDIT_EVENTS.incidentOpened,
    decision: 'validate',
    reason: `${alert.alertnames.join(', ')} firing; validating for ${formatDuration(resolved.policy.validationWindowMs)}`,
    detail: alert.summary ?? undefined,
  });
  if (e.fleet) await openFleetIncident(e, fx, resolved.dependsOn ?? [], resolved.answerTimeoutMs);
}

/** Fleet safety at the opening of an incident: the coordinator counts it; flap detection. */
async function openFleetIncident(e: EntityState, fx: Effects, dependsOn: string[], answerTimeoutMs?: number) {
  const s = e.s;
  const inc = s.incident!;
  const now = inc.openedAt;
  const flapping = inc.policy.flapping;
  inc.dependsOn = dependsOn;
  if (answerTimeoutMs) inc.answerTimeoutMs = answerTimeoutMs;
  s.incidentTimes = recentIncidents([...(s.incidentTimes ?? []), now], now, (flapping ?? DEFAULT_FLAPPING).windowMs);
  inc.flapping = isFlapping(s.incidentTimes, now, flapping);
  if (!inc.flapping) s.flappingSince = null;
  else if (s.flappingSince == null) {
    s.flappingSince = now;
    const f = flapping ?? DEFAULT_FLAPPING;
    await fx.escalate(
      'ServiceFlapping',
      `${e.input.service} on ${e.input.host} is flapping: ${s.incidentTimes.length} incidents within ${formatDuration(f.windowMs)} (limit ${f.incidents}); ` +
        `its restarts wait for approval until it has been quiet for ${formatDuration(f.windowMs)}: selfheal approve ${e.input.service} --host ${e.input.host}`,
    );
  }
  await notifyFleet(e, { kind: 'opened', incidentId: inc.id });
}
