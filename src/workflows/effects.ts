// What the workflow does to the world: control activities (with their options), the audit log, the escalation outbox, and what the Temporal UI shows (search attributes, the
// current details). Policy decisions are not made here; the incident makes them.
import {
  condition,
  log,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { AuditRecord, ControlActivities, EscalationPayload } from '../activities';
import { formatDuration } from '../policy/duration';
import { restartsInWindow, statusOf, type Phase } from '../policy/policy';
import {
  AUDIT_EVENTS,
  MAX_UNDELIVERED_ESCALATIONS,
  SA_FAILURES,
  SA_HOST,
  SA_PHASE,
  SA_SERVICE,
  SA_STATUS,
  type EscalationEvent,
} from './definitions';
import { iso, type EntityState } from './state';

// Control-queue work that is quick and local to the workflow worker: cheap in history.
export const local = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '5m',
  retry: { initialInterval: '1s', maximumInterval: '30s', backoffCoefficient: 2 },
});

// The audit activity never fails and never waits on the disk (it holds lines back itself): a short
// deadline and few retries, so a broken worker cannot hold a decision up either.
export const auditLocal = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

// Escalations are retried until delivered: no attempt limit, backoff capped at 5 minutes.
export const delivery = proxyActivities<ControlActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '5s', maximumInterval: '5m', backoffCoefficient: 2 },
});

/** How long a run about to continue-as-new waits for escalations still in delivery. */
export const DELIVERY_GRACE_MS = 30_000;

export class Effects {
  private readonly outbox = new Map<string, EscalationPayload>();
  private lastPublished = '';
  /** Audit records made in this run: with the run id, each decision's identity. */
  private audits = 0;

  constructor(private readonly e: EntityState) {}

  private get s() {
    return this.e.s;
  }

  ref() {
    return { workflowId: this.e.workflowId, host: this.e.input.host, service: this.e.input.service };
  }

  // ---- what the UI shows ------------------------------------------------------------------------

  /** Sets the phase: what the `state` query, the UI and (at the next boundary) the search attributes show. */
  enter(phase: Phase): void {
    this.s.phase = phase;
    setCurrentDetails(this.details());
  }

  /**
   * A step boundary: humans' decisions go to the audit log and the phase is published. Search
   * attributes are upserted here (and around a restart), not on every assignment, so the history
   * holds one upsert per step.
   */
  async boundary(): Promise<void> {
    await this.flushHumanEvents();
    if (!this.s.incident) this.s.phase = this.s.pause ? 'paused' : 'idle';
    this.publish();
  }

  /** Upserts the search attributes when phase, status or failures changed; refreshes the details. */
  publish(): void {
    setCurrentDetails(this.details());
    if (!this.e.input.searchAttributes) return;
    const status = statusOf(this.s.phase, this.s.incident != null);
    const key = `${this.s.phase}|${status}|${this.s.consecutiveFailures}`;
    if (key === this.lastPublished) return;
    // First call of a run: skip the upsert when start (or continue-as-new) already set these values.
    const first = this.lastPublished === '';
    this.lastPublished = key;
    const current = workflowInfo().typedSearchAttributes;
    if (
      !first ||
      current.get(SA_PHASE) !== this.s.phase ||
      current.get(SA_STATUS) !== status ||
      current.get(SA_FAILURES) !== this.s.consecutiveFailures ||
      current.get(SA_SERVICE) !== this.e.input.service
    ) {
      upsertSearchAttributes([
        { key: SA_SERVICE, value: this.e.input.service },
        { key: SA_HOST, value: this.e.input.host },
        { key: SA_PHASE, value: this.s.phase },
        { key: SA_STATUS, value: status },
        { key: SA_FAILURES, value: this.s.consecutiveFailures },
      ]);
    }
  }

  /** The workflow's "current details" in the Temporal UI: where the incident is and what a human can do. */
  details(): string {
    const { host, service } = this.e.input;
    const inc = this.s.incident;
    const lines = [`**${service}** on **${host}**: ${statusOf(this.s.phase, inc != null)}, phase \`${this.s.phase}\``];
    if (this.s.pause) lines.push(`Paused ${this.s.pause.until ? `until ${iso(this.s.pause.until)}` : 'until resumed'}`);
    if (inc) {
      lines.push(
        `Incident ${inc.id} opened ${iso(inc.openedAt)} (${inc.alertnames.join(', ')}), ${inc.attempts} attempt(s)`,
      );
      const waiting: Partial<Record<Phase, string>> = {
        validating: 'waits out the validation window',
        cooldown: 'waits out the cooldown',
        exhausted: 'waits for the hourly restart budget',
        'awaiting-approval': 'waits for a human to approve the restart',
        escalated: 'waits for a human: self-healing is not working',
        paused: 'holds: paused for maintenance',
        held: `holds (${inc.held?.reason ?? 'fleet safety'}): ${inc.held?.detail ?? ''}; \`selfheal breaker status\``,
        restarting: 'restarts the unit on its host',
        verifying: 'verifies that the unit came back',
      };
      const what = waiting[this.s.phase];
      if (what) lines.push(`Now: ${what}${inc.waitUntil ? ` until ${iso(inc.waitUntil)}` : ''}`);
      lines.push(
        `\`approve\`: ${this.e.canApprove() ? 'restart once now, whatever cooldown, budget or pause say' : 'not now (a restart is running)'}; ` +
          '`skip`: drop this incident and go back to watching',
      );
    } else lines.push(`Watching; consecutive failures ${this.s.consecutiveFailures}`);
    return lines.join('\n\n');
  }

