// The `state` query's answer: the carried state as people read it (times as ISO strings, what is in
// force now). Read only: a query never changes the workflow.
import { workflowInfo } from '@temporalio/workflow';
import { budgetFreesAt, cooldownUntil, restartsInWindow, statusOf, type Policy } from '../policy/policy';
import type { ServiceStateView } from './definitions';
import { union } from './payloads';
import { iso, type EntityState } from './state';

export function stateView(e: EntityState): ServiceStateView {
  const now = Date.now();
  const inc = e.s.incident;
  const policy: Policy | null = inc?.policy ?? null;
  const inWindow = restartsInWindow(e.s.restarts, now).sort((a, b) => a - b);
  const frees = policy ? budgetFreesAt(e.s.restarts, policy, now) : now;
  return {
    workflowId: e.workflowId,
    host: e.input.host,
    service: e.input.service,
    phase: e.s.phase,
    status: statusOf(e.s.phase, inc != null),
    paused: e.s.pause != null,
    pausedUntil: iso(e.s.pause?.until),
    pauseReason: e.s.pause?.reason ?? null,
    firingAlerts: union(
      [],
      e.firing.map((f) => f.name),
    ),
    firing: e.firing,
    incident: inc && {
      id: inc.id,
      openedAt: iso(inc.openedAt)!,
      alertnames: inc.alertnames,
      summary: inc.summary,
      attempts: inc.attempts,
      duplicateAlerts: inc.duplicateAlerts,
      waitUntil: iso(inc.waitUntil),
    },
    held: inc?.held ? { reason: inc.held.reason, detail: inc.held.detail, since: iso(inc.held.since)! } : null,
    consecutiveFailures: e.s.consecutiveFailures,
    restartsLastHour: inWindow.length,
    restartTimes: inWindow.map((t) => iso(t)!),
    cooldownUntil: policy ? iso(cooldownUntil(e.s, policy, now)) : null,
    budgetFreesAt: frees > now && Number.isFinite(frees) ? iso(frees) : null,
    canApprove: e.canApprove(),
    canSkip: e.canSkip(),
    lastEscalation: e.s.lastEscalation && { ...e.s.lastEscalation, at: iso(e.s.lastEscalation.at)! },
    recentAttempts: e.s.attempts,
    totals: e.s.totals,
    policy,
    run: e.s.run,
    historyLength: workflowInfo().historyLength,
  };
}
