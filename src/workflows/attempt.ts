// Steps 3 to 5 of an incident: restart the unit on its host, verify that it came back, and then
// close the incident, escalate, or wait out the cooldown and try again.
import { log, patched, sleep } from '@temporalio/workflow';
import { afterAttempt, cooldownUntil, pruneRestarts } from '../policy/policy';
import { AUDIT_EVENTS, hostTaskQueue, type AttemptRecord } from './definitions';
import { callStarted, readFailure, worthRetrying, type FailureReading } from './host-calls';
import { releaseSlot } from './gate';
import type { IncidentContext, Next } from './incident';
import { iso, PATCH_RESTART_RETRY, RECENT_ATTEMPTS } from './state';

export interface AttemptOutcome extends FailureReading {
  ok: boolean;
  approved: boolean;
  id: string;
  startedAt: number;
}

export async function restartAndVerify(i: IncidentContext): Promise<Next> {
  if (await i.boundary()) return i.skipped();
  const inc = i.inc;
  const approved = i.e.s.approvalPending;
  i.e.s.approvalPending = false;
  inc.attempts++;
  const id = `${inc.id}-${inc.attempts}`;
  const startedAt = i.e.now();
  i.e.s.lastAttemptAt = startedAt;
  i.fx.enter('restarting');
  i.fx.publish();
  await i.fx.audit({
    event: AUDIT_EVENTS.restart,
    decision: 'restart',
    reason: approved ? 'approved by a human' : 'confirmed unhealthy after validation',
    attemptId: id,
  });
  let beforeFingerprint: string;
  try {
    const r = patched(PATCH_RESTART_RETRY)
      ? await restartWithRetries(i, id)
      : await i.host.restart({ ...i.fx.ref(), attemptId: id });
    beforeFingerprint = r.beforeFingerprint;
    if (r.outcome === 'already-restarted') log.warn('host reported the restart already done for this attempt', { id });
  } catch (err) {
    const f = err instanceof RestartCallsFailed ? err.reading : readFailure(err, true);
    if (f.restarted) i.e.s.restarts.push(startedAt);
    return finishAttempt(i, { ok: false, ...f, approved, id, startedAt });
  }
  i.e.s.restarts.push(startedAt);
  i.fx.enter('verifying');
  i.fx.publish();
  let ok: boolean;
  let reason: string;
  let detail: string;
  try {
    const v = await i.host.verify.executeWithOptions(
      { summary: `verify ${inc.unit} is active and stays up, attempt ${id}` },
      [
        {
          ...i.fx.ref(),
          beforeFingerprint,
          timeoutMs: inc.policy.verifyTimeoutMs,
          stableMs: inc.policy.verifyStableMs,
        },
      ],
    );
    ({ ok, reason, detail } = v);
  } catch (err) {
    ({ reason, detail } = readFailure(err, true));
    ok = false;
  }
  if (ok && inc.policy.verifyAlertClears) {
    const remaining = Math.max(5_000, inc.policy.verifyTimeoutMs - (i.e.now() - startedAt));
    const c = await i.fx.waitForAlertClear(inc.alertnames, remaining);
    if (!c.cleared) {
      ok = false;
      reason = 'alert-still-firing';
      detail = c.detail;
    }
  }
  return finishAttempt(i, { ok, reason, detail, restarted: true, approved, id, startedAt });
}

/**
 * Calls the host's restart up to three times with the same attempt id (the host never restarts
 * twice for one id). Any call that started may have run systemctl, so the attempt counts as a
 * restart even when a later call never reaches the host (schedule-to-start timeout).
 */
async function restartWithRetries(i: IncidentContext, attemptId: string) {
  let mayHaveRun = false;
  for (let call = 1; ; call++) {
    try {
      return await i.host.restartOnce.executeWithOptions({ summary: `restart ${i.inc.unit}, attempt ${attemptId}` }, [
        { ...i.fx.ref(), attemptId },
      ]);
    } catch (err) {
      const reading = readFailure(err, true);
      mayHaveRun ||= callStarted(err) && reading.restarted;
      if (call >= 3 || !worthRetrying(err)) {
        throw new RestartCallsFailed({ ...reading, restarted: mayHaveRun || reading.restarted });
      }
      log.warn('restart call failed; calling again with the same attempt id', {
        attemptId,
        call,
        error: reading.detail,
      });
      await sleep(2_000 * call, { summary: `call the host again for attempt ${attemptId}` });
    }
  }
}

export async function finishAttempt(i: IncidentContext, a: AttemptOutcome): Promise<Next> {
  const inc = i.inc;
  const now = i.e.now();
  i.e.s.restarts = pruneRestarts(i.e.s.restarts, now);
  const next = afterAttempt(i.e.s.consecutiveFailures, a.ok, inc.policy);
  i.e.s.consecutiveFailures = next.consecutiveFailures;
  i.e.s.lastFailureAt = a.ok ? null : now;
  const record: AttemptRecord = {
    id: a.id,
    at: iso(a.startedAt)!,
    result: a.ok ? 'success' : 'failure',
    reason: a.reason,
    restarted: a.restarted,
    approved: a.approved,
    durationMs: now - a.startedAt,
    detail: a.detail.slice(0, 300),
  };
  i.e.s.attempts = [...i.e.s.attempts, record].slice(-RECENT_ATTEMPTS);
  // The slot goes back with the result: a half-open breaker's trial closes or reopens it.
  await releaseSlot(i, a.restarted ? (a.ok ? 'verified' : 'failed') : 'not-used');
  if (a.restarted) i.e.s.totals.restarts++;
  if (!a.ok) i.e.s.totals.failures++;
  await i.fx.audit({
    event: AUDIT_EVENTS.attemptFinished,
    decision: a.ok ? 'recovered' : 'failed',
    reason: a.reason,
    detail: a.detail.slice(0, 500),
    attemptId: a.id,
    result: record.result,
    restarted: a.restarted,
  });
  if (a.ok) return i.close('verified', `recovered after restart (${a.detail})`, {});

  const { host } = i.e.input;
  if (a.reason === 'host-unreachable' && !inc.hostUnreachableEscalated) {
    inc.hostUnreachableEscalated = true;
    await i.fx.escalate(
      'HostUnreachable',
      `no selfheal worker is serving host ${host} (queue ${hostTaskQueue(host)}); cannot act on ${i.e.input.service}`,
    );
  }
  if (a.reason === 'host-state-unwritable' && !inc.hostStateEscalated) {
    inc.hostStateEscalated = true;
    await i.fx.escalate('HostStateUnwritable', `${i.where}: ${a.detail}`);
  }
  if (next.escalate) {
    i.fx.enter('escalated');
    await i.fx.escalate(
      'ConsecutiveFailures',
      `${i.where}: ${i.e.s.consecutiveFailures} consecutive failed attempts (limit ${inc.policy.maxConsecutiveFailures}); last: ${a.reason}: ${a.detail}. Waiting for a human: selfheal approve|skip ${i.e.input.service} --host ${host}`,
    );
    return 'wait-human';
  }
  const until = cooldownUntil(i.e.s, inc.policy, now);
  if (until == null) {
    i.fx.enter('checking');
    return 'recheck';
  }
  i.fx.enter('cooldown');
  inc.waitUntil = until;
  return 'wait-slot';
}

/** The outcome of every restart call of one attempt. */
class RestartCallsFailed extends Error {
  constructor(readonly reading: FailureReading) {
    super(reading.detail);
  }
}