  // ---- the audit log ----------------------------------------------------------------------------

  async audit(rec: Omit<AuditRecord, 'time' | 'host' | 'service' | 'workflowId'>): Promise<void> {
    const now = this.e.now();
    const record: AuditRecord = {
      time: new Date(now).toISOString(),
      ...this.ref(),
      id: `${workflowInfo().runId}/${++this.audits}`,
      incidentId: this.s.incident?.id ?? null,
      phase: this.s.phase,
      status: statusOf(this.s.phase, this.s.incident != null),
      consecutiveFailures: this.s.consecutiveFailures,
      restartsLastHour: restartsInWindow(this.s.restarts, now).length,
      ...rec,
    };
    try {
      await auditLocal.audit(record);
    } catch (err) {
      // The audit log must not stop remediation; the decision is still in this workflow's history.
      log.error('audit log write failed', { event: record.event, error: (err as Error).message });
    }
  }

  async flushHumanEvents(): Promise<void> {
    while (this.e.humanEvents.length) {
      const h = this.e.humanEvents.shift()!;
      await this.audit({
        event: h.event,
        decision: h.decision,
        reason: h.reason,
        by: h.by,
        ...(h.phase ? { phase: h.phase } : {}),
      });
    }
  }

  // ---- escalations ------------------------------------------------------------------------------

  /** Starts durable delivery and goes on: escalation never blocks remediation. */
  async escalate(event: EscalationEvent, message: string): Promise<void> {
    const now = this.e.now();
    this.s.totals.escalations++;
    this.s.lastEscalation = { event, at: now, message };
    const last = this.s.attempts[this.s.attempts.length - 1];
    const payload: EscalationPayload = {
      id: `${this.e.workflowId}/${this.s.incident?.id ?? 'none'}/${event}/${this.s.totals.escalations}`,
      event,
      ...this.ref(),
      incidentId: this.s.incident?.id ?? null,
      consecutiveFailures: this.s.consecutiveFailures,
      restartsLastHour: restartsInWindow(this.s.restarts, now).length,
      message,
      time: new Date(now).toISOString(),
      lastAttempt: last ? { result: last.result, reason: last.reason, at: last.at } : null,
    };
    this.send(payload);
    await this.audit({ event: AUDIT_EVENTS.escalated, decision: 'escalate', reason: message, escalation: event });
  }

  private send(payload: EscalationPayload): void {
    this.outbox.set(payload.id, payload);
    delivery.escalate(payload).then(
      (r) => {
        this.outbox.delete(payload.id);
        if (r.refused?.length) log.error('escalation refused by a receiver', { id: payload.id, refused: r.refused });
      },
      (err: unknown) => log.error('escalation delivery gave up', { id: payload.id, error: (err as Error).message }),
    );
  }

  /** Escalations carried from the previous run go out again (receivers dedupe on `id`). */
  resendUndelivered(): void {
    for (const p of this.s.undelivered ?? []) this.send(p);
    this.s.undelivered = [];
  }

  /**
   * Before continuing as new: waits up to `timeoutMs` for the escalations in delivery. One still out
   * after that (a receiver down) is carried and sent again by the next run, as before.
   */
  async settleDeliveries(timeoutMs = DELIVERY_GRACE_MS): Promise<void> {
    if (this.outbox.size === 0) return;
    // A sleep raced with the condition, never a cancelled timer (see the coordinator's alarm).
    let late = false;
    void sleep(timeoutMs, { summary: 'escalations in delivery' }).then(() => (late = true));
    await condition(() => late || this.outbox.size === 0);
  }

  /** Escalations still in delivery, to carry through continue-as-new (bounded). */
  undelivered(): EscalationPayload[] {
    const all = [...this.outbox.values()];
    if (all.length > MAX_UNDELIVERED_ESCALATIONS) {
      log.error('too many undelivered escalations to carry; dropping the oldest', {
        dropped: all.length - MAX_UNDELIVERED_ESCALATIONS,
      });
    }
    return all.slice(-MAX_UNDELIVERED_ESCALATIONS);
  }

  // ---- control activities -----------------------------------------------------------------------

  resolveService() {
    return local.resolveService({ host: this.e.input.host, service: this.e.input.service });
  }

  /** Prometheus' word on whether the alerts still fire; null when it cannot tell. */
  alertStillFiring(alertnames: string[]): Promise<boolean | null> {
    return local
      .alertStillFiring({ host: this.e.input.host, service: this.e.input.service, alertnames })
      .catch(() => null);
  }

  /** Verification by Prometheus: waits until the incident's alerts clear, up to `timeoutMs`. */
  waitForAlertClear(alertnames: string[], timeoutMs: number): Promise<{ cleared: boolean; detail: string }> {
    const clear = proxyActivities<ControlActivities>({
      startToCloseTimeout: timeoutMs + 30_000,
      heartbeatTimeout: '1m',
      retry: { maximumAttempts: 2 },
    }).waitForAlertClear;
    return clear
      .executeWithOptions({ summary: `wait for ${alertnames.join(', ')} to clear in Prometheus` }, [
        { host: this.e.input.host, service: this.e.input.service, alertnames, timeoutMs },
      ])
      .catch((err: Error) => ({ cleared: false, detail: `could not check Prometheus: ${err.message}` }));
  }

  /** Summary of a timer, as the Temporal UI shows it. */
  static timer(what: string, until: number | null, span?: number): string {
    return until == null ? what : `${what} ${span != null ? formatDuration(span) : `until ${iso(until)}`}`;
  }
}
